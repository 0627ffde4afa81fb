//! Learning-rate schedules, evaluated once per epoch (as PyTorch's `lr_scheduler`s are usually
//! stepped) and usable with every optimizer.
//!
//! With base rate lr and epoch e counted from 0 after the warm-up:
//! - constant: lr
//! - step: lr * gamma^floor(e / step_size)            (`StepLR`)
//! - exponential: lr * gamma^e                        (`ExponentialLR`)
//! - cosine: eta_min + (lr - eta_min) (1 + cos(pi e / t_max)) / 2   (`CosineAnnealingLR`,
//!   closed form)
//! - lecun1998: lr times 1 for epochs 0-1, 0.4 for 2-4, 0.2 for 5-7, 0.1 for 8-11 and 0.02
//!   after: with lr 5e-4, the rates LeCun et al. (1998, section III-C) trained LeNet-5 with,
//!   5e-4, 2e-4, 1e-4, 5e-5 and 1e-5
//!
//! A linear warm-up of w epochs runs epochs 0..w at lr (e + 1) / (w + 1), then hands over to
//! the schedule, whose epoch count starts at 0 there.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    Constant,
    Step {
        step_size: usize,
        gamma: f64,
    },
    Exponential {
        gamma: f64,
    },
    Cosine {
        t_max: usize,
        eta_min: f64,
    },
    Lecun1998,
}

/// The schedules by name, as `--schedule` takes them; each one's settings and their defaults
/// are in [`Schedule::from_settings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    Constant,
    Step,
    Exponential,
    Cosine,
    /// The 1998 paper's: with lr 5e-4, 5e-4 for 2 epochs, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4,
    /// then 1e-5.
    Lecun1998,
}

/// A schedule's settings as given on the command line; `None` takes the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScheduleSettings {
    pub step_size: Option<usize>,
    pub gamma: Option<f64>,
    pub t_max: Option<usize>,
    pub eta_min: Option<f64>,
}

impl Schedule {
    /// The schedule `kind` with `given` settings and defaults for the rest (step: every 5
    /// epochs, gamma 0.1; exponential: gamma 0.1; cosine: over the `after_warmup` epochs, to
    /// eta_min 0). A setting that `kind` does not have is an error, not ignored.
    pub fn from_settings(
        kind: ScheduleKind,
        given: ScheduleSettings,
        after_warmup: usize,
    ) -> Result<Schedule, String> {
        let set = [
            ("--step-size", given.step_size.is_some(), "step"),
            ("--gamma", given.gamma.is_some(), "step and exponential"),
            ("--t-max", given.t_max.is_some(), "cosine"),
            ("--eta-min", given.eta_min.is_some(), "cosine"),
        ];
        let applies = |flag: &str| match kind {
            ScheduleKind::Constant | ScheduleKind::Lecun1998 => false,
            ScheduleKind::Step => matches!(flag, "--step-size" | "--gamma"),
            ScheduleKind::Exponential => flag == "--gamma",
            ScheduleKind::Cosine => matches!(flag, "--t-max" | "--eta-min"),
        };
        if let Some((flag, _, schedules)) = set.iter().find(|(f, g, _)| *g && !applies(f)) {
            return Err(format!(
                "{flag} does not apply to --schedule {}; it applies to the {schedules} schedules",
                format!("{kind:?}").to_lowercase()
            ));
        }
        Ok(match kind {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Lecun1998 => Schedule::Lecun1998,
            ScheduleKind::Step => Schedule::Step {
                step_size: given.step_size.unwrap_or(5),
                gamma: given.gamma.unwrap_or(0.1),
            },
            ScheduleKind::Exponential => Schedule::Exponential {
                gamma: given.gamma.unwrap_or(0.1),
            },
            ScheduleKind::Cosine => Schedule::Cosine {
                t_max: given.t_max.unwrap_or(after_warmup.max(1)),
                eta_min: given.eta_min.unwrap_or(0.0),
            },
        })
    }
}

/// The lecun1998 schedule: (first epoch, factor of the base rate) from that epoch on.
pub const LECUN1998_STEPS: [(usize, f64); 5] = [(0, 1.0), (2, 0.4), (5, 0.2), (8, 0.1), (12, 0.02)];

/// A schedule with an optional linear warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    pub schedule: Schedule,
    pub warmup_epochs: usize,
}

