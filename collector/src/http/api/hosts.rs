//! Clients and hosts: `GET /api/v1/clients`, `/hosts`, `/hosts/{host}`,
//! `/hosts/{host}/series`, `/pending`, and `POST /hosts/{host}/approve|revoke`. A host's
//! client is the one its certificate carries (the registry's record, else what presence
//! saw); a client user asking for another client's host gets the same 404 as for a host that
//! does not exist.

use super::{checked_host, no_host};
use crate::http::audit::AuditEntry;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::pipeline::presence::{self, HostPresence};
use crate::store::{Selector, METRIC_NAME_LABEL};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// How far back `/hosts/{host}/series` looks for the host's series.
const SERIES_LOOKBACK_MS: i64 = 3600 * 1000;

/// One host as the API shows it.
#[derive(Debug, Serialize)]
pub struct HostView {
    pub host: String,
    pub client: String,
    /// online, asleep, shut down, rebooting, agent stopped, disconnected, never connected,
    /// revoked.
    pub state: String,
    pub state_since_ms: Option<i64>,
    pub last_data_ms: Option<i64>,
    pub agent_version: Option<String>,
    pub os: Option<String>,
    pub enrolled_at_ms: Option<i64>,
    pub cert_expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub open_alerts: usize,
    /// The contract severity of its worst open alert.
    pub worst_severity: Option<String>,
}

/// Every host the registry or presence knows, with what each says.
pub(crate) fn all_hosts(state: &AppState) -> ApiResult<Vec<HostView>> {
    let registry = &state.registry;
    let records = registry
        .hosts()
        .map_err(|error| ApiError::internal("reading the enrolled hosts", error))?;
    let seen: BTreeMap<String, HostPresence> = presence::read(&state.data_dir)
        .map_err(|error| ApiError::internal("reading presence", error))?;
    let open = state
        .outbox
        .open_alerts()
        .map_err(|error| ApiError::internal("reading open alerts", error))?;
    let mut names: BTreeSet<&str> = records.iter().map(|r| r.agent_id.as_str()).collect();
    names.extend(seen.keys().map(String::as_str));
    let mut hosts = Vec::with_capacity(names.len());
    for name in names {
        let record = records.iter().find(|record| record.agent_id == name);
        let revoked_at_ms = match record {
            Some(record) => registry
                .revocation_of(record)
                .map_err(|error| ApiError::internal("reading revocations", error))?,
            None => None,
        };
        let presence = seen.get(name);
        let Some(client) = record
            .map(|record| record.client.clone())
            .or_else(|| presence.map(|seen| seen.client.clone()))
        else {
            continue;
        };
        let alerts: Vec<&str> = open
            .iter()
            .filter(|(alert, _)| alert.alert.host == name && alert.alert.client == client)
            .map(|(alert, _)| alert.alert.contract_severity.as_str())
            .collect();
        let state_text = match (revoked_at_ms, presence) {
            (Some(_), _) => "revoked".to_string(),
            (None, None) => "never connected".to_string(),
            (None, Some(seen)) => seen.state.as_str().to_string(),
        };
        hosts.push(HostView {
            host: name.to_string(),
            client,
            state: state_text,
            state_since_ms: revoked_at_ms.or(presence.map(|seen| seen.since_ms)),
            last_data_ms: presence.and_then(|seen| seen.last_batch_ms),
            agent_version: presence.map(|seen| seen.agent_version.clone()),
            os: presence.map(|seen| seen.os.clone()),
            enrolled_at_ms: record.map(|record| record.enrolled_at_ms),
            cert_expires_at_ms: record.map(|record| record.cert_expires_at_ms),
            revoked_at_ms,
            open_alerts: alerts.len(),
            worst_severity: alerts
                .iter()
                .max_by_key(|severity| severity_rank(severity))
                .map(|severity| severity.to_string()),
        });
    }
    Ok(hosts)
}

/// Emergencies first.
pub(crate) fn severity_rank(severity: &str) -> u8 {
    match severity {
        "emergency" => 4,
        "critical" => 3,
        "warning" => 2,
        "notice" => 1,
        _ => 0,
    }
}

/// The host named `host` if the caller may see it; 404 otherwise.
pub(crate) fn visible_host(state: &AppState, caller: &Caller, host: &str) -> ApiResult<HostView> {
    checked_host(host)?;
    all_hosts(state)?
        .into_iter()
        .find(|view| view.host == host && caller.scope.allows(&view.client))
        .ok_or_else(|| no_host(host))
}

#[derive(Debug, Deserialize)]
pub struct HostFilter {
    client: Option<String>,
    state: Option<String>,
}

/// `GET /api/v1/hosts?client=&state=`: emergencies first, then by client and name.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<HostFilter>,
) -> ApiResult<Json<Value>> {
    let mut hosts = state.blocking("listing hosts", all_hosts).await?;
    hosts.retain(|host| {
        caller.scope.allows(&host.client)
            && filter.client.as_ref().is_none_or(|c| *c == host.client)
            && filter.state.as_ref().is_none_or(|s| *s == host.state)
    });
    hosts.sort_by(|a, b| {
        let rank =
            |h: &HostView| std::cmp::Reverse(h.worst_severity.as_deref().map_or(0, severity_rank));
        (rank(a), &a.client, &a.host).cmp(&(rank(b), &b.client, &b.host))
    });
    Ok(Json(json!({ "hosts": hosts })))
}

