//! Tests of the reader as a whole: what valid files give, what each broken file says and on
//! which line, and properties over generated input.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};

fn parse(text: &str) -> Result<Vec<OmSample>, OmError> {
    OmReader::new(Cursor::new(text.as_bytes().to_vec()), "test.om").collect()
}

/// The error a broken file gives, checking that the reader stops after it.
fn error_of(text: &str) -> OmError {
    let mut reader = OmReader::new(Cursor::new(text.as_bytes().to_vec()), "test.om");
    for item in reader.by_ref() {
        if let Err(err) = item {
            assert!(reader.next().is_none(), "the reader goes on after {err}");
            return err;
        }
    }
    panic!("no error for {text:?}");
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

const SMALL_FILE: &str = r#"# TYPE system_network_io_bytes counter
# UNIT system_network_io_bytes bytes
# HELP system_network_io_bytes Bytes by device and direction, with \"escapes\" \\ too.
system_network_io_bytes_total{host="web-01",device="eth0",direction="receive"} 1.5e3 1735689600 # {trace_id="abc"} 1 1735689600.5
system_network_io_bytes_total{direction="receive",host="web-01",device="eth0"} 2000 1735689610.25
system_network_io_bytes_created{host="web-01",device="eth0",direction="receive"} 1735000000 1735689600
# HELP system_temperature_celsius Sensor temperature.
# TYPE system_temperature_celsius gauge
system_temperature_celsius{sensor="q\"uo\\te\nnl"} NaN 1735689600
system_temperature_celsius{sensor="hot"} +Inf 1735689600.0004
system_temperature_celsius{sensor="cold"} -Inf 1735689600.0005
system_temperature_celsius{sensor="tiny"} -1.25E-7 1735689600 # {} 3
system_temperature_celsius{sensor="empty",zone=""} 4.2e+2 1735689600
untyped_thing 42 -1.5
# EOF
"#;

#[test]
fn parses_a_small_file_with_counter_gauge_escapes_special_values_and_exemplars() {
    let samples = parse(SMALL_FILE).unwrap();
    assert_eq!(samples.len(), 9);

    let net = labels(&[
        ("host", "web-01"),
        ("device", "eth0"),
        ("direction", "receive"),
    ]);
    assert_eq!(
        samples[0],
        OmSample {
            name: "system_network_io_bytes_total".to_owned(),
            labels: net.clone(),
            timestamp_ms: 1_735_689_600_000,
            value: 1500.0,
            metric_type: MetricType::Counter,
        }
    );
    assert_eq!(samples[1].labels, net, "label order does not matter");
    assert_eq!(samples[1].timestamp_ms, 1_735_689_610_250);
    assert_eq!(samples[1].value, 2000.0);
    assert_eq!(samples[2].name, "system_network_io_bytes_created");
    assert_eq!(samples[2].metric_type, MetricType::Counter);

    assert_eq!(samples[3].labels.get("sensor"), Some("q\"uo\\te\nnl"));
    assert_eq!(samples[3].metric_type, MetricType::Gauge);
    assert!(samples[3].value.is_nan());
    assert_eq!(samples[4].value, f64::INFINITY);
    assert_eq!(
        samples[4].timestamp_ms, 1_735_689_600_000,
        "0.4 ms rounds down"
    );
    assert_eq!(samples[5].value, f64::NEG_INFINITY);
    assert_eq!(
        samples[5].timestamp_ms, 1_735_689_600_001,
        "0.5 ms rounds up"
    );
    assert_eq!(samples[6].value, -1.25e-7);
    assert_eq!(samples[7].value, 420.0);
    assert_eq!(samples[7].labels, labels(&[("sensor", "empty")]));

    assert_eq!(samples[8].name, "untyped_thing");
    assert_eq!(samples[8].labels, Labels::new());
    assert_eq!(samples[8].metric_type, MetricType::Unknown);
    assert_eq!(samples[8].timestamp_ms, -1_500);
}

#[test]
fn the_borrowing_reader_says_when_a_sample_continues_the_previous_series() {
    let mut reader = OmReader::new(Cursor::new(SMALL_FILE), "test.om");
    let mut continued = Vec::new();
    while let Some(sample) = reader.next_sample().unwrap() {
        continued.push(sample.same_series_as_previous);
    }
    // The second network sample writes its labels in another order: same series, but only
    // the byte-for-byte repetition is recognised without parsing.
    assert_eq!(
        continued,
        [false, false, false, false, false, false, false, false, false]
    );
    let text = "a{x=\"1\"} 1 1\na{x=\"1\"} 2 2\na{x=\"2\"} 3 3\n# EOF\n";
    let mut reader = OmReader::new(Cursor::new(text), "test.om");
    let mut continued = Vec::new();
    while let Some(sample) = reader.next_sample().unwrap() {
        continued.push(sample.same_series_as_previous);
    }
    assert_eq!(continued, [false, true, false]);
}

#[test]
fn line_number_and_bytes_read_follow_the_reader() {
    let text = "# TYPE a gauge\na 1 1\na 2 2\n# EOF\n";
    let mut reader = OmReader::new(Cursor::new(text), "test.om");
    reader.next().unwrap().unwrap();
    assert_eq!(reader.line_number(), 2);
    assert_eq!(reader.bytes_read(), "# TYPE a gauge\na 1 1\n".len() as u64);
    reader.next().unwrap().unwrap();
    assert!(reader.next().is_none());
    assert_eq!(reader.line_number(), 4);
    assert_eq!(reader.bytes_read(), text.len() as u64);
}

#[test]
fn a_sample_without_a_type_line_is_of_type_unknown_even_after_a_typed_family() {
    let text = "# TYPE a gauge\na 1 1\nb 2 2\nb 3 3\nc_total 4 4\n# EOF\n";
    let samples = parse(text).unwrap();
    let types: Vec<_> = samples.iter().map(|s| s.metric_type).collect();
    assert_eq!(
        types,
        [
            MetricType::Gauge,
            MetricType::Unknown,
            MetricType::Unknown,
            MetricType::Unknown
        ]
    );
}

#[test]
fn a_series_whose_name_extends_the_previous_one_is_another_series() {
    let samples = parse("ab 1 5\nabc 1 4\n# EOF\n").unwrap();
    assert_eq!(samples[1].name, "abc");
    assert_eq!(samples[1].timestamp_ms, 4_000);
}

#[test]
fn series_may_take_turns_within_a_family_as_long_as_each_goes_forward() {
    let text = "# TYPE s summary\n\
                s_count{a=\"bb\"} 0 123\n\
                s_sum{a=\"bb\"} 0 123\n\
                s_count{a=\"bb\"} 0 456\n\
                s_sum{a=\"bb\"} 0 456\n\
                # EOF\n";
    assert_eq!(parse(text).unwrap().len(), 4);
}

#[test]
fn a_file_ending_in_eof_without_a_newline_is_complete() {
    assert_eq!(parse("a 1 1\n# EOF").unwrap().len(), 1);
    assert_eq!(parse("# EOF\n").unwrap().len(), 0);
}

#[test]
fn the_error_names_the_file_and_line() {
    let err = error_of("# TYPE a gauge\na 1\n# EOF\n");
    assert_eq!(err.source_name, "test.om");
    assert_eq!(err.line, 2);
    assert!(
        err.to_string()
            .starts_with("test.om:2: sample has no timestamp"),
        "{err}"
    );
}

/// Broken files, the line their error must name and a phrase it must contain.
const BROKEN: &[(&str, &str, usize, &str)] = &[
    ("no end marker", "a 1 1\n", 1, "file ends without '# EOF'; the file may be truncated"),
    ("empty file", "", 1, "file ends without '# EOF'"),
    ("cut mid-line", "a 1 1\na 2", 2, "in the middle of line 'a 2'; the file may be truncated"),
    ("text after the end", "a 1 1\n# EOF\na 2 2\n", 3, "after '# EOF'"),
    ("blank line after the end", "a 1 1\n# EOF\n\n", 3, "empty line after '# EOF'"),
    ("no timestamp", "a 1\n# EOF\n", 1, "sample has no timestamp; import and backtest need one"),
    ("exemplar but no timestamp", "a 1 # {} 1\n# EOF\n", 1, "sample has no timestamp"),
    ("no value", "a{b=\"c\"}\n# EOF\n", 1, "sample has no value"),
    ("unclosed brace", "a{b=\"c\" 1 2\n# EOF\n", 1, "expected ',' or '}' after the value of label 'b'"),
    ("brace never closed", "x 1 1\na{b=\"c\",\n# EOF\n", 2, "has no closing '}'"),
    ("unquoted value", "a{b=c} 1 2\n# EOF\n", 1, "value of label 'b' must be in double quotes"),
    ("backslash eats the quote", "a{path=\"C:\\\"} 1 2\n# EOF\n", 1, "value of label 'path' has no closing quote"),
    ("backslash eats the quote, hint", "a{path=\"C:\\\"} 1 2\n# EOF\n", 1, "write '\\\\' for a backslash"),
    ("trailing comma", "a{b=\"c\",} 1 2\n# EOF\n", 1, "remove the trailing ','"),
    ("duplicate label", "a{b=\"1\",c=\"x\",b=\"2\"} 1 2\n# EOF\n", 1, "label 'b' appears twice"),
    ("label name with a digit first", "a{1b=\"x\"} 1 2\n# EOF\n", 1, "invalid label name '1b'"),
    ("label name with a dash", "a{b-c=\"x\"} 1 2\n# EOF\n", 1, "label 'b' must be followed by '='"),
    ("metric name with a digit first", "a 1 1\n1a 1 2\n# EOF\n", 2, "invalid metric name '1a'"),
    ("metric name with a dash", "a-b 1 2\n# EOF\n", 1, "invalid metric name 'a-b': '-' is not allowed"),
    ("no metric name", "{a=\"b\"} 1 2\n# EOF\n", 1, "has no metric name"),
    ("__name__ in braces", "a{__name__=\"b\"} 1 2\n# EOF\n", 1, "label '__name__' is not allowed"),
    ("value not a number", "a one 2\n# EOF\n", 1, "value 'one' is not a number"),
    ("value too large", "a 1e999 2\n# EOF\n", 1, "beyond the range of a 64-bit float"),
    ("two spaces", "a  1 2\n# EOF\n", 1, "two spaces in a row"),
    ("timestamp not a number", "a 1 yesterday\n# EOF\n", 1, "timestamp 'yesterday' is not a number"),
    ("timestamp in milliseconds", "a 1 1735689600000\n# EOF\n", 1, "divide milliseconds by 1000"),
    ("text after the timestamp", "a 1 2 3\n# EOF\n", 1, "unexpected text after the timestamp: ' 3'"),
    ("malformed exemplar", "a 1 2 # {x=\"y\"}\n# EOF\n", 1, "malformed exemplar"),
    ("carriage return", "a 1 2\r\n# EOF\r\n", 1, "carriage return"),
    ("blank line", "a 1 2\n\na 2 3\n# EOF\n", 2, "empty line; OpenMetrics has no blank lines"),
    ("stray comment", "a 1 2\n# note to self\n# EOF\n", 2, "unexpected comment line '# note to self'"),
    ("unknown type", "# TYPE a untyped\n# EOF\n", 1, "Prometheus' 'untyped' is 'unknown'"),
    ("unit not in the name", "# TYPE a gauge\n# UNIT a seconds\n# EOF\n", 2, "end in '_seconds'"),
    ("second TYPE line", "# TYPE a gauge\n# TYPE a counter\n# EOF\n", 2, "second '# TYPE' line for family 'a' (the first is on line 1)"),
    ("metadata after samples", "# TYPE a gauge\na 1 1\n# HELP a late\n# EOF\n", 3, "metadata lines must precede a family's samples"),
    ("families interleaved", "# TYPE a gauge\na 1 1\n# TYPE b gauge\nb 1 1\na 2 2\n# EOF\n", 5, "'a' on line 5 belongs to gauge family 'a', which began on line 1 and ended on line 3 when another family began; OpenMetrics forbids interleaved families"),
    ("family declared twice", "# TYPE a gauge\na 1 1\n# TYPE b gauge\n# HELP a again\n# EOF\n", 4, "interleaved families"),
    ("counter sample after its family", "# TYPE x counter\nx_total 1 1\n# TYPE y gauge\ny 1 1\nx_created 1 1\n# EOF\n", 5, "belongs to counter family 'x'"),
    ("untyped family twice", "a 1 1\nb 1 1\na 2 2\n# EOF\n", 3, "interleaved families"),
    ("counter sample without _total", "# TYPE x counter\nx 1 1\n# EOF\n", 2, "sample 'x' does not belong to counter family 'x' (line 1): its samples are named 'x_total' or 'x_created'"),
    ("gauge sample with _total", "# TYPE y gauge\ny_total 1 1\n# EOF\n", 2, "sample 'y_total' does not belong to gauge family 'y'"),
    ("family name clashing with a counter's samples", "# TYPE x counter\n# TYPE x_total gauge\n# EOF\n", 2, "clashes with the samples of counter family 'x'"),
    ("time goes backwards", "a{h=\"x\"} 1 10\na{h=\"x\"} 2 5\n# EOF\n", 2, "series a{h=\"x\"} goes back in time: 5 comes after 10 (line 1)"),
    ("timestamp repeats", "a 1 10.5\na 2 10.5\n# EOF\n", 2, "series a repeats timestamp 10.5 (line 1)"),
    ("time goes backwards on returning to a series", "a{h=\"1\",k=\"v\"} 1 10\na{h=\"2\"} 1 10\na{k=\"v\",h=\"1\"} 1 9\n# EOF\n", 3, "goes back in time: 9 comes after 10 (line 1)"),
];

#[test]
fn every_broken_file_reports_its_line_and_what_is_wrong() {
    for (case, text, line, phrase) in BROKEN {
        let err = error_of(text);
        assert!(
            err.message.contains(phrase),
            "{case}: expected {phrase:?} in {:?}",
            err.message
        );
        assert_eq!(err.line, *line, "{case}: {err}");
    }
}

#[test]
fn a_label_value_that_is_not_utf8_is_refused() {
    let mut text = b"a{b=\"".to_vec();
    text.extend_from_slice(&[0xff, 0xfe]);
    text.extend_from_slice(b"\"} 1 2\n# EOF\n");
    let err = OmReader::new(Cursor::new(text), "test.om")
        .find_map(Result::err)
        .unwrap();
    assert_eq!(err.line, 1);
    assert!(err.message.contains("not valid UTF-8"), "{err}");
}

#[test]
fn a_very_long_line_is_refused_without_reading_it_whole() {
    let mut text = vec![b'a'; (MAX_LINE_BYTES as usize) * 3];
    text.extend_from_slice(b" 1 2\n# EOF\n");
    let err = OmReader::new(Cursor::new(text), "test.om")
        .find_map(Result::err)
        .unwrap();
    assert!(err.message.contains("longer than 1 MiB"), "{err}");
}

#[test]
fn open_reads_gzip_by_its_magic_bytes_and_plain_text_as_is() {
    let dir = tempfile::tempdir().unwrap();
    // A gzip file whose name does not say so.
    let gz_path = dir.path().join("metrics.om");
    let mut encoder = flate2::write::GzEncoder::new(
        File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(SMALL_FILE.as_bytes()).unwrap();
    encoder.finish().unwrap();
    let plain_path = dir.path().join("plain.om.gz");
    std::fs::write(&plain_path, SMALL_FILE).unwrap();

    let expected = parse(SMALL_FILE).unwrap();
    for path in [&gz_path, &plain_path] {
        let reader = open(path).unwrap();
        let samples: Vec<OmSample> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(samples.len(), expected.len(), "{}", path.display());
        assert_eq!(samples[0], expected[0]);
        assert_eq!(samples[8], expected[8]);
    }
}

#[test]
fn a_truncated_gzip_file_is_an_error_not_a_short_read() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for step in 0..2000 {
        writeln!(encoder, "a{{host=\"h\"}} {step} {step}").unwrap();
    }
    writeln!(encoder, "# EOF").unwrap();
    let compressed = encoder.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.om.gz");
    std::fs::write(&path, &compressed[..compressed.len() / 2]).unwrap();
    let err = open(&path).unwrap().find_map(Result::err).unwrap();
    assert!(err.message.contains("truncated"), "{err}");
}

#[test]
fn open_names_a_missing_file() {
    let err = open(Path::new("/nonexistent/metrics.om")).err().unwrap();
    assert_eq!(err.line, 0);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/metrics.om: cannot open"),
        "{err}"
    );
}

