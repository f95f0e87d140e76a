//! Alert delivery against real HTTP receivers on 127.0.0.1: the outbox survives a receiver
//! that is down and a collector that stops between enqueue and send; every alert arrives,
//! none twice under its idempotency key; signatures verify; deliveries that cannot succeed
//! end in dead letters; digests wait for the morning; emergencies escalate unless
//! acknowledged. Time is a manual clock, so no test waits for a backoff.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::alert::{AlertState, Severity, Transition};
use vigil_collector::notify::channel::Channels;
use vigil_collector::notify::config::{ChannelConfig, WebhookConfig};
use vigil_collector::notify::route::Backoff;
use vigil_collector::notify::{
    enqueue, ChannelRouting, Clock, Notifier, NotifierSettings, NotifySection, Outbox,
};
use vigil_collector::policy::{Classification, ContractSeverity, PolicyVersionId, Route};
use vigil_proto::model::Labels;

const START_MS: i64 = 1_700_000_000_000;
const KEY: &str = "shared-hmac-key";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// A webhook receiver that answers with the status it is told to and records every request.
#[derive(Clone)]
struct Receiver {
    answer: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<Received>>>,
    base: String,
}

impl Receiver {
    async fn start(answer: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            answer: Arc::new(AtomicU16::new(answer)),
            requests: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn set_answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|request| request.status < 300)
            .collect()
    }
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = receiver.answer.load(Ordering::SeqCst);
    receiver.requests.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        status,
        headers,
        body,
    });
    StatusCode::from_u16(status).unwrap()
}

fn webhook(name: &str, url: String) -> ChannelConfig {
    ChannelConfig::Webhook(WebhookConfig {
        name: name.into(),
        url,
        hmac_key: Some(KEY.into()),
        hmac_key_file: None,
        hmac_key_env: None,
    })
}

fn channels(configs: Vec<ChannelConfig>) -> Arc<Channels> {
    let section = NotifySection {
        channels: configs,
        timeout: Duration::from_secs(5),
        ..NotifySection::default()
    };
    Arc::new(Channels::build(&section).unwrap())
}

