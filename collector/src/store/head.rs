//! The head: samples that are in the write-ahead log but not yet sealed into sled, held in
//! memory per series and per aligned two-hour window. Each window keeps what it has so far
//! as a few compressed blocks ([`super::chunk`]) plus a short tail of raw samples, so a
//! series costs about a compressed chunk of memory rather than 16 bytes a sample.
//!
//! Appending never re-encodes what a window already holds: every [`TAIL_CAPACITY`] samples
//! the tail becomes a block of its own, and two blocks of the same level merge into one of
//! the next, up to [`MAX_BLOCK_LEVEL`] (a binary counter). A sample is therefore encoded at
//! most `MAX_BLOCK_LEVEL + 1` times however long its window grows, so an append, and the
//! replay of a log, costs the same per sample for a window of ten samples or of a million.
//! The window becomes one chunk only when it is sealed.
//!
//! The head also answers "which series id has these labels" for the series it holds, and
//! remembers, per window, the first log record that fed it: the log can be trimmed up to the
//! oldest such record ([`Head::min_needed_lsn`]).
//!
//! Sealing is done elsewhere ([`super::sealed`]); the head only hands windows out
//! ([`Head::take_for_sealing`]) and keeps showing them to queries until they are in sled
//! ([`Head::finish_sealing`]). This file does no I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vigil_proto::model::Sample;

use super::chunk::{self, ChunkError};

/// Length of a window, and of a sealed chunk: aligned to the Unix epoch.
pub(super) const WINDOW_MS: i64 = 2 * 60 * 60 * 1000;
/// Raw samples a window gathers before they are compressed into a block.
pub(super) const TAIL_CAPACITY: usize = 32;
/// Blocks merge up to this level: a block holds at most `TAIL_CAPACITY << MAX_BLOCK_LEVEL`
/// samples (1,024), which bounds the work of one append; two hours at 10 s (720 samples)
/// still end up in two or three blocks.
pub(super) const MAX_BLOCK_LEVEL: u8 = 5;
/// A window this full is sealed at the next checkpoint even if its time is not up (a series
/// sampled every second fills 7,200 in two hours).
pub(super) const FULL_WINDOW_SAMPLES: u32 = 8192;

/// Start of the window holding `timestamp_ms`.
pub(super) fn window_start(timestamp_ms: i64) -> i64 {
    timestamp_ms
        .checked_sub(timestamp_ms.rem_euclid(WINDOW_MS))
        .unwrap_or(i64::MIN)
}

/// `base` (sorted, one sample per timestamp) overlaid with `newer` (any order; a later
/// sample at a timestamp replaces an earlier one): sorted, one sample per timestamp, `newer`
/// winning ties.
pub(super) fn overlay(base: Vec<Sample>, newer: &[Sample]) -> Vec<Sample> {
    if newer.is_empty() {
        return base;
    }
    let deduplicated = newest_per_timestamp(newer.to_vec());
    if base.is_empty() {
        return deduplicated;
    }
    let mut merged = Vec::with_capacity(base.len() + deduplicated.len());
    let mut base = base.into_iter().peekable();
    for sample in deduplicated {
        while let Some(older) = base.next_if(|older| older.timestamp_ms < sample.timestamp_ms) {
            merged.push(older);
        }
        base.next_if(|older| older.timestamp_ms == sample.timestamp_ms);
        merged.push(sample);
    }
    merged.extend(base);
    merged
}

/// `samples` in the order they were submitted, sorted by timestamp with one sample per
/// timestamp, the last submitted winning. The sort is stable and finds runs, so samples that
/// are already in order (the usual case) cost one pass.
fn newest_per_timestamp(mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.sort_by_key(|sample| sample.timestamp_ms);
    let mut deduplicated: Vec<Sample> = Vec::with_capacity(samples.len());
    for sample in samples {
        match deduplicated.last_mut() {
            Some(last) if last.timestamp_ms == sample.timestamp_ms => *last = sample,
            _ => deduplicated.push(sample),
        }
    }
    deduplicated
}

/// A window's content copied out of the head, to be decoded without holding its lock. The
/// blocks are shared, so the copy costs a few pointers and the short tail.
#[derive(Debug, Clone)]
pub(super) struct WindowContent {
    pub start_ms: i64,
    /// Oldest first; each sorted, one sample per timestamp.
    blocks: Vec<Arc<[u8]>>,
    tail: Vec<Sample>,
}

