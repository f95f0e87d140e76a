//! `collector.toml`: what `vigil-collector serve` reads. One section per room; every key
//! has a default except the TLS files, which the demo writes for you.
//!
//! Relative paths are resolved against the folder the config file is in, so a config and
//! its certificates can move together.

use crate::ingest::limits::Limits;
use crate::ingest::tls::ServerTlsFiles;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::config_file::{self, ConfigFileError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Folder of the time-series store and everything else the collector keeps.
    /// Default: `/var/lib/vigil`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The ingest listener agents report to.
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub agents: AgentsSection,
    /// What one host, and everyone together, may hold and send.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Enrollment of new agents. Without it, no enrollment listener runs and agents cannot
    /// renew their certificates.
    #[serde(default)]
    pub enroll: Option<EnrollSection>,
    /// Alert delivery: channels, routing per client, retries. Default: no channels.
    #[serde(default)]
    pub notify: crate::notify::NotifySection,
    /// The alert engine: rule changes and its schedule. Default: the built-in rules.
    #[serde(default)]
    pub alerts: AlertsSection,
    /// The clients' contracts. Default: none (alerts go out by the engine's severity).
    #[serde(default)]
    pub policies: PoliciesSection,
    /// The console and JSON API. Without the section: plain HTTP on `127.0.0.1:7480` if that
    /// port is free (a warning and no console if not); with it, a listener that cannot bind
    /// stops the collector. Read it with [`CollectorConfig::http`].
    #[serde(default)]
    pub http: Option<HttpSection>,
    /// Receivers of remote-write export (`[[remote_write]]`), each with its url, `match`,
    /// authentication, TLS and queue bound. Default: none (no export, nothing kept for it).
    #[serde(default)]
    pub remote_write: Vec<crate::remote_write::RemoteWriteConfig>,
}

/// `[http]`: the console and the JSON API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address and port of the console and API. Default: `127.0.0.1:7480` (this machine
    /// only; put a reverse proxy in front, or listen beyond loopback, which turns TLS on).
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// A certificate (PEM) for the console, e.g. one browsers already trust. Default: the
    /// collector's own (`grpc.cert`) when listening beyond loopback, none on loopback.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM), mode 0600.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The address people reach the console at, e.g. `https://vigil.msp.example`, for links
    /// in alert messages. Default: none.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long an acknowledge link in an alert message works, e.g. "24h". Default: 24 h.
    #[serde(
        default = "default_ack_link_lifetime",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub ack_link_lifetime: Duration,
    /// Serve `GET /metrics` without an API token. Only where every machine that reaches
    /// `listen` may read the collector's health (loopback, a trusted network). Default:
    /// false (an admin's or technician's bearer token is needed).
    #[serde(default)]
    pub metrics_public: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            tls_cert: None,
            tls_key: None,
            public_url: None,
            ack_link_lifetime: default_ack_link_lifetime(),
            metrics_public: false,
        }
    }
}

fn default_ack_link_lifetime() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl HttpSection {
    /// [`HttpSection::ack_link_lifetime`] in milliseconds.
    pub fn ack_link_lifetime_ms(&self) -> i64 {
        i64::try_from(self.ack_link_lifetime.as_millis()).unwrap_or(i64::MAX)
    }
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7480))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// A rules file that tunes, disables or adds to the built-in rules.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// How often forecasts, silence and staleness are judged, e.g. "60s".
    #[serde(
        default = "default_evaluation_interval",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub evaluation_interval: Duration,
    /// After the collector starts, how long before any host is called silent.
    #[serde(
        default = "default_restart_grace",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub restart_grace: Duration,
    /// How many stored batches may wait for the engine before ingest waits for it (agents'
    /// acknowledgements slow down; nothing is dropped). Default: 1024.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How long the oldest unjudged batch may wait before Vigil raises `EngineBehind`.
    /// Default: "2m".
    #[serde(
        default = "default_lag_alert_after",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub lag_alert_after: Duration,
    /// Hosts and series that sent nothing for this long are dropped from the engine and its
    /// saved state (a revoked host at once); longer than any silence alert needs. Default:
    /// "7d".
    #[serde(
        default = "default_forget_after",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub forget_after: Duration,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            rules: None,
            evaluation_interval: default_evaluation_interval(),
            restart_grace: default_restart_grace(),
            queue_capacity: default_queue_capacity(),
            lag_alert_after: default_lag_alert_after(),
            forget_after: default_forget_after(),
        }
    }
}

