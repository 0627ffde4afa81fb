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
//! Second order ([`Layer::backward_curvature`]), the statistics taken as constants:
//! h(gamma) = sum d2y xhat^2, h(beta) = sum d2y, d2x = (gamma / sqrt(var + eps))^2 d2y.
//!
//! Shapes: x [N, C, H, W] (2d) or [N, C] (1d); gamma, beta, running statistics [C]. Sums are
//! taken in float64 in a fixed order.
//!
//! reference: Ioffe & Szegedy (2015); <https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html>

use super::kernels::reduce::{
    SIDE_BY_SIDE, standardize, sum_of_planes, sum64, sum64_pair_planes, sum64_squared_deviations,
};
use super::{Buffer, Context, Layer, Mode, Param, SharedMut, for_each_chunk};
use crate::simd::avx512_variant;
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

    /// Per channel, the mean and 1 / sqrt(var + eps) the last forward pass normalised with
    /// (the batch's in training, the running ones in evaluation).
    pub fn statistics(&self) -> (&[f32], &[f32]) {
        (&self.mean, &self.inv_std)
    }

    /// (N, C, H*W) of an input.
    fn dims(&self, x: &Tensor) -> (usize, usize, usize) {
        let (n, c) = (x.shape[0], x.shape[1]);
        assert_eq!(c, self.num_features, "{}: wrong channels", self.describe());
        (n, c, x.len() / (n * c))
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::BatchNorm
    }

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

    /// Every output: its input times the scale, and the shift.
    fn connections(&self, input: &[usize]) -> usize {
        input[1..].iter().product::<usize>() * 2
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

    /// The layer as the per-channel affine map y = gamma (x - mean) / std + beta, the
    /// statistics taken as constants: exact in evaluation, where they are the running ones;
    /// in training it drops the batch statistics' own dependence on the inputs, as the
    /// Gauss–Newton diagonal drops the other couplings between units.
    fn backward_curvature(
        &mut self,
        x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let (n, c, hw) = self.dims(x);
        let gamma = &self.weight.value.data;
        let mut d2x = d2x;
        for ni in 0..n {
            for (ci, &gamma) in gamma.iter().enumerate().take(c) {
                let (mean, inv_std) = (self.mean[ci], self.inv_std[ci]);
                let at = (ni * c + ci) * hw;
                let (xs, ds) = (&x.data[at..][..hw], &d2y.data[at..][..hw]);
                let (mut h_gamma, mut h_beta) = (0.0f32, 0.0f32);
                for (&xv, &d) in xs.iter().zip(ds) {
                    let xhat = (xv - mean) * inv_std;
                    h_gamma += d * xhat * xhat;
                    h_beta += d;
                }
                self.weight.curvature.data[ci] += h_gamma;
                self.bias.curvature.data[ci] += h_beta;
                if let Some(d2x) = d2x.as_deref_mut() {
                    let slope = gamma * inv_std;
                    for (h, &d) in d2x.data[at..][..hw].iter_mut().zip(ds) {
                        *h = slope * slope * d;
                    }
                }
            }
        }
    }

    /// Sample n's terms: sum over its positions of dy xhat (gamma) and of dy (beta). In
    /// training the samples are coupled through the batch statistics, so these are sample n's
    /// terms of the batch's gradient (which they sum to), not the gradient of its own loss.
    fn sample_terms(
        &self,
        x: &Tensor,
        dy: &Tensor,
        sq: &mut [f64],
        dot: Option<&mut [f64]>,
    ) -> bool {
        let (n, c, hw) = self.dims(x);
        let (gg, gb) = (&self.weight.grad.data, &self.bias.grad.data);
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        super::layer::for_sample_terms(n, samples_per_task(c * hw), sq, dot, |first, sq, dot| {
            for (s, sq) in sq.iter_mut().enumerate() {
                let (mut sq_sum, mut dot_sum) = (0.0f64, 0.0f64);
                for ci in 0..c {
                    let at = ((first + s) * c + ci) * hw;
                    let (xs, ds) = (&x.data[at..][..hw], &dy.data[at..][..hw]);
                    let (mut dg, mut db) = (0.0f64, 0.0f64);
                    for (&x, &d) in xs.iter().zip(ds) {
                        dg += d as f64 * standardize(x, (mean[ci], inv_std[ci])) as f64;
                        db += d as f64;
                    }
                    sq_sum += dg * dg + db * db;
                    dot_sum += dg * gg[ci] as f64 + db * gb[ci] as f64;
                }
                *sq = sq_sum;
                if let Some(d) = dot.get_mut(s) {
                    *d = dot_sum;
                }
            }
        });
        true
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
