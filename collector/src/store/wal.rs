//! The write-ahead log: where an agent's batch becomes durable before it is acknowledged.
//! Batches are framed (length and CRC-32C), appended to segment files under
//! `<data_dir>/wal/`, and made durable by group commit: one committer thread takes every
//! record that waits, writes them with one `write`, calls `fdatasync` once, and wakes all
//! their appenders. The head ([`super::head`]) holds the same samples in memory until they
//! are sealed into sled; segments are deleted only behind a checkpoint that made those
//! chunks durable. On open, the segments are replayed in order; a torn final record (the
//! process died mid-write) is cut off, which loses nothing that was acknowledged.
//!
//! When remote-write export is on (the folder `<data_dir>/remote_write/log/` exists, see
//! [`super::export_log`]), every segment is also hard-linked into that folder as it is
//! created: the log trims and deletes its own names as before, and the export keeps the
//! same bytes under the other name until every exporter has sent them. Segment numbers then
//! continue past the exported ones, so a segment number names one segment across restarts.
//!
//! This file knows bytes and files; it does not know sled, series or the head.
//!
//! Segment: `VIGILWAL` ‖ version (u32 LE) ‖ frames. Frame: payload length (u32 LE) ‖
//! CRC-32C of the length bytes and the payload (u32 LE) ‖ payload. Batch payload, integers
//! as LEB128 varints: kind (1) ‖ host (length, bytes) ‖ spool id ‖ seq ‖ number of series ‖
//! per series: series id ‖ labels (length, bytes; length 0 when the series is not new) ‖
//! number of samples ‖ per sample: timestamp (zigzag delta from the previous one in the
//! record) ‖ value (f64 bits, LE).

use super::varint::{put_varint, take_varint};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use vigil_proto::model::Sample;

use super::error::StoreError;
use super::WriteHealth;

/// Name of the folder under the data directory that holds the segments.
pub(super) const WAL_DIR: &str = "wal";
const SEGMENT_MAGIC: &[u8; 8] = b"VIGILWAL";
const SEGMENT_VERSION: u32 = 1;
const SEGMENT_HEADER_LEN: usize = 12;
const FRAME_HEADER_LEN: usize = 8;
/// No record is this large (a batch is bounded far below by `vigil_proto::limits`); a length
/// above it is damage, not a record.
pub(super) const MAX_RECORD_LEN: usize = 64 << 20;
/// A segment that has grown this large is closed and a new one started.
const SEGMENT_MAX_BYTES: u64 = 64 << 20;
const RECORD_KIND_BATCH: u8 = 1;

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli), the checksum of every frame: the crc32c crate uses the processor's
// instruction where there is one, so that checksumming a large batch costs little.

/// CRC-32C of the concatenation of `parts`.
pub(super) fn crc32c(parts: &[&[u8]]) -> u32 {
    parts
        .iter()
        .fold(0, |crc, part| crc32c::crc32c_append(crc, part))
}

// ---------------------------------------------------------------------------------------
// Frames.

/// Appends one frame holding `payload` to `out`.
pub(super) fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let length = u32::try_from(payload.len()).expect("a record is shorter than 4 GiB");
    let length_bytes = length.to_le_bytes();
    out.extend_from_slice(&length_bytes);
    out.extend_from_slice(&crc32c(&[&length_bytes, payload]).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What [`read_frame`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// An intact frame's payload and the offset of the next frame.
    Record { payload: &'a [u8], next: usize },
    /// Nothing more: the offset is the end of the bytes.
    End,
    /// The bytes from here on are not an intact frame: a write cut short, or damage.
    Invalid { reason: &'static str },
}

pub(super) fn read_frame(bytes: &[u8], offset: usize) -> Frame<'_> {
    let rest = &bytes[offset.min(bytes.len())..];
    if rest.is_empty() {
        return Frame::End;
    }
    let Some((header, body)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Frame::Invalid {
            reason: "a frame header cut short",
        };
    };
    let length_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let length = u32::from_le_bytes(length_bytes) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if length == 0 || length > MAX_RECORD_LEN {
        return Frame::Invalid {
            reason: "a frame length out of range",
        };
    }
    let Some(payload) = body.get(..length) else {
        return Frame::Invalid {
            reason: "a frame cut short",
        };
    };
    if crc32c(&[&length_bytes, payload]) != crc {
        return Frame::Invalid {
            reason: "a frame whose checksum does not match",
        };
    }
    Frame::Record {
        payload,
        next: offset + FRAME_HEADER_LEN + length,
    }
}

// ---------------------------------------------------------------------------------------
// Batch records.

fn take_bytes<'a>(bytes: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    if bytes.len() < length {
        return None;
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Some(taken)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// One series of a batch as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LoggedSeries {
    pub series_id: u64,
    /// The encoded labels ([`super::keys::encode_labels`]) when this batch created the
    /// series, so that replay can create it again if the index lost it.
    pub new_labels: Option<Vec<u8>>,
    pub samples: Vec<Sample>,
}

/// A batch as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LoggedBatch {
    pub host: String,
    pub spool_id: u64,
    pub seq: u64,
    pub series: Vec<LoggedSeries>,
}

