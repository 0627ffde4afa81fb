//! Sums in a fixed order, which every reduction over a batch goes through so that its result
//! does not depend on the number of threads: [`sum`] (float32, 16 interleaved partial sums)
//! and the float64 sums of batch normalization's statistics and gradients ([`sum64`],
//! [`sum64_squared_deviations`], [`sum64_pair_planes`], and [`sum_of_planes`] to run several
//! planes' chains of additions side by side). Each has an AVX-512 version with the same bits,
//! chosen at run time.

/// Sum of a slice in a fixed order that vectorises: 16 interleaved partial sums, then a pairwise
/// sum of those. (A plain left-to-right sum is one long chain of dependent additions.)
#[inline]
pub fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += v;
    }
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// Sum in float64 of `f(v)` over `values`, in 8 interleaved partial sums (so the loop
/// vectorises) combined in a fixed order: the same result on every run and thread count.
#[inline(always)]
fn sum64_of(values: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v as f64);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v as f64)).sum();
    fold8(acc) + tail
}

#[inline(always)]
fn sum64_plain(values: &[f32]) -> f64 {
    sum64_of(values, |v| v)
}

#[inline(always)]
fn sum64_squared_deviations_plain(values: &[f32], mean: f64) -> f64 {
    sum64_of(values, |v| (v - mean) * (v - mean))
}

/// Planes shorter than this have no 8 values to sum in a vector: the plain loops, inlined,
/// sum them quicker than a call to the vector code (the same bits, see [`wide`]).
const WIDE_FROM: usize = 8;

/// The sums of the values of P planes of equal length, each as [`sum64_of`].
#[inline]
pub fn sum64<const P: usize>(planes: [&[f32]; P]) -> [f64; P] {
    #[cfg(target_arch = "x86_64")]
    if planes[0].len() >= WIDE_FROM && crate::simd::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64(planes) };
    }
    planes.map(sum64_plain)
}

/// The sums of (v - mean)^2 of P planes of equal length, each as [`sum64_of`].
#[inline]
pub fn sum64_squared_deviations<const P: usize>(planes: [&[f32]; P], mean: f64) -> [f64; P] {
    #[cfg(target_arch = "x86_64")]
    if planes[0].len() >= WIDE_FROM && crate::simd::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64_squared_deviations(planes, mean) };
    }
    planes.map(|p| sum64_squared_deviations_plain(p, mean))
}

