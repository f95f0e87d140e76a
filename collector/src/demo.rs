//! `vigil-collector demo`: a whole Vigil installation in one process, on loopback.
//!
//! It makes a throwaway CA (or reuses the one a previous demo left in the folder), issues
//! the collector's and the local agent's certificates, writes `collector.toml` and
//! `agent.toml` beside them, loads both back through the real config loaders, and runs the
//! collector and the agent together, printing what arrives. The folder is left as a working
//! setup for `serve` and `run` and as a store `query` can read.

use crate::config::CollectorConfig;
use crate::enroll::{CaError, CertificateAuthority};
use crate::http::users::{Role, Users, UsersError};
use crate::ingest::IngestEvent;
use crate::serve::{Collector, ServeError};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_agent::config::AgentConfig;
use vigil_agent::run::Agent;
use vigil_proto::config_file::ConfigFileError;
use vigil_proto::model::{Batch, Inventory};

/// Certificates the demo issues live a week; rerun the demo to renew them.
const DEMO_CERT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The demo agent's interval: short, so something shows up within seconds.
const DEMO_INTERVAL: &str = "5s";
/// The client the demo agent belongs to.
const DEMO_CLIENT: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("preparing demo folder '{}': {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("writing to the terminal: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Users(#[from] UsersError),
}

/// What the demo does and where.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    /// Stop after this long; `None` runs until `shutdown` is cancelled.
    pub duration: Option<Duration>,
    pub grpc: SocketAddr,
    /// The console and API; `None` tries `127.0.0.1:7480` and goes on without them if that
    /// port is taken.
    pub http: Option<SocketAddr>,
}

/// The demo's admin, who signs in with the one-time link or the token in `api-token`.
const DEMO_ADMIN: &str = "admin";

