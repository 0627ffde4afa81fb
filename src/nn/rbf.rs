//! LeNet-5's output layer (LeCun et al. 1998, section II-B): ten Euclidean radial basis
//! function units, one per class, each comparing F6's 84 outputs with a fixed prototype, a
//! stylised 7 x 12 bitmap of its digit with entries -1 (white) and +1 (black):
//!
//! y[n, i] = sum_j (x[n, j] - w[i, j])^2
//!
//! The prototypes are not trained (the paper keeps them fixed), so the layer has no
//! parameters; `prototypes.txt` beside this file holds them as readable bitmaps (and
//! `prototypes-bold.txt` the same digits in bold strokes, [`Prototypes`]). The layer
//! writes the scores -y, so that, as for logits, the largest score is the prediction (the
//! nearest prototype) and the paper's MAP criterion is a cross-entropy over the scores and one
//! constant ([`super::loss::Criterion::Map`]).
//!
//! Backward: dx[n, j] = sum_i dscore[n, i] * -2 (x[n, j] - w[i, j]).
//! Second order ([`Layer::backward_curvature`]): d2x[n, j] = sum_i d2score[n, i] (2 (x[n, j] -
//! w[i, j]))^2 (the Gauss–Newton term; the distance's own second derivative, 2, is dropped).
//!
//! Shapes: x [N, 84], scores [N, 10].

use super::{Context, Layer};
use crate::tensor::Tensor;

/// The prototypes as text: comment lines, then ten blocks, each a line with its digit and 12
/// rows of 7 characters.
const PLAIN: &str = include_str!("prototypes.txt");
/// The same digits with every stroke two pixels wide.
const BOLD: &str = include_str!("prototypes-bold.txt");

/// Bitmap width and height of a prototype.
pub const WIDTH: usize = 7;
pub const HEIGHT: usize = 12;

/// Which drawing of the ten digits the output compares F6 with. The paper's own bitmaps are
/// those of its Fig. 3, a print too coarse to copy pixel for pixel; lenet draws them in that
/// style with strokes one pixel wide (`plain`, `prototypes.txt`) or two (`bold`,
/// `prototypes-bold.txt`, nearer the figure's heavy strokes).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Prototypes {
    #[default]
    Plain,
    Bold,
}

impl Prototypes {
    /// The name the command line and study files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Prototypes::Plain => "plain",
            Prototypes::Bold => "bold",
        }
    }

    /// The ten bitmaps, `[10, 84]`, row-major, +1 (black) and -1 (white).
    pub fn tensor(self) -> Tensor {
        parse(match self {
            Prototypes::Plain => PLAIN,
            Prototypes::Bold => BOLD,
        })
    }
}

/// Reads a prototypes file (see [`PLAIN`]) into `[10, 84]`.
fn parse(text: &str) -> Tensor {
    // Comment lines start with "# "; a bitmap row has no space.
    let mut rows = text.lines().filter(|l| !l.starts_with("# "));
    let mut data = Vec::with_capacity(10 * WIDTH * HEIGHT);
    for digit in 0..10 {
        let head = rows.next().expect("a prototypes file has ten blocks");
        assert_eq!(
            head.trim(),
            digit.to_string(),
            "block {digit} is headed by its digit"
        );
        for _ in 0..HEIGHT {
            let row = rows.next().expect("12 rows per prototype");
            assert_eq!(row.len(), WIDTH, "7 characters per row: {row:?}");
            data.extend(row.chars().map(|c| match c {
                '#' => 1.0,
                '.' => -1.0,
                other => panic!("prototype characters are '#' and '.', not {other:?}"),
            }));
        }
    }
    Tensor::from_vec(&[10, WIDTH * HEIGHT], data)
}

#[derive(Clone)]
pub struct Rbf {
    /// `[classes, inputs]`.
    pub prototypes: Tensor,
}

