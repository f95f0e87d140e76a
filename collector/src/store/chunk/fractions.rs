//! Finding the integers behind the floats: most monitoring values are whole numbers, decimals
//! printed with a few digits (`0.48`, `6981080.79`, `26.85`) or ratios of counts (CPU ticks
//! over ticks per interval). Each is, bit for bit, `m as f64 / d as f64` for one small
//! denominator `d` shared by the whole chunk and an integer `m` per value — and integers
//! compress far better than XORed floats.
//!
//! The denominator grows value by value to the least common multiple of what each needs: a
//! power of ten when one works (most values were printed as decimals), else the smallest
//! denominator among the convergents of the value's continued fraction — which finds tick
//! ratios and `f32` fractions without a list of guesses. Every numerator is then checked
//! with exactly the division the decoder performs; a value that does not come back bit for
//! bit (NaN, ±Inf, −0.0, a float with no small fraction behind it) is left as an exception.

/// Largest denominator a chunk may use. It covers 12 decimals, every dyadic fraction of an
/// `f32` above 2^-16, and tick ratios of any real CPU count; beyond it numerators grow too
/// large to be cheaper than XORed floats.
pub const MAX_DENOMINATOR: u64 = 1 << 40;
/// Largest numerator magnitude, so that differences of numerators fit in an `i64`.
pub const MAX_NUMERATOR: i64 = 1 << 62;

/// The integers behind a chunk's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Fractions {
    pub denominator: u64,
    /// `Some(m)` where `m as f64 / denominator as f64` is the value bit for bit; `None` for
    /// an exception, which is stored as its raw bits.
    pub numerators: Vec<Option<i64>>,
}

/// What the decoder computes from a numerator: the one definition both sides share.
pub fn value_of(numerator: i64, denominator: u64) -> f64 {
    numerator as f64 / denominator as f64
}

/// Finds a common denominator for `values`, or `None` when more than `max_exceptions`
/// values would be exceptions (the search stops early then, so hopeless chunks cost little).
pub fn find(values: &[f64], max_exceptions: usize) -> Option<Fractions> {
    let mut denominator = 1u64;
    let mut n_exceptions = 0;
    for &value in values {
        if numerator_of(value, denominator).is_some() {
            continue;
        }
        let widened = decimal_widening(value, denominator).or_else(|| {
            smallest_denominator(value)
                .and_then(|own| lcm(denominator, own))
                .filter(|&widened| widened <= MAX_DENOMINATOR)
        });
        match widened {
            Some(widened) => denominator = widened,
            None => {
                n_exceptions += 1;
                if n_exceptions > max_exceptions {
                    return None;
                }
            }
        }
    }
    // Widening the denominator keeps every earlier value representable in exact arithmetic,
    // and in floating point whenever numerator and denominator are exact as f64; this
    // second pass checks each value against the final denominator regardless.
    let numerators: Vec<Option<i64>> = values
        .iter()
        .map(|&value| numerator_of(value, denominator))
        .collect();
    let n_exceptions = numerators.iter().filter(|m| m.is_none()).count();
    (n_exceptions <= max_exceptions).then_some(Fractions {
        denominator,
        numerators,
    })
}

/// The smallest multiple of `denominator` by a power of ten that represents `value`.
/// Decimals are tried before continued fractions because for numbers with many digits
/// another fraction, with a smaller but unrelated denominator, may round to the same float,
/// and a chunk of such values would need the product of all those denominators.
fn decimal_widening(value: f64, denominator: u64) -> Option<u64> {
    let mut power_of_ten = 1u64;
    loop {
        power_of_ten *= 10;
        let widened = lcm(denominator, power_of_ten)?;
        if widened > MAX_DENOMINATOR {
            return None;
        }
        if numerator_of(value, widened).is_some() {
            return Some(widened);
        }
    }
}

/// The integer `m` with `value_of(m, denominator)` equal to `value` bit for bit, if any.
pub fn numerator_of(value: f64, denominator: u64) -> Option<i64> {
    let scaled = (value * denominator as f64).round();
    if scaled.is_nan() || scaled.abs() > MAX_NUMERATOR as f64 {
        return None;
    }
    let guess = scaled as i64;
    // The product may round across an integer when the numerator is beyond 2^52.
    [guess, guess - 1, guess + 1]
        .into_iter()
        .filter(|numerator| numerator.abs() <= MAX_NUMERATOR)
        .find(|&numerator| value_of(numerator, denominator).to_bits() == value.to_bits())
}

