//! Versions of a contract and which one was in force when: [`PolicyVersion`] (one saved text),
//! [`PolicyHistory`] (one client's versions, append-only) and [`PolicySet`] (every client's).
//!
//! The rule they keep: an alert is classified by the version in force when it began firing,
//! and its [`Classification`] names that version, so editing a contract changes what happens
//! to alerts from then on and never what happened before. Versions are values; keeping them
//! on disk is the store's job, which hands them back through [`PolicyHistory::from_versions`].

use super::classify::{classify, Classification};
use super::contract::Policy;
use super::facts::AlertFacts;
use super::PolicyError;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Which text of which client's contract: enough to find it again and to prove it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyVersionId {
    pub client: String,
    /// 1, 2, 3… in the order saved; 0 for a file checked but never saved.
    pub version: u64,
    /// `sha256:` and the hex SHA-256 of the exact text.
    pub digest: String,
}

impl fmt::Display for PolicyVersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.digest.get(..19).unwrap_or(&self.digest);
        if self.version == 0 {
            write!(f, "{} unsaved draft ({short}…)", self.client)
        } else {
            write!(f, "{} v{} ({short}…)", self.client, self.version)
        }
    }
}

/// `sha256:<hex>` of a policy's text.
pub fn digest_of(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// One saved text of a client's contract, with who saved it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub client: String,
    pub version: u64,
    pub digest: String,
    pub author: String,
    pub created_at: Timestamp,
    pub text: String,
}

impl PolicyVersion {
    pub fn id(&self) -> PolicyVersionId {
        PolicyVersionId {
            client: self.client.clone(),
            version: self.version,
            digest: self.digest.clone(),
        }
    }

    /// The contract this text says, validated; messages name the client and version.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        let place = PathBuf::from(format!("policy {} v{}", self.client, self.version));
        Policy::parse_version(&place, &self.text, self.version)
    }
}

/// One client's versions, oldest first, each with its parsed contract.
#[derive(Debug, Clone)]
pub struct PolicyHistory {
    client: String,
    entries: Vec<(PolicyVersion, Policy)>,
}

impl PolicyHistory {
    pub fn new(client: &str) -> Self {
        Self {
            client: client.to_string(),
            entries: Vec::new(),
        }
    }

    /// Rebuilds a history from stored versions, checking that they are this client's,
    /// numbered 1, 2, 3…, in time order, and still valid.
    pub fn from_versions(client: &str, versions: Vec<PolicyVersion>) -> Result<Self, PolicyError> {
        let mut history = PolicyHistory::new(client);
        for version in versions {
            history.check_follows(&version)?;
            let policy = version.policy()?;
            history.entries.push((version, policy));
        }
        Ok(history)
    }

    pub fn client(&self) -> &str {
        &self.client
    }

    /// Every version, oldest first (`policy history --client NAME`).
    pub fn versions(&self) -> impl Iterator<Item = &PolicyVersion> {
        self.entries.iter().map(|(version, _)| version)
    }

    pub fn latest(&self) -> Option<&Policy> {
        self.entries.last().map(|(_, policy)| policy)
    }

    /// A specific version's contract, e.g. the one an alert recorded.
    pub fn version(&self, number: u64) -> Option<&Policy> {
        self.entries
            .iter()
            .find(|(version, _)| version.version == number)
            .map(|(_, policy)| policy)
    }

    /// The version in force at `at`: the last one created at or before it.
    pub fn in_force_at(&self, at: Timestamp) -> Result<&Policy, PolicyError> {
        self.entries
            .iter()
            .rev()
            .find(|(version, _)| version.created_at <= at)
            .map(|(_, policy)| policy)
            .ok_or_else(|| PolicyError::NoneInForce {
                client: self.client.clone(),
                at,
                first: self.entries.first().map(|(version, _)| version.created_at),
            })
    }

    /// The version that would be saved for this text, validated, without saving it — so the
    /// store can write it durably first and then [`push`](Self::push) it. `Ok(None)` when the
    /// text is identical to the latest version.
    pub fn propose(
        &self,
        author: &str,
        created_at: Timestamp,
        text: &str,
    ) -> Result<Option<(PolicyVersion, Policy)>, PolicyError> {
        let digest = digest_of(text);
        if self
            .entries
            .last()
            .is_some_and(|(latest, _)| latest.digest == digest)
        {
            return Ok(None);
        }
        let version = PolicyVersion {
            client: self.client.clone(),
            version: self
                .entries
                .last()
                .map_or(1, |(latest, _)| latest.version + 1),
            digest,
            author: author.to_string(),
            created_at,
            text: text.to_string(),
        };
        let policy = version.policy()?;
        if policy.client() != self.client {
            return Err(PolicyError::HistoryClient {
                expected: self.client.clone(),
                found: policy.client().to_string(),
            });
        }
        self.check_follows(&version)?;
        Ok(Some((version, policy)))
    }

    /// Adds a version made by [`propose`](Self::propose).
    pub fn push(&mut self, version: PolicyVersion, policy: Policy) -> Result<(), PolicyError> {
        self.check_follows(&version)?;
        self.entries.push((version, policy));
        Ok(())
    }

    /// Proposes and pushes in one step; returns the version in force after it (the latest,
    /// unchanged when the text is identical).
    pub fn append(
        &mut self,
        author: &str,
        created_at: Timestamp,
        text: &str,
    ) -> Result<&PolicyVersion, PolicyError> {
        if let Some((version, policy)) = self.propose(author, created_at, text)? {
            self.push(version, policy)?;
        }
        Ok(&self
            .entries
            .last()
            .expect("a version was just appended or matched")
            .0)
    }

