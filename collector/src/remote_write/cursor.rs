//! Where each shard of each receiver is in the exported log, saved on disk after the
//! receiver acknowledges (at most once a second while sending, and always at a clean stop),
//! and the shared holds that decide which exported segments may go.
//!
//! Files: `<data_dir>/remote_write/cursors/<name>/shard-<i>-of-<n>.json`, each a
//! [`LogPosition`] written to a temporary file, synced and renamed over the old one. When
//! the number of shards changes, every new shard starts at the oldest saved position (some
//! samples may be sent twice; none is lost).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::{ExportLog, LogPosition};

use super::RemoteWriteError;

/// The folder of one receiver's saved positions.
pub(super) fn cursor_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("remote_write").join("cursors").join(name)
}

fn cursor_file(dir: &Path, shard: usize, shards: usize) -> PathBuf {
    dir.join(format!("shard-{shard}-of-{shards}.json"))
}

/// The saved position of every shard of a receiver; `None` for all when nothing is saved.
pub(super) fn load(
    dir: &Path,
    shards: usize,
) -> Result<Vec<Option<LogPosition>>, RemoteWriteError> {
    let read = |path: &Path| -> Result<LogPosition, RemoteWriteError> {
        let text = fs::read_to_string(path).map_err(|source| RemoteWriteError::Cursor {
            path: path.to_owned(),
            action: "reading",
            source,
        })?;
        serde_json::from_str(&text).map_err(|error| RemoteWriteError::CursorDamaged {
            path: path.to_owned(),
            detail: error.to_string(),
        })
    };
    let mut saved: Vec<Option<LogPosition>> = vec![None; shards];
    let mut others = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(saved),
        Err(source) => {
            return Err(RemoteWriteError::Cursor {
                path: dir.to_owned(),
                action: "listing",
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(stem) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((shard, of)) = stem
            .strip_prefix("shard-")
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|rest| rest.split_once("-of-"))
        else {
            continue;
        };
        let (Ok(shard), Ok(of)) = (shard.parse::<usize>(), of.parse::<usize>()) else {
            continue;
        };
        let position = read(&path)?;
        if of == shards && shard < shards {
            saved[shard] = Some(position);
        } else {
            others.push((path, position));
        }
    }
    if saved.iter().all(Option::is_none) {
        if let Some(oldest) = others.iter().map(|(_, position)| *position).min() {
            saved = vec![Some(oldest); shards];
        }
    }
    for (path, _) in others {
        let _ = fs::remove_file(path);
    }
    Ok(saved)
}

/// Saves one shard's position durably enough: a crash keeps this one or the one before.
pub(super) fn save(
    dir: &Path,
    shard: usize,
    shards: usize,
    position: LogPosition,
) -> Result<(), RemoteWriteError> {
    let path = cursor_file(dir, shard, shards);
    let error = |action, source| RemoteWriteError::Cursor {
        path: path.clone(),
        action,
        source,
    };
    fs::create_dir_all(dir).map_err(|source| error("creating the folder of", source))?;
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string(&position).expect("a position serializes");
    let mut file = fs::File::create(&temporary).map_err(|source| error("creating", source))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|source| error("writing", source))?;
    fs::rename(&temporary, &path).map_err(|source| error("replacing", source))
}

/// Every shard's position, for deciding which exported segments nobody needs any more.
#[derive(Debug, Default)]
pub(super) struct Holds {
    positions: Mutex<HashMap<(String, usize), LogPosition>>,
}

impl Holds {
    pub fn set(&self, name: &str, shard: usize, position: LogPosition) {
        self.positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((name.to_owned(), shard), position);
    }

    /// Deletes the exported segments every shard is past.
    pub fn release(&self, log: &ExportLog) {
        let oldest = self
            .positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .min()
            .copied();
        if let Some(oldest) = oldest {
            if let Err(error) = log.release_before(oldest) {
                tracing::warn!(%error, "cannot delete exported log segments every receiver has; trying again later");
            }
        }
    }
}
