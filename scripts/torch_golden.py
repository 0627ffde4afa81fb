#!/usr/bin/env python3
"""PyTorch reference values for lenet's tests: every layer, every optimizer and the study's
LeNet-5, computed by real PyTorch in float64, written as the four JSON files the tests read
(formats and tolerances: tests/fixtures/torch/README.md).

    pip install torch
    python3 scripts/torch_golden.py --out DIR [--seed N]
    LENET_TORCH_FIXTURES=DIR cargo test --release --test torch_layers --test torch_optim \
        --test torch_lenet

The committed files were made by an earlier generator of the same name, seed 0, whose text
was not kept; this one writes the same fields, shapes, cases and conventions from its own
draws, so its numbers differ from the committed ones. A set made from any seed must pass the
tests: they follow the maths, not the numbers. Nothing in lenet runs this script.
"""

import argparse
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64
LAYOUT = "row-major (C order); images NCHW; conv weight [out,in,kh,kw]; linear weight [out,in]"


def t(x):
    """A tensor as the fixtures write it."""
    x = torch.as_tensor(x).detach()
    if x.dtype in (torch.int64, torch.int32):
        return {"shape": list(x.shape), "data": [int(v) for v in x.flatten().tolist()]}
    return {"shape": list(x.shape), "data": [float(v) for v in x.double().flatten().tolist()]}


def meta(seed, description, **extra):
    return {
        "generator": "torch_golden.py",
        "torch": torch.__version__,
        "seed": seed,
        "dtype": "float64",
        "layout": LAYOUT,
        "description": description,
        **extra,
    }


def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, dtype=DTYPE) * scale + shift


def backward_case(layer, x, config, params=()):
    """y = layer(x); y.backward(grad_y) with a random grad_y; inputs, outputs and gradients."""
    x = x.clone().requires_grad_(True)
    case = {"config": config, "x": t(x)}
    for name in params:
        case[name] = t(getattr(layer, name))
    y = layer(x)
    grad_y = randn(*y.shape)
    y.backward(grad_y)
    case.update(y=t(y), grad_y=t(grad_y), grad_x=t(x.grad))
    for name in params:
        case["grad_" + name] = t(getattr(layer, name).grad)
    return case


