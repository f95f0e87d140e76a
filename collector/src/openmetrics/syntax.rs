//! The grammar of one OpenMetrics text line, byte by byte: metadata lines, metric and label
//! names, label sets with their escapes, and exemplars ([`super::number`] reads numbers).
//!
//! Everything here looks at a single line and answers with a value or a message saying what
//! is wrong; it knows nothing of families, series or line numbers, which
//! [`super::OmReader`] adds. Bytes are parsed by hand, without regular expressions, because
//! this runs once per sample of files with tens of millions of them.

use super::family::MetricType;
use super::number::{number, timestamp_ms};
use vigil_proto::model::Labels;

/// How many characters of an offending token an error message quotes.
const QUOTE_CHARS: usize = 48;

/// A token from the input as an error message shows it: in single quotes, control
/// characters escaped, cut after [`QUOTE_CHARS`] characters.
pub(super) fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut quoted = String::with_capacity(text.len().min(QUOTE_CHARS) + 4);
    quoted.push('\'');
    for (index, ch) in text.chars().enumerate() {
        if index == QUOTE_CHARS {
            quoted.push('…');
            break;
        }
        if ch.is_control() {
            quoted.extend(ch.escape_default());
        } else {
            quoted.push(ch);
        }
    }
    quoted.push('\'');
    quoted
}

/// A line that starts with `#`.
#[derive(Debug, PartialEq)]
pub(super) enum Metadata<'a> {
    Eof,
    Type {
        family: &'a str,
        metric_type: MetricType,
    },
    Unit {
        family: &'a str,
        unit: &'a str,
    },
    Help {
        family: &'a str,
    },
}

/// What a metadata line says about which family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetadataKind {
    Type,
    Unit,
    Help,
}

impl Metadata<'_> {
    pub(super) fn kind(&self) -> Option<MetadataKind> {
        match self {
            Metadata::Eof => None,
            Metadata::Type { .. } => Some(MetadataKind::Type),
            Metadata::Unit { .. } => Some(MetadataKind::Unit),
            Metadata::Help { .. } => Some(MetadataKind::Help),
        }
    }

    pub(super) fn family(&self) -> Option<&str> {
        match self {
            Metadata::Eof => None,
            Metadata::Type { family, .. }
            | Metadata::Unit { family, .. }
            | Metadata::Help { family } => Some(family),
        }
    }
}

impl MetadataKind {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            MetadataKind::Type => "TYPE",
            MetadataKind::Unit => "UNIT",
            MetadataKind::Help => "HELP",
        }
    }
}

/// Parses a line starting with `#`: `# EOF`, `# TYPE name type`, `# UNIT name unit` or
/// `# HELP name text`. OpenMetrics allows no other comment.
pub(super) fn metadata(line: &[u8]) -> Result<Metadata<'_>, String> {
    if line == b"# EOF" {
        return Ok(Metadata::Eof);
    }
    let (kind, rest) = if let Some(rest) = line.strip_prefix(b"# TYPE ") {
        (MetadataKind::Type, rest)
    } else if let Some(rest) = line.strip_prefix(b"# UNIT ") {
        (MetadataKind::Unit, rest)
    } else if let Some(rest) = line.strip_prefix(b"# HELP ") {
        (MetadataKind::Help, rest)
    } else {
        return Err(format!(
            "unexpected comment line {}; OpenMetrics allows only '# TYPE', '# UNIT', '# HELP' \
             and a final '# EOF' to start with '#'",
            quote(line)
        ));
    };
    let name_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let family = metric_name(&rest[..name_end])
        .map_err(|why| format!("'# {}' line: {why}", kind.keyword()))?;
    // `# UNIT name` and `# HELP name` without the space before an empty text are accepted:
    // an empty unit or help counts as no line at all.
    let text = rest.get(name_end + 1..).unwrap_or_default();
    match kind {
        MetadataKind::Type => {
            let word = std::str::from_utf8(text).unwrap_or_default();
            let metric_type = MetricType::from_keyword(word).ok_or_else(|| {
                let hint = if word == "untyped" {
                    " (Prometheus' 'untyped' is 'unknown' in OpenMetrics)"
                } else {
                    ""
                };
                format!(
                    "unknown metric type {} for '{family}'; OpenMetrics types are counter, \
                     gauge, histogram, gaugehistogram, stateset, info, summary and unknown{hint}",
                    quote(text)
                )
            })?;
            Ok(Metadata::Type {
                family,
                metric_type,
            })
        }
        MetadataKind::Unit => {
            if !text.iter().all(|&b| is_metric_name_char(b)) {
                return Err(format!(
                    "unit {} of '{family}' may hold only letters, digits, '_' and ':'",
                    quote(text)
                ));
            }
            // Checked above to be ASCII.
            let unit = std::str::from_utf8(text).unwrap_or_default();
            Ok(Metadata::Unit { family, unit })
        }
        MetadataKind::Help => {
            if std::str::from_utf8(text).is_err() {
                return Err(format!("help text of '{family}' is not valid UTF-8"));
            }
            Ok(Metadata::Help { family })
        }
    }
}

