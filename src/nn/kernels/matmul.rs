//! Matrix multiplication, the one kernel every layer with weights reduces to.
//!
//! On processors with AVX-512F, [`super::gemm`] computes the products LeNet needs; elsewhere
//! (and for other layouts) the `gemm` crate does, single-threaded, with run-time detection of
//! AVX2/FMA. Strides make transposes free: a matrix is a slice plus a row stride
//! and a column stride. The layers run many small products in parallel over the batch, each
//! on one thread, so a product's result never depends on how many threads there are.

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Rows `start .. start + count`, as a view.
    pub fn rows(self, start: usize, count: usize) -> Self {
        MatRef {
            data: &self.data[start * self.rs..],
            rows: count,
            ..self
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// `c = a * b + beta * c`, where `c` is row-major `a.rows x b.cols`.
pub fn matmul(a: MatRef, b: MatRef, c: &mut [f32], beta: f32) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(c.len() >= m * n, "output too small");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::available() {
        // SAFETY: AVX-512F is present; the views lie inside their slices (checked above) and
        // `c` holds m * n values.
        unsafe {
            if b.cs == 1 {
                return super::gemm::gemm_rows(
                    (m, n, k),
                    a.data.as_ptr(),
                    (a.rs, a.cs),
                    b.data.as_ptr(),
                    b.rs,
                    c.as_mut_ptr(),
                    n,
                    beta,
                );
            }
            if a.cs == 1 && b.rs == 1 {
                return super::gemm::gemm_dot(
                    (m, n, k),
                    a.data.as_ptr(),
                    a.rs,
                    b.data.as_ptr(),
                    b.cs,
                    c.as_mut_ptr(),
                    n,
                    beta,
                );
            }
        }
    }
    // SAFETY: the views were checked to lie inside their slices, and `c` holds m * n values
    // with row stride n and column stride 1; the slices do not alias (one is `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product_with_transposes() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5 - 2.0).collect(); // 3x4
        let mut c = vec![1.0; 8];
        matmul(MatRef::new(&a, 2, 3), MatRef::new(&b, 3, 4), &mut c, 1.0);
        for i in 0..2 {
            for j in 0..4 {
                let want: f32 = 1.0 + (0..3).map(|p| a[i * 3 + p] * b[p * 4 + j]).sum::<f32>();
                assert_eq!(c[i * 4 + j], want);
            }
        }
        // (b^T a^T)^T = a b
        let mut ct = vec![0.0; 8];
        matmul(
            MatRef::new(&b, 3, 4).t(),
            MatRef::new(&a, 2, 3).t(),
            &mut ct,
            0.0,
        );
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(ct[j * 2 + i] + 1.0, c[i * 4 + j]);
            }
        }
    }

    /// A row multiplied alone (one sample per step, which takes a one-row tile on the AVX-512
    /// path) gives the same bits as inside a product of many rows, and the naive sums to float
    /// precision; with a remainder of the inner dimension and of the columns.
    #[test]
    fn a_lone_row_gives_the_same_bits_as_in_a_batch() {
        let (m, k, n) = (7, 37, 13);
        let a: Vec<f32> = (0..m * k)
            .map(|v| ((v * 37 % 17) as f32 - 8.0) * 0.13)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|v| ((v * 11 % 23) as f32 - 11.0) * 0.07)
            .collect();
        // a w^T, w row-major [n, k]: the layout of a fully connected layer's forward pass.
        let product = |rows: &[f32], m: usize| {
            let mut c = vec![0.5; m * n];
            matmul(
                MatRef::new(rows, m, k),
                MatRef::new(&w, n, k).t(),
                &mut c,
                1.0,
            );
            c
        };
        let batch = product(&a, m);
        for i in 0..m {
            let alone = product(&a[i * k..(i + 1) * k], 1);
            assert_eq!(alone, batch[i * n..(i + 1) * n], "row {i}");
            for j in 0..n {
                let want: f32 = 0.5 + (0..k).map(|p| a[i * k + p] * w[j * k + p]).sum::<f32>();
                assert!((alone[j] - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
    }
}
