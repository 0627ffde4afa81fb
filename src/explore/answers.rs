//! The answers of `lenet explore`'s API, one function per endpoint: runs listed and
//! described, kernels, mistakes, dataset images, the drawing's preprocessing, the forward
//! pass through every layer, saliency and the layer figure. [`super::api`] routes requests
//! to them.

use serde::{Deserialize, Serialize};

use super::ExploreError;
use super::api::{Answer, HttpError, MAX_MISTAKES, Reply, State, fail, json};
use super::catalogue::Entry;
use super::drawing;
use super::models::Loaded;
use crate::data::{DatasetImages, IMAGE_SIDE, INPUT_SIDE};
use crate::nn::LayerKind;
use crate::nn::network::LayerSummary;
use crate::report::layers::{Probe, figure_of};
use crate::tensor::Tensor;
use crate::train::{Summary, TrainConfig};

/// The input of a forward pass, saliency or figure: exactly one of an image, a test image or
/// a training image of the run's dataset; `class` for saliency only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    /// 784 (28 x 28, padded to 32 x 32 as the datasets are) or 1024 (32 x 32) intensities in
    /// [0, 1], row by row, 0 the background.
    pub image: Option<Vec<f32>>,
    pub test_image: Option<usize>,
    pub train_image: Option<usize>,
    /// The class whose saliency is wanted [default: the predicted one].
    pub class: Option<usize>,
}

/// Where a forward pass's input came from.
#[derive(Serialize)]
pub(super) struct Source {
    kind: &'static str,
    index: Option<usize>,
    label: Option<u8>,
    /// The label's class name.
    class: Option<&'static str>,
}

fn dataset<'a>(state: &'a State, loaded: &Loaded) -> Result<&'a DatasetImages, HttpError> {
    state.library.get(loaded.dataset).map_err(|e| {
        fail(
            503,
            format!(
                "the {} images are not available here: {e}",
                loaded.dataset.title()
            ),
        )
    })
}

fn check_pixels(pixels: &[f32]) -> Result<(), HttpError> {
    match pixels.iter().position(|v| !(0.0..=1.0).contains(v)) {
        Some(i) => Err(fail(
            422,
            format!(
                "pixel {i} is {}; expected intensities from 0 (background) to 1 (ink)",
                pixels[i]
            ),
        )),
        None => Ok(()),
    }
}

/// The model input that `body` names, and where it came from.
fn input_of(
    state: &State,
    loaded: &Loaded,
    body: &InputBody,
) -> Result<(Tensor, Source), HttpError> {
    let given = [
        body.image.is_some(),
        body.test_image.is_some(),
        body.train_image.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(fail(
            422,
            "expected exactly one of \"image\" (784 or 1024 intensities in [0, 1]), \
             \"test_image\" or \"train_image\" (an index)",
        ));
    }
    if let Some(image) = &body.image {
        let (small, large) = (IMAGE_SIDE * IMAGE_SIDE, INPUT_SIDE * INPUT_SIDE);
        if image.len() != small && image.len() != large {
            return Err(fail(
                422,
                format!(
                    "\"image\" has {} values; expected {small} (28 x 28) or {large} (32 x 32)",
                    image.len()
                ),
            ));
        }
        check_pixels(image)?;
        let source = Source {
            kind: "image",
            index: None,
            label: None,
            class: None,
        };
        return Ok((loaded.input_of(image), source));
    }
    let data = dataset(state, loaded)?;
    let (set, index, kind) = match (body.test_image, body.train_image) {
        (Some(i), _) => (&data.test, i, "test"),
        (_, Some(i)) => (&data.train, i, "train"),
        _ => unreachable!("one source, checked above"),
    };
    if index >= set.len() {
        return Err(fail(
            422,
            format!(
                "{kind} image {index} does not exist: the {} {kind} set has images 0 to {}",
                data.dataset.title(),
                set.len() - 1
            ),
        ));
    }
    let label = set.labels[index];
    let source = Source {
        kind,
        index: Some(index),
        label: Some(label),
        class: Some(data.dataset.class_names()[label as usize]),
    };
    Ok((loaded.input_of_image(set, index), source))
}

