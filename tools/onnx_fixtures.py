#!/usr/bin/python3
"""onnx_fixtures.py — ONNX import fixtures for tests/test_onnx.c, written by
`/usr/bin/python3 tools/make_fixtures.py onnx` (Debian's python3-torch 1.13
and python3-onnx; the outputs are committed, CI never runs this).

For each seed-notebook PyTorch class it writes

  tests/ref/onnx/<name>.onnx              torch.onnx.export of the module in
                                          eval mode (opset 17, dynamic batch,
                                          input name "input")
  tests/ref/onnx/<name>.out.safetensors   pixels (8,1,28,28): MNIST test
                                          images 0..7 as 0..255 values;
                                          logits (8,10): what PyTorch computes
                                          from them with the module's input
                                          convention (metadata input_scale,
                                          mean, std: x = (p/255*scale - mean)/std)

The classes are the seeds' own code (../shared/seeds/): seed 000's
BigKernelCNN and ResNet5, seed 001's LeNet and deeper net, seed 003's Net
(x.view(x.size(0), -1): the Shape/Gather/Unsqueeze/Concat/Reshape chain),
seed 004's two-branch net. To keep the files small, BigKernelCNN runs at a
quarter of its channels and the two-branch net at a sixteenth (same layers,
same ops; the channel counts are constructor arguments). Seed 000's STNCNN
is not here: torch 1.13 cannot export F.affine_grid ("aten::affine_grid_generator
... opset 17 is not supported"), and it samples with align_corners=True,
which digits' grid_sample leaves out.
Weights are PyTorch's default initialisation from a fixed seed, with batch
norm running statistics and affine parameters randomised (eval-mode export
folds them into the convolutions, so they must not be the identity).
"""
import gzip
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ==== the seed classes =====================================================

class BigKernelCNN(nn.Module):  # seed 000, model #3 (c1, c2: 32, 64 in the seed)
    def __init__(self, c1=32, c2=64, hidden=256):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, 10)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(x)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.pool(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        return self.fc2(x)


class ResidualBlock(nn.Module):  # seed 000
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet5(nn.Module):  # seed 000, model #5
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.layer1 = ResidualBlock(32, 32)
        self.layer2 = ResidualBlock(32, 64, stride=2)
        self.fc = nn.Linear(64 * 14 * 14, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.layer1(x)
        x = self.layer2(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def lenet():  # seed 001
    return nn.Sequential(
        nn.Conv2d(in_channels=1, out_channels=6, kernel_size=(5, 5), stride=1),
        nn.Tanh(),
        nn.AvgPool2d(kernel_size=(2, 2), stride=2),
        nn.Conv2d(in_channels=6, out_channels=16, kernel_size=(5, 5), stride=1),
        nn.Tanh(),
        nn.AvgPool2d(kernel_size=(2, 2), stride=2),
        nn.Conv2d(in_channels=16, out_channels=120, kernel_size=(4, 4), stride=1),
        nn.Flatten(),
        nn.Linear(in_features=120, out_features=84, bias=True),
        nn.Tanh(),
        nn.Linear(in_features=84, out_features=10, bias=True))


def deeper():  # seed 001, the deeper net
    return nn.Sequential(
        nn.Conv2d(in_channels=1, out_channels=32, kernel_size=(3, 3)),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=(2, 2)),
        nn.Conv2d(in_channels=32, out_channels=64, kernel_size=(3, 3)),
        nn.ReLU(),
        nn.Conv2d(in_channels=64, out_channels=64, kernel_size=(3, 3)),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=(2, 2)),
        nn.Flatten(),
        nn.Linear(in_features=1024, out_features=100, bias=True),
        nn.ReLU(),
        nn.Linear(in_features=100, out_features=10, bias=True))


class Net(nn.Module):  # seed 003
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(32),
            nn.MaxPool2d(2, 2), nn.Dropout(0.25))
        self.conv2 = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
            nn.MaxPool2d(2, 2), nn.Dropout(0.25))
        self.conv3 = nn.Sequential(
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128),
            nn.MaxPool2d(2, 2), nn.Dropout(0.25))
        self.fc = nn.Sequential(nn.Linear(128, 10))

    def forward(self, x):
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class TwoBranch(nn.Module):  # seed 004 (widths /16: 32, 64, 256, 1000, 500 in the seed)
    def __init__(self, d=16):
        super().__init__()
        c1, c2, c3, f1, f2 = 32 // d, 64 // d, 256 // d, 1000 // d, 500 // d
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2_1 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3_1 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv2_2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3_2 = nn.Conv2d(c2, c3, 5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * c3 * 7 * 7, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, 10)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        a = self.pool(F.relu(self.conv3_1(self.pool(F.relu(self.conv2_1(x))))))
        b = self.pool(F.relu(self.conv3_2(self.pool(F.relu(self.conv2_2(x))))))
        x = torch.flatten(torch.cat([a, b], dim=1), 1)
        x = self.drop(F.relu(self.fc1(x)))
        x = self.drop(F.relu(self.fc2(x)))
        return F.log_softmax(self.fc3(x), dim=1)


