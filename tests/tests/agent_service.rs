//! The agent as a real service: the collector away for a while, a spool that fills up, the
//! agent killed with SIGKILL in the middle of sending (at random, and certainly between the
//! collector storing a batch and the agent hearing the ack), the machine going to sleep, a
//! backup that finishes, and checks that cannot work on this machine.
//!
//! The real agent and the real collector talk over mutual TLS on 127.0.0.1 with a 1 s
//! collection interval. Waits are bounded by generous deadlines; what passes or fails is
//! what the collector stored, never how long something took.
//!
//! The backup metric following a touched file through an event rather than a poll is also
//! covered closer to the code by
//! `collect::backups::tests::touching_the_marker_file_updates_the_metric_through_an_event`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vigil_agent::run::{Agent, SPOOL_DROPPED_METRIC};
use vigil_agent::spool::{Spool, SpoolLimits};
use vigil_collector::config::CollectorConfig;
use vigil_collector::ingest::IngestEvent;
use vigil_collector::store::{SelectedSeries, Store};
use vigil_proto::model::GoodbyeReason;
use vigil_tests::{binary, Pki, RunningCollector};

/// Long enough for anything in these tests on a loaded machine; only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(120);

/// What the collectors of one test reported, in the order they reported it.
#[derive(Debug, Default)]
struct IngestLog {
    /// The sequence number of every batch stored, in the order stored.
    stored: Vec<u64>,
    /// Batches sent again and recognised as already stored.
    duplicates: Vec<u64>,
    /// Each goodbye heard, with the number of batches stored before it.
    goodbyes: Vec<(GoodbyeReason, usize)>,
    /// Whether the log missed events (then it cannot be trusted).
    lagged: bool,
}

type SharedLog = Arc<Mutex<IngestLog>>;

/// Appends what `collector` reports to `log` until the collector goes away.
fn record(collector: &RunningCollector, log: &SharedLog) {
    let mut events = collector.events.resubscribe();
    let log = log.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(IngestEvent::Stored { batch, .. }) => log.lock().unwrap().stored.push(batch.seq),
                Ok(IngestEvent::Duplicate { seq, .. }) => log.lock().unwrap().duplicates.push(seq),
                Ok(IngestEvent::Goodbye { reason, .. }) => {
                    let mut log = log.lock().unwrap();
                    let stored = log.stored.len();
                    log.goodbyes.push((reason, stored));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => log.lock().unwrap().lagged = true,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// A collector on `config` whose events are recorded from its start.
async fn start_recorded(config: &CollectorConfig) -> (RunningCollector, SharedLog) {
    let log = SharedLog::default();
    let collector = RunningCollector::start(config).await;
    record(&collector, &log);
    (collector, log)
}

fn n_stored(log: &SharedLog) -> usize {
    log.lock().unwrap().stored.len()
}

/// Waits until `condition` holds, failing the test with `what` after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let waiting = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(DEADLINE, waiting).await.is_err() {
        panic!("timed out waiting until {what}");
    }
}

fn select(store: &Store, selector: &str) -> Vec<SelectedSeries> {
    store
        .select(&selector.parse().expect("valid selector"), 0, i64::MAX)
        .expect("the store answers")
}

/// The one series `selector` names.
fn one_series(store: &Store, selector: &str) -> SelectedSeries {
    let mut found = select(store, selector);
    assert_eq!(found.len(), 1, "one series for {selector}: {found:?}");
    found.remove(0)
}

/// Sequence numbers of what a spool still holds, oldest first.
fn queued_seqs(spool: &Spool) -> Vec<u64> {
    spool
        .batches_after(0, usize::MAX)
        .iter()
        .map(|b| b.seq)
        .collect()
}

/// The newest sequence number a spool has handed out to a batch.
fn newest_seq(spool: &Spool) -> u64 {
    *spool.subscribe().borrow()
}

