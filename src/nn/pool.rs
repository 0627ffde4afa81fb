//! Max and average pooling over K x K windows with stride s, no padding (PyTorch's
//! `nn.MaxPool2d(K)` and `nn.AvgPool2d(K)`, whose stride defaults to K).
//!
//! max: y[n, c, i, j] = max_{u,v < K} x[n, c, i*s + u, j*s + v]; the backward pass routes dy to
//! the first maximal input of each window (PyTorch's tie rule), remembered by the forward pass.
//! avg: y = mean of the window; the backward pass spreads dy / K^2 over it.
//! Second order ([`Layer::backward_curvature`]): max routes d2y as dy; avg spreads d2y / K^4.
//!
//! Shapes: x [N, C, H, W], y [N, C, OH, OW] with OH = (H - K) / s + 1.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html>,
//! <https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html>

use super::{Context, Layer, SharedMut, for_each_chunk};
use crate::tensor::Tensor;

/// Which statistic of the window a pooling layer takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: usize,
    pub stride: usize,
    /// Cached by the max forward pass: the flat input index (within its plane) of each
    /// output's maximum.
    argmax: Vec<u32>,
}

/// Samples per parallel chunk: pooling is memory-bound and cheap.
const CHUNK: usize = 8;

impl Pool2d {
    pub fn new(kind: PoolKind, kernel: usize) -> Self {
        Pool2d {
            kind,
            kernel,
            stride: kernel,
            argmax: Vec::new(),
        }
    }

    fn out_side(&self, side: usize) -> usize {
        (side - self.kernel) / self.stride + 1
    }
}

/// Max pooling of `planes` planes of `h x w`; writes `y` and the argmax of each output. With
/// `relu`, `y` is the ReLU of the maximum (the pooling of the ReLU's output).
pub fn maxpool_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (k, s): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
    relu: bool,
) {
    if (k, s) == (2, 2) {
        #[cfg(target_arch = "x86_64")]
        if w <= 32 && crate::simd::available() {
            // SAFETY: AVX-512F is present and w <= 32.
            return unsafe {
                super::kernels::pool_relu::maxpool2x2_forward(x, planes, (h, w), y, argmax, relu)
            };
        }
        maxpool2x2_forward(x, planes, (h, w), y, argmax);
    } else {
        maxpool_loops(x, planes, (h, w), (k, s), y, argmax);
    }
    if relu {
        relu_in_place(&mut y[..planes * ((h - k) / s + 1) * ((w - k) / s + 1)]);
    }
}

/// Any window and stride of [`maxpool_forward`], as plain loops.
fn maxpool_loops(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (k, s): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for i in 0..oh {
            for j in 0..ow {
                let mut best = f32::NEG_INFINITY;
                let mut best_at = (i * s) * w + j * s;
                for u in 0..k {
                    for v in 0..k {
                        let at = (i * s + u) * w + j * s + v;
                        let val = plane[at];
                        if val > best || val.is_nan() {
                            best = val;
                            best_at = at;
                            if val.is_nan() {
                                break;
                            }
                        }
                    }
                }
                let o = (p * oh + i) * ow + j;
                y[o] = best;
                argmax[o] = best_at as u32;
            }
        }
    }
}

