//! The checks beyond sysinfo — services, SMART, backups, log watch — and the board where each
//! posts what it last found, so that a tick only reads and never waits for one of them.
//!
//! [`Checks`] starts every configured check in the background: the ones that run a local
//! command on a schedule (`services`, `smart`) as tokio tasks, the ones that follow files
//! (`backups`, `logwatch`) on one file-watching thread. Each posts its results to the
//! [`Board`] as families of readings; [`Checks::collect`] turns the board into a tick's
//! series, and a family that failed is left out and logged once per streak, exactly like the
//! host families (see `family`). [`Checks::reconfigure`] stops everything and starts the
//! new configuration, which is how a changed `agent.toml` takes effect without a restart.
//!
//! Nothing here runs anything the collector sends: the commands are the agent's own, with
//! arguments from the local config file.

use super::backups::{BackupConfig, BackupJob};
use super::family::{FamilyError, FamilyHealth};
use super::file_watch::{FileWatch, WatchedFile};
use super::logwatch::{LogConfig, LogTail};
use super::series::SeriesSink;
use super::services::ServicesConfig;
use super::smart::SmartConfig;
use super::updates::UpdatesConfig;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_proto::limits::MAX_LOG_EXCERPTS_PER_BATCH;
use vigil_proto::model::{LogExcerpt, Series};

/// How often the file-following checks look again without an event, in case one was missed
/// (a network share delivers no events for changes made by other machines).
const FILE_RESCAN_INTERVAL: Duration = Duration::from_secs(300);

/// `[checks]` in `agent.toml`: which checks run, and how.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// `[checks.services]`: system services expected to run.
    #[serde(default)]
    pub services: ServicesConfig,
    /// `[checks.smart]`: disk health through smartctl.
    #[serde(default)]
    pub smart: SmartConfig,
    /// `[checks.updates]`: a pending reboot and pending OS updates, on a slow schedule.
    #[serde(default)]
    pub updates: UpdatesConfig,
    /// `[[checks.backup]]`: one table per backup job.
    #[serde(default)]
    pub backup: Vec<BackupConfig>,
    /// `[[checks.log]]`: one table per log file to watch.
    #[serde(default)]
    pub log: Vec<LogConfig>,
}

impl ChecksConfig {
    /// Resolves relative paths against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for job in &mut self.backup {
            job.resolve_path(base);
        }
        for log in &mut self.log {
            log.resolve_path(base);
        }
    }

    /// Every problem of every check, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.services.problems("checks.services", &mut problems);
        self.smart.problems("checks.smart", &mut problems);
        self.updates.problems("checks.updates", &mut problems);
        let mut jobs = HashSet::new();
        for (index, job) in self.backup.iter().enumerate() {
            let key = format!("checks.backup[{index}]");
            job.problems(&key, &mut problems);
            if !jobs.insert(job.job.as_str()) {
                problems.push(format!(
                    "{key}.job = {:?} is used twice; give each backup job its own name",
                    job.job
                ));
            }
        }
        let mut logs = HashSet::new();
        for (index, log) in self.log.iter().enumerate() {
            let key = format!("checks.log[{index}]");
            log.problems(&key, &mut problems);
            if !logs.insert(log.name.as_str()) {
                problems.push(format!(
                    "{key}.name = {:?} is used twice; give each watched log its own name",
                    log.name
                ));
            }
        }
        problems
    }
}

/// One measurement a check found, to be written at the tick's timestamp.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Reading {
    pub(crate) fn new(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Self {
        Self {
            name,
            labels: labels
                .iter()
                .map(|(label, value)| (*label, (*value).to_owned()))
                .collect(),
            value,
        }
    }
}

/// What one family of a check last found: its readings, or why there are none.
pub(crate) type Outcome = Result<Vec<Reading>, String>;

/// The latest outcome of every family of every check. Checks post whole groups (all the
/// families one check has), so a device or a job that disappears disappears from the board.
#[derive(Debug, Default)]
pub(crate) struct Board {
    groups: Mutex<BTreeMap<&'static str, Group>>,
    /// Matched log lines not yet taken into a batch: the newest per log and pattern.
    excerpts: Mutex<Vec<LogExcerpt>>,
    /// Signalled on every post, for tests that wait for an event rather than a deadline.
    posted: Condvar,
}

