//! Time until a resource runs out, from a trend that a sawtooth, a one-off step, a nightly
//! job or a random wander does not fool. Reads a [`History`]; decides nothing about
//! severities or alerts (the forecast rule in [`crate::alert::kinds`] does).
//!
//! Two estimates, each with its own evidence:
//!
//! - **Recent growth** (hours): the Theil–Sen slope of the last 6 h of 10-minute means must be
//!   significantly positive, still positive over the last 2 h (growth has not stopped, as
//!   it has after a copy finished), not concentrated in one jump (at most half the rise
//!   within any hour), and the level must be outside what the signal did at this time
//!   of day on each of the past days by more than its usual daily swing. That last test is
//!   what tells a runaway log from the business-hours growth that nightly rotation undoes:
//!   a rise that happens every day and is undone every night never leaves the envelope.
//!   The margin also covers the day-to-day change of the daily mean, so a level that
//!   wanders by days is not news when it wanders up. When the last 2 h are clearly faster
//!   than the 6 h window, the median of the 2 h, 4 h and 6 h rates is used: a leak that
//!   began three hours ago is not diluted by the flat hours before it. When the rise is no faster than at this time on
//!   past days (weekday logs that are never rotated), it is the daily rhythm: the change
//!   since the same time yesterday gives the rate, not the busy hours' rate extrapolated
//!   around the clock.
//! - **Rising daily low** (days), used while the level is inside the daily envelope: the
//!   Theil–Sen slope of each day's lowest hourly mean over up to 14 days must be
//!   significantly positive and not owe most of its rise to one day (a copy that was
//!   kept); time left runs from the recent daily peak. A sawtooth with a rising floor
//!   fills up; one with a flat floor does not.
//!
//! Values are oriented so that exhaustion is upward: a falling signal (available memory) is
//! negated before it is stored.

use crate::alert::history::History;
use crate::alert::trend::{median, robust_sigma, theil_sen, Slope};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The method's constants. They describe the method (how much evidence is enough), not any
/// particular machine.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// Window of the recent slope.
    pub recent_window_ms: i64,
    /// Shorter window that must still show growth.
    pub still_growing_window_ms: i64,
    /// The short window's slope must be at least this share of the recent slope.
    pub still_growing_share: f64,
    /// Share of the recent window's buckets that must hold samples.
    pub min_coverage: f64,
    /// At most this share of the window's rise may happen within `step_span_ms`.
    pub max_step_share: f64,
    pub step_span_ms: i64,
    /// Days looked back for the envelope of the same time of day.
    pub envelope_days: i64,
    /// Tolerance around the same time of day, for jobs that start a little earlier or later.
    pub envelope_tolerance_ms: i64,
    /// The level must exceed the envelope by this many typical daily swings ...
    pub margin_daily_swings: f64,
    /// ... by this many standard deviations of the 10-minute noise ...
    pub margin_noise_sigmas: f64,
    /// ... and by this many standard deviations of the day-to-day change of the daily
    /// mean, so that a level that wanders by days is not news when it wanders up.
    pub margin_day_to_day_sigmas: f64,
    /// A recent rise no more than this multiple of the rise at the same time on past days
    /// is the usual daily rhythm, and the change since yesterday replaces its rate.
    pub usual_rise_factor: f64,
    /// Days of daily lows used for the long estimate, and the fewest accepted.
    pub max_floor_days: i64,
    pub min_floor_days: i64,
}

impl Default for Method {
    fn default() -> Self {
        Self {
            recent_window_ms: 6 * HOUR_MS,
            still_growing_window_ms: 2 * HOUR_MS,
            still_growing_share: 0.25,
            min_coverage: 0.6,
            max_step_share: 0.5,
            step_span_ms: HOUR_MS,
            envelope_days: 7,
            envelope_tolerance_ms: HOUR_MS,
            margin_daily_swings: 1.0,
            margin_noise_sigmas: 3.0,
            margin_day_to_day_sigmas: 2.0,
            usual_rise_factor: 1.5,
            max_floor_days: 14,
            min_floor_days: 3,
        }
    }
}

