//! The console's server-rendered pages: a host (`/hosts/{host}`: presence, inventory, open
//! and past alerts, charts of CPU, memory, filesystems with the engine's running forecast,
//! disk I/O, network, temperatures, SMART and a services strip over 1 h / 24 h / 7 d / 30 d), the alert list (`/alerts`, acknowledged from
//! the page by the console's script through the JSON API) and a client (`/clients/{client}`:
//! its contract in plain words, versions, hosts, open alerts). Each page is built from what
//! the JSON API answers, for the signed-in caller only: another client's host or client reads
//! as not found, exactly as in the API.

use super::chart::{escape, Chart, Line, Unit};
use crate::http::api::alerts::alert_json;
use crate::http::api::hosts::{all_hosts, severity_rank, visible_host, HostView};
use crate::http::api::reports;
use crate::http::auth::{Caller, ClientScope};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::{Selector, Store, BUCKET_MS, METRIC_NAME_LABEL};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write;
use vigil_proto::model::Labels;

/// Points per chart at most.
const CHART_POINTS: u32 = 360;
/// Ranges longer than this read the five-minute rollups, as `/api/v1/range` does.
const RAW_RANGE_MS: i64 = 24 * 3600 * 1000;
/// Filesystems charted per host at most.
const MAX_FILESYSTEMS: usize = 12;
/// Lines on one chart at most (disks, interfaces, sensors).
const MAX_LINES: usize = 8;
/// Cells of a service's up/down strip.
const STRIP_STEPS: u32 = 120;

/// Each series' labels and `(timestamp_ms, average)` points.
type Curves = Vec<(Labels, Vec<(i64, f64)>)>;

/// The chart windows a host page offers.
pub const RANGES: [(&str, i64); 4] = [
    ("1h", 3600 * 1000),
    ("24h", 24 * 3600 * 1000),
    ("7d", 7 * 24 * 3600 * 1000),
    ("30d", 30 * 24 * 3600 * 1000),
];

/// A page, or an error page with the API's status and message.
pub struct Page(pub(crate) Result<String, ApiError>);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (status, body) = match self.0 {
            Ok(body) => (StatusCode::OK, body),
            Err(error) => (
                error.status,
                layout(
                    "Error",
                    None,
                    &format!(
                        r#"<p class="error" id="page-error">{}</p><p><a href="/">Back to the fleet</a></p>"#,
                        escape(&error.message)
                    ),
                ),
            ),
        };
        let mut response = (status, body).into_response();
        super::secure_headers(&mut response, "text/html; charset=utf-8");
        response
    }
}

