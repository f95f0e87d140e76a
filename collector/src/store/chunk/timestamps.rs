//! How a chunk's timestamps are coded. Agents tick on a fixed grid, so most chunks are
//! **regular**: one interval between every pair of samples, which the header holds, and the
//! timestamps cost nothing more. Otherwise they are **coded**: the header holds the span
//! from first to last and a reference interval (the most common one), and each timestamp's
//! difference from its prediction goes to a `ResidualModel` — a sample on the grid costs a
//! few hundredths of a bit, a gap after a reboot or jitter costs what it says. Either way
//! the header alone gives the last timestamp.
//!
//! Two predictions, the smaller result kept (its choice is a header byte):
//! - **previous**: the previous timestamp plus the reference interval. Unlike Gorilla's
//!   delta of delta, a gap costs one outlier, not two.
//! - **grid**: the previous *predicted* timestamp plus the reference interval, so jitter
//!   around a grid costs one jitter per sample instead of the difference of two (half a bit
//!   less at any jitter). After a residual of half an interval or more (a gap, a skipped
//!   tick) the grid restarts at the timestamp seen.
//!
//! Intervals are computed as `u64` with wrapping arithmetic: between strictly increasing
//! `i64` timestamps every interval is in 1..2^64, even from `i64::MIN` to `i64::MAX`.

use super::range_coder::{RangeDecoder, RangeEncoder};
use super::residuals::ResidualModel;
use super::{varint, Corrupt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPlan {
    /// Every interval is `interval` (0 in a chunk of one sample).
    Regular { interval: u64 },
    Coded {
        reference_interval: u64,
        anchoring: Anchoring,
    },
}

/// What a coded timestamp is predicted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchoring {
    Previous,
    Grid,
}

impl Anchoring {
    fn code(self) -> u8 {
        match self {
            Anchoring::Previous => 0,
            Anchoring::Grid => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Anchoring::Previous),
            1 => Some(Anchoring::Grid),
            _ => None,
        }
    }
}

fn interval(earlier_ms: i64, later_ms: i64) -> u64 {
    later_ms.wrapping_sub(earlier_ms) as u64
}

/// The most common of `intervals` (not empty), the smallest on a tie.
fn most_common(intervals: &[u64]) -> u64 {
    let mut sorted = intervals.to_vec();
    sorted.sort_unstable();
    let mut most_common = sorted[0];
    let mut best_count = 0;
    for run in sorted.chunk_by(|a, b| a == b) {
        if run.len() > best_count {
            best_count = run.len();
            most_common = run[0];
        }
    }
    most_common
}

/// The period of the grid that jittered timestamps sit on: the mean of the intervals within
/// half of `typical` from it, which leaves out gaps. Jitter makes the most common interval
/// a millisecond or so off at random, and a grid predicted with that period would drift
/// away from the timestamps by that much every sample; the mean is off by at most twice the
/// jitter over the whole run.
fn grid_period(intervals: &[u64], typical: u64) -> u64 {
    let (sum, count) = intervals
        .iter()
        .filter(|&&interval| interval.abs_diff(typical) <= typical / 2)
        .fold((0u128, 0u128), |(sum, count), &interval| {
            (sum + u128::from(interval), count + 1)
        });
    // `typical` itself is among them, so count >= 1; the mean of u64s fits a u64.
    ((sum + count / 2) / count) as u64
}

/// The prediction of each coded timestamp, shared by encoder and decoder.
#[derive(Debug, Clone, Copy)]
struct Predictor {
    reference_interval: u64,
    anchoring: Anchoring,
    /// The timestamp the next one is predicted from.
    anchor: i64,
}

impl Predictor {
    fn next(&self) -> i64 {
        self.anchor.wrapping_add(self.reference_interval as i64)
    }

    fn observe(&mut self, predicted: i64, timestamp: i64) {
        self.anchor = match self.anchoring {
            Anchoring::Previous => timestamp,
            Anchoring::Grid => {
                let off_by = timestamp.wrapping_sub(predicted).unsigned_abs();
                if off_by < self.reference_interval / 2 {
                    predicted
                } else {
                    timestamp
                }
            }
        };
    }
}

impl TimestampPlan {
    /// Picks the plan for strictly increasing `timestamps`.
    pub fn new(timestamps: &[i64]) -> Self {
        let intervals: Vec<u64> = timestamps
            .windows(2)
            .map(|pair| interval(pair[0], pair[1]))
            .collect();
        if intervals.windows(2).all(|pair| pair[0] == pair[1]) {
            return TimestampPlan::Regular {
                interval: intervals.first().copied().unwrap_or(0),
            };
        }
        let typical = most_common(&intervals);
        let previous = TimestampPlan::Coded {
            reference_interval: typical,
            anchoring: Anchoring::Previous,
        };
        let grid = TimestampPlan::Coded {
            reference_interval: grid_period(&intervals, typical),
            anchoring: Anchoring::Grid,
        };
        let n_bytes = |plan: TimestampPlan| {
            let mut encoder = RangeEncoder::new(Vec::new());
            plan.encode(timestamps, &mut encoder);
            encoder.finish().len()
        };
        if n_bytes(grid) < n_bytes(previous) {
            grid
        } else {
            previous
        }
    }

