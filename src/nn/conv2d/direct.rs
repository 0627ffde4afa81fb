//! The direct paths of the convolution, on AVX-512 kernels that write no im2col matrix, for
//! the shapes LeNet-5 produces: one input channel (conv1, [`kernels::conv_single_channel`]),
//! narrow planes (conv2, [`kernels::conv_narrow`], and [`kernels::sparse`] for a mostly zero
//! output gradient), and each with the ReLU and 2x2 max pooling after it in the same pass
//! ([`kernels::fused`]). Every entry point returns false, doing nothing, where no direct
//! kernel covers the shape (or the processor lacks AVX-512); the layer then takes im2col and
//! GEMM. Off x86-64 this module is `portable.rs`, where no entry point ever applies.

use super::{Conv2d, ConvGeometry, Kept, Units, conv2d_backward_direct};
use crate::nn::kernels::{self, gemm, sparse};
use crate::nn::pool::PooledGrad;
use crate::nn::{SharedMut, for_each_chunk};
use crate::tensor::Tensor;

/// The forward pass on a direct kernel, where one covers the shape.
pub(super) fn forward(conv: &mut Conv2d, x: &Tensor, y: &mut Tensor) -> bool {
    let w = x.shape[3];
    if conv.is_direct_single_channel(w) {
        conv.direct_forward(x, y);
    } else if conv.is_direct_narrow(w) {
        conv.narrow_forward(x, y);
    } else {
        return false;
    }
    true
}

/// The backward pass on a direct kernel, where one covers the shape.
pub(super) fn backward(
    conv: &mut Conv2d,
    x: &Tensor,
    dy: &Tensor,
    dx: Option<&mut Tensor>,
) -> bool {
    let w = x.shape[3];
    if conv.is_direct_single_channel(w) {
        conv.direct_backward(x, dy, dx);
    } else if conv.is_direct_narrow(w) {
        conv.narrow_backward(x, &OutputGrad::Ready(&dy.data), dx);
    } else {
        return false;
    }
    true
}

/// [`Conv2d::forward_relu_maxpool`].
pub(super) fn forward_relu_maxpool(
    conv: &mut Conv2d,
    x: &Tensor,
    y: &mut Tensor,
    argmax: Option<&mut Vec<u32>>,
) -> bool {
    conv.fused_forward(x, y, argmax)
}

/// [`Conv2d::backward_through_maxpool`].
pub(super) fn backward_through_maxpool(
    conv: &mut Conv2d,
    x: &Tensor,
    pooled: &PooledGrad,
    dy: &mut Tensor,
    dx: Option<&mut Tensor>,
) -> bool {
    let (h, w) = (x.shape[2], x.shape[3]);
    let g = conv.geometry;
    let narrow = !conv.is_dense(h, w) && conv.is_direct_narrow(w);
    // The single-channel path computes an input gradient (never asked for in training)
    // from the whole output gradient, after its tasks: not from pooled chunks.
    let single = conv.is_direct_single_channel(w) && dx.is_none();
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
        conv.direct_weight_grad(x, &source);
    } else {
        conv.narrow_backward(x, &source, dx);
    }
    true
}

