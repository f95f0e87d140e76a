//! The engine split by client into parts that judge on threads of their own, so rule
//! evaluation scales with cores. A client's hosts all live in one part (site alerts compare
//! a client's hosts with each other), and each part judges its samples in the order given,
//! so each host's alerts keep their order; only the interleaving of different clients'
//! transitions differs from one engine's.
//!
//! Not yet what the live pipeline runs: it is the judging core that `pipeline::live` will
//! hand each chunk of queued batches to.

use super::{Engine, EngineSettings, Transition};
use crate::alert::rule::RuleSet;
use vigil_proto::model::{Labels, Sample};

/// One sample to judge: its series (labels carry `host` and `client`) and when it arrived.
#[derive(Debug, Clone)]
pub struct Observed {
    pub name: String,
    pub labels: Labels,
    pub sample: Sample,
    pub arrival_ms: i64,
}

/// Engines by client. See the module documentation.
#[derive(Debug)]
pub struct Partitioned {
    parts: Vec<Engine>,
}

impl Partitioned {
    /// `n_parts` engines (at least one) under the same rules.
    pub fn new(rules: RuleSet, settings: EngineSettings, n_parts: usize) -> Self {
        let parts = (0..n_parts.max(1))
            .map(|_| Engine::with_settings(rules.clone(), settings))
            .collect();
        Self { parts }
    }

    /// The part that judges `client`'s hosts: the same for a client across restarts and
    /// processes (FNV-1a of its name, not a randomly seeded hash).
    pub fn part_of(&self, client: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in client.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % self.parts.len() as u64) as usize
    }

    pub fn parts(&self) -> &[Engine] {
        &self.parts
    }

    /// Judges `samples`, each part on a thread of its own when there are several, each in
    /// the order given. Returns the transitions part by part, each part's in order.
    pub fn observe_all(&mut self, samples: &[Observed]) -> Vec<Transition> {
        let mut by_part: Vec<Vec<&Observed>> = vec![Vec::new(); self.parts.len()];
        for observed in samples {
            let client = observed.labels.get("client").unwrap_or_default();
            by_part[self.part_of(client)].push(observed);
        }
        if self.parts.len() == 1 {
            return judge(&mut self.parts[0], &by_part[0]);
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .parts
                .iter_mut()
                .zip(&by_part)
                .map(|(engine, samples)| scope.spawn(move || judge(engine, samples)))
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("an engine part panicked"))
                .collect()
        })
    }

    /// One scheduled evaluation of every part, part by part.
    pub fn evaluate(&mut self, now_ms: i64) -> Vec<Transition> {
        self.parts
            .iter_mut()
            .flat_map(|engine| engine.evaluate(now_ms))
            .collect()
    }
}

fn judge(engine: &mut Engine, samples: &[&Observed]) -> Vec<Transition> {
    let mut out = Vec::new();
    for observed in samples {
        let id = engine.series_id(&observed.name, &observed.labels);
        engine.observe_series(id, observed.sample, observed.arrival_ms, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Twelve hosts of four clients over two hours: services stopping and starting, a
    /// filesystem filling on some, memory high on others, and one client's whole site
    /// falling silent for a while.
    fn workload() -> Vec<(i64, Vec<Observed>)> {
        let mut ticks = Vec::new();
        for minute in 0..120i64 {
            let now = minute * 60_000;
            let mut samples = Vec::new();
            for host in 0..12usize {
                let client = format!("client-{}", host % 4);
                if client == "client-3" && (40..70).contains(&minute) {
                    continue;
                }
                let name = format!("pc-{host:02}");
                let mut add = |metric: &str, extra: &[(&str, &str)], value: f64| {
                    let mut labels = Labels::from_pairs(extra.iter().copied());
                    labels.insert("host", name.clone());
                    labels.insert("client", client.clone());
                    samples.push(Observed {
                        name: metric.into(),
                        labels,
                        sample: Sample {
                            timestamp_ms: now,
                            value,
                        },
                        arrival_ms: now,
                    });
                };
                let down = (minute / (7 + host as i64)) % 3 == 1;
                add(
                    "service_up",
                    &[("service", "spooler")],
                    if down { 0.0 } else { 1.0 },
                );
                let used = if host % 3 == 0 {
                    4e11 * (0.5 + 0.5 * minute as f64 / 120.0)
                } else {
                    2e11
                };
                add(
                    "system_filesystem_usage_bytes",
                    &[("mountpoint", "/"), ("state", "used")],
                    used,
                );
                add(
                    "system_filesystem_usage_bytes",
                    &[("mountpoint", "/"), ("state", "free")],
                    4e11 - used,
                );
                add(
                    "system_filesystem_limit_bytes",
                    &[("mountpoint", "/")],
                    4e11,
                );
                let available = if host % 4 == 1 && minute > 30 {
                    1e8
                } else {
                    4e9
                };
                add(
                    "system_memory_usage_bytes",
                    &[("state", "available")],
                    available,
                );
                add(
                    "system_memory_usage_bytes",
                    &[("state", "used")],
                    8e9 - available,
                );
                add("system_memory_limit_bytes", &[], 8e9);
            }
            ticks.push((now, samples));
        }
        ticks
    }

    fn by_host(transitions: Vec<Transition>) -> BTreeMap<String, Vec<Transition>> {
        let mut hosts: BTreeMap<String, Vec<Transition>> = BTreeMap::new();
        for transition in transitions {
            let key = if transition.host.is_empty() {
                format!("site {}", transition.client)
            } else {
                transition.host.clone()
            };
            hosts.entry(key).or_default().push(transition);
        }
        hosts
    }

    #[test]
    fn two_parts_give_each_host_the_same_transitions_in_the_same_order_as_one() {
        let settings = EngineSettings::default();
        let mut one = Partitioned::new(RuleSet::builtin(), settings, 1);
        let mut two = Partitioned::new(RuleSet::builtin(), settings, 2);
        let (mut from_one, mut from_two) = (Vec::new(), Vec::new());
        for (now, samples) in workload() {
            from_one.extend(one.observe_all(&samples));
            from_one.extend(one.evaluate(now));
            from_two.extend(two.observe_all(&samples));
            from_two.extend(two.evaluate(now));
        }
        assert!(
            from_one.len() >= 20,
            "the workload makes alerts: {}",
            from_one.len()
        );
        assert!(
            from_one.iter().any(|t| t.host.is_empty()),
            "a site alert is among them"
        );
        assert_eq!(by_host(from_two), by_host(from_one));
        let sizes: Vec<usize> = two
            .parts()
            .iter()
            .map(|e| e.snapshot().hosts.len())
            .collect();
        assert!(
            sizes.iter().all(|&n| n > 0),
            "both parts judge hosts: {sizes:?}"
        );
    }

    #[test]
    fn a_client_always_lands_in_the_same_part() {
        let engine = Partitioned::new(RuleSet::builtin(), EngineSettings::default(), 2);
        let again = Partitioned::new(RuleSet::builtin(), EngineSettings::default(), 2);
        for client in ["acme", "acme-dental", "globex", "msp"] {
            assert_eq!(engine.part_of(client), again.part_of(client));
            assert!(engine.part_of(client) < 2);
        }
    }
}
