//! The monthly client report: what was watched, which failures were foreseen and prevented,
//! what downtime cost, how fast the MSP responded, and which risks lie ahead — one
//! self-contained HTML page a client's owner can read in ten seconds and hand to an auditor.
//!
//! [`build`] gathers a client's month from what the collector stores ([`sources`]: the alert
//! [`History`](crate::history::History), acknowledgements in the outbox, the contract
//! version in force, the registry and host records, stored series) and computes a
//! [`MonthReport`] with pure functions ([`figures`], [`risks`]). [`html::render`] turns it
//! into the page; [`runs`] records each run (policy version, data range, digest of the
//! output) so that a disputed figure can be reproduced; [`send`] mails it.
//!
//! A report is refused rather than produced empty: an unknown client, a month in the future
//! and a month without any data are each one clear error.
//!
//! Modules, in reading order: [`month`], [`sources`], [`figures`], [`risks`],
//! [`end_of_support`], [`i18n`], [`html`], [`pdf`], [`runs`], [`send`].

pub mod end_of_support;
pub mod figures;
pub mod html;
pub mod i18n;
pub mod month;
pub mod pdf;
pub mod risks;
pub mod runs;
pub mod send;
pub mod sources;

pub use month::Month;

use crate::policy::{ContractSeverity, Policy};
use crate::store::Store;
use figures::{Episode, Foreseen, HostAvailability, ResponseRow};
use jiff::Timestamp;
use risks::Risk;
use std::path::{Path, PathBuf};

/// Everything that can stop a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("month '{text}' is not a month; write it YYYY-MM, e.g. 2026-11")]
    Month { text: String },
    #[error("client '{client}' is unknown: no contract stored and no host enrolled for it; known clients: {known}")]
    UnknownClient { client: String, known: String },
    #[error("client '{client}' has no contract stored; put its policy file in the [policies] dir and let serve load it")]
    NoContract { client: String },
    #[error("client '{client}': {detail}")]
    Contract { client: String, detail: String },
    #[error("month {month} has not begun yet for client '{client}' (it is {today} there); ask for {current} or an earlier month")]
    FutureMonth {
        client: String,
        month: Month,
        today: String,
        current: Month,
    },
    #[error("client '{client}' has no data for {month}: no alert history and no stored samples; no report written")]
    NoData { client: String, month: Month },
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error("reading stored series for the report: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("report {path}: {action} failed: {source}; check the folder exists and is writable")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("report pdf {path}: {detail}")]
    Pdf { path: PathBuf, detail: String },
    #[error("report email for client '{client}': {detail}")]
    Email { client: String, detail: String },
}

/// One declined measure and what it capped this month.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclinedRow {
    pub measure: String,
    pub scope: String,
    pub decided: Option<String>,
    pub note: Option<String>,
    pub at_most: ContractSeverity,
    /// The alerts it capped this month, in words.
    pub capped: Vec<String>,
}

/// A host as the inventory appendix shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InventoryRow {
    pub host: String,
    pub role: Option<String>,
    pub os: String,
    pub cpu: String,
    pub memory_bytes: u64,
    /// (mountpoint, size in bytes).
    pub disks: Vec<(String, u64)>,
    pub agent_version: String,
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
}

/// The previous month's headline figures, for month-over-month.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub month: Month,
    pub availability: f64,
    pub downtime_ms: i64,
    pub alerts: usize,
    pub foreseen: usize,
}

