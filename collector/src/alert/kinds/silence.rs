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
    /// Typical gap between the series' samples (some, like SMART, are read less often).
    pub interval_ms: Option<i64>,
}

impl SeriesSilentState {
    pub fn observe(&mut self, timestamp_ms: i64) {
        match self.last_ms {
            Some(last) if timestamp_ms > last => {
                let gap = (timestamp_ms - last).min(24 * 3_600_000);
                self.interval_ms = Some(self.interval_ms.map_or(gap, |i| (9 * i + gap) / 10));
                self.last_ms = Some(timestamp_ms);
            }
            Some(_) => {}
            None => self.last_ms = Some(timestamp_ms),
        }
    }
}

/// What the engine knows of a host's reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reporting {
    pub last_seen_ms: i64,
    /// Typical gap between the host's arrivals.
    pub interval_ms: i64,
    /// The host said goodbye and has not reported since.
    pub offline: bool,
    /// When it said it was rebooting, if that was its goodbye.
    pub rebooting_since_ms: Option<i64>,
}

impl Reporting {
    /// How long without a sample before the host counts as silent: `after` past the
    /// sample that was due, and never less than three of its intervals.
    pub fn silent_after_ms(&self, rule: &HostSilent) -> i64 {
        (rule.after.as_millis() as i64 + self.interval_ms).max(3 * self.interval_ms)
    }

    pub fn is_silent(&self, rule: &HostSilent, now_ms: i64) -> bool {
        let away_with_reason = self.offline && !self.reboot_overdue(rule, now_ms);
        !away_with_reason && now_ms - self.last_seen_ms >= self.silent_after_ms(rule)
    }

    /// Whether it went down for a reboot longer ago than the rule allows.
    fn reboot_overdue(&self, rule: &HostSilent, now_ms: i64) -> bool {
        self.offline
            && self
                .rebooting_since_ms
                .is_some_and(|since| now_ms - since >= rule.reboot_grace.as_millis() as i64)
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
    let note = match host.rebooting_since_ms {
        Some(since) if host.reboot_overdue(rule, now_ms) => format!(
            "; it went down for a reboot at {} and has not come back",
            summary::utc_time(since)
        ),
        _ => String::new(),
    };
    let mut verdict = Verdict::new(Severity::Critical)
        .with(
            "silent_for",
            summary::duration((now_ms - host.last_seen_ms) as f64),
        )
        .with("last_seen", summary::utc_time(host.last_seen_ms))
        .with("note", note);
    // The silence began with the last sample, not when it became long enough to tell.
    verdict.began_ms = Some(host.last_seen_ms);
    Some(verdict)
}

pub fn judge_series(
    rule: &SeriesSilent,
    state: &SeriesSilentState,
    host: &Reporting,
    now_ms: i64,
) -> Option<Verdict> {
    let last = state.last_ms?;
    let silent_for = now_ms - last;
    let after = (rule.after.as_millis() as i64).max(3 * state.interval_ms.unwrap_or(0));
    if !host.is_alive(now_ms) || silent_for < after {
        return None;
    }
    let mut verdict =
        Verdict::new(rule.severity).with("silent_for", summary::duration(silent_for as f64));
    verdict.began_ms = Some(last);
    Some(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule() -> HostSilent {
        HostSilent {
            after: Duration::from_secs(300),
            reboot_grace: Duration::from_secs(1800),
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
            rebooting_since_ms: None,
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
            rebooting_since_ms: None,
        };
        assert!(judge_host(&rule(), &host, 3_600_000).is_none());
    }

    #[test]
    fn a_series_read_every_half_hour_is_not_silent_between_reads() {
        let rule = SeriesSilent {
            signal: crate::alert::rule::Signal::metric("disk_smart_healthy"),
            after: Duration::from_secs(600),
            severity: Severity::Critical,
        };
        let mut state = SeriesSilentState::default();
        for read in 0..10 {
            state.observe(read * 1_800_000);
        }
        let host = Reporting {
            last_seen_ms: 18_000_000,
            interval_ms: 60_000,
            offline: false,
            rebooting_since_ms: None,
        };
        assert!(judge_series(&rule, &state, &host, 18_000_000).is_none());
        assert!(judge_series(&rule, &state, &host, 16_200_000 + 5_400_000).is_none());
        let host = Reporting {
            last_seen_ms: 21_700_000,
            ..host
        };
        assert!(judge_series(&rule, &state, &host, 21_700_000).is_some());
    }

    #[test]
    fn a_slow_host_gets_three_of_its_intervals() {
        let host = Reporting {
            last_seen_ms: 0,
            interval_ms: 300_000,
            offline: false,
            rebooting_since_ms: None,
        };
        assert!(judge_host(&rule(), &host, 599_000).is_none());
        assert!(judge_host(&rule(), &host, 900_000).is_some());
    }
}
