//! From the text of a policy file to a validated [`Policy`], or to every problem in it at
//! once, each on one line naming the file, line and column, the key, and how to fix it.
//!
//! Syntax errors and unknown keys come from the TOML parser through
//! [`vigil_proto::config_file::parse`]; everything it cannot know (a time zone that does not
//! exist, a rule naming an undefined role, a window that ends before it starts) is found here,
//! located with the span TOML recorded for the offending value.

use super::calendar::{BusinessCalendar, HolidayRange, OpenInterval};
use super::contract::{
    AfterHours, DeclinedMeasure, DowntimeCost, ForecastHorizons, HostPattern, HostRole, HostScope,
    Measure, Policy, ResponseTarget, ResponseTargets, SeverityRule,
};
use super::facts::{AlertKind, ContractSeverity, EngineSeverity};
use super::file::{
    DeclinedFile, ForecastFile, HoursFile, MaintenanceFile, PolicyFile, ResponseFile, RoleFile,
    RuleFile,
};
use super::maintenance::{MaintenanceWindow, Recurrence, Schedule, LONGEST_RECURRING_WINDOW};
use super::version::{digest_of, PolicyVersionId};
use super::PolicyError;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::SignedDuration;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;
use vigil_proto::config_file::{self, parse_duration, ConfigFileError};

/// The longest holiday range accepted; a longer closure is more likely a typo in a year.
const LONGEST_HOLIDAY_DAYS: i32 = 366;

impl Policy {
    /// Parses and validates a policy file's text as a draft (version 0: not yet saved).
    /// `path` is only used in messages. Rules named in `alert_rules` must be built in.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_with_rules(path, text, &[])
    }

    /// Like [`Policy::parse`], where `alert_rules` may also name `configured_rules` (the
    /// rules a rules file adds).
    pub fn parse_with_rules(
        path: &Path,
        text: &str,
        configured_rules: &[String],
    ) -> Result<Policy, PolicyError> {
        let mut known = crate::alert::catalog::builtin_rule_names();
        known.extend(configured_rules.iter().cloned());
        Policy::parse_checked(path, text, 0, Some(known))
    }

    /// Parses and validates the text of a saved version. Its rule names were checked when
    /// it was saved (against the rules configured then), so they are taken as written.
    pub fn parse_version(path: &Path, text: &str, version: u64) -> Result<Policy, PolicyError> {
        Policy::parse_checked(path, text, version, None)
    }

    fn parse_checked(
        path: &Path,
        text: &str,
        version: u64,
        known_rules: Option<Vec<String>>,
    ) -> Result<Policy, PolicyError> {
        let file: PolicyFile = config_file::parse(path, text).map_err(with_missing_key_hints)?;
        let mut problems = Problems {
            path,
            text,
            list: Vec::new(),
            known_rules,
        };
        let policy = build(&file, text, version, &mut problems);
        match policy {
            Some(policy) if problems.list.is_empty() => Ok(policy),
            _ => Err(PolicyError::Invalid(ConfigFileError {
                path: path.to_path_buf(),
                problems: problems.list,
            })),
        }
    }
}

/// The TOML parser says which required key is missing but not what to write there.
fn with_missing_key_hints(mut error: ConfigFileError) -> ConfigFileError {
    const HINTS: [(&str, &str); 6] = [
        (
            "client",
            "add client = \"…\", the O= of the client's agent certificates",
        ),
        (
            "time_zone",
            "add time_zone = \"Europe/Berlin\" (the client's IANA zone)",
        ),
        (
            "hours",
            "add an [hours] table, e.g. weekdays = \"08:00-17:00\"",
        ),
        (
            "severity",
            "add severity = \"emergency\", \"critical\", \"warning\" or \"notice\"",
        ),
        ("hosts", "add hosts = [\"name\", \"glob*\"]"),
        (
            "measure",
            "add measure = \"backups\" (or another declined measure)",
        ),
    ];
    for problem in &mut error.problems {
        if let Some((_, hint)) = HINTS
            .iter()
            .find(|(key, _)| problem.contains(&format!("missing field `{key}`")))
        {
            if let Some(end) = problem.find(" (in `") {
                problem.truncate(end);
            }
            problem.push_str("; ");
            problem.push_str(hint);
        }
    }
    error
}

/// Problems found so far, each already formatted with its place.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<String>,
    /// The rule names `alert_rules` may use; `None`: any (a saved version).
    known_rules: Option<Vec<String>>,
}

