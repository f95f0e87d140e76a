//! Applying one `[rules.NAME]` table: the fields each kind reads, their checks, and a new
//! rule built from its kind's defaults. Every problem goes to [`Problems`] with its place.

use super::{closest, OneOrMany, Problems, RuleTable, KINDS};
use crate::alert::pack::METRIC_CATALOG;
use crate::alert::rule::{
    Change, Creep, Direction, FailureKind, Flapping, Forecast, HostSilent, Rule, RuleKind,
    SeriesSilent, Severity, Signal, Staleness, Threshold, Unit,
};
use std::time::Duration;
use toml::Spanned;
use vigil_proto::model::Labels;

/// Fields that only some kinds read, for "does not apply" messages.
fn fields_set(table: &RuleTable) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut set = Vec::new();
    macro_rules! spanned {
        ($($field:ident => $name:literal),*) => {
            $(if let Some(value) = &table.$field { set.push(($name, value.span())); })*
        };
    }
    spanned!(
        metric => "metric", divide_by => "divide_by", above => "above", below => "below",
        clear => "clear", unless_usual => "unless_usual", warn_horizon => "warn_horizon", critical_horizon => "critical_horizon",
        min_history => "min_history", exhausted_at => "exhausted_at", direction => "direction",
        context => "context",
        window => "window", warn_after => "warn_after", escalate_after => "escalate_after", quiet_for => "quiet_for",
        max_age => "max_age", count => "count", after => "after", severity => "severity",
        reboot_grace => "reboot_grace",
        relative_to => "relative_to", explained_by => "explained_by", rise => "rise",
        unit => "unit"
    );
    set
}

fn applicable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "threshold" => &[
            "metric",
            "divide_by",
            "above",
            "below",
            "clear",
            "unless_usual",
            "unit",
        ],
        "forecast" => &[
            "metric",
            "divide_by",
            "warn_horizon",
            "critical_horizon",
            "min_history",
            "exhausted_at",
            "direction",
            "context",
            "unit",
        ],
        "change" => &[
            "metric",
            "window",
            "warn_after",
            "escalate_after",
            "quiet_for",
        ],
        "staleness" => &["metric", "max_age"],
        "flapping" => &["metric", "window", "count", "severity"],
        "creep" => &["metric", "relative_to", "explained_by", "rise"],
        "host_silent" => &["after", "reboot_grace"],
        "series_silent" => &["metric", "after", "severity"],
        _ => &[],
    }
}

