//! Absence rules: a host that sends nothing, and a series that stops while its host keeps
//! reporting. Silence is judged by arrival, with sense: a host that said goodbye is offline,
//! not down; after the collector itself starts, hosts get a grace period; and the delay
//! before "silent" counts from the sample that was due and is at least three of the host's
//! own sampling intervals, so a flaky uplink's dropped scrapes are not an outage.

use crate::alert::kinds::Verdict;
use crate::alert::rule::{HostSilent, SeriesSilent, Severity};
use crate::alert::summary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostSilentState {}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeriesSilentState {
    pub last_ms: Option<i64>,
}

/// What the engine knows of a host's reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reporting {
    pub last_seen_ms: i64,
    /// Typical gap between the host's arrivals.
    pub interval_ms: i64,
    /// The host said goodbye and has not reported since.
    pub offline: bool,
}

impl Reporting {
    /// How long without a sample before the host counts as silent: `after` past the
    /// sample that was due, and never less than three of its intervals.
    pub fn silent_after_ms(&self, rule: &HostSilent) -> i64 {
        (rule.after.as_millis() as i64 + self.interval_ms).max(3 * self.interval_ms)
    }

    pub fn is_silent(&self, rule: &HostSilent, now_ms: i64) -> bool {
        !self.offline && now_ms - self.last_seen_ms >= self.silent_after_ms(rule)
    }

    /// Whether the host reported within the last few of its intervals.
    pub fn is_alive(&self, now_ms: i64) -> bool {
        now_ms - self.last_seen_ms <= (3 * self.interval_ms).max(120_000)
    }
}

pub fn judge_host(rule: &HostSilent, host: &Reporting, now_ms: i64) -> Option<Verdict> {
    if !host.is_silent(rule, now_ms) {
        return None;
    }
    Some(
        Verdict::new(Severity::Critical)
            .with(
                "silent_for",
                summary::duration((now_ms - host.last_seen_ms) as f64),
            )
            .with("last_seen", summary::utc_time(host.last_seen_ms)),
    )
}

pub fn judge_series(
    rule: &SeriesSilent,
    state: &SeriesSilentState,
    host: &Reporting,
    now_ms: i64,
) -> Option<Verdict> {
    let last = state.last_ms?;
    let silent_for = now_ms - last;
    if !host.is_alive(now_ms) || silent_for < rule.after.as_millis() as i64 {
        return None;
    }
    Some(Verdict::new(rule.severity).with("silent_for", summary::duration(silent_for as f64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule() -> HostSilent {
        HostSilent {
            after: Duration::from_secs(300),
            site_share: 0.5,
            site_min_hosts: 3,
        }
    }

    #[test]
    fn a_gap_shorter_than_the_grace_is_not_silence() {
        let host = Reporting {
            last_seen_ms: 0,
            interval_ms: 10_000,
            offline: false,
        };
        assert!(judge_host(&rule(), &host, 300_000).is_none());
        assert!(judge_host(&rule(), &host, 310_000).is_some());
    }

    #[test]
    fn a_host_that_said_goodbye_is_offline_not_silent() {
        let host = Reporting {
            last_seen_ms: 0,
            interval_ms: 60_000,
            offline: true,
        };
        assert!(judge_host(&rule(), &host, 3_600_000).is_none());
    }

    #[test]
    fn a_slow_host_gets_three_of_its_intervals() {
        let host = Reporting {
            last_seen_ms: 0,
            interval_ms: 300_000,
            offline: false,
        };
        assert!(judge_host(&rule(), &host, 599_000).is_none());
        assert!(judge_host(&rule(), &host, 900_000).is_some());
    }
}
