//! Enrollment end to end: join tokens, pinned first contact, approval, renewal and
//! revocation, with the real collector and the agent's own enrollment code.

use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_agent::enroll::{enroll, EnrollOptions};
use vigil_agent::run::Agent;
use vigil_collector::config::CollectorConfig;
use vigil_collector::enroll::admin;
use vigil_collector::ingest::IngestEvent;
use vigil_proto::join_token::JoinToken;
use vigil_tests::{batch, hello, now_ms, open_stream, AgentFiles, Pki, RunningCollector};

/// A collector with enrollment, and its config as `token create` sees it (real port).
async fn collector_with_enrollment(pki: &Pki) -> (RunningCollector, CollectorConfig) {
    let config = pki.collector_config_with_enrollment("2h");
    let collector = RunningCollector::start(&config).await;
    let mut as_bound = config.clone();
    as_bound.enroll.as_mut().unwrap().listen = collector.enroll.expect("enrollment listener");
    (collector, as_bound)
}

fn create_token(
    config: &CollectorConfig,
    client: &str,
    expires: Duration,
    uses: u32,
    approve: bool,
) -> JoinToken {
    admin::create_token(
        config,
        Path::new("collector.toml"),
        client,
        expires,
        uses,
        approve,
    )
    .expect("token created")
    .token
}

fn options(
    collector: &RunningCollector,
    token: JoinToken,
    dir: &Path,
    hostname: &str,
) -> EnrollOptions {
    EnrollOptions {
        collector_url: format!("https://{}", collector.grpc),
        token,
        config_dir: dir.to_path_buf(),
        hostname: hostname.to_string(),
        approval_wait: Duration::from_secs(60),
        approval_poll: Duration::from_secs(1),
    }
}

fn agent_files(dir: &Path) -> AgentFiles {
    AgentFiles {
        cert: dir.join("agent.pem"),
        key: dir.join("agent-key.pem"),
        ca: dir.join("ca.pem"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_with_a_token_and_reports_under_its_new_identity() {
    let pki = Pki::new();
    let (mut collector, config) = collector_with_enrollment(&pki).await;
    let token = create_token(&config, "acme-dental", Duration::from_secs(3600), 1, false);
    let dir = tempfile::tempdir().unwrap();
    let enrolled = enroll(&options(&collector, token, dir.path(), "Reception PC"))
        .await
        .unwrap();
    assert_eq!(enrolled.agent_id, "reception-pc");
    assert_eq!(enrolled.client, "acme-dental");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("agent-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }

    // The written agent.toml is what `vigil-agent run` uses.
    let agent_config = vigil_agent::config::AgentConfig::load(&enrolled.config_path).unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(Agent::new(agent_config).run(shutdown.clone()));
    let stored = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(IngestEvent::Stored { peer, .. }) = collector.events.recv().await {
                return peer;
            }
        }
    })
    .await
    .expect("the enrolled agent reports");
    assert_eq!(stored.host, "reception-pc");
    assert_eq!(stored.client, "acme-dental");
    shutdown.cancel();
    agent.await.unwrap().unwrap();

    let hosts = admin::list_hosts(&config.data_dir).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].record.client, "acme-dental");
    collector.stop().await;
}

