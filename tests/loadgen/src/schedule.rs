//! When each simulated agent sends what: ticks on the interval grid (timestamps are
//! multiples of the interval, as `vigil-agent` stamps them), each agent sending at its own
//! offset into the interval, as a real fleet's clocks and collection times spread it, and
//! an optional backlog of past ticks sent first, as a fleet does when it comes back after
//! an outage.
//!
//! The batches themselves are made only when sent, so a day's backlog for thousands of
//! agents costs a counter, not memory.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// Spreads agent `index` of `n` evenly over `spread` (a golden-ratio sequence, so that any
/// prefix of the fleet is spread evenly too).
pub fn start_offset(index: usize, spread: Duration) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let fraction = (index as f64 * GOLDEN).fract();
    spread.mul_f64(fraction)
}

/// The timestamps one agent still has to send, oldest first.
#[derive(Debug)]
pub struct TickQueue {
    interval_ms: i64,
    waiting: VecDeque<i64>,
    backlog: u64,
}

impl TickQueue {
    /// A queue holding `backlog` of past ticks before `first_live_ms` (a grid time).
    pub fn with_backlog(first_live_ms: i64, interval: Duration, backlog: Duration) -> Self {
        let interval_ms = (interval.as_millis() as i64).max(1);
        let ticks = backlog.as_millis() as i64 / interval_ms;
        let waiting = (1..=ticks)
            .rev()
            .map(|back| first_live_ms - back * interval_ms)
            .collect();
        Self {
            interval_ms,
            waiting,
            backlog: ticks as u64,
        }
    }

    /// How many ticks of backlog the queue started with.
    pub fn backlog_ticks(&self) -> u64 {
        self.backlog
    }

    /// Adds a live tick.
    pub fn push_live(&mut self, timestamp_ms: i64) {
        self.waiting.push_back(timestamp_ms);
    }

    pub fn pop(&mut self) -> Option<i64> {
        self.waiting.pop_front()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }
}

/// The grid time at or before `now_ms`.
pub fn grid_floor(now_ms: i64, interval: Duration) -> i64 {
    let interval_ms = (interval.as_millis() as i64).max(1);
    now_ms.div_euclid(interval_ms) * interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_backlog_at_ten_seconds_is_8640_ticks_on_the_grid_oldest_first() {
        let mut queue = TickQueue::with_backlog(
            1_000_000_000_000,
            Duration::from_secs(10),
            Duration::from_secs(86_400),
        );
        assert_eq!(queue.backlog_ticks(), 8640);
        assert_eq!(queue.pop(), Some(1_000_000_000_000 - 86_400_000));
        assert_eq!(queue.pop(), Some(1_000_000_000_000 - 86_390_000));
        assert_eq!(queue.len(), 8638);
    }

    #[test]
    fn offsets_spread_the_fleet_across_the_interval() {
        let spread = Duration::from_secs(10);
        let mut per_second = [0usize; 10];
        for index in 0..1000 {
            let offset = start_offset(index, spread);
            assert!(offset < spread);
            per_second[offset.as_secs() as usize] += 1;
        }
        // Evenly: every second of the interval gets about a tenth of the fleet.
        assert!(
            per_second.iter().all(|&n| (90..=110).contains(&n)),
            "{per_second:?}"
        );
    }

    #[test]
    fn grid_floor_lands_on_multiples_of_the_interval() {
        assert_eq!(grid_floor(12_345, Duration::from_secs(10)), 10_000);
        assert_eq!(grid_floor(20_000, Duration::from_secs(10)), 20_000);
    }
}