impl WindowContent {
    /// The window's samples, sorted, one per timestamp, later blocks winning a timestamp.
    pub fn samples(&self) -> Result<Vec<Sample>, ChunkError> {
        let mut all = Vec::new();
        for block in &self.blocks {
            all.extend(chunk::decode(block)?);
        }
        all.extend_from_slice(&self.tail);
        Ok(newest_per_timestamp(all))
    }
}

/// Samples of one series of one batch made ready for the head before its lock is taken:
/// runs of [`PREPARED_BLOCK_SAMPLES`] are encoded here, on the appender's own thread, so
/// that a dense batch costs the shared lock a few pointer moves instead of its encoding.
#[derive(Debug, Default)]
pub(super) struct PreparedSamples {
    windows: Vec<PreparedWindow>,
    /// Samples put through the encoder.
    n_encoded: u64,
}

#[derive(Debug)]
struct PreparedWindow {
    start_ms: i64,
    blocks: Vec<Block>,
    /// Sorted, one per timestamp; fewer than a block's worth.
    rest: Vec<Sample>,
}

/// A batch gives a series blocks of its own from this many samples in one window: the
/// largest block size, so that nothing merges with them later.
pub(super) const PREPARED_BLOCK_SAMPLES: usize = TAIL_CAPACITY << MAX_BLOCK_LEVEL;

/// Prepares `samples` (in submitted order, a later one winning a timestamp) for
/// [`Head::insert_prepared`]; `None` when there are too few to be worth it, and they go
/// through [`Head::insert`] as they are.
pub(super) fn prepare(samples: &[Sample]) -> Option<PreparedSamples> {
    if samples.len() < PREPARED_BLOCK_SAMPLES {
        return None;
    }
    let sorted = newest_per_timestamp(samples.to_vec());
    let mut prepared = PreparedSamples::default();
    for group in
        sorted.chunk_by(|a, b| window_start(a.timestamp_ms) == window_start(b.timestamp_ms))
    {
        let mut window = PreparedWindow {
            start_ms: window_start(group[0].timestamp_ms),
            blocks: Vec::new(),
            rest: Vec::new(),
        };
        let mut pieces = group.chunks_exact(PREPARED_BLOCK_SAMPLES);
        for piece in pieces.by_ref() {
            match chunk::encode(piece) {
                Ok(encoded) => {
                    prepared.n_encoded += piece.len() as u64;
                    window.blocks.push(Block {
                        encoded: Arc::from(encoded),
                        n_samples: piece.len() as u32,
                        level: MAX_BLOCK_LEVEL,
                    });
                }
                // Sorted and bounded samples always encode; should one not, it goes in raw.
                Err(_) => window.rest.extend_from_slice(piece),
            }
        }
        window.rest.extend_from_slice(pieces.remainder());
        prepared.windows.push(window);
    }
    Some(prepared)
}

/// A compressed run of a window's samples.
#[derive(Debug)]
struct Block {
    encoded: Arc<[u8]>,
    n_samples: u32,
    level: u8,
}

/// A window handed out for sealing.
#[derive(Debug)]
pub(super) struct SealJob {
    pub series_id: u64,
    pub content: WindowContent,
    first_lsn: u64,
    /// Set once the window's chunk and rollups are in sled (not yet durable): queries then
    /// read it there instead of here.
    written: AtomicBool,
}

impl SealJob {
    pub fn mark_written(&self) {
        self.written.store(true, Ordering::Release);
    }

