//! Looking at models and results: `lenet model`, `lenet optimizers`, `lenet show` and
//! `lenet report`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use super::args::DataDirArgs;
use crate::data::DataCache;
use crate::optim::OptimizerName;
use crate::optim::config::BatchPolicy;
use crate::optim::hyper::HYPERS;
use crate::report;
use crate::study::execute::STUDY_FILE;
use crate::train::options::ModelOptions;

/// `lenet model`'s arguments: the options that describe the network.
#[derive(Args, Debug)]
pub(super) struct ModelArgs {
    #[command(flatten)]
    model: ModelOptions,
}

#[derive(Args, Debug)]
pub(super) struct ShowArgs {
    /// A run directory (with model.safetensors) or a model file.
    run: PathBuf,
    /// Which test image (0 to 9,999 on MNIST).
    #[arg(long, default_value_t = 0)]
    test_image: usize,
    /// Where the two files go [default: the run directory's figures/]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Args, Debug)]
pub(super) struct ReportArgs {
    /// A study directory (from `lenet study run`) or a run directory (from `lenet train`).
    pub(super) dir: PathBuf,
    /// Threads for the best model's pass over the test images [default: all cores, at most
    /// 16]
    #[arg(long)]
    pub(super) threads: Option<usize>,
    #[command(flatten)]
    pub(super) data: DataDirArgs,
}

/// Prints a model's layers with output shapes and parameter counts.
pub(super) fn print_model(args: &ModelArgs) -> Result<()> {
    let config = args.model.0.resolve().map_err(anyhow::Error::msg)?.model;
    let net = config.build(&mut crate::rng::Rng::new(0));
    let rows = net.summary();
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(5);
    let layer_w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let line = |name: &str, layer: &str, shape: &str, params: &str, connections: &str| {
        say!("{name:name_w$}  {layer:layer_w$}  {shape:>14}  {params:>10}  {connections:>11}")
    };
    line("name", "layer", "output", "parameters", "connections");
    let input: Vec<String> = net.input_shape().iter().map(|d| d.to_string()).collect();
    line("input", "", &input.join("x"), "", "");
    let thousands = crate::format::thousands;
    for r in &rows {
        let shape: Vec<String> = r.output_shape.iter().map(|d| d.to_string()).collect();
        line(
            &r.name,
            &r.layer,
            &shape.join("x"),
            &thousands(r.params),
            &thousands(r.connections),
        );
    }
    say!(
        "total: {} trainable parameters, {} connections (per image, as LeCun et al. 1998 count \
         them: products with a weight or a bias)",
        thousands(net.param_count()),
        thousands(rows.iter().map(|r| r.connections).sum())
    );
    if let Some(p) = net.prototypes() {
        say!(
            "\nthe output's fixed prototypes ({}), digits 0 to 9 (7x12 bitmaps: # = +1, . = -1):",
            config.prototypes.as_str()
        );
        let (w, h) = (crate::nn::rbf::WIDTH, crate::nn::rbf::HEIGHT);
        for row in 0..h {
            let cells: Vec<String> = (0..10)
                .map(|d| {
                    let bits = &p.data[(d * h + row) * w..][..w];
                    bits.iter()
                        .map(|&v| if v > 0.0 { '#' } else { '.' })
                        .collect()
                })
                .collect();
            say!("{}", cells.join("  "));
        }
    }
    Ok(())
}

pub(super) fn print_optimizers() {
    say!(
        "{:14} {:22} defaults (PyTorch's, except momentum 0.9 for momentum and nesterov; sdlm's are the 1998 paper's)",
        "optimizer",
        "samples per step"
    );
    for name in OptimizerName::ALL {
        let batch = match name.fixed_batch() {
            Some(BatchPolicy::FullBatch) => "whole training split".to_string(),
            Some(BatchPolicy::Fixed(b)) => b.to_string(),
            None => "--batch-size (64)".to_string(),
        };
        let defaults: Vec<String> = HYPERS
            .iter()
            .filter(|h| h.name != "decoupled_weight_decay")
            .filter_map(|h| Some(format!("{}={}", h.name, h.show(h.default_for(name)?))))
            .collect();
        say!("{:14} {:22} {}", name.as_str(), batch, defaults.join(", "));
    }
    say!("\n{:28} {:30} for", "hyperparameter", "values");
    for h in HYPERS {
        say!("{:28} {:30} {}", h.flag(), h.range.describe(), h.takers());
    }
    say!(
        "\nStudy files name them without dashes (lr_decay = 0.1, amsgrad = true). A hyperparameter \
         the optimizer does not have is an error.\n\
         Weight decay is L2 (added to the gradient) except for adamw, whose decay is decoupled; \
         --decoupled-weight-decay makes it decoupled for any optimizer.\n\
         Schedules (--schedule constant|step|exponential|cosine|lecun1998, --warmup-epochs N) work with every optimizer."
    );
}

/// Draws one test image through every layer of a trained model.
pub(super) fn show(args: &ShowArgs) -> Result<()> {
    let model = if args.run.is_dir() {
        args.run.join(crate::train::run::MODEL)
    } else {
        args.run.clone()
    };
    let out = (args.out.clone()).unwrap_or_else(|| match args.run.is_dir() {
        true => args.run.join("figures"),
        false => PathBuf::from("."),
    });
    let [svg, png] = report::layers::show(&model, &args.data.library(), args.test_image, &out)?;
    say!("wrote {} and {}", svg.display(), png.display());
    Ok(())
}

/// Writes the report of a study or run directory and says where it is.
pub(super) fn write_report(dir: &Path, data: &DataCache) -> Result<()> {
    let start = std::time::Instant::now();
    let written = if report::is_study_dir(dir) {
        report::study_report(dir, data)?
    } else if report::is_run_dir(dir) {
        report::run_report(dir, data)?
    } else {
        bail!(
            "{} is neither a study directory (with {STUDY_FILE}) nor a run directory (with \
             config.json and metrics.csv)",
            dir.display()
        );
    };
    eprintln!(
        "wrote {} and {} with {} figure{} (SVG and PNG in {}) in {:.1} s",
        written.markdown.display(),
        written.html.display(),
        written.figures,
        if written.figures == 1 { "" } else { "s" },
        dir.join("figures").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
