//! AVX-512 kernels for the shapes LeNet-5 produces, chosen at run time when the processor has
//! AVX-512F (elsewhere the layers use portable loops and the `gemm` crate). Each sums in a
//! fixed order, so results do not depend on the number of threads.
//!
//! Matrix products. LeNet's are small and lopsided (6 or 16 output channels against hundreds
//! of positions), so instead of packing panels like a general GEMM, two unpacked kernels
//! cover them (conv3 and the fully connected layers):
//!
//! - [`gemm_rows`]: `c = a b` when the rows of `b` are contiguous. A tile of up to 8 rows x
//!   48 columns of `c` lives in 24 registers; each step of the inner dimension loads three
//!   vectors of one row of `b` and broadcasts one element of `a` per row (any strides).
//! - [`gemm_dot`]: `c = a b` when the rows of `a` and the columns of `b` are contiguous (a
//!   product with a transposed operand, such as a weight gradient dy x^T): each entry is a dot
//!   product, computed 4 x 4 at a time with 16-lane accumulators and a final horizontal sum.
//!
//! Direct convolutions, which write no im2col matrix:
//!
//! - conv1 (one input channel, rows of 28): [`conv1ch_forward`] holds a row of outputs of 8
//!   channels in registers while the 25 shifted input rows stream past;
//!   [`conv1ch_weight_grad`] takes the output gradient as wide as the input, so that every
//!   kernel tap reads its input at one fixed offset from the output position.
//! - conv2 (6 to 16 channels, rows of 10): [`conv_forward_channels_in_lanes`] puts the 16
//!   output channels in the lanes, so every lane is useful ([`conv_narrow_forward`], rows in
//!   the lanes, covers other narrow shapes); the backward pass goes to [`sparse`] when the
//!   output gradient is mostly zero (behind ReLU and max pooling it always is), else to
//!   [`conv5_weight_grad_channel_last`] or [`conv_narrow_weight_grad`] and
//!   [`conv_narrow_input_grad`].
//!
//! In the forward pass, conv1 and conv2 with the ReLU and 2x2 max pooling after them run as
//! one pass ([`fused`]: two output rows are pooled while still in registers), and in the
//! backward pass each chunk of the convolution's tasks first makes its output gradient from
//! the pooling's ([`crate::nn::pool::PooledGrad`]).
//!
//! Element-wise and pooling: [`relu_forward`], [`relu_backward`], [`maxpool2x2_forward`]
//! (optionally with the ReLU before it folded in) and [`maxpool2x2_backward`].

use std::arch::x86_64::*;

pub mod fused;
pub mod sparse;

use super::conv2d::{ConvGeometry, RowOps, col2im_with, im2col_with};

/// Whether the kernels run: the processor has AVX-512F and the environment variable
/// `LENET_SIMD` is not `portable` (which selects the portable paths everywhere, so they can be
/// tested on any machine). Checked once per process.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var("LENET_SIMD").map_or(true, |v| v != "portable")
            && is_x86_feature_detected!("avx512f")
    })
}

const LANES: usize = 16;
/// Vectors of `c` per row in a [`gemm_rows`] tile.
const NV: usize = 3;

/// Mask of the lanes of vector `v` that fall inside `cols` columns.
#[inline(always)]
fn lane_mask(cols: usize, v: usize) -> __mmask16 {
    let left = cols.saturating_sub(v * LANES);
    if left >= LANES {
        0xFFFF
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}

/// `c[i*ldc + j] = sum_p a[i*a_rs + p*a_cs] * b[p*ldb + j] (+ beta * c)` for an `m x n`
/// result with inner dimension `k`.
///
/// # Safety
/// AVX-512F must be available; every index above must lie inside its buffer.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows(
    (m, n, k): (usize, usize, usize),
    a: *const f32,
    (a_rs, a_cs): (usize, usize),
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(8);
        let mut j0 = 0;
        while j0 < n {
            let cols = (n - j0).min(NV * LANES);
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                let a = a.add(i0 * a_rs);
                let b = b.add(j0);
                let c = c.add(i0 * ldc + j0);
                match rows {
                    8 => rows_tile::<8>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    7 => rows_tile::<7>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    6 => rows_tile::<6>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    5 => rows_tile::<5>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    4 => rows_tile::<4>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    3 => rows_tile::<3>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    2 => rows_tile::<2>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                    _ => rows_tile::<1>(k, cols, a, (a_rs, a_cs), b, ldb, c, ldc, beta),
                }
            }
            j0 += NV * LANES;
        }
        i0 += 8;
    }
}

/// `c[j] = sum over p in rows of a[p] * b[p * n + j]` for `j < n`, the terms in the order of
/// `rows`: one row of [`gemm_rows`] (`beta` 0) with the terms outside `rows` left out. Each
/// sum is the same chain of multiply-adds from +0 as that kernel's, so leaving out terms
/// whose `a[p]` is +0.0 does not change its bits.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemv_rows_selected(a: &[f32], rows: &[u32], b: &[f32], n: usize, c: &mut [f32]) {
    assert!(c.len() >= n && rows.iter().all(|&p| (p as usize + 1) * n <= b.len()));
    assert!(rows.iter().all(|&p| (p as usize) < a.len()));
    let mut j0 = 0;
    while j0 < n {
        let cols = (n - j0).min(NV * LANES);
        let masks = [lane_mask(cols, 0), lane_mask(cols, 1), lane_mask(cols, 2)];
        let mut acc = [_mm512_setzero_ps(); NV];
        for &p in rows {
            let av = _mm512_set1_ps(a[p as usize]);
            // SAFETY: row p of b holds n values (asserted); lanes beyond cols are masked.
            unsafe {
                let row = b.as_ptr().add(p as usize * n + j0);
                for (v, acc) in acc.iter_mut().enumerate() {
                    let bv = _mm512_maskz_loadu_ps(masks[v], row.add(v * LANES));
                    *acc = _mm512_fmadd_ps(av, bv, *acc);
                }
            }
        }
        for (v, &acc) in acc.iter().enumerate() {
            if masks[v] != 0 {
                // SAFETY: c holds n values; lanes beyond cols are masked.
                unsafe { _mm512_mask_storeu_ps(c.as_mut_ptr().add(j0 + v * LANES), masks[v], acc) };
            }
        }
        j0 += NV * LANES;
    }
}

#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn rows_tile<const MR: usize>(
    k: usize,
    cols: usize,
    a: *const f32,
    (a_rs, a_cs): (usize, usize),
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    let masks = [lane_mask(cols, 0), lane_mask(cols, 1), lane_mask(cols, 2)];
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // SAFETY: the caller guarantees the tile lies inside the buffers; masked lanes are not
    // touched in memory.
    unsafe {
        if cols == NV * LANES {
            for p in 0..k {
                let row = b.add(p * ldb);
                let bv = [
                    _mm512_loadu_ps(row),
                    _mm512_loadu_ps(row.add(LANES)),
                    _mm512_loadu_ps(row.add(2 * LANES)),
                ];
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(i * a_rs + p * a_cs));
                    for v in 0..NV {
                        acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
                    }
                }
            }
        } else {
            for p in 0..k {
                let row = b.add(p * ldb);
                let bv = [
                    _mm512_maskz_loadu_ps(masks[0], row),
                    _mm512_maskz_loadu_ps(masks[1], row.add(LANES)),
                    _mm512_maskz_loadu_ps(masks[2], row.add(2 * LANES)),
                ];
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(i * a_rs + p * a_cs));
                    for v in 0..NV {
                        acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (v, &value) in acc.iter().enumerate() {
                if masks[v] == 0 {
                    continue;
                }
                let out = c.add(i * ldc + v * LANES);
                let value = if beta != 0.0 {
                    let old = _mm512_maskz_loadu_ps(masks[v], out);
                    _mm512_fmadd_ps(_mm512_set1_ps(beta), old, value)
                } else {
                    value
                };
                _mm512_mask_storeu_ps(out, masks[v], value);
            }
        }
    }
}

