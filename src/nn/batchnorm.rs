//! Batch normalization over the channel axis (PyTorch's `nn.BatchNorm2d` and `nn.BatchNorm1d`).
//!
//! Training: for each channel c, over the M = N*H*W values of the batch,
//!   mean_c = sum x / M, var_c = sum (x - mean_c)^2 / M (biased),
//!   xhat = (x - mean_c) / sqrt(var_c + eps), y = gamma_c xhat + beta_c,
//! and the running statistics move by momentum m = 0.1 towards the batch's, using the
//! *unbiased* variance: running_mean = (1 - m) running_mean + m mean_c,
//! running_var = (1 - m) running_var + m var_c M / (M - 1).
//! Evaluation: the running statistics replace the batch's.
//!
//! Backward (training), with dxhat = dy gamma:
//!   dgamma = sum dy xhat, dbeta = sum dy,
//!   dx = (1 / sqrt(var + eps)) (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
//!
//! Shapes: x [N, C, H, W] (2d) or [N, C] (1d); gamma, beta, running statistics [C]. Sums are
//! taken in float64 in a fixed order.
//!
//! reference: Ioffe & Szegedy (2015); <https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html>

use super::{Buffer, Context, Layer, Mode, Param, SharedMut, avx512_variant, for_each_chunk};
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct BatchNorm {
    pub num_features: usize,
    pub eps: f32,
    pub momentum: f32,
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: i64,
    /// Whether the layer follows a convolution (2d) or a linear layer (1d); only for naming.
    spatial: bool,
    /// Per channel: the mean and 1 / sqrt(var + eps) the last forward pass used (backward
    /// recomputes the normalised input from them, see [`standardize`]).
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    training: bool,
}

/// Samples per parallel task for items of `len` values: a few thousand values per task.
fn samples_per_task(len: usize) -> usize {
    (4096 / len.max(1)).max(1)
}

/// Sum in float64 of `f(v)` over `values`, in 8 interleaved partial sums (so the loop
/// vectorises) combined in a fixed order: the same result on every run and thread count.
#[inline(always)]
fn sum64_of(values: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v as f64);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    fold8(acc) + tail
}

#[inline(always)]
fn sum64_plain(values: &[f32]) -> f64 {
    sum64_of(values, |v| v)
}

#[inline(always)]
fn sum64_squared_deviations_plain(values: &[f32], mean: f64) -> f64 {
    sum64_of(values, |v| (v - mean) * (v - mean))
}

/// `(0..channels).map(f)`, channels in parallel.
fn per_channel(channels: usize, f: impl Fn(usize) -> (f64, f64) + Sync) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); channels];
    let slots = SharedMut::new(&mut out);
    for_each_chunk(channels, 1, |ci, _, _| {
        // SAFETY: each task writes its own channel's slot.
        unsafe { slots.range(ci, 1)[0] = f(ci) };
    });
    out
}

/// Planes shorter than this have no 8 values to sum in a vector: the plain loops, inlined,
/// sum them quicker than a call to the vector code (the same bits, see [`wide`]).
const WIDE_FROM: usize = 8;

/// The sums of the values of P planes of equal length, each as [`sum64_of`].
#[inline]
fn sum64<const P: usize>(planes: [&[f32]; P]) -> [f64; P] {
    #[cfg(target_arch = "x86_64")]
    if planes[0].len() >= WIDE_FROM && super::kernels::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64(planes) };
    }
    planes.map(sum64_plain)
}

/// The sums of (v - mean)^2 of P planes of equal length, each as [`sum64_of`].
#[inline]
fn sum64_squared_deviations<const P: usize>(planes: [&[f32]; P], mean: f64) -> [f64; P] {
    #[cfg(target_arch = "x86_64")]
    if planes[0].len() >= WIDE_FROM && super::kernels::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64_squared_deviations(planes, mean) };
    }
    planes.map(|p| sum64_squared_deviations_plain(p, mean))
}

