//! The chunk codec through its public functions: exact round trips, the mode each kind of
//! series gets, refusals, sizes (in bytes, never in time), and corrupt input.

use super::values::{Predictor, ValueMode};
use super::*;
use proptest::prelude::*;

const START_MS: i64 = 1_735_689_600_000;
const STALE_MARKER: u64 = 0x7ff0_0000_0000_0002;

fn on_grid(values: &[f64]) -> Vec<Sample> {
    values
        .iter()
        .enumerate()
        .map(|(index, &value)| Sample {
            timestamp_ms: START_MS + 3_217 + index as i64 * 10_000,
            value,
        })
        .collect()
}

/// Samples at `timestamps` with values of `bits`, cut to the shorter of the two.
fn samples_of(timestamps: &[i64], bits: &[u64]) -> Vec<Sample> {
    timestamps
        .iter()
        .zip(bits)
        .map(|(&timestamp_ms, &bits)| Sample {
            timestamp_ms,
            value: f64::from_bits(bits),
        })
        .collect()
}

fn assert_round_trips(samples: &[Sample]) -> Vec<u8> {
    let bytes = encode(samples).unwrap();
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded.len(), samples.len());
    for (index, (got, want)) in decoded.iter().zip(samples).enumerate() {
        assert_eq!(got.timestamp_ms, want.timestamp_ms, "timestamp {index}");
        assert_eq!(
            got.value.to_bits(),
            want.value.to_bits(),
            "value {index}: got {} want {}",
            got.value,
            want.value
        );
    }
    let summary = summary(&bytes).unwrap();
    assert_eq!(summary.n_samples as usize, samples.len());
    assert_eq!(summary.first_ms, samples[0].timestamp_ms);
    assert_eq!(summary.last_ms, samples[samples.len() - 1].timestamp_ms);
    bytes
}

fn value_mode(bytes: &[u8]) -> ValueMode {
    ValueMode::from_code(bytes[0] & VALUE_MODE_MASK).unwrap()
}

fn denominator(bytes: &[u8]) -> u64 {
    match Header::read(bytes).unwrap().values {
        ValueHeader::Fraction { denominator, .. } => denominator,
        other => panic!("not a fraction chunk: {other:?}"),
    }
}

/// Strictly increasing timestamps: a start anywhere in the i64 range and gaps of any size
/// (from 1 ms to beyond 2^62), cut where the next one would overflow.
fn increasing_timestamps(max_len: usize) -> impl Strategy<Value = Vec<i64>> {
    let gap = prop_oneof![
        Just(10_000u64),
        1u64..100,
        1u64..u64::MAX / 2,
        Just(u64::MAX),
    ];
    (any::<i64>(), proptest::collection::vec(gap, 0..max_len)).prop_map(|(start, gaps)| {
        let mut timestamps = vec![start];
        for gap in gaps {
            let last = *timestamps.last().unwrap();
            match i64::try_from(i128::from(last) + i128::from(gap)) {
                Ok(next) => timestamps.push(next),
                Err(_) => break,
            }
        }
        timestamps
    })
}

/// Bit patterns that stress every mode: anything, specials, decimals, integers.
fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(STALE_MARKER),
        Just(f64::NAN.to_bits()),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just((-0.0f64).to_bits()),
        Just(f64::MIN_POSITIVE.to_bits()),
        Just(1u64),
        (-1_000_000i64..1_000_000).prop_map(|m| (m as f64 / 100.0).to_bits()),
        any::<i32>().prop_map(|m| f64::from(m).to_bits()),
    ]
}

