//! Streaming OpenMetrics text parser behind `vigil-collector import` and `backtest`: turns
//! `# TYPE`/`# UNIT`/`# HELP` lines and timestamped samples into [`OmSample`]s one line at a
//! time, and refuses anything the OpenMetrics 1.0 text format forbids with an [`OmError`]
//! that names the file, the line and the fix.
//!
//! [`OmReader`] wraps any `BufRead`; [`open`] opens a file and gunzips it when it is gzip.
//! Memory stays bounded whatever the file's size: one line buffer, the names of the families
//! already read, and the last timestamp of each series of the *current* family — families
//! may not be interleaved, so a finished family's series can be forgotten.
//!
//! The reader does not merge or sort: a file is grouped by family and series, not by time,
//! and consumers that need time order merge. It checks no histogram or summary semantics
//! (bucket order, `le`, counters that never decrease) and keeps no exemplars.
//!
//! Modules: `syntax` parses one line's pieces and `number` its numbers; `family` tracks which
//! family a line belongs to.

mod family;
mod number;
mod syntax;
#[cfg(test)]
mod tests;

pub use family::MetricType;

use family::{Families, FamilyChange};
use flate2::bufread::MultiGzDecoder;
use number::{seconds_text, NumberError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use syntax::{quote, Metadata};
use vigil_proto::model::{Labels, Sample};

/// Longest line accepted, in bytes. Real lines are around a hundred bytes; the limit keeps a
/// corrupt file without newlines from being read into memory whole.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Buffer size for files; large reads keep system calls and gzip refills rare.
const FILE_BUFFER_BYTES: usize = 256 * 1024;

/// One sample of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct OmSample {
    /// The sample's metric name as written, e.g. `system_network_io_bytes_total`.
    pub name: String,
    /// The label set, without `__name__` and without labels whose value is empty.
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
    /// The type of the sample's family.
    pub metric_type: MetricType,
}

impl OmSample {
    pub fn sample(&self) -> Sample {
        Sample {
            timestamp_ms: self.timestamp_ms,
            value: self.value,
        }
    }
}

/// One sample, borrowed from the reader until the next call: what
/// [`OmReader::next_sample`] gives to callers that would rather not copy the name and labels
/// of every sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OmSampleRef<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
    pub timestamp_ms: i64,
    pub value: f64,
    pub metric_type: MetricType,
    /// True when this sample's `name{labels}` repeats the previous sample's byte for byte, so
    /// a caller can reuse its series lookup from the sample before. False says nothing: the
    /// same series written with its labels in another order is looked up like a new one.
    pub same_series_as_previous: bool,
}

impl OmSampleRef<'_> {
    pub fn to_owned_sample(&self) -> OmSample {
        OmSample {
            name: self.name.to_owned(),
            labels: self.labels.clone(),
            timestamp_ms: self.timestamp_ms,
            value: self.value,
            metric_type: self.metric_type,
        }
    }
}

/// What is wrong with an OpenMetrics file, and where: `metrics.om:1042: sample before …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", location(.source_name, .line))]
pub struct OmError {
    /// The file's path, or whatever name the reader was given.
    pub source_name: String,
    /// 1-based line number; 0 when the file could not be opened at all.
    pub line: usize,
    pub message: String,
}

/// `file:line`, or just `file` for line 0.
fn location(source_name: &str, line: &usize) -> String {
    if *line == 0 {
        source_name.to_owned()
    } else {
        format!("{source_name}:{line}")
    }
}