/// `(0..n).map(|i| sums([plane(i)])[0]).sum()`, where `sums` sums P planes of equal length
/// at once and gives each the value it gives a plane alone: the same result, but P chains of
/// additions run side by side (each of [`sum64_of`]'s waits on its own last addition, which
/// a lone plane of 196 values spends most of its time doing). A last group of fewer than P
/// planes is filled up with its last plane, whose extra sums are dropped.
pub fn sum_of_planes<'a, const P: usize>(
    n: usize,
    plane: impl Fn(usize) -> &'a [f32],
    sums: impl Fn([&'a [f32]; P]) -> [f64; P],
) -> f64 {
    (0..n.div_ceil(P))
        .flat_map(|g| {
            let (first, count) = (g * P, (n - g * P).min(P));
            sums(std::array::from_fn(|i| plane(first + i.min(count - 1))))
                .into_iter()
                .take(count)
        })
        .sum()
}

/// Planes summed side by side by [`sum_of_planes`].
pub const SIDE_BY_SIDE: usize = 4;

/// (sum of dy, sum of dy * xhat) over one channel's planes of `hw` values, whose statistics
/// are `stats`: the `n` planes that start at `first` and every `stride` values after, each as
/// [`sum64_pair_plain`], added plane after plane. One call per channel, so that small planes
/// (1 x 1 after conv3, or batch norm 1d) do not pay a call for each value.
pub fn sum64_pair_planes(
    (dy, x): (&[f32], &[f32]),
    (n, stride, hw): (usize, usize, usize),
    first: usize,
    stats: (f32, f32),
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if hw >= WIDE_FROM && crate::simd::available() {
        // SAFETY: AVX-512F is present.
        return unsafe { wide::sum64_pair_planes((dy, x), (n, stride, hw), first, stats) };
    }
    fold_planes(n, stride, first, |r| {
        sum64_pair_plain(&dy[r..][..hw], &x[r..][..hw], stats)
    })
}

/// `(0..n).map(|i| pair(first + i * stride))`, added up in order.
#[inline(always)]
fn fold_planes(
    n: usize,
    stride: usize,
    first: usize,
    pair: impl Fn(usize) -> (f64, f64),
) -> (f64, f64) {
    (0..n)
        .map(|i| pair(first + i * stride))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The float64 sums with AVX-512 intrinsics: the eight partial sums of [`sum64_of`] are the
/// eight lanes of one register, each value converted and added in the same order as the
/// plain loops, so the results are the same bits. (Compiled for AVX-512 from the plain
/// loops, the compiler splits the conversions into 128-bit pieces, which is slower.)
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    /// Lane sums of each plane in chunks of 8, each chunk mapped by `f` first, the planes
    /// side by side; the remainder (fewer than 8) is left to the caller, as the plain loops
    /// sum it separately.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn lanes<const P: usize>(planes: [&[f32]; P], f: impl Fn(__m512d) -> __m512d) -> [[f64; 8]; P] {
        debug_assert!(planes.iter().all(|p| p.len() == planes[0].len()));
        let full = planes.map(<[f32]>::len).into_iter().min().unwrap_or(0) / 8 * 8;
        let mut acc = [_mm512_setzero_pd(); P];
        let mut i = 0;
        while i < full {
            for (acc, plane) in acc.iter_mut().zip(planes) {
                // SAFETY: i + 8 <= full <= the plane's length.
                let v = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(plane.as_ptr().add(i)) });
                *acc = _mm512_add_pd(*acc, f(v));
            }
            i += 8;
        }
        acc.map(|acc| {
            let mut out = [0.0; 8];
            // SAFETY: `out` holds 8 values.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), acc) };
            out
        })
    }

    /// As [`super::sum64`]; the planes must have equal lengths.
    #[target_feature(enable = "avx512f")]
    pub fn sum64<const P: usize>(planes: [&[f32]; P]) -> [f64; P] {
        let lanes = lanes(planes, |v| v);
        std::array::from_fn(|p| {
            let values = planes[p];
            let tail: f64 = values[values.len() / 8 * 8..]
                .iter()
                .map(|&v| v as f64)
                .sum();
            super::fold8(lanes[p]) + tail
        })
    }

    /// As [`super::sum64_squared_deviations`]; the planes must have equal lengths.
    #[target_feature(enable = "avx512f")]
    pub fn sum64_squared_deviations<const P: usize>(planes: [&[f32]; P], mean: f64) -> [f64; P] {
        let m = _mm512_set1_pd(mean);
        let square = |v: __m512d| {
            let d = _mm512_sub_pd(v, m);
            _mm512_mul_pd(d, d)
        };
        let lanes = lanes(planes, square);
        std::array::from_fn(|p| {
            let values = planes[p];
            let tail: f64 = values[values.len() / 8 * 8..]
                .iter()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum();
            super::fold8(lanes[p]) + tail
        })
    }

    /// As [`super::sum64_pair_planes`].
    #[target_feature(enable = "avx512f")]
    pub fn sum64_pair_planes(
        (dy, x): (&[f32], &[f32]),
        (n, stride, hw): (usize, usize, usize),
        first: usize,
        stats: (f32, f32),
    ) -> (f64, f64) {
        super::fold_planes(n, stride, first, |r| {
            sum64_pair(&dy[r..][..hw], &x[r..][..hw], stats)
        })
    }

    /// As [`super::sum64_pair_plain`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn sum64_pair(dy: &[f32], x: &[f32], stats: (f32, f32)) -> (f64, f64) {
        let n = dy.len().min(x.len());
        let full = n / 8 * 8;
        let (mean, inv_std) = (_mm256_set1_ps(stats.0), _mm256_set1_ps(stats.1));
        let (mut a, mut b) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i < full {
            // SAFETY: i + 8 <= full <= the length of both slices.
            let (d, x) = unsafe {
                (
                    _mm256_loadu_ps(dy.as_ptr().add(i)),
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                )
            };
            // xhat as super::standardize rounds it: a subtraction, then a multiplication.
            let xhat = _mm256_mul_ps(_mm256_sub_ps(x, mean), inv_std);
            a = _mm512_add_pd(a, _mm512_cvtps_pd(d));
            b = _mm512_add_pd(b, _mm512_cvtps_pd(_mm256_mul_ps(d, xhat)));
            i += 8;
        }
        let (mut la, mut lb) = ([0.0; 8], [0.0; 8]);
        // SAFETY: both arrays hold 8 values.
        unsafe {
            _mm512_storeu_pd(la.as_mut_ptr(), a);
            _mm512_storeu_pd(lb.as_mut_ptr(), b);
        }
        let (mut ta, mut tb) = (0.0f64, 0.0f64);
        for (&d, &x) in dy[full..n].iter().zip(&x[full..n]) {
            ta += d as f64;
            tb += (d * super::standardize(x, stats)) as f64;
        }
        (super::fold8(la) + ta, super::fold8(lb) + tb)
    }
}

/// The 8 partial sums of [`sum64_of`] combined pairwise, in a fixed order.
#[inline(always)]
fn fold8(v: [f64; 8]) -> f64 {
    ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
}

