//! Per-kind state and judgement: one file per rule kind, each keeping what its rule needs to
//! remember about one alert instance and saying, from that, whether the condition holds now.
//!
//! A kind never touches the alert lifecycle or formats a whole summary: it returns a
//! [`Verdict`] (severity and the values its summary template can use), and the
//! [`crate::alert::Engine`] steps the lifecycle with it.

pub mod change;
pub mod creep;
pub mod flapping;
pub mod forecast;
pub mod silence;
pub mod staleness;
pub mod threshold;

use crate::alert::rule::{RuleKind, Severity};
use serde::{Deserialize, Serialize};

/// A condition that holds, before its summary is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub severity: Severity,
    /// Values for the rule's summary template, e.g. `("time_left", "4 d")`.
    pub vars: Vec<(&'static str, String)>,
    /// Overrides the rule's pending time (forecasts confirm longer when more time is left).
    pub pending_for_ms: Option<i64>,
    /// The numbers behind the condition, carried on the transition for contracts.
    pub details: AlertDetails,
    /// When the condition began, if before the kind first judged it (a silent host's
    /// silence began at its last sample, not when it was first found silent).
    pub began_ms: Option<i64>,
}

/// The numbers behind a firing condition, as contracts and messages read them: the value
/// and the level it crossed, or a forecast's time left and its interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastDetails>,
    /// For a log pattern: the newest line that matched, as the agent sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_line: Option<LogLine>,
}

/// A matched log line and the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub file: String,
    pub line: String,
}

/// A forecast as of its transition: the time left at the current rate and the interval
/// around it, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastDetails {
    pub time_left_ms: i64,
    pub soonest_ms: i64,
    pub latest_ms: i64,
}

impl ForecastDetails {
    /// The same forecast `elapsed_ms` later at the same rate: everything that much nearer,
    /// never below zero.
    pub fn aged(self, elapsed_ms: i64) -> Self {
        let elapsed_ms = elapsed_ms.max(0);
        Self {
            time_left_ms: self.time_left_ms.saturating_sub(elapsed_ms).max(0),
            soonest_ms: self.soonest_ms.saturating_sub(elapsed_ms).max(0),
            latest_ms: self.latest_ms.saturating_sub(elapsed_ms).max(0),
        }
    }
}

impl Verdict {
    pub fn new(severity: Severity) -> Self {
        Self {
            severity,
            vars: Vec::new(),
            pending_for_ms: None,
            details: AlertDetails::default(),
            began_ms: None,
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }
}

/// What one alert instance remembers, by rule kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KindState {
    Threshold(threshold::ThresholdState),
    Forecast(Box<forecast::ForecastState>),
    Change(change::ChangeState),
    Staleness(staleness::StalenessState),
    Flapping(flapping::FlappingState),
    Creep(Box<creep::CreepState>),
    HostSilent(silence::HostSilentState),
    SeriesSilent(silence::SeriesSilentState),
}

impl KindState {
    /// Fresh state for an instance of a rule of this kind.
    pub fn new(kind: &RuleKind) -> Self {
        match kind {
            RuleKind::Threshold(_) => KindState::Threshold(Default::default()),
            RuleKind::Forecast(_) => KindState::Forecast(Default::default()),
            RuleKind::Change(_) => KindState::Change(Default::default()),
            RuleKind::Staleness(_) => KindState::Staleness(Default::default()),
            RuleKind::Flapping(_) => KindState::Flapping(Default::default()),
            RuleKind::Creep(_) => KindState::Creep(Default::default()),
            RuleKind::HostSilent(_) => KindState::HostSilent(Default::default()),
            RuleKind::SeriesSilent(_) => KindState::SeriesSilent(Default::default()),
        }
    }

    /// Whether this state belongs to a rule of `kind` (a rules file may have changed a
    /// rule's kind between a snapshot and its restore).
    pub fn fits(&self, kind: &RuleKind) -> bool {
        matches!(
            (self, kind),
            (KindState::Threshold(_), RuleKind::Threshold(_))
                | (KindState::Forecast(_), RuleKind::Forecast(_))
                | (KindState::Change(_), RuleKind::Change(_))
                | (KindState::Staleness(_), RuleKind::Staleness(_))
                | (KindState::Flapping(_), RuleKind::Flapping(_))
                | (KindState::Creep(_), RuleKind::Creep(_))
                | (KindState::HostSilent(_), RuleKind::HostSilent(_))
                | (KindState::SeriesSilent(_), RuleKind::SeriesSilent(_))
        )
    }
}
