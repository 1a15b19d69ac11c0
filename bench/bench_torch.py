#!/usr/bin/python3
"""bench_torch.py -- PyTorch's side of the model benchmark (bench/run.sh runs
it next to build/bench/bench_models, which does the same work in digits).

For each zoo model, the same network as nn.Sequential, built from the same
models/NAME.spec file (so the two sides cannot drift apart), and the same
three measurements:
  train_img_s        Adam steps at batch B with CrossEntropyLoss: uint8 ->
                     normalised float, forward, loss, zero_grad, backward, step;
  infer_img_s        eval mode under torch.no_grad() at batch 1000;
  latency_median_us  one image, uint8 -> float + forward, median of 1000 calls;
  latency_p99_us     the same calls' 99th percentile.
Inputs are seeded random uint8 images and labels, as in bench_models.c.

Output: `impl,model,metric,value` lines on stdout (impl = torch, or whatever
--impl says, e.g. torch-tuned when run with OPENBLAS_CORETYPE set); notes go
to stderr.

Run with Debian's interpreter, /usr/bin/python3 (python3-torch 1.13).
Leaves out on purpose: data loading and accuracy; this measures speed only.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

INFER_BATCH = 1000
POOL_IMAGES = 1024  # distinct random images the batches cycle through
NORM_MEAN, NORM_STD = 0.1307, 0.3081  # as digits' model_load_pixels uses them here


# ---- spec file -> nn.Sequential --------------------------------------------

def find_spec(name):
    """models/NAME.spec (or $DIGITS_MODELS/NAME.spec), or a path, as digits resolves it."""
    if "/" in name or name.endswith(".spec"):
        return name
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.environ.get("DIGITS_MODELS"), "models", os.path.join(here, "..", "models")):
        if folder and os.path.isfile(os.path.join(folder, name + ".spec")):
            return os.path.join(folder, name + ".spec")
    sys.exit(f"bench_torch.py: unknown model '{name}': no models/{name}.spec")


def build_from_spec(path):
    """The digits spec format (one layer per line, `keyword key=value ...`)
    as an nn.Sequential with PyTorch's layers of the same definition, and
    the per-image input shape (C, H, W)."""
    c, h, w = 1, 28, 28
    flat = False
    input_shape = (c, h, w)
    layers = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            kw, args = words[0], {}
            for word in words[1:]:
                if "=" in word:
                    k, v = word.split("=", 1)
                    args[k] = v
                elif kw == "input":
                    c, h, w = (int(x) for x in word.split("x"))
                    input_shape = (c, h, w)
            where = f"{path}:{lineno}"
            if kw == "input":
                continue
            if kw == "conv2d":
                out, k = int(args["out"]), int(args["kernel"])
                s, p = int(args.get("stride", 1)), int(args.get("pad", 0))
                layers.append(nn.Conv2d(c, out, k, stride=s, padding=p, bias=args.get("bias", "1") != "0"))
                c, h, w = out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            elif kw in ("maxpool", "avgpool"):
                k = int(args.get("size", 2))
                s = int(args.get("stride", k))
                layers.append((nn.MaxPool2d if kw == "maxpool" else nn.AvgPool2d)(k, s))
                h, w = (h - k) // s + 1, (w - k) // s + 1
            elif kw == "zeropad":  # top= bottom= left= right=, as digits' zeropad layer
                t, b = int(args.get("top", 0)), int(args.get("bottom", 0))
                l, r = int(args.get("left", 0)), int(args.get("right", 0))
                layers.append(nn.ZeroPad2d((l, r, t, b)))
                h, w = h + t + b, w + l + r
            elif kw == "relu":
                layers.append(nn.ReLU())
            elif kw == "tanh":
                layers.append(nn.Tanh())
            elif kw == "batchnorm":
                eps, mom = float(args.get("eps", 1e-5)), float(args.get("momentum", 0.1))
                layers.append(nn.BatchNorm1d(c, eps, mom) if flat else nn.BatchNorm2d(c, eps, mom))
            elif kw == "dropout":
                layers.append(nn.Dropout(float(args["p"])))
            elif kw == "dropout2d":
                layers.append(nn.Dropout2d(float(args["p"])))
            elif kw == "flatten":
                layers.append(nn.Flatten())
                c, h, w, flat = c * h * w, 1, 1, True
            elif kw == "linear":
                if not flat:  # digits' linear reads its (C,H,W) input as a vector
                    layers.append(nn.Flatten())
                    c, h, w, flat = c * h * w, 1, 1, True
                out = int(args["out"])
                layers.append(nn.Linear(c, out, bias=args.get("bias", "1") != "0"))
                c = out
            else:
                sys.exit(f"{where}: bench_torch.py does not know layer '{kw}'")
    if c * h * w != 10:
        sys.exit(f"{path}: the last layer gives {c}x{h}x{w} outputs, expected 10 logits")
    return nn.Sequential(*layers), input_shape


# ---- the three measurements --------------------------------------------------

BF16 = [False]  # --bf16: torch.autocast('cpu', torch.bfloat16), PyTorch's own bf16 path (oneDNN)


def autocast():
    import contextlib
    return torch.autocast("cpu", dtype=torch.bfloat16) if BF16[0] else contextlib.nullcontext()

def to_input(u8):
    """uint8 (N, C, H, W) -> normalised float, the work of model_load_pixels."""
    return u8.float().mul_(1.0 / (255.0 * NORM_STD)).add_(-NORM_MEAN / NORM_STD)


def timed_loop(step, seconds, min_warm, min_timed):
    """Warm up (>= min_warm calls and 10 % of the budget), then call step until
    >= seconds have passed and >= min_timed calls. Returns (calls, seconds)."""
    t0, warm = time.perf_counter(), 0
    while warm < min_warm or time.perf_counter() - t0 < 0.1 * seconds:
        step()
        warm += 1
    calls, t0 = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= min_timed:
            return calls, elapsed


def bench_train(model, pool, labels, batch, seconds):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cursor = [0]
    last = [0.0]

    def step():
        idx = (torch.arange(batch) + cursor[0]) % POOL_IMAGES
        cursor[0] = (cursor[0] + batch) % POOL_IMAGES
        x, y = to_input(pool[idx]), labels[idx]
        with autocast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last[0] = loss

    steps, elapsed = timed_loop(step, seconds, 3, 5)
    print(f"  train: {steps} steps of {batch} in {elapsed:.2f} s, last loss {float(last[0]):.4f}",
          file=sys.stderr)
    return steps * batch / elapsed


def bench_infer(model, pool, seconds):
    model.eval()
    px = pool[torch.arange(INFER_BATCH) % POOL_IMAGES]

    def step():
        with torch.no_grad(), autocast():
            model(to_input(px))

    calls, elapsed = timed_loop(step, seconds, 2, 3)
    print(f"  infer: {calls} batches of {INFER_BATCH} in {elapsed:.2f} s", file=sys.stderr)
    return calls * INFER_BATCH / elapsed


def bench_latency(model, pool, calls):
    model.eval()
    times = []
    with torch.no_grad(), autocast():
        for i in range(50):  # warm-up
            model(to_input(pool[i % POOL_IMAGES:i % POOL_IMAGES + 1]))
        for i in range(calls):
            j = i % POOL_IMAGES
            t0 = time.perf_counter()
            model(to_input(pool[j:j + 1]))
            times.append((time.perf_counter() - t0) * 1e6)
    t = torch.tensor(times, dtype=torch.float64)
    return float(torch.quantile(t, 0.5)), float(torch.quantile(t, 0.99))


# ---- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="PyTorch side of the digits model benchmark; "
                                 "prints impl,model,metric,value lines")
    ap.add_argument("--models", default="lenet5,cnn,cnn-bn", help="comma-separated zoo names or spec paths")
    ap.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per throughput figure")
    ap.add_argument("--latency-calls", type=int, default=1000, help="single-image calls (default 1000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--impl", default="torch", help="the impl column (e.g. torch-tuned)")
    ap.add_argument("--bf16", action="store_true", help="run under torch.autocast('cpu', torch.bfloat16)")
    a = ap.parse_args()
    BF16[0] = a.bf16

    torch.set_num_threads(a.threads)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")
                   if k in os.environ) or "(no OpenBLAS variables)"
    print(f"bench_torch.py: torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"mkldnn {torch.backends.mkldnn.is_available()}, {env}", file=sys.stderr)

    for name in a.models.split(","):
        path = find_spec(name)
        model_name = os.path.basename(path)[:-5] if path.endswith(".spec") else os.path.basename(path)
        torch.manual_seed(a.seed)
        model, shape = build_from_spec(path)
        n_param = sum(p.numel() for p in model.parameters())
        print(f"{model_name}: {n_param} parameters", file=sys.stderr)
        g = torch.Generator().manual_seed(a.seed)
        pool = torch.randint(0, 256, (POOL_IMAGES, *shape), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (POOL_IMAGES,), generator=g)

        def emit(metric, value):
            print(f"{a.impl},{model_name},{metric},{value:.6g}", flush=True)

        emit("train_img_s", bench_train(model, pool, labels, a.batch, a.seconds))
        emit("infer_img_s", bench_infer(model, pool, a.seconds))
        median, p99 = bench_latency(model, pool, a.latency_calls)
        emit("latency_median_us", median)
        emit("latency_p99_us", p99)
        # peak resident set of this process (one model per process under run.sh)
        import resource
        emit("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


if __name__ == "__main__":
    main()
