//! The HTTP listener: plain HTTP on loopback, TLS (the collector's own certificate, or the
//! one `[http] tls_cert`/`tls_key` names) whenever it listens beyond loopback or a
//! certificate is configured. Each TLS handshake runs in a task of its own, so a slow
//! client holds up nobody; axum serves what comes out, with the peer's address for the
//! sign-in limiter.

use super::HttpError;
use crate::config::CollectorConfig;
use crate::ingest::tls::{self, ServerTlsFiles};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes finished and waiting for axum to take them.
const ACCEPT_QUEUE: usize = 64;

/// The address a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A bound listener, with TLS or without.
pub struct BoundListener {
    pub(super) listener: TcpListener,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
}

impl BoundListener {
    pub async fn bind(config: &CollectorConfig) -> Result<Self, HttpError> {
        let http = config.http();
        let address = http.listen;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        let tls = match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => Some(server_tls(&ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: cert.clone(),
            })?),
            _ if !address.ip().is_loopback() => Some(server_tls(&config.tls_files())?),
            _ => None,
        };
        Ok(Self { listener, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has a local address")
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// TLS 1.3 with server authentication only; browsers speak HTTP/2 or HTTP/1.1. The CA (the
/// collector's, or whatever `client_ca` names) is sent along so a browser that trusts it can
/// build the chain.
fn server_tls(files: &ServerTlsFiles) -> Result<Arc<rustls::ServerConfig>, HttpError> {
    let mut config = (*tls::enrollment_server_config(files, &files.client_ca)?).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections as axum takes them: TLS finished in tasks of their own.
pub struct HttpListener {
    local: SocketAddr,
    connections: mpsc::Receiver<(HttpIo, PeerAddr)>,
}

pub type HttpIo = Either<TcpStream, TlsStream<TcpStream>>;

impl HttpListener {
    /// Starts accepting on `bound` until `shutdown`.
    pub fn start(bound: BoundListener, shutdown: CancellationToken) -> Self {
        let local = bound.local_addr();
        let (sender, connections) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(accept(bound, sender, shutdown));
        Self { local, connections }
    }
}

async fn accept(
    bound: BoundListener,
    sender: mpsc::Sender<(HttpIo, PeerAddr)>,
    shutdown: CancellationToken,
) {
    let acceptor = bound.tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = bound.listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, usually: wait a little rather than spin.
                tracing::warn!(%error, "http: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &acceptor {
            None => {
                if sender
                    .send((Either::Left(stream), PeerAddr(peer)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((Either::Right(tls), PeerAddr(peer))).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "http: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "http: TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl Listener for HttpListener {
    type Io = HttpIo;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop stopped (shutdown): wait for the graceful shutdown to finish.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerAddr(self.local))
    }
}

impl Connected<IncomingStream<'_, HttpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        *stream.remote_addr()
    }
}