/// Encodes a batch record; `series` yields (series id, labels if new, samples).
pub(super) fn encode_batch<'a>(
    host: &str,
    spool_id: u64,
    seq: u64,
    series: impl ExactSizeIterator<Item = (u64, Option<&'a [u8]>, &'a [Sample])>,
    out: &mut Vec<u8>,
) {
    out.push(RECORD_KIND_BATCH);
    put_varint(out, host.len() as u64);
    out.extend_from_slice(host.as_bytes());
    put_varint(out, spool_id);
    put_varint(out, seq);
    put_varint(out, series.len() as u64);
    let mut previous_ms = 0i64;
    for (series_id, new_labels, samples) in series {
        put_varint(out, series_id);
        let labels = new_labels.unwrap_or_default();
        put_varint(out, labels.len() as u64);
        out.extend_from_slice(labels);
        put_varint(out, samples.len() as u64);
        for sample in samples {
            put_varint(out, zigzag(sample.timestamp_ms.wrapping_sub(previous_ms)));
            out.extend_from_slice(&sample.value.to_bits().to_le_bytes());
            previous_ms = sample.timestamp_ms;
        }
    }
}

/// The inverse of [`encode_batch`]; `None` when the payload is not such a record.
pub(super) fn decode_batch(mut bytes: &[u8]) -> Option<LoggedBatch> {
    let bytes = &mut bytes;
    if take_bytes(bytes, 1)? != [RECORD_KIND_BATCH] {
        return None;
    }
    let host_len = usize::try_from(take_varint(bytes)?).ok()?;
    let host = std::str::from_utf8(take_bytes(bytes, host_len)?)
        .ok()?
        .to_owned();
    let spool_id = take_varint(bytes)?;
    let seq = take_varint(bytes)?;
    let n_series = usize::try_from(take_varint(bytes)?).ok()?;
    // Every series takes at least three bytes, which bounds a damaged count.
    let mut series = Vec::with_capacity(n_series.min(bytes.len() / 3));
    let mut previous_ms = 0i64;
    for _ in 0..n_series {
        let series_id = take_varint(bytes)?;
        let labels_len = usize::try_from(take_varint(bytes)?).ok()?;
        let labels = take_bytes(bytes, labels_len)?;
        let n_samples = usize::try_from(take_varint(bytes)?).ok()?;
        let mut samples = Vec::with_capacity(n_samples.min(bytes.len() / 9));
        for _ in 0..n_samples {
            let timestamp_ms = previous_ms.wrapping_add(unzigzag(take_varint(bytes)?));
            let value = f64::from_bits(u64::from_le_bytes(take_bytes(bytes, 8)?.try_into().ok()?));
            samples.push(Sample {
                timestamp_ms,
                value,
            });
            previous_ms = timestamp_ms;
        }
        series.push(LoggedSeries {
            series_id,
            new_labels: (!labels.is_empty()).then(|| labels.to_vec()),
            samples,
        });
    }
    bytes.is_empty().then_some(LoggedBatch {
        host,
        spool_id,
        seq,
        series,
    })
}

// ---------------------------------------------------------------------------------------
// Segment files.

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

/// The segments in `dir`, oldest first. Files that are not segments are left alone.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((number, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Flushes a directory's entries (a created, renamed or removed file) to disk.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment read back at open: its payloads, in order.
pub(super) struct SegmentContents {
    pub bytes: Vec<u8>,
    /// Where each record's payload lies in `bytes`.
    pub records: Vec<std::ops::Range<usize>>,
}

/// Reads a segment. The final segment may end in a torn frame (the process died while
/// writing it): the file is cut back to its last intact frame and `Ok` returned. Anywhere
/// else, a frame that is not intact is damage.
pub(super) fn read_segment(path: &Path, is_last: bool) -> Result<SegmentContents, StoreError> {
    let wal_error = |source| StoreError::Wal {
        path: path.to_owned(),
        action: "reading",
        source,
    };
    let bytes = fs::read(path).map_err(wal_error)?;
    let header_ok = bytes.len() >= SEGMENT_HEADER_LEN
        && &bytes[..8] == SEGMENT_MAGIC
        && bytes[8..12] == SEGMENT_VERSION.to_le_bytes();
    if !header_ok {
        // A segment is created and its header synced before any record goes in, so only a
        // crash right at creation leaves a short or blank header, and then nothing follows.
        let blank = bytes.iter().all(|&byte| byte == 0)
            || (bytes.len() < SEGMENT_HEADER_LEN
                && SEGMENT_MAGIC.starts_with(&bytes[..bytes.len().min(8)]));
        if is_last && blank {
            rewrite_header(path).map_err(|source| StoreError::Wal {
                path: path.to_owned(),
                action: "repairing the header of",
                source,
            })?;
            return Ok(SegmentContents {
                bytes: Vec::new(),
                records: Vec::new(),
            });
        }
        return Err(StoreError::WalDamaged {
            path: path.to_owned(),
            offset: 0,
            reason: "it does not start with a segment header",
        });
    }
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    loop {
        match read_frame(&bytes, offset) {
            Frame::Record { payload, next } => {
                let start = offset + FRAME_HEADER_LEN;
                records.push(start..start + payload.len());
                offset = next;
            }
            Frame::End => break,
            Frame::Invalid { reason } if !is_last => {
                return Err(StoreError::WalDamaged {
                    path: path.to_owned(),
                    offset: offset as u64,
                    reason,
                })
            }
            Frame::Invalid { reason } => {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    reason,
                    "cutting off the end of the write-ahead log the last run left unfinished"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(wal_error)?;
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|source| StoreError::Wal {
                        path: path.to_owned(),
                        action: "cutting off the torn end of",
                        source,
                    })?;
                break;
            }
        }
    }
    Ok(SegmentContents { bytes, records })
}

