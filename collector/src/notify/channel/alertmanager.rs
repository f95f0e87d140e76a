//! Prometheus Alertmanager, API v2: `POST <url>/api/v2/alerts` with a list of alerts, each
//! with `labels`, `annotations`, `startsAt`, `endsAt` and `generatorURL`, so an MSP's
//! existing Alertmanager routing, grouping, silences and receivers take over from there.
//!
//! The labels are the same as in the generic webhook (`alertname` = the rule, `client`,
//! `host`, `severity` = the contract's, `host_role`), which identifies the alert to
//! Alertmanager. Vigil sends each transition once instead of re-sending while firing as
//! Prometheus does, so a firing alert's `endsAt` is set a day ahead (Alertmanager would
//! otherwise resolve it after its `resolve_timeout`); the resolve sets the real end.

use super::http::{parse_url, send, shown_url};
use super::webhook::{alert_annotations, alert_labels};
use super::{Context, SendError};
use crate::notify::message::{rfc3339, AlertStatus, Delivery};
use reqwest::Url;
use serde_json::{json, Value};

/// How long a firing alert stays firing in Alertmanager without news from Vigil.
const FIRING_HORIZON_MS: i64 = 24 * 3_600_000;

#[derive(Debug)]
pub struct Alertmanager {
    url: Url,
    shown: String,
    context: Context,
}

impl Alertmanager {
    pub fn new(base: &str, context: Context) -> Result<Self, String> {
        let base = parse_url(base)?;
        let url = base
            .join(&format!(
                "{}/api/v2/alerts",
                base.path().trim_end_matches('/')
            ))
            .map_err(|_| "url cannot take the path /api/v2/alerts".to_string())?;
        Ok(Self {
            shown: shown_url(&url, false),
            url,
            context,
        })
    }

    pub async fn send(&self, delivery: &Delivery, now_ms: i64) -> Result<(), SendError> {
        let body = payload(delivery, self.context.external_url.as_deref(), now_ms);
        let request = self.context.http.post(self.url.clone()).json(&body);
        send(request, &self.shown).await
    }
}

/// The list of postable alerts for `delivery`.
pub fn payload(delivery: &Delivery, external_url: Option<&str>, now_ms: i64) -> Value {
    let alerts: Vec<Value> = delivery
        .alerts
        .iter()
        .map(|alert| {
            let ends_at_ms = match (alert.status, alert.ends_at_ms) {
                (AlertStatus::Resolved, Some(ends)) => ends,
                (AlertStatus::Resolved, None) => now_ms,
                (AlertStatus::Firing, _) => now_ms.max(alert.at_ms) + FIRING_HORIZON_MS,
            };
            let mut posted = json!({
                "labels": alert_labels(alert),
                "annotations": alert_annotations(alert),
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": rfc3339(ends_at_ms),
            });
            if let Some(base) = external_url {
                posted["generatorURL"] = json!(format!(
                    "{}/alerts/{}",
                    base.trim_end_matches('/'),
                    alert.fingerprint
                ));
            }
            posted
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::Purpose;
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn a_firing_alert_is_posted_with_labels_annotations_and_a_day_of_validity() {
        let alert = sample_alert(1_700_000_000_000);
        let delivery = Delivery::single(&alert, "am", 1_700_000_000_000);
        assert_eq!(delivery.purpose, Purpose::Alert);
        let body = payload(
            &delivery,
            Some("https://vigil.msp.example/"),
            1_700_000_000_000,
        );
        assert_eq!(
            body,
            json!([{
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
                "endsAt": "2023-11-15T22:13:20Z",
                "generatorURL": format!("https://vigil.msp.example/alerts/{}", alert.fingerprint),
            }])
        );
    }

    #[test]
    fn a_resolved_alert_ends_when_it_resolved() {
        let mut alert = sample_alert(1_700_000_000_000);
        alert.status = AlertStatus::Resolved;
        alert.ends_at_ms = Some(1_700_000_600_000);
        let body = payload(&Delivery::single(&alert, "am", 0), None, 1_700_000_900_000);
        assert_eq!(body[0]["endsAt"], "2023-11-14T22:23:20Z");
        assert!(body[0].get("generatorURL").is_none());
    }

    #[test]
    fn the_api_path_is_appended_to_the_base_address() {
        let context = Context {
            http: reqwest::Client::new(),
            external_url: None,
            timeout: std::time::Duration::from_secs(1),
        };
        let am = Alertmanager::new("http://127.0.0.1:9093/prefix/", context).unwrap();
        assert_eq!(
            am.url.as_str(),
            "http://127.0.0.1:9093/prefix/api/v2/alerts"
        );
    }
}
