//! Filesystems: `system_filesystem_usage_bytes{mountpoint,state=used|free}` and
//! `system_filesystem_limit_bytes{mountpoint}`, one series per visible mount point of a real
//! filesystem; also the list [`disk_io`](super::disk_io) and the inventory read.
//!
//! Pseudo and virtual filesystems (tmpfs, proc, overlay, squashfs, ...) are left out: they
//! are not where a technician's disks fill up, and container and snap mounts would bury the
//! real disks under hundreds of series. Network filesystems are left out by sysinfo itself,
//! because asking a hung NFS or CIFS server for its size can block the tick for good.

use crate::collect::family::FamilyError;
use crate::collect::series::{truncate_to_value_limit, SeriesSink};
use std::collections::HashMap;
use sysinfo::{DiskRefreshKind, Disks};

/// Filesystem types that hold no user data on a disk of this machine, in lowercase.
const PSEUDO_FILESYSTEM_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// What the refreshes ask sysinfo for: sizes and I/O counters, not the HDD/SSD kind, which
/// costs a lookup per disk and nothing here reports.
fn refresh_kind() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage().with_io_usage()
}

/// True for a filesystem type that is not storage on a disk of this machine.
pub(super) fn is_pseudo_filesystem(filesystem_type: &str) -> bool {
    let filesystem_type = filesystem_type.to_ascii_lowercase();
    PSEUDO_FILESYSTEM_TYPES.contains(&filesystem_type.as_str())
}

/// Reads the list of mounted filesystems with their sizes and I/O counters.
pub(super) fn list_filesystems() -> Disks {
    Disks::new_with_refreshed_list_specifics(refresh_kind())
}

/// Refreshes sizes and I/O counters; with `relist`, also re-reads which filesystems are
/// mounted, dropping the ones that are gone.
pub(super) fn refresh_filesystems(disks: &mut Disks, relist: bool) {
    if relist {
        disks.refresh_specifics(true, refresh_kind());
    } else {
        for disk in disks.list_mut() {
            disk.refresh_specifics(refresh_kind());
        }
    }
}

/// One mounted filesystem as this module reports it, detached from sysinfo so the choice
/// of what to report can be tested on plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountedFilesystem {
    /// Where it is mounted (`/`, `/home`, `C:\`), already cut to the label length limit.
    pub(super) mountpoint: String,
    /// The device as the OS names it (`/dev/sda1`); on Windows the volume label, or the
    /// mount point when the volume has none.
    pub(super) device: String,
    /// The filesystem type (`ext4`, `NTFS`).
    pub(super) filesystem_type: String,
    pub(super) total_bytes: u64,
    /// What an unprivileged program could still write.
    pub(super) available_bytes: u64,
    /// Bytes read from the device since boot.
    pub(super) total_read_bytes: u64,
    /// Bytes written to the device since boot.
    pub(super) total_written_bytes: u64,
}

impl MountedFilesystem {
    fn from_sysinfo(disk: &sysinfo::Disk) -> Self {
        let mountpoint = truncate_to_value_limit(&disk.mount_point().to_string_lossy());
        let name = disk.name().to_string_lossy();
        let device = if name.is_empty() {
            mountpoint.clone()
        } else {
            truncate_to_value_limit(&name)
        };
        let usage = disk.usage();
        Self {
            device,
            filesystem_type: truncate_to_value_limit(&disk.file_system().to_string_lossy()),
            total_bytes: disk.total_space(),
            available_bytes: disk.available_space(),
            total_read_bytes: usage.total_read_bytes,
            total_written_bytes: usage.total_written_bytes,
            mountpoint,
        }
    }

