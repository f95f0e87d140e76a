//! The life of one alert instance: inactive → pending → firing → resolved, with a pending
//! time, a clear time, flap damping and acknowledgement. Fed a condition (or its absence)
//! at a point in time; says which state change, if any, happened.
//!
//! Flap damping: an alert that fires again soon after it resolved has its clear time
//! doubled for each such recent resolve (up to 8×), so a condition that comes and goes
//! keeps one alert open instead of paging on every swing.

use crate::alert::kinds::AlertDetails;
use crate::alert::rule::Severity;
use serde::{Deserialize, Serialize};

/// An active condition as a rule sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub severity: Severity,
    pub summary: String,
    /// How long the condition must hold before the alert fires.
    pub pending_for_ms: i64,
    /// The numbers behind it.
    pub details: AlertDetails,
    /// When it began, if before it was first seen (see [`crate::alert::kinds::Verdict`]).
    pub began_ms: Option<i64>,
}

/// Who acknowledged a firing alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Inactive,
    Pending {
        since_ms: i64,
    },
    Firing {
        since_ms: i64,
        /// When the condition began: the pending period's start, or earlier when the kind
        /// knows better (a silence began at the last sample). Older snapshots lack it.
        #[serde(default)]
        began_ms: Option<i64>,
        severity: Severity,
        summary: String,
        /// When the condition was last seen clear while firing, if it still is.
        clear_since_ms: Option<i64>,
        acknowledged: Option<Acknowledgement>,
    },
}

/// What a step changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Fired { severity: Severity, summary: String },
    Escalated { severity: Severity, summary: String },
    Resolved { severity: Severity, summary: String },
}

/// Resolves within this long count as recent for flap damping.
const FLAP_WINDOW_MS: i64 = 6 * 3_600_000;
const MAX_DAMPING_DOUBLINGS: u32 = 3;
const KEPT_RESOLVES: usize = 8;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    pub phase: Phase,
    /// Times of recent resolves, newest last.
    recent_resolves_ms: Vec<i64>,
}

impl Lifecycle {
    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// When the condition of a pending or firing alert began.
    pub fn began_ms(&self) -> Option<i64> {
        match &self.phase {
            Phase::Inactive => None,
            Phase::Pending { since_ms } => Some(*since_ms),
            Phase::Firing {
                since_ms, began_ms, ..
            } => Some(began_ms.unwrap_or(*since_ms)),
        }
    }

    pub fn firing_severity(&self) -> Option<Severity> {
        match &self.phase {
            Phase::Firing { severity, .. } => Some(*severity),
            _ => None,
        }
    }

    /// Advances to `now_ms` with the condition as it is now (`None`: clear).
    pub fn step(
        &mut self,
        now_ms: i64,
        condition: Option<&Condition>,
        clear_for_ms: i64,
    ) -> Option<Change> {
        let damped_clear_for_ms = self.damped_clear_for(now_ms, clear_for_ms);
        match (condition, &mut self.phase) {
            (Some(condition), Phase::Inactive) => {
                self.phase = Phase::Pending { since_ms: now_ms };
                self.fire_if_due(now_ms, condition)
            }
            (Some(condition), Phase::Pending { .. }) => self.fire_if_due(now_ms, condition),
            (
                Some(condition),
                Phase::Firing {
                    severity,
                    summary,
                    clear_since_ms,
                    ..
                },
            ) => {
                *clear_since_ms = None;
                *summary = condition.summary.clone();
                if condition.severity > *severity {
                    *severity = condition.severity;
                    return Some(Change::Escalated {
                        severity: condition.severity,
                        summary: condition.summary.clone(),
                    });
                }
                None
            }
            (None, Phase::Inactive) => None,
            (None, Phase::Pending { .. }) => {
                self.phase = Phase::Inactive;
                None
            }
            (
                None,
                Phase::Firing {
                    severity,
                    summary,
                    clear_since_ms,
                    ..
                },
            ) => {
                let clear_since = *clear_since_ms.get_or_insert(now_ms);
                if now_ms - clear_since < damped_clear_for_ms {
                    return None;
                }
                let change = Change::Resolved {
                    severity: *severity,
                    summary: std::mem::take(summary),
                };
                self.phase = Phase::Inactive;
                self.recent_resolves_ms.push(now_ms);
                if self.recent_resolves_ms.len() > KEPT_RESOLVES {
                    self.recent_resolves_ms.remove(0);
                }
                Some(change)
            }
        }
    }

    fn fire_if_due(&mut self, now_ms: i64, condition: &Condition) -> Option<Change> {
        let Phase::Pending { since_ms } = self.phase else {
            return None;
        };
        if now_ms - since_ms < condition.pending_for_ms {
            return None;
        }
        let began_ms = condition
            .began_ms
            .map_or(since_ms, |began| began.min(since_ms));
        self.phase = Phase::Firing {
            since_ms: now_ms,
            began_ms: Some(began_ms),
            severity: condition.severity,
            summary: condition.summary.clone(),
            clear_since_ms: None,
            acknowledged: None,
        };
        Some(Change::Fired {
            severity: condition.severity,
            summary: condition.summary.clone(),
        })
    }

