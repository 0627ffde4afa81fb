//! Every layer against PyTorch 2.15 (float64 reference values from `torch_golden.py`, seed 0;
//! see tests/fixtures/torch/README.md): forward output, input gradient and parameter
//! gradients for the upstream gradient `grad_y`, within 1e-5 x max|reference| per tensor.

mod common;

use common::{REL, assert_close, assert_tensor_close, f64s, tensor, torch_fixture};
use lenet::nn::activation::{Activation, ActivationKind};
use lenet::nn::batchnorm::BatchNorm;
use lenet::nn::conv2d::{Conv2d, ConvGeometry};
use lenet::nn::linear::Linear;
use lenet::nn::loss::{cross_entropy, log_softmax};
use lenet::nn::pool::{Pool2d, PoolKind};
use lenet::nn::{Context, Layer, Mode};
use lenet::rng::Rng;
use lenet::tensor::Tensor;
use serde_json::Value;

fn case(name: &str) -> Value {
    torch_fixture("layers.json")["cases"][name].clone()
}

/// Runs forward then backward with the case's `grad_y`, checking y and grad_x.
fn check_layer(name: &str, layer: &mut dyn Layer, c: &Value, mode: Mode) {
    let x = tensor(&c["x"]);
    let mut y = Tensor::zeros(&layer.output_shape(&x.shape));
    let mut rng = Rng::new(0);
    layer.forward(
        &x,
        &mut y,
        &mut Context {
            mode,
            rng: &mut rng,
        },
    );
    assert_tensor_close(&format!("{name}: y"), &y, &c["y"], REL);
    let dy = tensor(&c["grad_y"]);
    let mut dx = Tensor::zeros(&x.shape);
    layer.backward(&x, &y, &dy, Some(&mut dx));
    assert_tensor_close(&format!("{name}: grad_x"), &dx, &c["grad_x"], REL);
}

fn conv_case(name: &str) {
    let c = case(name);
    let cfg = &c["config"];
    let g = ConvGeometry {
        c_in: cfg["in_channels"].as_u64().unwrap() as usize,
        c_out: cfg["out_channels"].as_u64().unwrap() as usize,
        kernel: cfg["kernel_size"].as_u64().unwrap() as usize,
        stride: cfg["stride"].as_u64().unwrap() as usize,
        padding: cfg["padding"].as_u64().unwrap() as usize,
    };
    let mut conv = Conv2d::new(g, &mut Rng::new(1));
    conv.weight.value = tensor(&c["weight"]);
    conv.bias.value = tensor(&c["bias"]);
    check_layer(name, &mut conv, &c, Mode::Train);
    assert_tensor_close(
        &format!("{name}: grad_weight"),
        &conv.weight.grad,
        &c["grad_weight"],
        REL,
    );
    assert_tensor_close(
        &format!("{name}: grad_bias"),
        &conv.bias.grad,
        &c["grad_bias"],
        REL,
    );
}

#[test]
fn conv2d_stride1_pad1() {
    conv_case("conv2d");
}

#[test]
fn conv2d_stride2_pad1() {
    conv_case("conv2d_stride2_pad1");
}

#[test]
fn maxpool2d() {
    check_layer(
        "maxpool2d",
        &mut Pool2d::new(PoolKind::Max, 2),
        &case("maxpool2d"),
        Mode::Train,
    );
}

#[test]
fn avgpool2d() {
    check_layer(
        "avgpool2d",
        &mut Pool2d::new(PoolKind::Avg, 2),
        &case("avgpool2d"),
        Mode::Train,
    );
}

#[test]
fn linear() {
    let c = case("linear");
    let mut l = Linear::new(5, 3, &mut Rng::new(1));
    l.weight.value = tensor(&c["weight"]);
    l.bias.value = tensor(&c["bias"]);
    check_layer("linear", &mut l, &c, Mode::Train);
    assert_tensor_close(
        "linear: grad_weight",
        &l.weight.grad,
        &c["grad_weight"],
        REL,
    );
    assert_tensor_close("linear: grad_bias", &l.bias.grad, &c["grad_bias"], REL);
}

#[test]
fn relu_including_an_exact_zero() {
    check_layer(
        "relu",
        &mut Activation {
            kind: ActivationKind::Relu,
        },
        &case("relu"),
        Mode::Train,
    );
}

fn batchnorm_case(name: &str, mode: Mode) {
    let c = case(name);
    let mut bn = BatchNorm::new(4, true);
    bn.weight.value = tensor(&c["weight"]);
    bn.bias.value = tensor(&c["bias"]);
    bn.running_mean = tensor(&c["running_mean_before"]);
    bn.running_var = tensor(&c["running_var_before"]);
    check_layer(name, &mut bn, &c, mode);
    assert_tensor_close(
        &format!("{name}: grad_weight"),
        &bn.weight.grad,
        &c["grad_weight"],
        REL,
    );
    assert_tensor_close(
        &format!("{name}: grad_bias"),
        &bn.bias.grad,
        &c["grad_bias"],
        REL,
    );
    if mode == Mode::Train {
        assert_tensor_close(
            &format!("{name}: running_mean"),
            &bn.running_mean,
            &c["running_mean_after"],
            REL,
        );
        assert_tensor_close(
            &format!("{name}: running_var"),
            &bn.running_var,
            &c["running_var_after"],
            REL,
        );
    } else {
        // Evaluation leaves the running statistics untouched.
        assert_eq!(bn.running_mean, tensor(&c["running_mean_before"]));
        assert_eq!(bn.running_var, tensor(&c["running_var_before"]));
    }
}

#[test]
fn batchnorm2d_train() {
    batchnorm_case("batchnorm2d", Mode::Train);
}

#[test]
fn batchnorm2d_eval() {
    batchnorm_case("batchnorm2d_eval", Mode::Eval);
}

#[test]
fn cross_entropy_loss_and_gradient() {
    let c = case("cross_entropy");
    let logits = tensor(&c["logits"]);
    let labels: Vec<u8> = c["labels"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let k = logits.item_len();
    let mut logp = vec![0.0; logits.len()];
    for (row, out) in logits.data.chunks(k).zip(logp.chunks_mut(k)) {
        log_softmax(row, out);
    }
    assert_close("log_softmax", &logp, &f64s(&c["log_softmax"]), REL);
    let mut grad = Tensor::zeros(&logits.shape);
    let n = labels.len();
    let r = cross_entropy(&logits, &labels, Some((&mut grad, 1.0 / n as f32)));
    assert_close(
        "loss",
        &[(r.loss_sum / n as f64) as f32],
        &f64s(&c["loss"]),
        REL,
    );
    assert_tensor_close("grad_logits", &grad, &c["grad_logits"], REL);
}
