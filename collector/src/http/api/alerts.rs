//! Alerts: `GET /api/v1/alerts?client=&host=&severity=&state=` (open alerts, and resolved
//! ones from the recent deliveries with `state=resolved`) and
//! `POST /api/v1/alerts/{id}/ack`, which records the acknowledgement in the outbox exactly as
//! `alerts ack` does: the channels that heard of the alert are told, and an acknowledged
//! emergency does not escalate.

use crate::http::audit::AuditEntry;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::notify::outbox::{Acknowledgement, OpenAlertRecord};
use crate::notify::AlertStatus;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest note kept with an acknowledgement.
const MAX_NOTE_CHARS: usize = 2000;

/// An open alert as the API shows it: the message's fields, its state and who took it.
pub(crate) fn alert_json(record: &OpenAlertRecord, ack: Option<&Acknowledgement>) -> Value {
    let mut value = serde_json::to_value(&record.alert).expect("alert messages serialise");
    let state = match (ack, record.escalated) {
        (Some(_), _) => "acknowledged",
        (None, true) => "escalated",
        (None, false) => "firing",
    };
    if let Value::Object(fields) = &mut value {
        fields.insert("id".into(), json!(record.alert.fingerprint));
        fields.insert("state".into(), json!(state));
        fields.insert("title".into(), json!(record.alert.title()));
        fields.insert("channels".into(), json!(record.channels));
        fields.insert("escalate_at_ms".into(), json!(record.escalate_at_ms));
        fields.insert("acknowledged_by".into(), json!(ack.map(|ack| &ack.by)));
        fields.insert("acknowledged_at_ms".into(), json!(ack.map(|ack| ack.at_ms)));
    }
    value
}

#[derive(Debug, Deserialize)]
pub struct AlertFilter {
    client: Option<String>,
    host: Option<String>,
    /// The contract's severity: notice, warning, critical, emergency.
    severity: Option<String>,
    /// firing, acknowledged, escalated, open (all three, the default), resolved.
    state: Option<String>,
}

const STATES: [&str; 5] = ["open", "firing", "acknowledged", "escalated", "resolved"];
const SEVERITIES: [&str; 4] = ["notice", "warning", "critical", "emergency"];

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<AlertFilter>,
) -> ApiResult<Json<Value>> {
    let wanted = filter.state.clone().unwrap_or_else(|| "open".into());
    if !STATES.contains(&wanted.as_str()) {
        return Err(ApiError::bad_request(format!(
            "state = '{wanted}' is not one of {}",
            STATES.join(", ")
        )));
    }
    if let Some(severity) = &filter.severity {
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(ApiError::bad_request(format!(
                "severity = '{severity}' is not one of {}",
                SEVERITIES.join(", ")
            )));
        }
    }
    state
        .blocking("listing alerts", move |state| {
            let keep = |client: &str, host: &str, severity: &str| {
                caller.scope.allows(client)
                    && filter.client.as_deref().is_none_or(|c| c == client)
                    && filter.host.as_deref().is_none_or(|h| h == host)
                    && filter.severity.as_deref().is_none_or(|s| s == severity)
            };
            let mut alerts: Vec<Value> = Vec::new();
            if wanted == "resolved" {
                let sent = state
                    .outbox
                    .sent()
                    .map_err(|error| ApiError::internal("reading deliveries", error))?;
                let mut seen = std::collections::BTreeSet::new();
                for alert in sent.iter().flat_map(|delivery| &delivery.alerts) {
                    if alert.status == AlertStatus::Resolved
                        && keep(&alert.client, &alert.host, &alert.contract_severity)
                        && seen.insert((alert.fingerprint.clone(), alert.starts_at_ms))
                    {
                        let mut value = serde_json::to_value(alert).expect("alerts serialise");
                        if let Value::Object(fields) = &mut value {
                            fields.insert("id".into(), json!(alert.fingerprint));
                            fields.insert("state".into(), json!("resolved"));
                            fields.insert("title".into(), json!(alert.title()));
                        }
                        alerts.push(value);
                    }
                }
            } else {
                let open = state
                    .outbox
                    .open_alerts()
                    .map_err(|error| ApiError::internal("reading open alerts", error))?;
                for (record, ack) in &open {
                    let alert = &record.alert;
                    if !keep(&alert.client, &alert.host, &alert.contract_severity) {
                        continue;
                    }
                    let value = alert_json(record, ack.as_ref());
                    if wanted == "open" || value["state"] == wanted.as_str() {
                        alerts.push(value);
                    }
                }
                alerts.sort_by_key(|alert| {
                    std::cmp::Reverse(super::hosts::severity_rank(
                        alert["contract_severity"].as_str().unwrap_or(""),
                    ))
                });
            }
            Ok(Json(json!({ "alerts": alerts })))
        })
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    #[serde(default)]
    pub note: Option<String>,
}

impl AckBody {
    /// An acknowledgement's body: nothing, or `{"note": "…"}` with a note of a sane length.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
            AckBody::default()
        } else {
            serde_json::from_slice(body).map_err(|error| {
                ApiError::bad_request(format!(
                    "acknowledgement body: {error}; send nothing, or JSON {{\"note\": \"…\"}}"
                ))
            })?
        };
        if body
            .note
            .as_ref()
            .is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "note is longer than {MAX_NOTE_CHARS} characters; shorten it"
            )));
        }
        Ok(body)
    }
}

/// `POST /api/v1/alerts/{id}/ack` with an optional JSON body `{"note": "…"}`; the name is the
/// signed-in user's.
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    let body = AckBody::parse(&body)?;
    let not_open = |id: &str| {
        ApiError::not_found(format!(
            "alert '{}' is not open (it resolved, or never fired); GET /api/v1/alerts lists the open ones",
            id.chars().take(64).collect::<String>()
        ))
    };
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(not_open(&id));
    }
    let now_ms = state.now_ms();
    let user = caller.name.clone();
    let address = caller.address.clone();
    let by = user.clone();
    let fingerprint = id.clone();
    let (record, ack) = state
        .blocking("acknowledging an alert", move |state| {
            let record = state
                .outbox
                .open_alert(&fingerprint)
                .map_err(|error| ApiError::internal("reading the alert", error))?
                .filter(|record| caller.scope.allows(&record.alert.client))
                .ok_or_else(|| not_open(&fingerprint))?;
            caller.may_act()?;
            state
                .outbox
                .acknowledge(&fingerprint, &by, now_ms)
                .map_err(|error| ApiError::internal("recording the acknowledgement", error))?;
            let ack = state
                .outbox
                .acknowledgement(&fingerprint)
                .map_err(|error| ApiError::internal("reading the acknowledgement", error))?;
            Ok((record, ack))
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user,
            action: "acknowledge".into(),
            subject: id,
            detail: Some(match &body.note {
                Some(note) => format!("{}; note: {note}", record.alert.title()),
                None => record.alert.title(),
            }),
            address,
        })
        .await?;
    let mut value = alert_json(&record, ack.as_ref());
    if let Value::Object(fields) = &mut value {
        fields.insert("note".into(), json!(body.note));
        fields.insert(
            "response".into(),
            json!(record.alert.response_standing(now_ms)),
        );
    }
    Ok(Json(value))
}
