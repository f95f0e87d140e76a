//! `vigil-collector backtest --policy`: a recorded trace replayed through the live path in
//! simulated time — the same [`LiveAlerts`], [`Dispatch`], [`Policies`], [`Outbox`] and
//! [`Notifier`] that `serve` runs, reading a manual clock set to each sample's time, with
//! the outbox in a temporary folder and channels that record instead of sending.
//!
//! What it prints is what would have been delivered: one JSON line per alert state change
//! that reached a channel, stamped with the simulated instant it was sent and the routes
//! (channels) that got it. Every decision — contract severity, maintenance holds, `lasting`,
//! business hours and the morning digest, escalation — is made by the live objects; this
//! file only moves the clock and writes down what came out.

use super::{Dispatch, LiveAlerts, Policies};
use crate::alert::backtest::{read_trace, BacktestError as TraceError, Replay};
use crate::alert::{Engine, RuleSet};
use crate::notify::channel::{Channels, Recorder};
use crate::notify::config::RoutingSection;
use crate::notify::Purpose;
use crate::notify::{
    AlertStatus, Clock, Delivery, Notifier, NotifierSettings, NotifyError, Outbox,
};
use crate::policy::Policy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use vigil_proto::model::{Labels, Sample};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("policy {path}: {detail}")]
    Policy { path: String, detail: String },
    #[error("backtest: a temporary folder for the outbox cannot be made: {0}; set TMPDIR to a writable folder")]
    Scratch(std::io::Error),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("writing the deliveries: {0}")]
    Output(#[from] std::io::Error),
}

/// The routes a backtest delivers to when no collector config gives them: one channel per
/// kind of route, named after it.
pub fn default_routing() -> RoutingSection {
    RoutingSection {
        on_call: vec!["on_call".into()],
        normal: vec!["normal".into()],
        escalation: vec!["escalation".into()],
        ..RoutingSection::default()
    }
}

/// One output line: the scenario format's fields first, then where it went.
#[derive(Serialize)]
struct Line<'a> {
    ts: i64,
    host: &'a str,
    rule: &'a str,
    /// The contract's severity.
    severity: &'a str,
    state: AlertStatus,
    summary: &'a str,
    labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    routes: Vec<&'a str>,
    /// `digest` or `escalation` when the message was not the alert's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'static str>,
    /// When the decision was made (a digest is sent later than that).
    decided: i64,
    policy_version: u64,
}

