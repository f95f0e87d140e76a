//! The rules file: TOML that tunes, disables or adds alert rules on top of the built-in pack.
//! Without a file the pack runs as it is. Every problem is reported at once, one line each,
//! with the file, line and column, what is wrong and how to fix it; a file with any problem
//! is refused whole.
//!
//! ```toml
//! [forecast]                        # horizons of every forecast rule unless it sets its own
//! warn_horizon = "10d"
//! critical_horizon = "3d"
//!
//! [rules.CpuSaturated]              # a built-in rule, switched off
//! enabled = false
//!
//! [rules.FilesystemFullForecast]    # a built-in rule, tuned
//! warn_horizon = "14d"
//!
//! [rules.InletTooHot]               # a new rule
//! kind = "threshold"
//! metric = "system_temperature_celsius"
//! match = { sensor = "inlet" }
//! above = { warning = 35, critical = 40 }
//! unless_usual = true               # not when it is this hot at this hour most days
//! for = "10m"
//! category = "overheating"
//! summary = "inlet air on {host} at {value}; check the room's cooling"
//! ```

use crate::alert::rule::{RuleKind, RuleSet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;
use vigil_proto::config_file::{self, parse_duration, ConfigFileError};

const KINDS: &[&str] = &[
    "threshold",
    "forecast",
    "change",
    "staleness",
    "flapping",
    "creep",
    "host_silent",
    "series_silent",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    forecast: Option<ForecastDefaults>,
    #[serde(default)]
    rules: BTreeMap<Spanned<String>, RuleTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastDefaults {
    warn_horizon: Option<Spanned<String>>,
    critical_horizon: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Levels {
    warning: Option<f64>,
    critical: Option<f64>,
    emergency: Option<f64>,
}

/// One `[rules.NAME]` table. Every field is optional; which ones apply depends on the kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    enabled: Option<bool>,
    kind: Option<Spanned<String>>,
    metric: Option<Spanned<OneOrMany>>,
    #[serde(rename = "match")]
    matchers: Option<BTreeMap<String, String>>,
    divide_by: Option<Spanned<String>>,
    above: Option<Spanned<Levels>>,
    below: Option<Spanned<Levels>>,
    clear: Option<Spanned<f64>>,
    unless_usual: Option<Spanned<bool>>,
    #[serde(rename = "for")]
    pending_for: Option<Spanned<String>>,
    clear_for: Option<Spanned<String>>,
    warn_horizon: Option<Spanned<String>>,
    critical_horizon: Option<Spanned<String>>,
    min_history: Option<Spanned<String>>,
    exhausted_at: Option<Spanned<f64>>,
    direction: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    warn_after: Option<Spanned<u32>>,
    escalate_after: Option<Spanned<u32>>,
    quiet_for: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    count: Option<Spanned<u32>>,
    after: Option<Spanned<String>>,
    reboot_grace: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
    relative_to: Option<Spanned<BTreeMap<String, String>>>,
    explained_by: Option<Spanned<String>>,
    rise: Option<Spanned<f64>>,
    unit: Option<Spanned<String>>,
    category: Option<Spanned<String>>,
    summary: Option<Spanned<String>>,
}

/// Reads a rules file and applies it to the built-in pack.
pub fn load_rules(path: &Path) -> Result<RuleSet, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigFileError::invalid(
            path,
            vec![format!(
                "cannot be read: {error}; check the path, or leave the option out to use the \
                 built-in rules"
            )],
        )
    })?;
    parse_rules(path, &text)
}

