//! Per-step instruments: what happens inside an epoch, step by step, written to
//! `instruments.csv` in the run directory. They observe and never change training: they read
//! the gradients after the backward pass and the parameters before and after the update.
//!
//! The cheap set (`--instruments cheap`), from what a step computes anyway, at every
//! `--instruments-every` K-th step: the batch's mean loss, the learning rate, the norms of
//! the whole gradient, of all parameters and of their distance from the initial weights, and
//! per layer (the parameters of one module, weight and bias together) the gradient norm, the
//! update norm ||p_after - p_before|| and the update-to-weight ratio
//! ||p_after - p_before|| / ||p_before||.
//!
//! The noise set (`--instruments noise`) adds, on the same rows, what the spread of the
//! per-sample gradients g_n says about the step's mini-batch gradient G (their mean): the
//! columns of [`NOISE_COLUMNS`] and each layer's signal-to-noise ratio |G_l|^2 / (tr(Sigma_l)
//! / B), the squared norm of its gradient over the variance of its mini-batch estimate. Each
//! sample's gradient is not computed again: every layer gives, from the step's own backward
//! pass, the squared norm of each sample's term and its inner product with G
//! ([`crate::nn::Network::sample_terms`]), and these are all the sums need. A dense layer
//! computes them from its input and output gradient; a convolution on the direct kernels
//! keeps, while the step's backward pass adds its samples one after the other, the change
//! each made to the kernel's running sums ([`crate::nn::Network::keep_sample_grads`], asked
//! for on recorded steps only). With them, from the same step, what the units did: per ReLU
//! layer the fraction of its units (output positions) that were zero for every sample of
//! the batch (dead for it), per tanh layer the fraction of its outputs within 1% of its
//! bound (saturated), per batch normalization the mean over channels of the batch mean's
//! magnitude and of the batch's standard deviation. (Issue 31 lists these with the cheap
//! set; a ReLU that runs inside a convolution's folded pass has no output in memory, and its
//! convolution marks the units that fired only when asked, so they come with the noise set.)
//! The recorded step keeps the folded passes of an ordinary one: the same bits, at about
//! 1.25 times its cost (BENCHMARKS.md).
//!
//! The curvature set (`--instruments curvature`) adds, on the same rows, the extreme
//! eigenvalues of the Hessian of the step's batch loss at the weights the step is taken from
//! ([`crate::nn::hessian`]): the largest, the sharpness, to set against 2/lr (Cohen et al.
//! 2021's edge of stability), the smallest, and the Hessian-vector products they took. The
//! Lanczos method runs until the sharpness's residual is below [`SHARPNESS_TOLERANCE`] of it
//! or to [`SHARPNESS_PRODUCTS`] products, starting from the last recorded step's top eigenvector
//! within an epoch, from a vector drawn from the step number at an epoch's first: a run
//! resumed from its epoch checkpoint so computes what a straight one does. It also records
//! the trace of the batch loss's Gauss–Newton matrix, exactly, from one backward pass per
//! class ([`crate::nn::hessian::gauss_newton_trace`]): the sum of all its eigenvalues beside
//! the Hessian's largest. Its passes run in training mode (batch statistics; dropout masks
//! drawn from the step number, not from the run's dropout stream).
//!
//! Sums of squares are taken in f64 (the gradient's and the per-sample terms' from f32
//! products summed in short f32 runs first, [`crate::nn::layer::square_and_dot`]), over tasks
//! of a fixed split that the threads share and added in task order, so the file does not
//! depend on the thread count; and it holds no timing: a paused and resumed run writes the
//! same file as one that ran straight through.

use serde::{Deserialize, Serialize};

use crate::nn::hessian::{Batch, Passes, extreme_eigenvalues, gauss_newton_trace};
use crate::nn::network::{UnitKind, UnitStats};
use crate::nn::{Mode, Network};
use crate::parallel::{SharedMut, for_each_chunk};

/// Values of one parameter a task of a recorded step sums over.
const TASK: usize = 8192;

/// One task: `len` values of parameter `param` from `start`, at `offset` in the flat copies.
struct Task {
    param: usize,
    start: usize,
    len: usize,
    offset: usize,
}

