//! A chain of layers with the activation and gradient buffers between them.
//!
//! `acts[0]` is the input batch, `acts[i + 1]` the output of layer i; `grads[i]` is the gradient
//! of the loss with respect to `acts[i]`. The buffers are reused from batch to batch.

use super::{Buffer, Context, Layer, Param};
use crate::tensor::Tensor;

pub struct Network {
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's module path in PyTorch's `state_dict`, e.g. `feature_extractor.0`.
    names: Vec<String>,
    /// Shape of one input sample, e.g. [1, 32, 32].
    input_shape: Vec<usize>,
    acts: Vec<Tensor>,
    grads: Vec<Tensor>,
    /// Seconds spent in each layer's forward and backward pass, when profiling is on.
    profile: Option<Vec<(f64, f64)>>,
}

/// One row of [`Network::summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    pub name: String,
    pub layer: String,
    /// Output shape of one sample.
    pub output_shape: Vec<usize>,
    pub params: usize,
}

impl Network {
    pub fn new(input_shape: &[usize], layers: Vec<(String, Box<dyn Layer>)>) -> Self {
        let (names, layers): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
        let count = layers.len();
        Network {
            layers,
            names,
            input_shape: input_shape.to_vec(),
            acts: vec![Tensor::default(); count + 1],
            grads: vec![Tensor::default(); count + 1],
            profile: None,
        }
    }

    /// Each layer's module path, in order.
    pub fn layer_names(&self) -> &[String] {
        &self.names
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The input batch buffer, to be filled before [`Network::forward`].
    pub fn input_mut(&mut self) -> &mut Tensor {
        &mut self.acts[0]
    }

    pub fn input(&self) -> &Tensor {
        &self.acts[0]
    }

    /// The output of layer `i` from the last forward pass.
    pub fn activation(&self, i: usize) -> &Tensor {
        &self.acts[i + 1]
    }

    /// Runs every layer on the input buffer and returns the output (the logits).
    pub fn forward(&mut self, ctx: &mut Context) -> &Tensor {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let shape = layer.output_shape(&before[i].shape);
            after[0].resize(&shape);
            let start = self.profile.is_some().then(std::time::Instant::now);
            layer.forward(&before[i], &mut after[0], ctx);
            if let (Some(p), Some(t)) = (self.profile.as_mut(), start) {
                p[i].0 += t.elapsed().as_secs_f64();
            }
        }
        self.acts.last().expect("input buffer")
    }

    pub fn output(&self) -> &Tensor {
        self.acts.last().expect("input buffer")
    }

    /// The output and the buffer for its gradient, together (the loss reads one and writes
    /// the other).
    pub fn output_and_grad_mut(&mut self) -> (&Tensor, &mut Tensor) {
        let shape = self.output().shape.clone();
        let g = self.grads.last_mut().expect("output gradient buffer");
        g.resize(&shape);
        (self.acts.last().expect("input buffer"), g)
    }

    /// Back-propagates the output gradient, accumulating every parameter's gradient. The
    /// input's gradient is computed only when `input_grad` is set.
    pub fn backward(&mut self, input_grad: bool) {
        for i in (0..self.layers.len()).rev() {
            let (lo, hi) = self.grads.split_at_mut(i + 1);
            let dx = if i > 0 || input_grad {
                lo[i].resize(&self.acts[i].shape);
                Some(&mut lo[i])
            } else {
                None
            };
            let start = self.profile.is_some().then(std::time::Instant::now);
            self.layers[i].backward(&self.acts[i], &self.acts[i + 1], &hi[0], dx);
            if let (Some(p), Some(t)) = (self.profile.as_mut(), start) {
                p[i].1 += t.elapsed().as_secs_f64();
            }
        }
    }

