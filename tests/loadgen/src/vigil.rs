//! One simulated agent on Vigil's real protocol: its own certificate, its own mutual-TLS
//! gRPC `Report` stream, a hello with an inventory, batches numbered from 1 within a spool
//! id, a window of unacknowledged batches resent after a reconnect, and a goodbye at the
//! end, as `vigil-agent`'s shipper does (agent/src/ship.rs).
//!
//! It counts what it sent, what was acknowledged (an ack covers every batch up to its
//! sequence number) and what was rejected, and records each batch's time from first send
//! to ack.

use crate::catalog::HostSeries;
use crate::certs::AgentIdentity;
use crate::fleet::{AgentCounts, FleetContext};
use crate::schedule::{now_ms, start_offset, AgentClock, TickQueue};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::pb;
use vigil_proto::pb::agent_message::Body;
use vigil_proto::pb::collector_message::Body as Reply;

/// Batches sent and not yet acknowledged, at most; the agent's own window.
const WINDOW: usize = 64;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every agent's connection shares.
#[derive(Debug)]
pub struct FleetTls {
    pub url: String,
    pub ca_pem: String,
    pub server_name: Option<String>,
}

/// A batch on its way. Its series are not kept: they are made again from the timestamp if
/// the batch has to be resent.
struct InFlight {
    timestamp_ms: i64,
    samples: u64,
    first_sent: Instant,
}

