//! `vigil-loadgen`: parse the command line, prepare the fleet's identities, run the fleet on
//! a small runtime, write the JSON report and print a summary.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use vigil_loadgen::certs::{fleet_identities, AgentIdentity};
use vigil_loadgen::fleet::{self, FleetSettings, Target};
use vigil_proto::config_file::parse_duration;

/// Simulates a fleet of Vigil agents (or the same load as Prometheus remote-write) and
/// reports what was acknowledged, how fast, and what it cost the receiver.
#[derive(Parser, Debug)]
#[command(name = "vigil-loadgen", version)]
struct Cli {
    /// Folder with the collector's CA (ca.pem and ca-key.pem, as `vigil-collector ca init`
    /// writes them); needed for the vigil target.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// The collector's ingest listener, e.g. https://127.0.0.1:7443.
    #[arg(long)]
    collector: Option<String>,
    /// What to send to: `vigil` (default), or `prometheus-remote-write URL`, e.g.
    /// `--target prometheus-remote-write http://127.0.0.1:9090/api/v1/write`.
    #[arg(long, num_args = 1..=2, value_names = ["KIND", "URL"])]
    target: Vec<String>,
    /// Simulated agents, each with its own certificate and stream.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Series per agent (about 100 for a real host).
    #[arg(long, default_value_t = 100)]
    series: usize,
    /// The agents' collection interval.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// How long agents send live ticks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Spread the agents' send times over this much of the interval [default: the interval];
    /// 0s makes the whole fleet send at the same moment.
    #[arg(long, value_parser = parse_duration)]
    spread: Option<Duration>,
    /// Past ticks each agent sends first, e.g. 24h: the fleet coming back after an outage.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    backlog: Duration,
    /// After the live part, how long to wait for acks still due.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain: Duration,
    /// Process id of the receiver (collector, Prometheus, VictoriaMetrics) to measure.
    #[arg(long, alias = "receiver-pid")]
    collector_pid: Option<u32>,
    /// The receiver's data folder, to measure how much it grew on disk.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where agent certificates are cached [default: CA_DIR/loadgen-certs].
    #[arg(long)]
    cert_cache: Option<PathBuf>,
    /// Name to verify the collector's certificate against [default: the URL's host].
    #[arg(long)]
    server_name: Option<String>,
    /// Worker threads shared by all agents.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Acks in the first this long of the run (connections, new series) are left out of
    /// `ack_latency_after_warmup_ms`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    warmup: Duration,
    /// Print a progress line this often (0s: never).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    progress: Duration,
    /// Keep every acknowledged tick's timestamp per agent in the report
    /// (`per_agent[].acked_timestamps_ms`), to compare with a read of the store.
    #[arg(long)]
    record_acked: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();

    let target = target(&cli)?;
    let (identities, ca_pem, issued) = match &target {
        Target::Vigil {
            ca_dir, cert_cache, ..
        } => {
            let started = std::time::Instant::now();
            let fleet = fleet_identities(ca_dir, cert_cache, cli.agents)?;
            eprintln!(
                "{} agent certificates ready ({} issued now, in {:.1}s; cache {})",
                fleet.agents.len(),
                fleet.issued_now,
                started.elapsed().as_secs_f64(),
                cert_cache.display()
            );
            (fleet.agents, fleet.ca_pem, fleet.issued_now)
        }
        Target::RemoteWrite { .. } => {
            let names = (0..cli.agents).map(AgentIdentity::named).collect();
            (names, String::new(), 0)
        }
    };
    let settings = FleetSettings {
        target,
        agents: cli.agents,
        series: cli.series,
        interval: cli.interval,
        duration: cli.duration,
        spread: cli.spread.unwrap_or(cli.interval),
        backlog: cli.backlog,
        drain: cli.drain,
        receiver_pid: cli.collector_pid,
        receiver_data_dir: cli.data_dir.clone(),
        warmup: cli.warmup,
        progress_every: (!cli.progress.is_zero()).then_some(cli.progress),
        record_acked: cli.record_acked,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(fleet::run(settings, identities, ca_pem, issued))?;

    if let Some(path) = &cli.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the report to '{}'", path.display()))?;
    }
    println!(
        "{} agents, {} series each: sent {} samples, acknowledged {}, rejected {}, unacknowledged batches {}, unsent ticks {}, reconnects {}",
        report.agents,
        report.series_per_agent,
        report.sent_samples,
        report.acked_samples,
        report.rejected_samples,
        report.unacknowledged_batches,
        report.unsent_ticks,
        report.reconnects
    );
    for (name, latency) in [
        ("ack latency ms", &report.ack_latency_ms),
        ("after the warm-up", &report.ack_latency_after_warmup_ms),
    ] {
        println!(
            "{name}: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            latency.p50, latency.p90, latency.p99, latency.max
        );
    }
    if let Some(collector) = &report.collector {
        println!(
            "receiver pid {}: {:.1} CPU s ({:.2} per million samples), peak RSS {:.1} MiB, disk growth {}",
            collector.pid,
            collector.cpu_seconds,
            collector.cpu_seconds_per_million_samples.unwrap_or(0.0),
            collector.peak_rss_bytes as f64 / 1048576.0,
            collector
                .disk_growth_bytes
                .map(|bytes| format!("{:.1} MiB", bytes as f64 / 1048576.0))
                .unwrap_or_else(|| "not measured".into()),
        );
    }
    println!(
        "loadgen: {:.1} CPU s, peak RSS {:.1} MiB",
        report.loadgen.cpu_seconds,
        report.loadgen.peak_rss_bytes as f64 / 1048576.0
    );
    Ok(())
}

/// The target from `--target` and `--collector`, with every missing piece named.
fn target(cli: &Cli) -> anyhow::Result<Target> {
    let kind = cli.target.first().map(String::as_str).unwrap_or("vigil");
    match kind {
        "vigil" => {
            let url = cli
                .target
                .get(1)
                .or(cli.collector.as_ref())
                .context("no collector to send to; pass --collector https://HOST:PORT")?
                .clone();
            let ca_dir = cli
                .ca_dir
                .clone()
                .context("the vigil target needs the collector's CA; pass --ca-dir DIR (the folder with ca.pem and ca-key.pem)")?;
            Ok(Target::Vigil {
                url,
                cert_cache: cli
                    .cert_cache
                    .clone()
                    .unwrap_or_else(|| ca_dir.join("loadgen-certs")),
                ca_dir,
                server_name: cli.server_name.clone(),
            })
        }
        "prometheus-remote-write" => {
            let url = cli
                .target
                .get(1)
                .or(cli.collector.as_ref())
                .context("no remote-write URL; pass --target prometheus-remote-write http://HOST:PORT/api/v1/write")?
                .clone();
            Ok(Target::RemoteWrite { url })
        }
        other => anyhow::bail!(
            "--target {other:?} is not known; use `vigil` or `prometheus-remote-write URL`"
        ),
    }
}
