//! The write-ahead log as remote-write export reads it: the segments the log links into
//! `<data_dir>/remote_write/log/` (see [`super::wal`]), read from a [`LogPosition`] up to
//! the log's durable end, and deleted here once every exporter's position is past them.
//! The log's own trimming and the clean stop delete only the log's names, so a receiver
//! that is down for hours still gets everything that was acknowledged while it was away.
//!
//! Only batches that came through the log (live ingest) are here; `import` writes chunks
//! straight to sled and is never exported. This file knows segments, frames and the series
//! index; it knows nothing of HTTP, shards or receivers (`crate::remote_write` does).

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_proto::model::{Labels, Sample};

use super::error::StoreError;
use super::wal::{self, DurableEnd, FIRST_FRAME_OFFSET, FRAME_HEADER_BYTES, MAX_RECORD_LEN};
use super::{keys, Store};

/// The folder, under the data directory, whose existence turns export on for the log.
pub const EXPORT_LOG_DIR: &str = "remote_write/log";

/// Turns export on for the store in `data_dir` before it opens: from then on every new log
/// segment is kept for export. Call it before [`Store::open`].
pub fn enable(data_dir: &Path) -> Result<(), StoreError> {
    let dir = data_dir.join(EXPORT_LOG_DIR);
    fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        path: dir,
        action: "creating the remote-write folder",
        source,
    })
}

/// Turns export off for the store in `data_dir` and deletes what it kept (no exporter is
/// configured any more). Call it before [`Store::open`].
pub fn disable(data_dir: &Path) -> Result<(), StoreError> {
    let dir = data_dir.join(EXPORT_LOG_DIR);
    match fs::remove_dir_all(&dir) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
            path: dir,
            action: "deleting the remote-write folder",
            source,
        }),
        _ => Ok(()),
    }
}

/// A place in the exported log: a segment number and a byte offset in it, always at the
/// start of a frame (or the end of the segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u64,
    pub offset: u64,
}

/// One series' samples from one logged batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSamples {
    pub series_id: u64,
    pub samples: Vec<Sample>,
}

/// What [`ExportLog::read`] found.
#[derive(Debug, Default)]
pub struct LogRead {
    /// The series the caller kept, in log order.
    pub series: Vec<LoggedSamples>,
    /// Where the next read starts: after the last record read.
    pub next: Option<LogPosition>,
    /// Log bytes consumed (frames, and the ends of finished segments).
    pub bytes: u64,
    /// Samples in the records read, kept or not.
    pub samples_seen: u64,
    /// Whether the read stopped at the durable end (nothing more to read for now).
    pub at_end: bool,
}

/// The exported log of one open store.
#[derive(Clone)]
pub struct ExportLog {
    store: Store,
    dir: PathBuf,
}

impl std::fmt::Debug for ExportLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The log as export reads it; `None` when export was not enabled before the store
    /// opened ([`enable`]).
    pub fn export_log(&self) -> Option<ExportLog> {
        let dir = self.inner.data_dir.join(EXPORT_LOG_DIR);
        dir.is_dir().then(|| ExportLog {
            store: self.clone(),
            dir,
        })
    }
}

impl ExportLog {
    fn durable_end(&self) -> DurableEnd {
        self.store.inner.wal.durable_end()
    }

    fn io_error(&self, path: &Path, action: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }

