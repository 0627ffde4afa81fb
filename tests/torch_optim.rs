//! Every optimizer against PyTorch 2.15 (float64 reference values, seed 0; see
//! tests/fixtures/torch/README.md):
//! - `optim_fixed_grad.json`: five steps with fixed gradients (including an exact 0 and a tiny
//!   value); the trajectory within 1e-5 x max|reference| and the final state buffers too.
//! - `optim_rosenbrock.json`: 50 steps minimising (1-x)^2 + 100(y-x^2)^2 with our own
//!   gradients, within 1e-4 (errors compound over the steps in float32).

mod common;

use common::{assert_close, f64s, torch_fixture};
use lenet::nn::Param;
use lenet::optim::{Algorithm, Momentum, Optimizer, WeightDecay};
use lenet::tensor::Tensor;
use serde_json::Value;

/// The optimizer that a fixture case's PyTorch class and hyperparameters describe.
fn optimizer_for(case: &Value) -> (Optimizer, f64) {
    let h = &case["hyperparams"];
    let f = |k: &str| h[k].as_f64().unwrap_or(0.0);
    let b = |k: &str| h[k].as_bool().unwrap_or(false);
    let wd = f("weight_decay");
    let class = case["optimizer"].as_str().unwrap();
    let algorithm = match class {
        "SGD" => Algorithm::Sgd {
            momentum: f("momentum"),
            dampening: f("dampening"),
            kind: if b("nesterov") {
                Momentum::Nesterov
            } else {
                Momentum::PyTorch
            },
        },
        "Adagrad" => Algorithm::Adagrad {
            lr_decay: f("lr_decay"),
            initial_accumulator_value: f("initial_accumulator_value"),
            eps: f("eps"),
        },
        "Adadelta" => Algorithm::Adadelta {
            rho: f("rho"),
            eps: f("eps"),
        },
        "RMSprop" => Algorithm::Rmsprop {
            alpha: f("alpha"),
            eps: f("eps"),
            centered: b("centered"),
            momentum: f("momentum"),
        },
        "Adam" | "AdamW" => Algorithm::Adam {
            beta1: h["betas"][0].as_f64().unwrap(),
            beta2: h["betas"][1].as_f64().unwrap(),
            eps: f("eps"),
            amsgrad: b("amsgrad"),
        },
        other => panic!("unknown optimizer class {other}"),
    };
    let decoupled = class == "AdamW" || b("decoupled_weight_decay");
    let weight_decay = match (wd, decoupled) {
        (0.0, _) => WeightDecay::None,
        (wd, true) => WeightDecay::Decoupled(wd),
        (wd, false) => WeightDecay::L2(wd),
    };
    (
        Optimizer::new(algorithm, weight_decay),
        h["lr"].as_f64().unwrap(),
    )
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    let data = f64s(v);
    let cols = v["shape"][1].as_u64().unwrap() as usize;
    data.chunks(cols).map(|r| r.to_vec()).collect()
}

#[test]
fn fixed_gradient_trajectories_and_state() {
    let f = torch_fixture("optim_fixed_grad.json");
    let x0: Vec<f32> = f64s(&f["x0"]).iter().map(|&v| v as f32).collect();
    let grads = rows(&f["grads"]);
    let cases = f["cases"].as_object().unwrap();
    assert!(cases.len() >= 14, "every optimizer case is present");
    for (name, case) in cases {
        let (mut opt, lr) = optimizer_for(case);
        let mut params = [Param::new("p", Tensor::from_vec(&[x0.len()], x0.clone()))];
        for (step, (g, want)) in grads.iter().zip(rows(&case["trajectory"])).enumerate() {
            params[0].grad.data = g.iter().map(|&v| v as f32).collect();
            opt.step(&mut params[..], lr);
            assert_close(
                &format!("{name} step {}", step + 1),
                &params[0].value.data,
                &want,
                1e-5,
            );
        }
        let state = case["final_state"].as_object().unwrap();
        for (key, want) in state {
            if key == "step" {
                assert_eq!(opt.steps as f64, f64s(want)[0], "{name}: step count");
                continue;
            }
            let got = opt.state[0]
                .buffer(key)
                .unwrap_or_else(|| panic!("{name}: no state buffer {key}"));
            assert_close(&format!("{name} state {key}"), got, &f64s(want), 1e-5);
        }
        let ours: Vec<&str> = opt.state[0].buffers().iter().map(|(n, _)| *n).collect();
        for n in ours {
            assert!(
                state.contains_key(n),
                "{name}: extra state buffer {n} that PyTorch lacks"
            );
        }
    }
}

fn rosenbrock_grad(p: &[f32]) -> [f32; 2] {
    let (x, y) = (p[0], p[1]);
    [
        -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
        200.0 * (y - x * x),
    ]
}

#[test]
fn rosenbrock_fifty_steps() {
    let f = torch_fixture("optim_rosenbrock.json");
    for (name, case) in f["cases"].as_object().unwrap() {
        let (mut opt, lr) = optimizer_for(case);
        let traj = rows(&case["trajectory"]);
        let start: Vec<f32> = traj[0].iter().map(|&v| v as f32).collect();
        let mut params = [Param::new("p", Tensor::from_vec(&[2], start))];
        for (step, want) in traj.iter().enumerate().skip(1) {
            params[0].grad.data = rosenbrock_grad(&params[0].value.data).to_vec();
            opt.step(&mut params[..], lr);
            assert_close(
                &format!("{name} step {step}"),
                &params[0].value.data,
                want,
                1e-4,
            );
        }
    }
}
