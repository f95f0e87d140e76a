//! Compressed chunks: the bytes a run of one series' samples is sealed into. [`encode`] takes
//! samples with strictly increasing timestamps, [`decode`] gives them back bit for bit —
//! NaN payloads and Prometheus' stale marker, ±Inf and −0.0 included — and [`summary`] reads
//! the count and time range from the header alone. The store engine decides what goes into a
//! chunk and where it lives; this module knows nothing of series, keys or sled.
//!
//! The format descends from Gorilla's (Prometheus' XOR chunks, kept in [`gorilla`] as the
//! baseline) and is smaller by using what monitoring data is: timestamps on a grid cost
//! nothing (`timestamps`), and values that are integers, decimals or tick ratios are coded
//! as integers over one denominator (`fractions`, `values`), XOR being the fallback.
//! Everything after the header is one range-coded stream whose models adapt as they go
//! (`range_coder`, `residuals`). The encoder codes each plan that fits the samples and keeps
//! the smallest; the decoder follows what the header says.
//!
//! # Layout
//!
//! ```text
//! byte 0    format version (high 4 bits, now 1) | timestamps coded (bit 3) | value mode (bits 0-2:
//!           0 constant, 1 xor, 2-5 fraction by delta / delta of delta, without / with exceptions)
//! varint    number of samples, 1..=MAX_SAMPLES
//! varint    first timestamp (zigzag)
//! varint    regular timestamps: the interval (absent for a single sample);
//!           coded timestamps: last minus first timestamp, the reference interval, then one
//!           byte for what timestamps are predicted from (0 the previous one, 1 the grid)
//! varint    constant and xor: the first value's bits, byte-swapped (round numbers are short);
//!           fraction: denominator, step, remainder, first k (zigzag)
//! ...       range-coded payload: timestamp residuals (when coded), then values;
//!           absent when timestamps are regular and the value constant
//! ```
//!
//! Decoding checks that the payload ends exactly where the encoder ended it, so truncated
//! or extended chunks are refused; flipped bits usually are too, but the format has no
//! checksum of its own — integrity on disk is the store's concern.

pub mod gorilla;

mod fractions;
mod range_coder;
mod residuals;
mod timestamps;
mod values;
mod varint;
mod xor;

#[cfg(test)]
mod tests;

use range_coder::{RangeDecoder, RangeEncoder};
use timestamps::TimestampPlan;
use values::{OverBudget, ValueHeader, ValueMode, ValuePlan};
use vigil_proto::model::Sample;

/// The format version this code writes and reads.
const FORMAT_VERSION: u8 = 1;
const TIMESTAMPS_CODED: u8 = 1 << 3;
const VALUE_MODE_MASK: u8 = 0b111;

/// Most samples one chunk may hold. Chunks are meant for hours of one series (720 samples
/// is two hours at 10 s); the bound keeps a corrupt header from asking for gigabytes.
pub const MAX_SAMPLES: usize = 1 << 20;

/// What [`summary`] reads from a chunk's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSummary {
    pub n_samples: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Why samples do not become a chunk, or bytes do not become samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// [`encode`] got no samples.
    #[error("no samples to encode; a chunk holds at least one")]
    Empty,
    /// [`encode`] got more than [`MAX_SAMPLES`].
    #[error("{n_samples} samples do not fit in one chunk (at most {max}); split them")]
    TooManySamples { n_samples: usize, max: usize },
    /// Sample `index` (of the slice given to [`encode`]) is not after the one before it.
    #[error(
        "sample {index} at {timestamp_ms} ms does not come after the one before it at \
         {previous_ms} ms; a chunk needs strictly increasing timestamps"
    )]
    OutOfOrder {
        index: usize,
        previous_ms: i64,
        timestamp_ms: i64,
    },
    /// The chunk's first byte names a format version this code does not read.
    #[error(
        "chunk format version {version} is unknown to this collector (it reads version \
         {FORMAT_VERSION}); was it written by a newer one?"
    )]
    UnknownVersion { version: u8 },
    /// The bytes are not a chunk as [`encode`] writes them: cut short, extended or damaged.
    #[error("corrupt chunk of {n_bytes} bytes: {reason}")]
    Corrupt {
        n_bytes: usize,
        reason: &'static str,
    },
}

/// Why a chunk does not decode; becomes [`ChunkError::Corrupt`] with the chunk's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Corrupt(&'static str);

/// Compresses samples with strictly increasing timestamps into one chunk, losslessly: of
/// the ways to code them that fit, the smallest. Refuses an empty slice, more than
/// [`MAX_SAMPLES`], and the first sample whose timestamp is not after the one before.
pub fn encode(samples: &[Sample]) -> Result<Vec<u8>, ChunkError> {
    if samples.is_empty() {
        return Err(ChunkError::Empty);
    }
    if samples.len() > MAX_SAMPLES {
        return Err(ChunkError::TooManySamples {
            n_samples: samples.len(),
            max: MAX_SAMPLES,
        });
    }
    for (index, pair) in samples.windows(2).enumerate() {
        if pair[1].timestamp_ms <= pair[0].timestamp_ms {
            return Err(ChunkError::OutOfOrder {
                index: index + 1,
                previous_ms: pair[0].timestamp_ms,
                timestamp_ms: pair[1].timestamp_ms,
            });
        }
    }
    let timestamps: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let timestamp_plan = TimestampPlan::new(&timestamps);
    let mut smallest: Option<Vec<u8>> = None;
    for value_plan in values::candidates(&values) {
        let budget = smallest.as_ref().map_or(usize::MAX, Vec::len);
        if !value_plan.may_fit(&values, budget) {
            continue;
        }
        if let Ok(chunk) = write_chunk(&timestamps, &values, timestamp_plan, &value_plan, budget) {
            if chunk.len() < budget {
                smallest = Some(chunk);
            }
        }
    }
    Ok(smallest.expect("the first plan has no budget to exceed"))
}

