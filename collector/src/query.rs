//! `vigil-collector query --data DIR 'selector' [--since 1h] [--format json|table]`: reads
//! the series a selector picks from a store on disk and prints them, as JSON shaped like a
//! Prometheus range-query result or as a table for a terminal. `main.rs` parses the
//! arguments; this file does the rest. It never creates a store, and it cannot read one a
//! running collector holds open: sled locks its directory, and [`StoreError::InUse`] says so.
//!
//! A range longer than [`RAW_RANGE_MAX`] is read from the five-minute rollups, which reach
//! back further than raw samples and are far fewer: each printed point is then the average
//! of a step (a multiple of five minutes, about [`MAX_POINTS`] per series) at the step's
//! start.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::store::{
    SelectedSeries, Selector, SelectorError, Store, StoreConfig, StoreError, BUCKET_MS,
    METRIC_NAME_LABEL,
};
use vigil_proto::model::Sample;

/// The longest range printed sample by sample; longer ones read the rollups.
pub const RAW_RANGE_MAX: Duration = Duration::from_secs(24 * 3600);

/// About how many points per series a range read from rollups prints.
pub const MAX_POINTS: u32 = 1440;

/// How `query` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A JSON array like the `result` of a Prometheus range query:
    /// `[{"metric": {...}, "values": [[unix_seconds, "value"], ...]}, ...]`.
    Json,
    /// One block per series: its name and labels, then a time and a value per line.
    Table,
}

/// Why `query` printed nothing useful.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The selector did not parse; the message points at the character.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the query result: {0}")]
    Output(#[source] io::Error),
}

/// Prints the series that `selector_text` selects with their samples of the last `since`
/// before `now_ms` (step averages from the rollups when `since` is longer than
/// [`RAW_RANGE_MAX`]), and returns how many series there were (none prints `[]` as JSON and
/// nothing as a table).
pub fn run_query(
    data_dir: &Path,
    selector_text: &str,
    since: Duration,
    format: OutputFormat,
    now_ms: i64,
    out: &mut dyn Write,
) -> Result<usize, QueryError> {
    // Parse first, so that a typo is reported without touching the disk.
    let selector: Selector = selector_text.parse()?;
    let store = Store::open_existing(&StoreConfig::new(data_dir))?;
    let since_ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let start_ms = now_ms.saturating_sub(since_ms);
    let selected = if since > RAW_RANGE_MAX {
        let step_ms = Store::auto_step(start_ms, now_ms, MAX_POINTS).max(BUCKET_MS);
        store
            .select_range(&selector, start_ms, now_ms, step_ms)?
            .series
            .into_iter()
            .map(|series| SelectedSeries {
                labels: series.labels,
                samples: series
                    .points
                    .iter()
                    .map(|point| Sample {
                        timestamp_ms: point.timestamp_ms,
                        value: point.aggregate.avg(),
                    })
                    .collect(),
            })
            .collect()
    } else {
        store.select(&selector, start_ms, now_ms)?
    };
    match format {
        OutputFormat::Json => write_json(&selected, out),
        OutputFormat::Table => write_table(&selected, out),
    }
    .map_err(QueryError::Output)?;
    out.flush().map_err(QueryError::Output)?;
    Ok(selected.len())
}

/// Prints series read elsewhere (through a running collector's API) as [`run_query`] does.
pub fn write_series(
    selected: &[SelectedSeries],
    format: OutputFormat,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        OutputFormat::Json => write_json(selected, out),
        OutputFormat::Table => write_table(selected, out),
    }?;
    out.flush()
}

fn write_json(selected: &[SelectedSeries], out: &mut dyn Write) -> io::Result<()> {
    let result: Vec<serde_json::Value> = selected
        .iter()
        .map(|series| {
            let metric: serde_json::Map<String, serde_json::Value> = series
                .labels
                .iter()
                .map(|(name, value)| (name.to_owned(), json!(value)))
                .collect();
            let values: Vec<serde_json::Value> = series
                .samples
                .iter()
                .map(|sample| {
                    json!([
                        sample.timestamp_ms as f64 / 1000.0,
                        format_value(sample.value)
                    ])
                })
                .collect();
            json!({ "metric": metric, "values": values })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &result)?;
    writeln!(out)
}

fn write_table(selected: &[SelectedSeries], out: &mut dyn Write) -> io::Result<()> {
    for (index, series) in selected.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", series_title(series))?;
        for sample in &series.samples {
            writeln!(
                out,
                "  {}  {}",
                format_time(sample.timestamp_ms),
                format_value(sample.value)
            )?;
        }
    }
    Ok(())
}

