//! The optimizers by name: the study's ten and the 1998 paper's (the table in [`super::config`] says what each
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
    /// LeCun et al.'s (1998) stochastic diagonal Levenberg–Marquardt: one sample per step,
    /// each parameter's rate lr / (mu + h), h its Gauss–Newton second derivative, estimated
    /// before every pass.
    Sdlm,
}

impl OptimizerName {
    pub const ALL: [OptimizerName; 11] = [
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
        OptimizerName::Sdlm,
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
            OptimizerName::Sdlm => "sdlm",
        }
    }

    /// The batch size the name implies, if it fixes one: `sgd` and `sdlm` are 1; `gd` is the whole split
    /// (`None` here, resolved by the trainer).
    pub fn fixed_batch(self) -> Option<BatchPolicy> {
        match self {
            OptimizerName::Gd => Some(BatchPolicy::FullBatch),
            OptimizerName::Sgd | OptimizerName::Sdlm => Some(BatchPolicy::Fixed(1)),
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
