//! The outbound queue: every batch waits here, on disk, from the tick that made it until the
//! collector acknowledges it, so a reconnect — or a restart of the agent — resends exactly
//! what is not yet safe.
//!
//! [`Spool`] keeps the batches in a small sled database under `<state_dir>/spool`, encoded
//! with the wire format (`vigil_proto::pb::Batch`), together with the spool id, the next
//! sequence number and the count of batches dropped. Sequence numbers therefore continue
//! across restarts under the same id, which is what the collector's replay protection keys
//! on. The spool is bounded by the encoded size of its batches; when full it drops the
//! oldest, counts the drop on disk and logs it — the sampler reports the count as
//! `vigil_agent_spool_dropped_batches_total`, so no drop goes unseen.
//!
//! It does not talk to the network (that is `ship`) and it does not decide what a batch
//! holds (that is `collect` and `run`).

use prost::Message;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_proto::model::{Batch, LogExcerpt, Series};
use vigil_proto::pb;

/// The spool's page cache. The agent must stay small, and the spool is read back only after
/// an outage, so sled gets a cache of a size that would hold a few batches, not the queue.
const CACHE_CAPACITY_BYTES: u64 = 1024 * 1024;

/// Keys: `batch/` followed by the sequence number in big-endian bytes, so that sled's key
/// order is the batches' order; and three counters under `meta/`.
const BATCH_PREFIX: &[u8] = b"batch/";
const SPOOL_ID_KEY: &[u8] = b"meta/spool_id";
const NEXT_SEQ_KEY: &[u8] = b"meta/next_seq";
const DROPPED_KEY: &[u8] = b"meta/dropped_batches";

/// How long opening waits for another holder of the spool to let go of it.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// While the spool stays full it drops a batch every tick; log the first drop of such a
/// streak and then one in this many, the count itself being reported as a metric.
const DROPS_BETWEEN_WARNINGS: u64 = 360;

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Upper bound for the encoded size of all queued batches together; beyond it the oldest
    /// batches are dropped, and counted.
    pub max_bytes: u64,
}

impl SpoolLimits {
    /// 64 MiB: about a week of a typical machine's batches at 10 s.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("creating the spool folder '{}': {source}; set state_dir in agent.toml to a folder the agent may write", path.display())]
    CreateFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the spool at '{}': {source}; check that the agent may write there and that no other vigil-agent uses the same state_dir", path.display())]
    Open { path: PathBuf, source: sled::Error },
    #[error("writing to the spool at '{}': {source}; check free space and permissions there", path.display())]
    Write { path: PathBuf, source: sled::Error },
}

pub struct Spool {
    /// Where the database lives, for messages.
    path: PathBuf,
    db: sled::Db,
    limits: SpoolLimits,
    /// Everything the database holds, mirrored so that a push or an ack never has to scan.
    state: Mutex<SpoolState>,
    /// The newest sequence number pushed; the shipper waits on it for work.
    newest_seq: watch::Sender<u64>,
}

struct SpoolState {
    spool_id: u64,
    next_seq: u64,
    dropped_batches: u64,
    /// Drops since the spool last had room, for logging a streak once.
    drops_in_streak: u64,
    /// Sequence number and encoded size of every batch on disk, oldest first.
    index: VecDeque<(u64, u64)>,
    /// The sum of the sizes in `index`.
    queued_bytes: u64,
}

impl Spool {
    /// Opens (or creates) the spool in the folder `path`. A spool created here gets a fresh
    /// random id and starts at sequence number 1; an existing one continues where it was.
    /// Entries that cannot be read back are logged, removed and counted as dropped.
    pub fn open(path: &Path, limits: SpoolLimits) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(path).map_err(|source| SpoolError::CreateFolder {
            path: path.to_path_buf(),
            source,
        })?;
        // sled lets go of its lock file a moment after the last handle is dropped (its
        // background threads finish first), so a spool closed and opened again at once — an
        // agent restarted in the same process — may find it still held: wait a little.
        let wait_for_lock_until = Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled_config().path(path).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock")
                        && Instant::now() < wait_for_lock_until =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(SpoolError::Open {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        };
        Self::start(path.to_path_buf(), db, limits)
    }

