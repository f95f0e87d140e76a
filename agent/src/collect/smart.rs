//! SMART and NVMe health through smartctl (smartmontools), when it is installed:
//! `disk_smart_healthy{device}`, `disk_smart_reallocated_sectors{device}`,
//! `disk_smart_pending_sectors{device}`, `disk_smart_media_errors_total{device}` and
//! `disk_smart_percentage_used{device}`.
//!
//! Each round finds the disks with `smartctl --scan-open --json` (or takes the configured
//! ones) and reads each with `smartctl --json -a -n standby`, which leaves a sleeping disk
//! asleep — its last readings are kept. The JSON is parsed with serde into only the fields
//! used here. Without smartctl the check says so once and the rest of the agent goes on.
//! Reading SMART needs root (or `CAP_SYS_RAWIO` for ATA and `CAP_SYS_ADMIN` for NVMe); a
//! disk that cannot be opened is reported with that hint.

use super::checks::{Board, Outcome, Reading};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_proto::config_file;

/// How long one smartctl run may take; a disk behind a slow bridge can take seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where smartctl is looked for besides `PATH` (a service's `PATH` may lack the sbin folders).
#[cfg(not(windows))]
const SMARTCTL_LOCATIONS: &[&str] = &[
    "/usr/sbin/smartctl",
    "/usr/local/sbin/smartctl",
    "/sbin/smartctl",
];
#[cfg(windows)]
const SMARTCTL_LOCATIONS: &[&str] = &[r"C:\Program Files\smartmontools\bin\smartctl.exe"];

/// ATA attributes: reallocated sectors and sectors waiting to be remapped.
const ATA_REALLOCATED_SECTORS: u32 = 5;
const ATA_PENDING_SECTORS: u32 = 197;

/// `[checks.smart]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// Whether disk health is reported. Default: true (when smartctl is installed; the agent
    /// says once when it is not).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The disks to read, e.g. `["/dev/sda", "/dev/nvme0"]`. Default: every disk
    /// `smartctl --scan-open` finds.
    #[serde(default)]
    pub devices: Option<Vec<String>>,
    /// How often to read. Default: "10m". SMART values move slowly, and disks in standby are
    /// not woken.
    #[serde(
        default = "default_interval",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub interval: Duration,
    /// The smartctl program. Default: found in `PATH`, `/usr/sbin`, `/usr/local/sbin` or
    /// `/sbin` (`C:\Program Files\smartmontools\bin` on Windows).
    #[serde(default)]
    pub smartctl: Option<PathBuf>,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            devices: None,
            interval: default_interval(),
            smartctl: None,
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_secs(600)
}

impl SmartConfig {
    pub(crate) fn problems(&self, key: &str, problems: &mut Vec<String>) {
        for device in self.devices.iter().flatten() {
            if device.is_empty()
                || device.starts_with('-')
                || device.chars().any(char::is_whitespace)
            {
                problems.push(format!(
                    "{key}.devices: {device:?} is not a device path; write e.g. \"/dev/sda\""
                ));
            }
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&self.interval) {
            problems.push(format!(
                "{key}.interval = {:?} must be from 1m to 24h",
                humantime::format_duration(self.interval).to_string()
            ));
        }
    }

