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
//! Per-sample terms ([`Layer::sample_terms`]): the same sums over one sample's positions
//! only, its im2col matrix times its output gradient, or, where the backward pass kept them
//! ([`Layer::keep_sample_grads`]), the changes each sample made to the direct kernels' sums.
//! Second order ([`Layer::backward_curvature`]): the same sums with dy replaced by the output's
//! second derivatives d2y and every input and weight squared, x^2 and w^2; a weight a
//! connection table removes has none.
//!
//! The general path is im2col + GEMM: the K*K*C values each output position reads become one
//! column of a `[C*K*K, positions]` matrix, so the convolution is `w (as [O, C*K*K]) x cols`.
//! A convolution whose output is one position per channel is a fully connected layer; LeNet's
//! conv1 and conv2 take direct kernels where the processor has AVX-512 (`direct.rs`, one
//! dispatch in each pass). [`conv2d_forward_direct`] and [`conv2d_backward_direct`] are the
//! plain loops every path is tested against.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html>

#[cfg_attr(not(target_arch = "x86_64"), path = "portable.rs")]
mod direct;

use super::kernels::dense::{linear_backward, linear_forward, linear_sample_terms};
pub use super::kernels::im2col::ConvGeometry;
use super::kernels::im2col::{col2im, im2col};
use super::kernels::matmul::{MatRef, matmul};
use super::kernels::scratch::ConvScratch;
use super::layer::{for_sample_terms, square_and_dot};
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

/// Sets the entries a connection table removes (`frozen`, where there is one) to zero.
fn zero_frozen(frozen: &Option<Vec<bool>>, values: &mut [f32]) {
    if let Some(frozen) = frozen {
        for (v, &z) in values.iter_mut().zip(frozen) {
            if z {
                *v = 0.0;
            }
        }
    }
}

/// How one kept sample's weight gradient is laid out in its slot of [`SampleGrads`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Kept {
    /// Not kept: the sample's terms come from its own im2col product.
    #[default]
    No,
    /// As the weight, `[O, C, K, K]` (the single-channel kernel).
    Plain,
    /// The sparse weight-gradient kernel's blocks, `[O, K, 32]`: row u of channel o holds
    /// `w[o, c, u, v]` at lane `v * C + c`, zeros past them.
    SparseBlocks,
    /// The channel-last weight-gradient kernel's lanes, `[C, K*K, 16]`: `w[o, c, t]` at lane
    /// o of tap t of channel c, zeros past O.
    ChannelLast,
}

impl Kept {
    /// `values` laid out `[O, C, K, K]` (a weight's shape, or its connection table's mask) as
    /// this layout lays out a kept gradient, the default value (zero, false) in its padding
    /// (`Plain`: a copy).
    fn lay_out<T: Copy + Default>(self, values: &[T], g: ConvGeometry) -> Vec<T> {
        let (k, c) = (g.kernel, g.c_in);
        let kk = k * k;
        let mut out = vec![T::default(); self.len(g)];
        for o in 0..g.c_out {
            for ci in 0..c {
                for t in 0..kk {
                    let at = match self {
                        Kept::No | Kept::Plain => (o * c + ci) * kk + t,
                        Kept::SparseBlocks => (o * k + t / k) * 32 + (t % k) * c + ci,
                        Kept::ChannelLast => (ci * kk + t) * 16 + o,
                    };
                    out[at] = values[(o * c + ci) * kk + t];
                }
            }
        }
        out
    }

    /// Values of a gradient in this layout.
    fn len(self, g: ConvGeometry) -> usize {
        match self {
            Kept::No | Kept::Plain => g.c_out * g.col_rows(),
            Kept::SparseBlocks => g.c_out * g.kernel * 32,
            Kept::ChannelLast => g.c_in * g.kernel * g.kernel * 16,
        }
    }

    /// The longest of the layouts that the kernels may keep for `g`: one sample's slot.
    fn slot(g: ConvGeometry) -> usize {
        let layouts = [Kept::Plain, Kept::SparseBlocks, Kept::ChannelLast];
        layouts.iter().map(|k| k.len(g)).max().unwrap_or(0)
    }
}

