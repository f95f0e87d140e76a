//! Threshold rules: a value beyond fixed levels, judged on each sample. The pending time is
//! the lifecycle's; hysteresis is here: a firing alert stays active until the value is back
//! past the clear level, so a value hovering at the threshold does not flap.
//!
//! A rule may ignore what is usual: with `unless_usual`, a level the value also crossed at
//! this time of day (within an hour) on one of the past seven days, as a 15-minute mean, is
//! the host's rhythm (a nightly batch job that takes the CPU or squeezes memory), not news.
//! A higher level it never reached at this hour still fires.

use crate::alert::history::Tier;
use crate::alert::kinds::Verdict;
use crate::alert::rule::{Direction, Threshold};
use crate::alert::summary;
use serde::{Deserialize, Serialize};

const USUAL_WIDTH_MS: i64 = 15 * 60_000;
const USUAL_DAYS: i64 = 7;
const USUAL_TOLERANCE_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThresholdState {
    pub last_value: Option<f64>,
    /// 15-minute means of the past week, for rules that ignore what is usual.
    usual: Option<Tier>,
}

/// Whether the value crossed `level` around this time of day on one of the past days.
fn usual_at(tier: &Tier, direction: Direction, level: f64, now_ms: i64) -> bool {
    (1..=USUAL_DAYS).any(|day| {
        let center = now_ms - day * DAY_MS;
        tier.complete_in(center - USUAL_TOLERANCE_MS, center + USUAL_TOLERANCE_MS)
            .filter_map(|(_, bucket)| bucket.mean())
            .any(|mean| beyond(direction, mean, level))
    })
}

fn beyond(direction: Direction, value: f64, level: f64) -> bool {
    match direction {
        Direction::Above => value >= level,
        Direction::Below => value <= level,
    }
}

/// Judges `value` sampled at `timestamp_ms`; `firing` says whether the instance's alert is
/// open (for hysteresis, and because an open alert is not second-guessed as usual).
pub fn judge(
    rule: &Threshold,
    state: &mut ThresholdState,
    timestamp_ms: i64,
    value: f64,
    firing: bool,
) -> Option<Verdict> {
    state.last_value = Some(value);
    if rule.unless_usual {
        state
            .usual
            .get_or_insert_with(|| {
                Tier::new(
                    USUAL_WIDTH_MS,
                    (USUAL_DAYS * DAY_MS / USUAL_WIDTH_MS) as usize + 8,
                )
            })
            .add(timestamp_ms, value);
    }
    let usual = |level: f64| {
        !firing
            && state
                .usual
                .as_ref()
                .is_some_and(|tier| usual_at(tier, rule.direction, level, timestamp_ms))
    };
    let crossed = rule
        .levels
        .iter()
        .filter(|(_, level)| beyond(rule.direction, value, *level) && !usual(*level))
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
    let mut verdict = Verdict::new(severity)
        .with("value", summary::value(value, rule.unit))
        .with("threshold", summary::value(level, rule.unit));
    verdict.details.value = Some(value);
    verdict.details.threshold = Some(level);
    Some(verdict)
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
            unless_usual: false,
        }
    }

    #[test]
    fn the_highest_crossed_level_sets_the_severity() {
        let rule = disk_rule();
        let mut state = ThresholdState::default();
        assert_eq!(judge(&rule, &mut state, 0, 0.5, false), None);
        assert_eq!(
            judge(&rule, &mut state, 0, 0.98, false).unwrap().severity,
            Severity::Critical
        );
        assert_eq!(
            judge(&rule, &mut state, 0, 0.999, false).unwrap().severity,
            Severity::Emergency
        );
    }

    #[test]
    fn hysteresis_holds_a_firing_alert_until_the_clear_level() {
        let rule = disk_rule();
        let mut state = ThresholdState::default();
        // Between clear (95 %) and trigger (97 %): held only while firing.
        assert!(judge(&rule, &mut state, 0, 0.96, true).is_some());
        assert!(judge(&rule, &mut state, 0, 0.96, false).is_none());
        assert!(judge(&rule, &mut state, 0, 0.94, true).is_none());
    }

    #[test]
    fn a_nightly_squeeze_seen_on_past_nights_is_usual_but_a_deeper_one_is_not() {
        let rule = Threshold {
            signal: Signal::metric("system_memory_usage_bytes"),
            direction: Direction::Below,
            levels: vec![(Severity::Warning, 0.05), (Severity::Critical, 0.02)],
            clear: Some(0.08),
            unit: Unit::Ratio,
            unless_usual: true,
        };
        let mut state = ThresholdState::default();
        let minute = 60_000;
        let mut severities = Vec::new();
        for night in 0..5 {
            for m in 0..24 * 60 {
                let t = (night * 24 * 60 + m) * minute;
                // 01:30–02:15 every night the batch job leaves 4 % available; on the last
                // night it leaves 1 %.
                let value = match (night, (90..135).contains(&m)) {
                    (4, true) => 0.01,
                    (_, true) => 0.04,
                    _ => 0.70,
                };
                if let Some(verdict) = judge(&rule, &mut state, t, value, false) {
                    severities.push((night, verdict.severity));
                }
            }
        }
        assert!(severities
            .iter()
            .any(|&(night, s)| night == 0 && s == Severity::Warning));
        assert!(
            !severities.iter().any(|&(night, _)| (1..4).contains(&night)),
            "{severities:?}"
        );
        assert!(severities
            .iter()
            .all(|&(night, s)| night != 4 || s == Severity::Critical));
        assert!(severities.iter().any(|&(night, _)| night == 4));
    }

    #[test]
    fn a_below_rule_fires_on_low_values() {
        let rule = Threshold {
            signal: Signal::metric("service_up"),
            direction: Direction::Below,
            levels: vec![(Severity::Critical, 0.5)],
            clear: None,
            unit: Unit::Plain,
            unless_usual: false,
        };
        let mut state = ThresholdState::default();
        assert!(judge(&rule, &mut state, 0, 0.0, false).is_some());
        assert!(judge(&rule, &mut state, 0, 1.0, true).is_none());
    }
}
