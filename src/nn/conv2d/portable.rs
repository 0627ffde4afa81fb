//! The direct paths of the convolution off x86-64, where no direct kernel exists: no entry
//! point ever applies, and every convolution takes im2col and GEMM. (On x86-64 this module is
//! `direct.rs`, with the same entry points.)

use super::Conv2d;
use crate::nn::pool::PooledGrad;
use crate::tensor::Tensor;

pub(super) fn forward(_: &mut Conv2d, _: &Tensor, _: &mut Tensor) -> bool {
    false
}

pub(super) fn backward(_: &mut Conv2d, _: &Tensor, _: &Tensor, _: Option<&mut Tensor>) -> bool {
    false
}

pub(super) fn forward_relu_maxpool(
    _: &mut Conv2d,
    _: &Tensor,
    _: &mut Tensor,
    _: Option<&mut Vec<u32>>,
) -> bool {
    false
}

pub(super) fn backward_through_maxpool(
    _: &mut Conv2d,
    _: &Tensor,
    _: &PooledGrad,
    _: &mut Tensor,
    _: Option<&mut Tensor>,
) -> bool {
    false
}