impl Conv2d {
    /// Whether the single-channel direct kernel applies (LeNet's conv1 on an AVX-512 processor):
    /// one input channel, kernel at most 5 wide, stride 1, no padding, output rows of at most
    /// 32.
    fn is_direct_single_channel(&self, w: usize) -> bool {
        let g = self.geometry;
        let fast = crate::simd::available();
        fast && g.c_in == 1
            && g.kernel <= 5
            && g.stride == 1
            && g.padding == 0
            && g.out_side(w) <= 32
    }

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
                    kernels::conv_single_channel::conv1ch_forward(
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
    fn direct_weight_grad(&mut self, x: &Tensor, dy: &OutputGrad) {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let (k, c_out) = (self.geometry.kernel, self.geometry.c_out);
        let (oh, ow) = (self.geometry.out_side(h), self.geometry.out_side(w));
        let out_len = c_out * oh * ow;
        let layout = kernels::conv_single_channel::conv1ch_grad_layout((oh, w));
        let chunks = n.div_ceil(DIRECT_CHUNK);
        let w_len = self.weight.value.len();
        self.zero_partials(chunks);
        if self.scratch.grad_masks.0 != (oh, ow, w) {
            self.scratch.grad_masks = (
                (oh, ow, w),
                kernels::conv_single_channel::conv1ch_grad_masks((oh, ow), w),
            );
        }
        let masks = &self.scratch.grad_masks.1;
        // Per worker thread: the padded output gradient, then the lane sums (and, keeping
        // each sample's gradient, the sums' totals before its image); 64-byte aligned.
        let threads = crate::parallel::threads();
        let grad_len = c_out * layout.1;
        let keep = self.samples.on;
        let sums_len = w_len * 16;
        let slab_len = grad_len + sums_len + w_len * usize::from(keep);
        self.scratch.dcols.resize(threads * slab_len + 16, 0.0);
        let align = self.scratch.dcols.as_ptr().align_offset(64).min(15);
        let scratch = SharedMut::new(&mut self.scratch.dcols[align..]);
        let pdw = SharedMut::new(&mut self.scratch.partial_dw);
        let pdb = SharedMut::new(&mut self.scratch.partial_db);
        let slot = self.samples.slot;
        let each_w = SharedMut::new(&mut self.samples.weight);
        let each_b = SharedMut::new(&mut self.samples.bias);
        let kept = SharedMut::new(&mut self.samples.kept);
        for_each_chunk(n, DIRECT_CHUNK, |ci, first, samples| {
            // SAFETY: chunk ci owns its partial slots and its samples of dy and of the kept
            // gradients; a worker thread owns its scratch slab; AVX-512F checked.
            unsafe {
                let slab = crate::parallel::thread_index() % threads;
                let (dyp, sums) = scratch
                    .range(slab * slab_len, slab_len)
                    .split_at_mut(grad_len);
                let (sums, totals) = sums.split_at_mut(sums_len);
                sums.fill(0.0);
                totals.fill(0.0);
                let dw = pdw.range(ci * w_len, w_len);
                let db = pdb.range(ci * c_out, c_out);
                for s in first..first + samples {
                    dy.padded(s, out_len, (oh, ow), layout, dyp);
                    for (o, (db, plane)) in
                        db.iter_mut().zip(dyp.chunks_exact(layout.1)).enumerate()
                    {
                        let sum = kernels::reduce::avx512::sum_wide(plane);
                        *db += sum;
                        if keep {
                            each_b.range(s * c_out + o, 1)[0] = sum;
                        }
                    }
                    let x = &x.data[s * h * w..][..h * w];
                    kernels::conv_single_channel::conv1ch_weight_grad(
                        x,
                        (h, w),
                        k,
                        dyp,
                        masks,
                        sums,
                    );
                    if keep {
                        let each = each_w.range(s * slot, w_len);
                        kernels::conv_single_channel::lane_sum_changes(sums, totals, each);
                        kept.range(s, 1)[0] = Kept::Plain;
                    }
                }
                kernels::conv_single_channel::add_lane_sums(sums, dw);
            }
        });
        self.add_partials(chunks);
    }

    /// Whether the narrow direct kernels apply (LeNet's conv2 on an AVX-512 processor): stride
    /// 1, no padding, input rows of at most 16 values.
    fn is_direct_narrow(&self, w: usize) -> bool {
        let g = self.geometry;
        let fast = crate::simd::available();
        fast && g.stride == 1 && g.padding == 0 && w <= 16
    }

    fn narrow_forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let g = self.geometry;
        let (in_len, out_len) = (x.item_len(), y.item_len());
        self.transpose_weight_by_tap();
        let ys = SharedMut::new(&mut y.data);
        let (wt, bias) = (&self.scratch.weight_t, &self.bias.value.data);
        for_each_chunk(n, DIRECT_CHUNK, |_, first, samples| {
            // SAFETY: disjoint sample ranges; AVX-512F checked by is_direct_narrow.
            unsafe {
                let y = ys.range(first * out_len, samples * out_len);
                let x = &x.data[first * in_len..][..samples * in_len];
                if !kernels::conv_narrow::conv_forward_channels_in_lanes(
                    x,
                    samples,
                    (h, w),
                    g,
                    wt,
                    bias,
                    y,
                ) {
                    kernels::conv_narrow::conv_narrow_forward(x, samples, (h, w), g, wt, bias, y);
                }
            }
        });
    }

    /// Writes the weight transposed to `[C*K*K, O]` into `weight_t`, for the narrow forward
    /// kernels: each tap's weights for all output channels are one contiguous row.
    fn transpose_weight_by_tap(&mut self) {
        let (rows, c_out) = (self.geometry.col_rows(), self.geometry.c_out);
        self.scratch.weight_t.resize(rows * c_out, 0.0);
        transpose(
            &self.weight.value.data,
            c_out,
            rows,
            &mut self.scratch.weight_t,
        );
    }

