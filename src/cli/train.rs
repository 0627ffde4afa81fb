//! `lenet train` and `lenet eval`: one run, and a saved model on the test set.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use super::args::DataDirArgs;
use super::{data_dir_flag, progress, shell_word};
use crate::data::{Dataset, fetch};
use crate::optim::{ScheduleKind, ScheduleSettings};
use crate::train::options::Options;
use crate::train::{EpochMetrics, TrainConfig, evaluate, run};

#[derive(Args, Debug)]
pub(super) struct TrainArgs {
    /// Every training option and optimizer hyperparameter, from their declarations
    /// ([`crate::train::options`], [`crate::optim::hyper`]).
    #[command(flatten)]
    options: Options,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Run directory [default: runs/<optimizer>-seed<seed>-<unix time>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last finished epoch, on the data it started with:
    /// its config.json decides everything else, so no training option may be given with it
    /// (only --stop-after, --threads, --data-dir and --quiet).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "ScheduleArgs"])]
    resume: Option<PathBuf>,
    /// Pause after this many epochs (checkpoint written); --resume continues the run.
    #[arg(long, value_name = "EPOCHS")]
    stop_after: Option<usize>,
    /// Worker threads [default: all cores, at most 16: a batch of 64 splits into 16 tasks, so
    /// more threads would only wait]. Results do not depend on it.
    #[arg(long)]
    pub(super) threads: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

/// The schedule's flags: its kind and settings ([`crate::optim::Schedule::from_settings`]
/// has their defaults).
#[derive(Args, Debug)]
struct ScheduleArgs {
    /// Learning-rate schedule, stepped once per epoch.
    #[arg(long, value_enum, help_heading = "Schedule")]
    schedule: Option<ScheduleKind>,
    /// step: epochs between decays [default: 5]
    #[arg(long, help_heading = "Schedule")]
    step_size: Option<usize>,
    /// step, exponential: the decay factor, a finite number above 0 [default: 0.1]
    #[arg(long, help_heading = "Schedule", allow_negative_numbers = true)]
    gamma: Option<f64>,
    /// cosine: epochs of the half period [default: the epochs after warm-up]
    #[arg(long, help_heading = "Schedule")]
    t_max: Option<usize>,
    /// cosine: the final learning rate, a finite number at or above 0 [default: 0]
    #[arg(long, help_heading = "Schedule", allow_negative_numbers = true)]
    eta_min: Option<f64>,
}

impl TrainArgs {
    /// Refuses a training option given with --resume, naming it, as clap names a conflict.
    pub(super) fn check_resume(&self) -> Result<(), clap::Error> {
        match (&self.resume, self.options.given().first()) {
            (Some(_), Some(flag)) => Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "the argument '--resume <DIR>' cannot be used with '{flag}': the run's \
                     config.json decides every training option\n"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The configuration the flags describe.
    fn config(&self) -> Result<TrainConfig> {
        let mut options = self.options.clone();
        let s = &self.schedule;
        let settings = ScheduleSettings {
            step_size: s.step_size,
            gamma: s.gamma,
            t_max: s.t_max,
            eta_min: s.eta_min,
        };
        let kind = s.schedule.unwrap_or(ScheduleKind::Constant);
        options.schedule = Some(
            crate::optim::Schedule::from_settings(kind, settings, options.epochs_after_warmup())
                .map_err(anyhow::Error::msg)?,
        );
        options.resolve().map_err(anyhow::Error::msg)
    }
}

#[derive(Args, Debug)]
pub(super) struct EvalArgs {
    /// A model.safetensors written by `lenet train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The test set to evaluate on [default: the one the model was trained on].
    #[arg(long, value_enum)]
    dataset: Option<Dataset>,
    /// Worker threads [default: all cores, at most 16]. Results do not depend on it.
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// Also print the prediction for this one test image (its label, the predicted class and
    /// every class's score).
    #[arg(long, value_name = "INDEX")]
    test_image: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

/// The study's log line: epoch, train loss, validation loss, train accuracy, validation
/// accuracy, seconds.
pub fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let w = epochs.to_string().len();
    format!(
        "epoch {:>w$}/{epochs}  train loss {:.4}  valid loss {}  train acc {:6.2}%  valid acc {}  lr {:.2e}  {:.2} s",
        m.epoch,
        m.train_loss,
        m.valid_loss.map_or("   n/a".into(), |l| format!("{l:.4}")),
        100.0 * m.train_accuracy,
        m.valid_accuracy
            .map_or("    n/a".into(), |a| format!("{:6.2}%", 100.0 * a)),
        m.lr,
        m.seconds
    )
}

pub(super) fn train(args: TrainArgs) -> Result<()> {
    let quiet = args.data.quiet;
    let (config, dir) = match &args.resume {
        Some(dir) => (run::read_config(dir)?, dir.clone()),
        None => {
            let config = args.config()?;
            let dir = args.out.clone().unwrap_or_else(|| default_run_dir(&config));
            (config, dir)
        }
    };
    let data = args.data.load(config.data.dataset)?;
    if !quiet {
        eprintln!(
            "training {} with {} ({}), batch {}, {} epochs, seed {}, {} threads -> {}",
            config.model.arch.as_str(),
            config.optimizer.name.as_str(),
            config.optimizer.describe(),
            if config.batch_size == 0 {
                "full".to_string()
            } else {
                config.batch_size.to_string()
            },
            config.epochs,
            config.seed,
            rayon::current_num_threads(),
            dir.display()
        );
    }
    let batch = config.step_size(data.train.len().saturating_sub(config.data.valid_size));
    let resume = format!(
        "lenet train --resume {}{}",
        shell_word(&dir),
        data_dir_flag(&args.data)
    );
    let resume_line = resume.clone();
    let mut terminal = progress::EpochTerminal::new(quiet, config.epochs, batch, resume);
    // A resumed run is locked while it trains, as a fresh --out is by its config.json: a
    // second resume of it waits for nobody and is refused.
    let _lock = match &args.resume {
        Some(_) => Some(lock_run(&dir)?),
        None => None,
    };
    let outcome = match &args.resume {
        Some(_) => run::resume(&data, &dir, &mut terminal, args.stop_after),
        None => run::start(config, &data, &dir, &mut terminal, args.stop_after),
    }
    .with_context(|| format!("run directory {}", dir.display()))?;
    let summary = match outcome {
        run::Outcome::Finished(summary) => summary,
        run::Outcome::Paused { epoch } => {
            say!("paused after epoch {epoch}; continue with: {resume_line}");
            return Ok(());
        }
    };
    if let (Some(acc), Some(loss)) = (summary.test_accuracy, summary.test_loss) {
        say!(
            "test accuracy {:.2}%  test loss {:.4}  ({} images, {} epochs, {:.1} s)",
            100.0 * acc,
            loss,
            data.test.len(),
            summary.epochs,
            summary.wall_seconds
        );
    }
    if let crate::train::metrics::Status::Diverged { epoch } = summary.status {
        bail!(
            "{} holds a run that diverged in epoch {epoch}; its first {} epochs are in metrics.csv",
            dir.display(),
            summary.epochs
        );
    }
    if !quiet {
        eprintln!("run saved in {}", dir.display());
    }
    Ok(())
}

fn default_run_dir(config: &TrainConfig) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Path::new("runs").join(format!(
        "{}-seed{}-{secs}",
        config.optimizer.name.as_str(),
        config.seed
    ))
}

pub(super) fn eval(args: &EvalArgs) -> Result<()> {
    let (mut net, model, preprocess, trained_on) = crate::train::load_model(&args.checkpoint)?;
    let dataset = args.dataset.unwrap_or(trained_on);
    // The test set alone: a damaged training file does not stop an evaluation.
    let test = fetch::load_test(&args.data.dir(), dataset, args.data.quiet)?;
    let all: Vec<u32> = (0..test.len() as u32).collect();
    let e = evaluate(&mut net, preprocess, &test, &all);
    say!(
        "test accuracy {:.2}%  test loss {:.4}  ({} images, {:?}, {} parameters)",
        100.0 * e.accuracy,
        e.loss,
        e.count,
        model.arch,
        net.param_count()
    );
    if let Some(index) = args.test_image {
        if index >= test.len() {
            bail!(
                "--test-image {index}: the {} test set has images 0 to {}",
                dataset.title(),
                test.len() - 1
            );
        }
        let mut scores = Vec::new();
        crate::train::evaluate_with(&mut net, preprocess, &test, &[index as u32], |_, o| {
            scores = o.data.clone();
        });
        let names = dataset.class_names();
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0);
        let listed: Vec<String> = (scores.iter().enumerate())
            .map(|(c, s)| format!("{}={s:.4}", names[c]))
            .collect();
        say!(
            "test image {index}: label {}, predicted {}  (scores: {})",
            names[test.labels[index] as usize],
            names[best],
            listed.join(" ")
        );
    }
    Ok(())
}

/// Locks the run in `dir` (whose config.json has been read) for a resume
/// (`dir/claims/resume.lock`, released when dropped); a lock held by a live process is an
/// error naming it.
pub(super) fn lock_run(dir: &Path) -> Result<crate::study::claim::Claim> {
    use crate::study::claim::{Attempt, DEFAULT_TIMEOUT, try_claim};
    match try_claim(dir, "resume", DEFAULT_TIMEOUT)
        .with_context(|| format!("locking {}", dir.display()))?
    {
        Attempt::Claimed(claim) => Ok(claim),
        Attempt::Held(owner) => bail!(
            "{} is being resumed by {} already; wait for it to end",
            dir.display(),
            owner.describe()
        ),
    }
}
