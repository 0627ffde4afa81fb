//! The convolution kernels' working memory, kept by each convolution layer between passes so
//! that a step allocates nothing once the first has sized it. None of it carries a result
//! from one pass to the next but the forward's columns, which its backward reads.

/// A convolution's scratch. A clone of the layer starts with none of it.
#[derive(Default)]
pub struct ConvScratch {
    /// Cached by forward: im2col columns of the whole batch, chunk after chunk.
    pub cols: Vec<f32>,
    /// Per-chunk `[O, positions]` products, and column gradients (on the narrow path: each
    /// worker thread's output gradient, channel-last).
    pub chunk_out: Vec<f32>,
    pub dcols: Vec<f32>,
    /// Per-chunk partial weight and bias gradients, summed in chunk order.
    pub partial_dw: Vec<f32>,
    pub partial_db: Vec<f32>,
    /// The weight rearranged for the narrow direct kernels, `[C*K*K, O]` forward and
    /// `[O, K, K, C]` backward.
    pub weight_t: Vec<f32>,
    /// The sparse backward kernels' per-thread channel-last copies of their chunk.
    pub sparse: Vec<f32>,
    /// The single-channel weight gradient's input masks, and the `(oh, ow, w)` they are for
    /// (computed once, not at every one-sample step).
    pub grad_masks: ((usize, usize, usize), Vec<u16>),
}