    /// The header fields after the first timestamp: enough to know the last one.
    pub fn write_header(&self, timestamps: &[i64], out: &mut Vec<u8>) {
        match *self {
            TimestampPlan::Regular { interval } => {
                if timestamps.len() >= 2 {
                    varint::write_u64(out, interval);
                }
            }
            TimestampPlan::Coded {
                reference_interval,
                anchoring,
            } => {
                let span = interval(timestamps[0], timestamps[timestamps.len() - 1]);
                varint::write_u64(out, span);
                varint::write_u64(out, reference_interval);
                out.push(anchoring.code());
            }
        }
    }

    /// Reads what [`TimestampPlan::write_header`] wrote; gives the plan and the last
    /// timestamp, checked to fit n strictly increasing timestamps from `first_ms`.
    pub fn read_header(
        coded: bool,
        n_samples: usize,
        first_ms: i64,
        reader: &mut varint::Reader<'_>,
    ) -> Result<(Self, i64), Corrupt> {
        let n_intervals = (n_samples - 1) as u64;
        let (plan, span) = if coded {
            if n_samples < 3 {
                return Err(Corrupt(
                    "coded timestamps in a chunk of fewer than 3 samples",
                ));
            }
            let span = reader.u64()?;
            if span < n_intervals {
                return Err(Corrupt("span too short for strictly increasing timestamps"));
            }
            let reference_interval = reader.u64()?;
            let anchoring =
                Anchoring::from_code(reader.byte()?).ok_or(Corrupt("unknown anchoring"))?;
            let plan = TimestampPlan::Coded {
                reference_interval,
                anchoring,
            };
            (plan, u128::from(span))
        } else if n_samples == 1 {
            (TimestampPlan::Regular { interval: 0 }, 0)
        } else {
            let interval = reader.u64()?;
            if interval == 0 {
                return Err(Corrupt("regular timestamps with an interval of 0"));
            }
            let span = u128::from(interval) * u128::from(n_intervals);
            (TimestampPlan::Regular { interval }, span)
        };
        let last_ms = i64::try_from(i128::from(first_ms) + span as i128)
            .map_err(|_| Corrupt("last timestamp beyond the i64 range"))?;
        Ok((plan, last_ms))
    }

    pub fn encode(&self, timestamps: &[i64], encoder: &mut RangeEncoder) {
        let TimestampPlan::Coded {
            reference_interval,
            anchoring,
        } = *self
        else {
            return;
        };
        let mut model = ResidualModel::default();
        let mut predictor = Predictor {
            reference_interval,
            anchoring,
            anchor: timestamps[0],
        };
        // The last timestamp is in the header.
        let n_coded = timestamps.len().saturating_sub(2);
        for &timestamp in &timestamps[1..=n_coded] {
            let predicted = predictor.next();
            model.encode(encoder, timestamp.wrapping_sub(predicted));
            predictor.observe(predicted, timestamp);
        }
    }

    /// Fills `timestamps` (at least one) from the first to the last, both known from the
    /// header (see [`TimestampPlan::read_header`]), checking that they strictly increase.
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
            (TimestampPlan::Regular { interval }, _) => {
                // The header checked that first + interval·(n − 1) fits.
                for index in 1..n {
                    timestamps[index] = timestamps[index - 1].wrapping_add(interval as i64);
                }
            }
            (
                TimestampPlan::Coded {
                    reference_interval,
                    anchoring,
                },
                Some(decoder),
            ) => {
                let mut model = ResidualModel::default();
                let mut predictor = Predictor {
                    reference_interval,
                    anchoring,
                    anchor: first_ms,
                };
                for index in 1..n - 1 {
                    let predicted = predictor.next();
                    let timestamp = predicted.wrapping_add(model.decode(decoder));
                    if timestamp <= timestamps[index - 1] || timestamp >= last_ms {
                        return Err(Corrupt("timestamps do not increase"));
                    }
                    predictor.observe(predicted, timestamp);
                    timestamps[index] = timestamp;
                    if decoder.has_failed() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_period_leaves_out_gaps_and_averages_out_jitter() {
        // Around a 10 s grid with up to ±5 ms of jitter, a gap of 70 s and a skipped tick;
        // the most common interval is 10 001.
        let intervals = [10_001, 9_999, 10_001, 70_004, 10_001, 9_995, 20_003, 9_996];
        assert_eq!(most_common(&intervals), 10_001);
        assert_eq!(grid_period(&intervals, 10_001), 9_999);
        let intervals = [10_001, 9_999, 10_001, 9_999, 10_001, 9_999];
        assert_eq!(grid_period(&intervals, 10_001), 10_000);
    }

    #[test]
    fn jitter_around_a_grid_is_coded_against_the_grid() {
        let mut state = 7u64;
        let timestamps: Vec<i64> = (0..300)
            .map(|index| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let jitter = (state >> 60) as i64 - 8;
                1_000_000 + index * 10_000 + jitter
            })
            .collect();
        assert_eq!(
            TimestampPlan::new(&timestamps),
            TimestampPlan::Coded {
                reference_interval: 10_000,
                anchoring: Anchoring::Grid
            }
        );
    }

    #[test]
    fn a_grid_with_a_gap_is_coded_against_the_previous_timestamp() {
        let mut timestamps: Vec<i64> = (0..100).map(|index| index * 10_000).collect();
        for timestamp in &mut timestamps[60..] {
            *timestamp += 73_000;
        }
        assert_eq!(
            TimestampPlan::new(&timestamps),
            TimestampPlan::Coded {
                reference_interval: 10_000,
                anchoring: Anchoring::Previous
            }
        );
    }
}
