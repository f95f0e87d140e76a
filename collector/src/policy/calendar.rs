//! Business hours in the client's time zone: whether the practice is open at an instant, when
//! it next opens, and response clocks that run only while it is open.
//!
//! Opening hours are civil times ("08:00–17:00 on Mondays") and are turned into instants day
//! by day through the time zone, so a response clock is right across daylight-saving changes:
//! an hour of business time is an hour someone is at the desk, whatever the UTC offset did
//! over the weekend. Nothing here reads the clock; every instant is a parameter.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// How many days ahead the calendar looks for an opening before giving up. Validation
/// guarantees at least one open weekday and bounds holiday ranges, so this is only reached by
/// a calendar closed for years.
const SEARCH_HORIZON_DAYS: usize = 3 * 366;

/// One span of opening hours within a day, in minutes after local midnight.
/// `end_minute` may be 1440: open until midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenInterval {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl fmt::Display for OpenInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = |minute: u16| format!("{:02}:{:02}", minute / 60, minute % 60);
        write!(f, "{}-{}", clock(self.start_minute), clock(self.end_minute))
    }
}

/// Days the practice is closed, first and last included (one day: `first == last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolidayRange {
    pub first: Date,
    pub last: Date,
}

impl HolidayRange {
    pub fn contains(&self, date: Date) -> bool {
        self.first <= date && date <= self.last
    }
}

/// A client's week of opening hours, its holidays and its time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    time_zone: TimeZone,
    /// Opening hours per weekday, Monday first, each day's intervals sorted and disjoint.
    week: [Vec<OpenInterval>; 7],
    holidays: Vec<HolidayRange>,
}

