//! The live alert path in a running collector: samples from an agent's stream reach the
//! engine, the client's contract classifies the alert, and the webhook receives it; the
//! engine's state survives a restart in the middle of a pending period.

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_collector::config::CollectorConfig;
use vigil_collector::pipeline::PolicyArchive;
use vigil_tests::*;

/// Records every JSON body posted to it.
#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = Hook::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url)
    }

    fn firing(&self, rule: &str) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|alert| alert["status"] == "firing" && alert["labels"]["alertname"] == rule)
            .collect()
    }

    async fn wait_for_firing(&self, rule: &str, deadline: Duration) -> Vec<serde_json::Value> {
        let start = std::time::Instant::now();
        while start.elapsed() < deadline {
            let firing = self.firing(rule);
            if !firing.is_empty() {
                return firing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    match serde_json::from_slice(&body) {
        Ok(json) => {
            hook.bodies.lock().unwrap().push(json);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

const POLICY: &str = r#"
client = "acme-dental"
time_zone = "Europe/Berlin"
after_hours = "emergency"

[hours]
weekdays = "08:00-18:00"

[response]
emergency = "1h"
critical = "4h"
warning = "1d"
notice = "1d"

[[rule]]
name = "practice software stopped"
kinds = ["service_down"]
labels = { service = "pmsd" }
severity = "emergency"
"#;

fn config(pki: &Pki, hook_url: &str, service_down_for: &str) -> CollectorConfig {
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(pki.path("policies/acme-dental.toml"), POLICY).unwrap();
    std::fs::write(
        pki.path("rules.toml"),
        format!("[rules.ServiceDown]\nfor = \"{service_down_for}\"\n"),
    )
    .unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [alerts]\nrules = \"rules.toml\"\nevaluation_interval = \"1s\"\n\
         [policies]\ndir = \"policies\"\n\
         [notify]\nbackoff_min = \"1s\"\n\
         [notify.routing]\non_call = [\"hook\"]\nnormal = [\"hook\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook_url}\"\nhmac_key = \"test-key\"\n"
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

async fn send_service_state(
    collector: &RunningCollector,
    files: &AgentFiles,
    spool_id: u64,
    seq: u64,
    up: f64,
) {
    let channel = connect(collector.grpc, &files.ca, Some(files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(spool_id)).await;
    stream
        .send(batch(
            seq,
            "service_up",
            &[("service", "pmsd")],
            now_ms(),
            up,
        ))
        .await;
    let reply = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(
            reply.body,
            Some(vigil_proto::pb::collector_message::Body::Ack(_))
        ),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_reaches_the_webhook_classified_by_the_clients_contract() {
    let pki = Pki::new();
    let (hook, url) = Hook::start().await;
    let config = config(&pki, &url, "0s");
    let collector = RunningCollector::start(&config).await;
    let files = pki.issue_agent("agent", "dental-srv01", "acme-dental");

    send_service_state(&collector, &files, 1, 1, 0.0).await;
    let firing = hook
        .wait_for_firing("ServiceDown", Duration::from_secs(60))
        .await;
    assert_eq!(
        firing.len(),
        1,
        "one delivery of the firing alert: {firing:?}"
    );
    let alert = &firing[0];
    assert_eq!(alert["labels"]["host"], "dental-srv01", "{alert}");
    let text = alert.to_string();
    assert!(
        text.contains("emergency"),
        "classified as an emergency: {text}"
    );
    assert!(text.contains("acme-dental"), "{text}");

    // The policy file became version 1 of the client's stored history.
    let versions = PolicyArchive::new(&config.data_dir)
        .versions("acme-dental")
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert!(
        versions[0].author.contains("acme-dental.toml"),
        "{versions:?}"
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_pending_period_neither_loses_nor_repeats_the_alert() {
    let pki = Pki::new();
    let (hook, url) = Hook::start().await;
    let config = config(&pki, &url, "3s");
    let files = pki.issue_agent("agent", "dental-srv01", "acme-dental");

    // The service is seen down, then the collector restarts before the 3 s have passed.
    let collector = RunningCollector::start(&config).await;
    send_service_state(&collector, &files, 1, 1, 0.0).await;
    collector.stop().await;
    assert!(hook.firing("ServiceDown").is_empty(), "still pending");

    // Seen down again after the pending time: the pending time counted from the first
    // sample, so it fires now, once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let collector = RunningCollector::start(&config).await;
    send_service_state(&collector, &files, 1, 2, 0.0).await;
    let firing = hook
        .wait_for_firing("ServiceDown", Duration::from_secs(60))
        .await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    // Another sample and another restart: no second delivery.
    collector.stop().await;
    let collector = RunningCollector::start(&config).await;
    send_service_state(&collector, &files, 1, 3, 0.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.firing("ServiceDown").len(), 1);
    collector.stop().await;
}

#[tokio::test]
async fn a_bad_rules_file_stops_the_collector_at_start_with_its_line_and_fix() {
    let pki = Pki::new();
    let config = config(&pki, "http://127.0.0.1:9/hook", "0s");
    std::fs::write(
        pki.path("rules.toml"),
        "[rules.ServiceDown]\nfor = \"0s\"\nthreshhold = 3\n",
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let error = match vigil_collector::serve::Collector::bind(&config, shutdown).await {
        Ok(_) => panic!("a collector started with a bad rules file"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("rules.toml:3"), "{error}");
    assert!(error.contains("threshhold"), "{error}");
}
