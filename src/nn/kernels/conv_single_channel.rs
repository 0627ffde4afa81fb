//! AVX-512 kernels of a convolution with one input channel (LeNet's conv1, rows of 28 or 32).
//!
//! [`conv1ch_forward`] holds a row of outputs of 8 channels in registers while the 25 shifted
//! input rows stream past; [`conv1ch_weight_grad`] takes the output gradient as wide as the
//! input ([`conv1ch_grad_layout`]), so that every kernel tap reads its input at one fixed
//! offset from the output position.

use std::arch::x86_64::*;

use crate::simd::{LANES, lane_mask};

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

/// Each weight's lane sums of [`conv1ch_weight_grad`] added up, into `totals`, and its
/// change since the last call (the `totals` it held) into `change`: after one image's call,
/// that image's own weight gradient, up to the rounding of the sums.
///
/// # Safety
/// AVX-512F must be available; `sums` holds `16 * totals.len()` values, `change` as many as
/// `totals`.
#[target_feature(enable = "avx512f")]
pub unsafe fn lane_sum_changes(sums: &[f32], totals: &mut [f32], change: &mut [f32]) {
    assert!(sums.len() >= totals.len() * LANES && change.len() >= totals.len());
    let lanes = sums.chunks_exact(LANES);
    for ((total, change), lanes) in totals.iter_mut().zip(change.iter_mut()).zip(lanes) {
        // SAFETY: a chunk holds 16 values.
        let now = _mm512_reduce_add_ps(unsafe { _mm512_loadu_ps(lanes.as_ptr()) });
        *change = now - *total;
        *total = now;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::simd::available;

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
}
