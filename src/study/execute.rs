//! Running a study: its share of the runs (`--shard K/N`), several at a time (`--jobs`),
//! skipping finished runs and resuming interrupted ones; its status; merging the directories
//! of shards that ran apart.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Phase, RunSpec, StudyError, StudyFile, check_run_dir, choose, finished, run_dir};
use crate::data::Mnist;
use crate::train::metrics::Summary;
use crate::train::run::{self, Outcome};
use crate::train::{Silent, TrainError};

/// The study file is copied here, so a directory always says what it holds.
pub const STUDY_FILE: &str = "study.toml";

/// Part K of N (1-based) of a study's runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 1, count: 1 };
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let err = || format!("'{s}' is not a shard: expected K/N with 1 <= K <= N, e.g. 2/3");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count) = (
            k.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

/// This shard's runs: runs sorted by ID (duplicates once), every N-th from the K-th. The
/// split depends only on the runs, so every machine computes the same one.
pub fn select(specs: &[RunSpec], shard: Shard) -> Vec<RunSpec> {
    let mut sorted: Vec<RunSpec> = specs.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted.dedup_by(|a, b| a.id == b.id);
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index - 1)
        .map(|(_, s)| s)
        .collect()
}

/// How to execute.
#[derive(Clone, Copy, Debug)]
pub struct ExecOptions {
    pub shard: Shard,
    /// Runs at a time.
    pub jobs: usize,
    /// Threads per run.
    pub threads: usize,
}

/// What a call to [`run_study`] achieved.
#[derive(Clone, Debug, PartialEq)]
pub enum StudyOutcome {
    /// Every run of this shard is finished.
    Complete,
    /// This shard's tuning runs are done, but others' are not, so final runs cannot be planned.
    WaitingForTuning { done: usize, total: usize },
}

/// Writes the study file into `dir`, or checks that the one there is the same study.
pub fn prepare(dir: &Path, text: &str) -> Result<(), StudyError> {
    let io = |source| StudyError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir.join("runs")).map_err(io)?;
    let path = dir.join(STUDY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => Ok(()),
        Ok(_) => Err(StudyError::Invalid(format!(
            "{} holds a different study; use another --out",
            dir.display()
        ))),
        Err(_) => crate::train::write_atomically(&path, text.as_bytes()).map_err(StudyError::from),
    }
}

/// Runs this shard's runs of the study in `dir`; `done` is told about every run that ends
/// (with its summary, or `None` when it was already finished).
pub fn run_study(
    study: &StudyFile,
    data: &Mnist,
    dir: &Path,
    opts: ExecOptions,
    done: &(dyn Fn(&RunSpec, &Summary) + Sync),
) -> Result<StudyOutcome, StudyError> {
    let tuning = study.tuning_runs()?;
    execute(&select(&tuning, opts.shard), data, dir, opts, done)?;
    let Some(chosen) = choose(study, dir)? else {
        let total = select(&tuning, Shard::ALL).len();
        let finished_count = select(&tuning, Shard::ALL)
            .iter()
            .filter(|s| finished(dir, &s.id).is_some())
            .count();
        return Ok(StudyOutcome::WaitingForTuning {
            done: finished_count,
            total,
        });
    };
    let finals = study.final_runs(&chosen)?;
    execute(&select(&finals, opts.shard), data, dir, opts, done)?;
    Ok(StudyOutcome::Complete)
}

