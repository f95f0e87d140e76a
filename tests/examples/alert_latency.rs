//! How long from a sample's arrival at the collector to its alert: a running collector
//! (in this process, over real mutual TLS on 127.0.0.1) with background agents streaming,
//! and a probe agent that reports a service down (rule ServiceDown tuned to fire at once).
//! For each probe it measures, from the moment the batch is sent: the ack, the alert's
//! record in the outbox (the alert is firing and its deliveries are durable), and the
//! webhook's receipt of it.
//!
//! cargo run --release -p vigil-tests --example alert_latency -- [probes] [agents] [series]

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_collector::config::CollectorConfig;
use vigil_proto::pb;
use vigil_tests::*;

#[derive(Clone, Default)]
struct Hook {
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    hook.received
        .lock()
        .unwrap()
        .push((Instant::now(), String::from_utf8_lossy(&body).into_owned()));
    StatusCode::OK
}

fn config(pki: &Pki, hook_url: &str) -> CollectorConfig {
    std::fs::write(
        pki.path("rules.toml"),
        "[rules.ServiceDown]\nfor = \"0s\"\n",
    )
    .unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [alerts]\nrules = \"rules.toml\"\n\
         [notify.routing]\non_call = [\"hook\"]\nnormal = [\"hook\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook_url}\"\nhmac_key = \"k\"\n"
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

/// A batch of `series` gauges with one sample each.
fn load_batch(seq: u64, series: usize, timestamp_ms: i64) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: (0..series)
                .map(|index| pb::Series {
                    name: "system_cpu_utilization_ratio".into(),
                    labels: vec![pb::Label {
                        name: "cpu".into(),
                        value: index.to_string(),
                    }],
                    samples: vec![pb::Sample {
                        timestamp_ms,
                        value: 0.25,
                    }],
                })
                .collect(),
            ..Default::default()
        })),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("numbers: probes agents series"))
        .collect();
    let probes = args.first().copied().unwrap_or(50);
    let agents = args.get(1).copied().unwrap_or(20);
    let series = args.get(2).copied().unwrap_or(200);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hook = Hook::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(hook.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let pki = Pki::new();
    let config = config(&pki, &hook_url);
    let collector = RunningCollector::start(&config).await;
    let outbox = vigil_collector::notify::Outbox::open(&config.data_dir).unwrap();

    // Background agents, one batch of `series` samples each every second (a 10 s interval
    // fleet ten times this size).
    let mut load = Vec::new();
    for agent in 0..agents {
        let files = pki.issue_agent(&format!("load-{agent}"), &format!("pc-{agent:03}"), "load");
        let channel = connect(collector.grpc, &files.ca, Some(&files))
            .await
            .unwrap();
        let mut stream = open_stream(channel).await.unwrap();
        load.push(tokio::spawn(async move {
            stream.send(hello(1)).await;
            let mut seq = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                seq += 1;
                stream.send(load_batch(seq, series, now_ms())).await;
                if stream.next().await.is_err() {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let files = pki.issue_agent("probe", "probe-01", "acme");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    let (mut acked, mut enqueued, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    for probe in 0..probes {
        let service = format!("probe-service-{probe}");
        let sent = Instant::now();
        stream
            .send(batch(
                probe as u64 + 1,
                "service_up",
                &[("service", &service)],
                now_ms(),
                0.0,
            ))
            .await;
        stream.next().await.expect("ack").expect("stream open");
        acked.push(sent.elapsed().as_secs_f64() * 1000.0);
        let deadline = sent + Duration::from_secs(30);
        let in_outbox = loop {
            let open = outbox.open_alerts().unwrap();
            if open
                .iter()
                .any(|(record, _)| record.alert.labels.get("service") == Some(&service))
            {
                break sent.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "probe {probe}: no alert within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        enqueued.push(in_outbox.as_secs_f64() * 1000.0);
        let at_hook = loop {
            let found = hook
                .received
                .lock()
                .unwrap()
                .iter()
                .find(|(_, body)| body.contains(&format!("\"{service}\"")))
                .map(|(at, _)| *at);
            if let Some(at) = found {
                break at.duration_since(sent);
            }
            assert!(
                Instant::now() < deadline,
                "probe {probe}: no webhook within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        delivered.push(at_hook.as_secs_f64() * 1000.0);
    }
    for task in load {
        task.abort();
    }
    for (name, values) in [
        ("ack", &mut acked),
        ("alert_in_outbox", &mut enqueued),
        ("webhook_received", &mut delivered),
    ] {
        values.sort_by(f64::total_cmp);
        println!(
            "{name}_ms: p50 {:.1} p90 {:.1} max {:.1}",
            percentile(values, 0.5),
            percentile(values, 0.9),
            values[values.len() - 1]
        );
    }
    println!(
        "probes: {probes}, background: {agents} agents x {series} series per second ({} samples/s)",
        agents * series
    );
    collector.stop().await;
}
