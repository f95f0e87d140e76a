//! The outbox: deliveries waiting to be sent, and the open alerts they came from, as small
//! JSON files under `<data_dir>/outbox/`.
//!
//! ```text
//! outbox/pending/<key>.json   a delivery not yet accepted by its receiver
//! outbox/sent/<key>.json      delivered (the newest few hundred, for idempotency and audit)
//! outbox/dead/<key>.json      given up after the last attempt, or refused for good
//! outbox/open/<fp>.json       a firing alert: where it went, when it escalates
//! outbox/open/<fp>.ack.json   who acknowledged it, written by `alerts ack` (everyone who
//!                             did, in order; nobody's acknowledgement replaces another's)
//! outbox/acknowledged/<fp>-<start ms>.json   the acknowledgements of an alert that resolved
//! ```
//!
//! Every write goes to a temporary file that is fsynced and renamed over the target, and the
//! folder is fsynced after, so a crash leaves the old file or the new one, never half of one.
//! A delivery is written before `enqueue` returns and removed from `pending/` only after its
//! receiver accepted it: that is the at-least-once promise. The acknowledgement is a file of
//! its own so that the CLI and a running collector never rewrite the same file.

use super::message::{AlertMessage, AlertStatus, Delivery, Purpose};
use super::NotifyError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// How many delivered messages `sent/` keeps.
const SENT_HISTORY: usize = 500;

/// The folder of pending, sent and dead deliveries and open alerts.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    /// Serialises changes to pending deliveries within this process (a digest gaining an
    /// alert while an attempt is recorded).
    write_lock: Mutex<()>,
    /// Serialises read-modify-write of open alerts (enqueue and escalation). Taken before
    /// `write_lock` when both are needed.
    alerts_lock: Mutex<()>,
}

/// A firing alert as delivery remembers it: where its firing went, so its resolve follows,
/// and when it escalates if nobody acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlertRecord {
    /// The latest firing message.
    pub alert: AlertMessage,
    /// The channels its firing was sent to.
    pub channels: Vec<String>,
    /// Set when the firing waits in a digest due then.
    pub digest_at_ms: Option<i64>,
    /// An emergency escalates at this instant unless acknowledged or resolved.
    pub escalate_at_ms: Option<i64>,
    pub escalation_channels: Vec<String>,
    #[serde(default)]
    pub escalated: bool,
}

/// Who acknowledged an open alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at_ms: i64,
}

/// An acknowledgement file: every acknowledgement in order (files of earlier versions hold
/// one).
#[derive(Deserialize)]
#[serde(untagged)]
enum AcknowledgementFile {
    Many(Vec<Acknowledgement>),
    One(Acknowledgement),
}