/// The 2x2, stride-2 case of [`maxpool_forward`] (LeNet's): branch-free selects the compiler
/// vectorises. Same tie rule (first maximum in row-major order) and NaN propagation.
fn maxpool2x2_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh, ow) = (h / 2, w / 2);
    // PyTorch's rule: a candidate replaces the running maximum when it is larger or NaN.
    let pick = |best: f32, cand: f32| (cand > best || cand.is_nan()) && !best.is_nan();
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        let out = p * oh * ow;
        for i in 0..oh {
            let (top, bottom) = (
                &plane[2 * i * w..][..2 * ow],
                &plane[(2 * i + 1) * w..][..2 * ow],
            );
            let y = &mut y[out + i * ow..][..ow];
            let argmax = &mut argmax[out + i * ow..][..ow];
            let base = (2 * i * w) as u32;
            for (j, ((y, at), (t, b))) in y
                .iter_mut()
                .zip(argmax.iter_mut())
                .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
                .enumerate()
            {
                let col = base + 2 * j as u32;
                let (mut best, mut idx) = (t[0], col);
                if pick(best, t[1]) {
                    (best, idx) = (t[1], col + 1);
                }
                if pick(best, b[0]) {
                    (best, idx) = (b[0], col + w as u32);
                }
                if pick(best, b[1]) {
                    (best, idx) = (b[1], col + w as u32 + 1);
                }
                *y = best;
                *at = idx;
            }
        }
    }
}

/// Routes each output gradient to its window's maximum; `dx` is overwritten. With
/// `relu_out`, the outputs of a pooling that folded the ReLU before it, an output that is not
/// positive (its whole window was at most zero) passes nothing, as the ReLU would stop it.
pub fn maxpool_backward(
    dy: &[f32],
    argmax: &[u32],
    planes: usize,
    (h, w): (usize, usize),
    (k, s): (usize, usize),
    dx: &mut [f32],
    relu_out: Option<&[f32]>,
) {
    #[cfg(target_arch = "x86_64")]
    if (k, s) == (2, 2) && h % 2 == 0 && w % 2 == 0 && w <= 32 && crate::simd::available() {
        // SAFETY: AVX-512F is present; the windows tile the planes exactly, w <= 32.
        return unsafe {
            super::kernels::pool_relu::maxpool2x2_backward(
                dy,
                argmax,
                relu_out,
                planes,
                (h, w),
                (w, h * w),
                dx,
            )
        };
    }
    // The argmax indices locate each window's maximum, so the general path needs neither
    // the window nor the stride.
    let _ = (k, s);
    let plane_in = h * w;
    dx.fill(0.0);
    let plane_out = dy.len() / planes;
    for p in 0..planes {
        let dxp = &mut dx[p * plane_in..(p + 1) * plane_in];
        let range = p * plane_out..(p + 1) * plane_out;
        for (o, (&d, &at)) in dy[range.clone()].iter().zip(&argmax[range]).enumerate() {
            // A select, not a branch: the sign of an output is as good as random.
            let passed = relu_out.is_none_or(|y| y[p * plane_out + o] > 0.0);
            dxp[at as usize] += if passed { d } else { 0.0 };
        }
    }
}

/// What the backward pass of a 2x2 max pooling that folded the ReLU before it needs, so
/// that the layer before both can make its own output gradient sample by sample, inside its
/// own parallel tasks ([`super::conv2d::Conv2d::backward_through_maxpool`]): one pass over the batch
/// instead of two, each chunk's gradient made just before it is used.
pub struct PooledGrad<'a> {
    /// The pooling's output gradient, `[N, C, H/2, W/2]`.
    pub dy: &'a [f32],
    /// The pooling's output (after the folded ReLU), shaped as `dy`.
    pub y: &'a [f32],
    /// Each output's argmax within its input plane.
    pub argmax: &'a [u32],
    pub channels: usize,
    /// Sides of the pooling's input planes (even).
    pub plane: (usize, usize),
}

