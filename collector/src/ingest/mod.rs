//! Ingest: the gRPC edge agents report to.
//!
//! [`tls::accept_verified`] completes mutual-TLS handshakes and attaches the
//! [`identity::PeerIdentity`] read from each client certificate; [`IngestService`] runs one
//! [`session::AgentSession`] per `Report` stream, which validates batches, stores them
//! durably and only then acknowledges them. What arrives is also published as
//! [`IngestEvent`]s for whoever watches (the demo, later the alert engine).
//!
//! This room is the only one besides `vigil-proto` that names prost types; it hands the rest
//! of the collector domain types only.

pub mod identity;
pub mod limits;
pub mod session;
pub mod tls;

use crate::enroll::revocation::RevocationList;
use crate::enroll::service::RenewalService;
use crate::store::Store;
use identity::PeerIdentity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use vigil_proto::limits::MAX_MESSAGE_BYTES;
use vigil_proto::model::{Batch, GoodbyeReason, Inventory};
use vigil_proto::pb;

/// What the ingest room tells its watchers.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    Connected {
        peer: PeerIdentity,
        inventory: Inventory,
    },
    Stored {
        peer: PeerIdentity,
        batch: Arc<Batch>,
    },
    Duplicate {
        peer: PeerIdentity,
        seq: u64,
    },
    Rejected {
        peer: PeerIdentity,
        seq: u64,
        reason: String,
    },
    Goodbye {
        peer: PeerIdentity,
        reason: GoodbyeReason,
    },
    Disconnected {
        peer: PeerIdentity,
    },
}

/// Settings of the ingest room.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Collection interval pushed to agents that run with another one; `None` leaves each
    /// agent's own setting alone.
    pub agent_interval: Option<Duration>,
    /// How far ahead of the collector's clock a sample may be before the batch is refused.
    pub max_clock_skew: Duration,
    /// Streams are closed after this long, so the agent reconnects and its certificate is
    /// checked again at the handshake. Default: 1 h.
    pub max_connection_age: Duration,
    /// Rate and cardinality limits per stream.
    pub limits: limits::StreamLimits,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            agent_interval: None,
            max_clock_skew: Duration::from_secs(300),
            max_connection_age: Duration::from_secs(3600),
            limits: limits::StreamLimits::default(),
        }
    }
}

/// The `vigil.v1.Ingest` service.
#[derive(Clone)]
pub struct IngestService {
    store: Store,
    settings: IngestSettings,
    revocations: RevocationList,
    events: broadcast::Sender<IngestEvent>,
    shutdown: CancellationToken,
}

impl IngestService {
    pub fn new(
        store: Store,
        settings: IngestSettings,
        revocations: RevocationList,
        shutdown: CancellationToken,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            store,
            settings,
            revocations,
            events,
            shutdown,
        }
    }

    /// Events from now on. A watcher that falls behind loses the oldest events, never
    /// slows ingest.
    pub fn subscribe(&self) -> broadcast::Receiver<IngestEvent> {
        self.events.subscribe()
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    type ReportStream = ReceiverStream<Result<pb::CollectorMessage, Status>>;

    async fn report(
        &self,
        request: Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        // The TLS layer attaches the identity to every connection it lets through; a request
        // without one did not come through it.
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
        let (outbound_tx, outbound_rx) = mpsc::channel(256);
        let span = tracing::info_span!("agent", host = %peer.host, client = %peer.client);
        let session = session::AgentSession {
            peer,
            store: self.store.clone(),
            settings: self.settings.clone(),
            revocations: self.revocations.clone(),
            events: self.events.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(
            session
                .run(request.into_inner(), outbound_tx)
                .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(outbound_rx)))
    }
}

/// The ingest listener: bound, but serving only once [`IngestServer::run`] is called.
pub struct IngestServer {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: IngestService,
    renewal: Option<RenewalService>,
}

impl IngestServer {
    pub async fn bind(
        address: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        service: IngestService,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        Ok(Self {
            listener,
            tls,
            service,
            renewal: None,
        })
    }

    /// Also serves certificate renewal to the agents connected here.
    pub fn with_renewal(mut self, renewal: RenewalService) -> Self {
        self.renewal = Some(renewal);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn service(&self) -> &IngestService {
        &self.service
    }

    /// Serves until `shutdown` is cancelled, then lets open sessions finish their current
    /// batch and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), tonic::transport::Error> {
        let connections = tls::accept_verified(
            self.listener,
            self.tls,
            self.service.revocations.clone(),
            shutdown.clone(),
        );
        let incoming = ReceiverStream::new(connections).map(Ok::<_, std::io::Error>);
        let service = pb::ingest_server::IngestServer::new(self.service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(service)
            .add_optional_service(self.renewal.map(pb::renewal_server::RenewalServer::new))
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }
}
