//! The geometry of a convolution and its im2col matrix, which the convolution layer and the
//! kernels share.
//!
//! im2col lays out the K*K*C input values each output position reads as one column of a
//! `[C*K*K, positions]` matrix, so that a convolution is one matrix product; col2im is its
//! adjoint, adding each column entry back onto the input position it came from. Both are
//! written once over a [`RowOps`] (how a short row is copied or added), and compiled twice:
//! with plain loops, and with AVX-512 masked vectors where the processor has them.

use crate::simd;

/// The shape of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    /// Stride 1, no padding (LeNet's convolutions).
    pub fn unpadded(c_in: usize, c_out: usize, kernel: usize) -> Self {
        ConvGeometry {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: 0,
        }
    }

    /// Output side for an input side.
    pub fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Rows of the im2col matrix: C * K * K.
    pub fn col_rows(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }
}

/// How short rows are copied and added: plain loops, or AVX-512 masked vectors.
pub(crate) trait RowOps {
    fn copy(dst: &mut [f32], src: &[f32]);
    fn add(dst: &mut [f32], src: &[f32]);
}

pub(crate) struct PlainRows;

impl RowOps for PlainRows {
    #[inline(always)]
    fn copy(dst: &mut [f32], src: &[f32]) {
        dst.copy_from_slice(src);
    }

    #[inline(always)]
    fn add(dst: &mut [f32], src: &[f32]) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
    }
}

/// [`im2col_with`] with the fastest row operations this processor has.
pub fn im2col(x: &[f32], samples: usize, h: usize, w: usize, g: ConvGeometry, cols: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { avx512::im2col_avx512(x, samples, h, w, g, cols) };
    }
    im2col_with::<PlainRows>(x, samples, h, w, g, cols)
}

/// [`col2im_with`] with the fastest row operations this processor has.
pub fn col2im(cols: &[f32], samples: usize, h: usize, w: usize, g: ConvGeometry, dx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { avx512::col2im_avx512(cols, samples, h, w, g, dx) };
    }
    col2im_with::<PlainRows>(cols, samples, h, w, g, dx)
}

/// Writes the im2col columns of `samples` consecutive images of `x` (each `[C, H, W]`) into
/// `cols`, laid out `[C*K*K, samples * OH*OW]`.
#[inline(always)]
pub(crate) fn im2col_with<R: RowOps>(
    x: &[f32],
    samples: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
    cols: &mut [f32],
) {
    let (oh, ow, k) = (g.out_side(h), g.out_side(w), g.kernel);
    let positions = oh * ow;
    let width = samples * positions;
    let unpadded = g.padding == 0 && g.stride == 1;
    for c in 0..g.c_in {
        for u in 0..k {
            for v in 0..k {
                let row = (c * k + u) * k + v;
                let dst_row = &mut cols[row * width..(row + 1) * width];
                for s in 0..samples {
                    let plane = &x[(s * g.c_in + c) * h * w..][..h * w];
                    let dst = &mut dst_row[s * positions..(s + 1) * positions];
                    for i in 0..oh {
                        let dst = &mut dst[i * ow..(i + 1) * ow];
                        if unpadded {
                            // The common case: each output row reads one contiguous input run.
                            R::copy(dst, &plane[(i + u) * w + v..][..ow]);
                            continue;
                        }
                        let r = (i * g.stride + u) as isize - g.padding as isize;
                        if r < 0 || r >= h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[r as usize * w..(r as usize + 1) * w];
                        for (j, d) in dst.iter_mut().enumerate() {
                            let col = (j * g.stride + v) as isize - g.padding as isize;
                            *d = if col < 0 || col >= w as isize {
                                0.0
                            } else {
                                src[col as usize]
                            };
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_with`]: adds each column entry back onto the input position it
/// came from. `dx` must be zeroed by the caller.
#[inline(always)]
pub(crate) fn col2im_with<R: RowOps>(
    cols: &[f32],
    samples: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
    dx: &mut [f32],
) {
    let (oh, ow, k) = (g.out_side(h), g.out_side(w), g.kernel);
    let positions = oh * ow;
    let width = samples * positions;
    let unpadded = g.padding == 0 && g.stride == 1;
    for c in 0..g.c_in {
        for u in 0..k {
            for v in 0..k {
                let row = (c * k + u) * k + v;
                let src_row = &cols[row * width..(row + 1) * width];
                for s in 0..samples {
                    let plane = &mut dx[(s * g.c_in + c) * h * w..][..h * w];
                    let src = &src_row[s * positions..(s + 1) * positions];
                    for i in 0..oh {
                        if unpadded {
                            let dst = &mut plane[(i + u) * w + v..][..ow];
                            R::add(dst, &src[i * ow..(i + 1) * ow]);
                            continue;
                        }
                        let r = (i * g.stride + u) as isize - g.padding as isize;
                        if r < 0 || r >= h as isize {
                            continue;
                        }
                        let dst = &mut plane[r as usize * w..(r as usize + 1) * w];
                        for (j, &val) in src[i * ow..(i + 1) * ow].iter().enumerate() {
                            let col = (j * g.stride + v) as isize - g.padding as isize;
                            if col >= 0 && col < w as isize {
                                dst[col as usize] += val;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{ConvGeometry, RowOps, col2im_with, im2col_with};
    use crate::simd::{LANES, lane_mask};

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
}
