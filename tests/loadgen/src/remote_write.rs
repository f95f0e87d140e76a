//! The same fleet as Prometheus remote-write 1.0, for the side-by-side with Prometheus and
//! VictoriaMetrics: each simulated agent posts, per tick, one snappy-compressed protobuf
//! `WriteRequest` with the same series and values it would send Vigil (the `host` and
//! `client` labels that Vigil takes from the certificate go in the labels here).
//!
//! A 2xx answer is the acknowledgement; a 4xx is a rejection (remote-write's "do not
//! retry"); a 5xx or a broken connection is retried with backoff, as Prometheus' own
//! sender does. One request per agent is in flight at a time.

use crate::catalog::HostSeries;
use crate::certs::AgentIdentity;
use crate::fleet::{AgentCounts, FleetContext};
use crate::schedule::{start_offset, AgentClock, TickQueue};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use vigil_proto::prompb;

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One HTTP client for the whole fleet (its connection pool is what a Prometheus server's
/// remote-write shards would hold).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
}

/// A remote-write body: the request, protobuf-encoded, snappy block-compressed.
pub fn encode(request: &prompb::WriteRequest) -> Vec<u8> {
    use prost::Message;
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input below 4 GiB")
}

/// The labels of every series of `host`, sorted by name as remote-write requires.
fn label_sets(host: &HostSeries, identity: &AgentIdentity) -> Vec<Vec<prompb::Label>> {
    host.specs
        .iter()
        .map(|spec| {
            let mut labels: Vec<prompb::Label> = spec
                .labels
                .iter()
                .map(|(name, value)| prompb::Label {
                    name: name.to_string(),
                    value: value.clone(),
                })
                .chain([
                    prompb::Label {
                        name: "__name__".into(),
                        value: spec.name.into(),
                    },
                    prompb::Label {
                        name: "host".into(),
                        value: identity.host.clone(),
                    },
                    prompb::Label {
                        name: "client".into(),
                        value: identity.client.clone(),
                    },
                ])
                .collect();
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            labels
        })
        .collect()
}

/// Runs simulated agent `index` against a remote-write receiver until the drain deadline.
pub async fn run_agent(
    index: usize,
    identity: AgentIdentity,
    url: String,
    client: reqwest::Client,
    context: Arc<FleetContext>,
) -> AgentCounts {
    let settings = &context.settings;
    let mut counts = AgentCounts {
        host: identity.host.clone(),
        client: identity.client.clone(),
        ..AgentCounts::default()
    };
    let mut host = HostSeries::new(index, settings.series);
    let labels = label_sets(&host, &identity);
    let clock = AgentClock::new(
        context.started,
        start_offset(index, settings.spread),
        settings.interval,
    );
    let mut queue =
        TickQueue::with_backlog(clock.first_grid_ms, settings.interval, settings.backlog);
    let mut connected = false;

    // Each pass queues the live ticks that are due and sends the oldest queued one, or
    // waits for the next tick; bounded by the deadlines. A post that takes long (a backlog,
    // a slow receiver) delays ticks but loses none, as an agent's spool would.
    loop {
        let now = Instant::now();
        if now >= context.drain_until {
            break;
        }
        queue.catch_up(&clock, now, context.live_until);
        if queue.is_empty() {
            if now >= context.live_until {
                break;
            }
            tokio::time::sleep_until(queue.next_live_send(&clock).min(context.live_until)).await;
            continue;
        }
        let Some(timestamp_ms) = queue.pop() else {
            continue;
        };
        let values = host.values_at(timestamp_ms, settings.interval.as_secs_f64());
        let request = prompb::WriteRequest {
            timeseries: labels
                .iter()
                .zip(values)
                .map(|(labels, &value)| prompb::TimeSeries {
                    labels: labels.clone(),
                    samples: vec![prompb::Sample {
                        value,
                        timestamp: timestamp_ms,
                    }],
                })
                .collect(),
        };
        let samples = request.timeseries.len() as u64;
        let body = encode(&request);
        counts.sent_batches += 1;
        counts.sent_samples += samples;
        context
            .live
            .sent_samples
            .fetch_add(samples, Ordering::Relaxed);
        let first_sent = Instant::now();
        let mut backoff = BACKOFF_FIRST;
        let mut attempt = 0u32;
        // Retried until answered for good or the drain deadline passes.
        let answered = loop {
            attempt += 1;
            if attempt > 1 {
                counts.resent_batches += 1;
            }
            let sent = client
                .post(&url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("User-Agent", "vigil-loadgen")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => break true,
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    counts.rejected_batches += 1;
                    counts.rejected_samples += samples;
                    context
                        .live
                        .rejected_samples
                        .fetch_add(samples, Ordering::Relaxed);
                    counts
                        .first_reject_reason
                        .get_or_insert_with(|| format!("HTTP {status}: {}", text.trim()));
                    break false;
                }
                Ok(response) => {
                    counts.last_error = Some(format!("HTTP {} from {url}", response.status()));
                }
                Err(error) => counts.last_error = Some(format!("posting to {url}: {error}")),
            }
            counts.reconnects += 1;
            context.live.reconnects.fetch_add(1, Ordering::Relaxed);
            let jitter = rand::random_range(0.5..1.5);
            let until = (Instant::now() + backoff.mul_f64(jitter)).min(context.drain_until);
            tokio::time::sleep_until(until).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if Instant::now() >= context.drain_until {
                counts.unacknowledged_batches += 1;
                break false;
            }
        };
        if answered {
            if !connected {
                connected = true;
                context.live.connected.fetch_add(1, Ordering::Relaxed);
            }
            if settings.record_acked {
                counts.acked_timestamps_ms.push(timestamp_ms);
            }
            counts.acked_batches += 1;
            counts.acked_samples += samples;
            counts.last_acked_seq = counts.acked_batches;
            context
                .live
                .acked_samples
                .fetch_add(samples, Ordering::Relaxed);
            context.record_latency(first_sent.elapsed());
        }
    }
    if connected {
        context.live.connected.fetch_sub(1, Ordering::Relaxed);
    }
    counts.unsent_ticks = queue.len() as u64;
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_decodes_back_to_the_request_with_sorted_labels() {
        use prost::Message;
        let host = HostSeries::new(0, 100);
        let identity = AgentIdentity::named(0);
        let labels = label_sets(&host, &identity);
        let request = prompb::WriteRequest {
            timeseries: labels
                .into_iter()
                .map(|labels| prompb::TimeSeries {
                    labels,
                    samples: vec![prompb::Sample {
                        value: 1.0,
                        timestamp: 10_000,
                    }],
                })
                .collect(),
        };
        let body = encode(&request);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let decoded = prompb::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(decoded, request);
        assert_eq!(decoded.timeseries.len(), 100);
        for series in &decoded.timeseries {
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
            assert!(names.contains(&"__name__") && names.contains(&"host"));
        }
    }
}
