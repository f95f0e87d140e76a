//! `vigil-loadgen`: a fleet of simulated agents against a real collector, or the same load
//! as Prometheus remote-write against Prometheus or VictoriaMetrics, with a JSON report of
//! what was sent, acknowledged and rejected, how long acks took, and what the receiver cost.
//!
//! [`fleet::run`] starts one task per agent on a few worker threads. Each agent has an
//! identity from [`certs`] (a certificate signed by the collector's CA, cached between
//! runs), reports the series of [`catalog::HostSeries`] on the schedule of [`schedule`], and
//! speaks either Vigil's protocol ([`vigil`]) or remote-write ([`remote_write`]);
//! [`measure`] reads the receiver's CPU, memory and disk from `/proc` and its data folder.
//! The result is a [`fleet::Report`].
//!
//! Modules, in reading order:
//! - [`fleet`] — settings, the run, the counts and the report.
//! - [`schedule`] — ticks on the grid, start offsets, the backlog.
//! - [`catalog`] — the series of one host and how their values move.
//! - [`certs`] — the fleet's certificates and their cache.
//! - [`vigil`] — one agent on Vigil's `Report` stream.
//! - [`remote_write`] — one agent as a remote-write sender.
//! - [`measure`] — CPU, resident memory and disk of a process, from `/proc`.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod certs;
pub mod fleet;
pub mod measure;
pub mod remote_write;
pub mod schedule;
pub mod vigil;
