//! Studies end to end on the MNIST subset: a diverging configuration is recorded, a study
//! killed with SIGKILL and restarted ends with the same results, and shards (sharing a
//! directory or merged from separate ones) give the same results as one run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{lenet, run_study, run_study_output, study_file, subset_dir};
use serde_json::Value;

/// summary.json without anything measured in seconds (wall time differs between runs).
fn results(dir: &Path) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !k.contains("seconds"));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    lenet()
        .args(["study", "summary"])
        .arg(dir)
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    strip(&mut v);
    v
}

#[test]
fn a_diverging_configuration_is_recorded_and_the_study_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny");
    let text = run_study(&study_file("tiny.toml"), &out, &[]);
    assert!(
        text.contains("exploding seed 0: diverged in epoch 1"),
        "{text}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let exploding = summary["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "exploding")
        .unwrap();
    assert_eq!(exploding["diverged"], 2);
    assert_eq!(exploding["runs"], 2);
    assert!(exploding["test_accuracy"].is_null());
    assert_eq!(summary["best"], "adam");
    // The tuned learning rate is the one with the best validation accuracy.
    let tuning = summary["tuning"].as_array().unwrap();
    let chosen = tuning.iter().find(|t| t["chosen"] == true).unwrap();
    let best = tuning
        .iter()
        .map(|t| t["valid_accuracy"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(chosen["valid_accuracy"].as_f64().unwrap(), best);
    for file in ["summary.md", "summary.csv"] {
        assert!(out.join(file).exists(), "{file}");
    }
    // Running it again computes nothing and gives the same results.
    let before = results(&out);
    let again = run_study(&study_file("tiny.toml"), &out, &[]);
    assert!(!again.contains("[1]"), "{again}");
    assert_eq!(before, results(&out));
    // status reports everything finished.
    let status = lenet()
        .args(["study", "status"])
        .arg(&out)
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.contains("tuning runs: 2/2") && status.contains("final runs:  6/6"),
        "{status}"
    );
}

#[test]
fn killed_twice_and_restarted_gives_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    run_study(&study_file("tiny2x2.toml"), &straight, &["--threads", "1"]);
    let killed = tmp.path().join("killed");
    // Two SIGKILLs at moments spread over the study's run time, then a run to the end.
    for wait_ms in [700u64, 1500] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lenet"))
            .args(["study", "run", "-q", "--threads", "1"])
            .arg(study_file("tiny2x2.toml"))
            .arg("--out")
            .arg(&killed)
            .arg("--data-dir")
            .arg(subset_dir())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
    }
    run_study(&study_file("tiny2x2.toml"), &killed, &["--threads", "1"]);
    assert_eq!(results(&straight), results(&killed));
}

#[test]
fn shards_in_one_directory_or_merged_give_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    // One machine.
    let single = tmp.path().join("single");
    run_study(&study_file("tiny.toml"), &single, &[]);
    // Three shards sharing a directory: tuning first, then each shard's final runs.
    let shared = tmp.path().join("shared");
    for round in 0..2 {
        for k in 1..=3 {
            let text = run_study(
                &study_file("tiny.toml"),
                &shared,
                &["--shard", &format!("{k}/3")],
            );
            if round == 0 && k == 1 {
                // Shard 1 has done only its own tuning run: final runs must wait.
                assert!(text.contains("1/2 tuning runs of the study are"), "{text}");
            }
        }
    }
    assert_eq!(results(&single), results(&shared));
    // Three shards in separate directories, merged (a study without tuning).
    let single = tmp.path().join("single2x2");
    run_study(&study_file("tiny2x2.toml"), &single, &[]);
    let parts: Vec<PathBuf> = (1..=3)
        .map(|k| tmp.path().join(format!("part{k}")))
        .collect();
    for (k, part) in parts.iter().enumerate() {
        run_study(
            &study_file("tiny2x2.toml"),
            part,
            &["--shard", &format!("{}/3", k + 1)],
        );
    }
    let merged = tmp.path().join("merged");
    lenet()
        .args(["study", "merge", "--out"])
        .arg(&merged)
        .args(&parts)
        .assert()
        .success();
    assert_eq!(results(&single), results(&merged));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["factorial"]["interaction"]["estimate"].is_number(),
        "{summary}"
    );
    // A source that holds another study (tiny.toml's) is refused before anything is copied:
    // the output is not made at all (it once kept the first source's runs, half merged).
    let half = tmp.path().join("half");
    let refused = lenet()
        .args(["study", "merge", "--out"])
        .arg(&half)
        .arg(&parts[0])
        .arg(tmp.path().join("single"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("holds a different study than"),
        "{err}"
    );
    assert!(!half.exists(), "a refused merge writes nothing");
}

