//! The alert engine, live: fed by ingest as batches are stored, judged on a schedule, and
//! saved in the store so that a restart neither loses a pending alert nor repeats a firing
//! one.
//!
//! Every stored batch reaches the engine once, in order per host: ingest hands it over a
//! bounded [`EventQueue`] before acknowledging it, so an engine that falls behind slows
//! acknowledgements instead of skipping samples. How far behind it is ([`EventLag`]) is
//! logged past [`LAG_WARNING`] and raised as Vigil's own `EngineBehind` alert past
//! `[alerts] lag_alert_after`.
//!
//! Order matters for the promise that nothing is lost: a transition's deliveries are in the
//! outbox before the state that produced it is saved. A crash between the two replays the
//! transition after restart, and the outbox's idempotency keys stop it from going out twice.

use super::dispatch::{Deferred, Dispatch};
use super::health::{Fleet, Health, Problem};
use super::log_lines::LogLines;
use crate::alert::engine::HostRecord;
use crate::alert::{Engine, EngineSettings, RuleSet, SeriesId, Snapshot, Transition};
use crate::enroll::revocation::RevocationList;
use crate::ingest::identity::PeerIdentity;
use crate::ingest::{EventLag, EventQueue, IngestEvent, Received};
use crate::notify::{ChannelHealth, Clock};
use crate::store::Store;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vigil_proto::model::{GoodbyeReason, Sample};

/// The store record the live state was saved under as one value, before it was saved by
/// host; read once when upgrading, then deleted.
const STATE_KEY: &str = "alert_engine";
/// Each host's part of the engine's state is saved under this prefix and its name.
const HOST_PREFIX: &str = "alert_engine/host/";
/// The alerts that wait and Vigil's own open problems.
const PIPELINE_KEY: &str = "alert_engine/pipeline";
/// How often the policy folder is looked at for changes.
const POLICY_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// How long the oldest unjudged batch may wait before the lag is logged (at most once a
/// minute).
pub const LAG_WARNING: Duration = Duration::from_secs(10);
/// How long a stopping engine waits for ingest to finish handing it what was acknowledged.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);
/// How often series and hosts silent for longer than the forget time are looked for
/// (revoked hosts are looked for at every evaluation).
const FORGET_CHECK_EVERY_MS: i64 = 3_600_000;
/// How long a silent host or series is kept, unless configured.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the engine may stay behind before `EngineBehind` fires, unless configured.
pub const DEFAULT_LAG_ALERT_AFTER: Duration = Duration::from_secs(120);

/// What was saved as one value before state was saved by host.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    engine: Snapshot,
    #[serde(default)]
    deferred: Vec<Deferred>,
    #[serde(default)]
    health: Health,
}

/// What is saved beside the engine's host records: the alerts that wait and Vigil's own
/// open problems.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedPipeline {
    #[serde(default)]
    deferred: Vec<Deferred>,
    #[serde(default)]
    health: Health,
}

/// What saving has written since start, for measurements and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveCounts {
    /// Saves that wrote something.
    pub saves: u64,
    /// Host records written.
    pub records: u64,
    /// Bytes of records written (keys and values).
    pub bytes: u64,
}

/// The engine, the dispatch and the store they are saved in (none in a backtest, which
/// drives these same objects in simulated time).
pub struct LiveAlerts {
    engine: Engine,
    dispatch: Dispatch,
    store: Option<Store>,
    /// The pipeline record as last written, to write it only when it changed.
    pipeline_saved: Vec<u8>,
    /// The state was read from the old single record, which the next save deletes.
    upgrading: bool,
    /// What saving has written.
    save_counts: SaveCounts,
    /// What "now" is: the system clock, or a manual one that tests move forward.
    clock: Clock,
    /// Vigil's own problems that are open.
    health: Health,
    /// Transitions of those the outbox could not take yet.
    health_unsent: Vec<Transition>,
    /// How the notifier's channels fare, when it runs.
    channels: Option<ChannelHealth>,
    /// The enrolled hosts, when the collector enrolls them.
    fleet: Option<Fleet>,
    /// The log lines agents sent, for the log pattern alerts they explain.
    log_lines: LogLines,
    /// How far the engine is behind ingest, once it runs on a queue.
    lag: Option<Arc<EventLag>>,
    /// When the lag was last logged.
    lag_logged_at: Option<Instant>,
    /// How long the oldest unjudged batch may wait before `EngineBehind` fires.
    lag_alert_after: Duration,
    /// Added to the judging of every stored batch: a stand-in for an expensive rule, so
    /// tests and benchmarks can make the engine slower than ingest.
    judging_delay: Duration,
    /// Hosts and series silent this long are forgotten.
    forget_after: Duration,
    /// When silent hosts and series were last looked for (clock ms).
    forget_checked_ms: Option<i64>,
    /// The revoked hosts, forgotten at once, when the collector enrolls them.
    revocations: Option<RevocationList>,
    /// Where the time spent judging is recorded, when the collector serves `/metrics`.
    telemetry: Option<crate::telemetry::Telemetry>,
}

