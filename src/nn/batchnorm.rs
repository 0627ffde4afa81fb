//! Batch normalization over the channel axis (PyTorch's `nn.BatchNorm2d` and `nn.BatchNorm1d`).
//!
//! Training: for each channel c, over the M = N*H*W values of the batch,
//!   mean_c = sum x / M, var_c = sum (x - mean_c)^2 / M (biased),
//!   xhat = (x - mean_c) / sqrt(var_c + eps), y = gamma_c xhat + beta_c,
//! and the running statistics move by momentum m = 0.1 towards the batch's, using the
//! *unbiased* variance: running_mean = (1 - m) running_mean + m mean_c,
//! running_var = (1 - m) running_var + m var_c M / (M - 1).
//! Evaluation: the running statistics replace the batch's.
//!
//! Backward (training), with dxhat = dy gamma:
//!   dgamma = sum dy xhat, dbeta = sum dy,
//!   dx = (1 / sqrt(var + eps)) (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
//!
//! Shapes: x [N, C, H, W] (2d) or [N, C] (1d); gamma, beta, running statistics [C]. Sums are
//! taken in float64 in a fixed order.
//!
//! reference: Ioffe & Szegedy (2015); <https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html>

use super::{Buffer, Context, Layer, Mode, Param};
use crate::tensor::Tensor;

pub struct BatchNorm {
    pub num_features: usize,
    pub eps: f32,
    pub momentum: f32,
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: i64,
    /// Whether the layer follows a convolution (2d) or a linear layer (1d); only for naming.
    spatial: bool,
    /// Cached by forward: the normalised input and, per channel, 1/sqrt(var + eps).
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    training: bool,
}

impl BatchNorm {
    /// PyTorch's defaults: gamma 1, beta 0, running mean 0, running variance 1, eps 1e-5,
    /// momentum 0.1.
    pub fn new(num_features: usize, spatial: bool) -> Self {
        BatchNorm {
            num_features,
            eps: 1e-5,
            momentum: 0.1,
            weight: Param::new(
                "weight",
                Tensor::from_vec(&[num_features], vec![1.0; num_features]),
            ),
            bias: Param::new("bias", Tensor::zeros(&[num_features])),
            running_mean: Tensor::zeros(&[num_features]),
            running_var: Tensor::from_vec(&[num_features], vec![1.0; num_features]),
            num_batches_tracked: 0,
            spatial,
            xhat: Vec::new(),
            inv_std: vec![0.0; num_features],
            training: false,
        }
    }

    /// (N, C, H*W) of an input.
    fn dims(&self, x: &Tensor) -> (usize, usize, usize) {
        let (n, c) = (x.shape[0], x.shape[1]);
        assert_eq!(c, self.num_features, "{}: wrong channels", self.describe());
        (n, c, x.len() / (n * c))
    }
}

impl Layer for BatchNorm {
    fn describe(&self) -> String {
        let d = if self.spatial { "2d" } else { "1d" };
        format!(
            "BatchNorm{d}({}, eps={}, momentum={})",
            self.num_features, self.eps, self.momentum
        )
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        input.to_vec()
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Context) {
        let (n, c, hw) = self.dims(x);
        let m = n * hw;
        self.training = ctx.mode == Mode::Train;
        self.xhat.resize(x.len(), 0.0);
        let at = |ni: usize, ci: usize| (ni * c + ci) * hw;
        for ci in 0..c {
            let (mean, inv_std) = if self.training {
                let mut sum = 0.0f64;
                for ni in 0..n {
                    sum += x.data[at(ni, ci)..][..hw]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>();
                }
                let mean = sum / m as f64;
                let mut sq = 0.0f64;
                for ni in 0..n {
                    sq += x.data[at(ni, ci)..][..hw]
                        .iter()
                        .map(|&v| (v as f64 - mean).powi(2))
                        .sum::<f64>();
                }
                let var = sq / m as f64;
                let unbiased = if m > 1 { sq / (m - 1) as f64 } else { var };
                let mom = self.momentum as f64;
                let rm = &mut self.running_mean.data[ci];
                *rm = ((1.0 - mom) * *rm as f64 + mom * mean) as f32;
                let rv = &mut self.running_var.data[ci];
                *rv = ((1.0 - mom) * *rv as f64 + mom * unbiased) as f32;
                (mean as f32, (1.0 / (var + self.eps as f64).sqrt()) as f32)
            } else {
                let var = self.running_var.data[ci];
                (self.running_mean.data[ci], 1.0 / (var + self.eps).sqrt())
            };
            self.inv_std[ci] = inv_std;
            let (gamma, beta) = (self.weight.value.data[ci], self.bias.value.data[ci]);
            for ni in 0..n {
                let r = at(ni, ci)..at(ni, ci) + hw;
                for ((y, xh), &x) in y.data[r.clone()]
                    .iter_mut()
                    .zip(&mut self.xhat[r.clone()])
                    .zip(&x.data[r])
                {
                    *xh = (x - mean) * inv_std;
                    *y = gamma * *xh + beta;
                }
            }
        }
        if self.training {
            self.num_batches_tracked += 1;
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let (n, c, hw) = self.dims(x);
        let m = (n * hw) as f64;
        let at = |ni: usize, ci: usize| (ni * c + ci) * hw;
        let mut dx = dx;
        for ci in 0..c {
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for ni in 0..n {
                let r = at(ni, ci)..at(ni, ci) + hw;
                for (&d, &xh) in dy.data[r.clone()].iter().zip(&self.xhat[r]) {
                    sum_dy += d as f64;
                    sum_dy_xhat += (d * xh) as f64;
                }
            }
            self.weight.grad.data[ci] += sum_dy_xhat as f32;
            self.bias.grad.data[ci] += sum_dy as f32;
            let Some(dx) = dx.as_deref_mut() else {
                continue;
            };
            let gamma = self.weight.value.data[ci];
            let scale = gamma * self.inv_std[ci];
            let (mean_dy, mean_dy_xhat) = ((sum_dy / m) as f32, (sum_dy_xhat / m) as f32);
            for ni in 0..n {
                let r = at(ni, ci)..at(ni, ci) + hw;
                for ((dx, &d), &xh) in dx.data[r.clone()]
                    .iter_mut()
                    .zip(&dy.data[r.clone()])
                    .zip(&self.xhat[r])
                {
                    *dx = if self.training {
                        scale * (d - mean_dy - xh * mean_dy_xhat)
                    } else {
                        scale * d
                    };
                }
            }
        }
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn buffers(&self) -> Vec<(&'static str, Buffer)> {
        vec![
            ("running_mean", Buffer::F32(self.running_mean.clone())),
            ("running_var", Buffer::F32(self.running_var.clone())),
            ("num_batches_tracked", Buffer::I64(self.num_batches_tracked)),
        ]
    }

    fn set_buffer(&mut self, name: &str, value: Buffer) -> Result<(), String> {
        let c = self.num_features;
        match (name, value) {
            ("running_mean", Buffer::F32(t)) if t.len() == c => self.running_mean.data = t.data,
            ("running_var", Buffer::F32(t)) if t.len() == c => self.running_var.data = t.data,
            ("num_batches_tracked", Buffer::I64(v)) => self.num_batches_tracked = v,
            (name, _) => {
                return Err(format!(
                    "{}: buffer {name} has the wrong type or size (expected [{c}] float32, or an int64 count)",
                    self.describe()
                ));
            }
        }
        Ok(())
    }
}
