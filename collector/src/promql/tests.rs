//! Evaluator tests on a real store in a temporary directory, in the manner of Prometheus'
//! promqltest files: series loaded as `start+increment x count` runs, then instant and range
//! evaluations with the answers Prometheus gives.

use std::time::Duration;

use vigil_proto::model::{Labels, Sample as StoredSample};

use super::value::{QueryValue, Sample};
use super::{evaluate_instant, evaluate_range, PromqlError, RangeQuery};
use crate::store::{SeriesSamples, Store, StoreConfig, WriterId};

/// The loaded series start here (milliseconds); times in the tests are offsets from it.
const BASE_MS: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// A store in a temporary directory; retention is off, since the samples are old.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.raw_retention = Duration::from_secs(100 * 365 * 86_400);
    config.rollup_retention = config.raw_retention;
    let store = Store::open(&config).unwrap();
    (dir, store)
}

/// Labels from `name{a="b",…}`.
fn labels(text: &str) -> Labels {
    let expr = promql_parser::parser::parse(text).unwrap();
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        panic!("{text} is not a selector");
    };
    let mut labels = Labels::from_pairs(
        selector
            .matchers
            .matchers
            .iter()
            .map(|matcher| (matcher.name.clone(), matcher.value.clone())),
    );
    if let Some(name) = selector.name {
        labels.insert("__name__", name);
    }
    labels
}

/// Loads series every `step_ms` from [`BASE_MS`]; values as in promqltest: `1 2 _ 4`
/// (`_` is no sample), `0+10x3` (0, 10, 20, 30), `5-1x2` (5, 4, 3).
fn load(store: &Store, step_ms: i64, series: &[(&str, &str)]) {
    let mut batch = Vec::new();
    for (selector, values) in series {
        let mut samples = Vec::new();
        let mut index = 0_i64;
        for token in values.split_whitespace() {
            let mut push = |value: Option<f64>| {
                if let Some(value) = value {
                    samples.push(StoredSample {
                        timestamp_ms: BASE_MS + index * step_ms,
                        value,
                    });
                }
                index += 1;
            };
            if token == "_" {
                push(None);
            } else if let Some((start, rest)) =
                token.split_once(['+', '-']).filter(|_| token.contains('x'))
            {
                let sign = if token[start.len()..].starts_with('-') {
                    -1.0
                } else {
                    1.0
                };
                let (increment, count) = rest.split_once('x').unwrap();
                let (start, increment): (f64, f64) =
                    (start.parse().unwrap(), increment.parse().unwrap());
                for i in 0..=count.parse::<i64>().unwrap() {
                    push(Some(start + sign * increment * i as f64));
                }
            } else {
                push(Some(token.parse().unwrap()));
            }
        }
        batch.push(SeriesSamples {
            labels: labels(selector),
            samples,
        });
    }
    let writer = WriterId {
        host: "test".to_owned(),
        spool_id: 1,
    };
    store.append(&writer, 1, &batch).unwrap();
}

fn instant(store: &Store, query: &str, at_ms: i64) -> Vec<Sample> {
    match evaluate_instant(store, None, query, BASE_MS + at_ms).unwrap() {
        QueryValue::Vector { mut samples, .. } => {
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            samples
        }
        other => panic!("{query}: expected a vector, got {other:?}"),
    }
}

/// `(labels text, value)` pairs, for comparing with `sample(…)`.
fn sample(selector: &str, value: f64) -> Sample {
    Sample {
        labels: if selector.is_empty() {
            Labels::new().into()
        } else {
            labels(selector).into()
        },
        value,
    }
}

fn assert_close(actual: &[Sample], expected: &[Sample]) {
    let mut expected = expected.to_vec();
    expected.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(
        actual.iter().map(|s| &s.labels).collect::<Vec<_>>(),
        expected.iter().map(|s| &s.labels).collect::<Vec<_>>()
    );
    for (a, e) in actual.iter().zip(&expected) {
        assert!(
            (a.value - e.value).abs() <= 1e-9 * e.value.abs().max(1.0),
            "{}: {} vs expected {}",
            a.labels,
            a.value,
            e.value
        );
    }
}

