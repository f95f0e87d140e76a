//! Sealed data: compressed chunks (one per series, two-hour window and origin) and
//! five-minute rollup blocks (one per series, UTC day and origin). The bytes of both live in
//! append-only day files ([`ChunkFiles`], under `chunks/` and `rollups/`); sled's `chunks`
//! and `rollup_5m` trees say where each one is, or hold it when it is a few bytes.
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

/// Chunks and blocks this small stay in sled rather than cost a file read.
const INLINE_MAX: usize = 24;
const VALUE_INLINE: u8 = 0;
const VALUE_IN_FILE: u8 = 1;

/// What the `chunks` and `rollup_5m` trees hold for a chunk or block.
enum StoredValue<'a> {
    Inline(&'a [u8]),
    InFile(Location),
}

impl<'a> StoredValue<'a> {
    fn decode(mut bytes: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        bytes = rest;
        match tag {
            VALUE_INLINE => Some(StoredValue::Inline(bytes)),
            VALUE_IN_FILE => {
                let offset = take_varint(&mut bytes)?;
                let len = u32::try_from(take_varint(&mut bytes)?).ok()?;
                bytes
                    .is_empty()
                    .then_some(StoredValue::InFile(Location { offset, len }))
            }
            _ => None,
        }
    }
}

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

    /// The bytes a `chunks` or `rollup_5m` entry (`key`, `value`) stands for.
    fn stored_bytes(
        &self,
        files: &ChunkFiles,
        key: &[u8],
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let (series_id, start_ms, origin) = keys::decode_span_key(key)
            .ok_or_else(|| StoreError::malformed(&self.data_dir, "chunk or rollup key"))?;
        match StoredValue::decode(value) {
            Some(StoredValue::Inline(bytes)) => Ok(bytes.to_vec()),
            Some(StoredValue::InFile(location)) => files
                .read(origin, day_of(start_ms), location)
                .map_err(|source| StoreError::Io {
                    path: files.path(origin, day_of(start_ms)),
                    action: "reading",
                    source,
                }),
            None => Err(StoreError::malformed(
                &self.data_dir,
                format!("location of data of series {series_id} at {start_ms}"),
            )),
        }
    }

    /// The value that stores `bytes` for (origin, time): inline, or appended to a file.
    fn store_bytes(
        &self,
        files: &ChunkFiles,
        origin: u32,
        start_ms: i64,
        bytes: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut value = Vec::with_capacity(INLINE_MAX + 1);
        if bytes.len() <= INLINE_MAX {
            value.push(VALUE_INLINE);
            value.extend_from_slice(bytes);
        } else {
            let day_ms = day_of(start_ms);
            let location =
                files
                    .append(origin, day_ms, bytes)
                    .map_err(|source| StoreError::Io {
                        path: files.path(origin, day_ms),
                        action: "appending to",
                        source,
                    })?;
            value.push(VALUE_IN_FILE);
            put_varint(&mut value, location.offset);
            put_varint(&mut value, u64::from(location.len));
        }
        Ok(value)
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
    /// before sled learns where they are; an import passes `false` and syncs before it
    /// commits.
    pub fn write_windows(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
        sync_files: bool,
    ) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        let mut chunk_batch = sled::Batch::default();
        let mut pending_batch = sled::Batch::default();
        for window in windows {
            // A window is one chunk, or several when it holds more than a chunk may (a series
            // sampled every millisecond): the first at the window's start, each other one
            // keyed by its first sample, so that they read back in order.
            let first = keys::span_key(window.series_id, window.start_ms, origin);
            let last = keys::span_key(
                window.series_id,
                window.start_ms.saturating_add(WINDOW_MS - 1),
                origin,
            );
            let mut stored_keys = Vec::new();
            let mut stored: Vec<Sample> = Vec::new();
            for entry in self.chunks.range(first..=last) {
                let (key, value) =
                    entry.map_err(|error| self.storage("reading a chunk to merge into", error))?;
                if keys::decode_span_key(&key).is_none_or(|(_, _, other)| other != origin) {
                    continue;
                }
                let bytes = self.stored_bytes(&self.chunk_files, &key, &value)?;
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
                stored_keys.push(key);
            }
            let samples = if stored_keys.is_empty() {
                window.samples
            } else {
                overlay(stored, &window.samples)
            };
            let mut written_keys = Vec::new();
            for (index, part) in samples.chunks(chunk::MAX_SAMPLES).enumerate() {
                let part_start_ms = if index == 0 {
                    window.start_ms
                } else {
                    part[0].timestamp_ms
                };
                let key = keys::span_key(window.series_id, part_start_ms, origin);
                let encoded = chunk::encode(part).map_err(|error| StoreError::Codec {
                    what: format!("series {} at {}", window.series_id, part_start_ms),
                    reason: error.to_string(),
                })?;
                stats.n_chunks += 1;
                stats.chunk_bytes += encoded.len();
                let value =
                    self.store_bytes(&self.chunk_files, origin, window.start_ms, &encoded)?;
                chunk_batch.insert(&key[..], value);
                written_keys.push(key);
            }
            for key in stored_keys {
                if !written_keys.iter().any(|written| written[..] == key[..]) {
                    chunk_batch.remove(key);
                }
            }
            if samples.is_empty() {
                continue;
            }
            pending_batch.insert(
                &pending_key(day_of(window.start_ms), window.series_id, origin)[..],
                &[][..],
            );
        }
        if sync_files {
            self.sync_files(&self.chunk_files, Some(origin))?;
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
                    block_batch.insert(&block_key[..], value);
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
        let first = keys::span_key(series_id, window_start(start_ms), 0);
        let last = keys::span_key(series_id, end_ms, u32::MAX);
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
        for entry in self.chunks.range(first..=last) {
            let (key, value) = entry.map_err(|error| {
                self.storage(format!("reading chunks of series {series_id}"), error)
            })?;
            let (_, window_start_ms, origin) = keys::decode_span_key(&key)
                .ok_or_else(|| StoreError::malformed(&self.data_dir, "chunk key"))?;
            if !visible(origin) {
                continue;
            }
            let bytes = self.stored_bytes(&self.chunk_files, &key, &value)?;
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
        let first = keys::span_key(series_id, day_of(start_ms), 0);
        let last = keys::span_key(series_id, end_ms, u32::MAX);
        let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for entry in self.rollups.range(first..=last) {
            let (key, value) = entry.map_err(|error| {
                self.storage(format!("reading rollups of series {series_id}"), error)
            })?;
            let (_, day_ms, origin) = keys::decode_span_key(&key)
                .ok_or_else(|| StoreError::malformed(&self.data_dir, "rollup key"))?;
            if !visible(origin) || skip_days.contains(&day_ms) {
                continue;
            }
            let bytes = self.stored_bytes(&self.rollup_files, &key, &value)?;
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

    /// Deletes the pending marks of `origin` for these (series, day) pairs.
    pub fn forget_pending(
        &self,
        origin: u32,
        days: &BTreeSet<(u64, i64)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for &(series_id, day_ms) in days {
            batch.remove(&pending_key(day_ms, series_id, origin)[..]);
        }
        self.pending
            .apply_batch(batch)
            .map_err(|error| self.storage("clearing days pending rollup", error))
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
