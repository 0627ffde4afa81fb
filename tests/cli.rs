//! The command line, run as a user runs it: model summaries, clear errors on bad input,
//! training runs and their files, determinism across thread counts, pause and resume.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::{lenet, subset_copy, subset_dir};

/// stderr of a failed command: exactly one line, starting with `Error:`.
/// SIGTERM during `lenet train` says where the run stands and the exact command that resumes
/// it, and exits with 143; the resumed run then finishes.
#[test]
fn sigterm_says_how_to_resume_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lenet"))
        .args(["train", "--valid-size", "500", "--epochs", "200", "--out"])
        .arg(&run)
        .arg("--data-dir")
        .arg(subset_dir())
        .env_remove("LENET_DATA")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint, then terminate.
    let start = std::time::Instant::now();
    while !run.join("model.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 60, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let resume = format!("lenet train --resume {}", run.display());
    assert!(
        stderr.contains("terminated (SIGTERM)") && stderr.contains(&resume),
        "{stderr}"
    );
}

fn one_error_line(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "expected failure");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("Error: "), "{stderr}");
    lines[0].to_string()
}

fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data-dir",
        data,
        "--valid-size",
        "500",
        "--epochs",
        epochs,
        "--out",
        out,
        "-q",
    ]
}

/// What `lenet model ARGS` prints, asserting that it succeeds.
fn model_text(args: &[&str]) -> String {
    let out = lenet().arg("model").args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

#[test]
fn study_model_has_61706_parameters() {
    let text = model_text(&[]);
    assert!(
        text.contains("total: 61,706 trainable parameters"),
        "{text}"
    );
    assert!(
        text.contains("6x28x28") && text.contains("120x1x1"),
        "{text}"
    );
}

#[test]
fn lecun1998_layers_have_the_papers_parameter_and_connection_counts() {
    let text = model_text(&["--arch", "lecun1998"]);
    // LeCun et al. (1998), section II-B: each layer's trainable parameters and connections.
    for (layer, params, connections) in [
        ("c1 ", "156", "122,304"),
        ("s2 ", "12", "5,880"),
        ("c3 ", "1,516", "151,600"),
        ("s4 ", "32", "2,000"),
        ("c5 ", "48,120", "48,120"),
        ("f6 ", "10,164", "10,164"),
        ("output ", "0", "840"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(layer))
            .unwrap_or_else(|| panic!("no {layer} in\n{text}"));
        let cells: Vec<&str> = line.split_whitespace().rev().take(2).collect();
        assert_eq!(cells, [connections, params], "{layer}: {line}");
    }
    assert!(
        text.contains("total: 60,000 trainable parameters, 340,908 connections"),
        "{text}"
    );
    // The prototypes it prints, side by side, are the bitmaps of src/nn/prototypes.txt.
    assert_prints_prototypes(&text, "prototypes.txt");
}

/// `--prototypes bold` builds the RBF output against the bold drawing, which `lenet model`
/// prints; the study's model refuses the option.
#[test]
fn lecun1998_with_bold_prototypes_prints_them_and_lenet5_refuses_them() {
    let text = model_text(&["--arch", "lecun1998", "--prototypes", "bold"]);
    assert!(text.contains("fixed prototypes (bold)"), "{text}");
    assert_prints_prototypes(&text, "prototypes-bold.txt");
    let out = lenet()
        .args(["model", "--prototypes", "bold"])
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("--prototypes") && line.contains("lenet5"),
        "{line}"
    );
}

/// The twelve lines after "fixed prototypes" in `text` are the ten bitmaps of
/// `src/nn/<file>` side by side.
fn assert_prints_prototypes(text: &str, file: &str) {
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/nn")
            .join(file),
    )
    .unwrap();
    let blocks: Vec<Vec<&str>> = file
        .lines()
        .filter(|l| !l.starts_with("# "))
        .collect::<Vec<_>>()
        .chunks(13)
        .map(|b| b[1..].to_vec())
        .collect();
    assert_eq!(blocks.len(), 10);
    let printed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("fixed prototypes"))
        .skip(1)
        .collect();
    assert_eq!(printed.len(), 12, "{text}");
    for (row, line) in printed.iter().enumerate() {
        let cells: Vec<&str> = line.split("  ").collect();
        let want: Vec<&str> = blocks.iter().map(|b| b[row]).collect();
        assert_eq!(cells, want, "row {row}");
    }
}

