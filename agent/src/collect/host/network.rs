//! Network I/O: `system_network_io_bytes_total{device,direction=receive|transmit}`, bytes
//! since boot (or since the interface appeared) per interface.
//!
//! These are the OS's running totals (sysinfo's `total_received`), not sysinfo's
//! `received`, which is the difference since its previous refresh: a counter survives a
//! missed tick or an agent restart, and the collector derives rates from it.

use crate::collect::family::FamilyError;
use crate::collect::series::SeriesSink;
use sysinfo::Networks;

/// True for interfaces whose traffic says nothing about the machine's health: loopback
/// (`lo`, `lo0`, Windows' "Loopback Pseudo-Interface 1"), and the host ends of container
/// veth pairs, which get a new random name for every container started and would leave a
/// trail of dead series behind.
pub(super) fn is_excluded_interface(name: &str) -> bool {
    let is_loopback = name == "lo"
        || name
            .strip_prefix("lo")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_digit()))
        || name.to_ascii_lowercase().contains("loopback");
    is_loopback || name.starts_with("veth")
}

/// Refreshes (re-listing, which costs no more than refreshing) and writes both directions
/// per interface.
pub(super) fn collect_network_io(
    networks: &mut Networks,
    sink: &mut SeriesSink,
) -> Result<(), FamilyError> {
    networks.refresh(true);
    let mut interfaces: Vec<_> = networks
        .list()
        .iter()
        .filter(|(name, _)| !is_excluded_interface(name))
        .collect();
    // The list is a hash map; sorted output keeps ticks and `collect --once` readable.
    interfaces.sort_by_key(|(name, _)| *name);
    for (name, data) in interfaces {
        sink.push(
            "system_network_io_bytes_total",
            &[("device", name.as_str()), ("direction", "receive")],
            data.total_received() as f64,
        );
        sink.push(
            "system_network_io_bytes_total",
            &[("device", name.as_str()), ("direction", "transmit")],
            data.total_transmitted() as f64,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_container_veths_are_excluded() {
        for excluded in ["lo", "lo0", "Loopback Pseudo-Interface 1", "veth3f2a1b9"] {
            assert!(is_excluded_interface(excluded), "{excluded}");
        }
    }

    #[test]
    fn real_and_bridge_interfaces_are_kept() {
        for kept in [
            "eth0", "enp3s0", "wlan0", "wlp2s0", "docker0", "br0", "bond0", "Ethernet", "Wi-Fi",
            "local0", "lowpan0",
        ] {
            assert!(!is_excluded_interface(kept), "{kept}");
        }
    }
}
