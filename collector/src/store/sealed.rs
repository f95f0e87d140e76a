//! Sealed data: compressed chunks (one per series, two-hour window and origin; the bytes in
//! [`ChunkFiles`], where they are in sled's `chunks` tree) and five-minute rollups (sled's
//! `rollup_5m`, one block per series, day and origin).
//! Writing a window merges it with the chunk already stored for that key, so late samples
//! and a window sealed in several parts end up in one chunk, and recomputes the window's
//! rollup buckets from the merged samples. Reading overlays the origins of a window, later
//! origins winning a timestamp, and the caller overlays the head on top.
//!
//! A chunk's bytes are fsynced before sled learns where they are (sled flushes on its own
//! every half second, so a location must never reach its disk first), except for imports,
//! which sync once before they commit. The rest is not durable by itself: the checkpoint
//! ([`super::maintenance`]) flushes and fsyncs sled before the log is trimmed behind it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use vigil_proto::model::Sample;

use super::chunk;
use super::chunk_files::{day_of, ChunkFiles, Location};
use super::error::StoreError;
use super::head::{overlay, WINDOW_MS};
use super::keys;
use super::rollup::{self, Aggregate, BLOCK_MS};

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

/// A window's start and its rollup buckets, to replace in a day's block.
type WindowBuckets = (i64, Vec<(i64, Aggregate)>);

/// Rollup blocks written by [`Sealed::write_chunks`], not yet applied.
pub(super) struct PendingRollups(sled::Batch);

/// Chunks this small stay in sled rather than cost a file read.
const INLINE_MAX: usize = 24;
const VALUE_INLINE: u8 = 0;
const VALUE_IN_FILE: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// What the `chunks` tree holds for a chunk.
enum ChunkValue<'a> {
    Inline(&'a [u8]),
    InFile(Location),
}

impl<'a> ChunkValue<'a> {
    fn decode(mut bytes: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        bytes = rest;
        match tag {
            VALUE_INLINE => Some(ChunkValue::Inline(bytes)),
            VALUE_IN_FILE => {
                let offset = take_varint(&mut bytes)?;
                let len = u32::try_from(take_varint(&mut bytes)?).ok()?;
                bytes
                    .is_empty()
                    .then_some(ChunkValue::InFile(Location { offset, len }))
            }
            _ => None,
        }
    }
}

/// The sealed data of a store.
#[derive(Clone)]
pub(super) struct Sealed {
    pub data_dir: PathBuf,
    /// (series, window, origin) → where the chunk is.
    pub chunks: sled::Tree,
    pub rollups: sled::Tree,
    pub files: Arc<ChunkFiles>,
}

impl Sealed {
    fn storage(&self, action: impl Into<String>, error: sled::Error) -> StoreError {
        StoreError::storage(&self.data_dir, action, error)
    }

    fn damaged(&self, what: String, error: impl std::fmt::Display) -> StoreError {
        StoreError::malformed(&self.data_dir, format!("{what} ({error})"))
    }

    /// The bytes of the chunk whose `chunks` entry is (`key`, `value`).
    fn chunk_bytes(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (series_id, start_ms, origin) = keys::decode_span_key(key)
            .ok_or_else(|| StoreError::malformed(&self.data_dir, "chunk key"))?;
        match ChunkValue::decode(value) {
            Some(ChunkValue::Inline(bytes)) => Ok(bytes.to_vec()),
            Some(ChunkValue::InFile(location)) => self
                .files
                .read(origin, day_of(start_ms), location)
                .map_err(|source| StoreError::Io {
                    path: self.files.path(origin, day_of(start_ms)),
                    action: "reading a chunk from",
                    source,
                }),
            None => Err(StoreError::malformed(
                &self.data_dir,
                format!("location of the chunk of series {series_id} at {start_ms}"),
            )),
        }
    }

    /// Stores windows under `origin`, merging each with what that key already holds, and
    /// rewrites the rollup blocks they touch.
    pub fn write_windows(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
    ) -> Result<WriteStats, StoreError> {
        let (stats, rollups) = self.write_chunks(origin, windows, true)?;
        self.apply_rollups(rollups)?;
        Ok(stats)
    }

    /// Applies rollup blocks made by [`Sealed::write_chunks`], atomically.
    pub fn apply_rollups(&self, rollups: PendingRollups) -> Result<(), StoreError> {
        self.rollups
            .apply_batch(rollups.0)
            .map_err(|error| self.storage("storing rollups", error))
    }

