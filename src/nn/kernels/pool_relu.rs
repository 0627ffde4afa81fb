//! AVX-512 ReLU and 2x2 max pooling: [`relu_forward`], [`relu_backward`],
//! [`maxpool2x2_forward`] (optionally with the ReLU before it folded in) and
//! [`maxpool2x2_backward`], and the window helpers the fused convolutions ([`super::fused`])
//! pool with, so that both pick a window's maximum by one rule (PyTorch's: the first maximum,
//! NaN wins).

use std::arch::x86_64::*;

use crate::simd::{LANES, lane_mask};

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
/// past the last row are written zero ([`super::conv_single_channel::conv1ch_weight_grad`] takes its output gradient as
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
