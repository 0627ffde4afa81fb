//! Optimizers: one [`Optimizer`] over any set of parameters, the update rule a value
//! ([`Algorithm`]), per-parameter state owned by the optimizer.
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
//!
//! Weight decay is coupled (L2: g += wd p before the rule) or decoupled (p *= 1 - lr wd before
//! the rule, as AdamW). Classic and PyTorch momentum agree while the learning rate is constant
//! (v = lr b); when the rate changes, PyTorch's buffer carries past gradients at the new rate,
//! whereas the classic velocity keeps them at the rate they were taken with.
//!
//! reference: <https://pytorch.org/docs/stable/optim.html> (each class's documented algorithm).

pub mod config;
pub mod hyper;
pub mod schedule;

pub use config::{OptimizerConfig, OptimizerName};
pub use schedule::{Schedule, ScheduleConfig};

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::nn::{Network, Param};

/// Anything whose parameters an optimizer can visit, always in the same order.
pub trait Params {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param));
}

impl Params for Network {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        Network::for_each_param(self, f)
    }
}

impl Params for [Param] {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, p) in self.iter_mut().enumerate() {
            f(&i.to_string(), p);
        }
    }
}

/// The update rule with its hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Algorithm {
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        /// v = mu v + lr g; p -= v, instead of PyTorch's buffer.
        classic: bool,
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

/// One parameter's optimizer state, under PyTorch's `optimizer.state[p]` names. A buffer is
/// `None` until the rule that uses it first runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamState {
    pub momentum_buffer: Option<Vec<f32>>,
    pub sum: Option<Vec<f32>>,
    pub square_avg: Option<Vec<f32>>,
    pub acc_delta: Option<Vec<f32>>,
    pub grad_avg: Option<Vec<f32>>,
    pub exp_avg: Option<Vec<f32>>,
    pub exp_avg_sq: Option<Vec<f32>>,
    pub max_exp_avg_sq: Option<Vec<f32>>,
}

impl ParamState {
    fn slot(&mut self, name: &str) -> Option<&mut Option<Vec<f32>>> {
        Some(match name {
            "momentum_buffer" => &mut self.momentum_buffer,
            "sum" => &mut self.sum,
            "square_avg" => &mut self.square_avg,
            "acc_delta" => &mut self.acc_delta,
            "grad_avg" => &mut self.grad_avg,
            "exp_avg" => &mut self.exp_avg,
            "exp_avg_sq" => &mut self.exp_avg_sq,
            "max_exp_avg_sq" => &mut self.max_exp_avg_sq,
            _ => return None,
        })
    }

    /// The buffers that exist, by name.
    pub fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        [
            ("momentum_buffer", &self.momentum_buffer),
            ("sum", &self.sum),
            ("square_avg", &self.square_avg),
            ("acc_delta", &self.acc_delta),
            ("grad_avg", &self.grad_avg),
            ("exp_avg", &self.exp_avg),
            ("exp_avg_sq", &self.exp_avg_sq),
            ("max_exp_avg_sq", &self.max_exp_avg_sq),
        ]
        .into_iter()
        .filter_map(|(n, b)| b.as_deref().map(|b| (n, b)))
        .collect()
    }

    pub fn buffer(&self, name: &str) -> Option<&[f32]> {
        self.buffers()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b)
    }

    /// Restores one buffer by name (from a checkpoint).
    pub fn set_buffer(&mut self, name: &str, values: Vec<f32>) -> Result<(), String> {
        *self
            .slot(name)
            .ok_or_else(|| format!("unknown optimizer state {name}"))? = Some(values);
        Ok(())
    }
}

/// An optimizer: a rule, weight decay, the step count and every parameter's state.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    pub algorithm: Algorithm,
    pub weight_decay: WeightDecay,
    /// Steps taken so far (PyTorch's `state['step']`, shared by all parameters).
    pub steps: u64,
    /// One entry per parameter, in visiting order; filled on the first step.
    pub state: Vec<ParamState>,
}

impl Optimizer {
    pub fn new(algorithm: Algorithm, weight_decay: WeightDecay) -> Self {
        Optimizer {
            algorithm,
            weight_decay,
            steps: 0,
            state: Vec::new(),
        }
    }

