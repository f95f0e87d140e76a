//! What can go wrong in the store, each case naming the data directory (or the batch, or the
//! log segment) and the fix. sled's own errors are sorted here into the cases an operator
//! can act on: a directory that is locked by another process, unwritable, damaged or full.
//! [`StoreError::is_damage`] tells damage (which quarantine can answer) from the rest.

use std::io;
use std::path::{Path, PathBuf};

/// An error of the store. The message is one lowercase line saying what failed, on what,
/// and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data directory '{}' does not exist; check the path, or start the collector once to create it",
        path.display()
    )]
    DataDirMissing { path: PathBuf },

    #[error("data directory '{}' is a file, not a directory; check the path", path.display())]
    NotADirectory { path: PathBuf },

    #[error(
        "data directory '{}' holds no Vigil store; check the path (it is the collector's data directory)",
        path.display()
    )]
    NotAStore { path: PathBuf },

    #[error(
        "creating data directory '{}': {source}; check that the collector's user may create it",
        path.display()
    )]
    CreateDir { path: PathBuf, source: io::Error },

    #[error(
        "opening data directory '{}': permission denied; check that the collector's user can read and write there",
        path.display()
    )]
    PermissionDenied { path: PathBuf, source: sled::Error },

    /// sled holds an exclusive lock on its files while a store is open.
    #[error(
        "data directory '{}' is in use by another process (a running collector?); stop that process, or work on a copy of the directory",
        path.display()
    )]
    InUse { path: PathBuf },

    #[error("data directory '{}' is damaged: {source}; restore it from a backup", path.display())]
    Corrupt { path: PathBuf, source: sled::Error },

    /// A record that sled returned intact but that this code did not write in this form.
    #[error(
        "data directory '{}': malformed {what}; the store is damaged or was written by another program, restore it from a backup",
        path.display()
    )]
    Malformed { path: PathBuf, what: String },

    /// Any other failure of sled; `action` says what was being done.
    #[error("{action} in data directory '{}': {source}{}", path.display(), hint(source))]
    Storage {
        path: PathBuf,
        action: String,
        source: sled::Error,
    },

    /// The caller handed over a series the store cannot key; nothing of the batch was stored.
    #[error("batch {seq} from host '{host}' spool {spool_id}: series {labels} {reason}; nothing of the batch was stored")]
    InvalidSeries {
        host: String,
        spool_id: u64,
        seq: u64,
        labels: String,
        reason: &'static str,
    },

    #[error("host record of '{host}': {source}")]
    HostRecord {
        host: String,
        source: serde_json::Error,
    },

    /// Reading or writing a log segment failed.
    #[error("{action} write-ahead log '{}': {source}{}", path.display(), io_hint(source))]
    Wal {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },

    /// A log segment holds bytes that are not intact records, before its end.
    #[error(
        "write-ahead log segment '{}' is damaged at byte {offset}: {reason}; the store needs restoring or quarantine",
        path.display()
    )]
    WalDamaged {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },

    /// A write or fsync of the log failed; batches are refused (agents keep and resend
    /// them) until a write succeeds again, which the log tries by itself.
    #[error(
        "the write-ahead log in '{}' cannot write ({reason}); batches are refused and resent later: free space or fix the disk, ingest resumes by itself",
        path.display()
    )]
    WalFailed { path: PathBuf, reason: String },

    /// The store was closed (the collector is stopping).
    #[error("the store in '{}' is closed; the collector is stopping, batches are resent to the next run", path.display())]
    Closed { path: PathBuf },

    /// The store would not open because it is damaged, and the configuration says to stop.
    #[error("data directory '{}' holds a damaged store ({reason}); {fix}", path.display())]
    Damaged {
        path: PathBuf,
        reason: String,
        fix: &'static str,
    },

    #[error(
        "data directory '{}' was written by a newer collector (store format {version}, this one reads up to {supported}); upgrade vigil-collector",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        version: u64,
        supported: u64,
    },

    /// The chunk codec refused to encode samples the store handed it: a bug, reported
    /// rather than hidden.
    #[error("compressing samples of {what} failed: {reason}; please report this as a bug")]
    Codec { what: String, reason: String },

    /// Any other file-system failure in the data directory.
    #[error("{action} '{}': {source}{}", path.display(), io_hint(source))]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl StoreError {
    /// Whether this error means the store on disk is damaged (as opposed to a problem of
    /// the environment, like permissions, a full disk or another process holding it).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::Malformed { .. }
                | StoreError::WalDamaged { .. }
        )
    }

    /// Sorts an error from opening sled at `path` into the case an operator can act on.
    pub(super) fn from_open(path: &Path, error: sled::Error) -> Self {
        let path = path.to_owned();
        match &error {
            sled::Error::Io(io_error) if io_error.kind() == io::ErrorKind::PermissionDenied => {
                StoreError::PermissionDenied {
                    path,
                    source: error,
                }
            }
            // sled 0.34 reports a failed `flock` only through this text (see its
            // `Config::try_lock`); the kind is `Other`.
            sled::Error::Io(io_error)
                if io_error.to_string().contains("could not acquire lock") =>
            {
                StoreError::InUse { path }
            }
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                path,
                source: error,
            },
            _ => StoreError::Storage {
                path,
                action: "opening the store".to_owned(),
                source: error,
            },
        }
    }

    pub(super) fn storage(path: &Path, action: impl Into<String>, source: sled::Error) -> Self {
        match source {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                path: path.to_owned(),
                source,
            },
            source => StoreError::Storage {
                path: path.to_owned(),
                action: action.into(),
                source,
            },
        }
    }

    pub(super) fn malformed(path: &Path, what: impl Into<String>) -> Self {
        StoreError::Malformed {
            path: path.to_owned(),
            what: what.into(),
        }
    }
}

/// A fix for the file-system failures with an obvious one.
fn io_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::StorageFull => "; free space on that disk",
        io::ErrorKind::PermissionDenied => {
            "; check that the collector's user can read and write there"
        }
        _ => "",
    }
}

/// A fix for the failures with an obvious one.
fn hint(error: &sled::Error) -> &'static str {
    match error {
        sled::Error::Io(io_error) if io_error.kind() == io::ErrorKind::StorageFull => {
            "; free space on that disk"
        }
        sled::Error::Io(io_error) if io_error.kind() == io::ErrorKind::PermissionDenied => {
            "; check that the collector's user can read and write there"
        }
        _ => "",
    }
}
