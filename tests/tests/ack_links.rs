//! Acknowledging from where the alert arrives: a collector run by the real `serve` code with
//! `[http] public_url` sends a firing alert to a recording webhook and SMTP server on
//! loopback; both carry the alert's console page and a signed acknowledge link. Following
//! the link as a technician acknowledges the alert in the engine's own record (the API shows
//! it, escalation stops); altered, expired and reused links and a client user are refused
//! with a clear page, and nothing changes.

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::http::ack_link::AckLinks;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::{Clock, Outbox};
use vigil_collector::serve::Collector;
use vigil_tests::*;

const DEADLINE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";
const PUBLIC_URL: &str = "https://vigil.msp.example";

/// Records every JSON body posted to it.
#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = Hook::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url)
    }

    async fn wait_for_firing(&self) -> Option<Value> {
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE {
            let firing = self
                .bodies
                .lock()
                .unwrap()
                .iter()
                .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
                .find(|alert| alert["status"] == "firing");
            if firing.is_some() {
                return firing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    match serde_json::from_slice(&body) {
        Ok(json) => {
            hook.bodies.lock().unwrap().push(json);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A minimal SMTP server that keeps every mail's data.
#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    async fn start() -> (Smtp, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let smtp = Smtp::default();
        let shared = smtp.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let smtp = shared.clone();
                tokio::spawn(async move { smtp.converse(stream).await });
            }
        });
        (smtp, port)
    }

    async fn converse(&self, stream: tokio::net::TcpStream) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 localhost ESMTP test\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                "250-localhost\r\n250 8BITMIME\r\n"
            } else if upper == "DATA" {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                self.mails.lock().unwrap().push(data);
                "250 queued\r\n"
            } else if upper == "QUIT" {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                "250 OK\r\n"
            };
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// The first mail's text, quoted-printable soft line breaks undone.
    async fn wait_for_mail(&self) -> Option<String> {
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE {
            if let Some(mail) = self.mails.lock().unwrap().first() {
                return Some(mail.replace("=\r\n", "").replace("=3D", "="));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

const POLICY: &str = r#"
client = "acme"
time_zone = "Europe/Berlin"
after_hours = "emergency"

[hours]
weekdays = "00:00-23:59"

[response]
emergency = "1h"
critical = "4h"
warning = "1d"
notice = "1d"

[[rule]]
name = "practice software stopped"
kinds = ["service_down"]
labels = { service = "pmsd" }
severity = "emergency"
"#;

fn config(pki: &Pki, hook_url: &str, smtp_port: u16) -> CollectorConfig {
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(pki.path("policies/acme.toml"), POLICY).unwrap();
    std::fs::write(
        pki.path("rules.toml"),
        "[rules.ServiceDown]\nfor = \"0s\"\n",
    )
    .unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC_URL}/\"\n\
         [alerts]\nrules = \"rules.toml\"\nevaluation_interval = \"1s\"\n\
         [policies]\ndir = \"policies\"\n\
         [notify]\nbackoff_min = \"1s\"\n\
         [notify.routing]\non_call = [\"hook\", \"mail\"]\nnormal = [\"hook\", \"mail\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook_url}\"\n\
         [[notify.channel]]\nname = \"mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"plain\"\nfrom = \"Vigil <vigil@msp.example>\"\nto = [\"oncall@msp.example\"]\n"
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

/// The collector, its console's address, and a browser-like client that keeps no cookies.
struct Console {
    base: String,
    http: reqwest::Client,
    data_dir: std::path::PathBuf,
    grpc: std::net::SocketAddr,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

struct Session {
    cookie: String,
    csrf_token: String,
}

impl Console {
    async fn start(config: &CollectorConfig, clock: Clock) -> Console {
        init();
        let users = Users::open(&config.data_dir).unwrap();
        users
            .add("ana", Role::Technician, None, Some(PASSWORD), 0)
            .unwrap();
        users
            .add("acme-it", Role::Client, Some("acme"), Some(PASSWORD), 0)
            .unwrap();
        let shutdown = CancellationToken::new();
        let collector = Collector::bind_with_clock(config, shutdown.clone(), clock)
            .await
            .expect("collector binds");
        let server = collector.http().expect("the HTTP server is bound");
        let base = format!("{}://{}", server.scheme(), server.local_addr());
        let grpc = collector.grpc_addr();
        let serving = tokio::spawn(collector.run());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Console {
            base,
            http,
            data_dir: config.data_dir.clone(),
            grpc,
            shutdown,
            serving,
        }
    }

    async fn sign_in(&self, name: &str) -> Session {
        let response = self
            .http
            .post(format!("{}/api/v1/sign-in", self.base))
            .json(&json!({ "name": name, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        Session {
            cookie,
            csrf_token: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// Opens `link` (a public URL) on this console, as `session` or nobody.
    async fn open(&self, link: &str, session: Option<&Session>) -> (StatusCode, String) {
        let path = link
            .strip_prefix(PUBLIC_URL)
            .expect("a link to the console");
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header("cookie", &session.cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|value| value.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        (status, location.unwrap_or(text))
    }

    /// Confirms `link` as `session`, with or without the CSRF token.
    async fn confirm(&self, link: &str, session: &Session, csrf: bool) -> (StatusCode, Value) {
        let token = link.rsplit("/ack/").next().unwrap();
        let mut request = self
            .http
            .post(format!("{}/api/v1/ack-links/{token}", self.base))
            .header("cookie", &session.cookie)
            .json(&json!({"note": "on my way"}));
        if csrf {
            request = request.header("x-csrf-token", &session.csrf_token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    fn outbox(&self) -> Outbox {
        Outbox::open(&self.data_dir).unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

async fn send_service_down(grpc: std::net::SocketAddr, files: &AgentFiles) {
    let channel = connect(grpc, &files.ca, Some(files)).await.unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    stream
        .send(batch(
            1,
            "service_up",
            &[("service", "pmsd")],
            now_ms(),
            0.0,
        ))
        .await;
    stream.next().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alerts_webhook_and_mail_carry_a_link_that_acknowledges_it_once_for_a_technician_only() {
    let pki = Pki::new();
    let (hook, hook_url) = Hook::start().await;
    let (smtp, smtp_port) = Smtp::start().await;
    let config = config(&pki, &hook_url, smtp_port);
    let console = Console::start(&config, Clock::System).await;
    let files = pki.issue_agent("agent", "acme-srv01", "acme");
    send_service_down(console.grpc, &files).await;

    let alert = hook
        .wait_for_firing()
        .await
        .expect("the webhook hears the alert");
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(
        alert["vigil"]["console_url"],
        format!("{PUBLIC_URL}/alerts/{fingerprint}")
    );
    let link = alert["vigil"]["acknowledge_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        link.starts_with(&format!("{PUBLIC_URL}/ack/{fingerprint}.")),
        "{link}"
    );
    let mail = smtp.wait_for_mail().await.expect("the mail arrives");
    assert!(
        mail.contains(&format!("Acknowledge: {PUBLIC_URL}/ack/{fingerprint}.")),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("{PUBLIC_URL}/alerts/{fingerprint}")),
        "{mail}"
    );

    // Not signed in: the sign-in page, which comes back to the link.
    let (status, location) = console.open(&link, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/sign-in?next=/ack/"), "{location}");

    // A client user may neither see the confirm button nor acknowledge.
    let client_user = console.sign_in("acme-it").await;
    let (status, page) = console.open(&link, Some(&client_user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("read-only"), "{page}");
    let (status, _) = console.confirm(&link, &client_user, true).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An altered link: a clear page, nothing changed.
    let ana = console.sign_in("ana").await;
    let altered = link.replacen(&format!("/ack/{fingerprint}"), "/ack/00000000deadbeef", 1);
    let (status, page) = console.open(&altered, Some(&ana)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid"), "{page}");
    let (status, _) = console.confirm(&altered, &ana, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Opening the link shows the alert and changes nothing; a POST without CSRF is refused.
    let (status, page) = console.open(&link, Some(&ana)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"ack-link-form\""), "{page}");
    assert!(page.contains("acme-srv01"), "{page}");
    let (status, _) = console.confirm(&link, &ana, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(console
        .outbox()
        .acknowledgement(&fingerprint)
        .unwrap()
        .is_none());

    // Confirmed: the engine's acknowledgement, shown by the API and the audit log.
    let (status, acked) = console.confirm(&link, &ana, true).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "ana");
    let ack = console
        .outbox()
        .acknowledgement(&fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(ack.by, "ana");
    let audit =
        std::fs::read_to_string(console.data_dir.join("http/audit.jsonl")).unwrap_or_default();
    assert!(
        audit.contains("acknowledge link") && audit.contains("on my way"),
        "{audit}"
    );

    // Used once: the second time is a clear page and nothing more.
    let (status, page) = console.open(&link, Some(&ana)).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("already used"), "{page}");
    let (status, _) = console.confirm(&link, &ana, true).await;
    assert_eq!(status, StatusCode::GONE);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_changes_nothing_and_a_link_acknowledgement_stops_the_escalation() {
    let pki = Pki::new();
    let (_hook, hook_url) = Hook::start().await;
    let (_smtp, smtp_port) = Smtp::start().await;
    let config = config(&pki, &hook_url, smtp_port);
    let start_ms = now_ms();
    let clock = Clock::manual(start_ms);
    let console = Console::start(&config, clock.clone()).await;
    let outbox = console.outbox();
    for (fingerprint, host) in [
        ("00000000000000aa", "acme-pc1"),
        ("00000000000000bb", "acme-pc2"),
    ] {
        outbox
            .put_open_alert(&open_emergency(fingerprint, "acme", host, start_ms))
            .unwrap();
    }
    // Links as the collector's channels make them: the same key in the data folder.
    let links = AckLinks::open(&config.data_dir, PUBLIC_URL, 24 * 3600 * 1000).unwrap();
    let stale = links.links("00000000000000aa", start_ms - 25 * 3600 * 1000);
    let fresh = links.links("00000000000000aa", start_ms);
    let ana = console.sign_in("ana").await;

    let (status, page) = console.open(&stale.acknowledge, Some(&ana)).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("expired"), "{page}");
    let (status, _) = console.confirm(&stale.acknowledge, &ana, true).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(outbox
        .acknowledgement("00000000000000aa")
        .unwrap()
        .is_none());

    let (status, acked) = console.confirm(&fresh.acknowledge, &ana, true).await;
    assert_eq!(status, StatusCode::OK, "{acked}");

    // Past both response times: only the alert nobody acknowledged escalates.
    clock.advance(Duration::from_secs(11 * 60));
    let escalated = |fingerprint: &str| outbox.open_alert(fingerprint).unwrap().unwrap().escalated;
    let started = std::time::Instant::now();
    while started.elapsed() < DEADLINE && !escalated("00000000000000bb") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(escalated("00000000000000bb"), "the other alert escalates");
    assert!(
        !escalated("00000000000000aa"),
        "the acknowledged one does not"
    );
    console.stop().await;
}