    /// Reads every interval until `shutdown`, posting to `board`.
    pub(crate) async fn run(self, board: Arc<Board>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The last readings per device, kept while a disk sleeps.
        let mut last: BTreeMap<String, Outcome> = BTreeMap::new();
        let mut reported_no_disks = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let round = tokio::select! {
                _ = shutdown.cancelled() => return,
                round = self.round(&mut last) => round,
            };
            let families = match round {
                Ok(devices) => {
                    if devices.is_empty() && !reported_no_disks {
                        tracing::info!("smartctl found no disk to read");
                        reported_no_disks = true;
                    }
                    devices
                }
                Err(error) => vec![("smart".to_owned(), Err(error))],
            };
            // Long enough for every disk to take its time.
            let fresh_for = self.interval * 2 + COMMAND_TIMEOUT * (families.len() as u32 + 2);
            board.post("smart", families, Some(fresh_for));
        }
    }

    /// One reading of every disk: a family per disk.
    async fn round(
        &self,
        last: &mut BTreeMap<String, Outcome>,
    ) -> Result<Vec<(String, Outcome)>, String> {
        let smartctl = locate_smartctl(self.smartctl.as_deref())?;
        let devices = match &self.devices {
            Some(devices) => devices
                .iter()
                .map(|name| ScannedDevice {
                    name: name.clone(),
                    kind: None,
                    open_error: None,
                })
                .collect(),
            None => {
                let output = run_smartctl(&smartctl, &["--scan-open", "--json"]).await?;
                parse_scan(&output)?
            }
        };
        let mut families = Vec::new();
        let mut current = BTreeMap::new();
        for device in devices {
            let label = device_label(&device.name, device.kind.as_deref());
            let outcome = match &device.open_error {
                Some(error) => Err(format!(
                    "smartctl cannot open {}: {error}{}",
                    device.name,
                    permission_hint(error)
                )),
                None => {
                    let mut args = vec!["--json", "-a", "-n", "standby"];
                    if let Some(kind) = &device.kind {
                        args.extend(["-d", kind]);
                    }
                    args.push(&device.name);
                    match run_smartctl(&smartctl, &args).await {
                        Err(error) => Err(error),
                        Ok(output) => match parse_report(&output, &label) {
                            Ok(DeviceHealth::Asleep) => {
                                last.get(&label).cloned().unwrap_or_else(|| Ok(Vec::new()))
                            }
                            Ok(DeviceHealth::Read(readings)) => Ok(readings),
                            Err(error) => Err(format!("{}: {error}", device.name)),
                        },
                    }
                }
            };
            current.insert(label.clone(), outcome.clone());
            families.push((format!("smart {label}"), outcome));
        }
        *last = current;
        Ok(families)
    }
}

/// Finds smartctl: the configured path, else `PATH`, else the usual sbin folders.
fn locate_smartctl(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "checks.smart.smartctl = '{}' does not exist; install smartmontools or fix the path",
                path.display()
            ))
        };
    }
    let program = if cfg!(windows) {
        "smartctl.exe"
    } else {
        "smartctl"
    };
    let in_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|folder| folder.join(program))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(SMARTCTL_LOCATIONS.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "smartctl is not installed (looked in PATH and {}); install smartmontools to report disk health, or set checks.smart.enabled = false",
                SMARTCTL_LOCATIONS.join(", ")
            )
        })
}

async fn run_smartctl(smartctl: &Path, args: &[&str]) -> Result<String, String> {
    let mut command = tokio::process::Command::new(smartctl);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
        Err(_) => Err(format!(
            "`smartctl {}` did not finish within {} s",
            args.join(" "),
            COMMAND_TIMEOUT.as_secs()
        )),
        Ok(Err(error)) => Err(format!("cannot run '{}': {error}", smartctl.display())),
        // smartctl's exit status is a bit mask that is often non-zero for a readable disk
        // (a failing attribute, an error in the log): the JSON tells what happened.
        Ok(Ok(output)) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
    }
}

fn permission_hint(error: &str) -> &'static str {
    if error.contains("Permission denied") || error.contains("Operation not permitted") {
        "; the agent needs root, or CAP_SYS_RAWIO (ATA) and CAP_SYS_ADMIN (NVMe), to read SMART"
    } else {
        ""
    }
}

/// The `device` label: the device path without `/dev/`, and the device type when it picks a
/// disk behind a RAID controller (`bus/0:megaraid,0`).
fn device_label(name: &str, kind: Option<&str>) -> String {
    let short = name.strip_prefix("/dev/").unwrap_or(name);
    match kind {
        Some(kind) if kind.contains(',') => format!("{short}:{kind}"),
        _ => short.to_owned(),
    }
}

