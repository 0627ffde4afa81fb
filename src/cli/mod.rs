//! The command line: argument parsing and the terminal's view of long work. The library does
//! the work; this module only translates flags into configurations and results into lines.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::data::{self, Dataset, Library, Mnist, Preprocess, fetch};
use crate::nn::activation::ActivationKind;
use crate::nn::{Arch, BatchNormAt, ModelConfig, Pooling};
use crate::optim::config::BatchPolicy;
use crate::optim::hyper::{HYPERS, Hypers};
use crate::optim::{OptimizerName, Schedule};
use crate::parallel;
use crate::report;
use crate::study::StudyFile;
use crate::study::execute::{self, ExecOptions, STUDY_FILE, Shard, StudyOutcome};
use crate::study::summary::summarize;
use crate::train::options::Options;
use crate::train::run;
use crate::train::{EpochMetrics, TrainConfig, evaluate};

mod progress;

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
lenet study run                         run the shipped dropout x batch-norm study (10-40 seeds)\n  \
lenet study run studies/optimizers.toml --shard 1/4    one quarter of the optimizer study\n  \
lenet study summary studies-out/regularization         its statistics tables\n  \
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
    Data(DataCommand),
    /// Print a model's layers with output shapes and parameter counts.
    Model(ModelArgs),
    /// List every optimizer with its hyperparameters and defaults.
    Optimizers,
    /// Train one configuration and write its run directory.
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on the test set.
    Eval(EvalArgs),
    /// Run a study (many configurations x seeds, tuned on the validation split) and summarise it.
    #[command(subcommand)]
    Study(StudyCommand),
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
    Report(ReportArgs),
    /// Draw one test image passing through every layer of a trained model: the input, each
    /// block's feature maps, the fully connected layers' values (for the 1998 network, F6 as
    /// its 7x12 bitmap beside the nearest digit's prototype) and the output, as
    /// layers-N.svg and layers-N.png.
    Show(ShowArgs),
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
lenet explore studies-out/regularization     one study's runs, by configuration and seed\n  \
lenet explore runs/adam runs/sgd             two runs to compare\n  \
lenet explore --bind 0.0.0.0 --port 8080     reachable from other machines, with a token"
    )]
    Explore(ExploreArgs),
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// A run directory (with model.safetensors) or a model file.
    run: PathBuf,
    /// Which test image (0 to 9,999 on MNIST).
    #[arg(long, default_value_t = 0)]
    test_image: usize,
    /// Where the two files go [default: the run directory's figures/]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A study directory (from `lenet study run`) or a run directory (from `lenet train`).
    dir: PathBuf,
    /// Threads for the best model's pass over the test images [default: all cores, at most
    /// 16]
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Subcommand, Debug)]
enum StudyCommand {
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
struct StudyRunArgs {
    /// A study file [default: the shipped regularization study, studies/regularization.toml]
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

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Download a dataset's four files into the data directory and verify their SHA-256;
    /// files already there are verified too (once, then again only when they change).
    /// Fashion-MNIST is read from Debian's package where it is installed
    /// (`apt-get install dataset-fashion-mnist`).
    Fetch {
        #[command(flatten)]
        data: DataDirArgs,
        #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
        dataset: Dataset,
        /// Mirror to try instead of the defaults (repeatable, tried in order): the base
        /// address of the four .gz files, or the address of a .tar.gz archive holding them.
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
    },
    /// Write the first N training and test images as IDX .gz files (for quick experiments).
    Subset {
        #[command(flatten)]
        data: DataDirArgs,
        #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
        dataset: Dataset,
        #[arg(long, default_value_t = 2000)]
        train: usize,
        #[arg(long, default_value_t = 500)]
        test: usize,
        /// Directory for the subset's four files.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
struct DataDirArgs {
    /// Where the data lives: MNIST's four IDX files under their usual names, raw or .gz, in
    /// DIR itself, Fashion-MNIST's in DIR/fashion-mnist. Missing files are downloaded there.
    /// [default: $LENET_DATA, else the platform's cache directory, e.g. ~/.cache/lenet]
    #[arg(long, value_name = "DIR", env = "LENET_DATA")]
    data_dir: Option<PathBuf>,
    /// Print nothing but results and errors.
    #[arg(long, short)]
    quiet: bool,
}

impl DataDirArgs {
    fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(fetch::default_data_dir)
    }

    /// Loads `dataset`, fetching it first when files are missing.
    fn load(&self, dataset: Dataset) -> Result<Mnist> {
        Ok(fetch::load(&self.dir(), dataset, self.quiet)?)
    }

    /// The datasets of the data directory, each loaded when first needed.
    fn library(&self) -> Library {
        Library::new(&self.dir(), self.quiet)
    }
}

#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// lenet5: the study's model (ReLU, max pooling, 61,706 parameters). lecun1998: LeCun et
    /// al.'s original (scaled tanh, trainable subsampling, sparse C3, Euclidean RBF output
    /// against fixed 7x12 digit prototypes, the MAP criterion; 60,000 parameters).
    /// lecun1998-softmax: the same with a linear output and softmax cross-entropy.
    #[arg(long, value_enum, default_value_t = Arch::Lenet5)]
    arch: Arch,
    /// Batch normalization in the study's model: none, after the first conv block (as the
    /// study), or after every conv block.
    #[arg(long, value_enum, default_value_t = BatchNormAt::None)]
    batch_norm: BatchNormAt,
    /// Dropout probability on the fully connected hidden layer (0 = none; the study used 0.4).
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    #[arg(long, value_enum, default_value_t = ActivationKind::Relu)]
    activation: ActivationKind,
    #[arg(long, value_enum, default_value_t = Pooling::Max)]
    pooling: Pooling,
}

impl ModelArgs {
    fn config(&self) -> Result<ModelConfig> {
        let c = ModelConfig {
            arch: self.arch,
            batch_norm: self.batch_norm,
            dropout: self.dropout,
            activation: self.activation,
            pooling: self.pooling,
        };
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ScheduleKind {
    Constant,
    Step,
    Exponential,
    Cosine,
    /// The 1998 paper's: with lr 5e-4, 5e-4 for 2 epochs, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4,
    /// then 1e-5.
    Lecun1998,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// gd is full-batch (one step per epoch), sgd and sdlm take one sample per step, the others take
    /// --batch-size. `lenet optimizers` lists them with their defaults.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    optimizer: OptimizerName,
    #[command(flatten)]
    hypers: HyperArgs,

    /// Learning-rate schedule, stepped once per epoch.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant, help_heading = "Schedule")]
    schedule: ScheduleKind,
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
    /// Linear warm-up epochs before the schedule.
    #[arg(long, default_value_t = 0, help_heading = "Schedule")]
    warmup_epochs: usize,

    /// Samples per step [default: 64; gd uses the whole training split, sgd and sdlm use 1]
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Seed of the run: initialisation, shuffling and dropout each draw from their own stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training images held out for validation.
    #[arg(long, default_value_t = 5000)]
    valid_size: usize,
    /// Seed of the validation split (keep it fixed to compare runs).
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Input scaling: unit ([0, 1], as the study), standardize (MNIST mean and std), lecun
    /// (background -0.1, ink 1.175).
    #[arg(long, value_enum)]
    preprocess: Option<Preprocess>,
    /// What to train on: mnist (digits) or fashion-mnist (Zalando's articles, same shape).
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    dataset: Dataset,
    /// Distort every training image anew at every pass, as LeCun et al. (1998): a random
    /// translation (up to 2 pixels), scaling and squeezing (0.9 to 1.1) and horizontal shear
    /// (up to 0.15), from the run's own distortion stream.
    #[arg(long)]
    distort: bool,
    /// Run directory [default: runs/<optimizer>-seed<seed>-<unix time>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last finished epoch, on the data it started with:
    /// its config.json decides everything else, so no training option may be given with it
    /// (only --stop-after, --threads, --data-dir and --quiet).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "out", "ModelArgs", "HyperArgs", "optimizer", "schedule", "step_size", "gamma",
            "t_max", "eta_min", "warmup_epochs", "batch_size", "epochs", "seed", "valid_size",
            "split_seed", "preprocess", "dataset", "distort",
        ]
    )]
    resume: Option<PathBuf>,
    /// Pause after this many epochs (checkpoint written); --resume continues the run.
    #[arg(long, value_name = "EPOCHS")]
    stop_after: Option<usize>,
    /// Worker threads [default: all cores, at most 16: a batch of 64 splits into 16 tasks, so
    /// more threads would only wait]. Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// A model.safetensors written by `lenet train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The test set to evaluate on [default: the one the model was trained on].
    #[arg(long, value_enum)]
    dataset: Option<Dataset>,
    /// Worker threads [default: all cores, at most 16]. Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Also print the prediction for this one test image (its label, the predicted class and
    /// every class's score).
    #[arg(long, value_name = "INDEX")]
    test_image: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Args, Debug)]
