//! Risks ahead, from the month's stored series and the inventory: disks forecast to fill
//! within 90 days, drives with growing SMART counts or NVMe wear, stale backups, restarts
//! pending for long, operating systems near or past the end of support. Pure: the series
//! are read by [`super::sources`].

use super::end_of_support;
use super::i18n::Language;
use super::InventoryRow;
use crate::alert::trend::theil_sen;
use crate::policy::Policy;
use crate::store::RangeSeries;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// The metrics a report reads, hourly over the month.
pub const METRICS: [&str; 9] = [
    "system_uptime_seconds",
    "system_cpu_utilization_ratio",
    "system_filesystem_usage_bytes",
    "system_filesystem_limit_bytes",
    "disk_smart_reallocated_sectors",
    "disk_smart_pending_sectors",
    "disk_smart_percentage_used",
    "backup_last_success_timestamp_seconds",
    "system_reboot_required",
];

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// How far ahead a disk filling up is a risk.
pub const DISK_HORIZON_DAYS: f64 = 90.0;
/// A backup older than this at the month's end is stale.
pub const BACKUP_STALE_MS: i64 = 2 * DAY_MS;
/// A restart pending longer than this is a risk.
pub const RESTART_PENDING_MS: i64 = 7 * DAY_MS;
/// NVMe wear at or above this percentage is a risk.
pub const NVME_WEAR_PERCENT: f64 = 80.0;
/// An operating system whose support ends within this many days is a risk.
pub const END_OF_SUPPORT_NOTICE_DAYS: i64 = 180;

/// One risk, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Risk {
    pub host: String,
    /// `disk`, `smart`, `backup`, `restart` or `os`.
    pub category: &'static str,
    pub text: String,
}

/// One series' hourly points: (hour, mean, max).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64, f64)>,
}

impl SeriesPoints {
    pub fn from_range(series: &RangeSeries) -> Self {
        Self {
            host: series.labels.get("host").unwrap_or_default().to_string(),
            labels: series
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            points: series
                .points
                .iter()
                .filter(|point| point.aggregate.count > 0)
                .map(|point| {
                    let aggregate = &point.aggregate;
                    (
                        point.timestamp_ms,
                        aggregate.sum / aggregate.count as f64,
                        aggregate.max,
                    )
                })
                .collect(),
        }
    }

    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The day of `ms` in the client's zone, as `t` writes dates.
fn date(t: Language, zone: &TimeZone, ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|at| t.date(at.to_zoned_datetime(zone.clone()).date()))
        .unwrap_or_default()
}