/// Where the scenario traces are: `$VIGIL_SCENARIOS`, or the `shared/scenarios` folder next
/// to the checkout.
fn scenario_trace(name: &str) -> Option<std::path::PathBuf> {
    let folder = std::env::var_os("VIGIL_SCENARIOS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios"));
    let path = folder.join("traces").join(name);
    path.exists().then_some(path)
}

#[test]
fn the_t05_scenario_trace_parses_to_every_sample_it_holds() {
    let Some(path) = scenario_trace("t05.om.gz") else {
        eprintln!("skipped: scenario trace t05.om.gz not found (set VIGIL_SCENARIOS)");
        return;
    };
    let mut reader = open(&path).unwrap();
    let mut n_samples = 0_u64;
    let mut hosts = std::collections::BTreeSet::new();
    while let Some(sample) = reader.next_sample().unwrap() {
        n_samples += 1;
        if !sample.same_series_as_previous {
            hosts.insert(sample.labels.get("host").unwrap_or_default().to_owned());
        }
    }
    // Computed with `zcat t05.om.gz | grep -vc '^#'`: every line that is not metadata or the
    // end marker is one sample; check_om.py reports the same 543690.
    assert_eq!(n_samples, 543_690);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
}

// ---- properties

/// One series of a generated family.
#[derive(Debug, Clone)]
struct GeneratedSeries {
    suffix_choice: usize,
    labels: BTreeMap<String, String>,
    reverse_labels: bool,
    first_timestamp_ms: i64,
    steps_ms: Vec<i64>,
    values: Vec<(f64, u8)>,
    exemplar: bool,
}

