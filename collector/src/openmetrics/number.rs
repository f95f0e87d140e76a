//! Numbers in OpenMetrics text: sample values (reals, `NaN`, `±Inf`) and timestamps in
//! seconds, which become milliseconds. The common short forms take hand-written fast paths
//! whose results equal the standard library's bit for bit; everything else goes through
//! `str::parse` after a check against the OpenMetrics grammar, which is stricter than Rust's.

/// Earliest and latest timestamps accepted, in seconds: years 1 to 9999. Anything outside is
/// almost surely a file written in milliseconds or nanoseconds.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Why a number did not parse.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NumberError {
    NotANumber,
    OutOfRange,
}

/// Checks `realnumber` of the OpenMetrics grammar: `[sign] digits [. digits] [e [sign]
/// digits]` with at least one mantissa digit.
fn is_real_number(token: &[u8]) -> bool {
    let mut pos = usize::from(matches!(token.first(), Some(b'+' | b'-')));
    let mantissa_start = pos;
    let mut mantissa_digits = 0;
    while token.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
        mantissa_digits += 1;
    }
    if token.get(pos) == Some(&b'.') {
        pos += 1;
        while token.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 || pos == mantissa_start {
        return false;
    }
    if matches!(token.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        if matches!(token.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        let exponent_start = pos;
        while token.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        if pos == exponent_start {
            return false;
        }
    }
    pos == token.len()
}

/// Parses a sample or exemplar value: a real number, `NaN`, or `±Inf`/`±Infinity` (the
/// words in any case).
pub(super) fn number(token: &[u8]) -> Result<f64, NumberError> {
    if let Some(value) = short_decimal(token) {
        return Ok(value);
    }
    let unsigned = match token.first() {
        Some(b'+' | b'-') => &token[1..],
        _ => token,
    };
    if unsigned.first().is_some_and(u8::is_ascii_alphabetic) {
        let negative = token.first() == Some(&b'-');
        if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
            return Ok(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        if token.eq_ignore_ascii_case(b"nan") {
            return Ok(f64::NAN);
        }
        return Err(NumberError::NotANumber);
    }
    if !is_real_number(token) {
        return Err(NumberError::NotANumber);
    }
    let value: f64 = std::str::from_utf8(token)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(NumberError::NotANumber)?;
    if value.is_infinite() {
        return Err(NumberError::OutOfRange);
    }
    Ok(value)
}

/// Powers of ten that are exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The fast path of [`number`] for `[sign] digits [. digits]` with at most 15 digits, which
/// is what exporters mostly write. The digits as an integer and the power of ten are both
/// exact in an f64, so one division rounds correctly (Clinger's fast path) and the result is
/// the standard library's, bit for bit. `None` means another form.
fn short_decimal(token: &[u8]) -> Option<f64> {
    let (negative, body) = match token.first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0;
    let mut fraction_digits = 0;
    let mut seen_point = false;
    for &byte in body {
        if byte.is_ascii_digit() {
            mantissa = mantissa * 10 + u64::from(byte - b'0');
            n_digits += 1;
            fraction_digits += usize::from(seen_point);
            if n_digits > 15 {
                return None;
            }
        } else if byte == b'.' && !seen_point {
            seen_point = true;
        } else {
            return None;
        }
    }
    if n_digits == 0 {
        return None;
    }
    // Exact: the mantissa is below 10^15 < 2^53.
    let magnitude = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction_digits];
    Some(if negative { -magnitude } else { magnitude })
}

/// Parses a timestamp in seconds (a real number, possibly fractional or with an exponent)
/// into milliseconds, rounding to the nearest millisecond (halves away from zero).
pub(super) fn timestamp_ms(token: &[u8]) -> Result<i64, NumberError> {
    if let Some(ms) = plain_decimal_ms(token)? {
        return Ok(ms);
    }
    if !is_real_number(token) {
        return Err(NumberError::NotANumber);
    }
    let seconds: f64 = std::str::from_utf8(token)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(NumberError::NotANumber)?;
    if !(MIN_TIMESTAMP_SECONDS as f64..=MAX_TIMESTAMP_SECONDS as f64).contains(&seconds) {
        return Err(NumberError::OutOfRange);
    }
    // Within ±2^53 ms, so the product is exact enough and the cast cannot saturate.
    Ok((seconds * 1000.0).round() as i64)
}

/// The fast path of [`timestamp_ms`] for `[sign] digits [. digits]`, in integer arithmetic
/// so that `1735689600.123` is exactly 1735689600123 ms. `Ok(None)` means another form.
fn plain_decimal_ms(token: &[u8]) -> Result<Option<i64>, NumberError> {
    let (negative, body) = match token.first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    let mut seconds: i64 = 0;
    let mut integer_digits = 0;
    while let Some(digit) = body
        .get(integer_digits)
        .map(|byte| byte.wrapping_sub(b'0'))
        .filter(|digit| *digit <= 9)
    {
        if integer_digits == 18 {
            // More digits than an i64 surely holds: the general path decides.
            return Ok(None);
        }
        seconds = seconds * 10 + i64::from(digit);
        integer_digits += 1;
    }
    if integer_digits == 0 {
        return Ok(None);
    }
    let mut millis: i64 = 0;
    if let Some((&b'.', fraction)) = body[integer_digits..].split_first() {
        if !fraction.iter().all(u8::is_ascii_digit) {
            return Ok(None);
        }
        for (index, &digit) in fraction.iter().take(3).enumerate() {
            millis += i64::from(digit - b'0') * [100, 10, 1][index];
        }
        // Round half away from zero on the first digit past the millisecond.
        millis += i64::from(fraction.get(3).is_some_and(|&digit| digit >= b'5'));
    } else if integer_digits != body.len() {
        return Ok(None);
    }
    if seconds > MAX_TIMESTAMP_SECONDS + 1 {
        return Err(NumberError::OutOfRange);
    }
    let magnitude = seconds * 1000 + millis;
    let ms = if negative { -magnitude } else { magnitude };
    if !(MIN_TIMESTAMP_SECONDS * 1000..=MAX_TIMESTAMP_SECONDS * 1000 + 999).contains(&ms) {
        return Err(NumberError::OutOfRange);
    }
    Ok(Some(ms))
}

/// Milliseconds shown as the seconds a file would hold: `1735689600` or `1735689600.5`.
pub(super) fn seconds_text(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    if millis == 0 {
        return seconds.to_string();
    }
    let (sign, magnitude) = if ms < 0 { ("-", -ms) } else { ("", ms) };
    let text = format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000);
    text.trim_end_matches('0').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_accept_the_openmetrics_forms() {
        assert_eq!(number(b"17"), Ok(17.0));
        assert_eq!(number(b"-0.5"), Ok(-0.5));
        assert_eq!(number(b"+.5"), Ok(0.5));
        assert_eq!(number(b"5."), Ok(5.0));
        assert_eq!(number(b"1.89e-7"), Ok(1.89e-7));
        assert_eq!(number(b"4.20072246E+06"), Ok(4.20072246e6));
        assert_eq!(number(b"0042"), Ok(42.0));
        assert_eq!(number(b"+Inf"), Ok(f64::INFINITY));
        assert_eq!(number(b"-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(number(b"Infinity"), Ok(f64::INFINITY));
        assert!(number(b"NaN").unwrap().is_nan());
        assert!(number(b"nan").unwrap().is_nan());
        assert!(number(b"-0").unwrap().is_sign_negative());
    }

    #[test]
    fn numbers_reject_what_the_grammar_does_not_allow() {
        for token in [
            &b""[..],
            b"-",
            b".",
            b"e5",
            b"1e",
            b"1e+",
            b"0x10",
            b"1_000",
            b"+NaN",
            b"infinite",
            b"1.2.3",
            b" 1",
        ] {
            assert_eq!(number(token), Err(NumberError::NotANumber), "{token:?}");
        }
        assert_eq!(number(b"1e400"), Err(NumberError::OutOfRange));
    }

    #[test]
    fn timestamps_become_milliseconds_rounded_to_the_nearest() {
        assert_eq!(timestamp_ms(b"1735689600"), Ok(1_735_689_600_000));
        assert_eq!(timestamp_ms(b"1735689600.123"), Ok(1_735_689_600_123));
        assert_eq!(timestamp_ms(b"1735689600.1"), Ok(1_735_689_600_100));
        assert_eq!(timestamp_ms(b"1735689600.1234"), Ok(1_735_689_600_123));
        assert_eq!(timestamp_ms(b"1735689600.1235"), Ok(1_735_689_600_124));
        assert_eq!(timestamp_ms(b"1735689600.9996"), Ok(1_735_689_601_000));
        assert_eq!(timestamp_ms(b"1735689600."), Ok(1_735_689_600_000));
        assert_eq!(timestamp_ms(b"-1.5"), Ok(-1_500));
        assert_eq!(timestamp_ms(b"+2"), Ok(2_000));
        assert_eq!(timestamp_ms(b"1.7356896e9"), Ok(1_735_689_600_000));
        assert_eq!(timestamp_ms(b".25"), Ok(250));
    }

    #[test]
    fn timestamps_reject_words_and_milliseconds_by_mistake() {
        assert_eq!(timestamp_ms(b"+Inf"), Err(NumberError::NotANumber));
        assert_eq!(timestamp_ms(b"NaN"), Err(NumberError::NotANumber));
        assert_eq!(timestamp_ms(b"12:00"), Err(NumberError::NotANumber));
        assert_eq!(timestamp_ms(b"1735689600000"), Err(NumberError::OutOfRange));
        assert_eq!(
            timestamp_ms(b"99999999999999999999999"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(timestamp_ms(b"1e300"), Err(NumberError::OutOfRange));
    }

    #[test]
    fn seconds_text_shows_milliseconds_only_when_there_are_some() {
        assert_eq!(seconds_text(1_735_689_600_000), "1735689600");
        assert_eq!(seconds_text(1_735_689_600_500), "1735689600.5");
        assert_eq!(seconds_text(1_735_689_600_012), "1735689600.012");
        assert_eq!(seconds_text(-1_500), "-1.5");
    }

    proptest! {
        #[test]
        fn short_decimals_parse_as_the_standard_library_does(
            sign in prop_oneof![Just(""), Just("-"), Just("+")],
            integer in "[0-9]{0,9}",
            fraction in proptest::option::of("[0-9]{0,9}"),
        ) {
            let text = match &fraction {
                Some(fraction) => format!("{sign}{integer}.{fraction}"),
                None => format!("{sign}{integer}"),
            };
            let expected: Option<f64> = text.parse().ok().filter(|_| is_real_number(text.as_bytes()));
            let got = number(text.as_bytes()).ok();
            prop_assert_eq!(got.map(f64::to_bits), expected.map(f64::to_bits), "{}", text);
        }

        #[test]
        fn timestamps_with_three_decimals_are_exact_milliseconds(ms in -10_000_000_000_000_i64..10_000_000_000_000) {
            let sign = if ms < 0 { "-" } else { "" };
            let text = format!("{sign}{}.{:03}", ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
            prop_assert_eq!(timestamp_ms(text.as_bytes()), Ok(ms));
        }
    }
}
