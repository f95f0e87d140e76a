//! A raw agent for the disk-full interop test (`tests/interop/disk_full.sh`): sends batches
//! numbered 1..=N over mutual TLS, one sample each (value = the number, one second apart),
//! keeps every batch not yet acknowledged as an agent's spool does, and after a refusal
//! reconnects and resends from the oldest unacknowledged one. Writes its progress to a file
//! (`sent`, `acked`, `refusals`, `pending`, one `key: value` a line) so that the script can
//! tell when ingest refuses and when it resumes.
//!
//! ```text
//! cargo run -p vigil-collector --example numbered_sender -- --collector https://127.0.0.1:7443 \
//!     --cert agent.pem --key agent-key.pem --ca ca.pem --count 600 --rate 20 \
//!     --progress /tmp/progress --deadline-seconds 300
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::pb;
use vigil_proto::pb::collector_message::Body;

/// The series every batch writes to.
const METRIC: &str = "disk_full_probe";
/// The spool id this sender says hello with (the same across reconnects).
const SPOOL_ID: u64 = 4242;

struct Options {
    collector: String,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    count: u64,
    rate: u32,
    progress: PathBuf,
    deadline: Duration,
}

#[derive(Default)]
struct Progress {
    sent: u64,
    acked: u64,
    refusals: u64,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        collector: String::new(),
        cert: PathBuf::new(),
        key: PathBuf::new(),
        ca: PathBuf::new(),
        count: 600,
        rate: 20,
        progress: PathBuf::from("progress"),
        deadline: Duration::from_secs(300),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--collector" => options.collector = value.clone(),
            "--cert" => options.cert = value.clone().into(),
            "--key" => options.key = value.clone().into(),
            "--ca" => options.ca = value.clone().into(),
            "--count" => options.count = number()?,
            "--rate" => options.rate = number()?.clamp(1, 1000) as u32,
            "--progress" => options.progress = value.clone().into(),
            "--deadline-seconds" => options.deadline = Duration::from_secs(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.collector.is_empty() {
        return Err("--collector is required".into());
    }
    Ok(options)
}

fn write_progress(options: &Options, progress: &Progress) {
    let text = format!(
        "sent: {}\nacked: {}\nrefusals: {}\npending: {}\n",
        progress.sent,
        progress.acked,
        progress.refusals,
        progress.sent - progress.acked
    );
    let temporary = options.progress.with_extension("tmp");
    if std::fs::write(&temporary, text).is_ok() {
        let _ = std::fs::rename(&temporary, &options.progress);
    }
}

fn numbered_batch(seq: u64, first_ms: i64) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Batch(pb::Batch {
            seq,
            series: vec![pb::Series {
                name: METRIC.into(),
                labels: Vec::new(),
                samples: vec![pb::Sample {
                    timestamp_ms: first_ms + seq as i64 * 1000,
                    value: seq as f64,
                }],
            }],
            ..Default::default()
        })),
    }
}

/// `next_seq`: the number the next new batch gets; every batch sent so far has a lower one.
fn hello(next_seq: u64) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(pb::agent_message::Body::Hello(pb::Hello {
            inventory: Some(pb::Inventory {
                hostname: "disk-full-probe".into(),
                os_name: "probe".into(),
                agent_version: "numbered-sender".into(),
                cpu_cores: 1,
                ..Default::default()
            }),
            spool_id: SPOOL_ID,
            interval_seconds: 1,
            next_seq,
        })),
    }
}

/// One connection: hello, then every batch from `progress.acked + 1` on, one at a time.
/// Returns when everything is acknowledged, or with the reason the stream ended.
async fn session(
    endpoint: &Endpoint,
    options: &Options,
    progress: &mut Progress,
    first_ms: i64,
) -> Result<(), String> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let mut client = pb::ingest_client::IngestClient::new(channel);
    let (outbound, outbound_rx) = mpsc::channel(4);
    outbound
        .send(hello(progress.sent + 1))
        .await
        .map_err(|_| "send hello")?;
    let mut inbound = client
        .report(ReceiverStream::new(outbound_rx))
        .await
        .map_err(|status| format!("open stream: {}", status.message()))?
        .into_inner();
    let pause = Duration::from_secs(1) / options.rate;
    while progress.acked < options.count {
        let seq = progress.acked + 1;
        outbound
            .send(numbered_batch(seq, first_ms))
            .await
            .map_err(|_| "stream closed")?;
        progress.sent = progress.sent.max(seq);
        let reply = tokio::time::timeout(Duration::from_secs(30), inbound.message())
            .await
            .map_err(|_| "no answer within 30 s")?
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
            .ok_or("stream ended")?;
        match reply.body {
            Some(Body::Ack(pb::Ack { seq: acked })) if acked == seq => progress.acked = seq,
            other => return Err(format!("unexpected reply {other:?}")),
        }
        write_progress(options, progress);
        tokio::time::sleep(pause).await;
    }
    Ok(())
}

async fn run(options: Options) -> Result<Progress, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|error| format!("reading {}: {error}", path.display()))
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&options.ca)?))
        .identity(Identity::from_pem(
            read(&options.cert)?,
            read(&options.key)?,
        ))
        .domain_name("localhost");
    let endpoint = Endpoint::from_shared(options.collector.clone())
        .and_then(|endpoint| endpoint.tls_config(tls))
        .map_err(|error| format!("collector address: {error}"))?
        .connect_timeout(Duration::from_secs(5));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    // In the past, one second apart, so that no clock check refuses them.
    let first_ms = now_ms - (options.count as i64 + 60) * 1000;
    let started = Instant::now();
    let mut progress = Progress::default();
    write_progress(&options, &progress);
    while progress.acked < options.count {
        if started.elapsed() > options.deadline {
            return Err(format!(
                "deadline reached with {} of {} acknowledged",
                progress.acked, options.count
            ));
        }
        match session(&endpoint, &options, &mut progress, first_ms).await {
            Ok(()) => {}
            Err(reason) => {
                progress.refusals += 1;
                write_progress(&options, &progress);
                eprintln!(
                    "refused or cut off at batch {}: {reason}",
                    progress.acked + 1
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    write_progress(&options, &progress);
    Ok(progress)
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("numbered_sender: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(progress) => {
            println!(
                "sent: {}\nacked: {}\nrefusals: {}",
                progress.sent, progress.acked, progress.refusals
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("numbered_sender: {error}");
            ExitCode::FAILURE
        }
    }
}
