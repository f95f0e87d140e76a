//! What a run cost the receiver and the generator: CPU seconds and resident memory read from
//! `/proc/PID/stat` and `/proc/PID/status`, and the growth of the receiver's data folder.
//!
//! The same reading is made for Vigil's collector, Prometheus and VictoriaMetrics, so their
//! figures compare. Resident memory is sampled every second and the highest value kept
//! (the process's own high-water mark, `VmHWM`, would include whatever happened before the
//! run began).

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Linux reports CPU time in `/proc` in units of USER_HZ, which is 100 on every
/// architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("reading '{path}': {source}; is process {pid} running? pass --collector-pid the receiver's process id")]
    Proc {
        pid: u32,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{path}' has no field '{field}'; this is not a Linux /proc file")]
    Format { path: PathBuf, field: &'static str },
}

/// CPU time used by process `pid` so far, in seconds (user and system).
pub fn cpu_seconds(pid: u32) -> Result<f64, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|source| MeasureError::Proc {
        pid,
        path: path.clone(),
        source,
    })?;
    // The command name (field 2) may hold spaces and parentheses; fields after the last ')'
    // start at field 3 (state). utime and stime are fields 14 and 15.
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or(MeasureError::Format {
            path: path.clone(),
            field: "comm",
        })?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |position: usize, field| {
        fields
            .get(position)
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or(MeasureError::Format {
                path: path.clone(),
                field,
            })
    };
    let user = ticks(11, "utime")?;
    let system = ticks(12, "stime")?;
    Ok((user + system) as f64 / USER_HZ)
}

/// Resident memory of process `pid` now, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, MeasureError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(|source| MeasureError::Proc {
        pid,
        path: path.clone(),
        source,
    })?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or(MeasureError::Format {
            path,
            field: "VmRSS",
        })
}

/// Bytes in the files under `dir` (sizes as allocated on disk), 0 if it does not exist.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut folders = vec![dir.to_path_buf()];
    // Bounded by the tree itself; a file vanishing mid-walk (compaction) is skipped.
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                folders.push(entry.path());
            } else {
                total += metadata.blocks() * 512;
            }
        }
    }
    total
}

/// What one process cost over a run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProcessCost {
    pub pid: u32,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    /// Bytes in its data folder at the start and the end of the run (when one was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes_start: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes_end: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_growth_bytes: Option<i64>,
    /// Per million acknowledged samples (filled in by the report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds_per_million_samples: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes_per_million_samples: Option<f64>,
}

/// Watches one process over a run: CPU at the start and the end, RSS every second.
#[derive(Debug)]
pub struct ProcessWatch {
    pid: u32,
    data_dir: Option<PathBuf>,
    cpu_start: f64,
    disk_start: Option<u64>,
    peak_rss: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl ProcessWatch {
    /// Starts watching `pid` (and the growth of `data_dir`, if given).
    pub fn start(pid: u32, data_dir: Option<&Path>) -> Result<Self, MeasureError> {
        use std::sync::atomic::Ordering;
        let cpu_start = cpu_seconds(pid)?;
        let peak_rss = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_bytes(pid)?));
        let stop = CancellationToken::new();
        let sampler = {
            let peak_rss = peak_rss.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut every_second = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = every_second.tick() => {
                            if let Ok(rss) = rss_bytes(pid) {
                                peak_rss.fetch_max(rss, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        };
        Ok(Self {
            pid,
            data_dir: data_dir.map(Path::to_path_buf),
            cpu_start,
            disk_start: data_dir.map(disk_bytes),
            peak_rss,
            sampler,
            stop,
        })
    }

    /// Stops watching and says what the process cost since [`Self::start`].
    pub async fn finish(self) -> Result<ProcessCost, MeasureError> {
        use std::sync::atomic::Ordering;
        self.stop.cancel();
        let _ = self.sampler.await;
        let cpu_end = cpu_seconds(self.pid)?;
        if let Ok(rss) = rss_bytes(self.pid) {
            self.peak_rss.fetch_max(rss, Ordering::Relaxed);
        }
        let disk_end = self.data_dir.as_deref().map(disk_bytes);
        Ok(ProcessCost {
            pid: self.pid,
            cpu_seconds: cpu_end - self.cpu_start,
            peak_rss_bytes: self.peak_rss.load(Ordering::Relaxed),
            disk_bytes_start: self.disk_start,
            disk_bytes_end: disk_end,
            disk_growth_bytes: self
                .disk_start
                .zip(disk_end)
                .map(|(start, end)| end as i64 - start as i64),
            cpu_seconds_per_million_samples: None,
            disk_bytes_per_million_samples: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_holds_memory() {
        let pid = std::process::id();
        // Burn a little CPU so that at least one tick is counted.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        assert!(rss_bytes(pid).unwrap() > 1024 * 1024);
    }

    #[test]
    fn a_missing_process_is_named_in_the_error() {
        let error = cpu_seconds(u32::MAX - 1).unwrap_err().to_string();
        assert!(error.contains("--collector-pid"), "{error}");
    }

    #[test]
    fn disk_bytes_counts_files_in_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 10_000]).unwrap();
        assert!(disk_bytes(dir.path()) >= 10_000);
        assert_eq!(disk_bytes(&dir.path().join("missing")), 0);
    }
}