#[derive(Debug, Clone)]
struct GeneratedFamily {
    metric_type: MetricType,
    base: String,
    declared: bool,
    with_unit: bool,
    series: Vec<GeneratedSeries>,
}

fn label_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('}'),
            Just(','),
            any::<char>()
        ],
        1..6,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn generated_series() -> impl Strategy<Value = GeneratedSeries> {
    (
        0..4_usize,
        proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,5}", label_value(), 0..4),
        any::<bool>(),
        -10_000_000_000_000_i64..10_000_000_000_000,
        proptest::collection::vec(1..1_000_000_000_i64, 1..6),
        proptest::collection::vec((any::<f64>(), 0..4_u8), 6),
        any::<bool>(),
    )
        .prop_map(
            |(suffix_choice, labels, reverse_labels, first, steps, values, exemplar)| {
                GeneratedSeries {
                    suffix_choice,
                    labels: labels
                        .into_iter()
                        .filter(|(name, _)| name != "__name__")
                        .collect(),
                    reverse_labels,
                    first_timestamp_ms: first,
                    steps_ms: steps,
                    values,
                    exemplar,
                }
            },
        )
}

fn generated_family() -> impl Strategy<Value = GeneratedFamily> {
    (
        prop_oneof![
            Just(MetricType::Counter),
            Just(MetricType::Gauge),
            Just(MetricType::Unknown),
            Just(MetricType::StateSet),
            Just(MetricType::Info),
            Just(MetricType::Summary),
            Just(MetricType::Histogram),
            Just(MetricType::GaugeHistogram),
        ],
        "[a-z][a-z_]{0,5}",
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(generated_series(), 1..4),
    )
        .prop_map(
            |(metric_type, base, declared, with_unit, series)| GeneratedFamily {
                metric_type,
                base,
                // Only unknown families may go without a TYPE line.
                declared: declared || metric_type != MetricType::Unknown,
                with_unit,
                series,
            },
        )
}