fn is_metric_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b':'
}

fn is_metric_name_char(byte: u8) -> bool {
    is_metric_name_start(byte) || byte.is_ascii_digit()
}

fn is_label_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_label_name_char(byte: u8) -> bool {
    is_label_name_start(byte) || byte.is_ascii_digit()
}

/// Checks a whole token as a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(super) fn metric_name(token: &[u8]) -> Result<&str, String> {
    match token.first() {
        None => return Err("metric name is missing".to_owned()),
        Some(&first) if !is_metric_name_start(first) => {
            return Err(format!(
                "invalid metric name {}: a name starts with a letter, '_' or ':'",
                quote(token)
            ))
        }
        Some(_) => {}
    }
    if let Some(bad) = token.iter().position(|&b| !is_metric_name_char(b)) {
        return Err(format!(
            "invalid metric name {}: {} is not allowed (letters, digits, '_' and ':' only)",
            quote(token),
            quote(&token[bad..bad + 1])
        ));
    }
    // Checked above to be ASCII.
    std::str::from_utf8(token).map_err(|_| "metric name is not valid UTF-8".to_owned())
}

/// The metric name at the start of a sample line and where it ends (at `{`, a space, or the
/// end of the line).
pub(super) fn sample_name(line: &[u8]) -> Result<(&str, usize), String> {
    let end = line
        .iter()
        .position(|&b| b == b'{' || b == b' ')
        .unwrap_or(line.len());
    if end == 0 {
        return Err(format!("sample {} has no metric name", quote(line)));
    }
    Ok((metric_name(&line[..end])?, end))
}

/// Parses the label set whose `{` is at `line[open]` into `pairs` (cleared first, in the
/// order written, empty values kept). Returns the index just past the closing `}`.
pub(super) fn label_pairs(
    line: &[u8],
    open: usize,
    pairs: &mut Vec<(String, String)>,
) -> Result<usize, String> {
    pairs.clear();
    let mut pos = open + 1;
    if line.get(pos) == Some(&b'}') {
        return Ok(pos + 1);
    }
    loop {
        let name_start = pos;
        while line.get(pos).is_some_and(|&b| is_label_name_char(b)) {
            pos += 1;
        }
        let name_bytes = &line[name_start..pos];
        match name_bytes.first() {
            None => {
                return Err(match line.get(pos) {
                    None => format!("label set {} has no closing '}}'", quote(&line[open..])),
                    Some(b'}') => format!(
                        "label set {} ends in a comma; remove the trailing ','",
                        quote(&line[open..pos + 1])
                    ),
                    Some(_) => format!(
                        "expected a label name at {} in label set",
                        quote(&line[pos..])
                    ),
                })
            }
            Some(first) if first.is_ascii_digit() => {
                return Err(format!(
                    "invalid label name {}: a label name starts with a letter or '_'",
                    quote(name_bytes)
                ))
            }
            Some(_) => {}
        }
        // Checked above to be ASCII.
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        if line.get(pos) != Some(&b'=') {
            return Err(match line.get(pos) {
                None => format!("label set {} has no closing '}}'", quote(&line[open..])),
                Some(_) => format!(
                    "label '{name}' must be followed by '=' and a quoted value, found {}",
                    quote(&line[pos..])
                ),
            });
        }
        pos += 1;
        if line.get(pos) != Some(&b'"') {
            return Err(format!(
                "value of label '{name}' must be in double quotes, found {}",
                quote(&line[pos..])
            ));
        }
        pos += 1;
        let (value, after) = label_value(line, pos, &name)?;
        pairs.push((name, value));
        pos = after;
        match line.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => return Ok(pos + 1),
            None => {
                return Err(format!(
                    "label set {} has no closing '}}'",
                    quote(&line[open..])
                ))
            }
            Some(_) => {
                return Err(format!(
                    "expected ',' or '}}' after the value of label '{}', found {}",
                    pairs
                        .last()
                        .map(|(name, _)| name.as_str())
                        .unwrap_or_default(),
                    quote(&line[pos..])
                ))
            }
        }
    }
}