fn error(store: &Store, query: &str) -> PromqlError {
    evaluate_instant(store, None, query, BASE_MS).unwrap_err()
}

#[test]
fn an_instant_selector_sees_a_sample_up_to_five_minutes_old_and_no_older() {
    let (_dir, store) = store();
    load(&store, MINUTE, &[("up{job=\"api\"}", "1 2 3")]);
    // The last sample is at 2m: visible through 7m inclusive, absent after.
    assert_close(
        &instant(&store, "up", 7 * MINUTE),
        &[sample("up{job=\"api\"}", 3.0)],
    );
    assert!(instant(&store, "up", 7 * MINUTE + 1).is_empty());
    assert_close(
        &instant(&store, "up", MINUTE + 30_000),
        &[sample("up{job=\"api\"}", 2.0)],
    );
}

#[test]
fn offset_and_at_move_the_time_a_selector_reads_at() {
    let (_dir, store) = store();
    load(&store, MINUTE, &[("load{host=\"a\"}", "0+1x10")]);
    assert_close(
        &instant(&store, "load offset 3m", 10 * MINUTE),
        &[sample("load{host=\"a\"}", 7.0)],
    );
    let at_seconds = (BASE_MS + 4 * MINUTE) / 1000;
    assert_close(
        &instant(&store, &format!("load @ {at_seconds}"), 10 * MINUTE),
        &[sample("load{host=\"a\"}", 4.0)],
    );
}

#[test]
fn rate_and_increase_over_a_whole_window_match_prometheus() {
    // promqltest: load 5m http_requests 0+10x10; at 50m increase(…[50m]) is 100.
    let (_dir, store) = store();
    load(
        &store,
        5 * MINUTE,
        &[
            ("http_requests{path=\"/foo\"}", "0+10x10"),
            ("http_requests{path=\"/bar\"}", "0+10x5 0+10x4"),
        ],
    );
    assert_close(
        &instant(&store, "increase(http_requests[50m])", 50 * MINUTE),
        &[
            sample("{path=\"/foo\"}", 100.0),
            sample("{path=\"/bar\"}", 90.0),
        ],
    );
    assert_close(
        &instant(
            &store,
            "rate(http_requests{path=\"/foo\"}[50m])",
            50 * MINUTE,
        ),
        &[sample("{path=\"/foo\"}", 100.0 / 3000.0)],
    );
    // Window [5m, 50m]: 10 samples spaced 5m, edges on samples: no extrapolation.
    assert_close(
        &instant(
            &store,
            "delta(http_requests{path=\"/foo\"}[45m])",
            50 * MINUTE,
        ),
        &[sample("{path=\"/foo\"}", 90.0)],
    );
}

