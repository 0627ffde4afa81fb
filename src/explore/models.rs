//! The models the server has loaded, and what it asks of them: a forward pass that keeps every
//! layer's output, the saliency of a class, the test set's mistakes.
//!
//! A model is loaded on first use and kept while its file is unchanged: every request looks
//! at the file first, so a model written again is loaded again and a removed run is an error
//! for that run alone. At most [`MAX_LOADED`] models stay loaded (the least recently used
//! goes first), each with at most [`POOL`] networks kept for the threads that run it, so the
//! server's memory is bounded whatever the number of runs or requests.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use super::ExploreError;
use super::catalogue::Entry;
use crate::data::{Dataset, DatasetImages, IMAGE_SIDE, INPUT_SIDE, LabelledImages, Preprocess};
use crate::nn::network::LayerSummary;
use crate::nn::{FlushDenormals, ModelConfig, Network};
use crate::report::layers::{Probe, probe};
use crate::tensor::Tensor;

/// Models kept loaded at once.
pub const MAX_LOADED: usize = 16;

/// Networks kept per model for concurrent requests (more are made when needed, and dropped
/// after).
pub const POOL: usize = 8;

/// What identifies one version of a model file: its modification time and length.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified().ok(), m.len()))
}

/// A test image the model gets wrong.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Mistake {
    pub index: usize,
    pub label: u8,
    pub predicted: u8,
}

