//! The collector's JSON API through a real `serve` (`Collector::bind_with_clock`, its HTTP
//! listener on a loopback port) with real agents over mutual TLS where data matters: every
//! endpoint refuses a caller without credentials, a client user never sees another client's
//! data, a cookie without its CSRF token changes nothing, bad input gets a 4xx that says what
//! to fix, an acknowledgement through the API stops the escalation, failed sign-ins are
//! limited.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::{Clock, Outbox};
use vigil_collector::serve::Collector;
use vigil_tests::*;

/// The longest anything is waited for.
const DEADLINE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";

/// A collector serving its API on a loopback port, with users of every role.
struct Console {
    pki: Pki,
    data_dir: PathBuf,
    base: String,
    http: reqwest::Client,
    grpc: SocketAddr,
    clock: Clock,
    admin: String,
    technician: String,
    /// A client user of client `acme`.
    acme_user: String,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

/// How a request proves who sends it.
enum Auth<'a> {
    Nobody,
    Bearer(&'a str),
    /// A session cookie, with the CSRF token or without.
    Cookie(&'a Session, bool),
}

struct Session {
    cookie: String,
    csrf_token: String,
}

impl Console {
    async fn start(clock: Clock) -> Console {
        Self::start_with(clock, "[http]\nlisten = \"127.0.0.1:0\"\n").await
    }

    async fn start_with(clock: Clock, http_section: &str) -> Console {
        Self::start_nesting(clock, http_section, None).await
    }

    /// Like [`Console::start_with`], with `nested` mounted at `/api/test` behind the API's
    /// authentication, as the Prometheus API is at `/api/v1`.
    async fn start_nesting(
        clock: Clock,
        http_section: &str,
        nested: Option<axum::Router>,
    ) -> Console {
        let pki = Pki::new();
        let config = pki.collector_config_with(http_section);
        let data_dir = config.data_dir.clone();
        let users = Users::open(&data_dir).unwrap();
        let token = |name: &str, role: Role, client: Option<&str>| {
            users.add(name, role, client, Some(PASSWORD), 0).unwrap();
            users.create_token(name, 0).unwrap()
        };
        let admin = token("root", Role::Admin, None);
        let technician = token("ana", Role::Technician, None);
        let acme_user = token("acme-it", Role::Client, Some("acme"));
        let shutdown = CancellationToken::new();
        let mut collector = Collector::bind_with_clock(&config, shutdown.clone(), clock.clone())
            .await
            .expect("collector binds");
        if let Some(router) = nested {
            collector = collector.nest_http("/api/test", router);
        }
        let server = collector.http().expect("the HTTP server is bound");
        let base = format!("{}://{}", server.scheme(), server.local_addr());
        let grpc = collector.grpc_addr();
        let serving = tokio::spawn(collector.run());
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Console {
            pki,
            data_dir,
            base,
            http,
            grpc,
            clock,
            admin,
            technician,
            acme_user,
            shutdown,
            serving,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::Nobody => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie(session, with_csrf) => {
                let request = request.header("cookie", &session.cookie);
                if with_csrf {
                    request.header("x-csrf-token", &session.csrf_token)
                } else {
                    request
                }
            }
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Auth::Bearer(token), None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Auth::Bearer(token), Some(body))
            .await
    }

    async fn sign_in(&self, name: &str, password: &str) -> Result<Session, (StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}/api/v1/sign-in", self.base))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|value| value.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap();
        match (status, cookie) {
            (StatusCode::OK, Some(set_cookie)) => Ok(Session {
                cookie: set_cookie.split(';').next().unwrap().to_string(),
                csrf_token: body["csrf_token"].as_str().unwrap().to_string(),
            }),
            _ => Err((status, body)),
        }
    }

    fn outbox(&self) -> Outbox {
        Outbox::open(&self.data_dir).unwrap()
    }

    fn audit_lines(&self) -> usize {
        std::fs::read_to_string(self.data_dir.join("http/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Starts a real agent of `client` named `host`, ticking every second, and waits until
    /// the API lists it with data. Returns what stops it.
    async fn agent(&self, host: &str, client: &str) -> CancellationToken {
        let files = self.pki.issue_agent(host, host, client);
        let stop = CancellationToken::new();
        // Each agent with a spool of its own.
        let config = self.pki.agent_config_for(host, &files, self.grpc);
        let agent = vigil_agent::run::Agent::new(config);
        tokio::spawn(agent.run(stop.clone()));
        let started = std::time::Instant::now();
        while started.elapsed() < DEADLINE {
            let (_, hosts) = self.get("/api/v1/hosts", &self.admin).await;
            let listed = hosts["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["host"] == host && !h["last_data_ms"].is_null());
            if listed {
                return stop;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("agent {host} never showed in /api/v1/hosts");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

/// Every endpoint, with a body where it takes one.
fn endpoints() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/api/v1/session"),
        (Method::DELETE, "/api/v1/session"),
        (Method::GET, "/api/v1/clients"),
        (Method::GET, "/api/v1/hosts"),
        (Method::GET, "/api/v1/hosts/acme-pc1"),
        (Method::GET, "/api/v1/hosts/acme-pc1/series"),
        (Method::POST, "/api/v1/hosts/acme-pc1/approve"),
        (Method::POST, "/api/v1/hosts/acme-pc1/revoke"),
        (Method::GET, "/api/v1/pending"),
        (Method::GET, "/api/v1/range?selector=up"),
        (Method::GET, "/api/v1/alerts"),
        (Method::POST, "/api/v1/alerts/00000000000000aa/ack"),
        (Method::GET, "/api/v1/policies/acme"),
        (Method::GET, "/api/v1/policies/acme/versions/1"),
        (Method::GET, "/api/v1/policies/acme/diff"),
        (Method::GET, "/api/v1/deliveries"),
        (Method::GET, "/api/v1/dead"),
        (Method::POST, "/api/v1/dead/some-key/retry"),
        (Method::POST, "/api/v1/tokens"),
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/users"),
        (Method::DELETE, "/api/v1/users/ana"),
        (Method::POST, "/api/v1/users/ana/tokens"),
        (Method::GET, "/api/v1/audit"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_request_without_credentials_or_with_a_made_up_token() {
    let console = Console::start(Clock::System).await;
    for (method, path) in endpoints() {
        for auth in [
            Auth::Nobody,
            Auth::Bearer("vigil_abcdef_not-a-real-token"),
            Auth::Bearer(""),
        ] {
            let (status, body) = console.call(method.clone(), path, auth, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("sign in"),
                "{method} {path}: {body}"
            );
        }
    }
    // A cookie of no session is no better.
    let stale = Session {
        cookie: "vigil_session=made-up".into(),
        csrf_token: "made-up".into(),
    };
    let (status, _) = console
        .call(
            Method::GET,
            "/api/v1/hosts",
            Auth::Cookie(&stale, true),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !console
            .data_dir
            .join("enroll/revoked/acme-pc1.json")
            .exists(),
        "nothing was revoked"
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_user_sees_only_its_own_client_by_every_url_and_parameter() {
    let console = Console::start(Clock::System).await;
    let _acme = console.agent("acme-pc1", "acme").await;
    let _beta = console.agent("beta-srv1", "beta").await;
    let now_ms = console.clock.now_ms();
    let outbox = console.outbox();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000aa",
            "acme",
            "acme-pc1",
            now_ms,
        ))
        .unwrap();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000bb",
            "beta",
            "beta-srv1",
            now_ms,
        ))
        .unwrap();
    let acme = console.acme_user.as_str();

    // The technician sees both clients; the client user only its own.
    let (_, hosts) = console.get("/api/v1/hosts", &console.technician).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2, "{hosts}");
    let (status, hosts) = console.get("/api/v1/hosts", acme).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["acme-pc1"]);
    let (_, hosts) = console.get("/api/v1/hosts?client=beta", acme).await;
    assert_eq!(hosts["hosts"], json!([]));
    let (_, clients) = console.get("/api/v1/clients", acme).await;
    assert_eq!(clients["clients"].as_array().unwrap().len(), 1, "{clients}");
    assert_eq!(clients["clients"][0]["client"], "acme");

    // Another client's host by URL reads as a host that does not exist.
    for path in ["/api/v1/hosts/beta-srv1", "/api/v1/hosts/beta-srv1/series"] {
        let (status, body) = console.get(path, acme).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.to_string().contains("beta\""), "{path} leaks: {body}");
        let (status, _) = console.get(path, &console.technician).await;
        assert_eq!(status, StatusCode::OK, "{path} for a technician");
    }
    let (status, own) = console.get("/api/v1/hosts/acme-pc1", acme).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["open_alerts"].as_array().unwrap().len(), 1, "{own}");

    // A selector naming the other client, or none, gives only the caller's own series.
    for selector in [
        "system_cpu_utilization_ratio",
        "system_cpu_utilization_ratio{client=\"beta\"}",
        "{host=\"beta-srv1\"}",
    ] {
        let (status, range) = console
            .get(
                &format!("/api/v1/range?selector={}", urlencode(selector)),
                acme,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{selector}: {range}");
        for series in range["series"].as_array().unwrap() {
            assert_eq!(series["labels"]["client"], "acme", "{selector}: {series}");
        }
    }
    let (_, range) = console
        .get("/api/v1/range?selector=system_cpu_utilization_ratio", acme)
        .await;
    assert!(
        !range["series"].as_array().unwrap().is_empty(),
        "the client's own data is there: {range}"
    );

    // Alerts and deliveries: its own only, whatever the filter asks.
    let (_, alerts) = console.get("/api/v1/alerts", acme).await;
    let ids: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["00000000000000aa"]);
    let (_, alerts) = console.get("/api/v1/alerts?client=beta", acme).await;
    assert_eq!(alerts["alerts"], json!([]));
    let (_, alerts) = console.get("/api/v1/alerts", &console.technician).await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 2);
    let (status, _) = console.get("/api/v1/policies/beta", acme).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Read-only: a client user acknowledges, revokes and approves nothing, not even its own.
    for path in [
        "/api/v1/alerts/00000000000000aa/ack",
        "/api/v1/alerts/00000000000000bb/ack",
        "/api/v1/hosts/acme-pc1/revoke",
        "/api/v1/hosts/beta-srv1/revoke",
        "/api/v1/tokens",
    ] {
        let (status, body) = console.post(path, acme, json!({"client": "acme"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    assert!(outbox
        .acknowledgement("00000000000000aa")
        .unwrap()
        .is_none());
    assert!(outbox
        .acknowledgement("00000000000000bb")
        .unwrap()
        .is_none());

    // Users and the audit log are the admins'.
    for token in [acme, console.technician.as_str()] {
        for (method, path) in [
            (Method::GET, "/api/v1/users"),
            (Method::POST, "/api/v1/users"),
            (Method::DELETE, "/api/v1/users/root"),
            (Method::POST, "/api/v1/users/root/tokens"),
            (Method::GET, "/api/v1/audit"),
        ] {
            let body = json!({"name": "eve", "role": "admin", "password": PASSWORD});
            let (status, answer) = console
                .call(method.clone(), path, Auth::Bearer(token), Some(body))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        }
    }
    let users = Users::open(&console.data_dir).unwrap().all().unwrap();
    assert!(!users.contains_key("eve"));
    assert!(users.contains_key("root"));
    let (status, _) = console.get("/api/v1/audit", &console.admin).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_changing_request_with_a_session_cookie_but_no_csrf_token_is_refused_and_changes_nothing(
) {
    let console = Console::start(Clock::System).await;
    let now_ms = console.clock.now_ms();
    let outbox = console.outbox();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000aa",
            "acme",
            "acme-pc1",
            now_ms,
        ))
        .unwrap();
    let registry = vigil_collector::enroll::registry::Registry::open(&console.data_dir).unwrap();
    registry
        .put_host(&vigil_collector::enroll::registry::HostRecord {
            agent_id: "acme-pc1".into(),
            client: "acme".into(),
            enrolled_at_ms: now_ms,
            cert_expires_at_ms: now_ms + 3_600_000,
            replaceable: false,
        })
        .unwrap();
    let session = console.sign_in("ana", PASSWORD).await.expect("signs in");
    let audit_before = console.audit_lines();

    let forged = Session {
        cookie: session.cookie.clone(),
        csrf_token: "guessed".into(),
    };
    for auth in [Auth::Cookie(&session, false), Auth::Cookie(&forged, true)] {
        for path in [
            "/api/v1/alerts/00000000000000aa/ack",
            "/api/v1/hosts/acme-pc1/revoke",
        ] {
            let (status, body) = console
                .call(Method::POST, path, auth_again(&auth), None)
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("X-CSRF-Token"),
                "{body}"
            );
        }
    }
    assert!(outbox
        .acknowledgement("00000000000000aa")
        .unwrap()
        .is_none());
    assert_eq!(registry.revoked_at("acme-pc1").unwrap(), None);
    assert_eq!(console.audit_lines(), audit_before, "nothing was audited");
    // Reading needs no token, and the session is still good.
    let (status, me) = console
        .call(
            Method::GET,
            "/api/v1/session",
            Auth::Cookie(&session, false),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "ana");
    assert_eq!(me["csrf_token"], session.csrf_token.as_str());

    // With the token, the same request is done and audited.
    let (status, body) = console
        .call(
            Method::POST,
            "/api/v1/alerts/00000000000000aa/ack",
            Auth::Cookie(&session, true),
            Some(json!({"note": "on my way"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        outbox
            .acknowledgement("00000000000000aa")
            .unwrap()
            .unwrap()
            .by,
        "ana"
    );
    assert_eq!(console.audit_lines(), audit_before + 1);
    console.stop().await;
}

fn auth_again<'a>(auth: &Auth<'a>) -> Auth<'a> {
    match auth {
        Auth::Nobody => Auth::Nobody,
        Auth::Bearer(token) => Auth::Bearer(token),
        Auth::Cookie(session, csrf) => Auth::Cookie(session, *csrf),
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_what_to_fix_and_changes_nothing() {
    let console = Console::start(Clock::System).await;
    let _agent = console.agent("acme-pc1", "acme").await;
    let token = console.technician.as_str();
    let audit_before = console.audit_lines();
    let cases: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::GET,
            "/api/v1/hosts/no-such-host".into(),
            None,
            StatusCode::NOT_FOUND,
            "no host 'no-such-host'",
        ),
        (
            Method::GET,
            "/api/v1/hosts/..%2Fetc".into(),
            None,
            StatusCode::NOT_FOUND,
            "no host",
        ),
        (
            Method::POST,
            "/api/v1/hosts/no-such-host/revoke".into(),
            None,
            StatusCode::NOT_FOUND,
            "no host 'no-such-host'",
        ),
        (
            Method::POST,
            "/api/v1/hosts/no-such-host/approve".into(),
            None,
            StatusCode::NOT_FOUND,
            "waits for approval",
        ),
        (
            Method::GET,
            format!("/api/v1/range?selector={}", urlencode("cpu{host=")),
            None,
            StatusCode::BAD_REQUEST,
            "selector",
        ),
        (
            Method::GET,
            "/api/v1/range".into(),
            None,
            StatusCode::BAD_REQUEST,
            "selector is missing",
        ),
        (
            Method::GET,
            "/api/v1/range?selector=up&start=0&end=100000000".into(),
            None,
            StatusCode::BAD_REQUEST,
            "range too large",
        ),
        (
            Method::GET,
            "/api/v1/range?selector=up&start=0&end=86400&step=1".into(),
            None,
            StatusCode::BAD_REQUEST,
            "raise step",
        ),
        (
            Method::GET,
            "/api/v1/range?selector=up&start=yesterday".into(),
            None,
            StatusCode::BAD_REQUEST,
            "start = 'yesterday'",
        ),
        (
            Method::GET,
            "/api/v1/range?selector=up&start=200&end=100".into(),
            None,
            StatusCode::BAD_REQUEST,
            "after end",
        ),
        (
            Method::GET,
            "/api/v1/alerts?state=sleeping".into(),
            None,
            StatusCode::BAD_REQUEST,
            "state = 'sleeping'",
        ),
        (
            Method::GET,
            "/api/v1/alerts?severity=huge".into(),
            None,
            StatusCode::BAD_REQUEST,
            "severity = 'huge'",
        ),
        (
            Method::POST,
            "/api/v1/alerts/00000000000000ff/ack".into(),
            None,
            StatusCode::NOT_FOUND,
            "is not open",
        ),
        (
            Method::POST,
            "/api/v1/alerts/00000000000000ff/ack".into(),
            Some(json!({"notes": 1})),
            StatusCode::BAD_REQUEST,
            "note",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"client": "Acme Dental"})),
            StatusCode::BAD_REQUEST,
            "acme-dental",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"cliant": "acme"})),
            StatusCode::BAD_REQUEST,
            "client",
        ),
        (
            Method::POST,
            "/api/v1/dead/no-such-key/retry".into(),
            None,
            StatusCode::NOT_FOUND,
            "no dead letter",
        ),
        (
            Method::GET,
            "/api/v1/policies/acme".into(),
            None,
            StatusCode::NOT_FOUND,
            "no stored contract",
        ),
        (
            Method::GET,
            "/api/v1/deliveries?state=lost".into(),
            None,
            StatusCode::BAD_REQUEST,
            "state = 'lost'",
        ),
        (
            Method::GET,
            "/api/v1/nothing-here".into(),
            None,
            StatusCode::NOT_FOUND,
            "docs/API.md",
        ),
    ];
    for (method, path, body, expected, phrase) in cases {
        let (status, answer) = console
            .call(method.clone(), &path, Auth::Bearer(token), body)
            .await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(phrase),
            "{method} {path}: {message:?} lacks {phrase:?}"
        );
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
    assert_eq!(console.audit_lines(), audit_before, "nothing was audited");
    let registry = vigil_collector::enroll::registry::Registry::open(&console.data_dir).unwrap();
    assert!(
        registry.tokens().unwrap().is_empty(),
        "no join token was made"
    );
    assert!(console.outbox().pending().unwrap().0.is_empty());
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_through_the_api_shows_in_alerts_open_and_stops_the_escalation() {
    let start_ms = now_ms();
    let clock = Clock::manual(start_ms);
    let console = Console::start(clock.clone()).await;
    let outbox = console.outbox();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000aa",
            "acme",
            "acme-pc1",
            start_ms,
        ))
        .unwrap();
    outbox
        .put_open_alert(&open_emergency(
            "00000000000000bb",
            "beta",
            "beta-srv1",
            start_ms,
        ))
        .unwrap();

    let (status, acked) = console
        .post(
            "/api/v1/alerts/00000000000000aa/ack",
            &console.technician,
            json!({"note": "restarting the server"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "ana");

    // Past both response times: only the alert nobody acknowledged escalates.
    clock.advance(Duration::from_secs(11 * 60));
    let started = std::time::Instant::now();
    while started.elapsed() < DEADLINE
        && !outbox
            .open_alert("00000000000000bb")
            .unwrap()
            .unwrap()
            .escalated
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        outbox
            .open_alert("00000000000000bb")
            .unwrap()
            .unwrap()
            .escalated,
        "the other alert escalates"
    );
    assert!(
        !outbox
            .open_alert("00000000000000aa")
            .unwrap()
            .unwrap()
            .escalated,
        "the acknowledged one does not"
    );
    let (_, alerts) = console
        .get("/api/v1/alerts?state=escalated", &console.admin)
        .await;
    let escalated: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(escalated, ["00000000000000bb"]);

    // The command line sees the same acknowledgement.
    let output = std::process::Command::new(binary("vigil-collector"))
        .args(["alerts", "open", "--config"])
        .arg(console.pki.path("collector.toml"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    let line = listed
        .lines()
        .find(|line| line.starts_with("00000000000000aa"))
        .unwrap_or_else(|| panic!("{listed}{}", String::from_utf8_lossy(&output.stderr)));
    assert!(line.contains("acknowledged by ana"), "{line}");

    // And the audit log says who, with the note.
    let (_, audit) = console.get("/api/v1/audit", &console.admin).await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "acknowledge")
        .cloned()
        .unwrap();
    assert_eq!(entry["user"], "ana");
    assert_eq!(entry["subject"], "00000000000000aa");
    assert_eq!(entry["address"], "127.0.0.1");
    assert!(entry["detail"]
        .as_str()
        .unwrap()
        .contains("restarting the server"));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_lock_the_account_even_for_the_right_password_and_are_audited() {
    let console = Console::start(Clock::System).await;
    for _ in 0..5 {
        let (status, body) = console
            .sign_in("ana", "wrong password")
            .await
            .err()
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("wrong user name or password"));
    }
    let (status, body) = console
        .sign_in("ana", PASSWORD)
        .await
        .err()
        .expect("locked");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("try again in"),
        "{body}"
    );
    // Another account from the same address still signs in.
    let session = console
        .sign_in("root", PASSWORD)
        .await
        .expect("another account signs in");
    let (_, audit) = console
        .call(
            Method::GET,
            "/api/v1/audit",
            Auth::Cookie(&session, false),
            None,
        )
        .await;
    let failed = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sign_in_failed" && e["user"] == "ana")
        .count();
    assert_eq!(failed, 5, "{audit}");
    // A session cookie is HttpOnly and SameSite=Strict; signing out ends it.
    let (status, _) = console
        .call(
            Method::DELETE,
            "/api/v1/session",
            Auth::Cookie(&session, true),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = console
        .call(
            Method::GET,
            "/api/v1/hosts",
            Auth::Cookie(&session, false),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_page_and_a_long_range_read_real_agent_data_with_rollups_beyond_a_day() {
    let console = Console::start(Clock::System).await;
    let _agent = console.agent("acme-pc1", "acme").await;
    let token = console.technician.as_str();
    let (status, host) = console.get("/api/v1/hosts/acme-pc1", token).await;
    assert_eq!(status, StatusCode::OK, "{host}");
    assert_eq!(host["host"]["state"], "online");
    assert_eq!(host["host"]["client"], "acme");
    let (_, series) = console.get("/api/v1/hosts/acme-pc1/series", token).await;
    let metrics: Vec<&str> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["metric"].as_str())
        .collect();
    assert!(
        metrics.contains(&"system_cpu_utilization_ratio"),
        "{metrics:?}"
    );

    let selector = urlencode("system_cpu_utilization_ratio{host=\"acme-pc1\"}");
    let (status, short) = console
        .get(&format!("/api/v1/range?selector={selector}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{short}");
    assert_eq!(short["resolution"], "raw");
    assert!(
        !short["series"][0]["points"].as_array().unwrap().is_empty(),
        "{short}"
    );

    let end = now_ms() / 1000;
    let (status, long) = console
        .get(
            &format!(
                "/api/v1/range?selector={selector}&start={}&end={end}",
                end - 30 * 86_400
            ),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{long}");
    assert_eq!(long["resolution"], "rollup_5m");
    assert_eq!(long["step_ms"].as_i64().unwrap() % 300_000, 0);
    let points = long["series"][0]["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 11_000, "{long}");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_configured_certificate_the_api_speaks_tls_and_the_cookie_is_secure() {
    let console = Console::start_with(
        Clock::System,
        "[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"collector.pem\"\ntls_key = \"collector-key.pem\"\n",
    )
    .await;
    assert!(
        console.base.starts_with("https://127.0.0.1:"),
        "{}",
        console.base
    );
    let response = console
        .http
        .post(format!("{}/api/v1/sign-in", console.base))
        .json(&json!({"name": "ana", "password": PASSWORD}))
        .send()
        .await
        .expect("a TLS client trusting the CA connects");
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_nested_behind_the_api_s_authentication_gets_the_caller_s_client_scope() {
    use vigil_collector::http::auth::ClientScope;
    let scope_of = |axum::Extension(scope): axum::Extension<ClientScope>| async move {
        axum::Json(match scope {
            ClientScope::All => json!({"scope": "all"}),
            ClientScope::One(client) => json!({"scope": client}),
        })
    };
    let nested = axum::Router::new().route("/query", axum::routing::get(scope_of));
    let console = Console::start_nesting(
        Clock::System,
        "[http]\nlisten = \"127.0.0.1:0\"\n",
        Some(nested),
    )
    .await;
    let (status, _) = console
        .call(Method::GET, "/api/test/query", Auth::Nobody, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = console.get("/api/test/query", &console.acme_user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "acme");
    let (_, body) = console.get("/api/test/query", &console.technician).await;
    assert_eq!(body["scope"], "all");
    // The API's own routes are still there.
    let (status, _) = console.get("/api/v1/hosts", &console.technician).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_are_embedded_and_served_with_a_strict_content_security_policy() {
    let console = Console::start(Clock::System).await;
    for (path, kind, phrase) in [
        ("/", "text/html", "data-page=\"overview\""),
        ("/sign-in", "text/html", "id=\"sign-in-form\""),
        ("/assets/console.js", "text/javascript", "/api/v1/sign-in"),
        ("/assets/console.css", "text/css", ".client"),
    ] {
        let response = console
            .http
            .get(format!("{}{path}", console.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let body = response.text().await.unwrap();
        assert!(body.contains(phrase), "{path}: {phrase}");
        if kind == "text/html" {
            // No inline script: every script element loads a file.
            assert!(!body.contains("<script>"), "{path}");
        }
    }
    // The pages carry no data: the hosts come only from the API, which wants a caller.
    let (status, _) = console
        .call(Method::GET, "/api/v1/hosts", Auth::Nobody, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_query_api_in_serve_answers_each_caller_only_its_own_clients_series() {
    let console = Console::start(Clock::System).await;
    let _acme = console.agent("acme-pc1", "acme").await;
    let _beta = console.agent("beta-srv1", "beta").await;
    let hosts_answered = |body: &Value| -> Vec<String> {
        let mut hosts: Vec<String> = body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| series["metric"]["host"].as_str().unwrap().to_owned())
            .collect();
        hosts.sort();
        hosts
    };
    let query = format!("/api/v1/query?query={}", urlencode("system_uptime_seconds"));

    let (status, _) = console.call(Method::GET, &query, Auth::Nobody, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = console.get(&query, &console.technician).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(hosts_answered(&body), ["acme-pc1", "beta-srv1"]);

    // A client's own IT contact sees its hosts only, even when asking for the other's.
    for promql in [
        "system_uptime_seconds",
        "system_uptime_seconds{client=\"beta\"}",
        "sum by (host) (system_uptime_seconds)",
    ] {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let (status, body) = console.get(&path, &console.acme_user).await;
        assert_eq!(status, StatusCode::OK, "{promql}: {body}");
        let hosts = hosts_answered(&body);
        assert!(
            hosts.iter().all(|host| host == "acme-pc1"),
            "{promql}: {body}"
        );
    }
    let (_, values) = console
        .get("/api/v1/label/host/values", &console.acme_user)
        .await;
    assert_eq!(values["data"], json!(["acme-pc1"]), "{values}");

    // PromQL Vigil does not evaluate is refused in Prometheus' own words.
    let path = format!(
        "/api/v1/query?query={}",
        urlencode("histogram_quantile(0.9, rate(x_bucket[5m]))")
    );
    let (status, body) = console.get(&path, &console.technician).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errorType"], "bad_data", "{body}");
    // A path neither API knows is still the API's own 404.
    let (status, body) = console
        .get("/api/v1/nothing-here", &console.technician)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("docs/API.md"),
        "{body}"
    );
    console.stop().await;
}
