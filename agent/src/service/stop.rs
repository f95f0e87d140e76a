//! Why the agent is stopping, as the collector should hear it in the Goodbye.
//!
//! A host that goes silent because it is rebooting for patches is not a host that died, and
//! one whose agent a technician stopped is neither. The service glue decides the reason at
//! the moment it is told to stop — from systemd's queued jobs on Linux, from the control the
//! Service Control Manager sent on Windows — and records it in the [`StopReason`] shared with
//! the shipper, before it cancels the shutdown token. This module only decides: reading the
//! system's state is done by the callers, so that the decisions are tested on any machine.

use std::sync::{Arc, Mutex};
use vigil_proto::model::GoodbyeReason;

/// The reason the shipper puts in its Goodbye. Set by whoever stops the agent, read once by
/// the shipper as it drains; a stop nobody explained is a service stop.
#[derive(Debug, Clone)]
pub struct StopReason(Arc<Mutex<GoodbyeReason>>);

impl Default for StopReason {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(GoodbyeReason::ServiceStop)))
    }
}

impl StopReason {
    pub fn set(&self, reason: GoodbyeReason) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = reason;
    }

    pub fn get(&self) -> GoodbyeReason {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What systemd says about the system at the moment the agent receives SIGTERM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdState {
    /// The output of `systemctl list-jobs --no-legend --plain`: one queued job per line.
    pub queued_jobs: String,
    /// The output of `systemctl is-system-running`, e.g. "running", "degraded", "stopping".
    pub system_state: String,
}

/// The Goodbye reason for a SIGTERM, given systemd's state: a reboot or a power-off queued
/// means the machine is going down; a system that is "stopping" without saying which is a
/// shutdown; anything else is the agent's own service being stopped or restarted.
pub fn reason_from_systemd(state: &SystemdState) -> GoodbyeReason {
    let target_queued = |targets: &[&str]| {
        state
            .queued_jobs
            .lines()
            .any(|job| job.split_whitespace().any(|word| targets.contains(&word)))
    };
    if target_queued(&["reboot.target", "kexec.target", "soft-reboot.target"]) {
        GoodbyeReason::Reboot
    } else if target_queued(&["poweroff.target", "halt.target", "shutdown.target"]) {
        GoodbyeReason::Shutdown
    } else if target_queued(&[
        "suspend.target",
        "hibernate.target",
        "hybrid-sleep.target",
        "suspend-then-hibernate.target",
        "sleep.target",
    ]) {
        GoodbyeReason::Sleep
    } else if state.system_state.trim() == "stopping" {
        GoodbyeReason::Shutdown
    } else {
        GoodbyeReason::ServiceStop
    }
}

/// The controls the Windows Service Control Manager sends a service, as far as they decide a
/// Goodbye (the `windows` glue translates the `windows-service` crate's types into these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceControlEvent {
    /// SERVICE_CONTROL_STOP: a technician or an installer stops the service.
    Stop,
    /// SERVICE_CONTROL_PRESHUTDOWN: the system is about to shut down or restart.
    Preshutdown,
    /// SERVICE_CONTROL_SHUTDOWN: the system is shutting down.
    Shutdown,
    /// A power event PBT_APMSUSPEND: the machine is going to sleep.
    Suspend,
    /// A power event PBT_APMRESUMEAUTOMATIC or PBT_APMRESUMESUSPEND: it woke up.
    Resume,
    /// Any other power event (battery, power setting change).
    OtherPowerEvent,
}

/// What a control asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Say goodbye with this reason and stop.
    Stop(GoodbyeReason),
    /// Say goodbye with the reason "sleep" and keep running: the process sleeps with the
    /// machine ([`super::power`]).
    Sleep,
    /// Connect again.
    Resume,
    Nothing,
}