    /// The exported segments, oldest first.
    fn segments(&self) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        wal::list_segments(&self.dir).map_err(|source| self.io_error(&self.dir, "listing", source))
    }

    /// Where an exporter with no saved position starts: the oldest data kept.
    pub fn start(&self) -> Result<LogPosition, StoreError> {
        let segment = match self.segments()?.first() {
            Some((number, _)) => *number,
            None => self.durable_end().segment,
        };
        Ok(LogPosition {
            segment,
            offset: FIRST_FRAME_OFFSET,
        })
    }

    /// The position at the durable end: everything logged so far is behind it.
    pub fn end(&self) -> LogPosition {
        let end = self.durable_end();
        LogPosition {
            segment: end.segment,
            offset: end.bytes,
        }
    }

    /// Bytes of log kept from `from` to the durable end: what an exporter at `from` has not
    /// sent yet.
    pub fn bytes_after(&self, from: LogPosition) -> Result<u64, StoreError> {
        let end = self.durable_end();
        let mut total = 0;
        for (number, path) in self.segments()? {
            if number < from.segment || number > end.segment {
                continue;
            }
            let length = if number == end.segment {
                end.bytes
            } else {
                fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            };
            let start = if number == from.segment {
                from.offset
            } else {
                FIRST_FRAME_OFFSET
            };
            total += length.saturating_sub(start);
        }
        Ok(total)
    }

    /// Reads the records from `from` on, in order, handing each series to `keep` and
    /// returning those it keeps, until `max_samples` kept samples or `max_bytes` of log are
    /// reached, or the durable end. A position before the oldest segment kept moves to it.
    pub fn read(
        &self,
        from: LogPosition,
        max_samples: usize,
        max_bytes: u64,
        mut keep: impl FnMut(u64) -> bool,
    ) -> Result<LogRead, StoreError> {
        let end = self.durable_end();
        let segments = self.segments()?;
        let mut position = from;
        if let Some((oldest, _)) = segments.first() {
            if position.segment < *oldest {
                position = LogPosition {
                    segment: *oldest,
                    offset: FIRST_FRAME_OFFSET,
                };
            }
        }
        let mut read = LogRead::default();
        let mut n_kept = 0usize;
        'segments: loop {
            let segment_end = if position.segment == end.segment {
                end.bytes
            } else if position.segment > end.segment {
                read.at_end = true;
                break;
            } else {
                match segments
                    .iter()
                    .find(|(number, _)| *number == position.segment)
                {
                    Some((_, path)) => fs::metadata(path)
                        .map(|m| m.len())
                        .map_err(|source| self.io_error(path, "reading the size of", source))?,
                    None => 0,
                }
            };
            if position.offset < segment_end {
                let path = wal::segment_file(&self.dir, position.segment);
                let file =
                    File::open(&path).map_err(|source| self.io_error(&path, "opening", source))?;
                let mut reader = BufReader::with_capacity(1 << 20, file);
                reader
                    .seek(SeekFrom::Start(position.offset))
                    .map_err(|source| self.io_error(&path, "seeking in", source))?;
                let mut payload = Vec::new();
                while position.offset + FRAME_HEADER_BYTES <= segment_end {
                    if n_kept >= max_samples || read.bytes >= max_bytes {
                        break 'segments;
                    }
                    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
                    reader
                        .read_exact(&mut header)
                        .map_err(|source| self.io_error(&path, "reading", source))?;
                    let length_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
                    let length = u32::from_le_bytes(length_bytes) as usize;
                    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
                    let frame_end = position.offset + FRAME_HEADER_BYTES + length as u64;
                    if length == 0 || length > MAX_RECORD_LEN || frame_end > segment_end {
                        return Err(self.damaged(&path, position.offset));
                    }
                    payload.resize(length, 0);
                    reader
                        .read_exact(&mut payload)
                        .map_err(|source| self.io_error(&path, "reading", source))?;
                    if wal::crc32c(&[&length_bytes, &payload]) != crc {
                        return Err(self.damaged(&path, position.offset));
                    }
                    let batch = wal::decode_batch(&payload)
                        .ok_or_else(|| self.damaged(&path, position.offset))?;
                    for series in batch.series {
                        read.samples_seen += series.samples.len() as u64;
                        if !series.samples.is_empty() && keep(series.series_id) {
                            n_kept += series.samples.len();
                            read.series.push(LoggedSamples {
                                series_id: series.series_id,
                                samples: series.samples,
                            });
                        }
                    }
                    read.bytes += frame_end - position.offset;
                    position.offset = frame_end;
                    read.next = Some(position);
                }
            }
            if position.segment == end.segment {
                read.at_end = true;
                break;
            }
            // A closed segment read to its end: on to the next one kept.
            read.bytes += segment_end.saturating_sub(position.offset);
            match segments
                .iter()
                .find(|(number, _)| *number > position.segment)
            {
                Some((number, _)) => {
                    position = LogPosition {
                        segment: *number,
                        offset: FIRST_FRAME_OFFSET,
                    };
                }
                None => {
                    position = LogPosition {
                        segment: end.segment,
                        offset: FIRST_FRAME_OFFSET,
                    };
                }
            }
            read.next = Some(position);
        }
        Ok(read)
    }

    fn damaged(&self, path: &Path, offset: u64) -> StoreError {
        StoreError::WalDamaged {
            path: path.to_owned(),
            offset,
            reason: "an exported frame that does not read back intact",
        }
    }

    /// The labels of a series; `None` when the series is gone (forgotten or past
    /// retention).
    pub fn labels(&self, series_id: u64) -> Result<Option<Labels>, StoreError> {
        let Some(key) = self.store.inner.index.labels_key(series_id)? else {
            return Ok(None);
        };
        keys::decode_labels(&key)
            .map(Some)
            .ok_or_else(|| StoreError::malformed(&self.store.inner.data_dir, "series labels"))
    }

    /// Deletes the exported segments wholly before `oldest_needed` (every exporter is past
    /// them). The segment the log is writing is never deleted here.
    pub fn release_before(&self, oldest_needed: LogPosition) -> Result<usize, StoreError> {
        let end = self.durable_end();
        let mut removed = 0;
        for (number, path) in self.segments()? {
            if number >= oldest_needed.segment || number >= end.segment {
                break;
            }
            fs::remove_file(&path).map_err(|source| self.io_error(&path, "deleting", source))?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SeriesSamples, StoreConfig, WriterId, METRIC_NAME_LABEL};

    fn append(store: &Store, seq: u64) {
        let mut labels = Labels::from_pairs([("host", "web-01")]);
        labels.insert(METRIC_NAME_LABEL, "load");
        store
            .append(
                &WriterId {
                    host: "web-01".to_owned(),
                    spool_id: 1,
                },
                seq,
                &[SeriesSamples {
                    labels,
                    samples: vec![Sample {
                        timestamp_ms: seq as i64 * 1000,
                        value: seq as f64,
                    }],
                }],
            )
            .expect("append");
    }

    fn read_all(log: &ExportLog, from: LogPosition) -> (Vec<i64>, LogPosition) {
        let read = log.read(from, usize::MAX, u64::MAX, |_| true).unwrap();
        assert!(read.at_end);
        let timestamps = read
            .series
            .iter()
            .flat_map(|series| series.samples.iter().map(|s| s.timestamp_ms))
            .collect();
        (timestamps, read.next.unwrap_or(from))
    }

    #[test]
    fn exported_segments_outlive_a_clean_stop_and_go_once_every_exporter_is_past_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::new(dir.path());
        enable(dir.path()).unwrap();
        let store = Store::open(&config).unwrap();
        let log = store.export_log().expect("export is on");
        let start = log.start().unwrap();
        for seq in 1..=3 {
            append(&store, seq);
        }
        let (first_read, after_first) = read_all(&log, start);
        assert_eq!(first_read, vec![1000, 2000, 3000]);
        store.close().unwrap();
        drop((log, store));
        // The log deleted its own segments at the clean stop; the export kept its links.
        assert_eq!(
            wal::list_segments(&dir.path().join(wal::WAL_DIR))
                .unwrap()
                .len(),
            0
        );
        let kept = wal::list_segments(&dir.path().join(EXPORT_LOG_DIR)).unwrap();
        assert!(!kept.is_empty());

        let store = Store::open(&config).unwrap();
        let log = store.export_log().unwrap();
        for seq in 4..=5 {
            append(&store, seq);
        }
        // The new segment's number follows the kept one, so positions stay meaningful.
        assert!(log.end().segment > kept.last().unwrap().0);
        let (everything, end) = read_all(&log, start);
        assert_eq!(everything, vec![1000, 2000, 3000, 4000, 5000]);
        let (rest, _) = read_all(&log, after_first);
        assert_eq!(
            rest,
            vec![4000, 5000],
            "a saved position resumes after what it read"
        );
        assert_eq!(log.bytes_after(end).unwrap(), 0);
        assert!(log.bytes_after(start).unwrap() > 0);

        assert_eq!(log.release_before(start).unwrap(), 0, "still needed");
        assert_eq!(log.release_before(end).unwrap(), kept.len());
        let (after_release, _) = read_all(&log, start);
        assert_eq!(
            after_release,
            vec![4000, 5000],
            "an old position moves to the oldest kept"
        );
    }

    #[test]
    fn without_export_the_log_links_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
        append(&store, 1);
        assert!(store.export_log().is_none());
        assert!(!dir.path().join(EXPORT_LOG_DIR).exists());
    }
}
