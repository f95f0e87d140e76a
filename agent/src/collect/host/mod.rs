//! Host metrics through sysinfo: [`HostCollector`] keeps one `System`, `Disks`, `Networks`
//! and `Components` for the whole process and samples them once per tick.
//!
//! Long-lived handles matter: CPU utilization is the difference between two readings, and
//! sysinfo keeps per-process state between refreshes. Values are refreshed every tick; the
//! lists of filesystems and sensors, which rarely change and cost more to build, are re-read
//! every [`TICKS_BETWEEN_RELISTS`] ticks (the way ClementTsang/bottom does).
//!
//! One file per metric family, in the order a tick runs them: [`cpu`] (utilization and load
//! average), [`memory`] (RAM and swap), [`uptime`], [`filesystem`] (usage, and the filter
//! for pseudo filesystems), [`disk_io`], [`network`], [`sensors`], [`processes`]; then
//! [`inventory`] for what the machine is.

mod cpu;
mod disk_io;
mod filesystem;
mod inventory;
mod memory;
mod network;
mod processes;
mod sensors;
mod uptime;

use super::family::FamilyHealth;
use sysinfo::{Components, Disks, Networks, System};
use vigil_proto::model::{Inventory, Series};

/// How many ticks reuse the list of filesystems and sensors, and the processes found on top,
/// before they are read again. At the default 10 s interval a new USB disk or mount, or a
/// program grown large, shows up within a minute.
const TICKS_BETWEEN_RELISTS: u32 = 6;

/// Samples this machine's health; create one per process and call [`HostCollector::collect`]
/// once per tick. Blocking (it reads `/proc` or calls Windows APIs): run it off the async
/// executor's worker threads.
pub struct HostCollector {
    system: System,
    disks: Disks,
    networks: Networks,
    components: Components,
    /// Ticks collected since the filesystem and sensor lists were last read.
    ticks_since_relist: u32,
    /// The processes on top at the last full scan of them (one per relist).
    top_processes: processes::TopProcesses,
    family_health: FamilyHealth,
}

impl HostCollector {
    /// Reads every list once and takes the first CPU reading, so the next
    /// [`collect`](Self::collect), at least [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] later,
    /// has a meaningful utilization.
    pub fn new() -> Self {
        let mut system = System::new();
        cpu::refresh_cpu_usage(&mut system);
        system.refresh_memory();
        Self {
            system,
            disks: filesystem::list_filesystems(),
            networks: Networks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
            ticks_since_relist: 0,
            top_processes: processes::TopProcesses::default(),
            family_health: FamilyHealth::new(),
        }
    }

    /// One tick: every host series with exactly one sample at `timestamp_ms`. A family the
    /// operating system cannot serve is left out (and logged once); the rest still report.
    pub fn collect(&mut self, timestamp_ms: i64) -> Vec<Series> {
        let relist = self.ticks_since_relist >= TICKS_BETWEEN_RELISTS;
        self.ticks_since_relist = if relist {
            1
        } else {
            self.ticks_since_relist + 1
        };

        let Self {
            system,
            disks,
            networks,
            components,
            top_processes,
            family_health,
            ..
        } = self;
        let mut tick = Vec::new();
        family_health.run("cpu", timestamp_ms, &mut tick, |sink| {
            cpu::collect_cpu_utilization(system, sink)
        });
        #[cfg(not(windows))]
        family_health.run(
            "load_average",
            timestamp_ms,
            &mut tick,
            cpu::collect_load_average,
        );
        family_health.run("memory", timestamp_ms, &mut tick, |sink| {
            memory::collect_memory(system, sink)
        });
        family_health.run("uptime", timestamp_ms, &mut tick, uptime::collect_uptime);
        // The filesystem family refreshes `disks`; disk I/O reads the same refresh.
        family_health.run("filesystem", timestamp_ms, &mut tick, |sink| {
            filesystem::refresh_filesystems(disks, relist);
            filesystem::collect_filesystem_usage(disks, sink)
        });
        family_health.run("disk_io", timestamp_ms, &mut tick, |sink| {
            disk_io::collect_disk_io(disks, sink)
        });
        family_health.run("network", timestamp_ms, &mut tick, |sink| {
            network::collect_network_io(networks, sink)
        });
        family_health.run("sensors", timestamp_ms, &mut tick, |sink| {
            sensors::refresh_sensors(components, relist);
            sensors::collect_temperatures(components, sink)
        });
        family_health.run("processes", timestamp_ms, &mut tick, |sink| {
            top_processes.collect(system, relist, sink)
        });
        tick
    }