    /// A spool that lives in a temporary database, removed when it is dropped: what the agent
    /// falls back to when its state folder is unusable, so that it keeps reporting.
    pub fn open_temporary(limits: SpoolLimits) -> Result<Self, SpoolError> {
        let config = sled_config().temporary(true);
        let path = config.get_path();
        let db = config.open().map_err(|source| SpoolError::Open {
            path: path.clone(),
            source,
        })?;
        Self::start(path, db, limits)
    }

    fn start(path: PathBuf, db: sled::Db, limits: SpoolLimits) -> Result<Self, SpoolError> {
        let write_error = |source| SpoolError::Write {
            path: path.clone(),
            source,
        };
        let mut update = sled::Batch::default();
        let spool_id = match read_counter(&db, SPOOL_ID_KEY) {
            Ok(Some(spool_id)) if spool_id != 0 => spool_id,
            found => {
                if let Err(reason) = found {
                    tracing::warn!(spool = %path.display(), %reason, "the spool id cannot be read; the spool continues under a new id");
                }
                let spool_id = rand::random::<u64>() | 1;
                update.insert(SPOOL_ID_KEY, &spool_id.to_be_bytes());
                spool_id
            }
        };
        let mut next_seq = read_counter(&db, NEXT_SEQ_KEY)
            .unwrap_or_else(|reason| {
                tracing::warn!(spool = %path.display(), %reason, "the next sequence number cannot be read; continuing after the newest batch");
                None
            })
            .unwrap_or(1)
            .max(1);
        let mut dropped_batches = read_counter(&db, DROPPED_KEY)
            .unwrap_or_else(|reason| {
                tracing::warn!(spool = %path.display(), %reason, "the count of dropped batches cannot be read; counting again from 0");
                None
            })
            .unwrap_or(0);

        let mut index = VecDeque::new();
        let mut queued_bytes = 0;
        for entry in db.scan_prefix(BATCH_PREFIX) {
            let (key, value) = entry.map_err(write_error)?;
            match decode_entry(&key, &value) {
                Ok(batch) => {
                    index.push_back((batch.seq, value.len() as u64));
                    queued_bytes += value.len() as u64;
                    next_seq = next_seq.max(batch.seq + 1);
                }
                Err(reason) => {
                    tracing::warn!(spool = %path.display(), key = %String::from_utf8_lossy(&key), %reason, "skipping a batch in the spool that cannot be read back; it is removed and counted as dropped");
                    if let Some(seq) = seq_of_key(&key) {
                        next_seq = next_seq.max(seq + 1);
                    }
                    update.remove(key);
                    dropped_batches += 1;
                }
            }
        }
        update.insert(NEXT_SEQ_KEY, &next_seq.to_be_bytes());
        update.insert(DROPPED_KEY, &dropped_batches.to_be_bytes());
        db.apply_batch(update).map_err(write_error)?;
        db.flush().map_err(write_error)?;

        let newest = index.back().map_or(0, |(seq, _)| *seq);
        if !index.is_empty() {
            tracing::info!(spool = %path.display(), spool_id, queued_batches = index.len(), queued_bytes, "spool opened with batches from before; they are sent first");
        }
        let spool = Self {
            path,
            db,
            limits,
            state: Mutex::new(SpoolState {
                spool_id,
                next_seq,
                dropped_batches,
                drops_in_streak: 0,
                index,
                queued_bytes,
            }),
            newest_seq: watch::channel(newest).0,
        };
        spool.shrink_to_limits();
        Ok(spool)
    }

    pub fn spool_id(&self) -> u64 {
        self.lock().spool_id
    }

