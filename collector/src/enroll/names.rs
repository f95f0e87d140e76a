//! The two names an identity is made of, and the one rule for each: a host name (the
//! certificate's CN, the `host` label) and a client id (the certificate's O, the `client`
//! label, what a policy file's `client = "…"` names).
//!
//! `token create`, enrollment and the CA check names here, so that nothing is signed or
//! handed out that a policy file, a label or a file name under `<data_dir>` could not carry.
//! A client's display name ("Acme Dental") is free text and lives in its policy file
//! (`display_name`), never in a certificate.

/// The longest host name or client id.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("host name {value:?} is not valid: {reason}; use letters, digits, '-', '_' or '.', starting and ending with a letter or digit, at most 64 characters (e.g. \"reception-pc\")")]
    Host { value: String, reason: &'static str },
    #[error("client id {value:?} is not valid: {reason}; a client id is what certificates and policy files (client = \"…\") name: letters, digits, '-', '_' or '.', starting and ending with a letter or digit, at most 64 characters, e.g. --client {suggestion} (the display name goes in the policy file's display_name)")]
    Client {
        value: String,
        reason: &'static str,
        suggestion: String,
    },
}

/// A host name as enrollment, the CA and the certificate reader accept it.
pub fn check_host_name(name: &str) -> Result<(), NameError> {
    plain_name_problem(name).map_or(Ok(()), |reason| {
        Err(NameError::Host {
            value: shorten(name),
            reason,
        })
    })
}

/// A client id as `token create`, the CA, the certificate reader and policy files accept it.
pub fn check_client_id(id: &str) -> Result<(), NameError> {
    if id == crate::pipeline::health::MSP_CLIENT {
        // The collector's own alerts are the MSP's: a client of that name would get them.
        return Err(NameError::Client {
            value: id.to_string(),
            reason: "it is the name the collector's own alerts use",
            suggestion: format!("{id}-office"),
        });
    }
    plain_name_problem(id).map_or(Ok(()), |reason| {
        let suggestion = suggest_id(id);
        Err(NameError::Client {
            value: shorten(id),
            reason,
            suggestion: if suggestion.is_empty() {
                "acme-dental".to_string()
            } else {
                suggestion
            },
        })
    })
}

/// A name a machine calls itself ("Reception PC", "SRV01.corp.local") made into a host name
/// that [`check_host_name`] accepts, or an empty string when nothing usable is left:
/// lowercase, other characters become '-', trimmed, at most [`MAX_NAME_CHARS`].
pub fn host_name_from_machine(name: &str) -> String {
    suggest_id(name)
}

/// What was wrong with a name, if anything.
fn plain_name_problem(name: &str) -> Option<&'static str> {
    let first = name.chars().next();
    let last = name.chars().next_back();
    if name.is_empty() {
        Some("it is empty")
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some("it is longer than 64 characters")
    } else if name.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("it contains a character other than letters, digits, '-', '_' and '.'")
    } else if !first.is_some_and(|c| c.is_ascii_alphanumeric())
        || !last.is_some_and(|c| c.is_ascii_alphanumeric())
    {
        Some("it does not start and end with a letter or digit")
    } else if name.contains("..") {
        Some("it contains '..'")
    } else {
        None
    }
}

/// Lowercase, runs of other characters as one '-', no '-' or '.' at either end.
fn suggest_id(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
            if !(c == '.' && out.ends_with('.')) {
                out.push(c);
            }
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(MAX_NAME_CHARS)
        .collect();
    trimmed
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn shorten(value: &str) -> String {
    value.chars().take(MAX_NAME_CHARS + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_host_names_are_accepted() {
        for name in ["reception-pc", "srv01.corp.local", "PC_7", "a"] {
            assert_eq!(check_host_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn dots_spaces_and_odd_characters_are_refused_as_host_names() {
        for name in [
            ".", "..", "a..b", " ", "web 01", "-pc", "pc.", "", "../etc", "é",
        ] {
            assert!(check_host_name(name).is_err(), "{name:?} was accepted");
        }
        assert!(check_host_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_client_id_with_a_space_is_refused_with_the_id_to_use_instead() {
        let error = check_client_id("Acme Dental").unwrap_err().to_string();
        assert!(error.contains("contains whitespace"), "{error}");
        assert!(error.contains("--client acme-dental"), "{error}");
        assert!(error.contains("display_name"), "{error}");
        assert_eq!(check_client_id("acme-dental"), Ok(()));
    }

    #[test]
    fn the_client_id_of_the_collectors_own_alerts_is_refused() {
        let error = check_client_id("msp").unwrap_err().to_string();
        assert!(
            error.contains("the collector's own alerts") && error.contains("--client msp-office"),
            "{error}"
        );
        assert!(check_client_id("msp-office").is_ok());
    }

    #[test]
    fn machine_names_become_host_names_the_rule_accepts() {
        assert_eq!(host_name_from_machine("RECEPTION-PC"), "reception-pc");
        assert_eq!(host_name_from_machine(" web 01 "), "web-01");
        assert_eq!(host_name_from_machine("../etc"), "etc");
        assert_eq!(host_name_from_machine("a..b"), "a.b");
        assert_eq!(host_name_from_machine("é"), "");
        assert_eq!(host_name_from_machine("."), "");
        for name in ["Reception PC", "x-", &"b".repeat(100), "a . b"] {
            let made = host_name_from_machine(name);
            assert_eq!(check_host_name(&made), Ok(()), "{name:?} -> {made:?}");
        }
    }
}