/// Reads a quoted label value starting just after its opening quote; returns the value
/// with escapes resolved and the index just past the closing quote. `\\`, `\"` and `\n` are
/// escapes; a backslash before any other character stands for itself, as the OpenMetrics
/// grammar says.
fn label_value(line: &[u8], start: usize, name: &str) -> Result<(String, usize), String> {
    let mut pos = start;
    let mut escaped = false;
    loop {
        match line.get(pos) {
            Some(b'"') => break,
            Some(b'\\') if pos + 1 < line.len() => {
                escaped = true;
                pos += 2;
            }
            Some(b'\\') | None => {
                let raw = &line[start..];
                let hint = if raw.windows(2).any(|pair| pair == b"\\\"") {
                    "; a backslash before a quote escapes it, so write '\\\\' for a backslash \
                     at the end of a value"
                } else {
                    ""
                };
                return Err(format!(
                    "value of label '{name}' has no closing quote: {}{hint}",
                    quote(raw)
                ));
            }
            Some(_) => pos += 1,
        }
    }
    let raw = &line[start..pos];
    let bytes = if escaped {
        let mut unescaped = Vec::with_capacity(raw.len());
        let mut index = 0;
        while index < raw.len() {
            if raw[index] == b'\\' {
                match raw[index + 1] {
                    b'n' => unescaped.push(b'\n'),
                    b'"' => unescaped.push(b'"'),
                    b'\\' => unescaped.push(b'\\'),
                    other => unescaped.extend_from_slice(&[b'\\', other]),
                }
                index += 2;
            } else {
                unescaped.push(raw[index]);
                index += 1;
            }
        }
        unescaped
    } else {
        raw.to_vec()
    };
    let value = String::from_utf8(bytes)
        .map_err(|_| format!("value of label '{name}' is not valid UTF-8"))?;
    Ok((value, pos + 1))
}

/// Turns a series' label pairs into [`Labels`]: each name at most once, no `__name__`, and
/// empty values dropped (OpenMetrics treats `a=""` as no label `a`).
pub(super) fn series_labels(pairs: &mut [(String, String)]) -> Result<Labels, String> {
    pairs.sort_unstable_by(|left, right| left.0.cmp(&right.0));
    for pair in pairs.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!(
                "label '{}' appears twice in one label set",
                pair[0].0
            ));
        }
    }
    if pairs.iter().any(|(name, _)| name == "__name__") {
        return Err(
            "label '__name__' is not allowed in braces; write the metric name before \
                    the '{'"
                .to_owned(),
        );
    }
    Ok(Labels::from_pairs(
        pairs
            .iter_mut()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (std::mem::take(name), std::mem::take(value))),
    ))
}