/// What a control means for the agent.
pub fn action_for_service_control(event: ServiceControlEvent) -> ControlAction {
    match event {
        ServiceControlEvent::Stop => ControlAction::Stop(GoodbyeReason::ServiceStop),
        // Windows does not tell a service whether the shutdown is a restart.
        ServiceControlEvent::Preshutdown | ServiceControlEvent::Shutdown => {
            ControlAction::Stop(GoodbyeReason::Shutdown)
        }
        ServiceControlEvent::Suspend => ControlAction::Sleep,
        ServiceControlEvent::Resume => ControlAction::Resume,
        ServiceControlEvent::OtherPowerEvent => ControlAction::Nothing,
    }
}

/// Asks systemd why we are being stopped; a machine without systemd, or a systemctl that
/// does not answer within a second, means an ordinary service stop.
#[cfg(unix)]
pub async fn reason_from_this_system() -> GoodbyeReason {
    async fn output(args: &[&str]) -> String {
        let command = tokio::process::Command::new("systemctl")
            .args(args)
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(std::time::Duration::from_secs(1), command).await {
            Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).into_owned(),
            _ => String::new(),
        }
    }
    let (queued_jobs, system_state) = tokio::join!(
        output(&["list-jobs", "--no-legend", "--plain", "--no-pager"]),
        output(&["is-system-running"]),
    );
    reason_from_systemd(&SystemdState {
        queued_jobs,
        system_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(queued_jobs: &str, system_state: &str) -> SystemdState {
        SystemdState {
            queued_jobs: queued_jobs.into(),
            system_state: system_state.into(),
        }
    }

    #[test]
    fn a_queued_reboot_target_is_a_reboot() {
        let jobs = "1210 reboot.target start waiting\n1213 vigil-agent.service stop running\n";
        assert_eq!(
            reason_from_systemd(&state(jobs, "stopping")),
            GoodbyeReason::Reboot
        );
    }

    #[test]
    fn a_queued_poweroff_target_is_a_shutdown() {
        let jobs = "880 poweroff.target start waiting\n881 vigil-agent.service stop running\n";
        assert_eq!(
            reason_from_systemd(&state(jobs, "running")),
            GoodbyeReason::Shutdown
        );
    }

    #[test]
    fn a_stopping_system_without_a_known_target_is_a_shutdown() {
        assert_eq!(
            reason_from_systemd(&state("", "stopping\n")),
            GoodbyeReason::Shutdown
        );
    }

    #[test]
    fn stopping_only_the_agent_is_a_service_stop() {
        let jobs = "77 vigil-agent.service stop running\n";
        assert_eq!(
            reason_from_systemd(&state(jobs, "degraded")),
            GoodbyeReason::ServiceStop
        );
        assert_eq!(
            reason_from_systemd(&SystemdState::default()),
            GoodbyeReason::ServiceStop
        );
    }

    #[test]
    fn a_unit_merely_named_like_a_target_does_not_count() {
        let jobs = "90 my-reboot.target-helper.service start running\n";
        assert_eq!(
            reason_from_systemd(&state(jobs, "running")),
            GoodbyeReason::ServiceStop
        );
    }

    #[test]
    fn windows_shutdown_controls_are_shutdowns_and_suspend_is_sleep() {
        use ServiceControlEvent::*;
        let stop = |reason| ControlAction::Stop(reason);
        assert_eq!(
            action_for_service_control(Stop),
            stop(GoodbyeReason::ServiceStop)
        );
        assert_eq!(
            action_for_service_control(Preshutdown),
            stop(GoodbyeReason::Shutdown)
        );
        assert_eq!(
            action_for_service_control(Shutdown),
            stop(GoodbyeReason::Shutdown)
        );
        assert_eq!(action_for_service_control(Suspend), ControlAction::Sleep);
        assert_eq!(action_for_service_control(Resume), ControlAction::Resume);
        assert_eq!(
            action_for_service_control(OtherPowerEvent),
            ControlAction::Nothing
        );
    }

    #[test]
    fn the_reason_set_before_the_stop_is_the_one_read() {
        let reason = StopReason::default();
        assert_eq!(reason.get(), GoodbyeReason::ServiceStop);
        reason.clone().set(GoodbyeReason::Reboot);
        assert_eq!(reason.get(), GoodbyeReason::Reboot);
    }
}
