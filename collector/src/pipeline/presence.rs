//! Where each host stands: connected, asleep, shut down, rebooting, its agent stopped by a
//! technician, or gone without a word. A workstation switched off at night says so in its
//! Goodbye; this is where that becomes visible.
//!
//! [`track`] follows every ingest event (through a queue of its own that never drops, so a
//! Goodbye is never missed) and keeps `<data_dir>/presence.json` up to date (at
//! most every [`SAVE_EVERY`], and once more at shutdown), so that `vigil-collector hosts list`
//! can show it while `serve` holds the store.

use crate::ingest::{EventQueue, IngestEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_proto::model::GoodbyeReason;

/// How often a changed presence is written.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
const FILE_NAME: &str = "presence.json";

/// What the collector last heard from a host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// A stream is open.
    Online,
    /// It said goodbye: the machine is going to sleep.
    Asleep,
    /// It said goodbye: the machine is shutting down.
    ShutDown,
    /// It said goodbye: the machine is restarting.
    Rebooting,
    /// It said goodbye: the agent's service was stopped.
    AgentStopped,
    /// The stream ended without a goodbye (or the collector restarted since).
    Disconnected,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Asleep => "asleep",
            Self::ShutDown => "shut down",
            Self::Rebooting => "rebooting",
            Self::AgentStopped => "agent stopped",
            Self::Disconnected => "disconnected",
        }
    }

    fn from_goodbye(reason: GoodbyeReason) -> Self {
        match reason {
            GoodbyeReason::Sleep => Self::Asleep,
            GoodbyeReason::Shutdown => Self::ShutDown,
            GoodbyeReason::Reboot => Self::Rebooting,
            GoodbyeReason::ServiceStop => Self::AgentStopped,
            GoodbyeReason::Unspecified => Self::Disconnected,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPresence {
    pub client: String,
    pub state: PresenceState,
    /// When the state began, ms since the Unix epoch.
    pub since_ms: i64,
    /// When the newest batch was stored, ms since the Unix epoch.
    pub last_batch_ms: Option<i64>,
    pub agent_version: String,
    /// Operating system and version, from the inventory.
    pub os: String,
}

/// Every host heard from, by agent id.
#[derive(Debug, Default)]
pub struct Presence {
    path: PathBuf,
    hosts: BTreeMap<String, HostPresence>,
    changed: bool,
}

impl Presence {
    /// The presence saved in `data_dir`. Streams do not outlive a collector: a host that was
    /// online is disconnected from `now_ms` until its agent connects again.
    pub fn open(data_dir: &Path, now_ms: i64) -> Result<Self, PresenceError> {
        let path = data_dir.join(FILE_NAME);
        let mut hosts = read_hosts(&path)?;
        for host in hosts.values_mut() {
            if host.state == PresenceState::Online {
                host.state = PresenceState::Disconnected;
                host.since_ms = now_ms;
            }
        }
        Ok(Self {
            path,
            hosts,
            changed: true,
        })
    }

    pub fn hosts(&self) -> &BTreeMap<String, HostPresence> {
        &self.hosts
    }

    pub fn observe(&mut self, event: &IngestEvent, now_ms: i64) {
        match event {
            IngestEvent::Connected { peer, inventory } => {
                self.hosts.insert(
                    peer.host.clone(),
                    HostPresence {
                        client: peer.client.clone(),
                        state: PresenceState::Online,
                        since_ms: now_ms,
                        last_batch_ms: self.hosts.get(&peer.host).and_then(|h| h.last_batch_ms),
                        agent_version: inventory.agent_version.clone(),
                        os: format!("{} {}", inventory.os_name, inventory.os_version)
                            .trim()
                            .to_string(),
                    },
                );
            }
            IngestEvent::Stored { peer, .. } => {
                if let Some(host) = self.hosts.get_mut(&peer.host) {
                    host.last_batch_ms = Some(now_ms);
                }
            }
            IngestEvent::Goodbye { peer, reason } => {
                self.set_state(&peer.host, PresenceState::from_goodbye(*reason), now_ms);
            }
            IngestEvent::Disconnected { peer } => {
                // After a goodbye the host already says why it went.
                if self.hosts.get(&peer.host).map(|h| h.state) == Some(PresenceState::Online) {
                    self.set_state(&peer.host, PresenceState::Disconnected, now_ms);
                }
            }
            IngestEvent::Duplicate { .. } | IngestEvent::Rejected { .. } => return,
        }
        self.changed = true;
    }

    fn set_state(&mut self, host: &str, state: PresenceState, now_ms: i64) {
        if let Some(host) = self.hosts.get_mut(host) {
            if host.state != state {
                host.state = state;
                host.since_ms = now_ms;
            }
        }
    }

    /// Writes the file if anything changed since the last save.
    pub fn save(&mut self) -> Result<(), PresenceError> {
        if !self.changed {
            return Ok(());
        }
        crate::durable::write_json(&self.path, &self.hosts).map_err(|(action, source)| {
            PresenceError::Io {
                action,
                path: self.path.clone(),
                source,
            }
        })?;
        self.changed = false;
        Ok(())
    }
}

/// What `serve` last wrote for `data_dir`: empty before any agent connected.
pub fn read(data_dir: &Path) -> Result<BTreeMap<String, HostPresence>, PresenceError> {
    read_hosts(&data_dir.join(FILE_NAME))
}

fn read_hosts(path: &Path) -> Result<BTreeMap<String, HostPresence>, PresenceError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(PresenceError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|source| PresenceError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("{action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{}' is not a presence file ({source}); delete it, the collector writes it anew", path.display())]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// How long a stopping tracker waits for ingest to finish handing it events.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);

/// Follows `events` until `shutdown` (or until ingest is gone), saving as it goes and once
/// more at the end.
pub async fn track(mut presence: Presence, mut events: EventQueue, shutdown: CancellationToken) {
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = save.tick() => save_or_log(&mut presence),
            event = events.recv() => match event {
                Some(received) => presence.observe(&received.event, now_ms()),
                None => break,
            },
        }
    }
    events
        .drain(DRAIN_DEADLINE, |received| {
            presence.observe(&received.event, now_ms())
        })
        .await;
    save_or_log(&mut presence);
}

