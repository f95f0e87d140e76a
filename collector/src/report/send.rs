//! The report by email: the summary as the text, the page as the HTML body and as an
//! attachment, through the collector's SMTP server (its first `[[notify.channel]]` of type
//! `email`) to the addresses of the client's `[report] send_to`.
//!
//! [`due`] says which clients' reports are due at an instant (the contract's `[report] day`
//! in the client's time zone, for the month that ended); [`send_due`] makes, records and
//! mails each one that no earlier run has sent; [`run_schedule`] does so every hour.

use super::{build, html, runs, Month, MonthReport, ReportError};
use crate::notify::config::{read_secret, ChannelConfig, EmailConfig, NotifySection, SmtpSecurity};
use crate::pipeline::PolicyArchive;
use crate::policy::PolicyHistory;
use crate::store::Store;
use jiff::Timestamp;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;

/// The SMTP server a report goes through: the first email channel of `[notify]`.
pub fn smtp_of(notify: &NotifySection) -> Option<&EmailConfig> {
    notify.channels.iter().find_map(|channel| match channel {
        ChannelConfig::Email(email) => Some(email),
        _ => None,
    })
}

/// The mail for `report`, whose page is `page`, from `from` to `to`.
pub fn message(
    report: &MonthReport,
    page: &str,
    from: &str,
    to: &[String],
) -> Result<Message, ReportError> {
    let fail = |detail: String| ReportError::Email {
        client: report.client.clone(),
        detail,
    };
    let mailbox = |text: &str| {
        text.parse::<Mailbox>().map_err(|_| {
            fail(format!(
                "'{text}' is not an email address; write e.g. \"Owner <owner@client.example>\""
            ))
        })
    };
    let t = report.language;
    let month = t.month_title(report.month);
    let mut builder = Message::builder().from(mailbox(from)?).subject(t.text(
        "mail.subject",
        &[("client", &report.client_name), ("month", &month)],
    ));
    for address in to {
        builder = builder.to(mailbox(address)?);
    }
    let file_name = format!("{}-{}.html", report.client, report.month);
    let text = format!(
        "{}\n\n{}\n",
        html::summary(report),
        t.text("mail.body", &[("file", &file_name)])
    );
    builder
        .multipart(
            MultiPart::mixed()
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::plain(text))
                        .singlepart(SinglePart::html(page.to_string())),
                )
                .singlepart(Attachment::new(file_name).body(
                    page.to_string(),
                    ContentType::parse("text/html; charset=utf-8").expect("a valid content type"),
                )),
        )
        .map_err(|error| fail(format!("cannot build the mail: {error}")))
}

/// Sends `report` to `to` through `smtp`.
pub async fn send(
    smtp: &EmailConfig,
    report: &MonthReport,
    page: &str,
    to: &[String],
) -> Result<(), ReportError> {
    let fail = |detail: String| ReportError::Email {
        client: report.client.clone(),
        detail,
    };
    if to.is_empty() {
        return Err(fail(
            "no recipients; add [report] send_to = [\"owner@client.example\"] to its policy"
                .to_string(),
        ));
    }
    let mut builder = match smtp.security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|error| fail(format!("smtp host '{}': {error}", smtp.host)))?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .map_err(|error| fail(format!("smtp host '{}': {error}", smtp.host)))?,
        SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    };
    builder = builder
        .port(smtp.port())
        .timeout(Some(std::time::Duration::from_secs(30)));
    let password = read_secret(
        "password",
        smtp.password.as_ref(),
        smtp.password_file.as_ref(),
        smtp.password_env.as_ref(),
    )
    .map_err(|error| fail(format!("channel '{}': {error}", smtp.name)))?;
    if let (Some(username), Some(password)) = (&smtp.username, password) {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.expose().to_string(),
        ));
    }
    let mail = message(report, page, &smtp.from, to)?;
    builder.build().send(mail).await.map_err(|error| {
        fail(format!(
            "smtp://{}:{} did not take the mail: {error}; check channel '{}' with 'notify test'",
            smtp.host,
            smtp.port(),
            smtp.name
        ))
    })?;
    Ok(())
}

/// Clients whose report on the month that ended is due at `now`: today is their contract's
/// `[report] day` (or later in the month, if a run was missed) in their time zone.
pub fn due(data_dir: &Path, now: Timestamp) -> Vec<(String, Month, Vec<String>)> {
    let archive = PolicyArchive::new(data_dir);
    let sent = runs::read(data_dir).unwrap_or_default();
    let mut due = Vec::new();
    for client in archive.clients().unwrap_or_default() {
        let Ok(versions) = archive.versions(&client) else {
            continue;
        };
        let Ok(history) = PolicyHistory::from_versions(&client, versions) else {
            continue;
        };
        let Some(policy) = history.latest() else {
            continue;
        };
        let Some(schedule) = policy.report.as_ref().filter(|r| !r.send_to.is_empty()) else {
            continue;
        };
        let zone = policy.calendar.time_zone();
        let today = now.to_zoned_datetime(zone.clone()).date();
        if today.day() < schedule.day {
            continue;
        }
        let month = Month::containing(now, zone).previous();
        let already = sent
            .iter()
            .any(|run| run.client == client && run.month == month.to_string() && run.sent);
        if !already {
            due.push((client, month, schedule.send_to.clone()));
        }
    }
    due
}