#[test]
fn truncated_idx_file_is_one_clear_error() {
    let dir = subset_copy();
    let labels = dir.path().join("train-labels-idx1-ubyte");
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 10]).unwrap();
    let d = dir.path().to_str().unwrap();
    let run = dir.path().join("run");
    let out = lenet()
        .args(train_args(d, run.to_str().unwrap(), "1"))
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains("train-labels-idx1-ubyte"), "{line}");
    assert!(
        line.contains("truncated") && line.contains("found 1990"),
        "{line}"
    );
}

#[test]
fn wrong_magic_number_is_one_clear_error() {
    let dir = subset_copy();
    let images = dir.path().join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[3] = 0x01; // a label file's magic
    bytes[2] = 0x08;
    std::fs::write(&images, &bytes).unwrap();
    let d = dir.path().to_str().unwrap();
    let run = dir.path().join("run");
    let out = lenet()
        .args(train_args(d, run.to_str().unwrap(), "1"))
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains("train-images-idx3-ubyte"), "{line}");
    assert!(line.contains("magic number 0x00000801"), "{line}");
    assert!(line.contains("expected an IDX image file"), "{line}");
}

/// Serves `body` for every request on a loopback port, `requests` times, then stops.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/")
}

#[test]
fn checksum_mismatch_names_the_mirror_and_fails() {
    // A mirror that serves a valid gzip stream of the wrong content.
    let wrong = std::fs::read(subset_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let mirror = serve(wrong, 1);
    let cache = tempfile::tempdir().unwrap();
    let out = lenet()
        .args(["data", "fetch", "-q", "--mirror", &mirror, "--data-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains("SHA-256 mismatch"), "{line}");
    assert!(line.contains(&mirror), "{line}");
    // Nothing that looks complete is left behind.
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

/// `lenet data fetch` verifies the files already in the data directory: the subset is not
/// MNIST, so its files fail their SHA-256 (one flipped pixel would too), with the file named
/// and the repair said; nothing is downloaded (the mirror does not answer) and nothing is
/// changed. Training reads the same directory without hashing it (a subset is a fine data
/// directory).
#[test]
fn fetch_verifies_files_already_present() {
    let copy = subset_copy();
    let before: Vec<Vec<u8>> = ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]
        .iter()
        .map(|n| std::fs::read(copy.path().join(n)).unwrap())
        .collect();
    let out = lenet()
        .args([
            "data",
            "fetch",
            "--mirror",
            "http://127.0.0.1:9/",
            "--data-dir",
        ])
        .arg(copy.path())
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("SHA-256 mismatch for train-images-idx3-ubyte")
            && line.contains("delete it and run `lenet data fetch` again"),
        "{line}"
    );
    let after: Vec<Vec<u8>> = ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]
        .iter()
        .map(|n| std::fs::read(copy.path().join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn flags_that_do_not_apply_are_errors() {
    let d = subset_dir();
    let mut cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--optimizer", "sgd", "--batch-size", "64"],
            "does not apply to sgd".into(),
        ),
        (
            vec!["--optimizer", "momentum", "--beta1", "0.8"],
            "beta1 does not apply to momentum; it applies to adam and adamw".into(),
        ),
        (
            vec!["--optimizer", "adam", "--rho", "0.9"],
            "rho does not apply to adam".into(),
        ),
        (vec!["--dropout", "1.5"], "dropout probability 1.5".into()),
        (
            vec!["--arch", "lecun1998", "--batch-norm", "first"],
            "apply to the study's model".into(),
        ),
        (
            vec!["--gamma", "0.5"],
            "--gamma does not apply to --schedule constant".into(),
        ),
        (
            vec!["--schedule", "cosine", "--step-size", "2"],
            "--step-size does not apply to --schedule cosine".into(),
        ),
        (
            vec!["--schedule", "step", "--gamma", "inf"],
            "gamma = inf is out of range".into(),
        ),
        (
            vec!["--schedule", "cosine", "--eta-min", "-1"],
            "eta_min = -1 is out of range".into(),
        ),
    ];
    // Every momentum flag with every optimizer that has no momentum buffer (12 combinations,
    // once accepted and ignored).
    for optimizer in ["adam", "adamw", "adagrad", "adadelta"] {
        for flag in [
            vec!["--momentum", "0.5"],
            vec!["--dampening", "0.5"],
            vec!["--classic-momentum"],
        ] {
            let name = flag[0][2..].replace('-', "_");
            let mut args = vec!["--optimizer", optimizer];
            args.extend(flag);
            cases.push((args, format!("{name} does not apply to {optimizer}")));
        }
    }
    // Values out of their ranges, once accepted and then blamed on the learning rate.
    for (flag, value, expected) in [
        ("--beta2", "2", "in [0, 1)"),
        ("--beta1", "-0.1", "in [0, 1)"),
        ("--eps", "0", "above 0"),
        ("--eps", "-1", "above 0"),
        ("--weight-decay", "nan", "at or above 0"),
        ("--weight-decay", "-0.1", "at or above 0"),
        ("--lr", "inf", "above 0"),
    ] {
        cases.push((
            vec![flag, value],
            format!("is out of range: expected a finite number {expected}")
                .replace("a finite number in", "a number in"),
        ));
    }
    cases.push((
        vec!["--optimizer", "rmsprop", "--alpha", "1"],
        "alpha = 1 is out of range: expected a number in [0, 1)".into(),
    ));
    cases.push((
        vec!["--optimizer", "momentum", "--momentum", "1.5"],
        "momentum = 1.5 is out of range: expected a number in [0, 1]".into(),
    ));
    for (args, needle) in cases {
        let out = tempfile::tempdir().unwrap();
        let run = out.path().join("run");
        let output = lenet()
            .arg("train")
            .args(&args)
            .arg("--data-dir")
            .arg(&d)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let line = one_error_line(&output);
        assert!(line.contains(&needle), "{args:?}: {line}");
        assert!(!run.exists(), "{args:?} left a run directory");
    }
}

/// `--valid-size 0` trains without validation: the terminal says n/a, metrics.csv leaves the
/// validation fields empty and summary.json has null, never a measured-looking 0. A run
/// refused at start (a validation split larger than the training set) leaves no directory,
/// so the corrected command runs.
#[test]
fn no_validation_split_means_no_validation_figures() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (d, out) = (subset_dir(), run.to_str().unwrap().to_string());
    let with_valid_size = |size| {
        let mut args = train_args(d.to_str().unwrap(), &out, "1");
        let pos = args.iter().position(|a| *a == "--valid-size").unwrap();
        args[pos + 1] = size;
        args
    };
    let refused = lenet().args(with_valid_size("70000")).output().unwrap();
    assert!(one_error_line(&refused).contains("validation size 70000"));
    assert!(!run.exists());
    let args = with_valid_size("0");
    let output = lenet().args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("valid loss    n/a") && stdout.contains("valid acc     n/a"),
        "{stdout}"
    );
    let metrics = read(&run.join("metrics.csv"));
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[4], row[5]), ("", ""), "{metrics}");
    let summary: serde_json::Value =
        serde_json::from_str(&read(&run.join("summary.json"))).unwrap();
    assert!(summary["final_valid_accuracy"].is_null() && summary["best_valid_accuracy"].is_null());
    assert!(summary["test_accuracy"].as_f64().unwrap() > 0.0);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// metrics.csv without the two seconds columns.
