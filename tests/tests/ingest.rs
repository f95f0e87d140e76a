//! The agent and the collector together over real mutual TLS on 127.0.0.1: what arrives,
//! under which identity, and what is refused.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_agent::run::Agent;
use vigil_collector::ingest::IngestEvent;
use vigil_collector::store::Selector;
use vigil_proto::pb;
use vigil_proto::pb::collector_message::Body;
use vigil_tests::{batch, connect, hello, now_ms, open_stream, Pki, RunningCollector};

/// Waits for an event that satisfies `wanted`, failing the test after a minute.
async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<IngestEvent>,
    mut wanted: impl FnMut(&IngestEvent) -> bool,
) -> IngestEvent {
    let waiting = async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("event stream ended: {error}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the event arrives within a minute")
}

fn selector(text: &str) -> Selector {
    text.parse().expect("valid selector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_samples_are_stored_under_the_host_and_client_of_its_certificate() {
    let pki = Pki::new();
    let mut collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "web-01", "acme-dental");
    let agent = Agent::new(pki.agent_config(&files, collector.grpc, 1));
    let agent_shutdown = CancellationToken::new();
    let running_agent = tokio::spawn(agent.run(agent_shutdown.clone()));

    let connected = wait_for(&mut collector.events, |e| {
        matches!(e, IngestEvent::Connected { .. })
    })
    .await;
    let IngestEvent::Connected { inventory, .. } = connected else {
        unreachable!()
    };
    assert!(!inventory.os_name.is_empty(), "the inventory names the OS");
    assert!(inventory.memory_bytes > 0);
    for _ in 0..2 {
        wait_for(&mut collector.events, |e| {
            matches!(e, IngestEvent::Stored { .. })
        })
        .await;
    }
    agent_shutdown.cancel();
    running_agent.await.unwrap().unwrap();
    let goodbye = wait_for(&mut collector.events, |e| {
        matches!(e, IngestEvent::Goodbye { .. })
    })
    .await;
    assert!(matches!(goodbye, IngestEvent::Goodbye { peer, .. } if peer.host == "web-01"));

    let found = collector
        .store
        .select(
            &selector("system_cpu_utilization_ratio"),
            0,
            now_ms() + 60_000,
        )
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].labels.get("host"), Some("web-01"));
    assert_eq!(found[0].labels.get("client"), Some("acme-dental"));
    assert!(found[0].samples.len() >= 2, "{found:?}");
    for sample in &found[0].samples {
        assert!((0.0..=1.0).contains(&sample.value), "{sample:?}");
        assert_eq!(
            sample.timestamp_ms % 1000,
            0,
            "ticks land on the 1 s grid: {sample:?}"
        );
    }
    let filesystems = collector
        .store
        .select(
            &selector(r#"system_filesystem_limit_bytes{host="web-01"}"#),
            0,
            i64::MAX,
        )
        .unwrap();
    assert!(
        !filesystems.is_empty(),
        "at least one filesystem is reported"
    );
    let record = collector
        .store
        .host_record("web-01")
        .unwrap()
        .expect("host record");
    assert_eq!(record["client"], "acme-dental");
    collector.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    // With TLS 1.3 the server's refusal reaches the client after its handshake completes,
    // so it shows at the connect or at the first call, as a transport error.
    let refused = match connect(collector.grpc, &pki.path("ca.pem"), None).await {
        Err(_) => true,
        Ok(channel) => match open_stream(channel).await {
            Err(status) => {
                assert_ne!(status.code(), tonic::Code::Ok);
                true
            }
            Ok(mut stream) => {
                stream.send(hello(1)).await;
                stream.next().await.is_err()
            }
        },
    };
    assert!(
        refused,
        "a client without a certificate must not get a stream"
    );
    assert!(collector.store.host_records().unwrap().is_empty());
    collector.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let stranger = Pki::new();
    let stranger_files = stranger.issue_agent("stranger", "web-01", "acme-dental");
    // The stranger trusts the real collector's CA, but its own certificate is from elsewhere.
    let files = vigil_tests::AgentFiles {
        ca: pki.path("ca.pem"),
        ..stranger_files
    };
    let refused = match connect(collector.grpc, &files.ca, Some(&files)).await {
        Err(_) => true,
        Ok(channel) => match open_stream(channel).await {
            Err(_) => true,
            Ok(mut stream) => {
                stream.send(hello(1)).await;
                stream.send(batch(1, "m", &[], now_ms(), 1.0)).await;
                stream.next().await.is_err()
            }
        },
    };
    assert!(
        refused,
        "a certificate from another CA must not get a stream"
    );
    assert!(collector.store.host_records().unwrap().is_empty());
    collector.stop().await;
}

