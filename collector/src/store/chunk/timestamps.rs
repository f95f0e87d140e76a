//! How a chunk's timestamps are coded. Agents tick on a fixed grid, so most chunks are
//! **regular**: one interval between every pair of samples, which the header already implies
//! (the span from first to last over n − 1), and the timestamps cost nothing at all.
//! Otherwise they are **coded**: the header names a reference interval (the most common
//! one) and each interval's difference from it goes to a `ResidualModel` — a sample on the
//! grid costs a few hundredths of a bit, a gap after a reboot or jitter costs what it says.
//!
//! Differences from the reference rather than Gorilla's delta of delta: jitter around a grid
//! then costs one difference per sample instead of two, and a gap costs one outlier, not two.
//!
//! Intervals are computed as `u64` with wrapping arithmetic: between strictly increasing
//! `i64` timestamps every interval is in 1..2^64, even from `i64::MIN` to `i64::MAX`.

use super::range_coder::{RangeDecoder, RangeEncoder};
use super::residuals::ResidualModel;
use super::Corrupt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPlan {
    Regular,
    Coded { reference_interval: u64 },
}

fn interval(earlier_ms: i64, later_ms: i64) -> u64 {
    later_ms.wrapping_sub(earlier_ms) as u64
}

impl TimestampPlan {
    /// Picks the plan for strictly increasing `timestamps`.
    pub fn new(timestamps: &[i64]) -> Self {
        let mut intervals: Vec<u64> = timestamps
            .windows(2)
            .map(|pair| interval(pair[0], pair[1]))
            .collect();
        if intervals.windows(2).all(|pair| pair[0] == pair[1]) {
            return TimestampPlan::Regular;
        }
        intervals.sort_unstable();
        let mut reference_interval = intervals[0];
        let mut best_count = 0;
        for run in intervals.chunk_by(|a, b| a == b) {
            if run.len() > best_count {
                best_count = run.len();
                reference_interval = run[0];
            }
        }
        TimestampPlan::Coded { reference_interval }
    }

    pub fn encode(&self, timestamps: &[i64], encoder: &mut RangeEncoder) {
        let TimestampPlan::Coded { reference_interval } = *self else {
            return;
        };
        let mut model = ResidualModel::default();
        // The last interval follows from the header's last timestamp.
        let n_coded = timestamps.len().saturating_sub(2);
        for pair in timestamps.windows(2).take(n_coded) {
            let residual = interval(pair[0], pair[1]).wrapping_sub(reference_interval);
            model.encode(encoder, residual as i64);
        }
    }

    /// Fills `timestamps` (at least one) from the first to the last, both known from the
    /// header, checking that they strictly increase.
    pub fn decode(
        &self,
        decoder: Option<&mut RangeDecoder<'_>>,
        first_ms: i64,
        last_ms: i64,
        timestamps: &mut [i64],
    ) -> Result<(), Corrupt> {
        let n = timestamps.len();
        timestamps[0] = first_ms;
        match (*self, decoder) {
            (TimestampPlan::Regular, _) => {
                if n == 1 {
                    return Ok(());
                }
                let span = interval(first_ms, last_ms);
                let n_intervals = (n - 1) as u64;
                if !span.is_multiple_of(n_intervals) {
                    return Err(Corrupt("span is not a whole number of intervals"));
                }
                let step = span / n_intervals;
                for index in 1..n {
                    timestamps[index] = timestamps[index - 1].wrapping_add(step as i64);
                }
            }
            (TimestampPlan::Coded { reference_interval }, Some(decoder)) => {
                let mut model = ResidualModel::default();
                for index in 1..n - 1 {
                    let residual = model.decode(decoder);
                    let step = reference_interval.wrapping_add(residual as u64);
                    let timestamp = timestamps[index - 1].wrapping_add(step as i64);
                    if timestamp <= timestamps[index - 1] || timestamp >= last_ms {
                        return Err(Corrupt("timestamps do not increase"));
                    }
                    timestamps[index] = timestamp;
                    if decoder.ran_past_end() {
                        return Err(Corrupt("timestamps run past the end"));
                    }
                }
                timestamps[n - 1] = last_ms;
            }
            (TimestampPlan::Coded { .. }, None) => {
                return Err(Corrupt("coded timestamps without a payload"))
            }
        }
        Ok(())
    }
}
