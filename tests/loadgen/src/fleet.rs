//! One run of the load generator: the settings, the agents started side by side on a few
//! worker threads, the counts they share, and the [`Report`] made of them at the end.
//!
//! Every agent runs as one task with its own schedule ([`crate::schedule`]) and its own
//! catalog ([`crate::catalog`]); the driver for the chosen target ([`crate::vigil`] or
//! [`crate::remote_write`]) sends and counts. Live totals are atomics for the progress
//! line; ack latencies go into shared histograms (the whole run, after the warm-up, since
//! the last progress line); each agent returns its own counts when
//! it is done, which the report keeps per agent and sums.

use crate::certs::{AgentIdentity, CertsError};
use crate::measure::{MeasureError, ProcessCost, ProcessWatch};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Where the samples go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Vigil's collector over mutual-TLS gRPC, one `Report` stream per agent.
    Vigil {
        /// `https://HOST:PORT` of the collector's ingest listener.
        url: String,
        /// Folder with the collector's `ca.pem` and `ca-key.pem`.
        ca_dir: PathBuf,
        /// Where the agents' certificates are cached between runs.
        cert_cache: PathBuf,
        /// The name to verify the collector's certificate against (default: the URL's host).
        server_name: Option<String>,
    },
    /// Prometheus remote-write 1.0: one snappy-compressed `WriteRequest` per agent and tick.
    RemoteWrite {
        /// e.g. `http://127.0.0.1:9090/api/v1/write`.
        url: String,
    },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Vigil { .. } => "vigil",
            Target::RemoteWrite { .. } => "prometheus-remote-write",
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Target::Vigil { url, .. } | Target::RemoteWrite { url } => url,
        }
    }
}

/// Everything one run needs to know.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub target: Target,
    pub agents: usize,
    pub series: usize,
    pub interval: Duration,
    /// How long agents send live ticks.
    pub duration: Duration,
    /// Agents' send times are spread evenly over this much of each interval.
    pub spread: Duration,
    /// Past ticks each agent sends first, as after an outage.
    pub backlog: Duration,
    /// After `duration`, how long agents wait for the acks still due before saying goodbye.
    pub drain: Duration,
    /// The receiver's process, to measure its CPU and memory.
    pub receiver_pid: Option<u32>,
    /// The receiver's data folder, to measure its growth on disk.
    pub receiver_data_dir: Option<PathBuf>,
    /// Acks in the first this long of the run are left out of the after-warm-up latency.
    pub warmup: Duration,
    /// Print a progress line to stderr every this often (none: quiet).
    pub progress_every: Option<Duration>,
    /// Keep each agent's acknowledged tick timestamps in the report
    /// (`per_agent[].acked_timestamps_ms`), for comparing with what the store holds.
    pub record_acked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error("--series {0} is out of range; a host reports between 1 and 5000 series (vigil_proto::limits::MAX_SERIES_PER_BATCH)")]
    Series(usize),
    #[error("--interval {0:?} is out of range; agents tick every 1 s to 1 h")]
    Interval(Duration),
    #[error("the remote-write client could not be built: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// What one simulated agent did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentCounts {
    pub host: String,
    pub client: String,
    /// The spool id of its streams (0 for remote-write).
    pub spool_id: u64,
    pub sent_batches: u64,
    pub sent_samples: u64,
    pub acked_batches: u64,
    pub acked_samples: u64,
    pub rejected_batches: u64,
    pub rejected_samples: u64,
    /// Batches sent again after a reconnect (not counted again in `sent_*`).
    pub resent_batches: u64,
    /// Connections that failed or broke and were made again.
    pub reconnects: u64,
    /// Sent and neither acknowledged nor rejected when the agent stopped.
    pub unacknowledged_batches: u64,
    /// Ticks (backlog or live) still queued, never sent, when the agent stopped.
    pub unsent_ticks: u64,
    /// The highest sequence number acknowledged (Vigil only).
    pub last_acked_seq: u64,
    /// With `record_acked`: the timestamp of every acknowledged tick, in ack order. A tick
    /// is one sample of each of the agent's series at that timestamp.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acked_timestamps_ms: Vec<i64>,
    /// The first reject's reason, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_reject_reason: Option<String>,
    /// Why the last connection failed, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Live totals, for the progress line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub connected: AtomicUsize,
    pub sent_samples: AtomicU64,
    pub acked_samples: AtomicU64,
    pub rejected_samples: AtomicU64,
    pub reconnects: AtomicU64,
}

/// What every agent task shares.
#[derive(Debug)]
pub struct FleetContext {
    pub settings: FleetSettings,
    /// When agents stop sending new ticks.
    pub live_until: Instant,
    /// When agents stop waiting for acks.
    pub drain_until: Instant,
    pub started: Instant,
    /// Ack latencies in microseconds, from a batch's first send to its ack.
    pub latency: Mutex<Latencies>,
    pub live: LiveCounters,
}

