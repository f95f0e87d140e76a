//! Email over SMTP (lettre): STARTTLS, implicit TLS or — for a relay on the same machine —
//! plain; optional authentication; a plain-text and an HTML body.
//!
//! Threading: the first mail of an alert has a Message-ID derived from its fingerprint and
//! the instant it began firing, `<vigil.<fingerprint>.<start ms>@<sender's domain>>`; every
//! later mail of the same episode (a rise in severity, an escalation, the resolve) has its
//! own id and `In-Reply-To`/`References` pointing at that first one, so mail clients show
//! the resolve under the alert. The ids are stable: a retried mail carries the same id, so a
//! duplicate is recognisable as one.

use super::{Context, SendError};
use crate::notify::config::{read_secret, EmailConfig, SmtpSecurity};
use crate::notify::message::{AlertMessage, AlertStatus, Delivery, Purpose};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `smtp://host:port`, for messages.
    shown: String,
}

impl Email {
    pub fn new(config: &EmailConfig, context: &Context) -> Result<Self, String> {
        let mut builder = match config.security {
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|error| format!("host '{}': {error}", config.host))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|error| format!("host '{}': {error}", config.host))?,
            SmtpSecurity::Plain => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        builder = builder.port(config.port()).timeout(Some(context.timeout));
        let password = read_secret(
            "password",
            config.password.as_ref(),
            config.password_file.as_ref(),
            config.password_env.as_ref(),
        )?;
        if let (Some(username), Some(password)) = (&config.username, password) {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.expose().to_string(),
            ));
        }
        let mailbox = |text: &str| {
            text.parse::<Mailbox>().map_err(|_| {
                format!(
                    "'{text}' is not an email address; write e.g. \"Vigil <vigil@msp.example>\""
                )
            })
        };
        Ok(Self {
            transport: builder.build(),
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|to| mailbox(to))
                .collect::<Result<_, _>>()?,
            shown: format!("smtp://{}:{}", config.host, config.port()),
        })
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let message = build_message(delivery, &self.from, &self.to)
            .map_err(|error| SendError::permanent(format!("cannot build the mail: {error}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendError::permanent(format!(
                "{} refused the mail: {error}",
                self.shown
            ))),
            Err(error) => Err(SendError::retry(format!("{}: {error}", self.shown))),
        }
    }
}

/// The id of the first mail of an alert episode, which later mails reply to.
pub fn thread_id(alert: &AlertMessage, domain: &str) -> String {
    format!(
        "<vigil.{}.{}@{domain}>",
        alert.fingerprint, alert.starts_at_ms
    )
}

/// The Message-ID of `delivery`, and the id it replies to, if any.
pub fn message_ids(delivery: &Delivery, domain: &str) -> (String, Option<String>) {
    let first = delivery.alerts.first();
    match (&delivery.purpose, first) {
        (Purpose::Alert, Some(alert)) => {
            let root = thread_id(alert, domain);
            match alert.status {
                AlertStatus::Firing if alert.at_ms == alert.starts_at_ms => (root, None),
                AlertStatus::Firing => (
                    format!(
                        "<vigil.{}.{}.{}@{domain}>",
                        alert.fingerprint, alert.starts_at_ms, alert.at_ms
                    ),
                    Some(root),
                ),
                AlertStatus::Resolved => (
                    format!(
                        "<vigil.{}.{}.resolved@{domain}>",
                        alert.fingerprint, alert.starts_at_ms
                    ),
                    Some(root),
                ),
            }
        }
        (Purpose::Acknowledged { at_ms, .. }, Some(alert)) => (
            format!(
                "<vigil.{}.{}.ack.{at_ms}@{domain}>",
                alert.fingerprint, alert.starts_at_ms
            ),
            Some(thread_id(alert, domain)),
        ),
        (Purpose::Escalation, Some(alert)) => (
            format!(
                "<vigil.{}.{}.escalation@{domain}>",
                alert.fingerprint, alert.starts_at_ms
            ),
            Some(thread_id(alert, domain)),
        ),
        (Purpose::Digest { client, at_ms }, _) => {
            let client: String = client
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (format!("<vigil.digest.{client}.{at_ms}@{domain}>"), None)
        }
        _ => (format!("<vigil.{}@{domain}>", delivery.key), None),
    }
}