/// Opens an OpenMetrics file, gunzipping it when it starts with the gzip magic bytes
/// (whatever its name).
pub fn open(path: &Path) -> Result<OmReader<Box<dyn BufRead + Send>>, OmError> {
    let source_name = path.display().to_string();
    let failed = |message: String| OmError {
        source_name: source_name.clone(),
        line: 0,
        message,
    };
    let file = File::open(path).map_err(|err| failed(format!("cannot open: {err}")))?;
    let mut buffered = BufReader::with_capacity(FILE_BUFFER_BYTES, file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(|err| failed(format!("cannot read: {err}")))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead + Send> = if is_gzip {
        Box::new(BufReader::with_capacity(
            FILE_BUFFER_BYTES,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(OmReader::new(reader, source_name))
}

/// Where the reader is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Body,
    /// `# EOF` has been read; only the end of the input may follow.
    AfterEof,
    /// The input ended after `# EOF`, or an error was returned.
    Finished,
}

/// The series of the previous sample, kept so that the next line, which in most files is
/// of the same series, costs one comparison of its `name{labels}` prefix instead of a parse.
#[derive(Debug)]
struct CurrentSeries {
    /// The `name{labels}` bytes exactly as written.
    prefix: Vec<u8>,
    name: String,
    labels: Labels,
    metric_type: MetricType,
    last_timestamp_ms: i64,
    last_line: usize,
}

/// Streams the samples of an OpenMetrics text file from any `BufRead`, never holding more
/// than one line of it. After the first error it yields nothing more: OpenMetrics counts a
/// partly invalid file as invalid in its entirety.
pub struct OmReader<R: BufRead> {
    reader: R,
    source_name: String,
    line: Vec<u8>,
    line_number: usize,
    bytes_read: u64,
    phase: Phase,
    families: Families,
    current: Option<CurrentSeries>,
    /// Last timestamp and its line for the current family's other series.
    earlier_series: HashMap<(String, Labels), (i64, usize)>,
    /// Scratch space for label pairs while parsing.
    pairs: Vec<(String, String)>,
}

impl<R: BufRead> OmReader<R> {
    /// `source_name` is what error messages call the input, usually its path.
    pub fn new(reader: R, source_name: impl Into<String>) -> Self {
        Self {
            reader,
            source_name: source_name.into(),
            line: Vec::with_capacity(256),
            line_number: 0,
            bytes_read: 0,
            phase: Phase::Body,
            families: Families::default(),
            current: None,
            earlier_series: HashMap::new(),
            pairs: Vec::new(),
        }
    }

    /// The number of the line read last (1-based), i.e. the line of the last sample given.
    pub fn line_number(&self) -> usize {
        self.line_number
    }

    /// Bytes of text consumed so far, for progress; for a gzip file these are bytes after
    /// decompression.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The next sample, borrowed until the next call; `Ok(None)` at the end of a valid file.
    pub fn next_sample(&mut self) -> Result<Option<OmSampleRef<'_>>, OmError> {
        let sample = match self.advance() {
            Ok(Some(sample)) => sample,
            Ok(None) => {
                self.phase = Phase::Finished;
                return Ok(None);
            }
            Err(message) => {
                self.phase = Phase::Finished;
                return Err(OmError {
                    source_name: self.source_name.clone(),
                    line: self.line_number,
                    message,
                });
            }
        };
        let Some(series) = &self.current else {
            return Ok(None);
        };
        Ok(Some(OmSampleRef {
            name: &series.name,
            labels: &series.labels,
            timestamp_ms: sample.timestamp_ms,
            value: sample.value,
            metric_type: series.metric_type,
            same_series_as_previous: sample.same_series_as_previous,
        }))
    }

    /// Reads lines up to the next sample, which it leaves in `self.current`.
    fn advance(&mut self) -> Result<Option<ParsedSample>, String> {
        loop {
            if self.phase == Phase::Finished {
                return Ok(None);
            }
            let complete_line = match self.read_line()? {
                Some(complete) => complete,
                None if self.phase == Phase::AfterEof => return Ok(None),
                None => {
                    self.line_number = self.line_number.max(1);
                    return Err("file ends without '# EOF'; the file may be truncated".to_owned());
                }
            };
            if self.phase == Phase::AfterEof {
                return Err(format!(
                    "{} after '# EOF'; nothing may follow the end marker (two files joined \
                     together?)",
                    if self.line.is_empty() {
                        "empty line".to_owned()
                    } else {
                        format!("text {}", quote(&self.line))
                    }
                ));
            }
            let is_eof_marker = self.line == b"# EOF";
            if !complete_line && !is_eof_marker {
                return Err(format!(
                    "file ends without '# EOF', in the middle of line {}; the file may be \
                     truncated",
                    quote(&self.line)
                ));
            }
            if self.line.last() == Some(&b'\r') {
                return Err(
                    "line ends in a carriage return; OpenMetrics lines end in '\\n' \
                            only (convert the file with dos2unix)"
                        .to_owned(),
                );
            }
            match self.line.first() {
                None => {
                    return Err("empty line; OpenMetrics has no blank lines".to_owned());
                }
                Some(b'#') => self.metadata_line()?,
                Some(_) => return self.sample_line().map(Some),
            }
        }
    }

    /// Reads the next line into `self.line` without its `\n`; `Some(false)` when the input
    /// ended without one, `None` at the end of the input.
    fn read_line(&mut self) -> Result<Option<bool>, String> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(|err| {
                let hint = if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    "; the compressed file may be truncated"
                } else {
                    ""
                };
                format!("cannot read: {err}{hint}")
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.line_number += 1;
        self.bytes_read += read as u64;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            return Ok(Some(true));
        }
        if read as u64 > MAX_LINE_BYTES {
            return Err(format!(
                "line is longer than {} MiB; this is not an OpenMetrics text file, or it is \
                 corrupt",
                MAX_LINE_BYTES >> 20
            ));
        }
        Ok(Some(false))
    }

    fn metadata_line(&mut self) -> Result<(), String> {
        let metadata = syntax::metadata(&self.line)?;
        let (Some(kind), Some(family)) = (metadata.kind(), metadata.family()) else {
            self.phase = Phase::AfterEof;
            return Ok(());
        };
        let metric_type = match metadata {
            Metadata::Type { metric_type, .. } => Some(metric_type),
            Metadata::Unit { family, unit } => {
                Families::check_unit(family, unit)?;
                None
            }
            _ => None,
        };
        let change = self
            .families
            .metadata(kind, family, metric_type, self.line_number)?;
        if change == FamilyChange::New {
            self.forget_series();
        }
        Ok(())
    }

    /// A new family: its series are new too.
    fn forget_series(&mut self) {
        self.current = None;
        self.earlier_series.clear();
    }

    fn sample_line(&mut self) -> Result<ParsedSample, String> {
        let line = &self.line[..];
        let same_series = self.current.as_ref().is_some_and(|series| {
            line.starts_with(&series.prefix) && line.get(series.prefix.len()) == Some(&b' ')
        });
        let prefix_end;
        let mut new_series = None;
        if same_series {
            prefix_end = self
                .current
                .as_ref()
                .map_or(0, |series| series.prefix.len());
        } else {
            let (name, name_end) = syntax::sample_name(line)?;
            let labels = if line.get(name_end) == Some(&b'{') {
                prefix_end = syntax::label_pairs(line, name_end, &mut self.pairs)?;
                syntax::series_labels(&mut self.pairs)?
            } else {
                prefix_end = name_end;
                Labels::new()
            };
            let (metric_type, change) = self.families.sample(name, self.line_number)?;
            new_series = Some((name.to_owned(), labels, metric_type, change));
        }

        let (value, timestamp_ms) = value_and_timestamp(&self.line, prefix_end, &mut self.pairs)?;

        if let Some((name, labels, metric_type, change)) = new_series {
            if change == FamilyChange::New {
                self.forget_series();
            }
            let mut prefix = Vec::new();
            if let Some(previous) = self.current.take() {
                prefix = previous.prefix;
                self.earlier_series.insert(
                    (previous.name, previous.labels),
                    (previous.last_timestamp_ms, previous.last_line),
                );
            }
            prefix.clear();
            prefix.extend_from_slice(&self.line[..prefix_end]);
            let key = (name, labels);
            let earlier = self.earlier_series.remove(&key);
            let (name, labels) = key;
            let (last_timestamp_ms, last_line) = earlier.unwrap_or((i64::MIN, 0));
            self.current = Some(CurrentSeries {
                prefix,
                name,
                labels,
                metric_type,
                last_timestamp_ms,
                last_line,
            });
        }

        let line_number = self.line_number;
        let Some(series) = self.current.as_mut() else {
            return Err("internal error: sample without a series".to_owned());
        };
        if timestamp_ms <= series.last_timestamp_ms {
            let what = if timestamp_ms == series.last_timestamp_ms {
                format!("repeats timestamp {}", seconds_text(timestamp_ms))
            } else {
                format!(
                    "goes back in time: {} comes after {}",
                    seconds_text(timestamp_ms),
                    seconds_text(series.last_timestamp_ms)
                )
            };
            return Err(format!(
                "series {}{} {what} (line {}); OpenMetrics requires each series' timestamps \
                 to increase",
                series.name, series.labels, series.last_line,
            ));
        }
        series.last_timestamp_ms = timestamp_ms;
        series.last_line = line_number;
        Ok(ParsedSample {
            timestamp_ms,
            value,
            same_series_as_previous: same_series,
        })
    }
}

/// The parts of a sample line that change from line to line.
#[derive(Debug, Clone, Copy)]
struct ParsedSample {
    timestamp_ms: i64,
    value: f64,
    same_series_as_previous: bool,
}

/// Parses ` value timestamp [exemplar]`, which follows the `name{labels}` ending at
/// `prefix_end`.
fn value_and_timestamp(
    line: &[u8],
    prefix_end: usize,
    pairs: &mut Vec<(String, String)>,
) -> Result<(f64, i64), String> {
    if line.get(prefix_end) != Some(&b' ') {
        return Err(match line.get(prefix_end) {
            None => "sample has no value".to_owned(),
            Some(_) => format!(
                "expected a space and the value after the series, found {}",
                quote(&line[prefix_end..])
            ),
        });
    }
    let value_start = prefix_end + 1;
    let value_end = token_end(line, value_start);
    let value_token = &line[value_start..value_end];
    let value = number::number(value_token).map_err(|err| match err {
        NumberError::OutOfRange => format!(
            "value {} is beyond the range of a 64-bit float",
            quote(value_token)
        ),
        NumberError::NotANumber if value_token.is_empty() => {
            "sample has no value (two spaces in a row?)".to_owned()
        }
        NumberError::NotANumber => format!(
            "value {} is not a number (write e.g. 42, -1.5e-3, NaN, +Inf)",
            quote(value_token)
        ),
    })?;
    if value_end == line.len() || line[value_end + 1..].starts_with(b"# ") {
        return Err(
            "sample has no timestamp; import and backtest need one on every sample, in \
                    seconds since the Unix epoch (e.g. 'name{…} 1.5 1735689600')"
                .to_owned(),
        );
    }
    let timestamp_start = value_end + 1;
    let timestamp_end = token_end(line, timestamp_start);
    let timestamp_token = &line[timestamp_start..timestamp_end];
    let timestamp_ms = number::timestamp_ms(timestamp_token).map_err(|err| match err {
        NumberError::OutOfRange => format!(
            "timestamp {} is outside the years 1 to 9999; OpenMetrics timestamps are in \
             seconds (divide milliseconds by 1000)",
            quote(timestamp_token)
        ),
        NumberError::NotANumber if timestamp_token.is_empty() => {
            "sample has no timestamp after the value (two spaces in a row?)".to_owned()
        }
        NumberError::NotANumber => format!(
            "timestamp {} is not a number of seconds since the Unix epoch",
            quote(timestamp_token)
        ),
    })?;
    if timestamp_end < line.len() {
        let rest = timestamp_end + 1;
        if !line[rest..].starts_with(b"#") {
            return Err(format!(
                "unexpected text after the timestamp: {}; only an exemplar \
                 (' # {{labels}} value') may follow",
                quote(&line[timestamp_end..])
            ));
        }
        syntax::exemplar(line, rest, pairs)?;
    }
    Ok((value, timestamp_ms))
}

/// The end of the space-separated token that starts at `start`.
fn token_end(line: &[u8], start: usize) -> usize {
    line[start..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(line.len(), |offset| start + offset)
}

impl<R: BufRead> Iterator for OmReader<R> {
    type Item = Result<OmSample, OmError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_sample() {
            Ok(Some(sample)) => Some(Ok(sample.to_owned_sample())),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        }
    }
}