/// Timestamps of a series, checked to be strictly increasing (each tick stored once).
fn strictly_increasing_timestamps(series: &SelectedSeries) -> Vec<i64> {
    let timestamps: Vec<i64> = series.samples.iter().map(|s| s.timestamp_ms).collect();
    for pair in timestamps.windows(2) {
        assert!(
            pair[0] < pair[1],
            "a tick stored twice or out of order: {timestamps:?}"
        );
    }
    timestamps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_made_while_the_collector_is_down_arrive_exactly_once_and_in_order() {
    let pki = Pki::new();
    let mut config = pki.collector_config();
    let (collector, log) = start_recorded(&config).await;
    let grpc = collector.grpc;
    let files = pki.issue_agent("agent", "srv-outage", "acme-dental");
    let agent = Agent::new(pki.agent_config(&files, grpc, 1));
    let spool = agent.spool();
    let agent_shutdown = CancellationToken::new();
    let running_agent = tokio::spawn(agent.run(agent_shutdown.clone()));
    eventually("two batches are stored", || n_stored(&log) >= 2).await;

    collector.stop().await;
    let stored_before_outage = n_stored(&log);
    eventually("three batches wait in the spool", || spool.len() >= 3).await;
    let newest_during_outage = newest_seq(&spool);

    config.grpc.listen = grpc;
    let collector = RunningCollector::start(&config).await;
    record(&collector, &log);
    eventually(
        "everything made during the outage is stored and one more batch after it",
        || {
            log.lock()
                .unwrap()
                .stored
                .last()
                .is_some_and(|last| *last > newest_during_outage)
        },
    )
    .await;
    agent_shutdown.cancel();
    running_agent.await.unwrap().unwrap();

    // What was recorded so far; the recorders may go on appending to an empty log.
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.lagged, "the test saw every event");
    let still_queued = queued_seqs(&spool);
    let expected: Vec<u64> = (1..=newest_seq(&spool))
        .filter(|seq| !still_queued.contains(seq))
        .collect();
    assert_eq!(
        log.stored, expected,
        "every batch stored once, in order (duplicates refused: {:?})",
        log.duplicates
    );
    assert!(
        log.stored.len() >= stored_before_outage + 3,
        "{} batches stored, {stored_before_outage} before the outage",
        log.stored.len()
    );
    assert_eq!(spool.dropped_batches(), 0);

    // The store holds one sample per batch for every series, each tick once.
    let dropped = one_series(&collector.store, SPOOL_DROPPED_METRIC);
    assert_eq!(
        strictly_increasing_timestamps(&dropped).len(),
        log.stored.len()
    );
    assert!(
        dropped.samples.iter().all(|s| s.value == 0.0),
        "{dropped:?}"
    );
    let uptime = one_series(&collector.store, "system_uptime_seconds");
    assert_eq!(
        strictly_increasing_timestamps(&uptime).len(),
        log.stored.len()
    );
    println!(
        "outage: {} batches stored ({} before the outage, newest during it {}), {} replays refused",
        log.stored.len(),
        stored_before_outage,
        newest_during_outage,
        log.duplicates.len()
    );
    collector.stop().await;
}

