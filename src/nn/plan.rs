//! How a [`Network`](super::Network) runs its layer list: as a plan of stages, made once from
//! the layers, each stage one or more consecutive layers with a forward and a backward pass of
//! its own.
//!
//! Most stages are one layer's own passes. Two sequences that LeNet-5 is made of run as one
//! pass, with the same results bit for bit:
//! - a ReLU followed by max pooling ([`Stage::ReluMaxPool`]) is one pass of the pooling over
//!   the ReLU's input ([`Pool2d::forward_after_relu`]): the ReLU's output and its gradient are
//!   never written;
//! - a convolution followed by a ReLU and 2x2 max pooling ([`Stage::ConvReluMaxPool`]) runs
//!   all three in the convolution's forward pass where a direct kernel covers its shape
//!   ([`Conv2d::forward_relu_maxpool`]), writing only the pooled output, and makes its own
//!   output gradient from the pooling's inside its backward tasks
//!   ([`Conv2d::backward_through_maxpool`]). Where no kernel covers the shape, the stage runs
//!   the convolution and then the ReLU with the pooling, as above.
//!
//! The activations and gradients are the network's: `acts[0]` is the input batch, `acts[i + 1]`
//! the output of layer i, and `grads[i]` the gradient of the loss with respect to `acts[i]`.
//! A stage over layers `first..=last` ([`Stage::layers`]) reads activation `first` and writes
//! activation `last + 1` in its forward pass; its backward pass reads gradient `last + 1` and
//! writes gradient `first`. What a stage skips (the ReLU's output, the
//! convolution's) keeps its shape but not its values.

use std::ops::RangeInclusive;

use super::activation::{Activation, ActivationKind};
use super::conv2d::Conv2d;
use super::layer::{Context, Layer};
use super::pool::{Pool2d, PooledGrad};
use crate::tensor::Tensor;

/// One step of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Layer `0`'s own forward and backward passes.
    Single(usize),
    /// The ReLU at `relu` and the max pooling after it, as one pass of the pooling.
    ReluMaxPool { relu: usize },
    /// The convolution at `conv`, the ReLU and the 2x2 max pooling after it.
    ConvReluMaxPool {
        conv: usize,
        /// Whether the last forward and backward passes ran as one pass of the convolution
        /// (where a direct kernel covers the shape), rather than as its own pass followed
        /// by the pooling's.
        one_pass: (bool, bool),
    },
}

/// The plan for `layers`: with `fold`, the sequences above run as one pass; without it, every
/// layer runs on its own (every activation is then written).
pub fn plan(layers: &[Box<dyn Layer>], fold: bool) -> Vec<Stage> {
    let is = |i: usize, test: fn(&dyn Layer) -> bool| layers.get(i).is_some_and(|l| test(&**l));
    let mut stages = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let stage = if fold && is(i, is_conv) && is(i + 1, is_relu) && is(i + 2, is_maxpool2x2) {
            Stage::ConvReluMaxPool {
                conv: i,
                one_pass: (false, false),
            }
        } else if fold && is(i, is_relu) && is(i + 1, is_maxpool) {
            Stage::ReluMaxPool { relu: i }
        } else {
            Stage::Single(i)
        };
        i = stage.layers().end() + 1;
        stages.push(stage);
    }
    stages
}

fn is_conv(layer: &dyn Layer) -> bool {
    layer.as_any().is::<Conv2d>()
}

fn is_relu(layer: &dyn Layer) -> bool {
    let activation = layer.as_any().downcast_ref::<Activation>();
    activation.is_some_and(|a| a.kind == ActivationKind::Relu)
}

fn is_maxpool(layer: &dyn Layer) -> bool {
    layer
        .as_any()
        .downcast_ref::<Pool2d>()
        .is_some_and(Pool2d::is_max)
}

fn is_maxpool2x2(layer: &dyn Layer) -> bool {
    layer
        .as_any()
        .downcast_ref::<Pool2d>()
        .is_some_and(Pool2d::is_max2x2)
}

/// Layer `i` as its concrete type, which the plan checked it is.
fn concrete<T: 'static>(layers: &mut [Box<dyn Layer>], i: usize) -> &mut T {
    layers[i]
        .as_any_mut()
        .downcast_mut::<T>()
        .expect("the plan checked the layer's type")
}

impl Stage {
    /// The layers this stage runs.
    pub fn layers(&self) -> RangeInclusive<usize> {
        match *self {
            Stage::Single(i) => i..=i,
            Stage::ReluMaxPool { relu } => relu..=relu + 1,
            Stage::ConvReluMaxPool { conv, .. } => conv..=conv + 2,
        }
    }

    /// The forward pass. `inference`: no backward pass follows, so the outputs a stage skips
    /// stay empty and a pooling that the convolution runs keeps no argmax.
    pub fn forward(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        acts: &mut [Tensor],
        ctx: &mut Context,
        inference: bool,
    ) {
        match self {
            Stage::Single(i) => {
                let (x, y) = input_output(acts, *i, *i);
                y.resize(&layers[*i].output_shape(&x.shape));
                layers[*i].forward(x, y, ctx);
            }
            Stage::ReluMaxPool { relu } => relu_maxpool_forward(layers, acts, *relu, inference),
            Stage::ConvReluMaxPool { conv, one_pass } => {
                let (conv, relu, pool) = (*conv, *conv + 1, *conv + 2);
                let shape = layers[conv].output_shape(&acts[conv].shape);
                let pooled = layers[pool].output_shape(&shape);
                if !inference {
                    acts[conv + 1].resize(&shape);
                    acts[relu + 1].resize(&shape);
                }
                acts[pool + 1].resize(&pooled);
                let (x, rest) = acts[conv..].split_first_mut().expect("the input");
                let y = &mut rest[pool - conv];
                let (lower, upper) = layers.split_at_mut(pool);
                let argmax = concrete::<Pool2d>(upper, 0).maxpool2x2_argmax();
                let argmax = argmax.filter(|_| !inference);
                one_pass.0 = concrete::<Conv2d>(lower, conv).forward_relu_maxpool(x, y, argmax);
                if !one_pass.0 {
                    Stage::Single(conv).forward(layers, acts, ctx, inference);
                    relu_maxpool_forward(layers, acts, relu, inference);
                }
            }
        }
    }

