//! What a technician does to enrollment from the command line: create the CA, hand out join
//! tokens, list, approve and revoke hosts. Each works on the files under `<data_dir>/enroll`
//! and the CA files, so it works while a collector is serving.

use super::ca::{CaError, CertificateAuthority};
use super::names::{check_client_id, check_host_name, NameError};
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
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("--uses must be at least 1")]
    NoUses,
    #[error("no enrolled host named '{0}'; 'vigil-collector hosts list' shows them")]
    UnknownHost(String),
    #[error("host '{0}' is not revoked, so its name is in use; 'vigil-collector hosts replace {0}' revokes it and lets its replacement enroll, 'hosts revoke {0}' cuts it off")]
    NotRevoked(String),
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
    check_client_id(client)?;
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
    registry
        .hosts()?
        .into_iter()
        .map(|record| {
            Ok(HostStatus {
                revoked_at_ms: registry.revocation_of(&record)?,
                record,
            })
        })
        .collect()
}

/// Revokes every certificate issued to `agent_id` so far. A running collector refuses them
/// within a second, open streams included.
pub fn revoke_host(data_dir: &Path, agent_id: &str) -> Result<(), AdminError> {
    let registry = Registry::open(data_dir)?;
    enrolled(&registry, agent_id)?;
    registry.revoke(agent_id, now_ms())?;
    Ok(())
}

/// For a machine that takes over an enrolled host's name (a rebuilt or swapped PC): revokes
/// every certificate issued to the host so far, then lets the next enrollment of that name
/// with a token of the same client take it. Until then the name stays reserved.
pub fn replace_host(data_dir: &Path, agent_id: &str) -> Result<HostRecord, AdminError> {
    let registry = Registry::open(data_dir)?;
    let mut record = enrolled(&registry, agent_id)?;
    // Revoked first: no moment where the old certificate and the freed name coexist.
    registry.revoke(agent_id, now_ms())?;
    record.replaceable = true;
    registry.put_host(&record)?;
    Ok(record)
}

/// Frees the name of a revoked host (a retired machine): it leaves `hosts list`, and any
/// client's next enrollment may take the name. The revocation stays, so the old
/// certificates remain refused.
pub fn remove_host(data_dir: &Path, agent_id: &str) -> Result<HostRecord, AdminError> {
    let registry = Registry::open(data_dir)?;
    let record = enrolled(&registry, agent_id)?;
    if registry.revocation_of(&record)?.is_none() {
        return Err(AdminError::NotRevoked(agent_id.to_string()));
    }
    registry.remove_host(agent_id)?;
    Ok(record)
}

/// The host record of `agent_id`, which must be a valid name of an enrolled host.
fn enrolled(registry: &Registry, agent_id: &str) -> Result<HostRecord, AdminError> {
    check_host_name(agent_id)?;
    registry
        .host(agent_id)?
        .ok_or_else(|| AdminError::UnknownHost(agent_id.to_string()))
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

    fn host(registry: &Registry, name: &str) {
        registry
            .put_host(&HostRecord {
                agent_id: name.into(),
                client: "acme".into(),
                enrolled_at_ms: 1,
                cert_expires_at_ms: 2,
                replaceable: false,
            })
            .unwrap();
    }

    #[test]
    fn replace_revokes_the_host_and_frees_its_name_for_its_own_client() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        host(&registry, "pc-01");
        assert!(registry.name_available("pc-01", "acme").unwrap().is_err());
        replace_host(dir.path(), "pc-01").unwrap();
        assert!(registry.revocations().unwrap().contains_key("pc-01"));
        assert_eq!(registry.name_available("pc-01", "acme").unwrap(), Ok(()));
        assert!(registry.name_available("pc-01", "globex").unwrap().is_err());
    }

    #[test]
    fn remove_frees_only_a_revoked_name_and_keeps_the_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        host(&registry, "pc-02");
        let error = remove_host(dir.path(), "pc-02").unwrap_err().to_string();
        assert!(error.contains("hosts replace pc-02"), "{error}");
        revoke_host(dir.path(), "pc-02").unwrap();
        remove_host(dir.path(), "pc-02").unwrap();
        assert_eq!(registry.name_available("pc-02", "globex").unwrap(), Ok(()));
        assert!(registry.revocations().unwrap().contains_key("pc-02"));
    }

    #[test]
    fn host_commands_refuse_names_that_are_not_host_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["..", "../tokens/x"] {
            let error = revoke_host(dir.path(), name).unwrap_err();
            assert!(matches!(error, AdminError::Name(_)), "{name}: {error}");
        }
    }
}
