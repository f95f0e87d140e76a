//! The store's background work, on one thread of its own so that ingest never waits for
//! it: checkpoints (seal due head windows into sled, make sled durable with a real fsync,
//! trim the log behind it) every `checkpoint_interval` or when the head is over its budget;
//! retention every `retention_interval`; and, once after opening, removal of what an
//! interrupted import left behind.
//!
//! The order inside a checkpoint is what makes trimming safe: it waits until the log records
//! behind what it read are durable (so sled never holds a writer's seq ahead of its batch),
//! the writers' seqs and the sealed windows go to sled, sled is flushed and fsynced, and
//! only then are log segments deleted — and only those whose every record is older than
//! both the oldest record still feeding the head and the point where the writers' seqs were
//! read.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::chunk_files::DAY_MS;
use super::error::StoreError;
use super::head::{SealPolicy, WINDOW_MS};
use super::keys;
use super::open::META_NEWEST_MS;
use super::sealed::WindowWrite;
use super::{Inner, ORIGIN_LIVE};

/// Samples this late (after their window's end, by the store's clock) still reach the head
/// before the window is sealed; later ones are merged into the sealed chunk.
const SEAL_GRACE_MS: i64 = 10 * 60 * 1000;
/// Retention never counts back from more than this ahead of the wall clock.
const CLOCK_SKEW_ALLOWANCE_MS: i64 = 24 * 60 * 60 * 1000;

/// What a checkpoint did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CheckpointStats {
    pub n_windows: usize,
    pub n_segments_trimmed: usize,
    /// The oldest log record still needed (everything before it is durable in sled).
    pub needed_lsn: u64,
}

/// What a retention pass deleted.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RetentionStats {
    pub n_chunks: usize,
    /// Chunk and rollup files.
    pub n_files: usize,
    pub n_rollup_blocks: usize,
    pub n_series: usize,
}

struct Signal {
    /// (stop, wake)
    flags: Mutex<(bool, bool)>,
    changed: Condvar,
}

/// The running background thread.
pub(super) struct Handle {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Starts the thread; it holds the store open until [`Handle::stop`].
    pub fn spawn(inner: Arc<Inner>) -> Handle {
        let signal = Arc::new(Signal {
            flags: Mutex::new((false, false)),
            changed: Condvar::new(),
        });
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("vigil-store".to_owned())
            .spawn(move || run(inner, thread_signal))
            .expect("the OS starts a thread");
        Handle {
            signal,
            thread: Some(thread),
        }
    }

    /// Asks for a checkpoint now (the head is over its budget).
    pub fn wake(&self) {
        self.signal
            .flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1 = true;
        self.signal.changed.notify_one();
    }

