//! The table of open agent connections: who holds how many, which are idle, and the one
//! place that closes a connection — when its host is revoked, when it has sat without a
//! stream for `limits.idle_timeout`, or when it outlived `grpc.max_connection_age` and its
//! grace period.
//!
//! A connection is admitted after its handshake, once its identity is known and before
//! HTTP/2 spends anything on it: at most `max_connections_per_host` per host, and at most
//! `max_connections` in all. At the global cap the connection idle the longest (no stream
//! open) makes room; real agents always have their `Report` stream open, so the ones that
//! make room are those holding descriptors without reporting.
//!
//! Closing does not ask the peer: the connection's I/O fails from then on (see
//! `tls::AgentConnection`), hyper ends the HTTP/2 connection, and every stream on it ends.

use super::counters::IngestCounters;
use super::identity::PeerIdentity;
use super::limits::Limits;
use crate::enroll::revocation::RevocationList;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the table is swept for idle, revoked and old connections (revocations also
/// wake the sweep at once). A revoked host's connection is closed one sweep after its
/// revocation is seen.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Why a connection was closed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Revoked,
    Idle,
    Evicted,
    Age,
}

/// One admitted connection. Streams register on it so the table knows when it is idle.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub peer: PeerIdentity,
    opened_at: Instant,
    /// Cancelled when the collector closes the connection.
    closed: CancellationToken,
    /// Open streams, and since when none has been open (`None` while one is). One lock for
    /// both: a stream that ends while another opens must not leave the connection idle.
    streams: Mutex<StreamCount>,
    /// A sweep found the host revoked; the next one closes the connection. In between, its
    /// streams end with a status that says why, which closing at once could cut off.
    revocation_seen: AtomicBool,
}

impl Connection {
    /// Resolves when the collector has closed this connection.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Registers an open stream; the connection is not idle until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> StreamGuard {
        let mut streams = self.streams();
        streams.open += 1;
        streams.idle_since = None;
        drop(streams);
        StreamGuard {
            connection: self.clone(),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        self.streams().idle_since
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, StreamCount> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct StreamCount {
    open: usize,
    idle_since: Option<Instant>,
}

/// Held by a running stream.
pub struct StreamGuard {
    connection: Arc<Connection>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self.connection.streams();
        streams.open -= 1;
        if streams.open == 0 {
            streams.idle_since = Some(Instant::now());
        }
    }
}

/// Why a connection was not admitted; the text goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("host '{host}' already has {open} connections open (limits.max_connections_per_host = {limit}); a second agent with the same certificate, or a client that does not reuse its connection")]
    PerHost {
        host: String,
        open: usize,
        limit: usize,
    },
    #[error("{open} agent connections are open, none of them idle (limits.max_connections = {limit}); raise it together with the descriptor limit (LimitNOFILE)")]
    Total { open: usize, limit: usize },
}

/// The table of open connections. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Connections {
    table: Arc<Mutex<Table>>,
    limits: Limits,
    /// The age after which a connection is closed, however busy; `None`: never.
    closing_age: Option<Duration>,
    counters: Arc<IngestCounters>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    by_id: HashMap<u64, Arc<Connection>>,
    per_host: HashMap<String, usize>,
}

/// Held by the connection's I/O; leaving the table when the connection goes.
pub struct Admitted {
    pub connection: Arc<Connection>,
    table: Arc<Mutex<Table>>,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("connection", &self.connection.id)
            .finish()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // An evicted connection left the table when it was evicted.
        if table.by_id.remove(&self.connection.id).is_none() {
            return;
        }
        if let Some(count) = table.per_host.get_mut(&self.connection.peer.host) {
            *count -= 1;
            if *count == 0 {
                table.per_host.remove(&self.connection.peer.host);
            }
        }
    }
}

impl Connections {
    /// `closing_age`: connections are closed this long after they opened (the maximum age
    /// plus the grace period that lets streams end on their own).
    pub fn new(
        limits: Limits,
        closing_age: Option<Duration>,
        counters: Arc<IngestCounters>,
    ) -> Self {
        Self {
            table: Arc::default(),
            limits,
            closing_age,
            counters,
        }
    }

