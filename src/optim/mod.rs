//! Optimizers: one [`Optimizer`] over any set of parameters ([`optimizer`]), the update rule
//! a value ([`Algorithm`]) with one short function per rule ([`rules`]), and per-parameter
//! state as one table of named buffers ([`state`]). The hyperparameters are declared once, in
//! [`hyper`]; [`config`] resolves an optimizer's name and the values given into a rule.
//!
//! Rules, in order of increasing complexity, exactly as PyTorch 2.x computes them
//! (`foreach=False`; g is the gradient after weight decay, t the step counting from 1):
//!
//! | rule | update |
//! |---|---|
//! | SGD | p -= lr g |
//! | momentum (PyTorch) | b = g at t = 1, else b = mu b + (1 - dampening) g; p -= lr b |
//! | momentum (classic) | v = mu v + lr g; p -= v |
//! | Nesterov | b as above; p -= lr (g + mu b) |
//! | AdaGrad | s += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps) |
//! | AdaDelta | v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1 - rho) d^2; p -= lr d |
//! | RMSprop | v = alpha v + (1 - alpha) g^2; [centered: a = alpha a + (1 - alpha) g, v - a^2 in place of v]; r = g / (sqrt(v) + eps); [momentum: b = mu b + r, p -= lr b] else p -= lr r |
//! | Adam | m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; [AMSGrad: vmax = max(vmax, v), used for v]; p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps) |
//! | SDLM (LeCun et al. 1998, appendix C; not in PyTorch) | p -= lr / (mu + h) g, h the parameter's Gauss–Newton second derivative, set before every pass ([`Optimizer::set_curvature`]) |
//!
//! Weight decay is coupled (L2: g += wd p before the rule) or decoupled (p *= 1 - lr wd before
//! the rule, as AdamW). Classic and PyTorch momentum agree while the learning rate is constant
//! (v = lr b); when the rate changes, PyTorch's buffer carries past gradients at the new rate,
//! whereas the classic velocity keeps them at the rate they were taken with.
//!
//! reference: <https://pytorch.org/docs/stable/optim.html> (each class's documented algorithm);
//! LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document recognition",
//! Proc. IEEE 86(11), 1998, appendix C (SDLM).

pub mod config;
pub mod hyper;
pub mod name;
pub mod optimizer;
pub mod rules;
pub mod schedule;
pub mod state;

pub use config::{OptimizerConfig, OptimizerName};
pub use optimizer::{Optimizer, Params};
pub use rules::{Algorithm, Momentum, WeightDecay};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind, ScheduleSettings};
pub use state::ParamState;