impl LiveAlerts {
    /// Restores the saved state (host records, or once the older single record), or starts
    /// afresh when there is none (or it cannot be read: that is reported, and an unreadable
    /// single record is kept aside).
    pub fn open(
        store: Store,
        rules: RuleSet,
        settings: EngineSettings,
        mut dispatch: Dispatch,
        now_ms: i64,
    ) -> Self {
        let mut health = Health::default();
        let mut upgrading = false;
        let engine = match read_records(&store) {
            Some((records, pipeline)) => {
                dispatch.restore(pipeline.deferred);
                health = pipeline.health;
                tracing::info!(hosts = records.len(), "alert state restored");
                Engine::restore_records(rules, settings, records, now_ms)
            }
            None => match read_single_record(&store) {
                Some(saved) => {
                    dispatch.restore(saved.deferred);
                    health = saved.health;
                    upgrading = true;
                    tracing::info!("alert state restored from its older single record");
                    let mut engine =
                        Engine::restore_with_settings(rules, settings, saved.engine, now_ms);
                    engine.mark_all_changed();
                    engine
                }
                None => Engine::with_settings(rules, settings),
            },
        };
        Self {
            store: Some(store),
            upgrading,
            health,
            ..Self::simulated(engine, dispatch, Clock::System)
        }
    }

    /// The same path without a store, reading `clock`: what `backtest --policy` drives.
    pub fn simulated(engine: Engine, dispatch: Dispatch, clock: Clock) -> Self {
        Self {
            engine,
            dispatch,
            store: None,
            pipeline_saved: Vec::new(),
            upgrading: false,
            save_counts: SaveCounts::default(),
            clock,
            health: Health::default(),
            health_unsent: Vec::new(),
            channels: None,
            fleet: None,
            log_lines: LogLines::default(),
            lag: None,
            lag_logged_at: None,
            lag_alert_after: DEFAULT_LAG_ALERT_AFTER,
            judging_delay: Duration::ZERO,
            forget_after: DEFAULT_FORGET_AFTER,
            forget_checked_ms: None,
            revocations: None,
            telemetry: None,
        }
    }

    /// Records how long each judgement takes (a stored batch, a scheduled evaluation).
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Raises alerts for enrolled agents that never connected and certificates not renewed.
    pub fn with_fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Raises an alert for a channel the notifier reports failing again and again.
    pub fn with_channel_health(mut self, channels: ChannelHealth) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Forgets hosts and series that sent nothing for `after`.
    pub fn with_forget_after(mut self, after: Duration) -> Self {
        self.forget_after = after;
        self
    }

    /// Forgets a host at once when it is revoked (and has not reported since).
    pub fn with_revocations(mut self, revocations: RevocationList) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Raises `EngineBehind` once the oldest unjudged batch has waited `after`.
    pub fn with_lag_alert_after(mut self, after: Duration) -> Self {
        self.lag_alert_after = after;
        self
    }

    /// Spends `delay` more on every stored batch, as an expensive rule would: for tests and
    /// benchmarks of an engine slower than ingest.
    pub fn with_judging_delay(mut self, delay: Duration) -> Self {
        self.judging_delay = delay;
        self
    }

