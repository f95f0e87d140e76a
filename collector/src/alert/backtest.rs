//! `vigil-collector backtest`: replays a recorded OpenMetrics trace through the same
//! [`Engine`] that runs live, in simulated time, and writes one JSON line per alert state
//! change. The only place the alert room reads a file.
//!
//! A trace is grouped by metric family and series, not by time, so the whole file is read
//! first (as compact `(time, series, value)` triples) and replayed in time order. The
//! engine is evaluated on a 60-second grid of simulated time between the samples, as the
//! collector evaluates it on the wall clock.

use crate::alert::engine::{AlertState, Engine, SeriesId, Transition};
use crate::alert::rule::RuleSet;
use crate::openmetrics::{self, OmError};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use vigil_proto::model::{Labels, Sample};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Input(#[from] OmError),
    #[error("writing the alerts: {0}")]
    Output(#[from] std::io::Error),
}

/// What a replay went through, for a closing log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replay {
    pub samples: u64,
    pub series: usize,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub transitions: u64,
}

/// One output line, in the contract's field order.
#[derive(Serialize)]
struct Line<'a> {
    ts: i64,
    host: &'a str,
    rule: &'a str,
    severity: &'a str,
    state: AlertState,
    summary: &'a str,
    labels: &'a Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

/// Replays the trace at `input` (`.om`, or gzip whatever its name) under `rules`, writing
/// JSON Lines to `out`.
pub fn run(rules: RuleSet, input: &Path, out: &mut impl Write) -> Result<Replay, BacktestError> {
    run_engine(Engine::new(rules), input, out)
}

/// Replays the trace at `input` through `engine` as it is set up (for instance with a
/// client contract's forecast horizons), writing JSON Lines to `out`.
pub fn run_engine(
    mut engine: Engine,
    input: &Path,
    out: &mut impl Write,
) -> Result<Replay, BacktestError> {
    let samples = read_trace(input, |name, labels| engine.series_id(name, labels))?;
    replay(&mut engine, &samples, out)
}

/// Reads every sample of the file, registering each series once through `register`, and
/// returns them in time order.
pub fn read_trace(
    input: &Path,
    mut register: impl FnMut(&str, &Labels) -> SeriesId,
) -> Result<Vec<(i64, SeriesId, f64)>, OmError> {
    let mut reader = openmetrics::open(input)?;
    let mut samples = Vec::new();
    let mut current: Option<SeriesId> = None;
    while let Some(sample) = reader.next_sample()? {
        let id = match current {
            Some(id) if sample.same_series_as_previous => id,
            _ => register(sample.name, sample.labels),
        };
        current = Some(id);
        samples.push((sample.timestamp_ms, id, sample.value));
    }
    samples.sort_by_key(|&(timestamp_ms, series, _)| (timestamp_ms, series));
    Ok(samples)
}

/// Feeds time-ordered samples to the engine, evaluating it every interval in between.
pub fn replay(
    engine: &mut Engine,
    samples: &[(i64, SeriesId, f64)],
    out: &mut impl Write,
) -> Result<Replay, BacktestError> {
    let interval_ms = engine.settings().evaluation_interval_ms;
    let mut summary = Replay {
        samples: samples.len() as u64,
        first_ms: samples.first().map(|s| s.0),
        last_ms: samples.last().map(|s| s.0),
        ..Replay::default()
    };
    let Some(first_ms) = summary.first_ms else {
        return Ok(summary);
    };
    let mut series = std::collections::HashSet::new();
    let mut next_evaluation_ms = (first_ms.div_euclid(interval_ms) + 1) * interval_ms;
    let mut transitions = Vec::new();
    for &(timestamp_ms, id, value) in samples {
        // An evaluation at time t sees every sample stamped t or earlier.
        while next_evaluation_ms < timestamp_ms {
            transitions.extend(engine.evaluate(next_evaluation_ms));
            next_evaluation_ms += interval_ms;
        }
        series.insert(id);
        let sample = Sample {
            timestamp_ms,
            value,
        };
        engine.observe_series(id, sample, timestamp_ms, &mut transitions);
        summary.transitions += write_lines(&transitions, out)?;
        transitions.clear();
    }
    if let Some(last_ms) = summary.last_ms {
        if next_evaluation_ms <= last_ms {
            let transitions = engine.evaluate(next_evaluation_ms);
            summary.transitions += write_lines(&transitions, out)?;
        }
    }
    summary.series = series.len();
    Ok(summary)
}

fn write_lines(transitions: &[Transition], out: &mut impl Write) -> std::io::Result<u64> {
    for transition in transitions {
        let line = Line {
            ts: transition.ts_ms.div_euclid(1000),
            host: &transition.host,
            rule: &transition.rule,
            severity: transition.severity.as_str(),
            state: transition.state,
            summary: &transition.summary,
            labels: &transition.labels,
            // Only the failure kinds a scenario can name; the scorer matches the others by
            // their words.
            kind: transition
                .category
                .filter(|&c| c.is_scored_failure())
                .map(|c| c.as_str()),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(transitions.len() as u64)
}
