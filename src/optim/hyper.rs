//! Every optimizer hyperparameter, declared once: its name, whether it is a number or a flag,
//! the values it may take, which optimizers have it, its default for each of them and its
//! help text. The command line (`lenet train --NAME`), study files (`options`, `[defaults]`
//! and `grid`), the checks before training, `lenet optimizers` and the resolved
//! [`super::OptimizerConfig`] all read this table, so a hyperparameter cannot be accepted in
//! one place and ignored in another.

use std::collections::BTreeMap;

use super::name::OptimizerName;
use super::rules::CURVATURE_SAMPLES;
use OptimizerName::*;

/// The values a hyperparameter may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// A finite number above zero.
    Positive,
    /// A finite number at or above zero.
    NonNegative,
    /// A number in [0, 1): a decay factor (betas, rho, alpha).
    Decay,
    /// A number in [0, 1] (momentum, dampening).
    Fraction,
    /// `true` or `false`.
    Flag,
    /// A whole number from 1 to 1,000,000.
    Count,
    /// A whole number from 0 (never) to 1,000,000.
    CountOrZero,
}

impl Range {
    pub fn contains(self, v: f64) -> bool {
        match self {
            Range::Positive => v.is_finite() && v > 0.0,
            Range::NonNegative => v.is_finite() && v >= 0.0,
            Range::Decay => (0.0..1.0).contains(&v),
            Range::Fraction => (0.0..=1.0).contains(&v),
            Range::Flag => v == 0.0 || v == 1.0,
            Range::Count => (1.0..=1e6).contains(&v) && v.fract() == 0.0,
            Range::CountOrZero => (0.0..=1e6).contains(&v) && v.fract() == 0.0,
        }
    }

    /// What the range accepts, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Range::Positive => "a finite number above 0",
            Range::NonNegative => "a finite number at or above 0",
            Range::Decay => "a number in [0, 1)",
            Range::Fraction => "a number in [0, 1]",
            Range::Flag => "true or false",
            Range::Count => "a whole number from 1 to 1000000",
            Range::CountOrZero => "a whole number from 0 to 1000000",
        }
    }
}

/// A hyperparameter, by name: the key of its declaration in [`HYPERS`], so that code names it
/// by a value the compiler checks rather than by a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HyperKey {
    Lr,
    Mu,
    CurvatureSamples,
    CurvatureEvery,
    Momentum,
    Dampening,
    ClassicMomentum,
    LrDecay,
    InitialAccumulatorValue,
    Rho,
    Alpha,
    Centered,
    Beta1,
    Beta2,
    Eps,
    Amsgrad,
    WeightDecay,
    DecoupledWeightDecay,
}

impl HyperKey {
    /// Its declaration.
    pub fn decl(self) -> &'static Hyper {
        HYPERS
            .iter()
            .find(|h| h.key == self)
            .expect("every key is declared")
    }
}

/// One hyperparameter.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    pub key: HyperKey,
    /// Its name in study files and `config.json`; the command line's flag is this name with
    /// dashes (`--lr-decay`).
    pub name: &'static str,
    pub range: Range,
    /// The optimizers that have it, each group with its default (flags: 0 is false).
    pub defaults: &'static [(&'static [OptimizerName], f64)],
    pub help: &'static str,
}

const ALL: &[OptimizerName] = &OptimizerName::ALL;
const ALL_BUT_ADAMW: &[OptimizerName] = &all_but(Adamw);

/// Every optimizer but `except`, in [`OptimizerName::ALL`]'s order.
const fn all_but(except: OptimizerName) -> [OptimizerName; OptimizerName::ALL.len() - 1] {
    let mut out = [Gd; OptimizerName::ALL.len() - 1];
    let (mut i, mut j) = (0, 0);
    while i < OptimizerName::ALL.len() {
        if OptimizerName::ALL[i] as u8 != except as u8 {
            out[j] = OptimizerName::ALL[i];
            j += 1;
        }
        i += 1;
    }
    out
}

