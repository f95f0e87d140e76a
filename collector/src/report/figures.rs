//! The report's numbers, computed by pure functions from the alert history, the
//! acknowledgements and the contract in force: availability, downtime and its cost,
//! failures foreseen, response times. Nothing here reads a file or a clock.
//!
//! Methods, as the report states them:
//! - **Downtime** of a host is the time its `host_down` alerts (`HostSilent`) ran, from the
//!   condition's start (the last sample before the silence) to the resolve. A host whose
//!   agent said goodbye (sleep, shutdown, a reboot on time) is offline, not silent, so the
//!   engine raises nothing and nothing counts; the part of an outage inside a maintenance
//!   window that covers the host and `host_down` does not count either.
//! - **Cost** counts only business hours, and only outages the contract rates critical or
//!   emergency (a workstation with a spare on the shelf costs nothing); outages of several
//!   hosts at once are counted once.
//! - **Foreseen and prevented**: a forecast alert resolved before the instant its forecast
//!   gave. Avoided downtime is counted as one hour per prevented failure — far less than a
//!   full disk or exhausted memory usually costs — and no more.
//! - **Response time** runs from delivery to the first acknowledgement, in business time
//!   where the contract's target is in business hours.

use crate::history::{HistoryEntry, HistoryEvent};
use crate::notify::outbox::Acknowledgement;
use crate::policy::{AlertKind, ContractSeverity, Policy, ResponseTarget};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// What a prevented failure is counted as (see the module's methods).
pub const AVOIDED_PER_FAILURE_MS: i64 = HOUR_MS;

/// One alert from firing to resolve (or to the end of the range), as the journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub fingerprint: String,
    pub host: String,
    pub rule: String,
    pub kind: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub host_role: Option<String>,
    /// When the condition began (a silent host's last sample).
    pub began_ms: i64,
    /// When the engine fired.
    pub fired_ms: i64,
    pub resolved_ms: Option<i64>,
    /// The highest contract severity it reached.
    pub severity: ContractSeverity,
    /// When the highest severity was delivered; `None` if it was only ever held.
    pub delivered_ms: Option<i64>,
    /// When a response was due under the highest severity.
    pub response_due_ms: Option<i64>,
    pub policy_version: u64,
    /// The declined measure that capped it.
    pub accepted_risk: Option<String>,
    /// The instant the first forecast said the resource would run out.
    pub predicted_failure_ms: Option<i64>,
    pub summary: String,
    /// Who took it in hand and when (from the outbox), oldest first.
    pub acknowledgements: Vec<Acknowledgement>,
}

impl Episode {
    pub fn kind(&self) -> Option<AlertKind> {
        self.kind.as_deref().and_then(AlertKind::parse)
    }
}

/// The journal's entries folded into episodes, in firing order.
pub fn episodes(entries: &[HistoryEntry]) -> Vec<Episode> {
    let mut open: BTreeMap<String, Episode> = BTreeMap::new();
    let mut done = Vec::new();
    for entry in entries {
        let severity = ContractSeverity::from_name(&entry.contract_severity)
            .unwrap_or(ContractSeverity::Notice);
        if entry.event == HistoryEvent::Resolved {
            if let Some(mut episode) = open.remove(&entry.fingerprint) {
                episode.resolved_ms = Some(entry.at_ms);
                done.push(episode);
            }
            continue;
        }
        let held = entry.event == HistoryEvent::Held;
        let episode = open
            .entry(entry.fingerprint.clone())
            .or_insert_with(|| Episode {
                fingerprint: entry.fingerprint.clone(),
                host: entry.host.clone(),
                rule: entry.rule.clone(),
                kind: entry.kind.clone(),
                labels: entry.labels.clone(),
                host_role: entry.host_role.clone(),
                began_ms: entry.began_ms,
                fired_ms: entry.firing_since_ms,
                resolved_ms: None,
                severity,
                delivered_ms: None,
                response_due_ms: None,
                policy_version: entry.policy_version,
                accepted_risk: None,
                predicted_failure_ms: None,
                summary: entry.summary.clone(),
                acknowledgements: Vec::new(),
            });
        if !held && (episode.delivered_ms.is_none() || severity > episode.severity) {
            episode.severity = severity;
            episode.delivered_ms = Some(entry.delivered_at_ms);
            episode.response_due_ms = Some(entry.response_due_ms);
        } else if episode.delivered_ms.is_none() {
            episode.severity = episode.severity.max(severity);
        }
        if episode.accepted_risk.is_none() {
            episode.accepted_risk = entry.accepted_risk.clone();
        }
        if episode.predicted_failure_ms.is_none() {
            episode.predicted_failure_ms =
                entry.forecast_time_left_ms.map(|left| entry.at_ms + left);
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|episode| (episode.fired_ms, episode.host.clone(), episode.rule.clone()));
    done
}

/// One outage of one host, clipped to the range, maintenance taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Counted downtime (outside maintenance windows).
    pub counted_ms: i64,
    pub business_ms: i64,
    /// Part of it inside a maintenance window, not counted.
    pub maintenance_ms: i64,
    pub severity: ContractSeverity,
    /// The counted minutes, as `[start, end)` spans, for the cost's union across hosts.
    pub business_spans: Vec<(i64, i64)>,
}

