//! The built-in rule pack for the metric catalog: the rules every collector runs without a
//! rules file. Each rule's name says what it is about, so that a person (or a scorer
//! matching keywords) can tell a filesystem forecast from a SMART alert without reading it.

use crate::alert::rule::{
    Change, Creep, Direction, FailureKind, Flapping, Forecast, HostSilent, Rule, RuleKind,
    SeriesSilent, Severity, Signal, Staleness, Threshold, Unit,
};
use std::time::Duration;
use vigil_proto::model::Labels;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * MINUTE)
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * HOUR)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// Default forecast horizons: warn when the time left is a week, critical at two days.
pub const WARN_HORIZON: Duration = Duration::from_secs(7 * DAY);
pub const CRITICAL_HORIZON: Duration = Duration::from_secs(2 * DAY);

/// Every metric name an agent reports (documented in [`crate::alert::catalog::METRICS`] and
/// docs/METRICS.md). Rules naming anything else are refused.
pub const METRIC_CATALOG: &[&str] = &[
    "system_cpu_utilization_ratio",
    "system_load_average_1m",
    "system_memory_usage_bytes",
    "system_memory_limit_bytes",
    "system_swap_usage_bytes",
    "system_filesystem_usage_bytes",
    "system_filesystem_limit_bytes",
    "system_network_io_bytes_total",
    "system_disk_io_bytes_total",
    "system_temperature_celsius",
    "system_uptime_seconds",
    "process_memory_rss_bytes",
    "service_up",
    "disk_smart_healthy",
    "disk_smart_reallocated_sectors",
    "disk_smart_pending_sectors",
    "disk_smart_media_errors_total",
    "disk_smart_percentage_used",
    "backup_last_success_timestamp_seconds",
    "system_reboot_required",
    "system_reboot_required_packages",
    "system_updates_pending",
    "log_matches_total",
    "vigil_agent_spool_dropped_batches_total",
];

