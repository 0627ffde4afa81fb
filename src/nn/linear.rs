//! Fully connected layer (PyTorch's `nn.Linear`).
//!
//! y = x w^T + b
//!
//! Shapes: x [N, I] (any input is flattened to N rows), w [O, I], b [O], y [N, O]; N batch,
//! I input features, O output features.
//!
//! Backward: dw = dy^T x, db = sum_n dy[n], dx = dy w.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.Linear.html>

use super::gemm::{MatRef, matmul};
use super::{Context, Layer, Param, init};
use crate::rng::Rng;
use crate::tensor::Tensor;

pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub weight: Param,
    pub bias: Param,
}

impl Linear {
    /// PyTorch's default initialisation: uniform in ±1/sqrt(in_features).
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Self {
        let bound = init::pytorch_bound(in_features);
        Self::with_init(in_features, out_features, rng, bound, bound)
    }

    pub fn with_init(
        in_features: usize,
        out_features: usize,
        rng: &mut Rng,
        weight_bound: f32,
        bias_bound: f32,
    ) -> Self {
        Linear {
            in_features,
            out_features,
            weight: Param::new(
                "weight",
                init::uniform(&[out_features, in_features], weight_bound, rng),
            ),
            bias: Param::new("bias", init::uniform(&[out_features], bias_bound, rng)),
        }
    }
}

/// y = x w^T + b for `x` of `n` rows.
pub fn linear_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    i: usize,
    o: usize,
    y: &mut [f32],
) {
    for row in y[..n * o].chunks_exact_mut(o) {
        row.copy_from_slice(b);
    }
    matmul(MatRef::new(x, n, i), MatRef::new(w, o, i).t(), y, 1.0);
}

/// Accumulates dw += dy^T x and db += column sums of dy; writes dx = dy w when asked.
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
    matmul(MatRef::new(dy, n, o).t(), MatRef::new(x, n, i), dw, 1.0);
    for row in dy[..n * o].chunks_exact(o) {
        for (acc, &d) in db.iter_mut().zip(row) {
            *acc += d;
        }
    }
    if let Some(dx) = dx {
        matmul(MatRef::new(dy, n, o), MatRef::new(w, o, i), dx, 0.0);
    }
}

impl Layer for Linear {
    fn describe(&self) -> String {
        format!(
            "Linear(in_features={}, out_features={})",
            self.in_features, self.out_features
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        vec![input[0], self.out_features]
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        assert_eq!(
            x.item_len(),
            self.in_features,
            "{}: wrong input size",
            self.describe()
        );
        let n = x.batch();
        linear_forward(
            &x.data,
            &self.weight.value.data,
            &self.bias.value.data,
            n,
            self.in_features,
            self.out_features,
            &mut y.data,
        );
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        linear_backward(
            &x.data,
            &self.weight.value.data,
            &dy.data,
            x.batch(),
            self.in_features,
            self.out_features,
            &mut self.weight.grad.data,
            &mut self.bias.grad.data,
            dx.map(|t| &mut t.data[..]),
        );
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}
