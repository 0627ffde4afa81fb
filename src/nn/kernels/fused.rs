//! A convolution, the ReLU after it and 2x2 max pooling in one pass (LeNet's conv1 and conv2
//! blocks in the forward pass, and in evaluation).
//!
//! Each kernel computes two output rows of the convolution at a time, in registers, and
//! pools them there: the convolution's output is never written to memory, and the pooling
//! reads nothing back. The convolution sums in the same order as its unfused kernel
//! ([`super::conv_single_channel::conv1ch_forward`], [`super::conv_narrow::conv_forward_channels_in_lanes`]) and the pooling
//! picks its maximum by the same rule (`window_pick`, as [`super::pool_relu::maxpool2x2_forward`]), so
//! the pooled values and their argmax indices are the same bits as the three layers run one
//! after the other; the pooling layer's backward pass then runs unchanged on the argmax
//! written here.

use std::arch::x86_64::*;

use super::conv_narrow::lane_planes;
use super::im2col::ConvGeometry;
use super::pool_relu::{relu_keep_nan, row_pair_max, row_pair_max_relu, window_pick};
use crate::simd::{LANES, lane_mask};

/// Whether [`conv1ch_forward_pooled`] takes a single-channel convolution with an `oh x ow`
/// output: rows of at most 32 values, both sides even (so the windows tile the plane).
pub fn single_channel_applies(oh: usize, ow: usize) -> bool {
    ow <= 2 * LANES && oh.is_multiple_of(2) && ow.is_multiple_of(2)
}

/// Whether [`conv_forward_channels_in_lanes_pooled`] takes a convolution with an `oh x ow`
/// output: at most 16 output channels, stride 1, no padding, rows of 8, 10 or 12 values,
/// both sides even.
pub fn channels_in_lanes_applies(g: ConvGeometry, (oh, ow): (usize, usize)) -> bool {
    g.c_out <= LANES
        && g.stride == 1
        && g.padding == 0
        && oh.is_multiple_of(2)
        && [8, 10, 12].contains(&ow)
}

/// `relu(maxpool2x2(conv(x)))` of one single-channel image, as [`super::conv_single_channel::conv1ch_forward`]
/// followed by [`super::pool_relu::maxpool2x2_forward`] with the ReLU folded: `y` gets `[O, OH/2, OW/2]`
/// values, `argmax` (when given) the flat index within the `OH x OW` convolution plane of
/// each window's maximum. Without `argmax` (no backward pass to follow), the windows take
/// plain `max` instructions where no value is NaN: the same values, fewer instructions.
/// `alive` (when given, with `argmax`) gets, for each row i of channel o, bit j of
/// `alive[o * OH + i]` set where the ReLU's output at (o, i, j) is not zero (the
/// convolution's output is above zero, or NaN): the ReLU's units, for the instruments, whose
/// output the pass never writes.
///
/// # Safety
/// AVX-512F must be available; the shape passes [`single_channel_applies`]; `x` holds `h * w`
/// values, `weight` `O * k * k`, `bias` `O`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv1ch_forward_pooled(
    x: &[f32],
    (h, w): (usize, usize),
    k: usize,
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
    mut argmax: Option<&mut [u32]>,
    mut alive: Option<&mut [u32]>,
) {
    let c_out = bias.len();
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert!(single_channel_applies(oh, ow));
    let pooled = c_out * (oh / 2) * (ow / 2);
    assert!(x.len() >= h * w && weight.len() >= c_out * k * k);
    assert!(y.len() >= pooled && argmax.as_ref().is_none_or(|a| a.len() >= pooled));
    assert!(
        alive
            .as_ref()
            .is_none_or(|a| a.len() >= c_out * oh && argmax.is_some())
    );
    let mut o0 = 0;
    while o0 < c_out {
        // Blocks of 6 channels (LeNet's conv1 in one), then of 3, then what is left.
        let block = match c_out - o0 {
            6.. => 6,
            3..=5 => 3,
            left => left,
        };
        // SAFETY: bounds asserted above; AVX-512F is the caller's promise.
        unsafe {
            let out = (&mut *y, argmax.as_deref_mut(), alive.as_deref_mut());
            match block {
                6 => conv1ch_pooled_block::<6>(x, (h, w), k, o0, weight, bias, out),
                3 => conv1ch_pooled_block::<3>(x, (h, w), k, o0, weight, bias, out),
                2 => conv1ch_pooled_block::<2>(x, (h, w), k, o0, weight, bias, out),
                _ => conv1ch_pooled_block::<1>(x, (h, w), k, o0, weight, bias, out),
            }
        }
        o0 += block;
    }
}

