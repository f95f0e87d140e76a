//! The bytes of sealed chunks and rollup blocks, in append-only files: one file per origin
//! and UTC day, `<data_dir>/chunks/live/2025-01-01.chunks` (and `import-<id>/…` for an
//! import; `<data_dir>/rollups/…` for rollup blocks, which are kept longer). sled's `chunks`
//! and `rollup_5m` trees keep where each one is ([`Location`]); only chunks of a few bytes
//! are kept in sled itself.
//!
//! Why not in sled: sled rewrites a B-tree leaf every few inserts and keeps the old
//! versions until a segment is half dead, so append-only data costs it 2 to 2.5 times its
//! size on disk (measured in docs/BENCHMARKS.md). A chunk is written once and read many
//! times, which files do at 1×, and retention deletes whole days of them, which gives the
//! space back to the file system at once.
//!
//! Beside a day's file, `2025-01-01.index` ([`super::day_index`]) may say where every chunk
//! of that file is, in place of sled (imports write those).
//!
//! Frame: length (u32 LE) ‖ CRC-32C of the chunk (u32 LE) ‖ chunk. Files start with
//! `VIGILCHK` and a version. A crash can leave a torn frame at a file's end; nothing points
//! at it, and appends go on after it. A chunk rewritten by a late sample leaves its old
//! frame behind as garbage until the day ages out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::day_index::{self, DayIndex, IndexEntry, INDEX_SUFFIX};
use super::wal::{crc32c, sync_dir};

/// Folder of the chunk files under the data directory.
pub(super) const CHUNKS_DIR: &str = "chunks";
/// Folder of the rollup files under the data directory.
pub(super) const ROLLUPS_DIR: &str = "rollups";
const FILE_MAGIC: &[u8; 8] = b"VIGILCHK";
const FILE_VERSION: u32 = 1;
const FILE_HEADER_LEN: u64 = 12;
const FRAME_HEADER_LEN: usize = 8;
pub(super) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Where a chunk's bytes are within its day's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// Offset of the frame.
    pub offset: u64,
    /// Length of the chunk (without the frame header).
    pub len: u32,
}

/// Start of the UTC day holding `timestamp_ms`.
pub(super) fn day_of(timestamp_ms: i64) -> i64 {
    timestamp_ms
        .checked_sub(timestamp_ms.rem_euclid(DAY_MS))
        .unwrap_or(i64::MIN)
}

/// The inverse of [`origin_dir_name`].
fn origin_of_dir_name(name: &str) -> Option<u32> {
    if name == "live" {
        return Some(super::ORIGIN_LIVE);
    }
    name.strip_prefix("import-")?.parse().ok()
}

fn origin_dir_name(origin: u32) -> String {
    if origin == super::ORIGIN_LIVE {
        "live".to_owned()
    } else {
        format!("import-{origin}")
    }
}

/// `2025-01-01.chunks`, or `day-<n>.chunks` for days a calendar date cannot name.
fn file_name(day_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day_ms.div_euclid(1000))
        .ok()
        .map(|time| time.date())
        .filter(|date| (0..=9999).contains(&date.year()));
    match date {
        Some(date) => format!(
            "{:04}-{:02}-{:02}.chunks",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        None => format!("day{}.chunks", day_ms.div_euclid(DAY_MS)),
    }
}

