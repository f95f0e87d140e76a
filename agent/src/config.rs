//! `agent.toml`: what `vigil-agent run` reads. Every key but the collector's address and the
//! TLS files has a default; relative paths resolve against the config file's folder.
//!
//! Where the agent keeps its state (the spool) is `state_dir`. Installed agents name the
//! system's folder for it ([`system_state_dir`]: `/var/lib/vigil-agent` on Linux,
//! `%ProgramData%\Vigil\agent` on Windows); when the key is left out, the state lives in
//! `state/` beside the config file, so that every config — a demo folder, a test — has a
//! spool of its own and two agents never share one.

use crate::collect::ChecksConfig;
use crate::spool::SpoolLimits;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::config_file::{self, ConfigFileError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// The folder for the agent's state: the spool of unacknowledged batches lives in
    /// `<state_dir>/spool`. Default: `state` beside this file; installed agents set the
    /// system's folder (see [`system_state_dir`]).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub spool: SpoolSection,
    /// `[checks]`: services, SMART, backups and logs, beyond the host metrics. Changes to
    /// this section take effect without a restart.
    #[serde(default)]
    pub checks: ChecksConfig,
    /// The file this config was read from, watched for changes while the agent runs.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// This agent's certificate (PEM); its subject names the agent and its client.
    pub cert: PathBuf,
    /// The agent's private key (PEM). It never leaves this machine.
    pub key: PathBuf,
    /// The CA (PEM) the collector's certificate must chain to.
    pub ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// The most the spool may hold while the collector is unreachable, in MiB of encoded
    /// batches; beyond it the oldest are dropped, and counted. Default: 64 (about a week of
    /// a typical machine at 10 s).
    #[serde(default = "default_spool_max_size_mib")]
    pub max_size_mib: u64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            max_size_mib: default_spool_max_size_mib(),
        }
    }
}

impl SpoolSection {
    pub fn limits(&self) -> SpoolLimits {
        SpoolLimits {
            max_bytes: self.max_size_mib.saturating_mul(1024 * 1024),
        }
    }
}

/// The system's folder for the agent's state, which installers write into `state_dir`:
/// `/var/lib/vigil-agent` on Linux and other Unix systems, `%ProgramData%\Vigil\agent` on
/// Windows.
pub fn system_state_dir() -> PathBuf {
    if cfg!(windows) {
        let program_data =
            std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        PathBuf::from(program_data).join("Vigil").join("agent")
    } else {
        PathBuf::from("/var/lib/vigil-agent")
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_spool_max_size_mib() -> u64 {
    SpoolLimits::DEFAULT_MAX_BYTES / (1024 * 1024)
}

impl AgentConfig {
    /// Reads, resolves and validates `path`; reports every problem at once.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let mut config: Self = config_file::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let state_dir = config
            .state_dir
            .get_or_insert_with(|| PathBuf::from("state"));
        for file in [
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.tls.ca,
            state_dir,
        ] {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.checks.resolve_paths(base);
        config.source = Some(path.to_path_buf());
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
        if self.spool.max_size_mib == 0 {
            problems.push("spool.max_size_mib = 0 must be at least 1".into());
        }
        problems.extend(self.checks.problems());
        if let Some(state_dir) = &self.state_dir {
            if state_dir.is_file() {
                problems.push(format!(
                    "state_dir = '{}' is a file; name a folder the agent may write",
                    state_dir.display()
                ));
            }
        }
        problems
    }

    /// The folder of the spool's database.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("state"))
            .join("spool")
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

/// Editors and deployment tools write a file in several steps; the config is read again once
/// the file has been quiet this long.
const RELOAD_SETTLE: Duration = Duration::from_millis(300);

/// Follows the config file: [`ConfigWatch::next`] yields the config each time the file
/// changes, or why its new content cannot be used — the caller then keeps what it has.
pub struct ConfigWatch {
    path: PathBuf,
    /// Kept alive for its events; dropping it stops watching.
    _watcher: notify::RecommendedWatcher,
    changes: tokio::sync::mpsc::Receiver<()>,
}

impl ConfigWatch {
    /// Watches the folder of `path` (so that a file replaced by a rename is seen too).
    pub fn start(path: &Path) -> Result<Self, String> {
        use notify::Watcher;
        let (notify_change, changes) = tokio::sync::mpsc::channel(1);
        let file = path.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let concerns_file = match &event {
                    Ok(event) => {
                        event.need_rescan() || event.paths.iter().any(|changed| changed == &file)
                    }
                    Err(_) => true,
                };
                if concerns_file {
                    // A change already waiting to be read covers this one too.
                    let _ = notify_change.try_send(());
                }
            })
            .map_err(|error| format!("cannot watch config {}: {error}", path.display()))?;
        let folder = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        watcher
            .watch(folder, notify::RecursiveMode::NonRecursive)
            .map_err(|error| format!("cannot watch config {}: {error}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            _watcher: watcher,
            changes,
        })
    }

    /// Waits for the file to change, lets it settle and reads it again.
    pub async fn next(&mut self) -> Option<Result<AgentConfig, ConfigFileError>> {
        self.changes.recv().await?;
        loop {
            tokio::time::sleep(RELOAD_SETTLE).await;
            if self.changes.try_recv().is_err() {
                break;
            }
        }
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || AgentConfig::load(&path))
            .await
            .unwrap_or_else(|error| {
                Err(ConfigFileError::invalid(
                    &self.path,
                    vec![format!("reading it failed: {error}")],
                ))
            });
        Some(loaded)
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
        assert_eq!(config.spool_dir(), dir.path().join("state").join("spool"));
        assert_eq!(config.spool.limits().max_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn a_relative_state_dir_is_beside_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("state_dir = \"var\"\n{GOOD}");
        let config = AgentConfig::load(&write(dir.path(), &body)).unwrap();
        assert_eq!(config.spool_dir(), dir.path().join("var").join("spool"));
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
    fn every_check_is_configured_in_one_place_with_relative_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            r#"{GOOD}
[checks.services]
expected = ["sshd", "nginx"]
interval = "30s"

[checks.smart]
devices = ["/dev/sda"]

[[checks.backup]]
job = "nightly"
path = "backups/last-success"

[[checks.log]]
name = "kernel"
path = "/var/log/kern.log"
patterns = {{ io_error = "I/O error", oom = "Out of memory" }}
"#
        );
        let config = AgentConfig::load(&write(dir.path(), &body)).unwrap();
        let checks = &config.checks;
        assert_eq!(checks.services.interval, Duration::from_secs(30));
        assert_eq!(
            checks.smart.devices.as_deref(),
            Some(&["/dev/sda".to_owned()][..])
        );
        assert_eq!(
            checks.backup[0].path,
            dir.path().join("backups").join("last-success")
        );
        assert_eq!(checks.log[0].patterns.len(), 2);
    }

    #[test]
    fn an_unknown_check_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{GOOD}\n[checks.raid]\nenabled = true\n");
        let text = AgentConfig::load(&write(dir.path(), &body))
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown field `raid`"), "{text}");
        assert!(text.contains("agent.toml:8:"), "{text}");
    }

    #[test]
    fn every_bad_check_setting_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            r#"{GOOD}
