//! Crash test of the store: a child process appends batches under load from several writer
//! threads, printing each (writer, seq) the moment `Store::append` acknowledges it, and is
//! killed with SIGKILL at a random moment; the parent then opens the store and checks that
//! it opens as it is (no quarantine, no error) and that every acknowledged sample is there,
//! exactly once, with its value. Then the child resumes where the store says each writer
//! stopped, and is killed again.
//!
//! The child is this same test binary, run with `--ignored --exact` on
//! `child_appends_until_killed` and the store's folder in an environment variable.
//!
//! `cargo test` runs 20 short rounds. For a long run:
//!
//! ```sh
//! VIGIL_CRASH_ROUNDS=500 VIGIL_CRASH_MAX_RUN_MS=3000 \
//!     cargo test --release -p vigil-collector --test store_crash -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_collector::store::{AppendOutcome, SeriesSamples, Store, StoreConfig, WriterId};
use vigil_proto::model::{Labels, Sample};

const CHILD_DIR_ENV: &str = "VIGIL_CRASH_CHILD_DIR";
const N_WRITERS: u64 = 4;
const N_SERIES: u64 = 5;
const SAMPLES_PER_SERIES: i64 = 3;
/// Each seq moves a writer's clock a minute on, so runs cross many two-hour windows and
/// checkpoints seal while the child is killed.
const SEQ_SPACING_MS: i64 = 60_000;
const START_MS: i64 = 1_700_000_000_000;

fn store_config(dir: &Path) -> StoreConfig {
    StoreConfig {
        // Checkpoints often, and a small head, so that sealing, trimming and early sealing
        // all happen during the runs.
        checkpoint_interval: Duration::from_millis(50),
        head_max_bytes: 64 * 1024,
        cache_capacity_bytes: 8 << 20,
        ..StoreConfig::new(dir)
    }
}

fn writer(index: u64) -> WriterId {
    WriterId {
        host: format!("w{index}"),
        spool_id: 1,
    }
}

fn labels(writer_index: u64, series_index: u64) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("crash_m{series_index}")),
        ("host", format!("w{writer_index}")),
    ])
}

/// The samples batch `seq` of a writer holds for one series: known from the numbers alone.
fn expected_samples(writer_index: u64, seq: u64, series_index: u64) -> Vec<Sample> {
    (0..SAMPLES_PER_SERIES)
        .map(|k| Sample {
            timestamp_ms: START_MS + seq as i64 * SEQ_SPACING_MS + k * 1000,
            value: (writer_index * 1_000_000 + seq * 100 + series_index * 10) as f64
                + k as f64 * 0.25,
        })
        .collect()
}

fn batch(writer_index: u64, seq: u64) -> Vec<SeriesSamples> {
    (0..N_SERIES)
        .map(|series_index| SeriesSamples {
            labels: labels(writer_index, series_index),
            samples: expected_samples(writer_index, seq, series_index),
        })
        .collect()
}

/// The child: appends from every writer until killed, printing `ack <writer> <seq>` for
/// each acknowledged batch. Does nothing unless the parent asked for it.
#[test]
#[ignore = "run by crash_test_every_acknowledged_sample_survives_sigkill as its child"]
fn child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = Store::open(&store_config(Path::new(&dir))).expect("the store opens");
    assert!(
        store.quarantined_to().is_none(),
        "the store needed quarantine"
    );
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for writer_index in 0..N_WRITERS {
            let store = store.clone();
            let stdout = &stdout;
            scope.spawn(move || {
                let writer = writer(writer_index);
                let last = store.last_seq(&writer).expect("last seq");
                // Resend the last batch, as an agent does after a reconnect: a duplicate.
                if last > 0 {
                    let outcome = store
                        .append(&writer, last, &batch(writer_index, last))
                        .unwrap();
                    assert_eq!(outcome, AppendOutcome::Duplicate);
                }
                for seq in last + 1.. {
                    store
                        .append(&writer, seq, &batch(writer_index, seq))
                        .expect("append");
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "ack {writer_index} {seq}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs the child for a while, kills it, and returns the highest seq acknowledged per writer.
fn run_and_kill(dir: &Path, run_for: Duration) -> BTreeMap<u64, u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_appends_until_killed",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
        // A line cut by the kill has no newline; `lines` still yields it, so parse strictly.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split(' ');
            if let (Some("ack"), Some(w), Some(s), None) =
                (words.next(), words.next(), words.next(), words.next())
            {
                if let (Ok(w), Ok(s)) = (w.parse::<u64>(), s.parse::<u64>()) {
                    let entry = acked.entry(w).or_default();
                    *entry = (*entry).max(s);
                }
            }
        }
        acked
    });
    std::thread::sleep(run_for);
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no goodbye.
    child.kill().expect("kill the child");
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn crash_test_every_acknowledged_sample_survives_sigkill() {
    let rounds = env_number("VIGIL_CRASH_ROUNDS", 20);
    let max_run_ms = env_number("VIGIL_CRASH_MAX_RUN_MS", 400);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Xorshift::from_clock();
    // The highest seq each writer has had acknowledged, over all rounds.
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let started = Instant::now();
    for round in 1..=rounds {
        let run_for = Duration::from_millis(max_run_ms / 4 + rng.next() % (max_run_ms * 3 / 4 + 1));
        for (writer_index, seq) in run_and_kill(dir.path(), run_for) {
            let entry = acked.entry(writer_index).or_default();
            *entry = (*entry).max(seq);
        }
        verify(dir.path(), &acked, round);
    }
    let total: u64 = acked.values().sum();
    assert!(total > 0, "the child never acknowledged anything");
    eprintln!(
        "{rounds} kills, {total} batches acknowledged, all present once, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Opens the store as a restarted collector would and checks every acknowledged batch.
fn verify(dir: &Path, acked: &BTreeMap<u64, u64>, round: u64) {
    let store = Store::open(&store_config(dir))
        .unwrap_or_else(|error| panic!("round {round}: the store does not open: {error}"));
    assert!(
        store.quarantined_to().is_none(),
        "round {round}: the store needed quarantine"
    );
    for (&writer_index, &max_acked) in acked {
        let last_seq = store.last_seq(&writer(writer_index)).unwrap();
        assert!(
            last_seq >= max_acked,
            "round {round}: writer {writer_index} acknowledged seq {max_acked} but the store's last seq is {last_seq}"
        );
        for series_index in 0..N_SERIES {
            let selector =
                vigil_collector::store::Selector::metric(format!("crash_m{series_index}"))
                    .with_label("host", format!("w{writer_index}"));
            let selected = store.select(&selector, i64::MIN, i64::MAX).unwrap();
            let stored: Vec<Sample> = selected
                .into_iter()
                .flat_map(|series| series.samples)
                .collect();
            // Batches after the last acknowledged one may be stored too (durable, then killed
            // before the ack was printed); the store's last seq says how far, and every batch
            // up to it must be there, once.
            let expected: Vec<Sample> = (1..=last_seq)
                .flat_map(|seq| expected_samples(writer_index, seq, series_index))
                .collect();
            assert_eq!(
                stored.len(),
                expected.len(),
                "round {round}: writer {writer_index} series {series_index}: {} samples stored, {} expected ({max_acked} batches acknowledged, last seq {last_seq})",
                stored.len(),
                expected.len()
            );
            assert!(
                stored == expected,
                "round {round}: writer {writer_index} series {series_index}: samples differ"
            );
        }
    }
}

/// A small random source for kill times, seeded from the clock (no dependency for it).
struct Xorshift(u64);

impl Xorshift {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
