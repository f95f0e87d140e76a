//! Enrollment: the certificate authority that gives agents their identity.
//!
//! A host's identity is its certificate: the subject's common name is the agent id (the
//! `host` label) and the organization is the client it belongs to (the `client` label).
//! [`ca::CertificateAuthority`] creates and loads the CA and issues server and agent
//! certificates; the demo and the tests use it to stand up a complete mutual-TLS setup.

pub mod ca;

pub use ca::{CaError, CertificateAuthority, IssuedCertificate};
