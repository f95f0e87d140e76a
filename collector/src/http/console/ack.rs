//! Acknowledging from where the alert arrived: `GET /ack/{token}` (the signed link an alert
//! message carries, see [`crate::http::ack_link`]) shows the alert and a confirm button to a
//! signed-in technician, and changes nothing; the button sends
//! `POST /api/v1/ack-links/{token}` with the session's CSRF token, which records the same
//! acknowledgement as the alert list's (the outbox's, so escalation stops) and the audit
//! entry, and marks the link used. `GET /alerts/{id}` is the alert's own page, the link's
//! other half.

use super::chart::escape;
use super::pages::{alerts_table, layout, open_alerts, Page};
use crate::http::ack_link::{AckLinkError, AckLinks};
use crate::http::api::alerts::{alert_json, AckBody};
use crate::http::audit::AuditEntry;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};

impl From<AckLinkError> for ApiError {
    fn from(error: AckLinkError) -> Self {
        let status = match &error {
            AckLinkError::Tampered => StatusCode::BAD_REQUEST,
            AckLinkError::Expired | AckLinkError::AlreadyUsed => StatusCode::GONE,
            _ => return ApiError::internal("acknowledge links", error),
        };
        ApiError::new(status, error.to_string())
    }
}

fn links(state: &AppState) -> Result<&AckLinks, ApiError> {
    state.ack_links.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "acknowledge links are off on this collector ([http] public_url is not set)",
        )
    })
}

fn not_open(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "alert '{}' is not open any more (it resolved); the alert list shows the open ones",
        id.chars().take(64).collect::<String>()
    ))
}

/// `GET /alerts/{id}`: one open alert, with the acknowledge form for those who may act.
pub async fn alert(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Page {
    Page(
        state
            .blocking("drawing an alert", move |state| {
                let alerts = open_alerts(state, &caller, |alert| alert["id"] == id.as_str())?;
                let Some(alert) = alerts.first() else {
                    return Err(not_open(&id));
                };
                let body = format!(
                    r#"<h2 id="alert-title">{}</h2>{}"#,
                    escape(alert["title"].as_str().unwrap_or("")),
                    alerts_table(&alerts, &caller, true)
                );
                Ok(layout("Alert", Some(&caller), &body))
            })
            .await,
    )
}

/// `GET /ack/{token}`: the alert the link names and a confirm button. Nothing changes here.
pub async fn confirm(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(token): Path<String>,
) -> Page {
    Page(
        state
            .blocking("opening an acknowledge link", move |state| {
                let claim = links(state)?.check_usable(&token, state.now_ms())?;
                caller.may_act()?;
                let record = state
                    .outbox
                    .open_alert(&claim.fingerprint)
                    .map_err(|error| ApiError::internal("reading the alert", error))?
                    .filter(|record| caller.scope.allows(&record.alert.client))
                    .ok_or_else(|| not_open(&claim.fingerprint))?;
                let ack = state
                    .outbox
                    .acknowledgement(&claim.fingerprint)
                    .map_err(|error| ApiError::internal("reading the acknowledgement", error))?;
                let already = match &ack {
                    Some(ack) => format!(
                        r#"<p id="already">Already acknowledged by {}.</p>"#,
                        escape(&ack.by)
                    ),
                    None => String::new(),
                };
                let body = format!(
                    r#"<h2>Acknowledge this alert?</h2>
<p id="ack-title">{title}</p>
<p>Client <a href="/clients/{client}">{client}</a>, host <a href="/hosts/{host}">{host}</a>. {response}</p>
{already}
<form id="ack-link-form" data-token="{token}"><input name="note" placeholder="Note (optional)" maxlength="2000" aria-label="Note"> <button type="submit">Acknowledge as {name}</button></form>
<p id="ack-done" hidden></p>
<p><a href="/alerts/{id}">Open the alert</a></p>"#,
                    title = escape(&record.alert.title()),
                    client = escape(&record.alert.client),
                    host = escape(&record.alert.host),
                    response = escape(&record.alert.response_standing(state.now_ms())),
                    token = escape(&token),
                    name = escape(&caller.name),
                    id = escape(&record.alert.fingerprint),
                );
                Ok(layout("Acknowledge", Some(&caller), &body))
            })
            .await,
    )
}

/// `POST /api/v1/ack-links/{token}` with an optional `{"note": "…"}`: acknowledges the alert
/// the link names as the signed-in caller, once.
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    let body = AckBody::parse(&body)?;
    let now_ms = state.now_ms();
    let by = caller.name.clone();
    let scope_caller = caller.clone();
    let (record, ack) = state
        .blocking("acknowledging through a link", move |state| {
            links(state)?.use_link(&token, now_ms, |claim| {
                let record = state
                    .outbox
                    .open_alert(&claim.fingerprint)
                    .map_err(|error| ApiError::internal("reading the alert", error))?
                    .filter(|record| scope_caller.scope.allows(&record.alert.client))
                    .ok_or_else(|| not_open(&claim.fingerprint))?;
                state
                    .outbox
                    .acknowledge(&claim.fingerprint, &by, now_ms)
                    .map_err(|error| ApiError::internal("recording the acknowledgement", error))?;
                let ack = state
                    .outbox
                    .acknowledgement(&claim.fingerprint)
                    .map_err(|error| ApiError::internal("reading the acknowledgement", error))?;
                Ok::<_, ApiError>((record, ack))
            })
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: caller.name.clone(),
            action: "acknowledge".into(),
            subject: record.alert.fingerprint.clone(),
            detail: Some(match &body.note {
                Some(note) => format!("{} (acknowledge link); note: {note}", record.alert.title()),
                None => format!("{} (acknowledge link)", record.alert.title()),
            }),
            address: caller.address.clone(),
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
