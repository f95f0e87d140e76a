//! Sealed data: compressed chunks (one per series, two-hour window and origin) and
//! five-minute rollup blocks (one per series, UTC day and origin). The bytes of both live in
//! append-only day files ([`ChunkFiles`], under `chunks/` and `rollups/`); sled's `chunks`
//! and `rollup_5m` trees say where each live one is, or hold it when it is a few bytes, and
//! an import's are in write-once day indexes ([`super::day_index`]) that its commit writes
//! ([`Sealed::commit_staged`]). Reads take both.
//!
//! Writing a window merges it with the chunk already stored for that key, so late samples
//! and a window sealed in several parts end up in one chunk, and marks its day as pending in
//! `rollup_pending`. A day's block is written once the day is complete ([`Sealed::roll_up`]),
//! from that day's chunks, and written again only if late samples make it pending again.
//! Reading overlays the origins of a window, later origins winning a timestamp; the caller
//! overlays the head on top, and reads pending days from raw samples instead of blocks.
//!
//! Bytes in files are fsynced before sled learns where they are (sled flushes on its own
//! every half second, so a location must never reach its disk first), except for imports,
//! which sync once before they commit. The rest is not durable by itself: the checkpoint
//! ([`super::maintenance`]) flushes and fsyncs sled before the log is trimmed behind it.

use super::varint::{put_varint, take_varint};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use vigil_proto::model::Sample;

use super::chunk;
use super::chunk_files::{day_of, ChunkFiles, Location, DAY_MS};
use super::day_index::{IndexEntry, SpanValue};
use super::error::StoreError;
use super::head::{overlay, window_start, WINDOW_MS};
use super::keys;
use super::rollup::{self, Aggregate};

/// Samples of one window of one series, to be stored.
#[derive(Debug)]
pub(super) struct WindowWrite {
    pub series_id: u64,
    pub start_ms: i64,
    /// Sorted, one per timestamp.
    pub samples: Vec<Sample>,
}

/// What a write stored.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WriteStats {
    pub n_chunks: usize,
    pub chunk_bytes: usize,
}

/// Chunks and blocks this small stay in sled (or the day index) rather than cost a file
/// read.
const INLINE_MAX: usize = 24;
const VALUE_INLINE: u8 = 0;
const VALUE_IN_FILE: u8 = 1;

/// Decodes what the `chunks` and `rollup_5m` trees hold for a chunk or block.
fn decode_span_value(mut bytes: &[u8]) -> Option<SpanValue> {
    let (&tag, rest) = bytes.split_first()?;
    bytes = rest;
    match tag {
        VALUE_INLINE => Some(SpanValue::Inline(bytes.to_vec())),
        VALUE_IN_FILE => {
            let offset = take_varint(&mut bytes)?;
            let len = u32::try_from(take_varint(&mut bytes)?).ok()?;
            bytes
                .is_empty()
                .then_some(SpanValue::InFile(Location { offset, len }))
        }
        _ => None,
    }
}

/// The inverse of [`decode_span_value`].
fn encode_span_value(value: &SpanValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(INLINE_MAX + 1);
    match value {
        SpanValue::Inline(bytes) => {
            out.push(VALUE_INLINE);
            out.extend_from_slice(bytes);
        }
        SpanValue::InFile(location) => {
            out.push(VALUE_IN_FILE);
            put_varint(&mut out, location.offset);
            put_varint(&mut out, u64::from(location.len));
        }
    }
    out
}

/// The chunks an import wrote, kept out of sled until its commit writes them as day
/// indexes ([`Sealed::commit_staged`]).
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// (series, start) → where the chunk is.
    chunks: BTreeMap<(u64, i64), SpanValue>,
    /// (series, day) of every day that holds a chunk.
    days: BTreeSet<(u64, i64)>,
}

/// Where [`Sealed::write_windows`] records the locations of what it wrote.
enum Target<'a> {
    /// sled's `chunks` tree and `rollup_pending`.
    Sled,
    Staged(&'a mut Staged),
}

