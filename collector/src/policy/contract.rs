//! The validated contract ([`Policy`]) and its parts: host roles, severity rules, response
//! targets, after-hours coverage, declined measures and the cost of downtime.
//!
//! A `Policy` only exists once its text has passed [`validate`](super::validate), so every
//! role a rule names exists, every duration is positive and every time zone is real. It is
//! one specific version of one client's contract ([`PolicyVersionId`]); whatever it
//! classifies records that version.

use super::calendar::BusinessCalendar;
use super::facts::{AlertFacts, AlertKind, ContractSeverity, EngineSeverity};
use super::maintenance::MaintenanceWindow;
use super::version::PolicyVersionId;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One version of one client's contract, validated.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Which text this is: client, version number (0 for a file not yet saved) and digest.
    pub version: PolicyVersionId,
    /// A human name for reports, e.g. "Smile Dental Care".
    pub display_name: Option<String>,
    /// Business hours, holidays and time zone.
    pub calendar: BusinessCalendar,
    /// Which alerts go out when nobody is at the desk.
    pub after_hours: AfterHours,
    /// Host roles, in file order.
    pub roles: Vec<HostRole>,
    /// Severity rules, in file order: the first that matches decides.
    pub rules: Vec<SeverityRule>,
    /// How fast someone must respond, per contract severity.
    pub response: ResponseTargets,
    /// Planned windows during which alerts are held.
    pub maintenance: Vec<MaintenanceWindow>,
    /// Preventive measures the client declined, and so the risks they accepted.
    pub declined: Vec<DeclinedMeasure>,
    /// What an hour of downtime costs the client, for reports.
    pub downtime_cost: Option<DowntimeCost>,
    /// How far ahead forecasts warn for this client; `None`: the rules' own horizons.
    pub forecast: Option<ForecastHorizons>,
    /// Who gets the monthly report by email, and on which day; `None`: nobody.
    pub report: Option<ReportSchedule>,
}

/// `[report]`: the monthly report mailed to `send_to` (if anyone) on `day` (1–28) of each
/// month, written in `language` (a code the report's catalog knows: `en`, `de`, `fr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSchedule {
    pub send_to: Vec<String>,
    pub day: i8,
    pub language: String,
}

/// When a forecast alert fires for a client: the time left falls within `warn` (a warning)
/// or within `critical` (critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastHorizons {
    pub warn: Duration,
    pub critical: Duration,
}

impl Policy {
    /// The client this contract is with.
    pub fn client(&self) -> &str {
        &self.version.client
    }

    /// The role of a host: an exact name anywhere wins over a pattern; among patterns the
    /// first role in the file wins.
    pub fn role_of(&self, host: &str) -> Option<(&HostRole, &HostPattern)> {
        let exact = self.roles.iter().find_map(|role| {
            role.hosts
                .iter()
                .find(|pattern| !pattern.is_glob() && pattern.matches(host))
                .map(|pattern| (role, pattern))
        });
        exact.or_else(|| {
            self.roles.iter().find_map(|role| {
                role.hosts
                    .iter()
                    .find(|pattern| pattern.matches(host))
                    .map(|pattern| (role, pattern))
            })
        })
    }

    /// The first declined measure that covers this kind of alert on this host.
    pub fn declined_for(
        &self,
        host: &str,
        role: Option<&str>,
        kind: AlertKind,
    ) -> Option<&DeclinedMeasure> {
        self.declined.iter().find(|declined| {
            declined.measure.kinds().contains(&kind) && declined.scope.covers(host, role)
        })
    }

    /// What `duration` of downtime cost the client, if the contract says.
    pub fn cost_of_downtime(&self, duration: Duration) -> Option<f64> {
        self.downtime_cost
            .as_ref()
            .map(|cost| cost.per_hour * duration.as_secs_f64() / 3600.0)
    }
}

/// A named group of hosts, e.g. `server` or `workstation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRole {
    pub name: String,
    pub description: Option<String>,
    pub hosts: Vec<HostPattern>,
}

/// A host name, or a glob over host names (`*` any run of characters, `?` one character).
/// Matching ignores ASCII case: Windows reports `RECEPTION-PC`, the contract says
/// `reception-pc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    pub fn matches(&self, host: &str) -> bool {
        glob_matches(self.0.as_bytes(), host.to_ascii_lowercase().as_bytes())
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative glob matching with backtracking to the last `*`; linear for the patterns
/// people write.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Which hosts something applies to: listed by name or glob, or by role. Empty means every
/// host of the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostScope {
    pub hosts: Vec<HostPattern>,
    pub roles: Vec<String>,
}

impl HostScope {
    pub fn is_everything(&self) -> bool {
        self.hosts.is_empty() && self.roles.is_empty()
    }