/// Which instruments a run records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InstrumentSet {
    /// None (the default).
    #[default]
    None,
    /// Loss, learning rate, gradient, update and parameter norms per layer, distance from the
    /// initial weights: from what each step computes anyway.
    Cheap,
    /// The cheap set, and the gradient noise from per-sample gradients: their norms, the
    /// variance of the mini-batch gradient, the gradient noise scale, the norm, inner-product
    /// and orthogonality tests, and the signal-to-noise ratio per layer.
    Noise,
    /// The cheap set, and the sharpness of the step's batch loss (the Hessian's largest
    /// eigenvalue) and its smallest, by the Lanczos method on Hessian-vector products:
    /// costly, every K steps.
    Curvature,
    /// The cheap, noise and curvature sets.
    All,
}

impl InstrumentSet {
    fn noise(self) -> bool {
        matches!(self, InstrumentSet::Noise | InstrumentSet::All)
    }

    fn curvature(self) -> bool {
        matches!(self, InstrumentSet::Curvature | InstrumentSet::All)
    }
}

/// The Lanczos method's stopping rule: the sharpness's residual ||Hx - θx|| below this
/// fraction of θ...
pub const SHARPNESS_TOLERANCE: f64 = 1e-3;
/// ...or this many Hessian-vector products (each two forward and backward passes).
pub const SHARPNESS_PRODUCTS: usize = 20;

/// The noise set's columns: the mean and largest per-sample gradient norm |g_n|; the trace of
/// the per-sample gradients' covariance tr(Sigma) (its unbiased estimate); the variance of the
/// mini-batch gradient tr(Sigma) / B; the unbiased estimate of the true gradient's squared norm
/// |G|^2 - tr(Sigma) / B; the gradient noise scale tr(Sigma) / that (McCandlish et al. 2018's
/// B_simple, negative where the batch cannot tell the gradient from noise); and the largest
/// theta for which Byrd et al. (2012)'s norm test, Bollapragada et al. (2018)'s inner-product
/// test and their orthogonality test pass (Cockpit's definitions; the last two need the whole
/// batch in one chunk of at most 256 samples, and are NaN otherwise). A batch of one sample
/// has no spread: its values past the norms are NaN.
pub const NOISE_COLUMNS: [&str; 9] = [
    "sample_grad_norm",
    "sample_grad_norm_max",
    "trace_covariance",
    "grad_variance",
    "true_grad_sq",
    "noise_scale",
    "norm_test",
    "inner_product_test",
    "orthogonality_test",
];

/// The instruments' file in a run directory.
pub const INSTRUMENTS: &str = "instruments.csv";

/// Records the instruments of a run's steps.
pub struct Recorder {
    every: usize,
    /// The layers (module names) and, for each parameter in order, its layer's index.
    layers: Vec<String>,
    layer_of: Vec<usize>,
    /// The recorded step's work, split in tasks of at most [`TASK`] values of one parameter,
    /// so the team shares it; the split depends on the network only, so the sums do not
    /// depend on the thread count.
    tasks: Vec<Task>,
    /// The initial weights, for the distance from them, and the weights before this step's
    /// update: every parameter's values one after the other.
    initial: Vec<f32>,
    before: Vec<f32>,
    /// Each task's gradient sum of squares, and its four sums of [`squares`].
    grad_parts: Vec<f64>,
    parts: Vec<[f64; 4]>,
    /// Gradient sums of squares of the step being recorded, per layer.
    grad_sq: Vec<f64>,
    /// The curvature set, when recorded: the last estimate's eigenvector and its epoch (a
    /// warm start within the epoch), and the sharpness measured for the row being recorded.
    curvature: Option<Curvature>,
    /// The noise set, when recorded: the recorded step's per-sample sums.
    noise: Option<Noise>,
    /// The layers the noise set describes the units of ([`Network::unit_layers`]).
    unit_layers: Vec<(String, UnitKind)>,
    /// One row per recorded step: epoch, step, then [`Recorder::header`]'s values.
    pub rows: Vec<Vec<f64>>,
}

/// The noise set's sums over the samples of the step being recorded, each sample's gradient
/// g_n being the gradient of its own loss (B times its term of the mean loss's gradient G,
/// [`crate::nn::Network::sample_terms`]).
#[derive(Default)]
struct Noise {
    /// The step's samples B, and whether they went through the network in one chunk (the
    /// inner products with G need the whole G when each sample's term is at hand).
    samples: usize,
    whole: bool,
    /// Per layer, the sum over the samples of |g_n|^2 (that layer's part).
    sq: Vec<f64>,
    /// The sum of |g_n|, its largest, and the sum of (g_n . G)^2.
    norm_sum: f64,
    norm_max: f64,
    dot_sq: f64,
    /// Per unit layer ([`Network::unit_layers`]), over the step's chunks: a ReLU's units
    /// silent for every sample so far; a tanh's saturated outputs and outputs; batch norm's
    /// summed statistics and the chunks they came from.
    units: Vec<Units>,
}

