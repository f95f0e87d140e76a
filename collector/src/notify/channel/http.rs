//! Posting a JSON body and judging the answer, for every HTTP channel: 2xx is delivered;
//! 408, 425, 429 and 5xx, timeouts and refused connections are worth another attempt;
//! any other status means the receiver will never take this message.

use super::SendError;
use reqwest::Url;

/// The URL as messages may show it: scheme, host and port, and the path only if it holds no
/// secret (Slack and Teams URLs are secrets in full). Never a query or credentials.
pub fn shown_url(url: &Url, path_is_secret: bool) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if path_is_secret {
        if url.path() != "/" {
            shown.push_str("/…");
        }
    } else {
        shown.push_str(url.path());
    }
    shown
}

/// Parses a configured URL; the message never echoes it (it may be a secret).
pub fn parse_url(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        _ => Err("url is not an http(s) URL".to_string()),
    }
}

/// A receiver whose whole URL is the secret (Slack and Teams webhooks): the JSON body is
/// posted to it, and messages name only its host.
#[derive(Debug)]
pub struct SecretUrl {
    url: Url,
    shown: String,
    context: super::Context,
}

impl SecretUrl {
    pub fn new(url: &str, context: super::Context) -> Result<Self, String> {
        let url = parse_url(url)?;
        Ok(Self {
            shown: shown_url(&url, true),
            url,
            context,
        })
    }

    pub async fn post(&self, body: &serde_json::Value) -> Result<(), SendError> {
        let request = self.context.http.post(self.url.clone()).json(body);
        send(request, &self.shown).await
    }
}

/// Sends `request` and judges the answer; `shown` names the receiver in errors.
pub async fn send(request: reqwest::RequestBuilder, shown: &str) -> Result<(), SendError> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return Err(SendError::retry(format!("no answer in time from {shown}")))
        }
        Err(error) if error.is_connect() => {
            return Err(SendError::retry(format!("cannot connect to {shown}")))
        }
        Err(error) => {
            return Err(SendError::retry(format!(
                "request to {shown} failed: {}",
                error.without_url()
            )))
        }
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(200).collect();
    let detail = if excerpt.trim().is_empty() {
        format!("HTTP {} from {shown}", status.as_u16())
    } else {
        format!("HTTP {} from {shown}: {}", status.as_u16(), excerpt.trim())
    };
    let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    Err(if retry {
        SendError::retry(detail)
    } else {
        SendError::permanent(detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_path_is_hidden_and_queries_are_never_shown() {
        let url = Url::parse("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?token=1").unwrap();
        assert_eq!(shown_url(&url, true), "https://hooks.slack.com/…");
        assert_eq!(
            shown_url(&url, false),
            "https://hooks.slack.com/services/T0/B0/XYZ"
        );
        let local = Url::parse("http://127.0.0.1:9093/api/v2/alerts").unwrap();
        assert_eq!(
            shown_url(&local, false),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
    }
}