/// Applies a table's fields to `rule`, reporting fields that do not fit its kind.
pub(super) fn apply(rule: &mut Rule, name: &str, table: &RuleTable, problems: &mut Problems) {
    let kind_name = rule.kind.name();
    let applicable = applicable_fields(kind_name);
    for (field, span) in fields_set(table) {
        if !applicable.contains(&field) {
            problems.at(
                span,
                format!(
                    "rules.{name}.{field} does not apply to {kind_name} rules; their fields \
                     are: for, clear_for, summary, category, {}",
                    applicable.join(", ")
                ),
            );
        }
    }
    if let Some(value) = &table.pending_for {
        if let Some(duration) = problems.duration(&format!("rules.{name}.for"), value, true) {
            rule.pending_for = duration;
        }
    }
    if let Some(value) = &table.clear_for {
        if let Some(duration) = problems.duration(&format!("rules.{name}.clear_for"), value, true) {
            rule.clear_for = duration;
        }
    }
    if let Some(value) = &table.summary {
        rule.summary = value.get_ref().clone();
    }
    if let Some(value) = &table.category {
        match FailureKind::parse(value.get_ref()) {
            Some(category) => rule.category = Some(category),
            None => problems.at(
                value.span(),
                format!(
                    "rules.{name}.category = {:?} is not an alert kind; {}use one of {}",
                    value.get_ref(),
                    crate::alert::catalog::did_you_mean(
                        value.get_ref(),
                        FailureKind::ALL.map(FailureKind::as_str)
                    ),
                    FailureKind::names()
                ),
            ),
        }
    }
    let field = |f: &str| format!("rules.{name}.{f}");
    let signal = signal_from(name, table, problems);
    match &mut rule.kind {
        RuleKind::Threshold(threshold) => {
            if let Some(signal) = signal {
                threshold.signal = signal;
            }
            if let Some((direction, levels)) = levels_from(name, table, problems) {
                threshold.direction = direction;
                threshold.levels = levels;
            }
            if let Some(clear) = &table.clear {
                threshold.clear = Some(*clear.get_ref());
            }
            if let Some(unless_usual) = &table.unless_usual {
                threshold.unless_usual = *unless_usual.get_ref();
            }
            if let Some(unit) = unit_from(name, table, problems) {
                threshold.unit = unit;
            }
            check_clear(name, table, threshold, problems);
        }
        RuleKind::Forecast(forecast) => {
            if let Some(signal) = signal {
                forecast.signal = signal;
            }
            if let Some(value) = &table.warn_horizon {
                if let Some(d) = problems.duration(&field("warn_horizon"), value, false) {
                    forecast.warn_horizon = d;
                }
            }
            if let Some(value) = &table.critical_horizon {
                if let Some(d) = problems.duration(&field("critical_horizon"), value, false) {
                    forecast.critical_horizon = d;
                }
            }
            if forecast.critical_horizon > forecast.warn_horizon {
                let span = table
                    .critical_horizon
                    .as_ref()
                    .or(table.warn_horizon.as_ref())
                    .map(|s| s.span())
                    .unwrap_or(0..0);
                problems.at(
                    span,
                    format!(
                        "rules.{name}: critical_horizon is longer than warn_horizon; the \
                         critical horizon must be the nearer one (e.g. warn \"7d\", critical \
                         \"2d\")"
                    ),
                );
            }
            if let Some(value) = &table.min_history {
                if let Some(d) = problems.duration(&field("min_history"), value, false) {
                    forecast.min_history = d;
                }
            }
            if let Some(value) = &table.exhausted_at {
                forecast.exhausted_at = *value.get_ref();
            }
            if let Some(value) = &table.direction {
                match value.get_ref().as_str() {
                    "above" => forecast.direction = Direction::Above,
                    "below" => forecast.direction = Direction::Below,
                    other => problems.at(
                        value.span(),
                        format!(
                            "{} = {other:?}: use \"above\" (the value rises to exhaustion, like \
                             used space) or \"below\" (it falls, like available memory)",
                            field("direction")
                        ),
                    ),
                }
            }
            if let Some(value) = &table.context {
                if check_metric(&field("context"), value.get_ref(), value.span(), problems) {
                    forecast.context = Some(value.get_ref().clone());
                }
            }
            if let Some(unit) = unit_from(name, table, problems) {
                forecast.unit = unit;
            }
        }
        RuleKind::Change(change) => {
            if let Some(signal) = signal {
                change.signal = signal;
            }
            if let Some(value) = &table.window {
                if let Some(d) = problems.duration(&field("window"), value, false) {
                    change.window = d;
                }
            }
            if let Some(value) = &table.quiet_for {
                if let Some(d) = problems.duration(&field("quiet_for"), value, false) {
                    change.quiet_for = d;
                }
            }
            if let Some(value) = &table.warn_after {
                change.warn_after = (*value.get_ref()).max(1);
            }
            if let Some(value) = &table.escalate_after {
                change.escalate_after = *value.get_ref();
            }
        }
        RuleKind::Staleness(staleness) => {
            if let Some(signal) = signal {
                staleness.signal = signal;
            }
            if let Some(value) = &table.max_age {
                if let Some(d) = problems.duration(&field("max_age"), value, false) {
                    staleness.max_age = d;
                }
            }
        }
        RuleKind::Flapping(flapping) => {
            if let Some(signal) = signal {
                flapping.signal = signal;
            }
            if let Some(value) = &table.window {
                if let Some(d) = problems.duration(&field("window"), value, false) {
                    flapping.window = d;
                }
            }
            if let Some(value) = &table.count {
                if *value.get_ref() < 2 {
                    problems.at(
                        value.span(),
                        format!(
                            "{} = {}: flapping needs at least 2 drops; use a threshold rule \
                             on the metric to alert on one",
                            field("count"),
                            value.get_ref()
                        ),
                    );
                }
                flapping.count = *value.get_ref();
            }
            if let Some(severity) = severity_from(name, table, problems) {
                flapping.severity = severity;
            }
        }
        RuleKind::Creep(creep) => {
            if let Some(signal) = signal {
                creep.signal = signal;
            }
            if let Some(value) = &table.relative_to {
                creep.relative_to = Some(Labels::from_pairs(value.get_ref().clone()));
            }
            if let Some(value) = &table.explained_by {
                if check_metric(
                    &field("explained_by"),
                    value.get_ref(),
                    value.span(),
                    problems,
                ) {
                    creep.explained_by = Some(value.get_ref().clone());
                }
            }
            if let Some(value) = &table.rise {
                creep.rise = *value.get_ref();
            }
        }
        RuleKind::HostSilent(silent) => {
            if let Some(value) = &table.after {
                if let Some(d) = problems.duration(&field("after"), value, false) {
                    silent.after = d;
                }
            }
            if let Some(value) = &table.reboot_grace {
                if let Some(d) = problems.duration(&field("reboot_grace"), value, false) {
                    silent.reboot_grace = d;
                }
            }
        }
        RuleKind::SeriesSilent(silent) => {
            if let Some(signal) = signal {
                silent.signal = signal;
            }
            if let Some(value) = &table.after {
                if let Some(d) = problems.duration(&field("after"), value, false) {
                    silent.after = d;
                }
            }
            if let Some(severity) = severity_from(name, table, problems) {
                silent.severity = severity;
            }
        }
    }
}

