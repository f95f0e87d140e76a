//! The backtest and the live collector are one path: the same short trace replayed through
//! `backtest --policy` (the function the binary calls) and through a collector started by
//! the real `serve` code, fed over mutual TLS on a manual clock, gives the same deliveries,
//! to the same routes, at the same simulated instants.
//!
//! The trace, on a weekday morning (UTC, business hours 09:00–18:00, after hours only
//! emergencies): a service down before opening (held for the 09:00 digest, with its
//! resolve, told as resolved), a service down during a maintenance window and still down at its end (sent
//! then), and the host silent for ten minutes (the contract's "lasting 5m" rule makes it an
//! emergency).

use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    routing::post,
    Router,
};
use jiff::{civil, tz::TimeZone, Timestamp, ToSpan};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::notify::Clock;
use vigil_collector::serve::Collector;
use vigil_proto::pb;
use vigil_tests::*;

const MINUTE_MS: i64 = 60_000;
/// How long each simulated minute rests, so that the collector's one-second evaluation and
/// the notifier run at it. Only paces the steps; nothing compares it.
const PACE: Duration = Duration::from_millis(2_000);
const HOST: &str = "parity-srv";
const CLIENT: &str = "parity";

/// A weekday (Tuesday to Thursday) at least two days back, at 08:40 UTC.
fn weekday_morning() -> Timestamp {
    let today = Timestamp::now().to_zoned_datetime(TimeZone::UTC).date();
    let date = (2..10)
        .map(|days_back| today.checked_sub(days_back.days()).unwrap())
        .find(|date| {
            matches!(
                date.weekday(),
                civil::Weekday::Tuesday | civil::Weekday::Wednesday | civil::Weekday::Thursday
            )
        })
        .unwrap();
    TimeZone::UTC.to_timestamp(date.at(8, 40, 0, 0)).unwrap()
}

fn policy(start: Timestamp) -> String {
    let day = start.to_zoned_datetime(TimeZone::UTC).date();
    format!(
        "client = \"{CLIENT}\"\n\
         time_zone = \"UTC\"\n\
         after_hours = \"emergency\"\n\
         [hours]\nweekdays = \"09:00-18:00\"\n\
         [response]\nemergency = \"1h\"\ncritical = \"4 business hours\"\nwarning = \"16 business hours\"\nnotice = \"40 business hours\"\n\
         [[role]]\nname = \"server\"\nhosts = [\"{HOST}\"]\n\
         [[rule]]\nname = \"server unreachable\"\nkinds = [\"host_down\"]\nroles = [\"server\"]\nlasting = \"5m\"\nseverity = \"emergency\"\n\
         [[maintenance]]\nname = \"spooler patch\"\nhosts = [\"{HOST}\"]\nkinds = [\"service_down\"]\nfrom = \"{day} 09:02\"\nuntil = \"{day} 09:10\"\n"
    )
}

/// The trace: (minute after the start, service_up), one sample a minute, none while the
/// host is silent.
fn trace() -> Vec<(i64, f64)> {
    (0..=53)
        .filter(|minute| !(41..50).contains(minute))
        .map(|minute| {
            let down = (1..10).contains(&minute) || (21..35).contains(&minute);
            (minute, if down { 0.0 } else { 1.0 })
        })
        .collect()
}

fn trace_file(start: Timestamp, path: &std::path::Path) {
    let mut text = String::from("# HELP service_up 1 running, 0 not\n# TYPE service_up gauge\n");
    for (minute, value) in trace() {
        let seconds = (start.as_millisecond() + minute * MINUTE_MS) / 1000;
        text.push_str(&format!(
            "service_up{{host=\"{HOST}\",client=\"other\",service=\"Spooler\"}} {value} {seconds}\n"
        ));
    }
    text.push_str("# EOF\n");
    std::fs::write(path, text).unwrap();
}

/// One delivery as a channel got it: (simulated instant, channel, rule, status, severity).
type Seen = (i64, String, String, String, String);