[checks.services]
expected = ["-H evil"]

[[checks.backup]]
job = "a"
path = "/srv/a"

[[checks.backup]]
job = "a"
path = "/srv/b"
file_name = "("

[[checks.log]]
name = "app"
path = "/var/log/app.log"
patterns = {{}}
"#
        );
        let error = AgentConfig::load(&write(dir.path(), &body)).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 4, "{text}");
        for expected in [
            "checks.services.expected: \"-H evil\"",
            "checks.backup[1].file_name = \"(\" is not a regular expression",
            "checks.backup[1].job = \"a\" is used twice",
            "checks.log[0].patterns is empty",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), GOOD);
        let mut watch = ConfigWatch::start(&path).unwrap();
        async fn next(watch: &mut ConfigWatch) -> Result<AgentConfig, ConfigFileError> {
            tokio::time::timeout(Duration::from_secs(20), watch.next())
                .await
                .expect("the change is noticed")
                .expect("the watch goes on")
        }

        std::fs::write(
            &path,
            format!("{GOOD}\n[checks.services]\ninterval = \"30s\"\n"),
        )
        .unwrap();
        let reloaded = next(&mut watch).await.unwrap();
        assert_eq!(reloaded.checks.services.interval, Duration::from_secs(30));

        // Replaced through a rename, the way many editors and tools save.
        let staged = dir.path().join("agent.toml.new");
        std::fs::write(
            &staged,
            format!("{GOOD}\n[checks.smart]\nenabled = false\n"),
        )
        .unwrap();
        std::fs::rename(&staged, &path).unwrap();
        let reloaded = next(&mut watch).await.unwrap();
        assert!(!reloaded.checks.smart.enabled);

        std::fs::write(&path, format!("{GOOD}\n[checks.nope]\n")).unwrap();
        let error = next(&mut watch).await.unwrap_err();
        assert!(
            error.to_string().contains("unknown field `nope`"),
            "{error}"
        );
    }

    #[test]
    fn the_example_in_deploy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.toml");
        let config: AgentConfig = config_file::load(&path).unwrap();
        assert_eq!(config.expected_server_name(), "msp.example");
        assert_eq!(config.spool.max_size_mib, 64);
        assert_eq!(
            config.state_dir.as_deref(),
            Some(Path::new("/var/lib/vigil-agent"))
        );
    }
}
