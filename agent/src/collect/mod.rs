//! Collection: turns what this machine can tell about itself into catalog series, once per
//! tick, without doing any I/O to the collector (that is `spool` and `ship`).
//!
//! The principal type is [`HostCollector`]: one long-lived set of sysinfo handles that
//! [`HostCollector::collect`] samples into the `system_*` and `process_*` series of the metric
//! catalog (docs in DESIGN.md), and that [`HostCollector::inventory`] describes as an
//! [`Inventory`]. [`collect_once`] is what `vigil-agent collect --once` prints.
//!
//! Beside it, [`Checks`] runs what `agent.toml` asks for under `[checks]` — services, SMART,
//! backups, log watch — in the background, and hands each tick their latest readings.
//!
//! Each source is one module; a source is made of metric families, and a family that fails is
//! skipped and logged while the others still report. Modules, in reading order:
//! - `host`: CPU, memory, filesystems, disk and network I/O, temperatures, processes and
//!   the inventory, all through sysinfo.
//! - `checks`: the configured checks and the board they post to.
//! - `services`: `service_up`, from systemd or the Windows Service Control Manager.
//! - `smart`: `disk_smart_*`, from smartctl's JSON.
//! - `updates`: `system_reboot_required` and pending updates, on a slow schedule.
//! - `backups`: `backup_last_success_timestamp_seconds`, from a file's or folder's time.
//! - `logwatch`: `log_matches_total`, lines matching patterns in a log file.
//! - `file_watch`: the thread that follows files for `backups` and `logwatch` via notify.
//! - `series`: how a family writes series for one tick (label limits, no duplicates).
//! - `family`: failure isolation between families.

mod backups;
mod checks;
mod family;
mod file_watch;
mod host;
mod logwatch;
mod series;
mod services;
mod smart;
mod updates;

pub use backups::BackupConfig;
pub use checks::{Checks, ChecksConfig};
pub use host::HostCollector;
pub use logwatch::LogConfig;
pub use services::ServicesConfig;
pub use smart::SmartConfig;
pub use updates::UpdatesConfig;

use std::time::{SystemTime, UNIX_EPOCH};
use vigil_proto::model::{Inventory, Series};

/// What this machine reports, as `vigil-agent collect --once --format json` prints it
/// (pretty JSON of this struct).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectOnce {
    pub inventory: Inventory,
    pub series: Vec<Series>,
}

/// Collects one tick without a collector, for a technician checking what a machine reports.
///
/// Blocks for [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] (a few hundred milliseconds) first:
/// CPU utilization is the difference between two readings, and a reading taken right after
/// the first one would say nothing.
pub fn collect_once(agent_version: &str) -> CollectOnce {
    let mut collector = HostCollector::new();
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    let series = collector.collect(unix_now_ms());
    let inventory = collector.inventory(agent_version);
    CollectOnce { inventory, series }
}

/// Milliseconds since the Unix epoch by the wall clock; 0 if the clock is before 1970.
fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since_epoch| i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_once_serializes_inventory_and_series_at_one_timestamp() {
        let report = collect_once("9.9.9-test");
        let json = serde_json::to_value(&report).unwrap();

        assert_eq!(json["inventory"]["agent_version"], "9.9.9-test");
        let series = json["series"].as_array().unwrap();
        assert!(series
            .iter()
            .any(|one| one["name"] == "system_cpu_utilization_ratio"));
        let first_timestamp = &series[0]["samples"][0]["timestamp_ms"];
        assert!(first_timestamp.as_i64().unwrap() > 0);
        for one in series {
            assert_eq!(&one["samples"][0]["timestamp_ms"], first_timestamp);
        }
    }
}
