//! The collector's own `/metrics` through a real `serve` (`Collector::bind`, its HTTP
//! listener on a loopback port) while a client over real mutual TLS sends batches: the
//! counters move by exactly what was stored, acknowledged and refused, the connected-agents
//! gauge follows the stream, and only an admin's or technician's token may read it (or
//! anyone, with `[http] metrics_public`).

use reqwest::StatusCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::serve::Collector;
use vigil_proto::pb;
use vigil_tests::*;

/// The longest anything is waited for.
const DEADLINE: Duration = Duration::from_secs(60);

/// A collector serving ingest and HTTP on loopback ports, with a token per role.
struct Serving {
    pki: Pki,
    base: String,
    grpc: std::net::SocketAddr,
    http: reqwest::Client,
    admin: String,
    technician: String,
    client_user: String,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

impl Serving {
    async fn start(http_section: &str) -> Serving {
        let pki = Pki::new();
        let config = pki.collector_config_with(http_section);
        let users = Users::open(&config.data_dir).unwrap();
        let token = |name: &str, role: Role, client: Option<&str>| {
            users.add(name, role, client, None, 0).unwrap();
            users.create_token(name, 0).unwrap()
        };
        let admin = token("root", Role::Admin, None);
        let technician = token("ana", Role::Technician, None);
        let client_user = token("acme-it", Role::Client, Some("acme"));
        let shutdown = CancellationToken::new();
        let collector = Collector::bind(&config, shutdown.clone())
            .await
            .expect("collector binds");
        let server = collector.http().expect("the HTTP server is bound");
        let base = format!("{}://{}", server.scheme(), server.local_addr());
        let grpc = collector.grpc_addr();
        let serving = tokio::spawn(collector.run());
        Serving {
            pki,
            base,
            grpc,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin,
            technician,
            client_user,
            shutdown,
            serving,
        }
    }

