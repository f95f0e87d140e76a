//! The [`Notifier`]: until shutdown, every `poll_interval` it escalates unacknowledged
//! emergencies, then sends every delivery that is due — at most `concurrency` at once — and
//! records each result: delivered (to `sent/`), failed (attempt counted, next attempt after
//! a backoff with jitter), or given up (to `dead/`).
//!
//! It keeps no state of its own beyond the outbox, so a collector that stops — cleanly or
//! not — and starts again picks up where it was: a delivery interrupted mid-send is sent
//! again, with the same idempotency key.

use super::channel::{Channels, SendError};
use super::config::NotifySection;
use super::message::{Delivery, Purpose};
use super::outbox::Outbox;
use super::route::{escalation_due, Backoff};
use super::NotifyError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the notifier reads the time: the system clock, or one a test moves by hand.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that shows `start_ms` until advanced.
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => jiff::Timestamp::now().as_millisecond(),
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Sets a manual clock to `at_ms` (a simulated replay walking through time).
    pub fn set(&self, at_ms: i64) {
        if let Clock::Manual(now) = self {
            now.store(at_ms, Ordering::SeqCst);
        }
    }

    /// Moves a manual clock forward (the system clock moves by itself).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(now) = self {
            now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}

/// Failed attempts in a row after which a channel "keeps failing" and the collector raises
/// an alert about it.
pub const FAILING_AFTER: u32 = 3;

/// How each channel has fared lately: what the alert path reads to raise "a delivery channel
/// keeps failing". Shared between the notifier, which writes it, and the engine's thread.
#[derive(Debug, Clone, Default)]
pub struct ChannelHealth(Arc<std::sync::Mutex<BTreeMap<String, ChannelTrouble>>>);

/// A channel whose last attempts failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTrouble {
    pub failures_in_a_row: u32,
    /// The last failure, as the log says it.
    pub last_error: String,
    /// When the first of these failures happened.
    pub since_ms: i64,
}

impl ChannelHealth {
    fn failed(&self, channel: &str, detail: &str, now_ms: i64) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let trouble = map.entry(channel.to_string()).or_insert(ChannelTrouble {
            failures_in_a_row: 0,
            last_error: String::new(),
            since_ms: now_ms,
        });
        trouble.failures_in_a_row += 1;
        trouble.last_error = detail.to_string();
    }

    fn succeeded(&self, channel: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(channel);
    }

    /// The channels whose last [`FAILING_AFTER`] attempts or more all failed.
    pub fn failing(&self) -> Vec<(String, ChannelTrouble)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, trouble)| trouble.failures_in_a_row >= FAILING_AFTER)
            .map(|(name, trouble)| (name.clone(), trouble.clone()))
            .collect()
    }
}

/// How the notifier paces itself.
#[derive(Debug, Clone, Copy)]
pub struct NotifierSettings {
    pub backoff: Backoff,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How often the outbox is scanned for due deliveries.
    pub poll_interval: Duration,
}

impl NotifierSettings {
    pub fn from_section(section: &NotifySection) -> Self {
        Self {
            backoff: Backoff {
                min: section.backoff_min,
                max: section.backoff_max,
                attempts: section.attempts,
            },
            concurrency: section.concurrency,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retrying: usize,
    pub dead: usize,
    pub escalated: usize,
}

/// Sends what the outbox holds, until shutdown.
#[derive(Debug)]
pub struct Notifier {
    outbox: Arc<Outbox>,
    channels: Arc<Channels>,
    settings: NotifierSettings,
    clock: Clock,
    /// Rung after an enqueue, so that what is due now does not wait for the next poll.
    wake: Arc<tokio::sync::Notify>,
    /// Which channels keep failing, for the alert path.
    health: ChannelHealth,
    /// Attempts and failures per channel, for `/metrics`.
    telemetry: crate::telemetry::Telemetry,
}

impl Notifier {
    pub fn new(
        outbox: Arc<Outbox>,
        channels: Arc<Channels>,
        settings: NotifierSettings,
        clock: Clock,
    ) -> Self {
        Self {
            outbox,
            channels,
            settings,
            clock,
            wake: Arc::new(tokio::sync::Notify::new()),
            health: ChannelHealth::default(),
            telemetry: crate::telemetry::Telemetry::new(),
        }
    }

    /// Counts attempts and failures per channel into `telemetry`.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// How the channels fare, updated after every attempt.
    pub fn health(&self) -> ChannelHealth {
        self.health.clone()
    }

    /// What to ring after enqueueing a delivery that is due at once.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Runs rounds until `shutdown` is cancelled; a round in progress finishes first (each
    /// attempt is bounded by the channel timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        let span = tracing::info_span!("notify");
        let _entered = span.enter();
        tracing::info!(outbox = %self.outbox.dir().display(), "delivering alerts");
        loop {
            if let Err(error) = self.run_once().await {
                tracing::error!("{error}");
            }
            tokio::select! {
                // The collector is stopping; what is pending stays in the outbox for the
                // next start.
                _ = shutdown.cancelled() => break,
                // Time to look for due deliveries again.
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                // Something was just enqueued.
                _ = self.wake.notified() => tracing::debug!("woken by an enqueue"),
            }
        }
        tracing::info!("alert delivery stopped");
    }

    /// One round: escalate, then send everything due and record the results.
    pub async fn run_once(&self) -> Result<Round, NotifyError> {
        let mut round = Round {
            escalated: self.escalate()?,
            ..Round::default()
        };
        let now_ms = self.clock.now_ms();
        let (pending, damaged) = self.outbox.pending()?;
        for error in damaged {
            tracing::error!("{error}");
        }
        let semaphore = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut attempts = JoinSet::new();
        for delivery in pending
            .into_iter()
            .filter(|delivery| delivery.next_attempt_ms <= now_ms)
        {
            let permit = semaphore
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let channel = self.channels.get(&delivery.channel);
            let clock = self.clock.clone();
            attempts.spawn(async move {
                let _permit = permit;
                let result = match &channel {
                    Some(channel) => channel.send(&delivery, clock.now_ms()).await,
                    None => Err(SendError::permanent(
                        "no channel of that name is configured any more; add it back to [notify] to deliver this",
                    )),
                };
                let label = channel
                    .map(|channel| channel.label())
                    .unwrap_or_else(|| format!("channel '{}'", delivery.channel));
                (delivery, label, result)
            });
        }
        while let Some(joined) = attempts.join_next().await {
            let (delivery, label, result) = match joined {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!("a delivery attempt panicked: {error}");
                    continue;
                }
            };
            match self.record(delivery, &label, result)? {
                Outcome::Sent => round.sent += 1,
                Outcome::Retrying => round.retrying += 1,
                Outcome::Dead => round.dead += 1,
            }
        }
        Ok(round)
    }

