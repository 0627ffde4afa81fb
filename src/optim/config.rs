//! The ten optimizers of the study by name, with their defaults.
//!
//! | name | rule | batch | defaults (PyTorch's unless marked) |
//! |---|---|---|---|
//! | gd | SGD | the whole training split, one step per epoch | lr 1e-3 |
//! | sgd | SGD | 1 | lr 1e-3 |
//! | minibatch-sgd | SGD | `--batch-size` | lr 1e-3 |
//! | momentum | SGD with momentum | `--batch-size` | lr 1e-3, momentum 0.9 (PyTorch: 0), dampening 0 |
//! | nesterov | SGD with Nesterov momentum | `--batch-size` | lr 1e-3, momentum 0.9 (PyTorch: 0) |
//! | adagrad | AdaGrad | `--batch-size` | lr 1e-2, lr_decay 0, initial_accumulator_value 0, eps 1e-10 |
//! | adadelta | AdaDelta | `--batch-size` | lr 1.0, rho 0.9, eps 1e-6 |
//! | rmsprop | RMSprop | `--batch-size` | lr 1e-2, alpha 0.99, eps 1e-8, centered false, momentum 0 |
//! | adam | Adam | `--batch-size` | lr 1e-3, betas (0.9, 0.999), eps 1e-8, amsgrad false |
//! | adamw | Adam, decoupled weight decay | `--batch-size` | lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2 |
//!
//! Where other libraries differ (users comparing results are bitten by exactly these):
//! - Keras' Adadelta defaults to lr 1e-3 and rho 0.95, eps 1e-7; PyTorch's lr 1.0 is the
//!   paper's (Zeiler 2012 has no learning rate at all).
//! - Keras' Adagrad starts its accumulator at 0.1 and uses eps 1e-7; PyTorch starts at 0.
//! - Keras' RMSprop uses rho 0.9 and eps 1e-7; PyTorch's alpha is 0.99. TensorFlow 1's RMSprop
//!   put eps inside the square root; PyTorch (and lenet) add it outside.
//! - Keras' Adam uses eps 1e-7 (PyTorch 1e-8); burn's uses 1e-5.
//! - Keras' SGD momentum is v = mu v - lr g, p += v (the classic form, `--classic-momentum`);
//!   PyTorch's keeps the buffer without the learning rate.

use serde::{Deserialize, Serialize};

