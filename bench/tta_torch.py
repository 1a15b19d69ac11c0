#!/usr/bin/python3
"""tta_torch.py -- PyTorch's side of the time-to-accuracy benchmark
(bench/time_to_accuracy.sh runs it after `digits train` with the same flags).

The same recipe as `digits train --monitor-test`, step for step:
  - the network from the same models/NAME.spec (bench_torch.build_from_spec);
  - the same data: the MNIST IDX files read with numpy, the first --limit
    training images, the same stratified validation split (a port of
    digits' split_stratified and its xoshiro256** stream, so both sides
    validate on the very same images), normalisation by the mean and std of
    the training pixels, uint8 -> float in every step as model_load_pixels;
  - the same optimiser (torch.optim.Adam / SGD, weight decay added to the
    gradient) and the same learning rate at every step (a port of
    src/optim/schedule.c; OneCycleLR would also cycle Adam's beta1, which
    digits does not), a reshuffle each epoch, the last partial batch kept;
  - the test set measured (never used) after every epoch and every
    --monitor-every steps; validation after every epoch; the best
    validation loss picks the final checkpoint.
train_seconds counts the epochs' wall clock (shuffle, batch gathering and
conversion, forward, backward, step) and excludes every validation and
monitor pass, as digits' log does. The log has digits' columns, so one
parser reads both. Loading (reading the files, normalisation statistics,
tensors) is timed apart and printed as "loaded in X s"; the pure-Python
port of the split's random stream is not part of it (digits' C split takes
about a millisecond).

Augmentation (--augment, as digits' augment.c): the presets seed000,
seed002 (rotate=10,zoomxy=0.1,shift=0.1), mnist (the same plus
elastic=8:3:0.5) and none, or keys rotate, shift, intshift, zoom, zoomxy,
shear, elastic. Per image, from augment_draw's distributions (not its random
stream): angle ~ U(-DEG, DEG), shear angle ~ U(-DEG, DEG), one scale ~
U(1-Z, 1+Z) for zoom, per-axis factors ~ U(1-Z, 1+Z) each dividing the
image's scale for zoomxy (Keras' zoom_range), shift ~ U(-F, F) * side per
axis (intshift: rounded), composed as digits' forward map
p_out = c + t + R Sh Z (p_in - c) about the image centre; elastic=A:S:P:
with probability P a U(-1, 1) field per pixel and axis, smoothed by a
Gaussian of sigma S (truncated at 3 S, zero outside), times A pixels,
displaces each output point before the affine map (Simard). One bilinear
resampling (affine_grid + grid_sample, the field added to the grid; Debian
has no torchvision), zeros outside, rounded to 0..255 integers as digits'
uint8 images, on the raw pixels before normalisation. Its cost counts as
training time, as in digits.

--schedule plateau is digits' sched_epoch_end: after each epoch's
validation, 3 epochs in a row without a validation loss below
best * (1 - 1e-4) halve the lr (at least 1e-6) from the next epoch on
(ReduceLROnPlateau with factor 0.5, patience 2, no cooldown); --gamma and
--step-size do not apply to it, and without a validation set it stays put.

--label-smoothing EPS is F.cross_entropy's label_smoothing (digits' training
loss, and its validation loss, which picks the kept epoch); --ema DECAY
keeps a moving average of the parameters and batch-norm buffers updated
after every step with decay min(DECAY, (1+t)/(10+t)), as digits' train.c,
and the average is what is validated, monitored and kept.
--lookahead K [--lookahead-alpha A] wraps the optimiser in Lookahead as
digits' train.c does: every K steps slow += A*(w - slow) and w = slow, over
the parameters only, the inner optimiser's state untouched. --precision
bf16 runs each training step's forward under torch.autocast on the CPU in
bfloat16 (oneDNN's AVX512_BF16 kernels for convolutions and linear layers;
digits' bf16 covers the convolutions), the loss in float32, the weights and
optimiser in float32 on both sides; validation and the monitor stay float32.

Run with Debian's interpreter, /usr/bin/python3 (python3-torch 1.13).
Left out on purpose: early stopping (--patience, not accepted), and the
perspective key with the preset that uses it, seed003 (time_to_accuracy.sh's
recipes use neither; --augment refuses them).
"""
import argparse
import copy
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import build_from_spec, find_spec  # noqa: E402  (the shared spec builder)

