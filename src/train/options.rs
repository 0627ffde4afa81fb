//! Training options as a user gives them — on the command line or in a study file — and
//! their resolution into a complete [`TrainConfig`]. Every field is optional; what is not
//! given takes its default, and a hyperparameter the chosen optimizer does not have is an
//! error.

use serde::{Deserialize, Serialize};

use super::instruments::InstrumentSet;
use super::{DataConfig, TrainConfig};
use crate::data::{Dataset, Preprocess};
use crate::nn::activation::ActivationKind;
use crate::nn::init::Init;
use crate::nn::rbf::Prototypes;
use crate::nn::{Arch, BatchNormAt, ModelConfig, Pooling};
use crate::optim::config::BatchPolicy;
use crate::optim::hyper::{HYPERS, Hypers};
use crate::optim::{OptimizerConfig, OptimizerName, Schedule, ScheduleConfig};
use crate::rng::Stream;

/// Declares every training option once: its name (the study file's key; the command line's
/// flag is the name with dashes), its type, its default (`None`: computed from the others in
/// [`Options::resolve`], described by `shown`), whether the command line takes it as a value,
/// a switch or not at all, the help heading, whether `lenet model` takes it too, and its help
/// text. From it come [`Options`] with its merge, [`OPTION_KEYS`], [`Options::defaults`], the
/// command line's arguments ([`clap::Args`]) and their help with the defaults.
macro_rules! declare_options {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:expr, $shown:literal, $cli:ident, $heading:literal, $model:literal;
    )*) => {
        declare_options!(@declare $($(#[doc = $doc])* $field: $ty = $default, $shown, $cli, $heading, $model;)*);
    };
    (@arg Value, $ty:ty, $cmd:expr, $d:expr, $shown:expr) => {
        $cmd.arg(
            ($d.arg($shown).value_parser(clap::value_parser!($ty)))
                .value_name($d.name.to_uppercase()),
        )
    };
    (@arg Switch, $ty:ty, $cmd:expr, $d:expr, $shown:expr) => {{
        let _ = $shown;
        $cmd.arg($d.arg(String::new()).action(clap::ArgAction::SetTrue))
    }};
    (@arg No, $ty:ty, $cmd:expr, $d:expr, $shown:expr) => {{
        let _ = ($d, $shown);
        $cmd
    }};
    (@get Value, $ty:ty, $m:expr, $name:expr) => {
        $m.try_get_one::<$ty>($name).ok().flatten().cloned()
    };
    (@get Switch, $ty:ty, $m:expr, $name:expr) => {
        matches!($m.try_get_one::<bool>($name), Ok(Some(true))).then_some(true)
    };
    (@get No, $ty:ty, $m:expr, $name:expr) => {{
        let _ = ($m, $name);
        None
    }};
    (@declare $(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:expr, $shown:literal, $cli:ident, $heading:literal, $model:literal;
    )*) => {
        /// Options for one training run; `None` means the default. Optimizer hyperparameters
        /// are the names of [`crate::optim::hyper::HYPERS`], in `hypers`.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Options {
            $($(#[doc = $doc])* pub $field: Option<$ty>,)*
            #[serde(skip)]
            pub hypers: Hypers,
        }

        /// The keys of [`Options`] other than the hyperparameters.
        pub const OPTION_KEYS: &[&str] = &[$(stringify!($field)),*];

        /// Every option's declaration, in the order the help lists them.
        pub const DECLARED: &[Declared] = &[$(Declared {
            name: stringify!($field),
            cli: Cli::$cli,
            heading: $heading,
            model: $model,
            help: concat!($($doc, "\n"),*),
            shown: $shown,
        }),*];

        impl Options {
            /// Every option at its declared default (`None` where the default depends on
            /// the others).
            pub fn defaults() -> Options {
                Options {
                    $($field: $default,)*
                    hypers: Hypers::default(),
                }
            }

            /// These options with every field that `over` gives replaced by its value.
            pub fn overridden_by(&self, over: &Options) -> Options {
                Options {
                    $($field: over.$field.clone().or_else(|| self.$field.clone()),)*
                    hypers: self.hypers.overridden_by(&over.hypers),
                }
            }

            /// The flags of the options and hyperparameters given, in declaration order.
            pub fn given(&self) -> Vec<String> {
                let mut flags = Vec::new();
                let mut i = 0;
                $(
                    if self.$field.is_some() {
                        flags.push(DECLARED[i].flag());
                    }
                    i += 1;
                )*
                let _ = i;
                let hypers = self.hypers.iter();
                flags.extend(hypers.map(|(h, _)| h.flag()));
                flags
            }

            /// The command line's arguments for the options `keep` selects.
            fn augment(mut cmd: clap::Command, keep: fn(&Declared) -> bool) -> clap::Command {
                let defaults = Options::defaults();
                let mut i = 0;
                $(
                    let d = &DECLARED[i];
                    i += 1;
                    if keep(d) {
                        cmd = declare_options!(@arg $cli, $ty, cmd, d, shown(&defaults.$field, d.shown));
                    }
                )*
                let _ = i;
                cmd
            }

            /// The options given on the command line.
            fn from_matches(m: &clap::ArgMatches) -> Options {
                let mut i = 0;
                let options = Options {
                    $($field: {
                        let d = &DECLARED[i];
                        i += 1;
                        declare_options!(@get $cli, $ty, m, d.name)
                    },)*
                    hypers: hypers_from_matches(m),
                };
                let _ = i;
                options
            }
        }
    };
}

/// How the command line takes an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    /// `--name VALUE`
    Value,
    /// `--name`, for `true`
    Switch,
    /// Study files only.
    No,
}

/// One option's declaration (see [`declare_options`]).
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    pub name: &'static str,
    pub cli: Cli,
    pub heading: &'static str,
    /// Whether `lenet model` takes it: it describes the network.
    pub model: bool,
    pub help: &'static str,
    /// The default in words, where it depends on the other options.
    pub shown: &'static str,
}

impl Declared {
    /// The command-line flag: `--batch-norm`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// Its help text on one line, with its default.
    fn help_line(&self, default: &str) -> String {
        let text: Vec<&str> = self.help.lines().map(str::trim).collect();
        let text = text.join(" ").trim().to_string();
        match (text.is_empty(), default.is_empty()) {
            (_, true) => text,
            (true, false) => format!("[default: {default}]"),
            (false, false) => format!("{text} [default: {default}]"),
        }
    }

    fn arg(&self, default: String) -> clap::Arg {
        let arg = clap::Arg::new(self.name)
            .long(self.name.replace('_', "-"))
            .help(self.help_line(&default));
        if self.heading.is_empty() {
            arg
        } else {
            arg.help_heading(self.heading)
        }
    }
}

/// A declared default as the help shows it: the value as a study file writes it, or the
/// declaration's words where it depends on the other options.
fn shown<T: Serialize>(default: &Option<T>, words: &str) -> String {
    match default.as_ref().map(serde_json::to_value) {
        Some(Ok(serde_json::Value::String(s))) => s,
        Some(Ok(v)) if !v.is_object() => v.to_string(),
        _ => words.to_string(),
    }
}

/// The optimizer hyperparameters given on the command line.
fn hypers_from_matches(m: &clap::ArgMatches) -> Hypers {
    let mut given = Hypers::default();
    for h in HYPERS {
        let value = if h.is_flag() {
            matches!(m.try_get_one::<bool>(h.name), Ok(Some(true))).then_some(1.0)
        } else {
            m.try_get_one::<f64>(h.name).ok().flatten().copied()
        };
        if let Some(v) = value {
            given.set(h.key, v);
        }
    }
    given
}

declare_options! {
    /// lenet5: the study's model (ReLU, max pooling, 61,706 parameters). lecun1998: LeCun et
    /// al.'s original (scaled tanh, trainable subsampling, sparse C3, Euclidean RBF output
    /// against fixed 7x12 digit prototypes, the MAP criterion; 60,000 parameters).
    /// lecun1998-softmax: the same with a linear output and softmax cross-entropy.
    arch: Arch = Some(Arch::Lenet5), "", Value, "", true;
    /// Batch normalization in the study's model: none, after the first conv block (as the
    /// study), or after every conv block.
    batch_norm: BatchNormAt = Some(BatchNormAt::None), "", Value, "", true;
    /// Dropout probability on the fully connected hidden layer (0 = none; the study used 0.4).
    dropout: f32 = Some(0.0), "", Value, "", true;
    /// The study model's activation.
    activation: ActivationKind = Some(ActivationKind::Relu), "", Value, "", true;
    /// The study model's pooling.
    pooling: Pooling = Some(Pooling::Max), "", Value, "", true;
    /// How the 1998 networks draw their weights (the study's model always starts as
    /// PyTorch's does).
    init: Init = Some(Init::Default), "", Value, "1998 network", false;
    /// The MAP criterion's rubbish-class constant j (--arch lecun1998): the loss adds
    /// log(e^-j + sum_i e^-y_i), which stops pushing a wrong class once its distance is well
    /// above j. The paper gives no value.
    map_j: f32 = Some(crate::nn::loss::MAP_J), "", Value, "1998 network", false;
    /// The RBF output's drawing of the ten digits (--arch lecun1998): plain strokes one pixel
    /// wide, or bold, two pixels wide as in the paper's Fig. 3. `lenet model` prints them.
    prototypes: Prototypes = Some(Prototypes::Plain), "", Value, "1998 network", true;
    /// gd is full-batch (one step per epoch), sgd and sdlm take one sample per step, the
    /// others take --batch-size. `lenet optimizers` lists them with their defaults.
    optimizer: OptimizerName = Some(OptimizerName::Adam), "", Value, "", false;
    /// The learning-rate schedule, stepped once per epoch (study files:
    /// `schedule = { kind = "step", step_size = 5, gamma = 0.1 }`).
    schedule: Schedule = Some(Schedule::Constant), "", No, "Schedule", false;
    /// Linear warm-up epochs before the schedule.
    warmup_epochs: usize = Some(0), "", Value, "Schedule", false;
    /// Samples per step.
    batch_size: usize = None, "64; gd uses the whole training split, sgd and sdlm use 1",
        Value, "", false;
    /// Passes over the training split.
    epochs: usize = Some(15), "", Value, "", false;
    /// Seed of the run: initialisation, shuffling and dropout each draw from their own stream.
    seed: u64 = Some(0), "", Value, "", false;
    /// Training images held out for validation.
    valid_size: usize = Some(5000), "", Value, "", false;
    /// Seed of the validation split (keep it fixed to compare runs).
    split_seed: u64 = Some(0), "", Value, "", false;
    /// Input scaling: unit ([0, 1], as the study), standardize (MNIST mean and std), lecun
    /// (background -0.1, ink 1.175).
    preprocess: Preprocess = None, "lecun for the 1998 networks, unit otherwise",
        Value, "", false;
    /// What to train on: mnist (digits) or fashion-mnist (Zalando's articles, same shape).
    dataset: Dataset = Some(Dataset::Mnist), "", Value, "", false;
    /// Vary only this random stream with the seed, the others held fixed (study files).
    vary: Stream = None, "every stream varies", No, "", false;
    /// Distort every training image anew at every pass, as LeCun et al. (1998): a random
    /// translation (up to 2 pixels), scaling and squeezing (0.9 to 1.1) and horizontal shear
    /// (up to 0.15), from the run's own distortion stream.
    distort: bool = Some(false), "", Switch, "", false;
    /// Per-step instruments written to instruments.csv: cheap (loss, learning rate, gradient,
    /// update and parameter norms per layer, distance from the initial weights); noise (the
    /// cheap set and, from per-sample gradients, their norms, the mini-batch gradient's
    /// variance, the gradient noise scale, the norm, inner-product and orthogonality tests,
    /// the signal-to-noise ratio per layer; dead ReLUs, saturated tanh units and batch norm's
    /// statistics per layer); curvature (the cheap set, the sharpness, the batch loss's
    /// largest Hessian eigenvalue, to set against 2/lr, and the Gauss–Newton trace; up to 50
    /// extra passes a recorded step: use --instruments-every); all (the three). They never
    /// change training.
    instruments: InstrumentSet = Some(InstrumentSet::None), "", Value, "Instruments", false;
    /// Record the instruments every K steps.
    instruments_every: usize = Some(1), "", Value, "Instruments", false;
}

/// The training options and the optimizer hyperparameters on the command line, made from
/// their declarations: `--NAME X` for a value, `--NAME` for a switch.
impl clap::Args for Options {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = Options::augment(cmd, |_| true);
        let cmd = HYPERS.iter().fold(cmd, |cmd, h| {
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
        });
        // One group of them all, as derived argument structs have, so that --resume can
        // refuse every option at once.
        let names = DECLARED
            .iter()
            .filter(|d| d.cli != Cli::No)
            .map(|d| d.name)
            .chain(HYPERS.iter().map(|h| h.name));
        cmd.group(
            clap::ArgGroup::new("Options")
                .multiple(true)
                .required(false)
                .args(names),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Options {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Options::from_matches(m))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Options::from_matches(m);
        Ok(())
    }
}

/// The options that describe the network alone, for `lenet model`.
#[derive(Clone, Debug, Default)]
pub struct ModelOptions(pub Options);

impl clap::Args for ModelOptions {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Options::augment(cmd, |d| d.model)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ModelOptions {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(ModelOptions(Options::from_matches(m)))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0 = Options::from_matches(m);
        Ok(())
    }
}

/// Options as a study file writes them: every key of [`Options`], and the hyperparameters
/// by their declared names beside them (`lr = 0.01`, `amsgrad = true`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptionsFile(pub Options);

impl<'de> Deserialize<'de> for OptionsFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table: serde_json::Map<String, serde_json::Value> = Deserialize::deserialize(d)?;
        let mut hypers = Hypers::default();
        for h in HYPERS {
            let Some(value) = table.remove(h.name) else {
                continue;
            };
            let v = match (&value, h.is_flag()) {
                (serde_json::Value::Bool(b), true) => f64::from(u8::from(*b)),
                (serde_json::Value::Number(n), false) => n.as_f64().unwrap_or(f64::NAN),
                _ => {
                    return Err(D::Error::custom(format!(
                        "{} = {value}: expected {}",
                        h.name,
                        h.range.describe()
                    )));
                }
            };
            hypers.set(h.key, v);
        }
        let known: Vec<&str> = OPTION_KEYS
            .iter()
            .copied()
            .chain(HYPERS.iter().map(|h| h.name))
            .collect();
        if let Some(key) = table.keys().find(|k| !OPTION_KEYS.contains(&k.as_str())) {
            return Err(D::Error::custom(format!(
                "unknown option '{key}'; expected one of {}",
                known.join(", ")
            )));
        }
        let mut options: Options =
            serde_json::from_value(serde_json::Value::Object(table)).map_err(D::Error::custom)?;
        options.hypers = hypers;
        Ok(OptionsFile(options))
    }
}

