//! Hostile clients against the storage side of a real collector, over mutual TLS on
//! 127.0.0.1: an agent sending one series at 1 ms spacing in the largest batches the limits
//! allow must not stall another agent's acknowledgements. Latencies are compared with each
//! other, never with a fixed time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_collector::store::Selector;
use vigil_proto::limits::MAX_SAMPLES_PER_BATCH;
use vigil_proto::pb;
use vigil_proto::pb::collector_message::Body;
use vigil_tests::{batch, connect, hello, now_ms, open_stream, Pki, RawStream, RunningCollector};

/// Batches a heavy agent sends: 40 × 50,000 samples (at 1 ms, about 33 minutes of data).
const HEAVY_BATCHES: u64 = 40;
/// Round trips the normal agent measures alone, and at most beside the dense one.
const ROUNDS: usize = 30;
/// How many times its latency alone the normal agent may wait while the dense one sends.
const MAX_SLOWDOWN: u32 = 8;

/// A raw agent stream for `host` that has said hello.
async fn agent(pki: &Pki, collector: &RunningCollector, host: &str) -> RawStream {
    let files = pki.issue_agent(host, host, "acme-dental");
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .expect("the agent connects");
    let stream = open_stream(channel).await.expect("the stream opens");
    stream.send(hello(1)).await;
    stream
}

/// One series, `MAX_SAMPLES_PER_BATCH` samples 1 ms apart from `start_ms`.
fn dense_batch(seq: u64, start_ms: i64) -> pb::AgentMessage {
    let samples = (0..MAX_SAMPLES_PER_BATCH as i64)
        .map(|i| pb::Sample {
            timestamp_ms: start_ms + i,
            // Values that do not compress to nothing, as a real fast counter's would not.
            value: ((start_ms + i) as f64 * 0.37).sin(),
        })
        .collect();
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: vec![pb::Series {
                name: "dense_metric".into(),
                labels: Vec::new(),
                samples,
            }],
            ..Default::default()
        })),
    }
}

/// Waits for the acknowledgement of `seq`.
async fn expect_ack(stream: &mut RawStream, seq: u64) {
    let reply = stream
        .next()
        .await
        .expect("the stream stays open")
        .expect("a reply");
    assert!(
        matches!(reply.body, Some(Body::Ack(pb::Ack { seq: acked })) if acked == seq),
        "expected the ack of {seq}, got {reply:?}"
    );
}

/// Sends one one-sample batch and waits for its acknowledgement; returns the round trip.
async fn round_trip(stream: &mut RawStream, seq: u64) -> Duration {
    let started = Instant::now();
    stream
        .send(batch(seq, "normal_metric", &[], now_ms(), seq as f64))
        .await;
    expect_ack(stream, seq).await;
    started.elapsed()
}

fn median(mut latencies: Vec<Duration>) -> Duration {
    assert!(!latencies.is_empty());
    latencies.sort();
    latencies[latencies.len() / 2]
}

/// Round trips of `normal` while `heavy` streams [`HEAVY_BATCHES`] batches made by `make`
/// (as fast as its stream takes them, reading its acknowledgements on the side); only rounds
/// that ended before the last heavy batch was acknowledged count.
async fn latencies_beside(
    normal: &mut RawStream,
    seq: &mut u64,
    heavy: RawStream,
    make: fn(u64, i64) -> pb::AgentMessage,
    alone: Duration,
) -> Vec<Duration> {
    let heavy_done = Arc::new(AtomicBool::new(false));
    let first_ms = now_ms() - 3 * 3_600_000;
    let RawStream {
        outbound,
        mut inbound,
    } = heavy;
    let sender = tokio::spawn(async move {
        for heavy_seq in 1..=HEAVY_BATCHES {
            let start_ms = first_ms + (heavy_seq as i64 - 1) * MAX_SAMPLES_PER_BATCH as i64;
            if outbound.send(make(heavy_seq, start_ms)).await.is_err() {
                break;
            }
        }
        outbound
    });
    let done = Arc::clone(&heavy_done);
    let receiver = tokio::spawn(async move {
        let mut n_acked = 0u64;
        while n_acked < HEAVY_BATCHES {
            let reply = tokio::time::timeout(Duration::from_secs(600), inbound.message())
                .await
                .expect("the heavy agent's batches are answered")
                .expect("the heavy stream stays open")
                .expect("a reply");
            match reply.body {
                Some(Body::Ack(_)) => n_acked += 1,
                other => panic!("the heavy agent got {other:?} instead of an ack"),
            }
        }
        done.store(true, Ordering::SeqCst);
        n_acked
    });
    let mut beside = Vec::new();
    // The rounds may take, all together, four times what they may take each: past that the
    // median is far too slow, and waiting for every heavy batch would only make the failure
    // late (the head before this fix took minutes).
    let budget = alone * MAX_SLOWDOWN * ROUNDS as u32 * 4;
    let mut spent = Duration::ZERO;
    for _ in 0..ROUNDS {
        *seq += 1;
        let latency = round_trip(normal, *seq).await;
        if heavy_done.load(Ordering::SeqCst) {
            break;
        }
        beside.push(latency);
        spent += latency;
        if spent > budget {
            eprintln!("the normal agent's round trips took {spent:?} beside the heavy agent, over {budget:?}");
            sender.abort();
            receiver.abort();
            return beside;
        }
    }
    let n_acked = receiver.await.expect("the heavy receiver");
    let _outbound = sender.await.expect("the heavy sender");
    assert_eq!(n_acked, HEAVY_BATCHES, "every heavy batch is acknowledged");
    assert!(
        beside.len() >= 5,
        "the normal agent measured only {} round trips while the heavy agent was sending",
        beside.len()
    );
    beside
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_timestamp_agent_does_not_stall_another_agents_acknowledgements() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let mut normal = agent(&pki, &collector, "pc-normal").await;

    let mut seq = 0;
    // Warm up the connection and the series, then measure the normal agent alone.
    for _ in 0..5 {
        seq += 1;
        round_trip(&mut normal, seq).await;
    }
    let mut alone = Vec::new();
    for _ in 0..ROUNDS {
        seq += 1;
        alone.push(round_trip(&mut normal, seq).await);
    }
    let dense = agent(&pki, &collector, "pc-dense").await;
    let alone = median(alone);
    let beside_dense =
        median(latencies_beside(&mut normal, &mut seq, dense, dense_batch, alone).await);

    eprintln!(
        "normal agent's median ack: alone {alone:?}, beside the dense agent {beside_dense:?}"
    );
    assert!(
        beside_dense <= alone * MAX_SLOWDOWN,
        "the normal agent's median ack took {beside_dense:?} beside the dense agent, {alone:?} alone (more than {MAX_SLOWDOWN} times)"
    );

    let stored = collector
        .store
        .select(&"dense_metric".parse::<Selector>().unwrap(), 0, i64::MAX)
        .unwrap();
    assert_eq!(
        stored[0].samples.len(),
        HEAVY_BATCHES as usize * MAX_SAMPLES_PER_BATCH
    );
    collector.stop().await;
}
