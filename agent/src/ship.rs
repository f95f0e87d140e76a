//! Shipping: one long-lived `Report` stream to the collector over mutual TLS.
//!
//! The shipper sends a hello, then every batch in the [`Spool`] the collector has not yet
//! acknowledged (a window at a time), and releases batches as acks come back. When the
//! stream breaks it reconnects with exponential backoff and full jitter, and starts again
//! from the oldest unacknowledged batch; the collector drops any it already has.
//!
//! When the machine is about to sleep ([`Power`]) it says goodbye with the reason "sleep",
//! closes the stream and connects again on resume.
//!
//! A collector that holds more of this spool than the spool ever made (the state folder
//! was restored from a backup or a snapshot, or the machine is a clone) answers the hello
//! with a spool conflict: the shipper starts a new spool holding the same batches and sends
//! them all again. A revoked certificate is recognised in the collector's refusal, said
//! once with the fix, and retried only every few minutes — or at once when the certificate
//! file is replaced (the agent was enrolled again).
//!
//! It only ever reads data from the collector: an ack, a reject, a new interval, or a
//! spool conflict.

use crate::service::power::{Power, PowerState};
use crate::service::stop::StopReason;
use crate::spool::Spool;
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::limits::MAX_MESSAGE_BYTES;
use vigil_proto::model::{AgentMessage, CollectorMessage, GoodbyeReason, Hello, Inventory};
use vigil_proto::pb;
use vigil_proto::pb::ingest_client::IngestClient;