    fn record(
        &self,
        mut delivery: Delivery,
        label: &str,
        result: Result<(), SendError>,
    ) -> Result<Outcome, NotifyError> {
        let now_ms = self.clock.now_ms();
        delivery.attempts += 1;
        let max = self.settings.backoff.attempts;
        self.telemetry
            .delivery_attempted(&delivery.channel, result.is_ok());
        if let Err(error) = &result {
            self.health.failed(
                &delivery.channel,
                &format!("{label}: {}", error.detail),
                now_ms,
            );
        }
        match result {
            Ok(()) => {
                self.health.succeeded(&delivery.channel);
                delivery.finished_ms = Some(now_ms);
                self.outbox.mark_sent(&delivery)?;
                tracing::info!(key = %delivery.key, attempt = delivery.attempts, "{label}: delivered");
                Ok(Outcome::Sent)
            }
            Err(error) if error.permanent || delivery.attempts >= max => {
                let why = if error.permanent {
                    "refused for good, moved to dead letters".to_string()
                } else {
                    "no attempts left, moved to dead letters".to_string()
                };
                let message = format!(
                    "{label}: {}; attempt {} of {max}, {why}",
                    error.detail, delivery.attempts
                );
                tracing::error!(key = %delivery.key, "{message}");
                delivery.last_error = Some(message);
                delivery.finished_ms = Some(now_ms);
                self.outbox.mark_dead(&delivery)?;
                Ok(Outcome::Dead)
            }
            Err(error) => {
                let delay = self
                    .settings
                    .backoff
                    .delay(delivery.attempts, &delivery.key);
                let message = format!(
                    "{label}: {}; attempt {} of {max}, next in {}",
                    error.detail,
                    delivery.attempts,
                    humantime::format_duration(Duration::from_secs(delay.as_secs()))
                );
                tracing::warn!(key = %delivery.key, "{message}");
                delivery.last_error = Some(message);
                delivery.next_attempt_ms = now_ms + delay.as_millis() as i64;
                self.outbox.record_attempt(&delivery)?;
                Ok(Outcome::Retrying)
            }
        }
    }

    /// Enqueues escalations for open emergencies whose response time has passed without an
    /// acknowledgement. Returns how many alerts escalated.
    fn escalate(&self) -> Result<usize, NotifyError> {
        let now_ms = self.clock.now_ms();
        let _guard = self.outbox.lock_alerts();
        let mut escalated = 0;
        for (mut record, acknowledgement) in self.outbox.open_alerts()? {
            if !escalation_due(&record, acknowledgement.is_some(), now_ms) {
                continue;
            }
            let at_ms = record.escalate_at_ms.unwrap_or(now_ms);
            for channel in &record.escalation_channels {
                let delivery = Delivery {
                    key: Delivery::key_for(
                        "escalation",
                        &record.alert.fingerprint,
                        record.alert.status,
                        at_ms,
                        channel,
                    ),
                    channel: channel.clone(),
                    purpose: Purpose::Escalation,
                    alerts: vec![record.alert.clone()],
                    created_ms: now_ms,
                    attempts: 0,
                    next_attempt_ms: now_ms,
                    last_error: None,
                    finished_ms: None,
                };
                self.outbox.put_new(&delivery)?;
            }
            tracing::warn!(
                alert = %record.alert.fingerprint,
                "{}: not acknowledged by its response time; escalating to {}",
                record.alert.title(),
                record.escalation_channels.join(", ")
            );
            record.escalated = true;
            self.outbox.put_open_alert(&record)?;
            escalated += 1;
        }
        Ok(escalated)
    }
}

enum Outcome {
    Sent,
    Retrying,
    Dead,
}
