//! Ingest: the gRPC edge agents report to.
//!
//! [`tls::accept_verified`] completes mutual-TLS handshakes, reads the [`identity::PeerIdentity`] from each client
//! certificate and admits the connection to the [`connections::Connections`] table, which
//! caps connections per host and in all and closes idle, old and revoked ones.
//! [`IngestService`] runs one [`session::AgentSession`] per `Report` stream, which
//! validates batches, holds each host to its [`limits::HostBudgets`], stores batches
//! durably and only then acknowledges them. Every refusal is counted in
//! [`counters::IngestCounters`]. What arrives is also published as [`IngestEvent`]s on an
//! [`events::EventBus`]: through a bounded queue that never drops to those who judge (the
//! alert pipeline, presence), before the batch is acknowledged, and to whoever only watches
//! (the demo).
//!
//! This room is the only one besides `vigil-proto` that names prost types; it hands the rest
//! of the collector domain types only.

pub mod connections;
pub mod counters;
pub mod events;
pub mod identity;
pub mod limits;
pub mod session;
pub mod tls;

use crate::enroll::revocation::RevocationList;
use crate::enroll::service::RenewalService;
use crate::store::Store;
use connections::Connections;
use counters::IngestCounters;
pub use events::{EventBus, EventClock, EventLag, EventQueue, Received};
use identity::PeerIdentity;
use limits::HostBudgets;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::AgentConnectInfo;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
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
    /// Samples older than this (the store's raw retention) are refused: they would be
    /// deleted at the next retention pass.
    pub max_sample_age: Duration,
    /// Connections stop taking new streams after this long (HTTP/2 GOAWAY), and streams
    /// end, so the agent reconnects and its certificate is checked again at the handshake;
    /// [`MAX_CONNECTION_AGE_GRACE`] later the connection is closed. Default: 1 h.
    pub max_connection_age: Duration,
    /// Rate, cardinality and connection limits.
    pub limits: limits::Limits,
}

/// How long a connection past its maximum age has to finish its streams before it is
/// closed.
pub const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            agent_interval: None,
            max_clock_skew: Duration::from_secs(300),
            max_sample_age: crate::store::StoreConfig::DEFAULT_RAW_RETENTION,
            max_connection_age: Duration::from_secs(3600),
            limits: limits::Limits::default(),
        }
    }
}

/// The `vigil.v1.Ingest` service.
#[derive(Clone)]
pub struct IngestService {
    store: Store,
    settings: IngestSettings,
    revocations: RevocationList,
    connections: Connections,
    budgets: HostBudgets,
    counters: Arc<IngestCounters>,
    events: EventBus,
    telemetry: crate::telemetry::Telemetry,
    shutdown: CancellationToken,
}

impl IngestService {
    pub fn new(
        store: Store,
        settings: IngestSettings,
        revocations: RevocationList,
        counters: Arc<IngestCounters>,
        shutdown: CancellationToken,
    ) -> Self {
        let events = EventBus::new();
        let closing_age = settings.max_connection_age + MAX_CONNECTION_AGE_GRACE;
        Self {
            store,
            connections: Connections::new(settings.limits, Some(closing_age), counters.clone()),
            budgets: HostBudgets::new(settings.limits),
            settings,
            revocations,
            counters,
            events,
            telemetry: crate::telemetry::Telemetry::new(),
            shutdown,
        }
    }

    /// Records batches, samples, acknowledgement latency and connected agents into
    /// `telemetry` (the collector's `/metrics`).
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// What each limit refused, slowed or closed so far.
    pub fn counters(&self) -> &Arc<IngestCounters> {
        &self.counters
    }

    /// The open agent connections.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Events from now on, for display. A watcher that falls behind loses the oldest
    /// events, never slows ingest; whoever judges events uses [`IngestService::consume`].
    pub fn subscribe(&self) -> broadcast::Receiver<IngestEvent> {
        self.events.watch()
    }

    /// Stamps events with `clock` (the alert path's) instead of the system clock.
    pub fn stamp_events_with(&self, clock: EventClock) {
        self.events.stamp_with(clock);
    }

    /// Every event from now on, none lost, through a queue of `capacity` events: while it is
    /// full, sessions wait before acknowledging. Call before serving.
    pub fn consume(&self, name: &'static str, capacity: usize) -> EventQueue {
        self.events.consume(name, capacity)
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
        let info = request
            .extensions()
            .get::<AgentConnectInfo>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
        let peer = info.peer;
        if self.revocations.is_revoked(&peer) {
            IngestCounters::add(&self.counters.streams_refused_revoked);
            tracing::warn!(host = %peer.host, "refusing a stream of a revoked host");
            return Err(session::revoked_status());
        }
        let (outbound_tx, outbound_rx) = mpsc::channel(256);
        let span = tracing::info_span!("agent", host = %peer.host, client = %peer.client, connection = info.connection.id);
        let session = session::AgentSession {
            budget: self.budgets.of(&peer.host),
            peer,
            store: self.store.clone(),
            settings: self.settings.clone(),
            revocations: self.revocations.clone(),
            counters: self.counters.clone(),
            events: self.events.clone(),
            telemetry: self.telemetry.clone(),
            connection_closed: info.connection.closed(),
            _stream: info.connection.stream_opened(),
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

const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_STREAMS_PER_CONNECTION: u32 = 8;

/// Puts the connection's [`PeerIdentity`] into the request on its own, for services (the
/// renewal) that need only the identity.
fn expose_peer_identity<B>(mut request: http::Request<B>) -> http::Request<B> {
    if let Some(info) = request.extensions().get::<AgentConnectInfo>() {
        let peer = info.peer.clone();
        request.extensions_mut().insert(peer);
    }
    request
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
        let table = self.service.connections.clone();
        tokio::spawn(
            table
                .clone()
                .keep_sweeping(self.service.revocations.clone(), shutdown.child_token()),
        );
        let max_connection_age = self.service.settings.max_connection_age;
        let connections = tls::accept_verified(
            self.listener,
            self.tls,
            table,
            self.service.settings.limits.max_handshakes,
            shutdown.clone(),
        );
        let incoming = ReceiverStream::new(connections).map(Ok::<_, std::io::Error>);
        let service = pb::ingest_server::IngestServer::new(self.service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tonic::transport::Server::builder()
            // A peer that stops answering pings is gone: its connection is closed.
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            // GOAWAY at the maximum age: no new streams; the sweep closes the connection
            // after the grace period whatever the client does.
            .max_connection_age(max_connection_age)
            // An agent needs one stream (two while renewing); a few more are harmless.
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .layer(tower::util::MapRequestLayer::new(expose_peer_identity))
            .add_service(service)
            .add_optional_service(self.renewal.map(pb::renewal_server::RenewalServer::new))
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }
}
