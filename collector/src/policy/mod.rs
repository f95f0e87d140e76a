//! Client contracts: what each client's contract makes of an alert — how severe it is, who
//! hears of it and when, and by when someone must respond.
//!
//! The MSP owner writes one TOML file per client (see `deploy/policies/dental-practice.toml`).
//! [`Policy::parse`] turns that text into a validated [`Policy`] or refuses it with every
//! problem at once, each naming the file, line, key and fix. [`classify()`] then decides, for
//! one alert's [`AlertFacts`] at an instant `now`, a [`Classification`]: the
//! [`ContractSeverity`], the host's role, the [`Route`] (page now, normal channels, wait for
//! the next opening, or held for maintenance) and the `response_due` instant, counted in
//! business hours in the client's time zone where the contract says so.
//!
//! Contracts change; alerts already raised must not. Every saved text is a [`PolicyVersion`]
//! (client, number, SHA-256 digest, author, time); a [`PolicyHistory`] holds one client's
//! versions append-only and answers which one was in force at an instant, and a [`PolicySet`]
//! does so for every client. An alert is classified by the version in force when it began
//! firing, and its classification records that version ([`PolicyVersionId`]), so a later edit
//! never re-classifies the past.
//!
//! This room decides and does nothing else: it reads no files, no clock and no database, and
//! sends nothing. `now` is always a parameter; the text of a policy is handed in by the
//! caller; storing versions belongs to `store`, delivering alerts to `notify`.
//!
//! Modules, in reading order:
//! - [`facts`] — what the alert engine tells us about an alert, and the severities.
//! - [`contract`] — the validated [`Policy`] and its parts: roles, rules, targets, measures.
//! - [`calendar`] — business hours and holidays in the client's time zone.
//! - [`maintenance`] — planned windows during which alerts are held.
//! - [`file`](mod@file) — the TOML shape of a policy file.
//! - [`validate`] — from that shape to a [`Policy`], with every problem located.
//! - [`classify`](mod@classify) — the decision itself.
//! - [`version`] — versions, one client's history, all clients' policies.
//! - [`summary`] — a policy in plain words, for `vigil-collector policy check`.

pub mod calendar;
pub mod classify;
pub mod contract;
pub mod facts;
pub mod file;
pub mod maintenance;
pub mod summary;
pub mod validate;
pub mod version;

pub use calendar::BusinessCalendar;
pub use classify::{classify, Classification, Route};
pub use contract::{AfterHours, DeclinedMeasure, Measure, Policy, ResponseTarget};
pub use facts::{AlertFacts, AlertKind, ContractSeverity, EngineSeverity};
pub use maintenance::MaintenanceWindow;
pub use version::{PolicyHistory, PolicySet, PolicyVersion, PolicyVersionId};

use jiff::Timestamp;
use vigil_proto::config_file::ConfigFileError;

/// Everything that can go wrong in this room. Each message is one line naming the subject
/// and the fix (a policy file's own problems are one line each, all reported together).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy text is not a valid contract.
    #[error(transparent)]
    Invalid(#[from] ConfigFileError),
    /// An alert was handed to another client's contract.
    #[error(
        "alert '{rule}' on host '{host}' belongs to client '{alert_client}', not to \
         '{policy_client}'; classify it with client '{alert_client}''s policy"
    )]
    WrongClient {
        alert_client: String,
        policy_client: String,
        host: String,
        rule: String,
    },
    /// A version was offered to another client's history.
    #[error(
        "policy text names client '{found}' but is being saved as a version of client \
         '{expected}'; fix `client` in the file or save it under client '{found}'"
    )]
    HistoryClient { expected: String, found: String },
    /// A version dated before the latest one: history is append-only.
    #[error(
        "policy for client '{client}' dated {created_at} is older than its version \
         {latest_version} ({latest_created_at}); versions are append-only, so date the edit \
         at or after the latest"
    )]
    OutOfOrder {
        client: String,
        created_at: Timestamp,
        latest_version: u64,
        latest_created_at: Timestamp,
    },
    /// Stored versions that do not follow each other (1, 2, 3…).
    #[error(
        "policy history of client '{client}' jumps from version {previous} to {found}; \
         versions must be numbered 1, 2, 3… without gaps"
    )]
    VersionGap {
        client: String,
        previous: u64,
        found: u64,
    },
    /// No version of the client's contract was in force at that instant.
    #[error(
        "client '{client}' had no policy in force at {at}{}; load one (see \
         deploy/policies/dental-practice.toml)",
        match first { Some(first) => format!(" (its first version dates from {first})"), None => String::new() }
    )]
    NoneInForce {
        client: String,
        at: Timestamp,
        first: Option<Timestamp>,
    },
}
