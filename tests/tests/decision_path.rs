//! One decision path from a sample to a page, end to end: a collector started by the real
//! `serve` code, agents over mutual TLS, the client contract `deploy/policies/dental-practice.toml`
//! exactly as shipped, and a recording webhook and SMTP server on loopback.
//!
//! Time is simulated: the collector's alert path (engine, contracts, notifier) reads a manual
//! clock that the test moves forward, so minutes of an outage pass in seconds and the
//! receivers note the simulated instant each message arrived at. Nothing here compares wall
//! clock durations; the real sleeps only pace the steps.

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post, Router};
use jiff::{civil, tz::TimeZone, Timestamp, ToSpan};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_collector::config::CollectorConfig;
use vigil_collector::notify::Clock;
use vigil_collector::policy::Policy;
use vigil_collector::serve::Collector;
use vigil_proto::pb;
use vigil_tests::*;

const MINUTE_MS: i64 = 60_000;
/// How long the test lets the collector's one-second evaluation run after moving the clock.
const PACE: Duration = Duration::from_millis(1_500);
/// The longest a receiver is waited for.
const DEADLINE: Duration = Duration::from_secs(60);

fn shipped_policy() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/policies/dental-practice.toml");
    std::fs::read_to_string(path).expect("deploy/policies/dental-practice.toml")
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

/// A recent weekday morning, 10:00 in Berlin, when the practice is open: the test's "now".
/// In the past, so that nothing the agents stamp with the real clock is from the future.
fn open_morning() -> Timestamp {
    let policy = Policy::parse(
        std::path::Path::new("dental-practice.toml"),
        &shipped_policy(),
    )
    .expect("the shipped policy is valid");
    let today = Timestamp::now().to_zoned_datetime(berlin()).date();
    (2..40)
        .map(|days_back| today.checked_sub(days_back.days()).unwrap())
        .filter(|date| {
            matches!(
                date.weekday(),
                civil::Weekday::Tuesday | civil::Weekday::Wednesday | civil::Weekday::Thursday
            )
        })
        .map(|date| berlin().to_timestamp(date.at(10, 0, 0, 0)).unwrap())
        .find(|&at| policy.calendar.is_open(at))
        .expect("an open weekday morning within 40 days")
}

/// The most recent Sunday before yesterday at `hour:minute` in Berlin.
fn recent_sunday(hour: i8, minute: i8) -> Timestamp {
    let today = Timestamp::now().to_zoned_datetime(berlin()).date();
    let date = (2..10)
        .map(|days_back| today.checked_sub(days_back.days()).unwrap())
        .find(|date| date.weekday() == civil::Weekday::Sunday)
        .unwrap()
        .at(hour, minute, 0, 0);
    berlin().to_timestamp(date).unwrap()
}

/// One message as a receiver got it, with the simulated instant it arrived.
#[derive(Debug, Clone)]
struct Received {
    at_ms: i64,
    alert: serde_json::Value,
}

/// Records every alert of every webhook body posted to it.
#[derive(Clone)]
struct Hook {
    clock: Clock,
    alerts: Arc<Mutex<Vec<Received>>>,
}

impl Hook {
    async fn start(clock: Clock) -> (Hook, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let hook = Hook {
            clock,
            alerts: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url)
    }

    fn alerts(&self, rule: &str) -> Vec<Received> {
        self.alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|received| received.alert["labels"]["alertname"] == rule)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, rule: &str, count: usize) -> Vec<Received> {
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE && self.alerts(rule).len() < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.alerts(rule)
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let at_ms = hook.clock.now_ms();
    for alert in json["alerts"].as_array().cloned().unwrap_or_default() {
        hook.alerts.lock().unwrap().push(Received { at_ms, alert });
    }
    StatusCode::OK
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone)]
struct Mail {
    data: String,
}

impl Mail {
    fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// A minimal SMTP server that accepts every mail.
#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<Mail>>>,
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
                self.mails.lock().unwrap().push(Mail { data });
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

    /// Mails whose subject contains `text`.
    fn mails_about(&self, text: &str) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|mail| mail.header("Subject").is_some_and(|s| s.contains(text)))
            .cloned()
            .collect()
    }

    async fn wait_for(&self, text: &str, count: usize) -> Vec<Mail> {
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE && self.mails_about(text).len() < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.mails_about(text)
    }
}

