//! The decision: what one version of a client's contract makes of one alert at one instant.
//!
//! In order: the host's role; the contract severity (the first `[[rule]]` that matches, else
//! the engine's severity); a declined measure caps it (accepted risk); a maintenance window
//! holds it; otherwise business hours and after-hours coverage choose the route; the response
//! clock starts when the alert is delivered and runs in wall-clock or business time as the
//! contract says. Every step leaves a sentence in `reasons`, so a technician (or a client
//! reading a report) can see why.
//!
//! The answer depends on `now` and changes with it — a hold ends, the practice opens, a
//! `lasting` condition is met — so the delivery side asks again at those instants
//! (`route`'s `until`/`at`, and `reclassify_at`) with the same version.

use super::contract::{Policy, ResponseTarget};
use super::facts::{AlertFacts, ContractSeverity};
use super::maintenance::hold_at;
use super::version::PolicyVersionId;
use super::PolicyError;
use jiff::Timestamp;

/// What the contract makes of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub contract_severity: ContractSeverity,
    /// The host's role under this contract; `None` when no `[[role]]` lists it.
    pub host_role: Option<String>,
    pub route: Route,
    /// When a response is due under the contract, counted from delivery.
    pub response_due: Timestamp,
    /// The contract version that decided; an alert keeps it for good.
    pub policy_version: PolicyVersionId,
    /// The `[[rule]]` that set the severity, if any.
    pub rule: Option<String>,
    /// The declined measure that capped the severity, if any: an accepted risk for reports.
    pub accepted_risk: Option<String>,
    /// When a rule that comes before the deciding one will match by time alone (its
    /// `lasting` elapsed, or the forecast within its `forecast_within`), if the alert is
    /// still firing then: classify again at that instant.
    pub reclassify_at: Option<Timestamp>,
    /// Why, one sentence per step.
    pub reasons: Vec<String>,
    /// The client's name for people (`display_name` in the contract).
    pub client_name: Option<String>,
    /// The client's time zone (IANA name), in which messages show times.
    pub time_zone: Option<String>,
}

/// Who hears of the alert, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// At once, to the on-call channels: an emergency, or after hours with coverage for it.
    Now,
    /// At once, to the normal channels: it is business hours.
    BusinessHours,
    /// In the digest at the next opening, `at`: outside business hours, not covered.
    NextBusinessMorning { at: Timestamp },
    /// Held by a maintenance window until `until`; classify again then, and send it if the
    /// alert is still firing.
    HeldForMaintenance { until: Timestamp },
}

impl Route {
    /// When the alert reaches someone.
    pub fn delivery_at(self, now: Timestamp) -> Timestamp {
        match self {
            Route::Now | Route::BusinessHours => now,
            Route::NextBusinessMorning { at } => at,
            Route::HeldForMaintenance { until } => until,
        }
    }
}

