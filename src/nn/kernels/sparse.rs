//! Backward of a 5x5 convolution when most of its output gradient is zero (LeNet's conv2).
//!
//! A convolution followed by ReLU and 2x2 max pooling receives a gradient with at most one
//! nonzero value in each 2x2 window of each channel: pooling sends a window's gradient to its
//! maximum only, and ReLU stops it where that maximum is not positive. The dense kernels
//! multiply the other three quarters (or more) of zeros; these visit the nonzero values only,
//! found 16 at a time by a vector comparison, and do work in proportion to them.
//!
//! Both kernels work on images channel-last (`[H, W, C]`, converted by vector gathers),
//! where the K x C values that one kernel row touches at a position are contiguous: with
//! C <= 6 they fit two vectors.
//!
//! - [`weight_grad`]: for each output channel, 5 rows x 2 vectors of accumulators hold its
//!   whole weight gradient (laid out `[K, K*C]`); each nonzero `dy` adds itself times the
//!   5 input rows under the kernel.
//! - [`input_grad`]: for each 2x2 block of output positions, a register tile holds the 6 x 6
//!   input positions (x C channels, three vectors a row) the block reaches; each nonzero `dy`
//!   in the block adds itself times its channel's weight, loaded shifted to its column in
//!   the block, and the tile is added to the input gradient once.
//!
//! Sums run in a fixed order (channels, samples, then positions ascending), independent of
//! the thread count.

use std::arch::x86_64::*;

use super::im2col::ConvGeometry;
use crate::simd::{LANES, lane_mask};

/// Kernel side.
const K: usize = 5;
/// Most input channels: a kernel row's K*C values then fit two vectors, and the K+1 columns
/// of a 2x2 block's reach three.
pub const MAX_C_IN: usize = 6;
/// Vectors of one input-gradient tile row.
const TILE_VECTORS: usize = 3;

/// Whether these kernels cover the layer: 5x5 kernel, stride 1, no padding, at most 6 input
/// and 16 output channels, an output of even sides with at most 128 positions.
pub fn applies(g: ConvGeometry, (oh, ow): (usize, usize)) -> bool {
    g.kernel == K
        && g.stride == 1
        && g.padding == 0
        && g.c_in <= MAX_C_IN
        && g.c_out <= LANES
        && oh % 2 == 0
        && ow % 2 == 0
        && oh * ow <= 128
}

/// How many values of `v` are not zero (NaN counts as not zero).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn count_nonzero(v: &[f32]) -> usize {
    let zero = _mm512_setzero_ps();
    let mut count = 0;
    let mut chunks = v.chunks_exact(LANES);
    for c in &mut chunks {
        // SAFETY: c holds 16 values.
        let x = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        count += _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(x, zero).count_ones() as usize;
    }
    count + chunks.remainder().iter().filter(|&&x| x != 0.0).count()
}

/// Mask of the nonzero values among the first `n <= 128` of `v`, bit p for value p.
///
/// # Safety
/// AVX-512F must be available; `v` holds at least `n` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn nonzero_bits(v: *const f32, n: usize) -> u128 {
    let zero = _mm512_setzero_ps();
    let mut bits = 0u128;
    for c in 0..n.div_ceil(LANES) {
        // SAFETY: lanes beyond n are masked off (and compare equal to zero).
        let x = unsafe { _mm512_maskz_loadu_ps(lane_mask(n, c), v.add(c * LANES)) };
        bits |= (_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(x, zero) as u128) << (c * LANES);
    }
    bits
}

/// Images from channel-first to channel-last, `dst[s][p * C + c] = src[s][c * plane + p]` for
/// `samples` images of `C <= 16` planes of `plane` values, 16 values of `dst` per gather (the
/// gathers' index pattern is worked out once for all the images).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn channel_last(
    src: &[f32],
    samples: usize,
    channels: usize,
    plane: usize,
    dst: &mut [f32],
) {
    let len = channels * plane;
    assert!(channels <= LANES && src.len() >= samples * len && dst.len() >= samples * len);
    // Output vector k of a period reads lane l from channel (16k + l) % C at position
    // (16k + l) / C; the pattern repeats every C / gcd(16, C) vectors, shifted by the
    // positions it covered.
    let period = channels >> channels.trailing_zeros().min(4);
    let positions_per_period = LANES * period / channels;
    let mut index = [[0i32; LANES]; LANES];
    for (k, index) in index.iter_mut().enumerate().take(period) {
        for (l, i) in index.iter_mut().enumerate() {
            let e = k * LANES + l;
            *i = ((e % channels) * plane + e / channels) as i32;
        }
    }
    for s in 0..samples {
        let (src, dst) = (&src[s * len..][..len], &mut dst[s * len..][..len]);
        for (v, out) in dst.chunks_mut(LANES).enumerate() {
            let base = (v / period * positions_per_period) as isize;
            let mask = lane_mask(out.len(), 0);
            // SAFETY: every unmasked lane indexes a value of the image below len (its output
            // element lies below len); masked lanes are neither read nor written.
            unsafe {
                let idx = _mm512_loadu_si512(index[v % period].as_ptr().cast());
                let x = _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    idx,
                    src.as_ptr().offset(base).cast(),
                );
                _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, x);
            }
        }
    }
}

