//! The `Enrollment` and `Renewal` gRPC services.
//!
//! `Enrollment` runs on its own listener, the only one that accepts clients without a
//! certificate: an agent trades a join token and a CSR for a certificate. `Renewal` runs on
//! the ingest listener, where the caller is already authenticated by its certificate, and
//! issues a fresh certificate with the same identity.
//!
//! Refusals tell the agent only that the token is not valid, never which check failed; the
//! collector's log says exactly why.

use super::ca::{sha256, CertificateAuthority};
use super::registry::{HostRecord, PendingRecord, Registry};
use super::revocation::RevocationList;
use crate::ingest::identity::PeerIdentity;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use vigil_proto::join_token::JoinToken;
use vigil_proto::pb;

/// Bounds on what an unauthenticated caller may send.
const MAX_TOKEN_BYTES: usize = 256;
const MAX_CSR_BYTES: usize = 16 * 1024;
const MAX_HOSTNAME_BYTES: usize = 128;

/// Settings of the enrollment room.
#[derive(Debug, Clone)]
pub struct EnrollSettings {
    /// Lifetime of the certificates issued to agents. Default: 30 days.
    pub cert_validity: Duration,
}

impl Default for EnrollSettings {
    fn default() -> Self {
        Self {
            cert_validity: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The CA, the registry and the settings, shared by both services.
#[derive(Clone)]
pub struct EnrollmentAuthority {
    pub ca: Arc<CertificateAuthority>,
    pub registry: Arc<Registry>,
    pub revocations: RevocationList,
    pub settings: EnrollSettings,
}

/// `vigil.v1.Enrollment`, for agents that hold a join token.
#[derive(Clone)]
pub struct EnrollmentService {
    authority: EnrollmentAuthority,
}

impl EnrollmentService {
    pub fn new(authority: EnrollmentAuthority) -> Self {
        Self { authority }
    }
}

fn refused() -> Status {
    Status::permission_denied(
        "join token is not valid (unknown, expired or used up); create a new one with 'vigil-collector token create'",
    )
}

fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "enrollment failed");
    Status::unavailable("the collector could not complete enrollment; try again later")
}

/// Hex of the SHA-256 of a token secret: the token's name in the registry.
pub fn token_hash(token: &JoinToken) -> String {
    hex(&sha256(&token.secret))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tonic::async_trait]
impl pb::enrollment_server::Enrollment for EnrollmentService {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let remote = request.remote_addr();
        let request = request.into_inner();
        if request.token.len() > MAX_TOKEN_BYTES
            || request.csr_der.len() > MAX_CSR_BYTES
            || request.hostname.len() > MAX_HOSTNAME_BYTES
        {
            return Err(Status::invalid_argument(
                "enrollment request is larger than allowed (token, CSR or hostname)",
            ));
        }
        let token: JoinToken =
            request
                .token
                .parse()
                .map_err(|error: vigil_proto::join_token::TokenParseError| {
                    Status::invalid_argument(error.to_string())
                })?;
        let authority = self.authority.clone();
        let response = tokio::task::spawn_blocking(move || {
            authority.enroll(&token, &request.csr_der, &request.hostname)
        })
        .await
        .map_err(internal)??;
        tracing::info!(
            ?remote,
            agent_id = %response.agent_id,
            client = %response.client,
            pending = response.pending_approval,
            "enrollment"
        );
        Ok(Response::new(response))
    }
}

impl EnrollmentAuthority {
    /// The blocking part of an enrollment: check the token, hold for approval or sign.
    fn enroll(
        &self,
        token: &JoinToken,
        csr_der: &[u8],
        hostname: &str,
    ) -> Result<pb::EnrollResponse, Status> {
        let fingerprint = self.ca.fingerprint().map_err(internal)?;
        if token.ca_fingerprint != fingerprint {
            tracing::warn!("enrollment with a token for another CA");
            return Err(refused());
        }
        let hash = token_hash(token);
        let now = now_ms();
        let record = match self.registry.check_token(&hash, now).map_err(internal)? {
            Ok(record) => record,
            Err(rejection) => {
                tracing::warn!(?rejection, "enrollment refused");
                return Err(refused());
            }
        };
        let agent_id = self.assign_agent_id(hostname, &record.client)?;
        let request_id = hex(&sha256(csr_der))[..16].to_string();
        if record.approve && !self.registry.is_approved(&request_id) {
            self.registry
                .add_pending(&PendingRecord {
                    request_id: request_id.clone(),
                    client: record.client.clone(),
                    hostname: agent_id.clone(),
                    token_hash: hash,
                    requested_at_ms: now,
                })
                .map_err(internal)?;
            return Ok(pb::EnrollResponse {
                agent_id,
                client: record.client,
                pending_approval: true,
                ..Default::default()
            });
        }
        // Validate the CSR before using up the token, so a broken request costs nothing.
        let certificate_pem = self
            .ca
            .sign_agent_csr(
                csr_der,
                &agent_id,
                &record.client,
                self.settings.cert_validity,
            )
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        match self.registry.consume_token(&hash, now).map_err(internal)? {
            Ok(_) => {}
            Err(rejection) => {
                tracing::warn!(?rejection, "enrollment refused at the last moment");
                return Err(refused());
            }
        }
        if record.approve {
            self.registry
                .finish_pending(&request_id)
                .map_err(internal)?;
        }
        self.record_issue(&agent_id, &record.client, now)?;
        Ok(pb::EnrollResponse {
            agent_id,
            client: record.client,
            certificate_pem,
            ca_bundle_pem: self.ca.cert_pem().to_string(),
            pending_approval: false,
        })
    }