    pub fn covers(&self, host: &str, role: Option<&str>) -> bool {
        self.is_everything()
            || self.hosts.iter().any(|pattern| pattern.matches(host))
            || role.is_some_and(|role| self.roles.iter().any(|name| name == role))
    }
}

impl fmt::Display for HostScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_everything() {
            return f.write_str("every host");
        }
        let mut parts = Vec::new();
        match self.roles.as_slice() {
            [] => {}
            [role] => parts.push(format!("role {role}")),
            roles => parts.push(format!("roles {}", roles.join(", "))),
        }
        match self.hosts.as_slice() {
            [] => {}
            [host] => parts.push(format!("host {host}")),
            hosts => parts.push(format!(
                "hosts {}",
                hosts
                    .iter()
                    .map(HostPattern::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        f.write_str(&parts.join(" and "))
    }
}

/// "Alerts like this are that severe under this contract." All conditions must hold; an
/// empty list or absent value does not restrict.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityRule {
    pub name: String,
    pub kinds: Vec<AlertKind>,
    /// Engine rule names, e.g. `FilesystemFullForecast`.
    pub alert_rules: Vec<String>,
    pub scope: HostScope,
    pub min_engine_severity: Option<EngineSeverity>,
    /// The condition has lasted at least this long (counted from when it began, not from
    /// when the engine fired).
    pub lasting: Option<SignedDuration>,
    /// The forecast says the resource runs out within this long.
    pub forecast_within: Option<Duration>,
    /// Labels the alert must carry with exactly these values.
    pub labels: BTreeMap<String, String>,
    pub severity: ContractSeverity,
}

impl SeverityRule {
    /// Every condition except `lasting` and `forecast_within`, which time alone can make
    /// true ([`SeverityRule::matches_from`]).
    pub fn matches_except_duration(&self, facts: &AlertFacts, role: Option<&str>) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&facts.kind))
            && (self.alert_rules.is_empty() || self.alert_rules.contains(&facts.rule))
            && self.scope.covers(&facts.host, role)
            && self
                .min_engine_severity
                .is_none_or(|minimum| facts.severity >= minimum)
            && (self.forecast_within.is_none() || facts.forecast_time_left.is_some())
            && self
                .labels
                .iter()
                .all(|(name, value)| facts.labels.get(name) == Some(value))
    }

    /// From when time alone makes this rule match, given facts as of `now`: once the
    /// condition has lasted `lasting`, and once the forecast's time left (shrinking at the
    /// current rate) is within `forecast_within`. `now` or earlier when both hold already.
    pub fn matches_from(&self, facts: &AlertFacts, now: Timestamp) -> Timestamp {
        let lasted = match self.lasting {
            Some(lasting) => facts
                .condition_since
                .checked_add(lasting)
                .unwrap_or(Timestamp::MAX),
            None => facts.condition_since,
        };
        let forecast_close = match (self.forecast_within, facts.forecast_time_left) {
            (Some(within), Some(time_left)) if time_left > within => now
                .checked_add(time_left - within)
                .unwrap_or(Timestamp::MAX),
            _ => lasted,
        };
        lasted.max(forecast_close)
    }
}

/// What goes out while nobody is at the desk. Within business hours everything goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterHours {
    /// No after-hours coverage: everything, emergencies included, waits for the next opening.
    Nothing,
    /// Alerts at or above this severity go to the on-call channels at once; the rest wait.
    From(ContractSeverity),
}

impl AfterHours {
    pub fn covers(self, severity: ContractSeverity) -> bool {
        match self {
            AfterHours::Nothing => false,
            AfterHours::From(minimum) => severity >= minimum,
        }
    }
}

/// How fast someone must respond to an alert of one severity, counted from when it is
/// delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseTarget {
    /// Elapsed time, any hour of any day.
    WallClock(SignedDuration),
    /// Time during business hours only, in the client's time zone.
    BusinessTime(SignedDuration),
}

impl fmt::Display for ResponseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Spelt the way policy files write them: "1h", "4 business hours".
        match self {
            ResponseTarget::WallClock(duration) => write!(
                f,
                "{} around the clock",
                humantime::format_duration(duration.unsigned_abs())
            ),
            ResponseTarget::BusinessTime(duration) => {
                let minutes = duration.as_mins();
                match (minutes % 60, minutes / 60) {
                    (0, 1) => f.write_str("1 business hour"),
                    (0, hours) => write!(f, "{hours} business hours"),
                    _ => write!(f, "{minutes} business minutes"),
                }
            }
        }
    }
}

/// One target per contract severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTargets {
    pub emergency: ResponseTarget,
    pub critical: ResponseTarget,
    pub warning: ResponseTarget,
    pub notice: ResponseTarget,
}

