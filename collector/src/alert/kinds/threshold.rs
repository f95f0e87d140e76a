//! Threshold rules: a value beyond fixed levels, judged on each sample. The pending time is
//! the lifecycle's; hysteresis is here: a firing alert stays active until the value is back
//! past the clear level, so a value hovering at the threshold does not flap.

use crate::alert::kinds::Verdict;
use crate::alert::rule::{Direction, Threshold};
use crate::alert::summary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThresholdState {
    pub last_value: Option<f64>,
}

fn beyond(direction: Direction, value: f64, level: f64) -> bool {
    match direction {
        Direction::Above => value >= level,
        Direction::Below => value <= level,
    }
}

/// Judges `value`; `firing` says whether the instance's alert is open (for hysteresis).
pub fn judge(
    rule: &Threshold,
    state: &mut ThresholdState,
    value: f64,
    firing: bool,
) -> Option<Verdict> {
    state.last_value = Some(value);
    let crossed = rule
        .levels
        .iter()
        .filter(|(_, level)| beyond(rule.direction, value, *level))
        .max_by_key(|(severity, _)| *severity);
    let (severity, level) = match crossed {
        Some(&(severity, level)) => (severity, level),
        None => {
            let clear = rule.clear?;
            let mildest = rule.levels.iter().min_by_key(|(severity, _)| *severity)?;
            let still_held = match rule.direction {
                Direction::Above => value > clear,
                Direction::Below => value < clear,
            };
            if !(firing && still_held) {
                return None;
            }
            *mildest
        }
    };
    Some(
        Verdict::new(severity)
            .with("value", summary::value(value, rule.unit))
            .with("threshold", summary::value(level, rule.unit)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::{Severity, Signal, Unit};

    fn disk_rule() -> Threshold {
        Threshold {
            signal: Signal::metric("x"),
            direction: Direction::Above,
            levels: vec![(Severity::Critical, 0.97), (Severity::Emergency, 0.995)],
            clear: Some(0.95),
            unit: Unit::Ratio,
        }
    }

    #[test]
    fn the_highest_crossed_level_sets_the_severity() {
        let rule = disk_rule();
        let mut state = ThresholdState::default();
        assert_eq!(judge(&rule, &mut state, 0.5, false), None);
        assert_eq!(
            judge(&rule, &mut state, 0.98, false).unwrap().severity,
            Severity::Critical
        );
        assert_eq!(
            judge(&rule, &mut state, 0.999, false).unwrap().severity,
            Severity::Emergency
        );
    }

    #[test]
    fn hysteresis_holds_a_firing_alert_until_the_clear_level() {
        let rule = disk_rule();
        let mut state = ThresholdState::default();
        // Between clear (95 %) and trigger (97 %): held only while firing.
        assert!(judge(&rule, &mut state, 0.96, true).is_some());
        assert!(judge(&rule, &mut state, 0.96, false).is_none());
        assert!(judge(&rule, &mut state, 0.94, true).is_none());
    }

    #[test]
    fn a_below_rule_fires_on_low_values() {
        let rule = Threshold {
            signal: Signal::metric("service_up"),
            direction: Direction::Below,
            levels: vec![(Severity::Critical, 0.5)],
            clear: None,
            unit: Unit::Plain,
        };
        let mut state = ThresholdState::default();
        assert!(judge(&rule, &mut state, 0.0, false).is_some());
        assert!(judge(&rule, &mut state, 1.0, true).is_none());
    }
}
