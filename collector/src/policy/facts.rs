//! What the alert engine knows about one alert ([`AlertFacts`]), in the words a contract uses:
//! the kind of trouble, the engine's own severity, and the contract's four severities.
//!
//! The engine decides that something is wrong; the contract decides how much that matters to
//! this client. Both severities live here so their names are spelled once, for the policy
//! file, the messages and the delivery side alike.

use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One firing alert as the engine sees it, handed to [`classify()`](super::classify()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts {
    /// The client the host belongs to (from its certificate).
    pub client: String,
    /// The host's name (from its certificate).
    pub host: String,
    /// The engine's rule name, e.g. `filesystem_full_forecast`.
    pub rule: String,
    /// What kind of trouble the rule detects.
    pub kind: AlertKind,
    /// The engine's own severity, before the contract has its say.
    pub severity: EngineSeverity,
    /// The alert's labels (`mountpoint`, `service`, `device`, `job`…).
    pub labels: BTreeMap<String, String>,
    /// When the alert began firing. The contract in force at this instant classifies it, and
    /// `lasting` conditions count from it.
    pub firing_since: Timestamp,
    /// For forecasts: how long until the resource runs out at the current rate.
    pub forecast_time_left: Option<Duration>,
}

/// The kinds of trouble the built-in rule pack detects; contracts name them in `kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// The host stopped reporting.
    HostDown,
    /// A watched service is not running.
    ServiceDown,
    /// A filesystem is full or forecast to fill.
    DiskFull,
    /// SMART reports a failing or degrading disk, or an SSD wearing out.
    SmartFailure,
    /// Memory is exhausted or trending that way.
    MemoryExhaustion,
    /// A temperature is too high or creeping up.
    Overheating,
    /// A backup job has not succeeded for too long.
    BackupStale,
    /// CPU, load or I/O saturated for a sustained time.
    Saturation,
}

impl AlertKind {
    pub const ALL: [AlertKind; 8] = [
        AlertKind::HostDown,
        AlertKind::ServiceDown,
        AlertKind::DiskFull,
        AlertKind::SmartFailure,
        AlertKind::MemoryExhaustion,
        AlertKind::Overheating,
        AlertKind::BackupStale,
        AlertKind::Saturation,
    ];

    /// The name used in policy files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::HostDown => "host_down",
            AlertKind::ServiceDown => "service_down",
            AlertKind::DiskFull => "disk_full",
            AlertKind::SmartFailure => "smart_failure",
            AlertKind::MemoryExhaustion => "memory_exhaustion",
            AlertKind::Overheating => "overheating",
            AlertKind::BackupStale => "backup_stale",
            AlertKind::Saturation => "saturation",
        }
    }

    /// Reads a name as written in a policy file.
    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// All names, for messages that list the choices.
    pub fn names() -> String {
        AlertKind::ALL.map(AlertKind::as_str).join(", ")
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The engine's severity: how bad the measurement is, knowing nothing of the client. The
/// same three levels, spelt the same, as the alert engine's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineSeverity {
    Warning,
    Critical,
    Emergency,
}

impl EngineSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineSeverity::Warning => "warning",
            EngineSeverity::Critical => "critical",
            EngineSeverity::Emergency => "emergency",
        }
    }

    pub fn from_name(name: &str) -> Option<EngineSeverity> {
        [
            EngineSeverity::Warning,
            EngineSeverity::Critical,
            EngineSeverity::Emergency,
        ]
        .into_iter()
        .find(|severity| severity.as_str() == name)
    }

    /// What the severity means under a contract that has no rule for the alert: the same
    /// level. Only a contract makes an alert a notice.
    pub fn default_contract_severity(self) -> ContractSeverity {
        match self {
            EngineSeverity::Warning => ContractSeverity::Warning,
            EngineSeverity::Critical => ContractSeverity::Critical,
            EngineSeverity::Emergency => ContractSeverity::Emergency,
        }
    }
}

impl fmt::Display for EngineSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contract's severity, from least to most urgent (so `Ord` compares urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractSeverity {
    /// Worth knowing; shows in digests and reports.
    Notice,
    /// Needs attention within the contract's warning target.
    Warning,
    /// Needs attention soon; business hours unless the contract covers more.
    Critical,
    /// The client's business is stopped or about to be: page someone, any hour covered.
    Emergency,
}

impl ContractSeverity {
    pub const ALL: [ContractSeverity; 4] = [
        ContractSeverity::Notice,
        ContractSeverity::Warning,
        ContractSeverity::Critical,
        ContractSeverity::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractSeverity::Notice => "notice",
            ContractSeverity::Warning => "warning",
            ContractSeverity::Critical => "critical",
            ContractSeverity::Emergency => "emergency",
        }
    }

    pub fn from_name(name: &str) -> Option<ContractSeverity> {
        ContractSeverity::ALL
            .into_iter()
            .find(|severity| severity.as_str() == name)
    }
}

impl fmt::Display for ContractSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(AlertKind::from_name("disk-full"), None);
    }

    #[test]
    fn contract_severities_order_by_urgency() {
        assert!(ContractSeverity::Emergency > ContractSeverity::Critical);
        assert!(ContractSeverity::Critical > ContractSeverity::Warning);
        assert!(ContractSeverity::Warning > ContractSeverity::Notice);
    }
}