/// Batches sent and not yet acknowledged, at most.
const WINDOW: usize = 64;
/// How long to wait for outstanding acks when shutting down.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// How long to wait for the collector to take the goodbye before the machine sleeps; the
/// system gives a service about two seconds.
const SLEEP_DRAIN_DEADLINE: Duration = Duration::from_millis(1500);
/// A resume that never comes (a sleep another program vetoed, a lost signal) is assumed
/// after this much of the agent's own running time.
const RESUME_FALLBACK: Duration = Duration::from_secs(120);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a revoked agent tries again: re-enrolling replaces its certificate, and it
/// should then report within minutes, without knocking every half second until then.
const REVOKED_RETRY: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("reading {what} '{path}': {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("collector address {url:?}: {source}")]
    Address {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("connecting to {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("collector {url} ended the stream: {status}")]
    Stream { url: String, status: tonic::Status },
    #[error("collector {url} sent a message that makes no sense: {reason}")]
    Protocol { url: String, reason: String },
}

impl ShipError {
    /// Whether the collector told us something resending will not fix (bad certificate,
    /// refused stream); still retried, but logged as an error an operator must see.
    pub fn needs_attention(&self) -> bool {
        match self {
            Self::ReadFile { .. } | Self::Address { .. } => true,
            Self::Stream { status, .. } => matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::PermissionDenied
                    | tonic::Code::Unauthenticated
                    | tonic::Code::FailedPrecondition
            ),
            Self::Connect { .. } | Self::Protocol { .. } => false,
        }
    }

    /// Whether the collector refused this agent's certificate as revoked.
    pub fn is_revoked(&self) -> bool {
        matches!(self, Self::Stream { status, .. }
            if status.code() == tonic::Code::PermissionDenied
                && status.message().contains("revoked"))
    }
}

/// Where and how to reach the collector.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    pub collector_url: String,
    pub server_name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How a stream ended without an error.
enum StreamEnd {
    Shutdown,
    /// The machine is going to sleep; the goodbye is said.
    Asleep,
    ClosedByCollector,
    /// The certificate was renewed; reconnect at once to use it.
    Renewed,
    /// The collector held more of the spool than it made; a new spool was started and is
    /// sent from its first batch.
    NewSpool,
}

pub struct Shipper {
    pub config: ShipConfig,
    pub spool: Arc<Spool>,
    pub inventory: Inventory,
    /// The interval the sampler runs with; the collector may change it.
    pub interval: watch::Sender<Duration>,
    /// Why the agent stops, for the Goodbye; set by whoever cancels the shutdown token.
    pub stop_reason: StopReason,
    /// Sleep and resume, as the service glue hears of them.
    pub power: Power,
}

impl Shipper {
    /// Ships until `shutdown`, then says goodbye and waits briefly for the last acks.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        let mut power = self.power.subscribe();
        // Whether the revocation was already said; it is said once, not at every retry.
        let mut revocation_said = false;
        loop {
            let result = self.stream_once(&shutdown, &mut power, &mut failures).await;
            let mut delay = None;
            match result {
                Ok(StreamEnd::Shutdown) => return,
                Ok(StreamEnd::Asleep) => {
                    if !self.wait_for_resume(&shutdown, &mut power).await {
                        return;
                    }
                    failures = 0;
                    continue;
                }
                Ok(StreamEnd::ClosedByCollector) => {
                    tracing::info!("collector closed the stream; reconnecting");
                }
                Ok(StreamEnd::Renewed) | Ok(StreamEnd::NewSpool) => {
                    revocation_said = false;
                    continue;
                }
                Err(error) if error.is_revoked() => {
                    if !revocation_said {
                        tracing::error!(
                            cert = %self.config.cert.display(),
                            collector = %self.config.collector_url,
                            "this agent's certificate is revoked: the collector will not take its reports until it is enrolled again; run 'vigil-agent enroll --token <new join token>' on this machine (a technician creates the token with 'vigil-collector token create'); until then the agent tries again every 5 minutes, and at once when its certificate file is replaced"
                        );
                        revocation_said = true;
                    }
                    delay = Some(revoked_retry_delay());
                }
                Err(error) if error.needs_attention() => {
                    tracing::error!(%error, "shipping to the collector failed")
                }
                Err(error) => tracing::warn!(%error, "shipping to the collector failed"),
            }
            failures = failures.saturating_add(1);
            let waiting_for_enrollment = delay.is_some();
            let delay = delay.unwrap_or_else(|| backoff_delay(failures));
            tracing::info!(
                retry_in = %humantime::format_duration(round_to_millis(delay)),
                queued_batches = self.spool.len(),
                "will reconnect"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
                // Enrolled again while waiting: the new certificate is tried at once.
                _ = file_changed(&self.config.cert), if waiting_for_enrollment => {
                    tracing::info!(cert = %self.config.cert.display(), "the certificate file changed; reconnecting");
                }
                _ = sleep_notice(&mut power) => {
                    // No stream to say goodbye on.
                    self.power.goodbye_said();
                    if !self.wait_for_resume(&shutdown, &mut power).await {
                        return;
                    }
                    failures = 0;
                }
            }
        }
    }

    /// With no stream open, waits until the machine has resumed; false if the agent is
    /// stopping meanwhile.
    async fn wait_for_resume(
        &self,
        shutdown: &CancellationToken,
        power: &mut watch::Receiver<PowerState>,
    ) -> bool {
        tracing::info!(
            queued_batches = self.spool.len(),
            "the machine is going to sleep; shipping resumes when it wakes"
        );
        let resumed = async {
            // The sender lives in `self.power`, so this only ends at a resume.
            let _ = power.wait_for(|state| *state == PowerState::Awake).await;
        };
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = resumed => {
                tracing::info!("the machine woke up; reconnecting");
                true
            }
            _ = tokio::time::sleep(RESUME_FALLBACK) => {
                tracing::warn!("no resume was announced, but the agent is running; reconnecting");
                self.power.resumed();
                true
            }
        }
    }

    async fn connect(&self) -> Result<Channel, ShipError> {
        let read = |what, path: &PathBuf| {
            std::fs::read(path).map_err(|source| ShipError::ReadFile {
                what,
                path: path.clone(),
                source,
            })
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(
                "CA certificate",
                &self.config.ca,
            )?))
            .identity(Identity::from_pem(
                read("agent certificate", &self.config.cert)?,
                read("agent key", &self.config.key)?,
            ))
            .domain_name(self.config.server_name.clone());
        let url = &self.config.collector_url;
        let endpoint = Endpoint::from_shared(url.clone())
            .and_then(|endpoint| endpoint.tls_config(tls))
            .map_err(|source| ShipError::Address {
                url: url.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        endpoint
            .connect()
            .await
            .map_err(|source| ShipError::Connect {
                url: url.clone(),
                source,
            })
    }

    async fn stream_once(
        &self,
        shutdown: &CancellationToken,
        power: &mut watch::Receiver<PowerState>,
        failures: &mut u32,
    ) -> Result<StreamEnd, ShipError> {
        let url = self.config.collector_url.clone();
        let channel = tokio::select! {
            _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
            _ = sleep_notice(power) => {
                self.power.goodbye_said();
                return Ok(StreamEnd::Asleep);
            }
            channel = self.connect() => channel?,
        };
        match renewal_due(&self.config.cert) {
            Ok(false) => {}
            Ok(true) => {
                let renewed = crate::enroll::renew(
                    channel.clone(),
                    &self.config.cert,
                    &self.config.key,
                    &self.inventory.hostname,
                )
                .await;
                match renewed {
                    Ok(()) => {
                        tracing::info!(cert = %self.config.cert.display(), "certificate renewed");
                        return Ok(StreamEnd::Renewed);
                    }
                    // The old certificate still works until it expires; try again next time.
                    Err(error) => tracing::warn!(%error, "renewing the certificate failed"),
                }
            }
            Err(error) => tracing::warn!(%error, "cannot tell when the certificate expires"),
        }
        let mut client = IngestClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (outbound, outbound_rx) = mpsc::channel::<pb::AgentMessage>(WINDOW);
        let hello = AgentMessage::Hello(Hello {
            inventory: self.inventory.clone(),
            spool_id: self.spool.spool_id(),
            interval_seconds: self.interval.borrow().as_secs() as u32,
            next_seq: self.spool.next_seq(),
        });
        // The channel is empty and WINDOW long: this cannot block.
        let _ = outbound.send(pb::AgentMessage::from(&hello)).await;
        let response = tokio::select! {
            _ = shutdown.cancelled() => return Ok(StreamEnd::Shutdown),
            _ = sleep_notice(power) => {
                self.power.goodbye_said();
                return Ok(StreamEnd::Asleep);
            }
            response = client.report(ReceiverStream::new(outbound_rx)) => response,
        };
        let mut inbound = response
            .map_err(|status| ShipError::Stream {
                url: url.clone(),
                status,
            })?
            .into_inner();
        tracing::info!(collector = %url, queued_batches = self.spool.len(), "connected");

        let mut newest = self.spool.subscribe();
        // Everything still in the spool is unacknowledged: start from the oldest.
        let mut last_sent: u64 = 0;
        let mut last_acked: u64 = 0;
        let mut acked_this_stream = false;
        loop {
            // Fill the window.
            let in_flight = last_sent.saturating_sub(last_acked) as usize;
            if in_flight < WINDOW {
                let room = WINDOW - in_flight;
                for batch in self.spool.batches_after(last_sent, room) {
                    let message = pb::AgentMessage::from(&AgentMessage::Batch(batch.clone()));
                    if prost::Message::encoded_len(&message) > MAX_MESSAGE_BYTES {
                        tracing::error!(
                            seq = batch.seq,
                            "batch is too large to send; discarding it"
                        );
                        self.spool.discard(batch.seq);
                        continue;
                    }
                    last_sent = batch.seq;
                    if outbound.send(message).await.is_err() {
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let reason = self.stop_reason.get();
                    self.drain(outbound, inbound, &url, reason, DRAIN_DEADLINE).await;
                    return Ok(StreamEnd::Shutdown);
                }
                _ = sleep_notice(power) => {
                    self.drain(outbound, inbound, &url, GoodbyeReason::Sleep, SLEEP_DRAIN_DEADLINE).await;
                    self.power.goodbye_said();
                    return Ok(StreamEnd::Asleep);
                }
                changed = newest.changed() => {
                    // The spool outlives the shipper, so this only fails while shutting down.
                    if changed.is_err() {
                        return Ok(StreamEnd::Shutdown);
                    }
                }
                message = inbound.message() => {
                    let message = match message {
                        Ok(Some(message)) => message,
                        Ok(None) => return Ok(StreamEnd::ClosedByCollector),
                        Err(status) => return Err(ShipError::Stream { url, status }),
                    };
                    match CollectorMessage::try_from(message) {
                        Ok(CollectorMessage::Ack { seq }) => {
                            self.spool.ack_off_thread(seq).await;
                            last_acked = last_acked.max(seq);
                            if !acked_this_stream {
                                // The collector is taking data again: start backoff afresh.
                                acked_this_stream = true;
                                *failures = 0;
                            }
                        }
                        Ok(CollectorMessage::Reject { seq, reason }) => {
                            tracing::error!(seq, %reason, "collector refused a batch; it is dropped");
                            self.spool.discard(seq);
                            last_acked = last_acked.max(seq);
                        }
                        Ok(CollectorMessage::Config(config)) => {
                            let interval = Duration::from_secs(u64::from(config.interval_seconds));
                            tracing::info!(interval = %humantime::format_duration(interval), "collector set the collection interval");
                            self.interval.send_replace(interval);
                        }
                        Ok(CollectorMessage::SpoolConflict(conflict)) => {
                            return self.start_new_spool(conflict, &url);
                        }
                        Err(error) => {
                            return Err(ShipError::Protocol { url, reason: error.to_string() });
                        }
                    }
                }
            }
        }
    }

    /// The collector holds more of this spool than it made: start a new one with the same
    /// batches, so that nothing is taken for a duplicate and dropped.
    fn start_new_spool(
        &self,
        conflict: vigil_proto::model::SpoolConflict,
        url: &str,
    ) -> Result<StreamEnd, ShipError> {
        match self.spool.start_new_spool() {
            Ok((new_spool_id, n_kept)) => {
                tracing::warn!(
                    old_spool_id = conflict.spool_id,
                    new_spool_id,
                    collector_holds_up_to = conflict.stored_seq,
                    spool_made_up_to = conflict.next_seq.saturating_sub(1),
                    resending = n_kept,
                    "the collector already holds batches of this spool that this machine never made: its state folder was restored from a backup or a snapshot, or copied from another machine; started a new spool and sending everything queued again"
                );
                Ok(StreamEnd::NewSpool)
            }
            Err(error) => Err(ShipError::Protocol {
                url: url.to_owned(),
                reason: format!(
                    "the collector asked for a new spool (it holds batches of spool {} up to {}) and starting one failed: {error}",
                    conflict.spool_id, conflict.stored_seq
                ),
            }),
        }
    }

    /// Says goodbye, closes our side, and waits for the acks of what is in flight until the
    /// collector closes its side, up to `deadline`.
    async fn drain(
        &self,
        outbound: mpsc::Sender<pb::AgentMessage>,
        mut inbound: tonic::Streaming<pb::CollectorMessage>,
        url: &str,
        reason: GoodbyeReason,
        deadline: Duration,
    ) {
        let goodbye = AgentMessage::Goodbye(reason);
        let _ = outbound.send(pb::AgentMessage::from(&goodbye)).await;
        drop(outbound);
        // The collector ends its side once it has read our goodbye and end of stream; until
        // then, late acks still arrive. Dropping the stream earlier could lose the goodbye.
        let wait_for_acks = async {
            while let Ok(Some(message)) = inbound.message().await {
                if let Ok(CollectorMessage::Ack { seq }) = CollectorMessage::try_from(message) {
                    self.spool.ack_off_thread(seq).await;
                }
            }
        };
        if tokio::time::timeout(deadline, wait_for_acks).await.is_err() {
            tracing::warn!(
                collector = %url,
                unacknowledged = self.spool.len(),
                "stopped waiting for the collector's last acks"
            );
        }
    }
}

/// How often a revoked agent looks whether its certificate file was replaced.
const CERT_POLL: Duration = Duration::from_secs(5);

/// Resolves when the file at `path` changes (modification time or size), looked at every
/// [`CERT_POLL`].
async fn file_changed(path: &std::path::Path) {
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|metadata| (metadata.modified().ok(), metadata.len()))
    };
    let before = stamp(path);
    loop {
        tokio::time::sleep(CERT_POLL).await;
        if stamp(path) != before {
            return;
        }
    }
}