/// What `GET /api` answers: every endpoint.
pub(super) fn endpoints() -> serde_json::Value {
    serde_json::json!({
        "endpoints": [
            "GET /api/runs",
            "GET /api/runs/{id}",
            "GET /api/runs/{id}/kernels",
            "GET /api/runs/{id}/mistakes",
            "GET /api/runs/{id}/images/{test|train}/{index}",
            "POST /api/runs/{id}/forward",
            "POST /api/runs/{id}/saliency",
            "POST /api/runs/{id}/figure.svg",
            "POST /api/runs/{id}/figure.png",
            "POST /api/preprocess",
        ],
        "input": "forward, saliency and the figures take {\"image\": [784 or 1024 values in [0, 1]]}, {\"test_image\": N} or {\"train_image\": N}; saliency also \"class\"",
    })
}

/// A run as the list shows it.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    /// The run's directory.
    dir: String,
    dataset: Option<&'static str>,
    arch: Option<&'static str>,
    optimizer: Option<String>,
    test_accuracy: Option<f64>,
    epochs: Option<usize>,
    /// Why the run cannot be shown now (its directory removed, say).
    error: Option<String>,
}

/// `entry` as listed, from its configuration and summary as read.
fn listed<'a>(
    entry: &'a Entry,
    config: &Result<TrainConfig, ExploreError>,
    summary: &Option<Summary>,
) -> Listed<'a> {
    let c = config.as_ref().ok();
    Listed {
        entry,
        dir: entry.dir.display().to_string(),
        dataset: c.map(|c| c.data.dataset.as_str()),
        arch: c.map(|c| c.model.arch.as_str()),
        optimizer: c.map(|c| format!("{} {}", c.optimizer.name.as_str(), c.optimizer.describe())),
        test_accuracy: summary.as_ref().and_then(|s| s.test_accuracy),
        epochs: summary.as_ref().map(|s| s.epochs),
        error: config.as_ref().err().map(|e| e.to_string()),
    }
}

pub(super) fn list(state: &State) -> Reply {
    let runs: Vec<Listed> = (state.catalogue.entries())
        .map(|e| listed(e, &e.config(), &e.summary()))
        .collect();
    json(&serde_json::json!({ "runs": runs }))
}

/// A layer of the model, as details and forward passes describe it.
#[derive(Serialize)]
struct LayerInfo {
    /// The `state_dict` module path, e.g. `feature_extractor.0`.
    name: String,
    /// A short name: `conv1`, `pool1`, `fc1`, ..., or the 1998 network's own (`c1`, `s2`).
    role: String,
    layer: String,
    shape: Vec<usize>,
    params: usize,
}

/// Short names of the layers: the module's own when it has one (the 1998 network's `c1`,
/// `s2_squash`), else the block's kind and number (`conv1`, `conv1 → relu`, `pool1`, `bn1`).
fn roles(rows: &[LayerSummary]) -> Vec<String> {
    let (mut conv, mut pool, mut fc, mut bn) = (0, 0, 0, 0);
    let mut last = String::new();
    rows.iter()
        .map(|r| {
            // The layer's class name, lower case: `relu`, `dropout`.
            let l = r.layer.as_str();
            let class = l.split('(').next().unwrap_or(l).to_lowercase();
            let role = if !r.name.contains('.') {
                r.name.clone()
            } else {
                match r.kind {
                    LayerKind::Conv => {
                        conv += 1;
                        format!("conv{conv}")
                    }
                    LayerKind::Pool | LayerKind::Subsample => {
                        pool += 1;
                        format!("pool{pool}")
                    }
                    LayerKind::Linear => {
                        fc += 1;
                        format!("fc{fc}")
                    }
                    LayerKind::BatchNorm => {
                        bn += 1;
                        format!("bn{bn}")
                    }
                    LayerKind::Activation => format!("{last} → {class}"),
                    LayerKind::Dropout | LayerKind::Rbf => class,
                }
            };
            last = role.clone();
            role
        })
        .collect()
}

fn layer_infos(rows: &[LayerSummary]) -> Vec<LayerInfo> {
    (rows.iter().zip(roles(rows)))
        .map(|(r, role)| LayerInfo {
            name: r.name.clone(),
            role,
            layer: r.layer.clone(),
            shape: r.output_shape.clone(),
            params: r.params,
        })
        .collect()
}

