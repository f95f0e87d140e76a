//! The web console's pages and assets, embedded in the binary (no build step, no CDN, works
//! offline on the MSP's LAN). The pages hold no data: their script reads the JSON API with
//! the session cookie and sends the session's CSRF token on every change, so the pages
//! themselves need no authentication. Every answer carries a strict Content-Security-Policy:
//! scripts and styles from this origin only, no inline code, no framing.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const OVERVIEW_HTML: &str = include_str!("assets/overview.html");
const SIGN_IN_HTML: &str = include_str!("assets/sign-in.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/` (the fleet overview), `/sign-in`, and `/assets/…`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { page(OVERVIEW_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/sign-in",
            get(|| async { page(SIGN_IN_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/console.js",
            get(|| async { page(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/console.css",
            get(|| async { page(CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
