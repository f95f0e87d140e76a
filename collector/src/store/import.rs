//! Bulk import of historical samples (`vigil-collector import --data DIR FILE.om`): samples
//! are written straight into sealed chunks and rollups, bypassing the log and the head, under
//! an import id of their own — the origin part of their keys ([`super::keys`]). Queries show
//! an origin only once its import is committed, which is one small record in `imports`
//! written after everything else is durable: an import is visible whole or not at all. An
//! import that fails is deleted on the spot; one interrupted by a crash stays invisible and
//! is swept by the background thread of the next open.
//!
//! [`Store::begin_import`] gives an [`Import`] to feed samples to; [`import_openmetrics`]
//! does the command: stream an OpenMetrics file through the parser, show progress, commit,
//! and sum up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vigil_proto::model::{Labels, Sample};

use super::error::StoreError;
use super::files;
use super::head::{overlay, window_start};
use super::keys;
use super::open::META_NEWEST_MS;
use super::sealed::{Staged, WindowWrite};
use super::{Inner, Store, StoreConfig, METRIC_NAME_LABEL};
use crate::openmetrics::{self, OmError};

/// A series with this many samples buffered is written out as soon as the input moves on to
/// another series (files are usually grouped by series).
const FLUSH_SERIES_SAMPLES: usize = 512;
/// More samples than this buffered in all are written out at once, bounding memory (16
/// bytes each).
const MAX_BUFFERED_SAMPLES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ImportState {
    Staging,
    Committed,
}

/// The `imports` record of one import.
#[derive(Debug, Serialize, Deserialize)]
struct ImportRecord {
    state: ImportState,
    source: String,
    n_samples: u64,
}

/// The imports a store knows: which are visible, which an interrupted run left behind.
pub(super) struct Imports {
    tree: sled::Tree,
    committed: RwLock<HashSet<u32>>,
    /// Imports found staging at open: interrupted, to be swept.
    abandoned: Mutex<Vec<u32>>,
    /// Imports running now: retention leaves their series alone.
    pub(super) active: AtomicUsize,
    next_id: Mutex<u32>,
}

impl Imports {
    pub(super) fn load(data_dir: &Path, tree: sled::Tree) -> Result<Imports, StoreError> {
        let mut committed = HashSet::new();
        let mut abandoned = Vec::new();
        let mut last_id = 0;
        for entry in tree.iter() {
            let (key, value) = entry
                .map_err(|error| StoreError::storage(data_dir, "reading the imports", error))?;
            let id = <[u8; 4]>::try_from(key.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::malformed(data_dir, "import id"))?;
            let record: ImportRecord = serde_json::from_slice(&value)
                .map_err(|_| StoreError::malformed(data_dir, format!("record of import {id}")))?;
            match record.state {
                ImportState::Committed => {
                    committed.insert(id);
                }
                ImportState::Staging => abandoned.push(id),
            }
            last_id = last_id.max(id);
        }
        Ok(Imports {
            tree,
            committed: RwLock::new(committed),
            abandoned: Mutex::new(abandoned),
            active: AtomicUsize::new(0),
            next_id: Mutex::new(last_id + 1),
        })
    }

    /// Whether chunks of `origin` are visible: live data always, imports once committed.
    pub(super) fn is_visible(&self, origin: u32) -> bool {
        origin == super::ORIGIN_LIVE
            || self
                .committed
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(&origin)
    }
}

/// What an import stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Distinct series in the input.
    pub n_series: u64,
    pub n_samples: u64,
    /// Everything under the data directory after the import.
    pub bytes_on_disk: u64,
    /// How much the data directory grew.
    pub bytes_added: i64,
}

/// An import in progress; samples go in with [`Import::add`], and nothing is visible before
/// [`Import::commit`]. Dropping it uncommitted deletes what it wrote.
pub struct Import {
    store: Store,
    origin: u32,
    series: HashMap<Vec<u8>, ImportSeries>,
    /// The labels key of the series of the last sample, for the common case of a run of
    /// samples of one series.
    last_key: Vec<u8>,
    n_buffered: usize,
    /// Where the chunks written so far are, until the commit writes the day indexes.
    staged: Staged,
    newest_ms: i64,
    n_samples: u64,
    bytes_before: u64,
    committed: bool,
}

