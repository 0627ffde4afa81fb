//! What every layer is: the [`Layer`] trait, its trainable [`Param`]eters and saved
//! [`Buffer`]s, and the [`Context`] and [`Mode`] a forward pass runs in.

use std::any::Any;

use crate::parallel::{SharedMut, for_each_chunk};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Training uses batch statistics and dropout; evaluation uses running statistics and no
/// dropout, as PyTorch's `model.train()` and `model.eval()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A trainable tensor and the gradient of the loss with respect to it.
#[derive(Clone, Debug)]
pub struct Param {
    /// PyTorch's name for it inside its module: `weight` or `bias`.
    pub name: &'static str,
    pub value: Tensor,
    pub grad: Tensor,
    /// The diagonal of the Gauss–Newton approximation of the loss's Hessian with respect to
    /// the value, accumulated by [`Layer::backward_curvature`] as `grad` is by
    /// [`Layer::backward`] (used by the stochastic diagonal Levenberg–Marquardt optimizer).
    pub curvature: Tensor,
    /// Entries fixed at zero (a sparse connection table); their gradient is always zero.
    pub frozen_zero: Option<Vec<bool>>,
}

impl Param {
    pub fn new(name: &'static str, value: Tensor) -> Self {
        let grad = Tensor::zeros(&value.shape);
        Param {
            name,
            value,
            curvature: grad.clone(),
            grad,
            frozen_zero: None,
        }
    }

    /// Number of trainable entries (frozen zeros excluded).
    pub fn trainable_len(&self) -> usize {
        match &self.frozen_zero {
            Some(mask) => mask.iter().filter(|&&z| !z).count(),
            None => self.value.len(),
        }
    }
}

/// A non-trainable state tensor saved with the model, such as batch normalization's running
/// statistics.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    F32(Tensor),
    I64(i64),
}

/// What a forward pass may need besides its input.
pub struct Context<'a> {
    pub mode: Mode,
    /// The dropout stream; dropout masks are drawn serially from it, in layer order.
    pub rng: &'a mut Rng,
}

/// What a layer is, for those that show or name layers (reports, `lenet explore`) without
/// parsing their descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    /// Max or average pooling.
    Pool,
    /// The 1998 network's trainable subsampling.
    Subsample,
    BatchNorm,
    /// An elementwise activation (ReLU, tanh, the 1998 network's scaled tanh).
    Activation,
    Dropout,
    Linear,
    /// The 1998 network's Euclidean RBF output: its scores are minus squared distances.
    Rbf,
}

impl LayerKind {
    /// Whether it maps each input map to one output map of its own (so a map after it is still
    /// the convolution's map before it): activation, pooling, subsampling, batch norm, dropout.
    pub fn is_per_map(self) -> bool {
        matches!(
            self,
            LayerKind::Activation
                | LayerKind::Pool
                | LayerKind::Subsample
                | LayerKind::BatchNorm
                | LayerKind::Dropout
        )
    }
}

/// One layer: forward and backward over a batch.
pub trait Layer: Send + CloneLayer + Any {
    /// PyTorch-style description, e.g. `Conv2d(1, 6, kernel_size=5)`.
    fn describe(&self) -> String;

    /// What kind of layer it is.
    fn kind(&self) -> LayerKind;

    /// Shape of the output for an input of shape `input` (batch axis included).
    fn output_shape(&self, input: &[usize]) -> Vec<usize>;

    /// Connections per sample for an input of shape `input`, as LeCun et al. (1998) count
    /// them: every product of an input with a trainable weight, fixed prototype or bias that an
    /// output sums (a shared weight counts once per use). Layers without weights have none.
    fn connections(&self, _input: &[usize]) -> usize {
        0
    }

