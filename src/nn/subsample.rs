//! LeCun's subsampling layer (S2 and S4 of LeNet-5, 1998), which PyTorch has no module for.
//!
//! y[n, c, i, j] = a_c * sum_{u,v < 2} x[n, c, 2i + u, 2j + v] + b_c
//!
//! Each feature map has one trainable coefficient a_c and one trainable bias b_c (2 parameters
//! per map: S2 has 12, S4 has 32). The squashing function that follows is a separate layer.
//!
//! Backward: da_c = sum dy * window_sum, db_c = sum dy, dx = a_c dy on each window element.
//!
//! Per-sample terms ([`Layer::sample_terms`]): the same sums over one sample's windows.
//!
//! Second order ([`Layer::backward_curvature`]), s the window's sum: h(a_c) = sum d2y s^2,
//! h(b_c) = sum d2y, d2x = a_c^2 d2y on each window element. The coefficient multiplies the
//! window's sum, so its slope is s and its second derivative the sum's square — the exact
//! diagonal of J^T D J; summing each input's square instead (the four inputs as four
//! connections sharing the coefficient) would drop the cross terms within a window.
//!
//! Shapes: x [N, C, H, W], y [N, C, H/2, W/2].
//!
//! reference: LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document
//! recognition", Proc. IEEE 86(11), 1998, section II.B.

use super::{Context, Layer, Param, init};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The flat indices, in a plane `w` wide, of output (i, j)'s 2x2 window.
fn window(w: usize, i: usize, j: usize) -> [usize; 4] {
    let top = 2 * i * w + 2 * j;
    [top, top + 1, top + w, top + w + 1]
}

#[derive(Clone)]
pub struct Subsample {
    pub channels: usize,
    pub weight: Param,
    pub bias: Param,
}

impl Subsample {
    /// Coefficient and bias uniform in ±2.4/fan_in with fan_in = 4, the paper's rule.
    pub fn new(channels: usize, rng: &mut Rng) -> Self {
        Subsample::with_init(channels, rng, init::Init::Default)
    }

    /// Coefficient and bias uniform in `init`'s bound for a fan-in of 4.
    pub fn with_init(channels: usize, rng: &mut Rng, init: init::Init) -> Self {
        let bound = init.lecun1998_bound(4);
        Subsample {
            channels,
            weight: Param::new("weight", init::uniform(&[channels], bound, rng)),
            bias: Param::new("bias", init::uniform(&[channels], bound, rng)),
        }
    }
}

impl Layer for Subsample {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Subsample
    }

    fn describe(&self) -> String {
        format!(
            "Subsample2x2({}, trainable coefficient and bias per map)",
            self.channels
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        vec![input[0], input[1], input[2] / 2, input[3] / 2]
    }

    /// Each output: four inputs times the coefficient, and the bias.
    fn connections(&self, input: &[usize]) -> usize {
        self.output_shape(input)[1..].iter().product::<usize>() * 5
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        for p in 0..n * c {
            let ch = p % c;
            let (a, b) = (self.weight.value.data[ch], self.bias.value.data[ch]);
            let plane = &x.data[p * h * w..(p + 1) * h * w];
            for i in 0..oh {
                for j in 0..ow {
                    let s = plane[2 * i * w + 2 * j]
                        + plane[2 * i * w + 2 * j + 1]
                        + plane[(2 * i + 1) * w + 2 * j]
                        + plane[(2 * i + 1) * w + 2 * j + 1];
                    y.data[(p * oh + i) * ow + j] = a * s + b;
                }
            }
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, mut dx: Option<&mut Tensor>) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        if let Some(dx) = dx.as_deref_mut() {
            dx.fill(0.0); // an odd last row or column gets no gradient
        }
        for p in 0..n * c {
            let ch = p % c;
            let a = self.weight.value.data[ch];
            let plane = &x.data[p * h * w..(p + 1) * h * w];
            let (mut da, mut db) = (0.0f32, 0.0f32);
            for i in 0..oh {
                for j in 0..ow {
                    let d = dy.data[(p * oh + i) * ow + j];
                    let idx = window(w, i, j);
                    da += d * idx.iter().map(|&k| plane[k]).sum::<f32>();
                    db += d;
                    if let Some(dx) = dx.as_deref_mut() {
                        for k in idx {
                            dx.data[p * h * w + k] = a * d;
                        }
                    }
                }
            }
            self.weight.grad.data[ch] += da;
            self.bias.grad.data[ch] += db;
        }
    }

    fn backward_curvature(
        &mut self,
        x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        mut d2x: Option<&mut Tensor>,
    ) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        if let Some(d2x) = d2x.as_deref_mut() {
            d2x.fill(0.0);
        }
        for p in 0..n * c {
            let ch = p % c;
            let a = self.weight.value.data[ch];
            let plane = &x.data[p * h * w..(p + 1) * h * w];
            let (mut ha, mut hb) = (0.0f32, 0.0f32);
            for i in 0..oh {
                for j in 0..ow {
                    let d = d2y.data[(p * oh + i) * ow + j];
                    let idx = window(w, i, j);
                    let s = idx.iter().map(|&k| plane[k]).sum::<f32>();
                    ha += d * s * s;
                    hb += d;
                    if let Some(d2x) = d2x.as_deref_mut() {
                        for k in idx {
                            d2x.data[p * h * w + k] = a * a * d;
                        }
                    }
                }
            }
            self.weight.curvature.data[ch] += ha;
            self.bias.curvature.data[ch] += hb;
        }
    }

    fn sample_terms(
        &self,
        x: &Tensor,
        dy: &Tensor,
        sq: &mut [f64],
        dot: Option<&mut [f64]>,
    ) -> bool {
        let (c, h, w) = (self.channels, x.shape[2], x.shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        let (ga, gb) = (&self.weight.grad.data, &self.bias.grad.data);
        super::layer::for_sample_terms(x.shape[0], 16, sq, dot, |first, sq, dot| {
            for (s, sq) in sq.iter_mut().enumerate() {
                let (mut sq_sum, mut dot_sum) = (0.0f64, 0.0f64);
                for ci in 0..c {
                    let plane = ((first + s) * c + ci) * h * w;
                    let out = ((first + s) * c + ci) * oh * ow;
                    let (mut da, mut db) = (0.0f64, 0.0f64);
                    for i in 0..oh {
                        for j in 0..ow {
                            let d = dy.data[out + i * ow + j] as f64;
                            let window: f32 =
                                window(w, i, j).iter().map(|&k| x.data[plane + k]).sum();
                            da += d * window as f64;
                            db += d;
                        }
                    }
                    sq_sum += da * da + db * db;
                    dot_sum += da * ga[ci] as f64 + db * gb[ci] as f64;
                }
                *sq = sq_sum;
                if let Some(d) = dot.get_mut(s) {
                    *d = dot_sum;
                }
            }
        });
        true
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}