def seeded(layer, scale=0.5):
    """Parameters drawn from the seed, not PyTorch's initialisation."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(randn(*p.shape, scale=scale))
    return layer


def layers(seed):
    torch.manual_seed(seed)
    cases = {}
    for name, (cin, cout, stride, h, w) in {
        "conv2d": (3, 4, 1, 5, 6),
        "conv2d_stride2_pad1": (2, 3, 2, 7, 6),
    }.items():
        conv = seeded(nn.Conv2d(cin, cout, 3, stride=stride, padding=1).to(DTYPE))
        config = {
            "in_channels": cin,
            "out_channels": cout,
            "kernel_size": 3,
            "stride": stride,
            "padding": 1,
        }
        cases[name] = backward_case(conv, randn(2, cin, h, w), config, ("weight", "bias"))
    for name, pool in {"maxpool2d": nn.MaxPool2d(2), "avgpool2d": nn.AvgPool2d(2)}.items():
        cases[name] = backward_case(pool, randn(2, 3, 6, 8), {"kernel_size": 2, "stride": 2})
    for mode in ("train", "eval"):
        bn = nn.BatchNorm2d(4).to(DTYPE)
        with torch.no_grad():
            bn.weight.copy_(randn(4, scale=0.25, shift=1.0))
            bn.bias.copy_(randn(4, scale=0.3))
            bn.running_mean.copy_(randn(4, scale=0.1))
            bn.running_var.copy_(torch.rand(4, dtype=DTYPE) + 0.5)
        before = (bn.running_mean.clone(), bn.running_var.clone())
        bn.train(mode == "train")
        x = randn(3, 4, 5, 5, scale=2.0, shift=0.3)
        config = {"num_features": 4, "eps": 1e-5, "momentum": 0.1, "mode": mode}
        case = backward_case(bn, x, config, ("weight", "bias"))
        case["running_mean_before"], case["running_var_before"] = t(before[0]), t(before[1])
        if mode == "train":
            case["batch_mean"] = t(x.mean(dim=(0, 2, 3)))
            case["batch_var_biased"] = t(x.var(dim=(0, 2, 3), unbiased=False))
            case["batch_var_unbiased"] = t(x.var(dim=(0, 2, 3), unbiased=True))
            case["running_mean_after"] = t(bn.running_mean)
            case["running_var_after"] = t(bn.running_var)
        cases["batchnorm2d" if mode == "train" else "batchnorm2d_eval"] = case
    linear = seeded(nn.Linear(5, 3).to(DTYPE))
    cases["linear"] = backward_case(
        linear, randn(4, 5), {"in_features": 5, "out_features": 3}, ("weight", "bias")
    )
    relu = backward_case(nn.ReLU(), torch.cat([torch.zeros(1, dtype=DTYPE), randn(23)]).view(2, 3, 4), None)
    del relu["config"]
    cases["relu"] = relu
    logits = randn(6, 10, scale=3.0).requires_grad_(True)
    labels = torch.randint(0, 10, (6,))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    cases["cross_entropy"] = {
        "description": "loss = mean_i(-log_softmax(logits)[i, labels[i]]); grad_logits = d loss "
        "/ d logits = (softmax - onehot)/N",
        "logits": t(logits),
        "labels": t(labels),
        "log_softmax": t(F.log_softmax(logits, dim=1)),
        "loss_per_sample": t(F.cross_entropy(logits, labels, reduction="none")),
        "loss": t(loss),
        "grad_logits": t(logits.grad),
    }
    description = (
        "single layers; y = layer(x); y.backward(grad_y) with a seeded random upstream gradient "
        "grad_y; grad_* are the resulting gradients. Conv/Linear/BN params are set from the seed "
        "(not PyTorch's init)."
    )
    return {"meta": meta(seed, description), "cases": cases}


NAMES = {
    "plain": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3"],
    "bn": ["conv1", "relu1", "pool1", "bn1", "conv2", "relu2", "pool2", "conv3", "relu3"],
}
CLASSIFIER = ["fc1", "relu4", "fc2"]


class LeNet5(nn.Module):
    """The study's LeNet-5, with PyTorch's module names (`feature_extractor.N`,
    `classifier.N`) and, with `bn`, BatchNorm2d(6) after the first pooling."""

    def __init__(self, bn):
        super().__init__()
        layers = [nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2)]
        layers += [nn.BatchNorm2d(6)] if bn else []
        layers += [nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 120, 5), nn.ReLU()]
        self.feature_extractor = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x, record):
        for name, layer in zip(record["names"], self.feature_extractor):
            x = layer(x)
            record[name] = x
        x = torch.flatten(x, 1)
        for name, layer in zip(CLASSIFIER, self.classifier):
            x = layer(x)
            record[name] = x
        return x


def short(name, kind):
    """A parameter's fixture name: `feature_extractor.0.weight` as `conv1.weight`."""
    module, _, param = name.rpartition(".")
    return dict(module_names(kind))[module] + "." + param


def module_names(kind):
    names = NAMES[kind]
    return [(f"feature_extractor.{i}", n) for i, n in enumerate(names)] + [
        (f"classifier.{i}", n) for i, n in enumerate(CLASSIFIER)
    ]


def lenet_pass(model, kind, x, labels):
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    record = {"names": NAMES[kind]}
    logits = model(x, record)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {short(n, kind): t(p.grad) for n, p in model.named_parameters()}
    grads["input"] = t(x.grad)
    activations = {n: t(record[n]) for n in NAMES[kind] + CLASSIFIER}
    return {"logits": t(logits), "loss": t(loss), "activations": activations, "grads": grads}