impl FleetContext {
    pub fn record_latency(&self, latency: Duration) {
        let micros = (latency.as_micros() as u64).max(1);
        let warm = self.started.elapsed() >= self.settings.warmup;
        if let Ok(mut latencies) = self.latency.lock() {
            latencies.all.saturating_record(micros);
            latencies.recent.saturating_record(micros);
            if warm {
                latencies.after_warmup.saturating_record(micros);
            }
        }
    }
}

/// The run's ack latency histograms.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Every ack of the run.
    pub all: Histogram<u64>,
    /// Acks after the warm-up (the fleet's connections and first batches, which create
    /// every series, are behind it).
    pub after_warmup: Histogram<u64>,
    /// Since the last progress line.
    pub recent: Histogram<u64>,
}

impl Latencies {
    fn new() -> Self {
        let histogram =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Self {
            all: histogram.clone(),
            after_warmup: histogram.clone(),
            recent: histogram,
        }
    }
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let millis = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50: millis(0.50),
            p90: millis(0.90),
            p99: millis(0.99),
            p999: millis(0.999),
            max: histogram.max() as f64 / 1000.0,
            mean: histogram.mean() / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// The JSON report of a run (`--report FILE`). Documented in the README.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: &'static str,
    pub url: String,
    pub agents: usize,
    pub series_per_agent: usize,
    pub interval_seconds: f64,
    pub duration_seconds: f64,
    pub backlog_seconds: f64,
    /// From the first agent's start to the last agent's goodbye.
    pub elapsed_seconds: f64,
    /// Certificates this run had to issue (the rest came from the cache).
    pub certificates_issued: usize,
    /// Agents that had at least one batch acknowledged.
    pub agents_acknowledged: usize,
    pub sent_batches: u64,
    pub acked_batches: u64,
    pub rejected_batches: u64,
    pub resent_batches: u64,
    pub unacknowledged_batches: u64,
    pub unsent_ticks: u64,
    pub reconnects: u64,
    pub sent_samples: u64,
    pub acked_samples: u64,
    pub rejected_samples: u64,
    /// Acknowledged samples per second of `elapsed_seconds`.
    pub acked_samples_per_second: f64,
    pub ack_latency_ms: Latency,
    /// The same, for acks after the first `warmup_seconds` of the run.
    pub ack_latency_after_warmup_ms: Latency,
    pub warmup_seconds: f64,
    /// The receiver's cost, when `--collector-pid` was given.
    pub collector: Option<ProcessCost>,
    /// The load generator's own cost.
    pub loadgen: ProcessCost,
    pub per_agent: Vec<AgentCounts>,
}

/// Runs the fleet against its target and reports. `identities` are the agents'
/// certificates (Vigil) or just their names (remote-write: empty PEM).
pub async fn run(
    settings: FleetSettings,
    identities: Vec<AgentIdentity>,
    ca_pem: String,
    certificates_issued: usize,
) -> Result<Report, FleetError> {
    if settings.series == 0 || settings.series > vigil_proto::limits::MAX_SERIES_PER_BATCH {
        return Err(FleetError::Series(settings.series));
    }
    if settings.interval < Duration::from_secs(1) || settings.interval > Duration::from_secs(3600) {
        return Err(FleetError::Interval(settings.interval));
    }
    let receiver = match settings.receiver_pid {
        Some(pid) => Some(ProcessWatch::start(
            pid,
            settings.receiver_data_dir.as_deref(),
        )?),
        None => None,
    };
    let itself = ProcessWatch::start(std::process::id(), None)?;
    let started = Instant::now();
    let context = Arc::new(FleetContext {
        live_until: started + settings.duration,
        drain_until: started + settings.duration + settings.drain,
        started,
        latency: Mutex::new(Latencies::new()),
        live: LiveCounters::default(),
        settings,
    });
    let progress = context.settings.progress_every.map(|every| {
        let context = context.clone();
        tokio::spawn(async move { print_progress(&context, every).await })
    });

    let mut tasks = tokio::task::JoinSet::new();
    match &context.settings.target {
        Target::Vigil {
            url, server_name, ..
        } => {
            let tls = Arc::new(crate::vigil::FleetTls {
                url: url.clone(),
                ca_pem,
                server_name: server_name.clone(),
            });
            for (index, identity) in identities.into_iter().enumerate() {
                tasks.spawn(crate::vigil::run_agent(
                    index,
                    identity,
                    tls.clone(),
                    context.clone(),
                ));
            }
        }
        Target::RemoteWrite { url } => {
            let client = crate::remote_write::client().map_err(FleetError::HttpClient)?;
            for (index, identity) in identities.into_iter().enumerate() {
                tasks.spawn(crate::remote_write::run_agent(
                    index,
                    identity,
                    url.clone(),
                    client.clone(),
                    context.clone(),
                ));
            }
        }
    }
    let mut per_agent = Vec::with_capacity(context.settings.agents);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(counts) => per_agent.push(counts),
            Err(error) => tracing::error!(%error, "an agent task failed"),
        }
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }
    per_agent.sort_by(|a, b| a.host.cmp(&b.host));
    let collector = match receiver {
        Some(watch) => Some(watch.finish().await?),
        None => None,
    };
    let loadgen = itself.finish().await?;
    let latencies = context
        .latency
        .lock()
        .map(|latencies| latencies.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
    Ok(Report::new(
        &context.settings,
        elapsed,
        certificates_issued,
        per_agent,
        &latencies,
        collector,
        loadgen,
    ))
}

