//! Staleness rules: a timestamp metric (the last successful backup) that must keep moving.
//! The job's own cadence sets the bar: once two successes have been seen, the alert warns
//! when the age passes the slowest recent interval plus a tolerance (a twentieth of the
//! cadence, a tenth while only one interval is known, at least 30 minutes) and turns
//! critical when two runs have been missed. Until then the rule's `max_age` is the bar.

use crate::alert::kinds::Verdict;
use crate::alert::rule::{Severity, Staleness};
use crate::alert::summary;
use crate::alert::trend::median;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

const KEPT_SUCCESSES: usize = 10;
const MIN_TOLERANCE_MS: f64 = 30.0 * 60_000.0;
const TOLERANCE_SHARE: f64 = 0.05;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StalenessState {
    /// Times of the successes seen, in milliseconds, oldest first.
    successes_ms: VecDeque<i64>,
}

/// Records a sample whose value is the time of the last success in seconds.
pub fn observe(state: &mut StalenessState, value_seconds: f64) {
    if !value_seconds.is_finite() || value_seconds <= 0.0 {
        return;
    }
    let success_ms = (value_seconds * 1000.0).round() as i64;
    if state
        .successes_ms
        .back()
        .is_some_and(|&last| success_ms <= last + 500)
    {
        return;
    }
    state.successes_ms.push_back(success_ms);
    if state.successes_ms.len() > KEPT_SUCCESSES {
        state.successes_ms.pop_front();
    }
}

/// The bars for a warning and for critical, and the cadence if known.
fn bars(rule: &Staleness, state: &StalenessState) -> (f64, f64, Option<f64>) {
    let intervals: Vec<f64> = state
        .successes_ms
        .iter()
        .zip(state.successes_ms.iter().skip(1))
        .map(|(a, b)| (b - a) as f64)
        .collect();
    if intervals.is_empty() {
        let max_age = rule.max_age.as_millis() as f64;
        return (max_age, 2.0 * max_age, None);
    }
    let slowest = intervals.iter().copied().fold(0.0, f64::max);
    let cadence = median(&mut intervals.clone()).unwrap_or(slowest);
    // One interval says nothing of the job's jitter: allow twice the usual share.
    let share = if intervals.len() == 1 {
        2.0 * TOLERANCE_SHARE
    } else {
        TOLERANCE_SHARE
    };
    let tolerance = (share * cadence).max(MIN_TOLERANCE_MS);
    (
        slowest + tolerance,
        (2.0 * cadence).max(slowest) + tolerance,
        Some(cadence),
    )
}

pub fn judge(rule: &Staleness, state: &StalenessState, now_ms: i64) -> Option<Verdict> {
    let last = *state.successes_ms.back()?;
    let age = (now_ms - last) as f64;
    let (warn_after, critical_after, cadence) = bars(rule, state);
    if age < warn_after {
        return None;
    }
    let severity = if age >= critical_after {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let expected = match cadence {
        Some(cadence) => format!("it usually succeeds every {}", summary::duration(cadence)),
        None => "no regular schedule seen yet".to_owned(),
    };
    Some(
        Verdict::new(severity)
            .with("age", summary::duration(age))
            .with("expected", expected)
            .with("last_success", summary::utc_time(last)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::Signal;
    use std::time::Duration;

    const HOUR_S: f64 = 3600.0;
    const HOUR_MS: i64 = 3_600_000;

    fn rule() -> Staleness {
        Staleness {
            signal: Signal::metric("backup_last_success_timestamp_seconds"),
            max_age: Duration::from_secs(36 * 3600),
        }
    }

    /// A job that succeeds every `cadence_h` hours with a little jitter.
    fn with_successes(cadence_h: f64, n: usize) -> StalenessState {
        let mut state = StalenessState::default();
        for i in 0..n {
            let jitter = [0.0, 0.3, -0.2, 0.5, 0.1][i % 5];
            observe(&mut state, 1.7e9 + (i as f64 * cadence_h + jitter) * HOUR_S);
        }
        state
    }

    #[test]
    fn a_daily_job_is_stale_soon_after_its_usual_time_passes() {
        let rule = rule();
        let state = with_successes(24.0, 6);
        let last_ms = *state.successes_ms.back().unwrap();
        assert!(judge(&rule, &state, last_ms + 24 * HOUR_MS).is_none());
        let verdict = judge(&rule, &state, last_ms + 27 * HOUR_MS).unwrap();
        assert_eq!(verdict.severity, Severity::Warning);
        assert_eq!(
            judge(&rule, &state, last_ms + 50 * HOUR_MS)
                .unwrap()
                .severity,
            Severity::Critical
        );
    }

    #[test]
    fn a_weekly_job_is_judged_by_its_own_cadence() {
        let rule = rule();
        let state = with_successes(7.0 * 24.0, 4);
        let last_ms = *state.successes_ms.back().unwrap();
        // Three days without a success is normal for a weekly job, unlike a daily one.
        assert!(judge(&rule, &state, last_ms + 72 * HOUR_MS).is_none());
        assert!(judge(&rule, &state, last_ms + 8 * 24 * HOUR_MS).is_some());
    }

    #[test]
    fn one_interval_is_enough_to_learn_a_weekly_cadence() {
        let rule = rule();
        let state = with_successes(7.0 * 24.0, 2);
        let last_ms = *state.successes_ms.back().unwrap();
        assert!(judge(&rule, &state, last_ms + 5 * 24 * HOUR_MS).is_none());
        assert!(judge(&rule, &state, last_ms + 8 * 24 * HOUR_MS).is_some());
    }

    #[test]
    fn without_a_known_cadence_max_age_is_the_bar() {
        let rule = rule();
        let state = with_successes(24.0, 1);
        let last_ms = *state.successes_ms.back().unwrap();
        assert!(judge(&rule, &state, last_ms + 30 * HOUR_MS).is_none());
        assert!(judge(&rule, &state, last_ms + 37 * HOUR_MS).is_some());
    }

    #[test]
    fn the_same_success_reported_again_is_not_a_new_one() {
        let mut state = StalenessState::default();
        for _ in 0..100 {
            observe(&mut state, 1_700_000_000.0);
        }
        assert_eq!(state.successes_ms.len(), 1);
    }
}