fn default_queue_capacity() -> usize {
    1024
}

fn default_forget_after() -> Duration {
    crate::pipeline::live::DEFAULT_FORGET_AFTER
}

fn default_lag_alert_after() -> Duration {
    crate::pipeline::live::DEFAULT_LAG_ALERT_AFTER
}

fn default_evaluation_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_restart_grace() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSection {
    /// Folder of policy files, one `*.toml` per client, re-read when a file changes.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollSection {
    /// Where agents with a join token enroll (no client certificate needed here).
    /// Default: `0.0.0.0:7444`.
    #[serde(default = "default_enroll_listen")]
    pub listen: SocketAddr,
    /// The CA certificate (PEM) that signs agent certificates.
    pub ca_cert: PathBuf,
    /// The CA's private key (PEM). Keep it mode 0600; it is never logged.
    pub ca_key: PathBuf,
    /// Lifetime of issued agent certificates, e.g. "30d". Agents renew at two thirds.
    #[serde(
        default = "default_cert_validity",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub cert_validity: Duration,
}

fn default_enroll_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7444))
}

pub(crate) fn default_cert_validity() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address and port to listen on. Default: `0.0.0.0:7443`.
    #[serde(default = "default_grpc_listen")]
    pub listen: SocketAddr,
    /// The collector's certificate (PEM), signed by the CA agents trust.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA bundle (PEM) that agent certificates must chain to.
    pub client_ca: PathBuf,
    /// Connections take no new stream after this long, their streams end so the agent
    /// reconnects and its certificate is checked again, and 30 s later the connection is
    /// closed whatever the client does. Default: "1h".
    #[serde(
        default = "default_max_connection_age",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub max_connection_age: Duration,
    /// Batches per second one host may send once its burst is spent (a replay after an
    /// outage), over all its streams. Default: 50, a day's backlog in about three minutes.
    #[serde(default = "default_batches_per_second")]
    pub max_batches_per_second: f64,
    /// Batches one host may send at once before it is slowed. Default: 500.
    #[serde(default = "default_burst_batches")]
    pub burst_batches: u32,
}

fn default_max_connection_age() -> Duration {
    Duration::from_secs(3600)
}

fn default_batches_per_second() -> f64 {
    Limits::default().batches_per_second
}

fn default_burst_batches() -> u32 {
    Limits::default().burst_batches as u32
}

/// `[limits]`: what one host, and everyone together, may hold and send. Every refusal names
/// its key here, in the agent's reject reason and in the collector's log, and is counted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Authenticated agent connections in all. Lowered at start to what the process's
    /// descriptor limit (RLIMIT_NOFILE, systemd's LimitNOFILE) leaves after the store's
    /// files and the handshakes under way. At the cap, the connection idle the longest
    /// makes room. Default: 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one host may hold; an agent uses one. Default: 4.
    #[serde(default = "default_max_connections_per_host")]
    pub max_connections_per_host: usize,
    /// TLS handshakes under way at once; a connection past it is closed before any TLS
    /// work. Default: 256.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// A connection without a stream for this long is closed. Default: "60s".
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub idle_timeout: Duration,
    /// Distinct series one host may write within two hours, kept across reconnects and
    /// counted again from the store after a restart. Default: 10000.
    #[serde(default = "default_max_series_per_host")]
    pub max_series_per_host: usize,
    /// Samples per second one host may send once its burst is spent; a host past it is
    /// slowed, not refused. Default: 20000 (a replay of 300 series at 50 batches/s).
    #[serde(default = "default_max_samples_per_second")]
    pub max_samples_per_second: f64,
    /// Samples one host may send at once before it is slowed; at least one full batch
    /// (50000). Default: 200000.
    #[serde(default = "default_burst_samples")]
    pub burst_samples: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_host: default_max_connections_per_host(),
            max_handshakes: default_max_handshakes(),
            idle_timeout: default_idle_timeout(),
            max_series_per_host: default_max_series_per_host(),
            max_samples_per_second: default_max_samples_per_second(),
            burst_samples: default_burst_samples(),
        }
    }
}

fn default_max_connections() -> usize {
    Limits::default().max_connections
}

fn default_max_connections_per_host() -> usize {
    Limits::default().max_connections_per_host
}

fn default_max_handshakes() -> usize {
    Limits::default().max_handshakes
}

fn default_idle_timeout() -> Duration {
    Limits::default().idle_timeout
}

