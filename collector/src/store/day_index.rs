//! Day indexes: where the chunks (or rollup blocks) of one origin and UTC day are, in a file
//! of the store's own beside that day's chunk file (`chunks/import-3/2025-01-01.index`),
//! written once and never changed, like a Prometheus block's index. Imports write them at
//! commit instead of one sled key per chunk, because sled costs several times the bytes of
//! what it holds (its log keeps every rewritten leaf until a segment is cleaned), while
//! this costs about nine bytes per chunk.
//!
//! File: `VIGILIDX` ‖ version (u32 LE) ‖ body ‖ CRC-32C of everything before it (u32 LE).
//! Body: number of entries (LEB128), then per entry, sorted by series then start:
//! series id minus the previous entry's (LEB128) ‖ start: `(start - day) / WINDOW << 1`
//! when it is a window start, else `(start - day) << 1 | 1` (LEB128) ‖ `len << 1 | inline`
//! (LEB128) ‖ for an inline value its bytes, else the frame's offset minus the previous
//! in-file entry's (zigzag LEB128).
//!
//! A file is written to `<name>.index.tmp`, fsynced, renamed and its folder fsynced, so it
//! is whole or absent; a damaged one (its checksum fails) is reported, never half read.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::chunk_files::Location;
use super::head::WINDOW_MS;
use super::varint::{put_varint, take_varint};
use super::wal::{crc32c, sync_dir};

const MAGIC: &[u8; 8] = b"VIGILIDX";
const VERSION: u32 = 1;
/// Suffix of a day index file.
pub(super) const INDEX_SUFFIX: &str = ".index";
const TMP_SUFFIX: &str = ".tmp";

/// Where a chunk or block is: in sled's value itself when it is a few bytes, or in its day's
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SpanValue {
    Inline(Vec<u8>),
    InFile(Location),
}

/// One chunk or block of a day index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub series_id: u64,
    pub start_ms: i64,
    pub value: SpanValue,
}

/// The entries of one origin and day, sorted by (series, start).
#[derive(Debug, Default)]
pub(super) struct DayIndex {
    entries: Vec<IndexEntry>,
}

impl DayIndex {
    /// The entries of `series_id` starting in `[start_ms, end_ms]`.
    pub fn range(&self, series_id: u64, start_ms: i64, end_ms: i64) -> &[IndexEntry] {
        let first = self
            .entries
            .partition_point(|entry| (entry.series_id, entry.start_ms) < (series_id, start_ms));
        let end = self
            .entries
            .partition_point(|entry| (entry.series_id, entry.start_ms) <= (series_id, end_ms));
        &self.entries[first..end.max(first)]
    }

    pub fn holds_series(&self, series_id: u64) -> bool {
        !self.range(series_id, i64::MIN, i64::MAX).is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Encodes the entries of day `day_ms` (sorted by series then start, each starting in
/// that day) as a file's bytes.
pub(super) fn encode(day_ms: i64, entries: &[IndexEntry]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16 + entries.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    put_varint(&mut out, entries.len() as u64);
    let (mut previous_series, mut previous_offset) = (0u64, 0u64);
    let mut previous_key: Option<(u64, i64)> = None;
    for entry in entries {
        let key = (entry.series_id, entry.start_ms);
        if previous_key.is_some_and(|previous| previous >= key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "day index entries must be sorted and distinct",
            ));
        }
        previous_key = Some(key);
        let since_day = entry
            .start_ms
            .checked_sub(day_ms)
            .filter(|since| (0..super::chunk_files::DAY_MS).contains(since))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a day index entry starts outside its day",
                )
            })? as u64;
        put_varint(&mut out, entry.series_id - previous_series);
        previous_series = entry.series_id;
        if since_day.is_multiple_of(WINDOW_MS as u64) {
            put_varint(&mut out, since_day / WINDOW_MS as u64 * 2);
        } else {
            put_varint(&mut out, since_day << 1 | 1);
        }
        match &entry.value {
            SpanValue::Inline(bytes) => {
                put_varint(&mut out, (bytes.len() as u64) << 1 | 1);
                out.extend_from_slice(bytes);
            }
            SpanValue::InFile(location) => {
                put_varint(&mut out, u64::from(location.len) << 1);
                put_varint(
                    &mut out,
                    zigzag(location.offset.wrapping_sub(previous_offset) as i64),
                );
                previous_offset = location.offset;
            }
        }
    }
    let crc = crc32c(&[&out]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The inverse of [`encode`].
pub(super) fn decode(day_ms: i64, bytes: &[u8]) -> io::Result<DayIndex> {
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or_else(|| invalid("the day index is shorter than its header"))?;
    if crc32c(&[body]) != u32::from_le_bytes(*crc) {
        return Err(invalid("the day index does not match its checksum"));
    }
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("the file is not a day index"))?;
    let (version, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| invalid("the day index has no version"))?;
    if u32::from_le_bytes(*version) != VERSION {
        return Err(invalid("the day index is of a newer version"));
    }
    let truncated = || invalid("the day index ends inside an entry");
    let n = take_varint(&mut rest).ok_or_else(truncated)?;
    // Every entry takes at least three bytes: no count beyond that is believed.
    let mut entries = Vec::with_capacity((n as usize).min(rest.len() / 3));
    let (mut series_id, mut offset) = (0u64, 0u64);
    for _ in 0..n {
        series_id = series_id
            .checked_add(take_varint(&mut rest).ok_or_else(truncated)?)
            .ok_or_else(truncated)?;
        let start = take_varint(&mut rest).ok_or_else(truncated)?;
        let since_day = if start & 1 == 0 {
            (start >> 1).checked_mul(WINDOW_MS as u64)
        } else {
            Some(start >> 1)
        }
        .and_then(|since| i64::try_from(since).ok())
        .ok_or_else(truncated)?;
        let start_ms = day_ms.checked_add(since_day).ok_or_else(truncated)?;
        let len_inline = take_varint(&mut rest).ok_or_else(truncated)?;
        let len = usize::try_from(len_inline >> 1).map_err(|_| truncated())?;
        let value = if len_inline & 1 == 1 {
            if rest.len() < len {
                return Err(truncated());
            }
            let (inline, after) = rest.split_at(len);
            rest = after;
            SpanValue::Inline(inline.to_vec())
        } else {
            offset =
                offset.wrapping_add(unzigzag(take_varint(&mut rest).ok_or_else(truncated)?) as u64);
            SpanValue::InFile(Location {
                offset,
                len: u32::try_from(len).map_err(|_| truncated())?,
            })
        };
        entries.push(IndexEntry {
            series_id,
            start_ms,
            value,
        });
    }
    if !rest.is_empty() {
        return Err(invalid("the day index has bytes after its last entry"));
    }
    Ok(DayIndex { entries })
}

