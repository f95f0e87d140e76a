//! Signed acknowledge links: what an alert message carries so a technician can acknowledge
//! from the mail or chat it arrived in (`[http] public_url`, `ack_link_lifetime`).
//!
//! A link names the alert's fingerprint, its expiry and a random nonce, signed with
//! HMAC-SHA256 under a key kept in the data folder (`ack-link.key`, 32 random bytes, mode
//! 0600, created once). Opening it only shows the alert: the acknowledgement is a POST from
//! a signed-in session with its CSRF token. A used link's nonce is appended (and synced) to
//! `ack-links-used`, so it works once, across restarts. This module signs and checks; it
//! acknowledges nothing itself (that is the outbox's, as for the alert list).

use crate::notify::message::hex;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file the signing key lives in, under the data folder.
pub const KEY_FILE: &str = "ack-link.key";
/// The file used links' nonces are appended to, under the data folder.
pub const USED_FILE: &str = "ack-links-used";
/// How long a link works when `[http] ack_link_lifetime` is not set: a day.
pub const DEFAULT_LIFETIME_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum AckLinkError {
    #[error(
        "acknowledge link key {path}: {source}; check the data folder is writable by the collector"
    )]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("acknowledge link key {path} is not 32 bytes; delete it and restart (links already sent stop working)")]
    KeyLength { path: PathBuf },
    #[error(
        "recording a used acknowledge link in {path}: {source}; check the data folder is writable"
    )]
    RecordUsed {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this acknowledge link is not valid (altered or cut short); open the alert from the console instead")]
    Tampered,
    #[error("this acknowledge link expired; open the alert from the console to acknowledge it")]
    Expired,
    #[error("this acknowledge link was already used; open the alert from the console to see who acknowledged it")]
    AlreadyUsed,
}

/// The two links a message carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertLinks {
    /// The alert's page in the console.
    pub page: String,
    /// The signed acknowledge link.
    pub acknowledge: String,
}

/// What a valid link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaim {
    pub fingerprint: String,
    pub expires_ms: i64,
    pub nonce: String,
}

/// Makes and checks acknowledge links.
#[derive(Debug)]
pub struct AckLinks {
    key: ring::hmac::Key,
    public_url: String,
    lifetime_ms: i64,
    used_path: PathBuf,
    /// Held while a link is checked, used and recorded, so it is used once.
    using: Mutex<()>,
}

impl AckLinks {
    /// Opens (creating once) the key in `data_dir`; links point at `public_url`.
    pub fn open(data_dir: &Path, public_url: &str, lifetime_ms: i64) -> Result<Self, AckLinkError> {
        let path = data_dir.join(KEY_FILE);
        let key = read_or_create_key(&path)?;
        Ok(Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            public_url: public_url.trim_end_matches('/').to_string(),
            lifetime_ms,
            used_path: data_dir.join(USED_FILE),
            using: Mutex::new(()),
        })
    }

    /// The links of `config`'s `[http] public_url`, or none when it is not set.
    pub fn from_config(
        config: &crate::config::CollectorConfig,
    ) -> Result<Option<Self>, AckLinkError> {
        let http = config.http();
        match &http.public_url {
            Some(url) => Ok(Some(Self::open(
                &config.data_dir,
                url,
                http.ack_link_lifetime_ms(),
            )?)),
            None => Ok(None),
        }
    }

    /// The page and acknowledge links of alert `fingerprint`, made at `now_ms`.
    pub fn links(&self, fingerprint: &str, now_ms: i64) -> AlertLinks {
        let nonce = super::users::random_text(12);
        let expires_ms = now_ms.saturating_add(self.lifetime_ms);
        let signed = format!("{fingerprint}.{expires_ms}.{nonce}");
        let signature = hex(ring::hmac::sign(&self.key, signed.as_bytes()).as_ref());
        AlertLinks {
            page: format!("{}/alerts/{fingerprint}", self.public_url),
            acknowledge: format!("{}/ack/{signed}.{signature}", self.public_url),
        }
    }

    /// Checks `token` (the part after `/ack/`) at `now_ms`: signature, expiry, and not used.
    pub fn check(&self, token: &str) -> Result<LinkClaim, AckLinkError> {
        let mut parts = token.rsplitn(2, '.');
        let (Some(signature), Some(signed)) = (parts.next(), parts.next()) else {
            return Err(AckLinkError::Tampered);
        };
        let signature = unhex(signature).ok_or(AckLinkError::Tampered)?;
        ring::hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| AckLinkError::Tampered)?;
        let mut fields = signed.split('.');
        let (Some(fingerprint), Some(expires), Some(nonce), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(AckLinkError::Tampered);
        };
        Ok(LinkClaim {
            fingerprint: fingerprint.to_string(),
            expires_ms: expires.parse().map_err(|_| AckLinkError::Tampered)?,
            nonce: nonce.to_string(),
        })
    }

    /// Checks `token` fully at `now_ms`: signed, not expired, not used.
    pub fn check_usable(&self, token: &str, now_ms: i64) -> Result<LinkClaim, AckLinkError> {
        let claim = self.check(token)?;
        if now_ms > claim.expires_ms {
            return Err(AckLinkError::Expired);
        }
        if self.is_used(&claim.nonce)? {
            return Err(AckLinkError::AlreadyUsed);
        }
        Ok(claim)
    }

    /// Uses `token` at `now_ms`: runs `act` (the acknowledgement) only if the link is
    /// usable, then records it as used before answering. Two requests with one link: one
    /// acts, the other is told the link was used.
    pub fn use_link<T, E: From<AckLinkError>>(
        &self,
        token: &str,
        now_ms: i64,
        act: impl FnOnce(&LinkClaim) -> Result<T, E>,
    ) -> Result<T, E> {
        let _held = self.using.lock().unwrap_or_else(|e| e.into_inner());
        let claim = self.check_usable(token, now_ms)?;
        let done = act(&claim)?;
        self.record_used(&claim.nonce)?;
        Ok(done)
    }

    fn is_used(&self, nonce: &str) -> Result<bool, AckLinkError> {
        match std::fs::read_to_string(&self.used_path) {
            Ok(text) => Ok(text.lines().any(|line| line == nonce)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AckLinkError::RecordUsed {
                path: self.used_path.clone(),
                source,
            }),
        }
    }

    fn record_used(&self, nonce: &str) -> Result<(), AckLinkError> {
        let failed = |source| AckLinkError::RecordUsed {
            path: self.used_path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.used_path)
            .map_err(failed)?;
        file.write_all(format!("{nonce}\n").as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)
    }
}

