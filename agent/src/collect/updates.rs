//! Pending reboot and OS updates: `system_reboot_required` (0/1), and where the OS says so
//! cheaply, `system_reboot_required_packages` and `system_updates_pending`.
//!
//! Read on a slow schedule (hourly by default) in the background, never on a tick: the tick
//! only reads the board. Nothing here asks a package manager to refresh anything.
//!
//! - Linux (Debian, Ubuntu): `/var/run/reboot-required` exists after an update that needs a
//!   restart, and `/var/run/reboot-required.pkgs` lists the packages that asked for it;
//!   update-notifier's `/var/lib/update-notifier/updates-available` counts pending updates.
//! - Windows: the registry keys Windows Update and servicing leave while a restart is due —
//!   `…\WindowsUpdate\Auto Update\RebootRequired`, `…\Component Based Servicing\RebootPending`
//!   and the `PendingFileRenameOperations` value of the Session Manager.

use super::checks::{Board, Outcome, Reading};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_proto::config_file;

pub(crate) const REBOOT_REQUIRED: &str = "system_reboot_required";
pub(crate) const REBOOT_REQUIRED_PACKAGES: &str = "system_reboot_required_packages";
pub(crate) const UPDATES_PENDING: &str = "system_updates_pending";

/// `[checks.updates]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesConfig {
    /// Whether a pending reboot and pending updates are reported. Default: true.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// How often to look. Default: "1h"; from 1m to 1d.
    #[serde(
        default = "default_interval",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub interval: Duration,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_interval(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

impl UpdatesConfig {
    pub(crate) fn problems(&self, key: &str, problems: &mut Vec<String>) {
        if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&self.interval) {
            problems.push(format!(
                "{key}.interval = {:?} must be from 1m to 1d",
                humantime::format_duration(self.interval).to_string()
            ));
        }
    }

    /// Looks every interval until `shutdown`, posting to `board`. A reading stays valid until
    /// the next one: the board is not told to expire it sooner.
    pub(crate) async fn run(self, board: Arc<Board>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let outcome = tokio::task::spawn_blocking(look)
                .await
                .unwrap_or_else(|error| Err(format!("reading the update state panicked: {error}")));
            board.post("updates", vec![("updates".to_owned(), outcome)], None);
        }
    }
}

/// What the Debian/Ubuntu marker files say, given their contents (None: file absent).
#[cfg_attr(not(unix), allow(dead_code))]
fn debian_readings(
    reboot_required: bool,
    reboot_required_pkgs: Option<&str>,
    updates_available: Option<&str>,
) -> Vec<Reading> {
    let mut readings = vec![Reading::new(
        REBOOT_REQUIRED,
        &[],
        if reboot_required { 1.0 } else { 0.0 },
    )];
    let packages = reboot_required_pkgs
        .filter(|_| reboot_required)
        .map(|list| {
            let mut names: Vec<&str> = list
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            names.sort_unstable();
            names.dedup();
            names.len()
        })
        .unwrap_or(0);
    readings.push(Reading::new(REBOOT_REQUIRED_PACKAGES, &[], packages as f64));
    if let Some(count) = updates_available.and_then(parse_updates_available) {
        readings.push(Reading::new(UPDATES_PENDING, &[], count as f64));
    }
    readings
}

