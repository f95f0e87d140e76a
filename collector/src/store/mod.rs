//! Time-series storage on sled: the collector's one place on disk. Ingest hands it an
//! agent's batch ([`Store::append`]), which is durable, once per sequence number, when the
//! call returns; queries read series back with a [`Selector`] ([`Store::select`] for raw
//! samples, [`Store::select_range`] for points that use five-minute rollups over long
//! ranges). It also keeps each host's inventory as a small JSON record.
//!
//! How a sample moves: [`Store::append`] writes the batch to the write-ahead log ([`wal`],
//! group-committed with one `fdatasync` for every batch waiting) and adds its samples to the
//! in-memory [`head`]; a background thread ([`maintenance`]) seals windows of the head into
//! compressed chunks (codec in [`chunk`], bytes in append-only day files, [`chunk_files`],
//! located through sled) and rollups in sled ([`sealed`], [`rollup`]), makes sled durable
//! with a real fsync, trims the log behind it, and enforces retention. On open
//! ([`open`]), the log is replayed into the head; a clean stop ([`Store::close`], or dropping
//! the last handle) seals the whole head first, so that there is nothing to replay. When the
//! log cannot write (a full disk), batches are refused until it can again, by itself;
//! [`Store::write_health`] says since when and why. `vigil-collector import` writes chunks
//! straight to day files under an import id that becomes visible only when it commits
//! ([`import`]); their locations go to write-once day indexes ([`day_index`]), not sled.
//! The series index (labels ↔ id, postings per label pair) is in [`index`]; the bytes of
//! every key in [`keys`]; the data directory's files in [`files`].
//!
//! Nothing outside this room names a sled type. Every method blocks on disk I/O; async
//! callers run it on a blocking thread.

pub mod chunk;
mod chunk_files;
mod day_index;
mod error;
pub mod export_log;
mod files;
mod head;
pub mod import;
mod index;
mod keys;
mod maintenance;
mod open;
pub mod rollup;
mod sealed;
mod selector;
mod state;
mod varint;
mod wal;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use vigil_proto::model::{Labels, Sample};

pub use error::StoreError;
pub use export_log::{ExportLog, LogPosition, LogRead, LoggedSamples};
pub use rollup::{Aggregate, BUCKET_MS};
pub use selector::{LabelMatcher, MatchOp, Selector, SelectorError, METRIC_NAME_LABEL};

use head::{overlay, Head};
use index::Index;
use sealed::Sealed;
use wal::Wal;

/// What to do when the store on disk is damaged so that it will not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDamage {
    /// Move the damaged files aside into `<data_dir>/damaged-<time>/`, log an error naming
    /// that folder, and start with an empty store: monitoring resumes at once and nothing is
    /// deleted.
    Quarantine,
    /// Refuse to start, with an error naming the damage and this setting.
    Refuse,
}

/// The `[store]` part of the collector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the store. Required: there is no safe guess. Created when missing.
    pub data_dir: PathBuf,
    /// Upper bound of sled's page cache, in bytes. Default 64 MiB.
    #[serde(default = "StoreConfig::default_cache_capacity_bytes")]
    pub cache_capacity_bytes: u64,
    /// Memory the head may use before its oldest windows are sealed early. Default 256 MiB.
    #[serde(default = "StoreConfig::default_head_max_bytes")]
    pub head_max_bytes: u64,
    /// How long raw samples are kept, counted back from the newest sample. Default 30 days.
    #[serde(
        default = "StoreConfig::default_raw_retention",
        deserialize_with = "vigil_proto::config_file::deserialize_duration"
    )]
    pub raw_retention: Duration,
    /// How long five-minute rollups are kept. Default 400 days.
    #[serde(
        default = "StoreConfig::default_rollup_retention",
        deserialize_with = "vigil_proto::config_file::deserialize_duration"
    )]
    pub rollup_retention: Duration,
    /// What [`Store::open`] does with a store that is damaged. Default: quarantine.
    #[serde(default = "StoreConfig::default_on_damage")]
    pub on_damage: OnDamage,
    /// How often the head is sealed and the log trimmed. Default 1 minute.
    #[serde(
        default = "StoreConfig::default_checkpoint_interval",
        deserialize_with = "vigil_proto::config_file::deserialize_duration"
    )]
    pub checkpoint_interval: Duration,
    /// How often retention runs. Default 10 minutes.
    #[serde(
        default = "StoreConfig::default_retention_interval",
        deserialize_with = "vigil_proto::config_file::deserialize_duration"
    )]
    pub retention_interval: Duration,
}