def lenet(seed):
    torch.manual_seed(seed)
    plain = LeNet5(bn=False).to(DTYPE)
    x = torch.rand(4, 1, 32, 32, dtype=DTYPE)
    labels = torch.randint(0, 10, (4,))
    params = {short(n, "plain"): t(p) for n, p in plain.named_parameters()}
    out = {"input": t(x), "labels": t(labels), "params": params}
    out["plain"] = lenet_pass(plain, "plain", x, labels)

    bn = LeNet5(bn=True).to(DTYPE)
    norm = bn.feature_extractor[3]
    with torch.no_grad():
        for (_, p), (_, q) in zip(
            [(n, p) for n, p in plain.named_parameters()],
            [(n, p) for n, p in bn.named_parameters() if not n.startswith("feature_extractor.3.")],
        ):
            q.copy_(p)
        norm.weight.copy_(randn(6, scale=0.2, shift=1.0))
        norm.bias.copy_(randn(6, scale=0.1))
        norm.running_mean.copy_(randn(6, scale=0.1))
        norm.running_var.copy_(torch.rand(6, dtype=DTYPE) * 0.5 + 0.8)
    section = {
        "params_extra": {"bn1.weight": t(norm.weight), "bn1.bias": t(norm.bias)},
        "bn1": {
            "eps": norm.eps,
            "momentum": norm.momentum,
            "running_mean_before": t(norm.running_mean),
            "running_var_before": t(norm.running_var),
        },
    }
    bn.train()
    train = lenet_pass(bn, "bn", x, labels)
    with torch.no_grad():
        pooled = bn.feature_extractor[:3](x)
    train["batch_mean"] = t(pooled.mean(dim=(0, 2, 3)))
    train["batch_var_biased"] = t(pooled.var(dim=(0, 2, 3), unbiased=False))
    train["batch_var_unbiased"] = t(pooled.var(dim=(0, 2, 3), unbiased=True))
    train["running_mean_after"] = t(norm.running_mean)
    train["running_var_after"] = t(norm.running_var)
    train["num_batches_tracked_after"] = int(norm.num_batches_tracked)
    section["train"] = train
    bn.eval()
    section["eval_after_one_train_forward"] = lenet_pass(bn, "bn", x, labels)
    out["bn"] = section
    description = (
        "LeNet-5 of the study: conv1(1,6,5) relu1 pool1 [bn1(6)] conv2(6,16,5) relu2 pool2 "
        "conv3(16,120,5) relu3 flatten fc1(120,84) relu4 fc2(84,10); loss = "
        "F.cross_entropy(logits, labels) (mean over the batch). grads are d loss / d ..., "
        "'input' is the gradient w.r.t. the input batch. activations[name] is the output of "
        "that layer."
    )
    bn_semantics = (
        "train mode: normalise with batch mean and BIASED batch variance (divide by N*H*W), "
        "eps=1e-5; then running_mean = 0.9*running_mean + 0.1*batch_mean, running_var = "
        "0.9*running_var + 0.1*UNBIASED batch variance (divide by N*H*W-1). eval mode: "
        "normalise with the running stats. The eval case runs after the one train-mode forward "
        "(i.e. with running_*_after), on the same input, with gradients zeroed before it."
    )
    names = {kind: dict(module_names(kind)) for kind in NAMES}
    return {
        "meta": meta(seed, description, torch_module_names=names, bn_semantics=bn_semantics),
        **out,
    }


NOTES = {
    "SGD": "g += weight_decay*p; if momentum: buf = g on step 1 (no dampening), else buf = "
    "momentum*buf + (1-dampening)*g; g = g + momentum*buf if nesterov else buf; p -= lr*g",
    "Adagrad": "clr = lr/(1+(t-1)*lr_decay); g += weight_decay*p; sum += g^2 (sum starts at "
    "initial_accumulator_value); p -= clr*g/(sqrt(sum)+eps)",
    "Adadelta": "g += weight_decay*p; v = rho*v + (1-rho)*g^2; d = sqrt(u+eps)/sqrt(v+eps)*g; "
    "u = rho*u + (1-rho)*d^2; p -= lr*d",
    "RMSprop": "g += weight_decay*p; v = alpha*v + (1-alpha)*g^2; if centered: ga = "
    "alpha*ga + (1-alpha)*g, avg = sqrt(v - ga^2) + eps, else avg = sqrt(v) + eps (eps "
    "OUTSIDE the sqrt); if momentum: buf = momentum*buf + g/avg, p -= lr*buf; else p -= "
    "lr*g/avg",
    "Adam": "g += weight_decay*p (coupled L2); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; if "
    "amsgrad: vmax = max(vmax, v) (on the raw, uncorrected v) and vmax is used for v below; "
    "denom = sqrt(v)/sqrt(1-b2^t) + eps; p -= lr/(1-b1^t) * m/denom",
    "AdamW": "p *= (1 - lr*weight_decay) first (decoupled), then the Adam step without L2",
}


