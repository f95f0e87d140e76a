//! Vigil's own problems as alerts for the MSP: a policy file that does not load on a
//! running collector, a delivery channel that keeps failing. Each is a [`Transition`] of
//! kind `vigil_health` for the client [`MSP_CLIENT`], handed to the same dispatch as any
//! other alert; no client contract classifies it (see `dispatch`), and the routing's
//! defaults (or `[notify.routing.clients.msp]`) say where it goes.
//!
//! [`Health`] only compares the problems seen now with those open before; what counts as
//! a problem is decided where it is known (the policy folder, the notifier, and here, for
//! the enrolled fleet, [`Fleet`]: an agent that enrolled but never connected, a certificate
//! near its end that was not renewed).

use crate::alert::summary::duration;
use crate::alert::{AlertDetails, AlertState, FailureKind, Severity, Transition};
use crate::enroll::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use vigil_proto::model::Labels;

/// How long after enrolling an agent may take to connect before it is a problem.
pub const NEVER_CONNECTED_AFTER_MS: i64 = 60 * 60 * 1000;
/// How long a collector runs before it judges who never connected: agents reconnect after
/// a restart, and presence from before it may be missing.
const STARTUP_GRACE_MS: i64 = 15 * 60 * 1000;

/// The enrolled hosts, as the registry and presence know them.
pub struct Fleet {
    registry: Arc<Registry>,
    /// Where `presence.json` is.
    data_dir: PathBuf,
    /// How long certificates are issued for; agents renew at two thirds of it.
    cert_validity_ms: i64,
    started_ms: i64,
    /// The last check and when it ran: these problems are hours in the making, and a check
    /// reads every enrolled host's record, so evaluations in between reuse it.
    last: std::sync::Mutex<Option<(i64, Vec<Problem>)>>,
}

/// How often the fleet's records are read again for [`Fleet::problems`].
const RECHECK_MS: i64 = 5 * 60 * 1000;

impl Fleet {
    pub fn new(
        registry: Arc<Registry>,
        data_dir: PathBuf,
        cert_validity: std::time::Duration,
        started_ms: i64,
    ) -> Self {
        Self {
            registry,
            data_dir,
            cert_validity_ms: cert_validity.as_millis() as i64,
            started_ms,
            last: std::sync::Mutex::new(None),
        }
    }

    /// [`Fleet::check`] as of the last five minutes: read again when older, or when the
    /// clock went back.
    pub fn problems(&self, now_ms: i64) -> Vec<Problem> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at_ms, problems)) = &*last {
            if (*at_ms..*at_ms + RECHECK_MS).contains(&now_ms) {
                return problems.clone();
            }
        }
        let problems = self.check(now_ms);
        *last = Some((now_ms, problems.clone()));
        problems
    }

    /// Agents enrolled an hour ago or more that never connected, and certificates in the
    /// last quarter of their life (agents renew at two thirds: one not renewed by now
    /// has trouble renewing).
    pub fn check(&self, now_ms: i64) -> Vec<Problem> {
        let hosts = match self.registry.hosts() {
            Ok(hosts) => hosts,
            Err(error) => {
                tracing::error!("checking enrolled hosts: {error}");
                return Vec::new();
            }
        };
        let connected = match super::presence::read(&self.data_dir) {
            Ok(connected) => Some(connected),
            Err(error) => {
                tracing::error!("checking which agents connected: {error}");
                None
            }
        };
        let mut problems = Vec::new();
        // A host being replaced or revoked is expected to go quiet and keep its old
        // certificate.
        let current = hosts.iter().filter(|host| {
            !host.replaceable && matches!(self.registry.revocation_of(host), Ok(None))
        });
        for host in current {
            let never_connected = connected
                .as_ref()
                .is_some_and(|connected| !connected.contains_key(&host.agent_id));
            if never_connected
                && now_ms - self.started_ms >= STARTUP_GRACE_MS
                && now_ms - host.enrolled_at_ms >= NEVER_CONNECTED_AFTER_MS
            {
                problems.push(Problem {
                    rule: "AgentNeverConnected",
                    subject: ("agent", host.agent_id.clone()),
                    summary: format!(
                        "agent '{}' of client '{}' enrolled {} ago and never connected; check \
                         that its service runs and reaches the collector's gRPC port",
                        host.agent_id,
                        host.client,
                        duration((now_ms - host.enrolled_at_ms) as f64)
                    ),
                    since_ms: Some(host.enrolled_at_ms),
                });
            }
            let left_ms = host.cert_expires_at_ms - now_ms;
            if left_ms <= self.cert_validity_ms / 4 {
                let when = if left_ms > 0 {
                    format!("expires in {}", duration(left_ms as f64))
                } else {
                    format!("expired {} ago", duration(-left_ms as f64))
                };
                problems.push(Problem {
                    rule: "CertificateNotRenewed",
                    subject: ("agent", host.agent_id.clone()),
                    summary: format!(
                        "the certificate of agent '{}' (client '{}') {when} and was not \
                         renewed; check the agent's log, or enroll it again",
                        host.agent_id, host.client
                    ),
                    since_ms: None,
                });
            }
        }
        problems
    }
}