impl Report {
    fn new(
        settings: &FleetSettings,
        elapsed: Duration,
        certificates_issued: usize,
        per_agent: Vec<AgentCounts>,
        latencies: &Latencies,
        collector: Option<ProcessCost>,
        loadgen: ProcessCost,
    ) -> Self {
        let sum = |field: fn(&AgentCounts) -> u64| per_agent.iter().map(field).sum::<u64>();
        let acked_samples = sum(|a| a.acked_samples);
        let per_million =
            |value: f64| (acked_samples > 0).then(|| value / (acked_samples as f64 / 1_000_000.0));
        let collector = collector.map(|mut cost| {
            cost.cpu_seconds_per_million_samples = per_million(cost.cpu_seconds);
            cost.disk_bytes_per_million_samples = cost
                .disk_growth_bytes
                .and_then(|growth| per_million(growth as f64));
            cost
        });
        let mut loadgen = loadgen;
        loadgen.cpu_seconds_per_million_samples = per_million(loadgen.cpu_seconds);
        Self {
            target: settings.target.name(),
            url: settings.target.url().to_string(),
            agents: settings.agents,
            series_per_agent: settings.series,
            interval_seconds: settings.interval.as_secs_f64(),
            duration_seconds: settings.duration.as_secs_f64(),
            backlog_seconds: settings.backlog.as_secs_f64(),
            elapsed_seconds: elapsed.as_secs_f64(),
            certificates_issued,
            agents_acknowledged: per_agent.iter().filter(|a| a.acked_batches > 0).count(),
            sent_batches: sum(|a| a.sent_batches),
            acked_batches: sum(|a| a.acked_batches),
            rejected_batches: sum(|a| a.rejected_batches),
            resent_batches: sum(|a| a.resent_batches),
            unacknowledged_batches: sum(|a| a.unacknowledged_batches),
            unsent_ticks: sum(|a| a.unsent_ticks),
            reconnects: sum(|a| a.reconnects),
            sent_samples: sum(|a| a.sent_samples),
            acked_samples,
            rejected_samples: sum(|a| a.rejected_samples),
            acked_samples_per_second: acked_samples as f64 / elapsed.as_secs_f64().max(1e-9),
            ack_latency_ms: Latency::of(&latencies.all),
            ack_latency_after_warmup_ms: Latency::of(&latencies.after_warmup),
            warmup_seconds: settings.warmup.as_secs_f64(),
            collector,
            loadgen,
            per_agent,
        }
    }
}

/// One line to stderr every `every`: how far along, how many connected, samples per second.
async fn print_progress(context: &FleetContext, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut last_acked = 0u64;
    // Ends when the run aborts the task.
    loop {
        ticker.tick().await;
        let acked = context.live.acked_samples.load(Ordering::Relaxed);
        let p99 = context
            .latency
            .lock()
            .map(|mut latencies| {
                let p99 = latencies.recent.value_at_quantile(0.99) as f64 / 1000.0;
                latencies.recent.reset();
                p99
            })
            .unwrap_or(0.0);
        eprintln!(
            "{:>6.0}s connected {:>6}  sent {:>12}  acked {:>12} ({:>9.0}/s)  rejected {:>6}  reconnects {:>6}  ack p99 {:.1} ms",
            context.started.elapsed().as_secs_f64(),
            context.live.connected.load(Ordering::Relaxed),
            context.live.sent_samples.load(Ordering::Relaxed),
            acked,
            (acked - last_acked) as f64 / every.as_secs_f64(),
            context.live.rejected_samples.load(Ordering::Relaxed),
            context.live.reconnects.load(Ordering::Relaxed),
            p99,
        );
        last_acked = acked;
    }
}