impl BusinessCalendar {
    /// `week` is Monday first; each day's intervals must be sorted and disjoint (validation
    /// ensures it for policy files).
    pub fn new(
        time_zone: TimeZone,
        week: [Vec<OpenInterval>; 7],
        holidays: Vec<HolidayRange>,
    ) -> Self {
        Self {
            time_zone,
            week,
            holidays,
        }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The opening hours of a weekday, ignoring holidays.
    pub fn hours_on(&self, weekday: Weekday) -> &[OpenInterval] {
        &self.week[weekday.to_monday_zero_offset() as usize]
    }

    pub fn holidays(&self) -> &[HolidayRange] {
        &self.holidays
    }

    /// The holiday that closes `date`, if any.
    pub fn holiday_on(&self, date: Date) -> Option<&HolidayRange> {
        self.holidays.iter().find(|holiday| holiday.contains(date))
    }

    /// The client's civil date at an instant.
    pub fn local_date(&self, at: Timestamp) -> Date {
        self.time_zone.to_datetime(at).date()
    }

    /// The opening hours of one local date as instants, `[open, close)`; none on holidays.
    pub fn open_spans_on(&self, date: Date) -> Vec<(Timestamp, Timestamp)> {
        if self.holiday_on(date).is_some() {
            return Vec::new();
        }
        self.hours_on(date.weekday())
            .iter()
            .filter_map(|interval| {
                let open = self.instant_at(date, interval.start_minute)?;
                let close = self.instant_at(date, interval.end_minute)?;
                (open < close).then_some((open, close))
            })
            .collect()
    }

    /// The instant a local date shows `minute` minutes after midnight (1440 = next midnight).
    /// A time skipped by a daylight-saving jump resolves the way clocks do: 02:30 on the
    /// night clocks spring from 02:00 to 03:00 is 03:30.
    pub fn instant_at(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let (date, minute) = if minute >= 24 * 60 {
            (date.tomorrow().ok()?, minute - 24 * 60)
        } else {
            (date, minute)
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        self.time_zone.to_timestamp(date.to_datetime(time)).ok()
    }

    /// Whether someone is at the desk at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.open_spans_on(self.local_date(at))
            .iter()
            .any(|&(open, close)| open <= at && at < close)
    }

    /// `at` itself if open then, else the next opening. `None` only for a calendar with no
    /// opening in the search horizon.
    pub fn next_open_at(&self, at: Timestamp) -> Option<Timestamp> {
        let mut date = self.local_date(at);
        for _ in 0..SEARCH_HORIZON_DAYS {
            for (open, close) in self.open_spans_on(date) {
                if at < close {
                    return Some(open.max(at));
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The instant when `amount` of open time has passed since `start`: "4 business hours
    /// from Friday 16:00" on a 08:00–17:00 week is Monday 11:00. Starting while closed, the
    /// clock starts at the next opening. `None` only when no opening is in the horizon.
    pub fn add_business_time(&self, start: Timestamp, amount: SignedDuration) -> Option<Timestamp> {
        let mut remaining = amount.max(SignedDuration::ZERO);
        let mut date = self.local_date(start);
        for _ in 0..SEARCH_HORIZON_DAYS {
            for (open, close) in self.open_spans_on(date) {
                let from = open.max(start);
                if from >= close {
                    continue;
                }
                let available = close.duration_since(from);
                if remaining <= available {
                    return from.checked_add(remaining).ok();
                }
                remaining -= available;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn interval(start: &str, end: &str) -> OpenInterval {
        let minute = |text: &str| {
            let (hours, minutes) = text.split_once(':').unwrap();
            hours.parse::<u16>().unwrap() * 60 + minutes.parse::<u16>().unwrap()
        };
        OpenInterval {
            start_minute: minute(start),
            end_minute: minute(end),
        }
    }

    /// Monday to Friday 08:00–17:00 in the given zone.
    fn office_week(zone: &str, holidays: Vec<HolidayRange>) -> BusinessCalendar {
        let day = vec![interval("08:00", "17:00")];
        BusinessCalendar::new(
            TimeZone::get(zone).unwrap(),
            [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                Vec::new(),
                Vec::new(),
            ],
            holidays,
        )
    }

    fn local(calendar: &BusinessCalendar, text: &str) -> Timestamp {
        let datetime: jiff::civil::DateTime = text.parse().unwrap();
        calendar.time_zone().to_timestamp(datetime).unwrap()
    }

    fn shown(calendar: &BusinessCalendar, at: Timestamp) -> String {
        calendar.time_zone().to_datetime(at).to_string()
    }

    #[test]
    fn four_business_hours_from_friday_afternoon_land_on_monday_morning() {
        let calendar = office_week("Europe/Berlin", Vec::new());
        let due = calendar
            .add_business_time(
                local(&calendar, "2025-06-13T16:00"),
                SignedDuration::from_hours(4),
            )
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-06-16T11:00:00");
    }

    #[test]
    fn business_hours_across_the_spring_change_in_berlin_count_hours_at_the_desk() {
        // Clocks go from 02:00 to 03:00 on Sunday 30 March 2025. Monday opens at 08:00 CEST
        // (06:00 UTC), one hour earlier in UTC than Friday's 08:00 CET (07:00 UTC).
        let calendar = office_week("Europe/Berlin", Vec::new());
        let friday = local(&calendar, "2025-03-28T16:00");
        let due = calendar
            .add_business_time(friday, SignedDuration::from_hours(4))
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-03-31T11:00:00");
        assert_eq!(due.to_string(), "2025-03-31T09:00:00Z");
        // Real time elapsed is one hour less than the civil clocks suggest.
        assert_eq!(
            due.duration_since(friday),
            SignedDuration::from_hours(24 * 3 - 5 - 1)
        );
    }

    #[test]
    fn business_hours_across_the_autumn_change_in_berlin_count_hours_at_the_desk() {
        // Clocks go from 03:00 back to 02:00 on Sunday 26 October 2025.
        let calendar = office_week("Europe/Berlin", Vec::new());
        let due = calendar
            .add_business_time(
                local(&calendar, "2025-10-24T15:30"),
                SignedDuration::from_hours(3),
            )
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-10-27T09:30:00");
        assert_eq!(due.to_string(), "2025-10-27T08:30:00Z");
    }

    #[test]
    fn business_hours_across_the_spring_change_in_new_york() {
        // Clocks go from 02:00 to 03:00 on Sunday 9 March 2025.
        let calendar = office_week("America/New_York", Vec::new());
        let due = calendar
            .add_business_time(
                local(&calendar, "2025-03-07T16:00"),
                SignedDuration::from_hours(4),
            )
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-03-10T11:00:00");
        assert_eq!(due.to_string(), "2025-03-10T15:00:00Z");
    }

    #[test]
    fn a_day_open_around_the_clock_is_twenty_three_hours_long_when_clocks_spring_forward() {
        let around_the_clock = vec![interval("00:00", "24:00")];
        let calendar = BusinessCalendar::new(
            TimeZone::get("Europe/Berlin").unwrap(),
            std::array::from_fn(|_| around_the_clock.clone()),
            Vec::new(),
        );
        let spans = calendar.open_spans_on(date(2025, 3, 30));
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].1.duration_since(spans[0].0),
            SignedDuration::from_hours(23)
        );
        let spans = calendar.open_spans_on(date(2025, 10, 26));
        assert_eq!(
            spans[0].1.duration_since(spans[0].0),
            SignedDuration::from_hours(25)
        );
    }

    #[test]
    fn holidays_close_the_practice_and_push_the_clock_on() {
        let christmas = HolidayRange {
            first: date(2025, 12, 24),
            last: date(2025, 12, 26),
        };
        let calendar = office_week("Europe/Berlin", vec![christmas]);
        assert!(!calendar.is_open(local(&calendar, "2025-12-24T10:00")));
        assert!(calendar.is_open(local(&calendar, "2025-12-23T10:00")));
        // Tuesday 23rd 16:00 + 2 business hours: one hour on the 23rd, the 24th to 26th closed,
        // the 27th and 28th a weekend, so one hour on Monday 29th.
        let due = calendar
            .add_business_time(
                local(&calendar, "2025-12-23T16:00"),
                SignedDuration::from_hours(2),
            )
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-12-29T09:00:00");
        let opening = calendar
            .next_open_at(local(&calendar, "2025-12-24T09:00"))
            .unwrap();
        assert_eq!(shown(&calendar, opening), "2025-12-29T08:00:00");
    }

    #[test]
    fn next_opening_is_now_when_open_and_the_next_morning_when_closed() {
        let calendar = office_week("America/New_York", Vec::new());
        let open = local(&calendar, "2025-06-11T09:15");
        assert_eq!(calendar.next_open_at(open), Some(open));
        let evening = local(&calendar, "2025-06-11T19:00");
        let morning = calendar.next_open_at(evening).unwrap();
        assert_eq!(shown(&calendar, morning), "2025-06-12T08:00:00");
        let closing = local(&calendar, "2025-06-11T17:00");
        assert!(!calendar.is_open(closing), "closing time is closed");
    }

    #[test]
    fn a_clock_started_while_closed_starts_at_the_next_opening() {
        let calendar = office_week("Europe/Berlin", Vec::new());
        let due = calendar
            .add_business_time(
                local(&calendar, "2025-06-14T22:00"),
                SignedDuration::from_mins(30),
            )
            .unwrap();
        assert_eq!(shown(&calendar, due), "2025-06-16T08:30:00");
    }
}
