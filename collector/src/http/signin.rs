//! Signing in and out: `POST /api/v1/sign-in` takes a name and password (JSON or a form),
//! checks the sign-in limiter, and answers with a session cookie (HttpOnly, SameSite=Strict,
//! Secure over TLS) and the session's CSRF token. Every attempt, good or bad, is audited.

use super::audit::AuditEntry;
use super::auth::{Caller, Credential};
use super::error::{ApiError, ApiResult};
use super::server::PeerAddr;
use super::sessions::COOKIE_NAME;
use super::state::AppState;
use super::users::MAX_PASSWORD_BYTES;
use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::Form;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

/// `POST /api/v1/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    request: Request,
) -> ApiResult<Response> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let credentials: Credentials = if is_form {
        Form::<Credentials>::from_request(request, &state)
            .await
            .map(|form| form.0)
            .map_err(|error| {
                ApiError::bad_request(format!(
                    "sign-in form: {}; send the fields name and password",
                    error.body_text()
                ))
            })?
    } else {
        Json::<Credentials>::from_request(request, &state)
            .await
            .map(|json| json.0)
            .map_err(|error| {
                ApiError::bad_request(format!(
                    "sign-in body: {}; send JSON {{\"name\": \"…\", \"password\": \"…\"}} or a form with name and password",
                    error.body_text()
                ))
            })?
    };
    let address = peer.0.ip();
    // No real name is longer; a longer one must not grow the limiter's keys or the log.
    let name: String = credentials.name.chars().take(64).collect();
    if let Err(wait) = state.limiter.check(&name, address) {
        return Err(ApiError::too_many(wait));
    }
    if credentials.password.len() > MAX_PASSWORD_BYTES {
        state.limiter.record_failure(&name, address);
        return Err(ApiError::bad_request(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes; no stored one is"
        )));
    }
    let user = state
        .blocking("checking a password", move |state| {
            state
                .users
                .verify_password(&credentials.name, &credentials.password)
                .map_err(|error| ApiError::internal("reading the users", error))
        })
        .await?;
    let now_ms = state.now_ms();
    let Some(user) = user else {
        state.limiter.record_failure(&name, address);
        state
            .audit(AuditEntry {
                at_ms: now_ms,
                user: name,
                action: "sign_in_failed".into(),
                subject: "session".into(),
                detail: None,
                address: Some(address.to_string()),
            })
            .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password; an admin can set one with 'vigil-collector users add'",
        ));
    };
    state.limiter.record_success(&user.name);
    state
        .audit(AuditEntry {
            at_ms: now_ms,
            user: user.name.clone(),
            action: "sign_in".into(),
            subject: "session".into(),
            detail: None,
            address: Some(address.to_string()),
        })
        .await?;
    let (cookie, csrf_token) = start_session(&state, &user.name);
    let mut response = Json(json!({
        "name": user.name,
        "role": user.role,
        "client": user.client,
        "csrf_token": csrf_token,
    }))
    .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// A new session's `Set-Cookie` value and its CSRF token.
fn start_session(state: &AppState, user: &str) -> (HeaderValue, String) {
    let (id, session) = state.sessions.create(user);
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        if state.secure_cookies { "; Secure" } else { "" }
    );
    (
        HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
        session.csrf_token,
    )
}

/// `GET /api/v1/sign-in/link/{token}`: a one-time link (the demo prints one) signs the
/// browser in and sends it to the fleet overview.
pub async fn sign_in_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let Some(user) = state.sessions.use_link(&token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this sign-in link was used already or has expired; sign in with a password, or run the demo again for a new link",
        ));
    };
    state
        .audit(AuditEntry {
            at_ms: state.now_ms(),
            user: user.clone(),
            action: "sign_in".into(),
            subject: "one-time link".into(),
            detail: None,
            address: Some(peer.0.ip().to_string()),
        })
        .await?;
    let (cookie, _) = start_session(&state, &user);
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `GET /api/v1/session`: who is signed in, and the session's CSRF token.
pub async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<serde_json::Value>> {
    let csrf_token = match &caller.credential {
        Credential::Session(id) => state.sessions.get(id).map(|session| session.csrf_token),
        Credential::ApiToken => None,
    };
    let client = match &caller.scope {
        super::auth::ClientScope::All => None,
        super::auth::ClientScope::One(client) => Some(client.clone()),
    };
    Ok(Json(json!({
        "name": caller.name,
        "role": caller.role,
        "client": client,
        "csrf_token": csrf_token,
    })))
}

/// `DELETE /api/v1/session`: signs this browser out.
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    if let Credential::Session(id) = &caller.credential {
        state.sessions.remove(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vigil_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}
