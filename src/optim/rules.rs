//! The update rules, one short function each, simple to complex, exactly as PyTorch 2.x
//! computes them (`foreach=False`), and the values that choose one ([`Algorithm`],
//! [`Momentum`], [`WeightDecay`]).
//!
//! Each rule updates one range of a parameter (its values, their gradients and the state
//! buffers the rule asked for, [`Algorithm::buffers`]) element by element, from what the step
//! gives ([`Step`]). Hyperparameters are float64 and every constant derived from them (1 -
//! beta2, the bias corrections, 1 - lr wd) is computed in float64 before it meets float32
//! data, as PyTorch does with Python floats: 1 - f32(0.999) would be off by 1e-5 relative.

use serde::{Deserialize, Serialize};

use super::state::{BUFFERS, Buf};

/// Which momentum an SGD rule keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "MomentumFlags", try_from = "MomentumFlags")]
pub enum Momentum {
    /// PyTorch's buffer: b = g at the first step, else b = mu b + (1 - dampening) g;
    /// p -= lr b.
    PyTorch,
    /// The classic velocity: v = mu v + lr g; p -= v.
    Classic,
    /// Nesterov's: b as PyTorch's; p -= lr (g + mu b).
    Nesterov,
}

/// The update rule with its hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Algorithm {
    /// Plain SGD with `momentum` 0; with momentum, the kind of momentum.
    Sgd {
        momentum: f64,
        dampening: f64,
        #[serde(flatten)]
        kind: Momentum,
    },
    Adagrad {
        lr_decay: f64,
        initial_accumulator_value: f64,
        eps: f64,
    },
    Adadelta {
        rho: f64,
        eps: f64,
    },
    Rmsprop {
        alpha: f64,
        eps: f64,
        centered: bool,
        momentum: f64,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        amsgrad: bool,
    },
    /// Stochastic diagonal Levenberg–Marquardt (LeCun et al. 1998, appendix C): p -= lr /
    /// (mu + h) g, h the parameter's Gauss–Newton second derivative, which the trainer
    /// estimates before every pass ([`crate::optim::Optimizer::set_curvature`]).
    Sdlm {
        mu: f64,
        /// Samples h is estimated on before every pass (the paper's 500).
        #[serde(default = "crate::optim::rules::paper_curvature_samples")]
        curvature_samples: usize,
        /// Steps between re-estimates within a pass; 0: once per pass (the paper's section
        /// III). Absent from files written before it was a setting.
        #[serde(default)]
        curvature_every: usize,
    },
}

/// The samples LeCun et al. (1998, section III-C) estimate the second derivatives on before
/// every pass: the first 500 of the pass's order.
pub const CURVATURE_SAMPLES: usize = 500;

/// [`CURVATURE_SAMPLES`], for files written before the number was a setting.
pub fn paper_curvature_samples() -> usize {
    CURVATURE_SAMPLES
}

/// How weight decay enters the update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum WeightDecay {
    #[default]
    None,
    /// g += wd p (PyTorch's `weight_decay` for every optimizer but AdamW).
    L2(f64),
    /// p *= 1 - lr wd before the step (AdamW, Loshchilov & Hutter 2019).
    Decoupled(f64),
}

/// What one step gives every rule besides the parameter.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub lr: f64,
    /// Steps so far, this one included (PyTorch's `state['step']`).
    pub t: u64,
    /// Whether the parameter's momentum buffer is new (SGD's first momentum step copies the
    /// gradient).
    pub first: bool,
    pub weight_decay: WeightDecay,
    /// Whether to set the gradient to zero on the way, where the rule can.
    pub zero_grad: bool,
}

/// A range's state buffers, in the table order of [`Buf::ALL`] (`None` where the rule keeps
/// none).
pub type State<'a> = [Option<&'a mut [f32]>; BUFFERS];

/// Buffer `b` of a range's state, which the rule asked for.
fn take<'a>(state: &mut State<'a>, b: Buf) -> &'a mut [f32] {
    state[b as usize]
        .take()
        .expect("state prepared for the rule")
}