struct ImportSeries {
    series_id: u64,
    windows: BTreeMap<i64, Vec<Sample>>,
    n_buffered: usize,
}

impl Store {
    /// Starts an import; `source` names it in the `imports` record (a file name).
    pub fn begin_import(&self, source: &str) -> Result<Import, StoreError> {
        let inner = &*self.inner;
        let bytes_before = files::dir_size(&inner.data_dir).unwrap_or(0);
        let origin = {
            let mut next_id = inner
                .imports
                .next_id
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let origin = *next_id;
            *next_id += 1;
            origin
        };
        inner.put_import_record(
            origin,
            &ImportRecord {
                state: ImportState::Staging,
                source: source.to_owned(),
                n_samples: 0,
            },
        )?;
        // The staging record must be on disk before any chunk of the import, so that a
        // crash leaves chunks only of imports the next open knows to sweep.
        inner.sync_sled()?;
        inner.imports.active.fetch_add(1, Ordering::SeqCst);
        Ok(Import {
            store: self.clone(),
            origin,
            series: HashMap::new(),
            last_key: Vec::new(),
            n_buffered: 0,
            staged: Staged::default(),
            newest_ms: i64::MIN,
            n_samples: 0,
            bytes_before,
            committed: false,
        })
    }
}

impl Import {
    /// Adds a sample of the series `name{labels}` (`labels` without `__name__`).
    /// `same_series_as_previous` may be set when the caller knows the series is the one of
    /// the previous call, which saves encoding its labels.
    pub fn add(
        &mut self,
        name: &str,
        labels: &Labels,
        sample: Sample,
        same_series_as_previous: bool,
    ) -> Result<(), StoreError> {
        if !same_series_as_previous || self.last_key.is_empty() {
            let key = keys::encode_labels_with_name(METRIC_NAME_LABEL, name, labels);
            if key != self.last_key {
                let previous = std::mem::replace(&mut self.last_key, key);
                if self
                    .series
                    .get(&previous)
                    .is_some_and(|series| series.n_buffered >= FLUSH_SERIES_SAMPLES)
                {
                    self.flush_series(&[previous])?;
                }
                if !self.series.contains_key(&self.last_key) {
                    let mut full_labels = labels.clone();
                    full_labels.insert(METRIC_NAME_LABEL, name);
                    let series_id = self
                        .store
                        .inner
                        .series_for_import(&full_labels, &self.last_key)?;
                    self.series.insert(
                        self.last_key.clone(),
                        ImportSeries {
                            series_id,
                            windows: BTreeMap::new(),
                            n_buffered: 0,
                        },
                    );
                }
            }
        }
        let series = self
            .series
            .get_mut(&self.last_key)
            .expect("the series of the last key is known");
        series
            .windows
            .entry(window_start(sample.timestamp_ms))
            .or_default()
            .push(sample);
        series.n_buffered += 1;
        self.n_buffered += 1;
        self.n_samples += 1;
        self.newest_ms = self.newest_ms.max(sample.timestamp_ms);
        if self.n_buffered >= MAX_BUFFERED_SAMPLES {
            let all: Vec<Vec<u8>> = self.series.keys().cloned().collect();
            self.flush_series(&all)?;
        }
        Ok(())
    }

    /// Samples added so far, and distinct series.
    pub fn progress(&self) -> (u64, u64) {
        (self.n_samples, self.series.len() as u64)
    }

    /// Writes the buffered windows of these series as chunks of this import.
    fn flush_series(&mut self, series_keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut windows = Vec::new();
        for key in series_keys {
            let Some(series) = self.series.get_mut(key) else {
                continue;
            };
            for (start_ms, samples) in std::mem::take(&mut series.windows) {
                windows.push(WindowWrite {
                    series_id: series.series_id,
                    start_ms,
                    samples: overlay(Vec::new(), &samples),
                });
            }
            self.n_buffered -= series.n_buffered;
            series.n_buffered = 0;
        }
        // The chunk files are synced once, at commit: until then nothing of the import is
        // visible, and a crash leaves it to the sweep.
        self.store
            .inner
            .sealed
            .stage_windows(self.origin, windows, &mut self.staged)?;
        Ok(())
    }