    /// The sequence number the next batch will get: every batch this spool made has a
    /// lower one. The hello tells the collector, which can then recognise a spool restored
    /// from a backup (it holds more than this spool ever made).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Starts the spool afresh under a new random id and numbers the batches it still
    /// holds 1, 2, 3… under it, in their order, so that they are all sent again. For when
    /// the collector holds more of this spool than it ever made: the state folder was
    /// restored from a backup or a snapshot, or copied to another machine. Returns the new
    /// id and the number of batches kept.
    pub fn start_new_spool(&self) -> Result<(u64, usize), SpoolError> {
        let mut state = self.lock();
        let mut update = sled::Batch::default();
        let mut renumbered = VecDeque::with_capacity(state.index.len());
        let mut queued_bytes = 0;
        let mut dropped = 0;
        for (old_seq, _) in &state.index {
            let key = batch_key(*old_seq);
            update.remove(&key[..]);
            let read = self
                .db
                .get(key)
                .map_err(|error| error.to_string())
                .and_then(|value| value.ok_or_else(|| "missing from the database".to_string()))
                .and_then(|value| decode_entry(&key, &value));
            match read {
                Ok(batch) => {
                    let seq = renumbered.len() as u64 + 1;
                    let encoded = pb::Batch::from(&Batch { seq, ..batch }).encode_to_vec();
                    queued_bytes += encoded.len() as u64;
                    renumbered.push_back((seq, encoded.len() as u64));
                    update.insert(&batch_key(seq)[..], encoded);
                }
                Err(reason) => {
                    tracing::warn!(spool = %self.path.display(), seq = old_seq, %reason, "skipping a batch in the spool that cannot be read back; it is removed and counted as dropped");
                    dropped += 1;
                }
            }
        }
        let spool_id = loop {
            let candidate = rand::random::<u64>() | 1;
            if candidate != state.spool_id {
                break candidate;
            }
        };
        let next_seq = renumbered.len() as u64 + 1;
        update.insert(SPOOL_ID_KEY, &spool_id.to_be_bytes());
        update.insert(NEXT_SEQ_KEY, &next_seq.to_be_bytes());
        update.insert(
            DROPPED_KEY,
            &(state.dropped_batches + dropped).to_be_bytes(),
        );
        self.apply(update)?;
        let n_kept = renumbered.len();
        state.spool_id = spool_id;
        state.next_seq = next_seq;
        state.dropped_batches += dropped;
        state.index = renumbered;
        state.queued_bytes = queued_bytes;
        drop(state);
        self.newest_seq.send_replace(next_seq - 1);
        Ok((spool_id, n_kept))
    }

    /// The folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one tick's series as the next batch and returns its sequence number. When the
    /// spool is full the oldest batches make room and are counted as dropped; a batch that
    /// cannot be written is logged and counted as dropped too. Flushed before returning.
    pub fn push(&self, series: Vec<Series>) -> u64 {
        self.push_with_excerpts(series, Vec::new())
    }

    /// [`Spool::push_with_excerpts`] on a blocking thread (it flushes with an fsync, and the
    /// agent's runtime has one thread); `None` if that thread panicked.
    pub async fn push_off_thread(
        self: &Arc<Self>,
        series: Vec<Series>,
        log_excerpts: Vec<LogExcerpt>,
    ) -> Option<u64> {
        let spool = Arc::clone(self);
        tokio::task::spawn_blocking(move || spool.push_with_excerpts(series, log_excerpts))
            .await
            .ok()
    }

    /// [`Spool::push`], with the log lines matched since the previous batch.
    pub fn push_with_excerpts(&self, series: Vec<Series>, log_excerpts: Vec<LogExcerpt>) -> u64 {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        let encoded = pb::Batch::from(&Batch {
            seq,
            series,
            log_excerpts,
        })
        .encode_to_vec();
        let size = encoded.len() as u64;

        let mut update = sled::Batch::default();
        update.insert(NEXT_SEQ_KEY, &state.next_seq.to_be_bytes());
        // Make room, oldest first. A batch larger than the whole spool cannot be kept at all.
        let mut n_victims = 0;
        let mut freed_bytes = 0;
        let fits = size <= self.limits.max_bytes;
        if fits {
            for (victim_seq, victim_size) in &state.index {
                if state.queued_bytes - freed_bytes + size <= self.limits.max_bytes {
                    break;
                }
                update.remove(&batch_key(*victim_seq)[..]);
                n_victims += 1;
                freed_bytes += victim_size;
            }
            update.insert(&batch_key(seq)[..], encoded);
        } else {
            tracing::error!(
                seq,
                bytes = size,
                max_bytes = self.limits.max_bytes,
                "a batch is larger than the whole spool; it is dropped (raise spool.max_size_mib)"
            );
        }
        let n_dropped = n_victims + u64::from(!fits);
        update.insert(
            DROPPED_KEY,
            &(state.dropped_batches + n_dropped).to_be_bytes(),
        );
        match self.apply(update) {
            Ok(()) => {
                state.index.drain(..n_victims as usize);
                state.queued_bytes -= freed_bytes;
                if fits {
                    state.index.push_back((seq, size));
                    state.queued_bytes += size;
                }
                state.dropped_batches += n_dropped;
                if n_victims > 0 {
                    let before = state.drops_in_streak;
                    let after = before + n_victims;
                    if before == 0
                        || before / DROPS_BETWEEN_WARNINGS != after / DROPS_BETWEEN_WARNINGS
                    {
                        tracing::warn!(
                            dropped_total = state.dropped_batches,
                            max_bytes = self.limits.max_bytes,
                            "spool full: dropping the oldest batches to make room for new ones"
                        );
                    }
                    state.drops_in_streak = after;
                } else {
                    state.drops_in_streak = 0;
                }
            }
            Err(error) => {
                // The sequence number is spent either way: the collector sees a gap, and the
                // drop count says why.
                state.dropped_batches += 1;
                tracing::error!(seq, %error, "the batch could not be queued and is dropped");
            }
        }
        drop(state);
        if fits {
            self.newest_seq.send_replace(seq);
        }
        seq
    }