impl Algorithm {
    /// The state buffers the rule keeps, with PyTorch's initial values.
    pub fn buffers(&self) -> Vec<(Buf, f32)> {
        match *self {
            Algorithm::Sgd { momentum, .. } if momentum != 0.0 => vec![(Buf::MomentumBuffer, 0.0)],
            Algorithm::Sgd { .. } => vec![],
            Algorithm::Adagrad {
                initial_accumulator_value,
                ..
            } => vec![(Buf::Sum, initial_accumulator_value as f32)],
            Algorithm::Adadelta { .. } => vec![(Buf::SquareAvg, 0.0), (Buf::AccDelta, 0.0)],
            Algorithm::Rmsprop {
                centered, momentum, ..
            } => {
                let mut b = vec![(Buf::SquareAvg, 0.0)];
                b.extend(centered.then_some((Buf::GradAvg, 0.0)));
                b.extend((momentum > 0.0).then_some((Buf::MomentumBuffer, 0.0)));
                b
            }
            Algorithm::Adam { amsgrad, .. } => {
                let mut b = vec![(Buf::ExpAvg, 0.0), (Buf::ExpAvgSq, 0.0)];
                b.extend(amsgrad.then_some((Buf::MaxExpAvgSq, 0.0)));
                b
            }
            Algorithm::Sdlm { .. } => vec![(Buf::HessianDiagonal, 0.0)],
        }
    }

    /// Whether the rule needs every parameter's second derivative, estimated before each
    /// pass ([`crate::optim::Optimizer::set_curvature`]).
    pub fn needs_curvature(&self) -> bool {
        self.curvature_samples().is_some()
    }

    /// How many samples the second derivatives are estimated on before each pass, for a rule
    /// that needs them.
    pub fn curvature_samples(&self) -> Option<usize> {
        match *self {
            Algorithm::Sdlm {
                curvature_samples, ..
            } => Some(curvature_samples),
            _ => None,
        }
    }

    /// Steps between re-estimates of the second derivatives within a pass (none when 0).
    pub fn curvature_every(&self) -> usize {
        match *self {
            Algorithm::Sdlm {
                curvature_every, ..
            } => curvature_every,
            _ => 0,
        }
    }
}

/// One range's update by `alg`: its values, their gradients and its state buffers. Returns
/// whether it also set the gradient to zero (asked by `step.zero_grad`, done on the way by the
/// rules that can, else left to the caller). The values and gradients are separate arguments
/// all the way down, never fields of a struct, so that the compiler knows they do not alias
/// and vectorises the loops.
#[inline(always)]
pub fn apply(
    alg: Algorithm,
    step: &Step,
    value: &mut [f32],
    grad: &mut [f32],
    mut state: State,
) -> bool {
    if let WeightDecay::Decoupled(wd) = step.weight_decay {
        let factor = (1.0 - step.lr * wd) as f32;
        value.iter_mut().for_each(|v| *v *= factor);
    }
    let l2 = match step.weight_decay {
        WeightDecay::L2(wd) => wd as f32,
        _ => 0.0,
    };
    match alg {
        // A momentum that is 0 in float32 is plain SGD, whose buffer stays untouched.
        Algorithm::Sgd { momentum, .. } if momentum as f32 == 0.0 && l2 == 0.0 => {
            return sgd(step, value, grad);
        }
        Algorithm::Sgd { momentum, .. } if momentum as f32 == 0.0 => sgd_l2(step, value, grad, l2),
        Algorithm::Sgd {
            momentum,
            dampening,
            kind,
        } => {
            let buf = take(&mut state, Buf::MomentumBuffer);
            sgd_momentum(step, (value, grad), l2, buf, (momentum, dampening, kind));
        }
        Algorithm::Adagrad { lr_decay, eps, .. } => {
            let sum = take(&mut state, Buf::Sum);
            adagrad(step, (value, grad), l2, sum, (lr_decay, eps));
        }
        Algorithm::Adadelta { rho, eps } => {
            let buffers = (
                take(&mut state, Buf::SquareAvg),
                take(&mut state, Buf::AccDelta),
            );
            adadelta(step, (value, grad), l2, buffers, (rho, eps));
        }
        Algorithm::Rmsprop {
            alpha,
            eps,
            centered,
            momentum,
        } => {
            let square_avg = take(&mut state, Buf::SquareAvg);
            let grad_avg = centered.then(|| take(&mut state, Buf::GradAvg));
            let momentum_buffer =
                (momentum as f32 > 0.0).then(|| take(&mut state, Buf::MomentumBuffer));
            let buffers = (square_avg, grad_avg, momentum_buffer);
            rmsprop(step, (value, grad), l2, buffers, (alpha, eps, momentum));
        }
        Algorithm::Adam {
            beta1,
            beta2,
            eps,
            amsgrad,
        } => {
            let moments = (
                take(&mut state, Buf::ExpAvg),
                take(&mut state, Buf::ExpAvgSq),
            );
            let max_exp_avg_sq = amsgrad.then(|| take(&mut state, Buf::MaxExpAvgSq));
            adam(
                step,
                (value, grad),
                l2,
                (moments.0, moments.1, max_exp_avg_sq),
                (beta1, beta2, eps),
            );
        }
        Algorithm::Sdlm { mu, .. } => {
            let h = take(&mut state, Buf::HessianDiagonal);
            sdlm(step, (value, grad), l2, h, mu);
        }
    }
    false
}

