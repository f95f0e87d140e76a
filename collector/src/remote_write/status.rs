//! How each remote-write receiver is doing, for `/metrics` and tests: unsent bytes, lag,
//! and samples sent, failed and dropped. The shards update atomics; [`RemoteWriteStatus`]
//! reads them without locking anything the senders hold.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// One receiver's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterStatus {
    /// The receiver's name (`[[remote_write]] name`, or its host and port).
    pub name: String,
    pub url: String,
    /// Log bytes kept for it and not yet sent (the largest of its shards').
    pub queue_bytes: u64,
    /// Age of the oldest sample it has not yet acknowledged, in seconds; 0 when it is up
    /// to date.
    pub lag_seconds: f64,
    /// Samples the receiver acknowledged (2xx).
    pub samples_sent: u64,
    /// Samples the receiver refused for good (4xx other than 429), not retried.
    pub samples_failed: u64,
    /// Samples given up unsent because the queue outgrew `max_queue_bytes`.
    pub samples_dropped: u64,
    /// Requests sent again after a 5xx, a 429 or a network error.
    pub retries: u64,
}

/// The live counters of one receiver, shared by its shards.
#[derive(Debug)]
pub(super) struct ExporterCounters {
    pub name: String,
    pub url: String,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_dropped: AtomicU64,
    pub retries: AtomicU64,
    /// Per shard: unsent bytes.
    pub queue_bytes: Vec<AtomicU64>,
    /// Per shard: timestamp (ms) of the oldest sample read and not yet acknowledged, or
    /// `i64::MAX` when nothing waits.
    pub oldest_unsent_ms: Vec<AtomicI64>,
}

impl ExporterCounters {
    pub fn new(name: String, url: String, shards: usize) -> Self {
        Self {
            name,
            url,
            samples_sent: AtomicU64::new(0),
            samples_failed: AtomicU64::new(0),
            samples_dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            queue_bytes: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            oldest_unsent_ms: (0..shards).map(|_| AtomicI64::new(i64::MAX)).collect(),
        }
    }

    fn snapshot(&self, now_ms: i64) -> ExporterStatus {
        let oldest = self
            .oldest_unsent_ms
            .iter()
            .map(|ms| ms.load(Ordering::Relaxed))
            .min()
            .unwrap_or(i64::MAX);
        ExporterStatus {
            name: self.name.clone(),
            url: self.url.clone(),
            queue_bytes: self
                .queue_bytes
                .iter()
                .map(|bytes| bytes.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0),
            lag_seconds: if oldest == i64::MAX {
                0.0
            } else {
                (now_ms.saturating_sub(oldest)).max(0) as f64 / 1000.0
            },
            samples_sent: self.samples_sent.load(Ordering::Relaxed),
            samples_failed: self.samples_failed.load(Ordering::Relaxed),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// Every receiver's figures, cheap to clone; what `/metrics` registers.
#[derive(Debug, Clone, Default)]
pub struct RemoteWriteStatus {
    pub(super) exporters: Vec<Arc<ExporterCounters>>,
}

impl RemoteWriteStatus {
    /// Each receiver's figures now, in config order.
    pub fn snapshot(&self) -> Vec<ExporterStatus> {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        self.exporters
            .iter()
            .map(|exporter| exporter.snapshot(now_ms))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_render_as_prometheus_text_labelled_by_receiver() {
        let counters = Arc::new(ExporterCounters::new(
            "vm".to_owned(),
            "http://127.0.0.1:8428/api/v1/write".to_owned(),
            2,
        ));
        counters.samples_sent.store(1200, Ordering::Relaxed);
        counters.queue_bytes[1].store(4096, Ordering::Relaxed);
        counters.oldest_unsent_ms[0].store(0, Ordering::Relaxed);
        let status = RemoteWriteStatus {
            exporters: vec![counters],
        };
        let snapshot = status.snapshot();
        assert_eq!(snapshot[0].queue_bytes, 4096, "the largest shard's");
        assert!(snapshot[0].lag_seconds > 1e9, "a sample from 1970 waits");
        let telemetry = crate::telemetry::Telemetry::new();
        telemetry.register_collector(crate::telemetry::RemoteWriteReadings(status));
        let text = telemetry.encode().unwrap();
        assert!(text.contains(
            "vigil_remote_write_samples_sent_total{remote_name=\"vm\",url=\"http://127.0.0.1:8428/api/v1/write\"} 1200"
        ), "{text}");
        assert!(
            text.contains("# TYPE vigil_remote_write_queue_bytes gauge"),
            "{text}"
        );
    }
}