/// A new rule of the kind named in its table, with the kind's defaults for what it omits.
pub(super) fn new_rule(
    name: &str,
    kind: &Spanned<String>,
    table: &RuleTable,
    defaults: Option<(Duration, Duration)>,
    problems: &mut Problems,
) -> Option<Rule> {
    let minutes = |n: u64| Duration::from_secs(60 * n);
    let signal = || Signal {
        metrics: Vec::new(),
        matchers: Labels::new(),
        divide_by: None,
    };
    let (warn, critical) = defaults.unwrap_or((
        crate::alert::pack::WARN_HORIZON,
        crate::alert::pack::CRITICAL_HORIZON,
    ));
    let (kind_value, summary) = match kind.get_ref().as_str() {
        "threshold" => (
            RuleKind::Threshold(Threshold {
                signal: signal(),
                direction: Direction::Above,
                levels: Vec::new(),
                clear: None,
                unit: Unit::Plain,
                unless_usual: false,
            }),
            "{rule} on {host}: {value} (threshold {threshold})",
        ),
        "forecast" => (
            RuleKind::Forecast(Forecast {
                signal: signal(),
                exhausted_at: 1.0,
                direction: Direction::Above,
                warn_horizon: warn,
                critical_horizon: critical,
                min_history: Duration::from_secs(2 * 86_400),
                context: None,
                unit: Unit::Plain,
            }),
            "{rule} on {host}: limit reached in ~{time_left} (range {range}) {basis}",
        ),
        "change" => (
            RuleKind::Change(Change {
                signal: signal(),
                window: Duration::from_secs(7 * 86_400),
                warn_after: 2,
                escalate_after: 3,
                quiet_for: Duration::from_secs(7 * 86_400),
            }),
            "{rule} on {host}: {changes}",
        ),
        "staleness" => (
            RuleKind::Staleness(Staleness {
                signal: signal(),
                max_age: Duration::from_secs(36 * 3600),
            }),
            "{rule} on {host}: last success {age} ago ({expected})",
        ),
        "flapping" => (
            RuleKind::Flapping(Flapping {
                signal: signal(),
                window: Duration::from_secs(6 * 3600),
                count: 3,
                severity: Severity::Warning,
            }),
            "{rule} on {host}: down {count} times in {span}",
        ),
        "creep" => (
            RuleKind::Creep(Creep {
                signal: signal(),
                relative_to: None,
                explained_by: None,
                rise: 5.0,
            }),
            "{rule} on {host}: {rise} above its usual level at the same load",
        ),
        "host_silent" => (
            RuleKind::HostSilent(HostSilent {
                after: minutes(5),
                reboot_grace: minutes(30),
                site_share: 0.5,
                site_min_hosts: 3,
            }),
            "{rule}: {host} silent for {silent_for}",
        ),
        "series_silent" => (
            RuleKind::SeriesSilent(SeriesSilent {
                signal: signal(),
                after: minutes(10),
                severity: Severity::Critical,
            }),
            "{rule} on {host}: no samples for {silent_for}",
        ),
        other => {
            let hint = closest(other, KINDS)
                .map(|close| format!("did you mean {close:?}? "))
                .unwrap_or_default();
            problems.at(
                kind.span(),
                format!(
                    "rules.{name}.kind = {other:?} is not a rule kind; {hint}use one of {}",
                    KINDS.join(", ")
                ),
            );
            return None;
        }
    };
    let mut rule = Rule {
        name: name.to_owned(),
        category: None,
        summary: summary.to_owned(),
        pending_for: minutes(5),
        clear_for: minutes(5),
        kind: kind_value,
    };
    let before = problems.lines.len();
    apply(&mut rule, name, table, problems);
    if problems.lines.len() > before {
        return None;
    }
    let span = kind.span();
    match &rule.kind {
        RuleKind::HostSilent(_) => {}
        other => {
            if other.signal().is_none_or(|s| s.metrics.is_empty()) {
                problems.at(
                    span.clone(),
                    format!("rules.{name}: a {} rule needs a metric", other.name()),
                );
                return None;
            }
        }
    }
    if let RuleKind::Threshold(threshold) = &rule.kind {
        if threshold.levels.is_empty() {
            problems.at(
                span,
                format!(
                    "rules.{name}: a threshold rule needs `above` or `below` with at least one \
                     level, e.g. above = {{ warning = 80, critical = 90 }}"
                ),
            );
            return None;
        }
    }
    Some(rule)
}