/// Writes a day index at `path`, whole or not at all: a temporary file, fsynced, renamed,
/// then the folder fsynced.
pub(super) fn write(path: &Path, day_ms: i64, entries: &[IndexEntry]) -> io::Result<()> {
    let bytes = encode(day_ms, entries)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = std::path::PathBuf::from(tmp);
    let folder = path.parent().expect("a day index is in a folder");
    fs::create_dir_all(folder)?;
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(folder)
}

/// Reads the day index at `path`.
pub(super) fn read(path: &Path, day_ms: i64) -> io::Result<DayIndex> {
    decode(day_ms, &fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 1_735_689_600_000;

    fn any_entries() -> impl Strategy<Value = Vec<IndexEntry>> {
        let value = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(SpanValue::Inline),
            (any::<u64>(), any::<u32>())
                .prop_map(|(offset, len)| SpanValue::InFile(Location { offset, len })),
        ];
        let start = prop_oneof![
            (0i64..12).prop_map(|window| window * WINDOW_MS),
            0i64..super::super::chunk_files::DAY_MS,
        ];
        proptest::collection::btree_map((any::<u64>(), start), value, 0..40).prop_map(|map| {
            map.into_iter()
                .map(|((series_id, since), value)| IndexEntry {
                    series_id,
                    start_ms: DAY + since,
                    value,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn day_indexes_round_trip(entries in any_entries()) {
            let bytes = encode(DAY, &entries).unwrap();
            prop_assert_eq!(decode(DAY, &bytes).unwrap().entries, entries);
        }

        #[test]
        fn a_day_index_cut_anywhere_or_with_a_byte_changed_does_not_decode(
            entries in any_entries(), cut in any::<prop::sample::Index>(), flip in 1u8..,
        ) {
            let bytes = encode(DAY, &entries).unwrap();
            let at = cut.index(bytes.len());
            prop_assert!(decode(DAY, &bytes[..at]).is_err());
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            prop_assert!(decode(DAY, &damaged).is_err());
        }
    }

    #[test]
    fn a_window_start_costs_one_byte_and_ranges_find_a_series() {
        let entries: Vec<IndexEntry> = (0..3u64)
            .flat_map(|series_id| {
                (0..12).map(move |window| IndexEntry {
                    series_id,
                    start_ms: DAY + window * WINDOW_MS,
                    value: SpanValue::InFile(Location {
                        offset: 12 + (series_id * 12 + window as u64) * 300,
                        len: 292,
                    }),
                })
            })
            .collect();
        let bytes = encode(DAY, &entries).unwrap();
        // Series delta, start, length (two bytes) and offset delta (two bytes).
        assert!(
            bytes.len() <= 16 + entries.len() * 6,
            "{} bytes",
            bytes.len()
        );
        let index = decode(DAY, &bytes).unwrap();
        let one = index.range(1, DAY + WINDOW_MS, DAY + 3 * WINDOW_MS);
        assert_eq!(one.len(), 3);
        assert!(one.iter().all(|entry| entry.series_id == 1));
        assert!(index.holds_series(2));
        assert!(!index.holds_series(3));
    }

    #[test]
    fn entries_out_of_order_or_outside_the_day_are_refused() {
        let entry = |series_id, start_ms| IndexEntry {
            series_id,
            start_ms,
            value: SpanValue::Inline(vec![1]),
        };
        assert!(encode(DAY, &[entry(2, DAY), entry(1, DAY)]).is_err());
        assert!(encode(DAY, &[entry(1, DAY - 1)]).is_err());
    }

    #[test]
    fn a_written_index_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live").join("2025-01-01.index");
        let entries = vec![IndexEntry {
            series_id: 7,
            start_ms: DAY,
            value: SpanValue::InFile(Location {
                offset: 12,
                len: 100,
            }),
        }];
        write(&path, DAY, &entries).unwrap();
        assert_eq!(read(&path, DAY).unwrap().entries, entries);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["2025-01-01.index"]);
    }
}