/// The subject line.
pub fn subject(delivery: &Delivery) -> String {
    match &delivery.purpose {
        Purpose::Digest { client, .. } => {
            let firing = delivery
                .alerts
                .iter()
                .filter(|alert| alert.status == AlertStatus::Firing)
                .count();
            format!(
                "[digest] {client}: {} alert{} overnight, {firing} still firing",
                delivery.alerts.len(),
                if delivery.alerts.len() == 1 { "" } else { "s" }
            )
        }
        Purpose::Acknowledged { by, .. } => format!(
            "[acknowledged by {by}] {}",
            delivery
                .alerts
                .first()
                .map(AlertMessage::title)
                .unwrap_or_default()
        ),
        Purpose::Escalation => format!(
            "[ESCALATION, not acknowledged] {}",
            delivery
                .alerts
                .first()
                .map(AlertMessage::title)
                .unwrap_or_default()
        ),
        Purpose::Test => "[test] Vigil test alert: please ignore".to_string(),
        Purpose::Alert => delivery
            .alerts
            .first()
            .map(AlertMessage::title)
            .unwrap_or_default(),
    }
}

/// The plain-text body.
pub fn plain_body(delivery: &Delivery) -> String {
    let mut text = String::new();
    if delivery.purpose == Purpose::Escalation {
        text.push_str("Nobody has acknowledged this emergency within its response time.\n\n");
    }
    if let (Purpose::Acknowledged { by, at_ms }, Some(alert)) =
        (&delivery.purpose, delivery.alerts.first())
    {
        text.push_str(&format!(
            "{by} acknowledged this alert at {}, {}.\n\n",
            alert.local_time(*at_ms),
            alert.response_standing(*at_ms)
        ));
    }
    for alert in &delivery.alerts {
        text.push_str(&alert.title());
        text.push('\n');
        for (name, value) in facts(alert) {
            text.push_str(&format!("  {name}: {value}\n"));
        }
        if let Some(links) = &alert.context.links {
            text.push_str(&format!(
                "  Open in the console: {}\n  Acknowledge: {}\n",
                links.page, links.acknowledge
            ));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "Acknowledge with: vigil-collector alerts ack {} --by YOUR-NAME\n",
        delivery
            .alerts
            .first()
            .map(|alert| alert.fingerprint.as_str())
            .unwrap_or("ID")
    ));
    text
}

/// The HTML body: the same facts as a table per alert.
pub fn html_body(delivery: &Delivery) -> String {
    let mut html = String::from("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">");
    if delivery.purpose == Purpose::Escalation {
        html.push_str("<p><strong>Nobody has acknowledged this emergency within its response time.</strong></p>");
    }
    for alert in &delivery.alerts {
        html.push_str(&format!("<h3>{}</h3><table>", escape(&alert.title())));
        for (name, value) in facts(alert) {
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(name),
                escape(&value)
            ));
        }
        html.push_str("</table>");
        if let Some(links) = &alert.context.links {
            html.push_str(&format!(
                "<p><a href=\"{}\">Open in the console</a> · <a href=\"{}\">Acknowledge</a></p>",
                escape(&links.page),
                escape(&links.acknowledge)
            ));
        }
    }
    html.push_str("</body></html>");
    html
}