    /// Computes `y` from `x`; `y` has already been resized to [`Layer::output_shape`].
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Context);

    /// Given the input `x`, the output `y` and the gradient `dy` of the loss with respect to
    /// `y`, accumulates parameter gradients and, when `dx` is given, writes the gradient with
    /// respect to `x` (already resized to `x`'s shape).
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>);

    /// The second-order backward pass of LeCun et al. (1998, appendix C), beside the first:
    /// given the input `x`, the output `y` and `d2y`, the loss's second derivatives with
    /// respect to each output (Gauss–Newton, diagonal), accumulates each parameter's into
    /// [`Param::curvature`] and, when `d2x` is given, writes those with respect to `x`
    /// (already resized to `x`'s shape).
    ///
    /// With J the layer's Jacobian and D = diag(`d2y`), both are diagonals of J^T D J:
    /// d2x_j = sum_i d2y_i (dy_i/dx_j)^2 and h_k = sum_i d2y_i (dy_i/dw_k)^2, summed over the
    /// batch. The terms a Gauss–Newton approximation drops (the layer's own second
    /// derivatives) and the off-diagonal ones (products of two different outputs' slopes)
    /// are left out, as the paper does, so a unit's second derivative is its slope squared
    /// times the next one's, and a shared weight's is the sum over the connections that share
    /// it. For a single layer whose `d2y` is diagonal this is exact. A layer linear in its
    /// input and weights (convolution, fully connected) computes it as its first-order
    /// backward with every input and weight squared.
    fn backward_curvature(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    );

    /// Each sample's term of the parameter gradients that [`Layer::backward`] accumulated
    /// from this `x` and `dy` (the batch's gradient is the sum of the terms), for the noise
    /// instruments: for each sample n, `sq[n]` is its term's squared norm over all the layer's
    /// parameters and, when `dot` is given, `dot[n]` its inner product with the gradients the
    /// parameters hold now. Entries a connection table fixes at zero have no term. Returns
    /// false where the layer has parameters but no split of their gradient by sample.
    fn sample_terms(
        &self,
        _x: &Tensor,
        _dy: &Tensor,
        _sq: &mut [f64],
        _dot: Option<&mut [f64]>,
    ) -> bool {
        self.params().is_empty()
    }

    /// Asks the following backward passes to keep, where the layer can at little cost, what
    /// [`Layer::sample_terms`] would otherwise compute again from `x` and `dy` (a convolution's
    /// per-sample gradients); off by default. Changes no result of the passes.
    fn keep_sample_grads(&mut self, _on: bool) {}

    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    /// Named state saved with the model besides the parameters.
    fn buffers(&self) -> Vec<(&'static str, Buffer)> {
        Vec::new()
    }

    /// Restores one buffer saved by [`Layer::buffers`].
    fn set_buffer(&mut self, name: &str, _value: Buffer) -> Result<(), String> {
        Err(format!("{} has no buffer named {name}", self.describe()))
    }
}