fn rewrite_header(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    write_header(&mut file)
}

fn write_header(file: &mut File) -> io::Result<()> {
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    file.write_all(&header)?;
    file.sync_all()
}

/// Creates segment `number` with its header, durably (file and directory entry). With an
/// export folder, the segment is linked there too before any record goes in; a link that
/// fails is logged and the log goes on (ingest never waits for export).
fn create_segment(dir: &Path, number: u64, export_dir: Option<&Path>) -> io::Result<File> {
    let path = segment_path(dir, number);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    write_header(&mut file)?;
    sync_dir(dir)?;
    if let Some(export_dir) = export_dir {
        let link = segment_path(export_dir, number);
        if let Err(error) = fs::hard_link(&path, &link).and_then(|()| sync_dir(export_dir)) {
            tracing::warn!(
                segment = %path.display(),
                link = %link.display(),
                %error,
                "cannot link a new write-ahead log segment for remote-write export; its records will not be exported"
            );
        }
    }
    Ok(file)
}

/// Where the export keeps its links, when export is on: beside `wal/`, under the data
/// directory.
pub(super) fn export_dir_of(wal_dir: &Path) -> Option<PathBuf> {
    let export_dir = wal_dir.parent()?.join(super::export_log::EXPORT_LOG_DIR);
    export_dir.is_dir().then_some(export_dir)
}

/// Position in the log up to which every byte is durable: a segment number and a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DurableEnd {
    pub segment: u64,
    pub bytes: u64,
}

/// Bytes a segment starts with, before its first frame.
pub(super) const FIRST_FRAME_OFFSET: u64 = SEGMENT_HEADER_LEN as u64;
/// Bytes of a frame before its payload.
pub(super) const FRAME_HEADER_BYTES: u64 = FRAME_HEADER_LEN as u64;

/// The path of segment `number` in `dir`.
pub(super) fn segment_file(dir: &Path, number: u64) -> PathBuf {
    segment_path(dir, number)
}

// ---------------------------------------------------------------------------------------
// The log and its committer thread.

/// A segment on disk and the last record it holds. Records are numbered (log sequence
/// numbers, LSNs) from 1 in the order they were submitted in this process's life, replayed
/// ones first; the numbers are not stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct SegmentSpan {
    pub number: u64,
    /// 0 when the segment holds no record.
    pub last_lsn: u64,
}

/// The open log: submit records, wait for them to be durable, trim behind checkpoints.
pub(super) struct Wal {
    shared: Arc<Shared>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    dir: PathBuf,
    /// Where new segments are also linked for remote-write export; `None` when it is off.
    export_dir: Option<PathBuf>,
    state: Mutex<State>,
    /// The committer waits here for records (or rotation, or stop, or a repair to try).
    work: Condvar,
    /// Appenders wait here for their records to be written or to fail.
    durable: Condvar,
    /// Whether writes to the log succeed, for whoever watches (the alert pipeline).
    health: watch::Sender<WriteHealth>,
    /// Told how long each group commit's fsync took (the collector's `/metrics`).
    fsync_observer: Mutex<Option<super::FsyncObserver>>,
    /// Tests: how many of the next writes (and repairs) fail as on a full disk.
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicU32,
}

struct State {
    /// Records reserved and not yet taken by the committer, from LSN `first_slot_lsn` on;
    /// `None` while the appender that reserved it is still encoding its frame.
    slots: VecDeque<Option<Vec<u8>>>,
    first_slot_lsn: u64,
    /// LSN of the last record reserved.
    submitted_lsn: u64,
    /// Every record up to this LSN is either on disk or in `failed`.
    processed_lsn: u64,
    /// LSN ranges whose write failed: never durable, never acknowledged. Consecutive
    /// failures extend the last range, so an outage is one entry.
    failed: VecDeque<(u64, u64)>,
    /// A write or fsync failed and the segment has not been cut back and replaced yet:
    /// nothing is accepted meanwhile.
    needs_repair: bool,
    /// The last failure, for errors and health.
    failure: Option<String>,
    /// Set by [`Wal::close`]: nothing more is accepted, ever.
    closed: bool,
    rotate: bool,
    stop: bool,
    /// Segments on disk, oldest first; the last is the one being written.
    segments: VecDeque<SegmentSpan>,
    /// Bytes in the segments on disk.
    bytes_on_disk: u64,
    /// Everything before this position is durable (what export may read).
    durable_end: DurableEnd,
}

