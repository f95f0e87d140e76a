//! What the live alert pipeline writes to keep its state, per minute, for a simulated fleet:
//! the records saved by host now, and what saving the whole state as one value at the same
//! moments (every evaluation and every batch with a transition, as before) would have cost.
//!
//! `cargo run --release -p vigil-collector --example state_bytes -- [hosts] [minutes]`
//! (defaults: 1000 hosts, 3 minutes). Each host reports 24 series every 10 s; each minute
//! one host in a hundred has a service stop or start (`ServiceDown` tuned to fire at once).
//! The first minute (everything new) is not counted.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use vigil_collector::alert::{EngineSettings, RuleSet};
use vigil_collector::ingest::identity::PeerIdentity;
use vigil_collector::ingest::IngestEvent;
use vigil_collector::notify::{Clock, Outbox};
use vigil_collector::pipeline::{Dispatch, LiveAlerts, Policies};
use vigil_collector::store::{Store, StoreConfig};
use vigil_proto::model::{Batch, Labels, Sample, Series};

const START_MS: i64 = 1_800_000_000_000;
const INTERVAL_MS: i64 = 10_000;

fn series(host: usize, tick: i64, service_down: bool) -> Vec<Series> {
    let wobble = ((host as i64 * 7 + tick) % 13) as f64 / 13.0;
    let mut out = Vec::new();
    let mut add = |name: &str, labels: &[(&str, &str)], value: f64| {
        out.push(Series {
            name: name.into(),
            labels: Labels::from_pairs(labels.iter().copied()),
            samples: vec![Sample {
                timestamp_ms: START_MS + tick * INTERVAL_MS,
                value,
            }],
        })
    };
    add("system_cpu_utilization_ratio", &[], 0.2 + 0.3 * wobble);
    add("system_load_average_1m", &[], 1.0 + wobble);
    add(
        "system_memory_usage_bytes",
        &[("state", "used")],
        4e9 + 1e8 * wobble,
    );
    add(
        "system_memory_usage_bytes",
        &[("state", "available")],
        4e9 - 1e8 * wobble,
    );
    add("system_memory_limit_bytes", &[], 8e9);
    add("system_swap_usage_bytes", &[], 1e8);
    for mountpoint in ["/", "/data"] {
        let used = 1e11 + 1e6 * tick as f64;
        add(
            "system_filesystem_usage_bytes",
            &[("mountpoint", mountpoint), ("state", "used")],
            used,
        );
        add(
            "system_filesystem_usage_bytes",
            &[("mountpoint", mountpoint), ("state", "free")],
            4e11 - used,
        );
        add(
            "system_filesystem_limit_bytes",
            &[("mountpoint", mountpoint)],
            5e11,
        );
    }
    for device in ["eth0", "eth1"] {
        for direction in ["receive", "transmit"] {
            add(
                "system_network_io_bytes_total",
                &[("device", device), ("direction", direction)],
                1e6 * tick as f64,
            );
        }
    }
    for sensor in ["cpu", "inlet"] {
        add(
            "system_temperature_celsius",
            &[("sensor", sensor)],
            45.0 + 3.0 * wobble,
        );
    }
    add("system_uptime_seconds", &[], 1e5 + 10.0 * tick as f64);
    for service in ["spooler", "dns", "dhcp", "backup", "av"] {
        let up = if service == "spooler" && service_down {
            0.0
        } else {
            1.0
        };
        add("service_up", &[("service", service)], up);
    }
    out
}

fn peer(host: usize) -> PeerIdentity {
    PeerIdentity {
        host: format!("pc-{host:05}"),
        client: format!("client-{:03}", host / 20),
        issued_at_ms: 0,
        expires_at_ms: i64::MAX,
    }
}

/// The built-in pack with `ServiceDown` firing at once, so that the stops and starts are
/// transitions within the minute.
fn rules() -> RuleSet {
    vigil_collector::alert::parse_rules(
        Path::new("rules.toml"),
        "[rules.ServiceDown]\nfor = \"0s\"\n",
    )
    .expect("rules")
}

fn open(dir: &Path, store: &Store, clock: &Clock) -> LiveAlerts {
    let outbox = Arc::new(Outbox::open(dir).unwrap());
    let policies = Arc::new(Policies::open(dir, None));
    let dispatch = Dispatch::new(outbox, policies, Default::default());
    LiveAlerts::open(
        store.clone(),
        rules(),
        EngineSettings::default(),
        dispatch,
        clock.now_ms(),
    )
    .with_clock(clock.clone())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args.next().map_or(1000, |a| a.parse().expect("hosts"));
    let minutes: i64 = args.next().map_or(3, |a| a.parse().expect("minutes"));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("store"))).unwrap();
    let clock = Clock::manual(START_MS);
    let mut live = open(dir.path(), &store, &clock);
    let ticks_per_minute = 60_000 / INTERVAL_MS;
    let mut counted = live.save_counts();
    let mut old_saves = 0u64;
    let mut down: Vec<bool> = vec![false; hosts];
    let started = Instant::now();
    for minute in 0..minutes {
        if minute == 1 {
            counted = live.save_counts();
            old_saves = 0;
        }
        // One host in a hundred has its spooler stop or start this minute.
        for host in (minute as usize % 100..hosts).step_by(100) {
            down[host] = !down[host];
        }
        for tick in 0..ticks_per_minute {
            let tick = minute * ticks_per_minute + tick;
            clock.set(START_MS + tick * INTERVAL_MS);
            for (host, &down) in down.iter().enumerate() {
                let before = live.save_counts().saves;
                live.on_event(&IngestEvent::Stored {
                    peer: peer(host),
                    batch: Arc::new(Batch {
                        seq: tick as u64 + 1,
                        series: series(host, tick, down),
                        ..Default::default()
                    }),
                });
                if live.save_counts().saves > before {
                    // The same moment the whole state used to be written.
                    old_saves += 1;
                }
            }
        }
        live.evaluate();
        old_saves += 1;
    }
    let elapsed = started.elapsed();
    let now = live.save_counts();
    let counted_minutes = (minutes - 1).max(1) as u64;
    let whole = serde_json::to_vec(&live.engine().snapshot()).unwrap().len() as u64;
    let records: u64 = store
        .states_with_prefix("alert_engine/host/")
        .unwrap()
        .iter()
        .map(|(key, value)| (key.len() + value.len()) as u64)
        .sum();
    let series_count = live.engine().snapshot().series.len();
    println!("fleet: {hosts} hosts, {series_count} series, one batch per host every 10 s");
    println!(
        "state: {:.1} MB as one value, {:.1} MB as host records",
        whole as f64 / 1e6,
        records as f64 / 1e6
    );
    println!(
        "per minute, by host (now): {:.1} saves, {:.0} records, {:.2} MB written",
        (now.saves - counted.saves) as f64 / counted_minutes as f64,
        (now.records - counted.records) as f64 / counted_minutes as f64,
        (now.bytes - counted.bytes) as f64 / counted_minutes as f64 / 1e6
    );
    println!(
        "per minute, whole state at each of the same moments (before): {:.1} saves, {:.1} MB written",
        old_saves as f64 / counted_minutes as f64,
        (old_saves * whole) as f64 / counted_minutes as f64 / 1e6
    );
    drop(live);
    let restarted = Instant::now();
    let live = open(dir.path(), &store, &clock);
    println!(
        "restore from host records: {:.2} s ({} series); simulation took {:.1} s",
        restarted.elapsed().as_secs_f64(),
        live.engine().snapshot().series.len(),
        elapsed.as_secs_f64()
    );
}
