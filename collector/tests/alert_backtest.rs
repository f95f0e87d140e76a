//! `backtest` end to end: an OpenMetrics file grouped by series (not by time), replayed
//! through the engine, printed as the JSON Lines contract of the scenario scorer.

use std::io::Write;
use vigil_collector::alert::{backtest, load_rules, RuleSet};

const START: i64 = 1_736_121_600;

/// One day of a host at 60 s: `service_up{service="nginx"}` down from 12:00, and no
/// samples at all between 18:00 and 18:30.
fn write_trace(path: &std::path::Path) {
    let mut text = String::new();
    let silent = |t: i64| (START + 18 * 3600..START + 18 * 3600 + 1800).contains(&t);
    text.push_str("# HELP service_up 1 if the service is running.\n# TYPE service_up gauge\n");
    for t in (START..START + 86_400).step_by(60) {
        if silent(t) {
            continue;
        }
        let up = if t >= START + 12 * 3600 { 0 } else { 1 };
        text.push_str(&format!(
            "service_up{{host=\"web-01\",client=\"acme\",service=\"nginx\"}} {up} {t}\n"
        ));
    }
    text.push_str("# HELP system_uptime_seconds Seconds since boot.\n");
    text.push_str("# TYPE system_uptime_seconds gauge\n");
    for t in (START..START + 86_400).step_by(60) {
        if silent(t) {
            continue;
        }
        text.push_str(&format!(
            "system_uptime_seconds{{host=\"web-01\",client=\"acme\"}} {} {t}\n",
            t - START + 1000
        ));
    }
    text.push_str("# EOF\n");
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn replay(rules: RuleSet, path: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let replay = backtest::run(rules, path, &mut out).unwrap();
    assert_eq!(replay.samples, 2 * (1440 - 30));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn backtest_prints_one_json_line_per_state_change_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("web-01.om");
    write_trace(&trace);
    let lines = replay(RuleSet::builtin(), &trace);
    let summary: Vec<(i64, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["ts"].as_i64().unwrap(),
                l["rule"].as_str().unwrap(),
                l["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (START + 12 * 3600 + 300, "ServiceDown", "firing"),
            (START + 18 * 3600 + 300, "HostSilent", "firing"),
            (START + 18 * 3600 + 1800, "HostSilent", "resolved"),
        ]
    );
    let first = &lines[0];
    assert_eq!(first["host"], "web-01");
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["kind"], "service_down");
    assert_eq!(first["labels"], serde_json::json!({"service": "nginx"}));
    assert!(first["summary"]
        .as_str()
        .unwrap()
        .contains("service nginx on web-01 is down"));
    assert_eq!(lines[1]["kind"], "host_down");
    assert_eq!(lines[1]["labels"], serde_json::json!({}));
}

#[test]
fn a_rules_file_changes_what_the_backtest_reports() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("web-01.om");
    write_trace(&trace);
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(
        &rules_path,
        "[rules.ServiceDown]\nenabled = false\n\n[rules.HostSilent]\nafter = \"40m\"\n",
    )
    .unwrap();
    let lines = replay(load_rules(&rules_path).unwrap(), &trace);
    assert!(lines.is_empty(), "{lines:#?}");
}

#[test]
fn a_file_that_is_not_openmetrics_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("broken.om");
    std::fs::write(
        &trace,
        "# TYPE x gauge\nx{host=\"a\"} not-a-number 1\n# EOF\n",
    )
    .unwrap();
    let error = backtest::run(RuleSet::builtin(), &trace, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("broken.om:2"), "{error}");
}

/// A contract for the trace's host: business hours 09:00–18:00 UTC, only emergencies
/// after hours, five minutes of silence an emergency.
const POLICY: &str = "client = \"acme\"\ntime_zone = \"UTC\"\nafter_hours = \"emergency\"\n\
    [hours]\nweekdays = \"09:00-18:00\"\n\
    [[role]]\nname = \"server\"\nhosts = [\"web-01\"]\n\
    [[rule]]\nname = \"server unreachable\"\nkinds = [\"host_down\"]\nroles = [\"server\"]\nlasting = \"5m\"\nseverity = \"emergency\"\n";

fn run_binary(args: &[&str]) -> Vec<serde_json::Value> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-collector"))
        .arg("backtest")
        .args(args)
        .output()
        .expect("running vigil-collector backtest");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn backtest_with_a_policy_prints_what_the_contract_delivers_and_engine_only_the_raw_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.om");
    write_trace(&trace);
    let policy = dir.path().join("acme.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let (trace, policy) = (trace.to_str().unwrap(), policy.to_str().unwrap());

    let delivered = run_binary(&["--policy", policy, trace]);
    // The silence at 18:00 (after hours) is an emergency by the contract, paged at once.
    let silence = delivered
        .iter()
        .find(|line| line["rule"] == "HostSilent" && line["state"] == "firing")
        .unwrap_or_else(|| panic!("{delivered:?}"));
    assert_eq!(silence["severity"], "emergency", "{silence}");
    assert_eq!(
        silence["routes"],
        serde_json::json!(["on_call"]),
        "{silence}"
    );
    let ts = silence["ts"].as_i64().unwrap();
    assert!(
        (START + 18 * 3600..START + 18 * 3600 + 1800).contains(&ts),
        "{silence}"
    );
    // Every line says where it went and carries the scorer's fields.
    for line in &delivered {
        for field in [
            "ts", "host", "rule", "severity", "state", "summary", "routes",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }

    // --engine-only: the engine's transitions as without a policy (this one has no
    // [forecast]), with no routes.
    let raw = run_binary(&["--policy", policy, "--engine-only", trace]);
    assert_eq!(raw, run_binary(&[trace]));
    assert!(raw.iter().all(|line| line.get("routes").is_none()));
    assert!(raw
        .iter()
        .any(|line| line["rule"] == "HostSilent" && line["severity"] == "critical"));
}
