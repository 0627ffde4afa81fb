//! Training options as a user gives them — on the command line or in a study file — and
//! their resolution into a complete [`TrainConfig`]. Every field is optional; what is not
//! given takes its default, and a hyperparameter the chosen optimizer does not have is an
//! error.

use serde::{Deserialize, Serialize};

use super::{DataConfig, TrainConfig};
use crate::data::Preprocess;
use crate::nn::activation::ActivationKind;
use crate::nn::{Arch, BatchNormAt, ModelConfig, Pooling};
use crate::optim::config::{BatchPolicy, Overrides};
use crate::optim::{OptimizerConfig, OptimizerName, Schedule, ScheduleConfig};

/// Options for one training run; `None` means the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub arch: Option<Arch>,
    pub batch_norm: Option<BatchNormAt>,
    pub dropout: Option<f32>,
    pub activation: Option<ActivationKind>,
    pub pooling: Option<Pooling>,
    pub optimizer: Option<OptimizerName>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub dampening: Option<f64>,
    pub classic_momentum: Option<bool>,
    pub lr_decay: Option<f64>,
    pub initial_accumulator_value: Option<f64>,
    pub rho: Option<f64>,
    pub alpha: Option<f64>,
    pub centered: Option<bool>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub amsgrad: Option<bool>,
    pub weight_decay: Option<f64>,
    pub decoupled_weight_decay: Option<bool>,
    pub schedule: Option<Schedule>,
    pub warmup_epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub valid_size: Option<usize>,
    pub split_seed: Option<u64>,
    pub preprocess: Option<Preprocess>,
}

macro_rules! merge {
    ($base:expr, $over:expr, $($field:ident),* $(,)?) => {
        Options { $($field: $over.$field.clone().or_else(|| $base.$field.clone()),)* }
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
            lr,
            momentum,
            dampening,
            classic_momentum,
            lr_decay,
            initial_accumulator_value,
            rho,
            alpha,
            centered,
            beta1,
            beta2,
            eps,
            amsgrad,
            weight_decay,
            decoupled_weight_decay,
            schedule,
            warmup_epochs,
            batch_size,
            epochs,
            seed,
            valid_size,
            split_seed,
            preprocess,
        )
    }

    /// The complete configuration these options describe.
    pub fn resolve(&self) -> Result<TrainConfig, String> {
        let name = self.optimizer.unwrap_or(OptimizerName::Adam);
        let overrides = Overrides {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            classic_momentum: self.classic_momentum,
            lr_decay: self.lr_decay,
            initial_accumulator_value: self.initial_accumulator_value,
            rho: self.rho,
            alpha: self.alpha,
            centered: self.centered,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            amsgrad: self.amsgrad,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: self.decoupled_weight_decay,
        };
        let optimizer = OptimizerConfig::resolve(name, &overrides)?;
        let batch_size = match (name.fixed_batch(), self.batch_size) {
            (Some(BatchPolicy::FullBatch), None) => 0,
            (Some(BatchPolicy::Fixed(b)), None) => b,
            (Some(_), Some(b)) => {
                return Err(format!(
                    "batch size {b} does not apply to {}: gd uses the whole training split and sgd \
                     one sample per step; use minibatch-sgd for SGD on mini-batches",
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
            Arch::Lecun1998 => Preprocess::Lecun,
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
            },
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
        let base = Options {
            optimizer: Some(OptimizerName::Momentum),
            lr: Some(0.1),
            ..Default::default()
        };
        let over = Options {
            lr: Some(0.01),
            dropout: Some(0.4),
            ..Default::default()
        };
        let c = base.overridden_by(&over).resolve().unwrap();
        assert_eq!(c.optimizer.name, OptimizerName::Momentum);
        assert_eq!(c.optimizer.lr, 0.01);
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
