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
use super::names::{check_host_name, host_name_from_machine};
use super::registry::{ClaimRefusal, HostRecord, NameTaken, PendingRecord, Registry};
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

/// The refusal of a name that is taken, with what to do about it. The agent is told the
/// name is taken, never by which client; the log says.
fn name_taken(agent_id: &str, client: &str, taken: &NameTaken) -> Status {
    tracing::warn!(%agent_id, %client, ?taken, "enrollment refused: the host name is taken");
    let remedy = match taken {
        NameTaken::Enrolled { revoked: true, .. } => format!(
            "a technician frees the name of this revoked host with 'vigil-collector hosts remove {agent_id}'"
        ),
        NameTaken::Enrolled { revoked: false, .. } => format!(
            "if this machine replaces that host (e.g. a rebuilt PC), a technician runs \
             'vigil-collector hosts replace {agent_id}' first"
        ),
        NameTaken::ReplaceableByItsClientOnly { .. } => {
            "it was freed for its own client's token only".to_string()
        }
    };
    Status::already_exists(format!(
        "host name '{agent_id}' is already enrolled; enroll with another --hostname, or {remedy}, then enroll again"
    ))
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
    /// The blocking part of an enrollment: check the token and the name, hold for approval
    /// or sign.
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
        let agent_id = host_name_from_machine(hostname);
        check_host_name(&agent_id).map_err(|error| {
            Status::invalid_argument(format!(
                "enrollment request has no usable host name ({hostname:?}): {error}; enroll with --hostname NAME"
            ))
        })?;
        // Refused before anything is held or signed; checked again, atomically, at the end.
        if let Err(taken) = self
            .registry
            .name_available(&agent_id, &record.client)
            .map_err(internal)?
        {
            return Err(name_taken(&agent_id, &record.client, &taken));
        }
        let request_id = hex(&sha256(csr_der))[..16].to_string();
        if record.approve && !self.registry.is_approved(&request_id) {
            let pending = PendingRecord {
                request_id: request_id.clone(),
                client: record.client.clone(),
                hostname: agent_id.clone(),
                token_hash: hash,
                requested_at_ms: now,
            };
            if let Err(waiting) = self
                .registry
                .add_pending_within(&pending, record.uses_left)
                .map_err(internal)?
            {
                tracing::warn!(
                    %agent_id,
                    client = %record.client,
                    waiting,
                    "approval request refused: the token's uses are all waiting for approval"
                );
                return Err(Status::resource_exhausted(format!(
                    "this join token already has {waiting} agent(s) waiting for approval, as many as its uses; \
                     a technician approves them ('vigil-collector hosts pending', 'hosts approve') \
                     or creates a token with more --uses"
                )));
            }
            return Ok(pb::EnrollResponse {
                agent_id,
                client: record.client,
                pending_approval: true,
                ..Default::default()
            });
        }
        // A replaced host's old certificates are refused by their issue time, which a
        // certificate carries in whole seconds: the new one must start after that second.
        if let Some(revoked_at_ms) = self.registry.revoked_at(&agent_id).map_err(internal)? {
            let clear_at_ms = (revoked_at_ms.div_euclid(1000) + 1) * 1000;
            let wait_ms = clear_at_ms - now_ms();
            if wait_ms > 0 {
                std::thread::sleep(Duration::from_millis(wait_ms.min(1000) as u64));
            }
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
        let signed_at = now_ms();
        let host = HostRecord {
            agent_id: agent_id.clone(),
            client: record.client.clone(),
            enrolled_at_ms: signed_at,
            cert_expires_at_ms: signed_at + self.settings.cert_validity.as_millis() as i64,
            replaceable: false,
        };
        match self
            .registry
            .claim_host(&hash, &host, signed_at)
            .map_err(internal)?
        {
            Ok(_) => {}
            Err(ClaimRefusal::Token(rejection)) => {
                tracing::warn!(?rejection, "enrollment refused at the last moment");
                return Err(refused());
            }
            Err(ClaimRefusal::Name(taken)) => {
                return Err(name_taken(&agent_id, &record.client, &taken));
            }
        }
        if record.approve {
            self.registry
                .finish_pending(&request_id)
                .map_err(internal)?;
        }
        Ok(pb::EnrollResponse {
            agent_id,
            client: record.client,
            certificate_pem,
            ca_bundle_pem: self.ca.cert_pem().to_string(),
            pending_approval: false,
        })
    }

    fn record_issue(&self, agent_id: &str, client: &str, now: i64) -> Result<(), Status> {
        let existing = self.registry.host(agent_id).map_err(internal)?;
        self.registry
            .put_host(&HostRecord {
                agent_id: agent_id.to_string(),
                client: client.to_string(),
                enrolled_at_ms: existing.as_ref().map_or(now, |host| host.enrolled_at_ms),
                cert_expires_at_ms: now + self.settings.cert_validity.as_millis() as i64,
                replaceable: existing.is_some_and(|host| host.replaceable),
            })
            .map_err(internal)
    }

    /// A new certificate for an authenticated agent, same identity.
    fn renew(&self, peer: &PeerIdentity, csr_der: &[u8]) -> Result<pb::EnrollResponse, Status> {
        // The registry on disk, not only the list reloaded every second: a certificate
        // renewed in the second after `hosts revoke` or `hosts replace` would outlive them.
        let revoked_on_disk = self
            .registry
            .revoked_at(&peer.host)
            .map_err(internal)?
            .is_some_and(|revoked_at_ms| peer.issued_at_ms <= revoked_at_ms);
        let record = self.registry.host(&peer.host).map_err(internal)?;
        let name_moved = record
            .as_ref()
            .is_some_and(|host| host.replaceable || host.client != peer.client);
        if self.revocations.is_revoked(peer) || revoked_on_disk || name_moved {
            tracing::warn!(host = %peer.host, client = %peer.client, "renewal refused: revoked or replaced");
            return Err(Status::permission_denied(format!(
                "this host's certificate is revoked; enroll this machine again with a new join token \
                 (a technician runs 'vigil-collector hosts replace {}' first if it keeps its name)",
                peer.host
            )));
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

pub(crate) fn now_ms() -> i64 {
    crate::ingest::session::now_ms()
}
