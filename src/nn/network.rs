//! A chain of layers with the activation and gradient buffers between them.
//!
//! `acts[0]` is the input batch, `acts[i + 1]` the output of layer i; `grads[i]` is the gradient
//! of the loss with respect to `acts[i]`. The buffers are reused from batch to batch.
//!
//! The layers run as a [`plan`](super::plan) of stages, made once, where a ReLU with the max
//! pooling after it, and a convolution with both, run as one pass; the results are the same
//! bit for bit, and [`Network::set_fold_relu`] makes every layer a stage of its own where the
//! outputs in between are wanted.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::activation::{Activation, ActivationKind, LECUN_A};
use super::batchnorm::BatchNorm;
use super::conv2d::Conv2d;
use super::loss::Criterion;
use super::plan::{Stage, plan};
use super::rbf::Rbf;
use super::{Buffer, Context, Layer, LayerKind, Mode, Param};
use crate::parallel;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The most replicas [`Network::forward_each`] makes: each holds one evaluation batch's
/// activations (a few megabytes), so a machine with hundreds of threads does not hold
/// hundreds of them; 16 lanes keep 16 threads busy, as a training batch of 64 does.
pub const MAX_REPLICAS: usize = 16;

pub struct Network {
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's module path in PyTorch's `state_dict`, e.g. `feature_extractor.0`.
    names: Vec<String>,
    /// Shape of one input sample, e.g. [1, 32, 32].
    input_shape: Vec<usize>,
    acts: Vec<Tensor>,
    grads: Vec<Tensor>,
    /// How the layers run: stages of one or more layers each.
    stages: Vec<Stage>,
    /// Seconds spent in each stage's forward and backward pass, when profiling is on.
    profile: Option<Vec<(f64, f64)>>,
    /// Whether the plan runs a ReLU with the pooling after it (and a convolution with both)
    /// as one pass.
    fold_relu: bool,
    /// Every parameter's full name, in order (made once: the optimizer visits them all at
    /// every step).
    param_names: Vec<String>,
    /// Copies of this network that [`Network::forward_each`] runs batches on, one per thread.
    replicas: Vec<Mutex<Network>>,
    /// Whether no backward pass ever follows a forward pass (the replicas): a layer that
    /// pools in its own pass then keeps no argmax, and the outputs it skips stay empty.
    inference: bool,
    /// What its outputs are trained and judged by.
    criterion: Criterion,
    /// Whether the layers keep what [`Network::sample_terms`] and [`Network::unit_stats`]
    /// need beyond the activations ([`Network::keep_sample_grads`]).
    keep_samples: bool,
}

/// One layer's per-sample gradient terms ([`Network::sample_terms`]): for each sample, the
/// squared norm of its term, and (when asked) its inner product with the gradient.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleTerms {
    pub sq: Vec<f64>,
    pub dot: Vec<f64>,
}

/// The layers whose units the instruments describe ([`Network::unit_layers`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnitKind {
    Relu,
    /// tanh or the 1998 network's scaled tanh, whose outputs lie within ±`bound`.
    Tanh {
        bound: f32,
    },
    BatchNorm,
}

fn unit_kind(layer: &dyn Layer) -> Option<UnitKind> {
    if let Some(a) = layer.as_any().downcast_ref::<Activation>() {
        return Some(match a.kind {
            ActivationKind::Relu => UnitKind::Relu,
            ActivationKind::Tanh => UnitKind::Tanh { bound: 1.0 },
            ActivationKind::ScaledTanh => UnitKind::Tanh { bound: LECUN_A },
        });
    }
    layer
        .as_any()
        .is::<BatchNorm>()
        .then_some(UnitKind::BatchNorm)
}

/// What one of [`Network::unit_layers`] did in a forward pass ([`Network::unit_stats`]).
#[derive(Clone, Debug, PartialEq)]
pub enum UnitStats {
    Relu { silent: Vec<bool> },
    Tanh { saturated: usize, outputs: usize },
    BatchNorm { mean_abs: f64, std: f64 },
}