/// The size one tick of this machine's host metrics takes in a spool.
async fn one_batch_bytes() -> u64 {
    let collected = tokio::task::spawn_blocking(|| vigil_agent::collect::collect_once("test"))
        .await
        .unwrap();
    let measure = Spool::open_temporary(SpoolLimits::default()).unwrap();
    measure.push(collected.series);
    measure.queued_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_batches_and_the_collector_learns_how_many() {
    let pki = Pki::new();
    let mut config = pki.collector_config();
    let (collector, log) = start_recorded(&config).await;
    let grpc = collector.grpc;
    let files = pki.issue_agent("agent", "srv-full", "acme-dental");
    // Room for about four ticks: the fifth tick of an outage makes the spool drop one.
    let max_bytes = 4 * one_batch_bytes().await;
    let spool = Spool::open(&pki.path("tiny-spool"), SpoolLimits { max_bytes }).unwrap();
    let agent = Agent::with_spool(pki.agent_config(&files, grpc, 1), spool);
    let spool = agent.spool();
    let agent_shutdown = CancellationToken::new();
    let running_agent = tokio::spawn(agent.run(agent_shutdown.clone()));
    eventually("a batch is stored", || n_stored(&log) >= 1).await;

    collector.stop().await;
    eventually("the full spool has dropped three batches", || {
        spool.dropped_batches() >= 3
    })
    .await;
    assert!(
        spool.queued_bytes() <= max_bytes,
        "{} > {max_bytes}",
        spool.queued_bytes()
    );

    config.grpc.listen = grpc;
    let collector = RunningCollector::start(&config).await;
    record(&collector, &log);
    // Until the agent's next reconnect attempt the spool may drop more; the collector gets
    // the count as it stands with the next batch after the last drop.
    eventually("the collector has the spool's count of drops", || {
        newest_value(&collector.store, SPOOL_DROPPED_METRIC) == Some(spool.dropped_batches() as f64)
    })
    .await;
    agent_shutdown.cancel();
    running_agent.await.unwrap().unwrap();
    let dropped = spool.dropped_batches();

    // What was recorded so far; the recorders may go on appending to an empty log.
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.lagged, "the test saw every event");
    for pair in log.stored.windows(2) {
        assert!(pair[0] < pair[1], "stored in order, once: {:?}", log.stored);
    }
    // What is missing is one run of consecutive batches, the oldest of the outage: every
    // batch before it was stored before the outage, every one after it since.
    let still_queued = queued_seqs(&spool);
    let missing: Vec<u64> = (1..=newest_seq(&spool))
        .filter(|seq| !log.stored.contains(seq) && !still_queued.contains(seq))
        .collect();
    assert!(!missing.is_empty(), "stored: {:?}", log.stored);
    assert_eq!(
        missing.last().unwrap() - missing.first().unwrap() + 1,
        missing.len() as u64,
        "the dropped batches are consecutive: {missing:?}"
    );
    assert!(
        log.stored.iter().any(|seq| seq < missing.first().unwrap()),
        "batches before the dropped ones were stored: {:?}",
        log.stored
    );
    // A batch in flight when the collector went away may have been stored without its ack
    // arriving; the spool then counts it among the dropped too.
    assert!(
        missing.len() as u64 <= dropped,
        "{missing:?} missing, {dropped} counted"
    );

    // The collector has the count, in the series every batch carries.
    let reported = one_series(&collector.store, SPOOL_DROPPED_METRIC);
    strictly_increasing_timestamps(&reported);
    let last = reported.samples.last().unwrap().value;
    assert_eq!(last, dropped as f64, "{reported:?}");
    assert_eq!(reported.labels.get("host"), Some("srv-full"));
    println!(
        "full spool: max {max_bytes} bytes, {dropped} batches dropped, {} missing ({}..={}), collector's last value {last}",
        missing.len(),
        missing.first().unwrap(),
        missing.last().unwrap()
    );
    collector.stop().await;
}

