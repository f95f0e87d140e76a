//! The `[notify]` section of `collector.toml`: retry timing, which channels each client's
//! alerts go to, and the channels themselves with their secrets.
//!
//! ```toml
//! [notify]
//! attempts = 12            # then the delivery moves to dead/
//! backoff_min = "10s"      # doubling after each failure…
//! backoff_max = "1h"       # …up to this
//!
//! [notify.routing]         # every client, unless listed under clients
//! on_call = ["pager"]      # emergencies (and what after-hours coverage includes), at once
//! normal = ["ops-mail"]    # business hours, and the next-morning digest
//! escalation = ["owner"]   # an emergency unacknowledged when its response is due
//! [notify.routing.clients.dental-practice]
//! normal = ["ops-mail", "teams"]
//!
//! [[notify.channel]]
//! name = "ops-mail"
//! type = "email"
//! host = "smtp.example.net"
//! username = "vigil"
//! password_file = "/etc/vigil/smtp-password"   # or password = "…", or password_env = "VAR"
//! from = "Vigil <vigil@msp.example>"
//! to = ["oncall@msp.example"]
//! ```
//!
//! Secrets (SMTP passwords, HMAC keys, PagerDuty routing keys, Slack and Teams URLs) may be
//! given inline, as `<key>_file` or as `<key>_env`. They are read when channels are built and
//! never logged: [`Secret`]'s `Debug` prints nothing of them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::config_file;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Attempts per delivery before it is given up. Default: 12.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait after the first failure; doubles after each. Default: "10s".
    #[serde(
        default = "default_backoff_min",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub backoff_min: Duration,
    /// The longest wait between attempts. Default: "1h".
    #[serde(
        default = "default_backoff_max",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub backoff_max: Duration,
    /// Deliveries in flight at once. Default: 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long one attempt may take. Default: "15s".
    #[serde(
        default = "default_timeout",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub timeout: Duration,
    /// The collector's web address, for links back from messages. Default: none.
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub routing: RoutingSection,
    /// The channels, each with a unique `name`.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelConfig>,
}

impl Default for NotifySection {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            concurrency: default_concurrency(),
            timeout: default_timeout(),
            external_url: None,
            routing: RoutingSection::default(),
            channels: Vec::new(),
        }
    }
}

fn default_attempts() -> u32 {
    12
}
fn default_backoff_min() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(3600)
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> Duration {
    Duration::from_secs(15)
}

/// Channel names per purpose, for every client or one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRouting {
    /// Emergencies, and whatever after-hours coverage includes: at once, any hour.
    #[serde(default)]
    pub on_call: Vec<String>,
    /// Business hours, and the next-morning digest.
    #[serde(default)]
    pub normal: Vec<String>,
    /// An emergency nobody acknowledged within its response time.
    #[serde(default)]
    pub escalation: Vec<String>,
}

impl ChannelRouting {
    /// Drops `channel` from each list that names another channel too: an alert about a
    /// failing channel goes to the others, and to it only when it is all there is.
    pub fn avoid(&mut self, channel: &str) {
        for list in [&mut self.on_call, &mut self.normal, &mut self.escalation] {
            if list.iter().any(|name| name != channel) {
                list.retain(|name| name != channel);
            }
        }
    }
}

/// `[notify.routing]`: the default routing and per-client replacements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    #[serde(default)]
    pub on_call: Vec<String>,
    #[serde(default)]
    pub normal: Vec<String>,
    #[serde(default)]
    pub escalation: Vec<String>,
    /// Per client: a list given here replaces the default's; one left out keeps it.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientRouting>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRouting {
    pub on_call: Option<Vec<String>>,
    pub normal: Option<Vec<String>>,
    pub escalation: Option<Vec<String>>,
}

impl RoutingSection {
    /// The routing for `client`.
    pub fn for_client(&self, client: &str) -> ChannelRouting {
        let own = self.clients.get(client);
        let pick = |mine: Option<&Vec<String>>, default: &Vec<String>| {
            mine.cloned().unwrap_or_else(|| default.clone())
        };
        ChannelRouting {
            on_call: pick(own.and_then(|c| c.on_call.as_ref()), &self.on_call),
            normal: pick(own.and_then(|c| c.normal.as_ref()), &self.normal),
            escalation: pick(own.and_then(|c| c.escalation.as_ref()), &self.escalation),
        }
    }