/// One output gradient `[O, positions]` (O <= 16) channel-last with 16 lanes a position,
/// `dst[p * 16 + o]`, lanes from O on zero: one gather per position.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn channel_last_16(src: &[f32], channels: usize, positions: usize, dst: &mut [f32]) {
    assert!(channels <= LANES && src.len() >= channels * positions);
    assert!(dst.len() >= positions * LANES);
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(positions as i32),
    );
    let mask = lane_mask(channels, 0);
    for p in 0..positions {
        // SAFETY: lane o < channels reads src[o * positions + p]; dst holds the position.
        unsafe {
            let base = src.as_ptr().add(p).cast();
            let x = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base);
            _mm512_storeu_ps(dst.as_mut_ptr().add(p * LANES), x);
        }
    }
}

/// The inverse of [`channel_last`] for one image: `dst[c * plane + p] = src[p * C + c]`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn channel_first(src: &[f32], channels: usize, plane: usize, dst: &mut [f32]) {
    assert!(src.len() >= channels * plane && dst.len() >= channels * plane);
    let idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(channels as i32),
    );
    for c in 0..channels {
        for p in (0..plane).step_by(LANES) {
            let mask = lane_mask(plane - p, 0);
            // SAFETY: lane l < plane - p reads src[(p + l) * C + c] < C * plane.
            unsafe {
                let base = src.as_ptr().add(p * channels + c).cast();
                let x = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base);
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(c * plane + p), mask, x);
            }
        }
    }
}

/// Length of the weight-gradient scratch [`weight_grad`] writes: `[O, K, 32]`.
pub fn weight_grad_len(g: ConvGeometry) -> usize {
    g.c_out * K * 2 * LANES
}

/// Adds the scratch of [`weight_grad`] to a weight gradient laid out `[O, C, K, K]`: each
/// kernel's K*K values (one channel pair o, c) are gathered from the scratch in two vectors
/// and added to their contiguous place. One addition per value, so the order is immaterial.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub unsafe fn add_weight_grad(dwt: &[f32], g: ConvGeometry, dw: &mut [f32]) {
    let c = g.c_in;
    assert!(c <= MAX_C_IN && dwt.len() >= weight_grad_len(g) && dw.len() >= g.c_out * c * K * K);
    // Lane l of a kernel (u = l / K, v = l % K) sits at u * 32 + v * C of its scratch block.
    let offsets: [i32; 2 * LANES] =
        std::array::from_fn(|l| ((l / K).min(K - 1) * 2 * LANES + (l % K) * c) as i32);
    // SAFETY: the arrays hold 32 values.
    let idx = unsafe {
        [
            _mm512_loadu_si512(offsets.as_ptr().cast()),
            _mm512_loadu_si512(offsets.as_ptr().add(LANES).cast()),
        ]
    };
    let masks = [lane_mask(K * K, 0), lane_mask(K * K, 1)];
    for o in 0..g.c_out {
        for ci in 0..c {
            // SAFETY: the gathered offsets stay below K * 32 within channel o's block (the
            // last lanes clamped to row K - 1 and masked off); the K*K values of dw for (o, ci)
            // lie inside dw (asserted).
            unsafe {
                let base = dwt.as_ptr().add(o * K * 2 * LANES + ci).cast();
                let out = dw.as_mut_ptr().add((o * c + ci) * K * K);
                for (v, (&idx, &mask)) in idx.iter().zip(&masks).enumerate() {
                    let add = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base);
                    let at = out.add(v * LANES);
                    let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), add);
                    _mm512_mask_storeu_ps(at, mask, sum);
                }
            }
        }
    }
}