    /// [`Conv2d::forward_relu_maxpool`] on the direct kernels: the single-channel kernel
    /// (conv1) or the channels-in-lanes one (conv2), each pooling two output rows at a time
    /// while they are in registers ([`kernels::fused`]).
    fn fused_forward(&mut self, x: &Tensor, y: &mut Tensor, argmax: Option<&mut Vec<u32>>) -> bool {
        use kernels::fused;
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
        // Keeping the ReLU's units: one bit array per chunk (rows on the single-channel
        // kernel, positions on the other), ORed together when asked for.
        let alive_len = if single { g.c_out * oh } else { oh * ow };
        let keep = self.samples.on && argmaxes.is_some();
        self.samples.units = keep.then(|| {
            let layout = if single {
                Units::Rows
            } else {
                Units::Positions
            };
            (layout, (g.c_out, oh, ow), alive_len)
        });
        self.samples.alive.clear();
        if keep {
            self.samples
                .alive
                .resize(n.div_ceil(DIRECT_CHUNK) * alive_len, 0);
        }
        let alive = SharedMut::new(&mut self.samples.alive);
        // SAFETY: chunk ci alone asks for array ci.
        let alive = |ci: usize| keep.then(|| unsafe { alive.range(ci * alive_len, alive_len) });
        let ys = SharedMut::new(&mut y.data);
        let bias = &self.bias.value.data;
        if single {
            let weight = &self.weight.value.data;
            for_each_chunk(n, DIRECT_CHUNK, |ci, first, samples| {
                let mut alive = alive(ci);
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
                            alive.as_deref_mut(),
                        );
                    }
                }
            });
        } else {
            let wt = &self.scratch.weight_t;
            for_each_chunk(n, DIRECT_CHUNK, |ci, first, samples| {
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
                        alive(ci),
                    );
                }
            });
        }
        true
    }

    /// Writes the weight laid out `[O, K, K, C]` into `weight_t`, for the input-gradient
    /// kernels of the narrow path (broadcasts on the dense path, kernel rows on the sparse one).
    fn transpose_weight_channel_last(&mut self) {
        let g = self.geometry;
        let rows = g.col_rows();
        self.scratch.weight_t.resize(self.weight.value.len(), 0.0);
        let weight = self.weight.value.data.chunks_exact(rows);
        for (wo, wto) in weight.zip(self.scratch.weight_t.chunks_exact_mut(rows)) {
            transpose(wo, g.c_in, g.kernel * g.kernel, wto);
        }
    }

    /// Backward of the narrow direct path. A chunk whose output gradient is mostly zeros (as
    /// behind ReLU and max pooling) goes to the sparse kernels, which visit the nonzero values
    /// only ([`kernels::sparse`]). Otherwise the weight gradient takes the chunk's output
    /// gradient channel-last (one vector per position holds all output channels; 5x5 kernels
    /// with at most 16 output channels) or, for other shapes, row by row; the input gradient
    /// gathers the shifted output-gradient rows of every kernel tap that reaches an input row.
    /// None of them writes a column matrix. Which path a chunk takes depends on its values
    /// only, never on the thread count.
    fn narrow_backward(&mut self, x: &Tensor, dy: &OutputGrad, dx: Option<&mut Tensor>) {
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
        // Keeping each sample's gradient, in the layout of the kernel that sums it
        // ([`SampleGrads`]).
        let (keep, slot) = (self.samples.on, self.samples.slot);
        if sparse_ok {
            self.scratch
                .sparse
                .resize(crate::parallel::threads() * sparse_len, 0.0);
        }
        if dx.is_some() {
            self.transpose_weight_channel_last();
        }
        // One scratch slab per worker thread: the chunk's output gradient channel-last.
        let threads = crate::parallel::threads();
        let slab_len = DIRECT_CHUNK * out_len;
        if channel_last {
            self.scratch.dcols.resize(threads * slab_len, 0.0);
        }
        let pdw = SharedMut::new(&mut self.scratch.partial_dw);
        let pdb = SharedMut::new(&mut self.scratch.partial_db);
        let scratch = SharedMut::new(&mut self.scratch.dcols);
        let dx_buf = dx.map(|t| SharedMut::new(&mut t.data));
        let wt = &self.scratch.weight_t;
        let sparse_scratch = SharedMut::new(&mut self.scratch.sparse);
        let each_w = SharedMut::new(&mut self.samples.weight);
        let each_b = SharedMut::new(&mut self.samples.bias);
        let kept = SharedMut::new(&mut self.samples.kept);
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
                    let dx = (dx_buf.as_ref()).map(|d| d.range(first * in_len, samples * in_len));
                    let each = keep.then(|| {
                        kept.range(first, samples).fill(Kept::SparseBlocks);
                        (
                            each_w.range(first * slot, samples * slot),
                            each_b.range(first * g.c_out, samples * g.c_out),
                        )
                    });
                    let grads = (dw, db, dx);
                    return sparse_chunk(x, dy, samples, (h, w), g, wt, scratch, grads, each);
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
                    let each = keep.then(|| {
                        kept.range(first, samples).fill(Kept::ChannelLast);
                        // Each sample's bias gradient: its output gradient's sum per channel.
                        let bias = each_b.range(first * g.c_out, samples * g.c_out);
                        let items = dyt.chunks_exact(positions * g.c_out);
                        for (bias, item) in bias.chunks_exact_mut(g.c_out).zip(items) {
                            bias.fill(0.0);
                            for position in item.chunks_exact(g.c_out) {
                                bias.iter_mut().zip(position).for_each(|(b, &v)| *b += v);
                            }
                        }
                        each_w.range(first * slot, samples * slot)
                    });
                    kernels::conv_narrow::conv5_weight_grad_channel_last(
                        x,
                        samples,
                        (h, w),
                        g,
                        dyt,
                        dw,
                        db,
                        each,
                    );
                } else {
                    kernels::conv_narrow::conv_narrow_weight_grad(
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
                    kernels::conv_narrow::conv_narrow_input_grad(dy, samples, (h, w), g, wt, dx);
                }
            }
        });
        self.add_partials(chunks);
    }
}