    /// Starts (or stops) timing each layer's passes; timings accumulate until taken.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![(0.0, 0.0); self.layers.len()]);
    }

    /// Per layer: (name, description, forward seconds, backward seconds) since profiling
    /// started or was last taken; the counters restart at zero.
    pub fn take_profile(&mut self) -> Vec<(String, String, f64, f64)> {
        let Some(p) = self.profile.as_mut() else {
            return Vec::new();
        };
        let out = self
            .names
            .iter()
            .zip(&self.layers)
            .zip(p.iter())
            .map(|((n, l), &(f, b))| (n.clone(), l.describe(), f, b))
            .collect();
        p.iter_mut().for_each(|t| *t = (0.0, 0.0));
        out
    }

    /// The gradient with respect to the input from the last [`Network::backward`] with
    /// `input_grad` set.
    pub fn input_grad(&self) -> &Tensor {
        &self.grads[0]
    }

    pub fn zero_grad(&mut self) {
        self.for_each_param(&mut |_, p| p.grad.fill(0.0));
    }

    /// Visits every parameter in a fixed order with its full `state_dict` name.
    pub fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        for (name, layer) in self.names.iter().zip(self.layers.iter_mut()) {
            for p in layer.params_mut() {
                f(&format!("{name}.{}", p.name), p);
            }
        }
    }

    /// Every parameter with its full name, in the order of [`Network::for_each_param`].
    pub fn params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        for (name, layer) in self.names.iter().zip(&self.layers) {
            for p in layer.params() {
                out.push((format!("{name}.{}", p.name), p));
            }
        }
        out
    }

    /// Trainable parameter count (frozen zeros of sparse connection tables excluded).
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, p)| p.trainable_len()).sum()
    }

    /// Layer by layer: name, description, per-sample output shape and parameter count.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let mut shape: Vec<usize> = std::iter::once(1)
            .chain(self.input_shape.iter().copied())
            .collect();
        let mut rows = Vec::new();
        for (name, layer) in self.names.iter().zip(&self.layers) {
            shape = layer.output_shape(&shape);
            rows.push(LayerSummary {
                name: name.clone(),
                layer: layer.describe(),
                output_shape: shape[1..].to_vec(),
                params: layer.params().iter().map(|p| p.trainable_len()).sum(),
            });
        }
        rows
    }

    /// Parameters and buffers under PyTorch's `state_dict` names, in module order.
    pub fn state_dict(&self) -> Vec<(String, Buffer)> {
        let mut out = Vec::new();
        for (name, layer) in self.names.iter().zip(&self.layers) {
            for p in layer.params() {
                out.push((format!("{name}.{}", p.name), Buffer::F32(p.value.clone())));
            }
            for (b, value) in layer.buffers() {
                out.push((format!("{name}.{b}"), value));
            }
        }
        out
    }

    /// Loads a full `state_dict`: every entry must be present with its shape, and nothing else.
    pub fn load_state_dict(&mut self, mut entries: Vec<(String, Buffer)>) -> Result<(), String> {
        let mut take = |key: &str| -> Result<Buffer, String> {
            let pos = entries
                .iter()
                .position(|(k, _)| k == key)
                .ok_or_else(|| format!("missing tensor {key}"))?;
            Ok(entries.swap_remove(pos).1)
        };
        for (name, layer) in self.names.iter().zip(self.layers.iter_mut()) {
            for p in layer.params_mut() {
                let key = format!("{name}.{}", p.name);
                match take(&key)? {
                    Buffer::F32(t) if t.shape == p.value.shape => p.value.data = t.data,
                    Buffer::F32(t) => {
                        return Err(format!(
                            "{key}: shape {:?}, expected {:?}",
                            t.shape, p.value.shape
                        ));
                    }
                    Buffer::I64(_) => return Err(format!("{key}: expected float32, found int64")),
                }
            }
            let buffer_names: Vec<&'static str> = layer.buffers().iter().map(|(b, _)| *b).collect();
            for b in buffer_names {
                let key = format!("{name}.{b}");
                layer.set_buffer(b, take(&key)?)?;
            }
        }
        if let Some((extra, _)) = entries.first() {
            return Err(format!(
                "unexpected tensor {extra} (is this a checkpoint of another model?)"
            ));
        }
        Ok(())
    }
}