fn read_or_create_key(path: &Path) -> Result<Vec<u8>, AckLinkError> {
    let failed = |source| AckLinkError::Key {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let mut key = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .expect("the operating system's random number generator works");
            file.write_all(&key).map_err(failed)?;
            file.sync_all().map_err(failed)?;
            Ok(key.to_vec())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = std::fs::read(path).map_err(failed)?;
            if key.len() != 32 {
                return Err(AckLinkError::KeyLength {
                    path: path.to_path_buf(),
                });
            }
            Ok(key)
        }
        Err(source) => Err(failed(source)),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(link: &AlertLinks) -> &str {
        link.acknowledge.rsplit("/ack/").next().unwrap()
    }

    #[test]
    fn a_link_names_its_alert_and_works_once_then_is_refused_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let links = AckLinks::open(dir.path(), "https://vigil.example/", 60_000).unwrap();
        let made = links.links("00aa11bb22cc33dd", 1_000);
        assert_eq!(made.page, "https://vigil.example/alerts/00aa11bb22cc33dd");
        let claim = links
            .use_link(token(&made), 2_000, |claim| {
                Ok::<_, AckLinkError>(claim.clone())
            })
            .unwrap();
        assert_eq!(claim.fingerprint, "00aa11bb22cc33dd");
        let again = AckLinks::open(dir.path(), "https://vigil.example", 60_000).unwrap();
        let refused = again.use_link(token(&made), 3_000, |_| Ok::<_, AckLinkError>(()));
        assert!(
            matches!(refused, Err(AckLinkError::AlreadyUsed)),
            "{refused:?}"
        );
    }

    #[test]
    fn an_altered_or_expired_link_is_refused_and_a_failed_action_leaves_it_usable() {
        let dir = tempfile::tempdir().unwrap();
        let links = AckLinks::open(dir.path(), "http://x", 60_000).unwrap();
        let made = links.links("00aa11bb22cc33dd", 1_000);
        let altered = token(&made).replacen("00aa", "00ab", 1);
        assert!(matches!(links.check(&altered), Err(AckLinkError::Tampered)));
        assert!(matches!(
            links.check_usable(token(&made), 61_001),
            Err(AckLinkError::Expired)
        ));
        let failed = links.use_link(token(&made), 2_000, |_| {
            Err::<(), _>(AckLinkError::Tampered)
        });
        assert!(failed.is_err());
        assert!(links.check_usable(token(&made), 2_000).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
