//! What `/metrics` reads at each scrape rather than mirrors: the store's sizes, the ingest
//! limits' counters, the event queues' lag (how far the alert engine and presence are
//! behind ingest) and the outbox's depth. Each is kept by its owner already; reading it
//! here costs a lock or a folder listing per scrape and nothing per batch.
//!
//! Help texts end with a period, as the registry writes those of the recorded metrics.
//! A reading that fails (a folder that cannot be listed) is logged and left out of that
//! scrape; the rest is still served.

use crate::ingest::counters::IngestCounters;
use crate::ingest::EventLag;
use crate::notify::Outbox;
use crate::store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The parts whose state `/metrics` reads at each scrape.
pub struct Readings {
    pub store: Store,
    pub counters: Arc<IngestCounters>,
    /// The event queues of the alert engine and presence.
    pub queues: Vec<Arc<EventLag>>,
    pub outbox: Arc<Outbox>,
}

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readings")
            .field("store", &self.store.data_dir())
            .field("queues", &self.queues.len())
            .finish()
    }
}

/// One family of values read now: a name, its help, its unit, and a value per label set.
struct Reading<'a, V> {
    name: &'a str,
    help: &'a str,
    unit: Option<Unit>,
    label: &'a str,
    values: Vec<(&'a str, V)>,
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Readings {
    fn ingest_counters(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = &self.counters;
        let families = [
            Reading {
                name: "vigil_ingest_rejected_batches",
                help: "Batches refused for good, by reason.",
                unit: None,
                label: "reason",
                values: vec![
                    ("invalid", read(&counters.batches_refused_invalid)),
                    (
                        "impossible_seq",
                        read(&counters.batches_refused_impossible_seq),
                    ),
                    ("too_old", read(&counters.batches_refused_too_old)),
                    ("future", read(&counters.batches_refused_future)),
                    (
                        "max_series_per_host",
                        read(&counters.batches_refused_series_per_host),
                    ),
                    ("revoked", read(&counters.batches_refused_revoked)),
                ],
            },
            Reading {
                name: "vigil_ingest_slowed_batches",
                help: "Batches held back (not dropped) by a rate limit, by limit.",
                unit: None,
                label: "limit",
                values: vec![
                    (
                        "max_batches_per_second",
                        read(&counters.batches_slowed_batch_rate),
                    ),
                    (
                        "max_samples_per_second",
                        read(&counters.batches_slowed_sample_rate),
                    ),
                ],
            },
            Reading {
                name: "vigil_ingest_refused_connections",
                help: "Agent connections refused, by the limit or reason.",
                unit: None,
                label: "reason",
                values: vec![
                    ("max_handshakes", read(&counters.handshakes_refused_busy)),
                    (
                        "max_connections",
                        read(&counters.connections_refused_total_cap),
                    ),
                    (
                        "max_connections_per_host",
                        read(&counters.connections_refused_per_host_cap),
                    ),
                    ("revoked_stream", read(&counters.streams_refused_revoked)),
                ],
            },
            Reading {
                name: "vigil_ingest_closed_connections",
                help: "Agent connections the collector closed, by reason.",
                unit: None,
                label: "reason",
                values: vec![
                    ("idle", read(&counters.connections_closed_idle)),
                    ("evicted_idle", read(&counters.connections_evicted_idle)),
                    ("revoked", read(&counters.connections_closed_revoked)),
                    ("max_connection_age", read(&counters.connections_closed_age)),
                ],
            },
        ];
        for family in families {
            let mut metric = encoder.encode_descriptor(
                family.name,
                family.help,
                family.unit.as_ref(),
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (value, count) in family.values {
                ConstCounter::new(count).encode(metric.encode_family(&[(family.label, value)])?)?;
            }
        }
        counter(
            encoder,
            "vigil_ingest_spool_conflicts",
            "Agent spools told to start afresh (restored from a backup or cloned).",
            read(&counters.spool_conflicts),
        )
    }

    fn store(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = match self.store.gauges() {
            Ok(gauges) => gauges,
            Err(error) => {
                tracing::warn!(%error, "/metrics: reading the store's sizes failed; they are left out of this scrape");
                return Ok(());
            }
        };
        let bytes = Some(Unit::Bytes);
        for (name, help, unit, value) in [
            (
                "vigil_head_series",
                "Series with samples in memory, not yet sealed.",
                None,
                gauges.head_series as i64,
            ),
            (
                "vigil_head_samples",
                "Samples in memory, not yet sealed.",
                None,
                gauges.head_samples as i64,
            ),
            (
                "vigil_head",
                "Memory the in-memory head uses, approximately.",
                bytes.clone(),
                gauges.head_bytes as i64,
            ),
            (
                "vigil_wal",
                "Size of the write-ahead log's segments on disk.",
                bytes.clone(),
                gauges.wal_bytes as i64,
            ),
            (
                "vigil_wal_segments",
                "Write-ahead log segments on disk.",
                None,
                gauges.wal_segments as i64,
            ),
            (
                "vigil_sealed",
                "Size of the sealed chunk and rollup files on disk.",
                bytes.clone(),
                gauges.sealed_bytes as i64,
            ),
            (
                "vigil_store_write_failing",
                "1 while the write-ahead log refuses writes (full disk, I/O error), else 0.",
                None,
                i64::from(gauges.write_failing),
            ),
        ] {
            let metric = encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(value).encode(metric)?;
        }
        Ok(())
    }

    fn queues(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut depth = encoder.encode_descriptor(
            "vigil_event_queue_depth",
            "Ingest events waiting for a consumer (alert_engine, presence): its lag in events.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for queue in &self.queues {
            ConstGauge::new(queue.depth() as i64)
                .encode(depth.encode_family(&[("consumer", queue.name)])?)?;
        }
        let seconds = Unit::Seconds;
        let mut wait = encoder.encode_descriptor(
            "vigil_event_queue_lag",
            "How long the oldest event waiting for a consumer has waited (0 when none waits).",
            Some(&seconds),
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for queue in &self.queues {
            ConstGauge::new(queue.oldest_wait().as_secs_f64())
                .encode(wait.encode_family(&[("consumer", queue.name)])?)?;
        }
        let mut waits = encoder.encode_descriptor(
            "vigil_event_queue_full_waits",
            "Ingest publishes that found a consumer's queue full and waited (acknowledgements slowed).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for queue in &self.queues {
            ConstCounter::new(read(&queue.full_waits))
                .encode(waits.encode_family(&[("consumer", queue.name)])?)?;
        }
        Ok(())
    }

    fn outbox(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (pending, dead) = match self.outbox.depth() {
            Ok(depth) => depth,
            Err(error) => {
                tracing::warn!(%error, "/metrics: counting the outbox failed; it is left out of this scrape");
                return Ok(());
            }
        };
        for (name, help, value) in [
            (
                "vigil_outbox_pending_deliveries",
                "Notifications waiting in the outbox to be delivered or retried.",
                pending,
            ),
            (
                "vigil_outbox_dead_deliveries",
                "Notifications given up on (dead letters) and kept for a retry by hand.",
                dead,
            ),
        ] {
            let metric = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(value as i64).encode(metric)?;
        }
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    ConstCounter::new(value).encode(metric)
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.store(&mut encoder)?;
        self.queues(&mut encoder)?;
        self.outbox(&mut encoder)?;
        self.ingest_counters(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::identity::PeerIdentity;
    use crate::ingest::{EventBus, IngestEvent};
    use crate::store::{SeriesSamples, StoreConfig, WriterId};
    use crate::telemetry::Telemetry;
    use vigil_proto::model::{Labels, Sample};

    fn value_of(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn a_scrape_reads_the_store_the_queues_and_the_outbox_as_they_are_now() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("data"))).unwrap();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let series = |host: &str| SeriesSamples {
            labels: Labels::from_pairs([("__name__", "up"), ("host", host), ("client", "acme")]),
            samples: vec![Sample {
                timestamp_ms: now_ms,
                value: 1.0,
            }],
        };
        let writer = WriterId {
            host: "pc-1".into(),
            spool_id: 1,
        };
        store
            .append(&writer, 1, &[series("pc-1"), series("pc-2")])
            .unwrap();
        // An engine that reads nothing: three events wait in its queue.
        let bus = EventBus::new();
        let engine = bus.consume("alert_engine", 8);
        for n in 0..3 {
            bus.publish(IngestEvent::Disconnected {
                peer: PeerIdentity {
                    host: format!("pc-{n}"),
                    client: "acme".into(),
                    issued_at_ms: 0,
                    expires_at_ms: i64::MAX,
                },
            })
            .await;
        }
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        // Depth is a listing: a pending file counts without being read.
        std::fs::write(outbox.dir().join("pending/a.json"), "{}").unwrap();
        std::fs::write(outbox.dir().join("pending/b.json"), "{}").unwrap();
        let counters = Arc::new(IngestCounters::default());
        IngestCounters::add(&counters.batches_refused_too_old);
        let telemetry = Telemetry::new();
        telemetry.register_collector(Readings {
            store: store.clone(),
            counters,
            queues: vec![engine.lag()],
            outbox,
        });

        let text = telemetry.encode().unwrap();
        assert_eq!(value_of(&text, "vigil_head_series"), 2.0);
        assert!(value_of(&text, "vigil_wal_bytes") > 0.0);
        assert_eq!(value_of(&text, "vigil_store_write_failing"), 0.0);
        assert_eq!(
            value_of(&text, "vigil_event_queue_depth{consumer=\"alert_engine\"}"),
            3.0
        );
        assert_eq!(value_of(&text, "vigil_outbox_pending_deliveries"), 2.0);
        assert_eq!(value_of(&text, "vigil_outbox_dead_deliveries"), 0.0);
        assert_eq!(
            value_of(
                &text,
                "vigil_ingest_rejected_batches_total{reason=\"too_old\"}"
            ),
            1.0
        );
        assert!(text.contains("# HELP vigil_wal_bytes Size of the write-ahead log's segments on disk.\n# TYPE vigil_wal_bytes gauge\n"));
        drop(engine);
    }
}