/// `c[i*ldc + j] = sum_p a[i*lda + p] * bt[j*ldbt + p] (+ beta * c)`: rows of `a` against
/// rows of `bt` (the columns of `b`), for an `m x n` result with inner dimension `k`.
///
/// # Safety
/// AVX-512F must be available; every index above must lie inside its buffer.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_dot(
    (m, n, k): (usize, usize, usize),
    a: *const f32,
    lda: usize,
    bt: *const f32,
    ldbt: usize,
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(4);
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            // A lone row (one sample per step) takes a one-row tile, not a 4x4 tile three
            // quarters of whose products would repeat it.
            if rows == 1 {
                dot_tiles::<1, 8>(i0, 1, (n, k), a, lda, bt, ldbt, c, ldc, beta);
            } else {
                dot_tiles::<4, 4>(i0, rows, (n, k), a, lda, bt, ldbt, c, ldc, beta);
            }
        }
        i0 += 4;
    }
}

/// `rows` (at most `R`) rows of [`gemm_dot`] from row `i0`, in tiles of `R x C` dot products,
/// each a vector of 16 partial sums over `k` added up at the end. Every product runs the same
/// sequence of operations whatever the tile, so the tile shape does not change results.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn dot_tiles<const R: usize, const C: usize>(
    i0: usize,
    rows: usize,
    (n, k): (usize, usize),
    a: *const f32,
    lda: usize,
    bt: *const f32,
    ldbt: usize,
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    let full = k / LANES * LANES;
    let tail = lane_mask(k - full, 0);
    let mut j0 = 0;
    while j0 < n {
        let cols = (n - j0).min(C);
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        // SAFETY: rows i0..i0+rows of a and j0..j0+cols of bt hold k values each; rows or
        // columns beyond the tile reuse the last valid one and are not stored.
        unsafe {
            let ar: [*const f32; R] = std::array::from_fn(|i| a.add((i0 + i.min(rows - 1)) * lda));
            let br: [*const f32; C] =
                std::array::from_fn(|j| bt.add((j0 + j.min(cols - 1)) * ldbt));
            let mut p = 0;
            while p < full {
                let av: [__m512; R] = std::array::from_fn(|i| _mm512_loadu_ps(ar[i].add(p)));
                let bv: [__m512; C] = std::array::from_fn(|j| _mm512_loadu_ps(br[j].add(p)));
                for i in 0..R {
                    for j in 0..C {
                        acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
                    }
                }
                p += LANES;
            }
            if full < k {
                let av: [__m512; R] =
                    std::array::from_fn(|i| _mm512_maskz_loadu_ps(tail, ar[i].add(full)));
                let bv: [__m512; C] =
                    std::array::from_fn(|j| _mm512_maskz_loadu_ps(tail, br[j].add(full)));
                for i in 0..R {
                    for j in 0..C {
                        acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
                    }
                }
            }
            // The 16 partial-sum vectors of each product added up: a 4 x 4 tile's all at
            // once, else one by one.
            let mut sums = [[0.0f32; C]; R];
            if R == 4 && C == 4 {
                // Column-major in, row-major out (see reduce_16).
                let v = std::array::from_fn(|k| acc[k % 4][k / 4]);
                let mut lanes = [0.0f32; LANES];
                _mm512_storeu_ps(lanes.as_mut_ptr(), reduce_16(v));
                for (k, &sum) in lanes.iter().enumerate() {
                    sums[k / 4][k % 4] = sum;
                }
            } else {
                for (sums, acc) in sums.iter_mut().zip(&acc) {
                    for (sum, &acc) in sums.iter_mut().zip(acc) {
                        *sum = _mm512_reduce_add_ps(acc);
                    }
                }
            }
            for (i, sums) in sums.iter().enumerate().take(rows) {
                for (j, &sum) in sums.iter().enumerate().take(cols) {
                    let out = c.add((i0 + i) * ldc + j0 + j);
                    *out = if beta != 0.0 { sum + beta * *out } else { sum };
                }
            }
        }
        j0 += C;
    }
}

/// The sums of 16 vectors at once, lane k of the result the sum of `v[4 (k % 4) + k / 4]`
/// (so 4 x 4 dot products given column by column come out row by row), each added up by the
/// same tree of additions as `_mm512_reduce_add_ps` (lanes i and i + 8, then i and i + 4,
/// i and i + 2, i and i + 1), so every sum has the same bits: four rounds of additions that
/// each halve the vectors, 15 additions in all instead of 16 x 4.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce_16(v: [__m512; LANES]) -> __m512 {
    // Lanes i + i+8 of v[2m] and v[2m + 1]: 256-bit halves.
    let s: [__m512; 8] = std::array::from_fn(|m| {
        let (p, q) = (v[2 * m], v[2 * m + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(p, q),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(p, q),
        )
    });
    // Lanes i + i+4 of each 8-lane half: 128-bit blocks; block k of t[m] belongs to v[4m + k].
    let t: [__m512; 4] = std::array::from_fn(|m| {
        let (p, q) = (s[2 * m], s[2 * m + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
        )
    });
    // Lanes i + i+2 within blocks: lanes 0, 1 of block k of u[m] belong to v[8m + k], lanes
    // 2, 3 to v[8m + 4 + k].
    let u: [__m512; 2] = std::array::from_fn(|m| {
        let (p, q) = (t[2 * m], t[2 * m + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(p, q),
            _mm512_shuffle_ps::<0b11_10_11_10>(p, q),
        )
    });
    // Lanes i + i+1: lane l of block k belongs to v[4l + k].
    _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(u[0], u[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(u[0], u[1]),
    )
}

/// `dst` [cols, rows] = `src` [rows, cols] transposed, both row-major: each destination row
/// (a column of `src`) gathered 16 values at a time.
///
/// # Safety
/// AVX-512F must be available; `src` and `dst` hold at least `rows * cols` values, and
/// `rows * cols` fits an `i32`.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let step = _mm512_set1_epi32((LANES * cols) as i32);
    let first = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(cols as i32),
    );
    for j in 0..cols {
        let mut index = first;
        let mut i0 = 0;
        while i0 < rows {
            let mask = lane_mask(rows - i0, 0);
            // SAFETY: the lanes in `mask` read src[(i0 + l) * cols + j] with i0 + l < rows
            // and write dst[j * rows + i0 + l], inside both slices.
            unsafe {
                let v = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    index,
                    src.as_ptr().add(j),
                );
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(j * rows + i0), mask, v);
            }
            index = _mm512_add_epi32(index, step);
            i0 += LANES;
        }
    }
}

/// Row operations with AVX-512 masked vectors, for the short rows (10 to 28 values) that
/// im2col moves: no call to `memcpy` per row.
struct Avx512Rows;

impl RowOps for Avx512Rows {
    #[inline(always)]
    fn copy(dst: &mut [f32], src: &[f32]) {
        let n = dst.len().min(src.len());
        let mut i = 0;
        while i < n {
            let m = lane_mask(n - i, 0);
            // SAFETY: only inlined into AVX-512 functions below; masked lanes stay inside n.
            unsafe {
                _mm512_mask_storeu_ps(
                    dst.as_mut_ptr().add(i),
                    m,
                    _mm512_maskz_loadu_ps(m, src.as_ptr().add(i)),
                )
            };
            i += LANES;
        }
    }

    #[inline(always)]
    fn add(dst: &mut [f32], src: &[f32]) {
        let n = dst.len().min(src.len());
        let mut i = 0;
        while i < n {
            let m = lane_mask(n - i, 0);
            // SAFETY: as in `copy`.
            unsafe {
                let d = dst.as_mut_ptr().add(i);
                let sum = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(m, d),
                    _mm512_maskz_loadu_ps(m, src.as_ptr().add(i)),
                );
                _mm512_mask_storeu_ps(d, m, sum);
            }
            i += LANES;
        }
    }
}

/// im2col with AVX-512 row copies.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn im2col_avx512(
    x: &[f32],
    samples: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
    cols: &mut [f32],
) {
    im2col_with::<Avx512Rows>(x, samples, h, w, g, cols)
}

/// col2im with AVX-512 row additions.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn col2im_avx512(
    cols: &[f32],
    samples: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
    dx: &mut [f32],
) {
    col2im_with::<Avx512Rows>(cols, samples, h, w, g, dx)
}