/// A host's month.
#[derive(Debug, Clone, PartialEq)]
pub struct HostAvailability {
    pub host: String,
    pub role: Option<String>,
    pub monitored_ms: i64,
    pub downtime_ms: i64,
    pub downtime_business_ms: i64,
    pub maintenance_ms: i64,
    pub outages: Vec<Outage>,
}

impl HostAvailability {
    /// Share of the monitored time the host was up, 0..=1.
    pub fn availability(&self) -> f64 {
        if self.monitored_ms <= 0 {
            return 1.0;
        }
        1.0 - self.downtime_ms as f64 / self.monitored_ms as f64
    }
}

/// Availability of each of `hosts` (name, monitored from) over `[start_ms, end_ms)`.
pub fn availability(
    policy: &Policy,
    hosts: &[(String, i64)],
    episodes: &[Episode],
    start_ms: i64,
    end_ms: i64,
) -> Vec<HostAvailability> {
    let zone = policy.calendar.time_zone().clone();
    hosts
        .iter()
        .map(|(host, monitored_from_ms)| {
            let role = policy.role_of(host).map(|(role, _)| role.name.clone());
            let mut outages: Vec<Outage> = Vec::new();
            let mut spans: Vec<(i64, i64, ContractSeverity)> = episodes
                .iter()
                .filter(|episode| {
                    episode.host == *host && episode.kind() == Some(AlertKind::HostDown)
                })
                .map(|episode| {
                    (
                        episode.began_ms.max(start_ms),
                        episode.resolved_ms.unwrap_or(end_ms).min(end_ms),
                        episode.severity,
                    )
                })
                .filter(|(from, to, _)| from < to)
                .collect();
            spans.sort_by_key(|span| span.0);
            // Overlapping alerts of one host (HostSilent and SiteUnreachable) are one outage.
            let mut merged: Vec<(i64, i64, ContractSeverity)> = Vec::new();
            for (from, to, severity) in spans {
                match merged.last_mut() {
                    Some(last) if from <= last.1 => {
                        last.1 = last.1.max(to);
                        last.2 = last.2.max(severity);
                    }
                    _ => merged.push((from, to, severity)),
                }
            }
            for (from, to, severity) in merged {
                let mut outage = Outage {
                    start_ms: from,
                    end_ms: to,
                    counted_ms: 0,
                    business_ms: 0,
                    maintenance_ms: 0,
                    severity,
                    business_spans: Vec::new(),
                };
                // Minute by minute: maintenance windows and opening hours change on minutes.
                let mut at = from;
                let mut steps = 0;
                while at < to && steps < 60 * 24 * 62 {
                    let next = ((at.div_euclid(MINUTE_MS) + 1) * MINUTE_MS).min(to);
                    let length = next - at;
                    let instant = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
                    let in_maintenance = policy.maintenance.iter().any(|window| {
                        window.applies_to(host, role.as_deref(), AlertKind::HostDown)
                            && window.occurrence_containing(&zone, instant).is_some()
                    });
                    if in_maintenance {
                        outage.maintenance_ms += length;
                    } else {
                        outage.counted_ms += length;
                        if policy.calendar.is_open(instant) {
                            outage.business_ms += length;
                            match outage.business_spans.last_mut() {
                                Some(last) if last.1 == at => last.1 = next,
                                _ => outage.business_spans.push((at, next)),
                            }
                        }
                    }
                    at = next;
                    steps += 1;
                }
                outages.push(outage);
            }
            let from = (*monitored_from_ms).clamp(start_ms, end_ms);
            HostAvailability {
                host: host.clone(),
                role,
                monitored_ms: end_ms - from,
                downtime_ms: outages.iter().map(|o| o.counted_ms).sum(),
                downtime_business_ms: outages.iter().map(|o| o.business_ms).sum(),
                maintenance_ms: outages.iter().map(|o| o.maintenance_ms).sum(),
                outages,
            }
        })
        .collect()
}

