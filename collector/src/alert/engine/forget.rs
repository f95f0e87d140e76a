//! Forgetting what stopped reporting, so the engine's tables do not only grow: series whose
//! newest sample is older than the forget time, hosts that sent nothing for as long (or
//! that the caller says are gone: revoked, removed), their alert instances, and instances
//! whose series are all forgotten and that are not pending or firing. A firing alert of a
//! forgotten host is resolved, so no open alert outlives what it was about.
//!
//! Dropping entries renumbers the tables, so the engine is rebuilt from its own snapshot
//! minus what is forgotten (keeping its grace time and contracts' horizons): a pass over the
//! whole state, which is why callers run it rarely, or only when [`Engine::forgettable`]
//! finds something.

use super::{AlertState, Engine, Snapshot, Transition};
use crate::alert::lifecycle::Phase;
use std::collections::HashSet;

/// What [`Engine::forget`] dropped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Forgotten {
    pub hosts: Vec<String>,
    pub series: usize,
    pub instances: usize,
    /// Firing alerts of forgotten hosts, resolved.
    pub resolved: Vec<Transition>,
}

impl Engine {
    /// Whether [`Engine::forget`] with the same arguments would drop anything: one pass
    /// over hosts and series, no allocation per entry.
    pub fn forgettable(
        &self,
        now_ms: i64,
        forget_after_ms: i64,
        host_gone: impl Fn(&str, Option<i64>) -> bool,
    ) -> bool {
        let cutoff = now_ms.saturating_sub(forget_after_ms);
        self.hosts.iter().any(|host| {
            !host.name.is_empty()
                && (host_gone(&host.name, host.last_seen_ms)
                    || host.last_seen_ms.is_some_and(|seen| seen < cutoff))
        }) || self
            .series
            .iter()
            .any(|series| series.last.is_some_and(|last| last.timestamp_ms < cutoff))
    }

    /// Drops hosts silent since before `now_ms - forget_after_ms` or for which
    /// `host_gone(name, last_seen_ms)` says so, series whose newest sample is older than
    /// that, and the instances that go with them. Returns what was dropped; the caller
    /// delivers `resolved`.
    pub fn forget(
        &mut self,
        now_ms: i64,
        forget_after_ms: i64,
        host_gone: impl Fn(&str, Option<i64>) -> bool,
    ) -> Forgotten {
        if !self.forgettable(now_ms, forget_after_ms, &host_gone) {
            return Forgotten::default();
        }
        let cutoff = now_ms.saturating_sub(forget_after_ms);
        let gone_hosts: HashSet<String> = self
            .hosts
            .iter()
            .filter(|host| {
                !host.name.is_empty()
                    && (host_gone(&host.name, host.last_seen_ms)
                        || host.last_seen_ms.is_some_and(|seen| seen < cutoff))
            })
            .map(|host| host.name.clone())
            .collect();
        let mut forgotten = Forgotten::default();
        // Firing alerts of forgotten hosts are resolved before they go.
        for (index, inst) in self.instances.iter().enumerate() {
            if !gone_hosts.contains(&inst.key.host) {
                continue;
            }
            if let Phase::Firing {
                severity, summary, ..
            } = &inst.life.phase
            {
                let mut transition = self.transition(
                    index,
                    now_ms,
                    crate::alert::lifecycle::Change::Resolved {
                        severity: *severity,
                        summary: summary.clone(),
                    },
                    inst.life.began_ms().unwrap_or(now_ms),
                    Default::default(),
                );
                transition.state = AlertState::Resolved;
                transition.summary = format!(
                    "{summary} (no longer watched: the host stopped reporting or was removed)"
                );
                forgotten.resolved.push(transition);
            }
        }
        // Instances that stay: their host stays, and they are open, or read a series that
        // stays, or read no series at all (silence, site alerts).
        let mut read_by_kept_series = vec![false; self.instances.len()];
        let mut has_series = vec![false; self.instances.len()];
        for series in &self.series {
            let kept = !gone_hosts.contains(&self.hosts[series.host].name)
                && series.last.is_none_or(|last| last.timestamp_ms >= cutoff);
            for &binding in &series.bindings {
                has_series[binding] = true;
                read_by_kept_series[binding] |= kept;
            }
        }
        let mut snapshot = self.snapshot();
        let n_series = snapshot.series.len();
        snapshot.series.retain(|series| {
            let host = series.labels.get("host").unwrap_or_default();
            !gone_hosts.contains(host) && series.last.is_none_or(|last| last.timestamp_ms >= cutoff)
        });
        forgotten.series = n_series - snapshot.series.len();
        let kept_instances: Vec<bool> = self
            .instances
            .iter()
            .enumerate()
            .map(|(index, inst)| {
                !gone_hosts.contains(&inst.key.host)
                    && (!has_series[index]
                        || read_by_kept_series[index]
                        || !matches!(inst.life.phase, Phase::Inactive))
            })
            .collect();
        let n_instances = snapshot.instances.len();
        let mut keep = kept_instances.iter();
        snapshot
            .instances
            .retain(|_| keep.next().copied().unwrap_or(true));
        forgotten.instances = n_instances - snapshot.instances.len();
        snapshot
            .hosts
            .retain(|host| !gone_hosts.contains(&host.host));
        // Hosts that lost series or instances are rewritten; forgotten ones deleted.
        let mut changed: HashSet<String> = gone_hosts.clone();
        for series in &self.series {
            if series.last.is_some_and(|last| last.timestamp_ms < cutoff) {
                changed.insert(self.hosts[series.host].name.clone());
            }
        }
        for (index, inst) in self.instances.iter().enumerate() {
            if !kept_instances[index] {
                changed.insert(inst.key.host.clone());
            }
        }
        self.rebuild(snapshot);
        self.urgent.extend(changed);
        let mut hosts: Vec<String> = gone_hosts.into_iter().collect();
        hosts.sort();
        forgotten.hosts = hosts;
        forgotten
    }

