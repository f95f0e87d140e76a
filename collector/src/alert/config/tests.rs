//! The rules file: defaults, tuning, disabling and adding rules, and bad files refused with
//! the file, the line and the fix. Bad cases are data: the text and the phrases its error
//! must contain.

use super::*;
use crate::alert::rule::{Direction, FailureKind, RuleKind, Severity};
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<RuleSet, ConfigFileError> {
    parse_rules(Path::new("rules.toml"), text)
}

#[test]
fn an_empty_file_keeps_the_built_in_pack() {
    assert_eq!(parse("").unwrap(), RuleSet::builtin());
}

#[test]
fn a_built_in_rule_can_be_disabled() {
    let rules = parse("[rules.CpuSaturated]\nenabled = false\n").unwrap();
    assert!(rules.get("CpuSaturated").is_none());
    assert_eq!(rules.rules.len(), RuleSet::builtin().rules.len() - 1);
}

#[test]
fn forecast_horizons_can_be_set_for_all_and_per_rule() {
    let rules = parse(
        "[forecast]\nwarn_horizon = \"10d\"\ncritical_horizon = \"3d\"\n\n\
         [rules.FilesystemFullForecast]\nwarn_horizon = \"14d\"\n",
    )
    .unwrap();
    let RuleKind::Forecast(fs) = &rules.get("FilesystemFullForecast").unwrap().kind else {
        panic!("not a forecast")
    };
    assert_eq!(fs.warn_horizon, Duration::from_secs(14 * 86_400));
    assert_eq!(fs.critical_horizon, Duration::from_secs(3 * 86_400));
    let RuleKind::Forecast(memory) = &rules.get("MemoryExhaustionForecast").unwrap().kind else {
        panic!("not a forecast")
    };
    assert_eq!(memory.warn_horizon, Duration::from_secs(10 * 86_400));
}

#[test]
fn how_long_a_reboot_may_take_is_tuned_on_host_silent() {
    let rules = parse("[rules.HostSilent]\nreboot_grace = \"1h\"\n").unwrap();
    let RuleKind::HostSilent(silent) = &rules.get("HostSilent").unwrap().kind else {
        panic!("not host silence")
    };
    assert_eq!(silent.reboot_grace, Duration::from_secs(3600));
    assert_eq!(silent.after, Duration::from_secs(300), "the rest stays");
}

#[test]
fn a_new_threshold_rule_is_added_with_its_levels() {
    let rules = parse(
        r#"
[rules.InletTooHot]
kind = "threshold"
metric = "system_temperature_celsius"
match = { sensor = "inlet" }
above = { warning = 35, critical = 40 }
clear = 33
for = "10m"
category = "overheating"
unit = "celsius"
summary = "inlet air on {host} at {value}"
"#,
    )
    .unwrap();
    let rule = rules.get("InletTooHot").unwrap();
    assert_eq!(rule.pending_for, Duration::from_secs(600));
    assert_eq!(rule.category, Some(FailureKind::Overheating));
    let RuleKind::Threshold(threshold) = &rule.kind else {
        panic!("not a threshold")
    };
    assert_eq!(threshold.direction, Direction::Above);
    assert_eq!(
        threshold.levels,
        vec![(Severity::Warning, 35.0), (Severity::Critical, 40.0)]
    );
    assert_eq!(threshold.signal.matchers.get("sensor"), Some("inlet"));
}

#[test]
fn a_new_change_rule_may_watch_several_metrics() {
    let rules = parse(
        "[rules.NvmeErrors]\nkind = \"change\"\nmetric = [\"disk_smart_media_errors_total\", \
         \"disk_smart_percentage_used\"]\nwindow = \"3d\"\n",
    )
    .unwrap();
    let RuleKind::Change(change) = &rules.get("NvmeErrors").unwrap().kind else {
        panic!("not a change rule")
    };
    assert_eq!(change.signal.metrics.len(), 2);
    assert_eq!(change.window, Duration::from_secs(3 * 86_400));
}

