//! Enrollment: how an agent gets its identity, and how it loses it.
//!
//! A host's identity is its certificate: the subject's common name is the agent id (the
//! `host` label) and the organization is the client it belongs to (the `client` label).
//! [`ca::CertificateAuthority`] creates and loads the CA and signs certificates;
//! [`registry::Registry`] keeps join tokens (hashed), pending approvals, enrolled hosts and
//! revocations as small files; [`service::EnrollmentService`] trades a token and a CSR for a
//! certificate, [`service::RenewalService`] renews one for an authenticated agent; and
//! [`revocation::RevocationList`] is what the ingest listener checks connections against.
//! [`names`] holds the one rule for host names and the one for client ids.
//! [`admin`] is what the command line does: `ca init`, `token create`, `hosts …`.

pub mod admin;
pub mod ca;
pub mod names;
pub mod registry;
pub mod revocation;
pub mod service;

pub use ca::{CaError, CertificateAuthority, IssuedCertificate};
