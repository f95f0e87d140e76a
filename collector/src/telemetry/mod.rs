//! The collector's own health in the Prometheus text format, served at `GET /metrics`.
//!
//! [`Telemetry`] is one registry (`prometheus-client`) behind a cheaply clonable handle.
//! What happens as it happens is recorded into it by whoever sees it: ingest sessions
//! (batches and samples stored, acknowledgement latency, connected agents), the store's
//! write-ahead log (fsync time), the notifier (attempts and failures per channel) and the
//! alert engine (evaluation time). What other parts already know (the store's sizes, the
//! ingest refusal counters, the event queues' lag, the outbox) is not mirrored: [`readings`]
//! reads it at every scrape. Another exporter (remote_write) registers its own metrics with
//! [`Telemetry::register`] or a scrape-time [`Collector`] with
//! [`Telemetry::register_collector`].
//!
//! This module decides nothing and serves nothing: `http/metrics.rs` is the route, and
//! `serve` hands the handle to each part.

pub mod readings;
mod remote_write;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// What another part registers with: the metric types and units of the registry.
pub use prometheus_client::{metrics, registry::Unit as MetricUnit};
pub use remote_write::RemoteWriteReadings;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("/metrics: encoding the metrics as Prometheus text failed; a metric registered with Telemetry::register writes something the encoder refuses")]
    Encode(#[from] std::fmt::Error),
}

