//! The monthly report in the console and the JSON API, through a real `serve` (its HTTP
//! listener on a loopback port, its clock in December 2026) over the month of two clients
//! that [`vigil_tests::report_month`] builds: an admin sees both clients' reports, the page
//! served is byte for byte what `vigil-collector report` writes for the same month, a client
//! user sees its own client's reports and another client's read as unknown by every URL,
//! and a future month, a month without data and a misspelt month are refused in the CLI's
//! words, never answered with an empty report.

use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_collector::http::users::{Role, Users};
use vigil_collector::notify::Clock;
use vigil_collector::serve::Collector;
use vigil_tests::report_month::{berlin, build_month, record_server_inventory};
use vigil_tests::Pki;

const PASSWORD: &str = "correct horse battery staple";

/// A collector serving the month, with an admin and a client user of `north-dental`.
struct Served {
    pki: Pki,
    data_dir: PathBuf,
    base: String,
    http: reqwest::Client,
    admin: String,
    north_user: String,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

/// One answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

impl Served {
    async fn start() -> Served {
        let pki = Pki::new();
        let config = pki.collector_config_with("[http]\nlisten = \"127.0.0.1:0\"\n");
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).unwrap();
        build_month(&data_dir);
        record_server_inventory(&data_dir);
        let users = Users::open(&data_dir).unwrap();
        let token = |name: &str, role: Role, client: Option<&str>| {
            users.add(name, role, client, Some(PASSWORD), 0).unwrap();
            users.create_token(name, 0).unwrap()
        };
        let admin = token("root", Role::Admin, None);
        let north_user = token("north-it", Role::Client, Some("north-dental"));
        let shutdown = CancellationToken::new();
        // A week into December in Berlin: November has ended everywhere.
        let clock = Clock::manual(berlin("2026-12-07T13:00"));
        let collector = Collector::bind_with_clock(&config, shutdown.clone(), clock)
            .await
            .expect("collector binds");
        let server = collector.http().expect("the HTTP server is bound");
        let base = format!("{}://{}", server.scheme(), server.local_addr());
        let serving = tokio::spawn(collector.run());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Served {
            pki,
            data_dir,
            base,
            http,
            admin,
            north_user,
            shutdown,
            serving,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the collector answers");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn stop(self) -> (Pki, PathBuf) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
        (self.pki, self.data_dir)
    }
}

/// The months the API lists for `client`, as (month, complete).
fn listed(answer: &Answer) -> Vec<(String, bool)> {
    answer.json()["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|report| {
            (
                report["month"].as_str().unwrap_or("").to_string(),
                report["complete"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_opens_both_clients_reports_and_the_page_is_the_one_the_report_command_writes() {
    let served = Served::start().await;
    let admin = served.admin.clone();

    for (client, title) in [
        ("north-dental", "North Dental — IT report for November 2026"),
        ("west-law", "west-law — IT report for November 2026"),
    ] {
        let months = served
            .get(&format!("/api/v1/clients/{client}/reports"), &admin)
            .await;
        assert_eq!(months.status, StatusCode::OK, "{}", months.text());
        let months = listed(&months);
        assert!(
            months.contains(&("2026-11".to_string(), true)),
            "{client}: {months:?}"
        );
        // December has data (the trace runs to the 2nd) and is the month so far.
        assert_eq!(
            months.first(),
            Some(&("2026-12".to_string(), false)),
            "{client}: newest first"
        );
        assert!(months.iter().all(|(month, _)| month.as_str() >= "2026-10"));

        let tab = served
            .get(&format!("/clients/{client}/reports"), &admin)
            .await;
        assert_eq!(tab.status, StatusCode::OK, "{}", tab.text());
        let tab = tab.text();
        assert!(tab.contains(r#"id="client-tabs""#), "{tab}");
        assert!(
            tab.contains(&format!(r#"href="/clients/{client}/reports/2026-11""#)),
            "{tab}"
        );
        assert!(tab.contains(&format!(
            r#"href="/clients/{client}/reports/2026-11/download""#
        )));
        let overview = served.get(&format!("/clients/{client}"), &admin).await;
        assert!(overview
            .text()
            .contains(&format!(r#"href="/clients/{client}/reports""#)));

        let page = served
            .get(&format!("/clients/{client}/reports/2026-11"), &admin)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
        let policy = page.header("content-security-policy");
        assert!(
            policy.contains("style-src 'sha256-") && !policy.contains("script-src"),
            "{policy}"
        );
        assert!(page.text().contains(title), "{client}");

        let api = served
            .get(&format!("/api/v1/clients/{client}/reports/2026-11"), &admin)
            .await;
        assert_eq!(api.status, StatusCode::OK);
        assert_eq!(api.body, page.body, "the API serves the console's page");

        let download = served
            .get(
                &format!("/clients/{client}/reports/2026-11/download"),
                &admin,
            )
            .await;
        assert_eq!(download.status, StatusCode::OK);
        assert_eq!(
            download.header("content-disposition"),
            format!("attachment; filename=\"{client}-2026-11.html\"")
        );
        assert_eq!(download.body, page.body);
    }

    if vigil_collector::report::pdf::chromium().is_some() {
        let pdf = served
            .get("/clients/north-dental/reports/2026-11/pdf", &admin)
            .await;
        assert_eq!(pdf.status, StatusCode::OK, "{}", pdf.text());
        assert_eq!(pdf.header("content-type"), "application/pdf");
        assert!(pdf.body.starts_with(b"%PDF"), "a PDF file");
    } else {
        eprintln!("no headless Chromium: the PDF link was not tried");
    }

    let served_page = served
        .get("/clients/north-dental/reports/2026-11", &admin)
        .await
        .body;
    let (pki, data_dir) = served.stop().await;
    // Shown twice, recorded once: the run is what a dispute is answered from.
    let runs = vigil_collector::report::runs::read(&data_dir).unwrap();
    let north_runs = runs
        .iter()
        .filter(|run| run.client == "north-dental" && run.month == "2026-11")
        .count();
    assert_eq!(north_runs, 1, "{runs:?}");

    // The CLI on the same data folder, once the collector has let go of the store.
    let out = pki.path("north-cli.html");
    let output = std::process::Command::new(vigil_tests::binary("vigil-collector"))
        .current_dir(pki.path(""))
        .args(["report", "--config"])
        .arg(pki.path("collector.toml"))
        .args(["--client", "north-dental", "--month", "2026-11", "--out"])
        .arg(&out)
        .env_remove("VIGIL_CONFIG")
        .output()
        .expect("running vigil-collector report");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read(&out).unwrap();
    assert!(
        written == served_page,
        "the served page and the CLI's differ:\n{}",
        first_difference(&served_page, &written)
    );
}

/// Where two pages first differ, with some context.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let around = |page: &[u8]| {
        String::from_utf8_lossy(&page[at.saturating_sub(80)..(at + 80).min(page.len())])
            .into_owned()
    };
    format!("served: …{}…\ncli:    …{}…", around(a), around(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_user_reads_its_own_reports_and_another_clients_read_as_unknown_by_every_url() {
    let served = Served::start().await;
    let own = served.north_user.clone();

    let months = served
        .get("/api/v1/clients/north-dental/reports", &own)
        .await;
    assert_eq!(months.status, StatusCode::OK, "{}", months.text());
    assert!(listed(&months).contains(&("2026-11".to_string(), true)));
    let page = served
        .get("/clients/north-dental/reports/2026-11", &own)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .text()
        .contains("North Dental — IT report for November 2026"));
    // Every page a client user sees leads to its own client and its reports.
    let start = served.get("/alerts", &own).await.text();
    assert!(
        start.contains(r#"<a href="/clients/north-dental/reports" id="own-reports">"#),
        "{start}"
    );

    for path in [
        "/api/v1/clients/{c}/reports",
        "/api/v1/clients/{c}/reports/2026-11",
        "/clients/{c}/reports",
        "/clients/{c}/reports/2026-11",
        "/clients/{c}/reports/2026-11/download",
        "/clients/{c}/reports/2026-11/pdf",
        "/clients/{c}/reports/2099-01",
    ] {
        let other = served.get(&path.replace("{c}", "west-law"), &own).await;
        let unknown = served.get(&path.replace("{c}", "south-vet"), &own).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            other.text().replace("west-law", "NAME"),
            unknown.text().replace("south-vet", "NAME"),
            "{path}: another client's reports read exactly like a client that does not exist"
        );
        assert!(!other.text().contains("IT report for"), "{path}");
    }
    // The admin's answer for an unknown client does not list the clients either.
    let unknown = served
        .get("/api/v1/clients/south-vet/reports", &served.admin)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("no client 'south-vet'"),
        "{}",
        unknown.text()
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_month_a_month_without_data_and_a_misspelt_month_are_refused_in_the_clis_words() {
    let served = Served::start().await;
    let admin = served.admin.clone();
    // Without credentials: the API answers 401, the console sends the browser to sign in.
    for path in [
        "/api/v1/clients/west-law/reports",
        "/api/v1/clients/west-law/reports/2026-11",
        "/clients/west-law/reports",
        "/clients/west-law/reports/2026-11",
        "/clients/west-law/reports/2026-11/download",
    ] {
        let answer = served.get(path, "vigil_abcdef_not-a-real-token").await;
        if path.starts_with("/api/") {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        } else {
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(answer.header("location"), "/sign-in", "{path}");
        }
        assert!(!answer.text().contains("IT report for"), "{path}");
    }
    for (month, status, words) in [
        (
            "2099-01",
            StatusCode::NOT_FOUND,
            "month 2099-01 has not begun yet for client 'west-law'",
        ),
        (
            "2026-06",
            StatusCode::NOT_FOUND,
            "client 'west-law' has no data for 2026-06",
        ),
        ("2026-6", StatusCode::BAD_REQUEST, "write it YYYY-MM"),
    ] {
        let api = served
            .get(&format!("/api/v1/clients/west-law/reports/{month}"), &admin)
            .await;
        assert_eq!(api.status, status, "{month}: {}", api.text());
        let error = api.json()["error"].as_str().unwrap_or("").to_string();
        assert!(error.contains(words), "{month}: {error}");
        assert!(!error.contains('\n'), "one line");

        let page = served
            .get(&format!("/clients/west-law/reports/{month}"), &admin)
            .await;
        assert_eq!(page.status, status, "{month}");
        let text = page.text();
        assert!(text.contains(r#"id="page-error""#), "{text}");
        assert!(
            text.contains(&words.replace('\'', "&#39;")),
            "{month}: {text}"
        );
        assert!(!text.contains("IT report for"), "no empty report");
    }
    // A month without data is not offered in the first place.
    let months = served.get("/api/v1/clients/west-law/reports", &admin).await;
    assert!(!listed(&months)
        .iter()
        .any(|(month, _)| month == "2026-06" || month == "2099-01"));
    let (_, data_dir) = served.stop().await;
    let runs = vigil_collector::report::runs::read(&data_dir).unwrap();
    assert!(runs.is_empty(), "a refusal records no run: {runs:?}");
}