/// Makes, records and mails every report due at `now`; returns what was sent and what
/// failed, one line each. A month without data is skipped with its reason.
pub async fn send_due(
    data_dir: &Path,
    store: Option<&Store>,
    notify: &NotifySection,
    now: Timestamp,
) -> Vec<Result<String, ReportError>> {
    let mut outcomes = Vec::new();
    let due = due(data_dir, now);
    if due.is_empty() {
        return outcomes;
    }
    let Some(smtp) = smtp_of(notify) else {
        outcomes.push(Err(ReportError::Email {
            client: due[0].0.clone(),
            detail: "no email channel in [notify] to send it through; add a \
                     [[notify.channel]] of type \"email\""
                .to_string(),
        }));
        return outcomes;
    };
    for (client, month, send_to) in due {
        outcomes.push(make_and_send(data_dir, store, smtp, &client, month, &send_to, now).await);
    }
    outcomes
}

/// How often the schedule looks for reports that are due.
pub const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The monthly schedule as a task: every [`SCHEDULE_EVERY`], [`send_due`] at `clock`'s
/// time, each outcome logged, until `shutdown`. What `serve` spawns.
pub async fn run_schedule(
    data_dir: std::path::PathBuf,
    store: Store,
    notify: NotifySection,
    clock: crate::notify::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let now = Timestamp::from_millisecond(clock.now_ms()).unwrap_or(Timestamp::UNIX_EPOCH);
        for outcome in send_due(&data_dir, Some(&store), &notify, now).await {
            match outcome {
                Ok(line) => tracing::info!("{line}"),
                Err(error) => tracing::error!("{error}"),
            }
        }
        tokio::select! {
            // The next look; a report already sent is recorded and not sent again.
            _ = tokio::time::sleep(SCHEDULE_EVERY) => {}
            // The collector is stopping.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One client's report made, mailed and recorded as sent. The report is built on a
/// blocking thread: it reads files and the store.
pub async fn make_and_send(
    data_dir: &Path,
    store: Option<&Store>,
    smtp: &EmailConfig,
    client: &str,
    month: Month,
    send_to: &[String],
    now: Timestamp,
) -> Result<String, ReportError> {
    let (report, page) = {
        let (data_dir, store, owned) = (data_dir.to_path_buf(), store.cloned(), client.to_string());
        tokio::task::spawn_blocking(move || {
            let report = build(&data_dir, store.as_ref(), &owned, month, now)?;
            let page = html::render(&report);
            Ok::<_, ReportError>((report, page))
        })
        .await
        .map_err(|error| ReportError::Email {
            client: client.to_string(),
            detail: format!("building the report failed: {error}"),
        })??
    };
    send(smtp, &report, &page, send_to).await?;
    let run = runs::record(data_dir, &report, &page, now.as_millisecond(), true)?;
    Ok(format!(
        "report {} for client '{client}' sent to {} ({})",
        month,
        send_to.join(", "),
        run.output_digest
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "client = \"acme\"\ntime_zone = \"Pacific/Auckland\"\n\
        [hours]\nweekdays = \"08:00-17:00\"\n\
        [report]\nsend_to = [\"owner@acme.example\"]\nday = 2\n";

    #[test]
    fn the_mail_is_written_in_the_language_of_the_contract() {
        let policy = crate::policy::Policy::parse(
            Path::new("acme.toml"),
            "client = \"acme\"\ntime_zone = \"Europe/Paris\"\n[hours]\nweekdays = \"08:00-17:00\"\n\
             [report]\nsend_to = [\"owner@acme.example\"]\nlanguage = \"fr\"\n",
        )
        .unwrap();
        let month = Month::parse("2026-11").unwrap();
        let (start, end) = month.range(policy.calendar.time_zone());
        let (start_ms, end_ms) = (start.as_millisecond(), end.as_millisecond());
        let gathered = super::super::sources::Gathered {
            start_ms,
            end_ms,
            hosts: vec![("srv".into(), start_ms)],
            ..Default::default()
        };
        let report = super::super::compute(&policy, month, start_ms, end_ms, gathered);
        let page = html::render(&report);
        assert!(page.contains("<html lang=\"fr\">"));
        let mail = message(
            &report,
            &page,
            "vigil@msp.example",
            &policy.report.unwrap().send_to,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&mail.formatted()).into_owned();
        assert!(
            text.contains("Subject: acme : rapport informatique de novembre 2026"),
            "{text}"
        );
        assert!(text.contains("filename=\"acme-2026-11.html\""), "{text}");
    }

    #[test]
    fn a_report_is_due_from_the_contracts_day_in_the_clients_time_zone() {
        let data = tempfile::tempdir().unwrap();
        let source = data.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("acme.toml"), POLICY).unwrap();
        let policies = crate::pipeline::Policies::open(data.path(), Some(source));
        assert!(policies
            .sync("test", "2026-09-01T00:00:00Z".parse().unwrap())
            .is_empty());
        // 1 December 12:00 UTC is already the 2nd in Auckland (UTC+13).
        let before: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let after: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        assert!(due(data.path(), before).is_empty());
        let due_now = due(data.path(), after);
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].0, "acme");
        assert_eq!(due_now[0].1.to_string(), "2026-11");
        assert_eq!(due_now[0].2, ["owner@acme.example"]);
    }
}