impl Noise {
    /// Sums at zero for a step of `samples` samples (`whole`: in one chunk) of a network with
    /// `layers` layers with parameters and these unit layers.
    fn fresh(samples: usize, whole: bool, layers: usize, units: &[(String, UnitKind)]) -> Noise {
        Noise {
            samples,
            whole,
            sq: vec![0.0; layers],
            units: units.iter().map(|(_, k)| Units::of(*k)).collect(),
            ..Noise::default()
        }
    }
}

/// One unit layer's sums over a recorded step's chunks.
#[derive(Clone, Debug, PartialEq)]
enum Units {
    Relu(Vec<bool>),
    Tanh(usize, usize),
    BatchNorm(f64, f64, usize),
}

impl Units {
    fn of(kind: UnitKind) -> Units {
        match kind {
            UnitKind::Relu => Units::Relu(Vec::new()),
            UnitKind::Tanh { .. } => Units::Tanh(0, 0),
            UnitKind::BatchNorm => Units::BatchNorm(0.0, 0.0, 0),
        }
    }

    fn add(&mut self, stats: &UnitStats) {
        match (self, stats) {
            (Units::Relu(all), UnitStats::Relu { silent }) => {
                if all.is_empty() {
                    all.clone_from(silent);
                } else {
                    all.iter_mut().zip(silent).for_each(|(a, s)| *a &= s);
                }
            }
            (Units::Tanh(sat, out), UnitStats::Tanh { saturated, outputs }) => {
                *sat += saturated;
                *out += outputs;
            }
            (Units::BatchNorm(m, s, n), UnitStats::BatchNorm { mean_abs, std }) => {
                *m += mean_abs;
                *s += std;
                *n += 1;
            }
            _ => unreachable!("the network's unit layers do not change"),
        }
    }

    /// The layer's columns' values: the fraction of dead (or saturated) units, or batch
    /// norm's two statistics.
    fn values(&self) -> Vec<f64> {
        match self {
            Units::Relu(all) => {
                let dead = all.iter().filter(|&&s| s).count();
                vec![dead as f64 / all.len().max(1) as f64]
            }
            Units::Tanh(sat, out) => vec![*sat as f64 / (*out).max(1) as f64],
            Units::BatchNorm(m, s, n) => vec![m / *n as f64, s / *n as f64],
        }
    }
}

/// The curvature set's state between recorded steps.
#[derive(Default)]
struct Curvature {
    warm: Option<(usize, Vec<f32>)>,
    measured: Option<[f64; 4]>,
}

impl Recorder {
    /// A recorder of `set` at every `every`-th step of `net`, whose weights now are the
    /// initial ones.
    pub fn new(net: &Network, set: InstrumentSet, every: usize) -> Recorder {
        let params = net.params();
        let mut layers: Vec<String> = Vec::new();
        let mut layer_of = Vec::new();
        for (name, _) in &params {
            let module = name.rsplit_once('.').map_or(name.as_str(), |(m, _)| m);
            if layers.last().map(String::as_str) != Some(module) {
                layers.push(module.to_string());
            }
            layer_of.push(layers.len() - 1);
        }
        let mut tasks = Vec::new();
        let mut offset = 0;
        for (param, (_, p)) in params.iter().enumerate() {
            let n = p.value.len();
            for start in (0..n).step_by(TASK) {
                let len = TASK.min(n - start);
                tasks.push(Task {
                    param,
                    start,
                    len,
                    offset: offset + start,
                });
            }
            offset += n;
        }
        let initial: Vec<f32> = (params.iter())
            .flat_map(|(_, p)| p.value.data.iter().copied())
            .collect();
        let unit_layers = if set.noise() {
            net.unit_layers()
        } else {
            Vec::new()
        };
        let noise = set
            .noise()
            .then(|| Noise::fresh(0, false, layers.len(), &unit_layers));
        Recorder {
            every: every.max(1),
            before: vec![0.0; initial.len()],
            initial,
            grad_parts: vec![0.0; tasks.len()],
            parts: vec![[0.0; 4]; tasks.len()],
            tasks,
            grad_sq: vec![0.0; layers.len()],
            layers,
            layer_of,
            noise,
            unit_layers,
            curvature: set.curvature().then(Curvature::default),
            rows: Vec::new(),
        }
    }