/// Which evidence an estimate rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Basis {
    /// The resource is already at its limit.
    Exhausted,
    /// Growth over the last hours, outside the usual daily range.
    Recent { window_ms: i64 },
    /// Each day's low rising over `days` days.
    DailyLow { days: usize },
}

/// A confirmed trend toward the limit and the time left at that rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Current level, oriented (see the module documentation).
    pub level: f64,
    /// Rate toward the limit per millisecond, oriented.
    pub rate_per_ms: f64,
    pub time_left_ms: f64,
    /// Time left at the interval's fastest and slowest rates (`INFINITY` when the slowest
    /// rate is not positive).
    pub soonest_ms: f64,
    pub latest_ms: f64,
    pub basis: Basis,
}

/// Assesses the signal at `now_ms` against the oriented `limit`. `None` when no estimate has
/// the evidence it needs.
pub fn assess(
    history: &History,
    now_ms: i64,
    limit: f64,
    min_history_ms: i64,
    method: &Method,
) -> Option<Assessment> {
    let mut scratch = Vec::new();
    let width = history.fine.width_ms();
    let points: Vec<(f64, f64)> = history
        .fine
        .complete_in(now_ms - method.recent_window_ms, now_ms)
        .filter_map(|(start, bucket)| Some(((start + width / 2) as f64, bucket.mean()?)))
        .collect();
    let expected = (method.recent_window_ms / width) as f64;
    if (points.len() as f64) < method.min_coverage * expected {
        return None;
    }
    let level = current_level(&points)?;
    if level >= limit {
        return Some(exhausted(level));
    }
    if history.span_ms(now_ms) < min_history_ms {
        return None;
    }
    // A level outside the daily envelope is news, and the recent slope says how fast it
    // moves. Inside the envelope, the recent slope is the daily cycle's, and only the
    // daily lows can show a trend.
    if outside_daily_envelope(history, now_ms, level, method) {
        let lag = (method.step_span_ms / width).max(1) as usize;
        recent_estimate(
            history,
            &points,
            now_ms,
            level,
            limit,
            lag,
            method,
            &mut scratch,
        )
    } else {
        daily_low_estimate(history, now_ms, limit, method, &mut scratch)
    }
}

/// Current level: the median of the last three complete 10-minute means.
fn current_level(points: &[(f64, f64)]) -> Option<f64> {
    let mut last: Vec<f64> = points.iter().rev().take(3).map(|p| p.1).collect();
    median(&mut last)
}

/// `step_lag`: the number of points that span [`Method::step_span_ms`].
#[allow(clippy::too_many_arguments)]
fn recent_estimate(
    history: &History,
    points: &[(f64, f64)],
    now_ms: i64,
    level: f64,
    limit: f64,
    step_lag: usize,
    method: &Method,
    scratch: &mut Vec<f64>,
) -> Option<Assessment> {
    let recent = theil_sen(points, scratch)?;
    if recent.low <= 0.0 {
        return None;
    }
    let short_start = (now_ms - method.still_growing_window_ms) as f64;
    let short_points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= short_start)
        .collect();
    let short = theil_sen(&short_points, scratch)?;
    if short.slope < method.still_growing_share * recent.slope {
        return None;
    }
    if step_share(points, step_lag) > method.max_step_share {
        return None;
    }
    // When the last hours are clearly faster than the whole window (a leak that began a
    // few hours ago, growth that accelerates), the whole window dilutes the current rate;
    // the middle one of the 2-hour, middle and whole windows is the current rate without
    // following every burst of the last two hours.
    let (rate, window_ms) = if short.low > recent.high {
        let middle_ms = (method.still_growing_window_ms + method.recent_window_ms) / 2;
        let middle_start = (now_ms - middle_ms) as f64;
        let middle_points: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0 >= middle_start)
            .collect();
        let middle = theil_sen(&middle_points, scratch).unwrap_or(recent);
        let mut candidates = [
            (short, method.still_growing_window_ms),
            (middle, middle_ms),
            (recent, method.recent_window_ms),
        ];
        candidates.sort_by(|a, b| a.0.slope.total_cmp(&b.0.slope));
        candidates[1]
    } else {
        (recent, method.recent_window_ms)
    };
    // Growth no faster than at this time on past days is the daily rhythm (business hours
    // writing logs that are never rotated): its rate does not last around the clock, so
    // the change since the same time yesterday says how fast the level really climbs.
    let rise = level
        - points
            .iter()
            .take(3)
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min);
    if usual_rise(history, now_ms, method)
        .is_some_and(|usual| rise <= method.usual_rise_factor * usual)
    {
        return daily_change_estimate(history, now_ms, level, limit);
    }
    Some(at_rate(level, limit, rate, Basis::Recent { window_ms }))
}