/// A client's month, every figure the page shows.
#[derive(Debug, Clone)]
pub struct MonthReport {
    /// The language it is written in (`[report] language` of the contract).
    pub language: i18n::Language,
    pub client: String,
    pub client_name: String,
    pub month: Month,
    pub time_zone: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The contract version in force at the end of the range, which the report reads.
    pub policy_version: u64,
    pub policy_digest: String,
    pub currency: Option<String>,
    pub cost_per_hour: Option<f64>,
    pub hosts: Vec<HostAvailability>,
    /// (role, availability, hosts).
    pub roles: Vec<(Option<String>, f64, usize)>,
    /// Availability over all hosts.
    pub availability: f64,
    pub downtime_ms: i64,
    pub downtime_business_ms: i64,
    /// Business-hours downtime of outages rated critical or emergency (several hosts at once
    /// counted once): what the cost is computed from.
    pub costly_downtime_ms: i64,
    pub downtime_cost: Option<f64>,
    pub foreseen: Vec<Foreseen>,
    pub avoided_downtime_ms: i64,
    pub avoided_cost: Option<f64>,
    pub episodes: Vec<Episode>,
    pub by_severity: Vec<(ContractSeverity, usize)>,
    pub responses: Vec<ResponseRow>,
    pub declined: Vec<DeclinedRow>,
    pub risks: Vec<Risk>,
    pub inventory: Vec<InventoryRow>,
    pub previous: Vec<Trend>,
    /// Journal lines that could not be read (a torn write), said on the page.
    pub unreadable_history_lines: usize,
    /// Why stored series were not read, if they were not (the page says so).
    pub store_note: Option<String>,
}

/// Refuses, before anything is read at length, an unknown client, a client without a
/// contract and a month that has not begun in the client's time zone.
pub fn check(
    data_dir: &Path,
    client: &str,
    month: Month,
    now: Timestamp,
) -> Result<(), ReportError> {
    let (policy, _) = sources::contract(data_dir, client, month)?;
    let zone = policy.calendar.time_zone();
    let (start, _) = month.range(zone);
    if start > now {
        return Err(ReportError::FutureMonth {
            client: client.to_string(),
            month,
            today: now.to_zoned_datetime(zone.clone()).date().to_string(),
            current: Month::containing(now, zone),
        });
    }
    Ok(())
}

/// Builds `client`'s report for `month` from the collector's data in `data_dir`, as of
/// `now`. `store` is the series store when it can be read (a serving collector holds it).
pub fn build(
    data_dir: &Path,
    store: Option<&Store>,
    client: &str,
    month: Month,
    now: Timestamp,
) -> Result<MonthReport, ReportError> {
    check(data_dir, client, month, now)?;
    let (policy, versions) = sources::contract(data_dir, client, month)?;
    let zone = policy.calendar.time_zone().clone();
    let (start, end) = month.range(&zone);
    let start_ms = start.as_millisecond();
    let end_ms = end.min(now).as_millisecond();
    let gathered = sources::gather(data_dir, store, &policy, client, start_ms, end_ms)?;
    if !gathered.has_history() && !gathered.has_samples {
        return Err(ReportError::NoData {
            client: client.to_string(),
            month,
        });
    }
    let mut report = compute(&policy, month, start_ms, end_ms, gathered);
    report.policy_version = versions.version;
    report.policy_digest = versions.digest;
    // Month over month: up to three earlier months that have history.
    let mut earlier = month.previous();
    for _ in 0..3 {
        let (from, to) = earlier.range(&zone);
        let gathered =
            sources::gather_history(data_dir, client, from.as_millisecond(), to.as_millisecond())?;
        if !gathered.has_history() {
            break;
        }
        let previous = compute(
            &policy,
            earlier,
            from.as_millisecond(),
            to.as_millisecond(),
            gathered,
        );
        report.previous.push(Trend {
            month: earlier,
            availability: previous.availability,
            downtime_ms: previous.downtime_ms,
            alerts: previous.episodes.len(),
            foreseen: previous.foreseen.len(),
        });
        earlier = earlier.previous();
    }
    Ok(report)
}

