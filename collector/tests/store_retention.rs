//! Retention in a steady state: a store fed day after day (simulated time) with a raw
//! retention of one day and a rollup retention of three keeps answering only what is
//! within retention, forgets series that stopped reporting, and stops growing on disk once
//! every kind of data has reached its age limit. Sizes are compared across cycles, never
//! against the wall clock.

use std::path::Path;
use std::time::Duration;

use vigil_collector::store::{Selector, SeriesSamples, Store, StoreConfig, WriterId};
use vigil_proto::model::{Labels, Sample};

const DAY_MS: i64 = 86_400_000;
const INTERVAL_MS: i64 = 60_000;
const N_SERIES: usize = 40;
const START_MS: i64 = 1_700_000_000_000 / DAY_MS * DAY_MS;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        raw_retention: Duration::from_secs(86_400),
        rollup_retention: Duration::from_secs(3 * 86_400),
        // The test decides when to checkpoint and enforce retention.
        checkpoint_interval: Duration::from_secs(3600),
        retention_interval: Duration::from_secs(3600),
        ..StoreConfig::new(dir)
    }
}

/// One simulated day of `N_SERIES` steady series plus one that exists only that day (a
/// process that came and went), appended an hour per batch.
fn feed_day(store: &Store, day: i64, seq: &mut u64) {
    let writer = WriterId {
        host: "web-01".to_owned(),
        spool_id: 1,
    };
    for hour in 0..24 {
        let mut batch = Vec::new();
        let hour_start = START_MS + day * DAY_MS + hour * 3_600_000;
        for series_index in 0..=N_SERIES {
            let labels = if series_index < N_SERIES {
                Labels::from_pairs([
                    ("__name__", "disk_used_bytes".to_owned()),
                    ("host", "web-01".to_owned()),
                    ("device", format!("sd{series_index}")),
                ])
            } else {
                Labels::from_pairs([
                    ("__name__", "process_memory_rss_bytes".to_owned()),
                    ("host", "web-01".to_owned()),
                    ("process", format!("job-{day}")),
                ])
            };
            let samples = (0..60)
                .map(|minute| {
                    let timestamp_ms = hour_start + minute * INTERVAL_MS;
                    Sample {
                        timestamp_ms,
                        value: ((timestamp_ms / INTERVAL_MS) % 1000 + series_index as i64) as f64
                            * 4096.0,
                    }
                })
                .collect();
            batch.push(SeriesSamples { labels, samples });
        }
        *seq += 1;
        store.append(&writer, *seq, &batch).unwrap();
    }
}

#[test]
fn retention_keeps_queries_within_limits_and_disk_usage_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(dir.path())).unwrap();
    let mut seq = 0;
    let mut sizes = Vec::new();
    // sled fills its first segments before it reuses freed space; 24 days are well past
    // that for this workload.
    let n_days = 24;
    for day in 0..n_days {
        feed_day(&store, day, &mut seq);
        store.checkpoint(false).unwrap();
        let now_ms = store.retention_now();
        store.enforce_retention(now_ms).unwrap();
        store.flush().unwrap();
        sizes.push(store.stats().unwrap().disk_bytes);

        // Raw samples reach one day back (whole two-hour chunks), no further.
        let disk: Selector = "disk_used_bytes".parse().unwrap();
        let oldest_raw = store
            .select(&disk, i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .filter_map(|series| series.samples.first().map(|s| s.timestamp_ms))
            .min()
            .unwrap();
        assert!(
            oldest_raw >= now_ms - DAY_MS - 2 * 3_600_000,
            "day {day}: a raw sample {} ms older than the newest is still there",
            now_ms - oldest_raw
        );
        // Rollups reach three days back (whole days).
        let rollups = store
            .select_range(&disk, i64::MIN / 2, i64::MAX / 2, 3_600_000)
            .unwrap();
        let oldest_rollup = rollups
            .series
            .iter()
            .filter_map(|series| series.points.first().map(|p| p.timestamp_ms))
            .min()
            .unwrap();
        assert!(
            oldest_rollup >= now_ms - 4 * DAY_MS,
            "day {day}: a rollup {} ms older than the newest is still there",
            now_ms - oldest_rollup
        );
        if day >= 4 {
            assert!(
                oldest_rollup < now_ms - 2 * DAY_MS,
                "day {day}: rollups within retention are missing"
            );
        }
        // Processes of days past every retention are forgotten, labels and all.
        let processes = store
            .select_range(
                &"process_memory_rss_bytes".parse().unwrap(),
                i64::MIN / 2,
                i64::MAX / 2,
                3_600_000,
            )
            .unwrap();
        assert!(
            processes.series.len() <= 5,
            "day {day}: {} processes",
            processes.series.len()
        );
    }
    eprintln!("data directory size per day: {sizes:?}");
    // Once every kind of data is at its age limit (day 4 on) and sled has filled its first
    // segments, the store reuses the space retention frees: the last third of the run is
    // no bigger than the middle third, give or take sled's segment granularity.
    let (middle, last) = (&sizes[8..16], &sizes[16..]);
    let middle_max = *middle.iter().max().unwrap();
    let last_max = *last.iter().max().unwrap();
    assert!(
        last_max as f64 <= middle_max as f64 * 1.15,
        "the data directory keeps growing in a steady state: {sizes:?}"
    );
}