#[tokio::test]
async fn expired_used_forged_and_foreign_tokens_are_refused_and_nothing_is_issued() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let dir = tempfile::tempdir().unwrap();

    let used = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    enroll(&options(&collector, used.clone(), dir.path(), "pc-01"))
        .await
        .unwrap();
    let issued_before = admin::list_hosts(&config.data_dir).unwrap().len();

    let expired = create_token(&config, "acme", Duration::from_millis(1), 1, false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut forged = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    forged.secret[0] ^= 0xff;
    let mut foreign_ca = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    foreign_ca.ca_fingerprint = [0x42; 32];

    for (what, token) in [("used", used), ("expired", expired), ("forged", forged)] {
        let other = tempfile::tempdir().unwrap();
        let error = enroll(&options(&collector, token, other.path(), "pc-02"))
            .await
            .expect_err(what)
            .to_string();
        assert!(error.contains("join token is not valid"), "{what}: {error}");
        assert!(
            !other.path().join("agent.pem").exists(),
            "{what}: nothing written"
        );
    }
    // A token for another CA: the agent refuses to talk to this collector at all.
    let other = tempfile::tempdir().unwrap();
    let error = enroll(&options(&collector, foreign_ca, other.path(), "pc-03"))
        .await
        .expect_err("foreign CA")
        .to_string();
    assert!(error.contains("does not match the join token"), "{error}");
    assert_eq!(
        admin::list_hosts(&config.data_dir).unwrap().len(),
        issued_before
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_token_holds_the_agent_until_a_technician_approves() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    // Two uses: the agent that gives up keeps its place in the pending list until its
    // request goes stale, and a token holds no more waiting agents than its uses.
    let token = create_token(&config, "acme", Duration::from_secs(3600), 2, true);

    // Nobody approves: the agent gives up after its wait, and nothing is issued.
    let dir = tempfile::tempdir().unwrap();
    let mut impatient = options(&collector, token.clone(), dir.path(), "pc-09");
    impatient.approval_wait = Duration::ZERO;
    let error = enroll(&impatient)
        .await
        .expect_err("waits for approval")
        .to_string();
    assert!(error.contains("no approval"), "{error}");
    assert!(admin::list_hosts(&config.data_dir).unwrap().is_empty());
    assert!(!dir.path().join("agent.pem").exists());

    // A technician approves the request while the agent is waiting.
    let dir = tempfile::tempdir().unwrap();
    let mut patient = options(&collector, token, dir.path(), "pc-10");
    patient.approval_poll = Duration::from_millis(100);
    let waiting = tokio::spawn(async move { enroll(&patient).await });
    let data_dir = config.data_dir.clone();
    let request_id = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let pending = admin::pending(&data_dir).unwrap();
            if let Some(request) = pending.iter().find(|r| r.hostname == "pc-10") {
                return request.request_id.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the request shows in the pending list");
    admin::approve(&config.data_dir, &request_id).unwrap();
    let enrolled = waiting.await.unwrap().expect("enrolled after approval");
    assert_eq!(enrolled.agent_id, "pc-10");
    assert!(dir.path().join("agent.pem").exists());
    assert!(admin::pending(&config.data_dir)
        .unwrap()
        .iter()
        .all(|r| r.hostname != "pc-10"));
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_keeps_the_host_identity() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let token = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    let dir = tempfile::tempdir().unwrap();
    enroll(&options(&collector, token, dir.path(), "srv-01"))
        .await
        .unwrap();
    let files = agent_files(dir.path());
    let old_cert = std::fs::read_to_string(&files.cert).unwrap();

    let channel = vigil_tests::connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    vigil_agent::enroll::renew(channel, &files.cert, &files.key, "srv-01")
        .await
        .unwrap();
    let new_cert = std::fs::read_to_string(&files.cert).unwrap();
    assert_ne!(old_cert, new_cert, "a new certificate was written");

    // The new pair works and carries the same identity.
    let channel = vigil_tests::connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(5)).await;
    stream
        .send(batch(1, "system_uptime_seconds", &[], now_ms(), 1.0))
        .await;
    stream.next().await.unwrap().unwrap();
    let record = collector
        .store
        .host_record("srv-01")
        .unwrap()
        .expect("host record");
    assert_eq!(record["client"], "acme");
    drop(stream);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_host_is_cut_off_on_its_live_stream_and_refused_at_reconnect() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let token = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    let dir = tempfile::tempdir().unwrap();
    enroll(&options(&collector, token, dir.path(), "laptop-7"))
        .await
        .unwrap();
    let files = agent_files(dir.path());
    let channel = vigil_tests::connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    stream
        .send(batch(1, "system_uptime_seconds", &[], now_ms(), 1.0))
        .await;
    stream.next().await.unwrap().unwrap();

    admin::revoke_host(&config.data_dir, "laptop-7").unwrap();
    // The issue's promise: cut off within 5 s (the list reloads every second).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the live stream is closed within 5 s");
    let status = ended.expect_err("closed with a status");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    let refused = match vigil_tests::connect(collector.grpc, &files.ca, Some(&files)).await {
        Err(_) => true,
        Ok(channel) => match open_stream(channel).await {
            Err(_) => true,
            Ok(mut stream) => {
                stream.send(hello(1)).await;
                stream.next().await.is_err()
            }
        },
    };
    assert!(refused, "a revoked certificate is refused at the handshake");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_renews_its_certificate_when_two_thirds_of_its_life_have_passed() {
    let pki = Pki::new();
    let (mut collector, _config) = collector_with_enrollment(&pki).await;
    // Valid for 20 s after a 60 s backdate: two thirds of its life are already over.
    let files = pki.issue_agent_valid_for("agent", "kiosk-1", "acme", Duration::from_secs(20));
    assert!(vigil_agent::ship::renewal_due(&files.cert).unwrap());
    let old_cert = std::fs::read_to_string(&files.cert).unwrap();
    let agent = Agent::new(pki.agent_config(&files, collector.grpc, 1));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(agent.run(shutdown.clone()));
    let stored = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(IngestEvent::Stored { peer, .. }) = collector.events.recv().await {
                return peer;
            }
        }
    })
    .await
    .expect("the agent reports after renewing");
    assert_eq!(
        (stored.host.as_str(), stored.client.as_str()),
        ("kiosk-1", "acme")
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_ne!(std::fs::read_to_string(&files.cert).unwrap(), old_cert);
    assert!(
        !vigil_agent::ship::renewal_due(&files.cert).unwrap(),
        "the new certificate is fresh"
    );
    collector.stop().await;
}

#[tokio::test]
async fn a_token_of_another_client_cannot_take_over_an_enrolled_host() {
    let pki = Pki::new();
    let (collector, config) = collector_with_enrollment(&pki).await;
    let acme = create_token(&config, "acme", Duration::from_secs(3600), 1, false);
    let globex = create_token(&config, "globex", Duration::from_secs(3600), 1, false);
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let original = enroll(&options(&collector, acme, first.path(), "reception-pc"))
        .await
        .unwrap();
    // Same machine name, other client's token: refused, never renamed into a new identity.
    let error = enroll(&options(&collector, globex, second.path(), "reception-pc"))
        .await
        .expect_err("the name is taken")
        .to_string();
    assert!(error.contains("another --hostname"), "{error}");
    assert_eq!(
        (original.agent_id.as_str(), original.client.as_str()),
        ("reception-pc", "acme")
    );
    let hosts = admin::list_hosts(&config.data_dir).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(
        hosts[0].record.client, "acme",
        "the first host keeps its client"
    );
    collector.stop().await;
}
