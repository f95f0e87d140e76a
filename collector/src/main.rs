//! `vigil-collector`: parse the command line, then serve, run the demo, or query.
//!
//! `serve` reads as the whole lifecycle: load and validate the config, open the store, bind,
//! log the address, run until SIGTERM or Ctrl-C, drain within a deadline.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::demo::{self, DemoOptions};
use vigil_collector::query::{self, OutputFormat};
use vigil_collector::serve::Collector;
use vigil_proto::config_file::parse_duration;

/// Vigil collector: receives health reports from agents over mutual TLS, stores them and
/// answers queries.
#[derive(Parser)]
#[command(name = "vigil-collector", version)]
struct Cli {
    /// Log format on stderr (level: VIGIL_LOG, e.g. VIGIL_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector with a config file until SIGTERM or Ctrl-C.
    Serve {
        /// The collector's config file (collector.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a collector and one local agent in one process, with a throwaway CA, and show
    /// what arrives. Leaves a working setup (configs, certificates, store) in the folder.
    Demo {
        /// Folder for the configs, certificates and store [default: ./vigil-demo].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Stop after this long, e.g. "30s" (default: run until Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Address of the ingest listener; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:7443")]
        grpc: SocketAddr,
    },
    /// Print stored series matching a Prometheus-style selector.
    Query {
        /// The collector's data directory (its `data_dir`).
        #[arg(long)]
        data: PathBuf,
        /// e.g. 'system_filesystem_usage_bytes{mountpoint="/",state="used"}'.
        selector: String,
        /// How far back to look, e.g. "5m", "1h", "7d".
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        since: Duration,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // rustls panics when more than one crypto provider is compiled in and none is chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_command(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = CollectorConfig::load(&config)?;
            let shutdown = CancellationToken::new();
            let collector = Collector::bind(&config, shutdown.clone()).await?;
            tracing::info!(
                grpc = %collector.grpc_addr(),
                data_dir = %config.data_dir.display(),
                version = env!("CARGO_PKG_VERSION"),
                "vigil-collector serving"
            );
            tokio::spawn(cancel_on_signal(shutdown));
            collector.run().await?;
            tracing::info!("vigil-collector stopped");
            Ok(())
        }
        Command::Demo {
            data,
            duration,
            grpc,
        } => {
            let data_dir = data.unwrap_or_else(|| PathBuf::from("vigil-demo"));
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            let options = DemoOptions {
                data_dir,
                duration,
                grpc,
            };
            let mut stdout = std::io::stdout();
            demo::run(options, shutdown, &mut stdout).await?;
            Ok(())
        }
        Command::Query {
            data,
            selector,
            since,
            format,
        } => {
            let mut stdout = std::io::stdout().lock();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis() as i64)
                .unwrap_or(0);
            let n_series = tokio::task::block_in_place(|| {
                query::run_query(&data, &selector, since, format, now_ms, &mut stdout)
            })?;
            if n_series == 0 {
                eprintln!(
                    "no series match {selector} in the last {}",
                    humantime::format_duration(since)
                );
            }
            Ok(())
        }
    }
}

/// SIGTERM (systemd stop) and Ctrl-C cancel the same token.
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
    shutdown.cancel();
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}
