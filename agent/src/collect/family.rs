//! Failure isolation between metric families: a family that returns an error or panics is
//! left out of the tick, logged once when it starts failing and once when it recovers, and
//! never takes the rest of the tick down with it.
//!
//! Warning once per failure streak, rather than every tick, keeps a machine without (say)
//! temperature sensors from writing the same line every ten seconds for months.

use super::series::SeriesSink;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use vigil_proto::model::Series;

/// Why a family wrote nothing this tick.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FamilyError {
    /// The operating system did not give the numbers the family needs.
    #[error("{0}")]
    Unavailable(String),
    /// The family's code or a library under it panicked; caught so the tick goes on.
    #[error("panicked: {0}")]
    Panicked(String),
}

impl FamilyError {
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable(reason.into())
    }
}

/// Which families are failing right now, so each streak is logged once.
#[derive(Debug, Default)]
pub(crate) struct FamilyHealth {
    failing: HashSet<String>,
}

impl FamilyHealth {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Runs one family into a sink of its own and appends what it wrote to `tick` only if it
    /// succeeded: a family that fails half-way leaves no half of its series behind.
    pub(crate) fn run(
        &mut self,
        family: &str,
        timestamp_ms: i64,
        tick: &mut Vec<Series>,
        collect_family: impl FnOnce(&mut SeriesSink) -> Result<(), FamilyError>,
    ) {
        let mut sink = SeriesSink::new(timestamp_ms);
        // AssertUnwindSafe: after a panic the sink is dropped unread, and the sysinfo
        // handles the closure borrows at worst hold stale numbers that the next refresh
        // replaces; nothing is left in a state that would make later ticks wrong.
        let outcome = catch_unwind(AssertUnwindSafe(|| collect_family(&mut sink)))
            .unwrap_or_else(|payload| Err(FamilyError::Panicked(panic_message(payload.as_ref()))));
        match outcome {
            Ok(()) => {
                if self.failing.remove(family) {
                    tracing::info!(family, "metric family recovered");
                }
                tick.extend(sink.into_series());
            }
            Err(error) => {
                if self.failing.insert(family.to_owned()) {
                    tracing::warn!(
                        family,
                        %error,
                        "metric family failed; leaving it out of each tick until it recovers"
                    );
                }
            }
        }
    }

    /// Forgets the failure streaks of families that no longer exist (a check removed from
    /// the config), so that they are not remembered for ever.
    pub(crate) fn forget_except(&mut self, exists: impl Fn(&str) -> bool) {
        self.failing.retain(|family| exists(family));
    }

    #[cfg(test)]
    pub(crate) fn is_failing(&self, family: &str) -> bool {
        self.failing.contains(family)
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_family_is_left_out_and_the_others_still_report() {
        let mut health = FamilyHealth::new();
        let mut tick = Vec::new();

        health.run("memory", 7, &mut tick, |sink| {
            sink.push("system_memory_limit_bytes", &[], 8.0);
            Ok(())
        });
        health.run("sensors", 7, &mut tick, |sink| {
            sink.push("system_temperature_celsius", &[("sensor", "cpu")], 50.0);
            Err(FamilyError::unavailable("no sensors"))
        });
        health.run("uptime", 7, &mut tick, |sink| {
            sink.push("system_uptime_seconds", &[], 100.0);
            Ok(())
        });

        let names: Vec<&str> = tick.iter().map(|series| series.name.as_str()).collect();
        assert_eq!(
            names,
            ["system_memory_limit_bytes", "system_uptime_seconds"]
        );
        assert!(health.is_failing("sensors"));
        assert!(!health.is_failing("memory"));
    }

    #[test]
    fn a_panicking_family_is_caught_and_recovers_on_a_later_tick() {
        let mut health = FamilyHealth::new();
        let mut tick = Vec::new();

        health.run("cpu", 1, &mut tick, |_| panic!("PDH function missing"));
        assert!(tick.is_empty());
        assert!(health.is_failing("cpu"));

        health.run("cpu", 2, &mut tick, |sink| {
            sink.push("system_cpu_utilization_ratio", &[], 0.5);
            Ok(())
        });
        assert_eq!(tick.len(), 1);
        assert!(!health.is_failing("cpu"));
    }

    #[test]
    fn panic_messages_are_kept_for_the_log() {
        let payload = catch_unwind(|| panic!("disk {} vanished", 3)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "disk 3 vanished");
    }
}
