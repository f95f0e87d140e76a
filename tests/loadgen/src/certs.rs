//! The fleet's identities: one agent certificate per simulated host (CN = host, O = client),
//! signed by the collector's CA and cached on disk between runs, keyed by the CA's
//! fingerprint so that a new CA never meets certificates of an old one.
//!
//! Issuing is cheap (an ECDSA P-256 key and one signature), but 10,000 of them still take
//! seconds of the CPU the collector needs; the cache makes every run after the first free.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vigil_collector::enroll::CertificateAuthority;

/// How long the certificates the load generator issues live.
const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// A cached certificate older than this is issued again, so a run never meets an expiry.
const REISSUE_AFTER: Duration = Duration::from_secs(20 * 24 * 3600);
/// Simulated hosts per client, as in a small MSP's book of clients.
pub const HOSTS_PER_CLIENT: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("loading the CA from '{dir}': {source}; pass --ca-dir the folder where `vigil-collector ca init` wrote ca.pem and ca-key.pem")]
    LoadCa {
        dir: PathBuf,
        source: vigil_collector::enroll::CaError,
    },
    #[error("issuing the certificate of simulated host '{host}': {source}")]
    Issue {
        host: String,
        source: vigil_collector::enroll::CaError,
    },
    #[error("certificate cache '{path}': {source}; delete the file to start the cache afresh")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One simulated host's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentIdentity {
    pub host: String,
    pub client: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Seconds since the Unix epoch when it was issued.
    pub issued_at: u64,
}

impl AgentIdentity {
    /// Simulated agent `index` (0-based) by name only, without a certificate: what a
    /// remote-write sender needs.
    pub fn named(index: usize) -> Self {
        let (host, client) = host_and_client(index);
        Self {
            host,
            client,
            cert_pem: String::new(),
            key_pem: String::new(),
            issued_at: 0,
        }
    }
}

/// The CA's certificate and the identities of the first `n` simulated hosts.
#[derive(Debug)]
pub struct FleetIdentities {
    pub ca_pem: String,
    pub agents: Vec<AgentIdentity>,
    /// How many of them this run had to issue (the rest came from the cache).
    pub issued_now: usize,
}

/// The host name and client of simulated agent `index` (0-based).
pub fn host_and_client(index: usize) -> (String, String) {
    (
        format!("lg-host-{:05}", index + 1),
        format!("lg-client-{:03}", index / HOSTS_PER_CLIENT + 1),
    )
}

/// Loads the CA from `ca_dir` and returns `n` agent identities, from the cache under
/// `cache_dir` where they are still fresh, issued (and cached) where not.
pub fn fleet_identities(
    ca_dir: &Path,
    cache_dir: &Path,
    n: usize,
) -> Result<FleetIdentities, CertsError> {
    let ca = CertificateAuthority::load(&ca_dir.join("ca.pem"), &ca_dir.join("ca-key.pem"))
        .map_err(|source| CertsError::LoadCa {
            dir: ca_dir.to_path_buf(),
            source,
        })?;
    let fingerprint = ca.fingerprint().map_err(|source| CertsError::LoadCa {
        dir: ca_dir.to_path_buf(),
        source,
    })?;
    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    let cache_path = cache_dir.join(format!("agents-{}.json", &hex[..16]));
    let mut cached: Vec<AgentIdentity> = match std::fs::read(&cache_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(CertsError::Cache {
                path: cache_path,
                source,
            })
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut issued_now = 0;
    for index in 0..n.max(cached.len()) {
        let (host, client) = host_and_client(index);
        let fresh = cached.get(index).is_some_and(|one| {
            one.host == host && now.saturating_sub(one.issued_at) < REISSUE_AFTER.as_secs()
        });
        if fresh || index >= n {
            continue;
        }
        let issued =
            ca.issue_agent(&host, &client, VALIDITY)
                .map_err(|source| CertsError::Issue {
                    host: host.clone(),
                    source,
                })?;
        let identity = AgentIdentity {
            host,
            client,
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            issued_at: now,
        };
        if index < cached.len() {
            cached[index] = identity;
        } else {
            cached.push(identity);
        }
        issued_now += 1;
    }
    if issued_now > 0 {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(cache_dir)?;
            let partial = cache_path.with_extension("json.partial");
            // The cache holds the agents' private keys: readable by its owner only.
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            std::io::Write::write_all(&mut file.open(&partial)?, &serde_json::to_vec(&cached)?)?;
            std::fs::rename(&partial, &cache_path)
        };
        write().map_err(|source| CertsError::Cache {
            path: cache_path.clone(),
            source,
        })?;
    }
    cached.truncate(n);
    Ok(FleetIdentities {
        ca_pem: ca.cert_pem().to_string(),
        agents: cached,
        issued_now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_takes_its_certificates_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("Loadgen test CA").unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let key = dir.path().join("ca-key.pem");
        std::fs::write(&key, ca.key_pem()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let cache = dir.path().join("cache");
        let first = fleet_identities(dir.path(), &cache, 3).unwrap();
        assert_eq!(first.issued_now, 3);
        let second = fleet_identities(dir.path(), &cache, 5).unwrap();
        assert_eq!(second.issued_now, 2);
        assert_eq!(second.agents.len(), 5);
        assert_eq!(second.agents[0].cert_pem, first.agents[0].cert_pem);
        assert_eq!(second.agents[4].host, "lg-host-00005");
    }

    #[test]
    fn hosts_are_grouped_into_clients_of_fifty() {
        assert_eq!(host_and_client(0).1, "lg-client-001");
        assert_eq!(host_and_client(49).1, "lg-client-001");
        assert_eq!(host_and_client(50).1, "lg-client-002");
    }
}
