//! Training: the loop, evaluation, metrics and the run directory.
//!
//! A run directory holds `config.json` (the fully resolved [`TrainConfig`]), `metrics.csv`
//! (one row per epoch), `summary.json` (test accuracy and loss, times), `model.safetensors`
//! and `optimizer.safetensors` (see [`checkpoint`]). The checkpoint is rewritten after every
//! epoch, so an interrupted run resumes from its last finished epoch and ends bit-identical to
//! one that ran straight through.

pub mod checkpoint;
pub mod identity;
pub mod instruments;
pub mod metrics;
pub mod options;
pub mod run;
pub mod tensorboard;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset, DatasetImages, LabelledImages, Preprocess, Split};
use crate::nn::hessian::Batch;
use crate::nn::loss::BatchLoss;
use crate::nn::{Context, FlushDenormals, Mode, ModelConfig, Network};
use crate::optim::config::BatchPolicy;
use crate::optim::{Optimizer, OptimizerConfig, ScheduleConfig};
use crate::parallel;
use crate::rng::{Purpose, Rng, Stream};
use crate::tensor::Tensor;
pub use checkpoint::{load_model, model_file};
use instruments::{InstrumentSet, Recorder};
pub use metrics::{EpochMetrics, Evaluation, Summary};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("checkpoint {0}")]
    Checkpoint(String),
    /// Work continued on other data than it started on.
    #[error("{0}")]
    OtherData(String),
    #[error(
        "training diverged in epoch {epoch}: the loss became {loss:.3e} (NaN, infinite or above \
         100); lower the learning rate (the epochs before it are kept in metrics.csv)"
    )]
    Diverged { epoch: usize, loss: f64 },
}

/// How the data is split and presented.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Training images held out for validation.
    pub valid_size: usize,
    /// Seed of the validation split, fixed across the runs of a study.
    pub split_seed: u64,
    pub preprocess: Preprocess,
    /// What the run trains on (MNIST in files written before there was a choice).
    #[serde(default)]
    pub dataset: Dataset,
    /// Every training image distorted anew at every pass ([`crate::data::distort`]).
    #[serde(default)]
    pub distort: bool,
}

impl Default for DataConfig {
    /// The data settings of a run with every option at its declared default.
    fn default() -> Self {
        options::Options::default()
            .resolve()
            .expect("the declared defaults resolve")
            .data
    }
}

/// Everything that determines a run's results (the thread count does not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    /// Samples per optimizer step; 0 means the whole training split (full-batch `gd`).
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
    pub data: DataConfig,
    /// Vary only this random stream with `seed`; the other training streams take seed
    /// [`FIXED_STREAM_SEED`], so that runs of different seeds differ by that one source of
    /// randomness.
    #[serde(default)]
    pub vary: Option<Stream>,
    /// Per-step instruments recorded to `instruments.csv` ([`instruments`]); they never
    /// change training.
    #[serde(default)]
    pub instruments: InstrumentSet,
    /// Record every this-many steps.
    #[serde(default = "one")]
    pub instruments_every: usize,
}

/// For files written before the setting existed.
fn one() -> usize {
    1
}

/// The seed of the streams a run with [`TrainConfig::vary`] holds fixed.
pub const FIXED_STREAM_SEED: u64 = 0;

impl TrainConfig {
    /// The seed of the stream for `purpose`: the run's seed, unless the run varies another
    /// stream alone.
    pub fn stream_seed(&self, purpose: Purpose) -> u64 {
        match self.vary {
            Some(v) if v.purpose() != purpose && purpose != Purpose::Split => FIXED_STREAM_SEED,
            _ => self.seed,
        }
    }
}

