//! Checkpoints as safetensors files.
//!
//! `model.safetensors` holds the parameters and buffers under PyTorch's `state_dict` names
//! (float32, batch normalization's `num_batches_tracked` as int64), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads it into the same
//! architecture in PyTorch; its metadata carries the model configuration. `optimizer.safetensors`
//! holds the optimizer state, one tensor per parameter and buffer (`<parameter>.<buffer>`, e.g.
//! `classifier.3.weight.exp_avg`), and in its metadata the trainer's counters and random
//! streams, which is what an exact resume needs.
//!
//! The metadata is one JSON document under the key `lenet`, so that files are byte-identical
//! whenever their content is (a map of several keys would be written in hash order).
//!
//! A checkpoint is a set of files ([`CheckpointFiles`]: the two above and the per-epoch
//! metrics) written so that a process killed at any moment leaves the previous set or the new
//! one ([`save`], [`commit`]); [`restore`] puts a trainer back where a set left it. Where the
//! files lie in a run directory is [`super::run`]'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{TrainConfig, TrainError, Trainer, metrics, write_atomically};
use crate::data::{Dataset, Preprocess};
use crate::nn::{Buffer, ModelConfig, Network};
use crate::optim::OptimizerConfig;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Named tensors and string metadata, as stored in a safetensors file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: Vec<(String, Buffer)>,
    /// The JSON document stored under the metadata key `lenet`.
    pub metadata: Option<String>,
}

/// The metadata key lenet writes.
const META_KEY: &str = "lenet";

fn bad(path: &Path, what: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {what}", path.display()))
}

impl TensorFile {
    /// Serialises to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, b)| match b {
                Buffer::F32(t) => (
                    name.clone(),
                    Dtype::F32,
                    t.shape.clone(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                Buffer::I64(v) => (name.clone(), Dtype::I64, vec![], v.to_le_bytes().to_vec()),
            })
            .collect();
        let views = encoded
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let metadata = self
            .metadata
            .as_ref()
            .map(|m| HashMap::from([(META_KEY.to_string(), m.clone())]));
        safetensors::tensor::serialize(views, &metadata).map_err(|e| e.to_string())
    }

    /// Writes the file through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let bytes = self.to_bytes().map_err(|e| bad(path, e))?;
        write_atomically(path, &bytes)
    }

    /// Reads a file written by [`TensorFile::save`] (or by PyTorch, for F32 and I64 tensors).
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(path, format!("not a safetensors file ({e})")))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(path, format!("not a safetensors file ({e})")))?;
        let mut tensors = Vec::new();
        for (name, view) in parsed.tensors() {
            let data = view.data();
            let buffer = match view.dtype() {
                Dtype::F32 => Buffer::F32(Tensor::from_vec(
                    view.shape(),
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )),
                Dtype::I64 if data.len() == 8 => {
                    Buffer::I64(i64::from_le_bytes(data.try_into().expect("8 bytes")))
                }
                other => {
                    return Err(bad(
                        path,
                        format!("tensor {name} is {other:?}; expected float32 (or a scalar int64)"),
                    ));
                }
            };
            tensors.push((name, buffer));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(TensorFile {
            tensors,
            metadata: meta
                .metadata()
                .as_ref()
                .and_then(|m| m.get(META_KEY).cloned()),
        })
    }

    /// Tensors with a metadata document.
    pub fn new<T: Serialize>(tensors: Vec<(String, Buffer)>, meta: &T) -> Self {
        TensorFile {
            tensors,
            metadata: Some(serde_json::to_string(meta).expect("serialisable")),
        }
    }

    /// The metadata document, parsed.
    pub fn meta<T: DeserializeOwned>(&self, path: &Path) -> Result<T, TrainError> {
        let text = self
            .metadata
            .as_deref()
            .ok_or_else(|| bad(path, "has no lenet metadata (not written by lenet?)"))?;
        serde_json::from_str(text).map_err(|e| bad(path, format!("lenet metadata: {e}")))
    }
}

impl Trainer {
    /// The model file: parameters and buffers, with the model configuration in the metadata.
    pub fn model_file(&self) -> TensorFile {
        model_file(&self.net, &self.config)
    }

    /// The optimizer file: state tensors, and the counters and random streams of the trainer.
    pub fn optimizer_file(&self, wall_seconds: f64) -> TensorFile {
        let params = self.net.params();
        let mut tensors = Vec::new();
        for ((name, p), st) in params.iter().zip(&self.optimizer.state) {
            for (b, values) in st.buffers() {
                tensors.push((
                    format!("{name}.{b}"),
                    Buffer::F32(Tensor::from_vec(&p.value.shape, values.to_vec())),
                ));
            }
        }
        let meta = TrainerMeta {
            optimizer: self.config.optimizer,
            steps: self.optimizer.steps,
            epoch: self.epoch,
            shuffle_rng: self.shuffle_rng.state(),
            dropout_rng: self.dropout_rng.state(),
            wall_seconds,
        };
        TensorFile::new(tensors, &meta)
    }

