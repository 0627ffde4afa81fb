//! Element-wise activations.
//!
//! - ReLU: y = max(x, 0); dx = dy where y > 0, else 0 (PyTorch's gradient at 0 is 0).
//! - tanh: y = tanh(x); dx = dy (1 - y^2).
//! - LeCun's scaled tanh (1998, appendix A): y = A tanh(S x) with A = 1.7159, S = 2/3, chosen so
//!   that f(±1) = ±1; dx = dy A S (1 - (y/A)^2).
//!
//! Second order (Gauss–Newton, [`Layer::backward_curvature`]): d2x = f'(x)^2 d2y — 0 or d2y
//! for ReLU, (1 - y^2)^2 d2y for tanh, (A S (1 - (y/A)^2))^2 d2y for the scaled tanh.
//!
//! Shapes: any; x and y have the same shape.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html>

use serde::{Deserialize, Serialize};

use super::kernels::tanh::tanh;
use super::{Context, Layer, SharedMut, for_each_chunk};
use crate::tensor::Tensor;

/// LeCun's scaled tanh amplitude A.
pub const LECUN_A: f32 = 1.7159;
/// LeCun's scaled tanh slope S.
pub const LECUN_S: f32 = 2.0 / 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    Relu,
    Tanh,
    /// 1.7159 tanh(2x/3), LeCun et al. (1998).
    ScaledTanh,
}

impl ActivationKind {
    pub fn forward(self, x: &[f32], y: &mut [f32]) {
        match self {
            ActivationKind::Relu => {
                #[cfg(target_arch = "x86_64")]
                if crate::simd::available() {
                    // SAFETY: AVX-512F is present.
                    return unsafe { super::kernels::pool_relu::relu_forward(x, y) };
                }
                // NaN propagates, as in PyTorch (f32::max would drop it).
                y.iter_mut()
                    .zip(x)
                    .for_each(|(y, &x)| *y = if x > 0.0 || x.is_nan() { x } else { 0.0 })
            }
            ActivationKind::Tanh => tanh_all(x, y, 1.0, 1.0),
            ActivationKind::ScaledTanh => tanh_all(x, y, LECUN_A, LECUN_S),
        }
    }

    /// The input gradient from the output `y` and its gradient `dy`.
    pub fn backward(self, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self == ActivationKind::Relu && crate::simd::available() {
            // SAFETY: AVX-512F is present.
            return unsafe { super::kernels::pool_relu::relu_backward(y, dy, dx) };
        }
        let it = dx.iter_mut().zip(y.iter().zip(dy));
        match self {
            ActivationKind::Relu => {
                it.for_each(|(dx, (&y, &dy))| *dx = if y > 0.0 { dy } else { 0.0 })
            }
            ActivationKind::Tanh => it.for_each(|(dx, (&y, &dy))| *dx = dy * (1.0 - y * y)),
            ActivationKind::ScaledTanh => it.for_each(|(dx, (&y, &dy))| {
                let t = y / LECUN_A;
                *dx = dy * LECUN_A * LECUN_S * (1.0 - t * t)
            }),
        }
    }
}

impl ActivationKind {
    /// The slope f'(x) from the output y = f(x) (ReLU's is 0 at 0, as its gradient).
    pub fn slope(self, y: f32) -> f32 {
        match self {
            ActivationKind::Relu => f32::from(u8::from(y > 0.0)),
            ActivationKind::Tanh => 1.0 - y * y,
            ActivationKind::ScaledTanh => {
                let t = y / LECUN_A;
                LECUN_A * LECUN_S * (1.0 - t * t)
            }
        }
    }
}

crate::simd::avx512_variant! {
    /// y = a tanh(s x) for every element, 16 at a time where the processor has AVX-512
    /// ([`tanh`]: the same bits either way).
    fn tanh_all = tanh_loop(x: &[f32], y: &mut [f32], a: f32, s: f32)
}

#[inline(always)]
fn tanh_loop(x: &[f32], y: &mut [f32], a: f32, s: f32) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = a * tanh(s * x);
    }
}

/// Elements per parallel chunk; a smaller pass runs on the calling thread (a ReLU over
/// 65,536 values takes a few microseconds, about what handing work to another thread costs).
const CHUNK: usize = 1 << 16;

#[derive(Clone)]
pub struct Activation {
    pub kind: ActivationKind,
}

impl Layer for Activation {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Activation
    }

    fn describe(&self) -> String {
        match self.kind {
            ActivationKind::Relu => "ReLU()".into(),
            ActivationKind::Tanh => "Tanh()".into(),
            ActivationKind::ScaledTanh => "ScaledTanh(1.7159 * tanh(2x/3))".into(),
        }
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        input.to_vec()
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        let kind = self.kind;
        let ys = SharedMut::new(&mut y.data);
        for_each_chunk(x.len(), CHUNK, |_, first, len| {
            // SAFETY: disjoint element ranges.
            let y = unsafe { ys.range(first, len) };
            kind.forward(&x.data[first..first + len], y);
        });
    }

    fn backward(&mut self, _x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let kind = self.kind;
        let dxs = SharedMut::new(&mut dx.data);
        for_each_chunk(y.len(), CHUNK, |_, first, len| {
            // SAFETY: disjoint element ranges.
            let dx = unsafe { dxs.range(first, len) };
            kind.backward(
                &y.data[first..first + len],
                &dy.data[first..first + len],
                dx,
            );
        });
    }

    fn backward_curvature(
        &mut self,
        _x: &Tensor,
        y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let Some(d2x) = d2x else { return };
        let kind = self.kind;
        for ((d2x, &y), &d2y) in d2x.data.iter_mut().zip(&y.data).zip(&d2y.data) {
            let slope = kind.slope(y);
            *d2x = slope * slope * d2y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tanh activations, 16 values at a time where AVX-512 runs, are the bits of the
    /// scalar function value by value (ranges of both branches, a tail shorter than 16).
    #[test]
    fn vectorised_tanh_is_the_scalar_function() {
        let x: Vec<f32> = (0..1003).map(|i| (i as f32 - 501.0) * 0.0271).collect();
        for (kind, a, s) in [
            (ActivationKind::Tanh, 1.0, 1.0),
            (ActivationKind::ScaledTanh, LECUN_A, LECUN_S),
        ] {
            let mut y = vec![0.0; x.len()];
            kind.forward(&x, &mut y);
            for (&x, &y) in x.iter().zip(&y) {
                assert_eq!(y.to_bits(), (a * tanh(s * x)).to_bits(), "{kind:?}({x})");
            }
        }
    }

    #[test]
    fn relu_propagates_nan_and_zeroes_the_rest() {
        let x = [
            1.5,
            -2.0,
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3.0,
            -1.0,
            0.5,
            2.0,
            -3.0,
            4.0,
            -4.0,
            5.0,
            -5.0,
            6.0,
            7.0,
        ];
        let mut y = [9.0; 18];
        ActivationKind::Relu.forward(&x, &mut y);
        for (&x, &y) in x.iter().zip(&y) {
            if x.is_nan() {
                assert!(y.is_nan());
            } else {
                assert_eq!(
                    y.to_bits(),
                    if x > 0.0 { x } else { 0.0f32 }.to_bits(),
                    "relu({x})"
                );
            }
        }
        let dy = [1.0; 18];
        let mut dx = [9.0; 18];
        ActivationKind::Relu.backward(&y, &dy, &mut dx);
        for (&y, &d) in y.iter().zip(&dx) {
            assert_eq!(d, if y > 0.0 { 1.0 } else { 0.0 });
        }
    }
}
