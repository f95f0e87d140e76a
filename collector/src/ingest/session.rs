//! One agent's `Report` stream: hello, then batches in, acks out.
//!
//! The order of work for a batch is the durability promise: validate, store (flushed to
//! disk), then ack. A refused batch gets a `Reject` with the reason and the stream goes on;
//! a storage failure ends the stream with `UNAVAILABLE`, so the agent keeps the batch and
//! sends it again after reconnecting.

use super::identity::PeerIdentity;
use super::limits::{BatchRate, SeriesBudget};
use super::{IngestEvent, IngestSettings};
use crate::enroll::revocation::{RevocationList, RELOAD_INTERVAL};
use crate::store::{AppendOutcome, SeriesSamples, Store, WriterId};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use vigil_proto::model::{AgentConfig, AgentMessage, Batch, CollectorMessage, Hello};
use vigil_proto::{pb, ValidationError};

/// The first message must arrive within this long of the stream opening.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

type Outbound = mpsc::Sender<Result<pb::CollectorMessage, Status>>;

pub struct AgentSession {
    pub peer: PeerIdentity,
    pub store: Store,
    pub settings: IngestSettings,
    pub revocations: RevocationList,
    pub events: broadcast::Sender<IngestEvent>,
    pub shutdown: CancellationToken,
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
        if let Err(error) = self.record_hello(&hello).await {
            tracing::error!(%error, "storing the host's inventory failed");
            let _ = outbound
                .send(Err(Status::unavailable(
                    "collector storage is failing; retry later",
                )))
                .await;
            return;
        }
        tracing::info!(
            spool_id = hello.spool_id,
            agent_version = %hello.inventory.agent_version,
            "agent connected"
        );
        self.publish(IngestEvent::Connected {
            peer: self.peer.clone(),
            inventory: hello.inventory.clone(),
        });
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
        let mut rate = BatchRate::new(self.settings.limits);
        let mut series_budget = SeriesBudget::default();
        let mut revocation_check = tokio::time::interval(RELOAD_INTERVAL);
        loop {
            let message = tokio::select! {
                // Shutting down: stop taking batches; what was acked is already on disk.
                _ = self.shutdown.cancelled() => break,
                // Certificates are checked at the handshake only: old streams are closed so
                // the agent reconnects and is checked again.
                _ = tokio::time::sleep_until(closing_time) => {
                    tracing::info!("closing a stream that reached its maximum age");
                    break;
                }
                _ = revocation_check.tick() => {
                    if self.revocations.is_revoked(&self.peer) {
                        tracing::warn!("closing the stream of a revoked host");
                        let _ = outbound
                            .send(Err(Status::permission_denied("this host's certificate is revoked")))
                            .await;
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
            let keep_going = match message.body {
                Some(pb::agent_message::Body::Batch(batch)) => {
                    let waited = rate.admit().await;
                    if !waited.is_zero() {
                        tracing::debug!(?waited, "slowing an agent that sends too fast");
                    }
                    self.handle_batch(&writer, batch, &mut series_budget, &outbound)
                        .await
                }
                body => self.handle_other(pb::AgentMessage { body }).await,
            };
            if !keep_going {
                break;
            }
        }
        self.publish(IngestEvent::Disconnected {
            peer: self.peer.clone(),
        });
    }

    /// Returns whether the stream should go on.
    async fn handle_batch(
        &self,
        writer: &WriterId,
        wire: pb::Batch,
        series_budget: &mut SeriesBudget,
        outbound: &Outbound,
    ) -> bool {
        let seq = wire.seq;
        let limit = self.settings.limits.max_series_per_host;
        let checked = Batch::try_from(wire)
            .and_then(|batch| self.check_clock(batch))
            .and_then(|batch| {
                series_budget
                    .admit(&batch, limit)
                    .map(|()| batch)
                    .map_err(ValidationError::new)
            });
        let batch = match checked {
            Ok(batch) => batch,
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(seq, %reason, "refusing batch");
                self.publish(IngestEvent::Rejected {
                    peer: self.peer.clone(),
                    seq,
                    reason: reason.clone(),
                });
                return send(outbound, &CollectorMessage::Reject { seq, reason })
                    .await
                    .is_ok();
            }
        };
        let series = self.label(&batch);
        let store = self.store.clone();
        let writer = writer.clone();
        let outcome =
            tokio::task::spawn_blocking(move || store.append(&writer, seq, &series)).await;
        match outcome {
            Ok(Ok(AppendOutcome::Stored { .. })) => {
                self.publish(IngestEvent::Stored {
                    peer: self.peer.clone(),
                    batch: Arc::new(batch),
                });
            }
            Ok(Ok(AppendOutcome::Duplicate)) => {
                tracing::debug!(seq, "duplicate batch acknowledged again");
                self.publish(IngestEvent::Duplicate {
                    peer: self.peer.clone(),
                    seq,
                });
            }
            Ok(Err(error)) => {
                tracing::error!(seq, %error, "storing batch failed");
                let _ = outbound
                    .send(Err(Status::unavailable(
                        "collector storage is failing; the batch was not stored, retry later",
                    )))
                    .await;
                return false;
            }
            Err(join_error) => {
                tracing::error!(seq, %join_error, "storing batch panicked");
                let _ = outbound
                    .send(Err(Status::internal(
                        "collector failed while storing the batch",
                    )))
                    .await;
                return false;
            }
        }
        send(outbound, &CollectorMessage::Ack { seq }).await.is_ok()
    }

    async fn handle_other(&self, message: pb::AgentMessage) -> bool {
        match AgentMessage::try_from(message) {
            Ok(AgentMessage::Goodbye(reason)) => {
                tracing::info!(?reason, "agent is going away");
                self.publish(IngestEvent::Goodbye {
                    peer: self.peer.clone(),
                    reason,
                });
                let store = self.store.clone();
                let host = self.peer.host.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut record = store.host_record(&host)?.unwrap_or_default();
                    record["last_goodbye"] = serde_json::json!({
                        "reason": reason,
                        "at_ms": now_ms(),
                    });
                    store.put_host_record(&host, &record)
                })
                .await;
                if !matches!(result, Ok(Ok(()))) {
                    tracing::warn!("recording the agent's goodbye failed");
                }
                true
            }
            Ok(AgentMessage::Hello(_)) => {
                tracing::warn!("ignoring a second hello on the same stream");
                true
            }
            Ok(AgentMessage::Batch(_)) => true,
            Err(error) => {
                tracing::warn!(%error, "ignoring a malformed message");
                true
            }
        }
    }

    /// Refuses batches from a clock far in the future: they would sort after everything
    /// real and hide the host's actual state.
    fn check_clock(&self, batch: Batch) -> Result<Batch, ValidationError> {
        let limit = now_ms() + self.settings.max_clock_skew.as_millis() as i64;
        for series in &batch.series {
            if let Some(sample) = series.samples.iter().find(|s| s.timestamp_ms > limit) {
                return Err(ValidationError::new(format!(
                    "batch {}: series {}: sample at {} ms is more than {} s ahead of the collector's clock; check the agent machine's time",
                    batch.seq,
                    series.name,
                    sample.timestamp_ms,
                    self.settings.max_clock_skew.as_secs()
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
        let store = self.store.clone();
        let host = self.peer.host.clone();
        let record = serde_json::json!({
            "client": self.peer.client,
            "inventory": hello.inventory,
            "interval_seconds": hello.interval_seconds,
            "connected_at_ms": now_ms(),
        });
        match tokio::task::spawn_blocking(move || store.put_host_record(&host, &record)).await {
            Ok(stored) => stored.map_err(|error| error.to_string()),
            Err(join_error) => Err(join_error.to_string()),
        }
    }

    fn publish(&self, event: IngestEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
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