/// Availability summed over the hosts of each role (hosts without one under `None`).
pub fn availability_by_role(hosts: &[HostAvailability]) -> Vec<(Option<String>, f64, usize)> {
    let mut roles: BTreeMap<Option<String>, (i64, i64, usize)> = BTreeMap::new();
    for host in hosts {
        let entry = roles.entry(host.role.clone()).or_default();
        entry.0 += host.monitored_ms;
        entry.1 += host.downtime_ms;
        entry.2 += 1;
    }
    roles
        .into_iter()
        .map(|(role, (monitored, down, count))| {
            let share = if monitored > 0 {
                1.0 - down as f64 / monitored as f64
            } else {
                1.0
            };
            (role, share, count)
        })
        .collect()
}

/// Downtime that cost the client: business-hours minutes of outages rated critical or
/// emergency, several hosts at once counted once.
pub fn costly_downtime_ms(hosts: &[HostAvailability]) -> i64 {
    let mut spans: Vec<(i64, i64)> = hosts
        .iter()
        .flat_map(|host| &host.outages)
        .filter(|outage| outage.severity >= ContractSeverity::Critical)
        .flat_map(|outage| outage.business_spans.iter().copied())
        .collect();
    spans.sort_unstable();
    let mut total = 0;
    let mut covered_to = i64::MIN;
    for (from, to) in spans {
        let from = from.max(covered_to);
        if to > from {
            total += to - from;
        }
        covered_to = covered_to.max(to);
    }
    total
}

/// What `duration_ms` of downtime cost under the contract, if it states a cost.
pub fn cost_of(policy: &Policy, duration_ms: i64) -> Option<f64> {
    policy.cost_of_downtime(std::time::Duration::from_millis(duration_ms.max(0) as u64))
}

/// A failure the forecast saw coming and that did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Foreseen {
    pub host: String,
    pub rule: String,
    pub kind: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub fired_ms: i64,
    pub predicted_failure_ms: i64,
    pub resolved_ms: i64,
}

/// Forecast alerts resolved before the failure they predicted.
pub fn foreseen(episodes: &[Episode]) -> Vec<Foreseen> {
    episodes
        .iter()
        .filter_map(|episode| {
            let predicted = episode.predicted_failure_ms?;
            let resolved = episode.resolved_ms?;
            (resolved < predicted).then(|| Foreseen {
                host: episode.host.clone(),
                rule: episode.rule.clone(),
                kind: episode.kind.clone(),
                labels: episode.labels.clone(),
                fired_ms: episode.fired_ms,
                predicted_failure_ms: predicted,
                resolved_ms: resolved,
            })
        })
        .collect()
}

/// How one alert's response went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Acknowledged by the due time, after this long (business time where the target is).
    Met(i64),
    /// Acknowledged late, after this long.
    Late(i64),
    /// Nobody acknowledged it by the due time.
    Unanswered,
    /// It cleared by itself before anyone had to respond: not counted.
    ClearedBeforeDue,
    /// Still open and not yet due at the end of the range: not counted.
    NotYetDue,
}

/// Response times against the contract for one severity.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRow {
    pub severity: ContractSeverity,
    pub target: String,
    pub alerts: usize,
    pub met: usize,
    pub missed: usize,
    pub not_counted: usize,
    pub median_ms: Option<i64>,
    pub worst_ms: Option<i64>,
}

