//! `lenet study`: run a study (or a shard of it), plan it, follow it, summarise it, merge
//! shards.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};

use super::args::DataDirArgs;
use super::inspect::write_report;
use super::{data_dir_flag, progress, shell_word};
use crate::data::DataCache;
use crate::format::thousands;
use crate::report::numbers::power_cells;
use crate::study::StudyFile;
use crate::study::execute::{self, ExecOptions, STUDY_FILE, Shard, StudyOutcome};
use crate::study::plan::{
    EPOCH_SECONDS_ESTIMATE, Plan, RUN_MEGABYTES_ESTIMATE, TimeEstimate, check_plan_size,
    human_seconds,
};
use crate::study::seeds::Stop;
use crate::study::summary::{Power, StudySummary, summarize};

#[derive(Subcommand, Debug)]
pub(super) enum StudyCommand {
    /// Run a study, or this machine's shard of it. Finished runs are skipped and interrupted
    /// ones resume from their last epoch, so running the same command again continues.
    Run(StudyRunArgs),
    /// Print what a study file plans, without running anything: its runs and epochs (an
    /// adaptive study's most), the time and disk they take, and, when a study directory with
    /// finished runs is given, the power of its comparisons (what the seeds run detect, and
    /// the seeds 0.1 points needs) and an adaptive study's decision once its first stage is
    /// finished.
    Plan {
        /// The study file.
        file: PathBuf,
        /// A study directory of this study with finished runs, to estimate time and power
        /// from [default: studies-out/<study name>, when it exists]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Refuse to plan a study of more runs than this, as `study run` does (the plan is
        /// counted first, without listing its runs).
        #[arg(long, value_name = "RUNS", default_value_t = 10_000)]
        max_runs: u64,
    },
    /// Show finished, started and remaining runs, and an estimate of the time left.
    Status {
        /// The study directory.
        dir: PathBuf,
    },
    /// Print the statistics tables and write summary.md, summary.csv and summary.json.
    Summary {
        /// The study directory.
        dir: PathBuf,
    },
    /// Copy the finished runs of shards that ran in separate directories into one.
    Merge {
        /// The directory to merge into.
        #[arg(long)]
        out: PathBuf,
        /// Study directories of the shards.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub(super) struct StudyRunArgs {
    /// A study file [default: the shipped quick study, studies/quick.toml: the 2x2 of dropout
    /// and batch normalization at a quarter-hour budget]
    file: Option<PathBuf>,
    /// The study directory [default: studies-out/<study name>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only part K of N of the study's runs (for SLURM job arrays, Kubernetes indexed
    /// jobs, or several machines). Shards may share one directory or be merged afterwards.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Runs at a time [default: one per core, each on one thread: runs share nothing, so they
    /// keep every core busy without the waits of one run's threads for each other]. Results
    /// do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Threads per run [default: all cores divided by --jobs]
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds after which a claim on a run by a process on another host, whose heartbeat has
    /// stopped, is taken over (a claim on this host is taken over as soon as its process is
    /// gone). Processes sharing a study directory each take the runs nobody holds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    claim_timeout: u64,
    /// Refuse a study that plans more runs than this (a grid's points multiply quickly; the
    /// refusal says how long and how much disk the plan would take).
    #[arg(long, value_name = "RUNS", default_value_t = 10_000)]
    max_runs: u64,
    #[command(flatten)]
    data: DataDirArgs,
}

/// The shipped default study.
const DEFAULT_STUDY: &str = include_str!("../../studies/quick.toml");

fn load_study_dir(dir: &Path) -> Result<StudyFile> {
    let path = dir.join(STUDY_FILE);
    if !path.exists() {
        bail!(
            "{} is not a study directory (it has no {STUDY_FILE})",
            dir.display()
        );
    }
    Ok(StudyFile::load(&path)?)
}

pub(super) fn run(command: StudyCommand) -> Result<()> {
    match command {
        StudyCommand::Run(args) => study_run(&args),
        StudyCommand::Plan {
            file,
            out,
            max_runs,
        } => study_plan(&file, out, max_runs),
        StudyCommand::Status { dir } => {
            let study = load_study_dir(&dir)?;
            let s = execute::status(&study, &dir)?;
            say!("study {} in {}", study.name, dir.display());
            say!(
                "  tuning runs: {}/{} finished",
                s.tuning_done,
                s.tuning_total
            );
            match s.final_total {
                Some(total) => say!("  final runs:  {}/{} finished", s.final_done, total),
                None if s.tuning_done < s.tuning_total => say!(
                    "  final runs:  planned once tuning is finished ({} configurations x {})",
                    study.configs.len(),
                    study.seeds
                ),
                None => say!(
                    "  final runs:  {}/{} of the adaptive first stage finished; the seeds are \
                     decided then ({})",
                    s.final_done,
                    study.configs.len() * study.seeds.first(),
                    study.seeds
                ),
            }
            say!(
                "  started but unfinished (running or interrupted): {}",
                s.started
            );
            say!("  diverged: {}", s.diverged);
            match s.seconds_left(&study) {
                Some(left) if left > 0.0 => say!(
                    "  time left: about {} at one run at a time (from the mean time of finished runs)",
                    human_seconds(left)
                ),
                Some(_) => say!(
                    "  time left: none; `lenet study summary {}` gives the results",
                    dir.display()
                ),
                None => say!("  time left: unknown until a run has finished"),
            }
            Ok(())
        }
        StudyCommand::Summary { dir } => {
            let study = load_study_dir(&dir)?;
            write_summary(&study, &dir)
        }
        StudyCommand::Merge { out, dirs } => {
            let sources: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            let copied = execute::merge(&out, &sources)?;
            say!("merged {copied} finished runs into {}", out.display());
            Ok(())
        }
    }
}

/// `lenet study plan`: what the study file plans and what it would cost, and the power of
/// its comparisons from the runs already finished, if any.
fn study_plan(file: &Path, out: Option<PathBuf>, max_runs: u64) -> Result<()> {
    let study = StudyFile::load(file)?;
    check_plan_size(&study, max_runs).map_err(anyhow::Error::msg)?;
    let dir = out.unwrap_or_else(|| Path::new("studies-out").join(&study.name));
    let plan = Plan::of(&study, &dir)?;
    let most = if plan.adaptive { "at most " } else { "" };
    say!("study {} ({})", study.name, file.display());
    say!(
        "  runs: {most}{} ({} tuning, {most}{} final: {} configurations x {}), {most}{} epochs",
        thousands(plan.runs as usize),
        plan.tuning_runs,
        plan.final_runs,
        study.configs.len(),
        study.seeds,
        thousands(plan.epochs as usize)
    );
    match plan.time {
        TimeEstimate::Done => say!(
            "  time: none left (every run in {} is finished)",
            dir.display()
        ),
        TimeEstimate::Left(left) => say!(
            "  time: about {} left at one run at a time (from the finished runs in {})",
            human_seconds(left),
            dir.display()
        ),
        TimeEstimate::Guess(all) => say!(
            "  time: about {} at one run at a time ({EPOCH_SECONDS_ESTIMATE} s per 60,000-image \
             epoch, this machine's order; `lenet study status` refines it once runs finish)",
            human_seconds(all)
        ),
    }
    say!(
        "  disk: {most}about {:.1} MB of run directories ({RUN_MEGABYTES_ESTIMATE} MB each)",
        plan.disk_mb
    );
    let Some(power) = plan.power else {
        say!(
            "  power: needs the variance of finished final runs (give --out a study directory \
             with some)"
        );
        return Ok(());
    };
    say!(
        "  power, from the finished runs in {} (80% at 5%):",
        dir.display()
    );
    let line = |what: String, power: Option<Power>, level: &str| match power {
        Some(p) if p.identical => say!("    {what}: identical on every seed; no power figure"),
        _ => {
            let [detectable, seeds] = power_cells(power);
            say!(
                "    {what}{level}: detects {detectable} with these seeds; 0.1 points needs \
                 {seeds} seeds"
            )
        }
    };
    for (a, b, p) in power.pairs {
        line(format!("{a} vs {b}"), p, "");
    }
    for (name, p) in power.effects {
        line(name, p, " (at 5% / 3, the family's level)");
    }
    if let Some(d) = &power.decision {
        say!(
            "  adaptive seeds, sized from the first stage's validation accuracy: {} per \
             configuration ({})",
            d.seeds,
            match d.stopped {
                Stop::Until => "every comparison reaches the half-width asked",
                Stop::Max => "the maximum; some comparison needs more",
            }
        );
        for m in &d.comparisons {
            say!(
                "    {}: first-stage validation sd {:.3} points, needs {} seeds",
                m.name,
                100.0 * m.first_valid_sd,
                m.needed
                    .map_or("more than can be counted".into(), thousands)
            );
        }
    }
    Ok(())
}

/// Writes a finished study's summary and report once, however many processes sharing its
/// directory finish it together (the tasks of a SLURM array): under the claim
/// `claims/summary.lock`, and only when the summary there is not already this one. A process
/// that finds the claim held, or the results written, says so and leaves them.
fn write_results_once(study: &StudyFile, dir: &Path, data: &DataCache) -> Result<()> {
    use crate::study::claim::{Attempt, DEFAULT_TIMEOUT, try_claim};
    let _claim = match try_claim(dir, "summary", DEFAULT_TIMEOUT)
        .with_context(|| format!("claiming the summary of {}", dir.display()))?
    {
        Attempt::Claimed(claim) => claim,
        Attempt::Held(owner) => {
            say!(
                "study {} is finished; its summary and report are being written by {}",
                study.name,
                owner.describe()
            );
            return Ok(());
        }
    };
    let summary = summarize(study, dir)?;
    let written = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<StudySummary>(&text).ok());
    if written.as_ref() == Some(&summary) && dir.join("report.html").is_file() {
        say!(
            "study {} is finished; its summary and report in {} are written already",
            study.name,
            dir.display()
        );
        return Ok(());
    }
    publish_summary(study, &summary, dir)?;
    write_report(dir, data)
}