fn default_max_series_per_host() -> usize {
    Limits::default().max_series_per_host
}

fn default_max_samples_per_second() -> f64 {
    Limits::default().samples_per_second
}

fn default_burst_samples() -> u64 {
    Limits::default().burst_samples as u64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Upper bound for the store's page cache, in MiB. Default: 64.
    #[serde(default = "default_cache_mib")]
    pub cache_capacity_mib: u64,
    /// Memory for recent samples not yet sealed to disk (the head), in MiB; past it the
    /// oldest are sealed early. Default: 256.
    #[serde(default = "default_head_max_mib")]
    pub head_max_mib: u64,
    /// How long raw samples are kept, e.g. "30d". Default: 30 days.
    #[serde(
        default = "default_raw_retention",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub raw_retention: Duration,
    /// How long five-minute rollups (min, max, sum, count) are kept. Default: 400 days.
    #[serde(
        default = "default_rollup_retention",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub rollup_retention: Duration,
    /// A store too damaged to open: "quarantine" moves its files into
    /// `<data_dir>/damaged-<time>/` and starts empty (default), "refuse" stops with an error.
    #[serde(default = "default_on_damage")]
    pub on_damage: crate::store::OnDamage,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            cache_capacity_mib: default_cache_mib(),
            head_max_mib: default_head_max_mib(),
            raw_retention: default_raw_retention(),
            rollup_retention: default_rollup_retention(),
            on_damage: default_on_damage(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    /// Collection interval pushed to every agent, e.g. "10s". Default: unset, each agent
    /// keeps its own (10 s unless its config says otherwise).
    #[serde(
        default,
        deserialize_with = "config_file::deserialize_optional_duration"
    )]
    pub interval: Option<Duration>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil")
}

fn default_grpc_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}

fn default_cache_mib() -> u64 {
    64
}

fn default_head_max_mib() -> u64 {
    crate::store::StoreConfig::DEFAULT_HEAD_MAX_BYTES / (1024 * 1024)
}

fn default_raw_retention() -> Duration {
    crate::store::StoreConfig::DEFAULT_RAW_RETENTION
}

fn default_rollup_retention() -> Duration {
    crate::store::StoreConfig::DEFAULT_ROLLUP_RETENTION
}

fn default_on_damage() -> crate::store::OnDamage {
    crate::store::OnDamage::Quarantine
}