/// A range's values and their gradients (which the rules only read).
type Range<'a> = (&'a mut [f32], &'a [f32]);

/// The gradient with coupled weight decay, g + l2 p: one function so every rule sees the same
/// arithmetic.
#[inline(always)]
fn coupled(grad: &[f32], l2: f32) -> impl Fn(usize, &[f32]) -> f32 + '_ {
    move |i, value| {
        if l2 != 0.0 {
            grad[i] + l2 * value[i]
        } else {
            grad[i]
        }
    }
}

/// Whether all 16 values are +0.0 (bits all zero; -0.0 is not skipped, since v - lr * -0 can
/// change the sign of a zero v).
#[inline(always)]
pub fn is_zero(values: &[f32; 16]) -> bool {
    values.map(f32::to_bits) == [0; 16]
}

/// SGD: p -= lr g. A zero gradient leaves its value as it is (v - lr * +0 = v, -0 included),
/// so runs of 16 zeros, common when one sample's ReLUs silence whole rows of a weight
/// gradient, are skipped without touching their values; a run that is not zero is cleared
/// right after its use, so the gradient is read once. Returns `step.zero_grad`.
#[inline(always)]
fn sgd(step: &Step, value: &mut [f32], grad: &mut [f32]) -> bool {
    let lr = step.lr as f32;
    let (mut vs, mut gs) = (value.chunks_exact_mut(16), grad.chunks_exact_mut(16));
    for (v, g) in (&mut vs).zip(&mut gs) {
        let (v, g): (&mut [f32; 16], &mut [f32; 16]) =
            (v.try_into().expect("16"), g.try_into().expect("16"));
        if !is_zero(g) {
            v.iter_mut().zip(g.iter()).for_each(|(v, &g)| *v -= lr * g);
            if step.zero_grad {
                *g = [0.0; 16];
            }
        }
    }
    let (v, g) = (vs.into_remainder(), gs.into_remainder());
    v.iter_mut().zip(g.iter()).for_each(|(v, &g)| *v -= lr * g);
    if step.zero_grad {
        g.fill(0.0);
    }
    step.zero_grad
}

/// SGD with coupled weight decay: p -= lr (g + l2 p).
#[inline(always)]
fn sgd_l2(step: &Step, value: &mut [f32], grad: &[f32], l2: f32) {
    let (lr, g) = (step.lr as f32, coupled(grad, l2));
    for i in 0..value.len() {
        value[i] -= lr * g(i, value);
    }
}

/// SGD with momentum, of the three kinds of [`Momentum`].
#[inline(always)]
fn sgd_momentum(
    step: &Step,
    (value, grad): Range,
    l2: f32,
    buf: &mut [f32],
    h: (f64, f64, Momentum),
) {
    let (lr, g) = (step.lr as f32, coupled(grad, l2));
    let (momentum, keep, kind) = (h.0 as f32, (1.0 - h.1) as f32, h.2);
    for i in 0..value.len() {
        let gi = g(i, value);
        if kind == Momentum::Classic {
            buf[i] = if step.first {
                lr * gi
            } else {
                momentum * buf[i] + lr * gi
            };
            value[i] -= buf[i];
        } else {
            buf[i] = if step.first {
                gi
            } else {
                momentum * buf[i] + keep * gi
            };
            let d = if kind == Momentum::Nesterov {
                gi + momentum * buf[i]
            } else {
                buf[i]
            };
            value[i] -= lr * d;
        }
    }
}

