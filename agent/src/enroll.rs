//! Joining a collector: `vigil-agent enroll --collector URL --token TOKEN`.
//!
//! The agent generates its own key (it never leaves the machine), sends a certificate
//! signing request with the join token to the collector's enrollment listener, and writes
//! the certificate, the CA and an `agent.toml` that `vigil-agent run` uses from then on.
//!
//! Trust on first contact is pinned: the join token carries the SHA-256 of the collector's
//! CA certificate, and the TLS handshake is accepted only if the server's chain includes that
//! CA and the server certificate verifies against it. A man in the middle at enrollment
//! cannot present such a chain.
//!
//! Renewal ([`renew`]) uses the same key-and-CSR exchange over the ingest listener, where the
//! current certificate authenticates the agent.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};
use vigil_proto::join_token::JoinToken;
use vigil_proto::pb;

/// How often to ask again while a technician has not approved this agent yet.
pub const APPROVAL_POLL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("collector address {url:?} is not an https URL with a host; write e.g. \"https://msp.example:7443\"")]
    Url { url: String },
    #[error("generating this agent's key: {0}")]
    Key(String),
    #[error("connecting to the enrollment listener {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the collector refused enrollment: {0}")]
    Refused(String),
    #[error("the collector's answer is unusable: {0}")]
    Answer(String),
    #[error("no approval after {waited}; ask a technician to run 'vigil-collector hosts approve', then enroll again")]
    NotApproved { waited: String },
    #[error("writing '{}': {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where to enroll and where to put the result.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The collector's ingest URL, as `agent.toml` will name it.
    pub collector_url: String,
    pub token: JoinToken,
    /// Folder for agent.pem, agent-key.pem, ca.pem and agent.toml.
    pub config_dir: PathBuf,
    /// What this machine calls itself; the collector derives the agent id from it.
    pub hostname: String,
    /// How long to wait for a technician's approval when the token requires it.
    pub approval_wait: Duration,
    /// How often to ask again meanwhile ([`APPROVAL_POLL`] by default).
    pub approval_poll: Duration,
}

/// What enrollment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub agent_id: String,
    pub client: String,
    pub config_path: PathBuf,
}

/// A new key and its certificate signing request.
struct KeyAndRequest {
    key_pem: String,
    csr_der: Vec<u8>,
}

