//! The Hessian of a batch's loss seen through its products with vectors, and its extreme
//! eigenvalues: the largest, the "sharpness" that Cohen et al. (ICLR 2021) set against 2/lr
//! (gradient descent on a quadratic of curvature λ diverges once lr > 2/λ, and full-batch
//! training of neural networks tends to hover at that edge, "the edge of stability"), and the
//! smallest, negative where the loss curves down.
//!
//! A product Hv is taken by centred differences of gradients along v,
//!
//! Hv ≈ (g(w + εv) - g(w - εv)) / (2ε),
//!
//! two forward and backward passes over the batch, in pieces as training takes it. For a
//! unit v the error is O(ε²) from the loss's third derivatives plus the gradients' f32
//! rounding magnified by 1/ε; at ε = [`EPSILON`] both are far below a thousandth of the
//! products the instruments read. The network comes back exactly as it was: its parameters
//! and buffers (the running statistics a training-mode pass of batch normalization moves) are
//! restored from a copy, its gradients from another; only its input buffer (scratch) is left
//! holding the batch's last piece.
//!
//! The eigenvalues are found by the Lanczos method: the power iteration's vectors v, Hv, H²v,
//! ... kept and orthogonalised (fully, in f64), so that the k x k tridiagonal matrix of H in
//! their span has extreme eigenvalues that converge to H's at both ends far faster than the
//! power iteration's Rayleigh quotient. Plain power iteration was tried first and converges to
//! the eigenvalue of largest magnitude only: early in training the most negative eigenvalue
//! is about as large as the top one, and its estimates swung between them (0.06, then 2.9 on
//! consecutive recorded steps of a LeNet-5 run, 20 products without settling).

use super::layer::Buffer;
use super::{Context, Mode, Network};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The step of the centred difference along a unit vector, in weight space.
pub const EPSILON: f32 = 1e-3;

/// What the Lanczos method found.
#[derive(Clone, Debug)]
pub struct Spectrum {
    /// The largest eigenvalue (the sharpness).
    pub largest: f64,
    /// The smallest eigenvalue (negative where the loss curves down along some direction), as
    /// the same products give it: the stopping rule watches the largest only.
    pub smallest: f64,
    /// The largest eigenvalue's eigenvector (its Ritz vector), unit norm, in the order of
    /// [`Network::params`]: a warm start for the next estimate.
    pub vector: Vec<f32>,
    /// Products of the Hessian with a vector taken (each two forward and backward passes).
    pub products: usize,
}

/// How the passes run: the mode (training mode for the loss being trained, with batch
/// statistics and dropout) and the seed of the generator every pass draws its dropout masks
/// from, so that the two gradients of a difference see the same masks.
#[derive(Clone, Copy, Debug)]
pub struct Passes {
    pub mode: Mode,
    pub seed: u64,
}

/// The batch whose loss the Hessian is of: its samples' labels, taken in pieces of at most
/// `piece` samples (as training takes a step's batch), `fill(from, to, input)` writing
/// samples `from..to` into the network's input buffer.
pub struct Batch<'a> {
    pub labels: &'a [u8],
    pub piece: usize,
    pub fill: &'a dyn Fn(usize, usize, &mut Tensor),
}

impl Batch<'_> {
    /// The pieces `(from, to)` the batch is taken in.
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> + use<'_> {
        let (n, piece) = (self.labels.len(), self.piece.max(1));
        (0..n)
            .step_by(piece)
            .map(move |from| (from, n.min(from + piece)))
    }

    /// Fills samples `from..to` into `net`'s input and runs the forward pass in `mode`.
    fn forward(&self, net: &mut Network, (from, to): (usize, usize), mode: Mode, rng: &mut Rng) {
        (self.fill)(from, to, net.input_mut());
        net.forward(&mut Context { mode, rng });
    }
}