    /// Updates every parameter from its gradient with learning rate `lr`. Large parameters
    /// of the adaptive rules are updated in parallel chunks; every element's arithmetic is the
    /// same, so the result does not depend on the number of threads.
    pub fn step<P: Params + ?Sized>(&mut self, params: &mut P, lr: f64) {
        self.update(params, lr, false);
    }

    /// [`Optimizer::step`], setting each gradient to zero right after its update, in the same
    /// pass: the next step accumulates from zero without another sweep over every gradient
    /// (which, at one sample per step, costs as much as the update).
    pub fn step_and_zero_grad<P: Params + ?Sized>(&mut self, params: &mut P, lr: f64) {
        self.update(params, lr, true);
    }

    fn update<P: Params + ?Sized>(&mut self, params: &mut P, lr: f64, zero_grad: bool) {
        self.steps += 1;
        let t = self.steps;
        let (algorithm, weight_decay) = (self.algorithm, self.weight_decay);
        let state = &mut self.state;
        let mut index = 0;
        params.for_each_param(&mut |_, p| {
            if state.len() <= index {
                state.push(ParamState::default());
            }
            let st = &mut state[index];
            index += 1;
            let first = prepare(algorithm, st, p.value.len());
            let slices = Slices {
                value: &mut p.value.data,
                grad: &mut p.grad.data,
                state: st.slots_mut().map(|s| s.as_deref_mut()),
            };
            let rule = |s: Slices| update_fast(algorithm, weight_decay, lr, t, first, s, zero_grad);
            // SGD's update is a multiply-add per element, cheaper than handing chunks to other
            // threads (which, at one sample per step, are asleep); the adaptive rules' square
            // roots and divisions are worth spreading.
            let cheap = matches!(algorithm, Algorithm::Sgd { .. });
            if cheap || slices.value.len() <= CHUNK {
                // In ranges that fit the L1 cache, so each range's gradient is cleared while
                // it is still there.
                slices.for_each_range(L1_RANGE, rule);
            } else {
                let chunks: Vec<_> = slices
                    .chunks(CHUNK)
                    .into_iter()
                    .map(Some)
                    .map(Mutex::new)
                    .collect();
                crate::parallel::for_each_chunk(chunks.len(), 1, |c, _, _| {
                    let taken = chunks[c].lock().map(|mut s| s.take());
                    rule(taken.ok().flatten().expect("each range is updated once"));
                });
            }
        });
    }
}

/// Whether all 16 values are +0.0 (bits all zero; -0.0 is not skipped, since v - lr * -0 can
/// change the sign of a zero v).
#[inline(always)]
fn is_zero(values: &[f32; 16]) -> bool {
    values.map(f32::to_bits) == [0; 16]
}

crate::simd::avx512_variant! {
    /// Sets a gradient range to +0.0, writing only the runs of 16 that are not zero already:
    /// after a one-sample step most of them are, and a store costs more than a look.
    fn clear = clear_runs(grad: &mut [f32])
}

#[inline(always)]
fn clear_runs(grad: &mut [f32]) {
    let mut runs = grad.chunks_exact_mut(16);
    for run in &mut runs {
        let run: &mut [f32; 16] = run.try_into().expect("16");
        if !is_zero(run) {
            *run = [0.0; 16];
        }
    }
    runs.into_remainder().fill(0.0);
}

/// Elements per parallel chunk of an update.
const CHUNK: usize = 8192;
/// Elements per range of a serial update: a range's value and gradient fill 32 KiB.
const L1_RANGE: usize = 4096;

// Positions of the state buffers in `ParamState::slots_mut` and `Slices::state`.
const MOMENTUM_BUFFER: usize = 0;
const SUM: usize = 1;
const SQUARE_AVG: usize = 2;
const ACC_DELTA: usize = 3;
const GRAD_AVG: usize = 4;
const EXP_AVG: usize = 5;
const EXP_AVG_SQ: usize = 6;
const MAX_EXP_AVG_SQ: usize = 7;