/// The client Vigil's own alerts belong to: routed by `[notify.routing]`'s defaults unless
/// `[notify.routing.clients.msp]` says otherwise.
pub const MSP_CLIENT: &str = "msp";
/// The host Vigil's own alerts name.
pub const COLLECTOR_HOST: &str = "vigil-collector";

/// One of Vigil's problems as seen now.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// One of [`crate::alert::catalog::HEALTH_RULES`].
    pub rule: &'static str,
    /// The label naming what is in trouble, e.g. `("file", "/etc/vigil/policies/a.toml")`.
    pub subject: (&'static str, String),
    pub summary: String,
    /// When it began, if known (else when it was first seen).
    pub since_ms: Option<i64>,
}

impl Problem {
    fn key(&self) -> String {
        format!("{}\u{1f}{}={}", self.rule, self.subject.0, self.subject.1)
    }
}

/// The problems that are open, saved with the engine's state so a restart neither repeats
/// nor forgets them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    open: BTreeMap<String, Transition>,
}

impl Health {
    /// The transitions that take the open problems to `problems`: a firing for each new
    /// one, a resolve for each that is gone.
    pub fn update(&mut self, problems: &[Problem], now_ms: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let now: BTreeMap<String, &Problem> = problems.iter().map(|p| (p.key(), p)).collect();
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|key| !now.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(mut transition) = self.open.remove(&key) {
                transition.state = AlertState::Resolved;
                transition.ts_ms = now_ms;
                out.push(transition);
            }
        }
        for (key, problem) in now {
            if self.open.contains_key(&key) {
                continue;
            }
            let mut labels = Labels::new();
            labels.insert(problem.subject.0, problem.subject.1.clone());
            let transition = Transition {
                ts_ms: now_ms,
                host: COLLECTOR_HOST.into(),
                client: MSP_CLIENT.into(),
                rule: problem.rule.into(),
                severity: Severity::Critical,
                state: AlertState::Firing,
                summary: problem.summary.clone(),
                labels,
                category: Some(FailureKind::VigilHealth),
                began_ms: problem.since_ms.unwrap_or(now_ms).min(now_ms),
                details: AlertDetails::default(),
            };
            self.open.insert(key, transition.clone());
            out.push(transition);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::registry::HostRecord;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn an_agent_that_never_connected_and_a_certificate_not_renewed_are_problems() {
        let data = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(data.path()).unwrap());
        let host = |id: &str, enrolled_at_ms: i64, cert_expires_at_ms: i64| HostRecord {
            agent_id: id.into(),
            client: "acme".into(),
            enrolled_at_ms,
            cert_expires_at_ms,
            replaceable: false,
        };
        let now = 1_000 * HOUR_MS;
        let validity = std::time::Duration::from_secs(90 * 24 * 3600);
        // Enrolled two hours ago, certificate fresh, never seen.
        registry
            .put_host(&host(
                "silent-pc",
                now - 2 * HOUR_MS,
                now + 89 * 24 * HOUR_MS,
            ))
            .unwrap();
        // Enrolled ten minutes ago: it may still be on its way.
        registry
            .put_host(&host("new-pc", now - HOUR_MS / 6, now + 90 * 24 * HOUR_MS))
            .unwrap();
        let fleet = Fleet::new(
            registry.clone(),
            data.path().into(),
            validity,
            now - HOUR_MS,
        );
        let problems = fleet.check(now);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].rule, "AgentNeverConnected");
        assert_eq!(problems[0].subject.1, "silent-pc");

        // Ten days left of ninety: renewal (at thirty left) did not happen.
        registry
            .put_host(&host(
                "silent-pc",
                now - 80 * 24 * HOUR_MS,
                now + 10 * 24 * HOUR_MS,
            ))
            .unwrap();
        let problems = fleet.check(now);
        assert!(
            problems
                .iter()
                .any(|p| p.rule == "CertificateNotRenewed" && p.summary.contains("expires in 10 d")),
            "{problems:?}"
        );

        // Just after the collector started, nobody is judged for not connecting yet.
        registry
            .put_host(&host(
                "silent-pc",
                now - 2 * HOUR_MS,
                now + 89 * 24 * HOUR_MS,
            ))
            .unwrap();
        let starting = Fleet::new(registry.clone(), data.path().into(), validity, now);
        assert!(starting.problems(now).is_empty());
        assert_eq!(fleet.check(now).len(), 1);

        // A revoked host is expected to go quiet.
        registry.revoke("silent-pc", now).unwrap();
        assert!(fleet.check(now).is_empty());
    }

    #[test]
    fn the_fleet_is_read_again_only_every_five_minutes() {
        let data = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(data.path()).unwrap());
        let now = 1_000 * HOUR_MS;
        let validity = std::time::Duration::from_secs(90 * 24 * 3600);
        let fleet = Fleet::new(
            registry.clone(),
            data.path().into(),
            validity,
            now - HOUR_MS,
        );
        assert!(fleet.problems(now).is_empty());
        registry
            .put_host(&HostRecord {
                agent_id: "silent-pc".into(),
                client: "acme".into(),
                enrolled_at_ms: now - 2 * HOUR_MS,
                cert_expires_at_ms: now + 89 * 24 * HOUR_MS,
                replaceable: false,
            })
            .unwrap();
        // Within five minutes the last reading stands; after them the registry is read.
        assert!(fleet.problems(now + RECHECK_MS - 1).is_empty());
        assert_eq!(fleet.problems(now + RECHECK_MS).len(), 1);
        // A clock set back reads again too.
        registry.revoke("silent-pc", now).unwrap();
        assert!(fleet.problems(now).is_empty());
    }

    fn policy_broken(file: &str) -> Problem {
        Problem {
            rule: "PolicyLoadFailed",
            subject: ("file", file.into()),
            summary: format!("policy {file} does not load"),
            since_ms: None,
        }
    }

    #[test]
    fn a_problem_fires_once_while_it_lasts_and_resolves_when_it_is_gone() {
        let mut health = Health::default();
        let fired = health.update(&[policy_broken("a.toml")], 1_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert_eq!(fired[0].client, MSP_CLIENT);
        assert_eq!(fired[0].category, Some(FailureKind::VigilHealth));
        assert!(health.update(&[policy_broken("a.toml")], 2_000).is_empty());
        let resolved = health.update(&[], 3_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(resolved[0].ts_ms, 3_000);
    }
}