fn metrics_without_seconds(dir: &Path) -> String {
    read(&dir.join("metrics.csv"))
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn train_writes_a_complete_run_directory_and_eval_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let d = subset_dir();
    let out = lenet()
        .args(train_args(d.to_str().unwrap(), run.to_str().unwrap(), "2"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("epoch 1/2  train loss") && text.contains("test accuracy"),
        "{text}"
    );
    let config: serde_json::Value = serde_json::from_str(&read(&run.join("config.json"))).unwrap();
    assert_eq!(config["optimizer"]["name"], "adam");
    assert_eq!(config["batch_size"], 64);
    let metrics = read(&run.join("metrics.csv"));
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let summary: serde_json::Value =
        serde_json::from_str(&read(&run.join("summary.json"))).unwrap();
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.1 && acc <= 1.0, "{summary}");
    assert_eq!(summary["parameters"], 61706);
    // eval on the checkpoint reproduces the summary's test accuracy.
    let out = lenet()
        .args(["eval", "--checkpoint"])
        .arg(run.join("model.safetensors"))
        .arg("--data-dir")
        .arg(&d)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("test accuracy {:.2}%", 100.0 * acc)),
        "{text} vs {acc}"
    );
    // A second train into the same directory refuses rather than overwrite.
    let out = lenet()
        .args(train_args(d.to_str().unwrap(), run.to_str().unwrap(), "2"))
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("--resume"));
}

