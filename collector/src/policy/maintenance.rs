//! Planned maintenance: windows, one-off or recurring, during which alerts for the hosts
//! concerned are held rather than sent — and released when the window closes if the
//! condition is still there.
//!
//! "Held, not lost": this module only says whether an alert falls in a window and until
//! when; the alert itself stays recorded with the delivery side, which asks again at the
//! window's end (see [`classify()`](super::classify())).

use super::contract::HostScope;
use super::facts::AlertKind;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// Longest recurring window; keeps the search for the occurrence around an instant short.
pub const LONGEST_RECURRING_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Back-to-back windows are merged into one hold; this bounds the chain.
const LONGEST_CHAIN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub name: String,
    pub schedule: Schedule,
    pub scope: HostScope,
    /// Only alerts of these kinds are held; empty means every kind.
    pub kinds: Vec<AlertKind>,
}

impl MaintenanceWindow {
    pub fn applies_to(&self, host: &str, role: Option<&str>, kind: AlertKind) -> bool {
        self.scope.covers(host, role) && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }

    /// The occurrence of this window that contains `at`, as `[start, end)`.
    pub fn occurrence_containing(
        &self,
        time_zone: &TimeZone,
        at: Timestamp,
    ) -> Option<(Timestamp, Timestamp)> {
        match &self.schedule {
            Schedule::Once { start, end } => (*start <= at && at < *end).then_some((*start, *end)),
            Schedule::Every {
                recurrence,
                starting,
                lasts,
            } => {
                let today = time_zone.to_datetime(at).date();
                // An occurrence that contains `at` started at most `lasts` (≤ 7 days) before.
                let days_back = lasts.as_hours() / 24 + 1;
                let mut date = today;
                for _ in 0..=days_back {
                    if recurrence.falls_on(date) {
                        let start = time_zone.to_timestamp(date.to_datetime(*starting)).ok()?;
                        let end = start.checked_add(*lasts).ok()?;
                        if start <= at && at < end {
                            return Some((start, end));
                        }
                    }
                    date = date.yesterday().ok()?;
                }
                None
            }
        }
    }
}

/// When a window is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Once, between two instants (written in the client's local time).
    Once { start: Timestamp, end: Timestamp },
    /// Every time the recurrence falls, from `starting` local time, for `lasts`.
    Every {
        recurrence: Recurrence,
        starting: Time,
        lasts: SignedDuration,
    },
}

/// The days a recurring window falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    Daily,
    Weekly(Weekday),
    /// The nth (1–4) weekday of each month, e.g. the second Tuesday ("Patch Tuesday").
    MonthlyNth(u8, Weekday),
    /// The last weekday of each month.
    MonthlyLast(Weekday),
}

impl Recurrence {
    pub fn falls_on(self, date: Date) -> bool {
        match self {
            Recurrence::Daily => true,
            Recurrence::Weekly(weekday) => date.weekday() == weekday,
            Recurrence::MonthlyNth(nth, weekday) => {
                date.weekday() == weekday && (date.day() as u8 - 1) / 7 + 1 == nth
            }
            Recurrence::MonthlyLast(weekday) => {
                date.weekday() == weekday && date.day() + 7 > date.days_in_month()
            }
        }
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ordinal = |nth: u8| ["first", "second", "third", "fourth"][(nth as usize - 1).min(3)];
        match self {
            Recurrence::Daily => f.write_str("every day"),
            Recurrence::Weekly(weekday) => write!(f, "every {}", weekday_name(*weekday)),
            Recurrence::MonthlyNth(nth, weekday) => {
                write!(
                    f,
                    "the {} {} of each month",
                    ordinal(*nth),
                    weekday_name(*weekday)
                )
            }
            Recurrence::MonthlyLast(weekday) => {
                write!(f, "the last {} of each month", weekday_name(*weekday))
            }
        }
    }
}

/// The English name of a weekday as policy files spell it.
pub fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

/// A hold on one alert: until when, and which windows hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until: Timestamp,
    pub windows: Vec<String>,
}

