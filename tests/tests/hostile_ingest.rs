//! A hostile client on the real protocol, and real agents, against the real collector over
//! mutual TLS on 127.0.0.1: what one certificate holder — or one unlucky machine — must not
//! be able to do to the collector or to the other agents.
//!
//! Index: revocation reaches connections opened before it; idle connections are capped
//! and closed while a real agent still gets in; the series limit holds per host across
//! reconnects and restarts; no batch is acknowledged without being stored (impossible
//! sequence numbers, a restored state folder, a cloned machine); a revoked agent stops
//! knocking; samples older than the raw retention are refused.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vigil_agent::run::Agent;
use vigil_collector::enroll::registry::Registry;
use vigil_collector::ingest::IngestEvent;
use vigil_proto::pb;
use vigil_proto::pb::collector_message::Body;
use vigil_tests::{
    batch, connect, hello, hello_with_next_seq, now_ms, open_stream, Pki, RawStream,
    RunningCollector,
};

/// How long any wait in these tests may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `condition` holds, failing the test with `what` after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let waiting = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(DEADLINE, waiting).await.is_err() {
        panic!("timed out waiting until {what}");
    }
}

fn counter(collector: &RunningCollector, name: &str) -> u64 {
    collector
        .counters
        .get(name)
        .unwrap_or_else(|| panic!("no ingest counter named {name}"))
}

/// A batch of `n` series named `{prefix}_{i}`, one sample each at `timestamp_ms`.
fn wide_batch(seq: u64, prefix: &str, n: usize, timestamp_ms: i64) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: (0..n)
                .map(|i| pb::Series {
                    name: format!("{prefix}_{i}"),
                    labels: vec![],
                    samples: vec![pb::Sample {
                        timestamp_ms,
                        value: i as f64,
                    }],
                })
                .collect(),
            ..Default::default()
        })),
    }
}

/// Opens a new connection and stream for `files`, says hello and sends `message`; returns
/// the collector's answer.
async fn send_on_new_connection(
    collector: &RunningCollector,
    files: &vigil_tests::AgentFiles,
    hello_message: pb::AgentMessage,
    message: pb::AgentMessage,
) -> Body {
    let channel = connect(collector.grpc, &files.ca, Some(files))
        .await
        .expect("connects");
    let mut stream = open_stream(channel).await.expect("stream opens");
    stream.send(hello_message).await;
    stream.send(message).await;
    answer(&mut stream).await
}

async fn answer(stream: &mut RawStream) -> Body {
    stream
        .next()
        .await
        .expect("an answer, not an error")
        .expect("an answer, not the end of the stream")
        .body
        .expect("a message with a body")
}