impl CollectorConfig {
    /// Reads, resolves and validates `path`; reports every problem at once.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let mut config: Self = config_file::load(path)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigFileError::invalid(path, problems))
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let mut paths = vec![
            &mut self.data_dir,
            &mut self.grpc.cert,
            &mut self.grpc.key,
            &mut self.grpc.client_ca,
        ];
        if let Some(enroll) = &mut self.enroll {
            paths.push(&mut enroll.ca_cert);
            paths.push(&mut enroll.ca_key);
        }
        for path in paths {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        self.notify.resolve_paths(base);
        for remote_write in &mut self.remote_write {
            remote_write.resolve_paths(base);
        }
        if let Some(http) = &mut self.http {
            for path in [&mut http.tls_cert, &mut http.tls_key]
                .into_iter()
                .flatten()
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        for path in [&mut self.alerts.rules, &mut self.policies.dir]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut files = vec![
            ("grpc.cert", &self.grpc.cert),
            ("grpc.key", &self.grpc.key),
            ("grpc.client_ca", &self.grpc.client_ca),
        ];
        if let Some(enroll) = &self.enroll {
            files.push(("enroll.ca_cert", &enroll.ca_cert));
            files.push(("enroll.ca_key", &enroll.ca_key));
        }
        for (key, path) in files {
            if let Err(error) = std::fs::metadata(path) {
                problems.push(format!(
                    "{key} = '{}' cannot be read: {error}",
                    path.display()
                ));
            }
        }
        if self.grpc.max_connection_age < Duration::from_secs(10) {
            problems.push(format!(
                "grpc.max_connection_age = {:?} is too short (at least 10s)",
                humantime::format_duration(self.grpc.max_connection_age).to_string()
            ));
        }
        if !(1.0..=100_000.0).contains(&self.grpc.max_batches_per_second) {
            problems.push(format!(
                "grpc.max_batches_per_second = {} is out of range (1 to 100000; an agent sends one batch per interval)",
                self.grpc.max_batches_per_second
            ));
        }
        if self.grpc.burst_batches == 0 {
            problems.push(
                "grpc.burst_batches = 0 would refuse every batch; at least 1 (default 500)".into(),
            );
        }
        problems.extend(self.limits.problems());
        if let Some(enroll) = &self.enroll {
            if enroll.cert_validity < Duration::from_secs(3600) {
                problems.push(format!(
                    "enroll.cert_validity = {:?} is too short (at least 1h)",
                    humantime::format_duration(enroll.cert_validity).to_string()
                ));
            }
        }
        if self.alerts.queue_capacity == 0 {
            problems.push("alerts.queue_capacity = 0 leaves no room for a batch; use at least 1 (default 1024)".to_string());
        }
        if self.alerts.forget_after < Duration::from_secs(24 * 3600) {
            problems.push(format!(
                "alerts.forget_after = {:?} is too short (at least 1d): a host silent for less \
                 is still one whose silence alert matters",
                humantime::format_duration(self.alerts.forget_after).to_string()
            ));
        }
        if self.alerts.evaluation_interval < Duration::from_secs(1) {
            problems.push(format!(
                "alerts.evaluation_interval = {:?} is too short (at least 1s)",
                humantime::format_duration(self.alerts.evaluation_interval).to_string()
            ));
        }
        let http = self.http();
        match (&http.tls_cert, &http.tls_key) {
            (Some(_), None) | (None, Some(_)) => problems.push(
                "http.tls_cert and http.tls_key go together: set both, or neither to use the collector's own certificate".into(),
            ),
            _ => {}
        }
        if let Some(url) = &http.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "http.public_url = '{url}' is not an http(s) URL; e.g. \"https://vigil.msp.example\""
                ));
            }
        }
        if let Some(dir) = &self.policies.dir {
            if !dir.is_dir() {
                problems.push(format!(
                    "policies.dir = '{}' is not a folder; create it or fix the path",
                    dir.display()
                ));
            }
        }
        if !(1..=65536).contains(&self.store.cache_capacity_mib) {
            problems.push(format!(
                "store.cache_capacity_mib = {} is out of range (1..=65536)",
                self.store.cache_capacity_mib
            ));
        }
        if !(1..=1_048_576).contains(&self.store.head_max_mib) {
            problems.push(format!(
                "store.head_max_mib = {} is out of range (1..=1048576)",
                self.store.head_max_mib
            ));
        }
        if self.store.raw_retention < Duration::from_secs(3600) {
            problems.push(format!(
                "store.raw_retention = {:?} is shorter than an hour; keep raw samples at least \"1h\"",
                humantime::format_duration(self.store.raw_retention).to_string()
            ));
        }
        if self.store.rollup_retention < self.store.raw_retention {
            problems.push(format!(
                "store.rollup_retention = {:?} is shorter than store.raw_retention = {:?}; rollups are what outlives raw samples",
                humantime::format_duration(self.store.rollup_retention).to_string(),
                humantime::format_duration(self.store.raw_retention).to_string()
            ));
        }
        if let Some(interval) = self.agents.interval {
            let range = vigil_proto::limits::INTERVAL_SECONDS;
            let seconds = interval.as_secs();
            if interval.subsec_nanos() != 0
                || !(u64::from(*range.start())..=u64::from(*range.end())).contains(&seconds)
            {
                problems.push(format!(
                    "agents.interval = {:?} must be whole seconds from {} s to {} s",
                    humantime::format_duration(interval).to_string(),
                    range.start(),
                    range.end()
                ));
            }
        }
        problems.extend(self.notify.problems());
        problems.extend(crate::remote_write::config::problems(&self.remote_write));
        problems
    }

    /// The ingest limits as configured, before they are fitted to the descriptor limit.
    pub fn ingest_limits(&self) -> Limits {
        Limits {
            batches_per_second: self.grpc.max_batches_per_second,
            burst_batches: f64::from(self.grpc.burst_batches),
            samples_per_second: self.limits.max_samples_per_second,
            burst_samples: self.limits.burst_samples as f64,
            max_series_per_host: self.limits.max_series_per_host,
            max_connections_per_host: self.limits.max_connections_per_host,
            max_connections: self.limits.max_connections,
            max_handshakes: self.limits.max_handshakes,
            idle_timeout: self.limits.idle_timeout,
        }
    }

    /// The `[http]` section, or its defaults when the file has none.
    pub fn http(&self) -> HttpSection {
        self.http.clone().unwrap_or_default()
    }

    pub fn tls_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.grpc.cert.clone(),
            key: self.grpc.key.clone(),
            client_ca: self.grpc.client_ca.clone(),
        }
    }

    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            cache_capacity_bytes: self.store.cache_capacity_mib * 1024 * 1024,
            head_max_bytes: self.store.head_max_mib * 1024 * 1024,
            raw_retention: self.store.raw_retention,
            rollup_retention: self.store.rollup_retention,
            on_damage: self.store.on_damage,
            ..crate::store::StoreConfig::new(&self.data_dir)
        }
    }
}

