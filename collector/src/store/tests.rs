//! Tests of [`Store`] against a real sled database in a temporary directory.

use super::files::SLED_DATA_FILE;
use super::*;
use std::time::Duration;

fn open_store(dir: &Path) -> Store {
    Store::open(&StoreConfig::new(dir)).expect("opening a store in a fresh directory")
}

fn writer(host: &str, spool_id: u64) -> WriterId {
    WriterId {
        host: host.to_owned(),
        spool_id,
    }
}

fn series(name: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    let mut all_labels = Labels::from_pairs(labels.iter().copied());
    all_labels.insert(METRIC_NAME_LABEL, name);
    SeriesSamples {
        labels: all_labels,
        samples: samples
            .iter()
            .map(|&(timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .collect(),
    }
}

fn select(store: &Store, selector: &str) -> Vec<SelectedSeries> {
    store
        .select(
            &selector.parse().expect("test selector parses"),
            i64::MIN,
            i64::MAX,
        )
        .expect("select")
}

/// The value of `label` in each selected series, in the order returned.
fn label_values(selected: &[SelectedSeries], label: &str) -> Vec<String> {
    selected
        .iter()
        .map(|series| series.labels.get(label).unwrap_or("").to_owned())
        .collect()
}

/// Three filesystems of two hosts, and one CPU series.
fn fleet_batch() -> Vec<SeriesSamples> {
    vec![
        series(
            "fs_used",
            &[("host", "web-01"), ("mountpoint", "/")],
            &[(1_000, 1.0), (2_000, 2.0)],
        ),
        series(
            "fs_used",
            &[("host", "web-01"), ("mountpoint", "/home")],
            &[(1_000, 10.0)],
        ),
        series(
            "fs_used",
            &[("host", "db-01"), ("mountpoint", "/")],
            &[(1_000, 100.0)],
        ),
        series("cpu", &[("host", "web-01")], &[(1_000, 0.5)]),
    ]
}

#[test]
fn append_then_select_round_trips_with_all_four_kinds_of_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let outcome = store
        .append(&writer("web-01", 1), 1, &fleet_batch())
        .unwrap();
    assert_eq!(outcome, AppendOutcome::Stored { n_samples: 5 });

    let all_fs = select(&store, "fs_used");
    assert_eq!(all_fs.len(), 3);
    // Sorted by labels: `host` sorts before `mountpoint`, "db-01" before "web-01".
    assert_eq!(label_values(&all_fs, "host"), ["db-01", "web-01", "web-01"]);
    assert_eq!(label_values(&all_fs, "mountpoint"), ["/", "/", "/home"]);
    assert_eq!(all_fs[1].labels.get("__name__"), Some("fs_used"));
    assert_eq!(
        all_fs[1].samples,
        [
            Sample {
                timestamp_ms: 1_000,
                value: 1.0
            },
            Sample {
                timestamp_ms: 2_000,
                value: 2.0
            }
        ]
    );

    assert_eq!(
        label_values(&select(&store, r#"fs_used{host="web-01"}"#), "mountpoint"),
        ["/", "/home"]
    );
    assert_eq!(
        label_values(&select(&store, r#"fs_used{host!="web-01"}"#), "host"),
        ["db-01"]
    );
    assert_eq!(
        label_values(
            &select(&store, r#"fs_used{mountpoint=~"/h.*"}"#),
            "mountpoint"
        ),
        ["/home"]
    );
    assert_eq!(
        label_values(&select(&store, r#"fs_used{mountpoint!~"/h.*"}"#), "host"),
        ["db-01", "web-01"]
    );
    assert_eq!(
        label_values(&select(&store, r#"{host=~"web-.*"}"#), "__name__"),
        ["cpu", "fs_used", "fs_used"]
    );
    assert_eq!(
        label_values(&select(&store, r#"{__name__=~"c.u"}"#), "__name__"),
        ["cpu"]
    );
    assert!(select(&store, r#"fs_used{host="nowhere"}"#).is_empty());
    assert!(select(&store, "no_such_metric").is_empty());
}

#[test]
fn a_duplicate_seq_is_not_stored_twice_and_returns_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let agent = writer("web-01", 7);
    let first = [series("cpu", &[], &[(1_000, 0.5)])];
    assert_eq!(
        store.append(&agent, 3, &first).unwrap(),
        AppendOutcome::Stored { n_samples: 1 }
    );

    // The same seq again, and an older one, with different samples: neither is stored.
    let replay = [series("cpu", &[], &[(2_000, 0.9)])];
    assert_eq!(
        store.append(&agent, 3, &replay).unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(
        store.append(&agent, 2, &replay).unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(store.last_seq(&agent).unwrap(), 3);
    assert_eq!(
        select(&store, "cpu")[0].samples,
        [Sample {
            timestamp_ms: 1_000,
            value: 0.5
        }]
    );

    // A later seq, even after a gap, is stored.
    assert_eq!(
        store.append(&agent, 5, &replay).unwrap(),
        AppendOutcome::Stored { n_samples: 1 }
    );
    assert_eq!(store.last_seq(&agent).unwrap(), 5);
    assert_eq!(select(&store, "cpu")[0].samples.len(), 2);
}

#[test]
fn separate_spool_ids_and_hosts_keep_separate_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let batch = [series("cpu", &[], &[(1_000, 0.5)])];
    assert_eq!(store.last_seq(&writer("web-01", 1)).unwrap(), 0);
    store.append(&writer("web-01", 1), 10, &batch).unwrap();

    // A reinstalled agent starts a new spool at seq 1; another host has its own count too.
    assert_eq!(
        store.append(&writer("web-01", 2), 1, &batch).unwrap(),
        AppendOutcome::Stored { n_samples: 1 }
    );
    assert_eq!(
        store.append(&writer("db-01", 1), 1, &batch).unwrap(),
        AppendOutcome::Stored { n_samples: 1 }
    );
    assert_eq!(store.last_seq(&writer("web-01", 1)).unwrap(), 10);
    assert_eq!(store.last_seq(&writer("web-01", 2)).unwrap(), 1);
    assert_eq!(store.last_seq(&writer("db-01", 1)).unwrap(), 1);
    assert_eq!(store.last_seq(&writer("db-01", 2)).unwrap(), 0);
}

#[test]
fn data_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path());
        store
            .append(&writer("web-01", 1), 1, &fleet_batch())
            .unwrap();
        store
            .put_host_record("web-01", &serde_json::json!({"os_name": "Debian"}))
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::open_existing(&StoreConfig::new(dir.path())).unwrap();
    assert_eq!(select(&store, "fs_used").len(), 3);
    assert_eq!(store.last_seq(&writer("web-01", 1)).unwrap(), 1);
    assert_eq!(
        store
            .append(&writer("web-01", 1), 1, &fleet_batch())
            .unwrap(),
        AppendOutcome::Duplicate
    );
    assert_eq!(
        store.host_record("web-01").unwrap(),
        Some(serde_json::json!({"os_name": "Debian"}))
    );

    // Series created before the restart keep their ids: new samples join the same series.
    store
        .append(
            &writer("web-01", 1),
            2,
            &[series("cpu", &[("host", "web-01")], &[(9_000, 0.1)])],
        )
        .unwrap();
    let cpu = select(&store, "cpu");
    assert_eq!(cpu.len(), 1);
    assert_eq!(cpu[0].samples.len(), 2);
}

#[test]
fn select_honours_the_time_range_inclusively() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let samples: Vec<(i64, f64)> = (-3..=3).map(|i| (i * 1_000, i as f64)).collect();
    // Appended out of order: the store sorts by time.
    let mut shuffled = samples.clone();
    shuffled.reverse();
    store
        .append(
            &writer("a", 1),
            1,
            &[series("m", &[], &shuffled), series("other", &[], &samples)],
        )
        .unwrap();

    let selector: Selector = "m".parse().unwrap();
    let times = |start, end| -> Vec<i64> {
        let selected = store.select(&selector, start, end).unwrap();
        selected
            .iter()
            .flat_map(|s| s.samples.iter().map(|sample| sample.timestamp_ms))
            .collect()
    };
    assert_eq!(times(-1_000, 1_000), [-1_000, 0, 1_000]);
    assert_eq!(times(-999, 999), [0]);
    assert_eq!(times(i64::MIN, -2_000), [-3_000, -2_000]);
    assert_eq!(times(3_000, i64::MAX), [3_000]);
    // A series with no sample in the range is left out, and an inverted range is empty.
    assert!(store.select(&selector, 10_000, 20_000).unwrap().is_empty());
    assert!(store.select(&selector, 1_000, -1_000).unwrap().is_empty());
}

#[test]
fn a_later_sample_at_the_same_time_replaces_the_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .append(&writer("a", 1), 1, &[series("m", &[], &[(1_000, 1.0)])])
        .unwrap();
    store
        .append(&writer("a", 1), 2, &[series("m", &[], &[(1_000, 2.0)])])
        .unwrap();
    assert_eq!(
        select(&store, "m")[0].samples,
        [Sample {
            timestamp_ms: 1_000,
            value: 2.0
        }]
    );
}

#[test]
fn a_series_without_a_metric_name_refuses_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let unnamed = SeriesSamples {
        labels: Labels::from_pairs([("host", "a")]),
        samples: vec![],
    };
    let error = store
        .append(
            &writer("a", 1),
            4,
            &[series("m", &[], &[(1, 1.0)]), unnamed],
        )
        .unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidSeries { seq: 4, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(r#"series {host="a"} has no metric name"#),
        "{error}"
    );
    assert_eq!(store.last_seq(&writer("a", 1)).unwrap(), 0);
    assert!(select(&store, "m").is_empty());
}

#[test]
fn only_one_of_several_racing_appends_of_the_same_batch_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let outcomes: Vec<AppendOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || {
                    store
                        .append(&writer("a", 1), 1, &[series("m", &[], &[(1, 1.0)])])
                        .unwrap()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let n_stored = outcomes
        .iter()
        .filter(|outcome| **outcome != AppendOutcome::Duplicate)
        .count();
    assert_eq!(n_stored, 1, "{outcomes:?}");
    assert_eq!(select(&store, "m").len(), 1);
}

#[test]
fn a_data_dir_in_use_gives_the_in_use_error() {
    let dir = tempfile::tempdir().unwrap();
    let _running = open_store(dir.path());
    let error = Store::open(&StoreConfig::new(dir.path())).unwrap_err();
    assert!(matches!(error, StoreError::InUse { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("is in use by another process (a running collector?)"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn opening_an_existing_store_refuses_a_missing_or_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = Store::open_existing(&StoreConfig::new(&missing)).unwrap_err();
    assert!(
        matches!(error, StoreError::DataDirMissing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().starts_with(&format!(
        "data directory '{}' does not exist",
        missing.display()
    )));
    assert!(
        !missing.exists(),
        "a read-only open must not create the directory"
    );

    let error = Store::open_existing(&StoreConfig::new(dir.path())).unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");

    let file = dir.path().join("collector.toml");
    std::fs::write(&file, "").unwrap();
    let error = Store::open_existing(&StoreConfig::new(&file)).unwrap_err();
    assert!(
        matches!(error, StoreError::NotADirectory { .. }),
        "{error:?}"
    );
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/store");
    open_store(&nested);
    assert!(nested.join(SLED_DATA_FILE).is_file());
}

#[test]
fn host_records_are_kept_per_host_and_listed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    assert_eq!(store.host_record("web-01").unwrap(), None);
    store
        .put_host_record("web-01", &serde_json::json!({"cores": 4}))
        .unwrap();
    store
        .put_host_record("db-01", &serde_json::json!({"cores": 8}))
        .unwrap();
    store
        .put_host_record("web-01", &serde_json::json!({"cores": 16}))
        .unwrap();
    assert_eq!(
        store.host_record("web-01").unwrap(),
        Some(serde_json::json!({"cores": 16}))
    );
    assert_eq!(
        store.host_records().unwrap(),
        [
            ("db-01".to_owned(), serde_json::json!({"cores": 8})),
            ("web-01".to_owned(), serde_json::json!({"cores": 16})),
        ]
    );
}

#[test]
fn store_config_defaults_the_cache_and_refuses_unknown_fields() {
    let config: StoreConfig = serde_json::from_str(r#"{"data_dir": "/var/lib/vigil"}"#).unwrap();
    assert_eq!(config, StoreConfig::new("/var/lib/vigil"));
    assert_eq!(config.cache_capacity_bytes, 64 * 1024 * 1024);
    let error =
        serde_json::from_str::<StoreConfig>(r#"{"data_dir": "/x", "cache_bytes": 1}"#).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `cache_bytes`"),
        "{error}"
    );
}

/// A store whose background thread stays out of the way, so that tests decide when to
/// checkpoint.
fn quiet_config(dir: &Path) -> StoreConfig {
    StoreConfig {
        checkpoint_interval: Duration::from_secs(3600),
        retention_interval: Duration::from_secs(3600),
        ..StoreConfig::new(dir)
    }
}

fn open_quiet(dir: &Path) -> Store {
    Store::open(&quiet_config(dir)).expect("opening a store")
}

/// `n` samples of one series from `start_ms`, every 10 s, values 0, 1, 2, …
fn regular(start_ms: i64, n: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (start_ms + i * 10_000, i as f64)).collect()
}

fn times_and_values(selected: &[SelectedSeries]) -> Vec<(i64, f64)> {
    selected
        .iter()
        .flat_map(|series| series.samples.iter().map(|s| (s.timestamp_ms, s.value)))
        .collect()
}

#[test]
fn acknowledged_samples_survive_a_restart_through_the_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let samples = regular(1_000_000, 50);
    {
        let store = open_quiet(dir.path());
        for (seq, piece) in samples.chunks(10).enumerate() {
            store
                .append(
                    &writer("web-01", 1),
                    seq as u64 + 1,
                    &[series("m", &[], piece)],
                )
                .unwrap();
        }
        // No checkpoint, no flush, no clean stop: only the log has the samples.
        store.drop_as_if_crashed();
    }
    let store = open_quiet(dir.path());
    assert_eq!(times_and_values(&select(&store, "m")), samples);
    assert_eq!(store.last_seq(&writer("web-01", 1)).unwrap(), 5);
    assert_eq!(
        store
            .append(&writer("web-01", 1), 5, &[series("m", &[], &[(1, 1.0)])])
            .unwrap(),
        AppendOutcome::Duplicate
    );
}

#[test]
fn a_clean_stop_seals_the_head_and_leaves_no_log_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let samples = regular(1_000_000, 500);
    {
        let store = open_quiet(dir.path());
        for (seq, piece) in samples.chunks(10).enumerate() {
            store
                .append(
                    &writer("web-01", 1),
                    seq as u64 + 1,
                    &[series("m", &[], piece)],
                )
                .unwrap();
        }
        assert!(store.stats().unwrap().wal_bytes > 0);
        store.close().unwrap();
        let error = store
            .append(&writer("web-01", 1), 51, &[series("m", &[], &[(1, 1.0)])])
            .unwrap_err();
        assert!(error.to_string().contains("closed"), "{error}");
    }
    let segments = wal::list_segments(&dir.path().join(wal::WAL_DIR)).unwrap();
    assert!(segments.is_empty(), "nothing to replay: {segments:?}");
    let store = open_quiet(dir.path());
    let stats = store.stats().unwrap();
    assert_eq!(stats.head_samples, 0, "nothing was replayed into the head");
    assert_eq!(times_and_values(&select(&store, "m")), samples);
    assert_eq!(store.last_seq(&writer("web-01", 1)).unwrap(), 50);
    assert_eq!(
        store
            .append(&writer("web-01", 1), 50, &[series("m", &[], &[(1, 1.0)])])
            .unwrap(),
        AppendOutcome::Duplicate
    );
    // New samples after the restart land in the window sealed at the stop, and both stay.
    store
        .append(
            &writer("web-01", 1),
            51,
            &[series("m", &[], &[(1_000_000 + 500 * 10_000, 500.0)])],
        )
        .unwrap();
    drop(store);
    let store = open_quiet(dir.path());
    assert_eq!(select(&store, "m")[0].samples.len(), 501);
}

#[test]
fn reopening_after_a_dense_log_costs_work_linear_in_the_log() {
    // One series at 1 ms spacing in batches of 500 (each goes through the head's tail) and
    // of 5,000 (encoded before the lock): the replay work of a log twice as long is about
    // twice as large, where re-encoding the window made it about four times.
    let replay_work = |n_samples: i64, batch_len: usize| -> u64 {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open_quiet(dir.path());
            let samples: Vec<(i64, f64)> = (0..n_samples)
                .map(|i| (10 * head::WINDOW_MS + i, (i as f64 * 0.37).sin()))
                .collect();
            for (seq, piece) in samples.chunks(batch_len).enumerate() {
                store
                    .append(
                        &writer("dense", 1),
                        seq as u64 + 1,
                        &[series("m", &[], piece)],
                    )
                    .unwrap();
            }
            store.drop_as_if_crashed();
        }
        let store = open_quiet(dir.path());
        let stats = store.stats().unwrap();
        assert_eq!(stats.head_samples, n_samples as u64);
        assert!(stats.wal_bytes > 0);
        stats.head_encoded_samples
    };
    for batch_len in [500, 5_000] {
        let once = replay_work(40_000, batch_len);
        let twice = replay_work(80_000, batch_len);
        assert!(
            twice * 10 <= once * 22,
            "batches of {batch_len}: replaying 40,000 samples encoded {once}, 80,000 encoded {twice}"
        );
        assert!(twice <= 80_000 * (u64::from(head::MAX_BLOCK_LEVEL) + 1));
    }
}

#[test]
fn a_failed_log_write_refuses_batches_then_resumes_by_itself_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    let health = store.watch_write_health();
    let web = writer("web-01", 1);
    let at = |seq: u64| [(1_000_000 + seq as i64 * 10_000, seq as f64)];
    for seq in 1..=3 {
        store
            .append(&web, seq, &[series("m", &[], &at(seq))])
            .unwrap();
    }
    assert!(!store.write_health().is_failing());

    // The write of batch 4 fails (a full disk), and so do the first two repairs: batch 4 is
    // refused, so is everything while the log is not repaired, and nothing goes to sled.
    store.inner.wal.fail_next_writes(3);
    let error = store
        .append(&web, 4, &[series("m", &[], &at(4))])
        .unwrap_err();
    assert!(matches!(error, StoreError::WalFailed { .. }), "{error:?}");
    assert!(error.to_string().contains("resumes by itself"), "{error}");
    let failing = store.write_health();
    assert!(failing.is_failing());
    assert!(failing.reason.unwrap().contains(".wal"));
    assert!(health.borrow().is_failing());
    assert!(store
        .put_host_record("web-01", &serde_json::json!({"cores": 4}))
        .is_err());
    // The refused seq is not taken: the resend is stored, not called a duplicate.
    assert_eq!(store.last_seq(&web).unwrap(), 3);

    // The log repairs itself once writes succeed; the agent's resend of 4 then goes in.
    let mut resent = None;
    for _ in 0..100 {
        match store.append(&web, 4, &[series("m", &[], &at(4))]) {
            Ok(outcome) => {
                resent = Some(outcome);
                break;
            }
            Err(StoreError::WalFailed { .. }) => std::thread::sleep(Duration::from_millis(100)),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(resent, Some(AppendOutcome::Stored { n_samples: 1 }));
    assert!(!store.write_health().is_failing());
    store.append(&web, 5, &[series("m", &[], &at(5))]).unwrap();
    let expected: Vec<(i64, f64)> = (1..=5).map(|seq| at(seq)[0]).collect();
    assert_eq!(times_and_values(&select(&store, "m")), expected);

    // After a crash the log replays cleanly: the failed write was cut off its segment (the
    // log holds batches 1, 2, 3, the resent 4 and 5), so nothing comes back twice.
    store.drop_as_if_crashed();
    let segments = wal::list_segments(&dir.path().join(wal::WAL_DIR)).unwrap();
    let n_records: usize = segments
        .iter()
        .map(|(_, path)| wal::read_segment(path, false).unwrap().records.len())
        .sum();
    assert_eq!(n_records, 5);
    let store = open_quiet(dir.path());
    assert_eq!(times_and_values(&select(&store, "m")), expected);
    assert_eq!(store.last_seq(&web).unwrap(), 5);
    assert_eq!(
        store.append(&web, 4, &[series("m", &[], &at(4))]).unwrap(),
        AppendOutcome::Duplicate
    );
}

#[test]
fn a_window_with_more_samples_than_a_chunk_holds_is_sealed_in_parts_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let n = chunk::MAX_SAMPLES as i64 + 50_000;
    let window = 10 * head::WINDOW_MS;
    let store = open_quiet(dir.path());
    let samples: Vec<(i64, f64)> = (0..n).map(|i| (window + i, (i % 7) as f64)).collect();
    for (seq, piece) in samples.chunks(50_000).enumerate() {
        store
            .append(
                &writer("dense", 1),
                seq as u64 + 1,
                &[series("m", &[], piece)],
            )
            .unwrap();
    }
    store.checkpoint(true).unwrap();
    // A late sample before the split point and one after it are merged into the parts.
    let late = [(window + 10, -1.0), (window + n - 5, -2.0)];
    store
        .append(&writer("dense", 1), 1000, &[series("m", &[], &late)])
        .unwrap();
    store.checkpoint(true).unwrap();
    drop(store);
    let store = open_quiet(dir.path());
    let read = select(&store, "m");
    let got = times_and_values(&read);
    assert_eq!(got.len(), n as usize);
    let mut expected = samples;
    expected[10].1 = -1.0;
    expected[n as usize - 5].1 = -2.0;
    assert!(got == expected, "the samples read back differ");
    assert_eq!(store.storage_breakdown().unwrap().n_chunks, 2);
}

#[test]
fn sealed_chunks_and_the_head_are_merged_in_queries_and_the_log_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    let first = regular(0, 100);
    store
        .append(&writer("a", 1), 1, &[series("m", &[], &first)])
        .unwrap();
    store.checkpoint(true).unwrap();
    assert_eq!(store.stats().unwrap().head_samples, 0);
    // A late sample in the sealed window, a replacement of a sealed one, and new ones.
    let later = [(5_000, 0.5), (10_000, 42.0), (2_000_000, 7.0)];
    store
        .append(&writer("a", 1), 2, &[series("m", &[], &later)])
        .unwrap();
    let mut expected: std::collections::BTreeMap<i64, f64> = first.iter().copied().collect();
    expected.extend(later);
    let expected: Vec<(i64, f64)> = expected.into_iter().collect();
    assert_eq!(times_and_values(&select(&store, "m")), expected);

    // Sealing again merges the late samples into the stored chunk; after a restart the
    // same comes back, and the log holds nothing sealed.
    store.checkpoint(true).unwrap();
    assert_eq!(times_and_values(&select(&store, "m")), expected);
    drop(store);
    let store = open_quiet(dir.path());
    assert_eq!(times_and_values(&select(&store, "m")), expected);
    let stats = store.stats().unwrap();
    assert_eq!(stats.head_samples, 0);
    assert_eq!(
        stats.wal_segments, 1,
        "only the fresh segment is left: {stats:?}"
    );
}

#[test]
fn due_windows_are_sealed_by_the_store_clock_and_recent_ones_stay_in_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    let hours = |h: i64| h * 3_600_000;
    store
        .append(
            &writer("a", 1),
            1,
            &[series("m", &[], &[(hours(0), 1.0), (hours(5), 2.0)])],
        )
        .unwrap();
    store.checkpoint(false).unwrap();
    // The first window ended hours before the newest sample; the last has not ended.
    let stats = store.stats().unwrap();
    assert_eq!(stats.head_samples, 1, "{stats:?}");
    assert_eq!(select(&store, "m")[0].samples.len(), 2);
}

#[test]
fn range_queries_aggregate_raw_samples_or_rollups_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    // Ten hours at 10 s: values 0..3600.
    let samples = regular(0, 3600);
    for (seq, piece) in samples.chunks(360).enumerate() {
        store
            .append(&writer("a", 1), seq as u64 + 1, &[series("m", &[], piece)])
            .unwrap();
    }
    let selector: Selector = "m".parse().unwrap();
    let check = |store: &Store| {
        let hourly = store
            .select_range(&selector, 0, 36_000_000 - 1, 3_600_000)
            .unwrap();
        assert_eq!(hourly.resolution, Resolution::Rollup5m);
        let points = &hourly.series[0].points;
        assert_eq!(points.len(), 10);
        assert_eq!(points[1].timestamp_ms, 3_600_000);
        assert_eq!(
            points[1].aggregate,
            Aggregate {
                min: 360.0,
                max: 719.0,
                sum: (360..720).sum::<i64>() as f64,
                count: 360
            }
        );
        let raw = store.select_range(&selector, 0, 59_999, 30_000).unwrap();
        assert_eq!(raw.resolution, Resolution::Raw);
        let counts: Vec<u64> = raw.series[0]
            .points
            .iter()
            .map(|p| p.aggregate.count)
            .collect();
        assert_eq!(counts, [3, 3]);
    };
    // From the head, then from sealed rollups with part of the data in the head.
    check(&store);
    store.checkpoint(false).unwrap();
    check(&store);
    store.checkpoint(true).unwrap();
    check(&store);
    assert_eq!(Store::auto_step(0, 3_600_000, 1000), 3_600);
    assert_eq!(Store::auto_step(0, 30 * 86_400_000, 1000), 45 * 60_000);
}

#[test]
fn retention_removes_old_chunks_rollups_and_empty_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        raw_retention: Duration::from_secs(86_400),
        rollup_retention: Duration::from_secs(3 * 86_400),
        ..quiet_config(dir.path())
    };
    let store = Store::open(&config).unwrap();
    let day = 86_400_000;
    store
        .append(&writer("a", 1), 1, &[series("old", &[], &[(0, 1.0)])])
        .unwrap();
    store
        .append(
            &writer("a", 1),
            2,
            &[series(
                "m",
                &[],
                &[(day / 2, 1.0), (2 * day, 2.0), (5 * day, 3.0)],
            )],
        )
        .unwrap();
    store.checkpoint(true).unwrap();
    assert_eq!(store.retention_now(), 5 * day);
    store.enforce_retention(store.retention_now()).unwrap();
    let selector: Selector = "m".parse().unwrap();
    let raw = store.select(&selector, i64::MIN, i64::MAX).unwrap();
    assert_eq!(times_and_values(&raw), [(5 * day, 3.0)]);
    // Rollups reach three days back: the sample of day 2 is there, the one of day 0 is not.
    let rollups = store.select_range(&selector, 0, 6 * day, day).unwrap();
    let days: Vec<i64> = rollups.series[0]
        .points
        .iter()
        .map(|p| p.timestamp_ms / day)
        .collect();
    assert_eq!(days, [2, 5]);
    // A series with nothing left is gone from the index too.
    assert!(select(&store, "old").is_empty());
    assert!(store
        .inner
        .index
        .lookup(&keys::encode_labels(&series("old", &[], &[]).labels))
        .unwrap()
        .is_none());
}

#[test]
fn a_store_of_the_first_layout_is_migrated_into_chunks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let labels = series("m", &[("host", "a")], &[]).labels;
        let labels_key = keys::encode_labels(&labels);
        db.open_tree("series")
            .unwrap()
            .insert(keys::encode_series_id(0), labels_key.as_slice())
            .unwrap();
        db.open_tree("series_by_labels")
            .unwrap()
            .insert(labels_key.as_slice(), &keys::encode_series_id(0))
            .unwrap();
        let postings = db.open_tree("postings").unwrap();
        for (name, value) in labels.iter() {
            postings
                .insert(keys::postings_key(name, value, 0), &[])
                .unwrap();
        }
        let samples = db.open_tree("samples").unwrap();
        for i in 0..1000 {
            samples
                .insert(
                    keys::sample_key(0, i * 10_000),
                    &keys::encode_value(i as f64),
                )
                .unwrap();
        }
        db.open_tree("writers")
            .unwrap()
            .insert(keys::writer_key(&writer("a", 1)), &7u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let store = open_quiet(dir.path());
    let selected = select(&store, "m");
    assert_eq!(times_and_values(&selected), regular(0, 1000));
    assert_eq!(store.last_seq(&writer("a", 1)).unwrap(), 7);
    // New series do not collide with the migrated one.
    store
        .append(&writer("a", 1), 8, &[series("n", &[], &[(1, 1.0)])])
        .unwrap();
    assert_eq!(select(&store, "m").len(), 1);
    assert_eq!(select(&store, "n").len(), 1);
}

/// Damages the final log segment's first record in a way replay cannot read past: a
/// closed segment with a bad record before the end.
fn damage_the_log(dir: &Path) {
    let wal_dir = dir.join(wal::WAL_DIR);
    let segments = wal::list_segments(&wal_dir).unwrap();
    let (_, first) = &segments[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(first, bytes).unwrap();
    // A later segment makes the damaged one not the last.
    let next = segments.last().unwrap().0 + 1;
    std::fs::write(
        wal_dir.join(format!("{next:020}.wal")),
        b"VIGILWAL\x01\x00\x00\x00",
    )
    .unwrap();
}

#[test]
fn a_damaged_store_is_moved_aside_and_an_empty_one_started_by_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("collector.toml"), "keep me").unwrap();
    {
        let store = open_quiet(dir.path());
        store
            .append(&writer("a", 1), 1, &[series("m", &[], &[(1, 1.0)])])
            .unwrap();
        store.drop_as_if_crashed();
    }
    damage_the_log(dir.path());

    // A tool reading the store reports the damage and moves nothing.
    let error = Store::open_existing(&quiet_config(dir.path())).unwrap_err();
    assert!(matches!(error, StoreError::WalDamaged { .. }), "{error:?}");

    let refuse = StoreConfig {
        on_damage: OnDamage::Refuse,
        ..quiet_config(dir.path())
    };
    let error = Store::open(&refuse).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("holds a damaged store"), "{message}");
    assert!(message.contains("on_damage = \"quarantine\""), "{message}");

    let store = open_quiet(dir.path());
    let moved = store
        .quarantined_to()
        .expect("the store was moved aside")
        .to_owned();
    assert!(moved.join("wal").is_dir());
    assert!(moved.join(SLED_DATA_FILE).is_file());
    assert!(select(&store, "m").is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("collector.toml")).unwrap(),
        "keep me"
    );
    store
        .append(&writer("a", 1), 1, &[series("m", &[], &[(1, 1.0)])])
        .unwrap();
    assert_eq!(select(&store, "m").len(), 1);
}

#[test]
fn an_import_is_invisible_until_it_commits_and_gone_if_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    let labels = Labels::from_pairs([("host", "a")]);
    let mut import = store.begin_import("test").unwrap();
    for (t, v) in regular(0, 5000) {
        import
            .add(
                "m",
                &labels,
                Sample {
                    timestamp_ms: t,
                    value: v,
                },
                true,
            )
            .unwrap();
    }
    // Written in part (a series is written out when it is large), not visible.
    import
        .add(
            "other",
            &labels,
            Sample {
                timestamp_ms: 0,
                value: 1.0,
            },
            false,
        )
        .unwrap();
    assert!(select(&store, "m").is_empty());
    drop(import);
    assert!(select(&store, "m").is_empty());
    assert!(
        store.inner.sealed.chunks.is_empty(),
        "an abandoned import's chunks are deleted"
    );

    let mut import = store.begin_import("test").unwrap();
    for (t, v) in regular(0, 5000) {
        import
            .add(
                "m",
                &labels,
                Sample {
                    timestamp_ms: t,
                    value: v,
                },
                false,
            )
            .unwrap();
    }
    let summary = import.commit().unwrap();
    assert_eq!((summary.n_series, summary.n_samples), (1, 5000));
    assert_eq!(times_and_values(&select(&store, "m")), regular(0, 5000));
    // Live samples at the same times overlay the import; both stay after a restart.
    store
        .append(
            &writer("a", 1),
            1,
            &[series("m", &[("host", "a")], &[(50_000_000, -1.0)])],
        )
        .unwrap();
    drop(store);
    let store = open_quiet(dir.path());
    let mut expected = regular(0, 5000);
    expected.push((50_000_000, -1.0));
    assert_eq!(times_and_values(&select(&store, "m")), expected);
}

#[test]
fn an_import_interrupted_by_a_crash_stays_invisible_and_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_quiet(dir.path());
        let mut import = store.begin_import("test").unwrap();
        let labels = Labels::from_pairs([("host", "a")]);
        // Values that do not compress to a few bytes, so that chunks go to files.
        for (t, v) in regular(0, 2000) {
            let v = (v * 7919.0) % 1000.0 * 0.37;
            import
                .add(
                    "m",
                    &labels,
                    Sample {
                        timestamp_ms: t,
                        value: v,
                    },
                    true,
                )
                .unwrap();
        }
        import
            .add(
                "n",
                &labels,
                Sample {
                    timestamp_ms: 0,
                    value: 0.0,
                },
                false,
            )
            .unwrap();
        store.flush().unwrap();
        import.abandon_as_in_a_crash();
    }
    let store = open_quiet(dir.path());
    assert!(select(&store, "m").is_empty());
    assert!(dir.path().join("chunks/import-1").is_dir());
    store.inner.sweep_aborted_imports().unwrap();
    assert!(store.inner.sealed.chunks.is_empty());
    assert!(!dir.path().join("chunks/import-1").exists());
    assert!(store.inner.sealed.rollups.is_empty());
}