/// What every boxed layer has besides its maths, given to each `Clone` layer by a blanket
/// implementation: a copy, for the replicas a [`Network`](super::Network) evaluates with on other threads
/// ([`Network::forward_each`](super::Network::forward_each)), and its concrete type, for the network's plan of stages
/// ([`super::plan`]), which runs some sequences of layers (a convolution, a ReLU and max
/// pooling) as one pass of their own.
pub trait CloneLayer {
    fn clone_layer(&self) -> Box<dyn Layer>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Layer + Clone + 'static> CloneLayer for T {
    fn clone_layer(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Runs `f(first, sq, dot)` over the samples `0..n` in tasks of `task` samples, in parallel,
/// each task with its own samples' slots of [`Layer::sample_terms`]'s outputs (`dot` empty
/// when not asked for). Each sample's values are computed by one task alone, so they do not
/// depend on the thread count.
pub(crate) fn for_sample_terms(
    n: usize,
    task: usize,
    sq: &mut [f64],
    dot: Option<&mut [f64]>,
    f: impl Fn(usize, &mut [f64], &mut [f64]) + Sync + Send,
) {
    let want_dot = dot.is_some();
    let sq = SharedMut::new(&mut sq[..n]);
    let dot = dot.map(|d| SharedMut::new(&mut d[..n]));
    for_each_chunk(n, task, |_, first, count| {
        // SAFETY: each task owns its samples' slots.
        let sq = unsafe { sq.range(first, count) };
        let dot = match (&dot, want_dot) {
            (Some(d), true) => unsafe { d.range(first, count) },
            _ => &mut [][..],
        };
        f(first, sq, dot);
    });
}

crate::simd::avx512_variant! {
    /// The sum of the squares of `a`, and its inner product with `b` when `b` is not empty:
    /// the products in f32 (each exact to an f32's rounding, as the values are), summed in
    /// [`SUM_LANES`] lanes (lane k takes every 64th product) over runs of 16 products a lane,
    /// each run's lanes then added to as many f64 sums, and those at the end in a fixed
    /// order (a vector shorter than the lanes takes one f64 sum). The additions do not wait
    /// on each other and vectorise; the result depends on the values alone.
    pub fn square_and_dot = square_and_dot_lanes(a: &[f32], b: &[f32]) -> (f64, f64)
}

/// Lanes of [`square_and_dot`]'s f32 sums: four vectors, so that four additions are in
/// flight at once.
const SUM_LANES: usize = 64;

#[inline(always)]
fn square_and_dot_lanes(a: &[f32], b: &[f32]) -> (f64, f64) {
    const RUN: usize = 16 * SUM_LANES;
    let with_dot = !b.is_empty();
    if with_dot {
        assert_eq!(a.len(), b.len());
    }
    if a.len() < SUM_LANES {
        // Too short to fill the lanes: one f64 sum each (a dense layer's per-sample vectors).
        let sq = a.iter().map(|&v| v as f64 * v as f64).sum();
        let dot = (a.iter().zip(b)).map(|(&u, &v)| u as f64 * v as f64).sum();
        return (sq, dot);
    }
    let (mut sq, mut dot) = ([0.0f64; SUM_LANES], [0.0f64; SUM_LANES]);
    for (i, chunk) in a.chunks(RUN).enumerate() {
        let (s, d) = if with_dot {
            run_lanes::<true>(chunk, &b[i * RUN..i * RUN + chunk.len()])
        } else {
            run_lanes::<false>(chunk, &[])
        };
        for k in 0..SUM_LANES {
            sq[k] += s[k] as f64;
            dot[k] += d[k] as f64;
        }
    }
    (fold_lanes(&sq), fold_lanes(&dot))
}

/// The sum of [`SUM_LANES`] f64 sums: first into eight (lane k takes every eighth, as
/// vectors), then those eight in order, so that the end is not 64 additions in a row.
#[inline(always)]
fn fold_lanes(lanes: &[f64; SUM_LANES]) -> f64 {
    let mut eight = [0.0f64; 8];
    for chunk in lanes.chunks_exact(8) {
        for k in 0..8 {
            eight[k] += chunk[k];
        }
    }
    eight.iter().sum()
}

/// One run of [`square_and_dot`]: the f32 lane sums of the squares of `a` and (with `DOT`)
/// of its products with `b`.
#[inline(always)]
fn run_lanes<const DOT: bool>(a: &[f32], b: &[f32]) -> ([f32; SUM_LANES], [f32; SUM_LANES]) {
    let (mut s, mut d) = ([0.0f32; SUM_LANES], [0.0f32; SUM_LANES]);
    let whole = a.len() - a.len() % SUM_LANES;
    if DOT {
        for (c, e) in a[..whole]
            .chunks_exact(SUM_LANES)
            .zip(b.chunks_exact(SUM_LANES))
        {
            for k in 0..SUM_LANES {
                s[k] += c[k] * c[k];
                d[k] += c[k] * e[k];
            }
        }
        for (k, (&u, &v)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
            s[k] += u * u;
            d[k] += u * v;
        }
    } else {
        for c in a[..whole].chunks_exact(SUM_LANES) {
            for k in 0..SUM_LANES {
                s[k] += c[k] * c[k];
            }
        }
        for (k, &v) in a[whole..].iter().enumerate() {
            s[k] += v * v;
        }
    }
    (s, d)
}