    /// The host's name as the agent id; when another client already has a host of that
    /// name, the client is appended, so two clients' "reception-pc" stay apart.
    fn assign_agent_id(&self, hostname: &str, client: &str) -> Result<String, Status> {
        let base = sanitize(hostname);
        if base.is_empty() {
            return Err(Status::invalid_argument(
                "enrollment request has no usable hostname (letters, digits, '.', '_' or '-')",
            ));
        }
        match self.registry.host(&base).map_err(internal)? {
            Some(existing) if existing.client != client => {
                Ok(format!("{base}.{}", sanitize(client)))
            }
            _ => Ok(base),
        }
    }

    fn record_issue(&self, agent_id: &str, client: &str, now: i64) -> Result<(), Status> {
        let enrolled_at_ms = self
            .registry
            .host(agent_id)
            .map_err(internal)?
            .map_or(now, |existing| existing.enrolled_at_ms);
        self.registry
            .put_host(&HostRecord {
                agent_id: agent_id.to_string(),
                client: client.to_string(),
                enrolled_at_ms,
                cert_expires_at_ms: now + self.settings.cert_validity.as_millis() as i64,
            })
            .map_err(internal)
    }

    /// A new certificate for an authenticated agent, same identity.
    fn renew(&self, peer: &PeerIdentity, csr_der: &[u8]) -> Result<pb::EnrollResponse, Status> {
        if self.revocations.is_revoked(peer) {
            return Err(Status::permission_denied(
                "this host's certificate is revoked",
            ));
        }
        let certificate_pem = self
            .ca
            .sign_agent_csr(
                csr_der,
                &peer.host,
                &peer.client,
                self.settings.cert_validity,
            )
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        self.record_issue(&peer.host, &peer.client, now_ms())?;
        Ok(pb::EnrollResponse {
            agent_id: peer.host.clone(),
            client: peer.client.clone(),
            certificate_pem,
            ca_bundle_pem: self.ca.cert_pem().to_string(),
            pending_approval: false,
        })
    }
}

/// `vigil.v1.Renewal`, on the ingest listener.
#[derive(Clone)]
pub struct RenewalService {
    authority: EnrollmentAuthority,
}

impl RenewalService {
    pub fn new(authority: EnrollmentAuthority) -> Self {
        Self { authority }
    }
}

#[tonic::async_trait]
impl pb::renewal_server::Renewal for RenewalService {
    async fn renew(
        &self,
        request: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
        let csr_der = request.into_inner().csr_der;
        if csr_der.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument(
                "certificate signing request is too large",
            ));
        }
        let authority = self.authority.clone();
        let host = peer.host.clone();
        let response = tokio::task::spawn_blocking(move || authority.renew(&peer, &csr_der))
            .await
            .map_err(internal)??;
        tracing::info!(%host, "certificate renewed");
        Ok(Response::new(response))
    }
}

/// Lowercase letters, digits, '.', '_' and '-', at most 64 characters.
fn sanitize(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect::<String>()
        .trim_matches(|c| c == '-' || c == '.')
        .to_string()
}

pub(crate) fn now_ms() -> i64 {
    crate::ingest::session::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_become_plain_agent_ids() {
        assert_eq!(sanitize("RECEPTION-PC"), "reception-pc");
        assert_eq!(sanitize(" web 01 "), "web-01");
        assert_eq!(sanitize("../etc"), "etc");
        assert_eq!(sanitize("é"), "");
    }
}