impl Rbf {
    /// The paper's output layer: F6's 84 units against the ten prototypes of `set`.
    pub fn lenet5(set: Prototypes) -> Self {
        Rbf {
            prototypes: set.tensor(),
        }
    }

    fn dims(&self) -> (usize, usize) {
        (self.prototypes.shape[0], self.prototypes.shape[1])
    }

    /// The second derivatives of `scale` times the summed MAP criterion (rubbish constant
    /// `j`, [`super::loss::Criterion::Map`]) with respect to this layer's inputs `x`, given
    /// its output `scores` — exactly, not in the Gauss–Newton approximation: with p the
    /// softmax of the scores and the rubbish score -j, and s_i = 2 (x_k - w[i, k]) the slope
    /// of distance i,
    ///
    /// d2E/dx_k^2 = 2 p_rubbish + sum_i p_i s_i^2 - (sum_i p_i s_i)^2,
    ///
    /// the distances' own curvature (their 2, weighted by the criterion's first derivatives,
    /// which sum to p_rubbish over the classes) and the spread of the slopes under p (which
    /// the Gauss–Newton pass from the scores, [`Layer::backward_curvature`], approximates
    /// by its diagonal). Never negative, and independent of the label. The layer has no
    /// parameters, so the rest of the network takes this as its loss's curvature: a
    /// Gauss–Newton pass from the scores would drop the 2 p_rubbish, and with it all the
    /// curvature of a network whose prototypes are all far away (every p_i near 0, at the
    /// start of training), leaving each parameter's step at lr / mu.
    pub fn map_curvature(&self, x: &Tensor, scores: &Tensor, j: f32, d2x: &mut Tensor, scale: f32) {
        let (classes, inputs) = self.dims();
        let rows = (x.data.chunks_exact(inputs))
            .zip(scores.data.chunks_exact(classes))
            .zip(d2x.data.chunks_exact_mut(inputs));
        for ((xs, zs), d2xs) in rows {
            let max = zs.iter().copied().fold(-j, f32::max);
            let rubbish = (-j - max).exp();
            let weights: Vec<f32> = zs.iter().map(|&z| (z - max).exp()).collect();
            let total = rubbish + weights.iter().sum::<f32>();
            let p: Vec<f32> = weights.iter().map(|w| w / total).collect();
            for (k, (h, &a)) in d2xs.iter_mut().zip(xs).enumerate() {
                let (mut mean, mut square) = (0.0f32, 0.0f32);
                for (&pi, w) in p.iter().zip(self.prototypes.data.chunks_exact(inputs)) {
                    let s = 2.0 * (a - w[k]);
                    mean += pi * s;
                    square += pi * s * s;
                }
                let spread = (square - mean * mean).max(0.0);
                *h = scale * (2.0 * rubbish / total + spread);
            }
        }
    }
}