    pub fn counters(&self) -> &Arc<IngestCounters> {
        &self.counters
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open connections of `host`.
    pub fn count_for(&self, host: &str) -> usize {
        self.lock().per_host.get(host).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection of `peer`, or says which limit refuses it (and counts it).
    pub fn admit(&self, peer: PeerIdentity) -> Result<Admitted, Refusal> {
        let mut evicted = None;
        let mut table = self.lock();
        let open_for_host = table.per_host.get(&peer.host).copied().unwrap_or(0);
        if open_for_host >= self.limits.max_connections_per_host {
            IngestCounters::add(&self.counters.connections_refused_per_host_cap);
            return Err(Refusal::PerHost {
                host: peer.host,
                open: open_for_host,
                limit: self.limits.max_connections_per_host,
            });
        }
        if table.by_id.len() >= self.limits.max_connections {
            // Make room by closing the connection idle the longest, if any is.
            let idlest = table
                .by_id
                .values()
                .filter_map(|connection| connection.idle_since().map(|since| (since, connection)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, connection)| connection.clone());
            match idlest {
                Some(connection) => {
                    // It leaves the table when its I/O is dropped; do not count it twice.
                    table.by_id.remove(&connection.id);
                    if let Some(count) = table.per_host.get_mut(&connection.peer.host) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            table.per_host.remove(&connection.peer.host);
                        }
                    }
                    evicted = Some(connection);
                }
                None => {
                    IngestCounters::add(&self.counters.connections_refused_total_cap);
                    return Err(Refusal::Total {
                        open: table.by_id.len(),
                        limit: self.limits.max_connections,
                    });
                }
            }
        }
        table.next_id += 1;
        let connection = Arc::new(Connection {
            id: table.next_id,
            peer,
            opened_at: Instant::now(),
            closed: CancellationToken::new(),
            streams: Mutex::new(StreamCount {
                open: 0,
                idle_since: Some(Instant::now()),
            }),
            revocation_seen: AtomicBool::new(false),
        });
        table.by_id.insert(connection.id, connection.clone());
        *table
            .per_host
            .entry(connection.peer.host.clone())
            .or_default() += 1;
        drop(table);
        if let Some(evicted) = evicted {
            self.close(&evicted, CloseReason::Evicted);
        }
        Ok(Admitted {
            connection,
            table: self.table.clone(),
        })
    }

    fn close(&self, connection: &Connection, reason: CloseReason) {
        if connection.closed.is_cancelled() {
            return;
        }
        let counter = match reason {
            CloseReason::Revoked => &self.counters.connections_closed_revoked,
            CloseReason::Idle => &self.counters.connections_closed_idle,
            CloseReason::Evicted => &self.counters.connections_evicted_idle,
            CloseReason::Age => &self.counters.connections_closed_age,
        };
        IngestCounters::add(counter);
        match reason {
            CloseReason::Revoked => {
                tracing::warn!(host = %connection.peer.host, connection = connection.id, "closing the connection of a revoked host")
            }
            CloseReason::Idle => {
                tracing::info!(host = %connection.peer.host, connection = connection.id, idle_timeout = ?self.limits.idle_timeout, "closing a connection without a stream (limits.idle_timeout)")
            }
            CloseReason::Evicted => {
                tracing::warn!(host = %connection.peer.host, connection = connection.id, max_connections = self.limits.max_connections, "closing the longest idle connection to make room (limits.max_connections)")
            }
            CloseReason::Age => {
                tracing::info!(host = %connection.peer.host, connection = connection.id, "closing a connection past its maximum age (grpc.max_connection_age)")
            }
        }
        connection.closed.cancel();
    }

