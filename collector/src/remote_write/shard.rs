//! One sender of one receiver: reads the exported log from its position, keeps the series
//! that hash to it (`series_id % shards`) and match, sends them as remote-write requests
//! one at a time, and moves its position only past what the receiver acknowledged (or
//! refused for good, or what was given up past `max_queue_bytes`). One request at a time
//! and one shard per series keep every series in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vigil_proto::prompb;

use crate::store::{ExportLog, LogPosition, StoreError};

use super::cursor::{self, Holds};
use super::{Authorization, Exporter, STOP_DEADLINE};

/// How long a shard that has sent everything waits before looking at the log again.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Log bytes one read goes through at most, so that a shard far behind still sends often.
const READ_MAX_BYTES: u64 = 16 << 20;
/// Log bytes given up in one step when the queue is over its bound.
const SKIP_STEP_BYTES: u64 = 64 << 20;
/// How often a position is saved while sending (always at a stop).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Labels looked up and kept in memory at most; past it the cache starts again.
const MAX_CACHED_SERIES: usize = 1 << 20;

/// A series' labels as remote-write sends them, or `None` when the series is not this
/// receiver's (no selector matches, or it is gone from the index).
type CachedLabels = Option<Arc<Vec<prompb::Label>>>;

pub(super) struct Shard {
    exporter: Arc<Exporter>,
    index: usize,
    log: ExportLog,
    cursor_dir: PathBuf,
    holds: Arc<Holds>,
    position: LogPosition,
    saved: LogPosition,
    labels: HashMap<u64, CachedLabels>,
}

/// What a read prepared to send.
struct Pending {
    request: prompb::WriteRequest,
    n_samples: u64,
    oldest_ms: i64,
    next: LogPosition,
}

/// How one send ended.
enum Sent {
    /// 2xx.
    Acknowledged,
    /// A 4xx other than 429: the receiver will never take it.
    Refused,
    /// Shutdown, or the queue outgrew its bound while retrying: the position stays.
    Abandoned,
}

impl Shard {
    pub fn new(
        exporter: Arc<Exporter>,
        index: usize,
        log: ExportLog,
        cursor_dir: PathBuf,
        holds: Arc<Holds>,
        position: LogPosition,
    ) -> Self {
        Self {
            exporter,
            index,
            log,
            cursor_dir,
            holds,
            position,
            saved: position,
            labels: HashMap::new(),
        }
    }

