//! `[[remote_write]]` in `collector.toml`: where to export, which series, how to
//! authenticate, and how much unsent data may wait. Checked at start with every problem
//! named by its key ([`problems`]); turned into a ready client by [`super::Exporter`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::notify::config::read_secret;
use crate::store::Selector;
use vigil_proto::config_file;

/// One `[[remote_write]]` receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// A name for logs, metrics and the saved position, of letters, digits, `_`, `-` and
    /// `.`. Default: the URL's host and port, e.g. `127.0.0.1_8428`.
    #[serde(default)]
    pub name: Option<String>,
    /// The receiver's remote-write endpoint, e.g. `http://vm:8428/api/v1/write` or
    /// `https://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Selectors (`metric{label="value"}`, as the query API reads them); a series is
    /// exported when any matches. Default: every series.
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Extra HTTP headers on every request, e.g. `X-Scope-OrgID` for Mimir.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// A file holding a bearer token (`Authorization: Bearer …`).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// An environment variable holding a bearer token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// TLS towards an `https` receiver: a CA to trust, and a client certificate.
    #[serde(default)]
    pub tls: Option<RemoteWriteTls>,
    /// Unsent log kept for this receiver at most; past it the oldest unsent data is given
    /// up (a warning and `samples_dropped`). Default: 1 GiB.
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: u64,
    /// Requests in flight at once, series split among them by series. Default: 4.
    #[serde(default = "default_shards")]
    pub shards: usize,
    /// Samples in one request at most. Default: 2000.
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// How long one request may take. Default: "30s".
    #[serde(
        default = "default_timeout",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub timeout: Duration,
    /// First wait before a retry; it doubles up to `max_backoff`. Default: "500ms".
    #[serde(
        default = "default_min_backoff",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub min_backoff: Duration,
    /// Longest wait between retries. Default: "30s".
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub max_backoff: Duration,
}

/// `basic_auth = { username = "…", password_file = "…" }` (or `password_env`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
}

