//! Services: `service_up{service}`, 1 while a service that is expected to run is running.
//!
//! On Linux the agent asks systemd with one fixed command per round,
//! `systemctl show --property=… -- <units>`, whose unit names come from the local config or
//! from a built-in list of services a technician expects on a server (SSH, cron, time sync,
//! logging, common server roles). From the built-in list only the units that are installed
//! and enabled count, so a machine is not reported for lacking what it never had; a unit the
//! config names is always reported, 0 when it is missing.
//!
//! On Windows the agent asks the Service Control Manager directly (no WMI, no PowerShell):
//! each named service is opened for its status and start type. The built-in list there is of
//! the services an MSP expects on a Windows PC or server (event log, DNS client, firewall,
//! Defender, scheduler, file sharing, common server roles); only those set to start
//! automatically count.

use super::checks::{Board, Outcome, Reading};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_proto::config_file;

/// How long `systemctl` may take before the round is given up.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Units looked for when the config names none: those installed and enabled are expected.
#[cfg(target_os = "linux")]
const DEFAULT_UNITS: &[&str] = &[
    "ssh.service",
    "sshd.service",
    "ssh.socket",
    "cron.service",
    "crond.service",
    "cronie.service",
    "systemd-journald.service",
    "rsyslog.service",
    "syslog-ng.service",
    "chrony.service",
    "chronyd.service",
    "systemd-timesyncd.service",
    "ntpsec.service",
    "ntp.service",
    "smartmontools.service",
    "smartd.service",
    "docker.service",
    "containerd.service",
    "nginx.service",
    "apache2.service",
    "httpd.service",
    "mariadb.service",
    "mysql.service",
    "postgresql.service",
    "smbd.service",
    "nfs-server.service",
    "zfs-zed.service",
    "fail2ban.service",
    "firewalld.service",
    "sssd.service",
];

/// Windows services looked for when the config names none: those set to start automatically
/// are expected.
#[cfg(windows)]
const DEFAULT_WINDOWS_SERVICES: &[&str] = &[
    "EventLog",
    "Dnscache",
    "Dhcp",
    "RpcSs",
    "Winmgmt",
    "Schedule",
    "CryptSvc",
    "BFE",
    "mpssvc",
    "WinDefend",
    "W32Time",
    "LanmanServer",
    "LanmanWorkstation",
    "Spooler",
    "TermService",
    "wuauserv",
    "NTDS",
    "DNS",
    "DHCPServer",
    "W3SVC",
    "MSSQLSERVER",
    "vmms",
    "VeeamBackupSvc",
];

/// `[checks.services]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesConfig {
    /// Whether services are reported. Default: true.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The services expected to run: systemd unit names, `.service` may be left out (e.g.
    /// `["sshd", "nginx", "backup.timer"]`). Default: those of a built-in list (SSH, cron,
    /// time sync, logging, databases, web servers, …) that are installed and enabled here.
    #[serde(default)]
    pub expected: Option<Vec<String>>,
    /// How often to look. Default: "30s" (each look runs `systemctl`, a process of its own;
    /// the `ServiceDown` alert waits five minutes anyway, and every tick reports the newest
    /// state).
    #[serde(
        default = "default_interval",
        deserialize_with = "config_file::deserialize_duration"
    )]
    pub interval: Duration,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            expected: None,
            interval: default_interval(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

impl ServicesConfig {
    pub(crate) fn problems(&self, key: &str, problems: &mut Vec<String>) {
        for name in self.expected.iter().flatten() {
            if let Err(reason) = check_unit_name(name) {
                problems.push(format!("{key}.expected: {name:?} {reason}"));
            }
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.interval) {
            problems.push(format!(
                "{key}.interval = {:?} must be from 1s to 1h",
                humantime::format_duration(self.interval).to_string()
            ));
        }
    }

    /// Looks every interval until `shutdown`, posting to `board`.
    pub(crate) async fn run(self, board: Arc<Board>, shutdown: CancellationToken) {
        let fresh_for = self.interval * 3 + COMMAND_TIMEOUT;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported_missing = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = look(self.expected.as_deref(), &mut reported_missing) => outcome,
            };
            board.post(
                "services",
                vec![("services".to_owned(), outcome)],
                Some(fresh_for),
            );
        }
    }
}

/// A unit name the agent will pass to systemctl: a plain name, never an option.
fn check_unit_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.starts_with('-') {
        Err("starts with '-'; name a unit, e.g. \"sshd\"")
    } else if name.len() > 256 {
        Err("is longer than 256 characters")
    } else if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        Err("holds a space, a slash or a control character; name a unit, e.g. \"sshd\"")
    } else {
        Ok(())
    }
}