    /// Reads the time from `clock` instead of the system clock (the notifier must share it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// What the clock says now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.clock.now_ms()).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Runs until `shutdown` (or until ingest is gone): samples as they are stored, the
    /// schedule every evaluation interval, the policy folder every few seconds; saves at
    /// every evaluation with changes and at the end, after judging what ingest acknowledged.
    pub async fn run(mut self, mut events: EventQueue, shutdown: CancellationToken) {
        self.lag = Some(events.lag());
        let author = "collector";
        self.sync_policies(author);
        let interval = Duration::from_millis(self.engine.settings().evaluation_interval_ms as u64);
        let mut evaluation = tokio::time::interval(interval);
        evaluation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut policy_sync = tokio::time::interval(POLICY_SYNC_INTERVAL);
        policy_sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(received) => {
                        self.on_received(&received);
                        self.log_lag();
                    }
                    // Ingest is gone: nothing more can arrive.
                    None => break,
                },
                _ = evaluation.tick() => self.evaluate(),
                _ = policy_sync.tick() => self.sync_policies(author),
            }
        }
        // Batches stored before the stop are judged before the state is saved: an ack the
        // agent received must not leave a condition unseen by the engine. Sessions finishing
        // their last batch may still be handing one over.
        events
            .drain(DRAIN_DEADLINE, |received| self.on_received(&received))
            .await;
        self.save(true);
    }

    /// Reads changed policy files and hands the contracts' forecast horizons to the engine.
    pub fn sync_policies(&mut self, author: &str) {
        for problem in self.dispatch.policies().sync(author, self.now()) {
            tracing::error!("{problem}");
        }
        for (client, horizons) in self.dispatch.policies().forecast_horizons() {
            self.engine.set_forecast_horizons(
                &client,
                horizons.map(|horizons| (horizons.warn, horizons.critical)),
            );
        }
    }

    /// Judges an event taken from the queue as of when ingest published it.
    fn on_received(&mut self, received: &Received) {
        let as_of_ms = self.now_ms().min(received.published_ms);
        self.on_event_at(&received.event, as_of_ms);
    }

    /// Judges what one ingest event tells, as it arrives now.
    pub fn on_event(&mut self, event: &IngestEvent) {
        let now_ms = self.now_ms();
        self.on_event_at(event, now_ms);
    }

    /// Judges what one ingest event tells, as of `now_ms` (when it arrived): a batch the
    /// engine reaches late is judged as of its arrival, not taken for an agent's late replay.
    fn on_event_at(&mut self, event: &IngestEvent, now_ms: i64) {
        match event {
            IngestEvent::Stored { peer, batch } => {
                self.log_lines.note(&peer.host, &batch.log_excerpts);
                if !self.judging_delay.is_zero() {
                    // The engine has a thread of its own: sleeping here is what a slow rule
                    // costs it.
                    std::thread::sleep(self.judging_delay);
                }
                let mut transitions = Vec::new();
                let started = Instant::now();
                for series in &batch.series {
                    let mut labels = series.labels.clone();
                    labels.insert("host", peer.host.clone());
                    labels.insert("client", peer.client.clone());
                    let id = self.engine.series_id(&series.name, &labels);
                    for sample in &series.samples {
                        self.engine
                            .observe_series(id, *sample, now_ms, &mut transitions);
                    }
                }
                if let Some(telemetry) = &self.telemetry {
                    telemetry.evaluated(crate::telemetry::Evaluation::Batch, started.elapsed());
                }
                self.deliver(&transitions);
                if !transitions.is_empty() {
                    self.save(false);
                }
            }
            IngestEvent::Goodbye { peer, reason } => match reason {
                GoodbyeReason::Shutdown | GoodbyeReason::Sleep => {
                    self.engine.host_goodbye(&peer.host, None);
                }
                GoodbyeReason::Reboot => {
                    self.engine.host_goodbye(&peer.host, Some(now_ms));
                }
                GoodbyeReason::ServiceStop | GoodbyeReason::Unspecified => {}
            },
            _ => {}
        }
    }

    /// Judges one sample of a series the engine already knows, as it arrives now; returns
    /// how many transitions it caused (each is in the outbox when this returns).
    pub fn observe(&mut self, id: SeriesId, sample: Sample) -> usize {
        let now_ms = self.now().as_millisecond();
        let mut transitions = Vec::new();
        self.engine
            .observe_series(id, sample, now_ms, &mut transitions);
        self.deliver(&transitions);
        if !transitions.is_empty() {
            self.save(false);
        }
        transitions.len()
    }

    /// One scheduled evaluation: forecasts, silence, staleness; then what waited.
    pub fn evaluate(&mut self) {
        let now = self.now();
        let started = Instant::now();
        let transitions = self.engine.evaluate(now.as_millisecond());
        if let Some(telemetry) = &self.telemetry {
            telemetry.evaluated(crate::telemetry::Evaluation::Schedule, started.elapsed());
        }
        self.deliver(&transitions);
        self.forget(now.as_millisecond());
        let problems = self.problems(now.as_millisecond());
        let transitions = self.health.update(&problems, now.as_millisecond());
        self.deliver_health(transitions);
        let engine = &self.engine;
        let summary_now = |transition: &Transition| {
            engine.firing_summary(&transition.rule, &transition.host, &transition.labels)
        };
        if let Err(error) = self.dispatch.release_due(now, summary_now) {
            tracing::error!("releasing waiting alerts: {error}");
        }
        self.save(true);
    }

    /// Drops what stopped reporting from the engine (and so from the saved state): revoked
    /// hosts at once, hosts and series silent for the forget time once an hour. Firing alerts
    /// of a forgotten host are resolved.
    fn forget(&mut self, now_ms: i64) {
        let time_due = self
            .forget_checked_ms
            .is_none_or(|checked| now_ms - checked >= FORGET_CHECK_EVERY_MS);
        let forget_after_ms = if time_due {
            self.forget_checked_ms = Some(now_ms);
            i64::try_from(self.forget_after.as_millis()).unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let revocations = self.revocations.clone();
        // A host is gone when its certificate is revoked and it has not reported since
        // (a host enrolled again under the same name reports after its revocation): the
        // revocation list answers that for a certificate issued at the last report.
        let revoked = |host: &str, last_seen_ms: Option<i64>| {
            revocations.as_ref().is_some_and(|list| {
                list.is_revoked(&PeerIdentity {
                    host: host.to_owned(),
                    client: String::new(),
                    issued_at_ms: last_seen_ms.unwrap_or(i64::MIN),
                    expires_at_ms: i64::MAX,
                })
            })
        };
        let forgotten = self.engine.forget(now_ms, forget_after_ms, revoked);
        if forgotten.hosts.is_empty() && forgotten.series == 0 && forgotten.instances == 0 {
            return;
        }
        for host in &forgotten.hosts {
            self.log_lines.forget(host);
        }
        tracing::info!(
            hosts = forgotten.hosts.len(),
            series = forgotten.series,
            instances = forgotten.instances,
            "forgot what stopped reporting (revoked, or silent for {})",
            humantime::format_duration(self.forget_after)
        );
        self.deliver(&forgotten.resolved);
    }

    /// Vigil's own problems as of now: policy files that do not load, channels that keep
    /// failing, agents that never connected, certificates not renewed.
    fn problems(&self, now_ms: i64) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .dispatch
            .policies()
            .failing()
            .into_iter()
            .map(|(path, why)| Problem {
                rule: "PolicyLoadFailed",
                summary: format!("{why}; fix the file, it is read again within seconds"),
                subject: ("file", path.display().to_string()),
                since_ms: None,
            })
            .collect();
        for (channel, trouble) in self.channels.iter().flat_map(ChannelHealth::failing) {
            problems.push(Problem {
                rule: "ChannelFailing",
                summary: format!(
                    "delivery channel '{channel}' failed {} attempts in a row, the last: {}; \
                     alerts routed only to it are not reaching anyone, check its settings \
                     in [notify]",
                    trouble.failures_in_a_row, trouble.last_error
                ),
                subject: ("channel", channel),
                since_ms: Some(trouble.since_ms),
            });
        }
        if let Some(fleet) = &self.fleet {
            problems.extend(fleet.problems(now_ms));
        }
        if let Some(store) = &self.store {
            problems.extend(storage_problem(&store.write_health(), store.data_dir()));
        }
        if let Some(lag) = &self.lag {
            problems.extend(lag_problem(lag, self.lag_alert_after));
        }
        problems
    }

    /// Logs how far behind the engine is, at most once a minute while it is.
    fn log_lag(&mut self) {
        let Some(lag) = &self.lag else { return };
        let behind = lag.oldest_wait();
        if behind < LAG_WARNING
            || self
                .lag_logged_at
                .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        self.lag_logged_at = Some(Instant::now());
        tracing::warn!(
            waiting = lag.depth(),
            oldest_wait_s = behind.as_secs(),
            "the alert engine is behind ingest: {} batches wait, the oldest for {}; agents' \
             acknowledgements are slowed meanwhile, nothing is skipped",
            lag.depth(),
            humantime::format_duration(Duration::from_secs(behind.as_secs()))
        );
    }

    fn deliver(&mut self, transitions: &[Transition]) {
        let now = self.now();
        for transition in transitions {
            let with_line = self.log_lines.attach(transition);
            let transition = with_line.as_ref().unwrap_or(transition);
            if let Err(error) = self.dispatch.handle(transition, now) {
                // The outbox is on local disk; if it fails, the alert is at least in the log.
                tracing::error!(
                    rule = %transition.rule,
                    host = %transition.host,
                    summary = %transition.summary,
                    "enqueueing an alert failed: {error}"
                );
            }
        }
    }

    /// Delivers Vigil's own alerts, keeping those the outbox could not take for the next
    /// evaluation: the outbox shares the data directory's disk, and a full disk is one of
    /// the problems raised here. (Kept in memory: a restart raises an open problem anew.)
    fn deliver_health(&mut self, transitions: Vec<Transition>) {
        let now = self.now();
        let mut waiting = std::mem::take(&mut self.health_unsent);
        waiting.extend(transitions);
        for transition in waiting {
            if let Err(error) = self.dispatch.handle(&transition, now) {
                tracing::error!(
                    rule = %transition.rule,
                    summary = %transition.summary,
                    "enqueueing one of the collector's own alerts failed, trying again at the \
                     next evaluation: {error}"
                );
                self.health_unsent.push(transition);
            }
        }
    }

    /// Writes the host records whose alerts changed (with `samples_too`, also those that
    /// only had new samples: once per evaluation), and the pipeline record if it changed, in
    /// one durable write. A failed write marks them changed again, so the next save retries
    /// them.
    fn save(&mut self, samples_too: bool) {
        let Some(store) = &self.store else {
            return;
        };
        let records = self.engine.take_changed(samples_too);
        let mut puts = Vec::with_capacity(records.len() + 1);
        let mut removes = Vec::new();
        for record in &records {
            let key = format!("{HOST_PREFIX}{}", record.name);
            if record.is_gone() {
                removes.push(key);
                continue;
            }
            match serde_json::to_vec(record) {
                Ok(bytes) => puts.push((key, bytes)),
                Err(error) => {
                    tracing::error!("encoding the alert state of '{}': {error}", record.name)
                }
            }
        }
        let n_records = puts.len() as u64;
        let pipeline = SavedPipeline {
            deferred: self.dispatch.deferred().to_vec(),
            health: self.health.clone(),
        };
        let pipeline = serde_json::to_vec(&pipeline).unwrap_or_default();
        let pipeline_changed = pipeline != self.pipeline_saved;
        if pipeline_changed {
            puts.push((PIPELINE_KEY.to_string(), pipeline.clone()));
        }
        if self.upgrading {
            removes.push(STATE_KEY.to_string());
        }
        let bytes: u64 = puts
            .iter()
            .map(|(key, value)| (key.len() + value.len()) as u64)
            .sum::<u64>()
            + removes.iter().map(|key| key.len() as u64).sum::<u64>();
        match store.write_states(&puts, &removes) {
            Ok(()) => {
                self.upgrading = false;
                if pipeline_changed {
                    self.pipeline_saved = pipeline;
                }
                if !puts.is_empty() || !removes.is_empty() {
                    self.save_counts.saves += 1;
                    self.save_counts.records += n_records;
                    self.save_counts.bytes += bytes;
                }
            }
            Err(error) => {
                tracing::error!("saving the alert state: {error}");
                for record in &records {
                    self.engine.mark_changed(&record.name);
                }
            }
        }
    }

    /// What saving has written since start.
    pub fn save_counts(&self) -> SaveCounts {
        self.save_counts
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to register series with before their samples are observed.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// The host records and the pipeline record, when state was saved by host.
fn read_records(store: &Store) -> Option<(Vec<HostRecord>, SavedPipeline)> {
    let stored = match store.states_with_prefix(HOST_PREFIX) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!("reading the saved alert state: {error}; starting afresh");
            return None;
        }
    };
    let pipeline = store.state(PIPELINE_KEY).ok().flatten();
    if stored.is_empty() && pipeline.is_none() {
        return None;
    }
    let mut records = Vec::with_capacity(stored.len());
    for (key, bytes) in stored {
        match serde_json::from_slice::<HostRecord>(&bytes) {
            Ok(record) => records.push(record),
            Err(error) => tracing::error!(
                "the saved alert state '{key}' cannot be read ({error}); that host's alerts \
                 start afresh"
            ),
        }
    }
    let pipeline = match pipeline.map(|bytes| serde_json::from_slice::<SavedPipeline>(&bytes)) {
        Some(Ok(pipeline)) => pipeline,
        Some(Err(error)) => {
            tracing::error!(
                "the saved alert state '{PIPELINE_KEY}' cannot be read ({error}); waiting \
                 alerts and the collector's own open problems start afresh"
            );
            SavedPipeline::default()
        }
        None => SavedPipeline::default(),
    };
    Some((records, pipeline))
}

