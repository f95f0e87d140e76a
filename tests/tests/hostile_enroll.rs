//! Enrollment and key files against someone who holds a valid join token, or a careless
//! install: taking over a host's name, renaming into another client, names the CA should not
//! sign, approval-list flooding, and private keys others can read. The real collector
//! (`serve`'s code, or the binary) and the agent's own enrollment code, over TLS on loopback.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil_agent::enroll::{enroll, EnrollError, EnrollOptions, Enrolled};
use vigil_collector::config::CollectorConfig;
use vigil_collector::enroll::admin;
use vigil_proto::join_token::JoinToken;
use vigil_tests::{batch, binary, hello, now_ms, open_stream, AgentFiles, Pki, RunningCollector};

async fn collector_with_enrollment(pki: &Pki) -> (RunningCollector, CollectorConfig) {
    let config = pki.collector_config_with_enrollment("2h");
    let collector = RunningCollector::start(&config).await;
    let mut as_bound = config.clone();
    as_bound.enroll.as_mut().unwrap().listen = collector.enroll.expect("enrollment listener");
    (collector, as_bound)
}

fn token(config: &CollectorConfig, client: &str, uses: u32, approve: bool) -> JoinToken {
    admin::create_token(
        config,
        Path::new("collector.toml"),
        client,
        Duration::from_secs(3600),
        uses,
        approve,
    )
    .expect("token created")
    .token
}

async fn enroll_as(
    collector: &RunningCollector,
    token: JoinToken,
    dir: &Path,
    hostname: &str,
) -> Result<Enrolled, EnrollError> {
    enroll(&EnrollOptions {
        collector_url: format!("https://{}", collector.grpc),
        token,
        config_dir: dir.to_path_buf(),
        hostname: hostname.to_string(),
        approval_wait: Duration::ZERO,
        approval_poll: Duration::from_millis(100),
    })
    .await
}

fn files_in(dir: &Path) -> AgentFiles {
    AgentFiles {
        cert: dir.join("agent.pem"),
        key: dir.join("agent-key.pem"),
        ca: dir.join("ca.pem"),
    }
}

/// Whether a certificate can still report: a stream opens and its first batch is answered.
async fn can_report(collector: &RunningCollector, files: &AgentFiles) -> bool {
    let Ok(channel) = vigil_tests::connect(collector.grpc, &files.ca, Some(files)).await else {
        return false;
    };
    let Ok(mut stream) = open_stream(channel).await else {
        return false;
    };
    stream.send(hello(1)).await;
    stream
        .send(batch(1, "system_uptime_seconds", &[], now_ms(), 1.0))
        .await;
    matches!(stream.next().await, Ok(Some(_)))
}