impl ParamState {
    fn slots_mut(&mut self) -> [&mut Option<Vec<f32>>; 8] {
        [
            &mut self.momentum_buffer,
            &mut self.sum,
            &mut self.square_avg,
            &mut self.acc_delta,
            &mut self.grad_avg,
            &mut self.exp_avg,
            &mut self.exp_avg_sq,
            &mut self.max_exp_avg_sq,
        ]
    }
}

/// Creates the state buffers the rule needs (PyTorch's initial values); returns whether the
/// momentum buffer is new, since SGD's first momentum step copies the gradient.
fn prepare(alg: Algorithm, st: &mut ParamState, n: usize) -> bool {
    let first = st.momentum_buffer.is_none();
    let mut need = |slot: usize, init: f32| {
        let s = st.slots_mut()[slot].get_or_insert_with(|| vec![init; n]);
        debug_assert_eq!(s.len(), n);
    };
    match alg {
        Algorithm::Sgd { momentum, .. } if momentum != 0.0 => need(MOMENTUM_BUFFER, 0.0),
        Algorithm::Sgd { .. } => {}
        Algorithm::Adagrad {
            initial_accumulator_value,
            ..
        } => need(SUM, initial_accumulator_value as f32),
        Algorithm::Adadelta { .. } => {
            need(SQUARE_AVG, 0.0);
            need(ACC_DELTA, 0.0);
        }
        Algorithm::Rmsprop {
            centered, momentum, ..
        } => {
            need(SQUARE_AVG, 0.0);
            if centered {
                need(GRAD_AVG, 0.0);
            }
            if momentum > 0.0 {
                need(MOMENTUM_BUFFER, 0.0);
            }
        }
        Algorithm::Adam { amsgrad, .. } => {
            need(EXP_AVG, 0.0);
            need(EXP_AVG_SQ, 0.0);
            if amsgrad {
                need(MAX_EXP_AVG_SQ, 0.0);
            }
        }
    }
    first
}

/// A range of one parameter's elements: values, gradients and state buffers.
struct Slices<'a> {
    value: &'a mut [f32],
    grad: &'a mut [f32],
    state: [Option<&'a mut [f32]>; 8],
}

