//! Uptime: `system_uptime_seconds`, how long since the machine booted. A drop between two
//! ticks is how the collector sees an unplanned reboot.

use crate::collect::family::FamilyError;
use crate::collect::series::SeriesSink;
use sysinfo::System;

pub(super) fn collect_uptime(sink: &mut SeriesSink) -> Result<(), FamilyError> {
    // sysinfo answers 0 when it cannot read the uptime; a running machine is never up for
    // exactly 0 s, and reporting it would look like a reboot.
    let uptime_seconds = System::uptime();
    if uptime_seconds == 0 {
        return Err(FamilyError::unavailable(
            "the operating system reported no uptime",
        ));
    }
    sink.push("system_uptime_seconds", &[], uptime_seconds as f64);
    Ok(())
}
