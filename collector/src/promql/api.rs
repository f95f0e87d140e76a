//! The Prometheus HTTP query API as an axum [`Router`], to be nested at `/api/v1`:
//! `/query`, `/query_range`, `/series`, `/labels`, `/label/{name}/values`, `/metadata`,
//! `/status/buildinfo`, each by GET (query string) or POST (form body), answering with
//! Prometheus' JSON envelope and error types so Grafana and promtool work unmodified.
//!
//! Authentication is not here: the HTTP server in front (`serve` nests this router behind
//! the API's sign-in) decides who is asking and puts a [`ClientScope`] in the request's
//! extensions; `ClientScope::One(client)` adds `client="…"` to every selector, so a client
//! only ever sees its own series.

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use vigil_proto::model::Labels;

use super::eval::{selector_for, RangeQuery};
use super::value::{json_string, write_labels};
use super::{evaluate_instant, evaluate_range, PromqlError, MAX_POINTS_PER_SERIES};
use crate::store::Store;

/// Whose series a request may see; no extension at all (the router served on its own, as
/// `examples/promql_serve.rs` does) means every series.
pub use crate::http::auth::ClientScope;

/// The query API over `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/query", get(query).post(query))
        .route("/query_range", get(query_range).post(query_range))
        .route("/series", get(series).post(series))
        .route("/labels", get(labels).post(labels))
        .route("/label/{name}/values", get(label_values))
        .route("/metadata", get(metadata))
        .route("/query_exemplars", get(exemplars).post(exemplars))
        .route("/status/buildinfo", get(buildinfo))
        .with_state(store)
}

/// A request's parameters: the query string, then the form body of a POST.
struct Params {
    pairs: Vec<(String, String)>,
    client: Option<String>,
}

impl Params {
    async fn read(request: Request) -> Result<Params, PromqlError> {
        let client = request
            .extensions()
            .get::<ClientScope>()
            .and_then(|scope| match scope {
                ClientScope::All => None,
                ClientScope::One(client) => Some(client.clone()),
            });
        let mut pairs = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
            .map(|query| query.0)
            .map_err(|error| PromqlError::BadData(format!("reading the query string: {error}")))?;
        if request.method() == Method::POST {
            let Form(body) = Form::<Vec<(String, String)>>::from_request(request, &())
                .await
                .map_err(|error| {
                    PromqlError::BadData(format!(
                        "reading the form body (send application/x-www-form-urlencoded): {error}"
                    ))
                })?;
            pairs.extend(body);
        }
        Ok(Params { pairs, client })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn time(&self, name: &str, default_ms: i64) -> Result<i64, PromqlError> {
        match self.get(name) {
            None | Some("") => Ok(default_ms),
            Some(text) => parse_time(text).map_err(|error| {
                PromqlError::BadData(format!("invalid parameter \"{name}\": {error}"))
            }),
        }
    }
}

/// A time as Prometheus takes it: Unix seconds (with a fraction) or RFC 3339.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    text.parse::<jiff::Timestamp>()
        .map(|timestamp| timestamp.as_millisecond())
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))
}

/// A duration as Prometheus takes it: seconds (with a fraction) or `1h30m`-style.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    promql_parser::util::parse_duration(text)
        .map(|duration| duration.as_millis() as i64)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn success(data: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
    )
        .into_response()
}

impl IntoResponse for PromqlError {
    fn into_response(self) -> Response {
        let status = match &self {
            PromqlError::BadData(_) | PromqlError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            PromqlError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PromqlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = format!(
            "{{\"status\":\"error\",\"errorType\":\"{}\",\"error\":{}}}",
            self.error_type(),
            json_string(&self.to_string())
        );
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Runs store reads off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PromqlError> + Send + 'static,
) -> Result<T, PromqlError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| PromqlError::Execution(format!("query task failed: {error}")))?
}

async fn query(State(store): State<Store>, request: Request) -> Result<Response, PromqlError> {
    let params = Params::read(request).await?;
    let text = params
        .get("query")
        .ok_or_else(|| PromqlError::BadData("invalid parameter \"query\": missing".to_owned()))?
        .to_owned();
    let time_ms = params.time("time", now_ms())?;
    let client = params.client.clone();
    let value =
        blocking(move || evaluate_instant(&store, client.as_deref(), &text, time_ms)).await?;
    Ok(success(&value.to_json()))
}