/// One row of [`Network::summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    pub name: String,
    pub kind: LayerKind,
    pub layer: String,
    /// Output shape of one sample.
    pub output_shape: Vec<usize>,
    pub params: usize,
    /// Connections per sample ([`Layer::connections`]).
    pub connections: usize,
}

impl Network {
    pub fn new(input_shape: &[usize], layers: Vec<(String, Box<dyn Layer>)>) -> Self {
        let (names, layers): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
        let count = layers.len();
        let param_names = names
            .iter()
            .zip(&layers)
            .flat_map(|(name, layer)| layer.params().into_iter().map(move |p| (name, p.name)))
            .map(|(name, p)| format!("{name}.{p}"))
            .collect();
        Network {
            param_names,
            stages: plan(&layers, true),
            layers,
            names,
            input_shape: input_shape.to_vec(),
            acts: vec![Tensor::default(); count + 1],
            grads: vec![Tensor::default(); count + 1],
            profile: None,
            fold_relu: true,
            replicas: Vec::new(),
            inference: false,
            criterion: Criterion::CrossEntropy,
            keep_samples: false,
        }
    }

    /// The network with outputs trained and judged by `criterion` (cross-entropy by default).
    pub fn with_criterion(mut self, criterion: Criterion) -> Self {
        self.criterion = criterion;
        self
    }

    /// What the outputs are trained and judged by.
    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    /// Whether a ReLU runs folded into a following layer that can take it, and a layer with
    /// a ReLU and max pooling after it runs the three in one pass (on by default; off, every
    /// layer's output is written, as [`Network::activation`] then shows).
    pub fn set_fold_relu(&mut self, on: bool) {
        if self.fold_relu == on {
            return;
        }
        self.fold_relu = on;
        self.stages = plan(&self.layers, on);
        if self.profile.is_some() {
            self.set_profiling(true);
        }
    }

    /// The plan the layers run in.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
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

    /// The output of layer `i` from the last forward pass (not written for a ReLU folded into
    /// the next layer, nor for a layer that ran with the ReLU and pooling after it; see
    /// [`Network::set_fold_relu`]).
    pub fn activation(&self, i: usize) -> &Tensor {
        &self.acts[i + 1]
    }

    /// Runs every layer on the input buffer and returns the output (the logits).
    pub fn forward(&mut self, ctx: &mut Context) -> &Tensor {
        for (k, stage) in self.stages.iter_mut().enumerate() {
            let start = self.profile.is_some().then(std::time::Instant::now);
            stage.forward(&mut self.layers, &mut self.acts, ctx, self.inference);
            if let (Some(p), Some(t)) = (self.profile.as_mut(), start) {
                p[k].0 += t.elapsed().as_secs_f64();
            }
        }
        self.acts.last().expect("input buffer")
    }