fn settings(attempts: u32) -> NotifierSettings {
    NotifierSettings {
        backoff: Backoff {
            attempts,
            ..Backoff::default()
        },
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
    }
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

fn classification(severity: ContractSeverity, route: Route, due_ms: i64) -> Classification {
    Classification {
        contract_severity: severity,
        host_role: Some("server".into()),
        route,
        response_due: Timestamp::from_millisecond(due_ms).unwrap(),
        policy_version: PolicyVersionId {
            client: "dental-practice".into(),
            version: 4,
            digest: "sha256:abcd".into(),
        },
        rule: Some("server-silent".into()),
        accepted_risk: None,
        reclassify_at: None,
        reasons: vec!["host 'srv-01' is a server".into()],
        client_name: None,
        time_zone: None,
    }
}

fn routing(normal: &[&str], on_call: &[&str], escalation: &[&str]) -> ChannelRouting {
    let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
    ChannelRouting {
        on_call: names(on_call),
        normal: names(normal),
        escalation: names(escalation),
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

#[tokio::test]
async fn every_alert_arrives_once_after_the_receiver_comes_back() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let telemetry = vigil_collector::telemetry::Telemetry::new();
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook(
            "ops",
            format!("{}/hook/secret-path", receiver.base),
        )]),
        settings(12),
        clock.clone(),
    )
    .with_telemetry(telemetry.clone());
    let routing = routing(&["ops"], &[], &[]);
    let business = classification(ContractSeverity::Warning, Route::BusinessHours, START_MS);
    let mut fingerprints = BTreeSet::new();
    for host in ["srv-01", "pc-02", "pc-03"] {
        let enqueued = enqueue(
            &outbox,
            &transition(host, AlertState::Firing, START_MS),
            &business,
            &routing,
            at(START_MS),
        )
        .unwrap();
        fingerprints.insert(enqueued.fingerprint);
    }
    // The pipeline replaying a transition after a crash adds nothing.
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &business,
        &routing,
        at(START_MS),
    )
    .unwrap();

    // Down for hours: every round fails, each failure recorded with its next attempt.
    let first = notifier.run_once().await.unwrap();
    assert_eq!((first.sent, first.retrying), (0, 3));
    let (pending, _) = outbox.pending().unwrap();
    let error = pending[0].last_error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "webhook 'ops': HTTP 503 from {}/…; attempt 1 of 12, next in 1",
            receiver.base
        )),
        "{error}"
    );
    assert!(!error.contains("secret-path"), "{error}");
    for _ in 0..4 {
        clock.advance(Duration::from_secs(3600));
        notifier.run_once().await.unwrap();
    }
    assert!(receiver.accepted().is_empty());

    receiver.set_answer(200);
    clock.advance(Duration::from_secs(3600));
    let round = notifier.run_once().await.unwrap();
    assert_eq!(round.sent, 3);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(notifier.run_once().await.unwrap(), Default::default());

    let accepted = receiver.accepted();
    let keys: Vec<String> = accepted
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a key arrived twice: {keys:?}");
    let arrived: BTreeSet<String> = accepted
        .iter()
        .map(|request| {
            request.json()["alerts"][0]["fingerprint"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(arrived, fingerprints);
    // Every attempt of one delivery carried the same key.
    let attempts_per_key = receiver
        .requests()
        .iter()
        .fold(BTreeMap::new(), |mut counts, r| {
            *counts.entry(r.header("idempotency-key")).or_insert(0) += 1;
            counts
        });
    assert_eq!(attempts_per_key.len(), 3);
    assert!(attempts_per_key.values().all(|&attempts| attempts == 6));
    // /metrics counts the same attempts per channel, and the five failed rounds of each.
    let metrics = telemetry.encode().unwrap();
    assert!(metrics.contains("vigil_notify_delivery_attempts_total{channel=\"ops\"} 18\n"));
    assert!(metrics.contains("vigil_notify_delivery_failures_total{channel=\"ops\"} 15\n"));
    assert!(outbox.pending().unwrap().0.is_empty());
    assert_eq!(outbox.sent().unwrap().len(), 3);
}

#[tokio::test]
async fn a_receiver_that_refuses_connections_is_retried_until_it_listens() {
    // Find a free port, then leave it closed: connections are refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook(
            "ops",
            format!("http://127.0.0.1:{port}/hook"),
        )]),
        settings(12),
        clock.clone(),
    );
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &classification(ContractSeverity::Warning, Route::BusinessHours, START_MS),
        &routing(&["ops"], &[], &[]),
        at(START_MS),
    )
    .unwrap();
    assert_eq!(notifier.run_once().await.unwrap().retrying, 1);
    let error = outbox.pending().unwrap().0[0].last_error.clone().unwrap();
    assert!(
        error.contains(&format!(
            "cannot connect to http://127.0.0.1:{port}/…; attempt 1 of 12"
        )),
        "{error}"
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let requests: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let seen = requests.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| async move {
            seen.lock().unwrap().push(body);
            StatusCode::NO_CONTENT
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    clock.advance(Duration::from_secs(60));
    assert_eq!(notifier.run_once().await.unwrap().sent, 1);
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_collector_stopped_between_enqueue_and_send_delivers_after_restart() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    {
        // The first collector enqueues and stops before any round.
        let outbox = Outbox::open(dir.path()).unwrap();
        enqueue(
            &outbox,
            &transition("srv-01", AlertState::Firing, START_MS),
            &classification(
                ContractSeverity::Emergency,
                Route::Now,
                START_MS + 3_600_000,
            ),
            &routing(&["ops"], &[], &[]),
            at(START_MS),
        )
        .unwrap();
    }
    assert!(receiver.requests().is_empty());

    // A new collector on the same data directory, running until shut down.
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("ops", format!("{}/hook", receiver.base))]),
        settings(12),
        Clock::System,
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(notifier.run(shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        while outbox.sent().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the restarted notifier delivers the alert");
    shutdown.cancel();
    running.await.unwrap();
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].json()["alerts"][0]["labels"]["host"], "srv-01");
    assert_eq!(
        accepted[0].json()["alerts"][0]["vigil"]["contract_severity"],
        "emergency"
    );
}

#[tokio::test]
async fn the_signature_verifies_with_the_shared_key_and_the_key_header_matches_the_body() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("ops", format!("{}/hook", receiver.base))]),
        settings(12),
        clock,
    );
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &classification(
            ContractSeverity::Critical,
            Route::BusinessHours,
            START_MS + 7_200_000,
        ),
        &routing(&["ops"], &[], &[]),
        at(START_MS),
    )
    .unwrap();
    notifier.run_once().await.unwrap();
    let request = &receiver.accepted()[0];
    let timestamp = request.header("x-vigil-timestamp");
    assert_eq!(timestamp, (START_MS / 1000).to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let hex: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(request.header("x-vigil-signature"), format!("sha256={hex}"));
    let body = request.json();
    assert_eq!(
        body["vigil"]["idempotency_key"],
        request.header("idempotency-key")
    );
    assert_eq!(body["version"], "4");
    assert_eq!(
        body["alerts"][0]["vigil"]["response_due"],
        "2023-11-15T00:13:20Z"
    );
    assert_eq!(body["alerts"][0]["vigil"]["policy_version"], 4);
}

