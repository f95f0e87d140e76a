//! The audit log: who signed in, acknowledged, approved, revoked, retried a delivery or made
//! a token, and when. One JSON line per event appended to `<data_dir>/http/audit.jsonl` and
//! fsynced before the request that caused it is answered; never rewritten. Admins read it
//! through `/api/v1/audit`.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{action} the audit log {}: {source}; check the disk and the permissions of the data folder", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// The user who did it.
    pub user: String,
    /// e.g. `sign_in`, `sign_in_failed`, `acknowledge`, `approve`, `revoke`.
    pub action: String,
    /// What it was done to: an alert id, a host, a user.
    pub subject: String,
    /// A note, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Opens `<data_dir>/http/audit.jsonl` for appending.
    pub fn open(data_dir: &Path) -> Result<Self, AuditError> {
        let dir = data_dir.join("http");
        let path = dir.join("audit.jsonl");
        let io = |action, source| AuditError::Io {
            action,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|source| io("creating the folder of", source))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| io("opening", source))?;
        Ok(Self {
            path: path.clone(),
            file: Mutex::new(file),
        })
    }

    /// Appends `entry` and syncs it to disk.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(entry).expect("audit entries serialise");
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let io = |action, source| AuditError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        file.write_all(&line)
            .map_err(|source| io("appending to", source))?;
        file.sync_data().map_err(|source| io("syncing", source))
    }

    /// The newest `limit` entries, newest first. A line that does not parse (a torn last
    /// line after a crash) is skipped.
    pub fn newest(&self, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let file = std::fs::File::open(&self.path).map_err(|source| AuditError::Io {
            action: "reading",
            path: self.path.clone(),
            source,
        })?;
        let mut entries = std::collections::VecDeque::with_capacity(limit.min(4096));
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) {
                if entries.len() == limit {
                    entries.pop_front();
                }
                entries.push_back(entry);
            }
        }
        Ok(entries.into_iter().rev().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            at_ms: n,
            user: "ana".into(),
            action: "acknowledge".into(),
            subject: format!("alert-{n}"),
            detail: None,
            address: None,
        }
    }

    #[test]
    fn entries_survive_reopening_and_read_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for n in 0..5 {
            log.record(&entry(n)).unwrap();
        }
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&entry(5)).unwrap();
        let newest: Vec<i64> = log.newest(3).unwrap().iter().map(|e| e.at_ms).collect();
        assert_eq!(newest, [5, 4, 3]);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&entry(1)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("http/audit.jsonl"))
            .unwrap()
            .write_all(b"{\"at_ms\": 2, \"us")
            .unwrap();
        assert_eq!(log.newest(10).unwrap(), [entry(1)]);
    }
}