#[tokio::test]
async fn a_batch_claiming_another_host_is_refused_and_never_stored_under_it() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-07", "acme-dental");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(42)).await;
    let now = now_ms();
    stream
        .send(batch(
            1,
            "system_uptime_seconds",
            &[("host", "srv-01")],
            now,
            5.0,
        ))
        .await;
    let reply = stream.next().await.unwrap().unwrap();
    let Some(Body::Reject(reject)) = reply.body else {
        panic!("expected a reject, got {reply:?}")
    };
    assert_eq!(reject.seq, 1);
    assert!(reject.reason.contains("certificate"), "{}", reject.reason);

    // The stream goes on, and a clean batch is stored under the certificate's host.
    stream
        .send(batch(2, "system_uptime_seconds", &[], now, 6.0))
        .await;
    let reply = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(reply.body, Some(Body::Ack(pb::Ack { seq: 2 }))),
        "{reply:?}"
    );

    let all = collector
        .store
        .select(&selector("system_uptime_seconds"), 0, i64::MAX)
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].labels.get("host"), Some("pc-07"));
    assert_eq!(all[0].samples.len(), 1);
    let claimed = collector
        .store
        .select(&selector(r#"{host="srv-01"}"#), 0, i64::MAX)
        .unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    drop(stream);
    collector.stop().await;
}

#[tokio::test]
async fn a_replayed_batch_is_stored_once() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-08", "acme-dental");
    let now = now_ms();
    for _attempt in 0..2 {
        // Same spool, same seq, on a fresh connection: as after a lost ack.
        let channel = connect(collector.grpc, &files.ca, Some(&files))
            .await
            .unwrap();
        let mut stream = open_stream(channel).await.unwrap();
        stream.send(hello(7)).await;
        stream
            .send(batch(1, "service_up", &[("service", "sshd")], now, 1.0))
            .await;
        let reply = stream.next().await.unwrap().unwrap();
        assert!(
            matches!(reply.body, Some(Body::Ack(pb::Ack { seq: 1 }))),
            "{reply:?}"
        );
    }
    let stored = collector
        .store
        .select(&selector("service_up"), 0, i64::MAX)
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].samples.len(), 1, "{stored:?}");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_batches_are_refused_while_other_agents_keep_reporting() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let good = pki.issue_agent("good", "pc-01", "acme-dental");
    let bad = pki.issue_agent("bad", "pc-02", "acme-dental");
    let mut good_stream = open_stream(
        connect(collector.grpc, &good.ca, Some(&good))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    good_stream.send(hello(1)).await;
    let mut bad_stream = open_stream(connect(collector.grpc, &bad.ca, Some(&bad)).await.unwrap())
        .await
        .unwrap();
    bad_stream.send(hello(1)).await;
    let now = now_ms();

    // Malformed: the agent is told why, and its stream stays open.
    bad_stream
        .send(batch(1, "bad metric name", &[], now, 1.0))
        .await;
    let reply = bad_stream.next().await.unwrap().unwrap();
    let Some(Body::Reject(reject)) = reply.body else {
        panic!("expected a reject, got {reply:?}")
    };
    assert!(reject.reason.contains("metric name"), "{}", reject.reason);

    // A sample from an hour in the future: refused with the reason.
    bad_stream
        .send(batch(2, "m", &[], now + 3_600_000, 1.0))
        .await;
    let reply = bad_stream.next().await.unwrap().unwrap();
    let Some(Body::Reject(reject)) = reply.body else {
        panic!("expected a reject, got {reply:?}")
    };
    assert!(reject.reason.contains("clock"), "{}", reject.reason);

    // Oversized: over the message limit, the stream ends with an error naming the size.
    let huge_value = "x".repeat(vigil_proto::limits::MAX_MESSAGE_BYTES + 1);
    bad_stream
        .send(batch(3, "m", &[("job", huge_value.as_str())], now, 1.0))
        .await;
    let status = bad_stream
        .next()
        .await
        .expect_err("an oversized message ends the stream");
    assert!(
        status.message().contains("message refused") && status.message().contains("4194304"),
        "{status:?}"
    );

    // Meanwhile the other agent is served as usual.
    for seq in 1..=3 {
        good_stream
            .send(batch(
                seq,
                "system_uptime_seconds",
                &[],
                now + seq as i64 * 1000,
                1.0,
            ))
            .await;
        let reply = good_stream.next().await.unwrap().unwrap();
        assert!(
            matches!(reply.body, Some(Body::Ack(pb::Ack { seq: s })) if s == seq),
            "{reply:?}"
        );
    }
    let bad_series = collector
        .store
        .select(&selector(r#"{host="pc-02"}"#), 0, i64::MAX)
        .unwrap();
    assert!(bad_series.is_empty(), "{bad_series:?}");
    drop(good_stream);
    drop(bad_stream);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_resends_what_was_not_acknowledged_after_the_collector_restarts() {
    let pki = Pki::new();
    let config = pki.collector_config();
    let mut collector = RunningCollector::start(&config).await;
    let grpc = collector.grpc;
    let files = pki.issue_agent("agent", "srv-01", "acme-dental");
    let agent = Agent::new(pki.agent_config(&files, grpc, 1));
    let spool = agent.spool();
    let agent_shutdown = CancellationToken::new();
    let running_agent = tokio::spawn(agent.run(agent_shutdown.clone()));
    wait_for(&mut collector.events, |e| {
        matches!(e, IngestEvent::Stored { .. })
    })
    .await;
    collector.stop().await;

    // While the collector is away, batches pile up in the agent's spool.
    let waiting = async {
        while spool.len() < 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .unwrap();

    // The same collector comes back on the same port with the same store.
    let mut config = config;
    config.grpc.listen = grpc;
    let mut collector = RunningCollector::start(&config).await;
    let waiting = async {
        while !spool.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .expect("the agent empties its spool after reconnecting");
    agent_shutdown.cancel();
    running_agent.await.unwrap().unwrap();
    wait_for(&mut collector.events, |e| {
        matches!(e, IngestEvent::Goodbye { .. })
    })
    .await;

    // Every tick is there exactly once: timestamps are distinct and on the 1 s grid.
    let uptime = collector
        .store
        .select(&selector("system_uptime_seconds"), 0, i64::MAX)
        .unwrap();
    assert_eq!(uptime.len(), 1);
    let timestamps: Vec<i64> = uptime[0].samples.iter().map(|s| s.timestamp_ms).collect();
    let mut unique = timestamps.clone();
    unique.dedup();
    assert_eq!(unique, timestamps, "no tick stored twice");
    assert!(timestamps.len() >= 4, "{timestamps:?}");
    collector.stop().await;
}
