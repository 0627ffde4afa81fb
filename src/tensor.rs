//! A dense float32 tensor in row-major order: a shape and a flat buffer.
//!
//! Images are NCHW (N batch, C channels, H height, W width), as in PyTorch. Buffers are reused
//! across steps: [`Tensor::resize`] keeps the allocation when the size does not grow, so the
//! training loop allocates nothing once the first batch has passed.

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?} does not match {} values",
            data.len()
        );
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Gives the tensor a new shape, reusing the buffer. New elements are zero; old values are
    /// left in place, so callers overwrite (or [`Tensor::fill`]) what they read.
    pub fn resize(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        self.data.resize(shape.iter().product(), 0.0);
    }

    pub fn fill(&mut self, value: f32) {
        self.data.fill(value);
    }

    /// Size of the first axis (the batch for activations).
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per item of the first axis.
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}
