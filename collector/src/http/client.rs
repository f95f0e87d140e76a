//! The command line's way into a running collector: while `serve` holds the store, `query`
//! reads through the JSON API on loopback with the API token kept beside the config
//! (`<config folder>/api-token`, which the demo writes; `users token NAME > api-token` makes
//! one for a real install).

use crate::config::CollectorConfig;
use crate::store::SelectedSeries;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_proto::model::{Labels, Sample};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the store is in use by a running collector, and its API cannot be used without a token: {} cannot be read ({source}); write one with 'vigil-collector users token NAME > {}'", path.display(), path.display())]
    NoToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store is in use by a running collector whose API listens on {0}, beyond loopback; stop it to read the store, or use the API with its certificate (docs/API.md)")]
    NotLoopback(SocketAddr),
    #[error(
        "asking the running collector at {url}: {source}; is it running with its [http] listener?"
    )]
    Request { url: String, source: reqwest::Error },
    #[error("the running collector answered {status}: {message}")]
    Api { status: u16, message: String },
}

/// A client of one collector's API.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// The API of the collector `config` (loaded from `config_path`) describes.
    pub fn for_config(config: &CollectorConfig, config_path: &Path) -> Result<Self, ClientError> {
        let http = config.http();
        let mut address = http.listen;
        if address.ip().is_unspecified() {
            address.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        if !address.ip().is_loopback() || http.tls_cert.is_some() {
            return Err(ClientError::NotLoopback(http.listen));
        }
        let path = config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("api-token");
        let token = std::fs::read_to_string(&path)
            .map_err(|source| ClientError::NoToken {
                path: path.clone(),
                source,
            })?
            .trim()
            .to_string();
        Ok(Self {
            base: format!("http://{address}"),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client builds"),
        })
    }

    /// `GET path` with the token; the JSON answer, or the API's error.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let request = |source| ClientError::Request {
            url: url.clone(),
            source,
        };
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(request)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(request)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                message: body["error"].as_str().unwrap_or("no message").to_string(),
            })
        }
    }

    /// The series `selector` picks over `[start_ms, end_ms]`, each point the step's average,
    /// as `query` prints them. Steps are as fine as the API allows (one second, or the range
    /// over 11,000 points).
    pub async fn range(
        &self,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, ClientError> {
        let step_ms = ((end_ms - start_ms) / 10_000).max(1000);
        let query = format!(
            "/api/v1/range?selector={}&start={}&end={}&step={}",
            encode(selector),
            start_ms as f64 / 1000.0,
            end_ms as f64 / 1000.0,
            step_ms as f64 / 1000.0
        );
        let answer = self.get(&query).await?;
        let series = answer["series"].as_array().cloned().unwrap_or_default();
        Ok(series
            .iter()
            .map(|series| {
                let labels = series["labels"]
                    .as_object()
                    .map(|labels| {
                        Labels::from_pairs(
                            labels
                                .iter()
                                .map(|(name, value)| (name.as_str(), value.as_str().unwrap_or(""))),
                        )
                    })
                    .unwrap_or_default();
                let samples = series["points"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|point| {
                        Some(Sample {
                            timestamp_ms: point[0].as_i64()?,
                            value: point[1].as_f64().unwrap_or(f64::NAN),
                        })
                    })
                    .collect();
                SelectedSeries { labels, samples }
            })
            .collect())
    }
}

/// Percent-encoding for a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
