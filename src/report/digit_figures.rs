//! The report's figures of images: training and test digits, the best model's predictions,
//! its confusion matrix and most confident mistakes, and the paper's distortions.

use super::ReportError;
use super::draw::render;
use super::draw_digits::{Confusion, Digit, DigitGrid};
use super::numbers::pct;
use crate::data::DatasetImages;
use crate::doc::{Doc, Figure};

/// A softmax confidence as a percentage that never rounds up to a certainty it is not.
pub(crate) fn confidence(p: f32) -> String {
    if p >= 0.9995 {
        ">99.9%".into()
    } else {
        format!("{:.1}%", 100.0 * p)
    }
}

/// The predictions, confusion matrix and most confident mistakes of one saved model, from its
/// `predictions` on the test set ([`super::load::predict`]).
pub(crate) fn prediction_figures(
    doc: &mut Doc,
    predictions: &[(u8, f32)],
    who: &str,
    data: &DatasetImages,
) -> Result<(), ReportError> {
    doc.figure(first_predictions(predictions, who, data)?);
    doc.figure(confusion_figure(predictions, who, data)?);
    if let Some(mistakes) = mistakes_figure(predictions, who, data)? {
        doc.figure(mistakes);
    }
    Ok(())
}

/// Test image `i` with a label under it, framed in red when `flagged`.
fn test_digit(data: &DatasetImages, i: usize, label: String, flagged: bool) -> Digit {
    Digit {
        pixels: data.test.images.image(i).to_vec(),
        label,
        flagged,
    }
}

/// The first 50 test images with their predicted labels.
fn first_predictions(
    predictions: &[(u8, f32)],
    who: &str,
    data: &DatasetImages,
) -> Result<Figure, ReportError> {
    let labels = &data.test.labels;
    let names = data.dataset.short_names();
    let first: Vec<Digit> = (0..50.min(labels.len()))
        .map(|i| {
            let (p, conf) = predictions[i];
            let wrong = p != labels[i];
            let (p_name, true_name) = (names[p as usize], names[labels[i] as usize]);
            let label = if wrong && !data.dataset.is_mnist() {
                // Class names are long: the confidence is left to the correct ones.
                format!("{p_name}, is {true_name}")
            } else if wrong {
                format!("{p_name} ({}), is {true_name}", confidence(conf))
            } else {
                format!("{p_name} ({})", confidence(conf))
            };
            test_digit(data, i, label, wrong)
        })
        .collect();
    let wrong = match first.iter().filter(|d| d.flagged).count() {
        0 => "none of them is misclassified".to_string(),
        1 => "the one misclassified image is framed in red with its true label".to_string(),
        k => format!("the {k} misclassified ones are framed in red with their true label"),
    };
    render(
        "predictions",
        format!(
            "The first 50 test images, each with the label predicted by {who} and its softmax \
             confidence; {wrong}."
        ),
        &DigitGrid {
            title: "LeNet-5 - predictions".into(),
            columns: 10,
            digits: first,
        },
    )
}

/// The confusion matrix of the test set, with the most frequent mistake in the caption.
fn confusion_figure(
    predictions: &[(u8, f32)],
    who: &str,
    data: &DatasetImages,
) -> Result<Figure, ReportError> {
    let labels = &data.test.labels;
    let names = data.dataset.class_names();
    let mut counts = [[0u32; 10]; 10];
    for (i, &(p, _)) in predictions.iter().enumerate() {
        counts[labels[i] as usize][p as usize] += 1;
    }
    let errors: u32 = (0..10)
        .flat_map(|t| (0..10).map(move |p| (t, p)))
        .filter(|(t, p)| t != p)
        .map(|(t, p)| counts[t][p])
        .sum();
    let (mut top_t, mut top_p) = (0, 1);
    for t in 0..10 {
        for p in 0..10 {
            if t != p && counts[t][p] > counts[top_t][top_p] {
                (top_t, top_p) = (t, p);
            }
        }
    }
    let mut caption = format!(
        "Confusion matrix of {who} on the {} test images: {errors} mistakes ({}); the most \
         frequent is a {} read as {} ({} times).",
        labels.len(),
        pct(errors as f64 / labels.len().max(1) as f64),
        names[top_t],
        names[top_p],
        counts[top_t][top_p]
    );
    if !data.dataset.is_mnist() {
        let legend: Vec<String> = (names.iter().enumerate())
            .map(|(i, n)| format!("{i} {n}"))
            .collect();
        caption += &format!(" Labels: {}.", legend.join(", "));
    }
    render(
        "confusion",
        caption,
        &Confusion {
            title: "confusion matrix (test set)".into(),
            counts,
        },
    )
}