fn signal_from(name: &str, table: &RuleTable, problems: &mut Problems) -> Option<Signal> {
    let metric = table.metric.as_ref()?;
    let metrics = match metric.get_ref() {
        OneOrMany::One(one) => vec![one.clone()],
        OneOrMany::Many(many) => many.clone(),
    };
    let mut ok = !metrics.is_empty();
    if metrics.is_empty() {
        problems.at(
            metric.span(),
            format!("rules.{name}.metric is empty; name at least one metric"),
        );
    }
    for one in &metrics {
        ok &= check_metric(
            &format!("rules.{name}.metric"),
            one,
            metric.span(),
            problems,
        );
    }
    let divide_by = match &table.divide_by {
        Some(value) => {
            ok &= check_metric(
                &format!("rules.{name}.divide_by"),
                value.get_ref(),
                value.span(),
                problems,
            );
            Some(value.get_ref().clone())
        }
        None => None,
    };
    let matchers = table
        .matchers
        .as_ref()
        .map(|m| Labels::from_pairs(m.clone()))
        .unwrap_or_default();
    ok.then_some(Signal {
        metrics,
        matchers,
        divide_by,
    })
}

fn check_metric(
    field: &str,
    metric: &str,
    span: std::ops::Range<usize>,
    problems: &mut Problems,
) -> bool {
    if METRIC_CATALOG.contains(&metric) {
        return true;
    }
    let hint = closest(metric, METRIC_CATALOG)
        .map(|close| format!("did you mean {close:?}? "))
        .unwrap_or_default();
    problems.at(
        span,
        format!("{field}: unknown metric {metric:?}; {hint}agents report the metrics listed in docs/METRICS.md"),
    );
    false
}

