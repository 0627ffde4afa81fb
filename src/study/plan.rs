//! What a study will cost before it runs: estimates of its time and disk, the refusal of a
//! plan too large to run by accident, and the power of its comparisons from the runs
//! already finished (`lenet study plan`).

use std::path::Path;

use super::execute::{STUDY_FILE, status};
use super::seeds::{Decision, Seeds, family_alpha};
use super::summary::{EFFECTS, Power, StudySummary, summarize};
use super::{StudyError, StudyFile};
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

/// What `lenet study plan` says of a study: its size, its cost, and, once final runs have
/// finished in its directory, the power of its comparisons and an adaptive study's decision.
pub struct Plan {
    /// Runs and epochs in all (an adaptive study's most).
    pub runs: u64,
    pub epochs: u64,
    pub tuning_runs: usize,
    /// Final runs at most: configurations x the most seeds.
    pub final_runs: usize,
    /// Whether the seeds are adaptive (the counts are then maxima).
    pub adaptive: bool,
    pub time: TimeEstimate,
    /// Megabytes of run directories.
    pub disk_mb: f64,
    /// `None` until final runs have finished.
    pub power: Option<PlanPower>,
}

/// How long the study takes at one run at a time.
pub enum TimeEstimate {
    /// Every run in the directory is finished.
    Done,
    /// Seconds left, from the mean time of the finished runs.
    Left(f64),
    /// Seconds in all, from [`EPOCH_SECONDS_ESTIMATE`].
    Guess(f64),
}

/// The power of a study's comparisons, from its finished final runs.
pub struct PlanPower {
    /// Each pair of configurations, `(a, b, power)`.
    pub pairs: Vec<(String, String, Option<Power>)>,
    /// A 2x2's effects, at the family's level: `(name, power)`.
    pub effects: Vec<(String, Option<Power>)>,
    /// An adaptive study's decision, once its first stage is finished.
    pub decision: Option<Decision>,
}

impl Plan {
    /// The plan of `study`, with what its directory `dir` (if it has the study) already holds.
    pub fn of(study: &StudyFile, dir: &Path) -> Result<Plan, StudyError> {
        let runs = study.run_count().map_err(|reason| StudyError::File {
            path: study.name.clone(),
            reason,
        })?;
        let epochs = study.epoch_count();
        let status = (dir.join(STUDY_FILE).is_file())
            .then(|| status(study, dir))
            .transpose()?;
        let time = match status.as_ref().and_then(|s| s.seconds_left(study)) {
            Some(left) if left <= 0.0 => TimeEstimate::Done,
            Some(left) => TimeEstimate::Left(left),
            None => TimeEstimate::Guess(epochs as f64 * EPOCH_SECONDS_ESTIMATE),
        };
        // A summary that cannot be made is an error, not "no power figures".
        let power = (status.filter(|s| s.final_done > 0))
            .map(|_| summarize(study, dir).map(|s| PlanPower::of(&s)))
            .transpose()?;
        Ok(Plan {
            runs,
            epochs,
            tuning_runs: study.tuning_runs()?.len(),
            final_runs: study.configs.len() * study.seeds.most(),
            adaptive: matches!(study.seeds, Seeds::Adaptive(_)),
            time,
            disk_mb: runs as f64 * RUN_MEGABYTES_ESTIMATE,
            power,
        })
    }
}

impl PlanPower {
    fn of(summary: &StudySummary) -> PlanPower {
        let pairs = (summary.pairs.iter())
            .map(|p| (p.a.clone(), p.b.clone(), p.power))
            .collect();
        let effects = match &summary.factorial {
            Some(f) => {
                let names = [
                    f.factors[0].clone(),
                    f.factors[1].clone(),
                    "interaction".into(),
                ];
                let alpha = family_alpha(EFFECTS);
                (names.into_iter().zip(f.paired.iter().flatten()))
                    .map(|(name, p)| (name, Power::of_paired_at(p, alpha)))
                    .collect()
            }
            None => Vec::new(),
        };
        PlanPower {
            pairs,
            effects,
            decision: summary.adaptive.as_ref().map(|a| a.decision.clone()),
        }
    }
}