#[test]
fn bad_study_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A grid of 40^6, about 4 x 10^9 points (six hyperparameters of 40 values each).
    let values = |scale: f64| {
        let v: Vec<String> = (1..=40).map(|i| format!("{}", i as f64 * scale)).collect();
        format!("[{}]", v.join(", "))
    };
    let grid: Vec<String> = [
        ("lr", 1e-3),
        ("beta1", 0.02),
        ("beta2", 0.02),
        ("eps", 1e-8),
        ("weight_decay", 1e-3),
        ("dropout", 0.02),
    ]
    .iter()
    .map(|(k, scale)| format!("{k} = {}", values(*scale)))
    .collect();
    let huge = format!(
        "name = \"x\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1\n[[config]]\nname = \"a\"\n\
         grid = {{ {} }}\n",
        grid.join(", ")
    );
    for (text, needle) in [
        (
            "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\nfoo = 1\n",
            "unknown field `foo`",
        ),
        (
            "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\ngrid = { lr = [0.1] }\n",
            "no [tuning] section",
        ),
        (
            "name = \"x\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1\n[[config]]\nname = \"a\"\ngrid = { beta3 = [0.1] }\n",
            "cannot tune 'beta3'",
        ),
        (
            "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\noptions = { optimizer = \"sgd\", batch_size = 8 }\n",
            "does not apply to sgd",
        ),
        // A hyperparameter the optimizer lacks, in options and in a grid (a grid over
        // momentum for adam once collapsed four points into one run).
        (
            "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\noptions = { optimizer = \"adam\", momentum = 0.5 }\n",
            "momentum does not apply to adam",
        ),
        (
            "name = \"x\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1\n[[config]]\nname = \"a\"\noptions = { optimizer = \"adam\" }\ngrid = { momentum = [0.1, 0.5, 0.9, 0.99] }\n",
            "momentum does not apply to adam",
        ),
        (
            "name = \"x\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1\n[[config]]\nname = \"a\"\ngrid = { lr = [0.01, 0.01] }\n",
            "lr = 0.01 and lr = 0.01 resolve to the same run",
        ),
        (
            "name = \"x\"\nseeds = 1\n[defaults]\nbeta2 = 2\n[[config]]\nname = \"a\"\n",
            "beta2 = 2 is out of range",
        ),
        (
            "name = \"x\"\nseeds = 1\n[tuning]\nepochs = 1\nseed = 1\n[defaults]\nvalid_size = 0\n[[config]]\nname = \"a\"\ngrid = { lr = [0.01, 0.1] }\n",
            "valid_size = 0 leaves none",
        ),
        (
            "name = \"x\"\nseeds = 1\ntargets = [1.5, -1, nan]\n[[config]]\nname = \"a\"\n",
            "target 1.5 is not an accuracy",
        ),
        (
            "name = \"x\"\nseeds = 1\ntargets = [nan]\n[[config]]\nname = \"a\"\n",
            "target NaN is not an accuracy",
        ),
        (
            "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\ncell = [0, 1]\n",
            "has a cell but the study names no factors",
        ),
        // The name is a directory name: nothing may escape studies-out/.
        (
            "name = \"../../x\"\nseeds = 1\n[[config]]\nname = \"a\"\n",
            "expected a plain name",
        ),
        (
            "name = \"/tmp/x\"\nseeds = 1\n[[config]]\nname = \"a\"\n",
            "expected a plain name",
        ),
        // Plans are counted (checked arithmetic) before anything is made.
        (
            "name = \"x\"\nseeds = 100000000\n[[config]]\nname = \"a\"\n",
            "plans 100,000,000 runs",
        ),
        (huge.as_str(), "plans 4,096,000,001 runs"),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = lenet()
            .args(["study", "run"])
            .arg(&file)
            .arg("--out")
            .arg(tmp.path().join("o"))
            .arg("--data-dir")
            .arg(subset_dir())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(
            !tmp.path().join("o").exists(),
            "{needle}: a refused study made its directory"
        );
    }
}