impl StoreConfig {
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_HEAD_MAX_BYTES: u64 = 256 * 1024 * 1024;
    pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(30 * 86_400);
    pub const DEFAULT_ROLLUP_RETENTION: Duration = Duration::from_secs(400 * 86_400);

    /// A store in `data_dir` with every default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_capacity_bytes: Self::DEFAULT_CACHE_CAPACITY_BYTES,
            head_max_bytes: Self::DEFAULT_HEAD_MAX_BYTES,
            raw_retention: Self::DEFAULT_RAW_RETENTION,
            rollup_retention: Self::DEFAULT_ROLLUP_RETENTION,
            on_damage: Self::default_on_damage(),
            checkpoint_interval: Self::default_checkpoint_interval(),
            retention_interval: Self::default_retention_interval(),
        }
    }

    fn default_cache_capacity_bytes() -> u64 {
        Self::DEFAULT_CACHE_CAPACITY_BYTES
    }

    fn default_head_max_bytes() -> u64 {
        Self::DEFAULT_HEAD_MAX_BYTES
    }

    fn default_raw_retention() -> Duration {
        Self::DEFAULT_RAW_RETENTION
    }

    fn default_rollup_retention() -> Duration {
        Self::DEFAULT_ROLLUP_RETENTION
    }

    fn default_on_damage() -> OnDamage {
        OnDamage::Quarantine
    }

    fn default_checkpoint_interval() -> Duration {
        Duration::from_secs(60)
    }

    fn default_retention_interval() -> Duration {
        Duration::from_secs(600)
    }
}

/// Which agent stream wrote a batch: host from the certificate plus the agent's spool id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriterId {
    pub host: String,
    pub spool_id: u64,
}

/// Samples of one series; `labels` is the full label set including "__name__", "host",
/// "client".
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Whether the store can write: while its write-ahead log cannot (a full disk, an I/O
/// error), every batch is refused with a retryable error, agents keep their batches and
/// resend them, and nothing that was not written is acknowledged. The log tries again by
/// itself every half second; ingest resumes as soon as a write succeeds, with no restart.
/// Checkpoints and host records wait meanwhile, so that sled is not written to a full disk.
///
/// What is safe after a failed write or fsync: the records of that write (and every one
/// submitted after it) are refused, never acknowledged; the segment is cut back to the end
/// of its last record that was fsynced and synced again, then records go on in a new
/// segment, so that pages whose write-back failed are never trusted and nothing half
/// written is ever replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteHealth {
    /// When writes started failing; `None` while they succeed.
    pub failing_since: Option<std::time::SystemTime>,
    /// Why, in one line naming the file (the last error seen).
    pub reason: Option<String>,
}

impl WriteHealth {
    pub fn is_failing(&self) -> bool {
        self.failing_since.is_some()
    }
}

/// What [`Store::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch is on disk.
    Stored { n_samples: usize },
    /// A batch with this or a later seq was stored before (and is on disk); nothing was
    /// written.
    Duplicate,
}

/// One series found by [`Store::select`]; `labels` include `__name__`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Where the points of a [`Store::select_range`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Raw samples, aggregated per step.
    Raw,
    /// Five-minute rollups, aggregated per step (a step that is a multiple of five minutes).
    Rollup5m,
}

/// One step of a series in a [`Store::select_range`] result: the samples in
/// `[timestamp_ms, timestamp_ms + step)` reduced to min, max, sum and count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangePoint {
    pub timestamp_ms: i64,
    pub aggregate: Aggregate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<RangePoint>,
}

/// The result of [`Store::select_range`].
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSelection {
    pub resolution: Resolution,
    pub step_ms: i64,
    pub series: Vec<RangeSeries>,
}

/// What is told how long each fsync of the write-ahead log took (see
/// [`Store::observe_fsyncs`]).
pub type FsyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// The store's sizes that are cheap to read while serving: what the collector's `/metrics`
/// reads at every scrape ([`Store::stats`] walks the whole data folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreGauges {
    /// Series with samples in memory.
    pub head_series: usize,
    /// Samples in memory not yet sealed.
    pub head_samples: u64,
    /// Memory the head uses, approximately.
    pub head_bytes: usize,
    pub wal_bytes: u64,
    pub wal_segments: usize,
    /// Sealed chunk and rollup files on disk (not sled's index).
    pub sealed_bytes: u64,
    /// Whether the write-ahead log refuses writes now.
    pub write_failing: bool,
}