    /// What this machine is, for the hello at each connect. Re-reads the filesystem list so
    /// the disks are current even between relists.
    pub fn inventory(&mut self, agent_version: &str) -> Inventory {
        filesystem::refresh_filesystems(&mut self.disks, true);
        self.system.refresh_memory();
        inventory::describe_machine(&self.system, &self.disks, agent_version)
    }
}

impl Default for HostCollector {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use vigil_proto::convert::{is_valid_label_name, is_valid_metric_name};
    use vigil_proto::limits::MAX_VALUE_BYTES;
    use vigil_proto::model::Labels;

    const TIMESTAMP_MS: i64 = 1_754_000_000_000;

    fn values_of<'a>(series: &'a [Series], name: &str) -> Vec<(&'a Labels, f64)> {
        series
            .iter()
            .filter(|one| one.name == name)
            .map(|one| (&one.labels, one.samples[0].value))
            .collect()
    }

    fn single_value(series: &[Series], name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted = Labels::from_pairs(labels.iter().copied());
        let matching: Vec<f64> = values_of(series, name)
            .into_iter()
            .filter(|(labels, _)| **labels == wanted)
            .map(|(_, value)| value)
            .collect();
        assert_eq!(matching.len(), 1, "{name}{wanted} in {series:#?}");
        matching[0]
    }

    fn roughly_equal(left: f64, right: f64, tolerance: f64) -> bool {
        (left - right).abs() <= tolerance
    }

    #[test]
    fn host_collector_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<HostCollector>();
    }

    #[test]
    fn every_series_is_well_formed_and_unique_at_the_given_timestamp() {
        let mut collector = HostCollector::new();
        let series = collector.collect(TIMESTAMP_MS);

        assert!(!series.is_empty());
        let mut seen = HashSet::new();
        for one in &series {
            assert!(is_valid_metric_name(&one.name), "{}", one.name);
            for (label_name, label_value) in one.labels.iter() {
                assert!(
                    is_valid_label_name(label_name),
                    "{}{}",
                    one.name,
                    one.labels
                );
                assert!(!label_name.starts_with("__"));
                assert!(label_name != "host" && label_name != "client");
                assert!(label_value.len() <= MAX_VALUE_BYTES);
            }
            assert_eq!(one.samples.len(), 1, "{}{}", one.name, one.labels);
            assert_eq!(one.samples[0].timestamp_ms, TIMESTAMP_MS);
            assert!(one.samples[0].value.is_finite());
            assert!(
                seen.insert((one.name.clone(), one.labels.clone())),
                "duplicate {}{}",
                one.name,
                one.labels
            );
        }
    }

    #[test]
    fn cpu_utilization_is_one_ratio_between_zero_and_one() {
        let mut collector = HostCollector::new();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let series = collector.collect(TIMESTAMP_MS);

        let ratio = single_value(&series, "system_cpu_utilization_ratio", &[]);
        assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    }

    #[cfg(not(windows))]
    #[test]
    fn load_average_is_reported_where_the_os_has_one() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        assert!(single_value(&series, "system_load_average_1m", &[]) >= 0.0);
    }

    #[test]
    fn memory_used_and_available_add_up_to_the_limit() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);

        let used = single_value(&series, "system_memory_usage_bytes", &[("state", "used")]);
        let available = single_value(
            &series,
            "system_memory_usage_bytes",
            &[("state", "available")],
        );
        let limit = single_value(&series, "system_memory_limit_bytes", &[]);
        assert!(limit > 0.0);
        assert!(used > 0.0 && available >= 0.0);
        assert!(
            roughly_equal(used + available, limit, limit * 0.01),
            "{used} + {available} vs {limit}"
        );
        assert!(single_value(&series, "system_swap_usage_bytes", &[]) >= 0.0);
    }

    #[test]
    fn uptime_is_positive() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        assert!(single_value(&series, "system_uptime_seconds", &[]) > 0.0);
    }

    #[test]
    fn each_filesystem_has_used_and_free_adding_up_to_its_limit() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);

        let limits = values_of(&series, "system_filesystem_limit_bytes");
        for (labels, limit) in &limits {
            let mountpoint = labels.get("mountpoint").unwrap();
            let used = single_value(
                &series,
                "system_filesystem_usage_bytes",
                &[("mountpoint", mountpoint), ("state", "used")],
            );
            let free = single_value(
                &series,
                "system_filesystem_usage_bytes",
                &[("mountpoint", mountpoint), ("state", "free")],
            );
            assert!(*limit > 0.0);
            assert!(used >= 0.0 && free >= 0.0);
            // Two statvfs calls apart at most; a busy disk may move a little in between.
            assert!(
                roughly_equal(used + free, *limit, limit * 0.01),
                "{mountpoint}"
            );
        }
        let usage_count = values_of(&series, "system_filesystem_usage_bytes").len();
        assert_eq!(usage_count, 2 * limits.len());
    }

    /// What `/proc/mounts` says is mounted on `/`, read here independently of sysinfo.
    #[cfg(target_os = "linux")]
    fn root_filesystem_type() -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        // The last mount on `/` is the visible one.
        mounts.lines().rev().find_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mountpoint = fields.next()?;
            let filesystem_type = fields.next()?;
            (mountpoint == "/").then(|| filesystem_type.to_owned())
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn root_is_reported_exactly_when_it_is_a_real_filesystem() {
        let Some(root_type) = root_filesystem_type() else {
            return;
        };
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        let root_limits: Vec<_> = values_of(&series, "system_filesystem_limit_bytes")
            .into_iter()
            .filter(|(labels, _)| labels.get("mountpoint") == Some("/"))
            .collect();
        let expected = usize::from(!filesystem::is_pseudo_filesystem(&root_type));
        assert_eq!(root_limits.len(), expected, "root is {root_type}");
    }

    #[test]
    fn loopback_is_not_reported_and_every_device_has_both_directions() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        let mut directions_by_device: HashMap<String, Vec<String>> = HashMap::new();
        for (labels, value) in values_of(&series, "system_network_io_bytes_total") {
            assert!(value >= 0.0);
            directions_by_device
                .entry(labels.get("device").unwrap().to_owned())
                .or_default()
                .push(labels.get("direction").unwrap().to_owned());
        }
        assert!(!directions_by_device.contains_key("lo"));
        for (device, mut directions) in directions_by_device {
            directions.sort();
            assert_eq!(directions, ["receive", "transmit"], "{device}");
        }
    }

    /// Reads a counter of the kernel's directly, to compare with what the agent reports.
    #[cfg(target_os = "linux")]
    fn kernel_received_bytes(device: &str) -> Option<f64> {
        let path = format!("/sys/class/net/{device}/statistics/rx_bytes");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn network_counters_are_totals_since_boot_not_deltas_since_the_last_tick() {
        let mut collector = HostCollector::new();
        let devices: Vec<String> = collector
            .collect(TIMESTAMP_MS)
            .iter()
            .filter(|one| one.name == "system_network_io_bytes_total")
            .filter_map(|one| one.labels.get("device").map(str::to_owned))
            .collect();
        let kernel_before: HashMap<String, f64> = devices
            .iter()
            .filter_map(|device| Some((device.clone(), kernel_received_bytes(device)?)))
            .collect();

        let series = collector.collect(TIMESTAMP_MS + 10_000);
        for (device, before) in kernel_before {
            let reported = single_value(
                &series,
                "system_network_io_bytes_total",
                &[("device", &device), ("direction", "receive")],
            );
            // A delta since the previous tick would be far below the kernel's running total.
            assert!(
                reported >= before,
                "{device}: reported {reported}, kernel had {before}"
            );
        }
    }

    #[test]
    fn io_counters_never_go_down_between_ticks() {
        let mut collector = HostCollector::new();
        let first = collector.collect(TIMESTAMP_MS);
        let second = collector.collect(TIMESTAMP_MS + 10_000);
        for name in [
            "system_network_io_bytes_total",
            "system_disk_io_bytes_total",
        ] {
            for (labels, earlier) in values_of(&first, name) {
                let later: Vec<f64> = values_of(&second, name)
                    .into_iter()
                    .filter(|(other, _)| *other == labels)
                    .map(|(_, value)| value)
                    .collect();
                if let [later] = later[..] {
                    assert!(later >= earlier, "{name}{labels}: {earlier} then {later}");
                }
            }
        }
    }

    #[test]
    fn at_most_ten_processes_each_named_once() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        let processes = values_of(&series, "process_memory_rss_bytes");

        // The test runner itself is a process with resident memory.
        assert!(!processes.is_empty());
        assert!(processes.len() <= processes::TOP_PROCESS_COUNT);
        let names: HashSet<&str> = processes
            .iter()
            .map(|(labels, _)| labels.get("process").unwrap())
            .collect();
        assert_eq!(names.len(), processes.len());
        assert!(processes.iter().all(|(_, rss)| *rss > 0.0));
    }

    #[test]
    fn every_process_is_read_once_per_relist_and_the_ones_on_top_every_tick() {
        let mut collector = HostCollector::new();
        collector.collect(TIMESTAMP_MS);
        let all = collector.top_processes.last_read();
        assert_eq!(
            all,
            collector.system.processes().len(),
            "the first tick reads them all"
        );
        let on_top = collector.top_processes.pids_on_top();
        assert!(on_top > 0 && on_top <= all, "{on_top} on top of {all}");
        for tick in 1..TICKS_BETWEEN_RELISTS {
            let series = collector.collect(TIMESTAMP_MS + tick as i64 * 10_000);
            assert!(!values_of(&series, "process_memory_rss_bytes").is_empty());
            // Only the processes on top (fewer if one of them ended).
            let read = collector.top_processes.last_read();
            assert!(read <= on_top, "tick {tick}: read {read}, {on_top} on top");
        }
        collector.collect(TIMESTAMP_MS + 60_000);
        let rescanned = collector.top_processes.last_read();
        assert_eq!(
            rescanned,
            collector.system.processes().len(),
            "the relist reads every process of the machine"
        );
    }

    #[test]
    fn temperatures_when_present_are_plausible_and_named() {
        let series = HostCollector::new().collect(TIMESTAMP_MS);
        for (labels, celsius) in values_of(&series, "system_temperature_celsius") {
            assert!(!labels.get("sensor").unwrap().is_empty());
            assert!((-100.0..=300.0).contains(&celsius), "{labels} {celsius}");
        }
    }

    #[test]
    fn relisting_keeps_the_same_series_families() {
        let mut collector = HostCollector::new();
        let mut family_names = Vec::new();
        for tick in 0..=TICKS_BETWEEN_RELISTS {
            let series = collector.collect(TIMESTAMP_MS + i64::from(tick) * 10_000);
            let mut names: Vec<String> = series
                .iter()
                .filter(|one| one.name.starts_with("system_"))
                .map(|one| one.name.clone())
                .collect();
            names.sort();
            names.dedup();
            family_names.push(names);
        }
        assert!(
            family_names.windows(2).all(|pair| pair[0] == pair[1]),
            "{family_names:?}"
        );
    }

    #[test]
    fn inventory_describes_this_machine() {
        let mut collector = HostCollector::new();
        let series = collector.collect(TIMESTAMP_MS);
        let inventory = collector.inventory("1.2.3");

        assert_eq!(inventory.agent_version, "1.2.3");
        assert_eq!(inventory.architecture, std::env::consts::ARCH);
        assert!(!inventory.hostname.is_empty());
        assert!(!inventory.os_name.is_empty());
        assert!(inventory.cpu_cores >= 1);
        assert!(inventory.boot_time_unix_seconds > 0);
        assert!(inventory.boot_time_unix_seconds <= crate::collect::unix_now_ms() / 1000);
        let limit = single_value(&series, "system_memory_limit_bytes", &[]);
        assert_eq!(inventory.memory_bytes as f64, limit);

        let mut inventory_mountpoints: Vec<&str> = inventory
            .disks
            .iter()
            .map(|disk| disk.mountpoint.as_str())
            .collect();
        let mut reported_mountpoints: Vec<&str> =
            values_of(&series, "system_filesystem_limit_bytes")
                .into_iter()
                .map(|(labels, _)| labels.get("mountpoint").unwrap())
                .collect();
        inventory_mountpoints.sort();
        reported_mountpoints.sort();
        assert_eq!(inventory_mountpoints, reported_mountpoints);
        assert!(inventory
            .disks
            .iter()
            .all(|disk| disk.total_bytes > 0 && !disk.filesystem.is_empty()));
    }
}
