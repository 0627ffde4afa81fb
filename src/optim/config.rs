//! The optimizers by name (the study's ten and the 1998 paper's sdlm), and their configuration resolved from the
//! hyperparameters given (declared, with their defaults, in [`super::hyper`]).
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
//! | sdlm | stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998; not in PyTorch) | 1 | lr 5e-4, mu 0.02 |
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

use super::hyper::{HYPERS, HyperKey, HyperKey as H, Hypers};
pub use super::name::{BatchPolicy, OptimizerName};
use super::{Algorithm, Momentum, Optimizer, WeightDecay};

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
        Self::resolve(name, &Hypers::default()).expect("the defaults are valid")
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
                kind,
            } => {
                if momentum != 0.0 {
                    parts.push(format!("momentum={momentum}"));
                    parts.push(format!("dampening={dampening}"));
                    match kind {
                        Momentum::PyTorch => {}
                        Momentum::Nesterov => parts.push("nesterov".into()),
                        Momentum::Classic => parts.push("classic".into()),
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
            Algorithm::Sdlm {
                mu,
                curvature_samples,
                curvature_every,
            } => {
                parts.extend([
                    format!("mu={mu}"),
                    format!("curvature_samples={curvature_samples}"),
                ]);
                if curvature_every > 0 {
                    parts.push(format!("curvature_every={curvature_every}"));
                }
            }
        }
        match self.weight_decay {
            WeightDecay::None => {}
            WeightDecay::L2(wd) => parts.push(format!("weight_decay={wd} (L2)")),
            WeightDecay::Decoupled(wd) => parts.push(format!("weight_decay={wd} (decoupled)")),
        }
        parts.join(", ")
    }
}

impl OptimizerConfig {
    /// The defaults of `name` with the values `given` applied. A hyperparameter the optimizer
    /// does not have, or a value out of its range, is an error ([`HYPERS`] declares both).
    pub fn resolve(name: OptimizerName, given: &Hypers) -> Result<Self, String> {
        for (h, v) in given.iter() {
            h.check(name, v)?;
        }
        let value = |k: HyperKey| {
            given
                .get(k)
                .or_else(|| k.decl().default_for(name))
                .expect("a hyperparameter of this optimizer")
        };
        let decoupled = value(H::DecoupledWeightDecay) != 0.0;
        if name == OptimizerName::Adamw && !decoupled {
            return Err("adamw's weight decay is decoupled by definition; use adam for L2".into());
        }
        let weight_decay = match (value(H::WeightDecay), decoupled) {
            (0.0, _) => WeightDecay::None,
            (wd, true) => WeightDecay::Decoupled(wd),
            (wd, false) => WeightDecay::L2(wd),
        };
        Ok(OptimizerConfig {
            name,
            lr: value(H::Lr),
            algorithm: Self::algorithm(name, &value)?,
            weight_decay,
        })
    }

    /// The rule `name` stands for, with its hyperparameters' values.
    fn algorithm(
        name: OptimizerName,
        value: &dyn Fn(HyperKey) -> f64,
    ) -> Result<Algorithm, String> {
        let flag = |k: HyperKey| value(k) != 0.0;
        let sgd = |momentum, dampening, kind| Algorithm::Sgd {
            momentum,
            dampening,
            kind,
        };
        Ok(match name {
            OptimizerName::Gd | OptimizerName::Sgd | OptimizerName::MinibatchSgd => {
                sgd(0.0, 0.0, Momentum::PyTorch)
            }
            OptimizerName::Momentum => {
                let kind = if flag(H::ClassicMomentum) {
                    Momentum::Classic
                } else {
                    Momentum::PyTorch
                };
                sgd(value(H::Momentum), value(H::Dampening), kind)
            }
            OptimizerName::Nesterov => {
                if value(H::Momentum) == 0.0 {
                    return Err("Nesterov momentum needs a momentum above 0 (as PyTorch)".into());
                }
                sgd(value(H::Momentum), 0.0, Momentum::Nesterov)
            }
            OptimizerName::Adagrad => Algorithm::Adagrad {
                lr_decay: value(H::LrDecay),
                initial_accumulator_value: value(H::InitialAccumulatorValue),
                eps: value(H::Eps),
            },
            OptimizerName::Adadelta => Algorithm::Adadelta {
                rho: value(H::Rho),
                eps: value(H::Eps),
            },
            OptimizerName::Rmsprop => Algorithm::Rmsprop {
                alpha: value(H::Alpha),
                eps: value(H::Eps),
                centered: flag(H::Centered),
                momentum: value(H::Momentum),
            },
            OptimizerName::Adam | OptimizerName::Adamw => Algorithm::Adam {
                beta1: value(H::Beta1),
                beta2: value(H::Beta2),
                eps: value(H::Eps),
                amsgrad: flag(H::Amsgrad),
            },
            OptimizerName::Sdlm => Algorithm::Sdlm {
                mu: value(H::Mu),
                curvature_samples: value(H::CurvatureSamples) as usize,
                curvature_every: value(H::CurvatureEvery) as usize,
            },
        })
    }