/// Checks an exemplar, `# {labels} value [timestamp]`, which starts at `line[start]`. Its
/// contents are not kept.
pub(super) fn exemplar(
    line: &[u8],
    start: usize,
    pairs: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let bad = || {
        format!(
            "malformed exemplar {}; the form is ' # {{labels}} value [timestamp]'",
            quote(&line[start..])
        )
    };
    if !line[start..].starts_with(b"# {") {
        return Err(bad());
    }
    let mut pos = label_pairs(line, start + 2, pairs)?;
    pairs.sort_unstable_by(|left, right| left.0.cmp(&right.0));
    if let Some(pair) = pairs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(format!(
            "label '{}' appears twice in the exemplar's label set",
            pair[0].0
        ));
    }
    if line.get(pos) != Some(&b' ') {
        return Err(bad());
    }
    pos += 1;
    let value_end = line[pos..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(line.len(), |offset| pos + offset);
    number(&line[pos..value_end]).map_err(|_| bad())?;
    if value_end < line.len() {
        timestamp_ms(&line[value_end + 1..]).map_err(|_| bad())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_resolve_the_three_escapes_and_keep_other_backslashes() {
        let line = br#"x{a="q\"uote",b="back\\slash",c="new\nline",d="C:\temp"} 1 2"#;
        let mut pairs = Vec::new();
        let end = label_pairs(line, 1, &mut pairs).unwrap();
        assert_eq!(&line[end..], b" 1 2");
        let labels = series_labels(&mut pairs).unwrap();
        assert_eq!(labels.get("a"), Some("q\"uote"));
        assert_eq!(labels.get("b"), Some("back\\slash"));
        assert_eq!(labels.get("c"), Some("new\nline"));
        assert_eq!(labels.get("d"), Some("C:\\temp"));
    }

    #[test]
    fn empty_label_values_count_as_no_label() {
        let mut pairs = Vec::new();
        label_pairs(br#"{a="",b="x"}"#, 0, &mut pairs).unwrap();
        let labels = series_labels(&mut pairs).unwrap();
        assert_eq!(labels, Labels::from_pairs([("b", "x")]));
    }

    #[test]
    fn a_brace_inside_a_quoted_value_does_not_end_the_label_set() {
        let mut pairs = Vec::new();
        let line = br#"{path="/a}b",x="y"} 1"#;
        let end = label_pairs(line, 0, &mut pairs).unwrap();
        assert_eq!(&line[end..], b" 1");
        assert_eq!(pairs[0].1, "/a}b");
    }

    #[test]
    fn quote_cuts_long_tokens_and_escapes_control_characters() {
        assert_eq!(quote(b"a\tb"), "'a\\tb'");
        let long = quote(&[b'x'; 100]);
        assert!(long.ends_with("…'"), "{long}");
        assert_eq!(long.chars().count(), QUOTE_CHARS + 3);
    }

    #[test]
    fn metadata_lines_are_recognised_and_others_refused() {
        assert_eq!(metadata(b"# EOF"), Ok(Metadata::Eof));
        assert_eq!(
            metadata(b"# TYPE x counter"),
            Ok(Metadata::Type {
                family: "x",
                metric_type: MetricType::Counter
            })
        );
        assert_eq!(
            metadata(b"# UNIT x_seconds seconds"),
            Ok(Metadata::Unit {
                family: "x_seconds",
                unit: "seconds"
            })
        );
        assert_eq!(
            metadata(b"# HELP x Some \\\" text"),
            Ok(Metadata::Help { family: "x" })
        );
        assert_eq!(metadata(b"# HELP x"), Ok(Metadata::Help { family: "x" }));
        assert!(metadata(b"# TYPE x untyped")
            .unwrap_err()
            .contains("'untyped' is 'unknown'"));
        assert!(metadata(b"# TYPE x gauge extra")
            .unwrap_err()
            .contains("unknown metric type"));
        assert!(metadata(b"# a remark")
            .unwrap_err()
            .contains("unexpected comment line"));
        assert!(metadata(b"# EOF ").is_err());
        assert!(metadata(b"# TYPE 9x gauge")
            .unwrap_err()
            .contains("invalid metric name '9x'"));
    }
}