/// Output channels `o0 .. o0 + B` of [`conv1ch_forward_pooled`]: two output rows of B
/// channels (4B vectors) stay in registers while the K*K taps stream past; each tap loads
/// the two shifted input rows once and broadcasts each channel's weight once for four
/// multiply-adds. The shifted rows' loads mostly straddle two cache lines, so the more
/// channels share them the better: with B = 6 (24 accumulators) a tap takes 4 row loads and
/// 6 broadcasts for 24 multiply-adds, where B = 3 takes 4 and 3 for 12 and waits on its
/// loads (BENCHMARKS.md).
///
/// # Safety
/// As [`conv1ch_forward_pooled`], after its checks.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn conv1ch_pooled_block<const B: usize>(
    x: &[f32],
    (h, w): (usize, usize),
    k: usize,
    o0: usize,
    weight: &[f32],
    bias: &[f32],
    (y, mut argmax, mut alive): (&mut [f32], Option<&mut [u32]>, Option<&mut [u32]>),
) {
    let (oh, ow) = (h - k + 1, w - k + 1);
    let (ph, pw) = (oh / 2, ow / 2);
    let masks = [lane_mask(ow, 0), lane_mask(ow, 1)];
    let out_mask = lane_mask(pw, 0);
    let (x, weight) = (x.as_ptr(), weight.as_ptr());
    for pi in 0..ph {
        let i = 2 * pi;
        // acc[o][r]: output row i + r of channel o0 + o, in two vectors.
        let mut acc = [[[_mm512_setzero_ps(); 2]; 2]; B];
        for (o, acc) in acc.iter_mut().enumerate() {
            *acc = [[_mm512_set1_ps(bias[o0 + o]); 2]; 2];
        }
        for u in 0..k {
            for v in 0..k {
                // SAFETY: rows i + u and i + u + 1 < h, columns v .. v + ow <= w (masked
                // beyond ow); weight index (o0 + o) * k * k + u * k + v < O * k * k.
                unsafe {
                    let top = x.add((i + u) * w + v);
                    let bottom = top.add(w);
                    let rows = [
                        [
                            _mm512_maskz_loadu_ps(masks[0], top),
                            _mm512_maskz_loadu_ps(masks[1], top.add(LANES)),
                        ],
                        [
                            _mm512_maskz_loadu_ps(masks[0], bottom),
                            _mm512_maskz_loadu_ps(masks[1], bottom.add(LANES)),
                        ],
                    ];
                    for (o, acc) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*weight.add(((o0 + o) * k + u) * k + v));
                        for (acc, row) in acc.iter_mut().zip(&rows) {
                            acc[0] = _mm512_fmadd_ps(wv, row[0], acc[0]);
                            acc[1] = _mm512_fmadd_ps(wv, row[1], acc[1]);
                        }
                    }
                }
            }
        }
        if let Some(alive) = alive.as_deref_mut() {
            for (o, acc) in acc.iter().enumerate() {
                for (r, row) in acc.iter().enumerate() {
                    let zero = _mm512_setzero_ps();
                    let lo = _mm512_mask_cmp_ps_mask::<_CMP_NLE_UQ>(masks[0], row[0], zero);
                    let hi = _mm512_mask_cmp_ps_mask::<_CMP_NLE_UQ>(masks[1], row[1], zero);
                    alive[(o0 + o) * oh + i + r] |= u32::from(lo) | (u32::from(hi) << LANES);
                }
            }
        }
        for (o, acc) in acc.iter().enumerate() {
            let out = ((o0 + o) * ph + pi) * pw;
            let best = match argmax.as_deref_mut() {
                Some(argmax) => {
                    let (best, at) = row_pair_max(acc[0], acc[1], i * ow, ow, true);
                    // SAFETY: row pi of pooled plane o0 + o holds pw values (masked store).
                    unsafe {
                        let to = argmax.as_mut_ptr().add(out).cast();
                        _mm512_mask_storeu_epi32(to, out_mask, at);
                    }
                    best
                }
                None => match row_pair_max_relu(acc[0], acc[1]) {
                    (best, 0) => best,
                    _ => row_pair_max(acc[0], acc[1], i * ow, ow, true).0,
                },
            };
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(out), out_mask, best) };
        }
    }
}

