//! The whole study LeNet-5 against PyTorch 2.15 (`lenet.json`, float64 reference, seed 0):
//! every activation, the logits, the mean cross-entropy and the gradient of every parameter
//! and of the input, plain and with BatchNorm2d(6) after the first block in training mode
//! (batch statistics, running statistics updated) and evaluation mode.

mod common;

use common::{REL, assert_close, assert_tensor_close, f64s, tensor, torch_fixture};
use lenet::nn::loss::cross_entropy;
use lenet::nn::{BatchNormAt, Buffer, Context, Mode, ModelConfig, Network};
use lenet::rng::Rng;
use serde_json::Value;

/// Our module path for each of the fixture's short names (conv1 -> feature_extractor.0).
fn module_map(fixture: &Value, variant: &str) -> Vec<(String, String)> {
    fixture["meta"]["torch_module_names"][variant]
        .as_object()
        .expect("module names")
        .iter()
        .map(|(path, short)| (short.as_str().unwrap().to_string(), path.clone()))
        .collect()
}

fn full_name(map: &[(String, String)], short: &str) -> String {
    let (module, param) = short.split_once('.').expect("module.param");
    let path = &map
        .iter()
        .find(|(s, _)| s == module)
        .expect("known module")
        .1;
    format!("{path}.{param}")
}

fn build(fixture: &Value, variant: &str) -> Network {
    let map = module_map(fixture, variant);
    let config = ModelConfig {
        batch_norm: if variant == "bn" {
            BatchNormAt::First
        } else {
            BatchNormAt::None
        },
        ..ModelConfig::default()
    };
    let mut net = config.build(&mut Rng::new(123));
    // Every layer's output is compared, the ReLUs' included.
    net.set_fold_relu(false);
    let mut state: Vec<(String, Buffer)> = fixture["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (full_name(&map, k), Buffer::F32(tensor(v))))
        .collect();
    if variant == "bn" {
        let bn = &fixture["bn"];
        for (k, v) in bn["params_extra"].as_object().unwrap() {
            state.push((full_name(&map, k), Buffer::F32(tensor(v))));
        }
        let path = full_name(&map, "bn1.x");
        let path = path.trim_end_matches(".x");
        state.push((
            format!("{path}.running_mean"),
            Buffer::F32(tensor(&bn["bn1"]["running_mean_before"])),
        ));
        state.push((
            format!("{path}.running_var"),
            Buffer::F32(tensor(&bn["bn1"]["running_var_before"])),
        ));
        state.push((format!("{path}.num_batches_tracked"), Buffer::I64(0)));
    }
    net.load_state_dict(state)
        .expect("fixture parameters fit the model");
    net
}

/// Forward in `mode`, loss, backward; checks everything in `expected`.
fn check(net: &mut Network, fixture: &Value, variant: &str, mode: Mode, expected: &Value) {
    let map = module_map(fixture, variant);
    *net.input_mut() = tensor(&fixture["input"]);
    let labels: Vec<u8> = f64s(&fixture["labels"]).iter().map(|&l| l as u8).collect();
    net.zero_grad();
    net.forward(&mut Context {
        mode,
        rng: &mut Rng::new(0),
    });
    for (short, path) in &map {
        let i = net
            .layer_names()
            .iter()
            .position(|n| n == path)
            .expect("layer");
        assert_tensor_close(
            &format!("{variant}/{short}"),
            net.activation(i),
            &expected["activations"][short],
            REL,
        );
    }
    assert_tensor_close(
        &format!("{variant}/logits"),
        net.output(),
        &expected["logits"],
        REL,
    );
    let n = labels.len();
    let (logits, dlogits) = net.output_and_grad_mut();
    let r = cross_entropy(logits, &labels, Some((dlogits, 1.0 / n as f32)));
    assert_close(
        &format!("{variant}/loss"),
        &[(r.loss_sum / n as f64) as f32],
        &f64s(&expected["loss"]),
        REL,
    );
    net.backward(true);
    let grads = expected["grads"].as_object().unwrap();
    for (short, want) in grads {
        if short == "input" {
            assert_tensor_close(
                &format!("{variant}/grad input"),
                net.input_grad(),
                want,
                REL,
            );
            continue;
        }
        let full = full_name(&map, short);
        let params = net.params();
        let p = params
            .iter()
            .find(|(n, _)| *n == full)
            .expect("parameter")
            .1;
        assert_tensor_close(&format!("{variant}/grad {short}"), &p.grad, want, REL);
    }
}

#[test]
fn plain_lenet5_matches_pytorch() {
    let f = torch_fixture("lenet.json");
    let mut net = build(&f, "plain");
    check(&mut net, &f, "plain", Mode::Train, &f["plain"]);
}

#[test]
fn batchnorm_lenet5_matches_pytorch_in_training_then_evaluation() {
    let f = torch_fixture("lenet.json");
    let mut net = build(&f, "bn");
    check(&mut net, &f, "bn", Mode::Train, &f["bn"]["train"]);
    let bn_path = full_name(&module_map(&f, "bn"), "bn1.x");
    let bn_path = bn_path.trim_end_matches(".x");
    let state = net.state_dict();
    let get = |k: &str| {
        state
            .iter()
            .find(|(n, _)| n == &format!("{bn_path}.{k}"))
            .unwrap()
            .1
            .clone()
    };
    let Buffer::F32(rm) = get("running_mean") else {
        panic!()
    };
    let Buffer::F32(rv) = get("running_var") else {
        panic!()
    };
    assert_tensor_close(
        "running_mean_after",
        &rm,
        &f["bn"]["train"]["running_mean_after"],
        REL,
    );
    assert_tensor_close(
        "running_var_after",
        &rv,
        &f["bn"]["train"]["running_var_after"],
        REL,
    );
    assert_eq!(get("num_batches_tracked"), Buffer::I64(1));
    check(
        &mut net,
        &f,
        "bn",
        Mode::Eval,
        &f["bn"]["eval_after_one_train_forward"],
    );
}
