//! The alert as delivered ([`AlertMessage`]) and one delivery of it to one channel
//! ([`Delivery`]), both as they are kept in the outbox (JSON) and handed to channels.
//!
//! An alert message carries everything a receiver needs without asking back: the engine's
//! view (rule, host, labels, summary) and the contract's (client, host role, contract
//! severity, response due, policy version). Its [`fingerprint`] names the alert instance for
//! good — PagerDuty's `dedup_key`, Alertmanager's identity, the email thread, the id
//! technicians acknowledge.

use crate::alert::kinds::LogLine;
use crate::alert::{AlertState, ForecastDetails, Transition};
use crate::policy::Classification;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether the alert is firing or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert, as every channel renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// 16 hex digits naming the alert instance (client, host, rule, labels) for good.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub client: String,
    pub host: String,
    /// The engine's rule, e.g. `FilesystemFullForecast`.
    pub rule: String,
    /// The labels that tell the instance apart (mountpoint, device, service…).
    pub labels: BTreeMap<String, String>,
    /// What a technician reads first.
    pub summary: String,
    /// The engine's severity, before the contract.
    pub engine_severity: String,
    /// The contract's severity: notice, warning, critical, emergency.
    pub contract_severity: String,
    /// The host's role under the contract, if it has one.
    pub host_role: Option<String>,
    /// When this episode of the alert began firing (ms since the epoch).
    pub starts_at_ms: i64,
    /// When this transition happened: the first firing, a rise in severity, the resolve.
    pub at_ms: i64,
    /// When it resolved, for a resolved alert.
    pub ends_at_ms: Option<i64>,
    /// When a response is due under the contract.
    pub response_due_ms: Option<i64>,
    /// The contract version that classified the alert, e.g. 3, and its digest.
    pub policy_version: u64,
    pub policy_digest: String,
    /// Why the contract classified it so, one sentence per step.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What a person needs beyond the alert's identity: the client's name and time zone,
    /// when the condition began, the forecast.
    #[serde(default)]
    pub context: MessageContext,
}

/// The parts of a message that are for people rather than for matching.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageContext {
    /// The client's name as its contract gives it (`display_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client's time zone (IANA name); times are shown in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// When the condition began (ms since the epoch), which may be before it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub began_ms: Option<i64>,
    /// The forecast as of the message's `at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastDetails>,
    /// What kind of trouble it is (`host_down`, `log_pattern`, …), as contracts name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For a log pattern: the newest matched line and its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_line: Option<LogLine>,
    /// The alert's console page and signed acknowledge link, added as a message is sent
    /// when `[http] public_url` is set (never kept in the outbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<crate::http::ack_link::AlertLinks>,
}

/// A length of time as a technician reads it: `2 d 3 h`, `5 h 20 min`, `45 min`.
pub fn days_hours(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, _) if minutes == 0 => format!("{hours} h"),
        (0, _) => format!("{hours} h {minutes} min"),
        (_, 0) => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

impl AlertMessage {
    /// The client as people know it: `Smile Dental Care (smile-dental)`, or the id alone.
    pub fn client_shown(&self) -> String {
        match &self.context.client_name {
            Some(name) if name != &self.client => format!("{name} ({})", self.client),
            _ => self.client.clone(),
        }
    }

