//! What a PromQL query returns (scalar, string, instant vector, range matrix) and its JSON in
//! the shape of Prometheus' HTTP API: `resultType`, values as strings formatted like Go's
//! `strconv.FormatFloat(v, 'f', -1, 64)`, timestamps as seconds with up to three decimals.

use std::fmt::Write as _;

use vigil_proto::model::Labels;

use super::eval::METRIC_NAME;

/// One element of an instant vector: a series' labels and its value at the evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: std::sync::Arc<Labels>,
    pub value: f64,
}

/// One series of a range result: points as (milliseconds, value), in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar {
        timestamp_ms: i64,
        value: f64,
    },
    String {
        timestamp_ms: i64,
        value: String,
    },
    Vector {
        timestamp_ms: i64,
        samples: Vec<Sample>,
    },
    Matrix(Vec<Series>),
}

impl QueryValue {
    /// Prometheus' `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector { .. } => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }

    /// The `data` object of a successful response: `{"resultType":…,"result":…}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "{{\"resultType\":\"{}\",\"result\":",
            self.result_type()
        );
        match self {
            QueryValue::Scalar {
                timestamp_ms,
                value,
            } => {
                let _ = write!(
                    out,
                    "[{},\"{}\"]",
                    format_timestamp(*timestamp_ms),
                    format_value(*value)
                );
            }
            QueryValue::String {
                timestamp_ms,
                value,
            } => {
                let _ = write!(
                    out,
                    "[{},{}]",
                    format_timestamp(*timestamp_ms),
                    json_string(value)
                );
            }
            QueryValue::Vector {
                timestamp_ms,
                samples,
            } => {
                out.push('[');
                for (i, sample) in samples.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"metric\":");
                    write_labels(&mut out, &sample.labels);
                    let _ = write!(
                        out,
                        ",\"value\":[{},\"{}\"]}}",
                        format_timestamp(*timestamp_ms),
                        format_value(sample.value)
                    );
                }
                out.push(']');
            }
            QueryValue::Matrix(series) => {
                out.push('[');
                for (i, one) in series.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"metric\":");
                    write_labels(&mut out, &one.labels);
                    out.push_str(",\"values\":[");
                    for (j, (timestamp_ms, value)) in one.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let _ = write!(
                            out,
                            "[{},\"{}\"]",
                            format_timestamp(*timestamp_ms),
                            format_value(*value)
                        );
                    }
                    out.push_str("]}");
                }
                out.push(']');
            }
        }
        out.push('}');
        out
    }
}

/// A label set as a JSON object, `__name__` first as in Prometheus' output.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    let mut first = true;
    let name = labels.get(METRIC_NAME);
    let rest = labels.iter().filter(|(name, _)| *name != METRIC_NAME);
    for (key, value) in name
        .map(|value| (METRIC_NAME, value))
        .into_iter()
        .chain(rest)
    {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&json_string(key));
        out.push(':');
        out.push_str(&json_string(value));
    }
    out.push('}');
}

pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A sample value as Prometheus writes it: `NaN`, `+Inf`, `-Inf`, else the shortest decimal
/// that reads back as the same float, without an exponent.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// Milliseconds as seconds with up to three decimals, trailing zeros trimmed
/// (`1700000000`, `1700000000.5`).
pub fn format_timestamp(timestamp_ms: i64) -> String {
    let sign = if timestamp_ms < 0 { "-" } else { "" };
    let magnitude = timestamp_ms.unsigned_abs();
    let (seconds, millis) = (magnitude / 1000, magnitude % 1000);
    if millis == 0 {
        format!("{sign}{seconds}")
    } else {
        let fraction = format!("{millis:03}");
        format!("{sign}{seconds}.{}", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps_are_written_like_prometheus_writes_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_timestamp(1_700_000_000_000), "1700000000");
        assert_eq!(format_timestamp(1_700_000_000_500), "1700000000.5");
        assert_eq!(format_timestamp(-1_500), "-1.5");
    }

    #[test]
    fn a_vector_renders_with_the_metric_name_first_and_values_as_strings() {
        let value = QueryValue::Vector {
            timestamp_ms: 1_000,
            samples: vec![Sample {
                labels: std::sync::Arc::new(Labels::from_pairs([
                    ("host", "a"),
                    ("__name__", "up"),
                ])),
                value: 2.5,
            }],
        };
        assert_eq!(
            value.to_json(),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","host":"a"},"value":[1,"2.5"]}]}"#
        );
    }
}