#[derive(Debug)]
struct Group {
    families: Vec<(String, Outcome)>,
    posted_at: Instant,
    /// A group not posted again within this long is reported as stuck.
    fresh_for: Option<Duration>,
}

impl Board {
    /// Replaces everything `group` said before.
    pub(crate) fn post(
        &self,
        group: &'static str,
        families: Vec<(String, Outcome)>,
        fresh_for: Option<Duration>,
    ) {
        let mut groups = self.lock();
        groups.insert(
            group,
            Group {
                families,
                posted_at: Instant::now(),
                fresh_for,
            },
        );
        drop(groups);
        self.posted.notify_all();
    }

    /// Every family's outcome, in group order; a group that is overdue becomes one failed
    /// family named after it.
    pub(crate) fn snapshot(&self) -> Vec<(String, Outcome)> {
        snapshot_of(&self.lock())
    }

    fn clear(&self) {
        self.lock().clear();
        self.take_excerpts();
    }

    /// Keeps `new` for the next batch; a newer line replaces an older one of the same log and
    /// pattern, so what waits stays within the protocol's bound however long the wait.
    pub(crate) fn add_excerpts(&self, new: Vec<LogExcerpt>) {
        if new.is_empty() {
            return;
        }
        let mut excerpts = self.excerpts.lock().unwrap_or_else(|p| p.into_inner());
        for excerpt in new {
            excerpts.retain(|kept| (&kept.log, &kept.pattern) != (&excerpt.log, &excerpt.pattern));
            excerpts.push(excerpt);
        }
        let over = excerpts.len().saturating_sub(MAX_LOG_EXCERPTS_PER_BATCH);
        excerpts.drain(..over);
    }