#[test]
fn shipped_studies_parse() {
    for name in [
        "quick.toml",
        "regularization.toml",
        "lecun1998.toml",
        "lecun1998-protocol.toml",
        "optimizers.toml",
        "optimizers-defaults.toml",
        "regularization-fashion.toml",
        "optimizers-fashion.toml",
        "variance.toml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("studies")
            .join(name);
        lenet::study::StudyFile::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Replays `claims.log`: no run is claimed while another process holds it, a takeover only
/// ever takes the claim of the process that was killed, and releases come from the holder.
fn check_claims_log(dir: &Path, killed: u32) -> usize {
    let log = std::fs::read_to_string(dir.join("claims.log")).unwrap_or_default();
    let mut holder: std::collections::BTreeMap<String, u32> = Default::default();
    let mut takeovers = 0;
    for line in log.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (what, id, pid) = (w[1], w[2].to_string(), w[5].parse::<u32>().unwrap());
        match what {
            "claim" => {
                assert!(!holder.contains_key(&id), "{id} claimed while held:\n{log}");
                holder.insert(id, pid);
            }
            "takeover" => {
                let from: u32 = w[10].parse().unwrap();
                assert_eq!(from, killed, "{id} taken from a live process:\n{log}");
                assert_eq!(holder.get(&id), Some(&from), "{log}");
                holder.insert(id, pid);
                takeovers += 1;
            }
            "release" => assert_eq!(holder.remove(&id), Some(pid), "{log}"),
            other => panic!("unknown line {other}: {line}"),
        }
    }
    assert!(holder.values().all(|&p| p == killed), "{log}");
    takeovers
}

/// Two processes share one study directory and one of them is killed at a random moment,
/// many times over: the survivor finishes the study (taking over the killed process's run),
/// no run is ever trained by two processes at once, every run directory is consistent (the
/// summary checks each one) and the results are those of an undisturbed study. Trials:
/// `LENET_STRESS_TRIALS` (default 50).
#[test]
fn processes_sharing_a_directory_train_each_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = study_file("shared.toml");
    let alone = tmp.path().join("alone");
    run_study(&file, &alone, &["--jobs", "1", "--threads", "1", "-q"]);
    let expected = results(&alone);
    let trials: u64 = std::env::var("LENET_STRESS_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(50);
    let bin = assert_cmd::cargo::cargo_bin("lenet");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (mut takeovers, mut shared) = (0, 0);
    for trial in 0..trials {
        let dir = tmp.path().join(format!("trial{trial}"));
        let start = || {
            std::process::Command::new(&bin)
                .args(["study", "run"])
                .arg(&file)
                .arg("--out")
                .arg(&dir)
                .arg("--data-dir")
                .arg(subset_dir())
                .args(["--jobs", "1", "--threads", "1", "-q"])
                .env_remove("LENET_DATA")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let survivor = start();
        let mut victim = start();
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((state >> 33) % 900));
        let killed = victim.id();
        victim.kill().unwrap();
        victim.wait().unwrap();
        let out = survivor.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        takeovers += check_claims_log(&dir, killed);
        let log = std::fs::read_to_string(dir.join("claims.log")).unwrap();
        shared += usize::from(log.contains(&format!("by process {killed} ")));
        assert_eq!(results(&dir), expected, "trial {trial}");
        assert!(
            !dir.join("invalid").exists(),
            "trial {trial}: an inconsistent run"
        );
    }
    eprintln!(
        "{trials} trials: the killed process had claimed runs in {shared}; {takeovers} takeovers"
    );
    if trials >= 20 {
        assert!(
            shared > 0 && takeovers > 0,
            "the trials never exercised sharing"
        );
    }
}

/// A finished run whose files disagree (here metrics.csv lost its last epoch, as when two
/// processes wrote the same run): `study summary` fails naming it, and `study run` names it
/// in one warning, sets it aside in invalid/, trains it again and ends with the results of
/// an undisturbed study.
#[test]
fn an_inconsistent_run_is_named_set_aside_and_trained_again() {
    let tmp = tempfile::tempdir().unwrap();
    let file = study_file("shared.toml");
    let dir = tmp.path().join("s");
    run_study(&file, &dir, &["--jobs", "1", "--threads", "1", "-q"]);
    let expected = results(&dir);
    let id = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let metrics = dir.join("runs").join(&id).join("metrics.csv");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&metrics, cut[..cut.len() - 1].join("\n") + "\n").unwrap();
    let out = lenet()
        .args(["study", "summary"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inconsistent run") && err.contains(&id),
        "{err}"
    );
    let out = run_study_output(&file, &dir, &["--jobs", "1", "--threads", "1", "-q"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&id) && warnings[0].contains("trained again"));
    assert_eq!(std::fs::read_dir(dir.join("invalid")).unwrap().count(), 1);
    assert_eq!(results(&dir), expected);
}

/// Every run of a study directory: its config.json and summary.json.
fn finished_runs(dir: &Path) -> Vec<(Value, Value)> {
    let read = |path: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    (std::fs::read_dir(dir.join("runs")).unwrap())
        .map(|entry| {
            let run = entry.unwrap().path();
            (
                read(run.join("config.json")),
                read(run.join("summary.json")),
            )
        })
        .collect()
}

/// A study whose configurations train on different datasets reads each from its place under
/// the data directory (Fashion-MNIST from `fashion-mnist/`): each run's config.json names its
/// dataset (an MNIST run's does not, so MNIST runs keep the IDs they had), the two runs see
/// different images (different losses), and the report shows each dataset's images, under
/// its own name, with Fashion-MNIST's class names.
#[test]
fn configurations_on_different_datasets_each_read_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("datasets");
    run_study(&study_file("datasets.toml"), &out, &["-q"]);
    let mut datasets = Vec::new();
    for (config, summary) in finished_runs(&out) {
        datasets.push((
            config["data"]["dataset"].clone(),
            summary["test_loss"].as_f64().unwrap(),
        ));
    }
    datasets.sort_by_key(|d| d.0.to_string());
    assert_eq!(datasets.len(), 2, "{datasets:?}");
    assert_eq!(datasets[0].0, Value::String("fashion-mnist".into()));
    assert_eq!(datasets[1].0, Value::String("mnist".into()));
    assert_ne!(datasets[0].1, datasets[1].1);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "figures/samples-mnist.svg",
        "figures/samples-fashion-mnist.svg",
        "Fashion-MNIST training images",
    ] {
        assert!(report.contains(needle), "{needle} not in the report");
    }
    assert!(out.join("figures/samples-fashion-mnist.png").is_file());
}

