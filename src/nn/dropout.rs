//! Inverted dropout (PyTorch's `nn.Dropout(p)`).
//!
//! Training: each element is kept with probability 1 - p and scaled by 1/(1 - p), so the
//! expected output equals the input: y = x * m / (1 - p), m ~ Bernoulli(1 - p). Evaluation:
//! y = x. Backward: dx = dy * m / (1 - p), with the mask cached by the forward pass.
//!
//! Second order ([`Layer::backward_curvature`]): d2x = d2y m^2 / (1 - p)^2, the mask squared;
//! d2x = d2y in evaluation.
//!
//! Masks are drawn from the run's dropout stream, one element after another, so they do not
//! depend on the number of threads.
//!
//! Shapes: any; x and y have the same shape.
//!
//! reference: Srivastava et al., "Dropout" (JMLR 2014);
//! <https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html>

use super::{Context, Layer, Mode};
use crate::tensor::Tensor;

#[derive(Clone)]
pub struct Dropout {
    pub p: f32,
    /// Cached by the training forward pass: 0 or 1/(1 - p) per element.
    mask: Vec<f32>,
    training: bool,
}

impl Dropout {
    pub fn new(p: f32) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} not in [0, 1)"
        );
        Dropout {
            p,
            mask: Vec::new(),
            training: false,
        }
    }
}

impl Layer for Dropout {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Dropout
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        input.to_vec()
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Context) {
        self.training = ctx.mode == Mode::Train && self.p > 0.0;
        if !self.training {
            y.data.copy_from_slice(&x.data);
            return;
        }
        let scale = 1.0 / (1.0 - self.p);
        self.mask.resize(x.len(), 0.0);
        // The generator's state in a local for the loop, so that it stays in registers
        // instead of being stored back through the context at every draw.
        let mut rng = ctx.rng.clone();
        for m in self.mask.iter_mut() {
            // Arithmetic rather than a branch, which would be mispredicted p of the time.
            let keep = rng.uniform_f32() >= self.p;
            *m = scale * f32::from(u8::from(keep));
        }
        *ctx.rng = rng;
        for ((y, &x), &m) in y.data.iter_mut().zip(&x.data).zip(&self.mask) {
            *y = x * m;
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        if !self.training {
            dx.data.copy_from_slice(&dy.data);
            return;
        }
        for ((dx, &dy), &m) in dx.data.iter_mut().zip(&dy.data).zip(&self.mask) {
            *dx = dy * m;
        }
    }

    fn backward_curvature(
        &mut self,
        _x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let Some(d2x) = d2x else { return };
        if !self.training {
            d2x.data.copy_from_slice(&d2y.data);
            return;
        }
        for ((d2x, &d2y), &m) in d2x.data.iter_mut().zip(&d2y.data).zip(&self.mask) {
            *d2x = d2y * m * m;
        }
    }
}