/// Every hyperparameter, in the order the help lists them.
pub const HYPERS: &[Hyper] = &[
    Hyper {
        key: HyperKey::Lr,
        name: "lr",
        range: Range::Positive,
        defaults: &[
            (
                &[Gd, Sgd, MinibatchSgd, Momentum, Nesterov, Adam, Adamw],
                1e-3,
            ),
            (&[Adagrad, Rmsprop], 1e-2),
            (&[Adadelta], 1.0),
            (&[Sdlm], 5e-4),
        ],
        help: "Learning rate (sdlm: the global rate eta, 5e-4 the paper's first passes)",
    },
    Hyper {
        key: HyperKey::Mu,
        name: "mu",
        range: Range::Positive,
        defaults: &[(&[Sdlm], 0.02)],
        help: "Added to each second derivative, bounding the step where the curvature is \
               small: rate lr / (mu + h) (the paper's 0.02)",
    },
    Hyper {
        key: HyperKey::CurvatureSamples,
        name: "curvature_samples",
        range: Range::Count,
        defaults: &[(&[Sdlm], CURVATURE_SAMPLES as f64)],
        help: "Samples the second derivatives are estimated on before every pass, the first of \
               the pass's order (the paper's 500)",
    },
    Hyper {
        key: HyperKey::CurvatureEvery,
        name: "curvature_every",
        range: Range::CountOrZero,
        defaults: &[(&[Sdlm], 0.0)],
        help: "Also re-estimate the second derivatives every this many steps, on the samples \
               about to be trained on, tracking the curvature within a pass as the running \
               average of the paper's appendix C does (0: once per pass, its section III)",
    },
    Hyper {
        key: HyperKey::Momentum,
        name: "momentum",
        range: Range::Fraction,
        defaults: &[(&[Momentum, Nesterov], 0.9), (&[Rmsprop], 0.0)],
        help: "Momentum factor (PyTorch's default is 0, lenet's 0.9 for momentum and nesterov)",
    },
    Hyper {
        key: HyperKey::Dampening,
        name: "dampening",
        range: Range::Fraction,
        defaults: &[(&[Momentum], 0.0)],
        help: "Dampening of the momentum buffer (Nesterov momentum needs none)",
    },
    Hyper {
        key: HyperKey::ClassicMomentum,
        name: "classic_momentum",
        range: Range::Flag,
        defaults: &[(&[Momentum], 0.0)],
        help: "Classic momentum v = mu v + lr g, p -= v, instead of PyTorch's",
    },
    Hyper {
        key: HyperKey::LrDecay,
        name: "lr_decay",
        range: Range::NonNegative,
        defaults: &[(&[Adagrad], 0.0)],
        help: "Learning-rate decay per step",
    },
    Hyper {
        key: HyperKey::InitialAccumulatorValue,
        name: "initial_accumulator_value",
        range: Range::NonNegative,
        defaults: &[(&[Adagrad], 0.0)],
        help: "Starting value of the squared-gradient sum (Keras uses 0.1)",
    },
    Hyper {
        key: HyperKey::Rho,
        name: "rho",
        range: Range::Decay,
        defaults: &[(&[Adadelta], 0.9)],
        help: "Decay of the running averages",
    },
    Hyper {
        key: HyperKey::Alpha,
        name: "alpha",
        range: Range::Decay,
        defaults: &[(&[Rmsprop], 0.99)],
        help: "Smoothing constant of the squared-gradient average",
    },
    Hyper {
        key: HyperKey::Centered,
        name: "centered",
        range: Range::Flag,
        defaults: &[(&[Rmsprop], 0.0)],
        help: "Normalise by the centred second moment",
    },
    Hyper {
        key: HyperKey::Beta1,
        name: "beta1",
        range: Range::Decay,
        defaults: &[(&[Adam, Adamw], 0.9)],
        help: "First-moment decay",
    },
    Hyper {
        key: HyperKey::Beta2,
        name: "beta2",
        range: Range::Decay,
        defaults: &[(&[Adam, Adamw], 0.999)],
        help: "Second-moment decay",
    },
    Hyper {
        key: HyperKey::Eps,
        name: "eps",
        range: Range::Positive,
        defaults: &[
            (&[Adagrad], 1e-10),
            (&[Adadelta], 1e-6),
            (&[Rmsprop, Adam, Adamw], 1e-8),
        ],
        help: "Added to the denominator for numerical stability",
    },
    Hyper {
        key: HyperKey::Amsgrad,
        name: "amsgrad",
        range: Range::Flag,
        defaults: &[(&[Adam, Adamw], 0.0)],
        help: "AMSGrad: divide by the largest second moment so far",
    },
    Hyper {
        key: HyperKey::WeightDecay,
        name: "weight_decay",
        range: Range::NonNegative,
        defaults: &[(ALL_BUT_ADAMW, 0.0), (&[Adamw], 1e-2)],
        help: "Weight decay: L2 (added to the gradient), decoupled for adamw",
    },
    Hyper {
        key: HyperKey::DecoupledWeightDecay,
        name: "decoupled_weight_decay",
        range: Range::Flag,
        // adamw's decoupled weight decay is its definition.
        defaults: &[(ALL_BUT_ADAMW, 0.0), (&[Adamw], 1.0)],
        help: "Decoupled weight decay (p *= 1 - lr wd) with any optimizer (adamw's always is)",
    },
];