    fn named(&self) -> Vec<(String, &String)> {
        let mut names = Vec::new();
        for (field, list) in [
            ("on_call", &self.on_call),
            ("normal", &self.normal),
            ("escalation", &self.escalation),
        ] {
            for name in list {
                names.push((format!("notify.routing.{field}"), name));
            }
        }
        for (client, routing) in &self.clients {
            for (field, list) in [
                ("on_call", &routing.on_call),
                ("normal", &routing.normal),
                ("escalation", &routing.escalation),
            ] {
                for name in list.iter().flatten() {
                    names.push((format!("notify.routing.clients.{client}.{field}"), name));
                }
            }
        }
        names
    }
}

/// One configured channel; `type` picks the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
    Slack(SlackConfig),
    Teams(TeamsConfig),
    Pagerduty(PagerDutyConfig),
    Email(EmailConfig),
}

impl ChannelConfig {
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Webhook(c) => &c.name,
            ChannelConfig::Alertmanager(c) => &c.name,
            ChannelConfig::Slack(c) => &c.name,
            ChannelConfig::Teams(c) => &c.name,
            ChannelConfig::Pagerduty(c) => &c.name,
            ChannelConfig::Email(c) => &c.name,
        }
    }

    /// The kind as written in `type`, for messages: `webhook 'ops'`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Alertmanager(_) => "alertmanager",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Teams(_) => "teams",
            ChannelConfig::Pagerduty(_) => "pagerduty",
            ChannelConfig::Email(_) => "email",
        }
    }
}

/// A generic webhook: Alertmanager's webhook JSON (version 4) with Vigil's fields, signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    /// Key for the `X-Vigil-Signature` HMAC-SHA256; without one, requests are not signed.
    pub hmac_key: Option<String>,
    pub hmac_key_file: Option<PathBuf>,
    pub hmac_key_env: Option<String>,
}

/// A Prometheus Alertmanager: alerts are posted to `<url>/api/v2/alerts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    pub name: String,
    /// The Alertmanager's base address, e.g. `http://alertmanager:9093`.
    pub url: String,
}

/// A Slack incoming webhook. Its URL is a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub name: String,
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
}

/// A Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is
/// received"). Its URL is a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    pub name: String,
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub url_env: Option<String>,
}

/// PagerDuty Events API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    pub name: String,
    /// The integration's routing key (a secret).
    pub routing_key: Option<String>,
    pub routing_key_file: Option<PathBuf>,
    pub routing_key_env: Option<String>,
    /// Default: `https://events.pagerduty.com/v2/enqueue` (EU: events.eu.pagerduty.com).
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_string()
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine (port 25).
    Plain,
}

/// Email over SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    pub host: String,
    /// Default: 587 for starttls, 465 for tls, 25 for plain.
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The sender, e.g. `Vigil <vigil@msp.example>`.
    pub from: String,
    pub to: Vec<String>,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        })
    }
}

/// A secret read from the config, a file or the environment. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Reads the secret `key` given as `key`, `key_file` or `key_env` (at most one). `Ok(None)`
/// when none is given; the error names the key and the fix.
pub fn read_secret(
    place: &str,
    inline: Option<&String>,
    file: Option<&PathBuf>,
    env: Option<&String>,
) -> Result<Option<Secret>, String> {
    let given = [inline.is_some(), file.is_some(), env.is_some()]
        .iter()
        .filter(|&&given| given)
        .count();
    if given > 1 {
        return Err(format!(
            "{place}: give only one of {place}, {place}_file and {place}_env"
        ));
    }
    if let Some(value) = inline {
        return Ok(Some(Secret::new(value.clone())));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|text| Some(Secret::new(text.trim_end_matches(['\r', '\n']))))
            .map_err(|error| {
                format!(
                    "{place}_file = '{}' cannot be read: {error}",
                    path.display()
                )
            });
    }
    if let Some(var) = env {
        return std::env::var(var)
            .map(|value| Some(Secret::new(value)))
            .map_err(|_| {
                format!("{place}_env = \"{var}\": the environment variable is not set; export it for the collector's service")
            });
    }
    Ok(None)
}

