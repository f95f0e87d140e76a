//! The receivers: one module per kind, each turning a [`Delivery`] into its receiver's
//! format (a pure function, tested against golden shapes) and sending it.
//!
//! [`Channels`] builds every configured channel once, with one shared HTTP client; a
//! [`Channel`] sends one delivery and answers `Ok` or a [`SendError`] that says whether a
//! later attempt may succeed (a 503, a refused connection) or not (a 400, a bad address).
//!
//! Modules: [`http`] (posting and judging responses), [`webhook`], [`alertmanager`],
//! [`slack`], [`teams`], [`pagerduty`], [`email`].

pub mod alertmanager;
pub mod email;
pub mod http;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod webhook;

use super::config::{read_secret, ChannelConfig, NotifySection, Secret};
use super::message::Delivery;
use super::NotifyError;
use crate::http::ack_link::AckLinks;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why one attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// What happened, naming the URL or server without secrets, e.g.
    /// `HTTP 503 from https://hooks.example/…`.
    pub detail: String,
    /// The receiver refused the message itself: the same message will never be accepted.
    pub permanent: bool,
}

impl SendError {
    pub fn retry(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: false,
        }
    }

    pub fn permanent(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: true,
        }
    }
}

/// What every channel may need besides its own settings.
#[derive(Debug, Clone)]
pub struct Context {
    pub http: reqwest::Client,
    /// The collector's web address, for links.
    pub external_url: Option<String>,
    pub timeout: std::time::Duration,
}

/// One configured channel, ready to send.
#[derive(Debug)]
pub struct Channel {
    pub name: String,
    pub kind: &'static str,
    sender: Sender,
    /// Signs the console and acknowledge links a firing alert carries (`[http] public_url`).
    links: Option<Arc<AckLinks>>,
}

#[derive(Debug)]
enum Sender {
    Webhook(webhook::Webhook),
    Alertmanager(alertmanager::Alertmanager),
    Slack(slack::Slack),
    Teams(teams::Teams),
    PagerDuty(pagerduty::PagerDuty),
    Email(email::Email),
    /// Accepts everything and keeps it: what `backtest` delivers to, in simulated time.
    Record(Recorder),
}

/// What a recording channel was handed: each delivery with the instant it was sent.
pub type Recorder = Arc<std::sync::Mutex<Vec<(Delivery, i64)>>>;

impl Channel {
    pub fn build(config: &ChannelConfig, context: &Context) -> Result<Self, NotifyError> {
        let name = config.name().to_string();
        let kind = config.kind();
        let fail = |detail: String| NotifyError::Channel {
            channel: format!("{kind} '{name}'"),
            detail,
        };
        let sender = match config {
            ChannelConfig::Webhook(c) => {
                let key = read_secret(
                    "hmac_key",
                    c.hmac_key.as_ref(),
                    c.hmac_key_file.as_ref(),
                    c.hmac_key_env.as_ref(),
                )
                .map_err(fail)?;
                Sender::Webhook(webhook::Webhook::new(&c.url, key, context.clone()).map_err(fail)?)
            }
            ChannelConfig::Email(c) => Sender::Email(email::Email::new(c, context).map_err(fail)?),
            ChannelConfig::Alertmanager(c) => Sender::Alertmanager(
                alertmanager::Alertmanager::new(&c.url, context.clone()).map_err(fail)?,
            ),
            ChannelConfig::Slack(c) => {
                let url = required_secret("url", &c.url, &c.url_file, &c.url_env).map_err(fail)?;
                Sender::Slack(slack::Slack::new(url.expose(), context.clone()).map_err(fail)?)
            }
            ChannelConfig::Teams(c) => {
                let url = required_secret("url", &c.url, &c.url_file, &c.url_env).map_err(fail)?;
                Sender::Teams(teams::Teams::new(url.expose(), context.clone()).map_err(fail)?)
            }
            ChannelConfig::Pagerduty(c) => {
                let key = required_secret(
                    "routing_key",
                    &c.routing_key,
                    &c.routing_key_file,
                    &c.routing_key_env,
                )
                .map_err(fail)?;
                Sender::PagerDuty(
                    pagerduty::PagerDuty::new(&c.url, key, context.clone()).map_err(fail)?,
                )
            }
        };
        Ok(Channel {
            name,
            kind,
            sender,
            links: None,
        })
    }

    /// `webhook 'ops'`, as messages name a channel.
    pub fn label(&self) -> String {
        format!("{} '{}'", self.kind, self.name)
    }

    /// One attempt at delivering `delivery`; `now_ms` dates signatures.
    pub async fn send(&self, delivery: &Delivery, now_ms: i64) -> Result<(), SendError> {
        let linked = self
            .links
            .as_ref()
            .map(|links| with_links(delivery, links, now_ms));
        let delivery = linked.as_ref().unwrap_or(delivery);
        match &self.sender {
            Sender::Webhook(c) => c.send(delivery, &self.name, now_ms).await,
            Sender::Alertmanager(c) => c.send(delivery, now_ms).await,
            Sender::Slack(c) => c.send(delivery).await,
            Sender::Teams(c) => c.send(delivery).await,
            Sender::PagerDuty(c) => c.send(delivery).await,
            Sender::Email(c) => c.send(delivery).await,
            Sender::Record(sink) => {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((delivery.clone(), now_ms));
                Ok(())
            }
        }
    }
}