/// A convolution layer.
pub struct Conv2d {
    pub geometry: ConvGeometry,
    pub weight: Param,
    pub bias: Param,
    /// What the kernels keep between and within passes ([`ConvScratch`]).
    scratch: ConvScratch,
    /// Each sample's own gradient from the last backward pass, where asked for.
    samples: SampleGrads,
}

/// Each sample's term of the weight and bias gradients of the last backward pass, kept for
/// [`Layer::sample_terms`] when [`Layer::keep_sample_grads`] asks: the direct kernels that
/// add a chunk's samples one after the other into running sums write, after each sample, the
/// change it made to those sums (equal to the sample's own gradient up to the rounding of
/// sums over at most [`direct`]'s chunk of 4 samples), in their own layout ([`Kept`]), so
/// the noise instruments cost no second pass over the images; [`Layer::sample_terms`] meets
/// each with the gradient laid out the same way, once a step. A sample whose kernel keeps
/// nothing (the im2col path) gets its terms from its own im2col product.
#[derive(Default)]
struct SampleGrads {
    on: bool,
    /// `[N, slot]` ([`Kept::slot`]; each sample's values at the start of its slot, laid out
    /// as `kept` says) and `[N, O]`.
    weight: Vec<f32>,
    slot: usize,
    bias: Vec<f32>,
    kept: Vec<Kept>,
    /// Where the last forward pass ran with the ReLU and pooling after it, in one pass that
    /// never writes the ReLU's output: which of those outputs were not zero, for some sample
    /// ([`Conv2d::relu_silent`]), as the fused kernels mark them, one bit array per chunk
    /// (`alive`), with the layout, the output's `(O, OH, OW)` and one array's length.
    units: Option<(Units, (usize, usize, usize), usize)>,
    alive: Vec<u32>,
}

/// How the fused kernels lay out the units they mark ([`crate::nn::kernels::fused`]; off
/// x86-64 none runs, so none marks any).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Units {
    /// Bit j of value `o * OH + i`: unit (o, i, j).
    Rows,
    /// Bit o of value `i * OW + j`: unit (o, i, j).
    Positions,
}

impl SampleGrads {
    /// Before a backward pass over `n` samples with geometry `g`: nothing kept yet, a slot
    /// for every sample.
    fn begin(&mut self, n: usize, g: ConvGeometry) {
        self.kept.clear();
        if self.on {
            self.slot = Kept::slot(g);
            self.kept.resize(n, Kept::No);
            self.weight.resize(n * self.slot, 0.0);
            self.bias.resize(n * g.c_out, 0.0);
        }
    }
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
            scratch: ConvScratch::default(),
            samples: SampleGrads::default(),
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

    /// Sizes the per-chunk partial gradients for `chunks` chunks, all zero.
    fn zero_partials(&mut self, chunks: usize) {
        let (w_len, c_out) = (self.weight.value.len(), self.geometry.c_out);
        self.scratch.partial_dw.clear();
        self.scratch.partial_dw.resize(chunks * w_len, 0.0);
        self.scratch.partial_db.clear();
        self.scratch.partial_db.resize(chunks * c_out, 0.0);
    }

    /// Adds the per-chunk partial gradients to the parameter gradients, in chunk order.
    fn add_partials(&mut self, chunks: usize) {
        let w_len = self.weight.value.len();
        let c_out = self.geometry.c_out;
        for part in self.scratch.partial_dw[..chunks * w_len].chunks_exact(w_len) {
            for (acc, &p) in self.weight.grad.data.iter_mut().zip(part) {
                *acc += p;
            }
        }
        for part in self.scratch.partial_db[..chunks * c_out].chunks_exact(c_out) {
            for (acc, &p) in self.bias.grad.data.iter_mut().zip(part) {
                *acc += p;
            }
        }
        self.zero_frozen_grads();
    }

