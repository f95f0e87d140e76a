//! What one simulated host reports: the agent's real series catalog (names and labels as
//! `vigil-agent` writes them, see agent/src/collect/) with plausible, slowly moving values.
//!
//! A host has several filesystems, NICs and disks, SMART attributes per disk, its top ten
//! processes by memory and a list of services; two hosts in three look like Windows PCs,
//! the rest like Linux servers. Values are rounded the way the agent's sources round them
//! (bytes are integers, CPU is a percent in `f32` over 100, load has two decimals), because
//! that is what decides how well the store compresses them. Each host is seeded by its
//! index and each value is a function of the time, so two runs report the same values and
//! a batch can be made again from its timestamp.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How one series moves from tick to tick.
#[derive(Debug, Clone, Copy)]
enum Motion {
    /// A value that does not change (a limit, a healthy flag, a counter of rare events).
    Constant,
    /// A CPU ratio: a percent in `f32`, wandering around its start, divided by 100.
    CpuRatio,
    /// A gauge wandering by up to `step` (a fraction of its value) each tick, kept within
    /// `[low, high]`, rounded to `decimals`.
    Wander {
        step: f64,
        low: f64,
        high: f64,
        decimals: i32,
    },
    /// A counter growing by about `per_second` each second.
    Counter { per_second: f64 },
    /// Seconds since boot.
    Uptime,
    /// A filesystem's free bytes: the series `limit` less the series `used`.
    FreeOf { limit: usize, used: usize },
    /// A filesystem's used bytes, creeping up by `per_second` on average.
    Creep { per_second: f64 },
}

/// One series of the catalog.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    motion: Motion,
}

/// A simulated host: its catalog and the current value of each series.
#[derive(Debug)]
pub struct HostSeries {
    pub specs: Vec<SeriesSpec>,
    /// Each series' level, around which it moves.
    start: Vec<f64>,
    /// The values of the last [`HostSeries::values_at`].
    values: Vec<f64>,
    seed: u64,
    pub windows: bool,
}

const WINDOWS_SERVICES: &[&str] = &[
    "Dhcp",
    "Dnscache",
    "EventLog",
    "LanmanServer",
    "LanmanWorkstation",
    "mpssvc",
    "Schedule",
    "Spooler",
    "W32Time",
    "WinDefend",
    "wuauserv",
    "BITS",
    "CryptSvc",
    "RpcSs",
    "SamSs",
    "Winmgmt",
    "TermService",
    "WinRM",
    "VSS",
    "MSSQLSERVER",
    "SQLSERVERAGENT",
    "VeeamBackupSvc",
    "W3SVC",
    "WAS",
    "DFSR",
    "NTDS",
    "DNS",
    "Netlogon",
    "IKEEXT",
    "PolicyAgent",
    "gpsvc",
    "ProfSvc",
    "Themes",
    "AudioSrv",
    "BFE",
    "DcomLaunch",
    "EventSystem",
    "FontCache",
    "iphlpsvc",
    "LSM",
    "NlaSvc",
    "nsi",
    "Power",
    "SENS",
    "ShellHWDetection",
    "SysMain",
    "TrkWks",
    "UserManager",
    "Wcmsvc",
    "WdiServiceHost",
];
const LINUX_SERVICES: &[&str] = &[
    "sshd",
    "cron",
    "systemd-journald",
    "systemd-logind",
    "systemd-networkd",
    "systemd-resolved",
    "systemd-timesyncd",
    "rsyslog",
    "dbus",
    "nginx",
    "postgresql",
    "redis-server",
    "docker",
    "containerd",
    "fail2ban",
    "unattended-upgrades",
    "smartd",
    "chrony",
    "postfix",
    "nfs-server",
    "rpcbind",
    "apache2",
    "mariadb",
    "php8.2-fpm",
    "prometheus-node-exporter",
    "vigil-agent",
    "zfs-zed",
    "lvm2-monitor",
    "multipathd",
    "udisks2",
    "polkit",
    "snapd",
    "cups",
    "avahi-daemon",
    "bluetooth",
    "ModemManager",
    "NetworkManager",
    "wpa_supplicant",
    "accounts-daemon",
    "irqbalance",
    "haveged",
    "atd",
    "auditd",
    "apparmor",
    "named",
    "isc-dhcp-server",
    "samba",
    "winbind",
];
const WINDOWS_PROCESSES: &[&str] = &[
    "sqlservr.exe",
    "MsMpEng.exe",
    "svchost.exe",
    "explorer.exe",
    "chrome.exe",
    "OUTLOOK.EXE",
    "Teams.exe",
    "w3wp.exe",
    "lsass.exe",
    "vigil-agent.exe",
];
const LINUX_PROCESSES: &[&str] = &[
    "postgres",
    "java",
    "nginx",
    "dockerd",
    "containerd",
    "systemd-journal",
    "redis-server",
    "php-fpm8.2",
    "sshd",
    "vigil-agent",
];

