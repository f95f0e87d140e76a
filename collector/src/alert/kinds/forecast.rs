//! Forecast rules: keeps the signal's bounded [`History`], assesses it once per completed
//! 10-minute bucket with [`crate::alert::forecast::assess`], and turns the time left into a
//! severity through the rule's horizons.
//!
//! Two things make the alert steady. A confirmed assessment is held for two hours, and once
//! the alert fires for a quarter of the time it left (a day at most), so a pause in the
//! growth (an application that writes in bursts, a garbage collector) does not end the
//! pending time or resolve the alert. And the pending time grows with the time left (a tenth of it,
//! within the rule's pending time and 12 h): an alert about a disk full in five days can
//! afford hours of confirmation, one about a disk full this afternoon cannot.

use crate::alert::forecast::{self, Assessment, Basis, Method};
use crate::alert::history::{History, FINE_WIDTH_MS};
use crate::alert::kinds::Verdict;
use crate::alert::rule::{Direction, Forecast, Severity};
use crate::alert::summary;
use serde::{Deserialize, Serialize};

/// How long a confirmed assessment stands without a new one: a quarter of the time it
/// left, within these bounds.
const MIN_HOLD_MS: i64 = 2 * 3_600_000;
const MAX_HOLD_MS: i64 = 24 * 3_600_000;
const HOLD_SHARE: f64 = 0.25;
/// Share of the time left spent confirming, and the longest confirmation.
const CONFIRM_SHARE: f64 = 0.1;
const MAX_CONFIRM_MS: i64 = 12 * 3_600_000;
/// A firing alert stays open while the time left is within this multiple of the horizon.
const HORIZON_HYSTERESIS: f64 = 1.25;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForecastState {
    pub history: History,
    /// Fine bucket number of the last assessment.
    last_assessed_bucket: Option<i64>,
    /// The last assessment that found the resource running out within the horizon.
    held: Option<Held>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Held {
    at_ms: i64,
    level: f64,
    rate_per_ms: f64,
    time_left_ms: f64,
    soonest_ms: f64,
    latest_ms: f64,
    basis: HeldBasis,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HeldBasis {
    Exhausted,
    Recent { window_ms: i64 },
    DailyLow { days: usize },
}

fn orient(direction: Direction, value: f64) -> f64 {
    match direction {
        Direction::Above => value,
        Direction::Below => -value,
    }
}

/// Adds one sample of the signal (already divided by its limit, if any).
pub fn observe(rule: &Forecast, state: &mut ForecastState, timestamp_ms: i64, value: f64) {
    state
        .history
        .add(timestamp_ms, orient(rule.direction, value));
}

/// Judges the instance at `now_ms`, assessing the history again when a bucket has
/// completed since the last assessment.
/// `min_pending_ms` is the rule's pending time, the shortest confirmation.
pub fn evaluate(
    rule: &Forecast,
    state: &mut ForecastState,
    now_ms: i64,
    firing: bool,
    min_pending_ms: i64,
) -> Option<Verdict> {
    let bucket = now_ms.div_euclid(FINE_WIDTH_MS);
    let horizon_ms =
        rule.warn_horizon.as_millis() as f64 * if firing { HORIZON_HYSTERESIS } else { 1.0 };
    if state.last_assessed_bucket != Some(bucket) {
        state.last_assessed_bucket = Some(bucket);
        let limit = orient(rule.direction, rule.exhausted_at);
        let assessment = forecast::assess(
            &state.history,
            now_ms,
            limit,
            rule.min_history.as_millis() as i64,
            &Method::default(),
        );
        tracing::trace!(now_ms, ?assessment, "forecast assessed");
        if let Some(assessment) = assessment.filter(|a| a.time_left_ms <= horizon_ms) {
            state.held = Some(hold(now_ms, &assessment));
        }
    }
    let held = state.held.as_ref()?;
    let age_ms = now_ms - held.at_ms;
    // A pending alert needs fresh evidence to be confirmed; only a firing one is held long.
    let hold_ms = if firing {
        ((HOLD_SHARE * held.time_left_ms) as i64).clamp(MIN_HOLD_MS, MAX_HOLD_MS)
    } else {
        MIN_HOLD_MS
    };
    if age_ms > hold_ms {
        state.held = None;
        return None;
    }
    let time_left_ms = (held.time_left_ms - age_ms as f64).max(0.0);
    if time_left_ms > horizon_ms {
        return None;
    }
    let severity = if time_left_ms <= rule.critical_horizon.as_millis() as f64 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let pending_for_ms = match held.basis {
        HeldBasis::Exhausted => 0,
        _ => ((CONFIRM_SHARE * time_left_ms) as i64)
            .min(MAX_CONFIRM_MS)
            .max(min_pending_ms),
    };
    let level = orient(rule.direction, held.level);
    let basis = match held.basis {
        HeldBasis::Exhausted => "now".to_owned(),
        HeldBasis::Recent { window_ms } => format!(
            "at the rate of the last {} ({})",
            summary::duration(window_ms as f64),
            summary::rate_per_day(orient(rule.direction, held.rate_per_ms), rule.unit)
        ),
        HeldBasis::DailyLow { days } => format!(
            "at the rate its daily low rose over {days} d ({})",
            summary::rate_per_day(orient(rule.direction, held.rate_per_ms), rule.unit)
        ),
    };
    let mut verdict = Verdict::new(severity)
        .with("time_left", summary::duration(time_left_ms))
        .with(
            "range",
            summary::range(
                (held.soonest_ms - age_ms as f64).max(0.0),
                held.latest_ms - age_ms as f64,
                time_left_ms,
            ),
        )
        .with("basis", basis)
        .with("value", summary::value(level, rule.unit));
    verdict.pending_for_ms = Some(pending_for_ms);
    verdict.details.value = Some(level);
    verdict.details.threshold = Some(rule.exhausted_at);
    verdict.details.forecast = Some(crate::alert::kinds::ForecastDetails {
        time_left_ms: time_left_ms as i64,
        soonest_ms: (held.soonest_ms - age_ms as f64).max(0.0) as i64,
        latest_ms: (held.latest_ms - age_ms as f64).max(time_left_ms) as i64,
    });
    Some(verdict)
}

fn hold(now_ms: i64, assessment: &Assessment) -> Held {
    Held {
        at_ms: now_ms,
        level: assessment.level,
        rate_per_ms: assessment.rate_per_ms,
        time_left_ms: assessment.time_left_ms,
        soonest_ms: assessment.soonest_ms,
        latest_ms: assessment.latest_ms,
        basis: match assessment.basis {
            Basis::Exhausted => HeldBasis::Exhausted,
            Basis::Recent { window_ms } => HeldBasis::Recent { window_ms },
            Basis::DailyLow { days } => HeldBasis::DailyLow { days },
        },
    }
}