/// A picture of the store's size, for logs, benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Series with samples in memory.
    pub head_series: usize,
    /// Samples added to the head and not yet sealed (a sample replaced counts twice).
    pub head_samples: u64,
    /// Memory the head uses, approximately.
    pub head_bytes: usize,
    /// Samples the head has put through the chunk encoder since the store was opened
    /// (replay included); a sample counts again when its block merges, at most six times.
    /// It grows with the samples appended, never with the length of their windows.
    pub head_encoded_samples: u64,
    pub wal_bytes: u64,
    pub wal_segments: usize,
    /// Every file under the data directory.
    pub disk_bytes: u64,
}

/// What the sealed data and the index hold, in bytes of keys and values (sled's own
/// overhead is the rest of [`StoreStats::disk_bytes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageBreakdown {
    pub n_series: u64,
    pub n_chunks: u64,
    /// The chunk files (chunks kept in sled, and the day indexes, are counted in
    /// `chunk_index_bytes`).
    pub chunk_file_bytes: u64,
    /// Keys and values of the `chunks` tree and the chunks' day indexes: where each chunk is.
    pub chunk_index_bytes: u64,
    pub n_rollup_blocks: u64,
    /// The rollup files.
    pub rollup_file_bytes: u64,
    /// Keys and values of the `rollup_5m` and `rollup_pending` trees, and the blocks' day
    /// indexes.
    pub rollup_index_bytes: u64,
    /// Keys and values of the series index and postings.
    pub index_bytes: u64,
}

/// The store. Cheap to clone: clones share one open database. Only one process may have a
/// data directory open at a time.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Shared by the clones only (never by the background thread), so that dropping the
    /// last clone stops that thread, and the store is closed when the drop returns.
    owner: Arc<Owner>,
}

/// Ends the background thread, and closes the store cleanly, when the last [`Store`] clone
/// goes.
struct Owner {
    maintenance: maintenance::Handle,
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.maintenance.stop();
        // A failure is logged by `close`, and the next open replays the log.
        let _ = self.inner.close();
    }
}

/// The open store; see the module documentation for how its parts work together.
struct Inner {
    config: StoreConfig,
    data_dir: PathBuf,
    db: sled::Db,
    index: Index,
    sealed: Sealed,
    /// Last seq per writer as of the last checkpoint (the log has the newer ones).
    writers_tree: sled::Tree,
    hosts: sled::Tree,
    meta: sled::Tree,
    imports: import::Imports,
    /// Everything appends change, behind one lock that also orders them in the log.
    ingest: Mutex<Ingest>,
    wal: Wal,
    /// One checkpoint at a time (the background one and explicit ones).
    checkpoint_lock: Mutex<()>,
    /// Where a damaged store was moved to when this one was opened in its place.
    quarantined_to: Option<PathBuf>,
    /// Set by the clean stop ([`Inner::close`]), which runs once.
    closed: std::sync::atomic::AtomicBool,
}