/// Every risk the stored series show as of `end_ms`.
pub fn from_series(
    policy: &Policy,
    series: &BTreeMap<String, Vec<SeriesPoints>>,
    end_ms: i64,
) -> Vec<Risk> {
    let zone = policy.calendar.time_zone();
    let t = super::language_of(policy);
    let none = Vec::new();
    let named = |name: &str| series.get(name).unwrap_or(&none);
    let mut risks = Vec::new();
    risks.extend(disks_filling(
        named("system_filesystem_usage_bytes"),
        named("system_filesystem_limit_bytes"),
        end_ms,
        zone,
        t,
    ));
    for name in [
        "disk_smart_reallocated_sectors",
        "disk_smart_pending_sectors",
    ] {
        for drive in named(name) {
            let (Some(first), Some(last)) = (drive.points.first(), drive.points.last()) else {
                continue;
            };
            if last.2 > first.2 {
                risks.push(Risk {
                    host: drive.host.clone(),
                    category: "smart",
                    text: t.text(
                        "risk.smart_grew",
                        &[
                            ("device", drive.label("device")),
                            ("host", &drive.host),
                            (
                                "attribute",
                                &t.text(
                                    if name == "disk_smart_pending_sectors" {
                                        "smart.pending_sectors"
                                    } else {
                                        "smart.reallocated_sectors"
                                    },
                                    &[],
                                ),
                            ),
                            ("from", &t.number(first.2, 0)),
                            ("to", &t.number(last.2, 0)),
                        ],
                    ),
                });
            }
        }
    }
    for drive in named("disk_smart_percentage_used") {
        if let Some(last) = drive
            .points
            .last()
            .filter(|last| last.2 >= NVME_WEAR_PERCENT)
        {
            risks.push(Risk {
                host: drive.host.clone(),
                category: "smart",
                text: t.text(
                    "risk.nvme_wear",
                    &[
                        ("device", drive.label("device")),
                        ("host", &drive.host),
                        (
                            "percent",
                            &t.text("percent", &[("value", &t.number(last.2, 0))]),
                        ),
                    ],
                ),
            });
        }
    }
    for job in named("backup_last_success_timestamp_seconds") {
        let Some(last) = job.points.last() else {
            continue;
        };
        let age_ms = end_ms - (last.2 * 1000.0) as i64;
        if age_ms > BACKUP_STALE_MS {
            risks.push(Risk {
                host: job.host.clone(),
                category: "backup",
                text: t.text(
                    "risk.backup_stale",
                    &[
                        ("job", job.label("job")),
                        ("host", &job.host),
                        ("days", &(age_ms / DAY_MS).to_string()),
                        ("date", &date(t, zone, (last.2 * 1000.0) as i64)),
                    ],
                ),
            });
        }
    }
    for host in named("system_reboot_required") {
        let pending_since = host
            .points
            .iter()
            .rev()
            .take_while(|point| point.2 >= 1.0)
            .last()
            .map(|point| point.0);
        if let Some(since) = pending_since.filter(|since| end_ms - since >= RESTART_PENDING_MS) {
            risks.push(Risk {
                host: host.host.clone(),
                category: "restart",
                text: t.text(
                    "risk.restart",
                    &[
                        ("host", &host.host),
                        ("days", &((end_ms - since) / DAY_MS).to_string()),
                        ("date", &date(t, zone, since)),
                    ],
                ),
            });
        }
    }
    risks
}

/// Filesystems that fill within [`DISK_HORIZON_DAYS`] at the month's rate (Theil–Sen over
/// the hourly means, robust to a one-off clean-up or copy).
pub fn disks_filling(
    used: &[SeriesPoints],
    limits: &[SeriesPoints],
    end_ms: i64,
    zone: &TimeZone,
    t: Language,
) -> Vec<Risk> {
    let mut risks = Vec::new();
    let mut scratch = Vec::new();
    for series in used.iter().filter(|s| s.label("state") == "used") {
        let mountpoint = series.label("mountpoint");
        let Some(limit) = limits
            .iter()
            .find(|limit| limit.host == series.host && limit.label("mountpoint") == mountpoint)
            .and_then(|limit| limit.points.last())
            .map(|point| point.2)
        else {
            continue;
        };
        let Some(&(last_ms, last_used, _)) = series.points.last() else {
            continue;
        };
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .map(|&(at, mean, _)| (at as f64 / DAY_MS as f64, mean))
            .collect();
        let Some(slope) = theil_sen(&points, &mut scratch) else {
            continue;
        };
        if slope.slope <= 0.0 || limit <= 0.0 {
            continue;
        }
        let days_left =
            (limit - last_used) / slope.slope - (end_ms - last_ms) as f64 / DAY_MS as f64;
        if days_left <= DISK_HORIZON_DAYS {
            let full_ms = end_ms + (days_left.max(0.0) * DAY_MS as f64) as i64;
            risks.push(Risk {
                host: series.host.clone(),
                category: "disk",
                text: t.text(
                    "risk.disk",
                    &[
                        ("mountpoint", mountpoint),
                        ("host", &series.host),
                        (
                            "used",
                            &t.text(
                                "percent",
                                &[("value", &t.number(100.0 * last_used / limit, 0))],
                            ),
                        ),
                        ("days", &t.number(days_left.max(0.0), 0)),
                        ("date", &date(t, zone, full_ms)),
                    ],
                ),
            });
        }
    }
    risks
}