/// Runs every unfinished spec, `opts.jobs` at a time.
fn execute(
    specs: &[RunSpec],
    data: &Mnist,
    dir: &Path,
    opts: ExecOptions,
    done: &(dyn Fn(&RunSpec, &Summary) + Sync),
) -> Result<(), StudyError> {
    let todo: Vec<&RunSpec> = specs
        .iter()
        .filter(|s| finished(dir, &s.id).is_none())
        .collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<StudyError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(opts.threads.max(1))
                    .build()
                {
                    Ok(pool) => pool,
                    Err(e) => {
                        *failure.lock().expect("lock") =
                            Some(StudyError::Invalid(format!("cannot start threads: {e}")));
                        return;
                    }
                };
                loop {
                    if failure.lock().expect("lock").is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(spec) = todo.get(i) else { return };
                    match pool.install(|| run_one(spec, data, dir)) {
                        Ok(summary) => done(spec, &summary),
                        Err(e) => {
                            *failure.lock().expect("lock") = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failure.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs (or resumes) one run to its end; a diverged run is an ending too.
fn run_one(spec: &RunSpec, data: &Mnist, dir: &Path) -> Result<Summary, StudyError> {
    let rdir = run_dir(dir, &spec.id);
    check_run_dir(&rdir, spec)?;
    let outcome = if rdir.join(run::CONFIG).exists() {
        run::resume(data, &rdir, &mut Silent, None)
    } else {
        run::start(spec.train.clone(), data, &rdir, &mut Silent, None)
    };
    match outcome {
        Ok(Outcome::Finished(summary)) => Ok(summary),
        Ok(Outcome::Paused { .. }) => unreachable!("no pause requested"),
        Err(TrainError::Diverged { .. }) => Ok(run::read_summary(&rdir)?),
        Err(e) => Err(e.into()),
    }
}

/// Where a study stands.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyStatus {
    pub tuning_total: usize,
    pub tuning_done: usize,
    /// Known once tuning is complete.
    pub final_total: Option<usize>,
    pub final_done: usize,
    /// Runs with a checkpoint but no result: running now, or interrupted.
    pub started: usize,
    pub diverged: usize,
    /// Mean wall seconds of the finished runs of each phase.
    pub mean_tuning_seconds: Option<f64>,
    pub mean_final_seconds: Option<f64>,
}

impl StudyStatus {
    /// Seconds left at one run at a time (divide by the parallel runs), from the mean run
    /// time of each phase; final runs take the tuning runs' time per epoch when none has
    /// finished yet.
    pub fn seconds_left(&self, study: &StudyFile) -> Option<f64> {
        let tune_left = (self.tuning_total - self.tuning_done) as f64;
        let tune_mean = self.mean_tuning_seconds.unwrap_or(0.0);
        let final_mean = self.mean_final_seconds.or_else(|| {
            let t = study.tuning.as_ref()?;
            let epochs = study
                .defaults
                .epochs
                .unwrap_or(crate::train::options::DEFAULT_EPOCHS);
            Some(self.mean_tuning_seconds? * epochs as f64 / t.epochs as f64)
        })?;
        let final_total = self
            .final_total
            .unwrap_or(study.configs.len() * study.seeds);
        Some(tune_left * tune_mean + (final_total - self.final_done) as f64 * final_mean)
    }
}

pub fn status(study: &StudyFile, dir: &Path) -> Result<StudyStatus, StudyError> {
    let tuning = select(&study.tuning_runs()?, Shard::ALL);
    let mut s = StudyStatus {
        tuning_total: tuning.len(),
        tuning_done: 0,
        final_total: None,
        final_done: 0,
        started: 0,
        diverged: 0,
        mean_tuning_seconds: None,
        mean_final_seconds: None,
    };
    let count = |specs: &[RunSpec], phase: Phase, s: &mut StudyStatus| {
        let mut seconds = Vec::new();
        for spec in specs {
            match finished(dir, &spec.id) {
                Some(summary) => {
                    seconds.push(summary.wall_seconds);
                    if summary.status != crate::train::metrics::Status::Finished {
                        s.diverged += 1;
                    }
                }
                None if run_dir(dir, &spec.id).join(run::CONFIG).exists() => s.started += 1,
                None => {}
            }
        }
        let mean =
            (!seconds.is_empty()).then(|| seconds.iter().sum::<f64>() / seconds.len() as f64);
        match phase {
            Phase::Tune => (s.tuning_done, s.mean_tuning_seconds) = (seconds.len(), mean),
            Phase::Final => (s.final_done, s.mean_final_seconds) = (seconds.len(), mean),
        }
    };
    count(&tuning, Phase::Tune, &mut s);
    if let Some(chosen) = choose(study, dir)? {
        let finals = select(&study.final_runs(&chosen)?, Shard::ALL);
        s.final_total = Some(finals.len());
        count(&finals, Phase::Final, &mut s);
    }
    Ok(s)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Copies the finished runs of study directories `sources` into `out`. Every source must hold
/// the same study; a run already in `out` is kept. Returns how many runs were copied.
pub fn merge(out: &Path, sources: &[&Path]) -> Result<usize, StudyError> {
    let mut copied = 0;
    for src in sources {
        let io = |source| StudyError::Io {
            path: src.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(src.join(STUDY_FILE)).map_err(io)?;
        prepare(out, &text)?;
        let runs = src.join("runs");
        let Ok(entries) = std::fs::read_dir(&runs) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let id = entry.file_name().to_string_lossy().to_string();
            if finished(src, &id).is_none() || finished(out, &id).is_some() {
                continue;
            }
            let target = run_dir(out, &id);
            let tmp = out.join("runs").join(format!(".{id}.merging"));
            copy_dir(&entry.path(), &tmp).map_err(io)?;
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&tmp, &target).map_err(io)?;
            copied += 1;
        }
    }
    Ok(copied)
}