    /// An instant on the client's clock, e.g. `2026-12-01 10:05 CET`; UTC without a zone.
    pub fn local_time(&self, ms: i64) -> String {
        let Ok(at) = Timestamp::from_millisecond(ms) else {
            return rfc3339(ms);
        };
        let zone = self
            .context
            .time_zone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        at.to_zoned_datetime(zone)
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The matched log line and where it is: `"I/O error, dev sda" in /var/log/kern.log`.
    pub fn log_line_text(&self) -> Option<String> {
        let log_line = self.context.log_line.as_ref()?;
        Some(format!("\"{}\" in {}", log_line.line, log_line.file))
    }

    /// The forecast in words: `full in ~2 d 3 h at the current rate, 90 % interval
    /// 1 d 20 h – 2 d 9 h` (the interval of the trend's slope).
    pub fn forecast_text(&self) -> Option<String> {
        let forecast = self.context.forecast?;
        // An interval whose slow end does not reach the limit has no upper bound.
        let latest = if forecast.latest_ms > 10 * 365 * 86_400_000 {
            "later".to_string()
        } else {
            days_hours(forecast.latest_ms)
        };
        Some(format!(
            "full in ~{} at the current rate, 90 % interval {} – {latest}",
            days_hours(forecast.time_left_ms),
            days_hours(forecast.soonest_ms)
        ))
    }

    /// For a resolve: how long the condition lasted, from its beginning to the resolve.
    pub fn lasted_text(&self) -> Option<String> {
        let ends = self.ends_at_ms?;
        let began = self.context.began_ms.unwrap_or(self.starts_at_ms);
        Some(format!("lasted {}", days_hours(ends - began)))
    }

    /// Moves the forecast on by `elapsed_ms` at its rate (a message sent later than the
    /// transition it carries).
    pub fn age_forecast(&mut self, elapsed_ms: i64) {
        self.context.forecast = self.context.forecast.map(|f| f.aged(elapsed_ms));
    }

    /// How an acknowledgement (or none yet) at `at_ms` stands against the contract's
    /// response time: "within the response time (due …)" or "… past the response time".
    pub fn response_standing(&self, at_ms: i64) -> String {
        let Some(due_ms) = self.response_due_ms else {
            return "no response time in the contract".to_string();
        };
        let due = jiff::Timestamp::from_millisecond(due_ms)
            .map(|due| due.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default();
        if at_ms <= due_ms {
            format!("within the response time (due {due})")
        } else {
            let late_minutes = (at_ms - due_ms + 59_999) / 60_000;
            format!("{late_minutes} min past the response time (due {due})")
        }
    }

    /// The message for `transition` as classified. `starts_at_ms` is when the episode began
    /// firing: the transition's own time for a firing, the recorded start for a resolve.
    pub fn from_transition(
        transition: &Transition,
        classification: &Classification,
        starts_at_ms: i64,
    ) -> Self {
        let labels: BTreeMap<String, String> = transition
            .labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let status = match transition.state {
            AlertState::Firing => AlertStatus::Firing,
            AlertState::Resolved => AlertStatus::Resolved,
        };
        AlertMessage {
            fingerprint: fingerprint(
                &transition.client,
                &transition.host,
                &transition.rule,
                &labels,
            ),
            status,
            client: transition.client.clone(),
            host: transition.host.clone(),
            rule: transition.rule.clone(),
            labels,
            summary: transition.summary.clone(),
            engine_severity: transition.severity.as_str().to_string(),
            contract_severity: classification.contract_severity.as_str().to_string(),
            host_role: classification.host_role.clone(),
            starts_at_ms,
            at_ms: transition.ts_ms,
            ends_at_ms: (status == AlertStatus::Resolved).then_some(transition.ts_ms),
            response_due_ms: (classification.response_due != Timestamp::MAX)
                .then(|| classification.response_due.as_millisecond()),
            policy_version: classification.policy_version.version,
            policy_digest: classification.policy_version.digest.clone(),
            reasons: classification.reasons.clone(),
            context: MessageContext {
                client_name: classification.client_name.clone(),
                time_zone: classification.time_zone.clone(),
                began_ms: (transition.began_ms > 0).then_some(transition.began_ms),
                forecast: transition.details.forecast,
                kind: transition.category.map(|kind| kind.as_str().to_string()),
                log_line: transition.details.log_line.clone(),
                links: None,
            },
        }
    }

    /// A one-line title, e.g. `[emergency] srv-01 (dental): C: full in ~2 d`.
    pub fn title(&self) -> String {
        match self.status {
            AlertStatus::Firing => format!(
                "[{}] {} ({}): {}",
                self.contract_severity, self.host, self.client, self.summary
            ),
            AlertStatus::Resolved => format!(
                "[resolved] {} ({}): {}",
                self.host, self.client, self.summary
            ),
        }
    }

    pub fn is_emergency(&self) -> bool {
        self.contract_severity == "emergency"
    }
}

/// 16 hex digits of the SHA-256 of client, host, rule and labels: the same alert instance
/// always has the same fingerprint, on every collector and across restarts.
pub fn fingerprint(
    client: &str,
    host: &str,
    rule: &str,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut text = format!("{client}\u{0}{host}\u{0}{rule}");
    for (name, value) in labels {
        text.push('\u{0}');
        text.push_str(name);
        text.push('=');
        text.push_str(value);
    }
    hex(&sha256(text.as_bytes())[..8])
}

pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An instant as RFC 3339, as Alertmanager and most receivers expect.
pub(crate) fn rfc3339(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|at| at.to_string())
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string())
}

/// Why a delivery exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum Purpose {
    /// One alert transition, at once.
    Alert,
    /// The client's morning digest: every alert that waited for business hours.
    Digest { client: String, at_ms: i64 },
    /// An emergency nobody acknowledged within its response time.
    Escalation,
    /// Someone took the alert in hand: told to the channels that heard of it.
    Acknowledged { by: String, at_ms: i64 },
    /// `vigil-collector notify test`.
    Test,
}

/// One message to one channel, as kept in the outbox until it is delivered or dead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The idempotency key: the same on every attempt, sent to receivers that take one, and
    /// the delivery's file name.
    pub key: String,
    /// The configured channel's name.
    pub channel: String,
    #[serde(flatten)]
    pub purpose: Purpose,
    /// One alert, or a digest's many.
    pub alerts: Vec<AlertMessage>,
    pub created_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this instant.
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    /// When it was delivered (in `sent/`) or given up (in `dead/`).
    #[serde(default)]
    pub finished_ms: Option<i64>,
}

impl Delivery {
    /// The key of one transition's delivery to one channel: the same transition enqueued
    /// twice (a pipeline replaying after a crash) lands on the same file.
    pub fn key_for(
        purpose: &str,
        fingerprint: &str,
        status: AlertStatus,
        at_ms: i64,
        channel: &str,
    ) -> String {
        let text = format!(
            "{purpose}\u{0}{fingerprint}\u{0}{}\u{0}{at_ms}\u{0}{channel}",
            status.as_str()
        );
        format!("{purpose}-{}", hex(&sha256(text.as_bytes())[..12]))
    }

