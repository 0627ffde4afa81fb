//! The fully connected layer's products (y = x w^T + b and its gradients), split across
//! threads without partial sums so that results do not depend on the thread count, with a
//! one-sample path that skips the rows a ReLU silenced. [`crate::nn::linear`] holds the maths;
//! the convolution layer uses the same products on its im2col matrix.

use super::matmul::{MatRef, matmul};
use crate::parallel::{SharedMut, for_each_chunk};

/// Every value squared.
pub fn squares(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| v * v).collect()
}

/// y = x w^T + b for `x` of `n` rows, split across threads by blocks of samples.
pub fn linear_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    i: usize,
    o: usize,
    y: &mut [f32],
) {
    let (x_mat, w_mat) = (MatRef::new(x, n, i), MatRef::new(w, o, i).t());
    let y_buf = SharedMut::new(&mut y[..n * o]);
    for_each_chunk(n, samples_per_task(n, i, o), |_, first, samples| {
        // SAFETY: each task owns samples first .. first + samples of y.
        let y = unsafe { y_buf.range(first * o, samples * o) };
        for row in y.chunks_exact_mut(o) {
            row.copy_from_slice(b);
        }
        matmul(x_mat.rows(first, samples), w_mat, y, 1.0);
    });
}

/// Samples per task, and weight rows per task (a register tile of the product's kernel).
const SAMPLES: usize = 16;
const ROWS: usize = 8;
/// Multiply-adds below which a product is computed as one task: handing a microsecond of
/// work to another thread costs more than it saves.
const PARALLEL_WORK: usize = 1 << 17;

/// Samples per task of a product over `n` samples of `i` inputs and `o` outputs (each
/// sample's row is computed alone, so the split changes no result).
fn samples_per_task(n: usize, i: usize, o: usize) -> usize {
    if n * i * o < PARALLEL_WORK {
        n.max(1)
    } else {
        SAMPLES
    }
}

/// Accumulates dw += dy^T x and db += column sums of dy; writes dx = dy w when asked.
///
/// Split across threads without partial sums, in one parallel region: the weight gradient by
/// blocks of output rows, each summed over the whole batch in order, and the input gradient by
/// blocks of samples. So the result is the same whatever the number of threads, and no
/// per-thread copy of a large weight gradient (48,120 values in LeNet's conv3) is zeroed and
/// added up.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    i: usize,
    o: usize,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (x_mat, dy_mat) = (MatRef::new(x, n, i), MatRef::new(dy, n, o));
    for row in dy[..n * o].chunks_exact(o) {
        for (acc, &d) in db.iter_mut().zip(row) {
            *acc += d;
        }
    }
    let one_sample = n == 1 && i > 0;
    if one_sample {
        // dw gains the outer product dy x, row by row. A row whose dy is +0.0 (a unit the
        // ReLU after it silenced) would add +0 or -0 to every value, which leaves a gradient
        // accumulated from +0.0 as it is: skipped, it is not even read. Rounded as the
        // AVX-512 product kernel rounds (one multiply, then one add).
        add_outer_product(&mut dw[..o * i], &dy[..o], &x[..i]);
    }
    #[cfg(target_arch = "x86_64")]
    if one_sample && crate::simd::available() {
        if let Some(dx) = dx {
            // dx = sum of dy[k] w[k] over the rows whose dy is not +0.0. A +0 term adds a
            // zero to a sum that started at +0 and so never is -0: skipped, the sum keeps its
            // bits, and half of the weight is not read. The rows are listed on the stack (a
            // layer this narrow is the usual case): no allocation at every one-sample step.
            let (mut stack, mut heap) = ([0u32; 256], Vec::new());
            let list: &mut [u32] = if o <= stack.len() {
                &mut stack[..o]
            } else {
                heap.resize(o, 0);
                &mut heap
            };
            let mut count = 0;
            for (k, d) in dy[..o].iter().enumerate() {
                if d.to_bits() != 0 {
                    list[count] = k as u32;
                    count += 1;
                }
            }
            let rows = &list[..count];
            // SAFETY: AVX-512F is present; w holds o rows of i values, dx i values.
            unsafe { super::gemm::gemv_rows_selected(&dy[..o], rows, &w[..o * i], i, dx) };
        }
        return;
    }
    // One parallel region for both gradients: tasks of blocks of weight rows, then tasks of
    // blocks of samples of the input gradient; a small product runs as one task of each.
    let small = n * i * o < PARALLEL_WORK;
    let rows_per_task = if small { o } else { ROWS };
    let per_dx_task = samples_per_task(n, i, o);
    let dw_tasks = if one_sample {
        0
    } else {
        o.div_ceil(rows_per_task)
    };
    let dx_tasks = if dx.is_some() {
        n.div_ceil(per_dx_task)
    } else {
        0
    };
    let w_mat = MatRef::new(w, o, i);
    let dw_buf = SharedMut::new(&mut dw[..o * i]);
    let dx_buf = dx.map(|dx| SharedMut::new(&mut dx[..n * i]));
    let task = |t: usize| {
        if t < dw_tasks {
            let (first, rows) = (t * rows_per_task, rows_per_task.min(o - t * rows_per_task));
            // SAFETY: each task owns rows first .. first + rows of dw.
            let dw = unsafe { dw_buf.range(first * i, rows * i) };
            matmul(dy_mat.t().rows(first, rows), x_mat, dw, 1.0);
        } else if let Some(dx_buf) = &dx_buf {
            let first = (t - dw_tasks) * per_dx_task;
            let samples = per_dx_task.min(n - first);
            // SAFETY: each task owns samples first .. first + samples of dx.
            let dx = unsafe { dx_buf.range(first * i, samples * i) };
            matmul(dy_mat.rows(first, samples), w_mat, dx, 0.0);
        }
    };
    if small {
        (0..dw_tasks + dx_tasks).for_each(task);
    } else {
        for_each_chunk(dw_tasks + dx_tasks, 1, |t, _, _| task(t));
    }
}

