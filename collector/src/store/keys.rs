//! Byte layouts of the keys and values in the store's sled trees, and nothing else: what goes
//! in which tree is decided in [`super`]. Every variable-length field is length-prefixed, so
//! any string (even one holding a NUL byte) encodes unambiguously, and keys sort the way the
//! range scans in [`super`] need.
//!
//! | tree               | key                                        | value            |
//! |--------------------|--------------------------------------------|------------------|
//! | `series`           | series id (u64 BE)                         | encoded labels   |
//! | `series_by_labels` | encoded labels                             | series id        |
//! | `postings`         | str(name) ‖ str(value) ‖ series id         | empty            |
//! | `chunks`           | series id ‖ window start ‖ origin (u32 BE) | chunk            |
//! | `rollup_5m`        | series id ‖ day start ‖ origin             | rollup block     |
//! | `writers`          | str(host) ‖ spool id (u64 BE)              | last seq (u64 BE)|
//! | `hosts`            | host (UTF-8)                               | JSON             |
//! | `imports`          | origin (u32 BE)                            | JSON             |
//! | `meta`             | name (ASCII)                               | u64 BE           |
//! | `samples`          | series id ‖ timestamp                      | f64 bits (BE)    |
//!
//! An import's chunks and blocks are not in `chunks` and `rollup_5m` but in day index files
//! ([`super::day_index`]); stores of format 2 have them there, and are read as they are.
//!
//! `str(s)` is the length of `s` in bytes as u32 BE followed by its bytes. Times (window and
//! day starts, timestamps) are milliseconds, sign-flipped big-endian so that they sort in
//! numeric order. The origin of a chunk is 0 for samples that came through the log and an
//! import's id for imported ones. `samples` is the first layout's one-key-per-sample tree,
//! read only to migrate an old store.

use vigil_proto::model::Labels;

use super::WriterId;

/// Appends `str(text)`: its byte length as u32 big-endian, then the bytes.
fn put_str(buffer: &mut Vec<u8>, text: &str) {
    // Label names and values are bounded far below 4 GiB by vigil_proto::limits.
    let length = u32::try_from(text.len()).expect("a label is shorter than 4 GiB");
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

/// Reads one `str(..)` from the front of `bytes`, returning it and the rest.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (length, rest) = bytes.split_first_chunk::<4>()?;
    let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
    if rest.len() < length {
        return None;
    }
    let (text, rest) = rest.split_at(length);
    Some((std::str::from_utf8(text).ok()?, rest))
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (number, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*number), rest))
}

/// A label set as `str(name) ‖ str(value)` per pair, in the set's (sorted) order. Equal sets
/// encode equal, so the encoding keys `series_by_labels`.
pub(super) fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(labels.iter().map(|(n, v)| 8 + n.len() + v.len()).sum());
    for (name, value) in labels.iter() {
        put_str(&mut buffer, name);
        put_str(&mut buffer, value);
    }
    buffer
}

/// [`encode_labels`] of `labels` plus `name_label="name"`, without building that set.
pub(super) fn encode_labels_with_name(name_label: &str, name: &str, labels: &Labels) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(
        16 + name.len()
            + labels
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>(),
    );
    let mut name_written = false;
    for (label, value) in labels.iter() {
        if !name_written && label >= name_label {
            put_str(&mut buffer, name_label);
            put_str(&mut buffer, name);
            name_written = true;
            if label == name_label {
                continue;
            }
        }
        put_str(&mut buffer, label);
        put_str(&mut buffer, value);
    }
    if !name_written {
        put_str(&mut buffer, name_label);
        put_str(&mut buffer, name);
    }
    buffer
}

/// The inverse of [`encode_labels`]; `None` when the bytes are not such an encoding.
pub(super) fn decode_labels(mut bytes: &[u8]) -> Option<Labels> {
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let (name, rest) = take_str(bytes)?;
        let (value, rest) = take_str(rest)?;
        pairs.push((name, value));
        bytes = rest;
    }
    Some(Labels::from_pairs(pairs))
}

pub(super) fn encode_series_id(series_id: u64) -> [u8; 8] {
    series_id.to_be_bytes()
}

pub(super) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Prefix of every posting of label `name`, whatever its value.
pub(super) fn postings_name_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + name.len());
    put_str(&mut key, name);
    key
}

/// Prefix of the postings of `name="value"`: the ids of the series that carry that pair.
pub(super) fn postings_pair_prefix(name: &str, value: &str) -> Vec<u8> {
    let mut key = postings_name_prefix(name);
    put_str(&mut key, value);
    key
}

pub(super) fn postings_key(name: &str, value: &str, series_id: u64) -> Vec<u8> {
    let mut key = postings_pair_prefix(name, value);
    key.extend_from_slice(&series_id.to_be_bytes());
    key
}

/// Splits a postings key of label `name` (found under [`postings_name_prefix`]) into its value
/// and series id.
pub(super) fn decode_postings_key<'a>(name_prefix: &[u8], key: &'a [u8]) -> Option<(&'a str, u64)> {
    let rest = key.strip_prefix(name_prefix)?;
    let (value, rest) = take_str(rest)?;
    let (series_id, rest) = take_u64(rest)?;
    rest.is_empty().then_some((value, series_id))
}

/// Timestamps are signed; flipping the sign bit makes their big-endian bytes sort in numeric
/// order, negatives first.
fn timestamp_bytes(timestamp_ms: i64) -> [u8; 8] {
    ((timestamp_ms as u64) ^ (1 << 63)).to_be_bytes()
}

