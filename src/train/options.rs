//! Training options as a user gives them — on the command line or in a study file — and
//! their resolution into a complete [`TrainConfig`]. Every field is optional; what is not
//! given takes its default, and a hyperparameter the chosen optimizer does not have is an
//! error.

use serde::{Deserialize, Serialize};

use super::{DataConfig, TrainConfig};
use crate::data::{Dataset, Preprocess};
use crate::nn::activation::ActivationKind;
use crate::nn::{Arch, BatchNormAt, ModelConfig, Pooling};
use crate::optim::config::BatchPolicy;
use crate::optim::hyper::{HYPERS, Hyper, Hypers};
use crate::optim::{OptimizerConfig, OptimizerName, Schedule, ScheduleConfig};
use crate::rng::Stream;

/// Options for one training run; `None` means the default. Optimizer hyperparameters are
/// the names of [`crate::optim::hyper::HYPERS`], in `hypers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub arch: Option<Arch>,
    pub batch_norm: Option<BatchNormAt>,
    pub dropout: Option<f32>,
    pub activation: Option<ActivationKind>,
    pub pooling: Option<Pooling>,
    pub optimizer: Option<OptimizerName>,
    #[serde(skip)]
    pub hypers: Hypers,
    pub schedule: Option<Schedule>,
    pub warmup_epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub valid_size: Option<usize>,
    pub split_seed: Option<u64>,
    pub preprocess: Option<Preprocess>,
    pub dataset: Option<Dataset>,
    pub vary: Option<Stream>,
    pub distort: Option<bool>,
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
            hypers.set(h.name, v).map_err(D::Error::custom)?;
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
        for (name, v) in self.0.hypers.iter() {
            let h = Hyper::lookup(name).map_err(S::Error::custom)?;
            let value = if h.is_flag() {
                serde_json::Value::Bool(v != 0.0)
            } else {
                serde_json::json!(v)
            };
            table.insert(name.to_string(), value);
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

/// The keys of [`Options`] other than the hyperparameters.
const OPTION_KEYS: [&str; 17] = [
    "arch",
    "batch_norm",
    "dropout",
    "activation",
    "pooling",
    "optimizer",
    "schedule",
    "warmup_epochs",
    "batch_size",
    "epochs",
    "seed",
    "valid_size",
    "split_seed",
    "preprocess",
    "dataset",
    "vary",
    "distort",
];

macro_rules! merge {
    ($base:expr, $over:expr, $($field:ident),* $(,)?) => {
        Options {
            $($field: $over.$field.clone().or_else(|| $base.$field.clone()),)*
            hypers: $base.hypers.overridden_by(&$over.hypers),
        }
    };
}

/// Default epochs of a run.
pub const DEFAULT_EPOCHS: usize = 15;
/// Default mini-batch size.
pub const DEFAULT_BATCH: usize = 64;

impl Options {
    /// These options with every field that `over` gives replaced by its value.
    pub fn overridden_by(&self, over: &Options) -> Options {
        merge!(
            self,
            over,
            arch,
            batch_norm,
            dropout,
            activation,
            pooling,
            optimizer,
            schedule,
            warmup_epochs,
            batch_size,
            epochs,
            seed,
            valid_size,
            split_seed,
            preprocess,
            dataset,
            vary,
            distort,
        )
    }

    /// The complete configuration these options describe.
    pub fn resolve(&self) -> Result<TrainConfig, String> {
        let name = self.optimizer.unwrap_or(OptimizerName::Adam);
        let optimizer = OptimizerConfig::resolve(name, &self.hypers)?;
        let batch_size = match (name.fixed_batch(), self.batch_size) {
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
            arch: self.arch.unwrap_or(Arch::Lenet5),
            batch_norm: self.batch_norm.unwrap_or_default(),
            dropout: self.dropout.unwrap_or(0.0),
            activation: self.activation.unwrap_or(ActivationKind::Relu),
            pooling: self.pooling.unwrap_or_default(),
        };
        model.validate()?;
        let preprocess = self.preprocess.unwrap_or(match model.arch {
            Arch::Lecun1998 | Arch::Lecun1998Softmax => Preprocess::Lecun,
            Arch::Lenet5 => Preprocess::Unit,
        });
        let config = TrainConfig {
            model,
            optimizer,
            schedule: ScheduleConfig {
                schedule: self.schedule.unwrap_or_default(),
                warmup_epochs: self.warmup_epochs.unwrap_or(0),
            },
            batch_size,
            epochs: self.epochs.unwrap_or(DEFAULT_EPOCHS),
            seed: self.seed.unwrap_or(0),
            data: DataConfig {
                valid_size: self.valid_size.unwrap_or(DataConfig::default().valid_size),
                split_seed: self.split_seed.unwrap_or(0),
                preprocess,
                dataset: self.dataset.unwrap_or_default(),
                distort: self.distort.unwrap_or(false),
            },
            vary: self.vary,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_options_win_and_defaults_fill_the_rest() {
        let mut base = Options {
            optimizer: Some(OptimizerName::Momentum),
            ..Default::default()
        };
        base.hypers.set("lr", 0.1).unwrap();
        base.hypers.set("momentum", 0.5).unwrap();
        let mut over = Options {
            dropout: Some(0.4),
            ..Default::default()
        };
        over.hypers.set("lr", 0.01).unwrap();
        let c = base.overridden_by(&over).resolve().unwrap();
        assert_eq!(c.optimizer.name, OptimizerName::Momentum);
        assert_eq!(c.optimizer.lr, 0.01);
        assert_eq!(c.optimizer.value("momentum"), Some(0.5));
        assert_eq!(c.model.dropout, 0.4);
        assert_eq!(c.batch_size, DEFAULT_BATCH);
        assert_eq!(c.epochs, DEFAULT_EPOCHS);
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
        assert_eq!(o.hypers.get("lr"), Some(0.01));
        assert_eq!(o.hypers.get("amsgrad"), Some(1.0));
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