    /// Up to `limit` queued batches with a sequence number above `after`, oldest first. A
    /// batch that cannot be read back is logged, removed and counted as dropped.
    pub fn batches_after(&self, after: u64, limit: usize) -> Vec<Batch> {
        let mut state = self.lock();
        let start = state.index.partition_point(|(seq, _)| *seq <= after);
        let mut batches = Vec::new();
        let mut corrupt = Vec::new();
        for (seq, _) in state.index.iter().skip(start) {
            if batches.len() >= limit {
                break;
            }
            let key = batch_key(*seq);
            let read = self
                .db
                .get(key)
                .map_err(|error| error.to_string())
                .and_then(|value| value.ok_or_else(|| "missing from the database".to_string()))
                .and_then(|value| decode_entry(&key, &value));
            match read {
                Ok(batch) => batches.push(batch),
                Err(reason) => {
                    tracing::warn!(spool = %self.path.display(), seq, %reason, "skipping a batch in the spool that cannot be read back; it is removed and counted as dropped");
                    corrupt.push(*seq);
                }
            }
        }
        if !corrupt.is_empty() {
            let mut update = sled::Batch::default();
            for seq in &corrupt {
                update.remove(&batch_key(*seq)[..]);
            }
            let dropped = state.dropped_batches + corrupt.len() as u64;
            update.insert(DROPPED_KEY, &dropped.to_be_bytes());
            if let Err(error) = self.apply(update) {
                tracing::error!(%error, "removing corrupt batches from the spool failed");
            }
            state.dropped_batches = dropped;
            for seq in corrupt {
                state.remove(seq);
            }
        }
        batches
    }

    /// The collector has stored every batch up to `seq`: they leave the spool for good.
    pub fn ack(&self, seq: u64) {
        let mut state = self.lock();
        let n_acked = state.index.partition_point(|(queued, _)| *queued <= seq);
        if n_acked == 0 {
            return;
        }
        let mut update = sled::Batch::default();
        for (queued, _) in state.index.iter().take(n_acked) {
            update.remove(&batch_key(*queued)[..]);
        }
        // Not flushed: the next push's flush carries it to disk. A release lost in a crash
        // only means the collector is sent those batches again, and it stores a batch once.
        match self.apply_unflushed(update) {
            Ok(()) => {
                let freed: u64 = state.index.drain(..n_acked).map(|(_, size)| size).sum();
                state.queued_bytes -= freed;
                state.drops_in_streak = 0;
            }
            // They stay and are sent again; the collector stores a batch once.
            Err(error) => tracing::warn!(seq, %error, "releasing acknowledged batches failed"),
        }
    }

    /// [`Spool::ack`] on a blocking thread: it writes to the database, and the agent's
    /// runtime has one thread, which must not wait for the disk.
    pub async fn ack_off_thread(self: &Arc<Self>, seq: u64) {
        let spool = Arc::clone(self);
        if let Err(error) = tokio::task::spawn_blocking(move || spool.ack(seq)).await {
            tracing::warn!(seq, %error, "releasing acknowledged batches failed");
        }
    }