fn save_or_log(presence: &mut Presence) {
    if let Err(error) = presence.save() {
        tracing::warn!("host presence not saved: {error}");
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::identity::PeerIdentity;
    use vigil_proto::model::Inventory;

    fn peer(host: &str) -> PeerIdentity {
        PeerIdentity {
            host: host.into(),
            client: "acme".into(),
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        }
    }

    fn connected(host: &str) -> IngestEvent {
        IngestEvent::Connected {
            peer: peer(host),
            inventory: Inventory {
                os_name: "Windows".into(),
                os_version: "11".into(),
                agent_version: "0.1.0".into(),
                ..Inventory::default()
            },
        }
    }

    #[test]
    fn a_goodbye_says_why_a_host_went_and_a_silent_drop_says_it_did_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut presence = Presence::open(dir.path(), 0).unwrap();
        presence.observe(&connected("pc-01"), 1_000);
        presence.observe(&connected("pc-02"), 1_000);
        let pc01 = &presence.hosts()["pc-01"];
        assert_eq!(
            (pc01.state, pc01.os.as_str()),
            (PresenceState::Online, "Windows 11")
        );

        presence.observe(
            &IngestEvent::Goodbye {
                peer: peer("pc-01"),
                reason: GoodbyeReason::Sleep,
            },
            5_000,
        );
        presence.observe(
            &IngestEvent::Disconnected {
                peer: peer("pc-01"),
            },
            5_001,
        );
        presence.observe(
            &IngestEvent::Disconnected {
                peer: peer("pc-02"),
            },
            6_000,
        );
        let pc01 = &presence.hosts()["pc-01"];
        assert_eq!((pc01.state, pc01.since_ms), (PresenceState::Asleep, 5_000));
        let pc02 = &presence.hosts()["pc-02"];
        assert_eq!(
            (pc02.state, pc02.since_ms),
            (PresenceState::Disconnected, 6_000)
        );

        presence.observe(&connected("pc-01"), 9_000);
        assert_eq!(presence.hosts()["pc-01"].state, PresenceState::Online);
    }

    #[test]
    fn what_is_saved_is_read_back_and_a_restart_disconnects_the_hosts_that_were_online() {
        let dir = tempfile::tempdir().unwrap();
        let mut presence = Presence::open(dir.path(), 0).unwrap();
        presence.observe(&connected("pc-01"), 1_000);
        presence.observe(&connected("srv-01"), 1_000);
        presence.observe(
            &IngestEvent::Goodbye {
                peer: peer("pc-01"),
                reason: GoodbyeReason::Shutdown,
            },
            2_000,
        );
        presence.save().unwrap();
        let saved = read(dir.path()).unwrap();
        assert_eq!(saved["pc-01"].state, PresenceState::ShutDown);
        assert_eq!(saved["srv-01"].state, PresenceState::Online);

        let reopened = Presence::open(dir.path(), 60_000).unwrap();
        assert_eq!(reopened.hosts()["pc-01"].state, PresenceState::ShutDown);
        let srv = &reopened.hosts()["srv-01"];
        assert_eq!(
            (srv.state, srv.since_ms),
            (PresenceState::Disconnected, 60_000)
        );
    }

    #[test]
    fn a_damaged_file_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("presence.json"), "{error}");
        assert!(error.contains("delete it"), "{error}");
    }
}