/// How the response to `episode` went, given its acknowledgements, as of `end_ms`.
pub fn response_of(policy: &Policy, episode: &Episode, end_ms: i64) -> Option<Response> {
    let delivered = episode.delivered_ms?;
    let due = episode.response_due_ms?;
    let first_ack = episode
        .acknowledgements
        .iter()
        .map(|ack| ack.at_ms)
        .filter(|&at| at >= episode.fired_ms)
        .min();
    Some(match first_ack {
        Some(at) => {
            let taken = match policy.response.for_severity(episode.severity) {
                ResponseTarget::BusinessTime(_) => business_time_between(policy, delivered, at),
                ResponseTarget::WallClock(_) => (at - delivered).max(0),
            };
            if at <= due {
                Response::Met(taken)
            } else {
                Response::Late(taken)
            }
        }
        None => match episode.resolved_ms {
            Some(resolved) if resolved <= due => Response::ClearedBeforeDue,
            _ if end_ms < due => Response::NotYetDue,
            _ => Response::Unanswered,
        },
    })
}

/// One row per contract severity, most urgent first.
pub fn responses(policy: &Policy, episodes: &[Episode], end_ms: i64) -> Vec<ResponseRow> {
    ContractSeverity::ALL
        .into_iter()
        .rev()
        .map(|severity| {
            let mut row = ResponseRow {
                severity,
                target: policy.response.for_severity(severity).to_string(),
                alerts: 0,
                met: 0,
                missed: 0,
                not_counted: 0,
                median_ms: None,
                worst_ms: None,
            };
            let mut taken = Vec::new();
            for episode in episodes
                .iter()
                .filter(|episode| episode.severity == severity)
            {
                row.alerts += 1;
                match response_of(policy, episode, end_ms) {
                    Some(Response::Met(ms)) => {
                        row.met += 1;
                        taken.push(ms);
                    }
                    Some(Response::Late(ms)) => {
                        row.missed += 1;
                        taken.push(ms);
                    }
                    Some(Response::Unanswered) => row.missed += 1,
                    _ => row.not_counted += 1,
                }
            }
            taken.sort_unstable();
            row.median_ms = (!taken.is_empty()).then(|| taken[taken.len() / 2]);
            row.worst_ms = taken.last().copied();
            row
        })
        .collect()
}

/// Open time under the contract's calendar between two instants.
pub fn business_time_between(policy: &Policy, from_ms: i64, to_ms: i64) -> i64 {
    if to_ms <= from_ms {
        return 0;
    }
    let at = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let (from, to) = (at(from_ms), at(to_ms));
    let mut date = policy.calendar.local_date(from);
    let last = policy.calendar.local_date(to);
    let mut total = SignedDuration::ZERO;
    for _ in 0..400 {
        for (open, close) in policy.calendar.open_spans_on(date) {
            let (start, end) = (open.max(from), close.min(to));
            if start < end {
                total += end.duration_since(start);
            }
        }
        if date >= last {
            break;
        }
        let Ok(next) = date.tomorrow() else { break };
        date = next;
    }
    total.as_millis() as i64
}

/// Alerts that a declined measure capped this month, by measure.
pub fn capped_by_declined(episodes: &[Episode]) -> BTreeMap<String, Vec<&Episode>> {
    let mut capped: BTreeMap<String, Vec<&Episode>> = BTreeMap::new();
    for episode in episodes {
        if let Some(measure) = &episode.accepted_risk {
            capped.entry(measure.clone()).or_default().push(episode);
        }
    }
    capped
}

