//! The binary range coder under every chunk payload: adaptive bits ([`Bit`]) that learn their
//! probability as they are coded, bit trees over them, and direct bits that cost one bit
//! each. The carry handling is LZMA's; the probabilities have 15 bits and adapt fast at
//! first and then slower (a count per bit picks the rate), because a chunk holds only a few
//! hundred samples and learning is part of what a short stream costs.
//!
//! This layer knows nothing of samples: the models in `residuals`, `timestamps`, `values`
//! and `xor` decide which bits to code and under which context.

/// Probabilities are fixed-point fractions of this many bits.
const PROB_BITS: u32 = 15;
const PROB_ONE: u16 = 1 << PROB_BITS;
/// Below this the range is renormalized by shifting out a byte.
const TOP: u32 = 1 << 24;
/// The slowest adaptation: a probability moves 1/2^MAX_RATE of the way to each new bit.
const MAX_RATE: u8 = 5;

/// Bytes the encoder emits beyond the renormalizations: the final state of `low`.
const FLUSH_BYTES: usize = 4;
/// Direct bits are coded this many at a time (at most 16, so the range stays above 2^8).
const DIRECT_GROUP_BITS: u32 = 16;

/// One adaptive binary decision: the probability that the next bit is 0, and how many bits it
/// has seen (which sets how fast it still moves).
#[derive(Debug, Clone, Copy)]
pub struct Bit {
    prob_zero: u16,
    n_seen: u8,
}

impl Default for Bit {
    fn default() -> Self {
        Self {
            prob_zero: PROB_ONE / 2,
            n_seen: 0,
        }
    }
}

impl Bit {
    /// Moves the probability towards the bit just coded: by 1/2 after the first bit, then
    /// about 1/(n+2) as a count-based estimate would, down to 1/2^MAX_RATE. The probability
    /// stays within 1..PROB_ONE, so neither symbol ever gets an empty interval.
    fn update(&mut self, bit: bool) {
        let rate = rate_after(self.n_seen);
        self.n_seen = self.n_seen.saturating_add(1);
        if bit {
            self.prob_zero -= self.prob_zero >> rate;
        } else {
            self.prob_zero += (PROB_ONE - self.prob_zero) >> rate;
        }
    }
}

/// floor(log2(n_seen + 2)), capped at MAX_RATE.
fn rate_after(n_seen: u8) -> u8 {
    let log2 = (u32::from(n_seen) + 2).ilog2() as u8;
    log2.min(MAX_RATE)
}

/// Writes a range-coded byte stream.
#[derive(Debug)]
pub struct RangeEncoder {
    low: u64,
    range: u32,
    /// The last byte not yet written, held back because a carry may still change it.
    cache: u8,
    /// The cached byte plus the 0xFF bytes behind it that a carry would also change.
    n_pending: u64,
    /// LZMA's first byte is always 0; it is not written, and the decoder starts one byte in.
    wrote_first: bool,
    out: Vec<u8>,
}

impl RangeEncoder {
    /// Appends to `out`, which may already hold a header.
    pub fn new(out: Vec<u8>) -> Self {
        Self {
            low: 0,
            range: u32::MAX,
            cache: 0,
            n_pending: 1,
            wrote_first: false,
            out,
        }
    }

    pub fn encode_bit(&mut self, model: &mut Bit, bit: bool) {
        let bound = (self.range >> PROB_BITS) * u32::from(model.prob_zero);
        if bit {
            self.low += u64::from(bound);
            self.range -= bound;
        } else {
            self.range = bound;
        }
        model.update(bit);
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// The low `n_bits` of `value`, each bit at probability 1/2. They go in groups of up to
    /// DIRECT_GROUP_BITS, one multiplication each rather than a step per bit: the range
    /// (at least 2^24) is split into 2^k equal parts, wasting under 2^k / 2^24 of it.
    pub fn encode_direct(&mut self, value: u64, n_bits: u32) {
        let mut n_left = n_bits;
        while n_left > 0 {
            let n_group = n_left.min(DIRECT_GROUP_BITS);
            n_left -= n_group;
            let group = (value >> n_left) as u32 & ((1 << n_group) - 1);
            self.range >>= n_group;
            self.low += u64::from(group) * u64::from(self.range);
            while self.range < TOP {
                self.range <<= 8;
                self.shift_low();
            }
        }
    }

    /// The low `n_bits` of `value` through a tree of `models` (which holds 2^n_bits bits;
    /// index 0 is unused): each bit is coded in the context of the bits above it.
    pub fn encode_tree(&mut self, models: &mut [Bit], n_bits: u32, value: u32) {
        let mut node = 1usize;
        for shift in (0..n_bits).rev() {
            let bit = (value >> shift) & 1 == 1;
            self.encode_bit(&mut models[node], bit);
            node = (node << 1) | usize::from(bit);
        }
    }

    fn shift_low(&mut self) {
        if self.low < 0xFF00_0000 || self.low >= 1 << 32 {
            let carry = (self.low >> 32) as u8;
            let mut byte = self.cache;
            loop {
                self.emit(byte.wrapping_add(carry));
                byte = 0xFF;
                self.n_pending -= 1;
                if self.n_pending == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.n_pending += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    /// Bytes written so far, header included; the finished stream is longer.
    pub fn n_bytes_written(&self) -> usize {
        self.out.len()
    }

    fn emit(&mut self, byte: u8) {
        if self.wrote_first {
            self.out.push(byte);
        } else {
            debug_assert_eq!(byte, 0, "the range coder's first byte is always 0");
            self.wrote_first = true;
        }
    }

    /// Writes out the final state so the decoder ends exactly at the last byte, with a code
    /// of 0 (which it checks).
    pub fn finish(mut self) -> Vec<u8> {
        for _ in 0..=FLUSH_BYTES {
            self.shift_low();
        }
        self.out
    }
}

/// Reads what [`RangeEncoder`] wrote. Reading past the end yields zero bytes and is counted,
/// so decoding corrupt input never panics; [`RangeDecoder::finish`] then reports it.
#[derive(Debug)]
pub struct RangeDecoder<'a> {
    bytes: &'a [u8],
    position: usize,
    range: u32,
    code: u32,
    n_missing: usize,
    /// Symbols that no encoder could have produced.
    n_invalid: usize,
}

impl<'a> RangeDecoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut decoder = Self {
            bytes,
            position: 0,
            range: u32::MAX,
            code: 0,
            n_missing: 0,
            n_invalid: 0,
        };
        for _ in 0..FLUSH_BYTES {
            decoder.code = (decoder.code << 8) | u32::from(decoder.next_byte());
        }
        decoder
    }

