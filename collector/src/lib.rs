//! Vigil collector: receives agents' reports over mutual TLS, stores them, answers queries.
//!
//! An agent's stream arrives at [`ingest::IngestServer`], whose TLS layer admits only
//! certificates signed by the collector's CA and reads the host and client from them
//! ([`ingest::identity::PeerIdentity`]). Each `Report` stream becomes an
//! [`ingest::session::AgentSession`] that validates batches, labels them with that identity
//! and appends them to the [`store::Store`], acknowledging only what is on disk.
//! [`query`] reads series back with a Prometheus-style [`store::Selector`].
//!
//! Modules, in reading order:
//! - [`config`] — `collector.toml`.
//! - [`enroll`] — the certificate authority behind every identity.
//! - [`ingest`] — the gRPC edge — TLS, identity, per-agent sessions.
//! - [`store`] — time series and host records on sled.
//! - [`policy`] — client contracts: what an alert means to each client, and when it is due.
//! - [`history`] — the append-only journal of alert decisions, for reports.
//! - [`notify`] — the durable outbox and delivery by webhook, Alertmanager, Slack, Teams, PagerDuty and email.
//! - [`http`] — the JSON API (users, sign-in, sessions, audit) on `[http] listen`.
//! - [`telemetry`] — the collector's own health for `GET /metrics` (Prometheus text).
//! - [`report`] — the monthly client report: figures, HTML, email.
//! - [`query`] — `vigil-collector query`.
//! - [`promql`] — PromQL over the store and the Prometheus HTTP query API.
//! - [`remote_write`] — export to Prometheus-compatible stores (remote-write 1.0) from the log.
//! - [`serve`] — the collector's lifecycle, shared by `serve` and `demo`.
//! - [`demo`] — a collector and an agent in one process with a throwaway CA.

#![forbid(unsafe_code)]

pub mod alert;
pub mod config;
pub mod demo;
pub mod durable;
pub mod enroll;
pub mod history;
pub mod http;
pub mod ingest;
pub mod notify;
pub mod openmetrics;
pub mod pipeline;
pub mod policy;
pub mod promql;
pub mod query;
pub mod remote_write;
pub mod report;
pub mod serve;
pub mod store;
pub mod telemetry;
