//! Words for alerts: summary templates with `{name}` placeholders, and values written the
//! way a technician reads them ("~4 d", "3–6 d", "87 %", "2.1 GiB").

use crate::alert::rule::Unit;

/// Replaces each `{name}` in `template` with its value from `vars`; unknown names stay as
/// they are, so a typo shows in the alert instead of vanishing.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match vars.iter().find(|(var, _)| *var == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholder names a template uses.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        names.push(&after[..close]);
        rest = &after[close + 1..];
    }
    names
}

const MINUTE_MS: f64 = 60_000.0;
const HOUR_MS: f64 = 60.0 * MINUTE_MS;
const DAY_MS: f64 = 24.0 * HOUR_MS;

/// Unit a duration reads best in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Span {
    Minutes,
    Hours,
    Days,
}

fn span_for(ms: f64) -> Span {
    if ms >= 2.0 * DAY_MS {
        Span::Days
    } else if ms >= 2.0 * HOUR_MS {
        Span::Hours
    } else {
        Span::Minutes
    }
}

fn in_span(ms: f64, span: Span) -> String {
    let (value, unit) = match span {
        Span::Days => (ms / DAY_MS, "d"),
        Span::Hours => (ms / HOUR_MS, "h"),
        Span::Minutes => (ms / MINUTE_MS, "min"),
    };
    if value < 10.0 && span != Span::Minutes && (value - value.round()).abs() >= 0.25 {
        format!("{value:.1} {unit}")
    } else {
        format!("{} {unit}", value.round() as i64)
    }
}

/// `45 min`, `9 h`, `4 d`, `2.5 d`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() {
        return "a long time".to_owned();
    }
    let ms = ms.max(0.0);
    in_span(ms, span_for(ms))
}

/// `3–6 d`, in the unit `estimate_ms` reads in; an unbounded end reads "… or more".
pub fn range(soonest_ms: f64, latest_ms: f64, estimate_ms: f64) -> String {
    if !latest_ms.is_finite() {
        return format!("{} or more", duration(soonest_ms));
    }
    let span = span_for(estimate_ms.max(0.0));
    let low = in_span(soonest_ms.max(0.0), span);
    let high = in_span(latest_ms, span);
    if low == high {
        return high;
    }
    let low_number = low.split(' ').next().unwrap_or_default();
    format!("{low_number}–{high}")
}

/// A value in its unit: `87 %` for a ratio, `71 °C`, `2.1 GiB`.
pub fn value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Ratio => percent(value * 100.0),
        Unit::Percent => percent(value),
        Unit::Celsius => format!("{value:.0} °C"),
        Unit::Bytes => bytes(value),
        Unit::Plain => {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{}", value as i64)
            } else {
                format!("{value:.3}")
            }
        }
    }
}

fn percent(value: f64) -> String {
    if value.abs() < 10.0 && value.fract() != 0.0 {
        format!("{value:.1} %")
    } else {
        format!("{value:.0} %")
    }
}

/// Rate per day in the signal's unit: `+9.8 %/d`.
pub fn rate_per_day(rate_per_ms: f64, unit: Unit) -> String {
    let per_day = rate_per_ms * DAY_MS;
    let text = value(per_day.abs(), unit);
    let sign = if per_day < 0.0 { "−" } else { "+" };
    format!("{sign}{text}/d")
}

pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = value;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// UTC time of day and date for a millisecond timestamp: `2025-01-17 02:05 UTC`.
pub fn utc_time(timestamp_ms: i64) -> String {
    let seconds = timestamp_ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3600,
        (of_day % 3600) / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_replace_known_names_and_keep_unknown_ones() {
        let vars = [("host", "web-01".to_owned()), ("value", "91 %".to_owned())];
        assert_eq!(
            render("{host} at {value} {nope} {", &vars),
            "web-01 at 91 % {nope} {"
        );
        assert_eq!(placeholders("a {b} c {d}"), vec!["b", "d"]);
    }

    #[test]
    fn durations_read_in_minutes_hours_or_days() {
        assert_eq!(duration(45.0 * MINUTE_MS), "45 min");
        assert_eq!(duration(9.0 * HOUR_MS), "9 h");
        assert_eq!(duration(4.0 * DAY_MS), "4 d");
        assert_eq!(duration(2.5 * DAY_MS), "2.5 d");
        assert_eq!(duration(f64::INFINITY), "a long time");
    }

    #[test]
    fn ranges_read_in_the_unit_of_the_estimate() {
        assert_eq!(range(3.0 * DAY_MS, 6.0 * DAY_MS, 4.0 * DAY_MS), "3–6 d");
        assert_eq!(range(20.0 * HOUR_MS, 3.0 * DAY_MS, 2.0 * DAY_MS), "1–3 d");
        assert_eq!(
            range(45.0 * HOUR_MS, 50.0 * HOUR_MS, 47.0 * HOUR_MS),
            "45–50 h"
        );
        assert_eq!(
            range(3.0 * DAY_MS, f64::INFINITY, 4.0 * DAY_MS),
            "3 d or more"
        );
        assert_eq!(range(7.0 * DAY_MS, 7.1 * DAY_MS, 7.0 * DAY_MS), "7 d");
    }

    #[test]
    fn values_read_in_their_unit() {
        assert_eq!(value(0.873, Unit::Ratio), "87 %");
        assert_eq!(value(0.045, Unit::Ratio), "4.5 %");
        assert_eq!(value(71.4, Unit::Celsius), "71 °C");
        assert_eq!(
            value(2.5 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes),
            "2.5 GiB"
        );
        assert_eq!(rate_per_day(0.1 / DAY_MS, Unit::Ratio), "+10 %/d");
    }

    #[test]
    fn utc_times_are_calendar_dates() {
        assert_eq!(utc_time(1_736_942_400_000), "2025-01-15 12:00 UTC");
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
    }
}
