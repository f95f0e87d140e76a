//! Delivery to real third-party peers: Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`) and Python's aiosmtpd writing a maildir. Ignored by plain
//! `cargo test`; `tests/interop/run.sh` starts the peers and runs it with
//! `VIGIL_INTEROP_ALERTMANAGER=http://127.0.0.1:PORT`, `VIGIL_INTEROP_SMTP_PORT=PORT` and
//! `VIGIL_INTEROP_MAILDIR=DIR`.

use jiff::Timestamp;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use vigil_collector::alert::{AlertState, Severity, Transition};
use vigil_collector::notify::channel::Channels;
use vigil_collector::notify::config::{
    AlertmanagerConfig, ChannelConfig, EmailConfig, SmtpSecurity,
};
use vigil_collector::notify::{
    enqueue, ChannelRouting, Clock, Notifier, NotifierSettings, NotifySection, Outbox,
};
use vigil_collector::policy::{Classification, ContractSeverity, PolicyVersionId, Route};
use vigil_proto::model::Labels;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run tests/interop/run.sh"))
}

fn transition(host: &str, state: AlertState, ts_ms: i64) -> Transition {
    Transition {
        ts_ms,
        host: host.into(),
        client: "dental-practice".into(),
        rule: "host_silent".into(),
        severity: Severity::Critical,
        state,
        summary: format!("{host} has not reported for 5 min"),
        labels: Labels::from_pairs([("job", "agent")]),
        category: None,
        began_ms: 0,
        details: Default::default(),
    }
}

fn classification(now_ms: i64) -> Classification {
    Classification {
        contract_severity: ContractSeverity::Emergency,
        host_role: Some("server".into()),
        route: Route::Now,
        response_due: Timestamp::from_millisecond(now_ms + 3_600_000).unwrap(),
        policy_version: PolicyVersionId {
            client: "dental-practice".into(),
            version: 1,
            digest: "sha256:interop".into(),
        },
        rule: Some("server-silent".into()),
        accepted_risk: None,
        reclassify_at: None,
        reasons: vec![],
        client_name: None,
        time_zone: None,
    }
}

/// Header value of a stored mail, unfolded.
fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.replace("\r\n", "\n");
    let head = head.split("\n\n").next().unwrap_or("").replace("\n ", " ");
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

#[tokio::test]
#[ignore = "needs prometheus-alertmanager and aiosmtpd; run tests/interop/run.sh"]
async fn alerts_reach_a_real_alertmanager_and_a_real_smtp_server() {
    let alertmanager = env("VIGIL_INTEROP_ALERTMANAGER");
    let smtp_port: u16 = env("VIGIL_INTEROP_SMTP_PORT").parse().unwrap();
    let maildir = std::path::PathBuf::from(env("VIGIL_INTEROP_MAILDIR"));
    let section = NotifySection {
        channels: vec![
            ChannelConfig::Alertmanager(AlertmanagerConfig {
                name: "am".into(),
                url: alertmanager.clone(),
            }),
            ChannelConfig::Email(EmailConfig {
                name: "mail".into(),
                host: "127.0.0.1".into(),
                port: Some(smtp_port),
                security: SmtpSecurity::Plain,
                username: None,
                password: None,
                password_file: None,
                password_env: None,
                from: "Vigil <vigil@msp.example>".into(),
                to: vec!["oncall@msp.example".into()],
            }),
        ],
        ..NotifySection::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let notifier = Notifier::new(
        outbox.clone(),
        Arc::new(Channels::build(&section).unwrap()),
        NotifierSettings::default(),
        Clock::System,
    );
    let routing = ChannelRouting {
        on_call: vec!["am".into(), "mail".into()],
        normal: vec![],
        escalation: vec![],
    };
    let now_ms = Timestamp::now().as_millisecond();
    for host in ["interop-srv-01", "interop-srv-02"] {
        enqueue(
            &outbox,
            &transition(host, AlertState::Firing, now_ms),
            &classification(now_ms),
            &routing,
            Timestamp::from_millisecond(now_ms).unwrap(),
        )
        .unwrap();
    }
    let round = notifier.run_once().await.unwrap();
    assert_eq!(round.sent, 4, "{round:?}: {:?}", outbox.pending().unwrap());
    let resolved_ms = now_ms + 1_000;
    enqueue(
        &outbox,
        &transition("interop-srv-02", AlertState::Resolved, resolved_ms),
        &classification(now_ms),
        &routing,
        Timestamp::from_millisecond(resolved_ms).unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let round = notifier.run_once().await.unwrap();
    assert_eq!(round.sent, 2, "{round:?}: {:?}", outbox.pending().unwrap());

    // Alertmanager shows the firing alert with Vigil's labels, and not the resolved one.
    let alerts: Value = reqwest::get(format!("{alertmanager}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hosts: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|alert| alert["labels"]["host"].as_str())
        .collect();
    assert!(hosts.contains(&"interop-srv-01"), "{alerts}");
    assert!(!hosts.contains(&"interop-srv-02"), "{alerts}");
    let firing = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["labels"]["host"] == "interop-srv-01")
        .unwrap();
    assert_eq!(firing["labels"]["client"], "dental-practice");
    assert_eq!(firing["labels"]["severity"], "emergency");
    assert_eq!(firing["labels"]["host_role"], "server");
    assert_eq!(firing["labels"]["alertname"], "host_silent");
    assert_eq!(firing["status"]["state"], "active");

    // The maildir holds three mails; the resolve replies to its alert's mail.
    let mut mails = Vec::new();
    for entry in std::fs::read_dir(maildir.join("new")).unwrap() {
        mails.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let ours: Vec<&String> = mails
        .iter()
        .filter(|mail| mail.contains("interop-srv-0"))
        .collect();
    assert_eq!(ours.len(), 3, "{mails:?}");
    let subject_of = |mail: &String| header(mail, "Subject").unwrap_or_default();
    let alert_mail = ours
        .iter()
        .find(|mail| subject_of(mail).starts_with("[emergency] interop-srv-02"))
        .expect("the alert mail for interop-srv-02");
    let resolve_mail = ours
        .iter()
        .find(|mail| subject_of(mail).starts_with("[resolved] interop-srv-02"))
        .expect("the resolve mail for interop-srv-02");
    assert_eq!(
        header(resolve_mail, "In-Reply-To"),
        header(alert_mail, "Message-ID")
    );
}