    /// Keeps the gradients of the weights a connection table removes at zero.
    fn zero_frozen_grads(&mut self) {
        zero_frozen(&self.weight.frozen_zero, &mut self.weight.grad.data);
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> crate::nn::LayerKind {
        crate::nn::LayerKind::Conv
    }

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

    /// Every output position uses each trainable weight of its map once, and its bias.
    fn connections(&self, input: &[usize]) -> usize {
        let out = self.output_shape(input);
        let per_position: usize = self.params().iter().map(|p| p.trainable_len()).sum();
        out[2] * out[3] * per_position
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        self.samples.units = None;
        let g = self.geometry;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        if self.is_dense(h, w) {
            return self.dense_forward(x, y);
        }
        if direct::forward(self, x, y) {
            return;
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
        self.scratch.cols.resize(n * rows * positions, 0.0);
        self.scratch.chunk_out.resize(n * g.c_out * positions, 0.0);
        let cols = SharedMut::new(&mut self.scratch.cols);
        let out = SharedMut::new(&mut self.scratch.chunk_out);
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
            // A fully connected layer's terms come from its input and output gradient: it
            // keeps nothing (no slots of O*C*K*K values a sample).
            self.samples.kept.clear();
            return self.dense_backward(x, dy, dx);
        }
        self.samples.begin(n, g);
        let w_len = self.weight.value.len();
        let mut dx = dx;
        if direct::backward(self, x, dy, dx.as_deref_mut()) {
            return;
        }
        let positions = dy.shape[2] * dy.shape[3];
        let rows = g.col_rows();
        let chunk = self.chunk_samples(positions);
        let chunks = n.div_ceil(chunk);
        self.zero_partials(chunks);
        if dx.is_some() {
            self.scratch.dcols.resize(n * rows * positions, 0.0);
        }
        let in_len = g.c_in * h * w;
        let out_len = g.c_out * positions;
        let cols = &self.scratch.cols;
        let weight = &self.weight.value.data;
        let tmp_buf = SharedMut::new(&mut self.scratch.chunk_out);
        let dcols_buf = SharedMut::new(&mut self.scratch.dcols);
        let pdw = SharedMut::new(&mut self.scratch.partial_dw);
        let pdb = SharedMut::new(&mut self.scratch.partial_db);
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

    /// The plain loops of [`conv2d_backward_direct`]: the second-order pass runs on a few
    /// hundred samples per pass over the data, against tens of thousands for the first.
    fn backward_curvature(
        &mut self,
        x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let x2 = Tensor::from_vec(&x.shape, super::kernels::dense::squares(&x.data));
        let w2 = super::kernels::dense::squares(&self.weight.value.data);
        let (input, weight, bias) = conv2d_backward_direct(&x2, &w2, d2y, self.geometry);
        for (h, w) in self.weight.curvature.data.iter_mut().zip(weight) {
            *h += w;
        }
        zero_frozen(&self.weight.frozen_zero, &mut self.weight.curvature.data);
        for (h, b) in self.bias.curvature.data.iter_mut().zip(bias) {
            *h += b;
        }
        if let Some(d2x) = d2x {
            d2x.data.copy_from_slice(&input.data);
        }
    }

    fn sample_terms(
        &self,
        x: &Tensor,
        dy: &Tensor,
        sq: &mut [f64],
        dot: Option<&mut [f64]>,
    ) -> bool {
        let g = self.geometry;
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
        let (gw, gb) = (&self.weight.grad.data[..], &self.bias.grad.data[..]);
        let frozen = &self.weight.frozen_zero;
        if self.is_dense(h, w) && frozen.is_none() {
            let (rows, o) = (g.col_rows(), g.c_out);
            linear_sample_terms(&x.data, &dy.data, (gw, gb), n, rows, o, sq, dot);
            return true;
        }
        let (positions, rows) = (dy.shape[2] * dy.shape[3], g.col_rows());
        let (in_len, out_len) = (g.c_in * h * w, g.c_out * positions);
        let (w_len, kept) = (g.c_out * rows, &self.samples);
        // The gradient, and the weights a table removes, in each layout the samples were
        // kept in.
        let layouts = [Kept::Plain, Kept::SparseBlocks, Kept::ChannelLast];
        let laid_out: Vec<(Kept, Vec<f32>, Option<Vec<bool>>)> = (layouts.into_iter())
            .filter(|&layout| kept.kept.contains(&layout))
            .map(|layout| {
                let removed = frozen.as_ref().map(|f| layout.lay_out(f, g));
                (layout, layout.lay_out(gw, g), removed)
            })
            .collect();
        for_sample_terms(n, 4, sq, dot, |first, sq, dot| {
            let mut cols = vec![0.0f32; rows * positions];
            let mut term = vec![0.0f32; kept.slot.max(w_len)];
            let mut bias = vec![0.0f32; g.c_out];
            let want_dot = !dot.is_empty();
            for (s, sq) in sq.iter_mut().enumerate() {
                let ni = first + s;
                let layout = kept.kept.get(ni).copied().unwrap_or_default();
                let (term, grad, removed) = match laid_out.iter().find(|l| l.0 == layout) {
                    Some((_, grad, removed)) => {
                        // Kept by the backward pass ([`SampleGrads`]), in its layout.
                        let term = &mut term[..layout.len(g)];
                        term.copy_from_slice(&kept.weight[ni * kept.slot..][..term.len()]);
                        bias.copy_from_slice(&kept.bias[ni * g.c_out..][..g.c_out]);
                        (term, &grad[..], removed)
                    }
                    None => {
                        im2col(&x.data[ni * in_len..][..in_len], 1, h, w, g, &mut cols);
                        let dyn_ = &dy.data[ni * out_len..][..out_len];
                        let (dy_mat, cols_mat) = (
                            MatRef::new(dyn_, g.c_out, positions),
                            MatRef::new(&cols, rows, positions),
                        );
                        let term = &mut term[..w_len];
                        matmul(dy_mat, cols_mat.t(), term, 0.0);
                        for (o, b) in bias.iter_mut().enumerate() {
                            *b = dyn_[o * positions..(o + 1) * positions].iter().sum();
                        }
                        (term, gw, frozen)
                    }
                };
                zero_frozen(removed, term);
                let (w_sq, w_dot) = square_and_dot(term, if want_dot { grad } else { &[] });
                let (b_sq, b_dot) = square_and_dot(&bias, if want_dot { gb } else { &[] });
                *sq = w_sq + b_sq;
                if want_dot {
                    dot[s] = w_dot + b_dot;
                }
            }
        });
        true
    }

    fn keep_sample_grads(&mut self, on: bool) {
        // The buffers stay for the next recorded step.
        self.samples.on = on;
        self.samples.kept.clear();
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}

impl Conv2d {
    /// For the ReLU after this convolution, when the last forward pass ran the two (and the
    /// pooling) as one pass that never writes the ReLU's output, while per-sample gradients
    /// were kept ([`Layer::keep_sample_grads`]): for each unit (output position `[O, OH,
    /// OW]`), whether its output was zero for every sample. None otherwise.
    pub fn relu_silent(&self) -> Option<Vec<bool>> {
        let (layout, (c_out, oh, ow), len) = self.samples.units?;
        let mut alive = vec![0u32; len];
        for chunk in self.samples.alive.chunks_exact(len) {
            for (a, &c) in alive.iter_mut().zip(chunk) {
                *a |= c;
            }
        }
        let mut silent = Vec::with_capacity(c_out * oh * ow);
        for o in 0..c_out {
            for i in 0..oh {
                silent.extend((0..ow).map(|j| {
                    let (word, bit) = match layout {
                        Units::Rows => (alive[o * oh + i], j),
                        Units::Positions => (alive[i * ow + j], o),
                    };
                    word >> bit & 1 == 0
                }));
            }
        }
        Some(silent)
    }

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
        self.samples.units = None;
        direct::forward_relu_maxpool(self, x, y, argmax)
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
        self.samples.begin(x.shape[0], self.geometry);
        direct::backward_through_maxpool(self, x, pooled, dy, dx)
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
                &c.scratch.cols,
                &c.scratch.chunk_out,
                &c.scratch.dcols,
                &c.scratch.partial_dw,
                &c.scratch.weight_t,
                &c.scratch.sparse,
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
