//! Alert engine: decides, from the samples agents report, which failures are coming and
//! which have come, and says so once per state change. It does no I/O — no store, no
//! network, no files — except the `backtest` command's reading of its input.
//!
//! A [`RuleSet`] (the built-in [`pack`], tuned by a rules file through [`config`]) feeds an
//! [`Engine`]. Each sample goes to [`Engine::observe`], which binds new series to the rules
//! that read them and judges sample-driven rules at once (thresholds, counters, flapping,
//! creep); [`Engine::evaluate`] runs on a schedule (every 60 s) for forecasts, silence and
//! staleness. Both return [`Transition`]s — an alert instance (rule, host, labels) firing,
//! escalating or resolving — after its [`lifecycle`] has applied pending time, hysteresis
//! and flap damping. The engine's state is a serde [`Snapshot`], so a restart neither loses
//! a pending alert nor repeats a firing one. The same engine replays recorded traces in
//! simulated time in [`backtest`].
//!
//! Modules, in reading order:
//! - [`rule`] — rules as data: kinds, signals, severities.
//! - [`catalog`] — the vocabulary: metrics, kinds, rule names, docs/METRICS.md.
//! - [`pack`] — the built-in rules and the metric catalog.
//! - [`config`] — the rules file: tune, disable, add; errors with file and line.
//! - [`engine`] — series binding, instances, evaluation, snapshot.
//! - [`kinds`] — per-kind state and judgement.
//! - [`forecast`] — time to exhaustion from a robust, seasonality-aware trend.
//! - [`history`] — bounded downsampled history per signal.
//! - [`trend`] — Theil–Sen and other robust statistics.
//! - [`lifecycle`] — pending → firing → resolved.
//! - [`summary`] — words and numbers for people.
//! - [`backtest`] — `vigil-collector backtest`: replay a trace, print JSON Lines.

pub mod backtest;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod forecast;
pub mod history;
pub mod kinds;
pub mod lifecycle;
pub mod pack;
pub mod rule;
pub mod summary;
pub mod trend;

pub use config::{load_rules, parse_rules};
pub use engine::{AlertState, Engine, EngineSettings, OpenAlert, SeriesId, Snapshot, Transition};
pub use kinds::{AlertDetails, ForecastDetails};
pub use rule::{FailureKind, Rule, RuleKind, RuleSet, Severity};
