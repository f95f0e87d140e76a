//! Prometheus' XOR chunk — the Gorilla paper's codec — written out plainly: the baseline the
//! chunk format is measured against (`examples/chunk_sizes.rs`) and a second, independent
//! implementation the tests cross-check it with. The store does not write these.
//!
//! Bit for bit as Prometheus' `tsdb/chunkenc/xor.go`: a 2-byte big-endian sample count; the
//! first timestamp as a zigzag varint and the first value as 64 raw bits; the second
//! timestamp as a varint delta; then delta-of-delta timestamps in buckets of 0, 14, 17, 20
//! or 64 bits behind prefixes `0`, `10`, `110`, `1110`, `1111`; values XORed with the
//! previous one: `0` if equal, `10` and the meaningful bits when they fit the previous
//! window, else `11`, 5 bits of leading zeros, 6 bits of length and the bits.

use super::varint;
use vigil_proto::model::Sample;

/// Prometheus cuts its chunks at this many samples.
pub const PROMETHEUS_SAMPLES_PER_CHUNK: usize = 120;
/// What Prometheus stores around each chunk in its chunk files: a length varint (1–2
/// bytes), an encoding byte and a CRC-32.
pub const PROMETHEUS_CHUNK_FILE_OVERHEAD: usize = 7;

/// Encodes at most 65535 samples (the count has two bytes); timestamps must increase.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    assert!(samples.len() <= usize::from(u16::MAX), "too many samples");
    let mut bits = BitWriter::default();
    let mut header = Vec::new();
    header.extend_from_slice(&(samples.len() as u16).to_be_bytes());
    let mut previous_ms = 0i64;
    let mut previous_delta = 0i64;
    let mut previous_bits = 0u64;
    let mut window = None;
    for (index, sample) in samples.iter().enumerate() {
        let value_bits = sample.value.to_bits();
        match index {
            0 => {
                varint::write_i64(&mut header, sample.timestamp_ms);
                header.extend_from_slice(&value_bits.to_be_bytes());
            }
            1 => {
                let delta = sample.timestamp_ms.wrapping_sub(previous_ms);
                varint::write_u64(&mut header, delta as u64);
                write_xor(&mut bits, previous_bits ^ value_bits, &mut window);
                previous_delta = delta;
            }
            _ => {
                let delta = sample.timestamp_ms.wrapping_sub(previous_ms);
                write_delta_of_delta(&mut bits, delta.wrapping_sub(previous_delta));
                write_xor(&mut bits, previous_bits ^ value_bits, &mut window);
                previous_delta = delta;
            }
        }
        previous_ms = sample.timestamp_ms;
        previous_bits = value_bits;
    }
    // Prometheus interleaves all of this in one bit stream; the first two samples' bytes
    // are byte-aligned there too, so the size is the same.
    header.extend_from_slice(&bits.finish());
    header
}

/// Decodes what [`encode`] wrote; `None` if the bytes end early.
pub fn decode(bytes: &[u8]) -> Option<Vec<Sample>> {
    let n = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let mut reader = varint::Reader::new(&bytes[2..]);
    let mut samples = Vec::with_capacity(n);
    if n == 0 {
        return Some(samples);
    }
    let first_ms = reader.i64().ok()?;
    let mut value_bytes = [0u8; 8];
    for byte in &mut value_bytes {
        *byte = reader.byte().ok()?;
    }
    let mut previous_bits = u64::from_be_bytes(value_bytes);
    samples.push(Sample {
        timestamp_ms: first_ms,
        value: f64::from_bits(previous_bits),
    });
    if n == 1 {
        return Some(samples);
    }
    let mut delta = reader.u64().ok()? as i64;
    let mut bits = BitReader::new(reader.rest());
    let mut window = (0u32, 0u32);
    let mut timestamp_ms = first_ms;
    for index in 1..n {
        if index >= 2 {
            delta = delta.wrapping_add(read_delta_of_delta(&mut bits)?);
        }
        timestamp_ms = timestamp_ms.wrapping_add(delta);
        previous_bits ^= read_xor(&mut bits, &mut window)?;
        samples.push(Sample {
            timestamp_ms,
            value: f64::from_bits(previous_bits),
        });
    }
    Some(samples)
}

/// Whether `x` fits Prometheus' bucket of `n_bits` (its `bitRange`).
fn fits(x: i64, n_bits: u32) -> bool {
    -((1i64 << (n_bits - 1)) - 1) <= x && x <= 1i64 << (n_bits - 1)
}

fn write_delta_of_delta(bits: &mut BitWriter, delta_of_delta: i64) {
    if delta_of_delta == 0 {
        bits.write(0, 1);
        return;
    }
    for (prefix, prefix_len, n_bits) in [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)] {
        if fits(delta_of_delta, n_bits) {
            bits.write(prefix, prefix_len);
            bits.write(delta_of_delta as u64 & ((1 << n_bits) - 1), n_bits);
            return;
        }
    }
    bits.write(0b1111, 4);
    bits.write(delta_of_delta as u64, 64);
}