/// Direct convolution of one single-channel image (LeNet's conv1: one input channel, stride 1,
/// no padding, output rows of at most 32): `y[o, i, j] = b[o] + sum_{u,v} w[o, u, v]
/// x[i + u, j + v]`. Each output row of up to 8 channels is held in registers while the K*K
/// shifted input rows stream past, so no im2col matrix is built.
///
/// # Safety
/// AVX-512F must be available; `x` holds `h * w` values, `y` holds `c_out * oh * ow`, `weight`
/// `c_out * k * k`, `bias` `c_out`, with `ow = w - k + 1 <= 32` and `oh = h - k + 1`.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv1ch_forward(
    x: &[f32],
    (h, w): (usize, usize),
    k: usize,
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let c_out = bias.len();
    let mut o0 = 0;
    while o0 < c_out {
        // SAFETY: forwarded from the caller.
        unsafe {
            match (c_out - o0).min(8) {
                8 => conv1ch_forward_block::<8>(x, (h, w), k, o0, weight, bias, y),
                7 => conv1ch_forward_block::<7>(x, (h, w), k, o0, weight, bias, y),
                6 => conv1ch_forward_block::<6>(x, (h, w), k, o0, weight, bias, y),
                5 => conv1ch_forward_block::<5>(x, (h, w), k, o0, weight, bias, y),
                4 => conv1ch_forward_block::<4>(x, (h, w), k, o0, weight, bias, y),
                3 => conv1ch_forward_block::<3>(x, (h, w), k, o0, weight, bias, y),
                2 => conv1ch_forward_block::<2>(x, (h, w), k, o0, weight, bias, y),
                _ => conv1ch_forward_block::<1>(x, (h, w), k, o0, weight, bias, y),
            }
        }
        o0 += 8;
    }
}

/// Output channels `o0 .. o0 + B` of [`conv1ch_forward`], B known at compile time so the
/// accumulators stay in registers.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn conv1ch_forward_block<const B: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    k: usize,
    o0: usize,
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let (oh, ow) = (h - k + 1, w - k + 1);
    let masks = [lane_mask(ow, 0), lane_mask(ow, 1)];
    {
        for i in 0..oh {
            let mut acc = [[_mm512_setzero_ps(); 2]; B];
            for (o, acc) in acc.iter_mut().enumerate() {
                *acc = [_mm512_set1_ps(bias[o0 + o]); 2];
            }
            for u in 0..k {
                for v in 0..k {
                    // SAFETY: row i + u < h and columns v .. v + ow <= w, masked beyond ow.
                    let (x0, x1) = unsafe {
                        let row = x.as_ptr().add((i + u) * w + v);
                        (
                            _mm512_maskz_loadu_ps(masks[0], row),
                            _mm512_maskz_loadu_ps(masks[1], row.add(LANES)),
                        )
                    };
                    for (o, acc) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(weight[((o0 + o) * k + u) * k + v]);
                        acc[0] = _mm512_fmadd_ps(wv, x0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(wv, x1, acc[1]);
                    }
                }
            }
            for (o, acc) in acc.iter().enumerate() {
                // SAFETY: the row o, i of y holds ow values; lanes beyond are masked.
                unsafe {
                    let out = y.as_mut_ptr().add(((o0 + o) * oh + i) * ow);
                    _mm512_mask_storeu_ps(out, masks[0], acc[0]);
                    _mm512_mask_storeu_ps(out.add(LANES), masks[1], acc[1]);
                }
            }
        }
    }
}

/// The output-gradient layout [`conv1ch_weight_grad`] takes for an `oh x ow` output of a
/// `w`-wide input: `(ld, plane)` = rows `w` apart, planes of `oh * w` values rounded up to a
/// multiple of 16.
pub fn conv1ch_grad_layout((oh, w): (usize, usize)) -> (usize, usize) {
    (w, (oh * w).next_multiple_of(LANES))
}

/// For each vector of 16 positions of that layout, the lanes that are output positions
/// (column below `ow`, row below `oh`): [`conv1ch_weight_grad`] reads the input under those
/// only.
pub fn conv1ch_grad_masks((oh, ow): (usize, usize), w: usize) -> Vec<u16> {
    let (_, plane) = conv1ch_grad_layout((oh, w));
    (0..plane / LANES)
        .map(|q| {
            (0..LANES).fold(0u16, |mask, l| {
                let p = q * LANES + l;
                let inside = p < oh * w && p % w < ow;
                mask | (u16::from(inside) << l)
            })
        })
        .collect()
}

/// The weight gradient of [`conv1ch_forward`] for one image, added to 16-lane sums:
/// `dw[o, u, v] = sum_{i,j} dy[o, i, j] x[i + u, j + v]` is the sum of the 16 lanes
/// `sums[(o * k * k + u * k + v) * 16 ..]` (added up by [`add_lane_sums`] once per chunk
/// of images).
///
/// The output gradient `dyp` comes as wide as the input ([`conv1ch_grad_layout`]): row i of
/// channel o at `o * plane + i * w`, zeros past `ow`. Output position `p = i * w + j` then
/// meets input value `p + u * w + v` under tap (u, v) whatever its row, so a plane is one
/// long row, 16 positions to a vector with every lane in use but the padding, and each tap
/// reads its input at a fixed offset. A block of up to 4 taps x 6 channels keeps 24 sums in
/// registers; each vector of positions loads 6 output-gradient vectors and 4 input vectors
/// for 24 multiply-adds (the row-by-row kernel this replaces loaded 14 vectors for 20, and
/// was bound by its loads). The input loads are masked to output positions
/// ([`conv1ch_grad_masks`]), so padding never reads past the image nor meets a value that
/// no output position meets (zero times infinity would be NaN).
///
/// # Safety
/// AVX-512F must be available; `x` holds an `h x w` image with `w - k + 1 <= w`, `dyp`
/// `c_out` planes of the layout, `masks` the masks of the layout, and `sums`
/// `c_out * k * k * 16` values, where `c_out = dyp.len() / plane`.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv1ch_weight_grad(
    x: &[f32],
    (h, w): (usize, usize),
    k: usize,
    dyp: &[f32],
    masks: &[u16],
    sums: &mut [f32],
) {
    let (ld, plane) = conv1ch_grad_layout((h - k + 1, w));
    let c_out = dyp.len() / plane;
    let taps = k * k;
    assert!(k <= h && k <= w && x.len() >= h * w && masks.len() == plane / LANES);
    assert!(dyp.len() == c_out * plane && sums.len() >= c_out * taps * LANES);
    let offset = |t: usize| t / k * ld + t % k;
    let mut o0 = 0;
    while o0 < c_out {
        let b = (c_out - o0).min(6);
        let mut t0 = 0;
        while t0 < taps {
            let t = (taps - t0).min(4);
            let block = WeightGradBlock {
                x: x.as_ptr(),
                dyp: dyp[o0 * plane..].as_ptr(),
                plane,
                masks,
                // SAFETY (of the pointer): channel o0, tap t0 lies inside sums.
                sums: sums[(o0 * taps + t0) * LANES..].as_mut_ptr(),
                taps,
            };
            // SAFETY: the block's channels and taps lie inside dyp and sums; the masked input
            // loads read output positions' inputs only, inside the image.
            unsafe {
                match b {
                    6 => block.run::<6>(t, offset, t0),
                    5 => block.run::<5>(t, offset, t0),
                    4 => block.run::<4>(t, offset, t0),
                    3 => block.run::<3>(t, offset, t0),
                    2 => block.run::<2>(t, offset, t0),
                    _ => block.run::<1>(t, offset, t0),
                }
            }
            t0 += t;
        }
        o0 += b;
    }
}

/// Adds each run of 16 lane sums of [`conv1ch_weight_grad`] to its weight's gradient.
///
/// # Safety
/// AVX-512F must be available; `sums` holds `16 * dw.len()` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn add_lane_sums(sums: &[f32], dw: &mut [f32]) {
    for (dw, lanes) in dw.iter_mut().zip(sums.chunks_exact(LANES)) {
        // SAFETY: a chunk holds 16 values.
        *dw += _mm512_reduce_add_ps(unsafe { _mm512_loadu_ps(lanes.as_ptr()) });
    }
}

/// Where one block of [`conv1ch_weight_grad`] reads and adds.
struct WeightGradBlock<'a> {
    /// The image.
    x: *const f32,
    /// The block's first channel of output gradient; the next ones `plane` values apart.
    dyp: *const f32,
    plane: usize,
    masks: &'a [u16],
    /// The lane sums of the block's first channel and tap; channels are `taps * 16` apart.
    sums: *mut f32,
    taps: usize,
}