impl Serialize for OptionsFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut table = match serde_json::to_value(&self.0).map_err(S::Error::custom)? {
            serde_json::Value::Object(t) => t,
            _ => unreachable!("options serialise as a table"),
        };
        table.retain(|_, v| !v.is_null());
        for (h, v) in self.0.hypers.iter() {
            let value = if h.is_flag() {
                serde_json::Value::Bool(v != 0.0)
            } else {
                serde_json::json!(v)
            };
            table.insert(h.name.to_string(), value);
        }
        table.serialize(s)
    }
}

/// For `#[serde(with = "crate::train::options::file")]`: an [`Options`] field read and
/// written as [`OptionsFile`].
pub mod file {
    use super::{Options, OptionsFile};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Options, D::Error> {
        OptionsFile::deserialize(d).map(|f| f.0)
    }

    pub fn serialize<S: Serializer>(o: &Options, s: S) -> Result<S::Ok, S::Error> {
        OptionsFile(o.clone()).serialize(s)
    }
}

/// Default mini-batch size.
pub const DEFAULT_BATCH: usize = 64;

impl Options {
    /// The complete configuration these options describe.
    pub fn resolve(&self) -> Result<TrainConfig, String> {
        let o = Options::defaults().overridden_by(self);
        let name = o.optimizer.expect(DECLARED_DEFAULT);
        let optimizer = OptimizerConfig::resolve(name, &o.hypers)?;
        let batch_size = match (name.fixed_batch(), o.batch_size) {
            (Some(BatchPolicy::FullBatch), None) => 0,
            (Some(BatchPolicy::Fixed(b)), None) => b,
            (Some(_), Some(b)) => {
                return Err(format!(
                    "batch size {b} does not apply to {}: gd uses the whole training split, sgd and \
                     sdlm one sample per step; use minibatch-sgd for SGD on mini-batches",
                    name.as_str()
                ));
            }
            (None, Some(0)) => return Err("the batch size must be at least 1".into()),
            (None, b) => b.unwrap_or(DEFAULT_BATCH),
        };
        let model = ModelConfig {
            arch: o.arch.expect(DECLARED_DEFAULT),
            batch_norm: o.batch_norm.expect(DECLARED_DEFAULT),
            dropout: o.dropout.expect(DECLARED_DEFAULT),
            activation: o.activation.expect(DECLARED_DEFAULT),
            pooling: o.pooling.expect(DECLARED_DEFAULT),
            init: o.init.expect(DECLARED_DEFAULT),
            map_j: o.map_j.expect(DECLARED_DEFAULT),
            prototypes: o.prototypes.expect(DECLARED_DEFAULT),
        };
        model.validate()?;
        let preprocess = o.preprocess.unwrap_or(match model.arch {
            Arch::Lecun1998 | Arch::Lecun1998Softmax => Preprocess::Lecun,
            Arch::Lenet5 => Preprocess::Unit,
        });
        let config = TrainConfig {
            model,
            optimizer,
            schedule: ScheduleConfig {
                schedule: o.schedule.expect(DECLARED_DEFAULT),
                warmup_epochs: o.warmup_epochs.expect(DECLARED_DEFAULT),
            },
            batch_size,
            epochs: o.epochs.expect(DECLARED_DEFAULT),
            seed: o.seed.expect(DECLARED_DEFAULT),
            data: DataConfig {
                valid_size: o.valid_size.expect(DECLARED_DEFAULT),
                split_seed: o.split_seed.expect(DECLARED_DEFAULT),
                preprocess,
                dataset: o.dataset.expect(DECLARED_DEFAULT),
                distort: o.distort.expect(DECLARED_DEFAULT),
            },
            vary: o.vary,
            instruments: o.instruments.expect(DECLARED_DEFAULT),
            instruments_every: o.instruments_every.expect(DECLARED_DEFAULT),
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The epochs these options train for.
    pub fn epochs(&self) -> usize {
        Options::defaults()
            .overridden_by(self)
            .epochs
            .expect(DECLARED_DEFAULT)
    }

    /// The epochs these options train for after their warm-up (a cosine schedule's default
    /// half period).
    pub fn epochs_after_warmup(&self) -> usize {
        let o = Options::defaults().overridden_by(self);
        let warmup = o.warmup_epochs.expect(DECLARED_DEFAULT);
        o.epochs.expect(DECLARED_DEFAULT).saturating_sub(warmup)
    }
}

/// `expect`'s message for an option declared with a default.
const DECLARED_DEFAULT: &str = "declared with a default";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::hyper::HyperKey;

    #[test]
    fn later_options_win_and_defaults_fill_the_rest() {
        let mut base = Options {
            optimizer: Some(OptimizerName::Momentum),
            ..Default::default()
        };
        base.hypers.set(HyperKey::Lr, 0.1);
        base.hypers.set(HyperKey::Momentum, 0.5);
        let mut over = Options {
            dropout: Some(0.4),
            ..Default::default()
        };
        over.hypers.set(HyperKey::Lr, 0.01);
        let c = base.overridden_by(&over).resolve().unwrap();
        assert_eq!(c.optimizer.name, OptimizerName::Momentum);
        assert_eq!(c.optimizer.lr, 0.01);
        assert_eq!(c.optimizer.value(HyperKey::Momentum), Some(0.5));
        assert_eq!(c.model.dropout, 0.4);
        assert_eq!(c.batch_size, DEFAULT_BATCH);
        assert_eq!(c.epochs, 15);
    }

    #[test]
    fn implied_batch_sizes_and_conflicts() {
        let gd = Options {
            optimizer: Some(OptimizerName::Gd),
            ..Default::default()
        };
        assert_eq!(gd.resolve().unwrap().batch_size, 0);
        let bad = Options {
            batch_size: Some(64),
            ..gd
        };
        assert!(bad.resolve().unwrap_err().contains("does not apply to gd"));
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::optim::hyper::HyperKey;

    fn parse(text: &str) -> Result<Options, String> {
        toml::from_str::<OptionsFile>(text)
            .map(|f| f.0)
            .map_err(|e| e.to_string())
    }

    /// The hand-kept list of keys is every field of [`Options`] but the hyperparameters.
    #[test]
    fn option_keys_are_the_fields_of_options() {
        let serde_json::Value::Object(fields) = serde_json::to_value(Options::default()).unwrap()
        else {
            panic!("options serialise as a table");
        };
        let mut fields: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut keys = OPTION_KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    /// Hyperparameters sit beside the other options; each is checked for its kind, unknown
    /// keys are refused with the list of known ones, and the table round-trips.
    #[test]
    fn study_options_read_hyperparameters_by_their_declared_names() {
        let o = parse("optimizer = \"adam\"\nlr = 0.01\namsgrad = true\nepochs = 3").unwrap();
        assert_eq!(o.hypers.get(HyperKey::Lr), Some(0.01));
        assert_eq!(o.hypers.get(HyperKey::Amsgrad), Some(1.0));
        assert_eq!(o.epochs, Some(3));
        let back: Options =
            toml::from_str::<OptionsFile>(&toml::to_string(&OptionsFile(o.clone())).unwrap())
                .unwrap()
                .0;
        assert_eq!(back, o);
        let err = parse("momentun = 0.9").unwrap_err();
        assert!(
            err.contains("unknown option 'momentun'") && err.contains("momentum"),
            "{err}"
        );
        assert!(parse("amsgrad = 1").unwrap_err().contains("true or false"));
        assert!(
            parse("lr = \"fast\"")
                .unwrap_err()
                .contains("finite number")
        );
        // Whether the optimizer has it is checked when the options resolve.
        let adam = parse("optimizer = \"adam\"\nmomentum = 0.5").unwrap();
        assert!(
            adam.resolve()
                .unwrap_err()
                .contains("momentum does not apply to adam")
        );
    }
}
