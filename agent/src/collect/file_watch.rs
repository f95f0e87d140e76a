//! Following files without polling: one thread that owns a `notify` watcher, hears of every
//! change in the folders the file checks care about, and lets the concerned check look again.
//!
//! [`FileWatch`] knows nothing of backups or logs; it drives [`WatchedFile`]s. Events are
//! coalesced (everything queued is handled in one round) and each file is refreshed once per
//! round. A slow rescan of everything runs as a safety net, because some file systems (network
//! shares) deliver no events for changes made elsewhere, and because a folder that did not
//! exist yet could not be watched. After each round the checks' outcomes go to the board.

use super::checks::{Board, Outcome};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_proto::model::LogExcerpt;

/// A file (or folder) a check follows.
pub(crate) trait WatchedFile: Send {
    /// The board group the check posts under (`backups`, `logs`).
    fn group(&self) -> &'static str;
    /// This file's family, unique within its group.
    fn family(&self) -> String;
    /// The path the check is about; the folder around it is watched as well, so that a file
    /// created, replaced or rotated is seen.
    fn path(&self) -> &Path;
    /// Whether the path itself is a folder to watch (recursively or not) rather than a file.
    fn folder_mode(&self) -> Option<RecursiveMode>;
    /// Looks at the file again. `changed` holds the paths that events named and that concern
    /// this file; it is empty on a rescan.
    fn refresh(&mut self, changed: &[PathBuf]);
    /// What the check has to report now.
    fn outcome(&self) -> Outcome;
    /// Lines read since the last call that the check wants shown with its alert (the log
    /// watch's newest match per pattern); most checks have none.
    fn take_excerpts(&mut self) -> Vec<LogExcerpt> {
        Vec::new()
    }
}

/// Whether a change at `changed` may concern something that follows `path`: the path itself,
/// anything inside it, or a folder on the way to it (created or removed).
pub(crate) fn concerns(path: &Path, changed: &Path) -> bool {
    changed.starts_with(path) || path.starts_with(changed)
}

enum Message {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// The running thread; stops when dropped.
pub(crate) struct FileWatch {
    messages: mpsc::Sender<Message>,
}

impl FileWatch {
    /// Starts following `files`, posting their outcomes to `board` now and after every change.
    pub(crate) fn start(
        files: Vec<Box<dyn WatchedFile>>,
        board: Arc<Board>,
        rescan_interval: Duration,
    ) -> Result<Self, String> {
        let (messages, inbox) = mpsc::channel();
        let events = messages.clone();
        let watcher = notify::recommended_watcher(move |event| {
            // The thread is gone only when stopping; nothing is left to tell then.
            let _ = events.send(Message::Event(event));
        })
        .map_err(|error| format!("cannot watch files: {error}"))?;
        let follower = Follower {
            files,
            board,
            watcher,
            watched: HashSet::new(),
            warned: HashSet::new(),
        };
        std::thread::Builder::new()
            .name("vigil-file-watch".into())
            .spawn(move || follower.run(inbox, rescan_interval))
            .map_err(|error| format!("cannot start the file-watching thread: {error}"))?;
        Ok(Self { messages })
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        let _ = self.messages.send(Message::Stop);
    }
}

struct Follower {
    files: Vec<Box<dyn WatchedFile>>,
    board: Arc<Board>,
    watcher: RecommendedWatcher,
    /// Folders being watched.
    watched: HashSet<PathBuf>,
    /// Folders that could not be watched, each logged once.
    warned: HashSet<PathBuf>,
}

impl Follower {
    fn run(mut self, inbox: mpsc::Receiver<Message>, rescan_interval: Duration) {
        self.rescan();
        let mut next_rescan = Instant::now() + rescan_interval;
        loop {
            let first =
                match inbox.recv_timeout(next_rescan.saturating_duration_since(Instant::now())) {
                    Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Ok(Message::Event(event)) => event,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.rescan();
                        next_rescan = Instant::now() + rescan_interval;
                        continue;
                    }
                };
            let mut changed = Vec::new();
            let mut rescan = false;
            let mut take = |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.need_rescan() => rescan = true,
                Ok(event) => changed.extend(event.paths),
                Err(error) => {
                    tracing::debug!(%error, "file watching reported an error; looking at every file again");
                    rescan = true;
                }
            };
            take(first);
            // Everything that queued up meanwhile is one round.
            loop {
                match inbox.try_recv() {
                    Ok(Message::Event(event)) => take(event),
                    Ok(Message::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            if rescan {
                self.rescan();
                continue;
            }
            let mut any = false;
            for file in &mut self.files {
                let concerned: Vec<PathBuf> = changed
                    .iter()
                    .filter(|path| concerns(file.path(), path))
                    .cloned()
                    .collect();
                if !concerned.is_empty() {
                    file.refresh(&concerned);
                    any = true;
                }
            }
            if any {
                self.watch_folders();
                self.post();
            }
        }
    }

    /// Watches every folder again and refreshes every file.
    fn rescan(&mut self) {
        for folder in self.watched.drain() {
            let _ = self.watcher.unwatch(&folder);
        }
        self.watch_folders();
        for file in &mut self.files {
            file.refresh(&[]);
        }
        self.post();
    }

    /// Watches the folder around each file — or, while that does not exist, the nearest
    /// folder above it that does, to hear of its creation.
    fn watch_folders(&mut self) {
        let mut wanted: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for file in &self.files {
            let path = file.path();
            match file.folder_mode() {
                Some(mode) if path.is_dir() => wanted.push((path.to_path_buf(), mode)),
                _ => {
                    let folder = path.parent().unwrap_or(path);
                    if let Some(existing) = folder.ancestors().find(|folder| folder.is_dir()) {
                        wanted.push((existing.to_path_buf(), RecursiveMode::NonRecursive));
                    }
                }
            }
        }
        for (folder, mode) in wanted {
            if self.watched.contains(&folder) {
                continue;
            }
            match self.watcher.watch(&folder, mode) {
                Ok(()) => {
                    self.watched.insert(folder);
                }
                Err(error) => {
                    if self.warned.insert(folder.clone()) {
                        tracing::warn!(folder = %folder.display(), %error, "cannot watch a folder for changes; files in it are looked at every few minutes instead");
                    }
                }
            }
        }
    }

    fn post(&mut self) {
        for file in &mut self.files {
            self.board.add_excerpts(file.take_excerpts());
        }
        let mut groups: BTreeMap<&'static str, Vec<(String, Outcome)>> = BTreeMap::new();
        for file in &self.files {
            groups
                .entry(file.group())
                .or_default()
                .push((file.family(), file.outcome()));
        }
        for (group, families) in groups {
            self.board.post(group, families, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_concerns_the_path_what_is_inside_it_and_the_folders_above_it() {
        let path = Path::new("/srv/backup/nightly");
        assert!(concerns(path, Path::new("/srv/backup/nightly")));
        assert!(concerns(
            path,
            Path::new("/srv/backup/nightly/2025-01-01.tar")
        ));
        assert!(concerns(path, Path::new("/srv/backup")));
        assert!(!concerns(path, Path::new("/srv/backup/weekly")));
        assert!(!concerns(path, Path::new("/srv/backup/nightly-old")));
    }
}
