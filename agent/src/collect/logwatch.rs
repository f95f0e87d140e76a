//! Log watch: `log_matches_total{log,pattern}`, how many lines appended to a named log file
//! matched each of its patterns since the agent started following it.
//!
//! A [`LogTail`] is followed by the file-watching thread. It starts at the end of the file
//! (history is not counted), reads what is appended when a change is announced, and follows
//! the file through rotation (the old file is read to its end, then the new one from its
//! start) and truncation (`copytruncate`: reading starts again at 0). A log that cannot be
//! read is reported with the reason, and the other logs are followed regardless.

use super::backups::one_line;
use super::checks::{Outcome, Reading};
use super::file_watch::WatchedFile;
use notify::RecursiveMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use vigil_proto::model::LogExcerpt;

/// A line longer than this is counted in pieces rather than held whole.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// A matched line is sent with the batch cut to this many bytes (the protocol allows 512).
const EXCERPT_BYTES: usize = 400;
/// Read this much at a time.
const CHUNK_BYTES: usize = 16 * 1024;

/// `[[checks.log]]`: one log file and the patterns counted in it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The log's name: the `log` label, e.g. "kernel".
    pub name: String,
    /// The log file. Relative paths are relative to the config file's folder.
    pub path: PathBuf,
    /// Pattern name (the `pattern` label) → regular expression. A line counts once for every
    /// pattern it matches, e.g. `io_error = "I/O error|blk_update_request"`.
    pub patterns: BTreeMap<String, String>,
}

impl LogConfig {
    pub(crate) fn resolve_path(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }

    pub(crate) fn problems(&self, key: &str, problems: &mut Vec<String>) {
        if self.name.trim().is_empty() {
            problems.push(format!(
                "{key}.name is empty; name the log, e.g. name = \"kernel\""
            ));
        }
        if self.path.as_os_str().is_empty() {
            problems.push(format!("{key}.path is empty; name the log file to watch"));
        }
        if self.patterns.is_empty() {
            problems.push(format!(
                "{key}.patterns is empty; add at least one, e.g. patterns = {{ error = \"ERROR\" }}"
            ));
        }
        for (name, pattern) in &self.patterns {
            if name.trim().is_empty() {
                problems.push(format!("{key}.patterns has a pattern without a name"));
            }
            if let Err(error) = regex_lite::Regex::new(pattern) {
                problems.push(format!(
                    "{key}.patterns.{name} = {pattern:?} is not a regular expression: {}",
                    one_line(&error.to_string())
                ));
            }
        }
    }
}

/// The file being read and where.
struct OpenLog {
    file: File,
    identity: FileIdentity,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

/// A log being followed.
pub(crate) struct LogTail {
    name: String,
    path: PathBuf,
    patterns: Vec<(String, regex_lite::Regex)>,
    counts: Vec<u64>,
    /// Per pattern, the newest line that matched since the excerpts were last taken.
    newest_match: Vec<Option<String>>,
    open: Option<OpenLog>,
    /// Whether the file has been read at all; until then the first open skips history.
    ever_opened: bool,
    /// Whether the file was missing before it was first opened: then everything in it is new.
    seen_missing: bool,
    /// Why the log cannot be followed now.
    problem: Option<String>,
}

impl LogTail {
    pub(crate) fn new(config: &LogConfig) -> Self {
        let patterns: Vec<(String, regex_lite::Regex)> = config
            .patterns
            .iter()
            // Validated with the config; a pattern that does not compile is left out.
            .filter_map(|(name, pattern)| {
                Some((name.clone(), regex_lite::Regex::new(pattern).ok()?))
            })
            .collect();
        Self {
            name: config.name.clone(),
            path: config.path.clone(),
            counts: vec![0; patterns.len()],
            newest_match: vec![None; patterns.len()],
            patterns,
            open: None,
            ever_opened: false,
            seen_missing: false,
            problem: Some("not looked at yet".into()),
        }
    }