/// One loaded model.
pub struct Loaded {
    pub id: String,
    stamp: Stamp,
    pub model: ModelConfig,
    pub preprocess: Preprocess,
    pub dataset: Dataset,
    /// Each layer's name, description and output shape ([`Network::summary`], made once).
    pub summary: Vec<LayerSummary>,
    /// The RBF output's prototypes, for a network that ends in one ([`Network::prototypes`]).
    pub prototypes: Option<Tensor>,
    /// The network as loaded, copied for each thread that needs one.
    template: Mutex<Network>,
    pool: Mutex<Vec<Network>>,
    mistakes: OnceLock<Vec<Mistake>>,
    last_used: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic inside a request leaves nothing half-done in these (networks are taken out of
    // the pool while in use), so a poisoned lock is as good as any.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Loaded {
    fn load(entry: &Entry) -> Result<Loaded, ExploreError> {
        let path = entry.model_file()?;
        let stamp = stamp(&path).map_err(|e| entry.gone_or(e.to_string()))?;
        let (mut net, model, preprocess, dataset) =
            crate::train::load_model(&path).map_err(|e| entry.gone_or(e.to_string()))?;
        // Every layer's output written, for the layer maps.
        net.set_fold_relu(false);
        Ok(Loaded {
            id: entry.id.clone(),
            stamp,
            model,
            preprocess,
            dataset,
            summary: net.summary(),
            prototypes: net.prototypes().cloned(),
            template: Mutex::new(net),
            pool: Mutex::new(Vec::new()),
            mistakes: OnceLock::new(),
            last_used: AtomicU64::new(0),
        })
    }

    /// Runs `f` on a network of this model that no other thread is using.
    pub fn with_network<T>(&self, f: impl FnOnce(&mut Network) -> T) -> T {
        let taken = lock(&self.pool).pop();
        let mut net = taken.unwrap_or_else(|| lock(&self.template).duplicate());
        let out = f(&mut net);
        let mut pool = lock(&self.pool);
        if pool.len() < POOL {
            pool.push(net);
        }
        out
    }

    /// The parameters of the model, by their `state_dict` names, with the entries a sparse
    /// connection table fixes at zero.
    pub fn params(&self) -> Vec<(String, Tensor, Option<Vec<bool>>)> {
        let net = lock(&self.template);
        (net.params().into_iter())
            .map(|(name, p)| (name, p.value.clone(), p.frozen_zero.clone()))
            .collect()
    }

    /// An image of intensities in [0, 1] (28 x 28, padded as the datasets are, or 32 x 32)
    /// as this model's `[1, 1, 32, 32]` input: each pixel as the byte value 255 v goes
    /// through the model's preprocessing.
    pub fn input_of(&self, image: &[f32]) -> Tensor {
        let (scale, offset) = self.preprocess.affine();
        let side = INPUT_SIDE;
        let mut input = Tensor::from_vec(&[1, 1, side, side], vec![offset; side * side]);
        let (n, pad) = if image.len() == side * side {
            (side, 0)
        } else {
            (IMAGE_SIDE, (side - IMAGE_SIDE) / 2)
        };
        for (r, row) in image.chunks_exact(n).enumerate() {
            let out = &mut input.data[(r + pad) * side + pad..][..n];
            for (o, &v) in out.iter_mut().zip(row) {
                *o = scale * (255.0 * v) + offset;
            }
        }
        input
    }

    /// Image `index` of `set` as this model's input, exactly as training and `lenet eval`
    /// make it.
    pub fn input_of_image(&self, set: &LabelledImages, index: usize) -> Tensor {
        let mut input = Tensor::default();
        (self.preprocess).fill_batch(&set.images, &[index as u32], &mut input);
        input
    }

    /// `input` through every layer ([`probe`]), on this thread alone (the server's other
    /// threads serve other requests).
    pub fn forward(&self, input: &Tensor) -> Probe {
        crate::parallel::serially(|| {
            let _flush = FlushDenormals::new();
            self.with_network(|net| probe(net, input))
        })
    }

    /// The gradient of class `class`'s score (the predicted class's when `None`) with respect
    /// to the input, from lenet's backward pass in evaluation mode: (the class, the
    /// `32 x 32` gradient, the scores).
    pub fn saliency(&self, input: &Tensor, class: Option<usize>) -> (usize, Vec<f32>, Vec<f32>) {
        crate::parallel::serially(|| {
            let _flush = FlushDenormals::new();
            self.with_network(|net| {
                let Probe { scores, best, .. } = probe(net, input);
                let class = class.unwrap_or(best);
                let (_, grad) = net.output_and_grad_mut();
                grad.data.fill(0.0);
                grad.data[class] = 1.0;
                // The parameters' gradients are not wanted; zeroed so that they never grow.
                net.zero_grad();
                net.backward(true);
                (class, net.input_grad().data.clone(), scores)
            })
        })
    }

    /// The test images of `data` this model gets wrong, in index order (computed once).
    pub fn mistakes(&self, data: &DatasetImages) -> &[Mistake] {
        self.mistakes.get_or_init(|| {
            // A network of its own: the pass keeps replicas for its threads, which the pooled
            // networks should not carry afterwards.
            let mut net = lock(&self.template).duplicate();
            let predictions = crate::report::load::predict_with(&mut net, self.preprocess, data);
            (predictions.iter().enumerate())
                .filter(|(i, p)| p.0 != data.test.labels[*i])
                .map(|(index, p)| Mistake {
                    index,
                    label: data.test.labels[index],
                    predicted: p.0,
                })
                .collect()
        })
    }
}

/// The models loaded so far.
#[derive(Default)]
pub struct Models {
    loaded: Mutex<Vec<Arc<Loaded>>>,
    clock: AtomicU64,
}

impl Models {
    /// The model of run `entry`, loaded now if it is not loaded or its file has changed; an
    /// error when its file cannot be read (a removed run says so).
    pub fn get(&self, entry: &Entry) -> Result<Arc<Loaded>, ExploreError> {
        let path = entry.model_file()?;
        let now = stamp(&path).map_err(|e| entry.gone_or(e.to_string()))?;
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        {
            let mut loaded = lock(&self.loaded);
            if let Some(i) = loaded.iter().position(|l| l.id == entry.id) {
                if loaded[i].stamp == now {
                    loaded[i].last_used.store(tick, Ordering::Relaxed);
                    return Ok(loaded[i].clone());
                }
                loaded.swap_remove(i);
            }
        }
        // Loaded outside the lock, so that other runs' requests do not wait for it.
        let fresh = Arc::new(Loaded::load(entry)?);
        fresh.last_used.store(tick, Ordering::Relaxed);
        let mut loaded = lock(&self.loaded);
        loaded.retain(|l| l.id != entry.id);
        if loaded.len() >= MAX_LOADED {
            let oldest =
                (0..loaded.len()).min_by_key(|&i| loaded[i].last_used.load(Ordering::Relaxed));
            if let Some(i) = oldest {
                loaded.swap_remove(i);
            }
        }
        loaded.push(fresh.clone());
        Ok(fresh)
    }
}
