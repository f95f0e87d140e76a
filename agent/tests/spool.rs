//! The spool as the agent's restarts see it: what was pushed and not acknowledged is still
//! there after the spool is closed and opened again, under the same id, with numbering that
//! goes on; acknowledged batches stay gone; a full spool drops its oldest batches and the
//! count of them outlives the process.

use std::path::Path;
use vigil_agent::spool::{Spool, SpoolLimits};
use vigil_proto::model::{Labels, Sample, Series};

fn seqs(spool: &Spool) -> Vec<u64> {
    spool
        .batches_after(0, usize::MAX)
        .iter()
        .map(|batch| batch.seq)
        .collect()
}

/// The `n`th tick's worth of series, about `n_series` × 50 bytes once encoded.
fn tick(n_series: usize, n: i64) -> Vec<Series> {
    let timestamp_ms = 1_754_000_000_000 + n * 10_000;
    (0..n_series)
        .map(|index| Series {
            name: "system_filesystem_usage_bytes".into(),
            labels: Labels::from_pairs([("mountpoint", format!("/mnt/{index}"))]),
            samples: vec![Sample {
                timestamp_ms,
                value: index as f64,
            }],
        })
        .collect()
}

fn open(dir: &Path) -> Spool {
    Spool::open(dir, SpoolLimits::default()).expect("spool opens")
}

#[test]
fn a_reopened_spool_keeps_its_id_its_batches_and_its_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let (spool_id, pushed) = {
        let spool = open(dir.path());
        let pushed: Vec<_> = (0..3)
            .map(|n| {
                spool.push(tick(5, n));
                spool.batches_after(0, usize::MAX).pop().unwrap()
            })
            .collect();
        (spool.spool_id(), pushed)
    };

    let spool = open(dir.path());
    assert_eq!(spool.spool_id(), spool_id);
    assert_eq!(spool.batches_after(0, usize::MAX), pushed);
    assert_eq!(spool.push(tick(5, 3)), 4);
}

#[test]
fn numbering_goes_on_after_everything_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        for n in 0..5 {
            spool.push(tick(1, n));
        }
        spool.ack(5);
        assert!(spool.is_empty());
    }
    let spool = open(dir.path());
    assert!(spool.is_empty());
    // Starting again at 1 under the same id would be taken by the collector for a replay.
    assert_eq!(spool.push(tick(1, 5)), 6);
}

#[test]
fn acknowledged_batches_stay_released_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path());
        for n in 0..5 {
            spool.push(tick(2, n));
        }
        spool.ack(3);
        spool.discard(5);
        assert_eq!(seqs(&spool), [4]);
    }
    let spool = open(dir.path());
    assert_eq!(seqs(&spool), [4]);
    assert_eq!(spool.len(), 1);
    assert_eq!(spool.dropped_batches(), 0);
}

#[test]
fn a_full_spool_drops_the_oldest_and_the_count_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = {
        let probe = Spool::open_temporary(SpoolLimits::default()).unwrap();
        probe.push(tick(20, 0));
        probe.queued_bytes()
    };
    // Room for three batches of this size, not four.
    let limits = SpoolLimits {
        max_bytes: batch_bytes * 3 + batch_bytes / 2,
    };
    {
        let spool = Spool::open(dir.path(), limits).unwrap();
        for n in 0..5 {
            spool.push(tick(20, n));
        }
        assert_eq!(seqs(&spool), [3, 4, 5]);
        assert_eq!(spool.dropped_batches(), 2);
        assert!(spool.queued_bytes() <= limits.max_bytes);
    }
    let spool = Spool::open(dir.path(), limits).unwrap();
    assert_eq!(seqs(&spool), [3, 4, 5]);
    assert_eq!(spool.dropped_batches(), 2);
    spool.push(tick(20, 5));
    assert_eq!(seqs(&spool), [4, 5, 6]);
    assert_eq!(spool.dropped_batches(), 3);
}

#[test]
fn a_smaller_limit_at_reopen_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = {
        let spool = open(dir.path());
        for n in 0..4 {
            spool.push(tick(20, n));
        }
        spool.queued_bytes() / 4
    };
    let limits = SpoolLimits {
        max_bytes: batch_bytes * 2 + batch_bytes / 2,
    };
    let spool = Spool::open(dir.path(), limits).unwrap();
    assert_eq!(seqs(&spool), [3, 4]);
    assert_eq!(spool.dropped_batches(), 2);
}

#[test]
fn a_batch_larger_than_the_whole_spool_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolLimits { max_bytes: 100 }).unwrap();
    spool.push(tick(1, 0));
    assert_eq!(spool.push(tick(50, 1)), 2);
    assert_eq!(seqs(&spool), [1]);
    assert_eq!(spool.dropped_batches(), 1);
}

#[test]
fn the_spool_can_be_reopened_at_once_many_times() {
    // An agent restarted by its service manager opens the spool right after the old
    // process let go of it; within one process that is a drop followed by an open.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let spool = open(dir.path());
        assert_eq!(spool.push(tick(1, round)), round as u64 + 1);
    }
}

#[test]
fn a_second_spool_on_the_same_folder_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let error = Spool::open(dir.path(), SpoolLimits::default())
        .err()
        .expect("a spool in use cannot be opened twice");
    let text = error.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains("no other vigil-agent"), "{text}");
}