impl HostSeries {
    /// The catalog of simulated host `index`, cut or padded (with more services) to exactly
    /// `n_series` series.
    pub fn new(index: usize, n_series: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(0x5EED_0000 + index as u64);
        let windows = index % 3 != 2;
        let gib = 1024.0 * 1024.0 * 1024.0;
        let memory_gib = [8.0, 16.0, 32.0, 64.0][rng.random_range(0..4)];
        let mut specs = Vec::new();
        let mut values = Vec::new();
        let mut push =
            |name: &'static str, labels: &[(&'static str, &str)], motion: Motion, start: f64| {
                specs.push(SeriesSpec {
                    name,
                    labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                    motion,
                });
                values.push(start);
                values.len() - 1
            };
        let wander = |step, low, high, decimals| Motion::Wander {
            step,
            low,
            high,
            decimals,
        };
        push(
            "system_cpu_utilization_ratio",
            &[],
            Motion::CpuRatio,
            rng.random_range(0.02..0.4),
        );
        push(
            "system_load_average_1m",
            &[],
            wander(0.1, 0.0, 16.0, 2),
            rng.random_range(0.1..3.0),
        );
        let memory = memory_gib * gib;
        let used = (memory * rng.random_range(0.3..0.8f64)).round();
        push(
            "system_memory_usage_bytes",
            &[("state", "used")],
            wander(0.01, memory * 0.1, memory * 0.95, 0),
            used,
        );
        push(
            "system_memory_usage_bytes",
            &[("state", "available")],
            wander(0.01, memory * 0.05, memory * 0.9, 0),
            (memory - used).round(),
        );
        push("system_memory_limit_bytes", &[], Motion::Constant, memory);
        push(
            "system_swap_usage_bytes",
            &[],
            wander(0.002, 0.0, gib * 4.0, 0),
            (rng.random_range(0.0..0.5f64) * gib).round(),
        );
        push(
            "system_uptime_seconds",
            &[],
            Motion::Uptime,
            rng.random_range(3600..40 * 86400) as f64,
        );
        for sensor in ["Package id 0", "Core 0", "Core 1", "Composite"] {
            push(
                "system_temperature_celsius",
                &[("sensor", sensor)],
                wander(0.02, 25.0, 95.0, 0),
                rng.random_range(35.0..60.0f64).round(),
            );
        }
        let mountpoints: &[&str] = if windows {
            &["C:\\", "D:\\", "E:\\", "F:\\"]
        } else {
            &["/", "/boot", "/var", "/home"]
        };
        for mountpoint in mountpoints {
            let limit = [128.0, 256.0, 512.0, 1024.0][rng.random_range(0..4)] * gib;
            let used_bytes = (limit * rng.random_range(0.2..0.85f64)).round();
            let limit_index = push(
                "system_filesystem_limit_bytes",
                &[("mountpoint", mountpoint)],
                Motion::Constant,
                limit,
            );
            let used_index = push(
                "system_filesystem_usage_bytes",
                &[("mountpoint", mountpoint), ("state", "used")],
                Motion::Creep {
                    per_second: rng.random_range(0.0..20_000.0),
                },
                used_bytes,
            );
            push(
                "system_filesystem_usage_bytes",
                &[("mountpoint", mountpoint), ("state", "free")],
                Motion::FreeOf {
                    limit: limit_index,
                    used: used_index,
                },
                limit - used_bytes,
            );
        }
        let nics: &[&str] = if windows {
            &["Ethernet", "Wi-Fi", "vEthernet (Default Switch)"]
        } else {
            &["eth0", "eth1", "docker0"]
        };
        for device in nics {
            let rate: f64 = rng.random_range(1_000.0..2_000_000.0);
            for direction in ["receive", "transmit"] {
                push(
                    "system_network_io_bytes_total",
                    &[("device", device), ("direction", direction)],
                    Motion::Counter { per_second: rate },
                    rng.random_range(1e9..1e12f64).round(),
                );
            }
        }
        let disks: &[&str] = if windows {
            &["PhysicalDrive0", "PhysicalDrive1", "PhysicalDrive2"]
        } else {
            &["nvme0n1", "sda", "sdb"]
        };
        for device in disks {
            let rate: f64 = rng.random_range(10_000.0..5_000_000.0);
            for direction in ["read", "write"] {
                push(
                    "system_disk_io_bytes_total",
                    &[("device", device), ("direction", direction)],
                    Motion::Counter { per_second: rate },
                    rng.random_range(1e9..1e12f64).round(),
                );
            }
        }
        for device in disks {
            push(
                "disk_smart_healthy",
                &[("device", device)],
                Motion::Constant,
                1.0,
            );
            push(
                "disk_smart_reallocated_sectors",
                &[("device", device)],
                Motion::Constant,
                [0.0, 0.0, 0.0, 8.0][rng.random_range(0..4)],
            );
            push(
                "disk_smart_pending_sectors",
                &[("device", device)],
                Motion::Constant,
                0.0,
            );
        }
        push(
            "disk_smart_percentage_used",
            &[("device", disks[0])],
            Motion::Constant,
            rng.random_range(1..40) as f64,
        );
        let processes = if windows {
            WINDOWS_PROCESSES
        } else {
            LINUX_PROCESSES
        };
        for process in processes {
            let rss = rng.random_range(20.0..2048.0f64) * 1024.0 * 1024.0;
            push(
                "process_memory_rss_bytes",
                &[("process", process)],
                wander(0.01, rss * 0.5, rss * 2.0, 0),
                rss.round(),
            );
        }
        push(
            "backup_last_success_timestamp_seconds",
            &[("job", "nightly")],
            Motion::Constant,
            1_765_000_000.0,
        );
        push(
            "system_updates_pending",
            &[],
            Motion::Constant,
            rng.random_range(0..12) as f64,
        );
        push("system_reboot_required", &[], Motion::Constant, 0.0);
        let services = if windows {
            WINDOWS_SERVICES
        } else {
            LINUX_SERVICES
        };
        let mut extra = 0;
        while specs.len() < n_series {
            let service: String = match services.get(extra) {
                Some(name) => (*name).to_string(),
                None => format!("app-service-{extra}"),
            };
            extra += 1;
            specs.push(SeriesSpec {
                name: "service_up",
                labels: vec![("service", service)],
                motion: Motion::Constant,
            });
            values.push(1.0);
        }
        specs.truncate(n_series);
        values.truncate(n_series);
        Self {
            start: values.clone(),
            values,
            specs,
            seed: 0x5EED_0000 + index as u64,
            windows,
        }
    }

    /// The value of every series at grid time `timestamp_ms`, in catalog order, for an
    /// agent ticking every `interval_seconds`.
    ///
    /// Values are a function of the time alone (daily-ish waves, hashed jitter, counters
    /// that grow with time), so a batch sent again after a reconnect, or a day of backlog,
    /// is made anew from its timestamp instead of being kept in memory.
    pub fn values_at(&mut self, timestamp_ms: i64, interval_seconds: f64) -> &[f64] {
        let seconds = timestamp_ms as f64 / 1000.0;
        let since_reference = seconds - REFERENCE_SECONDS;
        for index in 0..self.specs.len() {
            let base = self.start[index];
            let series_seed = self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let noise = unit_noise(series_seed, timestamp_ms);
            let period = 3600.0 * (1.0 + (series_seed % 23) as f64);
            let phase = (series_seed % 1000) as f64 / 1000.0 * std::f64::consts::TAU;
            let wave = (std::f64::consts::TAU * seconds / period + phase).sin();
            self.values[index] = match self.specs[index].motion {
                Motion::Constant => base,
                Motion::CpuRatio => {
                    let percent =
                        (base * 100.0 * (1.0 + 0.5 * wave) + 3.0 * noise).clamp(0.5, 99.0);
                    f64::from(percent as f32) / 100.0
                }
                Motion::Wander {
                    step,
                    low,
                    high,
                    decimals,
                } => {
                    let moved = base * (1.0 + (step * 10.0).min(0.3) * wave + step * noise);
                    let scale = 10f64.powi(decimals);
                    (moved.clamp(low, high) * scale).round() / scale
                }
                // Jitter within 80 % of one interval's growth keeps the counter monotonic.
                Motion::Counter { per_second } => (base
                    + per_second * since_reference.max(0.0)
                    + per_second * interval_seconds * 0.4 * noise)
                    .round()
                    .max(0.0),
                // A reboot every 30 days, at a time of its own.
                Motion::Uptime => (seconds + base).rem_euclid(30.0 * 86_400.0).floor(),
                // Grows, and is cleaned up once every 30 days.
                Motion::Creep { per_second } => (base
                    + per_second * since_reference.max(0.0).rem_euclid(30.0 * 86_400.0)
                    + 4096.0 * (noise * 16.0).round())
                .max(0.0),
                // Computed after its inputs, which come earlier in the catalog.
                Motion::FreeOf { limit, used } => {
                    let used_bytes = self.values[used].min(self.values[limit]);
                    self.values[used] = used_bytes;
                    self.values[limit] - used_bytes
                }
            };
        }
        &self.values
    }
}

