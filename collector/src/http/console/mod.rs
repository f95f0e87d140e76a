//! The web console's pages and assets, embedded in the binary (no build step, no CDN, works
//! offline on the MSP's LAN). The sign-in page and the fleet overview hold no data: their
//! script reads the JSON API with the session cookie. The host, alert and client pages
//! ([`pages`]) are drawn on the server for the signed-in caller, charts as inline SVG
//! ([`chart`]); a browser that is not signed in is sent to the sign-in page. The script sends
//! the session's CSRF token on every change. Every answer carries a strict
//! Content-Security-Policy: scripts and styles from this origin only, no inline code, no
//! framing.

pub mod ack;
pub mod chart;
pub mod pages;

use super::auth::require_caller;
use super::state::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const OVERVIEW_HTML: &str = include_str!("assets/overview.html");
const SIGN_IN_HTML: &str = include_str!("assets/sign-in.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/` (the fleet overview), `/sign-in`, `/assets/…`, and the signed-in pages `/hosts/{host}`,
/// `/alerts`, `/alerts/{id}`, `/ack/{token}` (an acknowledge link), `/events` (live updates), `/clients/{client}` and its Reports tab `/clients/{client}/reports` (each
/// month's report at `…/reports/{month}`, `…/download` and `…/pdf`).
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/hosts/{host}", get(pages::host))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}", get(ack::alert))
        .route("/ack/{token}", get(ack::confirm))
        .route("/events", get(super::events::events))
        .route("/clients/{client}", get(pages::client))
        .route("/clients/{client}/reports", get(pages::client_reports))
        .route(
            "/clients/{client}/reports/{month}",
            get(pages::client_report),
        )
        .route(
            "/clients/{client}/reports/{month}/download",
            get(pages::client_report_download),
        )
        .route(
            "/clients/{client}/reports/{month}/pdf",
            get(pages::client_report_pdf),
        )
        .route_layer(axum::middleware::from_fn_with_state(state, require_caller))
        .route_layer(axum::middleware::from_fn(to_sign_in));
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
        .merge(signed_in)
}

/// A page asked for without a session goes to the sign-in page rather than a JSON 401; the
/// sign-in page comes back to an alert's page or an acknowledge link (`?next=`), so a link
/// opened from a mail lands on its alert after signing in.
async fn to_sign_in(request: Request, next: Next) -> Response {
    let back = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        // Links from alert messages come back after signing in; only plain paths.
        let from_message = back.starts_with("/ack/") || back.starts_with("/alerts/");
        let plain = back
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
        if from_message && plain {
            Redirect::to(&format!("/sign-in?next={back}")).into_response()
        } else {
            Redirect::to("/sign-in").into_response()
        }
    } else {
        response
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    secure_headers(&mut response, content_type);
    response
}

/// The content type, and the headers that keep a page from being framed, sniffed or
/// scripted from elsewhere.
pub(crate) fn secure_headers(response: &mut Response, content_type: &'static str) {
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
}