/// The frame every page shares: the header with the navigation and the signed-in user.
pub fn layout(title: &str, caller: Option<&Caller>, body: &str) -> String {
    let who = caller.map_or(String::new(), |caller| {
        format!("{} ({})", escape(&caller.name), caller.role.as_str())
    });
    // A client user's own client and its reports are a click away from every page.
    let own = match caller.map(|caller| &caller.scope) {
        Some(ClientScope::One(client)) if !client.is_empty() => format!(
            r#" <a href="/clients/{client}" id="own-client">{client}</a> <a href="/clients/{client}/reports" id="own-reports">Reports</a>"#,
            client = escape(client)
        ),
        _ => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Vigil</title>
<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/console.js" defer></script>
</head>
<body data-page="server">
<header>
  <h1><a href="/">Vigil</a></h1>
  <nav><a href="/">Fleet</a> <a href="/alerts">Alerts</a>{own}</nav>
  <span id="who">{who}</span>
  <button id="sign-out" type="button">Sign out</button>
</header>
<main>
{body}
<p class="error" id="error" role="alert"></p>
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

fn time(ms: Option<i64>) -> String {
    match ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(at) => at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        None => "-".into(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => escape(text),
        Value::Null => "-".into(),
        other => escape(&other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub struct Window {
    range: Option<String>,
}

/// `GET /hosts/{host}?range=1h|24h|7d|30d`.
pub async fn host(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
    Query(window): Query<Window>,
) -> Page {
    let wanted = window.range.unwrap_or_else(|| "24h".into());
    let Some(&(range, span_ms)) = RANGES.iter().find(|(name, _)| *name == wanted) else {
        return Page(Err(ApiError::bad_request(format!(
            "range = '{}' is not one of 1h, 24h, 7d, 30d",
            wanted.chars().take(20).collect::<String>()
        ))));
    };
    Page(
        state
            .blocking("drawing a host page", move |state| {
                host_page(state, &caller, &host, range, span_ms)
            })
            .await,
    )
}

fn host_page(
    state: &AppState,
    caller: &Caller,
    host: &str,
    range: &str,
    span_ms: i64,
) -> Result<String, ApiError> {
    let view = visible_host(state, caller, host)?;
    let inventory = state
        .store
        .host_record(host)
        .map_err(|error| ApiError::internal("reading the host's inventory", error))?;
    let alerts = open_alerts(state, caller, |alert| alert["host"] == host)?;
    let end_ms = state.now_ms();
    let mut charts = host_charts(&state.store, &view, end_ms - span_ms, end_ms)?;
    mark_forecasts(state, host, end_ms, &mut charts)?;
    let services = service_strips(&state.store, &view, end_ms - span_ms, end_ms)?;
    let past = past_alerts(state, host)?;

    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h2 id="host-name">{host} <small>· <a href="/clients/{client}">{client}</a></small></h2>
<table class="facts"><tbody>
<tr><th>State</th><td class="state state-{state_class}" id="host-state">{state}</td><th>Since</th><td>{since}</td></tr>
<tr><th>Last data</th><td>{last}</td><th>Agent</th><td>{agent}</td></tr>
<tr><th>OS</th><td>{os}</td><th>Certificate expires</th><td>{expires}</td></tr>
</tbody></table>"#,
        host = escape(&view.host),
        client = escape(&view.client),
        state_class = escape(&view.state.replace(' ', "-")),
        state = escape(&view.state),
        since = time(view.state_since_ms),
        last = time(view.last_data_ms),
        agent = escape(view.agent_version.as_deref().unwrap_or("-")),
        os = escape(view.os.as_deref().unwrap_or("-")),
        expires = time(view.cert_expires_at_ms),
    );
    body.push_str(r#"<h3>Open alerts</h3>"#);
    body.push_str(&alerts_table(&alerts, caller, false));
    body.push_str(r#"<h3>Past alerts</h3>"#);
    body.push_str(&past);
    let _ = write!(body, r#"<h3>Charts</h3><p class="ranges">"#);
    for (name, _) in RANGES {
        if name == range {
            let _ = write!(body, r#"<strong>{name}</strong> "#);
        } else {
            let _ = write!(
                body,
                r#"<a href="/hosts/{}?range={name}">{name}</a> "#,
                escape(&view.host)
            );
        }
    }
    body.push_str(r#"</p><div class="charts">"#);
    for chart in &charts {
        let _ = write!(
            body,
            r#"<figure><figcaption>{}</figcaption>{}</figure>"#,
            escape(&chart.title),
            chart.to_svg()
        );
    }
    let _ = write!(
        body,
        r#"<figure><figcaption>Services</figcaption>{services}</figure></div><h3>Inventory</h3>"#
    );
    match inventory {
        Some(Value::Object(fields)) if !fields.is_empty() => {
            body.push_str(r#"<table class="inventory"><tbody>"#);
            for (name, value) in &fields {
                let _ = write!(
                    body,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(name),
                    text(value)
                );
            }
            body.push_str("</tbody></table>");
        }
        _ => body.push_str("<p>No inventory reported yet.</p>"),
    }
    Ok(layout(&view.host, Some(caller), &body))
}

/// CPU, memory and each filesystem of `view`'s host over `start_ms..end_ms`, read as
/// `/api/v1/range` reads them: raw samples up to a day, five-minute rollups beyond.
pub fn host_charts(
    store: &Store,
    view: &HostView,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Chart>, ApiError> {
    let mut step_ms = Store::auto_step(start_ms, end_ms, CHART_POINTS);
    if end_ms - start_ms > RAW_RANGE_MS {
        step_ms = ((step_ms + BUCKET_MS - 1) / BUCKET_MS).max(1) * BUCKET_MS;
    }
    // Both names passed the naming rule, so they need no escaping in a selector.
    let read_by = |metric: &str,
                   extra: &str,
                   pick: fn(&crate::store::Aggregate) -> f64|
     -> Result<Curves, ApiError> {
        let selector: Selector = format!(
            "{metric}{{host=\"{}\",client=\"{}\"{extra}}}",
            view.host, view.client
        )
        .parse()
        .map_err(|error| ApiError::internal("building a chart's selector", error))?;
        let selection = store
            .select_range(&selector, start_ms, end_ms, step_ms)
            .map_err(|error| ApiError::internal("reading the store", error))?;
        Ok(selection
            .series
            .into_iter()
            .map(|series| {
                let points = series
                    .points
                    .iter()
                    .map(|point| (point.timestamp_ms, pick(&point.aggregate)))
                    .collect();
                (series.labels, points)
            })
            .collect())
    };
    let read = |metric: &str, extra: &str| read_by(metric, extra, crate::store::Aggregate::avg);
    // A counter's value at the end of each step is its largest there.
    let read_rate = |metric: &str| -> Result<Curves, ApiError> {
        Ok(read_by(metric, "", |aggregate| aggregate.max)?
            .into_iter()
            .map(|(labels, points)| (labels, per_second(&points)))
            .collect())
    };
    let last = |points: &[(i64, f64)]| {
        points
            .iter()
            .rev()
            .map(|(_, value)| *value)
            .find(|value| value.is_finite())
    };
    let mut charts = Vec::new();
    let cpu = read("system_cpu_utilization_ratio", "")?;
    charts.push(Chart {
        title: "CPU".into(),
        unit: Unit::Ratio,
        start_ms,
        end_ms,
        max: Some(1.0),
        lines: cpu
            .into_iter()
            .map(|(_, points)| Line {
                name: "cpu".into(),
                points,
            })
            .collect(),
    });
    let memory_limit = read("system_memory_limit_bytes", "")?
        .iter()
        .find_map(|(_, points)| last(points));
    let memory = read("system_memory_usage_bytes", ",state=\"used\"")?;
    charts.push(Chart {
        title: match memory_limit {
            Some(limit) => format!("Memory used (of {})", Unit::Bytes.format(limit)),
            None => "Memory used".into(),
        },
        unit: Unit::Bytes,
        start_ms,
        end_ms,
        max: memory_limit,
        lines: memory
            .into_iter()
            .map(|(_, points)| Line {
                name: "used".into(),
                points,
            })
            .collect(),
    });
    let limits = read("system_filesystem_limit_bytes", "")?;
    let used = read("system_filesystem_usage_bytes", ",state=\"used\"")?;
    for (labels, points) in used.into_iter().take(MAX_FILESYSTEMS) {
        let mountpoint = labels.get("mountpoint").unwrap_or("?").to_string();
        let limit = limits
            .iter()
            .find(|(other, _)| other.get("mountpoint") == Some(mountpoint.as_str()))
            .and_then(|(_, points)| last(points));
        charts.push(Chart {
            title: match limit {
                Some(limit) => format!(
                    "Filesystem {mountpoint} used (of {})",
                    Unit::Bytes.format(limit)
                ),
                None => format!("Filesystem {mountpoint} used"),
            },
            unit: Unit::Bytes,
            start_ms,
            end_ms,
            max: limit,
            lines: vec![Line {
                name: labels.get(METRIC_NAME_LABEL).unwrap_or("used").to_string(),
                points,
            }],
        });
    }
    let lines_by = |curves: Curves, names: &[&str]| -> Vec<Line> {
        curves
            .into_iter()
            .take(MAX_LINES)
            .map(|(labels, points)| Line {
                name: names
                    .iter()
                    .filter_map(|name| labels.get(name))
                    .collect::<Vec<_>>()
                    .join(" "),
                points,
            })
            .collect()
    };
    let mut chart = |title: &str, unit: Unit, max: Option<f64>, lines: Vec<Line>| {
        charts.push(Chart {
            title: title.into(),
            unit,
            start_ms,
            end_ms,
            max,
            lines,
        })
    };
    chart(
        "Disk I/O (per second)",
        Unit::Bytes,
        None,
        lines_by(
            read_rate("system_disk_io_bytes_total")?,
            &["device", "direction"],
        ),
    );
    chart(
        "Network (per second)",
        Unit::Bytes,
        None,
        lines_by(
            read_rate("system_network_io_bytes_total")?,
            &["device", "direction"],
        ),
    );
    chart(
        "Temperatures (°C)",
        Unit::Plain,
        None,
        lines_by(read("system_temperature_celsius", "")?, &["sensor"]),
    );
    let mut smart = lines_by(read("disk_smart_reallocated_sectors", "")?, &["device"]);
    for line in &mut smart {
        line.name.push_str(" reallocated");
    }
    let mut pending = lines_by(read("disk_smart_pending_sectors", "")?, &["device"]);
    for line in &mut pending {
        line.name.push_str(" pending");
    }
    smart.extend(pending);
    chart("SMART sectors", Unit::Plain, None, smart);
    Ok(charts)
}

/// Services up (1) or down (0) over the window, one strip per service.
pub fn service_strips(
    store: &Store,
    view: &HostView,
    start_ms: i64,
    end_ms: i64,
) -> Result<String, ApiError> {
    let step_ms = (end_ms - start_ms) / i64::from(STRIP_STEPS);
    let selector: Selector = format!(
        "service_up{{host=\"{}\",client=\"{}\"}}",
        view.host, view.client
    )
    .parse()
    .map_err(|error| ApiError::internal("building a chart's selector", error))?;
    let selection = store
        .select_range(&selector, start_ms, end_ms, step_ms.max(1))
        .map_err(|error| ApiError::internal("reading the store", error))?;
    let services: Vec<(String, Vec<(i64, f64)>)> = selection
        .series
        .into_iter()
        .take(MAX_LINES * 2)
        .map(|series| {
            (
                series.labels.get("service").unwrap_or("?").to_string(),
                // Down at any moment of the step shows as down.
                series
                    .points
                    .iter()
                    .map(|point| (point.timestamp_ms, point.aggregate.min))
                    .collect(),
            )
        })
        .collect();
    Ok(super::chart::service_strips(
        &services,
        start_ms,
        end_ms,
        step_ms.max(1),
    ))
}

/// Adds the engine's running forecast to each filesystem chart it concerns, as the alert
/// carries it (aged to `now_ms` at its rate, as messages age it): "full in ~3 d 4 h".
fn mark_forecasts(
    state: &AppState,
    host: &str,
    now_ms: i64,
    charts: &mut [Chart],
) -> Result<(), ApiError> {
    let open = state
        .outbox
        .open_alerts()
        .map_err(|error| ApiError::internal("reading open alerts", error))?;
    for (record, _) in &open {
        let alert = &record.alert;
        let (Some(forecast), Some(mountpoint)) =
            (alert.context.forecast, alert.labels.get("mountpoint"))
        else {
            continue;
        };
        if alert.host != host {
            continue;
        }
        let left = forecast.aged(now_ms - alert.at_ms).time_left_ms;
        let prefix = format!("Filesystem {mountpoint} ");
        for chart in charts.iter_mut().filter(|c| c.title.starts_with(&prefix)) {
            chart.title = format!(
                "{} · full in ~{}",
                chart.title,
                crate::notify::message::days_hours(left)
            );
        }
    }
    Ok(())
}

/// The host's resolved alerts, newest first, from the deliveries the outbox keeps: when
/// each began and ended and how long it lasted.
fn past_alerts(state: &AppState, host: &str) -> Result<String, ApiError> {
    let sent = state
        .outbox
        .sent()
        .map_err(|error| ApiError::internal("reading deliveries", error))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut past: Vec<&crate::notify::AlertMessage> = sent
        .iter()
        .flat_map(|delivery| &delivery.alerts)
        .filter(|alert| {
            alert.host == host
                && alert.status == crate::notify::AlertStatus::Resolved
                && seen.insert((alert.fingerprint.clone(), alert.starts_at_ms))
        })
        .collect();
    if past.is_empty() {
        return Ok(r#"<p class="none" id="no-past-alerts">No resolved alerts kept.</p>"#.into());
    }
    past.sort_by_key(|alert| std::cmp::Reverse(alert.starts_at_ms));
    let mut table = String::from(
        r#"<table class="alerts past-alerts"><thead><tr><th>Severity</th><th>Alert</th><th>Began</th><th>Resolved</th><th>Lasted</th></tr></thead><tbody>"#,
    );
    for alert in past.iter().take(50) {
        let _ = write!(
            table,
            r#"<tr data-past-alert="{id}"><td><span class="severity-{severity}">{severity}</span></td><td>{summary}</td><td>{began}</td><td>{ended}</td><td>{lasted}</td></tr>"#,
            id = escape(&alert.fingerprint),
            severity = escape(&alert.contract_severity),
            summary = escape(&alert.summary),
            began = time(Some(alert.starts_at_ms)),
            ended = time(alert.ends_at_ms),
            lasted = escape(&alert.lasted_text().unwrap_or_default()),
        );
    }
    table.push_str("</tbody></table>");
    Ok(table)
}

/// Per-second increases of a counter between consecutive points; a reset (a fall) and a
/// gap leave a hole rather than a spike.
fn per_second(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .map(|pair| {
            let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
            let rate = if v1 >= v0 && t1 > t0 {
                (v1 - v0) * 1000.0 / (t1 - t0) as f64
            } else {
                f64::NAN
            };
            (t1, rate)
        })
        .collect()
}

/// The open alerts the caller may see and `keep` keeps, worst first, as the API shows them.
pub(crate) fn open_alerts(
    state: &AppState,
    caller: &Caller,
    keep: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, ApiError> {
    let mut alerts: Vec<Value> = state
        .outbox
        .open_alerts()
        .map_err(|error| ApiError::internal("reading open alerts", error))?
        .iter()
        .filter(|(record, _)| caller.scope.allows(&record.alert.client))
        .map(|(record, ack)| alert_json(record, ack.as_ref()))
        .filter(|alert| keep(alert))
        .collect();
    alerts.sort_by_key(|alert| {
        (
            std::cmp::Reverse(severity_rank(
                alert["contract_severity"].as_str().unwrap_or(""),
            )),
            alert["starts_at_ms"].as_i64(),
        )
    });
    Ok(alerts)
}

/// A table of alerts; with `acknowledge`, a form on each unacknowledged one for callers who
/// may act.
pub(crate) fn alerts_table(alerts: &[Value], caller: &Caller, acknowledge: bool) -> String {
    if alerts.is_empty() {
        return r#"<p class="none">No open alerts.</p>"#.into();
    }
    let may_act = acknowledge && caller.may_act().is_ok();
    let mut table = String::from(
        r#"<table class="alerts"><thead><tr><th>Severity</th><th>Alert</th><th>Host</th><th>Client</th><th>Since</th><th>Response due</th><th>State</th>"#,
    );
    if may_act {
        table.push_str("<th>Acknowledge</th>");
    }
    table.push_str("</tr></thead><tbody>");
    for alert in alerts {
        let id = alert["id"].as_str().unwrap_or("");
        let state = alert["state"].as_str().unwrap_or("");
        let severity = alert["contract_severity"].as_str().unwrap_or("");
        let state_text = match alert["acknowledged_by"].as_str() {
            Some(by) => format!("{state} by {}", escape(by)),
            None => escape(state),
        };
        let _ = write!(
            table,
            r#"<tr data-alert="{id}" data-state="{state}"><td><span class="severity-{severity}">{severity}</span></td><td>{summary}</td><td><a href="/hosts/{host}">{host}</a></td><td><a href="/clients/{client}">{client}</a></td><td>{since}</td><td>{due}</td><td class="alert-state">{state_text}</td>"#,
            id = escape(id),
            state = escape(state),
            severity = escape(severity),
            summary = text(&alert["summary"]),
            host = text(&alert["host"]),
            client = text(&alert["client"]),
            since = time(alert["starts_at_ms"].as_i64()),
            due = time(alert["response_due_ms"].as_i64()),
        );
        if may_act {
            if alert["acknowledged_by"].is_null() {
                let _ = write!(
                    table,
                    r#"<td><form class="ack" data-alert="{id}"><input name="note" placeholder="Note (optional)" maxlength="2000" aria-label="Note"> <button type="submit">Acknowledge as {name}</button></form></td>"#,
                    id = escape(id),
                    name = escape(&caller.name)
                );
            } else {
                table.push_str("<td>-</td>");
            }
        }
        table.push_str("</tr>");
    }
    table.push_str("</tbody></table>");
    table
}

/// `GET /alerts`: every open alert the caller may see, worst first.
pub async fn alerts(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Page {
    Page(
        state
            .blocking("drawing the alert list", move |state| {
                let alerts = open_alerts(state, &caller, |_| true)?;
                let mut body = format!(
                    r#"<h2>Open alerts <small id="alert-count">{}</small></h2>"#,
                    alerts.len()
                );
                body.push_str(&alerts_table(&alerts, &caller, true));
                Ok(layout("Alerts", Some(&caller), &body))
            })
            .await,
    )
}

/// `GET /clients/{client}`: the contract in plain words (what `policy check` prints), its
/// versions, the client's hosts and open alerts.
pub async fn client(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
) -> Page {
    Page(
        state
            .blocking("drawing a client page", move |state| {
                client_page(state, &caller, &client)
            })
            .await,
    )
}

fn client_page(state: &AppState, caller: &Caller, client: &str) -> Result<String, ApiError> {
    let no_client = || {
        ApiError::not_found(format!(
            "no client '{}'; the fleet overview lists the clients you can see",
            client.chars().take(64).collect::<String>()
        ))
    };
    if crate::enroll::names::check_host_name(client).is_err() || !caller.scope.allows(client) {
        return Err(no_client());
    }
    let hosts: Vec<HostView> = all_hosts(state)?
        .into_iter()
        .filter(|host| host.client == client)
        .collect();
    let archive = crate::pipeline::PolicyArchive::new(&state.data_dir);
    let versions = archive
        .versions(client)
        .map_err(|error| ApiError::internal("reading policy versions", error))?;
    if hosts.is_empty() && versions.is_empty() {
        return Err(no_client());
    }
    let alerts = open_alerts(state, caller, |alert| alert["client"] == client)?;
    let mut body = format!(r#"<h2 id="client-name">{}</h2>"#, escape(client));
    body.push_str(&client_tabs(client, Tab::Overview));
    body.push_str("<h3>Contract</h3>");
    match versions.last() {
        Some(latest) => {
            let summary = latest
                .policy()
                .map(|policy| policy.summary())
                .unwrap_or_else(|error| format!("the contract does not read: {error}"));
            let _ = write!(
                body,
                r#"<p>Version {} of {}.</p><pre class="contract">{}</pre>"#,
                latest.version,
                escape(&latest.created_at.to_string()),
                escape(&summary)
            );
            body.push_str(r#"<table class="versions"><thead><tr><th>Version</th><th>Since</th></tr></thead><tbody>"#);
            for version in versions.iter().rev() {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    version.version,
                    escape(&version.created_at.to_string())
                );
            }
            body.push_str("</tbody></table>");
        }
        None => body.push_str("<p>No contract recorded: the default policy applies.</p>"),
    }
    let _ = write!(body, "<h3>Hosts ({})</h3>", hosts.len());
    body.push_str(r#"<table class="hosts"><thead><tr><th>Host</th><th>State</th><th>Last data</th><th>Open alerts</th></tr></thead><tbody>"#);
    for host in &hosts {
        let _ = write!(
            body,
            r#"<tr data-host="{name}"><td><a href="/hosts/{name}">{name}</a></td><td class="state state-{class}">{state}</td><td>{last}</td><td>{open}</td></tr>"#,
            name = escape(&host.host),
            class = escape(&host.state.replace(' ', "-")),
            state = escape(&host.state),
            last = time(host.last_data_ms),
            open = host.open_alerts,
        );
    }
    body.push_str("</tbody></table><h3>Open alerts</h3>");
    body.push_str(&alerts_table(&alerts, caller, false));
    Ok(layout(client, Some(caller), &body))
}

/// The tabs of a client's pages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Overview,
    Reports,
}

fn client_tabs(client: &str, current: Tab) -> String {
    let client = escape(client);
    let tab = |tab: Tab, href: String, name: &str| {
        if tab == current {
            format!(r#"<strong aria-current="page">{name}</strong>"#)
        } else {
            format!(r#"<a href="{href}">{name}</a>"#)
        }
    };
    format!(
        r#"<nav class="tabs" id="client-tabs">{} {}</nav>"#,
        tab(Tab::Overview, format!("/clients/{client}"), "Overview"),
        tab(
            Tab::Reports,
            format!("/clients/{client}/reports"),
            "Reports"
        )
    )
}

/// `GET /clients/{client}/reports`: the Reports tab, every month with a report, each to
/// open, download, and (where the collector's machine has a headless Chromium) print as PDF.
pub async fn client_reports(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(client): Path<String>,
) -> Page {
    Page(
        state
            .blocking("drawing a client's reports", move |state| {
                let months = reports::months_of(state, &caller, &client)?;
                let pdf = crate::report::pdf::chromium().is_some();
                let mut body = format!(r#"<h2 id="client-name">{}</h2>"#, escape(&client));
                body.push_str(&client_tabs(&client, Tab::Reports));
                body.push_str("<h3>Monthly reports</h3>");
                if months.is_empty() {
                    body.push_str(
                        r#"<p class="none" id="no-reports">No month has data for a report yet.</p>"#,
                    );
                }
                body.push_str(r#"<table class="reports"><thead><tr><th>Month</th><th>Report</th><th>Download</th>"#);
                if pdf {
                    body.push_str("<th>PDF</th>");
                }
                body.push_str("</tr></thead><tbody>");
                for (month, complete) in &months {
                    let base = format!("/clients/{}/reports/{month}", escape(&client));
                    let _ = write!(
                        body,
                        r#"<tr data-month="{month}"><td>{title}{so_far}</td><td><a class="open-report" href="{base}">Open</a></td><td><a class="download-report" href="{base}/download" download>HTML</a></td>"#,
                        title = escape(&month.title()),
                        so_far = if *complete { "" } else { " (so far)" },
                    );
                    if pdf {
                        let _ = write!(
                            body,
                            r#"<td><a class="pdf-report" href="{base}/pdf">PDF</a></td>"#
                        );
                    }
                    body.push_str("</tr>");
                }
                body.push_str(
                    "</tbody></table><p class=\"none\">Each report is made from the collector's \
                     stored data when it is opened, the same page <code>vigil-collector report</code> \
                     writes, and recorded with its digest.</p>",
                );
                Ok(layout(&format!("{client} · Reports"), Some(&caller), &body))
            })
            .await,
    )
}

/// `GET /clients/{client}/reports/{month}`: the report page itself.
pub async fn client_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, month)): Path<(String, String)>,
) -> Response {
    match state
        .blocking("making a report", move |state| {
            reports::page_of(state, &caller, &client, &month)
        })
        .await
    {
        Ok((_, page)) => reports::page_response(page, None),
        Err(error) => Page(Err(error)).into_response(),
    }
}

/// `GET /clients/{client}/reports/{month}/download`: the page as a file to keep.
pub async fn client_report_download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, month)): Path<(String, String)>,
) -> Response {
    match state
        .blocking("making a report", move |state| {
            reports::page_of(state, &caller, &client, &month)
        })
        .await
    {
        Ok((built, page)) => {
            reports::page_response(page, Some(&reports::file_name(&built, "html")))
        }
        Err(error) => Page(Err(error)).into_response(),
    }
}

/// `GET /clients/{client}/reports/{month}/pdf`: the page printed by headless Chromium.
pub async fn client_report_pdf(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, month)): Path<(String, String)>,
) -> Response {
    match state
        .blocking("printing a report", move |state| {
            reports::pdf_of(state, &caller, &client, &month)
        })
        .await
    {
        Ok((built, bytes)) => {
            let mut response = bytes.into_response();
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/pdf"),
            );
            reports::attach(&mut response, &reports::file_name(&built, "pdf"));
            response
        }
        Err(error) => Page(Err(error)).into_response(),
    }
}