#[test]
fn thread_count_does_not_change_results() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    // With and without the paper's distortions (their own stream, drawn per image and pass).
    for distort in [false, true] {
        let mut dirs = Vec::new();
        for threads in ["1", "2"] {
            let run = tmp.path().join(format!("t{threads}-{distort}"));
            let mut args = train_args(d.to_str().unwrap(), run.to_str().unwrap(), "2");
            args.extend([
                "--threads",
                threads,
                "--batch-norm",
                "first",
                "--dropout",
                "0.4",
            ]);
            if distort {
                args.push("--distort");
            }
            lenet().args(&args).assert().success();
            dirs.push(run);
        }
        assert_eq!(
            metrics_without_seconds(&dirs[0]),
            metrics_without_seconds(&dirs[1])
        );
        let a = std::fs::read(dirs[0].join("model.safetensors")).unwrap();
        let b = std::fs::read(dirs[1].join("model.safetensors")).unwrap();
        assert!(
            a == b,
            "weights differ between 1 and 2 threads (distort {distort})"
        );
    }
    let weights = |name: &str| std::fs::read(tmp.path().join(name).join("model.safetensors"));
    assert!(
        weights("t1-false").unwrap() != weights("t1-true").unwrap(),
        "distortions change the training"
    );
    // A distorted run's report shows the distortions.
    let run = tmp.path().join("t1-true");
    lenet()
        .arg("report")
        .arg(&run)
        .arg("--data-dir")
        .arg(&d)
        .assert()
        .success();
    assert!(run.join("figures/distortions.svg").is_file());
    let plain = tmp.path().join("t1-false");
    lenet()
        .arg("report")
        .arg(&plain)
        .arg("--data-dir")
        .arg(&d)
        .assert()
        .success();
    assert!(!plain.join("figures/distortions.svg").exists());
}

#[test]
fn paused_and_resumed_run_is_bit_identical_to_a_straight_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let d = d.to_str().unwrap();
    let straight = tmp.path().join("straight");
    let paused = tmp.path().join("paused");
    let extra = ["--dropout", "0.4", "--schedule", "cosine", "--distort"];
    let mut args = train_args(d, straight.to_str().unwrap(), "3");
    args.extend(extra);
    lenet().args(&args).assert().success();
    let mut args = train_args(d, paused.to_str().unwrap(), "3");
    args.extend(extra);
    args.extend(["--stop-after", "1"]);
    let out = lenet()
        .args(&args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("paused after epoch 1")
    );
    assert!(!paused.join("summary.json").exists());
    lenet()
        .args(["train", "-q", "--data-dir", d, "--resume"])
        .arg(&paused)
        .assert()
        .success();
    assert_eq!(
        metrics_without_seconds(&straight),
        metrics_without_seconds(&paused)
    );
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(paused.join("model.safetensors")).unwrap();
    assert!(a == b, "model.safetensors differs after resume");
    let s: serde_json::Value = serde_json::from_str(&read(&straight.join("summary.json"))).unwrap();
    let p: serde_json::Value = serde_json::from_str(&read(&paused.join("summary.json"))).unwrap();
    assert_eq!(s["test_accuracy"], p["test_accuracy"]);
    assert_eq!(s["test_loss"], p["test_loss"]);
}

