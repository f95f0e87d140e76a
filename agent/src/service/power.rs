//! Sleep and resume: a laptop closed at the end of the day is "asleep", not "down".
//!
//! The service glue hears that the machine is about to sleep — a PBT_APMSUSPEND power event
//! from the Service Control Manager on Windows, SIGUSR1 from the systemd sleep hook in
//! `deploy/systemd/` on Linux — and calls [`Power::going_to_sleep`]. The shipper then says
//! Goodbye with the reason "sleep" and closes its stream, and marks the goodbye said; it
//! connects again when the glue calls [`Power::resumed`] (PBT_APMRESUMEAUTOMATIC, SIGUSR2).
//! Sampling carries on into the spool meanwhile: the process sleeps with the machine, and
//! whatever was measured before or after is sent on resume.

use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where the machine stands, as the shipper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Awake,
    /// The machine is about to sleep: say goodbye now.
    GoingToSleep,
    /// The goodbye is said (or there was no stream to say it on); wait for the resume.
    GoodbyeSaid,
}

/// Shared between the service glue, which reports sleep and resume, and the shipper.
#[derive(Debug, Clone)]
pub struct Power(watch::Sender<PowerState>);

impl Default for Power {
    fn default() -> Self {
        Self(watch::Sender::new(PowerState::Awake))
    }
}

impl Power {
    /// The machine is about to sleep. A second notice before the resume changes nothing.
    pub fn going_to_sleep(&self) {
        self.0.send_if_modified(|state| {
            let awake = *state == PowerState::Awake;
            if awake {
                *state = PowerState::GoingToSleep;
            }
            awake
        });
    }

    /// The machine woke up (or never went to sleep after all).
    pub fn resumed(&self) {
        self.0.send_if_modified(|state| {
            let changed = *state != PowerState::Awake;
            *state = PowerState::Awake;
            changed
        });
    }

    /// The shipper has said its goodbye for the sleep.
    pub fn goodbye_said(&self) {
        self.0.send_if_modified(|state| {
            let going = *state == PowerState::GoingToSleep;
            if going {
                *state = PowerState::GoodbyeSaid;
            }
            going
        });
    }

    pub fn state(&self) -> PowerState {
        *self.0.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PowerState> {
        self.0.subscribe()
    }

    /// Blocks this thread (never an async task) until the goodbye is said, at most `limit`:
    /// for the Windows control handler, which has about two seconds before the machine
    /// sleeps, and whose return lets it. Returns whether the goodbye was said in time.
    pub fn wait_until_said(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.state() {
                PowerState::GoingToSleep => {}
                PowerState::GoodbyeSaid | PowerState::Awake => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_then_goodbye_then_resume() {
        let power = Power::default();
        power.goodbye_said();
        assert_eq!(
            power.state(),
            PowerState::Awake,
            "no goodbye without a sleep"
        );
        power.going_to_sleep();
        assert_eq!(power.state(), PowerState::GoingToSleep);
        assert!(!power.wait_until_said(Duration::from_millis(50)));
        power.goodbye_said();
        power.going_to_sleep();
        assert_eq!(
            power.state(),
            PowerState::GoodbyeSaid,
            "a second notice changes nothing"
        );
        assert!(power.wait_until_said(Duration::ZERO));
        power.resumed();
        assert_eq!(power.state(), PowerState::Awake);
    }

    #[test]
    fn the_handler_thread_is_released_once_the_shipper_said_goodbye() {
        let power = Power::default();
        power.going_to_sleep();
        let shipper = power.clone();
        let said = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            shipper.goodbye_said();
        });
        assert!(power.wait_until_said(Duration::from_secs(60)));
        said.join().unwrap();
    }
}