crate::simd::avx512_variant! {
    /// dw += dy x^T for one sample (dw row-major [dy.len(), x.len()]), skipping the rows
    /// whose dy is +0.0.
    fn add_outer_product = add_outer_product_rows(dw: &mut [f32], dy: &[f32], x: &[f32])
}

#[inline(always)]
fn add_outer_product_rows(dw: &mut [f32], dy: &[f32], x: &[f32]) {
    for (row, &d) in dw.chunks_exact_mut(x.len()).zip(dy) {
        if d.to_bits() != 0 {
            row.iter_mut().zip(x).for_each(|(w, &xv)| *w += d * xv);
        }
    }
}

/// The per-sample gradient terms of y = x w^T + b ([`crate::nn::Layer::sample_terms`]): sample
/// n's weight term is the outer product dy_n x_n^T and its bias term dy_n, so its squared norm
/// is |dy_n|^2 (|x_n|^2 + 1) without forming it; its inner product with the gradients `gw`,
/// `gb` is dy_n . (gw x_n + gb), where gw x_n for a block of samples is one product, as the
/// forward pass's.
#[allow(clippy::too_many_arguments)]
pub fn linear_sample_terms(
    x: &[f32],
    dy: &[f32],
    (gw, gb): (&[f32], &[f32]),
    n: usize,
    i: usize,
    o: usize,
    sq: &mut [f64],
    dot: Option<&mut [f64]>,
) {
    let (x_mat, gw_mat) = (MatRef::new(x, n, i), MatRef::new(gw, o, i).t());
    crate::nn::layer::for_sample_terms(n, SAMPLES, sq, dot, |first, sq, dot| {
        let mut projected = vec![0.0f32; if dot.is_empty() { 0 } else { sq.len() * o }];
        if !dot.is_empty() {
            for row in projected.chunks_exact_mut(o) {
                row.copy_from_slice(gb);
            }
            matmul(x_mat.rows(first, sq.len()), gw_mat, &mut projected, 1.0);
        }
        for (s, sq) in sq.iter_mut().enumerate() {
            let (xs, dys) = (&x[(first + s) * i..][..i], &dy[(first + s) * o..][..o]);
            let proj = projected.get(s * o..(s + 1) * o).unwrap_or(&[]);
            let (dy_sq, dy_dot) = crate::nn::layer::square_and_dot(dys, proj);
            let (x_sq, _) = crate::nn::layer::square_and_dot(xs, &[]);
            *sq = dy_sq * (x_sq + 1.0);
            if let Some(d) = dot.get_mut(s) {
                *d = dy_dot;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample's weight and input gradients, rows of zero dy skipped, match the general
    /// products: bit for bit where the AVX-512 kernels run, to float precision on the
    /// portable path. The input has 37 features, so the last vector of a row is partial.
    #[test]
    fn one_sample_gradients_match_the_products() {
        let (i, o) = (37, 11);
        let x: Vec<f32> = (0..i).map(|v| ((v * 7 % 13) as f32 - 6.0) * 0.3).collect();
        // Every third unit silenced, one -0.0 (which must not be skipped).
        let mut dy: Vec<f32> = (0..o)
            .map(|v| {
                if v % 3 == 0 {
                    0.0
                } else {
                    v as f32 * 0.17 - 0.9
                }
            })
            .collect();
        dy[1] = -0.0;
        let start: Vec<f32> = (0..o * i)
            .map(|v| ((v * 5 % 9) as f32 - 4.0) * 0.01)
            .collect();
        let w: Vec<f32> = (0..o * i)
            .map(|v| ((v * 13 % 29) as f32 - 14.0) * 0.05)
            .collect();
        let (mut fast, mut general) = (start.clone(), start.clone());
        let (mut db, mut dx) = (vec![0.0; o], vec![0.0; i]);
        linear_backward(&x, &w, &dy, 1, i, o, &mut fast, &mut db, Some(&mut dx));
        let (x_mat, dy_mat) = (MatRef::new(&x, 1, i), MatRef::new(&dy, 1, o));
        matmul(dy_mat.t(), x_mat, &mut general, 1.0);
        #[cfg(target_arch = "x86_64")]
        let exact = crate::simd::available();
        #[cfg(not(target_arch = "x86_64"))]
        let exact = false;
        let agree = |fast: &[f32], general: &[f32], what: &str| {
            for (k, (&f, &g)) in fast.iter().zip(general).enumerate() {
                if exact {
                    assert_eq!(f.to_bits(), g.to_bits(), "{what} element {k}");
                } else {
                    assert!(
                        (f - g).abs() <= 1e-6 * g.abs().max(1.0),
                        "{what} element {k}"
                    );
                }
            }
        };
        agree(&fast, &general, "dw");
        // The input gradient, silenced rows left out, against the general product.
        let mut dx_general = vec![0.0; i];
        matmul(dy_mat, MatRef::new(&w, o, i), &mut dx_general, 0.0);
        agree(&dx, &dx_general, "dx");
        // The silenced rows kept their values; the others moved.
        assert_eq!(fast[..i], start[..i]);
        assert_ne!(fast[2 * i..3 * i], start[2 * i..3 * i]);
    }
}
