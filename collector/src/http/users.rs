//! The console's users: names, roles, password and API-token hashes, in one small JSON file
//! `<data_dir>/http/users.json`, written atomically like the registry and the outbox so that
//! `vigil-collector users …` and a running collector can both change it.
//!
//! Nothing secret is stored: passwords and API tokens are kept as argon2 hashes, and a token
//! is shown once, when it is made. A verified token is remembered in memory by its SHA-256
//! so that a script's every request does not pay for argon2.

use crate::enroll::names;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many verified API tokens are remembered; the memory is cleared when it is full.
const TOKEN_MEMORY: usize = 1024;
/// The shortest password `users add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted (sign-in refuses longer ones before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// What every API token starts with, so a leaked one is easy to recognise.
const TOKEN_PREFIX: &str = "vigil_";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{action} {}: {source}; check the permissions of the collector's data folder", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a users file ({reason}); restore it from a backup or move it away to start without users", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "user '{0}' already exists; remove it first ('users remove {0}') or pick another name"
    )]
    Exists(String),
    #[error("no user '{0}'; 'users list' shows who exists")]
    Unknown(String),
    #[error("user name '{0}' is not valid: use 1 to 64 letters, digits, '-', '_', '.' or '@'")]
    BadName(String),
    #[error("a client user needs --client NAME (the client id its hosts' certificates carry)")]
    ClientMissing,
    #[error("--client is only for role 'client'; admins and technicians see every client")]
    ClientNotAllowed,
    #[error(transparent)]
    BadClient(#[from] names::NameError),
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one")]
    ShortPassword,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes; choose a shorter one")]
    LongPassword,
    #[error("hashing a secret failed: {0}")]
    Hash(String),
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, users and the audit log included.
    Admin,
    /// Every client: read, acknowledge, approve and revoke hosts, create join tokens.
    Technician,
    /// Read-only, one client's hosts, alerts and contract: the client's own IT contact.
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
            Role::Client => "client",
        }
    }
}

/// An API token as stored: its id (the part after the prefix) and the hash of the whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub id: String,
    pub hash: String,
    pub created_at_ms: i64,
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The one client a `client` user sees.
    #[serde(default)]
    pub client: Option<String>,
    /// No password: the user signs in with API tokens only.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub tokens: Vec<StoredToken>,
    pub created_at_ms: i64,
}

/// The users file and the memory of tokens already verified.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    /// Serialises read-modify-write within this process.
    write_lock: Mutex<()>,
    /// SHA-256 of a verified token → (user, token id).
    verified: Mutex<HashMap<[u8; 32], (String, String)>>,
}