impl LimitsSection {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=1_000_000).contains(&self.max_connections) {
            problems.push(format!(
                "limits.max_connections = {} is out of range (1 to 1000000)",
                self.max_connections
            ));
        }
        if !(1..=1_000).contains(&self.max_connections_per_host) {
            problems.push(format!(
                "limits.max_connections_per_host = {} is out of range (1 to 1000; an agent uses one)",
                self.max_connections_per_host
            ));
        }
        if !(1..=100_000).contains(&self.max_handshakes) {
            problems.push(format!(
                "limits.max_handshakes = {} is out of range (1 to 100000)",
                self.max_handshakes
            ));
        }
        if self.idle_timeout < Duration::from_secs(1) {
            problems.push(format!(
                "limits.idle_timeout = {:?} is too short (at least 1s)",
                humantime::format_duration(self.idle_timeout).to_string()
            ));
        }
        if self.max_series_per_host == 0 {
            problems.push(
                "limits.max_series_per_host = 0 would refuse every batch; at least 1 (default 10000)"
                    .into(),
            );
        }
        if !(1.0..=100_000_000.0).contains(&self.max_samples_per_second) {
            problems.push(format!(
                "limits.max_samples_per_second = {} is out of range (1 to 100000000)",
                self.max_samples_per_second
            ));
        }
        let one_batch = vigil_proto::limits::MAX_SAMPLES_PER_BATCH as u64;
        if self.burst_samples < one_batch {
            problems.push(format!(
                "limits.burst_samples = {} is less than one full batch ({one_batch} samples); raise it",
                self.burst_samples
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, body: &str) -> PathBuf {
        for file in ["collector.pem", "collector-key.pem", "ca.pem"] {
            std::fs::write(dir.join(file), "x").unwrap();
        }
        let path = dir.join("collector.toml");
        std::fs::write(&path, body).unwrap();
        path
    }

    const GOOD: &str = r#"
data_dir = "data"
[grpc]
listen = "127.0.0.1:7443"
cert = "collector.pem"
key = "collector-key.pem"
client_ca = "ca.pem"
"#;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig::load(&write_config(dir.path(), GOOD)).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.grpc.cert, dir.path().join("collector.pem"));
        assert_eq!(config.store.cache_capacity_mib, 64);
    }

    #[test]
    fn remote_write_files_resolve_against_the_config_folder_and_bad_keys_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rw-token"), "secret\n").unwrap();
        let body = GOOD.to_owned()
            + "[[remote_write]]\nurl = \"http://127.0.0.1:8428/api/v1/write\"\nbearer_token_file = \"rw-token\"\n";
        let config = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap();
        assert_eq!(
            config.remote_write[0].bearer_token_file,
            Some(dir.path().join("rw-token"))
        );
        assert_eq!(
            config.remote_write[0].bearer_token("remote_write[0]"),
            Ok(Some("secret".to_owned()))
        );

        let body = GOOD.to_owned() + "[[remote_write]]\nurl = \"victoria:8428\"\nshards = 100\n";
        let path = write_config(dir.path(), &body);
        let text = CollectorConfig::load(&path).unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "config {}: remote_write[0].url = \"victoria:8428\" is not an http:// or https:// URL",
                path.display()
            )),
            "{text}"
        );
        assert!(
            text.contains("remote_write[0].shards = 100 is out of range (1..=64)"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let body = GOOD.replace("ca.pem\"", "missing-ca.pem\"")
            + "[store]\ncache_capacity_mib = 0\n[agents]\ninterval = \"1500ms\"\n";
        let error = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 3, "{text}");
        assert!(text.contains("grpc.client_ca = '"), "{text}");
        assert!(
            text.contains("store.cache_capacity_mib = 0 is out of range"),
            "{text}"
        );
        assert!(text.contains("agents.interval = \"1s 500ms\""), "{text}");
        assert!(
            text.lines().all(|line| line.starts_with("config ")),
            "{text}"
        );
    }

    #[test]
    fn the_http_section_defaults_to_loopback_and_its_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig::load(&write_config(dir.path(), GOOD)).unwrap();
        assert!(config.http.is_none());
        assert_eq!(config.http().listen.to_string(), "127.0.0.1:7480");
        let body = GOOD.to_string()
            + "[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"web.pem\"\npublic_url = \"vigil.msp.example\"\n";
        let error = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 2, "{text}");
        assert!(
            text.contains("http.tls_cert and http.tls_key go together"),
            "{text}"
        );
        assert!(
            text.contains("http.public_url = 'vigil.msp.example'"),
            "{text}"
        );
        let body = GOOD.to_string() + "[http]\ntls_cert = \"web.pem\"\ntls_key = \"web-key.pem\"\n";
        let config = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap();
        assert_eq!(config.http().tls_cert, Some(dir.path().join("web.pem")));
    }

    #[test]
    fn store_settings_map_to_the_store_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let body = GOOD.to_owned()
            + "[store]\nhead_max_mib = 32\nraw_retention = \"7d\"\nrollup_retention = \"90d\"\non_damage = \"refuse\"\n";
        let config = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap();
        let store = config.store_config();
        assert_eq!(store.head_max_bytes, 32 << 20);
        assert_eq!(store.raw_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(store.rollup_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(store.on_damage, crate::store::OnDamage::Refuse);

        let body =
            GOOD.to_owned() + "[store]\nraw_retention = \"30d\"\nrollup_retention = \"1d\"\n";
        let text = CollectorConfig::load(&write_config(dir.path(), &body))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("store.rollup_retention = \"1day\" is shorter than store.raw_retention"),
            "{text}"
        );
    }

    #[test]
    fn the_replay_rate_per_agent_is_set_in_grpc_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig::load(&write_config(dir.path(), GOOD)).unwrap();
        assert_eq!(config.grpc.max_batches_per_second, 50.0);
        assert_eq!(config.grpc.burst_batches, 500);

        let body = GOOD.to_owned()
            + "max_batches_per_second = 400