    /// `GET /metrics` with `token` (or none): the status, the content type and the body.
    async fn scrape_as(&self, token: Option<&str>) -> (StatusCode, String, String) {
        let mut request = self.http.get(format!("{}/metrics", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the collector answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type, response.text().await.unwrap())
    }

    /// The admin's scrape, which must succeed.
    async fn scrape(&self) -> Scrape {
        let (status, _, text) = self.scrape_as(Some(&self.admin)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        Scrape(text)
    }

    /// Scrapes until `series` reads `wanted` (the collector notices a closed stream on its
    /// own time); fails after [`DEADLINE`].
    async fn scrape_until(&self, series: &str, wanted: f64) -> Scrape {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let scrape = self.scrape().await;
            if scrape.value(series) == Some(wanted) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} is not {wanted} within {DEADLINE:?}:\n{}",
                scrape.0
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

/// One scraped text.
struct Scrape(String);

impl Scrape {
    /// The value of the sample whose name and labels are exactly `series`.
    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    fn must(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{}", self.0))
    }
}

/// Batch `seq` of `seq` samples of one series, a second apart and after those of the
/// batches before it.
fn batch_of(seq: u64, labels: &[(&str, &str)]) -> pb::AgentMessage {
    let n_samples = seq as usize;
    let earlier = (seq * (seq - 1) / 2) as i64;
    let start_ms = now_ms() - 60_000 + earlier * 1000;
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: vec![pb::Series {
                name: "system_cpu_utilization_ratio".into(),
                labels: labels
                    .iter()
                    .map(|(name, value)| pb::Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                samples: (0..n_samples)
                    .map(|n| pb::Sample {
                        timestamp_ms: start_ms + n as i64 * 1000,
                        value: 0.25,
                    })
                    .collect(),
            }],
            ..Default::default()
        })),
    }
}

fn body_of(message: pb::CollectorMessage) -> pb::collector_message::Body {
    message.body.expect("a message with a body")
}

#[tokio::test]
async fn metrics_count_exactly_what_an_agent_sent_and_follow_its_stream() {
    let serving = Serving::start("[http]\nlisten = \"127.0.0.1:0\"\n").await;
    let before = serving.scrape().await;
    assert_eq!(before.must("vigil_ingest_batches_total"), 0.0);
    assert_eq!(before.must("vigil_connected_agents"), 0.0);

    let files = serving.pki.issue_agent("web-01", "web-01", "acme");
    let channel = connect(serving.grpc, &serving.pki.path("ca.pem"), Some(&files))
        .await
        .expect("mutual TLS connects");
    let mut stream = open_stream(channel).await.expect("stream opens");
    stream.send(hello_with_next_seq(7, 1)).await;

    // Five batches of 1..=5 samples: 15 samples, each batch acknowledged.
    let mut sent_samples = 0;
    for seq in 1..=5u64 {
        stream.send(batch_of(seq, &[("cpu", "total")])).await;
        sent_samples += seq as usize;
        match body_of(stream.next().await.unwrap().expect("an answer")) {
            pb::collector_message::Body::Ack(ack) => assert_eq!(ack.seq, seq),
            other => panic!("batch {seq} was not acknowledged: {other:?}"),
        }
    }
    // A batch that names its own host is refused for good and not acknowledged.
    stream.send(batch_of(6, &[("host", "other")])).await;
    match body_of(stream.next().await.unwrap().expect("an answer")) {
        pb::collector_message::Body::Reject(reject) => assert_eq!(reject.seq, 6),
        other => panic!("the batch naming a host was not refused: {other:?}"),
    }

    let during = serving.scrape().await;
    assert_eq!(during.must("vigil_ingest_batches_total"), 5.0);
    assert_eq!(
        during.must("vigil_ingest_samples_total"),
        sent_samples as f64
    );
    assert_eq!(during.must("vigil_ingest_duplicate_batches_total"), 0.0);
    assert_eq!(during.must("vigil_ingest_ack_duration_seconds_count"), 5.0);
    assert_eq!(
        during.must("vigil_ingest_ack_duration_seconds_bucket{le=\"+Inf\"}"),
        5.0
    );
    assert_eq!(
        during.must("vigil_ingest_rejected_batches_total{reason=\"invalid\"}"),
        1.0
    );
    assert_eq!(during.must("vigil_connected_agents"), 1.0);
    // Stored batches reached the write-ahead log, fsynced at least once, and the head.
    assert!(during.must("vigil_wal_fsync_duration_seconds_count") >= 1.0);
    assert!(during.must("vigil_wal_bytes") > 0.0);
    assert_eq!(during.must("vigil_head_series"), 1.0);
    assert!(
        during
            .value("vigil_event_queue_depth{consumer=\"alert_engine\"}")
            .is_some(),
        "the engine's lag is read at scrape:\n{}",
        during.0
    );

    // Goodbye, then the stream closes: the agent is no longer counted.
    stream
        .send(pb::AgentMessage {
            body: Some(pb::agent_message::Body::Goodbye(pb::Goodbye {
                reason: pb::goodbye::Reason::Shutdown as i32,
            })),
        })
        .await;
    drop(stream);
    let after = serving.scrape_until("vigil_connected_agents", 0.0).await;
    assert_eq!(after.must("vigil_ingest_batches_total"), 5.0);
    serving.stop().await;
}

#[tokio::test]
async fn metrics_need_an_admin_or_technician_token() {
    let serving = Serving::start("[http]\nlisten = \"127.0.0.1:0\"\n").await;
    let (status, _, _) = serving.scrape_as(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = serving.scrape_as(Some("vigil_not_a_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = serving.scrape_as(Some(&serving.client_user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("admin's or technician's"), "{body}");
    assert!(!body.contains("vigil_ingest"), "{body}");
    for token in [&serving.admin, &serving.technician] {
        let (status, content_type, body) = serving.scrape_as(Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(body.contains("# TYPE vigil_ingest_batches_total counter\n"));
    }
    serving.stop().await;
}

#[tokio::test]
async fn public_metrics_need_no_token() {
    let serving = Serving::start("[http]\nlisten = \"127.0.0.1:0\"\nmetrics_public = true\n").await;
    let (status, _, body) = serving.scrape_as(None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("vigil_build_info{version="), "{body}");
    // The rest of the API still needs a token.
    let response = serving
        .http
        .get(format!("{}/api/v1/hosts", serving.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    serving.stop().await;
}