/// AdaGrad: s += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps).
#[inline(always)]
fn adagrad(
    step: &Step,
    (value, grad): Range,
    l2: f32,
    sum: &mut [f32],
    (lr_decay, eps): (f64, f64),
) {
    let clr = (step.lr / (1.0 + (step.t - 1) as f64 * lr_decay)) as f32;
    let (eps, g, value) = (eps as f32, coupled(grad, l2), value);
    for i in 0..value.len() {
        let gi = g(i, value);
        sum[i] += gi * gi;
        value[i] -= clr * gi / (sum[i].sqrt() + eps);
    }
}

/// AdaDelta: v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
/// u = rho u + (1 - rho) d^2; p -= lr d.
#[inline(always)]
fn adadelta(
    step: &Step,
    (value, grad): Range,
    l2: f32,
    buffers: (&mut [f32], &mut [f32]),
    h: (f64, f64),
) {
    let (one_minus_rho, rho, eps) = ((1.0 - h.0) as f32, h.0 as f32, h.1 as f32);
    let (lr, g, value) = (step.lr as f32, coupled(grad, l2), value);
    let (sq, acc) = buffers;
    for i in 0..value.len() {
        let gi = g(i, value);
        sq[i] = rho * sq[i] + one_minus_rho * gi * gi;
        let delta = (acc[i] + eps).sqrt() / (sq[i] + eps).sqrt() * gi;
        acc[i] = rho * acc[i] + one_minus_rho * delta * delta;
        value[i] -= lr * delta;
    }
}

/// The buffers of RMSprop: the square average, and the gradient average (centered) and the
/// momentum buffer where the rule keeps them.
type RmspropBuffers<'a> = (&'a mut [f32], Option<&'a mut [f32]>, Option<&'a mut [f32]>);

/// RMSprop: v = alpha v + (1 - alpha) g^2 [centered: a = alpha a + (1 - alpha) g, v - a^2 in
/// place of v]; r = g / (sqrt(v) + eps); [momentum: b = mu b + r, p -= lr b] else p -= lr r.
#[inline(always)]
fn rmsprop(
    step: &Step,
    (value, grad): Range,
    l2: f32,
    buffers: RmspropBuffers,
    h: (f64, f64, f64),
) {
    let (one_minus_alpha, alpha) = ((1.0 - h.0) as f32, h.0 as f32);
    let (eps, momentum) = (h.1 as f32, h.2 as f32);
    let (lr, g, value) = (step.lr as f32, coupled(grad, l2), value);
    let (sq, mut grad_avg, mut momentum_buffer) = buffers;
    for i in 0..value.len() {
        let gi = g(i, value);
        sq[i] = alpha * sq[i] + one_minus_alpha * gi * gi;
        let var = match grad_avg.as_deref_mut() {
            Some(ga) => {
                ga[i] += (gi - ga[i]) * one_minus_alpha; // lerp, as PyTorch
                sq[i] - ga[i] * ga[i]
            }
            None => sq[i],
        };
        let r = gi / (var.sqrt() + eps);
        match momentum_buffer.as_deref_mut() {
            Some(b) => {
                b[i] = momentum * b[i] + r;
                value[i] -= lr * b[i];
            }
            None => value[i] -= lr * r,
        }
    }
}

/// Stochastic diagonal Levenberg–Marquardt: p -= lr / (mu + h) g, each parameter's step its
/// own, from its second derivative h (a parameter with none yet, h = 0, steps at lr / mu).
#[inline(always)]
fn sdlm(step: &Step, (value, grad): Range, l2: f32, h: &[f32], mu: f64) {
    let (lr, mu) = (step.lr as f32, mu as f32);
    if l2 == 0.0 {
        // Slices zipped rather than indexed, so the loop vectorises.
        for ((v, &gi), &h) in value.iter_mut().zip(grad.iter()).zip(h) {
            *v -= lr / (mu + h) * gi;
        }
        return;
    }
    let g = coupled(grad, l2);
    for i in 0..value.len() {
        let gi = g(i, value);
        value[i] -= lr / (mu + h[i]) * gi;
    }
}