    /// Classifies an alert by the version in force when it began firing.
    pub fn classify(
        &self,
        facts: &AlertFacts,
        now: Timestamp,
    ) -> Result<Classification, PolicyError> {
        classify(self.in_force_at(facts.firing_since)?, facts, now)
    }

    fn check_follows(&self, version: &PolicyVersion) -> Result<(), PolicyError> {
        if version.client != self.client {
            return Err(PolicyError::HistoryClient {
                expected: self.client.clone(),
                found: version.client.clone(),
            });
        }
        let (previous, previous_at) = self
            .entries
            .last()
            .map_or((0, Timestamp::MIN), |(latest, _)| {
                (latest.version, latest.created_at)
            });
        if version.version != previous + 1 {
            return Err(PolicyError::VersionGap {
                client: self.client.clone(),
                previous,
                found: version.version,
            });
        }
        if version.created_at < previous_at {
            return Err(PolicyError::OutOfOrder {
                client: self.client.clone(),
                created_at: version.created_at,
                latest_version: previous,
                latest_created_at: previous_at,
            });
        }
        Ok(())
    }
}

/// Every client's history.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    histories: BTreeMap<String, PolicyHistory>,
}

impl PolicySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one client's history (e.g. as loaded from the store).
    pub fn insert(&mut self, history: PolicyHistory) {
        self.histories.insert(history.client.clone(), history);
    }

    pub fn history(&self, client: &str) -> Option<&PolicyHistory> {
        self.histories.get(client)
    }

    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.histories.keys().map(String::as_str)
    }

    /// Saves a text as the next version of the client it names, starting that client's
    /// history if it is the first.
    pub fn append(
        &mut self,
        author: &str,
        created_at: Timestamp,
        text: &str,
    ) -> Result<&PolicyVersion, PolicyError> {
        let client = Policy::parse(std::path::Path::new("policy"), text)?
            .client()
            .to_string();
        self.histories
            .entry(client.clone())
            .or_insert_with(|| PolicyHistory::new(&client))
            .append(author, created_at, text)
    }

    /// The contract of `client` in force at `at`.
    pub fn in_force_at(&self, client: &str, at: Timestamp) -> Result<&Policy, PolicyError> {
        self.histories
            .get(client)
            .ok_or_else(|| PolicyError::NoneInForce {
                client: client.to_string(),
                at,
                first: None,
            })?
            .in_force_at(at)
    }

    /// Classifies an alert by its client's contract in force when it began firing.
    pub fn classify(
        &self,
        facts: &AlertFacts,
        now: Timestamp,
    ) -> Result<Classification, PolicyError> {
        classify(
            self.in_force_at(&facts.client, facts.firing_since)?,
            facts,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str =
        "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_text() {
        assert_eq!(
            digest_of("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn versions_are_numbered_in_order_and_an_unchanged_text_adds_none() {
        let mut history = PolicyHistory::new("acme");
        assert_eq!(
            history
                .append("owner", at("2025-01-01T00:00:00Z"), FIRST)
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            history
                .append("owner", at("2025-02-01T00:00:00Z"), FIRST)
                .unwrap()
                .version,
            1
        );
        let second = format!("{FIRST}saturday = \"09:00-12:00\"\n");
        let saved = history
            .append("tech", at("2025-03-01T00:00:00Z"), &second)
            .unwrap();
        assert_eq!((saved.version, saved.author.as_str()), (2, "tech"));
        assert_eq!(history.versions().count(), 2);
    }

    #[test]
    fn a_version_dated_before_the_latest_is_refused() {
        let mut history = PolicyHistory::new("acme");
        history
            .append("owner", at("2025-03-01T00:00:00Z"), FIRST)
            .unwrap();
        let error = history
            .append(
                "owner",
                at("2025-02-01T00:00:00Z"),
                &format!("{FIRST}# edit\n"),
            )
            .unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }

    #[test]
    fn a_text_for_another_client_is_refused() {
        let mut history = PolicyHistory::new("other");
        let error = history
            .append("owner", at("2025-03-01T00:00:00Z"), FIRST)
            .unwrap_err();
        assert!(
            matches!(error, PolicyError::HistoryClient { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_version_in_force_is_the_last_created_at_or_before_the_instant() {
        let mut history = PolicyHistory::new("acme");
        history
            .append("owner", at("2025-01-01T00:00:00Z"), FIRST)
            .unwrap();
        history
            .append(
                "owner",
                at("2025-03-01T00:00:00Z"),
                &format!("{FIRST}# v2\n"),
            )
            .unwrap();
        let version_at = |text: &str| history.in_force_at(at(text)).map(|p| p.version.version);
        assert!(version_at("2024-12-31T23:59:59Z").is_err());
        assert_eq!(version_at("2025-01-01T00:00:00Z").unwrap(), 1);
        assert_eq!(version_at("2025-02-28T23:59:59Z").unwrap(), 1);
        assert_eq!(version_at("2025-03-01T00:00:00Z").unwrap(), 2);
    }

    #[test]
    fn stored_versions_with_a_gap_are_refused() {
        let mut history = PolicyHistory::new("acme");
        history
            .append("owner", at("2025-01-01T00:00:00Z"), FIRST)
            .unwrap();
        let mut versions: Vec<PolicyVersion> = history.versions().cloned().collect();
        versions[0].version = 2;
        let error = PolicyHistory::from_versions("acme", versions).unwrap_err();
        assert!(matches!(error, PolicyError::VersionGap { .. }), "{error}");
    }
}
