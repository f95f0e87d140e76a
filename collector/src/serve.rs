//! The collector's lifecycle: open the store, build TLS, bind the ingest listener, serve
//! until the shutdown token is cancelled, then drain and flush. `vigil-collector serve` and
//! `demo` both run exactly this.

use crate::config::CollectorConfig;
use crate::ingest::tls::{self, TlsError};
use crate::ingest::{IngestEvent, IngestServer, IngestService, IngestSettings};
use crate::store::{Store, StoreError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long open agent streams get to finish after shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
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

/// A collector with its store open and its listener bound, not yet serving.
pub struct Collector {
    store: Store,
    ingest: IngestServer,
    shutdown: CancellationToken,
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
        let settings = IngestSettings {
            agent_interval: config.agents.interval,
            ..IngestSettings::default()
        };
        let service = IngestService::new(store.clone(), settings, shutdown.child_token());
        let address = config.grpc.listen;
        let ingest = IngestServer::bind(address, tls, service)
            .await
            .map_err(|source| ServeError::Bind { address, source })?;
        Ok(Self {
            store,
            ingest,
            shutdown,
        })
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