/// `delivery` with the console page and a fresh acknowledge link on each firing alert (not
/// on resolves, nor on the notice that someone acknowledged).
fn with_links(delivery: &Delivery, links: &AckLinks, now_ms: i64) -> Delivery {
    let mut linked = delivery.clone();
    let acknowledgement = matches!(
        delivery.purpose,
        super::message::Purpose::Acknowledged { .. }
    );
    for alert in &mut linked.alerts {
        if alert.status == super::message::AlertStatus::Firing && !acknowledgement {
            alert.context.links = Some(links.links(&alert.fingerprint, now_ms));
        }
    }
    linked
}

/// Every configured channel by name.
#[derive(Debug, Default)]
pub struct Channels {
    by_name: BTreeMap<String, Arc<Channel>>,
}

impl Channels {
    /// Builds every channel of `section`; the first that cannot be built is the error.
    pub fn build(section: &NotifySection) -> Result<Self, NotifyError> {
        Self::build_with_links(section, None)
    }

    /// Like [`Channels::build`]; with `links`, each firing alert sent carries its console
    /// page and a signed acknowledge link, made as it is sent.
    pub fn build_with_links(
        section: &NotifySection,
        links: Option<Arc<AckLinks>>,
    ) -> Result<Self, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(section.timeout)
            .user_agent(concat!("vigil-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| NotifyError::Channel {
                channel: "notify".into(),
                detail: format!("cannot build the HTTP client: {error}"),
            })?;
        let context = Context {
            http,
            external_url: section.external_url.clone(),
            timeout: section.timeout,
        };
        let mut by_name = BTreeMap::new();
        for config in &section.channels {
            let mut channel = Channel::build(config, &context)?;
            channel.links = links.clone();
            by_name.insert(channel.name.clone(), Arc::new(channel));
        }
        Ok(Self { by_name })
    }

    /// A channel of each of `names` that records what it is sent into `sink` instead of
    /// sending it: the backtest's receivers.
    pub fn recording(names: impl IntoIterator<Item = String>, sink: &Recorder) -> Self {
        let by_name = names
            .into_iter()
            .map(|name| {
                let channel = Channel {
                    name: name.clone(),
                    kind: "recorded",
                    sender: Sender::Record(sink.clone()),
                    links: None,
                };
                (name, Arc::new(channel))
            })
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Channel>> {
        self.by_name.get(name).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Channel>> {
        self.by_name.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A secret the channel cannot work without: [`read_secret`], and a missing one is an error.
fn required_secret(
    place: &str,
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
    env: &Option<String>,
) -> Result<Secret, String> {
    read_secret(place, inline.as_ref(), file.as_ref(), env.as_ref())?
        .ok_or_else(|| format!("{place}: missing; give {place}, {place}_file or {place}_env"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::{AlertStatus, Purpose};
    use crate::notify::test_alert::sample_alert;

    #[test]
    fn a_firing_alert_gets_links_in_slack_and_teams_and_a_resolve_or_acknowledgement_none() {
        let dir = tempfile::tempdir().unwrap();
        let links = AckLinks::open(dir.path(), "https://vigil.example", 60_000).unwrap();
        let alert = sample_alert(1_700_000_000_000);
        let linked = with_links(&Delivery::single(&alert, "chat", 0), &links, 5);
        let made = linked.alerts[0].context.links.clone().expect("links");
        assert!(made.acknowledge.starts_with("https://vigil.example/ack/"));
        let slack = slack::payload(&linked).to_string();
        assert!(
            slack.contains(&made.acknowledge) && slack.contains("\"actions\""),
            "{slack}"
        );
        let teams = teams::payload(&linked).to_string();
        assert!(
            teams.contains(&made.acknowledge) && teams.contains("Action.OpenUrl"),
            "{teams}"
        );
        let mail = email::plain_body(&linked);
        assert!(
            mail.contains(&format!("Acknowledge: {}", made.acknowledge)),
            "{mail}"
        );

        let mut resolved = alert.clone();
        resolved.status = AlertStatus::Resolved;
        let linked = with_links(&Delivery::single(&resolved, "chat", 0), &links, 5);
        assert!(linked.alerts[0].context.links.is_none());
        let mut acknowledged = Delivery::single(&alert, "chat", 0);
        acknowledged.purpose = Purpose::Acknowledged {
            by: "ana".into(),
            at_ms: 5,
        };
        let linked = with_links(&acknowledged, &links, 5);
        assert!(linked.alerts[0].context.links.is_none());
    }
}
