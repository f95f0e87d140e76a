//! Alert delivery: a durable outbox on disk and the workers that empty it into webhooks,
//! Alertmanager, Slack, Teams, PagerDuty and email.
//!
//! The alert pipeline hands each [`Transition`](crate::alert::Transition), with its
//! [`Classification`](crate::policy::Classification) and the client's [`ChannelRouting`], to
//! [`enqueue()`]. [`route::plan_firing`] decides — purely, without I/O — which channels hear of it and
//! when (at once, or in the client's next-morning digest); `enqueue` then writes one
//! [`Delivery`] file per channel into the [`Outbox`] before returning. From there the
//! [`Notifier`] sends what is due, a bounded number at a time, retrying with exponential
//! backoff and jitter until the receiver takes it or the attempts run out (then the delivery
//! moves to `dead/`, visible in `vigil-collector alerts dead-letters`). It also escalates an
//! emergency that nobody acknowledged within its response time. A contract's changed
//! severity for an open alert is a message of its own in the alert's thread
//! ([`enqueue_decision()`]); an acknowledgement is told to the channels that heard of the
//! alert ([`Outbox::acknowledge`]).
//!
//! The promise: a delivery that is in the outbox is delivered at least once, even across
//! restarts, and every attempt carries the same idempotency key, so a receiver can drop
//! repeats. This room does not decide severity or timing of its own (that is `policy`), and
//! keeps its state in small files under `<data_dir>/outbox/` rather than in the store.
//!
//! Modules, in reading order:
//! - [`message`] — the alert as delivered: fingerprint, client, role, contract severity.
//! - [`route`] — which channels, when; escalation; backoff. Pure.
//! - [`outbox`] — deliveries and open alerts as files, written atomically.
//! - [`enqueue`](mod@enqueue) — from a transition to delivery files.
//! - [`config`] — the `[notify]` section: channels, routing, secrets.
//! - [`channel`] — one module per kind of receiver, each building its payload and sending it.
//! - [`worker`] — the [`Notifier`]: scan, send, record, escalate, until shutdown.
//! - [`test_alert`] — what `vigil-collector notify test` sends.

pub mod channel;
pub mod config;
pub mod enqueue;
pub mod message;
pub mod outbox;
pub mod route;
pub mod test_alert;
pub mod worker;

pub use config::{ChannelRouting, NotifySection};
pub use enqueue::{enqueue, enqueue_decision, Enqueued};
pub use message::{AlertMessage, AlertStatus, Delivery, Purpose};
pub use outbox::Outbox;
pub use worker::{ChannelHealth, ChannelTrouble, Clock, Notifier, NotifierSettings};

use std::path::PathBuf;

/// Everything that can go wrong in this room outside a single send (sends fail per
/// delivery, and their errors are recorded in the delivery, see [`channel::SendError`]).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox folder could not be read or written.
    #[error("outbox: {action} '{path}': {source}; check that the collector's user owns the data directory")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file in the outbox is not what this version writes.
    #[error("outbox: '{path}' is damaged ({detail}); move it away to let delivery go on")]
    Damaged { path: PathBuf, detail: String },
    /// A routing names a channel that is not configured.
    #[error("notify: routing names channel '{channel}', which is not configured; add a [[notify.channel]] named '{channel}' or remove it from the routing")]
    UnknownChannel { channel: String },
    /// `alerts ack` for an alert that is not open.
    #[error("alert '{id}' is not open (it resolved, or never fired); copy the id from the alert message (its fingerprint)")]
    NotOpen { id: String },
    /// A channel's settings could not be turned into a sender.
    #[error("{channel}: {detail}")]
    Channel { channel: String, detail: String },
}