    /// The file's columns.
    pub fn header(&self) -> String {
        let mut cols: Vec<String> = [
            "epoch",
            "step",
            "loss",
            "lr",
            "grad_norm",
            "param_norm",
            "distance_from_init",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for what in ["grad_norm", "update_norm", "update_ratio"] {
            cols.extend(self.layers.iter().map(|l| format!("{what}/{l}")));
        }
        if self.noise.is_some() {
            cols.extend(NOISE_COLUMNS.map(String::from));
            cols.extend(self.layers.iter().map(|l| format!("snr/{l}")));
            for (name, kind) in &self.unit_layers {
                match kind {
                    UnitKind::Relu => cols.push(format!("dead/{name}")),
                    UnitKind::Tanh { .. } => cols.push(format!("saturated/{name}")),
                    UnitKind::BatchNorm => {
                        cols.extend([format!("bn_mean/{name}"), format!("bn_std/{name}")])
                    }
                }
            }
        }
        if self.curvature.is_some() {
            let names = [
                "sharpness",
                "smallest_eigenvalue",
                "hessian_products",
                "gauss_newton_trace",
            ];
            cols.extend(names.map(String::from));
        }
        cols.join(",")
    }

    /// Whether global step `step` (from 1) is recorded.
    pub fn records(&self, step: usize) -> bool {
        step.is_multiple_of(self.every)
    }

    /// Before the update of a recorded step: the gradients' norms and a copy of the weights.
    pub fn before_update(&mut self, net: &Network) {
        let params = net.params();
        let (values, grads): (Vec<&[f32]>, Vec<&[f32]>) = (params.iter())
            .map(|(_, p)| (&p.value.data[..], &p.grad.data[..]))
            .unzip();
        let tasks = &self.tasks;
        let (before, parts) = (
            SharedMut::new(&mut self.before),
            SharedMut::new(&mut self.grad_parts),
        );
        for_each_chunk(tasks.len(), 1, |t, _, _| {
            let task = &tasks[t];
            let range = task.start..task.start + task.len;
            // SAFETY: task t alone writes part t and its own range of the copy.
            unsafe {
                parts.range(t, 1)[0] = sum_sq(&grads[task.param][range.clone()]);
                (before.range(task.offset, task.len)).copy_from_slice(&values[task.param][range]);
            }
        });
        self.grad_sq.iter_mut().for_each(|s| *s = 0.0);
        for (task, part) in self.tasks.iter().zip(&self.grad_parts) {
            self.grad_sq[self.layer_of[task.param]] += part;
        }
    }

    /// Whether the rows hold the noise set, whose per-sample sums
    /// [`Recorder::add_sample_terms`] takes after each chunk's backward pass of a recorded
    /// step, run with the layers keeping their per-sample terms
    /// ([`crate::nn::Network::keep_sample_grads`]).
    pub fn measures_noise(&self) -> bool {
        self.noise.is_some()
    }

    /// Before a recorded step of `samples` samples, `whole` when they go through the network
    /// in one chunk: the noise set's sums start at zero.
    pub fn begin_noise(&mut self, samples: usize, whole: bool) {
        if let Some(noise) = &mut self.noise {
            *noise = Noise::fresh(samples, whole, noise.sq.len(), &self.unit_layers);
        }
    }

    /// After a chunk's backward pass of a recorded step (folding off, or the layers keeping
    /// their per-sample terms): adds its samples' gradients to the noise set's sums.
    pub fn add_sample_terms(&mut self, net: &Network) -> Result<(), String> {
        let Some(noise) = &mut self.noise else {
            return Ok(());
        };
        let terms = net.sample_terms(noise.whole)?;
        for (units, stats) in noise.units.iter_mut().zip(net.unit_stats()) {
            units.add(&stats);
        }
        let b = noise.samples as f64;
        let n = terms.first().map_or(0, |t| t.sq.len());
        for i in 0..n {
            let (mut sq, mut dot) = (0.0, 0.0);
            for (l, t) in terms.iter().enumerate() {
                let own = b * b * t.sq[i];
                noise.sq[l] += own;
                sq += own;
                dot += t.dot.get(i).map_or(0.0, |d| b * d);
            }
            noise.norm_sum += sq.sqrt();
            noise.norm_max = noise.norm_max.max(sq.sqrt());
            noise.dot_sq += dot * dot;
        }
        Ok(())
    }

    /// The noise set's values of the step, from its sums and the gradient's norms per layer
    /// ([`NOISE_COLUMNS`], then the signal-to-noise ratio per layer).
    fn noise_values(&self, noise: &Noise) -> Vec<f64> {
        let b = noise.samples as f64;
        let g2: f64 = self.grad_sq.iter().sum();
        // Per layer, the trace of the per-sample gradients' sample covariance:
        // (sum_n |g_n|^2 - B |G|^2) / (B - 1).
        let traces: Vec<f64> = (noise.sq.iter().zip(&self.grad_sq))
            .map(|(sq, g)| (sq - b * g) / (b - 1.0))
            .collect();
        let trace: f64 = traces.iter().sum();
        let sum_sq: f64 = noise.sq.iter().sum();
        // |G|^2 overestimates the squared norm of the true gradient by the mini-batch
        // gradient's variance tr(Sigma) / B: McCandlish et al.'s unbiased estimate takes it off.
        let true_sq = g2 - trace / b;
        let (inner, orthogonal) = if noise.whole {
            let projections = (noise.dot_sq - b * g2 * g2) / (b - 1.0);
            let rejections = (sum_sq - noise.dot_sq / g2) / (b - 1.0);
            (
                (projections / b / (g2 * g2)).sqrt(),
                (rejections / b / g2).sqrt(),
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        let mut values = vec![
            noise.norm_sum / b,
            noise.norm_max,
            trace,
            trace / b,
            true_sq,
            trace / true_sq,
            (trace / b / g2).sqrt(),
            inner,
            orthogonal,
        ];
        values.extend((self.grad_sq.iter().zip(&traces)).map(|(g, t)| g / (t / b)));
        if noise.samples < 2 {
            // One sample has no spread: every value past its norm is undefined.
            values[2..].iter_mut().for_each(|v| *v = f64::NAN);
        }
        values.extend(noise.units.iter().flat_map(Units::values));
        values
    }

    /// Whether the rows hold the curvature set, which [`Recorder::measure_curvature`]
    /// measures before the update.
    pub fn measures_curvature(&self) -> bool {
        self.curvature.is_some()
    }

    /// Before the update of recorded step `step` (global, from 1) of `epoch` (from 1): the
    /// extreme Hessian eigenvalues of `batch`'s loss at the current weights, and the trace of
    /// its Gauss–Newton matrix. `net` comes back
    /// as it was.
    pub fn measure_curvature(
        &mut self,
        net: &mut Network,
        batch: &Batch,
        epoch: usize,
        step: usize,
    ) -> Result<(), String> {
        let Some(c) = &mut self.curvature else {
            return Ok(());
        };
        let start = (c.warm.take()).and_then(|(e, v)| (e == epoch).then_some(v));
        let passes = Passes {
            mode: Mode::Train,
            seed: step as u64,
        };
        let found = extreme_eigenvalues(
            net,
            batch,
            passes,
            start,
            SHARPNESS_PRODUCTS,
            SHARPNESS_TOLERANCE,
        );
        let trace = gauss_newton_trace(net, batch, passes)?;
        c.measured = Some([found.largest, found.smallest, found.products as f64, trace]);
        c.warm = Some((epoch, found.vector));
        Ok(())
    }

    /// After the update of a recorded step: the row of `epoch` (from 1) and global `step`.
    pub fn after_update(&mut self, net: &Network, epoch: usize, step: usize, loss: f64, lr: f64) {
        let params = net.params();
        let values: Vec<&[f32]> = params.iter().map(|(_, p)| &p.value.data[..]).collect();
        let (tasks, before, initial) = (&self.tasks, &self.before, &self.initial);
        let parts = SharedMut::new(&mut self.parts);
        for_each_chunk(tasks.len(), 1, |t, _, _| {
            let task = &tasks[t];
            let own = task.offset..task.offset + task.len;
            let now = &values[task.param][task.start..task.start + task.len];
            // SAFETY: task t alone writes part t.
            unsafe { parts.range(t, 1)[0] = squares(now, &before[own.clone()], &initial[own]) };
        });
        let n = self.layers.len();
        let (mut update_sq, mut before_sq) = (vec![0.0; n], vec![0.0; n]);
        let (mut param_sq, mut distance_sq) = (0.0, 0.0);
        for (task, [update, before, now, distance]) in self.tasks.iter().zip(&self.parts) {
            let layer = self.layer_of[task.param];
            update_sq[layer] += update;
            before_sq[layer] += before;
            param_sq += now;
            distance_sq += distance;
        }
        let mut row = vec![
            epoch as f64,
            step as f64,
            loss,
            lr,
            self.grad_sq.iter().sum::<f64>().sqrt(),
            param_sq.sqrt(),
            distance_sq.sqrt(),
        ];
        row.extend(self.grad_sq.iter().map(|s| s.sqrt()));
        row.extend(update_sq.iter().map(|s| s.sqrt()));
        row.extend((update_sq.iter().zip(&before_sq)).map(|(u, b)| u.sqrt() / b.sqrt()));
        if let Some(noise) = &self.noise {
            row.extend(self.noise_values(noise));
        }
        if let Some(c) = &mut self.curvature {
            row.extend(
                c.measured
                    .take()
                    .unwrap_or([f64::NAN, f64::NAN, 0.0, f64::NAN]),
            );
        }
        self.rows.push(row);
    }

    /// The rows as CSV, with the header; numbers in their shortest exact form.
    pub fn to_csv(&self) -> String {
        let mut out = self.header() + "\n";
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            out += &cells.join(",");
            out.push('\n');
        }
        out
    }

    /// Takes back the rows of a file this recorder's run wrote, up to epoch `epochs`: a
    /// resumed run goes on from its checkpoint. A file of other columns is an error.
    pub fn restore(&mut self, csv: &str, epochs: usize) -> Result<(), String> {
        let mut lines = csv.lines();
        if lines.next() != Some(self.header().as_str()) {
            return Err(format!(
                "{INSTRUMENTS} has other columns than this run records"
            ));
        }
        self.rows.clear();
        for line in lines {
            let row: Vec<f64> = (line.split(',').map(str::parse))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{INSTRUMENTS}: {e} in '{line}'"))?;
            if row.first().is_some_and(|&e| e <= epochs as f64) {
                self.rows.push(row);
            }
        }
        Ok(())
    }
}

/// Lanes of the sums of squares: independent partial sums, so the additions do not wait for
/// each other and vectorise (one running sum made the cheap set cost a third of an epoch).
/// The lanes are added in a fixed order, so the result does not depend on anything but the
/// values.
const LANES: usize = 8;

/// The sum of the squares of `a` ([`crate::nn::layer::square_and_dot`]).
fn sum_sq(a: &[f32]) -> f64 {
    crate::nn::layer::square_and_dot(a, &[]).0
}

crate::simd::avx512_variant! {
    /// In one pass over a parameter's values `now`, `before` the update and `initial`: the
    /// sums of squares of now - before, before, now and now - initial, in f64.
    fn squares = squares_lanes(now: &[f32], before: &[f32], initial: &[f32]) -> [f64; 4]
}

#[inline(always)]
fn squares_lanes(now: &[f32], before: &[f32], initial: &[f32]) -> [f64; 4] {
    assert!(now.len() == before.len() && now.len() == initial.len());
    let (mut du, mut bb, mut nn, mut di) =
        ([0.0f64; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let whole = now.len() - now.len() % LANES;
    let (x8, b8, i8) = (&now[..whole], &before[..whole], &initial[..whole]);
    for ((x, b), i) in x8
        .chunks_exact(LANES)
        .zip(b8.chunks_exact(LANES))
        .zip(i8.chunks_exact(LANES))
    {
        for k in 0..LANES {
            let (x, b, i) = (x[k] as f64, b[k] as f64, i[k] as f64);
            du[k] += (x - b) * (x - b);
            bb[k] += b * b;
            nn[k] += x * x;
            di[k] += (x - i) * (x - i);
        }
    }
    for (k, j) in (whole..now.len()).enumerate() {
        let (x, b, i) = (now[j] as f64, before[j] as f64, initial[j] as f64);
        du[k] += (x - b) * (x - b);
        bb[k] += b * b;
        nn[k] += x * x;
        di[k] += (x - i) * (x - i);
    }
    [du, bb, nn, di].map(|lanes| lanes.iter().sum())
}