fn facts(alert: &AlertMessage) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        ("Status", alert.status.as_str().to_string()),
        ("Client", alert.client_shown()),
        ("Host", alert.host.clone()),
        (
            "Host role",
            alert.host_role.clone().unwrap_or_else(|| "none".into()),
        ),
        ("Contract severity", alert.contract_severity.clone()),
        ("Rule", alert.rule.clone()),
        (
            "Kind",
            alert.context.kind.clone().unwrap_or_else(|| "none".into()),
        ),
        (
            "Since",
            alert.local_time(alert.context.began_ms.unwrap_or(alert.starts_at_ms)),
        ),
    ];
    if let Some(forecast) = alert.forecast_text() {
        facts.push(("Forecast", forecast));
    }
    if let Some(log_line) = alert.log_line_text() {
        facts.push(("Log line", log_line));
    }
    if let Some(ends) = alert.ends_at_ms {
        let lasted = alert
            .lasted_text()
            .map(|lasted| format!(" ({lasted})"))
            .unwrap_or_default();
        facts.push(("Resolved", format!("{}{lasted}", alert.local_time(ends))));
    }
    if let Some(due) = alert.response_due_ms {
        if alert.status == AlertStatus::Firing {
            facts.push(("Response due", alert.local_time(due)));
        }
    }
    for reason in &alert.reasons {
        facts.push(("Why", reason.clone()));
    }
    for (name, value) in &alert.labels {
        facts.push(("Label", format!("{name}={value}")));
    }
    facts.push((
        "Policy",
        format!(
            "{} v{} ({})",
            alert.client, alert.policy_version, alert.policy_digest
        ),
    ));
    facts.push(("Alert id", alert.fingerprint.clone()));
    facts
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole mail for `delivery`.
pub fn build_message(
    delivery: &Delivery,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, lettre::error::Error> {
    let domain = from.email.domain().to_string();
    let (id, reply_to) = message_ids(delivery, &domain);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(delivery))
        .message_id(Some(id));
    for recipient in to {
        builder = builder.to(recipient.clone());
    }
    if let Some(root) = reply_to {
        builder = builder.in_reply_to(root.clone()).references(root);
    }
    builder.multipart(MultiPart::alternative_plain_html(
        plain_body(delivery),
        html_body(delivery),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert::sample_alert;

    fn delivery(alert: AlertMessage, purpose: Purpose) -> Delivery {
        Delivery {
            key: "k".into(),
            channel: "mail".into(),
            purpose,
            alerts: vec![alert],
            created_ms: 0,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            finished_ms: None,
        }
    }

    #[test]
    fn the_resolve_mail_replies_to_the_first_mail_of_the_alert() {
        let firing = sample_alert(1_000);
        let mut resolved = firing.clone();
        resolved.status = AlertStatus::Resolved;
        resolved.at_ms = 9_000;
        resolved.ends_at_ms = Some(9_000);
        let (first, none) = message_ids(&delivery(firing.clone(), Purpose::Alert), "msp.example");
        assert_eq!(none, None);
        assert_eq!(
            first,
            format!("<vigil.{}.1000@msp.example>", firing.fingerprint)
        );
        let (id, parent) = message_ids(&delivery(resolved, Purpose::Alert), "msp.example");
        assert_ne!(id, first);
        assert_eq!(parent, Some(first.clone()));
        let (_, escalation_parent) =
            message_ids(&delivery(firing, Purpose::Escalation), "msp.example");
        assert_eq!(escalation_parent, Some(first));
    }

    #[test]
    fn a_mail_shows_the_client_by_name_its_times_in_the_clients_zone_the_forecast_and_why() {
        let mut alert = sample_alert(1_700_000_000_000);
        alert.context.client_name = Some("Smile Dental Care".into());
        alert.context.time_zone = Some("Europe/Berlin".into());
        alert.context.forecast = Some(crate::alert::ForecastDetails {
            time_left_ms: 20 * 3_600_000,
            soonest_ms: 16 * 3_600_000,
            latest_ms: 26 * 3_600_000,
        });
        let body = plain_body(&delivery(alert.clone(), Purpose::Alert));
        assert!(
            body.contains("Client: Smile Dental Care (dental-practice)"),
            "{body}"
        );
        // 2023-11-14 22:13:20 UTC, on the practice's clock.
        assert!(body.contains("Since: 2023-11-14 23:13 CET"), "{body}");
        assert!(
            body.contains(
                "Forecast: full in ~20 h at the current rate, 90 % interval 16 h – 1 d 2 h"
            ),
            "{body}"
        );
        assert!(body.contains("Why: host 'srv-01' is a server"), "{body}");

        let mut resolved = alert.clone();
        resolved.status = AlertStatus::Resolved;
        resolved.ends_at_ms = Some(1_700_000_000_000 + 90 * 60_000);
        let body = plain_body(&delivery(resolved, Purpose::Alert));
        assert!(body.contains("(lasted 1 h 30 min)"), "{body}");

        let acknowledged = delivery(
            alert,
            Purpose::Acknowledged {
                by: "ann".into(),
                at_ms: 1_700_000_000_000 + 10 * 60_000,
            },
        );
        assert!(subject(&acknowledged).starts_with("[acknowledged by ann] "));
        assert!(plain_body(&acknowledged).starts_with(
            "ann acknowledged this alert at 2023-11-14 23:23 CET, within the response time"
        ));
        let (id, parent) = message_ids(&acknowledged, "msp.example");
        assert!(id.contains(".ack."), "{id}");
        assert!(parent.is_some());
    }

    #[test]
    fn the_mail_has_plain_and_html_parts_and_threading_headers() {
        let mut resolved = sample_alert(1_000);
        resolved.status = AlertStatus::Resolved;
        resolved.at_ms = 2_000;
        resolved.ends_at_ms = Some(2_000);
        let from: Mailbox = "Vigil <vigil@msp.example>".parse().unwrap();
        let to: Mailbox = "oncall@msp.example".parse().unwrap();
        let message = build_message(&delivery(resolved, Purpose::Alert), &from, &[to]).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("In-Reply-To: <vigil."), "{text}");
        assert!(text.contains("References: <vigil."), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain"), "{text}");
        assert!(text.contains("text/html"), "{text}");
        assert!(
            text.contains("Subject: [resolved] srv-01 (dental-practice)"),
            "{text}"
        );
    }
}
