//! Five-minute rollups: min, max, sum and count of a series' samples per aligned five-minute
//! bucket, kept much longer than raw samples and read by range queries with a step of five
//! minutes or more. A series' rollups for one UTC day and origin are one block, made from
//! that day's chunks once the day is complete ([`super::sealed`] decides when and where it
//! goes); this file computes buckets and encodes blocks.
//!
//! Block: version (1) ‖ for min, max and sum: length (LEB128) ‖ chunk ‖ then the count chunk
//! to the end. Each chunk ([`super::chunk`]) has the bucket starts as timestamps, so the
//! codec's regular-timestamp and whole-number paths do the compressing.

use super::varint::{put_varint, take_varint};
use vigil_proto::model::Sample;

use super::chunk::{self, ChunkError};

/// Width of a rollup bucket.
pub const BUCKET_MS: i64 = 5 * 60 * 1000;
const BLOCK_VERSION: u8 = 1;

/// Start of the span of `width_ms` (a bucket, a step) holding `timestamp_ms`.
pub(super) fn align(timestamp_ms: i64, width_ms: i64) -> i64 {
    timestamp_ms
        .checked_sub(timestamp_ms.rem_euclid(width_ms))
        .unwrap_or(i64::MIN)
}

/// The samples of a span of time reduced to four numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    /// Smallest value; NaN only when every value was NaN.
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
}

impl Aggregate {
    pub fn of(value: f64) -> Self {
        Self {
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    pub fn add(&mut self, other: &Aggregate) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Buckets of `samples` (sorted by time), in time order.
pub(super) fn bucketize(samples: &[Sample]) -> Vec<(i64, Aggregate)> {
    let mut buckets: Vec<(i64, Aggregate)> = Vec::new();
    for sample in samples {
        let start = align(sample.timestamp_ms, BUCKET_MS);
        match buckets.last_mut() {
            Some((last_start, aggregate)) if *last_start == start => {
                aggregate.add(&Aggregate::of(sample.value))
            }
            _ => buckets.push((start, Aggregate::of(sample.value))),
        }
    }
    buckets
}

/// Encodes buckets (sorted by start, one per start) as a block.
pub(super) fn encode_block(buckets: &[(i64, Aggregate)]) -> Result<Vec<u8>, ChunkError> {
    let column = |value: fn(&Aggregate) -> f64| -> Result<Vec<u8>, ChunkError> {
        let samples: Vec<Sample> = buckets
            .iter()
            .map(|(start, aggregate)| Sample {
                timestamp_ms: *start,
                value: value(aggregate),
            })
            .collect();
        chunk::encode(&samples)
    };
    let mut out = vec![BLOCK_VERSION];
    for value in [
        (|a: &Aggregate| a.min) as fn(&Aggregate) -> f64,
        |a| a.max,
        |a| a.sum,
    ] {
        let encoded = column(value)?;
        put_varint(&mut out, encoded.len() as u64);
        out.extend_from_slice(&encoded);
    }
    out.extend_from_slice(&column(|a| a.count as f64)?);
    Ok(out)
}

/// Why a block did not decode.
#[derive(Debug, thiserror::Error)]
pub(super) enum BlockError {
    #[error("rollup block framing is damaged")]
    Framing,
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

pub(super) fn decode_block(bytes: &[u8]) -> Result<Vec<(i64, Aggregate)>, BlockError> {
    let (&version, mut rest) = bytes.split_first().ok_or(BlockError::Framing)?;
    if version != BLOCK_VERSION {
        return Err(BlockError::Framing);
    }
    let mut columns = Vec::with_capacity(4);
    for _ in 0..3 {
        let length = usize::try_from(take_varint(&mut rest).ok_or(BlockError::Framing)?)
            .map_err(|_| BlockError::Framing)?;
        if rest.len() < length {
            return Err(BlockError::Framing);
        }
        let (column, after) = rest.split_at(length);
        columns.push(chunk::decode(column)?);
        rest = after;
    }
    columns.push(chunk::decode(rest)?);
    let n = columns[0].len();
    if columns.iter().any(|column| column.len() != n) {
        return Err(BlockError::Framing);
    }
    Ok((0..n)
        .map(|i| {
            (
                columns[0][i].timestamp_ms,
                Aggregate {
                    min: columns[0][i].value,
                    max: columns[1][i].value,
                    sum: columns[2][i].value,
                    count: columns[3][i].value as u64,
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_min_max_sum_and_count_of_their_five_minutes() {
        let samples: Vec<Sample> = (0..60)
            .map(|i| Sample {
                timestamp_ms: i * 10_000,
                value: i as f64,
            })
            .collect();
        let buckets = bucketize(&samples);
        assert_eq!(buckets.len(), 2);
        assert_eq!(
            buckets[0],
            (
                0,
                Aggregate {
                    min: 0.0,
                    max: 29.0,
                    sum: (0..30).sum::<i64>() as f64,
                    count: 30
                }
            )
        );
        assert_eq!(buckets[1].0, BUCKET_MS);
        assert_eq!(buckets[1].1.avg(), 44.5);
    }

    #[test]
    fn blocks_round_trip() {
        let buckets: Vec<(i64, Aggregate)> = (0..288)
            .map(|i| {
                (
                    i * BUCKET_MS,
                    Aggregate {
                        min: i as f64 * 0.5,
                        max: i as f64 * 0.75 + 1.0,
                        sum: i as f64 * 30.0,
                        count: 30,
                    },
                )
            })
            .collect();
        let block = encode_block(&buckets).unwrap();
        assert_eq!(decode_block(&block).unwrap(), buckets);
        assert!(decode_block(&block[..block.len() / 2]).is_err());
        assert!(decode_block(&[]).is_err());
    }
}
