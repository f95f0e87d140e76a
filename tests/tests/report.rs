//! The monthly client report, from stored data to figures and page: a month of two clients'
//! metrics imported with the real `import` path, the same samples replayed through the live
//! alert pipeline (engine, contracts, dispatch, outbox, alert history) on a simulated clock,
//! technicians acknowledging alerts in the outbox, an agent that announced a shutdown, an
//! outage inside a maintenance window and a declined measure — and the report's figures
//! checked against numbers worked out by hand from the scenario below.
//!
//! The error cases run the real binary: an unknown client, a month in the future and a month
//! without data each end with one line and no file.

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
use vigil_collector::policy::ContractSeverity;
use vigil_collector::report::{self, Month, MonthReport};
use vigil_collector::store::{Store, StoreConfig};
use vigil_proto::model::Sample;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Agents report every five minutes; the engine evaluates as often.
const STEP_MS: i64 = 5 * MINUTE_MS;
const GB: f64 = 1e9;

/// A dental practice in Berlin: a server and two workstations, a cost of downtime, a Sunday
/// maintenance window for the server, and backups of the workstations declined.
const NORTH: &str = r#"
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
const WEST: &str = r#"
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

fn berlin(text: &str) -> i64 {
    local("Europe/Berlin", text)
}

fn new_york(text: &str) -> i64 {
    local("America/New_York", text)
}

fn local(zone: &str, text: &str) -> i64 {
    let civil: DateTime = text.parse().unwrap();
    TimeZone::get(zone)
        .unwrap()
        .to_timestamp(civil)
        .unwrap()
        .as_millisecond()
}

