//! What enrollment remembers, as small files under `<data_dir>/enroll/`, so that the CLI
//! (`token create`, `hosts revoke`, `hosts approve`) works while a collector is serving:
//!
//! ```text
//! tokens/<sha256 of secret>.json   a join token: client, expiry, uses left, approval needed
//! pending/<request id>.json        an agent waiting for a technician's approval
//! approved/<request id>            the technician's approval
//! hosts/<agent id>.json            each enrolled host: client, certificates issued
//! revoked/<agent id>.json          certificates of this host issued before this time are refused
//! ```
//!
//! Every file is written to a temporary name, fsynced and renamed, so a crash leaves either
//! the old or the new content. The collector is the only process that consumes tokens, under
//! a lock; the CLI only creates new files.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{}' is damaged ({reason}); delete it or restore it from a backup", path.display())]
    Damaged { path: PathBuf, reason: String },
}

/// A join token as stored: never the secret, only its hash (the file name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub client: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub uses_left: u32,
    /// New agents wait in the pending list until a technician approves them.
    pub approve: bool,
}

/// An agent that presented a valid approval-only token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    pub request_id: String,
    pub client: String,
    pub hostname: String,
    pub token_hash: String,
    pub requested_at_ms: i64,
}

/// An enrolled host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub agent_id: String,
    pub client: String,
    pub enrolled_at_ms: i64,
    /// Expiry of the newest certificate issued to it.
    pub cert_expires_at_ms: i64,
    /// A technician ran `hosts replace`: the old certificates are revoked and the next
    /// enrollment of this name by the same client takes it over.
    #[serde(default)]
    pub replaceable: bool,
}

/// A revocation: certificates of the host issued before `revoked_at_ms` are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    pub revoked_at_ms: i64,
}

/// Why a host name cannot be given to a new enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTaken {
    /// An enrolled host has the name; `hosts replace` or `hosts remove` frees it.
    Enrolled { client: String, revoked: bool },
    /// `hosts replace` freed it for the same client only.
    ReplaceableByItsClientOnly { client: String },
}

/// Why an enrollment could not complete at the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    Token(TokenRejection),
    Name(NameTaken),
}

/// Why a token was not accepted. Deliberately vague towards the agent (see `service`), exact
/// in the collector's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    Unknown,
    Expired,
    UsedUp,
}

/// How long a pending request lasts without its agent asking again (agents ask every 30 s).
pub const PENDING_STALE_MS: i64 = 5 * 60 * 1000;

pub struct Registry {
    dir: PathBuf,
    /// Serialises token consumption within the collector.
    consume_lock: Mutex<()>,
}

