//! Time-series storage on sled: the collector's one place on disk. Ingest hands it an
//! agent's batch ([`Store::append`]), which it stores atomically and durably, once per
//! sequence number; queries read series back with a [`Selector`] ([`Store::select`]). It
//! also keeps each host's inventory as a small JSON record.
//!
//! This is the first, plain layout (see [`keys`] for the bytes): one sled key per sample,
//! a postings index from each label pair to the series carrying it, and a last-seq record per
//! agent stream. A later version replaces the sample tree with a WAL and compressed chunks
//! behind the same interface. Nothing outside this room names a sled type.
//!
//! Every method blocks on disk I/O; async callers run it on a blocking thread.

pub mod chunk;
mod error;
mod keys;
mod selector;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use vigil_proto::model::{Labels, Sample};

pub use error::StoreError;
pub use selector::{LabelMatcher, MatchOp, Selector, SelectorError, METRIC_NAME_LABEL};

/// The `[store]` part of the collector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the store. Required: there is no safe guess. Created when missing.
    pub data_dir: PathBuf,
    /// Upper bound of sled's page cache, in bytes. Default 64 MiB.
    #[serde(default = "StoreConfig::default_cache_capacity_bytes")]
    pub cache_capacity_bytes: u64,
}

impl StoreConfig {
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

    /// A store in `data_dir` with the default cache.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_capacity_bytes: Self::DEFAULT_CACHE_CAPACITY_BYTES,
        }
    }

    fn default_cache_capacity_bytes() -> u64 {
        Self::DEFAULT_CACHE_CAPACITY_BYTES
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

/// What [`Store::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch is on disk.
    Stored { n_samples: usize },
    /// A batch with this or a later seq was stored before; nothing was written.
    Duplicate,
}

/// One series found by [`Store::select`]; `labels` include `__name__`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The store. Cheap to clone: clones share one open database. Only one process may have a
/// data directory open at a time.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Trees>,
}

/// The open database and its trees, named as in [`keys`].
struct Trees {
    data_dir: PathBuf,
    db: sled::Db,
    series: sled::Tree,
    series_by_labels: sled::Tree,
    postings: sled::Tree,
    samples: sled::Tree,
    writers: sled::Tree,
    hosts: sled::Tree,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

/// Whether opening may create a new store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// The file sled keeps its log in; its presence tells a store from an unrelated directory.
const SLED_DATA_FILE: &str = "db";

impl Store {
    /// Opens the store in `config.data_dir`, creating the directory and an empty store when
    /// missing.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_with(config, OpenMode::CreateIfMissing)
    }

    /// Opens a store that must already exist, for tools that read (`vigil-collector query`):
    /// a mistyped path is an error instead of a new empty store.
    pub fn open_existing(config: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_with(config, OpenMode::MustExist)
    }

