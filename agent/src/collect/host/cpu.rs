//! CPU: `system_cpu_utilization_ratio` and, where the OS keeps one, `system_load_average_1m`.
//!
//! [`refresh_cpu_usage`] is the only place the agent asks sysinfo for new CPU times. Under
//! Wine, sysinfo's second refresh calls a PDH function Wine lacks; a fallback belongs here
//! and nowhere else.

use crate::collect::family::FamilyError;
use crate::collect::series::SeriesSink;
use sysinfo::System;

/// Takes a new CPU reading. Utilization is computed between this reading and the previous
/// one; sysinfo ignores a call less than [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] after the
/// last and keeps the previous value. Under Wine it does nothing: sysinfo's refresh there
/// calls `PdhEnumObjectsA`, which Wine does not implement and which aborts the process
/// (no panic to catch), so the CPU family reports itself unavailable instead.
pub(super) fn refresh_cpu_usage(system: &mut System) {
    if !running_under_wine() {
        system.refresh_cpu_usage();
    }
}

/// Whether this Windows build runs under Wine rather than Windows. Wine's prefixes carry
/// its own configuration tool, which no Windows installation has.
fn running_under_wine() -> bool {
    #[cfg(windows)]
    {
        static UNDER_WINE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *UNDER_WINE.get_or_init(|| {
            let system_root = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\windows".into());
            std::path::Path::new(&system_root)
                .join("system32")
                .join("winecfg.exe")
                .exists()
        })
    }
    #[cfg(not(windows))]
    {
        false
    }
}

/// Refreshes and writes the share of time all logical CPUs were busy since the last tick.
pub(super) fn collect_cpu_utilization(
    system: &mut System,
    sink: &mut SeriesSink,
) -> Result<(), FamilyError> {
    if running_under_wine() {
        return Err(FamilyError::unavailable(
            "CPU usage needs Windows performance counters (PDH), which Wine does not implement",
        ));
    }
    refresh_cpu_usage(system);
    if system.cpus().is_empty() {
        return Err(FamilyError::unavailable(
            "the operating system listed no CPUs",
        ));
    }
    let percent = system.global_cpu_usage();
    if !percent.is_finite() {
        return Err(FamilyError::unavailable(format!(
            "CPU usage read as {percent}, not a number"
        )));
    }
    sink.push(
        "system_cpu_utilization_ratio",
        &[],
        utilization_ratio_from_percent(percent),
    );
    Ok(())
}

/// sysinfo speaks percent; the catalog speaks ratio. Clamped because rounding between the
/// busy and total counters can land a hair outside 0..=100.
fn utilization_ratio_from_percent(percent: f32) -> f64 {
    (f64::from(percent) / 100.0).clamp(0.0, 1.0)
}

/// Writes the one-minute load average. Not called on Windows, which has no load average
/// (sysinfo would report a constant 0 there, which a chart would show as an idle machine).
#[cfg(not(windows))]
pub(super) fn collect_load_average(sink: &mut SeriesSink) -> Result<(), FamilyError> {
    let load = System::load_average();
    if !load.one.is_finite() || load.one < 0.0 {
        return Err(FamilyError::unavailable(format!(
            "load average read as {}",
            load.one
        )));
    }
    sink.push("system_load_average_1m", &[], load.one);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_becomes_a_ratio_clamped_to_zero_and_one() {
        assert_eq!(utilization_ratio_from_percent(0.0), 0.0);
        assert_eq!(utilization_ratio_from_percent(50.0), 0.5);
        assert_eq!(utilization_ratio_from_percent(100.0), 1.0);
        assert_eq!(utilization_ratio_from_percent(100.4), 1.0);
        assert_eq!(utilization_ratio_from_percent(-0.1), 0.0);
    }
}
