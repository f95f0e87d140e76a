//! The web console in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`) against a real `serve` with real agents of two clients
//! over mutual TLS. Signing in, the fleet overview, a host page's charts, acknowledging an
//! alert from the alert list, and a client user kept to its own client. Each page is kept as
//! a screenshot under `target/console-screenshots/`.
//!
//! Without `chromedriver` on PATH each browser test says it skipped and passes, so the
//! workspace's tests need only Rust; with `VIGIL_BROWSER_TESTS=1` (as `.ci/run` sets it) a
//! missing browser fails them. The last test checks the pages' access rules over plain HTTP
//! and runs everywhere.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::{Clock, Outbox};
use vigil_collector::serve::Collector;
use vigil_tests::*;

/// The longest anything is waited for.
const DEADLINE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";

/// Acme's contract: office hours, response times by severity.
const ACME_POLICY: &str = r#"
client = "acme"
time_zone = "Europe/Berlin"
after_hours = "emergency"

[hours]
weekdays = "08:00-18:00"

[response]
emergency = "1h"
critical = "4h"
warning = "1d"
notice = "1d"
"#;

/// `chromedriver` and a browser session of its own; the driver ends with it.
struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    /// Ends the WebDriver session, which closes Chromium.
    async fn finish(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// chromedriver runs in a process group of its own, with the Chromium it starts: the whole
    /// group ends with the test, even one that failed before [`Browser::finish`].
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where `chromedriver` is, if it is on PATH.
fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium, or `None` (the test then skips) when chromedriver is missing and
/// browser tests are not required.
async fn browser(test: &str) -> Option<Browser> {
    let Some(driver_path) = chromedriver() else {
        if std::env::var("VIGIL_BROWSER_TESTS").as_deref() == Ok("1") {
            panic!("{test}: chromedriver is not on PATH but VIGIL_BROWSER_TESTS=1; apt-get install chromium chromium-driver");
        }
        eprintln!("{test}: skipped, chromedriver is not on PATH (apt-get install chromium chromium-driver to run it)");
        return None;
    };
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().unwrap().port()
    };
    let driver = Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let mut options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1000",
        ]
    });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let mut last_error = String::new();
    for _ in 0..150 {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return Some(Browser { client, driver }),
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{test}: no WebDriver session from chromedriver on port {port}: {last_error}");
}