    /// Reads from where it was to the current end, counting complete lines.
    fn read_appended(&mut self) -> std::io::Result<()> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let mut chunk = vec![0; CHUNK_BYTES];
        loop {
            let n_read = open.file.read(&mut chunk)?;
            if n_read == 0 {
                return Ok(());
            }
            open.offset += n_read as u64;
            let mut rest = &chunk[..n_read];
            while let Some(end) = rest.iter().position(|byte| *byte == b'\n') {
                open.partial.extend_from_slice(&rest[..end]);
                count_line(
                    &self.patterns,
                    &mut self.counts,
                    &mut self.newest_match,
                    &open.partial,
                );
                open.partial.clear();
                rest = &rest[end + 1..];
            }
            open.partial.extend_from_slice(rest);
            if open.partial.len() > MAX_LINE_BYTES {
                count_line(
                    &self.patterns,
                    &mut self.counts,
                    &mut self.newest_match,
                    &open.partial,
                );
                open.partial.clear();
            }
        }
    }

    /// Opens the file at the path; the first open of a file that was there when following
    /// started skips to its end.
    fn open_current(&mut self, metadata: &std::fs::Metadata) -> std::io::Result<()> {
        let mut file = File::open(&self.path)?;
        let skip_history = !self.ever_opened && !self.seen_missing;
        let offset = if skip_history {
            file.seek(SeekFrom::End(0))?
        } else {
            0
        };
        self.open = Some(OpenLog {
            file,
            identity: FileIdentity::of(metadata),
            offset,
            partial: Vec::new(),
        });
        self.ever_opened = true;
        Ok(())
    }

    fn follow(&mut self) -> Result<(), String> {
        // Whatever is still in the file being read counts first, even if it was rotated away.
        self.read_appended()
            .map_err(|error| self.unreadable(&error))?;
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if self.open.is_some() {
                    // Rotated away and not yet created again: keep the counts.
                    return Ok(());
                }
                self.seen_missing = true;
                return Err(format!(
                    "'{}' does not exist (yet); counting starts when it appears",
                    self.path.display()
                ));
            }
            Err(error) => return Err(self.unreadable(&error)),
        };
        if !metadata.is_file() {
            return Err(format!(
                "'{}' is not a file; checks.log path must name a log file",
                self.path.display()
            ));
        }
        let reopen = match &self.open {
            None => true,
            Some(open) => open.identity != FileIdentity::of(&metadata),
        };
        if reopen {
            self.open_current(&metadata)
                .map_err(|error| self.unreadable(&error))?;
        } else if let Some(open) = &mut self.open {
            if metadata.len() < open.offset {
                // Truncated in place: what is there now was written after the truncation.
                open.file
                    .seek(SeekFrom::Start(0))
                    .map_err(|error| format!("'{}': {error}", self.path.display()))?;
                open.offset = 0;
                open.partial.clear();
            }
        }
        self.read_appended()
            .map_err(|error| self.unreadable(&error))
    }

    fn unreadable(&self, error: &std::io::Error) -> String {
        let hint = if error.kind() == std::io::ErrorKind::PermissionDenied {
            if cfg!(target_os = "linux") {
                "; give the agent's user read access (on Debian and Ubuntu: add it to group adm)"
            } else {
                "; give the agent's account read access"
            }
        } else {
            ""
        };
        format!("cannot read '{}': {error}{hint}", self.path.display())
    }
}

fn count_line(
    patterns: &[(String, regex_lite::Regex)],
    counts: &mut [u64],
    newest_match: &mut [Option<String>],
    line: &[u8],
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Lines are matched as text; bytes that are not UTF-8 match nothing but themselves.
    let line = String::from_utf8_lossy(line);
    for (((_, pattern), count), newest) in patterns
        .iter()
        .zip(counts.iter_mut())
        .zip(newest_match.iter_mut())
    {
        if pattern.is_match(&line) {
            *count += 1;
            *newest = Some(excerpt_of(&line));
        }
    }
}

/// A matched line as a technician reads it in an alert: control characters (terminal
/// escapes, tabs) made spaces, surrounding blanks trimmed, cut on a character boundary.
fn excerpt_of(line: &str) -> String {
    cut(LogExcerpt::printable(line).trim())
}

