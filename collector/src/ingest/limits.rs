//! Limits that keep one agent — or one holder of a certificate — from hurting the others.
//! They are kept per host, not per stream, so reconnecting does not reset them:
//!
//! - rate: a token bucket in batches and one in samples; a host past either is slowed
//!   (the session waits before reading on, HTTP/2 flow control holds the agent back;
//!   nothing is dropped);
//! - cardinality: the distinct series a host has written within [`SERIES_WINDOW`], seeded
//!   after a restart from what the store holds for that window;
//! - connections: how many a host and everyone together may hold (see `connections`).
//!
//! [`Limits`] are the settings, [`HostBudgets`] the state, shared by all sessions.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};
use vigil_proto::model::Labels;

/// How long a series counts towards its host's budget after its last sample arrived: the
/// head's window, as active series are counted in Prometheus-style stores.
pub const SERIES_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// The ingest limits, from `[grpc]` and `[limits]` in collector.toml.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Batches per second per host, sustained (`grpc.max_batches_per_second`).
    pub batches_per_second: f64,
    /// Batches a host may send at once before slowing starts (`grpc.burst_batches`).
    pub burst_batches: f64,
    /// Samples per second per host, sustained (`limits.max_samples_per_second`).
    pub samples_per_second: f64,
    /// Samples a host may send at once before slowing starts (`limits.burst_samples`); at
    /// least one batch's worth.
    pub burst_samples: f64,
    /// Distinct series one host may write within [`SERIES_WINDOW`]
    /// (`limits.max_series_per_host`).
    pub max_series_per_host: usize,
    /// Authenticated connections one host may hold (`limits.max_connections_per_host`).
    pub max_connections_per_host: usize,
    /// Authenticated connections in all (`limits.max_connections`), already lowered to fit
    /// the process's descriptor limit.
    pub max_connections: usize,
    /// TLS handshakes under way at once (`limits.max_handshakes`).
    pub max_handshakes: usize,
    /// A connection without a stream for this long is closed (`limits.idle_timeout`).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            batches_per_second: 50.0,
            burst_batches: 500.0,
            samples_per_second: 20_000.0,
            burst_samples: 200_000.0,
            max_series_per_host: 10_000,
            max_connections_per_host: 4,
            max_connections: 10_000,
            max_handshakes: 256,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Descriptors kept for everything but agent connections: the store's files, sled, the
/// enrollment listener, outgoing notifications.
pub const RESERVED_DESCRIPTORS: u64 = 256;

impl Limits {
    /// Lowers `max_connections` so that connections, handshakes and
    /// [`RESERVED_DESCRIPTORS`] fit in `descriptors` (the process's RLIMIT_NOFILE); says so
    /// when it had to.
    pub fn fit_to_descriptors(mut self, descriptors: u64) -> (Self, Option<String>) {
        let room = descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .saturating_sub(self.max_handshakes as u64)
            .max(1) as usize;
        if self.max_connections <= room {
            return (self, None);
        }
        let warning = format!(
            "limits.max_connections = {} does not fit the descriptor limit of {descriptors} (RLIMIT_NOFILE) with {} handshakes and {RESERVED_DESCRIPTORS} descriptors kept for the store; serving at most {room} agent connections; raise LimitNOFILE in the service unit to serve more",
            self.max_connections, self.max_handshakes
        );
        self.max_connections = room;
        (self, Some(warning))
    }
}

