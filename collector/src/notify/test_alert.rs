//! `vigil-collector notify test`: one test alert through every configured channel, sent
//! directly (not through the outbox), with one line per channel saying what happened.
//!
//! Also home of [`sample_alert`], the alert the payload tests render.

use super::channel::{Channels, SendError};
use super::message::{fingerprint, AlertMessage, AlertStatus, Delivery, Purpose};
use std::collections::BTreeMap;

/// A realistic alert: a dental practice's server whose D: drive fills within a day.
pub fn sample_alert(starts_at_ms: i64) -> AlertMessage {
    let labels = BTreeMap::from([("mountpoint".to_string(), "D:".to_string())]);
    AlertMessage {
        fingerprint: fingerprint(
            "dental-practice",
            "srv-01",
            "FilesystemFullForecast",
            &labels,
        ),
        status: AlertStatus::Firing,
        client: "dental-practice".into(),
        host: "srv-01".into(),
        rule: "FilesystemFullForecast".into(),
        labels,
        summary: "D: on srv-01 full in ~20 h at the current rate".into(),
        engine_severity: "critical".into(),
        contract_severity: "emergency".into(),
        host_role: Some("server".into()),
        starts_at_ms,
        at_ms: starts_at_ms,
        ends_at_ms: None,
        response_due_ms: Some(starts_at_ms + 3_600_000),
        policy_version: 3,
        policy_digest: "sha256:5e1f".into(),
        reasons: vec!["host 'srv-01' is a server".into()],
        context: Default::default(),
    }
}

/// The test alert: clearly a test, of the lowest severity.
pub fn test_message(now_ms: i64) -> AlertMessage {
    let labels = BTreeMap::from([("test".to_string(), "true".to_string())]);
    AlertMessage {
        fingerprint: fingerprint("vigil", "vigil-collector", "notify_test", &labels),
        status: AlertStatus::Firing,
        client: "vigil".into(),
        host: "vigil-collector".into(),
        rule: "notify_test".into(),
        labels,
        summary: "Test alert from 'vigil-collector notify test'; no action needed".into(),
        engine_severity: "warning".into(),
        contract_severity: "notice".into(),
        host_role: None,
        starts_at_ms: now_ms,
        at_ms: now_ms,
        ends_at_ms: None,
        response_due_ms: None,
        policy_version: 0,
        policy_digest: String::new(),
        reasons: vec![],
        context: Default::default(),
    }
}

/// What happened on one channel.
#[derive(Debug)]
pub struct TestOutcome {
    /// `webhook 'ops'`.
    pub channel: String,
    pub result: Result<(), SendError>,
}

/// Sends the test alert through every channel, one after the other.
pub async fn send_test(channels: &Channels, now_ms: i64) -> Vec<TestOutcome> {
    let mut outcomes = Vec::new();
    for channel in channels.iter() {
        let delivery = Delivery {
            key: format!("test-{now_ms}-{}", channel.name),
            channel: channel.name.clone(),
            purpose: Purpose::Test,
            alerts: vec![test_message(now_ms)],
            created_ms: now_ms,
            attempts: 0,
            next_attempt_ms: now_ms,
            last_error: None,
            finished_ms: None,
        };
        outcomes.push(TestOutcome {
            channel: channel.label(),
            result: channel.send(&delivery, now_ms).await,
        });
    }
    outcomes
}