/// update-notifier's summary, e.g. "\n12 updates can be applied immediately.\n" or, in older
/// releases, "12 packages can be updated."; "0 updates" when there are none.
fn parse_updates_available(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let (count, rest) = line.split_once(' ')?;
        let counts_updates = rest.starts_with("update") || rest.starts_with("package");
        let applicable = rest.contains("can be applied") || rest.contains("can be updated");
        if counts_updates && applicable {
            count.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(unix)]
fn look() -> Outcome {
    use std::path::Path;
    let read = |path: &str| std::fs::read_to_string(Path::new(path)).ok();
    let reboot_required = Path::new("/var/run/reboot-required").exists();
    Ok(debian_readings(
        reboot_required,
        read("/var/run/reboot-required.pkgs").as_deref(),
        read("/var/lib/update-notifier/updates-available").as_deref(),
    ))
}

#[cfg(windows)]
fn look() -> Outcome {
    use winreg::enums::HKEY_LOCAL_MACHINE;
    use winreg::RegKey;
    let machine = RegKey::predef(HKEY_LOCAL_MACHINE);
    let key_exists = |path: &str| machine.open_subkey(path).is_ok();
    let update_reboot = key_exists(
        r"SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired",
    );
    let servicing_reboot = key_exists(
        r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending",
    );
    let pending_renames = machine
        .open_subkey(r"SYSTEM\CurrentControlSet\Control\Session Manager")
        .and_then(|key| key.get_value::<Vec<String>, _>("PendingFileRenameOperations"))
        .is_ok_and(|renames| renames.iter().any(|rename| !rename.is_empty()));
    Ok(windows_readings(
        update_reboot,
        servicing_reboot,
        pending_renames,
    ))
}

/// Any of the three markers means Windows wants a restart.
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_readings(
    update_reboot: bool,
    servicing_reboot: bool,
    pending_renames: bool,
) -> Vec<Reading> {
    let required = update_reboot || servicing_reboot || pending_renames;
    vec![Reading::new(
        REBOOT_REQUIRED,
        &[],
        if required { 1.0 } else { 0.0 },
    )]
}

#[cfg(not(any(unix, windows)))]
fn look() -> Outcome {
    Err("pending reboots are read on Linux and Windows only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(readings: &[Reading]) -> Vec<(&str, f64)> {
        readings
            .iter()
            .map(|reading| (reading.name, reading.value))
            .collect()
    }

    #[test]
    fn a_reboot_required_after_a_kernel_update_counts_its_packages_once() {
        let readings = debian_readings(
            true,
            Some("linux-image-6.1.0-28-amd64\nlibc6\nlinux-image-6.1.0-28-amd64\n"),
            Some("\n3 updates can be applied immediately.\n1 of these updates is a standard security update.\n"),
        );
        assert_eq!(
            values(&readings),
            vec![
                (REBOOT_REQUIRED, 1.0),
                (REBOOT_REQUIRED_PACKAGES, 2.0),
                (UPDATES_PENDING, 3.0)
            ]
        );
    }

    #[test]
    fn no_marker_files_mean_no_reboot_and_no_update_count() {
        assert_eq!(
            values(&debian_readings(false, Some("stale\n"), None)),
            vec![(REBOOT_REQUIRED, 0.0), (REBOOT_REQUIRED_PACKAGES, 0.0)]
        );
    }

    #[test]
    fn older_update_notifier_wording_is_understood() {
        assert_eq!(
            parse_updates_available(
                "12 packages can be updated.\n5 updates are security updates.\n"
            ),
            Some(12)
        );
        assert_eq!(
            parse_updates_available("0 updates can be applied immediately.\n"),
            Some(0)
        );
        assert_eq!(parse_updates_available("something else\n"), None);
    }

    #[test]
    fn any_windows_marker_means_a_reboot_is_required() {
        assert_eq!(
            values(&windows_readings(false, false, false)),
            vec![(REBOOT_REQUIRED, 0.0)]
        );
        assert_eq!(
            values(&windows_readings(false, true, false)),
            vec![(REBOOT_REQUIRED, 1.0)]
        );
        assert_eq!(
            values(&windows_readings(false, false, true)),
            vec![(REBOOT_REQUIRED, 1.0)]
        );
    }

    #[test]
    fn the_interval_is_kept_slow() {
        let mut problems = Vec::new();
        UpdatesConfig {
            enabled: true,
            interval: Duration::from_secs(10),
        }
        .problems("checks.updates", &mut problems);
        assert_eq!(
            problems,
            vec!["checks.updates.interval = \"10s\" must be from 1m to 1d"]
        );
    }
}