/// Mean of the complete hourly bucket that contains `t`.
fn mean_at(history: &History, t: i64) -> Option<f64> {
    let start = t.div_euclid(HOUR_MS) * HOUR_MS;
    history
        .coarse
        .complete_in(start, start + HOUR_MS)
        .next()
        .and_then(|(_, bucket)| bucket.mean())
}

/// The largest rise over the recent window's span at this time of day on the past days
/// (up to [`Method::envelope_days`]); `None` without a full day of history.
fn usual_rise(history: &History, now_ms: i64, method: &Method) -> Option<f64> {
    let first_ms = history.first_ms?;
    let mut usual: Option<f64> = None;
    for day in 1..=method.envelope_days {
        let end = now_ms - day * DAY_MS;
        let start = end - method.recent_window_ms;
        if start < first_ms {
            break;
        }
        if let (Some(a), Some(b)) = (mean_at(history, start), mean_at(history, end)) {
            usual = Some(usual.map_or(b - a, |u: f64| u.max(b - a)));
        }
    }
    usual.filter(|u| *u > 0.0)
}

/// Time left at the change since the same time yesterday; the changes of the two days
/// before give the range.
fn daily_change_estimate(
    history: &History,
    now_ms: i64,
    level: f64,
    limit: f64,
) -> Option<Assessment> {
    let day = DAY_MS as f64;
    let yesterday = mean_at(history, now_ms - DAY_MS)?;
    let rate = (level - yesterday) / day;
    if rate <= 0.0 {
        return None;
    }
    let mut low = rate;
    let mut high = rate;
    for days_ago in 1..3 {
        let (Some(before), Some(after)) = (
            mean_at(history, now_ms - (days_ago + 1) * DAY_MS),
            mean_at(history, now_ms - days_ago * DAY_MS),
        ) else {
            break;
        };
        low = low.min((after - before) / day);
        high = high.max((after - before) / day);
    }
    let slope = Slope {
        slope: rate,
        low,
        high,
        n_points: 0,
    };
    Some(at_rate(
        level,
        limit,
        slope,
        Basis::Recent { window_ms: DAY_MS },
    ))
}

fn exhausted(level: f64) -> Assessment {
    Assessment {
        level,
        rate_per_ms: 0.0,
        time_left_ms: 0.0,
        soonest_ms: 0.0,
        latest_ms: 0.0,
        basis: Basis::Exhausted,
    }
}

fn at_rate(level: f64, limit: f64, slope: Slope, basis: Basis) -> Assessment {
    let headroom = (limit - level).max(0.0);
    let time_at = |rate: f64| {
        if rate > 0.0 {
            headroom / rate
        } else {
            f64::INFINITY
        }
    };
    Assessment {
        level,
        rate_per_ms: slope.slope,
        time_left_ms: time_at(slope.slope),
        soonest_ms: time_at(slope.high),
        latest_ms: time_at(slope.low),
        basis,
    }
}

/// The largest rise over `lag` consecutive points as a share of the whole series' rise:
/// near 1 for a copy that filled the disk in minutes, small for steady growth.
fn step_share(points: &[(f64, f64)], lag: usize) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 1.0;
    };
    let total = last.1 - first.1;
    if total <= 0.0 || points.len() < 2 {
        return 1.0;
    }
    let lag = lag.clamp(1, points.len() - 1);
    let largest = points
        .windows(lag + 1)
        .map(|w| w[lag].1 - w[0].1)
        .fold(f64::NEG_INFINITY, f64::max);
    largest / total
}

