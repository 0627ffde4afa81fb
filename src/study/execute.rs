//! Running a study: its share of the runs (`--shard K/N`), several at a time (`--jobs`),
//! skipping finished runs and resuming interrupted ones; its status; merging the directories
//! of shards that ran apart.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use super::claim::{self, Attempt};
use super::tune::tuning_plan;
use super::{Phase, RunSpec, StudyError, StudyFile, check_run_dir, final_seeds, finished, run_dir};
use crate::data::DataCache;
use crate::train::metrics::Summary;
use crate::train::run::{self, Outcome};
use crate::train::{EpochMetrics, Observer, TrainError};

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
    /// A claim on a run from another host whose heartbeat is older than this is taken over
    /// (see [`claim`]).
    pub claim_timeout: Duration,
}

/// What a study's execution tells whoever shows its progress. Called from the worker
/// threads.
pub trait StudyObserver: Sync {
    /// These runs of the phase about to run are finished already (by earlier or other
    /// processes, or by this one in an earlier phase: an adaptive study's final runs include
    /// its first stage).
    fn already_finished(&self, _runs: &[&RunSpec]) {}
    /// This process starts (or resumes) a run.
    fn run_started(&self, _spec: &RunSpec) {}
    /// A run of this process finished an epoch.
    fn epoch_done(&self, _spec: &RunSpec, _metrics: &EpochMetrics) {}
    /// A run of this process ended (finished or diverged).
    fn run_done(&self, spec: &RunSpec, summary: &Summary);
    /// The plan grew by `runs` runs of this shard that it did not hold when the study
    /// started: a tuning grid extended at its edge.
    fn planned_more(&self, _runs: usize) {}
    /// Every run left is held by other processes sharing the directory; this one waits.
    fn waiting(&self, _held: usize) {}
}

/// What a call to [`run_study`] achieved.
#[derive(Clone, Debug, PartialEq)]
pub enum StudyOutcome {
    /// Every run of this shard is finished.
    Complete,
    /// This shard's tuning runs are done, but others' are not, so final runs cannot be planned.
    WaitingForTuning { done: usize, total: usize },
    /// This shard's runs of an adaptive study's first stage are done, but others' are not, so
    /// the number of seeds cannot be decided.
    WaitingForSeeds { done: usize, total: usize },
}