    fn is_written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct HeadWindow {
    start_ms: i64,
    /// Oldest first; levels never increase along the list.
    blocks: Vec<Block>,
    /// Samples in the blocks (a sample replaced in a later block counts twice).
    n_blocked: u32,
    tail: Vec<Sample>,
    /// The first log record that put a sample here.
    first_lsn: u64,
}

impl HeadWindow {
    fn new(start_ms: i64, first_lsn: u64) -> Self {
        Self {
            start_ms,
            blocks: Vec::new(),
            n_blocked: 0,
            tail: Vec::new(),
            first_lsn,
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.blocks.capacity() * std::mem::size_of::<Block>()
            + self
                .blocks
                .iter()
                .map(|block| block.encoded.len() + 16)
                .sum::<usize>()
            + self.tail.capacity() * std::mem::size_of::<Sample>()
    }

    fn n_samples(&self) -> u32 {
        self.n_blocked + self.tail.len() as u32
    }

    fn content(&self) -> WindowContent {
        WindowContent {
            start_ms: self.start_ms,
            blocks: self
                .blocks
                .iter()
                .map(|block| Arc::clone(&block.encoded))
                .collect(),
            tail: self.tail.clone(),
        }
    }

    fn into_content(self) -> WindowContent {
        WindowContent {
            start_ms: self.start_ms,
            blocks: self.blocks.into_iter().map(|block| block.encoded).collect(),
            tail: self.tail,
        }
    }

    /// Turns the tail into a block, then merges equal levels. Returns how many samples went
    /// through the encoder. On a codec failure the tail (or the blocks) stay as they were,
    /// so that nothing is lost; sealing reports the failure.
    fn fold_tail(&mut self) -> Result<u64, ChunkError> {
        let samples = newest_per_timestamp(self.tail.clone());
        let encoded = chunk::encode(&samples)?;
        let mut n_encoded = samples.len() as u64;
        self.blocks.push(Block {
            encoded: Arc::from(encoded),
            n_samples: samples.len() as u32,
            level: 0,
        });
        self.n_blocked += samples.len() as u32;
        self.tail.clear();
        while let [.., older, newer] = self.blocks.as_slice() {
            if older.level != newer.level || newer.level >= MAX_BLOCK_LEVEL {
                break;
            }
            let level = newer.level + 1;
            let mut merged = chunk::decode(&older.encoded)?;
            merged.extend(chunk::decode(&newer.encoded)?);
            let merged = newest_per_timestamp(merged);
            let encoded = chunk::encode(&merged)?;
            n_encoded += merged.len() as u64;
            let n_before = older.n_samples + newer.n_samples;
            self.blocks.truncate(self.blocks.len() - 2);
            self.n_blocked = self.n_blocked - n_before + merged.len() as u32;
            self.blocks.push(Block {
                encoded: Arc::from(encoded),
                n_samples: merged.len() as u32,
                level,
            });
        }
        Ok(n_encoded)
    }
}

#[derive(Debug)]
struct HeadSeries {
    labels_key: Arc<[u8]>,
    /// Sorted by start; usually one, two around a window's end.
    windows: Vec<HeadWindow>,
}

/// Memory a series costs besides its windows: its entries in both maps and its labels.
fn series_overhead(labels_key: &[u8]) -> usize {
    2 * std::mem::size_of::<(u64, HeadSeries)>() + 32 + labels_key.len()
}

/// What [`Head::take_for_sealing`] hands out and why.
#[derive(Debug, Clone, Copy)]
pub(super) struct SealPolicy {
    /// The store's clock: the newest sample timestamp it has seen.
    pub clock_ms: i64,
    /// A window is sealed once the clock is this far past its end, so that samples a little
    /// late still land in the head.
    pub grace_ms: i64,
    /// Above this, the oldest windows are sealed early until the head is at three quarters.
    pub max_bytes: usize,
    /// Seal everything (shutdown, tests, benchmarks).
    pub all: bool,
}

/// The in-memory head of every series.
#[derive(Debug, Default)]
pub(super) struct Head {
    series: HashMap<u64, HeadSeries>,
    by_labels: HashMap<Arc<[u8]>, u64>,
    /// Windows handed out for sealing and not yet in sled: still shown to queries.
    sealing: HashMap<u64, Vec<Arc<SealJob>>>,
    bytes: usize,
    n_samples: u64,
    /// Samples put through the encoder since the head was made: the work appends cost.
    n_encoded: u64,
}

impl Head {
    /// The id of the series with these encoded labels, if the head holds it.
    pub fn series_id(&self, labels_key: &[u8]) -> Option<u64> {
        self.by_labels.get(labels_key).copied()
    }

    /// Makes the head hold series `series_id` (known by these labels), with no samples yet.
    pub fn add_series(&mut self, series_id: u64, labels_key: &[u8]) {
        if self.series.contains_key(&series_id) {
            return;
        }
        let labels_key: Arc<[u8]> = Arc::from(labels_key);
        self.bytes += series_overhead(&labels_key);
        self.by_labels.insert(Arc::clone(&labels_key), series_id);
        self.series.insert(
            series_id,
            HeadSeries {
                labels_key,
                windows: Vec::new(),
            },
        );
    }