/// Runs simulated agent `index` until the run's drain deadline, and returns its counts.
pub async fn run_agent(
    index: usize,
    identity: AgentIdentity,
    tls: Arc<FleetTls>,
    context: Arc<FleetContext>,
) -> AgentCounts {
    let settings = &context.settings;
    let mut counts = AgentCounts {
        host: identity.host.clone(),
        client: identity.client.clone(),
        spool_id: rand::random::<u64>() | 1,
        ..AgentCounts::default()
    };
    let mut host = HostSeries::new(index, settings.series);
    let names: Vec<&'static str> = host.specs.iter().map(|spec| spec.name).collect();
    let labels: Vec<Vec<pb::Label>> = host
        .specs
        .iter()
        .map(|spec| {
            spec.labels
                .iter()
                .map(|(name, value)| pb::Label {
                    name: name.to_string(),
                    value: value.clone(),
                })
                .collect()
        })
        .collect();
    let windows = host.windows;
    let interval_seconds = settings.interval.as_secs_f64();
    let mut make_batch = |seq: u64, timestamp_ms: i64| pb::Batch {
        seq,
        series: names
            .iter()
            .zip(host.values_at(timestamp_ms, interval_seconds))
            .zip(&labels)
            .map(|((name, &value), labels)| pb::Series {
                name: name.to_string(),
                labels: labels.clone(),
                samples: vec![pb::Sample {
                    timestamp_ms,
                    value,
                }],
            })
            .collect(),
        ..Default::default()
    };
    // The first send is at this agent's offset into the interval, after the run starts.
    let clock = AgentClock::new(
        context.started,
        start_offset(index, settings.spread),
        settings.interval,
    );
    let mut queue =
        TickQueue::with_backlog(clock.first_grid_ms, settings.interval, settings.backlog);
    tokio::time::sleep_until(clock.first_send).await;

    let endpoint = match endpoint(&tls, &identity) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            counts.last_error = Some(error);
            return counts;
        }
    };
    let mut in_flight: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut next_seq = 1u64;
    let mut backoff = BACKOFF_FIRST;
    let mut finished = false;

    // One pass per connection; bounded by the drain deadline.
    while !finished && Instant::now() < context.drain_until {
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(error) => {
                counts.last_error = Some(format!("connecting: {}", error_chain(&error)));
                counts.reconnects += 1;
                context.live.reconnects.fetch_add(1, Ordering::Relaxed);
                sleep_backoff(&mut backoff, &context).await;
                continue;
            }
        };
        let (outbound, outbound_rx) = mpsc::channel::<pb::AgentMessage>(WINDOW + 2);
        // The channel is empty and longer than the window plus hello and goodbye: sends
        // into it below never wait.
        let _ = outbound.try_send(hello(
            &identity,
            counts.spool_id,
            next_seq,
            windows,
            settings.interval,
        ));
        for (&seq, flight) in &in_flight {
            let _ = outbound.try_send(pb::AgentMessage {
                body: Some(Body::Batch(make_batch(seq, flight.timestamp_ms))),
            });
            counts.resent_batches += 1;
        }
        let mut client = pb::ingest_client::IngestClient::new(channel)
            .max_encoding_message_size(vigil_proto::limits::MAX_MESSAGE_BYTES)
            .max_decoding_message_size(vigil_proto::limits::MAX_MESSAGE_BYTES);
        let mut inbound = match client.report(ReceiverStream::new(outbound_rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                counts.last_error = Some(format!("opening the stream: {}", status.message()));
                counts.reconnects += 1;
                context.live.reconnects.fetch_add(1, Ordering::Relaxed);
                sleep_backoff(&mut backoff, &context).await;
                continue;
            }
        };
        context.live.connected.fetch_add(1, Ordering::Relaxed);
        let broken = loop {
            let now = Instant::now();
            queue.catch_up(&clock, now, context.live_until);
            let live = now < context.live_until;
            // Fill the window with queued ticks (after the live part too: what an agent has
            // spooled, it sends).
            while in_flight.len() < WINDOW {
                let Some(timestamp_ms) = queue.pop() else {
                    break;
                };
                let batch = make_batch(next_seq, timestamp_ms);
                let samples = batch.series.len() as u64;
                next_seq += 1;
                let seq = batch.seq;
                if outbound
                    .try_send(pb::AgentMessage {
                        body: Some(Body::Batch(batch)),
                    })
                    .is_err()
                {
                    break;
                }
                counts.sent_batches += 1;
                counts.sent_samples += samples;
                context
                    .live
                    .sent_samples
                    .fetch_add(samples, Ordering::Relaxed);
                in_flight.insert(
                    seq,
                    InFlight {
                        timestamp_ms,
                        samples,
                        first_sent: Instant::now(),
                    },
                );
            }
            if !live && in_flight.is_empty() && queue.is_empty() {
                // Everything sent is answered: say goodbye and close our side.
                let _ = outbound.try_send(pb::AgentMessage {
                    body: Some(Body::Goodbye(pb::Goodbye {
                        reason: pb::goodbye::Reason::ServiceStop as i32,
                    })),
                });
                finished = true;
                break false;
            }
            tokio::select! {
                // A tick of the grid: queue its timestamp (the batch is made when sent).
                // The next tick is due, or the live part is over (then no new ticks: what
                // is queued is still sent).
                _ = tokio::time::sleep_until(queue.next_live_send(&clock).min(context.live_until)), if live => {}
                // Waited long enough for acks that are not coming.
                _ = tokio::time::sleep_until(context.drain_until) => {
                    finished = true;
                    break false;
                }
                reply = inbound.message() => match reply {
                    Ok(Some(message)) => {
                        backoff = BACKOFF_FIRST;
                        handle_reply(message, &mut in_flight, &mut counts, &context);
                    }
                    Ok(None) => {
                        counts.last_error = Some("the collector closed the stream".into());
                        break true;
                    }
                    Err(status) => {
                        counts.last_error = Some(format!("stream ended: {}: {}", status.code(), status.message()));
                        break true;
                    }
                },
            }
        };
        context.live.connected.fetch_sub(1, Ordering::Relaxed);
        if broken {
            counts.reconnects += 1;
            context.live.reconnects.fetch_add(1, Ordering::Relaxed);
            sleep_backoff(&mut backoff, &context).await;
            continue;
        }
        // Close our side and let the collector end the stream (bounded).
        drop(outbound);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(message)) = inbound.message().await {
                handle_reply(message, &mut in_flight, &mut counts, &context);
            }
        })
        .await;
    }
    counts.unacknowledged_batches = in_flight.len() as u64;
    counts.unsent_ticks = queue.len() as u64;
    counts
}