    fn open_with(config: &StoreConfig, mode: OpenMode) -> Result<Store, StoreError> {
        let data_dir = config.data_dir.clone();
        match mode {
            OpenMode::MustExist if !data_dir.exists() => {
                return Err(StoreError::DataDirMissing { path: data_dir })
            }
            OpenMode::MustExist if !data_dir.is_dir() => {
                return Err(StoreError::NotADirectory { path: data_dir })
            }
            OpenMode::MustExist if !data_dir.join(SLED_DATA_FILE).is_file() => {
                return Err(StoreError::NotAStore { path: data_dir })
            }
            OpenMode::MustExist => {}
            OpenMode::CreateIfMissing => {
                std::fs::create_dir_all(&data_dir).map_err(|source| StoreError::CreateDir {
                    path: data_dir.clone(),
                    source,
                })?
            }
        }
        let db = sled::Config::new()
            .path(&data_dir)
            .cache_capacity(config.cache_capacity_bytes)
            .open()
            .map_err(|error| StoreError::from_open(&data_dir, error))?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|error| {
                StoreError::storage(&data_dir, format!("opening tree '{name}'"), error)
            })
        };
        let trees = Trees {
            series: open_tree("series")?,
            series_by_labels: open_tree("series_by_labels")?,
            postings: open_tree("postings")?,
            samples: open_tree("samples")?,
            writers: open_tree("writers")?,
            hosts: open_tree("hosts")?,
            db,
            data_dir,
        };
        Ok(Store {
            inner: Arc::new(trees),
        })
    }

    /// The directory the store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Stores a batch atomically and durably (flushed to disk before returning). Batches
    /// with seq <= the last seq stored for this writer are duplicates: nothing is written
    /// and [`AppendOutcome::Duplicate`] is returned, so replay after a reconnect is
    /// idempotent. A sample at a timestamp its series already has replaces the old value.
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
        let trees = &*self.inner;
        let writer_key = keys::writer_key(&writer.host, writer.spool_id);
        let encoded_labels: Vec<Vec<u8>> = batch
            .iter()
            .map(|series| keys::encode_labels(&series.labels))
            .collect();
        // The last-seq record and the samples are written in one transaction, so a crash
        // leaves a batch either wholly stored and marked, or neither.
        let outcome = (
            &trees.writers,
            &trees.series,
            &trees.series_by_labels,
            &trees.postings,
            &trees.samples,
        )
            .transaction(|(writers, series, series_by_labels, postings, samples)| {
                let last_seq = match writers.get(&writer_key)? {
                    Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| {
                        ConflictableTransactionError::Abort(trees.malformed(format!(
                            "last seq of host '{}' spool {}",
                            writer.host, writer.spool_id
                        )))
                    })?,
                    None => 0,
                };
                if seq <= last_seq {
                    return Ok(AppendOutcome::Duplicate);
                }
                let mut n_samples = 0;
                for (one_series, labels_key) in batch.iter().zip(&encoded_labels) {
                    let series_id = match series_by_labels.get(labels_key)? {
                        Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| {
                            ConflictableTransactionError::Abort(
                                trees.malformed(format!("series id of {}", one_series.labels)),
                            )
                        })?,
                        None => {
                            let series_id = series.generate_id()?;
                            let id_bytes = keys::encode_series_id(series_id);
                            series.insert(&id_bytes, labels_key.as_slice())?;
                            series_by_labels.insert(labels_key.as_slice(), &id_bytes)?;
                            for (name, value) in one_series.labels.iter() {
                                postings.insert(keys::postings_key(name, value, series_id), &[])?;
                            }
                            series_id
                        }
                    };
                    for sample in &one_series.samples {
                        samples.insert(
                            &keys::sample_key(series_id, sample.timestamp_ms),
                            &keys::encode_value(sample.value),
                        )?;
                    }
                    n_samples += one_series.samples.len();
                }
                writers.insert(writer_key.as_slice(), &seq.to_be_bytes())?;
                Ok(AppendOutcome::Stored { n_samples })
            })
            .map_err(|error| match error {
                TransactionError::Abort(error) => error,
                TransactionError::Storage(error) => trees.storage(
                    format!(
                        "storing batch {seq} from host '{}' spool {}",
                        writer.host, writer.spool_id
                    ),
                    error,
                ),
            })?;
        // Flush even for a duplicate: the earlier append of this batch may have failed
        // after its transaction but before its flush, and the caller acknowledges either
        // way. sled's flush ends in sync_file_range, not fsync, so it does not survive
        // every power loss on every file system; the WAL that replaces this layout fsyncs.
        self.flush()?;
        Ok(outcome)
    }

    /// Highest seq stored for this writer (0 if none).
    pub fn last_seq(&self, writer: &WriterId) -> Result<u64, StoreError> {
        let trees = &*self.inner;
        let key = keys::writer_key(&writer.host, writer.spool_id);
        match trees
            .writers
            .get(key)
            .map_err(|error| trees.storage("reading the last seq", error))?
        {
            Some(bytes) => keys::decode_u64(&bytes).ok_or_else(|| {
                trees.malformed(format!(
                    "last seq of host '{}' spool {}",
                    writer.host, writer.spool_id
                ))
            }),
            None => Ok(0),
        }
    }

    /// Series matching the selector with their samples in `[start_ms, end_ms]`, each
    /// series' samples sorted by time, series sorted by labels. A series without samples
    /// in the range is left out, as in a Prometheus range query.
    pub fn select(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, StoreError> {
        let trees = &*self.inner;
        if start_ms > end_ms {
            return Ok(Vec::new());
        }
        let mut selected = Vec::new();
        for series_id in trees.candidate_series(selector)? {
            let labels = trees.series_labels(series_id)?;
            if !selector.matches(&labels) {
                continue;
            }
            let samples = trees.samples_in_range(series_id, start_ms, end_ms)?;
            if !samples.is_empty() {
                selected.push(SelectedSeries { labels, samples });
            }
        }
        selected.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(selected)
    }

    /// Replaces the JSON record kept for `host` (the collector keeps its inventory there).
    /// It reaches the disk with the next flush: sled's own, within half a second, or
    /// [`Store::flush`].
    pub fn put_host_record(
        &self,
        host: &str,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let trees = &*self.inner;
        let bytes = serde_json::to_vec(record).map_err(|source| StoreError::HostRecord {
            host: host.to_owned(),
            source,
        })?;
        trees
            .hosts
            .insert(host.as_bytes(), bytes)
            .map_err(|error| {
                trees.storage(format!("storing the record of host '{host}'"), error)
            })?;
        Ok(())
    }

    pub fn host_record(&self, host: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let trees = &*self.inner;
        let bytes = trees.hosts.get(host.as_bytes()).map_err(|error| {
            trees.storage(format!("reading the record of host '{host}'"), error)
        })?;
        bytes
            .map(|bytes| trees.decode_host_record(host, &bytes))
            .transpose()
    }

    /// Every host's record, sorted by host.
    pub fn host_records(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let trees = &*self.inner;
        let mut records = Vec::new();
        for entry in trees.hosts.iter() {
            let (key, bytes) =
                entry.map_err(|error| trees.storage("reading host records", error))?;
            let host = std::str::from_utf8(&key).map_err(|_| {
                trees.malformed(format!("host name {:?} in the host records", key.as_ref()))
            })?;
            records.push((host.to_owned(), trees.decode_host_record(host, &bytes)?));
        }
        Ok(records)
    }

    /// Writes everything stored so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let trees = &*self.inner;
        trees
            .db
            .flush()
            .map_err(|error| trees.storage("flushing to disk", error))?;
        Ok(())
    }
}

