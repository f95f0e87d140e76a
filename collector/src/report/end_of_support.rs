//! Operating systems near or past the end of their vendor's support, from the small table
//! `os_end_of_support.toml` kept beside this file.

use jiff::civil::Date;
use serde::Deserialize;

const TABLE: &str = include_str!("os_end_of_support.toml");

#[derive(Debug, Deserialize)]
struct Table {
    os: Vec<Entry>,
}

/// One operating system version and the day its support ends.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub label: String,
    /// `YYYY-MM-DD`.
    pub end_of_support: String,
}

impl Entry {
    pub fn end_date(&self) -> Option<Date> {
        self.end_of_support.parse().ok()
    }
}

/// The table's entries, in file order.
pub fn table() -> Vec<Entry> {
    toml::from_str::<Table>(TABLE)
        .expect("os_end_of_support.toml is checked by the tests")
        .os
}

/// The entry for an OS as an agent reports it (`os_name`, `os_version`), if the table has it.
pub fn lookup(os_name: &str, os_version: &str) -> Option<Entry> {
    let name = os_name.to_lowercase();
    let version = os_version.to_lowercase();
    // "Windows Server 2019" says its version in the name.
    let both = format!("{name} {version}");
    table().into_iter().find(|entry| {
        let wanted = entry.name.to_lowercase();
        let server_version = both.contains(&format!("{wanted} {}", entry.version.to_lowercase()));
        name.contains(&wanted)
            && (version.starts_with(&entry.version.to_lowercase()) || server_version)
            && (wanted.contains("server") || !name.contains("server"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_finds_reported_systems() {
        assert!(table().len() > 10);
        assert!(table().iter().all(|entry| entry.end_date().is_some()));
        assert_eq!(
            lookup("Debian GNU/Linux", "12").unwrap().label,
            "Debian 12 (bookworm)"
        );
        assert_eq!(lookup("Windows", "10.0.19045").unwrap().label, "Windows 10");
        assert_eq!(
            lookup("Windows Server 2019 Standard", "10.0.17763")
                .unwrap()
                .label,
            "Windows Server 2019"
        );
        assert!(lookup("Plan 9", "4").is_none());
    }
}
