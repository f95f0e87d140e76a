//! Remote-write export end to end, without outside peers: a real collector (mutual TLS on
//! 127.0.0.1) exports to a small axum receiver that decodes snappy and protobuf as
//! Prometheus does. The receiver goes down (503) and comes back, the collector stops
//! cleanly and starts again, and every sample still arrives exactly once, in order per
//! series.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use vigil_proto::pb;
use vigil_proto::pb::collector_message::Body;
use vigil_tests::{connect, hello, now_ms, open_stream, Pki, RawStream, RunningCollector};

/// What the receiver got: per series (its labels, rendered), the samples in arrival order.
#[derive(Default)]
struct Receiver {
    series: Mutex<BTreeMap<String, Vec<(i64, f64)>>>,
    down: AtomicBool,
    refused_while_down: AtomicU64,
    malformed: Mutex<Vec<String>>,
}

impl Receiver {
    fn n_samples(&self) -> usize {
        self.series.lock().unwrap().values().map(Vec::len).sum()
    }
}

async fn write(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if receiver.down.load(Ordering::SeqCst) {
        receiver.refused_while_down.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    for (name, wanted) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ] {
        if header(name) != wanted {
            receiver
                .malformed
                .lock()
                .unwrap()
                .push(format!("header {name} is {:?}", header(name)));
            return StatusCode::BAD_REQUEST;
        }
    }
    let raw = match snap::raw::Decoder::new().decompress_vec(&body) {
        Ok(raw) => raw,
        Err(error) => {
            receiver.malformed.lock().unwrap().push(error.to_string());
            return StatusCode::BAD_REQUEST;
        }
    };
    let request = match vigil_proto::prompb::decode_write_request(&raw) {
        Ok(request) => request,
        Err(error) => {
            receiver.malformed.lock().unwrap().push(error);
            return StatusCode::BAD_REQUEST;
        }
    };
    let mut series = receiver.series.lock().unwrap();
    for timeseries in request.timeseries {
        let names: Vec<&str> = timeseries.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        if names != sorted {
            receiver
                .malformed
                .lock()
                .unwrap()
                .push(format!("labels not sorted: {names:?}"));
        }
        let key = timeseries
            .labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect::<Vec<_>>()
            .join(",");
        series
            .entry(key)
            .or_default()
            .extend(timeseries.samples.iter().map(|s| (s.timestamp, s.value)));
    }
    StatusCode::OK
}

async fn start_receiver() -> (SocketAddr, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/api/v1/write", post(write))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, receiver)
}

/// Sends batch `seq`: two series, `pressure{zone="a"}` and `pressure{zone="b"}`, one sample
/// each at `base_ms + seq` seconds, value `seq` (and `-seq`); waits for its ack.
async fn send_acknowledged(stream: &mut RawStream, seq: u64, base_ms: i64) {
    let series = |zone: &str, value: f64| pb::Series {
        name: "pressure".into(),
        labels: vec![pb::Label {
            name: "zone".into(),
            value: zone.into(),
        }],
        samples: vec![pb::Sample {
            timestamp_ms: timestamp_of(seq, base_ms),
            value,
        }],
    };
    stream
        .send(pb::AgentMessage {
            body: Some(pb::agent_message::Body::Batch(pb::Batch {
                seq,
                series: vec![series("a", seq as f64), series("b", -(seq as f64))],
                ..Default::default()
            })),
        })
        .await;
    for _ in 0..10 {
        let reply = stream.next().await.unwrap().unwrap();
        match reply.body {
            Some(Body::Ack(pb::Ack { seq: acked })) if acked == seq => return,
            Some(Body::Reject(reject)) => panic!("batch {seq} rejected: {reject:?}"),
            _ => {}
        }
    }
    panic!("no ack for batch {seq}");
}

fn timestamp_of(seq: u64, base_ms: i64) -> i64 {
    base_ms + seq as i64 * 1000
}

/// Waits (at most a minute, polling) until `done` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within a minute");
}