#[test]
fn complete_days_are_rolled_up_once_and_late_samples_roll_them_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_quiet(dir.path());
    let day = 86_400_000;
    // Day 0 at one sample a minute, values 0..1440; then a sample two days on moves the
    // store's clock past day 0's end.
    let samples: Vec<(i64, f64)> = (0..1440).map(|i| (i * 60_000, i as f64)).collect();
    store
        .append(&writer("a", 1), 1, &[series("m", &[], &samples)])
        .unwrap();
    store
        .append(&writer("a", 1), 2, &[series("m", &[], &[(2 * day, 0.0)])])
        .unwrap();
    store.checkpoint(false).unwrap();
    assert_eq!(store.inner.sealed.rollups.len(), 1, "day 0 has its block");
    assert!(store.inner.sealed.pending.is_empty());

    let selector: Selector = "m".parse().unwrap();
    let hour = |store: &Store, h: i64| {
        store
            .select_range(&selector, 0, day - 1, 3_600_000)
            .unwrap()
            .series[0]
            .points[h as usize]
            .aggregate
    };
    assert_eq!(
        hour(&store, 1),
        Aggregate {
            min: 60.0,
            max: 119.0,
            sum: (60..120).sum::<i64>() as f64,
            count: 60
        }
    );

    // A late sample replaces one of day 0: the day is pending (read raw) until the next
    // checkpoint writes its block again.
    store
        .append(
            &writer("a", 1),
            3,
            &[series("m", &[], &[(3_600_000, 1000.0)])],
        )
        .unwrap();
    store.checkpoint(false).unwrap();
    assert!(store.inner.sealed.pending.is_empty());
    let late = hour(&store, 1);
    assert_eq!((late.max, late.count), (1000.0, 60));
    drop(store);
    let store = open_quiet(dir.path());
    assert_eq!(hour(&store, 1), late);
}

