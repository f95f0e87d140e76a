//! Tests of [`Store`] against a real sled database in a temporary directory.

use super::*;

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
