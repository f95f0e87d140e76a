//! Who hears what ingest stored, and how: [`EventBus`] hands every [`IngestEvent`] to each
//! judging consumer (the alert engine, presence) through a bounded [`EventQueue`] of its own,
//! and to any number of display watchers through a broadcast.
//!
//! A queue never drops: when it is full, [`EventBus::publish`] waits, so the session that
//! stored a batch acknowledges it only once every consumer has *received* it (not judged it).
//! An engine that falls behind therefore slows acknowledgements, and the agents keep what
//! is not acknowledged in their spools; nothing stored is skipped. Each queue's lag (events
//! waiting, how long the oldest has waited) is kept in an [`EventLag`] that metrics and
//! Vigil's own alerts read. Watchers (the demo's printout, tests) may lose events when they
//! fall behind and never slow ingest.

use super::IngestEvent;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// How many events a display watcher may fall behind before it loses the oldest.
const WATCHER_CAPACITY: usize = 1024;

/// What time it is, in ms since the Unix epoch, for stamping events.
pub type EventClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Where ingest publishes what it stored. Cheap to clone; every clone publishes to the same
/// consumers.
#[derive(Clone)]
pub struct EventBus {
    consumers: Arc<Mutex<Vec<Consumer>>>,
    watchers: broadcast::Sender<IngestEvent>,
    clock: Arc<Mutex<EventClock>>,
}

/// An event in a queue: with when it was published by the bus's clock, and when by the
/// monotonic clock (for the lag).
type Queued = (IngestEvent, i64, Instant);

#[derive(Clone)]
struct Consumer {
    sender: mpsc::Sender<Queued>,
    lag: Arc<EventLag>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (watchers, _) = broadcast::channel(WATCHER_CAPACITY);
        let system: EventClock = Arc::new(|| jiff::Timestamp::now().as_millisecond());
        Self {
            consumers: Arc::new(Mutex::new(Vec::new())),
            watchers,
            clock: Arc::new(Mutex::new(system)),
        }
    }

    /// Stamps events with `clock` instead of the system clock: the alert path's clock,
    /// which tests move by hand.
    pub fn stamp_with(&self, clock: EventClock) {
        *self
            .clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = clock;
    }

    /// A consumer that receives every event from now on, in the order each session
    /// published them, through a queue of `capacity` events. Its reader must keep reading
    /// (or be dropped): while its queue is full, ingest waits.
    pub fn consume(&self, name: &'static str, capacity: usize) -> EventQueue {
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        let lag = Arc::new(EventLag::new(name, capacity));
        self.consumers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Consumer {
                sender,
                lag: lag.clone(),
            });
        EventQueue { receiver, lag }
    }

    /// Events from now on, for display: a watcher that falls behind loses the oldest events
    /// and never slows ingest. Nothing that judges may read this.
    pub fn watch(&self) -> broadcast::Receiver<IngestEvent> {
        self.watchers.subscribe()
    }

    /// Hands `event` to every consumer, waiting while a queue is full, and to the watchers.
    /// A consumer that has stopped (its queue dropped, at shutdown) is skipped.
    pub async fn publish(&self, event: IngestEvent) {
        let consumers: Vec<Consumer> = self
            .consumers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let published = Instant::now();
        let published_ms = (self
            .clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))();
        for consumer in consumers {
            if consumer.sender.capacity() == 0 {
                consumer.lag.full_waits.fetch_add(1, Ordering::Relaxed);
            }
            // Counted before it is sent, or the consumer could take it before it counts.
            consumer.lag.enqueued();
            if consumer
                .sender
                .send((event.clone(), published_ms, published))
                .await
                .is_err()
            {
                consumer.lag.unsent();
                tracing::debug!(consumer = consumer.lag.name, "event consumer has stopped");
            }
        }
        // Nobody watching is fine.
        let _ = self.watchers.send(event);
    }
}

/// One consumer's end of the bus.
pub struct EventQueue {
    receiver: mpsc::Receiver<Queued>,
    lag: Arc<EventLag>,
}

/// An event as a consumer takes it, with when ingest published it: a consumer that was
/// behind judges it as of then (a sample that arrived on time is not late because the
/// engine was busy).
#[derive(Debug, Clone)]
pub struct Received {
    pub event: IngestEvent,
    /// When it was published, ms since the Unix epoch by the bus's clock.
    pub published_ms: i64,
    /// How long it waited for the consumer.
    pub waited: Duration,
}