/// smartctl's JSON, only the parts used here; everything else is ignored.
#[derive(Debug, Deserialize)]
struct SmartctlOutput {
    #[serde(default)]
    smartctl: SmartctlSection,
    #[serde(default)]
    devices: Vec<ScannedDeviceJson>,
    smart_status: Option<SmartStatus>,
    ata_smart_attributes: Option<AtaAttributes>,
    nvme_smart_health_information_log: Option<NvmeHealthLog>,
    scsi_grown_defect_list: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct SmartctlSection {
    #[serde(default)]
    exit_status: u32,
    #[serde(default)]
    messages: Vec<SmartctlMessage>,
}

#[derive(Debug, Deserialize)]
struct SmartctlMessage {
    string: String,
}

#[derive(Debug, Deserialize)]
struct ScannedDeviceJson {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    open_error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SmartStatus {
    passed: bool,
}

#[derive(Debug, Deserialize)]
struct AtaAttributes {
    table: Vec<AtaAttribute>,
}

#[derive(Debug, Deserialize)]
struct AtaAttribute {
    id: u32,
    raw: AtaRaw,
}

#[derive(Debug, Deserialize)]
struct AtaRaw {
    value: u64,
    #[serde(default)]
    string: String,
}

impl AtaRaw {
    /// The count as smartctl prints it. Some drives pack more than the count into the 48-bit
    /// raw value; the printed form's first number is the count.
    fn count(&self) -> u64 {
        self.string
            .split(|c: char| !c.is_ascii_digit())
            .find(|part| !part.is_empty())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(self.value)
    }
}

#[derive(Debug, Deserialize)]
struct NvmeHealthLog {
    percentage_used: Option<u64>,
    media_errors: Option<u64>,
}

/// A disk found by `smartctl --scan-open`.
#[derive(Debug, Clone, PartialEq)]
struct ScannedDevice {
    name: String,
    /// smartctl's device type (`sat`, `nvme`, `megaraid,0`), passed back with `-d`.
    kind: Option<String>,
    open_error: Option<String>,
}

fn parse_scan(json: &str) -> Result<Vec<ScannedDevice>, String> {
    let output: SmartctlOutput = serde_json::from_str(json)
        .map_err(|error| format!("`smartctl --scan-open --json` printed no JSON: {error}"))?;
    Ok(output
        .devices
        .into_iter()
        .map(|device| ScannedDevice {
            name: device.name,
            kind: device.kind,
            open_error: device.open_error,
        })
        .collect())
}

/// What one `smartctl --json -a -n standby` said about a disk.
#[derive(Debug, PartialEq)]
enum DeviceHealth {
    /// In standby: not woken, nothing read.
    Asleep,
    Read(Vec<Reading>),
}

/// Parses one disk's report into readings labelled with `device`.
fn parse_report(json: &str, device: &str) -> Result<DeviceHealth, String> {
    let output: SmartctlOutput = serde_json::from_str(json)
        .map_err(|error| format!("smartctl printed no JSON report: {error}"))?;
    let messages: Vec<&str> = output
        .smartctl
        .messages
        .iter()
        .map(|message| message.string.as_str())
        .collect();
    // Bits 0 and 1: the command line was refused, or the device could not be opened (which
    // is also how `-n standby` says that the disk sleeps).
    if output.smartctl.exit_status & 0b11 != 0 {
        if messages
            .iter()
            .any(|message| message.contains("STANDBY") || message.contains("SLEEP"))
        {
            return Ok(DeviceHealth::Asleep);
        }
        let text = if messages.is_empty() {
            format!(
                "smartctl exited with status {}",
                output.smartctl.exit_status
            )
        } else {
            messages.join("; ")
        };
        let hint = permission_hint(&text);
        return Err(format!("{text}{hint}"));
    }
    let labels = [("device", device)];
    let mut readings = Vec::new();
    if let Some(status) = &output.smart_status {
        readings.push(Reading::new(
            "disk_smart_healthy",
            &labels,
            f64::from(u8::from(status.passed)),
        ));
    }
    if let Some(attributes) = &output.ata_smart_attributes {
        for attribute in &attributes.table {
            let name = match attribute.id {
                ATA_REALLOCATED_SECTORS => "disk_smart_reallocated_sectors",
                ATA_PENDING_SECTORS => "disk_smart_pending_sectors",
                _ => continue,
            };
            readings.push(Reading::new(name, &labels, attribute.raw.count() as f64));
        }
    }
    if let Some(defects) = output.scsi_grown_defect_list {
        readings.push(Reading::new(
            "disk_smart_reallocated_sectors",
            &labels,
            defects as f64,
        ));
    }
    if let Some(log) = &output.nvme_smart_health_information_log {
        if let Some(media_errors) = log.media_errors {
            readings.push(Reading::new(
                "disk_smart_media_errors_total",
                &labels,
                media_errors as f64,
            ));
        }
        if let Some(percentage_used) = log.percentage_used {
            readings.push(Reading::new(
                "disk_smart_percentage_used",
                &labels,
                percentage_used as f64,
            ));
        }
    }
    if readings.is_empty() {
        return Err(
            "smartctl reported no SMART health for this disk (SMART unsupported or disabled, or a USB bridge that hides it)"
                .into(),
        );
    }
    Ok(DeviceHealth::Read(readings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDD: &str = include_str!("../../tests/data/smartctl-hdd.json");
    const NVME: &str = include_str!("../../tests/data/smartctl-nvme.json");

    fn values(health: DeviceHealth) -> Vec<(&'static str, f64)> {
        match health {
            DeviceHealth::Read(readings) => readings
                .into_iter()
                .map(|reading| {
                    assert_eq!(reading.labels, [("device", "sda".to_owned())]);
                    (reading.name, reading.value)
                })
                .collect(),
            DeviceHealth::Asleep => panic!("asleep"),
        }
    }

    #[test]
    fn an_ata_hard_disk_reports_health_and_its_sector_counts() {
        assert_eq!(
            values(parse_report(HDD, "sda").unwrap()),
            [
                ("disk_smart_healthy", 1.0),
                ("disk_smart_reallocated_sectors", 8.0),
                ("disk_smart_pending_sectors", 2.0),
            ]
        );
    }

    #[test]
    fn an_nvme_drive_reports_health_wear_and_media_errors() {
        assert_eq!(
            values(parse_report(NVME, "sda").unwrap()),
            [
                ("disk_smart_healthy", 1.0),
                ("disk_smart_media_errors_total", 3.0),
                ("disk_smart_percentage_used", 14.0),
            ]
        );
    }

    #[test]
    fn a_failing_disk_is_reported_unhealthy_not_as_an_error() {
        // Bit 3 of the exit status: "DISK FAILING"; the report is complete.
        let failing = HDD
            .replacen("\"passed\": true", "\"passed\": false", 1)
            .replace("\"exit_status\": 64", "\"exit_status\": 72");
        let values = values(parse_report(&failing, "sda").unwrap());
        assert_eq!(values[0], ("disk_smart_healthy", 0.0));
    }

    #[test]
    fn a_sleeping_disk_is_not_an_error() {
        let json = r#"{"smartctl": {"exit_status": 2, "messages": [
            {"string": "Device is in STANDBY mode, exit(2)", "severity": "information"}]}}"#;
        assert_eq!(parse_report(json, "sdb").unwrap(), DeviceHealth::Asleep);
    }