/// Key of a sample in the first layout's `samples` tree, which only migration reads now.
#[cfg(test)]
pub(super) fn sample_key(series_id: u64, timestamp_ms: i64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&series_id.to_be_bytes());
    key[8..].copy_from_slice(&timestamp_bytes(timestamp_ms));
    key
}

/// Series id and timestamp of a `samples` key; `None` when the key is not 16 bytes.
pub(super) fn decode_sample_key(key: &[u8]) -> Option<(u64, i64)> {
    let key: &[u8; 16] = key.try_into().ok()?;
    let series_id = u64::from_be_bytes(key[..8].try_into().ok()?);
    let timestamp_ms = (u64::from_be_bytes(key[8..].try_into().ok()?) ^ (1 << 63)) as i64;
    Some((series_id, timestamp_ms))
}

/// Key of a chunk (`chunks`) or rollup block (`rollup_5m`): series, start, origin.
pub(super) fn span_key(series_id: u64, start_ms: i64, origin: u32) -> [u8; 20] {
    let mut key = [0; 20];
    key[..8].copy_from_slice(&series_id.to_be_bytes());
    key[8..16].copy_from_slice(&timestamp_bytes(start_ms));
    key[16..].copy_from_slice(&origin.to_be_bytes());
    key
}

/// The parts of a [`span_key`]; `None` when the key is not 20 bytes.
pub(super) fn decode_span_key(key: &[u8]) -> Option<(u64, i64, u32)> {
    let key: &[u8; 20] = key.try_into().ok()?;
    let series_id = u64::from_be_bytes(key[..8].try_into().ok()?);
    let start = (u64::from_be_bytes(key[8..16].try_into().ok()?) ^ (1 << 63)) as i64;
    let origin = u32::from_be_bytes(key[16..].try_into().ok()?);
    Some((series_id, start, origin))
}

#[cfg(test)]
pub(super) fn encode_value(value: f64) -> [u8; 8] {
    value.to_bits().to_be_bytes()
}

pub(super) fn decode_value(bytes: &[u8]) -> Option<f64> {
    decode_u64(bytes).map(f64::from_bits)
}

pub(super) fn writer_key(writer: &WriterId) -> Vec<u8> {
    let mut key = Vec::with_capacity(12 + writer.host.len());
    put_str(&mut key, &writer.host);
    key.extend_from_slice(&writer.spool_id.to_be_bytes());
    key
}

pub(super) fn decode_writer_key(key: &[u8]) -> Option<WriterId> {
    let (host, rest) = take_str(key)?;
    let (spool_id, rest) = take_u64(rest)?;
    rest.is_empty().then(|| WriterId {
        host: host.to_owned(),
        spool_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::vec((".{0,12}", ".{0,12}"), 0..6).prop_map(Labels::from_pairs)
    }

    proptest! {
        #[test]
        fn labels_round_trip_through_their_encoding(labels in any_labels()) {
            prop_assert_eq!(decode_labels(&encode_labels(&labels)), Some(labels));
        }

        #[test]
        fn adding_the_name_while_encoding_equals_encoding_the_named_set(
            labels in any_labels(), name in ".{0,8}",
        ) {
            let mut named = labels.clone();
            named.insert("__name__", name.clone());
            prop_assert_eq!(encode_labels_with_name("__name__", &name, &labels), encode_labels(&named));
        }

        #[test]
        fn distinct_label_sets_encode_differently(a in any_labels(), b in any_labels()) {
            prop_assert_eq!(a == b, encode_labels(&a) == encode_labels(&b));
        }

        #[test]
        fn sample_keys_sort_like_series_then_time(
            a in (0u64..4, any::<i64>()),
            b in (0u64..4, any::<i64>()),
        ) {
            prop_assert_eq!(sample_key(a.0, a.1).cmp(&sample_key(b.0, b.1)), a.cmp(&b));
            prop_assert_eq!(decode_sample_key(&sample_key(a.0, a.1)), Some(a));
        }

        #[test]
        fn span_keys_sort_like_series_then_start_then_origin(
            a in (0u64..4, any::<i64>(), 0u32..3),
            b in (0u64..4, any::<i64>(), 0u32..3),
        ) {
            prop_assert_eq!(span_key(a.0, a.1, a.2).cmp(&span_key(b.0, b.1, b.2)), a.cmp(&b));
            prop_assert_eq!(decode_span_key(&span_key(a.0, a.1, a.2)), Some(a));
        }

        #[test]
        fn postings_keys_give_back_value_and_series_id(
            name in ".{0,8}", value in ".{0,8}", series_id in any::<u64>(),
        ) {
            let key = postings_key(&name, &value, series_id);
            let prefix = postings_name_prefix(&name);
            prop_assert!(key.starts_with(&postings_pair_prefix(&name, &value)));
            prop_assert_eq!(decode_postings_key(&prefix, &key), Some((value.as_str(), series_id)));
        }
    }

    #[test]
    fn a_label_value_holding_a_nul_byte_does_not_leak_into_the_next_pair() {
        let tricky = Labels::from_pairs([("a", "x\0b"), ("c", "d")]);
        let plain = Labels::from_pairs([("a", "x"), ("b", "\0c"), ("c", "d")]);
        assert_ne!(encode_labels(&tricky), encode_labels(&plain));
        assert_eq!(decode_labels(&encode_labels(&tricky)), Some(tricky));
    }

    #[test]
    fn truncated_label_bytes_do_not_decode() {
        let bytes = encode_labels(&Labels::from_pairs([("__name__", "up")]));
        assert_eq!(decode_labels(&bytes[..bytes.len() - 1]), None);
    }
}
