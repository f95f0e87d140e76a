//! Benchmark of the store, run by `scripts/bench_store.sh` (which also measures Prometheus'
//! promtool on the same file and writes the comparison). Two modes:
//!
//! - `store_bench file --om FILE --work DIR`: imports FILE (like `vigil-collector import`),
//!   then measures bytes on disk per sample, a 30-day single-series range query (raw and
//!   from rollups), and ingest through the write-ahead log: every host of the file replayed
//!   as an agent would send it — one batch per tick, one thread per host, each waiting for
//!   its acknowledgement.
//! - `store_bench fleet --hosts N --hours H --work DIR`: N synthetic agents of ~60 series
//!   reporting every 10 s for H simulated hours through `Store::append`, with the default
//!   cache and head budgets; reports the process's resident memory, for the README's "memory
//!   per 1,000 hosts".
//!
//! Prints `key: value` lines; the script turns them into the table in docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_collector::store::import::import_openmetrics;
use vigil_collector::store::{Selector, SeriesSamples, Store, StoreConfig, WriterId};
use vigil_proto::model::{Labels, Sample};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<String> {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1).cloned())
    };
    let work = PathBuf::from(flag("--work").unwrap_or_else(|| "/tmp/vigil-store-bench".into()));
    match args.first().map(String::as_str) {
        Some("file") => {
            let om = PathBuf::from(flag("--om").expect("--om FILE"));
            bench_file(&om, &work);
        }
        Some("fleet") => {
            let hosts: u64 = flag("--hosts").map_or(1000, |v| v.parse().expect("--hosts N"));
            let hours: u64 = flag("--hours").map_or(3, |v| v.parse().expect("--hours H"));
            bench_fleet(hosts, hours, &work);
        }
        _ => {
            eprintln!("usage: store_bench file --om FILE --work DIR | fleet --hosts N --hours H --work DIR");
            std::process::exit(2);
        }
    }
}

fn fresh_dir(path: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).unwrap();
    path.to_owned()
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        total += if metadata.is_dir() {
            du(&entry.path())
        } else {
            metadata.len()
        };
    }
    total
}