fn write_chunk(
    timestamps: &[i64],
    values: &[f64],
    timestamp_plan: TimestampPlan,
    value_plan: &ValuePlan,
    budget: usize,
) -> Result<Vec<u8>, OverBudget> {
    let mut out = Vec::with_capacity(32 + timestamps.len());
    let coded_flag = match timestamp_plan {
        TimestampPlan::Regular { .. } => 0,
        TimestampPlan::Coded { .. } => TIMESTAMPS_CODED,
    };
    out.push(FORMAT_VERSION << 4 | coded_flag | value_plan.mode().code());
    varint::write_u64(&mut out, timestamps.len() as u64);
    varint::write_i64(&mut out, timestamps[0]);
    timestamp_plan.write_header(timestamps, &mut out);
    value_plan.write_header(values, &mut out);
    if coded_flag == 0 && !value_plan.has_payload() {
        return Ok(out);
    }
    let mut encoder = RangeEncoder::new(out);
    timestamp_plan.encode(timestamps, &mut encoder);
    value_plan.encode(values, &mut encoder, budget)?;
    Ok(encoder.finish())
}

/// Decodes a chunk. Never panics, whatever the bytes: what does not decode is
/// [`ChunkError::Corrupt`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let header = Header::read(bytes)?;
    decode_samples(&header).map_err(|corrupt| corrupt.error(bytes))
}

/// Reads the sample count and the first and last timestamps from the header, without
/// decoding the samples.
pub fn summary(bytes: &[u8]) -> Result<ChunkSummary, ChunkError> {
    let header = Header::read(bytes)?;
    Ok(ChunkSummary {
        n_samples: header.n_samples as u32,
        first_ms: header.first_ms,
        last_ms: header.last_ms,
    })
}

impl Corrupt {
    fn error(self, chunk: &[u8]) -> ChunkError {
        ChunkError::Corrupt {
            n_bytes: chunk.len(),
            reason: self.0,
        }
    }
}

fn decode_samples(header: &Header<'_>) -> Result<Vec<Sample>, Corrupt> {
    let n = header.n_samples;
    let mut decoder = (matches!(header.timestamp_plan, TimestampPlan::Coded { .. })
        || header.values.has_payload())
    .then(|| RangeDecoder::new(header.payload));
    if decoder.is_none() && !header.payload.is_empty() {
        return Err(Corrupt("bytes after the header of a chunk without payload"));
    }
    let mut timestamps = vec![0i64; n];
    header.timestamp_plan.decode(
        decoder.as_mut(),
        header.first_ms,
        header.last_ms,
        &mut timestamps,
    )?;
    let mut values = vec![0f64; n];
    match decoder.as_mut() {
        Some(decoder) => header.values.decode(decoder, &mut values)?,
        None => match header.values {
            ValueHeader::Constant { value } => values.fill(value),
            _ => return Err(Corrupt("value mode needs a payload")),
        },
    }
    if let Some(decoder) = decoder {
        if !decoder.finished_cleanly() {
            return Err(Corrupt("payload does not end where its samples do"));
        }
    }
    Ok(timestamps
        .into_iter()
        .zip(values)
        .map(|(timestamp_ms, value)| Sample {
            timestamp_ms,
            value,
        })
        .collect())
}

/// A chunk's header, read and checked.
#[derive(Debug)]
struct Header<'a> {
    n_samples: usize,
    first_ms: i64,
    last_ms: i64,
    timestamp_plan: TimestampPlan,
    values: ValueHeader,
    payload: &'a [u8],
}

impl<'a> Header<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        let version = bytes.first().map_or(FORMAT_VERSION, |tag| tag >> 4);
        if version != FORMAT_VERSION {
            return Err(ChunkError::UnknownVersion { version });
        }
        Self::read_fields(bytes).map_err(|corrupt| corrupt.error(bytes))
    }

    fn read_fields(bytes: &'a [u8]) -> Result<Self, Corrupt> {
        let mut reader = varint::Reader::new(bytes);
        let tag = reader.byte()?;
        let value_mode =
            ValueMode::from_code(tag & VALUE_MODE_MASK).ok_or(Corrupt("unknown value mode"))?;
        let n_samples = reader.u64()?;
        if n_samples == 0 || n_samples > MAX_SAMPLES as u64 {
            return Err(Corrupt("sample count out of range"));
        }
        let n_samples = n_samples as usize;
        let first_ms = reader.i64()?;
        let (timestamp_plan, last_ms) = TimestampPlan::read_header(
            tag & TIMESTAMPS_CODED != 0,
            n_samples,
            first_ms,
            &mut reader,
        )?;
        let values = ValueHeader::read(value_mode, &mut reader)?;
        Ok(Header {
            n_samples,
            first_ms,
            last_ms,
            timestamp_plan,
            values,
            payload: reader.rest(),
        })
    }
}