impl NotifySection {
    /// Resolves `*_file` paths against the config's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        for channel in &mut self.channels {
            let path = match channel {
                ChannelConfig::Webhook(c) => c.hmac_key_file.as_mut(),
                ChannelConfig::Slack(c) => c.url_file.as_mut(),
                ChannelConfig::Teams(c) => c.url_file.as_mut(),
                ChannelConfig::Pagerduty(c) => c.routing_key_file.as_mut(),
                ChannelConfig::Email(c) => c.password_file.as_mut(),
                ChannelConfig::Alertmanager(_) => None,
            };
            if let Some(path) = path {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
    }

    /// Every problem at once, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.attempts == 0 || self.attempts > 100 {
            problems.push(format!(
                "notify.attempts = {} is out of range (1..=100)",
                self.attempts
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            problems.push(format!(
                "notify.backoff_min = {:?} must be above zero and at most notify.backoff_max ({:?})",
                humantime::format_duration(self.backoff_min).to_string(),
                humantime::format_duration(self.backoff_max).to_string()
            ));
        }
        if !(1..=256).contains(&self.concurrency) {
            problems.push(format!(
                "notify.concurrency = {} is out of range (1..=256)",
                self.concurrency
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, channel) in self.channels.iter().enumerate() {
            let place = format!("notify.channel[{index}] ('{}')", channel.name());
            if channel.name().is_empty() || !seen.insert(channel.name().to_string()) {
                problems.push(format!(
                    "{place}: name must be non-empty and unique among channels"
                ));
            }
            problems.extend(channel_problems(&place, channel));
        }
        for (place, name) in self.routing.named() {
            if !seen.contains(name.as_str()) {
                problems.push(format!(
                    "{place} names channel '{name}', which is not configured; add a [[notify.channel]] with name = \"{name}\""
                ));
            }
        }
        problems
    }
}

fn channel_problems(place: &str, channel: &ChannelConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let mut url = |field: &str, value: Option<&str>| {
        if let Some(value) = value {
            match reqwest::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problems.push(format!(
                    "{place}: {field} is not an http(s) URL; write e.g. \"https://hooks.example/vigil\""
                )),
            }
        }
    };
    let secret = |key: &str, inline, file, env| read_secret(key, inline, file, env);
    let mut secret_problems = Vec::new();
    match channel {
        ChannelConfig::Webhook(c) => {
            url("url", Some(&c.url));
            if let Err(e) = secret(
                "hmac_key",
                c.hmac_key.as_ref(),
                c.hmac_key_file.as_ref(),
                c.hmac_key_env.as_ref(),
            ) {
                secret_problems.push(e);
            }
        }
        ChannelConfig::Alertmanager(c) => url("url", Some(&c.url)),
        ChannelConfig::Slack(SlackConfig {
            url: u,
            url_file,
            url_env,
            ..
        })
        | ChannelConfig::Teams(TeamsConfig {
            url: u,
            url_file,
            url_env,
            ..
        }) => match secret("url", u.as_ref(), url_file.as_ref(), url_env.as_ref()) {
            Ok(Some(value)) => url("url", Some(value.expose())),
            Ok(None) => secret_problems.push("url: missing; give url, url_file or url_env".into()),
            Err(e) => secret_problems.push(e),
        },
        ChannelConfig::Pagerduty(c) => {
            url("url", Some(&c.url));
            match secret(
                "routing_key",
                c.routing_key.as_ref(),
                c.routing_key_file.as_ref(),
                c.routing_key_env.as_ref(),
            ) {
                Ok(Some(_)) => {}
                Ok(None) => secret_problems.push(
                    "routing_key: missing; give routing_key, routing_key_file or routing_key_env (the integration key of a PagerDuty service)".into(),
                ),
                Err(e) => secret_problems.push(e),
            }
        }
        ChannelConfig::Email(c) => {
            if c.to.is_empty() {
                secret_problems.push("to: list at least one recipient".into());
            }
            for address in std::iter::once(&c.from).chain(&c.to) {
                if address.parse::<lettre::message::Mailbox>().is_err() {
                    secret_problems.push(format!(
                        "'{address}' is not an email address; write e.g. \"Vigil <vigil@msp.example>\""
                    ));
                }
            }
            match secret(
                "password",
                c.password.as_ref(),
                c.password_file.as_ref(),
                c.password_env.as_ref(),
            ) {
                Ok(password) => {
                    if password.is_some() != c.username.is_some() {
                        secret_problems
                            .push("username and password go together; give both or neither".into());
                    }
                    let loopback = matches!(c.host.as_str(), "localhost" | "127.0.0.1" | "::1");
                    if c.security == SmtpSecurity::Plain && password.is_some() && !loopback {
                        secret_problems.push(format!(
                            "security = \"plain\" would send the password to '{}' unencrypted; use \"starttls\" or \"tls\"",
                            c.host
                        ));
                    }
                }
                Err(e) => secret_problems.push(e),
            }
        }
    }
    problems.extend(
        secret_problems
            .into_iter()
            .map(|problem| format!("{place}: {problem}")),
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifySection, String> {
        #[derive(Deserialize)]
        struct Wrapper {
            notify: NotifySection,
        }
        config_file::parse::<Wrapper>(Path::new("collector.toml"), text)
            .map(|wrapper| wrapper.notify)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_full_section_parses_with_defaults_for_what_it_leaves_out() {
        let section = parse(
            r#"
[notify]
attempts = 5
[notify.routing]
on_call = ["pager"]
normal = ["mail"]
[notify.routing.clients.dental]
normal = ["mail", "hook"]
[[notify.channel]]
name = "hook"
type = "webhook"
url = "https://hooks.example/vigil"
hmac_key = "k"
[[notify.channel]]
name = "mail"
type = "email"
host = "127.0.0.1"
security = "plain"
from = "vigil@msp.example"
to = ["oncall@msp.example"]
[[notify.channel]]
name = "pager"
type = "pagerduty"
routing_key = "R0UT1NG"
"#,
        )
        .unwrap();
        assert_eq!(section.attempts, 5);
        assert_eq!(section.backoff_min, Duration::from_secs(10));
        assert_eq!(section.channels.len(), 3);
        assert!(section.problems().is_empty(), "{:?}", section.problems());
        let dental = section.routing.for_client("dental");
        assert_eq!(dental.normal, ["mail", "hook"]);
        assert_eq!(dental.on_call, ["pager"]);
        assert_eq!(section.routing.for_client("other").normal, ["mail"]);
    }

    #[test]
    fn an_unknown_key_in_a_channel_is_refused() {
        let error = parse(
            "[notify]\n[[notify.channel]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"https://x.example\"\nsecret = \"k\"\n",
        )
        .unwrap_err();
        assert!(error.contains("secret"), "{error}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let section = parse(
            r#"
[notify]
attempts = 0
[notify.routing]
on_call = ["nobody"]
[[notify.channel]]
name = "mail"
type = "email"
host = "smtp.example.net"
security = "plain"
username = "u"
password = "p"
from = "not an address"
to = []
[[notify.channel]]
name = "pd"
type = "pagerduty"
routing_key_env = "VIGIL_TEST_UNSET_VARIABLE"
"#,
        )
        .unwrap();
        let problems = section.problems().join("\n");
        assert!(problems.contains("notify.attempts = 0"), "{problems}");
        assert!(
            problems.contains("notify.routing.on_call names channel 'nobody'"),
            "{problems}"
        );
        assert!(
            problems.contains("to: list at least one recipient"),
            "{problems}"
        );
        assert!(
            problems.contains("'not an address' is not an email address"),
            "{problems}"
        );
        assert!(problems.contains("unencrypted"), "{problems}");
        assert!(problems.contains("VIGIL_TEST_UNSET_VARIABLE"), "{problems}");
    }

    #[test]
    fn a_secret_is_read_from_a_file_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secret = read_secret("hmac_key", None, Some(&path), None)
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }
}