    #[test]
    fn a_disk_that_cannot_be_opened_says_what_the_agent_needs() {
        let json = r#"{"smartctl": {"exit_status": 2, "messages": [
            {"string": "Smartctl open device: /dev/sda failed: Permission denied", "severity": "error"}]}}"#;
        let error = parse_report(json, "sda").unwrap_err();
        assert!(
            error.starts_with(
                "Smartctl open device: /dev/sda failed: Permission denied; the agent needs root"
            ),
            "{error}"
        );
    }

    #[test]
    fn output_that_is_not_json_is_an_error_not_a_panic() {
        assert!(parse_report("smartctl: command not found", "sda").is_err());
        assert!(parse_scan("").is_err());
    }

    #[test]
    fn the_scan_lists_each_disk_with_its_type() {
        let json = r#"{"smartctl": {"exit_status": 0}, "devices": [
            {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
            {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
            {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_00]", "type": "megaraid,0", "protocol": "SCSI"}]}"#;
        let devices = parse_scan(json).unwrap();
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[1].kind.as_deref(), Some("nvme"));
        let labels: Vec<String> = devices
            .iter()
            .map(|device| device_label(&device.name, device.kind.as_deref()))
            .collect();
        assert_eq!(labels, ["sda", "nvme0", "bus/0:megaraid,0"]);
    }

    #[test]
    fn a_raw_count_is_read_as_smartctl_prints_it() {
        let packed = AtaRaw {
            value: 0x0001_0000_0008,
            string: "8 (65536 0)".into(),
        };
        assert_eq!(packed.count(), 8);
        let plain = AtaRaw {
            value: 12,
            string: String::new(),
        };
        assert_eq!(plain.count(), 12);
    }

    #[test]
    fn a_missing_smartctl_is_named_with_the_fix() {
        let error = locate_smartctl(Some(Path::new("/nonexistent/smartctl"))).unwrap_err();
        assert!(error.contains("/nonexistent/smartctl") && error.contains("smartmontools"));
    }
}