impl Registry {
    /// The registry under `<data_dir>/enroll`, created when missing.
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let dir = data_dir.join("enroll");
        for sub in ["tokens", "pending", "approved", "hosts", "revoked"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| RegistryError::Io {
                action: "creating",
                path,
                source,
            })?;
        }
        Ok(Self {
            dir,
            consume_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn add_token(&self, token_hash: &str, record: &TokenRecord) -> Result<(), RegistryError> {
        write_json(
            &self.dir.join("tokens").join(format!("{token_hash}.json")),
            record,
        )
    }

    /// Takes one use of a token, if it is known, unexpired and not used up. The record as it
    /// was before this use is returned.
    pub fn consume_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Result<TokenRecord, TokenRejection>, RegistryError> {
        let _guard = self.consume_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.token_path(token_hash);
        let Some(record) = read_json::<TokenRecord>(&path)? else {
            return Ok(Err(TokenRejection::Unknown));
        };
        if now_ms >= record.expires_at_ms {
            return Ok(Err(TokenRejection::Expired));
        }
        if record.uses_left == 0 {
            return Ok(Err(TokenRejection::UsedUp));
        }
        let remaining = TokenRecord {
            uses_left: record.uses_left - 1,
            ..record.clone()
        };
        write_json(&path, &remaining)?;
        Ok(Ok(record))
    }

    /// Looks a token up without using it (approval-only tokens are used at approval).
    pub fn check_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Result<TokenRecord, TokenRejection>, RegistryError> {
        let Some(record) = read_json::<TokenRecord>(&self.token_path(token_hash))? else {
            return Ok(Err(TokenRejection::Unknown));
        };
        if now_ms >= record.expires_at_ms {
            Ok(Err(TokenRejection::Expired))
        } else if record.uses_left == 0 {
            Ok(Err(TokenRejection::UsedUp))
        } else {
            Ok(Ok(record))
        }
    }

    /// Whether `agent_id` may be given to a new enrollment for `client`: it is free, or a
    /// technician ran `hosts replace` on it and the client is the same.
    pub fn name_available(
        &self,
        agent_id: &str,
        client: &str,
    ) -> Result<Result<(), NameTaken>, RegistryError> {
        let Some(existing) = self.host(agent_id)? else {
            return Ok(Ok(()));
        };
        if existing.replaceable && existing.client == client {
            return Ok(Ok(()));
        }
        if existing.replaceable {
            return Ok(Err(NameTaken::ReplaceableByItsClientOnly {
                client: existing.client,
            }));
        }
        let revoked = self.revocation_of(&existing)?.is_some();
        Ok(Err(NameTaken::Enrolled {
            client: existing.client,
            revoked,
        }))
    }

    /// The last step of an enrollment, atomic towards other enrollments: the name is still
    /// available, the token still valid; then one use of the token is taken and the host is
    /// recorded. Two agents racing for one name never both get it.
    pub fn claim_host(
        &self,
        token_hash: &str,
        host: &HostRecord,
        now_ms: i64,
    ) -> Result<Result<TokenRecord, ClaimRefusal>, RegistryError> {
        let _guard = self.consume_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(taken) = self.name_available(&host.agent_id, &host.client)? {
            return Ok(Err(ClaimRefusal::Name(taken)));
        }
        let path = self.token_path(token_hash);
        let record = match self.check_token(token_hash, now_ms)? {
            Ok(record) => record,
            Err(rejection) => return Ok(Err(ClaimRefusal::Token(rejection))),
        };
        let remaining = TokenRecord {
            uses_left: record.uses_left - 1,
            ..record.clone()
        };
        write_json(&path, &remaining)?;
        self.put_host(host)?;
        Ok(Ok(record))
    }

    /// Adds (or refreshes) a pending request, unless the token already has as many other
    /// requests waiting as it has uses left: a single-use token holds one agent in the
    /// pending list, never twenty. A waiting agent asks again every 30 s, which refreshes
    /// its request; one not refreshed for [`PENDING_STALE_MS`] gave up, is forgotten and no
    /// longer holds a place. Returns how many wait for the token when refused.
    pub fn add_pending_within(
        &self,
        record: &PendingRecord,
        uses_left: u32,
    ) -> Result<Result<(), usize>, RegistryError> {
        let _guard = self.consume_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut waiting = 0;
        for other in self.pending()? {
            if other.token_hash != record.token_hash || other.request_id == record.request_id {
                continue;
            }
            if other.requested_at_ms < record.requested_at_ms - PENDING_STALE_MS
                && !self.is_approved(&other.request_id)
            {
                self.finish_pending(&other.request_id)?;
            } else {
                waiting += 1;
            }
        }
        if waiting >= uses_left as usize {
            return Ok(Err(waiting));
        }
        self.add_pending(record)?;
        Ok(Ok(()))
    }

    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>, RegistryError> {
        list_json(&self.dir.join("tokens"))
    }

    pub fn add_pending(&self, record: &PendingRecord) -> Result<(), RegistryError> {
        write_json(&self.pending_path(&record.request_id), record)
    }

    pub fn pending(&self) -> Result<Vec<PendingRecord>, RegistryError> {
        Ok(list_json(&self.dir.join("pending"))?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// Records a technician's approval of a pending request.
    pub fn approve(&self, request_id: &str) -> Result<bool, RegistryError> {
        if read_json::<PendingRecord>(&self.pending_path(request_id))?.is_none() {
            return Ok(false);
        }
        write_json(&self.dir.join("approved").join(request_id), &true)?;
        Ok(true)
    }

    pub fn is_approved(&self, request_id: &str) -> bool {
        self.dir.join("approved").join(request_id).exists()
    }

    /// Forgets a pending request once it has been served.
    pub fn finish_pending(&self, request_id: &str) -> Result<(), RegistryError> {
        for path in [
            self.pending_path(request_id),
            self.dir.join("approved").join(request_id),
        ] {
            remove_if_present(&path)?;
        }
        Ok(())
    }

    pub fn host(&self, agent_id: &str) -> Result<Option<HostRecord>, RegistryError> {
        read_json(&self.host_path(agent_id))
    }

    pub fn put_host(&self, record: &HostRecord) -> Result<(), RegistryError> {
        write_json(&self.host_path(&record.agent_id), record)
    }

    pub fn hosts(&self) -> Result<Vec<HostRecord>, RegistryError> {
        Ok(list_json(&self.dir.join("hosts"))?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// Forgets an enrolled host. Its revocation, if any, stays: certificates issued before
    /// it remain refused.
    pub fn remove_host(&self, agent_id: &str) -> Result<(), RegistryError> {
        remove_if_present(&self.host_path(agent_id))
    }

    pub fn revoke(&self, agent_id: &str, now_ms: i64) -> Result<(), RegistryError> {
        write_json(
            &self.revoked_path(agent_id),
            &RevocationRecord {
                revoked_at_ms: now_ms,
            },
        )
    }

    /// When `host`'s current enrollment was revoked, if it was. A revocation older than the
    /// enrollment (the host was replaced, or its name removed and taken again) cut off an
    /// earlier machine, not this one.
    pub fn revocation_of(&self, host: &HostRecord) -> Result<Option<i64>, RegistryError> {
        Ok(
            read_json::<RevocationRecord>(&self.revoked_path(&host.agent_id))?
                .map(|revocation| revocation.revoked_at_ms)
                .filter(|revoked_at_ms| *revoked_at_ms >= host.enrolled_at_ms),
        )
    }

    /// When `agent_id` was last revoked, if ever.
    pub fn revoked_at(&self, agent_id: &str) -> Result<Option<i64>, RegistryError> {
        Ok(read_json::<RevocationRecord>(&self.revoked_path(agent_id))?
            .map(|revocation| revocation.revoked_at_ms))
    }

    /// Every revocation, by agent id.
    pub fn revocations(&self) -> Result<HashMap<String, RevocationRecord>, RegistryError> {
        Ok(list_json(&self.dir.join("revoked"))?.into_iter().collect())
    }

    fn revoked_path(&self, agent_id: &str) -> PathBuf {
        self.dir.join("revoked").join(format!("{agent_id}.json"))
    }

    fn token_path(&self, token_hash: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{token_hash}.json"))
    }

    fn pending_path(&self, request_id: &str) -> PathBuf {
        self.dir.join("pending").join(format!("{request_id}.json"))
    }

    fn host_path(&self, agent_id: &str) -> PathBuf {
        self.dir.join("hosts").join(format!("{agent_id}.json"))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| RegistryError::Damaged {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// Every `*.json` in `dir`, keyed by file stem. Temporary files are skipped.
fn list_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
) -> Result<Vec<(String, T)>, RegistryError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RegistryError::Io {
        action: "listing",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RegistryError::Io {
            action: "listing",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(record) = read_json(&path)? {
            records.push((stem, record));
        }
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(records)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RegistryError> {
    crate::durable::write_json(path, value).map_err(|(action, source)| RegistryError::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

fn remove_if_present(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RegistryError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(uses: u32) -> TokenRecord {
        TokenRecord {
            client: "acme".into(),
            created_at_ms: 0,
            expires_at_ms: 1_000,
            uses_left: uses,
            approve: false,
        }
    }

    #[test]
    fn a_single_use_token_works_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.add_token("abc", &token(1)).unwrap();
        assert_eq!(registry.consume_token("abc", 10).unwrap(), Ok(token(1)));
        assert_eq!(
            registry.consume_token("abc", 11).unwrap(),
            Err(TokenRejection::UsedUp)
        );
    }

    #[test]
    fn expired_and_unknown_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.add_token("abc", &token(5)).unwrap();
        assert_eq!(
            registry.consume_token("abc", 1_000).unwrap(),
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            registry.consume_token("nope", 10).unwrap(),
            Err(TokenRejection::Unknown)
        );
        // Checking did not use it up.
        assert_eq!(registry.tokens().unwrap()[0].1.uses_left, 5);
    }

    #[test]
    fn revocations_and_hosts_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let registry = Registry::open(dir.path()).unwrap();
            registry.revoke("pc-01", 42).unwrap();
            registry
                .put_host(&HostRecord {
                    agent_id: "pc-01".into(),
                    client: "acme".into(),
                    enrolled_at_ms: 1,
                    cert_expires_at_ms: 2,
                    replaceable: false,
                })
                .unwrap();
        }
        let registry = Registry::open(dir.path()).unwrap();
        assert_eq!(registry.revocations().unwrap()["pc-01"].revoked_at_ms, 42);
        assert_eq!(registry.hosts().unwrap()[0].client, "acme");
    }

    fn pending(request_id: &str, at_ms: i64) -> PendingRecord {
        PendingRecord {
            request_id: request_id.into(),
            client: "acme".into(),
            hostname: format!("pc-{request_id}"),
            token_hash: "abc".into(),
            requested_at_ms: at_ms,
        }
    }

    #[test]
    fn pending_requests_are_bounded_by_the_tokens_uses_until_they_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        assert_eq!(
            registry.add_pending_within(&pending("a", 0), 1).unwrap(),
            Ok(())
        );
        // The same agent asking again refreshes its place.
        assert_eq!(
            registry.add_pending_within(&pending("a", 10), 1).unwrap(),
            Ok(())
        );
        assert_eq!(
            registry.add_pending_within(&pending("b", 20), 1).unwrap(),
            Err(1)
        );
        assert_eq!(registry.pending().unwrap().len(), 1);
        // "a" stopped asking: after PENDING_STALE_MS its place is free.
        let later = 10 + PENDING_STALE_MS + 1;
        assert_eq!(
            registry
                .add_pending_within(&pending("b", later), 1)
                .unwrap(),
            Ok(())
        );
        let left: Vec<String> = registry
            .pending()
            .unwrap()
            .into_iter()
            .map(|p| p.request_id)
            .collect();
        assert_eq!(left, ["b"]);
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        std::fs::write(registry.dir().join("tokens/bad.json"), "{").unwrap();
        let error = registry.consume_token("bad", 0).unwrap_err().to_string();
        assert!(error.contains("bad.json' is damaged"), "{error}");
    }
}