    /// The delivery of one alert message to one channel, due at `now_ms`.
    pub fn single(message: &AlertMessage, channel: &str, now_ms: i64) -> Delivery {
        Delivery {
            key: Delivery::key_for(
                "alert",
                &message.fingerprint,
                message.status,
                message.at_ms,
                channel,
            ),
            channel: channel.to_string(),
            purpose: Purpose::Alert,
            alerts: vec![message.clone()],
            created_ms: now_ms,
            attempts: 0,
            next_attempt_ms: now_ms,
            last_error: None,
            finished_ms: None,
        }
    }

    /// The status a multi-alert message reports: firing if any alert still is.
    pub fn status(&self) -> AlertStatus {
        if self
            .alerts
            .iter()
            .any(|alert| alert.status == AlertStatus::Firing)
        {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    /// The client every alert of the delivery belongs to (a digest is per client).
    pub fn client(&self) -> &str {
        self.alerts
            .first()
            .map(|alert| alert.client.as_str())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_is_measured_against_the_response_time() {
        let mut message = AlertMessage {
            fingerprint: "abcd".into(),
            status: AlertStatus::Firing,
            client: "dental".into(),
            host: "srv-01".into(),
            rule: "ServiceDown".into(),
            labels: BTreeMap::new(),
            summary: "service down".into(),
            engine_severity: "critical".into(),
            contract_severity: "emergency".into(),
            host_role: None,
            starts_at_ms: 0,
            at_ms: 0,
            ends_at_ms: None,
            response_due_ms: None,
            policy_version: 1,
            policy_digest: "sha256:00".into(),
            reasons: Vec::new(),
            context: MessageContext::default(),
        };
        message.response_due_ms = Some(1_700_000_000_000);
        assert!(message
            .response_standing(1_700_000_000_000)
            .starts_with("within the response time (due 2023-11-14 22:13:20Z)"));
        assert!(message
            .response_standing(1_700_000_000_000 + 90_000)
            .starts_with("2 min past"));
        message.response_due_ms = None;
        assert_eq!(
            message.response_standing(0),
            "no response time in the contract"
        );
    }

    #[test]
    fn a_forecast_reads_in_days_and_hours_with_its_interval_and_a_resolve_says_how_long() {
        let mut message = crate::notify::test_alert::sample_alert(1_700_000_000_000);
        message.context.forecast = Some(ForecastDetails {
            time_left_ms: (2 * 24 + 3) * 3_600_000,
            soonest_ms: (24 + 20) * 3_600_000,
            latest_ms: (2 * 24 + 9) * 3_600_000,
        });
        assert_eq!(
            message.forecast_text().unwrap(),
            "full in ~2 d 3 h at the current rate, 90 % interval 1 d 20 h – 2 d 9 h"
        );
        message.age_forecast(3 * 3_600_000);
        assert!(message
            .forecast_text()
            .unwrap()
            .starts_with("full in ~2 d at"));
        message.context.began_ms = Some(1_700_000_000_000 - 5 * 60_000);
        message.ends_at_ms = Some(1_700_000_000_000 + 3_600_000);
        assert_eq!(message.lasted_text().unwrap(), "lasted 1 h 5 min");
        message.context.time_zone = Some("Europe/Berlin".into());
        // 2023-11-14 22:13:20 UTC is 23:13 in Berlin.
        assert_eq!(
            message.local_time(1_700_000_000_000),
            "2023-11-14 23:13 CET"
        );
        message.context.client_name = Some("Smile Dental Care".into());
        assert_eq!(
            message.client_shown(),
            "Smile Dental Care (dental-practice)"
        );
    }

    #[test]
    fn the_fingerprint_depends_on_labels_but_not_their_order_of_insertion() {
        let mut a = BTreeMap::new();
        a.insert("mountpoint".to_string(), "/".to_string());
        a.insert("device".to_string(), "sda".to_string());
        let mut b = BTreeMap::new();
        b.insert("device".to_string(), "sda".to_string());
        b.insert("mountpoint".to_string(), "/".to_string());
        let first = fingerprint("dental", "srv-01", "disk_full", &a);
        assert_eq!(first, fingerprint("dental", "srv-01", "disk_full", &b));
        assert_eq!(first.len(), 16);
        b.insert("mountpoint".to_string(), "/data".to_string());
        assert_ne!(first, fingerprint("dental", "srv-01", "disk_full", &b));
    }

    #[test]
    fn a_delivery_key_is_the_same_for_the_same_transition_and_channel() {
        let one = Delivery::key_for("alert", "abcd", AlertStatus::Firing, 5, "ops");
        assert_eq!(
            one,
            Delivery::key_for("alert", "abcd", AlertStatus::Firing, 5, "ops")
        );
        assert_ne!(
            one,
            Delivery::key_for("alert", "abcd", AlertStatus::Firing, 5, "mail")
        );
        assert_ne!(
            one,
            Delivery::key_for("alert", "abcd", AlertStatus::Resolved, 5, "ops")
        );
    }
}