/// Largest number of samples that go through the network at once; bigger batches (full-batch
/// gradient descent) accumulate their gradient over chunks of this size, so memory is bounded.
pub const MAX_CHUNK: usize = 256;

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.validate().map_err(TrainError::Config)?;
        self.schedule.validate().map_err(TrainError::Config)?;
        self.optimizer.validate().map_err(TrainError::Config)?;
        if self.epochs == 0 {
            return Err(TrainError::Config("--epochs must be at least 1".into()));
        }
        if self.instruments_every == 0 {
            return Err(TrainError::Config(
                "--instruments-every must be at least 1".into(),
            ));
        }
        if self.instruments == InstrumentSet::None && self.instruments_every != 1 {
            return Err(TrainError::Config(
                "--instruments-every needs --instruments (cheap): no instrument is recorded".into(),
            ));
        }
        match self.optimizer.name.fixed_batch() {
            Some(BatchPolicy::Fixed(b)) if self.batch_size != b => {
                Err(TrainError::Config(format!(
                    "{} takes {b} sample per step; got batch size {}",
                    self.optimizer.name.as_str(),
                    self.batch_size
                )))
            }
            Some(BatchPolicy::FullBatch) if self.batch_size != 0 => Err(TrainError::Config(
                "gd steps on the whole training split (batch size 0)".into(),
            )),
            None if self.batch_size == 0 => Err(TrainError::Config(format!(
                "{} needs a batch size of at least 1",
                self.optimizer.name.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// Samples per step for a training split of `train_len` images.
    pub fn step_size(&self, train_len: usize) -> usize {
        if self.batch_size == 0 {
            train_len
        } else {
            self.batch_size.min(train_len)
        }
    }
}

/// Writes a file through a temporary file in the same directory and a rename, so readers
/// never see a half-written file.
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<(), TrainError> {
    crate::atomic_file::write(path, content).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Hooks for showing progress; every method has a silent default.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    fn step_done(&mut self, _step: usize, _running_loss: f64) {}
    fn epoch_done(&mut self, _metrics: &EpochMetrics) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Evaluates `net` in evaluation mode on the images `indices` of `set` (with subnormal
/// floats flushed to zero, as in training: see [`FlushDenormals`]).
pub fn evaluate(
    net: &mut Network,
    preprocess: Preprocess,
    set: &LabelledImages,
    indices: &[u32],
) -> Evaluation {
    evaluate_with(net, preprocess, set, indices, |_, _| {})
}

/// Like [`evaluate`], also handing every chunk's logits to `visit(first_index, logits)`, in
/// order.
pub fn evaluate_with(
    net: &mut Network,
    preprocess: Preprocess,
    set: &LabelledImages,
    indices: &[u32],
    mut visit: impl FnMut(usize, &crate::tensor::Tensor),
) -> Evaluation {
    let _flush = FlushDenormals::new();
    let criterion = net.criterion();
    let chunks: Vec<&[u32]> = indices.chunks(MAX_CHUNK).collect();
    // Each chunk's loss and logits, from whichever thread ran it; added up in chunk order
    // below, so the sums never depend on the threads.
    let results: Vec<OnceLock<(BatchLoss, Tensor)>> =
        chunks.iter().map(|_| OnceLock::new()).collect();
    net.forward_each(
        chunks.len(),
        |c, input| preprocess.fill_batch(&set.images, chunks[c], input),
        |c, logits| {
            let labels: Vec<u8> = chunks[c].iter().map(|&i| set.labels[i as usize]).collect();
            let loss = criterion.apply(logits, &labels, None);
            assert!(
                results[c].set((loss, logits.clone())).is_ok(),
                "chunk {c} ran twice"
            );
        },
    );
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for (c, result) in results.into_iter().enumerate() {
        let (r, logits) = result.into_inner().expect("every chunk ran");
        visit(c * MAX_CHUNK, &logits);
        loss_sum += r.loss_sum;
        correct += r.correct;
    }
    let n = indices.len().max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        count: indices.len(),
    }
}

/// A model in training with its optimizer and random streams.
pub struct Trainer {
    pub config: TrainConfig,
    pub net: Network,
    pub optimizer: Optimizer,
    shuffle_rng: Rng,
    dropout_rng: Rng,
    /// Epochs finished.
    pub epoch: usize,
    pub history: Vec<EpochMetrics>,
    labels: Vec<u8>,
    /// The per-step instruments, when the run records them.
    pub instruments: Option<Recorder>,
}

/// Writes the training images `chunk` into `input` as pass `epoch` (from 0) of the run of
/// `config` presents them: distorted as that pass distorts them when the run distorts.
fn fill_images(
    config: &TrainConfig,
    epoch: usize,
    train: &LabelledImages,
    chunk: &[u32],
    input: &mut Tensor,
) {
    let preprocess = config.data.preprocess;
    if config.data.distort {
        let pass = (config.stream_seed(Purpose::Distort), epoch);
        preprocess.fill_distorted(&train.images, chunk, pass, input);
    } else {
        preprocess.fill_batch(&train.images, chunk, input);
    }
}

impl Trainer {
    pub fn new(config: TrainConfig) -> Result<Self, TrainError> {
        config.validate()?;
        let net = config.model.build(&mut Rng::stream(
            config.stream_seed(Purpose::Init),
            Purpose::Init,
        ));
        // Made before a resumed run's checkpoint is restored: the weights are the initial ones.
        let instruments = (config.instruments != InstrumentSet::None)
            .then(|| Recorder::new(&net, config.instruments, config.instruments_every));
        Ok(Trainer {
            optimizer: config.optimizer.build(),
            instruments,
            net,
            shuffle_rng: Rng::stream(config.stream_seed(Purpose::Order), Purpose::Order),
            dropout_rng: Rng::stream(config.stream_seed(Purpose::Dropout), Purpose::Dropout),
            epoch: 0,
            history: Vec::new(),
            labels: Vec::with_capacity(MAX_CHUNK),
            config,
        })
    }

    /// One epoch over the training split: shuffle, then one optimizer step per batch. Returns
    /// the mean training loss and accuracy measured on the fly (in training mode, before
    /// each step's update), as the study's log did. Subnormal floats are flushed to zero
    /// meanwhile ([`FlushDenormals`]).
    pub fn train_epoch(
        &mut self,
        train: &LabelledImages,
        split: &Split,
        observer: &mut dyn Observer,
    ) -> Result<Evaluation, TrainError> {
        let _flush = FlushDenormals::new();
        parallel::with_team(|| self.train_steps(train, split, observer))
    }

    /// [`Self::train_epoch`]'s steps, with the flushing and the team in place.
    fn train_steps(
        &mut self,
        train: &LabelledImages,
        split: &Split,
        observer: &mut dyn Observer,
    ) -> Result<Evaluation, TrainError> {
        let mut order = split.train.clone();
        self.shuffle_rng.shuffle(&mut order);
        let lr = self.current_lr();
        let batch = self.config.step_size(order.len());
        let steps = order.len().div_ceil(batch);
        observer.epoch_started(self.epoch + 1, steps);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let curvature = self.optimizer.algorithm.curvature_samples();
        let every = self.optimizer.algorithm.curvature_every();
        // Each step's update leaves the gradients at zero for the next.
        self.net.zero_grad();
        for (s, step) in order.chunks(batch).enumerate() {
            // The second derivatives, for a rule that steps by them: estimated before the
            // pass's first step, and again every `every` steps when that is above 0, each
            // time on the `n` samples about to be trained on (fewer at the pass's end).
            if let Some(n) = curvature
                && (s == 0 || (every > 0 && s % every == 0))
            {
                let from = s * batch;
                let samples = &order[from..order.len().min(from + n)];
                self.estimate_curvature(train, samples);
            }
            let scale = 1.0 / step.len() as f32;
            let loss_before = loss_sum;
            let global = self.epoch * steps + s + 1;
            // The noise set reads each sample's gradient terms and what the units did, which
            // the layers keep for a recorded step where their folded passes skip the
            // activations (the same bits).
            let noise = (self.instruments.as_ref())
                .is_some_and(|r| r.records(global) && r.measures_noise());
            if let (true, Some(recorder)) = (noise, self.instruments.as_mut()) {
                recorder.begin_noise(step.len(), step.len() <= MAX_CHUNK);
                self.net.keep_sample_grads(true);
            }
            for chunk in step.chunks(MAX_CHUNK) {
                self.fill_input(train, chunk);
                self.labels.clear();
                self.labels
                    .extend(chunk.iter().map(|&i| train.labels[i as usize]));
                self.net.forward(&mut Context {
                    mode: Mode::Train,
                    rng: &mut self.dropout_rng,
                });
                let criterion = self.net.criterion();
                let (logits, dlogits) = self.net.output_and_grad_mut();
                let r = criterion.apply(logits, &self.labels, Some((dlogits, scale)));
                self.net.backward(false);
                loss_sum += r.loss_sum;
                correct += r.correct;
                if let (true, Some(recorder)) = (noise, self.instruments.as_mut()) {
                    recorder
                        .add_sample_terms(&self.net)
                        .map_err(TrainError::Config)?;
                }
            }
            if noise {
                self.net.keep_sample_grads(false);
            }
            let seen = ((s + 1) * batch).min(order.len());
            let running = loss_sum / seen as f64;
            if !running.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: self.epoch + 1,
                    loss: running,
                });
            }
            let recorded = self.instruments.as_mut().filter(|r| r.records(global));
            match recorded {
                Some(recorder) => {
                    recorder.before_update(&self.net);
                    if recorder.measures_curvature() {
                        let (config, epoch) = (&self.config, self.epoch);
                        let labels: Vec<u8> =
                            step.iter().map(|&i| train.labels[i as usize]).collect();
                        let fill = |from: usize, to: usize, input: &mut Tensor| {
                            fill_images(config, epoch, train, &step[from..to], input)
                        };
                        let batch = Batch {
                            labels: &labels,
                            piece: MAX_CHUNK,
                            fill: &fill,
                        };
                        (recorder.measure_curvature(&mut self.net, &batch, epoch + 1, global))
                            .map_err(TrainError::Config)?;
                    }
                    self.optimizer.step_and_zero_grad(&mut self.net, lr);
                    let loss = (loss_sum - loss_before) / step.len() as f64;
                    recorder.after_update(&self.net, self.epoch + 1, global, loss, lr);
                }
                None => self.optimizer.step_and_zero_grad(&mut self.net, lr),
            }
            observer.step_done(s + 1, running);
        }
        let n = order.len() as f64;
        Ok(Evaluation {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            count: order.len(),
        })
    }

    /// Fills the input buffer with the training images `chunk`, distorted as this pass
    /// distorts them when the run distorts.
    fn fill_input(&mut self, train: &LabelledImages, chunk: &[u32]) {
        fill_images(&self.config, self.epoch, train, chunk, self.net.input_mut());
    }

    /// Estimates every parameter's second derivative as the mean, over the training images
    /// `samples` (as this pass presents them), of the Gauss–Newton diagonal of each one's
    /// loss ([`Network::backward_curvature`]), and hands it to the optimizer, which steps by
    /// it for the whole pass. The network runs in evaluation mode: no dropout mask is drawn
    /// (the dropout stream stays as it was) and batch normalization uses its running
    /// statistics.
    fn estimate_curvature(&mut self, train: &LabelledImages, samples: &[u32]) {
        self.net.zero_curvature();
        let scale = 1.0 / samples.len().max(1) as f32;
        // Evaluation draws no random numbers.
        let rng = &mut Rng::new(0);
        for chunk in samples.chunks(MAX_CHUNK) {
            self.fill_input(train, chunk);
            let ctx = &mut Context {
                mode: Mode::Eval,
                rng,
            };
            self.net.backward_curvature(ctx, scale);
        }
        self.optimizer.set_curvature(&mut self.net);
    }

    /// The learning rate of the next epoch.
    pub fn current_lr(&self) -> f64 {
        self.config
            .schedule
            .lr_at(self.config.optimizer.lr, self.epoch)
    }

    /// Trains one epoch and validates; records and returns the epoch's metrics.
    pub fn run_epoch(
        &mut self,
        data: &DatasetImages,
        split: &Split,
        observer: &mut dyn Observer,
    ) -> Result<EpochMetrics, TrainError> {
        let start = Instant::now();
        let lr = self.current_lr();
        let train = self.train_epoch(&data.train, split, observer)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let valid = (!split.valid.is_empty()).then(|| {
            evaluate(
                &mut self.net,
                self.config.data.preprocess,
                &data.train,
                &split.valid,
            )
        });
        self.epoch += 1;
        let m = EpochMetrics {
            epoch: self.epoch,
            lr,
            train_loss: train.loss,
            train_accuracy: train.accuracy,
            valid_loss: valid.map(|v| v.loss),
            valid_accuracy: valid.map(|v| v.accuracy),
            train_seconds,
            seconds: start.elapsed().as_secs_f64(),
        };
        let valid_loss = valid.map_or(train.loss, |v| v.loss);
        let worst = train.loss.max(valid_loss);
        // A run has diverged when its loss is NaN or infinite, or when an epoch's mean
        // training or validation loss is one no learning run reaches.
        if worst.is_nan() || worst > self.net.criterion().divergence_loss() {
            return Err(TrainError::Diverged {
                epoch: self.epoch,
                loss: if valid_loss.is_nan() {
                    valid_loss
                } else {
                    worst
                },
            });
        }
        self.history.push(m.clone());
        observer.epoch_done(&m);
        Ok(m)
    }
}
