//! Change rules: counters that should never rise, such as a drive's reallocated and pending
//! sectors and media errors (SMART 5, 197, 198 and NVMe media errors). Any increase is an
//! event, and events less than an hour apart are one incident (a pending sector and the
//! media error that revealed it). One incident can be a one-off; the alert warns when
//! incidents recur (`warn_after`, two by default), turns critical at `escalate_after`
//! within the window, and resolves after a quiet period.
//!
//! A decrease is not an event: pending sectors fall when the drive remaps them, and a
//! counter that starts again from a lower value has been reset (a new drive, a wrapped
//! counter), which becomes the new baseline. A value that comes back from zero to no more
//! than it was before (an agent that restarted and read the drive again, pending sectors
//! that return after a remap) is not an event either.

use crate::alert::kinds::Verdict;
use crate::alert::rule::{Change, Severity};
use crate::alert::summary;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Events kept per instance; recurring degradation needs only the recent ones.
const MAX_EVENTS: usize = 256;
/// Events closer than this to the previous one belong to the same incident.
const INCIDENT_GAP_MS: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeState {
    /// Per metric of the rule: its last value and the highest value seen.
    last: Vec<Last>,
    events: VecDeque<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Last {
    metric: String,
    value: f64,
    highest: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    at_ms: i64,
    metric: String,
    increase: f64,
    value: f64,
}

/// Records a sample of `metric`; returns whether it was an increase.
pub fn observe(state: &mut ChangeState, metric: &str, timestamp_ms: i64, value: f64) -> bool {
    if !value.is_finite() {
        return false;
    }
    let Some(last) = state.last.iter_mut().find(|last| last.metric == metric) else {
        state.last.push(Last {
            metric: metric.to_owned(),
            value,
            highest: value,
        });
        return false;
    };
    let previous = std::mem::replace(&mut last.value, value);
    let highest = last.highest;
    last.highest = highest.max(value);
    // Back from zero to no more than before (an agent that restarted and read the drive
    // again, pending sectors that return after a remap) is not news.
    let restored = previous == 0.0 && value <= highest;
    if value - previous < 1.0 || restored {
        return false;
    }
    state.events.push_back(Event {
        at_ms: timestamp_ms,
        metric: metric.to_owned(),
        increase: value - previous,
        value,
    });
    if state.events.len() > MAX_EVENTS {
        state.events.pop_front();
    }
    true
}

/// Judges the instance at `now_ms`.
pub fn judge(rule: &Change, state: &mut ChangeState, now_ms: i64) -> Option<Verdict> {
    let keep_ms = rule.window.max(rule.quiet_for).as_millis() as i64;
    while state
        .events
        .front()
        .is_some_and(|event| now_ms - event.at_ms > keep_ms)
    {
        state.events.pop_front();
    }
    let quiet_ms = rule.quiet_for.as_millis() as i64;
    let last_event = state.events.back()?;
    if now_ms - last_event.at_ms > quiet_ms {
        return None;
    }
    let window_ms = rule.window.as_millis() as i64;
    let in_window: Vec<&Event> = state
        .events
        .iter()
        .filter(|event| now_ms - event.at_ms <= window_ms)
        .collect();
    let incidents = 1 + in_window
        .windows(2)
        .filter(|pair| pair[1].at_ms - pair[0].at_ms > INCIDENT_GAP_MS)
        .count() as u32;
    if incidents < rule.warn_after {
        return None;
    }
    let severity = if incidents >= rule.escalate_after {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let first_ms = in_window.first().map_or(last_event.at_ms, |e| e.at_ms);
    let mut parts = Vec::new();
    for metric in &rule.signal.metrics {
        let events: Vec<&&Event> = in_window.iter().filter(|e| &e.metric == metric).collect();
        if let Some(last) = events.last() {
            let total: f64 = events.iter().map(|e| e.increase).sum();
            parts.push(format!(
                "{} +{} (now {})",
                readable_metric(metric),
                total,
                last.value
            ));
        }
    }
    let mut changes = parts.join(", ");
    if incidents > 1 {
        changes.push_str(&format!(
            " in {incidents} incidents over {}",
            summary::duration((now_ms - first_ms) as f64)
        ));
    }
    Some(
        Verdict::new(severity)
            .with("changes", changes)
            .with("count", incidents.to_string()),
    )
}

/// `disk_smart_media_errors_total` → `media errors`.
fn readable_metric(metric: &str) -> String {
    let trimmed = metric
        .trim_start_matches("disk_smart_")
        .trim_end_matches("_total");
    trimmed.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::Signal;
    use std::time::Duration;

    fn rule() -> Change {
        Change {
            signal: Signal {
                metrics: vec![
                    "disk_smart_reallocated_sectors".into(),
                    "disk_smart_pending_sectors".into(),
                ],
                matchers: Default::default(),
                divide_by: None,
            },
            window: Duration::from_secs(7 * 86_400),
            warn_after: 2,
            escalate_after: 3,
            quiet_for: Duration::from_secs(7 * 86_400),
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_steady_non_zero_counter_is_not_an_event() {
        let rule = rule();
        let mut state = ChangeState::default();
        for hour in 0..48 {
            observe(
                &mut state,
                "disk_smart_reallocated_sectors",
                hour * HOUR,
                8.0,
            );
        }
        assert_eq!(judge(&rule, &mut state, 48 * HOUR), None);
    }

    #[test]
    fn one_incident_is_not_yet_a_trend_but_recurring_incidents_warn_then_turn_critical() {
        let rule = rule();
        let mut state = ChangeState::default();
        observe(&mut state, "disk_smart_pending_sectors", 0, 0.0);
        observe(&mut state, "disk_smart_reallocated_sectors", 0, 0.0);
        // A pending sector appears: one incident, perhaps a one-off.
        observe(&mut state, "disk_smart_pending_sectors", HOUR, 6.0);
        assert_eq!(judge(&rule, &mut state, HOUR), None);
        // Remapped five hours later: the pending count falls (no event), reallocated rises.
        observe(&mut state, "disk_smart_pending_sectors", 6 * HOUR, 0.0);
        observe(&mut state, "disk_smart_reallocated_sectors", 6 * HOUR, 48.0);
        let verdict = judge(&rule, &mut state, 6 * HOUR).unwrap();
        assert_eq!(verdict.severity, Severity::Warning);
        observe(&mut state, "disk_smart_pending_sectors", 30 * HOUR, 9.0);
        let verdict = judge(&rule, &mut state, 30 * HOUR).unwrap();
        assert_eq!(verdict.severity, Severity::Critical);
        let changes = &verdict
            .vars
            .iter()
            .find(|(n, _)| *n == "changes")
            .unwrap()
            .1;
        assert!(
            changes.contains("reallocated sectors +48 (now 48)"),
            "{changes}"
        );
        assert!(changes.contains("pending sectors +15 (now 9)"), "{changes}");
        assert!(changes.contains("in 3 incidents"), "{changes}");
    }

    #[test]
    fn increases_within_the_hour_are_one_incident() {
        let rule = rule();
        let mut state = ChangeState::default();
        observe(&mut state, "disk_smart_pending_sectors", 0, 0.0);
        observe(&mut state, "disk_smart_reallocated_sectors", 0, 0.0);
        observe(&mut state, "disk_smart_pending_sectors", HOUR, 2.0);
        observe(
            &mut state,
            "disk_smart_reallocated_sectors",
            HOUR + 600_000,
            8.0,
        );
        assert_eq!(judge(&rule, &mut state, 2 * HOUR), None);
    }

    #[test]
    fn a_counter_read_as_zero_after_a_restart_and_read_again_is_not_an_event() {
        let rule = rule();
        let mut state = ChangeState::default();
        for restart in 0..5 {
            let t = restart * 24 * HOUR;
            observe(&mut state, "disk_smart_reallocated_sectors", t, 12.0);
            assert!(!observe(
                &mut state,
                "disk_smart_reallocated_sectors",
                t + HOUR,
                0.0
            ));
            assert!(!observe(
                &mut state,
                "disk_smart_reallocated_sectors",
                t + 2 * HOUR,
                12.0
            ));
        }
        assert_eq!(judge(&rule, &mut state, 5 * 24 * HOUR), None);
    }

    #[test]
    fn a_counter_reset_is_a_new_baseline_not_an_event() {
        let rule = rule();
        let mut state = ChangeState::default();
        observe(&mut state, "disk_smart_reallocated_sectors", 0, 500.0);
        assert!(!observe(
            &mut state,
            "disk_smart_reallocated_sectors",
            HOUR,
            0.0
        ));
        assert!(!observe(
            &mut state,
            "disk_smart_reallocated_sectors",
            2 * HOUR,
            0.0
        ));
        assert_eq!(judge(&rule, &mut state, 2 * HOUR), None);
    }

    #[test]
    fn the_alert_clears_after_the_quiet_period() {
        let rule = rule();
        let mut state = ChangeState::default();
        observe(&mut state, "disk_smart_reallocated_sectors", 0, 1.0);
        observe(&mut state, "disk_smart_reallocated_sectors", HOUR, 2.0);
        observe(&mut state, "disk_smart_reallocated_sectors", 3 * HOUR, 3.0);
        assert!(judge(&rule, &mut state, 7 * 24 * HOUR).is_some());
        assert!(judge(&rule, &mut state, 8 * 24 * HOUR).is_none());
    }
}
