//! The host page's charts beyond CPU, memory and filesystems, read from samples an agent
//! sent over mutual TLS to a collector run by the real `serve` code: disk I/O and network as
//! rates, temperatures, SMART sectors, a services up/down strip, and the engine's running
//! forecast written on the filesystem chart it concerns.

use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::Outbox;
use vigil_collector::serve::Collector;
use vigil_tests::*;

const PASSWORD: &str = "correct horse battery staple";

/// A metric, its labels, when and what.
type Sample = (&'static str, Vec<(&'static str, &'static str)>, i64, f64);

fn config(pki: &Pki) -> CollectorConfig {
    let text = "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n";
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_page_draws_disk_network_temperature_smart_services_and_the_forecast() {
    init();
    let pki = Pki::new();
    let config = config(&pki);
    Users::open(&config.data_dir)
        .unwrap()
        .add("ana", Role::Technician, None, Some(PASSWORD), 0)
        .unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::bind(&config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", collector.http().unwrap().local_addr());
    let grpc = collector.grpc_addr();
    let serving = tokio::spawn(collector.run());

    let files = pki.issue_agent("agent", "acme-srv01", "acme");
    let channel = connect(grpc, &files.ca, Some(&files)).await.unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    let now = now_ms();
    let samples: Vec<Sample> = vec![
        (
            "system_disk_io_bytes_total",
            vec![("device", "sda"), ("direction", "read")],
            now - 120_000,
            0.0,
        ),
        (
            "system_disk_io_bytes_total",
            vec![("device", "sda"), ("direction", "read")],
            now - 60_000,
            6_000_000.0,
        ),
        (
            "system_network_io_bytes_total",
            vec![("device", "eth0"), ("direction", "receive")],
            now - 120_000,
            0.0,
        ),
        (
            "system_network_io_bytes_total",
            vec![("device", "eth0"), ("direction", "receive")],
            now - 60_000,
            600_000.0,
        ),
        (
            "system_temperature_celsius",
            vec![("sensor", "cpu")],
            now - 60_000,
            61.0,
        ),
        (
            "disk_smart_reallocated_sectors",
            vec![("device", "sda")],
            now - 60_000,
            8.0,
        ),
        ("service_up", vec![("service", "pmsd")], now - 120_000, 1.0),
        ("service_up", vec![("service", "pmsd")], now - 60_000, 0.0),
        (
            "system_filesystem_usage_bytes",
            vec![("mountpoint", "C:"), ("state", "used")],
            now - 60_000,
            9e9,
        ),
        (
            "system_filesystem_limit_bytes",
            vec![("mountpoint", "C:")],
            now - 60_000,
            1e10,
        ),
    ];
    for (seq, (name, labels, at_ms, value)) in samples.into_iter().enumerate() {
        stream
            .send(batch(seq as u64 + 1, name, &labels, at_ms, value))
            .await;
        stream.next().await.unwrap().unwrap();
    }

    // The engine's forecast, as the open alert carries it.
    let mut record = open_emergency("00000000000000fc", "acme", "acme-srv01", now);
    record.alert.rule = "FilesystemFullForecast".into();
    record.alert.labels.insert("mountpoint".into(), "C:".into());
    record.alert.context.forecast = serde_json::from_value(json!({
        "time_left_ms": (3 * 24 + 4) * 3_600_000_i64 + 60_000,
        "soonest_ms": 2 * 86_400_000_i64,
        "latest_ms": 5 * 86_400_000_i64,
    }))
    .unwrap();
    record.alert.at_ms = now;
    Outbox::open(&config.data_dir)
        .unwrap()
        .put_open_alert(&record)
        .unwrap();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = http
        .post(format!("{base}/api/v1/sign-in"))
        .json(&json!({"name": "ana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let _: Value = response.json().await.unwrap();
    // The host is listed once its presence is written.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let answer = http
            .get(format!("{base}/api/v1/hosts/acme-srv01"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        if answer.status().is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = http
        .get(format!("{base}/hosts/acme-srv01?range=1h"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let figure = |title: &str| -> String {
        let at = page
            .find(&format!("<figcaption>{title}"))
            .unwrap_or_else(|| panic!("no chart '{title}' in {page}"));
        page[at..].split("</figure>").next().unwrap().to_string()
    };
    for title in ["Disk I/O", "Network", "Temperatures", "SMART sectors"] {
        let chart = figure(title);
        assert!(
            !chart.contains("no data in this window") && !chart.contains("data-points=\"0\""),
            "{title}: {chart}"
        );
    }
    // 6,000,000 bytes in 60 s: 100,000 per second (97.7 KiB), the axis' top just above.
    assert!(
        figure("Disk I/O").contains(">107 KiB<"),
        "{}",
        figure("Disk I/O")
    );
    let services = figure("Services");
    assert!(
        services.contains("class=\"up\" data-service=\"pmsd\""),
        "{services}"
    );
    assert!(
        services.contains("class=\"down\" data-service=\"pmsd\""),
        "{services}"
    );
    assert!(
        figure("Filesystem C:").contains("full in ~3 d 4 h"),
        "{}",
        figure("Filesystem C:")
    );
    assert!(page.contains("<h3>Past alerts</h3>"), "{page}");

    shutdown.cancel();
    serving.await.unwrap().unwrap();
}
