//! Remote-write export: every live-ingested sample (or those `match` picks) sent to
//! Prometheus-compatible stores — Prometheus with its receiver on, VictoriaMetrics, Mimir,
//! Thanos Receive, Grafana Cloud — as Prometheus remote-write 1.0 (protobuf
//! `WriteRequest`, snappy block compression).
//!
//! How a sample moves: ingest writes the batch to the store's write-ahead log, whose
//! segments are also kept under `<data_dir>/remote_write/log/` while export is on
//! ([`crate::store::ExportLog`]). Each receiver ([`Exporter`]) runs `shards` senders
//! ([`shard`]); each reads the whole log from its own saved position ([`cursor`]), keeps
//! the series that hash to it and match, sends them in order, retries 5xx, 429 and network
//! errors with exponential backoff, drops a request the receiver refuses with another 4xx
//! (as Prometheus does), and saves its position once the receiver has acknowledged. A
//! receiver that is down for hours gets everything when it returns, in order per series;
//! past `max_queue_bytes` of unsent log the oldest is given up, with a warning and
//! `samples_dropped`. Ingest never waits for any of this.
//!
//! Not exported: what `vigil-collector import` writes (it bypasses the log).
//!
//! Modules: [`config`] (`[[remote_write]]`), [`shard`] (one sender), [`cursor`] (saved
//! positions and which exported segments may go), [`status`] (figures for `/metrics`).

pub mod config;
mod cursor;
mod shard;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Selector, Store, StoreError};
pub use config::RemoteWriteConfig;
pub use status::{ExporterStatus, RemoteWriteStatus};