/// Operating systems past or within [`END_OF_SUPPORT_NOTICE_DAYS`] of their end of support.
/// "Today" is the day the range ends in the client's `zone`.
pub fn end_of_support(
    inventory: &[InventoryRow],
    end_ms: i64,
    zone: &TimeZone,
    t: Language,
) -> Vec<Risk> {
    let today = Timestamp::from_millisecond(end_ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(zone.clone())
        .date();
    inventory
        .iter()
        .filter_map(|row| {
            let version = row.os.split_whitespace().last().unwrap_or_default();
            let entry = end_of_support::lookup(&row.os, version)?;
            let ends = entry.end_date()?;
            let days = ends
                .since(today)
                .map_or(0, |span| i64::from(span.get_days()));
            let values = [
                ("host", row.host.as_str()),
                ("os", entry.label.as_str()),
                ("date", &t.date(ends)),
            ];
            let text = if days < 0 {
                t.text("risk.os_ended", &values)
            } else if days <= END_OF_SUPPORT_NOTICE_DAYS {
                t.text("risk.os_ending", &values)
            } else {
                return None;
            };
            Some(Risk {
                host: row.host.clone(),
                category: "os",
                text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const DAY: i64 = DAY_MS;

    fn series(host: &str, labels: &[(&str, &str)], points: &[(i64, f64)]) -> SeriesPoints {
        SeriesPoints {
            host: host.into(),
            labels: labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            points: points
                .iter()
                .map(|&(at, value)| (at, value, value))
                .collect(),
        }
    }

    #[test]
    fn growing_smart_counts_stale_backups_and_long_pending_restarts_are_risks() {
        let policy = Policy::parse(
            Path::new("acme.toml"),
            "client = \"acme\"\ntime_zone = \"UTC\"\n[hours]\nweekdays = \"08:00-17:00\"\n",
        )
        .unwrap();
        let end = 30 * DAY;
        let mut named = BTreeMap::new();
        named.insert(
            "disk_smart_reallocated_sectors".to_string(),
            vec![
                series("srv", &[("device", "sda")], &[(0, 8.0), (20 * DAY, 24.0)]),
                series("pc", &[("device", "sdb")], &[(0, 3.0), (20 * DAY, 3.0)]),
            ],
        );
        named.insert(
            "backup_last_success_timestamp_seconds".to_string(),
            vec![
                series(
                    "srv",
                    &[("job", "nightly")],
                    &[(end - DAY, (end - DAY) as f64 / 1000.0)],
                ),
                series(
                    "nas",
                    &[("job", "weekly")],
                    &[(end - DAY, (end - 5 * DAY) as f64 / 1000.0)],
                ),
            ],
        );
        named.insert(
            "system_reboot_required".to_string(),
            vec![
                series(
                    "pc",
                    &[],
                    &[
                        (end - 10 * DAY, 0.0),
                        (end - 9 * DAY, 1.0),
                        (end - DAY, 1.0),
                    ],
                ),
                series("srv", &[], &[(end - 3 * DAY, 1.0), (end - DAY, 1.0)]),
            ],
        );
        let risks = from_series(&policy, &named, end);
        let said: Vec<(&str, &str)> = risks
            .iter()
            .map(|r| (r.category, r.host.as_str()))
            .collect();
        assert_eq!(
            said,
            [("smart", "srv"), ("backup", "nas"), ("restart", "pc")],
            "{risks:?}"
        );
        assert!(
            risks[0].text.contains("grew from 8 to 24"),
            "{}",
            risks[0].text
        );
        assert!(risks[1].text.contains("5 days before"), "{}", risks[1].text);
        assert!(risks[2].text.contains("waited 9 days"), "{}", risks[2].text);
    }

    #[test]
    fn operating_systems_near_or_past_their_end_of_support_are_risks() {
        let row = |host: &str, os: &str| InventoryRow {
            host: host.into(),
            os: os.into(),
            ..InventoryRow::default()
        };
        let end = "2026-12-01T00:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        let risks = end_of_support(
            &[
                row("old", "Windows 10.0.19045"),
                row("ended", "Debian GNU/Linux 11"),
                row("soon", "Windows Server 2016 Standard 10.0.14393"),
                row("fine", "Debian GNU/Linux 12"),
                row("odd", "Haiku R1"),
            ],
            end,
            &TimeZone::UTC,
            Language::En,
        );
        let hosts: Vec<&str> = risks.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts, ["old", "ended", "soon"], "{risks:?}");
        assert!(risks[0].text.contains("out of support since 2025-10-14"));
        assert!(
            risks[2].text.contains("support ends on 2027-01-12"),
            "{}",
            risks[2].text
        );
    }
}