#[derive(Clone)]
struct Hooks {
    clock: Clock,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn receive(
    State(hooks): State<Hooks>,
    UrlPath(channel): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let at_ms = hooks.clock.now_ms();
    for alert in json["alerts"].as_array().cloned().unwrap_or_default() {
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        hooks.seen.lock().unwrap().push((
            at_ms,
            channel.clone(),
            text(&alert["labels"]["alertname"]),
            text(&alert["status"]),
            text(&alert["labels"]["severity"]),
        ));
    }
    StatusCode::OK
}

fn config(pki: &Pki, start: Timestamp, hook_base: &str) -> CollectorConfig {
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(pki.path("policies/parity.toml"), policy(start)).unwrap();
    let channel = |name: &str| {
        format!(
            "[[notify.channel]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{hook_base}/{name}\"\nhmac_key = \"test-key\"\n"
        )
    };
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [alerts]\nevaluation_interval = \"1s\"\n\
         [policies]\ndir = \"policies\"\n\
         [notify]\nbackoff_min = \"1s\"\n\
         [notify.routing]\non_call = [\"pager\"]\nnormal = [\"mail\"]\nescalation = [\"boss\"]\n{}{}{}",
        channel("pager"),
        channel("mail"),
        channel("boss")
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

/// Receives every channel's webhook at `/hook/<channel>`; returns the base URL.
async fn receivers(clock: &Clock) -> (Hooks, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = Hooks {
        clock: clock.clone(),
        seen: Arc::default(),
    };
    let base = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook/{channel}", post(receive))
        .with_state(hooks.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hooks, base)
}

/// What the live collector delivers, minute by minute on the manual clock.
async fn live(
    pki: &Pki,
    config: &CollectorConfig,
    clock: &Clock,
    hooks: &Hooks,
    start: Timestamp,
) -> Vec<Seen> {
    init();
    let shutdown = CancellationToken::new();
    let collector = Collector::bind_with_clock(config, shutdown.clone(), clock.clone())
        .await
        .expect("collector binds");
    let grpc = collector.grpc_addr();
    let serving = tokio::spawn(collector.run());

    let files = pki.issue_agent("srv", HOST, CLIENT);
    let channel = connect(grpc, &files.ca, Some(&files)).await.unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    let samples = trace();
    let mut seq = 0;
    for minute in 0..=samples.last().unwrap().0 {
        clock.set(start.as_millisecond() + minute * MINUTE_MS);
        if let Some(&(_, value)) = samples.iter().find(|(at, _)| *at == minute) {
            seq += 1;
            let now = clock.now_ms();
            stream
                .send(batch(
                    seq,
                    "service_up",
                    &[("service", "Spooler")],
                    now,
                    value,
                ))
                .await;
            let reply = stream.next().await.unwrap().unwrap();
            assert!(
                matches!(reply.body, Some(pb::collector_message::Body::Ack(_))),
                "{reply:?}"
            );
        }
        tokio::time::sleep(PACE).await;
    }
    shutdown.cancel();
    serving
        .await
        .expect("collector task")
        .expect("collector stops cleanly");
    let seen = hooks.seen.lock().unwrap().clone();
    seen
}

/// What `backtest --policy` prints for the same trace, one entry per route.
async fn backtest(pki: &Pki, config: &CollectorConfig, start: Timestamp) -> Vec<Seen> {
    let trace = pki.path("trace.om");
    trace_file(start, &trace);
    let mut out = Vec::new();
    vigil_collector::pipeline::backtest::run(
        vigil_collector::alert::RuleSet::builtin(),
        &pki.path("policies/parity.toml"),
        config.notify.routing.clone(),
        &trace,
        &mut out,
    )
    .await
    .expect("backtest runs");
    let mut seen = Vec::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        for route in line["routes"].as_array().unwrap() {
            seen.push((
                line["ts"].as_i64().unwrap() * 1000,
                route.as_str().unwrap().to_string(),
                line["rule"].as_str().unwrap().to_string(),
                line["state"].as_str().unwrap().to_string(),
                line["severity"].as_str().unwrap().to_string(),
            ));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_replayed_by_backtest_and_by_a_live_collector_is_delivered_alike() {
    let pki = Pki::new();
    let start = weekday_morning();
    let clock = Clock::manual(start.as_millisecond());
    let (hooks, base) = receivers(&clock).await;
    let config = config(&pki, start, &base);

    let mut expected = backtest(&pki, &config, start).await;
    let mut delivered = live(&pki, &config, &clock, &hooks, start).await;
    expected.sort();
    delivered.sort();
    let minute = |seen: &[Seen]| -> Vec<String> {
        seen.iter()
            .map(|(at, channel, rule, status, severity)| {
                format!(
                    "+{}m {channel} {rule} {status} {severity}",
                    (at - start.as_millisecond()) / MINUTE_MS
                )
            })
            .collect()
    };
    assert_eq!(
        minute(&delivered),
        minute(&expected),
        "live deliveries (left) against the backtest's (right)"
    );

    // And the trace shows what it was built to show.
    let at = |minutes: i64| start.as_millisecond() + minutes * MINUTE_MS;
    let service: Vec<&Seen> = expected.iter().filter(|s| s.2 == "ServiceDown").collect();
    // Before opening: nothing until the 09:00 digest, which tells that the service was down
    // and is back.
    assert!(
        service.iter().all(|s| s.0 >= at(20)),
        "nothing before opening: {service:?}"
    );
    assert!(
        service
            .iter()
            .any(|s| s.0 == at(20) && s.1 == "mail" && s.3 == "resolved"),
        "{service:?}"
    );
    // In the maintenance window: held, sent at its end (09:10) because still down.
    assert!(
        service.iter().any(|s| s.0 == at(30) && s.3 == "firing"),
        "{service:?}"
    );
    // The silent host: an emergency by the contract's lasting rule.
    assert!(
        expected
            .iter()
            .any(|s| s.2 == "HostSilent" && s.4 == "emergency" && s.1 == "pager"),
        "{expected:?}"
    );
}
