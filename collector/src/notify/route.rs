//! Which channels hear of an alert and when, and how long to wait before trying again. Pure
//! functions of their arguments: no clock, no files, no network.
//!
//! The contract's [`Route`] decides the timing; the client's [`ChannelRouting`] names the
//! channels:
//! - `Now` — at once, to the on-call channels (the normal ones if there are none). An
//!   emergency also escalates to the escalation channels when its response is due and
//!   nobody has acknowledged it.
//! - `BusinessHours` — at once, to the normal channels.
//! - `NextBusinessMorning { at }` — into the client's digest due at `at`, one message per
//!   channel for all the alerts that waited.
//! - `HeldForMaintenance { until }` — nothing now; the pipeline classifies again at `until`.
//!
//! A resolve follows its firing: to the same channels, or into the same digest if that has
//! not gone out yet. A resolve of an alert nobody heard of (held, never delivered) is dropped.

use super::config::ChannelRouting;
use super::outbox::OpenAlertRecord;
use crate::policy::{Classification, ContractSeverity, Route};
use std::time::Duration;

/// What to do with one transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Send to `channels` at once.
    Now {
        channels: Vec<String>,
        /// For an unacknowledged emergency: when, and to whom.
        escalation: Option<Escalation>,
    },
    /// Add to the client's digest due at `at_ms`, for `channels`.
    Digest { channels: Vec<String>, at_ms: i64 },
    /// Nothing now: held by maintenance until `until_ms`; classify again then.
    Held { until_ms: i64 },
    /// Nothing at all (a resolve nobody needs to hear of, or no channels configured).
    Drop,
}

/// An emergency's escalation, if nobody acknowledges it in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub at_ms: i64,
    pub channels: Vec<String>,
}

/// The plan for a firing alert classified as `classification`.
pub fn plan_firing(classification: &Classification, routing: &ChannelRouting) -> Plan {
    let normal = routing.normal.clone();
    let plan = match classification.route {
        Route::Now => {
            let channels = if routing.on_call.is_empty() {
                normal
            } else {
                routing.on_call.clone()
            };
            let escalation = (classification.contract_severity == ContractSeverity::Emergency
                && !routing.escalation.is_empty())
            .then(|| Escalation {
                at_ms: classification.response_due.as_millisecond(),
                channels: routing.escalation.clone(),
            });
            Plan::Now {
                channels,
                escalation,
            }
        }
        Route::BusinessHours => Plan::Now {
            channels: normal,
            escalation: None,
        },
        Route::NextBusinessMorning { at } => Plan::Digest {
            channels: normal,
            at_ms: at.as_millisecond(),
        },
        Route::HeldForMaintenance { until } => {
            return Plan::Held {
                until_ms: until.as_millisecond(),
            }
        }
    };
    match &plan {
        Plan::Now { channels, .. } | Plan::Digest { channels, .. } if channels.is_empty() => {
            Plan::Drop
        }
        _ => plan,
    }
}

/// The plan for a resolve, given what its firing did (`None`: it was never sent).
pub fn plan_resolved(previous: Option<&OpenAlertRecord>, now_ms: i64) -> Plan {
    match previous {
        None => Plan::Drop,
        Some(record) => match record.digest_at_ms {
            Some(at_ms) if at_ms > now_ms => Plan::Digest {
                channels: record.channels.clone(),
                at_ms,
            },
            _ => Plan::Now {
                channels: record.channels.clone(),
                escalation: None,
            },
        },
    }
}

/// Whether an open alert is due to escalate at `now_ms`.
pub fn escalation_due(record: &OpenAlertRecord, acknowledged: bool, now_ms: i64) -> bool {
    !acknowledged
        && !record.escalated
        && !record.escalation_channels.is_empty()
        && record.escalate_at_ms.is_some_and(|at| at <= now_ms)
}

/// Retry timing: exponential from `min` doubling each attempt up to `max`, stretched by a
/// jitter of up to a quarter that is derived from the delivery's key, so that deliveries
/// that failed together do not retry together and a test can predict the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// Attempts before a delivery is given up and moved to `dead/`.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(10),
            max: Duration::from_secs(3600),
            attempts: 12,
        }
    }
}

impl Backoff {
    /// How long to wait after the `attempt`-th failed attempt (1-based).
    pub fn delay(&self, attempt: u32, key: &str) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let base = self.min.saturating_mul(1u32 << doublings).min(self.max);
        let seed = super::message::sha256(format!("{key}\u{0}{attempt}").as_bytes());
        let jitter = f64::from(seed[0]) / 255.0 * 0.25;
        base.mul_f64(1.0 + jitter).min(self.max).max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyVersionId;
    use jiff::Timestamp;

    fn routing() -> ChannelRouting {
        ChannelRouting {
            on_call: vec!["pager".into()],
            normal: vec!["mail".into(), "teams".into()],
            escalation: vec!["owner-phone".into()],
        }
    }

