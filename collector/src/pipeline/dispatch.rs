//! From an alert transition to the outbox: the client's contract classifies it, the
//! client's routing picks the channels, [`notify::enqueue()`] writes the deliveries.
//!
//! Two kinds of transition wait instead of going out at once, and are kept in
//! [`Deferred`] (saved with the engine's state, so a restart keeps them): a firing held by
//! a maintenance window, released when the window ends if the alert still fires; and one
//! whose contract says to look again later (a condition that must last, such as "server
//! silent for 5 minutes", or a forecast that must come closer). A resolve drops what waits
//! for its alert.
//!
//! A waiting alert looked at again may come out with another contract severity than its
//! channels heard: that is a delivery of its own, in the alert's thread, dated by the
//! instant the decision changed ([`notify::enqueue_decision()`]).

use super::policies::Policies;
use crate::alert::{AlertState, Transition};
use crate::notify::config::RoutingSection;
use crate::notify::{self, NotifyError, Outbox};
use crate::policy::{
    AlertFacts, AlertKind, Classification, ContractSeverity, EngineSeverity, PolicyError,
    PolicyVersionId, Route,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A firing transition waiting to be classified again at `at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deferred {
    pub at_ms: i64,
    pub transition: Transition,
    /// When the alert began firing (the transition may be a later severity change).
    pub firing_since_ms: i64,
}

/// Classifies and enqueues transitions.
pub struct Dispatch {
    outbox: Arc<Outbox>,
    policies: Arc<Policies>,
    routing: RoutingSection,
    /// Waiting firings, by alert.
    deferred: Vec<Deferred>,
    /// When each open alert began firing, by (client, host, rule, labels).
    firing_since: BTreeMap<String, i64>,
    /// Rung after each enqueue: the notifier sends what is due without waiting to poll.
    wake: Option<Arc<tokio::sync::Notify>>,
    /// Every decision, for the monthly reports; beside the outbox in the data folder.
    history: crate::history::History,
}

impl Dispatch {
    pub fn new(outbox: Arc<Outbox>, policies: Arc<Policies>, routing: RoutingSection) -> Self {
        let history = crate::history::History::open(outbox.dir().parent().unwrap_or(outbox.dir()));
        Self {
            outbox,
            policies,
            routing,
            deferred: Vec::new(),
            firing_since: BTreeMap::new(),
            wake: None,
            history,
        }
    }

    /// Rings `wake` after every enqueue.
    pub fn waking(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// What waits, for the saved state.
    pub fn deferred(&self) -> &[Deferred] {
        &self.deferred
    }

    /// Takes back what waited before a restart.
    pub fn restore(&mut self, deferred: Vec<Deferred>) {
        for item in &deferred {
            self.firing_since
                .insert(key_of(&item.transition), item.firing_since_ms);
        }
        self.deferred = deferred;
    }

    /// Classifies and enqueues one transition. Returns when its deliveries are on disk.
    pub fn handle(&mut self, transition: &Transition, now: Timestamp) -> Result<(), NotifyError> {
        let key = key_of(transition);
        let firing_since_ms = match transition.state {
            AlertState::Firing => *self
                .firing_since
                .entry(key.clone())
                .or_insert(transition.ts_ms),
            AlertState::Resolved => {
                self.deferred.retain(|item| key_of(&item.transition) != key);
                self.firing_since.remove(&key).unwrap_or(transition.ts_ms)
            }
        };
        self.send(transition, firing_since_ms, now)
    }

    /// Sends what has waited until `now`, if its alert still fires. `summary_now` gives an
    /// alert's summary as it reads now, when the engine has one: a message sent after an
    /// hour's wait says how long the server has been silent, not how long it had been when
    /// the engine fired.
    pub fn release_due(
        &mut self,
        now: Timestamp,
        summary_now: impl Fn(&Transition) -> Option<String>,
    ) -> Result<(), NotifyError> {
        let now_ms = now.as_millisecond();
        let (due, waiting): (Vec<Deferred>, Vec<Deferred>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|item| item.at_ms <= now_ms);
        self.deferred = waiting;
        for item in due {
            tracing::info!(
                rule = %item.transition.rule,
                host = %item.transition.host,
                "classifying a waiting alert again"
            );
            let mut transition = item.transition.clone();
            if let Some(summary) = summary_now(&transition) {
                transition.summary = summary;
            }
            self.send_decided(&transition, item.firing_since_ms, now, Some(item.at_ms))?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        transition: &Transition,
        firing_since_ms: i64,
        now: Timestamp,
    ) -> Result<(), NotifyError> {
        self.send_decided(transition, firing_since_ms, now, None)
    }

    /// Classifies at `now` and enqueues; `looked_again_at_ms` is when a waiting alert was
    /// classified again (`None` for its first decision), which dates a changed decision.
    fn send_decided(
        &mut self,
        transition: &Transition,
        firing_since_ms: i64,
        now: Timestamp,
        looked_again_at_ms: Option<i64>,
    ) -> Result<(), NotifyError> {
        let classification = self.classify(transition, firing_since_ms, now);
        if transition.state == AlertState::Firing {
            let wait_until = match classification.route {
                Route::HeldForMaintenance { until } => Some(until),
                _ => classification.reclassify_at,
            };
            if let Some(at) = wait_until {
                let key = key_of(transition);
                self.deferred.retain(|item| key_of(&item.transition) != key);
                self.deferred.push(Deferred {
                    at_ms: at.as_millisecond(),
                    transition: transition.clone(),
                    firing_since_ms,
                });
            }
        }
        let mut routing = self.routing.for_client(&transition.client);
        if transition.rule == "ChannelFailing" {
            if let Some(channel) = transition.labels.get("channel") {
                routing.avoid(channel);
            }
        }
        let enqueued = notify::enqueue_decision(
            &self.outbox,
            transition,
            &classification,
            &routing,
            now,
            looked_again_at_ms,
        )?;
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
        let entry = crate::history::HistoryEntry::of(
            transition,
            &classification,
            &enqueued.fingerprint,
            firing_since_ms,
            now,
        );
        if let Err(error) = self.history.append(entry) {
            tracing::error!("{error}; the alert is delivered, its monthly report misses it");
        }
        tracing::info!(
            alert = %enqueued.fingerprint,
            rule = %transition.rule,
            host = %transition.host,
            state = ?transition.state,
            severity = %classification.contract_severity.as_str(),
            plan = ?enqueued.plan,
            "alert enqueued"
        );
        Ok(())
    }

    fn classify(
        &self,
        transition: &Transition,
        firing_since_ms: i64,
        now: Timestamp,
    ) -> Classification {
        if transition.category == Some(AlertKind::VigilHealth) {
            return without_contract(
                transition,
                now,
                "a problem of Vigil itself: no client contract applies; routed by \
                 [notify.routing] (client 'msp')",
            );
        }
        let mut facts = facts_of(transition, firing_since_ms, now);
        let mut classified = self.policies.classify(&facts, now);
        // An alert that began before the client's first contract version is classified by
        // that first version.
        if let Some(Err(PolicyError::NoneInForce {
            first: Some(first), ..
        })) = &classified
        {
            facts.firing_since = *first;
            classified = self.policies.classify(&facts, now);
        }
        match classified {
            Some(Ok(classification)) => classification,
            Some(Err(error)) => {
                tracing::error!(
                    "alert '{}' on host '{}': {error}; delivering it by the engine's severity",
                    transition.rule,
                    transition.host
                );
                without_contract(transition, now, &error.to_string())
            }
            None => without_contract(
                transition,
                now,
                &format!(
                    "client '{}' has no contract; add its policy file to [policies] dir",
                    transition.client
                ),
            ),
        }
    }
}

/// What the policy room needs to know of a transition, as of `now`: a forecast's time left
/// has shrunk at the current rate since the transition.
pub fn facts_of(transition: &Transition, firing_since_ms: i64, now: Timestamp) -> AlertFacts {
    // Every built-in rule has a kind; a rule added by a rules file without `category` is
    // about the agent's own measurements as far as a contract can tell.
    let kind: AlertKind = transition.category.unwrap_or(AlertKind::AgentHealth);
    let severity = match transition.severity {
        crate::alert::rule::Severity::Warning => EngineSeverity::Warning,
        crate::alert::rule::Severity::Critical => EngineSeverity::Critical,
        crate::alert::rule::Severity::Emergency => EngineSeverity::Emergency,
    };
    // The condition began when the engine says, never after the alert fired.
    let began_ms = match transition.began_ms {
        0 => firing_since_ms,
        began => began.min(firing_since_ms),
    };
    let forecast = transition
        .details
        .forecast
        .map(|f| f.aged(now.as_millisecond() - transition.ts_ms));
    AlertFacts {
        client: transition.client.clone(),
        host: transition.host.clone(),
        rule: transition.rule.clone(),
        kind,
        severity,
        labels: transition
            .labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        firing_since: at(firing_since_ms),
        condition_since: at(began_ms),
        forecast_time_left: forecast.map(|f| millis(f.time_left_ms)),
        forecast_range: forecast.map(|f| (millis(f.soonest_ms), millis(f.latest_ms))),
        value: transition.details.value,
        threshold: transition.details.threshold,
        log_line: transition.details.log_line.clone(),
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn millis(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(ms.max(0) as u64)
}

/// A classification for an alert no contract can classify: the engine's severity, at once,
/// so that nothing is silently dropped.
fn without_contract(transition: &Transition, now: Timestamp, why: &str) -> Classification {
    let contract_severity = match transition.severity {
        crate::alert::rule::Severity::Warning => ContractSeverity::Warning,
        crate::alert::rule::Severity::Critical => ContractSeverity::Critical,
        crate::alert::rule::Severity::Emergency => ContractSeverity::Emergency,
    };
    Classification {
        contract_severity,
        host_role: None,
        route: if contract_severity == ContractSeverity::Warning {
            Route::BusinessHours
        } else {
            Route::Now
        },
        response_due: now,
        policy_version: PolicyVersionId {
            client: transition.client.clone(),
            version: 0,
            digest: "none".to_string(),
        },
        rule: None,
        accepted_risk: None,
        reclassify_at: None,
        reasons: vec![why.to_string()],
        client_name: None,
        time_zone: None,
    }
}

fn key_of(transition: &Transition) -> String {
    let labels: Vec<String> = transition
        .labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        transition.client,
        transition.host,
        transition.rule,
        labels.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertDetails, Severity};
    use crate::notify::AlertStatus;
    use vigil_proto::model::Labels;

    /// The shipped dental contract, and an outbox with on-call, normal and escalation routes.
    fn dispatch(data: &std::path::Path) -> (Dispatch, Arc<Outbox>) {
        let source = data.join("source");
        std::fs::create_dir_all(&source).unwrap();
        let shipped = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/policies/dental-practice.toml"
        );
        std::fs::copy(shipped, source.join("dental-practice.toml")).unwrap();
        let policies = Arc::new(Policies::open(data, Some(source)));
        assert!(policies
            .sync("test", "2026-01-01T00:00:00Z".parse().unwrap())
            .is_empty());
        let outbox = Arc::new(Outbox::open(data).unwrap());
        let routing = RoutingSection {
            on_call: vec!["pager".into()],
            normal: vec!["mail".into()],
            escalation: vec!["boss".into()],
            ..RoutingSection::default()
        };
        (Dispatch::new(outbox.clone(), policies, routing), outbox)
    }

    fn server_silent(fired_ms: i64, began_ms: i64) -> Transition {
        Transition {
            ts_ms: fired_ms,
            host: "dental-srv01".into(),
            client: "smile-dental".into(),
            rule: "HostSilent".into(),
            severity: Severity::Critical,
            state: AlertState::Firing,
            summary: "host dental-srv01 silent".into(),
            labels: Labels::new(),
            category: Some(AlertKind::HostDown),
            began_ms,
            details: AlertDetails::default(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// (channel, contract severity, at) of every pending delivery, oldest first.
    fn pending(outbox: &Outbox) -> Vec<(String, String, i64)> {
        let mut deliveries: Vec<_> = outbox
            .pending()
            .unwrap()
            .0
            .into_iter()
            .map(|d| {
                (
                    d.channel,
                    d.alerts[0].contract_severity.clone(),
                    d.alerts[0].at_ms,
                )
            })
            .collect();
        deliveries.sort_by_key(|(_, _, at)| *at);
        deliveries
    }

    #[test]
    fn a_failing_channel_is_not_told_of_its_own_failure_when_another_channel_can_be() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        let policies = Arc::new(Policies::open(dir.path(), Some(source)));
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        let routing = RoutingSection {
            on_call: vec!["mail".into(), "hook".into()],
            normal: vec!["mail".into(), "hook".into()],
            ..RoutingSection::default()
        };
        let mut dispatch = Dispatch::new(outbox.clone(), policies, routing);
        let failing = |channel: &str| {
            let mut labels = Labels::new();
            labels.insert("channel", channel.to_string());
            Transition {
                ts_ms: 1_000,
                host: "vigil-collector".into(),
                client: "msp".into(),
                rule: "ChannelFailing".into(),
                severity: Severity::Critical,
                state: AlertState::Firing,
                summary: format!("delivery channel '{channel}' failed"),
                labels,
                category: Some(AlertKind::VigilHealth),
                began_ms: 1_000,
                details: AlertDetails::default(),
            }
        };
        dispatch
            .handle(&failing("hook"), at("2026-03-02T10:00:00Z"))
            .unwrap();
        let channels: Vec<String> = pending(&outbox).into_iter().map(|d| d.0).collect();
        assert_eq!(channels, ["mail"]);
        // Another alert, say a disk, still goes to both.
        dispatch
            .handle(&server_silent(2_000, 2_000), at("2026-03-02T10:00:00Z"))
            .unwrap();
        let mut channels: Vec<String> = pending(&outbox).into_iter().map(|d| d.0).collect();
        channels.sort();
        assert_eq!(channels, ["hook", "mail", "mail"]);
    }

    #[test]
    fn a_contract_raising_an_open_alert_sends_the_new_severity_once_and_restarts_escalation() {
        let data = tempfile::tempdir().unwrap();
        let (mut dispatch, outbox) = dispatch(data.path());
        // Tuesday 1 December 2026, practice open; the server fell silent at 10:00 and the
        // engine fired at 10:03.
        let began = at("2026-12-01T09:00:00Z");
        let fired = at("2026-12-01T09:03:00Z");
        let transition = server_silent(fired.as_millisecond(), began.as_millisecond());
        dispatch.handle(&transition, fired).unwrap();
        assert_eq!(
            pending(&outbox),
            [("mail".into(), "critical".into(), fired.as_millisecond())]
        );
        // "Lasting 5m" counts from the silence's start: due at 10:05, not 10:08.
        assert_eq!(
            dispatch.deferred()[0].at_ms,
            at("2026-12-01T09:05:00Z").as_millisecond()
        );

        let due = at("2026-12-01T09:05:00Z");
        dispatch.release_due(due, |_| None).unwrap();
        let sent = pending(&outbox);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent[1],
            ("pager".into(), "emergency".into(), due.as_millisecond())
        );
        let fingerprint = &outbox.pending().unwrap().0[0].alerts[0].fingerprint;
        let record = outbox.open_alert(fingerprint).unwrap().unwrap();
        assert_eq!(record.alert.contract_severity, "emergency");
        // Escalation counts from the emergency's own response time (an hour).
        assert_eq!(
            record.escalate_at_ms,
            Some(at("2026-12-01T10:05:00Z").as_millisecond())
        );

        // The same decision again (a replay after a crash) sends nothing new.
        dispatch.restore(vec![Deferred {
            at_ms: due.as_millisecond(),
            transition: transition.clone(),
            firing_since_ms: fired.as_millisecond(),
        }]);
        dispatch
            .release_due(at("2026-12-01T09:06:00Z"), |_| None)
            .unwrap();
        assert_eq!(pending(&outbox).len(), 2);

        // The resolve goes to every channel that heard of it.
        let mut resolved = transition.clone();
        resolved.state = AlertState::Resolved;
        resolved.ts_ms = at("2026-12-01T09:20:00Z").as_millisecond();
        dispatch
            .handle(&resolved, at("2026-12-01T09:20:00Z"))
            .unwrap();
        let resolves: Vec<_> = outbox
            .pending()
            .unwrap()
            .0
            .into_iter()
            .filter(|d| d.alerts[0].status == AlertStatus::Resolved)
            .map(|d| d.channel)
            .collect();
        assert_eq!(resolves.len(), 2, "{resolves:?}");
    }

    #[test]
    fn a_forecast_shrinking_into_the_contracts_window_is_classified_again_when_it_gets_there() {
        let data = tempfile::tempdir().unwrap();
        let (mut dispatch, outbox) = dispatch(data.path());
        let fired = at("2026-12-01T09:00:00Z");
        let mut transition = server_silent(fired.as_millisecond(), fired.as_millisecond());
        transition.rule = "FilesystemFullForecast".into();
        transition.category = Some(AlertKind::DiskFull);
        transition.labels.insert("mountpoint", "D:");
        transition.details.forecast = Some(crate::alert::ForecastDetails {
            time_left_ms: 30 * 3_600_000,
            soonest_ms: 26 * 3_600_000,
            latest_ms: 36 * 3_600_000,
        });
        dispatch.handle(&transition, fired).unwrap();
        assert_eq!(pending(&outbox)[0].1, "critical");
        // 30 h left; the contract's "within 24h" rule matches in 6 h at this rate.
        let due = at("2026-12-01T15:00:00Z");
        assert_eq!(dispatch.deferred()[0].at_ms, due.as_millisecond());
        dispatch.release_due(due, |_| None).unwrap();
        let sent = pending(&outbox);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[1].1, "emergency");
    }
}
