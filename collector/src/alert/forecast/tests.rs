//! The forecast method on synthetic signals: the shapes that fool a straight line (sawtooth
//! rotation, a copy kept for hours, nightly temp files, a flat full disk, a wandering or
//! dipping available memory) and the ones it must catch (steady, accelerating and
//! floor-rising growth, a leak). Sampled every minute with deterministic noise.

use super::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK_HORIZON: f64 = 7.0 * DAY as f64;
/// Monday 2025-01-06 00:00 UTC, so that weekdays fall where a calendar puts them.
const START: i64 = 1_736_121_600_000;

/// xorshift64*: deterministic noise for repeatable tests.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// Roughly normal, standard deviation 1.
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() * 0.866
    }
}

fn hour_of_day(minute: i64) -> f64 {
    (minute % (24 * 60)) as f64 / 60.0
}

fn is_weekday(minute: i64) -> bool {
    (minute / (24 * 60)) % 7 < 5
}

/// Feeds one sample a minute for `days` (the signal may skip a sample by returning `None`)
/// and assesses at every 10-minute boundary. Returns the minutes at which an assessment
/// found the limit within a week, with the assessment.
fn run(
    days: i64,
    direction_up: bool,
    limit: f64,
    mut value_at: impl FnMut(i64) -> Option<f64>,
) -> Vec<(i64, Assessment)> {
    let mut history = History::default();
    let method = Method::default();
    let orient = |v: f64| if direction_up { v } else { -v };
    let mut found = Vec::new();
    for minute in 0..days * 24 * 60 {
        let now = START + minute * MINUTE;
        if minute % 10 == 0 && minute > 0 {
            if let Some(assessment) = assess(&history, now, orient(limit), 2 * DAY, &method) {
                if assessment.time_left_ms <= WEEK_HORIZON {
                    found.push((minute, assessment));
                }
            }
        }
        if let Some(value) = value_at(minute) {
            history.add(now, orient(value));
        }
    }
    found
}

fn first_minute(found: &[(i64, Assessment)]) -> Option<i64> {
    found.first().map(|(minute, _)| *minute)
}