# name -> (constructor, input convention (scale, mean, std))
FIXTURES = {
    "s000-bigkernel": (lambda: BigKernelCNN(8, 16, 64), (1.0, 0.1307, 0.3081)),
    "s000-resnet5": (ResNet5, (1.0, 0.5, 0.5)),
    "s001-lenet": (lenet, (1.0, 0.0, 1.0)),
    "s001-deeper": (deeper, (1.0, 0.0, 1.0)),
    "s003-net": (Net, (255.0, 0.0, 1.0)),
    "s004-twobranch": (TwoBranch, (1.0, 0.1307, 0.3081)),
}


# ==== files ================================================================

def mnist_test_images(root, n):
    """The first n MNIST test images as (n, 1, 28, 28) float 0..255."""
    path = os.path.join(root, "data", "mnist", "t10k-images-idx3-ubyte")
    opener = open
    if not os.path.exists(path):
        path += ".gz"
        opener = gzip.open
    with opener(path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and rows == 28 and cols == 28
        data = np.frombuffer(f.read(n * 784), dtype=np.uint8)
    return data.reshape(n, 1, 28, 28).astype(np.float32)


def randomise(model, gen):
    """Batch norm affine parameters and running statistics away from the identity."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * (torch.rand(c, generator=gen) - 0.5))
                m.running_mean.copy_(0.4 * (torch.rand(c, generator=gen) - 0.5))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def make_one(name, outdir, pixels, write_safetensors):
    make, (scale, mean, std) = FIXTURES[name]
    torch.manual_seed(1234)
    model = make()
    randomise(model, torch.Generator().manual_seed(99))
    model.eval()
    x = (torch.from_numpy(pixels) / 255.0 * scale - mean) / std
    with torch.no_grad():
        logits = model(x)
    path = os.path.join(outdir, name + ".onnx")
    torch.onnx.export(model, x[:2], path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    meta = {"input_scale": repr(scale), "mean": repr(mean), "std": repr(std), "class": make.__name__
            if hasattr(make, "__name__") else name, "ops": ",".join(ops), "torch": torch.__version__}
    write_safetensors(os.path.join(outdir, name + ".out.safetensors"),
                      [("pixels", pixels), ("logits", logits.numpy())], meta)
    print("  %s: %d bytes, ops %s" % (name, os.path.getsize(path), " ".join(ops)))


def make_all(root, write_safetensors):
    outdir = os.path.join(root, "tests", "ref", "onnx")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    pixels = mnist_test_images(root, 8)
    for name in FIXTURES:
        make_one(name, outdir, pixels, write_safetensors)
    print("wrote %s/{%s}.{onnx,out.safetensors}" % (outdir, ",".join(FIXTURES)))