/// The gradient of the batch's mean loss at the current weights: every parameter's, one
/// after the other. Every call draws the same dropout masks (from `passes.seed`).
fn gradient(net: &mut Network, batch: &Batch, passes: Passes) -> Vec<f32> {
    net.zero_grad();
    let criterion = net.criterion();
    let rng = &mut Rng::new(passes.seed);
    let n = batch.labels.len();
    let scale = 1.0 / n as f32;
    for (from, to) in batch.pieces() {
        batch.forward(net, (from, to), passes.mode, rng);
        let (logits, dlogits) = net.output_and_grad_mut();
        criterion.apply(logits, &batch.labels[from..to], Some((dlogits, scale)));
        net.backward(false);
    }
    // One copy, parameter by parameter (an iterator over every value took a quarter of
    // the pass).
    let mut grads = Vec::with_capacity(net.param_count());
    for (_, p) in net.params() {
        grads.extend_from_slice(&p.grad.data);
    }
    grads
}

/// Moves every parameter of `net` by `step` times its part of `v`; entries fixed at zero (a
/// sparse connection table) stay zero.
fn shift(net: &mut Network, v: &[f32], step: f32) {
    let mut at = 0;
    net.for_each_param(&mut |_, p| {
        let n = p.value.len();
        let frozen = p.frozen_zero.as_deref();
        for (i, (w, &d)) in p.value.data.iter_mut().zip(&v[at..at + n]).enumerate() {
            if !frozen.is_some_and(|f| f[i]) {
                *w += step * d;
            }
        }
        at += n;
    });
}

/// For every parameter value of `net` in order, whether it is free (not fixed at zero).
fn free(net: &Network) -> Vec<bool> {
    (net.params().iter())
        .flat_map(|(_, p)| match &p.frozen_zero {
            Some(mask) => mask.iter().map(|&z| !z).collect(),
            None => vec![true; p.value.len()],
        })
        .collect()
}

/// Everything of `net` a pass may change and the caller needs back: parameters and buffers,
/// and gradients.
struct Saved {
    state: Vec<(String, Buffer)>,
    grads: Vec<Vec<f32>>,
}

impl Saved {
    fn of(net: &Network) -> Saved {
        Saved {
            state: net.state_dict(),
            grads: (net.params().iter())
                .map(|(_, p)| p.grad.data.clone())
                .collect(),
        }
    }

    fn restore(&self, net: &mut Network) {
        (net.load_state_dict(self.state.clone())).expect("the network's own state loads back");
        let mut grads = self.grads.iter();
        net.for_each_param(&mut |_, p| {
            p.grad
                .data
                .copy_from_slice(grads.next().expect("a gradient per parameter"));
        });
    }
}

/// The Hessian of the batch's mean loss times `v` (any norm; the step is ε/||v|| along it),
/// by centred differences of gradients (entries of `v` on parameters fixed at zero are
/// ignored). `net` comes back exactly as it was.
pub fn hessian_vector_product(
    net: &mut Network,
    batch: &Batch,
    passes: Passes,
    v: &[f32],
) -> Vec<f32> {
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let values: usize = net.params().iter().map(|(_, p)| p.value.len()).sum();
    assert_eq!(v.len(), values, "one entry per parameter value");
    if norm == 0.0 {
        return vec![0.0; v.len()];
    }
    let saved = Saved::of(net);
    let step = (EPSILON as f64 / norm) as f32;
    shift(net, v, step);
    let plus = gradient(net, batch, passes);
    saved.restore(net);
    shift(net, v, -step);
    let minus = gradient(net, batch, passes);
    saved.restore(net);
    (plus.iter().zip(&minus))
        .map(|(&p, &m)| ((p as f64 - m as f64) / (2.0 * step as f64)) as f32)
        .collect()
}