impl Problems<'_> {
    fn at(&mut self, span: Range<usize>, message: impl std::fmt::Display) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.list.push(format!(
            "config {}:{line}:{column}: {message}",
            self.path.display()
        ));
    }
}

fn build(file: &PolicyFile, text: &str, version: u64, problems: &mut Problems) -> Option<Policy> {
    let client = file.client.get_ref().trim();
    // One rule for client ids: what `token create --client` accepts is what a policy names.
    if let Err(error) = crate::enroll::names::check_client_id(client) {
        problems.at(file.client.span(), error.to_string());
    }
    let time_zone = match TimeZone::get(file.time_zone.get_ref()) {
        Ok(zone) if file.time_zone.get_ref().contains('/') || file.time_zone.get_ref() == "UTC" => {
            Some(zone)
        }
        _ => {
            problems.at(
                file.time_zone.span(),
                format!(
                    "time_zone = {:?} is not an IANA time zone; write the client's zone, e.g. \
                     \"Europe/Berlin\" or \"America/New_York\" (list: timedatectl list-timezones)",
                    file.time_zone.get_ref()
                ),
            );
            None
        }
    };
    let after_hours = after_hours(file.after_hours.as_ref(), problems);
    let downtime_cost = downtime_cost(file, problems);
    // With an unknown zone the rest is still checked (against UTC), so every problem in the
    // file is reported at once.
    let zone_or_utc = time_zone.clone().unwrap_or(TimeZone::UTC);
    let calendar = calendar(&file.hours, zone_or_utc.clone(), problems);
    let response = response_targets(file.response.as_ref(), problems);
    let roles = roles(&file.role, problems);
    let role_names: BTreeSet<&str> = roles.iter().map(|role| role.name.as_str()).collect();
    let rules = rules(&file.rule, &role_names, problems);
    let maintenance = maintenance_windows(&file.maintenance, &zone_or_utc, &role_names, problems);
    let declined = declined_measures(&file.declined, &role_names, problems);
    let forecast = file
        .forecast
        .as_ref()
        .and_then(|forecast| forecast_horizons(forecast, problems));
    let report = file
        .report
        .as_ref()
        .and_then(|report| report_schedule(report, problems));
    Some(Policy {
        version: PolicyVersionId {
            client: client.to_string(),
            version,
            digest: digest_of(text),
        },
        display_name: file.display_name.clone(),
        calendar: time_zone.map(|_| calendar)?,
        after_hours,
        roles,
        rules,
        response,
        maintenance,
        declined,
        downtime_cost,
        forecast,
        report,
    })
}

/// `[report]`: addresses that look like addresses, a day that every month has.
fn report_schedule(
    report: &Spanned<super::file::ReportFile>,
    problems: &mut Problems,
) -> Option<super::contract::ReportSchedule> {
    let file = report.get_ref();
    let language = match &file.language {
        None => "en".to_string(),
        Some(code) => {
            let known = crate::report::i18n::Language::from_code(code.get_ref());
            if known.is_none() {
                problems.at(
                    code.span(),
                    format!(
                        "[report] language = {:?} is not a language the report is written in \
                         (known: {}); did you mean {:?}?",
                        code.get_ref(),
                        crate::report::i18n::Language::known(),
                        crate::report::i18n::Language::nearest(code.get_ref())
                    ),
                );
            }
            known.map_or("en", |language| language.code()).to_string()
        }
    };
    // A report read only in the console needs nobody to mail it to.
    if file.send_to.is_empty() && file.language.is_none() {
        problems.at(
            report.span(),
            "[report] has no send_to; add send_to = [\"owner@client.example\"] or remove [report]",
        );
    }
    let mut send_to = Vec::new();
    for address in &file.send_to {
        let text = address.get_ref().trim();
        let inner = text
            .rsplit_once('<')
            .and_then(|(_, rest)| rest.strip_suffix('>'))
            .unwrap_or(text);
        let valid = inner.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !inner.contains(' ')
        });
        if !valid {
            problems.at(
                address.span(),
                format!(
                    "send_to {text:?} is not an email address; write \"owner@client.example\" \
                     or \"Name <owner@client.example>\""
                ),
            );
        }
        send_to.push(text.to_string());
    }
    let day = match &file.day {
        None => 1,
        Some(day) if (1..=28).contains(day.get_ref()) => *day.get_ref() as i8,
        Some(day) => {
            problems.at(
                day.span(),
                format!(
                    "[report] day = {} is not a day every month has; write 1 to 28",
                    day.get_ref()
                ),
            );
            1
        }
    };
    Some(super::contract::ReportSchedule {
        send_to,
        day,
        language,
    })
}