fn series_of(collector: &RunningCollector, selector: &str) -> usize {
    collector
        .store
        .select(&selector.parse().expect("selector"), 0, i64::MAX)
        .expect("the store answers")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_streams_on_a_connection_opened_before_revocation_are_refused_and_it_is_closed() {
    let pki = Pki::new();
    let config = pki.collector_config();
    let collector = RunningCollector::start(&config).await;
    let files = pki.issue_agent("agent", "laptop-7", "acme");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut first = open_stream(channel.clone()).await.unwrap();
    first.send(hello(1)).await;
    first
        .send(batch(1, "system_uptime_seconds", &[], now_ms(), 1.0))
        .await;
    assert!(matches!(answer(&mut first).await, Body::Ack(_)));

    Registry::open(&config.data_dir)
        .unwrap()
        .revoke("laptop-7", now_ms())
        .unwrap();
    let revoked_at = Instant::now();
    // What a hostile holder of the certificate does: keep opening streams on the connection
    // it already has, a batch on each.
    let mut seq = 2;
    let mut acked_after_refusal = Vec::new();
    let mut first_refusal = None;
    while revoked_at.elapsed() < Duration::from_secs(20) {
        let answer = match open_stream(channel.clone()).await {
            Err(status) => Err(status),
            Ok(mut stream) => {
                stream.send(hello(1)).await;
                stream
                    .send(batch(seq, "system_uptime_seconds", &[], now_ms(), 1.0))
                    .await;
                stream.next().await
            }
        };
        match answer {
            Ok(Some(pb::CollectorMessage {
                body: Some(Body::Ack(_)),
            })) if first_refusal.is_some() => acked_after_refusal.push(seq),
            Ok(_) => {}
            Err(status) => {
                first_refusal.get_or_insert((revoked_at.elapsed(), status));
                if counter(&collector, "connections_closed_revoked") > 0 {
                    break;
                }
            }
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (refused_after, status) = first_refusal.expect("the revoked host is refused");
    println!("revoked host refused {refused_after:?} after the revocation; its status: {status}");
    assert!(
        acked_after_refusal.is_empty(),
        "batches acknowledged after the host was refused: {acked_after_refusal:?}"
    );
    assert!(
        counter(&collector, "connections_closed_revoked") >= 1,
        "the connection itself is closed"
    );
    assert!(
        refused_after < Duration::from_secs(5),
        "refused long after the revocation: {refused_after:?}"
    );
    // Reconnecting does not help: every stream is refused as revoked.
    let reconnected = match connect(collector.grpc, &files.ca, Some(&files)).await {
        Err(_) => false,
        Ok(channel) => match open_stream(channel).await {
            Err(_) => false,
            Ok(mut stream) => {
                stream.send(hello(1)).await;
                stream.next().await.is_ok()
            }
        },
    };
    assert!(!reconnected, "a revoked certificate gets no stream");
    assert!(counter(&collector, "streams_refused_revoked") >= 1);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_caps_are_refused_while_a_real_agent_still_connects() {
    let pki = Pki::new();
    let config = pki.collector_config_with(
        "[limits]\nmax_connections = 8\nmax_connections_per_host = 4\nidle_timeout = \"10m\"\n",
    );
    let mut collector = RunningCollector::start(&config).await;
    // Three certificate holders open ten connections each and never use them.
    let mut held = Vec::new();
    for host in ["idler-1", "idler-2", "idler-3"] {
        let files = pki.issue_agent(host, host, "acme");
        for _ in 0..10 {
            held.push(connect(collector.grpc, &files.ca, Some(&files)).await);
        }
    }
    eventually(
        "every connection of the idlers is admitted or refused",
        || counter(&collector, "connections_refused_per_host_cap") >= 18,
    )
    .await;
    println!(
        "ingest counters with the idlers connected: {:?}",
        collector.counters.snapshot()
    );
    // Twelve were admitted one host at a time; past eight, the idlest made room. (tonic may
    // reconnect a closed channel on its own: at least, not exactly.)
    assert!(counter(&collector, "connections_evicted_idle") >= 4);
    let evicted_before_agent = counter(&collector, "connections_evicted_idle");

    let files = pki.issue_agent("agent", "web-01", "acme");
    let agent = Agent::open(pki.agent_config(&files, collector.grpc, 1)).expect("agent opens");
    let agent_shutdown = CancellationToken::new();
    let running_agent = tokio::spawn(agent.run(agent_shutdown.clone()));
    let mut stored = 0;
    let waiting = async {
        while stored < 2 {
            if let Ok(IngestEvent::Stored { peer, .. }) = collector.events.recv().await {
                if peer.host == "web-01" {
                    stored += 1;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("the real agent's batches are stored and acknowledged");
    assert!(
        counter(&collector, "connections_evicted_idle") > evicted_before_agent,
        "the agent got in by closing an idle connection"
    );
    assert_eq!(counter(&collector, "connections_refused_total_cap"), 0);
    agent_shutdown.cancel();
    running_agent.await.unwrap().unwrap();
    drop(held);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_connection_without_a_stream_is_closed_after_the_idle_timeout() {
    let pki = Pki::new();
    let collector =
        RunningCollector::start(&pki.collector_config_with("[limits]\nidle_timeout = \"1s\"\n"))
            .await;
    let files = pki.issue_agent("idler", "idler", "acme");
    let _channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    eventually("the idle connection is closed", || {
        counter(&collector, "connections_closed_idle") == 1
    })
    .await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_spread_over_reconnects_and_a_restart_are_refused_past_the_per_host_limit() {
    let pki = Pki::new();
    let config = pki.collector_config();
    let collector = RunningCollector::start(&config).await;
    let files = pki.issue_agent("spreader", "spreader", "acme");
    // 4,000 new series per connection, each connection a fresh stream: the default limit is
    // 10,000 per host.
    for (seq, prefix) in [(1, "a"), (2, "b")] {
        let answer = send_on_new_connection(
            &collector,
            &files,
            hello(5),
            wide_batch(seq, prefix, 4_000, now_ms()),
        )
        .await;
        assert!(matches!(answer, Body::Ack(_)), "{answer:?}");
    }
    let answer = send_on_new_connection(
        &collector,
        &files,
        hello(5),
        wide_batch(3, "c", 4_000, now_ms()),
    )
    .await;
    let Body::Reject(reject) = answer else {
        panic!("the third spread batch is refused: {answer:?}");
    };
    assert!(
        reject.reason.contains("limits.max_series_per_host = 10000"),
        "{}",
        reject.reason
    );
    assert_eq!(series_of(&collector, r#"{host="spreader"}"#), 8_000);
    assert_eq!(counter(&collector, "batches_refused_series_per_host"), 1);
    collector.stop().await;

    // After a restart the host's series are counted again from the store.
    let collector = RunningCollector::start(&config).await;
    let answer = send_on_new_connection(
        &collector,
        &files,
        hello(5),
        wide_batch(4, "d", 4_000, now_ms()),
    )
    .await;
    assert!(matches!(answer, Body::Reject(_)), "{answer:?}");
    // Known series cost nothing.
    let answer = send_on_new_connection(
        &collector,
        &files,
        hello(5),
        wide_batch(5, "a", 4_000, now_ms()),
    )
    .await;
    assert!(matches!(answer, Body::Ack(_)), "{answer:?}");
    assert_eq!(series_of(&collector, r#"{host="spreader"}"#), 8_000);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_sequence_number_is_refused_and_later_batches_are_still_stored() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-seq", "acme");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(7)).await;
    let t0 = now_ms() - 10_000;
    stream.send(batch(1, "probe", &[], t0, 1.0)).await;
    assert!(matches!(answer(&mut stream).await, Body::Ack(_)));
    stream
        .send(batch(u64::MAX, "probe", &[], t0 + 1_000, 2.0))
        .await;
    let Body::Reject(reject) = answer(&mut stream).await else {
        panic!("seq = u64::MAX is refused");
    };
    assert!(reject.reason.contains("impossible"), "{}", reject.reason);
    stream.send(batch(2, "probe", &[], t0 + 2_000, 3.0)).await;
    assert!(matches!(answer(&mut stream).await, Body::Ack(_)));

    // A hello that says the next number: a batch numbered far past it is refused too.
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello_with_next_seq(8, 4)).await;
    stream.send(batch(3, "probe", &[], t0 + 3_000, 4.0)).await;
    assert!(matches!(answer(&mut stream).await, Body::Ack(_)));
    stream
        .send(batch(10_000_000, "probe", &[], t0 + 4_000, 5.0))
        .await;
    assert!(matches!(answer(&mut stream).await, Body::Reject(_)));

    let stored = collector
        .store
        .select(&r#"probe{host="pc-seq"}"#.parse().unwrap(), 0, i64::MAX)
        .unwrap();
    let values: Vec<f64> = stored[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        vec![1.0, 3.0, 4.0],
        "every acknowledged batch is stored"
    );
    assert_eq!(counter(&collector, "batches_refused_impossible_seq"), 2);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_machine_writing_under_the_same_spool_gets_a_spool_conflict_not_an_ack() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-clone", "acme");
    let mut events = collector.events.resubscribe();
    let t0 = now_ms() - 10_000;
    let mut original = open_stream(
        connect(collector.grpc, &files.ca, Some(&files))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    original.send(hello_with_next_seq(9, 1)).await;
    for seq in 1..=2 {
        original
            .send(batch(seq, "probe", &[], t0 + seq as i64, 1.0))
            .await;
        assert!(matches!(answer(&mut original).await, Body::Ack(_)));
    }
    // The clone was imaged after batch 2 and comes up with the same spool.
    let mut clone = open_stream(
        connect(collector.grpc, &files.ca, Some(&files))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    clone.send(hello_with_next_seq(9, 3)).await;
    // The collector has taken the clone's hello (connections 1 and 2 both said hello) before
    // the original goes on.
    let mut connected = 0;
    let waiting = async {
        while connected < 2 {
            if let Ok(IngestEvent::Connected { .. }) = events.recv().await {
                connected += 1;
            }
        }
    };
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("both hellos are taken");
    original.send(batch(3, "probe", &[], t0 + 3, 1.0)).await;
    assert!(matches!(answer(&mut original).await, Body::Ack(_)));
    // The clone's own batch 3 is not the original's: no ack for a batch not stored.
    clone.send(batch(3, "probe", &[], t0 + 3, 2.0)).await;
    let Body::SpoolConflict(conflict) = answer(&mut clone).await else {
        panic!("the clone is told to start a new spool");
    };
    assert_eq!((conflict.spool_id, conflict.stored_seq), (9, 3));
    assert_eq!(counter(&collector, "spool_conflicts"), 1);
    collector.stop().await;
}

/// Copies a folder tree (the agent's state folder, as a backup would).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[derive(Default)]
struct Seen {
    stored: usize,
    duplicates: Vec<u64>,
}

/// Runs the agent until the collector has stored `n` more of its batches, then stops it.
async fn run_agent_until_stored(
    config: &vigil_agent::config::AgentConfig,
    seen: &Arc<Mutex<Seen>>,
    n: usize,
) {
    let before = seen.lock().unwrap().stored;
    let agent = Agent::open(config.clone()).expect("the agent opens its spool");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(agent.run(shutdown.clone()));
    eventually("the agent's batches are stored", || {
        seen.lock().unwrap().stored >= before + n
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_state_folder_was_restored_from_a_backup_has_its_new_batches_stored() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut events = collector.events.resubscribe();
    let recorder = seen.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(IngestEvent::Stored { .. }) => recorder.lock().unwrap().stored += 1,
                Ok(IngestEvent::Duplicate { seq, .. }) => {
                    recorder.lock().unwrap().duplicates.push(seq)
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let files = pki.issue_agent("agent", "srv-restored", "acme");
    let config = pki.agent_config(&files, collector.grpc, 1);
    let state = config.spool_dir().parent().unwrap().to_path_buf();

    run_agent_until_stored(&config, &seen, 2).await;
    let backup = pki.path("state-backup");
    copy_tree(&state, &backup);
    run_agent_until_stored(&config, &seen, 4).await;
    // The machine is restored from last night's backup.
    std::fs::remove_dir_all(&state).unwrap();
    copy_tree(&backup, &state);
    let before_restore = seen.lock().unwrap().duplicates.len();
    let stored_before = seen.lock().unwrap().stored;
    run_agent_until_stored(&config, &seen, 3).await;

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        seen.duplicates[before_restore..],
        [] as [u64; 0],
        "new batches of the restored agent were taken for duplicates and dropped"
    );
    assert_eq!(counter(&collector, "spool_conflicts"), 1);
    let uptime = collector
        .store
        .select(
            &r#"system_uptime_seconds{host="srv-restored"}"#.parse().unwrap(),
            0,
            i64::MAX,
        )
        .unwrap();
    println!(
        "{} batches stored before the restore, {} after, {} samples of uptime",
        stored_before,
        seen.stored - stored_before,
        uptime[0].samples.len()
    );
    assert_eq!(
        uptime[0].samples.len(),
        seen.stored,
        "one uptime sample per stored batch"
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_recognises_it_and_stops_knocking_every_half_second() {
    let pki = Pki::new();
    let config = pki.collector_config();
    let files = pki.issue_agent("agent", "laptop-9", "acme");
    Registry::open(&config.data_dir)
        .unwrap()
        .revoke("laptop-9", now_ms())
        .unwrap();
    // The collector loads the list at start; a certificate issued before is refused.
    let collector = RunningCollector::start(&config).await;
    let agent = Agent::open(pki.agent_config(&files, collector.grpc, 1)).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(agent.run(shutdown.clone()));
    eventually("the agent is refused once", || {
        counter(&collector, "streams_refused_revoked") >= 1
    })
    .await;
    // Before, it came back after half a second, one, two…; now it waits minutes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(counter(&collector, "streams_refused_revoked"), 1);
    // Enrolled again (a new certificate in the same files): it reports without waiting out
    // the minutes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut events = collector.events.resubscribe();
    pki.issue_agent("agent", "laptop-9", "acme");
    let stored = async {
        loop {
            if let Ok(IngestEvent::Stored { peer, .. }) = events.recv().await {
                if peer.host == "laptop-9" {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, stored)
        .await
        .expect("the re-enrolled agent reports");
    shutdown.cancel();
    running.await.unwrap().unwrap();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_older_than_the_raw_retention_are_refused_with_the_reason() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-1971", "acme");
    let answer = send_on_new_connection(
        &collector,
        &files,
        hello(3),
        batch(1, "system_uptime_seconds", &[], 31_536_000_000, 1.0),
    )
    .await;
    let Body::Reject(reject) = answer else {
        panic!("a sample from 1971 is refused: {answer:?}");
    };
    assert!(
        reject.reason.contains("store.raw_retention = 30days"),
        "{}",
        reject.reason
    );
    assert_eq!(series_of(&collector, r#"{host="pc-1971"}"#), 0);
    assert_eq!(counter(&collector, "batches_refused_too_old"), 1);
    collector.stop().await;
}