impl ScheduleConfig {
    /// The learning rate of epoch `epoch` (from 0) for base rate `lr`.
    pub fn lr_at(&self, lr: f64, epoch: usize) -> f64 {
        let w = self.warmup_epochs;
        if epoch < w {
            return lr * (epoch + 1) as f64 / (w + 1) as f64;
        }
        let e = epoch - w;
        match self.schedule {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => lr * gamma.powi((e / step_size.max(1)) as i32),
            Schedule::Exponential { gamma } => lr * gamma.powi(e as i32),
            Schedule::Cosine { t_max, eta_min } => {
                let phase = std::f64::consts::PI * e as f64 / t_max.max(1) as f64;
                eta_min + (lr - eta_min) * (1.0 + phase.cos()) / 2.0
            }
            Schedule::Lecun1998 => {
                let steps = LECUN1998_STEPS.iter().rev();
                lr * steps
                    .filter(|(from, _)| e >= *from)
                    .map(|s| s.1)
                    .next()
                    .unwrap_or(1.0)
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self.schedule {
            Schedule::Step { step_size: 0, .. } => {
                Err("step schedule needs a step size of at least 1 epoch".into())
            }
            Schedule::Cosine { t_max: 0, .. } => {
                Err("cosine schedule needs t_max of at least 1 epoch".into())
            }
            Schedule::Step { gamma, .. } | Schedule::Exponential { gamma }
                if !(gamma.is_finite() && gamma > 0.0) =>
            {
                Err(format!(
                    "schedule gamma = {gamma} is out of range: expected a finite number above 0"
                ))
            }
            Schedule::Cosine { eta_min, .. } if !(eta_min.is_finite() && eta_min >= 0.0) => {
                Err(format!(
                    "eta_min = {eta_min} is out of range: expected a finite number at or above 0"
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        let main = match self.schedule {
            Schedule::Constant => "constant".to_string(),
            Schedule::Step { step_size, gamma } => {
                format!("step(step_size={step_size}, gamma={gamma})")
            }
            Schedule::Exponential { gamma } => format!("exponential(gamma={gamma})"),
            Schedule::Cosine { t_max, eta_min } => {
                format!("cosine(t_max={t_max}, eta_min={eta_min})")
            }
            Schedule::Lecun1998 => {
                let (from, factors): (Vec<String>, Vec<String>) = (LECUN1998_STEPS.iter())
                    .map(|&(e, f)| ((e + 1).to_string(), f.to_string()))
                    .unzip();
                let (from, factors) = (from.join(", "), factors.join(", "));
                format!("lecun1998 (x{factors} from epochs {from})")
            }
        };
        if self.warmup_epochs > 0 {
            format!("linear warm-up {} epochs, then {main}", self.warmup_epochs)
        } else {
            main
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} vs {b}");
    }

    #[test]
    fn closed_forms_at_chosen_epochs() {
        let lr = 0.1;
        let constant = ScheduleConfig::default();
        close(constant.lr_at(lr, 7), 0.1);
        let step = ScheduleConfig {
            schedule: Schedule::Step {
                step_size: 3,
                gamma: 0.5,
            },
            warmup_epochs: 0,
        };
        close(step.lr_at(lr, 2), 0.1);
        close(step.lr_at(lr, 3), 0.05);
        close(step.lr_at(lr, 7), 0.025);
        let exp = ScheduleConfig {
            schedule: Schedule::Exponential { gamma: 0.9 },
            warmup_epochs: 0,
        };
        close(exp.lr_at(lr, 4), 0.1 * 0.9f64.powi(4));
        let cosine = ScheduleConfig {
            schedule: Schedule::Cosine {
                t_max: 10,
                eta_min: 0.001,
            },
            warmup_epochs: 0,
        };
        close(cosine.lr_at(lr, 0), 0.1);
        close(cosine.lr_at(lr, 5), 0.001 + (0.1 - 0.001) / 2.0);
        close(cosine.lr_at(lr, 10), 0.001);
        // The paper's rates, passes 1-20 (epochs 0-19).
        let lecun = ScheduleConfig {
            schedule: Schedule::Lecun1998,
            warmup_epochs: 0,
        };
        let paper = [
            5e-4, 5e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4, 5e-5, 5e-5, 5e-5, 5e-5,
        ];
        for (e, want) in paper.into_iter().chain([1e-5; 8]).enumerate() {
            close(lecun.lr_at(5e-4, e), want);
        }
    }

    #[test]
    fn warmup_ramps_linearly_then_hands_over() {
        let s = ScheduleConfig {
            schedule: Schedule::Step {
                step_size: 2,
                gamma: 0.1,
            },
            warmup_epochs: 3,
        };
        close(s.lr_at(1.0, 0), 0.25);
        close(s.lr_at(1.0, 1), 0.5);
        close(s.lr_at(1.0, 2), 0.75);
        close(s.lr_at(1.0, 3), 1.0); // the schedule's epoch 0
        close(s.lr_at(1.0, 5), 0.1); // the schedule's epoch 2
    }

    #[test]
    fn invalid_schedules_are_rejected() {
        let bad = ScheduleConfig {
            schedule: Schedule::Step {
                step_size: 0,
                gamma: 0.5,
            },
            warmup_epochs: 0,
        };
        assert!(bad.validate().is_err());
        let bad = ScheduleConfig {
            schedule: Schedule::Exponential { gamma: -1.0 },
            warmup_epochs: 0,
        };
        assert!(bad.validate().is_err());
    }
}