    /// Whether the head holds series `series_id` (with or without samples).
    pub fn holds(&self, series_id: u64) -> bool {
        self.series.contains_key(&series_id) || self.sealing.contains_key(&series_id)
    }

    /// Whether the head has samples of series `series_id` (in memory or being sealed).
    pub fn has_samples(&self, series_id: u64) -> bool {
        self.sealing.contains_key(&series_id)
            || self
                .series
                .get(&series_id)
                .is_some_and(|series| !series.windows.is_empty())
    }

    /// Forgets a series without samples (retention deleted it); its labels will be looked
    /// up, or the series created again, when samples come.
    pub fn forget(&mut self, series_id: u64) {
        if self.has_samples(series_id) {
            return;
        }
        if let Some(series) = self.series.remove(&series_id) {
            self.by_labels.remove(&series.labels_key);
            self.bytes -= series_overhead(&series.labels_key);
        }
    }

    /// Adds samples of log record `lsn` to a series [`Head::add_series`] made known.
    pub fn insert(&mut self, series_id: u64, samples: &[Sample], lsn: u64) {
        let Some(series) = self.series.get_mut(&series_id) else {
            debug_assert!(
                false,
                "samples for series {series_id}, which the head does not hold"
            );
            return;
        };
        for sample in samples {
            let start_ms = window_start(sample.timestamp_ms);
            let index = match series
                .windows
                .binary_search_by_key(&start_ms, |window| window.start_ms)
            {
                Ok(index) => index,
                Err(index) => {
                    let window = HeadWindow::new(start_ms, lsn);
                    self.bytes += window.bytes();
                    series.windows.insert(index, window);
                    index
                }
            };
            let window = &mut series.windows[index];
            let before = window.bytes();
            window.first_lsn = window.first_lsn.min(lsn);
            if window.tail.capacity() == 0 {
                window.tail.reserve_exact(TAIL_CAPACITY);
            }
            window.tail.push(*sample);
            if window.tail.len() >= TAIL_CAPACITY {
                match window.fold_tail() {
                    Ok(n_encoded) => self.n_encoded += n_encoded,
                    Err(error) => {
                        tracing::error!(series_id, %error, "compressing head samples failed; keeping them uncompressed")
                    }
                }
            }
            self.bytes = self.bytes + window.bytes() - before;
            self.n_samples += 1;
        }
    }

    /// Adds samples of log record `lsn` that [`prepare`] made ready, as [`Head::insert`]
    /// would: the window's tail is folded first, so that the new blocks come after every
    /// older sample and win a timestamp they share.
    pub fn insert_prepared(&mut self, series_id: u64, prepared: PreparedSamples, lsn: u64) {
        self.n_encoded += prepared.n_encoded;
        for prepared_window in prepared.windows {
            let Some(series) = self.series.get_mut(&series_id) else {
                debug_assert!(
                    false,
                    "samples for series {series_id}, which the head does not hold"
                );
                return;
            };
            if !prepared_window.blocks.is_empty() {
                let index = match series
                    .windows
                    .binary_search_by_key(&prepared_window.start_ms, |window| window.start_ms)
                {
                    Ok(index) => index,
                    Err(index) => {
                        let window = HeadWindow::new(prepared_window.start_ms, lsn);
                        self.bytes += window.bytes();
                        series.windows.insert(index, window);
                        index
                    }
                };
                let window = &mut series.windows[index];
                let before = window.bytes();
                window.first_lsn = window.first_lsn.min(lsn);
                if !window.tail.is_empty() {
                    match window.fold_tail() {
                        Ok(n_encoded) => self.n_encoded += n_encoded,
                        Err(error) => {
                            tracing::error!(series_id, %error, "compressing head samples failed; keeping them uncompressed");
                        }
                    }
                }
                if window.tail.is_empty() {
                    for block in prepared_window.blocks {
                        window.n_blocked += block.n_samples;
                        self.n_samples += u64::from(block.n_samples);
                        window.blocks.push(block);
                    }
                } else {
                    // The tail would not fold: keep the order by adding the new samples
                    // raw, behind it.
                    for block in &prepared_window.blocks {
                        if let Ok(samples) = chunk::decode(&block.encoded) {
                            self.n_samples += samples.len() as u64;
                            window.tail.extend(samples);
                        }
                    }
                }
                self.bytes = self.bytes + window.bytes() - before;
            }
            self.insert(series_id, &prepared_window.rest, lsn);
        }
    }

