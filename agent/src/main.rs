//! `vigil-agent`: parse the command line, then collect once or run until told to stop.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use vigil_agent::collect;
use vigil_agent::config::AgentConfig;
use vigil_agent::run::{Agent, AGENT_VERSION};
use vigil_agent::service::stop::StopReason;
use vigil_agent::service::{self, InstallLayout, InstallOptions, UninstallOptions};

/// Vigil agent: reports this machine's health to the MSP's collector over mutual TLS.
#[derive(Parser)]
#[command(name = "vigil-agent", version)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this machine reports, without a collector.
    Collect {
        /// Collect once and exit (otherwise: every interval until Ctrl-C).
        #[arg(long)]
        once: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Interval between collections without --once, e.g. "10s".
        #[arg(long, default_value = "10s", value_parser = vigil_proto::config_file::parse_duration)]
        interval: std::time::Duration,
    },
    /// Join a collector with a join token: generate this machine's key, get its certificate,
    /// write agent.toml. The key never leaves the machine.
    Enroll {
        /// The collector's ingest address, e.g. "https://msp.example:7443".
        #[arg(long)]
        collector: String,
        /// The join token from 'vigil-collector token create'.
        #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
        token: String,
        /// Folder for the key, certificates and agent.toml.
        #[arg(long, default_value = default_config_dir())]
        config_dir: PathBuf,
        /// Name to enroll under [default: this machine's host name].
        #[arg(long)]
        hostname: Option<String>,
        /// How long to wait for a technician's approval, if the token requires one.
        #[arg(long, default_value = "1h", value_parser = vigil_proto::config_file::parse_duration)]
        wait: std::time::Duration,
    },
    /// Collect on the interval grid and stream to the collector until SIGTERM, Ctrl-C or a
    /// Windows service stop.
    Run {
        /// The agent's config file (agent.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Enroll (unless already enrolled), point the config at the system's state folder, and
    /// install and start the agent as a systemd service (Linux) or a Windows service.
    Install {
        /// The collector's ingest address, e.g. "https://msp.example:7443".
        #[arg(long, requires = "token")]
        collector: Option<String>,
        /// The join token from 'vigil-collector token create'. Without it, the agent must
        /// already be enrolled in the system's config folder.
        #[arg(
            long,
            env = "VIGIL_TOKEN",
            hide_env_values = true,
            requires = "collector"
        )]
        token: Option<String>,
        /// Name to enroll under [default: this machine's host name].
        #[arg(long)]
        hostname: Option<String>,
        /// How long to wait for a technician's approval, if the token requires one.
        #[arg(long, default_value = "1h", value_parser = vigil_proto::config_file::parse_duration)]
        wait: std::time::Duration,
        /// Install into this folder instead of the system: files only, no user, no service.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Install and enable the service, but do not start it now.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove the service, its config and its state.
    Uninstall {
        /// Keep the spool of batches the collector has not acknowledged yet.
        #[arg(long)]
        keep_spool: bool,
        /// Uninstall from this folder instead of the system (see 'install --root').
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// Inventory and series as one JSON document.
    Json,
    /// One `name{labels} value` line per series, like Prometheus' text format.
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(windows)]
    let log_file = windows_log_file(&cli.command);
    #[cfg(not(windows))]
    let log_file: Option<fn() -> std::io::Sink> = None;
    init_logging(cli.log_format, log_file);
    // Started by the Service Control Manager, the process belongs to its dispatcher, which
    // runs the agent on a thread of its own until the service stops.
    #[cfg(windows)]
    if let Command::Run { config } = &cli.command {
        match vigil_agent::service::windows::run_if_started_by_scm(config.clone()) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => {}
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match vigil_agent::run::runtime() {
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
        Command::Collect {
            once,
            format,
            interval,
        } => {
            if once {
                let report = tokio::task::spawn_blocking(|| collect::collect_once(AGENT_VERSION))
                    .await
                    .context("collecting")?;
                print_collection(&report, format)
            } else {
                collect_forever(format, interval).await
            }
        }
        Command::Enroll {
            collector,
            token,
            config_dir,
            hostname,
            wait,
        } => {
            let enrolled = enroll(collector, token, config_dir, hostname, wait).await?;
            println!(
                "enrolled as '{}' of client '{}'; start reporting with: vigil-agent run --config {}",
                enrolled.agent_id,
                enrolled.client,
                enrolled.config_path.display()
            );
            Ok(())
        }
        Command::Install {
            collector,
            token,
            hostname,
            wait,
            root,
            no_start,
        } => {
            let layout = root.map_or_else(InstallLayout::system, InstallLayout::under);
            if let (Some(collector), Some(token)) = (collector, token) {
                let enrolled =
                    enroll(collector, token, layout.config_dir(), hostname, wait).await?;
                println!(
                    "enrolled as '{}' of client '{}'",
                    enrolled.agent_id, enrolled.client
                );
            }
            let options = InstallOptions {
                layout: layout.clone(),
                start: !no_start,
            };
            tokio::task::spawn_blocking(move || service::install(&options)).await??;
            if !layout.is_system() {
                println!(
                    "wrote the agent's files under {}; no service was registered",
                    layout.root.display()
                );
            } else if no_start {
                println!(
                    "installed the '{}' service; it starts at the next boot",
                    service::SERVICE_NAME
                );
            } else {
                println!(
                    "installed and started the '{}' service",
                    service::SERVICE_NAME
                );
            }
            Ok(())
        }
        Command::Uninstall { keep_spool, root } => {
            let layout = root.map_or_else(InstallLayout::system, InstallLayout::under);
            let spool = layout.state_dir().join("spool");
            let options = UninstallOptions { layout, keep_spool };
            tokio::task::spawn_blocking(move || service::uninstall(&options)).await??;
            if keep_spool {
                println!("uninstalled; the spool stays in {}", spool.display());
            } else {
                println!("uninstalled");
            }
            Ok(())
        }
        Command::Run { config } => {
            let config = AgentConfig::load(&config)?;
            // As ssh does: a key others may read is no longer this machine's alone.
            vigil_proto::config_file::check_private_key_file(&config.tls.key)?;
            install_crypto_provider();
            tracing::info!(
                collector = %config.collector,
                interval = %humantime::format_duration(config.interval),
                version = AGENT_VERSION,
                "vigil-agent starting"
            );
            let shutdown = CancellationToken::new();
            let agent = Agent::new(config);
            tokio::spawn(cancel_on_signal(
                shutdown.clone(),
                Some(agent.stop_reason()),
            ));
            #[cfg(unix)]
            tokio::spawn(follow_sleep_signals(agent.power()));
            Ok(agent.run(shutdown).await?)
        }
    }
}

