//! The vocabulary the engine, rules files, client contracts, messages and docs share: the
//! metrics agents report ([`METRICS`]), the kinds of trouble ([`FailureKind`]) and the
//! built-in rules (with `SiteUnreachable`, which the engine raises for a whole site).
//!
//! A name that is not in it is refused where it is written, with the nearest valid name
//! ([`closest`]). `docs/METRICS.md` is generated from this file ([`markdown`]) and a test
//! keeps the two the same, so the docs never spell a name the code does not know.

use crate::alert::pack::builtin_rules;
use crate::alert::rule::FailureKind;

/// One metric as agents report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDoc {
    pub name: &'static str,
    /// `gauge` or `counter`, and the range or unit when it is not in the name.
    pub kind: &'static str,
    /// The labels that tell its series apart.
    pub labels: &'static str,
    pub meaning: &'static str,
}

const fn metric(
    name: &'static str,
    kind: &'static str,
    labels: &'static str,
    meaning: &'static str,
) -> MetricDoc {
    MetricDoc {
        name,
        kind,
        labels,
        meaning,
    }
}

/// Every metric an agent reports, in the order of [`crate::alert::pack::METRIC_CATALOG`].
pub const METRICS: &[MetricDoc] = &[
    metric(
        "system_cpu_utilization_ratio",
        "gauge 0..1",
        "",
        "share of CPU time busy, all cores",
    ),
    metric(
        "system_load_average_1m",
        "gauge",
        "",
        "run queue length, one-minute average",
    ),
    metric(
        "system_memory_usage_bytes",
        "gauge",
        "state=used|available",
        "memory in use and available",
    ),
    metric("system_memory_limit_bytes", "gauge", "", "physical memory"),
    metric(
        "system_swap_usage_bytes",
        "gauge",
        "",
        "swap (page file) in use",
    ),
    metric(
        "system_filesystem_usage_bytes",
        "gauge",
        "mountpoint, state=used|free",
        "space used and free per filesystem",
    ),
    metric(
        "system_filesystem_limit_bytes",
        "gauge",
        "mountpoint",
        "size of each filesystem",
    ),
    metric(
        "system_network_io_bytes_total",
        "counter",
        "device, direction=receive|transmit",
        "bytes through each network interface",
    ),
    metric(
        "system_disk_io_bytes_total",
        "counter",
        "device, direction=read|write",
        "bytes read and written per disk",
    ),
    metric(
        "system_temperature_celsius",
        "gauge",
        "sensor",
        "temperature of each sensor",
    ),
    metric(
        "system_uptime_seconds",
        "gauge",
        "",
        "time since the machine started",
    ),
    metric(
        "process_memory_rss_bytes",
        "gauge",
        "process",
        "resident memory of the ten largest processes",
    ),
    metric(
        "service_up",
        "gauge 0/1",
        "service",
        "whether each watched service runs",
    ),
    metric(
        "disk_smart_healthy",
        "gauge 0/1",
        "device",
        "the disk's own SMART verdict",
    ),
    metric(
        "disk_smart_reallocated_sectors",
        "gauge",
        "device",
        "sectors the disk has replaced",
    ),
    metric(
        "disk_smart_pending_sectors",
        "gauge",
        "device",
        "sectors waiting to be replaced",
    ),
    metric(
        "disk_smart_media_errors_total",
        "counter",
        "device",
        "NVMe media and data integrity errors",
    ),
    metric(
        "disk_smart_percentage_used",
        "gauge 0..100+",
        "device",
        "NVMe wear, as the drive estimates it",
    ),
    metric(
        "backup_last_success_timestamp_seconds",
        "gauge",
        "job",
        "when each backup job last succeeded",
    ),
    metric(
        "system_reboot_required",
        "gauge 0/1",
        "",
        "updates wait for a restart",
    ),
    metric(
        "system_reboot_required_packages",
        "gauge",
        "",
        "packages that asked for the restart",
    ),
    metric(
        "system_updates_pending",
        "gauge",
        "",
        "updates available, not installed",
    ),
    metric(
        "log_matches_total",
        "counter",
        "log, pattern",
        "lines of a watched log matching a pattern",
    ),
    metric(
        "vigil_agent_spool_dropped_batches_total",
        "counter",
        "",
        "batches the agent threw away because its spool was full",
    ),
];

/// The rule the engine raises when most hosts of one client fall silent together.
pub const SITE_RULE: &str = "SiteUnreachable";

/// The kind of [`SITE_RULE`].
pub const SITE_RULE_KIND: FailureKind = FailureKind::HostDown;

/// The rules the collector raises about itself, all of kind `vigil_health`: a policy file
/// that does not load, a delivery channel that keeps failing, an agent that enrolled but
/// never connected, a certificate near its end that was not renewed.
pub const HEALTH_RULES: [&str; 6] = [
    "PolicyLoadFailed",
    "ChannelFailing",
    "AgentNeverConnected",
    "CertificateNotRenewed",
    "StorageWriteFailing",
    "EngineBehind",
];

