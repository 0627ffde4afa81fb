//! The terminal's view of long work: a run's epoch bar, a study's run bar with its ETA, and
//! what Ctrl-C or SIGTERM says before the program exits (where the work stands and the
//! command that continues it). Bars are drawn only on a terminal; elsewhere (a log file, a
//! SLURM job's output) every finished epoch and run is one plain line.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::study::execute::StudyObserver;
use crate::study::{Phase, RunSpec, describe_point};
use crate::train::metrics::{Status, Summary};
use crate::train::{EpochMetrics, Observer};

/// Where the work stands, for the message of an interruption: set as work starts and as
/// each epoch or run ends.
static STANDING: Mutex<Option<String>> = Mutex::new(None);

/// Records where the work stands and how to resume it.
pub fn set_standing(text: String) {
    *STANDING.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
}

/// Exits on SIGINT (status 130) and SIGTERM (143), printing where the work stands and the
/// command that resumes it. Checkpoints are written as whole sets, so exiting at any moment
/// loses at most the epoch in progress.
pub fn exit_on_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return; // the default handlers stay: the process still ends, without the message
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let (name, code) = if signal == SIGINT {
                ("interrupted (Ctrl-C)", 130)
            } else {
                ("terminated (SIGTERM)", 143)
            };
            let standing = STANDING.lock().unwrap_or_else(|e| e.into_inner()).clone();
            eprintln!();
            match standing {
                Some(s) => eprintln!("{name}: {s}"),
                None => eprintln!("{name}"),
            }
            std::process::exit(code);
        }
    });
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

/// Whether bars can be drawn: standard error is a terminal.
fn terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A run's epochs: a bar of steps with the running loss, steps and images per second and an
/// ETA, then one line per epoch on stdout.
pub struct EpochTerminal {
    bar: Option<ProgressBar>,
    pub quiet: bool,
    pub epochs: usize,
    /// Images per step (the last step of an epoch may have fewer).
    pub batch: usize,
    started: Instant,
    /// The resume hint for an interruption: `lenet train --resume DIR`.
    pub resume: String,
}

impl EpochTerminal {
    pub fn new(quiet: bool, epochs: usize, batch: usize, resume: String) -> Self {
        EpochTerminal {
            bar: None,
            quiet,
            epochs,
            batch,
            started: Instant::now(),
            resume,
        }
    }
}

impl Observer for EpochTerminal {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        set_standing(format!(
            "epoch {epoch} of {} was in progress (the epochs before it are saved); resume \
             with: {}",
            self.epochs, self.resume
        ));
        if self.quiet || !terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(bar_style(
            "epoch {prefix} [{bar:30}] {pos}/{len} steps  loss {msg}  eta {eta}",
        ));
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.started = Instant::now();
        self.bar = Some(bar);
    }

    fn step_done(&mut self, step: usize, running_loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            if step.is_multiple_of(16) || step as u64 == bar.length().unwrap_or(0) {
                let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
                let steps = step as f64 / seconds;
                bar.set_message(format!(
                    "{running_loss:.4}  {steps:.0} steps/s  {} images/s",
                    crate::format::thousands((steps * self.batch as f64) as usize)
                ));
            }
        }
    }

    fn epoch_done(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        set_standing(format!(
            "epoch {} of {} is saved; resume with: {}",
            m.epoch, self.epochs, self.resume
        ));
        super::say_line(&super::epoch_line(m, self.epochs));
    }
}

/// A study's runs: a bar of runs finished out of the shard's total with the epochs of the
/// runs in progress, the time elapsed and an ETA from the runs finished so far, and one line
/// per finished run on stdout.
pub struct StudyTerminal {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// The resume hint for an interruption: `lenet study run FILE --out DIR`.
    resume: String,
    state: Mutex<StudyState>,
}

struct StudyState {
    started: Instant,
    total: usize,
    done: usize,
    /// The runs counted in `done`, so that a run is counted once however many phases list
    /// it (an adaptive study's final runs include its first stage).
    counted: std::collections::BTreeSet<String>,
    /// Wall seconds of the runs this process finished.
    seconds: Vec<f64>,
    jobs: usize,
    /// Runs in progress: label, epoch, epochs.
    current: BTreeMap<String, (String, usize, usize)>,
    waiting: usize,
}

fn label(spec: &RunSpec) -> String {
    match spec.phase {
        Phase::Tune => format!("tuning {} {}", spec.config, describe_point(&spec.point)),
        Phase::Final => format!("{} seed {}", spec.config, spec.train.seed),
    }
}