def optimizers(sgd_lr):
    """Every case: (name, class, keyword arguments)."""
    sgd = torch.optim.SGD
    adam = torch.optim.Adam
    rms = torch.optim.RMSprop
    return [
        ("sgd", sgd, dict(lr=sgd_lr)),
        ("sgd_momentum", sgd, dict(lr=sgd_lr, momentum=0.9)),
        ("sgd_nesterov", sgd, dict(lr=sgd_lr, momentum=0.9, nesterov=True)),
        ("sgd_weight_decay", sgd, dict(lr=sgd_lr, weight_decay=0.01)),
        ("adagrad", torch.optim.Adagrad, dict(lr=0.1)),
        ("adadelta", torch.optim.Adadelta, dict(lr=1.0)),
        ("rmsprop", rms, dict(lr=0.01)),
        ("rmsprop_centered_momentum", rms, dict(lr=0.01, momentum=0.9, centered=True)),
        ("adam", adam, dict(lr=0.01)),
        ("adam_amsgrad", adam, dict(lr=0.01, amsgrad=True)),
        ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.01)),
        ("adam_l2", adam, dict(lr=0.01, weight_decay=0.01)),
        ("sgd_momentum_dampening_wd", sgd, dict(lr=sgd_lr, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        ("adam_amsgrad_beta2_0.9", adam, dict(lr=0.01, betas=(0.9, 0.9), amsgrad=True)),
    ]


def hyperparams(opt):
    group = dict(opt.param_groups[0])
    del group["params"]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}


def fixed_grad(seed):
    torch.manual_seed(seed)
    x0 = randn(7)
    grads = randn(5, 7)
    grads[2, 3] = 0.0  # an exact zero
    grads[4, 5] = -1e-3  # a tiny value
    grads[3, 3] *= 6.0  # one large step
    cases = {}
    for name, cls, kwargs in optimizers(sgd_lr=0.1):
        p = x0.clone().requires_grad_(True)
        opt = cls([p], foreach=False, **kwargs)
        trajectory = []
        for g in grads:
            p.grad = g.clone()
            opt.step()
            trajectory.append(p.detach().clone())
        state = {k: t(v) for k, v in opt.state[p].items()}
        cases[name] = {
            "optimizer": cls.__name__,
            "hyperparams": hyperparams(opt),
            "trajectory": t(torch.stack(trajectory)),
            "final_state": state,
        }
    description = (
        "pure update-rule check: p starts at x0; at step s (0-based) p.grad = grads[s] "
        "(independent of p), then optimizer.step(); trajectory[s] = p after that step. "
        "final_state = optimizer.state[p] after the last step."
    )
    return {"meta": meta(seed, description, notes=NOTES), "x0": t(x0), "grads": t(grads), "cases": cases}


def rosenbrock(seed, steps=50):
    torch.manual_seed(seed)
    start = torch.tensor([-1.5, 2.0], dtype=DTYPE)
    f = lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2  # noqa: E731
    cases = {}
    for name, cls, kwargs in optimizers(sgd_lr=5e-4):
        p = start.clone().requires_grad_(True)
        opt = cls([p], foreach=False, **kwargs)
        trajectory, values, grads = [p.detach().clone()], [], []
        for _ in range(steps):
            opt.zero_grad()
            value = f(p)
            value.backward()
            values.append(value.detach().clone())
            grads.append(p.grad.detach().clone())
            opt.step()
            trajectory.append(p.detach().clone())
        values.append(f(p).detach().clone())
        trajectory = torch.stack(trajectory)
        values = torch.stack(values)
        every = list(range(0, steps + 1, 10))
        cases[name] = {
            "optimizer": cls.__name__,
            "hyperparams": hyperparams(opt),
            "steps_recorded": every,
            "trajectory_every10": t(trajectory[every]),
            "f_every10": t(values[every]),
            "trajectory": t(trajectory),
            "f": t(values),
            "grads": t(torch.stack(grads)),
        }
    description = (
        "minimise f(x,y)=(1-x)^2+100*(y-x^2)^2 with p=[x,y] (one tensor of shape [2]); each step: "
        "zero_grad, f(p).backward(), step. Row k of trajectory is p after k steps (row 0 = start)."
    )
    return {"meta": meta(seed, description, notes=NOTES), "start": t(start), "steps": steps, "cases": cases}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the four files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in [
        ("layers.json", layers),
        ("lenet.json", lenet),
        ("optim_fixed_grad.json", fixed_grad),
        ("optim_rosenbrock.json", rosenbrock),
    ]:
        (args.out / name).write_text(json.dumps(make(args.seed)))
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
