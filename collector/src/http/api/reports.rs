//! Monthly client reports over HTTP: `GET /api/v1/clients/{client}/reports` (the months
//! that have a report) and `GET /api/v1/clients/{client}/reports/{month}` (the page itself,
//! the same HTML `vigil-collector report` writes, built from the running collector's store
//! and alert history). The console's Reports tab uses the same functions. A client user
//! reads only its own client's reports; another client's read as not found, exactly like
//! one that does not exist. A month that has not begun or has no data is refused with the
//! CLI's words, never answered with an empty report.

use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::report::{self, Month, MonthReport, ReportError};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde_json::{json, Value};

/// The one answer for a client that does not exist and for one the caller may not see.
fn no_client(client: &str) -> ApiError {
    ApiError::not_found(format!(
        "no client '{}'; GET /api/v1/clients lists the clients you can see",
        client.chars().take(64).collect::<String>()
    ))
}

/// `Ok` when `client` is a valid name the caller may see.
fn visible(caller: &Caller, client: &str) -> ApiResult<()> {
    if crate::enroll::names::check_client_id(client).is_err() || !caller.scope.allows(client) {
        return Err(no_client(client));
    }
    Ok(())
}

/// A report's refusal as an HTTP answer: the CLI's one line, with a status that fits.
pub(crate) fn refusal(client: &str, error: ReportError) -> ApiError {
    match error {
        // Not the CLI's list of known clients: a client user must not learn of others.
        ReportError::UnknownClient { .. } => no_client(client),
        ReportError::Month { .. } => ApiError::bad_request(error.to_string()),
        ReportError::NoContract { .. }
        | ReportError::FutureMonth { .. }
        | ReportError::NoData { .. } => ApiError::not_found(error.to_string()),
        other => ApiError::internal("making the report", other),
    }
}

fn now(state: &AppState) -> Timestamp {
    Timestamp::from_millisecond(state.now_ms()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The months `client` has a report for, newest first.
pub(crate) fn months_of(
    state: &AppState,
    caller: &Caller,
    client: &str,
) -> ApiResult<Vec<(Month, bool)>> {
    visible(caller, client)?;
    let reach_back_ms = state.config.store.rollup_retention.as_millis() as i64;
    report::months(
        &state.data_dir,
        Some(&state.store),
        client,
        now(state),
        reach_back_ms,
    )
    .map_err(|error| refusal(client, error))
}

/// `client`'s report for `month` (`YYYY-MM`) and its page, as `vigil-collector report`
/// makes them; the run is recorded once per distinct page.
pub(crate) fn page_of(
    state: &AppState,
    caller: &Caller,
    client: &str,
    month: &str,
) -> ApiResult<(MonthReport, String)> {
    visible(caller, client)?;
    let month = Month::parse(month).map_err(|error| refusal(client, error))?;
    let at = now(state);
    let built = report::build(&state.data_dir, Some(&state.store), client, month, at)
        .map_err(|error| refusal(client, error))?;
    let page = report::html::render(&built);
    report::runs::record_once(&state.data_dir, &built, &page, at.as_millisecond())
        .map_err(|error| ApiError::internal("recording the report run", error))?;
    Ok((built, page))
}

/// The page printed to PDF by the headless Chromium on the collector's machine.
pub(crate) fn pdf_of(
    state: &AppState,
    caller: &Caller,
    client: &str,
    month: &str,
) -> ApiResult<(MonthReport, Vec<u8>)> {
    let (built, page) = page_of(state, caller, client, month)?;
    if report::pdf::chromium().is_none() {
        return Err(ApiError::not_found(
            "no headless Chromium on the collector's machine (apt-get install chromium); \
             open the HTML report and print it from the browser instead",
        ));
    }
    let folder = tempfile::tempdir()
        .map_err(|error| ApiError::internal("making a folder to print the report in", error))?;
    let html = folder.path().join("report.html");
    let pdf = folder.path().join("report.pdf");
    report::write_page(&html, &page)
        .and_then(|()| report::pdf::print(&html, &pdf))
        .map_err(|error| ApiError::internal("printing the report to PDF", error))?;
    let bytes = std::fs::read(&pdf)
        .map_err(|error| ApiError::internal("reading the printed report", error))?;
    Ok((built, bytes))
}

/// The file name a downloaded report gets: `<client>-<YYYY-MM>.<extension>`.
pub(crate) fn file_name(built: &MonthReport, extension: &str) -> String {
    format!("{}-{}.{extension}", built.client, built.month)
}

/// A report page as an answer: its own Content-Security-Policy (its inline style by hash,
/// nothing else), and as an attachment when `download` names the file.
pub(crate) fn page_response(page: String, download: Option<&str>) -> Response {
    let mut response = page.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(policy) = HeaderValue::from_str(&report::html::content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
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
    if let Some(name) = download {
        attach(&mut response, name);
    }
    response
}

/// Marks `response` as a file to save as `name` (a client id and a month: plain ASCII).
pub(crate) fn attach(response: &mut Response, name: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
}

/// `GET /api/v1/clients/{client}/reports`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .blocking("listing reports", move |state| {
            let months = months_of(state, &caller, &client)?;
            let listed: Vec<Value> = months
                .iter()
                .map(|(month, complete)| {
                    json!({
                        "month": month.to_string(),
                        "title": month.title(),
                        "complete": complete,
                        "html": format!("/api/v1/clients/{client}/reports/{month}"),
                    })
                })
                .collect();
            Ok(Json(json!({ "client": client, "reports": listed })))
        })
        .await
}

/// `GET /api/v1/clients/{client}/reports/{month}`: the page, `text/html`.
pub async fn one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, month)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, page) = state
        .blocking("making a report", move |state| {
            page_of(state, &caller, &client, &month)
        })
        .await?;
    Ok(page_response(page, None))
}