/// The 20 most confident mistakes, if there is any.
fn mistakes_figure(
    predictions: &[(u8, f32)],
    who: &str,
    data: &DatasetImages,
) -> Result<Option<Figure>, ReportError> {
    let labels = &data.test.labels;
    let names = data.dataset.short_names();
    let mut mistakes: Vec<usize> = (0..labels.len())
        .filter(|&i| predictions[i].0 != labels[i])
        .collect();
    mistakes.sort_by(|&a, &b| predictions[b].1.total_cmp(&predictions[a].1));
    mistakes.truncate(20);
    if mistakes.is_empty() {
        return Ok(None);
    }
    let digits = (mistakes.iter())
        .map(|&i| {
            let (p, conf) = predictions[i];
            let (t_name, p_name) = (names[labels[i] as usize], names[p as usize]);
            let label = format!("{t_name}→{p_name} ({})", confidence(conf));
            test_digit(data, i, label, true)
        })
        .collect();
    let figure = render(
        "mistakes",
        format!(
            "The {} most confident mistakes of {who}: true label → predicted label \
             (confidence). Several are ambiguous even to a person.",
            mistakes.len()
        ),
        &DigitGrid {
            title: "most confident mistakes".into(),
            columns: 10,
            digits,
        },
    )?;
    Ok(Some(figure))
}

/// The first 50 training images of `data` with their labels; `named` gives the figure the
/// dataset's name (a study over several datasets shows each).
pub(crate) fn samples_figure(
    doc: &mut Doc,
    data: &DatasetImages,
    named: bool,
) -> Result<(), ReportError> {
    let n = 50.min(data.train.len());
    let names = data.dataset.short_names();
    let digits = (0..n)
        .map(|i| Digit {
            pixels: data.train.images.image(i).to_vec(),
            label: names[data.train.labels[i] as usize].to_string(),
            flagged: false,
        })
        .collect();
    let title = data.dataset.title();
    let file = if named {
        format!("samples-{}", data.dataset)
    } else {
        "samples".to_string()
    };
    doc.figure(render(
        &file,
        format!(
            "The first 50 {title} training images with their labels (28 x 28 pixels, shown \
             before padding to 32 x 32)."
        ),
        &DigitGrid {
            title: format!("{title} dataset"),
            columns: 10,
            digits,
        },
    )?);
    Ok(())
}

/// The paper's distortions made visible: the first training image of each class, then eight
/// of its distortions (the ones passes 1 to 8 of a seed-0 run with `--distort` train on).
pub(crate) fn distortions_figure(doc: &mut Doc, data: &DatasetImages) -> Result<(), ReportError> {
    use crate::data::distort::{Distortion, RANGES};
    let set = &data.train;
    let names = data.dataset.short_names();
    let (rows, cols) = (set.images.rows, set.images.cols);
    let mut digits = Vec::new();
    for class in 0..10u8 {
        let Some(i) = set.labels.iter().position(|&l| l == class) else {
            continue;
        };
        let src = set.images.image(i);
        let name = names[class as usize];
        digits.push(Digit {
            pixels: src.to_vec(),
            label: name.to_string(),
            flagged: false,
        });
        let mut warped = vec![0.0f32; rows * cols];
        for pass in 0..8 {
            Distortion::draw(0, pass, i).apply(src, rows, cols, &mut warped);
            digits.push(Digit {
                pixels: warped
                    .iter()
                    .map(|v| v.round().clamp(0.0, 255.0) as u8)
                    .collect(),
                label: format!("pass {}", pass + 1),
                flagged: false,
            });
        }
    }
    let r = RANGES;
    doc.figure(render(
        "distortions",
        format!(
            "The paper's distortions (`--distort`): the first training image of each class, then \
             the eight random planar affine transformations it gets in the first eight passes of \
             a seed-0 run — translation up to {} pixels each way, scaling by {} to {}, squeezing \
             by {} to {} (horizontal factor s, vertical 1/s) and horizontal shear up to {}.",
            r.shift, r.scale.0, r.scale.1, r.squeeze.0, r.squeeze.1, r.shear
        ),
        &DigitGrid {
            title: "Distortions".into(),
            columns: 9,
            digits,
        },
    )?);
    Ok(())
}
