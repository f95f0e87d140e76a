//! `vigil-collector import` as a function: an OpenMetrics file goes into a store whole, and
//! a malformed one is refused with its file and line, leaving nothing of it visible.

use std::fmt::Write as _;
use std::path::Path;

use vigil_collector::store::import::{import_openmetrics, ImportError};
use vigil_collector::store::{Selector, Store, StoreConfig};

const START_S: i64 = 1_735_689_600;

/// Two hosts' CPU and filesystem for `n` ticks of 10 s, as the generator writes them.
fn openmetrics(n: i64) -> String {
    let mut text = String::new();
    text.push_str("# TYPE system_cpu_utilization_ratio gauge\n");
    for host in ["web-01", "db-01"] {
        for i in 0..n {
            let value = (i % 7) as f64 / 8.0;
            writeln!(
                text,
                "system_cpu_utilization_ratio{{host=\"{host}\",client=\"acme\"}} {value} {}",
                START_S + i * 10
            )
            .unwrap();
        }
    }
    text.push_str("# TYPE system_filesystem_usage_bytes gauge\n");
    for host in ["web-01", "db-01"] {
        for i in 0..n {
            writeln!(
                text,
                "system_filesystem_usage_bytes{{host=\"{host}\",client=\"acme\",mountpoint=\"/\",state=\"used\"}} {} {}",
                1_000_000 + i * 4096,
                START_S + i * 10
            )
            .unwrap();
        }
    }
    text.push_str("# EOF\n");
    text
}

fn count_samples(data_dir: &Path, selector: &str) -> usize {
    let store = Store::open_existing(&StoreConfig::new(data_dir)).unwrap();
    let selector: Selector = selector.parse().unwrap();
    store
        .select(&selector, i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|series| series.samples.len())
        .sum()
}

#[test]
fn an_openmetrics_file_is_imported_whole_and_summed_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.om");
    std::fs::write(&file, openmetrics(2000)).unwrap();
    let data = dir.path().join("data");
    let summary = import_openmetrics(&data, &file, None).unwrap();
    assert_eq!(summary.n_series, 4);
    assert_eq!(summary.n_samples, 8000);
    assert!(summary.bytes_on_disk > 0 && summary.bytes_added > 0);
    assert_eq!(count_samples(&data, "system_cpu_utilization_ratio"), 4000);
    assert_eq!(
        count_samples(&data, r#"system_filesystem_usage_bytes{host="db-01"}"#),
        2000
    );
}

#[test]
fn a_malformed_line_is_named_and_nothing_of_the_file_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.om");
    std::fs::write(&good, openmetrics(100)).unwrap();
    let data = dir.path().join("data");
    import_openmetrics(&data, &good, None).unwrap();

    // Thousands of good samples (enough to be written out), then a broken line.
    let mut text = openmetrics(3000).replace("# EOF\n", "");
    let broken_line = text.lines().count() + 1;
    text.push_str("system_filesystem_usage_bytes{host=\"web-01\",client=\"acme\",mountpoint=\"/\",state=\"used\"} twelve 1735689600\n# EOF\n");
    let bad = dir.path().join("bad.om");
    std::fs::write(&bad, text).unwrap();
    let error = import_openmetrics(&data, &bad, None).unwrap_err();
    assert!(matches!(error, ImportError::Input(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}:{broken_line}: ", bad.display())),
        "{message}"
    );
    assert!(message.ends_with("; nothing was imported"), "{message}");
    // Only the first import's samples are there.
    assert_eq!(count_samples(&data, "system_cpu_utilization_ratio"), 200);
    assert_eq!(
        count_samples(&data, r#"{__name__=~"system_.*", host=~".+"}"#),
        400
    );
}