/// The months `client` has a report for as of `now`, newest first, each with whether it has
/// ended in the client's time zone (the current month's report covers it so far): each
/// month whose alert history or stored series hold anything, which is what [`build`] asks before it refuses a
/// month without data. Stored series are looked for back to `reach_back_ms` before `now`
/// (the store's rollup retention); the alert history is read whole.
pub fn months(
    data_dir: &Path,
    store: Option<&Store>,
    client: &str,
    now: Timestamp,
    reach_back_ms: i64,
) -> Result<Vec<(Month, bool)>, ReportError> {
    let utc_month = Month::containing(now, &jiff::tz::TimeZone::UTC);
    let (policy, _) = sources::contract(data_dir, client, utc_month)?;
    let zone = policy.calendar.time_zone().clone();
    let current = Month::containing(now, &zone);
    let now_ms = now.as_millisecond();
    let mut found = std::collections::BTreeSet::new();
    let (entries, _) = crate::history::History::open(data_dir).read_range(0, now_ms + 1)?;
    for entry in entries.iter().filter(|entry| entry.client == client) {
        if let Ok(at) = Timestamp::from_millisecond(entry.at_ms) {
            found.insert(Month::containing(at, &zone));
        }
    }
    if let Some(store) = store {
        let oldest = Timestamp::from_millisecond(now_ms.saturating_sub(reach_back_ms).max(0))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let mut month = Month::containing(oldest, &zone);
        // At most a century of months, newest included.
        for _ in 0..1200 {
            if month > current {
                break;
            }
            if !found.contains(&month) {
                let (start, end) = month.range(&zone);
                let (start_ms, end_ms) = (start.as_millisecond(), end.min(now).as_millisecond());
                if start_ms < end_ms && sources::has_samples(store, client, start_ms, end_ms)? {
                    found.insert(month);
                }
            }
            month = month.next();
        }
    }
    Ok(found
        .into_iter()
        .rev()
        .map(|month| (month, month < current))
        .collect())
}