/// Writes families as OpenMetrics text and returns it with the samples it must parse to.
fn render(families: &[GeneratedFamily]) -> (String, Vec<OmSample>) {
    let mut text = String::new();
    let mut expected = Vec::new();
    for (index, family) in families.iter().enumerate() {
        let mut name = format!("fam{index}_{}", family.base);
        if family.with_unit {
            name.push_str("_bytes");
        }
        if family.declared {
            text.push_str(&format!("# TYPE {name} {}\n", family.metric_type));
            if family.with_unit {
                text.push_str(&format!("# UNIT {name} bytes\n"));
            }
            text.push_str(&format!(
                "# HELP {name} Generated \\\"family\\\" {index}.\n"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for series in &family.series {
            let suffixes = family.metric_type.sample_suffixes();
            let sample_name = format!("{name}{}", suffixes[series.suffix_choice % suffixes.len()]);
            if !seen.insert((sample_name.clone(), series.labels.clone())) {
                continue;
            }
            let mut pairs: Vec<_> = series.labels.iter().collect();
            if series.reverse_labels {
                pairs.reverse();
            }
            let label_text: Vec<String> = pairs
                .iter()
                .map(|(label, value)| {
                    let escaped = value
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    format!("{label}=\"{escaped}\"")
                })
                .collect();
            let prefix = if label_text.is_empty() && series.suffix_choice % 2 == 0 {
                sample_name.clone()
            } else {
                format!("{sample_name}{{{}}}", label_text.join(","))
            };
            let mut timestamp_ms = series.first_timestamp_ms;
            for (step, &(value, style)) in series.steps_ms.iter().zip(&series.values) {
                timestamp_ms += step;
                let value_text = match (style, value) {
                    (0, _) => format!("{value}"),
                    (1, v) if v == f64::INFINITY => "+Inf".to_owned(),
                    (1, v) if v == f64::NEG_INFINITY => "-Inf".to_owned(),
                    _ => format!("{value:?}"),
                };
                let sign = if timestamp_ms < 0 { "-" } else { "" };
                let magnitude = timestamp_ms.unsigned_abs();
                let timestamp_text = if magnitude % 1000 == 0 && style % 2 == 0 {
                    format!("{sign}{}", magnitude / 1000)
                } else {
                    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
                };
                text.push_str(&format!("{prefix} {value_text} {timestamp_text}"));
                if series.exemplar {
                    text.push_str(" # {trace_id=\"a}b\"} 0.5 1.25");
                }
                text.push('\n');
                expected.push(OmSample {
                    name: sample_name.clone(),
                    labels: Labels::from_pairs(series.labels.clone()),
                    timestamp_ms,
                    value,
                    metric_type: family.metric_type,
                });
            }
        }
    }
    text.push_str("# EOF\n");
    (text, expected)
}

fn same_value(left: f64, right: f64) -> bool {
    (left.is_nan() && right.is_nan()) || left.to_bits() == right.to_bits()
}

const TOKENS: &[&str] = &[
    "# TYPE ",
    "# HELP ",
    "# UNIT ",
    "# EOF",
    "\n",
    " ",
    "a",
    "a_total",
    "_created",
    "{",
    "}",
    "=",
    "\"",
    "\\",
    ",",
    "b",
    "1",
    "-",
    "+",
    ".",
    "e",
    "NaN",
    "+Inf",
    "counter",
    "gauge",
    "1735689600",
    "0.5",
    " # {",
    "é",
    "\r",
    "__name__",
    "1e999",
];

proptest! {
    #[test]
    fn arbitrary_bytes_give_errors_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        exhaust(bytes);
    }

    #[test]
    fn arbitrary_token_soup_gives_errors_never_panics(
        picks in proptest::collection::vec(0..TOKENS.len(), 0..60)
    ) {
        let text: String = picks.iter().map(|&pick| TOKENS[pick]).collect();
        exhaust(text.into_bytes());
    }

    #[test]
    fn written_series_parse_back_bit_exactly(
        families in proptest::collection::vec(generated_family(), 1..5)
    ) {
        let (text, expected) = render(&families);
        let parsed = parse(&text).map_err(|err| TestCaseError::fail(format!("{err}\n{text}")))?;
        prop_assert_eq!(parsed.len(), expected.len());
        for (got, want) in parsed.iter().zip(&expected) {
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.labels, &want.labels);
            prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
            prop_assert_eq!(got.metric_type, want.metric_type);
            prop_assert!(same_value(got.value, want.value), "{} != {}", got.value, want.value);
        }
    }
}

/// Reads input to its end: whatever it is, the reader answers with samples or one error,
/// on a line that exists.
fn exhaust(bytes: Vec<u8>) {
    let n_lines = bytes.split(|&b| b == b'\n').count();
    let mut reader = OmReader::new(Cursor::new(bytes), "fuzz.om");
    while let Some(item) = reader.next() {
        if let Err(err) = item {
            assert!(err.line >= 1 && err.line <= n_lines, "{err}");
            assert!(reader.next().is_none());
            break;
        }
    }
}
