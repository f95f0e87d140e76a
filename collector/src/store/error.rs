//! What can go wrong in the store, each case naming the data directory (or the batch) and
//! the fix. sled's own errors are sorted here into the cases an operator can act on: a
//! directory that is locked by another process, unwritable, damaged or full.

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
}

impl StoreError {
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
