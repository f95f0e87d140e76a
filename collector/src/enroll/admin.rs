//! What a technician does to enrollment from the command line: create the CA, hand out join
//! tokens, list, approve and revoke hosts. Each works on the files under `<data_dir>/enroll`
//! and the CA files, so it works while a collector is serving.

use super::ca::{CaError, CertificateAuthority};
use super::registry::{HostRecord, PendingRecord, Registry, RegistryError, TokenRecord};
use super::service::{now_ms, token_hash};
use crate::config::CollectorConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::join_token::JoinToken;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("'{}' already exists; a CA is never overwritten (move it away first if you really mean to replace it, and re-enroll every agent)", path.display())]
    CaExists { path: PathBuf },
    #[error("writing '{}': {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config '{}' has no [enroll] section; add one with ca_cert and ca_key (see deploy/collector.toml)", path.display())]
    NoEnrollSection { path: PathBuf },
    #[error("client name {0:?} is not valid: use letters, digits, spaces, '.', '_' or '-', at most 128 characters")]
    ClientName(String),
    #[error("--uses must be at least 1")]
    NoUses,
    #[error("no enrolled host named '{0}'; 'vigil-collector hosts list' shows them")]
    UnknownHost(String),
    #[error("no pending request '{0}'; 'vigil-collector hosts pending' shows them")]
    UnknownRequest(String),
}

/// What `ca init` wrote.
#[derive(Debug)]
pub struct CaFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Creates a CA and the collector's server certificate in `dir`. Refuses to overwrite a CA.
pub fn init_ca(
    dir: &Path,
    name: &str,
    server_names: &[String],
    server_validity: Duration,
) -> Result<CaFiles, AdminError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AdminError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    let files = CaFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        server_cert: dir.join("collector.pem"),
        server_key: dir.join("collector-key.pem"),
    };
    for path in [&files.ca_cert, &files.ca_key] {
        if path.exists() {
            return Err(AdminError::CaExists { path: path.clone() });
        }
    }
    let ca = CertificateAuthority::generate(name)?;
    let server = ca.issue_server(server_names, server_validity)?;
    write_new(&files.ca_key, &ca.key_pem(), true)?;
    write_new(&files.ca_cert, ca.cert_pem(), false)?;
    write_new(&files.server_key, &server.key_pem, true)?;
    write_new(&files.server_cert, &server.cert_pem, false)?;
    Ok(files)
}

/// A token just created, and what to tell the technician.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: JoinToken,
    pub record: TokenRecord,
}

/// Creates a join token for `client`.
pub fn create_token(
    config: &CollectorConfig,
    config_path: &Path,
    client: &str,
    expires_in: Duration,
    uses: u32,
    approve: bool,
) -> Result<CreatedToken, AdminError> {
    if !is_valid_client(client) {
        return Err(AdminError::ClientName(client.to_string()));
    }
    if uses == 0 {
        return Err(AdminError::NoUses);
    }
    let enroll = config
        .enroll
        .as_ref()
        .ok_or_else(|| AdminError::NoEnrollSection {
            path: config_path.to_path_buf(),
        })?;
    let ca = CertificateAuthority::load(&enroll.ca_cert, &enroll.ca_key)?;
    let mut secret = [0u8; 20];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .expect("the operating system's random number generator works");
    let token = JoinToken {
        secret,
        enroll_port: enroll.listen.port(),
        ca_fingerprint: ca.fingerprint()?,
    };
    let now = now_ms();
    let record = TokenRecord {
        client: client.to_string(),
        created_at_ms: now,
        expires_at_ms: now + expires_in.as_millis() as i64,
        uses_left: uses,
        approve,
    };
    Registry::open(&config.data_dir)?.add_token(&token_hash(&token), &record)?;
    Ok(CreatedToken { token, record })
}

/// An enrolled host with what the registry knows of it.
#[derive(Debug)]
pub struct HostStatus {
    pub record: HostRecord,
    pub revoked_at_ms: Option<i64>,
}

pub fn list_hosts(data_dir: &Path) -> Result<Vec<HostStatus>, AdminError> {
    let registry = Registry::open(data_dir)?;
    let revocations = registry.revocations()?;
    Ok(registry
        .hosts()?
        .into_iter()
        .map(|record| HostStatus {
            revoked_at_ms: revocations
                .get(&record.agent_id)
                .map(|revocation| revocation.revoked_at_ms),
            record,
        })
        .collect())
}

/// Revokes every certificate issued to `agent_id` so far. A running collector refuses them
/// within a second, open streams included.
pub fn revoke_host(data_dir: &Path, agent_id: &str) -> Result<(), AdminError> {
    let registry = Registry::open(data_dir)?;
    if registry.host(agent_id)?.is_none() {
        return Err(AdminError::UnknownHost(agent_id.to_string()));
    }
    registry.revoke(agent_id, now_ms())?;
    Ok(())
}

pub fn pending(data_dir: &Path) -> Result<Vec<PendingRecord>, AdminError> {
    Ok(Registry::open(data_dir)?.pending()?)
}

/// Approves a pending request: the agent gets its certificate at its next attempt.
pub fn approve(data_dir: &Path, request_id: &str) -> Result<(), AdminError> {
    if Registry::open(data_dir)?.approve(request_id)? {
        Ok(())
    } else {
        Err(AdminError::UnknownRequest(request_id.to_string()))
    }
}

fn is_valid_client(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '))
}

/// Writes a file that must not exist yet; keys get mode 0600 from the start.
fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), AdminError> {
    let error = |source| AdminError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(error)?;
    file.write_all(contents.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_init_writes_the_key_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let files = init_ca(
            dir.path(),
            "Test MSP",
            &["localhost".into()],
            Duration::from_secs(3600),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.ca_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = init_ca(
            dir.path(),
            "Other",
            &["localhost".into()],
            Duration::from_secs(60),
        );
        assert!(matches!(again, Err(AdminError::CaExists { .. })));
    }

    #[test]
    fn client_names_are_checked() {
        assert!(is_valid_client("Acme Dental"));
        assert!(!is_valid_client("acme/../x"));
        assert!(!is_valid_client(" "));
    }
}
