//! AVX-512 matrix products for the shapes LeNet-5 produces. Its products are small and
//! lopsided (6 or 16 output channels against hundreds of positions), so instead of packing
//! panels like a general GEMM, two unpacked kernels cover them (conv3 and the fully connected
//! layers), each summing in a fixed order:
//!
//! - [`gemm_rows`]: `c = a b` when the rows of `b` are contiguous. A tile of up to 8 rows x
//!   48 columns of `c` lives in 24 registers; each step of the inner dimension loads three
//!   vectors of one row of `b` and broadcasts one element of `a` per row (any strides).
//! - [`gemm_dot`]: `c = a b` when the rows of `a` and the columns of `b` are contiguous (a
//!   product with a transposed operand, such as a weight gradient dy x^T): each entry is a dot
//!   product, computed 4 x 4 at a time with 16-lane accumulators and a final horizontal sum.
//!
//! Also [`gemv_rows_selected`] (one sample's input gradient through the rows of a weight
//! matrix that a nonzero output gradient selects) and [`transpose`].

use std::arch::x86_64::*;

use crate::simd::{LANES, lane_mask};

/// Vectors of `c` per row in a [`gemm_rows`] tile.
const NV: usize = 3;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::simd::available;

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
}