fn read_delta_of_delta(bits: &mut BitReader<'_>) -> Option<i64> {
    let mut n_ones = 0;
    while n_ones < 4 && bits.read(1)? == 1 {
        n_ones += 1;
    }
    let n_bits = [0, 14, 17, 20, 64][n_ones];
    if n_bits == 0 {
        return Some(0);
    }
    let raw = bits.read(n_bits)?;
    if n_bits == 64 {
        return Some(raw as i64);
    }
    // Sign-extend; Prometheus reads values above 2^(n-1) as negative the same way.
    let value = if raw > 1 << (n_bits - 1) {
        raw as i64 - (1i64 << n_bits)
    } else {
        raw as i64
    };
    Some(value)
}

/// `window` is the previous (leading, trailing) zero counts, `None` before the first.
fn write_xor(bits: &mut BitWriter, xor: u64, window: &mut Option<(u32, u32)>) {
    if xor == 0 {
        bits.write(0, 1);
        return;
    }
    bits.write(1, 1);
    // Prometheus keeps 5 bits for the leading zeros.
    let leading = xor.leading_zeros().min(31);
    let trailing = xor.trailing_zeros();
    if let Some((previous_leading, previous_trailing)) = *window {
        if leading >= previous_leading && trailing >= previous_trailing {
            bits.write(0, 1);
            let width = 64 - previous_leading - previous_trailing;
            bits.write(xor >> previous_trailing, width);
            return;
        }
    }
    bits.write(1, 1);
    bits.write(u64::from(leading), 5);
    let width = 64 - leading - trailing;
    // A width of 64 does not fit 6 bits and is written as 0.
    bits.write(u64::from(width) & 63, 6);
    bits.write(xor >> trailing, width);
    *window = Some((leading, trailing));
}

fn read_xor(bits: &mut BitReader<'_>, window: &mut (u32, u32)) -> Option<u64> {
    if bits.read(1)? == 0 {
        return Some(0);
    }
    if bits.read(1)? == 1 {
        let leading = bits.read(5)? as u32;
        let width = match bits.read(6)? as u32 {
            0 => 64,
            width => width,
        };
        *window = (leading, 64u32.checked_sub(leading + width)?);
    }
    let (leading, trailing) = *window;
    let width = 64 - leading - trailing;
    Some(bits.read(width)? << trailing)
}

#[derive(Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    n_bits_in_last: u32,
}

impl BitWriter {
    /// The low `n_bits` of `value`, most significant first.
    fn write(&mut self, value: u64, n_bits: u32) {
        for shift in (0..n_bits).rev() {
            if self.n_bits_in_last.is_multiple_of(8) {
                self.bytes.push(0);
                self.n_bits_in_last = 0;
            }
            let bit = ((value >> shift) & 1) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= bit << (7 - self.n_bits_in_last);
            self.n_bits_in_last += 1;
        }
    }

    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[derive(Debug)]
struct BitReader<'a> {
    bytes: &'a [u8],
    position_bits: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            position_bits: 0,
        }
    }

    fn read(&mut self, n_bits: u32) -> Option<u64> {
        let mut value = 0u64;
        for _ in 0..n_bits {
            let byte = self.bytes.get(self.position_bits / 8)?;
            let bit = (byte >> (7 - self.position_bits % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.position_bits += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn gorilla_round_trips_any_increasing_samples(
            start in any::<i64>(),
            gaps in proptest::collection::vec(1i64..1 << 40, 0..200),
            values in proptest::collection::vec(any::<u64>(), 201),
        ) {
            let mut samples = Vec::new();
            let mut timestamp_ms = start;
            for (index, gap) in std::iter::once(0).chain(gaps).enumerate() {
                let Some(next) = timestamp_ms.checked_add(gap) else { break };
                timestamp_ms = next;
                samples.push(Sample { timestamp_ms, value: f64::from_bits(values[index]) });
            }
            let decoded = decode(&encode(&samples)).unwrap();
            prop_assert_eq!(decoded.len(), samples.len());
            for (a, b) in decoded.iter().zip(&samples) {
                prop_assert_eq!(a.timestamp_ms, b.timestamp_ms);
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }
    }

    #[test]
    fn a_regular_flat_series_costs_two_bits_a_sample() {
        let samples: Vec<Sample> = (0..721)
            .map(|i| Sample {
                timestamp_ms: 1_735_689_600_000 + i * 10_000,
                value: 1.0,
            })
            .collect();
        let bytes = encode(&samples);
        // Count, first timestamp and value, second delta; one bit for the second value,
        // then two for each of the 719 others.
        assert_eq!(bytes.len(), 2 + 6 + 8 + 2 + (1usize + 719 * 2).div_ceil(8));
    }
}