/// The 1998 protocol — RBF output, MAP criterion, sdlm (its second derivatives re-estimated
/// before every pass) with the paper's schedule, distortions — gives the same bits with 1
/// and 2 threads, and a run killed (SIGKILL) in the middle of a pass resumes from its last
/// checkpoint to the same bits as a straight run.
#[test]
fn sdlm_with_distortions_is_bit_identical_across_threads_and_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let d = d.to_str().unwrap();
    let protocol = [
        "--arch",
        "lecun1998",
        "--optimizer",
        "sdlm",
        "--lr",
        "2e-5",
        "--schedule",
        "lecun1998",
        "--distort",
    ];
    let run = |name: &str, threads: &str| {
        let dir = tmp.path().join(name);
        let mut args = train_args(d, dir.to_str().unwrap(), "3");
        args.extend(protocol);
        args.extend(["--threads", threads]);
        lenet().args(&args).assert().success();
        dir
    };
    let (one, two) = (run("t1", "1"), run("t2", "2"));
    assert_eq!(metrics_without_seconds(&one), metrics_without_seconds(&two));
    let model = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        model(&one) == model(&two),
        "weights differ between 1 and 2 threads"
    );
    // Killed as soon as the first pass's checkpoint is in place: in the second pass.
    let killed = tmp.path().join("killed");
    let mut args = train_args(d, killed.to_str().unwrap(), "3");
    args.extend(protocol);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lenet"))
        .args(&args)
        .env_remove("LENET_DATA")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let epochs_done = || {
        std::fs::read_to_string(killed.join("metrics.csv"))
            .map_or(0, |m| m.lines().count().saturating_sub(1))
    };
    while epochs_done() < 1 {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("summary.json").exists(),
        "killed before the end"
    );
    assert!(epochs_done() < 3);
    lenet()
        .args(["train", "-q", "--data-dir", d, "--resume"])
        .arg(&killed)
        .assert()
        .success();
    assert_eq!(
        metrics_without_seconds(&one),
        metrics_without_seconds(&killed)
    );
    assert!(
        model(&one) == model(&killed),
        "model.safetensors differs after the kill"
    );
}

/// A checkpoint cut short at any point of its writing (the kill the study tests aim at,
/// made here at chosen moments) resumes to the straight run's results: a set not all
/// written is dropped, a whole one is moved into place even when half of it already was.
#[test]
fn checkpoint_cut_short_resumes_to_the_straight_results() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let d = d.to_str().unwrap();
    let run = |name: &str, stop_after: Option<&str>| {
        let dir = tmp.path().join(name);
        let mut args = train_args(d, dir.to_str().unwrap(), "3");
        if let Some(epoch) = stop_after {
            args.extend(["--stop-after", epoch]);
        }
        lenet().args(&args).assert().success();
        dir
    };
    let straight = run("straight", None);
    let (at1, at2) = (run("at1", Some("1")), run("at2", Some("2")));
    let files = ["optimizer.safetensors", "metrics.csv", "model.safetensors"];
    // (name, files of epoch 2 left pending, files of epoch 2 already in place)
    let cases = [
        ("not-whole", &files[..2], &[][..]),
        ("whole", &files[..], &[][..]),
        ("half-moved", &files[2..], &files[..2]),
    ];
    for (name, pending, moved) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(&at1).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        for f in pending {
            std::fs::copy(at2.join(f), dir.join(format!("{f}.next"))).unwrap();
        }
        for f in moved {
            std::fs::copy(at2.join(f), dir.join(f)).unwrap();
        }
        lenet()
            .args(["train", "-q", "--data-dir", d, "--resume"])
            .arg(&dir)
            .assert()
            .success();
        assert_eq!(
            metrics_without_seconds(&straight),
            metrics_without_seconds(&dir),
            "{name}"
        );
        let a = std::fs::read(straight.join("model.safetensors")).unwrap();
        let b = std::fs::read(dir.join("model.safetensors")).unwrap();
        assert!(a == b, "{name}: model.safetensors differs after resume");
        for f in files {
            assert!(
                !dir.join(format!("{f}.next")).exists(),
                "{name}: {f}.next left"
            );
        }
    }
}

/// Resuming a run whose model file is of another architecture names model.safetensors, the
/// file at fault, not the optimizer's.
#[test]
fn a_foreign_model_file_is_named_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (run, arch) in [(&a, "lenet5"), (&b, "lecun1998")] {
        let out = run.to_str().unwrap();
        lenet()
            .args(train_args(d.to_str().unwrap(), out, "2"))
            .args(["--arch", arch, "--stop-after", "1", "--optimizer", "sgd"])
            .assert()
            .success();
    }
    std::fs::copy(b.join("model.safetensors"), a.join("model.safetensors")).unwrap();
    let out = lenet()
        .args(["train", "-q", "--data-dir"])
        .arg(&d)
        .arg("--resume")
        .arg(&a)
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains(&a.join("model.safetensors").display().to_string())
            && !line.contains("optimizer.safetensors"),
        "{line}"
    );
}