    fn next_byte(&mut self) -> u8 {
        match self.bytes.get(self.position) {
            Some(&byte) => {
                self.position += 1;
                byte
            }
            None => {
                self.n_missing += 1;
                0
            }
        }
    }

    fn normalize(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(self.next_byte());
        }
    }

    pub fn decode_bit(&mut self, model: &mut Bit) -> bool {
        let bound = (self.range >> PROB_BITS) * u32::from(model.prob_zero);
        let bit = if self.code < bound {
            self.range = bound;
            false
        } else {
            self.code -= bound;
            self.range -= bound;
            true
        };
        model.update(bit);
        self.normalize();
        bit
    }

    pub fn decode_direct(&mut self, n_bits: u32) -> u64 {
        let mut value = 0u64;
        let mut n_left = n_bits;
        while n_left > 0 {
            let n_group = n_left.min(DIRECT_GROUP_BITS);
            n_left -= n_group;
            self.range >>= n_group;
            let mut group = self.code / self.range;
            let max_group = (1 << n_group) - 1;
            if group > max_group {
                // Only a corrupt stream lands in the sliver the encoder leaves unused.
                self.n_invalid += 1;
                group = max_group;
            }
            self.code -= group * self.range;
            value = (value << n_group) | u64::from(group);
            self.normalize();
        }
        value
    }

    pub fn decode_tree(&mut self, models: &mut [Bit], n_bits: u32) -> u32 {
        let mut node = 1usize;
        for _ in 0..n_bits {
            let bit = self.decode_bit(&mut models[node]);
            node = (node << 1) | usize::from(bit);
        }
        (node - (1 << n_bits)) as u32
    }

    /// Whether the decoder has run past the end of its bytes or decoded what no encoder
    /// writes: the stream is corrupt, and callers check this inside loops to stop early.
    pub fn has_failed(&self) -> bool {
        self.n_missing > 0 || self.n_invalid > 0
    }

    /// Whether the stream ended exactly as an encoder ends one: every byte read, none
    /// missing or invalid, and the code back at 0.
    pub fn finished_cleanly(&self) -> bool {
        self.n_missing == 0
            && self.n_invalid == 0
            && self.position == self.bytes.len()
            && self.code == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Bit(usize, bool),
        Direct(u64, u32),
        Tree(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..4, any::<bool>()).prop_map(|(model, bit)| Op::Bit(model, bit)),
            (any::<u64>(), 0u32..=64).prop_map(|(value, n_bits)| Op::Direct(
                if n_bits == 64 {
                    value
                } else {
                    value & ((1 << n_bits) - 1)
                },
                n_bits
            )),
            (0u32..64).prop_map(Op::Tree),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_sequence_of_bits_decodes_to_itself_and_ends_cleanly(
            ops in proptest::collection::vec(op(), 0..400)
        ) {
            let mut encoder = RangeEncoder::new(Vec::new());
            let mut bits = [Bit::default(); 4];
            let mut tree = [Bit::default(); 64];
            for op in &ops {
                match *op {
                    Op::Bit(model, bit) => encoder.encode_bit(&mut bits[model], bit),
                    Op::Direct(value, n_bits) => encoder.encode_direct(value, n_bits),
                    Op::Tree(value) => encoder.encode_tree(&mut tree, 6, value),
                }
            }
            let bytes = encoder.finish();
            let mut decoder = RangeDecoder::new(&bytes);
            let mut bits = [Bit::default(); 4];
            let mut tree = [Bit::default(); 64];
            for op in &ops {
                match *op {
                    Op::Bit(model, bit) => prop_assert_eq!(decoder.decode_bit(&mut bits[model]), bit),
                    Op::Direct(value, n_bits) => prop_assert_eq!(decoder.decode_direct(n_bits), value),
                    Op::Tree(value) => prop_assert_eq!(decoder.decode_tree(&mut tree, 6), value),
                }
            }
            prop_assert!(decoder.finished_cleanly());
        }
    }

    #[test]
    fn a_long_run_of_one_likely_bit_costs_a_small_fraction_of_a_bit_each() {
        let mut encoder = RangeEncoder::new(Vec::new());
        let mut model = Bit::default();
        for _ in 0..8000 {
            encoder.encode_bit(&mut model, false);
        }
        let bytes = encoder.finish();
        assert!(bytes.len() < 8000 / 8 / 20, "{} bytes", bytes.len());
    }

    #[test]
    fn probabilities_stay_strictly_between_zero_and_one() {
        for bit in [false, true] {
            let mut model = Bit::default();
            for _ in 0..1000 {
                model.update(bit);
                assert!(model.prob_zero >= 1 && model.prob_zero < PROB_ONE);
            }
        }
    }
}
