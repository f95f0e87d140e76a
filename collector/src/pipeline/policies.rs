//! The clients' contracts as the running collector knows them: every saved version on disk,
//! append-only, and the policy files the MSP edits.
//!
//! Versions live under `<data_dir>/policies/<client>/v000001.json`, each written once
//! (temporary file, fsync, rename) and never changed, so `policy history` can read them while
//! a collector serves. The policy folder named in `[policies] dir` is read at start and
//! again whenever a file in it changes: a valid new text becomes the next version; an
//! invalid one is reported with file, line and fix, and the last good version stays in force.

use crate::policy::{
    AlertFacts, Classification, PolicyError, PolicyHistory, PolicySet, PolicyVersion,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// A stored version, as written to its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    client: String,
    version: u64,
    digest: String,
    author: String,
    /// Milliseconds since the Unix epoch.
    created_at_ms: i64,
    text: String,
}

impl From<&PolicyVersion> for StoredVersion {
    fn from(version: &PolicyVersion) -> Self {
        Self {
            client: version.client.clone(),
            version: version.version,
            digest: version.digest.clone(),
            author: version.author.clone(),
            created_at_ms: version.created_at.as_millisecond(),
            text: version.text.clone(),
        }
    }
}

impl From<StoredVersion> for PolicyVersion {
    fn from(stored: StoredVersion) -> Self {
        Self {
            client: stored.client,
            version: stored.version,
            digest: stored.digest,
            author: stored.author,
            created_at: Timestamp::from_millisecond(stored.created_at_ms)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            text: stored.text,
        }
    }
}

/// The append-only folder of versions.
#[derive(Debug, Clone)]
pub struct PolicyArchive {
    dir: PathBuf,
}

impl PolicyArchive {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("policies"),
        }
    }

    /// Every client with at least one version, sorted.
    pub fn clients(&self) -> std::io::Result<Vec<String>> {
        let mut clients = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        if let Some(name) = entry.file_name().to_str() {
                            clients.push(name.to_string());
                        }
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        clients.sort();
        Ok(clients)
    }

    /// One client's versions, oldest first. A file that cannot be read is an error naming it.
    pub fn versions(&self, client: &str) -> Result<Vec<PolicyVersion>, String> {
        let dir = self.client_dir(client)?;
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(format!("{}: cannot be listed: {error}", dir.display())),
        };
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path)
                    .map_err(|error| format!("{}: cannot be read: {error}", path.display()))?;
                serde_json::from_slice::<StoredVersion>(&bytes)
                    .map(PolicyVersion::from)
                    .map_err(|error| {
                        format!(
                            "{}: not a stored policy version ({error}); move the file away to \
                             drop that version",
                            path.display()
                        )
                    })
            })
            .collect()
    }

    /// Writes a new version durably; refuses to replace one.
    pub fn append(&self, version: &PolicyVersion) -> Result<(), String> {
        let dir = self.client_dir(&version.client)?;
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("{}: cannot be created: {error}", dir.display()))?;
        let path = dir.join(format!("v{:06}.json", version.version));
        if path.exists() {
            return Err(format!(
                "{}: version {} of client '{}' exists already; versions are never replaced",
                path.display(),
                version.version,
                version.client
            ));
        }
        let temporary = dir.join(format!(".v{:06}.json.tmp", version.version));
        let bytes = serde_json::to_vec_pretty(&StoredVersion::from(version))
            .map_err(|error| format!("encoding policy version: {error}"))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|error| format!("{}: cannot be written: {error}", path.display()))
    }

    fn client_dir(&self, client: &str) -> Result<PathBuf, String> {
        let safe = !client.is_empty()
            && !client.starts_with('.')
            && client
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if safe {
            Ok(self.dir.join(client))
        } else {
            Err(format!(
                "client name '{client}' cannot name a folder; use letters, digits, '-', '_' \
                 and '.' only"
            ))
        }
    }
}

/// The contracts in force, kept current from the policy folder.
pub struct Policies {
    archive: PolicyArchive,
    source: Option<PathBuf>,
    set: RwLock<PolicySet>,
    /// Digest of each source file's last text looked at, valid or not, so a bad file is
    /// reported once per change rather than at every look.
    seen: RwLock<HashMap<PathBuf, String>>,
    /// Each source file that did not load, with why, until it loads or is removed.
    failing: RwLock<BTreeMap<PathBuf, String>>,
    /// Rules added by the rules file, which contracts' `alert_rules` may name.
    configured_rules: Vec<String>,
}

/// What looking at one policy file found, when it was not a problem.
enum SyncOutcome {
    /// The same text as last time: whatever it was then, it still is.
    Unchanged,
    /// Read and valid (a new version, or the same contract as in force).
    Looked,
}

impl Policies {
    /// Loads every stored version. A client whose stored history is unreadable is reported
    /// and left without a contract; the others load.
    pub fn open(data_dir: &Path, source: Option<PathBuf>) -> Self {
        let archive = PolicyArchive::new(data_dir);
        let mut set = PolicySet::new();
        match archive.clients() {
            Ok(clients) => {
                for client in clients {
                    let loaded = archive.versions(&client).and_then(|versions| {
                        PolicyHistory::from_versions(&client, versions)
                            .map_err(|error| error.to_string())
                    });
                    match loaded {
                        Ok(history) => set.insert(history),
                        Err(error) => {
                            tracing::error!("policy history of client '{client}': {error}")
                        }
                    }
                }
            }
            Err(error) => tracing::error!("{}: cannot be listed: {error}", archive.dir.display()),
        }
        Self {
            archive,
            source,
            set: RwLock::new(set),
            seen: RwLock::new(HashMap::new()),
            failing: RwLock::new(BTreeMap::new()),
            configured_rules: Vec::new(),
        }
    }

