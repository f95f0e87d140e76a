//! One agent's `Report` stream: hello, then batches in, acks out.
//!
//! The order of work for a batch is the durability promise: check the sequence number,
//! pace the host, validate, check the host's series budget, check it is not revoked, store
//! (flushed to disk), hand it to the alert engine and presence (waiting while one is
//! behind), check again that it is not revoked, then ack. A refused batch gets a
//! `Reject` naming the limit, and the stream goes on; a storage failure ends the stream with
//! `UNAVAILABLE`, so the agent keeps the batch and sends it again after reconnecting.
//!
//! The hello says which spool the batches come from and the next sequence number it will
//! use. A spool that the store holds more of than it says it ever made (restored from a
//! backup or a snapshot, or cloned) gets a `SpoolConflict` instead of acks for batches that
//! would be taken for duplicates and never stored.

use super::counters::IngestCounters;
use super::identity::PeerIdentity;
use super::limits::{series_key, HostBudget, HostBudgets, SeriesRefusal, Slowed, SERIES_WINDOW};
use super::{EventBus, IngestEvent, IngestSettings};
use crate::enroll::revocation::RevocationList;
use crate::store::{AppendOutcome, SeriesSamples, Store, WriterId};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use vigil_proto::model::{
    AgentConfig, AgentMessage, Batch, CollectorMessage, Hello, SpoolConflict,
};
use vigil_proto::{pb, ValidationError};

/// The first message must arrive within this long of the stream opening.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// How far past the next sequence number the hello announced a batch may be numbered:
/// an agent makes at most one batch a second, and this leaves room for anything else. A
/// number further out cannot come from the spool, and would make every later batch of the
/// spool look like a duplicate.
const SEQ_SLACK: u64 = 100_000;

type Outbound = mpsc::Sender<Result<pb::CollectorMessage, Status>>;

/// The status a revoked host's stream ends with; the agent recognises "revoked" in it.
pub fn revoked_status() -> Status {
    Status::permission_denied(
        "this host's certificate is revoked; enroll the agent again ('vigil-agent enroll --token …' with a new join token)",
    )
}

pub struct AgentSession {
    pub peer: PeerIdentity,
    pub store: Store,
    pub settings: IngestSettings,
    pub revocations: RevocationList,
    pub counters: Arc<IngestCounters>,
    pub budget: Arc<Mutex<HostBudget>>,
    pub events: EventBus,
    /// Where batches, samples, acknowledgement latency and connected agents are counted.
    pub telemetry: crate::telemetry::Telemetry,
    /// Cancelled when the collector closes the connection the stream is on.
    pub connection_closed: CancellationToken,
    /// Keeps the connection from counting as idle while the stream runs.
    pub _stream: super::connections::StreamGuard,
    pub shutdown: CancellationToken,
}

/// What the session knows of the spool behind the stream.
struct SpoolView {
    writer: WriterId,
    /// The next seq the hello announced; 0 when an older agent did not say.
    next_seq: u64,
    /// The newest seq the store held for this spool when the stream opened.
    stored_at_hello: u64,
    hello_at: tokio::time::Instant,
}

impl SpoolView {
    /// The highest seq a batch on this stream may carry now.
    fn highest_possible_seq(&self) -> u64 {
        let elapsed = self.hello_at.elapsed().as_secs();
        let base = if self.next_seq > 0 {
            self.next_seq
        } else {
            self.stored_at_hello
        };
        base.saturating_add(SEQ_SLACK)
            .saturating_add(elapsed.saturating_mul(100))
    }
}

/// How a batch ended the stream, if it did.
enum Next {
    Continue,
    Stop,
}

