//! The generic webhook: Alertmanager's webhook JSON (version 4), so receivers that already
//! read Alertmanager read Vigil, with Vigil's own fields beside the standard ones — per alert
//! under `vigil` (client, host role, contract severity, response due, policy version) and
//! for the message under `vigil` at the top (purpose, idempotency key).
//!
//! Every request carries `Idempotency-Key` (the same on every attempt) and, when a key is
//! configured, `X-Vigil-Timestamp: <unix seconds>` and `X-Vigil-Signature: sha256=<hex>`,
//! the HMAC-SHA256 of `<timestamp>.<body>`. A receiver recomputes it and refuses requests
//! whose timestamp is too old, so a captured request cannot be replayed later.

use super::http::{parse_url, send, shown_url};
use super::{Context, SendError};
use crate::notify::config::Secret;
use crate::notify::message::{hex, rfc3339, AlertMessage, AlertStatus, Delivery, Purpose};
use reqwest::Url;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct Webhook {
    url: Url,
    shown: String,
    hmac_key: Option<Secret>,
    context: Context,
}

impl Webhook {
    pub fn new(url: &str, hmac_key: Option<Secret>, context: Context) -> Result<Self, String> {
        let url = parse_url(url)?;
        Ok(Self {
            shown: shown_url(&url, true),
            url,
            hmac_key,
            context,
        })
    }

    pub async fn send(
        &self,
        delivery: &Delivery,
        receiver: &str,
        now_ms: i64,
    ) -> Result<(), SendError> {
        let body = serde_json::to_vec(&payload(
            delivery,
            receiver,
            self.context.external_url.as_deref(),
        ))
        .expect("webhook payload serialises");
        let mut request = self
            .context
            .http
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &delivery.key);
        if let Some(key) = &self.hmac_key {
            let timestamp = now_ms.div_euclid(1000);
            request = request
                .header("X-Vigil-Timestamp", timestamp.to_string())
                .header(
                    "X-Vigil-Signature",
                    signature(key.expose().as_bytes(), timestamp, &body),
                );
        }
        send(request.body(body), &self.shown).await
    }
}

/// `sha256=<hex>` of HMAC-SHA256(key, `<timestamp>.<body>`).
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("sha256={}", hex(context.sign().as_ref()))
}

/// The labels a Vigil alert has in Alertmanager's model: `alertname` (the rule), `client`,
/// `host`, `severity` (the contract's), `host_role` if any, and the alert's own labels.
pub fn alert_labels(alert: &AlertMessage) -> Map<String, Value> {
    let mut labels = Map::new();
    for (name, value) in &alert.labels {
        labels.insert(name.clone(), Value::String(value.clone()));
    }
    labels.insert("alertname".into(), json!(alert.rule));
    labels.insert("client".into(), json!(alert.client));
    labels.insert("host".into(), json!(alert.host));
    labels.insert("severity".into(), json!(alert.contract_severity));
    if let Some(kind) = &alert.context.kind {
        labels.insert("kind".into(), json!(kind));
    }
    if let Some(role) = &alert.host_role {
        labels.insert("host_role".into(), json!(role));
    }
    labels
}

/// Annotations: the summary, and the contract's facts as text.
pub fn alert_annotations(alert: &AlertMessage) -> Map<String, Value> {
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(alert.summary));
    annotations.insert("engine_severity".into(), json!(alert.engine_severity));
    if alert.context.client_name.is_some() {
        annotations.insert("client_name".into(), json!(alert.client_shown()));
    }
    if let Some(forecast) = alert.forecast_text() {
        annotations.insert("forecast".into(), json!(forecast));
    }
    if let Some(log_line) = &alert.context.log_line {
        annotations.insert("log_line".into(), json!(log_line.line));
        annotations.insert("log_file".into(), json!(log_line.file));
    }
    if let Some(lasted) = alert.lasted_text() {
        annotations.insert("lasted".into(), json!(lasted));
    }
    if let Some(due) = alert.response_due_ms {
        annotations.insert("response_due".into(), json!(rfc3339(due)));
    }
    annotations.insert(
        "policy_version".into(),
        json!(format!("{} v{}", alert.client, alert.policy_version)),
    );
    annotations
}

fn purpose_name(purpose: &Purpose) -> &'static str {
    match purpose {
        Purpose::Alert => "alert",
        Purpose::Digest { .. } => "digest",
        Purpose::Escalation => "escalation",
        Purpose::Acknowledged { .. } => "acknowledgement",
        Purpose::Test => "test",
    }
}