/// Replays the trace at `input` under `rules` through the live path with the contract in
/// `policy_file` for every host of the trace, delivering to `routing`'s channels; writes
/// JSON Lines to `out`.
pub async fn run(
    rules: RuleSet,
    policy_file: &Path,
    routing: RoutingSection,
    input: &Path,
    out: &mut impl Write,
) -> Result<Replay, BacktestError> {
    let policy_error = |detail: String| BacktestError::Policy {
        path: policy_file.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(policy_file)
        .map_err(|error| policy_error(format!("cannot be read: {error}; check the path")))?;
    let rule_names: Vec<String> = rules.rules.iter().map(|rule| rule.name.clone()).collect();
    let policy = Policy::parse_with_rules(policy_file, &text, &rule_names)
        .map_err(|error| policy_error(error.to_string()))?;
    let client = policy.client().to_string();

    let scratch = tempfile::tempdir().map_err(BacktestError::Scratch)?;
    let source = scratch.path().join("policies");
    std::fs::create_dir_all(&source)?;
    let file_name = policy_file
        .file_name()
        .map_or_else(|| "policy.toml".into(), |name| name.to_os_string());
    std::fs::write(source.join(file_name), &text)?;

    // The contract applies to every host of the trace, whatever client it was recorded for.
    let mut engine = Engine::new(rules);
    let samples = read_trace(input, |name, labels| {
        let mut labels: Labels = labels.clone();
        labels.insert("client", client.clone());
        engine.series_id(name, &labels)
    })
    .map_err(TraceError::from)?;
    let mut summary = Replay {
        samples: samples.len() as u64,
        first_ms: samples.first().map(|s| s.0),
        last_ms: samples.last().map(|s| s.0),
        ..Replay::default()
    };
    let (Some(first_ms), Some(last_ms)) = (summary.first_ms, summary.last_ms) else {
        return Ok(summary);
    };

    let clock = Clock::manual(first_ms);
    let policies = Arc::new(Policies::open(scratch.path(), Some(source)).with_rules(rule_names));
    let outbox = Arc::new(Outbox::open(scratch.path())?);
    let recorder = Recorder::default();
    let names: Vec<String> = [&routing.on_call, &routing.normal, &routing.escalation]
        .into_iter()
        .flatten()
        .chain(routing.clients.values().flat_map(|client| {
            [&client.on_call, &client.normal, &client.escalation]
                .into_iter()
                .flatten()
                .flatten()
        }))
        .cloned()
        .collect();
    let notifier = Notifier::new(
        outbox.clone(),
        Arc::new(Channels::recording(names, &recorder)),
        NotifierSettings::default(),
        clock.clone(),
    );
    let dispatch = Dispatch::new(outbox, policies, routing);
    let mut live = LiveAlerts::simulated(engine, dispatch, clock.clone());
    live.sync_policies("backtest");

    let interval_ms = live.engine().settings().evaluation_interval_ms;
    let mut next_evaluation_ms = (first_ms.div_euclid(interval_ms) + 1) * interval_ms;
    let mut series = std::collections::HashSet::new();
    for &(timestamp_ms, id, value) in &samples {
        // An evaluation at time t sees every sample stamped t or earlier.
        while next_evaluation_ms < timestamp_ms {
            clock.set(next_evaluation_ms);
            live.evaluate();
            summary.transitions += deliver(&notifier, &recorder, out).await?;
            next_evaluation_ms += interval_ms;
        }
        series.insert(id);
        clock.set(timestamp_ms);
        let sample = Sample {
            timestamp_ms,
            value,
        };
        if live.observe(id, sample) > 0 {
            summary.transitions += deliver(&notifier, &recorder, out).await?;
        }
    }
    if next_evaluation_ms <= last_ms {
        clock.set(next_evaluation_ms);
        live.evaluate();
        summary.transitions += deliver(&notifier, &recorder, out).await?;
    }
    summary.series = series.len();
    Ok(summary)
}

/// One notifier round at the clock's time; writes what the channels were handed.
async fn deliver(
    notifier: &Notifier,
    recorder: &Recorder,
    out: &mut impl Write,
) -> Result<u64, BacktestError> {
    notifier.run_once().await?;
    let sent: Vec<(Delivery, i64)> = std::mem::take(
        &mut *recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    write_lines(&sent, out)
}

/// One line per alert state change, its channels merged into `routes`.
fn write_lines(sent: &[(Delivery, i64)], out: &mut impl Write) -> Result<u64, BacktestError> {
    // (fingerprint, status, severity, decided, purpose) → line, in the order first sent.
    let mut order: Vec<(String, AlertStatus, String, i64, Option<&'static str>)> = Vec::new();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (delivery, sent_ms) in sent {
        let purpose = match delivery.purpose {
            Purpose::Alert => None,
            Purpose::Digest { .. } => Some("digest"),
            Purpose::Escalation => Some("escalation"),
            // Nobody acknowledges in a backtest, and tests are not alerts.
            Purpose::Acknowledged { .. } | Purpose::Test => continue,
        };
        for alert in &delivery.alerts {
            let key = (
                alert.fingerprint.clone(),
                alert.status,
                alert.contract_severity.clone(),
                alert.at_ms,
                purpose,
            );
            if let Some(at) = order.iter().position(|known| *known == key) {
                lines[at].routes.push(&delivery.channel);
                continue;
            }
            order.push(key);
            lines.push(Line {
                ts: sent_ms.div_euclid(1000),
                host: &alert.host,
                rule: &alert.rule,
                severity: &alert.contract_severity,
                state: alert.status,
                summary: &alert.summary,
                labels: &alert.labels,
                // Only the failure kinds a scenario can name, as the engine-only output.
                kind: alert.context.kind.as_deref().filter(|kind| {
                    crate::alert::FailureKind::parse(kind)
                        .is_some_and(|kind| kind.is_scored_failure())
                }),
                routes: vec![&delivery.channel],
                purpose,
                decided: alert.at_ms.div_euclid(1000),
                policy_version: alert.policy_version,
            });
        }
    }
    for line in &mut lines {
        line.routes.sort_unstable();
        line.routes.dedup();
        serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(lines.len() as u64)
}