/// Where counters start counting: 2025-12-01T00:00:00Z.
const REFERENCE_SECONDS: f64 = 1_764_547_200.0;

/// A number in `[-1, 1)` from a seed and a time: the same inputs give the same number.
fn unit_noise(seed: u64, timestamp_ms: i64) -> f64 {
    // splitmix64
    let mut z = seed ^ (timestamp_ms as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_host_reports_exactly_the_series_asked_for_with_distinct_label_sets() {
        for n in [10, 58, 100, 300] {
            let host = HostSeries::new(7, n);
            assert_eq!(host.specs.len(), n);
            let distinct: HashSet<_> = host
                .specs
                .iter()
                .map(|spec| (spec.name, spec.labels.clone()))
                .collect();
            assert_eq!(distinct.len(), n, "{n} series");
            for spec in &host.specs {
                assert!(
                    vigil_proto::convert::is_valid_metric_name(spec.name),
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn values_depend_on_the_time_alone_counters_grow_and_free_space_is_the_limit_less_the_used() {
        let mut host = HostSeries::new(3, 100);
        let before = host.values_at(1_780_000_000_000, 10.0).to_vec();
        let after = host.values_at(1_780_000_010_000, 10.0).to_vec();
        assert_eq!(host.values_at(1_780_000_000_000, 10.0), &before[..]);
        for (index, spec) in host.specs.iter().enumerate() {
            if spec.name.ends_with("_total") {
                assert!(after[index] > before[index], "{}", spec.name);
            }
            if spec.name == "system_filesystem_usage_bytes"
                && spec.labels.contains(&("state", "free".to_string()))
            {
                assert_eq!(after[index - 2], after[index - 1] + after[index]);
            }
            if spec.name == "system_cpu_utilization_ratio" {
                assert!((0.0..=1.0).contains(&after[index]));
            }
        }
    }
}
