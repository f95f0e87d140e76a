//! The load generator against real receivers on 127.0.0.1: a few simulated agents on the
//! real collector over mutual TLS (what they were told is acknowledged is in the store), a
//! replayed backlog, and the remote-write form of the same load against an HTTP receiver
//! that decodes every request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vigil_collector::store::Selector;
use vigil_loadgen::certs::{fleet_identities, host_and_client, AgentIdentity};
use vigil_loadgen::fleet::{self, FleetSettings, Report, Target};
use vigil_proto::prompb;
use vigil_tests::{Pki, RunningCollector};

fn settings(target: Target, agents: usize, duration: Duration) -> FleetSettings {
    FleetSettings {
        target,
        agents,
        series: 100,
        interval: Duration::from_secs(1),
        duration,
        spread: Duration::from_secs(1),
        backlog: Duration::ZERO,
        drain: Duration::from_secs(20),
        receiver_pid: Some(std::process::id()),
        receiver_data_dir: None,
        warmup: Duration::from_secs(1),
        progress_every: None,
        record_acked: true,
    }
}

async fn run_against_collector(
    pki: &Pki,
    collector: &RunningCollector,
    mut settings: FleetSettings,
) -> Report {
    settings.receiver_data_dir = Some(pki.path("data"));
    let identities = fleet_identities(pki.dir.path(), &pki.path("cert-cache"), settings.agents)
        .expect("fleet certificates");
    let ca_pem = identities.ca_pem.clone();
    settings.target = Target::Vigil {
        url: format!("https://{}", collector.grpc),
        ca_dir: pki.dir.path().to_path_buf(),
        cert_cache: pki.path("cert-cache"),
        server_name: None,
    };
    fleet::run(settings, identities.agents, ca_pem, identities.issued_now)
        .await
        .expect("the fleet runs")
}

fn placeholder_target() -> Target {
    Target::RemoteWrite { url: String::new() }
}

