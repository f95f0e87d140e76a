//! An alert engine slower than ingest: many agents over real mutual TLS flood a collector
//! whose engine spends extra time on every batch, and every threshold crossing they sent is
//! judged and alerted; none is skipped because the engine fell behind.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::notify::outbox::Outbox;
use vigil_collector::serve::Collector;
use vigil_proto::pb;
use vigil_tests::*;

const AGENTS: usize = 16;
const BATCHES_PER_AGENT: u64 = 150;
/// What each stored batch costs the engine beyond its rules: with 2,400 batches, far
/// slower than ingest takes them (about ten seconds of judging).
const JUDGING_DELAY: Duration = Duration::from_millis(4);
/// Small, so that ingest waits for the engine many times during the flood.
const QUEUE_CAPACITY: usize = 64;

/// Every this many batches of an agent one reports a service down (a crossing of
/// `ServiceDown`'s threshold); the others report a service up.
const CROSSING_EVERY: u64 = 10;

/// The service a batch reports on, and whether it is down.
fn reported(seq: u64) -> (String, bool) {
    if seq.is_multiple_of(CROSSING_EVERY) {
        (format!("svc-{seq:03}"), true)
    } else {
        ("steady".to_string(), false)
    }
}

/// Sends `BATCHES_PER_AGENT` batches without waiting for acks and returns how many were
/// acked.
async fn flood(grpc: std::net::SocketAddr, files: AgentFiles, spool_id: u64) -> u64 {
    let channel = connect(grpc, &files.ca, Some(&files)).await.unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(spool_id)).await;
    let outbound = stream.outbound.clone();
    let sender = tokio::spawn(async move {
        for seq in 1..=BATCHES_PER_AGENT {
            let (service, down) = reported(seq);
            let value = if down { 0.0 } else { 1.0 };
            let message = batch(
                seq,
                "service_up",
                &[("service", service.as_str())],
                now_ms(),
                value,
            );
            outbound.send(message).await.expect("stream open");
        }
    });
    let mut acked = 0;
    while acked < BATCHES_PER_AGENT {
        let Ok(Some(reply)) = stream.next().await else {
            break;
        };
        match reply.body {
            Some(pb::collector_message::Body::Ack(_)) => acked += 1,
            Some(pb::collector_message::Body::Config(_)) => {}
            other => panic!("expected acks, got {other:?}"),
        }
    }
    sender.await.unwrap();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_faster_than_the_engine_judges_has_every_threshold_crossing_alerted() {
    let pki = Pki::new();
    std::fs::write(
        pki.path("rules.toml"),
        "[rules.ServiceDown]\nfor = \"0s\"\n[rules.ServiceFlapping]\nenabled = false\n",
    )
    .unwrap();
    // The channel's peer does not exist: deliveries wait in the outbox, which is what is
    // counted.
    let config = pki.collector_config_with(&format!(
        "[alerts]\nrules = \"rules.toml\"\nqueue_capacity = {QUEUE_CAPACITY}\n\
         [notify.routing]\non_call = [\"hook\"]\nnormal = [\"hook\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n"
    ));
    init();
    let shutdown = CancellationToken::new();
    let collector = Collector::bind(&config, shutdown.clone())
        .await
        .expect("collector binds")
        .with_judging_delay(JUDGING_DELAY);
    let grpc = collector.grpc_addr();
    let lag = collector.engine_lag();
    let serving = tokio::spawn(collector.run());

    let mut agents = Vec::new();
    for n in 0..AGENTS {
        let host = format!("pc-{n:02}");
        let files = pki.issue_agent(&host, &host, "acme");
        agents.push(tokio::spawn(flood(grpc, files, n as u64 + 1)));
    }
    let mut acked = 0;
    for agent in agents {
        acked += agent.await.unwrap();
    }
    assert_eq!(
        acked,
        AGENTS as u64 * BATCHES_PER_AGENT,
        "every batch acked"
    );
    assert!(
        lag.full_waits.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the engine was slower than ingest: ingest waited for it"
    );

    // A stop judges what was acknowledged before the engine saves and ends.
    shutdown.cancel();
    serving.await.unwrap().expect("collector stops cleanly");

    let outbox = Outbox::open(&config.data_dir).unwrap();
    let alerted: BTreeSet<(String, String)> = outbox
        .open_alerts()
        .unwrap()
        .into_iter()
        .filter(|(record, _)| record.alert.rule == "ServiceDown")
        .map(|(record, _)| {
            (
                record.alert.host.clone(),
                record
                    .alert
                    .labels
                    .get("service")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = (0..AGENTS)
        .flat_map(|n| {
            (1..=BATCHES_PER_AGENT)
                .filter(|seq| reported(*seq).1)
                .map(move |seq| (format!("pc-{n:02}"), reported(seq).0))
        })
        .collect();
    let missing: Vec<_> = expected.difference(&alerted).take(5).collect();
    assert_eq!(
        alerted.len(),
        expected.len(),
        "every crossing alerted; {} missing, e.g. {missing:?}",
        expected.len() - alerted.len().min(expected.len())
    );
    assert_eq!(lag.depth(), 0);
}
