//! PagerDuty Events API v2: `trigger` for a firing alert and `resolve` for its end, both
//! with the alert's fingerprint as `dedup_key`, so the resolve closes the incident the
//! trigger opened and a repeated trigger is merged into it. The contract severity maps to
//! PagerDuty's: emergency → critical, critical → error, warning → warning, notice → info.
//!
//! A digest is sent as one event per alert (PagerDuty has no multi-alert event); the test
//! alert is triggered and resolved at once, so it opens no lasting incident.

use super::http::{parse_url, send, shown_url};
use super::{Context, SendError};
use crate::notify::config::Secret;
use crate::notify::message::{rfc3339, AlertMessage, AlertStatus, Delivery, Purpose};
use reqwest::Url;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct PagerDuty {
    url: Url,
    shown: String,
    routing_key: Secret,
    context: Context,
}

impl PagerDuty {
    pub fn new(url: &str, routing_key: Secret, context: Context) -> Result<Self, String> {
        let url = parse_url(url)?;
        Ok(Self {
            shown: shown_url(&url, false),
            url,
            routing_key,
            context,
        })
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        for event in events(delivery, self.routing_key.expose()) {
            let request = self.context.http.post(self.url.clone()).json(&event);
            send(request, &self.shown).await?;
        }
        Ok(())
    }
}

fn severity(contract_severity: &str) -> &'static str {
    match contract_severity {
        "emergency" => "critical",
        "critical" => "error",
        "warning" => "warning",
        _ => "info",
    }
}

/// One event for one alert.
pub fn event(alert: &AlertMessage, routing_key: &str, escalation: bool) -> Value {
    match alert.status {
        AlertStatus::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
        }),
        AlertStatus::Firing => {
            let summary = if escalation {
                format!("NOT ACKNOWLEDGED: {}", alert.title())
            } else {
                alert.title()
            };
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": alert.fingerprint,
                "payload": {
                    // PagerDuty truncates at 1024 characters.
                    "summary": summary.chars().take(1024).collect::<String>(),
                    "severity": severity(&alert.contract_severity),
                    "source": alert.host,
                    "component": alert.rule,
                    "group": alert.client,
                    "class": alert.contract_severity,
                    "timestamp": rfc3339(alert.starts_at_ms),
                    "custom_details": {
                        "client": alert.client,
                        "host_role": alert.host_role,
                        "contract_severity": alert.contract_severity,
                        "engine_severity": alert.engine_severity,
                        "response_due": alert.response_due_ms.map(rfc3339),
                        "policy_version": alert.policy_version,
                        "labels": alert.labels,
                    },
                },
                "client": "Vigil",
            })
        }
    }
}

/// The events `delivery` becomes, in order.
pub fn events(delivery: &Delivery, routing_key: &str) -> Vec<Value> {
    if let Purpose::Acknowledged { .. } = delivery.purpose {
        // PagerDuty's own acknowledge on the same incident.
        return delivery
            .alerts
            .iter()
            .map(|alert| {
                json!({
                    "routing_key": routing_key,
                    "event_action": "acknowledge",
                    "dedup_key": alert.fingerprint,
                })
            })
            .collect();
    }
    let escalation = delivery.purpose == Purpose::Escalation;
    let mut events: Vec<Value> = delivery
        .alerts
        .iter()
        .map(|alert| event(alert, routing_key, escalation))
        .collect();
    if delivery.purpose == Purpose::Test {
        for alert in &delivery.alerts {
            let mut resolved = alert.clone();
            resolved.status = AlertStatus::Resolved;
            events.push(event(&resolved, routing_key, false));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn a_firing_alert_triggers_and_its_resolve_closes_the_same_dedup_key() {
        let alert = sample_alert(1_700_000_000_000);
        let trigger = events(&Delivery::single(&alert, "pd", 0), "R0UT1NG");
        assert_eq!(trigger.len(), 1);
        assert_eq!(
            trigger[0],
            json!({
                "routing_key": "R0UT1NG",
                "event_action": "trigger",
                "dedup_key": alert.fingerprint,
                "payload": {
                    "summary": "[emergency] srv-01 (dental-practice): D: on srv-01 full in ~20 h at the current rate",
                    "severity": "critical",
                    "source": "srv-01",
                    "component": "FilesystemFullForecast",
                    "group": "dental-practice",
                    "class": "emergency",
                    "timestamp": "2023-11-14T22:13:20Z",
                    "custom_details": {
                        "client": "dental-practice",
                        "host_role": "server",
                        "contract_severity": "emergency",
                        "engine_severity": "critical",
                        "response_due": "2023-11-14T23:13:20Z",
                        "policy_version": 3,
                        "labels": {"mountpoint": "D:"},
                    },
                },
                "client": "Vigil",
            })
        );
        let mut resolved = alert.clone();
        resolved.status = AlertStatus::Resolved;
        let resolve = events(&Delivery::single(&resolved, "pd", 0), "R0UT1NG");
        assert_eq!(
            resolve,
            vec![
                json!({"routing_key": "R0UT1NG", "event_action": "resolve", "dedup_key": alert.fingerprint})
            ]
        );
    }

    #[test]
    fn the_test_alert_is_triggered_and_resolved_at_once() {
        let mut delivery = Delivery::single(&sample_alert(0), "pd", 0);
        delivery.purpose = Purpose::Test;
        let actions: Vec<Value> = events(&delivery, "k")
            .into_iter()
            .map(|event| event["event_action"].clone())
            .collect();
        assert_eq!(actions, vec![json!("trigger"), json!("resolve")]);
    }
}