    /// Runs `batches` independent forward passes in evaluation mode, spread over the threads
    /// a whole batch at a time: `fill(b, input)` fills batch b's input buffer and
    /// `take(b, output)` receives its output, on the thread that ran it, in no set order.
    ///
    /// The batches are shared out among up to [`MAX_REPLICAS`] lanes (no more than there are
    /// threads or batches), each running its batches on a replica of this network of its own
    /// (made at the first call; the parameters, buffers and folding setting are copied in at
    /// every call), every layer's pass on that thread alone. So the threads meet once, at the
    /// end, instead of at the end of every layer of every batch (where one waits for the
    /// other's last chunk), and a batch's activations stay in one processor's caches from
    /// layer to layer. A replica holds a batch's activations, so their number is bounded by
    /// the work and by a constant, never by the thread count alone. No backward pass follows,
    /// so the convolutions that pool in their own pass skip the argmax
    /// ([`Conv2d::forward_relu_maxpool`](super::conv2d::Conv2d::forward_relu_maxpool)). With
    /// one thread or one batch, the batches run on one replica, each layer spread over the
    /// threads as usual. Every output is the same bits
    /// as [`Network::forward`] in evaluation mode gives: a layer's results never depend on
    /// which thread computes them. The replicas' passes are not in the layer profile
    /// ([`Network::set_profiling`]).
    pub fn forward_each<F, T>(&mut self, batches: usize, fill: F, take: T)
    where
        F: Fn(usize, &mut Tensor) + Sync,
        T: Fn(usize, &Tensor) + Sync,
    {
        let lanes = parallel::threads().min(batches).clamp(1, MAX_REPLICAS);
        self.sync_replicas(lanes);
        let replicas = &self.replicas[..lanes];
        let next = std::sync::atomic::AtomicUsize::new(0);
        // Each lane takes the next batch until none is left: the lanes run at once, one per
        // thread, so a slow thread holds up no other lane's batches.
        let lane = |net: &mut Network| {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                fill(b, net.input_mut());
                // Evaluation draws no random numbers (dropout is the identity).
                let rng = &mut Rng::new(0);
                take(
                    b,
                    net.forward(&mut Context {
                        mode: Mode::Eval,
                        rng,
                    }),
                );
            }
        };
        // A replica holds nothing of a batch once it is taken, so one that a panic left
        // behind is as good as any.
        fn lock(replica: &Mutex<Network>) -> MutexGuard<'_, Network> {
            replica.lock().unwrap_or_else(PoisonError::into_inner)
        }
        parallel::with_team(|| {
            if lanes > 1 {
                parallel::for_each_chunk(lanes, 1, |l, _, _| lane(&mut lock(&replicas[l])));
            } else {
                lane(&mut lock(&replicas[0]));
            }
        });
    }

    /// A network of its own with this one's layers, parameters, buffers, criterion and
    /// folding setting (no replicas, no profile), to run beside it on another thread.
    pub fn duplicate(&self) -> Network {
        let layers = (self.names.iter().cloned())
            .zip(self.layers.iter().map(|layer| layer.clone_layer()))
            .collect();
        let mut copy = Network::new(&self.input_shape, layers).with_criterion(self.criterion);
        copy.set_fold_relu(self.fold_relu);
        copy
    }

    /// Makes at least `count` replicas of this network for [`Network::forward_each`] (each
    /// once), and copies this network's parameters, buffers and folding setting into them.
    fn sync_replicas(&mut self, count: usize) {
        while self.replicas.len() < count {
            let mut replica = self.duplicate();
            replica.inference = true;
            self.replicas.push(Mutex::new(replica));
        }
        let state = self.state_dict();
        for replica in &mut self.replicas[..count] {
            let replica = replica.get_mut().unwrap_or_else(PoisonError::into_inner);
            replica.set_fold_relu(self.fold_relu);
            (replica.load_state_dict(state.clone()))
                .expect("a replica has its original's parameters and buffers");
        }
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
        for (k, stage) in self.stages.iter_mut().enumerate().rev() {
            let start = self.profile.is_some().then(std::time::Instant::now);
            stage.backward(&mut self.layers, &self.acts, &mut self.grads, input_grad);
            if let (Some(p), Some(t)) = (self.profile.as_mut(), start) {
                p[k].1 += t.elapsed().as_secs_f64();
            }
        }
    }

    /// Each sample's term of every parameter gradient the last [`Network::backward`]
    /// accumulated, for the noise instruments: for each layer with parameters, in order, the
    /// squared norms and, when `dots` is set, the inner products with the gradients the
    /// parameters hold now ([`Layer::sample_terms`]). It reads each layer's input and output
    /// gradient, so the passes must have run with folding off ([`Network::set_fold_relu`]),
    /// or with the layers keeping their per-sample gradients ([`Network::keep_sample_grads`]):
    /// a convolution run with its ReLU and pooling in one pass keeps its own where it does
    /// not write its output gradient. Fails, naming the layer, where a layer with parameters
    /// cannot split its gradient by sample.
    pub fn sample_terms(&self, dots: bool) -> Result<Vec<SampleTerms>, String> {
        assert!(
            !self.fold_relu || self.keep_samples,
            "sample_terms needs every layer's input and output gradient, or kept terms"
        );
        let n = self.acts[0].batch();
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.params().is_empty() {
                continue;
            }
            let mut terms = SampleTerms {
                sq: vec![0.0; n],
                dot: vec![0.0; if dots { n } else { 0 }],
            };
            let dot = dots.then_some(&mut terms.dot[..]);
            if !layer.sample_terms(&self.acts[i], &self.grads[i + 1], &mut terms.sq, dot) {
                return Err(format!(
                    "{} ({}) cannot split its gradient by sample",
                    self.names[i],
                    layer.describe()
                ));
            }
            out.push(terms);
        }
        Ok(out)
    }

    /// Asks every layer to keep, in the following backward passes, what
    /// [`Network::sample_terms`] would otherwise compute again ([`Layer::keep_sample_grads`]);
    /// changes no result of the passes.
    pub fn keep_sample_grads(&mut self, on: bool) {
        self.keep_samples = on;
        for layer in &mut self.layers {
            layer.keep_sample_grads(on);
        }
    }

    /// Whether the layers keep what [`Network::sample_terms`] needs
    /// ([`Network::keep_sample_grads`]).
    pub fn keeps_sample_grads(&self) -> bool {
        self.keep_samples
    }

    /// The layers whose units [`Network::unit_stats`] describes, in order: activations and
    /// batch normalization, with their names.
    pub fn unit_layers(&self) -> Vec<(String, UnitKind)> {
        (self.names.iter().zip(&self.layers))
            .filter_map(|(name, layer)| Some((name.clone(), unit_kind(&**layer)?)))
            .collect()
    }

    /// What the units of each of [`Network::unit_layers`] did in the last forward pass, which
    /// must have run with folding off, or with the layers keeping what they skip
    /// ([`Network::keep_sample_grads`]): for a ReLU, each unit of a sample (output position)
    /// and whether it was zero for every sample of the batch; for a tanh, how many of its
    /// outputs were saturated (|y| at least 0.99 of its bound) of how many; for batch
    /// normalization, the mean over channels of the batch mean's magnitude and of the batch's
    /// standard deviation (the statistics it normalised with).
    pub fn unit_stats(&self) -> Vec<UnitStats> {
        assert!(
            !self.fold_relu || self.keep_samples,
            "unit_stats needs every layer's output, or kept units"
        );
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let y = &self.acts[i + 1];
            match unit_kind(&**layer) {
                Some(UnitKind::Relu) => {
                    let silent = self.relu_silent(i);
                    out.push(UnitStats::Relu { silent });
                }
                Some(UnitKind::Tanh { bound }) => {
                    let saturated = y.data.iter().filter(|v| v.abs() >= 0.99 * bound).count();
                    out.push(UnitStats::Tanh {
                        saturated,
                        outputs: y.len(),
                    });
                }
                Some(UnitKind::BatchNorm) => {
                    let bn = (layer.as_any().downcast_ref::<BatchNorm>()).expect("a batch norm");
                    let (mean, inv_std) = bn.statistics();
                    let c = mean.len().max(1) as f64;
                    out.push(UnitStats::BatchNorm {
                        mean_abs: mean.iter().map(|m| m.abs() as f64).sum::<f64>() / c,
                        std: inv_std.iter().map(|s| 1.0 / *s as f64).sum::<f64>() / c,
                    });
                }
                None => {}
            }
        }
        out
    }

    /// For the ReLU at layer `i`, from the last forward pass: whether each unit's output was
    /// zero for every sample. Read from its output where its stage wrote it; from its input
    /// (zero out exactly where the input is at most zero: a NaN passes) where a pooling ran
    /// it; from the convolution's marks where the convolution ran it in its own pass.
    fn relu_silent(&self, i: usize) -> Vec<bool> {
        let stage = (self.stages.iter()).find(|s| s.layers().contains(&i));
        let (values, zero): (&Tensor, fn(f32) -> bool) = match stage {
            Some(Stage::ReluMaxPool { .. }) => (&self.acts[i], |v| v <= 0.0),
            Some(Stage::ConvReluMaxPool { conv, one_pass }) => {
                if one_pass.0 {
                    let conv = (self.layers[*conv].as_any().downcast_ref::<Conv2d>())
                        .expect("the plan checked the layer's type");
                    return (conv.relu_silent())
                        .expect("a convolution run with its ReLU keeps its units");
                }
                (&self.acts[i], |v| v <= 0.0)
            }
            _ => (&self.acts[i + 1], |v| v == 0.0),
        };
        let per = values.item_len();
        let mut silent = vec![true; per];
        for sample in values.data.chunks_exact(per.max(1)) {
            for (s, &v) in silent.iter_mut().zip(sample) {
                *s &= zero(v);
            }
        }
        silent
    }

    /// Whether a ReLU runs folded into the layers around it ([`Network::set_fold_relu`]).
    pub fn fold_relu(&self) -> bool {
        self.fold_relu
    }

    /// Starts (or stops) timing each stage's passes; timings accumulate until taken.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![(0.0, 0.0); self.stages.len()]);
    }

    /// Per stage of the plan: (its layers' names, their descriptions, forward seconds,
    /// backward seconds) since profiling started or was last taken; the counters restart at
    /// zero.
    pub fn take_profile(&mut self) -> Vec<(String, String, f64, f64)> {
        let Some(p) = self.profile.as_mut() else {
            return Vec::new();
        };
        let out = (self.stages.iter().zip(p.iter()))
            .map(|(stage, &(f, b))| {
                let names: Vec<&str> = stage.layers().map(|i| self.names[i].as_str()).collect();
                (names.join(" + "), stage.describe(&self.layers), f, b)
            })
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

    /// The second-order pass of LeCun et al. (1998, appendix C) on the input buffer: every
    /// layer's own forward pass in `ctx`'s mode (layer by layer, none folded into another,
    /// since the second derivatives need every layer's output), the criterion's second
    /// derivatives of `scale` times the batch's summed loss at the output
    /// ([`Criterion::curvature`]; for the MAP criterion over an RBF output, at the RBF's
    /// input, [`Rbf::map_curvature`]), then every layer's [`Layer::backward_curvature`] from
    /// there to the first. Each parameter's Gauss–Newton diagonal is added to its
    /// [`Param::curvature`] (which [`Network::zero_curvature`] clears), as a backward pass adds
    /// to the gradients. The second derivatives do not depend on the labels.
    pub fn backward_curvature(&mut self, ctx: &mut Context, scale: f32) {
        let count = self.layers.len();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            after[0].resize(&layer.output_shape(&before[i].shape));
            layer.forward(&before[i], &mut after[0], ctx);
        }
        let output = &self.acts[count];
        // The MAP criterion over an RBF output is a loss of the RBF's inputs with an exact
        // second derivative of its own (the RBF has no parameters): the pass starts there.
        let rbf = (self.layers.last()).and_then(|l| l.as_any().downcast_ref::<Rbf>());
        let start = match (self.criterion, rbf) {
            (Criterion::Map { j }, Some(rbf)) => {
                let d2 = &mut self.grads[count - 1];
                d2.resize(&self.acts[count - 1].shape);
                rbf.map_curvature(&self.acts[count - 1], output, j, d2, scale);
                count - 1
            }
            _ => {
                let d2 = &mut self.grads[count];
                d2.resize(&output.shape);
                self.criterion.curvature(output, d2, scale);
                count
            }
        };
        for (i, layer) in self.layers[..start].iter_mut().enumerate().rev() {
            let (below, above) = self.grads.split_at_mut(i + 1);
            let d2x = (i > 0).then(|| {
                below[i].resize(&self.acts[i].shape);
                &mut below[i]
            });
            layer.backward_curvature(&self.acts[i], &self.acts[i + 1], &above[0], d2x);
        }
    }

    /// Sets every parameter's accumulated Gauss–Newton diagonal to zero.
    pub fn zero_curvature(&mut self) {
        self.for_each_param(&mut |_, p| p.curvature.fill(0.0));
    }

    /// Visits every parameter in a fixed order with its full `state_dict` name.
    pub fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        let mut full_names = self.param_names.iter();
        for layer in self.layers.iter_mut() {
            for p in layer.params_mut() {
                f(full_names.next().expect("a name per parameter"), p);
            }
        }
    }

    /// Every parameter with its full name, in the order of [`Network::for_each_param`].
    pub fn params(&self) -> Vec<(String, &Param)> {
        let params = self.layers.iter().flat_map(|layer| layer.params());
        self.param_names.iter().cloned().zip(params).collect()
    }

    /// Trainable parameter count (frozen zeros of sparse connection tables excluded).
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|(_, p)| p.trainable_len()).sum()
    }

    /// The fixed prototypes `[classes, inputs]` of an RBF output layer, if the network ends
    /// in one: what its scores are distances to.
    pub fn prototypes(&self) -> Option<&Tensor> {
        let rbf = (self.layers.last()).and_then(|l| l.as_any().downcast_ref::<Rbf>());
        rbf.map(|r| &r.prototypes)
    }

    /// Layer by layer: name, description, per-sample output shape and parameter count.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let mut shape: Vec<usize> = std::iter::once(1)
            .chain(self.input_shape.iter().copied())
            .collect();
        let mut rows = Vec::new();
        for (name, layer) in self.names.iter().zip(&self.layers) {
            let connections = layer.connections(&shape);
            shape = layer.output_shape(&shape);
            rows.push(LayerSummary {
                name: name.clone(),
                kind: layer.kind(),
                layer: layer.describe(),
                output_shape: shape[1..].to_vec(),
                params: layer.params().iter().map(|p| p.trainable_len()).sum(),
                connections,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::cross_entropy;
    use crate::nn::{BatchNormAt, Mode, ModelConfig};
    use crate::rng::Rng;

    /// Forward, loss and backward with the ReLUs folded into the pooling layers (and the
    /// convolutions running their ReLU and pooling in their own passes) or not: the logits, every parameter gradient and the input gradient agree bit
    /// for bit.
    #[test]
    fn folding_relu_into_pooling_changes_nothing() {
        let bn_dropout = ModelConfig {
            batch_norm: BatchNormAt::First,
            dropout: 0.3,
            ..Default::default()
        };
        for config in [bn_dropout, ModelConfig::default()] {
            folding_changes_nothing(&config);
        }
    }

    /// [`Network::forward_each`] gives every batch the output the network's own forward pass
    /// gives in evaluation mode, bit for bit, with one thread (one replica, the layers spread
    /// as usual) and two (the batches spread over two replicas), and still after the
    /// parameters and the batch-norm statistics changed between calls.
    #[test]
    fn forward_each_matches_forward() {
        let bn_dropout = ModelConfig {
            batch_norm: BatchNormAt::All,
            dropout: 0.3,
            ..Default::default()
        };
        for config in [bn_dropout, ModelConfig::default()] {
            let mut data = Rng::new(9);
            let batches: Vec<Tensor> = [5, 2, 5, 1, 3]
                .iter()
                .map(|&n| {
                    let x = (0..n * 32 * 32).map(|_| data.uniform_range(-1.0, 2.0));
                    Tensor::from_vec(&[n, 1, 32, 32], x.collect())
                })
                .collect();
            let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
            let mut net = config.build(&mut Rng::new(11));
            for round in 0..2 {
                let mut rng = Rng::new(2);
                let expected: Vec<Vec<u32>> = (batches.iter())
                    .map(|x| {
                        *net.input_mut() = x.clone();
                        let mode = Mode::Eval;
                        bits(net.forward(&mut Context {
                            mode,
                            rng: &mut rng,
                        }))
                    })
                    .collect();
                for threads in [1, 2] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let got: Vec<std::sync::OnceLock<Vec<u32>>> =
                        batches.iter().map(|_| Default::default()).collect();
                    pool.install(|| {
                        net.forward_each(
                            batches.len(),
                            |b, input| *input = batches[b].clone(),
                            |b, output| got[b].set(bits(output)).unwrap(),
                        )
                    });
                    let got: Vec<Vec<u32>> =
                        got.into_iter().map(|g| g.into_inner().unwrap()).collect();
                    assert_eq!(
                        got, expected,
                        "{config:?}, round {round}, {threads} threads"
                    );
                }
                // New parameters, and (with batch norm) new running statistics, for round 1.
                net.for_each_param(&mut |_, p| p.value.data.iter_mut().for_each(|v| *v *= 0.75));
                *net.input_mut() = batches[0].clone();
                let mode = Mode::Train;
                net.forward(&mut Context {
                    mode,
                    rng: &mut rng,
                });
            }
        }
    }

    /// The evaluation replicas are bounded by the batches and by [`MAX_REPLICAS`], never by
    /// the thread count alone (with a replica per thread, each copying the per-thread scratch
    /// of the convolutions, memory grew with the square of the thread count).
    #[test]
    fn replicas_are_bounded_by_the_work() {
        let mut net = ModelConfig::default().build(&mut Rng::new(3));
        let labels = [1u8; 8];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(24)
            .build()
            .unwrap();
        pool.install(|| {
            // A training step first, so the convolutions' per-thread scratch is sized.
            *net.input_mut() = Tensor::from_vec(&[8, 1, 32, 32], vec![0.5; 8 * 1024]);
            net.forward(&mut Context {
                mode: Mode::Train,
                rng: &mut Rng::new(1),
            });
            let (out, grad) = net.output_and_grad_mut();
            cross_entropy(out, &labels, Some((grad, 1.0 / 8.0)));
            net.backward(false);
            for (batches, replicas) in [(3, 3), (40, MAX_REPLICAS)] {
                let x = Tensor::from_vec(&[2, 1, 32, 32], vec![0.25; 2 * 1024]);
                net.forward_each(batches, |_, input| *input = x.clone(), |_, _| {});
                assert_eq!(net.replicas.len(), replicas, "{batches} batches");
            }
        });
    }

    fn folding_changes_nothing(config: &ModelConfig) {
        let fusing = crate::simd::available();
        let mut data = Rng::new(5);
        let input: Vec<f32> = (0..6 * 32 * 32)
            .map(|_| data.uniform_range(-1.0, 2.0))
            .collect();
        let labels = [3u8, 1, 4, 1, 5, 9];
        let run = |fold: bool, mode: Mode, input_grad: bool| {
            let mut net = config.build(&mut Rng::new(11));
            net.set_fold_relu(fold);
            *net.input_mut() = Tensor::from_vec(&[6, 1, 32, 32], input.clone());
            net.zero_grad();
            net.forward(&mut Context {
                mode,
                rng: &mut Rng::new(2),
            });
            let one_pass = |net: &Network, backward: bool| {
                (net.stages().iter())
                    .filter(|s| match s {
                        Stage::ConvReluMaxPool { one_pass, .. } => {
                            if backward {
                                one_pass.1
                            } else {
                                one_pass.0
                            }
                        }
                        _ => false,
                    })
                    .count()
            };
            let folded = net.stages().len() < net.layer_names().len();
            assert_eq!(folded, fold);
            // Both convolutions pool in their own pass where the kernels run.
            assert_eq!(one_pass(&net, false), 2 * (fold && fusing) as usize);
            let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
            let logits = bits(net.output());
            let (out, grad) = net.output_and_grad_mut();
            cross_entropy(out, &labels, Some((grad, 1.0 / 6.0)));
            net.backward(input_grad);
            // Both convolutions make their output gradient from the pooling's in their own
            // pass, but the first when the input's gradient is asked for.
            let fused_layers = if input_grad { 1 } else { 2 };
            assert_eq!(
                one_pass(&net, true),
                fused_layers * (fold && fusing) as usize
            );
            let grads: Vec<Vec<u32>> = net.params().iter().map(|(_, p)| bits(&p.grad)).collect();
            (logits, grads, input_grad.then(|| bits(net.input_grad())))
        };
        for mode in [Mode::Train, Mode::Eval] {
            for input_grad in [true, false] {
                let (folded, plain) = (run(true, mode, input_grad), run(false, mode, input_grad));
                if let Some(dx) = &folded.2 {
                    assert!(dx.iter().any(|&g| f32::from_bits(g) != 0.0));
                }
                assert_eq!(folded, plain, "{mode:?}, input gradient {input_grad}");
            }
        }
    }
}