    /// Restores the model, optimizer and trainer state saved by [`Trainer::model_file`] and
    /// [`Trainer::optimizer_file`] (read from `model_path` and `path`, which errors name);
    /// returns the wall seconds spent so far.
    pub fn restore(
        &mut self,
        (model, model_path): (TensorFile, &Path),
        optimizer: TensorFile,
        path: &Path,
    ) -> Result<f64, TrainError> {
        let bad = |what: String| TrainError::Checkpoint(format!("{}: {what}", path.display()));
        (self.net.load_state_dict(model.tensors)).map_err(|what| {
            TrainError::Checkpoint(format!(
                "{}: {what} (the model is not the one config.json describes)",
                model_path.display()
            ))
        })?;
        let meta: TrainerMeta = optimizer.meta(path)?;
        if meta.optimizer != self.config.optimizer {
            return Err(bad("the optimizer differs from config.json".into()));
        }
        self.shuffle_rng = Rng::from_state(meta.shuffle_rng);
        self.dropout_rng = Rng::from_state(meta.dropout_rng);
        self.epoch = meta.epoch;
        self.optimizer = self.config.optimizer.build();
        self.optimizer.steps = meta.steps;
        let names: Vec<String> = self.net.params().into_iter().map(|(n, _)| n).collect();
        if meta.steps > 0 {
            self.optimizer.state = vec![Default::default(); names.len()];
        }
        for (key, value) in optimizer.tensors {
            let Buffer::F32(t) = value else {
                return Err(bad(format!("{key}: expected float32")));
            };
            let (param, buffer) = names
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    key.starts_with(n.as_str()) && key.as_bytes().get(n.len()) == Some(&b'.')
                })
                .max_by_key(|(_, n)| n.len())
                .map(|(i, n)| (i, &key[n.len() + 1..]))
                .ok_or_else(|| bad(format!("optimizer state {key} names no parameter")))?;
            let st = self
                .optimizer
                .state
                .get_mut(param)
                .ok_or_else(|| bad(format!("optimizer state {key} before any step")))?;
            st.set_buffer(buffer, t.data).map_err(bad)?;
        }
        Ok(meta.wall_seconds)
    }
}

/// What `optimizer.safetensors` records besides the state tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TrainerMeta {
    optimizer: OptimizerConfig,
    steps: u64,
    /// Epochs finished.
    epoch: usize,
    shuffle_rng: [u64; 4],
    dropout_rng: [u64; 4],
    /// Wall seconds spent on the run so far, over all sessions.
    wall_seconds: f64,
}

/// What `model.safetensors` records besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ModelMeta {
    model: ModelConfig,
    preprocess: Preprocess,
    /// What the model was trained on; left out for MNIST, so that an MNIST model's file is
    /// what it was before there was a choice.
    #[serde(default, skip_serializing_if = "Dataset::is_mnist")]
    dataset: Dataset,
}

/// The model file of `net` built from `config`.
pub fn model_file(net: &Network, config: &TrainConfig) -> TensorFile {
    let meta = ModelMeta {
        model: config.model.clone(),
        preprocess: config.data.preprocess,
        dataset: config.data.dataset,
    };
    // The model's settings added since model files began are left out at their neutral
    // values (as from a run's identity), so such a file is what it was before they existed.
    TensorFile {
        tensors: net.state_dict(),
        metadata: Some(super::identity::without_added(&meta)),
    }
}

/// Loads a model saved by lenet: the network, how its inputs are preprocessed, and what it
/// was trained on.
pub fn load_model(path: &Path) -> Result<(Network, ModelConfig, Preprocess, Dataset), TrainError> {
    let file = TensorFile::load(path)?;
    let bad = |what: String| TrainError::Checkpoint(format!("{}: {what}", path.display()));
    let meta: ModelMeta = file.meta(path)?;
    meta.model.validate().map_err(bad)?;
    let mut net = meta.model.build(&mut Rng::new(0));
    net.load_state_dict(file.tensors).map_err(bad)?;
    Ok((net, meta.model, meta.preprocess, meta.dataset))
}

/// The files of one checkpoint set, and the metrics that go with them.
pub struct CheckpointFiles {
    pub model: PathBuf,
    pub optimizer: PathBuf,
    pub metrics: PathBuf,
}

impl CheckpointFiles {
    /// Where a file waits while its set is being written: `model.safetensors.next`.
    fn pending(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".next");
        PathBuf::from(name)
    }

    /// The set's files, in the order they are written and moved into place: the model last.
    fn in_order(&self) -> [&Path; 3] {
        [&self.optimizer, &self.metrics, &self.model]
    }
}

/// Writes the checkpoint of a finished epoch (optimizer, metrics, model) so that a process
/// killed at any moment leaves the previous checkpoint or this one, never the model of one
/// epoch with the optimizer state of another: the three files are written under pending
/// names, the model last (its pending file says the set is whole), then moved into place.
pub fn save(
    trainer: &Trainer,
    files: &CheckpointFiles,
    wall_seconds: f64,
) -> Result<(), TrainError> {
    let pending = CheckpointFiles::pending;
    trainer
        .optimizer_file(wall_seconds)
        .save(&pending(&files.optimizer))?;
    let csv = metrics::to_csv(&trainer.history);
    write_atomically(&pending(&files.metrics), csv.as_bytes())?;
    trainer.model_file().save(&pending(&files.model))?;
    commit(files)
}

/// Finishes what [`save`] left: a whole set (its pending model is there) takes its place,
/// the model last; the files of a set that was not all written are removed.
pub fn commit(files: &CheckpointFiles) -> Result<(), TrainError> {
    let whole = CheckpointFiles::pending(&files.model).exists();
    for path in files.in_order() {
        let from = CheckpointFiles::pending(path);
        let done = if whole {
            std::fs::rename(&from, path)
        } else {
            std::fs::remove_file(&from)
        };
        match done {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(TrainError::Io {
                    path: from,
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Restores `trainer` from the model and optimizer files of a checkpoint set; returns the wall
/// seconds the run had spent.
pub fn restore(trainer: &mut Trainer, files: &CheckpointFiles) -> Result<f64, TrainError> {
    let model = TensorFile::load(&files.model)?;
    let optimizer = TensorFile::load(&files.optimizer)?;
    trainer.restore((model, &files.model), optimizer, &files.optimizer)
}