/// `relu(maxpool2x2(conv(x)))` of `samples` images, as
/// [`super::conv_narrow::conv_forward_channels_in_lanes`] followed by [`super::pool_relu::maxpool2x2_forward`] with
/// the ReLU folded: `y` gets `[O, OH/2, OW/2]` values per image, `argmax` (when given) the
/// flat index within the `OH x OW` convolution plane of each window's maximum. Without
/// `argmax` (no backward pass to follow), the windows take plain `max` instructions where
/// no value is NaN: the same values for less work, and one scatter per window instead of
/// two. `alive` (when given, with `argmax`) gets, for each output position p = i * OW + j,
/// bit o of `alive[p]` set where the ReLU's output at (o, i, j) of some image is not zero
/// (the convolution's output above zero, or NaN): the ReLU's units, for the instruments.
///
/// # Safety
/// AVX-512F must be available; the shape passes [`channels_in_lanes_applies`]; `wt` is the
/// weight transposed to `[C*K*K, O]`; `x` holds `samples` images `[C, H, W]`, `y` and
/// `argmax` `samples * O * (OH/2) * (OW/2)` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_forward_channels_in_lanes_pooled(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    bias: &[f32],
    y: &mut [f32],
    argmax: Option<&mut [u32]>,
    alive: Option<&mut [u32]>,
) {
    let k = g.kernel;
    let (oh, ow) = (h - k + 1, w - k + 1);
    assert!(channels_in_lanes_applies(g, (oh, ow)));
    let pooled = samples * g.c_out * (oh / 2) * (ow / 2);
    assert!(x.len() >= samples * g.c_in * h * w && y.len() >= pooled);
    assert!(argmax.as_ref().is_none_or(|a| a.len() >= pooled));
    assert!(
        alive
            .as_ref()
            .is_none_or(|a| a.len() >= oh * ow && argmax.is_some())
    );
    assert!(wt.len() >= g.col_rows() * g.c_out && bias.len() >= g.c_out);
    let argmax = argmax.map(|a| a.as_mut_ptr());
    let out = (y, argmax, alive);
    // SAFETY: bounds asserted above; AVX-512F is the caller's promise.
    unsafe {
        match ow {
            8 => lanes_pooled::<8>(x, samples, (h, w), g, wt, bias, out),
            10 => lanes_pooled::<10>(x, samples, (h, w), g, wt, bias, out),
            12 => lanes_pooled::<12>(x, samples, (h, w), g, wt, bias, out),
            _ => unreachable!("rows of 8, 10 or 12 values"),
        }
    }
}