impl Outbox {
    /// Opens (creating if needed) `<data_dir>/outbox`.
    pub fn open(data_dir: &Path) -> Result<Self, NotifyError> {
        let dir = data_dir.join("outbox");
        for sub in ["pending", "sent", "dead", "open", "acknowledged"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| NotifyError::Io {
                action: "creating",
                path,
                source,
            })?;
        }
        Ok(Self {
            dir,
            write_lock: Mutex::new(()),
            alerts_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held while an open alert is read, changed and written back.
    pub(crate) fn lock_alerts(&self) -> MutexGuard<'_, ()> {
        self.alerts_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes a new delivery unless one with its key is pending, sent or dead already.
    /// Returns whether it was written.
    pub fn put_new(&self, delivery: &Delivery) -> Result<bool, NotifyError> {
        let _guard = self.lock();
        self.put_new_locked(delivery)
    }

    fn put_new_locked(&self, delivery: &Delivery) -> Result<bool, NotifyError> {
        if self.knows(&delivery.key) {
            return Ok(false);
        }
        write_json(&self.path("pending", &delivery.key), delivery)?;
        Ok(true)
    }

    /// Adds `alert` to `client`'s digest for `channel` due at `at_ms` (replacing an earlier
    /// state of the same alert), creating the digest if needed. A digest that is already
    /// being sent is not changed: the alert then goes out on its own at once. Returns the
    /// key of the delivery that carries the alert.
    pub fn add_to_digest(
        &self,
        channel: &str,
        client: &str,
        at_ms: i64,
        alert: &AlertMessage,
        now_ms: i64,
    ) -> Result<String, NotifyError> {
        let _guard = self.lock();
        let key = Delivery::key_for("digest", client, AlertStatus::Firing, at_ms, channel);
        let open = now_ms < at_ms;
        match read_json::<Delivery>(&self.path("pending", &key))? {
            Some(mut digest) if open && digest.attempts == 0 => {
                digest
                    .alerts
                    .retain(|earlier| earlier.fingerprint != alert.fingerprint);
                digest.alerts.push(alert.clone());
                write_json(&self.path("pending", &key), &digest)?;
                return Ok(key);
            }
            None if open && !self.knows(&key) => {
                let digest = Delivery {
                    key: key.clone(),
                    channel: channel.to_string(),
                    purpose: Purpose::Digest {
                        client: client.to_string(),
                        at_ms,
                    },
                    alerts: vec![alert.clone()],
                    created_ms: now_ms,
                    attempts: 0,
                    next_attempt_ms: at_ms,
                    last_error: None,
                    finished_ms: None,
                };
                write_json(&self.path("pending", &key), &digest)?;
                return Ok(key);
            }
            _ => {}
        }
        let single = Delivery::single(alert, channel, now_ms);
        self.put_new_locked(&single)?;
        Ok(single.key)
    }

    /// Whether a delivery with this key exists in any state.
    pub fn knows(&self, key: &str) -> bool {
        ["pending", "sent", "dead"]
            .iter()
            .any(|sub| self.path(sub, key).exists())
    }

    /// A pending delivery by key.
    pub fn pending_delivery(&self, key: &str) -> Result<Option<Delivery>, NotifyError> {
        read_json(&self.path("pending", key))
    }

    /// Records a failed attempt: `attempts`, `next_attempt_ms` and `last_error` of
    /// `delivery` replace those on disk, and nothing else does (a digest may have gained an
    /// alert meanwhile).
    pub fn record_attempt(&self, delivery: &Delivery) -> Result<(), NotifyError> {
        let _guard = self.lock();
        let path = self.path("pending", &delivery.key);
        let mut current = read_json::<Delivery>(&path)?.unwrap_or_else(|| delivery.clone());
        current.attempts = delivery.attempts;
        current.next_attempt_ms = delivery.next_attempt_ms;
        current.last_error = delivery.last_error.clone();
        write_json(&path, &current)
    }

    /// Every pending delivery, oldest first. Damaged files are reported, not skipped
    /// silently: the caller logs them and goes on with the rest.
    pub fn pending(&self) -> Result<(Vec<Delivery>, Vec<NotifyError>), NotifyError> {
        let (mut deliveries, damaged) = list_json::<Delivery>(&self.dir.join("pending"))?;
        deliveries.sort_by(|a, b| (a.next_attempt_ms, &a.key).cmp(&(b.next_attempt_ms, &b.key)));
        Ok((deliveries, damaged))
    }

    /// How many deliveries are pending and how many dead, by listing the two folders (no
    /// file is read): what `/metrics` reports at each scrape.
    pub fn depth(&self) -> Result<(usize, usize), NotifyError> {
        let count = |sub: &str| -> Result<usize, NotifyError> {
            let dir = self.dir.join(sub);
            let entries = std::fs::read_dir(&dir).map_err(|source| NotifyError::Io {
                action: "listing",
                path: dir.clone(),
                source,
            })?;
            Ok(entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
                .count())
        };
        Ok((count("pending")?, count("dead")?))
    }

    /// Deliveries that were given up, newest first.
    pub fn dead(&self) -> Result<Vec<Delivery>, NotifyError> {
        let (mut deliveries, _) = list_json::<Delivery>(&self.dir.join("dead"))?;
        deliveries.sort_by_key(|delivery| std::cmp::Reverse(delivery.finished_ms));
        Ok(deliveries)
    }

    /// Delivered messages kept for audit, newest first.
    pub fn sent(&self) -> Result<Vec<Delivery>, NotifyError> {
        let (mut deliveries, _) = list_json::<Delivery>(&self.dir.join("sent"))?;
        deliveries.sort_by_key(|delivery| std::cmp::Reverse(delivery.finished_ms));
        Ok(deliveries)
    }

    /// Moves a delivered message to `sent/` and trims the history.
    pub fn mark_sent(&self, delivery: &Delivery) -> Result<(), NotifyError> {
        self.finish("sent", delivery)?;
        self.trim_sent()
    }

    /// Moves a delivery that will not be attempted again to `dead/`.
    pub fn mark_dead(&self, delivery: &Delivery) -> Result<(), NotifyError> {
        self.finish("dead", delivery)
    }

    /// Writes the finished copy first, then removes the pending one: a crash in between
    /// leaves both, and the delivery is not attempted again because its key is known.
    fn finish(&self, sub: &str, delivery: &Delivery) -> Result<(), NotifyError> {
        let _guard = self.lock();
        write_json(&self.path(sub, &delivery.key), delivery)?;
        remove_if_present(&self.path("pending", &delivery.key))
    }

    fn trim_sent(&self) -> Result<(), NotifyError> {
        let dir = self.dir.join("sent");
        let entries = std::fs::read_dir(&dir).map_err(|source| NotifyError::Io {
            action: "listing",
            path: dir.clone(),
            source,
        })?;
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        if files.len() <= SENT_HISTORY {
            return Ok(());
        }
        files.sort();
        let excess = files.len() - SENT_HISTORY;
        for (_, path) in files.into_iter().take(excess) {
            remove_if_present(&path)?;
        }
        Ok(())
    }

    pub fn open_alert(&self, fingerprint: &str) -> Result<Option<OpenAlertRecord>, NotifyError> {
        read_json(&self.open_path(fingerprint, ""))
    }

    pub fn put_open_alert(&self, record: &OpenAlertRecord) -> Result<(), NotifyError> {
        write_json(&self.open_path(&record.alert.fingerprint, ""), record)
    }

    /// Forgets a resolved alert; its acknowledgements move to `acknowledged/`, kept with
    /// the alert's history.
    pub fn remove_open_alert(&self, fingerprint: &str) -> Result<(), NotifyError> {
        let acknowledgements = self.acknowledgements(fingerprint)?;
        if !acknowledgements.is_empty() {
            let starts_at_ms = self
                .open_alert(fingerprint)?
                .map_or(0, |record| record.alert.starts_at_ms);
            write_json(
                &self.history_path(fingerprint, starts_at_ms),
                &acknowledgements,
            )?;
        }
        remove_if_present(&self.open_path(fingerprint, ".ack"))?;
        remove_if_present(&self.open_path(fingerprint, ""))
    }

    /// The acknowledgements of the episodes of `fingerprint` that resolved, by the instant
    /// each began, oldest first.
    pub fn acknowledgement_history(
        &self,
        fingerprint: &str,
    ) -> Result<Vec<(i64, Vec<Acknowledgement>)>, NotifyError> {
        let dir = self.dir.join("acknowledged");
        let prefix = format!("{}-", safe_name(fingerprint));
        let entries = std::fs::read_dir(&dir).map_err(|source| NotifyError::Io {
            action: "listing",
            path: dir.clone(),
            source,
        })?;
        let mut history = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(starts) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".json"))
                .and_then(|starts| starts.parse::<i64>().ok())
            else {
                continue;
            };
            if let Some(acknowledgements) = read_json(&entry.path())? {
                history.push((starts, acknowledgements));
            }
        }
        history.sort_by_key(|(starts, _)| *starts);
        Ok(history)
    }

    /// Every open alert with its acknowledgement, if any.
    pub fn open_alerts(
        &self,
    ) -> Result<Vec<(OpenAlertRecord, Option<Acknowledgement>)>, NotifyError> {
        let dir = self.dir.join("open");
        let (records, _) = list_json::<OpenAlertRecord>(&dir)?;
        let mut alerts = Vec::with_capacity(records.len());
        for record in records {
            let ack = self.acknowledgement(&record.alert.fingerprint)?;
            alerts.push((record, ack));
        }
        alerts.sort_by_key(|(record, _)| record.alert.starts_at_ms);
        Ok(alerts)
    }

    /// The first acknowledgement of an open alert: who took it in hand.
    pub fn acknowledgement(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Acknowledgement>, NotifyError> {
        Ok(self.acknowledgements(fingerprint)?.into_iter().next())
    }

    /// Every acknowledgement of an open alert, in order.
    pub fn acknowledgements(&self, fingerprint: &str) -> Result<Vec<Acknowledgement>, NotifyError> {
        Ok(
            match read_json::<AcknowledgementFile>(&self.open_path(fingerprint, ".ack"))? {
                None => Vec::new(),
                Some(AcknowledgementFile::Many(all)) => all,
                Some(AcknowledgementFile::One(one)) => vec![one],
            },
        )
    }

    /// Records that `by` acknowledged the open alert `fingerprint` at `at_ms`, after anyone
    /// who did before, and tells the channels that heard of the alert. An acknowledged
    /// emergency does not escalate. The same person acknowledging again changes nothing.
    pub fn acknowledge(
        &self,
        fingerprint: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<OpenAlertRecord, NotifyError> {
        let record = self
            .open_alert(fingerprint)?
            .ok_or_else(|| NotifyError::NotOpen {
                id: fingerprint.to_string(),
            })?;
        let mut acknowledgements = self.acknowledgements(fingerprint)?;
        if acknowledgements.iter().any(|earlier| earlier.by == by) {
            return Ok(record);
        }
        acknowledgements.push(Acknowledgement {
            by: by.to_string(),
            at_ms,
        });
        write_json(&self.open_path(fingerprint, ".ack"), &acknowledgements)?;
        for channel in &record.channels {
            let purpose = Purpose::Acknowledged {
                by: by.to_string(),
                at_ms,
            };
            let key = Delivery::key_for(
                "ack",
                &format!("{fingerprint}\u{0}{by}"),
                AlertStatus::Firing,
                at_ms,
                channel,
            );
            self.put_new(&Delivery {
                key,
                channel: channel.clone(),
                purpose,
                alerts: vec![record.alert.clone()],
                created_ms: at_ms,
                attempts: 0,
                next_attempt_ms: at_ms,
                last_error: None,
                finished_ms: None,
            })?;
        }
        Ok(record)
    }

    fn history_path(&self, fingerprint: &str, starts_at_ms: i64) -> PathBuf {
        self.dir
            .join("acknowledged")
            .join(format!("{}-{starts_at_ms}.json", safe_name(fingerprint)))
    }

    fn path(&self, sub: &str, key: &str) -> PathBuf {
        self.dir.join(sub).join(format!("{key}.json"))
    }

    fn open_path(&self, fingerprint: &str, suffix: &str) -> PathBuf {
        self.dir
            .join("open")
            .join(format!("{}{suffix}.json", safe_name(fingerprint)))
    }
}

/// Fingerprints are hex, but an id typed on the command line is not to be trusted as a path.
fn safe_name(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, NotifyError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NotifyError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| NotifyError::Damaged {
            path: path.to_path_buf(),
            detail: error.to_string(),
        })
}

/// Reads every `*.json` of a folder that is not an acknowledgement; damaged ones are
/// returned as errors beside the good ones.
fn list_json<T: DeserializeOwned>(dir: &Path) -> Result<(Vec<T>, Vec<NotifyError>), NotifyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| NotifyError::Io {
        action: "listing",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut good = Vec::new();
    let mut damaged = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.ends_with(".ack.json") {
            continue;
        }
        match read_json(&path) {
            Ok(Some(value)) => good.push(value),
            Ok(None) => {} // removed while listing
            Err(error) => damaged.push(error),
        }
    }
    Ok((good, damaged))
}

/// Writes `value` as JSON to a temporary file, fsyncs it, renames it over `path` and
/// fsyncs the folder, so that the file is either the old one or the new one after a crash.
/// (The enrollment registry writes its files the same way.)
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NotifyError> {
    crate::durable::write_json(path, value).map_err(|(action, source)| NotifyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

fn remove_if_present(path: &Path) -> Result<(), NotifyError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NotifyError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source,
        }),
    }
}