/// Weight and bias gradients over `samples` images: `dwt` `[O, K, 32]` (row u of channel o
/// holds `dw[o, c, u, v]` at lane `v * C + c`; see [`add_weight_grad`]) is overwritten, and
/// `db` `[O]` is added to. With `each` (`samples` equal slots, each starting with a block laid
/// out as `dwt`; and `samples` rows of O biases), block and row s are overwritten with the
/// change image s made to the running sums: its own weight and bias gradients, up to the
/// rounding of the sums (for the noise instruments; `dwt` and `db` get the same bits either
/// way).
///
/// `xt` holds the images channel-last, `[samples, H, W, C]`; `dy` the output gradients
/// `[samples, O, OH, OW]`.
///
/// # Safety
/// AVX-512F must be available; [`applies`] holds for `g` and the output sides.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn weight_grad(
    xt: &[f32],
    dy: &[f32],
    samples: usize,
    (h, w): (usize, usize),
    g: ConvGeometry,
    dwt: &mut [f32],
    db: &mut [f32],
    mut each: Option<(&mut [f32], &mut [f32])>,
) {
    let (oh, ow) = (h - K + 1, w - K + 1);
    let (c, positions) = (g.c_in, oh * ow);
    assert!(applies(g, (oh, ow)));
    assert!(xt.len() >= samples * h * w * c && dy.len() >= samples * g.c_out * positions);
    assert!(dwt.len() >= weight_grad_len(g) && db.len() >= g.c_out);
    let slot = each.as_ref().map_or(0, |(w, _)| w.len() / samples.max(1));
    let fits = |(_, b): &(&mut [f32], &mut [f32])| {
        slot >= weight_grad_len(g) && b.len() >= samples * g.c_out
    };
    assert!(each.as_ref().is_none_or(fits));
    // Where the kernel's top-left input value sits, channel-last, for each output position.
    let mut corner = [0u32; 128];
    for (p, corner) in corner.iter_mut().enumerate().take(positions) {
        *corner = (((p / ow) * w + p % ow) * c) as u32;
    }
    let masks = [lane_mask(K * c, 0), lane_mask(K * c, 1)];
    let stride = w * c;
    for (o, db) in db.iter_mut().enumerate().take(g.c_out) {
        let mut acc = [[_mm512_setzero_ps(); 2]; K];
        // The sums before the current image, when keeping each image's change.
        let mut before = acc;
        let (mut bias, mut bias_before) = (0.0f32, 0.0f32);
        for s in 0..samples {
            // SAFETY: bounds asserted above; the rows read, K*C values from a kernel corner,
            // end inside the image (the kernel fits the input at every output position).
            unsafe {
                let plane = dy.as_ptr().add((s * g.c_out + o) * positions);
                let image = xt.as_ptr().add(s * h * w * c);
                let mut bits = nonzero_bits(plane, positions);
                while bits != 0 {
                    let p = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let d = *plane.add(p);
                    bias += d;
                    let dv = _mm512_set1_ps(d);
                    let x0 = image.add(corner[p] as usize);
                    for (u, acc) in acc.iter_mut().enumerate() {
                        let row = x0.add(u * stride);
                        let a = _mm512_maskz_loadu_ps(masks[0], row);
                        let b = _mm512_maskz_loadu_ps(masks[1], row.add(LANES));
                        acc[0] = _mm512_fmadd_ps(dv, a, acc[0]);
                        acc[1] = _mm512_fmadd_ps(dv, b, acc[1]);
                    }
                }
                if let Some((each, each_bias)) = each.as_mut() {
                    each_bias[s * g.c_out + o] = bias - bias_before;
                    bias_before = bias;
                    // SAFETY: slot s holds [O, K, 32] values (asserted).
                    let out = each.as_mut_ptr().add(s * slot + o * K * 2 * LANES);
                    for (u, (acc, was)) in acc.iter().zip(&mut before).enumerate() {
                        for v in 0..2 {
                            let change = _mm512_sub_ps(acc[v], was[v]);
                            _mm512_storeu_ps(out.add((u * 2 + v) * LANES), change);
                        }
                        *was = *acc;
                    }
                }
            }
        }
        for (u, acc) in acc.iter().enumerate() {
            // SAFETY: dwt holds [O, K, 32] values (asserted).
            unsafe {
                let out = dwt.as_mut_ptr().add((o * K + u) * 2 * LANES);
                _mm512_storeu_ps(out, acc[0]);
                _mm512_storeu_ps(out.add(LANES), acc[1]);
            }
        }
        *db += bias;
    }
}