/// [`conv_forward_channels_in_lanes_pooled`] for output rows of `OW` values: output row
/// 2i ([`super::lanes_row`], OW vectors of all output channels) is reduced to its windows'
/// top-left / top-right choice, then row 2i + 1 completes each window's maximum, whose
/// vector goes to its place in every channel's plane (one scatter for the values, one for
/// the argmax). Without `argmax`, a pair of rows first takes plain `max` instructions, and
/// the first-maximum rule only where it holds a NaN (computed again).
///
/// # Safety
/// As [`conv_forward_channels_in_lanes_pooled`], after its checks; `argmax`, when given,
/// points at as many values as `y`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn lanes_pooled<const OW: usize>(
    x: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    bias: &[f32],
    (y, argmax, mut alive): (&mut [f32], Option<*mut u32>, Option<&mut [u32]>),
) {
    let k = g.kernel;
    let oh = h - k + 1;
    let (ph, pw) = (oh / 2, OW / 2);
    let (c_out, plane) = (g.c_out, ph * pw);
    let mask = lane_mask(c_out, 0);
    // SAFETY: lanes past c_out are masked off.
    let b = unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr()) };
    // Lane o of a window's vector goes to plane o.
    let to_planes = lane_planes(plane);
    let index = |at: usize| _mm512_set1_epi32(at as i32);
    for s in 0..samples {
        // SAFETY: sample s lies inside x, y and argmax (asserted by the caller).
        let (x, y, argmax) = unsafe {
            (
                x.as_ptr().add(s * g.c_in * h * w),
                y.as_mut_ptr().add(s * c_out * plane),
                argmax.map(|a| a.add(s * c_out * plane)),
            )
        };
        for pi in 0..ph {
            let i = 2 * pi;
            if argmax.is_none() {
                // SAFETY: rows i and i + 1 of the output exist.
                if let Some(best) = unsafe { windows_max_relu::<OW>(x, (h, w), g, wt, b, i) } {
                    for (pj, &best) in best.iter().enumerate().take(pw) {
                        // SAFETY: window (pi, pj) of every plane o < c_out lies inside the
                        // sample.
                        unsafe {
                            let to = y.add(pi * pw + pj).cast();
                            _mm512_mask_i32scatter_ps::<4>(to, mask, to_planes, best);
                        }
                    }
                    continue;
                }
            }
            // Each window's running maximum after its top row (only the first pw used).
            let mut best = [(b, index(0)); OW];
            // SAFETY: rows i and i + 1 of the output exist.
            let top = unsafe { super::conv_narrow::lanes_row::<OW>(x, (h, w), g, wt, b, i) };
            if let Some(alive) = alive.as_deref_mut() {
                mark_alive(&top, mask, &mut alive[i * OW..][..OW]);
            }
            for (pj, best) in best.iter_mut().enumerate().take(pw) {
                let at = i * OW + 2 * pj;
                *best = window_pick((top[2 * pj], index(at)), (top[2 * pj + 1], index(at + 1)));
            }
            // SAFETY: as above.
            let bottom = unsafe { super::conv_narrow::lanes_row::<OW>(x, (h, w), g, wt, b, i + 1) };
            if let Some(alive) = alive.as_deref_mut() {
                mark_alive(&bottom, mask, &mut alive[(i + 1) * OW..][..OW]);
            }
            for (pj, &best) in best.iter().enumerate().take(pw) {
                let at = (i + 1) * OW + 2 * pj;
                let best = window_pick(best, (bottom[2 * pj], index(at)));
                let (best, best_at) = window_pick(best, (bottom[2 * pj + 1], index(at + 1)));
                // SAFETY: window (pi, pj) of every plane o < c_out lies inside the sample.
                unsafe {
                    let to = pi * pw + pj;
                    let best = relu_keep_nan(best);
                    _mm512_mask_i32scatter_ps::<4>(y.add(to).cast(), mask, to_planes, best);
                    if let Some(argmax) = argmax {
                        let to = argmax.add(to).cast();
                        _mm512_mask_i32scatter_epi32::<4>(to, mask, to_planes, best_at);
                    }
                }
            }
        }
    }
}

/// For each vector of an output row in [`lanes_pooled`] (one position, its channels in the
/// lanes `mask` keeps), sets in `alive` the bits of the channels whose ReLU output is not
/// zero: the value above zero, or NaN.
#[target_feature(enable = "avx512f")]
#[inline]
fn mark_alive(row: &[__m512], mask: __mmask16, alive: &mut [u32]) {
    for (alive, &v) in alive.iter_mut().zip(row) {
        let on = _mm512_mask_cmp_ps_mask::<_CMP_NLE_UQ>(mask, v, _mm512_setzero_ps());
        *alive |= u32::from(on);
    }
}