/// `name{label="value",…}`, the way Prometheus writes a series.
fn series_title(series: &SelectedSeries) -> String {
    let name = series.labels.get(METRIC_NAME_LABEL).unwrap_or("");
    let others = vigil_proto::model::Labels::from_pairs(
        series
            .labels
            .iter()
            .filter(|(label, _)| *label != METRIC_NAME_LABEL),
    );
    format!("{name}{others}")
}

/// A value as Prometheus' API writes it: the shortest decimal that reads back the same,
/// and `NaN`, `+Inf`, `-Inf`.
fn format_value(value: f64) -> String {
    match value {
        f64::INFINITY => "+Inf".to_owned(),
        f64::NEG_INFINITY => "-Inf".to_owned(),
        value => value.to_string(),
    }
}

/// RFC 3339 in UTC, to the second unless the sample has milliseconds. Times humantime
/// cannot write (before 1970, after 9999) fall back to milliseconds since the epoch.
fn format_time(timestamp_ms: i64) -> String {
    const YEAR_10000_MS: i64 = 253_402_300_800_000;
    let Ok(unsigned_ms) = u64::try_from(timestamp_ms) else {
        return format!("{timestamp_ms} ms since 1970");
    };
    if timestamp_ms >= YEAR_10000_MS {
        return format!("{timestamp_ms} ms since 1970");
    }
    let time: SystemTime = UNIX_EPOCH + Duration::from_millis(unsigned_ms);
    if timestamp_ms % 1000 == 0 {
        humantime::format_rfc3339_seconds(time).to_string()
    } else {
        humantime::format_rfc3339_millis(time).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SeriesSamples, WriterId};
    use vigil_proto::model::{Labels, Sample};

    const NOW_MS: i64 = 1_700_000_000_000;

    /// A store holding two hosts' filesystem usage over the last two hours and a CPU series.
    fn sample_store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
        let series = |name: &str, host: &str, samples: &[(i64, f64)]| SeriesSamples {
            labels: Labels::from_pairs([("__name__", name), ("host", host), ("client", "acme")]),
            samples: samples
                .iter()
                .map(|&(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                })
                .collect(),
        };
        let batch = [
            series(
                "fs_used_bytes",
                "web-01",
                &[
                    (NOW_MS - 7_200_000, 1.0),
                    (NOW_MS - 60_000, 2.5),
                    (NOW_MS - 10_500, f64::INFINITY),
                ],
            ),
            series("fs_used_bytes", "db-01", &[(NOW_MS - 30_000, 1e21)]),
            series("cpu_ratio", "web-01", &[(NOW_MS, 0.25)]),
        ];
        store
            .append(
                &WriterId {
                    host: "web-01".to_owned(),
                    spool_id: 1,
                },
                1,
                &batch,
            )
            .unwrap();
        dir
    }

    fn query(
        dir: &Path,
        selector: &str,
        since: Duration,
        format: OutputFormat,
    ) -> Result<(usize, String), QueryError> {
        let mut out = Vec::new();
        let n_series = run_query(dir, selector, since, format, NOW_MS, &mut out)?;
        Ok((n_series, String::from_utf8(out).unwrap()))
    }

    #[test]
    fn json_output_is_an_array_of_metric_and_values_like_prometheus() {
        let dir = sample_store();
        let (n_series, text) = query(
            dir.path(),
            "fs_used_bytes",
            Duration::from_secs(3600),
            OutputFormat::Json,
        )
        .unwrap();
        assert_eq!(n_series, 2);
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("the output is JSON");
        let expected = json!([
            {
                "metric": {"__name__": "fs_used_bytes", "client": "acme", "host": "db-01"},
                "values": [[1_699_999_970.0, "1000000000000000000000"]],
            },
            {
                "metric": {"__name__": "fs_used_bytes", "client": "acme", "host": "web-01"},
                "values": [[1_699_999_940.0, "2.5"], [1_699_999_989.5, "+Inf"]],
            },
        ]);
        assert_eq!(parsed, expected);
    }

    #[test]
    fn since_widens_the_window_back_from_now() {
        let dir = sample_store();
        let (_, text) = query(
            dir.path(),
            r#"fs_used_bytes{host="web-01"}"#,
            Duration::from_secs(3 * 3600),
            OutputFormat::Json,
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed[0]["values"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn no_matching_series_prints_an_empty_json_array() {
        let dir = sample_store();
        let (n_series, text) = query(
            dir.path(),
            "nothing_here",
            Duration::from_secs(3600),
            OutputFormat::Json,
        )
        .unwrap();
        assert_eq!(n_series, 0);
        assert_eq!(text.trim(), "[]");
        let (n_series, text) = query(
            dir.path(),
            "nothing_here",
            Duration::from_secs(3600),
            OutputFormat::Table,
        )
        .unwrap();
        assert_eq!((n_series, text.as_str()), (0, ""));
    }

    #[test]
    fn table_output_has_a_block_per_series_with_utc_times() {
        let dir = sample_store();
        let (n_series, text) = query(
            dir.path(),
            r#"{host="web-01"}"#,
            Duration::from_secs(3600),
            OutputFormat::Table,
        )
        .unwrap();
        assert_eq!(n_series, 2);
        assert_eq!(
            text,
            "cpu_ratio{client=\"acme\",host=\"web-01\"}\n\
             \x20 2023-11-14T22:13:20Z  0.25\n\
             \n\
             fs_used_bytes{client=\"acme\",host=\"web-01\"}\n\
             \x20 2023-11-14T22:12:20Z  2.5\n\
             \x20 2023-11-14T22:13:09.500Z  +Inf\n"
        );
    }

    #[test]
    fn a_bad_selector_is_reported_with_its_position_before_the_store_is_opened() {
        let missing = Path::new("/nonexistent/vigil-data");
        let error = query(
            missing,
            r#"cpu{host="a""#,
            Duration::from_secs(60),
            OutputFormat::Json,
        )
        .unwrap_err();
        assert!(matches!(error, QueryError::Selector(_)), "{error:?}");
        assert!(error.to_string().contains("at character 13"), "{error}");
    }

    #[test]
    fn a_missing_data_directory_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        let error =
            query(&missing, "cpu", Duration::from_secs(60), OutputFormat::Json).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "data directory '{}' does not exist",
                missing.display()
            )),
            "{error}"
        );
        assert!(!missing.exists());
    }

    #[test]
    fn a_range_longer_than_a_day_prints_step_averages_from_the_rollups() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
            // Ten days of one sample a minute, the value counting the minutes.
            let first_minute = (NOW_MS - 10 * 86_400_000) / 60_000;
            let samples: Vec<Sample> = (first_minute..NOW_MS / 60_000)
                .map(|minute| Sample {
                    timestamp_ms: minute * 60_000,
                    value: (minute - first_minute) as f64,
                })
                .collect();
            let n_raw = samples.len();
            let batch = [SeriesSamples {
                labels: Labels::from_pairs([("__name__", "uptime_minutes"), ("host", "web-01")]),
                samples,
            }];
            let writer = WriterId {
                host: "web-01".to_owned(),
                spool_id: 1,
            };
            store.append(&writer, 1, &batch).unwrap();
            store.checkpoint(true).unwrap();
            assert_eq!(n_raw, 14_400);
        }
        let (n_series, text) = query(
            dir.path(),
            "uptime_minutes",
            Duration::from_secs(30 * 86_400),
            OutputFormat::Json,
        )
        .unwrap();
        assert_eq!(n_series, 1);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let values = parsed[0]["values"].as_array().unwrap();
        // 30 days in about 1440 points: steps of 30 minutes, over ten days of samples that
        // start and end within a step.
        let first_minute = (NOW_MS - 10 * 86_400_000) / 60_000;
        let last_minute = NOW_MS / 60_000 - 1;
        assert_eq!(
            values.len() as i64,
            last_minute / 30 - first_minute / 30 + 1
        );
        let step_s = 1800.0;
        let first_time = values[0][0].as_f64().unwrap();
        assert_eq!(
            first_time % step_s,
            0.0,
            "steps start on multiples of the step"
        );
        // A whole step holds 30 consecutive minutes: its average falls between two of them,
        // which no raw sample has.
        let second: f64 = values[1][1].as_str().unwrap().parse().unwrap();
        assert_eq!(second.fract(), 0.5, "{second} is not a step average");
        let last: f64 = values[values.len() - 2][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(last.fract(), 0.5, "{last} is not a step average");
    }

    #[test]
    fn times_outside_what_rfc_3339_can_show_fall_back_to_milliseconds() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(-1), "-1 ms since 1970");
        assert_eq!(format_time(i64::MAX), format!("{} ms since 1970", i64::MAX));
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(-0.5), "-0.5");
    }
}