/// The unit name systemd knows: `.service` added when no type is given.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

/// What systemd says about one unit.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct UnitState {
    id: String,
    load_state: String,
    active_state: String,
    unit_file_state: String,
}

#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
impl UnitState {
    fn is_up(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    fn is_installed(&self) -> bool {
        self.load_state == "loaded"
    }

    /// Enabled to start at boot (or always there, like journald): expected to run.
    fn is_expected_by_default(&self) -> bool {
        self.is_installed()
            && matches!(
                self.unit_file_state.as_str(),
                "enabled" | "enabled-runtime" | "static" | "alias" | "generated"
            )
    }

    /// The `service` label: the unit's own name, without `.service`.
    fn label(&self) -> &str {
        self.id.strip_suffix(".service").unwrap_or(&self.id)
    }
}

/// Parses `systemctl show` output: one block of `Key=Value` lines per unit, in the order the
/// units were named, blocks separated by an empty line.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_show(output: &str) -> Vec<UnitState> {
    let mut units = Vec::new();
    let mut current = UnitState::default();
    let mut any = false;
    for line in output.lines() {
        if line.trim().is_empty() {
            if any {
                units.push(std::mem::take(&mut current));
                any = false;
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        any = true;
        let value = value.to_owned();
        match key {
            "Id" => current.id = value,
            "LoadState" => current.load_state = value,
            "ActiveState" => current.active_state = value,
            "UnitFileState" => current.unit_file_state = value,
            _ => {}
        }
    }
    if any {
        units.push(current);
    }
    units
}

/// Turns what systemd said about the units `asked` into readings; `configured` says whether
/// they are the config's list (all reported) or the built-in one (only enabled ones).
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
fn readings(
    asked: &[String],
    units: &[UnitState],
    configured: bool,
    reported_missing: &mut HashSet<String>,
) -> Vec<Reading> {
    let mut seen = HashSet::new();
    let mut readings = Vec::new();
    for (name, unit) in asked.iter().zip(units) {
        if configured {
            if !unit.is_installed() && reported_missing.insert(name.clone()) {
                tracing::warn!(unit = %name, load_state = %unit.load_state, "a service in checks.services.expected is not installed here; it is reported as down");
            }
            let label = if unit.id.is_empty() || !unit.is_installed() {
                name.strip_suffix(".service").unwrap_or(name)
            } else {
                unit.label()
            };
            if seen.insert(label.to_owned()) {
                readings.push(Reading::new(
                    "service_up",
                    &[("service", label)],
                    f64::from(u8::from(unit.is_up())),
                ));
            }
        } else if unit.is_expected_by_default() && seen.insert(unit.label().to_owned()) {
            readings.push(Reading::new(
                "service_up",
                &[("service", unit.label())],
                f64::from(u8::from(unit.is_up())),
            ));
        }
    }
    readings
}

#[cfg(target_os = "linux")]
async fn look(expected: Option<&[String]>, reported_missing: &mut HashSet<String>) -> Outcome {
    let asked: Vec<String> = match expected {
        Some(names) => names.iter().map(|name| unit_name(name)).collect(),
        None => DEFAULT_UNITS
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
    };
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let mut command = tokio::process::Command::new("systemctl");
    command
        .arg("show")
        .arg("--property=Id,LoadState,ActiveState,SubState,UnitFileState")
        .arg("--")
        .args(&asked)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
        Err(_) => {
            return Err(format!(
                "`systemctl show` did not answer within {} s",
                COMMAND_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(error)) => return Err(format!("cannot run systemctl: {error}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`systemctl show` failed ({}): {}",
            output.status,
            stderr.lines().next().unwrap_or("no message").trim()
        ));
    }
    let units = parse_show(&String::from_utf8_lossy(&output.stdout));
    if units.len() != asked.len() {
        return Err(format!(
            "`systemctl show` described {} units where {} were asked for",
            units.len(),
            asked.len()
        ));
    }
    Ok(readings(
        &asked,
        &units,
        expected.is_some(),
        reported_missing,
    ))
}

#[cfg(windows)]
async fn look(expected: Option<&[String]>, reported_missing: &mut HashSet<String>) -> Outcome {
    let asked: Vec<String> = match expected {
        Some(names) => names.to_vec(),
        None => DEFAULT_WINDOWS_SERVICES
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
    };
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let names = asked.clone();
    let units = tokio::time::timeout(
        COMMAND_TIMEOUT,
        tokio::task::spawn_blocking(move || windows_states(&names)),
    )
    .await
    .map_err(|_| {
        format!(
            "the Service Control Manager did not answer within {} s",
            COMMAND_TIMEOUT.as_secs()
        )
    })?
    .map_err(|error| format!("asking the Service Control Manager panicked: {error}"))??;
    Ok(readings(
        &asked,
        &units,
        expected.is_some(),
        reported_missing,
    ))
}

/// What the Service Control Manager says about each service, in the systemd terms the
/// readings are made from: a service that cannot be opened is "not-found", one set to start
/// automatically is "enabled", a running one is "active".
#[cfg(windows)]
fn windows_states(names: &[String]) -> Result<Vec<UnitState>, String> {
    use windows_service::service::{ServiceAccess, ServiceStartType, ServiceState};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|error| format!("cannot connect to the Service Control Manager: {error}"))?;
    let states = names
        .iter()
        .map(|name| {
            let access = ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
            let Ok(service) = manager.open_service(name, access) else {
                return UnitState {
                    id: name.clone(),
                    load_state: "not-found".into(),
                    ..UnitState::default()
                };
            };
            let running = service
                .query_status()
                .is_ok_and(|status| status.current_state == ServiceState::Running);
            let automatic = service
                .query_config()
                .is_ok_and(|config| config.start_type == ServiceStartType::AutoStart);
            UnitState {
                id: name.clone(),
                load_state: "loaded".into(),
                active_state: if running { "active" } else { "inactive" }.into(),
                unit_file_state: if automatic { "enabled" } else { "disabled" }.into(),
            }
        })
        .collect();
    Ok(states)
}

#[cfg(not(any(target_os = "linux", windows)))]
async fn look(_expected: Option<&[String]>, _reported_missing: &mut HashSet<String>) -> Outcome {
    Err(format!(
        "service checks are not implemented on {} yet; set checks.services.enabled = false to silence this",
        std::env::consts::OS
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `systemctl show --property=Id,LoadState,ActiveState,SubState,UnitFileState --
    /// ssh.service sshd.service cron.service nginx.service nosuch.service` prints on a Debian
    /// server where nginx has crashed (sshd is an alias of ssh).
    const SHOW: &str = "\
Id=ssh.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=ssh.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=cron.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=nginx.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=enabled

Id=nosuch.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
";

    fn asked() -> Vec<String> {
        ["ssh", "sshd", "cron", "nginx", "nosuch"]
            .iter()
            .map(|name| unit_name(name))
            .collect()
    }

    fn values(readings: &[Reading]) -> Vec<(String, f64)> {
        readings
            .iter()
            .map(|reading| (reading.labels[0].1.clone(), reading.value))
            .collect()
    }

    #[test]
    fn parses_one_block_per_unit_in_order() {
        let units = parse_show(SHOW);
        assert_eq!(units.len(), 5);
        assert_eq!(units[3].id, "nginx.service");
        assert_eq!(units[3].active_state, "failed");
        assert_eq!(units[4].load_state, "not-found");
    }

    #[test]
    fn configured_services_are_all_reported_once_and_missing_ones_as_down() {
        let mut missing = HashSet::new();
        let readings = readings(&asked(), &parse_show(SHOW), true, &mut missing);
        assert_eq!(
            values(&readings),
            [
                ("ssh".to_owned(), 1.0),
                ("cron".to_owned(), 1.0),
                ("nginx".to_owned(), 0.0),
                ("nosuch".to_owned(), 0.0)
            ]
        );
        assert!(missing.contains("nosuch.service"));
    }

    #[test]
    fn built_in_services_count_only_when_installed_and_enabled() {
        let mut show = SHOW.replace(
            "Id=cron.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled",
            "Id=cron.service\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled",
        );
        show.push('\n');
        let readings = readings(&asked(), &parse_show(&show), false, &mut HashSet::new());
        assert_eq!(
            values(&readings),
            [("ssh".to_owned(), 1.0), ("nginx".to_owned(), 0.0)]
        );
    }

    #[test]
    fn unit_names_that_could_be_options_are_refused() {
        let config = ServicesConfig {
            expected: Some(vec![
                "sshd".into(),
                "--host=evil".into(),
                "a b".into(),
                String::new(),
            ]),
            ..ServicesConfig::default()
        };
        let mut problems = Vec::new();
        config.problems("checks.services", &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("\"--host=evil\" starts with '-'"));
    }

    #[test]
    fn a_unit_type_is_kept_and_a_bare_name_is_a_service() {
        assert_eq!(unit_name("sshd"), "sshd.service");
        assert_eq!(unit_name("backup.timer"), "backup.timer");
    }
}
