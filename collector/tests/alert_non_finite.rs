//! NaN and ±Inf samples through the built-in rules. The collector stores them as Prometheus
//! does (an agent may report a sensor that failed as NaN, a division by zero as Inf), so
//! every rule and forecast must take them without a panic and without a false alarm, and
//! must still see a real failure among them.

use vigil_collector::alert::{AlertState, Engine, RuleSet, Transition};
use vigil_proto::model::{Labels, Sample};

const MINUTE: i64 = 60_000;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn labels(name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut labels = Labels::from_pairs(extra.iter().copied());
    labels.insert("__name__", name);
    labels.insert("host", "srv-01");
    labels.insert("client", "acme");
    labels
}

/// A healthy server's series and a value for each at minute `m`.
fn healthy_host(m: i64) -> Vec<(Labels, f64)> {
    let wobble = ((m % 17) as f64) / 17.0;
    vec![
        (
            labels("system_cpu_utilization_ratio", &[]),
            0.2 + 0.1 * wobble,
        ),
        (labels("system_load_average_1m", &[]), 0.5 + wobble),
        (
            labels("system_memory_usage_bytes", &[("state", "used")]),
            6.0 * GIB + wobble * GIB,
        ),
        (
            labels("system_memory_usage_bytes", &[("state", "available")]),
            9.0 * GIB - wobble * GIB,
        ),
        (labels("system_memory_limit_bytes", &[]), 16.0 * GIB),
        (labels("system_swap_usage_bytes", &[]), 0.0),
        (
            labels(
                "system_filesystem_usage_bytes",
                &[("mountpoint", "/srv"), ("state", "used")],
            ),
            200.0 * GIB,
        ),
        (
            labels(
                "system_filesystem_usage_bytes",
                &[("mountpoint", "/srv"), ("state", "free")],
            ),
            300.0 * GIB,
        ),
        (
            labels("system_filesystem_limit_bytes", &[("mountpoint", "/srv")]),
            500.0 * GIB,
        ),
        (
            labels("system_temperature_celsius", &[("sensor", "cpu")]),
            45.0 + 3.0 * wobble,
        ),
        (labels("system_uptime_seconds", &[]), (m * 60) as f64),
        (labels("service_up", &[("service", "nginx")]), 1.0),
        (
            labels("process_memory_rss_bytes", &[("process", "postgres")]),
            2.0 * GIB,
        ),
        (labels("disk_smart_healthy", &[("device", "sda")]), 1.0),
        (
            labels("disk_smart_reallocated_sectors", &[("device", "sda")]),
            0.0,
        ),
        (
            labels("disk_smart_pending_sectors", &[("device", "sda")]),
            0.0,
        ),
        (
            labels("disk_smart_percentage_used", &[("device", "sda")]),
            12.0,
        ),
        (
            labels(
                "system_network_io_bytes_total",
                &[("device", "eth0"), ("direction", "receive")],
            ),
            (m * 1_000_000) as f64,
        ),
        (labels("system_reboot_required", &[]), 0.0),
        (labels("system_updates_pending", &[]), 0.0),
        (
            labels(
                "log_matches_total",
                &[("log", "syslog"), ("pattern", "oom")],
            ),
            0.0,
        ),
        (labels("vigil_agent_spool_dropped_batches_total", &[]), 0.0),
    ]
}

/// The value a sample carries at minute `m` of series `index`: now and then NaN, +Inf or
/// -Inf instead of the real one, in turns, so every series meets all three.
fn spoiled(index: usize, m: i64, real: f64) -> f64 {
    match (m + index as i64 * 7) % 23 {
        0 => f64::NAN,
        8 => f64::INFINITY,
        16 => f64::NEG_INFINITY,
        _ => real,
    }
}

/// Runs `minutes` of the host through the built-in rules, one sample a minute per series,
/// and returns every transition.
fn run(minutes: i64, host: impl Fn(i64) -> Vec<(Labels, f64)>) -> Vec<Transition> {
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = Vec::new();
    for m in 0..minutes {
        let now = m * MINUTE;
        for (index, (series, value)) in host(m).into_iter().enumerate() {
            let sample = Sample {
                timestamp_ms: now,
                value: spoiled(index, m, value),
            };
            out.extend(engine.observe(&series, sample));
        }
        out.extend(engine.evaluate(now));
    }
    out
}

#[test]
fn a_healthy_host_whose_samples_are_sometimes_nan_or_infinite_raises_no_alert() {
    let out = run(3 * 24 * 60, healthy_host);
    let fired: Vec<_> = out
        .iter()
        .filter(|t| t.state == AlertState::Firing)
        .map(|t| format!("{} {}", t.rule, t.summary))
        .collect();
    assert!(fired.is_empty(), "false alarms: {fired:#?}");
}

#[test]
fn a_disk_filling_among_nan_and_infinite_samples_is_still_foreseen_with_a_finite_forecast() {
    // /srv fills by 3 GiB an hour from 200 of 500 GiB: full in about four days, foreseen
    // once the forecast has its two days of history.
    let filling = |m: i64| {
        let used = 200.0 * GIB + 3.0 * GIB * (m as f64 / 60.0);
        let mut host = healthy_host(m);
        for (series, value) in host.iter_mut() {
            if series.get("mountpoint") == Some("/srv") {
                match series.get("state") {
                    Some("used") => *value = used,
                    Some("free") => *value = 500.0 * GIB - used,
                    _ => {}
                }
            }
        }
        host
    };
    let out = run(3 * 24 * 60, filling);
    let forecast = out
        .iter()
        .find(|t| t.state == AlertState::Firing && t.rule == "FilesystemFullForecast")
        .unwrap_or_else(|| panic!("no forecast among {out:#?}"));
    assert!(
        !forecast.summary.contains("NaN") && !forecast.summary.contains("inf"),
        "{}",
        forecast.summary
    );
    let others: Vec<_> = out
        .iter()
        .filter(|t| t.state == AlertState::Firing && t.rule != "FilesystemFullForecast")
        .map(|t| format!("{} {}", t.rule, t.summary))
        .collect();
    assert!(
        others.is_empty(),
        "false alarms beside the forecast: {others:#?}"
    );
}
