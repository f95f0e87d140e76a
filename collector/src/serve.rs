//! The collector's lifecycle: open the store, build TLS, bind the ingest listener, serve
//! until the shutdown token is cancelled, then drain and flush. `vigil-collector serve` and
//! `demo` both run exactly this.

use crate::config::CollectorConfig;
use crate::enroll::registry::{Registry, RegistryError};
use crate::enroll::revocation::RevocationList;
use crate::enroll::service::{
    EnrollSettings, EnrollmentAuthority, EnrollmentService, RenewalService,
};
use crate::enroll::{CaError, CertificateAuthority};
use crate::ingest::tls::{self, TlsError};
use crate::ingest::{IngestEvent, IngestServer, IngestService, IngestSettings};
use crate::store::{Store, StoreError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_proto::pb;

/// How long open agent streams get to finish after shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("listening on {address}: {source}{hint}", hint = bind_hint(source))]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process has that port: stop it or choose another address (port 0 picks a free one)"
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges: choose a higher port",
        _ => "",
    }
}

/// A collector with its store open and its listeners bound, not yet serving.
pub struct Collector {
    store: Store,
    ingest: IngestServer,
    enrollment: Option<EnrollmentListener>,
    registry: Arc<Registry>,
    revocations: RevocationList,
    shutdown: CancellationToken,
}

/// The listener agents enroll at, with a join token and no certificate.
struct EnrollmentListener {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: EnrollmentService,
}

impl Collector {
    /// Opens the store and binds the listener. `shutdown` stops everything this collector
    /// starts.
    pub async fn bind(
        config: &CollectorConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, ServeError> {
        let store_config = config.store_config();
        let store = tokio::task::spawn_blocking(move || Store::open(&store_config))
            .await
            .expect("opening the store panicked")?;
        let tls = tls::server_config(&config.tls_files())?;
        let registry = Arc::new(Registry::open(&config.data_dir)?);
        let revocations = RevocationList::new();
        revocations.load(&registry);
        let settings = IngestSettings {
            agent_interval: config.agents.interval,
            max_connection_age: config.grpc.max_connection_age,
            ..IngestSettings::default()
        };
        let service = IngestService::new(
            store.clone(),
            settings,
            revocations.clone(),
            shutdown.child_token(),
        );
        let address = config.grpc.listen;
        let mut ingest = IngestServer::bind(address, tls, service)
            .await
            .map_err(|source| ServeError::Bind { address, source })?;
        let mut enrollment = None;
        if let Some(enroll) = &config.enroll {
            let authority = EnrollmentAuthority {
                ca: Arc::new(CertificateAuthority::load(&enroll.ca_cert, &enroll.ca_key)?),
                registry: registry.clone(),
                revocations: revocations.clone(),
                settings: EnrollSettings {
                    cert_validity: enroll.cert_validity,
                },
            };
            ingest = ingest.with_renewal(RenewalService::new(authority.clone()));
            let address = enroll.listen;
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| ServeError::Bind { address, source })?;
            enrollment = Some(EnrollmentListener {
                listener,
                tls: tls::enrollment_server_config(&config.tls_files(), &enroll.ca_cert)?,
                service: EnrollmentService::new(authority),
            });
        }
        Ok(Self {
            store,
            ingest,
            enrollment,
            registry,
            revocations,
            shutdown,
        })
    }

    /// The address agents enroll at, when enrollment is configured.
    pub fn enroll_addr(&self) -> Option<SocketAddr> {
        self.enrollment
            .as_ref()
            .and_then(|enrollment| enrollment.listener.local_addr().ok())
    }

    /// The address agents connect to (with the real port when the config asked for port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.ingest
            .local_addr()
            .expect("a bound listener has a local address")
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What arrives from agents, from now on.
    pub fn events(&self) -> broadcast::Receiver<IngestEvent> {
        self.ingest.service().subscribe()
    }

    /// Serves until the shutdown token is cancelled, then gives open streams a deadline to
    /// finish and flushes the store.
    pub async fn run(self) -> Result<(), ServeError> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(
            self.revocations
                .clone()
                .keep_loading(self.registry.clone(), shutdown.child_token()),
        );
        if let Some(enrollment) = self.enrollment {
            tokio::spawn(enrollment.run(shutdown.child_token()));
        }
        let mut serving = tokio::spawn(self.ingest.run(shutdown.clone()));
        let served = tokio::select! {
            served = &mut serving => served,
            _ = shutdown.cancelled() => {
                match tokio::time::timeout(DRAIN_DEADLINE, &mut serving).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!("agent streams did not finish within {DRAIN_DEADLINE:?}; closing them");
                        serving.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .expect("flushing the store panicked")?;
        match served {
            Ok(result) => result.map_err(ServeError::from),
            Err(join_error) => panic!("the ingest server panicked: {join_error}"),
        }
    }
}

impl EnrollmentListener {
    /// Serves enrollment until `shutdown`. A failure here is logged; ingest goes on.
    async fn run(self, shutdown: CancellationToken) {
        let connections = tls::accept_any(self.listener, self.tls, shutdown.clone());
        let incoming = ReceiverStream::new(connections).map(Ok::<_, std::io::Error>);
        let served = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(30))
            .add_service(pb::enrollment_server::EnrollmentServer::new(self.service))
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the enrollment listener failed");
        }
    }
}