/// Every rule name an alert can carry without a rules file: the built-in pack, the site
/// rule and the collector's own.
pub fn builtin_rule_names() -> Vec<String> {
    let mut names: Vec<String> = builtin_rules().into_iter().map(|rule| rule.name).collect();
    names.push(SITE_RULE.to_string());
    names.extend(HEALTH_RULES.map(String::from));
    names
}

/// The candidate nearest to `word` by edit distance (ignoring case), if it is near enough
/// to be a slip of the keyboard rather than another word.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::levenshtein(&word, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "did you mean \"x\"? " when a candidate is near, else nothing: the start of a fix.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|close| format!("did you mean {close:?}? "))
        .unwrap_or_default()
}

/// `docs/METRICS.md` as it should read.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Metrics, kinds and rules\n\n\
         Generated from `collector/src/alert/catalog.rs` and the built-in rule pack \
         (`collector/src/alert/pack.rs`); a test fails when this file and the code differ. \
         Regenerate it with\n\
         `VIGIL_WRITE_DOCS=1 cargo test -p vigil-collector --lib alert::catalog`.\n\n\
         Rules files (`[alerts] rules`) and client contracts (`deploy/policies/*.toml`) name \
         these exactly; a name that is not here is refused at `policy check` and at start, \
         with the nearest valid name.\n\n\
         ## Metrics\n\n\
         What agents report. Every series also carries `host` and `client`, taken from the \
         agent's certificate.\n\n\
         | metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for metric in METRICS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            metric.name,
            metric.kind,
            metric.labels.replace('|', "\\|"),
            metric.meaning
        ));
    }
    out.push_str(
        "\n## Kinds\n\n\
         What an alert is about; contracts name them in `kinds = [...]`, maintenance windows \
         in `kinds`, rules files in `category`.\n\n\
         | kind | meaning | built-in rules |\n|---|---|---|\n",
    );
    let rules = builtin_rules();
    for kind in FailureKind::ALL {
        let mut names: Vec<String> = rules
            .iter()
            .filter(|rule| rule.category == Some(kind))
            .map(|rule| format!("`{}`", rule.name))
            .collect();
        if kind == SITE_RULE_KIND {
            names.push(format!("`{SITE_RULE}`"));
        }
        if kind == FailureKind::VigilHealth {
            names.extend(HEALTH_RULES.map(|name| format!("`{name}`")));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            kind.as_str(),
            kind.meaning(),
            names.join(", ")
        ));
    }
    out.push_str(
        "\n## Rules\n\n\
         The built-in rules; contracts name them in `alert_rules = [...]`, rules files tune \
         them under `[rules.<name>]`.\n\n\
         | rule | kind | judged as | reads |\n|---|---|---|---|\n",
    );
    for rule in &rules {
        let reads = match rule.kind.signal() {
            Some(signal) => signal
                .metrics
                .iter()
                .chain(signal.divide_by.iter())
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", "),
            None => "every sample of the host".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            rule.name,
            rule.category.map_or("", FailureKind::as_str),
            rule.kind.name(),
            reads
        ));
    }
    out.push_str(&format!(
        "| `{SITE_RULE}` | `{}` | most hosts of one client silent together | every sample of the client's hosts |\n",
        SITE_RULE_KIND.as_str()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::pack::METRIC_CATALOG;
    use std::path::PathBuf;

    #[test]
    fn the_documented_metrics_are_exactly_the_catalog() {
        let documented: Vec<&str> = METRICS.iter().map(|metric| metric.name).collect();
        assert_eq!(documented, METRIC_CATALOG);
    }

    #[test]
    fn every_built_in_rule_has_a_kind_and_reads_only_catalog_metrics() {
        for rule in builtin_rules() {
            assert!(rule.category.is_some(), "rule {} has no kind", rule.name);
            if let Some(signal) = rule.kind.signal() {
                for metric in signal.metrics.iter().chain(signal.divide_by.iter()) {
                    assert!(
                        METRIC_CATALOG.contains(&metric.as_str()),
                        "rule {} reads {metric}, which is not in the catalog",
                        rule.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_slip_of_the_keyboard_finds_the_name_and_another_word_does_not() {
        let kinds = FailureKind::ALL.map(FailureKind::as_str);
        assert_eq!(closest("disk-full", kinds), Some("disk_full"));
        assert_eq!(closest("Host_Down", kinds), Some("host_down"));
        assert_eq!(closest("printer", kinds), None);
        let rules = builtin_rule_names();
        assert_eq!(
            closest("HostSilence", rules.iter().map(String::as_str)),
            Some("HostSilent")
        );
    }

    #[test]
    fn docs_metrics_md_is_generated_from_the_code() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/METRICS.md");
        let expected = markdown();
        if std::env::var_os("VIGIL_WRITE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/METRICS.md differs from the code; regenerate it with \
             VIGIL_WRITE_DOCS=1 cargo test -p vigil-collector --lib alert::catalog"
        );
    }
}