/// The process's descriptor limit, raised first to its hard maximum (as servers do); `None`
/// where it cannot be read.
pub fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return Some(limit.maximum.unwrap_or(u64::MAX));
            }
        }
        Some(limit.current.unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// A token bucket that lends: a request larger than what is left takes it all and waits
/// for the debt to be repaid, so several streams of one host share one rate fairly.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            refilled_at: Instant::now(),
            rate,
            burst,
        }
    }

    /// Takes `n` tokens; returns how long the caller must wait before going on.
    fn take(&mut self, n: f64) -> Duration {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Which rate held a batch back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowed {
    Batches,
    Samples,
}

/// One host's budgets.
#[derive(Debug)]
pub struct HostBudget {
    batches: Bucket,
    samples: Bucket,
    /// Series key → when its last sample arrived.
    series: HashMap<u64, Instant>,
    /// Whether the series the store holds for this host were counted (after a restart).
    pub seeded: bool,
}

/// Every host's budgets, shared by all sessions.
#[derive(Clone)]
pub struct HostBudgets {
    limits: Limits,
    hosts: Arc<Mutex<HashMap<String, Arc<Mutex<HostBudget>>>>>,
}

/// The key a series is counted under: its full label set (metric name, host and client
/// included), hashed.
pub fn series_key(labels: &Labels) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

impl HostBudgets {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            hosts: Arc::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The budget of `host`, created on first use.
    pub fn of(&self, host: &str) -> Arc<Mutex<HostBudget>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(HostBudget {
                    batches: Bucket::new(self.limits.batches_per_second, self.limits.burst_batches),
                    samples: Bucket::new(self.limits.samples_per_second, self.limits.burst_samples),
                    series: HashMap::new(),
                    seeded: false,
                }))
            })
            .clone()
    }

    /// Waits until the host may send a batch of `n_samples` more; says which rate held it
    /// back, if one did.
    pub async fn pace(budget: &Mutex<HostBudget>, n_samples: usize) -> Option<Slowed> {
        let (batch_wait, sample_wait) = {
            let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
            (
                budget.batches.take(1.0),
                budget.samples.take(n_samples as f64),
            )
        };
        let wait = batch_wait.max(sample_wait);
        if wait.is_zero() {
            return None;
        }
        tokio::time::sleep(wait).await;
        Some(if sample_wait >= batch_wait {
            Slowed::Samples
        } else {
            Slowed::Batches
        })
    }

    /// Counts series the store already holds for the host (after a restart).
    pub fn seed(budget: &Mutex<HostBudget>, keys: impl IntoIterator<Item = u64>) {
        let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for key in keys {
            budget.series.entry(key).or_insert(now);
        }
        budget.seeded = true;
    }

    /// Admits a batch whose series have these keys if, with it, the host stays within
    /// `limit` distinct series in [`SERIES_WINDOW`]; a refused batch counts nothing.
    pub fn admit_series(
        budget: &Mutex<HostBudget>,
        keys: &[u64],
        limit: usize,
    ) -> Result<(), SeriesRefusal> {
        let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let count_new = |budget: &HostBudget| {
            let mut new: Vec<u64> = keys
                .iter()
                .copied()
                .filter(|key| !budget.series.contains_key(key))
                .collect();
            new.sort_unstable();
            new.dedup();
            new.len()
        };
        let mut n_new = count_new(&budget);
        if budget.series.len() + n_new > limit {
            // Forget series that have been quiet for the whole window, then look again.
            budget
                .series
                .retain(|_, seen| now.duration_since(*seen) < SERIES_WINDOW);
            n_new = count_new(&budget);
            if budget.series.len() + n_new > limit {
                return Err(SeriesRefusal {
                    known: budget.series.len(),
                    new: n_new,
                    limit,
                });
            }
        }
        for key in keys {
            budget.series.insert(*key, now);
        }
        Ok(())
    }
}

/// A batch that would take its host past `limits.max_series_per_host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRefusal {
    pub known: usize,
    pub new: usize,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_is_lowered_to_fit_the_descriptor_limit() {
        let limits = Limits::default();
        let (fitted, warning) = limits.fit_to_descriptors(1024);
        assert_eq!(fitted.max_connections, 1024 - 256 - 256);
        let warning = warning.expect("a warning");
        assert!(warning.contains("RLIMIT_NOFILE"), "{warning}");
        let (kept, warning) = limits.fit_to_descriptors(1 << 20);
        assert_eq!(kept.max_connections, limits.max_connections);
        assert!(warning.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_batches_are_slowed_to_the_rate() {
        let budgets = HostBudgets::new(Limits {
            batches_per_second: 10.0,
            burst_batches: 5.0,
            ..Limits::default()
        });
        let budget = budgets.of("pc-1");
        for _ in 0..5 {
            assert_eq!(HostBudgets::pace(&budget, 1).await, None);
        }
        let started = Instant::now();
        for _ in 0..10 {
            HostBudgets::pace(&budget, 1).await;
        }
        // Ten more at ten per second take about a second of (paused, simulated) time.
        let took = Instant::now().duration_since(started);
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took <= Duration::from_millis(1100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn dense_batches_are_slowed_by_the_sample_rate_and_it_says_so() {
        let budgets = HostBudgets::new(Limits {
            samples_per_second: 1_000.0,
            burst_samples: 1_000.0,
            ..Limits::default()
        });
        let budget = budgets.of("pc-1");
        assert_eq!(HostBudgets::pace(&budget, 1_000).await, None);
        let started = Instant::now();
        assert_eq!(
            HostBudgets::pace(&budget, 2_000).await,
            Some(Slowed::Samples)
        );
        let took = Instant::now().duration_since(started);
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_cannot_grow_past_its_series_budget_across_streams() {
        let budgets = HostBudgets::new(Limits::default());
        // Two "streams" of one host share one budget.
        let first = budgets.of("pc-1");
        let second = budgets.of("pc-1");
        assert!(HostBudgets::admit_series(&first, &[1, 2], 3).is_ok());
        // Known series cost nothing.
        assert!(HostBudgets::admit_series(&second, &[1, 2], 3).is_ok());
        let refusal = HostBudgets::admit_series(&second, &[3, 4], 3).unwrap_err();
        assert_eq!(
            refusal,
            SeriesRefusal {
                known: 2,
                new: 2,
                limit: 3
            }
        );
        // The refused batch did not use up the budget.
        assert!(HostBudgets::admit_series(&first, &[3], 3).is_ok());
        // Another host has its own.
        assert!(HostBudgets::admit_series(&budgets.of("pc-2"), &[5, 6, 7], 3).is_ok());
        // Series quiet for the whole window make room again.
        tokio::time::advance(SERIES_WINDOW).await;
        assert!(HostBudgets::admit_series(&first, &[8, 9], 3).is_ok());
    }
}
