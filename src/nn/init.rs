//! Parameter initialisation.
//!
//! PyTorch initialises `Conv2d` and `Linear` weights with `kaiming_uniform_(a=sqrt(5))`, whose
//! bound gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)) simplifies to 1/sqrt(fan_in),
//! and their biases uniformly in the same ±1/sqrt(fan_in). LeCun et al. (1998, appendix C)
//! draw every weight uniformly in ±2.4/fan_in.

use crate::rng::Rng;
use crate::tensor::Tensor;

/// PyTorch's default bound for `Conv2d` and `Linear`: 1/sqrt(fan_in).
pub fn pytorch_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in as f32).sqrt()
}

/// LeCun et al. (1998): 2.4/fan_in.
pub fn lecun1998_bound(fan_in: usize) -> f32 {
    2.4 / fan_in as f32
}

/// A tensor with entries uniform in [-bound, bound).
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
    Tensor::from_vec(shape, data)
}