/// `--dataset fashion-mnist` trains on Fashion-MNIST's files (under `fashion-mnist/` in the
/// data directory): the run's config.json and model file name the dataset, `lenet eval`
/// evaluates on it by default (the summary's accuracy) and on MNIST when asked (another
/// accuracy), and the report labels its figures with the class names.
#[test]
fn a_fashion_mnist_run_remembers_its_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let d = subset_dir();
    let mut args = train_args(d.to_str().unwrap(), run.to_str().unwrap(), "2");
    args.extend(["--dataset", "fashion-mnist"]);
    lenet().args(&args).assert().success();
    let config: serde_json::Value = serde_json::from_str(&read(&run.join("config.json"))).unwrap();
    assert_eq!(config["data"]["dataset"], "fashion-mnist");
    let summary: serde_json::Value =
        serde_json::from_str(&read(&run.join("summary.json"))).unwrap();
    let acc = summary["test_accuracy"].as_f64().unwrap();
    let eval = |extra: &[&str]| {
        let out = lenet()
            .args(["eval", "--checkpoint"])
            .arg(run.join("model.safetensors"))
            .arg("--data-dir")
            .arg(&d)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let own = format!("test accuracy {:.2}%", 100.0 * acc);
    assert!(eval(&[]).contains(&own), "{} vs {own}", eval(&[]));
    assert!(!eval(&["--dataset", "mnist"]).contains(&own));
    lenet()
        .args(["report"])
        .arg(&run)
        .arg("--data-dir")
        .arg(&d)
        .assert()
        .success();
    let report = read(&run.join("report.md"));
    assert!(
        report.contains("Labels: 0 T-shirt/top, 1 Trouser")
            && report.contains("Fashion-MNIST training images"),
        "{report}"
    );
}

/// `lenet show` draws a test image through every layer of a trained model, F6 of the 1998
/// network as its bitmap beside the nearest prototype; an image past the test set is a clear
/// error.
#[test]
fn show_draws_a_test_image_through_the_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let run = tmp.path().join("rbf");
    let mut args = train_args(d.to_str().unwrap(), run.to_str().unwrap(), "1");
    args.extend(["--arch", "lecun1998", "--optimizer", "sgd", "--lr", "0.001"]);
    lenet().args(&args).assert().success();
    let out = lenet()
        .args(["show", "--test-image", "7", "--data-dir"])
        .arg(&d)
        .arg(&run)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(out).unwrap().contains("layers-7.svg"));
    let svg = std::fs::read_to_string(run.join("figures/layers-7.svg")).unwrap();
    for text in [
        "c1_squash",
        "s4_squash",
        "84 values as a 7 x 12 bitmap",
        "squared distance",
    ] {
        assert!(svg.contains(text), "{text} missing");
    }
    assert!(run.join("figures/layers-7.png").is_file());
    let bad = lenet()
        .args(["show", "--test-image", "500", "--data-dir"])
        .arg(&d)
        .arg(&run)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let line = one_error_line(&bad);
    assert!(
        line.contains("test images 0 to 499") || line.contains("images 0 to 499"),
        "{line}"
    );
}

