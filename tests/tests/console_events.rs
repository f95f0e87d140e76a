//! Live updates: `GET /events` on a collector run by the real `serve` code streams alert and
//! presence changes as server-sent events, each caller's share only. A technician's stream
//! hears an alert opening and a host going silent; a client user's stream carries nothing
//! of another client.

use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::Outbox;
use vigil_collector::serve::Collector;
use vigil_tests::*;

const PASSWORD: &str = "correct horse battery staple";
const DEADLINE: Duration = Duration::from_secs(60);

fn config(pki: &Pki) -> CollectorConfig {
    let text = "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n";
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

/// An open `/events` stream and the events read from it so far.
struct Events {
    response: reqwest::Response,
    seen: Vec<(String, Value)>,
    pending: String,
}

impl Events {
    async fn open(http: &reqwest::Client, base: &str, cookie: &str) -> Events {
        let response = http
            .get(format!("{base}/events"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let mut events = Events {
            response,
            seen: Vec::new(),
            pending: String::new(),
        };
        events.wait_for(|kind, _| kind == "ready").await;
        events
    }

    /// Reads until an event matches `wanted`, or the deadline; true when one did.
    async fn wait_for(&mut self, wanted: impl Fn(&str, &Value) -> bool) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < DEADLINE {
            if self.seen.iter().any(|(kind, data)| wanted(kind, data)) {
                return true;
            }
            let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(1), self.response.chunk()).await
            else {
                continue;
            };
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut kind = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        kind = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if !kind.is_empty() {
                    let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                    self.seen.push((kind, data));
                }
            }
        }
        self.seen.iter().any(|(kind, data)| wanted(kind, data))
    }
}

async fn sign_in(http: &reqwest::Client, base: &str, name: &str) -> String {
    let response = http
        .post(format!("{base}/api/v1/sign-in"))
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_hears_an_alert_open_and_a_host_go_silent_and_a_client_user_only_its_own()
{
    init();
    let pki = Pki::new();
    let config = config(&pki);
    let users = Users::open(&config.data_dir).unwrap();
    users
        .add("ana", Role::Technician, None, Some(PASSWORD), 0)
        .unwrap();
    users
        .add("acme-it", Role::Client, Some("acme"), Some(PASSWORD), 0)
        .unwrap();
    let shutdown = CancellationToken::new();
    let collector = Collector::bind(&config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", collector.http().unwrap().local_addr());
    let grpc = collector.grpc_addr();
    let serving = tokio::spawn(collector.run());
    let http = reqwest::Client::new();
    let ana = sign_in(&http, &base, "ana").await;
    let acme_it = sign_in(&http, &base, "acme-it").await;
    let mut technician = Events::open(&http, &base, &ana).await;
    let mut client_user = Events::open(&http, &base, &acme_it).await;

    // Two alerts open, one per client.
    let outbox = Outbox::open(&config.data_dir).unwrap();
    let now = now_ms();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000b1",
            "beta",
            "beta-srv1",
            now,
        ))
        .unwrap();
    outbox
        .put_open_alert(&open_emergency("00000000000000a1", "acme", "acme-pc1", now))
        .unwrap();
    let opened = |id: &'static str| {
        move |kind: &str, data: &Value| {
            kind == "alert" && data["id"] == id && data["state"] == "firing"
        }
    };
    assert!(
        technician.wait_for(opened("00000000000000b1")).await,
        "{:?}",
        technician.seen
    );
    assert!(
        client_user.wait_for(opened("00000000000000a1")).await,
        "{:?}",
        client_user.seen
    );

    // Hosts of both clients connect, then go silent.
    for (file, host, client) in [
        ("acme", "acme-srv01", "acme"),
        ("beta", "beta-srv01", "beta"),
    ] {
        let files = pki.issue_agent(file, host, client);
        let channel = connect(grpc, &files.ca, Some(&files)).await.unwrap();
        let mut stream = open_stream(channel).await.unwrap();
        stream.send(hello(1)).await;
        stream
            .send(batch(1, "system_uptime_seconds", &[], now_ms(), 100.0))
            .await;
        stream.next().await.unwrap().unwrap();
        drop(stream);
    }
    let silent = |host: &'static str| {
        move |kind: &str, data: &Value| {
            kind == "presence" && data["host"] == host && data["state"] != "online"
        }
    };
    assert!(
        technician.wait_for(silent("beta-srv01")).await,
        "{:?}",
        technician.seen
    );
    assert!(
        client_user.wait_for(silent("acme-srv01")).await,
        "{:?}",
        client_user.seen
    );
    // By now the client user's stream has had every chance to carry beta's news: none.
    assert!(
        client_user
            .seen
            .iter()
            .all(|(_, data)| data.get("client").is_none_or(|client| client == "acme")),
        "{:?}",
        client_user.seen
    );
    assert!(technician
        .seen
        .iter()
        .any(|(_, data)| data["client"] == "acme"));

    drop(technician);
    drop(client_user);
    shutdown.cancel();
    serving.await.unwrap().unwrap();
}
