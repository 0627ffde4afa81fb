//! Whether a process still runs, as Linux's `/proc` tells it: what a claim on a study's run
//! and a temporary file of an atomic write need to know of the process that made them.

use std::path::Path;

/// Whether this system has a `/proc` to tell from; where it has none, nothing is known gone.
pub fn can_tell() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Field 22 of `/proc/PID/stat`: the start time in ticks since boot; None when no such
/// process runs, a zombie (state Z: killed or exited, not yet reaped by its parent) or a dead
/// one (X) included.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}