impl PooledGrad<'_> {
    /// Writes the gradient with respect to the pooling's input (the ReLU's input) for samples
    /// `first .. first + samples` into `dx`, as the pooling's own backward pass would: planes
    /// of `h x w`, one after the other.
    pub fn expand(&self, first: usize, samples: usize, dx: &mut [f32]) {
        let (h, w) = self.plane;
        let in_len = self.channels * h * w;
        for (s, dx) in (first..first + samples).zip(dx.chunks_exact_mut(in_len)) {
            self.expand_padded(s, (w, h * w), dx);
        }
    }

    /// Writes sample `sample`'s gradient as [`Self::expand`] does, each channel laid out
    /// `(ld, plane)`: row r at `r * ld`, zeros past its `w` values and past the last row, up
    /// to `plane` (the layout of [`super::kernels::pool_relu::maxpool2x2_backward`]; `(w, h * w)` is the
    /// plain one).
    pub fn expand_padded(&self, sample: usize, (ld, plane): (usize, usize), dx: &mut [f32]) {
        let (h, w) = self.plane;
        let out_len = self.channels * (h / 2) * (w / 2);
        let range = sample * out_len..(sample + 1) * out_len;
        let (dy, argmax, y) = (
            &self.dy[range.clone()],
            &self.argmax[range.clone()],
            &self.y[range],
        );
        assert!(w <= ld && h * ld <= plane && dx.len() >= self.channels * plane);
        #[cfg(target_arch = "x86_64")]
        if ld <= 32 && crate::simd::available() {
            // SAFETY: AVX-512F is present; the sides are even (the pooling's windows tile the
            // plane), ld <= 32 and the lengths were checked above.
            return unsafe {
                super::kernels::pool_relu::maxpool2x2_backward(
                    dy,
                    argmax,
                    Some(y),
                    self.channels,
                    (h, w),
                    (ld, plane),
                    dx,
                )
            };
        }
        dx[..self.channels * plane].fill(0.0);
        let per_plane = out_len / self.channels;
        for (o, ((&d, &at), &y)) in dy.iter().zip(argmax).zip(y).enumerate() {
            let at = at as usize;
            let p = o / per_plane;
            dx[p * plane + at / w * ld + at % w] = if y > 0.0 { d } else { 0.0 };
        }
    }
}

/// ReLU in place, as [`super::activation`] computes it: values that are not greater than
/// zero (and not NaN) become +0.
fn relu_in_place(y: &mut [f32]) {
    for v in y {
        if !(*v > 0.0 || v.is_nan()) {
            *v = 0.0;
        }
    }
}

/// Average pooling of `planes` planes of `h x w`.
pub fn avgpool_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (k, s): (usize, usize),
    y: &mut [f32],
) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let scale = 1.0 / (k * k) as f32;
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for i in 0..oh {
            for j in 0..ow {
                let mut sum = 0.0;
                for u in 0..k {
                    for v in 0..k {
                        sum += plane[(i * s + u) * w + j * s + v];
                    }
                }
                y[(p * oh + i) * ow + j] = sum * scale;
            }
        }
    }
}

/// Spreads each output gradient evenly over its window; `dx` is overwritten.
pub fn avgpool_backward(
    dy: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (k, s): (usize, usize),
    dx: &mut [f32],
) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let scale = 1.0 / (k * k) as f32;
    dx.fill(0.0);
    for p in 0..planes {
        let plane = &mut dx[p * h * w..(p + 1) * h * w];
        for i in 0..oh {
            for j in 0..ow {
                let d = dy[(p * oh + i) * ow + j] * scale;
                for u in 0..k {
                    for v in 0..k {
                        plane[(i * s + u) * w + j * s + v] += d;
                    }
                }
            }
        }
    }
}

impl Pool2d {
    /// Whether this is max pooling, which can take the ReLU before it in its own pass
    /// ([`Pool2d::forward_after_relu`]).
    pub fn is_max(&self) -> bool {
        self.kind == PoolKind::Max
    }

    /// Computes `y` = this max pooling applied to `relu(x)` in one pass over `x`, without
    /// writing the ReLU's output: max(relu(a), relu(b), ...) = relu(max(a, b, ...)), and the
    /// first maximum of the window is the same element whenever the maximum is positive (when
    /// it is not, the ReLU's gradient is zero anyway), so pooling first leaves a quarter of the
    /// values for the ReLU and writes no full-size activation.
    pub fn forward_after_relu(&mut self, x: &Tensor, y: &mut Tensor) {
        assert!(self.is_max(), "only max pooling folds the ReLU before it");
        self.max_forward(x, y, true);
    }

