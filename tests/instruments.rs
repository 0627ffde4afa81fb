//! Per-step instruments (`--instruments cheap|noise|curvature|all`): they observe and never change
//! training, a paused and resumed run writes the same file as a straight one, and each
//! quantity agrees with what it is defined as.

mod common;

use std::path::Path;

use common::{lenet, subset_dir, succeeded};
use lenet::train::instruments::NOISE_COLUMNS;

fn train(out: &Path, extra: &[&str]) {
    succeeded(
        lenet()
            .args(["train", "-q", "--valid-size", "500", "--data-dir"])
            .arg(subset_dir())
            .arg("--out")
            .arg(out)
            .args(extra),
    );
}

/// The file's header and rows.
fn read(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("instruments.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

#[test]
fn instruments_never_change_training() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, flags) in [
        ("adam", &["--epochs", "2"][..]),
        (
            "bn-dropout-rmsprop",
            &[
                "--epochs",
                "1",
                "--batch-norm",
                "first",
                "--dropout",
                "0.4",
                "--optimizer",
                "rmsprop",
                "--lr",
                "0.001",
            ],
        ),
        ("sgd", &["--epochs", "1", "--optimizer", "sgd"]),
    ] {
        let plain = tmp.path().join(name);
        train(&plain, flags);
        assert!(!plain.join("instruments.csv").exists());
        let model = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        for set in ["cheap", "noise", "curvature", "all"] {
            let measured = tmp.path().join(format!("{name}-{set}"));
            let mut with = flags.to_vec();
            with.extend(["--instruments", set, "--instruments-every", "7"]);
            train(&measured, &with);
            assert_eq!(model(&plain), model(&measured), "{name}, {set}: model bits");
            assert!(!read(&measured).1.is_empty(), "{name}, {set}");
        }
        // The noise and curvature sets add their columns to the cheap set's, which they leave
        // as they are; all three together are the same values.
        let file = |set: &str| read(&tmp.path().join(format!("{name}-{set}")));
        let (cheap, noise, curvature, all) =
            (file("cheap"), file("noise"), file("curvature"), file("all"));
        let n = cheap.0.len();
        let layers = cheap
            .0
            .iter()
            .filter(|c| c.starts_with("grad_norm/"))
            .count();
        let mut noise_cols: Vec<String> = NOISE_COLUMNS.map(String::from).to_vec();
        noise_cols.extend(
            cheap.0[7..7 + layers]
                .iter()
                .map(|c| c.replace("grad_norm/", "snr/")),
        );
        assert_eq!(noise.0[..n], cheap.0[..], "{name}");
        let end = n + noise_cols.len();
        assert_eq!(noise.0[n..end], noise_cols[..], "{name}");
        // Then what the units did: ReLU layers' dead fractions, batch norm's statistics.
        let units = &noise.0[end..];
        assert!(
            units.iter().any(|c| c.starts_with("dead/")),
            "{name}: {units:?}"
        );
        let bn = name.starts_with("bn");
        assert_eq!(
            units.iter().any(|c| c.starts_with("bn_std/")),
            bn,
            "{name}: {units:?}"
        );
        for r in &noise.1 {
            for (c, v) in units.iter().zip(&r[end..]) {
                let fraction = c.starts_with("dead/");
                assert!(!fraction || (0.0..=1.0).contains(v), "{name}, {c}: {v}");
                assert!(!c.starts_with("bn_std/") || *v > 0.0, "{name}, {c}: {v}");
            }
        }
        for (r, k) in noise.1.iter().zip(&cheap.1) {
            assert_eq!(r[..n], k[..], "{name}");
            let (variance, norm_test) = (r[n + 3], r[n + 6]);
            if name == "sgd" {
                // Batches of one sample (the per-sample SGD's): no spread to measure.
                assert!(r[n + 2..end].iter().all(|v| v.is_nan()), "{name}: {r:?}");
            } else {
                assert!(variance > 0.0 && norm_test > 0.0, "{name}: {r:?}");
            }
        }
        let m = noise.0.len();
        assert_eq!(all.0[..m], noise.0[..], "{name}");
        assert_eq!(all.0[m..], curvature.0[n..], "{name}");
        for ((a, r), c) in all.1.iter().zip(&noise.1).zip(&curvature.1) {
            let same =
                |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same(&a[..m], r) && same(&a[m..], &c[n..]), "{name}");
        }
        assert_eq!(curvature.0[..n], cheap.0[..], "{name}");
        assert_eq!(
            curvature.0[n..],
            [
                "sharpness",
                "smallest_eigenvalue",
                "hessian_products",
                "gauss_newton_trace"
            ]
        );
        for (c, k) in curvature.1.iter().zip(&cheap.1) {
            assert_eq!(c[..n], k[..], "{name}");
            let (largest, smallest, products) = (c[n], c[n + 1], c[n + 2]);
            assert!(largest > 0.0 && smallest <= largest, "{name}: {c:?}");
            // The Gauss–Newton matrix is positive semi-definite; its trace is positive.
            assert!(c[n + 3] > 0.0, "{name}: {c:?}");
            assert!((1.0..=20.0).contains(&products), "{name}: {c:?}");
        }
    }
}