/// The state appends change.
struct Ingest {
    head: Head,
    writers: HashMap<WriterId, WriterSeq>,
    next_series_id: u64,
    /// The newest sample timestamp the store holds: its clock for sealing and retention.
    newest_ms: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct WriterSeq {
    last_seq: u64,
    /// The last seq written to the `writers` tree.
    persisted_seq: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

/// The origin of samples that came through the log (imports have their own).
const ORIGIN_LIVE: u32 = 0;

impl Store {
    /// Opens the store in `config.data_dir`, creating the directory and an empty store when
    /// missing, and replays the write-ahead log. A store too damaged to open is handled as
    /// `config.on_damage` says.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        open::open(config, open::OpenMode::CreateIfMissing)
    }

    /// Opens a store that must already exist, for tools (`vigil-collector query`): a
    /// mistyped path is an error instead of a new empty store, and a damaged store is
    /// reported, never moved.
    pub fn open_existing(config: &StoreConfig) -> Result<Store, StoreError> {
        open::open(config, open::OpenMode::MustExist)
    }

    /// The directory the store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// When opening found the store damaged and moved it aside: the folder it went to.
    pub fn quarantined_to(&self) -> Option<&Path> {
        self.inner.quarantined_to.as_deref()
    }

    /// Stores a batch durably: when this returns `Ok`, the batch is in the write-ahead log
    /// and fsynced. Batches with seq <= the last seq stored for this writer are duplicates:
    /// nothing is written and [`AppendOutcome::Duplicate`] is returned (once the earlier
    /// batch is durable), so replay after a reconnect is idempotent. A sample at a timestamp
    /// its series already has replaces the old value.
    ///
    /// Every series needs a non-empty `__name__` label; otherwise nothing is stored and the
    /// error names the series.
    pub fn append(
        &self,
        writer: &WriterId,
        seq: u64,
        batch: &[SeriesSamples],
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(unnamed) = batch.iter().find(|series| {
            series
                .labels
                .get(METRIC_NAME_LABEL)
                .is_none_or(str::is_empty)
        }) {
            return Err(StoreError::InvalidSeries {
                host: writer.host.clone(),
                spool_id: writer.spool_id,
                seq,
                labels: unnamed.labels.to_string(),
                reason: "has no metric name (label __name__)",
            });
        }
        let inner = &*self.inner;
        let labels_keys: Vec<Vec<u8>> = batch
            .iter()
            .map(|series| keys::encode_labels(&series.labels))
            .collect();
        // The batch's own encoding work is done here, before the lock that every agent shares.
        let mut prepared: Vec<Option<head::PreparedSamples>> = batch
            .iter()
            .map(|series| head::prepare(&series.samples))
            .collect();
        let mut ingest = inner.lock_ingest();
        let last_seq = ingest.writers.get(writer).map_or(0, |w| w.last_seq);
        if seq <= last_seq {
            // The batch that took this seq may still be on its way to disk; the caller
            // acknowledges a duplicate too, so wait for everything submitted so far.
            let lsn = inner.wal.submitted_lsn();
            drop(ingest);
            inner.wal.wait_durable(lsn)?;
            return Ok(AppendOutcome::Duplicate);
        }
        // While the log cannot write, nothing else is written either (the series index
        // included): the batch is refused and the agent resends it.
        inner.wal.check_writable()?;
        let mut series_ids = Vec::with_capacity(batch.len());
        for (series, labels_key) in batch.iter().zip(&labels_keys) {
            series_ids.push(inner.resolve_series(&mut ingest, &series.labels, labels_key)?);
        }
        // The log keeps records in reservation order, which is the head's order: the
        // record itself is encoded and checksummed after the lock is released.
        let lsn = inner.wal.reserve()?;
        let mut n_samples = 0;
        for ((series, &(series_id, _)), prepared) in
            batch.iter().zip(&series_ids).zip(&mut prepared)
        {
            match prepared.take() {
                Some(prepared) => ingest.head.insert_prepared(series_id, prepared, lsn),
                None => ingest.head.insert(series_id, &series.samples, lsn),
            }
            n_samples += series.samples.len();
            if let Some(newest) = series.samples.iter().map(|s| s.timestamp_ms).max() {
                ingest.newest_ms = ingest.newest_ms.max(newest);
            }
        }
        ingest.writers.entry(writer.clone()).or_default().last_seq = seq;
        let over_budget = ingest.head.bytes() as u64 > inner.config.head_max_bytes;
        drop(ingest);
        if over_budget {
            self.wake_maintenance();
        }
        let mut record = Vec::with_capacity(64 + n_samples * 10);
        wal::encode_batch(
            &writer.host,
            writer.spool_id,
            seq,
            batch.iter().zip(&series_ids).zip(&labels_keys).map(
                |((series, &(series_id, is_new)), labels_key)| {
                    (
                        series_id,
                        is_new.then_some(labels_key.as_slice()),
                        series.samples.as_slice(),
                    )
                },
            ),
            &mut record,
        );
        inner.wal.fill(lsn, &record);
        if let Err(error) = inner.wal.wait_durable(lsn) {
            // Not on disk, so not stored: the agent's resend of this seq must be taken as
            // new, not as a duplicate. Its samples may stay in the head (unacknowledged,
            // and the resend carries the same ones).
            let mut ingest = inner.lock_ingest();
            if let Some(entry) = ingest.writers.get_mut(writer) {
                if entry.last_seq == seq {
                    entry.last_seq = last_seq;
                }
            }
            return Err(error);
        }
        Ok(AppendOutcome::Stored { n_samples })
    }

    /// Whether the store's writes succeed now: see [`WriteHealth`].
    pub fn write_health(&self) -> WriteHealth {
        self.inner.wal.health().borrow().clone()
    }

    /// The store's write health as it changes, for whoever raises an alert while writes
    /// fail (the value changes when writes start failing, when the reason changes, and when
    /// they succeed again). Needs no runtime: `borrow` reads the latest value anywhere.
    pub fn watch_write_health(&self) -> tokio::sync::watch::Receiver<WriteHealth> {
        self.inner.wal.health()
    }

    /// Highest seq stored for this writer (0 if none).
    pub fn last_seq(&self, writer: &WriterId) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .lock_ingest()
            .writers
            .get(writer)
            .map_or(0, |w| w.last_seq))
    }

    /// Series matching the selector with their raw samples in `[start_ms, end_ms]`, each
    /// series' samples sorted by time, series sorted by labels. A series without samples
    /// in the range is left out, as in a Prometheus range query.
    pub fn select(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, StoreError> {
        if start_ms > end_ms {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let mut selected = Vec::new();
        for (series_id, labels) in inner.index.select(selector)? {
            let samples = inner.raw_samples(series_id, start_ms, end_ms)?;
            if !samples.is_empty() {
                selected.push(SelectedSeries { labels, samples });
            }
        }
        selected.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(selected)
    }

    /// Labels of the series the selector selects, whether or not they hold samples now,
    /// sorted; for series and label listings (`/api/v1/series`, `/api/v1/labels`), which
    /// need no samples.
    pub fn series_labels(&self, selector: &Selector) -> Result<Vec<Labels>, StoreError> {
        let mut labels: Vec<Labels> = self
            .inner
            .index
            .select(selector)?
            .into_iter()
            .map(|(_, labels)| labels)
            .collect();
        labels.sort();
        Ok(labels)
    }

    /// Series matching the selector as points of `step_ms` from `start_ms` to `end_ms`: each
    /// point aggregates the samples in `[t, t + step)`, `t` a multiple of the step. A step
    /// that is a multiple of five minutes reads the rollups (and the head's recent samples),
    /// which reach back as far as the rollup retention; a shorter one reads raw samples.
    /// [`Store::auto_step`] picks a step for a number of points.
    pub fn select_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<RangeSelection, StoreError> {
        let step_ms = step_ms.max(1);
        let resolution = if step_ms % BUCKET_MS == 0 {
            Resolution::Rollup5m
        } else {
            Resolution::Raw
        };
        let mut selection = RangeSelection {
            resolution,
            step_ms,
            series: Vec::new(),
        };
        if start_ms > end_ms {
            return Ok(selection);
        }
        let inner = &*self.inner;
        // Steps are aligned, so the first one may start before `start_ms`.
        let first_step = rollup::align(start_ms, step_ms);
        for (series_id, labels) in inner.index.select(selector)? {
            let mut points: Vec<RangePoint> = Vec::new();
            let mut add = |timestamp_ms: i64, aggregate: &Aggregate| {
                let step = rollup::align(timestamp_ms, step_ms);
                match points.last_mut() {
                    Some(point) if point.timestamp_ms == step => point.aggregate.add(aggregate),
                    _ => points.push(RangePoint {
                        timestamp_ms: step,
                        aggregate: *aggregate,
                    }),
                }
            };
            match resolution {
                Resolution::Raw => {
                    for sample in inner.raw_samples(series_id, first_step, end_ms)? {
                        add(sample.timestamp_ms, &Aggregate::of(sample.value));
                    }
                }
                Resolution::Rollup5m => {
                    for (bucket_ms, aggregate) in
                        inner.rollup_buckets(series_id, first_step, end_ms)?
                    {
                        add(bucket_ms, &aggregate);
                    }
                }
            }
            if !points.is_empty() {
                selection.series.push(RangeSeries { labels, points });
            }
        }
        selection.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(selection)
    }

    /// A step for about `max_points` points over `[start_ms, end_ms]`: raw when the range is
    /// short, else a multiple of five minutes, so that long ranges read rollups.
    pub fn auto_step(start_ms: i64, end_ms: i64, max_points: u32) -> i64 {
        let span = end_ms.saturating_sub(start_ms).max(1);
        let raw_step = (span / i64::from(max_points.max(1))).max(1);
        if raw_step < BUCKET_MS {
            raw_step
        } else {
            (raw_step + BUCKET_MS - 1) / BUCKET_MS * BUCKET_MS
        }
    }

    /// Replaces the JSON record kept for `host` (the collector keeps its inventory there).
    /// It reaches the disk with the next flush: sled's own, within half a second, a
    /// checkpoint, or [`Store::flush`].
    pub fn put_host_record(
        &self,
        host: &str,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let inner = &*self.inner;
        // sled treats a failed write as fatal for the process: nothing goes to it while the
        // disk is known to fail.
        inner.wal.check_writable()?;
        let bytes = serde_json::to_vec(record).map_err(|source| StoreError::HostRecord {
            host: host.to_owned(),
            source,
        })?;
        inner
            .hosts
            .insert(host.as_bytes(), bytes)
            .map_err(|error| {
                inner.storage(format!("storing the record of host '{host}'"), error)
            })?;
        Ok(())
    }

    pub fn host_record(&self, host: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let inner = &*self.inner;
        let bytes = inner.hosts.get(host.as_bytes()).map_err(|error| {
            inner.storage(format!("reading the record of host '{host}'"), error)
        })?;
        bytes
            .map(|bytes| inner.decode_host_record(host, &bytes))
            .transpose()
    }

    /// Every host's record, sorted by host.
    pub fn host_records(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let inner = &*self.inner;
        let mut records = Vec::new();
        for entry in inner.hosts.iter() {
            let (key, bytes) =
                entry.map_err(|error| inner.storage("reading host records", error))?;
            let host = std::str::from_utf8(&key).map_err(|_| {
                inner.malformed(format!("host name {:?} in the host records", key.as_ref()))
            })?;
            records.push((host.to_owned(), inner.decode_host_record(host, &bytes)?));
        }
        Ok(records)
    }

    /// Makes everything stored so far durable: the log up to the last batch, and sled
    /// (host records) with a real fsync.
    pub fn flush(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.wal.wait_durable(inner.wal.submitted_lsn())?;
        inner.sync_sled()
    }

    /// Seals the head into sled now — every window, or only those due — makes sled
    /// durable and trims the log. The background thread does this every
    /// `checkpoint_interval`; tools and tests call it to reach a known state.
    pub fn checkpoint(&self, seal_everything: bool) -> Result<(), StoreError> {
        self.inner.checkpoint(seal_everything).map(|_| ())
    }

    /// Stops the store cleanly: seals the whole head into sled, makes it durable and removes
    /// the write-ahead log, so that the next open has nothing to replay. Appends after this
    /// fail. Dropping the last clone does the same; call it to stop at a known moment (the
    /// collector does, after ingest has drained). When sealing fails (a full disk) the log
    /// stays, the error is returned, and the next open replays the log: nothing acknowledged
    /// is lost either way.
    pub fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }

    /// Deletes raw chunks older than the raw retention and rollups older than the rollup
    /// retention, counted back from `now_ms`, and series left without data. The background
    /// thread calls this every `retention_interval` with [`Store::retention_now`].
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), StoreError> {
        self.inner.enforce_retention(now_ms).map(|_| ())
    }

    /// The time retention counts back from: the newest sample stored, as Prometheus does,
    /// but never more than a day ahead of the wall clock, so that one agent with a clock in
    /// the future cannot age everything out.
    pub fn retention_now(&self) -> i64 {
        self.inner.retention_now()
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let inner = &*self.inner;
        let (head_series, head_samples, head_bytes, head_encoded_samples) = {
            let ingest = inner.lock_ingest();
            (
                ingest.head.n_series(),
                ingest.head.n_samples(),
                ingest.head.bytes(),
                ingest.head.n_encoded(),
            )
        };
        let (wal_bytes, wal_segments) = inner.wal.disk_usage();
        let disk_bytes = files::dir_size(&inner.data_dir).map_err(|source| StoreError::Io {
            path: inner.data_dir.clone(),
            action: "measuring",
            source,
        })?;
        Ok(StoreStats {
            head_series,
            head_samples,
            head_bytes,
            head_encoded_samples,
            wal_bytes,
            wal_segments,
            disk_bytes,
        })
    }

    /// Tells `observer` how long each fsync of the write-ahead log takes, from now on (one
    /// observer; a later call replaces it).
    pub fn observe_fsyncs(&self, observer: FsyncObserver) {
        self.inner.wal.observe_fsyncs(observer);
    }

    /// The sizes `/metrics` reports: the head's counts, the log's bytes and the sealed
    /// files' bytes (one listing of the chunk and rollup folders, no index scan).
    pub fn gauges(&self) -> Result<StoreGauges, StoreError> {
        let inner = &*self.inner;
        let (head_series, head_samples, head_bytes) = {
            let ingest = inner.lock_ingest();
            (
                ingest.head.n_series(),
                ingest.head.n_samples(),
                ingest.head.bytes(),
            )
        };
        let (wal_bytes, wal_segments) = inner.wal.disk_usage();
        let measured = |files: &chunk_files::ChunkFiles| {
            files.disk_bytes().map_err(|source| StoreError::Io {
                path: inner.data_dir.clone(),
                action: "measuring",
                source,
            })
        };
        let sealed_bytes =
            measured(&inner.sealed.chunk_files)? + measured(&inner.sealed.rollup_files)?;
        Ok(StoreGauges {
            head_series,
            head_samples,
            head_bytes,
            wal_bytes,
            wal_segments,
            sealed_bytes,
            write_failing: self.write_health().is_failing(),
        })
    }

    /// Counts what the sealed data and the index hold; reads every key, so it is for
    /// benchmarks and diagnostics, not for a running collector's hot path.
    pub fn storage_breakdown(&self) -> Result<StorageBreakdown, StoreError> {
        let inner = &*self.inner;
        let sum = |tree: &sled::Tree| -> Result<(u64, u64), StoreError> {
            let mut n = 0;
            let mut bytes = 0;
            for entry in tree.iter() {
                let (key, value) =
                    entry.map_err(|error| inner.storage("measuring the store", error))?;
                n += 1;
                bytes += (key.len() + value.len()) as u64;
            }
            Ok((n, bytes))
        };
        let (n_series, series_bytes) = sum(&inner.index.series)?;
        let (_, by_labels_bytes) = sum(&inner.index.series_by_labels)?;
        let (_, postings_bytes) = sum(&inner.index.postings)?;
        let file_bytes = |files: &chunk_files::ChunkFiles| {
            files.disk_bytes().map_err(|source| StoreError::Io {
                path: inner.data_dir.clone(),
                action: "measuring",
                source,
            })
        };
        let index_stats = |files: &chunk_files::ChunkFiles| {
            files.index_stats().map_err(|source| StoreError::Io {
                path: inner.data_dir.clone(),
                action: "measuring the day indexes in",
                source,
            })
        };
        // Locations in day indexes count as index bytes, not file bytes.
        let (n_indexed_chunks, chunk_day_index_bytes) = index_stats(&inner.sealed.chunk_files)?;
        let (n_indexed_blocks, rollup_day_index_bytes) = index_stats(&inner.sealed.rollup_files)?;
        let (n_chunks, chunk_index_bytes) = sum(&inner.sealed.chunks)?;
        let n_chunks = n_chunks + n_indexed_chunks;
        let chunk_index_bytes = chunk_index_bytes + chunk_day_index_bytes;
        let chunk_file_bytes = file_bytes(&inner.sealed.chunk_files)? - chunk_day_index_bytes;
        let (n_rollup_blocks, rollup_index_bytes) = sum(&inner.sealed.rollups)?;
        let n_rollup_blocks = n_rollup_blocks + n_indexed_blocks;
        let rollup_index_bytes = rollup_index_bytes + rollup_day_index_bytes;
        let (_, pending_bytes) = sum(&inner.sealed.pending)?;
        let rollup_file_bytes = file_bytes(&inner.sealed.rollup_files)? - rollup_day_index_bytes;
        Ok(StorageBreakdown {
            n_series,
            n_chunks,
            chunk_file_bytes,
            chunk_index_bytes,
            n_rollup_blocks,
            rollup_file_bytes,
            rollup_index_bytes: rollup_index_bytes + pending_bytes,
            index_bytes: series_bytes + by_labels_bytes + postings_bytes,
        })
    }

    /// Drops this handle as a crash would leave the store: no clean stop, so the log stays
    /// for the next open to replay (the log itself still commits what was submitted).
    #[cfg(test)]
    fn drop_as_if_crashed(self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn wake_maintenance(&self) {
        self.owner.maintenance.wake();
    }
}