/// A resume continues a run on the data it started with and as its config.json says: other
/// data is refused naming both (it once trained epoch 1 on one set and the rest on another,
/// and tested on a third, with exit 0), training options beside --resume are refused, a run
/// that another process resumes is locked, and the temporary files a killed write left are
/// removed. The printed resume command carries the data directory.
#[test]
fn a_resume_continues_on_the_data_it_started_with_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let d = d.to_str().unwrap();
    let run = tmp.path().join("run");
    let mut args = train_args(d, run.to_str().unwrap(), "3");
    args.extend(["--stop-after", "1"]);
    let out = common::succeeded(lenet().args(&args));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "lenet train --resume {} --data-dir {d}",
            run.display()
        )),
        "{stdout}"
    );
    let record: serde_json::Value = serde_json::from_str(&read(&run.join("data.json"))).unwrap();
    assert_eq!(record["test_images"], 500);

    // Other data: the subset with its test set cut to 400 images.
    let other = tmp.path().join("other");
    let mnist = lenet::data::DatasetImages::load(&subset_dir()).unwrap();
    lenet::data::write_subset(&mnist, 2000, 400, &other).unwrap();
    let refused = lenet()
        .args(["train", "-q", "--resume"])
        .arg(&run)
        .arg("--data-dir")
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("started on mnist with 2000 training and 500 test images")
            && err.contains("the data given now is mnist with 2000 training and 400 test"),
        "{err}"
    );
    assert!(!run.join("summary.json").exists(), "nothing trained");

    // Options a resume cannot change.
    for extra in [["--arch", "lecun1998"], ["--epochs", "9"], ["--lr", "0.1"]] {
        let refused = lenet()
            .args(["train", "-q", "--data-dir", d, "--resume"])
            .arg(&run)
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("cannot be used with"), "{err}");
    }

    // Held by a live process (this test): refused, naming it.
    let claim =
        match lenet::study::claim::try_claim(&run, "resume", lenet::study::claim::DEFAULT_TIMEOUT)
            .unwrap()
        {
            lenet::study::claim::Attempt::Claimed(c) => c,
            lenet::study::claim::Attempt::Held(o) => panic!("held by {}", o.describe()),
        };
    let refused = lenet()
        .args(["train", "-q", "--data-dir", d, "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("is being resumed by process"),
        "{err}"
    );
    drop(claim);

    // A write killed half-way (PID 4000000 is above Linux's PID limit) leaves its temporary
    // file; the resume removes it and finishes.
    let stale = run.join("model.safetensors.next.partial-4000000");
    std::fs::write(&stale, b"half").unwrap();
    common::succeeded(
        lenet()
            .args(["train", "-q", "--data-dir", d, "--resume"])
            .arg(&run),
    );
    assert!(!stale.exists());
    assert!(run.join("summary.json").exists());
}

/// An operating-system error is said once, with the path it concerns (it was printed twice:
/// "...: No such file or directory (os error 2): No such file or directory (os error 2)").
#[test]
fn an_os_error_is_said_once() {
    let out = lenet()
        .args([
            "train",
            "-q",
            "--valid-size",
            "500",
            "--epochs",
            "1",
            "--data-dir",
        ])
        .arg(subset_dir())
        .args(["--out", "/proc/no-such-dir/run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    assert!(err.contains("/proc/no-such-dir/run"), "{err}");
}

/// `study plan` counts a plan before listing it and refuses one over --max-runs, as `study
/// run` does: a 64,000,000-point grid is refused at once (it aborted with "memory allocation
/// failed" after about 0.9 KB per planned run).
#[test]
fn study_plan_refuses_a_plan_too_large_to_list() {
    let tmp = tempfile::tempdir().unwrap();
    let values = |scale: f64| {
        (1..=400)
            .map(|i| format!("{}", i as f64 * scale))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let file = tmp.path().join("huge.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"huge\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1000\n[[config]]\nname = \"momentum\"\n\
             options = {{ optimizer = \"momentum\" }}\n\
             grid = {{ lr = [{}], momentum = [{}], weight_decay = [{}] }}\n",
            values(1e-4),
            values(1e-3 / 0.4),
            values(1e-5)
        ),
    )
    .unwrap();
    let out = lenet()
        .args(["study", "plan"])
        .arg(&file)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("plans 64,000,001 runs") && err.contains("the limit is 10,000 runs"),
        "{err}"
    );
}

/// `lenet eval` reads the test set alone: a damaged training file (truncated here), which
/// training refuses, does not stop an evaluation, and it gives the accuracy the intact data
/// gives.
#[test]
fn eval_needs_only_the_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let d = subset_dir();
    let run = tmp.path().join("run");
    common::succeeded(lenet().args(train_args(d.to_str().unwrap(), run.to_str().unwrap(), "1")));
    let model = run.join("model.safetensors");
    let eval = |data: &Path| {
        lenet()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&model)
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap()
    };
    let intact = eval(&d);
    assert!(intact.status.success());
    let damaged = common::subset_copy();
    let train = damaged.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..1000]).unwrap();
    let out = eval(damaged.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, intact.stdout);
    let refused = lenet()
        .args(train_args(
            damaged.path().to_str().unwrap(),
            tmp.path().join("again").to_str().unwrap(),
            "1",
        ))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "training needs the training set");
}