#[test]
fn a_resumed_run_writes_the_same_instruments() {
    for set in ["cheap", "noise", "curvature"] {
        resumed_and_straight_agree(set);
    }
}

fn resumed_and_straight_agree(set: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (straight, paused) = (tmp.path().join("straight"), tmp.path().join("paused"));
    let flags = [
        "--epochs",
        "3",
        "--instruments",
        set,
        "--instruments-every",
        "3",
    ];
    train(&straight, &flags);
    let mut first = flags.to_vec();
    first.extend(["--stop-after", "1"]);
    train(&paused, &first);
    succeeded(
        lenet()
            .args(["train", "-q", "--data-dir"])
            .arg(subset_dir())
            .arg("--resume")
            .arg(&paused),
    );
    let file = |d: &Path| std::fs::read(d.join("instruments.csv")).unwrap();
    assert_eq!(file(&straight), file(&paused), "{set}");
}

/// With plain SGD the update is lr times the gradient, layer by layer; the distance from the
/// initial weights after the first step is that step's update; the parameter norm of the last
/// step is the saved model's; a step is recorded every K.
#[test]
fn each_quantity_is_what_it_says() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("sgd");
    let lr = 0.05;
    // Plain SGD on steps of 32, at lr 0.05.
    let sgd = [
        "--epochs",
        "1",
        "--optimizer",
        "minibatch-sgd",
        "--lr",
        "0.05",
        "--batch-size",
        "32",
        "--instruments",
        "cheap",
    ];
    train(&run, &sgd);
    let (header, rows) = read(&run);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // 1,500 training images in steps of 32.
    assert_eq!(rows.len(), 1500usize.div_ceil(32));
    let layers: Vec<&str> = (header.iter())
        .filter_map(|h| h.strip_prefix("grad_norm/"))
        .collect();
    assert_eq!(layers.len(), 5, "{header:?}");
    for row in &rows {
        assert_eq!(row[col("lr")], lr);
        for l in &layers {
            let (g, u) = (
                row[col(&format!("grad_norm/{l}"))],
                row[col(&format!("update_norm/{l}"))],
            );
            assert!(
                (u - lr * g).abs() <= 1e-5 * lr * g,
                "{l}: update {u}, lr x gradient {}",
                lr * g
            );
        }
        let total: f64 = (layers.iter())
            .map(|l| row[col(&format!("grad_norm/{l}"))].powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((total - row[col("grad_norm")]).abs() <= 1e-9 * total);
    }
    let first = &rows[0];
    let update: f64 = (layers.iter())
        .map(|l| first[col(&format!("update_norm/{l}"))].powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((first[col("distance_from_init")] - update).abs() <= 1e-9 * update);
    let (net, ..) = lenet::train::load_model(&run.join("model.safetensors")).unwrap();
    let saved: f64 = (net.params().iter())
        .flat_map(|(_, p)| p.value.data.iter())
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    // The same sum of squares, added in another order.
    let recorded = rows.last().unwrap()[col("param_norm")];
    assert!(
        (recorded - saved).abs() <= 1e-12 * saved,
        "{recorded} against {saved}"
    );

    // Every 10th step.
    let every = tmp.path().join("every");
    let mut sparse_flags = sgd.to_vec();
    sparse_flags.extend(["--instruments-every", "10"]);
    train(&every, &sparse_flags);
    let (_, sparse) = read(&every);
    let steps: Vec<f64> = sparse.iter().map(|r| r[1]).collect();
    assert_eq!(steps, (1..=4).map(|k| (10 * k) as f64).collect::<Vec<_>>());
    assert_eq!(sparse[0], rows[9]);
}

/// The recorded values do not depend on the number of threads sharing the work.
#[test]
fn instruments_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    for set in ["cheap", "noise", "curvature"] {
        let flags = [
            "--epochs",
            "1",
            "--instruments",
            set,
            "--instruments-every",
            "4",
        ];
        let file = |threads: &str| {
            let dir = tmp.path().join(format!("{set}-{threads}"));
            let mut with = flags.to_vec();
            with.extend(["--threads", threads]);
            train(&dir, &with);
            std::fs::read(dir.join("instruments.csv")).unwrap()
        };
        assert_eq!(file("1"), file("3"), "{set}");
    }
}
