//! A contract in plain words, so whoever runs `vigil-collector policy check` can see that the
//! file says what they meant: hours, roles, what is an emergency, targets, windows, risks.

use super::contract::{AfterHours, Policy, SeverityRule};
use super::maintenance::{weekday_name, Schedule};
use jiff::civil::Weekday;
use std::fmt::Write;

impl Policy {
    /// A few lines describing the contract.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let name = self
            .display_name
            .as_deref()
            .map(|name| format!(" ({name})"))
            .unwrap_or_default();
        let saved = match self.version.version {
            0 => "not saved yet".to_string(),
            number => format!("version {number}"),
        };
        let _ = writeln!(
            out,
            "client {}{name}, {saved}, {}",
            self.client(),
            self.version.digest
        );
        let calendar = &self.calendar;
        let zone = calendar.time_zone().iana_name().unwrap_or("?");
        let _ = writeln!(out, "time zone {zone}");
        // Consecutive days with the same hours are written as one run: "mon-thu 08:00-18:00".
        let mut runs: Vec<(Weekday, Weekday, String)> = Vec::new();
        for weekday in Weekday::Monday.cycle_forward().take(7) {
            let hours = calendar.hours_on(weekday);
            let hours = if hours.is_empty() {
                "closed".to_string()
            } else {
                hours
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match runs.last_mut() {
                Some((_, last, run_hours)) if *run_hours == hours => *last = weekday,
                _ => runs.push((weekday, weekday, hours)),
            }
        }
        let week: Vec<String> = runs
            .iter()
            .map(|(first, last, hours)| {
                let first_name = &weekday_name(*first)[..3];
                if first == last {
                    format!("{first_name} {hours}")
                } else {
                    format!("{first_name}-{} {hours}", &weekday_name(*last)[..3])
                }
            })
            .collect();
        let _ = writeln!(out, "business hours: {}", week.join("; "));
        if !calendar.holidays().is_empty() {
            let holidays: Vec<String> = calendar
                .holidays()
                .iter()
                .map(|range| {
                    if range.first == range.last {
                        range.first.to_string()
                    } else {
                        format!("{}..{}", range.first, range.last)
                    }
                })
                .collect();
            let _ = writeln!(out, "closed on: {}", holidays.join(", "));
        }
        let _ = writeln!(
            out,
            "after hours: {}",
            match self.after_hours {
                AfterHours::Nothing =>
                    "no coverage; everything waits for the next opening".to_string(),
                AfterHours::From(severity) => format!(
                    "{severity} alerts and above page at once; the rest wait for the next opening"
                ),
            }
        );
        for role in &self.roles {
            let hosts: Vec<&str> = role.hosts.iter().map(|host| host.as_str()).collect();
            let _ = writeln!(out, "role {}: {}", role.name, hosts.join(", "));
        }
        if !self.rules.is_empty() {
            let _ = writeln!(out, "rules, first match wins:");
            for rule in &self.rules {
                let _ = writeln!(
                    out,
                    "  {:<9} {} — {}",
                    rule.severity.as_str(),
                    rule.name,
                    conditions(rule)
                );
            }
        }
        let _ = writeln!(
            out,
            "otherwise the engine's severity stands (warning, critical or emergency)"
        );
        let response = &self.response;
        let _ = writeln!(
            out,
            "respond within: emergency {}; critical {}; warning {}; notice {}",
            response.emergency, response.critical, response.warning, response.notice
        );
        match &self.forecast {
            Some(horizons) => {
                let _ = writeln!(
                    out,
                    "forecasts warn {} ahead, critical {} ahead",
                    in_words(horizons.warn),
                    in_words(horizons.critical)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "forecasts warn at the rules' own horizons (7 days, critical 2)"
                );
            }
        }
        for window in &self.maintenance {
            let when = match &window.schedule {
                Schedule::Once { start, end } => {
                    let zone = calendar.time_zone();
                    format!(
                        "from {} until {}",
                        zone.to_datetime(*start).strftime("%Y-%m-%d %H:%M"),
                        zone.to_datetime(*end).strftime("%Y-%m-%d %H:%M")
                    )
                }
                Schedule::Every {
                    recurrence,
                    starting,
                    lasts,
                } => format!(
                    "{recurrence} at {} for {}",
                    starting.strftime("%H:%M"),
                    short(lasts.unsigned_abs())
                ),
            };
            let kinds = if window.kinds.is_empty() {
                String::new()
            } else {
                format!(
                    " (only {})",
                    window
                        .kinds
                        .iter()
                        .map(|kind| kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                out,
                "maintenance '{}': {when}, {}{kinds}: alerts held, sent after if still firing",
                window.name, window.scope
            );
        }
        for declined in &self.declined {
            let decided = declined
                .decided
                .map(|date| format!(" on {date}"))
                .unwrap_or_default();
            let note = declined
                .note
                .as_deref()
                .map(|note| format!(" — {note}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "declined{decided}: {} for {}; those alerts are {} at most (accepted risk){note}",
                declined.measure, declined.scope, declined.at_most
            );
        }
        if let Some(cost) = &self.downtime_cost {
            let _ = writeln!(
                out,
                "downtime costs {} {} per hour",
                cost.per_hour, cost.currency
            );
        }
        out
    }
}

/// A rule's conditions in words.
fn conditions(rule: &SeverityRule) -> String {
    let mut parts = Vec::new();
    if rule.kinds.is_empty() {
        parts.push("any alert".to_string());
    } else {
        parts.push(
            rule.kinds
                .iter()
                .map(|kind| kind.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        );
    }
    if !rule.alert_rules.is_empty() {
        parts.push(format!("from rule {}", rule.alert_rules.join(" or ")));
    }
    if !rule.scope.is_everything() {
        parts.push(format!("on {}", rule.scope));
    }
    if let Some(minimum) = rule.min_engine_severity {
        parts.push(format!("engine severity {minimum} or worse"));
    }
    if let Some(lasting) = rule.lasting {
        parts.push(format!("lasting {}", short(lasting.unsigned_abs())));
    }
    if let Some(within) = rule.forecast_within {
        parts.push(format!("forecast to run out within {}", short(within)));
    }
    for (name, value) in &rule.labels {
        parts.push(format!("{name}={value}"));
    }
    parts.join(", ")
}

/// `24h`, `15m`, or humantime's words for anything less round.
fn short(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    if seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        humantime::format_duration(duration).to_string()
    }
}

/// `14 days`, `36 hours`, or humantime's words for anything else.
fn in_words(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        _ => humantime::format_duration(duration).to_string(),
    }
}
