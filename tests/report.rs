//! Reports end to end on the MNIST subset: a small tuned 2x2 study's report has every section
//! and figure, its HTML is well-formed and needs nothing outside itself, its PNGs decode and
//! show something, and a real browser (headless Chromium) renders it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{chromium, lenet, run_study, study_file, subset_dir};

const SECTIONS: [&str; 11] = [
    "The answer",
    "Training curves",
    "Instruments",
    "Test accuracy",
    "The 2x2 design",
    "Tuning",
    "Time to target",
    "Predictions of the best configuration",
    "Data",
    "The original study's claims",
    "Reproduce",
];

const FIGURES: [&str; 18] = [
    "loss",
    "accuracy",
    "instruments-gradient",
    "instruments-weights",
    "instruments-units",
    "instruments-noise",
    "instruments-samples",
    "instruments-gauss-newton",
    "instruments-curvature",
    "test-accuracy",
    "interaction",
    "lr-sensitivity",
    "time-to-target",
    "predictions",
    "confusion",
    "mistakes",
    "layers",
    "samples",
];

/// The report fixture study, run once for all tests of this file (`study run` ends with the
/// report).
fn study_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, dir) = DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("report");
        let extra = ["--quiet", "--jobs", "2"];
        run_study(&study_file("report.toml"), &dir, &extra);
        (tmp, dir)
    });
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes a PNG into (width, height, RGB or RGBA bytes, bytes per pixel).
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, channels)
}

/// Fractions of pixels that are not white, and that are coloured (not a shade of grey: the
/// figures' lines, bands and markers; text is grey or black).
fn ink(pixels: &[u8], channels: usize) -> (f64, f64) {
    let (mut dark, mut coloured, mut n) = (0usize, 0usize, 0usize);
    for p in pixels.chunks_exact(channels) {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        n += 1;
        if r.min(g).min(b) < 235 {
            dark += 1;
        }
        if r.max(g).max(b) - r.min(g).min(b) > 60 {
            coloured += 1;
        }
    }
    (dark as f64 / n as f64, coloured as f64 / n as f64)
}

/// A study of the 1998 network sets each configuration against the paper: its test error
/// with the interval of the mean and the prediction interval of one run, the paper's one-run
/// 0.95% (without distortions) or 0.8% (with them) against the latter, the training error of
/// pass 19 against 0.35% likewise, and the error per pass as the paper's Fig. 5.
#[test]
fn a_1998_study_report_sets_each_protocol_against_the_paper() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lecun1998");
    run_study(
        &study_file("lecun1998.toml"),
        &dir,
        &["--quiet", "--jobs", "2"],
    );
    let md = read(&dir.join("report.md"));
    let section = md
        .split("## Against the 1998 paper")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap();
    let row = |name: &str| {
        (section.lines())
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{section}"))
            .to_string()
    };
    let cells = |line: &str| -> Vec<String> {
        line.split('|')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let (plain, distorted) = (cells(&row("sdlm")), cells(&row("sdlm-distort")));
    assert_eq!(plain[3], "0.95%");
    assert_eq!(distorted[3], "0.80%");
    for r in [&plain, &distorted] {
        // A test error with the interval of its mean and where one run falls, the paper's
        // one-run figure against the latter, a training error of pass 19 likewise.
        assert!(r[1].ends_with("%)") && r[1].contains(" to "), "{r:?}");
        assert!(r[2].ends_with('%') && r[2].contains(" to "), "{r:?}");
        assert!(
            r[4].starts_with("consistent with the paper (mean ")
                || r[4].starts_with("the paper's is below where one run falls (mean ")
                || r[4].starts_with("the paper's is above where one run falls (mean "),
            "{r:?}"
        );
        assert!(r[5].ends_with('%') || r[5].ends_with("%)"), "{r:?}");
        assert!(r[7].starts_with("0.35% ("), "{r:?}");
    }
    let svg = read(&dir.join("figures/error-per-pass.svg"));
    roxmltree::Document::parse(&svg).unwrap();
    assert!(md.contains("(figures/error-per-pass.svg)"));
    // Trained on every image: set against the paper, left out of the validation curves, and
    // its validation targets "not measured", never "never reached".
    let all = cells(&row("sdlm-all"));
    assert_eq!(all[3], "0.95%");
    assert!(
        md.contains(
            "Not drawn below, trained without a validation split (`valid_size = 0`): `sdlm-all`;"
        ) && md.contains("(figures/accuracy.svg)")
            && md.contains("(figures/loss.svg)"),
        "{md}"
    );
    assert!(
        !svg.contains("sdlm-all"),
        "a curve for a run without validation"
    );
    assert!(
        md.contains("Not measured (trained without a validation split): `sdlm-all`."),
        "{md}"
    );
    assert!(
        !(md.lines()).any(|l| l.contains("Never reached it") && l.contains("`sdlm-all`, ")),
        "{md}"
    );
    let summary = read(&dir.join("summary.md"));
    let line = (summary.lines())
        .find(|l| l.starts_with("| sdlm-all |"))
        .unwrap();
    assert!(line.contains("| no validation split |"), "{line}");
    // What each configuration changes against the paper's protocol, and the sentence for the
    // one change against the configuration that changes nothing else.
    assert!(
        md.contains(
            "| `sdlm-distort` | base rate 0.00002 (paper 0.0005); distortions; 19 passes |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "Each change against `sdlm`, which departs in nothing else (every configuration \
             here: base rate 0.00002 (paper 0.0005); 19 passes), means over seeds: \
             `sdlm-distort` (distortions) trains: lowest validation error "
        ),
        "{md}"
    );
}