/// The collector config: the shipped contract, a webhook and a mail channel for everything,
/// and the engine judging every second. `rules` tunes the built-in rules.
fn config(pki: &Pki, hook_url: &str, smtp_port: u16, rules: &str) -> CollectorConfig {
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(pki.path("policies/dental-practice.toml"), shipped_policy()).unwrap();
    std::fs::write(pki.path("rules.toml"), rules).unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [alerts]\nrules = \"rules.toml\"\nevaluation_interval = \"1s\"\n\
         [policies]\ndir = \"policies\"\n\
         [notify]\nbackoff_min = \"1s\"\n\
         [notify.routing]\non_call = [\"hook\", \"mail\"]\nnormal = [\"hook\", \"mail\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook_url}\"\nhmac_key = \"test-key\"\n\
         [[notify.channel]]\nname = \"mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"plain\"\nfrom = \"Vigil <vigil@msp.example>\"\nto = [\"oncall@msp.example\"]\n"
    );
    let path = pki.path("collector.toml");
    std::fs::write(&path, text).unwrap();
    CollectorConfig::load(&path).expect("collector config")
}

/// A collector served by the real `serve` code, its alert path on `clock`.
struct Running {
    grpc: std::net::SocketAddr,
    events: tokio::sync::broadcast::Receiver<vigil_collector::ingest::IngestEvent>,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), vigil_collector::serve::ServeError>>,
}

impl Running {
    async fn start(config: &CollectorConfig, clock: Clock) -> Running {
        init();
        let shutdown = CancellationToken::new();
        let collector = Collector::bind_with_clock(config, shutdown.clone(), clock)
            .await
            .expect("collector binds");
        let grpc = collector.grpc_addr();
        let events = collector.events();
        let serving = tokio::spawn(collector.run());
        Running {
            grpc,
            events,
            shutdown,
            serving,
        }
    }

    /// Waits for an ingest event `wanted` picks.
    async fn wait_event(
        &mut self,
        wanted: impl Fn(&vigil_collector::ingest::IngestEvent) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) if wanted(&event) => return true,
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                _ => return false,
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.serving
            .await
            .expect("collector task")
            .expect("collector stops cleanly");
    }
}

/// Moves `clock` to `until` in steps of `step`, letting the collector evaluate at each.
async fn advance(clock: &Clock, until: Timestamp, step: Duration) {
    for _ in 0..10_000 {
        let now = clock.now_ms();
        if now >= until.as_millisecond() {
            break;
        }
        let by = (until.as_millisecond() - now).min(step.as_millis() as i64);
        clock.advance(Duration::from_millis(by as u64));
        tokio::time::sleep(PACE).await;
    }
}