/// A dataset lenet does not know is an error that lists the ones it does.
#[test]
fn an_unknown_dataset_is_an_error_that_lists_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"x\"\nseeds = 1\n[[config]]\nname = \"a\"\noptions = { dataset = \"cifar\" }\n",
    )
    .unwrap();
    let output = lenet()
        .args(["study", "run"])
        .arg(&file)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--data-dir")
        .arg(subset_dir())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cifar") && err.contains("mnist") && err.contains("fashion-mnist"),
        "{err}"
    );
}

/// `lenet study plan` says what a study file plans without running anything, and, given the
/// directory of its finished runs, the power of every comparison from their variance.
#[test]
fn study_plan_prints_the_runs_and_the_power_of_finished_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny2x2");
    let plan = |extra: &[&std::ffi::OsStr]| {
        let mut command = lenet();
        command
            .args(["study", "plan"])
            .arg(study_file("tiny2x2.toml"))
            .args(extra);
        String::from_utf8(common::succeeded(&mut command).stdout).unwrap()
    };
    let before = plan(&["--out".as_ref(), out.as_os_str()]);
    assert!(
        before.contains("runs: 12 (0 tuning, 12 final: 4 configurations x 3 seeds)"),
        "{before}"
    );
    assert!(
        before.contains("power: needs the variance of finished final runs"),
        "{before}"
    );
    assert!(!out.exists(), "planning runs nothing");
    run_study(&study_file("tiny2x2.toml"), &out, &["-q"]);
    let after = plan(&["--out".as_ref(), out.as_os_str()]);
    assert!(after.contains("time: none left"), "{after}");
    assert!(
        after.contains("neither vs bn: detects")
            && after.contains("interaction (at 5% / 3, the family's level): detects"),
        "{after}"
    );
}

