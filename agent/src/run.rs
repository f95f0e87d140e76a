//! `vigil-agent run`: the sampler and the shipper, joined by the spool.
//!
//! The sampler ticks on the wall-clock grid and pushes each tick's series into the spool; the
//! shipper drains the spool to the collector. Sampling never waits on the network: a slow or
//! absent collector only makes the spool longer. Each batch also carries the spool's own
//! count of dropped batches, so the collector learns of any loss.

use crate::collect::{Checks, ChecksConfig, HostCollector};
use crate::config::{AgentConfig, ConfigWatch};
use crate::service::power::Power;
use crate::service::stop::StopReason;
use crate::ship::{ShipConfig, Shipper};
use crate::spool::{Spool, SpoolError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_proto::model::{Labels, Sample, Series};

/// The agent's version, as reported in its inventory.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The spool's count of dropped batches, in every batch.
pub const SPOOL_DROPPED_METRIC: &str = "vigil_agent_spool_dropped_batches_total";

/// Why an agent stopped on its own, so that its service manager restarts it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("collecting failed outside any one metric family ({0}); the agent stops so that its service manager restarts it")]
    SamplingPanicked(String),
}

/// A running agent: build it from a config, then [`Agent::run`] it until shutdown.
pub struct Agent {
    config: AgentConfig,
    spool: Arc<Spool>,
    stop_reason: StopReason,
    power: Power,
}

impl Agent {
    /// Opens the agent's spool in its state folder.
    pub fn open(config: AgentConfig) -> Result<Self, SpoolError> {
        let spool = Spool::open(&config.spool_dir(), config.spool.limits())?;
        Ok(Self::with_spool(config, spool))
    }

    /// Like [`Agent::open`], but an agent whose state folder cannot be used still runs: it
    /// logs why and keeps its spool in a temporary database, which lasts until it stops.
    /// Monitoring without a durable spool beats no monitoring.
    pub fn new(config: AgentConfig) -> Self {
        let spool_dir = config.spool_dir();
        let limits = config.spool.limits();
        let spool = Spool::open(&spool_dir, limits).unwrap_or_else(|error| {
            tracing::error!(%error, "batches are kept in a temporary spool that does not survive a restart until this is fixed");
            Spool::open_temporary(limits).expect("a temporary spool can always be created")
        });
        Self::with_spool(config, spool)
    }

    /// An agent that queues into `spool`; tests pass one with other limits than `[spool]`
    /// allows (a few kilobytes).
    pub fn with_spool(config: AgentConfig, spool: Spool) -> Self {
        Self {
            config,
            spool: Arc::new(spool),
            stop_reason: StopReason::default(),
            power: Power::default(),
        }
    }

    /// The queue of batches not yet acknowledged (for status and tests).
    pub fn spool(&self) -> Arc<Spool> {
        self.spool.clone()
    }

    /// Where to say why the agent stops: set it before cancelling the shutdown token, and
    /// the Goodbye carries it (a service stop unless set).
    pub fn stop_reason(&self) -> StopReason {
        self.stop_reason.clone()
    }

    /// Where to say that the machine is about to sleep or has resumed: the shipper says
    /// goodbye before a sleep and connects again after it.
    pub fn power(&self) -> Power {
        self.power.clone()
    }

    /// Samples and ships until `shutdown` is cancelled, then stops sampling, says goodbye to
    /// the collector and waits briefly for the last acks. Fails only if sampling cannot go
    /// on; what was measured until then is still shipped first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut collector = tokio::task::spawn_blocking(HostCollector::new)
            .await
            .expect("initialising the host collector panicked");
        let inventory = collector.inventory(AGENT_VERSION);
        let (interval_tx, interval_rx) = watch::channel(self.config.interval);
        let shipper = Shipper {
            config: ShipConfig {
                collector_url: self.config.collector.clone(),
                server_name: self.config.expected_server_name(),
                cert: self.config.tls.cert.clone(),
                key: self.config.tls.key.clone(),
                ca: self.config.tls.ca.clone(),
            },
            spool: self.spool.clone(),
            inventory,
            interval: interval_tx,
            stop_reason: self.stop_reason.clone(),
            power: self.power.clone(),
        };
        // Stop sampling first, then let the shipper drain: shutting the sampler down is the
        // parent token, the shipper gets its own once sampling has ended.
        let ship_shutdown = CancellationToken::new();
        let shipping = tokio::spawn(
            shipper
                .run(ship_shutdown.clone())
                .instrument(tracing::info_span!("ship")),
        );
        let checks = Checks::start(&self.config.checks);
        let (checks_tx, checks_rx) = watch::channel(self.config.checks.clone());
        if let Some(path) = self.config.source.clone() {
            match ConfigWatch::start(&path) {
                Ok(config_watch) => {
                    tokio::spawn(
                        reload_checks(
                            config_watch,
                            self.config.clone(),
                            checks_tx,
                            shutdown.clone(),
                        )
                        .instrument(tracing::info_span!("reload")),
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "config changes take effect only after a restart")
                }
            }
        }
        let sampled = sample(
            collector,
            checks,
            checks_rx,
            &self.spool,
            interval_rx,
            &shutdown,
        )
        .instrument(tracing::info_span!("sample"))
        .await;
        ship_shutdown.cancel();
        let _ = shipping.await;
        tracing::info!(unacknowledged = self.spool.len(), "agent stopped");
        sampled
    }
}

