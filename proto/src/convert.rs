//! Conversions between the wire ([`crate::pb`]) and the domain ([`crate::model`]).
//!
//! Domain → wire is infallible. Wire → domain is `TryFrom` and validates everything against
//! [`crate::limits`]: a message from the network is untrusted until it has passed here. Each
//! error names the place (series index, metric, label) and what would be accepted.

use crate::limits::*;
use crate::model::{
    AgentConfig, AgentMessage, Batch, CollectorMessage, Disk, GoodbyeReason, Hello, Inventory,
    Labels, LogExcerpt, Sample, Series, SpoolConflict,
};
use crate::pb;

/// Why a message from the network was refused. The text is sent back to the agent as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(String);

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// Prefixes the place where the problem was found.
    fn at(self, place: impl std::fmt::Display) -> Self {
        Self(format!("{place}: {}", self.0))
    }
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    is_valid_identifier(name, true)
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    is_valid_identifier(name, false)
}

fn is_valid_identifier(name: &str, allow_colon: bool) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let head_ok = first.is_ascii_alphabetic() || first == '_' || (allow_colon && first == ':');
    head_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':'))
}

fn check_metric_name(name: &str) -> Result<(), ValidationError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(ValidationError::new(format!(
            "metric name is {} bytes, over the limit of {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if !is_valid_metric_name(name) {
        return Err(ValidationError::new(format!(
            "metric name {name:?} is not valid (letters, digits, '_' and ':', not starting with a digit)"
        )));
    }
    Ok(())
}

fn check_label(name: &str, value: &str) -> Result<(), ValidationError> {
    if name.len() > MAX_NAME_BYTES || !is_valid_label_name(name) {
        return Err(ValidationError::new(format!(
            "label name {:?} is not valid (letters, digits and '_', not starting with a digit, at most {MAX_NAME_BYTES} bytes)",
            truncate(name)
        )));
    }
    if name.starts_with("__") {
        return Err(ValidationError::new(format!(
            "label name {name:?} is reserved (names starting with '__' are internal)"
        )));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(ValidationError::new(format!(
            "label {name:?} is set by the collector from the agent's certificate and may not be sent"
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(ValidationError::new(format!(
            "label {name:?} value is {} bytes, over the limit of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ValidationError::new(format!(
            "{field} is {} bytes, over the limit of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// Shortens untrusted text before it is echoed in an error.
fn truncate(text: &str) -> String {
    shorten(text, 64)
}

fn shorten(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---- domain → wire ----

impl From<&Sample> for pb::Sample {
    fn from(sample: &Sample) -> Self {
        Self {
            timestamp_ms: sample.timestamp_ms,
            value: sample.value,
        }
    }
}

impl From<&Series> for pb::Series {
    fn from(series: &Series) -> Self {
        Self {
            name: series.name.clone(),
            labels: series
                .labels
                .iter()
                .map(|(name, value)| pb::Label {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            samples: series.samples.iter().map(pb::Sample::from).collect(),
        }
    }
}

impl From<&Batch> for pb::Batch {
    fn from(batch: &Batch) -> Self {
        Self {
            seq: batch.seq,
            series: batch.series.iter().map(pb::Series::from).collect(),
            log_excerpts: batch
                .log_excerpts
                .iter()
                .map(|excerpt| pb::LogExcerpt {
                    log: excerpt.log.clone(),
                    pattern: excerpt.pattern.clone(),
                    file: excerpt.file.clone(),
                    line: excerpt.line.clone(),
                    timestamp_ms: excerpt.timestamp_ms,
                })
                .collect(),
        }
    }
}

impl From<&Inventory> for pb::Inventory {
    fn from(inventory: &Inventory) -> Self {
        Self {
            hostname: inventory.hostname.clone(),
            os_name: inventory.os_name.clone(),
            os_version: inventory.os_version.clone(),
            kernel_version: inventory.kernel_version.clone(),
            cpu_model: inventory.cpu_model.clone(),
            cpu_cores: inventory.cpu_cores,
            memory_bytes: inventory.memory_bytes,
            disks: inventory
                .disks
                .iter()
                .map(|disk| pb::Disk {
                    mountpoint: disk.mountpoint.clone(),
                    device: disk.device.clone(),
                    filesystem: disk.filesystem.clone(),
                    total_bytes: disk.total_bytes,
                })
                .collect(),
            agent_version: inventory.agent_version.clone(),
            boot_time_unix_seconds: inventory.boot_time_unix_seconds,
            architecture: inventory.architecture.clone(),
        }
    }
}

impl From<GoodbyeReason> for pb::goodbye::Reason {
    fn from(reason: GoodbyeReason) -> Self {
        match reason {
            GoodbyeReason::Unspecified => Self::Unspecified,
            GoodbyeReason::Shutdown => Self::Shutdown,
            GoodbyeReason::Reboot => Self::Reboot,
            GoodbyeReason::Sleep => Self::Sleep,
            GoodbyeReason::ServiceStop => Self::ServiceStop,
        }
    }
}

impl From<&AgentMessage> for pb::AgentMessage {
    fn from(message: &AgentMessage) -> Self {
        use pb::agent_message::Body;
        let body = match message {
            AgentMessage::Hello(hello) => Body::Hello(pb::Hello {
                inventory: Some(pb::Inventory::from(&hello.inventory)),
                spool_id: hello.spool_id,
                interval_seconds: hello.interval_seconds,
                next_seq: hello.next_seq,
            }),
            AgentMessage::Batch(batch) => Body::Batch(pb::Batch::from(batch)),
            AgentMessage::Goodbye(reason) => Body::Goodbye(pb::Goodbye {
                reason: pb::goodbye::Reason::from(*reason) as i32,
            }),
        };
        Self { body: Some(body) }
    }
}

impl From<&CollectorMessage> for pb::CollectorMessage {
    fn from(message: &CollectorMessage) -> Self {
        use pb::collector_message::Body;
        let body = match message {
            CollectorMessage::Ack { seq } => Body::Ack(pb::Ack { seq: *seq }),
            CollectorMessage::Reject { seq, reason } => Body::Reject(pb::Reject {
                seq: *seq,
                reason: reason.clone(),
            }),
            CollectorMessage::Config(config) => Body::Config(pb::AgentConfig {
                interval_seconds: config.interval_seconds,
            }),
            CollectorMessage::SpoolConflict(conflict) => Body::SpoolConflict(pb::SpoolConflict {
                spool_id: conflict.spool_id,
                stored_seq: conflict.stored_seq,
                next_seq: conflict.next_seq,
            }),
        };
        Self { body: Some(body) }
    }
}

// ---- wire → domain, validated ----

impl TryFrom<pb::Series> for Series {
    type Error = ValidationError;

    fn try_from(series: pb::Series) -> Result<Self, Self::Error> {
        check_metric_name(&series.name)?;
        if series.labels.len() > MAX_LABELS_PER_SERIES {
            return Err(ValidationError::new(format!(
                "{} labels, over the limit of {MAX_LABELS_PER_SERIES}",
                series.labels.len()
            )));
        }
        let mut labels = Labels::new();
        for label in series.labels {
            check_label(&label.name, &label.value)?;
            if labels.get(&label.name).is_some() {
                return Err(ValidationError::new(format!(
                    "label {:?} appears twice",
                    label.name
                )));
            }
            labels.insert(label.name, label.value);
        }
        let mut samples = Vec::with_capacity(series.samples.len());
        for sample in series.samples {
            if sample.timestamp_ms <= 0 {
                return Err(ValidationError::new(format!(
                    "sample timestamp {} is not after 1970 (milliseconds since the Unix epoch expected)",
                    sample.timestamp_ms
                )));
            }
            samples.push(Sample {
                timestamp_ms: sample.timestamp_ms,
                value: sample.value,
            });
        }
        Ok(Self {
            name: series.name,
            labels,
            samples,
        })
    }
}

impl TryFrom<pb::Batch> for Batch {
    type Error = ValidationError;

    fn try_from(batch: pb::Batch) -> Result<Self, Self::Error> {
        let seq = batch.seq;
        let at_batch = |error: ValidationError| error.at(format!("batch {seq}"));
        if seq == 0 {
            return Err(ValidationError::new(
                "sequence number 0 is not valid (batches start at 1)",
            )
            .at(format!("batch {seq}")));
        }
        if batch.series.len() > MAX_SERIES_PER_BATCH {
            return Err(at_batch(ValidationError::new(format!(
                "{} series, over the limit of {MAX_SERIES_PER_BATCH}",
                batch.series.len()
            ))));
        }
        let n_samples: usize = batch.series.iter().map(|s| s.samples.len()).sum();
        if n_samples > MAX_SAMPLES_PER_BATCH {
            return Err(at_batch(ValidationError::new(format!(
                "{n_samples} samples, over the limit of {MAX_SAMPLES_PER_BATCH}"
            ))));
        }
        let mut series = Vec::with_capacity(batch.series.len());
        for (index, wire) in batch.series.into_iter().enumerate() {
            let name = truncate(&wire.name);
            let converted = Series::try_from(wire)
                .map_err(|error| at_batch(error.at(format!("series {index} ({name})"))))?;
            series.push(converted);
        }
        if batch.log_excerpts.len() > MAX_LOG_EXCERPTS_PER_BATCH {
            return Err(at_batch(ValidationError::new(format!(
                "{} log excerpts, over the limit of {MAX_LOG_EXCERPTS_PER_BATCH}",
                batch.log_excerpts.len()
            ))));
        }
        let mut log_excerpts = Vec::with_capacity(batch.log_excerpts.len());
        for (index, wire) in batch.log_excerpts.into_iter().enumerate() {
            let at_excerpt =
                |error: ValidationError| at_batch(error.at(format!("log excerpt {index}")));
            for (field, value) in [
                ("log", &wire.log),
                ("pattern", &wire.pattern),
                ("file", &wire.file),
                ("line", &wire.line),
            ] {
                check_text(field, value).map_err(at_excerpt)?;
            }
            log_excerpts.push(LogExcerpt {
                log: wire.log,
                pattern: wire.pattern,
                file: wire.file,
                line: wire.line,
                timestamp_ms: wire.timestamp_ms,
            });
        }
        Ok(Self {
            seq,
            series,
            log_excerpts,
        })
    }
}

impl TryFrom<pb::Inventory> for Inventory {
    type Error = ValidationError;

    fn try_from(inventory: pb::Inventory) -> Result<Self, Self::Error> {
        let at = |error: ValidationError| error.at("inventory");
        for (field, value) in [
            ("hostname", &inventory.hostname),
            ("os_name", &inventory.os_name),
            ("os_version", &inventory.os_version),
            ("kernel_version", &inventory.kernel_version),
            ("cpu_model", &inventory.cpu_model),
            ("agent_version", &inventory.agent_version),
            ("architecture", &inventory.architecture),
        ] {
            check_text(field, value).map_err(at)?;
        }
        if inventory.disks.len() > MAX_INVENTORY_DISKS {
            return Err(at(ValidationError::new(format!(
                "{} disks, over the limit of {MAX_INVENTORY_DISKS}",
                inventory.disks.len()
            ))));
        }
        let mut disks = Vec::with_capacity(inventory.disks.len());
        for disk in inventory.disks {
            for (field, value) in [
                ("disk mountpoint", &disk.mountpoint),
                ("disk device", &disk.device),
                ("disk filesystem", &disk.filesystem),
            ] {
                check_text(field, value).map_err(at)?;
            }
            disks.push(Disk {
                mountpoint: disk.mountpoint,
                device: disk.device,
                filesystem: disk.filesystem,
                total_bytes: disk.total_bytes,
            });
        }
        Ok(Self {
            hostname: inventory.hostname,
            os_name: inventory.os_name,
            os_version: inventory.os_version,
            kernel_version: inventory.kernel_version,
            architecture: inventory.architecture,
            cpu_model: inventory.cpu_model,
            cpu_cores: inventory.cpu_cores,
            memory_bytes: inventory.memory_bytes,
            disks,
            agent_version: inventory.agent_version,
            boot_time_unix_seconds: inventory.boot_time_unix_seconds,
        })
    }
}

impl TryFrom<pb::AgentMessage> for AgentMessage {
    type Error = ValidationError;

    fn try_from(message: pb::AgentMessage) -> Result<Self, Self::Error> {
        use pb::agent_message::Body;
        match message.body {
            None => Err(ValidationError::new(
                "empty message (no hello, batch or goodbye)",
            )),
            Some(Body::Hello(hello)) => {
                let inventory = hello
                    .inventory
                    .ok_or_else(|| ValidationError::new("hello without an inventory"))?;
                if !INTERVAL_SECONDS.contains(&hello.interval_seconds) {
                    return Err(ValidationError::new(format!(
                        "hello: interval of {} s is out of range ({}..={})",
                        hello.interval_seconds,
                        INTERVAL_SECONDS.start(),
                        INTERVAL_SECONDS.end()
                    )));
                }
                Ok(Self::Hello(Hello {
                    inventory: Inventory::try_from(inventory)?,
                    spool_id: hello.spool_id,
                    interval_seconds: hello.interval_seconds,
                    next_seq: hello.next_seq,
                }))
            }
            Some(Body::Batch(batch)) => Ok(Self::Batch(Batch::try_from(batch)?)),
            Some(Body::Goodbye(goodbye)) => {
                let reason = match pb::goodbye::Reason::try_from(goodbye.reason) {
                    Ok(pb::goodbye::Reason::Shutdown) => GoodbyeReason::Shutdown,
                    Ok(pb::goodbye::Reason::Reboot) => GoodbyeReason::Reboot,
                    Ok(pb::goodbye::Reason::Sleep) => GoodbyeReason::Sleep,
                    Ok(pb::goodbye::Reason::ServiceStop) => GoodbyeReason::ServiceStop,
                    Ok(pb::goodbye::Reason::Unspecified) | Err(_) => GoodbyeReason::Unspecified,
                };
                Ok(Self::Goodbye(reason))
            }
        }
    }
}

impl TryFrom<pb::CollectorMessage> for CollectorMessage {
    type Error = ValidationError;

    fn try_from(message: pb::CollectorMessage) -> Result<Self, Self::Error> {
        use pb::collector_message::Body;
        match message.body {
            None => Err(ValidationError::new("empty message from the collector")),
            Some(Body::Ack(ack)) => Ok(Self::Ack { seq: ack.seq }),
            Some(Body::Reject(reject)) => Ok(Self::Reject {
                seq: reject.seq,
                reason: truncate_reason(reject.reason),
            }),
            Some(Body::Config(config)) => {
                if !INTERVAL_SECONDS.contains(&config.interval_seconds) {
                    return Err(ValidationError::new(format!(
                        "pushed interval of {} s is out of range ({}..={})",
                        config.interval_seconds,
                        INTERVAL_SECONDS.start(),
                        INTERVAL_SECONDS.end()
                    )));
                }
                Ok(Self::Config(AgentConfig {
                    interval_seconds: config.interval_seconds,
                }))
            }
            Some(Body::SpoolConflict(conflict)) => Ok(Self::SpoolConflict(SpoolConflict {
                spool_id: conflict.spool_id,
                stored_seq: conflict.stored_seq,
                next_seq: conflict.next_seq,
            })),
        }
    }
}

/// A reject reason is shown in the agent's log; keep it to a readable length.
fn truncate_reason(reason: String) -> String {
    if reason.len() <= 1024 {
        reason
    } else {
        shorten(&reason, 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_series(name: &str, labels: &[(&str, &str)], n_samples: usize) -> pb::Series {
        pb::Series {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(n, v)| pb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: (0..n_samples)
                .map(|i| pb::Sample {
                    timestamp_ms: 1_700_000_000_000 + i as i64 * 10_000,
                    value: i as f64,
                })
                .collect(),
        }
    }

    #[test]
    fn a_valid_batch_round_trips_through_the_wire_types() {
        let batch = Batch {
            seq: 7,
            series: vec![Series {
                name: "system_filesystem_usage_bytes".into(),
                labels: Labels::from_pairs([("state", "used"), ("mountpoint", "/")]),
                samples: vec![Sample {
                    timestamp_ms: 1_700_000_000_000,
                    value: 42.5,
                }],
            }],
            log_excerpts: vec![LogExcerpt {
                log: "kernel".into(),
                pattern: "io_error".into(),
                file: "/var/log/kern.log".into(),
                line: "blk_update_request: I/O error, dev sda".into(),
                timestamp_ms: 1_700_000_000_500,
            }],
        };
        let wire = pb::Batch::from(&batch);
        assert_eq!(Batch::try_from(wire).unwrap(), batch);
    }

    #[test]
    fn refuses_too_many_log_excerpts_and_a_line_over_the_value_limit() {
        let excerpt = |line: String| pb::LogExcerpt {
            log: "kernel".into(),
            pattern: "io_error".into(),
            file: "/var/log/kern.log".into(),
            line,
            timestamp_ms: 1,
        };
        let too_many = pb::Batch {
            seq: 1,
            log_excerpts: vec![excerpt("x".into()); MAX_LOG_EXCERPTS_PER_BATCH + 1],
            ..Default::default()
        };
        let error = Batch::try_from(too_many).unwrap_err().to_string();
        assert!(error.contains("log excerpts, over the limit"), "{error}");
        let too_long = pb::Batch {
            seq: 1,
            log_excerpts: vec![excerpt("x".repeat(MAX_VALUE_BYTES + 1))],
            ..Default::default()
        };
        let error = Batch::try_from(too_long).unwrap_err().to_string();
        assert!(
            error.contains("log excerpt 0") && error.contains("line is"),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_payload_that_claims_a_host() {
        let wire = pb::Batch {
            seq: 1,
            series: vec![wire_series(
                "system_uptime_seconds",
                &[("host", "other")],
                1,
            )],
            ..Default::default()
        };
        let error = Batch::try_from(wire).unwrap_err().to_string();
        assert!(
            error.contains("series 0 (system_uptime_seconds)"),
            "{error}"
        );
        assert!(error.contains("from the agent's certificate"), "{error}");
    }

    #[test]
    fn refuses_invalid_names_and_says_where() {
        let wire = pb::Batch {
            seq: 3,
            series: vec![
                wire_series("ok_metric", &[], 1),
                wire_series("bad metric", &[], 1),
            ],
            ..Default::default()
        };
        let error = Batch::try_from(wire).unwrap_err().to_string();
        assert!(
            error.starts_with("batch 3: series 1 (bad metric): metric name"),
            "{error}"
        );

        let wire = pb::Batch {
            seq: 3,
            series: vec![wire_series("ok", &[("9lives", "x")], 1)],
            ..Default::default()
        };
        assert!(Batch::try_from(wire)
            .unwrap_err()
            .to_string()
            .contains("label name \"9lives\""));
    }

    #[test]
    fn refuses_batches_over_the_limits() {
        let too_many_series = pb::Batch {
            seq: 1,
            series: (0..MAX_SERIES_PER_BATCH + 1)
                .map(|_| wire_series("m", &[], 0))
                .collect(),
            ..Default::default()
        };
        assert!(Batch::try_from(too_many_series)
            .unwrap_err()
            .to_string()
            .contains("over the limit"));

        let too_many_samples = pb::Batch {
            seq: 1,
            series: vec![wire_series("m", &[], MAX_SAMPLES_PER_BATCH + 1)],
            ..Default::default()
        };
        assert!(Batch::try_from(too_many_samples)
            .unwrap_err()
            .to_string()
            .contains("samples"));

        let long_value = "x".repeat(MAX_VALUE_BYTES + 1);
        let too_long = pb::Batch {
            seq: 1,
            series: vec![wire_series("m", &[("job", &long_value)], 1)],
            ..Default::default()
        };
        assert!(Batch::try_from(too_long)
            .unwrap_err()
            .to_string()
            .contains("over the limit"));
    }

    #[test]
    fn refuses_duplicate_labels_and_sequence_zero() {
        let wire = pb::Batch {
            seq: 1,
            series: vec![wire_series("m", &[("a", "1"), ("a", "2")], 1)],
            ..Default::default()
        };
        assert!(Batch::try_from(wire)
            .unwrap_err()
            .to_string()
            .contains("appears twice"));
        let wire = pb::Batch {
            seq: 0,
            series: vec![],
            ..Default::default()
        };
        assert!(Batch::try_from(wire)
            .unwrap_err()
            .to_string()
            .contains("sequence number 0"));
    }

    #[test]
    fn an_empty_agent_message_is_refused() {
        let error = AgentMessage::try_from(pb::AgentMessage { body: None }).unwrap_err();
        assert!(error.to_string().contains("empty message"));
    }

    #[test]
    fn labels_display_like_prometheus() {
        let labels = Labels::from_pairs([("state", "used"), ("mountpoint", "/")]);
        assert_eq!(labels.to_string(), r#"{mountpoint="/",state="used"}"#);
        assert_eq!(Labels::new().to_string(), "");
    }
}