/// `(0..n).map(|i| sums([plane(i)])[0]).sum()`, where `sums` sums P planes of equal length
/// at once and gives each the value it gives a plane alone: the same result, but P chains of
/// additions run side by side (each of [`sum64_of`]'s waits on its own last addition, which
/// a lone plane of 196 values spends most of its time doing). A last group of fewer than P
/// planes is filled up with its last plane, whose extra sums are dropped.
fn sum_of_planes<'a, const P: usize>(
    n: usize,
    plane: impl Fn(usize) -> &'a [f32],
    sums: impl Fn([&'a [f32]; P]) -> [f64; P],
) -> f64 {
    (0..n.div_ceil(P))
        .flat_map(|g| {
            let (first, count) = (g * P, (n - g * P).min(P));
            sums(std::array::from_fn(|i| plane(first + i.min(count - 1))))
                .into_iter()
                .take(count)
        })
        .sum()
}

/// Planes summed side by side by [`sum_of_planes`].
const SIDE_BY_SIDE: usize = 4;

/// (sum of dy, sum of dy * xhat) over one channel's planes of `hw` values, whose statistics
/// are `stats`: the `n` planes that start at `first` and every `stride` values after, each as
/// [`sum64_pair_plain`], added plane after plane. One call per channel, so that small planes
/// (1 x 1 after conv3, or batch norm 1d) do not pay a call for each value.
fn sum64_pair_planes(
    (dy, x): (&[f32], &[f32]),
    (n, stride, hw): (usize, usize, usize),
    first: usize,
    stats: (f32, f32),
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if hw >= WIDE_FROM && super::kernels::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64_pair_planes((dy, x), (n, stride, hw), first, stats) };
    }
    fold_planes(n, stride, first, |r| {
        sum64_pair_plain(&dy[r..][..hw], &x[r..][..hw], stats)
    })
}

/// `(0..n).map(|i| pair(first + i * stride))`, added up in order.
#[inline(always)]
fn fold_planes(
    n: usize,
    stride: usize,
    first: usize,
    pair: impl Fn(usize) -> (f64, f64),
) -> (f64, f64) {
    (0..n)
        .map(|i| pair(first + i * stride))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The float64 sums with AVX-512 intrinsics: the eight partial sums of [`sum64_of`] are the
/// eight lanes of one register, each value converted and added in the same order as the
/// plain loops, so the results are the same bits. (Compiled for AVX-512 from the plain
/// loops, the compiler split the conversions into 128-bit pieces, 4x slower.)
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    /// Lane sums of each plane in chunks of 8, each chunk mapped by `f` first, the planes
    /// side by side; the remainder (fewer than 8) is left to the caller, as the plain loops
    /// sum it separately.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn lanes<const P: usize>(planes: [&[f32]; P], f: impl Fn(__m512d) -> __m512d) -> [[f64; 8]; P] {
        debug_assert!(planes.iter().all(|p| p.len() == planes[0].len()));
        let full = planes.map(<[f32]>::len).into_iter().min().unwrap_or(0) / 8 * 8;
        let mut acc = [_mm512_setzero_pd(); P];
        let mut i = 0;
        while i < full {
            for (acc, plane) in acc.iter_mut().zip(planes) {
                // SAFETY: i + 8 <= full <= the plane's length.
                let v = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(plane.as_ptr().add(i)) });
                *acc = _mm512_add_pd(*acc, f(v));
            }
            i += 8;
        }
        acc.map(|acc| {
            let mut out = [0.0; 8];
            // SAFETY: `out` holds 8 values.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), acc) };
            out
        })
    }

    /// As [`super::sum64`]; the planes must have equal lengths.
    #[target_feature(enable = "avx512f")]
    pub fn sum64<const P: usize>(planes: [&[f32]; P]) -> [f64; P] {
        let lanes = lanes(planes, |v| v);
        std::array::from_fn(|p| {
            let values = planes[p];
            let tail: f64 = values[values.len() / 8 * 8..]
                .iter()
                .map(|&v| v as f64)
                .sum();
            super::fold8(lanes[p]) + tail
        })
    }

    /// As [`super::sum64_squared_deviations`]; the planes must have equal lengths.
    #[target_feature(enable = "avx512f")]
    pub fn sum64_squared_deviations<const P: usize>(planes: [&[f32]; P], mean: f64) -> [f64; P] {
        let m = _mm512_set1_pd(mean);
        let square = |v: __m512d| {
            let d = _mm512_sub_pd(v, m);
            _mm512_mul_pd(d, d)
        };
        let lanes = lanes(planes, square);
        std::array::from_fn(|p| {
            let values = planes[p];
            let tail: f64 = values[values.len() / 8 * 8..]
                .iter()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum();
            super::fold8(lanes[p]) + tail
        })
    }

    /// As [`super::sum64_pair_planes`].
    #[target_feature(enable = "avx512f")]
    pub fn sum64_pair_planes(
        (dy, x): (&[f32], &[f32]),
        (n, stride, hw): (usize, usize, usize),
        first: usize,
        stats: (f32, f32),
    ) -> (f64, f64) {
        super::fold_planes(n, stride, first, |r| {
            sum64_pair(&dy[r..][..hw], &x[r..][..hw], stats)
        })
    }

    /// As [`super::sum64_pair_plain`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn sum64_pair(dy: &[f32], x: &[f32], stats: (f32, f32)) -> (f64, f64) {
        let n = dy.len().min(x.len());
        let full = n / 8 * 8;
        let (mean, inv_std) = (_mm256_set1_ps(stats.0), _mm256_set1_ps(stats.1));
        let (mut a, mut b) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i < full {
            // SAFETY: i + 8 <= full <= the length of both slices.
            let (d, x) = unsafe {
                (
                    _mm256_loadu_ps(dy.as_ptr().add(i)),
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                )
            };
            // xhat as super::standardize rounds it: a subtraction, then a multiplication.
            let xhat = _mm256_mul_ps(_mm256_sub_ps(x, mean), inv_std);
            a = _mm512_add_pd(a, _mm512_cvtps_pd(d));
            b = _mm512_add_pd(b, _mm512_cvtps_pd(_mm256_mul_ps(d, xhat)));
            i += 8;
        }
        let (mut la, mut lb) = ([0.0; 8], [0.0; 8]);
        // SAFETY: both arrays hold 8 values.
        unsafe {
            _mm512_storeu_pd(la.as_mut_ptr(), a);
            _mm512_storeu_pd(lb.as_mut_ptr(), b);
        }
        let (mut ta, mut tb) = (0.0f64, 0.0f64);
        for (&d, &x) in dy[full..n].iter().zip(&x[full..n]) {
            ta += d as f64;
            tb += (d * super::standardize(x, stats)) as f64;
        }
        (super::fold8(la) + ta, super::fold8(lb) + tb)
    }
}