/// One chunk or block found for a read: its (start, origin) and where it is.
type Found = ((i64, u32), SpanValue);

/// Key of `rollup_pending`: day first, so that the days complete by a time are one range.
fn pending_key(day_ms: i64, series_id: u64, origin: u32) -> [u8; 20] {
    // The same layout as a span key with the first two fields swapped.
    let span = keys::span_key(series_id, day_ms, origin);
    let mut key = [0; 20];
    key[..8].copy_from_slice(&span[8..16]);
    key[8..16].copy_from_slice(&span[..8]);
    key[16..].copy_from_slice(&span[16..]);
    key
}

fn decode_pending_key(key: &[u8]) -> Option<(i64, u64, u32)> {
    let key: &[u8; 20] = key.try_into().ok()?;
    let mut span = [0; 20];
    span[..8].copy_from_slice(&key[8..16]);
    span[8..16].copy_from_slice(&key[..8]);
    span[16..].copy_from_slice(&key[16..]);
    let (series_id, day_ms, origin) = keys::decode_span_key(&span)?;
    Some((day_ms, series_id, origin))
}

/// The sealed data of a store.
#[derive(Clone)]
pub(super) struct Sealed {
    pub data_dir: PathBuf,
    /// (series, window, origin) → where the chunk is.
    pub chunks: sled::Tree,
    /// (series, day, origin) → where the rollup block is.
    pub rollups: sled::Tree,
    /// (day, series, origin) → nothing: days whose block is missing or out of date.
    pub pending: sled::Tree,
    pub chunk_files: Arc<ChunkFiles>,
    pub rollup_files: Arc<ChunkFiles>,
}

impl Sealed {
    fn storage(&self, action: impl Into<String>, error: sled::Error) -> StoreError {
        StoreError::storage(&self.data_dir, action, error)
    }

    fn damaged(&self, what: String, error: impl std::fmt::Display) -> StoreError {
        StoreError::malformed(&self.data_dir, format!("{what} ({error})"))
    }

    /// The bytes a chunk or block of (origin, start) stands for.
    fn stored_bytes(
        &self,
        files: &ChunkFiles,
        origin: u32,
        start_ms: i64,
        value: &SpanValue,
    ) -> Result<Vec<u8>, StoreError> {
        match value {
            SpanValue::Inline(bytes) => Ok(bytes.clone()),
            SpanValue::InFile(location) => {
                files
                    .read(origin, day_of(start_ms), *location)
                    .map_err(|source| StoreError::Io {
                        path: files.path(origin, day_of(start_ms)),
                        action: "reading",
                        source,
                    })
            }
        }
    }

