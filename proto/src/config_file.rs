//! Reading a TOML configuration file the same way in both binaries: one line per problem,
//! naming the file, the line and column, and the offending text.
//!
//! The typed config structs live with the rooms that own them; this only turns a file into
//! one of them, or into an error a person can act on.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A config file that could not be used. Each problem is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigFileError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl ConfigFileError {
    /// Problems found after parsing (missing files, values out of range), each already
    /// naming its key.
    pub fn invalid(path: &Path, problems: Vec<String>) -> Self {
        let problems = problems
            .into_iter()
            .map(|problem| format!("config {}: {problem}", path.display()))
            .collect();
        Self {
            path: path.to_path_buf(),
            problems,
        }
    }
}

/// Reads and parses `path`. Unknown keys are refused by the target type
/// (`#[serde(deny_unknown_fields)]`).
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigFileError {
        path: path.to_path_buf(),
        problems: vec![format!(
            "config {}: cannot be read: {error}{}",
            path.display(),
            if error.kind() == std::io::ErrorKind::NotFound {
                "; check the path, or create one from deploy/ examples"
            } else {
                ""
            }
        )],
    })?;
    parse(path, &text)
}

/// Parses `text` as if read from `path` (which is only used in messages).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigFileError> {
    toml::from_str(text).map_err(|error| {
        let place = match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
                format!(
                    ":{line}:{column}: {} (in `{line_text}`)",
                    error.message().trim()
                )
            }
            None => format!(": {}", error.message().trim()),
        };
        ConfigFileError {
            path: path.to_path_buf(),
            problems: vec![format!("config {}{place}", path.display())],
        }
    })
}

/// Refuses a private key file that other users could read or write, as ssh does, naming the
/// file and the `chmod` that fixes it.
///
/// The rule is PostgreSQL's for its TLS key: no permission at all for others; for the group,
/// nothing when the file belongs to the user that runs the program (mode 0600 or stricter),
/// and read only when the file belongs to root (mode 0640 or stricter). That second case is
/// how an installed agent reads its key: the installer leaves `agent-key.pem` as
/// `root:vigil-agent 0640`, so the service user can read but not replace it, and nobody else
/// can read it; likewise a collector run as a service user may read a root-owned key through
/// its group. A key owned by anyone else that the group may read is refused, because that
/// group is not one the installer chose.
///
/// On Windows the check does nothing: permissions there are ACLs, not mode bits, and the
/// key's folder (`%ProgramData%\Vigil`) is protected by the installer's ACL.
pub fn check_private_key_file(path: &Path) -> Result<(), ConfigFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).map_err(|error| ConfigFileError {
            path: path.to_path_buf(),
            problems: vec![format!(
                "private key '{}' cannot be read: {error}; check the path in the config",
                path.display()
            )],
        })?;
        let mode = metadata.mode() & 0o7777;
        let owned_by_root = metadata.uid() == 0;
        let allowed_group_bits = if owned_by_root { 0o040 } else { 0 };
        let exposed = mode & 0o007 != 0 || mode & 0o070 & !allowed_group_bits != 0;
        if exposed {
            let who = if mode & 0o007 != 0 {
                "other users"
            } else {
                "its group"
            };
            // Root's key handed to a service group keeps that group's read; any other key is
            // its owner's alone.
            let (fix, why) = if owned_by_root && metadata.gid() != 0 {
                (
                    "640",
                    "root's key is readable by the service's group and nobody else",
                )
            } else {
                ("600", "a private key is readable by its owner only")
            };
            return Err(ConfigFileError {
                path: path.to_path_buf(),
                problems: vec![format!(
                    "private key '{}' has mode {mode:04o}, so {who} may read or change it; \
                     run 'chmod {fix} {}' ({why})",
                    path.display(),
                    path.display()
                )],
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses a duration such as `10s`, `5m` or `1h 30m` (serde `deserialize_with`).
pub fn deserialize_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<std::time::Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Like [`deserialize_duration`], for an optional field.
pub fn deserialize_optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    deserialize_duration(deserializer).map(Some)
}

/// `10s`, `5m`, `1h 30m`, `2d`: the duration syntax of every Vigil flag and config key.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("{text:?} is not a duration ({error}); write e.g. \"10s\", \"5m\" or \"1h\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: String,
        #[serde(default, deserialize_with = "deserialize_optional_duration")]
        interval: Option<std::time::Duration>,
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let error =
            parse::<Example>(Path::new("a.toml"), "name = \"x\"\ncolour = 3\n").unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("config a.toml:2:1: unknown field `colour`"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn a_bad_duration_says_what_would_work() {
        let error = parse::<Example>(Path::new("a.toml"), "name = \"x\"\ninterval = \"often\"\n")
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("a.toml:2:"), "{text}");
        assert!(text.contains("\"often\" is not a duration"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = load::<Example>(Path::new("/nonexistent/vigil.toml")).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("config /nonexistent/vigil.toml: cannot be read"));
    }

    /// A key file with `mode`, removed when dropped.
    #[cfg(unix)]
    struct KeyFile(PathBuf);

    #[cfg(unix)]
    impl Drop for KeyFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[cfg(unix)]
    fn key_with_mode(mode: u32) -> (KeyFile, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!(
            "vigil-proto-key-{}-{mode:o}.pem",
            std::process::id()
        ));
        std::fs::write(&path, "key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (KeyFile(path.clone()), path)
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_may_read_or_write_is_refused_with_the_chmod_to_run() {
        for mode in [0o644, 0o604, 0o602, 0o666, 0o777, 0o660, 0o620] {
            let (_dir, path) = key_with_mode(mode);
            let error = check_private_key_file(&path)
                .expect_err("an exposed key is refused")
                .to_string();
            assert!(
                error.contains(&format!("run 'chmod 600 {}'", path.display())),
                "{mode:o}: {error}"
            );
            assert!(error.contains(&format!("mode {mode:04o}")), "{error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_only_its_owner_may_read_is_accepted() {
        for mode in [0o600, 0o400] {
            let (_dir, path) = key_with_mode(mode);
            assert_eq!(check_private_key_file(&path), Ok(()));
        }
    }

    #[test]
    fn a_good_file_parses() {
        let example: Example =
            parse(Path::new("a.toml"), "name = \"x\"\ninterval = \"1m 30s\"\n").unwrap();
        assert_eq!(example.interval, Some(std::time::Duration::from_secs(90)));
    }
}