/// The 8 partial sums of [`sum64_of`] combined pairwise, in a fixed order.
#[inline(always)]
fn fold8(v: [f64; 8]) -> f64 {
    ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
}

/// (sum of dy, sum of dy * xhat) in float64, as [`sum64_of`], xhat recomputed from x; each
/// product is rounded to float32 first, as the element-wise product PyTorch sums.
#[inline(always)]
fn sum64_pair_plain(dy: &[f32], x: &[f32], stats: (f32, f32)) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; 8], [0.0f64; 8]);
    let (mut dc, mut xc) = (dy.chunks_exact(8), x.chunks_exact(8));
    for (d, x) in (&mut dc).zip(&mut xc) {
        for i in 0..8 {
            a[i] += d[i] as f64;
            b[i] += (d[i] * standardize(x[i], stats)) as f64;
        }
    }
    let (mut ta, mut tb) = (0.0f64, 0.0f64);
    for (&d, &x) in dc.remainder().iter().zip(xc.remainder()) {
        ta += d as f64;
        tb += (d * standardize(x, stats)) as f64;
    }
    (fold8(a) + ta, fold8(b) + tb)
}

/// The normalised value xhat = (x - mean) inv_std. Forward does not keep it: backward
/// computes it again from the input, with the same two roundings, so the same bits (and
/// forward writes one plane instead of two).
#[inline(always)]
fn standardize(x: f32, (mean, inv_std): (f32, f32)) -> f32 {
    (x - mean) * inv_std
}

/// Per channel: (mean, 1 / sqrt(var + eps)) and (gamma, beta), or the input gradient's
/// scale and means (see [`input_grad_plain`]).
type PerChannel<'a> = (&'a [f32], &'a [f32]);