fn stored_samples(collector: &RunningCollector, host: &str) -> usize {
    let selector: Selector = format!("{{host=\"{host}\"}}").parse().expect("selector");
    collector
        .store
        .select(&selector, 0, i64::MAX)
        .expect("store reads")
        .iter()
        .map(|series| series.samples.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_a_small_fleet_sends_is_acknowledged_stored_and_reported() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let report = run_against_collector(
        &pki,
        &collector,
        settings(placeholder_target(), 3, Duration::from_secs(3)),
    )
    .await;

    assert_eq!(report.agents, 3);
    assert_eq!(report.agents_acknowledged, 3);
    assert!(report.sent_samples >= 3 * 2 * 100, "{report:?}");
    assert_eq!(report.acked_samples, report.sent_samples);
    assert_eq!(report.rejected_samples, 0);
    assert_eq!(report.unacknowledged_batches, 0);
    assert_eq!(report.ack_latency_ms.count, report.acked_batches);
    let latency = &report.ack_latency_ms;
    assert!(0.0 < latency.p50 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    let after_warmup = &report.ack_latency_after_warmup_ms;
    assert!(0 < after_warmup.count && after_warmup.count < latency.count);
    let cost = report
        .collector
        .as_ref()
        .expect("the receiver was measured");
    assert!(cost.peak_rss_bytes > 0);
    assert!(cost.disk_bytes_end.unwrap() > 0);
    assert!(report.loadgen.peak_rss_bytes > 0);
    for agent in &report.per_agent {
        assert_eq!(agent.acked_samples, agent.sent_samples, "{agent:?}");
        assert_eq!(
            agent.acked_timestamps_ms.len() as u64,
            agent.acked_batches,
            "one recorded timestamp per acknowledged tick: {agent:?}"
        );
        assert_eq!(
            stored_samples(&collector, &agent.host) as u64,
            agent.acked_samples,
            "{}",
            agent.host
        );
    }
    // The JSON names the report documents.
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "agents",
        "sent_samples",
        "acked_samples",
        "rejected_samples",
    ] {
        assert!(json[key].is_u64(), "{key}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(json["ack_latency_ms"][key].is_f64(), "{key}");
    }
    assert!(json["collector"]["cpu_seconds"].is_f64());
    assert!(json["collector"]["peak_rss_bytes"].is_u64());
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_replayed_before_the_live_ticks_and_stored_in_full() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let mut settings = settings(placeholder_target(), 2, Duration::from_secs(2));
    settings.backlog = Duration::from_secs(120);
    settings.receiver_pid = None;
    let report = run_against_collector(&pki, &collector, settings).await;

    assert!(report.collector.is_none());
    // 120 past ticks per agent, then the live ones.
    for agent in &report.per_agent {
        assert!(agent.sent_batches > 120, "{agent:?}");
        assert_eq!(agent.acked_batches, agent.sent_batches, "{agent:?}");
        assert_eq!(agent.unsent_ticks, 0);
        assert_eq!(
            stored_samples(&collector, &agent.host) as u64,
            agent.acked_samples
        );
    }
    collector.stop().await;
}

/// A remote-write receiver that decodes every body and counts samples per host.
async fn remote_write_receiver() -> (String, Arc<AtomicU64>, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::body::Bytes;
    use prost::Message;
    let samples = Arc::new(AtomicU64::new(0));
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = {
        let samples = samples.clone();
        let hosts = hosts.clone();
        axum::Router::new().route(
            "/api/v1/write",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let samples = samples.clone();
                let hosts = hosts.clone();
                async move {
                    assert_eq!(headers["content-encoding"], "snappy");
                    let raw = snap::raw::Decoder::new()
                        .decompress_vec(&body)
                        .expect("snappy body");
                    let request = prompb::WriteRequest::decode(raw.as_slice()).expect("protobuf");
                    for series in &request.timeseries {
                        samples.fetch_add(series.samples.len() as u64, Ordering::Relaxed);
                        if let Some(host) = series.labels.iter().find(|l| l.name == "host") {
                            hosts.lock().unwrap().push(host.value.clone());
                        }
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/api/v1/write"), samples, hosts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_load_as_remote_write_arrives_whole_at_the_receiver() {
    vigil_tests::init();
    let (url, received, hosts) = remote_write_receiver().await;
    let agents = 3;
    let names: Vec<AgentIdentity> = (0..agents).map(AgentIdentity::named).collect();
    let mut settings = settings(Target::RemoteWrite { url }, agents, Duration::from_secs(3));
    settings.receiver_data_dir = Some(PathBuf::from("/nonexistent-by-design"));
    let report = fleet::run(settings, names, String::new(), 0)
        .await
        .expect("the fleet runs");

    assert_eq!(report.target, "prometheus-remote-write");
    assert!(report.sent_samples >= 3 * 2 * 100, "{report:?}");
    assert_eq!(report.acked_samples, report.sent_samples);
    assert_eq!(received.load(Ordering::Relaxed), report.acked_samples);
    let hosts = hosts.lock().unwrap();
    for index in 0..agents {
        assert!(hosts.contains(&host_and_client(index).0));
    }
    assert_eq!(report.collector.unwrap().disk_growth_bytes, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_that_loses_its_collector_mid_run_reconnects_and_every_ack_is_stored_once() {
    let pki = Pki::new();
    // A fixed port, so that the restarted collector is where the agents look for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "data_dir = \"data\"\n[grpc]\nlisten = \"127.0.0.1:{port}\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n"
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    let config = vigil_collector::config::CollectorConfig::load(&path).unwrap();
    let first = RunningCollector::start(&config).await;

    let identities = fleet_identities(pki.dir.path(), &pki.path("cert-cache"), 2).unwrap();
    let mut settings = settings(placeholder_target(), 2, Duration::from_secs(6));
    settings.receiver_pid = None;
    settings.target = Target::Vigil {
        url: format!("https://127.0.0.1:{port}"),
        ca_dir: pki.dir.path().to_path_buf(),
        cert_cache: pki.path("cert-cache"),
        server_name: None,
    };
    let fleet = tokio::spawn(fleet::run(
        settings,
        identities.agents,
        identities.ca_pem,
        identities.issued_now,
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = RunningCollector::start(&config).await;
    let report = fleet.await.unwrap().expect("the fleet runs");

    assert!(report.reconnects >= 2, "{report:?}");
    assert!(report.sent_samples >= 2 * 4 * 100, "{report:?}");
    assert_eq!(report.acked_samples, report.sent_samples, "{report:?}");
    assert_eq!(report.unacknowledged_batches, 0);
    for agent in &report.per_agent {
        assert_eq!(
            stored_samples(&second, &agent.host) as u64,
            agent.acked_samples,
            "{}: stored once each",
            agent.host
        );
    }
    second.stop().await;
}
