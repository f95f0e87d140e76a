//! [`Month`]: the `YYYY-MM` a report covers, as a range of instants in the client's zone.

use super::ReportError;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::fmt;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    /// Reads `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month, ReportError> {
        let invalid = || ReportError::Month {
            text: text.to_string(),
        };
        let (year, month) = text.trim().split_once('-').ok_or_else(invalid)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(invalid());
        }
        let year: i16 = year.parse().map_err(|_| invalid())?;
        let month: i8 = month.parse().map_err(|_| invalid())?;
        if !(1..=12).contains(&month) || !(1970..=9998).contains(&year) {
            return Err(invalid());
        }
        Ok(Month { year, month })
    }

    /// The month containing `at` in `zone`.
    pub fn containing(at: Timestamp, zone: &TimeZone) -> Month {
        let date = at.to_zoned_datetime(zone.clone()).date();
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn first_day(self) -> Date {
        Date::new(self.year, self.month, 1).expect("a parsed month has a first day")
    }

    pub fn previous(self) -> Month {
        match self.month {
            1 => Month {
                year: self.year - 1,
                month: 12,
            },
            month => Month {
                year: self.year,
                month: month - 1,
            },
        }
    }

    pub fn next(self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            month => Month {
                year: self.year,
                month: month + 1,
            },
        }
    }

    /// `[start, end)` of the month in `zone`, midnight to midnight local time.
    pub fn range(self, zone: &TimeZone) -> (Timestamp, Timestamp) {
        let at = |month: Month| {
            zone.to_timestamp(month.first_day().at(0, 0, 0, 0))
                .expect("a month's first midnight is an instant")
        };
        (at(self), at(self.next()))
    }

    /// "December 2026".
    pub fn title(self) -> String {
        self.first_day().strftime("%B %Y").to_string()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_midnight_to_midnight_in_the_clients_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let (start, end) = Month::parse("2026-11").unwrap().range(&berlin);
        assert_eq!(start.to_string(), "2026-10-31T23:00:00Z");
        assert_eq!(end.to_string(), "2026-11-30T23:00:00Z");
        assert_eq!(
            Month::parse("2026-01").unwrap().previous().to_string(),
            "2025-12"
        );
        assert_eq!(Month::parse("2026-11").unwrap().title(), "November 2026");
    }

    #[test]
    fn a_month_not_written_yyyy_mm_is_refused() {
        for text in ["2026-13", "2026-1", "26-01", "november", "2026-00"] {
            assert!(Month::parse(text).is_err(), "{text}");
        }
    }
}
