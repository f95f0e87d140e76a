//! The API's one error type: a status and a one-line message that says what to fix, sent as
//! `{"error": "..."}`. A server-side failure is logged once here and answered with a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For 429: when to try again.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not signed in: sign in at POST /api/v1/sign-in, or send 'Authorization: Bearer TOKEN' (vigil-collector users token NAME)",
        )
    }

    pub fn forbidden(what: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, what)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what)
    }

    pub fn too_many(wait: Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "too many failed sign-ins for this account or address; try again in {} s",
                wait.as_secs().max(1)
            ),
            retry_after: Some(wait),
        }
    }

    /// A failure on the server's side: logged with its detail, answered with a 500.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("http: {context}: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{context}: {error}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