/// `text` within [`EXCERPT_BYTES`], cut on a character boundary with an ellipsis.
fn cut(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = EXCERPT_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl WatchedFile for LogTail {
    fn group(&self) -> &'static str {
        "logs"
    }

    fn family(&self) -> String {
        format!("log {}", self.name)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn folder_mode(&self) -> Option<RecursiveMode> {
        None
    }

    fn refresh(&mut self, _changed: &[PathBuf]) {
        self.problem = self.follow().err();
    }

    fn outcome(&self) -> Outcome {
        // While a rotated log is briefly away there is no problem: the counters go on.
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        Ok(self
            .patterns
            .iter()
            .zip(&self.counts)
            .map(|((pattern, _), count)| {
                Reading::new(
                    "log_matches_total",
                    &[("log", &self.name), ("pattern", pattern)],
                    *count as f64,
                )
            })
            .collect())
    }

    fn take_excerpts(&mut self) -> Vec<LogExcerpt> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let file = cut(&self.path.display().to_string());
        self.patterns
            .iter()
            .zip(self.newest_match.iter_mut())
            .filter_map(|((pattern, _), newest)| {
                Some(LogExcerpt {
                    log: self.name.clone(),
                    pattern: pattern.clone(),
                    file: file.clone(),
                    line: newest.take()?,
                    timestamp_ms: now_ms,
                })
            })
            .collect()
    }
}