    /// Copies of the windows of `series_id` (in the head, and being sealed but not yet
    /// written to sled) that overlap `[start_ms, end_ms]`, oldest data first: being sealed
    /// before in the head, so that the head's newer samples win when they are overlaid.
    pub fn windows_in_range(
        &self,
        series_id: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<WindowContent> {
        let overlaps = |window_start_ms: i64| {
            window_start_ms <= end_ms && window_start_ms.saturating_add(WINDOW_MS) > start_ms
        };
        let mut contents = Vec::new();
        if let Some(jobs) = self.sealing.get(&series_id) {
            contents.extend(
                jobs.iter()
                    .filter(|job| !job.is_written() && overlaps(job.content.start_ms))
                    .map(|job| job.content.clone()),
            );
        }
        if let Some(series) = self.series.get(&series_id) {
            contents.extend(
                series
                    .windows
                    .iter()
                    .filter(|window| overlaps(window.start_ms))
                    .map(HeadWindow::content),
            );
        }
        contents
    }

    /// Hands out the windows due for sealing under `policy`; they stay visible to queries
    /// until [`Head::finish_sealing`]. Series left without windows by the previous round and
    /// idle since are forgotten first (their ids are in sled).
    pub fn take_for_sealing(&mut self, policy: SealPolicy) -> Vec<Arc<SealJob>> {
        self.forget_idle_series();
        let due = |window: &HeadWindow| {
            policy.all
                || window
                    .start_ms
                    .saturating_add(WINDOW_MS)
                    .saturating_add(policy.grace_ms)
                    <= policy.clock_ms
                || window.n_samples() >= FULL_WINDOW_SAMPLES
        };
        let mut chosen: Vec<(u64, i64)> = Vec::new();
        let mut freed = 0usize;
        let mut others: Vec<(i64, u64, usize)> = Vec::new();
        for (&series_id, series) in &self.series {
            for window in &series.windows {
                if due(window) {
                    chosen.push((series_id, window.start_ms));
                    freed += window.bytes();
                } else {
                    others.push((window.start_ms, series_id, window.bytes()));
                }
            }
        }
        let target = policy.max_bytes / 4 * 3;
        if self.bytes.saturating_sub(freed) > policy.max_bytes {
            others.sort_unstable();
            for (start_ms, series_id, bytes) in others {
                if self.bytes.saturating_sub(freed) <= target {
                    break;
                }
                chosen.push((series_id, start_ms));
                freed += bytes;
            }
        }
        let mut jobs = Vec::with_capacity(chosen.len());
        for (series_id, start_ms) in chosen {
            let Some(series) = self.series.get_mut(&series_id) else {
                continue;
            };
            let Ok(index) = series
                .windows
                .binary_search_by_key(&start_ms, |window| window.start_ms)
            else {
                continue;
            };
            let window = series.windows.remove(index);
            self.bytes -= window.bytes();
            self.n_samples -= u64::from(window.n_samples());
            let job = Arc::new(SealJob {
                series_id,
                first_lsn: window.first_lsn,
                content: window.into_content(),
                written: AtomicBool::new(false),
            });
            self.sealing
                .entry(series_id)
                .or_default()
                .push(Arc::clone(&job));
            jobs.push(job);
        }
        jobs
    }

    /// Drops sealed windows from view once they are durable in sled. Jobs that failed are
    /// given back with `put_back`: their samples return to the head to be sealed again.
    pub fn finish_sealing(&mut self, done: &[Arc<SealJob>], put_back: &[Arc<SealJob>]) {
        for job in done.iter().chain(put_back) {
            if let Some(jobs) = self.sealing.get_mut(&job.series_id) {
                jobs.retain(|other| !Arc::ptr_eq(other, job));
                if jobs.is_empty() {
                    self.sealing.remove(&job.series_id);
                }
            }
        }
        for job in put_back {
            match job.content.samples() {
                Ok(samples) if self.series.contains_key(&job.series_id) => {
                    self.insert(job.series_id, &samples, job.first_lsn);
                }
                Ok(_) | Err(_) => tracing::error!(
                    series_id = job.series_id,
                    "samples of a window that failed to seal could not go back to the head; they stay in the write-ahead log"
                ),
            }
        }
    }

    /// The oldest log record whose samples are only in memory (or being sealed), or
    /// `u64::MAX` when every sample is in sled.
    pub fn min_needed_lsn(&self) -> u64 {
        let in_head = self
            .series
            .values()
            .flat_map(|series| series.windows.iter().map(|window| window.first_lsn));
        let sealing = self
            .sealing
            .values()
            .flat_map(|jobs| jobs.iter().map(|job| job.first_lsn));
        in_head.chain(sealing).min().unwrap_or(u64::MAX)
    }

    fn forget_idle_series(&mut self) {
        let idle: Vec<u64> = self
            .series
            .iter()
            .filter(|(series_id, series)| {
                series.windows.is_empty() && !self.sealing.contains_key(series_id)
            })
            .map(|(&series_id, _)| series_id)
            .collect();
        for series_id in idle {
            if let Some(series) = self.series.remove(&series_id) {
                self.by_labels.remove(&series.labels_key);
                self.bytes -= series_overhead(&series.labels_key);
            }
        }
    }

    /// Approximate memory the head uses, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn n_series(&self) -> usize {
        self.series.len()
    }