/// The webhook body for `delivery`, sent to the receiver named `receiver`.
pub fn payload(delivery: &Delivery, receiver: &str, external_url: Option<&str>) -> Value {
    let alerts: Vec<Value> = delivery
        .alerts
        .iter()
        .map(|alert| {
            let mut value = json!({
                "status": alert.status.as_str(),
                "labels": alert_labels(alert),
                "annotations": alert_annotations(alert),
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": match (alert.status, alert.ends_at_ms) {
                    (AlertStatus::Resolved, Some(ends)) => rfc3339(ends),
                    _ => "0001-01-01T00:00:00Z".to_string(),
                },
                "generatorURL": external_url.map(|base| format!("{}/alerts/{}", base.trim_end_matches('/'), alert.fingerprint)).unwrap_or_default(),
                "fingerprint": alert.fingerprint,
                "vigil": {
                    "client": alert.client,
                    "host": alert.host,
                    "host_role": alert.host_role,
                    "contract_severity": alert.contract_severity,
                    "engine_severity": alert.engine_severity,
                    "response_due": alert.response_due_ms.map(rfc3339),
                    "policy_version": alert.policy_version,
                    "policy_digest": alert.policy_digest,
                    "reasons": alert.reasons,
                },
            });
            // With `[http] public_url`: the console page and the signed acknowledge link.
            if let Some(links) = &alert.context.links {
                value["vigil"]["console_url"] = json!(links.page);
                value["vigil"]["acknowledge_url"] = json!(links.acknowledge);
            }
            value
        })
        .collect();
    let common = |pick: fn(&AlertMessage) -> Map<String, Value>| -> Map<String, Value> {
        let mut sets = delivery.alerts.iter().map(pick);
        let Some(mut common) = sets.next() else {
            return Map::new();
        };
        for set in sets {
            common.retain(|name, value| set.get(name) == Some(value));
        }
        common
    };
    let client = delivery.client();
    let mut vigil = json!({
        "purpose": purpose_name(&delivery.purpose),
        "idempotency_key": delivery.key,
        "client": client,
    });
    if let Purpose::Acknowledged { by, .. } = &delivery.purpose {
        vigil["acknowledged_by"] = json!(by);
    }
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{client=\"{client}\"}}"),
        "truncatedAlerts": 0,
        "status": delivery.status().as_str(),
        "receiver": receiver,
        "groupLabels": {"client": client},
        "commonLabels": common(alert_labels),
        "commonAnnotations": common(alert_annotations),
        "externalURL": external_url.unwrap_or_default(),
        "alerts": alerts,
        "vigil": vigil,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn the_payload_has_alertmanagers_version_4_shape_with_vigils_fields() {
        let delivery = Delivery {
            key: "alert-0123".into(),
            channel: "ops".into(),
            purpose: Purpose::Alert,
            alerts: vec![sample_alert(1_700_000_000_000)],
            created_ms: 0,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            finished_ms: None,
        };
        let body = payload(&delivery, "ops", None);
        let expected = json!({
            "version": "4",
            "groupKey": "{}:{client=\"dental-practice\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "ops",
            "groupLabels": {"client": "dental-practice"},
            "commonLabels": {
                "alertname": "FilesystemFullForecast", "client": "dental-practice",
                "host": "srv-01", "severity": "emergency", "host_role": "server",
                "mountpoint": "D:"
            },
            "commonAnnotations": {
                "summary": "D: on srv-01 full in ~20 h at the current rate",
                "engine_severity": "critical",
                "response_due": "2023-11-14T23:13:20Z",
                "policy_version": "dental-practice v3"
            },
            "externalURL": "",
            "alerts": [{
                "status": "firing",
                "labels": {
                    "alertname": "FilesystemFullForecast", "client": "dental-practice",
                    "host": "srv-01", "severity": "emergency", "host_role": "server",
                    "mountpoint": "D:"
                },
                "annotations": {
                    "summary": "D: on srv-01 full in ~20 h at the current rate",
                    "engine_severity": "critical",
                    "response_due": "2023-11-14T23:13:20Z",
                    "policy_version": "dental-practice v3"
                },
                "startsAt": "2023-11-14T22:13:20Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": delivery.alerts[0].fingerprint,
                "vigil": {
                    "client": "dental-practice", "host": "srv-01", "host_role": "server",
                    "contract_severity": "emergency", "engine_severity": "critical",
                    "response_due": "2023-11-14T23:13:20Z",
                    "policy_version": 3,
                    "policy_digest": "sha256:5e1f",
                    "reasons": ["host 'srv-01' is a server"]
                }
            }],
            "vigil": {"purpose": "alert", "idempotency_key": "alert-0123", "client": "dental-practice"}
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"key", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{\"a\":1}"),
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }
}
