//! The optimizer: a rule ([`Algorithm`]), weight decay, the step count and every parameter's
//! state, over any set of parameters ([`Params`]); how a step walks the parameters, in
//! ranges and parallel chunks, is here, and what a step does to each element is in
//! [`super::rules`].

use std::sync::Mutex;

use super::rules::{self, Algorithm, State, Step, WeightDecay, apply};
use super::state::{BUFFERS, Buf, ParamState};
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

/// Elements per parallel chunk of an update.
const CHUNK: usize = 8192;
/// Elements per range of a serial update: a range's value and gradient fill 32 KiB.
const L1_RANGE: usize = 4096;

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

    /// Takes every parameter's second derivative, accumulated in its [`Param::curvature`]
    /// ([`crate::nn::Network::backward_curvature`]), as the estimate a rule that needs one
    /// (sdlm, [`Algorithm::needs_curvature`]) steps by until the next call; the
    /// trainer calls it before every pass. Rules that need none keep no such state, and the
    /// call changes nothing for them.
    pub fn set_curvature<P: Params + ?Sized>(&mut self, params: &mut P) {
        if !self.algorithm.needs_curvature() {
            return;
        }
        with_state(&mut self.state, params, |p, st| {
            (st.set_buffer(Buf::HessianDiagonal.name(), p.curvature.data.clone()))
                .expect("a buffer of the table");
        });
    }

    fn update<P: Params + ?Sized>(&mut self, params: &mut P, lr: f64, zero_grad: bool) {
        self.steps += 1;
        let (algorithm, weight_decay, t) = (self.algorithm, self.weight_decay, self.steps);
        let buffers = algorithm.buffers();
        with_state(&mut self.state, params, |p, st| {
            let first = st.get(Buf::MomentumBuffer).is_none();
            for &(b, init) in &buffers {
                st.need(b, p.value.len(), init);
            }
            let step = Step {
                lr,
                t,
                first,
                weight_decay,
                zero_grad,
            };
            let slices = Slices {
                value: &mut p.value.data,
                grad: &mut p.grad.data,
                state: st.slices_mut(),
            };
            // SGD's update is a multiply-add per element, cheaper than handing chunks to other
            // threads (which, at one sample per step, are asleep), and so is sdlm's, one
            // division more, always at one sample per step; the adaptive rules' square roots
            // and divisions are worth spreading.
            let cheap = matches!(algorithm, Algorithm::Sgd { .. } | Algorithm::Sdlm { .. });
            update_param(algorithm, &step, slices, !cheap);
        });
    }
}

/// Calls `f` on every parameter with its state, in visiting order, making the state of a
/// parameter seen for the first time.
fn with_state<P: Params + ?Sized>(
    state: &mut Vec<ParamState>,
    params: &mut P,
    mut f: impl FnMut(&mut Param, &mut ParamState),
) {
    let mut index = 0;
    params.for_each_param(&mut |_, p| {
        if state.len() <= index {
            state.push(ParamState::default());
        }
        f(p, &mut state[index]);
        index += 1;
    });
}

/// One parameter's update: in ranges that fit the L1 cache (so each range's gradient is
/// cleared while it is still there), or, when `spread` and the parameter is large, in
/// parallel chunks.
fn update_param(algorithm: Algorithm, step: &Step, slices: Slices, spread: bool) {
    let rule = |s: Slices| update_range(algorithm, step, s);
    if !spread || slices.value.len() <= CHUNK {
        for_each_range(slices, L1_RANGE, rule);
        return;
    }
    let mut chunks = Vec::new();
    for_each_range(slices, CHUNK, |s| chunks.push(Mutex::new(Some(s))));
    crate::parallel::for_each_chunk(chunks.len(), 1, |c, _, _| {
        let taken = chunks[c].lock().map(|mut s| s.take());
        rule(taken.ok().flatten().expect("each range is updated once"));
    });
}

crate::simd::avx512_variant! {
    /// [`rules::apply`], compiled for AVX-512 where the processor has it: the adaptive rules'
    /// square roots and divisions then run 16 at a time instead of 4. Element-wise IEEE
    /// arithmetic, so the results are the same.
    fn apply_wide = apply(
        alg: Algorithm,
        step: &Step,
        value: &mut [f32],
        grad: &mut [f32],
        state: State<'_>,
    ) -> bool
}

/// Updates one range of a parameter and, with `step.zero_grad`, sets its gradient to zero.
fn update_range(alg: Algorithm, step: &Step, s: Slices) {
    let Slices { value, grad, state } = s;
    if !apply_wide(alg, step, value, grad, state) && step.zero_grad {
        clear(grad);
    }
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
        if !rules::is_zero(run) {
            *run = [0.0; 16];
        }
    }
    runs.into_remainder().fill(0.0);
}

/// A range of one parameter's elements: values, gradients and state buffers.
struct Slices<'a> {
    value: &'a mut [f32],
    grad: &'a mut [f32],
    state: State<'a>,
}

/// The first `mid` elements of a range and the rest.
fn split_at(s: Slices<'_>, mid: usize) -> (Slices<'_>, Slices<'_>) {
    let Slices { value, grad, state } = s;
    let (v0, v1) = value.split_at_mut(mid);
    let (g0, g1) = grad.split_at_mut(mid);
    let mut s0: [Option<&mut [f32]>; BUFFERS] = Default::default();
    let mut s1: [Option<&mut [f32]>; BUFFERS] = Default::default();
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
fn for_each_range<'a>(s: Slices<'a>, size: usize, mut f: impl FnMut(Slices<'a>)) {
    let mut rest = s;
    while rest.value.len() > size {
        let (first, tail) = split_at(rest, size);
        f(first);
        rest = tail;
    }
    f(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Momentum;
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
                kind: Momentum::PyTorch,
            },
            Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                kind: Momentum::Nesterov,
            },
            Algorithm::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                kind: Momentum::Classic,
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
                kind: Momentum::PyTorch,
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
