//! Creep rules: a value that drifts up at equal conditions, such as a CPU that runs hotter at
//! the same load because its fan is wearing out. A spike is not creep, and neither is a hot
//! afternoon: the value is first taken relative to a reference (the inlet temperature), then
//! compared with what a linear model of the explaining metric (CPU utilization) predicts
//! from the past week, excluding the last 12 hours. The alert needs the median of the last
//! two hours of 15-minute residuals to exceed both the rule's rise and five standard
//! deviations of the model's own residuals.

use crate::alert::kinds::Verdict;
use crate::alert::rule::{Creep, Severity};
use crate::alert::trend::{median, robust_sigma};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

const PAIR_WIDTH_MS: i64 = 15 * 60_000;
const KEPT_PAIRS: usize = 7 * 96;
/// The model learns from data at least this old, so that the drift being judged is not in it.
const EXCLUDE_RECENT_MS: i64 = 12 * 3_600_000;
/// Fewest reference buckets (12 h) before the model is trusted.
const MIN_REFERENCE: usize = 48;
/// Buckets whose median residual is judged (2 h).
const RECENT_PAIRS: usize = 8;
const SIGMAS: f64 = 5.0;
/// Clear judgements in a row (1 h) before the model learns again after a drift.
const UNPIN_AFTER_CLEAR: u32 = 4;
/// Below this spread of the explaining metric, the model is its mean only.
const MIN_EXPLAINING_SPREAD: f64 = 0.05;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Pair {
    sum_value: f32,
    sum_explaining: f32,
    count: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreepState {
    /// Bucket number of the first pair kept.
    first_number: i64,
    pairs: VecDeque<Pair>,
    last_value: Option<f64>,
    /// Bucket number judged last.
    last_judged: Option<i64>,
    /// End of the model's reference data while a drift is being reported.
    pinned_reference_end_ms: Option<i64>,
    /// Judgements in a row that found no drift.
    clear_streak: u32,
}

/// Records one sample: `value` already relative to its reference, and the explaining
/// metric's latest value. Returns a verdict to step the lifecycle with when a bucket has
/// completed since the last judgement (`Some(None)`: judged clear).
pub fn observe(
    rule: &Creep,
    state: &mut CreepState,
    timestamp_ms: i64,
    raw_value: f64,
    relative_value: f64,
    explaining: f64,
) -> Option<Option<Verdict>> {
    state.last_value = Some(raw_value);
    let number = timestamp_ms.div_euclid(PAIR_WIDTH_MS);
    if state.pairs.is_empty() {
        state.first_number = number;
        state.pairs.push_back(Pair::default());
    }
    if number < state.first_number {
        return None;
    }
    let end = state.first_number + state.pairs.len() as i64;
    if number >= end {
        if number - end >= KEPT_PAIRS as i64 {
            state.pairs.clear();
            state.first_number = number;
            state.pairs.push_back(Pair::default());
        } else {
            for _ in end..=number {
                state.pairs.push_back(Pair::default());
            }
        }
        while state.pairs.len() > KEPT_PAIRS {
            state.pairs.pop_front();
            state.first_number += 1;
        }
    }
    let pair = &mut state.pairs[(number - state.first_number) as usize];
    pair.sum_value += relative_value as f32;
    pair.sum_explaining += explaining as f32;
    pair.count += 1;
    // Judge once per completed bucket, when the first sample of a new one arrives.
    let complete = number - 1;
    if state.last_judged.is_some_and(|judged| judged >= complete) {
        return None;
    }
    state.last_judged = Some(complete);
    let now_ms = number * PAIR_WIDTH_MS;
    let reference_end = state
        .pinned_reference_end_ms
        .unwrap_or(now_ms - EXCLUDE_RECENT_MS);
    let verdict = judge(rule, state, now_ms, reference_end);
    // While a drift is reported, the model stops learning: otherwise a slow drift would
    // become the new normal within a day and the alert would resolve with the fan still
    // failing. It learns again once the value has been back to normal for an hour.
    if verdict.is_some() {
        state.clear_streak = 0;
        state.pinned_reference_end_ms.get_or_insert(reference_end);
    } else {
        state.clear_streak += 1;
        if state.clear_streak >= UNPIN_AFTER_CLEAR {
            state.pinned_reference_end_ms = None;
        }
    }
    Some(verdict)
}

fn judge(rule: &Creep, state: &CreepState, now_ms: i64, reference_end_ms: i64) -> Option<Verdict> {
    let mut reference = Vec::new();
    let mut recent = Vec::new();
    for (offset, pair) in state.pairs.iter().enumerate() {
        if pair.count == 0 {
            continue;
        }
        let start = (state.first_number + offset as i64) * PAIR_WIDTH_MS;
        if start + PAIR_WIDTH_MS > now_ms {
            continue;
        }
        let point = (
            pair.sum_explaining as f64 / pair.count as f64,
            pair.sum_value as f64 / pair.count as f64,
        );
        if start + PAIR_WIDTH_MS <= reference_end_ms {
            reference.push(point);
        }
        if start + PAIR_WIDTH_MS > now_ms - EXCLUDE_RECENT_MS {
            recent.push(point);
        }
    }
    if reference.len() < MIN_REFERENCE || recent.len() < RECENT_PAIRS {
        return None;
    }
    let recent = &recent[recent.len() - RECENT_PAIRS..];
    let model = fit(&reference)?;
    let sigma = robust_sigma(
        &reference
            .iter()
            .map(|&(x, y)| y - model.predict(x))
            .collect::<Vec<_>>(),
    )?;
    let mut residuals: Vec<f64> = recent.iter().map(|&(x, y)| y - model.predict(x)).collect();
    let rise = median(&mut residuals)?;
    let bar = rule.rise.max(SIGMAS * sigma);
    if rise < bar {
        return None;
    }
    let severity = if rise >= 2.0 * bar {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let value = state.last_value.unwrap_or(f64::NAN);
    Some(
        Verdict::new(severity)
            .with("rise", format!("{rise:.0} °C"))
            .with("value", format!("{value:.0} °C")),
    )
}

#[derive(Debug, Clone, Copy)]
struct Line {
    intercept: f64,
    slope: f64,
}

impl Line {
    fn predict(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
}

/// Least squares, refitted once without the points beyond 3.5 robust sigmas so that a spike
/// in the reference week does not tilt the model.
fn fit(points: &[(f64, f64)]) -> Option<Line> {
    let first = least_squares(points)?;
    let residuals: Vec<f64> = points.iter().map(|&(x, y)| y - first.predict(x)).collect();
    let sigma = robust_sigma(&residuals)?;
    if sigma <= 0.0 {
        return Some(first);
    }
    let kept: Vec<(f64, f64)> = points
        .iter()
        .zip(&residuals)
        .filter(|(_, r)| r.abs() <= 3.5 * sigma)
        .map(|(p, _)| *p)
        .collect();
    least_squares(&kept).or(Some(first))
}

fn least_squares(points: &[(f64, f64)]) -> Option<Line> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (low, high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    if high - low < MIN_EXPLAINING_SPREAD {
        return Some(Line {
            intercept: mean_y,
            slope: 0.0,
        });
    }
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some(Line {
        intercept: mean_y - slope * mean_x,
        slope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rule::Signal;

    fn rule() -> Creep {
        Creep {
            signal: Signal::metric("system_temperature_celsius"),
            relative_to: None,
            explained_by: None,
            rise: 5.0,
        }
    }

    /// Load following a daily curve with wobble; temperature = 20 + 40·load + drift.
    fn load_at(minute: i64) -> f64 {
        let hour = (minute / 60) % 24;
        let base = if (9..18).contains(&hour) { 0.5 } else { 0.2 };
        base + 0.05 * ((minute as f64) * 0.37).sin()
    }

    fn run(drift_per_hour_after: Option<(i64, f64)>, minutes: i64) -> Vec<(i64, Severity)> {
        let rule = rule();
        let mut state = CreepState::default();
        let mut verdicts = Vec::new();
        for minute in 0..minutes {
            let load = load_at(minute);
            let drift = match drift_per_hour_after {
                Some((start, per_hour)) if minute > start => {
                    (minute - start) as f64 / 60.0 * per_hour
                }
                _ => 0.0,
            };
            let noise = 0.8 * ((minute as f64) * 1.7).sin();
            let temperature = 20.0 + 40.0 * load + drift + noise;
            if let Some(Some(verdict)) = observe(
                &rule,
                &mut state,
                minute * 60_000,
                temperature,
                temperature,
                load,
            ) {
                verdicts.push((minute, verdict.severity));
            }
        }
        verdicts
    }

    #[test]
    fn load_driven_heat_is_not_creep() {
        assert!(run(None, 4 * 24 * 60).is_empty());
    }

    #[test]
    fn a_rising_baseline_at_equal_load_is_creep() {
        let start = 2 * 24 * 60;
        let verdicts = run(Some((start, 1.0)), 3 * 24 * 60);
        let (first, severity) = verdicts.first().copied().expect("creep detected");
        assert_eq!(severity, Severity::Warning);
        // 1 °C per hour: the 5 °C bar is crossed by the median of the last 2 h after ~6 h.
        let hours_after = (first - start) as f64 / 60.0;
        assert!((5.0..10.0).contains(&hours_after), "{hours_after}");
    }

    #[test]
    fn a_room_whose_cooling_fails_is_creep_of_the_inlet_and_its_daily_swing_is_not() {
        let rule = rule();
        let mut state = CreepState::default();
        let failure = 4 * 24 * 60 + 14 * 60;
        let mut first = None;
        for minute in 0..5 * 24 * 60 {
            let daily = 1.5 * ((minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU).sin();
            let warming = if minute > failure {
                (minute - failure) as f64 / 60.0 * 2.0
            } else {
                0.0
            };
            let inlet = 21.0 + daily + warming + 0.3 * ((minute as f64) * 1.3).sin();
            if let Some(Some(_)) = observe(&rule, &mut state, minute * 60_000, inlet, inlet, 0.0) {
                first.get_or_insert(minute);
            }
        }
        let first = first.expect("the warming room is reported");
        // The daily swing sets the bar (five of its standard deviations, about 8 °C here).
        assert!(first > failure && first < failure + 8 * 60, "{first}");
    }

    #[test]
    fn a_short_spike_is_not_creep() {
        let rule = rule();
        let mut state = CreepState::default();
        for minute in 0..(3 * 24 * 60) {
            let load = load_at(minute);
            let spike = if (2 * 24 * 60..2 * 24 * 60 + 20).contains(&minute) {
                30.0
            } else {
                0.0
            };
            let temperature = 20.0 + 40.0 * load + spike;
            if let Some(Some(_)) = observe(
                &rule,
                &mut state,
                minute * 60_000,
                temperature,
                temperature,
                load,
            ) {
                panic!("a 20-minute spike was reported as creep at minute {minute}");
            }
        }
    }
}