/// The state saved as one record by collectors before state was saved by host.
fn read_single_record(store: &Store) -> Option<SavedState> {
    match store.state(STATE_KEY) {
        Ok(Some(bytes)) => match serde_json::from_slice::<SavedState>(&bytes) {
            Ok(saved) => Some(saved),
            Err(error) => {
                tracing::error!(
                    "the saved alert state cannot be read ({error}); starting afresh, the \
                     old record is kept as '{STATE_KEY}.unreadable'"
                );
                let _ = store.put_state(&format!("{STATE_KEY}.unreadable"), &bytes);
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::error!("reading the saved alert state: {error}; starting afresh");
            None
        }
    }
}

/// The store refusing writes (a full or failing disk) as a problem for the MSP: agents keep
/// their data meanwhile, and ingest resumes by itself once writes succeed again.
fn storage_problem(
    health: &crate::store::WriteHealth,
    data_dir: &std::path::Path,
) -> Option<Problem> {
    let since = health.failing_since?;
    let reason = health.reason.as_deref().unwrap_or("writes fail");
    Some(Problem {
        rule: "StorageWriteFailing",
        subject: ("data_dir", data_dir.display().to_string()),
        summary: format!(
            "the collector cannot write its store in {}: {reason}; agents keep their data \
             and ingest resumes by itself once writes succeed: free space on that disk",
            data_dir.display()
        ),
        since_ms: since
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|elapsed| elapsed.as_millis() as i64),
    })
}

