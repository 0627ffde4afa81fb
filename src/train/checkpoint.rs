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

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::TrainError;
use crate::nn::Buffer;
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
        super::write_atomically(path, &bytes)
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