/// Half-open spans during which a host sends nothing.
struct Host {
    name: &'static str,
    client: &'static str,
    gaps: Vec<(i64, i64)>,
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
fn hosts() -> Vec<Host> {
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
fn trace_range() -> (i64, i64) {
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
fn server_disk_used(at_ms: i64) -> f64 {
    let freed = berlin("2026-11-13T12:00");
    if at_ms >= freed {
        return 400.0 * GB;
    }
    let days = (at_ms - berlin("2026-11-01T00:00")) as f64 / DAY_MS as f64;
    (500.0 + 20.0 * days) * GB
}

/// b-srv01's C: 60 GB of 100 GB on 1 Nov, growing about 0.67 GB a day: 80 % at the end
/// and full within 90 days.
fn law_disk_used(at_ms: i64) -> f64 {
    let days = (at_ms - new_york("2026-11-01T00:00")) as f64 / DAY_MS as f64;
    (60.0 + 20.0 * days / 30.0) * GB
}

/// The OpenMetrics text of the month, one family after another.
fn openmetrics(hosts: &[Host]) -> String {
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
enum Event {
    /// The agent says goodbye before a shutdown.
    Goodbye(&'static str),
    /// `by` acknowledges the open alert of `rule` on `host`.
    Ack {
        host: &'static str,
        rule: &'static str,
        by: &'static str,
    },
}

fn events() -> Vec<(i64, Event)> {
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
fn build_month(data: &Path) {
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
fn record_server_inventory(data: &Path) {
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

fn month_report(data: &Path, client: &str) -> MonthReport {
    let store = Store::open_existing(&StoreConfig::new(data)).unwrap();
    let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
    report::build(
        data,
        Some(&store),
        client,
        Month::parse("2026-11").unwrap(),
        now,
    )
    .unwrap()
}

fn minutes(ms: i64) -> i64 {
    ms / MINUTE_MS
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn a_months_report_shows_the_figures_worked_out_by_hand() {
    let data = tempfile::tempdir().unwrap();
    build_month(data.path());
    record_server_inventory(data.path());

    let north = month_report(data.path(), "north-dental");
    let host = |name: &str| north.hosts.iter().find(|h| h.host == name).unwrap();
    let month_minutes = 30 * 24 * 60;
    assert_eq!(minutes(host("a-srv01").monitored_ms), month_minutes);
    // Availability: the two outages count, the maintenance one and the goodbye do not.
    assert_eq!(minutes(host("a-srv01").downtime_ms), 60 + 180);
    assert_eq!(minutes(host("a-srv01").downtime_business_ms), 60);
    assert_eq!(minutes(host("a-srv01").maintenance_ms), 30);
    assert_eq!(minutes(host("a-ws01").downtime_ms), 120);
    assert_eq!(minutes(host("a-ws02").downtime_ms), 0);
    assert!(close(
        host("a-srv01").availability(),
        1.0 - 240.0 / month_minutes as f64
    ));
    assert!(close(
        north.availability,
        1.0 - 360.0 / (3.0 * month_minutes as f64)
    ));
    assert_eq!(minutes(north.downtime_business_ms), 60 + 120);
    // Cost: only the server's business-hours hour; the workstation has a spare.
    assert_eq!(minutes(north.costly_downtime_ms), 60);
    assert_eq!(north.downtime_cost, Some(450.0));
    // Foreseen and prevented: the disk, freed on the 13th, predicted full around the 26th.
    assert_eq!(north.foreseen.len(), 1, "{:?}", north.foreseen);
    let disk = &north.foreseen[0];
    assert_eq!(
        (disk.host.as_str(), disk.labels["mountpoint"].as_str()),
        ("a-srv01", "D:")
    );
    assert!(disk.resolved_ms < berlin("2026-11-15T00:00"));
    let predicted_day = Timestamp::from_millisecond(disk.predicted_failure_ms)
        .unwrap()
        .to_zoned_datetime(TimeZone::get("Europe/Berlin").unwrap())
        .day();
    assert!((25..=27).contains(&predicted_day), "{predicted_day}");
    assert_eq!(north.avoided_downtime_ms, HOUR_MS);
    assert_eq!(north.avoided_cost, Some(450.0));
    // Response times against the contract.
    let row = |severity| {
        north
            .responses
            .iter()
            .find(|row| row.severity == severity)
            .unwrap()
            .clone()
    };
    let emergency = row(ContractSeverity::Emergency);
    assert_eq!(
        (emergency.alerts, emergency.met, emergency.missed),
        (3, 1, 1),
        "{emergency:?}"
    );
    // Silent from 10:00, fired at 10:15 (three sampling intervals), acknowledged at 10:30.
    assert_eq!(emergency.median_ms, Some(15 * MINUTE_MS));
    let warning = row(ContractSeverity::Warning);
    assert_eq!(
        (
            warning.alerts,
            warning.met,
            warning.missed,
            warning.not_counted
        ),
        (2, 1, 0, 1),
        "{warning:?}"
    );
    // The forecast, delivered at once in business hours and acknowledged two hours later.
    assert_eq!(warning.median_ms, Some(2 * HOUR_MS));
    let notice = row(ContractSeverity::Notice);
    assert_eq!(
        (notice.alerts, notice.met, notice.missed),
        (1, 1, 0),
        "{notice:?}"
    );
    // Stale from Monday 12:00 (36 hours), acknowledged Tuesday 09:00: 6 + 1 business hours.
    assert_eq!(notice.median_ms, Some(7 * HOUR_MS));
    // The declined measure, with the alert it capped.
    let backups = north
        .declined
        .iter()
        .find(|row| row.measure == "backups")
        .unwrap();
    assert_eq!(backups.capped.len(), 1, "{backups:?}");
    assert!(backups.capped[0].contains("BackupStale on a-ws01"));

    // The inventory appendix, and the server's OS near its end of support (12 January 2027).
    let server = north
        .inventory
        .iter()
        .find(|row| row.host == "a-srv01")
        .unwrap();
    assert_eq!(server.os, "Windows Server 2016 Standard 10.0.14393");
    assert_eq!(server.cpu, "Intel Xeon E-2224 (4 cores)");
    assert_eq!(server.disks.len(), 2);
    assert_eq!(server.first_seen_ms, Some(berlin("2026-11-01T00:00")));
    assert!(
        north
            .risks
            .iter()
            .any(|risk| risk.category == "os" && risk.text.contains("support ends on 2027-01-12")),
        "{:?}",
        north.risks
    );
    // The stale backup is a risk the client accepted in writing.
    assert!(
        north.risks.iter().any(|risk| risk.category == "backup"
            && risk.text.contains("backups declined on 2026-03-02")),
        "{:?}",
        north.risks
    );

    let west = month_report(data.path(), "west-law");
    let server = west.hosts.iter().find(|h| h.host == "b-srv01").unwrap();
    // November in New York has an extra hour: daylight saving ended on the 1st.
    assert_eq!(minutes(server.monitored_ms), month_minutes + 60);
    assert_eq!(minutes(server.downtime_ms), 30);
    assert_eq!(minutes(west.costly_downtime_ms), 30);
    assert_eq!(west.downtime_cost, Some(100.0));
    assert!(west.foreseen.is_empty());
    let critical = west
        .responses
        .iter()
        .find(|row| row.severity == ContractSeverity::Critical)
        .unwrap();
    assert_eq!((critical.alerts, critical.met), (1, 1), "{critical:?}");
    assert_eq!(critical.median_ms, Some(10 * MINUTE_MS));
    // Risks ahead from stored data: the law office's disk fills within 90 days.
    assert!(
        west.risks
            .iter()
            .any(|risk| risk.category == "disk" && risk.text.contains("disk C: on b-srv01")),
        "{:?}",
        west.risks
    );
    // Each client sees only its own hosts.
    let names: Vec<&str> = west.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(names, ["b-srv01", "b-ws01"]);

    let page = report::html::render(&north);
    for expected in [
        "North Dental",
        "November 2026",
        "99.",
        "EUR 450.00",
        "Disk D: on a-srv01 would have been full around the 2",
        "space was freed by the 14th",
        "<svg",
        "Preventive measures declined",
        "@page",
    ] {
        assert!(page.contains(expected), "page lacks {expected:?}");
    }
    assert!(!page.contains("http://") || page.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!page.contains("<script"), "the page runs no script");
    for tag in [
        "section", "table", "tr", "td", "th", "ul", "li", "p", "svg", "text", "title", "h2", "div",
        "rect", "footer", "header",
    ] {
        let opened =
            page.matches(&format!("<{tag} ")).count() + page.matches(&format!("<{tag}>")).count();
        let self_closed = page
            .split(&format!("<{tag} "))
            .skip(1)
            .filter(|rest| {
                rest.split('>')
                    .next()
                    .is_some_and(|inside| inside.ends_with('/'))
            })
            .count();
        let closed = page.matches(&format!("</{tag}>")).count();
        assert_eq!(
            opened - self_closed,
            closed,
            "<{tag}> opened and closed alike"
        );
    }
    assert!(!page.contains("src="), "the page loads nothing");
}

/// Runs `vigil-collector report` with `args` against the config in `folder`.
fn report_command(folder: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(vigil_tests::binary("vigil-collector"))
        .current_dir(folder)
        .arg("report")
        .arg("--config")
        .arg(folder.join("collector.toml"))
        .args(args)
        .env_remove("VIGIL_CONFIG")
        .output()
        .expect("running vigil-collector report")
}

/// The one error line of a failed run.
fn error_line(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the command succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

#[test]
fn an_unknown_client_a_future_month_and_a_month_without_data_write_no_report() {
    let pki = vigil_tests::Pki::new();
    pki.collector_config();
    let data = pki.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let source = pki.path("policy-files");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("north-dental.toml"), NORTH).unwrap();
    std::fs::write(source.join("west-law.toml"), WEST).unwrap();
    let problems =
        Policies::open(&data, Some(source)).sync("test", "2026-10-01T00:00:00Z".parse().unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    let folder = pki.path("");
    let out = pki.path("page.html");
    let out_arg = out.to_str().unwrap();

    let unknown = report_command(
        &folder,
        &[
            "--client",
            "south-vet",
            "--month",
            "2026-11",
            "--out",
            out_arg,
        ],
    );
    let line = error_line(&unknown);
    assert!(
        line.contains("client 'south-vet' is unknown")
            && line.contains("known clients: north-dental, west-law"),
        "{line}"
    );

    let future = report_command(
        &folder,
        &[
            "--client",
            "north-dental",
            "--month",
            "2099-01",
            "--out",
            out_arg,
        ],
    );
    let line = error_line(&future);
    assert!(line.contains("month 2099-01 has not begun yet"), "{line}");

    let empty = report_command(
        &folder,
        &[
            "--client", "west-law", "--month", "2026-06", "--out", out_arg,
        ],
    );
    let line = error_line(&empty);
    assert!(
        line.contains("client 'west-law' has no data for 2026-06"),
        "{line}"
    );

    let misspelt = report_command(
        &folder,
        &[
            "--client", "west-law", "--month", "2026-6", "--out", out_arg,
        ],
    );
    let line = error_line(&misspelt);
    assert!(line.contains("write it YYYY-MM"), "{line}");

    assert!(!out.exists(), "no report file is written");
    assert!(!data.join("reports").exists(), "no run is recorded");
}

#[test]
fn the_report_command_writes_the_page_records_the_run_and_sums_up_every_client() {
    let pki = vigil_tests::Pki::new();
    pki.collector_config();
    let data = pki.path("data");
    std::fs::create_dir_all(&data).unwrap();
    build_month(&data);
    let folder = pki.path("");
    let out = pki.path("north.html");
    let output = report_command(
        &folder,
        &[
            "--client",
            "north-dental",
            "--month",
            "2026-11",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains("North Dental — IT report for November 2026"));
    let runs = report::runs::read(&data).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].policy_version, 1);
    assert_eq!(
        runs[0].output_digest,
        vigil_collector::policy::version::digest_of(&page)
    );
    assert_eq!(std::fs::read_to_string(&runs[0].kept_as).unwrap(), page);

    let all = report_command(&folder, &["--all", "--month", "2026-11"]);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let table = String::from_utf8_lossy(&all.stdout);
    let north_line = table
        .lines()
        .find(|line| line.starts_with("north-dental"))
        .unwrap();
    assert!(
        north_line.contains("99.72 %") && north_line.contains("EUR 450"),
        "{table}"
    );
    let west_line = table
        .lines()
        .find(|line| line.starts_with("west-law"))
        .unwrap();
    assert!(
        west_line.contains("USD 100") && west_line.contains("1/1 met"),
        "{table}"
    );
}

/// For the interop suite (`tests/interop/report_*.sh`): the month above built into the data
/// folder `VIGIL_REPORT_DATA`, for the real binary, Chromium and an SMTP server to use.
#[test]
#[ignore = "run by tests/interop/report_chromium.sh and report_email.sh"]
fn a_month_for_the_interop_suite() {
    let data = std::env::var_os("VIGIL_REPORT_DATA").expect("VIGIL_REPORT_DATA names a folder");
    let data = Path::new(&data);
    std::fs::create_dir_all(data).unwrap();
    build_month(data);
    assert!(data.join("history").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by tests/interop/report_email.sh"]
async fn a_scheduled_send_for_the_interop_suite() {
    // `serve` on the config the script wrote (its data folder holds the month the fixture
    // built), its clock on the morning of December 1st in Berlin: the contracts' `[report]
    // day = 1`, so the schedule mails November's report by itself.
    let config =
        std::env::var_os("VIGIL_REPORT_CONFIG").expect("VIGIL_REPORT_CONFIG names a config");
    let config = vigil_collector::config::CollectorConfig::load(Path::new(&config)).unwrap();
    let data = config.data_dir.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let clock = Clock::manual(berlin("2026-12-01T09:00"));
    let collector =
        vigil_collector::serve::Collector::bind_with_clock(&config, shutdown.clone(), clock)
            .await
            .expect("the collector binds");
    let serving = tokio::spawn(collector.run());
    let sent = || {
        report::runs::read(&data)
            .unwrap_or_default()
            .iter()
            .any(|run| run.client == "north-dental" && run.month == "2026-11" && run.sent)
    };
    let started = std::time::Instant::now();
    while !sent() && started.elapsed() < std::time::Duration::from_secs(120) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    serving.await.unwrap().expect("the collector stops cleanly");
    assert!(sent(), "the schedule recorded November's report as sent");
}