    /// The location in a sled entry (`key`, `value`) of `chunks` or `rollup_5m`.
    fn sled_entry(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<(u64, i64, u32, SpanValue), StoreError> {
        let (series_id, start_ms, origin) = keys::decode_span_key(key)
            .ok_or_else(|| StoreError::malformed(&self.data_dir, "chunk or rollup key"))?;
        let value = decode_span_value(value).ok_or_else(|| {
            StoreError::malformed(
                &self.data_dir,
                format!("location of data of series {series_id} at {start_ms}"),
            )
        })?;
        Ok((series_id, start_ms, origin, value))
    }

    /// Stores `bytes` for (origin, time): inline, or appended to a file.
    fn store_bytes(
        &self,
        files: &ChunkFiles,
        origin: u32,
        start_ms: i64,
        bytes: &[u8],
    ) -> Result<SpanValue, StoreError> {
        if bytes.len() <= INLINE_MAX {
            return Ok(SpanValue::Inline(bytes.to_vec()));
        }
        let day_ms = day_of(start_ms);
        let location = files
            .append(origin, day_ms, bytes)
            .map_err(|source| StoreError::Io {
                path: files.path(origin, day_ms),
                action: "appending to",
                source,
            })?;
        Ok(SpanValue::InFile(location))
    }

    /// The chunks (or blocks) of `series_id` starting in `[first_ms, last_ms]` that sled and
    /// the day indexes hold, of the origins `visible` accepts, sorted by (start, origin).
    /// sled wins where both hold one.
    fn find_spans(
        &self,
        tree: &sled::Tree,
        files: &ChunkFiles,
        series_id: u64,
        first_ms: i64,
        last_ms: i64,
        visible: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Found>, StoreError> {
        let mut found: BTreeMap<(i64, u32), SpanValue> = BTreeMap::new();
        for (day_ms, origin) in files.indexed_days(day_of(first_ms), last_ms) {
            if !visible(origin) {
                continue;
            }
            let index = files
                .index(origin, day_ms)
                .map_err(|error| self.damaged("day index".to_owned(), error))?;
            for entry in index.range(series_id, first_ms, last_ms) {
                found.insert((entry.start_ms, origin), entry.value.clone());
            }
        }
        let first = keys::span_key(series_id, first_ms, 0);
        let last = keys::span_key(series_id, last_ms, u32::MAX);
        for entry in tree.range(first..=last) {
            let (key, value) = entry.map_err(|error| {
                self.storage(format!("reading chunks of series {series_id}"), error)
            })?;
            let (_, start_ms, origin, value) = self.sled_entry(&key, &value)?;
            if visible(origin) {
                found.insert((start_ms, origin), value);
            }
        }
        Ok(found.into_iter().collect())
    }

    fn sync_files(&self, files: &ChunkFiles, origin: Option<u32>) -> Result<(), StoreError> {
        files.sync(origin).map_err(|source| StoreError::Io {
            path: self.data_dir.clone(),
            action: "syncing the chunk and rollup files in",
            source,
        })
    }

    /// Stores windows under `origin`, merging each with what that key already holds, and
    /// marks their days pending for rollups. With `sync_files`, chunk bytes are fsynced
    /// before sled learns where they are.
    pub fn write_windows(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
        sync_files: bool,
    ) -> Result<WriteStats, StoreError> {
        self.write_windows_to(origin, windows, sync_files, Target::Sled)
    }

    /// Stores an import's windows under `origin` like [`Sealed::write_windows`], but keeps
    /// their locations in `staged` instead of sled; nothing is synced.
    pub fn stage_windows(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
        staged: &mut Staged,
    ) -> Result<WriteStats, StoreError> {
        self.write_windows_to(origin, windows, false, Target::Staged(staged))
    }

    fn write_windows_to(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
        sync_files: bool,
        mut target: Target<'_>,
    ) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        let mut chunk_batch = sled::Batch::default();
        let mut pending_batch = sled::Batch::default();
        for window in windows {
            // A window is one chunk, or several when it holds more than a chunk may (a series
            // sampled every millisecond): the first at the window's start, each other one
            // keyed by its first sample, so that they read back in order.
            let window_last_ms = window.start_ms.saturating_add(WINDOW_MS - 1);
            let existing: Vec<(i64, SpanValue)> = match &target {
                Target::Sled => {
                    let first = keys::span_key(window.series_id, window.start_ms, origin);
                    let last = keys::span_key(window.series_id, window_last_ms, origin);
                    let mut existing = Vec::new();
                    for entry in self.chunks.range(first..=last) {
                        let (key, value) = entry.map_err(|error| {
                            self.storage("reading a chunk to merge into", error)
                        })?;
                        let (_, start_ms, other, value) = self.sled_entry(&key, &value)?;
                        if other == origin {
                            existing.push((start_ms, value));
                        }
                    }
                    existing
                }
                Target::Staged(staged) => staged
                    .chunks
                    .range((window.series_id, window.start_ms)..=(window.series_id, window_last_ms))
                    .map(|(&(_, start_ms), value)| (start_ms, value.clone()))
                    .collect(),
            };
            let mut stored: Vec<Sample> = Vec::new();
            for (start_ms, value) in &existing {
                let bytes = self.stored_bytes(&self.chunk_files, origin, *start_ms, value)?;
                let decoded = chunk::decode(&bytes).map_err(|error| {
                    self.damaged(
                        format!(
                            "chunk of series {} at {}",
                            window.series_id, window.start_ms
                        ),
                        error,
                    )
                })?;
                // The parts of a window hold consecutive runs, so they join in order.
                stored.extend(decoded);
            }
            let samples = if existing.is_empty() {
                window.samples
            } else {
                overlay(stored, &window.samples)
            };
            let mut written_starts = Vec::new();
            for (index, part) in samples.chunks(chunk::MAX_SAMPLES).enumerate() {
                let part_start_ms = if index == 0 {
                    window.start_ms
                } else {
                    part[0].timestamp_ms
                };
                let encoded = chunk::encode(part).map_err(|error| StoreError::Codec {
                    what: format!("series {} at {}", window.series_id, part_start_ms),
                    reason: error.to_string(),
                })?;
                stats.n_chunks += 1;
                stats.chunk_bytes += encoded.len();
                let value =
                    self.store_bytes(&self.chunk_files, origin, window.start_ms, &encoded)?;
                match &mut target {
                    Target::Sled => {
                        let key = keys::span_key(window.series_id, part_start_ms, origin);
                        chunk_batch.insert(&key[..], encode_span_value(&value));
                    }
                    Target::Staged(staged) => {
                        staged
                            .chunks
                            .insert((window.series_id, part_start_ms), value);
                    }
                }
                written_starts.push(part_start_ms);
            }
            for (start_ms, _) in existing {
                if !written_starts.contains(&start_ms) {
                    match &mut target {
                        Target::Sled => {
                            chunk_batch
                                .remove(&keys::span_key(window.series_id, start_ms, origin)[..]);
                        }
                        Target::Staged(staged) => {
                            staged.chunks.remove(&(window.series_id, start_ms));
                        }
                    }
                }
            }
            if samples.is_empty() {
                continue;
            }
            match &mut target {
                Target::Sled => pending_batch.insert(
                    &pending_key(day_of(window.start_ms), window.series_id, origin)[..],
                    &[][..],
                ),
                Target::Staged(staged) => {
                    staged
                        .days
                        .insert((window.series_id, day_of(window.start_ms)));
                }
            }
        }
        if sync_files {
            self.sync_files(&self.chunk_files, Some(origin))?;
        }
        if matches!(target, Target::Staged(_)) {
            return Ok(stats);
        }
        // Pending first: a crash between the two leaves a day rolled up again, never a
        // day with new chunks and an old block.
        self.pending
            .apply_batch(pending_batch)
            .map_err(|error| self.storage("marking days for rollups", error))?;
        self.chunks
            .apply_batch(chunk_batch)
            .map_err(|error| self.storage("storing chunk locations", error))?;
        Ok(stats)
    }

    /// Makes an import's staged chunks durable and findable: writes the rollup block of
    /// every day they hold, syncs the origin's chunk and rollup files, then writes the day
    /// indexes of both. Nothing is visible before the import's commit record; a crash
    /// before it leaves files that the sweep of an unfinished import deletes. Returns how
    /// many rollup blocks it wrote.
    pub fn commit_staged(&self, origin: u32, staged: &Staged) -> Result<usize, StoreError> {
        let mut blocks: BTreeMap<(i64, u64), SpanValue> = BTreeMap::new();
        for &(series_id, day_ms) in &staged.days {
            let mut samples: Vec<Sample> = Vec::new();
            let day_last_ms = day_ms.saturating_add(DAY_MS - 1);
            let mut window: Option<(i64, Vec<Sample>)> = None;
            for (&(_, start_ms), value) in staged
                .chunks
                .range((series_id, day_ms)..=(series_id, day_last_ms))
            {
                let bytes = self.stored_bytes(&self.chunk_files, origin, start_ms, value)?;
                let decoded = chunk::decode(&bytes).map_err(|error| {
                    self.damaged(format!("chunk of series {series_id} at {start_ms}"), error)
                })?;
                let start = window_start(start_ms);
                window = match window.take() {
                    Some((previous, base)) if previous == start => {
                        Some((start, overlay(base, &decoded)))
                    }
                    previous => {
                        if let Some((_, done)) = previous {
                            samples.extend(done);
                        }
                        Some((start, decoded))
                    }
                };
            }
            if let Some((_, done)) = window {
                samples.extend(done);
            }
            if samples.is_empty() {
                continue;
            }
            let block = rollup::encode_block(&rollup::bucketize(&samples)).map_err(|error| {
                StoreError::Codec {
                    what: format!("rollups of series {series_id} at {day_ms}"),
                    reason: error.to_string(),
                }
            })?;
            let value = self.store_bytes(&self.rollup_files, origin, day_ms, &block)?;
            blocks.insert((day_ms, series_id), value);
        }
        self.sync_files(&self.chunk_files, Some(origin))?;
        self.sync_files(&self.rollup_files, Some(origin))?;
        let write = |files: &ChunkFiles, by_day: BTreeMap<i64, Vec<IndexEntry>>| {
            for (day_ms, entries) in by_day {
                files
                    .write_index(origin, day_ms, &entries)
                    .map_err(|source| StoreError::Io {
                        path: files.index_path(origin, day_ms),
                        action: "writing the day index",
                        source,
                    })?;
            }
            Ok::<(), StoreError>(())
        };
        let mut chunk_days: BTreeMap<i64, Vec<IndexEntry>> = BTreeMap::new();
        for (&(series_id, start_ms), value) in &staged.chunks {
            chunk_days
                .entry(day_of(start_ms))
                .or_default()
                .push(IndexEntry {
                    series_id,
                    start_ms,
                    value: value.clone(),
                });
        }
        write(&self.chunk_files, chunk_days)?;
        let n_blocks = blocks.len();
        let mut block_days: BTreeMap<i64, Vec<IndexEntry>> = BTreeMap::new();
        for ((day_ms, series_id), value) in blocks {
            block_days.entry(day_ms).or_default().push(IndexEntry {
                series_id,
                start_ms: day_ms,
                value,
            });
        }
        write(&self.rollup_files, block_days)?;
        Ok(n_blocks)
    }

    /// Whether a day index holds a chunk or block of `series_id`.
    pub fn indexed_series(&self, series_id: u64) -> Result<bool, StoreError> {
        for files in [&*self.chunk_files, &*self.rollup_files] {
            for (day_ms, origin) in files.indexed_days(i64::MIN, i64::MAX) {
                let index = files
                    .index(origin, day_ms)
                    .map_err(|error| self.damaged("day index".to_owned(), error))?;
                if index.holds_series(series_id) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Writes the rollup blocks of pending days that start before `days_before_ms` (of
    /// `origin` only, when given), each from its day's chunks, then clears them. Returns how
    /// many blocks it wrote.
    pub fn roll_up(
        &self,
        origin: Option<u32>,
        days_before_ms: i64,
        sync_files: bool,
    ) -> Result<usize, StoreError> {
        let first = pending_key(i64::MIN, 0, 0);
        let last = pending_key(days_before_ms, 0, 0);
        if first >= last {
            return Ok(0);
        }
        let mut n_blocks = 0;
        let mut todo = Vec::new();
        for key in self.pending.range(first..last).keys() {
            let key = key.map_err(|error| self.storage("reading days pending rollup", error))?;
            let parts = decode_pending_key(&key)
                .ok_or_else(|| StoreError::malformed(&self.data_dir, "rollup pending key"))?;
            if origin.is_none_or(|origin| origin == parts.2) {
                todo.push(parts);
            }
        }
        for group in todo.chunks(1024) {
            let mut block_batch = sled::Batch::default();
            let mut done_batch = sled::Batch::default();
            for &(day_ms, series_id, day_origin) in group {
                let samples = self.origin_samples(series_id, day_ms, day_origin)?;
                let block_key = keys::span_key(series_id, day_ms, day_origin);
                if samples.is_empty() {
                    block_batch.remove(&block_key[..]);
                } else {
                    let block =
                        rollup::encode_block(&rollup::bucketize(&samples)).map_err(|error| {
                            StoreError::Codec {
                                what: format!("rollups of series {series_id} at {day_ms}"),
                                reason: error.to_string(),
                            }
                        })?;
                    let value = self.store_bytes(&self.rollup_files, day_origin, day_ms, &block)?;
                    block_batch.insert(&block_key[..], encode_span_value(&value));
                    n_blocks += 1;
                }
                done_batch.remove(&pending_key(day_ms, series_id, day_origin)[..]);
            }
            if sync_files {
                self.sync_files(&self.rollup_files, origin)?;
            }
            self.rollups
                .apply_batch(block_batch)
                .map_err(|error| self.storage("storing rollup locations", error))?;
            self.pending
                .apply_batch(done_batch)
                .map_err(|error| self.storage("clearing days pending rollup", error))?;
        }
        Ok(n_blocks)
    }

    /// The samples of one series, day and origin (for its rollup block).
    fn origin_samples(
        &self,
        series_id: u64,
        day_ms: i64,
        origin: u32,
    ) -> Result<Vec<Sample>, StoreError> {
        let only_this = |other: u32| other == origin;
        self.samples(
            series_id,
            day_ms,
            day_ms.saturating_add(DAY_MS - 1),
            &only_this,
        )
    }

    /// Sealed samples of `series_id` in `[start_ms, end_ms]` from the origins `visible`
    /// accepts, sorted, one per timestamp.
    pub fn samples(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
        visible: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<Sample>, StoreError> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut window: Option<(i64, Vec<Sample>)> = None;
        let flush = |window: Option<(i64, Vec<Sample>)>, samples: &mut Vec<Sample>| {
            if let Some((_, window_samples)) = window {
                samples.extend(
                    window_samples
                        .into_iter()
                        .filter(|s| s.timestamp_ms >= start_ms && s.timestamp_ms <= end_ms),
                );
            }
        };
        let found = self.find_spans(
            &self.chunks,
            &self.chunk_files,
            series_id,
            window_start(start_ms),
            end_ms,
            visible,
        )?;
        for ((window_start_ms, origin), value) in found {
            let bytes = self.stored_bytes(&self.chunk_files, origin, window_start_ms, &value)?;
            let decoded = chunk::decode(&bytes).map_err(|error| {
                self.damaged(
                    format!("chunk of series {series_id} at {window_start_ms}"),
                    error,
                )
            })?;
            // Parts of one window (several when it outgrew a chunk) and its origins overlay.
            let window_start_ms = window_start(window_start_ms);
            window = match window.take() {
                Some((start, base)) if start == window_start_ms => {
                    Some((start, overlay(base, &decoded)))
                }
                previous => {
                    flush(previous, &mut samples);
                    Some((window_start_ms, decoded))
                }
            };
        }
        flush(window, &mut samples);
        Ok(samples)
    }

    /// Days of `series_id` from `start_ms` to `end_ms` whose block is missing or out of date
    /// for an origin `visible` accepts: a query reads those from raw samples.
    pub fn pending_days(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
        visible: &dyn Fn(u32) -> bool,
    ) -> Result<BTreeSet<i64>, StoreError> {
        let mut days = BTreeSet::new();
        // Only days that hold chunks of the series can be pending; walking the query's
        // range day by day instead would take forever on an open-ended range.
        let chunk_range = keys::span_key(series_id, day_of(start_ms), 0)
            ..=keys::span_key(series_id, end_ms, u32::MAX);
        let day_of_chunk =
            |key: Option<sled::Result<sled::IVec>>| -> Result<Option<i64>, StoreError> {
                match key {
                    None => Ok(None),
                    Some(key) => {
                        let key = key.map_err(|error| self.storage("reading chunk keys", error))?;
                        let (_, window_start_ms, _) = keys::decode_span_key(&key)
                            .ok_or_else(|| StoreError::malformed(&self.data_dir, "chunk key"))?;
                        Ok(Some(day_of(window_start_ms)))
                    }
                }
            };
        let Some(first_day) = day_of_chunk(self.chunks.range(chunk_range.clone()).keys().next())?
        else {
            return Ok(days);
        };
        let last_day =
            day_of_chunk(self.chunks.range(chunk_range).keys().next_back())?.unwrap_or(first_day);
        let mut day_ms = first_day.max(day_of(start_ms));
        while day_ms <= end_ms.min(last_day) {
            let prefix = &pending_key(day_ms, series_id, 0)[..16];
            for key in self.pending.scan_prefix(prefix).keys() {
                let key =
                    key.map_err(|error| self.storage("reading days pending rollup", error))?;
                if decode_pending_key(&key).is_some_and(|(_, _, origin)| visible(origin)) {
                    days.insert(day_ms);
                    break;
                }
            }
            let Some(next) = day_ms.checked_add(DAY_MS) else {
                break;
            };
            day_ms = next;
        }
        Ok(days)
    }

    /// Rollup buckets of `series_id` starting in `[start_ms, end_ms]` from the blocks of the
    /// origins `visible` accepts, leaving out the days in `skip_days`. Buckets that several
    /// origins hold are added up.
    pub fn block_buckets(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
        visible: &dyn Fn(u32) -> bool,
        skip_days: &BTreeSet<i64>,
    ) -> Result<BTreeMap<i64, Aggregate>, StoreError> {
        let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
        let found = self.find_spans(
            &self.rollups,
            &self.rollup_files,
            series_id,
            day_of(start_ms),
            end_ms,
            visible,
        )?;
        for ((day_ms, origin), value) in found {
            if skip_days.contains(&day_ms) {
                continue;
            }
            let bytes = self.stored_bytes(&self.rollup_files, origin, day_ms, &value)?;
            let block = rollup::decode_block(&bytes).map_err(|error| {
                self.damaged(
                    format!("rollup block of series {series_id} at {day_ms}"),
                    error,
                )
            })?;
            for (bucket_ms, aggregate) in block {
                if bucket_ms < start_ms || bucket_ms > end_ms {
                    continue;
                }
                buckets
                    .entry(bucket_ms)
                    .and_modify(|existing| existing.add(&aggregate))
                    .or_insert(aggregate);
            }
        }
        Ok(buckets)
    }

    /// Deletes every entry of `origin` in the three trees (an import that did not commit).
    pub fn forget_origin(&self, origins: &[u32]) -> Result<(), StoreError> {
        for (tree, is_pending) in [
            (&self.chunks, false),
            (&self.rollups, false),
            (&self.pending, true),
        ] {
            let mut batch = sled::Batch::default();
            for key in tree.iter().keys() {
                let key =
                    key.map_err(|error| self.storage("sweeping an unfinished import", error))?;
                let origin = if is_pending {
                    decode_pending_key(&key).map(|(_, _, origin)| origin)
                } else {
                    keys::decode_span_key(&key).map(|(_, _, origin)| origin)
                };
                if origin.is_some_and(|origin| origins.contains(&origin)) {
                    batch.remove(key);
                }
            }
            tree.apply_batch(batch)
                .map_err(|error| self.storage("sweeping an unfinished import", error))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pending_keys_sort_by_day_then_series_and_read_back(
            a in (any::<i64>(), 0u64..4, 0u32..3),
            b in (any::<i64>(), 0u64..4, 0u32..3),
        ) {
            prop_assert_eq!(pending_key(a.0, a.1, a.2).cmp(&pending_key(b.0, b.1, b.2)), a.cmp(&b));
            prop_assert_eq!(decode_pending_key(&pending_key(a.0, a.1, a.2)), Some(a));
        }
    }
}