fn levels_from(
    name: &str,
    table: &RuleTable,
    problems: &mut Problems,
) -> Option<(Direction, Vec<(Severity, f64)>)> {
    let (direction, levels) = match (&table.above, &table.below) {
        (Some(above), Some(below)) => {
            problems.at(
                below.span(),
                format!("rules.{name}: set either `above` or `below`, not both"),
            );
            let _ = above;
            return None;
        }
        (Some(above), None) => (Direction::Above, above),
        (None, Some(below)) => (Direction::Below, below),
        (None, None) => return None,
    };
    let set = levels.get_ref();
    let list: Vec<(Severity, f64)> = [
        (Severity::Warning, set.warning),
        (Severity::Critical, set.critical),
        (Severity::Emergency, set.emergency),
    ]
    .into_iter()
    .filter_map(|(severity, level)| level.map(|l| (severity, l)))
    .collect();
    if list.is_empty() {
        problems.at(
            levels.span(),
            format!("rules.{name}: give at least one level, e.g. {{ warning = 80 }}"),
        );
        return None;
    }
    let ordered = list.windows(2).all(|w| match direction {
        Direction::Above => w[0].1 <= w[1].1,
        Direction::Below => w[0].1 >= w[1].1,
    });
    if !ordered {
        problems.at(
            levels.span(),
            format!(
                "rules.{name}: levels must get more severe in the direction of the rule \
                 (for `above`, warning ≤ critical ≤ emergency)"
            ),
        );
        return None;
    }
    Some((direction, list))
}

fn check_clear(name: &str, table: &RuleTable, threshold: &Threshold, problems: &mut Problems) {
    let (Some(clear), Some(mildest)) = (
        threshold.clear,
        threshold
            .levels
            .iter()
            .map(|(_, l)| *l)
            .reduce(|a, b| match threshold.direction {
                Direction::Above => a.min(b),
                Direction::Below => a.max(b),
            }),
    ) else {
        return;
    };
    let wrong_side = match threshold.direction {
        Direction::Above => clear > mildest,
        Direction::Below => clear < mildest,
    };
    if wrong_side {
        let span = table
            .clear
            .as_ref()
            .map(|c| c.span())
            .or(table.above.as_ref().map(|a| a.span()))
            .or(table.below.as_ref().map(|b| b.span()))
            .unwrap_or(0..0);
        problems.at(
            span,
            format!(
                "rules.{name}.clear = {clear} is on the wrong side of the level {mildest}; the \
                 clear level is where a firing alert resolves, so it lies before the trigger"
            ),
        );
    }
}

fn unit_from(name: &str, table: &RuleTable, problems: &mut Problems) -> Option<Unit> {
    let value = table.unit.as_ref()?;
    let unit = match value.get_ref().as_str() {
        "ratio" => Unit::Ratio,
        "celsius" => Unit::Celsius,
        "bytes" => Unit::Bytes,
        "percent" => Unit::Percent,
        "plain" => Unit::Plain,
        other => {
            problems.at(
                value.span(),
                format!(
                    "rules.{name}.unit = {other:?}: use ratio, celsius, bytes, percent or plain"
                ),
            );
            return None;
        }
    };
    Some(unit)
}

fn severity_from(name: &str, table: &RuleTable, problems: &mut Problems) -> Option<Severity> {
    let value = table.severity.as_ref()?;
    match Severity::parse(value.get_ref()) {
        Some(severity) => Some(severity),
        None => {
            problems.at(
                value.span(),
                format!(
                    "rules.{name}.severity = {:?}: use warning, critical or emergency",
                    value.get_ref()
                ),
            );
            None
        }
    }
}
