//! The collector's certificate authority: generate or load it, and issue certificates.
//!
//! It knows nothing of tokens or the network; it turns names into signed certificates.

use super::names::{check_client_id, check_host_name, NameError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::config_file::{check_private_key_file, ConfigFileError};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("reading {what} '{path}': {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} '{path}' is not a valid PEM {expected}: {reason}")]
    Parse {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("issuing a certificate for '{subject}': {reason}")]
    Issue { subject: String, reason: String },
    #[error("refusing to sign: {0}")]
    Name(#[from] NameError),
    #[error(transparent)]
    KeyFile(#[from] ConfigFileError),
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("IssuedCertificate").finish_non_exhaustive()
    }
}

/// Signs the certificates agents and the collector present to each other.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// The CA itself lives ten years; what it issues is short-lived.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl CertificateAuthority {
    /// A new CA with a fresh key, named `name` (e.g. "Vigil CA for Example MSP").
    pub fn generate(name: &str) -> Result<Self, CaError> {
        let issue_error = |error: rcgen::Error| CaError::Issue {
            subject: name.to_string(),
            reason: error.to_string(),
        };
        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key).map_err(issue_error)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA written by [`Self::cert_pem`] and [`Self::key_pem`].
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        let cert_pem = read(cert_path, "CA certificate")?;
        check_private_key_file(key_path)?;
        let key_pem = read(key_path, "CA key")?;
        let key = KeyPair::from_pem(&key_pem).map_err(|error| CaError::Parse {
            what: "CA key",
            path: key_path.to_path_buf(),
            expected: "private key",
            reason: error.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|error| CaError::Parse {
            what: "CA certificate",
            path: cert_path.to_path_buf(),
            expected: "certificate",
            reason: error.to_string(),
        })?;
        Ok(Self { cert_pem, issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key. Write it with mode 0600 and never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate for the collector, valid for the DNS names and IP addresses in
    /// `names`.
    pub fn issue_server(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        let subject = names.first().cloned().unwrap_or_else(|| "collector".into());
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&subject, None);
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|error: rcgen::Error| error.to_string()),
            })
            .collect::<Result<_, _>>()
            .map_err(|reason| CaError::Issue {
                subject: subject.clone(),
                reason,
            })?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign_new_key(&subject, params, validity)
    }

    /// SHA-256 of the CA certificate (DER): what a join token carries so that an agent can
    /// tell the real collector from a man in the middle at its first contact.
    pub fn fingerprint(&self) -> Result<[u8; 32], CaError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|error| {
            CaError::Issue {
                subject: "CA".into(),
                reason: format!("reading back the CA certificate: {error}"),
            }
        })?;
        Ok(sha256(der.as_ref()))
    }

    /// Signs a certificate for the key in `csr_der` (PKCS#10, DER). Only the key is taken
    /// from the request: the subject (agent id, client), usages and validity are the CA's
    /// decision. The request's signature proves the agent holds the private key.
    pub fn sign_agent_csr(
        &self,
        csr_der: &[u8],
        agent_id: &str,
        client: &str,
        validity: Duration,
    ) -> Result<String, CaError> {
        check_host_name(agent_id)?;
        check_client_id(client)?;
        let request = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|error| CaError::Issue {
                subject: agent_id.to_string(),
                reason: format!("the certificate signing request is not valid: {error}"),
            })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(agent_id, Some(client));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, validity);
        let cert = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(|error| CaError::Issue {
                subject: agent_id.to_string(),
                reason: error.to_string(),
            })?;
        Ok(cert.pem())
    }

    /// An agent certificate naming the agent id and its client, with a key generated here.
    /// Enrollment proper signs a CSR instead, so the key never leaves the agent; this is for
    /// the demo and tests.
    pub fn issue_agent(
        &self,
        agent_id: &str,
        client: &str,
        validity: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        check_host_name(agent_id)?;
        check_client_id(client)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(agent_id, Some(client));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_new_key(agent_id, params, validity)
    }

    fn sign_new_key(
        &self,
        subject: &str,
        mut params: CertificateParams,
        validity: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        let issue_error = |error: rcgen::Error| CaError::Issue {
            subject: subject.to_string(),
            reason: error.to_string(),
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, validity);
        let key = KeyPair::generate().map_err(issue_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_error)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn distinguished_name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

/// How far before its issue a certificate's validity starts, for clocks that drift.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// Valid from [`BACKDATE`] ago for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

fn read(path: &Path, what: &'static str) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_ca_loads_and_keeps_issuing() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("Test CA").unwrap();
        let cert_path = dir.path().join("ca.pem");
        let key_path = dir.path().join("ca-key.pem");
        std::fs::write(&cert_path, ca.cert_pem()).unwrap();
        std::fs::write(&key_path, ca.key_pem()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }

        let loaded = CertificateAuthority::load(&cert_path, &key_path).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let agent = loaded
            .issue_agent("web-01", "acme", Duration::from_secs(3600))
            .unwrap();
        assert!(agent.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(agent.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn loading_a_missing_ca_names_the_file() {
        let error = CertificateAuthority::load(Path::new("/nonexistent/ca.pem"), Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("reading CA certificate '/nonexistent/ca.pem'"),
            "{error}"
        );
    }

    #[test]
    fn server_names_may_be_ip_addresses_or_dns_names() {
        let ca = CertificateAuthority::generate("Test CA").unwrap();
        let issued = ca
            .issue_server(
                &["localhost".into(), "127.0.0.1".into()],
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(issued.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(format!("{issued:?}").find("PRIVATE").is_none());
    }

    fn shared_ca() -> &'static CertificateAuthority {
        static CA: std::sync::OnceLock<CertificateAuthority> = std::sync::OnceLock::new();
        CA.get_or_init(|| CertificateAuthority::generate("Test CA").unwrap())
    }

    #[test]
    fn a_csr_gets_the_identity_the_ca_chooses_not_the_one_it_asks_for() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name("srv-01", Some("other-client"));
        let csr = params.serialize_request(&key).unwrap();
        let pem = shared_ca()
            .sign_agent_csr(csr.der(), "pc-07", "acme", Duration::from_secs(60))
            .unwrap();
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let identity = crate::ingest::identity::PeerIdentity::from_certificate(&der).unwrap();
        assert_eq!(
            (identity.host.as_str(), identity.client.as_str()),
            ("pc-07", "acme")
        );
    }

    #[test]
    fn the_ca_refuses_to_sign_host_names_the_rule_refuses() {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        for name in [".", "..", " ", "web 01", "a/b"] {
            let error = shared_ca()
                .sign_agent_csr(csr.der(), name, "acme", Duration::from_secs(60))
                .unwrap_err();
            assert!(
                matches!(error, CaError::Name(NameError::Host { .. })),
                "{name:?}: {error}"
            );
            assert!(shared_ca()
                .issue_agent(name, "acme", Duration::from_secs(60))
                .is_err());
        }
        let error = shared_ca()
            .sign_agent_csr(csr.der(), "pc-01", "Acme Dental", Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert!(error.contains("--client acme-dental"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_are_refused_as_a_csr(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            proptest::prop_assert!(shared_ca()
                .sign_agent_csr(&bytes, "a", "b", Duration::from_secs(60))
                .is_err());
        }

        #[test]
        fn a_damaged_csr_is_refused_or_signed_for_the_chosen_identity_only(flip in 0usize..4096) {
            let key = KeyPair::generate().unwrap();
            let csr = CertificateParams::default().serialize_request(&key).unwrap();
            let mut bytes = csr.der().to_vec();
            let index = flip % bytes.len();
            bytes[index] ^= 1 << (flip % 8);
            if let Ok(pem) = shared_ca().sign_agent_csr(&bytes, "pc-01", "acme", Duration::from_secs(60)) {
                proptest::prop_assert!(pem.contains("BEGIN CERTIFICATE"));
            }
        }
    }
}
