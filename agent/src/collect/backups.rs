//! Backups: `backup_last_success_timestamp_seconds{job}`, the time of a job's last successful
//! backup, read from what the job leaves on disk — a file it writes or touches on success (its
//! modification time), or a folder it writes into (the newest file's).
//!
//! A [`BackupJob`] is followed by the file-watching thread: a change in the folder is seen
//! when it happens, not at the next poll. The collector decides what "too old" means; the
//! agent only reports the time.

use super::checks::{Outcome, Reading};
use super::file_watch::WatchedFile;
use notify::RecursiveMode;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How deep a recursive folder job looks, at most.
const MAX_DEPTH: usize = 16;

/// `[[checks.backup]]`: one backup job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The job's name: the `job` label, e.g. "nightly-nas".
    pub job: String,
    /// A file the job writes or touches when it succeeds, or a folder it writes its backups
    /// into. Relative paths are relative to the config file's folder.
    pub path: PathBuf,
    /// For a folder: look into its subfolders too. Default: false.
    #[serde(default)]
    pub recursive: bool,
    /// For a folder: only files whose name matches this regular expression count, e.g.
    /// `"\\.tar\\.zst$"` — so that a backup still being written is not taken for a finished
    /// one. Default: every file.
    #[serde(default)]
    pub file_name: Option<String>,
}

impl BackupConfig {
    pub(crate) fn resolve_path(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }

    pub(crate) fn problems(&self, key: &str, problems: &mut Vec<String>) {
        if self.job.trim().is_empty() {
            problems.push(format!(
                "{key}.job is empty; name the job, e.g. job = \"nightly\""
            ));
        }
        if self.path.as_os_str().is_empty() {
            problems.push(format!(
                "{key}.path is empty; name the file or folder the backup job writes"
            ));
        }
        if let Some(pattern) = &self.file_name {
            if let Err(error) = regex_lite::Regex::new(pattern) {
                problems.push(format!(
                    "{key}.file_name = {pattern:?} is not a regular expression: {}",
                    one_line(&error.to_string())
                ));
            }
        }
    }
}

/// A regex error's last line is its reason; the lines before draw the pattern and a caret.
pub(crate) fn one_line(error: &str) -> String {
    error
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(error)
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// A backup job being followed.
pub(crate) struct BackupJob {
    job: String,
    path: PathBuf,
    recursive: bool,
    file_name: Option<regex_lite::Regex>,
    /// The newest modification time seen, or why there is none.
    newest: Result<SystemTime, String>,
}

impl BackupJob {
    pub(crate) fn new(config: &BackupConfig) -> Self {
        Self {
            job: config.job.clone(),
            path: config.path.clone(),
            recursive: config.recursive,
            // Validated with the config; a pattern that does not compile matches nothing.
            file_name: config
                .file_name
                .as_deref()
                .map(|pattern| regex_lite::Regex::new(pattern).unwrap_or_else(|_| never_matches())),
            newest: Err("not looked at yet".into()),
        }
    }

    fn counts(&self, file: &Path) -> bool {
        match &self.file_name {
            None => true,
            Some(pattern) => file
                .file_name()
                .is_some_and(|name| pattern.is_match(&name.to_string_lossy())),
        }
    }

    /// Looks at the whole path.
    fn scan(&self) -> Result<SystemTime, String> {
        let metadata = std::fs::metadata(&self.path).map_err(|error| self.unreadable(&error))?;
        if !metadata.is_dir() {
            return metadata.modified().map_err(|error| self.unreadable(&error));
        }
        let mut newest = None;
        let mut folders = vec![(self.path.clone(), 0)];
        while let Some((folder, depth)) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(error) if folder == self.path => return Err(self.unreadable(&error)),
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if metadata.is_dir() {
                    if self.recursive && depth < MAX_DEPTH {
                        folders.push((entry.path(), depth + 1));
                    }
                } else if self.counts(&entry.path()) {
                    if let Ok(modified) = metadata.modified() {
                        newest = newest.max(Some(modified));
                    }
                }
            }
        }
        newest.ok_or_else(|| {
            format!(
                "'{}' holds no {}file yet; the job has not written a backup there",
                self.path.display(),
                if self.file_name.is_some() {
                    "matching "
                } else {
                    ""
                }
            )
        })
    }

    fn unreadable(&self, error: &std::io::Error) -> String {
        if error.kind() == std::io::ErrorKind::NotFound {
            format!(
                "'{}' does not exist; the job has not written it yet, or checks.backup path for job '{}' is wrong",
                self.path.display(),
                self.job
            )
        } else {
            format!(
                "cannot read '{}': {error}; give the agent's user read access",
                self.path.display()
            )
        }
    }

    /// Whether `changed` names files inside the folder that exist and can be looked at one by
    /// one — a write or a new file — rather than something removed, which needs a scan.
    fn newest_of(&self, changed: &[PathBuf]) -> Option<SystemTime> {
        let mut newest = None;
        for path in changed {
            if path == &self.path || !path.starts_with(&self.path) {
                return None;
            }
            let inside = path.strip_prefix(&self.path).ok()?;
            if !self.recursive && inside.components().count() > 1 {
                continue;
            }
            let metadata = std::fs::metadata(path).ok()?;
            if metadata.is_dir() {
                return None;
            }
            if self.counts(path) {
                newest = newest.max(Some(metadata.modified().ok()?));
            }
        }
        newest
    }
}