/// `[forecast]`: both horizons, the critical one within the warning one.
fn forecast_horizons(
    forecast: &Spanned<ForecastFile>,
    problems: &mut Problems,
) -> Option<ForecastHorizons> {
    let file = forecast.get_ref();
    let warn = match &file.warn_within {
        Some(value) => positive_duration("[forecast]", "warn_within", value, problems)?,
        None => Duration::from_secs(7 * 86_400),
    };
    let critical = match &file.critical_within {
        Some(value) => positive_duration("[forecast]", "critical_within", value, problems)?,
        None => Duration::from_secs(2 * 86_400).min(warn),
    };
    if critical > warn {
        problems.at(
            forecast.span(),
            "[forecast]: critical_within is longer than warn_within; the critical horizon must \
             be the nearer one, e.g. warn_within = \"7d\", critical_within = \"2d\"",
        );
        return None;
    }
    Some(ForecastHorizons { warn, critical })
}

fn after_hours(value: Option<&Spanned<String>>, problems: &mut Problems) -> AfterHours {
    let Some(value) = value else {
        return AfterHours::From(ContractSeverity::Emergency);
    };
    match value.get_ref().as_str() {
        "none" => AfterHours::Nothing,
        name => match ContractSeverity::from_name(name) {
            Some(severity) => AfterHours::From(severity),
            None => {
                problems.at(
                    value.span(),
                    format!(
                        "after_hours = {name:?} is not a coverage; write \"none\" or the lowest \
                         severity sent outside business hours: \"emergency\", \"critical\", \
                         \"warning\" or \"notice\""
                    ),
                );
                AfterHours::From(ContractSeverity::Emergency)
            }
        },
    }
}

fn downtime_cost(file: &PolicyFile, problems: &mut Problems) -> Option<DowntimeCost> {
    match (&file.downtime_cost_per_hour, &file.currency) {
        (None, None) => None,
        (Some(cost), None) => {
            problems.at(
                cost.span(),
                "downtime_cost_per_hour is given without a currency; add currency = \"EUR\" \
                 (or the client's ISO 4217 code)",
            );
            None
        }
        (None, Some(currency)) => {
            problems.at(
                currency.span(),
                "currency is given without downtime_cost_per_hour; add the client's cost of an \
                 hour of downtime, e.g. downtime_cost_per_hour = 450, or remove currency",
            );
            None
        }
        (Some(cost), Some(currency)) => {
            let per_hour = *cost.get_ref();
            if !per_hour.is_finite() || per_hour < 0.0 {
                problems.at(
                    cost.span(),
                    format!(
                        "downtime_cost_per_hour = {per_hour} is not a cost; write a positive \
                         amount such as 450"
                    ),
                );
            }
            let code = currency.get_ref();
            if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                problems.at(
                    currency.span(),
                    format!(
                        "currency = {code:?} is not an ISO 4217 code; write three capital \
                         letters such as \"EUR\", \"USD\" or \"GBP\""
                    ),
                );
            }
            Some(DowntimeCost {
                per_hour,
                currency: code.clone(),
            })
        }
    }
}

fn calendar(
    hours: &Spanned<HoursFile>,
    time_zone: TimeZone,
    problems: &mut Problems,
) -> BusinessCalendar {
    let problems_before = problems.list.len();
    let weekdays = hours
        .get_ref()
        .weekdays
        .as_ref()
        .map(|value| opening_hours("weekdays", value, problems))
        .unwrap_or_default();
    let mut week: [Vec<OpenInterval>; 7] = Default::default();
    for (index, (name, value)) in hours.get_ref().days().into_iter().enumerate() {
        week[index] = match value {
            Some(value) => opening_hours(name, value, problems),
            None if index < 5 => weekdays.clone(),
            None => Vec::new(),
        };
    }
    if week.iter().all(Vec::is_empty) && problems.list.len() == problems_before {
        problems.at(
            hours.span(),
            "[hours] opens on no day; give the opening hours, e.g. weekdays = \"08:00-17:00\"",
        );
    }
    let mut holidays = Vec::new();
    for value in &hours.get_ref().holidays {
        if let Some(range) = holiday(value, problems) {
            holidays.push(range);
        }
    }
    BusinessCalendar::new(time_zone, week, holidays)
}