    /// The clear time, doubled for each resolve in the flap window before the current
    /// firing began.
    fn damped_clear_for(&self, now_ms: i64, clear_for_ms: i64) -> i64 {
        let recent = self
            .recent_resolves_ms
            .iter()
            .filter(|&&at| now_ms - at <= FLAP_WINDOW_MS)
            .count() as u32;
        let doublings = recent.min(MAX_DAMPING_DOUBLINGS);
        let base = clear_for_ms.max(if recent > 0 { 60_000 } else { 0 });
        base << doublings
    }

    /// Records that a person has seen the alert. Only a firing alert can be acknowledged;
    /// the acknowledgement ends when the alert resolves.
    pub fn acknowledge(&mut self, by: &str, at_ms: i64) -> bool {
        match &mut self.phase {
            Phase::Firing { acknowledged, .. } => {
                *acknowledged = Some(Acknowledgement {
                    by: by.to_owned(),
                    at_ms,
                });
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(severity: Severity, pending_for_ms: i64) -> Condition {
        Condition {
            severity,
            summary: "something".into(),
            pending_for_ms,
            details: AlertDetails::default(),
            began_ms: None,
        }
    }

    #[test]
    fn an_alert_goes_pending_then_firing_then_resolved() {
        let mut life = Lifecycle::default();
        let active = condition(Severity::Warning, 300_000);
        assert_eq!(life.step(0, Some(&active), 0), None);
        assert!(matches!(life.phase, Phase::Pending { since_ms: 0 }));
        assert_eq!(life.step(240_000, Some(&active), 0), None);
        assert!(matches!(
            life.step(300_000, Some(&active), 0),
            Some(Change::Fired {
                severity: Severity::Warning,
                ..
            })
        ));
        assert_eq!(life.step(360_000, Some(&active), 0), None, "no duplicate");
        assert!(matches!(
            life.step(420_000, None, 0),
            Some(Change::Resolved { .. })
        ));
        assert_eq!(life.phase, Phase::Inactive);
    }

    #[test]
    fn a_condition_that_lapses_while_pending_starts_over() {
        let mut life = Lifecycle::default();
        let active = condition(Severity::Critical, 300_000);
        life.step(0, Some(&active), 0);
        life.step(200_000, None, 0);
        life.step(250_000, Some(&active), 0);
        assert_eq!(life.step(500_000, Some(&active), 0), None);
        assert!(life.step(550_000, Some(&active), 0).is_some());
    }

    #[test]
    fn a_higher_severity_escalates_a_firing_alert_once() {
        let mut life = Lifecycle::default();
        life.step(0, Some(&condition(Severity::Warning, 0)), 0);
        let worse = condition(Severity::Critical, 0);
        assert!(matches!(
            life.step(10, Some(&worse), 0),
            Some(Change::Escalated {
                severity: Severity::Critical,
                ..
            })
        ));
        assert_eq!(life.step(20, Some(&worse), 0), None);
        // A milder condition does not de-escalate an open alert.
        assert_eq!(
            life.step(30, Some(&condition(Severity::Warning, 0)), 0),
            None
        );
        assert_eq!(life.firing_severity(), Some(Severity::Critical));
    }

    #[test]
    fn a_firing_alert_resolves_only_after_the_clear_time() {
        let mut life = Lifecycle::default();
        let active = condition(Severity::Warning, 0);
        life.step(0, Some(&active), 0);
        assert_eq!(life.step(1_000, None, 600_000), None);
        // The condition comes back before the clear time: still one open alert.
        assert_eq!(life.step(300_000, Some(&active), 600_000), None);
        assert_eq!(life.step(400_000, None, 600_000), None);
        assert!(matches!(
            life.step(1_000_000, None, 600_000),
            Some(Change::Resolved { .. })
        ));
    }

    #[test]
    fn flapping_doubles_the_clear_time_after_each_recent_resolve() {
        let mut life = Lifecycle::default();
        let active = condition(Severity::Warning, 0);
        let clear_for = 60_000;
        let mut t = 0;
        let mut resolve_delays = Vec::new();
        for _ in 0..3 {
            assert!(matches!(
                life.step(t, Some(&active), clear_for),
                Some(Change::Fired { .. })
            ));
            let cleared_at = t + 10_000;
            let mut now = cleared_at;
            loop {
                if let Some(Change::Resolved { .. }) = life.step(now, None, clear_for) {
                    break;
                }
                now += 10_000;
            }
            resolve_delays.push(now - cleared_at);
            t = now + 10_000;
        }
        assert_eq!(resolve_delays, vec![60_000, 120_000, 240_000]);
    }

    #[test]
    fn only_a_firing_alert_can_be_acknowledged() {
        let mut life = Lifecycle::default();
        assert!(!life.acknowledge("ann", 0));
        life.step(0, Some(&condition(Severity::Warning, 0)), 0);
        assert!(life.acknowledge("ann", 5));
        match &life.phase {
            Phase::Firing { acknowledged, .. } => {
                assert_eq!(acknowledged.as_ref().unwrap().by, "ann")
            }
            other => panic!("{other:?}"),
        }
    }
}
