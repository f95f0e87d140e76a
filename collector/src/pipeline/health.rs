//! Vigil's own problems as alerts for the MSP: a policy file that does not load on a
//! running collector, a delivery channel that keeps failing. Each is a [`Transition`] of
//! kind `vigil_health` for the client [`MSP_CLIENT`], handed to the same dispatch as any
//! other alert; no client contract classifies it (see `dispatch`), and the routing's
//! defaults (or `[notify.routing.clients.msp]`) say where it goes.
//!
//! [`Health`] only compares the problems seen now with those open before; what counts as
//! a problem is decided where it is known (the policy folder, the notifier).

use crate::alert::{AlertDetails, AlertState, FailureKind, Severity, Transition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_proto::model::Labels;

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