/// `"08:00-12:00, 13:00-17:00"` or `"closed"`.
fn opening_hours(day: &str, value: &Spanned<String>, problems: &mut Problems) -> Vec<OpenInterval> {
    let text = value.get_ref().trim();
    if text.eq_ignore_ascii_case("closed") {
        return Vec::new();
    }
    let mut intervals: Vec<OpenInterval> = Vec::new();
    for part in text.split(',') {
        let interval = part.trim().split_once('-').and_then(|(start, end)| {
            let start_minute = clock_minute(start.trim(), false)?;
            let end_minute = clock_minute(end.trim(), true)?;
            (start_minute < end_minute).then_some(OpenInterval {
                start_minute,
                end_minute,
            })
        });
        match interval {
            Some(interval)
                if intervals
                    .last()
                    .is_none_or(|last| last.end_minute <= interval.start_minute) =>
            {
                intervals.push(interval)
            }
            _ => {
                problems.at(
                    value.span(),
                    format!(
                        "hours.{day} = {:?} is not opening hours; write \"08:00-17:00\", \
                         several in order as \"08:00-12:00, 13:00-17:00\", or \"closed\"",
                        value.get_ref()
                    ),
                );
                return Vec::new();
            }
        }
    }
    intervals
}

/// `"HH:MM"` as minutes after midnight; `"24:00"` only as an end.
fn clock_minute(text: &str, may_be_midnight_end: bool) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    match (hours, minutes) {
        (24, 0) if may_be_midnight_end => Some(24 * 60),
        (0..=23, 0..=59) => Some(hours * 60 + minutes),
        _ => None,
    }
}

fn clock_time(text: &str) -> Option<Time> {
    let minute = clock_minute(text, false)?;
    Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()
}

/// `"2025-12-25"` or `"2025-12-24..2025-12-31"`.
fn holiday(value: &Spanned<String>, problems: &mut Problems) -> Option<HolidayRange> {
    let text = value.get_ref().trim();
    let (first, last) = text.split_once("..").unwrap_or((text, text));
    let parsed = first
        .trim()
        .parse::<Date>()
        .ok()
        .zip(last.trim().parse::<Date>().ok());
    match parsed {
        Some((first, last))
            if first <= last && (last - first).get_days() < LONGEST_HOLIDAY_DAYS =>
        {
            Some(HolidayRange { first, last })
        }
        Some(_) => {
            problems.at(
                value.span(),
                format!(
                    "hours.holidays: {text:?} ends before it starts or spans more than a year; \
                     write the first and last closed day in order, e.g. \"2025-12-24..2025-12-31\""
                ),
            );
            None
        }
        None => {
            problems.at(
                value.span(),
                format!(
                    "hours.holidays: {text:?} is not a date; write \"2025-12-25\" or a range \
                     \"2025-12-24..2025-12-31\""
                ),
            );
            None
        }
    }
}

fn response_targets(file: Option<&ResponseFile>, problems: &mut Problems) -> ResponseTargets {
    let mut targets = ResponseTargets::default();
    let Some(file) = file else {
        return targets;
    };
    let entries = [
        ("emergency", &file.emergency, &mut targets.emergency),
        ("critical", &file.critical, &mut targets.critical),
        ("warning", &file.warning, &mut targets.warning),
        ("notice", &file.notice, &mut targets.notice),
    ];
    for (key, value, target) in entries {
        let Some(value) = value else { continue };
        match response_target(value.get_ref()) {
            Some(parsed) => *target = parsed,
            None => problems.at(
                value.span(),
                format!(
                    "response.{key} = {:?} is not a response time; write a wall-clock duration \
                     such as \"1h\" or \"30m\", or business time such as \"4 business hours\" \
                     or \"90 business minutes\"",
                    value.get_ref()
                ),
            ),
        }
    }
    targets
}

fn response_target(text: &str) -> Option<ResponseTarget> {
    let text = text.trim();
    let business = [
        (" business hours", 3600),
        (" business hour", 3600),
        (" business minutes", 60),
        (" business minute", 60),
    ];
    for (suffix, seconds) in business {
        if let Some(number) = text.strip_suffix(suffix) {
            let count: i64 = number.trim().parse().ok().filter(|&count| count > 0)?;
            return Some(ResponseTarget::BusinessTime(SignedDuration::from_secs(
                count * seconds,
            )));
        }
    }
    let duration = parse_duration(text).ok().filter(|d| !d.is_zero())?;
    SignedDuration::try_from(duration)
        .ok()
        .map(ResponseTarget::WallClock)
}