    /// Replaces the tables with `snapshot`'s, keeping the grace time, the contracts'
    /// horizons and what is marked for saving.
    fn rebuild(&mut self, snapshot: Snapshot) {
        let rules = self.rules.clone();
        let mut rebuilt = Engine::restore_with_settings(rules, self.settings, snapshot, 0);
        rebuilt.grace_until_ms = self.grace_until_ms;
        rebuilt.forecast_horizons = std::mem::take(&mut self.forecast_horizons);
        rebuilt.dirty = std::mem::take(&mut self.dirty);
        rebuilt.urgent = std::mem::take(&mut self.urgent);
        *self = rebuilt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::RuleSet;
    use vigil_proto::model::{Labels, Sample};

    const DAY_MS: i64 = 24 * 3_600_000;
    const WEEK_MS: i64 = 7 * DAY_MS;

    fn observe(engine: &mut Engine, host: &str, service: &str, at_ms: i64, up: f64) {
        let labels = Labels::from_pairs([
            ("__name__", "service_up"),
            ("host", host),
            ("client", "acme"),
            ("service", service),
        ]);
        engine.observe(
            &labels,
            Sample {
                timestamp_ms: at_ms,
                value: up,
            },
        );
    }

    #[test]
    fn a_host_silent_longer_than_the_forget_time_is_dropped_with_its_series_and_alerts() {
        let mut engine = Engine::new(RuleSet::builtin());
        // pc-01 reports for a while then goes away for good; pc-02 keeps reporting.
        for minute in 0..10 {
            observe(&mut engine, "pc-01", "spooler", minute * 60_000, 1.0);
        }
        let mut now = 0;
        for day in 0..9 {
            now = day * DAY_MS;
            observe(&mut engine, "pc-02", "spooler", now, 1.0);
            engine.evaluate(now);
        }
        let fired: Vec<_> = engine
            .open_alerts()
            .into_iter()
            .filter(|alert| alert.host == "pc-01" && alert.firing)
            .collect();
        assert!(!fired.is_empty(), "pc-01's silence fired");
        let series_before = engine.snapshot().series.len();

        assert!(engine.forgettable(now, WEEK_MS, |_, _| false));
        let forgotten = engine.forget(now, WEEK_MS, |_, _| false);
        assert_eq!(forgotten.hosts, ["pc-01"]);
        assert_eq!(forgotten.series, 1);
        assert_eq!(engine.snapshot().series.len(), series_before - 1);
        assert!(
            engine
                .open_alerts()
                .iter()
                .all(|alert| alert.host != "pc-01"),
            "nothing of pc-01 is left"
        );
        assert_eq!(forgotten.resolved.len(), fired.len());
        assert!(forgotten
            .resolved
            .iter()
            .all(|t| t.state == AlertState::Resolved && t.host == "pc-01"));
        let changed: Vec<String> = engine
            .take_changed(false)
            .into_iter()
            .filter(|record| record.is_gone())
            .map(|record| record.name)
            .collect();
        assert_eq!(changed, ["pc-01"], "its saved record is to be deleted");
        assert!(
            !engine.forgettable(now, WEEK_MS, |_, _| false),
            "nothing more"
        );
    }

    #[test]
    fn a_series_that_stopped_is_dropped_while_its_host_and_open_alerts_stay() {
        let mut engine = Engine::new(RuleSet::builtin());
        observe(&mut engine, "pc-01", "old-service", 0, 1.0);
        observe(&mut engine, "pc-01", "spooler", 0, 0.0);
        let later = 8 * DAY_MS;
        // The spooler is down (pending) and still reported; old-service was uninstalled.
        observe(&mut engine, "pc-01", "spooler", later, 0.0);
        let forgotten = engine.forget(later, WEEK_MS, |_, _| false);
        assert!(forgotten.hosts.is_empty());
        assert_eq!(forgotten.series, 1);
        let snapshot = engine.snapshot();
        let services: Vec<&str> = snapshot
            .series
            .iter()
            .filter_map(|series| series.labels.get("service"))
            .collect();
        assert_eq!(services, ["spooler"]);
        assert!(snapshot
            .instances
            .iter()
            .all(|inst| inst.labels.get("service") != Some("old-service")));
    }

    #[test]
    fn a_revoked_host_is_forgotten_at_once_and_one_reporting_again_is_not() {
        let mut engine = Engine::new(RuleSet::builtin());
        observe(&mut engine, "pc-01", "spooler", 1_000, 1.0);
        observe(&mut engine, "pc-02", "spooler", 1_000, 1.0);
        // pc-01 was revoked at 2 000, after its last report; pc-02 was revoked at 500 and
        // has reported since (enrolled again).
        let revoked = |host: &str, last_seen: Option<i64>| {
            let revoked_at = match host {
                "pc-01" => 2_000,
                "pc-02" => 500,
                _ => return false,
            };
            last_seen.is_none_or(|seen| seen <= revoked_at)
        };
        let forgotten = engine.forget(3_000, WEEK_MS, revoked);
        assert_eq!(forgotten.hosts, ["pc-01"]);
        let hosts: Vec<String> = engine
            .snapshot()
            .hosts
            .into_iter()
            .map(|h| h.host)
            .collect();
        assert_eq!(hosts, ["pc-02"]);
    }

    #[test]
    fn the_tables_stay_bounded_while_hosts_come_and_go() {
        let mut engine = Engine::new(RuleSet::builtin());
        let mut largest = 0;
        // Each day ten new hosts report for a day and are never seen again.
        for day in 0..60 {
            let now = day * DAY_MS;
            for n in 0..10 {
                observe(&mut engine, &format!("pc-{day}-{n}"), "spooler", now, 1.0);
            }
            engine.evaluate(now);
            engine.forget(now, WEEK_MS, |_, _| false);
            largest = largest.max(engine.snapshot().hosts.len());
        }
        assert!(largest <= 80, "at most eight days of hosts kept: {largest}");
    }
}