/// Whether a certificate is refused once the revocation list has reloaded (every second):
/// tried every 100 ms, at most 50 times.
async fn refused_within_seconds(collector: &RunningCollector, files: &AgentFiles) -> bool {
    for _ in 0..50 {
        if !can_report(collector, files).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_enrollment_of_an_enrolled_name_by_the_same_client_is_refused_with_the_fix() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let first = tempfile::tempdir().unwrap();
    enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        first.path(),
        "alpha",
    )
    .await
    .unwrap();

    let second = tempfile::tempdir().unwrap();
    let intruder = token(&config, "acme", 1, false);
    let error = enroll_as(&collector, intruder.clone(), second.path(), "alpha")
        .await
        .expect_err("the name is taken")
        .to_string();
    assert!(
        error.contains("host name 'alpha' is already enrolled"),
        "{error}"
    );
    assert!(error.contains("another --hostname"), "{error}");
    assert!(
        error.contains("vigil-collector hosts replace alpha"),
        "{error}"
    );
    assert!(!second.path().join("agent.pem").exists(), "nothing issued");
    assert_eq!(admin::list_hosts(&config.data_dir).unwrap().len(), 1);

    // The refusal cost the token nothing: the same token enrolls under another name.
    let renamed = enroll_as(&collector, intruder, second.path(), "alpha-2")
        .await
        .expect("another --hostname works");
    assert_eq!(renamed.agent_id, "alpha-2");
    assert!(can_report(&collector, &files_in(first.path())).await);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_by_another_clients_host_is_refused_never_renamed() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let dental = tempfile::tempdir().unwrap();
    enroll_as(
        &collector,
        token(&config, "acme-dental", 1, false),
        dental.path(),
        "dental-srv01",
    )
    .await
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let error = enroll_as(
        &collector,
        token(&config, "globex", 1, false),
        other.path(),
        "dental-srv01",
    )
    .await
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("host name 'dental-srv01' is already enrolled"),
        "{error}"
    );
    assert!(
        !error.contains("acme-dental"),
        "the other client stays unnamed: {error}"
    );
    let hosts = admin::list_hosts(&config.data_dir).unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h.record.agent_id.as_str()).collect();
    assert_eq!(names, ["dental-srv01"], "no renamed host was created");
    assert_eq!(hosts[0].record.client, "acme-dental");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_replace_cuts_the_old_machine_off_and_lets_the_rebuilt_one_take_the_name() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let old = tempfile::tempdir().unwrap();
    enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        old.path(),
        "reception-pc",
    )
    .await
    .unwrap();
    assert!(can_report(&collector, &files_in(old.path())).await);

    admin::replace_host(&config.data_dir, "reception-pc").unwrap();
    // The old machine cannot renew its way past the replacement, even in the second before
    // the collector's revocation list reloads.
    let old_files = files_in(old.path());
    let old_cert = std::fs::read_to_string(&old_files.cert).unwrap();
    if let Ok(channel) = vigil_tests::connect(collector.grpc, &old_files.ca, Some(&old_files)).await
    {
        let renewal =
            vigil_agent::enroll::renew(channel, &old_files.cert, &old_files.key, "reception-pc")
                .await;
        let error = renewal.expect_err("renewal refused").to_string();
        assert!(error.contains("revoked"), "{error}");
    }
    assert_eq!(std::fs::read_to_string(&old_files.cert).unwrap(), old_cert);
    // Another client's token still cannot take the freed name.
    let stranger = tempfile::tempdir().unwrap();
    let error = enroll_as(
        &collector,
        token(&config, "globex", 1, false),
        stranger.path(),
        "reception-pc",
    )
    .await
    .expect_err("refused to another client")
    .to_string();
    assert!(error.contains("already enrolled"), "{error}");

    let rebuilt = tempfile::tempdir().unwrap();
    let enrolled = enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        rebuilt.path(),
        "reception-pc",
    )
    .await
    .expect("the rebuilt machine takes the name");
    assert_eq!(enrolled.agent_id, "reception-pc");
    assert!(
        refused_within_seconds(&collector, &files_in(old.path())).await,
        "the old machine's certificate is refused"
    );
    assert!(
        can_report(&collector, &files_in(rebuilt.path())).await,
        "the new certificate reports"
    );
    // A second rebuild needs a second `hosts replace`.
    let again = tempfile::tempdir().unwrap();
    let error = enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        again.path(),
        "reception-pc",
    )
    .await
    .expect_err("the name is taken again")
    .to_string();
    assert!(error.contains("hosts replace reception-pc"), "{error}");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_remove_frees_the_name_of_a_revoked_host_only() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let retired = tempfile::tempdir().unwrap();
    enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        retired.path(),
        "old-pc",
    )
    .await
    .unwrap();
    let error = admin::remove_host(&config.data_dir, "old-pc")
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not revoked"), "{error}");
    admin::revoke_host(&config.data_dir, "old-pc").unwrap();
    let error = enroll_as(
        &collector,
        token(&config, "acme", 1, false),
        tempfile::tempdir().unwrap().path(),
        "old-pc",
    )
    .await
    .expect_err("a revoked host still holds its name")
    .to_string();
    assert!(error.contains("hosts remove old-pc"), "{error}");
    admin::remove_host(&config.data_dir, "old-pc").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let enrolled = enroll_as(
        &collector,
        token(&config, "globex", 1, false),
        fresh.path(),
        "old-pc",
    )
    .await
    .expect("the freed name is anyone's");
    assert_eq!(
        (enrolled.agent_id.as_str(), enrolled.client.as_str()),
        ("old-pc", "globex")
    );
    assert!(refused_within_seconds(&collector, &files_in(retired.path())).await);
    let hosts = admin::list_hosts(&config.data_dir).unwrap();
    assert_eq!(
        hosts[0].revoked_at_ms, None,
        "the new old-pc is not revoked"
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_that_are_only_dots_or_spaces_are_refused_and_nothing_is_issued() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let token = token(&config, "acme", 5, false);
    for name in [".", "..", "   ", "-.-", "é"] {
        let dir = tempfile::tempdir().unwrap();
        let error = enroll_as(&collector, token.clone(), dir.path(), name)
            .await
            .expect_err(name)
            .to_string();
        assert!(error.contains("no usable host name"), "{name:?}: {error}");
        assert!(error.contains("--hostname"), "{name:?}: {error}");
    }
    assert!(admin::list_hosts(&config.data_dir).unwrap().is_empty());
    let (_, record) = vigil_collector::enroll::registry::Registry::open(&config.data_dir)
        .unwrap()
        .tokens()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(record.uses_left, 5, "refusals used no token");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_use_approval_token_holds_one_agent_in_the_pending_list_not_twenty() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let token = token(&config, "acme", 1, true);
    let mut refused = 0;
    for n in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        match enroll_as(&collector, token.clone(), dir.path(), &format!("ghost-{n}")).await {
            Err(EnrollError::NotApproved { .. }) => {}
            Err(EnrollError::Refused(message)) => {
                assert!(message.contains("waiting for approval"), "{message}");
                assert!(message.contains("--uses"), "{message}");
                refused += 1;
            }
            other => panic!("attempt {n}: {other:?}"),
        }
    }
    let pending = admin::pending(&config.data_dir).unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(refused, 19);
    collector.stop().await;
}

