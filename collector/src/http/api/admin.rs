//! Administration: join tokens (`POST /api/v1/tokens`, technicians and admins), users and
//! their API tokens (`/api/v1/users…`, admins only) and the audit log (`GET /api/v1/audit`,
//! admins only). Every change is audited.

use crate::http::audit::AuditEntry;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::http::users::{Role, User, UsersError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The longest a join token made through the API may live.
const MAX_JOIN_TOKEN_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    client: String,
    /// e.g. "24h" (the default).
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    uses: Option<u32>,
    #[serde(default)]
    approve: bool,
}

fn body_error(what: &str, error: impl std::fmt::Display, example: &str) -> ApiError {
    ApiError::bad_request(format!("{what}: {error}; e.g. {example}"))
}

/// `POST /api/v1/tokens` `{"client": "acme-dental", "expires": "24h", "uses": 1,
/// "approve": false}`: a join token, shown once, with the install command.
pub async fn join_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.may_act()?;
    let request: JoinTokenRequest = serde_json::from_slice(&body).map_err(|error| {
        body_error(
            "join token request",
            error,
            r#"{"client": "acme-dental", "expires": "24h", "uses": 1}"#,
        )
    })?;
    let expires = match &request.expires {
        Some(text) => vigil_proto::config_file::parse_duration(text).map_err(|error| {
            ApiError::bad_request(format!("expires = '{text}': {error}; e.g. \"24h\""))
        })?,
        None => Duration::from_secs(24 * 3600),
    };
    if expires > MAX_JOIN_TOKEN_LIFE || expires.is_zero() {
        return Err(ApiError::bad_request(
            "expires must be more than 0 and at most 30d",
        ));
    }
    let uses = request.uses.unwrap_or(1);
    let client = request.client.clone();
    let created = state
        .blocking("creating a join token", move |state| {
            crate::enroll::admin::create_token(
                &state.config,
                std::path::Path::new("the collector's config"),
                &request.client,
                expires,
                uses,
                request.approve,
            )
            .map_err(|error| match error {
                crate::enroll::admin::AdminError::Name(_)
                | crate::enroll::admin::AdminError::NoUses
                | crate::enroll::admin::AdminError::NoEnrollSection { .. } => {
                    ApiError::bad_request(error.to_string())
                }
                other => ApiError::internal("creating a join token", other),
            })
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: state.now_ms(),
            user: caller.name.clone(),
            action: "create_join_token".into(),
            subject: client.clone(),
            detail: Some(format!(
                "{uses} use(s), expires at {} ms{}",
                created.record.expires_at_ms,
                if created.record.approve {
                    ", approval required"
                } else {
                    ""
                }
            )),
            address: caller.address.clone(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": created.token.to_string(),
            "client": client,
            "uses": uses,
            "expires_at_ms": created.record.expires_at_ms,
            "approve": created.record.approve,
            "install": format!(
                "vigil-agent install --collector https://<collector>:{} --token {}",
                state.config.grpc.listen.port(),
                created.token
            ),
        })),
    ))
}

fn user_json(user: &User) -> Value {
    json!({
        "name": user.name,
        "role": user.role,
        "client": user.client,
        "has_password": user.password_hash.is_some(),
        "tokens": user.tokens.iter().map(|token| json!({
            "id": token.id,
            "created_at_ms": token.created_at_ms,
        })).collect::<Vec<_>>(),
        "created_at_ms": user.created_at_ms,
    })
}

fn users_error(error: UsersError) -> ApiError {
    match error {
        UsersError::Io { .. } | UsersError::Damaged { .. } | UsersError::Hash(_) => {
            ApiError::internal("changing users", error)
        }
        UsersError::Unknown(_) => ApiError::not_found(error.to_string()),
        UsersError::Exists(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// `GET /api/v1/users` (admins).
pub async fn users(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.must_be_admin()?;
    let users = state
        .blocking("listing users", |state| {
            state.users.all().map_err(users_error)
        })
        .await?;
    Ok(Json(json!({
        "users": users.values().map(user_json).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: Role,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `POST /api/v1/users` `{"name", "role", "client"?, "password"?}` (admins).
pub async fn add_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.must_be_admin()?;
    let new: NewUser = serde_json::from_slice(&body).map_err(|error| {
        body_error(
            "new user",
            error,
            r#"{"name": "ana", "role": "technician", "password": "…"}"#,
        )
    })?;
    let now_ms = state.now_ms();
    let user = state
        .blocking("adding a user", move |state| {
            state
                .users
                .add(
                    &new.name,
                    new.role,
                    new.client.as_deref(),
                    new.password.as_deref(),
                    now_ms,
                )
                .map_err(users_error)
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: caller.name.clone(),
            action: "add_user".into(),
            subject: user.name.clone(),
            detail: Some(format!("role {}", user.role.as_str())),
            address: caller.address.clone(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

/// `DELETE /api/v1/users/{name}` (admins): the user's sessions end at once.
pub async fn remove_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.must_be_admin()?;
    let removed = name.clone();
    state
        .blocking("removing a user", move |state| {
            state.users.remove(&removed).map_err(users_error)
        })
        .await?;
    state.sessions.remove_user(&name);
    state
        .audit(AuditEntry {
            at_ms: state.now_ms(),
            user: caller.name.clone(),
            action: "remove_user".into(),
            subject: name,
            detail: None,
            address: caller.address.clone(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{name}/tokens` (admins): a new API token, shown once.
pub async fn user_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.must_be_admin()?;
    let now_ms = state.now_ms();
    let owner = name.clone();
    let token = state
        .blocking("creating an API token", move |state| {
            state
                .users
                .create_token(&owner, now_ms)
                .map_err(users_error)
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: caller.name.clone(),
            action: "create_api_token".into(),
            subject: name.clone(),
            detail: None,
            address: caller.address.clone(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": name, "token": token })),
    ))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/audit?limit=` (admins): the newest entries first.
pub async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    caller.must_be_admin()?;
    let limit = query.limit.unwrap_or(200).clamp(1, 10_000);
    let entries = state
        .blocking("reading the audit log", move |state| {
            state
                .audit
                .newest(limit)
                .map_err(|error| ApiError::internal("reading the audit log", error))
        })
        .await?;
    Ok(Json(json!({ "entries": entries })))
}