#[tokio::test]
async fn a_delivery_moves_to_dead_letters_after_its_last_attempt() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("ops", format!("{}/hook", receiver.base))]),
        settings(3),
        clock.clone(),
    );
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &classification(ContractSeverity::Warning, Route::BusinessHours, START_MS),
        &routing(&["ops"], &[], &[]),
        at(START_MS),
    )
    .unwrap();
    let mut dead = 0;
    for _ in 0..3 {
        dead += notifier.run_once().await.unwrap().dead;
        clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(dead, 1);
    assert_eq!(receiver.requests().len(), 3);
    assert!(outbox.pending().unwrap().0.is_empty());
    let letters = outbox.dead().unwrap();
    assert_eq!(letters.len(), 1);
    let error = letters[0].last_error.clone().unwrap();
    assert!(
        error.contains("HTTP 503") && error.contains("attempt 3 of 3, no attempts left"),
        "{error}"
    );
    // Nothing more is attempted.
    clock.advance(Duration::from_secs(3600));
    notifier.run_once().await.unwrap();
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn a_receiver_that_refuses_the_message_itself_is_not_retried() {
    let receiver = Receiver::start(400).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("ops", format!("{}/hook", receiver.base))]),
        settings(12),
        Clock::manual(START_MS),
    );
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &classification(ContractSeverity::Warning, Route::BusinessHours, START_MS),
        &routing(&["ops"], &[], &[]),
        at(START_MS),
    )
    .unwrap();
    assert_eq!(notifier.run_once().await.unwrap().dead, 1);
    let error = outbox.dead().unwrap()[0].last_error.clone().unwrap();
    assert!(
        error.contains("HTTP 400") && error.contains("refused for good"),
        "{error}"
    );
}

#[tokio::test]
async fn after_hours_warnings_wait_for_one_morning_digest_with_their_resolves() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("ops", format!("{}/hook", receiver.base))]),
        settings(12),
        clock.clone(),
    );
    let morning = START_MS + 8 * 3_600_000;
    let overnight = classification(
        ContractSeverity::Warning,
        Route::NextBusinessMorning { at: at(morning) },
        morning + 3_600_000,
    );
    let routing = routing(&["ops"], &["pager"], &[]);
    for host in ["pc-01", "pc-02"] {
        enqueue(
            &outbox,
            &transition(host, AlertState::Firing, START_MS),
            &overnight,
            &routing,
            at(START_MS),
        )
        .unwrap();
    }
    // pc-01 recovers at night: its resolve joins the same digest.
    enqueue(
        &outbox,
        &transition("pc-01", AlertState::Resolved, START_MS + 3_600_000),
        &overnight,
        &routing,
        at(START_MS + 3_600_000),
    )
    .unwrap();
    clock.advance(Duration::from_secs(7 * 3600));
    notifier.run_once().await.unwrap();
    assert!(receiver.requests().is_empty(), "nothing before the opening");

    clock.advance(Duration::from_secs(3600));
    assert_eq!(notifier.run_once().await.unwrap().sent, 1);
    let digest = receiver.accepted()[0].json();
    assert_eq!(digest["vigil"]["purpose"], "digest");
    let alerts = digest["alerts"].as_array().unwrap();
    let states: BTreeMap<&str, &str> = alerts
        .iter()
        .map(|alert| {
            (
                alert["labels"]["host"].as_str().unwrap(),
                alert["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([("pc-01", "resolved"), ("pc-02", "firing")])
    );
}

#[tokio::test]
async fn an_unacknowledged_emergency_escalates_and_an_acknowledged_one_does_not() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![
            webhook("pager", format!("{}/pager", receiver.base)),
            webhook("owner", format!("{}/owner", receiver.base)),
        ]),
        settings(12),
        clock.clone(),
    );
    let due = START_MS + 30 * 60_000;
    let emergency = classification(ContractSeverity::Emergency, Route::Now, due);
    let routing = routing(&[], &["pager"], &["owner"]);
    let mut ids = Vec::new();
    for host in ["srv-01", "srv-02"] {
        ids.push(
            enqueue(
                &outbox,
                &transition(host, AlertState::Firing, START_MS),
                &emergency,
                &routing,
                at(START_MS),
            )
            .unwrap()
            .fingerprint,
        );
    }
    notifier.run_once().await.unwrap();
    outbox
        .acknowledge(&ids[1], "ann", START_MS + 60_000)
        .unwrap();
    clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(notifier.run_once().await.unwrap().escalated, 0);
    clock.advance(Duration::from_secs(60));
    let round = notifier.run_once().await.unwrap();
    assert_eq!((round.escalated, round.sent), (1, 1));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(notifier.run_once().await.unwrap().escalated, 0, "once only");

    let to_owner: Vec<Value> = receiver
        .accepted()
        .iter()
        .filter(|request| request.path == "/owner")
        .map(Received::json)
        .collect();
    assert_eq!(to_owner.len(), 1);
    assert_eq!(to_owner[0]["vigil"]["purpose"], "escalation");
    assert_eq!(to_owner[0]["alerts"][0]["fingerprint"], ids[0].as_str());
    let (_, acknowledgement) = outbox
        .open_alerts()
        .unwrap()
        .into_iter()
        .find(|(record, _)| record.alert.fingerprint == ids[1])
        .unwrap();
    assert_eq!(acknowledgement.unwrap().by, "ann");
}