impl ResponseTargets {
    pub fn for_severity(&self, severity: ContractSeverity) -> ResponseTarget {
        match severity {
            ContractSeverity::Emergency => self.emergency,
            ContractSeverity::Critical => self.critical,
            ContractSeverity::Warning => self.warning,
            ContractSeverity::Notice => self.notice,
        }
    }
}

impl Default for ResponseTargets {
    /// One hour around the clock for emergencies; 4, 16 and 40 business hours for the rest.
    fn default() -> Self {
        Self {
            emergency: ResponseTarget::WallClock(SignedDuration::from_hours(1)),
            critical: ResponseTarget::BusinessTime(SignedDuration::from_hours(4)),
            warning: ResponseTarget::BusinessTime(SignedDuration::from_hours(16)),
            notice: ResponseTarget::BusinessTime(SignedDuration::from_hours(40)),
        }
    }
}

/// A preventive measure the MSP offered and the client declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// No backups: stale-backup alerts are expected.
    Backups,
    /// Failing or worn disks are not replaced before they fail.
    DiskReplacement,
    /// No more storage when disks fill.
    StorageUpgrade,
    /// No more memory when it runs short.
    MemoryUpgrade,
    /// No better cooling when machines run hot.
    Cooling,
}

impl Measure {
    pub const ALL: [Measure; 5] = [
        Measure::Backups,
        Measure::DiskReplacement,
        Measure::StorageUpgrade,
        Measure::MemoryUpgrade,
        Measure::Cooling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Backups => "backups",
            Measure::DiskReplacement => "disk_replacement",
            Measure::StorageUpgrade => "storage_upgrade",
            Measure::MemoryUpgrade => "memory_upgrade",
            Measure::Cooling => "cooling",
        }
    }

    pub fn from_name(name: &str) -> Option<Measure> {
        Measure::ALL
            .into_iter()
            .find(|measure| measure.as_str() == name)
    }

    pub fn names() -> String {
        Measure::ALL.map(Measure::as_str).join(", ")
    }

    /// The kinds of alert that the measure would have prevented.
    pub fn kinds(self) -> &'static [AlertKind] {
        match self {
            Measure::Backups => &[AlertKind::BackupStale],
            Measure::DiskReplacement => &[AlertKind::SmartFailure],
            Measure::StorageUpgrade => &[AlertKind::DiskFull],
            Measure::MemoryUpgrade => &[AlertKind::MemoryExhaustion],
            Measure::Cooling => &[AlertKind::Overheating],
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An accepted risk: alerts the measure would have prevented are capped at `at_most`, and
/// reports list the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclinedMeasure {
    pub measure: Measure,
    pub scope: HostScope,
    /// When the client declined, if recorded.
    pub decided: Option<Date>,
    /// The client's reason or the MSP's note, for reports.
    pub note: Option<String>,
    /// The highest severity these alerts may have; never `Emergency`.
    pub at_most: ContractSeverity,
}

/// The client's own estimate of what an hour of downtime costs them.
#[derive(Debug, Clone, PartialEq)]
pub struct DowntimeCost {
    pub per_hour: f64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names_ignoring_case() {
        let pattern = HostPattern::new("dental-ws*");
        assert!(pattern.matches("dental-ws01"));
        assert!(pattern.matches("DENTAL-WS12"));
        assert!(pattern.matches("dental-ws"));
        assert!(!pattern.matches("dental-srv01"));
        assert!(!pattern.matches("x-dental-ws01"));
        let pattern = HostPattern::new("op?-*-pc");
        assert!(pattern.matches("op1-chair-pc"));
        assert!(!pattern.matches("op12-chair-pc"));
        assert!(HostPattern::new("*").matches("anything"));
        assert!(HostPattern::new("a*b*c").matches("aXXbYYc"));
        assert!(!HostPattern::new("a*b*c").matches("aXXbYY"));
    }

    #[test]
    fn an_empty_scope_covers_every_host_and_roles_cover_their_members() {
        assert!(HostScope::default().covers("any", None));
        let scope = HostScope {
            hosts: vec![HostPattern::new("xray-*")],
            roles: vec!["server".into()],
        };
        assert!(scope.covers("xray-01", Some("workstation")));
        assert!(scope.covers("srv", Some("server")));
        assert!(!scope.covers("ws-01", Some("workstation")));
        assert!(!scope.covers("ws-01", None));
    }

    #[test]
    fn after_hours_coverage_is_a_severity_threshold() {
        let emergencies = AfterHours::From(ContractSeverity::Emergency);
        assert!(emergencies.covers(ContractSeverity::Emergency));
        assert!(!emergencies.covers(ContractSeverity::Critical));
        assert!(!AfterHours::Nothing.covers(ContractSeverity::Emergency));
    }
}
