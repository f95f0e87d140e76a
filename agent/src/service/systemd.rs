//! Linux: the hardened systemd unit, the `vigil-agent` system user, and `systemctl`.
//!
//! The unit is `deploy/systemd/vigil-agent.service`, compiled in, and so is the sleep hook
//! `deploy/systemd/vigil-agent-sleep`, which tells the agent when the machine goes to sleep
//! and wakes up (SIGUSR1, SIGUSR2). The agent runs as its own
//! system user with only the capabilities SMART needs; the config folder belongs to root and
//! the agent's group, which may write it because certificate renewal replaces the key and
//! certificate there; nobody else can read it. The state folder is the agent's. Against a layout that is
//! not the running system only files are written, and nothing is run.

use super::{
    prepare_files, remove_dir_except, InstallLayout, InstallOptions, ServiceError,
    UninstallOptions, SERVICE_NAME,
};
use std::path::Path;
use std::process::Command;

/// The unit file as shipped in `deploy/systemd/`.
pub const UNIT: &str = include_str!("../../../deploy/systemd/vigil-agent.service");

/// The systemd-sleep hook as shipped in `deploy/systemd/`.
pub const SLEEP_HOOK: &str = include_str!("../../../deploy/systemd/vigil-agent-sleep");

/// The system user and group the service runs as (`User=` in the unit).
const SERVICE_USER: &str = "vigil-agent";

/// Writes the config's state folder, the unit, and — on the running system — creates the
/// user, hands it its files, and enables (and with `start`, starts) the service.
pub fn install(options: &InstallOptions) -> Result<(), ServiceError> {
    let layout = &options.layout;
    prepare_files(layout)?;
    // The Debian package ships the unit and the hook itself; dpkg keeps track of its files.
    let packaged_unit = layout.root.join("lib/systemd/system/vigil-agent.service");
    if !packaged(layout, &packaged_unit) {
        write_file(&layout.unit_path(), UNIT, 0o644)?;
    }
    if !packaged(layout, &layout.sleep_hook_path()) {
        write_file(&layout.sleep_hook_path(), SLEEP_HOOK, 0o755)?;
    }
    if !layout.is_system() {
        return Ok(());
    }
    ensure_user()?;
    hand_files_to_user(layout)?;
    run(
        &["systemctl", "daemon-reload"],
        "is systemd running on this machine?",
    )?;
    let enable: &[&str] = if options.start {
        &["systemctl", "enable", "--now", SERVICE_NAME]
    } else {
        &["systemctl", "enable", SERVICE_NAME]
    };
    run(
        enable,
        "see 'journalctl -u vigil-agent' for why the service did not start",
    )
}

/// Stops and disables the service, removes the unit, the config folder and the state folder
/// (all but the spool with `keep_spool`), and the system user unless its spool stays.
pub fn uninstall(options: &UninstallOptions) -> Result<(), ServiceError> {
    let layout = &options.layout;
    if layout.is_system() && layout.unit_path().exists() {
        // A unit that is not loaded any more cannot be stopped; that is fine here.
        let _ = run(&["systemctl", "disable", "--now", SERVICE_NAME], "");
    }
    let mut files = vec![layout.unit_path()];
    if !packaged(layout, &layout.sleep_hook_path()) {
        files.push(layout.sleep_hook_path());
    }
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(ServiceError::io("removing", &file)(error)),
        }
    }
    if layout.is_system() {
        run(&["systemctl", "daemon-reload"], "")?;
    }
    remove_dir_except(&layout.config_dir(), None)?;
    let keep = options.keep_spool.then_some("spool");
    remove_dir_except(&layout.state_dir(), keep)?;
    if layout.is_system() && !options.keep_spool && user_exists() {
        run(
            &["userdel", SERVICE_USER],
            "remove the user 'vigil-agent' by hand",
        )?;
    }
    Ok(())
}

/// Whether the agent's Debian package installed `path` (it is in the package's file list):
/// such a file is dpkg's to write and remove, not install's and uninstall's.
fn packaged(layout: &InstallLayout, path: &Path) -> bool {
    let list = layout.root.join("var/lib/dpkg/info/vigil-agent.list");
    let Ok(listed) = std::fs::read_to_string(list) else {
        return false;
    };
    let Ok(relative) = path.strip_prefix(&layout.root) else {
        return false;
    };
    let wanted = Path::new("/").join(relative);
    listed.lines().any(|line| Path::new(line) == wanted)
}

/// Writes a file the service needs, atomically, with `mode`.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), ServiceError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(ServiceError::io("creating", folder))?;
    }
    crate::enroll::write_atomically(path, contents, false).map_err(|error| ServiceError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source: std::io::Error::other(error.to_string()),
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ServiceError::io("setting the mode of", path))
}

fn user_exists() -> bool {
    Command::new("id")
        .args(["-u", SERVICE_USER])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn ensure_user() -> Result<(), ServiceError> {
    if user_exists() {
        return Ok(());
    }
    run(
        &[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/var/lib/vigil-agent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "Vigil agent",
            SERVICE_USER,
        ],
        "run the install as root",
    )
}

/// The config folder belongs to root and the agent's group (renewal writes there; the key is
/// readable by the group and nobody else); the state folder is the agent's.
fn hand_files_to_user(layout: &InstallLayout) -> Result<(), ServiceError> {
    let config_dir = layout.config_dir();
    let state_dir = layout.state_dir();
    let owner_group = format!("root:{SERVICE_USER}");
    let owner = format!("{SERVICE_USER}:{SERVICE_USER}");
    let hint = "run the install as root";
    run(&["chown", "-R", &owner_group, path(&config_dir)], hint)?;
    run(&["chmod", "0770", path(&config_dir)], hint)?;
    run(
        &["chmod", "0640", path(&config_dir.join("agent-key.pem"))],
        hint,
    )?;
    run(&["chown", "-R", &owner, path(&state_dir)], hint)?;
    run(&["chmod", "0750", path(&state_dir)], hint)
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn run(command: &[&str], hint: &'static str) -> Result<(), ServiceError> {
    let failed = |reason: String| ServiceError::Command {
        command: command.join(" "),
        reason,
        hint,
    };
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .map_err(|error| failed(error.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(format!("{}: {}", output.status, stderr.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_hardened_and_runs_the_installed_config() {
        for directive in [
            "User=vigil-agent",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/vigil-agent",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectHome=read-only",
            "ProtectKernelTunables=yes",
            "RestrictAddressFamilies=",
            "SystemCallFilter=@system-service",
            "CapabilityBoundingSet=CAP_SYS_RAWIO CAP_SYS_ADMIN",
            "ExecStart=/usr/bin/vigil-agent run --config /etc/vigil-agent/agent.toml",
        ] {
            assert!(
                UNIT.lines().any(|line| line.starts_with(directive)),
                "{directive}"
            );
        }
        let layout = InstallLayout::system();
        assert_eq!(
            layout.config_path(),
            Path::new("/etc/vigil-agent/agent.toml")
        );
        assert_eq!(layout.state_dir(), Path::new("/var/lib/vigil-agent"));
    }
}