/// A configuration that varies one random stream holds the others at seed 0: its runs of
/// different seeds differ (the stream varied) but every run's config.json names the stream,
/// an ordinary run's names none, seed 0 of `init` is the same training as seed 0 of `order`
/// (every stream at 0), and the summary and report say where the variance comes from.
#[test]
fn configurations_that_vary_one_stream_say_where_the_variance_comes_from() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("streams");
    run_study(&study_file("streams.toml"), &out, &["-q"]);
    let summary = results(&out);
    let streams = summary["streams"].as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|r| r["config"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["init", "order", "all"]);
    let shares: f64 = streams.iter().filter_map(|r| r["share"].as_f64()).sum();
    assert!((shares - 1.0).abs() < 1e-12, "{streams:?}");
    assert!(
        streams[2]["share"].is_null(),
        "the all-streams row is for comparison"
    );
    // Seed 0 of init and of order: every stream at seed 0, the same training.
    let mut losses = std::collections::BTreeMap::new();
    for (config, summary) in finished_runs(&out) {
        let key = (
            config["vary"].as_str().unwrap_or("none").to_string(),
            config["seed"].as_u64().unwrap(),
        );
        losses.insert(key, summary["test_loss"].as_f64().unwrap());
    }
    assert_eq!(losses[&("init".into(), 0)], losses[&("order".into(), 0)]);
    assert_eq!(losses[&("init".into(), 0)], losses[&("none".into(), 0)]);
    assert_ne!(losses[&("init".into(), 1)], losses[&("order".into(), 1)]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Where the variance comes from"),
        "{report}"
    );
}