impl Layer for Rbf {
    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Rbf
    }

    fn describe(&self) -> String {
        let (classes, inputs) = self.dims();
        format!("EuclideanRBF({inputs}, {classes}, fixed 7x12 prototypes; scores -y)")
    }

    fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        vec![input[0], self.dims().0]
    }

    fn connections(&self, _input: &[usize]) -> usize {
        self.prototypes.len()
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut Context) {
        let (classes, inputs) = self.dims();
        for (xs, ys) in x
            .data
            .chunks_exact(inputs)
            .zip(y.data.chunks_exact_mut(classes))
        {
            for (score, w) in ys.iter_mut().zip(self.prototypes.data.chunks_exact(inputs)) {
                *score = -xs
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>();
            }
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let (classes, inputs) = self.dims();
        let rows = x
            .data
            .chunks_exact(inputs)
            .zip(dy.data.chunks_exact(classes));
        for ((xs, ds), dxs) in rows.zip(dx.data.chunks_exact_mut(inputs)) {
            dxs.fill(0.0);
            for (&d, w) in ds.iter().zip(self.prototypes.data.chunks_exact(inputs)) {
                for ((g, &a), &b) in dxs.iter_mut().zip(xs).zip(w) {
                    *g += -2.0 * d * (a - b);
                }
            }
        }
    }

    fn backward_curvature(
        &mut self,
        x: &Tensor,
        _y: &Tensor,
        d2y: &Tensor,
        d2x: Option<&mut Tensor>,
    ) {
        let Some(d2x) = d2x else { return };
        let (classes, inputs) = self.dims();
        let rows = x
            .data
            .chunks_exact(inputs)
            .zip(d2y.data.chunks_exact(classes));
        for ((xs, ds), d2xs) in rows.zip(d2x.data.chunks_exact_mut(inputs)) {
            d2xs.fill(0.0);
            for (&d, w) in ds.iter().zip(self.prototypes.data.chunks_exact(inputs)) {
                for ((h, &a), &b) in d2xs.iter_mut().zip(xs).zip(w) {
                    let slope = 2.0 * (a - b);
                    *h += d * slope * slope;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prototypes_are_ten_distinct_bitmaps_of_plus_and_minus_one() {
        for set in [Prototypes::Plain, Prototypes::Bold] {
            let p = set.tensor();
            assert_eq!(p.shape, [10, 84]);
            assert!(p.data.iter().all(|&v| v == 1.0 || v == -1.0));
            let rows: Vec<&[f32]> = p.data.chunks_exact(84).collect();
            for i in 0..10 {
                for j in i + 1..10 {
                    let differ = rows[i].iter().zip(rows[j]).filter(|(a, b)| a != b).count();
                    assert!(
                        differ >= 8,
                        "{set:?}: digits {i} and {j} differ in {differ} pixels only"
                    );
                }
            }
        }
    }

    /// The bold set is the plain one with each black pixel's right neighbour (left in the
    /// last column) blackened: every plain stroke is still there, and no row of the bold
    /// set has a black run one pixel wide.
    #[test]
    fn the_bold_prototypes_are_the_plain_ones_two_pixels_wide() {
        let (plain, bold) = (Prototypes::Plain.tensor(), Prototypes::Bold.tensor());
        for (p_row, b_row) in plain
            .data
            .chunks_exact(WIDTH)
            .zip(bold.data.chunks_exact(WIDTH))
        {
            let mut expected = p_row.to_vec();
            for (c, &v) in p_row.iter().enumerate() {
                if v > 0.0 {
                    expected[if c + 1 < WIDTH { c + 1 } else { c - 1 }] = 1.0;
                }
            }
            assert_eq!(b_row, expected.as_slice());
            let runs: Vec<usize> = (b_row.split(|&v| v < 0.0))
                .map(<[f32]>::len)
                .filter(|&n| n > 0)
                .collect();
            assert!(runs.iter().all(|&n| n >= 2), "{b_row:?}");
        }
        let ink = |t: &Tensor| t.data.iter().filter(|&&v| v > 0.0).count();
        assert!(
            ink(&bold) > ink(&plain) * 3 / 2,
            "{} vs {}",
            ink(&bold),
            ink(&plain)
        );
    }

    #[test]
    fn a_prototype_is_at_distance_zero_from_itself() {
        let mut rbf = Rbf::lenet5(Prototypes::Plain);
        let x = Tensor::from_vec(&[1, 84], rbf.prototypes.data[3 * 84..4 * 84].to_vec());
        let mut y = Tensor::zeros(&[1, 10]);
        let mut rng = crate::rng::Rng::new(0);
        let mut ctx = Context {
            mode: super::super::Mode::Eval,
            rng: &mut rng,
        };
        rbf.forward(&x, &mut y, &mut ctx);
        assert_eq!(y.data[3], 0.0);
        let best = (0..10).max_by(|&a, &b| y.data[a].total_cmp(&y.data[b]));
        assert_eq!(best, Some(3));
    }
}
