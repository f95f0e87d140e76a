//! Who is on the other end of a connection, read from the client certificate the TLS
//! handshake verified. This is the only source of the `host` and `client` labels.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The verified identity of a connected agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The agent id: the certificate subject's common name.
    pub host: String,
    /// The client the host belongs to: the certificate subject's organization.
    pub client: String,
    /// When the certificate was issued (its start of validity, less the CA's backdating),
    /// ms since the Unix epoch. Revocation refuses certificates issued before it.
    pub issued_at_ms: i64,
    /// End of the certificate's validity, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate is not valid DER: {0}")]
    Malformed(String),
    #[error("client certificate has no {field} in its subject; issue agent certificates with CN=<agent id> and O=<client>")]
    MissingField { field: &'static str },
    #[error("client certificate {field} {value:?} is not a valid name (letters, digits, '.', '_' and '-', 1 to 128 characters)")]
    InvalidName { field: &'static str, value: String },
}

impl PeerIdentity {
    /// Reads CN (agent id) and O (client) from a DER certificate the handshake already
    /// verified against the CA.
    pub fn from_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|error| IdentityError::Malformed(error.to_string()))?;
        let subject = cert.subject();
        let host = first_string(subject.iter_common_name(), "common name (CN)")?;
        let client = first_string(subject.iter_organization(), "organization (O)")?;
        check_name("common name (CN)", &host)?;
        check_name("organization (O)", &client)?;
        let validity = cert.validity();
        let backdate_ms = crate::enroll::ca::BACKDATE.as_millis() as i64;
        Ok(Self {
            host,
            client,
            issued_at_ms: validity.not_before.timestamp() * 1000 + backdate_ms,
            expires_at_ms: validity.not_after.timestamp() * 1000,
        })
    }
}

fn first_string<'a>(
    mut attributes: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    field: &'static str,
) -> Result<String, IdentityError> {
    let attribute = attributes
        .next()
        .ok_or(IdentityError::MissingField { field })?;
    attribute
        .as_str()
        .map(str::to_string)
        .map_err(|_| IdentityError::MissingField { field })
}

/// Names become label values and file names in reports; keep them plain.
fn check_name(field: &'static str, value: &str) -> Result<(), IdentityError> {
    let plain = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '));
    if plain {
        Ok(())
    } else {
        Err(IdentityError::InvalidName {
            field,
            value: value.chars().take(64).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::CertificateAuthority;
    use std::time::Duration;

    fn der_of(pem: &str) -> Vec<u8> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn reads_host_and_client_from_an_agent_certificate() {
        let ca = CertificateAuthority::generate("Test CA").unwrap();
        let issued = ca
            .issue_agent("web-01", "acme-dental", Duration::from_secs(600))
            .unwrap();
        let identity = PeerIdentity::from_certificate(&der_of(&issued.cert_pem)).unwrap();
        assert_eq!(identity.host, "web-01");
        assert_eq!(identity.client, "acme-dental");
    }

    #[test]
    fn a_certificate_without_a_client_is_refused() {
        let ca = CertificateAuthority::generate("Test CA").unwrap();
        let server = ca
            .issue_server(&["localhost".into()], Duration::from_secs(600))
            .unwrap();
        let error = PeerIdentity::from_certificate(&der_of(&server.cert_pem)).unwrap_err();
        assert_eq!(
            error,
            IdentityError::MissingField {
                field: "organization (O)"
            }
        );
    }

    #[test]
    fn names_with_odd_characters_are_refused() {
        assert!(check_name("common name (CN)", "web-01.example").is_ok());
        assert!(check_name("common name (CN)", "web/01").is_err());
        assert!(check_name("common name (CN)", "").is_err());
        assert!(check_name("common name (CN)", "a\"b").is_err());
    }
}