#[tokio::test]
async fn acknowledgements_are_announced_to_the_alerts_channels_and_kept_after_the_resolve() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![webhook("pager", format!("{}/pager", receiver.base))]),
        settings(12),
        clock.clone(),
    );
    let emergency = classification(
        ContractSeverity::Emergency,
        Route::Now,
        START_MS + 3_600_000,
    );
    let routing = routing(&[], &["pager"], &[]);
    let id = enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &emergency,
        &routing,
        at(START_MS),
    )
    .unwrap()
    .fingerprint;
    notifier.run_once().await.unwrap();

    // Two people take it in hand; neither replaces the other, and saying it twice is once.
    outbox.acknowledge(&id, "ann", START_MS + 60_000).unwrap();
    outbox.acknowledge(&id, "bob", START_MS + 120_000).unwrap();
    outbox.acknowledge(&id, "ann", START_MS + 180_000).unwrap();
    let by: Vec<String> = outbox
        .acknowledgements(&id)
        .unwrap()
        .into_iter()
        .map(|ack| ack.by)
        .collect();
    assert_eq!(by, ["ann", "bob"]);
    assert_eq!(outbox.acknowledgement(&id).unwrap().unwrap().by, "ann");

    clock.advance(Duration::from_secs(300));
    notifier.run_once().await.unwrap();
    let announced: Vec<Value> = receiver
        .accepted()
        .iter()
        .map(Received::json)
        .filter(|body| body["vigil"]["purpose"] == "acknowledgement")
        .collect();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert_eq!(announced[0]["vigil"]["acknowledged_by"], "ann");
    assert_eq!(announced[0]["alerts"][0]["fingerprint"], id.as_str());

    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Resolved, START_MS + 600_000),
        &emergency,
        &routing,
        at(START_MS + 600_000),
    )
    .unwrap();
    assert!(outbox.acknowledgements(&id).unwrap().is_empty());
    let history = outbox.acknowledgement_history(&id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].0, START_MS);
    assert_eq!(history[0].1.len(), 2);
}

#[tokio::test]
async fn a_resolve_goes_where_its_firing_went_and_a_held_alert_sends_nothing() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let clock = Clock::manual(START_MS);
    let notifier = Notifier::new(
        outbox.clone(),
        channels(vec![
            webhook("pager", format!("{}/pager", receiver.base)),
            webhook("ops", format!("{}/ops", receiver.base)),
        ]),
        settings(12),
        clock.clone(),
    );
    let routing = routing(&["ops"], &["pager"], &[]);
    enqueue(
        &outbox,
        &transition("srv-01", AlertState::Firing, START_MS),
        &classification(ContractSeverity::Emergency, Route::Now, START_MS + 60_000),
        &routing,
        at(START_MS),
    )
    .unwrap();
    let held = enqueue(
        &outbox,
        &transition("srv-02", AlertState::Firing, START_MS),
        &classification(
            ContractSeverity::Emergency,
            Route::HeldForMaintenance {
                until: at(START_MS + 3_600_000),
            },
            START_MS + 60_000,
        ),
        &routing,
        at(START_MS),
    )
    .unwrap();
    assert!(held.keys.is_empty());
    // The resolve is classified as business hours now, but follows its firing to the pager.
    for host in ["srv-01", "srv-02"] {
        enqueue(
            &outbox,
            &transition(host, AlertState::Resolved, START_MS + 600_000),
            &classification(ContractSeverity::Warning, Route::BusinessHours, START_MS),
            &routing,
            at(START_MS + 600_000),
        )
        .unwrap();
    }
    clock.advance(Duration::from_secs(600));
    notifier.run_once().await.unwrap();
    let seen: Vec<(String, String, String)> = receiver
        .accepted()
        .iter()
        .map(|request| {
            let body = request.json();
            (
                request.path.clone(),
                body["alerts"][0]["labels"]["host"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                body["status"].as_str().unwrap().to_string(),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "/pager".to_string(),
                "srv-01".to_string(),
                "firing".to_string()
            ),
            (
                "/pager".to_string(),
                "srv-01".to_string(),
                "resolved".to_string()
            ),
        ]
    );
    assert!(outbox.open_alerts().unwrap().is_empty());
}