async fn collect_forever(
    format: OutputFormat,
    interval: std::time::Duration,
) -> anyhow::Result<()> {
    let mut collector = tokio::task::spawn_blocking(collect::HostCollector::new).await?;
    let inventory = collector.inventory(AGENT_VERSION);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone(), None));
    loop {
        let (tick_ms, wait) = vigil_agent::run::next_tick(vigil_agent::run::now_ms(), interval);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        let series = collector.collect(tick_ms);
        print_collection(
            &collect::CollectOnce {
                inventory: inventory.clone(),
                series,
            },
            format,
        )?;
    }
}

fn print_collection(report: &collect::CollectOnce, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Text => {
            for series in &report.series {
                for sample in &series.samples {
                    println!(
                        "{}{} {} {}",
                        series.name, series.labels, sample.value, sample.timestamp_ms
                    );
                }
            }
        }
    }
    Ok(())
}

/// Where `enroll` writes by default: the service's configuration folder.
const fn default_config_dir() -> &'static str {
    if cfg!(windows) {
        r"C:\ProgramData\Vigil\agent"
    } else {
        "/etc/vigil-agent"
    }
}

/// rustls panics when more than one crypto provider is compiled in and none is chosen.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Joins a collector with a join token and writes the agent's files into `config_dir`.
async fn enroll(
    collector: String,
    token: String,
    config_dir: PathBuf,
    hostname: Option<String>,
    wait: std::time::Duration,
) -> anyhow::Result<vigil_agent::enroll::Enrolled> {
    install_crypto_provider();
    let token = token.parse()?;
    let hostname = match hostname {
        Some(hostname) => hostname,
        None => {
            tokio::task::spawn_blocking(|| {
                collect::HostCollector::new()
                    .inventory(AGENT_VERSION)
                    .hostname
            })
            .await?
        }
    };
    let options = vigil_agent::enroll::EnrollOptions {
        collector_url: collector,
        token,
        config_dir,
        hostname,
        approval_wait: wait,
        approval_poll: vigil_agent::enroll::APPROVAL_POLL,
    };
    Ok(vigil_agent::enroll::enroll(&options).await?)
}

