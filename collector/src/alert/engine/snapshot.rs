//! The engine's whole state as a serde value, and the engine rebuilt from it: what a store
//! keeps so that a collector restart neither loses a pending alert nor repeats a firing one.

use super::{Engine, EngineSettings, HostEntry, Instance, InstanceKey, Links, SeriesEntry};
use crate::alert::kinds::KindState;
use crate::alert::lifecycle::Lifecycle;
use crate::alert::rule::RuleSet;
use serde::{Deserialize, Serialize};
use vigil_proto::model::{Labels, Sample};

impl Engine {
    /// Everything the engine remembers, for a store to keep across restarts.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            hosts: self.hosts.iter().map(HostSnapshot::of).collect(),
            series: self.series.iter().map(SeriesSnapshot::of).collect(),
            instances: self
                .instances
                .iter()
                .map(|inst| self.instance_snapshot(inst))
                .collect(),
        }
    }

    pub(super) fn instance_snapshot(&self, inst: &Instance) -> InstanceSnapshot {
        InstanceSnapshot {
            rule: self.rules.rules[inst.key.rule].name.clone(),
            host: inst.key.host.clone(),
            client: inst.client.clone(),
            labels: inst.key.labels.clone(),
            state: inst.state.clone(),
            life: inst.life.clone(),
        }
    }

    /// Rebuilds an engine from a snapshot under `rules` (which may have changed since:
    /// instances of rules that are gone, or whose kind changed, start afresh). Hosts get
    /// [`EngineSettings::restart_grace_ms`] from `now_ms` before any is called silent.
    pub fn restore(rules: RuleSet, snapshot: Snapshot, now_ms: i64) -> Self {
        Self::restore_with_settings(rules, EngineSettings::default(), snapshot, now_ms)
    }

    pub fn restore_with_settings(
        rules: RuleSet,
        settings: EngineSettings,
        snapshot: Snapshot,
        now_ms: i64,
    ) -> Self {
        let mut engine = Self::with_settings(rules, settings);
        engine.grace_until_ms = now_ms + settings.restart_grace_ms;
        for host in snapshot.hosts {
            let index = engine.host_index(&host.host, &host.client);
            let entry = &mut engine.hosts[index];
            entry.last_seen_ms = host.last_seen_ms;
            entry.interval_ms = host.interval_ms;
            entry.offline = host.offline;
            entry.rebooting_since_ms = host.rebooting_since_ms;
        }
        for series in snapshot.series {
            let id = engine.series_id(&series.name, &series.labels);
            engine.series[id.0 as usize].last = series.last;
        }
        for saved in snapshot.instances {
            let Some(rule) = engine.rules.position(&saved.rule) else {
                continue;
            };
            if !saved.state.fits(&engine.rules.rules[rule].kind) {
                continue;
            }
            // Site alerts have no host of their own.
            if !saved.host.is_empty() {
                engine.host_index(&saved.host, &saved.client);
            }
            let key = InstanceKey {
                rule,
                host: saved.host.clone(),
                labels: saved.labels.clone(),
            };
            let index = match engine.instance_ids.get(&key) {
                Some(&index) => index,
                None => {
                    let index = engine.instances.len();
                    engine.instances.push(Instance {
                        key: key.clone(),
                        client: saved.client.clone(),
                        state: saved.state.clone(),
                        life: Lifecycle::default(),
                        links: Links::default(),
                    });
                    engine.instance_ids.insert(key, index);
                    index
                }
            };
            engine.instances[index].state = saved.state;
            engine.instances[index].life = saved.life;
        }
        engine
    }
}

pub(super) const SNAPSHOT_VERSION: u32 = 1;

/// The engine's whole state, serde-serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub hosts: Vec<HostSnapshot>,
    pub series: Vec<SeriesSnapshot>,
    pub instances: Vec<InstanceSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSnapshot {
    pub host: String,
    pub client: String,
    pub last_seen_ms: Option<i64>,
    pub interval_ms: i64,
    pub offline: bool,
    /// Absent in snapshots from before reboots were told apart.
    #[serde(default)]
    pub rebooting_since_ms: Option<i64>,
}

impl HostSnapshot {
    pub(super) fn of(host: &HostEntry) -> Self {
        Self {
            host: host.name.clone(),
            client: host.client.clone(),
            last_seen_ms: host.last_seen_ms,
            interval_ms: host.interval_ms,
            offline: host.offline,
            rebooting_since_ms: host.rebooting_since_ms,
        }
    }
}

impl SeriesSnapshot {
    pub(super) fn of(series: &SeriesEntry) -> Self {
        Self {
            name: series.name.clone(),
            labels: series.labels.clone(),
            last: series.last,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    pub name: String,
    pub labels: Labels,
    pub last: Option<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    pub rule: String,
    pub host: String,
    pub client: String,
    pub labels: Labels,
    pub state: KindState,
    pub life: Lifecycle,
}
