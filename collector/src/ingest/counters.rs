//! How often each ingest limit refused, slowed or closed something: one atomic counter per
//! limit, shared by the accept loop, the connection table and every session. Reachable from
//! `Collector::ingest_counters`, so that a metrics endpoint can expose them as they are.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter per limit. Each refusal is also logged once with the limit's config key.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// TCP connections closed at once because `limits.max_handshakes` handshakes were
    /// already under way.
    pub handshakes_refused_busy: AtomicU64,
    /// Authenticated connections refused at `limits.max_connections` (no idle one to close).
    pub connections_refused_total_cap: AtomicU64,
    /// Authenticated connections refused at `limits.max_connections_per_host`.
    pub connections_refused_per_host_cap: AtomicU64,
    /// Idle connections closed to make room for a new one at `limits.max_connections`.
    pub connections_evicted_idle: AtomicU64,
    /// Connections closed after `limits.idle_timeout` without a stream.
    pub connections_closed_idle: AtomicU64,
    /// Connections closed because their host was revoked.
    pub connections_closed_revoked: AtomicU64,
    /// Connections closed at `grpc.max_connection_age` plus the grace period.
    pub connections_closed_age: AtomicU64,
    /// `Report` streams refused because their host was revoked.
    pub streams_refused_revoked: AtomicU64,
    /// Batches not acknowledged because their host was revoked.
    pub batches_refused_revoked: AtomicU64,
    /// Batches refused at `limits.max_series_per_host`.
    pub batches_refused_series_per_host: AtomicU64,
    /// Batches held back by `grpc.max_batches_per_second` (slowed, not dropped).
    pub batches_slowed_batch_rate: AtomicU64,
    /// Batches held back by `limits.max_samples_per_second` (slowed, not dropped).
    pub batches_slowed_sample_rate: AtomicU64,
    /// Batches refused for samples older than `store.raw_retention`.
    pub batches_refused_too_old: AtomicU64,
    /// Batches refused for samples beyond the allowed clock skew.
    pub batches_refused_future: AtomicU64,
    /// Batches refused for a sequence number the spool cannot have made.
    pub batches_refused_impossible_seq: AtomicU64,
    /// Batches refused by validation (names, labels, values, sizes).
    pub batches_refused_invalid: AtomicU64,
    /// Spools told to start afresh: restored from a backup or snapshot, or cloned.
    pub spool_conflicts: AtomicU64,
}

impl IngestCounters {
    /// Adds one to `counter`.
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter with a metric-style name, for an exporter or a log line.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            (
                "handshakes_refused_busy",
                read(&self.handshakes_refused_busy),
            ),
            (
                "connections_refused_total_cap",
                read(&self.connections_refused_total_cap),
            ),
            (
                "connections_refused_per_host_cap",
                read(&self.connections_refused_per_host_cap),
            ),
            (
                "connections_evicted_idle",
                read(&self.connections_evicted_idle),
            ),
            (
                "connections_closed_idle",
                read(&self.connections_closed_idle),
            ),
            (
                "connections_closed_revoked",
                read(&self.connections_closed_revoked),
            ),
            ("connections_closed_age", read(&self.connections_closed_age)),
            (
                "streams_refused_revoked",
                read(&self.streams_refused_revoked),
            ),
            (
                "batches_refused_revoked",
                read(&self.batches_refused_revoked),
            ),
            (
                "batches_refused_series_per_host",
                read(&self.batches_refused_series_per_host),
            ),
            (
                "batches_slowed_batch_rate",
                read(&self.batches_slowed_batch_rate),
            ),
            (
                "batches_slowed_sample_rate",
                read(&self.batches_slowed_sample_rate),
            ),
            (
                "batches_refused_too_old",
                read(&self.batches_refused_too_old),
            ),
            ("batches_refused_future", read(&self.batches_refused_future)),
            (
                "batches_refused_impossible_seq",
                read(&self.batches_refused_impossible_seq),
            ),
            (
                "batches_refused_invalid",
                read(&self.batches_refused_invalid),
            ),
            ("spool_conflicts", read(&self.spool_conflicts)),
        ]
    }

    /// The value of one counter by its snapshot name (tests and diagnostics).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.snapshot()
            .into_iter()
            .find(|(counter, _)| *counter == name)
            .map(|(_, value)| value)
    }
}