/// SIGTERM (systemd stop) and Ctrl-C cancel the same token. On SIGTERM the Goodbye's reason
/// is read from systemd first: the whole machine may be going down, not just the agent.
async fn cancel_on_signal(shutdown: CancellationToken, stop_reason: Option<StopReason>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {
                if let Some(stop_reason) = &stop_reason {
                    let reason = vigil_agent::service::stop::reason_from_this_system().await;
                    tracing::info!(?reason, "SIGTERM");
                    stop_reason.set(reason);
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = stop_reason;
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
    shutdown.cancel();
}

/// The systemd sleep hook (`deploy/systemd/vigil-agent-sleep`) sends SIGUSR1 before the
/// machine sleeps and SIGUSR2 after it wakes.
#[cfg(unix)]
async fn follow_sleep_signals(power: vigil_agent::service::power::Power) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut sleeping, mut woken) = match (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(sleeping), Ok(woken)) => (sleeping, woken),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "cannot listen for the sleep hook's signals; the collector will not hear of sleeps");
            return;
        }
    };
    loop {
        tokio::select! {
            Some(()) = sleeping.recv() => {
                tracing::info!("SIGUSR1: the machine is going to sleep");
                power.going_to_sleep();
            }
            Some(()) = woken.recv() => {
                tracing::info!("SIGUSR2: the machine woke up");
                power.resumed();
            }
            else => return,
        }
    }
}

/// The log levels VIGIL_LOG asks for: a level (`debug`), or levels per module
/// (`warn,vigil_agent::ship=debug`); `info` when unset or not understood.
fn log_filter(setting: Option<&str>) -> tracing_subscriber::filter::Targets {
    let default = || {
        tracing_subscriber::filter::Targets::new()
            .with_default(tracing_subscriber::filter::LevelFilter::INFO)
    };
    match setting.map(str::parse) {
        None => default(),
        Some(Ok(targets)) => targets,
        Some(Err(error)) => {
            eprintln!("warning: VIGIL_LOG: {error}; logging at level info");
            default()
        }
    }
}

/// Logs go to stderr (the journal under systemd) and, when given, to `file` as well.
fn init_logging<W>(format: LogFormat, file: Option<W>)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = log_filter(std::env::var("VIGIL_LOG").ok().as_deref());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let stderr = if format == LogFormat::Json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    let file = file.map(|file| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(file)
            .with_ansi(false);
        if format == LogFormat::Json {
            layer.json().boxed()
        } else {
            layer.boxed()
        }
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .init();
}

/// A Windows service has no console: `run` also writes its log to the config folder's
/// `logs` folder (`%ProgramData%\Vigil\agent\logs` when installed), a file a day, the last
/// seven kept.
#[cfg(windows)]
fn windows_log_file(command: &Command) -> Option<tracing_appender::rolling::RollingFileAppender> {
    let Command::Run { config } = command else {
        return None;
    };
    let folder = config
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("logs");
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("vigil-agent")
        .filename_suffix("log")
        .max_log_files(7)
        .build(&folder);
    match appender {
        Ok(appender) => Some(appender),
        Err(error) => {
            eprintln!(
                "warning: cannot write the log to '{}': {error}; logging to stderr only",
                folder.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn vigil_log_sets_a_level_or_levels_per_module() {
        let unset = log_filter(None);
        assert!(unset.would_enable("vigil_agent::ship", &Level::INFO));
        assert!(!unset.would_enable("vigil_agent::ship", &Level::DEBUG));

        let warn = log_filter(Some("warn"));
        assert!(warn.would_enable("vigil_agent::ship", &Level::WARN));
        assert!(!warn.would_enable("vigil_agent::ship", &Level::INFO));

        let per_module = log_filter(Some("warn,vigil_agent::ship=debug"));
        assert!(per_module.would_enable("vigil_agent::ship", &Level::DEBUG));
        assert!(!per_module.would_enable("vigil_agent::run", &Level::INFO));

        let nonsense = log_filter(Some("=loud="));
        assert!(nonsense.would_enable("vigil_agent::run", &Level::INFO));
    }
}
