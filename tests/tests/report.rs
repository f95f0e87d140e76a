//! The monthly client report, from stored data to figures and page: a month of two clients'
//! metrics imported with the real `import` path, the same samples replayed through the live
//! alert pipeline (engine, contracts, dispatch, outbox, alert history) on a simulated clock,
//! technicians acknowledging alerts in the outbox, an agent that announced a shutdown, an
//! outage inside a maintenance window and a declined measure — and the report's figures
//! checked against numbers worked out by hand from the scenario below.
//!
//! The error cases run the real binary: an unknown client, a month in the future and a month
//! without data each end with one line and no file.

//!
//! The month itself (two clients, what happened when) is built by
//! [`vigil_tests::report_month`].

use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::path::Path;
use vigil_collector::notify::Clock;
use vigil_collector::pipeline::Policies;
use vigil_collector::policy::ContractSeverity;
use vigil_collector::report::{self, Month, MonthReport};
use vigil_collector::store::{Store, StoreConfig};
use vigil_tests::report_month::*;

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

#[test]
fn a_german_contract_gets_its_report_in_german_with_no_english_left() {
    let data = tempfile::tempdir().unwrap();
    build_month(data.path());
    record_server_inventory(data.path());
    // The practice asks for its reports in German from mid-October on: a new contract
    // version, in force for November.
    let source = data.path().join("policy-files");
    let german = NORTH.replace("day = 1\n", "day = 1\nlanguage = \"de\"\n");
    assert_ne!(german, NORTH);
    std::fs::write(source.join("north-dental.toml"), german).unwrap();
    let problems = Policies::open(data.path(), Some(source))
        .sync("test", "2026-10-15T00:00:00Z".parse().unwrap());
    assert!(problems.is_empty(), "{problems:?}");

    let north = month_report(data.path(), "north-dental");
    assert_eq!(north.policy_version, 2);
    let page = report::html::render(&north);
    for expected in [
        "<html lang=\"de\">",
        "North Dental — IT-Bericht für November 2026",
        "Verfügbarkeit",
        // Decimal comma, the currency after the amount.
        "99,72 %",
        "450,00 EUR",
        "Datenträger D: auf a-srv01 wäre um den 2",
        "Platz wurde bis zum 14. freigegeben",
        "Abgelehnte Vorsorgemaßnahmen",
        "Datensicherung am 02.03.2026 abgelehnt",
        // Day and month names in the outage table and the chart.
        "Sa. 21. Nov. 20:00",
        "(4 Kerne)",
    ] {
        assert!(
            page.contains(expected),
            "the German page lacks {expected:?}"
        );
    }
    // No English string of the catalog is left: every heading, header cell, sentence and
    // word the English catalog has (where German differs) is absent from the page.
    let escape = |text: &str| text.replace('\'', "&#39;");
    let mut checked = 0;
    for (key, english) in report::i18n::EN {
        let german = report::i18n::Language::De.template(key);
        if german == *english {
            continue;
        }
        if key.starts_with("h.") || key.starts_with("th.") || key.starts_with("figure.") {
            assert!(
                !page.contains(&format!(">{}<", escape(english))),
                "{key}: {english:?} left in English"
            );
        }
        for fragment in english.split(['{', '}']).step_by(2) {
            let fragment = fragment.trim_matches(|c: char| !c.is_alphanumeric());
            if fragment.len() >= 6 && fragment.contains(' ') {
                checked += 1;
                assert!(
                    !page.contains(&escape(fragment)),
                    "{key}: {fragment:?} left in English"
                );
            }
        }
    }
    assert!(
        checked > 80,
        "only {checked} English phrases were looked for"
    );
}