impl WeightGradBlock<'_> {
    /// Runs `t <= 4` taps from `t0` (at input offsets `offset(tap)`) over B channels.
    ///
    /// # Safety
    /// As [`conv1ch_weight_grad`], which builds the block.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const B: usize>(&self, t: usize, offset: impl Fn(usize) -> usize, t0: usize) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match t {
                4 => self.taps_of::<B, 4>(std::array::from_fn(|j| offset(t0 + j))),
                3 => self.taps_of::<B, 3>(std::array::from_fn(|j| offset(t0 + j))),
                2 => self.taps_of::<B, 2>(std::array::from_fn(|j| offset(t0 + j))),
                _ => self.taps_of::<B, 1>([offset(t0)]),
            }
        }
    }

    /// B channels x T taps, the taps' input at `offsets`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn taps_of<const B: usize, const T: usize>(&self, offsets: [usize; T]) {
        let mut acc = [[_mm512_setzero_ps(); B]; T];
        for (q, &mask) in self.masks.iter().enumerate() {
            let p = q * LANES;
            // SAFETY: position p of the block's channels lies inside dyp; the masked lanes of
            // the input loads are output positions, whose inputs lie inside the image (the
            // others are not read, so their addresses may lie past it).
            unsafe {
                let d: [__m512; B] =
                    std::array::from_fn(|b| _mm512_loadu_ps(self.dyp.add(b * self.plane + p)));
                for (acc, &off) in acc.iter_mut().zip(&offsets) {
                    let x = _mm512_maskz_loadu_ps(mask, self.x.wrapping_add(p + off));
                    for (acc, d) in acc.iter_mut().zip(&d) {
                        *acc = _mm512_fmadd_ps(*d, x, *acc);
                    }
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            for (b, acc) in acc.iter().enumerate() {
                // SAFETY: tap j of channel b lies inside sums.
                unsafe {
                    let out = self.sums.add((b * self.taps + j) * LANES);
                    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), *acc));
                }
            }
        }
    }
}

/// Direct convolution for narrow outputs (rows of at most 16 values, stride 1, no padding;
/// LeNet's conv2): registers hold two output rows of 8 channels while the C*K*K shifted input
/// rows stream past; each weight broadcast serves both rows. No im2col matrix is written.
///
/// `wt` is the weight transposed to `[C*K*K, O]`, so a step's broadcasts read consecutive
/// values.
///
/// # Safety
/// AVX-512F must be available; `x` holds `samples` images `[C, H, W]`, `y` as many
/// `[O, OH, OW]`, with `OW <= 16`; `wt` holds `C*K*K*O` values and `bias` `O`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_narrow_forward(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert!(
        ow <= LANES
            && x.len() >= samples * g.c_in * h * w
            && y.len() >= samples * g.c_out * oh * ow
    );
    assert!(wt.len() >= g.col_rows() * g.c_out && bias.len() >= g.c_out);
    for s in 0..samples {
        let x = x[s * g.c_in * h * w..].as_ptr();
        let y = y[s * g.c_out * oh * ow..].as_mut_ptr();
        let mut o0 = 0;
        while o0 < g.c_out {
            let size = (g.c_out - o0).min(8);
            let mut i = 0;
            while i < oh {
                let pair = oh - i >= 2;
                // SAFETY: bounds asserted above; rows i and i + 1 (when pair) exist.
                unsafe {
                    match size {
                        8 => narrow_forward_tile::<8>(x, (h, w), g, o0, i, pair, wt, bias, y),
                        4..=7 => narrow_forward_tile::<4>(x, (h, w), g, o0, i, pair, wt, bias, y),
                        _ => narrow_forward_tile::<1>(x, (h, w), g, o0, i, pair, wt, bias, y),
                    }
                }
                i += 2;
            }
            o0 += match size {
                8 => 8,
                4..=7 => 4,
                _ => 1,
            };
        }
    }
}

/// Output rows `i` and `i + 1` (when `pair`) of channels `o0 .. o0 + B`.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_forward_tile<const B: usize>(
    x: *const f32,
    (h, w): (usize, usize),
    g: ConvGeometry,
    o0: usize,
    i: usize,
    pair: bool,
    wt: &[f32],
    bias: &[f32],
    y: *mut f32,
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    let mask = lane_mask(ow, 0);
    let c_out = g.c_out;
    let mut acc0: [__m512; B] = std::array::from_fn(|o| _mm512_set1_ps(bias[o0 + o]));
    let mut acc1 = acc0;
    let wt = wt.as_ptr();
    // SAFETY: the caller guarantees rows i (and i + 1) plus k - 1 exist in every channel and
    // that wt holds C*K*K rows of c_out values.
    unsafe {
        for c in 0..g.c_in {
            for u in 0..k {
                let row0 = x.add((c * h + i + u) * w);
                let row1 = if pair { row0.add(w) } else { row0 };
                for v in 0..k {
                    let seg0 = _mm512_maskz_loadu_ps(mask, row0.add(v));
                    let seg1 = _mm512_maskz_loadu_ps(mask, row1.add(v));
                    let wr = wt.add(((c * k + u) * k + v) * c_out + o0);
                    for o in 0..B {
                        let wv = _mm512_set1_ps(*wr.add(o));
                        acc0[o] = _mm512_fmadd_ps(wv, seg0, acc0[o]);
                        acc1[o] = _mm512_fmadd_ps(wv, seg1, acc1[o]);
                    }
                }
            }
        }
        for o in 0..B {
            let out = y.add(((o0 + o) * oh + i) * ow);
            _mm512_mask_storeu_ps(out, mask, acc0[o]);
            if pair {
                _mm512_mask_storeu_ps(out.add(ow), mask, acc1[o]);
            }
        }
    }
}

/// [`conv_narrow_forward`] with the output channels in the lanes, for at most 16 output
/// channels and output rows of 8, 10 or 12 values (LeNet's conv2: 16 channels, rows of 10):
/// every lane does useful work, where the row-in-lanes kernel leaves 6 of 16 idle. Registers
/// hold an output row, one vector of all channels per position; each step loads one weight
/// vector and multiplies it by one input value per position, broadcast inside the
/// multiply-add. Each position's vector is scattered to the channels' planes. The sums run in
/// the same order as [`conv_narrow_forward`]'s (bias, then input channel, kernel row, kernel
/// column), so the results are identical.
///
/// Returns false, doing nothing, for other shapes.
///
/// # Safety
/// As [`conv_narrow_forward`].
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_forward_channels_in_lanes(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    bias: &[f32],
    y: &mut [f32],
) -> bool {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    if g.c_out > LANES || g.stride != 1 || g.padding != 0 {
        return false;
    }
    assert!(x.len() >= samples * g.c_in * h * w && y.len() >= samples * g.c_out * oh * ow);
    assert!(wt.len() >= g.col_rows() * g.c_out && bias.len() >= g.c_out);
    // SAFETY: bounds asserted above; AVX-512F is the caller's promise.
    unsafe {
        match ow {
            8 => lanes_out_rows::<8>(x, samples, (h, w), g, wt, bias, y),
            10 => lanes_out_rows::<10>(x, samples, (h, w), g, wt, bias, y),
            12 => lanes_out_rows::<12>(x, samples, (h, w), g, wt, bias, y),
            _ => return false,
        }
    }
    true
}

/// [`conv_forward_channels_in_lanes`] for output rows of `OW` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn lanes_out_rows<const OW: usize>(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let k = g.kernel;
    let oh = h - k + 1;
    let (c_out, plane) = (g.c_out, oh * OW);
    let mask = lane_mask(c_out, 0);
    // SAFETY: lanes past c_out are masked off.
    let b = unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr()) };
    let to_planes = lane_planes(plane);
    for s in 0..samples {
        // SAFETY: sample s lies inside x and y (asserted by the caller).
        let (x, y) = unsafe {
            (
                x.as_ptr().add(s * g.c_in * h * w),
                y.as_mut_ptr().add(s * c_out * plane),
            )
        };
        for i in 0..oh {
            // SAFETY: row i of the output exists (the caller's bounds).
            let acc = unsafe { lanes_row::<OW>(x, (h, w), g, wt, b, i) };
            for (j, &acc) in acc.iter().enumerate() {
                // SAFETY: position (i, j) of every plane o < c_out lies inside the sample.
                unsafe {
                    let at = y.add(i * OW + j).cast();
                    _mm512_mask_i32scatter_ps::<4>(at, mask, to_planes, acc);
                }
            }
        }
    }
}