fn roles(files: &[RoleFile], problems: &mut Problems) -> Vec<HostRole> {
    let mut roles: Vec<HostRole> = Vec::new();
    let mut exact_hosts: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let name = file.name.get_ref().trim();
        if !is_plain_name(name) {
            problems.at(
                file.name.span(),
                format!(
                    "[[role]] name = {:?} is not a role name; use lowercase letters, digits, \
                     '-' or '_', e.g. \"server\"",
                    file.name.get_ref()
                ),
            );
            continue;
        }
        if roles.iter().any(|role| role.name == name) {
            problems.at(
                file.name.span(),
                format!("[[role]] '{name}' is defined twice; merge the two or rename one"),
            );
            continue;
        }
        if file.hosts.get_ref().is_empty() {
            problems.at(
                file.hosts.span(),
                format!(
                    "[[role]] '{name}': hosts is empty; list host names or globs, e.g. \
                     hosts = [\"dental-ws*\"]"
                ),
            );
        }
        let hosts = host_patterns(
            &format!("[[role]] '{name}'"),
            file.hosts.get_ref(),
            problems,
        );
        for pattern in hosts.iter().filter(|pattern| !pattern.is_glob()) {
            if let Some(other) = exact_hosts.insert(pattern.as_str().to_string(), name.to_string())
            {
                let span = file
                    .hosts
                    .get_ref()
                    .iter()
                    .find(|host| HostPattern::new(host.get_ref().trim()) == *pattern)
                    .map_or(file.name.span(), Spanned::span);
                problems.at(
                    span,
                    format!(
                        "[[role]] '{name}': host '{pattern}' is already in role '{other}'; a \
                         host has one role, so remove it from one of them"
                    ),
                );
            }
        }
        roles.push(HostRole {
            name: name.to_string(),
            description: file.description.clone(),
            hosts,
        });
    }
    roles
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn host_patterns(
    owner: &str,
    values: &[Spanned<String>],
    problems: &mut Problems,
) -> Vec<HostPattern> {
    let mut patterns = Vec::new();
    for value in values {
        let text = value.get_ref().trim();
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '?'));
        if valid {
            patterns.push(HostPattern::new(text));
        } else {
            problems.at(
                value.span(),
                format!(
                    "{owner}: host {:?} is not a host name or glob; write a name such as \
                     \"dental-srv01\" or a glob such as \"dental-ws*\"",
                    value.get_ref()
                ),
            );
        }
    }
    patterns
}

