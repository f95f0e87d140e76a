//! The TOML shape of a client's policy file, exactly as written, with the position of every
//! value so that [`validate`](super::validate) can point at the line of a problem.
//!
//! Unknown keys are refused (`deny_unknown_fields`): a misspelt `lastin = "5m"` silently
//! ignored would turn an emergency into a warning. What each key means, and its default, is
//! documented here and in `deploy/policies/dental-practice.toml`.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The client's name as in its agents' certificates (the `O=` of their subject).
    pub client: Spanned<String>,
    /// A human name for reports. Default: the client's name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The client's IANA time zone, e.g. `Europe/Berlin`; business hours and maintenance
    /// windows are in its local time.
    pub time_zone: Spanned<String>,
    /// Which alerts go out outside business hours: `"none"`, or the lowest contract severity
    /// that does (`"emergency"`, `"critical"`, `"warning"`, `"notice"`).
    /// Default: `"emergency"`.
    #[serde(default)]
    pub after_hours: Option<Spanned<String>>,
    /// What an hour of downtime costs the client, in `currency`. Default: not stated.
    #[serde(default)]
    pub downtime_cost_per_hour: Option<Spanned<f64>>,
    /// ISO 4217 currency of `downtime_cost_per_hour`, e.g. `"EUR"`. Required with it.
    #[serde(default)]
    pub currency: Option<Spanned<String>>,
    /// Opening hours and holidays. Required.
    pub hours: Spanned<HoursFile>,
    /// Response targets per contract severity. Default: see `ResponseTargets::default`.
    #[serde(default)]
    pub response: Option<ResponseFile>,
    /// `[[role]]`: named groups of hosts.
    #[serde(default)]
    pub role: Vec<RoleFile>,
    /// `[[rule]]`: what makes an alert an emergency (or anything else); first match wins.
    #[serde(default)]
    pub rule: Vec<RuleFile>,
    /// `[[maintenance]]`: planned windows during which alerts are held.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceFile>,
    /// `[[declined]]`: preventive measures the client declined.
    #[serde(default)]
    pub declined: Vec<DeclinedFile>,
    /// `[forecast]`: how far ahead this client wants to hear of a resource running out.
    /// Default: each forecast rule's own horizons (warn at 7 days, critical at 2).
    #[serde(default)]
    pub forecast: Option<Spanned<ForecastFile>>,
    /// `[report]`: who gets the monthly report by email, and on which day. Default: nobody.
    #[serde(default)]
    pub report: Option<Spanned<ReportFile>>,
}

/// `[report]`: `send_to = ["owner@practice.example"]`, `day = 1`, `language = "de"`. The
/// report on the past month is mailed on `day` of each month, in the client's time zone and
/// language.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFile {
    /// Addresses, `"name@example.com"` or `"Name <name@example.com>"`. At least one.
    #[serde(default)]
    pub send_to: Vec<Spanned<String>>,
    /// Day of the month, 1 to 28. Default: 1.
    #[serde(default)]
    pub day: Option<Spanned<i64>>,
    /// The language of the report and its email: `en` (default), `de`, `fr`.
    #[serde(default)]
    pub language: Option<Spanned<String>>,
}

/// `[forecast]`: `warn_within = "14d"`, `critical_within = "3d"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastFile {
    #[serde(default)]
    pub warn_within: Option<Spanned<String>>,
    #[serde(default)]
    pub critical_within: Option<Spanned<String>>,
}

/// `[hours]`: one entry per weekday, each `"08:00-17:00"`, several spans separated by commas
/// (`"08:00-12:00, 13:00-17:00"`), or `"closed"`. A day not given is closed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursFile {
    /// Monday to Friday at once; a named day overrides it.
    #[serde(default)]
    pub weekdays: Option<Spanned<String>>,
    #[serde(default)]
    pub monday: Option<Spanned<String>>,
    #[serde(default)]
    pub tuesday: Option<Spanned<String>>,
    #[serde(default)]
    pub wednesday: Option<Spanned<String>>,
    #[serde(default)]
    pub thursday: Option<Spanned<String>>,
    #[serde(default)]
    pub friday: Option<Spanned<String>>,
    #[serde(default)]
    pub saturday: Option<Spanned<String>>,
    #[serde(default)]
    pub sunday: Option<Spanned<String>>,
    /// Closed days: `"2025-12-25"`, or a range with both ends closed,
    /// `"2025-12-24..2025-12-31"`.
    #[serde(default)]
    pub holidays: Vec<Spanned<String>>,
}

