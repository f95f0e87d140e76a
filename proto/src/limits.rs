//! Bounds on everything an agent may send. The collector refuses a message over any of them
//! with the limit's name in the reason; the agent stays well inside them by construction.

/// Largest encoded gRPC message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Series in one batch. A host reports a few hundred per tick.
pub const MAX_SERIES_PER_BATCH: usize = 5_000;
/// Samples in one batch, over all its series.
pub const MAX_SAMPLES_PER_BATCH: usize = 50_000;
/// Labels on one series, besides `host` and `client`, which the collector adds.
pub const MAX_LABELS_PER_SERIES: usize = 16;
/// Length of a metric or label name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Length of a label value or an inventory string, in bytes.
pub const MAX_VALUE_BYTES: usize = 512;
/// Matched log lines in one batch (one per watched log and pattern at most).
pub const MAX_LOG_EXCERPTS_PER_BATCH: usize = 64;
/// Disks listed in an inventory.
pub const MAX_INVENTORY_DISKS: usize = 256;
/// Collection intervals the collector will push or accept, in seconds.
pub const INTERVAL_SECONDS: std::ops::RangeInclusive<u32> = 1..=3600;
/// Label names the collector sets from the certificate; a payload may not carry them.
pub const RESERVED_LABELS: [&str; 2] = ["host", "client"];