impl WatchedFile for BackupJob {
    fn group(&self) -> &'static str {
        "backups"
    }

    fn family(&self) -> String {
        format!("backup {}", self.job)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn folder_mode(&self) -> Option<RecursiveMode> {
        Some(if self.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        })
    }

    fn refresh(&mut self, changed: &[PathBuf]) {
        // A write in a folder already known: only the written files need a look.
        if let (Ok(known), false) = (&self.newest, changed.is_empty()) {
            if self.path.is_dir() {
                if let Some(newest) = self.newest_of(changed) {
                    self.newest = Ok((*known).max(newest));
                    return;
                }
            }
        }
        self.newest = self.scan();
    }

    fn outcome(&self) -> Outcome {
        let newest = self.newest.as_ref().map_err(Clone::clone)?;
        let seconds = newest
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs_f64())
            .unwrap_or(0.0);
        Ok(vec![Reading::new(
            "backup_last_success_timestamp_seconds",
            &[("job", &self.job)],
            seconds,
        )])
    }
}

fn never_matches() -> regex_lite::Regex {
    regex_lite::Regex::new(r"[^\s\S]").expect("a valid pattern")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::checks::Board;
    use crate::collect::file_watch::FileWatch;
    use std::fs::File;
    use std::sync::Arc;
    use std::time::Duration;

    /// Long enough that only an event, never the safety-net rescan, can explain an update.
    const NO_RESCAN: Duration = Duration::from_secs(3600);
    /// The most a test waits for an event before failing; the wait ends at the event.
    const EVENT_DEADLINE: Duration = Duration::from_secs(20);

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn set_modified(path: &Path, when: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn job(job: &str, path: &Path) -> BackupConfig {
        BackupConfig {
            job: job.into(),
            path: path.to_path_buf(),
            recursive: false,
            file_name: None,
        }
    }

    fn reported(snapshot: &[(String, Outcome)], family: &str) -> Option<f64> {
        let (_, outcome) = snapshot.iter().find(|(name, _)| name == family)?;
        outcome.as_ref().ok()?.first().map(|reading| reading.value)
    }

    fn follow(jobs: &[BackupConfig]) -> (Arc<Board>, FileWatch) {
        let board = Arc::new(Board::default());
        let files: Vec<Box<dyn WatchedFile>> = jobs
            .iter()
            .map(|config| Box::new(BackupJob::new(config)) as Box<dyn WatchedFile>)
            .collect();
        let watch = FileWatch::start(files, board.clone(), NO_RESCAN).unwrap();
        (board, watch)
    }

    #[test]
    fn touching_the_marker_file_updates_the_metric_through_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("last-success");
        File::create(&marker).unwrap();
        set_modified(&marker, at(1_700_000_000));
        let (board, _watch) = follow(&[job("nightly", &marker)]);
        assert!(board.wait_until(EVENT_DEADLINE, |snapshot| reported(
            snapshot,
            "backup nightly"
        ) == Some(1_700_000_000.0)));

        set_modified(&marker, at(1_700_086_400));
        assert!(
            board.wait_until(EVENT_DEADLINE, |snapshot| reported(
                snapshot,
                "backup nightly"
            ) == Some(1_700_086_400.0)),
            "{:?}",
            board.snapshot()
        );
    }

    #[test]
    fn a_marker_replaced_by_a_rename_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("done");
        let (board, _watch) = follow(&[job("db", &marker)]);
        assert!(
            board.wait_until(EVENT_DEADLINE, |snapshot| snapshot.iter().any(
                |(family, outcome)| family == "backup db"
                    && outcome
                        .as_ref()
                        .is_err_and(|error| error.contains("does not exist"))
            ))
        );

        let written = dir.path().join("done.tmp");
        File::create(&written).unwrap();
        set_modified(&written, at(1_700_000_500));
        std::fs::rename(&written, &marker).unwrap();
        assert!(
            board.wait_until(EVENT_DEADLINE, |snapshot| reported(snapshot, "backup db")
                == Some(1_700_000_500.0))
        );
    }

    #[test]
    fn a_folder_reports_its_newest_matching_file() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("2025-01-01.tar.zst");
        File::create(&old).unwrap();
        set_modified(&old, at(1_735_700_000));
        let mut config = job("files", dir.path());
        config.file_name = Some(r"\.tar\.zst$".into());
        let (board, _watch) = follow(&[config]);
        assert!(board.wait_until(EVENT_DEADLINE, |snapshot| reported(
            snapshot,
            "backup files"
        ) == Some(1_735_700_000.0)));

        // A file still being written under another name does not count; the finished one does.
        let partial = dir.path().join("2025-01-02.tar.zst.partial");
        File::create(&partial).unwrap();
        let finished = dir.path().join("2025-01-02.tar.zst");
        File::create(&finished).unwrap();
        set_modified(&finished, at(1_735_786_400));
        assert!(board.wait_until(EVENT_DEADLINE, |snapshot| reported(
            snapshot,
            "backup files"
        ) == Some(1_735_786_400.0)));

        // Removing the newest goes back to the one before.
        std::fs::remove_file(&finished).unwrap();
        assert!(board.wait_until(EVENT_DEADLINE, |snapshot| reported(
            snapshot,
            "backup files"
        ) == Some(1_735_700_000.0)));
    }

    #[test]
    fn a_missing_path_is_reported_and_the_other_jobs_still_are() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("present");
        File::create(&present).unwrap();
        set_modified(&present, at(1_700_000_000));
        let (board, _watch) = follow(&[
            job("gone", &dir.path().join("nowhere").join("marker")),
            job("present", &present),
        ]);
        assert!(board.wait_until(EVENT_DEADLINE, |snapshot| reported(
            snapshot,
            "backup present"
        )
        .is_some()));
        let snapshot = board.snapshot();
        let gone = &snapshot
            .iter()
            .find(|(family, _)| family == "backup gone")
            .unwrap()
            .1;
        let error = gone.as_ref().unwrap_err();
        assert!(
            error.contains("nowhere") && error.contains("does not exist"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_file_name_pattern_is_one_line_naming_the_key() {
        let mut config = job("x", Path::new("/srv"));
        config.file_name = Some("(".into());
        let mut problems = Vec::new();
        config.problems("checks.backup[0]", &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .starts_with("checks.backup[0].file_name = \"(\" is not a regular expression: "),
            "{problems:?}"
        );
        assert!(!problems[0].contains('\n'));
    }
}