    /// The backward pass: accumulates the parameter gradients of the stage's layers and
    /// writes the gradient with respect to its input, unless the stage is the first and
    /// `input_grad` is off.
    pub fn backward(
        &mut self,
        layers: &mut [Box<dyn Layer>],
        acts: &[Tensor],
        grads: &mut [Tensor],
        input_grad: bool,
    ) {
        let want_dx = *self.layers().start() > 0 || input_grad;
        match self {
            Stage::Single(i) => {
                let i = *i;
                let (lo, hi) = grads.split_at_mut(i + 1);
                let dx = want_dx.then(|| {
                    lo[i].resize(&acts[i].shape);
                    &mut lo[i]
                });
                layers[i].backward(&acts[i], &acts[i + 1], &hi[0], dx);
            }
            Stage::ReluMaxPool { relu } => {
                if want_dx {
                    relu_maxpool_backward(layers, acts, grads, *relu);
                }
            }
            Stage::ConvReluMaxPool { conv, one_pass } => {
                let conv = *conv;
                one_pass.1 = conv_relu_maxpool_backward(layers, acts, grads, conv, want_dx);
                if !one_pass.1 {
                    relu_maxpool_backward(layers, acts, grads, conv + 1);
                    Stage::Single(conv).backward(layers, acts, grads, input_grad);
                }
            }
        }
    }

    /// The stage's layers, for the profile: their descriptions, joined.
    pub fn describe(&self, layers: &[Box<dyn Layer>]) -> String {
        let names: Vec<String> = self.layers().map(|i| layers[i].describe()).collect();
        names.join(" + ")
    }
}

/// Activation `first` (the input of layer `first`) and activation `last + 1` (the output of
/// layer `last`), together.
fn input_output(acts: &mut [Tensor], first: usize, last: usize) -> (&Tensor, &mut Tensor) {
    let (x, rest) = acts[first..].split_first_mut().expect("the input");
    (x, &mut rest[last - first])
}

/// [`Stage::ReluMaxPool`]'s forward pass: the pooling at `relu + 1` over the ReLU's input.
fn relu_maxpool_forward(
    layers: &mut [Box<dyn Layer>],
    acts: &mut [Tensor],
    relu: usize,
    inference: bool,
) {
    let pool = relu + 1;
    let shape = acts[relu].shape.clone();
    if !inference {
        acts[relu + 1].resize(&shape);
    }
    let pooled = layers[pool].output_shape(&shape);
    let (x, y) = input_output(acts, relu, pool);
    y.resize(&pooled);
    concrete::<Pool2d>(layers, pool).forward_after_relu(x, y);
}

/// [`Stage::ReluMaxPool`]'s backward pass: the gradient with respect to the ReLU's input.
fn relu_maxpool_backward(
    layers: &mut [Box<dyn Layer>],
    acts: &[Tensor],
    grads: &mut [Tensor],
    relu: usize,
) {
    let pool = relu + 1;
    let (lo, hi) = grads.split_at_mut(pool + 1);
    lo[relu].resize(&acts[relu].shape);
    let (x, y) = (&acts[relu], &acts[pool + 1]);
    concrete::<Pool2d>(layers, pool).backward_after_relu(x, y, &hi[0], &mut lo[relu]);
}

/// [`Stage::ConvReluMaxPool`]'s backward pass in one pass of the convolution, where its
/// kernels cover the shape; returns whether they did.
fn conv_relu_maxpool_backward(
    layers: &mut [Box<dyn Layer>],
    acts: &[Tensor],
    grads: &mut [Tensor],
    conv: usize,
    want_dx: bool,
) -> bool {
    let (relu, pool) = (conv + 1, conv + 2);
    let (lower, upper) = layers.split_at_mut(pool);
    let argmax = concrete::<Pool2d>(upper, 0).maxpool2x2_argmax();
    let argmax = argmax.expect("the plan checked for 2x2 max pooling");
    let shape = &acts[relu].shape;
    // grads: [..= conv] below, the ReLU's input gradient (the convolution's output gradient),
    // then the pooling's input gradient and its output's.
    let (below, above) = grads.split_at_mut(relu);
    let (dy, above) = above.split_first_mut().expect("the ReLU's gradient");
    let pooled = PooledGrad {
        dy: &above[1].data,
        y: &acts[pool + 1].data,
        argmax,
        channels: shape[1],
        plane: (shape[2], shape[3]),
    };
    dy.resize(shape);
    let dx = want_dx.then(|| {
        below[conv].resize(&acts[conv].shape);
        &mut below[conv]
    });
    concrete::<Conv2d>(lower, conv).backward_through_maxpool(&acts[conv], &pooled, dy, dx)
}
