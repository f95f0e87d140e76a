//! A month of two clients' history, for the report's tests: the November 2026 of a dental
//! practice in Berlin and a law office in New York, their metrics imported with the real
//! `import` path and replayed through the live alert pipeline (engine, contracts, dispatch,
//! outbox, alert history) on a simulated clock, with acknowledgements, a goodbye, an outage
//! inside a maintenance window and a declined measure. `tests/tests/report.rs` checks the
//! figures against numbers worked out by hand; `tests/tests/report_console.rs` serves them.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use vigil_collector::alert::backtest::read_trace;
use vigil_collector::alert::{Engine, EngineSettings, RuleSet};
use vigil_collector::notify::{Clock, Outbox};
use vigil_collector::pipeline::{backtest::default_routing, Dispatch, LiveAlerts, Policies};
use vigil_collector::store::{Store, StoreConfig};
use vigil_proto::model::Sample;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Agents report every five minutes; the engine evaluates as often.
pub const STEP_MS: i64 = 5 * MINUTE_MS;
pub const GB: f64 = 1e9;

/// A dental practice in Berlin: a server and two workstations, a cost of downtime, a Sunday
/// maintenance window for the server, and backups of the workstations declined.
pub const NORTH: &str = r#"
client = "north-dental"
display_name = "North Dental"
time_zone = "Europe/Berlin"
downtime_cost_per_hour = 450
currency = "EUR"

[forecast]
warn_within = "14d"
critical_within = "3d"

[hours]
weekdays = "08:00-18:00"

[[role]]
name = "server"
hosts = ["a-srv01"]

[[role]]
name = "workstation"
hosts = ["a-ws*"]

[[rule]]
name = "server unreachable"
kinds = ["host_down"]
roles = ["server"]
lasting = "5m"
severity = "emergency"

[[rule]]
name = "one workstation"
kinds = ["host_down"]
roles = ["workstation"]
severity = "warning"

[[maintenance]]
name = "server reboot"
roles = ["server"]
kinds = ["host_down"]
every = "sunday 02:00"
lasts = "1h"

[[declined]]
measure = "backups"
roles = ["workstation"]
decided = "2026-03-02"
note = "PCs are re-imaged from the master image."

[report]
send_to = ["owner@north-dental.example"]
day = 1
"#;

/// A law office in New York: one server and one workstation, nothing else in the contract.
pub const WEST: &str = r#"
client = "west-law"
time_zone = "America/New_York"
downtime_cost_per_hour = 200
currency = "USD"

[hours]
weekdays = "09:00-17:00"

[[role]]
name = "server"
hosts = ["b-srv01"]
"#;

pub fn berlin(text: &str) -> i64 {
    local("Europe/Berlin", text)
}

pub fn new_york(text: &str) -> i64 {
    local("America/New_York", text)
}

pub fn local(zone: &str, text: &str) -> i64 {
    let civil: DateTime = text.parse().unwrap();
    TimeZone::get(zone)
        .unwrap()
        .to_timestamp(civil)
        .unwrap()
        .as_millisecond()
}

/// Half-open spans during which a host sends nothing.
pub struct Host {
    pub name: &'static str,
    pub client: &'static str,
    pub gaps: Vec<(i64, i64)>,
}

impl Host {
    fn reports_at(&self, at_ms: i64) -> bool {
        !self
            .gaps
            .iter()
            .any(|&(from, to)| from <= at_ms && at_ms < to)
    }
}

/// The month as it happened (every time is local to the client):
///
/// north-dental, November 2026 (Berlin, 30 days = 43 200 minutes):
/// - a-srv01 silent Tue 10 Nov 10:00–11:00 (last sample 10:00, back 11:00): 60 min in
///   business hours, an emergency; acknowledged 15 minutes after it fired.
/// - a-srv01 silent Sat 21 Nov 20:00–23:00: 180 min outside business hours, an emergency
///   nobody acknowledged: missed.
/// - a-srv01 silent Sun 8 Nov 02:10–02:40, inside the Sunday 02:00–03:00 maintenance
///   window: held, not downtime.
/// - a-ws01 silent Wed 11 Nov 14:00–16:00: 120 min in business hours, a warning (a
///   workstation), cleared before its response was due; no cost.
/// - a-ws02 said goodbye (shutdown) Fri 13 Nov 18:00 and was off until Mon 16 Nov 07:00:
///   not downtime.
/// - a-srv01's D: fills at 20 GB a day towards 1 TB (full around the 26th); the forecast
///   fires on the 12th at 11:50 (the trend needs its history), a technician acknowledges it
///   two business hours later, space is freed on the 13th and the forecast clears by the
///   14th: one failure foreseen and prevented.
/// - a-ws01's backup last succeeded on 1 Nov: stale from the 2nd, capped at notice by the
///   declined backups, acknowledged the next morning.
///
/// west-law, November 2026 (New York; the month has 30 days and one hour, as daylight saving
/// ended on 1 November): b-srv01 silent Thu 19 Nov 10:00–10:30, critical, acknowledged ten
/// minutes after it fired.
pub fn hosts() -> Vec<Host> {
    vec![
        Host {
            name: "a-srv01",
            client: "north-dental",
            gaps: vec![
                (berlin("2026-11-08T02:10") + 1, berlin("2026-11-08T02:40")),
                (berlin("2026-11-10T10:00") + 1, berlin("2026-11-10T11:00")),
                (berlin("2026-11-21T20:00") + 1, berlin("2026-11-21T23:00")),
            ],
        },
        Host {
            name: "a-ws01",
            client: "north-dental",
            gaps: vec![(berlin("2026-11-11T14:00") + 1, berlin("2026-11-11T16:00"))],
        },
        Host {
            name: "a-ws02",
            client: "north-dental",
            gaps: vec![(berlin("2026-11-13T18:00") + 1, berlin("2026-11-16T07:00"))],
        },
        Host {
            name: "b-srv01",
            client: "west-law",
            gaps: vec![(
                new_york("2026-11-19T10:00") + 1,
                new_york("2026-11-19T10:30"),
            )],
        },
        Host {
            name: "b-ws01",
            client: "west-law",
            gaps: Vec::new(),
        },
    ]
}