#[test]
fn over_time_functions_use_the_closed_window() {
    let (_dir, store) = store();
    load(&store, MINUTE, &[("temp{host=\"a\"}", "1 5 3 _ 7")]);
    // [0m, 4m] holds 1 5 3 7.
    let at = 4 * MINUTE;
    assert_close(
        &instant(&store, "count_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 4.0)],
    );
    assert_close(
        &instant(&store, "sum_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 16.0)],
    );
    assert_close(
        &instant(&store, "avg_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 4.0)],
    );
    assert_close(
        &instant(&store, "min_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 1.0)],
    );
    assert_close(
        &instant(&store, "max_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 7.0)],
    );
    assert_close(
        &instant(&store, "stdvar_over_time(temp[4m])", at),
        &[sample("{host=\"a\"}", 5.0)],
    );
    assert_close(
        &instant(&store, "quantile_over_time(0.5, temp[4m])", at),
        &[sample("{host=\"a\"}", 4.0)],
    );
    // last_over_time keeps the metric name, like an offset.
    assert_close(
        &instant(&store, "last_over_time(temp[4m])", at),
        &[sample("temp{host=\"a\"}", 7.0)],
    );
    // [1m, 4m] leaves out the sample at 0m.
    assert_close(
        &instant(&store, "count_over_time(temp[3m])", at),
        &[sample("{host=\"a\"}", 3.0)],
    );
}

#[test]
fn aggregations_group_by_and_without_labels() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[
            ("cpu{host=\"a\",client=\"x\"}", "1"),
            ("cpu{host=\"b\",client=\"x\"}", "3"),
            ("cpu{host=\"c\",client=\"y\"}", "8"),
        ],
    );
    assert_close(
        &instant(&store, "sum by (client) (cpu)", 0),
        &[sample("{client=\"x\"}", 4.0), sample("{client=\"y\"}", 8.0)],
    );
    assert_close(
        &instant(&store, "avg without (host) (cpu)", 0),
        &[sample("{client=\"x\"}", 2.0), sample("{client=\"y\"}", 8.0)],
    );
    assert_close(&instant(&store, "count(cpu)", 0), &[sample("", 3.0)]);
    assert_close(
        &instant(&store, "stddev(cpu)", 0),
        &[sample("", (26.0_f64 / 3.0).sqrt())],
    );
    assert_close(
        &instant(&store, "topk(1, cpu) by (client)", 0),
        &[
            sample("cpu{host=\"b\",client=\"x\"}", 3.0),
            sample("cpu{host=\"c\",client=\"y\"}", 8.0),
        ],
    );
    assert_close(
        &instant(&store, "bottomk(1, cpu)", 0),
        &[sample("cpu{host=\"a\",client=\"x\"}", 1.0)],
    );
}

#[test]
fn vectors_match_one_to_one_and_group_left_copies_labels_from_the_one_side() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[
            ("used{host=\"a\",mount=\"/\"}", "20"),
            ("used{host=\"a\",mount=\"/home\"}", "30"),
            ("size{host=\"a\",owner=\"ops\"}", "100"),
            ("free{host=\"a\",mount=\"/\"}", "80"),
        ],
    );
    assert_close(
        &instant(&store, "used / ignoring(__name__) (used + free)", 0),
        &[sample("{host=\"a\",mount=\"/\"}", 0.2)],
    );
    assert_close(
        &instant(&store, "used / on(host) group_left(owner) size", 0),
        &[
            sample("{host=\"a\",mount=\"/\",owner=\"ops\"}", 0.2),
            sample("{host=\"a\",mount=\"/home\",owner=\"ops\"}", 0.3),
        ],
    );
    // Two left elements for one right one without group_left is Prometheus' error.
    let error = error(&store, "used / on(host) size");
    assert!(
        error
            .to_string()
            .contains("many-to-one matching must be explicit"),
        "{error}"
    );
}

#[test]
fn comparisons_filter_unless_bool_asks_for_zero_or_one() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[("load{host=\"a\"}", "0.5"), ("load{host=\"b\"}", "2")],
    );
    assert_close(
        &instant(&store, "load > 1", 0),
        &[sample("load{host=\"b\"}", 2.0)],
    );
    assert_close(
        &instant(&store, "load > bool 1", 0),
        &[sample("{host=\"a\"}", 0.0), sample("{host=\"b\"}", 1.0)],
    );
    assert_close(
        &instant(&store, "1 < load", 0),
        &[sample("load{host=\"b\"}", 2.0)],
    );
    assert_close(
        &instant(&store, "load unless load{host=\"a\"}", 0),
        &[sample("load{host=\"b\"}", 2.0)],
    );
}

