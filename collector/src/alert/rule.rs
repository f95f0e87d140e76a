//! What a rule is, as data: the kinds of rule, the signal each one watches, and the words an
//! alert is reported with. Rules come from the built-in [`crate::alert::pack`] and from the
//! rules file ([`crate::alert::config`]); the [`crate::alert::Engine`] only reads them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use vigil_proto::model::Labels;

/// How urgent a firing alert is. The policy room decides what each level means to a client;
/// the engine only orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
    Emergency,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Emergency => "emergency",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            "emergency" => Some(Severity::Emergency),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of trouble an alert is about: the one vocabulary the engine's rules, client
/// contracts (`kinds = [...]`), maintenance windows, messages, reports and the backtest share.
/// Every built-in rule has one; `docs/METRICS.md` lists them with their rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A filesystem is full or forecast to fill.
    DiskFull,
    /// Memory is exhausted or trending that way.
    MemoryExhaustion,
    /// SMART reports a failing or degrading disk, or an SSD wearing out.
    SmartFailure,
    /// A temperature is too high or creeping up.
    Overheating,
    /// A backup job has not succeeded for too long.
    BackupStale,
    /// The host stopped reporting.
    HostDown,
    /// A watched service is not running, or keeps restarting.
    ServiceDown,
    /// CPU, load or I/O saturated for a sustained time.
    Saturation,
    /// Updates wait for a restart that has not happened.
    PendingRestart,
    /// A watched log file has lines matching a pattern.
    LogPattern,
    /// The agent itself is in trouble (it threw measurements away, a series stopped).
    AgentHealth,
    /// Vigil itself is in trouble: a policy file that does not load, a delivery channel
    /// that keeps failing, an agent that never connected, a certificate not renewed, a store
    /// that cannot write. For the MSP; no client contract applies.
    VigilHealth,
}

impl FailureKind {
    pub const ALL: [FailureKind; 12] = [
        FailureKind::DiskFull,
        FailureKind::MemoryExhaustion,
        FailureKind::SmartFailure,
        FailureKind::Overheating,
        FailureKind::BackupStale,
        FailureKind::HostDown,
        FailureKind::ServiceDown,
        FailureKind::Saturation,
        FailureKind::PendingRestart,
        FailureKind::LogPattern,
        FailureKind::AgentHealth,
        FailureKind::VigilHealth,
    ];