    /// Closes what must close now: connections of revoked hosts, idle ones, old ones.
    pub fn sweep(&self, revocations: &RevocationList) {
        let now = Instant::now();
        let due: Vec<(Arc<Connection>, CloseReason)> = self
            .lock()
            .by_id
            .values()
            .filter_map(|connection| {
                let reason = if revocations.is_revoked(&connection.peer) {
                    if !connection.revocation_seen.swap(true, Ordering::SeqCst) {
                        return None;
                    }
                    CloseReason::Revoked
                } else if connection
                    .idle_since()
                    .is_some_and(|since| now.duration_since(since) >= self.limits.idle_timeout)
                {
                    CloseReason::Idle
                } else if self
                    .closing_age
                    .is_some_and(|age| now.duration_since(connection.opened_at) >= age)
                {
                    CloseReason::Age
                } else {
                    return None;
                };
                Some((connection.clone(), reason))
            })
            .collect();
        for (connection, reason) in due {
            self.close(&connection, reason);
        }
    }

    /// Sweeps every [`SWEEP_INTERVAL`], and at once when the revocation list changes, until
    /// `shutdown`.
    pub async fn keep_sweeping(self, revocations: RevocationList, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = revocations.subscribe();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
                // A `hosts revoke` was just loaded: cut its connections now.
                _ = changes.changed() => {}
            }
            self.sweep(&revocations);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: &str) -> PeerIdentity {
        PeerIdentity {
            host: host.into(),
            client: "acme".into(),
            issued_at_ms: 1_000,
            expires_at_ms: i64::MAX,
        }
    }

    fn connections(max_connections: usize, per_host: usize) -> Connections {
        let limits = Limits {
            max_connections,
            max_connections_per_host: per_host,
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        Connections::new(limits, None, Arc::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_past_its_connection_cap_is_refused_and_counted() {
        let connections = connections(100, 2);
        let _first = connections.admit(peer("pc-1")).unwrap();
        let _second = connections.admit(peer("pc-1")).unwrap();
        let refused = connections.admit(peer("pc-1")).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("limits.max_connections_per_host = 2"),
            "{refused}"
        );
        assert_eq!(
            connections.counters.get("connections_refused_per_host_cap"),
            Some(1)
        );
        // Another host is not affected, and a closed connection frees its place.
        assert!(connections.admit(peer("pc-2")).is_ok());
        drop(_first);
        assert!(connections.admit(peer("pc-1")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_total_cap_the_idlest_connection_makes_room_and_busy_ones_never_do() {
        let connections = connections(2, 10);
        let busy = connections.admit(peer("agent")).unwrap();
        let _stream = busy.connection.stream_opened();
        tokio::time::advance(Duration::from_secs(1)).await;
        let idle = connections.admit(peer("idler")).unwrap();
        let newcomer = connections.admit(peer("newcomer")).unwrap();
        assert!(
            idle.connection.closed().is_cancelled(),
            "the idle one made room"
        );
        assert!(!busy.connection.closed().is_cancelled());
        let _newcomer_stream = newcomer.connection.stream_opened();
        let refused = connections.admit(peer("late")).unwrap_err();
        assert!(
            refused.to_string().contains("limits.max_connections = 2"),
            "{refused}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_revoked_connections_are_closed_by_the_sweep() {
        let connections = connections(100, 10);
        let revocations = RevocationList::new();
        let idle = connections.admit(peer("idler")).unwrap();
        let busy = connections.admit(peer("agent")).unwrap();
        let _stream = busy.connection.stream_opened();
        tokio::time::advance(Duration::from_secs(61)).await;
        connections.sweep(&revocations);
        assert!(idle.connection.closed().is_cancelled());
        assert!(!busy.connection.closed().is_cancelled());
        revocations.replace(HashMap::from([("agent".to_string(), 2_000)]));
        // The first sweep lets the streams say why; the next one closes.
        connections.sweep(&revocations);
        assert!(!busy.connection.closed().is_cancelled());
        connections.sweep(&revocations);
        assert!(busy.connection.closed().is_cancelled());
        assert_eq!(
            connections.counters.get("connections_closed_revoked"),
            Some(1)
        );
    }
}