#[test]
fn absent_vector_scalar_and_label_replace_behave_like_prometheus() {
    let (_dir, store) = store();
    load(&store, MINUTE, &[("up{host=\"web-1\"}", "1")]);
    assert_close(
        &instant(&store, "absent(nothing{job=\"a\",env=~\"p.*\"})", 0),
        &[sample("{job=\"a\"}", 1.0)],
    );
    assert!(instant(&store, "absent(up)", 0).is_empty());
    assert_close(
        &instant(&store, "vector(scalar(up) * 3)", 0),
        &[sample("", 3.0)],
    );
    assert_close(
        &instant(
            &store,
            "label_replace(up, \"role\", \"$1\", \"host\", \"([a-z]+)-.*\")",
            0,
        ),
        &[sample("up{host=\"web-1\",role=\"web\"}", 1.0)],
    );
    assert_close(
        &instant(&store, "clamp_max(up * 5, 2)", 0),
        &[sample("{host=\"web-1\"}", 2.0)],
    );
}

#[test]
fn a_range_query_gives_one_point_per_step_and_drops_series_once_stale() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[
            ("up{host=\"a\"}", "1 1 1"),
            ("up{host=\"b\"}", "2 2 2 2 2 2 2 2 2 2"),
        ],
    );
    let value = evaluate_range(
        &store,
        None,
        "up",
        RangeQuery {
            start_ms: BASE_MS,
            end_ms: BASE_MS + 10 * MINUTE,
            step_ms: 2 * MINUTE,
        },
    )
    .unwrap();
    let QueryValue::Matrix(series) = value else {
        panic!("expected a matrix, got {value:?}");
    };
    assert_eq!(series.len(), 2);
    // host a's last sample is at 2m: seen at 0, 2, 4, 6 minutes, gone at 8.
    let times: Vec<i64> = series[0]
        .points
        .iter()
        .map(|(t, _)| (t - BASE_MS) / MINUTE)
        .collect();
    assert_eq!(times, vec![0, 2, 4, 6]);
    assert_eq!(series[1].points.len(), 6);
}

#[test]
fn unsupported_promql_is_refused_by_name() {
    let (_dir, store) = store();
    for (query, named) in [
        ("rate(up[5m:1m])", "subquery"),
        ("histogram_quantile(0.9, up)", "histogram_quantile()"),
        ("count_values(\"v\", up)", "aggregation count_values"),
    ] {
        let error = error(&store, query);
        assert_eq!(error.error_type(), "bad_data");
        assert!(error.to_string().contains(named), "{query}: {error}");
    }
    assert_eq!(error(&store, "up{").error_type(), "bad_data");
}

#[test]
fn results_with_two_elements_of_one_label_set_are_an_error() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[("a{host=\"x\"}", "1"), ("b{host=\"x\"}", "2")],
    );
    let error = error(&store, "abs({__name__=~\"a|b\"})");
    assert!(error.to_string().contains("same labelset"), "{error}");
}

#[test]
fn timestamp_sort_and_label_join_follow_prometheus() {
    let (_dir, store) = store();
    load(
        &store,
        MINUTE,
        &[("load{host=\"a\"}", "3 _ _"), ("load{host=\"b\"}", "1 9 _")],
    );
    // timestamp() gives each series' own latest sample time, not the evaluation time.
    assert_close(
        &instant(&store, "timestamp(load)", 2 * MINUTE),
        &[
            sample("{host=\"a\"}", BASE_MS as f64 / 1000.0),
            sample("{host=\"b\"}", (BASE_MS + MINUTE) as f64 / 1000.0),
        ],
    );
    let QueryValue::Vector { samples, .. } =
        evaluate_instant(&store, None, "sort_desc(load)", BASE_MS + MINUTE).unwrap()
    else {
        panic!("expected a vector");
    };
    let order: Vec<f64> = samples.iter().map(|s| s.value).collect();
    assert_eq!(order, vec![9.0, 3.0]);
    assert_close(
        &instant(
            &store,
            "label_join(load, \"id\", \"-\", \"__name__\", \"host\")",
            0,
        ),
        &[
            sample("load{host=\"a\",id=\"load-a\"}", 3.0),
            sample("load{host=\"b\",id=\"load-b\"}", 1.0),
        ],
    );
}