# ---- data: IDX files and digits' stratified split ----------------------------


def read_idx(path):
    """An IDX file (raw or gzip, by content) as a writable uint8 array of its shape."""
    with open(path, "rb") as f:
        raw = f.read(64)
    if raw[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            raw = bytearray(f.read())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if isinstance(raw, bytearray):
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return np.fromfile(path, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_path(folder, split, kind):
    """{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in an MNIST folder (also
    the dotted names), as digits' dataset_load finds them."""
    prefix, idx = ("train" if split == "train" else "t10k"), (3 if kind == "images" else 1)
    for name in (f"{prefix}-{kind}-idx{idx}-ubyte", f"{prefix}-{kind}.idx{idx}-ubyte"):
        for ext in ("", ".gz"):
            if os.path.isfile(os.path.join(folder, name + ext)):
                return os.path.join(folder, name + ext)
    sys.exit(f"tta_torch.py: no {prefix} {kind} file in {folder}")


def load_split(folder, split):
    """(images (N, 28, 28), labels (N,)) of an MNIST folder."""
    return read_idx(idx_path(folder, split, "images")), read_idx(idx_path(folder, split, "labels"))


def mean_std(u8):
    """src/data/dataset.c's dataset_mean_std: mean and population std of the
    pixels scaled to [0,1], from a histogram in double, rounded to float."""
    hist = np.bincount(u8.ravel(), minlength=256).astype(np.float64)
    v = np.arange(256) / 255.0
    m = float((v * hist).sum() / hist.sum())
    var = float((v * v * hist).sum() / hist.sum()) - m * m
    return float(np.float32(m)), float(np.float32(math.sqrt(max(var, 0.0))))


M64 = (1 << 64) - 1


class Xoshiro:
    """src/core/rng.c: xoshiro256** seeded through splitmix64 and the FNV-1a
    hash of a purpose string; rng_below and rng_shuffle as there."""

    def __init__(self, seed, purpose):
        h = 1469598103934665603
        for ch in purpose.encode():
            h = ((h ^ ch) * 1099511628211) & M64
        x, self.s = (seed ^ h) & M64, []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s0, s1, s2, s3 = self.s
        r = (s1 * 5) & M64
        result = ((((r << 7) | (r >> 57)) & M64) * 9) & M64
        t = (s1 << 17) & M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & M64
        self.s = [s0, s1, s2, s3]
        return result

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = ((self.next() >> 32) * (i + 1)) >> 32
            a[i], a[j] = a[j], a[i]


def split_stratified(labels, val_frac, seed):
    """src/data/split.c: per class (0..9, indices ascending), a seeded shuffle;
    the first lround(frac * count) go to validation. Returns (train, val)
    index arrays, ascending."""
    rng = Xoshiro(seed, "split")
    frac = float(np.float32(val_frac))  # digits keeps the fraction in a float
    is_val = np.zeros(len(labels), bool)
    for c in range(10):
        order = np.flatnonzero(labels == c).tolist()
        rng.shuffle(order)
        take = int(math.floor(frac * len(order) + 0.5))  # lround, for x >= 0
        is_val[order[:take]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ---- schedule: src/optim/schedule.c -------------------------------------------


def make_schedule(kind, base_lr, total_steps, gamma, step_size):
    """(lr(step, epoch), epoch_end(val_loss)): sched_lr and sched_epoch_end
    (float32 rounding aside, except plateau's, which runs in float32 as
    digits' does). epoch_end is called after each epoch's validation, only
    when there is a validation set; it does nothing but for plateau."""
    total = max(total_steps, 1)

    def anneal_cos(a, b, t):
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * t))

    def no_epoch_end(val_loss):
        pass

    if kind == "constant":
        return (lambda step, epoch: base_lr), no_epoch_end
    if kind == "step":
        g = gamma if gamma > 0 else 0.1
        return (lambda step, epoch: base_lr * g ** (epoch // step_size)), no_epoch_end
    if kind == "exp":
        g = gamma if gamma > 0 else 0.95
        return (lambda step, epoch: base_lr * g ** epoch), no_epoch_end
    if kind == "plateau":
        return make_plateau(base_lr)
    if kind == "onecycle":
        initial = base_lr / 25.0
        final, up_end, down_end = initial / 1e4, 0.3 * total - 1.0, total - 1.0

        def onecycle(step, epoch):
            if step <= up_end:
                return anneal_cos(initial, base_lr, step / up_end if up_end > 0 else 1.0)
            return anneal_cos(base_lr, final, min((step - up_end) / (down_end - up_end), 1.0))
        return onecycle, no_epoch_end
    if kind == "cosine":
        return (lambda step, epoch: anneal_cos(base_lr, 0.0, min(step / total, 1.0))), no_epoch_end
    sys.exit(f"tta_torch.py: --schedule {kind} is not supported here "
             "(digits' schedules: constant, step, exp, plateau, onecycle, cosine)")


def make_plateau(base_lr, factor=0.5, patience=2, min_lr=1e-6, rel_threshold=1e-4):
    """digits' plateau schedule (sched_init's constants, sched_epoch_end's rule),
    PyTorch's ReduceLROnPlateau(mode="min", factor=0.5, patience=2,
    threshold=1e-4 relative, cooldown=0, min_lr=1e-6) on the validation loss:
    an epoch whose loss is below best * (1 - 1e-4) becomes the best and
    clears the count of bad epochs; any other (a NaN loss too) counts one,
    and the third bad epoch in a row halves the lr (not below 1e-6) and
    clears the count. The new lr applies from the next epoch's first step
    (the epoch's own log row still shows the lr its last step used).
    --gamma and --step-size do not touch it. In float32, as digits keeps it."""
    f32 = np.float32
    state = {"best": f32(np.inf), "bad": 0, "current": f32(base_lr)}
    keep = f32(1.0) - f32(rel_threshold)

    def lr_at(step, epoch):
        return float(state["current"])

    def epoch_end(val_loss):
        loss = f32(val_loss)
        with np.errstate(invalid="ignore"):
            better = bool(loss < state["best"] * keep)
        if better:
            state["best"], state["bad"] = loss, 0
        else:
            state["bad"] += 1
            if state["bad"] > patience:
                state["current"] = max(state["current"] * f32(factor), f32(min_lr))
                state["bad"] = 0
    return lr_at, epoch_end


# ---- augmentation: src/data/augment.c ----------------------------------------

AUGMENT_PRESETS = {  # augment.c's PRESETS: a whole --augment text that is a name
    "seed000": "rotate=10,zoomxy=0.1,shift=0.1",
    "seed002": "rotate=10,zoomxy=0.1,shift=0.1",
    "seed003": "rotate=10,shift=0.1,intshift=1,zoom=0.1,perspective=0.1:0.25",
    "mnist": "rotate=10,zoomxy=0.1,shift=0.1,elastic=8:3:0.5",
    "none": "",
}
AUGMENT_RANGES = {"rotate": (0, 180), "shift": (0, 0.5), "zoom": (0, 0.9), "zoomxy": (0, 0.9), "shear": (0, 60),
                  "intshift": (0, 1)}
ELASTIC_RANGES = ((0, 1000), (0.1, 100), (0, 1))  # ALPHA, SIGMA, P


def parse_augment(spec):
    """augment_parse: a preset name or 'key=value,...' as a dict of the active
    settings (values rounded to float32 as digits stores them); {} when it
    changes nothing. Unknown keys, bad values and perspective (not ported)
    are refused."""
    text = AUGMENT_PRESETS.get(spec, spec)
    f32 = lambda v: float(np.float32(v))  # noqa: E731

    def number(key, val, lo, hi):
        try:
            v = float(val)
        except ValueError:
            v = math.nan
        if not lo <= v <= hi:
            sys.exit(f"tta_torch.py: --augment: {key}={val}: expected a number in {lo:g}..{hi:g}")
        return f32(v)

    cfg = {"rotate": 0.0, "shift": 0.0, "intshift": 0.0, "zoom": 0.0, "zoomxy": 0.0, "shear": 0.0,
           "elastic": (0.0, 0.0, 1.0)}
    for item in filter(None, text.split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            sys.exit(f"tta_torch.py: --augment: '{item}' is neither a preset ({', '.join(AUGMENT_PRESETS)}) "
                     "nor key=value")
        if key in AUGMENT_RANGES:
            cfg[key] = number(key, val, *AUGMENT_RANGES[key])
        elif key == "elastic":
            fields = [f for f in val.split(":") if f]
            if not 2 <= len(fields) <= 3:
                sys.exit(f"tta_torch.py: --augment: elastic={val}: expected ALPHA:SIGMA[:P]")
            v = [number(key, f, *r) for f, r in zip(fields, ELASTIC_RANGES)]
            cfg["elastic"] = (v[0], v[1], v[2] if len(v) == 3 else 1.0)
        elif key == "perspective":
            sys.exit(f"tta_torch.py: --augment: perspective (in '{spec}') is not ported here; ported: rotate, "
                     "shift, intshift, zoom, zoomxy, shear, elastic, and the presets seed000, seed002, mnist, none")
        else:
            sys.exit(f"tta_torch.py: --augment: unknown key '{key}' (known: rotate, shift, intshift, zoom, zoomxy, "
                     "shear, perspective, elastic)")
    out = {k: v for k, v in cfg.items() if k not in ("intshift", "elastic") and v}
    if out.get("shift") and cfg["intshift"]:
        out["intshift"] = True
    if cfg["elastic"][0] > 0 and cfg["elastic"][2] > 0:
        out["elastic"] = cfg["elastic"]
    return out


def elastic_field(m, h, w, alpha, sigma, gen):
    """draw_elastic for m images: (m, 2, h, w) displacements in pixels (x, then
    y): U(-1, 1) per pixel, a separable Gaussian of sigma truncated at
    ceil(3 sigma) (at most 64) and normalised, zero outside the image (scipy's
    gaussian_filter, mode="constant"), times alpha."""
    radius = min(math.ceil(float(np.float32(3.0) * np.float32(sigma))), 64)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * t * t / (sigma * sigma))
    k = k / k.sum()
    f = (torch.rand(m * 2, 1, h, w, generator=gen) * 2 - 1)
    f = F.conv2d(f, k.view(1, 1, 1, -1), padding=(0, radius))  # along each row (x)
    f = F.conv2d(f, k.view(1, 1, -1, 1), padding=(radius, 0))  # along each column (y)
    return f.view(m, 2, h, w) * alpha


def warp(u8, angle, shear, sx, sy, t, disp=None, which=None):
    """augment_affine + augment_warp_u8 for each image of u8 (N,1,H,W): the
    forward map p_out = c + t + R(angle) Sh(shear) Z(sx, sy) (p_in - c) about
    the centre c = (W/2, H/2) (pixel centres at j+0.5; angles in degrees,
    (N,) float64 tensors; t (N, 2) pixels), each output point q first moved
    by disp (M, 2, H, W) pixels for the images `which` (M indices):
    p_in = A^-1 (q + d(q) - c - t) + c. Bilinear, zeros outside the image,
    rounded to the nearest integer and clamped to 0..255 as the uint8 digits
    writes; returns float pixels (0..255) for the normalisation."""
    n, _, h, w = u8.shape
    a, s = torch.deg2rad(angle), torch.tan(torch.deg2rad(shear))
    cos, sin = torch.cos(a), torch.sin(a)
    # A = R Sh Z = [[cos, -sin], [sin, cos]] [[sx, s*sy], [0, sy]]
    A = torch.stack([torch.stack([cos * sx, cos * s * sy - sin * sy], 1),
                     torch.stack([sin * sx, sin * s * sy + cos * sy], 1)], 1)
    # in affine_grid's units (v = (p - c) / D, D = diag(W/2, H/2)):
    # v_in = L v_out + b, L = D^-1 A^-1 D, b = -D^-1 A^-1 t
    D = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
    L = torch.linalg.inv(A) * D.view(1, 1, 2) / D.view(1, 2, 1)
    b = -(L @ (t / D).unsqueeze(2))
    grid = F.affine_grid(torch.cat([L, b], 2).float(), (n, 1, h, w), align_corners=False)
    if disp is not None and len(disp):  # the displacement comes before the affine map: + L (d / D)
        d = disp.permute(0, 2, 3, 1) / D.float()
        grid[which] += torch.einsum("nij,nhwj->nhwi", L[which].float(), d)
    out = F.grid_sample(u8.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.floor(out + 0.5).clamp_(0, 255)


def augment(u8, aug, gen):
    """augment_draw's distributions (not its stream) for each image of u8
    (N,1,H,W), then warp: angle ~ U(-rotate, rotate); shear angle ~
    U(-shear, shear); sx = sy = U(1-zoom, 1+zoom) (the image's scale); sx,
    sy each divided by an independent U(1-zoomxy, 1+zoomxy) (Keras: the
    factor scales the inverse map); t ~ U(-shift, shift) * side per axis
    (rounded half away from zero with intshift); with probability P of
    elastic=ALPHA:SIGMA:P, a displacement field from elastic_field."""
    n, _, h, w = u8.shape
    f64 = torch.float64

    def uniform(r):  # U(-r, r), n draws
        return (torch.rand(n, generator=gen, dtype=f64) * 2 - 1) * r

    zero = torch.zeros(n, dtype=f64)
    angle = uniform(aug["rotate"]) if "rotate" in aug else zero
    shear = uniform(aug["shear"]) if "shear" in aug else zero
    sx = 1 + uniform(aug["zoom"]) if "zoom" in aug else torch.ones(n, dtype=f64)
    sy = sx
    if "zoomxy" in aug:
        sx = sx / (1 + uniform(aug["zoomxy"]))
        sy = sy / (1 + uniform(aug["zoomxy"]))
    t = torch.zeros(n, 2, dtype=f64)
    if "shift" in aug:
        t = torch.stack([uniform(aug["shift"]) * w, uniform(aug["shift"]) * h], 1)
        if aug.get("intshift"):
            t = torch.sign(t) * torch.floor(t.abs() + 0.5)  # C's round()
    disp = which = None
    if "elastic" in aug:
        alpha, sigma, p = aug["elastic"]
        which = (torch.rand(n, generator=gen) < p).nonzero(as_tuple=True)[0]
        disp = elastic_field(len(which), h, w, alpha, sigma, gen)
    return warp(u8, angle, shear, sx, sy, t, disp, which)


# ---- training -----------------------------------------------------------------


def evaluate(model, x, y, batch=1000, label_smoothing=0.0):
    """(accuracy, mean loss) in eval mode; x is already normalised float. The
    validation pass gives the run's label_smoothing: its loss is then the
    smoothed one the network trains on, as digits' model_validate."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits = model(x[i:i + batch])
            loss += float(F.cross_entropy(logits, y[i:i + batch], reduction="sum",
                                          label_smoothing=label_smoothing))
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    model.train()
    return correct / len(y), loss / len(y)


def ema_update(avg, model, decay, step):
    """avg = d*avg + (1-d)*model over parameters and float buffers, d as digits' ema_update."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for pa, pm in zip(avg.parameters(), model.parameters()):
            pa.mul_(d).add_(pm, alpha=1.0 - d)
        for ba, bm in zip(avg.buffers(), model.buffers()):
            if ba.dtype.is_floating_point:
                ba.mul_(d).add_(bm, alpha=1.0 - d)
            else:
                ba.copy_(bm)


def lookahead_sync(slow, model, alpha, step, k):
    """After every k-th step: slow += alpha*(w - slow), then w = slow (parameters only)."""
    if step % k:
        return
    with torch.no_grad():
        for ps, pm in zip(slow, model.parameters()):
            ps.add_(pm - ps, alpha=alpha)
            pm.copy_(ps)


def main():
    ap = argparse.ArgumentParser(description="PyTorch side of the time-to-accuracy benchmark; "
                                 "takes digits train's flags (the subset the recipe uses)")
    ap.add_argument("--model", default="cnn-bn")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--gamma", type=float, default=0.0)
    ap.add_argument("--step-size", type=int, default=5)
    ap.add_argument("--val-split", type=float, default=0.1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: all cores)")
    ap.add_argument("--monitor-test", action="store_true", help="accepted: the test set is always monitored")
    ap.add_argument("--monitor-every", type=int, default=0)
    ap.add_argument("--log", required=True, help="CSV log, digits' columns")
    ap.add_argument("--out", help="accepted and ignored (no model file)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--augment", default="",
                    help="preset (seed000, seed002, mnist, none) or rotate=DEG,shift=F,intshift=1,zoom=Z,zoomxy=Z,"
                    "shear=DEG,elastic=ALPHA:SIGMA[:P], as digits (perspective, so seed003, refused)")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--precision", choices=("none", "fp32", "bf16"), default="none",
                    help="bf16: the training step's forward under torch.autocast('cpu', bfloat16), which "
                         "multiplies convolutions and linear layers in bfloat16 (digits' bf16 does the "
                         "convolutions only); float32 weights, as digits keeps them")
    ap.add_argument("--ema", type=float, default=0.0, help="decay of the weights' moving average (0: off)")
    ap.add_argument("--lookahead", type=int, default=0, help="Lookahead's k (0: off)")
    ap.add_argument("--lookahead-alpha", type=float, default=0.5)
    a = ap.parse_args()
    aug = parse_augment(a.augment)

    torch.set_num_threads(a.threads if a.threads > 0 else os.cpu_count())
    torch.manual_seed(a.seed)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")
                   if k in os.environ) or "(no OpenBLAS variables)"
    print(f"tta_torch.py: torch {torch.__version__}, threads {torch.get_num_threads()}, {env}", flush=True)

    # the split's indices first: its pure-Python random stream is not loading work
    labels_all = read_idx(idx_path(a.data, "train", "labels"))
    n_all = min(a.limit, len(labels_all)) if a.limit else len(labels_all)
    tr_idx, va_idx = split_stratified(labels_all[:n_all], a.val_split, a.seed)

    # timed as digits times it: the training file, the split, normalisation statistics
    t_load = time.perf_counter()
    px, lab = load_split(a.data, "train")
    px, lab = px[:n_all], lab[:n_all]
    train_px = px[tr_idx]
    train_u8 = torch.from_numpy(train_px).unsqueeze(1)  # (N, 1, 28, 28) uint8
    train_y = torch.from_numpy(lab[tr_idx].astype(np.int64))
    mean, std = mean_std(train_px)
    load_seconds = time.perf_counter() - t_load
    test_px, test_lab = load_split(a.data, "test")

    scale, shift = float(np.float32(1.0) / (np.float32(255.0) * np.float32(std))), -mean / std

    def normalise(u8):  # model_load_pixels: x * 1/(255 std) - mean/std, in float32
        return u8.float().mul_(scale).add_(shift)

    val_x = normalise(torch.from_numpy(px[va_idx]).unsqueeze(1))
    val_y = torch.from_numpy(lab[va_idx].astype(np.int64))
    test_x = normalise(torch.from_numpy(test_px).unsqueeze(1))
    test_y = torch.from_numpy(test_lab.astype(np.int64))

    model, _ = build_from_spec(find_spec(a.model))
    model.train()
    if a.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, nesterov=a.nesterov,
                              weight_decay=a.weight_decay)
    n, B = len(train_y), a.batch_size
    steps_per_epoch = (n + B - 1) // B
    lr_at, sched_epoch_end = make_schedule(a.schedule, a.lr, a.epochs * steps_per_epoch, a.gamma, a.step_size)
    print(f"model {a.model}: {sum(p.numel() for p in model.parameters())} parameters; {n} train / "
          f"{len(val_y)} validation images from {a.data} (loaded in {load_seconds:.3f}s); "
          f"norm mean {mean:.6f} std {std:.6f}", flush=True)

    avg = copy.deepcopy(model) if a.ema > 0 else None
    slow = [p.detach().clone() for p in model.parameters()] if a.lookahead > 0 else None
    judged = avg if avg is not None else model  # what validation, the monitor and the checkpoint see
    log = open(a.log, "w")
    log.write("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,step,train_seconds,monitor_acc\n")
    gen = torch.Generator().manual_seed(a.seed)
    step, total_seconds, best_val, best_state, best_epoch = 0, 0.0, math.inf, None, 0

    def report(epoch, tr_loss, tr_acc, v_loss, v_acc, lr, epoch_secs, train_secs):
        acc, _ = evaluate(judged, test_x, test_y)
        log.write(f"{epoch},{tr_loss:.6f},{tr_acc:.6f},{v_loss:.6f},{v_acc:.6f},{lr:.6g},{epoch_secs:.3f},"
                  f"{step},{train_secs:.3f},{acc:.6f}\n")
        log.flush()
        if not a.quiet:
            print(f"  step {step}  monitor acc {acc:.4f}  after {train_secs:.2f}s of training", flush=True)

    for epoch in range(a.epochs):
        t0, paused = time.perf_counter(), 0.0
        order = torch.randperm(n, generator=gen)
        loss_sum, correct, seen, lr = 0.0, 0, 0, lr_at(step, epoch)
        for b in range(steps_per_epoch):
            if a.max_steps and step >= a.max_steps:
                break
            idx = order[b * B:(b + 1) * B]
            x, y = normalise(augment(train_u8[idx], aug, gen) if aug else train_u8[idx]), train_y[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=a.label_smoothing)
            opt.zero_grad()
            loss.backward()
            lr = lr_at(step, epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            step += 1
            if slow is not None:
                lookahead_sync(slow, model, a.lookahead_alpha, step, a.lookahead)
            if avg is not None:
                ema_update(avg, model, a.ema, step)
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if (a.monitor_every > 0 and step % a.monitor_every == 0 and b + 1 < steps_per_epoch
                    and not (a.max_steps and step >= a.max_steps)):
                t_pause = time.perf_counter()
                secs = t_pause - t0 - paused
                report(epoch + 1, loss_sum / seen, correct / seen, math.nan, math.nan, lr, secs,
                       total_seconds + secs)
                paused += time.perf_counter() - t_pause
        secs = time.perf_counter() - t0 - paused
        total_seconds += secs
        v_acc, v_loss = (evaluate(judged, val_x, val_y, label_smoothing=a.label_smoothing) if len(val_y)
                         else (math.nan, math.nan))
        if len(val_y):  # train.c's epoch_end: the plateau rule sees the (averaged) model's val loss
            sched_epoch_end(v_loss)
        if not a.quiet:
            print(f"epoch {epoch + 1:3d}/{a.epochs}  train loss {loss_sum / max(seen, 1):.4f} acc "
                  f"{correct / max(seen, 1):.4f}  val loss {v_loss:.4f} acc {v_acc:.4f}  lr {lr:.3g}  "
                  f"{secs:.1f}s ({seen / secs:.0f} img/s)", flush=True)
        report(epoch + 1, loss_sum / max(seen, 1), correct / max(seen, 1), v_loss, v_acc, lr, secs, total_seconds)
        if len(val_y) and v_loss < best_val:
            best_val, best_epoch = v_loss, epoch + 1
            best_state = {k: v.clone() for k, v in judged.state_dict().items()}
        if a.max_steps and step >= a.max_steps:
            break
    log.close()
    if best_state is not None:  # the checkpoint the validation loss chose, as digits restores it
        judged.load_state_dict(best_state)
    acc, loss = evaluate(judged, test_x, test_y)
    print(f"trained {epoch + 1} epochs in {total_seconds:.1f}s; best epoch {best_epoch}: val loss {best_val:.4f}")
    print(f"test accuracy {acc:.4f} (loss {loss:.4f}) on {len(test_y)} images from {a.data}", flush=True)


if __name__ == "__main__":
    main()