/// Which file a path names: a rotated log is a different file under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    #[cfg(unix)]
    device_and_inode: (u64, u64),
    #[cfg(not(unix))]
    created: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                device_and_inode: (metadata.dev(), metadata.ino()),
            }
        }
        #[cfg(not(unix))]
        {
            Self {
                created: metadata.created().ok(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::checks::Board;
    use crate::collect::file_watch::FileWatch;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    const NO_RESCAN: Duration = Duration::from_secs(3600);
    const EVENT_DEADLINE: Duration = Duration::from_secs(20);

    fn config(name: &str, path: &Path) -> LogConfig {
        LogConfig {
            name: name.into(),
            path: path.to_path_buf(),
            patterns: BTreeMap::from([
                ("io_error".into(), "I/O error".into()),
                ("oom".into(), "(?i)out of memory".into()),
            ]),
        }
    }

    fn append(path: &Path, text: &str) {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn count(snapshot: &[(String, Outcome)], log: &str, pattern: &str) -> Option<f64> {
        let family = format!("log {log}");
        let (_, outcome) = snapshot.iter().find(|(name, _)| *name == family)?;
        outcome
            .as_ref()
            .ok()?
            .iter()
            .find(|reading| reading.labels.iter().any(|(_, value)| value == pattern))
            .map(|reading| reading.value)
    }

    fn follow(logs: &[LogConfig]) -> (Arc<Board>, FileWatch) {
        let board = Arc::new(Board::default());
        let files: Vec<Box<dyn WatchedFile>> = logs
            .iter()
            .map(|config| Box::new(LogTail::new(config)) as Box<dyn WatchedFile>)
            .collect();
        let watch = FileWatch::start(files, board.clone(), NO_RESCAN).unwrap();
        (board, watch)
    }

    fn wait_for(board: &Board, log: &str, pattern: &str, value: f64) {
        assert!(
            board.wait_until(EVENT_DEADLINE, |snapshot| count(snapshot, log, pattern)
                == Some(value)),
            "{log}/{pattern} never reached {value}: {:?}",
            board.snapshot()
        );
    }

    #[test]
    fn appended_matching_lines_are_counted_and_history_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kern.log");
        append(&log, "old: I/O error on sda\n");
        let (board, _watch) = follow(&[config("kernel", &log)]);
        wait_for(&board, "kernel", "io_error", 0.0);

        append(
            &log,
            "blk: I/O error, dev sda\nall good\nOut Of Memory: killed\n",
        );
        wait_for(&board, "kernel", "io_error", 1.0);
        wait_for(&board, "kernel", "oom", 1.0);

        // Half a line is counted once its end is written.
        append(&log, "another I/O ");
        append(&log, "error\n");
        wait_for(&board, "kernel", "io_error", 2.0);
    }

    #[test]
    fn the_newest_matching_line_of_each_pattern_is_taken_once_for_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kern.log");
        append(&log, "old: I/O error on sda\n");
        let (board, _watch) = follow(&[config("kernel", &log)]);
        wait_for(&board, "kernel", "io_error", 0.0);
        assert!(
            board.take_excerpts().is_empty(),
            "history is not an excerpt"
        );

        let long = "x".repeat(2 * EXCERPT_BYTES);
        append(
            &log,
            &format!("blk: I/O error, dev sda\n  \x1b[31mI/O error, dev sdb {long}\t\r\nfine\n"),
        );
        wait_for(&board, "kernel", "io_error", 2.0);
        let excerpts = board.take_excerpts();
        assert_eq!(
            excerpts.len(),
            1,
            "one per pattern that matched: {excerpts:?}"
        );
        let excerpt = &excerpts[0];
        assert_eq!(
            (excerpt.log.as_str(), excerpt.pattern.as_str()),
            ("kernel", "io_error")
        );
        assert_eq!(excerpt.file, log.display().to_string());
        assert!(
            excerpt.line.starts_with("[31mI/O error, dev sdb xxx") && excerpt.line.ends_with('…'),
            "the newest line, escapes and blanks cleaned, cut: {:?}",
            excerpt.line
        );
        assert!(excerpt.line.len() <= EXCERPT_BYTES);
        assert!(board.take_excerpts().is_empty(), "taken once");
    }

    #[test]
    fn a_rotated_log_is_read_to_its_end_then_the_new_one_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("syslog");
        append(&log, "");
        let (board, _watch) = follow(&[config("sys", &log)]);
        wait_for(&board, "sys", "io_error", 0.0);

        append(&log, "I/O error 1\n");
        wait_for(&board, "sys", "io_error", 1.0);
        std::fs::rename(&log, dir.path().join("syslog.1")).unwrap();
        append(
            &dir.path().join("syslog.1"),
            "I/O error 2, written just before the rotation\n",
        );
        append(&log, "I/O error 3, in the new file\n");
        wait_for(&board, "sys", "io_error", 3.0);
    }

    #[test]
    fn a_truncated_log_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "");
        let (board, _watch) = follow(&[config("app", &log)]);
        wait_for(&board, "app", "io_error", 0.0);
        append(
            &log,
            "I/O error one\nand some more text to make the file longer\n",
        );
        wait_for(&board, "app", "io_error", 1.0);

        // copytruncate: the content is copied elsewhere and the file cut to zero in place.
        File::options()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        append(&log, "I/O error two\n");
        wait_for(&board, "app", "io_error", 2.0);
    }

    #[test]
    fn a_log_that_appears_later_is_counted_from_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("later.log");
        let (board, _watch) = follow(&[config("later", &log)]);
        assert!(
            board.wait_until(EVENT_DEADLINE, |snapshot| snapshot.iter().any(
                |(family, outcome)| family == "log later"
                    && outcome
                        .as_ref()
                        .is_err_and(|error| error.contains("does not exist"))
            ))
        );
        append(&log, "I/O error right away\n");
        wait_for(&board, "later", "io_error", 1.0);
    }

    #[test]
    fn an_unreadable_log_is_reported_and_the_others_are_still_counted() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where a log was expected cannot be read as one, even by root.
        let folder = dir.path().join("folder.log");
        std::fs::create_dir(&folder).unwrap();
        let open = dir.path().join("open.log");
        append(&open, "");
        let (board, _watch) = follow(&[config("folder", &folder), config("open", &open)]);
        wait_for(&board, "open", "io_error", 0.0);
        append(&open, "I/O error\n");
        wait_for(&board, "open", "io_error", 1.0);
        let snapshot = board.snapshot();
        let error = snapshot
            .iter()
            .find(|(family, _)| family == "log folder")
            .unwrap()
            .1
            .as_ref()
            .unwrap_err();
        assert!(
            error.contains("folder.log") && error.contains("not a file"),
            "{error}"
        );
    }

    #[test]
    fn permission_problems_say_how_to_fix_them() {
        let tail = LogTail::new(&config("auth", Path::new("/var/log/auth.log")));
        let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let text = tail.unreadable(&error);
        assert!(
            text.starts_with("cannot read '/var/log/auth.log': "),
            "{text}"
        );
        assert!(text.contains("read access"), "{text}");
    }

    #[test]
    fn every_bad_pattern_is_reported_with_its_key() {
        let mut config = config("x", Path::new("/var/log/x"));
        config.patterns.insert("broken".into(), "[".into());
        config.patterns.insert("also_broken".into(), "(?P<".into());
        let mut problems = Vec::new();
        config.problems("checks.log[2]", &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("checks.log[2].patterns.also_broken = "));
        assert!(problems[1]
            .starts_with("checks.log[2].patterns.broken = \"[\" is not a regular expression"));
    }
}
