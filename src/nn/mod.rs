//! The neural-network engine: layers with their forward and backward passes side by side, the
//! [`Network`] that chains them, and the LeNet-5 builders.
//!
//! Every layer implements [`Layer`]. A layer's forward pass reads its input and writes its
//! output into buffers the [`Network`] owns; what the backward pass needs beyond those (argmax
//! indices, normalised activations, dropout masks, im2col columns) is cached by the layer
//! itself, under a name. Work is split over the batch in chunks whose size depends only on the
//! layer's shape, and reductions over the batch add the chunks' partial sums in chunk order, so
//! results are bit-identical whatever the number of threads.
//!
//! Three things make the engine faster than its layer list suggests, without changing
//! results, and none of them is in the layers' own passes: the [`Network`] runs its layers as
//! a [`plan`] of stages, where a ReLU followed by max pooling is one pass of the pooling, and
//! a convolution followed by both is one pass of the convolution (which never writes its own
//! output, and expands the pooling's gradient inside its own backward tasks); the kernels
//! ([`kernels`]) take LeNet's shapes with AVX-512, including backward kernels for a
//! convolution whose output gradient is mostly zero (as it is behind ReLU and max pooling)
//! that visit only the nonzero values (which kernel a chunk takes depends on its values,
//! never on the thread count); and evaluation runs whole batches on each thread, on replicas
//! of the network that keep nothing for a backward pass ([`Network::forward_each`]).

pub mod activation;
pub mod batchnorm;
pub mod conv2d;
pub mod denormals;
pub mod dropout;
pub mod hessian;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod linear;
pub mod loss;
pub mod model;
pub mod network;
pub mod plan;
pub mod pool;
pub mod rbf;
pub mod subsample;

pub use denormals::FlushDenormals;
pub use layer::{Buffer, CloneLayer, Context, Layer, LayerKind, Mode, Param};
pub use model::{Arch, BatchNormAt, ModelConfig, Pooling};
pub use network::Network;

pub(crate) use crate::parallel::SharedMut;
pub use crate::parallel::for_each_chunk;
pub use kernels::reduce::sum;
