//! Memory: `system_memory_usage_bytes{state=used|available}`, `system_memory_limit_bytes`
//! and `system_swap_usage_bytes`, from one refresh so the three agree with each other.

use crate::collect::family::FamilyError;
use crate::collect::series::SeriesSink;
use sysinfo::System;

/// Refreshes and writes RAM and swap. "Available" is what the OS could hand to programs
/// without swapping (Linux `MemAvailable`, Windows available physical memory), and "used"
/// is the rest, so used + available is the limit: page cache is not counted as used, which
/// is what makes a memory-exhaustion trend meaningful.
pub(super) fn collect_memory(
    system: &mut System,
    sink: &mut SeriesSink,
) -> Result<(), FamilyError> {
    system.refresh_memory();
    let total = system.total_memory();
    if total == 0 {
        return Err(FamilyError::unavailable(
            "the operating system reported 0 bytes of memory",
        ));
    }
    let available = system.available_memory().min(total);
    let used = total - available;
    sink.push(
        "system_memory_usage_bytes",
        &[("state", "used")],
        used as f64,
    );
    sink.push(
        "system_memory_usage_bytes",
        &[("state", "available")],
        available as f64,
    );
    sink.push("system_memory_limit_bytes", &[], total as f64);
    sink.push("system_swap_usage_bytes", &[], system.used_swap() as f64);
    Ok(())
}