    /// The name written in rules files, policy files, messages and the backtest.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::DiskFull => "disk_full",
            FailureKind::MemoryExhaustion => "memory_exhaustion",
            FailureKind::SmartFailure => "smart_failure",
            FailureKind::Overheating => "overheating",
            FailureKind::BackupStale => "backup_stale",
            FailureKind::HostDown => "host_down",
            FailureKind::ServiceDown => "service_down",
            FailureKind::Saturation => "saturation",
            FailureKind::PendingRestart => "pending_restart",
            FailureKind::LogPattern => "log_pattern",
            FailureKind::AgentHealth => "agent_health",
            FailureKind::VigilHealth => "vigil_health",
        }
    }

    /// What the kind means, for docs/METRICS.md.
    pub fn meaning(self) -> &'static str {
        match self {
            FailureKind::DiskFull => "a filesystem is full or forecast to fill",
            FailureKind::MemoryExhaustion => "memory is exhausted or trending that way",
            FailureKind::SmartFailure => {
                "SMART reports a failing or degrading disk, or an SSD wearing out"
            }
            FailureKind::Overheating => "a temperature is too high or creeping up",
            FailureKind::BackupStale => "a backup job has not succeeded for too long",
            FailureKind::HostDown => "the host stopped reporting",
            FailureKind::ServiceDown => "a watched service is not running, or keeps restarting",
            FailureKind::Saturation => "CPU, load or I/O saturated for a sustained time",
            FailureKind::PendingRestart => "updates wait for a restart that has not happened",
            FailureKind::LogPattern => "a watched log file has lines matching a pattern",
            FailureKind::AgentHealth => {
                "the agent itself is in trouble (it threw measurements away)"
            }
            FailureKind::VigilHealth => {
                "Vigil itself is in trouble (a policy file that does not load, a delivery \
                 channel that keeps failing, an agent enrolled but never connected, a \
                 certificate not renewed, a store that cannot write); for the MSP, no client \
                 contract applies"
            }
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Reads a name as written in a policy or rules file.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::parse(name)
    }

    /// Every name, for messages that list the choices.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Whether this is one of the failures the scenario scorer knows (the backtest names
    /// only those; the others are left for its keyword matching).
    pub fn is_scored_failure(self) -> bool {
        !matches!(
            self,
            FailureKind::Saturation
                | FailureKind::PendingRestart
                | FailureKind::LogPattern
                | FailureKind::AgentHealth
                | FailureKind::VigilHealth
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The samples a rule reads: one or more metric names, label values they must carry, and
/// optionally a metric to divide by (a filesystem's size, the physical memory), joined on
/// host, client and the instance labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub metrics: Vec<String>,
    /// Exact label values a series must have, e.g. `state="used"`. These labels do not
    /// identify the alert instance: every other label except host and client does.
    pub matchers: Labels,
    pub divide_by: Option<String>,
}

impl Signal {
    pub fn metric(name: &str) -> Self {
        Self {
            metrics: vec![name.to_owned()],
            matchers: Labels::new(),
            divide_by: None,
        }
    }

    pub fn matching(mut self, name: &str, value: &str) -> Self {
        self.matchers.insert(name, value);
        self
    }

    pub fn divided_by(mut self, metric: &str) -> Self {
        self.divide_by = Some(metric.to_owned());
        self
    }

    /// Whether a series of metric `name` with `labels` is one this signal reads.
    pub fn matches(&self, name: &str, labels: &Labels) -> bool {
        self.metrics.iter().any(|metric| metric == name)
            && self
                .matchers
                .iter()
                .all(|(label, value)| labels.get(label) == Some(value))
    }
}

/// Which way a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

/// A value crossing fixed levels, held for `pending_for`, released past `clear`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub direction: Direction,
    /// Level per severity, at most one each.
    pub levels: Vec<(Severity, f64)>,
    /// Hysteresis: a firing alert resolves only once the value is back past this level.
    pub clear: Option<f64>,
    /// How values are shown in summaries.
    pub unit: Unit,
    /// Ignore a level the value also crossed at this time of day on one of the past seven
    /// days (a nightly batch job): the host's rhythm, not news.
    pub unless_usual: bool,
}

/// Time left until a resource runs out, from a robust trend of the signal toward `exhausted_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub signal: Signal,
    /// The value at which the resource is exhausted: 1.0 for a used fraction, 0.0 for an
    /// available fraction. The trend is followed toward it.
    pub exhausted_at: f64,
    /// `Above` when the value rises toward exhaustion (used space), `Below` when it falls
    /// (available memory).
    pub direction: Direction,
    pub warn_horizon: Duration,
    pub critical_horizon: Duration,
    /// History needed before a recent change can be told apart from the daily cycle.
    pub min_history: Duration,
    /// A host-level metric shown alongside in the summary as `{context}` (swap in use,
    /// for memory).
    pub context: Option<String>,
    pub unit: Unit,
}

/// Counters that should never rise (reallocated sectors, media errors): increases are
/// events, grouped into incidents; recurring incidents warn, then escalate.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub signal: Signal,
    /// Incidents (increases less than an hour apart count as one) within this window are
    /// counted.
    pub window: Duration,
    /// This many incidents within `window` make a warning ...
    pub warn_after: u32,
    /// ... and this many make it critical.
    pub escalate_after: u32,
    /// The alert resolves after this long without a new event.
    pub quiet_for: Duration,
}