/// How many of `specs` are finished.
fn finished_count(dir: &Path, specs: &[RunSpec]) -> Result<usize, StudyError> {
    let mut n = 0;
    for s in specs {
        n += usize::from(finished(dir, &s.id)?.is_some());
    }
    Ok(n)
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

/// Runs this shard's runs of the study in `dir`, telling `observer` what happens.
pub fn run_study(
    study: &StudyFile,
    data: &DataCache,
    dir: &Path,
    opts: ExecOptions,
    observer: &dyn StudyObserver,
) -> Result<StudyOutcome, StudyError> {
    // Tuning, and its extensions as the finished runs call for them: each pass runs this
    // shard's share of what is planned so far.
    let mut plan = tuning_plan(study, dir)?;
    let chosen = loop {
        if let Some(chosen) = plan.chosen.take() {
            break chosen;
        }
        execute(&select(&plan.runs, opts.shard), data, dir, opts, observer)?;
        let next = tuning_plan(study, dir)?;
        if next.chosen.is_none() && next.runs.len() == plan.runs.len() {
            // Nothing new to plan: what is left belongs to other shards.
            let all = select(&next.runs, Shard::ALL);
            return Ok(StudyOutcome::WaitingForTuning {
                done: finished_count(dir, &all)?,
                total: all.len(),
            });
        }
        let grown = (select(&next.runs, opts.shard).len())
            .saturating_sub(select(&plan.runs, opts.shard).len());
        observer.planned_more(grown);
        plan = next;
    };
    // An adaptive study's first stage (a fixed study's every seed), then the rest.
    let first = study.final_runs(&chosen, study.seeds.first())?;
    execute(&select(&first, opts.shard), data, dir, opts, observer)?;
    let Some((seeds, _)) = final_seeds(study, dir, &chosen)? else {
        let all = select(&first, Shard::ALL);
        return Ok(StudyOutcome::WaitingForSeeds {
            done: finished_count(dir, &all)?,
            total: all.len(),
        });
    };
    let finals = study.final_runs(&chosen, seeds)?;
    execute(&select(&finals, opts.shard), data, dir, opts, observer)?;
    Ok(StudyOutcome::Complete)
}

/// Whether run `spec` is finished; an inconsistent finished run is set aside (moved to
/// `invalid/`, named in a warning) and counts as not finished, so it is trained again.
fn is_finished(dir: &Path, spec: &RunSpec) -> Result<bool, StudyError> {
    match finished(dir, &spec.id) {
        Ok(found) => Ok(found.is_some()),
        Err(StudyError::InvalidRun { dir: run, why }) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = dir.join("invalid").join(format!("{}-{stamp}", spec.id));
            let moved = std::fs::create_dir_all(dir.join("invalid"))
                .and_then(|_| std::fs::rename(&run, &aside));
            match moved {
                Ok(()) => eprintln!(
                    "warning: run {run} is inconsistent ({why}); moved to {} and trained again",
                    aside.display()
                ),
                // Another process sharing the directory moved it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StudyError::Io { path: run, source });
                }
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Runs every unfinished spec, `opts.jobs` at a time. Each run is claimed first, so
/// processes sharing `dir` share the work: a run another process holds is left to it, and
/// once every run left is held elsewhere, this process waits until they are finished (or
/// their claims go stale and it takes them over).
fn execute(
    specs: &[RunSpec],
    data: &DataCache,
    dir: &Path,
    opts: ExecOptions,
    observer: &dyn StudyObserver,
) -> Result<(), StudyError> {
    let (mut todo, mut done): (Vec<&RunSpec>, Vec<&RunSpec>) = (Vec::new(), Vec::new());
    for s in specs {
        if is_finished(dir, s)? {
            done.push(s);
        } else {
            todo.push(s);
        }
    }
    observer.already_finished(&done);
    let pending = Mutex::new(todo);
    let failure: Mutex<Option<StudyError>> = Mutex::new(None);
    let fail = |e: StudyError| {
        failure.lock().expect("lock").get_or_insert(e);
    };
    let jobs = opts
        .jobs
        .clamp(1, pending.lock().expect("lock").len().max(1));
    let waiting_told = AtomicUsize::new(usize::MAX);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(opts.threads.max(1))
                    .build()
                {
                    Ok(pool) => pool,
                    Err(e) => {
                        return fail(StudyError::Invalid(format!("cannot start threads: {e}")));
                    }
                };
                loop {
                    if failure.lock().expect("lock").is_some() {
                        return;
                    }
                    let next = match next_run(&pending, dir, opts.claim_timeout) {
                        Ok(next) => next,
                        Err(e) => return fail(e),
                    };
                    let (spec, claim) = match next {
                        Next::Run(spec, claim) => (spec, claim),
                        Next::Done => return,
                        Next::Wait(held) => {
                            if waiting_told.swap(held, Ordering::SeqCst) != held {
                                observer.waiting(held);
                            }
                            std::thread::sleep(Duration::from_millis(250));
                            continue;
                        }
                    };
                    observer.run_started(spec);
                    let result = pool.install(|| run_one(spec, data, dir, observer));
                    drop(claim);
                    match result {
                        Ok(summary) => observer.run_done(spec, &summary),
                        Err(e) => return fail(e),
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

/// What a worker does next.
enum Next<'a> {
    /// Train this run, under this claim.
    Run(&'a RunSpec, claim::Claim),
    /// Every run left is held by other processes: this many.
    Wait(usize),
    /// Nothing is left.
    Done,
}

/// Takes the first pending run that nobody holds, claiming it; runs that have meanwhile
/// been finished (by another process) leave the list.
fn next_run<'a>(
    pending: &Mutex<Vec<&'a RunSpec>>,
    dir: &Path,
    timeout: Duration,
) -> Result<Next<'a>, StudyError> {
    let mut pending = pending.lock().expect("lock");
    let mut i = 0;
    while i < pending.len() {
        let spec = pending[i];
        if is_finished(dir, spec)? {
            pending.remove(i);
            continue;
        }
        let io = |source| StudyError::Io {
            path: dir.join("claims").display().to_string(),
            source,
        };
        match claim::try_claim(dir, &spec.id, timeout).map_err(io)? {
            Attempt::Claimed(claim) => {
                pending.remove(i);
                // It may have been finished between the look and the claim.
                if is_finished(dir, spec)? {
                    continue;
                }
                return Ok(Next::Run(spec, claim));
            }
            Attempt::Held(_) => i += 1,
        }
    }
    Ok(if pending.is_empty() {
        Next::Done
    } else {
        Next::Wait(pending.len())
    })
}

/// Tells the study's observer about the epochs of one run.
struct RunEpochs<'a> {
    spec: &'a RunSpec,
    observer: &'a dyn StudyObserver,
}

impl Observer for RunEpochs<'_> {
    fn epoch_done(&mut self, m: &EpochMetrics) {
        self.observer.epoch_done(self.spec, m);
    }
}

/// Runs (or resumes) one run to its end; a diverged run is an ending too.
fn run_one(
    spec: &RunSpec,
    data: &DataCache,
    dir: &Path,
    observer: &dyn StudyObserver,
) -> Result<Summary, StudyError> {
    let rdir = run_dir(dir, &spec.id);
    check_run_dir(&rdir, spec)?;
    let epochs = &mut RunEpochs { spec, observer };
    let data = data
        .get(spec.train.data.dataset)
        .map_err(crate::train::TrainError::from)?;
    // Every run of a study trains on the data its first run did.
    let record = dir.join(format!("data-{}.json", data.dataset.as_str()));
    let what = format!("the study in {}", dir.display());
    run::DataRecord::check_or_write(&record, data, &what)?;
    let outcome = if rdir.join(run::CONFIG).exists() {
        run::resume(data, &rdir, epochs, None)
    } else {
        run::start(spec.train.clone(), data, &rdir, epochs, None)
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
    /// Known once tuning (and an adaptive study's first stage) is complete; until then the
    /// final runs counted are the first stage's.
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
            let epochs = study.defaults.epochs();
            Some(self.mean_tuning_seconds? * epochs as f64 / t.epochs as f64)
        })?;
        // Before an adaptive study decides, its most seeds: an upper bound.
        let final_total = self
            .final_total
            .unwrap_or(study.configs.len() * study.seeds.most());
        Some(tune_left * tune_mean + (final_total - self.final_done) as f64 * final_mean)
    }
}

