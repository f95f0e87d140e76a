//! `GET /metrics`: the collector's own health ([`crate::telemetry`]) in the Prometheus text
//! format, for Prometheus to scrape with an API token (`authorization: credentials_file`).
//!
//! It needs an admin's or a technician's credentials, as the rest of the API does: the
//! figures are the whole fleet's, so a `client` user is refused (403) and a caller without
//! credentials gets 401. `[http] metrics_public = true` serves it to anyone who reaches the
//! listener, for loopback and trusted networks only.

use super::auth::{require_caller, Caller};
use super::error::ApiError;
use super::state::AppState;
use super::users::Role;
use crate::telemetry::{Telemetry, CONTENT_TYPE};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

/// The `/metrics` route, behind the API's authentication unless `[http] metrics_public`.
pub fn router(state: AppState, telemetry: Telemetry) -> Router {
    if state.config.http().metrics_public {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(telemetry)
    } else {
        Router::new()
            .route("/metrics", get(scrape_signed_in))
            .with_state(telemetry)
            .route_layer(axum::middleware::from_fn_with_state(state, require_caller))
    }
}

async fn scrape_signed_in(
    State(telemetry): State<Telemetry>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    match caller.role {
        Role::Admin | Role::Technician => scrape(State(telemetry)).await,
        Role::Client => Err(ApiError::forbidden(
            "/metrics shows the whole collector's health: it needs an admin's or technician's API token, not a client user's",
        )),
    }
}

async fn scrape(State(telemetry): State<Telemetry>) -> Result<Response, ApiError> {
    // The scrape-time readings list folders and take the store's lock.
    let text = tokio::task::spawn_blocking(move || telemetry.encode())
        .await
        .map_err(|error| ApiError::internal("encoding /metrics", error))?
        .map_err(|error| ApiError::internal("encoding /metrics", error))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