/// The smallest denominator `q <= MAX_DENOMINATOR` among the convergents of `value`'s exact
/// binary fraction for which some numerator reproduces `value` bit for bit.
///
/// A fraction `p/q` that rounds to `value` lies within half an ulp of it, which for the
/// denominators that matter is far closer than 1/(2q²); by Legendre's theorem such a
/// fraction is a convergent, so walking the convergents finds it.
pub fn smallest_denominator(value: f64) -> Option<u64> {
    if !value.is_finite() || value.to_bits() == (-0.0f64).to_bits() {
        return None;
    }
    if value == 0.0 {
        return Some(1);
    }
    let bits = value.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut mantissa, exponent) = if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased_exponent - 1075)
    };
    if exponent >= 0 {
        return Some(1);
    }
    // value = ±mantissa / 2^shift exactly.
    let mut shift = exponent.unsigned_abs();
    let n_twos = mantissa.trailing_zeros().min(shift);
    mantissa >>= n_twos;
    shift -= n_twos;
    if shift == 0 {
        return Some(1);
    }
    if shift > 126 {
        // |value| < 2^-73: no fraction with a denominator below 2^40 is that small but for 0.
        return None;
    }
    let magnitude = value.abs();
    let (mut numerator, mut denominator) = (u128::from(mantissa), 1u128 << shift);
    // Convergents h/k: (h₋₂, h₋₁) = (0, 1), (k₋₂, k₋₁) = (1, 0).
    let (mut h_before, mut h_last) = (0u128, 1u128);
    let (mut k_before, mut k_last) = (1u128, 0u128);
    while denominator != 0 {
        let term = numerator / denominator;
        (numerator, denominator) = (denominator, numerator % denominator);
        let k = term.checked_mul(k_last)?.checked_add(k_before)?;
        if k > u128::from(MAX_DENOMINATOR) {
            return None;
        }
        let h = term.checked_mul(h_last)?.checked_add(h_before)?;
        if h > MAX_NUMERATOR as u128 {
            return None;
        }
        if (h as f64 / k as f64).to_bits() == magnitude.to_bits() {
            return Some(k as u64);
        }
        (h_before, h_last) = (h_last, h);
        (k_before, k_last) = (k_last, k);
    }
    None
}

pub fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Least common multiple, `None` on overflow.
fn lcm(a: u64, b: u64) -> Option<u64> {
    (a / gcd(a, b)).checked_mul(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_get_the_smallest_denominator_of_their_digits() {
        assert_eq!(smallest_denominator(0.48), Some(25));
        assert_eq!(smallest_denominator(0.5), Some(2));
        assert_eq!(smallest_denominator(6981080.79), Some(100));
        assert_eq!(smallest_denominator(26.85), Some(20));
        assert_eq!(smallest_denominator(0.11575), Some(4000));
        assert_eq!(smallest_denominator(41.0), Some(1));
        assert_eq!(smallest_denominator(1e300), Some(1));
    }

    #[test]
    fn ratios_of_ticks_get_their_tick_count() {
        let ticks_per_interval = 12_000;
        let value = 1_237.0 / ticks_per_interval as f64;
        assert_eq!(smallest_denominator(value), Some(ticks_per_interval));
    }

    #[test]
    fn values_without_a_small_fraction_have_none() {
        assert_eq!(smallest_denominator(0.1 + 0.2), None);
        assert_eq!(smallest_denominator(1e-30), None);
        assert_eq!(smallest_denominator(f64::NAN), None);
        assert_eq!(smallest_denominator(f64::INFINITY), None);
        assert_eq!(smallest_denominator(-0.0), None);
        assert_eq!(smallest_denominator(f64::from_bits(1)), None);
    }

    #[test]
    fn a_chunk_of_mixed_decimals_shares_one_denominator() {
        let fractions = find(&[0.5, 0.25, 0.1, 3.0], 0).unwrap();
        assert_eq!(fractions.denominator, 100);
        assert_eq!(
            fractions.numerators,
            vec![Some(50), Some(25), Some(10), Some(300)]
        );
    }

    #[test]
    fn special_values_become_exceptions() {
        let stale_marker = f64::from_bits(0x7ff0_0000_0000_0002);
        let values = [1.5, stale_marker, -0.0, f64::INFINITY, 2.5];
        let fractions = find(&values, 3).unwrap();
        assert_eq!(fractions.denominator, 10);
        assert_eq!(
            fractions.numerators,
            vec![Some(15), None, None, None, Some(25)]
        );
        assert_eq!(find(&values, 2), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_numerator_found_reproduces_its_value_exactly(
            values in proptest::collection::vec(any::<f64>(), 1..50)
        ) {
            if let Some(fractions) = find(&values, values.len()) {
                for (value, numerator) in values.iter().zip(&fractions.numerators) {
                    if let Some(numerator) = numerator {
                        prop_assert_eq!(value_of(*numerator, fractions.denominator).to_bits(), value.to_bits());
                    }
                }
            }
        }

        #[test]
        fn decimals_with_few_digits_are_never_exceptions(
            numerators in proptest::collection::vec(-10_000_000_000i64..10_000_000_000, 1..50),
            n_digits in 0u32..=6,
        ) {
            let text: Vec<f64> = numerators
                .iter()
                .map(|&m| format!("{}", m as f64 / 10f64.powi(n_digits as i32)).parse().unwrap())
                .collect();
            let fractions = find(&text, 0).unwrap();
            prop_assert!(fractions.denominator <= 10u64.pow(n_digits));
        }
    }
}