/// Resolves when the machine is about to sleep, never if it does not.
async fn sleep_notice(power: &mut watch::Receiver<PowerState>) {
    let notice = power
        .wait_for(|state| *state == PowerState::GoingToSleep)
        .await
        .is_ok();
    if !notice {
        std::future::pending::<()>().await;
    }
}

/// Whether the certificate at `path` has passed two thirds of its life.
pub fn renewal_due(path: &std::path::Path) -> Result<bool, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der =
        CertificateDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| format!("{}: {e}", path.display()))?;
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let renew_at = not_before + (not_after - not_before) * 2 / 3;
    Ok(crate::run::now_ms() / 1000 >= renew_at)
}

/// Exponential backoff with jitter: a random delay between a quarter of and the whole of
/// 0.5 s × 2^(failures−1), capped at a minute, so a collector restart is not met by every
/// agent at the same instant.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let ceiling = BACKOFF_FIRST
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 4..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}

/// The wait after a revocation: [`REVOKED_RETRY`] give or take a fifth, so that a batch of
/// revoked machines does not return in step.
pub fn revoked_retry_delay() -> Duration {
    let millis = REVOKED_RETRY.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis * 4 / 5..=millis * 6 / 5))
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_certificate_is_recognised_in_the_refusal() {
        let refused = ShipError::Stream {
            url: "https://c".into(),
            status: tonic::Status::permission_denied("this host's certificate is revoked; enroll"),
        };
        assert!(refused.is_revoked());
        let other = ShipError::Stream {
            url: "https://c".into(),
            status: tonic::Status::unavailable("connection refused"),
        };
        assert!(!other.is_revoked());
        assert!((0..100).all(|_| revoked_retry_delay() >= Duration::from_secs(240)));
    }

    #[test]
    fn backoff_grows_then_stays_under_a_minute() {
        for failures in 1..40 {
            let delay = backoff_delay(failures);
            assert!(delay <= BACKOFF_MAX, "{failures}: {delay:?}");
        }
        // The ceiling doubles: after 3 failures no delay exceeds 2 s; after 10, some do.
        assert!((0..100).all(|_| backoff_delay(3) <= Duration::from_secs(2)));
        assert!((0..100).any(|_| backoff_delay(10) > Duration::from_secs(2)));
    }
}