impl Users {
    /// Opens (creating the folder if needed) `<data_dir>/http/users.json`.
    pub fn open(data_dir: &Path) -> Result<Self, UsersError> {
        let dir = data_dir.join("http");
        std::fs::create_dir_all(&dir).map_err(|source| UsersError::Io {
            action: "creating",
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            path: dir.join("users.json"),
            write_lock: Mutex::new(()),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Every user by name.
    pub fn all(&self) -> Result<BTreeMap<String, User>, UsersError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| UsersError::Damaged {
                path: self.path.clone(),
                reason: error.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(UsersError::Io {
                action: "reading",
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn get(&self, name: &str) -> Result<Option<User>, UsersError> {
        Ok(self.all()?.remove(name))
    }

    fn change<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, User>) -> Result<T, UsersError>,
    ) -> Result<T, UsersError> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut users = self.all()?;
        let result = change(&mut users)?;
        crate::durable::write_json(&self.path, &users).map_err(|(action, source)| {
            UsersError::Io {
                action,
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(result)
    }

    /// Adds a user. `password` may be `None` for a user of API tokens only.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        client: Option<&str>,
        password: Option<&str>,
        now_ms: i64,
    ) -> Result<User, UsersError> {
        check_user_name(name)?;
        match (role, client) {
            (Role::Client, None) => return Err(UsersError::ClientMissing),
            (Role::Client, Some(client)) => names::check_client_id(client)?,
            (_, Some(_)) => return Err(UsersError::ClientNotAllowed),
            (_, None) => {}
        }
        let password_hash = match password {
            Some(password) if password.chars().count() < MIN_PASSWORD_CHARS => {
                return Err(UsersError::ShortPassword)
            }
            Some(password) if password.len() > MAX_PASSWORD_BYTES => {
                return Err(UsersError::LongPassword)
            }
            Some(password) => Some(hash_secret(password)?),
            None => None,
        };
        let user = User {
            name: name.to_string(),
            role,
            client: client.map(str::to_string),
            password_hash,
            tokens: Vec::new(),
            created_at_ms: now_ms,
        };
        self.change(|users| {
            if users.contains_key(name) {
                return Err(UsersError::Exists(name.to_string()));
            }
            users.insert(name.to_string(), user.clone());
            Ok(user)
        })
    }

    /// Removes a user and with it every token and session it had.
    pub fn remove(&self, name: &str) -> Result<User, UsersError> {
        self.change(|users| {
            users
                .remove(name)
                .ok_or_else(|| UsersError::Unknown(name.to_string()))
        })
    }

    /// Makes a new API token for `name` and returns it; only its hash is kept.
    pub fn create_token(&self, name: &str, now_ms: i64) -> Result<String, UsersError> {
        let id = random_text(6);
        let token = format!("{TOKEN_PREFIX}{id}_{}", random_text(32));
        let hash = hash_secret(&token)?;
        self.change(|users| {
            let user = users
                .get_mut(name)
                .ok_or_else(|| UsersError::Unknown(name.to_string()))?;
            user.tokens.push(StoredToken {
                id: id.clone(),
                hash: hash.clone(),
                created_at_ms: now_ms,
            });
            Ok(())
        })?;
        Ok(token)
    }

    /// The user whose password this is. An unknown name costs as much time as a wrong
    /// password, so that timing does not tell which names exist.
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>, UsersError> {
        let user = self.get(name)?;
        let hash = user
            .as_ref()
            .and_then(|user| user.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let matches = verify_secret(password, &hash);
        Ok(user.filter(|user| matches && user.password_hash.is_some()))
    }

    /// The user an API token belongs to, if it is one of theirs.
    pub fn verify_token(&self, token: &str) -> Result<Option<User>, UsersError> {
        let Some(id) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
        else {
            return Ok(None);
        };
        let users = self.all()?;
        let Some((user, stored)) = users.values().find_map(|user| {
            user.tokens
                .iter()
                .find(|stored| stored.id == id)
                .map(|stored| (user, stored))
        }) else {
            return Ok(None);
        };
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.get(&digest) == Some(&(user.name.clone(), stored.id.clone())) {
            return Ok(Some(user.clone()));
        }
        drop(verified);
        if !verify_secret(token, &stored.hash) {
            return Ok(None);
        }
        verified = self
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= TOKEN_MEMORY {
            verified.clear();
        }
        verified.insert(digest, (user.name.clone(), stored.id.clone()));
        Ok(Some(user.clone()))
    }
}

/// A hash of a throwaway password, verified against when the user is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4NXF1m0mYw3v9hN0ntbpPEG0bU0hUQXRVVyG1FT3NAY";

/// The one rule for user names.
pub fn check_user_name(name: &str) -> Result<(), UsersError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(UsersError::BadName(name.to_string()))
    }
}

fn hash_secret(secret: &str) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .expect("the operating system's random number generator works");
    let salt =
        SaltString::encode_b64(&salt).map_err(|error| UsersError::Hash(error.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| UsersError::Hash(error.to_string()))
}

fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// `n_bytes` random bytes as URL-safe base64 without padding.
pub fn random_text(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the operating system's random number generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .replace(['-', '_'], "x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_and_a_token_verify_and_only_their_hashes_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path()).unwrap();
        users
            .add(
                "ana",
                Role::Technician,
                None,
                Some("correct horse battery"),
                1,
            )
            .unwrap();
        let token = users.create_token("ana", 2).unwrap();
        assert_eq!(
            users
                .verify_password("ana", "correct horse battery")
                .unwrap()
                .map(|user| user.name),
            Some("ana".to_string())
        );
        assert!(users.verify_password("ana", "wrong").unwrap().is_none());
        assert!(users.verify_password("bob", "wrong").unwrap().is_none());
        assert_eq!(users.verify_token(&token).unwrap().unwrap().name, "ana");
        // Twice: the second answer comes from memory and must agree.
        assert_eq!(users.verify_token(&token).unwrap().unwrap().name, "ana");
        assert!(users.verify_token(&format!("{token}x")).unwrap().is_none());
        let file = std::fs::read_to_string(dir.path().join("http/users.json")).unwrap();
        assert!(!file.contains("correct horse battery"));
        assert!(!file.contains(&token));
    }

    #[test]
    fn a_removed_user_s_token_no_longer_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path()).unwrap();
        users.add("bot", Role::Admin, None, None, 1).unwrap();
        let token = users.create_token("bot", 2).unwrap();
        assert!(users.verify_token(&token).unwrap().is_some());
        users.remove("bot").unwrap();
        assert!(users.verify_token(&token).unwrap().is_none());
    }

    #[test]
    fn client_users_need_a_valid_client_and_others_refuse_one() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path()).unwrap();
        let refused = |result: Result<User, UsersError>| result.unwrap_err().to_string();
        assert!(refused(users.add("c", Role::Client, None, None, 1)).contains("--client"));
        assert!(
            refused(users.add("c", Role::Client, Some("Acme Dental"), None, 1))
                .contains("acme-dental")
        );
        assert!(
            refused(users.add("t", Role::Technician, Some("acme"), None, 1))
                .contains("only for role 'client'")
        );
        assert!(
            refused(users.add("t", Role::Technician, None, Some("short"), 1))
                .contains("shorter than")
        );
        assert!(refused(users.add("a b", Role::Admin, None, None, 1)).contains("not valid"));
        users.add("c", Role::Client, Some("acme"), None, 1).unwrap();
        assert!(refused(users.add("c", Role::Admin, None, None, 1)).contains("already exists"));
    }
}