/// A collector serving the console on a loopback port, with agents of `acme` and `beta`.
struct Console {
    pki: Pki,
    data_dir: PathBuf,
    base: String,
    grpc: SocketAddr,
    http: reqwest::Client,
    admin_token: String,
    agents: Vec<CancellationToken>,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

impl Console {
    async fn start(clock: Clock) -> Console {
        let pki = Pki::new();
        std::fs::create_dir_all(pki.path("policies")).unwrap();
        std::fs::write(pki.path("policies/acme.toml"), ACME_POLICY).unwrap();
        let config = pki.collector_config_with(
            "[http]\nlisten = \"127.0.0.1:0\"\n[policies]\ndir = \"policies\"\n",
        );
        let data_dir = config.data_dir.clone();
        let users = Users::open(&data_dir).unwrap();
        users
            .add("root", Role::Admin, None, Some(PASSWORD), 0)
            .unwrap();
        users
            .add("ana", Role::Technician, None, Some(PASSWORD), 0)
            .unwrap();
        users
            .add("acme-it", Role::Client, Some("acme"), Some(PASSWORD), 0)
            .unwrap();
        let admin_token = users.create_token("root", 0).unwrap();
        let shutdown = CancellationToken::new();
        let collector = Collector::bind_with_clock(&config, shutdown.clone(), clock)
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
        let mut console = Console {
            pki,
            data_dir,
            base,
            grpc,
            http,
            admin_token,
            agents: Vec::new(),
            shutdown,
            serving,
        };
        console.agent("acme-pc1", "acme").await;
        console.agent("beta-srv1", "beta").await;
        console
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` through the API with the admin's token.
    async fn api(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("the API answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Starts a real agent of `client` named `host`, ticking every second, and waits until
    /// the API lists it with data.
    async fn agent(&mut self, host: &str, client: &str) {
        let files = self.pki.issue_agent(host, host, client);
        let stop = CancellationToken::new();
        let config = self.pki.agent_config_for(host, &files, self.grpc);
        tokio::spawn(vigil_agent::run::Agent::new(config).run(stop.clone()));
        self.agents.push(stop);
        let started = std::time::Instant::now();
        while started.elapsed() < DEADLINE {
            let hosts = self.api("/api/v1/hosts").await;
            let listed = hosts["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["host"] == host && !h["last_data_ms"].is_null());
            if listed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("agent {host} never showed in /api/v1/hosts");
    }

    /// Signs `name` in through the sign-in page and waits for the fleet overview.
    async fn sign_in(&self, browser: &Client, name: &str) {
        browser.goto(&self.url("/sign-in")).await.unwrap();
        browser
            .find(Locator::Css("#name"))
            .await
            .unwrap()
            .send_keys(name)
            .await
            .unwrap();
        browser
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        browser
            .find(Locator::Css("#sign-in-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css("section[data-client]"))
            .await
            .unwrap_or_else(|error| panic!("{name} never saw the overview: {error}"));
    }

    async fn stop(self) {
        for agent in &self.agents {
            agent.cancel();
        }
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

/// Keeps what the browser shows as `target/console-screenshots/NAME.png`.
async fn screenshot(browser: &Client, name: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The hosts listed on the overview, by client section.
async fn overview_hosts(browser: &Client) -> Vec<(String, String)> {
    let mut listed = Vec::new();
    for section in browser
        .find_all(Locator::Css("section[data-client]"))
        .await
        .unwrap()
    {
        let client = section.attr("data-client").await.unwrap().unwrap();
        for row in section
            .find_all(Locator::Css("tr[data-host]"))
            .await
            .unwrap()
        {
            listed.push((
                client.clone(),
                row.attr("data-host").await.unwrap().unwrap(),
            ));
        }
    }
    listed.sort();
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_signs_in_and_sees_both_clients_while_a_client_user_sees_only_its_own() {
    let Some(browser) = browser("console_browser::overview").await else {
        return;
    };
    let console = Console::start(Clock::System).await;
    let page = &browser.client;

    // Not signed in, a page sends the browser to the sign-in page.
    page.goto(&console.url("/hosts/acme-pc1")).await.unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#sign-in-form"))
        .await
        .unwrap();
    screenshot(page, "sign-in").await;

    console.sign_in(page, "ana").await;
    assert_eq!(
        overview_hosts(page).await,
        [
            ("acme".to_string(), "acme-pc1".to_string()),
            ("beta".to_string(), "beta-srv1".to_string())
        ]
    );
    let who = page.find(Locator::Css("#who")).await.unwrap();
    assert_eq!(who.text().await.unwrap(), "ana (technician)");
    screenshot(page, "overview").await;

    // Signing out, then in as acme's own IT contact.
    page.find(Locator::Css("#sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#sign-in-form"))
        .await
        .unwrap();
    console.sign_in(page, "acme-it").await;
    assert_eq!(
        overview_hosts(page).await,
        [("acme".to_string(), "acme-pc1".to_string())]
    );
    let text = page
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("beta"), "the overview shows beta: {text}");
    screenshot(page, "overview-client-user").await;

    // Another client's host by URL: not found, and nothing of it on the page.
    page.goto(&console.url("/hosts/beta-srv1")).await.unwrap();
    let error = page.find(Locator::Css("#page-error")).await.unwrap();
    assert!(
        error.text().await.unwrap().contains("no host 'beta-srv1'"),
        "{}",
        page.source().await.unwrap()
    );
    assert!(page.find(Locator::Css("svg.chart")).await.is_err());
    screenshot(page, "host-of-another-client").await;
    let cookie = page
        .get_named_cookie("vigil_session")
        .await
        .expect("the browser holds a session cookie");
    let session = format!("vigil_session={}", cookie.value());
    for (path, expected) in [
        ("/hosts/beta-srv1", reqwest::StatusCode::NOT_FOUND),
        ("/clients/beta", reqwest::StatusCode::NOT_FOUND),
        ("/hosts/acme-pc1", reqwest::StatusCode::OK),
        ("/clients/acme", reqwest::StatusCode::OK),
    ] {
        let response = console
            .http
            .get(console.url(path))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("beta-srv1\""), "{path} leaks: {body}");
    }

    // Acme's own client page: its contract in plain words, its hosts.
    page.goto(&console.url("/clients/acme")).await.unwrap();
    page.find(Locator::Css("tr[data-host='acme-pc1']"))
        .await
        .expect("acme's host on its client page");
    let contract = page
        .find(Locator::Css("pre.contract"))
        .await
        .expect("acme's contract on its client page")
        .text()
        .await
        .unwrap();
    assert!(contract.contains("Europe/Berlin"), "{contract}");
    screenshot(page, "client").await;

    // From the start page to acme's Reports tab, and the month so far opened in the browser.
    page.goto(&console.url("/")).await.unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("section[data-client='acme'] a.client-reports"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let open = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("table.reports a.open-report"))
        .await
        .unwrap_or_else(|error| panic!("no report listed: {error}"));
    screenshot(page, "client-reports").await;
    open.click().await.unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("p.summary"))
        .await
        .unwrap();
    let title = page
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(title.starts_with("acme — IT report for"), "{title}");
    // The report's inline style applies under its Content-Security-Policy (a refused one
    // would leave the headings without their rule, and an error in the console).
    let border = page
        .execute(
            "return getComputedStyle(document.querySelector('h2')).borderBottomStyle;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(border, json!("solid"));
    screenshot(page, "client-report").await;
    browser.finish().await;
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_page_draws_charts_with_the_agents_data_over_each_window_and_lists_its_open_alerts()
{
    let Some(browser) = browser("console_browser::host_page").await else {
        return;
    };
    let console = Console::start(Clock::System).await;
    let page = &browser.client;
    console.sign_in(page, "ana").await;
    page.find(Locator::Css("tr[data-host='acme-pc1'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#host-name"))
        .await
        .unwrap();
    assert_eq!(page.current_url().await.unwrap().path(), "/hosts/acme-pc1");

    // The agent reports every second: reload until the charts hold lines (bounded).
    let mut drawn = None;
    for _ in 0..60 {
        page.goto(&console.url("/hosts/acme-pc1?range=1h"))
            .await
            .unwrap();
        let paths = page
            .find_all(Locator::Css("svg.chart path.series"))
            .await
            .unwrap();
        if let Some(path) = paths.first() {
            let d = path.attr("d").await.unwrap().unwrap_or_default();
            if d.matches('L').count() >= 2 {
                drawn = Some(d);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let d = drawn.expect("a chart with a line through three points or more");
    assert!(d.starts_with('M'), "{d}");
    for point in d.split(['M', 'L']).filter(|p| !p.trim().is_empty()) {
        let (x, y) = point.trim().split_once(',').expect("x,y");
        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
        assert!(
            (0.0..=640.0).contains(&x) && (0.0..=180.0).contains(&y),
            "{d}"
        );
    }
    let captions: Vec<String> = {
        let mut captions = Vec::new();
        for caption in page.find_all(Locator::Css("figcaption")).await.unwrap() {
            captions.push(caption.text().await.unwrap());
        }
        captions
    };
    assert_eq!(captions[0], "CPU", "{captions:?}");
    assert!(captions[1].starts_with("Memory used"), "{captions:?}");
    assert!(
        captions.iter().any(|c| c.starts_with("Filesystem /")),
        "{captions:?}"
    );
    let state = page.find(Locator::Css("#host-state")).await.unwrap();
    assert_eq!(state.text().await.unwrap(), "online");
    assert!(
        page.find(Locator::Css("tr[data-alert]")).await.is_err(),
        "no alerts yet"
    );

    // An open alert of the host shows on its page; the other client's does not.
    let outbox = Outbox::open(&console.data_dir).unwrap();
    let now_ms = Clock::System.now_ms();
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
    page.refresh().await.unwrap();
    let rows = page.find_all(Locator::Css("tr[data-alert]")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].attr("data-alert").await.unwrap().as_deref(),
        Some("00000000000000aa")
    );
    screenshot(page, "host").await;

    // Longer windows read the rollups (and the newest samples): still data on the chart.
    for range in ["24h", "7d", "30d"] {
        page.goto(&console.url(&format!("/hosts/acme-pc1?range={range}")))
            .await
            .unwrap();
        let memory = page
            .find_all(Locator::Css("svg.chart"))
            .await
            .unwrap()
            .remove(1);
        let points: usize = memory
            .attr("data-points")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(points >= 1, "{range}: no memory data drawn");
    }
    screenshot(page, "host-30d").await;
    browser.finish().await;
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_an_alert_in_the_alert_list_changes_its_state_in_the_api_and_stops_its_escalation(
) {
    let Some(browser) = browser("console_browser::alerts").await else {
        return;
    };
    let start_ms = now_ms();
    let clock = Clock::manual(start_ms);
    let console = Console::start(clock.clone()).await;
    let now_ms = start_ms;
    let outbox = Outbox::open(&console.data_dir).unwrap();
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
    // Text from agents and rules is shown as text, never read as markup.
    let mut marked_up = open_emergency("00000000000000cc", "acme", "acme-pc1", now_ms);
    marked_up.alert.summary = "<b>disk</b> & \"<script>\" full".into();
    outbox.put_open_alert(&marked_up).unwrap();
    let page = &browser.client;
    console.sign_in(page, "ana").await;
    page.find(Locator::Css("header nav a[href='/alerts']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = "tr[data-alert='00000000000000aa']";
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(row))
        .await
        .unwrap();
    assert_eq!(
        page.find_all(Locator::Css("tr[data-alert]"))
            .await
            .unwrap()
            .len(),
        3
    );
    let summary = page
        .find(Locator::Css(
            "tr[data-alert='00000000000000cc'] td:nth-child(2)",
        ))
        .await
        .unwrap();
    assert_eq!(
        summary.text().await.unwrap(),
        "<b>disk</b> & \"<script>\" full"
    );
    assert!(page.find(Locator::Css("td b")).await.is_err());
    screenshot(page, "alerts").await;

    page.find(Locator::Css(&format!("{row} input[name='note']")))
        .await
        .unwrap()
        .send_keys("on site, replacing the disk")
        .await
        .unwrap();
    page.find(Locator::Css(&format!("{row} button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "tr[data-alert='00000000000000aa'][data-state='acknowledged']",
        ))
        .await
        .expect("the page shows the alert acknowledged");
    let state = page
        .find(Locator::Css(&format!("{row} .alert-state")))
        .await
        .unwrap();
    assert_eq!(state.text().await.unwrap(), "acknowledged by ana");
    screenshot(page, "alerts-acknowledged").await;

    // The API says the same, and the other client's alert is untouched.
    let alerts = console.api("/api/v1/alerts").await;
    let by_id = |id: &str| {
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("alert {id} in {alerts}"))
    };
    assert_eq!(by_id("00000000000000aa")["state"], "acknowledged");
    assert_eq!(by_id("00000000000000aa")["acknowledged_by"], "ana");
    assert_eq!(by_id("00000000000000bb")["state"], "firing");
    // The note typed in the page is kept with who acknowledged, in the audit log.
    let audit = console.api("/api/v1/audit").await;
    assert!(
        audit
            .to_string()
            .contains("note: on site, replacing the disk"),
        "{audit}"
    );
    assert!(outbox
        .acknowledgement("00000000000000aa")
        .unwrap()
        .is_some());

    // Past both response times: only the alert nobody acknowledged escalates.
    clock.advance(Duration::from_secs(11 * 60));
    let escalated = |id: &str| outbox.open_alert(id).unwrap().unwrap().escalated;
    let started = std::time::Instant::now();
    while started.elapsed() < DEADLINE && !escalated("00000000000000bb") {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(escalated("00000000000000bb"), "the other alert escalates");
    assert!(
        !escalated("00000000000000aa"),
        "the acknowledged one does not"
    );
    browser.finish().await;
    console.stop().await;
}

/// The same rules without a browser, so they hold wherever the tests run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_without_a_session_send_to_sign_in_and_another_clients_pages_are_not_found() {
    let console = Console::start(Clock::System).await;
    let pages = [
        "/hosts/acme-pc1",
        "/hosts/acme-pc1?range=30d",
        "/alerts",
        "/clients/acme",
    ];
    for path in pages {
        let response = console.http.get(console.url(path)).send().await.unwrap();
        assert!(response.status().is_redirection(), "{path}");
        assert_eq!(response.headers()["location"], "/sign-in", "{path}");
    }
    let sign_in = |name: &'static str| {
        let console = &console;
        async move {
            let response = console
                .http
                .post(console.url("/api/v1/sign-in"))
                .json(&json!({ "name": name, "password": PASSWORD }))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{name} signs in");
            let cookie = response.headers()["set-cookie"].to_str().unwrap();
            cookie.split(';').next().unwrap().to_string()
        }
    };
    let acme = sign_in("acme-it").await;
    let ana = sign_in("ana").await;
    let get = |path: &'static str, cookie: String| {
        let console = &console;
        async move {
            let response = console
                .http
                .get(console.url(path))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let csp = response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_string();
            (status, csp, response.text().await.unwrap())
        }
    };
    for (path, acme_status) in [
        ("/hosts/acme-pc1", 200),
        ("/clients/acme", 200),
        ("/alerts", 200),
        ("/hosts/beta-srv1", 404),
        ("/clients/beta", 404),
        ("/hosts/no-such-host", 404),
    ] {
        let (status, csp, body) = get(path, acme.clone()).await;
        assert_eq!(status.as_u16(), acme_status, "{path}: {body}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!body.contains("beta-srv1</"), "{path} leaks: {body}");
        let (status, _, _) = get(path, ana.clone()).await;
        let expected = if path.contains("no-such") { 404 } else { 200 };
        assert_eq!(status.as_u16(), expected, "{path} for a technician");
    }
    // A window not offered is refused with the ones that are.
    let (status, _, body) = get("/hosts/acme-pc1?range=2y", ana.clone()).await;
    assert_eq!(status.as_u16(), 400);
    assert!(
        body.contains("range = &#39;2y&#39; is not one of 1h, 24h, 7d, 30d"),
        "{body}"
    );
    console.stop().await;
}