/// The offsets `o * plane` of lane o: scattered with them, a vector of all channels at one
/// position goes to that position in each channel's plane.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn lane_planes(plane: usize) -> __m512i {
    _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(plane as i32),
    )
}

/// Output row `i` of one image `x` (`[C, H, W]`) in [`conv_forward_channels_in_lanes`]:
/// vector j holds position j of every output channel (lanes past `c_out` hold nothing of
/// use), starting from the bias `b`, the C*K*K taps added in order.
///
/// # Safety
/// AVX-512F must be available; rows `i .. i + k` of every channel of `x` exist and hold
/// `OW + k - 1 <= w` values; `wt` holds `C*K*K*O` values.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn lanes_row<const OW: usize>(
    x: *const f32,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    b: __m512,
    i: usize,
) -> [__m512; OW] {
    if g.kernel == 5 {
        // SAFETY: forwarded from the caller.
        return unsafe { lanes_row_k::<OW, 5>(x, (h, w), g, wt, b, i) };
    }
    let (k, c_out) = (g.kernel, g.c_out);
    let mask = lane_mask(c_out, 0);
    let mut acc = [b; OW];
    for c in 0..g.c_in {
        for u in 0..k {
            // SAFETY: row i + u of channel c exists; columns j + v < OW + k - 1 <= w.
            unsafe {
                let row = x.add((c * h + i + u) * w);
                let wr = wt.as_ptr().add((c * k + u) * k * c_out);
                for v in 0..k {
                    let wv = _mm512_maskz_loadu_ps(mask, wr.add(v * c_out));
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let a = _mm512_set1_ps(*row.add(j + v));
                        *acc = _mm512_fmadd_ps(a, wv, *acc);
                    }
                }
            }
        }
    }
    acc
}

/// [`lanes_row`] for a kernel K values wide, known at compile time: the K weight vectors of
/// a kernel row are loaded once, and each input value is broadcast once and multiplied by
/// every weight it meets (up to K outputs), so a kernel row of a channel costs K + OW + K - 1
/// loads for K * OW multiply-adds instead of K * (OW + 1): the multiply-adds, not the loads,
/// bound it. Each output adds its taps in the same order (v ascending within a kernel row),
/// so the results are the same bits.
///
/// # Safety
/// As [`lanes_row`], with `g.kernel == K`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn lanes_row_k<const OW: usize, const K: usize>(
    x: *const f32,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    b: __m512,
    i: usize,
) -> [__m512; OW] {
    let c_out = g.c_out;
    let mask = lane_mask(c_out, 0);
    let mut acc = [b; OW];
    for c in 0..g.c_in {
        for u in 0..K {
            // SAFETY: row i + u of channel c exists; columns q < OW + K - 1 <= w.
            unsafe {
                let row = x.add((c * h + i + u) * w);
                let wr = wt.as_ptr().add((c * K + u) * K * c_out);
                let wv: [__m512; K] =
                    std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask, wr.add(v * c_out)));
                for q in 0..OW + K - 1 {
                    let a = _mm512_set1_ps(*row.add(q));
                    for (v, wv) in wv.iter().enumerate() {
                        if q >= v && q - v < OW {
                            acc[q - v] = _mm512_fmadd_ps(a, *wv, acc[q - v]);
                        }
                    }
                }
            }
        }
    }
    acc
}

/// Weight and bias gradients of [`conv_narrow_forward`] over `samples` images, added to `dw`
/// `[O, C*K*K]` and `db` `[O]`. Registers hold 8 channels x 2 kernel columns; each loaded
/// output-gradient row serves both, each input row all 8 channels. Sums over the chunk's
/// rows stay in registers and are reduced once.
///
/// # Safety
/// As [`conv_narrow_forward`], with `dy` shaped like `y`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_narrow_weight_grad(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert!(
        ow <= LANES
            && x.len() >= samples * g.c_in * h * w
            && dy.len() >= samples * g.c_out * oh * ow
    );
    assert!(dw.len() >= g.c_out * g.col_rows() && db.len() >= g.c_out);
    let mut o0 = 0;
    while o0 < g.c_out {
        let size = (g.c_out - o0).min(8);
        for c in 0..g.c_in {
            for u in 0..k {
                let mut v = 0;
                while v < k {
                    let two = k - v >= 2;
                    // SAFETY: bounds asserted above.
                    unsafe {
                        match size {
                            8 => narrow_weight_grad_tile::<8>(
                                x,
                                samples,
                                (h, w),
                                g,
                                o0,
                                (c, u, v),
                                two,
                                dy,
                                dw,
                            ),
                            4..=7 => narrow_weight_grad_tile::<4>(
                                x,
                                samples,
                                (h, w),
                                g,
                                o0,
                                (c, u, v),
                                two,
                                dy,
                                dw,
                            ),
                            _ => narrow_weight_grad_tile::<1>(
                                x,
                                samples,
                                (h, w),
                                g,
                                o0,
                                (c, u, v),
                                two,
                                dy,
                                dw,
                            ),
                        }
                    }
                    v += 2;
                }
            }
        }
        o0 += match size {
            8 => 8,
            4..=7 => 4,
            _ => 1,
        };
    }
    let plane = oh * ow;
    for (o, db) in db.iter_mut().enumerate().take(g.c_out) {
        for s in 0..samples {
            *db += sum_wide(&dy[(s * g.c_out + o) * plane..][..plane]);
        }
    }
}

/// Gradients of the weights (o0 .. o0 + B, c, u, v) and, when `two`, (.., v + 1).
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_weight_grad_tile<const B: usize>(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    o0: usize,
    (c, u, v): (usize, usize, usize),
    two: bool,
    dy: &[f32],
    dw: &mut [f32],
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    let mask = lane_mask(ow, 0);
    let mut acc0 = [_mm512_setzero_ps(); B];
    let mut acc1 = [_mm512_setzero_ps(); B];
    // SAFETY: the caller asserted the buffer sizes; column v + 1 is read only when `two`.
    unsafe {
        for s in 0..samples {
            let xs = x.as_ptr().add((s * g.c_in + c) * h * w + u * w + v);
            let ds = dy.as_ptr().add((s * g.c_out + o0) * oh * ow);
            for i in 0..oh {
                let seg0 = _mm512_maskz_loadu_ps(mask, xs.add(i * w));
                let seg1 = if two {
                    _mm512_maskz_loadu_ps(mask, xs.add(i * w + 1))
                } else {
                    seg0
                };
                for o in 0..B {
                    let d = _mm512_maskz_loadu_ps(mask, ds.add((o * oh + i) * ow));
                    acc0[o] = _mm512_fmadd_ps(d, seg0, acc0[o]);
                    acc1[o] = _mm512_fmadd_ps(d, seg1, acc1[o]);
                }
            }
        }
    }
    let rows = g.col_rows();
    let r = (c * k + u) * k + v;
    for o in 0..B {
        dw[(o0 + o) * rows + r] += _mm512_reduce_add_ps(acc0[o]);
        if two {
            dw[(o0 + o) * rows + r + 1] += _mm512_reduce_add_ps(acc1[o]);
        }
    }
}

