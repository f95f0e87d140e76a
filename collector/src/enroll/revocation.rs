//! The revocation list the ingest listener consults: when a stream opens (a revoked host
//! gets `PERMISSION_DENIED` saying so and what to run), before each batch is acknowledged,
//! and in the sweep that closes the connections of a revoked host.
//! It is reloaded from the registry's `revoked/` folder every [`RELOAD_INTERVAL`], so a
//! `vigil-collector hosts revoke` in another process takes effect within a quarter of a second; a
//! change wakes whoever [`RevocationList::subscribe`]d.

use super::registry::Registry;
use crate::ingest::identity::PeerIdentity;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the list is reloaded from disk: a revocation reaches every open connection
/// within this plus the time to close it, well inside a second.
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(250);

/// Agent id → revocation time (ms). Cheap to clone; clones share the list.
#[derive(Clone)]
pub struct RevocationList {
    revoked_at_ms: Arc<RwLock<HashMap<String, i64>>>,
    /// Bumped each time the list changes.
    changes: Arc<watch::Sender<u64>>,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self {
            revoked_at_ms: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
        }
    }
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = self.revoked_at_ms.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("RevocationList")
            .field("n_revoked", &list.len())
            .finish()
    }
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

    /// Replaces the list; wakes the subscribers when it changed.
    pub fn replace(&self, entries: HashMap<String, i64>) {
        let mut list = self
            .revoked_at_ms
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if *list == entries {
            return;
        }
        *list = entries;
        drop(list);
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Loads the list once now.
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
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
