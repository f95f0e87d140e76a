//! Live updates for the console: `GET /events`, server-sent events of alert and presence
//! changes, authorised like the pages (a `client` user's stream carries only its own
//! client's events).
//!
//! One watcher per server looks at the open alerts and the hosts' states every
//! [`WATCH_INTERVAL`] while anyone listens, and broadcasts what changed since its last look;
//! each stream filters the broadcast by its caller's scope, and says `ready` once the
//! watcher has looked since it opened. The events say what changed, the
//! page decides what to redraw: `alert` (`{id, client, host, state, contract_severity,
//! title}`, state `firing`, `acknowledged`, `escalated` or `closed`) and `presence`
//! (`{host, client, state}`).

use super::api::alerts::alert_json;
use super::api::hosts::all_hosts;
use super::auth::Caller;
use super::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Extension;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How often the watcher looks for changes while a stream is open.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Changes waiting for a slow stream; one that falls further behind misses some and the
/// page's periodic refresh catches up.
const BACKLOG: usize = 256;

/// One change, with the client it belongs to.
#[derive(Debug, Clone)]
pub struct Change {
    pub client: String,
    /// `alert` or `presence`.
    pub kind: &'static str,
    pub data: Value,
}

/// The broadcast every stream subscribes to.
#[derive(Debug, Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
    /// Counts the watcher's looks: a stream is `ready` once a look began after it
    /// subscribed, so every change from then on reaches it.
    looks: tokio::sync::watch::Sender<u64>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
            looks: tokio::sync::watch::channel(0).0,
        }
    }
}

/// What the watcher saw last: each open alert's state and each host's.
#[derive(Default)]
struct Seen {
    alerts: BTreeMap<String, (String, Value)>,
    hosts: BTreeMap<String, (String, String)>,
}

/// Looks for changes until `shutdown`; idle while nobody listens.
pub async fn watch(state: AppState, shutdown: CancellationToken) {
    let mut seen: Option<Seen> = None;
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if state.changes.sender.receiver_count() == 0 {
            // Nobody listens: start afresh when someone does, without replaying old news.
            seen = None;
            continue;
        }
        let look_number = *state.changes.looks.borrow() + 1;
        let looked = state.clone();
        let now = match tokio::task::spawn_blocking(move || look(&looked)).await {
            Ok(Some(now)) => now,
            _ => continue,
        };
        if let Some(before) = &seen {
            for change in differences(before, &now) {
                let _ = state.changes.sender.send(change);
            }
        }
        seen = Some(now);
        state.changes.looks.send_replace(look_number);
    }
}

fn look(state: &AppState) -> Option<Seen> {
    let mut seen = Seen::default();
    for (record, ack) in state.outbox.open_alerts().ok()? {
        let value = alert_json(&record, ack.as_ref());
        let alert_state = value["state"].as_str().unwrap_or("").to_string();
        let event = json!({
            "id": record.alert.fingerprint,
            "client": record.alert.client,
            "host": record.alert.host,
            "state": alert_state,
            "contract_severity": record.alert.contract_severity,
            "title": record.alert.title(),
        });
        seen.alerts
            .insert(record.alert.fingerprint.clone(), (alert_state, event));
    }
    for host in all_hosts(state).ok()? {
        seen.hosts.insert(host.host, (host.client, host.state));
    }
    Some(seen)
}

fn differences(before: &Seen, now: &Seen) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, (state, event)) in &now.alerts {
        if before.alerts.get(id).map(|(old, _)| old) != Some(state) {
            changes.push(Change {
                client: event["client"].as_str().unwrap_or("").to_string(),
                kind: "alert",
                data: event.clone(),
            });
        }
    }
    for (id, (_, event)) in &before.alerts {
        if !now.alerts.contains_key(id) {
            let mut event = event.clone();
            event["state"] = json!("closed");
            changes.push(Change {
                client: event["client"].as_str().unwrap_or("").to_string(),
                kind: "alert",
                data: event,
            });
        }
    }
    for (host, (client, state)) in &now.hosts {
        if before.hosts.get(host).map(|(_, old)| old) != Some(state) {
            changes.push(Change {
                client: client.clone(),
                kind: "presence",
                data: json!({"host": host, "client": client, "state": state}),
            });
        }
    }
    changes
}

/// `GET /events`: the caller's share of the changes, as server-sent events.
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> axum::response::Response {
    let mut changes = state.changes.sender.subscribe();
    let mut looks = state.changes.looks.subscribe();
    let subscribed_at = *looks.borrow_and_update();
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        // Two looks later, the watcher's picture of the state is from after this stream
        // subscribed: every change from now on reaches it.
        while *looks.borrow_and_update() < subscribed_at + 2 {
            if looks.changed().await.is_err() {
                return;
            }
        }
        // A first event tells the page the stream is open.
        let hello = Event::default().event("ready").data("{}");
        if sender.send(Ok(hello)).await.is_err() {
            return;
        }
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !caller.scope.allows(&change.client) {
                continue;
            }
            let event = Event::default()
                .event(change.kind)
                .data(change.data.to_string());
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::<Result<Event, Infallible>>::new(receiver);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