/// Weight and bias gradients of [`conv_narrow_forward`] for a 5x5 kernel and at most 16
/// output channels, added to `dw` `[O, C*25]` and `db` `[O]`. The output gradient comes
/// channel-last, `dyt` = `[samples, OH*OW, O]`, so one vector holds all output channels of a
/// position and every lane does useful work: 25 accumulators hold the gradients of the 25
/// taps of one input channel, and each output position adds its vector times 25 broadcast
/// input values. Sums run over samples and positions in order, then are added to `dw` once.
///
/// # Safety
/// AVX-512F must be available; `x` holds `samples` images `[C, H, W]`; `g.kernel == 5`,
/// `g.c_out <= 16`, stride 1, no padding.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv5_weight_grad_channel_last(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    dyt: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    const K: usize = 5;
    let (oh, ow) = (h - K + 1, w - K + 1);
    let (c_out, positions) = (g.c_out, oh * ow);
    assert!(g.kernel == K && c_out <= LANES && g.stride == 1 && g.padding == 0);
    assert!(x.len() >= samples * g.c_in * h * w && dyt.len() >= samples * positions * c_out);
    assert!(dw.len() >= c_out * g.col_rows() && db.len() >= c_out);
    let mask = lane_mask(c_out, 0);
    let mut lanes = [0.0f32; LANES];
    for c in 0..g.c_in {
        let mut acc = [_mm512_setzero_ps(); K * K];
        for s in 0..samples {
            // SAFETY: bounds asserted above; position (i, j) reads rows i..i+K and columns
            // j..j+K of the plane, inside it.
            unsafe {
                let plane = x.as_ptr().add((s * g.c_in + c) * h * w);
                let ds = dyt.as_ptr().add(s * positions * c_out);
                for i in 0..oh {
                    for j in 0..ow {
                        let d = _mm512_maskz_loadu_ps(mask, ds.add((i * ow + j) * c_out));
                        let x0 = plane.add(i * w + j);
                        for u in 0..K {
                            for v in 0..K {
                                let xv = _mm512_set1_ps(*x0.add(u * w + v));
                                acc[u * K + v] = _mm512_fmadd_ps(d, xv, acc[u * K + v]);
                            }
                        }
                    }
                }
            }
        }
        let rows = g.col_rows();
        for (t, acc) in acc.iter().enumerate() {
            // SAFETY: lanes holds 16 values.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
            for (o, &v) in lanes.iter().enumerate().take(c_out) {
                dw[o * rows + c * K * K + t] += v;
            }
        }
    }
    let mut bias = _mm512_setzero_ps();
    for p in 0..samples * positions {
        // SAFETY: bounds asserted above.
        bias = _mm512_add_ps(bias, unsafe {
            _mm512_maskz_loadu_ps(mask, dyt.as_ptr().add(p * c_out))
        });
    }
    // SAFETY: lanes holds 16 values.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), bias) };
    for (db, &v) in db.iter_mut().zip(&lanes).take(c_out) {
        *db += v;
    }
}

/// Input gradient of [`conv_narrow_forward`] (stride 1, no padding, input rows of at most 16
/// values), written to `dx`: each input row `y` of channel `c` gathers `w[o, c, u, v]` times
/// output-gradient row `y - u` shifted right by `v`, over the valid rows only (no zero
/// padding is multiplied). Registers hold two input rows of up to 8 channels, as the forward
/// kernel does for output rows.
///
/// `wt` is the weight laid out `[O, K, K, C]`, so a step's broadcasts read consecutive values.
///
/// # Safety
/// AVX-512F must be available; `dy` holds `samples` gradients `[O, OH, OW]`, `dx` as many
/// `[C, H, W]` with `W <= 16`; `wt` holds `O*K*K*C` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn conv_narrow_input_grad(
    dy: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    dx: &mut [f32],
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert!(
        w <= LANES
            && g.stride == 1
            && g.padding == 0
            && dy.len() >= samples * g.c_out * oh * ow
            && dx.len() >= samples * g.c_in * h * w
            && wt.len() >= g.c_out * k * k * g.c_in
    );
    for s in 0..samples {
        let dy = dy[s * g.c_out * oh * ow..].as_ptr();
        let dx = dx[s * g.c_in * h * w..].as_mut_ptr();
        let mut c0 = 0;
        while c0 < g.c_in {
            let size = match g.c_in - c0 {
                8.. => 8,
                6..=7 => 6,
                4..=5 => 4,
                _ => 1,
            };
            let mut y = 0;
            while y < h {
                // SAFETY: bounds asserted above.
                unsafe {
                    match size {
                        8 => narrow_input_grad_tile::<8>(dy, (h, w), g, c0, y, wt, dx),
                        6 => narrow_input_grad_tile::<6>(dy, (h, w), g, c0, y, wt, dx),
                        4 => narrow_input_grad_tile::<4>(dy, (h, w), g, c0, y, wt, dx),
                        _ => narrow_input_grad_tile::<1>(dy, (h, w), g, c0, y, wt, dx),
                    }
                }
                y += 2;
            }
            c0 += size;
        }
    }
}

/// Input rows `y` and `y + 1` (when it exists) of channels `c0 .. c0 + B`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn narrow_input_grad_tile<const B: usize>(
    dy: *const f32,
    (h, w): (usize, usize),
    g: ConvGeometry,
    c0: usize,
    y: usize,
    wt: &[f32],
    dx: *mut f32,
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    let (c_in, plane) = (g.c_in, oh * ow);
    let row_mask = lane_mask(ow, 0) as u32;
    let mut acc0 = [_mm512_setzero_ps(); B];
    let mut acc1 = [_mm512_setzero_ps(); B];
    // Kernel rows u that reach input row y (output row y - u) or y + 1 (output row y + 1 - u).
    let u_first = (y + 1).saturating_sub(oh);
    let u_last = (y + 1).min(k - 1);
    let wt = wt.as_ptr();
    for u in u_first..=u_last {
        // Output rows feeding y and y + 1 through kernel row u; an invalid one loads nothing.
        let valid0 = u <= y && y - u < oh;
        let valid1 = y + 1 < h && y + 1 - u < oh;
        let row0 = if valid0 { y - u } else { 0 };
        let row1 = if valid1 { y + 1 - u } else { 0 };
        for o in 0..g.c_out {
            // SAFETY: rows row0/row1 of plane o exist; a masked load touches only the lanes
            // v .. v + ow, which read the row's ow values (the pointer is offset back by v
            // so lane v reads the row's first value).
            unsafe {
                let base = dy.add(o * plane);
                let r0 = base.add(row0 * ow);
                let r1 = base.add(row1 * ow);
                for v in 0..k {
                    let lanes = (row_mask << v) as __mmask16;
                    let m0 = if valid0 { lanes } else { 0 };
                    let m1 = if valid1 { lanes } else { 0 };
                    let seg0 = _mm512_maskz_loadu_ps(m0, r0.wrapping_sub(v));
                    let seg1 = _mm512_maskz_loadu_ps(m1, r1.wrapping_sub(v));
                    let wr = wt.add(((o * k + u) * k + v) * c_in + c0);
                    for c in 0..B {
                        let wv = _mm512_set1_ps(*wr.add(c));
                        acc0[c] = _mm512_fmadd_ps(wv, seg0, acc0[c]);
                        acc1[c] = _mm512_fmadd_ps(wv, seg1, acc1[c]);
                    }
                }
            }
        }
    }
    let mask = lane_mask(w, 0);
    for c in 0..B {
        // SAFETY: rows y (and y + 1 when it exists) of channel c0 + c lie inside dx.
        unsafe {
            let out = dx.add(((c0 + c) * h + y) * w);
            _mm512_mask_storeu_ps(out, mask, acc0[c]);
            if y + 1 < h {
                _mm512_mask_storeu_ps(out.add(w), mask, acc1[c]);
            }
        }
    }
}

/// ReLU, y = x where x > 0 (or NaN, which propagates as in PyTorch), else +0.
///
/// # Safety
/// AVX-512F must be available; `y` is as long as `x`.
#[target_feature(enable = "avx512f")]
pub unsafe fn relu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    let zero = _mm512_setzero_ps();
    let mut i = 0;
    while i < x.len() {
        let m = lane_mask(x.len() - i, 0);
        // SAFETY: masked lanes stay inside both slices.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero)
                | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(i), m, _mm512_maskz_mov_ps(keep, v));
        }
        i += LANES;
    }
}

/// ReLU's input gradient: dx = dy where y > 0, else 0.
///
/// # Safety
/// AVX-512F must be available; the three slices have the same length.
#[target_feature(enable = "avx512f")]
pub unsafe fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() == dy.len() && y.len() == dx.len());
    let zero = _mm512_setzero_ps();
    let mut i = 0;
    while i < y.len() {
        let m = lane_mask(y.len() - i, 0);
        // SAFETY: masked lanes stay inside the slices.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, y.as_ptr().add(i));
            let d = _mm512_maskz_loadu_ps(m, dy.as_ptr().add(i));
            let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero);
            _mm512_mask_storeu_ps(dx.as_mut_ptr().add(i), m, _mm512_maskz_mov_ps(keep, d));
        }
        i += LANES;
    }
}

