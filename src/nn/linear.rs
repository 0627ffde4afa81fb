//! Fully connected layer (PyTorch's `nn.Linear`).
//!
//! y = x w^T + b
//!
//! Shapes: x [N, I] (any input is flattened to N rows), w [O, I], b [O], y [N, O]; N batch,
//! I input features, O output features.
//!
//! Backward: dw = dy^T x, db = sum_n dy[n], dx = dy w.
//! Per-sample terms ([`Layer::sample_terms`]): sample n's are dy[n] x[n]^T and dy[n].
//! Second order ([`Layer::backward_curvature`]), squares element-wise: h(w) = d2y^T x^2,
//! h(b) = sum_n d2y[n], d2x = d2y w^2 — the backward pass with input and weights squared.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.Linear.html>

use super::kernels::dense::{linear_backward, linear_forward, linear_sample_terms, squares};
use super::{Context, Layer, Param, init};
use crate::rng::Rng;
use crate::tensor::Tensor;

#[derive(Clone)]
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

impl Layer for Linear {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Linear
    }

    fn describe(&self) -> String {
        format!(
            "Linear(in_features={}, out_features={})",
            self.in_features, self.out_features
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        vec![input[0], self.out_features]
    }

    /// Every weight and bias once.
    fn connections(&self, _input: &[usize]) -> usize {
        self.params().iter().map(|p| p.trainable_len()).sum()
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

    fn backward_curvature(
        &mut self,
        x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        linear_backward(
            &squares(&x.data),
            &squares(&self.weight.value.data),
            &d2y.data,
            x.batch(),
            self.in_features,
            self.out_features,
            &mut self.weight.curvature.data,
            &mut self.bias.curvature.data,
            d2x.map(|t| &mut t.data[..]),
        );
    }

    fn sample_terms(
        &self,
        x: &Tensor,
        dy: &Tensor,
        sq: &mut [f64],
        dot: Option<&mut [f64]>,
    ) -> bool {
        let grads = (&self.weight.grad.data[..], &self.bias.grad.data[..]);
        let (n, i, o) = (x.batch(), self.in_features, self.out_features);
        linear_sample_terms(&x.data, &dy.data, grads, n, i, o, sq, dot);
        true
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}