impl StudyTerminal {
    /// `total` runs in this shard.
    pub fn new(quiet: bool, total: usize, jobs: usize, resume: String) -> Self {
        let bar = (!quiet && terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(bar_style(
                "{prefix} [{bar:25}] {pos}/{len} runs  {elapsed} elapsed  {msg}",
            ));
            bar.set_prefix("study");
            bar.enable_steady_tick(std::time::Duration::from_millis(500));
            bar
        });
        let t = StudyTerminal {
            bar,
            quiet,
            resume,
            state: Mutex::new(StudyState {
                started: Instant::now(),
                total,
                done: 0,
                counted: Default::default(),
                seconds: Vec::new(),
                jobs: jobs.max(1),
                current: BTreeMap::new(),
                waiting: 0,
            }),
        };
        t.update(&t.state.lock().expect("lock"));
        t
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn eta(s: &StudyState) -> String {
        let left = s.total.saturating_sub(s.done);
        if left == 0 {
            return "done".into();
        }
        if s.seconds.is_empty() {
            return "eta after the first run".into();
        }
        let mean = s.seconds.iter().sum::<f64>() / s.seconds.len() as f64;
        let eta = mean * left as f64 / s.jobs.min(left) as f64;
        format!("eta {}", crate::study::plan::human_seconds(eta))
    }

    fn update(&self, s: &StudyState) {
        set_standing(format!(
            "{} of {} runs finished; finished runs are kept and an interrupted one resumes \
             from its last epoch; resume with: {}",
            s.done, s.total, self.resume
        ));
        let Some(bar) = &self.bar else { return };
        bar.set_position(s.done as u64);
        let mut msg = Self::eta(s);
        for (what, epoch, epochs) in s.current.values() {
            msg += &format!("; {what} epoch {epoch}/{epochs}");
        }
        if s.waiting > 0 && s.current.is_empty() {
            msg += &format!("; waiting for {} runs held by other processes", s.waiting);
        }
        bar.set_message(msg);
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => super::say_line(&line),
        }
    }
}

impl StudyObserver for StudyTerminal {
    fn already_finished(&self, runs: &[&RunSpec]) {
        let mut s = self.state.lock().expect("lock");
        for r in runs {
            if s.counted.insert(r.id.clone()) {
                s.done += 1;
            }
        }
        s.total = s.total.max(s.done);
        if let Some(bar) = &self.bar {
            bar.set_length(s.total as u64);
        }
        self.update(&s);
    }

    fn run_started(&self, spec: &RunSpec) {
        let mut s = self.state.lock().expect("lock");
        s.current
            .insert(spec.id.clone(), (label(spec), 0, spec.train.epochs));
        self.update(&s);
    }

    fn epoch_done(&self, spec: &RunSpec, m: &EpochMetrics) {
        let mut s = self.state.lock().expect("lock");
        if let Some(run) = s.current.get_mut(&spec.id) {
            run.1 = m.epoch;
        }
        self.update(&s);
    }

    fn run_done(&self, spec: &RunSpec, summary: &Summary) {
        let mut s = self.state.lock().expect("lock");
        s.current.remove(&spec.id);
        if s.counted.insert(spec.id.clone()) {
            s.done += 1;
        }
        s.seconds.push(summary.wall_seconds);
        self.update(&s);
        if self.quiet {
            return;
        }
        let result = match (
            summary.status,
            summary.test_accuracy,
            summary.final_valid_accuracy,
        ) {
            (Status::Diverged { epoch }, _, _) => format!("diverged in epoch {epoch}"),
            (_, Some(test), _) if spec.phase == Phase::Final => {
                format!("test accuracy {:.2}%", 100.0 * test)
            }
            (_, _, Some(valid)) => format!("valid accuracy {:.2}%", 100.0 * valid),
            _ => String::new(),
        };
        let elapsed = crate::study::plan::human_seconds(s.started.elapsed().as_secs_f64());
        self.println(format!(
            "[{}/{}] {}: {result} ({:.1} s) run {}; {elapsed} elapsed, {}",
            s.done,
            s.total,
            label(spec),
            summary.wall_seconds,
            spec.id,
            Self::eta(&s)
        ));
    }

    fn planned_more(&self, runs: usize) {
        let mut s = self.state.lock().expect("lock");
        s.total += runs;
        if let Some(bar) = &self.bar {
            bar.set_length(s.total as u64);
        }
        self.update(&s);
    }

    fn waiting(&self, held: usize) {
        let mut s = self.state.lock().expect("lock");
        s.waiting = held;
        self.update(&s);
        if !self.quiet && self.bar.is_none() {
            super::say_line(&format!(
                "waiting for {held} run(s) held by other processes sharing the directory"
            ));
        }
    }
}
