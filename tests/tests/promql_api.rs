//! The Prometheus query API through its axum router (`oneshot`, no socket) over a real store:
//! a client's scope hides every other client's series from each endpoint, requests work by
//! GET and by POST form, and errors come in Prometheus' envelope.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use vigil_collector::promql::api::{router, ClientScope};
use vigil_collector::store::{SeriesSamples, Store, StoreConfig, WriterId};
use vigil_proto::model::{Labels, Sample};

const T0_MS: i64 = 1_700_000_000_000;

/// Two clients, two hosts each, one CPU series per host, a sample a minute for ten minutes.
fn store_with_two_clients() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.raw_retention = Duration::from_secs(100 * 365 * 86_400);
    config.rollup_retention = config.raw_retention;
    let store = Store::open(&config).unwrap();
    let mut batch = Vec::new();
    for (client, host, value) in [
        ("acme", "acme-web", 0.25),
        ("acme", "acme-db", 0.5),
        ("globex", "globex-web", 0.75),
        ("globex", "globex-files", 1.0),
    ] {
        batch.push(SeriesSamples {
            labels: Labels::from_pairs([
                ("__name__", "system_cpu_utilization_ratio"),
                ("client", client),
                ("host", host),
            ]),
            samples: (0..10)
                .map(|minute| Sample {
                    timestamp_ms: T0_MS + minute * 60_000,
                    value,
                })
                .collect(),
        });
    }
    let writer = WriterId {
        host: "fixture".to_owned(),
        spool_id: 1,
    };
    store.append(&writer, 1, &batch).unwrap();
    (dir, store)
}

async fn get(store: &Store, uri: &str, scope: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    if let Some(client) = scope {
        request
            .extensions_mut()
            .insert(ClientScope::One(client.to_owned()));
    }
    send(store, request).await
}

async fn send(store: &Store, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(store.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn hosts_in(result: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let labels = item.get("metric").unwrap_or(item);
            labels["host"].as_str().unwrap().to_owned()
        })
        .collect();
    hosts.sort();
    hosts
}

fn encode(query: &str) -> String {
    query
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace('[', "%5B")
        .replace(']', "%5D")
        .replace('=', "%3D")
        .replace('+', "%2B")
}

#[tokio::test]
async fn a_client_scope_hides_other_clients_series_from_every_endpoint() {
    let (_dir, store) = store_with_two_clients();
    let at = (T0_MS + 5 * 60_000) / 1000;
    let query = format!(
        "/query?query={}&time={at}",
        encode("system_cpu_utilization_ratio")
    );

    let (status, all) = get(&store, &query, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hosts_in(&all["data"]["result"]).len(), 4);

    let (status, scoped) = get(&store, &query, Some("acme")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hosts_in(&scoped["data"]["result"]), ["acme-db", "acme-web"]);

    // A matcher naming the other client cannot widen the scope: it only narrows to nothing.
    let sneaky = format!(
        "/query?query={}&time={at}",
        encode("sum(system_cpu_utilization_ratio{client=\"globex\"})")
    );
    let (_, sneaked) = get(&store, &sneaky, Some("acme")).await;
    assert_eq!(sneaked["data"]["result"], serde_json::json!([]));

    let range = format!(
        "/query_range?query={}&start={}&end={}&step=60",
        encode("avg_over_time(system_cpu_utilization_ratio[2m])"),
        T0_MS / 1000,
        T0_MS / 1000 + 540
    );
    let (_, ranged) = get(&store, &range, Some("globex")).await;
    assert_eq!(ranged["data"]["resultType"], "matrix");
    assert_eq!(
        hosts_in(&ranged["data"]["result"]),
        ["globex-files", "globex-web"]
    );

    let series = format!("/series?match[]={}", encode("{__name__=~\"system_.*\"}"));
    let (_, listed) = get(&store, &series, Some("acme")).await;
    assert_eq!(hosts_in(&listed["data"]), ["acme-db", "acme-web"]);

    let (_, values) = get(&store, "/label/host/values", Some("globex")).await;
    assert_eq!(
        values["data"],
        serde_json::json!(["globex-files", "globex-web"])
    );
    let (_, clients) = get(&store, "/label/client/values", None).await;
    assert_eq!(clients["data"], serde_json::json!(["acme", "globex"]));
}

#[tokio::test]
async fn a_post_form_query_answers_like_prometheus_with_values_as_strings() {
    let (_dir, store) = store_with_two_clients();
    let body = format!(
        "query={}&time={}",
        encode("sum by (client) (system_cpu_utilization_ratio)"),
        T0_MS / 1000 + 120
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (status, answer) = send(&store, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["data"]["resultType"], "vector");
    let result = answer["data"]["result"].as_array().unwrap();
    let acme = result
        .iter()
        .find(|item| item["metric"]["client"] == "acme")
        .unwrap();
    assert_eq!(
        acme["value"],
        serde_json::json!([T0_MS / 1000 + 120, "0.75"])
    );
}

#[tokio::test]
async fn errors_come_in_prometheus_envelope_with_its_error_types() {
    let (_dir, store) = store_with_two_clients();
    let unsupported = format!(
        "/query?query={}",
        encode("histogram_quantile(0.9, system_cpu_utilization_ratio)")
    );
    let (status, answer) = get(&store, &unsupported, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["errorType"], "bad_data");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("histogram_quantile() is not supported"));

    let too_many = format!(
        "/query_range?query=up&start={}&end={}&step=1",
        T0_MS / 1000,
        T0_MS / 1000 + 20_000
    );
    let (status, answer) = get(&store, &too_many, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("11,000 points"));

    let backwards = format!(
        "/query_range?query=up&start={}&end={}&step=60",
        T0_MS / 1000 + 60,
        T0_MS / 1000
    );
    let (status, answer) = get(&store, &backwards, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorType"], "bad_data");

    let (status, answer) = get(&store, "/series", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("match[]"));

    let (status, answer) = get(&store, "/status/buildinfo", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["data"]["version"].is_string());
}