impl EventQueue {
    /// The next event; `None` once every publisher is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Received> {
        let received = self.receiver.recv().await;
        self.taken(received)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        let received = self.receiver.try_recv().ok();
        self.taken(received)
    }

    fn taken(&self, received: Option<Queued>) -> Option<Received> {
        let (event, published_ms, published) = received?;
        self.lag.dequeued();
        Some(Received {
            event,
            published_ms,
            waited: published.elapsed(),
        })
    }

    /// Receives until every publisher is gone or `deadline` passes, handing each event to
    /// `judge`; then takes what is already queued. What a stopping collector acknowledged is
    /// judged before the consumer saves and stops.
    pub async fn drain(&mut self, deadline: Duration, mut judge: impl FnMut(Received)) {
        let until = tokio::time::Instant::now() + deadline;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.recv()).await {
            judge(event);
        }
        while let Some(event) = self.try_recv() {
            judge(event);
        }
    }

    /// How far this consumer is behind.
    pub fn lag(&self) -> Arc<EventLag> {
        self.lag.clone()
    }
}

/// How far one consumer is behind ingest: read by metrics and by Vigil's own alerts.
#[derive(Debug)]
pub struct EventLag {
    /// Which consumer: `alert_engine`, `presence`.
    pub name: &'static str,
    /// The most events its queue holds.
    pub capacity: usize,
    /// Events handed to it since start.
    pub enqueued_total: AtomicU64,
    /// Events it took from its queue since start.
    pub received_total: AtomicU64,
    /// Publishes that found its queue full and waited (ingest slowed by it).
    pub full_waits: AtomicU64,
    /// When each waiting event was queued, oldest first.
    waiting_since: Mutex<VecDeque<Instant>>,
}

impl EventLag {
    fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            name,
            capacity,
            enqueued_total: AtomicU64::new(0),
            received_total: AtomicU64::new(0),
            full_waits: AtomicU64::new(0),
            waiting_since: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    fn enqueued(&self) {
        self.enqueued_total.fetch_add(1, Ordering::Relaxed);
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(Instant::now());
    }

    fn unsent(&self) {
        self.enqueued_total.fetch_sub(1, Ordering::Relaxed);
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_back();
    }

    fn dequeued(&self) {
        self.received_total.fetch_add(1, Ordering::Relaxed);
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front();
    }

    /// Events queued and not yet taken.
    pub fn depth(&self) -> usize {
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// How long the oldest waiting event has waited; zero when none waits.
    pub fn oldest_wait(&self) -> Duration {
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .front()
            .map_or(Duration::ZERO, Instant::elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::identity::PeerIdentity;

    fn disconnected(host: &str) -> IngestEvent {
        IngestEvent::Disconnected {
            peer: PeerIdentity {
                host: host.into(),
                client: "acme".into(),
                issued_at_ms: 0,
                expires_at_ms: i64::MAX,
            },
        }
    }

    fn host_of(event: &IngestEvent) -> &str {
        match event {
            IngestEvent::Disconnected { peer } => &peer.host,
            _ => "",
        }
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_publisher_until_the_consumer_reads_and_loses_nothing() {
        let bus = EventBus::new();
        let mut queue = bus.consume("test", 2);
        let lag = queue.lag();
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    bus.publish(disconnected(&format!("pc-{n}"))).await;
                }
            })
        };
        // Two fit; the third waits for the reader (and counts as waiting).
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if lag.depth() == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(lag.depth(), 3);
        assert!(!publisher.is_finished());
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let received = queue.recv().await.expect("the publisher is alive");
            seen.push(host_of(&received.event).to_string());
        }
        publisher.await.unwrap();
        let expected: Vec<String> = (0..10).map(|n| format!("pc-{n}")).collect();
        assert_eq!(seen, expected);
        assert_eq!(lag.received_total.load(Ordering::Relaxed), 10);
        assert!(lag.full_waits.load(Ordering::Relaxed) >= 1);
        assert_eq!(lag.depth(), 0);
        assert_eq!(lag.oldest_wait(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_stopped_consumer_does_not_hold_up_the_others() {
        let bus = EventBus::new();
        let stopped = bus.consume("stopped", 1);
        let mut running = bus.consume("running", 8);
        drop(stopped);
        bus.publish(disconnected("pc-1")).await;
        bus.publish(disconnected("pc-2")).await;
        assert_eq!(host_of(&running.try_recv().unwrap().event), "pc-1");
        assert_eq!(host_of(&running.try_recv().unwrap().event), "pc-2");
    }

    #[tokio::test]
    async fn draining_ends_when_the_publishers_are_gone_with_every_event_judged() {
        let bus = EventBus::new();
        let mut queue = bus.consume("test", 4);
        for n in 0..3 {
            bus.publish(disconnected(&format!("pc-{n}"))).await;
        }
        drop(bus);
        let mut judged = 0;
        queue
            .drain(Duration::from_secs(3600), |_| judged += 1)
            .await;
        assert_eq!(judged, 3);
    }
}