/// Whether an alert of `kind` on `host` is held at `at`, and until when. Windows that
/// overlap or follow each other without a gap make one hold ending when the last one does.
pub fn hold_at(
    windows: &[MaintenanceWindow],
    time_zone: &TimeZone,
    host: &str,
    role: Option<&str>,
    kind: AlertKind,
    at: Timestamp,
) -> Option<Hold> {
    let applicable: Vec<&MaintenanceWindow> = windows
        .iter()
        .filter(|window| window.applies_to(host, role, kind))
        .collect();
    let mut hold: Option<Hold> = None;
    let mut probe = at;
    for _ in 0..LONGEST_CHAIN {
        let mut extended = false;
        for window in &applicable {
            if let Some((_, end)) = window.occurrence_containing(time_zone, probe) {
                let hold = hold.get_or_insert_with(|| Hold {
                    until: end,
                    windows: Vec::new(),
                });
                if !hold.windows.contains(&window.name) {
                    hold.windows.push(window.name.clone());
                }
                if end > hold.until {
                    hold.until = end;
                }
                extended |= end > probe;
            }
        }
        match &hold {
            Some(current) if extended && current.until > probe => probe = current.until,
            _ => break,
        }
    }
    hold
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn local(text: &str) -> Timestamp {
        berlin()
            .to_timestamp(text.parse::<jiff::civil::DateTime>().unwrap())
            .unwrap()
    }

    fn weekly(name: &str, weekday: Weekday, starting: &str, hours: i64) -> MaintenanceWindow {
        MaintenanceWindow {
            name: name.into(),
            schedule: Schedule::Every {
                recurrence: Recurrence::Weekly(weekday),
                starting: starting.parse().unwrap(),
                lasts: SignedDuration::from_hours(hours),
            },
            scope: HostScope::default(),
            kinds: Vec::new(),
        }
    }

    #[test]
    fn patch_tuesday_is_the_second_tuesday() {
        let patch_tuesday = Recurrence::MonthlyNth(2, Weekday::Tuesday);
        assert!(patch_tuesday.falls_on(date(2025, 6, 10)));
        assert!(!patch_tuesday.falls_on(date(2025, 6, 3)));
        assert!(!patch_tuesday.falls_on(date(2025, 6, 17)));
        let last_sunday = Recurrence::MonthlyLast(Weekday::Sunday);
        assert!(last_sunday.falls_on(date(2025, 3, 30)));
        assert!(!last_sunday.falls_on(date(2025, 3, 23)));
    }

    #[test]
    fn a_window_that_crosses_midnight_holds_after_midnight() {
        let windows = [weekly("saturday night", Weekday::Saturday, "22:00", 4)];
        let hold = hold_at(
            &windows,
            &berlin(),
            "srv",
            None,
            AlertKind::HostDown,
            local("2025-06-15T01:00"),
        )
        .unwrap();
        assert_eq!(hold.until, local("2025-06-15T02:00"));
        assert!(hold_at(
            &windows,
            &berlin(),
            "srv",
            None,
            AlertKind::HostDown,
            local("2025-06-15T02:00")
        )
        .is_none());
    }

    #[test]
    fn back_to_back_windows_make_one_hold() {
        let mut upgrade = weekly("upgrade", Weekday::Saturday, "18:00", 2);
        upgrade.schedule = Schedule::Once {
            start: local("2025-06-14T18:00"),
            end: local("2025-06-14T22:00"),
        };
        let windows = [
            upgrade,
            weekly("saturday night", Weekday::Saturday, "22:00", 4),
        ];
        let hold = hold_at(
            &windows,
            &berlin(),
            "srv",
            None,
            AlertKind::HostDown,
            local("2025-06-14T19:00"),
        )
        .unwrap();
        assert_eq!(hold.until, local("2025-06-15T02:00"));
        assert_eq!(hold.windows, vec!["upgrade", "saturday night"]);
    }

    #[test]
    fn a_window_only_holds_the_kinds_and_hosts_it_names() {
        let mut window = weekly("backup night", Weekday::Friday, "20:00", 10);
        window.kinds = vec![AlertKind::Saturation];
        window.scope.roles = vec!["server".into()];
        let at = local("2025-06-13T23:00");
        let tz = berlin();
        assert!(hold_at(
            &[window.clone()],
            &tz,
            "srv",
            Some("server"),
            AlertKind::Saturation,
            at
        )
        .is_some());
        assert!(hold_at(
            &[window.clone()],
            &tz,
            "srv",
            Some("server"),
            AlertKind::HostDown,
            at
        )
        .is_none());
        assert!(hold_at(
            &[window],
            &tz,
            "ws1",
            Some("workstation"),
            AlertKind::Saturation,
            at
        )
        .is_none());
    }
}