/// What started a judgement of the alert engine, a label of
/// `vigil_alert_evaluation_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evaluation {
    /// The schedule (`[alerts] evaluation_interval`): forecasts, silence, staleness.
    Schedule,
    /// A stored batch, judged as it arrives.
    Batch,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TriggerLabel {
    trigger: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics recorded as things happen.
#[derive(Debug)]
struct Recorded {
    ingest_samples: Counter,
    ingest_batches: Counter,
    ingest_duplicate_batches: Counter,
    ack_seconds: Histogram,
    connected_agents: Gauge,
    wal_fsync_seconds: Histogram,
    delivery_attempts: Family<ChannelLabel, Counter>,
    delivery_failures: Family<ChannelLabel, Counter>,
    evaluation_seconds: HistogramFamily<TriggerLabel>,
}

/// Acknowledgement latency: half a millisecond to about 16 s.
fn ack_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// fsync and rule evaluation: a tenth of a millisecond to about 6.5 s.
fn short_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The collector's metrics. Cheap to clone: clones record into one registry.
#[derive(Clone, Debug)]
pub struct Telemetry {
    recorded: Arc<Recorded>,
    registry: Arc<Mutex<Registry>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry with every recorded metric at zero, the build's version and the start
    /// time of this process.
    pub fn new() -> Self {
        let recorded = Recorded {
            ingest_samples: Counter::default(),
            ingest_batches: Counter::default(),
            ingest_duplicate_batches: Counter::default(),
            ack_seconds: ack_buckets(),
            connected_agents: Gauge::default(),
            wal_fsync_seconds: short_buckets(),
            delivery_attempts: Family::default(),
            delivery_failures: Family::default(),
            evaluation_seconds: HistogramFamily::new_with_constructor(short_buckets),
        };
        let mut registry = Registry::default();
        registry.register(
            "vigil_ingest_samples",
            "Samples stored from agents' batches (duplicates not counted)",
            recorded.ingest_samples.clone(),
        );
        registry.register(
            "vigil_ingest_batches",
            "Batches stored and acknowledged (duplicates not counted)",
            recorded.ingest_batches.clone(),
        );
        registry.register(
            "vigil_ingest_duplicate_batches",
            "Batches received again after a reconnect and acknowledged without storing",
            recorded.ingest_duplicate_batches.clone(),
        );
        registry.register_with_unit(
            "vigil_ingest_ack_duration",
            "Time from receiving a batch to sending its acknowledgement",
            Unit::Seconds,
            recorded.ack_seconds.clone(),
        );
        registry.register(
            "vigil_connected_agents",
            "Agent report streams open past their hello",
            recorded.connected_agents.clone(),
        );
        registry.register_with_unit(
            "vigil_wal_fsync_duration",
            "Time of each fsync of a write-ahead log group commit",
            Unit::Seconds,
            recorded.wal_fsync_seconds.clone(),
        );
        registry.register(
            "vigil_notify_delivery_attempts",
            "Delivery attempts per notification channel",
            recorded.delivery_attempts.clone(),
        );
        registry.register(
            "vigil_notify_delivery_failures",
            "Delivery attempts that failed, per notification channel",
            recorded.delivery_failures.clone(),
        );
        registry.register_with_unit(
            "vigil_alert_evaluation_duration",
            "Time the alert engine spent judging, by what started it (a stored batch, the schedule)",
            Unit::Seconds,
            recorded.evaluation_seconds.clone(),
        );
        registry.register(
            "vigil_build",
            "The collector's version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let started: Gauge<f64, AtomicU64> = Gauge::default();
        started.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
        );
        // The name every Prometheus client library gives it, so uptime panels work as is.
        registry.register_with_unit(
            "process_start_time",
            "Start time of the collector process since the Unix epoch",
            Unit::Seconds,
            started,
        );
        Self {
            recorded: Arc::new(recorded),
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Adds a metric of another part (remote_write's queue, for one). `name` starts with
    /// `vigil_` and leaves out the unit and `_total`, which the encoder appends.
    pub fn register(&self, name: &str, help: &str, unit: Option<Unit>, metric: impl Metric) {
        let mut registry = self.lock();
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, metric),
            None => registry.register(name, help, metric),
        }
    }

    /// Adds metrics read at every scrape from what another part already keeps.
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// Everything, in the Prometheus text format (version 0.0.4). Scrape-time readings do
    /// file-system work: call off the async threads.
    pub fn encode(&self) -> Result<String, TelemetryError> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.lock())?;
        Ok(text)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch of `n_samples` samples is stored.
    pub fn batch_stored(&self, n_samples: usize) {
        self.recorded.ingest_batches.inc();
        self.recorded.ingest_samples.inc_by(n_samples as u64);
    }

    /// A batch the store already had is acknowledged again.
    pub fn batch_duplicate(&self) {
        self.recorded.ingest_duplicate_batches.inc();
    }

    /// A batch was acknowledged `after` it was received.
    pub fn batch_acknowledged(&self, after: Duration) {
        self.recorded.ack_seconds.observe(after.as_secs_f64());
    }

    /// An agent's stream is open past its hello until the guard is dropped.
    pub fn agent_connected(&self) -> ConnectedAgent {
        self.recorded.connected_agents.inc();
        ConnectedAgent {
            recorded: self.recorded.clone(),
        }
    }

    /// What the store calls with each write-ahead log fsync's duration.
    pub fn fsync_observer(&self) -> crate::store::FsyncObserver {
        let recorded = self.recorded.clone();
        Arc::new(move |took: Duration| recorded.wal_fsync_seconds.observe(took.as_secs_f64()))
    }

    /// One delivery attempt to `channel`, and whether it was accepted.
    pub fn delivery_attempted(&self, channel: &str, accepted: bool) {
        let label = ChannelLabel {
            channel: channel.to_owned(),
        };
        self.recorded.delivery_attempts.get_or_create(&label).inc();
        if !accepted {
            self.recorded.delivery_failures.get_or_create(&label).inc();
        }
    }

    /// The alert engine judged for `took`.
    pub fn evaluated(&self, trigger: Evaluation, took: Duration) {
        let trigger = match trigger {
            Evaluation::Schedule => "schedule",
            Evaluation::Batch => "batch",
        };
        self.recorded
            .evaluation_seconds
            .get_or_create(&TriggerLabel { trigger })
            .observe(took.as_secs_f64());
    }
}

/// Counts one connected agent while it lives.
#[derive(Debug)]
pub struct ConnectedAgent {
    recorded: Arc<Recorded>,
}

impl Drop for ConnectedAgent {
    fn drop(&mut self) {
        self.recorded.connected_agents.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn recorded_metrics_appear_with_base_units_help_and_type() {
        let telemetry = Telemetry::new();
        telemetry.batch_stored(7);
        telemetry.batch_acknowledged(Duration::from_millis(3));
        telemetry.delivery_attempted("ops", false);
        telemetry.evaluated(Evaluation::Schedule, Duration::from_millis(1));
        let connected = telemetry.agent_connected();
        let text = telemetry.encode().unwrap();
        assert_eq!(value_of(&text, "vigil_ingest_samples_total"), Some("7"));
        assert_eq!(value_of(&text, "vigil_ingest_batches_total"), Some("1"));
        assert_eq!(
            value_of(&text, "vigil_ingest_ack_duration_seconds_count"),
            Some("1")
        );
        assert_eq!(
            value_of(
                &text,
                "vigil_notify_delivery_failures_total{channel=\"ops\"}"
            ),
            Some("1")
        );
        assert_eq!(
            value_of(
                &text,
                "vigil_alert_evaluation_duration_seconds_count{trigger=\"schedule\"}"
            ),
            Some("1")
        );
        assert_eq!(value_of(&text, "vigil_connected_agents"), Some("1"));
        assert!(text.contains("# TYPE vigil_ingest_samples_total counter\n"));
        assert!(text.contains("# HELP vigil_ingest_samples_total "));
        assert!(text.contains(&format!(
            "vigil_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        drop(connected);
        let text = telemetry.encode().unwrap();
        assert_eq!(value_of(&text, "vigil_connected_agents"), Some("0"));
    }

    #[test]
    fn another_part_registers_its_own_metric_into_the_same_text() {
        let telemetry = Telemetry::new();
        let depth: Gauge = Gauge::default();
        telemetry.register(
            "vigil_remote_write_queue",
            "Samples waiting to be sent",
            None,
            depth.clone(),
        );
        depth.set(42);
        let text = telemetry.clone().encode().unwrap();
        assert_eq!(value_of(&text, "vigil_remote_write_queue"), Some("42"));
    }
}