/// (current, peak) resident memory of this process in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) this process used so far; `/proc/self/stat` counts them in
/// USER_HZ ticks, 100 a second on Linux. 0 where there is no `/proc`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn bench_file(om: &Path, work: &Path) {
    let import_dir = fresh_dir(&work.join("import"));
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let summary = import_openmetrics(&import_dir, om, None).expect("import");
    let import_secs = started.elapsed().as_secs_f64();
    println!("import_cpu_seconds: {:.2}", cpu_seconds() - cpu_before);
    let bytes = du(&import_dir);
    println!("samples: {}", summary.n_samples);
    println!("series: {}", summary.n_series);
    println!("import_seconds: {import_secs:.2}");
    println!(
        "import_samples_per_second: {:.0}",
        summary.n_samples as f64 / import_secs
    );
    println!("import_bytes_on_disk: {bytes}");
    println!(
        "import_bytes_per_sample: {:.3}",
        bytes as f64 / summary.n_samples as f64
    );
    println!("import_peak_rss_bytes: {}", rss().1);

    let store = Store::open(&StoreConfig::new(&import_dir)).unwrap();
    let breakdown = store.storage_breakdown().unwrap();
    println!("import_chunk_file_bytes: {}", breakdown.chunk_file_bytes);
    println!("import_chunk_index_bytes: {}", breakdown.chunk_index_bytes);
    println!("import_n_chunks: {}", breakdown.n_chunks);
    println!(
        "import_rollup_bytes: {}",
        breakdown.rollup_file_bytes + breakdown.rollup_index_bytes
    );
    println!("import_index_bytes: {}", breakdown.index_bytes);
    // Whole folders: sled's own files are everything but the chunk, rollup and log folders.
    let mut sled_bytes = 0;
    for entry in std::fs::read_dir(&import_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = if entry.metadata().unwrap().is_dir() {
            du(&entry.path())
        } else {
            entry.metadata().unwrap().len()
        };
        match name.as_str() {
            "chunks" | "rollups" => println!("import_{name}_folder_bytes: {size}"),
            "wal" => println!("import_wal_bytes: {size}"),
            _ => sled_bytes += size,
        }
    }
    println!("import_sled_bytes: {sled_bytes}");
    println!(
        "import_chunk_bytes_per_sample: {:.3}",
        breakdown.chunk_file_bytes as f64 / summary.n_samples as f64
    );

    // A 30-day range query of one series, ending at the file's last sample.
    let selector: Selector = r#"system_cpu_utilization_ratio{host=~".*1"}"#.parse().unwrap();
    let all = store.select(&selector, i64::MIN, i64::MAX).unwrap();
    let series = &all[0];
    let end_ms = series.samples.last().unwrap().timestamp_ms;
    let start_ms = end_ms - 30 * 86_400_000;
    let mut one: Selector = Selector::metric("system_cpu_utilization_ratio");
    for (name, value) in series.labels.iter() {
        if name != "__name__" {
            one = one.with_label(name, value);
        }
    }
    let mut raw_times = Vec::new();
    let mut raw_samples = 0;
    for _ in 0..21 {
        let started = Instant::now();
        let selected = store.select(&one, start_ms, end_ms).unwrap();
        raw_times.push(started.elapsed());
        raw_samples = selected[0].samples.len();
    }
    let step = Store::auto_step(start_ms, end_ms, 1000);
    let mut rollup_times = Vec::new();
    let mut points = 0;
    for _ in 0..21 {
        let started = Instant::now();
        let selection = store.select_range(&one, start_ms, end_ms, step).unwrap();
        rollup_times.push(started.elapsed());
        points = selection.series[0].points.len();
    }
    println!("query_series: {}", series.labels);
    println!("query_raw_samples: {raw_samples}");
    println!(
        "query_30d_raw_ms: {:.3}",
        median(raw_times).as_secs_f64() * 1000.0
    );
    println!("query_30d_rollup_step_ms: {step}");
    println!("query_30d_rollup_points: {points}");
    println!(
        "query_30d_rollup_ms: {:.3}",
        median(rollup_times).as_secs_f64() * 1000.0
    );

    // Ingest: each host of the file replayed as its agent would send it.
    let hosts: Vec<String> = {
        let mut hosts: Vec<String> = store
            .select(
                &r#"system_uptime_seconds{host=~".+"}"#.parse().unwrap(),
                i64::MIN,
                i64::MAX,
            )
            .unwrap()
            .into_iter()
            .filter_map(|series| series.labels.get("host").map(str::to_owned))
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    };
    let ticks_per_host: Vec<Vec<(i64, Vec<SeriesSamples>)>> = hosts
        .iter()
        .map(|host| {
            let selector: Selector = format!(r#"{{host="{host}"}}"#).parse().unwrap();
            let mut by_tick: BTreeMap<i64, Vec<SeriesSamples>> = BTreeMap::new();
            for series in store.select(&selector, i64::MIN, i64::MAX).unwrap() {
                for sample in series.samples {
                    by_tick
                        .entry(sample.timestamp_ms)
                        .or_default()
                        .push(SeriesSamples {
                            labels: series.labels.clone(),
                            samples: vec![sample],
                        });
                }
            }
            by_tick.into_iter().collect()
        })
        .collect();
    drop(store);
    let n_samples: u64 = ticks_per_host
        .iter()
        .flat_map(|ticks| ticks.iter().map(|(_, batch)| batch.len() as u64))
        .sum();
    let ingest_dir = fresh_dir(&work.join("ingest"));
    let live = Store::open(&StoreConfig::new(&ingest_dir)).unwrap();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    std::thread::scope(|scope| {
        for (host, ticks) in hosts.iter().zip(&ticks_per_host) {
            let live = live.clone();
            scope.spawn(move || {
                let writer = WriterId {
                    host: host.clone(),
                    spool_id: 1,
                };
                for (seq, (_, batch)) in ticks.iter().enumerate() {
                    live.append(&writer, seq as u64 + 1, batch).unwrap();
                }
            });
        }
    });
    let ingest_secs = started.elapsed().as_secs_f64();
    println!("ingest_cpu_seconds: {:.2}", cpu_seconds() - cpu_before);
    let n_batches: usize = ticks_per_host.iter().map(Vec::len).sum();
    println!("ingest_writers: {}", hosts.len());
    println!("ingest_batches: {n_batches}");
    println!("ingest_samples: {n_samples}");
    println!("ingest_seconds: {ingest_secs:.2}");
    println!(
        "ingest_samples_per_second: {:.0}",
        n_samples as f64 / ingest_secs
    );
    println!(
        "ingest_batches_per_second: {:.0}",
        n_batches as f64 / ingest_secs
    );
    let started = Instant::now();
    live.checkpoint(true).unwrap();
    println!(
        "ingest_final_checkpoint_seconds: {:.2}",
        started.elapsed().as_secs_f64()
    );
    drop(live);
    let bytes = du(&ingest_dir);
    println!("ingest_bytes_on_disk: {bytes}");
    println!(
        "ingest_bytes_per_sample: {:.3}",
        bytes as f64 / n_samples as f64
    );
}