/// The convolution whose maps row `i`'s maps are, through the per-map layers after it
/// (activation, pooling, subsampling, batch normalization): its row.
fn source_conv(rows: &[LayerSummary], mut i: usize) -> Option<usize> {
    loop {
        let kind = rows[i].kind;
        if kind == LayerKind::Conv {
            return Some(i);
        }
        if i == 0 || !kind.is_per_map() {
            return None;
        }
        i -= 1;
    }
}

/// What the network's scores are: probabilities after a softmax, or an RBF output's distances.
fn output_kind(loaded: &Loaded) -> &'static str {
    match loaded.summary.last().map(|r| r.kind) {
        Some(LayerKind::Rbf) => "distances",
        _ => "probabilities",
    }
}

pub(super) fn details(state: &State, entry: &Entry) -> Answer {
    let loaded = state.models.get(entry)?;
    let config = Ok(entry.config()?);
    let summary = entry.summary();
    let prototypes = loaded.prototypes.as_ref().map(|p| {
        p.data
            .chunks_exact(p.data.len() / 10)
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>()
    });
    Ok(json(&serde_json::json!({
        "run": listed(entry, &config, &summary),
        "config": config.ok(),
        "summary": summary,
        "class_names": loaded.dataset.class_names(),
        "output": output_kind(&loaded),
        "layers": layer_infos(&loaded.summary),
        "prototypes": prototypes,
        "prototype_shape": [crate::nn::rbf::HEIGHT, crate::nn::rbf::WIDTH],
    })))
}

/// Every convolution's kernels: `[out, in, k, k]` weights, and for a sparse connection table
/// (the 1998 network's C3) which input maps each output map reads.
pub(super) fn kernels(loaded: &Loaded) -> Answer {
    let rows = &loaded.summary;
    let roles = roles(rows);
    let params = loaded.params();
    let mut layers = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r.kind != LayerKind::Conv {
            continue;
        }
        let wanted = format!("{}.weight", r.name);
        let Some((_, w, frozen)) = params.iter().find(|(n, _, _)| *n == wanted) else {
            continue;
        };
        let [o, c, kh, kw] = w.shape[..] else {
            continue;
        };
        let connected = frozen.as_ref().map(|f| {
            (0..o)
                .map(|oi| {
                    (0..c)
                        .map(|ci| !f[(oi * c + ci) * kh * kw])
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        });
        layers.push(serde_json::json!({
            "name": r.name,
            "role": roles[i],
            "shape": w.shape,
            "values": w.data,
            "connected": connected,
        }));
    }
    Ok(json(&serde_json::json!({ "layers": layers })))
}

pub(super) fn mistakes(state: &State, loaded: &Loaded) -> Answer {
    let data = dataset(state, loaded)?;
    let all = loaded.mistakes(data);
    Ok(json(&serde_json::json!({
        "dataset": data.dataset.as_str(),
        "total": data.test.len(),
        "count": all.len(),
        "mistakes": &all[..all.len().min(MAX_MISTAKES)],
    })))
}

pub(super) fn image(state: &State, loaded: &Loaded, split: &str, index: &str) -> Answer {
    let data = dataset(state, loaded)?;
    let set = match split {
        "test" => &data.test,
        "train" => &data.train,
        _ => {
            return Err(fail(
                404,
                format!("no image set '{split}': expected test or train"),
            ));
        }
    };
    let index: usize = index.parse().map_err(|_| {
        fail(
            404,
            format!(
                "'{index}' is not an image index (expected 0 to {})",
                set.len() - 1
            ),
        )
    })?;
    if index >= set.len() {
        return Err(fail(
            404,
            format!(
                "{split} image {index} does not exist: expected 0 to {}",
                set.len() - 1
            ),
        ));
    }
    let label = set.labels[index];
    Ok(json(&serde_json::json!({
        "split": split,
        "index": index,
        "label": label,
        "class": data.dataset.class_names()[label as usize],
        "height": set.images.rows,
        "width": set.images.cols,
        "pixels": set.images.image(index),
    })))
}

/// `POST /api/preprocess`: a drawing of any size as MNIST's 28 x 28.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Drawing {
    width: usize,
    height: usize,
    /// `height` rows of `width` intensities in [0, 1].
    pixels: Vec<f32>,
}

