//! Softmax cross-entropy, the loss of a classifier that outputs logits (PyTorch's
//! `F.cross_entropy` with mean reduction), and LeCun et al.'s MAP criterion for RBF outputs,
//! which is the same sum with one constant score more ([`Criterion`]).
//!
//! log_softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z))   (stable: no overflow)
//! loss = mean_n -log_softmax(z_n)[label_n]
//! dloss/dz_n = (softmax(z_n) - onehot(label_n)) / N
//!
//! Second derivatives (the Hessian's diagonal, for the Gauss–Newton pass,
//! [`Criterion::curvature`]): d2loss/dz_n,k^2 = softmax(z_n)_k (1 - softmax(z_n)_k), the same
//! for every label. The Hessian of a softmax cross-entropy is diag(p) - p p^T, positive
//! semi-definite, so its diagonal is the Gauss–Newton one at the output.
//!
//! Shapes: logits [N, K], labels [N]; N batch, K classes.
//!
//! reference: <https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html>

use crate::tensor::Tensor;

/// The log-softmax of one row of logits, written into `out`.
pub fn log_softmax(z: &[f32], out: &mut [f32]) {
    log_softmax_with(z, None, out);
}

/// The log-softmax of one row of logits and, when given, one more constant logit `extra`
/// (whose own log-probability is not written), into `out`.
fn log_softmax_with(z: &[f32], extra: Option<f32>, out: &mut [f32]) {
    let max = (z.iter().copied().chain(extra)).fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = (z.iter().copied().chain(extra))
        .map(|v| (v - max).exp())
        .sum();
    let log_sum = sum.ln();
    for (o, &v) in out.iter_mut().zip(z) {
        *o = v - max - log_sum;
    }
}

/// What a network's outputs are trained and judged by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Criterion {
    /// Softmax cross-entropy of logits.
    CrossEntropy,
    /// LeCun et al. (1998), eq. 9, for the RBF output's scores z = -y (squared distances to
    /// the prototypes): E = y_D + log(e^-j + sum_i e^-y_i), which is -log of the softmax of
    /// z_D among the scores and one more, constant, score -j: a "rubbish class" at distance
    /// j that caps how far the wrong classes' distances are pushed up. The prediction is the
    /// largest score, the nearest prototype; the rubbish class is never predicted.
    Map { j: f32 },
}

/// The MAP criterion's constant j, which the paper calls a positive constant without stating
/// its value where it defines the criterion. j = 1 makes the rubbish class a competitor at a
/// quarter of one pixel's full swing ((1 - (-1))^2 = 4), so the criterion
/// keeps pulling F6 onto its digit's prototype, as the paper's mean squared error (eq. 8),
/// while pushing away only the wrong prototypes that come within a few pixels.
pub const MAP_J: f32 = 1.0;

impl Criterion {
    /// A mean loss no learning run reaches, above which a run counts as diverged: for
    /// cross-entropy 100, 43 times the loss of a uniform guess over 10 classes (ln 10 = 2.3);
    /// for the MAP criterion 1,000, above the largest it can take at all behind the 1998
    /// model's squashing function (84 (1.7159 + 1)^2 + ln 11 = 622), so only a loss that is
    /// not a number counts there.
    pub fn divergence_loss(self) -> f64 {
        match self {
            Criterion::CrossEntropy => 100.0,
            Criterion::Map { .. } => 1000.0,
        }
    }

    /// The loss of a batch; see [`cross_entropy`] for `dlogits`.
    pub fn apply(
        self,
        logits: &Tensor,
        labels: &[u8],
        dlogits: Option<(&mut Tensor, f32)>,
    ) -> BatchLoss {
        softmax_loss(logits, labels, self.extra_score(), dlogits)
    }

    /// The constant score the softmax takes besides the logits: the MAP criterion's rubbish
    /// class, -j.
    fn extra_score(self) -> Option<f32> {
        match self {
            Criterion::CrossEntropy => None,
            Criterion::Map { j } => Some(-j),
        }
    }

    /// Vectors l_c whose outer products add up to the Hessian of one sample's loss with
    /// respect to its scores `row`: diag(q) - q q^T, q the softmax probabilities of the scores
    /// (among the scores and the rubbish class, for MAP, so that they add up to S <= 1). It is
    /// sum_c q_c (e_c - q)(e_c - q)^T + (1 - S) q q^T, so l_c = sqrt(q_c) (e_c - q) for each
    /// class and, for MAP, sqrt(1 - S) q: the Gauss–Newton matrix's square root at the
    /// output, which makes its trace a sum of squared norms ([`super::hessian`]).
    pub fn hessian_factors(self, row: &[f32]) -> Vec<Vec<f32>> {
        let k = row.len();
        let mut logp = vec![0.0f32; k];
        log_softmax_with(row, self.extra_score(), &mut logp);
        let q: Vec<f32> = logp.iter().map(|l| l.exp()).collect();
        let mut factors: Vec<Vec<f32>> = (0..k)
            .map(|c| {
                let root = q[c].sqrt();
                (0..k)
                    .map(|i| root * (f32::from(u8::from(i == c)) - q[i]))
                    .collect()
            })
            .collect();
        if self.extra_score().is_some() {
            let rest = (1.0 - q.iter().sum::<f32>()).max(0.0).sqrt();
            factors.push(q.iter().map(|&p| rest * p).collect());
        }
        factors
    }

    /// Writes into `d2logits` the second derivatives of `scale * sum_n loss_n` with respect
    /// to each logit (each score, for MAP): p (1 - p), p the softmax probability (among the
    /// scores and the rubbish class, for MAP). They do not depend on the labels.
    pub fn curvature(self, logits: &Tensor, d2logits: &mut Tensor, scale: f32) {
        let extra = self.extra_score();
        let k = logits.item_len();
        let mut logp = [0.0f32; 64];
        assert!(k <= logp.len(), "at most 64 classes");
        let rows = logits
            .data
            .chunks_exact(k)
            .zip(d2logits.data.chunks_exact_mut(k));
        for (row, d2) in rows {
            log_softmax_with(row, extra, &mut logp[..k]);
            for (h, &lp) in d2.iter_mut().zip(&logp[..k]) {
                let p = lp.exp();
                *h = p * (1.0 - p) * scale;
            }
        }
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
    softmax_loss(logits, labels, None, dlogits)
}

/// The cross-entropy over each row of `logits` and, when given, one more constant logit.
fn softmax_loss(
    logits: &Tensor,
    labels: &[u8],
    extra: Option<f32>,
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
        log_softmax_with(row, extra, logp);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The factors' outer products add up to diag(q) - q q^T, for both criteria.
    #[test]
    fn hessian_factors_square_to_the_hessian() {
        let row = [0.3f32, -1.2, 2.0, 0.1];
        for criterion in [Criterion::CrossEntropy, Criterion::Map { j: 1.0 }] {
            let mut logp = [0.0f32; 4];
            log_softmax_with(&row, criterion.extra_score(), &mut logp);
            let q: Vec<f32> = logp.iter().map(|l| l.exp()).collect();
            let factors = criterion.hessian_factors(&row);
            for i in 0..4 {
                for j in 0..4 {
                    let sum: f32 = factors.iter().map(|l| l[i] * l[j]).sum();
                    let want = if i == j { q[i] } else { 0.0 } - q[i] * q[j];
                    assert!(
                        (sum - want).abs() < 1e-6,
                        "{criterion:?} ({i}, {j}): {sum} {want}"
                    );
                }
            }
        }
    }
}
