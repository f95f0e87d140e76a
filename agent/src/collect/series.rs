//! How a metric family writes its series for one tick: one sample per series at the tick's
//! timestamp, label values cut to the protocol's limit, and never the same (name, labels)
//! twice — the collector would refuse or silently merge such a batch.
//!
//! Families decide *which* series to write and make their label values unique; this sink
//! is the last guard, not the place where a family's naming is designed.

use std::collections::HashSet;
use vigil_proto::limits::MAX_VALUE_BYTES;
use vigil_proto::model::{Labels, Sample, Series};

/// The series one family produced in one tick.
#[derive(Debug)]
pub(crate) struct SeriesSink {
    timestamp_ms: i64,
    series: Vec<Series>,
    written: HashSet<(&'static str, Labels)>,
}

impl SeriesSink {
    pub(crate) fn new(timestamp_ms: i64) -> Self {
        Self {
            timestamp_ms,
            series: Vec::new(),
            written: HashSet::new(),
        }
    }

    /// Writes one series with one sample. Returns false, writing nothing, when the value is
    /// not a finite number (a NaN would only hide the gap) or when the same name and labels
    /// were already written this tick.
    pub(crate) fn push(
        &mut self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) -> bool {
        debug_assert!(vigil_proto::convert::is_valid_metric_name(name), "{name}");
        debug_assert!(labels
            .iter()
            .all(|(label_name, _)| vigil_proto::convert::is_valid_label_name(label_name)));
        if !value.is_finite() {
            tracing::debug!(
                metric = name,
                value,
                "skipping a sample that is not a finite number"
            );
            return false;
        }
        let labels =
            Labels::from_pairs(labels.iter().map(|(label_name, label_value)| {
                (*label_name, truncate_to_value_limit(label_value))
            }));
        if !self.written.insert((name, labels.clone())) {
            tracing::debug!(metric = name, %labels, "skipping a series already written this tick");
            return false;
        }
        self.series.push(Series {
            name: name.to_owned(),
            labels,
            samples: vec![Sample {
                timestamp_ms: self.timestamp_ms,
                value,
            }],
        });
        true
    }

    pub(crate) fn into_series(self) -> Vec<Series> {
        self.series
    }
}

/// Cuts `text` to at most [`MAX_VALUE_BYTES`] bytes on a character boundary, so a very long
/// mount point or process name still fits the protocol instead of getting the batch refused.
pub(crate) fn truncate_to_value_limit(text: &str) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_gets_exactly_one_sample_at_the_tick_timestamp() {
        let mut sink = SeriesSink::new(1_700_000_000_000);
        assert!(sink.push("system_uptime_seconds", &[], 42.0));
        assert!(sink.push("system_memory_usage_bytes", &[("state", "used")], 1.0));

        let series = sink.into_series();
        assert_eq!(series.len(), 2);
        for one in &series {
            assert_eq!(
                one.samples,
                vec![Sample {
                    timestamp_ms: 1_700_000_000_000,
                    value: one.samples[0].value
                }]
            );
        }
        assert_eq!(series[1].labels.get("state"), Some("used"));
    }

    #[test]
    fn refuses_the_same_name_and_labels_twice_in_one_tick() {
        let mut sink = SeriesSink::new(0);
        assert!(sink.push("m", &[("device", "eth0"), ("direction", "receive")], 1.0));
        assert!(!sink.push("m", &[("direction", "receive"), ("device", "eth0")], 2.0));
        assert!(sink.push("m", &[("device", "eth0"), ("direction", "transmit")], 3.0));

        let series = sink.into_series();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].samples[0].value, 1.0);
    }

    #[test]
    fn skips_values_that_are_not_finite() {
        let mut sink = SeriesSink::new(0);
        assert!(!sink.push("system_temperature_celsius", &[("sensor", "a")], f64::NAN));
        assert!(!sink.push(
            "system_temperature_celsius",
            &[("sensor", "b")],
            f64::INFINITY
        ));
        assert!(sink.into_series().is_empty());
    }

    #[test]
    fn long_label_values_are_cut_on_a_character_boundary() {
        // 'é' is two bytes, so 300 of them are 600 bytes and byte 512 falls between two.
        let long_value = "é".repeat(300);
        let cut = truncate_to_value_limit(&long_value);
        assert_eq!(cut.len(), MAX_VALUE_BYTES);
        assert!(long_value.starts_with(&cut));

        let long_odd_value = format!("x{}", "é".repeat(300));
        let cut = truncate_to_value_limit(&long_odd_value);
        assert_eq!(cut.len(), MAX_VALUE_BYTES - 1);

        let mut sink = SeriesSink::new(0);
        sink.push("m", &[("mountpoint", &long_value)], 1.0);
        let series = sink.into_series();
        assert_eq!(
            series[0].labels.get("mountpoint").unwrap().len(),
            MAX_VALUE_BYTES
        );
    }

    #[test]
    fn short_values_are_kept_whole() {
        assert_eq!(truncate_to_value_limit("/var/lib"), "/var/lib");
        assert_eq!(truncate_to_value_limit(""), "");
    }
}
