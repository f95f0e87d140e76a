//! `agent.toml`: what `vigil-agent run` reads. Every key but the collector's address and the
//! TLS files has a default; relative paths resolve against the config file's folder.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::config_file::{self, ConfigFileError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The collector's ingest address, e.g. "https://msp.example:7443".
    pub collector: String,
    /// Name to expect in the collector's certificate. Default: the host part of `collector`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// How often to collect, on the wall-clock grid (a 10 s interval ticks at :00, :10, …).
    /// Default: "10s". The collector may push another.
    #[serde(
        default = "default_interval",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub interval: Duration,
    pub tls: TlsSection,
    #[serde(default)]
    pub spool: SpoolSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// This agent's certificate (PEM); its subject names the agent and its client.
    pub cert: PathBuf,
    /// The agent's private key (PEM). It never leaves this machine.
    pub key: PathBuf,
    /// The CA (PEM) the collector's certificate must chain to.
    pub ca: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Batches kept while the collector is unreachable; the oldest are dropped (and counted)
    /// beyond this. Default: 8640, a day at 10 s.
    #[serde(default = "default_max_batches")]
    pub max_batches: usize,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            max_batches: default_max_batches(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_max_batches() -> usize {
    8640
}

impl AgentConfig {
    /// Reads, resolves and validates `path`; reports every problem at once.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let mut config: Self = config_file::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.ca,
        ] {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigFileError::invalid(path, problems))
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.collector.parse::<tonic::transport::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
            _ => problems.push(format!(
                "collector = {:?} is not an https URL with a host; write e.g. \"https://msp.example:7443\"",
                self.collector
            )),
        }
        let range = vigil_proto::limits::INTERVAL_SECONDS;
        let seconds = self.interval.as_secs();
        if self.interval.subsec_nanos() != 0
            || !(u64::from(*range.start())..=u64::from(*range.end())).contains(&seconds)
        {
            problems.push(format!(
                "interval = {:?} must be whole seconds from {} s to {} s",
                humantime::format_duration(self.interval).to_string(),
                range.start(),
                range.end()
            ));
        }
        for (key, path) in [
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("tls.ca", &self.tls.ca),
        ] {
            if let Err(error) = std::fs::metadata(path) {
                problems.push(format!(
                    "{key} = '{}' cannot be read: {error}",
                    path.display()
                ));
            }
        }
        if self.spool.max_batches == 0 {
            problems.push("spool.max_batches = 0 must be at least 1".into());
        }
        problems
    }

    /// The name the collector's certificate must carry.
    pub fn expected_server_name(&self) -> String {
        if let Some(name) = &self.server_name {
            return name.clone();
        }
        self.collector
            .parse::<tonic::transport::Uri>()
            .ok()
            .and_then(|uri| {
                uri.host()
                    .map(|host| host.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        for file in ["agent.pem", "agent-key.pem", "ca.pem"] {
            std::fs::write(dir.join(file), "x").unwrap();
        }
        let path = dir.join("agent.toml");
        std::fs::write(&path, body).unwrap();
        path
    }

    const GOOD: &str = r#"
collector = "https://127.0.0.1:7443"
[tls]
cert = "agent.pem"
key = "agent-key.pem"
ca = "ca.pem"
"#;

    #[test]
    fn defaults_fill_everything_but_the_collector_and_tls() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(config.interval, Duration::from_secs(10));
        assert_eq!(config.tls.ca, dir.path().join("ca.pem"));
        assert_eq!(config.expected_server_name(), "127.0.0.1");
    }

    #[test]
    fn a_plain_http_collector_and_a_bad_interval_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("interval = \"0s\"\n{}", GOOD.replace("https://", "http://"));
        let error = AgentConfig::load(&write(dir.path(), &body)).unwrap_err();
        assert_eq!(error.problems.len(), 2, "{error}");
        assert!(error.to_string().contains("not an https URL"));
        assert!(error.to_string().contains("interval = \"0s\""));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let body = GOOD.replace("[tls]", "colector = \"x\"\n[tls]");
        let text = AgentConfig::load(&write(dir.path(), &body))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("agent.toml:3:1: unknown field `colector`"),
            "{text}"
        );
    }

    #[test]
    fn the_example_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.toml");
        let config: AgentConfig = config_file::load(&path).unwrap();
        assert_eq!(config.expected_server_name(), "msp.example");
        assert_eq!(config.spool.max_batches, 8640);
    }
}