    /// Lets contracts' `alert_rules` name `rules` (the engine's rules, a rules file's
    /// included) besides the built-in ones.
    pub fn with_rules(mut self, rules: Vec<String>) -> Self {
        self.configured_rules = rules;
        self
    }

    /// Reads the policy folder; every changed file that is valid becomes a new version
    /// (`author` saved with it). Returns one line per problem; what was in force for a
    /// client whose file is bad stays in force.
    pub fn sync(&self, author: &str, now: Timestamp) -> Vec<String> {
        let Some(source) = &self.source else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = match std::fs::read_dir(source) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .collect(),
            Err(error) => {
                return vec![format!(
                    "policy folder {}: cannot be listed: {error}; fix [policies] dir in the \
                     collector config",
                    source.display()
                )]
            }
        };
        files.sort();
        let mut problems = Vec::new();
        let mut failing = self.failing.write().unwrap_or_else(|p| p.into_inner());
        failing.retain(|path, _| files.contains(path));
        for path in files {
            match self.sync_file(&path, author, now) {
                Ok(SyncOutcome::Looked) => {
                    failing.remove(&path);
                }
                Ok(SyncOutcome::Unchanged) => {}
                Err(problem) => {
                    failing.insert(path, problem.clone());
                    problems.push(problem);
                }
            }
        }
        problems
    }

    /// The policy files that do not load now, with why.
    pub fn failing(&self) -> BTreeMap<PathBuf, String> {
        self.failing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn sync_file(&self, path: &Path, author: &str, now: Timestamp) -> Result<SyncOutcome, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("policy {}: cannot be read: {error}", path.display()))?;
        let digest = crate::policy::version::digest_of(&text);
        {
            let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
            if seen.get(path) == Some(&digest) {
                return Ok(SyncOutcome::Unchanged);
            }
        }
        self.seen
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_path_buf(), digest);
        let policy =
            crate::policy::Policy::parse_with_rules(path, &text, &self.configured_rules)
                .map_err(|error| format!("{error} (the version in force before stays in force)"))?;
        let client = policy.client().to_string();
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        let history = set
            .history(&client)
            .cloned()
            .unwrap_or_else(|| PolicyHistory::new(&client));
        let author = format!("{author} (file {})", path.display());
        let proposed = history
            .propose(&author, now, &text)
            .map_err(|error| format!("policy {}: {error}", path.display()))?;
        let Some((version, policy)) = proposed else {
            return Ok(SyncOutcome::Looked);
        };
        self.archive.append(&version)?;
        let number = version.version;
        let mut history = history;
        history
            .push(version, policy)
            .map_err(|error| format!("policy {}: {error}", path.display()))?;
        set.insert(history);
        tracing::info!(client = %client, version = number, file = %path.display(), "policy version in force");
        Ok(SyncOutcome::Looked)
    }

    /// Classifies by the version in force when the alert began firing, `None` when the
    /// client has no contract at all.
    pub fn classify(
        &self,
        facts: &AlertFacts,
        now: Timestamp,
    ) -> Option<Result<Classification, PolicyError>> {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.history(&facts.client)?;
        Some(set.classify(facts, now))
    }

    /// The forecast horizons of every client's latest contract (`None`: the rules' own).
    pub fn forecast_horizons(
        &self,
    ) -> Vec<(String, Option<crate::policy::contract::ForecastHorizons>)> {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.clients()
            .filter_map(|client| {
                let latest = set.history(client)?.latest()?;
                Some((client.to_string(), latest.forecast))
            })
            .collect()
    }

    /// Whether any version of `client`'s contract exists.
    pub fn knows(&self, client: &str) -> bool {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.history(client).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n";
    const EDITED: &str =
        "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"07:00-17:00\"\n";
    const BAD: &str =
        "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"8 to 5\"\n";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_bad_edit_is_reported_with_its_line_and_the_last_good_version_stays_in_force() {
        let data = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let file = source.path().join("acme.toml");
        std::fs::write(&file, GOOD).unwrap();
        let policies = Policies::open(data.path(), Some(source.path().to_path_buf()));
        assert!(policies.sync("test", at("2026-03-01T10:00:00Z")).is_empty());
        assert!(policies.knows("acme"));

        std::fs::write(&file, BAD).unwrap();
        let problems = policies.sync("test", at("2026-03-02T10:00:00Z"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("acme.toml:4"), "{}", problems[0]);
        assert!(problems[0].contains("stays in force"), "{}", problems[0]);
        // Reported once per change, not at every look.
        assert!(policies.sync("test", at("2026-03-02T10:00:05Z")).is_empty());

        std::fs::write(&file, EDITED).unwrap();
        assert!(policies.sync("test", at("2026-03-03T10:00:00Z")).is_empty());
        let versions = PolicyArchive::new(data.path()).versions("acme").unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(versions[1].text, EDITED);

        // A collector started later reads the same history back.
        let reopened = Policies::open(data.path(), None);
        let set = reopened.set.read().unwrap();
        let history = set.history("acme").unwrap();
        assert_eq!(history.versions().count(), 2);
        assert!(history.in_force_at(at("2026-03-02T12:00:00Z")).is_ok());
    }

    #[test]
    fn stored_versions_are_never_replaced() {
        let data = tempfile::tempdir().unwrap();
        let archive = PolicyArchive::new(data.path());
        let version = PolicyVersion {
            client: "acme".into(),
            version: 1,
            digest: crate::policy::version::digest_of(GOOD),
            author: "a".into(),
            created_at: at("2026-03-01T10:00:00Z"),
            text: GOOD.into(),
        };
        archive.append(&version).unwrap();
        assert!(archive
            .append(&version)
            .unwrap_err()
            .contains("never replaced"));
        assert!(archive.versions("../etc").is_err());
    }
}