/// The trace from a day before November to a day after it, every five minutes.
pub fn trace_range() -> (i64, i64) {
    (
        Timestamp::from_second(1_793_404_800)
            .unwrap()
            .as_millisecond(), // 2026-10-31T00:00Z
        Timestamp::from_second(1_796_169_600)
            .unwrap()
            .as_millisecond(), // 2026-12-02T00:00Z
    )
}

/// a-srv01's D: in bytes: 500 GB on 1 Nov, 20 GB more a day, 400 GB from 13 Nov 12:00.
pub fn server_disk_used(at_ms: i64) -> f64 {
    let freed = berlin("2026-11-13T12:00");
    if at_ms >= freed {
        return 400.0 * GB;
    }
    let days = (at_ms - berlin("2026-11-01T00:00")) as f64 / DAY_MS as f64;
    (500.0 + 20.0 * days) * GB
}

/// b-srv01's C: 60 GB of 100 GB on 1 Nov, growing about 0.67 GB a day: 80 % at the end
/// and full within 90 days.
pub fn law_disk_used(at_ms: i64) -> f64 {
    let days = (at_ms - new_york("2026-11-01T00:00")) as f64 / DAY_MS as f64;
    (60.0 + 20.0 * days / 30.0) * GB
}

/// The OpenMetrics text of the month, one family after another.
pub fn openmetrics(hosts: &[Host]) -> String {
    let (from, to) = trace_range();
    let mut text = String::new();
    let grid = || (from..to).step_by(STEP_MS as usize);
    let labels = |host: &Host| format!("host=\"{}\",client=\"{}\"", host.name, host.client);
    text.push_str("# TYPE system_uptime_seconds gauge\n");
    for host in hosts {
        for at in grid().filter(|&at| host.reports_at(at)) {
            let _ = writeln!(
                text,
                "system_uptime_seconds{{{}}} {} {}",
                labels(host),
                (at - from) / 1000,
                at / 1000
            );
        }
    }
    text.push_str("# TYPE system_filesystem_usage_bytes gauge\n");
    for (host, mountpoint, used) in [
        (&hosts[0], "D:", server_disk_used as fn(i64) -> f64),
        (&hosts[3], "C:", law_disk_used),
    ] {
        for at in grid().filter(|&at| host.reports_at(at)) {
            let _ = writeln!(
                text,
                "system_filesystem_usage_bytes{{{},mountpoint=\"{mountpoint}\",state=\"used\"}} {} {}",
                labels(host),
                used(at),
                at / 1000
            );
        }
    }
    text.push_str("# TYPE system_filesystem_limit_bytes gauge\n");
    for (host, mountpoint, size) in [
        (&hosts[0], "D:", 1000.0 * GB),
        (&hosts[3], "C:", 100.0 * GB),
    ] {
        for at in grid().filter(|&at| host.reports_at(at)) {
            let _ = writeln!(
                text,
                "system_filesystem_limit_bytes{{{},mountpoint=\"{mountpoint}\"}} {size} {}",
                labels(host),
                at / 1000
            );
        }
    }
    text.push_str("# TYPE backup_last_success_timestamp_seconds gauge\n");
    let last_backup = berlin("2026-11-01T00:00") / 1000;
    for at in grid().filter(|&at| hosts[1].reports_at(at) && at >= berlin("2026-11-01T00:00")) {
        let _ = writeln!(
            text,
            "backup_last_success_timestamp_seconds{{{},job=\"nightly\"}} {last_backup} {}",
            labels(&hosts[1]),
            at / 1000
        );
    }
    text.push_str("# EOF\n");
    text
}