/// A synthetic host's series: names and label sets like the agent's, values that move.
fn host_series(host: u64) -> Vec<Labels> {
    let mut series = Vec::new();
    let base = |name: &str| {
        Labels::from_pairs([
            ("__name__", name.to_owned()),
            ("host", format!("host-{host:05}")),
            ("client", format!("client-{:03}", host / 10)),
        ])
    };
    for name in [
        "system_cpu_utilization_ratio",
        "system_load_average_1m",
        "system_memory_limit_bytes",
        "system_swap_usage_bytes",
        "system_uptime_seconds",
    ] {
        series.push(base(name));
    }
    for state in ["used", "available"] {
        let mut labels = base("system_memory_usage_bytes");
        labels.insert("state", state);
        series.push(labels);
    }
    for mountpoint in ["/", "/boot", "/home"] {
        for state in ["used", "free"] {
            let mut labels = base("system_filesystem_usage_bytes");
            labels.insert("mountpoint", mountpoint);
            labels.insert("state", state);
            series.push(labels);
        }
        let mut labels = base("system_filesystem_limit_bytes");
        labels.insert("mountpoint", mountpoint);
        series.push(labels);
    }
    for device in ["eth0", "lo"] {
        for direction in ["receive", "transmit"] {
            let mut labels = base("system_network_io_bytes_total");
            labels.insert("device", device);
            labels.insert("direction", direction);
            series.push(labels);
        }
    }
    for direction in ["read", "write"] {
        let mut labels = base("system_disk_io_bytes_total");
        labels.insert("device", "sda");
        labels.insert("direction", direction);
        series.push(labels);
    }
    for index in 0..12 {
        let mut labels = base("service_up");
        labels.insert("service", format!("service-{index}"));
        series.push(labels);
    }
    for index in 0..10 {
        let mut labels = base("process_memory_rss_bytes");
        labels.insert("process", format!("process-{index}"));
        series.push(labels);
    }
    for sensor in ["coretemp", "nvme", "acpitz", "pch"] {
        let mut labels = base("system_temperature_celsius");
        labels.insert("sensor", sensor);
        series.push(labels);
    }
    while series.len() < 60 {
        let mut labels = base("disk_smart_percentage_used");
        labels.insert("device", format!("nvme{}", series.len()));
        series.push(labels);
    }
    series
}

fn bench_fleet(n_hosts: u64, hours: u64, work: &Path) {
    let dir = fresh_dir(&work.join("fleet"));
    let store = Store::open(&StoreConfig::new(&dir)).unwrap();
    let series: Vec<Vec<Labels>> = (0..n_hosts).map(host_series).collect();
    let n_ticks = hours * 360;
    let start_ms = 1_735_689_600_000i64;
    let n_threads = 64.min(n_hosts as usize).max(1);
    let appended = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut peak_head = 0usize;
    let (before_rss, _) = rss();
    std::thread::scope(|scope| {
        for thread in 0..n_threads {
            let store = store.clone();
            let series = &series;
            let appended = Arc::clone(&appended);
            scope.spawn(move || {
                for tick in 0..n_ticks {
                    let timestamp_ms = start_ms + tick as i64 * 10_000;
                    for host in (thread as u64..n_hosts).step_by(n_threads) {
                        let batch: Vec<SeriesSamples> = series[host as usize]
                            .iter()
                            .enumerate()
                            .map(|(index, labels)| SeriesSamples {
                                labels: labels.clone(),
                                samples: vec![Sample {
                                    timestamp_ms,
                                    value: synthetic_value(host, index as u64, tick),
                                }],
                            })
                            .collect();
                        let writer = WriterId {
                            host: format!("host-{host:05}"),
                            spool_id: 1,
                        };
                        store.append(&writer, tick + 1, &batch).unwrap();
                        appended.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
            });
        }
        // Watch memory while the agents report.
        let store = store.clone();
        let appended = Arc::clone(&appended);
        let total = n_hosts * n_ticks * 60;
        scope.spawn(move || {
            while appended.load(Ordering::Relaxed) < total {
                std::thread::sleep(Duration::from_millis(500));
                let stats = store.stats().unwrap();
                peak_head = peak_head.max(stats.head_bytes);
            }
            println!("fleet_peak_head_bytes: {peak_head}");
        });
    });
    let secs = started.elapsed().as_secs_f64();
    let samples = appended.load(Ordering::Relaxed);
    let stats = store.stats().unwrap();
    let (rss_now, rss_peak) = rss();
    println!("fleet_hosts: {n_hosts}");
    println!("fleet_simulated_hours: {hours}");
    println!("fleet_samples: {samples}");
    println!("fleet_seconds: {secs:.1}");
    println!("fleet_samples_per_second: {:.0}", samples as f64 / secs);
    println!("fleet_rss_before_bytes: {before_rss}");
    println!("fleet_rss_end_bytes: {rss_now}");
    println!("fleet_rss_peak_bytes: {rss_peak}");
    println!("fleet_head_bytes_end: {}", stats.head_bytes);
    println!("fleet_head_series_end: {}", stats.head_series);
    println!("fleet_wal_bytes_end: {}", stats.wal_bytes);
    println!("fleet_disk_bytes_end: {}", stats.disk_bytes);
}

/// Values shaped like the agent's: counters that grow, gauges that wander, flags.
fn synthetic_value(host: u64, index: u64, tick: u64) -> f64 {
    let phase = (host * 7 + index * 13) as f64;
    let wave = ((tick as f64 / 360.0 + phase).sin() + 1.0) / 2.0;
    match index {
        0 => (wave * 1000.0).round() / 1000.0,
        1 => (wave * 400.0).round() / 100.0,
        2 => 16_777_216.0 * 1024.0,
        4 => (tick * 10 + host * 1000) as f64,
        15..=20 => ((tick * (index + host % 7) * 4096) as f64).round(),
        21..=32 => f64::from(u8::from(!(tick + host).is_multiple_of(5000))),
        _ => ((wave * 1e6) as u64 / 4096 * 4096) as f64,
    }
}