/// Runs the demo, printing to `out` until the duration passes or `shutdown` is cancelled.
pub async fn run(
    options: DemoOptions,
    shutdown: CancellationToken,
    out: &mut (dyn Write + Send),
) -> Result<(), DemoError> {
    let dir = &options.data_dir;
    let folder_error = |source| DemoError::Folder {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(folder_error)?;
    let dir = &dir.canonicalize().map_err(folder_error)?;
    let agent_id = local_agent_id();
    prepare_folder(dir, &agent_id, options.grpc, options.http)?;

    let collector_shutdown = CancellationToken::new();
    let collector_config = CollectorConfig::load(&dir.join("collector.toml"))?;
    let collector = Collector::bind(&collector_config, collector_shutdown.clone()).await?;
    let grpc = collector.grpc_addr();
    let http = collector.http().map(|server| server.local_addr());
    if grpc != options.grpc || (options.http.is_some() && http != options.http) {
        // Port 0 was asked for: point the written configs at the real port.
        write_configs(dir, &agent_id, grpc, options.http.and(http))?;
    }
    let say = |out: &mut (dyn Write + Send), line: String| -> Result<(), DemoError> {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(DemoError::Output)
    };
    say(out, format!("grpc: {grpc}"))?;
    if let Some(server) = collector.http() {
        let token_path = dir.join("api-token");
        demo_admin_token(server.users(), &token_path)?;
        say(out, format!("http: {}", server.local_addr()))?;
        say(
            out,
            format!(
                "sign in (one use, within 15 min): {}",
                server.sign_in_link(DEMO_ADMIN)
            ),
        )?;
        say(
            out,
            format!(
                "API token for scripts in {}: curl -H \"Authorization: Bearer $(cat {})\" {}://{}/api/v1/hosts",
                shell_path(&token_path),
                shell_path(&token_path),
                server.scheme(),
                server.local_addr()
            ),
        )?;
    }
    say(out, format!("data: {}", dir.display()))?;
    let mut events = collector.events();
    let serving = tokio::spawn(collector.run());

    let agent_shutdown = CancellationToken::new();
    let agent_config = AgentConfig::load(&dir.join("agent.toml"))?;
    say(
        out,
        format!(
            "agent '{agent_id}' of client '{DEMO_CLIENT}' reports every {DEMO_INTERVAL} over mutual TLS; {}",
            match options.duration {
                Some(duration) => format!("stopping in {}", humantime::format_duration(duration)),
                None => "Ctrl-C stops".to_string(),
            }
        ),
    )?;
    let agent = tokio::spawn(Agent::new(agent_config).run(agent_shutdown.clone()));

    let deadline = async {
        match options.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut n_batches = 0u64;
    let mut n_samples = 0usize;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Ok(event) => {
                    if let IngestEvent::Stored { batch, .. } = &event {
                        n_batches += 1;
                        n_samples += batch.sample_count();
                    }
                    if let Some(line) = describe(&event) {
                        say(out, line)?;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }

    // Stop the agent first so its goodbye and last batches are received, then the collector.
    agent_shutdown.cancel();
    let _ = agent.await;
    while let Ok(event) = events.try_recv() {
        if let IngestEvent::Stored { batch, .. } = &event {
            n_batches += 1;
            n_samples += batch.sample_count();
        }
        if let Some(line) = describe(&event) {
            say(out, line)?;
        }
    }
    collector_shutdown.cancel();
    match serving.await {
        Ok(result) => result?,
        Err(join_error) => panic!("the collector panicked: {join_error}"),
    }
    say(
        out,
        format!(
            "stored {n_samples} samples in {n_batches} batches. Look at them with:\n  vigil-collector query --data {} 'system_cpu_utilization_ratio' --since 5m\nRun the same setup as two processes with:\n  vigil-collector serve --config {}\n  vigil-agent run --config {}",
            shell_path(dir),
            shell_path(&dir.join("collector.toml")),
            shell_path(&dir.join("agent.toml")),
        ),
    )
}

/// Makes the demo's admin (once) and a new API token for it, written to `path` (mode 0600).
fn demo_admin_token(users: &Users, path: &Path) -> Result<(), DemoError> {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match users.add(DEMO_ADMIN, Role::Admin, None, None, now_ms) {
        Ok(_) | Err(UsersError::Exists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let token = users.create_token(DEMO_ADMIN, now_ms)?;
    write_file(path, &format!("{token}\n"), true)
}

/// Writes the CA (kept if present), fresh certificates and the two configs.
fn prepare_folder(
    dir: &Path,
    agent_id: &str,
    grpc: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<(), DemoError> {
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let ca = if ca_cert.exists() && ca_key.exists() {
        CertificateAuthority::load(&ca_cert, &ca_key)?
    } else {
        let ca = CertificateAuthority::generate("Vigil demo CA")?;
        write_file(&ca_cert, ca.cert_pem(), false)?;
        write_file(&ca_key, &ca.key_pem(), true)?;
        ca
    };
    let server = ca.issue_server(
        &[
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ],
        DEMO_CERT_VALIDITY,
    )?;
    write_file(&dir.join("collector.pem"), &server.cert_pem, false)?;
    write_file(&dir.join("collector-key.pem"), &server.key_pem, true)?;
    let agent = ca.issue_agent(agent_id, DEMO_CLIENT, DEMO_CERT_VALIDITY)?;
    write_file(&dir.join("agent.pem"), &agent.cert_pem, false)?;
    write_file(&dir.join("agent-key.pem"), &agent.key_pem, true)?;
    write_configs(dir, agent_id, grpc, http)
}

fn write_configs(
    dir: &Path,
    agent_id: &str,
    grpc: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<(), DemoError> {
    let collector_toml = format!(
        r#"# Written by `vigil-collector demo`. Relative paths are relative to this file.
# Run: vigil-collector serve --config {config}

# The store (sled) and everything else the collector keeps.
data_dir = "."

[grpc]
# Where agents report. 0.0.0.0 accepts them from the network.
listen = "{grpc}"
cert = "collector.pem"
key = "collector-key.pem"
# Agents must present a certificate signed by this CA.
client_ca = "ca.pem"

[store]
cache_capacity_mib = 64
{http_section}"#,
        config = shell_path(&dir.join("collector.toml")),
        http_section = match http {
            Some(http) => format!(
                "\n[http]\n# The console and JSON API; loopback only, so plain HTTP.\nlisten = \"{http}\"\n"
            ),
            None => String::new(),
        },
    );
    let agent_toml = format!(
        r#"# Written by `vigil-collector demo` for agent '{agent_id}'. Relative paths are relative
# to this file. Run: vigil-agent run --config {config}

collector = "https://{grpc}"
# The demo ticks fast; 10s is the default for real machines.
interval = "{DEMO_INTERVAL}"

[tls]
cert = "agent.pem"
key = "agent-key.pem"
ca = "ca.pem"
"#,
        config = shell_path(&dir.join("agent.toml")),
    );
    write_file(&dir.join("collector.toml"), &collector_toml, false)?;
    write_file(&dir.join("agent.toml"), &agent_toml, false)
}

/// Writes via a temporary file and a rename, so a crash never leaves half a file. Keys get
/// mode 0600.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), DemoError> {
    let error = |source| DemoError::Folder {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut file = options.open(&temporary).map_err(error)?;
        file.write_all(contents.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
    }
    std::fs::rename(&temporary, path).map_err(error)
}

/// This machine's name, reduced to what a certificate name may hold.
fn local_agent_id() -> String {
    let name = machine_name().unwrap_or_default();
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "demo-host".to_string()
    } else {
        cleaned
    }
}

fn machine_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

fn shell_path(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One readable line per event worth showing.
fn describe(event: &IngestEvent) -> Option<String> {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let clock = time.get(11..19).unwrap_or(&time).to_string();
    let line = match event {
        IngestEvent::Connected { peer, inventory } => format!(
            "{clock}  {} (client {}) connected: {}",
            peer.host,
            peer.client,
            describe_inventory(inventory)
        ),
        IngestEvent::Stored { peer, batch } => {
            format!(
                "{clock}  {} batch {}: {}",
                peer.host,
                batch.seq,
                describe_batch(batch)
            )
        }
        IngestEvent::Rejected { peer, seq, reason } => {
            format!("{clock}  {} batch {seq} refused: {reason}", peer.host)
        }
        IngestEvent::Goodbye { peer, reason } => {
            format!("{clock}  {} said goodbye ({reason:?})", peer.host)
        }
        IngestEvent::Duplicate { .. } | IngestEvent::Disconnected { .. } => return None,
    };
    Some(line)
}

fn describe_inventory(inventory: &Inventory) -> String {
    format!(
        "{} {} (kernel {}), {} × {}, {} RAM, agent {}",
        inventory.os_name,
        inventory.os_version,
        inventory.kernel_version,
        inventory.cpu_cores,
        inventory.cpu_model.trim(),
        gib(inventory.memory_bytes as f64),
        inventory.agent_version
    )
}

fn describe_batch(batch: &Batch) -> String {
    let value = |name: &str, label: Option<(&str, &str)>| {
        batch
            .series
            .iter()
            .find(|series| {
                series.name == name
                    && label.is_none_or(|(key, wanted)| series.labels.get(key) == Some(wanted))
            })
            .and_then(|series| series.samples.last())
            .map(|sample| sample.value)
    };
    let mut parts = vec![format!(
        "{} series, {} samples",
        batch.series.len(),
        batch.sample_count()
    )];
    if let Some(cpu) = value("system_cpu_utilization_ratio", None) {
        parts.push(format!("CPU {:.0} %", cpu * 100.0));
    }
    if let (Some(used), Some(limit)) = (
        value("system_memory_usage_bytes", Some(("state", "used"))),
        value("system_memory_limit_bytes", None),
    ) {
        parts.push(format!("memory {} of {} used", gib(used), gib(limit)));
    }
    let first_filesystem = batch.series.iter().find(|series| {
        series.name == "system_filesystem_usage_bytes" && series.labels.get("state") == Some("used")
    });
    if let Some(filesystem) = first_filesystem {
        let mountpoint = filesystem.labels.get("mountpoint").unwrap_or("?");
        let used = filesystem.samples.last().map(|sample| sample.value);
        let limit = value(
            "system_filesystem_limit_bytes",
            Some(("mountpoint", mountpoint)),
        );
        if let (Some(used), Some(limit)) = (used, limit) {
            if limit > 0.0 {
                parts.push(format!("{mountpoint} {:.0} % full", used / limit * 100.0));
            }
        }
    }
    parts.join(", ")
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
}
