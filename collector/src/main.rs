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
use vigil_collector::enroll::admin;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify;
use vigil_collector::pipeline::presence::{HostPresence, PresenceState};
use vigil_collector::policy::Policy;
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
        /// Address of the console and JSON API; port 0 picks a free port [default:
        /// 127.0.0.1:7480, skipped if taken].
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// People who use the console and the API: add, list, remove, and API tokens.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// The certificate authority that gives agents their identity.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Join tokens for installing agents.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolled hosts: list, approve, revoke.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Print stored series matching a Prometheus-style selector.
    Query {
        /// The collector's data directory (its `data_dir`).
        #[arg(long)]
        data: PathBuf,
        /// e.g. 'system_filesystem_usage_bytes{mountpoint="/",state="used"}'.
        selector: String,
        /// How far back to look, e.g. "5m", "1h", "7d". Beyond a day, each series prints one
        /// average per step, read from the five-minute rollups.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        since: Duration,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Load an OpenMetrics file with timestamps (.om or .om.gz, like promtool's backfill)
    /// into a store: all of it, or nothing if a line is malformed. Stop a collector that
    /// uses the store first.
    Import {
        /// The collector's data directory (its `data_dir`); created if missing.
        #[arg(long)]
        data: PathBuf,
        /// The OpenMetrics file.
        file: PathBuf,
    },
    /// Replay a recorded OpenMetrics trace (.om or .om.gz) through the alert engine in
    /// simulated time; print one JSON line per alert state change.
    Backtest {
        /// Rules file that tunes, disables or adds rules (default: the built-in rules).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// A client's policy file (that version) applied to every host of the trace: the
        /// replay runs the live path — contract, maintenance, `lasting`, business hours and
        /// digests, routing — and prints what would have been delivered, when, and where.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// With --policy: only the engine's raw transitions, with the contract's forecast
        /// horizons (what backtest printed before it ran the live path).
        #[arg(long, requires = "policy")]
        engine_only: bool,
        /// With --policy: the collector config whose [notify.routing] names the routes
        /// (default: routes named on_call, normal and escalation).
        #[arg(long, requires = "policy")]
        config: Option<PathBuf>,
        /// The trace.
        input: PathBuf,
    },
    /// Client contracts (policy files): what each client's contract makes of an alert.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Alert delivery channels.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Open alerts, acknowledgements and deliveries that were given up.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// The monthly client report: one self-contained HTML page from stored data (and a PDF
    /// where a headless Chromium is installed), or an MSP-wide summary with --all.
    Report {
        /// The collector's config file (default: VIGIL_CONFIG, ./collector.toml, /etc/vigil).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The client, as its policy file names it.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        client: Option<String>,
        /// Every client with a contract: one line each, and each page into --out (a folder).
        #[arg(long)]
        all: bool,
        /// The month, YYYY-MM, in the client's time zone.
        #[arg(long)]
        month: String,
        /// Where the page goes [default: CLIENT-MONTH.html in the current folder].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print it to this PDF with a headless Chromium.
        #[arg(long)]
        pdf: Option<PathBuf>,
        /// Mail it to the client's [report] send_to through the first email channel.
        #[arg(long, conflicts_with = "all")]
        send: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user. The password is read from --password-file, else asked for on the
    /// terminal, else read from the first line of standard input.
    Add {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Letters, digits, '-', '_', '.', '@'.
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The one client a `client` user sees (its id, as certificates carry it).
        #[arg(long)]
        client: Option<String>,
        /// A file whose first line is the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// No password: the user works with API tokens only ('users token').
        #[arg(long, conflicts_with = "password_file")]
        no_password: bool,
    },
    /// Make a new API token for a user and print it (only its hash is kept: copy it now).
    Token {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        name: String,
    },
    /// Every user: name, role, client, tokens.
    List {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Remove a user with its tokens; a running collector refuses them at the next request.
    Remove {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        name: String,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send one test alert through every configured channel and say what happened on each;
    /// exits non-zero if any failed.
    Test {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Alerts that are firing and were delivered, with their ids and acknowledgements.
    Open {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Record that someone has taken an alert in hand: an acknowledged emergency does not
    /// escalate.
    Ack {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The alert id (its fingerprint, shown in every alert message).
        id: String,
        /// Who takes it.
        #[arg(long)]
        by: String,
    },
    /// Deliveries that were given up after their last attempt, or refused by the receiver.
    DeadLetters {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a CA and the collector's server certificate (keys written with mode 0600).
    Init {
        /// Folder for ca.pem, ca-key.pem, collector.pem and collector-key.pem.
        #[arg(long, default_value = "/etc/vigil")]
        dir: PathBuf,
        /// The CA's name, e.g. "Vigil CA for Example MSP".
        #[arg(long, default_value = "Vigil CA")]
        name: String,
        /// DNS name or IP address agents reach the collector at (repeat for several).
        #[arg(long = "server-name", required = true)]
        server_names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a join token for one client; print it with the install command.
    Create {
        /// The collector's config, whose [enroll] section names the CA [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The client id the agents will belong to, as its policy file names it
        /// (`client = "acme-dental"`): letters, digits, '-', '_', '.'; no spaces.
        #[arg(long)]
        client: String,
        /// How long the token stays valid, e.g. "24h".
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        expires: Duration,
        /// How many agents may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// New agents wait until a technician runs 'hosts approve'.
        #[arg(long)]
        approve: bool,
    },
}

#[derive(Subcommand)]
enum HostsCommand {
    /// Each enrolled host: client, enrolled, certificate expiry, revoked.
    List {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Agents waiting for approval.
    Pending {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Let a pending agent in.
    Approve {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The request id from 'hosts pending'.
        request: String,
    },
    /// Cut a host off: its certificates are refused at once, open streams within seconds.
    Revoke {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The agent id (the host label).
        host: String,
    },
    /// A machine takes over an enrolled host's name (a rebuilt or swapped PC): revoke the
    /// old certificates now and let the next enrollment of the name, with a token of the
    /// same client, take it.
    Replace {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The agent id (the host label).
        host: String,
    },
    /// Forget a revoked host (a retired machine) so that its name is free again; its old
    /// certificates stay refused.
    Remove {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The agent id (the host label).
        host: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a client's policy file and say in plain words what it means; exits non-zero
    /// with every problem (file, line, fix) if it is not valid.
    Check {
        /// e.g. deploy/policies/dental-practice.toml.
        file: PathBuf,
    },
    /// List the stored versions of one client's contract: number, time, author, digest.
    History {
        /// The collector's config [default: $VIGIL_CONFIG, else ./collector.toml, else
        /// /etc/vigil/collector.toml].
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        client: String,
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
                http = %collector
                    .http()
                    .map_or("off".to_string(), |server| format!("{}://{}", server.scheme(), server.local_addr())),
                data_dir = %config.data_dir.display(),
                version = env!("CARGO_PKG_VERSION"),
                "vigil-collector serving"
            );
            tokio::spawn(cancel_on_signal(shutdown));
            collector.run().await?;
            tracing::info!("vigil-collector stopped");
            Ok(())
        }
        Command::Users { command } => run_users(command),
        Command::Demo {
            data,
            duration,
            grpc,
            http,
        } => {
            let data_dir = data.unwrap_or_else(|| PathBuf::from("vigil-demo"));
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            let options = DemoOptions {
                data_dir,
                duration,
                grpc,
                http,
            };
            let mut stdout = std::io::stdout();
            demo::run(options, shutdown, &mut stdout).await?;
            Ok(())
        }
        Command::Ca {
            command:
                CaCommand::Init {
                    dir,
                    name,
                    server_names,
                },
        } => {
            // The collector's own certificate is renewed by running this again in a new folder
            // or with a future 'ca renew-server'; a year is a reasonable first term.
            let files = admin::init_ca(
                &dir,
                &name,
                &server_names,
                Duration::from_secs(365 * 24 * 3600),
            )?;
            println!(
                "wrote {} and {} (keep the key safe: it can issue certificates)",
                files.ca_cert.display(),
                files.ca_key.display()
            );
            println!(
                "wrote {} and {} for {}",
                files.server_cert.display(),
                files.server_key.display(),
                server_names.join(", ")
            );
            println!(
                "in collector.toml:\n[grpc]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n[enroll]\nca_cert = {:?}\nca_key = {:?}",
                files.server_cert, files.server_key, files.ca_cert, files.ca_cert, files.ca_key
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    config,
                    client,
                    expires,
                    uses,
                    approve,
                },
        } => {
            let config = find_config(config)?;
            let loaded = CollectorConfig::load(&config)?;
            let created = admin::create_token(&loaded, &config, &client, expires, uses, approve)?;
            let expires_at = std::time::UNIX_EPOCH
                + Duration::from_millis(created.record.expires_at_ms.max(0) as u64);
            println!("{}", created.token);
            eprintln!(
                "join token for client '{client}': {} use{}, expires {}{}",
                uses,
                if uses == 1 { "" } else { "s" },
                humantime::format_rfc3339_seconds(expires_at),
                if approve {
                    ", each new agent waits for 'hosts approve'"
                } else {
                    ""
                }
            );
            eprintln!(
                "on the client machine: vigil-agent install --collector https://<collector>:{} --token {}",
                loaded.grpc.listen.port(),
                created.token
            );
            Ok(())
        }
        Command::Hosts { command } => run_hosts(command),
        Command::Report {
            config,
            client,
            all,
            month,
            out,
            pdf,
            send,
        } => {
            let options = ReportOptions {
                month,
                out,
                pdf,
                send,
            };
            match client {
                Some(client) if !all => run_report(config, &client, options).await,
                _ => run_report_all(config, options),
            }
        }
        Command::Policy { command } => run_policy(command),
        Command::Notify {
            command: NotifyCommand::Test { config },
        } => run_notify_test(&find_config(config)?).await,
        Command::Alerts { command } => run_alerts(command),
        Command::Backtest {
            rules,
            policy,
            engine_only,
            config,
            input,
        } => {
            let rules = match rules {
                Some(path) => vigil_collector::alert::load_rules(&path)?,
                None => vigil_collector::alert::RuleSet::builtin(),
            };
            let started = std::time::Instant::now();
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let replay = match policy {
                Some(file) if !engine_only => {
                    let routing = match config {
                        Some(path) => CollectorConfig::load(&path)?.notify.routing,
                        None => vigil_collector::pipeline::backtest::default_routing(),
                    };
                    vigil_collector::pipeline::backtest::run(
                        rules,
                        &file,
                        routing,
                        &input,
                        &mut stdout,
                    )
                    .await?
                }
                policy => {
                    let mut engine = vigil_collector::alert::Engine::new(rules);
                    if let Some(file) = policy {
                        let text = std::fs::read_to_string(&file).map_err(|error| {
                            anyhow::anyhow!(
                                "policy {}: cannot be read: {error}; check the path",
                                file.display()
                            )
                        })?;
                        let horizons = Policy::parse(&file, &text)?
                            .forecast
                            .map(|horizons| (horizons.warn, horizons.critical));
                        engine.set_forecast_horizons("", horizons);
                    }
                    vigil_collector::alert::backtest::run_engine(engine, &input, &mut stdout)?
                }
            };
            std::io::Write::flush(&mut stdout)?;
            tracing::info!(
                samples = replay.samples,
                series = replay.series,
                transitions = replay.transitions,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "backtest replayed {}",
                input.display()
            );
            Ok(())
        }
        Command::Import { data, file } => {
            let started = std::time::Instant::now();
            let mut stderr = std::io::stderr();
            let progress: Option<&mut dyn std::io::Write> =
                if std::io::IsTerminal::is_terminal(&stderr) {
                    Some(&mut stderr)
                } else {
                    None
                };
            let summary = tokio::task::block_in_place(|| {
                vigil_collector::store::import::import_openmetrics(&data, &file, progress)
            })?;
            vigil_collector::store::import::write_summary(
                &mut std::io::stdout(),
                &data,
                &summary,
                started.elapsed(),
            )?;
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
            let read = tokio::task::block_in_place(|| {
                query::run_query(&data, &selector, since, format, now_ms, &mut stdout)
            });
            let n_series = match read {
                Err(query::QueryError::Store(vigil_collector::store::StoreError::InUse {
                    ..
                })) => query_running_collector(&data, &selector, since, format, now_ms).await?,
                read => read?,
            };
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

/// `hosts list`: every enrolled host, and any other host that has connected, with where it
/// stands as the running collector last wrote it (online, asleep since …, shut down since …).
fn hosts_table(
    enrolled: &[admin::HostStatus],
    presence: &std::collections::BTreeMap<String, HostPresence>,
) -> Vec<String> {
    let time = |ms: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
        )
        .to_string()
    };
    let row = |cells: [&str; 6]| {
        format!(
            "{:<24} {:<20} {:<42} {:<22} {:<8} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )
    };
    let mut rows = vec![row([
        "HOST",
        "CLIENT",
        "STATUS",
        "LAST DATA",
        "AGENT",
        "CERT EXPIRES",
    ])];
    let mut names: Vec<&str> = enrolled
        .iter()
        .map(|host| host.record.agent_id.as_str())
        .chain(presence.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let record = enrolled.iter().find(|host| host.record.agent_id == name);
        let seen = presence.get(name);
        let status = match (record.and_then(|host| host.revoked_at_ms), seen) {
            (Some(at), _) => format!("revoked {}", time(at)),
            (None, None) => "never connected".to_string(),
            (None, Some(seen)) if seen.state == PresenceState::Online => "online".to_string(),
            (None, Some(seen)) => format!("{} since {}", seen.state.as_str(), time(seen.since_ms)),
        };
        let client = record
            .map(|host| host.record.client.as_str())
            .or(seen.map(|seen| seen.client.as_str()))
            .unwrap_or("-");
        let last_data = seen
            .and_then(|seen| seen.last_batch_ms)
            .map_or("-".to_string(), time);
        let agent = seen.map_or("-", |seen| seen.agent_version.as_str());
        let expires = record.map_or("-".to_string(), |host| time(host.record.cert_expires_at_ms));
        rows.push(row([name, client, &status, &last_data, agent, &expires]));
    }
    rows
}

fn run_hosts(command: HostsCommand) -> anyhow::Result<()> {
    let data_dir = |config: &Option<PathBuf>| -> anyhow::Result<PathBuf> {
        Ok(CollectorConfig::load(&find_config(config.clone())?)?.data_dir)
    };
    match command {
        HostsCommand::List { config } => {
            let data_dir = data_dir(&config)?;
            let rows = hosts_table(
                &admin::list_hosts(&data_dir)?,
                &vigil_collector::pipeline::presence::read(&data_dir)?,
            );
            if rows.len() == 1 {
                eprintln!("no hosts enrolled yet; 'vigil-collector token create' starts one");
            }
            for row in rows {
                println!("{}", row.trim_end());
            }
        }
        HostsCommand::Pending { config } => {
            for request in admin::pending(&data_dir(&config)?)? {
                println!(
                    "{}  {}  client '{}'",
                    request.request_id, request.hostname, request.client
                );
            }
        }
        HostsCommand::Approve { config, request } => {
            admin::approve(&data_dir(&config)?, &request)?;
            println!("approved {request}: the agent gets its certificate at its next attempt");
        }
        HostsCommand::Revoke { config, host } => {
            admin::revoke_host(&data_dir(&config)?, &host)?;
            println!("revoked {host}: a running collector refuses it within a second");
        }
        HostsCommand::Replace { config, host } => {
            let record = admin::replace_host(&data_dir(&config)?, &host)?;
            println!(
                "revoked {host}'s certificates; the next agent of client '{}' that enrolls as '{host}' takes the name",
                record.client
            );
        }
        HostsCommand::Remove { config, host } => {
            admin::remove_host(&data_dir(&config)?, &host)?;
            println!("removed {host}: the name is free, its old certificates stay refused");
        }
    }
    Ok(())
}

/// `query` while a collector holds the store: the same series through its API on loopback,
/// with the token in `api-token` beside its config (`<data>/collector.toml`, as the demo
/// leaves it, else the config `find_config` finds, if its `data_dir` is this store).
async fn query_running_collector(
    data: &std::path::Path,
    selector: &str,
    since: Duration,
    format: OutputFormat,
    now_ms: i64,
) -> anyhow::Result<usize> {
    let beside = data.join("collector.toml");
    let config_path = if beside.is_file() {
        beside
    } else {
        find_config(None)?
    };
    let config = CollectorConfig::load(&config_path)?;
    let same_store = |path: &std::path::Path| path.canonicalize().ok();
    if same_store(&config.data_dir) != same_store(data) {
        anyhow::bail!(
            "data directory '{}' is in use by a running collector, and {} is for '{}'; pass \
             --data as that config names it, or stop the collector",
            data.display(),
            config_path.display(),
            config.data_dir.display()
        );
    }
    let client = vigil_collector::http::client::ApiClient::for_config(&config, &config_path)?;
    let since_ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let series = client
        .range(selector, now_ms.saturating_sub(since_ms), now_ms)
        .await?;
    eprintln!("read through the running collector's API (the store is in use)");
    query::write_series(&series, format, &mut std::io::stdout().lock())?;
    Ok(series.len())
}

/// `users …`: changes `<data_dir>/http/users.json`, which a running collector reads at each
/// request; token creation and removals go to the audit log as the API's do.
fn run_users(command: UsersCommand) -> anyhow::Result<()> {
    let data_dir = |config: &Option<PathBuf>| -> anyhow::Result<PathBuf> {
        Ok(CollectorConfig::load(&find_config(config.clone())?)?.data_dir)
    };
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let audit = |data_dir: &std::path::Path, action: &str, subject: &str| -> anyhow::Result<()> {
        let user = std::env::var("USER").unwrap_or_else(|_| "command line".to_string());
        vigil_collector::http::audit::AuditLog::open(data_dir)?.record(
            &vigil_collector::http::audit::AuditEntry {
                at_ms: now_ms,
                user: format!("{user} (command line)"),
                action: action.to_string(),
                subject: subject.to_string(),
                detail: None,
                address: None,
            },
        )?;
        Ok(())
    };
    match command {
        UsersCommand::Add {
            config,
            name,
            role,
            client,
            password_file,
            no_password,
        } => {
            let data_dir = data_dir(&config)?;
            let users = Users::open(&data_dir)?;
            // Checked before asking for a password, so a typo costs no typing.
            vigil_collector::http::users::check_user_name(&name)?;
            let password = if no_password {
                None
            } else {
                Some(read_password(&name, password_file.as_deref())?)
            };
            let user = users.add(&name, role, client.as_deref(), password.as_deref(), now_ms)?;
            audit(&data_dir, "add_user", &name)?;
            println!(
                "added {} ({}{}); {}",
                user.name,
                user.role.as_str(),
                user.client
                    .map(|client| format!(" of client '{client}'"))
                    .unwrap_or_default(),
                if no_password {
                    "make it an API token with 'vigil-collector users token NAME'"
                } else {
                    "it signs in at the console with that password"
                }
            );
        }
        UsersCommand::Token { config, name } => {
            let data_dir = data_dir(&config)?;
            let token = Users::open(&data_dir)?.create_token(&name, now_ms)?;
            audit(&data_dir, "create_api_token", &name)?;
            println!("{token}");
            eprintln!(
                "API token for {name}: send it as 'Authorization: Bearer TOKEN'; it is shown only now"
            );
        }
        UsersCommand::List { config } => {
            let users = Users::open(&data_dir(&config)?)?.all()?;
            if users.is_empty() {
                eprintln!("no users yet; 'vigil-collector users add NAME --role admin' adds one");
            }
            for user in users.values() {
                println!(
                    "{:<24} {:<11} {:<20} {} token(s){}",
                    user.name,
                    user.role.as_str(),
                    user.client.as_deref().unwrap_or("-"),
                    user.tokens.len(),
                    if user.password_hash.is_some() {
                        ""
                    } else {
                        ", no password"
                    }
                );
            }
        }
        UsersCommand::Remove { config, name } => {
            let data_dir = data_dir(&config)?;
            Users::open(&data_dir)?.remove(&name)?;
            audit(&data_dir, "remove_user", &name)?;
            println!("removed {name}: its tokens and sessions stop working at their next request");
        }
    }
    Ok(())
}

/// The new user's password: the first line of `file`, else asked twice on the terminal
/// without echo, else the first line of standard input.
fn read_password(name: &str, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let first_line = |text: &str| text.lines().next().unwrap_or("").to_string();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|error| {
            anyhow::anyhow!(
                "--password-file {}: {error}; check the path",
                file.display()
            )
        })?;
        return Ok(first_line(&text));
    }
    let stdin = std::io::stdin();
    if !std::io::IsTerminal::is_terminal(&stdin) {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdin.lock(), &mut line)?;
        return Ok(first_line(&line));
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        let _quiet = terminal::Quiet::start();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
        eprintln!();
        Ok(first_line(&line))
    };
    let password = ask(&format!("password for {name}: "))?;
    if ask("again: ")? != password {
        anyhow::bail!("the two passwords differ; run 'users add' again");
    }
    Ok(password)
}

/// Echo off on the terminal while a password is typed, back on when dropped.
mod terminal {
    #[cfg(unix)]
    pub struct Quiet(Option<rustix::termios::Termios>);

    #[cfg(unix)]
    impl Quiet {
        pub fn start() -> Self {
            use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
            let stdin = std::io::stdin();
            let Ok(saved) = tcgetattr(&stdin) else {
                return Self(None);
            };
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
            Self(Some(saved))
        }
    }

    #[cfg(unix)]
    impl Drop for Quiet {
        fn drop(&mut self) {
            if let Some(saved) = &self.0 {
                let _ = rustix::termios::tcsetattr(
                    std::io::stdin(),
                    rustix::termios::OptionalActions::Now,
                    saved,
                );
            }
        }
    }

    /// Elsewhere the password shows as it is typed; use --password-file there.
    #[cfg(not(unix))]
    pub struct Quiet;

    #[cfg(not(unix))]
    impl Quiet {
        pub fn start() -> Self {
            Quiet
        }
    }
}

/// `notify test`: the test alert through every channel, one line per channel.
async fn run_notify_test(config: &std::path::Path) -> anyhow::Result<()> {
    let loaded = CollectorConfig::load(config)?;
    let channels = notify::channel::Channels::build(&loaded.notify)?;
    if channels.is_empty() {
        anyhow::bail!(
            "config {}: no channels in [notify]; add a [[notify.channel]] (see README, 'Alert delivery')",
            config.display()
        );
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let outcomes = notify::test_alert::send_test(&channels, now_ms).await;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    for outcome in &outcomes {
        match &outcome.result {
            Ok(()) => println!("ok      {}: test alert accepted", outcome.channel),
            Err(error) => println!("FAILED  {}: {}", outcome.channel, error.detail),
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} channels failed", outcomes.len());
    }
    Ok(())
}

/// `alerts …`: reads and writes the outbox's files, so it works while a collector serves.
fn run_alerts(command: AlertsCommand) -> anyhow::Result<()> {
    let outbox = |config: &Option<PathBuf>| -> anyhow::Result<notify::Outbox> {
        Ok(notify::Outbox::open(
            &CollectorConfig::load(&find_config(config.clone())?)?.data_dir,
        )?)
    };
    let time = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|at| at.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    match command {
        AlertsCommand::Open { config } => {
            let open = outbox(&config)?.open_alerts()?;
            if open.is_empty() {
                eprintln!("no open alerts");
            }
            for (record, acknowledgement) in open {
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let state = match acknowledgement {
                    Some(ack) => format!(
                        "acknowledged by {} at {}, {}",
                        ack.by,
                        time(ack.at_ms),
                        record.alert.response_standing(ack.at_ms)
                    ),
                    None if record.escalated => {
                        format!("ESCALATED, {}", record.alert.response_standing(now_ms))
                    }
                    None => format!(
                        "not acknowledged, {}",
                        record.alert.response_standing(now_ms)
                    ),
                };
                println!(
                    "{}  since {}  {}  [{state}]",
                    record.alert.fingerprint,
                    time(record.alert.starts_at_ms),
                    record.alert.title()
                );
            }
        }
        AlertsCommand::Ack { config, id, by } => {
            let now_ms = jiff::Timestamp::now().as_millisecond();
            let record = outbox(&config)?.acknowledge(&id, &by, now_ms)?;
            println!(
                "acknowledged by {by} at {}, {}: {}",
                time(now_ms),
                record.alert.response_standing(now_ms),
                record.alert.title()
            );
        }
        AlertsCommand::DeadLetters { config } => {
            let dead = outbox(&config)?.dead()?;
            if dead.is_empty() {
                eprintln!("no dead letters");
            }
            for delivery in dead {
                println!(
                    "{}  {}  {} alert(s), first: {}\n    {}",
                    delivery.finished_ms.map(time).unwrap_or_default(),
                    delivery.key,
                    delivery.alerts.len(),
                    delivery
                        .alerts
                        .first()
                        .map(|alert| alert.title())
                        .unwrap_or_default(),
                    delivery.last_error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// What `report` was asked for besides the client.
struct ReportOptions {
    month: String,
    out: Option<PathBuf>,
    pdf: Option<PathBuf>,
    send: bool,
}

/// The store for a report, if no collector holds it; else `None` and the page says so.
fn report_store(config: &CollectorConfig) -> Option<vigil_collector::store::Store> {
    match vigil_collector::store::Store::open_existing(&config.store_config()) {
        Ok(store) => Some(store),
        Err(error) => {
            eprintln!(
                "note: stored series not read ({error}); the report uses the alert history only"
            );
            None
        }
    }
}

/// `report --client NAME --month YYYY-MM`: build, write, record; then PDF and mail if asked.
async fn run_report(
    config: Option<PathBuf>,
    client: &str,
    options: ReportOptions,
) -> anyhow::Result<()> {
    use vigil_collector::report;
    let loaded = CollectorConfig::load(&find_config(config)?)?;
    let month = report::Month::parse(&options.month)?;
    let now = jiff::Timestamp::now();
    report::check(&loaded.data_dir, client, month, now)?;
    let store = report_store(&loaded);
    let built = report::build(&loaded.data_dir, store.as_ref(), client, month, now)?;
    drop(store);
    let page = report::html::render(&built);
    let out = options
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{client}-{month}.html")));
    report::write_page(&out, &page)?;
    let mut sent = false;
    if options.send {
        let smtp = report::send::smtp_of(&loaded.notify).ok_or_else(|| {
            anyhow::anyhow!(
                "report --send: no email channel in [notify] of the config; add a \
                 [[notify.channel]] with type = \"email\""
            )
        })?;
        let (policy, _) = report::sources::contract(&loaded.data_dir, client, month)?;
        let send_to = policy.report.map(|r| r.send_to).unwrap_or_default();
        report::send::send(smtp, &built, &page, &send_to).await?;
        println!("sent to {}", send_to.join(", "));
        sent = true;
    }
    let run = report::runs::record(&loaded.data_dir, &built, &page, now.as_millisecond(), sent)?;
    println!(
        "wrote {} ({}, contract version {})",
        out.display(),
        run.output_digest,
        run.policy_version
    );
    if let Some(pdf) = options.pdf {
        report::pdf::print(&out, &pdf)?;
        println!("wrote {}", pdf.display());
    }
    Ok(())
}

/// `report --all --month YYYY-MM`: one line per client with a contract.
fn run_report_all(config: Option<PathBuf>, options: ReportOptions) -> anyhow::Result<()> {
    use vigil_collector::report;
    let loaded = CollectorConfig::load(&find_config(config)?)?;
    let month = report::Month::parse(&options.month)?;
    let now = jiff::Timestamp::now();
    let clients = vigil_collector::pipeline::PolicyArchive::new(&loaded.data_dir).clients()?;
    if clients.is_empty() {
        anyhow::bail!(
            "no client has a contract stored in {}; put policy files in the [policies] dir and \
             let serve load them",
            loaded.data_dir.display()
        );
    }
    if let Some(dir) = &options.out {
        std::fs::create_dir_all(dir)?;
    }
    let store = report_store(&loaded);
    println!(
        "{:<24} {:>10} {:>12} {:>12} {:>14} {:>9} {:>11}",
        "CLIENT", "AVAILABLE", "DOWNTIME", "BUSINESS", "COST", "FORESEEN", "RESPONSES"
    );
    let mut reported = 0;
    for client in clients {
        match report::build(&loaded.data_dir, store.as_ref(), &client, month, now) {
            Ok(built) => {
                reported += 1;
                let (met, counted) = built.responses.iter().fold((0, 0), |(met, all), row| {
                    (met + row.met, all + row.met + row.missed)
                });
                let cost = built.downtime_cost.map_or("-".to_string(), |cost| {
                    format!("{} {cost:.0}", built.currency.as_deref().unwrap_or(""))
                });
                println!(
                    "{:<24} {:>10} {:>12} {:>12} {:>14} {:>9} {:>11}",
                    client,
                    report::html::percent(built.availability),
                    report::html::duration(built.downtime_ms),
                    report::html::duration(built.downtime_business_ms),
                    cost,
                    built.foreseen.len(),
                    format!("{met}/{counted} met")
                );
                if let Some(dir) = &options.out {
                    let page = report::html::render(&built);
                    let path = dir.join(format!("{client}-{month}.html"));
                    report::write_page(&path, &page)?;
                    report::runs::record(
                        &loaded.data_dir,
                        &built,
                        &page,
                        now.as_millisecond(),
                        false,
                    )?;
                    if let Some(pdf_dir) = &options.pdf {
                        std::fs::create_dir_all(pdf_dir)?;
                        report::pdf::print(&path, &pdf_dir.join(format!("{client}-{month}.pdf")))?;
                    }
                }
            }
            Err(error) => println!("{client:<24} {error}"),
        }
    }
    if reported == 0 {
        anyhow::bail!("no client has data for {month}; no report written");
    }
    Ok(())
}

/// Where an admin command finds `collector.toml`: `--config`, else `VIGIL_CONFIG`, else
/// `collector.toml` in the current folder, else `/etc/vigil/collector.toml`. Says on stderr
/// which file it used, so that a technician with two setups knows which one was changed.
fn find_config(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    const SYSTEM: &str = "/etc/vigil/collector.toml";
    let from_env = std::env::var_os("VIGIL_CONFIG").filter(|value| !value.is_empty());
    let here = std::env::current_dir()
        .map(|dir| dir.join("collector.toml"))
        .ok()
        .filter(|path| path.is_file());
    let (path, why) = if let Some(path) = flag {
        (path, "--config")
    } else if let Some(value) = from_env {
        (PathBuf::from(value), "VIGIL_CONFIG")
    } else if let Some(path) = here {
        (path, "the current folder")
    } else if std::path::Path::new(SYSTEM).is_file() {
        (PathBuf::from(SYSTEM), "the system location")
    } else {
        anyhow::bail!(
            "no collector config found: no --config, VIGIL_CONFIG is not set, and neither \
             ./collector.toml nor {SYSTEM} exists; pass --config FILE or set VIGIL_CONFIG=FILE"
        );
    };
    eprintln!("using config {} (from {why})", path.display());
    Ok(path)
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

/// The engine's rule names from the collector config's rules file, when a config is found
/// and names one: contracts' `alert_rules` may name them.
fn configured_rule_names() -> Vec<String> {
    let Some(rules) = find_config(None)
        .ok()
        .and_then(|path| CollectorConfig::load(&path).ok())
        .and_then(|config| config.alerts.rules)
    else {
        return Vec::new();
    };
    match vigil_collector::alert::load_rules(&rules) {
        Ok(set) => set.rules.into_iter().map(|rule| rule.name).collect(),
        Err(error) => {
            tracing::warn!("{error}; alert_rules are checked against the built-in rules only");
            Vec::new()
        }
    }
}

/// `policy …`: reads the file here, at the edge; the policy room only parses the text.
fn run_policy(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file).map_err(|error| {
                anyhow::anyhow!(
                    "policy {}: cannot be read: {error}; check the path (examples in deploy/policies/)",
                    file.display()
                )
            })?;
            let policy = Policy::parse_with_rules(&file, &text, &configured_rule_names())?;
            print!("{}: valid\n{}", file.display(), policy.summary());
            Ok(())
        }
        PolicyCommand::History { config, client } => {
            let loaded = CollectorConfig::load(&find_config(config)?)?;
            let archive = vigil_collector::pipeline::PolicyArchive::new(&loaded.data_dir);
            let versions = archive
                .versions(&client)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            if versions.is_empty() {
                anyhow::bail!(
                    "client '{client}' has no stored policy versions in {}; a collector \
                     stores one when it reads the client's file in [policies] dir",
                    loaded.data_dir.display()
                );
            }
            for version in versions {
                println!(
                    "v{:<4} {}  {}  {}",
                    version.version,
                    version.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                    version.digest.get(..19).unwrap_or(&version.digest),
                    version.author
                );
            }
            Ok(())
        }
    }
}