async fn agent_stream(pki: &Pki, collector: &RunningCollector) -> RawStream {
    let files = pki.issue_agent("agent", "plant-01", "acme-water");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let stream = open_stream(channel).await.unwrap();
    stream.send(hello(7)).await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_reaches_the_receiver_once_in_order_through_an_outage_and_a_clean_restart() {
    let (address, receiver) = start_receiver().await;
    let pki = Pki::new();
    let config = pki.collector_config_with(&format!(
        "[[remote_write]]\nname = \"test\"\nurl = \"http://{address}/api/v1/write\"\nshards = 2\nmax_samples_per_send = 7\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n"
    ));
    let base_ms = now_ms() - 3_600_000;

    // Up: the first batches arrive.
    let collector = RunningCollector::start(&config).await;
    let mut stream = agent_stream(&pki, &collector).await;
    for seq in 1..=20 {
        send_acknowledged(&mut stream, seq, base_ms).await;
    }
    wait_until("the first 40 samples arriving", || {
        receiver.n_samples() == 40
    })
    .await;

    // Down: ingest goes on, the exporter retries, nothing is lost.
    receiver.down.store(true, Ordering::SeqCst);
    for seq in 21..=40 {
        send_acknowledged(&mut stream, seq, base_ms).await;
    }
    wait_until("the exporter retrying against the 503s", || {
        receiver.refused_while_down.load(Ordering::SeqCst) >= 4
    })
    .await;
    receiver.down.store(false, Ordering::SeqCst);
    wait_until("the samples of the outage arriving", || {
        receiver.n_samples() == 80
    })
    .await;

    // Down again, and the collector stops cleanly with samples unsent.
    receiver.down.store(true, Ordering::SeqCst);
    for seq in 41..=60 {
        send_acknowledged(&mut stream, seq, base_ms).await;
    }
    drop(stream);
    collector.stop().await;
    assert_eq!(receiver.n_samples(), 80, "nothing arrives while it is down");

    // Started again: the unsent samples and the new ones arrive, and nothing sent before
    // the stop is sent twice.
    receiver.down.store(false, Ordering::SeqCst);
    let collector = RunningCollector::start(&config).await;
    let mut stream = agent_stream(&pki, &collector).await;
    for seq in 61..=70 {
        send_acknowledged(&mut stream, seq, base_ms).await;
    }
    wait_until("every sample arriving", || receiver.n_samples() >= 140).await;
    // A moment for a duplicate, if there were one, to arrive too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(stream);
    collector.stop().await;

    assert!(
        receiver.malformed.lock().unwrap().is_empty(),
        "{:?}",
        receiver.malformed.lock().unwrap()
    );
    let series = receiver.series.lock().unwrap();
    assert_eq!(series.len(), 2, "{:?}", series.keys().collect::<Vec<_>>());
    for (key, samples) in series.iter() {
        assert!(
            key.contains("__name__=pressure")
                && key.contains("client=acme-water")
                && key.contains("host=plant-01"),
            "{key}"
        );
        let sign = if key.contains("zone=a") { 1.0 } else { -1.0 };
        let expected: Vec<(i64, f64)> = (1..=70u64)
            .map(|seq| (timestamp_of(seq, base_ms), sign * seq as f64))
            .collect();
        assert_eq!(
            samples, &expected,
            "series {key}: each sample once, in order"
        );
    }
}

/// Sends batch `seq` of `n_series` series (`load{core="<i>"}`) with `n_samples` samples
/// each, one second apart from `base_ms`, numbered on from the previous batch; waits for
/// its ack.
async fn send_wide(
    stream: &mut RawStream,
    seq: u64,
    n_series: usize,
    n_samples: usize,
    base_ms: i64,
) {
    let series = (0..n_series)
        .map(|core| pb::Series {
            name: "load".into(),
            labels: vec![pb::Label {
                name: "core".into(),
                value: core.to_string(),
            }],
            samples: (0..n_samples)
                .map(|k| {
                    let index = (seq as usize - 1) * n_samples + k;
                    pb::Sample {
                        timestamp_ms: base_ms + index as i64 * 1000,
                        value: index as f64,
                    }
                })
                .collect(),
        })
        .collect();
    stream
        .send(pb::AgentMessage {
            body: Some(pb::agent_message::Body::Batch(pb::Batch {
                seq,
                series,
                ..Default::default()
            })),
        })
        .await;
    for _ in 0..10 {
        let reply = stream.next().await.unwrap().unwrap();
        match reply.body {
            Some(Body::Ack(pb::Ack { seq: acked })) if acked == seq => return,
            Some(Body::Reject(reject)) => panic!("batch {seq} rejected: {reject:?}"),
            _ => {}
        }
    }
    panic!("no ack for batch {seq}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_queue_bytes_the_oldest_unsent_samples_are_given_up_and_the_newest_arrive() {
    let (address, receiver) = start_receiver().await;
    receiver.down.store(true, Ordering::SeqCst);
    let pki = Pki::new();
    let config = pki.collector_config_with(&format!(
        "[[remote_write]]\nurl = \"http://{address}/api/v1/write\"\nshards = 1\nmax_queue_bytes = 1048576\nmin_backoff = \"20ms\"\nmax_backoff = \"50ms\"\n"
    ));
    let collector = RunningCollector::start(&config).await;
    let mut stream = agent_stream(&pki, &collector).await;
    // About 20 KB of log per batch: 80 of them are well past the 1 MiB bound, and ingest
    // acknowledges every one of them while the receiver is away.
    let (n_batches, n_series, n_samples) = (80u64, 100, 20);
    let base_ms = now_ms() - 3_600_000;
    for seq in 1..=n_batches {
        send_wide(&mut stream, seq, n_series, n_samples, base_ms).await;
    }
    wait_until("the exporter retrying against the 503s", || {
        receiver.refused_while_down.load(Ordering::SeqCst) >= 3
    })
    .await;
    receiver.down.store(false, Ordering::SeqCst);
    // One shard sends in log order: once the last batch's samples are there, all that was
    // kept has been sent.
    let last_timestamp = base_ms + ((n_batches as i64) * n_samples as i64 - 1) * 1000;
    wait_until("the newest batch arriving", || {
        receiver
            .series
            .lock()
            .unwrap()
            .values()
            .filter(|samples| samples.last().is_some_and(|s| s.0 == last_timestamp))
            .count()
            == n_series
    })
    .await;
    drop(stream);
    collector.stop().await;

    let series = receiver.series.lock().unwrap();
    assert_eq!(series.len(), n_series);
    let sent_per_series = n_batches as usize * n_samples;
    let received: usize = series.values().map(Vec::len).sum();
    assert!(
        received < sent_per_series * n_series,
        "some of the {} samples were given up, {received} arrived",
        sent_per_series * n_series
    );
    assert!(received > 0);
    for (key, samples) in series.iter() {
        // What arrives is the newest part, whole, in order, each sample once.
        let first = samples[0].0;
        let expected: Vec<i64> = (0..samples.len() as i64)
            .map(|i| first + i * 1000)
            .collect();
        let got: Vec<i64> = samples.iter().map(|s| s.0).collect();
        assert_eq!(got, expected, "series {key}");
        assert_eq!(*got.last().unwrap(), last_timestamp, "series {key}");
        assert!(got.len() < sent_per_series, "series {key} lost nothing?");
    }
}