/// The engine behind ingest for longer than `after`, as a problem for the MSP.
fn lag_problem(lag: &EventLag, after: Duration) -> Option<Problem> {
    let behind = lag.oldest_wait();
    if lag.depth() == 0 || behind < after {
        return None;
    }
    Some(Problem {
        rule: "EngineBehind",
        subject: ("consumer", lag.name.to_string()),
        summary: format!(
            "the alert engine is {} behind ingest with {} batches waiting; agents' \
             acknowledgements slow down until it catches up (nothing is skipped): check the \
             collector's CPU and the rules file for expensive rules",
            crate::alert::summary::duration(behind.as_millis() as f64),
            lag.depth()
        ),
        since_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Outbox;
    use crate::pipeline::Policies;
    use crate::store::{StoreConfig, WriteHealth};
    use std::path::Path;
    use std::time::UNIX_EPOCH;
    use vigil_proto::model::{Batch, Labels, Series};

    const START_MS: i64 = 1_800_000_000_000;

    fn rules() -> RuleSet {
        crate::alert::parse_rules(
            Path::new("rules.toml"),
            "[rules.ServiceDown]\nfor = \"0s\"\n",
        )
        .unwrap()
    }

    /// A live pipeline on the store in `dir`, on a manual clock at `clock`.
    fn open(dir: &Path, store: &Store, clock: &Clock) -> LiveAlerts {
        let outbox = Arc::new(Outbox::open(dir).unwrap());
        let policies = Arc::new(Policies::open(dir, None));
        let dispatch = Dispatch::new(outbox, policies, Default::default());
        LiveAlerts::open(
            store.clone(),
            rules(),
            EngineSettings::default(),
            dispatch,
            clock.now_ms(),
        )
        .with_clock(clock.clone())
    }

    fn service(host: &str, up: f64, at_ms: i64) -> IngestEvent {
        IngestEvent::Stored {
            peer: PeerIdentity {
                host: host.into(),
                client: "acme".into(),
                issued_at_ms: 0,
                expires_at_ms: i64::MAX,
            },
            batch: Arc::new(Batch {
                seq: 1,
                series: vec![Series {
                    name: "service_up".into(),
                    labels: Labels::from_pairs([("service", "spooler")]),
                    samples: vec![Sample {
                        timestamp_ms: at_ms,
                        value: up,
                    }],
                }],
                ..Default::default()
            }),
        }
    }

    fn saved_hosts(store: &Store) -> Vec<String> {
        store
            .states_with_prefix(HOST_PREFIX)
            .unwrap()
            .into_iter()
            .map(|(key, _)| key[HOST_PREFIX.len()..].to_string())
            .collect()
    }

    #[test]
    fn samples_wait_for_the_evaluation_a_transition_is_saved_at_once_and_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("store"))).unwrap();
        let clock = Clock::manual(START_MS);
        let mut live = open(dir.path(), &store, &clock);

        live.on_event(&service("pc-01", 1.0, START_MS));
        assert!(saved_hosts(&store).is_empty(), "samples alone wait");
        live.on_event(&service("pc-02", 0.0, START_MS));
        assert_eq!(
            saved_hosts(&store),
            ["pc-02"],
            "a transition saves its host at once; samples alone still wait"
        );

        clock.advance(Duration::from_secs(10));
        live.on_event(&service("pc-01", 1.0, START_MS + 10_000));
        let before = live.save_counts();
        live.evaluate();
        let after = live.save_counts();
        assert_eq!(after.records - before.records, 1, "only pc-01 changed");
        assert_eq!(saved_hosts(&store), ["pc-01", "pc-02"]);

        // A crash: the pipeline is dropped without its final save. The firing alert is
        // restored as firing, so the next sample does not fire it again.
        drop(live);
        let mut live = open(dir.path(), &store, &clock);
        let open_alerts = live.engine().open_alerts();
        assert!(
            open_alerts
                .iter()
                .any(|alert| alert.host == "pc-02" && alert.firing),
            "{open_alerts:?}"
        );
        clock.advance(Duration::from_secs(10));
        let mut transitions = Vec::new();
        let id = live.engine_mut().series_id(
            "service_up",
            &Labels::from_pairs([
                ("client", "acme"),
                ("host", "pc-02"),
                ("service", "spooler"),
            ]),
        );
        live.engine_mut().observe_series(
            id,
            Sample {
                timestamp_ms: START_MS + 20_000,
                value: 0.0,
            },
            START_MS + 20_000,
            &mut transitions,
        );
        assert!(transitions.is_empty(), "{transitions:?}");
    }

    #[test]
    fn a_revoked_host_is_forgotten_at_once_and_a_silent_one_after_the_forget_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("store"))).unwrap();
        let clock = Clock::manual(START_MS);
        let revocations = RevocationList::new();
        let mut live = open(dir.path(), &store, &clock)
            .with_revocations(revocations.clone())
            .with_forget_after(Duration::from_secs(7 * 24 * 3600));
        live.on_event(&service("pc-01", 1.0, START_MS));
        live.on_event(&service("pc-02", 1.0, START_MS));
        live.evaluate();
        assert_eq!(saved_hosts(&store), ["pc-01", "pc-02"]);

        clock.advance(Duration::from_secs(60));
        revocations.replace([("pc-01".to_string(), clock.now_ms())].into());
        live.evaluate();
        assert_eq!(saved_hosts(&store), ["pc-02"], "revoked: forgotten at once");
        assert!(live
            .engine()
            .snapshot()
            .hosts
            .iter()
            .all(|h| h.host != "pc-01"));

        // pc-02 falls silent; its silence alert fires, and after a week it is forgotten
        // and the alert resolved.
        for _ in 0..(8 * 24) {
            clock.advance(Duration::from_secs(3600));
            live.evaluate();
        }
        assert!(saved_hosts(&store).is_empty(), "{:?}", saved_hosts(&store));
        assert!(live.engine().snapshot().hosts.is_empty());
        assert!(live.engine().open_alerts().is_empty());
    }

    #[test]
    fn the_older_single_record_is_read_once_and_replaced_by_host_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path().join("store"))).unwrap();
        let mut engine = Engine::with_settings(rules(), EngineSettings::default());
        let labels = |host: &str| {
            Labels::from_pairs([
                ("__name__", "service_up"),
                ("client", "acme"),
                ("host", host),
                ("service", "spooler"),
            ])
        };
        engine.observe(
            &labels("pc-01"),
            Sample {
                timestamp_ms: START_MS,
                value: 0.0,
            },
        );
        engine.observe(
            &labels("pc-02"),
            Sample {
                timestamp_ms: START_MS,
                value: 1.0,
            },
        );
        let old = SavedState {
            engine: engine.snapshot(),
            deferred: Vec::new(),
            health: Health::default(),
        };
        store
            .put_state(STATE_KEY, &serde_json::to_vec(&old).unwrap())
            .unwrap();

        let clock = Clock::manual(START_MS + 1_000);
        let mut live = open(dir.path(), &store, &clock);
        assert!(live
            .engine()
            .open_alerts()
            .iter()
            .any(|a| a.host == "pc-01" && a.firing));
        live.evaluate();
        assert_eq!(
            store.state(STATE_KEY).unwrap(),
            None,
            "the old record is gone"
        );
        assert_eq!(saved_hosts(&store), ["pc-01", "pc-02"]);
        drop(live);

        let live = open(dir.path(), &store, &clock);
        assert!(live
            .engine()
            .open_alerts()
            .iter()
            .any(|a| a.host == "pc-01" && a.firing));
        assert_eq!(live.engine().snapshot().series.len(), 2);
    }

    #[tokio::test]
    async fn an_engine_behind_ingest_is_a_problem_naming_the_queue_and_what_waits() {
        let bus = crate::ingest::EventBus::new();
        let queue = bus.consume("alert_engine", 8);
        let lag = queue.lag();
        assert_eq!(lag_problem(&lag, Duration::ZERO), None, "nothing waits");
        let peer = crate::ingest::identity::PeerIdentity {
            host: "pc-01".into(),
            client: "acme".into(),
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        };
        bus.publish(IngestEvent::Disconnected { peer }).await;
        assert_eq!(
            lag_problem(&lag, Duration::from_secs(3600)),
            None,
            "not behind for long"
        );
        let problem = lag_problem(&lag, Duration::ZERO).expect("behind");
        assert_eq!(problem.rule, "EngineBehind");
        assert_eq!(problem.subject, ("consumer", "alert_engine".to_string()));
        assert!(
            problem.summary.contains("1 batches waiting"),
            "{}",
            problem.summary
        );
        assert!(
            crate::alert::catalog::HEALTH_RULES.contains(&problem.rule),
            "a rule of the catalog"
        );
    }

    #[test]
    fn a_store_that_refuses_writes_is_a_problem_naming_the_folder_and_since_when() {
        assert_eq!(
            storage_problem(&WriteHealth::default(), Path::new("/var/lib/vigil")),
            None
        );
        let failing = WriteHealth {
            failing_since: Some(UNIX_EPOCH + Duration::from_secs(1_000)),
            reason: Some("writing wal/00000012.log: No space left on device".into()),
        };
        let problem = storage_problem(&failing, Path::new("/var/lib/vigil")).unwrap();
        assert_eq!(problem.rule, "StorageWriteFailing");
        assert_eq!(problem.subject, ("data_dir", "/var/lib/vigil".to_string()));
        assert_eq!(problem.since_ms, Some(1_000_000));
        assert!(
            problem.summary.contains("No space left on device"),
            "{}",
            problem.summary
        );
        assert!(
            problem.summary.contains("free space"),
            "{}",
            problem.summary
        );
    }
}