struct ExploreArgs {
    /// Run directories (from `lenet train`), study directories (their runs listed by
    /// configuration and seed), or folders of them [default: studies-out]
    dirs: Vec<PathBuf>,
    /// Listen on this address (e.g. 0.0.0.0 for every interface) instead of 127.0.0.1; every
    /// request must then carry the access token printed at start.
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::IpAddr>,
    /// The port; 0 picks a free one.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Threads running forward passes and other answers [default: the cores, at least 2]
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    data: DataDirArgs,
}

/// Parses the command line and runs it.
/// Prints one line on stdout, as `say!`.
fn say_line(line: &str) {
    say!("{line}");
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    progress::exit_on_signals();
    match cli.command {
        Command::Data(DataCommand::Fetch {
            data,
            dataset,
            mirrors,
        }) => {
            let mirrors = if mirrors.is_empty() {
                fetch::mirrors_of(dataset)
            } else {
                mirrors
            };
            let dir = fetch::locate(&data.dir(), dataset);
            fetch::verify_present(&dir, dataset)?;
            fetch::ensure(&dir, dataset, &mirrors, data.quiet)?;
            let m = Mnist::load_as(&dir, dataset)?;
            say!(
                "{} in {}: {} training and {} test images",
                dataset.title(),
                dir.display(),
                m.train.len(),
                m.test.len()
            );
            Ok(())
        }
        Command::Data(DataCommand::Subset {
            data,
            dataset,
            train,
            test,
            out,
        }) => {
            let m = data.load(dataset)?;
            data::write_subset(&m, train, test, &out)?;
            say!(
                "wrote {train} training and {test} test images to {}",
                out.display()
            );
            Ok(())
        }
        Command::Model(args) => print_model(&args.config()?),
        Command::Optimizers => {
            print_optimizers();
            Ok(())
        }
        Command::Train(args) => with_threads(args.threads, || train(*args)),
        Command::Eval(args) => with_threads(args.threads, || eval(&args)),
        Command::Study(command) => study(command),
        Command::Show(args) => {
            let model = if args.run.is_dir() {
                args.run.join(crate::train::run::MODEL)
            } else {
                args.run.clone()
            };
            let out = (args.out.clone()).unwrap_or_else(|| match args.run.is_dir() {
                true => args.run.join("figures"),
                false => PathBuf::from("."),
            });
            let [svg, png] =
                report::layers::show(&model, &args.data.library(), args.test_image, &out)?;
            say!("wrote {} and {}", svg.display(), png.display());
            Ok(())
        }
        Command::Explore(args) => explore(&args),
        Command::Report(args) => with_threads(args.threads, || {
            write_report(&args.dir, &args.data.library())
        }),
    }
}