/// Imports `n` samples of `m{host="a"}` every 10 s from 0, with values that do not compress
/// to a few bytes (so that chunks go to files), and returns the import uncommitted.
fn import_some(store: &Store, n: i64) -> (import::Import, Vec<(i64, f64)>) {
    let mut import = store.begin_import("test").unwrap();
    let labels = Labels::from_pairs([("host", "a")]);
    let expected: Vec<(i64, f64)> = regular(0, n)
        .into_iter()
        .map(|(t, v)| (t, (v * 7919.0) % 1000.0 * 0.37))
        .collect();
    for &(t, v) in &expected {
        import
            .add(
                "m",
                &labels,
                Sample {
                    timestamp_ms: t,
                    value: v,
                },
                true,
            )
            .unwrap();
    }
    (import, expected)
}

fn index_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for folder in ["chunks", "rollups"] {
        let Ok(origins) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        for origin in origins {
            let origin = origin.unwrap();
            for file in std::fs::read_dir(origin.path()).unwrap() {
                let name = file.unwrap().file_name().into_string().unwrap();
                if name.contains(".index") {
                    found.push(format!(
                        "{folder}/{}/{name}",
                        origin.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn an_import_keeps_its_chunk_and_rollup_locations_in_day_indexes_not_sled() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let store = open_quiet(dir.path());
    // Two days and a bit at 10 s.
    let (import, expected) = import_some(&store, 2 * 8640 + 100);
    import.commit().unwrap();
    assert!(store.inner.sealed.chunks.is_empty());
    assert!(store.inner.sealed.rollups.is_empty());
    assert!(store.inner.sealed.pending.is_empty());
    assert_eq!(
        index_files(dir.path()),
        [
            "chunks/import-1/1970-01-01.index",
            "chunks/import-1/1970-01-02.index",
            "chunks/import-1/1970-01-03.index",
            "rollups/import-1/1970-01-01.index",
            "rollups/import-1/1970-01-02.index",
            "rollups/import-1/1970-01-03.index",
        ]
    );
    let check = |store: &Store| {
        assert_eq!(times_and_values(&select(store, "m")), expected);
        let range = store
            .select_range(&"m".parse().unwrap(), 0, 2 * day - 1, 3_600_000)
            .unwrap();
        let points = &range.series[0].points;
        assert_eq!(points.len(), 48);
        assert!(points.iter().all(|point| point.aggregate.count == 360));
        let breakdown = store.storage_breakdown().unwrap();
        // 12 windows a day, two days and a window; three blocks.
        assert_eq!((breakdown.n_chunks, breakdown.n_rollup_blocks), (25, 3));
    };
    check(&store);
    drop(store);
    let store = open_quiet(dir.path());
    check(&store);
    // Retention keeps the series, which only the day indexes know of.
    store.inner.enforce_retention(3 * day).unwrap();
    assert_eq!(select(&store, "m").len(), 1);
}

#[test]
fn a_crash_after_the_day_indexes_but_before_the_commit_record_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_quiet(dir.path());
        let (import, _) = import_some(&store, 2000);
        import.crash_before_the_commit_record();
        assert!(select(&store, "m").is_empty());
        assert!(!index_files(dir.path()).is_empty());
    }
    let store = open_quiet(dir.path());
    assert!(select(&store, "m").is_empty());
    store.inner.sweep_aborted_imports().unwrap();
    assert!(index_files(dir.path()).is_empty());
    assert!(!dir.path().join("chunks/import-1").exists());
    // A new import after the sweep is whole.
    let (import, expected) = import_some(&store, 500);
    import.commit().unwrap();
    assert_eq!(times_and_values(&select(&store, "m")), expected);
}

#[test]
fn a_half_written_day_index_is_ignored_and_a_damaged_one_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_quiet(dir.path());
        let (import, _) = import_some(&store, 500);
        import.commit().unwrap();
    }
    let index = dir.path().join("chunks/import-1/1970-01-01.index");
    // What a crash inside the write leaves: the temporary file, never read.
    std::fs::write(
        dir.path().join("chunks/import-1/1970-01-02.index.tmp"),
        b"VIGILIDX",
    )
    .unwrap();
    {
        let store = open_quiet(dir.path());
        assert_eq!(select(&store, "m")[0].samples.len(), 500);
    }
    let mut bytes = std::fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&index, bytes).unwrap();
    let store = open_quiet(dir.path());
    let error = store
        .select(&"m".parse().unwrap(), i64::MIN, i64::MAX)
        .unwrap_err()
        .to_string();
    assert!(error.contains("1970-01-01.index"), "{error}");
    assert!(error.contains("checksum"), "{error}");
}

