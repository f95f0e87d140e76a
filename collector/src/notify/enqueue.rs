//! From an alert transition to delivery files: what the alert pipeline calls once the
//! contract has classified a transition.
//!
//! [`enqueue()`] computes the alert's fingerprint, asks [`route`](super::route) for a plan,
//! writes one delivery per channel (or adds the alert to the client's digest), and keeps the
//! open-alert record that lets the resolve follow the firing and an emergency escalate. When
//! it returns `Ok`, the deliveries are on disk. Calling it again with the same transition
//! writes nothing new: each delivery's key is derived from the transition and the channel.
//!
//! A contract can change an open alert's severity without the engine saying anything new
//! (a `lasting` condition met, a forecast come closer, a maintenance window ended):
//! [`enqueue_decision()`] then sends the new severity as a message of its own, dated by
//! the instant the decision changed, in the same thread (same fingerprint), and the
//! escalation starts again from the new response time. The same decision enqueued twice
//! still writes nothing new.

use super::config::ChannelRouting;
use super::message::{fingerprint, AlertMessage, Delivery};
use super::outbox::{OpenAlertRecord, Outbox};
use super::route::{plan_firing, plan_resolved, Plan};
use super::NotifyError;
use crate::alert::{AlertState, Transition};
use crate::policy::Classification;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// What [`enqueue()`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The alert's fingerprint: the id `alerts ack` takes.
    pub fingerprint: String,
    /// The routing decision.
    pub plan: Plan,
    /// Keys of the deliveries that carry this transition (new or already there).
    pub keys: Vec<String>,
}

/// Enqueues the deliveries for one transition, classified by `classification`, for the
/// client's channels `routing`, at `now`. A firing held for maintenance writes nothing:
/// classify it again at the plan's `until_ms` and enqueue it then if it is still firing.
pub fn enqueue(
    outbox: &Outbox,
    transition: &Transition,
    classification: &Classification,
    routing: &ChannelRouting,
    now: Timestamp,
) -> Result<Enqueued, NotifyError> {
    enqueue_decision(outbox, transition, classification, routing, now, None)
}

/// Like [`enqueue()`], for a transition classified again at `looked_again_at_ms` (a waiting
/// alert looked at again; `None` is its first decision, as [`enqueue()`]). When the
/// contract severity differs from what the alert's channels last heard, the new severity
/// goes out as a message dated then; when it does not, nothing new is written.
pub fn enqueue_decision(
    outbox: &Outbox,
    transition: &Transition,
    classification: &Classification,
    routing: &ChannelRouting,
    now: Timestamp,
    looked_again_at_ms: Option<i64>,
) -> Result<Enqueued, NotifyError> {
    let now_ms = now.as_millisecond();
    let labels: BTreeMap<String, String> = transition
        .labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let fingerprint = fingerprint(
        &transition.client,
        &transition.host,
        &transition.rule,
        &labels,
    );
    let _guard = outbox.lock_alerts();
    let previous = outbox.open_alert(&fingerprint)?;
    let starts_at_ms = previous
        .as_ref()
        .map_or(transition.ts_ms, |record| record.alert.starts_at_ms);
    let mut message = AlertMessage::from_transition(transition, classification, starts_at_ms);
    let severity_changed = previous
        .as_ref()
        .is_some_and(|record| record.alert.contract_severity != message.contract_severity);

    match transition.state {
        AlertState::Firing => {
            let plan = plan_firing(classification, routing);
            if let (Some(decided_at_ms), Some(_)) = (looked_again_at_ms, &previous) {
                if !severity_changed {
                    // Looked at again, and the channels already heard this severity.
                    return Ok(Enqueued {
                        fingerprint,
                        plan,
                        keys: Vec::new(),
                    });
                }
                // A new message in the same thread, dated by the change.
                message.at_ms = decided_at_ms;
                message.age_forecast(decided_at_ms - transition.ts_ms);
            }
            let keys = write_plan(outbox, &plan, &message, now_ms)?;
            let mut record = previous.unwrap_or_else(|| OpenAlertRecord {
                alert: message.clone(),
                channels: Vec::new(),
                digest_at_ms: None,
                escalate_at_ms: None,
                escalation_channels: Vec::new(),
                escalated: false,
            });
            record.alert = message;
            match &plan {
                Plan::Now {
                    channels,
                    escalation,
                } => {
                    merge(&mut record.channels, channels);
                    record.digest_at_ms = None;
                    if let Some(escalation) = escalation {
                        record.escalate_at_ms = Some(escalation.at_ms);
                        record.escalation_channels = escalation.channels.clone();
                    } else if severity_changed {
                        // Lowered below an emergency: nothing left to escalate.
                        record.escalate_at_ms = None;
                    }
                    if severity_changed {
                        record.escalated = false;
                    }
                }
                Plan::Digest { channels, at_ms } => {
                    merge(&mut record.channels, channels);
                    // The resolve waits for the digest only if nobody heard of the alert
                    // before it; otherwise it goes out at once, like the earlier firing.
                    if record.channels.len() == channels.len() {
                        record.digest_at_ms = Some(*at_ms);
                    }
                }
                Plan::Held { .. } | Plan::Drop => {
                    return Ok(Enqueued {
                        fingerprint,
                        plan,
                        keys,
                    })
                }
            }
            outbox.put_open_alert(&record)?;
            Ok(Enqueued {
                fingerprint,
                plan,
                keys,
            })
        }
        AlertState::Resolved => {
            let plan = plan_resolved(previous.as_ref(), now_ms);
            let keys = write_plan(outbox, &plan, &message, now_ms)?;
            outbox.remove_open_alert(&fingerprint)?;
            Ok(Enqueued {
                fingerprint,
                plan,
                keys,
            })
        }
    }
}

fn merge(into: &mut Vec<String>, channels: &[String]) {
    for channel in channels {
        if !into.contains(channel) {
            into.push(channel.clone());
        }
    }
}

fn write_plan(
    outbox: &Outbox,
    plan: &Plan,
    message: &AlertMessage,
    now_ms: i64,
) -> Result<Vec<String>, NotifyError> {
    let mut keys = Vec::new();
    match plan {
        Plan::Now { channels, .. } => {
            for channel in channels {
                let delivery = Delivery::single(message, channel, now_ms);
                outbox.put_new(&delivery)?;
                keys.push(delivery.key);
            }
        }
        Plan::Digest { channels, at_ms } => {
            for channel in channels {
                keys.push(outbox.add_to_digest(
                    channel,
                    &message.client,
                    *at_ms,
                    message,
                    now_ms,
                )?);
            }
        }
        Plan::Held { .. } | Plan::Drop => {}
    }
    Ok(keys)
}
