//! `GET /api/v1/range?selector=&start=&end=&step=`: series over a range, aggregated per
//! step. Beyond a day the step is a multiple of five minutes, so the store answers from its
//! rollups; the points per series and the series per answer are bounded. A client user's
//! selector is narrowed to its own client, whatever it asked for.

use crate::http::auth::{Caller, ClientScope};
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::store::{Resolution, Selector, Store, BUCKET_MS};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest range one request may ask for.
pub const MAX_RANGE_MS: i64 = 400 * 24 * 3600 * 1000;
/// Points per series at most, as Prometheus' range API allows.
pub const MAX_POINTS: i64 = 11_000;
/// Points per series when no step is given.
const DEFAULT_POINTS: u32 = 720;
/// Series per answer at most.
pub const MAX_SERIES: usize = 500;
/// Ranges longer than this read the five-minute rollups.
const RAW_RANGE_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    selector: Option<String>,
    /// Unix seconds or RFC 3339; default an hour before `end`.
    start: Option<String>,
    /// Unix seconds or RFC 3339; default now.
    end: Option<String>,
    /// Seconds, or a duration such as "5m"; default about 720 points.
    step: Option<String>,
}

pub async fn range(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let text = query.selector.as_deref().unwrap_or("").trim().to_string();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "selector is missing: add ?selector=system_cpu_utilization_ratio{host=\"web-01\"}",
        ));
    }
    let mut selector: Selector = text
        .parse()
        .map_err(|error| ApiError::bad_request(format!("selector: {error}")))?;
    if let ClientScope::One(client) = &caller.scope {
        selector = selector.with_label("client", client.clone());
    }
    let now_ms = state.now_ms();
    let end_ms = match &query.end {
        Some(end) => parse_time("end", end)?,
        None => now_ms,
    };
    let start_ms = match &query.start {
        Some(start) => parse_time("start", start)?,
        None => end_ms - 3600 * 1000,
    };
    if start_ms > end_ms {
        return Err(ApiError::bad_request(format!(
            "start ({start_ms} ms) is after end ({end_ms} ms); swap them"
        )));
    }
    let span_ms = end_ms - start_ms;
    if span_ms > MAX_RANGE_MS {
        return Err(ApiError::bad_request(format!(
            "range too large: {} days asked, at most {} days per request; narrow start..end",
            span_ms / (24 * 3600 * 1000),
            MAX_RANGE_MS / (24 * 3600 * 1000)
        )));
    }
    let mut step_ms = match &query.step {
        Some(step) => parse_step(step)?,
        None => Store::auto_step(start_ms, end_ms, DEFAULT_POINTS),
    };
    if span_ms > RAW_RANGE_MS {
        // Beyond a day, read the rollups: a step of whole five-minute buckets.
        step_ms = ((step_ms + BUCKET_MS - 1) / BUCKET_MS).max(1) * BUCKET_MS;
    }
    if span_ms / step_ms > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "range too large for step {} s: {} points per series, at most {MAX_POINTS}; raise step or narrow start..end",
            step_ms / 1000,
            span_ms / step_ms
        )));
    }
    state
        .blocking("reading a range", move |state| {
            let selection = state
                .store
                .select_range(&selector, start_ms, end_ms, step_ms)
                .map_err(|error| ApiError::internal("reading the store", error))?;
            if selection.series.len() > MAX_SERIES {
                return Err(ApiError::bad_request(format!(
                    "selector matches {} series, at most {MAX_SERIES} per request; add labels (host, mountpoint, …) to narrow it",
                    selection.series.len()
                )));
            }
            let series: Vec<Value> = selection
                .series
                .iter()
                .map(|series| {
                    let points: Vec<Value> = series
                        .points
                        .iter()
                        .map(|point| {
                            json!([
                                point.timestamp_ms,
                                number(point.aggregate.avg()),
                                number(point.aggregate.min),
                                number(point.aggregate.max)
                            ])
                        })
                        .collect();
                    json!({ "labels": series.labels, "points": points })
                })
                .collect();
            Ok(Json(json!({
                "start_ms": start_ms,
                "end_ms": end_ms,
                "step_ms": selection.step_ms,
                "resolution": match selection.resolution {
                    Resolution::Raw => "raw",
                    Resolution::Rollup5m => "rollup_5m",
                },
                "point": ["timestamp_ms", "avg", "min", "max"],
                "series": series,
            })))
        })
        .await
}

/// JSON has no NaN or infinities: they become null.
fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Unix seconds (fractions allowed) or an RFC 3339 time, as milliseconds.
pub fn parse_time(name: &str, text: &str) -> ApiResult<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < 1e13 {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    text.parse::<jiff::Timestamp>()
        .map(|at| at.as_millisecond())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name} = '{}' is not a time: give Unix seconds (1765000000) or RFC 3339 (2026-12-07T10:00:00Z)",
                text.chars().take(40).collect::<String>()
            ))
        })
}

fn parse_step(text: &str) -> ApiResult<i64> {
    let step_ms = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => (seconds * 1000.0).round() as i64,
        _ => vigil_proto::config_file::parse_duration(text)
            .map(|duration| duration.as_millis() as i64)
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "step = '{}' is not a duration: give seconds (60) or e.g. 5m",
                    text.chars().take(40).collect::<String>()
                ))
            })?,
    };
    if step_ms < 1000 {
        return Err(ApiError::bad_request(
            "step must be at least 1 s; e.g. step=60",
        ));
    }
    Ok(step_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_unix_seconds_or_rfc3339_and_nonsense_is_named() {
        assert_eq!(
            parse_time("start", "1700000000").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("start", "1700000000.5").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("end", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        let error = parse_time("end", "yesterday").unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            error.message.contains("end = 'yesterday'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn steps_read_as_seconds_or_durations_and_must_be_a_second_or_more() {
        assert_eq!(parse_step("60").unwrap(), 60_000);
        assert_eq!(parse_step("5m").unwrap(), 300_000);
        assert!(parse_step("0.1")
            .unwrap_err()
            .message
            .contains("at least 1 s"));
        assert!(parse_step("soon")
            .unwrap_err()
            .message
            .contains("step = 'soon'"));
    }
}
