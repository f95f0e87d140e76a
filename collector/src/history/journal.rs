//! [`History`]: the month files of the alert journal, written one fsynced line at a time.

use super::HistoryError;
use crate::alert::{AlertState, Transition};
use crate::policy::{Classification, Route};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What happened to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryEvent {
    /// It began firing (the first decision of an episode).
    Fired,
    /// The contract's answer for a firing alert changed (a `lasting` met, a forecast closer).
    SeverityChanged,
    /// A maintenance window holds it; it is classified again when the window closes.
    Held,
    /// It stopped firing.
    Resolved,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When the decision was made, ms since the epoch.
    pub at_ms: i64,
    pub event: HistoryEvent,
    /// The alert's id (as `alerts ack` takes it).
    pub fingerprint: String,
    pub client: String,
    pub host: String,
    pub rule: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The alert kind (`host_down`, `disk_full`, …).
    #[serde(default)]
    pub kind: Option<String>,
    pub engine_severity: String,
    pub contract_severity: String,
    #[serde(default)]
    pub host_role: Option<String>,
    /// `now`, `business_hours`, `next_business_morning` or `held_for_maintenance`.
    pub route: String,
    /// When the alert reaches someone under this decision.
    pub delivered_at_ms: i64,
    /// When a response is due under this decision.
    pub response_due_ms: i64,
    /// The contract version that decided (0: no contract applied).
    pub policy_version: u64,
    pub policy_digest: String,
    /// The `[[rule]]` of the contract that set the severity.
    #[serde(default)]
    pub contract_rule: Option<String>,
    /// The declined measure that capped the severity: the accepted risk.
    #[serde(default)]
    pub accepted_risk: Option<String>,
    /// When the alert began firing.
    pub firing_since_ms: i64,
    /// When the condition began (a silent host's last sample).
    pub began_ms: i64,
    /// A forecast's time left as of the transition.
    #[serde(default)]
    pub forecast_time_left_ms: Option<i64>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub threshold: Option<f64>,
    pub summary: String,
}

impl HistoryEntry {
    /// The entry for one decision about `transition`, made at `now`.
    pub fn of(
        transition: &Transition,
        classification: &Classification,
        fingerprint: &str,
        firing_since_ms: i64,
        now: Timestamp,
    ) -> Self {
        let (event, route) = match (transition.state, classification.route) {
            (AlertState::Resolved, _) => (HistoryEvent::Resolved, "resolved"),
            (AlertState::Firing, Route::HeldForMaintenance { .. }) => {
                (HistoryEvent::Held, "held_for_maintenance")
            }
            (AlertState::Firing, Route::Now) => (HistoryEvent::Fired, "now"),
            (AlertState::Firing, Route::BusinessHours) => (HistoryEvent::Fired, "business_hours"),
            (AlertState::Firing, Route::NextBusinessMorning { .. }) => {
                (HistoryEvent::Fired, "next_business_morning")
            }
        };
        let began_ms = match transition.began_ms {
            0 => firing_since_ms,
            began => began.min(firing_since_ms),
        };
        Self {
            at_ms: now.as_millisecond(),
            event,
            fingerprint: fingerprint.to_string(),
            client: transition.client.clone(),
            host: transition.host.clone(),
            rule: transition.rule.clone(),
            labels: transition
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            kind: transition.category.map(|kind| kind.as_str().to_string()),
            engine_severity: format!("{:?}", transition.severity).to_lowercase(),
            contract_severity: classification.contract_severity.as_str().to_string(),
            host_role: classification.host_role.clone(),
            route: route.to_string(),
            delivered_at_ms: classification.route.delivery_at(now).as_millisecond(),
            response_due_ms: classification.response_due.as_millisecond(),
            policy_version: classification.policy_version.version,
            policy_digest: classification.policy_version.digest.clone(),
            contract_rule: classification.rule.clone(),
            accepted_risk: classification.accepted_risk.clone(),
            firing_since_ms,
            began_ms,
            forecast_time_left_ms: transition
                .details
                .forecast
                .map(|forecast| forecast.time_left_ms),
            value: transition.details.value,
            threshold: transition.details.threshold,
            summary: transition.summary.clone(),
        }
    }
}