    /// The backward pass of [`Pool2d::forward_after_relu`]: `dx` is the gradient with respect
    /// to `x`, the ReLU's input.
    pub fn backward_after_relu(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: &mut Tensor) {
        self.max_backward(x, dy, Some(y), dx);
    }

    /// A 2x2, stride-2 max pooling's argmax cache (the flat index within its input plane of
    /// each window's maximum, as [`maxpool_forward`] writes it), for a convolution before it
    /// that pools in its own pass; None for every other pooling.
    pub fn maxpool2x2_argmax(&mut self) -> Option<&mut Vec<u32>> {
        self.is_max2x2().then_some(&mut self.argmax)
    }

    /// Whether this is 2x2, stride-2 max pooling.
    pub fn is_max2x2(&self) -> bool {
        self.is_max() && self.kernel == 2 && self.stride == 2
    }

    /// Max pooling of the whole batch (of the ReLU of `x` with `relu`).
    fn max_forward(&mut self, x: &Tensor, y: &mut Tensor, relu: bool) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (in_len, out_len) = (c * h * w, y.item_len());
        let ks = (self.kernel, self.stride);
        let ys = SharedMut::new(&mut y.data);
        self.argmax.resize(n * out_len, 0);
        let am = SharedMut::new(&mut self.argmax);
        for_each_chunk(n, CHUNK, |_, first, samples| {
            // SAFETY: disjoint sample ranges.
            let y = unsafe { ys.range(first * out_len, samples * out_len) };
            let a = unsafe { am.range(first * out_len, samples * out_len) };
            let x = &x.data[first * in_len..][..samples * in_len];
            maxpool_forward(x, samples * c, (h, w), ks, y, a, relu);
        });
    }

    /// Max pooling's backward over the whole batch; with `relu_out`, that of a pooling that
    /// folded the ReLU before it (see [`maxpool_backward`]).
    fn max_backward(&self, x: &Tensor, dy: &Tensor, relu_out: Option<&Tensor>, dx: &mut Tensor) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (in_len, out_len) = (c * h * w, dy.item_len());
        let ks = (self.kernel, self.stride);
        let dxs = SharedMut::new(&mut dx.data);
        let argmax = &self.argmax;
        for_each_chunk(n, CHUNK, |_, first, samples| {
            // SAFETY: disjoint sample ranges.
            let dx = unsafe { dxs.range(first * in_len, samples * in_len) };
            let range = first * out_len..(first + samples) * out_len;
            let relu_out = relu_out.map(|y| &y.data[range.clone()]);
            let (dy, a) = (&dy.data[range.clone()], &argmax[range]);
            maxpool_backward(dy, a, samples * c, (h, w), ks, dx, relu_out);
        });
    }
}