/// Alerts by contract severity, most urgent first.
pub fn by_severity(episodes: &[Episode]) -> Vec<(ContractSeverity, usize)> {
    ContractSeverity::ALL
        .into_iter()
        .rev()
        .map(|severity| {
            (
                severity,
                episodes.iter().filter(|e| e.severity == severity).count(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const POLICY: &str = "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n\
        [hours]\nweekdays = \"08:00-12:00, 13:00-17:00\"\n\
        [[role]]\nname = \"server\"\nhosts = [\"srv\"]\n";

    fn policy() -> Policy {
        Policy::parse(Path::new("acme.toml"), POLICY).unwrap()
    }

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn outage(host: &str, from: &str, to: &str, severity: ContractSeverity) -> Episode {
        Episode {
            fingerprint: format!("{host}{from}"),
            host: host.into(),
            rule: "HostSilent".into(),
            kind: Some("host_down".into()),
            labels: BTreeMap::new(),
            host_role: None,
            began_ms: at(from),
            fired_ms: at(from) + 15 * MINUTE_MS,
            resolved_ms: Some(at(to)),
            severity,
            delivered_ms: Some(at(from) + 15 * MINUTE_MS),
            response_due_ms: Some(at(from) + 75 * MINUTE_MS),
            policy_version: 1,
            accepted_risk: None,
            predicted_failure_ms: None,
            summary: String::new(),
            acknowledgements: Vec::new(),
        }
    }

    #[test]
    fn business_time_skips_lunch_nights_and_weekends() {
        let policy = policy();
        // Friday 11:00 to Monday 09:00 Berlin (UTC+1): 1 + 4 h on Friday, 1 h on Monday.
        let taken = business_time_between(
            &policy,
            at("2026-11-13T10:00:00Z"),
            at("2026-11-16T08:00:00Z"),
        );
        assert_eq!(taken, 6 * HOUR_MS);
    }

    #[test]
    fn two_hosts_down_at_once_cost_once_and_a_warning_costs_nothing() {
        let policy = policy();
        let episodes = [
            outage(
                "srv",
                "2026-11-10T09:00:00Z",
                "2026-11-10T10:00:00Z",
                ContractSeverity::Emergency,
            ),
            outage(
                "nas",
                "2026-11-10T09:30:00Z",
                "2026-11-10T10:30:00Z",
                ContractSeverity::Critical,
            ),
            outage(
                "pc",
                "2026-11-10T09:00:00Z",
                "2026-11-10T12:00:00Z",
                ContractSeverity::Warning,
            ),
        ];
        let hosts: Vec<(String, i64)> = ["srv", "nas", "pc"]
            .iter()
            .map(|host| (host.to_string(), at("2026-11-01T00:00:00Z")))
            .collect();
        let availability = availability(
            &policy,
            &hosts,
            &episodes,
            at("2026-11-01T00:00:00Z"),
            at("2026-12-01T00:00:00Z"),
        );
        // 10:00–11:30 local, lunch at 12:00 is not reached.
        assert_eq!(costly_downtime_ms(&availability), 90 * MINUTE_MS);
        // The workstation's three hours include the 12:00–13:00 lunch closure.
        assert_eq!(availability[2].downtime_business_ms, 2 * HOUR_MS);
    }

    #[test]
    fn a_raised_severity_restarts_the_response_clock_and_a_hold_delivers_nothing() {
        let entry = |at_ms: i64, event: HistoryEvent, severity: &str, route: &str| HistoryEntry {
            at_ms,
            event,
            fingerprint: "fp".into(),
            client: "acme".into(),
            host: "srv".into(),
            rule: "HostSilent".into(),
            labels: BTreeMap::new(),
            kind: Some("host_down".into()),
            engine_severity: "critical".into(),
            contract_severity: severity.into(),
            host_role: None,
            route: route.into(),
            delivered_at_ms: at_ms,
            response_due_ms: at_ms + HOUR_MS,
            policy_version: 1,
            policy_digest: "d".into(),
            contract_rule: None,
            accepted_risk: None,
            firing_since_ms: 0,
            began_ms: 0,
            forecast_time_left_ms: None,
            value: None,
            threshold: None,
            summary: String::new(),
        };
        let folded = episodes(&[
            entry(10, HistoryEvent::Fired, "critical", "now"),
            entry(20, HistoryEvent::SeverityChanged, "emergency", "now"),
            entry(30, HistoryEvent::Resolved, "emergency", "resolved"),
        ]);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].severity, ContractSeverity::Emergency);
        assert_eq!(folded[0].delivered_ms, Some(20));
        assert_eq!(folded[0].resolved_ms, Some(30));

        let held = episodes(&[
            entry(10, HistoryEvent::Held, "emergency", "held_for_maintenance"),
            entry(30, HistoryEvent::Resolved, "emergency", "resolved"),
        ]);
        assert_eq!(held[0].delivered_ms, None);
        assert_eq!(response_of(&policy(), &held[0], 100), None);
    }
}
