//! The model that codes a stream of signed integers — prediction residuals of timestamps and
//! of values — through the range coder. Each residual is coded as: is it zero; if not, its
//! bit length (1..=64) through a bit tree; the top bits under the leading one, adaptively;
//! the rest directly; then its sign. Lengths and signs are coded in the context of the
//! previous residual, so a run of zeros costs a few hundredths of a bit per sample, a series
//! whose changes keep one size costs little more than the bits of the change, and a counter
//! whose deltas are all positive pays nothing for signs.
//!
//! It does not predict: callers turn values into residuals and back.

use super::range_coder::{Bit, RangeDecoder, RangeEncoder};

/// Bits of the length tree: lengths 1..=64 are coded as 0..=63.
const LENGTH_TREE_BITS: u32 = 6;
/// Contexts for the length: whether the previous residual was zero, one, or larger. Finer
/// contexts (the previous length exactly, or by octave) cost more in learning, over a
/// chunk's few hundred residuals, than they save.
const N_LENGTH_CONTEXTS: usize = 3;
/// Mantissa bits under the leading one that are coded adaptively; the rest are direct.
const ADAPTIVE_MANTISSA_BITS: u32 = 2;

/// The previous residual's length (0 for zero) as a context index.
fn length_context(length: u32) -> usize {
    length.min(2) as usize
}

/// Adaptive state for one stream of residuals. Encoder and decoder each build a fresh one
/// and feed it the same residuals in the same order.
#[derive(Debug, Clone)]
pub struct ResidualModel {
    is_zero: [Bit; N_LENGTH_CONTEXTS],
    length: [[Bit; 1 << LENGTH_TREE_BITS]; N_LENGTH_CONTEXTS],
    mantissa: [[Bit; 1 << ADAPTIVE_MANTISSA_BITS]; 65],
    /// Context: the previous residual was negative, zero, positive.
    is_negative: [Bit; 3],
    previous_length: u32,
    previous_sign: usize,
}

impl Default for ResidualModel {
    fn default() -> Self {
        Self {
            is_zero: [Bit::default(); N_LENGTH_CONTEXTS],
            length: [[Bit::default(); 1 << LENGTH_TREE_BITS]; N_LENGTH_CONTEXTS],
            mantissa: [[Bit::default(); 1 << ADAPTIVE_MANTISSA_BITS]; 65],
            is_negative: [Bit::default(); 3],
            previous_length: 0,
            previous_sign: 1,
        }
    }
}

impl ResidualModel {
    pub fn encode(&mut self, encoder: &mut RangeEncoder, residual: i64) {
        self.encode_magnitude(encoder, residual.unsigned_abs());
        if residual != 0 {
            let negative = residual < 0;
            encoder.encode_bit(&mut self.is_negative[self.previous_sign], negative);
            self.previous_sign = if negative { 0 } else { 2 };
        } else {
            self.previous_sign = 1;
        }
    }

    pub fn decode(&mut self, decoder: &mut RangeDecoder<'_>) -> i64 {
        let magnitude = self.decode_magnitude(decoder);
        if magnitude == 0 {
            self.previous_sign = 1;
            return 0;
        }
        let negative = decoder.decode_bit(&mut self.is_negative[self.previous_sign]);
        self.previous_sign = if negative { 0 } else { 2 };
        // A magnitude of 2^63 is i64::MIN, whose negation wraps back to itself.
        if negative {
            (magnitude as i64).wrapping_neg()
        } else {
            magnitude as i64
        }
    }

    /// Codes an unsigned value (the magnitude of a residual, or a count).
    pub fn encode_magnitude(&mut self, encoder: &mut RangeEncoder, magnitude: u64) {
        let context = length_context(self.previous_length);
        let length = 64 - magnitude.leading_zeros();
        self.previous_length = length;
        encoder.encode_bit(&mut self.is_zero[context], length == 0);
        if length == 0 {
            return;
        }
        encoder.encode_tree(&mut self.length[context], LENGTH_TREE_BITS, length - 1);
        let n_below = length - 1;
        let n_adaptive = n_below.min(ADAPTIVE_MANTISSA_BITS);
        let n_direct = n_below - n_adaptive;
        let top = (magnitude >> n_direct) as u32 & ((1 << n_adaptive) - 1);
        encoder.encode_tree(&mut self.mantissa[length as usize], n_adaptive, top);
        encoder.encode_direct(magnitude, n_direct);
    }

    pub fn decode_magnitude(&mut self, decoder: &mut RangeDecoder<'_>) -> u64 {
        let context = length_context(self.previous_length);
        if decoder.decode_bit(&mut self.is_zero[context]) {
            self.previous_length = 0;
            return 0;
        }
        let length = decoder.decode_tree(&mut self.length[context], LENGTH_TREE_BITS) + 1;
        self.previous_length = length;
        let n_below = length - 1;
        let n_adaptive = n_below.min(ADAPTIVE_MANTISSA_BITS);
        let n_direct = n_below - n_adaptive;
        let top = decoder.decode_tree(&mut self.mantissa[length as usize], n_adaptive);
        let leading_one = 1u64 << n_below;
        leading_one | (u64::from(top) << n_direct) | decoder.decode_direct(n_direct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(residuals: &[i64]) -> (Vec<i64>, usize) {
        let mut encoder = RangeEncoder::new(Vec::new());
        let mut model = ResidualModel::default();
        for &residual in residuals {
            model.encode(&mut encoder, residual);
        }
        let bytes = encoder.finish();
        let mut decoder = RangeDecoder::new(&bytes);
        let mut model = ResidualModel::default();
        let decoded = residuals
            .iter()
            .map(|_| model.decode(&mut decoder))
            .collect();
        assert!(decoder.finished_cleanly());
        (decoded, bytes.len())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_residuals_decode_to_themselves(residuals in proptest::collection::vec(any::<i64>(), 0..300)) {
            prop_assert_eq!(round_trip(&residuals).0, residuals);
        }

        #[test]
        fn small_residuals_decode_to_themselves(residuals in proptest::collection::vec(-40i64..40, 0..300)) {
            prop_assert_eq!(round_trip(&residuals).0, residuals);
        }
    }

    #[test]
    fn extreme_residuals_decode_to_themselves() {
        let residuals = [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            1,
            i64::MIN + 1,
            1 << 62,
            -(1 << 62),
        ];
        assert_eq!(round_trip(&residuals).0, residuals);
    }

    #[test]
    fn a_run_of_zeros_costs_a_few_bytes() {
        let (_, n_bytes) = round_trip(&[0; 720]);
        assert!(n_bytes <= 8, "{n_bytes} bytes");
    }
}
