//! Site silence: when most hosts of one client fall silent within a couple of minutes of
//! each other, the site's link or power is gone, and one "site unreachable" alert replaces
//! the hosts' own silence alerts.

use super::{Engine, Instance, InstanceKey, Links, Transition};
use crate::alert::kinds::{KindState, Verdict};
use crate::alert::lifecycle::{Condition, Lifecycle};
use crate::alert::rule::{HostSilent, RuleKind, Severity};
use crate::alert::summary;
use vigil_proto::model::Labels;

/// Hosts whose silence began within this of each other fell silent together.
const SITE_SPREAD_MS: i64 = 120_000;

impl Engine {
    /// Finds clients most of whose hosts fell silent together and judges their site
    /// alerts; returns the hosts whose own silence alerts the site alert replaces.
    pub(super) fn judge_sites(&mut self, now_ms: i64, out: &mut Vec<Transition>) -> Vec<usize> {
        let mut replaced = Vec::new();
        for rule_index in 0..self.rules.rules.len() {
            let RuleKind::HostSilent(rule) = &self.rules.rules[rule_index].kind else {
                continue;
            };
            let rule = rule.clone();
            let mut clients: Vec<String> = self.hosts.iter().map(|h| h.client.clone()).collect();
            clients.sort();
            clients.dedup();
            for client in clients {
                let hosts: Vec<usize> = (0..self.hosts.len())
                    .filter(|&h| self.hosts[h].client == client && !self.hosts[h].name.is_empty())
                    .collect();
                let together = self.silent_together(&rule, &hosts, now_ms);
                let needed = (rule.site_share * hosts.len() as f64).ceil() as usize;
                let site_down = now_ms >= self.grace_until_ms
                    && hosts.len() >= rule.site_min_hosts
                    && together.len() >= needed.max(rule.site_min_hosts);
                let key = InstanceKey {
                    rule: rule_index,
                    host: String::new(),
                    labels: Labels::from_pairs([("client", client.as_str())]),
                };
                let existing = self.instance_ids.get(&key).copied();
                if !site_down && existing.is_none() {
                    continue;
                }
                let instance = match existing {
                    Some(instance) => instance,
                    None => {
                        let index = self.instances.len();
                        self.instances.push(Instance {
                            key: key.clone(),
                            client: client.clone(),
                            state: KindState::HostSilent(Default::default()),
                            life: Lifecycle::default(),
                            links: Links::default(),
                        });
                        self.instance_ids.insert(key, index);
                        index
                    }
                };
                let verdict = site_down.then(|| {
                    let names: Vec<&str> = together
                        .iter()
                        .map(|&h| self.hosts[h].name.as_str())
                        .collect();
                    Verdict::new(Severity::Critical)
                        .with(
                            "silent_for",
                            summary::duration(
                                together
                                    .iter()
                                    .filter_map(|&h| self.hosts[h].last_seen_ms)
                                    .map(|seen| (now_ms - seen) as f64)
                                    .fold(0.0, f64::max),
                            ),
                        )
                        .with(
                            "last_seen",
                            format!("{} of {} hosts", names.len(), hosts.len()),
                        )
                });
                if site_down {
                    replaced.extend(together);
                }
                self.step_site(instance, now_ms, verdict, hosts.len(), out);
            }
        }
        replaced
    }

    /// The largest group of `hosts` that are silent and whose silence began within
    /// [`SITE_SPREAD_MS`] of each other.
    fn silent_together(&self, rule: &HostSilent, hosts: &[usize], now_ms: i64) -> Vec<usize> {
        let mut silent: Vec<(i64, usize)> = hosts
            .iter()
            .filter_map(|&h| {
                let reporting = self.hosts[h].reporting()?;
                reporting
                    .is_silent(rule, now_ms)
                    .then_some((reporting.last_seen_ms, h))
            })
            .collect();
        silent.sort();
        let mut best: &[(i64, usize)] = &[];
        let mut start = 0;
        for end in 0..silent.len() {
            while silent[end].0 - silent[start].0 > SITE_SPREAD_MS {
                start += 1;
            }
            if end + 1 - start > best.len() {
                best = &silent[start..=end];
            }
        }
        best.iter().map(|&(_, h)| h).collect()
    }

    fn step_site(
        &mut self,
        instance: usize,
        now_ms: i64,
        verdict: Option<Verdict>,
        n_hosts: usize,
        out: &mut Vec<Transition>,
    ) {
        let condition = verdict.map(|verdict| {
            let client = &self.instances[instance].client;
            let silent = verdict
                .vars
                .iter()
                .find(|(name, _)| *name == "last_seen")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let silent_for = verdict
                .vars
                .iter()
                .find(|(name, _)| *name == "silent_for")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            Condition {
                severity: verdict.severity,
                summary: format!(
                    "site of client {client} unreachable: {silent} silent together for \
                     {silent_for} ({n_hosts} hosts known); check the site's internet link \
                     or power"
                ),
                pending_for_ms: 0,
                details: verdict.details,
                began_ms: verdict.began_ms,
            }
        });
        let began_before = self.instances[instance].life.began_ms();
        let life_before = self.instances[instance].life.clone();
        let change = self.instances[instance]
            .life
            .step(now_ms, condition.as_ref(), 0);
        if self.instances[instance].life != life_before {
            self.mark_instance(instance);
        }
        if let Some(change) = change {
            let began_ms = self.instances[instance]
                .life
                .began_ms()
                .or(began_before)
                .unwrap_or(now_ms);
            let details = condition.map(|c| c.details).unwrap_or_default();
            let mut transition = self.transition(instance, now_ms, change, began_ms, details);
            transition.rule = crate::alert::catalog::SITE_RULE.to_owned();
            out.push(transition);
        }
    }
}