/// The figures of one month from what was gathered; pure.
pub fn compute(
    policy: &Policy,
    month: Month,
    start_ms: i64,
    end_ms: i64,
    gathered: sources::Gathered,
) -> MonthReport {
    // Availability counts every outage that ran in the month; alerts, response times and
    // forecasts count what began in it.
    let running = gathered.episodes();
    let hosts = figures::availability(policy, &gathered.hosts, &running, start_ms, end_ms);
    let episodes: Vec<Episode> = running
        .into_iter()
        .filter(|episode| episode.fired_ms >= start_ms)
        .collect();
    let monitored: i64 = hosts.iter().map(|host| host.monitored_ms).sum();
    let downtime_ms: i64 = hosts.iter().map(|host| host.downtime_ms).sum();
    let costly_downtime_ms = figures::costly_downtime_ms(&hosts);
    let foreseen = figures::foreseen(&episodes);
    let avoided_downtime_ms = foreseen.len() as i64 * figures::AVOIDED_PER_FAILURE_MS;
    let t = language_of(policy);
    let zone = policy.calendar.time_zone().clone();
    let date_of = |ms: i64| {
        Timestamp::from_millisecond(ms)
            .map(|at| t.date(at.to_zoned_datetime(zone.clone()).date()))
            .unwrap_or_default()
    };
    let capped = figures::capped_by_declined(&episodes);
    let declined = policy
        .declined
        .iter()
        .map(|declined| DeclinedRow {
            measure: measure_name(t, declined.measure),
            scope: scope_words(t, &declined.scope),
            decided: declined.decided.map(|date| t.date(date)),
            note: declined.note.clone(),
            at_most: declined.at_most,
            capped: capped
                .get(declined.measure.as_str())
                .map(|episodes| {
                    episodes
                        .iter()
                        .map(|episode| {
                            t.text(
                                "declined.capped",
                                &[
                                    ("rule", &episode.rule),
                                    ("host", &episode.host),
                                    ("date", &date_of(episode.fired_ms)),
                                ],
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut risks = gathered.risks.clone();
    risks.extend(risks::end_of_support(&gathered.inventory, end_ms, &zone, t));
    // A risk the client accepted in writing says so.
    for risk in &mut risks {
        let kind = match risk.category {
            "backup" => crate::policy::AlertKind::BackupStale,
            "disk" => crate::policy::AlertKind::DiskFull,
            "smart" => crate::policy::AlertKind::SmartFailure,
            _ => continue,
        };
        let role = policy
            .role_of(&risk.host)
            .map(|(role, _)| role.name.clone());
        if let Some(declined) = policy.declined_for(&risk.host, role.as_deref(), kind) {
            let measure = measure_name(t, declined.measure);
            risk.text = match declined.decided {
                Some(date) => t.text(
                    "risk.accepted",
                    &[
                        ("text", &risk.text),
                        ("measure", &measure),
                        ("date", &t.date(date)),
                    ],
                ),
                None => t.text(
                    "risk.accepted_undated",
                    &[("text", &risk.text), ("measure", &measure)],
                ),
            };
        }
    }
    let mut responses = figures::responses(policy, &episodes, end_ms);
    for row in &mut responses {
        row.target = target_words(t, policy.response.for_severity(row.severity));
    }
    MonthReport {
        language: t,
        client: policy.client().to_string(),
        client_name: policy
            .display_name
            .clone()
            .unwrap_or_else(|| policy.client().to_string()),
        month,
        time_zone: policy
            .calendar
            .time_zone()
            .iana_name()
            .unwrap_or("UTC")
            .to_string(),
        start_ms,
        end_ms,
        policy_version: policy.version.version,
        policy_digest: policy.version.digest.clone(),
        currency: policy
            .downtime_cost
            .as_ref()
            .map(|cost| cost.currency.clone()),
        cost_per_hour: policy.downtime_cost.as_ref().map(|cost| cost.per_hour),
        roles: figures::availability_by_role(&hosts),
        availability: if monitored > 0 {
            1.0 - downtime_ms as f64 / monitored as f64
        } else {
            1.0
        },
        downtime_ms,
        downtime_business_ms: hosts.iter().map(|host| host.downtime_business_ms).sum(),
        costly_downtime_ms,
        downtime_cost: figures::cost_of(policy, costly_downtime_ms),
        avoided_cost: figures::cost_of(policy, avoided_downtime_ms),
        avoided_downtime_ms,
        foreseen,
        by_severity: figures::by_severity(&episodes),
        responses,
        declined,
        risks,
        inventory: gathered.inventory,
        previous: Vec::new(),
        unreadable_history_lines: gathered.unreadable,
        store_note: gathered.store_note,
        hosts,
        episodes,
    }
}

/// The language a contract's reports are written in.
pub fn language_of(policy: &Policy) -> i18n::Language {
    policy
        .report
        .as_ref()
        .and_then(|report| i18n::Language::from_code(&report.language))
        .unwrap_or_default()
}

/// A declined measure's name in `t`'s words: "backups", "Datensicherung".
fn measure_name(t: i18n::Language, measure: crate::policy::Measure) -> String {
    use crate::policy::Measure;
    t.text(
        match measure {
            Measure::Backups => "measure.backups",
            Measure::DiskReplacement => "measure.disk_replacement",
            Measure::StorageUpgrade => "measure.storage_upgrade",
            Measure::MemoryUpgrade => "measure.memory_upgrade",
            Measure::Cooling => "measure.cooling",
        },
        &[],
    )
}

/// Which machines a contract clause covers, in `t`'s words: "role workstation".
fn scope_words(t: i18n::Language, scope: &crate::policy::contract::HostScope) -> String {
    if scope.is_everything() {
        return t.text("scope.every", &[]);
    }
    let mut parts = Vec::new();
    match scope.roles.as_slice() {
        [] => {}
        [role] => parts.push(t.text("scope.role", &[("names", role)])),
        roles => parts.push(t.text("scope.roles", &[("names", &roles.join(", "))])),
    }
    let hosts: Vec<&str> = scope.hosts.iter().map(|host| host.as_str()).collect();
    match hosts.as_slice() {
        [] => {}
        [host] => parts.push(t.text("scope.host", &[("names", host)])),
        hosts => parts.push(t.text("scope.hosts", &[("names", &hosts.join(", "))])),
    }
    match parts.as_slice() {
        [first, second] => t.text("scope.and", &[("first", first), ("second", second)]),
        _ => parts.concat(),
    }
}

/// A response target in `t`'s words: "1 h around the clock", "4 business hours".
fn target_words(t: i18n::Language, target: crate::policy::ResponseTarget) -> String {
    use crate::policy::ResponseTarget;
    match target {
        ResponseTarget::WallClock(duration) => t.text(
            "target.around_the_clock",
            &[("duration", &t.duration(duration.as_millis() as i64))],
        ),
        ResponseTarget::BusinessTime(duration) => {
            let minutes = duration.as_mins();
            match (minutes % 60, minutes / 60) {
                (0, 1) => t.text("target.business_hour", &[]),
                (0, hours) => t.text("target.business_hours", &[("hours", &hours.to_string())]),
                _ => t.text(
                    "target.business_minutes",
                    &[("minutes", &minutes.to_string())],
                ),
            }
        }
    }
}

/// Writes a page whole or not at all: a temporary file beside `path`, synced, renamed over.
pub fn write_page(path: &Path, html: &str) -> Result<(), ReportError> {
    use std::io::Write;
    let temporary = path.with_extension("html.tmp");
    let failed = |action: &'static str| {
        move |source| ReportError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = std::fs::File::create(&temporary).map_err(failed("writing"))?;
    file.write_all(html.as_bytes()).map_err(failed("writing"))?;
    file.sync_all().map_err(failed("syncing"))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed("renaming"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryEntry, HistoryEvent};

    const POLICY: &str =
        "client = \"acme\"\ntime_zone = \"UTC\"\n[hours]\nweekdays = \"08:00-17:00\"\n";

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn silent(at_ms: i64, event: HistoryEvent, began_ms: i64) -> HistoryEntry {
        HistoryEntry {
            at_ms,
            event,
            fingerprint: "fp-srv".into(),
            client: "acme".into(),
            host: "srv".into(),
            rule: "HostSilent".into(),
            labels: Default::default(),
            kind: Some("host_down".into()),
            engine_severity: "critical".into(),
            contract_severity: "critical".into(),
            host_role: None,
            route: "now".into(),
            delivered_at_ms: at_ms,
            response_due_ms: at_ms + 3_600_000,
            policy_version: 1,
            policy_digest: "d".into(),
            contract_rule: None,
            accepted_risk: None,
            firing_since_ms: began_ms + 900_000,
            began_ms,
            forecast_time_left_ms: None,
            value: None,
            threshold: None,
            summary: "host srv silent".into(),
        }
    }

    #[test]
    fn an_outage_that_began_last_month_counts_from_the_first_but_is_not_this_months_alert() {
        let policy = Policy::parse(Path::new("acme.toml"), POLICY).unwrap();
        let began = at("2026-10-31T22:00:00Z");
        let (start, end) = (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"));
        let gathered = sources::Gathered {
            entries: vec![
                silent(began + 900_000, HistoryEvent::Fired, began),
                silent(at("2026-11-01T03:00:00Z"), HistoryEvent::Resolved, began),
            ],
            start_ms: start,
            end_ms: end,
            hosts: vec![("srv".into(), start)],
            ..sources::Gathered::default()
        };
        assert!(gathered.has_history());
        let report = compute(
            &policy,
            Month::parse("2026-11").unwrap(),
            start,
            end,
            gathered,
        );
        assert_eq!(report.hosts[0].downtime_ms, 3 * 3_600_000);
        assert!(report.episodes.is_empty(), "{:?}", report.episodes);
    }

    #[test]
    fn earlier_months_with_history_appear_month_over_month() {
        let data = tempfile::tempdir().unwrap();
        let source = data.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("acme.toml"), POLICY).unwrap();
        let policies = crate::pipeline::Policies::open(data.path(), Some(source));
        assert!(policies
            .sync("test", "2026-09-01T00:00:00Z".parse().unwrap())
            .is_empty());
        let history = crate::history::History::open(data.path());
        for (began, back) in [
            ("2026-10-06T10:00:00Z", "2026-10-06T12:00:00Z"),
            ("2026-11-10T10:00:00Z", "2026-11-10T10:30:00Z"),
        ] {
            let mut fired = silent(at(began) + 900_000, HistoryEvent::Fired, at(began));
            fired.fingerprint = began.to_string();
            let mut resolved = silent(at(back), HistoryEvent::Resolved, at(began));
            resolved.fingerprint = began.to_string();
            history.append(fired).unwrap();
            history.append(resolved).unwrap();
        }
        let now: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let report = build(
            data.path(),
            None,
            "acme",
            Month::parse("2026-11").unwrap(),
            now,
        )
        .unwrap();
        assert_eq!(report.downtime_ms, 30 * 60_000);
        assert_eq!(report.previous.len(), 1, "{:?}", report.previous);
        assert_eq!(report.previous[0].month.to_string(), "2026-10");
        assert_eq!(report.previous[0].downtime_ms, 2 * 3_600_000);
        assert!(
            report.store_note.is_some(),
            "the page says stored series were not read"
        );
        assert!(html::render(&report).contains("Month over month"));
    }
}