    pub(super) fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// The real filesystems sysinfo lists, one per mount point, in the order they were mounted.
pub(super) fn real_filesystems(disks: &Disks) -> Vec<MountedFilesystem> {
    select_real_filesystems(
        disks
            .list()
            .iter()
            .map(MountedFilesystem::from_sysinfo)
            .collect(),
    )
}

/// Keeps, per mount point, the filesystem mounted last (it hides the earlier ones, and the
/// sizes the OS reports for that path are its sizes), then drops pseudo filesystems and
/// those whose size the OS would not tell (reported as 0).
pub(super) fn select_real_filesystems(mounted: Vec<MountedFilesystem>) -> Vec<MountedFilesystem> {
    let mut index_by_mountpoint: HashMap<String, usize> = HashMap::new();
    let mut visible: Vec<MountedFilesystem> = Vec::new();
    for filesystem in mounted {
        match index_by_mountpoint.get(&filesystem.mountpoint) {
            Some(&index) => visible[index] = filesystem,
            None => {
                index_by_mountpoint.insert(filesystem.mountpoint.clone(), visible.len());
                visible.push(filesystem);
            }
        }
    }
    visible.retain(|filesystem| {
        !is_pseudo_filesystem(&filesystem.filesystem_type) && filesystem.total_bytes > 0
    });
    visible
}

/// Writes used, free and limit per real filesystem. Free is what an unprivileged program
/// can still write, so blocks reserved for root count as used: "full" in a forecast means
/// the point where applications start failing.
pub(super) fn collect_filesystem_usage(
    disks: &Disks,
    sink: &mut SeriesSink,
) -> Result<(), FamilyError> {
    if disks.list().is_empty() {
        return Err(FamilyError::unavailable(
            "the operating system listed no mounted filesystems",
        ));
    }
    for filesystem in real_filesystems(disks) {
        let mountpoint = filesystem.mountpoint.as_str();
        let free = filesystem.available_bytes.min(filesystem.total_bytes);
        sink.push(
            "system_filesystem_usage_bytes",
            &[("mountpoint", mountpoint), ("state", "used")],
            filesystem.used_bytes() as f64,
        );
        sink.push(
            "system_filesystem_usage_bytes",
            &[("mountpoint", mountpoint), ("state", "free")],
            free as f64,
        );
        sink.push(
            "system_filesystem_limit_bytes",
            &[("mountpoint", mountpoint)],
            filesystem.total_bytes as f64,
        );
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn mounted(
        device: &str,
        mountpoint: &str,
        filesystem_type: &str,
        total_bytes: u64,
    ) -> MountedFilesystem {
        MountedFilesystem {
            mountpoint: mountpoint.to_owned(),
            device: device.to_owned(),
            filesystem_type: filesystem_type.to_owned(),
            total_bytes,
            available_bytes: total_bytes / 4,
            total_read_bytes: 1_000,
            total_written_bytes: 2_000,
        }
    }

    #[test]
    fn pseudo_filesystems_are_recognised_and_real_ones_are_not() {
        for pseudo in [
            "tmpfs",
            "devtmpfs",
            "overlay",
            "squashfs",
            "proc",
            "sysfs",
            "cgroup",
            "cgroup2",
            "devpts",
            "mqueue",
            "debugfs",
            "tracefs",
            "fuse.lxcfs",
            "autofs",
            "nsfs",
        ] {
            assert!(is_pseudo_filesystem(pseudo), "{pseudo}");
        }
        for real in [
            "ext4", "xfs", "btrfs", "zfs", "vfat", "NTFS", "ReFS", "exFAT", "apfs", "fuseblk",
        ] {
            assert!(!is_pseudo_filesystem(real), "{real}");
        }
    }

    #[test]
    fn filesystem_type_case_does_not_matter() {
        assert!(is_pseudo_filesystem("TMPFS"));
        assert!(is_pseudo_filesystem("Overlay"));
    }

    #[test]
    fn keeps_real_filesystems_and_drops_pseudo_and_sizeless_ones() {
        let selected = select_real_filesystems(vec![
            mounted("/dev/sda2", "/", "ext4", 100),
            mounted("tmpfs", "/tmp", "tmpfs", 50),
            mounted(
                "overlay",
                "/var/lib/docker/overlay2/x/merged",
                "overlay",
                100,
            ),
            mounted("/dev/loop3", "/snap/core/1", "squashfs", 10),
            mounted("/dev/sda1", "/boot/efi", "vfat", 1),
            mounted("/dev/sr0", "/media/cdrom", "udf", 0),
        ]);
        let mountpoints: Vec<&str> = selected.iter().map(|f| f.mountpoint.as_str()).collect();
        assert_eq!(mountpoints, ["/", "/boot/efi"]);
    }

    #[test]
    fn one_filesystem_per_mountpoint_and_the_last_mounted_wins() {
        let selected = select_real_filesystems(vec![
            mounted("/dev/sda2", "/", "ext4", 100),
            mounted("/dev/sdb1", "/data", "xfs", 200),
            mounted("/dev/sdc1", "/data", "xfs", 300),
        ]);
        assert_eq!(selected.len(), 2);
        assert_eq!(selected[1].device, "/dev/sdc1");
        assert_eq!(selected[1].total_bytes, 300);
    }

    #[test]
    fn a_pseudo_filesystem_mounted_over_a_real_one_hides_it() {
        // statvfs on the path answers for the tmpfs now, so the ext4 numbers are not known.
        let selected = select_real_filesystems(vec![
            mounted("/dev/sda3", "/scratch", "ext4", 100),
            mounted("tmpfs", "/scratch", "tmpfs", 10),
        ]);
        assert!(selected.is_empty());
    }

    #[test]
    fn used_is_total_minus_available_and_never_negative() {
        let mut filesystem = mounted("/dev/sda2", "/", "ext4", 100);
        assert_eq!(filesystem.used_bytes(), 75);
        filesystem.available_bytes = 150;
        assert_eq!(filesystem.used_bytes(), 0);
    }
}