impl Hyper {
    /// The declaration of `name`, if there is one.
    pub fn find(name: &str) -> Option<&'static Hyper> {
        HYPERS.iter().find(|h| h.name == name)
    }

    /// The declaration of `name`, or an error listing every name.
    pub fn lookup(name: &str) -> Result<&'static Hyper, String> {
        Self::find(name).ok_or_else(|| {
            format!(
                "'{name}' is not a hyperparameter; expected one of {}",
                HYPERS.iter().map(|h| h.name).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The command-line flag: `--lr-decay`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    pub fn is_flag(&self) -> bool {
        self.range == Range::Flag
    }

    /// Its default for `optimizer`, or `None` when the optimizer does not have it.
    pub fn default_for(&self, optimizer: OptimizerName) -> Option<f64> {
        self.defaults
            .iter()
            .find(|(names, _)| names.contains(&optimizer))
            .map(|&(_, v)| v)
    }

    /// The optimizers that have it, as words: "adam and adamw".
    pub fn takers(&self) -> String {
        let names: Vec<&str> = self
            .defaults
            .iter()
            .flat_map(|(names, _)| names.iter())
            .map(|n| n.as_str())
            .collect();
        if names.len() == ALL.len() {
            return "every optimizer".into();
        }
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// Checks that `optimizer` has this hyperparameter and that `value` is in its range.
    pub fn check(&self, optimizer: OptimizerName, value: f64) -> Result<(), String> {
        if self.default_for(optimizer).is_none() {
            return Err(format!(
                "{} does not apply to {}; it applies to {}",
                self.name,
                optimizer.as_str(),
                self.takers()
            ));
        }
        if !self.range.contains(value) {
            return Err(format!(
                "{} = {value} is out of range: expected {}",
                self.name,
                self.range.describe()
            ));
        }
        Ok(())
    }

    /// The help text of its flag: what it is, who has it, the defaults and the range.
    pub fn long_help(&self) -> String {
        let defaults: Vec<String> = self
            .defaults
            .iter()
            .map(|(names, v)| {
                let who = if names.len() == ALL.len() {
                    "all".to_string()
                } else {
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("{who} {}", self.show(*v))
            })
            .collect();
        let range = if self.is_flag() {
            String::new()
        } else {
            format!(" [range: {}]", self.range.describe())
        };
        format!(
            "{}; for {} [default: {}]{range}",
            self.help,
            self.takers(),
            defaults.join("; ")
        )
    }

    /// A value as the user would write it.
    pub fn show(&self, v: f64) -> String {
        if self.is_flag() {
            (v != 0.0).to_string()
        } else if v != 0.0 && v.abs() < 1e-3 {
            format!("{v:e}")
        } else {
            v.to_string()
        }
    }
}

/// Hyperparameter values given explicitly (on the command line or in a study file); what is
/// not given takes the optimizer's default. A flag's value is 1 (true) or 0 (false), read
/// with [`Hypers::flag`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hypers(BTreeMap<HyperKey, f64>);

impl Hypers {
    /// Sets `key` to `value` (its range and whether the optimizer has it are checked when the
    /// options are resolved).
    pub fn set(&mut self, key: HyperKey, value: f64) {
        self.0.insert(key, value);
    }

    pub fn get(&self, key: HyperKey) -> Option<f64> {
        self.0.get(&key).copied()
    }

    /// Every value given, with its declaration.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Hyper, f64)> + '_ {
        self.0.iter().map(|(&k, &v)| (k.decl(), v))
    }

    /// These values with every one that `over` gives replaced by its value.
    pub fn overridden_by(&self, over: &Hypers) -> Hypers {
        let mut merged = self.clone();
        merged.0.extend(over.0.iter());
        merged
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hyperparameter_is_declared_once_with_defaults_in_range() {
        let mut names: Vec<&str> = HYPERS.iter().map(|h| h.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HYPERS.len());
        for h in HYPERS {
            assert_eq!(h.key.decl().name, h.name, "{:?} is declared once", h.key);
            for (optimizers, v) in h.defaults {
                assert!(h.range.contains(*v), "{}: default {v}", h.name);
                assert!(!optimizers.is_empty());
            }
        }
        // Every optimizer has a learning rate and a weight decay.
        for name in OptimizerName::ALL {
            assert!(Hyper::lookup("lr").unwrap().default_for(name).is_some());
            assert!(
                Hyper::lookup("weight_decay")
                    .unwrap()
                    .default_for(name)
                    .is_some()
            );
        }
    }

    #[test]
    fn checks_say_who_takes_it_and_what_is_expected() {
        let momentum = Hyper::lookup("momentum").unwrap();
        let err = momentum.check(Adam, 0.5).unwrap_err();
        assert_eq!(
            err,
            "momentum does not apply to adam; it applies to momentum, nesterov and rmsprop"
        );
        let beta2 = Hyper::lookup("beta2").unwrap();
        assert!(beta2.check(Adam, 2.0).unwrap_err().contains("[0, 1)"));
        assert!(beta2.check(Adam, f64::NAN).is_err());
        let eps = Hyper::lookup("eps").unwrap();
        for bad in [0.0, -1.0, f64::INFINITY] {
            assert!(eps.check(Adam, bad).is_err(), "{bad}");
        }
        assert!(
            Hyper::lookup("weight_decay")
                .unwrap()
                .check(Sgd, f64::NAN)
                .is_err()
        );
        assert!(Hyper::lookup("mom").unwrap_err().contains("momentum"));
        assert_eq!(Hyper::lookup("lr_decay").unwrap().flag(), "--lr-decay");
    }
}