    fn classified(severity: ContractSeverity, route: Route) -> Classification {
        Classification {
            contract_severity: severity,
            host_role: Some("server".into()),
            route,
            response_due: Timestamp::from_second(7_200).unwrap(),
            policy_version: PolicyVersionId {
                client: "dental".into(),
                version: 2,
                digest: "sha256:00".into(),
            },
            rule: None,
            accepted_risk: None,
            reclassify_at: None,
            reasons: vec![],
            client_name: None,
            time_zone: None,
        }
    }

    #[test]
    fn an_emergency_goes_to_the_on_call_channels_and_escalates_at_its_response_time() {
        let plan = plan_firing(
            &classified(ContractSeverity::Emergency, Route::Now),
            &routing(),
        );
        assert_eq!(
            plan,
            Plan::Now {
                channels: vec!["pager".into()],
                escalation: Some(Escalation {
                    at_ms: 7_200_000,
                    channels: vec!["owner-phone".into()]
                }),
            }
        );
    }

    #[test]
    fn a_covered_critical_after_hours_pages_but_does_not_escalate() {
        let plan = plan_firing(
            &classified(ContractSeverity::Critical, Route::Now),
            &routing(),
        );
        assert_eq!(
            plan,
            Plan::Now {
                channels: vec!["pager".into()],
                escalation: None
            }
        );
    }

    #[test]
    fn without_on_call_channels_an_emergency_uses_the_normal_ones() {
        let mut routing = routing();
        routing.on_call.clear();
        let plan = plan_firing(
            &classified(ContractSeverity::Emergency, Route::Now),
            &routing,
        );
        assert!(
            matches!(&plan, Plan::Now { channels, .. } if channels == &["mail", "teams"]),
            "{plan:?}"
        );
    }

    #[test]
    fn within_business_hours_a_warning_goes_to_the_normal_channels_at_once() {
        let plan = plan_firing(
            &classified(ContractSeverity::Warning, Route::BusinessHours),
            &routing(),
        );
        assert_eq!(
            plan,
            Plan::Now {
                channels: vec!["mail".into(), "teams".into()],
                escalation: None
            }
        );
    }

    #[test]
    fn after_hours_a_warning_waits_for_the_morning_digest() {
        let at = Timestamp::from_second(30_000).unwrap();
        let plan = plan_firing(
            &classified(ContractSeverity::Warning, Route::NextBusinessMorning { at }),
            &routing(),
        );
        assert_eq!(
            plan,
            Plan::Digest {
                channels: vec!["mail".into(), "teams".into()],
                at_ms: 30_000_000
            }
        );
    }

    #[test]
    fn a_maintenance_hold_sends_nothing_now() {
        let until = Timestamp::from_second(40_000).unwrap();
        let plan = plan_firing(
            &classified(
                ContractSeverity::Emergency,
                Route::HeldForMaintenance { until },
            ),
            &routing(),
        );
        assert_eq!(
            plan,
            Plan::Held {
                until_ms: 40_000_000
            }
        );
    }

    #[test]
    fn a_resolve_follows_its_firing_into_a_digest_not_yet_sent() {
        let record = OpenAlertRecord {
            alert: crate::notify::test_alert::sample_alert(0),
            channels: vec!["mail".into()],
            digest_at_ms: Some(1_000),
            escalate_at_ms: None,
            escalation_channels: vec![],
            escalated: false,
        };
        assert_eq!(
            plan_resolved(Some(&record), 500),
            Plan::Digest {
                channels: vec!["mail".into()],
                at_ms: 1_000
            }
        );
        assert_eq!(
            plan_resolved(Some(&record), 2_000),
            Plan::Now {
                channels: vec!["mail".into()],
                escalation: None
            }
        );
        assert_eq!(plan_resolved(None, 2_000), Plan::Drop);
    }

    #[test]
    fn an_acknowledged_emergency_does_not_escalate() {
        let record = OpenAlertRecord {
            alert: crate::notify::test_alert::sample_alert(0),
            channels: vec!["pager".into()],
            digest_at_ms: None,
            escalate_at_ms: Some(1_000),
            escalation_channels: vec!["owner-phone".into()],
            escalated: false,
        };
        assert!(!escalation_due(&record, false, 999));
        assert!(escalation_due(&record, false, 1_000));
        assert!(!escalation_due(&record, true, 1_000));
        let escalated = OpenAlertRecord {
            escalated: true,
            ..record
        };
        assert!(!escalation_due(&escalated, false, 5_000));
    }

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_maximum_with_bounded_jitter() {
        let backoff = Backoff::default();
        let third = backoff.delay(3, "k");
        assert!(third >= Duration::from_secs(40) && third <= Duration::from_secs(50));
        assert_eq!(backoff.delay(3, "k"), third, "the same key waits the same");
        assert_eq!(backoff.delay(20, "k"), Duration::from_secs(3600));
        assert!(backoff.delay(1, "k") >= Duration::from_secs(10));
    }
}