pub(super) fn preprocess(d: &Drawing) -> Answer {
    let max = drawing::MAX_SIDE;
    if !(1..=max).contains(&d.width) || !(1..=max).contains(&d.height) {
        return Err(fail(
            422,
            format!(
                "a drawing is 1 to {max} pixels on each side, not {} x {}",
                d.width, d.height
            ),
        ));
    }
    if d.pixels.len() != d.width * d.height {
        return Err(fail(
            422,
            format!(
                "\"pixels\" has {} values; a {} x {} drawing has {}",
                d.pixels.len(),
                d.width,
                d.height,
                d.width * d.height
            ),
        ));
    }
    check_pixels(&d.pixels)?;
    let image = drawing::to_mnist(&d.pixels, d.width, d.height);
    Ok(json(
        &serde_json::json!({ "height": IMAGE_SIDE, "width": IMAGE_SIDE, "image": image }),
    ))
}

/// One panel of a forward pass: a layer's output as maps.
#[derive(Serialize)]
struct Maps<'a> {
    name: &'a str,
    role: &'a str,
    layer: &'a str,
    title: &'a str,
    height: usize,
    width: usize,
    maps: &'a [Vec<f32>],
    min: f32,
    max: f32,
    /// The convolution whose kernels made these maps (`GET .../kernels` has them).
    kernels_of: Option<&'a str>,
}

#[derive(Serialize)]
struct Class {
    class: usize,
    name: &'static str,
    /// The probability, or the RBF output's squared distance.
    value: f64,
}

#[derive(Serialize)]
struct Forward<'a> {
    run: &'a str,
    source: Source,
    input: Maps<'a>,
    layers: Vec<Maps<'a>>,
    /// `probabilities` (softmax of the logits) or `distances` (the RBF output's squared
    /// distances to each digit's prototype: the smallest is the prediction).
    output: &'static str,
    values: Vec<f64>,
    /// The network's raw outputs: logits, or minus the squared distances.
    scores: &'a [f32],
    prediction: Class,
    top: Vec<Class>,
}

fn range(maps: &[Vec<f32>]) -> (f32, f32) {
    let all = maps.iter().flatten().copied();
    let lo = all.clone().fold(f32::INFINITY, f32::min);
    (lo, all.fold(f32::NEG_INFINITY, f32::max))
}