fn role_references(
    owner: &str,
    values: &[Spanned<String>],
    role_names: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Vec<String> {
    let mut roles = Vec::new();
    for value in values {
        let name = value.get_ref().trim();
        if role_names.contains(name) {
            roles.push(name.to_string());
        } else {
            let known = if role_names.is_empty() {
                "none is defined yet".to_string()
            } else {
                format!(
                    "defined: {}",
                    role_names.iter().copied().collect::<Vec<_>>().join(", ")
                )
            };
            problems.at(
                value.span(),
                format!(
                    "{owner}: role '{name}' is not defined; add a [[role]] named '{name}' or \
                     use a defined one ({known})"
                ),
            );
        }
    }
    roles
}

fn kinds(owner: &str, values: &[Spanned<String>], problems: &mut Problems) -> Vec<AlertKind> {
    let mut kinds = Vec::new();
    for value in values {
        match AlertKind::from_name(value.get_ref().trim()) {
            Some(kind) => kinds.push(kind),
            None => problems.at(
                value.span(),
                format!(
                    "{owner}: kind {:?} is not an alert kind; {}use one of: {}",
                    value.get_ref(),
                    crate::alert::catalog::did_you_mean(
                        value.get_ref().trim(),
                        AlertKind::ALL.map(AlertKind::as_str)
                    ),
                    AlertKind::names()
                ),
            ),
        }
    }
    kinds
}

/// The engine rules a `[[rule]]` names, each checked against the rules that exist.
fn alert_rules(owner: &str, values: &[Spanned<String>], problems: &mut Problems) -> Vec<String> {
    let mut rules = Vec::new();
    for value in values {
        let name = value.get_ref().trim();
        let Some(known) = &problems.known_rules else {
            rules.push(name.to_string());
            continue;
        };
        if known.iter().any(|known| known == name) {
            rules.push(name.to_string());
        } else {
            let hint = crate::alert::catalog::did_you_mean(name, known.iter().map(String::as_str));
            problems.at(
                value.span(),
                format!(
                    "{owner}: alert_rules names {name:?}, which is not a rule; {hint}the \
                     built-in rules are listed in docs/METRICS.md, and a rule added by the \
                     rules file ([alerts] rules) counts when the collector's config names it"
                ),
            );
        }
    }
    rules
}

fn positive_duration(
    owner: &str,
    key: &str,
    value: &Spanned<String>,
    problems: &mut Problems,
) -> Option<Duration> {
    match parse_duration(value.get_ref()) {
        Ok(duration) if !duration.is_zero() => Some(duration),
        Ok(_) => {
            problems.at(
                value.span(),
                format!(
                    "{owner}: {key} = {:?} is zero; write a positive duration such as \"5m\"",
                    value.get_ref()
                ),
            );
            None
        }
        Err(message) => {
            problems.at(value.span(), format!("{owner}: {key} = {message}"));
            None
        }
    }
}

fn severity(
    owner: &str,
    key: &str,
    value: &Spanned<String>,
    problems: &mut Problems,
) -> Option<ContractSeverity> {
    let severity = ContractSeverity::from_name(value.get_ref().trim());
    if severity.is_none() {
        problems.at(
            value.span(),
            format!(
                "{owner}: {key} = {:?} is not a contract severity; write \"emergency\", \
                 \"critical\", \"warning\" or \"notice\"",
                value.get_ref()
            ),
        );
    }
    severity
}

fn rules(
    files: &[RuleFile],
    role_names: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Vec<SeverityRule> {
    let mut rules: Vec<SeverityRule> = Vec::new();
    for file in files {
        let name = file.name.get_ref().trim().to_string();
        let owner = format!("[[rule]] '{name}'");
        if name.is_empty() {
            problems.at(
                file.name.span(),
                "[[rule]] has an empty name; name it after what it means, e.g. \"server unreachable\"",
            );
        } else if rules.iter().any(|rule| rule.name == name) {
            problems.at(
                file.name.span(),
                format!("{owner} is defined twice; rename one, since classifications cite rules by name"),
            );
        }
        let min_engine_severity = file.min_engine_severity.as_ref().and_then(|value| {
            let parsed = EngineSeverity::from_name(value.get_ref().trim());
            if parsed.is_none() {
                problems.at(
                    value.span(),
                    format!(
                        "{owner}: min_engine_severity = {:?} is not an engine severity; write \
                         \"warning\", \"critical\" or \"emergency\"",
                        value.get_ref()
                    ),
                );
            }
            parsed
        });
        let rule = SeverityRule {
            kinds: kinds(&owner, &file.kinds, problems),
            alert_rules: alert_rules(&owner, &file.alert_rules, problems),
            scope: HostScope {
                hosts: host_patterns(&owner, &file.hosts, problems),
                roles: role_references(&owner, &file.roles, role_names, problems),
            },
            min_engine_severity,
            lasting: file
                .lasting
                .as_ref()
                .and_then(|value| positive_duration(&owner, "lasting", value, problems))
                .and_then(|duration| SignedDuration::try_from(duration).ok()),
            forecast_within: file
                .forecast_within
                .as_ref()
                .and_then(|value| positive_duration(&owner, "forecast_within", value, problems)),
            labels: file.labels.clone(),
            severity: severity(&owner, "severity", &file.severity, problems)
                .unwrap_or(ContractSeverity::Notice),
            name,
        };
        rules.push(rule);
    }
    rules
}

fn maintenance_windows(
    files: &[MaintenanceFile],
    time_zone: &TimeZone,
    role_names: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Vec<MaintenanceWindow> {
    let mut windows = Vec::new();
    for file in files {
        let name = file.name.get_ref().trim().to_string();
        let owner = format!("[[maintenance]] '{name}'");
        let scope = HostScope {
            hosts: host_patterns(&owner, &file.hosts, problems),
            roles: role_references(&owner, &file.roles, role_names, problems),
        };
        let kinds = kinds(&owner, &file.kinds, problems);
        let schedule = match (&file.from, &file.until, &file.every, &file.lasts) {
            (Some(from), Some(until), None, None) => once(&owner, from, until, time_zone, problems),
            (None, None, Some(every), Some(lasts)) => recurring(&owner, every, lasts, problems),
            _ => {
                problems.at(
                    file.name.span(),
                    format!(
                        "{owner} has no schedule it can use; give either from and until \
                         (once, e.g. from = \"2025-11-08 18:00\", until = \"2025-11-08 22:00\") \
                         or every and lasts (e.g. every = \"second tuesday 19:00\", lasts = \"3h\")"
                    ),
                );
                None
            }
        };
        if let Some(schedule) = schedule {
            windows.push(MaintenanceWindow {
                name,
                schedule,
                scope,
                kinds,
            });
        }
    }
    windows
}

fn once(
    owner: &str,
    from: &Spanned<String>,
    until: &Spanned<String>,
    time_zone: &TimeZone,
    problems: &mut Problems,
) -> Option<Schedule> {
    let mut instant = |key: &str, value: &Spanned<String>| {
        let parsed = value
            .get_ref()
            .trim()
            .parse::<DateTime>()
            .ok()
            .and_then(|datetime| time_zone.to_timestamp(datetime).ok());
        if parsed.is_none() {
            problems.at(
                value.span(),
                format!(
                    "{owner}: {key} = {:?} is not a local date and time; write e.g. \
                     \"2025-11-08 18:00\" (in the policy's time_zone)",
                    value.get_ref()
                ),
            );
        }
        parsed
    };
    let start = instant("from", from);
    let end = instant("until", until);
    let (start, end) = (start?, end?);
    if end <= start {
        problems.at(
            until.span(),
            format!(
                "{owner}: until = {:?} is not after from = {:?}; swap them or fix the date",
                until.get_ref(),
                from.get_ref()
            ),
        );
        return None;
    }
    Some(Schedule::Once { start, end })
}

fn recurring(
    owner: &str,
    every: &Spanned<String>,
    lasts: &Spanned<String>,
    problems: &mut Problems,
) -> Option<Schedule> {
    let recurrence = recurrence(every.get_ref());
    if recurrence.is_none() {
        problems.at(
            every.span(),
            format!(
                "{owner}: every = {:?} is not a recurrence; write \"day 02:00\", \
                 \"sunday 02:00\", \"second tuesday 19:00\" or \"last friday 18:00\"",
                every.get_ref()
            ),
        );
    }
    let lasts_duration = positive_duration(owner, "lasts", lasts, problems)
        .and_then(|duration| SignedDuration::try_from(duration).ok());
    if let Some(duration) = lasts_duration {
        if duration > LONGEST_RECURRING_WINDOW {
            problems.at(
                lasts.span(),
                format!(
                    "{owner}: lasts = {:?} is longer than 7 days; split the window or make it \
                     a one-off with from and until",
                    lasts.get_ref()
                ),
            );
            return None;
        }
    }
    let (recurrence, starting) = recurrence?;
    Some(Schedule::Every {
        recurrence,
        starting,
        lasts: lasts_duration?,
    })
}

/// `"day 02:00"`, `"sunday 02:00"`, `"second tuesday 19:00"`, `"last friday 18:00"`.
fn recurrence(text: &str) -> Option<(Recurrence, Time)> {
    let lowered = text.to_ascii_lowercase();
    let words: Vec<&str> = lowered.split_whitespace().collect();
    match words.as_slice() {
        [day, time] if matches!(*day, "day" | "daily") => {
            Some((Recurrence::Daily, clock_time(time)?))
        }
        [day, time] => Some((Recurrence::Weekly(weekday(day)?), clock_time(time)?)),
        [ordinal, day, time] => {
            let weekday = weekday(day)?;
            let recurrence = match *ordinal {
                "first" => Recurrence::MonthlyNth(1, weekday),
                "second" => Recurrence::MonthlyNth(2, weekday),
                "third" => Recurrence::MonthlyNth(3, weekday),
                "fourth" => Recurrence::MonthlyNth(4, weekday),
                "last" => Recurrence::MonthlyLast(weekday),
                _ => return None,
            };
            Some((recurrence, clock_time(time)?))
        }
        _ => None,
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn declined_measures(
    files: &[DeclinedFile],
    role_names: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Vec<DeclinedMeasure> {
    let mut declined = Vec::new();
    for file in files {
        let owner = format!("[[declined]] '{}'", file.measure.get_ref());
        let measure = Measure::from_name(file.measure.get_ref().trim());
        if measure.is_none() {
            problems.at(
                file.measure.span(),
                format!(
                    "[[declined]] measure = {:?} is not a measure Vigil knows; use one of: {}",
                    file.measure.get_ref(),
                    Measure::names()
                ),
            );
        }
        let scope = HostScope {
            hosts: host_patterns(&owner, &file.hosts, problems),
            roles: role_references(&owner, &file.roles, role_names, problems),
        };
        let decided = file.decided.as_ref().and_then(|value| {
            let parsed = value.get_ref().trim().parse::<Date>().ok();
            if parsed.is_none() {
                problems.at(
                    value.span(),
                    format!(
                        "{owner}: decided = {:?} is not a date; write e.g. \"2024-09-02\"",
                        value.get_ref()
                    ),
                );
            }
            parsed
        });
        let at_most = match &file.at_most {
            None => Some(ContractSeverity::Notice),
            Some(value) => match severity(&owner, "at_most", value, problems) {
                Some(ContractSeverity::Emergency) => {
                    problems.at(
                        value.span(),
                        format!(
                            "{owner}: at_most = \"emergency\" would not cap anything; a \
                             declined measure accepts the risk, so write \"notice\", \
                             \"warning\" or \"critical\""
                        ),
                    );
                    None
                }
                other => other,
            },
        };
        if let (Some(measure), Some(at_most)) = (measure, at_most) {
            declined.push(DeclinedMeasure {
                measure,
                scope,
                decided,
                note: file.note.clone(),
                at_most,
            });
        }
    }
    declined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_hours_read_split_days_and_midnight() {
        let mut problems = Problems {
            path: Path::new("p.toml"),
            text: "",
            list: Vec::new(),
            known_rules: None,
        };
        let value = Spanned::new(0..0, "08:00-12:30, 13:30-24:00".to_string());
        let hours = opening_hours("monday", &value, &mut problems);
        assert!(problems.list.is_empty(), "{:?}", problems.list);
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].to_string(), "08:00-12:30");
        assert_eq!(hours[1].end_minute, 1440);
    }

    #[test]
    fn response_targets_read_wall_clock_and_business_time() {
        assert_eq!(
            response_target("4 business hours"),
            Some(ResponseTarget::BusinessTime(SignedDuration::from_hours(4)))
        );
        assert_eq!(
            response_target("90 business minutes"),
            Some(ResponseTarget::BusinessTime(SignedDuration::from_mins(90)))
        );
        assert_eq!(
            response_target("1h 30m"),
            Some(ResponseTarget::WallClock(SignedDuration::from_mins(90)))
        );
        assert_eq!(response_target("0 business hours"), None);
        assert_eq!(response_target("soon"), None);
    }

    #[test]
    fn recurrences_read_daily_weekly_and_monthly() {
        assert_eq!(
            recurrence("second Tuesday 19:00").map(|(r, _)| r),
            Some(Recurrence::MonthlyNth(2, Weekday::Tuesday))
        );
        assert_eq!(
            recurrence("last friday 18:00").map(|(r, _)| r),
            Some(Recurrence::MonthlyLast(Weekday::Friday))
        );
        assert_eq!(
            recurrence("day 02:00").map(|(r, _)| r),
            Some(Recurrence::Daily)
        );
        assert_eq!(recurrence("fifth monday 02:00"), None);
        assert_eq!(recurrence("sunday 2am"), None);
    }

    #[test]
    fn a_report_section_names_its_recipients_and_a_day_every_month_has() {
        let base = "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n";
        let good = format!("{base}[report]\nsend_to = [\"Owner <owner@acme.example>\"]\nday = 3\n");
        let policy = Policy::parse(Path::new("acme.toml"), &good).unwrap();
        let report = policy.report.unwrap();
        assert_eq!((report.send_to.len(), report.day), (1, 3));

        let bad = format!("{base}[report]\nsend_to = [\"owner at acme\"]\nday = 31\n");
        let error = Policy::parse(Path::new("acme.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not an email address"), "{error}");
        assert!(
            error.contains("day = 31 is not a day every month has"),
            "{error}"
        );
    }

    #[test]
    fn a_report_language_must_be_one_the_report_is_written_in() {
        let base = "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n";
        let german = format!("{base}[report]\nlanguage = \"de\"\n");
        let policy = Policy::parse(Path::new("acme.toml"), &german).unwrap();
        let report = policy.report.unwrap();
        assert_eq!((report.language.as_str(), report.send_to.len()), ("de", 0));
        let english = format!("{base}[report]\nsend_to = [\"owner@acme.example\"]\n");
        let policy = Policy::parse(Path::new("acme.toml"), &english).unwrap();
        assert_eq!(policy.report.unwrap().language, "en");

        let unknown = format!("{base}[report]\nlanguage = \"deu\"\n");
        let error = Policy::parse(Path::new("acme.toml"), &unknown)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("config acme.toml:6:12: [report] language = \"deu\" is not a language")
                && error.contains("(known: en, de, fr); did you mean \"de\"?"),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}