/// [`super::sum`] with AVX-512 vectors (compiled from the plain loops, the compiler splits
/// its 16 lanes into 2-lane pieces): each lane adds its values in order, the tail only to its
/// own lanes, then the same pairwise tree (lanes i and i + 8, i + 4, i + 2, i + 1), so the
/// bits are the same.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn sum_wide(values: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        // SAFETY: the chunk holds 16 values.
        acc = _mm512_add_ps(acc, unsafe { _mm512_loadu_ps(chunk.as_ptr()) });
    }
    let rest = chunks.remainder();
    let m = lane_mask(rest.len(), 0);
    // SAFETY: the masked load reads the rest's values only.
    let tail = unsafe { _mm512_maskz_loadu_ps(m, rest.as_ptr()) };
    _mm512_reduce_add_ps(_mm512_mask_add_ps(acc, m, acc, tail))
}

/// The first maximum of each 2x2 window, lane by lane, by PyTorch's rule (a candidate
/// replaces the running maximum when it is larger or NaN, unless that maximum is NaN), and
/// the flat index of where it is: `cands` in row-major window order (top left, top right,
/// bottom left, bottom right), `at` their indices. With `relu`, the maximum goes through the
/// ReLU (NaN kept, as [`relu_forward`]).
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn window_max(cands: [__m512; 4], at: [__m512i; 4], relu: bool) -> (__m512, __m512i) {
    let mut best = (cands[0], at[0]);
    for (&cand, &at) in cands[1..].iter().zip(&at[1..]) {
        best = window_pick(best, (cand, at));
    }
    if relu {
        best.0 = relu_keep_nan(best.0);
    }
    best
}

/// One step of [`window_max`]: the candidate replaces the running maximum (value, index)
/// where it is larger or NaN, unless that maximum is NaN.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn window_pick(
    (best, best_at): (__m512, __m512i),
    (cand, at): (__m512, __m512i),
) -> (__m512, __m512i) {
    let better = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(cand, best)
        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(cand, cand);
    let m = better & !_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
    (
        _mm512_mask_mov_ps(best, m, cand),
        _mm512_mask_mov_epi32(best_at, m, at),
    )
}

/// The ReLU as [`relu_forward`] computes it: positive values and NaN kept, the rest +0.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn relu_keep_nan(v: __m512) -> __m512 {
    let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps())
        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    _mm512_maskz_mov_ps(keep, v)
}

/// [`window_max`] of the windows along two rows of up to 32 values each held in two vectors
/// (`top`, `bottom`): lane j of the result is window j, whose top left value sits at flat
/// index `top_index + 2j` of a plane `w` wide.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn row_pair_max(
    top: [__m512; 2],
    bottom: [__m512; 2],
    top_index: usize,
    w: usize,
    relu: bool,
) -> (__m512, __m512i) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let base = _mm512_add_epi32(even, _mm512_set1_epi32(top_index as i32));
    let at = |offset: usize| _mm512_add_epi32(base, _mm512_set1_epi32(offset as i32));
    window_max(
        [
            _mm512_permutex2var_ps(top[0], even, top[1]),
            _mm512_permutex2var_ps(top[0], odd, top[1]),
            _mm512_permutex2var_ps(bottom[0], even, bottom[1]),
            _mm512_permutex2var_ps(bottom[0], odd, bottom[1]),
        ],
        [base, at(1), at(w), at(w + 1)],
        relu,
    )
}

/// The values of [`row_pair_max`] with `relu`, without the indices, by plain `max`
/// instructions: the rows' maximum first, then each window's two columns (two permutations
/// instead of four). Also returns the lanes where the rows hold a NaN. Where none does, the
/// values agree with [`row_pair_max`]'s bit for bit: equal values have the same bits but for
/// the sign of a zero, and the ReLU makes every zero +0. Where one does, `max` follows
/// neither the first-maximum rule nor the NaN: the caller takes [`row_pair_max`].
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn row_pair_max_relu(top: [__m512; 2], bottom: [__m512; 2]) -> (__m512, __mmask16) {
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(top[0], bottom[0])
        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(top[1], bottom[1]);
    let rows = [
        _mm512_max_ps(top[0], bottom[0]),
        _mm512_max_ps(top[1], bottom[1]),
    ];
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let best = _mm512_max_ps(
        _mm512_permutex2var_ps(rows[0], even, rows[1]),
        _mm512_permutex2var_ps(rows[0], odd, rows[1]),
    );
    (_mm512_max_ps(best, _mm512_setzero_ps()), nan)
}

/// 2x2, stride-2 max pooling of `planes` planes of `h x w` (w <= 32): the first maximum of
/// each window in row-major order, NaN propagating, as PyTorch; `argmax` gets its index
/// within the plane. With `relu`, `y` is the ReLU of the maximum, as [`relu_forward`].
///
/// # Safety
/// AVX-512F must be available; `w <= 32`; `x` holds `planes * h * w` values, `y` and `argmax`
/// `planes * (h / 2) * (w / 2)`.
#[target_feature(enable = "avx512f")]
pub unsafe fn maxpool2x2_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
    relu: bool,
) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(
        w <= 2 * LANES
            && x.len() >= planes * h * w
            && y.len() >= planes * oh * ow
            && argmax.len() >= planes * oh * ow
    );
    let (lo, hi) = (lane_mask(w, 0), lane_mask(w, 1));
    let out_mask = lane_mask(ow, 0);
    for p in 0..planes {
        for i in 0..oh {
            // SAFETY: rows 2i and 2i + 1 of plane p hold w values (masked loads); the output row
            // holds ow values (masked stores).
            unsafe {
                let top = x.as_ptr().add((p * h + 2 * i) * w);
                let bottom = top.add(w);
                let (t0, t1) = (
                    _mm512_maskz_loadu_ps(lo, top),
                    _mm512_maskz_loadu_ps(hi, top.add(LANES)),
                );
                let (b0, b1) = (
                    _mm512_maskz_loadu_ps(lo, bottom),
                    _mm512_maskz_loadu_ps(hi, bottom.add(LANES)),
                );
                let (best, at) = row_pair_max([t0, t1], [b0, b1], 2 * i * w, w, relu);
                let o = (p * oh + i) * ow;
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(o), out_mask, best);
                _mm512_mask_storeu_epi32(argmax.as_mut_ptr().add(o) as *mut i32, out_mask, at);
            }
        }
    }
}