/// Input gradient of one image: `dxt` `[H, W, C]` (channel-last) is overwritten.
///
/// `dyt` holds the output gradient channel-last with 16 lanes a position, `[OH*OW, 16]`
/// (lanes from O on zero); `wt` the weight laid out `[O, K, K, C]`, so that row `(o, u)` of
/// the kernel is K*C contiguous values, as the tile's rows hold them.
///
/// # Safety
/// AVX-512F must be available; [`applies`] holds for `g` and the output sides.
#[target_feature(enable = "avx512f")]
pub unsafe fn input_grad(
    dyt: &[f32],
    (h, w): (usize, usize),
    g: ConvGeometry,
    wt: &[f32],
    dxt: &mut [f32],
) {
    let (oh, ow) = (h - K + 1, w - K + 1);
    let c = g.c_in;
    assert!(applies(g, (oh, ow)));
    assert!(dyt.len() >= oh * ow * LANES && dxt.len() >= h * w * c);
    assert!(wt.len() >= g.c_out * K * K * c);
    dxt[..h * w * c].fill(0.0);
    // Lanes of tile vector v that a kernel row shifted right by s columns covers.
    let mut shifted = [[0; TILE_VECTORS]; 2];
    for (s, masks) in shifted.iter_mut().enumerate() {
        for (v, mask) in masks.iter_mut().enumerate() {
            for l in 0..LANES {
                let lane = v * LANES + l;
                if lane >= s * c && lane < (s + K) * c {
                    *mask |= 1 << l;
                }
            }
        }
    }
    let tile_masks: [__mmask16; TILE_VECTORS] = std::array::from_fn(|v| lane_mask((K + 1) * c, v));
    for bi in 0..oh / 2 {
        for bj in 0..ow / 2 {
            let mut tile = [[_mm512_setzero_ps(); TILE_VECTORS]; K + 1];
            let top = (2 * bi) * ow + 2 * bj;
            // SAFETY: positions top, top + 1, top + ow, top + ow + 1 exist (even sides).
            unsafe {
                let dy = dyt.as_ptr();
                block_row::<0>(dy.add(top * LANES), g, wt, &shifted, &mut tile);
                block_row::<1>(dy.add((top + ow) * LANES), g, wt, &shifted, &mut tile);
            }
            for (r, row) in tile.iter().enumerate() {
                // SAFETY: input rows 2bi .. 2bi + K + 1 and columns 2bj .. 2bj + K + 1 lie
                // inside the image (h = oh + K - 1 with oh even, likewise w).
                unsafe {
                    let out = dxt.as_mut_ptr().add(((2 * bi + r) * w + 2 * bj) * c);
                    for (v, &t) in row.iter().enumerate() {
                        let (at, m) = (out.add(v * LANES), tile_masks[v]);
                        let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), t);
                        _mm512_mask_storeu_ps(at, m, sum);
                    }
                }
            }
        }
    }
}

/// Adds to `tile` the contributions of the two positions of one row (`R` = 0 or 1) of a 2x2
/// block: `dy` at the left position reaches tile rows `R .. R + K` through the kernel rows as
/// they are, at the right position through the kernel rows shifted right by one column (C
/// lanes), loaded under the masks `shifted`.
///
/// # Safety
/// AVX-512F must be available; `dy` points at two positions of 16 lanes each.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block_row<const R: usize>(
    dy: *const f32,
    g: ConvGeometry,
    wt: &[f32],
    shifted: &[[__mmask16; TILE_VECTORS]; 2],
    tile: &mut [[__m512; TILE_VECTORS]; K + 1],
) {
    let zero = _mm512_setzero_ps();
    let row_len = K * g.c_in;
    // SAFETY: the caller guarantees 32 readable values at dy; wt holds [O, K, K*C]; a masked
    // load reads only the lanes of its kernel row (the pointer is offset back by the shift
    // so that the row's first value lands on lane s*C).
    unsafe {
        let left = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(_mm512_loadu_ps(dy), zero) as u32;
        let right = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(_mm512_loadu_ps(dy.add(LANES)), zero);
        let mut bits = left | (right as u32) << LANES;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (s, o) = (b / LANES, b % LANES);
            let dv = _mm512_set1_ps(*dy.add(b));
            let kernel = wt.as_ptr().add(o * K * row_len).wrapping_sub(s * g.c_in);
            for u in 0..K {
                let row = kernel.wrapping_add(u * row_len);
                for (v, t) in tile[R + u].iter_mut().enumerate() {
                    let wv = _mm512_maskz_loadu_ps(shifted[s][v], row.wrapping_add(v * LANES));
                    *t = _mm512_fmadd_ps(dv, wv, *t);
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

    /// The gathered addition puts every scratch value where the layout says, for six and for
    /// three input channels.
    #[test]
    fn weight_grad_scratch_is_added_where_it_belongs() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(4);
        for c_in in [6, 3] {
            let g = ConvGeometry::unpadded(c_in, 16, K);
            let dwt: Vec<f32> = (0..weight_grad_len(g))
                .map(|_| rng.uniform_range(-1.0, 1.0))
                .collect();
            let start: Vec<f32> = (0..g.c_out * g.col_rows())
                .map(|_| rng.uniform_range(-1.0, 1.0))
                .collect();
            let mut want = start.clone();
            for o in 0..g.c_out {
                for c in 0..c_in {
                    for u in 0..K {
                        for v in 0..K {
                            want[((o * c_in + c) * K + u) * K + v] +=
                                dwt[(o * K + u) * 2 * LANES + v * c_in + c];
                        }
                    }
                }
            }
            let mut dw = start;
            // SAFETY: AVX-512F is present (checked above).
            unsafe { add_weight_grad(&dwt, g, &mut dw) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            assert_eq!(bits(&dw), bits(&want), "{c_in} input channels");
        }
    }
}