/// A timestamp metric (seconds since the epoch of the last success) that must keep moving,
/// judged against the job's own cadence.
#[derive(Debug, Clone, PartialEq)]
pub struct Staleness {
    pub signal: Signal,
    /// Used until the job's cadence is known (two successes seen).
    pub max_age: Duration,
}

/// A 0/1 health gauge that keeps dropping to 0 and coming back.
#[derive(Debug, Clone, PartialEq)]
pub struct Flapping {
    pub signal: Signal,
    pub window: Duration,
    /// Drops within `window` that count as flapping.
    pub count: u32,
    pub severity: Severity,
}

/// A value that drifts up at equal conditions: a temperature compared with what the same
/// load and the same inlet temperature gave over the past days.
#[derive(Debug, Clone, PartialEq)]
pub struct Creep {
    pub signal: Signal,
    /// Same metric with these labels is the reference subtracted first (inlet temperature).
    pub relative_to: Option<Labels>,
    /// Host-level metric that explains the value (CPU utilization).
    pub explained_by: Option<String>,
    /// Smallest rise worth a warning, in the signal's unit.
    pub rise: f64,
}

/// A host that sends nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSilent {
    pub after: Duration,
    /// A host that said it was rebooting is expected back within this; after it, its
    /// silence is an alert like any other (a patch reboot that hangs, a machine that does
    /// not boot).
    pub reboot_grace: Duration,
    /// When at least this share of a client's hosts (and at least `site_min_hosts`) fall
    /// silent together, one site alert replaces theirs.
    pub site_share: f64,
    pub site_min_hosts: usize,
}

/// A series that stops while its host keeps reporting (a drive that dropped off the bus).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSilent {
    pub signal: Signal,
    pub after: Duration,
    pub severity: Severity,
}

/// How a signal's values read to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A fraction shown as a percentage.
    Ratio,
    Celsius,
    Bytes,
    Percent,
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Threshold(Threshold),
    Forecast(Forecast),
    Change(Change),
    Staleness(Staleness),
    Flapping(Flapping),
    Creep(Creep),
    HostSilent(HostSilent),
    SeriesSilent(SeriesSilent),
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Threshold(_) => "threshold",
            RuleKind::Forecast(_) => "forecast",
            RuleKind::Change(_) => "change",
            RuleKind::Staleness(_) => "staleness",
            RuleKind::Flapping(_) => "flapping",
            RuleKind::Creep(_) => "creep",
            RuleKind::HostSilent(_) => "host_silent",
            RuleKind::SeriesSilent(_) => "series_silent",
        }
    }

    /// The samples the rule reads; `None` for host silence, which reads every sample.
    pub fn signal(&self) -> Option<&Signal> {
        match self {
            RuleKind::Threshold(rule) => Some(&rule.signal),
            RuleKind::Forecast(rule) => Some(&rule.signal),
            RuleKind::Change(rule) => Some(&rule.signal),
            RuleKind::Staleness(rule) => Some(&rule.signal),
            RuleKind::Flapping(rule) => Some(&rule.signal),
            RuleKind::Creep(rule) => Some(&rule.signal),
            RuleKind::SeriesSilent(rule) => Some(&rule.signal),
            RuleKind::HostSilent(_) => None,
        }
    }
}

/// One rule: a name that classifies it, what it watches and how its alerts are worded.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub category: Option<FailureKind>,
    /// Template: `{host}`, `{client}`, instance labels (`{mountpoint}`) and the kind's own
    /// values (`{value}`, `{time_left}`, `{range}` …) are replaced.
    pub summary: String,
    /// How long a condition must hold before the alert fires (forecasts scale this with
    /// the time left).
    pub pending_for: Duration,
    /// How long a condition must stay clear before a firing alert resolves.
    pub clear_for: Duration,
    pub kind: RuleKind,
}

/// The rules in force, in a fixed order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The built-in pack with no changes.
    pub fn builtin() -> Self {
        Self {
            rules: crate::alert::pack::builtin_rules(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|rule| rule.name == name)
    }
}