/// Backward of [`maxpool2x2_forward`] for planes of even sides (w <= 32), where the windows
/// tile the plane: each window's two input rows are written whole, its gradient at the
/// maximum and zeros elsewhere, so `dx` needs no clearing pass and takes no scattered
/// read-modify-writes. With `relu_out` (the pooling folded the ReLU before it), outputs
/// that are not positive pass nothing.
///
/// `dx` is laid out `(ld, plane)`: row r of plane p starts at `p * plane + r * ld`, with
/// `w <= ld <= 32` and `h * ld <= plane`. The `ld - w` values past each row and the values
/// past the last row are written zero ([`conv1ch_weight_grad`] takes its output gradient as
/// wide as its input; `(w, h * w)` is the plain layout).
///
/// # Safety
/// AVX-512F must be available; `h` and `w` even; `dy` and `argmax` hold
/// `planes * (h / 2) * (w / 2)` values (as `relu_out`, when given), `dx` `planes * plane`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn maxpool2x2_backward(
    dy: &[f32],
    argmax: &[u32],
    relu_out: Option<&[f32]>,
    planes: usize,
    (h, w): (usize, usize),
    (ld, plane): (usize, usize),
    dx: &mut [f32],
) {
    let (oh, ow) = (h / 2, w / 2);
    let n = planes * oh * ow;
    assert!(h % 2 == 0 && w % 2 == 0 && w <= ld && ld <= 2 * LANES && h * ld <= plane);
    assert!(dy.len() >= n && argmax.len() >= n && dx.len() >= planes * plane);
    assert!(relu_out.is_none_or(|y| y.len() >= n));
    let in_mask = lane_mask(ow, 0);
    // Lanes past w hold zeros: their windows lie past ow, where d is zero.
    let out_masks = [lane_mask(ld, 0), lane_mask(ld, 1)];
    // Lane l of an input row half v belongs to window (16v + l) / 2 of the row.
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let window = [
        _mm512_srli_epi32::<1>(lane),
        _mm512_srli_epi32::<1>(_mm512_add_epi32(lane, _mm512_set1_epi32(LANES as i32))),
    ];
    let zero = _mm512_setzero_ps();
    for p in 0..planes {
        for i in 0..oh {
            let o = (p * oh + i) * ow;
            // SAFETY: the window row o .. o + ow lies inside dy, argmax and relu_out (masked
            // loads); rows 2i, 2i + 1 of plane p hold ld values in dx (masked stores).
            unsafe {
                let mut d = _mm512_maskz_loadu_ps(in_mask, dy.as_ptr().add(o));
                if let Some(y) = relu_out {
                    let y = _mm512_maskz_loadu_ps(in_mask, y.as_ptr().add(o));
                    d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero), d);
                }
                let at = _mm512_maskz_loadu_epi32(in_mask, argmax.as_ptr().add(o).cast());
                for r in 0..2 {
                    let row = p * plane + (2 * i + r) * ld;
                    let row_in_plane = ((2 * i + r) * w) as i32;
                    for (v, window) in window.iter().enumerate() {
                        let d = _mm512_permutexvar_ps(*window, d);
                        let at = _mm512_permutexvar_epi32(*window, at);
                        // The flat index within the plane of each lane's input value.
                        let here = _mm512_add_epi32(
                            lane,
                            _mm512_set1_epi32(row_in_plane + (v * LANES) as i32),
                        );
                        let hit = _mm512_cmpeq_epi32_mask(at, here);
                        let out = dx.as_mut_ptr().add(row + v * LANES);
                        _mm512_mask_storeu_ps(out, out_masks[v], _mm512_maskz_mov_ps(hit, d));
                    }
                }
            }
        }
        dx[p * plane + h * ld..(p + 1) * plane].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The gathered transpose moves every value where the plain definition says, for fewer,
    /// exactly 16 and more than 16 rows.
    #[test]
    fn transpose_matches_its_definition() {
        if !available() {
            return;
        }
        for (rows, cols) in [(6, 25), (16, 150), (20, 7), (1, 3)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![-1.0; rows * cols];
            // SAFETY: AVX-512F is present (checked above); both hold rows * cols values.
            unsafe { transpose(&src, rows, cols, &mut dst) };
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        dst[j * rows + i],
                        src[i * cols + j],
                        "{rows}x{cols} at {i},{j}"
                    );
                }
            }
        }
    }

    /// The single-channel weight gradient from the padded layout equals the plain loops' (to
    /// rounding) on LeNet's shapes and off them (7 channels: blocks of 6 and 1; 3x3 taps:
    /// blocks of 4, 4 and 1; rows narrower than a vector). An infinite input value on the
    /// image's border reaches only the taps that read it, and values past the image (NaN
    /// here) none: the padding lanes would carry them elsewhere if their loads were not masked.
    #[test]
    fn single_channel_weight_grad_equals_the_plain_loops() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(5);
        for (c_out, side, k) in [(6, 32, 5), (6, 28, 5), (7, 12, 3), (2, 9, 3), (1, 6, 2)] {
            let (oh, ow) = (side - k + 1, side - k + 1);
            let plane = side * side;
            let image: Vec<f32> = (0..plane).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let dy: Vec<f32> = (0..c_out * oh * ow)
                .map(|_| rng.uniform_range(-1.0, 1.0))
                .collect();
            let (ld, padded) = conv1ch_grad_layout((oh, side));
            let masks = conv1ch_grad_masks((oh, ow), side);
            let mut dyp = vec![0.0; c_out * padded];
            for (o, plane) in dy.chunks_exact(oh * ow).enumerate() {
                for (i, row) in plane.chunks_exact(ow).enumerate() {
                    dyp[o * padded + i * ld..][..ow].copy_from_slice(row);
                }
            }
            // Column 0 and the last column of row 3, the last value.
            for inf_at in [None, Some(3 * side), Some(4 * side - 1), Some(plane - 1)] {
                let mut x = image.clone();
                x.extend(std::iter::repeat_n(f32::NAN, plane));
                if let Some(at) = inf_at {
                    x[at] = f32::INFINITY;
                }
                let mut want = vec![0.0f32; c_out * k * k];
                for (t, want) in want.iter_mut().enumerate() {
                    let (o, u, v) = (t / (k * k), t / k % k, t % k);
                    for i in 0..oh {
                        for j in 0..ow {
                            *want += dy[(o * oh + i) * ow + j] * x[(i + u) * side + j + v];
                        }
                    }
                }
                let mut sums = vec![0.0; c_out * k * k * LANES];
                let mut got = vec![0.0f32; c_out * k * k];
                // SAFETY: AVX-512F is present (checked above); the buffers have the
                // layout's sizes.
                unsafe {
                    conv1ch_weight_grad(&x[..plane], (side, side), k, &dyp, &masks, &mut sums);
                    add_lane_sums(&sums, &mut got);
                }
                let what = format!("{c_out} channels, side {side}, k {k}, inf at {inf_at:?}");
                for (t, (&a, &b)) in got.iter().zip(&want).enumerate() {
                    if b.is_finite() {
                        assert!(
                            (a - b).abs() <= 1e-5 * ow as f32,
                            "{what}, tap {t}: {a} vs {b}"
                        );
                    } else {
                        assert!(
                            a.is_nan() && b.is_nan() || a == b,
                            "{what}, tap {t}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// The 16 sums at once are the bits of 16 horizontal sums, on values of magnitudes from
    /// 1e-6 to 1e6 (where the order of additions shows).
    #[test]
    fn sixteen_sums_at_once_equal_one_by_one() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(12);
        for _ in 0..200 {
            let values: Vec<f32> = (0..LANES * LANES)
                .map(|_| rng.uniform_range(-1.0, 1.0) * 10f32.powi(rng.below(13) as i32 - 6))
                .collect();
            // SAFETY: AVX-512F is present (checked above); each vector reads 16 values.
            let (all, one_by_one) = unsafe {
                let v: [__m512; LANES] =
                    std::array::from_fn(|k| _mm512_loadu_ps(values[k * LANES..].as_ptr()));
                let mut all = [0.0f32; LANES];
                _mm512_storeu_ps(all.as_mut_ptr(), reduce_16(v));
                (all, v.map(|v| _mm512_reduce_add_ps(v)))
            };
            for (k, sum) in all.iter().enumerate() {
                let source = 4 * (k % 4) + k / 4;
                assert_eq!(sum.to_bits(), one_by_one[source].to_bits(), "lane {k}");
            }
        }
    }

    /// The vector sum has the bits of the plain one, for lengths with and without a tail,
    /// magnitudes from 1e-4 to 1e4 and values that include -0.0.
    #[test]
    fn wide_sum_equals_the_plain_sum() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(5);
        for len in [0, 1, 15, 16, 17, 100, 784, 1000] {
            let mut values: Vec<f32> = (0..len)
                .map(|_| rng.uniform_range(-1.0, 1.0) * 10f32.powi(rng.below(9) as i32 - 4))
                .collect();
            let negative_zeros = vec![-0.0f32; len];
            for v in values.iter_mut().step_by(7) {
                *v = -0.0;
            }
            for values in [&values, &negative_zeros] {
                // SAFETY: AVX-512F is present (checked above).
                let wide = unsafe { sum_wide(values) };
                assert_eq!(
                    wide.to_bits(),
                    crate::nn::sum(values).to_bits(),
                    "length {len}"
                );
            }
        }
    }

    /// The two direct forward kernels sum in the same order, so they agree bit for bit (the
    /// comparison with the plain loops, to rounding, is in tests/gradcheck.rs).
    #[test]
    fn channels_in_lanes_forward_equals_the_narrow_kernel() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(3);
        for (g, side, n) in [
            (ConvGeometry::unpadded(6, 16, 5), 14, 3),
            (ConvGeometry::unpadded(7, 5, 5), 16, 2),
            (ConvGeometry::unpadded(2, 9, 3), 10, 2),
        ] {
            let mut random = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
            };
            let x = random(n * g.c_in * side * side);
            let wt = random(g.col_rows() * g.c_out);
            let bias = random(g.c_out);
            let out = side - g.kernel + 1;
            let (mut a, mut b) = (
                vec![0.0; n * g.c_out * out * out],
                vec![1.0; n * g.c_out * out * out],
            );
            // SAFETY: AVX-512F checked above; the buffers fit the shapes.
            unsafe {
                assert!(conv_forward_channels_in_lanes(
                    &x,
                    n,
                    (side, side),
                    g,
                    &wt,
                    &bias,
                    &mut a
                ));
                conv_narrow_forward(&x, n, (side, side), g, &wt, &bias, &mut b);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{g:?}");
        }
    }
}