use super::{Algorithm, Optimizer, WeightDecay};

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

    /// PyTorch's default learning rate for the rule.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerName::Adagrad | OptimizerName::Rmsprop => 1e-2,
            OptimizerName::Adadelta => 1.0,
            _ => 1e-3,
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

    /// The rule with every hyperparameter at its default.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            OptimizerName::Gd | OptimizerName::Sgd | OptimizerName::MinibatchSgd => {
                Algorithm::Sgd {
                    momentum: 0.0,
                    dampening: 0.0,
                    nesterov: false,
                    classic: false,
                }
            }
            OptimizerName::Momentum | OptimizerName::Nesterov => Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: self == OptimizerName::Nesterov,
                classic: false,
            },
            OptimizerName::Adagrad => Algorithm::Adagrad {
                lr_decay: 0.0,
                initial_accumulator_value: 0.0,
                eps: 1e-10,
            },
            OptimizerName::Adadelta => Algorithm::Adadelta {
                rho: 0.9,
                eps: 1e-6,
            },
            OptimizerName::Rmsprop => Algorithm::Rmsprop {
                alpha: 0.99,
                eps: 1e-8,
                centered: false,
                momentum: 0.0,
            },
            OptimizerName::Adam | OptimizerName::Adamw => Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                amsgrad: false,
            },
        }
    }

    pub fn default_weight_decay(self) -> WeightDecay {
        match self {
            OptimizerName::Adamw => WeightDecay::Decoupled(1e-2),
            _ => WeightDecay::None,
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

/// A fully resolved optimizer: name, base learning rate, rule and weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub name: OptimizerName,
    pub lr: f64,
    pub algorithm: Algorithm,
    pub weight_decay: WeightDecay,
}

impl OptimizerConfig {
    /// Every setting at its default.
    pub fn defaults(name: OptimizerName) -> Self {
        OptimizerConfig {
            name,
            lr: name.default_lr(),
            algorithm: name.default_algorithm(),
            weight_decay: name.default_weight_decay(),
        }
    }

    pub fn build(&self) -> Optimizer {
        Optimizer::new(self.algorithm, self.weight_decay)
    }

    /// The hyperparameters as `name=value` pairs, for listings and logs.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("lr={}", self.lr)];
        match self.algorithm {
            Algorithm::Sgd {
                momentum,
                dampening,
                nesterov,
                classic,
            } => {
                if momentum != 0.0 {
                    parts.push(format!("momentum={momentum}"));
                    parts.push(format!("dampening={dampening}"));
                    if nesterov {
                        parts.push("nesterov".into());
                    }
                    if classic {
                        parts.push("classic".into());
                    }
                }
            }
            Algorithm::Adagrad {
                lr_decay,
                initial_accumulator_value,
                eps,
            } => parts.extend([
                format!("lr_decay={lr_decay}"),
                format!("initial_accumulator_value={initial_accumulator_value}"),
                format!("eps={eps:e}"),
            ]),
            Algorithm::Adadelta { rho, eps } => {
                parts.extend([format!("rho={rho}"), format!("eps={eps:e}")])
            }
            Algorithm::Rmsprop {
                alpha,
                eps,
                centered,
                momentum,
            } => parts.extend([
                format!("alpha={alpha}"),
                format!("eps={eps:e}"),
                format!("centered={centered}"),
                format!("momentum={momentum}"),
            ]),
            Algorithm::Adam {
                beta1,
                beta2,
                eps,
                amsgrad,
            } => parts.extend([
                format!("betas=({beta1}, {beta2})"),
                format!("eps={eps:e}"),
                format!("amsgrad={amsgrad}"),
            ]),
        }
        match self.weight_decay {
            WeightDecay::None => {}
            WeightDecay::L2(wd) => parts.push(format!("weight_decay={wd} (L2)")),
            WeightDecay::Decoupled(wd) => parts.push(format!("weight_decay={wd} (decoupled)")),
        }
        parts.join(", ")
    }
}

/// Hyperparameters given explicitly (on the command line or in a study file); `None` keeps
/// the default. Giving one that the optimizer does not have is an error, not a silent no-op.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
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
    /// Coupled (L2) for every optimizer but `adamw`, whose decay is decoupled.
    pub weight_decay: Option<f64>,
    /// Use decoupled weight decay with any optimizer.
    pub decoupled_weight_decay: Option<bool>,
}

