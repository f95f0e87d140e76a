//! Bounded, downsampled history of one signal: 10-minute buckets for the last day and hourly
//! buckets for the last two weeks, each holding min, max, sum and count. Enough for trends
//! over hours and days at a fixed few kilobytes per series, whatever the sample rate.
//!
//! Samples may arrive late or out of order (an agent's spool after an outage): they land in
//! their bucket while it is still kept, and are dropped once it has been forgotten.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Aggregate of the samples in one time bucket. Values are stored as `f32`: the signals kept
/// here are fractions and temperatures, for which seven digits are plenty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub min: f32,
    pub max: f32,
    pub sum: f32,
    pub count: u32,
}

impl Bucket {
    fn add(&mut self, value: f64) {
        let value = value as f32;
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.sum += value;
        self.count += 1;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// Consecutive buckets of `width_ms`, the newest last, at most `capacity` of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    width_ms: i64,
    capacity: usize,
    /// Bucket number (timestamp / width) of the first bucket kept.
    first_number: i64,
    buckets: VecDeque<Bucket>,
}

impl Tier {
    pub fn new(width_ms: i64, capacity: usize) -> Self {
        Self {
            width_ms,
            capacity,
            first_number: 0,
            buckets: VecDeque::new(),
        }
    }

    pub fn width_ms(&self) -> i64 {
        self.width_ms
    }

    pub fn add(&mut self, timestamp_ms: i64, value: f64) {
        let number = timestamp_ms.div_euclid(self.width_ms);
        if self.buckets.is_empty() {
            self.first_number = number;
            self.buckets.push_back(Bucket::default());
        } else if number < self.first_number {
            return;
        }
        let end = self.first_number + self.buckets.len() as i64;
        if number >= end {
            if number - end >= self.capacity as i64 {
                self.buckets.clear();
                self.first_number = number;
                self.buckets.push_back(Bucket::default());
            } else {
                for _ in end..=number {
                    self.buckets.push_back(Bucket::default());
                }
            }
            while self.buckets.len() > self.capacity {
                self.buckets.pop_front();
                self.first_number += 1;
            }
        }
        let index = (number - self.first_number) as usize;
        self.buckets[index].add(value);
    }

    /// Non-empty buckets that start in `[from_ms, to_ms)` and have ended by `to_ms`, oldest
    /// first, with their start times.
    pub fn complete_in(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = (i64, &Bucket)> {
        let width = self.width_ms;
        let first = self.first_number;
        let from_number = from_ms.div_euclid(width).max(first);
        // A bucket is complete once its end is at or before `to_ms`.
        let to_number = (to_ms.div_euclid(width) - 1).min(first + self.buckets.len() as i64 - 1);
        (from_number..=to_number).filter_map(move |number| {
            let start = number * width;
            let bucket = &self.buckets[(number - first) as usize];
            (start >= from_ms && bucket.count > 0).then_some((start, bucket))
        })
    }
}

/// The two tiers of one signal, and when it was first and last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub fine: Tier,
    pub coarse: Tier,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

pub const FINE_WIDTH_MS: i64 = 10 * 60_000;
pub const COARSE_WIDTH_MS: i64 = 3_600_000;

impl Default for History {
    fn default() -> Self {
        Self {
            fine: Tier::new(FINE_WIDTH_MS, 144),
            coarse: Tier::new(COARSE_WIDTH_MS, 14 * 24),
            first_ms: None,
            last_ms: None,
        }
    }
}

impl History {
    pub fn add(&mut self, timestamp_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.fine.add(timestamp_ms, value);
        self.coarse.add(timestamp_ms, value);
        self.first_ms = Some(self.first_ms.map_or(timestamp_ms, |t| t.min(timestamp_ms)));
        self.last_ms = Some(self.last_ms.map_or(timestamp_ms, |t| t.max(timestamp_ms)));
    }

    /// Milliseconds between the first sample and `now_ms`.
    pub fn span_ms(&self, now_ms: i64) -> i64 {
        self.first_ms.map_or(0, |first| now_ms - first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_keeps_min_max_and_mean() {
        let mut tier = Tier::new(1000, 10);
        for (t, v) in [(0, 3.0), (100, 1.0), (900, 2.0), (1000, 7.0)] {
            tier.add(t, v);
        }
        let complete: Vec<_> = tier.complete_in(0, 2000).collect();
        assert_eq!(complete.len(), 2);
        let (start, first) = complete[0];
        assert_eq!(start, 0);
        assert_eq!((first.min, first.max, first.count), (1.0, 3.0, 3));
        assert_eq!(first.mean(), Some(2.0));
    }

    #[test]
    fn the_bucket_in_progress_is_not_complete() {
        let mut tier = Tier::new(1000, 10);
        tier.add(0, 1.0);
        tier.add(1500, 1.0);
        assert_eq!(tier.complete_in(0, 1500).count(), 1);
        assert_eq!(tier.complete_in(0, 2000).count(), 2);
    }

    #[test]
    fn the_tier_forgets_beyond_its_capacity_and_skips_gaps() {
        let mut tier = Tier::new(1000, 5);
        for second in 0..20 {
            tier.add(second * 1000, second as f64);
        }
        let kept: Vec<i64> = tier
            .complete_in(0, 20_000)
            .map(|(start, _)| start)
            .collect();
        assert_eq!(kept, vec![15_000, 16_000, 17_000, 18_000, 19_000]);
        // A gap longer than the whole tier starts afresh.
        tier.add(100_000, 1.0);
        assert_eq!(tier.complete_in(0, 200_000).count(), 1);
    }

    #[test]
    fn late_samples_land_in_their_bucket_until_it_is_forgotten() {
        let mut tier = Tier::new(1000, 3);
        tier.add(5000, 1.0);
        tier.add(4500, 3.0); // before the first bucket: dropped
        tier.add(7000, 1.0);
        tier.add(5500, 3.0); // late but kept
        let first = tier.complete_in(5000, 6000).next().unwrap().1;
        assert_eq!(first.count, 2);
        assert_eq!(first.mean(), Some(2.0));
    }

    #[test]
    fn history_memory_is_bounded_whatever_the_sample_rate() {
        let mut history = History::default();
        for i in 0..(30 * 8640) {
            history.add(i * 10_000, 0.5);
        }
        assert!(history.fine.buckets.len() <= 144);
        assert!(history.coarse.buckets.len() <= 14 * 24);
    }
}
