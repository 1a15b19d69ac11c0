#!/usr/bin/python3
"""make_fixtures.py — PyTorch reference fixtures for tests/test_torch_parity.c.

Run once by a developer, from the repository root, with Debian's python3-torch
(1.13; the pyenv `python3` shim has no torch):

    /usr/bin/python3 tools/make_fixtures.py

The outputs are committed; CI never runs this script. For lenet5 and cnn-bn
it writes:

  tests/ref/<model>.weights.safetensors   initial weights, digits tensor names
                                          ("3.weight", "1.running_var", ...)
  tests/ref/<model>.case.safetensors      one batch and what PyTorch makes of it:
    x              (4,1,28,28) N(0,1) input, fed to the network as is
    labels         (4) class indices, stored as F32
    logits_eval    model.eval() forward
    logits_train   train-mode forward with every Dropout/Dropout2d p = 0
    loss           (1) CrossEntropyLoss (mean) of logits_train
    grad.<name>    d loss / d parameter, every parameter
    running.<name> BN running_mean / running_var after that train forward
    sgd.<name>     parameters after one SGD(lr=0.1, momentum=0.9, wd=1e-4) step
    adam.<name>    parameters after one Adam(lr=1e-3, wd=1e-4) step from the
                   same initial weights and gradients

How the references are computed, and why:
  - nn.Sequential index i == spec layer i, so state_dict names are the digits
    tensor names unchanged (num_batches_tracked is skipped: digits has none).
  - BN affine parameters and running statistics are randomised; with the
    defaults (gamma 1, beta 0, mean 0, var 1) eval-mode BN is nearly the
    identity and a wrong running-stat formula or eval path would go unseen.
  - Dropout p is set to 0 for the training step: masks come from different
    RNGs in C and PyTorch, so only p = 0 makes the step comparable.
  - Everything is computed in float64 and rounded to float32 when written,
    so a fixture is the exact answer to float32 rounding and the C test's
    diff is the C code's own error. A float32 PyTorch run is made alongside
    and its max diff against the float64 one is printed (and checked to be
    well under the C test's 1e-4 tolerance): it shows the tolerance is
    reachable by any correct float32 implementation for this seed.
  - The Adam reference starts from the float64 gradients. The C test (and
    the float32 check here) feeds Adam the fixture's gradients rather than
    its own: a conv/linear bias followed by BN has an exactly-zero gradient,
    so float32 leaves ~1e-9 of noise, and Adam's first step
    lr * g/(|g| + eps), g = grad + wd*p, turns that into O(lr) where |wd*p|
    is small (float32 PyTorch on its own gradients: 1.7e-3 off on cnn-bn's
    11.bias). SGD moves by lr*grad, so it takes each run's own gradients.
  - Optimizer results of tensors above OPT_MAX_ELEMS elements (cnn-bn's
    17.weight, 3136x256) are stored as their first OPT_MAX_ELEMS values only:
    the update is element-wise, so the remaining 0.74 M values would add
    6 MB to the repository and no coverage. The C test compares as many
    values as the fixture holds; gradients are always stored in full.

Leaves out: the other zoo models, Nesterov, learning-rate schedules, more
than one step (the training smoke test covers trajectories).
"""
import copy
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

SEED = 1234
BATCH = 4
OPT_MAX_ELEMS = 65536
SGD_ARGS = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
ADAM_ARGS = dict(lr=1e-3, weight_decay=1e-4)
# float32 PyTorch vs float64 PyTorch must stay this far under the C test's
# 1e-4, or the seed makes a fragile fixture (see check_float32()).
F32_MARGIN = 2e-5


# ==== the two architectures (same layer order as models/*.spec) ============

def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 4), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def cnn_bn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout2d(0.25),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout2d(0.25),
        nn.Flatten(), nn.Linear(3136, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(256, 10))


MODELS = {"lenet5": lenet5, "cnn-bn": cnn_bn}


# ==== safetensors, written by hand (no safetensors package on Debian) ======

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray). Writes F32 little-endian data in
    list order; header padded with spaces to a multiple of 8, as
    src/model/checkpoint.c writes it."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def f32(t):
    return t.detach().to(torch.float32).cpu().numpy()


# ==== building, randomising, one training step =============================