/// Starts the server's real agent, waits until the collector stored its samples, and kills
/// it (no goodbye). Returns when the collector saw the stream end.
async fn run_then_kill_agent(pki: &Pki, collector: &mut Running, files: &AgentFiles) {
    // The agent runs on a runtime of its own, so that killing it ends every task it has,
    // its gRPC connection included, without a goodbye.
    let agent = vigil_agent::run::Agent::new(pki.agent_config(files, collector.grpc, 1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(agent.run(CancellationToken::new()));
    assert!(
        collector
            .wait_event(|event| matches!(
                event,
                vigil_collector::ingest::IngestEvent::Stored { peer, .. } if peer.host == "dental-srv01"
            ))
            .await,
        "the agent's samples are stored"
    );
    runtime.shutdown_background();
    assert!(
        collector
            .wait_event(|event| matches!(
                event,
                vigil_collector::ingest::IngestEvent::Disconnected { peer } if peer.host == "dental-srv01"
            ))
            .await,
        "the collector sees the killed agent's stream end"
    );
}

fn severity(received: &Received) -> String {
    received.alert["labels"]["severity"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_agent_is_critical_then_an_emergency_at_five_minutes_of_silence_in_one_thread(
) {
    let pki = Pki::new();
    let start = open_morning();
    let clock = Clock::manual(start.as_millisecond());
    let (hook, url) = Hook::start(clock.clone()).await;
    let (smtp, smtp_port) = Smtp::start().await;
    // The engine calls a host silent after a minute (three of its sampling intervals, as
    // it measures them); the contract makes five minutes of silence an emergency.
    let config = config(
        &pki,
        &url,
        smtp_port,
        "[rules.HostSilent]\nafter = \"1m\"\n",
    );
    let mut collector = Running::start(&config, clock.clone()).await;
    let files = pki.issue_agent("srv", "dental-srv01", "smile-dental");

    run_then_kill_agent(&pki, &mut collector, &files).await;
    let silence_began = clock.now_ms();

    advance(&clock, start + 4.minutes(), Duration::from_secs(30)).await;
    let critical = hook.wait_for("HostSilent", 1).await;
    assert_eq!(critical.len(), 1, "one critical message: {critical:?}");
    assert_eq!(severity(&critical[0]), "critical", "{critical:?}");
    assert!(critical[0].at_ms < silence_began + 5 * MINUTE_MS);

    advance(&clock, start + 6.minutes(), Duration::from_secs(30)).await;
    let both = hook.wait_for("HostSilent", 2).await;
    assert_eq!(both.len(), 2, "critical, then the emergency: {both:?}");
    let emergency = &both[1];
    assert_eq!(severity(emergency), "emergency", "{both:?}");
    // At five minutes of silence, not five minutes after the engine fired (ten).
    let silent_for = emergency.at_ms - silence_began;
    assert!(
        (5 * MINUTE_MS..10 * MINUTE_MS).contains(&silent_for),
        "the emergency went out after {} s of silence",
        silent_for / 1000
    );
    // The same alert: one fingerprint, and the reasons name the contract's rule.
    assert_eq!(emergency.alert["fingerprint"], both[0].alert["fingerprint"]);
    assert!(
        emergency.alert.to_string().contains("server unreachable"),
        "{}",
        emergency.alert
    );

    // In one mail thread: the emergency answers the critical mail.
    let mails = smtp.wait_for("silent for", 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let first_id = mails[0].header("Message-ID").expect("Message-ID");
    assert!(mails[0].header("Subject").unwrap().contains("[critical]"));
    assert!(mails[1].header("Subject").unwrap().contains("[emergency]"));
    assert_eq!(mails[1].header("In-Reply-To"), Some(first_id.clone()));
    assert!(mails[1].header("References").unwrap().contains(&first_id));
    // The emergency is dated by the contract's decision: five minutes after the last sample.
    let emergency_id = mails[1].header("Message-ID").unwrap();
    let decided_ms: i64 = emergency_id
        .trim_matches(|c| c == '<' || c == '>')
        .split('@')
        .next()
        .and_then(|local| local.rsplit('.').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no instant in {emergency_id}"));
    assert_eq!(decided_ms - silence_began, 5 * MINUTE_MS, "{emergency_id}");
    collector.stop().await;
}

/// A raw mTLS stream as the server's agent, to send filesystem samples a real disk would not.
async fn send_filesystem(
    collector: &Running,
    files: &AgentFiles,
    seq: &mut u64,
    samples: &[(i64, f64)],
) {
    let channel = connect(collector.grpc, &files.ca, Some(files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(1)).await;
    for chunk in samples.chunks(2_000) {
        *seq += 1;
        let series = |name: &str, state: Option<&str>, value: &dyn Fn(f64) -> f64| pb::Series {
            name: name.into(),
            labels: std::iter::once(("mountpoint", "D:"))
                .chain(state.map(|state| ("state", state)))
                .map(|(name, value)| pb::Label {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
            samples: chunk
                .iter()
                .map(|&(timestamp_ms, used)| pb::Sample {
                    timestamp_ms,
                    value: value(used),
                })
                .collect(),
        };
        let batch = pb::AgentMessage {
            body: Some(pb::agent_message::Body::Batch(pb::Batch {
                seq: *seq,
                series: vec![
                    series("system_filesystem_limit_bytes", None, &|_| 1e12),
                    series("system_filesystem_usage_bytes", Some("used"), &|used| {
                        used * 1e12
                    }),
                ],
                ..Default::default()
            })),
        };
        stream.send(batch).await;
        let reply = stream.next().await.unwrap().unwrap();
        assert!(
            matches!(reply.body, Some(pb::collector_message::Body::Ack(_))),
            "{reply:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_disk_filling_fast_is_an_emergency_by_the_forecast_within_rule_with_the_forecast_in_the_message(
) {
    let pki = Pki::new();
    let start = open_morning();
    let clock = Clock::manual(start.as_millisecond());
    let (hook, url) = Hook::start(clock.clone()).await;
    let (smtp, smtp_port) = Smtp::start().await;
    let config = config(&pki, &url, smtp_port, "");
    let collector = Running::start(&config, clock.clone()).await;
    let files = pki.issue_agent("srv", "dental-srv01", "smile-dental");

    // Three quiet days at 40 %, then the X-ray archive starts filling the disk at 5 % an
    // hour: six hours ago it began, so it is at 70 % and full in about six hours.
    let onset = start.as_millisecond() - 6 * 60 * MINUTE_MS;
    let used =
        |at_ms: i64| 0.40 + 0.05 * ((at_ms - onset).max(0) as f64 / (60.0 * MINUTE_MS as f64));
    let history: Vec<(i64, f64)> = (0..=3 * 24 * 60)
        .map(|minute| start.as_millisecond() - 3 * 24 * 60 * MINUTE_MS + minute * MINUTE_MS)
        .map(|at| (at, used(at)))
        .collect();
    let mut seq = 0;
    send_filesystem(&collector, &files, &mut seq, &history).await;

    // Time passes with the disk filling on; the forecast is confirmed and goes out.
    for _ in 0..40 {
        if !hook.alerts("FilesystemFullForecast").is_empty() {
            break;
        }
        clock.advance(Duration::from_secs(5 * 60));
        let now = clock.now_ms();
        send_filesystem(&collector, &files, &mut seq, &[(now, used(now))]).await;
        tokio::time::sleep(PACE).await;
    }
    let forecast = hook.wait_for("FilesystemFullForecast", 1).await;
    assert_eq!(forecast.len(), 1, "{forecast:?}");
    let alert = &forecast[0].alert;
    assert_eq!(severity(&forecast[0]), "emergency", "{alert}");
    let text = alert.to_string();
    assert!(
        text.contains("server disk full within a day"),
        "decided by the contract's forecast_within rule: {text}"
    );
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("full in ~") && summary.contains("range"),
        "the forecast is in the message: {summary}"
    );
    // And in words a technician can act on, for the client by name.
    let forecast_text = alert["annotations"]["forecast"]
        .as_str()
        .unwrap_or_default();
    assert!(
        forecast_text.starts_with("full in ~") && forecast_text.contains("90 % interval"),
        "{alert}"
    );
    assert_eq!(
        alert["annotations"]["client_name"],
        "Smile Dental Care, Dr. Weber & Partners (smile-dental)"
    );
    let mails = smtp.wait_for("full in ~", 1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].header("Subject").unwrap().contains("[emergency]"));

    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_pattern_on_the_server_is_a_message_of_kind_log_pattern_with_the_matched_line() {
    let pki = Pki::new();
    let start = open_morning();
    let clock = Clock::manual(start.as_millisecond());
    let (hook, url) = Hook::start(clock.clone()).await;
    let (smtp, smtp_port) = Smtp::start().await;
    let config = config(&pki, &url, smtp_port, "");
    let mut collector = Running::start(&config, clock.clone()).await;
    let files = pki.issue_agent("srv", "dental-srv01", "smile-dental");

    // The server's real agent watches the practice software's log for one pattern.
    let log = pki.path("pms-server.log");
    std::fs::write(&log, "2026-12-01 08:00:00 INFO started\n").unwrap();
    let agent_config = pki.agent_config_file(&files, collector.grpc, 1);
    let mut text = std::fs::read_to_string(&agent_config).unwrap();
    text.push_str(&format!(
        "[[checks.log]]\nname = \"pms\"\npath = {log:?}\npatterns = {{ database_corrupt = \"database corrupt\" }}\n"
    ));
    std::fs::write(&agent_config, text).unwrap();
    let agent = vigil_agent::run::Agent::new(
        vigil_agent::config::AgentConfig::load(&agent_config).expect("agent config"),
    );
    let stop_agent = CancellationToken::new();
    let agent = tokio::spawn(agent.run(stop_agent.clone()));
    let counts_zero = |event: &vigil_collector::ingest::IngestEvent| match event {
        vigil_collector::ingest::IngestEvent::Stored { batch, .. } => batch
            .series
            .iter()
            .any(|series| series.name == "log_matches_total"),
        _ => false,
    };
    assert!(
        collector.wait_event(counts_zero).await,
        "the agent reports the log's count"
    );

    // A line the pattern matches is written; the next batch counts it and carries it.
    let line =
        "2026-12-01 10:02:11 ERROR database corrupt: page 7 checksum mismatch in Appointments";
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes()).unwrap();
    drop(file);

    let seen = hook.wait_for("LogPatternSeen", 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let alert = &seen[0].alert;
    assert_eq!(alert["labels"]["kind"], "log_pattern", "{alert}");
    assert_eq!(alert["labels"]["host"], "dental-srv01");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("pms") && summary.contains("database_corrupt"),
        "{summary}"
    );
    assert_eq!(alert["annotations"]["log_line"], line, "{alert}");
    assert_eq!(
        alert["annotations"]["log_file"],
        log.display().to_string(),
        "{alert}"
    );
    let mails = smtp.wait_for("log pms", 1).await;
    assert_eq!(mails.len(), 1, "{:?}", smtp.mails_about(""));
    // Quoted-printable: soft line breaks joined.
    let body = mails[0].data.replace("=\r\n", "");
    assert!(
        body.contains(&format!("Log line: \"{line}\" in {}", log.display())),
        "the mail shows the line and its file: {body}"
    );

    stop_agent.cancel();
    agent
        .await
        .expect("agent task")
        .expect("the agent stops cleanly");
    collector.stop().await;
}

/// Kills the server's agent at 02:05 on a Sunday, inside the contract's "server backup and
/// reboot" window (Sundays 02:00–03:00); `back_at` brings it back (a raw stream as the same
/// agent) at that instant, if given. Returns the HostSilent firing messages and when they
/// arrived.
async fn a_server_silent_in_its_maintenance_window(back_at: Option<Timestamp>) -> Vec<Received> {
    let pki = Pki::new();
    let start = recent_sunday(2, 5);
    let clock = Clock::manual(start.as_millisecond());
    let (hook, url) = Hook::start(clock.clone()).await;
    let (_smtp, smtp_port) = Smtp::start().await;
    let config = config(
        &pki,
        &url,
        smtp_port,
        "[rules.HostSilent]\nafter = \"1m\"\n",
    );
    let mut collector = Running::start(&config, clock.clone()).await;
    let files = pki.issue_agent("srv", "dental-srv01", "smile-dental");
    run_then_kill_agent(&pki, &mut collector, &files).await;

    let window_end = recent_sunday(3, 0);
    if let Some(back_at) = back_at {
        // Back after the reboot: the agent reports every minute from then on.
        advance(&clock, back_at, Duration::from_secs(5 * 60)).await;
        let channel = connect(collector.grpc, &files.ca, Some(&files))
            .await
            .unwrap();
        let mut stream = open_stream(channel).await.unwrap();
        stream.send(hello(99)).await;
        for seq in 1..=200 {
            if clock.now_ms() > (window_end + 2.minutes()).as_millisecond() {
                break;
            }
            stream
                .send(batch(
                    seq,
                    "system_uptime_seconds",
                    &[],
                    clock.now_ms(),
                    seq as f64 * 60.0,
                ))
                .await;
            let _ = stream.next().await;
            clock.advance(Duration::from_secs(60));
            tokio::time::sleep(PACE).await;
        }
    }
    advance(
        &clock,
        window_end + 2.minutes(),
        Duration::from_secs(5 * 60),
    )
    .await;

    // A sure sign that the collector judged everything up to now: the practice database
    // stops (an emergency at once), and its message arrives after whatever came before.
    let channel = connect(collector.grpc, &files.ca, Some(&files))
        .await
        .unwrap();
    let mut stream = open_stream(channel).await.unwrap();
    stream.send(hello(100)).await;
    stream
        .send(batch(
            1,
            "service_up",
            &[("service", "MSSQLSERVER")],
            clock.now_ms(),
            0.0,
        ))
        .await;
    let _ = stream.next().await;
    clock.advance(Duration::from_secs(10 * 60));
    stream
        .send(batch(
            2,
            "service_up",
            &[("service", "MSSQLSERVER")],
            clock.now_ms(),
            0.0,
        ))
        .await;
    let _ = stream.next().await;
    let marker = hook.wait_for("ServiceDown", 1).await;
    assert_eq!(marker.len(), 1, "the marker alert arrives");
    if back_at.is_none() {
        // Still down at the window's end: its message is due; wait for it to arrive.
        hook.wait_for("HostSilent", 1).await;
    }
    let silent = hook
        .alerts("HostSilent")
        .into_iter()
        .filter(|received| received.alert["status"] == "firing")
        .collect();
    collector.stop().await;
    silent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_still_down_when_its_maintenance_window_ends_is_sent_then_and_not_during_it() {
    let silent = a_server_silent_in_its_maintenance_window(None).await;
    assert_eq!(silent.len(), 1, "{silent:?}");
    let window_end = recent_sunday(3, 0).as_millisecond();
    assert!(
        silent[0].at_ms >= window_end,
        "sent at {}, during the window",
        silent[0].at_ms
    );
    // Silent for almost an hour by then: the contract's emergency, paged after hours, and
    // the message says how long it has been, not how long it was when the engine fired.
    assert_eq!(severity(&silent[0]), "emergency", "{silent:?}");
    let summary = silent[0].alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("silent for ") && !summary.contains("silent for 5 min:"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_back_before_its_maintenance_window_ends_is_never_sent() {
    let silent = a_server_silent_in_its_maintenance_window(Some(recent_sunday(2, 40))).await;
    assert!(silent.is_empty(), "{silent:?}");
}

/// Vigil's own problems reach the MSP like any alert: a policy file broken on a running
/// collector, and a channel that keeps failing (a webhook nobody listens at), each arrive
/// at the working channel as kind `vigil_health`; mending the file resolves its alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_stops_loading_and_a_channel_that_keeps_failing_are_alerts_for_the_msp() {
    let pki = Pki::new();
    let start = open_morning();
    let clock = Clock::manual(start.as_millisecond());
    let (hook, url) = Hook::start(clock.clone()).await;
    // A port nothing listens at: every attempt is refused, and retried.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(pki.path("policies/dental-practice.toml"), shipped_policy()).unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\ncert = \"collector.pem\"\nkey = \"collector-key.pem\"\nclient_ca = \"ca.pem\"\n\
         [alerts]\nevaluation_interval = \"1s\"\n\
         [policies]\ndir = \"policies\"\n\
         [notify]\nbackoff_min = \"1s\"\nbackoff_max = \"2s\"\nattempts = 20\n\
         [notify.routing]\non_call = [\"hook\", \"broken\"]\nnormal = [\"hook\", \"broken\"]\n\
         [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\nhmac_key = \"test-key\"\n\
         [[notify.channel]]\nname = \"broken\"\ntype = \"webhook\"\nurl = \"http://{closed}/hook\"\nhmac_key = \"test-key\"\n"
    );
    std::fs::write(pki.path("collector.toml"), text).unwrap();
    let config = CollectorConfig::load(&pki.path("collector.toml")).unwrap();
    let collector = Running::start(&config, clock.clone()).await;

    // Someone saves a contract with a typo while the collector runs.
    let broken = pki.path("policies/acme.toml");
    std::fs::write(
        &broken,
        "client = \"acme\"\ntime_zone = \"Europe/Nowhere\"\n",
    )
    .unwrap();
    let policy_alerts = hook.wait_for("PolicyLoadFailed", 1).await;
    assert_eq!(policy_alerts.len(), 1, "{policy_alerts:?}");
    let alert = &policy_alerts[0].alert;
    assert_eq!(alert["labels"]["kind"], "vigil_health", "{alert}");
    assert!(
        alert["labels"]["file"]
            .as_str()
            .is_some_and(|file| file.ends_with("acme.toml")),
        "{alert}"
    );
    assert!(
        alert.to_string().contains("no client contract applies"),
        "{alert}"
    );

    // The broken channel's attempts at that alert fail again and again as time passes.
    for _ in 0..30 {
        if !hook.alerts("ChannelFailing").is_empty() {
            break;
        }
        clock.advance(Duration::from_secs(5));
        tokio::time::sleep(PACE).await;
    }
    let channel_alerts = hook.wait_for("ChannelFailing", 1).await;
    assert_eq!(channel_alerts.len(), 1, "{channel_alerts:?}");
    let alert = &channel_alerts[0].alert;
    assert_eq!(alert["labels"]["channel"], "broken", "{alert}");
    assert_eq!(alert["labels"]["kind"], "vigil_health", "{alert}");

    // The file is mended: its alert resolves.
    std::fs::remove_file(&broken).unwrap();
    let policy_alerts = hook.wait_for("PolicyLoadFailed", 2).await;
    assert_eq!(policy_alerts.len(), 2, "{policy_alerts:?}");
    assert_eq!(
        policy_alerts[1].alert["status"], "resolved",
        "{policy_alerts:?}"
    );
    collector.stop().await;
}