pub(super) fn forward(state: &State, loaded: &Loaded, body: &InputBody) -> Answer {
    if body.class.is_some() {
        return Err(fail(
            422,
            "\"class\" is for saliency; a forward pass takes none",
        ));
    }
    let (input, source) = input_of(state, loaded, body)?;
    let probe = loaded.forward(&input);
    let rows = &loaded.summary;
    let roles = roles(rows);
    let names = loaded.dataset.class_names();
    let kind = output_kind(loaded);
    let values: Vec<f64> = if kind == "distances" {
        probe.scores.iter().map(|&s| -(s as f64)).collect()
    } else {
        softmax(&probe.scores)
    };
    let class = |c: usize| Class {
        class: c,
        name: names[c],
        value: values[c],
    };
    let mut order: Vec<usize> = (0..probe.scores.len()).collect();
    order.sort_by(|&a, &b| probe.scores[b].total_cmp(&probe.scores[a]));
    let maps = |k: usize| {
        let p = &probe.panels[k];
        let (min, max) = range(&p.maps);
        let row = probe.rows[k];
        Maps {
            name: row.map_or("input", |i| rows[i].name.as_str()),
            role: row.map_or("input", |i| roles[i].as_str()),
            layer: row.map_or("", |i| rows[i].layer.as_str()),
            title: &p.title,
            height: p.height,
            width: p.width,
            maps: &p.maps,
            min,
            max,
            kernels_of: row
                .and_then(|i| source_conv(rows, i))
                .map(|j| rows[j].name.as_str()),
        }
    };
    let (prediction, top) = (
        class(probe.best),
        order.iter().take(3).map(|&c| class(c)).collect(),
    );
    let answer = Forward {
        run: &loaded.id,
        source,
        input: maps(0),
        layers: (1..probe.panels.len()).map(maps).collect(),
        output: kind,
        values,
        scores: &probe.scores,
        prediction,
        top,
    };
    // Every layer's output as text, into a buffer large enough from the start (a float32
    // takes at most 16 bytes as JSON, usually about 12).
    let values: usize = probe
        .panels
        .iter()
        .map(|p| p.maps.len() * p.height * p.width)
        .sum();
    let mut body = Vec::with_capacity(16 * values + 4096);
    serde_json::to_writer(&mut body, &answer).expect("serialisable");
    Ok(Reply { body, ..json(&()) })
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits.iter().map(|&z| (z as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

pub(super) fn saliency(state: &State, loaded: &Loaded, body: &InputBody) -> Answer {
    if let Some(c) = body.class.filter(|&c| c >= 10) {
        return Err(fail(
            422,
            format!("class {c} does not exist: expected 0 to 9"),
        ));
    }
    let (input, source) = input_of(state, loaded, body)?;
    let (class, gradient, scores) = loaded.saliency(&input, body.class);
    let names = loaded.dataset.class_names();
    Ok(json(&serde_json::json!({
        "run": loaded.id,
        "source": source,
        "class": class,
        "name": names[class],
        "score": scores[class],
        "height": INPUT_SIDE,
        "width": INPUT_SIDE,
        "gradient": gradient,
    })))
}

/// The report's layer figure of the input, as SVG or PNG.
pub(super) fn figure(
    state: &State,
    entry: &Entry,
    loaded: &Loaded,
    body: &InputBody,
    png: bool,
) -> Answer {
    if body.class.is_some() {
        return Err(fail(422, "\"class\" is for saliency; a figure takes none"));
    }
    let (input, source) = input_of(state, loaded, body)?;
    let names = loaded.dataset.class_names();
    let probe: Probe = loaded.forward(&input);
    let what = match (source.kind, source.index, source.class) {
        (kind, Some(i), Some(c)) => format!("{} image {i} (label {c})", title_case(kind)),
        _ => "A drawing".to_string(),
    };
    let title = format!(
        "{what} through {}: predicted {}",
        entry.label, names[probe.best]
    );
    let f = crate::report::layers::render_figure(&figure_of(probe, title, names))
        .map_err(|e| fail(500, e.to_string()))?;
    let (content_type, body, ext) = match png {
        true => ("image/png", f.png, "png"),
        false => ("image/svg+xml", f.svg.into_bytes(), "svg"),
    };
    Ok(Reply {
        status: 200,
        content_type,
        body,
        attachment: Some(format!("layers-{}.{ext}", entry.id)),
    })
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{BatchNormAt, ModelConfig};
    use crate::rng::Rng;

    #[test]
    fn layers_get_short_names_and_maps_their_convolution() {
        let model = ModelConfig {
            batch_norm: BatchNormAt::All,
            dropout: 0.5,
            ..ModelConfig::default()
        };
        let rows = model.build(&mut Rng::new(0)).summary();
        let names = roles(&rows);
        let want = [
            "conv1",
            "conv1 → relu",
            "pool1",
            "bn1",
            "conv2",
            "conv2 → relu",
            "pool2",
            "bn2",
            "conv3",
            "conv3 → relu",
            "bn3",
            "fc1",
            "fc1 → relu",
            "dropout",
            "fc2",
        ];
        assert_eq!(names, want);
        // bn2's maps are conv2's (row 4), through its ReLU and pooling; fc1's are no maps.
        assert_eq!(source_conv(&rows, 7), Some(4));
        assert_eq!(source_conv(&rows, 12), None);
        let lecun = ModelConfig {
            arch: crate::nn::Arch::Lecun1998,
            ..ModelConfig::default()
        };
        let rows = lecun.build(&mut Rng::new(0)).summary();
        assert_eq!(roles(&rows)[..3], ["c1", "c1_squash", "s2"]);
        // S2 subsamples C1's maps one by one.
        assert_eq!(source_conv(&rows, 3), Some(0));
    }
}
