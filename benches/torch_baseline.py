"""PyTorch baseline for benches/epoch.rs: the study's LeNet-5 trained for N epochs with Adam
on the 60,000 MNIST training images held in memory as one float32 tensor (padded to 32x32,
scaled to [0, 1]), shuffled each epoch, batch B, T threads. Prints the torch version, then
one `epoch_seconds S` line per epoch.

Reads the IDX files from $LENET_DATA (raw or .gz)."""

import argparse
import gzip
import os
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                data = f.read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise FileNotFoundError(path)


class LeNet5(nn.Module):
    def __init__(self, batch_norm, dropout):
        super().__init__()
        features = [nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2)]
        if batch_norm:
            features.append(nn.BatchNorm2d(6))
        features += [nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 120, 5), nn.ReLU()]
        self.feature_extractor = nn.Sequential(*features)
        classifier = [nn.Linear(120, 84), nn.ReLU()]
        if dropout:
            classifier.append(nn.Dropout(dropout))
        classifier.append(nn.Linear(84, 10))
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):
        return self.classifier(torch.flatten(self.feature_extractor(x), 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--variant", default="plain")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d = os.environ["LENET_DATA"]
    images = read_idx(os.path.join(d, "train-images-idx3-ubyte"))
    labels = read_idx(os.path.join(d, "train-labels-idx1-ubyte"))
    x = torch.zeros(len(images), 1, 32, 32)
    x[:, 0, 2:30, 2:30] = torch.from_numpy(images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    bn = a.variant == "bn-dropout"
    model = LeNet5(batch_norm=bn, dropout=0.4 if bn else 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    print(torch.__version__, flush=True)
    for _ in range(a.epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), a.batch_size):
            idx = perm[i : i + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        print(f"epoch_seconds {time.perf_counter() - start:.4f}", flush=True)


if __name__ == "__main__":
    main()