    pub fn n_samples(&self) -> u64 {
        self.n_samples
    }

    /// Samples put through the encoder since the head was made (a sample counts again each
    /// time its block merges): at most `MAX_BLOCK_LEVEL + 1` per sample inserted.
    pub fn n_encoded(&self) -> u64 {
        self.n_encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }

    fn all_samples(head: &Head, series_id: u64) -> Vec<Sample> {
        let mut samples = Vec::new();
        for content in head.windows_in_range(series_id, i64::MIN, i64::MAX) {
            samples = overlay(samples, &content.samples().unwrap());
        }
        samples
    }

    #[test]
    fn window_starts_are_aligned_and_total() {
        assert_eq!(window_start(0), 0);
        assert_eq!(window_start(WINDOW_MS - 1), 0);
        assert_eq!(window_start(WINDOW_MS), WINDOW_MS);
        assert_eq!(window_start(-1), -WINDOW_MS);
        assert_eq!(window_start(i64::MIN), i64::MIN);
        assert_eq!(window_start(i64::MAX), i64::MAX - i64::MAX % WINDOW_MS);
    }

    proptest! {
        #[test]
        fn overlay_keeps_one_sample_per_timestamp_and_the_newest_wins(
            base in proptest::collection::btree_map(-50i64..50, -1e3f64..1e3, 0..30),
            newer in proptest::collection::vec((-50i64..50, -1e3f64..1e3), 0..30),
        ) {
            let base: Vec<Sample> = base.into_iter().map(|(t, v)| sample(t, v)).collect();
            let newer: Vec<Sample> = newer.into_iter().map(|(t, v)| sample(t, v)).collect();
            let mut expected = std::collections::BTreeMap::new();
            for s in base.iter().chain(&newer) {
                expected.insert(s.timestamp_ms, s.value);
            }
            let expected: Vec<Sample> = expected.into_iter().map(|(t, v)| sample(t, v)).collect();
            prop_assert_eq!(overlay(base, &newer), expected);
        }

        #[test]
        fn the_head_gives_back_what_went_in_whatever_the_order(
            samples in proptest::collection::vec((0i64..3 * WINDOW_MS, -1e6f64..1e6), 0..200),
        ) {
            let mut head = Head::default();
            head.add_series(7, b"labels");
            let samples: Vec<Sample> = samples.into_iter().map(|(t, v)| sample(t, v)).collect();
            for (lsn, piece) in samples.chunks(5).enumerate() {
                head.insert(7, piece, lsn as u64 + 1);
            }
            prop_assert_eq!(all_samples(&head, 7), overlay(Vec::new(), &samples));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn prepared_batches_give_back_what_went_in_and_the_latest_value_wins(
            early in proptest::collection::vec((0i64..3000, -1e6f64..1e6), 0..100),
            dense in proptest::collection::vec((0i64..3000, -1e6f64..1e6), 1024..2500),
            late in proptest::collection::vec((0i64..3000, -1e6f64..1e6), 0..100),
        ) {
            let mut head = Head::default();
            head.add_series(7, b"labels");
            let to_samples = |pairs: Vec<(i64, f64)>| -> Vec<Sample> {
                pairs.into_iter().map(|(t, v)| sample(t * 5_000, v)).collect()
            };
            let (early, dense, late) = (to_samples(early), to_samples(dense), to_samples(late));
            head.insert(7, &early, 1);
            head.insert_prepared(7, prepare(&dense).expect("enough to prepare"), 2);
            head.insert(7, &late, 3);
            let everything: Vec<Sample> = early.iter().chain(&dense).chain(&late).copied().collect();
            prop_assert_eq!(all_samples(&head, 7), overlay(Vec::new(), &everything));
        }
    }

    #[test]
    fn appending_to_a_long_window_encodes_each_sample_a_bounded_number_of_times() {
        let work_for = |n_samples: i64| {
            let mut head = Head::default();
            head.add_series(1, b"dense");
            // One millisecond apart, in batches of 500: one window the whole time.
            let samples: Vec<Sample> = (0..n_samples).map(|i| sample(i, i as f64)).collect();
            for (lsn, batch) in samples.chunks(500).enumerate() {
                head.insert(1, batch, lsn as u64 + 1);
            }
            assert_eq!(all_samples(&head, 1), samples);
            head.n_encoded()
        };
        let small = work_for(20_000);
        let large = work_for(80_000);
        let bound = 80_000 * (u64::from(MAX_BLOCK_LEVEL) + 1);
        assert!(
            large <= bound,
            "{large} samples encoded for 80,000 appended"
        );
        // Four times the samples, about four times the work (re-encoding the window would
        // make it sixteen).
        assert!(large * 10 <= small * 45, "{small} then {large}");
    }

    #[test]
    fn due_windows_are_handed_out_and_stay_visible_until_finished() {
        let mut head = Head::default();
        head.add_series(1, b"a");
        let samples: Vec<Sample> = (0..100).map(|i| sample(i * 10_000, i as f64)).collect();
        head.insert(1, &samples, 3);
        head.insert(1, &[sample(WINDOW_MS + 5, 1.0)], 4);
        assert_eq!(head.min_needed_lsn(), 3);

        let policy = SealPolicy {
            clock_ms: WINDOW_MS + 5,
            grace_ms: 0,
            max_bytes: usize::MAX,
            all: false,
        };
        let jobs = head.take_for_sealing(policy);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].content.start_ms, 0);
        assert_eq!(jobs[0].content.samples().unwrap(), samples);
        // Still visible while being sealed, and still needed from the log.
        assert_eq!(all_samples(&head, 1).len(), 101);
        assert_eq!(head.min_needed_lsn(), 3);

