//! Per-stream limits that keep one misbehaving agent from hurting the others: a token bucket
//! that slows a stream sending batches faster than any real agent would (a replay after an
//! outage included), and a bound on how many distinct series one host may create.
//!
//! Slowing is plain backpressure: the session waits before reading the next batch, and
//! HTTP/2 flow control holds the agent back. Nothing is dropped.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use tokio::time::{Duration, Instant};
use vigil_proto::model::Batch;

/// Limits of one agent stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Batches per second sustained. An agent ticks every 10 s; a replay of a day's spool
    /// at 50 per second takes three minutes.
    pub batches_per_second: f64,
    /// Batches that may arrive at once before slowing starts.
    pub burst: f64,
    /// Distinct series one host may send on one stream.
    pub max_series_per_host: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            batches_per_second: 50.0,
            burst: 500.0,
            max_series_per_host: 10_000,
        }
    }
}

/// A token bucket over tokio's clock (so tests can pause time).
#[derive(Debug)]
pub struct BatchRate {
    tokens: f64,
    refilled_at: Instant,
    limits: StreamLimits,
}

impl BatchRate {
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            tokens: limits.burst,
            refilled_at: Instant::now(),
            limits,
        }
    }

    /// Waits until one more batch is allowed, and takes it. Returns how long it waited.
    pub async fn admit(&mut self) -> Duration {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limits.batches_per_second).min(self.limits.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Duration::ZERO;
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.limits.batches_per_second);
        tokio::time::sleep(wait).await;
        self.refilled_at = Instant::now();
        self.tokens = 0.0;
        wait
    }
}

/// The distinct series a host has sent on this stream, as hashes.
#[derive(Debug, Default)]
pub struct SeriesBudget {
    seen: HashSet<u64>,
}

impl SeriesBudget {
    /// Admits the batch if, with it, the host stays within `limit` distinct series; the
    /// batch's new series are counted only when it is admitted.
    pub fn admit(&mut self, batch: &Batch, limit: usize) -> Result<(), String> {
        let new: HashSet<u64> = batch
            .series
            .iter()
            .map(|series| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                series.name.hash(&mut hasher);
                series.labels.hash(&mut hasher);
                hasher.finish()
            })
            .filter(|key| !self.seen.contains(key))
            .collect();
        if self.seen.len() + new.len() > limit {
            return Err(format!(
                "batch {}: the host would have more than {limit} distinct series; check the agent's configuration for a label that changes every tick",
                batch.seq
            ));
        }
        self.seen.extend(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::model::{Labels, Series};

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_batches_are_slowed_to_the_rate() {
        let limits = StreamLimits {
            batches_per_second: 10.0,
            burst: 5.0,
            ..StreamLimits::default()
        };
        let mut rate = BatchRate::new(limits);
        for _ in 0..5 {
            assert_eq!(rate.admit().await, Duration::ZERO);
        }
        let started = Instant::now();
        for _ in 0..10 {
            rate.admit().await;
        }
        // Ten more at ten per second take about a second of (paused, simulated) time.
        let took = Instant::now().duration_since(started);
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took <= Duration::from_millis(1100), "{took:?}");
    }

    fn batch(seq: u64, names: &[&str]) -> Batch {
        Batch {
            seq,
            series: names
                .iter()
                .map(|name| Series {
                    name: name.to_string(),
                    labels: Labels::new(),
                    samples: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn a_host_cannot_grow_past_its_series_budget() {
        let mut budget = SeriesBudget::default();
        assert!(budget.admit(&batch(1, &["a", "b"]), 3).is_ok());
        // Known series cost nothing.
        assert!(budget.admit(&batch(2, &["a", "b"]), 3).is_ok());
        let error = budget.admit(&batch(3, &["c", "d"]), 3).unwrap_err();
        assert!(error.contains("more than 3 distinct series"), "{error}");
        // The refused batch did not use up the budget.
        assert!(budget.admit(&batch(4, &["c"]), 3).is_ok());
    }
}