pub fn status(study: &StudyFile, dir: &Path) -> Result<StudyStatus, StudyError> {
    let plan = tuning_plan(study, dir)?;
    let tuning = select(&plan.runs, Shard::ALL);
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
    let count = |specs: &[RunSpec], phase: Phase, s: &mut StudyStatus| -> Result<(), StudyError> {
        let mut seconds = Vec::new();
        for spec in specs {
            match finished(dir, &spec.id)? {
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
        Ok(())
    };
    count(&tuning, Phase::Tune, &mut s)?;
    if let Some(chosen) = plan.chosen {
        let seeds = final_seeds(study, dir, &chosen)?;
        let finals =
            study.final_runs(&chosen, seeds.as_ref().map_or(study.seeds.first(), |s| s.0))?;
        let finals = select(&finals, Shard::ALL);
        s.final_total = seeds.map(|_| finals.len());
        count(&finals, Phase::Final, &mut s)?;
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
    // Every source is checked before anything is written: one study file for all (and for
    // `out`, when it has one), and every finished run readable and whole. A refused merge
    // leaves `out` as it was.
    let mut text: Option<(String, &Path)> = match std::fs::read_to_string(out.join(STUDY_FILE)) {
        Ok(t) => Some((t, out)),
        Err(_) => None,
    };
    let mut copies: Vec<(std::path::PathBuf, String)> = Vec::new();
    for src in sources {
        let io = |source| StudyError::Io {
            path: src.display().to_string(),
            source,
        };
        let here = std::fs::read_to_string(src.join(STUDY_FILE)).map_err(io)?;
        match &text {
            Some((first, from)) if *first != here => {
                return Err(StudyError::Invalid(format!(
                    "{} holds a different study than {}; nothing was merged",
                    src.display(),
                    from.display()
                )));
            }
            Some(_) => {}
            None => text = Some((here, src)),
        }
        let Ok(entries) = std::fs::read_dir(src.join("runs")) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let id = entry.file_name().to_string_lossy().to_string();
            if finished(src, &id)?.is_some() {
                copies.push((entry.path(), id));
            }
        }
    }
    let Some((text, _)) = text else {
        return Ok(0);
    };
    prepare(out, &text)?;
    let mut copied = 0;
    for (from, id) in copies {
        if finished(out, &id)?.is_some() {
            continue;
        }
        let io = |source| StudyError::Io {
            path: from.display().to_string(),
            source,
        };
        let target = run_dir(out, &id);
        let tmp = out.join("runs").join(format!(".{id}.merging"));
        copy_dir(&from, &tmp).map_err(io)?;
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&tmp, &target).map_err(io)?;
        copied += 1;
    }
    Ok(copied)
}