fn new_key_and_request(hostname: &str) -> Result<KeyAndRequest, EnrollError> {
    let key = rcgen::KeyPair::generate().map_err(|e| EnrollError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let csr = params
        .serialize_request(&key)
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    Ok(KeyAndRequest {
        key_pem: key.serialize_pem(),
        csr_der: csr.der().to_vec(),
    })
}

/// Enrolls with a join token, waiting for approval if the token asks for it, and writes the
/// agent's files.
pub async fn enroll(options: &EnrollOptions) -> Result<Enrolled, EnrollError> {
    let uri: Uri = options
        .collector_url
        .parse()
        .ok()
        .filter(|uri: &Uri| uri.scheme_str() == Some("https") && uri.host().is_some())
        .ok_or_else(|| EnrollError::Url {
            url: options.collector_url.clone(),
        })?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let enroll_url = format!(
        "https://{}:{}",
        authority_host(&uri),
        options.token.enroll_port
    );
    let request = new_key_and_request(&options.hostname)?;
    let channel = pinned_channel(&enroll_url, &host, options.token.ca_fingerprint).await?;
    let mut client = pb::enrollment_client::EnrollmentClient::new(channel);
    let started = tokio::time::Instant::now();
    let response = loop {
        let answer = client
            .enroll(pb::EnrollRequest {
                token: options.token.to_string(),
                csr_der: request.csr_der.clone(),
                hostname: options.hostname.clone(),
            })
            .await
            .map_err(|status| EnrollError::Refused(status.message().to_string()))?
            .into_inner();
        if !answer.pending_approval {
            break answer;
        }
        if started.elapsed() >= options.approval_wait {
            return Err(EnrollError::NotApproved {
                waited: humantime::format_duration(options.approval_wait).to_string(),
            });
        }
        tracing::info!(
            agent_id = %answer.agent_id,
            "waiting for a technician to approve this agent ('vigil-collector hosts approve')"
        );
        tokio::time::sleep(options.approval_poll).await;
    };
    check_answer(&response, options.token.ca_fingerprint)?;
    let config_path = write_files(options, &request.key_pem, &response)?;
    Ok(Enrolled {
        agent_id: response.agent_id,
        client: response.client,
        config_path,
    })
}

/// Renews the certificate over an authenticated channel to the ingest listener and replaces
/// the key and certificate files. The identity stays the same: the collector takes it from the
/// certificate that authenticated the call.
pub async fn renew(
    channel: Channel,
    cert: &Path,
    key: &Path,
    hostname: &str,
) -> Result<(), EnrollError> {
    let request = new_key_and_request(hostname)?;
    let response = pb::renewal_client::RenewalClient::new(channel)
        .renew(pb::RenewRequest {
            csr_der: request.csr_der,
        })
        .await
        .map_err(|status| EnrollError::Refused(status.message().to_string()))?
        .into_inner();
    if response.certificate_pem.is_empty() {
        return Err(EnrollError::Answer("no certificate in the renewal".into()));
    }
    // The old pair is kept beside the new one: a crash between the two renames below would
    // leave a key that does not match the certificate, and the old pair still works.
    for path in [key, cert] {
        let previous = path.with_extension("pem.previous");
        std::fs::copy(path, &previous).map_err(|source| EnrollError::Write {
            path: previous,
            source,
        })?;
    }
    write_atomically(key, &request.key_pem, true)?;
    write_atomically(cert, &response.certificate_pem, false)
}

fn check_answer(response: &pb::EnrollResponse, fingerprint: [u8; 32]) -> Result<(), EnrollError> {
    use rustls::pki_types::pem::PemObject;
    if response.certificate_pem.is_empty() || response.agent_id.is_empty() {
        return Err(EnrollError::Answer("no certificate or agent id".into()));
    }
    let ca = CertificateDer::from_pem_slice(response.ca_bundle_pem.as_bytes())
        .map_err(|error| EnrollError::Answer(format!("CA bundle: {error}")))?;
    if sha256(ca.as_ref()) != fingerprint {
        return Err(EnrollError::Answer(
            "the CA bundle does not match the join token's fingerprint".into(),
        ));
    }
    Ok(())
}

fn write_files(
    options: &EnrollOptions,
    key_pem: &str,
    response: &pb::EnrollResponse,
) -> Result<PathBuf, EnrollError> {
    let dir = &options.config_dir;
    std::fs::create_dir_all(dir).map_err(|source| EnrollError::Write {
        path: dir.clone(),
        source,
    })?;
    write_atomically(&dir.join("agent-key.pem"), key_pem, true)?;
    write_atomically(&dir.join("agent.pem"), &response.certificate_pem, false)?;
    write_atomically(&dir.join("ca.pem"), &response.ca_bundle_pem, false)?;
    let config_path = dir.join("agent.toml");
    let config = format!(
        "# Written by 'vigil-agent enroll' for agent '{agent}' of client '{client}'.\n\
         # Relative paths are relative to this file.\n\n\
         collector = \"{url}\"\ninterval = \"10s\"\n\n[tls]\ncert = \"agent.pem\"\nkey = \"agent-key.pem\"\nca = \"ca.pem\"\n",
        agent = response.agent_id,
        client = response.client,
        url = options.collector_url,
    );
    write_atomically(&config_path, &config, false)?;
    Ok(config_path)
}

/// Writes via a temporary file, fsync and rename; private files get mode 0600.
pub fn write_atomically(path: &Path, contents: &str, private: bool) -> Result<(), EnrollError> {
    let error = |source| EnrollError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(contents.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

fn authority_host(uri: &Uri) -> String {
    // IPv6 literals keep their brackets in a URL.
    let host = uri.host().unwrap_or_default();
    host.to_string()
}

/// A gRPC channel over TLS that trusts exactly the CA with `fingerprint`.
async fn pinned_channel(
    url: &str,
    host: &str,
    fingerprint: [u8; 32],
) -> Result<Channel, EnrollError> {
    let connect_error = |reason: String| EnrollError::Connect {
        url: url.to_string(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCaVerifier {
        fingerprint,
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| connect_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| connect_error(format!("host name: {e}")))?;
    // TLS is done by the connector below, so the endpoint itself speaks plain HTTP/2.
    let plain_url = url.replacen("https://", "http://", 1);
    let endpoint = Endpoint::from_shared(plain_url)
        .map_err(|e| connect_error(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    endpoint
        .connect_with_connector(tower::service_fn(move |uri: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            async move {
                let authority = uri
                    .authority()
                    .ok_or_else(|| std::io::Error::other("no host in the enrollment URL"))?
                    .as_str()
                    .to_string();
                let tcp = tokio::net::TcpStream::connect(authority).await?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| connect_error(format!("{e}: {}", source_chain(&e))))
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// Accepts a server whose chain contains the pinned CA and whose certificate verifies
/// against it (name, validity, signature), and nothing else.
#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| sha256(cert.as_ref()) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the collector's CA does not match the join token; is this the right collector?"
                        .into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
