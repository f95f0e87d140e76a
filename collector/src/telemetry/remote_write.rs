//! The remote-write exporters' figures, read at each scrape: queue bytes and lag per
//! receiver, and samples sent, refused, given up and retried, labelled as Prometheus labels
//! its own remote-write metrics (`remote_name`, `url`).

use crate::remote_write::{ExporterStatus, RemoteWriteStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Registered into [`super::Telemetry`] when `[[remote_write]]` names a receiver.
#[derive(Debug)]
pub struct RemoteWriteReadings(pub RemoteWriteStatus);

/// A family: name, help, and how to read it off a receiver's figures.
type Family = (&'static str, &'static str, fn(&ExporterStatus) -> u64);

const COUNTERS: [Family; 4] = [
    (
        "vigil_remote_write_samples_sent",
        "Samples the receiver acknowledged.",
        |s| s.samples_sent,
    ),
    (
        "vigil_remote_write_samples_failed",
        "Samples the receiver refused for good (4xx other than 429).",
        |s| s.samples_failed,
    ),
    (
        "vigil_remote_write_samples_dropped",
        "Samples given up unsent because the queue outgrew max_queue_bytes.",
        |s| s.samples_dropped,
    ),
    (
        "vigil_remote_write_retries",
        "Requests sent again after a 5xx, a 429 or a network error.",
        |s| s.retries,
    ),
];

impl Collector for RemoteWriteReadings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let receivers = self.0.snapshot();
        let labels = |s: &ExporterStatus| [("remote_name", s.name.clone()), ("url", s.url.clone())];
        let mut metric = encoder.encode_descriptor(
            "vigil_remote_write_queue_bytes",
            "Log bytes kept for the receiver and not yet sent.",
            None,
            MetricType::Gauge,
        )?;
        for receiver in &receivers {
            ConstGauge::new(receiver.queue_bytes as i64)
                .encode(metric.encode_family(&labels(receiver))?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "vigil_remote_write_lag_seconds",
            "Age of the oldest sample the receiver has not acknowledged.",
            None,
            MetricType::Gauge,
        )?;
        for receiver in &receivers {
            ConstGauge::new(receiver.lag_seconds)
                .encode(metric.encode_family(&labels(receiver))?)?;
        }
        for (name, help, value) in COUNTERS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for receiver in &receivers {
                ConstCounter::new(value(receiver))
                    .encode(metric.encode_family(&labels(receiver))?)?;
            }
        }
        Ok(())
    }
}
