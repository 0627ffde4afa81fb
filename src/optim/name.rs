//! The ten optimizers of the study by name (the table in [`super::config`] says what each
//! is), and the batch size a name implies.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerName {
    /// Full-batch gradient descent: one step per epoch on the whole training split.
    Gd,
    /// Stochastic gradient descent on one sample per step.
    Sgd,
    /// Plain SGD on mini-batches.
    MinibatchSgd,
    /// SGD with momentum.
    Momentum,
    /// SGD with Nesterov momentum.
    Nesterov,
    Adagrad,
    Adadelta,
    Rmsprop,
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
}

impl OptimizerName {
    pub const ALL: [OptimizerName; 10] = [
        OptimizerName::Gd,
        OptimizerName::Sgd,
        OptimizerName::MinibatchSgd,
        OptimizerName::Momentum,
        OptimizerName::Nesterov,
        OptimizerName::Adagrad,
        OptimizerName::Adadelta,
        OptimizerName::Rmsprop,
        OptimizerName::Adam,
        OptimizerName::Adamw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerName::Gd => "gd",
            OptimizerName::Sgd => "sgd",
            OptimizerName::MinibatchSgd => "minibatch-sgd",
            OptimizerName::Momentum => "momentum",
            OptimizerName::Nesterov => "nesterov",
            OptimizerName::Adagrad => "adagrad",
            OptimizerName::Adadelta => "adadelta",
            OptimizerName::Rmsprop => "rmsprop",
            OptimizerName::Adam => "adam",
            OptimizerName::Adamw => "adamw",
        }
    }

    /// The batch size the name implies, if it fixes one: `sgd` is 1; `gd` is the whole split
    /// (`None` here, resolved by the trainer).
    pub fn fixed_batch(self) -> Option<BatchPolicy> {
        match self {
            OptimizerName::Gd => Some(BatchPolicy::FullBatch),
            OptimizerName::Sgd => Some(BatchPolicy::Fixed(1)),
            _ => None,
        }
    }
}

/// How many samples one optimizer step sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchPolicy {
    Fixed(usize),
    /// The whole training split, accumulated in bounded chunks.
    FullBatch,
}