/// The trace of the Gauss–Newton matrix of the batch's mean loss, (1/N) sum_n J_n^T H_n J_n
/// (J_n the Jacobian of sample n's scores with respect to every parameter, H_n its loss's
/// Hessian with respect to them), exactly. H_n = sum_c l_c l_c^T
/// ([`super::loss::Criterion::hessian_factors`]), so the trace is (1/N) sum_n sum_c
/// |J_n^T l_c|^2: one backward pass per factor, with sample n's factor as its output gradient,
/// and each sample's squared norm from [`Network::sample_terms`] — no Jacobian is formed.
/// The forward pass runs once, with the layers keeping what the per-sample terms need
/// ([`Network::keep_sample_grads`]), and `net` comes back as it was.
///
/// With batch normalization in training mode a sample's scores depend on the others' inputs
/// through the batch statistics; each sample's term of a pass is then its term of the batch's
/// product, not J_n^T l_c alone, and the trace an approximation of the coupled one.
pub fn gauss_newton_trace(net: &mut Network, batch: &Batch, passes: Passes) -> Result<f64, String> {
    let saved = Saved::of(net);
    let kept = net.keeps_sample_grads();
    net.keep_sample_grads(true);
    let criterion = net.criterion();
    let rng = &mut Rng::new(passes.seed);
    let n = batch.labels.len();
    let scale = (1.0 / n as f64).sqrt() as f32;
    let mut trace = 0.0;
    let mut failed = None;
    for piece in batch.pieces() {
        batch.forward(net, piece, passes.mode, rng);
        let scores = net.output();
        let k = scores.item_len();
        let factors: Vec<Vec<Vec<f32>>> = (scores.data.chunks_exact(k))
            .map(|row| criterion.hessian_factors(row))
            .collect();
        for c in 0..factors.first().map_or(0, Vec::len) {
            let (_, dscores) = net.output_and_grad_mut();
            for (d, f) in dscores.data.chunks_exact_mut(k).zip(&factors) {
                for (d, &l) in d.iter_mut().zip(&f[c]) {
                    *d = scale * l;
                }
            }
            net.backward(false);
            match net.sample_terms(false) {
                Ok(terms) => trace += terms.iter().flat_map(|t| &t.sq).sum::<f64>(),
                Err(e) => failed = Some(e),
            }
        }
    }
    net.keep_sample_grads(kept);
    saved.restore(net);
    failed.map_or(Ok(trace), Err)
}

