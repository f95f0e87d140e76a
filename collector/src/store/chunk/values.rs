//! How a chunk's values are coded. The encoder tries every mode that fits and keeps the one
//! that comes out smallest:
//!
//! - **constant** — every value has the same bits; the value is in the header and the
//!   samples cost nothing.
//! - **fraction** — every value, or all but a few, is `m / d` for integers `m` and one
//!   denominator `d` (see `fractions`): whole numbers have `d = 1`, two decimals `d = 100`.
//!   The numerators share a step `s` (their differences' greatest common divisor: 4096 for
//!   page counts, 100 for a temperature in hundredths that moves by whole degrees) and a
//!   remainder `r`, so `m = k·s + r`, and the `k` are predicted from the previous one (delta)
//!   or the previous two (delta of delta); the residuals go to a `ResidualModel`. Values
//!   that have no numerator (NaN and stale markers, ±Inf, −0.0, a stray float) are
//!   exceptions: flagged, stored as raw bits, and skipped by the predictor.
//! - **xor** — anything else, Gorilla's way: each value XORed with the previous one, with
//!   the XOR's leading and trailing zero counts coded adaptively.

use super::fractions::{self, Fractions};
use super::range_coder::{Bit, RangeDecoder, RangeEncoder};
use super::residuals::ResidualModel;
use super::xor::XorModel;
use super::{varint, Corrupt};