impl<'a> Slices<'a> {
    /// The first `mid` elements and the rest.
    fn split_at(self, mid: usize) -> (Slices<'a>, Slices<'a>) {
        let Slices { value, grad, state } = self;
        let (v0, v1) = value.split_at_mut(mid);
        let (g0, g1) = grad.split_at_mut(mid);
        let mut s0: [Option<&'a mut [f32]>; 8] = Default::default();
        let mut s1: [Option<&'a mut [f32]>; 8] = Default::default();
        for (i, buffer) in state.into_iter().enumerate() {
            if let Some(b) = buffer {
                let (x, y) = b.split_at_mut(mid);
                (s0[i], s1[i]) = (Some(x), Some(y));
            }
        }
        let first = Slices {
            value: v0,
            grad: g0,
            state: s0,
        };
        let rest = Slices {
            value: v1,
            grad: g1,
            state: s1,
        };
        (first, rest)
    }

    /// Calls `f` on consecutive ranges of `size` elements, in order.
    fn for_each_range(self, size: usize, mut f: impl FnMut(Slices<'a>)) {
        let mut rest = self;
        while rest.value.len() > size {
            let (first, tail) = rest.split_at(size);
            f(first);
            rest = tail;
        }
        f(rest);
    }

    /// Splits into consecutive ranges of `size` elements.
    fn chunks(self, size: usize) -> Vec<Slices<'a>> {
        let mut out = Vec::new();
        self.for_each_range(size, |s| out.push(s));
        out
    }
}

crate::simd::avx512_variant! {
    /// [`update`], compiled for AVX-512 where the processor has it: the adaptive rules'
    /// square roots and divisions then run 16 at a time instead of 4. Element-wise IEEE
    /// arithmetic, so the results are the same.
    #[allow(clippy::too_many_arguments)]
    fn update_wide = update(
        alg: Algorithm,
        wd: WeightDecay,
        lr64: f64,
        t: u64,
        first: bool,
        value: &mut [f32],
        grad: &mut [f32],
        state: [Option<&mut [f32]>; 8],
        zero_grad: bool,
    ) -> bool
}

/// Updates one range of a parameter and, with `zero_grad`, sets its gradient to zero.
fn update_fast(
    alg: Algorithm,
    wd: WeightDecay,
    lr64: f64,
    t: u64,
    first: bool,
    s: Slices,
    zero_grad: bool,
) {
    let Slices { value, grad, state } = s;
    let cleared = update_wide(alg, wd, lr64, t, first, value, grad, state, zero_grad);
    if zero_grad && !cleared {
        clear(grad);
    }
}

/// One range's update; returns whether it also set the gradient to zero (asked by
/// `zero_grad`, done on the way by the rules that can, else left to the caller).
/// Hyperparameters are float64 and every constant derived from them (1 - beta2, the bias
/// corrections, 1 - lr wd) is computed in float64 before it meets float32 data, as PyTorch
/// does with Python floats: 1 - f32(0.999) would be off by 1e-5 relative.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn update(
    alg: Algorithm,
    wd: WeightDecay,
    lr64: f64,
    t: u64,
    first: bool,
    value: &mut [f32],
    grad: &mut [f32],
    state: [Option<&mut [f32]>; 8],
    zero_grad: bool,
) -> bool {
    let [
        mb,
        sum,
        square_avg,
        acc_delta,
        grad_avg,
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq,
    ] = state;
    let n = value.len();
    let lr = lr64 as f32;
    if let WeightDecay::Decoupled(wd) = wd {
        let factor = (1.0 - lr64 * wd) as f32;
        value.iter_mut().for_each(|v| *v *= factor);
    }
    let l2 = match wd {
        WeightDecay::L2(wd) => wd as f32,
        _ => 0.0,
    };
    // g with coupled weight decay; one closure so every rule sees the same arithmetic.
    let g = |i: usize, value: &[f32]| {
        if l2 != 0.0 {
            grad[i] + l2 * value[i]
        } else {
            grad[i]
        }
    };
    const PREPARED: &str = "state prepared for the rule";
    match alg {
        Algorithm::Sgd {
            momentum,
            dampening,
            nesterov,
            classic,
        } => {
            let (momentum, keep) = (momentum as f32, (1.0 - dampening) as f32);
            if momentum == 0.0 && l2 == 0.0 {
                // A zero gradient leaves its value as it is (v - lr * +0 = v, -0 included), so
                // runs of 16 zeros, common when one sample's ReLUs silence whole rows of a
                // weight gradient, are skipped without touching their values; a run that is
                // not zero is cleared right after its use, so the gradient is read once.
                let (mut vs, mut gs) = (value.chunks_exact_mut(16), grad.chunks_exact_mut(16));
                for (v, g) in (&mut vs).zip(&mut gs) {
                    let (v, g): (&mut [f32; 16], &mut [f32; 16]) =
                        (v.try_into().expect("16"), g.try_into().expect("16"));
                    if !is_zero(g) {
                        v.iter_mut().zip(g.iter()).for_each(|(v, &g)| *v -= lr * g);
                        if zero_grad {
                            *g = [0.0; 16];
                        }
                    }
                }
                let (v, g) = (vs.into_remainder(), gs.into_remainder());
                v.iter_mut().zip(g.iter()).for_each(|(v, &g)| *v -= lr * g);
                if zero_grad {
                    g.fill(0.0);
                }
                return zero_grad;
            }
            if momentum == 0.0 {
                for i in 0..n {
                    value[i] -= lr * g(i, value);
                }
                return false;
            }
            let buf = mb.expect(PREPARED);
            for i in 0..n {
                let gi = g(i, value);
                if classic {
                    buf[i] = if first {
                        lr * gi
                    } else {
                        momentum * buf[i] + lr * gi
                    };
                    value[i] -= buf[i];
                } else {
                    buf[i] = if first {
                        gi
                    } else {
                        momentum * buf[i] + keep * gi
                    };
                    let d = if nesterov {
                        gi + momentum * buf[i]
                    } else {
                        buf[i]
                    };
                    value[i] -= lr * d;
                }
            }
        }
        Algorithm::Adagrad { lr_decay, eps, .. } => {
            let clr = (lr64 / (1.0 + (t - 1) as f64 * lr_decay)) as f32;
            let eps = eps as f32;
            let sum = sum.expect(PREPARED);
            for i in 0..n {
                let gi = g(i, value);
                sum[i] += gi * gi;
                value[i] -= clr * gi / (sum[i].sqrt() + eps);
            }
        }
        Algorithm::Adadelta { rho, eps } => {
            let (one_minus_rho, rho, eps) = ((1.0 - rho) as f32, rho as f32, eps as f32);
            let (sq, acc) = (square_avg.expect(PREPARED), acc_delta.expect(PREPARED));
            for i in 0..n {
                let gi = g(i, value);
                sq[i] = rho * sq[i] + one_minus_rho * gi * gi;
                let delta = (acc[i] + eps).sqrt() / (sq[i] + eps).sqrt() * gi;
                acc[i] = rho * acc[i] + one_minus_rho * delta * delta;
                value[i] -= lr * delta;
            }
        }
        Algorithm::Rmsprop {
            alpha,
            eps,
            centered,
            momentum,
        } => {
            let (one_minus_alpha, alpha) = ((1.0 - alpha) as f32, alpha as f32);
            let (eps, momentum) = (eps as f32, momentum as f32);
            let sq = square_avg.expect(PREPARED);
            let mut ga = if centered { grad_avg } else { None };
            let mut mom = if momentum > 0.0 { mb } else { None };
            for i in 0..n {
                let gi = g(i, value);
                sq[i] = alpha * sq[i] + one_minus_alpha * gi * gi;
                let var = match ga.as_deref_mut() {
                    Some(ga) => {
                        ga[i] += (gi - ga[i]) * one_minus_alpha; // lerp, as PyTorch
                        sq[i] - ga[i] * ga[i]
                    }
                    None => sq[i],
                };
                let r = gi / (var.sqrt() + eps);
                match mom.as_deref_mut() {
                    Some(b) => {
                        b[i] = momentum * b[i] + r;
                        value[i] -= lr * b[i];
                    }
                    None => value[i] -= lr * r,
                }
            }
        }
        Algorithm::Adam {
            beta1,
            beta2,
            eps,
            amsgrad,
        } => {
            let bias_correction1 = 1.0 - beta1.powi(t as i32);
            let bias_correction2 = 1.0 - beta2.powi(t as i32);
            let step_size = (lr64 / bias_correction1) as f32;
            let bc2_sqrt = bias_correction2.sqrt() as f32;
            let (one_minus_beta1, one_minus_beta2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
            let (beta2, eps) = (beta2 as f32, eps as f32);
            let (m, v) = (exp_avg.expect(PREPARED), exp_avg_sq.expect(PREPARED));
            // Slices zipped rather than indexed, so the loop vectorises.
            let moments = |gi: f32, m: &mut f32, v: &mut f32| {
                *m += (gi - *m) * one_minus_beta1; // lerp, as PyTorch
                *v = beta2 * *v + one_minus_beta2 * gi * gi;
            };
            let step =
                |p: &mut f32, m: f32, v: f32| *p -= step_size * m / (v.sqrt() / bc2_sqrt + eps);
            if amsgrad {
                let vmax = max_exp_avg_sq.expect(PREPARED);
                for (i, ((m, v), vm)) in m
                    .iter_mut()
                    .zip(v.iter_mut())
                    .zip(vmax.iter_mut())
                    .enumerate()
                {
                    moments(g(i, value), m, v);
                    *vm = vm.max(*v);
                    step(&mut value[i], *m, *vm);
                }
            } else if l2 == 0.0 {
                for (((p, &gi), m), v) in value
                    .iter_mut()
                    .zip(grad.iter())
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    moments(gi, m, v);
                    step(p, *m, *v);
                }
            } else {
                for (i, (m, v)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
                    moments(g(i, value), m, v);
                    step(&mut value[i], *m, *v);
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::tensor::Tensor;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
    }

    /// A parameter larger than a chunk, updated in parallel chunks, ends bit-identical to the
    /// same values updated as many small parameters, for every rule; `step_and_zero_grad`
    /// clears the gradients it used, `step` keeps them.
    #[test]
    fn chunked_updates_equal_elementwise_updates() {
        let rules = [
            Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
                classic: false,
            },
            Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                classic: false,
            },
            Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: false,
                classic: true,
            },
            Algorithm::Adagrad {
                lr_decay: 0.01,
                initial_accumulator_value: 0.1,
                eps: 1e-10,
            },
            Algorithm::Adadelta {
                rho: 0.9,
                eps: 1e-6,
            },
            Algorithm::Rmsprop {
                alpha: 0.99,
                eps: 1e-8,
                centered: true,
                momentum: 0.9,
            },
            Algorithm::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                amsgrad: true,
            },
        ];
        let n = 3 * CHUNK + 17;
        for alg in rules {
            for wd in [
                WeightDecay::None,
                WeightDecay::L2(0.01),
                WeightDecay::Decoupled(0.01),
            ] {
                let mut rng = Rng::new(1);
                let x0 = random(n, &mut rng);
                let mut big = [Param::new("w", Tensor::from_vec(&[n], x0.clone()))];
                let mut small: Vec<Param> = x0
                    .chunks(1000)
                    .map(|c| Param::new("w", Tensor::from_vec(&[c.len()], c.to_vec())))
                    .collect();
                let (mut a, mut b) = (Optimizer::new(alg, wd), Optimizer::new(alg, wd));
                for _ in 0..3 {
                    let g = random(n, &mut rng);
                    big[0].grad.data.copy_from_slice(&g);
                    for (p, c) in small.iter_mut().zip(g.chunks(1000)) {
                        p.grad.data.copy_from_slice(c);
                    }
                    a.step_and_zero_grad(&mut big[..], 0.01);
                    b.step(&mut small[..], 0.01);
                    assert!(
                        big[0].grad.data.iter().all(|&g| g == 0.0),
                        "{alg:?} cleared"
                    );
                    assert!(
                        small[0].grad.data[..] == g[..small[0].grad.len()],
                        "{alg:?} kept"
                    );
                }
                let joined: Vec<f32> = small.iter().flat_map(|p| p.value.data.clone()).collect();
                assert!(big[0].value.data == joined, "{alg:?} {wd:?}");
            }
        }
    }

