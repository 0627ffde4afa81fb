//! AVX-512 kernels of a convolution over narrow planes (LeNet's conv2: 6 to 16 channels, rows
//! of 10).
//!
//! [`conv_forward_channels_in_lanes`] puts the 16 output channels in the lanes, so every lane
//! is useful; [`conv_narrow_forward`], rows in the lanes, covers other narrow shapes. The
//! backward pass goes to [`super::sparse`] when the output gradient is mostly zero (behind
//! ReLU and max pooling it always is), else to [`conv5_weight_grad_channel_last`] or
//! [`conv_narrow_weight_grad`] and [`conv_narrow_input_grad`].

use std::arch::x86_64::*;

use super::im2col::ConvGeometry;
use super::reduce::avx512::sum_wide;
use crate::simd::{LANES, lane_mask};

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
/// With `each` (`samples` equal slots), slot s starts with the change image s made to the
/// sums, laid out `[C, 25, 16]` (tap t of input channel c: one vector, lane o holding
/// `dw[o, c, t]`, zeros past O): its own weight gradient up to the rounding of the sums, for
/// the noise instruments (`dw` gets the same bits either way).
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
    mut each: Option<&mut [f32]>,
) {
    const K: usize = 5;
    let (oh, ow) = (h - K + 1, w - K + 1);
    let (c_out, positions) = (g.c_out, oh * ow);
    assert!(g.kernel == K && c_out <= LANES && g.stride == 1 && g.padding == 0);
    assert!(x.len() >= samples * g.c_in * h * w && dyt.len() >= samples * positions * c_out);
    assert!(dw.len() >= c_out * g.col_rows() && db.len() >= c_out);
    let mask = lane_mask(c_out, 0);
    let mut lanes = [0.0f32; LANES];
    let slot = each.as_ref().map_or(0, |e| e.len() / samples.max(1));
    assert!(each.is_none() || slot >= g.c_in * K * K * LANES);
    for c in 0..g.c_in {
        let mut acc = [_mm512_setzero_ps(); K * K];
        // The sums before the current image, when keeping each image's change.
        let mut before = acc;
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
                if let Some(each) = each.as_deref_mut() {
                    // SAFETY: slot s holds [C, 25, 16] values (asserted).
                    let out = each.as_mut_ptr().add(s * slot + c * K * K * LANES);
                    for (t, (acc, was)) in acc.iter().zip(&mut before).enumerate() {
                        _mm512_storeu_ps(out.add(t * LANES), _mm512_sub_ps(*acc, *was));
                        *was = *acc;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::im2col::ConvGeometry;
    use crate::rng::Rng;
    use crate::simd::available;

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
