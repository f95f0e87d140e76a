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

/// One agent's place on the grid: when it first sends, and the grid time of each tick.
///
/// Send times come from tokio's clock and timestamps from the grid, counted in whole
/// intervals since the first tick, so that a timer firing a millisecond early or late
/// never stamps two batches with the same time.
#[derive(Debug, Clone, Copy)]
pub struct AgentClock {
    pub first_send: tokio::time::Instant,
    pub first_grid_ms: i64,
}

impl AgentClock {
    /// The clock of an agent sending `offset` after each grid time, starting after `started`.
    pub fn new(started: tokio::time::Instant, offset: Duration, interval: Duration) -> Self {
        let offset_ms = offset.as_millis() as i64;
        let interval_ms = (interval.as_millis() as i64).max(1);
        let now = now_ms();
        let elapsed_since_started = started.elapsed();
        let started_ms = now - elapsed_since_started.as_millis() as i64;
        let mut first_grid_ms = grid_floor(started_ms - offset_ms, interval);
        if first_grid_ms + offset_ms < started_ms {
            first_grid_ms += interval_ms;
        }
        let first_send =
            started + Duration::from_millis((first_grid_ms + offset_ms - started_ms).max(0) as u64);
        Self {
            first_send,
            first_grid_ms,
        }
    }

    /// When the tick of grid time `timestamp_ms` is due to be sent.
    pub fn send_time(&self, timestamp_ms: i64) -> tokio::time::Instant {
        let after_first = (timestamp_ms - self.first_grid_ms).max(0) as u64;
        self.first_send + Duration::from_millis(after_first)
    }
}

/// The timestamps one agent still has to send, oldest first.
#[derive(Debug)]
pub struct TickQueue {
    interval_ms: i64,
    waiting: VecDeque<i64>,
    backlog: u64,
    last_ms: Option<i64>,
    /// The grid time of the next live tick to queue.
    next_live_ms: i64,
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
            last_ms: None,
            next_live_ms: first_live_ms,
        }
    }

    /// How many ticks of backlog the queue started with.
    pub fn backlog_ticks(&self) -> u64 {
        self.backlog
    }

    /// Adds a live tick; a timestamp not after the last one queued is dropped.
    pub fn push_live(&mut self, timestamp_ms: i64) {
        if self.last_ms.is_none_or(|last| timestamp_ms > last) {
            self.waiting.push_back(timestamp_ms);
            self.last_ms = Some(timestamp_ms);
        }
    }

    /// Queues every live tick due by `now` whose send time is before `live_until`: ticks
    /// come from the clock, not from a timer the agent has to be polling, so an agent that
    /// was busy reconnecting or waiting on a slow receiver loses none, as a spool would not.
    pub fn catch_up(
        &mut self,
        clock: &AgentClock,
        now: tokio::time::Instant,
        live_until: tokio::time::Instant,
    ) {
        // Bounded: each pass moves the next tick one interval later.
        while clock.send_time(self.next_live_ms) <= now
            && clock.send_time(self.next_live_ms) < live_until
        {
            self.push_live(self.next_live_ms);
            self.next_live_ms += self.interval_ms;
        }
    }

    /// When the next live tick is due.
    pub fn next_live_send(&self, clock: &AgentClock) -> tokio::time::Instant {
        clock.send_time(self.next_live_ms)
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
    fn a_grid_time_is_queued_once() {
        let interval = Duration::from_secs(10);
        let mut queue = TickQueue::with_backlog(20_000, interval, Duration::ZERO);
        queue.push_live(20_000);
        queue.push_live(20_000);
        queue.push_live(10_000);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_due_while_the_agent_was_busy_are_all_queued_and_none_after_the_live_part() {
        let interval = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let clock = AgentClock::new(started, Duration::ZERO, interval);
        let mut queue = TickQueue::with_backlog(clock.first_grid_ms, interval, Duration::ZERO);
        let live_until = clock.first_send + Duration::from_secs(35);
        assert_eq!(clock.first_grid_ms % 10_000, 0);
        queue.catch_up(
            &clock,
            clock.first_send + Duration::from_secs(25),
            live_until,
        );
        assert_eq!(queue.len(), 3);
        queue.catch_up(
            &clock,
            clock.first_send + Duration::from_secs(100),
            live_until,
        );
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.pop(), Some(clock.first_grid_ms));
    }

    #[test]
    fn grid_floor_lands_on_multiples_of_the_interval() {
        assert_eq!(grid_floor(12_345, Duration::from_secs(10)), 10_000);
        assert_eq!(grid_floor(20_000, Duration::from_secs(10)), 20_000);
    }
}