/// Writes the report of a study or run directory and says where it is.
fn write_report(dir: &Path, data: &Library) -> Result<()> {
    let start = std::time::Instant::now();
    let written = if report::is_study_dir(dir) {
        report::study_report(dir, data)?
    } else if report::is_run_dir(dir) {
        report::run_report(dir, data)?
    } else {
        bail!(
            "{} is neither a study directory (with {STUDY_FILE}) nor a run directory (with \
             config.json and metrics.csv)",
            dir.display()
        );
    };
    eprintln!(
        "wrote {} and {} with {} figure{} (SVG and PNG in {}) in {:.1} s",
        written.markdown.display(),
        written.html.display(),
        written.figures,
        if written.figures == 1 { "" } else { "s" },
        dir.join("figures").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
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

fn print_model(config: &ModelConfig) -> Result<()> {
    let net = config.build(&mut crate::rng::Rng::new(0));
    let rows = net.summary();
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(5);
    let layer_w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let line = |name: &str, layer: &str, shape: &str, params: &str, connections: &str| {
        say!("{name:name_w$}  {layer:layer_w$}  {shape:>14}  {params:>10}  {connections:>11}")
    };
    line("name", "layer", "output", "parameters", "connections");
    let input: Vec<String> = net.input_shape().iter().map(|d| d.to_string()).collect();
    line("input", "", &input.join("x"), "", "");
    let thousands = report::text::thousands;
    for r in &rows {
        let shape: Vec<String> = r.output_shape.iter().map(|d| d.to_string()).collect();
        line(
            &r.name,
            &r.layer,
            &shape.join("x"),
            &thousands(r.params),
            &thousands(r.connections),
        );
    }
    say!(
        "total: {} trainable parameters, {} connections (per image, as LeCun et al. 1998 count \
         them: products with a weight or a bias)",
        thousands(net.param_count()),
        thousands(rows.iter().map(|r| r.connections).sum())
    );
    if config.arch == crate::nn::Arch::Lecun1998 {
        say!("\nthe output's fixed prototypes, digits 0 to 9 (7x12 bitmaps: # = +1, . = -1):");
        let p = crate::nn::rbf::prototypes();
        let (w, h) = (crate::nn::rbf::WIDTH, crate::nn::rbf::HEIGHT);
        for row in 0..h {
            let cells: Vec<String> = (0..10)
                .map(|d| {
                    let bits = &p.data[(d * h + row) * w..][..w];
                    bits.iter()
                        .map(|&v| if v > 0.0 { '#' } else { '.' })
                        .collect()
                })
                .collect();
            say!("{}", cells.join("  "));
        }
    }
    Ok(())
}

fn print_optimizers() {
    say!(
        "{:14} {:22} defaults (PyTorch's, except momentum 0.9 for momentum and nesterov; sdlm's are the 1998 paper's)",
        "optimizer",
        "samples per step"
    );
    for name in OptimizerName::ALL {
        let batch = match name.fixed_batch() {
            Some(BatchPolicy::FullBatch) => "whole training split".to_string(),
            Some(BatchPolicy::Fixed(b)) => b.to_string(),
            None => "--batch-size (64)".to_string(),
        };
        let defaults: Vec<String> = HYPERS
            .iter()
            .filter(|h| h.name != "decoupled_weight_decay")
            .filter_map(|h| Some(format!("{}={}", h.name, h.show(h.default_for(name)?))))
            .collect();
        say!("{:14} {:22} {}", name.as_str(), batch, defaults.join(", "));
    }
    say!("\n{:28} {:30} for", "hyperparameter", "values");
    for h in HYPERS {
        say!("{:28} {:30} {}", h.flag(), h.range.describe(), h.takers());
    }
    say!(
        "\nStudy files name them without dashes (lr_decay = 0.1, amsgrad = true). A hyperparameter \
         the optimizer does not have is an error.\n\
         Weight decay is L2 (added to the gradient) except for adamw, whose decay is decoupled; \
         --decoupled-weight-decay makes it decoupled for any optimizer.\n\
         Schedules (--schedule constant|step|exponential|cosine|lecun1998, --warmup-epochs N) work with every optimizer."
    );
}

/// The optimizer hyperparameters, one flag each, made from their declarations
/// ([`crate::optim::hyper::HYPERS`]): `--NAME X` for a number, `--NAME` for a flag.
#[derive(Clone, Debug, Default)]
struct HyperArgs(Hypers);

impl clap::FromArgMatches for HyperArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Hypers::default();
        for h in HYPERS {
            let value = if h.is_flag() {
                m.get_flag(h.name).then_some(1.0)
            } else {
                m.get_one::<f64>(h.name).copied()
            };
            if let Some(v) = value {
                given.set(h.name, v).expect("a declared hyperparameter");
            }
        }
        Ok(HyperArgs(given))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for HyperArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        HYPERS
            .iter()
            .fold(cmd, |cmd, h| {
                let arg = clap::Arg::new(h.name)
                    .long(h.flag()[2..].to_string())
                    .help(h.long_help())
                    .help_heading("Optimizer hyperparameters");
                cmd.arg(if h.is_flag() {
                    arg.action(clap::ArgAction::SetTrue)
                } else {
                    (arg.value_parser(clap::value_parser!(f64)))
                        .value_name("X")
                        .allow_negative_numbers(true)
                })
            })
            // One group of them all, as derived argument structs have, so that --resume can
            // refuse every hyperparameter at once.
            .group(
                clap::ArgGroup::new("HyperArgs")
                    .multiple(true)
                    .required(false)
                    .args(HYPERS.iter().map(|h| h.name)),
            )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl TrainArgs {
    /// The schedule the flags describe; a schedule's setting given with another schedule is
    /// an error, not ignored.
    fn schedule(&self) -> Result<Schedule> {
        let given = [
            ("--step-size", self.step_size.is_some(), "step"),
            ("--gamma", self.gamma.is_some(), "step and exponential"),
            ("--t-max", self.t_max.is_some(), "cosine"),
            ("--eta-min", self.eta_min.is_some(), "cosine"),
        ];
        let applies = |flag: &str| match self.schedule {
            ScheduleKind::Constant | ScheduleKind::Lecun1998 => false,
            ScheduleKind::Step => matches!(flag, "--step-size" | "--gamma"),
            ScheduleKind::Exponential => flag == "--gamma",
            ScheduleKind::Cosine => matches!(flag, "--t-max" | "--eta-min"),
        };
        if let Some((flag, _, schedules)) = given.iter().find(|(f, g, _)| *g && !applies(f)) {
            bail!(
                "{flag} does not apply to --schedule {}; it applies to the {schedules} schedules",
                format!("{:?}", self.schedule).to_lowercase()
            );
        }
        Ok(match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Lecun1998 => Schedule::Lecun1998,
            ScheduleKind::Step => Schedule::Step {
                step_size: self.step_size.unwrap_or(5),
                gamma: self.gamma.unwrap_or(0.1),
            },
            ScheduleKind::Exponential => Schedule::Exponential {
                gamma: self.gamma.unwrap_or(0.1),
            },
            ScheduleKind::Cosine => Schedule::Cosine {
                t_max: self
                    .t_max
                    .unwrap_or(self.epochs.saturating_sub(self.warmup_epochs).max(1)),
                eta_min: self.eta_min.unwrap_or(0.0),
            },
        })
    }

    fn config(&self) -> Result<TrainConfig> {
        let options = Options {
            arch: Some(self.model.arch),
            batch_norm: Some(self.model.batch_norm),
            dropout: Some(self.model.dropout),
            activation: Some(self.model.activation),
            pooling: Some(self.model.pooling),
            optimizer: Some(self.optimizer),
            hypers: self.hypers.0.clone(),
            schedule: Some(self.schedule()?),
            warmup_epochs: Some(self.warmup_epochs),
            batch_size: self.batch_size,
            epochs: Some(self.epochs),
            seed: Some(self.seed),
            valid_size: Some(self.valid_size),
            split_seed: Some(self.split_seed),
            preprocess: self.preprocess,
            dataset: Some(self.dataset),
            vary: None,
            distort: Some(self.distort),
        };
        options.resolve().map_err(anyhow::Error::msg)
    }
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

fn train(args: TrainArgs) -> Result<()> {
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

fn eval(args: &EvalArgs) -> Result<()> {
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

/// Starts `lenet explore`'s server and serves until interrupted.
fn explore(args: &ExploreArgs) -> Result<()> {
    let dirs = if args.dirs.is_empty() {
        let default = PathBuf::from("studies-out");
        if !default.is_dir() {
            bail!(
                "no directory given, and there is no studies-out/ here: name run or study \
                 directories (lenet explore DIR...), or run a study first (lenet study run)"
            );
        }
        vec![default]
    } else {
        args.dirs.clone()
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let server = crate::explore::Server::start(&crate::explore::Options {
        dirs,
        bind: args.bind,
        port: args.port,
        data_dir: args.data.dir(),
        workers: args.workers.unwrap_or(cores.max(2)),
    })?;
    let catalogue = server.catalogue();
    for dir in &catalogue.outside {
        eprintln!(
            "lenet explore: left out {}: it, or its model, is a link out of the directory given",
            dir.display()
        );
    }
    let runs = catalogue.len();
    // Written without `say!`: a server whose standard output has been closed goes on serving.
    let mut lines = format!(
        "lenet explore: {runs} run{} at {}\n",
        if runs == 1 { "" } else { "s" },
        server.url()
    );
    if server.token().is_some() {
        lines.push_str(
            "every request needs the token in that address (or an 'Authorization: Bearer \
             TOKEN' header); anyone who has it can see these runs\n",
        );
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
    }
    if !args.data.quiet {
        eprintln!("Ctrl-C stops the server");
    }
    Ok(server.serve()?)
}

/// The shipped default study.
const DEFAULT_STUDY: &str = include_str!("../../studies/regularization.toml");

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

fn study(command: StudyCommand) -> Result<()> {
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
    check_plan_size(&study, max_runs)?;
    let runs = study.run_count().map_err(anyhow::Error::msg)?;
    let epochs = study.epoch_count();
    let tuning = study.tuning_runs()?.len();
    say!("study {} ({})", study.name, file.display());
    let most = if matches!(study.seeds, crate::study::seeds::Seeds::Adaptive(_)) {
        "at most "
    } else {
        ""
    };
    say!(
        "  runs: {most}{} ({tuning} tuning, {most}{} final: {} configurations x {}), {most}{} epochs",
        report::text::thousands(runs as usize),
        study.configs.len() * study.seeds.most(),
        study.configs.len(),
        study.seeds,
        report::text::thousands(epochs as usize)
    );
    let dir = out.unwrap_or_else(|| Path::new("studies-out").join(&study.name));
    let status = (dir.join(STUDY_FILE).is_file())
        .then(|| execute::status(&study, &dir))
        .transpose()?;
    match status.as_ref().and_then(|s| s.seconds_left(&study)) {
        Some(left) if left <= 0.0 => say!(
            "  time: none left (every run in {} is finished)",
            dir.display()
        ),
        Some(left) => say!(
            "  time: about {} left at one run at a time (from the finished runs in {})",
            human_seconds(left),
            dir.display()
        ),
        None => say!(
            "  time: about {} at one run at a time ({EPOCH_SECONDS_ESTIMATE} s per 60,000-image \
             epoch, this machine's order; `lenet study status` refines it once runs finish)",
            human_seconds(epochs as f64 * EPOCH_SECONDS_ESTIMATE)
        ),
    }
    say!(
        "  disk: {most}about {:.1} MB of run directories ({RUN_MEGABYTES_ESTIMATE} MB each)",
        runs as f64 * RUN_MEGABYTES_ESTIMATE
    );
    // A summary that cannot be made is an error, not "no power figures".
    let summary = (status.filter(|s| s.final_done > 0))
        .map(|_| summarize(&study, &dir))
        .transpose()?;
    let Some(summary) = summary else {
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
    for p in &summary.pairs {
        if p.power.is_some_and(|p| p.identical) {
            say!(
                "    {} vs {}: identical on every seed; no power figure",
                p.a,
                p.b
            );
            continue;
        }
        let [detectable, seeds] = crate::study::summary::power_cells(p.power);
        say!(
            "    {} vs {}: detects {detectable} with these seeds; 0.1 points needs {seeds} seeds",
            p.a,
            p.b
        );
    }
    if let Some(f) = &summary.factorial {
        let names = [
            f.factors[0].clone(),
            f.factors[1].clone(),
            "interaction".into(),
        ];
        let alpha = crate::study::seeds::family_alpha(crate::study::summary::EFFECTS);
        for (name, p) in names.iter().zip(f.paired.iter().flatten()) {
            let power = crate::study::summary::Power::of_paired_at(p, alpha);
            if power.is_some_and(|p| p.identical) {
                say!("    {name}: identical on every seed; no power figure");
                continue;
            }
            let [detectable, seeds] = crate::study::summary::power_cells(power);
            say!(
                "    {name} (at 5% / 3, the family's level): detects {detectable} with these \
                 seeds; 0.1 points needs {seeds} seeds"
            );
        }
    }
    if let Some(a) = &summary.adaptive {
        let d = &a.decision;
        say!(
            "  adaptive seeds, sized from the first stage's validation accuracy: {} per \
             configuration ({})",
            d.seeds,
            match d.stopped {
                crate::study::seeds::Stop::Until => "every comparison reaches the half-width asked",
                crate::study::seeds::Stop::Max => "the maximum; some comparison needs more",
            }
        );
        for m in &d.comparisons {
            say!(
                "    {}: first-stage validation sd {:.3} points, needs {} seeds",
                m.name,
                100.0 * m.first_valid_sd,
                m.needed
                    .map_or("more than can be counted".into(), report::text::thousands)
            );
        }
    }
    Ok(())
}

/// Computes a study's statistics, prints them and writes the summary files.
fn write_summary(study: &StudyFile, dir: &Path) -> Result<()> {
    let summary = summarize(study, dir)?;
    summary.write(dir)?;
    say!("{}", summary.markdown());
    eprintln!(
        "wrote summary.md, summary.csv and summary.json in {}",
        dir.display()
    );
    Ok(())
}

fn human_seconds(s: f64) -> String {
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

/// Seconds of one 60,000-image epoch on one run's share of a 2-core machine, for estimates.
const EPOCH_SECONDS_ESTIMATE: f64 = 1.0;
/// Disk of a finished run directory of LeNet-5 with Adam's state (model, optimizer, metrics).
const RUN_MEGABYTES_ESTIMATE: f64 = 0.75;

/// Refuses a plan of more than `max_runs` runs, saying what it would cost.
fn check_plan_size(study: &StudyFile, max_runs: u64) -> Result<()> {
    let runs = study.run_count().map_err(anyhow::Error::msg)?;
    if runs <= max_runs {
        return Ok(());
    }
    let epochs = study.epoch_count();
    bail!(
        "study {} plans {} runs ({} epochs: about {} at {EPOCH_SECONDS_ESTIMATE} s per \
         60,000-image epoch, and about {:.1} GB of run directories at {RUN_MEGABYTES_ESTIMATE} MB \
         each); the limit is {} runs. Shrink the grid or the seeds, or pass --max-runs {runs} to \
         run it anyway",
        study.name,
        report::text::thousands(runs as usize),
        report::text::thousands(epochs as usize),
        human_seconds(epochs as f64 * EPOCH_SECONDS_ESTIMATE),
        runs as f64 * RUN_MEGABYTES_ESTIMATE / 1000.0,
        report::text::thousands(max_runs as usize),
    )
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

/// Locks the run in `dir` (whose config.json has been read) for a resume
/// (`dir/claims/resume.lock`, released when dropped); a lock held by a live process is an
/// error naming it.
fn lock_run(dir: &Path) -> Result<crate::study::claim::Claim> {
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
fn data_dir_flag(data: &DataDirArgs) -> String {
    data.data_dir
        .as_ref()
        .map_or(String::new(), |d| format!(" --data-dir {}", shell_word(d)))
}

fn study_run(args: &StudyRunArgs) -> Result<()> {
    let (text, origin) = match &args.file {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_STUDY.to_string(),
            "studies/regularization.toml (shipped)".to_string(),
        ),
    };
    let study = StudyFile::parse(&text, &origin)?;
    check_plan_size(&study, args.max_runs)?;
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
                write_summary(&study, &dir)?;
                write_report(&dir, &data)?;
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
