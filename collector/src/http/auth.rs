//! Who is calling: a bearer API token (scripts) or a session cookie (browsers), resolved to a
//! [`Caller`] before any handler runs. A state-changing request made with a cookie must carry
//! the session's CSRF token in `X-CSRF-Token`; a bearer token needs none (a browser never
//! sends one by itself). The caller's [`ClientScope`] goes into the request's extensions, so
//! any router nested behind this layer (the Prometheus API) can filter by it.

use super::error::ApiError;
use super::server::PeerAddr;
use super::sessions::{cookie_value, secrets_equal, COOKIE_NAME, CSRF_HEADER};
use super::state::AppState;
use super::users::{Role, User};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

/// Which clients' data a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientScope {
    All,
    One(String),
}

impl ClientScope {
    pub fn allows(&self, client: &str) -> bool {
        match self {
            ClientScope::All => true,
            ClientScope::One(own) => own == client,
        }
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session cookie; the id of the session.
    Session(String),
    ApiToken,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub scope: ClientScope,
    pub credential: Credential,
    /// The address the request came from, for the audit log.
    pub address: Option<String>,
}

impl Caller {
    fn of(user: &User, credential: Credential) -> Self {
        let scope = match (user.role, &user.client) {
            (Role::Client, Some(client)) => ClientScope::One(client.clone()),
            // A client user without a client (a hand-edited file) sees nobody's data.
            (Role::Client, None) => ClientScope::One(String::new()),
            _ => ClientScope::All,
        };
        Self {
            name: user.name.clone(),
            role: user.role,
            scope,
            credential,
            address: None,
        }
    }

    /// Technicians and admins may act (acknowledge, approve, revoke, make join tokens);
    /// client users only read.
    pub fn may_act(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Technician => Ok(()),
            Role::Client => Err(ApiError::forbidden(
                "client users have read-only access; ask the MSP's technicians to do this",
            )),
        }
    }

    pub fn must_be_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::forbidden(
                "only admins may do this (manage users, read the audit log)",
            )),
        }
    }

    /// `Ok` when the caller may see `client`'s data; a hidden client reads as not found.
    pub fn sees(&self, client: &str, what: &str) -> Result<(), ApiError> {
        if self.scope.allows(client) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no {what}")))
        }
    }
}

/// The authentication layer: resolves the caller or answers 401, checks CSRF, and puts the
/// [`Caller`] and its [`ClientScope`] into the request's extensions.
pub async fn require_caller(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let mut caller = identify(&state, &headers).await?;
    caller.address = request
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|ConnectInfo(peer)| peer.0.ip().to_string());
    if let Credential::Session(id) = &caller.credential {
        let changes_state = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if changes_state {
            check_csrf(&state, &request, id)?;
        }
    }
    request.extensions_mut().insert(caller.scope.clone());
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        let token = authorization
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?
            .to_string();
        let user = state
            .blocking("checking an API token", move |state| {
                state
                    .users
                    .verify_token(&token)
                    .map_err(|error| ApiError::internal("reading the users", error))
            })
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        return Ok(Caller::of(&user, Credential::ApiToken));
    }
    let session_id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| cookie_value(value, COOKIE_NAME))
        .ok_or_else(ApiError::unauthorized)?
        .to_string();
    let session = state
        .sessions
        .get(&session_id)
        .ok_or_else(ApiError::unauthorized)?;
    let name = session.user.clone();
    let user = state
        .blocking("reading the users", move |state| {
            state
                .users
                .get(&name)
                .map_err(|error| ApiError::internal("reading the users", error))
        })
        .await?;
    match user {
        Some(user) => Ok(Caller::of(&user, Credential::Session(session_id))),
        None => {
            // The user was removed while signed in.
            state.sessions.remove(&session_id);
            Err(ApiError::unauthorized())
        }
    }
}

fn check_csrf(state: &AppState, request: &Request, session_id: &str) -> Result<(), ApiError> {
    let session = state
        .sessions
        .get(session_id)
        .ok_or_else(ApiError::unauthorized)?;
    let sent = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !sent.is_empty() && secrets_equal(sent, &session.csrf_token) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "missing or wrong X-CSRF-Token header: send the csrf_token that sign-in (or GET /api/v1/session) returned",
        ))
    }
}