#[test]
fn study_report_has_every_section_and_figure() {
    let dir = study_dir();
    let md = read(&dir.join("report.md"));
    let html = read(&dir.join("report.html"));
    // A study of the study's model is not set against the 1998 paper.
    assert!(!md.contains("Against the 1998 paper"));
    for section in SECTIONS {
        assert!(
            md.contains(&format!("## {section}")),
            "report.md lacks {section}"
        );
        assert!(html.contains(section), "report.html lacks {section}");
    }
    for name in FIGURES {
        assert!(
            md.contains(&format!("(figures/{name}.svg)")),
            "report.md does not show {name}"
        );
        assert!(
            html.contains(&format!("<figure id=\"figure-{name}\">")),
            "report.html does not show {name}"
        );
        let svg = read(&dir.join(format!("figures/{name}.svg")));
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        let (w, h, pixels, channels) = decode_png(&dir.join(format!("figures/{name}.png")));
        assert!(w >= 400 && h >= 200, "{name}.png is {w}x{h}");
        let (dark, _) = ink(&pixels, channels);
        assert!(
            dark > 0.01 && dark < 0.9,
            "{name}.png: {:.1}% of its pixels are not white",
            100.0 * dark
        );
    }
    // Conclusions are generated: they name the best configuration and both factors.
    let summary: serde_json::Value =
        serde_json::from_str(&read(&dir.join("summary.json"))).unwrap();
    let best = summary["best"].as_str().unwrap();
    assert!(md.contains(&format!("`{best}` has the highest mean test accuracy")));
    assert!(md.contains("Dropout: ") && md.contains("Batch normalization: "));
    assert!(md.contains("Interaction (the effect of batch normalization with dropout"));
    // Every pair and effect with its paired analysis and its power; the family of the
    // comparisons with the best; the test set's own sampling error.
    assert!(md.contains("| paired 95% CI |") && md.contains("| seeds to detect 0.1 points |"));
    assert!(md.contains("paired 98.33% CI (per-seed contrasts, joint 95%)"));
    assert!(md.contains(
        "The smallest effects these runs detect (paired over seeds, at the family's level 5% / 3)"
    ));
    assert!(md.contains("comparisons with the best, paired t-tests over the seeds they share"));
    assert!(md.contains("on 500 images has a 95% Wilson interval of"));
    assert!(md.contains("with McNemar's exact test of the images only one of the two gets right"));
    // The original 2x2 claims were made with Adam at 1e-3, batch 64, 15 epochs: not set
    // against this 2-epoch study, and the report says why.
    assert!(!md.contains("its text claims 78.00%"));
    assert!(md.contains(
        "Those about dropout and batch normalization are not set against these runs: they were \
         made with adam at lr 0.001, batch 64, 15 epochs"
    ));
    // Every run's settings: 8 tuning runs and 8 final runs.
    assert_eq!(md.matches("| tuning lr=").count(), 8);
    assert_eq!(md.matches("| final |").count(), 8);
}