fn handle_reply(
    message: pb::CollectorMessage,
    in_flight: &mut BTreeMap<u64, InFlight>,
    counts: &mut AgentCounts,
    context: &FleetContext,
) {
    match message.body {
        Some(Reply::Ack(ack)) => {
            counts.last_acked_seq = counts.last_acked_seq.max(ack.seq);
            let rest = in_flight.split_off(&(ack.seq + 1));
            let acked = std::mem::replace(in_flight, rest);
            let now = Instant::now();
            for flight in acked.into_values() {
                if context.settings.record_acked {
                    counts.acked_timestamps_ms.push(flight.timestamp_ms);
                }
                counts.acked_batches += 1;
                counts.acked_samples += flight.samples;
                context
                    .live
                    .acked_samples
                    .fetch_add(flight.samples, Ordering::Relaxed);
                context.record_latency(now - flight.first_sent);
            }
        }
        Some(Reply::Reject(reject)) => {
            if let Some(flight) = in_flight.remove(&reject.seq) {
                counts.rejected_batches += 1;
                counts.rejected_samples += flight.samples;
                context
                    .live
                    .rejected_samples
                    .fetch_add(flight.samples, Ordering::Relaxed);
            }
            counts.first_reject_reason.get_or_insert(reject.reason);
        }
        // A simulated agent's spool lives only in this run and is never restored or
        // cloned, so a conflict means two runs share a spool id: count it as an error.
        Some(Reply::SpoolConflict(conflict)) => {
            counts.last_error = Some(format!(
                "spool conflict: the collector holds batches up to {} of spool {}",
                conflict.stored_seq, conflict.spool_id
            ));
        }
        // An interval pushed by the collector: the run keeps its own schedule.
        Some(Reply::Config(_)) | None => {}
    }
}

fn endpoint(tls: &FleetTls, identity: &AgentIdentity) -> Result<Endpoint, String> {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    Endpoint::from_shared(tls.url.clone())
        .and_then(|endpoint| endpoint.tls_config(config))
        .map(|endpoint| endpoint.connect_timeout(CONNECT_TIMEOUT))
        .map_err(|error| format!("collector URL '{}': {}", tls.url, error_chain(&error)))
}

fn hello(
    identity: &AgentIdentity,
    spool_id: u64,
    next_seq: u64,
    windows: bool,
    interval: Duration,
) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(Body::Hello(pb::Hello {
            inventory: Some(pb::Inventory {
                hostname: identity.host.clone(),
                os_name: if windows {
                    "Windows"
                } else {
                    "Debian GNU/Linux"
                }
                .into(),
                os_version: if windows { "11 (26100)" } else { "12" }.into(),
                kernel_version: if windows { "26100" } else { "6.1.0-28-amd64" }.into(),
                cpu_model: "Intel(R) Core(TM) i5-12500".into(),
                cpu_cores: 6,
                memory_bytes: 16 * 1024 * 1024 * 1024,
                disks: vec![pb::Disk {
                    mountpoint: if windows { "C:\\" } else { "/" }.into(),
                    device: "nvme0n1".into(),
                    filesystem: if windows { "NTFS" } else { "ext4" }.into(),
                    total_bytes: 512 * 1024 * 1024 * 1024,
                }],
                agent_version: concat!("loadgen-", env!("CARGO_PKG_VERSION")).into(),
                boot_time_unix_seconds: now_ms() / 1000 - 86_400,
                architecture: "x86_64".into(),
            }),
            spool_id,
            interval_seconds: interval.as_secs() as u32,
            next_seq,
        })),
    }
}

/// Waits out the current backoff (never past the drain deadline) and doubles it.
async fn sleep_backoff(backoff: &mut Duration, context: &FleetContext) {
    let jitter = rand::random_range(0.5..1.5);
    let until = (Instant::now() + backoff.mul_f64(jitter)).min(context.drain_until);
    tokio::time::sleep_until(until).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// An error with its sources, on one line (tonic's transport errors hide the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded by the error's own chain.
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
