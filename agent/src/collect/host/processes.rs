//! Processes: `process_memory_rss_bytes{process}` for the [`TOP_PROCESS_COUNT`] process
//! names holding the most resident memory — enough to answer "what is eating the RAM"
//! without a series per process of the machine.
//!
//! Processes sharing a name are summed (a browser's dozens of renderers are one "chrome" to
//! a technician), which also keeps the `process` label unique. The set changes from tick to
//! tick as programs come and go; that is the nature of a top-N.

use crate::collect::family::FamilyError;
use crate::collect::series::{truncate_to_value_limit, SeriesSink};
use std::collections::HashMap;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// How many process names are reported per tick.
pub(super) const TOP_PROCESS_COUNT: usize = 10;

/// Which processes the last look found on top, so that the ticks between full scans read
/// only theirs: every process of the machine is read once per relist (a minute at the default
/// interval), the few that hold the most memory every tick. A program that starts and grows
/// large therefore shows up within a relist; the ones on top are always current.
#[derive(Debug, Default)]
pub(super) struct TopProcesses {
    pids: Vec<Pid>,
    /// How many processes the last tick read.
    last_read: usize,
}

impl TopProcesses {
    /// Refreshes resident memory (nothing else: command lines, environments and per-thread
    /// entries cost a lot and are not reported) of every process when `full_scan` or nothing
    /// is known yet, else of the processes on top, and writes the top names.
    pub(super) fn collect(
        &mut self,
        system: &mut System,
        full_scan: bool,
        sink: &mut SeriesSink,
    ) -> Result<(), FamilyError> {
        let full_scan = full_scan || self.pids.is_empty();
        let which = if full_scan {
            ProcessesToUpdate::All
        } else {
            ProcessesToUpdate::Some(&self.pids)
        };
        // sysinfo lists every thread as a process of its own unless told not to: a thread
        // shares its process's memory, and reading each one multiplied the files read.
        self.last_read = system.refresh_processes_specifics(
            which,
            true,
            ProcessRefreshKind::nothing().with_memory().without_tasks(),
        );
        if system.processes().is_empty() {
            return Err(FamilyError::unavailable(
                "the operating system listed no processes",
            ));
        }
        let processes = system
            .processes()
            .values()
            // Threads share their process's memory; counting them would multiply it. (Not
            // asked for above; a guard.)
            .filter(|process| process.thread_kind().is_none())
            .map(|process| {
                (
                    process.name().to_string_lossy().into_owned(),
                    process.memory(),
                )
            });
        let top = top_processes_by_rss(processes, TOP_PROCESS_COUNT);
        // Which processes to read until the next scan: decided by the scan alone (in between,
        // every other process's reading is as old as the scan).
        if full_scan {
            self.pids = system
                .processes()
                .values()
                .filter(|process| {
                    let name = process.name().to_string_lossy();
                    top.iter()
                        .any(|(top_name, _)| *top_name == truncate_to_value_limit(&name))
                })
                .map(|process| process.pid())
                .collect();
        }
        for (name, rss_bytes) in top {
            sink.push(
                "process_memory_rss_bytes",
                &[("process", name.as_str())],
                rss_bytes as f64,
            );
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn last_read(&self) -> usize {
        self.last_read
    }

    #[cfg(test)]
    pub(super) fn pids_on_top(&self) -> usize {
        self.pids.len()
    }
}

/// Sums resident bytes per name and returns at most `limit` names, largest first (ties by
/// name, so the order is stable). Names are cut to the label limit before summing, so two
/// names that only differ past the limit are one entry, not two series with the same label.
/// Processes with no resident memory (kernel threads) are not worth a series.
pub(super) fn top_processes_by_rss(
    processes: impl IntoIterator<Item = (String, u64)>,
    limit: usize,
) -> Vec<(String, u64)> {
    let mut rss_by_name: HashMap<String, u64> = HashMap::new();
    for (name, rss_bytes) in processes {
        let name = if name.trim().is_empty() {
            "(unnamed)".to_owned()
        } else {
            truncate_to_value_limit(&name)
        };
        let total = rss_by_name.entry(name).or_insert(0);
        *total = total.saturating_add(rss_bytes);
    }
    let mut totals: Vec<(String, u64)> = rss_by_name
        .into_iter()
        .filter(|(_, rss_bytes)| *rss_bytes > 0)
        .collect();
    totals.sort_by(|(left_name, left_rss), (right_name, right_rss)| {
        right_rss
            .cmp(left_rss)
            .then_with(|| left_name.cmp(right_name))
    });
    totals.truncate(limit);
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(processes: &[(&str, u64)]) -> Vec<(String, u64)> {
        processes
            .iter()
            .map(|(name, rss)| ((*name).to_owned(), *rss))
            .collect()
    }

    #[test]
    fn returns_at_most_the_limit_largest_first() {
        let many: Vec<(String, u64)> = (1..=25)
            .map(|n| (format!("worker{n}"), n * 1_000))
            .collect();
        let top = top_processes_by_rss(many, TOP_PROCESS_COUNT);
        assert_eq!(top.len(), TOP_PROCESS_COUNT);
        assert_eq!(top[0], ("worker25".to_owned(), 25_000));
        assert_eq!(top[9], ("worker16".to_owned(), 16_000));
    }

    #[test]
    fn processes_sharing_a_name_are_summed_into_one_entry() {
        let top = top_processes_by_rss(
            named(&[
                ("chrome", 300),
                ("postgres", 500),
                ("chrome", 400),
                ("chrome", 100),
            ]),
            TOP_PROCESS_COUNT,
        );
        assert_eq!(top, named(&[("chrome", 800), ("postgres", 500)]));
    }

    #[test]
    fn ties_are_ordered_by_name_and_empty_processes_dropped() {
        let top = top_processes_by_rss(
            named(&[("zsh", 10), ("bash", 10), ("kworker/0:1", 0)]),
            TOP_PROCESS_COUNT,
        );
        assert_eq!(top, named(&[("bash", 10), ("zsh", 10)]));
    }

    #[test]
    fn names_equal_up_to_the_label_limit_are_one_entry() {
        let prefix = "p".repeat(vigil_proto::limits::MAX_VALUE_BYTES);
        let top = top_processes_by_rss(
            vec![
                (format!("{prefix}-one"), 1),
                (format!("{prefix}-two"), 2),
                (String::new(), 5),
            ],
            TOP_PROCESS_COUNT,
        );
        assert_eq!(top, vec![("(unnamed)".to_owned(), 5), (prefix, 3)]);
    }
}
