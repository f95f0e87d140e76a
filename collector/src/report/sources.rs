//! What a report reads, and where from: the contract version in force (the policy archive),
//! the alert journal, acknowledgements (the outbox), the hosts (registry, host records,
//! presence, the journal) and stored series (the store, when it can be read). All reading is
//! here; the figures are computed elsewhere from [`Gathered`].

use super::figures::{self, Episode};
use super::risks::{self, Risk, SeriesPoints};
use super::{InventoryRow, Month, ReportError};
use crate::enroll::admin;
use crate::history::{History, HistoryEntry};
use crate::notify::outbox::Acknowledgement;
use crate::notify::Outbox;
use crate::pipeline::PolicyArchive;
use crate::policy::{Policy, PolicyHistory};
use crate::store::{Selector, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const HOUR_MS: i64 = 3_600_000;
/// How far before the range the journal is read, so that an alert that began earlier and
/// still ran in the range (a host down since last month) is seen.
pub const LOOKBACK_MS: i64 = 92 * 24 * HOUR_MS;

/// The contract version that governs `client`'s report for `month`: the one in force at the
/// month's end (or its first version, for a month before it).
pub fn contract(
    data_dir: &Path,
    client: &str,
    month: Month,
) -> Result<(Policy, crate::policy::PolicyVersionId), ReportError> {
    let archive = PolicyArchive::new(data_dir);
    let contract_error = |detail: String| ReportError::Contract {
        client: client.to_string(),
        detail,
    };
    let versions = archive.versions(client).map_err(contract_error)?;
    if versions.is_empty() {
        // A client is known by its enrolled hosts and by hosts that reported (the demo's and
        // hand-made certificates never enrolled).
        let mut with_hosts: BTreeSet<String> = admin::list_hosts(data_dir)
            .unwrap_or_default()
            .into_iter()
            .map(|host| host.record.client)
            .collect();
        with_hosts.extend(
            crate::pipeline::presence::read(data_dir)
                .unwrap_or_default()
                .into_values()
                .map(|host| host.client),
        );
        if with_hosts.contains(client) {
            return Err(ReportError::NoContract {
                client: client.to_string(),
            });
        }
        let mut known: BTreeSet<String> =
            archive.clients().unwrap_or_default().into_iter().collect();
        known.extend(with_hosts);
        return Err(ReportError::UnknownClient {
            client: client.to_string(),
            known: if known.is_empty() {
                "none yet".to_string()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            },
        });
    }
    let history = PolicyHistory::from_versions(client, versions)
        .map_err(|error| contract_error(error.to_string()))?;
    let latest = history
        .latest()
        .expect("a history with versions has a latest");
    let (_, end) = month.range(latest.calendar.time_zone());
    let at = end
        .checked_sub(jiff::SignedDuration::from_millis(1))
        .unwrap_or(end);
    let policy = match history.in_force_at(at) {
        Ok(policy) => policy.clone(),
        Err(_) => history
            .versions()
            .next()
            .and_then(|first| history.version(first.version))
            .cloned()
            .unwrap_or_else(|| latest.clone()),
    };
    let id = policy.version.clone();
    Ok((policy, id))
}

/// What was read for one client and range.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The client's journal entries from [`LOOKBACK_MS`] before the range to its end, in
    /// order.
    pub entries: Vec<HistoryEntry>,
    /// The range read, `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    pub unreadable: usize,
    /// Acknowledgements by fingerprint: (when the alert's episode began, who and when).
    pub acknowledgements: BTreeMap<String, Vec<(i64, Vec<Acknowledgement>)>>,
    /// (host, monitored from).
    pub hosts: Vec<(String, i64)>,
    pub has_samples: bool,
    pub risks: Vec<Risk>,
    pub inventory: Vec<InventoryRow>,
    pub store_note: Option<String>,
}

impl Gathered {
    /// Whether the journal has anything in the range itself.
    pub fn has_history(&self) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.at_ms >= self.start_ms)
    }

    /// The journal folded into episodes that ran in the range (began in it, or began
    /// earlier and were still open at its start), each with its acknowledgements.
    pub fn episodes(&self) -> Vec<Episode> {
        let mut episodes = figures::episodes(&self.entries);
        episodes.retain(|episode| {
            episode
                .resolved_ms
                .is_none_or(|resolved| resolved > self.start_ms)
        });
        for episode in &mut episodes {
            let Some(known) = self.acknowledgements.get(&episode.fingerprint) else {
                continue;
            };
            // The episode whose start is nearest the firing, within a minute.
            let nearest = known
                .iter()
                .filter(|(starts, _)| (starts - episode.fired_ms).abs() <= 60_000)
                .min_by_key(|(starts, _)| (starts - episode.fired_ms).abs());
            if let Some((_, acknowledgements)) = nearest {
                episode.acknowledgements = acknowledgements.clone();
            }
        }
        episodes
    }
}