    /// The first half of [`Sealed::write_windows`]: stores the chunks and returns the
    /// rollup blocks to apply, so that the checkpoint can apply them while queries of
    /// rollups wait (a window must not count both in the head and in sled). With
    /// `sync_files`, chunk bytes are fsynced before sled learns where they are; an import
    /// passes `false` and syncs before it commits.
    pub fn write_chunks(
        &self,
        origin: u32,
        windows: Vec<WindowWrite>,
        sync_files: bool,
    ) -> Result<(WriteStats, PendingRollups), StoreError> {
        let mut stats = WriteStats::default();
        let mut chunk_batch = sled::Batch::default();
        let mut rollup_updates: BTreeMap<(u64, i64), Vec<WindowBuckets>> = BTreeMap::new();
        for window in windows {
            let key = keys::span_key(window.series_id, window.start_ms, origin);
            let existing = self
                .chunks
                .get(key)
                .map_err(|error| self.storage("reading a chunk to merge into", error))?;
            let samples = match existing {
                Some(value) => {
                    let bytes = self.chunk_bytes(&key, &value)?;
                    let stored = chunk::decode(&bytes).map_err(|error| {
                        self.damaged(
                            format!(
                                "chunk of series {} at {}",
                                window.series_id, window.start_ms
                            ),
                            error,
                        )
                    })?;
                    overlay(stored, &window.samples)
                }
                None => window.samples,
            };
            if samples.is_empty() {
                continue;
            }
            let encoded = chunk::encode(&samples).map_err(|error| StoreError::Codec {
                what: format!("series {} at {}", window.series_id, window.start_ms),
                reason: error.to_string(),
            })?;
            stats.n_chunks += 1;
            stats.chunk_bytes += encoded.len();
            let mut value = Vec::with_capacity(INLINE_MAX + 1);
            if encoded.len() <= INLINE_MAX {
                value.push(VALUE_INLINE);
                value.extend_from_slice(&encoded);
            } else {
                let day_ms = day_of(window.start_ms);
                let location = self
                    .files
                    .append(origin, day_ms, &encoded)
                    .map_err(|source| StoreError::Io {
                        path: self.files.path(origin, day_ms),
                        action: "appending a chunk to",
                        source,
                    })?;
                value.push(VALUE_IN_FILE);
                put_varint(&mut value, location.offset);
                put_varint(&mut value, u64::from(location.len));
            }
            chunk_batch.insert(&key[..], value);
            rollup_updates
                .entry((window.series_id, rollup::align(window.start_ms, BLOCK_MS)))
                .or_default()
                .push((window.start_ms, rollup::bucketize(&samples)));
        }
        let mut rollup_batch = sled::Batch::default();
        for ((series_id, day_ms), spans) in rollup_updates {
            let key = keys::span_key(series_id, day_ms, origin);
            let mut block = match self
                .rollups
                .get(key)
                .map_err(|error| self.storage("reading a rollup block to merge into", error))?
            {
                Some(bytes) => rollup::decode_block(&bytes).map_err(|error| {
                    self.damaged(
                        format!("rollup block of series {series_id} at {day_ms}"),
                        error,
                    )
                })?,
                None => Vec::new(),
            };
            for (start_ms, buckets) in spans {
                block = rollup::replace_span(
                    block,
                    start_ms,
                    start_ms.saturating_add(WINDOW_MS),
                    &buckets,
                );
            }
            let encoded = rollup::encode_block(&block).map_err(|error| StoreError::Codec {
                what: format!("rollups of series {series_id} at {day_ms}"),
                reason: error.to_string(),
            })?;
            rollup_batch.insert(&key[..], encoded);
        }
        if sync_files {
            self.files
                .sync(Some(origin))
                .map_err(|source| StoreError::Io {
                    path: self.data_dir.join(super::chunk_files::CHUNKS_DIR),
                    action: "syncing chunk files in",
                    source,
                })?;
        }
        self.chunks
            .apply_batch(chunk_batch)
            .map_err(|error| self.storage("storing chunk locations", error))?;
        Ok((stats, PendingRollups(rollup_batch)))
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
        let first = keys::span_key(series_id, super::head::window_start(start_ms), 0);
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
            let bytes = self.chunk_bytes(&key, &value)?;
            let decoded = chunk::decode(&bytes).map_err(|error| {
                self.damaged(
                    format!("chunk of series {series_id} at {window_start_ms}"),
                    error,
                )
            })?;
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

    /// Rollup buckets of `series_id` starting in `[start_ms, end_ms]` from the origins
    /// `visible` accepts, in time order. Buckets that several origins hold are added up.
    pub fn buckets(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
        visible: &dyn Fn(u32) -> bool,
    ) -> Result<BTreeMap<i64, Aggregate>, StoreError> {
        let first = keys::span_key(series_id, rollup::align(start_ms, BLOCK_MS), 0);
        let last = keys::span_key(series_id, end_ms, u32::MAX);
        let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for entry in self.rollups.range(first..=last) {
            let (key, value) = entry.map_err(|error| {
                self.storage(format!("reading rollups of series {series_id}"), error)
            })?;
            let (_, day_ms, origin) = keys::decode_span_key(&key)
                .ok_or_else(|| StoreError::malformed(&self.data_dir, "rollup key"))?;
            if !visible(origin) {
                continue;
            }
            let block = rollup::decode_block(&value).map_err(|error| {
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
}
