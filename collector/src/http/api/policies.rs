//! Client contracts: `GET /api/v1/policies/{client}` (every stored version: number, time,
//! author, digest), `/policies/{client}/versions/{n}` (its text and what it means in plain
//! words, the text `policy check` prints) and `/policies/{client}/diff?from=&to=` (a unified
//! diff between two versions). A client user reads only its own contract.

use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::pipeline::PolicyArchive;
use crate::policy::version::PolicyVersion;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// The client's stored versions, oldest first; 404 for a client the caller may not see or
/// that has none.
fn versions_of(state: &AppState, caller: &Caller, client: &str) -> ApiResult<Vec<PolicyVersion>> {
    let unknown = || {
        ApiError::not_found(format!(
            "no stored contract for client '{}'; GET /api/v1/clients lists the clients you can see",
            client.chars().take(64).collect::<String>()
        ))
    };
    if crate::enroll::names::check_client_id(client).is_err() || !caller.scope.allows(client) {
        return Err(unknown());
    }
    let versions = PolicyArchive::new(&state.data_dir)
        .versions(client)
        .map_err(|error| ApiError::internal("reading policy versions", error))?;
    if versions.is_empty() {
        return Err(unknown());
    }
    Ok(versions)
}

fn pick(versions: &[PolicyVersion], client: &str, number: u64) -> ApiResult<PolicyVersion> {
    versions
        .iter()
        .find(|version| version.version == number)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "client '{client}' has no contract version {number}; it has 1 to {}",
                versions.last().map_or(0, |latest| latest.version)
            ))
        })
}

pub async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("listing policy versions", move |state| {
            let versions = versions_of(state, &caller, &client)?;
            let listed: Vec<Value> = versions
                .iter()
                .map(|version| {
                    json!({
                        "version": version.version,
                        "created_at": version.created_at.to_string(),
                        "author": version.author,
                        "digest": version.digest,
                    })
                })
                .collect();
            Ok(Json(json!({ "client": client, "versions": listed })))
        })
        .await
}

pub async fn version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, number)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let number: u64 = number.trim_start_matches('v').parse().map_err(|_| {
        ApiError::bad_request(format!(
            "version '{}' is not a number; e.g. /api/v1/policies/{client}/versions/3",
            number.chars().take(20).collect::<String>()
        ))
    })?;
    state
        .blocking("reading a policy version", move |state| {
            let versions = versions_of(state, &caller, &client)?;
            let version = pick(&versions, &client, number)?;
            let summary = version.policy().map(|policy| policy.summary());
            Ok(Json(json!({
                "client": client,
                "version": version.version,
                "created_at": version.created_at.to_string(),
                "author": version.author,
                "digest": version.digest,
                "text": version.text,
                "summary": summary.as_ref().ok(),
                "problem": summary.err().map(|error| error.to_string()),
            })))
        })
        .await
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// `?from=&to=`; `to` defaults to the newest version and `from` to the one before it.
pub async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
    Query(query): Query<DiffQuery>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("comparing policy versions", move |state| {
            let versions = versions_of(state, &caller, &client)?;
            let newest = versions.last().map_or(1, |latest| latest.version);
            let to = query.to.unwrap_or(newest);
            let from = query.from.unwrap_or(to.saturating_sub(1).max(1));
            let (old, new) = (
                pick(&versions, &client, from)?,
                pick(&versions, &client, to)?,
            );
            let diff = similar::TextDiff::from_lines(&old.text, &new.text)
                .unified_diff()
                .context_radius(3)
                .header(&format!("v{from}"), &format!("v{to}"))
                .to_string();
            Ok(Json(json!({
                "client": client,
                "from": from,
                "to": to,
                "diff": diff,
            })))
        })
        .await
}
