//! Fixtures for Vigil's end-to-end tests: a throwaway PKI on disk, a real collector on a
//! loopback port, raw gRPC clients that can misbehave, and the path to the built binaries.
//!
//! Everything here uses the product's own code on both ends (the CA, the TLS layer, the
//! agent's shipper); nothing is mocked.

pub mod report_month;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vigil_collector::config::CollectorConfig;
use vigil_collector::enroll::CertificateAuthority;
use vigil_collector::serve::Collector;
use vigil_proto::pb;

/// Certificates in tests live an hour.
const VALIDITY: Duration = Duration::from_secs(3600);

/// Chooses the crypto provider once per test process (rustls needs exactly one).
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // VIGIL_LOG=debug shows what the collector and agent did during a failing test.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// A CA and the collector's certificate, written into a temporary folder.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: CertificateAuthority,
}

impl Pki {
    pub fn new() -> Self {
        init();
        let dir = tempfile::tempdir().expect("temporary folder");
        let ca = CertificateAuthority::generate("Test CA").expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        write_private(&dir.path().join("ca-key.pem"), &ca.key_pem());
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], VALIDITY)
            .expect("server certificate");
        std::fs::write(dir.path().join("collector.pem"), &server.cert_pem).unwrap();
        write_private(&dir.path().join("collector-key.pem"), &server.key_pem);
        Self { dir, ca }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues an agent certificate and writes `<file_stem>.pem` and `<file_stem>-key.pem`.
    pub fn issue_agent(&self, file_stem: &str, agent_id: &str, client: &str) -> AgentFiles {
        self.issue_agent_valid_for(file_stem, agent_id, client, VALIDITY)
    }

    /// Like [`Pki::issue_agent`], valid for `validity` from now.
    pub fn issue_agent_valid_for(
        &self,
        file_stem: &str,
        agent_id: &str,
        client: &str,
        validity: Duration,
    ) -> AgentFiles {
        let issued = self
            .ca
            .issue_agent(agent_id, client, validity)
            .expect("agent certificate");
        let cert = self.path(&format!("{file_stem}.pem"));
        let key = self.path(&format!("{file_stem}-key.pem"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        write_private(&key, &issued.key_pem);
        AgentFiles {
            cert,
            key,
            ca: self.path("ca.pem"),
        }
    }

    /// A collector config on port 0 with its store in this folder.
    pub fn collector_config(&self) -> CollectorConfig {
        self.collector_config_with("")
    }

    /// Like [`Pki::collector_config`], with `extra` (whole TOML sections) appended.
    pub fn collector_config_with(&self, extra: &str) -> CollectorConfig {
        let text = format!("data_dir = \"data\"\n[grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n{extra}");
        let path = self.path("collector.toml");
        std::fs::write(&path, text).unwrap();
        CollectorConfig::load(&path).expect("collector config")
    }

    /// A collector config with enrollment on a loopback port and certificates valid for
    /// `cert_validity`.
    pub fn collector_config_with_enrollment(&self, cert_validity: &str) -> CollectorConfig {
        let text = format!(
            "data_dir = \"data\"\n[grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n[enroll]\nlisten = \"127.0.0.1:0\"\nca_cert = \"ca.pem\"\nca_key = \"ca-key.pem\"\ncert_validity = \"{cert_validity}\"\n"
        );
        let path = self.path("collector.toml");
        std::fs::write(&path, text).unwrap();
        CollectorConfig::load(&path).expect("collector config")
    }

    /// An agent config pointing at `grpc`, ticking every `interval_seconds`.
    pub fn agent_config(
        &self,
        files: &AgentFiles,
        grpc: SocketAddr,
        interval_seconds: u32,
    ) -> vigil_agent::config::AgentConfig {
        let path = self.agent_config_file(files, grpc, interval_seconds);
        vigil_agent::config::AgentConfig::load(&path).expect("agent config")
    }

    /// The same config as a file, for `vigil-agent run --config`; returns its path.
    pub fn agent_config_file(
        &self,
        files: &AgentFiles,
        grpc: SocketAddr,
        interval_seconds: u32,
    ) -> PathBuf {
        let text = format!(
            "collector = \"https://{grpc}\"\ninterval = \"{interval_seconds}s\"\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
            files.cert, files.key, files.ca
        );
        let path = self.path(&format!("agent-{}.toml", grpc.port()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The config of agent `host` (issued as `files`), ticking every second, with a state
    /// folder of its own so that several agents of one test each keep their spool.
    pub fn agent_config_for(
        &self,
        host: &str,
        files: &AgentFiles,
        grpc: SocketAddr,
    ) -> vigil_agent::config::AgentConfig {
        let path = self.path(&format!("{host}.toml"));
        std::fs::write(
            &path,
            format!(
                "collector = \"https://{grpc}\"\ninterval = \"1s\"\nstate_dir = {:?}\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
                self.path(&format!("{host}-state")),
                files.cert,
                files.key,
                files.ca
            ),
        )
        .unwrap();
        vigil_agent::config::AgentConfig::load(&path).expect("agent config")
    }
}

/// An open emergency of `client`'s `host`, as the pipeline writes it into the outbox,
/// escalating in ten minutes to channel `boss`.
pub fn open_emergency(
    fingerprint: &str,
    client: &str,
    host: &str,
    now_ms: i64,
) -> vigil_collector::notify::outbox::OpenAlertRecord {
    serde_json::from_value(serde_json::json!({
        "alert": {
            "fingerprint": fingerprint,
            "status": "firing",
            "client": client,
            "host": host,
            "rule": "HostSilent",
            "labels": {},
            "summary": format!("{host} silent for 5 min"),
            "engine_severity": "critical",
            "contract_severity": "emergency",
            "host_role": "server",
            "starts_at_ms": now_ms - 300_000,
            "at_ms": now_ms,
            "ends_at_ms": null,
            "response_due_ms": now_ms + 600_000,
            "policy_version": 1,
            "policy_digest": "sha256:0",
        },
        "channels": ["hook"],
        "digest_at_ms": null,
        "escalate_at_ms": now_ms + 600_000,
        "escalation_channels": ["boss"],
        "escalated": false,
    }))
    .expect("an open alert record")
}

/// Writes a private key as the product does: readable by its owner only (the collector and
/// the agent refuse anything looser).
pub fn write_private(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// An agent's certificate, key and trusted CA on disk.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A collector serving on a loopback port in this process.
pub struct RunningCollector {
    pub grpc: SocketAddr,
    /// The enrollment listener, when the config has one.
    pub enroll: Option<SocketAddr>,
    pub store: vigil_collector::store::Store,
    pub events: tokio::sync::broadcast::Receiver<vigil_collector::ingest::IngestEvent>,
    /// What each ingest limit refused, slowed or closed.
    pub counters: std::sync::Arc<vigil_collector::ingest::counters::IngestCounters>,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

impl RunningCollector {
    pub async fn start(config: &CollectorConfig) -> Self {
        init();
        let shutdown = CancellationToken::new();
        let collector = Collector::bind(config, shutdown.clone())
            .await
            .expect("collector binds");
        let grpc = collector.grpc_addr();
        let enroll = collector.enroll_addr();
        let store = collector.store().clone();
        let events = collector.events();
        let counters = collector.ingest_counters();
        let serving = tokio::spawn(collector.run());
        Self {
            grpc,
            enroll,
            store,
            events,
            counters,
            shutdown,
            serving,
        }
    }

    /// Shuts the collector down and waits for it to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

/// A raw `Report` stream, for tests that send what a real agent never would.
pub struct RawStream {
    pub outbound: mpsc::Sender<pb::AgentMessage>,
    pub inbound: tonic::Streaming<pb::CollectorMessage>,
}

impl RawStream {
    pub async fn send(&self, message: pb::AgentMessage) {
        self.outbound.send(message).await.expect("stream open");
    }

    /// The next message from the collector, or the status that ended the stream.
    pub async fn next(&mut self) -> Result<Option<pb::CollectorMessage>, tonic::Status> {
        tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
            .await
            .expect("the collector answers within 30 s")
    }
}

/// A channel to the collector with the given client identity (or none).
pub async fn connect(
    grpc: SocketAddr,
    ca: &Path,
    identity: Option<&AgentFiles>,
) -> Result<Channel, tonic::transport::Error> {
    init();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some(files) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&files.cert).unwrap(),
            std::fs::read(&files.key).unwrap(),
        ));
    }
    Endpoint::from_shared(format!("https://{grpc}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// Opens a `Report` stream on `channel`.
pub async fn open_stream(channel: Channel) -> Result<RawStream, tonic::Status> {
    let mut client =
        pb::ingest_client::IngestClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let (outbound, outbound_rx) = mpsc::channel(16);
    let response = client.report(ReceiverStream::new(outbound_rx)).await?;
    Ok(RawStream {
        outbound,
        inbound: response.into_inner(),
    })
}

/// A hello as a real agent would send it, not saying its next sequence number (as agents
/// before it was in the protocol).
pub fn hello(spool_id: u64) -> pb::AgentMessage {
    hello_with_next_seq(spool_id, 0)
}

/// A hello that says the spool's next sequence number, as current agents do.
pub fn hello_with_next_seq(spool_id: u64, next_seq: u64) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            inventory: Some(pb::Inventory {
                hostname: "test-machine".into(),
                os_name: "TestOS".into(),
                agent_version: "test".into(),
                cpu_cores: 1,
                ..Default::default()
            }),
            spool_id,
            interval_seconds: 10,
            next_seq,
        })),
    }
}

/// A batch of one series with one sample at `timestamp_ms`.
pub fn batch(
    seq: u64,
    name: &str,
    labels: &[(&str, &str)],
    timestamp_ms: i64,
    value: f64,
) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: vec![pb::Series {
                name: name.into(),
                labels: labels
                    .iter()
                    .map(|(name, value)| pb::Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                samples: vec![pb::Sample {
                    timestamp_ms,
                    value,
                }],
            }],
            ..Default::default()
        })),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    vigil_agent::run::now_ms()
}

/// The path of a workspace binary, building it if this test run has not.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let test_exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile folder");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        BUILT.get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--bin", "vigil-collector", "--bin", "vigil-agent"])
                .status()
                .expect("running cargo build");
            assert!(status.success(), "building the binaries failed");
        });
    }
    path
}