/// An adaptive study runs its first stage, sizes itself from its validation spread, and runs
/// the rest: with an `until` no spread meets, up to its maximum; with one the first stage
/// meets, no more. Its sizing reads the first stage's validation accuracies, never the test
/// set's; its summary gives each contrast's paired interval over every seed at the family's
/// level (98.33%, Bonferroni over three); shards sharing a directory wait for the
/// whole first stage before deciding, and end with the same results.
#[test]
fn an_adaptive_study_runs_the_seeds_its_first_stage_asks_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("adaptive");
    let progress = run_study(&study_file("adaptive.toml"), &out, &[]);
    let runs = |dir: &Path| std::fs::read_dir(dir.join("runs")).unwrap().count();
    assert_eq!(runs(&out), 4 * 5, "the maximum of 5 seeds");
    // Each finished run counted once: [1/20] to [20/20] (the first stage was counted again
    // when the final runs, which include it, began: [12/20] then [25/20]).
    let counts: Vec<String> = (progress.lines())
        .filter_map(|l| Some(l.strip_prefix('[')?.split(']').next()?.to_string()))
        .collect();
    let want: Vec<String> = (1..=20).map(|k| format!("{k}/20")).collect();
    assert_eq!(counts, want, "{progress}");
    let summary = results(&out);
    let adaptive = &summary["adaptive"];
    assert_eq!(summary["seeds"], 5);
    assert_eq!(adaptive["decision"]["stopped"], "max");
    let intervals = adaptive["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 3, "{adaptive}");
    assert_eq!(adaptive["decision"]["family"], 3);
    // Each configuration's accuracies by seed, on the validation split and the test set.
    let mut valid: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    let mut test: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for (config, summary) in finished_runs(&out) {
        // The cell from the model's options (run directories do not name configurations).
        let dropout = config["model"]["dropout"].as_f64().unwrap_or(0.0) > 0.0;
        let bn = config["model"]["batch_norm"] != "none";
        let name = match (dropout, bn) {
            (false, false) => "neither",
            (false, true) => "bn",
            (true, false) => "dropout",
            (true, true) => "both",
        }
        .to_string();
        let seed = config["seed"].as_u64().unwrap();
        valid
            .entry(name.clone())
            .or_default()
            .insert(seed, summary["final_valid_accuracy"].as_f64().unwrap());
        test.entry(name)
            .or_default()
            .insert(seed, summary["test_accuracy"].as_f64().unwrap());
    }
    let cells = |m: &BTreeMap<String, BTreeMap<u64, f64>>, below: u64| {
        ["neither", "bn", "dropout", "both"].map(|c| {
            (m[c].iter())
                .filter(|(s, _)| **s < below)
                .map(|(s, a)| (*s, *a))
                .collect::<BTreeMap<u64, f64>>()
        })
    };
    let [v00, v01, v10, v11] = cells(&valid, 3);
    let first_valid = lenet::study::seeds::contrasts([&v00, &v01, &v10, &v11]);
    let [t00, t01, t10, t11] = cells(&test, 5);
    let all_test = lenet::study::seeds::contrasts([&t00, &t01, &t10, &t11]);
    for ((i, m), (v, t)) in (intervals.iter())
        .zip(adaptive["decision"]["comparisons"].as_array().unwrap())
        .zip(first_valid.iter().zip(&all_test))
    {
        assert_eq!(i["seeds"], 5);
        let sd = lenet::stats::Estimate::of(&v.values().copied().collect::<Vec<_>>())
            .unwrap()
            .sd;
        assert_eq!(
            m["first_valid_sd"].as_f64().unwrap(),
            sd,
            "sized on validation"
        );
        let p = lenet::stats::paired_differences(&t.values().copied().collect::<Vec<_>>()).unwrap();
        let want = lenet::stats::dist::t_quantile(1.0 - 0.025 / 3.0, 4.0) * p.sd / 5f64.sqrt();
        assert!((i["half_width"].as_f64().unwrap() - want).abs() < 1e-15);
        assert_eq!(
            i["mean"].as_f64().unwrap(),
            p.mean,
            "over every seed, on test"
        );
    }
    let report = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        report.contains("Seeds were sized on the validation split")
            && report.contains("the test set chose nothing"),
        "{report}"
    );
    // The maximum stopped it: the summary says what the widest comparison's seeds would cost.
    let needed = (adaptive["decision"]["comparisons"]
        .as_array()
        .unwrap()
        .iter())
    .filter_map(|m| m["needed"].as_u64())
    .max()
    .unwrap();
    let cost = format!(
        "needs {needed} seeds of each of the 4 configurations, {} runs more than the 20 \
         finished here; at the ",
        lenet::format::thousands(needed as usize * 4 - 20)
    );
    assert!(report.contains(&cost), "{cost}\n{report}");
    let mut plan = lenet();
    plan.args(["study", "plan"])
        .arg(study_file("adaptive.toml"))
        .arg("--out")
        .arg(&out);
    let plan = String::from_utf8(common::succeeded(&mut plan).stdout).unwrap();
    assert!(
        plan.contains("runs: at most 20")
            && plan.contains(
                "sized from the first stage's validation accuracy: 5 per configuration (the \
                 maximum"
            ),
        "{plan}"
    );

    // A generous half-width: the first stage is enough.
    let text = std::fs::read_to_string(study_file("adaptive.toml")).unwrap();
    let generous = tmp.path().join("generous.toml");
    std::fs::write(&generous, text.replace("until = 0.001", "until = 90")).unwrap();
    let out = tmp.path().join("generous");
    run_study(&generous, &out, &["-q"]);
    assert_eq!(runs(&out), 4 * 3);
    let summary = results(&out);
    assert_eq!(summary["adaptive"]["decision"]["stopped"], "until");
    let report = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(!report.contains("What deciding the rest costs"), "{report}");

    // Two shards in one directory: the first waits for the other's first-stage runs.
    let shared = tmp.path().join("shared");
    let first = run_study(&study_file("adaptive.toml"), &shared, &["--shard", "1/2"]);
    assert!(
        first.contains("runs of the adaptive first stage are finished; 6/12"),
        "{first}"
    );
    for k in [2, 1] {
        run_study(
            &study_file("adaptive.toml"),
            &shared,
            &["--shard", &format!("{k}/2")],
        );
    }
    assert_eq!(results(&tmp.path().join("adaptive")), results(&shared));
}

