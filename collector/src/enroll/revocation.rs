//! The revocation list the ingest listener consults: at each handshake, and every second
//! for open streams. It is reloaded from the registry's `revoked/` folder, so a
//! `vigil-collector hosts revoke` in another process takes effect within a second.

use super::registry::Registry;
use crate::ingest::identity::PeerIdentity;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the list is reloaded from disk.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Agent id → revocation time (ms). Cheap to clone; clones share the list.
#[derive(Clone, Default)]
pub struct RevocationList {
    revoked_at_ms: Arc<RwLock<HashMap<String, i64>>>,
}

impl RevocationList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `peer`'s certificate was issued before its host was revoked.
    pub fn is_revoked(&self, peer: &PeerIdentity) -> bool {
        let list = self.revoked_at_ms.read().unwrap_or_else(|p| p.into_inner());
        list.get(&peer.host)
            .is_some_and(|revoked_at| peer.issued_at_ms <= *revoked_at)
    }

    pub fn replace(&self, entries: HashMap<String, i64>) {
        *self
            .revoked_at_ms
            .write()
            .unwrap_or_else(|p| p.into_inner()) = entries;
    }

    /// Loads the list once now, then every [`RELOAD_INTERVAL`] until `shutdown`.
    pub fn load(&self, registry: &Registry) {
        match registry.revocations() {
            Ok(records) => self.replace(
                records
                    .into_iter()
                    .map(|(host, record)| (host, record.revoked_at_ms))
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%error, "reloading revocations failed; keeping the last list")
            }
        }
    }

    /// Keeps the list current until `shutdown`.
    pub async fn keep_loading(self, registry: Arc<Registry>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(RELOAD_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {
                    let registry = registry.clone();
                    let list = self.clone();
                    let _ = tokio::task::spawn_blocking(move || list.load(&registry)).await;
                }
            }
        }
    }
}
