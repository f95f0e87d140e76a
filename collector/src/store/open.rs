//! Opening a store: sled and its trees, the state appends need (writers' last seqs, the next
//! series id, the store's clock), a one-time migration of the first layout's per-sample
//! tree, then replay of the write-ahead log into the head, and the background thread.
//!
//! A store that will not open because it is damaged — sled reports corruption or panics,
//! the log is damaged before its final record, a record does not decode — is handled as
//! [`OnDamage`] says: moved aside (the default, so that an unattended collector resumes
//! monitoring instead of failing on every restart) or refused. Problems of the environment
//! (permissions, a full disk, another process holding the store) are never treated as
//! damage: moving the store aside would not fix them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vigil_proto::model::Sample;

use super::chunk_files::{ChunkFiles, CHUNKS_DIR, ROLLUPS_DIR};
use super::error::StoreError;
use super::files::{self, SLED_DATA_FILE};
use super::head::{self, window_start, Head};
use super::import::Imports;
use super::index::Index;
use super::sealed::{Sealed, WindowWrite};
use super::wal::{self, SegmentSpan, Wal, WAL_DIR};
use super::{
    keys, maintenance, Ingest, Inner, OnDamage, Owner, Store, StoreConfig, WriterId, WriterSeq,
    ORIGIN_LIVE,
};

/// Whether opening may create a new store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// Version of the layout this code writes, kept in `meta` under [`META_FORMAT`]. Version 1
/// (no `meta` tree) kept one key per sample; version 2 kept every chunk's location in sled;
/// version 3 adds day indexes beside the chunk files ([`super::day_index`]), which older
/// code would not read, and still reads version 2's sled locations as they are.
const FORMAT_VERSION: u64 = 3;
/// The layout with every chunk location in sled, opened as it is.
const FORMAT_SLED_LOCATIONS: u64 = 2;
pub(super) const META_FORMAT: &[u8] = b"format";
pub(super) const META_NEWEST_MS: &[u8] = b"newest_ms";