/// Whether `level` is above the highest hourly mean seen around this time of day on each
/// of the past days, by more than the usual daily swing and the 10-minute noise.
fn outside_daily_envelope(history: &History, now_ms: i64, level: f64, method: &Method) -> bool {
    let Some(first_ms) = history.first_ms else {
        return false;
    };
    let mut envelope = f64::NEG_INFINITY;
    let mut days_seen = 0;
    for day in 1..=method.envelope_days {
        let center = now_ms - day * DAY_MS;
        if center - method.envelope_tolerance_ms < first_ms {
            break;
        }
        let around = history.coarse.complete_in(
            center - method.envelope_tolerance_ms,
            center + method.envelope_tolerance_ms,
        );
        for (_, bucket) in around {
            if let Some(mean) = bucket.mean() {
                envelope = envelope.max(mean);
                days_seen = day;
            }
        }
    }
    if days_seen == 0 {
        return false;
    }
    let mut swings = Vec::new();
    for day in 0..method.envelope_days {
        let end = now_ms - day * DAY_MS;
        let start = end - DAY_MS;
        if start < first_ms {
            break;
        }
        let means: Vec<f64> = history
            .coarse
            .complete_in(start, end)
            .filter_map(|(_, bucket)| bucket.mean())
            .collect();
        if means.len() >= 12 {
            let high = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let low = means.iter().copied().fold(f64::INFINITY, f64::min);
            swings.push(high - low);
        }
    }
    let typical_swing = median(&mut swings).unwrap_or(0.0);
    // Day-to-day change of the daily mean, over whole days before today.
    let daily_means: Vec<f64> = (1..=2 * method.envelope_days)
        .rev()
        .filter_map(|day| {
            let end = now_ms - day * DAY_MS;
            let start = end - DAY_MS;
            if start < first_ms {
                return None;
            }
            let means: Vec<f64> = history
                .coarse
                .complete_in(start, end)
                .filter_map(|(_, bucket)| bucket.mean())
                .collect();
            (means.len() >= 12).then(|| means.iter().sum::<f64>() / means.len() as f64)
        })
        .collect();
    let day_to_day: Vec<f64> = daily_means.windows(2).map(|w| w[1] - w[0]).collect();
    let day_sigma = if day_to_day.len() >= 3 {
        robust_sigma(&day_to_day).unwrap_or(0.0)
    } else {
        0.0
    };
    let fine_means: Vec<f64> = history
        .fine
        .complete_in(now_ms - 12 * HOUR_MS, now_ms)
        .filter_map(|(_, bucket)| bucket.mean())
        .collect();
    let steps: Vec<f64> = fine_means.windows(2).map(|w| w[1] - w[0]).collect();
    let noise = robust_sigma(&steps).unwrap_or(0.0) / std::f64::consts::SQRT_2;
    let margin = (method.margin_daily_swings * typical_swing)
        .max(method.margin_noise_sigmas * noise)
        .max(method.margin_day_to_day_sigmas * day_sigma);
    level > envelope + margin
}

fn daily_low_estimate(
    history: &History,
    now_ms: i64,
    limit: f64,
    method: &Method,
    scratch: &mut Vec<f64>,
) -> Option<Assessment> {
    let first_ms = history.first_ms?;
    let mut lows = Vec::new();
    let mut peak = f64::NEG_INFINITY;
    for day in 0..method.max_floor_days {
        let end = now_ms - day * DAY_MS;
        let start = end - DAY_MS;
        if start < first_ms {
            break;
        }
        let means: Vec<f64> = history
            .coarse
            .complete_in(start, end)
            .filter_map(|(_, bucket)| bucket.mean())
            .collect();
        if means.len() < 12 {
            continue;
        }
        let low = means.iter().copied().fold(f64::INFINITY, f64::min);
        if day == 0 {
            peak = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
        lows.push(((start + DAY_MS / 2) as f64, low));
    }
    if (lows.len() as i64) < method.min_floor_days || !peak.is_finite() {
        return None;
    }
    lows.reverse();
    let slope = theil_sen(&lows, scratch)?;
    if slope.low <= 0.0 || step_share(&lows, 1) > method.max_step_share {
        return None;
    }
    Some(at_rate(
        peak,
        limit,
        slope,
        Basis::DailyLow { days: lows.len() },
    ))
}

#[cfg(test)]
mod tests;
