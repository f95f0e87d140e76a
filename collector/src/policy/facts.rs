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
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts {
    /// The client the host belongs to (from its certificate).
    pub client: String,
    /// The host's name (from its certificate).
    pub host: String,
    /// The engine's rule name, e.g. `FilesystemFullForecast`.
    pub rule: String,
    /// What kind of trouble the rule detects.
    pub kind: AlertKind,
    /// The engine's own severity, before the contract has its say.
    pub severity: EngineSeverity,
    /// The alert's labels (`mountpoint`, `service`, `device`, `job`…).
    pub labels: BTreeMap<String, String>,
    /// When the alert began firing. The contract in force at this instant classifies it.
    pub firing_since: Timestamp,
    /// When the condition began (the last sample of a silent host, the first sample over a
    /// threshold): `lasting` counts from here, not from when the engine fired.
    pub condition_since: Timestamp,
    /// For forecasts: how long until the resource runs out at the current rate, as of the
    /// instant of classification.
    pub forecast_time_left: Option<Duration>,
    /// For forecasts: the soonest and latest the resource runs out (the interval around
    /// the time left), as of the instant of classification.
    pub forecast_range: Option<(Duration, Duration)>,
    /// The measured value that made the condition, and the level it crossed, if the rule
    /// has them.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// For a log pattern: the newest line that matched, trimmed, with its file.
    pub log_line: Option<LogLine>,
}

impl AlertFacts {
    /// Facts with nothing known beyond the alert itself; the condition began when it fired.
    pub fn new(
        client: &str,
        host: &str,
        rule: &str,
        kind: AlertKind,
        severity: EngineSeverity,
        firing_since: Timestamp,
    ) -> Self {
        Self {
            client: client.to_string(),
            host: host.to_string(),
            rule: rule.to_string(),
            kind,
            severity,
            labels: BTreeMap::new(),
            firing_since,
            condition_since: firing_since,
            forecast_time_left: None,
            forecast_range: None,
            value: None,
            threshold: None,
            log_line: None,
        }
    }

    /// How long the condition has lasted at `now`.
    pub fn lasted_at(&self, now: Timestamp) -> Duration {
        Duration::try_from(now.duration_since(self.condition_since)).unwrap_or(Duration::ZERO)
    }
}

pub use crate::alert::kinds::LogLine;

pub type AlertKind = crate::alert::rule::FailureKind;

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