pub(super) fn open(config: &StoreConfig, mode: OpenMode) -> Result<Store, StoreError> {
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
    match open_inner(config, None) {
        Ok(inner) => Ok(start(inner)),
        Err(error) if error.is_damage() => match (mode, config.on_damage) {
            (OpenMode::CreateIfMissing, OnDamage::Quarantine) => {
                let moved = files::quarantine(&data_dir).map_err(|source| StoreError::Io {
                    path: data_dir.clone(),
                    action: "moving the damaged store aside in",
                    source,
                })?;
                tracing::error!(
                    data_dir = %data_dir.display(),
                    moved_to = %moved.display(),
                    %error,
                    "the store was damaged and would not open; it was moved aside and an empty store started in its place (set [store] on_damage = \"refuse\" to stop instead)"
                );
                Ok(start(open_inner(config, Some(moved))?))
            }
            (OpenMode::CreateIfMissing, OnDamage::Refuse) => Err(StoreError::Damaged {
                path: data_dir,
                reason: error.to_string(),
                fix: "restore it from a backup, or set [store] on_damage = \"quarantine\" to move it aside and start empty",
            }),
            (OpenMode::MustExist, _) => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// Starts the background thread once the store is complete.
fn start(inner: Inner) -> Store {
    let inner = Arc::new(inner);
    let maintenance = maintenance::Handle::spawn(Arc::clone(&inner));
    let owner = Arc::new(Owner {
        maintenance,
        inner: Arc::clone(&inner),
    });
    Store { inner, owner }
}

/// The chunk or rollup files under `<data_dir>/<folder>`, with their day indexes listed.
fn open_files(data_dir: &Path, folder: &str) -> Result<ChunkFiles, StoreError> {
    ChunkFiles::new(data_dir.join(folder)).map_err(|source| StoreError::Io {
        path: data_dir.join(folder),
        action: "listing the day indexes in",
        source,
    })
}

/// Size of sled's log segments in a new store. sled's file grows by whole segments and keeps
/// a segment until all of it is dead, so its default (512 KiB) costs a small index up to
/// several times its size; larger pages go to `blobs/` files, which cost nothing extra.
/// A store keeps the size it was created with (sled refuses another).
const SLED_SEGMENT_SIZE: usize = 64 * 1024;

/// Opens sled, waiting a little for its lock: sled's background writes may hold it for a
/// moment after this process dropped its previous handle on the same directory.
fn open_sled(config: &StoreConfig) -> Result<sled::Db, StoreError> {
    const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    loop {
        match open_sled_once(config) {
            Err(StoreError::InUse { .. }) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// sled panics on some kinds of damage instead of returning an error; both are damage here.
fn open_sled_once(config: &StoreConfig) -> Result<sled::Db, StoreError> {
    let data_dir = &config.data_dir;
    let segment_size = files::sled_segment_size(data_dir).unwrap_or(SLED_SEGMENT_SIZE);
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        sled::Config::new()
            .path(data_dir)
            .cache_capacity(config.cache_capacity_bytes)
            .segment_size(segment_size)
            .open()
    }));
    match opened {
        Ok(result) => result.map_err(|error| StoreError::from_open(data_dir, error)),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "sled panicked".to_owned());
            Err(StoreError::malformed(
                data_dir,
                format!("sled database (opening it failed: {reason})"),
            ))
        }
    }
}

fn open_inner(config: &StoreConfig, quarantined_to: Option<PathBuf>) -> Result<Inner, StoreError> {
    let data_dir = config.data_dir.clone();
    let db = open_sled(config)?;
    let open_tree = |name: &str| {
        db.open_tree(name).map_err(|error| {
            StoreError::storage(&data_dir, format!("opening tree '{name}'"), error)
        })
    };
    let index = Index {
        data_dir: data_dir.clone(),
        series: open_tree("series")?,
        series_by_labels: open_tree("series_by_labels")?,
        postings: open_tree("postings")?,
    };
    let sealed = Sealed {
        data_dir: data_dir.clone(),
        chunks: open_tree("chunks")?,
        rollups: open_tree("rollup_5m")?,
        pending: open_tree("rollup_pending")?,
        chunk_files: Arc::new(open_files(&data_dir, CHUNKS_DIR)?),
        rollup_files: Arc::new(open_files(&data_dir, ROLLUPS_DIR)?),
    };
    let meta = open_tree("meta")?;
    let writers_tree = open_tree("writers")?;
    let hosts = open_tree("hosts")?;
    let imports = Imports::load(&data_dir, open_tree("imports")?)?;

    let meta_u64 = |name: &[u8]| -> Result<Option<u64>, StoreError> {
        meta.get(name)
            .map_err(|error| StoreError::storage(&data_dir, "reading the store's metadata", error))?
            .map(|bytes| {
                keys::decode_u64(&bytes).ok_or_else(|| {
                    StoreError::malformed(
                        &data_dir,
                        format!("metadata '{}'", String::from_utf8_lossy(name)),
                    )
                })
            })
            .transpose()
    };
    let store_format = |meta: &sled::Tree| {
        meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())
            .map_err(|error| StoreError::storage(&data_dir, "writing the store's metadata", error))
    };
    match meta_u64(META_FORMAT)? {
        Some(FORMAT_VERSION) => {}
        Some(FORMAT_SLED_LOCATIONS) => {
            store_format(&meta)?;
        }
        Some(version) => {
            return Err(StoreError::NewerFormat {
                path: data_dir,
                version,
                supported: FORMAT_VERSION,
            })
        }
        None => {
            migrate_first_layout(&db, &data_dir, &sealed)?;
            store_format(&meta)?;
        }
    }

    let mut writers = HashMap::new();
    for entry in writers_tree.iter() {
        let (key, value) = entry
            .map_err(|error| StoreError::storage(&data_dir, "reading writers' last seqs", error))?;
        let (writer, seq) = keys::decode_writer_key(&key)
            .zip(keys::decode_u64(&value))
            .ok_or_else(|| StoreError::malformed(&data_dir, "last seq of a writer"))?;
        writers.insert(
            writer,
            WriterSeq {
                last_seq: seq,
                persisted_seq: seq,
            },
        );
    }
    let mut ingest = Ingest {
        head: Head::default(),
        writers,
        next_series_id: index.next_series_id()?,
        newest_ms: meta_u64(META_NEWEST_MS)?.map_or(i64::MIN, |bits| bits as i64),
    };

    let wal_dir = data_dir.join(WAL_DIR);
    std::fs::create_dir_all(&wal_dir).map_err(|source| StoreError::Wal {
        path: wal_dir.clone(),
        action: "creating the folder of",
        source,
    })?;
    let (spans, last_lsn) = replay(&wal_dir, &index, &mut ingest)?;
    let wal = Wal::start(&wal_dir, spans, last_lsn)?;

    Ok(Inner {
        config: config.clone(),
        data_dir,
        db,
        index,
        sealed,
        writers_tree,
        hosts,
        meta,
        imports,
        ingest: Mutex::new(ingest),
        wal,
        checkpoint_lock: Mutex::new(()),
        quarantined_to,
        closed: std::sync::atomic::AtomicBool::new(false),
    })
}

