//! Slack incoming webhooks: a message with a plain `text` (notifications and old clients)
//! and Block Kit `blocks` — a header, the summary, the contract's facts as fields, and a
//! context line with the alert id to acknowledge. The webhook URL is the secret; messages
//! show only its host.

use super::http::SecretUrl;
use super::{Context, SendError};
use crate::notify::message::{rfc3339, AlertMessage, AlertStatus, Delivery, Purpose};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct Slack(SecretUrl);

impl Slack {
    pub fn new(url: &str, context: Context) -> Result<Self, String> {
        SecretUrl::new(url, context).map(Self)
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        self.0.post(&payload(delivery)).await
    }
}

/// The heading of a message: what kind, how bad.
pub fn heading(delivery: &Delivery) -> String {
    match &delivery.purpose {
        Purpose::Digest { client, .. } => format!(
            "Overnight digest for {client}: {} alert{}",
            delivery.alerts.len(),
            if delivery.alerts.len() == 1 { "" } else { "s" }
        ),
        Purpose::Escalation => "Escalation: emergency not acknowledged".to_string(),
        Purpose::Acknowledged { by, .. } => match delivery.alerts.first() {
            Some(alert) => format!("Acknowledged by {by}: {} on {}", alert.rule, alert.host),
            None => format!("Acknowledged by {by}"),
        },
        Purpose::Test => "Vigil test alert (no action needed)".to_string(),
        Purpose::Alert => match delivery.alerts.first() {
            Some(alert) if alert.status == AlertStatus::Resolved => {
                format!("Resolved on {}", alert.host)
            }
            Some(alert) => format!(
                "{} on {}",
                capitalised(&alert.contract_severity),
                alert.host
            ),
            None => "Vigil".to_string(),
        },
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn fields(alert: &AlertMessage) -> Vec<Value> {
    let mut fields = vec![
        format!("*Client*\n{}", alert.client),
        format!(
            "*Host*\n{}{}",
            alert.host,
            alert
                .host_role
                .as_ref()
                .map(|role| format!(" ({role})"))
                .unwrap_or_default()
        ),
        format!("*Severity*\n{}", alert.contract_severity),
        format!("*Status*\n{}", alert.status.as_str()),
    ];
    if let (AlertStatus::Firing, Some(due)) = (alert.status, alert.response_due_ms) {
        fields.push(format!("*Response due*\n{}", rfc3339(due)));
    }
    if let Some(log_line) = alert.log_line_text() {
        // Slack reads &, < and > as markup; the line is the agent's, shown as text.
        let log_line = log_line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        fields.push(format!("*Log line*\n{log_line}"));
    }
    fields
        .into_iter()
        .map(|text| json!({"type": "mrkdwn", "text": text}))
        .collect()
}

/// The Slack message for `delivery`.
pub fn payload(delivery: &Delivery) -> Value {
    let heading = heading(delivery);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": heading},
    })];
    // Slack allows 50 blocks; a long digest lists the first alerts and counts the rest.
    const SHOWN: usize = 15;
    for alert in delivery.alerts.iter().take(SHOWN) {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": alert.summary},
            "fields": fields(alert),
        }));
        if let Some(links) = &alert.context.links {
            blocks.push(json!({
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"},
                     "url": links.acknowledge, "style": "primary"},
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in the console"},
                     "url": links.page},
                ],
            }));
        }
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "alert id `{}` · rule `{}` · policy {} v{}",
                alert.fingerprint, alert.rule, alert.client, alert.policy_version
            )}],
        }));
    }
    if delivery.alerts.len() > SHOWN {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("…and {} more", delivery.alerts.len() - SHOWN)},
        }));
    }
    let text = match delivery.alerts.first() {
        Some(alert) if delivery.alerts.len() == 1 => format!("{heading}: {}", alert.summary),
        _ => heading,
    };
    json!({"text": text, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn an_alert_becomes_a_header_a_section_with_fields_and_a_context_line() {
        let alert = sample_alert(1_700_000_000_000);
        let body = payload(&Delivery::single(&alert, "slack", 0));
        assert_eq!(
            body,
            json!({
                "text": "Emergency on srv-01: D: on srv-01 full in ~20 h at the current rate",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Emergency on srv-01"}},
                    {"type": "section",
                     "text": {"type": "mrkdwn", "text": "D: on srv-01 full in ~20 h at the current rate"},
                     "fields": [
                        {"type": "mrkdwn", "text": "*Client*\ndental-practice"},
                        {"type": "mrkdwn", "text": "*Host*\nsrv-01 (server)"},
                        {"type": "mrkdwn", "text": "*Severity*\nemergency"},
                        {"type": "mrkdwn", "text": "*Status*\nfiring"},
                        {"type": "mrkdwn", "text": "*Response due*\n2023-11-14T23:13:20Z"}
                     ]},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                        "alert id `{}` · rule `FilesystemFullForecast` · policy dental-practice v3",
                        alert.fingerprint
                    )}]}
                ]
            })
        );
    }
}
