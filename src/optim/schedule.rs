//! Learning-rate schedules, evaluated once per epoch (as PyTorch's `lr_scheduler`s are usually
//! stepped) and usable with every optimizer.
//!
//! With base rate lr and epoch e counted from 0 after the warm-up:
//! - constant: lr
//! - step: lr * gamma^floor(e / step_size)            (`StepLR`)
//! - exponential: lr * gamma^e                        (`ExponentialLR`)
//! - cosine: eta_min + (lr - eta_min) (1 + cos(pi e / t_max)) / 2   (`CosineAnnealingLR`,
//!   closed form)
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
}

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
        let value = match self.schedule {
            Schedule::Constant => lr,
            Schedule::Step { step_size, gamma } => lr * gamma.powi((e / step_size.max(1)) as i32),
            Schedule::Exponential { gamma } => lr * gamma.powi(e as i32),
            Schedule::Cosine { t_max, eta_min } => {
                let phase = std::f64::consts::PI * e as f64 / t_max.max(1) as f64;
                eta_min + (lr - eta_min) * (1.0 + phase.cos()) / 2.0
            }
        };
        value
    }

    pub fn validate(&self) -> Result<(), String> {
        match self.schedule {
            Schedule::Step { step_size: 0, .. } => {
                Err("step schedule needs a step size of at least 1 epoch".into())
            }
            Schedule::Cosine { t_max: 0, .. } => {
                Err("cosine schedule needs t_max of at least 1 epoch".into())
            }
            Schedule::Step { gamma, .. } | Schedule::Exponential { gamma } if !(gamma > 0.0) => {
                Err(format!("schedule gamma {gamma} must be positive"))
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
        };
        if self.warmup_epochs > 0 {
            format!("linear warm-up {} epochs, then {main}", self.warmup_epochs)
        } else {
            main
        }
    }
}
