//! The collector's HTTP side: the JSON API under `/api/v1/` for the console and for scripts,
//! and the console's pages, served by `serve` and `demo` on `[http] listen`.
//!
//! A request passes [`auth::require_caller`] (a session cookie with its CSRF token, or a
//! bearer API token from [`users::Users`]) and reaches a handler in [`api`] with a
//! [`auth::Caller`]; every handler authorises on the server: a `client` user sees only its
//! own client, and another client's host reads as not found. The handlers read what the CLI
//! reads (registry, outbox, presence, policy archive) and the live [`crate::store::Store`].
//!
//! Files, in reading order: [`server`] (listener, TLS), [`users`], [`sessions`],
//! [`ack_link`] (the signed acknowledge links alert messages carry), [`events`] (live
//! updates, `GET /events`),
//! [`limiter`] (failed sign-ins), [`audit`], [`auth`], [`signin`], [`api`], [`error`],
//! [`metrics`] (`GET /metrics`, the collector's own health for Prometheus), and
//! [`client`], how the command line reads through a running collector; [`console`] holds
//! the web pages, embedded.
//! This module decides nothing about alerts: acknowledging is the outbox's
//! [`crate::notify::Outbox::acknowledge`], as `alerts ack` does it.

pub mod ack_link;
pub mod api;
pub mod audit;
pub mod auth;
pub mod client;
pub mod console;
pub mod error;
pub mod events;
pub mod limiter;
pub mod metrics;
pub mod server;
pub mod sessions;
pub mod signin;
pub mod state;
pub mod users;

use crate::config::CollectorConfig;
use crate::enroll::registry::Registry;
use crate::notify::{Clock, Outbox};
use crate::store::Store;
use axum::Router;
use server::{BoundListener, HttpListener, PeerAddr};
use state::{AppState, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http: listening on {address}: {source}; choose another [http] listen (port 0 picks a free one)")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("http: {0}")]
    Tls(#[from] crate::ingest::tls::TlsError),
    #[error(transparent)]
    Users(#[from] users::UsersError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Outbox(#[from] crate::notify::NotifyError),
    #[error("http: {0}")]
    AckLink(#[from] ack_link::AckLinkError),
    #[error("http: serving: {0}")]
    Serve(std::io::Error),
}

/// The console's server, bound and not yet serving.
pub struct HttpServer {
    bound: BoundListener,
    state: AppState,
    /// Routers mounted behind authentication (the Prometheus API), by path.
    nested: Vec<(String, Router)>,
    /// What `GET /metrics` serves, when the collector keeps its own metrics.
    telemetry: Option<crate::telemetry::Telemetry>,
}

impl HttpServer {
    /// Binds `[http] listen` and opens the users, the audit log and the outbox.
    pub async fn bind(
        config: &CollectorConfig,
        store: Store,
        registry: Arc<Registry>,
        clock: Clock,
    ) -> Result<Self, HttpError> {
        let bound = BoundListener::bind(config).await?;
        let state = AppState {
            inner: Arc::new(Shared {
                config: config.clone(),
                data_dir: config.data_dir.clone(),
                store,
                registry,
                outbox: Outbox::open(&config.data_dir)?,
                users: users::Users::open(&config.data_dir)?,
                sessions: sessions::Sessions::new(sessions::SessionLimits::default()),
                limiter: limiter::SignInLimiter::new(limiter::SignInLimits::default()),
                audit: audit::AuditLog::open(&config.data_dir)?,
                ack_links: ack_link::AckLinks::from_config(config)?,
                changes: events::Changes::default(),
                clock,
                secure_cookies: bound.is_tls(),
            }),
        };
        Ok(Self {
            bound,
            state,
            nested: Vec::new(),
            telemetry: None,
        })
    }

    /// Mounts `router` at `path` behind the same authentication as the API: its handlers
    /// find the [`auth::Caller`] and the [`auth::ClientScope`] in the request's extensions.
    pub fn nest_authenticated(mut self, path: &str, router: Router) -> Self {
        self.nested.push((path.to_string(), router));
        self
    }

    /// Serves `telemetry` at `GET /metrics` (see [`metrics`]).
    pub fn with_metrics(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.bound.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// A one-time sign-in link for `user`, valid for [`sessions::LINK_LIFETIME`].
    pub fn sign_in_link(&self, user: &str) -> String {
        let token = self.state.sessions.create_link(user);
        format!(
            "{}://{}/api/v1/sign-in/link/{token}",
            self.scheme(),
            self.local_addr()
        )
    }

    /// The users of this collector.
    pub fn users(&self) -> &users::Users {
        &self.state.users
    }

    /// Serves until `shutdown`, then lets requests under way finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), HttpError> {
        tokio::spawn(events::watch(self.state.clone(), shutdown.clone()));
        let mut app = api::router(self.state.clone(), self.nested);
        if let Some(telemetry) = self.telemetry {
            app = app.merge(metrics::router(self.state, telemetry));
        }
        let listener = HttpListener::start(self.bound, shutdown.clone());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<PeerAddr>(),
        )
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(HttpError::Serve)
    }
}
