//! Flapping rules: a 0/1 health gauge (`service_up`) that keeps dropping to 0 and coming
//! back. A service that crashes and is restarted again and again is a warning before it
//! finally stays down; one restart (a patch reboot) is not.

use crate::alert::kinds::Verdict;
use crate::alert::rule::Flapping;
use crate::alert::summary;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

const KEPT_DROPS: usize = 64;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FlappingState {
    last_up: Option<bool>,
    drops_ms: VecDeque<i64>,
}

/// Records a sample; returns whether it was a drop from up to down.
pub fn observe(state: &mut FlappingState, timestamp_ms: i64, value: f64) -> bool {
    let up = value >= 0.5;
    let dropped = state.last_up == Some(true) && !up;
    state.last_up = Some(up);
    if dropped {
        state.drops_ms.push_back(timestamp_ms);
        if state.drops_ms.len() > KEPT_DROPS {
            state.drops_ms.pop_front();
        }
    }
    dropped
}

pub fn judge(rule: &Flapping, state: &mut FlappingState, now_ms: i64) -> Option<Verdict> {
    let window_ms = rule.window.as_millis() as i64;
    while state
        .drops_ms
        .front()
        .is_some_and(|&at| now_ms - at > window_ms)
    {
        state.drops_ms.pop_front();
    }
    let count = state.drops_ms.len();
    if (count as u32) < rule.count {
        return None;
    }
    let first = *state.drops_ms.front()?;
    let last = *state.drops_ms.back()?;
    let now_state = if state.last_up == Some(false) {
        "down now"
    } else {
        "up now"
    };
    Some(
        Verdict::new(rule.severity)
            .with("count", count.to_string())
            .with("span", summary::duration((last - first) as f64))
            .with("state", now_state),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::{Severity, Signal};
    use std::time::Duration;

    const MINUTE: i64 = 60_000;

    fn rule() -> Flapping {
        Flapping {
            signal: Signal::metric("service_up"),
            window: Duration::from_secs(6 * 3600),
            count: 3,
            severity: Severity::Warning,
        }
    }

    /// Service samples every minute, down for two minutes at each of `crashes` (minutes).
    fn run(state: &mut FlappingState, crashes: &[i64], until_minute: i64) -> Vec<i64> {
        let rule = rule();
        let mut alerting = Vec::new();
        for minute in 0..until_minute {
            let down = crashes.iter().any(|&c| minute >= c && minute < c + 2);
            observe(state, minute * MINUTE, if down { 0.0 } else { 1.0 });
            if judge(&rule, state, minute * MINUTE).is_some() {
                alerting.push(minute);
            }
        }
        alerting
    }

    #[test]
    fn one_restart_is_not_flapping() {
        let mut state = FlappingState::default();
        assert!(run(&mut state, &[100], 600).is_empty());
    }

    #[test]
    fn the_third_crash_within_the_window_is_flapping() {
        let mut state = FlappingState::default();
        let alerting = run(&mut state, &[60, 150, 230], 300);
        assert_eq!(alerting.first(), Some(&230));
    }

    #[test]
    fn crashes_spread_over_days_are_not_flapping() {
        let mut state = FlappingState::default();
        assert!(run(&mut state, &[60, 600, 1200, 1800], 2000).is_empty());
    }
}
