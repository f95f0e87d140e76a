//! The agent as a system service: `vigil-agent install` and `uninstall`, the systemd unit on
//! Linux, the Service Control Manager on Windows, and why the agent stops ([`stop`]).
//!
//! Installing is: enroll (done by the caller with [`crate::enroll`]), point `agent.toml` at
//! the system's state folder, then hand the agent to the service manager. Everything that
//! writes files takes an [`InstallLayout`] whose root may be a scratch folder, so that the
//! file-writing part is tested without root, systemd or Windows; only a layout rooted at `/`
//! creates the system user and talks to systemd.
//!
//! Uninstalling reverses it and leaves nothing behind — unless asked to keep the spool, the
//! batches the collector has not acknowledged yet, which then stay in the state folder.
//!
//! Modules:
//! - [`stop`] — the Goodbye reason, decided from the system's state.
//! - [`power`] — sleep and resume: goodbye before, reconnect after.
//! - `systemd` — the unit, the system user, `systemctl` (Unix).
//! - [`windows`] — the service dispatcher and the Service Control Manager (Windows).

pub mod power;
pub mod stop;
#[cfg(unix)]
mod systemd;
#[cfg(windows)]
pub mod windows;

#[cfg(unix)]
pub use systemd::{install, uninstall, UNIT};
#[cfg(windows)]
pub use windows::{install, uninstall};

use std::path::{Path, PathBuf};

/// The service's name, for systemd and the Service Control Manager alike.
pub const SERVICE_NAME: &str = "vigil-agent";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{command}' failed: {reason}; {hint}")]
    Command {
        command: String,
        reason: String,
        hint: &'static str,
    },
    #[error("'{}' has no agent.toml; enroll first with 'vigil-agent install --collector URL --token TOKEN'", dir.display())]
    NotEnrolled { dir: PathBuf },
    #[error("the service manager: {0}")]
    ServiceManager(String),
}

impl ServiceError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Where an installed agent's files go. [`InstallLayout::system`] is the real system; a
/// layout under another root writes the same tree below it and touches nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallLayout {
    /// `/` for the real system; any other folder for a dry install into that folder.
    pub root: PathBuf,
}