#[test]
fn a_store_with_chunk_locations_in_sled_still_reads_and_takes_new_imports() {
    // A store as the previous layout (format 2) wrote it: an import's chunk and rollup
    // locations are keys in sled, its chunk bytes in the day file.
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<Sample> = (0..720)
        .map(|i| Sample {
            timestamp_ms: i * 10_000,
            value: (i * 7919 % 1000) as f64 * 0.37,
        })
        .collect();
    {
        let db = sled::open(dir.path()).unwrap();
        let labels = series("m", &[("host", "a")], &[]).labels;
        let labels_key = keys::encode_labels(&labels);
        db.open_tree("series")
            .unwrap()
            .insert(keys::encode_series_id(0), labels_key.as_slice())
            .unwrap();
        db.open_tree("series_by_labels")
            .unwrap()
            .insert(labels_key.as_slice(), &keys::encode_series_id(0))
            .unwrap();
        let postings = db.open_tree("postings").unwrap();
        for (name, value) in labels.iter() {
            postings
                .insert(keys::postings_key(name, value, 0), &[])
                .unwrap();
        }
        let files = chunk_files::ChunkFiles::new(dir.path().join("chunks")).unwrap();
        let encoded = chunk::encode(&samples).unwrap();
        let location = files.append(1, 0, &encoded).unwrap();
        files.sync(None).unwrap();
        let mut value = vec![1u8];
        varint::put_varint(&mut value, location.offset);
        varint::put_varint(&mut value, u64::from(location.len));
        db.open_tree("chunks")
            .unwrap()
            .insert(keys::span_key(0, 0, 1), value)
            .unwrap();
        let block = rollup::encode_block(&rollup::bucketize(&samples)).unwrap();
        let rollup_files = chunk_files::ChunkFiles::new(dir.path().join("rollups")).unwrap();
        let location = rollup_files.append(1, 0, &block).unwrap();
        rollup_files.sync(None).unwrap();
        let mut value = vec![1u8];
        varint::put_varint(&mut value, location.offset);
        varint::put_varint(&mut value, u64::from(location.len));
        db.open_tree("rollup_5m")
            .unwrap()
            .insert(keys::span_key(0, 0, 1), value)
            .unwrap();
        db.open_tree("imports")
            .unwrap()
            .insert(
                1u32.to_be_bytes(),
                br#"{"state":"committed","source":"","n_samples":720}"#.as_slice(),
            )
            .unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(open::META_FORMAT, &2u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let store = open_quiet(dir.path());
    let expected: Vec<(i64, f64)> = samples.iter().map(|s| (s.timestamp_ms, s.value)).collect();
    assert_eq!(times_and_values(&select(&store, "m")), expected);
    let range = store
        .select_range(&"m".parse().unwrap(), 0, 7_199_999, 3_600_000)
        .unwrap();
    assert_eq!(range.series[0].points[0].aggregate.count, 360);
    assert_eq!(
        store
            .inner
            .meta
            .get(open::META_FORMAT)
            .unwrap()
            .unwrap()
            .as_ref(),
        &3u64.to_be_bytes()
    );
    // A new import of the same series beside it goes to day indexes; both read.
    let mut import = store.begin_import("second").unwrap();
    import
        .add(
            "m",
            &Labels::from_pairs([("host", "a")]),
            Sample {
                timestamp_ms: 7_200_000,
                value: 1.5,
            },
            false,
        )
        .unwrap();
    import.commit().unwrap();
    drop(store);
    let store = open_quiet(dir.path());
    let mut with_new = expected.clone();
    with_new.push((7_200_000, 1.5));
    assert_eq!(times_and_values(&select(&store, "m")), with_new);
    assert_eq!(
        index_files(dir.path()),
        [
            "chunks/import-2/1970-01-01.index",
            "rollups/import-2/1970-01-01.index"
        ]
    );
}
