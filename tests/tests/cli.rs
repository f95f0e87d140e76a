//! The two binaries as a technician runs them: the demo, `serve` and `run` as separate
//! processes, `query`, and the one-line errors for bad input.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use vigil_tests::binary;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(binary(program))
        .args(args)
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The error line a failed command printed (its last non-empty stderr line).
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure: {output:?}");
    let text = stderr(output);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {text}");
    errors[0].to_string()
}

fn query_json(data: &Path, selector: &str) -> serde_json::Value {
    let output = run(
        "vigil-collector",
        &[
            "query",
            "--data",
            data.to_str().unwrap(),
            selector,
            "--since",
            "5m",
            "--format",
            "json",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("query prints JSON")
}

fn sample_count(result: &serde_json::Value) -> usize {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["values"].as_array().unwrap().len())
        .sum()
}

#[test]
fn the_demo_leaves_a_store_that_query_reads_and_configs_that_serve_and_run_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = run(
        "vigil-collector",
        &[
            "demo",
            "--duration",
            "7s",
            "--grpc",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("grpc: 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("connected"), "{stdout}");
    assert!(stdout.contains(" batch 1: "), "{stdout}");

    let cpu = query_json(&data, "system_cpu_utilization_ratio");
    let series = cpu.as_array().unwrap();
    assert_eq!(series.len(), 1, "{cpu}");
    assert_eq!(series[0]["metric"]["client"], "demo");
    assert!(!series[0]["values"].as_array().unwrap().is_empty(), "{cpu}");
    let samples_after_demo = sample_count(&query_json(&data, r#"{__name__=~"system_.*"}"#));

    // The demo's client has a host but no contract: the report says what is missing.
    let config = data.join("collector.toml");
    let report = Command::new(binary("vigil-collector"))
        .args(["report", "--config", config.to_str().unwrap()])
        .args(["--client", "demo", "--month", "2026-01"])
        .output()
        .unwrap();
    assert!(!report.status.success());
    assert!(
        stderr(&report).contains("error: client 'demo' has no contract stored"),
        "{}",
        stderr(&report)
    );

    // The same folder runs as two processes, the way a technician sets it up for real.
    let mut serve = Command::new(binary("vigil-collector"))
        .args(["serve", "--config"])
        .arg(data.join("collector.toml"))
        .env("VIGIL_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Command::new(binary("vigil-agent"))
        .args(["run", "--config"])
        .arg(data.join("agent.toml"))
        .env("VIGIL_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(7));
    for child in [&agent, &serve] {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The agent says goodbye before the collector stops.
        std::thread::sleep(Duration::from_millis(500));
    }
    let agent_exit = agent.wait().unwrap();
    let serve_exit = serve.wait().unwrap();
    assert!(
        agent_exit.success(),
        "agent exits cleanly on SIGTERM: {agent_exit:?}"
    );
    assert!(
        serve_exit.success(),
        "collector exits cleanly on SIGTERM: {serve_exit:?}"
    );
    let samples_after_serve = sample_count(&query_json(&data, r#"{__name__=~"system_.*"}"#));
    assert!(
        samples_after_serve > samples_after_demo,
        "serve + run added samples: {samples_after_demo} → {samples_after_serve}"
    );
}

#[test]
fn the_agent_prints_one_collection_as_json() {
    let output = run("vigil-agent", &["collect", "--once", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["inventory"]["cpu_cores"].as_u64().unwrap() >= 1);
    let names: Vec<&str> = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["name"].as_str().unwrap())
        .collect();
    for wanted in [
        "system_cpu_utilization_ratio",
        "system_memory_usage_bytes",
        "system_filesystem_usage_bytes",
        "system_uptime_seconds",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    // Rules may only name metrics the collector knows an agent reports.
    for name in names
        .iter()
        .chain([&vigil_agent::run::SPOOL_DROPPED_METRIC])
    {
        assert!(
            vigil_collector::alert::pack::METRIC_CATALOG.contains(name),
            "{name} is reported but not in the collector's METRIC_CATALOG"
        );
    }
}

#[test]
fn a_missing_config_is_named() {
    let line = error_line(&run(
        "vigil-collector",
        &["serve", "--config", "/nonexistent/collector.toml"],
    ));
    assert!(line.contains("/nonexistent/collector.toml"), "{line}");
    assert!(line.contains("cannot be read"), "{line}");
}

#[test]
fn a_malformed_config_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    std::fs::write(
        &path,
        "data_dir = \"x\"\n[grpc]\nlisten = \"127.0.0.1:0\"\nport = 7443\n",
    )
    .unwrap();
    let line = error_line(&run(
        "vigil-collector",
        &["serve", "--config", path.to_str().unwrap()],
    ));
    assert!(line.contains("collector.toml:4:1"), "{line}");
    assert!(line.contains("unknown field `port`"), "{line}");

    let agent_path = dir.path().join("agent.toml");
    std::fs::write(
        &agent_path,
        "collector = \"https://127.0.0.1:7443\"\ninterval = 10\n",
    )
    .unwrap();
    let line = error_line(&run(
        "vigil-agent",
        &["run", "--config", agent_path.to_str().unwrap()],
    ));
    assert!(line.contains("agent.toml:2:"), "{line}");
    assert!(line.contains("interval = 10"), "{line}");
}

#[test]
fn an_unusable_data_dir_is_reported_without_serving() {
    let pki = vigil_tests::Pki::new();
    // A regular file where the data directory should be.
    std::fs::write(pki.path("data"), "not a folder").unwrap();
    pki.collector_config();
    let line = error_line(&run(
        "vigil-collector",
        &[
            "serve",
            "--config",
            pki.path("collector.toml").to_str().unwrap(),
        ],
    ));
    assert!(line.contains(pki.path("data").to_str().unwrap()), "{line}");
}

#[test]
fn a_query_with_a_syntax_error_points_at_the_character() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&run(
        "vigil-collector",
        &[
            "query",
            "--data",
            dir.path().to_str().unwrap(),
            r#"cpu{host="a",}x"#,
        ],
    ));
    assert!(line.contains("character 15"), "{line}");

    let line = error_line(&run(
        "vigil-collector",
        &[
            "query",
            "--data",
            "/nonexistent/vigil",
            "system_uptime_seconds",
        ],
    ));
    assert!(
        line.contains("'/nonexistent/vigil' does not exist"),
        "{line}"
    );
}

/// Runs `vigil-collector` with `args` in `folder`, with `VIGIL_CONFIG` set or not.
fn collector_in(folder: &Path, vigil_config: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(binary("vigil-collector"));
    command
        .args(args)
        .current_dir(folder)
        .env("VIGIL_LOG", "warn")
        .env_remove("VIGIL_CONFIG");
    if let Some(path) = vigil_config {
        command.env("VIGIL_CONFIG", path);
    }
    command.output().expect("the binary runs")
}

#[test]
fn admin_commands_find_the_config_from_vigil_config_then_the_current_folder_and_say_which() {
    let pki = vigil_tests::Pki::new();
    pki.collector_config_with_enrollment("2h");
    let config = pki.path("collector.toml");
    let elsewhere = tempfile::tempdir().unwrap();

    // The current folder's collector.toml, without --config or VIGIL_CONFIG.
    let output = collector_in(
        pki.dir.path(),
        None,
        &["token", "create", "--client", "acme-dental"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let used: Vec<String> = stderr(&output)
        .lines()
        .filter(|line| line.starts_with("using config "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        used,
        [format!(
            "using config {} (from the current folder)",
            config.display()
        )],
        "one line says which file"
    );

    // VIGIL_CONFIG from anywhere.
    let output = collector_in(elsewhere.path(), Some(&config), &["hosts", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "using config {} (from VIGIL_CONFIG)",
            config.display()
        )),
        "{}",
        stderr(&output)
    );

    // VIGIL_CONFIG wins over the current folder, and --config over both.
    let missing = elsewhere.path().join("missing.toml");
    let line = error_line(&collector_in(
        pki.dir.path(),
        Some(&missing),
        &["hosts", "pending"],
    ));
    assert!(line.contains("missing.toml"), "{line}");
    let output = collector_in(
        elsewhere.path(),
        Some(&missing),
        &["hosts", "pending", "--config", config.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("(from --config)"),
        "{}",
        stderr(&output)
    );

    // Nothing anywhere: the error says where it looked and what to do.
    if !Path::new("/etc/vigil/collector.toml").exists() {
        let line = error_line(&collector_in(elsewhere.path(), None, &["hosts", "list"]));
        assert!(line.contains("VIGIL_CONFIG"), "{line}");
        assert!(line.contains("--config"), "{line}");
    }
}

#[test]
fn token_create_refuses_a_display_name_as_the_client_id_in_one_line_with_the_fix() {
    let pki = vigil_tests::Pki::new();
    pki.collector_config_with_enrollment("2h");
    let line = error_line(&collector_in(
        pki.dir.path(),
        None,
        &["token", "create", "--client", "Acme Dental"],
    ));
    assert!(line.contains("client id \"Acme Dental\""), "{line}");
    assert!(line.contains("--client acme-dental"), "{line}");
}
