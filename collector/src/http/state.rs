//! What every handler reaches: the data folder's records (registry, outbox, policy archive,
//! presence), the store, the users, sessions, sign-in limiter and audit log, and the clock.

use super::audit::{AuditEntry, AuditLog};
use super::error::ApiError;
use super::limiter::SignInLimiter;
use super::sessions::Sessions;
use super::users::Users;
use crate::config::CollectorConfig;
use crate::enroll::registry::Registry;
use crate::notify::{Clock, Outbox};
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Shared>,
}

pub struct Shared {
    pub config: CollectorConfig,
    pub data_dir: PathBuf,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub outbox: Outbox,
    pub users: Users,
    pub sessions: Sessions,
    pub limiter: SignInLimiter,
    pub audit: AuditLog,
    /// Checks acknowledge links, when `[http] public_url` is set.
    pub ack_links: Option<super::ack_link::AckLinks>,
    /// Alert and presence changes for `GET /events`.
    pub changes: super::events::Changes,
    pub clock: Clock,
    /// Cookies carry `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Appends to the audit log off the async threads (it fsyncs). A failure to record is a
    /// failure of the request: an action nobody can account for is not done quietly.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.audit.record(&entry))
            .await
            .map_err(|error| ApiError::internal("writing the audit log", error))?
            .map_err(|error| ApiError::internal("writing the audit log", error))
    }

    /// Runs blocking work (file reads, store queries) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        context: &'static str,
        work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(|error| ApiError::internal(context, error))?
    }
}
