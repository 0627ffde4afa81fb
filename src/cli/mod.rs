//! The command line: argument parsing and the terminal's view of long work. The library does
//! the work; this module only translates flags into configurations and results into lines.
//!
//! One file per command group: `data` (fetch, subset), `inspect` (model, optimizers, show,
//! report), `train` (train, eval), `study` (run, plan, status, summary, merge), `explore`;
//! `progress` draws long work on the terminal.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::parallel;

/// Prints a line on stdout; a closed pipe (`lenet ... | head`) ends the program quietly
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod args;
mod data;
mod explore;
mod inspect;
mod progress;
mod study;
mod train;

pub use train::epoch_line;

#[derive(Parser, Debug)]
#[command(
    name = "lenet",
    version,
    about = "LeNet-5 on MNIST from scratch: how optimizers, dropout and batch normalization change training",
    long_about = "LeNet-5 on MNIST from scratch: how optimizers, dropout and batch normalization \
change training.\n\nlenet trains LeNet-5 with its own engine (float32, checked against PyTorch), \
tunes on a validation split carved from the training set and touches the test set only for final \
numbers. MNIST is downloaded on first use.",
    after_help = "Examples:\n  lenet train --epochs 1                 train the study's LeNet-5 with Adam for one epoch\n  \
lenet train --optimizer momentum --lr 0.01 --batch-norm first --dropout 0.4\n  \
lenet model --arch lecun1998            print LeCun's 1998 LeNet-5 layer by layer\n  \
lenet optimizers                        list every optimizer with its defaults\n  \
lenet study run                         the dropout x batch-norm 2x2 at a quarter-hour budget\n  \
lenet study run studies/regularization.toml            the same, run until every effect is decided\n  \
lenet study run studies/optimizers.toml --shard 1/4    one quarter of the optimizer study\n  \
lenet study summary studies-out/quick                  a study's statistics tables\n  \
lenet explore                           draw a digit, watch your runs read it (browser)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download MNIST, or make a small subset of it.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Print a model's layers with output shapes and parameter counts.
    Model(inspect::ModelArgs),
    /// List every optimizer with its hyperparameters and defaults.
    Optimizers,
    /// Train one configuration and write its run directory.
    Train(Box<train::TrainArgs>),
    /// Evaluate a saved model on the test set.
    Eval(train::EvalArgs),
    /// Run a study (many configurations x seeds, tuned on the validation split) and summarise it.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Write report.md, a self-contained report.html and every figure (SVG and PNG, under
    /// figures/) for a study directory or a single run's directory.
    ///
    /// A study's report has its conclusions (sentences generated from the statistics), loss
    /// and accuracy curves over seeds, test accuracy with 95% CIs and significance groups, the
    /// tuning curves, time to target, the 2x2 interaction plot, the best configuration's
    /// predictions, confusion matrix and most confident mistakes, test image 0 through every
    /// layer of that model (`lenet show` draws others), the original study's claims beside
    /// the measured answer, and every run's settings. MNIST is read for the digit
    /// figures and the predictions. `lenet study run` writes it at the end.
    Report(inspect::ReportArgs),
    /// Draw one test image passing through every layer of a trained model: the input, each
    /// block's feature maps, the fully connected layers' values (for the 1998 network, F6 as
    /// its 7x12 bitmap beside the nearest digit's prototype) and the output, as
    /// layers-N.svg and layers-N.png.
    Show(inspect::ShowArgs),
    /// Look inside trained networks in the browser: draw a digit (or pick a dataset image, or
    /// one of the test set's mistakes) and watch every layer of one run, or two side by side,
    /// read it.
    ///
    /// Starts a local web server on 127.0.0.1 and prints its address. The page shows the
    /// drawing as the network sees it (scaled to 20 x 20 and centred by its centre of mass as
    /// MNIST's digits were, padded to 32 x 32), every layer's maps (hover one for its kernels
    /// and value range), the output probabilities (the 1998 network's RBF distances, with F6
    /// as a 7 x 12 bitmap beside each digit's prototype), the top three classes, the learned
    /// first-layer kernels and the saliency of the predicted class (the gradient of its score
    /// with respect to the input, from lenet's own backward pass), and exports the report's
    /// layer figure of the current input as SVG or PNG. The same JSON API serves notebooks
    /// (see the README). Every forward pass runs in lenet's own engine.
    #[command(
        after_help = "Examples:\n  lenet explore                                 the runs under studies-out/\n  \
lenet explore studies-out/quick              one study's runs, by configuration and seed\n  \
lenet explore runs/adam runs/sgd             two runs to compare\n  \
lenet explore --bind 0.0.0.0 --port 8080     reachable from other machines, with a token"
    )]
    Explore(explore::ExploreArgs),
}

/// Prints one line on stdout, as `say!`.
fn say_line(line: &str) {
    say!("{line}");
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    progress::exit_on_signals();
    match cli.command {
        Command::Data(command) => data::run(command),
        Command::Model(args) => inspect::print_model(&args),
        Command::Optimizers => {
            inspect::print_optimizers();
            Ok(())
        }
        Command::Train(args) => {
            if let Err(e) = args.check_resume() {
                e.exit();
            }
            with_threads(args.threads, || train::train(*args))
        }
        Command::Eval(args) => with_threads(args.threads, || train::eval(&args)),
        Command::Study(command) => study::run(command),
        Command::Show(args) => inspect::show(&args),
        Command::Explore(args) => explore::explore(&args),
        Command::Report(args) => with_threads(args.threads, || {
            inspect::write_report(&args.dir, &args.data.library())
        }),
    }
}

/// Runs `f` on a pool of `threads` workers (by default all cores, at most
/// [`parallel::DEFAULT_MAX_THREADS`]).
fn with_threads<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let n = threads.unwrap_or_else(parallel::default_threads);
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .context("could not start the worker threads")?
        .install(f)
}

/// A path as one shell word: quoted when it holds anything but plain characters.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c));
    if plain && !s.is_empty() {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// An error and its causes on one line, each joined by ": ", leaving out a cause whose text
/// the line already holds (an error that prints its source, as "PATH: REASON" does, would
/// otherwise print the reason twice).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// ` --data-dir DIR` when the data directory was given (flag or $LENET_DATA), so that a
/// printed resume command finds the data the work started on; empty for the default.
fn data_dir_flag(data: &args::DataDirArgs) -> String {
    data.data_dir
        .as_ref()
        .map_or(String::new(), |d| format!(" --data-dir {}", shell_word(d)))
}
