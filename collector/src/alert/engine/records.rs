//! The engine's state cut by host, for saving by change: every sample marks its host
//! changed, every lifecycle step, goodbye or acknowledgement marks it urgent, and
//! [`Engine::take_changed`] hands back the [`HostRecord`] of each marked host (its entry,
//! its series' last samples, its alert instances) so a store rewrites only those: the
//! urgent ones before a transition goes out, all of them at the next evaluation. Site
//! alerts, which belong to no host, travel in the record named `""`.
//!
//! What is not marked: the expiry of old events inside a kind's state on the schedule
//! (a flapping or change window moving on). A restart from a record without it expires
//! them again at the next evaluation.

use super::{Engine, EngineSettings, HostSnapshot, InstanceSnapshot, SeriesSnapshot, Snapshot};
use crate::alert::rule::RuleSet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One host's part of the engine's state. A record with no entry, series or instances says
/// the host is gone from the engine: its saved copy can be deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's name; `""` for site alerts.
    pub name: String,
    pub host: Option<HostSnapshot>,
    #[serde(default)]
    pub series: Vec<SeriesSnapshot>,
    #[serde(default)]
    pub instances: Vec<InstanceSnapshot>,
}

impl HostRecord {
    fn empty(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            host: None,
            series: Vec::new(),
            instances: Vec::new(),
        }
    }

    /// Whether the host is gone from the engine.
    pub fn is_gone(&self) -> bool {
        self.host.is_none() && self.series.is_empty() && self.instances.is_empty()
    }
}

impl Engine {
    pub(super) fn mark_host(&mut self, host: usize) {
        let name = &self.hosts[host].name;
        if !self.dirty.contains(name) {
            self.dirty.insert(name.clone());
        }
    }

    pub(super) fn mark_instance(&mut self, instance: usize) {
        let name = &self.instances[instance].key.host;
        if !self.urgent.contains(name) {
            self.urgent.insert(name.clone());
        }
    }

    /// Marks every host changed: the next [`Engine::take_changed`] returns the whole state
    /// (after restoring from an older form of saved state).
    pub fn mark_all_changed(&mut self) {
        let urgent: Vec<String> = self
            .instances
            .iter()
            .map(|inst| inst.key.host.clone())
            .collect();
        self.urgent.extend(urgent);
        let names: Vec<String> = self.hosts.iter().map(|host| host.name.clone()).collect();
        self.dirty.extend(names);
    }

    /// Marks `name` changed without touching it: its record is written (or deleted) at the
    /// next save (after a save failed, for one).
    pub fn mark_changed(&mut self, name: &str) {
        self.urgent.insert(name.to_owned());
    }

    /// How many hosts changed since they were last taken.
    pub fn changed_hosts(&self) -> usize {
        self.dirty.union(&self.urgent).count()
    }

    /// The records of the hosts whose alerts changed since they were last taken, and with
    /// `samples_too` of those that only had new samples: one pass over the engine, and
    /// serialising only what changed.
    pub fn take_changed(&mut self, samples_too: bool) -> Vec<HostRecord> {
        let mut dirty = std::mem::take(&mut self.urgent);
        if samples_too {
            dirty.extend(std::mem::take(&mut self.dirty));
        } else {
            self.dirty.retain(|name| !dirty.contains(name));
        }
        if dirty.is_empty() {
            return Vec::new();
        }
        let mut records: HashMap<&str, HostRecord> = dirty
            .iter()
            .map(|name| (name.as_str(), HostRecord::empty(name)))
            .collect();
        for host in &self.hosts {
            if let Some(record) = records.get_mut(host.name.as_str()) {
                record.host = Some(HostSnapshot::of(host));
            }
        }
        for series in &self.series {
            let host = &self.hosts[series.host].name;
            if let Some(record) = records.get_mut(host.as_str()) {
                record.series.push(SeriesSnapshot::of(series));
            }
        }
        for inst in &self.instances {
            if let Some(record) = records.get_mut(inst.key.host.as_str()) {
                record.instances.push(self.instance_snapshot(inst));
            }
        }
        let mut records: Vec<HostRecord> = records.into_values().collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }

    /// Rebuilds an engine from host records, as [`Engine::restore_with_settings`] does
    /// from a whole snapshot.
    pub fn restore_records(
        rules: RuleSet,
        settings: EngineSettings,
        records: Vec<HostRecord>,
        now_ms: i64,
    ) -> Self {
        let mut snapshot = Snapshot {
            version: super::snapshot::SNAPSHOT_VERSION,
            hosts: Vec::new(),
            series: Vec::new(),
            instances: Vec::new(),
        };
        for record in records {
            snapshot.hosts.extend(record.host);
            snapshot.series.extend(record.series);
            snapshot.instances.extend(record.instances);
        }
        Self::restore_with_settings(rules, settings, snapshot, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::model::{Labels, Sample};

    fn labels(host: &str, service: &str) -> Labels {
        Labels::from_pairs([
            ("__name__", "service_up"),
            ("host", host),
            ("client", "acme"),
            ("service", service),
        ])
    }

    #[test]
    fn only_the_hosts_that_changed_since_the_last_save_are_handed_back() {
        let mut engine = Engine::new(RuleSet::builtin());
        let sample = |timestamp_ms, value| Sample {
            timestamp_ms,
            value,
        };
        for host in ["pc-01", "pc-02", "pc-03"] {
            engine.observe(&labels(host, "spooler"), sample(1_000, 1.0));
        }
        assert!(
            engine.take_changed(false).is_empty(),
            "samples only, no alert changed"
        );
        let first = engine.take_changed(true);
        let names: Vec<&str> = first.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["pc-01", "pc-02", "pc-03"]);
        assert!(
            engine.take_changed(true).is_empty(),
            "nothing changed since"
        );

        // pc-02's service stops (its alert becomes pending); pc-03 only reports.
        engine.observe(&labels("pc-02", "spooler"), sample(61_000, 0.0));
        engine.observe(&labels("pc-03", "spooler"), sample(61_000, 1.0));
        let second = engine.take_changed(false);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].name, "pc-02");
        assert_eq!(second[0].series.len(), 1);
        assert_eq!(
            second[0].series[0].last,
            Some(sample(61_000, 0.0)),
            "the newest sample"
        );
        assert!(second[0].instances.iter().any(|i| i.rule == "ServiceDown"));
        let rest = engine.take_changed(true);
        let names: Vec<&str> = rest.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["pc-03"], "the samples-only change waited");
    }

    #[test]
    fn an_engine_restored_from_its_records_is_the_engine_that_saved_them() {
        let mut engine = Engine::new(RuleSet::builtin());
        engine.observe(
            &labels("pc-01", "spooler"),
            Sample {
                timestamp_ms: 1_000,
                value: 0.0,
            },
        );
        engine.observe(
            &labels("pc-02", "spooler"),
            Sample {
                timestamp_ms: 1_000,
                value: 1.0,
            },
        );
        engine.host_goodbye("pc-02", None);
        let records = engine.take_changed(true);
        let restored =
            Engine::restore_records(RuleSet::builtin(), EngineSettings::default(), records, 0);
        let sorted = |mut snapshot: Snapshot| {
            snapshot.hosts.sort_by(|a, b| a.host.cmp(&b.host));
            snapshot.series.sort_by(|a, b| a.labels.cmp(&b.labels));
            snapshot
                .instances
                .sort_by(|a, b| (&a.rule, &a.host, &a.labels).cmp(&(&b.rule, &b.host, &b.labels)));
            snapshot
        };
        assert_eq!(sorted(restored.snapshot()), sorted(engine.snapshot()));
    }
}
