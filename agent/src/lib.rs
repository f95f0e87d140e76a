//! Vigil agent: measures a machine's health and streams it to the collector.
//!
//! [`run::Agent`] joins the two halves: the sampler, which asks
//! [`collect::HostCollector`] and the configured [`collect::Checks`] (services, SMART,
//! backups, logs) for one tick's series on the interval grid and pushes them as a batch into
//! the durable [`spool::Spool`], and the [`ship::Shipper`], which streams unacknowledged
//! batches to the collector over mutual TLS and releases them as acks return. Nothing the
//! collector sends can make the agent run anything: it only ever receives acks, rejects and
//! a collection interval.
//!
//! Modules, in reading order:
//! - [`config`] — `agent.toml`.
//! - [`enroll`] — joining a collector with a token; renewing the certificate.
//! - [`collect`] — one module per source of measurements.
//! - [`spool`] — batches waiting for the collector's ack.
//! - [`ship`] — the gRPC stream, reconnects and backoff.
//! - [`run`] — the agent's lifecycle.
//! - [`service`] — install and uninstall as a systemd or Windows service; why it stops.

#![forbid(unsafe_code)]

pub mod collect;
pub mod config;
pub mod enroll;
pub mod run;
pub mod service;
pub mod ship;
pub mod spool;