/// The inverse of [`file_name`] (for a chunk file or its day index); `None` for a name it
/// does not make.
fn day_of_file_name(name: &str) -> Option<i64> {
    let stem = name
        .strip_suffix(".chunks")
        .or_else(|| name.strip_suffix(INDEX_SUFFIX))?;
    if let Some(index) = stem.strip_prefix("day") {
        return index.parse::<i64>().ok()?.checked_mul(DAY_MS);
    }
    let mut parts = stem.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

struct OpenFile {
    file: File,
    /// Where the next frame goes.
    end: u64,
}

/// A chunk file: its origin and day.
type FileKey = (u32, i64);

/// The chunk files of a store.
pub(super) struct ChunkFiles {
    dir: PathBuf,
    open: Mutex<HashMap<FileKey, Arc<Mutex<OpenFile>>>>,
    /// Files appended to since they were last synced.
    unsynced: Mutex<HashSet<FileKey>>,
    /// (day, origin) of every day index on disk.
    indexed: RwLock<BTreeSet<(i64, u32)>>,
    /// Day indexes read so far.
    loaded: Mutex<HashMap<FileKey, Arc<DayIndex>>>,
}

impl ChunkFiles {
    /// The files under `dir` (`<data_dir>/chunks` or `<data_dir>/rollups`); lists the day
    /// indexes there.
    pub fn new(dir: PathBuf) -> io::Result<Self> {
        let mut indexed = BTreeSet::new();
        if dir.is_dir() {
            for origin_dir in fs::read_dir(&dir)? {
                let origin_dir = origin_dir?;
                let Some(origin) = origin_dir.file_name().to_str().and_then(origin_of_dir_name)
                else {
                    continue;
                };
                if !origin_dir.path().is_dir() {
                    continue;
                }
                for entry in fs::read_dir(origin_dir.path())? {
                    let name = entry?.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if name.ends_with(INDEX_SUFFIX) {
                        if let Some(day_ms) = day_of_file_name(name) {
                            indexed.insert((day_ms, origin));
                        }
                    }
                }
            }
        }
        Ok(Self {
            dir,
            open: Mutex::new(HashMap::new()),
            unsynced: Mutex::new(HashSet::new()),
            indexed: RwLock::new(indexed),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    fn lock_loaded(&self) -> MutexGuard<'_, HashMap<FileKey, Arc<DayIndex>>> {
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Path of the day index of (origin, day).
    pub fn index_path(&self, origin: u32, day_ms: i64) -> PathBuf {
        self.path(origin, day_ms).with_extension(&INDEX_SUFFIX[1..])
    }

    /// Writes the day index of (origin, day), once; the chunks it names must be synced.
    pub fn write_index(&self, origin: u32, day_ms: i64, entries: &[IndexEntry]) -> io::Result<()> {
        day_index::write(&self.index_path(origin, day_ms), day_ms, entries)?;
        self.indexed
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((day_ms, origin));
        self.lock_loaded().remove(&(origin, day_ms));
        Ok(())
    }

    /// (day, origin) of the day indexes of days from `first_day_ms` to `last_ms`.
    pub fn indexed_days(&self, first_day_ms: i64, last_ms: i64) -> Vec<(i64, u32)> {
        if first_day_ms > last_ms {
            return Vec::new();
        }
        self.indexed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .range((first_day_ms, 0)..=(last_ms, u32::MAX))
            .copied()
            .collect()
    }

    /// The day index of (origin, day), read on first use.
    pub fn index(&self, origin: u32, day_ms: i64) -> io::Result<Arc<DayIndex>> {
        if let Some(index) = self.lock_loaded().get(&(origin, day_ms)) {
            return Ok(Arc::clone(index));
        }
        let path = self.index_path(origin, day_ms);
        let index = Arc::new(day_index::read(&path, day_ms).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("day index '{}': {error}", path.display()),
            )
        })?);
        self.lock_loaded()
            .insert((origin, day_ms), Arc::clone(&index));
        Ok(index)
    }

    /// Entries and bytes of every day index.
    pub fn index_stats(&self) -> io::Result<(u64, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for (day_ms, origin) in self.indexed_days(i64::MIN, i64::MAX) {
            n += self.index(origin, day_ms)?.len() as u64;
            bytes += fs::metadata(self.index_path(origin, day_ms))?.len();
        }
        Ok((n, bytes))
    }

    fn forget_indexes(&self, keep: impl Fn(u32, i64) -> bool) {
        self.indexed
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|&(day_ms, origin)| keep(origin, day_ms));
        self.lock_loaded()
            .retain(|&(origin, day_ms), _| keep(origin, day_ms));
    }

    fn lock_open(&self) -> MutexGuard<'_, HashMap<FileKey, Arc<Mutex<OpenFile>>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_unsynced(&self) -> MutexGuard<'_, HashSet<FileKey>> {
        self.unsynced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn path(&self, origin: u32, day_ms: i64) -> PathBuf {
        self.dir
            .join(origin_dir_name(origin))
            .join(file_name(day_ms))
    }

    /// The file of (origin, day), opened (and created, when `create`) on first use.
    fn file(&self, origin: u32, day_ms: i64, create: bool) -> io::Result<Arc<Mutex<OpenFile>>> {
        let mut open = self.lock_open();
        if let Some(file) = open.get(&(origin, day_ms)) {
            return Ok(Arc::clone(file));
        }
        let path = self.path(origin, day_ms);
        let file = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound && create => {
                let folder = path.parent().expect("a chunk file is in a folder");
                if !folder.is_dir() {
                    fs::create_dir_all(folder)?;
                    sync_dir(&self.dir)?;
                }
                let mut file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .open(&path)?;
                file.write_all(FILE_MAGIC)?;
                file.write_all(&FILE_VERSION.to_le_bytes())?;
                // The new file's directory entry is synced with the file, in `sync`.
                self.lock_unsynced().insert((origin, day_ms));
                file
            }
            Err(error) => return Err(error),
        };
        let end = file.metadata()?.len().max(FILE_HEADER_LEN);
        let file = Arc::new(Mutex::new(OpenFile { file, end }));
        open.insert((origin, day_ms), Arc::clone(&file));
        Ok(file)
    }

    /// Appends a chunk to the file of (origin, day). It is durable after [`ChunkFiles::sync`].
    pub fn append(&self, origin: u32, day_ms: i64, chunk: &[u8]) -> io::Result<Location> {
        let file = self.file(origin, day_ms, true)?;
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let len = u32::try_from(chunk.len()).expect("a chunk is shorter than 4 GiB");
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + chunk.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32c(&[chunk]).to_le_bytes());
        frame.extend_from_slice(chunk);
        let offset = file.end;
        file.file.write_all(&frame)?;
        file.end += frame.len() as u64;
        drop(file);
        self.lock_unsynced().insert((origin, day_ms));
        Ok(Location { offset, len })
    }

    /// Reads a chunk back, checking its frame.
    pub fn read(&self, origin: u32, day_ms: i64, location: Location) -> io::Result<Vec<u8>> {
        let file = self.file(origin, day_ms, false)?;
        let file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut frame = vec![0; FRAME_HEADER_LEN + location.len as usize];
        read_exact_at(&file.file, &mut frame, location.offset)?;
        drop(file);
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
        let chunk = frame.split_off(FRAME_HEADER_LEN);
        if len != location.len || crc32c(&[&chunk]) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the chunk at byte {} of '{}' does not match its checksum",
                    location.offset,
                    self.path(origin, day_ms).display()
                ),
            ));
        }
        Ok(chunk)
    }

    /// fsyncs every file appended to since the last call (of `origin` only, when given),
    /// and the folders of new files.
    pub fn sync(&self, origin: Option<u32>) -> io::Result<()> {
        let pending: Vec<(u32, i64)> = {
            let mut unsynced = self.lock_unsynced();
            let pending: Vec<_> = unsynced
                .iter()
                .copied()
                .filter(|(file_origin, _)| origin.is_none_or(|origin| origin == *file_origin))
                .collect();
            for key in &pending {
                unsynced.remove(key);
            }
            pending
        };
        let mut folders = HashSet::new();
        for &(file_origin, day_ms) in &pending {
            let result = self.file(file_origin, day_ms, false).and_then(|file| {
                file.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .file
                    .sync_data()
            });
            if let Err(error) = result {
                // Try again next time: nothing may point at these bytes before they are
                // on disk.
                self.lock_unsynced().extend(pending.iter().copied());
                return Err(error);
            }
            folders.insert(file_origin);
        }
        for file_origin in folders {
            sync_dir(&self.dir.join(origin_dir_name(file_origin)))?;
        }
        Ok(())
    }

    /// Deletes the files (of every origin) of days that end at or before `cutoff_ms`.
    /// Returns how many.
    pub fn remove_days_ending_by(&self, cutoff_ms: i64) -> io::Result<usize> {
        let mut removed = 0;
        let Ok(origins) = fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        for origin_dir in origins {
            let origin_dir = origin_dir?.path();
            if !origin_dir.is_dir() {
                continue;
            }
            let origin = origin_dir
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(origin_of_dir_name);
            let mut removed_here = false;
            for entry in fs::read_dir(&origin_dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(day_ms) = name.to_str().and_then(day_of_file_name) else {
                    continue;
                };
                if day_ms.saturating_add(DAY_MS) <= cutoff_ms {
                    self.lock_open()
                        .retain(|&(_, open_day), _| open_day != day_ms);
                    self.forget_indexes(|index_origin, index_day| {
                        index_day != day_ms || origin.is_some_and(|origin| origin != index_origin)
                    });
                    fs::remove_file(entry.path())?;
                    removed += 1;
                    removed_here = true;
                }
            }
            if removed_here {
                sync_dir(&origin_dir)?;
            }
        }
        Ok(removed)
    }

    /// Deletes every file of `origin` (an import that did not commit).
    pub fn remove_origin(&self, origin: u32) -> io::Result<()> {
        self.lock_open()
            .retain(|&(file_origin, _), _| file_origin != origin);
        self.lock_unsynced()
            .retain(|&(file_origin, _)| file_origin != origin);
        self.forget_indexes(|index_origin, _| index_origin != origin);
        let folder = self.dir.join(origin_dir_name(origin));
        match fs::remove_dir_all(&folder) {
            Ok(()) => sync_dir(&self.dir),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Bytes of every chunk file.
    pub fn disk_bytes(&self) -> io::Result<u64> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        super::files::dir_size(&self.dir)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buffer.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buffer, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buffer = &mut buffer[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_the_day_and_read_back() {
        let day = 1_735_689_600_000;
        assert_eq!(file_name(day), "2025-01-01.chunks");
        for day_ms in [0, day, -DAY_MS, day_of(i64::MAX), day_of(i64::MIN / 2)] {
            assert_eq!(
                day_of_file_name(&file_name(day_ms)),
                Some(day_ms),
                "{day_ms}"
            );
        }
        assert_eq!(day_of_file_name("notes.txt"), None);
    }

    #[test]
    fn chunks_read_back_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::new(dir.path().to_owned()).unwrap();
        let first = files.append(0, 0, b"first chunk").unwrap();
        let second = files.append(0, 0, b"second").unwrap();
        files.sync(None).unwrap();
        assert_eq!(files.read(0, 0, first).unwrap(), b"first chunk");
        assert_eq!(files.read(0, 0, second).unwrap(), b"second");

        // A fresh handle (a restart) appends after what is there.
        let files = ChunkFiles::new(dir.path().to_owned()).unwrap();
        let third = files.append(0, 0, b"third").unwrap();
        assert!(third.offset > second.offset);
        assert_eq!(files.read(0, 0, second).unwrap(), b"second");

        let path = files.path(0, 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[first.offset as usize + FRAME_HEADER_LEN] ^= 1;
        fs::write(&path, bytes).unwrap();
        let files = ChunkFiles::new(dir.path().to_owned()).unwrap();
        let error = files.read(0, 0, first).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn retention_deletes_whole_days_of_every_origin_with_their_day_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let files = ChunkFiles::new(dir.path().to_owned()).unwrap();
        for day in 0..4 {
            files.append(0, day * DAY_MS, b"live").unwrap();
            files.append(3, day * DAY_MS, b"imported").unwrap();
        }
        let entry = |day: i64| IndexEntry {
            series_id: 1,
            start_ms: day * DAY_MS,
            value: day_index::SpanValue::Inline(vec![1]),
        };
        files.write_index(3, 0, &[entry(0)]).unwrap();
        files.write_index(3, 3 * DAY_MS, &[entry(3)]).unwrap();
        // A restart lists the day indexes on disk.
        let files = ChunkFiles::new(dir.path().to_owned()).unwrap();
        assert_eq!(files.indexed_days(0, 3 * DAY_MS), [(0, 3), (3 * DAY_MS, 3)]);
        // Day 0 of origin 3 is its chunk file and its index.
        assert_eq!(files.remove_days_ending_by(2 * DAY_MS + 1).unwrap(), 5);
        assert!(!files.index_path(3, 0).exists());
        assert_eq!(files.indexed_days(i64::MIN, i64::MAX), [(3 * DAY_MS, 3)]);
        assert_eq!(files.index(3, 3 * DAY_MS).unwrap().len(), 1);
        assert!(!files.path(0, DAY_MS).exists());
        assert!(files.path(0, 2 * DAY_MS).exists());
        assert!(files.path(3, 3 * DAY_MS).exists());
        files.remove_origin(3).unwrap();
        assert!(!files.path(3, 3 * DAY_MS).exists());
        assert!(files.indexed_days(i64::MIN, i64::MAX).is_empty());
        assert!(files.path(0, 3 * DAY_MS).exists());
    }
}
