//! `collector.toml`: what `vigil-collector serve` reads. One section per room; every key
//! has a default except the TLS files, which the demo writes for you.
//!
//! Relative paths are resolved against the folder the config file is in, so a config and
//! its certificates can move together.

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
    /// Enrollment of new agents. Without it, no enrollment listener runs and agents cannot
    /// renew their certificates.
    #[serde(default)]
    pub enroll: Option<EnrollSection>,
    /// Alert delivery: channels, routing per client, retries. Default: no channels.
    #[serde(default)]
    pub notify: crate::notify::NotifySection,
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

fn default_cert_validity() -> Duration {
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
    /// Streams are closed after this long so the agent reconnects and its certificate is
    /// checked again. Default: "1h".
    #[serde(
        default = "default_max_connection_age",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub max_connection_age: Duration,
}

fn default_max_connection_age() -> Duration {
    Duration::from_secs(3600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Upper bound for the store's page cache, in MiB. Default: 64.
    #[serde(default = "default_cache_mib")]
    pub cache_capacity_mib: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            cache_capacity_mib: default_cache_mib(),
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
        if let Some(enroll) = &self.enroll {
            if enroll.cert_validity < Duration::from_secs(3600) {
                problems.push(format!(
                    "enroll.cert_validity = {:?} is too short (at least 1h)",
                    humantime::format_duration(enroll.cert_validity).to_string()
                ));
            }
        }
        if !(1..=65536).contains(&self.store.cache_capacity_mib) {
            problems.push(format!(
                "store.cache_capacity_mib = {} is out of range (1..=65536)",
                self.store.cache_capacity_mib
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
        problems
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
            data_dir: self.data_dir.clone(),
            cache_capacity_bytes: self.store.cache_capacity_mib * 1024 * 1024,
        }
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
    }
}
