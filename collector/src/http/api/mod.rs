//! The JSON API's routes. Everything under `/api/v1/` but signing in passes the
//! authentication layer first; each handler then authorises what it touches.
//!
//! `/api/v1/query*`, `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/…`,
//! `/api/v1/metadata` and `/api/v1/status/…` are left for the Prometheus API, mounted with
//! [`super::HttpServer::nest_authenticated`].

pub mod admin;
pub mod alerts;
pub mod deliveries;
pub mod hosts;
pub mod policies;
pub mod reports;
pub mod series;

use super::auth::require_caller;
use super::error::ApiError;
use super::signin;
use super::state::AppState;
use axum::routing::{delete, get, post};
use axum::Router;

/// The whole HTTP application: the API, and `nested` routers behind the same authentication.
pub fn router(state: AppState, nested: Vec<(String, Router)>) -> Router {
    let mut authenticated = Router::new()
        .route(
            "/api/v1/session",
            get(signin::whoami).delete(signin::sign_out),
        )
        .route("/api/v1/clients", get(hosts::clients))
        .route("/api/v1/clients/{client}/reports", get(reports::list))
        .route(
            "/api/v1/clients/{client}/reports/{month}",
            get(reports::one),
        )
        .route("/api/v1/hosts", get(hosts::list))
        .route("/api/v1/hosts/{host}", get(hosts::one))
        .route("/api/v1/hosts/{host}/series", get(hosts::series))
        .route("/api/v1/hosts/{host}/approve", post(hosts::approve))
        .route("/api/v1/hosts/{host}/revoke", post(hosts::revoke))
        .route("/api/v1/pending", get(hosts::pending))
        .route("/api/v1/range", get(series::range))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .route(
            "/api/v1/ack-links/{token}",
            post(super::console::ack::acknowledge),
        )
        .route("/api/v1/policies/{client}", get(policies::versions))
        .route(
            "/api/v1/policies/{client}/versions/{version}",
            get(policies::version),
        )
        .route("/api/v1/policies/{client}/diff", get(policies::diff))
        .route("/api/v1/deliveries", get(deliveries::list))
        .route("/api/v1/dead", get(deliveries::dead))
        .route("/api/v1/dead/{key}/retry", post(deliveries::retry))
        .route("/api/v1/tokens", post(admin::join_token))
        .route("/api/v1/users", get(admin::users).post(admin::add_user))
        .route("/api/v1/users/{name}", delete(admin::remove_user))
        .route("/api/v1/users/{name}/tokens", post(admin::user_token))
        .route("/api/v1/audit", get(admin::audit));
    for (path, router) in nested {
        // A path the nested router does not know gets the API's own 404.
        authenticated = authenticated.nest_service(&path, router.fallback(not_found));
    }
    let authenticated = authenticated.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_caller,
    ));
    Router::new()
        .route("/api/v1/sign-in", post(signin::sign_in))
        .route("/api/v1/sign-in/link/{token}", get(signin::sign_in_link))
        .merge(authenticated)
        .merge(super::console::router(state.clone()))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {}; docs/API.md lists them",
        uri.path()
    ))
}

/// A query parameter or path segment that names a host or client, checked before it is used
/// to build a path or a selector.
pub(crate) fn checked_host(host: &str) -> Result<(), ApiError> {
    crate::enroll::names::check_host_name(host).map_err(|_| no_host(host))
}

pub(crate) fn no_host(host: &str) -> ApiError {
    ApiError::not_found(format!(
        "no host '{}'; GET /api/v1/hosts lists the hosts you can see",
        host.chars().take(64).collect::<String>()
    ))
}