/// Classifies `facts` under `policy` (one specific version) at `now`.
pub fn classify(
    policy: &Policy,
    facts: &AlertFacts,
    now: Timestamp,
) -> Result<Classification, PolicyError> {
    if facts.client != policy.client() {
        return Err(PolicyError::WrongClient {
            alert_client: facts.client.clone(),
            policy_client: policy.client().to_string(),
            host: facts.host.clone(),
            rule: facts.rule.clone(),
        });
    }
    let mut reasons = Vec::new();

    let role = policy.role_of(&facts.host);
    let role_name = role.map(|(role, _)| role.name.as_str());
    reasons.push(match role {
        Some((role, pattern)) if pattern.is_glob() => format!(
            "host '{}' is a {} (matches '{pattern}')",
            facts.host, role.name
        ),
        Some((role, _)) => format!("host '{}' is a {}", facts.host, role.name),
        None => format!("host '{}' has no role in the contract", facts.host),
    });

    // The first rule that matches now decides; a rule before it that lacks only its
    // `lasting` duration will decide later, if the alert lasts.
    let mut reclassify_at: Option<Timestamp> = None;
    let mut deciding_rule = None;
    for rule in &policy.rules {
        if !rule.matches_except_duration(facts, role_name) {
            continue;
        }
        let matches_from = rule.matches_from(facts, now);
        if matches_from <= now {
            deciding_rule = Some(rule);
            break;
        }
        reclassify_at = Some(reclassify_at.map_or(matches_from, |at| at.min(matches_from)));
    }
    let mut severity = match deciding_rule {
        Some(rule) => {
            reasons.push(format!(
                "rule '{}' makes {} {} {}",
                rule.name,
                facts.kind,
                if rule.severity == ContractSeverity::Emergency {
                    "an"
                } else {
                    "a"
                },
                rule.severity
            ));
            rule.severity
        }
        None => {
            let severity = facts.severity.default_contract_severity();
            reasons.push(format!(
                "no contract rule matches; engine severity {} stands as {severity}",
                facts.severity
            ));
            severity
        }
    };

    let mut accepted_risk = None;
    if let Some(declined) = policy.declined_for(&facts.host, role_name, facts.kind) {
        let decided = declined
            .decided
            .map(|date| format!(" on {date}"))
            .unwrap_or_default();
        if severity > declined.at_most {
            reasons.push(format!(
                "the client declined {}{decided} for {}: accepted risk, so {} at most, not {severity}",
                declined.measure, declined.scope, declined.at_most
            ));
            severity = declined.at_most;
        } else {
            reasons.push(format!(
                "the client declined {}{decided} for {}: accepted risk",
                declined.measure, declined.scope
            ));
        }
        accepted_risk = Some(declined.measure.as_str().to_string());
    }

    let calendar = &policy.calendar;
    let hold = hold_at(
        &policy.maintenance,
        calendar.time_zone(),
        &facts.host,
        role_name,
        facts.kind,
        now,
    );
    let route = if let Some(hold) = hold {
        reasons.push(format!(
            "held by maintenance window {} until {}; sent then if still firing",
            hold.windows
                .iter()
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(" and "),
            local_time(policy, hold.until)
        ));
        Route::HeldForMaintenance { until: hold.until }
    } else if calendar.is_open(now) {
        reasons.push("within business hours".to_string());
        if severity == ContractSeverity::Emergency {
            Route::Now
        } else {
            Route::BusinessHours
        }
    } else if policy.after_hours.covers(severity) {
        reasons.push(format!(
            "outside business hours; the contract covers {severity} alerts after hours"
        ));
        Route::Now
    } else {
        match calendar.next_open_at(now) {
            Some(at) => {
                reasons.push(format!(
                    "outside business hours and not covered after hours; waits for the opening at {}",
                    local_time(policy, at)
                ));
                Route::NextBusinessMorning { at }
            }
            None => {
                reasons.push(
                    "outside business hours and no opening within three years; sent now"
                        .to_string(),
                );
                Route::Now
            }
        }
    };

    let delivered = route.delivery_at(now);
    let target = policy.response.for_severity(severity);
    let response_due = match target {
        ResponseTarget::WallClock(duration) => delivered.checked_add(duration).ok(),
        ResponseTarget::BusinessTime(duration) => calendar.add_business_time(delivered, duration),
    }
    .unwrap_or(Timestamp::MAX);
    reasons.push(format!(
        "response due by {} ({target} for {severity})",
        local_time(policy, response_due)
    ));

    Ok(Classification {
        contract_severity: severity,
        host_role: role_name.map(str::to_string),
        route,
        response_due,
        policy_version: policy.version.clone(),
        rule: deciding_rule.map(|rule| rule.name.clone()),
        accepted_risk,
        reclassify_at,
        reasons,
        client_name: policy.display_name.clone(),
        time_zone: calendar.time_zone().iana_name().map(str::to_string),
    })
}

/// An instant as the client's clock shows it, e.g. `2025-03-31 11:00 CEST`.
fn local_time(policy: &Policy, at: Timestamp) -> String {
    at.to_zoned_datetime(policy.calendar.time_zone().clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}
