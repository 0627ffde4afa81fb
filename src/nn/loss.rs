//! Softmax cross-entropy, the loss of a classifier that outputs logits (PyTorch's
//! `F.cross_entropy` with mean reduction).
//!
//! log_softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z))   (stable: no overflow)
//! loss = mean_n -log_softmax(z_n)[label_n]
//! dloss/dz_n = (softmax(z_n) - onehot(label_n)) / N
//!
//! Shapes: logits [N, K], labels [N]; N batch, K classes.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html>

use crate::tensor::Tensor;

/// The log-softmax of one row of logits, written into `out`.
pub fn log_softmax(z: &[f32], out: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
    let log_sum = sum.ln();
    for (o, &v) in out.iter_mut().zip(z) {
        *o = v - max - log_sum;
    }
}

/// What a batch's loss computation reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchLoss {
    /// Sum of the per-sample losses (divide by the count for the mean).
    pub loss_sum: f64,
    /// Samples whose largest logit is their label.
    pub correct: usize,
    pub count: usize,
}

/// Cross-entropy of `logits` against `labels`. When `dlogits` is given it receives the gradient
/// of `scale * sum_n loss_n` — `scale = 1/N` gives the mean loss's gradient, as PyTorch's.
pub fn cross_entropy(
    logits: &Tensor,
    labels: &[u8],
    dlogits: Option<(&mut Tensor, f32)>,
) -> BatchLoss {
    let (n, k) = (logits.batch(), logits.item_len());
    assert_eq!(labels.len(), n, "one label per sample");
    let mut logp = [0.0f32; 64];
    assert!(k <= logp.len(), "at most 64 classes");
    let mut result = BatchLoss {
        count: n,
        ..Default::default()
    };
    let mut grad = dlogits;
    for (i, (row, &label)) in logits.data.chunks_exact(k).zip(labels).enumerate() {
        let logp = &mut logp[..k];
        log_softmax(row, logp);
        let label = label as usize;
        result.loss_sum -= logp[label] as f64;
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
        result.correct += usize::from(argmax == label);
        if let Some((dz, scale)) = grad.as_mut() {
            let dz = &mut dz.data[i * k..(i + 1) * k];
            for (j, (d, &lp)) in dz.iter_mut().zip(logp.iter()).enumerate() {
                let target = if j == label { 1.0 } else { 0.0 };
                *d = (lp.exp() - target) * *scale;
            }
        }
    }
    result
}
