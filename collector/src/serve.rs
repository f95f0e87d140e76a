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
use crate::ingest::counters::IngestCounters;
use crate::ingest::tls::{self, TlsError};
use crate::ingest::{
    EventLag, EventQueue, IngestEvent, IngestServer, IngestService, IngestSettings,
};
use crate::notify::channel::Channels;
use crate::notify::{Clock, Notifier, NotifierSettings, NotifyError, Outbox};
use crate::pipeline::presence::{self, Presence, PresenceError};
use crate::pipeline::{Dispatch, LiveAlerts, Policies};
use crate::store::{Store, StoreError};
use crate::telemetry::readings::Readings;
use crate::telemetry::Telemetry;
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
    #[error(transparent)]
    Rules(#[from] vigil_proto::config_file::ConfigFileError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Presence(#[from] PresenceError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error(transparent)]
    RemoteWrite(#[from] crate::remote_write::RemoteWriteError),
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
    alerts: Alerting,
    presence: (Presence, EventQueue),
    http: Option<crate::http::HttpServer>,
    /// What mails the monthly client reports on each contract's `[report]` day.
    reports: (crate::notify::NotifySection, Clock),
    /// The collector's own metrics, served at `GET /metrics`.
    telemetry: Telemetry,
    /// Export to remote-write receivers, when `[[remote_write]]` names any.
    remote_write: Option<crate::remote_write::RemoteWrite>,
    shutdown: CancellationToken,
}

/// The live alert path: the engine with its events, and the notifier that empties the
/// outbox.
struct Alerting {
    live: LiveAlerts,
    /// Every stored batch, none dropped: ingest waits while this is full.
    events: EventQueue,
    notifier: Notifier,
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
        Self::bind_with_clock(config, shutdown, Clock::System).await
    }

    /// Like [`Collector::bind`], with the alert path (engine, contracts, notifier) reading
    /// the time from `clock`: how tests run minutes of an outage in a moment.
    pub async fn bind_with_clock(
        config: &CollectorConfig,
        shutdown: CancellationToken,
        clock: Clock,
    ) -> Result<Self, ServeError> {
        let store_config = config.store_config();
        let remote_write_configs = config.remote_write.clone();
        let store = tokio::task::spawn_blocking(move || {
            crate::remote_write::prepare_store(&store_config.data_dir, &remote_write_configs)?;
            Store::open(&store_config)
        })
        .await
        .expect("opening the store panicked")?;
        let remote_write = match config.remote_write.is_empty() {
            true => None,
            false => Some(crate::remote_write::RemoteWrite::new(
                &store,
                &config.remote_write,
            )?),
        };
        let telemetry = Telemetry::new();
        store.observe_fsyncs(telemetry.fsync_observer());
        if let Some(export) = &remote_write {
            telemetry.register_collector(crate::telemetry::RemoteWriteReadings(export.status()));
        }
        let registry = Arc::new(Registry::open(&config.data_dir)?);
        let revocations = RevocationList::new();
        revocations.load(&registry);
        let counters = Arc::new(IngestCounters::default());
        let tls = tls::server_config(&config.tls_files())?;
        let mut limits = config.ingest_limits();
        if let Some(descriptors) = crate::ingest::limits::descriptor_limit() {
            let (fitted, warning) = limits.fit_to_descriptors(descriptors);
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
            }
            limits = fitted;
        }
        let settings = IngestSettings {
            agent_interval: config.agents.interval,
            max_connection_age: config.grpc.max_connection_age,
            max_sample_age: config.store.raw_retention,
            limits,
            ..IngestSettings::default()
        };
        let service = IngestService::new(
            store.clone(),
            settings,
            revocations.clone(),
            counters,
            shutdown.child_token(),
        )
        .with_telemetry(telemetry.clone());
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
        let http = bind_http(config, &store, &registry, clock.clone())
            .await?
            .map(|server| server.with_metrics(telemetry.clone()));
        let reports = (config.notify.clone(), clock.clone());
        let stamp = clock.clone();
        ingest
            .service()
            .stamp_events_with(Arc::new(move || stamp.now_ms()));
        let engine_events = ingest
            .service()
            .consume("alert_engine", config.alerts.queue_capacity);
        let mut alerts = Alerting::open(config, &store, engine_events, clock, &telemetry)?
            .with_fleet(config, registry.clone());
        alerts.live = alerts.live.with_revocations(revocations.clone());
        let presence = Presence::open(&config.data_dir, jiff::Timestamp::now().as_millisecond())?;
        let presence = (
            presence,
            ingest
                .service()
                .consume("presence", config.alerts.queue_capacity),
        );
        telemetry.register_collector(Readings {
            store: store.clone(),
            counters: ingest.service().counters().clone(),
            queues: vec![alerts.events.lag(), presence.1.lag()],
            outbox: Arc::new(Outbox::open(&config.data_dir)?),
        });
        Ok(Self {
            store,
            ingest,
            enrollment,
            registry,
            revocations,
            alerts,
            presence,
            http,
            reports,
            telemetry,
            remote_write,
            shutdown,
        })
    }

    /// The collector's own metrics (`GET /metrics`): another exporter (remote_write)
    /// registers its queue depth, lag and counts here before [`Collector::run`].
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// How each remote-write receiver is doing, when export is configured.
    pub fn remote_write_status(&self) -> Option<crate::remote_write::RemoteWriteStatus> {
        self.remote_write
            .as_ref()
            .map(crate::remote_write::RemoteWrite::status)
    }

    /// The console and API server, when it is bound.
    pub fn http(&self) -> Option<&crate::http::HttpServer> {
        self.http.as_ref()
    }

    /// Mounts `router` at `path` on the HTTP server, behind its authentication.
    pub fn nest_http(mut self, path: &str, router: axum::Router) -> Self {
        self.http = self
            .http
            .map(|server| server.nest_authenticated(path, router));
        self
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

    /// How often each ingest limit refused, slowed or closed something.
    pub fn ingest_counters(&self) -> Arc<IngestCounters> {
        self.ingest.service().counters().clone()
    }

    /// What arrives from agents, from now on, for display: a watcher that falls behind
    /// loses the oldest events (the engine and presence have queues of their own that
    /// never drop).
    pub fn events(&self) -> broadcast::Receiver<IngestEvent> {
        self.ingest.service().subscribe()
    }

    /// How far the alert engine is behind ingest.
    pub fn engine_lag(&self) -> Arc<EventLag> {
        self.alerts.events.lag()
    }

    /// How far presence tracking is behind ingest.
    pub fn presence_lag(&self) -> Arc<EventLag> {
        self.presence.1.lag()
    }

    /// Spends `delay` more on judging every stored batch, as an expensive rule would: how
    /// tests and benchmarks make the engine slower than ingest.
    pub fn with_judging_delay(mut self, delay: Duration) -> Self {
        self.alerts.live = self.alerts.live.with_judging_delay(delay);
        self
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
        // Not a child of `shutdown`: the engine stops after ingest has, so that it judges
        // every batch that was acknowledged.
        let alerting = self.alerts.start(CancellationToken::new());
        let (presence, presence_events) = self.presence;
        let presence_stop = CancellationToken::new();
        let presence = tokio::spawn(presence::track(
            presence,
            presence_events,
            presence_stop.clone(),
        ));
        let (notify, clock) = self.reports;
        tokio::spawn(crate::report::send::run_schedule(
            self.store.data_dir().to_path_buf(),
            self.store.clone(),
            notify,
            clock,
            shutdown.child_token(),
        ));
        let http_stop = shutdown.child_token();
        let http = self
            .http
            .map(|server| tokio::spawn(server.run(http_stop.clone())));
        let mut remote_write = self.remote_write;
        if let Some(remote_write) = &mut remote_write {
            remote_write.start();
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
        http_stop.cancel();
        if let Some(http) = http {
            match tokio::time::timeout(DRAIN_DEADLINE, http).await {
                Ok(Ok(Err(error))) => tracing::error!(%error, "the HTTP server failed"),
                Ok(_) => {}
                Err(_) => tracing::warn!("HTTP requests did not finish within {DRAIN_DEADLINE:?}"),
            }
        }
        alerting.stop().await;
        presence_stop.cancel();
        let _ = presence.await;
        // After ingest: every acknowledged batch is in the log; the senders save where they
        // are, and the log keeps the rest for the next start.
        if let Some(remote_write) = remote_write {
            remote_write.stop().await;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .expect("flushing the store panicked")?;
        match served {
            Ok(result) => result.map_err(ServeError::from),
            Err(join_error) => panic!("the ingest server panicked: {join_error}"),
        }
    }
}

/// Binds the console's listener. Without an `[http]` section the default address is tried
/// and, if another process has it, the collector serves without a console (a warning says
/// so); a configured address that cannot be bound is an error.
async fn bind_http(
    config: &CollectorConfig,
    store: &Store,
    registry: &Arc<Registry>,
    clock: Clock,
) -> Result<Option<crate::http::HttpServer>, ServeError> {
    match crate::http::HttpServer::bind(config, store.clone(), registry.clone(), clock).await {
        // The Prometheus query API, behind the same sign-in, scoped to the caller's client.
        Ok(server) => Ok(Some(server.nest_authenticated(
            "/api/v1",
            crate::promql::api::router(store.clone()),
        ))),
        Err(crate::http::HttpError::Bind { address, source })
            if config.http.is_none() && source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            tracing::warn!(
                "http: {address} is in use, so this collector serves no console or API; \
                 set [http] listen in the config to choose another address"
            );
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

impl Alerting {
    /// Watches the enrolled fleet (agents that never connected, certificates not renewed).
    fn with_fleet(mut self, config: &CollectorConfig, registry: Arc<Registry>) -> Self {
        let validity = config
            .enroll
            .as_ref()
            .map_or_else(crate::config::default_cert_validity, |enroll| {
                enroll.cert_validity
            });
        let fleet = crate::pipeline::health::Fleet::new(
            registry,
            config.data_dir.clone(),
            validity,
            self.live.now_ms(),
        );
        self.live = self.live.with_fleet(fleet);
        self
    }

    fn open(
        config: &CollectorConfig,
        store: &Store,
        events: EventQueue,
        clock: Clock,
        telemetry: &Telemetry,
    ) -> Result<Self, ServeError> {
        let rules = match &config.alerts.rules {
            Some(path) => crate::alert::config::load_rules(path)?,
            None => crate::alert::RuleSet::builtin(),
        };
        let settings = crate::alert::EngineSettings {
            restart_grace_ms: config.alerts.restart_grace.as_millis() as i64,
            evaluation_interval_ms: config.alerts.evaluation_interval.as_millis() as i64,
            ..crate::alert::EngineSettings::default()
        };
        let outbox = Arc::new(Outbox::open(&config.data_dir)?);
        let links = crate::http::ack_link::AckLinks::from_config(config)
            .map_err(crate::http::HttpError::from)?
            .map(Arc::new);
        let channels = Arc::new(Channels::build_with_links(&config.notify, links)?);
        let rule_names = rules.rules.iter().map(|rule| rule.name.clone()).collect();
        let policies = Arc::new(
            Policies::open(&config.data_dir, config.policies.dir.clone()).with_rules(rule_names),
        );
        let notifier = Notifier::new(
            outbox.clone(),
            channels,
            NotifierSettings::from_section(&config.notify),
            clock.clone(),
        )
        .with_telemetry(telemetry.clone());
        let dispatch =
            Dispatch::new(outbox, policies, config.notify.routing.clone()).waking(notifier.waker());
        let now_ms = clock.now_ms();
        let live = LiveAlerts::open(store.clone(), rules, settings, dispatch, now_ms)
            .with_clock(clock)
            .with_channel_health(notifier.health())
            .with_lag_alert_after(config.alerts.lag_alert_after)
            .with_forget_after(config.alerts.forget_after)
            .with_telemetry(telemetry.clone());
        Ok(Self {
            live,
            events,
            notifier,
        })
    }

    /// Starts the engine on a thread of its own (it saves its state with fsync, which
    /// must not hold up the network tasks) and the notifier as a task.
    fn start(self, shutdown: CancellationToken) -> RunningAlerting {
        let notifier = tokio::spawn(self.notifier.run(shutdown.clone()));
        let live = self.live;
        let events = self.events;
        let engine_shutdown = shutdown.clone();
        let engine = std::thread::Builder::new()
            .name("alert-engine".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a single-threaded runtime builds");
                runtime.block_on(live.run(events, engine_shutdown));
            })
            .expect("the alert engine thread starts");
        RunningAlerting {
            engine,
            notifier,
            shutdown,
        }
    }
}

struct RunningAlerting {
    engine: std::thread::JoinHandle<()>,
    notifier: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl RunningAlerting {
    /// Stops both and waits until the engine has saved its state.
    async fn stop(self) {
        self.shutdown.cancel();
        let engine = self.engine;
        if tokio::task::spawn_blocking(move || engine.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            tracing::error!("the alert engine stopped abnormally");
        }
        let _ = self.notifier.await;
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
