//! The live path from a stored sample to a person: the alert engine judges, the client's
//! contract classifies, the outbox keeps the deliveries until the notifier sends them.
//!
//! - [`policies`] — the contracts in force: stored versions and the policy folder.
//! - [`dispatch`] — one transition: classify, route, enqueue; what waits for later.
//! - [`live`] — the engine fed by ingest and the schedule, saved in the store.
//! - [`log_lines`] — the matched log lines agents send, for the alerts they explain.
//! - [`backtest`] — a recorded trace through these same objects in simulated time.
//! - [`health`] — Vigil's own problems (a policy that does not load, a failing channel)
//!   as alerts for the MSP.
//! - [`presence`] — where each host stands (online, asleep, shut down, …) for `hosts list`.

pub mod backtest;
pub mod dispatch;
pub mod health;
pub mod live;
pub mod log_lines;
pub mod policies;
pub mod presence;

pub use dispatch::Dispatch;
pub use live::LiveAlerts;
pub use policies::{Policies, PolicyArchive};