    fn name(&self) -> &str {
        &self.exporter.name
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn exporter_name(&self) -> &str {
        &self.exporter.name
    }

    pub fn exporter_url(&self) -> &str {
        &self.exporter.counters.url
    }

    /// Sends until `stop`, then saves the position.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut last_save = Instant::now();
        let mut failing_since: Option<Instant> = None;
        while !stop.is_cancelled() {
            let step = self.step(&stop).await;
            match step {
                Ok(progressed) => {
                    if failing_since.take().is_some() {
                        tracing::info!(remote_write = %self.name(), shard = self.index, "reading the exported log works again");
                    }
                    if last_save.elapsed() >= SAVE_EVERY {
                        self.save().await;
                        last_save = Instant::now();
                    }
                    if !progressed {
                        tokio::select! {
                            // Stopping: the loop ends and the position is saved below.
                            _ = stop.cancelled() => {}
                            // Time to look for new records.
                            _ = tokio::time::sleep(POLL_EVERY) => {}
                        }
                    }
                }
                Err(error) => {
                    if failing_since.is_none() {
                        tracing::error!(remote_write = %self.name(), shard = self.index, %error, "cannot read the exported log; trying again every few seconds");
                        failing_since = Some(Instant::now());
                    }
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
        self.save().await;
    }

    async fn save(&mut self) {
        if self.saved == self.position {
            return;
        }
        let dir = self.cursor_dir.clone();
        let (index, shards, position) = (self.index, self.exporter.config.shards, self.position);
        let saved =
            tokio::task::spawn_blocking(move || cursor::save(&dir, index, shards, position))
                .await
                .expect("saving a remote-write position panicked");
        match saved {
            Ok(()) => {
                let moved_segment = self.saved.segment != position.segment;
                self.saved = position;
                self.holds.set(&self.exporter.name, self.index, position);
                if moved_segment {
                    let (holds, log) = (self.holds.clone(), self.log.clone());
                    let _ = tokio::task::spawn_blocking(move || holds.release(&log)).await;
                }
            }
            Err(error) => {
                tracing::warn!(remote_write = %self.name(), shard = self.index, %error, "cannot save the remote-write position; a restart may send some samples twice");
            }
        }
    }

    /// Unsent bytes now, published for the status; over the bound, gives the oldest up.
    async fn enforce_bound(&mut self) -> Result<(), StoreError> {
        let bound = self.exporter.config.max_queue_bytes;
        loop {
            let (log, position) = (self.log.clone(), self.position);
            let unsent = tokio::task::spawn_blocking(move || log.bytes_after(position))
                .await
                .expect("measuring the remote-write queue panicked")?;
            self.exporter.counters.queue_bytes[self.index].store(unsent, Ordering::Relaxed);
            if unsent <= bound {
                return Ok(());
            }
            let excess = (unsent - bound).min(SKIP_STEP_BYTES);
            let shards = self.exporter.config.shards as u64;
            let index = self.index as u64;
            let (log, position) = (self.log.clone(), self.position);
            let skipped = tokio::task::spawn_blocking(move || {
                log.read(position, usize::MAX, excess, |series_id| {
                    series_id % shards == index
                })
            })
            .await
            .expect("reading the exported log panicked")?;
            let Some(next) = skipped.next else {
                return Ok(());
            };
            let n_dropped: u64 = skipped
                .series
                .iter()
                .map(|series| series.samples.len() as u64)
                .sum();
            self.exporter
                .counters
                .samples_dropped
                .fetch_add(n_dropped, Ordering::Relaxed);
            tracing::warn!(
                remote_write = %self.name(),
                shard = self.index,
                unsent_bytes = unsent,
                max_queue_bytes = bound,
                samples = n_dropped,
                "remote-write queue is over max_queue_bytes: the oldest unsent samples are given up; the receiver has been unreachable too long, or raise max_queue_bytes"
            );
            self.position = next;
        }
    }

    /// One round: bound the queue, read what is new, send it. `Ok(false)` when there was
    /// nothing new.
    async fn step(&mut self, stop: &CancellationToken) -> Result<bool, StoreError> {
        self.enforce_bound().await?;
        let Some(pending) = self.read().await? else {
            self.exporter.counters.oldest_unsent_ms[self.index].store(i64::MAX, Ordering::Relaxed);
            return Ok(false);
        };
        if pending.n_samples == 0 {
            self.position = pending.next;
            return Ok(true);
        }
        self.exporter.counters.oldest_unsent_ms[self.index]
            .store(pending.oldest_ms, Ordering::Relaxed);
        match self.send(&pending, stop).await? {
            Sent::Acknowledged => {
                self.exporter
                    .counters
                    .samples_sent
                    .fetch_add(pending.n_samples, Ordering::Relaxed);
                self.position = pending.next;
            }
            Sent::Refused => {
                self.exporter
                    .counters
                    .samples_failed
                    .fetch_add(pending.n_samples, Ordering::Relaxed);
                self.position = pending.next;
            }
            Sent::Abandoned => {}
        }
        Ok(true)
    }

    /// Reads the next records and builds the request of this shard's series in them.
    async fn read(&mut self) -> Result<Option<Pending>, StoreError> {
        let shards = self.exporter.config.shards as u64;
        let index = self.index as u64;
        let max_samples = self.exporter.config.max_samples_per_send;
        let log = self.log.clone();
        let exporter = self.exporter.clone();
        let mut labels = std::mem::take(&mut self.labels);
        let position = self.position;
        let (result, labels) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                if labels.len() > MAX_CACHED_SERIES {
                    labels.clear();
                }
                let mut lookup_error = None;
                let read = log.read(position, max_samples, READ_MAX_BYTES, |series_id| {
                    if series_id % shards != index {
                        return false;
                    }
                    if let Some(cached) = labels.get(&series_id) {
                        return cached.is_some();
                    }
                    match log.labels(series_id) {
                        Ok(found) => {
                            let kept = found
                                .filter(|found| {
                                    exporter.selectors.is_empty()
                                        || exporter.selectors.iter().any(|s| s.matches(found))
                                })
                                .map(|found| Arc::new(to_prompb(&found)));
                            let is_kept = kept.is_some();
                            labels.insert(series_id, kept);
                            is_kept
                        }
                        Err(error) => {
                            lookup_error.get_or_insert(error);
                            false
                        }
                    }
                })?;
                if let Some(error) = lookup_error {
                    return Err(error);
                }
                let Some(next) = read.next else {
                    return Ok(None);
                };
                let mut request = prompb::WriteRequest::default();
                let mut slot_of: HashMap<u64, usize> = HashMap::new();
                let mut n_samples = 0u64;
                let mut oldest_ms = i64::MAX;
                for series in read.series {
                    let Some(Some(series_labels)) = labels.get(&series.series_id) else {
                        continue;
                    };
                    let slot = *slot_of.entry(series.series_id).or_insert_with(|| {
                        request.timeseries.push(prompb::TimeSeries {
                            labels: series_labels.as_ref().clone(),
                            samples: Vec::new(),
                        });
                        request.timeseries.len() - 1
                    });
                    n_samples += series.samples.len() as u64;
                    for sample in series.samples {
                        oldest_ms = oldest_ms.min(sample.timestamp_ms);
                        request.timeseries[slot].samples.push(prompb::Sample {
                            value: sample.value,
                            timestamp: sample.timestamp_ms,
                        });
                    }
                }
                Ok(Some(Pending {
                    request,
                    n_samples,
                    oldest_ms,
                    next,
                }))
            })();
            (result, labels)
        })
        .await
        .expect("reading the exported log panicked");
        self.labels = labels;
        result
    }

    /// Sends `pending` until the receiver answers 2xx or a 4xx other than 429, retrying
    /// the rest with exponential backoff; gives up only at a stop (after letting the
    /// request in flight finish) or when the queue outgrows its bound meanwhile.
    async fn send(
        &mut self,
        pending: &Pending,
        stop: &CancellationToken,
    ) -> Result<Sent, StoreError> {
        let raw = prompb::encode_write_request(&pending.request);
        let body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy compresses any request below 4 GiB");
        let (min_backoff, max_backoff) = (
            self.exporter.config.min_backoff,
            self.exporter.config.max_backoff,
        );
        let mut backoff = min_backoff;
        let mut attempt = 1u32;
        loop {
            let mut request = self
                .exporter
                .client
                .post(self.exporter.url.clone())
                .header(reqwest::header::CONTENT_ENCODING, "snappy")
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body.clone());
            request = match &self.exporter.authorization {
                Authorization::None => request,
                Authorization::Basic { username, password } => {
                    request.basic_auth(username, Some(password))
                }
                Authorization::Bearer(token) => request.bearer_auth(token),
            };
            let mut in_flight = std::pin::pin!(request.send());
            let answer = tokio::select! {
                answer = &mut in_flight => answer,
                // Stopping: the request in flight may already be taken, so it gets a
                // moment to say so (then the position moves and nothing is sent twice).
                _ = stop.cancelled() => match tokio::time::timeout(STOP_DEADLINE, &mut in_flight).await {
                    Ok(answer) => answer,
                    Err(_) => return Ok(Sent::Abandoned),
                },
            };
            let retry_reason = match answer {
                Ok(response) if response.status().is_success() => return Ok(Sent::Acknowledged),
                Ok(response)
                    if response.status().is_client_error()
                        && response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    tracing::warn!(
                        remote_write = %self.name(),
                        shard = self.index,
                        status = status.as_u16(),
                        samples = pending.n_samples,
                        answer = %text.trim().chars().take(300).collect::<String>(),
                        "the receiver refused a remote-write request; it is dropped, not retried (as Prometheus does)"
                    );
                    return Ok(Sent::Refused);
                }
                Ok(response) => format!("HTTP {}", response.status()),
                Err(error) => with_causes(&error),
            };
            if stop.is_cancelled() {
                return Ok(Sent::Abandoned);
            }
            // The first failure and then every doubling: an outage of hours logs a few lines.
            if attempt.is_power_of_two() {
                tracing::warn!(
                    remote_write = %self.name(),
                    shard = self.index,
                    attempt,
                    next_in = ?backoff,
                    reason = %retry_reason,
                    "remote-write send failed; retrying (samples wait in the log)"
                );
            }
            self.exporter
                .counters
                .retries
                .fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = stop.cancelled() => return Ok(Sent::Abandoned),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
            attempt = attempt.saturating_add(1);
            // While the receiver is away the log grows; past the bound, the oldest goes.
            let before = self.position;
            self.enforce_bound().await?;
            if self.position != before {
                return Ok(Sent::Abandoned);
            }
        }
    }
}

/// An error and the errors under it on one line: reqwest's own message names only the URL.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Labels as remote-write wants them: sorted by name, the metric name as `__name__`.
fn to_prompb(labels: &vigil_proto::model::Labels) -> Vec<prompb::Label> {
    let mut out: Vec<prompb::Label> = labels
        .iter()
        .map(|(name, value)| prompb::Label {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