impl InstallLayout {
    pub fn system() -> Self {
        Self {
            root: PathBuf::from(if cfg!(windows) { r"C:\" } else { "/" }),
        }
    }

    pub fn under(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Whether this layout is the running system, so that users, systemd and the Service
    /// Control Manager are to be touched too.
    pub fn is_system(&self) -> bool {
        self == &Self::system()
    }

    /// `agent.toml`, the key and the certificates.
    pub fn config_dir(&self) -> PathBuf {
        if cfg!(windows) {
            self.program_data().join("Vigil").join("agent")
        } else {
            self.root.join("etc").join("vigil-agent")
        }
    }

    /// The agent's state: the spool lives in `spool/` below it.
    pub fn state_dir(&self) -> PathBuf {
        if cfg!(windows) {
            self.config_dir().join("state")
        } else {
            self.root.join("var").join("lib").join("vigil-agent")
        }
    }

    /// The systemd unit file (Unix).
    pub fn unit_path(&self) -> PathBuf {
        self.root
            .join("etc")
            .join("systemd")
            .join("system")
            .join(format!("{SERVICE_NAME}.service"))
    }

    /// The hook systemd-sleep runs before and after a sleep (Unix): it tells the agent.
    pub fn sleep_hook_path(&self) -> PathBuf {
        self.root
            .join("usr")
            .join("lib")
            .join("systemd")
            .join("system-sleep")
            .join(SERVICE_NAME)
    }

    pub fn config_path(&self) -> PathBuf {
        self.config_dir().join("agent.toml")
    }

    fn program_data(&self) -> PathBuf {
        if self.is_system() {
            std::env::var_os("ProgramData")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        } else {
            self.root.join("ProgramData")
        }
    }
}

/// How `install` runs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub layout: InstallLayout,
    /// Start the service now (and at every boot); otherwise only at the next boot.
    pub start: bool,
}

/// How `uninstall` runs.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    pub layout: InstallLayout,
    /// Keep the spool of unacknowledged batches (the rest of the state folder goes).
    pub keep_spool: bool,
}

/// Points an enrolled `agent.toml` at the layout's state folder, unless it names one already.
/// Top-level keys must come before the first table, so the line goes above `[tls]`.
pub fn set_state_dir(config_path: &Path, state_dir: &Path) -> Result<(), ServiceError> {
    let text =
        std::fs::read_to_string(config_path).map_err(ServiceError::io("reading", config_path))?;
    if text
        .lines()
        .any(|line| line.trim_start().starts_with("state_dir"))
    {
        return Ok(());
    }
    // TOML basic strings take backslashes as escapes; a literal string keeps Windows paths.
    let line = format!(
        "# The spool of unacknowledged batches lives in <state_dir>/spool.\nstate_dir = '{}'\n\n",
        state_dir.display()
    );
    let updated = match text.find("\n[") {
        Some(table) => format!("{}\n{line}{}", &text[..table], &text[table + 1..]),
        None => format!("{text}\n{line}"),
    };
    crate::enroll::write_atomically(config_path, &updated, false).map_err(|error| {
        ServiceError::Io {
            action: "writing",
            path: config_path.to_path_buf(),
            source: std::io::Error::other(error.to_string()),
        }
    })
}

/// Removes `dir` and everything in it, or, with `keep`, everything but the entry of that
/// name. A folder that is not there is already removed.
pub(crate) fn remove_dir_except(dir: &Path, keep: Option<&str>) -> Result<(), ServiceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(ServiceError::io("reading", dir)(error)),
    };
    let Some(keep) = keep else {
        // The listing is closed first: Windows refuses to delete a folder while it is open.
        drop(entries);
        return std::fs::remove_dir_all(dir).map_err(ServiceError::io("removing", dir));
    };
    for entry in entries {
        let entry = entry.map_err(ServiceError::io("reading", dir))?;
        if entry.file_name() == keep {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(ServiceError::io("removing", &path))?;
    }
    Ok(())
}

/// Writes the layout's files: `agent.toml` pointed at the state folder, and the state folder.
pub(crate) fn prepare_files(layout: &InstallLayout) -> Result<(), ServiceError> {
    let config_path = layout.config_path();
    if !config_path.is_file() {
        return Err(ServiceError::NotEnrolled {
            dir: layout.config_dir(),
        });
    }
    let state_dir = layout.state_dir();
    std::fs::create_dir_all(&state_dir).map_err(ServiceError::io("creating", &state_dir))?;
    set_state_dir(&config_path, &state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_goes_above_the_first_table_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "collector = \"https://msp.example:7443\"\n\n[tls]\ncert = \"agent.pem\"\n",
        )
        .unwrap();
        set_state_dir(&path, Path::new("/var/lib/vigil-agent")).unwrap();
        set_state_dir(&path, Path::new("/elsewhere")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["state_dir"].as_str(), Some("/var/lib/vigil-agent"));
        assert_eq!(parsed["tls"]["cert"].as_str(), Some("agent.pem"));
        assert_eq!(text.matches("state_dir =").count(), 1);
    }

    #[test]
    fn removing_a_folder_can_keep_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("spool")).unwrap();
        std::fs::create_dir_all(state.join("other")).unwrap();
        std::fs::write(state.join("spool").join("db"), "x").unwrap();
        std::fs::write(state.join("leftover"), "x").unwrap();
        remove_dir_except(&state, Some("spool")).unwrap();
        let left: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("spool")]);
        remove_dir_except(&state, None).unwrap();
        assert!(!state.exists());
        remove_dir_except(&state, None).unwrap();
    }
}