/// One chunk of the narrow backward pass on the sparse kernels: the weight and bias
/// gradients of `samples` images (`x`, and their output gradient `dy`) into `dw` and `db`,
/// and with `dx` their input gradient, through the weight laid out `[O, K, K, C]` (`wt`).
/// `scratch` holds the chunk's images channel-last, one output and one input gradient
/// channel-last, and the weight gradient's scratch; `each`, when given, gets each image's
/// own weight gradient in that scratch's layout and its own bias gradient
/// ([`sparse::weight_grad`]).
///
/// # Safety
/// AVX-512F is present, and the sparse kernels apply to the shape ([`sparse::applies`]).
#[allow(clippy::too_many_arguments)]
unsafe fn sparse_chunk(
    x: &[f32],
    dy: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    scratch: &mut [f32],
    (dw, db, dx): (&mut [f32], &mut [f32], Option<&mut [f32]>),
    each: Option<(&mut [f32], &mut [f32])>,
) {
    let (oh, ow) = (g.out_side(h), g.out_side(w));
    let (plane, positions) = (h * w, oh * ow);
    let (in_len, out_len) = (g.c_in * plane, g.c_out * positions);
    let (xt, rest) = scratch.split_at_mut(DIRECT_CHUNK * in_len);
    let (dyt, rest) = rest.split_at_mut(positions * 16);
    let (dxt, dwt) = rest.split_at_mut(in_len);
    // SAFETY: the caller's promise; the scratch parts have the kernels' sizes.
    unsafe {
        sparse::channel_last(x, samples, g.c_in, plane, xt);
        sparse::weight_grad(xt, dy, samples, (h, w), g, dwt, db, each);
        sparse::add_weight_grad(dwt, g, dw);
        let Some(dx) = dx else { return };
        for s in 0..samples {
            let dys = &dy[s * out_len..][..out_len];
            sparse::channel_last_16(dys, g.c_out, positions, dyt);
            sparse::input_grad(dyt, (h, w), g, wt, dxt);
            sparse::channel_first(dxt, g.c_in, plane, &mut dx[s * in_len..]);
        }
    }
}

/// `dst` [cols, rows] = `src` [rows, cols] transposed (both row-major): the weight re-laid
/// out at every call of the direct paths, which at one sample per step costs as much as a
/// small kernel unless done with vector gathers.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    if crate::simd::available() {
        // SAFETY: AVX-512F is present; both slices hold rows * cols values.
        return unsafe { gemm::transpose(src, rows, cols, dst) };
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