    /// The matched lines waiting for a batch, oldest first; the board keeps none after.
    pub(crate) fn take_excerpts(&self) -> Vec<LogExcerpt> {
        std::mem::take(&mut *self.excerpts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until `done` holds for the board's snapshot, or `deadline` passes; true if it
    /// held. Woken by each post, so it returns as soon as a check has posted what is awaited.
    #[cfg(test)]
    pub(crate) fn wait_until(
        &self,
        deadline: Duration,
        done: impl Fn(&[(String, Outcome)]) -> bool,
    ) -> bool {
        let until = Instant::now() + deadline;
        let mut groups = self.lock();
        loop {
            if done(&snapshot_of(&groups)) {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            groups = self
                .posted
                .wait_timeout(groups, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Group>> {
        // Posting replaces a whole group at once, so a panic elsewhere leaves it consistent.
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn snapshot_of(groups: &BTreeMap<&'static str, Group>) -> Vec<(String, Outcome)> {
    let mut families = Vec::new();
    for (name, group) in groups {
        match group.fresh_for {
            Some(fresh_for) if group.posted_at.elapsed() > fresh_for => {
                families.push((
                    (*name).to_owned(),
                    Err(format!(
                        "no result for {} s; the check seems stuck",
                        group.posted_at.elapsed().as_secs()
                    )),
                ));
            }
            _ => families.extend(group.families.iter().cloned()),
        }
    }
    families
}

/// The running checks. Create with [`Checks::start`] inside the agent's tokio runtime.
pub struct Checks {
    board: Arc<Board>,
    family_health: FamilyHealth,
    running: Running,
}

struct Running {
    /// Stops the scheduled checks' tasks.
    shutdown: CancellationToken,
    /// The thread that follows backup and log files; stops when dropped.
    _file_watch: Option<FileWatch>,
}

impl Checks {
    /// Starts every check `config` enables. A check that cannot work on this machine (no
    /// smartctl, an unreadable log) reports why on the board; the others run regardless.
    pub fn start(config: &ChecksConfig) -> Self {
        let board = Arc::new(Board::default());
        let running = start_checks(config, &board);
        Self {
            board,
            family_health: FamilyHealth::new(),
            running,
        }
    }

    /// Stops every check and starts those of `config`.
    pub fn reconfigure(&mut self, config: &ChecksConfig) {
        self.running.shutdown.cancel();
        self.board.clear();
        self.running = start_checks(config, &self.board);
    }

    /// The checks' latest readings as series at `timestamp_ms`. Never waits for a check.
    pub fn collect(&mut self, timestamp_ms: i64) -> Vec<Series> {
        let snapshot = self.board.snapshot();
        let mut tick = Vec::new();
        for (family, outcome) in &snapshot {
            self.family_health
                .run(family, timestamp_ms, &mut tick, |sink| write(sink, outcome));
        }
        self.family_health
            .forget_except(|family| snapshot.iter().any(|(present, _)| present == family));
        tick
    }

    /// The log lines that matched since the last call, newest per log and pattern.
    pub fn take_excerpts(&self) -> Vec<LogExcerpt> {
        self.board.take_excerpts()
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        self.running.shutdown.cancel();
    }
}

fn write(sink: &mut SeriesSink, outcome: &Outcome) -> Result<(), FamilyError> {
    let readings = outcome.as_ref().map_err(FamilyError::unavailable)?;
    for reading in readings {
        let labels: Vec<(&'static str, &str)> = reading
            .labels
            .iter()
            .map(|(label, value)| (*label, value.as_str()))
            .collect();
        sink.push(reading.name, &labels, reading.value);
    }
    Ok(())
}

fn start_checks(config: &ChecksConfig, board: &Arc<Board>) -> Running {
    let shutdown = CancellationToken::new();
    if config.services.enabled {
        let check = config.services.clone();
        tokio::spawn(
            check
                .run(board.clone(), shutdown.clone())
                .instrument(tracing::info_span!("check", name = "services")),
        );
    }
    if config.smart.enabled {
        let check = config.smart.clone();
        tokio::spawn(
            check
                .run(board.clone(), shutdown.clone())
                .instrument(tracing::info_span!("check", name = "smart")),
        );
    }
    if config.updates.enabled {
        let check = config.updates.clone();
        tokio::spawn(
            check
                .run(board.clone(), shutdown.clone())
                .instrument(tracing::info_span!("check", name = "updates")),
        );
    }
    let mut watched: Vec<Box<dyn WatchedFile>> = Vec::new();
    for job in &config.backup {
        watched.push(Box::new(BackupJob::new(job)));
    }
    for log in &config.log {
        watched.push(Box::new(LogTail::new(log)));
    }
    let file_watch = if watched.is_empty() {
        None
    } else {
        match FileWatch::start(watched, board.clone(), FILE_RESCAN_INTERVAL) {
            Ok(file_watch) => Some(file_watch),
            Err(error) => {
                board.post(
                    "file_watch",
                    vec![(
                        "file_watch".to_owned(),
                        Err(format!("backup and log checks cannot run: {error}")),
                    )],
                    None,
                );
                None
            }
        }
    };
    Running {
        shutdown,
        _file_watch: file_watch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_family_is_left_out_and_the_others_are_written() {
        let board = Arc::new(Board::default());
        board.post(
            "smart",
            vec![
                (
                    "smart sda".into(),
                    Ok(vec![Reading::new(
                        "disk_smart_healthy",
                        &[("device", "sda")],
                        1.0,
                    )]),
                ),
                ("smart sdb".into(), Err("permission denied".into())),
            ],
            None,
        );
        let mut checks = Checks {
            board: board.clone(),
            family_health: FamilyHealth::new(),
            running: Running {
                shutdown: CancellationToken::new(),
                _file_watch: None,
            },
        };
        let series = checks.collect(1_754_000_000_000);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels.get("device"), Some("sda"));
        assert!(checks.family_health.is_failing("smart sdb"));

        // The failing device is gone from the next post: its streak is forgotten.
        board.post("smart", vec![], None);
        assert!(checks.collect(1_754_000_010_000).is_empty());
        assert!(!checks.family_health.is_failing("smart sdb"));
    }

    #[test]
    fn an_overdue_group_is_reported_as_stuck() {
        let board = Board::default();
        board.post(
            "services",
            vec![("services".into(), Ok(vec![]))],
            Some(Duration::ZERO),
        );
        std::thread::sleep(Duration::from_millis(2));
        let snapshot = board.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert!(snapshot[0].1.as_ref().unwrap_err().contains("stuck"));
    }
}
