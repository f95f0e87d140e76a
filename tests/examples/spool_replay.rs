//! How fast an agent catches up after an outage: a spool holding `hours` of this machine's
//! real ticks at a 10 s interval (what the agent queues while the collector is away) is
//! replayed to a collector in this process over real mutual TLS on 127.0.0.1, until the
//! collector has stored and acknowledged every batch. Prints batches per second and how many
//! times faster than real time the outage is made up.
//!
//! cargo run --release -p vigil-tests --example spool_replay -- [hours]

use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vigil_agent::collect::HostCollector;
use vigil_agent::run::Agent;
use vigil_agent::spool::{Spool, SpoolLimits};
use vigil_collector::ingest::IngestEvent;
use vigil_tests::*;

const INTERVAL_MS: i64 = 10_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: i64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("hours: a whole number"))
        .unwrap_or(24);
    let ticks = (hours * 3_600_000 / INTERVAL_MS) as u64;
    let pki = Pki::new();
    let files = pki.issue_agent("agent", "srv-replay", "acme");

    // One real tick of this machine, repeated on the 10 s grid over the outage.
    let mut host = HostCollector::new();
    let now = now_ms() / INTERVAL_MS * INTERVAL_MS;
    let tick = host.collect(now);
    let series_per_tick = tick.len();
    let spool = Spool::open(&pki.path("spool"), SpoolLimits::default()).unwrap();
    let first = now - ticks as i64 * INTERVAL_MS;
    for n in 0..ticks {
        let timestamp_ms = first + n as i64 * INTERVAL_MS;
        let mut series = tick.clone();
        for one in &mut series {
            for sample in &mut one.samples {
                sample.timestamp_ms = timestamp_ms;
            }
        }
        spool.push(series);
    }
    let queued_bytes = spool.queued_bytes();
    println!(
        "spool: {ticks} batches ({hours} h at 10 s, {series_per_tick} series each), {:.1} MiB",
        queued_bytes as f64 / (1 << 20) as f64
    );

    let collector = RunningCollector::start(&pki.collector_config()).await;
    let mut events = collector.events.resubscribe();
    let counting = tokio::spawn(async move {
        let (mut stored, mut refused) = (0u64, 0u64);
        while stored + refused < ticks {
            match events.recv().await {
                Ok(IngestEvent::Stored { .. }) => stored += 1,
                Ok(IngestEvent::Rejected { .. }) => refused += 1,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("missed {n} ingest events")
                }
                Err(_) => break,
            }
        }
        (stored, refused)
    });
    // The agent's own ticks come an hour apart: what is measured is the backlog.
    let config = pki.agent_config(&files, collector.grpc, 3600);
    let agent = Agent::with_spool(config, spool);
    let spool = agent.spool();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(agent.run(shutdown.clone()));
    while !spool.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let (stored, refused) = counting.await.unwrap();
    assert_eq!((stored, refused), (ticks, 0), "every batch stored once");
    println!(
        "replayed in {elapsed:.1} s (connect and TLS included): {:.0} batches/s, {:.0} samples/s; \
         {hours} h of outage made up {:.0}× faster than real time",
        ticks as f64 / elapsed,
        (ticks * series_per_tick as u64) as f64 / elapsed,
        (ticks as f64 * INTERVAL_MS as f64 / 1000.0) / elapsed
    );
    collector.stop().await;
}