#[test]
fn study_html_is_well_formed_and_self_contained() {
    let html = read(&study_dir().join("report.html"));
    let body = html
        .strip_prefix("<!DOCTYPE html>\n")
        .expect("starts with the HTML5 doctype");
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("report.html: {e}"));
    let mut svgs = 0;
    for node in doc.descendants().filter(|n| n.is_element()) {
        let tag = node.tag_name().name();
        assert!(
            !matches!(tag, "script" | "link" | "iframe" | "object" | "embed"),
            "report.html has a <{tag}>"
        );
        svgs += usize::from(tag == "svg");
        for attr in node.attributes() {
            if matches!(attr.name(), "src" | "href") {
                let v = attr.value();
                assert!(
                    v.starts_with("data:") || v.starts_with('#'),
                    "<{tag} {}=\"{v:.60}\"> points outside the file",
                    attr.name()
                );
            }
        }
    }
    assert_eq!(svgs, FIGURES.len(), "one inline SVG per figure");
    assert!(!html.contains("url(") && !html.contains("@import"));
}

/// `lenet report DIR` on the subset.
fn report(dir: &Path) -> assert_cmd::Command {
    let mut cmd = lenet();
    cmd.arg("report")
        .arg(dir)
        .arg("--data-dir")
        .arg(subset_dir());
    cmd
}

/// Runs a browser command and asserts that it succeeded.
fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Chromium in headless mode with a fresh profile, under `timeout` so a browser that hangs
/// fails the test instead of stalling the suite.
fn headless(profile: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn chromium_renders_the_html_report() {
    if common::skip_without_chromium("chromium_renders_the_html_report") {
        return;
    }
    let report = study_dir().join("report.html");
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let tmp = tempfile::tempdir().unwrap();

    // The DOM as the browser built it: every figure is an SVG element there.
    let out = succeed(headless(&tmp.path().join("p1")).arg("--dump-dom").arg(&url));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        dom.matches("<svg").count(),
        FIGURES.len(),
        "figures in the DOM"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    for bad in ["CONSOLE", "Failed to load", "Uncaught", "net::ERR"] {
        assert!(!log.contains(bad), "Chromium reported {bad}:\n{log}");
    }

    // A screenshot of the page's top: the conclusions and the first figures, rendered.
    let shot = tmp.path().join("report.png");
    succeed(
        headless(&tmp.path().join("p2"))
            .arg("--window-size=1200,2400")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url),
    );
    let (w, h, pixels, channels) = decode_png(&shot);
    assert_eq!((w, h), (1200, 2400));
    let (dark, coloured) = ink(&pixels, channels);
    assert!(dark > 0.02, "the page is blank: {:.2}% ink", 100.0 * dark);
    // The loss and accuracy curves (coloured lines and bands) are within the first 2400 px.
    assert!(
        coloured > 0.002,
        "no figure rendered: {:.3}% coloured pixels",
        100.0 * coloured
    );
}

#[test]
fn run_report_shows_the_runs_curves_and_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    lenet()
        .args(["train", "--epochs", "2", "--valid-size", "500", "--quiet"])
        .arg("--out")
        .arg(&run)
        .arg("--data-dir")
        .arg(subset_dir())
        .assert()
        .success();
    report(&run).assert().success();
    let md = read(&run.join("report.md"));
    for section in [
        "## Result",
        "## Training curves",
        "## Predictions",
        "## Configuration",
    ] {
        assert!(md.contains(section), "run report lacks {section}");
    }
    for name in ["loss", "accuracy", "predictions", "confusion", "samples"] {
        assert!(
            run.join(format!("figures/{name}.png")).is_file(),
            "{name}.png"
        );
        assert!(
            run.join(format!("figures/{name}.svg")).is_file(),
            "{name}.svg"
        );
    }
    assert!(md.contains("Test accuracy **"));
    // A run that records no instruments has no section for them.
    assert!(!md.contains("## Instruments"));
}

#[test]
fn a_run_that_diverged_in_its_first_epoch_gets_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    lenet()
        .args([
            "train",
            "--optimizer",
            "minibatch-sgd",
            "--lr",
            "1000",
            "--epochs",
            "2",
        ])
        .args(["--valid-size", "500", "--quiet", "--out"])
        .arg(&run)
        .arg("--data-dir")
        .arg(subset_dir())
        .assert()
        .failure();
    report(&run)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let md = read(&run.join("report.md"));
    assert!(md.contains("The run diverged in epoch 1"), "{md}");
    assert!(md.contains("No epoch finished"), "{md}");
}

#[test]
fn report_of_a_directory_without_results_says_what_it_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let out = report(tmp.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is neither a study directory") && err.lines().count() == 1,
        "{err}"
    );
}