    /// Writes what is buffered, makes it durable, then makes the import visible.
    pub fn commit(mut self) -> Result<ImportSummary, StoreError> {
        let all: Vec<Vec<u8>> = self.series.keys().cloned().collect();
        self.flush_series(&all)?;
        let inner = &*self.store.inner;
        inner.sealed.commit_staged(self.origin, &self.staged)?;
        inner.sync_sled()?;
        {
            let mut ingest = inner.lock_ingest();
            ingest.newest_ms = ingest.newest_ms.max(self.newest_ms);
            inner
                .meta
                .insert(META_NEWEST_MS, &(ingest.newest_ms as u64).to_be_bytes())
                .map_err(|error| inner.storage("storing the store's clock", error))?;
        }
        inner.put_import_record(
            self.origin,
            &ImportRecord {
                state: ImportState::Committed,
                source: String::new(),
                n_samples: self.n_samples,
            },
        )?;
        inner.sync_sled()?;
        inner
            .imports
            .committed
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(self.origin);
        self.committed = true;
        let bytes_on_disk = files::dir_size(&inner.data_dir).map_err(|source| StoreError::Io {
            path: inner.data_dir.clone(),
            action: "measuring",
            source,
        })?;
        Ok(ImportSummary {
            n_series: self.series.len() as u64,
            n_samples: self.n_samples,
            bytes_on_disk,
            bytes_added: bytes_on_disk as i64 - self.bytes_before as i64,
        })
    }
}

#[cfg(test)]
impl Import {
    /// Drops the import as a crash would: uncommitted, with nothing cleaned up.
    pub(super) fn abandon_as_in_a_crash(mut self) {
        self.committed = true;
    }

    /// Does all of [`Import::commit`] up to its record (chunks, rollups and day indexes on
    /// disk), then drops the import as a crash would.
    pub(super) fn crash_before_the_commit_record(mut self) {
        let all: Vec<Vec<u8>> = self.series.keys().cloned().collect();
        self.flush_series(&all).unwrap();
        let inner = &*self.store.inner;
        inner
            .sealed
            .commit_staged(self.origin, &self.staged)
            .unwrap();
        inner.sync_sled().unwrap();
        self.committed = true;
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        let inner = &*self.store.inner;
        inner.imports.active.fetch_sub(1, Ordering::SeqCst);
        if self.committed {
            return;
        }
        // Its chunks are in its own files only (the day indexes come at commit).
        let result = inner
            .imports
            .tree
            .remove(self.origin.to_be_bytes())
            .map(|_| ())
            .map_err(|error| inner.storage("deleting an unfinished import", error));
        for files in [&inner.sealed.chunk_files, &inner.sealed.rollup_files] {
            if let Err(error) = files.remove_origin(self.origin) {
                tracing::warn!(%error, import = self.origin, "deleting the files of an unfinished import failed");
            }
        }
        if let Err(error) = result {
            tracing::warn!(%error, import = self.origin, "deleting an unfinished import failed; it stays invisible and is removed at the next start");
        }
    }
}

impl Inner {
    fn put_import_record(&self, origin: u32, record: &ImportRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).expect("an import record serializes");
        self.imports
            .tree
            .insert(origin.to_be_bytes(), bytes)
            .map_err(|error| self.storage(format!("recording import {origin}"), error))?;
        Ok(())
    }

    /// The id of the series with these labels, created if new; unlike
    /// [`Inner::resolve_series`] the head does not take it up.
    fn series_for_import(&self, labels: &Labels, labels_key: &[u8]) -> Result<u64, StoreError> {
        let mut ingest = self.lock_ingest();
        if let Some(series_id) = ingest.head.series_id(labels_key) {
            return Ok(series_id);
        }
        if let Some(series_id) = self.index.lookup(labels_key)? {
            return Ok(series_id);
        }
        let series_id = ingest.next_series_id;
        self.index.create(series_id, labels, labels_key)?;
        ingest.next_series_id += 1;
        Ok(series_id)
    }

    /// Deletes the chunks and rollups of imports an earlier run left uncommitted. They are
    /// invisible meanwhile; this only gives the space back.
    pub(super) fn sweep_aborted_imports(&self) -> Result<(), StoreError> {
        let abandoned: Vec<u32> = std::mem::take(
            &mut *self
                .imports
                .abandoned
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if abandoned.is_empty() {
            return Ok(());
        }
        self.sealed.forget_origin(&abandoned)?;
        for origin in &abandoned {
            for files in [&self.sealed.chunk_files, &self.sealed.rollup_files] {
                files
                    .remove_origin(*origin)
                    .map_err(|source| StoreError::Io {
                        path: self.data_dir.clone(),
                        action: "deleting the files of an unfinished import in",
                        source,
                    })?;
            }
            self.imports
                .tree
                .remove(origin.to_be_bytes())
                .map_err(|error| self.storage("sweeping an unfinished import", error))?;
        }
        tracing::info!(imports = ?abandoned, "removed what interrupted imports left behind");
        Ok(())
    }
}

