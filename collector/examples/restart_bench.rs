//! Restart time of the store after a full write-ahead log: `write` fills a store the way a
//! fleet's agents do (one batch per host per 10 s tick, `--series` samples each, for
//! `--hours`), with no checkpoint, then stops either cleanly (`--stop clean`: the last
//! handle is dropped, the store's own close path) or as a crash would (`--stop crash`: the
//! process exits with the log as it is). `open` then times `Store::open` (replay included);
//! `stop` opens a store and stops it cleanly, timing the stop.
//! Uses only the store API that every version has, so the same file measures the code before
//! and after a change (scripts/bench_restart.sh does both).
//!
//! ```text
//! cargo run --release -p vigil-collector --example restart_bench -- write --dir /var/tmp/r \
//!     --hosts 200 --series 100 --hours 2 --stop crash
//! cargo run --release -p vigil-collector --example restart_bench -- open --dir /var/tmp/r
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vigil_collector::store::{SeriesSamples, Store, StoreConfig, WriterId};
use vigil_proto::model::{Labels, Sample};

/// Appending threads: enough for group commit to put many batches in one fsync.
const WRITERS: usize = 16;

struct Options {
    command: String,
    dir: PathBuf,
    hosts: usize,
    series: usize,
    hours: u64,
    /// Spacing of samples; 10 s as agents send, 1 ms for a dense series.
    tick_ms: i64,
    /// Ticks in all, when given instead of `hours`.
    ticks: Option<i64>,
    /// Ticks per batch (an agent sends one; a dense client many).
    per_batch: usize,
    crash: bool,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let command = args
        .next()
        .ok_or("usage: restart_bench write|open --dir DIR ...")?;
    let mut options = Options {
        command,
        dir: PathBuf::new(),
        hosts: 200,
        series: 100,
        hours: 2,
        tick_ms: 10_000,
        ticks: None,
        per_batch: 1,
        crash: true,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--dir" => options.dir = value.clone().into(),
            "--hosts" => options.hosts = number()? as usize,
            "--series" => options.series = number()? as usize,
            "--hours" => options.hours = number()?,
            "--tick-ms" => options.tick_ms = number()?.max(1) as i64,
            "--ticks" => options.ticks = Some(number()? as i64),
            "--per-batch" => options.per_batch = number()?.max(1) as usize,
            "--stop" => options.crash = value == "crash",
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.dir.as_os_str().is_empty() {
        return Err("--dir is required".into());
    }
    Ok(options)
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        // The log must hold the whole run: no checkpoint, no early sealing.
        checkpoint_interval: Duration::from_secs(365 * 86_400),
        retention_interval: Duration::from_secs(365 * 86_400),
        head_max_bytes: u64::MAX / 2,
        ..StoreConfig::new(dir)
    }
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(metadata) if metadata.is_dir() => dir_bytes(&entry.path()),
                    Ok(metadata) => metadata.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn write(options: &Options) -> Result<(), String> {
    let store = Store::open(&config(&options.dir)).map_err(|error| error.to_string())?;
    let tick_ms = options.tick_ms;
    let n_ticks = options
        .ticks
        .unwrap_or(options.hours as i64 * 3_600_000 / tick_ms);
    let n_batches = (n_ticks as usize).div_ceil(options.per_batch);
    // Ending an hour ago, on the tick grid.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let first_ms = (now_ms - 3_600_000 - n_ticks * tick_ms) / tick_ms * tick_ms;
    let labels: Vec<Vec<Labels>> = (0..options.hosts)
        .map(|host| {
            (0..options.series)
                .map(|series| {
                    Labels::from_pairs([
                        ("__name__", format!("metric_{:02}", series % 20)),
                        ("host", format!("host-{host:05}")),
                        ("client", format!("client-{:03}", host % 300)),
                        ("index", format!("{}", series / 20)),
                    ])
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<(), String> {
        let mut workers = Vec::new();
        for worker in 0..WRITERS {
            let (store, labels) = (&store, &labels);
            workers.push(scope.spawn(move || -> Result<(), String> {
                for batch_index in 0..n_batches {
                    let ticks = (batch_index * options.per_batch) as i64
                        ..(((batch_index + 1) * options.per_batch) as i64).min(n_ticks);
                    for host in (worker..labels.len()).step_by(WRITERS) {
                        let batch: Vec<SeriesSamples> = labels[host]
                            .iter()
                            .enumerate()
                            .map(|(index, labels)| SeriesSamples {
                                labels: labels.clone(),
                                samples: ticks
                                    .clone()
                                    .map(|tick| Sample {
                                        timestamp_ms: first_ms + tick * tick_ms,
                                        value: ((tick as usize * 31 + index * 7 + host) % 1000)
                                            as f64
                                            / 10.0,
                                    })
                                    .collect(),
                            })
                            .collect();
                        let writer = WriterId {
                            host: format!("host-{host:05}"),
                            spool_id: 1,
                        };
                        store
                            .append(&writer, batch_index as u64 + 1, &batch)
                            .map_err(|error| error.to_string())?;
                    }
                }
                Ok(())
            }));
        }
        for worker in workers {
            worker.join().expect("a writer thread")?;
        }
        Ok(())
    })?;
    let n_samples = options.hosts * options.series * n_ticks as usize;
    println!("hosts: {}", options.hosts);
    println!("series: {}", options.hosts * options.series);
    println!("samples: {n_samples}");
    println!("write_seconds: {:.1}", started.elapsed().as_secs_f64());
    println!("wal_bytes: {}", dir_bytes(&options.dir.join("wal")));
    if options.crash {
        // As a crash leaves it: everything acknowledged is in the log, nothing sealed.
        std::process::exit(0);
    }
    let stopping = Instant::now();
    drop(store);
    println!("stop_seconds: {:.1}", stopping.elapsed().as_secs_f64());
    println!(
        "wal_bytes_after_stop: {}",
        dir_bytes(&options.dir.join("wal"))
    );
    Ok(())
}

fn open(options: &Options) -> Result<(), String> {
    println!("wal_bytes: {}", dir_bytes(&options.dir.join("wal")));
    let started = Instant::now();
    let store = Store::open(&config(&options.dir)).map_err(|error| error.to_string())?;
    println!("open_seconds: {:.1}", started.elapsed().as_secs_f64());
    let stats = store.stats().map_err(|error| error.to_string())?;
    println!("head_series: {}", stats.head_series);
    println!("head_samples: {}", stats.head_samples);
    // Measured: leave without stopping, so that the store stays as it was for another run.
    std::process::exit(0);
}

/// Opens the store (replaying its log), then stops it cleanly: the last handle dropped.
fn stop(options: &Options) -> Result<(), String> {
    let store = Store::open(&config(&options.dir)).map_err(|error| error.to_string())?;
    let stopping = Instant::now();
    drop(store);
    println!("stop_seconds: {:.1}", stopping.elapsed().as_secs_f64());
    println!(
        "wal_bytes_after_stop: {}",
        dir_bytes(&options.dir.join("wal"))
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = parse().and_then(|options| match options.command.as_str() {
        "write" => write(&options),
        "open" => open(&options),
        "stop" => stop(&options),
        other => Err(format!("unknown command {other}; use write, open or stop")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("restart_bench: {error}");
            ExitCode::FAILURE
        }
    }
}