/// Replays every segment into the head, in order; returns the segments read and the LSN of
/// the last record. Records are applied whatever the writers' persisted seqs say: the log
/// holds exactly what is not yet sealed, and samples overlay by timestamp.
fn replay(
    wal_dir: &Path,
    index: &Index,
    ingest: &mut Ingest,
) -> Result<(Vec<SegmentSpan>, u64), StoreError> {
    let segments = wal::list_segments(wal_dir).map_err(|source| StoreError::Wal {
        path: wal_dir.to_owned(),
        action: "listing",
        source,
    })?;
    let mut spans = Vec::with_capacity(segments.len());
    let mut lsn = 0u64;
    let mut n_records = 0usize;
    let n_segments = segments.len();
    for (position, (number, path)) in segments.iter().enumerate() {
        let contents = wal::read_segment(path, position + 1 == n_segments)?;
        for range in &contents.records {
            lsn += 1;
            n_records += 1;
            let batch = wal::decode_batch(&contents.bytes[range.clone()]).ok_or_else(|| {
                StoreError::WalDamaged {
                    path: path.clone(),
                    offset: range.start as u64,
                    reason: "an intact record that does not decode",
                }
            })?;
            for series in &batch.series {
                let labels_key = match &series.new_labels {
                    Some(labels_key) => {
                        index.ensure(series.series_id, labels_key)?;
                        labels_key.clone()
                    }
                    None if ingest.head.holds(series.series_id) => Vec::new(),
                    None => index.labels_key(series.series_id)?.ok_or_else(|| {
                        StoreError::malformed(
                            &index.data_dir,
                            format!(
                                "write-ahead log: segment '{}' names series {}, which the index does not hold",
                                path.display(),
                                series.series_id
                            ),
                        )
                    })?,
                };
                if !ingest.head.holds(series.series_id) {
                    ingest.head.add_series(series.series_id, &labels_key);
                }
                match head::prepare(&series.samples) {
                    Some(prepared) => ingest.head.insert_prepared(series.series_id, prepared, lsn),
                    None => ingest.head.insert(series.series_id, &series.samples, lsn),
                }
                ingest.next_series_id = ingest.next_series_id.max(series.series_id + 1);
                if let Some(newest) = series.samples.iter().map(|s| s.timestamp_ms).max() {
                    ingest.newest_ms = ingest.newest_ms.max(newest);
                }
            }
            let writer = WriterId {
                host: batch.host,
                spool_id: batch.spool_id,
            };
            let entry = ingest.writers.entry(writer).or_default();
            entry.last_seq = entry.last_seq.max(batch.seq);
        }
        spans.push(SegmentSpan {
            number: *number,
            last_lsn: if contents.records.is_empty() { 0 } else { lsn },
        });
    }
    if n_records > 0 {
        tracing::info!(
            n_records,
            n_segments,
            head_series = ingest.head.n_series(),
            "replayed the write-ahead log"
        );
    }
    Ok((spans, lsn))
}

/// Moves the first layout's samples (one key per sample in `samples`) into chunks, then
/// drops that tree. Runs once, when a store without a format version is opened.
fn migrate_first_layout(db: &sled::Db, data_dir: &Path, sealed: &Sealed) -> Result<(), StoreError> {
    const OLD_TREE: &str = "samples";
    let exists = db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == OLD_TREE.as_bytes());
    if !exists {
        return Ok(());
    }
    let old = db
        .open_tree(OLD_TREE)
        .map_err(|error| StoreError::storage(data_dir, "opening the old samples tree", error))?;
    let mut windows: Vec<WindowWrite> = Vec::new();
    let mut n_samples = 0usize;
    for entry in old.iter() {
        let (key, value) = entry.map_err(|error| {
            StoreError::storage(data_dir, "reading the old samples tree", error)
        })?;
        let (series_id, timestamp_ms, value) = keys::decode_sample_key(&key)
            .zip(keys::decode_value(&value))
            .map(|((series_id, timestamp_ms), value)| (series_id, timestamp_ms, value))
            .ok_or_else(|| StoreError::malformed(data_dir, "sample in the old samples tree"))?;
        let start_ms = window_start(timestamp_ms);
        let sample = Sample {
            timestamp_ms,
            value,
        };
        match windows.last_mut() {
            Some(window) if window.series_id == series_id && window.start_ms == start_ms => {
                window.samples.push(sample)
            }
            _ => windows.push(WindowWrite {
                series_id,
                start_ms,
                samples: vec![sample],
            }),
        }
        n_samples += 1;
        if windows.len() >= 1024 {
            sealed.write_windows(ORIGIN_LIVE, std::mem::take(&mut windows), true)?;
        }
    }
    sealed.write_windows(ORIGIN_LIVE, windows, true)?;
    db.flush()
        .map_err(|error| StoreError::storage(data_dir, "flushing migrated chunks", error))?;
    files::fsync_sled_files(data_dir).map_err(|source| StoreError::Io {
        path: data_dir.to_owned(),
        action: "fsyncing the store files in",
        source,
    })?;
    db.drop_tree(OLD_TREE)
        .map_err(|error| StoreError::storage(data_dir, "dropping the old samples tree", error))?;
    if n_samples > 0 {
        tracing::info!(
            n_samples,
            "moved samples of the first store layout into chunks"
        );
    }
    Ok(())
}