impl Layer for Pool2d {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Pool
    }

    fn describe(&self) -> String {
        let name = match self.kind {
            PoolKind::Max => "MaxPool2d",
            PoolKind::Avg => "AvgPool2d",
        };
        format!(
            "{name}(kernel_size={}, stride={})",
            self.kernel, self.stride
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        vec![
            input[0],
            input[1],
            self.out_side(input[2]),
            self.out_side(input[3]),
        ]
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (in_len, out_len) = (c * h * w, y.item_len());
        let ks = (self.kernel, self.stride);
        let ys = SharedMut::new(&mut y.data);
        match self.kind {
            PoolKind::Max => self.max_forward(x, y, false),
            PoolKind::Avg => for_each_chunk(n, CHUNK, |_, first, samples| {
                // SAFETY: disjoint sample ranges.
                let y = unsafe { ys.range(first * out_len, samples * out_len) };
                let x = &x.data[first * in_len..][..samples * in_len];
                avgpool_forward(x, samples * c, (h, w), ks, y);
            }),
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        if self.kind == PoolKind::Max {
            return self.max_backward(x, dy, None, dx);
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (in_len, out_len) = (c * h * w, dy.item_len());
        let ks = (self.kernel, self.stride);
        let dxs = SharedMut::new(&mut dx.data);
        for_each_chunk(n, CHUNK, |_, first, samples| {
            // SAFETY: disjoint sample ranges.
            let dx = unsafe { dxs.range(first * in_len, samples * in_len) };
            let dy = &dy.data[first * out_len..][..samples * out_len];
            avgpool_backward(dy, samples * c, (h, w), ks, dx);
        });
    }

    /// Max pooling's slope is 1 from each window's maximum and 0 from the rest, so its
    /// second derivatives route as its gradients do; average pooling's is 1/k^2 from every
    /// window element, so its second derivatives are its backward pass's, divided by k^2
    /// once more.
    fn backward_curvature(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let Some(d2x) = d2x else { return };
        self.backward(x, y, d2y, Some(&mut *d2x));
        if self.kind == PoolKind::Avg {
            let scale = 1.0 / (self.kernel * self.kernel) as f32;
            d2x.data.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows with ties, NaN and infinities: every path picks PyTorch's element.
    fn tricky_planes() -> (Vec<f32>, usize, (usize, usize)) {
        let (planes, h, w) = (3, 6, 28);
        let mut x: Vec<f32> = (0..planes * h * w)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        x[5] = f32::NAN;
        x[w + 1] = f32::NAN;
        x[40] = f32::INFINITY;
        x[100] = f32::NEG_INFINITY;
        (x, planes, (h, w))
    }

    #[test]
    fn max_pool_paths_agree_with_the_general_loop() {
        let (x, planes, (h, w)) = tricky_planes();
        let n = planes * (h / 2) * (w / 2);
        let (mut y_ref, mut a_ref) = (vec![0.0; n], vec![0u32; n]);
        // The general loop, forced by a 2x2 kernel described as (k, s) with its own code.
        let (oh, ow) = (h / 2, w / 2);
        for p in 0..planes {
            for i in 0..oh {
                for j in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, 2 * i * w + 2 * j);
                    for (u, v) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let idx = (2 * i + u) * w + 2 * j + v;
                        let val = x[p * h * w + idx];
                        if (u, v) == (0, 0) || ((val > best || val.is_nan()) && !best.is_nan()) {
                            (best, at) = (val, idx);
                        }
                    }
                    y_ref[(p * oh + i) * ow + j] = best;
                    a_ref[(p * oh + i) * ow + j] = at as u32;
                }
            }
        }
        let (mut y, mut a) = (vec![0.0; n], vec![0u32; n]);
        maxpool_forward(&x, planes, (h, w), (2, 2), &mut y, &mut a, false);
        assert_eq!(a, a_ref);
        assert!(
            y.iter()
                .zip(&y_ref)
                .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        );
        maxpool2x2_forward(&x, planes, (h, w), &mut y, &mut a);
        assert_eq!(a, a_ref);
        assert!(
            y.iter()
                .zip(&y_ref)
                .all(|(p, q)| p == q || (p.is_nan() && q.is_nan()))
        );
    }

    /// Each output gradient added to its window's maximum, as plain loops.
    fn scatter(dy: &[f32], argmax: &[u32], planes: usize, plane_in: usize) -> Vec<f32> {
        let mut dx = vec![0.0; planes * plane_in];
        let plane_out = dy.len() / planes;
        for (o, (&d, &at)) in dy.iter().zip(argmax).enumerate() {
            dx[(o / plane_out) * plane_in + at as usize] += d;
        }
        dx
    }

    /// Pooling with the ReLU folded in gives the pooling of the ReLU's output, forward and
    /// backward, on windows with ties, NaN and infinities (both 2x2 paths).
    #[test]
    fn folded_relu_matches_relu_then_pooling() {
        let (x, planes, (h, w)) = tricky_planes();
        let n = planes * (h / 2) * (w / 2);
        let relu = |v: f32| if v > 0.0 || v.is_nan() { v } else { 0.0 };
        let x_relu: Vec<f32> = x.iter().map(|&v| relu(v)).collect();
        let (mut y_ref, mut a_ref) = (vec![0.0; n], vec![0u32; n]);
        maxpool_forward(
            &x_relu,
            planes,
            (h, w),
            (2, 2),
            &mut y_ref,
            &mut a_ref,
            false,
        );
        let dy: Vec<f32> = (0..n).map(|i| i as f32 - 7.5).collect();
        let dx_ref = scatter(&dy, &a_ref, planes, h * w);
        // The pooling's backward through maxpool_backward (the 2x2 kernel here) agrees with
        // the plain scatter.
        let mut dx_pool = vec![1.0; x.len()];
        maxpool_backward(&dy, &a_ref, planes, (h, w), (2, 2), &mut dx_pool, None);
        assert_eq!(dx_pool, dx_ref);
        let mut dx_ref = dx_ref;
        for (d, &v) in dx_ref.iter_mut().zip(&x) {
            if v <= 0.0 || v.is_nan() {
                *d = 0.0; // the ReLU's backward: gradient only where its input is positive
            }
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let (mut y, mut a) = (vec![0.0; n], vec![0u32; n]);
        for fast in [true, false] {
            if fast {
                maxpool_forward(&x, planes, (h, w), (2, 2), &mut y, &mut a, true);
            } else {
                maxpool2x2_forward(&x, planes, (h, w), &mut y, &mut a);
                relu_in_place(&mut y);
            }
            assert_eq!(bits(&y), bits(&y_ref), "fast {fast}");
            let mut dx = vec![1.0; x.len()];
            maxpool_backward(&dy, &a, planes, (h, w), (2, 2), &mut dx, Some(&y));
            assert_eq!(bits(&dx), bits(&dx_ref), "fast {fast}");
        }
    }

    /// The padded expansion holds the plain expansion's values row by row, zeros in the
    /// padding (for two samples, so the second's offset shows; rows 32 and 30 apart, the
    /// second with a tail after the last row).
    #[test]
    fn padded_expansion_lays_out_the_plain_one() {
        let (x, planes, (h, w)) = tricky_planes();
        let n = planes * (h / 2) * (w / 2);
        let (mut y, mut argmax) = (vec![0.0; n], vec![0u32; n]);
        maxpool_forward(&x, planes, (h, w), (2, 2), &mut y, &mut argmax, true);
        // Two samples: the same planes twice, the second's gradient negated.
        let dy: Vec<f32> = (0..2 * n)
            .map(|i| {
                if i < n {
                    i as f32 - 7.5
                } else {
                    7.5 - (i - n) as f32
                }
            })
            .collect();
        let (y2, a2) = ([y.clone(), y].concat(), [argmax.clone(), argmax].concat());
        let pooled = PooledGrad {
            dy: &dy,
            y: &y2,
            argmax: &a2,
            channels: planes,
            plane: (h, w),
        };
        let mut plain = vec![0.0; 2 * planes * h * w];
        pooled.expand(0, 2, &mut plain);
        for (ld, len) in [(32, h * 32), (30, h * 30 + 7)] {
            for sample in 0..2 {
                let mut padded = vec![7.0; planes * len];
                pooled.expand_padded(sample, (ld, len), &mut padded);
                for (p, got) in padded.chunks_exact(len).enumerate() {
                    let want = &plain[(sample * planes + p) * h * w..][..h * w];
                    for (at, &g) in got.iter().enumerate() {
                        let (r, c) = (at / ld, at % ld);
                        let w_value = if r < h && c < w { want[r * w + c] } else { 0.0 };
                        assert_eq!(
                            g.to_bits(),
                            w_value.to_bits(),
                            "ld {ld}, sample {sample}, plane {p}, at {at}"
                        );
                    }
                }
            }
        }
    }
}
