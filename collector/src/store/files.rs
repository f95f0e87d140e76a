//! The store's files in the data directory: sled's (`db`, `conf`, `snap.*`, `blobs/`), the
//! log's (`wal/`), and the chunk and rollup files (`chunks/`, `rollups/`). This file makes sled's durable with a real fsync, measures the
//! directory, and moves a damaged store aside. The data directory may hold other things
//! (the demo keeps its configs and certificates there), which are never touched.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::chunk_files::{CHUNKS_DIR, ROLLUPS_DIR};
use super::wal::WAL_DIR;

/// The file sled keeps its log in; its presence tells a store from an unrelated directory.
pub(super) const SLED_DATA_FILE: &str = "db";
const SLED_CONFIG_FILE: &str = "conf";
const SLED_BLOBS_DIR: &str = "blobs";
const SLED_SNAPSHOT_PREFIX: &str = "snap.";

/// fsyncs sled's files after `Db::flush`. fsync works per inode, so opening the file again
/// and syncing it makes what sled wrote through its own handle durable.
pub(super) fn fsync_sled_files(data_dir: &Path) -> io::Result<()> {
    for name in [SLED_DATA_FILE, SLED_CONFIG_FILE] {
        match File::open(data_dir.join(name)) {
            Ok(file) => file.sync_all()?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    let blobs = data_dir.join(SLED_BLOBS_DIR);
    if blobs.is_dir() {
        for entry in fs::read_dir(&blobs)? {
            match File::open(entry?.path()) {
                Ok(file) => file.sync_all()?,
                // sled deletes a blob it replaced while we list the folder; a blob that is
                // gone no longer holds anything the store needs.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        File::open(&blobs)?.sync_all()?;
    }
    File::open(data_dir)?.sync_all()
}

/// The segment size sled's configuration file in `data_dir` records (sled refuses to open a
/// store with another); `None` for a new store or a file this cannot read.
pub(super) fn sled_segment_size(data_dir: &Path) -> Option<usize> {
    let bytes = fs::read(data_dir.join(SLED_CONFIG_FILE)).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|size| size.trim().parse().ok())
}

/// Bytes of every file under `path`, like `du -b`.
pub(super) fn dir_size(path: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            // A log segment trimmed while we count.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if metadata.is_dir() {
            total += dir_size(&entry.path())?;
        } else {
            total += metadata.len();
        }
    }
    Ok(total)
}

/// Whether `name`, an entry of the data directory, belongs to the store.
fn is_store_file(name: &str) -> bool {
    name == SLED_DATA_FILE
        || name == SLED_CONFIG_FILE
        || name == SLED_BLOBS_DIR
        || name == WAL_DIR
        || name == CHUNKS_DIR
        || name == ROLLUPS_DIR
        || name.starts_with(SLED_SNAPSHOT_PREFIX)
}

/// Moves the store's files into `<data_dir>/damaged-<UTC time>/` and returns that folder.
/// Everything else in the data directory stays where it is.
pub(super) fn quarantine(data_dir: &Path) -> io::Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let mut target = data_dir.join(format!("damaged-{stamp}"));
    let mut attempt = 1;
    while target.exists() {
        attempt += 1;
        target = data_dir.join(format!("damaged-{stamp}-{attempt}"));
    }
    fs::create_dir(&target)?;
    for entry in fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_store_file) {
            fs::rename(entry.path(), target.join(&name))?;
        }
    }
    File::open(data_dir)?.sync_all()?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_blob_sled_deletes_while_the_folder_is_listed_does_not_fail_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SLED_DATA_FILE), b"log").unwrap();
        let blobs = dir.path().join(SLED_BLOBS_DIR);
        fs::create_dir(&blobs).unwrap();
        fs::write(blobs.join("1"), b"kept").unwrap();
        // A listed entry that cannot be opened because it is gone: what a blob deleted
        // between read_dir and open looks like.
        std::os::unix::fs::symlink(blobs.join("deleted"), blobs.join("2")).unwrap();
        fsync_sled_files(dir.path()).unwrap();
    }

    #[test]
    fn quarantine_moves_only_the_store_files() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "db",
            "conf",
            "snap.0000000000000001",
            "collector.toml",
            "ca.pem",
        ] {
            fs::write(dir.path().join(file), "x").unwrap();
        }
        fs::create_dir(dir.path().join("wal")).unwrap();
        fs::create_dir(dir.path().join("chunks")).unwrap();
        fs::write(dir.path().join("wal/00000000000000000001.wal"), "x").unwrap();
        let moved = quarantine(dir.path()).unwrap();
        assert!(moved.starts_with(dir.path()));
        assert!(moved
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("damaged-"));
        for file in [
            "db",
            "conf",
            "snap.0000000000000001",
            "wal/00000000000000000001.wal",
        ] {
            assert!(moved.join(file).is_file(), "{file} moved");
            assert!(
                !dir.path().join(file).exists(),
                "{file} gone from the data dir"
            );
        }
        assert!(dir.path().join("collector.toml").is_file());
        assert!(dir.path().join("ca.pem").is_file());
        assert_eq!(dir_size(&moved).unwrap(), 4);
    }
}