/// How often the committer tries to repair the log after a failed write.
const REPAIR_EVERY: Duration = Duration::from_millis(500);
/// Failed ranges remembered (an appender looks at its own at once; this only bounds memory).
const MAX_FAILED_RANGES: usize = 4096;

impl Wal {
    /// Starts the log in `dir` after replay: `replayed` are the segments replay read (they
    /// stay until trimmed), `last_lsn` the number of records it read. New records go to a
    /// fresh segment.
    pub(super) fn start(
        dir: &Path,
        replayed: Vec<SegmentSpan>,
        last_lsn: u64,
    ) -> Result<Wal, StoreError> {
        let export_dir = export_dir_of(dir);
        // Numbers go on past the segments export still holds, which outlive the log's own
        // names after a clean stop.
        let exported_last = export_dir
            .as_deref()
            .and_then(|export_dir| list_segments(export_dir).ok())
            .and_then(|segments| segments.last().map(|(number, _)| *number))
            .unwrap_or(0);
        let number = replayed
            .last()
            .map_or(1, |segment| segment.number + 1)
            .max(exported_last + 1);
        let file = create_segment(dir, number, export_dir.as_deref()).map_err(|source| {
            StoreError::Wal {
                path: segment_path(dir, number),
                action: "creating",
                source,
            }
        })?;
        // Segments without records (left by a run that checkpointed and stopped) go now.
        let (empty, replayed): (Vec<SegmentSpan>, Vec<SegmentSpan>) = replayed
            .into_iter()
            .partition(|segment| segment.last_lsn == 0);
        for segment in &empty {
            let path = segment_path(dir, segment.number);
            fs::remove_file(&path).map_err(|source| StoreError::Wal {
                path,
                action: "deleting",
                source,
            })?;
        }
        let mut bytes_on_disk = 0;
        for segment in &replayed {
            bytes_on_disk += fs::metadata(segment_path(dir, segment.number))
                .map(|metadata| metadata.len())
                .unwrap_or(0);
        }
        let mut segments: VecDeque<SegmentSpan> = replayed.into();
        segments.push_back(SegmentSpan {
            number,
            last_lsn: 0,
        });
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            export_dir,
            state: Mutex::new(State {
                slots: VecDeque::new(),
                first_slot_lsn: last_lsn + 1,
                submitted_lsn: last_lsn,
                processed_lsn: last_lsn,
                failed: VecDeque::new(),
                needs_repair: false,
                failure: None,
                closed: false,
                rotate: false,
                stop: false,
                segments,
                bytes_on_disk: bytes_on_disk + SEGMENT_HEADER_LEN as u64,
                durable_end: DurableEnd {
                    segment: number,
                    bytes: SEGMENT_HEADER_LEN as u64,
                },
            }),
            work: Condvar::new(),
            durable: Condvar::new(),
            health: watch::Sender::new(WriteHealth::default()),
            fsync_observer: Mutex::new(None),
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicU32::new(0),
        });
        let committer_shared = Arc::clone(&shared);
        let committer = std::thread::Builder::new()
            .name("vigil-wal-commit".to_owned())
            .spawn(move || committer_shared.run_committer(file, number))
            .map_err(|source| StoreError::Wal {
                path: dir.to_owned(),
                action: "starting the committer thread of",
                source,
            })?;
        Ok(Wal {
            shared,
            committer: Mutex::new(Some(committer)),
        })
    }

    /// Takes the next LSN for a record that [`Wal::fill`] will provide: the log keeps
    /// records in the order of their reservations, so a caller reserves under its own lock
    /// (which orders the head) and encodes the record after releasing it. Refused while the
    /// log is failing or closed.
    pub(super) fn reserve(&self) -> Result<u64, StoreError> {
        let mut state = self.shared.lock();
        if state.closed || state.needs_repair {
            return Err(self.shared.failed(&state));
        }
        state.submitted_lsn += 1;
        state.slots.push_back(None);
        Ok(state.submitted_lsn)
    }

    /// Provides the record reserved as `lsn`. The frame (length and checksum) is made here,
    /// outside every lock. A record whose reservation failed meanwhile is dropped.
    pub(super) fn fill(&self, lsn: u64, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + FRAME_HEADER_LEN);
        put_frame(&mut frame, payload);
        let mut state = self.shared.lock();
        if lsn < state.first_slot_lsn {
            return;
        }
        let index = (lsn - state.first_slot_lsn) as usize;
        if let Some(slot) = state.slots.get_mut(index) {
            *slot = Some(frame);
        }
        let first_ready = index == 0;
        drop(state);
        if first_ready {
            self.shared.work.notify_one();
        }
    }

    /// Queues a record; returns its LSN. The record is durable once [`Wal::wait_durable`]
    /// returns for that LSN.
    #[cfg(test)]
    pub(super) fn submit(&self, payload: &[u8]) -> Result<u64, StoreError> {
        let lsn = self.reserve()?;
        self.fill(lsn, payload);
        Ok(lsn)
    }

    /// LSN of the last record submitted so far.
    pub(super) fn submitted_lsn(&self) -> u64 {
        self.shared.lock().submitted_lsn
    }

    /// Blocks until every record up to `lsn` is on disk; fails when one of them will never
    /// be (its write failed, or the log closed before it).
    pub(super) fn wait_durable(&self, lsn: u64) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        loop {
            if state.processed_lsn >= lsn {
                let failed = state
                    .failed
                    .iter()
                    .any(|&(first, last)| first <= lsn && lsn <= last);
                return if failed {
                    Err(self.shared.failed(&state))
                } else {
                    Ok(())
                };
            }
            if state.closed && state.slots.is_empty() {
                return Err(self.shared.failed(&state));
            }
            state = self
                .shared
                .durable
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Fails when the log is refusing records (until a repair succeeds) or closed.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        let state = self.shared.lock();
        if state.closed || state.needs_repair {
            return Err(self.shared.failed(&state));
        }
        Ok(())
    }

    /// Tests: makes the next `n` writes or repairs fail as they would on a full disk.
    #[cfg(test)]
    pub(super) fn fail_next_writes(&self, n: u32) {
        self.shared
            .fail_writes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the log's writes succeed, now and as it changes.
    pub(super) fn health(&self) -> watch::Receiver<WriteHealth> {
        self.shared.health.subscribe()
    }

    /// Closes the segment being written at the next commit, so that a checkpoint can trim
    /// it later. Does nothing while that segment is empty.
    pub(super) fn request_rotation(&self) {
        let mut state = self.shared.lock();
        if state
            .segments
            .back()
            .is_some_and(|segment| segment.last_lsn > 0)
        {
            state.rotate = true;
            drop(state);
            self.shared.work.notify_one();
        }
    }

    /// Deletes the closed segments whose records all precede `needed_lsn` (everything in
    /// them is durable elsewhere). Returns how many were deleted.
    pub(super) fn trim_before(&self, needed_lsn: u64) -> Result<usize, StoreError> {
        let mut removed = Vec::new();
        {
            let mut state = self.shared.lock();
            while state.segments.len() > 1 {
                let oldest = state.segments[0];
                if oldest.last_lsn >= needed_lsn {
                    break;
                }
                state.segments.pop_front();
                removed.push(oldest.number);
            }
        }
        for &number in &removed {
            let path = segment_path(&self.shared.dir, number);
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(|source| StoreError::Wal {
                path: path.clone(),
                action: "deleting",
                source,
            })?;
            let mut state = self.shared.lock();
            state.bytes_on_disk = state.bytes_on_disk.saturating_sub(size);
        }
        if !removed.is_empty() {
            sync_dir(&self.shared.dir).map_err(|source| StoreError::Wal {
                path: self.shared.dir.clone(),
                action: "syncing the folder of",
                source,
            })?;
        }
        Ok(removed.len())
    }

    /// After [`Wal::close`]: deletes every segment whose records all precede `needed_lsn`,
    /// the last one included (nothing writes to it any more). Returns how many went.
    pub(super) fn remove_closed_before(&self, needed_lsn: u64) -> Result<usize, StoreError> {
        let removed: Vec<u64> = {
            let mut state = self.shared.lock();
            debug_assert!(
                state.closed,
                "the log is closed before its last segment goes"
            );
            let (gone, kept): (Vec<SegmentSpan>, Vec<SegmentSpan>) = state
                .segments
                .iter()
                .partition(|segment| segment.last_lsn < needed_lsn);
            state.segments = kept.into();
            gone.iter().map(|segment| segment.number).collect()
        };
        for &number in &removed {
            let path = segment_path(&self.shared.dir, number);
            fs::remove_file(&path).map_err(|source| StoreError::Wal {
                path: path.clone(),
                action: "deleting",
                source,
            })?;
        }
        if !removed.is_empty() {
            sync_dir(&self.shared.dir).map_err(|source| StoreError::Wal {
                path: self.shared.dir.clone(),
                action: "syncing the folder of",
                source,
            })?;
        }
        let mut state = self.shared.lock();
        if state.segments.is_empty() {
            state.bytes_on_disk = 0;
        }
        Ok(removed.len())
    }

    /// Tells `observer` how long each fsync of a group commit takes, from now on.
    pub(super) fn observe_fsyncs(&self, observer: super::FsyncObserver) {
        *self
            .shared
            .fsync_observer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(observer);
    }

    /// Everything before this position is durable: export reads up to it and no further.
    pub(super) fn durable_end(&self) -> DurableEnd {
        self.shared.lock().durable_end
    }

    /// Bytes of the segments on disk, and how many there are.
    pub(super) fn disk_usage(&self) -> (u64, usize) {
        let state = self.shared.lock();
        (state.bytes_on_disk, state.segments.len())
    }

    /// Commits what is submitted, then stops the committer. Later submits fail.
    pub(super) fn close(&self) {
        {
            let mut state = self.shared.lock();
            state.stop = true;
        }
        self.shared.work.notify_one();
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failed(&self, state: &State) -> StoreError {
        if state.closed {
            return StoreError::Closed {
                path: self.dir.clone(),
            };
        }
        StoreError::WalFailed {
            path: self.dir.clone(),
            reason: state
                .failure
                .clone()
                .unwrap_or_else(|| "a write failed".to_owned()),
        }
    }

    /// Tests make writes fail on purpose; elsewhere this is nothing.
    fn injected_failure(&self) -> io::Result<()> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let left = self.fail_writes.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_writes.store(left - 1, Ordering::SeqCst);
                return Err(io::Error::from_raw_os_error(28));
            }
        }
        Ok(())
    }

    /// Records a failed write or repair: every record reserved so far that is not on disk
    /// fails (its appender gets a retryable error and acknowledges nothing), and nothing
    /// more is accepted until a repair succeeds.
    fn record_failure(&self, state: &mut State, from_lsn: u64, reason: String) {
        let through = state.submitted_lsn;
        if from_lsn <= through {
            match state.failed.back_mut() {
                Some(last) if last.1 + 1 == from_lsn => last.1 = through,
                _ => state.failed.push_back((from_lsn, through)),
            }
            if state.failed.len() > MAX_FAILED_RANGES {
                state.failed.pop_front();
            }
        }
        state.slots.clear();
        state.first_slot_lsn = through + 1;
        state.processed_lsn = through;
        state.needs_repair = true;
        state.failure = Some(reason.clone());
        self.health.send_modify(|health| {
            health.failing_since.get_or_insert_with(SystemTime::now);
            health.reason = Some(reason);
        });
    }

    fn fsynced(&self, took: Duration) {
        let observer = self
            .fsync_observer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer(took);
        }
    }

    fn record_success(&self) {
        self.health.send_if_modified(|health| {
            let was_failing = health.failing_since.is_some();
            if was_failing {
                tracing::info!("the write-ahead log writes again; batches are accepted");
            }
            *health = WriteHealth::default();
            was_failing
        });
    }

    /// After a failed write or fsync, what reached the segment is unknown: the kernel may
    /// have dropped the dirty pages (and a later fsync of the same file can succeed without
    /// them). So the segment is cut back to its last durable byte and synced, and records
    /// go on in a fresh segment; until both succeed nothing is accepted. A crash in between
    /// leaves the cut segment last, whose torn end the next open cuts off.
    fn repair(&self, file: &mut File, number: &mut u64, durable_bytes: u64) -> io::Result<()> {
        self.injected_failure()?;
        file.set_len(durable_bytes)?;
        file.sync_all()?;
        let next = *number + 1;
        let new_file =
            create_segment(&self.dir, next, self.export_dir.as_deref()).inspect_err(|_| {
                let _ = fs::remove_file(segment_path(&self.dir, next));
            })?;
        *file = new_file;
        *number = next;
        let mut state = self.lock();
        state.segments.push_back(SegmentSpan {
            number: next,
            last_lsn: 0,
        });
        state.bytes_on_disk += SEGMENT_HEADER_LEN as u64;
        state.durable_end = DurableEnd {
            segment: next,
            bytes: SEGMENT_HEADER_LEN as u64,
        };
        Ok(())
    }

    /// The group-commit loop: take every record ready, write them, sync once, wake
    /// everyone; after a failure, repair the log every [`REPAIR_EVERY`] until it works.
    fn run_committer(&self, mut file: File, mut number: u64) {
        let mut batch = Vec::new();
        let mut segment_bytes = SEGMENT_HEADER_LEN as u64;
        loop {
            let mut state = self.lock();
            while !state.needs_repair
                && !state.rotate
                && !state.stop
                && !state.slots.front().is_some_and(Option::is_some)
            {
                state = self
                    .work
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.needs_repair {
                if state.stop {
                    state.closed = true;
                    drop(state);
                    self.durable.notify_all();
                    return;
                }
                drop(state);
                match self.repair(&mut file, &mut number, segment_bytes) {
                    Ok(()) => {
                        segment_bytes = SEGMENT_HEADER_LEN as u64;
                        self.lock().needs_repair = false;
                        self.record_success();
                    }
                    Err(error) => {
                        let reason = format!(
                            "{error} while repairing segment '{}'",
                            segment_path(&self.dir, number).display()
                        );
                        let mut state = self.lock();
                        state.failure = Some(reason.clone());
                        self.health
                            .send_modify(|health| health.reason = Some(reason));
                        if !state.stop {
                            let _ = self.work.wait_timeout(state, REPAIR_EVERY);
                        }
                    }
                }
                continue;
            }
            let first_lsn = state.first_slot_lsn;
            let mut n_records = 0u64;
            while state.slots.front().is_some_and(Option::is_some) {
                if let Some(Some(frame)) = state.slots.pop_front() {
                    batch.extend_from_slice(&frame);
                    n_records += 1;
                }
            }
            state.first_slot_lsn += n_records;
            if n_records == 0 && state.stop && !state.rotate {
                // Closing: whatever was reserved and never provided will not be.
                if !state.slots.is_empty() {
                    let reason = "the store closed before the record was provided".to_owned();
                    self.record_failure(&mut state, first_lsn, reason);
                }
                state.closed = true;
                drop(state);
                self.durable.notify_all();
                return;
            }
            let last_lsn = first_lsn + n_records.saturating_sub(1);
            let rotate = std::mem::take(&mut state.rotate) || segment_bytes >= SEGMENT_MAX_BYTES;
            drop(state);
            let result = (|| -> io::Result<()> {
                if rotate {
                    let next = number + 1;
                    file = create_segment(&self.dir, next, self.export_dir.as_deref())
                        .inspect_err(|_| {
                            let _ = fs::remove_file(segment_path(&self.dir, next));
                        })?;
                    number = next;
                    segment_bytes = SEGMENT_HEADER_LEN as u64;
                    let mut state = self.lock();
                    state.segments.push_back(SegmentSpan {
                        number,
                        last_lsn: 0,
                    });
                    state.bytes_on_disk += SEGMENT_HEADER_LEN as u64;
                    state.durable_end = DurableEnd {
                        segment: number,
                        bytes: segment_bytes,
                    };
                }
                if !batch.is_empty() {
                    file.write_all(&batch)?;
                    self.injected_failure()?;
                    let syncing = std::time::Instant::now();
                    file.sync_data()?;
                    self.fsynced(syncing.elapsed());
                }
                Ok(())
            })();
            let mut state = self.lock();
            match result {
                Ok(()) => {
                    if n_records > 0 {
                        segment_bytes += batch.len() as u64;
                        state.bytes_on_disk += batch.len() as u64;
                        state.processed_lsn = last_lsn;
                        if let Some(segment) = state.segments.back_mut() {
                            segment.last_lsn = last_lsn;
                        }
                        state.durable_end = DurableEnd {
                            segment: number,
                            bytes: segment_bytes,
                        };
                    }
                    drop(state);
                    self.record_success();
                }
                Err(error) => {
                    let reason = format!(
                        "{error} in segment '{}'",
                        segment_path(&self.dir, number).display()
                    );
                    tracing::error!(%reason, "the write-ahead log failed; batches are refused (agents keep them and resend) until a write succeeds again");
                    self.record_failure(&mut state, first_lsn, reason);
                    drop(state);
                }
            }
            batch.clear();
            self.durable.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
    }

    fn any_sample() -> impl Strategy<Value = Sample> {
        (any::<i64>(), any::<u64>()).prop_map(|(timestamp_ms, bits)| Sample {
            timestamp_ms,
            value: f64::from_bits(bits),
        })
    }

    fn any_batch() -> impl Strategy<Value = LoggedBatch> {
        let series = (
            any::<u64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
            proptest::collection::vec(any_sample(), 0..20),
        )
            .prop_map(|(series_id, new_labels, samples)| LoggedSeries {
                series_id,
                new_labels,
                samples,
            });
        (
            ".{0,20}",
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(series, 0..8),
        )
            .prop_map(|(host, spool_id, seq, series)| LoggedBatch {
                host,
                spool_id,
                seq,
                series,
            })
    }

    fn encode(batch: &LoggedBatch) -> Vec<u8> {
        let mut out = Vec::new();
        encode_batch(
            &batch.host,
            batch.spool_id,
            batch.seq,
            batch.series.iter().map(|series| {
                (
                    series.series_id,
                    series.new_labels.as_deref(),
                    series.samples.as_slice(),
                )
            }),
            &mut out,
        );
        out
    }

    /// Bitwise equality, so that NaN payloads count.
    fn same(a: &LoggedBatch, b: &LoggedBatch) -> bool {
        a.host == b.host
            && a.spool_id == b.spool_id
            && a.seq == b.seq
            && a.series.len() == b.series.len()
            && a.series.iter().zip(&b.series).all(|(x, y)| {
                x.series_id == y.series_id
                    && x.new_labels == y.new_labels
                    && x.samples.len() == y.samples.len()
                    && x.samples.iter().zip(&y.samples).all(|(s, t)| {
                        s.timestamp_ms == t.timestamp_ms && s.value.to_bits() == t.value.to_bits()
                    })
            })
    }

    fn frames_of(batches: &[LoggedBatch]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for batch in batches {
            put_frame(&mut bytes, &encode(batch));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    /// The batches [`read_frame`] gets back from `bytes`, and whether it stopped on an
    /// invalid frame.
    fn read_all(bytes: &[u8]) -> (Vec<LoggedBatch>, bool) {
        let mut offset = 0;
        let mut batches = Vec::new();
        loop {
            match read_frame(bytes, offset) {
                Frame::Record { payload, next } => {
                    batches.push(decode_batch(payload).expect("an intact frame decodes"));
                    offset = next;
                }
                Frame::End => return (batches, false),
                Frame::Invalid { .. } => return (batches, true),
            }
        }
    }

    proptest! {
        #[test]
        fn batch_records_round_trip_bit_for_bit(batch in any_batch()) {
            let decoded = decode_batch(&encode(&batch)).expect("decodes");
            prop_assert!(same(&decoded, &batch), "{decoded:?} != {batch:?}");
        }

        #[test]
        fn a_log_cut_anywhere_gives_back_exactly_the_whole_frames_before_the_cut(
            batches in proptest::collection::vec(any_batch(), 1..5),
            cut_fraction in 0.0f64..1.0,
        ) {
            let (bytes, ends) = frames_of(&batches);
            let cut = (bytes.len() as f64 * cut_fraction) as usize;
            let (read, invalid) = read_all(&bytes[..cut]);
            let n_whole = ends.iter().filter(|&&end| end <= cut).count();
            prop_assert_eq!(read.len(), n_whole);
            for (got, want) in read.iter().zip(&batches) {
                prop_assert!(same(got, want));
            }
            // A cut between frames reads cleanly to the end; inside one, it is reported.
            prop_assert_eq!(invalid, cut != 0 && !ends.contains(&cut));
        }

        #[test]
        fn a_flipped_bit_is_never_read_as_a_different_record(
            batches in proptest::collection::vec(any_batch(), 1..4),
            position_fraction in 0.0f64..1.0,
            bit in 0u8..8,
        ) {
            let (mut bytes, _) = frames_of(&batches);
            let position = ((bytes.len() as f64 * position_fraction) as usize).min(bytes.len() - 1);
            bytes[position] ^= 1 << bit;
            let (read, invalid) = read_all(&bytes);
            // Every record read back is one that was written, in order, and the damage stops
            // the reading.
            prop_assert!(invalid);
            prop_assert!(read.len() < batches.len());
            for (got, want) in read.iter().zip(&batches) {
                prop_assert!(same(got, want));
            }
        }

        #[test]
        fn garbage_after_the_last_frame_is_reported_not_read(
            batches in proptest::collection::vec(any_batch(), 1..3),
            garbage in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let (mut bytes, _) = frames_of(&batches);
            bytes.extend_from_slice(&garbage);
            let (read, invalid) = read_all(&bytes);
            prop_assert_eq!(read.len(), batches.len());
            prop_assert!(invalid);
        }
    }

    #[test]
    fn a_zero_filled_tail_is_invalid_rather_than_empty_records() {
        let (mut bytes, _) = frames_of(&[LoggedBatch {
            host: "a".to_owned(),
            spool_id: 1,
            seq: 1,
            series: vec![],
        }]);
        bytes.extend_from_slice(&[0; 32]);
        let (read, invalid) = read_all(&bytes);
        assert_eq!(read.len(), 1);
        assert!(invalid);
    }

    #[test]
    fn a_torn_final_segment_is_cut_back_and_an_earlier_one_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let record = |seq| {
            encode(&LoggedBatch {
                host: "web-01".to_owned(),
                spool_id: 1,
                seq,
                series: vec![],
            })
        };
        let mut file = create_segment(dir.path(), 1, None).unwrap();
        let mut bytes = Vec::new();
        put_frame(&mut bytes, &record(1));
        put_frame(&mut bytes, &record(2));
        let whole = bytes.len();
        bytes.truncate(whole - 3);
        file.write_all(&bytes).unwrap();
        drop(file);
        let path = segment_path(dir.path(), 1);

        let error = read_segment(&path, false)
            .err()
            .expect("damage in a closed segment");
        assert!(matches!(error, StoreError::WalDamaged { .. }), "{error:?}");

        let contents = read_segment(&path, true).unwrap();
        assert_eq!(contents.records.len(), 1);
        let first = decode_batch(&contents.bytes[contents.records[0].clone()]).unwrap();
        assert_eq!(first.seq, 1);
        // The file now ends after the intact frame, so the next open reads it cleanly.
        let contents = read_segment(&path, false).unwrap();
        assert_eq!(contents.records.len(), 1);
    }

    #[test]
    fn group_commit_makes_every_submitted_record_durable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::start(dir.path(), Vec::new(), 0).unwrap());
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let wal = Arc::clone(&wal);
                scope.spawn(move || {
                    for seq in 1..=50 {
                        let payload = encode(&LoggedBatch {
                            host: format!("h{thread}"),
                            spool_id: 1,
                            seq,
                            series: vec![],
                        });
                        let lsn = wal.submit(&payload).unwrap();
                        wal.wait_durable(lsn).unwrap();
                    }
                });
            }
        });
        wal.close();
        let segments = list_segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 1);
        let contents = read_segment(&segments[0].1, false).unwrap();
        assert_eq!(contents.records.len(), 400);
        let mut last_seq = std::collections::HashMap::new();
        for range in &contents.records {
            let batch = decode_batch(&contents.bytes[range.clone()]).unwrap();
            let previous = last_seq.insert(batch.host.clone(), batch.seq).unwrap_or(0);
            assert_eq!(
                batch.seq,
                previous + 1,
                "each writer's records are in order"
            );
        }
    }

    #[test]
    fn rotation_and_trimming_delete_only_closed_segments_behind_the_needed_record() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), Vec::new(), 0).unwrap();
        let payload = encode(&LoggedBatch {
            host: "a".to_owned(),
            spool_id: 1,
            seq: 1,
            series: vec![],
        });
        let first = wal.submit(&payload).unwrap();
        wal.wait_durable(first).unwrap();
        wal.request_rotation();
        let second = wal.submit(&payload).unwrap();
        wal.wait_durable(second).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap().len(), 2);
        // The first record is still needed: nothing goes.
        assert_eq!(wal.trim_before(first).unwrap(), 0);
        // Only the second is: the first segment goes, the current one never does.
        assert_eq!(wal.trim_before(second).unwrap(), 1);
        assert_eq!(wal.trim_before(u64::MAX).unwrap(), 0);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    }
}
