//! 2-D convolution (cross-correlation, as PyTorch's `nn.Conv2d`).
//!
//! y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[n, c, i*s + u - p, j*s + v - p]
//!
//! Shapes: x [N, C, H, W], w [O, C, K, K], b [O], y [N, O, OH, OW] with
//! OH = (H + 2p - K) / s + 1 (likewise OW); N batch, C input channels, O output channels,
//! K kernel size, s stride, p zero padding.
//!
//! Backward: dw[o, c, u, v] = sum_{n,i,j} dy[n, o, i, j] * x[n, c, i*s+u-p, j*s+v-p],
//! db[o] = sum_{n,i,j} dy[n, o, i, j], and dx scatters w * dy back through the same indices.
//!
//! The fast path is im2col + GEMM: the K*K*C values each output position reads become one
//! column of a `[C*K*K, positions]` matrix, so the convolution is `w (as [O, C*K*K]) x cols`.
//! [`conv2d_forward_direct`] and [`conv2d_backward_direct`] are the plain loops it is tested
//! against.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html>

pub use super::kernels::im2col::ConvGeometry;
use super::kernels::im2col::{col2im, im2col};
use super::kernels::matmul::{MatRef, matmul};
use super::linear::{linear_backward, linear_forward};
use super::pool::PooledGrad;
use super::{Context, Layer, Param, SharedMut, for_each_chunk, init};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The plain reference: direct loops over every index.
#[allow(clippy::needless_range_loop)] // the indices are the formula
pub fn conv2d_forward_direct(x: &Tensor, w: &[f32], b: &[f32], g: ConvGeometry) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    assert_eq!(c, g.c_in);
    let (oh, ow, k) = (g.out_side(h), g.out_side(wd), g.kernel);
    let mut y = Tensor::zeros(&[n, g.c_out, oh, ow]);
    for ni in 0..n {
        for o in 0..g.c_out {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b[o];
                    for ci in 0..c {
                        for u in 0..k {
                            for v in 0..k {
                                let (r, s) = (i * g.stride + u, j * g.stride + v);
                                if r < g.padding || s < g.padding {
                                    continue;
                                }
                                let (r, s) = (r - g.padding, s - g.padding);
                                if r >= h || s >= wd {
                                    continue;
                                }
                                acc += w[((o * c + ci) * k + u) * k + v]
                                    * x.data[((ni * c + ci) * h + r) * wd + s];
                            }
                        }
                    }
                    y.data[((ni * g.c_out + o) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    y
}

/// The plain reference backward: returns `(dx, dw, db)`.
#[allow(clippy::needless_range_loop)] // the indices are the formula
pub fn conv2d_backward_direct(
    x: &Tensor,
    w: &[f32],
    dy: &Tensor,
    g: ConvGeometry,
) -> (Tensor, Vec<f32>, Vec<f32>) {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (oh, ow, k) = (dy.shape[2], dy.shape[3], g.kernel);
    let mut dx = Tensor::zeros(&x.shape);
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; g.c_out];
    for ni in 0..n {
        for o in 0..g.c_out {
            for i in 0..oh {
                for j in 0..ow {
                    let d = dy.data[((ni * g.c_out + o) * oh + i) * ow + j];
                    db[o] += d;
                    for ci in 0..c {
                        for u in 0..k {
                            for v in 0..k {
                                let (r, s) = (i * g.stride + u, j * g.stride + v);
                                if r < g.padding || s < g.padding {
                                    continue;
                                }
                                let (r, s) = (r - g.padding, s - g.padding);
                                if r >= h || s >= wd {
                                    continue;
                                }
                                let xi = ((ni * c + ci) * h + r) * wd + s;
                                let wi = ((o * c + ci) * k + u) * k + v;
                                dw[wi] += d * x.data[xi];
                                dx.data[xi] += d * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

/// A convolution layer.
pub struct Conv2d {
    pub geometry: ConvGeometry,
    pub weight: Param,
    pub bias: Param,
    /// Cached by forward: im2col columns of the whole batch, chunk after chunk.
    cols: Vec<f32>,
    /// Scratch: per-chunk `[O, positions]` products, and column gradients (on the narrow
    /// path: each worker thread's output gradient, channel-last).
    chunk_out: Vec<f32>,
    dcols: Vec<f32>,
    /// Per-chunk partial weight and bias gradients, summed in chunk order.
    partial_dw: Vec<f32>,
    partial_db: Vec<f32>,
    /// Scratch: the weight rearranged for the narrow direct kernels, `[C*K*K, O]` forward and
    /// `[O, K, K, C]` backward.
    weight_t: Vec<f32>,
    /// Scratch of the sparse backward kernels: each worker thread's channel-last copies of
    /// its chunk.
    sparse_scratch: Vec<f32>,
    /// The single-channel weight gradient's input masks, and the `(oh, ow, w)` they are for
    /// (computed once, not at every one-sample step).
    grad_masks: ((usize, usize, usize), Vec<u16>),
}

/// A copy with the same geometry, parameters and connection table but none of the scratch:
/// the scratch holds nothing from one pass to the next (the forward's columns are rewritten
/// by the next forward), and its size grows with the batch and the thread count, so the
/// evaluation replicas ([`crate::nn::Network::forward_each`]) would otherwise each carry a
/// training batch's worth for every thread.
impl Clone for Conv2d {
    fn clone(&self) -> Self {
        Conv2d::from_params(self.geometry, self.weight.clone(), self.bias.clone())
    }
}

impl Conv2d {
    /// A convolution with PyTorch's default initialisation: weights and biases uniform in
    /// ±1/sqrt(fan_in), fan_in = C*K*K (`kaiming_uniform_(a=sqrt(5))`).
    pub fn new(geometry: ConvGeometry, rng: &mut Rng) -> Self {
        let fan_in = geometry.col_rows();
        let bound = init::pytorch_bound(fan_in);
        Self::with_init(geometry, rng, bound, bound)
    }

    /// A convolution with weights uniform in ±`weight_bound` and biases in ±`bias_bound`.
    pub fn with_init(g: ConvGeometry, rng: &mut Rng, weight_bound: f32, bias_bound: f32) -> Self {
        let w_shape = [g.c_out, g.c_in, g.kernel, g.kernel];
        let weight = Param::new("weight", init::uniform(&w_shape, weight_bound, rng));
        let bias = Param::new("bias", init::uniform(&[g.c_out], bias_bound, rng));
        Conv2d::from_params(g, weight, bias)
    }

    /// A convolution with these parameters and empty scratch.
    fn from_params(geometry: ConvGeometry, weight: Param, bias: Param) -> Self {
        Conv2d {
            geometry,
            weight,
            bias,
            cols: Vec::new(),
            chunk_out: Vec::new(),
            dcols: Vec::new(),
            partial_dw: Vec::new(),
            partial_db: Vec::new(),
            weight_t: Vec::new(),
            sparse_scratch: Vec::new(),
            grad_masks: ((0, 0, 0), Vec::new()),
        }
    }

    /// Restricts which input channels feed which output channel: `table[o][c]` is true when
    /// input channel `c` feeds output channel `o`. The other weights are zero and stay zero.
    pub fn with_connection_table(mut self, table: &[Vec<bool>]) -> Self {
        let g = self.geometry;
        let kk = g.kernel * g.kernel;
        let mut frozen = vec![false; self.weight.value.len()];
        for (o, inputs) in table.iter().enumerate().take(g.c_out) {
            for (c, &connected) in inputs.iter().enumerate().take(g.c_in) {
                if !connected {
                    let start = (o * g.c_in + c) * kk;
                    frozen[start..start + kk].fill(true);
                    self.weight.value.data[start..start + kk].fill(0.0);
                }
            }
        }
        self.weight.frozen_zero = Some(frozen);
        self
    }

    /// Samples per chunk: enough output positions per product to keep the kernels busy, few
    /// enough that a batch of 64 still splits across threads.
    fn chunk_samples(&self, positions: usize) -> usize {
        256usize.div_ceil(positions).clamp(1, 16)
    }

    /// Whether the kernel covers the whole unpadded input, so the output is 1x1 and the
    /// convolution is a fully connected layer over the flattened input (LeNet's conv3): the
    /// im2col matrix would be the input itself.
    fn is_dense(&self, h: usize, w: usize) -> bool {
        let g = self.geometry;
        g.padding == 0 && h == g.kernel && w == g.kernel
    }

    /// The dense case of forward: y [N, O] = x [N, C*K*K] w^T + b.
    fn dense_forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let (n, rows, c_out) = (x.shape[0], self.geometry.col_rows(), self.geometry.c_out);
        let (weight, bias) = (&self.weight.value.data, &self.bias.value.data);
        linear_forward(&x.data, weight, bias, n, rows, c_out, &mut y.data);
    }

    /// The dense case of backward: the fully connected layer's backward, which splits the
    /// work across threads itself.
    fn dense_backward(&mut self, x: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let (n, rows, c_out) = (x.shape[0], self.geometry.col_rows(), self.geometry.c_out);
        linear_backward(
            &x.data,
            &self.weight.value.data,
            &dy.data,
            n,
            rows,
            c_out,
            &mut self.weight.grad.data,
            &mut self.bias.grad.data,
            dx.map(|t| &mut t.data[..]),
        );
        self.zero_frozen_grads();
    }

    /// Whether the single-channel direct kernel applies (LeNet's conv1 on an AVX-512 processor):
    /// one input channel, kernel at most 5 wide, stride 1, no padding, output rows of at most
    /// 32.
    fn is_direct_single_channel(&self, w: usize) -> bool {
        let g = self.geometry;
        #[cfg(target_arch = "x86_64")]
        let fast = crate::simd::available();
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        fast && g.c_in == 1
            && g.kernel <= 5
            && g.stride == 1
            && g.padding == 0
            && g.out_side(w) <= 32
    }

    #[cfg(target_arch = "x86_64")]
    fn direct_forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let k = self.geometry.kernel;
        let out_len = y.item_len();
        let ys = SharedMut::new(&mut y.data);
        let (weight, bias) = (&self.weight.value.data, &self.bias.value.data);
        for_each_chunk(n, DIRECT_CHUNK, |_, first, samples| {
            for s in first..first + samples {
                // SAFETY: disjoint sample ranges; AVX-512F checked by is_direct_single_channel.
                unsafe {
                    let y = ys.range(s * out_len, out_len);
                    super::kernels::conv_single_channel::conv1ch_forward(
                        &x.data[s * h * w..][..h * w],
                        (h, w),
                        k,
                        weight,
                        bias,
                        y,
                    );
                }
            }
        });
    }

    #[cfg(target_arch = "x86_64")]
    fn direct_backward(&mut self, x: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        self.direct_weight_grad(x, &OutputGrad::Ready(&dy.data));
        if let Some(dx) = dx {
            // Only needed when the input's gradient is asked for (never in training, where
            // this is the first layer): the plain loops.
            let (dx_ref, _, _) =
                conv2d_backward_direct(x, &self.weight.value.data, dy, self.geometry);
            dx.data.copy_from_slice(&dx_ref.data);
        }
    }

    /// The weight and bias gradients of the single-channel direct path. Each worker thread
    /// lays out one image's output gradient at a time as wide as the input, in its own
    /// scratch, and the kernel adds it into per-chunk lane sums.
    #[cfg(target_arch = "x86_64")]
    fn direct_weight_grad(&mut self, x: &Tensor, dy: &OutputGrad) {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let (k, c_out) = (self.geometry.kernel, self.geometry.c_out);
        let (oh, ow) = (self.geometry.out_side(h), self.geometry.out_side(w));
        let out_len = c_out * oh * ow;
        let layout = super::kernels::conv_single_channel::conv1ch_grad_layout((oh, w));
        let chunks = n.div_ceil(DIRECT_CHUNK);
        let w_len = self.weight.value.len();
        self.zero_partials(chunks);
        if self.grad_masks.0 != (oh, ow, w) {
            self.grad_masks = (
                (oh, ow, w),
                super::kernels::conv_single_channel::conv1ch_grad_masks((oh, ow), w),
            );
        }
        let masks = &self.grad_masks.1;
        // Per worker thread: the padded output gradient, then the lane sums; 64-byte aligned.
        let threads = crate::parallel::threads();
        let grad_len = c_out * layout.1;
        let slab_len = grad_len + w_len * 16;
        self.dcols.resize(threads * slab_len + 16, 0.0);
        let align = self.dcols.as_ptr().align_offset(64).min(15);
        let scratch = SharedMut::new(&mut self.dcols[align..]);
        let pdw = SharedMut::new(&mut self.partial_dw);
        let pdb = SharedMut::new(&mut self.partial_db);
        for_each_chunk(n, DIRECT_CHUNK, |ci, first, samples| {
            // SAFETY: chunk ci owns its partial slots and its samples of dy; a worker thread
            // owns its scratch slab; AVX-512F checked.
            unsafe {
                let slab = crate::parallel::thread_index() % threads;
                let (dyp, sums) = scratch
                    .range(slab * slab_len, slab_len)
                    .split_at_mut(grad_len);
                sums.fill(0.0);
                let dw = pdw.range(ci * w_len, w_len);
                let db = pdb.range(ci * c_out, c_out);
                for s in first..first + samples {
                    dy.padded(s, out_len, (oh, ow), layout, dyp);
                    for (db, plane) in db.iter_mut().zip(dyp.chunks_exact(layout.1)) {
                        *db += super::kernels::reduce::avx512::sum_wide(plane);
                    }
                    let x = &x.data[s * h * w..][..h * w];
                    super::kernels::conv_single_channel::conv1ch_weight_grad(
                        x,
                        (h, w),
                        k,
                        dyp,
                        masks,
                        sums,
                    );
                }
                super::kernels::conv_single_channel::add_lane_sums(sums, dw);
            }
        });
        self.add_partials(chunks);
    }

    /// Whether the narrow direct kernels apply (LeNet's conv2 on an AVX-512 processor): stride
    /// 1, no padding, input rows of at most 16 values.
    fn is_direct_narrow(&self, w: usize) -> bool {
        let g = self.geometry;
        #[cfg(target_arch = "x86_64")]
        let fast = crate::simd::available();
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        fast && g.stride == 1 && g.padding == 0 && w <= 16
    }

    #[cfg(target_arch = "x86_64")]
    fn narrow_forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let g = self.geometry;
        let (in_len, out_len) = (x.item_len(), y.item_len());
        self.transpose_weight_by_tap();
        let ys = SharedMut::new(&mut y.data);
        let (wt, bias) = (&self.weight_t, &self.bias.value.data);
        for_each_chunk(n, DIRECT_CHUNK, |_, first, samples| {
            // SAFETY: disjoint sample ranges; AVX-512F checked by is_direct_narrow.
            unsafe {
                let y = ys.range(first * out_len, samples * out_len);
                let x = &x.data[first * in_len..][..samples * in_len];
                if !super::kernels::conv_narrow::conv_forward_channels_in_lanes(
                    x,
                    samples,
                    (h, w),
                    g,
                    wt,
                    bias,
                    y,
                ) {
                    super::kernels::conv_narrow::conv_narrow_forward(
                        x,
                        samples,
                        (h, w),
                        g,
                        wt,
                        bias,
                        y,
                    );
                }
            }
        });
    }

    /// Writes the weight transposed to `[C*K*K, O]` into `weight_t`, for the narrow forward
    /// kernels: each tap's weights for all output channels are one contiguous row.
    #[cfg(target_arch = "x86_64")]
    fn transpose_weight_by_tap(&mut self) {
        let (rows, c_out) = (self.geometry.col_rows(), self.geometry.c_out);
        self.weight_t.resize(rows * c_out, 0.0);
        transpose(&self.weight.value.data, c_out, rows, &mut self.weight_t);
    }

    /// [`Conv2d::forward_relu_maxpool`] on the direct kernels: the single-channel kernel
    /// (conv1) or the channels-in-lanes one (conv2), each pooling two output rows at a time
    /// while they are in registers ([`super::kernels::fused`]).
    #[cfg(target_arch = "x86_64")]
    fn fused_forward(&mut self, x: &Tensor, y: &mut Tensor, argmax: Option<&mut Vec<u32>>) -> bool {
        use super::kernels::fused;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let g = self.geometry;
        let (oh, ow) = (g.out_side(h), g.out_side(w));
        let single = self.is_direct_single_channel(w) && fused::single_channel_applies(oh, ow);
        let lanes = !single
            && !self.is_dense(h, w)
            && self.is_direct_narrow(w)
            && fused::channels_in_lanes_applies(g, (oh, ow));
        if !single && !lanes {
            return false;
        }
        let (in_len, out_len) = (x.item_len(), y.item_len());
        assert_eq!(
            out_len,
            g.c_out * (oh / 2) * (ow / 2),
            "pooled output shape"
        );
        let argmaxes = argmax.map(|argmax| {
            argmax.resize(n * out_len, 0);
            SharedMut::new(argmax)
        });
        if lanes {
            self.transpose_weight_by_tap();
        }
        let ys = SharedMut::new(&mut y.data);
        let bias = &self.bias.value.data;
        if single {
            let weight = &self.weight.value.data;
            for_each_chunk(n, DIRECT_CHUNK, |_, first, samples| {
                for s in first..first + samples {
                    // SAFETY: disjoint sample ranges; AVX-512F and the shape checked above.
                    unsafe {
                        fused::conv1ch_forward_pooled(
                            &x.data[s * in_len..][..in_len],
                            (h, w),
                            g.kernel,
                            weight,
                            bias,
                            ys.range(s * out_len, out_len),
                            argmaxes.as_ref().map(|a| a.range(s * out_len, out_len)),
                        );
                    }
                }
            });
        } else {
            let wt = &self.weight_t;
            for_each_chunk(n, DIRECT_CHUNK, |_, first, samples| {
                // SAFETY: disjoint sample ranges; AVX-512F and the shape checked above.
                unsafe {
                    fused::conv_forward_channels_in_lanes_pooled(
                        &x.data[first * in_len..][..samples * in_len],
                        samples,
                        (h, w),
                        g,
                        wt,
                        bias,
                        ys.range(first * out_len, samples * out_len),
                        argmaxes
                            .as_ref()
                            .map(|a| a.range(first * out_len, samples * out_len)),
                    );
                }
            });
        }
        true
    }

    /// Backward of the narrow direct path. A chunk whose output gradient is mostly zeros (as
    /// behind ReLU and max pooling) goes to the sparse kernels, which visit the nonzero values
    /// only ([`super::kernels::sparse`]). Otherwise the weight gradient takes the chunk's output
    /// gradient channel-last (one vector per position holds all output channels; 5x5 kernels
    /// with at most 16 output channels) or, for other shapes, row by row; the input gradient
    /// gathers the shifted output-gradient rows of every kernel tap that reaches an input row.
    /// None of them writes a column matrix. Which path a chunk takes depends on its values
    /// only, never on the thread count.
    #[cfg(target_arch = "x86_64")]
    fn narrow_backward(&mut self, x: &Tensor, dy: &OutputGrad, dx: Option<&mut Tensor>) {
        use super::kernels::sparse;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let g = self.geometry;
        let k = g.kernel;
        let (oh, ow) = (g.out_side(h), g.out_side(w));
        let positions = oh * ow;
        let (in_len, out_len) = (x.item_len(), g.c_out * positions);
        let chunks = n.div_ceil(DIRECT_CHUNK);
        let w_len = self.weight.value.len();
        self.zero_partials(chunks);
        let channel_last = k == 5 && g.c_out <= 16;
        let sparse_ok = sparse::applies(g, (oh, ow));
        // Per worker thread: the chunk's images and one output gradient channel-last (16
        // lanes a position), one input gradient channel-last, the weight-gradient scratch.
        let sparse_len =
            DIRECT_CHUNK * in_len + positions * 16 + in_len + sparse::weight_grad_len(g);
        if sparse_ok {
            self.sparse_scratch
                .resize(crate::parallel::threads() * sparse_len, 0.0);
        }
        if dx.is_some() {
            // The weight laid out [O, K, K, C] for the input-gradient kernels (broadcasts on the
            // dense path, kernel rows on the sparse one).
            let wv = &self.weight.value.data;
            self.weight_t.resize(w_len, 0.0);
            let rows = g.col_rows();
            for (wo, wto) in wv
                .chunks_exact(rows)
                .zip(self.weight_t.chunks_exact_mut(rows))
            {
                transpose(wo, g.c_in, k * k, wto);
            }
        }
        // One scratch slab per worker thread: the chunk's output gradient channel-last.
        let threads = crate::parallel::threads();
        let slab_len = DIRECT_CHUNK * out_len;
        if channel_last {
            self.dcols.resize(threads * slab_len, 0.0);
        }
        let pdw = SharedMut::new(&mut self.partial_dw);
        let pdb = SharedMut::new(&mut self.partial_db);
        let scratch = SharedMut::new(&mut self.dcols);
        let dx_buf = dx.map(|t| SharedMut::new(&mut t.data));
        let wt = &self.weight_t;
        let sparse_scratch = SharedMut::new(&mut self.sparse_scratch);
        for_each_chunk(n, DIRECT_CHUNK, |ci, first, samples| {
            let x = &x.data[first * in_len..][..samples * in_len];
            // SAFETY: chunk ci owns its partial slots and its samples of dy and dx; a worker
            // thread owns its scratch slab; AVX-512F checked by is_direct_narrow.
            unsafe {
                let dy = dy.chunk(first, samples, out_len);
                let dw = pdw.range(ci * w_len, w_len);
                let db = pdb.range(ci * g.c_out, g.c_out);
                // Sparse when at most a third of the values are nonzero.
                if sparse_ok && sparse::count_nonzero(dy) * 3 <= dy.len() {
                    let slab = crate::parallel::thread_index() % threads;
                    let scratch = sparse_scratch.range(slab * sparse_len, sparse_len);
                    let (xt, rest) = scratch.split_at_mut(DIRECT_CHUNK * in_len);
                    let (dyt, rest) = rest.split_at_mut(positions * 16);
                    let (dxt, dwt) = rest.split_at_mut(in_len);
                    let plane = h * w;
                    sparse::channel_last(x, samples, g.c_in, plane, xt);
                    sparse::weight_grad(xt, dy, samples, (h, w), g, dwt, db);
                    sparse::add_weight_grad(dwt, g, dw);
                    if let Some(dx_buf) = dx_buf.as_ref() {
                        let dx = dx_buf.range(first * in_len, samples * in_len);
                        for s in 0..samples {
                            let dys = &dy[s * out_len..][..out_len];
                            sparse::channel_last_16(dys, g.c_out, positions, dyt);
                            sparse::input_grad(dyt, (h, w), g, wt, dxt);
                            sparse::channel_first(dxt, g.c_in, plane, &mut dx[s * in_len..]);
                        }
                    }
                    return;
                }
                if channel_last {
                    let slab = crate::parallel::thread_index() % threads;
                    let dyt = scratch.range(slab * slab_len, slab_len);
                    for (s, item) in dy.chunks_exact(out_len).enumerate() {
                        for (o, plane) in item.chunks_exact(positions).enumerate() {
                            for (p, &v) in plane.iter().enumerate() {
                                dyt[(s * positions + p) * g.c_out + o] = v;
                            }
                        }
                    }
                    super::kernels::conv_narrow::conv5_weight_grad_channel_last(
                        x,
                        samples,
                        (h, w),
                        g,
                        dyt,
                        dw,
                        db,
                    );
                } else {
                    super::kernels::conv_narrow::conv_narrow_weight_grad(
                        x,
                        samples,
                        (h, w),
                        g,
                        dy,
                        dw,
                        db,
                    );
                }
                if let Some(dx_buf) = dx_buf.as_ref() {
                    let dx = dx_buf.range(first * in_len, samples * in_len);
                    super::kernels::conv_narrow::conv_narrow_input_grad(
                        dy,
                        samples,
                        (h, w),
                        g,
                        wt,
                        dx,
                    );
                }
            }
        });
        self.add_partials(chunks);
    }

    /// Sizes the per-chunk partial gradients for `chunks` chunks, all zero.
    fn zero_partials(&mut self, chunks: usize) {
        let (w_len, c_out) = (self.weight.value.len(), self.geometry.c_out);
        self.partial_dw.clear();
        self.partial_dw.resize(chunks * w_len, 0.0);
        self.partial_db.clear();
        self.partial_db.resize(chunks * c_out, 0.0);
    }

    /// Adds the per-chunk partial gradients to the parameter gradients, in chunk order.
    fn add_partials(&mut self, chunks: usize) {
        let w_len = self.weight.value.len();
        let c_out = self.geometry.c_out;
        for part in self.partial_dw[..chunks * w_len].chunks_exact(w_len) {
            for (acc, &p) in self.weight.grad.data.iter_mut().zip(part) {
                *acc += p;
            }
        }
        for part in self.partial_db[..chunks * c_out].chunks_exact(c_out) {
            for (acc, &p) in self.bias.grad.data.iter_mut().zip(part) {
                *acc += p;
            }
        }
        self.zero_frozen_grads();
    }

    /// Keeps the gradients of the weights a connection table removes at zero.
    fn zero_frozen_grads(&mut self) {
        if let Some(frozen) = &self.weight.frozen_zero {
            for (gr, &z) in self.weight.grad.data.iter_mut().zip(frozen) {
                if z {
                    *gr = 0.0;
                }
            }
        }
    }
}

/// `dst` [cols, rows] = `src` [rows, cols] transposed (both row-major): the weight re-laid
/// out at every call of the direct paths, which at one sample per step costs as much as a
/// small kernel unless done with vector gathers.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    #[cfg(target_arch = "x86_64")]
    if crate::simd::available() {
        // SAFETY: AVX-512F is present; both slices hold rows * cols values.
        return unsafe { super::kernels::gemm::transpose(src, rows, cols, dst) };
    }
    for (j, out) in dst.chunks_exact_mut(rows).enumerate() {
        for (i, v) in out.iter_mut().enumerate() {
            *v = src[i * cols + j];
        }
    }
}

/// Where a backward pass reads each chunk's output gradient.
enum OutputGrad<'a> {
    /// Already in a buffer.
    Ready(&'a [f32]),
    /// Made by each chunk, just before use, from the max pooling after the layer (with the
    /// ReLU between them folded): into this buffer by [`OutputGrad::chunk`], into the
    /// caller's scratch by [`OutputGrad::padded`].
    Pooled(&'a PooledGrad<'a>, SharedMut<f32>),
}

impl OutputGrad<'_> {
    /// The output gradient of samples `first .. first + samples`, `out_len` values each.
    ///
    /// # Safety
    /// Concurrent callers ask for disjoint sample ranges.
    unsafe fn chunk(&self, first: usize, samples: usize, out_len: usize) -> &[f32] {
        match self {
            OutputGrad::Ready(dy) => &dy[first * out_len..][..samples * out_len],
            OutputGrad::Pooled(pooled, buf) => {
                // SAFETY: disjoint ranges, the caller's promise.
                let dy = unsafe { buf.range(first * out_len, samples * out_len) };
                pooled.expand(first, samples, dy);
                dy
            }
        }
    }

    /// Sample `s`'s output gradient (`out_len` values, planes of `oh x ow`) laid out
    /// `(ld, plane)` into `dst`, zeros in the padding.
    fn padded(
        &self,
        s: usize,
        out_len: usize,
        (oh, ow): (usize, usize),
        (ld, plane): (usize, usize),
        dst: &mut [f32],
    ) {
        match self {
            OutputGrad::Ready(dy) => {
                dst.fill(0.0);
                let item = &dy[s * out_len..][..out_len];
                for (src, dst) in item.chunks_exact(oh * ow).zip(dst.chunks_exact_mut(plane)) {
                    for (src, dst) in src.chunks_exact(ow).zip(dst.chunks_mut(ld)) {
                        dst[..ow].copy_from_slice(src);
                    }
                }
            }
            OutputGrad::Pooled(pooled, _) => pooled.expand_padded(s, (ld, plane), dst),
        }
    }
}

/// Samples per chunk on the single-channel direct path.
const DIRECT_CHUNK: usize = 4;

impl Layer for Conv2d {
    fn describe(&self) -> String {
        let g = self.geometry;
        let mut s = format!("Conv2d({}, {}, kernel_size={}", g.c_in, g.c_out, g.kernel);
        if g.stride != 1 {
            s += &format!(", stride={}", g.stride);
        }
        if g.padding != 0 {
            s += &format!(", padding={}", g.padding);
        }
        if self.weight.frozen_zero.is_some() {
            s += ", sparse connection table";
        }
        s + ")"
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        let g = self.geometry;
        vec![
            input[0],
            g.c_out,
            g.out_side(input[2]),
            g.out_side(input[3]),
        ]
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        let g = self.geometry;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        if self.is_dense(h, w) {
            return self.dense_forward(x, y);
        }
        #[cfg(target_arch = "x86_64")]
        if self.is_direct_single_channel(w) {
            return self.direct_forward(x, y);
        }
        #[cfg(target_arch = "x86_64")]
        if self.is_direct_narrow(w) {
            return self.narrow_forward(x, y);
        }
        assert_eq!(
            x.shape[1],
            g.c_in,
            "{}: wrong input channels",
            self.describe()
        );
        let positions = y.shape[2] * y.shape[3];
        let rows = g.col_rows();
        let chunk = self.chunk_samples(positions);
        self.cols.resize(n * rows * positions, 0.0);
        self.chunk_out.resize(n * g.c_out * positions, 0.0);
        let cols = SharedMut::new(&mut self.cols);
        let out = SharedMut::new(&mut self.chunk_out);
        let ys = SharedMut::new(&mut y.data);
        let (weight, bias) = (&self.weight.value.data, &self.bias.value.data);
        let in_len = g.c_in * h * w;
        let out_len = g.c_out * positions;
        for_each_chunk(n, chunk, |_, first, samples| {
            // SAFETY: chunks cover disjoint sample ranges of each buffer.
            let cols = unsafe { cols.range(first * rows * positions, samples * rows * positions) };
            let y = unsafe { ys.range(first * out_len, samples * out_len) };
            im2col(
                &x.data[first * in_len..][..samples * in_len],
                samples,
                h,
                w,
                g,
                cols,
            );
            let width = samples * positions;
            let w_mat = MatRef::new(weight, g.c_out, rows);
            let c_mat = MatRef::new(cols, rows, width);
            if samples == 1 {
                matmul(w_mat, c_mat, y, 0.0);
            } else {
                let tmp = unsafe { out.range(first * out_len, samples * out_len) };
                matmul(w_mat, c_mat, tmp, 0.0);
                for s in 0..samples {
                    for o in 0..g.c_out {
                        y[(s * g.c_out + o) * positions..][..positions]
                            .copy_from_slice(&tmp[o * width + s * positions..][..positions]);
                    }
                }
            }
            for s in 0..samples {
                for (o, plane) in y[s * out_len..(s + 1) * out_len]
                    .chunks_exact_mut(positions)
                    .enumerate()
                {
                    plane.iter_mut().for_each(|v| *v += bias[o]);
                }
            }
        });
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let g = self.geometry;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        if self.is_dense(h, w) {
            return self.dense_backward(x, dy, dx);
        }
        #[cfg(target_arch = "x86_64")]
        if self.is_direct_single_channel(w) {
            return self.direct_backward(x, dy, dx);
        }
        #[cfg(target_arch = "x86_64")]
        if self.is_direct_narrow(w) {
            return self.narrow_backward(x, &OutputGrad::Ready(&dy.data), dx);
        }
        let positions = dy.shape[2] * dy.shape[3];
        let rows = g.col_rows();
        let chunk = self.chunk_samples(positions);
        let chunks = n.div_ceil(chunk);
        let w_len = g.c_out * rows;
        self.zero_partials(chunks);
        if dx.is_some() {
            self.dcols.resize(n * rows * positions, 0.0);
        }
        let in_len = g.c_in * h * w;
        let out_len = g.c_out * positions;
        let cols = &self.cols;
        let weight = &self.weight.value.data;
        let tmp_buf = SharedMut::new(&mut self.chunk_out);
        let dcols_buf = SharedMut::new(&mut self.dcols);
        let pdw = SharedMut::new(&mut self.partial_dw);
        let pdb = SharedMut::new(&mut self.partial_db);
        let dx_buf = dx.map(|t| SharedMut::new(&mut t.data));
        for_each_chunk(n, chunk, |ci, first, samples| {
            let width = samples * positions;
            let dy_chunk = &dy.data[first * out_len..][..samples * out_len];
            // The chunk's output gradient as [O, samples * positions].
            let dyc: &[f32] = if samples == 1 {
                dy_chunk
            } else {
                // SAFETY: disjoint per chunk.
                let tmp = unsafe { tmp_buf.range(first * out_len, samples * out_len) };
                for s in 0..samples {
                    for o in 0..g.c_out {
                        tmp[o * width + s * positions..][..positions].copy_from_slice(
                            &dy_chunk[(s * g.c_out + o) * positions..][..positions],
                        );
                    }
                }
                tmp
            };
            let cols_c = &cols[first * rows * positions..][..rows * width];
            let dyc_mat = MatRef::new(dyc, g.c_out, width);
            // SAFETY: chunk ci owns its partial-gradient slots.
            let dw = unsafe { pdw.range(ci * w_len, w_len) };
            matmul(dyc_mat, MatRef::new(cols_c, rows, width).t(), dw, 0.0);
            let db = unsafe { pdb.range(ci * g.c_out, g.c_out) };
            for (o, d) in db.iter_mut().enumerate() {
                *d = super::sum(&dyc[o * width..(o + 1) * width]);
            }
            if let Some(dx_buf) = dx_buf {
                let dcols = unsafe { dcols_buf.range(first * rows * positions, rows * width) };
                matmul(MatRef::new(weight, g.c_out, rows).t(), dyc_mat, dcols, 0.0);
                let dx = unsafe { dx_buf.range(first * in_len, samples * in_len) };
                dx.fill(0.0);
                col2im(dcols, samples, h, w, g, dx);
            }
        });
        self.add_partials(chunks);
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}

impl Conv2d {
    /// Computes `y` = 2x2, stride-2 max pooling of the ReLU of this convolution's output, in
    /// one pass that never writes the convolution's output, with the pooling's `argmax` (the
    /// flat index within this layer's output plane of each window's maximum, as
    /// [`super::pool::maxpool_forward`] writes it), where a direct kernel covers the shape
    /// (AVX-512: conv1's and conv2's). Returns false, doing nothing, where none does. Without
    /// `argmax` (None: no backward pass follows), the pass may take a quicker way to the same
    /// values.
    pub fn forward_relu_maxpool(
        &mut self,
        x: &Tensor,
        y: &mut Tensor,
        argmax: Option<&mut Vec<u32>>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.fused_forward(x, y, argmax);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, y, argmax);
            false
        }
    }

    /// The backward pass of this convolution when its output went through a ReLU and a 2x2
    /// max pooling (the ReLU folded into the pooling): each parallel task first makes its
    /// samples' output gradient from `pooled` into `dy` (as the pooling's backward pass would),
    /// then runs this layer's backward on it. Returns false, doing nothing, where the direct
    /// kernels do not cover the shape; the pooling's and this layer's passes then run one
    /// after the other.
    pub fn backward_through_maxpool(
        &mut self,
        x: &Tensor,
        pooled: &PooledGrad,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) -> bool {
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, pooled, dy, dx);
            false
        }
        #[cfg(target_arch = "x86_64")]
        {
            let (h, w) = (x.shape[2], x.shape[3]);
            let g = self.geometry;
            let narrow = !self.is_dense(h, w) && self.is_direct_narrow(w);
            // The single-channel path computes an input gradient (never asked for in training)
            // from the whole output gradient, after its tasks: not from pooled chunks.
            let single = self.is_direct_single_channel(w) && dx.is_none();
            let plane = (g.out_side(h), g.out_side(w));
            assert_eq!(
                (pooled.channels, pooled.plane),
                (g.c_out, plane),
                "pooling's shape"
            );
            if !single && !narrow {
                return false;
            }
            let source = OutputGrad::Pooled(pooled, SharedMut::new(&mut dy.data));
            if single {
                self.direct_weight_grad(x, &source);
            } else {
                self.narrow_backward(x, &source, dx);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Mode;

    /// A clone has the parameters and geometry but none of the scratch, which after a
    /// backward pass on many threads holds a slab per thread.
    #[test]
    fn a_clone_copies_parameters_not_scratch() {
        let g = ConvGeometry {
            c_in: 6,
            c_out: 16,
            kernel: 5,
            stride: 1,
            padding: 0,
        };
        let mut conv = Conv2d::new(g, &mut Rng::new(4));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .unwrap();
        let x = Tensor::from_vec(&[8, 6, 14, 14], vec![0.5; 8 * 6 * 196]);
        let mut y = Tensor::default();
        y.resize(&conv.output_shape(&x.shape));
        let mut ctx_rng = Rng::new(0);
        pool.install(|| {
            conv.forward(
                &x,
                &mut y,
                &mut Context {
                    mode: Mode::Train,
                    rng: &mut ctx_rng,
                },
            );
            let dy = Tensor::from_vec(&y.shape, vec![0.1; y.len()]);
            let mut dx = Tensor::default();
            dx.resize(&x.shape);
            conv.backward(&x, &y, &dy, Some(&mut dx));
        });
        let scratch = |c: &Conv2d| {
            [
                &c.cols,
                &c.chunk_out,
                &c.dcols,
                &c.partial_dw,
                &c.weight_t,
                &c.sparse_scratch,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
        };
        assert!(scratch(&conv) > 0);
        let copy = conv.clone();
        assert_eq!(scratch(&copy), 0);
        assert_eq!(copy.weight.value, conv.weight.value);
        assert_eq!(copy.bias.value, conv.bias.value);
        assert_eq!(copy.geometry, conv.geometry);
    }
}