/// The windows of output rows `i` and `i + 1` in [`lanes_pooled`], without the argmax, by
/// plain `max` instructions (as [`row_pair_max_relu`]: the same values wherever no value is
/// NaN): vector `pj` holds window `pj` of every channel, after the ReLU. None where the rows
/// hold a NaN.
///
/// # Safety
/// As [`lanes_pooled`], for one sample at `x`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn windows_max_relu<const OW: usize>(
    x: *const f32,
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    b: __m512,
    i: usize,
) -> Option<[__m512; OW]> {
    let pw = OW / 2;
    // SAFETY: rows i and i + 1 of the output exist (the caller's promise).
    let top = unsafe { super::conv_narrow::lanes_row::<OW>(x, (h, w), g, wt, b, i) };
    let mut best = [b; OW];
    let mut nan = 0;
    for (pj, best) in best.iter_mut().enumerate().take(pw) {
        let (t0, t1) = (top[2 * pj], top[2 * pj + 1]);
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(t0, t1);
        *best = _mm512_max_ps(t0, t1);
    }
    // SAFETY: as above.
    let bottom = unsafe { super::conv_narrow::lanes_row::<OW>(x, (h, w), g, wt, b, i + 1) };
    for (pj, best) in best.iter_mut().enumerate().take(pw) {
        let (b0, b1) = (bottom[2 * pj], bottom[2 * pj + 1]);
        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b0, b1);
        let m = _mm512_max_ps(*best, _mm512_max_ps(b0, b1));
        // max(-0, +0) and max(+0, -0) both give the second operand: +0.
        *best = _mm512_max_ps(m, _mm512_setzero_ps());
    }
    (nan == 0).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::conv_narrow::conv_forward_channels_in_lanes;
    use crate::nn::kernels::conv_single_channel::conv1ch_forward;
    use crate::nn::kernels::gemm::transpose;
    use crate::nn::kernels::pool_relu::maxpool2x2_forward;
    use crate::rng::Rng;
    use crate::simd::available;

    /// Small integers, so that many outputs tie exactly (the pooling must pick the first
    /// maximum of each window as PyTorch does), with a NaN and an infinity.
    fn tricky(rng: &mut Rng, len: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..len)
            .map(|_| (rng.uniform_range(-3.0, 3.0) as i32) as f32)
            .collect();
        v[len / 3] = f32::NAN;
        v[len / 2] = f32::INFINITY;
        v
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The fused pass writes the same pooled values and argmax, bit for bit, as the
    /// convolution kernel followed by the pooling kernel with the ReLU folded; and the same
    /// values without the argmax (plain maxima where no NaN is near, the first-maximum rule
    /// where one is). It marks the ReLU units that fired (output above zero, or NaN) as the
    /// convolution's output says (the next test: in any of the images).
    #[test]
    fn single_channel_fused_equals_convolution_then_pooling() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(7);
        for (c_out, side, k) in [(6, 32, 5), (8, 12, 3), (4, 13, 4), (1, 10, 3)] {
            let (oh, ow) = (side - k + 1, side - k + 1);
            assert!(single_channel_applies(oh, ow));
            let x = tricky(&mut rng, side * side);
            let weight: Vec<f32> = (0..c_out * k * k)
                .map(|_| (rng.uniform_range(-2.0, 2.0) as i32) as f32)
                .collect();
            let bias: Vec<f32> = (0..c_out).map(|o| o as f32 - 1.0).collect();
            let pooled = c_out * (oh / 2) * (ow / 2);
            let mut conv = vec![0.0; c_out * oh * ow];
            let (mut y_ref, mut a_ref) = (vec![0.0; pooled], vec![0u32; pooled]);
            let (mut y, mut a) = (vec![-7.0; pooled], vec![u32::MAX; pooled]);
            let mut y_alone = vec![-7.0; pooled];
            let mut alive = vec![0u32; c_out * oh];
            // SAFETY: AVX-512F is present (checked above); the buffers have the sizes the
            // kernels ask for.
            unsafe {
                conv1ch_forward(&x, (side, side), k, &weight, &bias, &mut conv);
                let planes = (c_out, (oh, ow));
                maxpool2x2_forward(&conv, planes.0, planes.1, &mut y_ref, &mut a_ref, true);
                let sides = (side, side);
                let (y, a) = (&mut y, Some(&mut a[..]));
                conv1ch_forward_pooled(&x, sides, k, &weight, &bias, y, a, Some(&mut alive));
                let y = &mut y_alone;
                conv1ch_forward_pooled(&x, sides, k, &weight, &bias, y, None, None);
            }
            // The marks: bit j of row (o, i) where the ReLU's output is not zero.
            for (r, &word) in alive.iter().enumerate() {
                for j in 0..ow {
                    let v = conv[r * ow + j];
                    let fired = word >> j & 1 == 1;
                    let on = v > 0.0 || v.is_nan();
                    assert_eq!(fired, on, "{c_out} channels, row {r}, column {j}");
                }
            }
            assert!(y_ref.iter().any(|v| v.is_nan()) && y_ref.contains(&0.0));
            assert_eq!(bits(&y), bits(&y_ref), "{c_out} channels, side {side}");
            assert_eq!(a, a_ref, "{c_out} channels, side {side}");
            assert_eq!(
                bits(&y_alone),
                bits(&y_ref),
                "{c_out} channels, side {side}"
            );
        }
    }

    #[test]
    fn channels_in_lanes_fused_equals_convolution_then_pooling() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(8);
        for (g, side, n) in [
            (ConvGeometry::unpadded(6, 16, 5), 14, 3),
            (ConvGeometry::unpadded(3, 5, 5), 12, 2),
            (ConvGeometry::unpadded(2, 9, 3), 14, 2),
        ] {
            let (o, k) = (g.out_side(side), g.kernel);
            assert!(channels_in_lanes_applies(g, (o, o)));
            let x = tricky(&mut rng, n * g.c_in * side * side);
            let weight: Vec<f32> = (0..g.c_out * g.col_rows())
                .map(|_| (rng.uniform_range(-2.0, 2.0) as i32) as f32)
                .collect();
            let mut wt = vec![0.0; weight.len()];
            let bias: Vec<f32> = (0..g.c_out).map(|o| o as f32 * 0.5 - 2.0).collect();
            let pooled = n * g.c_out * (o / 2) * (o / 2);
            let mut conv = vec![0.0; n * g.c_out * o * o];
            let (mut y_ref, mut a_ref) = (vec![0.0; pooled], vec![0u32; pooled]);
            let (mut y, mut a) = (vec![-7.0; pooled], vec![u32::MAX; pooled]);
            let mut y_alone = vec![-7.0; pooled];
            let mut alive = vec![0u32; o * o];
            let sides = (side, side);
            // SAFETY: AVX-512F is present (checked above); the buffers have the sizes the
            // kernels ask for.
            unsafe {
                transpose(&weight, g.c_out, g.col_rows(), &mut wt);
                assert!(conv_forward_channels_in_lanes(
                    &x, n, sides, g, &wt, &bias, &mut conv
                ));
                let planes = n * g.c_out;
                maxpool2x2_forward(&conv, planes, (o, o), &mut y_ref, &mut a_ref, true);
                let (y, a, marks) = (&mut y, Some(&mut a[..]), Some(&mut alive[..]));
                conv_forward_channels_in_lanes_pooled(&x, n, sides, g, &wt, &bias, y, a, marks);
                let y = &mut y_alone;
                conv_forward_channels_in_lanes_pooled(&x, n, sides, g, &wt, &bias, y, None, None);
            }
            assert!(y_ref.iter().any(|v| v.is_nan()) && y_ref.contains(&0.0));
            assert_eq!(bits(&y), bits(&y_ref), "{g:?}, side {side}");
            assert_eq!(a, a_ref, "{g:?}, side {side}, kernel {k}");
            assert_eq!(bits(&y_alone), bits(&y_ref), "{g:?}, side {side}");
            // The marks: bit c of position p where some image's ReLU output is not zero.
            for (p, &word) in alive.iter().enumerate() {
                for c in 0..g.c_out {
                    let value = |s: usize| conv[(s * g.c_out + c) * o * o + p];
                    let fired = (0..n).any(|s| value(s) > 0.0 || value(s).is_nan());
                    assert_eq!(
                        word >> c & 1 == 1,
                        fired,
                        "{g:?}, position {p}, channel {c}"
                    );
                }
            }
        }
    }
}