    /// Stops the thread and waits for it (and so for its hold on the store) to end.
    pub fn stop(&mut self) {
        self.signal
            .flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0 = true;
        self.signal.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(inner: Arc<Inner>, signal: Arc<Signal>) {
    let checkpoint_every = inner.config.checkpoint_interval;
    let retention_every = inner.config.retention_interval;
    let mut next_retention = Instant::now() + retention_every.min(Duration::from_secs(60));
    let mut swept_imports = false;
    loop {
        {
            let mut flags = signal
                .flags
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let deadline = Instant::now() + checkpoint_every;
            while !flags.0 && !flags.1 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                flags = signal
                    .changed
                    .wait_timeout(flags, deadline - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            if flags.0 {
                return;
            }
            flags.1 = false;
        }
        match inner.checkpoint(false) {
            Ok(stats) => tracing::debug!(
                windows = stats.n_windows,
                segments_trimmed = stats.n_segments_trimmed,
                "store checkpoint"
            ),
            Err(error) => {
                tracing::error!(%error, "store checkpoint failed; the write-ahead log keeps everything until one succeeds")
            }
        }
        if !swept_imports {
            swept_imports = true;
            if let Err(error) = inner.sweep_aborted_imports() {
                tracing::error!(%error, "removing what an interrupted import left behind failed; it stays invisible");
            }
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + retention_every;
            let now_ms = inner.retention_now();
            match inner.enforce_retention(now_ms) {
                Ok(stats) if stats.n_chunks + stats.n_rollup_blocks + stats.n_series > 0 => {
                    tracing::info!(
                        chunks = stats.n_chunks,
                        rollup_blocks = stats.n_rollup_blocks,
                        series = stats.n_series,
                        "retention deleted old data"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "store retention failed; it is tried again later")
                }
            }
        }
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Inner {
    /// Seals due windows (or all), makes sled durable, trims the log.
    pub(super) fn checkpoint(&self, seal_everything: bool) -> Result<CheckpointStats, StoreError> {
        let _one_at_a_time = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // sled takes a failed write as fatal for the process: nothing goes to it while the
        // disk is known to fail (the log keeps everything meanwhile).
        self.wal.check_writable()?;
        let (jobs, writers, read_at_lsn, newest_ms) = {
            let mut ingest = self.lock_ingest();
            let clock_ms = ingest.newest_ms;
            let jobs = ingest.head.take_for_sealing(SealPolicy {
                clock_ms,
                grace_ms: SEAL_GRACE_MS,
                max_bytes: usize::try_from(self.config.head_max_bytes).unwrap_or(usize::MAX),
                all: seal_everything,
            });
            let writers: Vec<_> = ingest
                .writers
                .iter()
                .filter(|(_, seq)| seq.last_seq != seq.persisted_seq)
                .map(|(writer, seq)| (writer.clone(), seq.last_seq))
                .collect();
            let read_at_lsn = self.wal.submitted_lsn();
            self.wal.request_rotation();
            (jobs, writers, read_at_lsn, ingest.newest_ms)
        };

        let written = (|| -> Result<(), StoreError> {
            // Nothing reaches sled before the log records it came from are durable: a
            // writer's seq persisted ahead of its batch would make the agent's resend of
            // that (unacknowledged, lost) batch look like a duplicate.
            self.wal.wait_durable(read_at_lsn)?;
            for group in jobs.chunks(4096) {
                let mut windows = Vec::with_capacity(group.len());
                for job in group {
                    let samples = job.content.samples().map_err(|error| StoreError::Codec {
                        what: format!("head of series {}", job.series_id),
                        reason: error.to_string(),
                    })?;
                    windows.push(WindowWrite {
                        series_id: job.series_id,
                        start_ms: job.content.start_ms,
                        samples,
                    });
                }
                self.sealed.write_windows(ORIGIN_LIVE, windows, true)?;
                for job in group {
                    job.mark_written();
                }
            }
            // Days complete by the store's clock get their rollup block (once).
            let complete_before = newest_ms
                .saturating_sub(SEAL_GRACE_MS)
                .saturating_sub(DAY_MS)
                .saturating_add(1);
            self.sealed
                .roll_up(Some(ORIGIN_LIVE), complete_before, true)?;
            let mut batch = sled::Batch::default();
            for (writer, seq) in &writers {
                batch.insert(keys::writer_key(writer), &seq.to_be_bytes());
            }
            self.writers_tree
                .apply_batch(batch)
                .map_err(|error| self.storage("storing writers' last seqs", error))?;
            self.meta
                .insert(META_NEWEST_MS, &(newest_ms as u64).to_be_bytes())
                .map_err(|error| self.storage("storing the store's clock", error))?;
            self.sync_sled()
        })();

        let needed_lsn = {
            let mut ingest = self.lock_ingest();
            if let Err(error) = written {
                ingest.head.finish_sealing(&[], &jobs);
                return Err(error);
            }
            ingest.head.finish_sealing(&jobs, &[]);
            for (writer, seq) in &writers {
                if let Some(entry) = ingest.writers.get_mut(writer) {
                    entry.persisted_seq = *seq;
                }
            }
            ingest.head.min_needed_lsn().min(read_at_lsn + 1)
        };
        let n_segments_trimmed = self.wal.trim_before(needed_lsn)?;
        Ok(CheckpointStats {
            n_windows: jobs.len(),
            n_segments_trimmed,
            needed_lsn,
        })
    }

    /// The store's clean stop: seals the whole head into sled, makes it durable, stops the
    /// log and deletes every segment the seal made redundant (all of them, unless something
    /// failed), so that the next open replays nothing. When the seal fails (a full disk),
    /// the log is kept and replayed at the next open: nothing is lost either way. Runs once;
    /// appends after it fail.
    pub(super) fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let started = Instant::now();
        let sealed = self.checkpoint(true);
        self.wal.close();
        let stats = sealed.inspect_err(|error| {
            tracing::warn!(%error, "sealing the head at close failed; the next start replays the write-ahead log instead")
        })?;
        let n_removed = self.wal.remove_closed_before(stats.needed_lsn).inspect_err(|error| {
            tracing::warn!(%error, "the head is sealed, but removing the write-ahead log failed; the next start replays it")
        })?;
        tracing::info!(
            windows = stats.n_windows,
            segments_removed = n_removed + stats.n_segments_trimmed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store closed; the head is sealed and the next start has no log to replay"
        );
        Ok(())
    }

    pub(super) fn retention_now(&self) -> i64 {
        let newest = self.lock_ingest().newest_ms;
        newest.min(wall_clock_ms().saturating_add(CLOCK_SKEW_ALLOWANCE_MS))
    }

    /// Deletes chunks whose window ended before `now_ms - raw_retention`, rollup blocks whose
    /// day ended before `now_ms - rollup_retention`, then series with nothing left. Works
    /// series by series in small batches, so ingest and queries go on meanwhile.
    pub(super) fn enforce_retention(&self, now_ms: i64) -> Result<RetentionStats, StoreError> {
        let raw_cutoff = now_ms.saturating_sub(duration_ms(self.config.raw_retention));
        let rollup_cutoff = now_ms.saturating_sub(duration_ms(self.config.rollup_retention));
        let mut stats = RetentionStats::default();
        // Raw samples about to go must have their rollups first (the checkpoint writes them
        // a day after; this only catches days it could not).
        self.sealed.roll_up(
            None,
            raw_cutoff.saturating_sub(DAY_MS).saturating_add(1),
            true,
        )?;
        let series_ids: Vec<u64> = self.index.all_series_ids().collect::<Result<_, _>>()?;
        let mut empty_series = Vec::new();
        for &series_id in &series_ids {
            // A chunk or block is deleted when its whole span is past the cutoff.
            let n_chunks = self.delete_spans_before(
                &self.sealed.chunks,
                series_id,
                raw_cutoff.saturating_sub(WINDOW_MS),
            )?;
            let n_blocks = self.delete_spans_before(
                &self.sealed.rollups,
                series_id,
                rollup_cutoff.saturating_sub(DAY_MS),
            )?;
            stats.n_chunks += n_chunks;
            stats.n_rollup_blocks += n_blocks;
            let prefix = series_id.to_be_bytes();
            let has_data = |tree: &sled::Tree| -> Result<bool, StoreError> {
                Ok(tree
                    .scan_prefix(prefix)
                    .keys()
                    .next()
                    .transpose()
                    .map_err(|error| self.storage("reading sealed data", error))?
                    .is_some())
            };
            if !has_data(&self.sealed.chunks)?
                && !has_data(&self.sealed.rollups)?
                && !self.sealed.indexed_series(series_id)?
            {
                empty_series.push(series_id);
            }
        }
        // Every chunk and block of these days is gone from the index: their files can go.
        let remove_files = |files: &super::chunk_files::ChunkFiles, cutoff_ms: i64| {
            files
                .remove_days_ending_by(cutoff_ms)
                .map_err(|source| StoreError::Io {
                    path: self.data_dir.clone(),
                    action: "deleting files past retention in",
                    source,
                })
        };
        stats.n_files = remove_files(&self.sealed.chunk_files, raw_cutoff)?
            + remove_files(&self.sealed.rollup_files, rollup_cutoff)?;
        // A running import holds ids of series it has not written yet.
        if self
            .imports
            .active
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            empty_series.clear();
        }
        for series_id in empty_series {
            // Under the ingest lock, so that no append is resolving this series meanwhile;
            // a series the head holds has data coming.
            let mut ingest = self.lock_ingest();
            if ingest.head.has_samples(series_id) {
                continue;
            }
            ingest.head.forget(series_id);
            self.index.delete(series_id)?;
            drop(ingest);
            stats.n_series += 1;
        }
        Ok(stats)
    }

    /// Removes the spans of `series_id` in `tree` that start at or before `last_start_ms`;
    /// returns how many.
    fn delete_spans_before(
        &self,
        tree: &sled::Tree,
        series_id: u64,
        last_start_ms: i64,
    ) -> Result<usize, StoreError> {
        let first = keys::span_key(series_id, i64::MIN, 0);
        let last = keys::span_key(series_id, last_start_ms, u32::MAX);
        if first > last {
            return Ok(0);
        }
        let mut n_deleted = 0;
        let mut batch = sled::Batch::default();
        for key in tree.range(first..=last).keys() {
            let key = key.map_err(|error| self.storage("reading data for retention", error))?;
            batch.remove(key);
            n_deleted += 1;
        }
        if n_deleted > 0 {
            tree.apply_batch(batch)
                .map_err(|error| self.storage("deleting data past retention", error))?;
        }
        Ok(n_deleted)
    }
}