/// The buffers of Adam: the two moments, and their running maximum (AMSGrad).
type AdamBuffers<'a> = (&'a mut [f32], &'a mut [f32], Option<&'a mut [f32]>);

/// Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 [AMSGrad: vmax = max(vmax, v), used
/// for v]; p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#[inline(always)]
fn adam(step: &Step, (value, grad): Range, l2: f32, buffers: AdamBuffers, h: (f64, f64, f64)) {
    let (beta1, beta2, eps) = h;
    let bias_correction1 = 1.0 - beta1.powi(step.t as i32);
    let bias_correction2 = 1.0 - beta2.powi(step.t as i32);
    let step_size = (step.lr / bias_correction1) as f32;
    let bc2_sqrt = bias_correction2.sqrt() as f32;
    let (one_minus_beta1, one_minus_beta2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
    let (beta2, eps) = (beta2 as f32, eps as f32);
    let (m, v, vmax) = buffers;
    let moments = |gi: f32, m: &mut f32, v: &mut f32| {
        *m += (gi - *m) * one_minus_beta1; // lerp, as PyTorch
        *v = beta2 * *v + one_minus_beta2 * gi * gi;
    };
    let update = |p: &mut f32, m: f32, v: f32| *p -= step_size * m / (v.sqrt() / bc2_sqrt + eps);
    let g = coupled(grad, l2);
    // Slices zipped rather than indexed, so the loops vectorise.
    if let Some(vmax) = vmax {
        let state = m.iter_mut().zip(v.iter_mut()).zip(vmax.iter_mut());
        for (i, ((m, v), vm)) in state.enumerate() {
            moments(g(i, value), m, v);
            *vm = vm.max(*v);
            update(&mut value[i], *m, *vm);
        }
    } else if l2 == 0.0 {
        let all = value
            .iter_mut()
            .zip(grad.iter())
            .zip(m.iter_mut())
            .zip(v.iter_mut());
        for (((p, &gi), m), v) in all {
            moments(gi, m, v);
            update(p, *m, *v);
        }
    } else {
        for (i, (m, v)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
            moments(g(i, value), m, v);
            update(&mut value[i], *m, *v);
        }
    }
}

/// How a [`Momentum`] is written in files (a run's `config.json`, whose bytes name the run):
/// as the two flags it was before it was a value, so that every run keeps its name.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct MomentumFlags {
    nesterov: bool,
    /// v = mu v + lr g; p -= v, instead of PyTorch's buffer.
    classic: bool,
}

impl From<Momentum> for MomentumFlags {
    fn from(kind: Momentum) -> Self {
        MomentumFlags {
            nesterov: kind == Momentum::Nesterov,
            classic: kind == Momentum::Classic,
        }
    }
}

impl TryFrom<MomentumFlags> for Momentum {
    type Error = String;

    fn try_from(flags: MomentumFlags) -> Result<Self, String> {
        match (flags.nesterov, flags.classic) {
            (false, false) => Ok(Momentum::PyTorch),
            (true, false) => Ok(Momentum::Nesterov),
            (false, true) => Ok(Momentum::Classic),
            (true, true) => Err("momentum is nesterov or classic, not both".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SGD's momentum is a value in the code and two flags in `config.json`, as the files
    /// written before it was a value have it (their bytes name the runs); a file that sets
    /// both flags is refused.
    #[test]
    fn momentum_is_written_as_the_two_flags_runs_are_named_by() {
        for (kind, flags) in [
            (Momentum::PyTorch, (false, false)),
            (Momentum::Nesterov, (true, false)),
            (Momentum::Classic, (false, true)),
        ] {
            let alg = Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                kind,
            };
            let json = serde_json::to_string(&alg).unwrap();
            let want = format!(
                r#"{{"rule":"sgd","momentum":0.9,"dampening":0.0,"nesterov":{},"classic":{}}}"#,
                flags.0, flags.1
            );
            assert_eq!(json, want);
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
        let both =
            r#"{"rule":"sgd","momentum":0.9,"dampening":0.0,"nesterov":true,"classic":true}"#;
        let err = serde_json::from_str::<Algorithm>(both)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nesterov or classic, not both"), "{err}");
    }
}