/// Computes a study's statistics, prints them and writes the summary files.
fn write_summary(study: &StudyFile, dir: &Path) -> Result<()> {
    publish_summary(study, &summarize(study, dir)?, dir)
}

/// Writes the summary files of `summary` into `dir` (and names its runs' event files for
/// TensorBoard) and prints its tables.
fn publish_summary(study: &StudyFile, summary: &StudySummary, dir: &Path) -> Result<()> {
    summary.write(dir)?;
    crate::study::summary::name_event_files(study, summary, dir)?;
    say!("{}", summary.markdown());
    eprintln!(
        "wrote summary.md, summary.csv and summary.json in {}",
        dir.display()
    );
    Ok(())
}

/// The command that continues this study run, for the message on an interruption.
fn resume_command(args: &StudyRunArgs, dir: &Path) -> String {
    let resume = match &args.file {
        Some(file) => format!(
            "lenet study run {} --out {}",
            shell_word(file),
            shell_word(dir)
        ),
        None => format!("lenet study run --out {}", shell_word(dir)),
    };
    let resume = resume + &data_dir_flag(&args.data);
    match args.shard {
        Some(s) => format!("{resume} --shard {}/{}", s.index, s.count),
        None => resume,
    }
}

fn study_run(args: &StudyRunArgs) -> Result<()> {
    let (text, origin) = match &args.file {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_STUDY.to_string(),
            "studies/quick.toml (shipped)".to_string(),
        ),
    };
    let study = StudyFile::parse(&text, &origin)?;
    check_plan_size(&study, args.max_runs).map_err(anyhow::Error::msg)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("studies-out").join(&study.name));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores);
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let opts = ExecOptions {
        shard: args.shard.unwrap_or(Shard::ALL),
        jobs,
        threads: args.threads.unwrap_or((cores / jobs).max(1)),
        claim_timeout: std::time::Duration::from_secs(args.claim_timeout),
    };
    execute::prepare(&dir, &text)?;
    let data = args.data.library();
    // Every dataset the study trains on, loaded (or fetched) before any run starts.
    for c in &study.configs {
        let config =
            (study.resolve(c, &[], crate::study::Phase::Final, 0)).map_err(anyhow::Error::msg)?;
        data.get(config.data.dataset)?;
    }
    if !args.data.quiet {
        eprintln!(
            "study {} ({}) -> {}; shard {}/{}, {} run(s) at a time with {} thread(s) each",
            study.name,
            origin,
            dir.display(),
            opts.shard.index,
            opts.shard.count,
            opts.jobs,
            opts.threads
        );
    }
    let resume = resume_command(args, &dir);
    // This shard's share of the plan (the executor says how many were already finished).
    let planned = study.run_count().map_err(anyhow::Error::msg)?;
    let terminal = progress::StudyTerminal::new(
        args.data.quiet,
        planned.div_ceil(opts.shard.count as u64) as usize,
        opts.jobs,
        resume,
    );
    let outcome = execute::run_study(&study, &data, &dir, opts, &terminal);
    terminal.finish();
    match outcome? {
        StudyOutcome::Complete => {
            if opts.shard.count == 1 {
                write_results_once(&study, &dir, &data)?;
            } else {
                say!(
                    "shard {}/{} finished; when every shard has, `lenet study summary` (after `lenet study merge` if they wrote to separate directories)",
                    opts.shard.index,
                    opts.shard.count
                );
            }
        }
        StudyOutcome::WaitingForTuning { done, total } => say!(
            "this shard's tuning runs are finished; {done}/{total} tuning runs of the study are. \
             Run this command again when the other shards' tuning is done (or after merging) to \
             plan and run the final runs."
        ),
        StudyOutcome::WaitingForSeeds { done, total } => say!(
            "this shard's runs of the adaptive first stage are finished; {done}/{total} of the \
             study's are. Run this command again when the other shards' are (or after merging): \
             the first stage's spread decides how many seeds the rest runs."
        ),
    }
    Ok(())
}
