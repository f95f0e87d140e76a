//! Inventory: what this machine is (OS, CPU, RAM, disks, boot time), sent with the hello
//! at each connect and kept per host by the collector. Strings are cut to the protocol's
//! limits so a strange CPU brand or mount point cannot get the hello refused.

use super::filesystem::real_filesystems;
use crate::collect::series::truncate_to_value_limit;
use sysinfo::{Disks, System};
use vigil_proto::limits::MAX_INVENTORY_DISKS;
use vigil_proto::model::{Disk, Inventory};

/// Describes the machine from sysinfo's current state; the caller refreshes first.
pub(super) fn describe_machine(system: &System, disks: &Disks, agent_version: &str) -> Inventory {
    let text = |value: Option<String>| truncate_to_value_limit(value.unwrap_or_default().trim());
    let cpu_model = system
        .cpus()
        .first()
        .map(|cpu| cpu.brand().trim())
        .unwrap_or_default();
    let logical_cpus = system.cpus().len();
    // Physical cores are what a technician compares with a spec sheet; sysinfo cannot
    // always tell them (some hypervisors, Wine), and then logical CPUs are the best answer.
    let cpu_cores = System::physical_core_count()
        .filter(|cores| *cores > 0)
        .unwrap_or(logical_cpus);
    let disks = real_filesystems(disks)
        .into_iter()
        .take(MAX_INVENTORY_DISKS)
        .map(|filesystem| Disk {
            mountpoint: filesystem.mountpoint,
            device: filesystem.device,
            filesystem: filesystem.filesystem_type,
            total_bytes: filesystem.total_bytes,
        })
        .collect();
    Inventory {
        hostname: text(System::host_name()),
        os_name: text(System::name()),
        os_version: text(System::os_version()),
        kernel_version: text(System::kernel_version()),
        architecture: std::env::consts::ARCH.to_owned(),
        cpu_model: truncate_to_value_limit(cpu_model),
        cpu_cores: u32::try_from(cpu_cores).unwrap_or(u32::MAX),
        memory_bytes: system.total_memory(),
        disks,
        agent_version: truncate_to_value_limit(agent_version),
        boot_time_unix_seconds: i64::try_from(System::boot_time()).unwrap_or(0),
    }
}