/// The journal in `<data_dir>/history/`.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    /// The last (event, contract severity, route) written per alert, so that the same
    /// decision made again (a waiting alert looked at again, a replay) writes nothing.
    last: Mutex<BTreeMap<String, (HistoryEvent, String, String)>>,
}

impl History {
    /// The journal of the collector whose data folder is `data_dir`. Nothing is created
    /// until the first entry is written.
    pub fn open(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("history"),
            last: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `entry` to its month file and syncs it; the same decision as the last one
    /// written for the alert is skipped. A firing entry after a firing entry is a severity
    /// change.
    pub fn append(&self, mut entry: HistoryEntry) -> Result<(), HistoryError> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = last.get(&entry.fingerprint).cloned();
        if entry.event == HistoryEvent::Fired
            && matches!(
                previous,
                Some((
                    HistoryEvent::Fired | HistoryEvent::SeverityChanged | HistoryEvent::Held,
                    _,
                    _
                ))
            )
        {
            entry.event = HistoryEvent::SeverityChanged;
        }
        let decision = (
            entry.event,
            entry.contract_severity.clone(),
            entry.route.clone(),
        );
        let unchanged = match (&previous, entry.event) {
            (Some((HistoryEvent::Resolved, _, _)), HistoryEvent::Resolved) => true,
            (Some((_, severity, route)), HistoryEvent::SeverityChanged | HistoryEvent::Held) => {
                *severity == decision.1 && *route == decision.2
            }
            _ => false,
        };
        if unchanged {
            return Ok(());
        }
        let path = self.month_file(entry.at_ms);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(io("creating the folder", &self.dir))?;
        let mut line = serde_json::to_vec(&entry).expect("history entries serialise to JSON");
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        file.write_all(&line).map_err(io("appending to", &path))?;
        file.sync_data().map_err(io("syncing", &path))?;
        last.insert(entry.fingerprint.clone(), decision);
        Ok(())
    }

    /// Every entry dated in `[start_ms, end_ms)`, in the order written. Lines that do not
    /// parse (a write torn by a crash) are skipped and counted in the second value.
    pub fn read_range(
        &self,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(Vec<HistoryEntry>, usize), HistoryError> {
        let mut entries = Vec::new();
        let mut unreadable = 0;
        for path in self.month_files(start_ms, end_ms) {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(HistoryError::Io {
                        action: "opening",
                        path,
                        source,
                    })
                }
            };
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(|source| HistoryError::Io {
                    action: "reading",
                    path: path.clone(),
                    source,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<HistoryEntry>(&line) {
                    Ok(entry) if entry.at_ms >= start_ms && entry.at_ms < end_ms => {
                        entries.push(entry)
                    }
                    Ok(_) => {}
                    Err(_) => unreadable += 1,
                }
            }
        }
        Ok((entries, unreadable))
    }