/// Parses rules-file text as if read from `path` (used in messages only).
pub fn parse_rules(path: &Path, text: &str) -> Result<RuleSet, ConfigFileError> {
    let file: RulesFile = config_file::parse(path, text)?;
    let mut problems = Problems {
        path,
        text,
        lines: Vec::new(),
    };
    let mut rules = RuleSet::builtin();
    let defaults = forecast_defaults(file.forecast.as_ref(), &mut problems);
    if let Some((warn, critical)) = defaults {
        for rule in &mut rules.rules {
            if let RuleKind::Forecast(forecast) = &mut rule.kind {
                forecast.warn_horizon = warn;
                forecast.critical_horizon = critical;
            }
        }
    }
    let mut disabled = Vec::new();
    for (name, table) in &file.rules {
        let span = name.span();
        let name = name.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.at(
                span,
                format!(
                    "rule name {name:?} must be letters, digits and underscores, e.g. \
                     InletTooHot"
                ),
            );
            continue;
        }
        if table.enabled == Some(false) {
            if rules.get(name).is_none() && table.kind.is_none() {
                problems.unknown_rule(span, name, &rules);
            }
            disabled.push(name.clone());
            continue;
        }
        match rules.position(name) {
            Some(index) => {
                if let Some(kind) = &table.kind {
                    let builtin_kind = rules.rules[index].kind.name();
                    if kind.get_ref() != builtin_kind {
                        problems.at(
                            kind.span(),
                            format!(
                                "rules.{name}.kind: {name} is a built-in {builtin_kind} rule and \
                                 cannot become {}; give the new rule another name",
                                kind.get_ref()
                            ),
                        );
                        continue;
                    }
                }
                let mut rule = rules.rules[index].clone();
                apply::apply(&mut rule, name, table, &mut problems);
                rules.rules[index] = rule;
            }
            None => {
                let Some(kind) = &table.kind else {
                    problems.unknown_rule(span, name, &rules);
                    continue;
                };
                if let Some(rule) = apply::new_rule(name, kind, table, defaults, &mut problems) {
                    rules.rules.push(rule);
                }
            }
        }
    }
    rules.rules.retain(|rule| !disabled.contains(&rule.name));
    if problems.lines.is_empty() {
        Ok(rules)
    } else {
        Err(ConfigFileError {
            path: path.to_path_buf(),
            problems: problems.lines,
        })
    }
}

/// Problems found after parsing, each with its place in the file.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    lines: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, message: String) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.lines.push(format!(
            "config {}:{line}:{column}: {message}",
            self.path.display()
        ));
    }

    fn unknown_rule(&mut self, span: std::ops::Range<usize>, name: &str, rules: &RuleSet) {
        let names: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
        let hint = match closest(name, &names) {
            Some(close) => format!("did you mean {close}? "),
            None => String::new(),
        };
        self.at(
            span,
            format!(
                "rules.{name}: there is no built-in rule {name}; {hint}to add a new rule, set \
                 its kind (one of {})",
                KINDS.join(", ")
            ),
        );
    }

    fn duration(
        &mut self,
        field: &str,
        value: &Spanned<String>,
        allow_zero: bool,
    ) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(duration) if duration.is_zero() && !allow_zero => {
                self.at(
                    value.span(),
                    format!("{field} = \"0s\" is impossible here; it must be longer than zero"),
                );
                None
            }
            Ok(duration) if duration > Duration::from_secs(366 * 86_400) => {
                self.at(
                    value.span(),
                    format!(
                        "{field} = {:?} is longer than a year; write a duration such as \"7d\"",
                        value.get_ref()
                    ),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(message) => {
                self.at(value.span(), format!("{field}: {message}"));
                None
            }
        }
    }
}

fn forecast_defaults(
    defaults: Option<&ForecastDefaults>,
    problems: &mut Problems,
) -> Option<(Duration, Duration)> {
    let defaults = defaults?;
    let warn = match &defaults.warn_horizon {
        Some(value) => problems.duration("forecast.warn_horizon", value, false)?,
        None => crate::alert::pack::WARN_HORIZON,
    };
    let critical = match &defaults.critical_horizon {
        Some(value) => problems.duration("forecast.critical_horizon", value, false)?,
        None => crate::alert::pack::CRITICAL_HORIZON,
    };
    if critical > warn {
        let span = defaults
            .critical_horizon
            .as_ref()
            .or(defaults.warn_horizon.as_ref())
            .map(|s| s.span())
            .unwrap_or(0..0);
        problems.at(
            span,
            "forecast.critical_horizon is longer than forecast.warn_horizon; the critical \
             horizon must be the nearer one (e.g. warn \"7d\", critical \"2d\")"
                .to_owned(),
        );
        return None;
    }
    Some((warn, critical))
}

/// The candidate closest to `word`, if close enough to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    crate::alert::catalog::closest(word, candidates.iter().copied())
}

mod apply;
#[cfg(test)]
mod tests;
