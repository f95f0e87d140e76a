//! Disk I/O: `system_disk_io_bytes_total{device,direction=read|write}`, bytes moved since
//! boot, per device that holds a real filesystem.
//!
//! sysinfo counts I/O per mounted filesystem (Linux `/proc/diskstats` for the partition or
//! mapper device, Windows `IOCTL_DISK_PERFORMANCE` per volume), so the devices here are the
//! ones [`filesystem`](super::filesystem) reports, not every block device of the machine.

use super::filesystem::{real_filesystems, MountedFilesystem};
use crate::collect::family::FamilyError;
use crate::collect::series::SeriesSink;
use std::collections::HashSet;
use sysinfo::Disks;

/// Cumulative counters for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceIo {
    pub(super) device: String,
    pub(super) total_read_bytes: u64,
    pub(super) total_written_bytes: u64,
}

/// Writes read and written bytes per device, from the refresh the filesystem family made.
pub(super) fn collect_disk_io(disks: &Disks, sink: &mut SeriesSink) -> Result<(), FamilyError> {
    for device_io in devices_with_io_counters(&real_filesystems(disks)) {
        let device = device_io.device.as_str();
        sink.push(
            "system_disk_io_bytes_total",
            &[("device", device), ("direction", "read")],
            device_io.total_read_bytes as f64,
        );
        sink.push(
            "system_disk_io_bytes_total",
            &[("device", device), ("direction", "write")],
            device_io.total_written_bytes as f64,
        );
    }
    Ok(())
}

/// One entry per device, the first time it appears: a device mounted at several places
/// (bind mounts, btrfs subvolumes) has one set of counters, and reporting it twice would
/// double it in any sum. Devices with both counters at 0 are left out: sysinfo leaves them
/// at 0 when the OS keeps no counters for the device (ZFS datasets, some virtual disks),
/// while a mounted real device has always been read at least once, to mount it.
pub(super) fn devices_with_io_counters(filesystems: &[MountedFilesystem]) -> Vec<DeviceIo> {
    let mut seen_devices = HashSet::new();
    filesystems
        .iter()
        .filter(|filesystem| filesystem.total_read_bytes > 0 || filesystem.total_written_bytes > 0)
        .map(|filesystem| DeviceIo {
            device: io_device_label(filesystem),
            total_read_bytes: filesystem.total_read_bytes,
            total_written_bytes: filesystem.total_written_bytes,
        })
        .filter(|device_io| seen_devices.insert(device_io.device.clone()))
        .collect()
}

/// The `device` label. On Windows sysinfo's disk name is the volume label ("Windows",
/// "Data", often empty and not unique) and its counters are per volume, so the drive
/// (`C:`) is what names a volume's I/O; elsewhere the device path (`/dev/nvme0n1p2`).
fn io_device_label(filesystem: &MountedFilesystem) -> String {
    if cfg!(windows) {
        filesystem.mountpoint.trim_end_matches('\\').to_owned()
    } else {
        filesystem.device.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::filesystem::tests::mounted;
    use super::*;

    #[test]
    fn a_device_mounted_twice_is_counted_once() {
        let devices = devices_with_io_counters(&[
            mounted("/dev/sda2", "/", "btrfs", 100),
            mounted("/dev/sda2", "/home", "btrfs", 100),
            mounted("/dev/sdb1", "/data", "xfs", 100),
        ]);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].total_read_bytes, 1_000);
        assert_eq!(devices[0].total_written_bytes, 2_000);
    }

    #[test]
    fn devices_without_counters_are_left_out() {
        let mut dataset = mounted("rpool/ROOT/debian", "/", "zfs", 100);
        dataset.total_read_bytes = 0;
        dataset.total_written_bytes = 0;
        let mut read_only = mounted("/dev/sdb1", "/archive", "ext4", 100);
        read_only.total_written_bytes = 0;

        let devices = devices_with_io_counters(&[dataset, read_only]);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].total_read_bytes, 1_000);
    }

    #[cfg(not(windows))]
    #[test]
    fn devices_are_named_by_their_device_path() {
        let devices = devices_with_io_counters(&[mounted("/dev/nvme0n1p2", "/", "ext4", 100)]);
        assert_eq!(devices[0].device, "/dev/nvme0n1p2");
    }
}
