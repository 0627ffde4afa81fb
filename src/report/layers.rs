//! One test image through every layer of a trained network (the study's Fig. 5): the input,
//! each block's feature maps, the fully connected layers' values, and the output scores. For
//! the 1998 network, F6's 84 values are drawn as the 7 x 12 bitmap the RBF output compares
//! with each digit's prototype, beside the prototype of the predicted digit.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReportError;
use super::draw::{Draw, DrawResult, Picture, font, render};
use crate::data::{LabelledImages, Preprocess};
use crate::doc::Figure;
use crate::nn::{Context, LayerKind, Mode, Network};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// One row of the figure: a layer's output for the image.
pub struct Panel {
    pub title: String,
    /// Maps of `height` x `width` values each (a vector is one map).
    pub maps: Vec<Vec<f32>>,
    pub height: usize,
    pub width: usize,
}

/// The figure: panels top to bottom, then the output scores as bars.
pub struct LayerFigure {
    pub title: String,
    pub panels: Vec<Panel>,
    /// (class name, value shown): logits, or the RBF output's squared distances.
    pub scores: Vec<(String, f32)>,
    /// The predicted class: the largest logit, or the smallest distance.
    pub best: usize,
    /// What the scores are, for the bars' heading.
    pub score_label: String,
}

/// Side in pixels a map is drawn at (its longer side), and the gap between maps.
const MAP: usize = 56;
const GAP: i32 = 6;
const ROW: i32 = MAP as i32 + 34;
const LEFT: i32 = 12;
const WIDTH: u32 = 1120;

impl LayerFigure {
    /// Each panel's maps, scaled to about [`MAP`] on their longer side (whole pixels).
    fn scale(p: &Panel) -> usize {
        let side = p.height.max(p.width).max(1);
        ((MAP + side / 2) / side).max(1)
    }

    fn per_row(p: &Panel) -> usize {
        let w = p.width * Self::scale(p) + GAP as usize;
        ((WIDTH as usize - 2 * LEFT as usize) / w).max(1)
    }

    /// Rows of maps each panel takes.
    fn lines(p: &Panel) -> usize {
        p.maps.len().div_ceil(Self::per_row(p))
    }

    fn top_of(&self, k: usize) -> i32 {
        40 + (self.panels[..k].iter())
            .map(|p| Self::lines(p) as i32 * (p.height * Self::scale(p)) as i32 + 30)
            .sum::<i32>()
    }
}

impl Draw for LayerFigure {
    fn size(&self) -> (u32, u32) {
        let bottom = self.top_of(self.panels.len());
        (WIDTH, (bottom + ROW + 40) as u32)
    }

    fn pictures(&self) -> Vec<Picture> {
        let mut out = Vec::new();
        for (k, p) in self.panels.iter().enumerate() {
            let s = Self::scale(p);
            let (w, h) = (p.width * s, p.height * s);
            let per_row = Self::per_row(p);
            for (m, map) in p.maps.iter().enumerate() {
                let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let span = if hi > lo { hi - lo } else { 1.0 };
                let mut rgb = Vec::with_capacity(w * h * 3);
                for y in 0..h {
                    for x in 0..w {
                        let v = (map[(y / s) * p.width + x / s] - lo) / span;
                        let grey = (255.0 * (1.0 - v)).round().clamp(0.0, 255.0) as u8;
                        rgb.extend([grey, grey, grey]);
                    }
                }
                let (r, c) = (m / per_row, m % per_row);
                out.push(Picture {
                    x: LEFT + c as i32 * (w as i32 + GAP),
                    y: self.top_of(k) + 20 + r as i32 * h as i32,
                    width: w as u32,
                    height: h as u32,
                    rgb,
                });
            }
        }
        out
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let style = font;
        root.draw(&Text::new(self.title.clone(), (LEFT, 12), style(18)))?;
        for (k, p) in self.panels.iter().enumerate() {
            root.draw(&Text::new(
                p.title.clone(),
                (LEFT, self.top_of(k) + 2),
                style(13),
            ))?;
        }
        // The scores as bars, the largest filled.
        let top = self.top_of(self.panels.len());
        root.draw(&Text::new(
            self.score_label.clone(),
            (LEFT, top + 2),
            style(13),
        ))?;
        let lo = (self.scores.iter()).fold(f32::INFINITY, |m, s| m.min(s.1));
        let hi = (self.scores.iter()).fold(f32::NEG_INFINITY, |m, s| m.max(s.1));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let bar_w = 90;
        for (i, (name, v)) in self.scores.iter().enumerate() {
            let x = LEFT + i as i32 * (bar_w + 14);
            let h = (8.0 + (MAP as f32 - 8.0) * (v - lo) / span) as i32;
            let base = top + 22 + MAP as i32;
            let color = if i == self.best {
                RGBColor(40, 90, 160).filled()
            } else {
                RGBColor(170, 180, 195).filled()
            };
            root.draw(&Rectangle::new([(x, base - h), (x + bar_w, base)], color))?;
            root.draw(&Text::new(
                format!("{name} {v:.2}"),
                (x, base + 6),
                style(12),
            ))?;
        }
        Ok(())
    }
}

