//! The console's side of the binaries as a technician meets it: `demo --http` prints its
//! address and a one-time sign-in link and leaves an admin API token in its folder, and
//! `users add|token|list|remove` change who may use the API of a collector while it runs,
//! and `query` reads through that API while the collector holds the store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::binary;

const DEADLINE: Duration = Duration::from_secs(60);

fn collector(args: &[&str], config: &Path, stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(binary("vigil-collector"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_api_to_its_token_and_link_and_users_added_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut demo = Command::new(binary("vigil-collector"))
        .args(["demo", "--duration", "60s", "--grpc", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut http, mut link) = (None, None);
    for line in lines.by_ref().take(20) {
        let line = line.unwrap();
        if let Some(address) = line.strip_prefix("http: ") {
            http = Some(address.to_string());
        }
        if let Some(rest) = line.strip_prefix("sign in (one use, within 15 min): ") {
            link = Some(rest.to_string());
        }
        if line.starts_with("data: ") {
            break;
        }
    }
    // Keep reading so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let http = http.expect("an 'http: ADDR' line");
    let link = link.expect("a sign-in link");
    assert!(link.starts_with(&format!("http://{http}/")), "{link}");
    let config = data.join("collector.toml");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains(&format!("listen = \"{http}\"")),
        "the config names the real port"
    );

    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let token = token.trim();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("api-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the token file is private: {mode:o}");
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String, token: String| {
        let client = client.clone();
        let url = format!("http://{http}{path}");
        async move {
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    // The demo's own agent shows up.
    let started = Instant::now();
    loop {
        let (status, hosts) = get("/api/v1/hosts".into(), token.to_string()).await;
        assert_eq!(status, 200, "{hosts}");
        if hosts["hosts"]
            .as_array()
            .is_some_and(|hosts| !hosts.is_empty())
        {
            assert_eq!(hosts["hosts"][0]["client"], "demo");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the demo agent never showed: {hosts}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // `query` reads through the running demo's API, the store being in use.
    let query = Command::new(binary("vigil-collector"))
        .args(["query", "--since", "5m", "--format", "json", "--data"])
        .arg(&data)
        .arg("system_cpu_utilization_ratio")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&query.stderr);
    assert!(query.status.success(), "{stderr}");
    assert!(
        stderr.contains("through the running collector's API"),
        "{stderr}"
    );
    let series: serde_json::Value = serde_json::from_slice(&query.stdout).unwrap();
    assert_eq!(series[0]["metric"]["client"], "demo", "{series}");
    assert!(
        !series[0]["values"].as_array().unwrap().is_empty(),
        "{series}"
    );

    // The link signs a browser in once.
    let response = client.get(&link).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let again = client.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 401, "a used link signs nobody in");

    // A user added while the demo runs can use the API at once; removed, no longer.
    let added = collector(
        &["users", "add", "ana", "--role", "technician"],
        &config,
        Some("correct horse battery staple\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let refused = collector(
        &["users", "add", "acme-it", "--role", "client"],
        &config,
        Some("correct horse battery staple\n"),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--client"));
    let made = collector(&["users", "token", "ana"], &config, None);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ana_token = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let (status, _) = get("/api/v1/alerts".into(), ana_token.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = get("/api/v1/users".into(), ana_token.clone()).await;
    assert_eq!(status, 403, "technicians do not manage users");
    let listed = collector(&["users", "list"], &config, None);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ana") && l.contains("technician")),
        "{listed}"
    );
    assert!(!listed.contains("correct horse"), "{listed}");
    let removed = collector(&["users", "remove", "ana"], &config, None);
    assert!(removed.status.success());
    let (status, _) = get("/api/v1/alerts".into(), ana_token).await;
    assert_eq!(status, 401);

    let status = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(demo.wait().unwrap().success(), "the demo stops cleanly");
}