/// `extend = 2`: a choice at its grid's edge gets runs further out (geometric steps for a
/// learning rate, steps in 1 - v for momentum), at most two per hyperparameter, and the
/// summary says where the extension ended; the progress count grows with the plan, never
/// past its total; shards sharing a directory plan the same extensions and end with the same
/// results.
#[test]
fn grids_extend_outward_while_the_choice_sits_at_their_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("extend");
    let printed = run_study_output(&study_file("extend.toml"), &out, &[]);
    let text = String::from_utf8_lossy(&printed.stdout).to_string()
        + &String::from_utf8_lossy(&printed.stderr);
    let counts: Vec<(usize, usize)> = (text.lines())
        .filter_map(|l| l.strip_prefix('[')?.split_once(']')?.0.split_once('/'))
        .map(|(done, total)| (done.parse().unwrap(), total.parse().unwrap()))
        .collect();
    assert!(!counts.is_empty(), "{text}");
    assert!(
        counts.iter().all(|(done, total)| done <= total),
        "{counts:?}"
    );
    let (done, total) = counts.last().unwrap();
    assert_eq!(done, total, "{counts:?}");
    let summary = results(&out);
    let points: Vec<&str> = summary["tuning"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["point"].as_str().unwrap())
        .collect();
    for extended in ["lr=0.0009", "lr=0.0027", "momentum=0.9667"] {
        assert!(points.contains(&extended), "{points:?}");
    }
    assert_eq!(points.len(), 3 + 3 + 4, "two steps each at most");
    let adam = &summary["configs"][0];
    assert_eq!(adam["chosen"], "lr=0.0027");
    assert_eq!(
        adam["grid_edges"][0],
        "lr = 0.0027 (the largest tried, after 2 extensions of its grid, the most asked for)"
    );
    let shared = tmp.path().join("shared");
    for _ in 0..3 {
        for k in 1..=2 {
            run_study(
                &study_file("extend.toml"),
                &shared,
                &["-q", "--shard", &format!("{k}/2")],
            );
        }
    }
    assert_eq!(results(&out), results(&shared));
}

/// A study continues on the data it started on: with other data (the subset with 400 test
/// images instead of 500) the runs left are refused, naming both, and nothing is trained on
/// the other data (a study once resumed so trained 6 of its 8 runs on full MNIST, silently).
#[test]
fn a_study_continues_on_the_data_it_started_with() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny2x2");
    // Half of the runs, on the subset.
    run_study(&study_file("tiny2x2.toml"), &out, &["-q", "--shard", "1/2"]);
    let before = std::fs::read_dir(out.join("runs")).unwrap().count();
    let other = tmp.path().join("other");
    let mnist = lenet::data::DatasetImages::load(&subset_dir()).unwrap();
    lenet::data::write_subset(&mnist, 2000, 400, &other).unwrap();
    let refused = lenet()
        .args(["study", "run", "-q"])
        .arg(study_file("tiny2x2.toml"))
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("started on mnist with 2000 training and 500 test images")
            && err.contains("now is mnist with 2000 training and 400 test images"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(out.join("runs")).unwrap().count(),
        before,
        "no run started on the other data"
    );
}

/// A finished study's summary and report are written once: the processes that find it
/// finished after (the other tasks of a SLURM array) leave them as they are, and say so; a
/// held summary claim is left to its holder.
#[test]
fn a_finished_study_writes_its_summary_and_report_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny");
    let first = run_study(&study_file("tiny.toml"), &out, &["-q"]);
    assert!(first.contains("Study `tiny`"), "{first}");
    let written = |name: &str| {
        std::fs::metadata(out.join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let (summary, report) = (written("summary.json"), written("report.html"));
    let again = run_study(&study_file("tiny.toml"), &out, &["-q"]);
    assert!(again.contains("written already"), "{again}");
    assert_eq!(written("summary.json"), summary);
    assert_eq!(written("report.html"), report);

    // A summary older than the runs (written before the last of them finished) is written
    // anew.
    let stale = std::fs::read_to_string(out.join("summary.json"))
        .unwrap()
        .replace("\"missing_runs\": 0", "\"missing_runs\": 1");
    std::fs::write(out.join("summary.json"), stale).unwrap();
    let rewritten = run_study(&study_file("tiny.toml"), &out, &["-q"]);
    assert!(rewritten.contains("Study `tiny`"), "{rewritten}");

    // Another process holds the summary's claim: this one leaves the writing to it.
    let claim =
        lenet::study::claim::try_claim(&out, "summary", lenet::study::claim::DEFAULT_TIMEOUT)
            .unwrap();
    assert!(matches!(claim, lenet::study::claim::Attempt::Claimed(_)));
    let held = run_study(&study_file("tiny.toml"), &out, &["-q"]);
    assert!(held.contains("being written by process"), "{held}");
}