#[test]
fn business_hours_growth_rotated_every_night_is_not_forecast() {
    let mut noise = Noise(1);
    // 58 % after rotation; weekdays +22 % between 08:00 and 17:00, weekends +6 %;
    // rotated back at 02:30. The peaks come within 20 % of full every weekday.
    let found = run(14, true, 1.0, |minute| {
        let hour = hour_of_day(minute);
        let day_gain = if is_weekday(minute) { 0.22 } else { 0.06 };
        let grown = if hour < 2.5 {
            // Before rotation: yesterday's full gain.
            let yesterday = minute - 24 * 60;
            if yesterday >= 0 && is_weekday(yesterday) {
                0.22
            } else if yesterday >= 0 {
                0.06
            } else {
                0.0
            }
        } else {
            day_gain * ((hour - 8.0) / 9.0).clamp(0.0, 1.0)
        };
        Some(0.58 + grown + 0.001 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn a_floor_rising_under_the_sawtooth_is_forecast_from_the_daily_low() {
    let mut noise = Noise(2);
    // The floor after rotation rises 1.5 % a day; each day adds 10 % that rotation removes.
    let found = run(12, true, 1.0, |minute| {
        let day = minute as f64 / (24.0 * 60.0);
        let hour = hour_of_day(minute);
        let floor = 0.68 + 0.015 * day;
        let grown = 0.10 * ((hour - 8.0) / 9.0).clamp(0.0, 1.0);
        Some(floor + grown + 0.001 * noise.normal())
    });
    let (minute, assessment) = found.last().copied().expect("a forecast by the end");
    assert!(
        matches!(assessment.basis, Basis::DailyLow { .. }),
        "{assessment:?}"
    );
    // At the end the peak is near 0.68 + 0.18 + 0.10 = 0.96 and the floor rises 1.5 %/d,
    // so the peak reaches 100 % in about 2.7 days.
    let days_left = assessment.time_left_ms / DAY as f64;
    assert!(
        (1.5..4.5).contains(&days_left),
        "{days_left} d at minute {minute}"
    );
    // And nothing during the first days, while the rise is not yet established.
    assert!(first_minute(&found).unwrap() > 3 * 24 * 60);
}

#[test]
fn a_copy_kept_for_hours_then_deleted_is_not_forecast() {
    let mut noise = Noise(3);
    let copy_start = (4 * 24 + 10) * 60;
    let found = run(8, true, 1.0, |minute| {
        let copied = match minute - copy_start {
            m if m < 0 => 0.0,
            m if m < 15 => 0.30 * m as f64 / 15.0,
            m if m < 8 * 60 => 0.30,
            _ => 0.0,
        };
        Some(0.55 + copied + 0.0008 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn a_disk_that_sits_at_93_percent_is_not_forecast() {
    let mut noise = Noise(4);
    let mut churn = 0.0;
    let found = run(21, true, 1.0, |_| {
        churn = 0.995 * churn + 0.0004 * noise.normal();
        Some(0.93 + churn)
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn nightly_temp_files_are_not_forecast() {
    let mut noise = Noise(5);
    // A job writes 12 % between 23:00 and 01:30 and deletes it at 02:00.
    let found = run(14, true, 1.0, |minute| {
        let hour = hour_of_day(minute);
        let temp = if hour >= 23.0 {
            0.12 * (hour - 23.0) / 2.5
        } else if hour < 1.5 {
            0.12 * (hour + 1.0) / 2.5
        } else if hour < 2.0 {
            0.12
        } else {
            0.0
        };
        Some(0.45 + temp + 0.001 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn steady_growth_is_forecast_with_the_time_left_inside_its_range() {
    let mut noise = Noise(6);
    let onset = 3 * 24 * 60;
    let per_minute = 0.10 / (24.0 * 60.0);
    let found = run(6, true, 1.0, |minute| {
        let grown = (minute - onset).max(0) as f64 * per_minute;
        Some(0.40 + grown + 0.0015 * noise.normal())
    });
    let first = first_minute(&found).expect("growth is forecast");
    let hours_after_onset = (first - onset) as f64 / 60.0;
    assert!(
        (1.0..12.0).contains(&hours_after_onset),
        "{hours_after_onset} h"
    );
    // At 10 % a day from 40 % the disk is full in six days: inside the week from the start.
    // The truth must lie inside each reported range (with a fifth of slack).
    for (minute, assessment) in &found {
        let level = 0.40 + (minute - onset) as f64 * per_minute;
        let truth_ms = (1.0 - level) / per_minute * MINUTE as f64;
        assert!(
            assessment.soonest_ms * 0.8 <= truth_ms && truth_ms <= assessment.latest_ms * 1.25,
            "truth {truth_ms} outside {assessment:?}"
        );
    }
}

#[test]
fn accelerating_growth_is_forecast_well_before_the_disk_fills() {
    let mut noise = Noise(7);
    let onset = 4 * 24 * 60;
    // The write rate doubles every 6 hours from 0.04 %/h.
    let doubling_minutes = 6.0 * 60.0;
    let rate0 = 0.0004 / 60.0;
    let level_at = |minute: i64| {
        let t = (minute - onset).max(0) as f64;
        let k = std::f64::consts::LN_2 / doubling_minutes;
        0.35 + rate0 * ((k * t).exp() - 1.0) / k
    };
    let full_minute = (onset..onset + 5 * 24 * 60)
        .find(|&m| level_at(m) >= 1.0)
        .expect("fills within five days");
    let found = run(7, true, 1.0, |minute| {
        Some(level_at(minute).min(1.0) + 0.0008 * noise.normal())
    });
    let first = first_minute(&found).expect("acceleration is forecast");
    assert!(first > onset, "before onset: {first}");
    let lead_hours = (full_minute - first) as f64 / 60.0;
    assert!(lead_hours >= 8.0, "only {lead_hours} h before full");
}

#[test]
fn growth_that_stops_is_no_longer_forecast_within_hours() {
    let mut noise = Noise(8);
    let onset = 3 * 24 * 60;
    let stop = onset + 36 * 60;
    let per_minute = 0.25 / (24.0 * 60.0);
    let found = run(6, true, 1.0, |minute| {
        let grown = (minute.min(stop) - onset).max(0) as f64 * per_minute;
        Some(0.30 + grown + 0.001 * noise.normal())
    });
    assert!(first_minute(&found).is_some_and(|m| m < stop));
    let last = found.last().unwrap().0;
    assert!(
        last - stop <= 3 * 60,
        "still forecast {} min after the growth stopped",
        last - stop
    );
}

#[test]
fn a_wandering_available_memory_is_not_forecast() {
    let mut noise = Noise(9);
    let mut wander = 0.0;
    let found = run(14, false, 0.0, |minute| {
        // A slow random walk of a few percent plus a business-day dip.
        wander = 0.998 * wander + 0.002 * noise.normal();
        let hour = hour_of_day(minute);
        let business = if is_weekday(minute) && (9.0..18.0).contains(&hour) {
            -0.05
        } else {
            0.0
        };
        Some(0.55 + wander + business + 0.005 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn a_nightly_memory_dip_is_not_forecast() {
    let mut noise = Noise(10);
    let found = run(14, false, 0.0, |minute| {
        let hour = hour_of_day(minute);
        let available = if (2.0..2.0 + 25.0 / 60.0).contains(&hour) {
            0.05
        } else {
            0.70
        };
        Some(available + 0.004 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn page_cache_growth_with_plenty_available_is_not_forecast() {
    let mut noise = Noise(11);
    // Available memory drifts from 82 % to 66 % over two weeks as the cache grows.
    let found = run(14, false, 0.0, |minute| {
        let day = minute as f64 / (24.0 * 60.0);
        let hour = hour_of_day(minute);
        let daily = if (9.0..17.0).contains(&hour) {
            -0.03
        } else {
            0.0
        };
        Some(0.82 - 0.0115 * day + daily + 0.006 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}

#[test]
fn a_leak_is_forecast_from_falling_available_memory() {
    let mut noise = Noise(12);
    let onset = 3 * 24 * 60 + 7 * 60;
    let per_minute = 0.012 / 60.0;
    let found = run(5, false, 0.0, |minute| {
        let leaked = (minute - onset).max(0) as f64 * per_minute;
        Some((0.62 - leaked).max(0.02) + 0.01 * noise.normal())
    });
    let (first, assessment) = found.first().copied().expect("the leak is forecast");
    let hours_after_onset = (first - onset) as f64 / 60.0;
    assert!(
        (1.0..16.0).contains(&hours_after_onset),
        "{hours_after_onset} h"
    );
    let level = 0.62 - (first - onset) as f64 * per_minute;
    let truth_ms = level / per_minute * MINUTE as f64;
    assert!(
        assessment.soonest_ms * 0.8 <= truth_ms && truth_ms <= assessment.latest_ms * 1.25,
        "truth {truth_ms} outside {assessment:?}"
    );
}

#[test]
fn a_full_disk_is_exhausted_now() {
    let found = run(1, true, 1.0, |_| Some(1.0));
    let (_, assessment) = found.last().copied().expect("exhausted");
    assert_eq!(assessment.basis, Basis::Exhausted);
    assert_eq!(assessment.time_left_ms, 0.0);
}

#[test]
fn nothing_is_forecast_before_the_daily_rhythm_is_known() {
    let mut noise = Noise(14);
    // First day watched: available memory falls 1.5 % an hour through the business day,
    // which could as well be a leak as the day's rhythm.
    let found = run(1, false, 0.0, |minute| {
        let hour = hour_of_day(minute);
        let ramp = 0.015 * (hour - 9.0).clamp(0.0, 9.0);
        Some(0.60 - ramp + 0.004 * noise.normal())
    });
    assert_eq!(first_minute(&found), None, "{:?}", found.first());
}