#[test]
fn token_create_refuses_a_client_id_no_policy_could_name_and_says_which_to_use() {
    let pki = Pki::new();
    let config = pki.collector_config_with_enrollment("2h");
    let error = admin::create_token(
        &config,
        Path::new("collector.toml"),
        "Acme Dental",
        Duration::from_secs(60),
        1,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("client id \"Acme Dental\""), "{error}");
    assert!(error.contains("--client acme-dental"), "{error}");
    // What the message suggests is what a policy file accepts.
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies/dental-practice.toml"),
    )
    .unwrap();
    let client_line = policy
        .lines()
        .find(|line| line.trim_start().starts_with("client"))
        .unwrap();
    let client = client_line.split('"').nth(1).unwrap();
    admin::create_token(
        &config,
        Path::new("collector.toml"),
        client,
        Duration::from_secs(60),
        1,
        false,
    )
    .expect("the shipped policy's client id is accepted");
}

/// Sets a file's mode.
#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs a binary that must refuse to start and returns its one `error:` line. One that
/// starts anyway is killed after a minute and the test fails.
#[cfg(unix)]
fn refusal(program: &str, args: &[&str]) -> String {
    let mut child = Command::new(binary(program))
        .args(args)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut exited = false;
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    assert!(exited, "{program} did not refuse to start: {output:?}");
    assert!(!output.status.success(), "{program} started: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0].to_string()
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_server_key_or_ca_key_that_others_can_read() {
    let pki = Pki::new();
    pki.collector_config_with_enrollment("2h");
    let config = pki.path("collector.toml");
    for key in ["collector-key.pem", "ca-key.pem"] {
        let path = pki.path(key);
        chmod(&path, 0o644);
        let error = refusal(
            "vigil-collector",
            &["serve", "--config", config.to_str().unwrap()],
        );
        assert!(
            error.contains(&format!("run 'chmod 600 {}'", path.display())),
            "{key}: {error}"
        );
        assert!(error.contains("mode 0644"), "{error}");
        chmod(&path, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn the_agent_refuses_to_run_with_a_key_others_can_read() {
    let pki = Pki::new();
    let files = pki.issue_agent("agent", "pc-01", "acme");
    let config = pki.agent_config_file(&files, "127.0.0.1:9".parse().unwrap(), 10);
    chmod(&files.key, 0o644);
    let error = refusal(
        "vigil-agent",
        &["run", "--config", config.to_str().unwrap()],
    );
    assert!(
        error.contains(&format!("run 'chmod 600 {}'", files.key.display())),
        "{error}"
    );
    chmod(&files.key, 0o666);
    let error = refusal(
        "vigil-agent",
        &["run", "--config", config.to_str().unwrap()],
    );
    assert!(error.contains("mode 0666"), "{error}");
}