/// The extreme eigenvalues of the Hessian of the batch's mean loss, by the Lanczos method
/// from `start` (a random vector drawn from `passes.seed` when `None`): at most
/// `max_products` products, stopping once the largest eigenvalue's estimate θ has a residual
/// ||Hx - θx|| below `tolerance` times |θ| (its eigenvector estimate x). `net` comes back
/// exactly as it was.
pub fn extreme_eigenvalues(
    net: &mut Network,
    batch: &Batch,
    passes: Passes,
    start: Option<Vec<f32>>,
    max_products: usize,
    tolerance: f64,
) -> Spectrum {
    let mut v = start.unwrap_or_else(|| {
        // Uniform in [-1, 1] on the free entries, zero on those fixed at zero.
        let mut rng = Rng::new(passes.seed ^ 0x5ba2_9e55);
        (free(net).into_iter())
            .map(|f| if f { rng.uniform_range(-1.0, 1.0) } else { 0.0 })
            .collect()
    });
    normalise(&mut v);
    // The orthonormal basis q_1, q_2, ... (f64) and the tridiagonal's diagonal and
    // off-diagonal.
    let mut basis: Vec<Vec<f64>> = vec![v.iter().map(|&x| x as f64).collect()];
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut ritz = (f64::NAN, f64::NAN, vec![1.0]);
    while alpha.len() < max_products.max(1) {
        let q = basis.last().expect("a first vector");
        let q32: Vec<f32> = q.iter().map(|&x| x as f32).collect();
        let mut w: Vec<f64> = (hessian_vector_product(net, batch, passes, &q32).iter())
            .map(|&x| x as f64)
            .collect();
        alpha.push(dot(q, &w));
        // Against every earlier vector, twice: w then holds what H adds to the span.
        for _ in 0..2 {
            for b in &basis {
                let c = dot(b, &w);
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        ritz = tridiagonal_extremes(&alpha, &beta);
        let norm = dot(&w, &w).sqrt();
        // The top Ritz pair (θ, x = Qy) has residual ||Hx - θx|| = ||w|| |y_k|, and some
        // eigenvalue of H lies within it of θ: settled once it is below `tolerance` of θ. (A
        // change of θ from one product to the next is no such bound: θ can stall a while
        // below the eigenvalue it climbs to.) A vanishing w means the span is invariant.
        let residual = norm * ritz.2.last().map_or(0.0, |y| y.abs());
        let scale = alpha.iter().map(|a| a.abs()).fold(1e-30, f64::max);
        if residual <= tolerance * ritz.0.abs() || norm <= 1e-10 * scale {
            break;
        }
        beta.push(norm);
        basis.push(w.iter().map(|x| x / norm).collect());
    }
    let products = alpha.len();
    let (largest, smallest, y) = ritz;
    // The Ritz vector sum_i y_i q_i over the vectors the tridiagonal spans.
    let mut vector = vec![0.0f64; basis[0].len()];
    for (b, &c) in basis.iter().zip(&y) {
        vector.iter_mut().zip(b).for_each(|(x, q)| *x += c * q);
    }
    let mut vector: Vec<f32> = vector.into_iter().map(|x| x as f32).collect();
    normalise(&mut vector);
    Spectrum {
        largest,
        smallest,
        vector,
        products,
    }
}

crate::simd::avx512_variant! {
    /// The inner product of `a` and `b`, in eight partial sums (lane k takes every eighth
    /// product) added in a fixed order: the additions do not wait on each other, and the
    /// Lanczos method's reorthogonalisation (two products with every earlier vector of some
    /// 60,000 values, for each new one) no longer costs as much as its Hessian products.
    fn dot = dot_lanes(a: &[f64], b: &[f64]) -> f64
}

#[inline(always)]
fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let whole = n - n % LANES;
    let mut acc = [0.0f64; LANES];
    for (x, y) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    for (k, (x, y)) in a[whole..n].iter().zip(&b[whole..n]).enumerate() {
        acc[k] += x * y;
    }
    acc.iter().sum()
}

/// The largest and smallest eigenvalues of the symmetric tridiagonal matrix of diagonal
/// `alpha` and off-diagonal `beta` (one shorter), and the largest's unit eigenvector, by
/// cyclic Jacobi rotations (a matrix of at most a few dozen rows).
fn tridiagonal_extremes(alpha: &[f64], beta: &[f64]) -> (f64, f64, Vec<f64>) {
    let k = alpha.len();
    let mut a = vec![vec![0.0f64; k]; k];
    for i in 0..k {
        a[i][i] = alpha[i];
        if i + 1 < k {
            (a[i][i + 1], a[i + 1][i]) = (beta[i], beta[i]);
        }
    }
    // The eigenvectors, as the columns of the accumulated rotations.
    let mut v: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let scale = alpha.iter().chain(beta).map(|x| x * x).sum::<f64>();
    for _sweep in 0..60 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = if theta == 0.0 {
                    1.0
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                rotate(&mut a, &mut v, p, q, c, s);
            }
        }
    }
    let (mut top, mut bottom) = (0, 0);
    for i in 1..k {
        if a[i][i] > a[top][top] {
            top = i;
        }
        if a[i][i] < a[bottom][bottom] {
            bottom = i;
        }
    }
    let y = v.iter().map(|row| row[top]).collect();
    (a[top][top], a[bottom][bottom], y)
}

/// A ← JᵀAJ and V ← VJ for the rotation J by (c, s) in the (p, q) plane.
fn rotate(a: &mut [Vec<f64>], v: &mut [Vec<f64>], p: usize, q: usize, c: f64, s: f64) {
    for row in a.iter_mut().chain(v.iter_mut()) {
        let (x, y) = (row[p], row[q]);
        row[p] = c * x - s * y;
        row[q] = s * x + c * y;
    }
    let (row_p, row_q) = (a[p].clone(), a[q].clone());
    for (j, (x, y)) in row_p.into_iter().zip(row_q).enumerate() {
        a[p][j] = c * x - s * y;
        a[q][j] = s * x + c * y;
    }
}

/// Scales `v` to unit norm (left as it is when zero); returns the norm it had.
fn normalise(v: &mut [f32]) -> f64 {
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
    }
    norm
}