/// The normalisation of whole samples (`[C, hw]` each, as many as `x` holds), plane by
/// plane: y = gamma xhat + beta. One call per task, so that small planes (1 x 1 after conv3,
/// or batch norm 1d) do not pay a call for each value.
#[inline(always)]
fn normalize_plain(x: &[f32], hw: usize, stats: PerChannel, affine: PerChannel, y: &mut [f32]) {
    let c = stats.0.len();
    if hw == 1 {
        // A value per channel: one loop over the channels, which vectorises.
        for (x, y) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            let channels = stats
                .0
                .iter()
                .zip(stats.1)
                .zip(affine.0.iter().zip(affine.1));
            for ((y, &x), ((&mean, &inv_std), (&gamma, &beta))) in y.iter_mut().zip(x).zip(channels)
            {
                *y = gamma * standardize(x, (mean, inv_std)) + beta;
            }
        }
        return;
    }
    for (x, y) in x.chunks_exact(c * hw).zip(y.chunks_exact_mut(c * hw)) {
        for (ci, (x, y)) in x.chunks_exact(hw).zip(y.chunks_exact_mut(hw)).enumerate() {
            let (stats, (gamma, beta)) = ((stats.0[ci], stats.1[ci]), (affine.0[ci], affine.1[ci]));
            for (y, &x) in y.iter_mut().zip(x) {
                *y = gamma * standardize(x, stats) + beta;
            }
        }
    }
}

avx512_variant! {
    fn normalize = normalize_plain(x: &[f32], hw: usize, stats: PerChannel, affine: PerChannel, y: &mut [f32])
}

/// The input gradient of whole samples (`[C, hw]` each, as many as `dy` holds), plane by
/// plane: scale (dy - mean_dy - xhat mean_dy_xhat) in training, scale dy in evaluation,
/// with each channel's scale = gamma inv_std and, in training, its means of dy and of
/// dy xhat. One call per task, as [`normalize_plain`].
#[inline(always)]
fn input_grad_plain(
    (dy, x): (&[f32], &[f32]),
    hw: usize,
    stats: PerChannel,
    scales: &[f32],
    means: Option<PerChannel>,
    dx: &mut [f32],
) {
    let c = scales.len();
    if hw == 1 {
        // A value per channel: one loop over the channels, which vectorises.
        for ((dy, x), dx) in dy
            .chunks_exact(c)
            .zip(x.chunks_exact(c))
            .zip(dx.chunks_exact_mut(c))
        {
            let values = dx.iter_mut().zip(dy).zip(x).zip(scales);
            match means {
                Some((mean_dy, mean_dy_xhat)) => {
                    let channels = stats
                        .0
                        .iter()
                        .zip(stats.1)
                        .zip(mean_dy.iter().zip(mean_dy_xhat));
                    for ((((dx, &d), &x), &scale), ((&mean, &inv_std), (&m_dy, &m_dy_xhat))) in
                        values.zip(channels)
                    {
                        let xhat = standardize(x, (mean, inv_std));
                        *dx = scale * (d - m_dy - xhat * m_dy_xhat);
                    }
                }
                None => {
                    for (((dx, &d), _), &scale) in values {
                        *dx = scale * d;
                    }
                }
            }
        }
        return;
    }
    for ((dy, x), dx) in dy
        .chunks_exact(c * hw)
        .zip(x.chunks_exact(c * hw))
        .zip(dx.chunks_exact_mut(c * hw))
    {
        for (ci, dx) in dx.chunks_exact_mut(hw).enumerate() {
            let (dy, x, scale) = (&dy[ci * hw..][..hw], &x[ci * hw..][..hw], scales[ci]);
            match means {
                Some((mean_dy, mean_dy_xhat)) => {
                    let (stats, means) =
                        ((stats.0[ci], stats.1[ci]), (mean_dy[ci], mean_dy_xhat[ci]));
                    for ((dx, &d), &x) in dx.iter_mut().zip(dy).zip(x) {
                        *dx = scale * (d - means.0 - standardize(x, stats) * means.1);
                    }
                }
                None => {
                    for (dx, &d) in dx.iter_mut().zip(dy) {
                        *dx = scale * d;
                    }
                }
            }
        }
    }
}

avx512_variant! {
    fn input_grad = input_grad_plain(dy_x: (&[f32], &[f32]), hw: usize, stats: PerChannel, scales: &[f32], means: Option<PerChannel>, dx: &mut [f32])
}

impl BatchNorm {
    /// PyTorch's defaults: gamma 1, beta 0, running mean 0, running variance 1, eps 1e-5,
    /// momentum 0.1.
    pub fn new(num_features: usize, spatial: bool) -> Self {
        BatchNorm {
            num_features,
            eps: 1e-5,
            momentum: 0.1,
            weight: Param::new(
                "weight",
                Tensor::from_vec(&[num_features], vec![1.0; num_features]),
            ),
            bias: Param::new("bias", Tensor::zeros(&[num_features])),
            running_mean: Tensor::zeros(&[num_features]),
            running_var: Tensor::from_vec(&[num_features], vec![1.0; num_features]),
            num_batches_tracked: 0,
            spatial,
            mean: vec![0.0; num_features],
            inv_std: vec![0.0; num_features],
            training: false,
        }
    }