/// How long senders get, at a clean stop, to finish the request in flight.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What can go wrong in export: each message names the receiver or file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("remote_write '{name}': {detail}")]
    Config { name: String, detail: String },
    #[error("remote_write '{name}': cannot build the HTTP client: {source}; check the tls files")]
    Client {
        name: String,
        source: reqwest::Error,
    },
    #[error("remote_write: export is not enabled in the store; call store::export_log::enable before opening it")]
    NotEnabled,
    #[error("{action} remote-write position '{}': {source}; check the permissions of the data directory", path.display())]
    Cursor {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("remote-write position '{}' is damaged ({detail}); delete the file to resend from the oldest data kept", path.display())]
    CursorDamaged { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One receiver, ready to send: its client (TLS, authentication, headers) and selection.
struct Exporter {
    name: String,
    url: reqwest::Url,
    client: reqwest::Client,
    authorization: Authorization,
    selectors: Vec<Selector>,
    config: RemoteWriteConfig,
    counters: Arc<status::ExporterCounters>,
}

/// How requests authenticate.
enum Authorization {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Exporter {
    /// Builds the client of `config`; files and secrets are read now.
    fn build(config: &RemoteWriteConfig) -> Result<Self, RemoteWriteError> {
        let name = config.name();
        let config_error = |detail: String| RemoteWriteError::Config {
            name: name.clone(),
            detail,
        };
        let url = reqwest::Url::parse(&config.url).map_err(|error| {
            config_error(format!("url {:?} does not parse: {error}", config.url))
        })?;
        let selectors = config.selectors().map_err(config_error)?;
        let place = format!("remote_write '{name}'");
        let authorization = match (config.password(&place), config.bearer_token(&place)) {
            (Err(problem), _) | (_, Err(problem)) => return Err(config_error(problem)),
            (Ok(Some(password)), _) => Authorization::Basic {
                username: config
                    .basic_auth
                    .as_ref()
                    .map(|auth| auth.username.clone())
                    .unwrap_or_default(),
                password,
            },
            (Ok(None), Ok(Some(token))) => Authorization::Bearer(token),
            (Ok(None), Ok(None)) => Authorization::None,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (header, value) in &config.headers {
            let header_name = reqwest::header::HeaderName::from_bytes(header.as_bytes())
                .map_err(|error| config_error(format!("header {header}: {error}")))?;
            let header_value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|error| config_error(format!("header {header}: {error}")))?;
            headers.insert(header_name, header_value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("vigil-collector/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .pool_max_idle_per_host(config.shards);
        if let Some(tls) = &config.tls {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|error| {
                    config_error(format!("cannot read '{}': {error}", path.display()))
                })
            };
            if let Some(ca_file) = &tls.ca_file {
                for certificate in
                    reqwest::Certificate::from_pem_bundle(&read(ca_file)?).map_err(|error| {
                        config_error(format!(
                            "tls.ca_file '{}' holds no PEM certificate: {error}",
                            ca_file.display()
                        ))
                    })?
                {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
                let mut pem = read(cert_file)?;
                pem.push(b'\n');
                pem.extend(read(key_file)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
                    config_error(format!(
                        "tls.cert_file '{}' and key_file '{}' are not a PEM certificate and key: {error}",
                        cert_file.display(),
                        key_file.display()
                    ))
                })?;
                builder = builder.identity(identity);
            }
        }
        let client = builder.build().map_err(|source| RemoteWriteError::Client {
            name: name.clone(),
            source,
        })?;
        let mut shown_url = url.clone();
        let _ = shown_url.set_username("");
        let _ = shown_url.set_password(None);
        let counters = Arc::new(status::ExporterCounters::new(
            name.clone(),
            shown_url.to_string(),
            config.shards,
        ));
        Ok(Self {
            name,
            url,
            client,
            authorization,
            selectors,
            config: config.clone(),
            counters,
        })
    }
}

/// Every receiver's shards: built by [`RemoteWrite::new`], sending from
/// [`RemoteWrite::start`] until [`RemoteWrite::stop`].
pub struct RemoteWrite {
    /// Built and not started yet.
    shards: Vec<shard::Shard>,
    tasks: TaskTracker,
    stop: CancellationToken,
    status: RemoteWriteStatus,
}

impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl RemoteWrite {
    /// Builds a sender per shard of every receiver in `configs`, each from its saved
    /// position. The store must have been opened with export enabled ([`prepare_store`]).
    pub fn new(store: &Store, configs: &[RemoteWriteConfig]) -> Result<Self, RemoteWriteError> {
        let log = store.export_log().ok_or(RemoteWriteError::NotEnabled)?;
        if let Some(moved_to) = store.quarantined_to() {
            // The kept log names series by the ids of the store that was moved aside; the new
            // store numbers its series afresh, so that log cannot be read any more.
            let discarded = log.release_before(log.end())?;
            let _ = std::fs::remove_dir_all(store.data_dir().join("remote_write").join("cursors"));
            tracing::warn!(
                quarantined_to = %moved_to.display(),
                segments = discarded,
                "the store was damaged and moved aside; log kept for remote-write and not yet sent is given up"
            );
        }
        let holds = Arc::new(cursor::Holds::default());
        let mut status = RemoteWriteStatus::default();
        let mut shards = Vec::new();
        for config in configs {
            let exporter = Arc::new(Exporter::build(config)?);
            let dir = cursor::cursor_dir(store.data_dir(), &exporter.name);
            let saved = cursor::load(&dir, config.shards)?;
            for (index, saved) in saved.into_iter().enumerate() {
                let position = match saved {
                    Some(position) => position,
                    None => log.start()?,
                };
                holds.set(&exporter.name, index, position);
                shards.push(shard::Shard::new(
                    exporter.clone(),
                    index,
                    log.clone(),
                    dir.clone(),
                    holds.clone(),
                    position,
                ));
            }
            status.exporters.push(exporter.counters.clone());
        }
        Ok(Self {
            shards,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            status,
        })
    }

    /// Starts every sender as a task.
    pub fn start(&mut self) {
        for shard in self.shards.drain(..) {
            if shard.index() == 0 {
                tracing::info!(
                    remote_write = %shard.exporter_name(),
                    url = %shard.exporter_url(),
                    "remote-write export starts"
                );
            }
            let span = tracing::info_span!(
                "remote_write",
                name = %shard.exporter_name(),
                shard = shard.index()
            );
            self.tasks.spawn(tracing::Instrument::instrument(
                shard.run(self.stop.clone()),
                span,
            ));
        }
    }

    /// The figures of every receiver, for `/metrics`.
    pub fn status(&self) -> RemoteWriteStatus {
        self.status.clone()
    }

    /// Stops every sender: each lets its request in flight finish (within
    /// [`STOP_DEADLINE`]) and saves its position, so that a restart sends nothing twice.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Turns export on or off in `data_dir` to match the configuration, before the store
/// opens: on keeps log segments for the receivers, off deletes what was kept for them.
pub fn prepare_store(
    data_dir: &std::path::Path,
    configs: &[RemoteWriteConfig],
) -> Result<(), StoreError> {
    if configs.is_empty() {
        crate::store::export_log::disable(data_dir)?;
        let cursors = data_dir.join("remote_write");
        if cursors.is_dir() {
            let _ = std::fs::remove_dir_all(cursors);
        }
        Ok(())
    } else {
        crate::store::export_log::enable(data_dir)
    }
}