impl HoursFile {
    /// The named days, Monday first, with their key names.
    pub fn days(&self) -> [(&'static str, &Option<Spanned<String>>); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }
}

/// `[response]`: how fast someone must respond, counted from delivery. Each is a wall-clock
/// duration (`"1h"`, `"30m"`) or business time (`"4 business hours"`,
/// `"90 business minutes"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseFile {
    /// Default: `"1h"`.
    #[serde(default)]
    pub emergency: Option<Spanned<String>>,
    /// Default: `"4 business hours"`.
    #[serde(default)]
    pub critical: Option<Spanned<String>>,
    /// Default: `"16 business hours"`.
    #[serde(default)]
    pub warning: Option<Spanned<String>>,
    /// Default: `"40 business hours"`.
    #[serde(default)]
    pub notice: Option<Spanned<String>>,
}

/// `[[role]]`: a named group of hosts. A host listed by exact name wins over any glob; among
/// globs the first role in the file wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// e.g. `"server"`, `"workstation"`, `"imaging"`.
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Host names or globs (`*`, `?`), matched ignoring case. At least one.
    pub hosts: Spanned<Vec<Spanned<String>>>,
}

/// `[[rule]]`: alerts that meet every condition given get `severity`. Rules are tried in file
/// order; an alert no rule matches keeps the engine's severity (warning, critical or
/// emergency).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Shown in every classification this rule makes, e.g. `"server unreachable"`.
    pub name: Spanned<String>,
    /// `"emergency"`, `"critical"`, `"warning"` or `"notice"`.
    pub severity: Spanned<String>,
    /// Alert kinds (`host_down`, `disk_full`, …). Default: any.
    #[serde(default)]
    pub kinds: Vec<Spanned<String>>,
    /// Engine rule names, e.g. `"FilesystemFullForecast"`. Default: any.
    #[serde(default)]
    pub alert_rules: Vec<Spanned<String>>,
    /// Roles whose hosts the rule covers. Default: any host (unless `hosts` is given).
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    /// Host names or globs the rule covers, besides `roles`.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// The engine's severity must be at least this (`warning`, `critical`, `emergency`).
    #[serde(default)]
    pub min_engine_severity: Option<Spanned<String>>,
    /// The condition has lasted at least this long, counted from when it began (a silent
    /// host's last sample), not from when the engine fired, e.g. `"5m"`.
    #[serde(default)]
    pub lasting: Option<Spanned<String>>,
    /// The forecast says the resource runs out within this long, e.g. `"24h"`.
    #[serde(default)]
    pub forecast_within: Option<Spanned<String>>,
    /// Labels the alert must carry with exactly these values, e.g. `{ service = "PracticeDB" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[maintenance]]`: a planned window. Either `from` and `until` (once, local time,
/// `"2025-11-08 18:00"`) or `every` and `lasts` (recurring). Alerts for the hosts in scope
/// are held until the window closes, then sent if still firing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceFile {
    pub name: Spanned<String>,
    /// Host names or globs. With `roles` empty too, every host of the client.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    /// Only these alert kinds are held. Default: every kind.
    #[serde(default)]
    pub kinds: Vec<Spanned<String>>,
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub until: Option<Spanned<String>>,
    /// `"day 02:00"`, `"sunday 02:00"`, `"second tuesday 19:00"`, `"last friday 18:00"`.
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    /// How long each recurring window lasts, at most 7 days, e.g. `"3h"`.
    #[serde(default)]
    pub lasts: Option<Spanned<String>>,
}

/// `[[declined]]`: a preventive measure the client declined. Alerts the measure would have
/// prevented are never more than `at_most` on the hosts in scope; reports show the risk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclinedFile {
    /// `backups`, `disk_replacement`, `storage_upgrade`, `memory_upgrade` or `cooling`.
    pub measure: Spanned<String>,
    /// Host names or globs. With `roles` empty too, every host of the client.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    /// When the client declined, `"2024-09-02"`.
    #[serde(default)]
    pub decided: Option<Spanned<String>>,
    /// Why, in the client's words, for reports.
    #[serde(default)]
    pub note: Option<String>,
    /// The highest severity these alerts may have: `notice` (default), `warning` or
    /// `critical`; never `emergency`.
    #[serde(default)]
    pub at_most: Option<Spanned<String>>,
}