proptest! {
    // Failures are turned into named tests here rather than kept in a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_increasing_timestamps_with_any_value_bits_round_trip_exactly(
        timestamps in increasing_timestamps(300),
        bits in proptest::collection::vec(any::<u64>(), 300),
    ) {
        assert_round_trips(&samples_of(&timestamps, &bits));
    }

    #[test]
    fn mixed_decimals_integers_and_specials_round_trip_exactly(
        timestamps in increasing_timestamps(300),
        bits in proptest::collection::vec(value_bits(), 300),
    ) {
        assert_round_trips(&samples_of(&timestamps, &bits));
    }

    #[test]
    fn decimals_with_a_few_specials_round_trip_exactly(
        numerators in proptest::collection::vec(-100_000i64..100_000, 1..300),
        specials in proptest::collection::vec((any::<proptest::sample::Index>(), value_bits()), 0..4),
    ) {
        let mut values: Vec<f64> = numerators.iter().map(|&m| m as f64 / 1000.0).collect();
        for (index, bits) in specials {
            let index = index.index(values.len());
            values[index] = f64::from_bits(bits);
        }
        assert_round_trips(&on_grid(&values));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
        let _ = summary(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_tag_never_panic_the_decoder(
        tag in 0x10u8..0x20,
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut chunk = vec![tag];
        chunk.extend(bytes);
        let _ = decode(&chunk);
        let _ = summary(&chunk);
    }

    #[test]
    fn every_truncation_of_a_valid_chunk_is_refused(
        timestamps in increasing_timestamps(100),
        bits in proptest::collection::vec(value_bits(), 100),
    ) {
        let bytes = encode(&samples_of(&timestamps, &bits)).unwrap();
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len]).is_err(), "prefix of {} of {} bytes decoded", len, bytes.len());
        }
    }

    #[test]
    fn flipped_bits_and_appended_bytes_never_panic_the_decoder(
        timestamps in increasing_timestamps(100),
        bits in proptest::collection::vec(value_bits(), 100),
        flips in proptest::collection::vec(any::<proptest::sample::Index>(), 1..4),
        appended in proptest::collection::vec(any::<u8>(), 1..4),
    ) {
        let bytes = encode(&samples_of(&timestamps, &bits)).unwrap();
        let mut flipped = bytes.clone();
        for flip in flips {
            let bit = flip.index(flipped.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
        let _ = decode(&flipped);
        let _ = summary(&flipped);
        let mut extended = bytes;
        extended.extend(appended);
        prop_assert!(decode(&extended).is_err());
    }

    #[test]
    fn decoding_agrees_with_the_gorilla_baseline(
        timestamps in increasing_timestamps(200),
        bits in proptest::collection::vec(value_bits(), 200),
    ) {
        let samples = samples_of(&timestamps, &bits);
        let ours = decode(&encode(&samples).unwrap()).unwrap();
        let theirs = gorilla::decode(&gorilla::encode(&samples)).unwrap();
        let as_bits = |samples: &[Sample]| -> Vec<(i64, u64)> {
            samples.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect()
        };
        prop_assert_eq!(as_bits(&ours), as_bits(&theirs));
    }
}

#[test]
fn timestamps_at_both_ends_of_the_i64_range_round_trip() {
    let samples = samples_of(&[i64::MIN, -1, 0, 1, i64::MAX], &[0, 1, 2, 3, 4]);
    assert_round_trips(&samples);
    assert_round_trips(&samples_of(&[i64::MIN, i64::MAX], &[0, 1]));
    assert_round_trips(&samples_of(&[i64::MAX], &[STALE_MARKER]));
}

#[test]
fn special_values_round_trip_bit_for_bit() {
    let values = [
        f64::from_bits(STALE_MARKER),
        f64::NAN,
        f64::from_bits(0xfff8_0000_dead_beef),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        1e300,
        -1e-300,
        0.1 + 0.2,
    ];
    assert_round_trips(&on_grid(&values));
}

#[test]
fn whole_numbers_get_fraction_mode_with_denominator_one() {
    let values: Vec<f64> = (0..720).map(|i| (i * i % 97) as f64 * 4096.0).collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert!(matches!(
        value_mode(&bytes),
        ValueMode::Fraction {
            has_exceptions: false,
            ..
        }
    ));
    assert_eq!(denominator(&bytes), 1);
}

#[test]
fn two_decimals_get_fraction_mode_with_denominator_one_hundred() {
    let values: Vec<f64> = (0..720)
        .map(|i| {
            format!("{:.2}", 1.5 + (i as f64 * 0.37).sin())
                .parse()
                .unwrap()
        })
        .collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert!(matches!(
        value_mode(&bytes),
        ValueMode::Fraction {
            has_exceptions: false,
            ..
        }
    ));
    assert_eq!(denominator(&bytes), 100);
}

#[test]
fn cpu_tick_ratios_get_the_tick_count_as_denominator() {
    let ticks_per_interval = 12_000;
    let values: Vec<f64> = (0..720)
        .map(|i| ((i * 7919) % 12_000) as f64 / ticks_per_interval as f64)
        .collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert_eq!(denominator(&bytes), ticks_per_interval);
}

#[test]
fn a_counter_gets_the_delta_of_delta_predictor() {
    let mut counter = 5_877_047_554_957.0;
    let values: Vec<f64> = (0..720)
        .map(|i| {
            counter += 3_000_000.0 + (i % 7) as f64;
            counter
        })
        .collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert_eq!(
        value_mode(&bytes),
        ValueMode::Fraction {
            predictor: Predictor::DeltaOfDelta,
            has_exceptions: false
        }
    );
}

#[test]
fn a_stale_marker_in_a_decimal_series_is_an_exception() {
    let mut values: Vec<f64> = (0..720).map(|i| (i % 50) as f64 / 10.0).collect();
    values[719] = f64::from_bits(STALE_MARKER);
    values[100] = -0.0;
    let bytes = assert_round_trips(&on_grid(&values));
    assert!(matches!(
        value_mode(&bytes),
        ValueMode::Fraction {
            has_exceptions: true,
            ..
        }
    ));
    assert_eq!(denominator(&bytes), 10);
}

#[test]
fn arbitrary_floats_get_xor_mode() {
    let values: Vec<f64> = (0..720).map(|i| (i as f64 * 0.1).sin() * 1e3).collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert_eq!(value_mode(&bytes), ValueMode::Xor);
}

#[test]
fn xor_mode_is_smaller_than_gorilla_on_arbitrary_floats() {
    let values: Vec<f64> = (0..720).map(|i| (i as f64 * 0.01).sin() * 100.0).collect();
    let samples = on_grid(&values);
    let ours = assert_round_trips(&samples);
    assert_eq!(value_mode(&ours), ValueMode::Xor);
    let theirs = gorilla::encode(&samples);
    assert!(
        ours.len() * 10 < theirs.len() * 9,
        "{} vs {}",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn a_constant_series_gets_constant_mode_and_no_payload() {
    let bytes = assert_round_trips(&on_grid(&[1.0; 720]));
    assert_eq!(value_mode(&bytes), ValueMode::Constant);
    assert!(bytes.len() <= 16, "{} bytes", bytes.len());
}

#[test]
fn a_flat_series_with_a_few_changes_costs_well_under_a_byte_a_sample() {
    let values: Vec<f64> = (0..720)
        .map(|i| if (200..212).contains(&i) { 0.0 } else { 1.0 })
        .collect();
    let bytes = assert_round_trips(&on_grid(&values));
    assert!(
        bytes.len() < 720 / 20,
        "{} bytes for 720 samples",
        bytes.len()
    );
}

#[test]
fn timestamps_on_a_grid_cost_less_than_a_bit_a_sample() {
    let values = [42.0; 720];
    let regular = assert_round_trips(&on_grid(&values));
    // A reboot: 70 s without samples, then the grid again at another phase.
    let mut with_gap = on_grid(&values);
    for sample in &mut with_gap[400..] {
        sample.timestamp_ms += 70_123;
    }
    let gapped = assert_round_trips(&with_gap);
    assert!(regular.len() * 8 < 720, "{} bytes", regular.len());
    assert!(gapped.len() * 8 < 720, "{} bytes", gapped.len());
}

#[test]
fn jittered_timestamps_cost_about_what_the_jitter_says() {
    // -3..=4 ms around the grid: 3 bits of jitter a sample, coded against the grid rather
    // than as differences of two jitters (which would take about 4).
    let mut jitter = 12345u64;
    let samples: Vec<Sample> = (0..720)
        .map(|i| {
            jitter = jitter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Sample {
                timestamp_ms: START_MS + i * 10_000 + (jitter >> 61) as i64 - 3,
                value: 1.0,
            }
        })
        .collect();
    let bytes = assert_round_trips(&samples);
    assert!(bytes.len() * 8 < 720 * 4, "{} bytes", bytes.len());
}

#[test]
fn equal_or_decreasing_timestamps_are_refused_with_their_index() {
    let mut samples = on_grid(&[1.0; 10]);
    samples[6].timestamp_ms = samples[5].timestamp_ms;
    assert_eq!(
        encode(&samples),
        Err(ChunkError::OutOfOrder {
            index: 6,
            previous_ms: samples[5].timestamp_ms,
            timestamp_ms: samples[5].timestamp_ms,
        })
    );
    samples[6].timestamp_ms = samples[5].timestamp_ms - 1;
    assert!(matches!(
        encode(&samples),
        Err(ChunkError::OutOfOrder { index: 6, .. })
    ));
}

#[test]
fn no_samples_and_too_many_samples_are_refused() {
    assert_eq!(encode(&[]), Err(ChunkError::Empty));
    let too_many: Vec<Sample> = (0..=MAX_SAMPLES as i64)
        .map(|i| Sample {
            timestamp_ms: i,
            value: 0.0,
        })
        .collect();
    assert!(matches!(
        encode(&too_many),
        Err(ChunkError::TooManySamples { .. })
    ));
}

#[test]
fn a_chunk_from_a_newer_format_is_named_as_such() {
    let mut bytes = encode(&on_grid(&[1.0, 2.0])).unwrap();
    bytes[0] = 0x20 | (bytes[0] & 0x0F);
    assert_eq!(
        decode(&bytes),
        Err(ChunkError::UnknownVersion { version: 2 })
    );
    assert_eq!(
        decode(&bytes).unwrap_err().to_string(),
        "chunk format version 2 is unknown to this collector (it reads version 1); was it written by a newer one?"
    );
}

#[test]
fn the_summary_reads_only_the_header() {
    let samples = on_grid(&[0.25; 5]);
    let bytes = encode(&samples).unwrap();
    assert_eq!(
        summary(&bytes).unwrap(),
        ChunkSummary {
            n_samples: 5,
            first_ms: samples[0].timestamp_ms,
            last_ms: samples[4].timestamp_ms,
        }
    );
}