/// What happens besides samples, at an instant.
pub enum Event {
    /// The agent says goodbye before a shutdown.
    Goodbye(&'static str),
    /// `by` acknowledges the open alert of `rule` on `host`.
    Ack {
        host: &'static str,
        rule: &'static str,
        by: &'static str,
    },
}

pub fn events() -> Vec<(i64, Event)> {
    let mut events = vec![
        (berlin("2026-11-13T18:00"), Event::Goodbye("a-ws02")),
        (
            berlin("2026-11-10T10:30"),
            Event::Ack {
                host: "a-srv01",
                rule: "HostSilent",
                by: "tom",
            },
        ),
        (
            berlin("2026-11-12T13:50"),
            Event::Ack {
                host: "a-srv01",
                rule: "FilesystemFullForecast",
                by: "tom",
            },
        ),
        (
            berlin("2026-11-03T09:00"),
            Event::Ack {
                host: "a-ws01",
                rule: "BackupStale",
                by: "anna",
            },
        ),
        (
            new_york("2026-11-19T10:25"),
            Event::Ack {
                host: "b-srv01",
                rule: "HostSilent",
                by: "sam",
            },
        ),
    ];
    events.sort_by_key(|(at, _)| *at);
    events
}

/// Imports the trace into the store and replays it through the live pipeline writing the
/// alert history into `data`, with the contracts as of October.
pub fn build_month(data: &Path) {
    let hosts = hosts();
    let trace = data.join("november.om");
    std::fs::write(&trace, openmetrics(&hosts)).unwrap();
    let summary =
        vigil_collector::store::import::import_openmetrics(data, &trace, None).expect("import");
    assert!(summary.n_samples > 40_000, "{summary:?}");

    let source = data.join("policy-files");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("north-dental.toml"), NORTH).unwrap();
    std::fs::write(source.join("west-law.toml"), WEST).unwrap();
    let policies = Arc::new(Policies::open(data, Some(source)));
    let problems = policies.sync("test", "2026-10-01T00:00:00Z".parse().unwrap());
    assert!(problems.is_empty(), "{problems:?}");

    let settings = EngineSettings {
        evaluation_interval_ms: STEP_MS,
        ..EngineSettings::default()
    };
    let mut engine = Engine::with_settings(RuleSet::builtin(), settings);
    let samples = read_trace(&trace, |name, labels| engine.series_id(name, labels)).unwrap();
    let (first_ms, _) = trace_range();
    let clock = Clock::manual(first_ms);
    let outbox = Arc::new(Outbox::open(data).unwrap());
    let dispatch = Dispatch::new(outbox.clone(), policies, default_routing());
    let mut live = LiveAlerts::simulated(engine, dispatch, clock.clone());
    live.sync_policies("test");

    let mut events = events().into_iter().peekable();
    let mut next_evaluation_ms = first_ms + STEP_MS;
    for &(timestamp_ms, id, value) in &samples {
        while next_evaluation_ms < timestamp_ms {
            clock.set(next_evaluation_ms);
            live.evaluate();
            next_evaluation_ms += STEP_MS;
        }
        while let Some((at, _)) = events.peek() {
            // An event at an instant comes after that instant's samples.
            if *at >= timestamp_ms {
                break;
            }
            let (at, event) = events.next().unwrap();
            clock.set(at);
            match event {
                Event::Goodbye(host) => live.engine_mut().host_goodbye(host, None),
                Event::Ack { host, rule, by } => {
                    let open = outbox.open_alerts().unwrap();
                    let (record, _) = open
                        .iter()
                        .find(|(record, _)| record.alert.host == host && record.alert.rule == rule)
                        .unwrap_or_else(|| panic!("{rule} on {host} is open at {at}"));
                    outbox
                        .acknowledge(&record.alert.fingerprint, by, at)
                        .unwrap();
                }
            }
        }
        clock.set(timestamp_ms);
        live.observe(
            id,
            Sample {
                timestamp_ms,
                value,
            },
        );
    }
}

/// The inventory a-srv01's agent sent at its last connect, as ingest records it.
pub fn record_server_inventory(data: &Path) {
    let store = Store::open_existing(&StoreConfig::new(data)).unwrap();
    let record = serde_json::json!({
        "client": "north-dental",
        "inventory": {
            "hostname": "a-srv01",
            "os_name": "Windows Server 2016 Standard",
            "os_version": "10.0.14393",
            "kernel_version": "10.0.14393",
            "architecture": "x86_64",
            "cpu_model": "Intel Xeon E-2224",
            "cpu_cores": 4,
            "memory_bytes": 32_000_000_000u64,
            "disks": [
                {"mountpoint": "C:", "device": "disk0", "filesystem": "NTFS", "total_bytes": 256_000_000_000u64},
                {"mountpoint": "D:", "device": "disk1", "filesystem": "NTFS", "total_bytes": 1_000_000_000_000u64}
            ],
            "agent_version": "0.1.0",
            "boot_time_unix_seconds": 1_793_404_800
        },
        "interval_seconds": 300,
        "connected_at_ms": berlin("2026-11-21T23:00"),
    });
    store.put_host_record("a-srv01", &record).unwrap();
}