impl AgentSession {
    pub async fn run(self, mut inbound: tonic::Streaming<pb::AgentMessage>, outbound: Outbound) {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(message))) => match AgentMessage::try_from(message) {
                Ok(AgentMessage::Hello(hello)) => hello,
                Ok(_) => {
                    return refuse(&outbound, "the first message of a stream must be a hello")
                        .await;
                }
                Err(error) => return refuse(&outbound, &error.to_string()).await,
            },
            Ok(Ok(None)) => return,
            Ok(Err(status)) => {
                tracing::info!(%status, "stream failed before hello");
                return;
            }
            Err(_) => return refuse(&outbound, "no hello within 30 s").await,
        };
        let writer = WriterId {
            host: self.peer.host.clone(),
            spool_id: hello.spool_id,
        };
        let stored = match self.blocking(move |store| store.last_seq(&writer)).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, "reading the spool's last stored batch failed");
                let _ = outbound
                    .send(Err(Status::unavailable(
                        "collector storage is failing; retry later",
                    )))
                    .await;
                return;
            }
        };
        let spool = SpoolView {
            writer: WriterId {
                host: self.peer.host.clone(),
                spool_id: hello.spool_id,
            },
            next_seq: hello.next_seq,
            stored_at_hello: stored,
            hello_at: tokio::time::Instant::now(),
        };
        if hello.next_seq > 0 && stored >= hello.next_seq {
            self.spool_conflict(&spool, stored, &outbound).await;
            return;
        }
        if let Err(error) = self.record_hello(&hello).await {
            tracing::error!(%error, "storing the host's inventory failed");
            let _ = outbound
                .send(Err(Status::unavailable(
                    "collector storage is failing; retry later",
                )))
                .await;
            return;
        }
        self.seed_series_budget().await;
        // Counted until the stream ends, whatever ends it.
        let _connected = self.telemetry.agent_connected();
        tracing::info!(
            spool_id = hello.spool_id,
            next_seq = hello.next_seq,
            stored_seq = stored,
            agent_version = %hello.inventory.agent_version,
            "agent connected"
        );
        self.publish(IngestEvent::Connected {
            peer: self.peer.clone(),
            inventory: hello.inventory.clone(),
        })
        .await;
        if let Some(wanted) = self.settings.agent_interval {
            let wanted = wanted.as_secs() as u32;
            if wanted != hello.interval_seconds {
                let config = CollectorMessage::Config(AgentConfig {
                    interval_seconds: wanted,
                });
                if send(&outbound, &config).await.is_err() {
                    return;
                }
            }
        }

        let closing_time = tokio::time::Instant::now() + self.settings.max_connection_age;
        let mut revocation_changes = self.revocations.subscribe();
        loop {
            let message = tokio::select! {
                // Shutting down: stop taking batches; what was acked is already on disk.
                _ = self.shutdown.cancelled() => break,
                // The connection was closed under the stream (revoked, too old).
                _ = self.connection_closed.cancelled() => break,
                // Certificates are checked at the handshake: old streams end so the agent
                // reconnects and is checked again.
                _ = tokio::time::sleep_until(closing_time) => {
                    tracing::info!("closing a stream that reached its maximum age");
                    break;
                }
                _ = revocation_changes.changed() => {
                    if self.revocations.is_revoked(&self.peer) {
                        self.end_revoked(&outbound).await;
                        break;
                    }
                    continue;
                }
                message = inbound.message() => message,
            };
            let message = match message {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    // Undecodable or over the size limit: tell the agent why before closing.
                    tracing::warn!(%status, "stream from agent failed");
                    let reason = format!("message refused: {}", status.message());
                    let _ = outbound.send(Err(Status::new(status.code(), reason))).await;
                    break;
                }
            };
            let next = match message.body {
                Some(pb::agent_message::Body::Batch(batch)) => {
                    self.handle_batch(&spool, batch, &outbound).await
                }
                body => self.handle_other(pb::AgentMessage { body }).await,
            };
            if matches!(next, Next::Stop) {
                break;
            }
        }
        self.publish(IngestEvent::Disconnected {
            peer: self.peer.clone(),
        })
        .await;
    }

    async fn handle_batch(&self, spool: &SpoolView, wire: pb::Batch, outbound: &Outbound) -> Next {
        let received = std::time::Instant::now();
        let seq = wire.seq;
        if seq == 0 || seq > spool.highest_possible_seq() {
            IngestCounters::add(&self.counters.batches_refused_impossible_seq);
            let reason = if spool.next_seq > 0 {
                format!(
                    "batch {seq}: sequence number impossible for spool {}, which said its next batch is {}; the agent's spool is damaged or this is not an agent",
                    spool.writer.spool_id, spool.next_seq
                )
            } else {
                format!(
                    "batch {seq}: sequence number impossible for spool {}, of which batch {} is the newest stored; the agent's spool is damaged or this is not an agent",
                    spool.writer.spool_id, spool.stored_at_hello
                )
            };
            return self.reject(seq, reason, outbound).await;
        }
        let n_samples: usize = wire.series.iter().map(|series| series.samples.len()).sum();
        match HostBudgets::pace(&self.budget, n_samples).await {
            None => {}
            Some(Slowed::Batches) => {
                IngestCounters::add(&self.counters.batches_slowed_batch_rate);
                tracing::debug!(
                    seq,
                    "slowing a host that sends too many batches (grpc.max_batches_per_second)"
                );
            }
            Some(Slowed::Samples) => {
                IngestCounters::add(&self.counters.batches_slowed_sample_rate);
                tracing::debug!(
                    seq,
                    n_samples,
                    "slowing a host that sends too many samples (limits.max_samples_per_second)"
                );
            }
        }
        let checked = Batch::try_from(wire)
            .inspect_err(|_| IngestCounters::add(&self.counters.batches_refused_invalid))
            .and_then(|batch| self.check_clock(batch));
        let batch = match checked {
            Ok(batch) => batch,
            Err(error) => return self.reject(seq, error.to_string(), outbound).await,
        };
        let series = self.label(&batch);
        let keys: Vec<u64> = series
            .iter()
            .map(|series| series_key(&series.labels))
            .collect();
        let limit = self.settings.limits.max_series_per_host;
        if let Err(SeriesRefusal { known, new, limit }) =
            HostBudgets::admit_series(&self.budget, &keys, limit)
        {
            IngestCounters::add(&self.counters.batches_refused_series_per_host);
            let reason = format!(
                "batch {seq}: host '{}' has written {known} distinct series in the last {} and this batch adds {new}, over limits.max_series_per_host = {limit}; check the agent's configuration for a label that changes every tick",
                self.peer.host,
                humantime::format_duration(SERIES_WINDOW)
            );
            return self.reject(seq, reason, outbound).await;
        }
        if self.revocations.is_revoked(&self.peer) {
            IngestCounters::add(&self.counters.batches_refused_revoked);
            self.end_revoked(outbound).await;
            return Next::Stop;
        }
        let writer = spool.writer.clone();
        let outcome = self
            .blocking(move |store| store.append(&writer, seq, &series))
            .await;
        match outcome {
            Ok(AppendOutcome::Stored { n_samples }) => {
                self.telemetry.batch_stored(n_samples);
                self.publish(IngestEvent::Stored {
                    peer: self.peer.clone(),
                    batch: Arc::new(batch),
                })
                .await;
            }
            Ok(AppendOutcome::Duplicate) if spool.next_seq > 0 && seq >= spool.next_seq => {
                // This spool made the batch after its hello, yet the store has its number:
                // another copy of the spool (a clone) is writing under the same id. An ack
                // would drop the batch.
                let stored = self
                    .blocking({
                        let writer = spool.writer.clone();
                        move |store| store.last_seq(&writer)
                    })
                    .await
                    .unwrap_or(seq);
                self.spool_conflict(spool, stored, outbound).await;
                return Next::Stop;
            }
            Ok(AppendOutcome::Duplicate) => {
                tracing::debug!(seq, "duplicate batch acknowledged again");
                self.telemetry.batch_duplicate();
                self.publish(IngestEvent::Duplicate {
                    peer: self.peer.clone(),
                    seq,
                })
                .await;
            }
            Err(error) => {
                tracing::error!(seq, %error, "storing batch failed");
                let _ = outbound
                    .send(Err(Status::unavailable(
                        "collector storage is failing; the batch was not stored, retry later",
                    )))
                    .await;
                return Next::Stop;
            }
        }
        // Revoked while the batch was being stored: it is on disk, but a revoked host gets
        // no more acks.
        if self.revocations.is_revoked(&self.peer) {
            IngestCounters::add(&self.counters.batches_refused_revoked);
            self.end_revoked(outbound).await;
            return Next::Stop;
        }
        match send(outbound, &CollectorMessage::Ack { seq }).await {
            Ok(()) => {
                self.telemetry.batch_acknowledged(received.elapsed());
                Next::Continue
            }
            Err(()) => Next::Stop,
        }
    }

    /// Refuses one batch for good; the stream goes on.
    async fn reject(&self, seq: u64, reason: String, outbound: &Outbound) -> Next {
        tracing::warn!(seq, %reason, "refusing batch");
        self.publish(IngestEvent::Rejected {
            peer: self.peer.clone(),
            seq,
            reason: reason.clone(),
        })
        .await;
        match send(outbound, &CollectorMessage::Reject { seq, reason }).await {
            Ok(()) => Next::Continue,
            Err(()) => Next::Stop,
        }
    }

    async fn end_revoked(&self, outbound: &Outbound) {
        tracing::warn!("closing the stream of a revoked host");
        let _ = outbound.send(Err(revoked_status())).await;
    }

    /// Tells the agent to start a new spool, and ends the stream.
    async fn spool_conflict(&self, spool: &SpoolView, stored: u64, outbound: &Outbound) {
        IngestCounters::add(&self.counters.spool_conflicts);
        tracing::warn!(
            spool_id = spool.writer.spool_id,
            stored_seq = stored,
            next_seq = spool.next_seq,
            "the collector holds more of this spool than the agent says it made (state restored from a backup or snapshot, or a cloned machine); asking the agent to start a new spool"
        );
        let conflict = CollectorMessage::SpoolConflict(SpoolConflict {
            spool_id: spool.writer.spool_id,
            stored_seq: stored,
            next_seq: spool.next_seq,
        });
        let _ = send(outbound, &conflict).await;
    }

    /// After a restart, counts the series the store holds for this host in the budget's
    /// window, once per host.
    async fn seed_series_budget(&self) {
        let seeded = self.budget.lock().unwrap_or_else(|p| p.into_inner()).seeded;
        if seeded {
            return;
        }
        let selector: crate::store::Selector =
            match format!("{{host={:?}}}", self.peer.host).parse() {
                Ok(selector) => selector,
                Err(_) => return HostBudgets::seed(&self.budget, []),
            };
        let end_ms = now_ms() + self.settings.max_clock_skew.as_millis() as i64;
        let start_ms = now_ms() - SERIES_WINDOW.as_millis() as i64;
        match self
            .blocking(move |store| store.select(&selector, start_ms, end_ms))
            .await
        {
            Ok(series) => {
                HostBudgets::seed(&self.budget, series.iter().map(|s| series_key(&s.labels)))
            }
            Err(error) => {
                tracing::warn!(%error, "counting the host's series in the store failed; its series budget starts empty");
                HostBudgets::seed(&self.budget, []);
            }
        }
    }

    async fn handle_other(&self, message: pb::AgentMessage) -> Next {
        match AgentMessage::try_from(message) {
            Ok(AgentMessage::Goodbye(reason)) => {
                tracing::info!(?reason, "agent is going away");
                self.publish(IngestEvent::Goodbye {
                    peer: self.peer.clone(),
                    reason,
                })
                .await;
                let host = self.peer.host.clone();
                let result = self
                    .blocking(move |store| {
                        let mut record = store.host_record(&host)?.unwrap_or_default();
                        record["last_goodbye"] = serde_json::json!({
                            "reason": reason,
                            "at_ms": now_ms(),
                        });
                        store.put_host_record(&host, &record)
                    })
                    .await;
                if result.is_err() {
                    tracing::warn!("recording the agent's goodbye failed");
                }
            }
            Ok(AgentMessage::Hello(_)) => {
                tracing::warn!("ignoring a second hello on the same stream");
            }
            Ok(AgentMessage::Batch(_)) => {}
            Err(error) => {
                tracing::warn!(%error, "ignoring a malformed message");
            }
        }
        Next::Continue
    }

    /// Refuses batches from a clock far in the future (they would sort after everything
    /// real and hide the host's actual state) and samples older than the raw retention
    /// (the next retention pass would delete them; a clock set to 1971 is a broken clock).
    fn check_clock(&self, batch: Batch) -> Result<Batch, ValidationError> {
        let now = now_ms();
        let newest_allowed = now + self.settings.max_clock_skew.as_millis() as i64;
        let oldest_allowed = now - self.settings.max_sample_age.as_millis() as i64;
        for series in &batch.series {
            if let Some(sample) = series
                .samples
                .iter()
                .find(|s| s.timestamp_ms > newest_allowed)
            {
                IngestCounters::add(&self.counters.batches_refused_future);
                return Err(ValidationError::new(format!(
                    "batch {}: series {}: sample at {} ms is more than {} s ahead of the collector's clock; check the agent machine's time",
                    batch.seq,
                    series.name,
                    sample.timestamp_ms,
                    self.settings.max_clock_skew.as_secs()
                )));
            }
            if let Some(sample) = series
                .samples
                .iter()
                .find(|s| s.timestamp_ms < oldest_allowed)
            {
                IngestCounters::add(&self.counters.batches_refused_too_old);
                return Err(ValidationError::new(format!(
                    "batch {}: series {}: sample at {} ms is older than store.raw_retention = {} and would be deleted at once; check the agent machine's time",
                    batch.seq,
                    series.name,
                    sample.timestamp_ms,
                    humantime::format_duration(self.settings.max_sample_age)
                )));
            }
        }
        Ok(batch)
    }

    /// Adds the identity labels from the certificate. The payload cannot carry them: the
    /// protocol layer refused any batch that tried.
    fn label(&self, batch: &Batch) -> Vec<SeriesSamples> {
        batch
            .series
            .iter()
            .map(|series| {
                let mut labels = series.labels.clone();
                labels.insert("__name__", series.name.clone());
                labels.insert("host", self.peer.host.clone());
                labels.insert("client", self.peer.client.clone());
                SeriesSamples {
                    labels,
                    samples: series.samples.clone(),
                }
            })
            .collect()
    }

    async fn record_hello(&self, hello: &Hello) -> Result<(), String> {
        let host = self.peer.host.clone();
        let record = serde_json::json!({
            "client": self.peer.client,
            "inventory": hello.inventory,
            "interval_seconds": hello.interval_seconds,
            "connected_at_ms": now_ms(),
        });
        self.blocking(move |store| store.put_host_record(&host, &record))
            .await
    }

    /// Runs store work off the async threads; a panic there becomes an error.
    async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(join_error) => Err(format!("the store work panicked: {join_error}")),
        }
    }

    /// Hands the event to the engine and presence (waiting while one is behind: the batch
    /// is acknowledged after this returns) and to any watcher.
    async fn publish(&self, event: IngestEvent) {
        self.events.publish(event).await;
    }
}

async fn send(outbound: &Outbound, message: &CollectorMessage) -> Result<(), ()> {
    outbound
        .send(Ok(pb::CollectorMessage::from(message)))
        .await
        .map_err(|_| ())
}

/// Ends the stream with a fix-me error: resending the same thing will not help.
async fn refuse(outbound: &Outbound, reason: &str) {
    tracing::warn!(%reason, "refusing stream");
    let _ = outbound.send(Err(Status::invalid_argument(reason))).await;
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