impl OptimizerConfig {
    /// The defaults of `name` with `o` applied.
    pub fn resolve(name: OptimizerName, o: &Overrides) -> Result<Self, String> {
        let mut c = OptimizerConfig::defaults(name);
        let n = name.as_str();
        let reject = |flag: &str, applies: &str| -> Result<Self, String> {
            Err(format!(
                "{flag} does not apply to {n}; it applies to {applies}"
            ))
        };
        if let Some(lr) = o.lr {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(format!("learning rate {lr} must be a positive number"));
            }
            c.lr = lr;
        }
        match &mut c.algorithm {
            Algorithm::Sgd {
                momentum,
                dampening,
                classic,
                ..
            } => {
                let has_momentum =
                    matches!(name, OptimizerName::Momentum | OptimizerName::Nesterov);
                if !has_momentum
                    && (o.momentum.is_some()
                        || o.dampening.is_some()
                        || o.classic_momentum.is_some())
                {
                    return reject(
                        "--momentum/--dampening/--classic-momentum",
                        "momentum and nesterov",
                    );
                }
                if let Some(m) = o.momentum {
                    *momentum = m;
                }
                if let Some(d) = o.dampening {
                    if name == OptimizerName::Nesterov && d != 0.0 {
                        return Err("Nesterov momentum requires zero dampening (as PyTorch)".into());
                    }
                    *dampening = d;
                }
                if let Some(cl) = o.classic_momentum {
                    if name == OptimizerName::Nesterov && cl {
                        return reject("--classic-momentum", "momentum");
                    }
                    *classic = cl;
                }
            }
            Algorithm::Adagrad {
                lr_decay,
                initial_accumulator_value,
                eps,
            } => {
                if let Some(v) = o.lr_decay {
                    *lr_decay = v;
                }
                if let Some(v) = o.initial_accumulator_value {
                    *initial_accumulator_value = v;
                }
                if let Some(v) = o.eps {
                    *eps = v;
                }
            }
            Algorithm::Adadelta { rho, eps } => {
                if let Some(v) = o.rho {
                    *rho = v;
                }
                if let Some(v) = o.eps {
                    *eps = v;
                }
            }
            Algorithm::Rmsprop {
                alpha,
                eps,
                centered,
                momentum,
            } => {
                if let Some(v) = o.alpha {
                    *alpha = v;
                }
                if let Some(v) = o.eps {
                    *eps = v;
                }
                if let Some(v) = o.centered {
                    *centered = v;
                }
                if let Some(v) = o.momentum {
                    *momentum = v;
                }
                if o.dampening.is_some() || o.classic_momentum.is_some() {
                    return reject("--dampening/--classic-momentum", "momentum");
                }
            }
            Algorithm::Adam {
                beta1,
                beta2,
                eps,
                amsgrad,
            } => {
                if let Some(v) = o.beta1 {
                    *beta1 = v;
                }
                if let Some(v) = o.beta2 {
                    *beta2 = v;
                }
                if let Some(v) = o.eps {
                    *eps = v;
                }
                if let Some(v) = o.amsgrad {
                    *amsgrad = v;
                }
            }
        }
        let is = |rule: fn(&Algorithm) -> bool| rule(&c.algorithm);
        let checks: [(bool, &str, &str); 8] = [
            (
                o.lr_decay.is_some() && !is(|a| matches!(a, Algorithm::Adagrad { .. })),
                "--lr-decay",
                "adagrad",
            ),
            (
                o.initial_accumulator_value.is_some()
                    && !is(|a| matches!(a, Algorithm::Adagrad { .. })),
                "--initial-accumulator-value",
                "adagrad",
            ),
            (
                o.rho.is_some() && !is(|a| matches!(a, Algorithm::Adadelta { .. })),
                "--rho",
                "adadelta",
            ),
            (
                o.alpha.is_some() && !is(|a| matches!(a, Algorithm::Rmsprop { .. })),
                "--alpha",
                "rmsprop",
            ),
            (
                o.centered.is_some() && !is(|a| matches!(a, Algorithm::Rmsprop { .. })),
                "--centered",
                "rmsprop",
            ),
            (
                (o.beta1.is_some() || o.beta2.is_some())
                    && !is(|a| matches!(a, Algorithm::Adam { .. })),
                "--beta1/--beta2",
                "adam and adamw",
            ),
            (
                o.amsgrad.is_some() && !is(|a| matches!(a, Algorithm::Adam { .. })),
                "--amsgrad",
                "adam and adamw",
            ),
            (
                o.eps.is_some() && is(|a| matches!(a, Algorithm::Sgd { .. })),
                "--eps",
                "adagrad, adadelta, rmsprop, adam and adamw",
            ),
        ];
        if let Some((_, flag, applies)) = checks.iter().find(|(bad, _, _)| *bad) {
            return reject(flag, applies);
        }
        let decoupled = o
            .decoupled_weight_decay
            .unwrap_or(name == OptimizerName::Adamw);
        if name == OptimizerName::Adamw && !decoupled {
            return Err("adamw's weight decay is decoupled by definition; use adam for L2".into());
        }
        let wd = o.weight_decay.unwrap_or(match c.weight_decay {
            WeightDecay::Decoupled(wd) | WeightDecay::L2(wd) => wd,
            WeightDecay::None => 0.0,
        });
        if wd < 0.0 {
            return Err(format!("weight decay {wd} must not be negative"));
        }
        c.weight_decay = match (wd, decoupled) {
            (0.0, _) => WeightDecay::None,
            (wd, true) => WeightDecay::Decoupled(wd),
            (wd, false) => WeightDecay::L2(wd),
        };
        Ok(c)
    }
}
