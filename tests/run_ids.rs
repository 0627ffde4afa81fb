//! A run's ID comes from what its configuration means, not from how its `config.json` is
//! written: run directories made before an option existed keep their IDs.

use lenet::train::TrainConfig;
use lenet::train::identity::run_id;

/// `config.json` files of runs from the committed studies, written before `config.json`
/// spelled out every setting and before `curvature_samples` existed, each named by its ID.
#[test]
fn runs_made_before_keep_their_ids() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-ids");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let id = path.file_stem().unwrap().to_str().unwrap().to_string();
        let old: TrainConfig = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(run_id(&old), id, "{}", path.display());
        // Written again today (every setting spelled out), it still names the same run.
        let rewritten = serde_json::to_string_pretty(&old).unwrap();
        let again: TrainConfig = serde_json::from_str(&rewritten).unwrap();
        assert_eq!(run_id(&again), id, "{rewritten}");
        seen += 1;
    }
    assert_eq!(seen, 7);
}

/// An added setting is part of the identity once it leaves its neutral value.
#[test]
fn an_added_setting_names_a_new_run_when_it_changes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/run-ids/f5a68477e6a0dfba.json");
    let mut config: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lenet::optim::Algorithm::Sdlm {
        curvature_samples, ..
    } = &mut config.optimizer.algorithm
    else {
        panic!("the fixture is an sdlm run");
    };
    assert_eq!(*curvature_samples, 500);
    *curvature_samples = 100;
    assert_ne!(run_id(&config), "f5a68477e6a0dfba");
}