/// `tls = { ca_file = "…", cert_file = "…", key_file = "…" }`, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteTls {
    /// CA certificates (PEM) to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for receivers that require one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM), mode 0600.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_max_queue_bytes() -> u64 {
    1 << 30
}
fn default_shards() -> usize {
    4
}
fn default_max_samples_per_send() -> usize {
    2000
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_min_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

/// Headers the export sets itself, which `headers` may not replace.
const RESERVED_HEADERS: [&str; 5] = [
    "content-encoding",
    "content-type",
    "content-length",
    "x-prometheus-remote-write-version",
    "user-agent",
];

impl RemoteWriteConfig {
    /// A receiver at `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            name: None,
            url: url.into(),
            matches: Vec::new(),
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token_file: None,
            bearer_token_env: None,
            tls: None,
            max_queue_bytes: default_max_queue_bytes(),
            shards: default_shards(),
            max_samples_per_send: default_max_samples_per_send(),
            timeout: default_timeout(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
        }
    }

    /// The name given, or one made of the URL's host and port.
    pub fn name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let host_port = reqwest::Url::parse(&self.url)
            .ok()
            .map(|url| {
                format!(
                    "{}_{}",
                    url.host_str().unwrap_or("receiver"),
                    url.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_else(|| "receiver".to_owned());
        host_port
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The selectors of `match`, parsed.
    pub fn selectors(&self) -> Result<Vec<Selector>, String> {
        self.matches
            .iter()
            .map(|text| {
                text.parse::<Selector>()
                    .map_err(|error| format!("match = '{text}': {error}"))
            })
            .collect()
    }

    /// Resolves relative file paths against the config's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        let mut paths: Vec<&mut PathBuf> = Vec::new();
        if let Some(path) = &mut self.bearer_token_file {
            paths.push(path);
        }
        if let Some(BasicAuth {
            password_file: Some(path),
            ..
        }) = &mut self.basic_auth
        {
            paths.push(path);
        }
        if let Some(tls) = &mut self.tls {
            paths.extend(
                [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                    .into_iter()
                    .flatten(),
            );
        }
        for path in paths {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The basic-auth password, when basic auth is set.
    pub fn password(&self, place: &str) -> Result<Option<String>, String> {
        let Some(auth) = &self.basic_auth else {
            return Ok(None);
        };
        let place = format!("{place}.basic_auth.password");
        match read_secret(
            &place,
            None,
            auth.password_file.as_ref(),
            auth.password_env.as_ref(),
        )? {
            Some(secret) => Ok(Some(secret.expose().to_owned())),
            None => Err(format!(
                "{place}: basic_auth needs password_file or password_env"
            )),
        }
    }

    /// The bearer token, when one is set.
    pub fn bearer_token(&self, place: &str) -> Result<Option<String>, String> {
        let place = format!("{place}.bearer_token");
        Ok(read_secret(
            &place,
            None,
            self.bearer_token_file.as_ref(),
            self.bearer_token_env.as_ref(),
        )?
        .map(|secret| secret.expose().to_owned()))
    }
}

/// Every problem of the `[[remote_write]]` sections at once, each naming its key and fix.
pub fn problems(sections: &[RemoteWriteConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, section) in sections.iter().enumerate() {
        let place = format!("remote_write[{index}]");
        let name = section.name();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            problems.push(format!(
                "{place}.name = {name:?} must be letters, digits, '_', '-' or '.'"
            ));
        } else if !names.insert(name.clone()) {
            problems.push(format!(
                "{place}: name '{name}' is already used by another [[remote_write]]; give each a different name = \"…\""
            ));
        }
        let url = match reqwest::Url::parse(&section.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                problems.push(format!(
                    "{place}.url = {:?} is not an http:// or https:// URL; write e.g. \"http://victoria:8428/api/v1/write\"",
                    section.url
                ));
                None
            }
        };
        if let Err(problem) = section.selectors() {
            problems.push(format!(
                "{place}.{problem}; write selectors as the query API reads them, e.g. '{{client=\"acme\"}}'"
            ));
        }
        for (header, value) in &section.headers {
            if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "{place}.headers.{header}: set by remote-write itself; remove it"
                ));
            } else if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                problems.push(format!(
                    "{place}.headers.{header} = {value:?} is not a valid HTTP header"
                ));
            }
        }
        let has_auth_header = section
            .headers
            .keys()
            .any(|header| header.eq_ignore_ascii_case("authorization"));
        if let Err(problem) = section.password(&place) {
            problems.push(problem);
        }
        match section.bearer_token(&place) {
            Err(problem) => problems.push(problem),
            Ok(Some(_)) if section.basic_auth.is_some() || has_auth_header => problems.push(format!(
                "{place}: give only one of basic_auth, bearer_token_file/bearer_token_env and an Authorization header"
            )),
            Ok(_) if section.basic_auth.is_some() && has_auth_header => problems.push(format!(
                "{place}: give only one of basic_auth and an Authorization header"
            )),
            Ok(_) => {}
        }
        if let Some(tls) = &section.tls {
            if url.as_ref().is_some_and(|url| url.scheme() != "https") {
                problems.push(format!(
                    "{place}.tls is set but url is not https://; use an https:// URL or remove tls"
                ));
            }
            for (key, path) in [
                ("ca_file", &tls.ca_file),
                ("cert_file", &tls.cert_file),
                ("key_file", &tls.key_file),
            ] {
                if let Some(path) = path {
                    if let Err(error) = std::fs::read(path) {
                        problems.push(format!(
                            "{place}.tls.{key} = '{}' cannot be read: {error}",
                            path.display()
                        ));
                    }
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                problems.push(format!(
                    "{place}.tls: cert_file and key_file go together; give both or neither"
                ));
            }
        }
        if section.max_queue_bytes < 1 << 20 {
            problems.push(format!(
                "{place}.max_queue_bytes = {} is below 1 MiB (1048576); allow at least that (default 1 GiB)",
                section.max_queue_bytes
            ));
        }
        if !(1..=64).contains(&section.shards) {
            problems.push(format!(
                "{place}.shards = {} is out of range (1..=64)",
                section.shards
            ));
        }
        if !(1..=100_000).contains(&section.max_samples_per_send) {
            problems.push(format!(
                "{place}.max_samples_per_send = {} is out of range (1..=100000)",
                section.max_samples_per_send
            ));
        }
        if section.timeout.is_zero() {
            problems.push(format!("{place}.timeout must be above zero, e.g. \"30s\""));
        }
        if section.min_backoff.is_zero() || section.min_backoff > section.max_backoff {
            problems.push(format!(
                "{place}.min_backoff = {:?} must be above zero and at most max_backoff ({:?})",
                humantime::format_duration(section.min_backoff).to_string(),
                humantime::format_duration(section.max_backoff).to_string()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<RemoteWriteConfig> {
        #[derive(Deserialize)]
        struct File {
            remote_write: Vec<RemoteWriteConfig>,
        }
        toml::from_str::<File>(text).unwrap().remote_write
    }

    #[test]
    fn a_minimal_section_gets_a_name_from_its_url_and_every_default() {
        let sections = parse("[[remote_write]]\nurl = \"http://127.0.0.1:8428/api/v1/write\"\n");
        assert!(problems(&sections).is_empty(), "{:?}", problems(&sections));
        assert_eq!(sections[0].name(), "127.0.0.1_8428");
        assert_eq!(sections[0].shards, 4);
        assert_eq!(sections[0].max_queue_bytes, 1 << 30);
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let sections = parse(
            r#"
[[remote_write]]
url = "ftp://x"
match = ['{client=~"("}']
headers = { "Content-Type" = "text/plain" }
basic_auth = { username = "u" }
bearer_token_env = "VIGIL_TEST_SURELY_UNSET_TOKEN"
max_queue_bytes = 10
shards = 0
tls = { cert_file = "/nonexistent/cert.pem" }
"#,
        );
        let found = problems(&sections);
        for phrase in [
            "remote_write[0].url = \"ftp://x\" is not an http:// or https:// URL",
            "remote_write[0].match = ",
            "remote_write[0].headers.Content-Type: set by remote-write itself",
            "basic_auth needs password_file or password_env",
            "bearer_token_env = \"VIGIL_TEST_SURELY_UNSET_TOKEN\": the environment variable is not set",
            "remote_write[0].max_queue_bytes = 10 is below 1 MiB",
            "remote_write[0].shards = 0 is out of range",
            "remote_write[0].tls.cert_file = '/nonexistent/cert.pem' cannot be read",
            "cert_file and key_file go together",
        ] {
            assert!(
                found.iter().any(|problem| problem.contains(phrase)),
                "no problem says {phrase:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn two_receivers_with_one_name_are_refused() {
        let sections = parse(
            "[[remote_write]]\nurl = \"http://a:1/w\"\nname = \"vm\"\n[[remote_write]]\nurl = \"http://b:1/w\"\nname = \"vm\"\n",
        );
        let found = problems(&sections);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("name 'vm' is already used"), "{found:?}");
    }
}