/// Starts `vigil-agent run --config <config>` with its stderr in `stderr_file`.
fn spawn_agent(config: &Path, stderr_file: &Path) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_file)
        .unwrap();
    Command::new(binary("vigil-agent"))
        .args(["run", "--config"])
        .arg(config)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("vigil-agent starts")
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// Asks the agent to stop with SIGTERM and waits for it, killing it after the deadline.
async fn terminate(mut child: Child) -> std::process::ExitStatus {
    send_signal(&child, "TERM");
    let waiting = async {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(DEADLINE, waiting).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill();
            panic!("the agent did not stop on SIGTERM");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_send_and_restarted_loses_nothing_acknowledged_and_stores_nothing_twice(
) {
    let pki = Pki::new();
    let (collector, log) = start_recorded(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "srv-killed", "acme-dental");
    let config = pki.agent_config_file(&files, collector.grpc, 1);
    let stderr_file = pki.path("agent-stderr.log");

    const KILLS: usize = 3;
    for _ in 0..KILLS {
        let child = spawn_agent(&config, &stderr_file);
        let before = n_stored(&log);
        eventually("the agent stores two more batches", || {
            n_stored(&log) >= before + 2
        })
        .await;
        // Right after the collector stored a batch its ack is on the way: kill the agent now,
        // before or after the ack lands.
        let mut child = child;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let child = spawn_agent(&config, &stderr_file);
    let before = n_stored(&log);
    eventually("the restarted agent stores three more batches", || {
        n_stored(&log) >= before + 3
    })
    .await;
    let exit = terminate(child).await;
    assert!(
        exit.success(),
        "the agent exits cleanly on SIGTERM: {exit:?}"
    );

    // What the agent's spool still holds after all that is what was never acknowledged.
    let spool = Spool::open(&pki.path("state").join("spool"), SpoolLimits::default()).unwrap();
    let still_queued = queued_seqs(&spool);
    assert_eq!(spool.dropped_batches(), 0);
    // A reopened spool knows only what it holds; the number the next batch would get tells
    // the newest one ever made.
    let newest = spool.push(Vec::new()) - 1;

    // What was recorded so far; the recorders may go on appending to an empty log.
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.lagged, "the test saw every event");
    let mut stored_sorted = log.stored.clone();
    stored_sorted.sort_unstable();
    stored_sorted.dedup();
    assert_eq!(
        stored_sorted.len(),
        log.stored.len(),
        "no batch stored twice: {:?}",
        log.stored
    );
    // Nothing lost: every batch the agent made is stored or still waiting in its spool.
    let lost: Vec<u64> = (1..=newest)
        .filter(|seq| !log.stored.contains(seq) && !still_queued.contains(seq))
        .collect();
    assert!(
        lost.is_empty(),
        "lost batches {lost:?}; stored {:?}",
        log.stored
    );
    assert!(stored_sorted.last().is_some_and(|last| *last <= newest));

    // Per series: one sample per stored batch, each tick once.
    for name in [SPOOL_DROPPED_METRIC, "system_uptime_seconds"] {
        let series = one_series(&collector.store, name);
        assert_eq!(
            strictly_increasing_timestamps(&series).len(),
            log.stored.len(),
            "{name}"
        );
    }
    println!(
        "killed {KILLS} times: {} batches stored, {} replays refused, {} left queued",
        log.stored.len(),
        log.duplicates.len(),
        still_queued.len()
    );
    collector.stop().await;
}

/// The systemd sleep hook sends SIGUSR1 before the machine sleeps and SIGUSR2 after it wakes
/// (the Windows service hears the same from the Service Control Manager's power events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_a_sleep_the_agent_says_goodbye_and_on_waking_sends_what_it_measured_meanwhile() {
    let pki = Pki::new();
    let (collector, log) = start_recorded(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "pc-reception", "acme-dental");
    let config = pki.agent_config_file(&files, collector.grpc, 1);
    let child = spawn_agent(&config, &pki.path("agent-stderr.log"));
    eventually("the agent stores two batches", || n_stored(&log) >= 2).await;

    send_signal(&child, "USR1");
    eventually("the collector hears a goodbye", || {
        !log.lock().unwrap().goodbyes.is_empty()
    })
    .await;
    let (reason, stored_before_goodbye) = log.lock().unwrap().goodbyes[0];
    assert_eq!(reason, GoodbyeReason::Sleep);
    // What the technician sees, from the running collector's files.
    let hosts_list = || {
        let output = Command::new(binary("vigil-collector"))
            .args(["hosts", "list", "--config"])
            .arg(pki.path("collector.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let status_of = |list: &str| {
        list.lines()
            .find(|line| line.starts_with("pc-reception "))
            .map(|line| line[45..].trim_start().to_string())
            .unwrap_or_default()
    };
    eventually("hosts list shows the machine asleep", || {
        status_of(&hosts_list()).starts_with("asleep since ")
    })
    .await;
    // Three ticks "asleep": the agent measures into its spool and sends nothing.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        n_stored(&log),
        stored_before_goodbye,
        "nothing is sent between the goodbye and the wake-up"
    );

    send_signal(&child, "USR2");
    eventually("the ticks measured asleep and new ones arrive", || {
        n_stored(&log) >= stored_before_goodbye + 5
    })
    .await;
    eventually("hosts list shows the machine online again", || {
        status_of(&hosts_list()).starts_with("online ")
    })
    .await;
    let exit = terminate(child).await;
    assert!(exit.success(), "the agent exits cleanly: {exit:?}");
    eventually("hosts list shows the agent stopped", || {
        status_of(&hosts_list()).starts_with("agent stopped since ")
    })
    .await;

    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.lagged, "the test saw every event");
    let reasons: Vec<GoodbyeReason> = log.goodbyes.iter().map(|(reason, _)| *reason).collect();
    assert_eq!(
        reasons,
        [GoodbyeReason::Sleep, GoodbyeReason::ServiceStop],
        "one goodbye for the sleep, one for the stop"
    );
    // Every batch once, in order, including those measured while the stream was closed.
    let expected: Vec<u64> = (1..=log.stored.len() as u64).collect();
    assert_eq!(log.stored, expected);
    let uptime = one_series(&collector.store, "system_uptime_seconds");
    assert_eq!(
        strictly_increasing_timestamps(&uptime).len(),
        log.stored.len()
    );
    collector.stop().await;
}

/// A TCP relay between agent and collector that can hold back, on the connections open at
/// the time, everything the collector sends: the batches still arrive and are stored, their
/// acks never reach the agent. TLS passes through untouched.
struct AckHoldingRelay {
    addr: std::net::SocketAddr,
    connections: Arc<Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl AckHoldingRelay {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let registry = connections.clone();
        tokio::spawn(async move {
            while let Ok((agent, _)) = listener.accept().await {
                let Ok(collector) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let hold = Arc::new(AtomicBool::new(false));
                registry.lock().unwrap().push(hold.clone());
                let (mut agent_read, mut agent_write) = agent.into_split();
                let (mut collector_read, mut collector_write) = collector.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut agent_read, &mut collector_write).await;
                });
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let n = match collector_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if hold.load(Ordering::SeqCst) {
                            continue; // swallowed: the agent never hears of it
                        }
                        if agent_write.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, connections }
    }

    /// From now on the collector's replies on every open connection are dropped.
    fn hold_open_connections(&self) {
        for hold in self.connections.lock().unwrap().iter() {
            hold.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The worst moment for a kill, made certain: batches the collector has stored whose acks the
/// agent never received. The restarted agent sends them again; the collector recognises them
/// and stores nothing twice, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_after_the_collector_stored_but_before_the_ack_arrived_resends_and_nothing_is_stored_twice(
) {
    let pki = Pki::new();
    let (collector, log) = start_recorded(&pki.collector_config()).await;
    let relay = AckHoldingRelay::start(collector.grpc).await;
    let files = pki.issue_agent("agent", "srv-unacked", "acme-dental");
    let config = pki.agent_config_file(&files, relay.addr, 1);
    let stderr_file = pki.path("agent-stderr.log");

    let mut child = spawn_agent(&config, &stderr_file);
    eventually("the agent stores two batches", || n_stored(&log) >= 2).await;
    relay.hold_open_connections();
    // A batch stored just before the hold may still have had its ack through; the recorder
    // is a moment behind the collector. Count only what was stored a second after it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_at_most = n_stored(&log);
    eventually("two more batches are stored, unacknowledged", || {
        n_stored(&log) >= acked_at_most + 2
    })
    .await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let stored_unacked: Vec<u64> = log.lock().unwrap().stored[acked_at_most..].to_vec();

    let child = spawn_agent(&config, &stderr_file);
    eventually(
        "the restarted agent resends what was never acknowledged",
        || {
            let log = log.lock().unwrap();
            stored_unacked
                .iter()
                .all(|seq| log.duplicates.contains(seq))
        },
    )
    .await;
    let before = n_stored(&log);
    eventually("the restarted agent stores new batches", || {
        n_stored(&log) >= before + 2
    })
    .await;
    let exit = terminate(child).await;
    assert!(exit.success(), "the agent exits cleanly: {exit:?}");

    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.lagged, "the test saw every event");
    // Every batch once, in order: the resent ones were refused as duplicates.
    let expected: Vec<u64> = (1..=log.stored.len() as u64).collect();
    assert_eq!(
        log.stored, expected,
        "duplicates refused: {:?}",
        log.duplicates
    );
    let uptime = one_series(&collector.store, "system_uptime_seconds");
    assert_eq!(
        strictly_increasing_timestamps(&uptime).len(),
        log.stored.len()
    );
    println!(
        "{} batches stored, {} of them stored but unacknowledged at the kill and refused when resent",
        log.stored.len(),
        stored_unacked.len()
    );
    collector.stop().await;
}

#[test]
fn a_config_naming_an_unknown_check_is_refused_in_one_line_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "collector = \"https://127.0.0.1:7443\"\n[tls]\ncert = \"a.pem\"\nkey = \"a-key.pem\"\nca = \"ca.pem\"\n[checks.raid]\nenabled = true\n",
    )
    .unwrap();
    let output = Command::new(binary("vigil-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains("agent.toml:6:"), "{}", errors[0]);
    assert!(errors[0].contains("unknown field `raid`"), "{}", errors[0]);
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The newest value of `selector` in the store, if any.
fn newest_value(store: &Store, selector: &str) -> Option<f64> {
    let found = select(store, selector);
    found.first()?.samples.last().map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_cannot_work_are_named_once_with_the_fix_and_the_others_keep_reporting() {
    let pki = Pki::new();
    let collector = RunningCollector::start(&pki.collector_config()).await;
    let files = pki.issue_agent("agent", "srv-checks", "acme-dental");
    let config = pki.agent_config_file(&files, collector.grpc, 1);

    // A backup marker last written a day ago.
    let marker = pki.path("nightly.done");
    std::fs::write(&marker, "ok\n").unwrap();
    let a_day_ago = SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&marker)
        .unwrap()
        .set_modified(a_day_ago)
        .unwrap();
    // A log "file" that is a folder, and a smartctl that is not there.
    let not_a_log = pki.path("not-a-log");
    std::fs::create_dir(&not_a_log).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[checks.smart]\nsmartctl = \"/nonexistent/smartctl\"\n\
         [[checks.backup]]\njob = \"nightly\"\npath = {marker:?}\n\
         [[checks.log]]\nname = \"app\"\npath = {not_a_log:?}\npatterns = {{ error = \"ERROR\" }}\n"
    ));
    std::fs::write(&config, text).unwrap();

    let stderr_file = pki.path("agent-stderr.log");
    let child = spawn_agent(&config, &stderr_file);
    let backup = r#"backup_last_success_timestamp_seconds{job="nightly"}"#;
    eventually("the backup job is reported", || {
        newest_value(&collector.store, backup).is_some()
    })
    .await;
    let reported = newest_value(&collector.store, backup).unwrap();
    assert!(
        (reported - unix_seconds(a_day_ago)).abs() < 1.0,
        "{reported}"
    );

    // The backup finishes: the marker is written. The agent's periodic rescan is minutes
    // away, so only the file event can bring the new time within the deadline below.
    let touched_at = SystemTime::now();
    std::fs::write(&marker, "ok again\n").unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while newest_value(&collector.store, backup).unwrap() < unix_seconds(touched_at) - 1.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the touched marker is reported through its file event");

    // Host metrics keep flowing beside the broken checks.
    let uptime_before = one_series(&collector.store, "system_uptime_seconds")
        .samples
        .len();
    eventually("two more ticks of host metrics are stored", || {
        one_series(&collector.store, "system_uptime_seconds")
            .samples
            .len()
            >= uptime_before + 2
    })
    .await;
    let exit = terminate(child).await;
    assert!(exit.success(), "{exit:?}");

    assert!(select(&collector.store, r#"log_matches_total{log="app"}"#).is_empty());
    assert!(select(&collector.store, "disk_smart_healthy").is_empty());
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    let smart: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("/nonexistent/smartctl"))
        .collect();
    assert_eq!(smart.len(), 1, "named once, not every tick: {stderr}");
    assert!(smart[0].contains("checks.smart.smartctl"), "{}", smart[0]);
    assert!(
        smart[0].contains("install smartmontools or fix the path"),
        "{}",
        smart[0]
    );
    let log_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&*not_a_log.to_string_lossy()))
        .collect();
    assert_eq!(log_lines.len(), 1, "named once, not every tick: {stderr}");
    assert!(
        log_lines[0].contains("checks.log path must name a log file"),
        "{}",
        log_lines[0]
    );
    collector.stop().await;
}