    /// The months (`YYYY-MM`, UTC) that have a file, oldest first.
    pub fn months(&self) -> Vec<String> {
        let mut months: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                name.strip_suffix(".jsonl").map(str::to_string)
            })
            .collect();
        months.sort();
        months
    }

    fn month_file(&self, at_ms: i64) -> PathBuf {
        let at = Timestamp::from_millisecond(at_ms).unwrap_or(if at_ms > 0 {
            Timestamp::MAX
        } else {
            Timestamp::MIN
        });
        self.dir.join(format!("{}.jsonl", at.strftime("%Y-%m")))
    }

    /// The month files that can hold entries of `[start_ms, end_ms)`.
    fn month_files(&self, start_ms: i64, end_ms: i64) -> Vec<PathBuf> {
        let first = self.month_file(start_ms);
        let last = self.month_file(end_ms.saturating_sub(1).max(start_ms));
        let mut files: Vec<PathBuf> = self
            .months()
            .into_iter()
            .map(|month| self.dir.join(format!("{month}.jsonl")))
            .filter(|path| *path >= first && *path <= last)
            .collect();
        files.dedup();
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertDetails, Severity};
    use crate::policy::{AlertKind, ContractSeverity, PolicyVersionId};
    use vigil_proto::model::Labels;

    fn transition(state: AlertState, ts_ms: i64) -> Transition {
        Transition {
            ts_ms,
            host: "srv-01".into(),
            client: "acme".into(),
            rule: "HostSilent".into(),
            severity: Severity::Critical,
            state,
            summary: "host srv-01 silent".into(),
            labels: Labels::new(),
            category: Some(AlertKind::HostDown),
            began_ms: ts_ms - 300_000,
            details: AlertDetails::default(),
        }
    }

    fn classification(severity: ContractSeverity, at_ms: i64) -> Classification {
        Classification {
            contract_severity: severity,
            host_role: Some("server".into()),
            route: Route::Now,
            response_due: Timestamp::from_millisecond(at_ms + 3_600_000).unwrap(),
            policy_version: PolicyVersionId {
                client: "acme".into(),
                version: 3,
                digest: "abc".into(),
            },
            rule: None,
            accepted_risk: None,
            reclassify_at: None,
            reasons: Vec::new(),
            client_name: None,
            time_zone: None,
        }
    }

    fn entry(state: AlertState, severity: ContractSeverity, at_ms: i64) -> HistoryEntry {
        HistoryEntry::of(
            &transition(state, at_ms),
            &classification(severity, at_ms),
            "fp1",
            at_ms,
            Timestamp::from_millisecond(at_ms).unwrap(),
        )
    }

    #[test]
    fn decisions_are_appended_per_month_and_read_back_in_order_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path());
        let december = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        let fired = december - 3_600_000;
        history
            .append(entry(AlertState::Firing, ContractSeverity::Critical, fired))
            .unwrap();
        // The same decision again writes nothing; a raised severity is a change.
        history
            .append(entry(
                AlertState::Firing,
                ContractSeverity::Critical,
                fired + 1,
            ))
            .unwrap();
        history
            .append(entry(
                AlertState::Firing,
                ContractSeverity::Emergency,
                fired + 2,
            ))
            .unwrap();
        let resolved = december + 86_400_000 + 5;
        history
            .append(entry(
                AlertState::Resolved,
                ContractSeverity::Emergency,
                resolved,
            ))
            .unwrap();
        assert_eq!(history.months().len(), 2, "{:?}", history.months());

        let (entries, unreadable) = History::open(dir.path())
            .read_range(0, i64::MAX / 2)
            .unwrap();
        assert_eq!(unreadable, 0);
        let events: Vec<_> = entries.iter().map(|e| (e.event, e.at_ms)).collect();
        assert_eq!(
            events,
            [
                (HistoryEvent::Fired, fired),
                (HistoryEvent::SeverityChanged, fired + 2),
                (HistoryEvent::Resolved, resolved),
            ]
        );
        assert_eq!(entries[0].policy_version, 3);
        assert_eq!(entries[0].began_ms, fired - 300_000);
        // A range reads only its own entries.
        let (late, _) = history.read_range(december, i64::MAX / 2).unwrap();
        assert_eq!(late.len(), 1);
    }

    #[test]
    fn a_line_torn_by_a_crash_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path());
        let at = 1_796_083_200_000;
        history
            .append(entry(AlertState::Firing, ContractSeverity::Critical, at))
            .unwrap();
        let file = history.dir().join("2026-12.jsonl");
        let mut handle = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        handle.write_all(b"{\"at_ms\": 17960").unwrap();
        let (entries, unreadable) = history.read_range(0, i64::MAX / 2).unwrap();
        assert_eq!((entries.len(), unreadable), (1, 1));
    }
}