/// One input through every layer of a network: the input, then the output of every layer
/// that an activation does not immediately rework (the activations' outputs stand for the
/// layers before them), dropout and the output layer left out; and the output's scores.
pub struct Probe {
    pub panels: Vec<Panel>,
    /// For each panel, the row of [`Network::summary`] whose output it is (`None`: the input).
    pub rows: Vec<Option<usize>>,
    /// The network's outputs: logits, or for an RBF output the negated squared distances.
    pub scores: Vec<f32>,
    /// The predicted class: the largest score.
    pub best: usize,
    /// The prototypes `[10, 84]` of the 1998 network's Euclidean RBF output, if it has one.
    pub prototypes: Option<Tensor>,
}

/// Runs `net` in evaluation mode on `input` (one `[1, 1, 32, 32]` sample) with every layer's
/// output kept, and collects them ([`Probe`]).
pub fn probe(net: &mut Network, input: &Tensor) -> Probe {
    net.set_fold_relu(false);
    *net.input_mut() = input.clone();
    let scores = net
        .forward(&mut Context {
            mode: Mode::Eval,
            rng: &mut Rng::new(0),
        })
        .data
        .clone();
    let summary = net.summary();
    let mut panels = vec![maps_of("input", input, &input.shape[1..])];
    let mut rows = vec![None];
    for (i, r) in summary.iter().enumerate() {
        let next_is_activation =
            (summary.get(i + 1)).is_some_and(|n| n.kind == LayerKind::Activation);
        if next_is_activation || r.kind == LayerKind::Dropout || i + 1 == summary.len() {
            continue;
        }
        let title = format!("{} — {}", r.name, describe_shape(&r.output_shape));
        panels.push(maps_of(&title, net.activation(i), &r.output_shape));
        rows.push(Some(i));
    }
    let prototypes = net.prototypes().cloned();
    let best = (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap_or(0);
    Probe {
        panels,
        rows,
        scores,
        best,
        prototypes,
    }
}

/// The figure of `probe`, titled `title`: for the 1998 network F6's values become the 7 x 12
/// bitmap beside the prototype of the predicted digit.
pub fn figure_of(probe: Probe, title: String, class_names: [&str; 10]) -> LayerFigure {
    let Probe {
        mut panels,
        scores,
        best,
        prototypes,
        ..
    } = probe;
    let rbf = prototypes.is_some();
    if let Some(prototypes) = prototypes {
        // F6 as the bitmap the output compares, beside the prototype it is nearest to.
        let f6 = panels.pop().map(|p| p.maps.concat()).unwrap_or_default();
        let (w, h) = (crate::nn::rbf::WIDTH, crate::nn::rbf::HEIGHT);
        panels.push(Panel {
            title: format!(
                "F6's 84 values as a 7 x 12 bitmap, beside the prototype of {} (the nearest)",
                class_names[best]
            ),
            maps: vec![
                f6,
                prototypes.data[best * w * h..(best + 1) * w * h].to_vec(),
            ],
            height: h,
            width: w,
        });
    }
    LayerFigure {
        title,
        panels,
        // The RBF output's scores are -y; the bars show y itself.
        scores: (class_names.iter().zip(&scores))
            .map(|(n, s)| (n.to_string(), if rbf { -s } else { *s }))
            .collect(),
        best,
        score_label: if rbf {
            "output: squared distance y to each prototype (the smallest, filled, is the \
             prediction)"
                .into()
        } else {
            "output: logits (the largest, filled, is the prediction)".into()
        },
    }
}

/// The figure of image `index` of `set` through `net` ([`probe`], [`figure_of`]).
pub fn layer_figure(
    net: &mut Network,
    preprocess: Preprocess,
    set: &LabelledImages,
    index: usize,
    class_names: [&str; 10],
) -> LayerFigure {
    let mut input = Tensor::default();
    preprocess.fill_batch(&set.images, &[index as u32], &mut input);
    let probe = probe(net, &input);
    let label = class_names[set.labels[index] as usize];
    let title = format!(
        "Test image {index} (label {label}) through the network: predicted {}",
        class_names[probe.best]
    );
    figure_of(probe, title, class_names)
}

fn describe_shape(shape: &[usize]) -> String {
    match shape {
        [c, h, w] if *h > 1 || *w > 1 => format!("{c} maps of {h} x {w}"),
        [c, ..] => format!("{c} values"),
        [] => String::new(),
    }
}

/// A layer output of one sample (`shape` without the batch axis) as maps: planes of a
/// `[C, H, W]` output; a vector as one map of 12 rows (84 values: the paper's 7 x 12).
fn maps_of(title: &str, t: &Tensor, shape: &[usize]) -> Panel {
    let data = &t.data[..shape.iter().product::<usize>()];
    match shape {
        [c, h, w] if *h > 1 || *w > 1 => Panel {
            title: title.to_string(),
            maps: data
                .chunks_exact(h * w)
                .map(<[f32]>::to_vec)
                .take(*c)
                .collect(),
            height: *h,
            width: *w,
        },
        _ => {
            let n = data.len();
            let height = if n.is_multiple_of(12) { 12 } else { 1 };
            Panel {
                title: title.to_string(),
                maps: vec![data.to_vec()],
                height,
                width: n / height,
            }
        }
    }
}

/// The figure rendered as SVG and PNG, named `layers`.
pub fn render_layers(figure: &LayerFigure, index: usize) -> Result<Figure, ReportError> {
    render(
        "layers",
        format!(
            "Test image {index} through every layer: the input (32 x 32), each block's maps \
             (grey levels scaled per map, black the largest), the fully connected layers' \
             values as small bitmaps, and the output."
        ),
        figure,
    )
}

/// Any layer figure rendered as SVG and PNG, named `layers`.
pub fn render_figure(figure: &LayerFigure) -> Result<Figure, ReportError> {
    render(
        "layers",
        "An input through every layer: the input (32 x 32), each block's maps (grey levels \
         scaled per map, black the largest), the fully connected layers' values as small \
         bitmaps, and the output."
            .into(),
        figure,
    )
}

/// The layer figure of test image `index` for the model file `model`, as
/// `layers-INDEX.svg` and `.png` in `out`; returns the two paths.
pub fn show(
    model: &std::path::Path,
    library: &crate::data::DataCache,
    index: usize,
    out: &std::path::Path,
) -> Result<[std::path::PathBuf; 2], ReportError> {
    let (mut net, _, preprocess, dataset) =
        crate::train::checkpoint::load_model(model).map_err(ReportError::from)?;
    let data = library
        .get(dataset)
        .map_err(crate::train::TrainError::from)?;
    if index >= data.test.len() {
        return Err(ReportError::Invalid(format!(
            "--test-image {index}: the {} test set has images 0 to {}",
            dataset.title(),
            data.test.len() - 1
        )));
    }
    let figure = layer_figure(
        &mut net,
        preprocess,
        &data.test,
        index,
        dataset.class_names(),
    );
    let f = render_layers(&figure, index)?;
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let svg = out.join(format!("layers-{index}.svg"));
    let png = out.join(format!("layers-{index}.png"));
    crate::atomic_file::write(&svg, f.svg.as_bytes()).map_err(io(&svg))?;
    crate::atomic_file::write(&png, &f.png).map_err(io(&png))?;
    Ok([svg, png])
}
