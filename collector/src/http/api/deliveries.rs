//! What was delivered to whom: `GET /api/v1/deliveries?state=pending|sent|dead&client=`,
//! `GET /api/v1/dead`, and `POST /api/v1/dead/{key}/retry`, which puts a copy of a dead
//! letter back in the outbox under a new key (the dead one stays, as the record of what
//! failed). A client user sees only deliveries about its own client and retries nothing.

use crate::http::audit::AuditEntry;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::notify::Delivery;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// Deliveries per answer at most, newest first.
const MAX_DELIVERIES: usize = 500;

fn delivery_json(delivery: &Delivery, state: &str) -> Value {
    let mut value = serde_json::to_value(delivery).expect("deliveries serialise");
    if let Value::Object(fields) = &mut value {
        fields.insert("state".into(), json!(state));
        fields.insert("client".into(), json!(delivery.client()));
    }
    value
}

#[derive(Debug, Deserialize)]
pub struct DeliveryFilter {
    state: Option<String>,
    client: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<DeliveryFilter>,
) -> ApiResult<Json<Value>> {
    let wanted = filter.state.clone().unwrap_or_else(|| "sent".into());
    if !["pending", "sent", "dead"].contains(&wanted.as_str()) {
        return Err(ApiError::bad_request(format!(
            "state = '{wanted}' is not one of pending, sent, dead"
        )));
    }
    state
        .blocking("listing deliveries", move |state| {
            let outbox = &state.outbox;
            let read = match wanted.as_str() {
                "pending" => outbox.pending().map(|(pending, _)| pending),
                "dead" => outbox.dead(),
                _ => outbox.sent(),
            }
            .map_err(|error| ApiError::internal("reading deliveries", error))?;
            let deliveries: Vec<Value> = read
                .iter()
                .filter(|delivery| {
                    caller.scope.allows(delivery.client())
                        && filter
                            .client
                            .as_deref()
                            .is_none_or(|c| c == delivery.client())
                })
                .take(MAX_DELIVERIES)
                .map(|delivery| delivery_json(delivery, &wanted))
                .collect();
            Ok(Json(json!({ "deliveries": deliveries })))
        })
        .await
}

pub async fn dead(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    list(
        State(state),
        Extension(caller),
        Query(DeliveryFilter {
            state: Some("dead".into()),
            client: None,
        }),
    )
    .await
}

pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    let now_ms = state.now_ms();
    let dead_key = key.clone();
    let retried = state
        .blocking("retrying a dead letter", move |state| {
            let dead = state
                .outbox
                .dead()
                .map_err(|error| ApiError::internal("reading dead letters", error))?
                .into_iter()
                .find(|delivery| delivery.key == dead_key)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no dead letter '{}'; GET /api/v1/dead lists them",
                        dead_key.chars().take(80).collect::<String>()
                    ))
                })?;
            let retried = Delivery {
                key: format!("{}-retry-{now_ms}", dead.key),
                attempts: 0,
                next_attempt_ms: now_ms,
                last_error: None,
                finished_ms: None,
                created_ms: now_ms,
                ..dead
            };
            state
                .outbox
                .put_new(&retried)
                .map_err(|error| ApiError::internal("queueing the retry", error))?;
            Ok(retried)
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: caller.name.clone(),
            action: "retry_delivery".into(),
            subject: key,
            detail: Some(format!("queued as {}", retried.key)),
            address: caller.address.clone(),
        })
        .await?;
    Ok(Json(delivery_json(&retried, "pending")))
}
