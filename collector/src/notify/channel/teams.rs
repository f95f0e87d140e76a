//! Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
//! received"; the Office 365 connectors it replaces are retired). The body is a message whose
//! one attachment has `contentType: application/vnd.microsoft.card.adaptive` and an Adaptive
//! Card (version 1.4) as `content`: a title, the summary, and a fact set. The Workflows URL
//! is the secret; messages show only its host.

use super::http::SecretUrl;
use super::slack::heading;
use super::{Context, SendError};
use crate::notify::message::{rfc3339, AlertMessage, AlertStatus, Delivery};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct Teams(SecretUrl);

impl Teams {
    pub fn new(url: &str, context: Context) -> Result<Self, String> {
        SecretUrl::new(url, context).map(Self)
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        self.0.post(&payload(delivery)).await
    }
}

fn facts(alert: &AlertMessage) -> Value {
    let mut facts = vec![
        ("Client", alert.client.clone()),
        ("Host", alert.host.clone()),
        (
            "Role",
            alert.host_role.clone().unwrap_or_else(|| "none".into()),
        ),
        ("Severity", alert.contract_severity.clone()),
        ("Status", alert.status.as_str().to_string()),
    ];
    if let (AlertStatus::Firing, Some(due)) = (alert.status, alert.response_due_ms) {
        facts.push(("Response due", rfc3339(due)));
    }
    if let Some(log_line) = alert.log_line_text() {
        facts.push(("Log line", log_line));
    }
    facts.push(("Alert id", alert.fingerprint.clone()));
    Value::Array(
        facts
            .into_iter()
            .map(|(title, value)| json!({"title": title, "value": value}))
            .collect(),
    )
}

/// The Workflows message for `delivery`.
pub fn payload(delivery: &Delivery) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": heading(delivery),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
        "style": "heading",
    })];
    for alert in delivery.alerts.iter().take(20) {
        body.push(json!({"type": "TextBlock", "text": alert.summary, "wrap": true}));
        body.push(json!({"type": "FactSet", "facts": facts(alert)}));
        if let Some(links) = &alert.context.links {
            body.push(json!({
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": "Acknowledge", "url": links.acknowledge},
                    {"type": "Action.OpenUrl", "title": "Open in the console", "url": links.page},
                ],
            }));
        }
    }
    if delivery.alerts.len() > 20 {
        body.push(json!({
            "type": "TextBlock",
            "text": format!("…and {} more", delivery.alerts.len() - 20),
            "wrap": true,
        }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn the_message_carries_one_adaptive_card_with_the_facts() {
        let alert = sample_alert(1_700_000_000_000);
        let body = payload(&Delivery::single(&alert, "teams", 0));
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["text"], "Emergency on srv-01");
        assert_eq!(
            card["body"][1]["text"],
            "D: on srv-01 full in ~20 h at the current rate"
        );
        assert_eq!(
            card["body"][2],
            json!({"type": "FactSet", "facts": [
                {"title": "Client", "value": "dental-practice"},
                {"title": "Host", "value": "srv-01"},
                {"title": "Role", "value": "server"},
                {"title": "Severity", "value": "emergency"},
                {"title": "Status", "value": "firing"},
                {"title": "Response due", "value": "2023-11-14T23:13:20Z"},
                {"title": "Alert id", "value": alert.fingerprint},
            ]})
        );
    }
}