def make_model(name):
    """Default PyTorch init, then BN parameters and statistics drawn away
    from their defaults (plausible ranges: var > 0, gamma around 1)."""
    model = MODELS[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def saved_state(model):
    """state_dict minus num_batches_tracked, in module order."""
    return [(k, v) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def train_forward_backward(model, x, labels):
    """Train-mode forward with dropout off, mean cross-entropy, backward.
    Returns (logits, loss)."""
    for m in model.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    model.train()
    model.zero_grad()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    return logits, loss


def run_case(model0, x, labels, dtype, adam_grads=None):
    """Everything the fixture holds, computed in `dtype`. Returns a dict of
    name -> tensor. The SGD step uses this run's own gradients; the Adam step
    uses adam_grads (name -> tensor) when given, else this run's own."""
    out = {}
    model = copy.deepcopy(model0).to(dtype)
    xd = x.to(dtype)
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(xd)

    logits, loss = train_forward_backward(model, xd, labels)
    out["logits_train"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    grads = {}
    for k, p in model.named_parameters():
        grads[k] = p.grad.detach().clone()
        out["grad." + k] = grads[k]
    for k, v in model.named_buffers():
        if not k.endswith("num_batches_tracked"):
            out["running." + k] = v.detach().clone()

    # One optimizer step each, from the initial weights (the train forward
    # above moved only the BN buffers, which the optimizers ignore).
    for tag, opt_cls, args, g in (("sgd", torch.optim.SGD, SGD_ARGS, grads),
                                  ("adam", torch.optim.Adam, ADAM_ARGS, adam_grads or grads)):
        m = copy.deepcopy(model0).to(dtype)
        for k, p in m.named_parameters():
            p.grad = g[k].detach().to(dtype).clone()
        opt = opt_cls(m.parameters(), **args)
        opt.step()
        for k, p in m.named_parameters():
            out[tag + "." + k] = p.detach().clone()
    return out


def max_rel_diff(a, b):
    """The C tests' metric: max |a-b| / max(1, |b|)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))) if a.size else 0.0


def check_float32(name, ref64, got32):
    """Print the worst float32-vs-float64 diffs and refuse a fragile seed."""
    worst = ("", 0.0)
    for k, v in ref64.items():
        d = max_rel_diff(f32(got32[k]), v.numpy())
        if d > worst[1]:
            worst = (k, d)
    print("  %s: float32 PyTorch vs float64 reference: max diff %.3g (%s)"
          % (name, worst[1], worst[0]))
    if worst[1] > F32_MARGIN:
        sys.exit("%s: float32 PyTorch is %.3g from the float64 reference on %s, too close "
                 "to the C tolerance 1e-4; pick another SEED" % (name, worst[1], worst[0]))


def make(name, outdir):
    torch.manual_seed(SEED)
    model0 = make_model(name)
    x = torch.randn(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))

    ref = run_case(model0, x, labels, torch.float64)
    # The float32 run mirrors the C test: SGD from its own gradients, Adam
    # from the fixture's gradients (float64 rounded to float32).
    ref_grads = dict((k[5:], torch.from_numpy(f32(v))) for k, v in ref.items()
                     if k.startswith("grad."))
    check_float32(name, ref, run_case(model0, x, labels, torch.float32, ref_grads))

    meta = {"format": "pt", "generator": "tools/make_fixtures.py",
            "torch": torch.__version__, "seed": str(SEED)}
    write_safetensors(os.path.join(outdir, name + ".weights.safetensors"),
                      [(k, f32(v)) for k, v in saved_state(model0)], meta)

    case = [("x", f32(x)), ("labels", labels.to(torch.float32).numpy())]
    for k, v in ref.items():
        a = f32(v)
        if (k.startswith("sgd.") or k.startswith("adam.")) and a.size > OPT_MAX_ELEMS:
            a = a.ravel()[:OPT_MAX_ELEMS]  # element-wise update: a prefix suffices
        case.append((k, a))
    write_safetensors(os.path.join(outdir, name + ".case.safetensors"), case, meta)
    print("  %s: loss %.6f, %d tensors in the case file" % (name, float(ref["loss"]), len(case)))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outdir = os.path.join(root, "tests", "ref")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)  # reproducible reductions run to run
    for name in MODELS:
        make(name, outdir)
    print("wrote %s/{lenet5,cnn-bn}.{weights,case}.safetensors" % outdir)


if __name__ == "__main__":
    main()