burst_batches = 2000
";
        let config = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap();
        assert_eq!(config.grpc.max_batches_per_second, 400.0);
        assert_eq!(config.grpc.burst_batches, 2000);

        let body = GOOD.to_owned()
            + "max_batches_per_second = 0
burst_batches = 0
";
        let text = CollectorConfig::load(&write_config(dir.path(), &body))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("grpc.max_batches_per_second = 0 is out of range"),
            "{text}"
        );
        assert!(text.contains("grpc.burst_batches = 0"), "{text}");
    }

    #[test]
    fn ingest_limits_are_read_from_limits_and_every_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig::load(&write_config(dir.path(), GOOD)).unwrap();
        assert_eq!(config.ingest_limits(), Limits::default());

        let body = GOOD.to_owned()
            + "[limits]\nmax_connections_per_host = 2\nidle_timeout = \"5s\"\nmax_series_per_host = 500\n";
        let limits = CollectorConfig::load(&write_config(dir.path(), &body))
            .unwrap()
            .ingest_limits();
        assert_eq!(limits.max_connections_per_host, 2);
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.max_series_per_host, 500);

        let body = GOOD.to_owned()
            + "[limits]\nmax_connections = 0\nidle_timeout = \"0s\"\nburst_samples = 10\n";
        let error = CollectorConfig::load(&write_config(dir.path(), &body)).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 3, "{text}");
        assert!(
            text.contains("limits.max_connections = 0 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("limits.idle_timeout = \"0s\" is too short"),
            "{text}"
        );
        assert!(
            text.contains("limits.burst_samples = 10 is less than one full batch"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_address_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let body = GOOD.replace("127.0.0.1:7443", "localhost-7443");
        let text = CollectorConfig::load(&write_config(dir.path(), &body))
            .unwrap_err()
            .to_string();
        assert!(text.contains("collector.toml:4:"), "{text}");
        assert!(text.contains("listen = \"localhost-7443\""), "{text}");
    }

    #[test]
    fn the_example_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector.toml");
        let config: CollectorConfig = config_file::load(&path).unwrap();
        assert_eq!(config.grpc.listen.port(), 7443);
        assert_eq!(config.agents.interval, Some(Duration::from_secs(10)));
        // The example documents the defaults.
        assert_eq!(config.ingest_limits(), Limits::default());
    }
}