impl Inner {
    fn lock_ingest(&self) -> MutexGuard<'_, Ingest> {
        self.ingest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn storage(&self, action: impl Into<String>, error: sled::Error) -> StoreError {
        StoreError::storage(&self.data_dir, action, error)
    }

    fn malformed(&self, what: impl Into<String>) -> StoreError {
        StoreError::malformed(&self.data_dir, what)
    }

    fn decode_host_record(
        &self,
        host: &str,
        bytes: &[u8],
    ) -> Result<serde_json::Value, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|_| self.malformed(format!("record of host '{host}'")))
    }

    /// The id of the series with these labels and whether this call created it; the head
    /// holds it afterwards.
    fn resolve_series(
        &self,
        ingest: &mut Ingest,
        labels: &Labels,
        labels_key: &[u8],
    ) -> Result<(u64, bool), StoreError> {
        if let Some(series_id) = ingest.head.series_id(labels_key) {
            return Ok((series_id, false));
        }
        let (series_id, is_new) = match self.index.lookup(labels_key)? {
            Some(series_id) => (series_id, false),
            None => {
                let series_id = ingest.next_series_id;
                self.index.create(series_id, labels, labels_key)?;
                ingest.next_series_id += 1;
                (series_id, true)
            }
        };
        ingest.head.add_series(series_id, labels_key);
        Ok((series_id, is_new))
    }

    /// Raw samples of one series in `[start_ms, end_ms]`: sealed chunks overlaid with the
    /// head. The head is copied first: a window moves from the head to sled only after it
    /// is written there, so reading in this order never misses one.
    fn raw_samples(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Sample>, StoreError> {
        let head_windows = self
            .lock_ingest()
            .head
            .windows_in_range(series_id, start_ms, end_ms);
        let visible = |origin: u32| self.imports.is_visible(origin);
        let mut samples = self.sealed.samples(series_id, start_ms, end_ms, &visible)?;
        for window in head_windows {
            let mut window_samples = window.samples().map_err(|error| StoreError::Codec {
                what: format!("head of series {series_id}"),
                reason: error.to_string(),
            })?;
            window_samples.retain(|s| s.timestamp_ms >= start_ms && s.timestamp_ms <= end_ms);
            samples = overlay(samples, &window_samples);
        }
        Ok(samples)
    }

    /// Five-minute buckets of one series starting in `[start_ms, end_ms]`: rollup blocks
    /// for complete days, and buckets made from raw samples (sealed and in the head) for
    /// days whose block is not written yet or out of date.
    fn rollup_buckets(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(i64, Aggregate)>, StoreError> {
        let visible = |origin: u32| self.imports.is_visible(origin);
        // Days with samples in the head are read raw; the head is copied first, so that a
        // window sealed meanwhile is found as a pending day.
        let head_days: Vec<i64> = self
            .lock_ingest()
            .head
            .windows_in_range(series_id, start_ms, end_ms.saturating_add(BUCKET_MS))
            .iter()
            .map(|window| chunk_files::day_of(window.start_ms))
            .collect();
        let mut raw_days = self
            .sealed
            .pending_days(series_id, start_ms, end_ms, &visible)?;
        raw_days.extend(head_days);
        let mut buckets = self
            .sealed
            .block_buckets(series_id, start_ms, end_ms, &visible, &raw_days)?;
        for &day_ms in &raw_days {
            let day_end = day_ms.saturating_add(chunk_files::DAY_MS - 1);
            let samples = self.raw_samples(
                series_id,
                day_ms.max(start_ms),
                day_end.min(end_ms.saturating_add(BUCKET_MS - 1)),
            )?;
            for (bucket_ms, aggregate) in rollup::bucketize(&samples) {
                if bucket_ms >= start_ms && bucket_ms <= end_ms {
                    buckets.insert(bucket_ms, aggregate);
                }
            }
        }
        Ok(buckets.into_iter().collect())
    }

    /// Flushes sled and fsyncs its files: sled's own flush ends in `sync_file_range`, which
    /// does not make data durable on every file system, so the log is trimmed only behind
    /// this.
    fn sync_sled(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map_err(|error| self.storage("flushing to disk", error))?;
        files::fsync_sled_files(&self.data_dir).map_err(|source| StoreError::Io {
            path: self.data_dir.clone(),
            action: "fsyncing the store files in",
            source,
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wal.close();
    }
}

#[cfg(test)]
mod tests;