/// Bad files and the phrases their single error line must contain.
const BAD_FILES: &[(&str, &str, &[&str])] = &[
    (
        "an unknown field",
        "[rules.ServiceDown]\nfor = \"10m\"\nthreshhold = 3\n",
        &["rules.toml:3:1", "unknown field `threshhold`"],
    ),
    (
        "an unknown metric",
        "[rules.Fill]\nkind = \"forecast\"\nmetric = \"system_filesytem_usage_bytes\"\n",
        &[
            "rules.toml:3:10",
            "unknown metric \"system_filesytem_usage_bytes\"",
            "did you mean \"system_filesystem_usage_bytes\"",
            "docs/METRICS.md",
        ],
    ),
    (
        "an unknown kind",
        "[rules.CpuSaturated]\ncategory = \"disk-full\"\n",
        &[
            "rules.toml:2:12",
            "\"disk-full\" is not an alert kind",
            "did you mean \"disk_full\"",
        ],
    ),
    (
        "a duration that is not one",
        "[rules.ServiceDown]\nfor = \"soon\"\n",
        &["rules.toml:2:7", "\"soon\" is not a duration", "e.g. \"10s\""],
    ),
    (
        "a zero window",
        "[rules.ServiceFlapping]\nwindow = \"0s\"\n",
        &["rules.toml:2:10", "impossible here", "longer than zero"],
    ),
    (
        "a negative duration",
        "[rules.HostSilent]\nafter = \"-5m\"\n",
        &["rules.toml:2:9", "is not a duration"],
    ),
    (
        "a critical horizon beyond the warning one",
        "[rules.FilesystemFullForecast]\nwarn_horizon = \"2d\"\ncritical_horizon = \"5d\"\n",
        &["rules.toml:3:20", "critical horizon must be the nearer one"],
    ),
    (
        "a rule that is neither built in nor given a kind",
        "[rules.FilesystemFullForcast]\nwarn_horizon = \"9d\"\n",
        &[
            "rules.toml:1:8",
            "no built-in rule FilesystemFullForcast",
            "did you mean FilesystemFullForecast",
        ],
    ),
    (
        "a field of another kind",
        "[rules.BackupStale]\nabove = { warning = 3 }\n",
        &["rules.toml:2:9", "above does not apply to staleness rules"],
    ),
    (
        "a built-in rule turned into another kind",
        "[rules.ServiceDown]\nkind = \"forecast\"\n",
        &["rules.toml:2:8", "cannot become forecast", "another name"],
    ),
    (
        "an unknown kind",
        "[rules.Mine]\nkind = \"treshold\"\nmetric = \"service_up\"\n",
        &["rules.toml:2:8", "not a rule kind", "did you mean \"threshold\""],
    ),
    (
        "a threshold without levels",
        "[rules.Mine]\nkind = \"threshold\"\nmetric = \"service_up\"\n",
        &["rules.toml:2:8", "needs `above` or `below`"],
    ),
    (
        "levels in the wrong order",
        "[rules.Mine]\nkind = \"threshold\"\nmetric = \"service_up\"\nabove = { warning = 9, critical = 3 }\n",
        &["rules.toml:4:9", "more severe in the direction"],
    ),
    (
        "a clear level past the trigger",
        "[rules.CpuSaturated]\nclear = 0.99\n",
        &["rules.toml:2:9", "wrong side"],
    ),
];

#[test]
fn bad_rule_files_are_refused_with_file_line_and_fix() {
    for (case, text, phrases) in BAD_FILES {
        let error = parse(text).expect_err(case).to_string();
        for phrase in *phrases {
            assert!(
                error.contains(phrase),
                "{case}: {phrase:?} missing from:\n{error}"
            );
        }
        assert!(error.starts_with("config rules.toml:"), "{case}: {error}");
    }
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let error = parse(
        "[rules.ServiceDown]\nfor = \"soon\"\n\n[rules.Mine]\nkind = \"staleness\"\n\
         metric = \"backup_last_sucess_timestamp_seconds\"\n",
    )
    .unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(error.problems.iter().any(|p| p.contains("rules.toml:2:")));
    assert!(error.problems.iter().any(|p| p.contains("rules.toml:6:")));
}

#[test]
fn a_missing_file_is_named() {
    let error = load_rules(Path::new("/nonexistent/rules.toml")).unwrap_err();
    assert!(error
        .to_string()
        .starts_with("config /nonexistent/rules.toml: cannot be read"));
}