/// Why `vigil-collector import` stopped. The message is the cause's own line (it names the
/// file and line, or the data directory) and that nothing was imported; the cause is not
/// repeated as a source.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is malformed: `file:line: reason`.
    #[error("{0}; nothing was imported")]
    Input(OmError),
    #[error("{0}; nothing was imported")]
    Store(StoreError),
}

impl From<OmError> for ImportError {
    fn from(error: OmError) -> Self {
        ImportError::Input(error)
    }
}

impl From<StoreError> for ImportError {
    fn from(error: StoreError) -> Self {
        ImportError::Store(error)
    }
}

/// `vigil-collector import --data DIR FILE.om`: streams `file` (OpenMetrics text with
/// timestamps, gzip or not) into the store in `data_dir` (created if missing) as one import.
/// When `progress` is given (stderr on a terminal), a status line is redrawn there.
pub fn import_openmetrics(
    data_dir: &Path,
    file: &Path,
    mut progress: Option<&mut dyn Write>,
) -> Result<ImportSummary, ImportError> {
    let mut reader = openmetrics::open(file)?;
    let store = Store::open(&StoreConfig::new(data_dir))?;
    let file_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let is_gzip = file.extension().is_some_and(|extension| extension == "gz");
    let mut import = store.begin_import(&file.display().to_string())?;
    let started = Instant::now();
    let mut next_report = started + Duration::from_millis(200);
    while let Some(sample) = reader.next_sample()? {
        import.add(
            sample.name,
            sample.labels,
            Sample {
                timestamp_ms: sample.timestamp_ms,
                value: sample.value,
            },
            sample.same_series_as_previous,
        )?;
        if let Some(out) = progress.as_deref_mut() {
            if import.n_samples.is_multiple_of(4096) && Instant::now() >= next_report {
                next_report = Instant::now() + Duration::from_millis(200);
                let (n_samples, n_series) = import.progress();
                let share = if is_gzip || file_bytes == 0 {
                    String::new()
                } else {
                    format!(
                        " ({:.0}%)",
                        reader.bytes_read() as f64 * 100.0 / file_bytes as f64
                    )
                };
                let rate = n_samples as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let _ = write!(
                    out,
                    "\r\x1b[2Kimporting {}: {} read{share}, {n_samples} samples, {n_series} series, {:.0} samples/s",
                    file.display(),
                    human_bytes(reader.bytes_read()),
                    rate
                );
                let _ = out.flush();
            }
        }
    }
    if let Some(out) = progress.as_deref_mut() {
        let _ = write!(out, "\r\x1b[2Kcommitting the import…");
        let _ = out.flush();
    }
    let summary = import.commit();
    if let Some(out) = progress {
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
    drop(store);
    Ok(summary?)
}

/// `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Where [`import_openmetrics`]'s summary goes: a few lines for a person.
pub fn write_summary(
    out: &mut dyn Write,
    data_dir: &Path,
    summary: &ImportSummary,
    elapsed: Duration,
) -> std::io::Result<()> {
    let per_second = summary.n_samples as f64 / elapsed.as_secs_f64().max(1e-3);
    writeln!(
        out,
        "imported {} samples of {} series into {} in {:.1} s ({:.0} samples/s)",
        summary.n_samples,
        summary.n_series,
        data_dir.display(),
        elapsed.as_secs_f64(),
        per_second
    )?;
    let per_sample = if summary.n_samples == 0 {
        0.0
    } else {
        summary.bytes_added.max(0) as f64 / summary.n_samples as f64
    };
    writeln!(
        out,
        "store on disk: {} ({} added, {:.2} bytes/sample)",
        human_bytes(summary.bytes_on_disk),
        human_bytes(summary.bytes_added.max(0) as u64),
        per_sample
    )
}