/// The journal and acknowledgements of `client` over `[start_ms, end_ms)`; hosts are those
/// the journal names, monitored from the start.
pub fn gather_history(
    data_dir: &Path,
    client: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Gathered, ReportError> {
    let (entries, unreadable) =
        History::open(data_dir).read_range(start_ms - LOOKBACK_MS, end_ms)?;
    let entries: Vec<HistoryEntry> = entries
        .into_iter()
        .filter(|entry| entry.client == client)
        .collect();
    let mut acknowledgements: BTreeMap<String, Vec<(i64, Vec<Acknowledgement>)>> = BTreeMap::new();
    if data_dir.join("outbox").is_dir() {
        let outbox = Outbox::open(data_dir)?;
        let fingerprints: BTreeSet<&str> = entries.iter().map(|e| e.fingerprint.as_str()).collect();
        for fingerprint in fingerprints {
            let mut known = outbox.acknowledgement_history(fingerprint)?;
            if let Some(open) = outbox.open_alert(fingerprint)? {
                known.push((
                    open.alert.starts_at_ms,
                    outbox.acknowledgements(fingerprint)?,
                ));
            }
            acknowledgements.insert(fingerprint.to_string(), known);
        }
    }
    let mut gathered = Gathered {
        entries,
        start_ms,
        end_ms,
        unreadable,
        acknowledgements,
        ..Gathered::default()
    };
    let mut hosts: BTreeSet<String> = gathered
        .entries
        .iter()
        .filter(|e| e.at_ms >= start_ms)
        .map(|e| e.host.clone())
        .collect();
    hosts.extend(gathered.episodes().into_iter().map(|episode| episode.host));
    gathered.hosts = hosts.into_iter().map(|host| (host, start_ms)).collect();
    Ok(gathered)
}

/// Everything for the month: the journal, the hosts from every source, stored series (when
/// `store` is given), risks and the inventory.
pub fn gather(
    data_dir: &Path,
    store: Option<&Store>,
    policy: &Policy,
    client: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Gathered, ReportError> {
    let mut gathered = gather_history(data_dir, client, start_ms, end_ms)?;
    let mut hosts: BTreeMap<String, i64> = gathered.hosts.iter().cloned().collect();
    let mut inventory: BTreeMap<String, InventoryRow> = BTreeMap::new();
    let row = |inventory: &mut BTreeMap<String, InventoryRow>, host: &str| {
        inventory
            .entry(host.to_string())
            .or_insert_with(|| InventoryRow {
                host: host.to_string(),
                role: policy.role_of(host).map(|(role, _)| role.name.clone()),
                ..InventoryRow::default()
            });
    };
    for status in admin::list_hosts(data_dir).unwrap_or_default() {
        let record = status.record;
        let revoked_before = status.revoked_at_ms.is_some_and(|at| at < start_ms);
        if record.client != client || record.enrolled_at_ms >= end_ms || revoked_before {
            continue;
        }
        let from = hosts.entry(record.agent_id.clone()).or_insert(start_ms);
        *from = (*from).max(record.enrolled_at_ms);
        row(&mut inventory, &record.agent_id);
    }
    let presence = crate::pipeline::presence::read(data_dir).unwrap_or_default();
    for (host, seen) in &presence {
        if seen.client == client {
            hosts.entry(host.clone()).or_insert(start_ms);
            row(&mut inventory, host);
        }
    }
    for host in hosts.keys().cloned().collect::<Vec<_>>() {
        row(&mut inventory, &host);
    }
    // Stored series: when each host first reported in the range, and the risks ahead.
    let mut series_by_name: BTreeMap<String, Vec<SeriesPoints>> = BTreeMap::new();
    match store {
        None => {
            gathered.store_note = Some(
                "stored series could not be read (a running collector holds the store); \
                 availability and alerts come from the alert history, risks from stored \
                 data are left out"
                    .to_string(),
            );
            // Presence still tells whether the client's hosts reported in the range.
            gathered.has_samples = presence.values().any(|seen| {
                seen.client == client && seen.last_batch_ms.is_some_and(|at| at >= start_ms)
            });
        }
        Some(store) => {
            for name in risks::METRICS {
                let selector: Selector = format!("{name}{{client=\"{client}\"}}")
                    .parse()
                    .expect("report selectors are valid");
                let selection = store.select_range(&selector, start_ms, end_ms - 1, HOUR_MS)?;
                for series in selection.series {
                    let host = series.labels.get("host").unwrap_or_default().to_string();
                    if host.is_empty() || series.points.is_empty() {
                        continue;
                    }
                    gathered.has_samples = true;
                    let first = series.points[0].timestamp_ms;
                    let from = hosts.entry(host.clone()).or_insert(first);
                    // A host heard of only from the store is monitored from its first point.
                    if !gathered.entries.iter().any(|e| e.host == host) && *from == start_ms {
                        *from = first.max(start_ms);
                    }
                    row(&mut inventory, &host);
                    series_by_name
                        .entry(name.to_string())
                        .or_default()
                        .push(SeriesPoints::from_range(&series));
                }
            }
            for (host, record) in store.host_records()? {
                if record["client"].as_str() != Some(client) {
                    continue;
                }
                row(&mut inventory, &host);
                let entry = inventory.get_mut(&host).expect("row was just added");
                fill_inventory(entry, &record, super::language_of(policy));
            }
        }
    }
    for (host, seen) in &presence {
        if let Some(entry) = inventory.get_mut(host) {
            if entry.agent_version.is_empty() {
                entry.agent_version = seen.agent_version.clone();
            }
            if entry.os.is_empty() {
                entry.os = seen.os.clone();
            }
            entry.last_seen_ms = entry.last_seen_ms.max(seen.last_batch_ms);
        }
    }
    for (host, from) in &hosts {
        if let Some(entry) = inventory.get_mut(host) {
            entry.first_seen_ms = Some(entry.first_seen_ms.map_or(*from, |at| at.min(*from)));
        }
    }
    for series in series_by_name.values().flatten() {
        if let (Some(entry), Some(last)) = (inventory.get_mut(&series.host), series.points.last()) {
            entry.last_seen_ms = entry.last_seen_ms.max(Some(last.0));
        }
    }
    gathered.risks = risks::from_series(policy, &series_by_name, end_ms);
    gathered.hosts = hosts.into_iter().collect();
    gathered.inventory = inventory.into_values().collect();
    Ok(gathered)
}

/// Whether the store holds samples of `client` in `[start_ms, end_ms)`: what [`gather`]
/// counts as stored data, read the same way (the report's metrics, hourly), stopping at the
/// first series found.
pub fn has_samples(
    store: &Store,
    client: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<bool, ReportError> {
    for name in risks::METRICS {
        let selector: Selector = format!("{name}{{client=\"{client}\"}}")
            .parse()
            .expect("report selectors are valid");
        let selection = store.select_range(&selector, start_ms, end_ms - 1, HOUR_MS)?;
        if selection.series.iter().any(|series| {
            !series.points.is_empty() && !series.labels.get("host").unwrap_or_default().is_empty()
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The host record's inventory (as the agent's Hello gave it) into an appendix row.
fn fill_inventory(row: &mut InventoryRow, record: &serde_json::Value, t: super::i18n::Language) {
    let inventory = &record["inventory"];
    let text = |key: &str| inventory[key].as_str().unwrap_or_default().to_string();
    row.os = format!("{} {}", text("os_name"), text("os_version"))
        .trim()
        .to_string();
    row.cpu = match inventory["cpu_cores"].as_u64() {
        Some(cores) if cores > 0 => t.text(
            "inventory.cpu",
            &[("model", &text("cpu_model")), ("cores", &cores.to_string())],
        ),
        _ => text("cpu_model"),
    };
    row.memory_bytes = inventory["memory_bytes"].as_u64().unwrap_or_default();
    row.disks = inventory["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|disk| {
            (
                disk["mountpoint"].as_str().unwrap_or_default().to_string(),
                disk["total_bytes"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    row.agent_version = text("agent_version");
    if let Some(connected) = record["connected_at_ms"].as_i64() {
        row.last_seen_ms = row.last_seen_ms.max(Some(connected));
    }
}