/// Collects once per interval, on the grid, until `shutdown`.
async fn sample(
    mut collector: HostCollector,
    mut checks: Checks,
    mut checks_config: watch::Receiver<ChecksConfig>,
    spool: &Arc<Spool>,
    mut interval: watch::Receiver<Duration>,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    loop {
        let period = *interval.borrow_and_update();
        let (tick_ms, wait) = next_tick(now_ms(), period);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            // A new interval from the collector: recompute the next tick on the new grid.
            _ = interval.changed() => continue,
            // agent.toml's [checks] changed on disk and is valid: run the new checks.
            changed = checks_config.changed() => {
                if changed.is_ok() {
                    checks.reconfigure(&checks_config.borrow_and_update());
                }
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        // Collecting reads /proc or system APIs: quick, but blocking.
        let collected = tokio::task::spawn_blocking(move || {
            let series = collector.collect(tick_ms);
            (collector, series)
        })
        .await;
        let series = match collected {
            Ok((returned, series)) => {
                collector = returned;
                series
            }
            Err(error) => {
                let error = RunError::SamplingPanicked(error.to_string());
                tracing::error!(%error);
                return Err(error);
            }
        };
        let mut series = series;
        series.extend(checks.collect(tick_ms));
        series.push(Series {
            name: SPOOL_DROPPED_METRIC.to_owned(),
            labels: Labels::new(),
            samples: vec![Sample {
                timestamp_ms: tick_ms,
                value: spool.dropped_batches() as f64,
            }],
        });
        let n_series = series.len();
        match spool.push_off_thread(series, checks.take_excerpts()).await {
            Some(seq) => tracing::debug!(seq, n_series, "collected"),
            None => tracing::error!("writing a tick to the spool panicked; the tick is lost"),
        }
    }
}

/// Reads `agent.toml` again whenever it changes and hands a changed `[checks]` section to the
/// sampler. A file that no longer loads is reported and ignored: the running checks stay.
async fn reload_checks(
    mut config_watch: ConfigWatch,
    mut running: AgentConfig,
    checks: watch::Sender<ChecksConfig>,
    shutdown: CancellationToken,
) {
    loop {
        let reloaded = tokio::select! {
            _ = shutdown.cancelled() => return,
            reloaded = config_watch.next() => match reloaded {
                Some(reloaded) => reloaded,
                None => return,
            },
        };
        let config = match reloaded {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%error, "the changed config is not used; the checks keep running as they were");
                continue;
            }
        };
        if config.checks != running.checks {
            tracing::info!("config changed: the checks are restarted with the new [checks]");
            checks.send_replace(config.checks.clone());
        }
        let mut rest = config.clone();
        rest.checks = running.checks.clone();
        if rest != running {
            tracing::warn!("config changed outside [checks]; those changes take effect when the agent restarts");
        }
        running.checks = config.checks;
    }
}

/// The next multiple of `period` after `now_ms`, and how long until then. Timestamps on the
/// grid compress to almost nothing in the collector's store.
pub fn next_tick(now_ms: i64, period: Duration) -> (i64, Duration) {
    let period_ms = (period.as_millis() as i64).max(1);
    let tick_ms = (now_ms.div_euclid(period_ms) + 1) * period_ms;
    (tick_ms, Duration::from_millis((tick_ms - now_ms) as u64))
}

/// The async runtime the agent runs on. The agent waits almost all the time, so one thread
/// runs all of its async work: a worker thread per core would only add stacks and malloc
/// arenas to its footprint. Blocking work (a tick's sampling) goes to a small pool whose
/// thread outlives the interval, so it is not made anew every tick.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(120))
        .build()
}

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_land_on_the_interval_grid() {
        let ten = Duration::from_secs(10);
        assert_eq!(
            next_tick(1_000_003_000, ten),
            (1_000_010_000, Duration::from_millis(7_000))
        );
        // Exactly on a tick: the next one, never the same instant twice.
        assert_eq!(next_tick(1_000_010_000, ten).0, 1_000_020_000);
        assert_eq!(next_tick(59_999, Duration::from_secs(60)).0, 60_000);
    }
}