/// `GET /api/v1/hosts/{host}`: the host, its inventory and its open alerts.
pub async fn one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("reading a host", move |state| {
            let view = visible_host(state, &caller, &host)?;
            let inventory = state
                .store
                .host_record(&host)
                .map_err(|error| ApiError::internal("reading the host's inventory", error))?;
            let alerts: Vec<Value> = state
                .outbox
                .open_alerts()
                .map_err(|error| ApiError::internal("reading open alerts", error))?
                .into_iter()
                .filter(|(record, _)| {
                    record.alert.host == view.host && record.alert.client == view.client
                })
                .map(|(record, ack)| super::alerts::alert_json(&record, ack.as_ref()))
                .collect();
            Ok(Json(json!({
                "host": view,
                "inventory": inventory,
                "open_alerts": alerts,
            })))
        })
        .await
}

/// `GET /api/v1/hosts/{host}/series`: the series the host sent in the last hour (labels
/// only), for choosing charts.
pub async fn series(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("listing a host's series", move |state| {
            let view = visible_host(state, &caller, &host)?;
            // Both names passed the naming rule, so they need no escaping.
            let selector: Selector =
                format!("{{host=\"{}\",client=\"{}\"}}", view.host, view.client)
                    .parse()
                    .map_err(|error| ApiError::internal("building the host's selector", error))?;
            let end_ms = state.now_ms();
            let selected = state
                .store
                .select(&selector, end_ms - SERIES_LOOKBACK_MS, end_ms)
                .map_err(|error| ApiError::internal("reading the store", error))?;
            let series: Vec<Value> = selected
                .iter()
                .map(|series| {
                    json!({
                        "metric": series.labels.get(METRIC_NAME_LABEL),
                        "labels": series.labels,
                        "last": series.samples.last().map(|s| json!([s.timestamp_ms, s.value])),
                    })
                })
                .collect();
            Ok(Json(json!({ "host": view.host, "series": series })))
        })
        .await
}

/// `GET /api/v1/clients`: every client the caller may see, with its hosts, open alerts and
/// the contract in force (version and its plain-words summary).
pub async fn clients(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("listing clients", move |state| {
            let hosts = all_hosts(state)?;
            let archive = crate::pipeline::PolicyArchive::new(&state.data_dir);
            let mut names: BTreeSet<String> = hosts.iter().map(|h| h.client.clone()).collect();
            names.extend(
                archive
                    .clients()
                    .map_err(|error| ApiError::internal("listing policies", error))?,
            );
            let mut clients = Vec::new();
            for name in names.into_iter().filter(|name| caller.scope.allows(name)) {
                let versions = archive
                    .versions(&name)
                    .map_err(|error| ApiError::internal("reading policy versions", error))?;
                let contract = versions.last().map(|latest| {
                    json!({
                        "version": latest.version,
                        "created_at": latest.created_at.to_string(),
                        "summary": latest.policy().ok().map(|policy| policy.summary()),
                    })
                });
                let own: Vec<&HostView> = hosts.iter().filter(|h| h.client == name).collect();
                clients.push(json!({
                    "client": name,
                    "hosts": own.len(),
                    "hosts_online": own.iter().filter(|h| h.state == "online").count(),
                    "open_alerts": own.iter().map(|h| h.open_alerts).sum::<usize>(),
                    "contract": contract,
                }));
            }
            Ok(Json(json!({ "clients": clients })))
        })
        .await
}

/// `GET /api/v1/pending`: agents waiting for approval (technicians and admins).
pub async fn pending(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    let pending = state
        .blocking("listing pending agents", |state| {
            state
                .registry
                .pending()
                .map_err(|error| ApiError::internal("reading pending agents", error))
        })
        .await?;
    Ok(Json(json!({ "pending": pending })))
}

/// `POST /api/v1/hosts/{host}/approve`: lets the agent waiting under that name in.
pub async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    checked_host(&host)?;
    let name = host.clone();
    let request = state
        .blocking("approving an agent", move |state| {
            let pending = state
                .registry
                .pending()
                .map_err(|error| ApiError::internal("reading pending agents", error))?;
            let Some(request) = pending.into_iter().find(|request| request.hostname == name) else {
                return Err(ApiError::not_found(format!(
                    "no agent named '{name}' waits for approval; GET /api/v1/pending lists them"
                )));
            };
            state
                .registry
                .approve(&request.request_id)
                .map_err(|error| ApiError::internal("approving an agent", error))?;
            Ok(request)
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: state.now_ms(),
            user: caller.name.clone(),
            action: "approve".into(),
            subject: host.clone(),
            detail: Some(format!("client {}", request.client)),
            address: caller.address.clone(),
        })
        .await?;
    Ok(Json(json!({
        "approved": host,
        "client": request.client,
        "request_id": request.request_id,
    })))
}

/// `POST /api/v1/hosts/{host}/revoke`: cuts the host off, like `hosts revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.may_act()?;
    let name = host.clone();
    let now_ms = state.now_ms();
    let client = state
        .blocking("revoking a host", move |state| {
            checked_host(&name)?;
            let record = state
                .registry
                .host(&name)
                .map_err(|error| ApiError::internal("reading the host", error))?
                .ok_or_else(|| no_host(&name))?;
            state
                .registry
                .revoke(&name, now_ms)
                .map_err(|error| ApiError::internal("revoking the host", error))?;
            Ok(record.client)
        })
        .await?;
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: caller.name.clone(),
            action: "revoke".into(),
            subject: host.clone(),
            detail: Some(format!("client {client}")),
            address: caller.address.clone(),
        })
        .await?;
    Ok(Json(
        json!({ "revoked": host, "client": client, "at_ms": now_ms }),
    ))
}