pub fn builtin_rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "FilesystemFullForecast".into(),
            category: Some(FailureKind::DiskFull),
            summary: "filesystem {mountpoint} on {host} full in ~{time_left} (range {range}) \
                      {basis}; {value} used now"
                .into(),
            pending_for: minutes(30),
            clear_for: hours(1),
            kind: RuleKind::Forecast(Forecast {
                signal: Signal::metric("system_filesystem_usage_bytes")
                    .matching("state", "used")
                    .divided_by("system_filesystem_limit_bytes"),
                exhausted_at: 1.0,
                direction: Direction::Above,
                warn_horizon: WARN_HORIZON,
                critical_horizon: CRITICAL_HORIZON,
                min_history: days(2),
                context: None,
                unit: Unit::Ratio,
            }),
        },
        Rule {
            name: "FilesystemAlmostFull".into(),
            category: Some(FailureKind::DiskFull),
            summary: "filesystem {mountpoint} on {host} is {value} full; free space now or \
                      writes will fail"
                .into(),
            pending_for: minutes(5),
            clear_for: minutes(15),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("system_filesystem_usage_bytes")
                    .matching("state", "used")
                    .divided_by("system_filesystem_limit_bytes"),
                direction: Direction::Above,
                levels: vec![(Severity::Critical, 0.97), (Severity::Emergency, 0.995)],
                clear: Some(0.95),
                unit: Unit::Ratio,
                unless_usual: false,
            }),
        },
        Rule {
            name: "MemoryExhaustionForecast".into(),
            category: Some(FailureKind::MemoryExhaustion),
            summary: "memory on {host} exhausted in ~{time_left} (range {range}) {basis}; \
                      {value} of RAM available now (page cache excluded){context}; look for a \
                      process whose RSS keeps growing"
                .into(),
            pending_for: minutes(30),
            clear_for: hours(1),
            kind: RuleKind::Forecast(Forecast {
                signal: Signal::metric("system_memory_usage_bytes")
                    .matching("state", "available")
                    .divided_by("system_memory_limit_bytes"),
                exhausted_at: 0.0,
                direction: Direction::Below,
                warn_horizon: WARN_HORIZON,
                critical_horizon: CRITICAL_HORIZON,
                min_history: days(2),
                context: Some("system_swap_usage_bytes".into()),
                unit: Unit::Ratio,
            }),
        },
        Rule {
            name: "MemoryAvailableLow".into(),
            category: Some(FailureKind::MemoryExhaustion),
            summary: "memory on {host}: only {value} of RAM available for {for}; the OOM \
                      killer is next"
                .into(),
            pending_for: minutes(30),
            clear_for: minutes(15),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("system_memory_usage_bytes")
                    .matching("state", "available")
                    .divided_by("system_memory_limit_bytes"),
                direction: Direction::Below,
                // A nightly batch job may squeeze memory this low for a while; only a
                // sustained squeeze close to nothing is critical.
                levels: vec![(Severity::Warning, 0.05), (Severity::Critical, 0.02)],
                clear: Some(0.08),
                unit: Unit::Ratio,
                unless_usual: true,
            }),
        },
        Rule {
            name: "DiskSmartSectorsRising".into(),
            category: Some(FailureKind::SmartFailure),
            summary: "disk {device} on {host} is degrading: SMART {changes}; back up now and \
                      plan to replace the drive"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::Change(Change {
                signal: Signal {
                    metrics: vec![
                        "disk_smart_reallocated_sectors".into(),
                        "disk_smart_pending_sectors".into(),
                        "disk_smart_media_errors_total".into(),
                    ],
                    matchers: Labels::new(),
                    divide_by: None,
                },
                window: days(7),
                warn_after: 2,
                escalate_after: 3,
                quiet_for: days(7),
            }),
        },
        Rule {
            name: "DiskSmartFailed".into(),
            category: Some(FailureKind::SmartFailure),
            summary: "disk {device} on {host}: the drive's own SMART health check says FAILED; \
                      replace it"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: minutes(30),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("disk_smart_healthy"),
                direction: Direction::Below,
                levels: vec![(Severity::Critical, 0.5)],
                clear: None,
                unit: Unit::Plain,
                unless_usual: false,
            }),
        },
        Rule {
            name: "DiskSmartMissing".into(),
            category: Some(FailureKind::SmartFailure),
            summary: "disk {device} on {host} stopped answering SMART {silent_for} ago while \
                      the host keeps reporting; the drive may have dropped off the bus"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::SeriesSilent(SeriesSilent {
                signal: Signal::metric("disk_smart_healthy"),
                after: minutes(10),
                severity: Severity::Critical,
            }),
        },
        Rule {
            name: "NvmeWearHigh".into(),
            category: Some(FailureKind::SmartFailure),
            summary: "NVMe {device} on {host} has used {value} of its rated endurance; plan \
                      the replacement"
                .into(),
            pending_for: minutes(10),
            clear_for: hours(1),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("disk_smart_percentage_used"),
                direction: Direction::Above,
                levels: vec![(Severity::Warning, 90.0), (Severity::Critical, 100.0)],
                clear: Some(88.0),
                unit: Unit::Percent,
                unless_usual: false,
            }),
        },
        Rule {
            name: "TemperatureCreep".into(),
            category: Some(FailureKind::Overheating),
            summary: "temperature {sensor} on {host} runs {rise} hotter than usual at the same \
                      load and inlet temperature ({value} now); check fans and airflow"
                .into(),
            pending_for: hours(1),
            clear_for: hours(1),
            kind: RuleKind::Creep(Creep {
                signal: Signal::metric("system_temperature_celsius").matching("sensor", "cpu"),
                relative_to: Some(Labels::from_pairs([("sensor", "inlet")])),
                explained_by: Some("system_cpu_utilization_ratio".into()),
                rise: 5.0,
            }),
        },
        Rule {
            name: "InletTemperatureCreep".into(),
            category: Some(FailureKind::Overheating),
            summary: "inlet air on {host} is {rise} warmer than usual ({value} now); check the \
                      room's cooling before the machines in it overheat"
                .into(),
            pending_for: hours(1),
            clear_for: hours(1),
            kind: RuleKind::Creep(Creep {
                signal: Signal::metric("system_temperature_celsius").matching("sensor", "inlet"),
                relative_to: None,
                explained_by: None,
                rise: 5.0,
            }),
        },
        Rule {
            name: "TemperatureHigh".into(),
            category: Some(FailureKind::Overheating),
            summary: "temperature {sensor} on {host} at {value} for {for}; thermal trip \
                      ahead"
                .into(),
            pending_for: minutes(5),
            clear_for: minutes(15),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("system_temperature_celsius"),
                direction: Direction::Above,
                levels: vec![(Severity::Warning, 85.0), (Severity::Critical, 95.0)],
                clear: Some(80.0),
                unit: Unit::Celsius,
                unless_usual: false,
            }),
        },
        Rule {
            name: "BackupStale".into(),
            category: Some(FailureKind::BackupStale),
            summary: "backup {job} on {host} last succeeded {age} ago ({expected}); check the \
                      job's log and its repository"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::Staleness(Staleness {
                signal: Signal::metric("backup_last_success_timestamp_seconds"),
                max_age: hours(36),
            }),
        },
        Rule {
            name: "ServiceDown".into(),
            category: Some(FailureKind::ServiceDown),
            summary: "service {service} on {host} is down (not running for {for})".into(),
            pending_for: minutes(5),
            clear_for: minutes(2),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("service_up"),
                direction: Direction::Below,
                levels: vec![(Severity::Critical, 0.5)],
                clear: None,
                unit: Unit::Plain,
                unless_usual: false,
            }),
        },
        Rule {
            name: "ServiceFlapping".into(),
            category: Some(FailureKind::ServiceDown),
            summary: "service {service} on {host} crashed {count} times in {span} and was \
                      restarted each time; it is likely to stay down soon"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: hours(1),
            kind: RuleKind::Flapping(Flapping {
                signal: Signal::metric("service_up"),
                window: hours(6),
                count: 3,
                severity: Severity::Warning,
            }),
        },
        Rule {
            name: "HostSilent".into(),
            category: Some(FailureKind::HostDown),
            summary: "host {host} silent for {silent_for}: no samples since {last_seen}{note}; \
                      check power and network"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::HostSilent(HostSilent {
                after: minutes(5),
                reboot_grace: minutes(30),
                site_share: 0.5,
                site_min_hosts: 3,
            }),
        },
        Rule {
            name: "RebootPending".into(),
            category: Some(FailureKind::PendingRestart),
            summary: "{host} has waited {for} for a restart to finish installing updates; \
                      schedule a reboot"
                .into(),
            pending_for: days(7),
            clear_for: Duration::ZERO,
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("system_reboot_required"),
                direction: Direction::Above,
                levels: vec![(Severity::Warning, 0.5)],
                clear: None,
                unit: Unit::Plain,
                unless_usual: false,
            }),
        },
        Rule {
            name: "LogPatternSeen".into(),
            category: Some(FailureKind::LogPattern),
            summary: "log {log} on {host}: lines matching {pattern}, {changes}; read the log \
                      around them"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::Change(Change {
                signal: Signal::metric("log_matches_total"),
                window: days(1),
                warn_after: 1,
                escalate_after: 3,
                quiet_for: days(1),
            }),
        },
        Rule {
            name: "SpoolDroppedBatches".into(),
            category: Some(FailureKind::AgentHealth),
            summary: "the agent on {host} threw away measurements because its spool was full \
                      ({changes}); the collector was out of reach too long: check the \
                      connection, or raise [spool] max_size_mib in agent.toml"
                .into(),
            pending_for: Duration::ZERO,
            clear_for: Duration::ZERO,
            kind: RuleKind::Change(Change {
                signal: Signal::metric("vigil_agent_spool_dropped_batches_total"),
                window: days(1),
                warn_after: 1,
                escalate_after: 3,
                quiet_for: days(1),
            }),
        },
        Rule {
            name: "CpuSaturated".into(),
            category: Some(FailureKind::Saturation),
            summary: "CPU on {host} at {value} for {for}; work is queueing".into(),
            pending_for: hours(1),
            clear_for: minutes(15),
            kind: RuleKind::Threshold(Threshold {
                signal: Signal::metric("system_cpu_utilization_ratio"),
                direction: Direction::Above,
                levels: vec![(Severity::Warning, 0.95)],
                clear: Some(0.85),
                unit: Unit::Ratio,
                unless_usual: true,
            }),
        },
    ]
}
