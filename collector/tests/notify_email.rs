//! Alert mail through a real SMTP conversation on 127.0.0.1: a minimal SMTP server in the
//! test (greeting, EHLO, MAIL, RCPT, DATA, QUIT) captures what lettre sends, so the tests
//! can read the headers: the resolve mail threads under the alert mail, both parts are
//! there, and a server that answers "try later" gets the mail again later.

use jiff::Timestamp;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vigil_collector::alert::{AlertState, Severity, Transition};
use vigil_collector::notify::channel::Channels;
use vigil_collector::notify::config::{ChannelConfig, EmailConfig, SmtpSecurity};
use vigil_collector::notify::{
    enqueue, ChannelRouting, Clock, Notifier, NotifierSettings, NotifySection, Outbox,
};
use vigil_collector::policy::{Classification, ContractSeverity, PolicyVersionId, Route};
use vigil_proto::model::Labels;

const START_MS: i64 = 1_700_000_000_000;

/// One mail as the server received it.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
    /// Whether the server accepted it (or answered 451).
    accepted: bool,
}

impl Mail {
    /// The value of a header, unfolded.
    fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// A minimal SMTP server: accepts every mail, or answers DATA with `451` while told to.
#[derive(Clone)]
struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    temporary_failure: Arc<Mutex<bool>>,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            mails: Arc::default(),
            temporary_failure: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let server = shared.clone();
                tokio::spawn(async move { server.converse(stream).await });
            }
        });
        server
    }

    async fn converse(&self, stream: tokio::net::TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"220 localhost ESMTP test\r\n")
            .await
            .unwrap();
        let mut from = String::new();
        let mut to = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                "250-localhost\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().to_string();
                to.clear();
                "250 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                to.push(line[8..].trim().to_string());
                "250 OK\r\n"
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                let accepted = !*self.temporary_failure.lock().unwrap();
                self.mails.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    accepted,
                });
                if accepted {
                    "250 queued\r\n"
                } else {
                    "451 try again later\r\n"
                }
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                return;
            } else {
                "250 OK\r\n"
            };
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

fn notifier(outbox: Arc<Outbox>, port: u16, clock: Clock) -> Notifier {
    let section = NotifySection {
        channels: vec![ChannelConfig::Email(EmailConfig {
            name: "ops-mail".into(),
            host: "127.0.0.1".into(),
            port: Some(port),
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            from: "Vigil <vigil@msp.example>".into(),
            to: vec!["oncall@msp.example".into(), "owner@msp.example".into()],
        })],
        timeout: Duration::from_secs(5),
        ..NotifySection::default()
    };
    Notifier::new(
        outbox,
        Arc::new(Channels::build(&section).unwrap()),
        NotifierSettings::default(),
        clock,
    )
}

fn transition(state: AlertState, ts_ms: i64) -> Transition {
    Transition {
        ts_ms,
        host: "srv-01".into(),
        client: "dental-practice".into(),
        rule: "FilesystemFullForecast".into(),
        severity: Severity::Critical,
        state,
        summary: "D: on srv-01 full in ~20 h at the current rate".into(),
        labels: Labels::from_pairs([("mountpoint", "D:")]),
        category: None,
        began_ms: 0,
        details: Default::default(),
    }
}

fn classification() -> Classification {
    Classification {
        contract_severity: ContractSeverity::Emergency,
        host_role: Some("server".into()),
        route: Route::Now,
        response_due: Timestamp::from_millisecond(START_MS + 3_600_000).unwrap(),
        policy_version: PolicyVersionId {
            client: "dental-practice".into(),
            version: 2,
            digest: "sha256:abcd".into(),
        },
        rule: None,
        accepted_risk: None,
        reclassify_at: None,
        reasons: vec![],
        client_name: None,
        time_zone: None,
    }
}

fn routing() -> ChannelRouting {
    ChannelRouting {
        on_call: vec!["ops-mail".into()],
        normal: vec![],
        escalation: vec![],
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

#[tokio::test]
async fn the_resolve_mail_threads_under_the_alert_mail() {
    let server = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = notifier(outbox.clone(), server.port, clock.clone());

    enqueue(
        &outbox,
        &transition(AlertState::Firing, START_MS),
        &classification(),
        &routing(),
        at(START_MS),
    )
    .unwrap();
    assert_eq!(notifier.run_once().await.unwrap().sent, 1);
    clock.advance(Duration::from_secs(1800));
    enqueue(
        &outbox,
        &transition(AlertState::Resolved, START_MS + 1_800_000),
        &classification(),
        &routing(),
        at(START_MS + 1_800_000),
    )
    .unwrap();
    assert_eq!(notifier.run_once().await.unwrap().sent, 1);

    let mails = server.mails();
    assert_eq!(mails.len(), 2);
    let (alert, resolve) = (&mails[0], &mails[1]);
    assert_eq!(alert.from, "<vigil@msp.example>");
    assert_eq!(
        alert.to,
        vec!["<oncall@msp.example>", "<owner@msp.example>"]
    );
    let alert_id = alert.header("Message-ID").unwrap();
    assert!(
        alert_id.starts_with("<vigil.") && alert_id.ends_with("@msp.example>"),
        "{alert_id}"
    );
    assert_eq!(alert.header("In-Reply-To"), None);
    let resolve_id = resolve.header("Message-ID").unwrap();
    assert_ne!(resolve_id, alert_id);
    assert_eq!(resolve.header("In-Reply-To"), Some(alert_id.clone()));
    assert_eq!(resolve.header("References"), Some(alert_id));
    assert!(alert
        .header("Subject")
        .unwrap()
        .starts_with("[emergency] srv-01 (dental-practice)"));
    assert!(resolve
        .header("Subject")
        .unwrap()
        .starts_with("[resolved] srv-01 (dental-practice)"));
    for mail in [alert, resolve] {
        assert!(
            mail.data.contains("Content-Type: text/plain"),
            "{}",
            mail.data
        );
        assert!(
            mail.data.contains("Content-Type: text/html"),
            "{}",
            mail.data
        );
    }
    assert!(
        alert.data.contains("Contract severity: emergency"),
        "{}",
        alert.data
    );
}

#[tokio::test]
async fn a_mail_the_server_defers_is_sent_again_with_the_same_message_id() {
    let server = SmtpServer::start().await;
    *server.temporary_failure.lock().unwrap() = true;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = notifier(outbox.clone(), server.port, clock.clone());
    enqueue(
        &outbox,
        &transition(AlertState::Firing, START_MS),
        &classification(),
        &routing(),
        at(START_MS),
    )
    .unwrap();
    assert_eq!(notifier.run_once().await.unwrap().retrying, 1);
    let error = outbox.pending().unwrap().0[0].last_error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "email 'ops-mail': smtp://127.0.0.1:{}: ",
            server.port
        )) && error.contains("attempt 1 of 12, next in"),
        "{error}"
    );
    *server.temporary_failure.lock().unwrap() = false;
    clock.advance(Duration::from_secs(60));
    assert_eq!(notifier.run_once().await.unwrap().sent, 1);
    let mails = server.mails();
    assert_eq!(
        mails.iter().map(|mail| mail.accepted).collect::<Vec<_>>(),
        vec![false, true]
    );
    assert_eq!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
    let delivered = outbox.sent().unwrap();
    assert_eq!(delivered[0].attempts, 2);
}