    /// (N, C, H*W) of an input.
    fn dims(&self, x: &Tensor) -> (usize, usize, usize) {
        let (n, c) = (x.shape[0], x.shape[1]);
        assert_eq!(c, self.num_features, "{}: wrong channels", self.describe());
        (n, c, x.len() / (n * c))
    }
}

impl Layer for BatchNorm {
    fn describe(&self) -> String {
        let d = if self.spatial { "2d" } else { "1d" };
        format!(
            "BatchNorm{d}({}, eps={}, momentum={})",
            self.num_features, self.eps, self.momentum
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        input.to_vec()
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Context) {
        let (n, c, hw) = self.dims(x);
        let m = n * hw;
        self.training = ctx.mode == Mode::Train;
        let at = |ni: usize, ci: usize| (ni * c + ci) * hw;
        if self.training {
            // Batch statistics per channel (channels in parallel, each summed in a fixed
            // order in float64), then the running statistics.
            let stats = per_channel(c, |ci| {
                let plane = |ni: usize| &x.data[at(ni, ci)..][..hw];
                let sum = sum_of_planes::<SIDE_BY_SIDE>(n, plane, sum64);
                let mean = sum / m as f64;
                let squares = |p| sum64_squared_deviations(p, mean);
                let sq = sum_of_planes::<SIDE_BY_SIDE>(n, plane, squares);
                (mean, sq)
            });
            let mom = self.momentum as f64;
            for (ci, &(mean, sq)) in stats.iter().enumerate() {
                let var = sq / m as f64;
                let unbiased = if m > 1 { sq / (m - 1) as f64 } else { var };
                let rm = &mut self.running_mean.data[ci];
                *rm = ((1.0 - mom) * *rm as f64 + mom * mean) as f32;
                let rv = &mut self.running_var.data[ci];
                *rv = ((1.0 - mom) * *rv as f64 + mom * unbiased) as f32;
                self.mean[ci] = mean as f32;
                self.inv_std[ci] = (1.0 / (var + self.eps as f64).sqrt()) as f32;
            }
            self.num_batches_tracked += 1;
        } else {
            for ci in 0..c {
                let var = self.running_var.data[ci];
                self.mean[ci] = self.running_mean.data[ci];
                self.inv_std[ci] = 1.0 / (var + self.eps).sqrt();
            }
        }
        // Normalise, samples in parallel.
        let ys = SharedMut::new(&mut y.data);
        let stats = (&self.mean[..], &self.inv_std[..]);
        let affine = (&self.weight.value.data[..], &self.bias.value.data[..]);
        let len = c * hw;
        for_each_chunk(n, samples_per_task(len), |_, first, count| {
            // SAFETY: each task owns its samples.
            let y = unsafe { ys.range(first * len, count * len) };
            normalize(&x.data[first * len..][..count * len], hw, stats, affine, y);
        });
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let (n, c, hw) = self.dims(x);
        let m = (n * hw) as f64;
        let at = |ni: usize, ci: usize| (ni * c + ci) * hw;
        // Per channel, in parallel: sum of dy and of dy * xhat, in float64 in a fixed order.
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        let sums = per_channel(c, |ci| {
            let stats = (mean[ci], inv_std[ci]);
            sum64_pair_planes((&dy.data, &x.data), (n, c * hw, hw), at(0, ci), stats)
        });
        for (ci, &(sum_dy, sum_dy_xhat)) in sums.iter().enumerate() {
            self.weight.grad.data[ci] += sum_dy_xhat as f32;
            self.bias.grad.data[ci] += sum_dy as f32;
        }
        let Some(dx) = dx else { return };
        let gamma = &self.weight.value.data;
        let scales: Vec<f32> = (0..c).map(|ci| gamma[ci] * inv_std[ci]).collect();
        let (mean_dy, mean_dy_xhat): (Vec<f32>, Vec<f32>) = sums
            .iter()
            .map(|&(sum_dy, sum_dy_xhat)| ((sum_dy / m) as f32, (sum_dy_xhat / m) as f32))
            .unzip();
        let means = self.training.then_some((&mean_dy[..], &mean_dy_xhat[..]));
        let stats = (&mean[..], &inv_std[..]);
        let dxs = SharedMut::new(&mut dx.data);
        let len = c * hw;
        for_each_chunk(n, samples_per_task(len), |_, first, count| {
            let (r, count) = (first * len, count * len);
            // SAFETY: each task owns its samples.
            let dx = unsafe { dxs.range(r, count) };
            let dy_x = (&dy.data[r..][..count], &x.data[r..][..count]);
            input_grad(dy_x, hw, stats, &scales, means, dx);
        });
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn buffers(&self) -> Vec<(&'static str, Buffer)> {
        vec![
            ("running_mean", Buffer::F32(self.running_mean.clone())),
            ("running_var", Buffer::F32(self.running_var.clone())),
            ("num_batches_tracked", Buffer::I64(self.num_batches_tracked)),
        ]
    }

    fn set_buffer(&mut self, name: &str, value: Buffer) -> Result<(), String> {
        let c = self.num_features;
        match (name, value) {
            ("running_mean", Buffer::F32(t)) if t.len() == c => self.running_mean.data = t.data,
            ("running_var", Buffer::F32(t)) if t.len() == c => self.running_var.data = t.data,
            ("num_batches_tracked", Buffer::I64(v)) => self.num_batches_tracked = v,
            (name, _) => {
                return Err(format!(
                    "{}: buffer {name} has the wrong type or size (expected [{c}] float32, or an int64 count)",
                    self.describe()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planes summed side by side give the same total, bit for bit, as summed one after
    /// another, for batch sizes with and without a remainder of the group.
    #[test]
    fn planes_side_by_side_sum_as_one_after_another() {
        let mut rng = crate::rng::Rng::new(9);
        for len in [29, 196] {
            for n in 0..10 {
                let x: Vec<f32> = (0..n * len).map(|_| rng.uniform_range(-3.0, 5.0)).collect();
                let plane = |i: usize| &x[i * len..][..len];
                let mean = 0.377;
                let alone: f64 = (0..n).map(|i| sum64([plane(i)])[0]).sum();
                let together = sum_of_planes::<SIDE_BY_SIDE>(n, plane, sum64);
                assert_eq!(alone.to_bits(), together.to_bits(), "sum, {n} x {len}");
                let alone: f64 = (0..n)
                    .map(|i| sum64_squared_deviations([plane(i)], mean)[0])
                    .sum();
                let squares = |p| sum64_squared_deviations(p, mean);
                let together = sum_of_planes::<SIDE_BY_SIDE>(n, plane, squares);
                assert_eq!(alone.to_bits(), together.to_bits(), "squares, {n} x {len}");
                // And each plane's sum as the plain loop's.
                for i in 0..n {
                    let four = sum64([plane(i), plane(0), plane(i), plane(n - 1)]);
                    assert_eq!(four[0].to_bits(), sum64_plain(plane(i)).to_bits());
                    assert_eq!(four[3].to_bits(), sum64_plain(plane(n - 1)).to_bits());
                }
            }
        }
    }

    /// The AVX-512 sums give the same bits as the plain loops, on lengths with and without a
    /// remainder of 8.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_sums_equal_the_plain_loops() {
        if !crate::nn::kernels::available() {
            return;
        }
        let mut rng = crate::rng::Rng::new(4);
        for len in [0, 3, 8, 29, 196, 200] {
            let x: Vec<f32> = (0..len).map(|_| rng.uniform_range(-3.0, 5.0)).collect();
            let y: Vec<f32> = (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let mean = 0.7311;
            // SAFETY: AVX-512F is present (checked above).
            let wide = unsafe {
                (
                    wide::sum64([&x])[0],
                    wide::sum64_squared_deviations([&x], mean)[0],
                    wide::sum64_pair(&x, &y, (0.31, 1.7)),
                )
            };
            let plain = (
                sum64_plain(&x),
                sum64_squared_deviations_plain(&x, mean),
                sum64_pair_plain(&x, &y, (0.31, 1.7)),
            );
            assert_eq!(wide.0.to_bits(), plain.0.to_bits(), "sum, {len}");
            assert_eq!(wide.1.to_bits(), plain.1.to_bits(), "squares, {len}");
            assert_eq!(wide.2.0.to_bits(), plain.2.0.to_bits(), "pair, {len}");
            assert_eq!(wide.2.1.to_bits(), plain.2.1.to_bits(), "pair, {len}");
        }
    }
}
