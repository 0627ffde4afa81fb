//! The engine's kernels, one file per operation, apart from the layers that dispatch to them.
//!
//! Portable, on every processor:
//! - [`dense`]: the fully connected products and their gradients (the linear layer, and the
//!   convolutions on their im2col matrix);
//! - [`im2col`]: a convolution's geometry and its im2col matrix (the layout the convolution
//!   layer and the kernels share);
//! - [`matmul`]: the matrix product every layer with weights reduces to, through the
//!   AVX-512 [`gemm`] kernels where they apply and the `gemm` crate elsewhere;
//! - [`scratch`]: a convolution's working memory, kept between passes;
//! - [`reduce`]: sums in a fixed order (float32, and batch normalization's float64 sums);
//! - [`tanh`]: the hyperbolic tangent in arithmetic that vectorises (the tanh activations).
//!
//! AVX-512 only, chosen at run time ([`crate::simd::available`]) for the shapes LeNet-5
//! produces, each summing in the fixed order of the portable loop it replaces, so results
//! do not depend on the processor or the number of threads:
//! - [`gemm`]: matrix products without packing, a transpose;
//! - [`conv_single_channel`]: direct convolution of one input channel (conv1);
//! - [`conv_narrow`]: direct convolution over narrow planes (conv2);
//! - [`sparse`]: conv2's backward pass visiting only the nonzero values of its output
//!   gradient (behind ReLU and max pooling, three quarters or more are zero);
//! - [`fused`]: a convolution, the ReLU after it and 2x2 max pooling in one pass;
//! - [`pool_relu`]: ReLU and 2x2 max pooling, and the window rule the fused kernels share.
//!
//! The layers keep the plain reference loops beside their dispatch, and the tests hold every
//! kernel to them.

pub mod dense;
pub mod im2col;
pub mod matmul;
pub mod reduce;
pub mod scratch;
pub mod tanh;

#[cfg(target_arch = "x86_64")]
pub mod conv_narrow;
#[cfg(target_arch = "x86_64")]
pub mod conv_single_channel;
#[cfg(target_arch = "x86_64")]
pub mod fused;
#[cfg(target_arch = "x86_64")]
pub mod gemm;
#[cfg(target_arch = "x86_64")]
pub mod pool_relu;
#[cfg(target_arch = "x86_64")]
pub mod sparse;