/// (sum of dy, sum of dy * xhat) in float64, as [`sum64_of`], xhat recomputed from x; each
/// product is rounded to float32 first, as the element-wise product PyTorch sums.
#[inline(always)]
fn sum64_pair_plain(dy: &[f32], x: &[f32], stats: (f32, f32)) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; 8], [0.0f64; 8]);
    let (mut dc, mut xc) = (dy.chunks_exact(8), x.chunks_exact(8));
    for (d, x) in (&mut dc).zip(&mut xc) {
        for i in 0..8 {
            a[i] += d[i] as f64;
            b[i] += (d[i] * standardize(x[i], stats)) as f64;
        }
    }
    let (mut ta, mut tb) = (0.0f64, 0.0f64);
    for (&d, &x) in dc.remainder().iter().zip(xc.remainder()) {
        ta += d as f64;
        tb += (d * standardize(x, stats)) as f64;
    }
    (fold8(a) + ta, fold8(b) + tb)
}

/// The normalised value xhat = (x - mean) inv_std. Forward does not keep it: backward
/// computes it again from the input, with the same two roundings, so the same bits (and
/// forward writes one plane instead of two).
#[inline(always)]
pub fn standardize(x: f32, (mean, inv_std): (f32, f32)) -> f32 {
    (x - mean) * inv_std
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use crate::simd::{LANES, lane_mask};

    /// [`sum`] with AVX-512 vectors (compiled from the plain loops, the compiler splits
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Planes summed side by side give the same total, bit for bit, as summed one after
    /// another, for batch sizes with and without a remainder of the group.
    #[test]
    fn planes_side_by_side_sum_as_one_after_another() {
        let mut rng = crate::rng::Rng::new(9);
        for len in [29, 196] {
            for n in 0..10 {
                let x: Vec<f32> = (0..n * len).map(|_| rng.uniform_range(-3.0, 5.0)).collect();
                let plane = |i: usize| &x[i * len..][..len];
                let mean = 0.377;
                let alone: f64 = (0..n).map(|i| sum64([plane(i)])[0]).sum();
                let together = sum_of_planes::<SIDE_BY_SIDE>(n, plane, sum64);
                assert_eq!(alone.to_bits(), together.to_bits(), "sum, {n} x {len}");
                let alone: f64 = (0..n)
                    .map(|i| sum64_squared_deviations([plane(i)], mean)[0])
                    .sum();
                let squares = |p| sum64_squared_deviations(p, mean);
                let together = sum_of_planes::<SIDE_BY_SIDE>(n, plane, squares);
                assert_eq!(alone.to_bits(), together.to_bits(), "squares, {n} x {len}");
                // And each plane's sum as the plain loop's.
                for i in 0..n {
                    let four = sum64([plane(i), plane(0), plane(i), plane(n - 1)]);
                    assert_eq!(four[0].to_bits(), sum64_plain(plane(i)).to_bits());
                    assert_eq!(four[3].to_bits(), sum64_plain(plane(n - 1)).to_bits());
                }
            }
        }
    }

    /// The AVX-512 sums give the same bits as the plain loops, on lengths with and without a
    /// remainder of 8.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_sums_equal_the_plain_loops() {
        if !crate::simd::available() {
            return;
        }
        let mut rng = crate::rng::Rng::new(4);
        for len in [0, 3, 8, 29, 196, 200] {
            let x: Vec<f32> = (0..len).map(|_| rng.uniform_range(-3.0, 5.0)).collect();
            let y: Vec<f32> = (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let mean = 0.7311;
            // SAFETY: AVX-512F is present (checked above).
            let wide = unsafe {
                (
                    wide::sum64([&x])[0],
                    wide::sum64_squared_deviations([&x], mean)[0],
                    wide::sum64_pair(&x, &y, (0.31, 1.7)),
                )
            };
            let plain = (
                sum64_plain(&x),
                sum64_squared_deviations_plain(&x, mean),
                sum64_pair_plain(&x, &y, (0.31, 1.7)),
            );
            assert_eq!(wide.0.to_bits(), plain.0.to_bits(), "sum, {len}");
            assert_eq!(wide.1.to_bits(), plain.1.to_bits(), "squares, {len}");
            assert_eq!(wide.2.0.to_bits(), plain.2.0.to_bits(), "pair, {len}");
            assert_eq!(wide.2.1.to_bits(), plain.2.1.to_bits(), "pair, {len}");
        }
    }

    /// The vector sum has the bits of the plain one, for lengths with and without a tail,
    /// magnitudes from 1e-4 to 1e4 and values that include -0.0.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_sum_equals_the_plain_sum() {
        if !crate::simd::available() {
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
                let wide = unsafe { avx512::sum_wide(values) };
                assert_eq!(wide.to_bits(), sum(values).to_bits(), "length {len}");
            }
        }
    }
}