    /// Plain SGD skips runs of zero gradients: every value still ends as v - lr g computed
    /// element by element (a -0.0 gradient included, which is not skipped), and the gradient
    /// is +0.0 everywhere after a step that clears it, as it was after one that does not.
    #[test]
    fn plain_sgd_skips_zero_gradients_without_changing_results() {
        let n = 200;
        let mut rng = Rng::new(3);
        let mut values = random(n, &mut rng);
        values[40] = -0.0;
        values[41] = 0.0;
        // Zero runs aligned and not, a lone nonzero in a run, and -0.0 against -0.0.
        let mut grad: Vec<f32> = (0..n)
            .map(|i| match i {
                0..48 | 64..100 => 0.0,
                _ => rng.uniform_range(-1.0, 1.0),
            })
            .collect();
        grad[40] = -0.0;
        grad[70] = 0.25;
        let lr = 0.1f32;
        let want: Vec<u32> = values
            .iter()
            .zip(&grad)
            .map(|(&v, &g)| (v - lr * g).to_bits())
            .collect();
        let mut params = [Param::new("w", Tensor::from_vec(&[n], values))];
        params[0].grad.data.copy_from_slice(&grad);
        let mut sgd = Optimizer::new(
            Algorithm::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
                classic: false,
            },
            WeightDecay::None,
        );
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        // A step alone leaves the gradient as it was.
        let mut kept = params.clone();
        sgd.clone().step(&mut kept[..], lr as f64);
        assert_eq!(bits(&kept[0].value.data), want);
        assert_eq!(bits(&kept[0].grad.data), bits(&grad));
        sgd.step_and_zero_grad(&mut params[..], lr as f64);
        assert_eq!(bits(&params[0].value.data), want);
        assert!(params[0].grad.data.iter().all(|g| g.to_bits() == 0));
    }
}