    /// The value of hyperparameter `k` in this configuration (flags as 0 or 1), or `None`
    /// when the optimizer does not have it.
    pub fn value(&self, k: HyperKey) -> Option<f64> {
        k.decl().default_for(self.name)?;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let (decay, decoupled) = match self.weight_decay {
            WeightDecay::None => (0.0, self.name == OptimizerName::Adamw),
            WeightDecay::L2(wd) => (wd, false),
            WeightDecay::Decoupled(wd) => (wd, true),
        };
        let v = match (k, self.algorithm) {
            (H::Lr, _) => self.lr,
            (H::WeightDecay, _) => decay,
            (H::DecoupledWeightDecay, _) => flag(decoupled),
            (
                H::Momentum,
                Algorithm::Sgd { momentum, .. } | Algorithm::Rmsprop { momentum, .. },
            ) => momentum,
            (H::Dampening, Algorithm::Sgd { dampening, .. }) => dampening,
            (H::ClassicMomentum, Algorithm::Sgd { kind, .. }) => flag(kind == Momentum::Classic),
            (H::LrDecay, Algorithm::Adagrad { lr_decay, .. }) => lr_decay,
            (
                H::InitialAccumulatorValue,
                Algorithm::Adagrad {
                    initial_accumulator_value,
                    ..
                },
            ) => initial_accumulator_value,
            (H::Rho, Algorithm::Adadelta { rho, .. }) => rho,
            (H::Alpha, Algorithm::Rmsprop { alpha, .. }) => alpha,
            (H::Centered, Algorithm::Rmsprop { centered, .. }) => flag(centered),
            (H::Beta1, Algorithm::Adam { beta1, .. }) => beta1,
            (H::Beta2, Algorithm::Adam { beta2, .. }) => beta2,
            (H::Amsgrad, Algorithm::Adam { amsgrad, .. }) => flag(amsgrad),
            (H::Mu, Algorithm::Sdlm { mu, .. }) => mu,
            (
                H::CurvatureSamples,
                Algorithm::Sdlm {
                    curvature_samples, ..
                },
            ) => curvature_samples as f64,
            (
                H::CurvatureEvery,
                Algorithm::Sdlm {
                    curvature_every, ..
                },
            ) => curvature_every as f64,
            (
                H::Eps,
                Algorithm::Adagrad { eps, .. }
                | Algorithm::Adadelta { eps, .. }
                | Algorithm::Rmsprop { eps, .. }
                | Algorithm::Adam { eps, .. },
            ) => eps,
            _ => return None,
        };
        Some(v)
    }

    /// Checks every hyperparameter against its range (a configuration read back from a
    /// run's `config.json` may have been edited by hand).
    pub fn validate(&self) -> Result<(), String> {
        for h in HYPERS {
            if let Some(v) = self.value(h.key) {
                h.check(self.name, v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::hyper::Range;

    /// A value in `range` other than `default`.
    fn another(range: Range, default: f64) -> f64 {
        match range {
            Range::Flag => 1.0 - default,
            Range::Decay | Range::Fraction if default == 0.5 => 0.25,
            Range::Decay | Range::Fraction => 0.5,
            Range::Positive => default * 2.0,
            Range::NonNegative => default + 0.25,
            Range::Count | Range::CountOrZero => default + 1.0,
        }
    }

    /// For every optimizer and every hyperparameter the table says it takes, a value other
    /// than the default given to `resolve` is the value `value` reads back from the rule it
    /// made: the two functions that map the table to the rules' fields agree, and a
    /// hyperparameter declared in the table but not wired into a rule fails here. (Whether
    /// weight decay is decoupled is read with a weight decay to decouple.)
    #[test]
    fn every_declared_hyperparameter_reaches_its_rule() {
        for name in OptimizerName::ALL {
            for h in HYPERS {
                let Some(default) = h.default_for(name) else {
                    assert_eq!(OptimizerConfig::defaults(name).value(h.key), None);
                    continue;
                };
                assert_eq!(
                    OptimizerConfig::defaults(name).value(h.key),
                    Some(default),
                    "{} of {}",
                    h.name,
                    name.as_str()
                );
                let v = another(h.range, default);
                let mut given = Hypers::default();
                given.set(h.key, v);
                if h.key == H::DecoupledWeightDecay {
                    // Without weight decay there is nothing to decouple: the flag is moot.
                    given.set(H::WeightDecay, 0.01);
                }
                match OptimizerConfig::resolve(name, &given) {
                    Ok(config) => {
                        assert_eq!(
                            config.value(h.key),
                            Some(v),
                            "{} of {}",
                            h.name,
                            name.as_str()
                        );
                        config.validate().unwrap();
                    }
                    // The one value the table allows that a rule refuses by definition.
                    Err(e) => assert!(
                        name == OptimizerName::Adamw && h.key == H::DecoupledWeightDecay,
                        "{} = {v} for {}: {e}",
                        h.name,
                        name.as_str()
                    ),
                }
            }
        }
    }
}