    /// The collector refused batch `seq` for good.
    pub fn discard(&self, seq: u64) {
        let mut state = self.lock();
        let mut update = sled::Batch::default();
        update.remove(&batch_key(seq)[..]);
        match self.apply(update) {
            Ok(()) => state.remove(seq),
            Err(error) => tracing::warn!(seq, %error, "discarding a refused batch failed"),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded size of everything queued.
    pub fn queued_bytes(&self) -> u64 {
        self.lock().queued_bytes
    }

    /// Batches dropped since the spool was created: oldest-first drops of a full spool, batches
    /// that could not be written, and corrupt entries. Survives restarts.
    pub fn dropped_batches(&self) -> u64 {
        self.lock().dropped_batches
    }

    /// Watches the newest sequence number pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest_seq.subscribe()
    }

    /// Drops the oldest batches until the queue fits the limits (which may have shrunk since
    /// the spool was written).
    fn shrink_to_limits(&self) {
        let mut state = self.lock();
        let mut update = sled::Batch::default();
        let mut n_victims = 0;
        let mut freed_bytes = 0;
        for (seq, size) in &state.index {
            if state.queued_bytes - freed_bytes <= self.limits.max_bytes {
                break;
            }
            update.remove(&batch_key(*seq)[..]);
            n_victims += 1;
            freed_bytes += size;
        }
        if n_victims == 0 {
            return;
        }
        let dropped = state.dropped_batches + n_victims;
        update.insert(DROPPED_KEY, &dropped.to_be_bytes());
        match self.apply(update) {
            Ok(()) => {
                state.index.drain(..n_victims as usize);
                state.queued_bytes -= freed_bytes;
                state.dropped_batches = dropped;
                tracing::warn!(
                    n_dropped = n_victims,
                    max_bytes = self.limits.max_bytes,
                    "the spool held more than its limit; dropped the oldest batches"
                );
            }
            Err(error) => tracing::warn!(%error, "shrinking the spool to its limit failed"),
        }
    }

    /// Applies `update` atomically and flushes it.
    ///
    /// sled's flush writes its log and syncs it with `sync_file_range` on Linux, not
    /// `fsync`: the data survives the agent being killed or restarted, but not necessarily
    /// a power cut right after the flush. That is enough here — the spool exists for outages
    /// of the network and the collector, and the next tick is never more than an interval
    /// away.
    fn apply(&self, update: sled::Batch) -> Result<(), SpoolError> {
        self.apply_unflushed(update)?;
        self.db.flush().map_err(|source| SpoolError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }

    fn apply_unflushed(&self, update: sled::Batch) -> Result<(), SpoolError> {
        self.db
            .apply_batch(update)
            .map_err(|source| SpoolError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SpoolState {
    fn remove(&mut self, seq: u64) {
        if let Ok(position) = self.index.binary_search_by_key(&seq, |(queued, _)| *queued) {
            if let Some((_, size)) = self.index.remove(position) {
                self.queued_bytes -= size;
            }
        }
    }
}

fn sled_config() -> sled::Config {
    sled::Config::new()
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .mode(sled::Mode::LowSpace)
        // Every write is flushed explicitly; a background flusher would only wake the agent
        // twice a second for nothing.
        .flush_every_ms(None)
}

fn batch_key(seq: u64) -> [u8; 14] {
    let mut key = [0; 14];
    key[..BATCH_PREFIX.len()].copy_from_slice(BATCH_PREFIX);
    key[BATCH_PREFIX.len()..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.strip_prefix(BATCH_PREFIX)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Reads a batch back, checking that it is the one its key names.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<Batch, String> {
    let seq = seq_of_key(key).ok_or("the key is not a batch key")?;
    let wire = pb::Batch::decode(value).map_err(|error| format!("undecodable: {error}"))?;
    let batch = Batch::try_from(wire).map_err(|error| format!("invalid: {error}"))?;
    if batch.seq != seq {
        return Err(format!("holds batch {} under key {seq}", batch.seq));
    }
    Ok(batch)
}

fn read_counter(db: &sled::Db, key: &[u8]) -> Result<Option<u64>, String> {
    match db.get(key) {
        Ok(None) => Ok(None),
        Ok(Some(value)) => {
            let bytes: [u8; 8] = value
                .as_ref()
                .try_into()
                .map_err(|_| format!("{} bytes where 8 were expected", value.len()))?;
            Ok(Some(u64::from_be_bytes(bytes)))
        }
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod new_spool_tests {
    use super::*;
    use vigil_proto::model::{Labels, Sample};

    fn series(value: f64) -> Vec<Series> {
        vec![Series {
            name: "up".into(),
            labels: Labels::new(),
            samples: vec![Sample {
                timestamp_ms: 1_000,
                value,
            }],
        }]
    }

    #[test]
    fn a_new_spool_keeps_every_queued_batch_renumbered_from_one_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (old_id, new_id) = {
            let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            for value in 1..=5 {
                spool.push(series(f64::from(value)));
            }
            spool.ack(2);
            let old_id = spool.spool_id();
            let (new_id, n_kept) = spool.start_new_spool().unwrap();
            assert_eq!(n_kept, 3);
            assert_eq!(spool.next_seq(), 4);
            (old_id, new_id)
        };
        assert_ne!(old_id, new_id);
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.spool_id(), new_id);
        let batches = spool.batches_after(0, 10);
        let seqs: Vec<u64> = batches.iter().map(|batch| batch.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        let values: Vec<f64> = batches
            .iter()
            .map(|batch| batch.series[0].samples[0].value)
            .collect();
        assert_eq!(values, vec![3.0, 4.0, 5.0], "the same batches, in order");
        assert_eq!(spool.push(series(6.0)), 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(batches: &[Batch]) -> Vec<u64> {
        batches.iter().map(|batch| batch.seq).collect()
    }

    #[test]
    fn sequence_numbers_start_at_one_and_increase() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(spool.push(vec![]), 1);
        assert_eq!(spool.push(vec![]), 2);
        assert_eq!(seqs(&spool.batches_after(0, 10)), vec![1, 2]);
    }

    #[test]
    fn an_ack_releases_everything_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        for _ in 0..5 {
            spool.push(vec![]);
        }
        spool.ack(3);
        assert_eq!(seqs(&spool.batches_after(0, 10)), vec![4, 5]);
        assert_eq!(spool.batches_after(4, 10).len(), 1);
        assert_eq!(spool.len(), 2);
    }

    #[test]
    fn a_discarded_batch_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        spool.push(vec![]);
        spool.push(vec![]);
        spool.discard(1);
        assert_eq!(seqs(&spool.batches_after(0, 10)), vec![2]);
    }

    #[test]
    fn a_corrupt_entry_is_skipped_removed_and_counted_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            for _ in 0..3 {
                spool.push(vec![]);
            }
            // Garbage where batch 2 was, and a batch stored under the wrong key.
            spool
                .db
                .insert(batch_key(2), &[0xff, 0xff, 0xff][..])
                .unwrap();
            let batch_one = spool.db.get(batch_key(1)).unwrap().unwrap();
            spool.db.insert(batch_key(9), batch_one).unwrap();
            spool.db.flush().unwrap();
        }
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(seqs(&spool.batches_after(0, 10)), vec![1, 3]);
        assert_eq!(spool.dropped_batches(), 2);
        // Numbering goes on past every key ever used.
        assert_eq!(spool.push(vec![]), 10);

        // Corruption found while sending is handled the same way.
        spool.db.insert(batch_key(3), &b"not a batch"[..]).unwrap();
        assert_eq!(seqs(&spool.batches_after(0, 10)), vec![1, 10]);
        assert_eq!(spool.dropped_batches(), 3);
        assert_eq!(spool.len(), 2);
    }

    #[test]
    fn unreadable_counters_start_a_new_spool_id_rather_than_failing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            spool.db.insert(SPOOL_ID_KEY, &b"?"[..]).unwrap();
            spool.db.flush().unwrap();
        }
        let spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_ne!(spool.spool_id(), 0);
        assert_eq!(spool.push(vec![]), 1);
    }

    #[test]
    fn a_temporary_spool_works_like_a_durable_one() {
        let spool = Spool::open_temporary(SpoolLimits::default()).unwrap();
        assert_eq!(spool.push(vec![]), 1);
        spool.ack(1);
        assert!(spool.is_empty());
    }
}