/// The value mode, stored in the low three bits of the chunk's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMode {
    Constant,
    Xor,
    Fraction {
        predictor: Predictor,
        has_exceptions: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predictor {
    /// The next `k` is the previous one: for gauges that wander.
    Delta,
    /// The next `k` continues the last change: for counters and clocks.
    DeltaOfDelta,
}

impl ValueMode {
    pub fn code(self) -> u8 {
        match self {
            ValueMode::Constant => 0,
            ValueMode::Xor => 1,
            ValueMode::Fraction {
                predictor,
                has_exceptions,
            } => 2 + u8::from(predictor == Predictor::DeltaOfDelta) + 2 * u8::from(has_exceptions),
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        let fraction = |predictor, has_exceptions| ValueMode::Fraction {
            predictor,
            has_exceptions,
        };
        Some(match code {
            0 => ValueMode::Constant,
            1 => ValueMode::Xor,
            2 => fraction(Predictor::Delta, false),
            3 => fraction(Predictor::DeltaOfDelta, false),
            4 => fraction(Predictor::Delta, true),
            5 => fraction(Predictor::DeltaOfDelta, true),
            _ => return None,
        })
    }
}

/// At most this share of a chunk's values (1/8) may be exceptions in fraction mode; a chunk
/// with more is better off in xor mode, and stopping the search early keeps encoding cheap.
fn max_exceptions(n_values: usize) -> usize {
    n_values / 8
}

/// The ways `values` can be coded, each ready to write.
pub fn candidates(values: &[f64]) -> Vec<ValuePlan> {
    let first_bits = values[0].to_bits();
    if values.iter().all(|value| value.to_bits() == first_bits) {
        return vec![ValuePlan::Constant { bits: first_bits }];
    }
    let mut plans = Vec::with_capacity(3);
    if let Some(fraction_plan) = FractionPlan::new(values) {
        for predictor in [Predictor::Delta, Predictor::DeltaOfDelta] {
            plans.push(ValuePlan::Fraction {
                plan: fraction_plan.clone(),
                predictor,
            });
        }
    }
    plans.push(ValuePlan::Xor);
    plans
}

#[derive(Debug, Clone)]
pub enum ValuePlan {
    Constant {
        bits: u64,
    },
    Fraction {
        plan: FractionPlan,
        predictor: Predictor,
    },
    Xor,
}

/// Numerators split as `m = k·step + remainder`, `None` for an exception.
#[derive(Debug, Clone)]
pub struct FractionPlan {
    denominator: u64,
    step: u64,
    remainder: u64,
    ks: Vec<Option<i64>>,
    /// The first `k` that is not an exception; the header carries it.
    first_k: i64,
    n_exceptions: usize,
}

impl FractionPlan {
    fn new(values: &[f64]) -> Option<Self> {
        let Fractions {
            denominator,
            numerators,
        } = fractions::find(values, max_exceptions(values.len()))?;
        let present: Vec<i64> = numerators.iter().flatten().copied().collect();
        let first = *present.first()?;
        // Numerators are within ±2^62, so their differences fit in an i128 and in a u64.
        let step = present
            .windows(2)
            .map(|pair| (i128::from(pair[1]) - i128::from(pair[0])).unsigned_abs() as u64)
            .fold(0, fractions::gcd)
            .max(1);
        let remainder = i128::from(first).rem_euclid(i128::from(step));
        let k_of = |m: i64| ((i128::from(m) - remainder) / i128::from(step)) as i64;
        let ks = numerators
            .iter()
            .map(|numerator| numerator.map(k_of))
            .collect();
        Some(Self {
            denominator,
            step,
            remainder: remainder as u64,
            ks,
            first_k: k_of(first),
            n_exceptions: numerators.len() - present.len(),
        })
    }
}

impl ValuePlan {
    pub fn mode(&self) -> ValueMode {
        match self {
            ValuePlan::Constant { .. } => ValueMode::Constant,
            ValuePlan::Xor => ValueMode::Xor,
            ValuePlan::Fraction { plan, predictor } => ValueMode::Fraction {
                predictor: *predictor,
                has_exceptions: plan.n_exceptions > 0,
            },
        }
    }

    /// The mode's fields after the timestamp header.
    pub fn write_header(&self, values: &[f64], out: &mut Vec<u8>) {
        match self {
            ValuePlan::Constant { bits } => varint::write_u64(out, bits.swap_bytes()),
            ValuePlan::Xor => varint::write_u64(out, values[0].to_bits().swap_bytes()),
            ValuePlan::Fraction { plan, .. } => {
                varint::write_u64(out, plan.denominator);
                varint::write_u64(out, plan.step);
                varint::write_u64(out, plan.remainder);
                varint::write_i64(out, plan.first_k);
            }
        }
    }

    /// Whether coding this plan could plausibly come out under `budget` bytes. Only xor is
    /// ever ruled out, by the bits it must store directly plus four for each change (its
    /// flag and window counts take about that even when they are regular). This is a guess,
    /// not a bound: it spares coding xor for whole numbers and decimals, and on the
    /// generated host metrics it changes the size of no chunk.
    pub fn may_fit(&self, values: &[f64], budget: usize) -> bool {
        match self {
            ValuePlan::Constant { .. } | ValuePlan::Fraction { .. } => true,
            ValuePlan::Xor => {
                let n_bits: usize = values
                    .windows(2)
                    .map(|pair| pair[0].to_bits() ^ pair[1].to_bits())
                    .filter(|&xor| xor != 0)
                    .map(|xor| {
                        let width = 64 - xor.leading_zeros() - xor.trailing_zeros();
                        width.saturating_sub(2) as usize + 4
                    })
                    .sum();
                n_bits / 8 < budget
            }
        }
    }

    /// Whether this mode codes anything into the range-coded payload.
    pub fn has_payload(&self) -> bool {
        !matches!(self, ValuePlan::Constant { .. })
    }

    /// Codes the values, giving up once the output reaches `budget` bytes: the encoder
    /// already has a chunk that small, and coding the rest would only confirm this plan
    /// loses.
    pub fn encode(
        &self,
        values: &[f64],
        encoder: &mut RangeEncoder,
        budget: usize,
    ) -> Result<(), OverBudget> {
        match self {
            ValuePlan::Constant { .. } => {}
            ValuePlan::Xor => {
                let mut model = XorModel::default();
                let mut previous = values[0].to_bits();
                for value in &values[1..] {
                    let bits = value.to_bits();
                    model.encode(encoder, previous ^ bits);
                    previous = bits;
                    if encoder.n_bytes_written() >= budget {
                        return Err(OverBudget);
                    }
                }
            }
            ValuePlan::Fraction { plan, predictor } => {
                let mut model = ResidualModel::default();
                let mut exception_flags = ExceptionFlags::default();
                let mut prediction = Prediction::starting_at(*predictor, plan.first_k);
                for (value, k) in values.iter().zip(&plan.ks) {
                    if plan.n_exceptions > 0 {
                        exception_flags.encode(encoder, k.is_none());
                    }
                    match k {
                        Some(k) => {
                            model.encode(encoder, k.wrapping_sub(prediction.next()));
                            prediction.observe(*k);
                        }
                        None => encoder.encode_direct(value.to_bits(), 64),
                    }
                    if encoder.n_bytes_written() >= budget {
                        return Err(OverBudget);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A plan's coding stopped because it could not come out smaller than one already made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// The value header as read back, ready to decode the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueHeader {
    Constant {
        value: f64,
    },
    Xor {
        first: f64,
    },
    Fraction {
        predictor: Predictor,
        has_exceptions: bool,
        denominator: u64,
        step: u64,
        remainder: u64,
        first_k: i64,
    },
}

impl ValueHeader {
    pub fn read(mode: ValueMode, reader: &mut varint::Reader<'_>) -> Result<Self, Corrupt> {
        Ok(match mode {
            ValueMode::Constant => ValueHeader::Constant {
                value: f64::from_bits(reader.u64()?.swap_bytes()),
            },
            ValueMode::Xor => ValueHeader::Xor {
                first: f64::from_bits(reader.u64()?.swap_bytes()),
            },
            ValueMode::Fraction {
                predictor,
                has_exceptions,
            } => {
                let denominator = reader.u64()?;
                let step = reader.u64()?;
                let remainder = reader.u64()?;
                if denominator == 0 || step == 0 || remainder >= step {
                    return Err(Corrupt("fraction header out of range"));
                }
                ValueHeader::Fraction {
                    predictor,
                    has_exceptions,
                    denominator,
                    step,
                    remainder,
                    first_k: reader.i64()?,
                }
            }
        })
    }

    pub fn has_payload(&self) -> bool {
        !matches!(self, ValueHeader::Constant { .. })
    }

    /// Decodes the payload's values (after its timestamps) into `values`.
    pub fn decode(
        &self,
        decoder: &mut RangeDecoder<'_>,
        values: &mut [f64],
    ) -> Result<(), Corrupt> {
        match *self {
            ValueHeader::Constant { value } => values.fill(value),
            ValueHeader::Xor { first } => {
                let mut model = XorModel::default();
                let mut previous = first.to_bits();
                values[0] = first;
                for value in &mut values[1..] {
                    previous ^= model.decode(decoder)?;
                    *value = f64::from_bits(previous);
                    if decoder.has_failed() {
                        return Err(Corrupt("values run past the end"));
                    }
                }
            }
            ValueHeader::Fraction {
                predictor,
                has_exceptions,
                denominator,
                step,
                remainder,
                first_k,
            } => {
                let mut model = ResidualModel::default();
                let mut exception_flags = ExceptionFlags::default();
                let mut prediction = Prediction::starting_at(predictor, first_k);
                let mut n_regular = 0usize;
                for value in values.iter_mut() {
                    if has_exceptions && exception_flags.decode(decoder) {
                        *value = f64::from_bits(decoder.decode_direct(64));
                    } else {
                        let k = prediction.next().wrapping_add(model.decode(decoder));
                        prediction.observe(k);
                        let numerator = i128::from(k) * i128::from(step) + i128::from(remainder);
                        if numerator.unsigned_abs() > fractions::MAX_NUMERATOR as u128 {
                            return Err(Corrupt("numerator out of range"));
                        }
                        *value = fractions::value_of(numerator as i64, denominator);
                        n_regular += 1;
                    }
                    if decoder.has_failed() {
                        return Err(Corrupt("values run past the end"));
                    }
                }
                if n_regular == 0 {
                    // The encoder picks fraction mode only with at least one numerator.
                    return Err(Corrupt("fraction chunk without a fraction"));
                }
            }
        }
        Ok(())
    }
}

/// The state of a predictor of `k`: the last `k` seen and the last change.
#[derive(Debug, Clone, Copy)]
struct Prediction {
    predictor: Predictor,
    last: i64,
    last_change: i64,
}

impl Prediction {
    /// Starts as if `first_k` had been seen with no change before it, so the first residual
    /// is 0 (the header carries `first_k`).
    fn starting_at(predictor: Predictor, first_k: i64) -> Self {
        Self {
            predictor,
            last: first_k,
            last_change: 0,
        }
    }

    /// Wrapping arithmetic: prediction and residual only need to be the same on both sides
    /// and invertible, not meaningful, when values jump across the whole i64 range.
    fn next(&self) -> i64 {
        match self.predictor {
            Predictor::Delta => self.last,
            Predictor::DeltaOfDelta => self.last.wrapping_add(self.last_change),
        }
    }

    fn observe(&mut self, k: i64) {
        self.last_change = k.wrapping_sub(self.last);
        self.last = k;
    }
}

/// Whether each value is an exception, in the context of whether the previous was.
#[derive(Debug, Default)]
struct ExceptionFlags {
    is_exception: [Bit; 2],
    previous: bool,
}

impl ExceptionFlags {
    fn encode(&mut self, encoder: &mut RangeEncoder, is_exception: bool) {
        encoder.encode_bit(
            &mut self.is_exception[usize::from(self.previous)],
            is_exception,
        );
        self.previous = is_exception;
    }

    fn decode(&mut self, decoder: &mut RangeDecoder<'_>) -> bool {
        let is_exception = decoder.decode_bit(&mut self.is_exception[usize::from(self.previous)]);
        self.previous = is_exception;
        is_exception
    }
}
