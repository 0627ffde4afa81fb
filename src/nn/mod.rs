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
//! Four things make the engine faster than its layer list suggests, without changing
//! results: a ReLU followed by max pooling runs as one pass of the pooling layer
//! ([`Layer::forward_after_relu`]); in the forward pass, a convolution followed by ReLU and
//! 2x2 max pooling runs as one pass of the convolution ([`Layer::forward_relu_maxpool`]), which
//! never writes its own output, and in the backward pass the pooling's gradient is expanded
//! inside the convolution's tasks ([`Layer::backward_through_maxpool`]); a convolution whose
//! output gradient is mostly zero (as it is behind ReLU and max pooling) takes backward
//! kernels that visit only the nonzero values ([`kernels::sparse`]; which kernel a chunk
//! takes depends on its values, never on the thread count); and evaluation runs whole
//! batches on each thread, on replicas of the network that keep nothing for a backward pass
//! ([`Network::forward_each`]).

pub mod activation;
pub mod batchnorm;
pub mod conv2d;
pub mod denormals;
pub mod dropout;
pub mod init;
pub mod kernels;
pub mod linear;
pub mod loss;
pub mod model;
pub mod network;
pub mod pool;
pub mod subsample;

pub use denormals::FlushDenormals;
pub use model::{Arch, BatchNormAt, ModelConfig, Pooling};
pub use network::Network;

pub(crate) use crate::parallel::SharedMut;
pub use crate::parallel::for_each_chunk;
pub use kernels::reduce::sum;

use crate::rng::Rng;
use crate::tensor::Tensor;

/// Training uses batch statistics and dropout; evaluation uses running statistics and no
/// dropout, as PyTorch's `model.train()` and `model.eval()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A trainable tensor and the gradient of the loss with respect to it.
#[derive(Clone, Debug)]
pub struct Param {
    /// PyTorch's name for it inside its module: `weight` or `bias`.
    pub name: &'static str,
    pub value: Tensor,
    pub grad: Tensor,
    /// Entries fixed at zero (a sparse connection table); their gradient is always zero.
    pub frozen_zero: Option<Vec<bool>>,
}

impl Param {
    pub fn new(name: &'static str, value: Tensor) -> Self {
        let grad = Tensor::zeros(&value.shape);
        Param {
            name,
            value,
            grad,
            frozen_zero: None,
        }
    }

    /// Number of trainable entries (frozen zeros excluded).
    pub fn trainable_len(&self) -> usize {
        match &self.frozen_zero {
            Some(mask) => mask.iter().filter(|&&z| !z).count(),
            None => self.value.len(),
        }
    }
}

/// A non-trainable state tensor saved with the model, such as batch normalization's running
/// statistics.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    F32(Tensor),
    I64(i64),
}

/// What a forward pass may need besides its input.
pub struct Context<'a> {
    pub mode: Mode,
    /// The dropout stream; dropout masks are drawn serially from it, in layer order.
    pub rng: &'a mut Rng,
}

/// One layer: forward and backward over a batch.
pub trait Layer: Send + CloneLayer {
    /// PyTorch-style description, e.g. `Conv2d(1, 6, kernel_size=5)`.
    fn describe(&self) -> String;

    /// Shape of the output for an input of shape `input` (batch axis included).
    fn output_shape(&self, input: &[usize]) -> Vec<usize>;

    /// Computes `y` from `x`; `y` has already been resized to [`Layer::output_shape`].
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut Context);

    /// Given the input `x`, the output `y` and the gradient `dy` of the loss with respect to
    /// `y`, accumulates parameter gradients and, when `dx` is given, writes the gradient with
    /// respect to `x` (already resized to `x`'s shape).
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>);

    /// Whether this layer is a ReLU, which the next layer may fold into its own pass (see
    /// [`Layer::forward_after_relu`]).
    fn is_relu(&self) -> bool {
        false
    }

    /// Computes `y` = this layer applied to `relu(x)` in one pass over `x`, without writing
    /// the ReLU's output, when the layer knows how (max pooling: the maximum of a window after
    /// ReLU is the ReLU of its maximum). Returns false, doing nothing, when it does not.
    fn forward_after_relu(&mut self, _x: &Tensor, _y: &mut Tensor, _ctx: &mut Context) -> bool {
        false
    }

    /// The backward pass of [`Layer::forward_after_relu`]: `dx` is the gradient with respect
    /// to `x`, the ReLU's input.
    fn backward_after_relu(&mut self, _x: &Tensor, _y: &Tensor, _dy: &Tensor, _dx: &mut Tensor) {
        unreachable!("backward_after_relu without forward_after_relu")
    }

    /// Computes `y` = 2x2, stride-2 max pooling of the ReLU of this layer's output, in one
    /// pass that never writes this layer's output, with the pooling's `argmax` (the flat index
    /// within this layer's output plane of each window's maximum, as
    /// [`pool::maxpool_forward`] writes it), when the layer knows how (the convolutions with
    /// an AVX-512 kernel). Returns false, doing nothing, when it does not. The backward pass
    /// is the pooling layer's (with the ReLU folded) followed by this layer's, as usual, or
    /// both inside this layer's tasks ([`Layer::backward_through_maxpool`]). Without `argmax`
    /// (None: no backward pass follows), the pass may take a quicker way to the same values.
    fn forward_relu_maxpool(
        &mut self,
        _x: &Tensor,
        _y: &mut Tensor,
        _argmax: Option<&mut Vec<u32>>,
    ) -> bool {
        false
    }

    /// The backward pass of a layer whose output went through a ReLU and a 2x2 max pooling
    /// (the ReLU folded into the pooling): each parallel task first makes its samples' output
    /// gradient from `pooled` into `dy` (as the pooling's backward pass would), then runs this
    /// layer's backward on it. Returns false, doing nothing, where the layer does not know how;
    /// the pooling's and this layer's passes then run one after the other.
    fn backward_through_maxpool(
        &mut self,
        _x: &Tensor,
        _pooled: &pool::PooledGrad,
        _dy: &mut Tensor,
        _dx: Option<&mut Tensor>,
    ) -> bool {
        false
    }

    /// A 2x2, stride-2 max pooling layer's argmax cache, for a layer before it that pools in
    /// its own pass ([`Layer::forward_relu_maxpool`]); None for every other layer.
    fn maxpool2x2_argmax(&mut self) -> Option<&mut Vec<u32>> {
        None
    }

    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    /// Named state saved with the model besides the parameters.
    fn buffers(&self) -> Vec<(&'static str, Buffer)> {
        Vec::new()
    }

    /// Restores one buffer saved by [`Layer::buffers`].
    fn set_buffer(&mut self, name: &str, _value: Buffer) -> Result<(), String> {
        Err(format!("{} has no buffer named {name}", self.describe()))
    }
}

/// A copy of a boxed layer, for the replicas a [`Network`] evaluates with on other threads
/// ([`Network::forward_each`]): every layer that is `Clone` has it.
pub trait CloneLayer {
    fn clone_layer(&self) -> Box<dyn Layer>;
}

impl<T: Layer + Clone + 'static> CloneLayer for T {
    fn clone_layer(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