impl Trees {
    fn storage(&self, action: impl Into<String>, error: sled::Error) -> StoreError {
        StoreError::storage(&self.data_dir, action, error)
    }

    fn malformed(&self, what: impl Into<String>) -> StoreError {
        StoreError::malformed(&self.data_dir, what)
    }

    /// Ids of the series that may match: those in the postings of the selector's `=`
    /// matchers, or else of one matcher that needs its label to be present. The caller
    /// still checks every matcher against each series' labels.
    fn candidate_series(&self, selector: &Selector) -> Result<BTreeSet<u64>, StoreError> {
        let equal_matchers: Vec<&LabelMatcher> = selector
            .matchers()
            .iter()
            .filter(|matcher| matcher.op() == MatchOp::Equal && !matcher.value().is_empty())
            .collect();
        if !equal_matchers.is_empty() {
            let mut candidates: Option<BTreeSet<u64>> = None;
            for matcher in equal_matchers {
                let ids = self.postings_of(matcher, |_| true)?;
                let narrowed = match candidates {
                    Some(previous) => previous.intersection(&ids).copied().collect(),
                    None => ids,
                };
                if narrowed.is_empty() {
                    return Ok(narrowed);
                }
                candidates = Some(narrowed);
            }
            return Ok(candidates.unwrap_or_default());
        }
        // A parsed selector always has a matcher that needs its label; one built in code
        // from `=` matchers with empty values only selects series without a metric name,
        // and the store has none.
        match selector
            .matchers()
            .iter()
            .find(|matcher| !matcher.matches(""))
        {
            Some(matcher) => self.postings_of(matcher, |value| matcher.matches(value)),
            None => Ok(BTreeSet::new()),
        }
    }

    /// Ids of the series whose label `matcher.name()` has a value accepted by `accept`;
    /// for an `=` matcher only its own value is scanned.
    fn postings_of(
        &self,
        matcher: &LabelMatcher,
        accept: impl Fn(&str) -> bool,
    ) -> Result<BTreeSet<u64>, StoreError> {
        let name_prefix = keys::postings_name_prefix(matcher.name());
        let scan_prefix = match matcher.op() {
            MatchOp::Equal => keys::postings_pair_prefix(matcher.name(), matcher.value()),
            _ => name_prefix.clone(),
        };
        let mut ids = BTreeSet::new();
        for entry in self.postings.scan_prefix(&scan_prefix) {
            let (key, _) = entry.map_err(|error| self.storage("reading the label index", error))?;
            let (value, series_id) =
                keys::decode_postings_key(&name_prefix, &key).ok_or_else(|| {
                    self.malformed(format!("label index entry for label '{}'", matcher.name()))
                })?;
            if accept(value) {
                ids.insert(series_id);
            }
        }
        Ok(ids)
    }

    fn series_labels(&self, series_id: u64) -> Result<Labels, StoreError> {
        let bytes = self
            .series
            .get(keys::encode_series_id(series_id))
            .map_err(|error| self.storage(format!("reading series {series_id}"), error))?
            .ok_or_else(|| {
                self.malformed(format!(
                    "label index: it names series {series_id}, which does not exist"
                ))
            })?;
        keys::decode_labels(&bytes)
            .ok_or_else(|| self.malformed(format!("labels of series {series_id}")))
    }

    fn samples_in_range(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Sample>, StoreError> {
        let range = keys::sample_key(series_id, start_ms)..=keys::sample_key(series_id, end_ms);
        let mut samples = Vec::new();
        for entry in self.samples.range(range) {
            let (key, value) = entry.map_err(|error| {
                self.storage(format!("reading samples of series {series_id}"), error)
            })?;
            let sample = keys::decode_sample_timestamp(&key)
                .zip(keys::decode_value(&value))
                .map(|(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                })
                .ok_or_else(|| self.malformed(format!("sample of series {series_id}")))?;
            samples.push(sample);
        }
        Ok(samples)
    }

    fn decode_host_record(
        &self,
        host: &str,
        bytes: &[u8],
    ) -> Result<serde_json::Value, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|_| self.malformed(format!("record of host '{host}'")))
    }
}

#[cfg(test)]
mod tests;