async fn query_range(
    State(store): State<Store>,
    request: Request,
) -> Result<Response, PromqlError> {
    let params = Params::read(request).await?;
    let text = params
        .get("query")
        .ok_or_else(|| PromqlError::BadData("invalid parameter \"query\": missing".to_owned()))?
        .to_owned();
    let required = |name: &str| {
        params
            .get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| PromqlError::BadData(format!("invalid parameter \"{name}\": missing")))
    };
    let start_ms = parse_time(required("start")?)
        .map_err(|error| PromqlError::BadData(format!("invalid parameter \"start\": {error}")))?;
    let end_ms = parse_time(required("end")?)
        .map_err(|error| PromqlError::BadData(format!("invalid parameter \"end\": {error}")))?;
    if end_ms < start_ms {
        return Err(PromqlError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".to_owned(),
        ));
    }
    let step_ms = parse_duration_ms(required("step")?)
        .map_err(|error| PromqlError::BadData(format!("invalid parameter \"step\": {error}")))?;
    if step_ms <= 0 {
        return Err(PromqlError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".to_owned(),
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(PromqlError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".to_owned(),
        ));
    }
    let client = params.client.clone();
    let range = RangeQuery {
        start_ms,
        end_ms,
        step_ms,
    };
    let value = blocking(move || evaluate_range(&store, client.as_deref(), &text, range)).await?;
    Ok(success(&value.to_json()))
}

/// The label sets of the series the `match[]` selectors pick (every series without one).
/// They come from the series index alone: `start` and `end` are accepted and not applied,
/// since reading samples to list names would make a dashboard's label lookups cost as much
/// as its queries (Prometheus too answers from whole blocks, not exact times).
fn matching_series(
    store: &Store,
    params: &Params,
    require_match: bool,
) -> Result<Vec<Labels>, PromqlError> {
    let mut matchers: Vec<String> = params
        .all("match[]")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if matchers.is_empty() {
        if require_match {
            return Err(PromqlError::BadData(
                "no match[] parameter provided".to_owned(),
            ));
        }
        matchers.push("{__name__=~\".+\"}".to_owned());
    }
    for name in ["start", "end"] {
        params.time(name, 0)?;
    }
    let mut found = std::collections::BTreeSet::new();
    for text in matchers {
        let expr = super::parse(&text)?;
        let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
            return Err(PromqlError::BadData(format!(
                "invalid parameter \"match[]\": {text} is not a series selector"
            )));
        };
        let store_selector = selector_for(&selector, params.client.as_deref())?;
        found.extend(store.series_labels(&store_selector)?);
    }
    Ok(found.into_iter().collect())
}

async fn series(State(store): State<Store>, request: Request) -> Result<Response, PromqlError> {
    let params = Params::read(request).await?;
    let found = blocking(move || matching_series(&store, &params, true)).await?;
    let mut out = String::from("[");
    for (i, labels) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_labels(&mut out, labels);
    }
    out.push(']');
    Ok(success(&out))
}

fn string_list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| json_string(&item)).collect();
    format!("[{}]", items.join(","))
}

async fn labels(State(store): State<Store>, request: Request) -> Result<Response, PromqlError> {
    let params = Params::read(request).await?;
    let found = blocking(move || matching_series(&store, &params, false)).await?;
    let names: std::collections::BTreeSet<String> = found
        .iter()
        .flat_map(|labels| labels.iter().map(|(name, _)| name.to_owned()))
        .collect();
    Ok(success(&string_list(names)))
}

async fn label_values(
    State(store): State<Store>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, PromqlError> {
    let params = Params::read(request).await?;
    let found = blocking(move || matching_series(&store, &params, false)).await?;
    let values: std::collections::BTreeSet<String> = found
        .iter()
        .filter_map(|labels| labels.get(&name).map(str::to_owned))
        .collect();
    Ok(success(&string_list(values)))
}

/// Vigil keeps no HELP or TYPE text for its series, so the metadata is empty.
async fn metadata() -> Response {
    success("{}")
}

/// Vigil stores no exemplars; Grafana asks for them when a panel enables them.
async fn exemplars() -> Response {
    success("[]")
}

/// Grafana reads the version to decide which Prometheus features to use: Vigil answers as
/// the Prometheus release whose API it follows.
async fn buildinfo() -> Response {
    success(&format!(
        "{{\"version\":\"2.42.0\",\"revision\":\"vigil-{}\",\"branch\":\"vigil\",\"buildUser\":\"vigil\",\"buildDate\":\"\",\"goVersion\":\"none\"}}",
        env!("CARGO_PKG_VERSION")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse_in_both_of_prometheus_forms() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert!(parse_duration_ms("soon").is_err());
    }
}
