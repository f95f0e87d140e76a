//! The ingest listener's TLS: a rustls server that requires a client certificate signed by
//! the collector's CA, speaks TLS 1.3 only, and hands each verified connection to tonic
//! with the peer's identity attached.
//!
//! Handshakes run in their own tasks, so a slow or hostile client never holds up the accept
//! loop or anyone else's handshake; at most `limits.max_handshakes` run at once, and a TCP
//! connection past that is closed before any TLS work. A verified connection is admitted
//! to the [`Connections`] table before HTTP/2 sees it, and its I/O fails as soon as the
//! table closes it.
//!
//! Revocation is not judged here but in the table and the service: a revoked host's
//! connection gets, for each stream it opens, a `PERMISSION_DENIED` that says "revoked" and
//! what to run, and is closed a moment later. A TLS alert would say less: in TLS 1.3 the
//! client sees the handshake complete before the server judges its certificate, and the
//! alert is lost in a "connection closed".

use super::connections::{Admitted, Connection, Connections};
use super::counters::IngestCounters;
use super::identity::PeerIdentity;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} '{path}': {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("loading {what} '{path}': no PEM {expected} found")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("loading {what} '{path}': {reason}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("building the TLS server configuration: {0}")]
    Config(String),
}

/// Where the ingest listener's certificate, key and trusted client CA are.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// Builds the rustls configuration: mutual TLS, client certificate required, TLS 1.3 only.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs(&files.cert, "server certificate")?;
    let key = load_key(&files.key)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in load_certs(&files.client_ca, "client CA bundle")? {
        roots.add(ca).map_err(|error| TlsError::Invalid {
            what: "client CA bundle",
            path: files.client_ca.clone(),
            reason: error.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Invalid {
            what: "server key",
            path: files.key.clone(),
            reason: format!(
                "does not match the certificate '{}': {error}",
                files.cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The enrollment listener's configuration: server authentication only (agents arrive
/// without a certificate), TLS 1.3, and the CA certificate sent along with the server's so
/// an agent can check it against the fingerprint in its join token.
pub fn enrollment_server_config(
    files: &ServerTlsFiles,
    ca_cert: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut chain = load_certs(&files.cert, "server certificate")?;
    for ca in load_certs(ca_cert, "CA certificate")? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = load_key(&files.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| TlsError::Invalid {
            what: "server key",
            path: files.key.clone(),
            reason: format!(
                "does not match the certificate '{}': {error}",
                files.cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Invalid {
            what,
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    vigil_proto::config_file::check_private_key_file(path)
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "server key",
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Empty {
        what: "server key",
        path: path.to_path_buf(),
        expected: "private key",
    })
}

/// A verified, admitted agent connection: the TLS stream, its place in the connection
/// table, and the signal that the table closed it. tonic puts [`AgentConnectInfo`] into each
/// request's extensions.
pub struct AgentConnection {
    stream: TlsStream<TcpStream>,
    admitted: Admitted,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// What a request knows of the connection it came on.
#[derive(Clone)]
pub struct AgentConnectInfo {
    pub peer: PeerIdentity,
    pub connection: Arc<Connection>,
}

impl tonic::transport::server::Connected for AgentConnection {
    type ConnectInfo = AgentConnectInfo;

    fn connect_info(&self) -> AgentConnectInfo {
        AgentConnectInfo {
            peer: self.admitted.connection.peer.clone(),
            connection: self.admitted.connection.clone(),
        }
    }
}

impl AgentConnection {
    /// Once the table has closed the connection, every read and write fails, which ends
    /// the HTTP/2 connection and every stream on it.
    fn check_open(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the collector",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for AgentConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AgentConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TCP connections until `shutdown`, completes each TLS handshake in its own task
/// (at most `max_handshakes` at once) and yields the verified agent connections the table
/// admits. Refused connections are logged and dropped here; they never reach tonic.
pub fn accept_verified(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    connections: Connections,
    max_handshakes: usize,
    shutdown: CancellationToken,
) -> mpsc::Receiver<AgentConnection> {
    let counters = connections.counters().clone();
    let slots = HandshakeSlots {
        semaphore: Arc::new(Semaphore::new(max_handshakes)),
        counters: counters.clone(),
    };
    accept_with(
        listener,
        config,
        Some(slots),
        shutdown,
        move |stream, remote| {
            let peer = match peer_identity(&stream) {
                Ok(peer) => peer,
                Err(error) => {
                    tracing::warn!(%remote, %error, "refusing agent certificate");
                    return None;
                }
            };
            match connections.admit(peer) {
                Ok(admitted) => {
                    let peer = &admitted.connection.peer;
                    tracing::debug!(%remote, host = %peer.host, client = %peer.client, connection = admitted.connection.id, "agent connected");
                    let closed = Box::pin(admitted.connection.closed().cancelled_owned());
                    Some(AgentConnection {
                        stream,
                        admitted,
                        closed,
                    })
                }
                Err(refusal) => {
                    // A client that keeps knocking must not flood the log: the 1st, 2nd,
                    // 4th, 8th… refusal is logged, every one is counted.
                    let refused = counters
                        .connections_refused_per_host_cap
                        .load(std::sync::atomic::Ordering::Relaxed)
                        + counters
                            .connections_refused_total_cap
                            .load(std::sync::atomic::Ordering::Relaxed);
                    if refused.is_power_of_two() {
                        tracing::warn!(%remote, %refusal, refused_so_far = refused, "refusing a connection");
                    } else {
                        tracing::debug!(%remote, %refusal, "refusing a connection");
                    }
                    None
                }
            }
        },
    )
}

/// Bounds the handshakes under way; a connection that finds none free is closed at once.
struct HandshakeSlots {
    semaphore: Arc<Semaphore>,
    counters: Arc<IngestCounters>,
}

/// Like [`accept_verified`] for a listener without client certificates (enrollment).
pub fn accept_any(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> mpsc::Receiver<TlsStream<TcpStream>> {
    accept_with(listener, config, None, shutdown, |stream, _| Some(stream))
}

/// The accept loop: one task per handshake, each bounded by [`HANDSHAKE_TIMEOUT`]; `admit`
/// decides what a completed handshake becomes.
fn accept_with<T: Send + 'static>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    slots: Option<HandshakeSlots>,
    shutdown: CancellationToken,
    admit: impl Fn(TlsStream<TcpStream>, std::net::SocketAddr) -> Option<T> + Send + Sync + 'static,
) -> mpsc::Receiver<T> {
    let (admitted_tx, admitted_rx) = mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let admit = Arc::new(admit);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let permit = match &slots {
                None => None,
                Some(slots) => match slots.semaphore.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        IngestCounters::add(&slots.counters.handshakes_refused_busy);
                        let refused = slots
                            .counters
                            .handshakes_refused_busy
                            .load(std::sync::atomic::Ordering::Relaxed);
                        if refused.is_power_of_two() {
                            tracing::warn!(%remote, refused_so_far = refused, "closing a connection: too many TLS handshakes under way (limits.max_handshakes)");
                        }
                        drop(tcp);
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let admitted_tx = admitted_tx.clone();
            let admit = admit.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                    Ok(Err(error)) => tracing::info!(%remote, %error, "TLS handshake refused"),
                    Ok(Ok(stream)) => {
                        if let Some(admitted) = admit(stream, remote) {
                            let _ = admitted_tx.send(admitted).await;
                        }
                    }
                }
            });
        }
    });
    admitted_rx
}

fn peer_identity(
    stream: &TlsStream<TcpStream>,
) -> Result<PeerIdentity, super::identity::IdentityError> {
    let (_, connection) = stream.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or(super::identity::IdentityError::MissingField {
            field: "certificate",
        })?;
    PeerIdentity::from_certificate(leaf)
}
