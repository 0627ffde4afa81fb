//! What a study will cost before it runs: estimates of its time and disk, and the refusal of
//! a plan too large to run by accident.

use super::StudyFile;
use crate::format::thousands;

/// Seconds of one 60,000-image epoch on one run's share of a 2-core machine, for estimates.
pub const EPOCH_SECONDS_ESTIMATE: f64 = 1.0;
/// Disk of a finished run directory of LeNet-5 with Adam's state (model, optimizer, metrics).
pub const RUN_MEGABYTES_ESTIMATE: f64 = 0.75;

/// Seconds in words: "45 s", "12 min", "3.5 h", "4 days".
pub fn human_seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} days", s / 86_400.0)
    }
}

/// Refuses a plan of more than `max_runs` runs, saying what it would cost.
pub fn check_plan_size(study: &StudyFile, max_runs: u64) -> Result<(), String> {
    let runs = study.run_count()?;
    if runs <= max_runs {
        return Ok(());
    }
    let epochs = study.epoch_count();
    Err(format!(
        "study {} plans {} runs ({} epochs: about {} at {EPOCH_SECONDS_ESTIMATE} s per \
         60,000-image epoch, and about {:.1} GB of run directories at {RUN_MEGABYTES_ESTIMATE} MB \
         each); the limit is {} runs. Shrink the grid or the seeds, or pass --max-runs {runs} to \
         run it anyway",
        study.name,
        thousands(runs as usize),
        thousands(epochs as usize),
        human_seconds(epochs as f64 * EPOCH_SECONDS_ESTIMATE),
        runs as f64 * RUN_MEGABYTES_ESTIMATE / 1000.0,
        thousands(max_runs as usize),
    ))
}