        head.finish_sealing(&jobs, &[]);
        assert_eq!(all_samples(&head, 1), [sample(WINDOW_MS + 5, 1.0)]);
        assert_eq!(head.min_needed_lsn(), 4);
    }

    #[test]
    fn a_head_over_its_budget_seals_its_oldest_windows_early() {
        let mut head = Head::default();
        for series_id in 0..50 {
            head.add_series(series_id, format!("s{series_id}").as_bytes());
            let samples: Vec<Sample> = (0..200)
                .map(|i| sample(i * 10_000 + series_id as i64, (i * series_id as i64) as f64))
                .collect();
            head.insert(series_id, &samples, 1);
        }
        let before = head.bytes();
        let policy = SealPolicy {
            clock_ms: 0,
            grace_ms: 0,
            max_bytes: before / 2,
            all: false,
        };
        let jobs = head.take_for_sealing(policy);
        assert!(!jobs.is_empty());
        head.finish_sealing(&jobs, &[]);
        assert!(
            head.bytes() <= before / 2,
            "{} > {}",
            head.bytes(),
            before / 2
        );
    }

    #[test]
    fn idle_series_are_forgotten_after_a_sealing_round_with_nothing_new() {
        let mut head = Head::default();
        head.add_series(1, b"a");
        head.insert(1, &[sample(0, 1.0)], 1);
        let all = SealPolicy {
            clock_ms: 0,
            grace_ms: 0,
            max_bytes: usize::MAX,
            all: true,
        };
        let jobs = head.take_for_sealing(all);
        head.finish_sealing(&jobs, &[]);
        assert_eq!(head.series_id(b"a"), Some(1));
        head.take_for_sealing(all);
        assert_eq!(head.series_id(b"a"), None);
        assert_eq!(head.n_series(), 0);
    }
}
