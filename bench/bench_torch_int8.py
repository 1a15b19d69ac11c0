#!/usr/bin/python3
"""bench_torch_int8.py -- PyTorch's own int8 inference path beside digits'
(bench/int8.sh runs it next to build/bench/bench_int8 and bench_models).

For each zoo model: the same network bench_torch.py builds from the same
models/NAME.spec, quantized with PyTorch's static post-training
quantization (torch.ao.quantization, FX graph mode: conv + batch norm + ReLU
fused where PyTorch's patterns allow, int8 weights and activations,
calibrated on 256 of the seeded random images), for each quantized engine
asked for (default: onednn and qnnpack, those Debian's python3-torch has;
fbgemm/x86 when the build offers them). Measured, as bench_torch.py does:
  infer_img_s        eval mode, torch.no_grad(), batch 1000: uint8 ->
                     normalised float, the model (quantize, int8 layers,
                     dequantize) -> float logits;
  latency_median_us  one image, the same work, median of N calls.
Output: `torch-int8-ENGINE,model,metric,value` lines on stdout; notes
(the engine list, quantized layer types) on stderr.

Leaves out on purpose: accuracy (the weights are random; digits eval
measures digits' own int8 accuracy) and quantization-aware training.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch as bt  # noqa: E402  (the spec builder and the timing loop)

from torch.ao.quantization import get_default_qconfig_mapping  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402


def quantize(model, pool, engine):
    """A static int8 copy of `model` for `engine`: FX prepare, calibration on
    the first 256 pool images, convert. The float model is left as it was."""
    import copy
    torch.backends.quantized.engine = engine
    m = copy.deepcopy(model).eval()
    example = (bt.to_input(pool[:1]),)
    prepared = prepare_fx(m, get_default_qconfig_mapping(engine), example)
    with torch.no_grad():
        for i in range(0, 256, 64):
            prepared(bt.to_input(pool[i:i + 64]))
    return convert_fx(prepared)


def quantized_kinds(q):
    """The module types of the converted model, to show what ran in int8."""
    kinds = sorted({type(mod).__module__.split(".")[-2] + "." + type(mod).__name__
                    for mod in q.modules() if mod is not q and "quantized" in type(mod).__module__})
    return ", ".join(kinds) or "(none)"


def main():
    ap = argparse.ArgumentParser(description="PyTorch int8 (static PTQ) inference; prints impl,model,metric,value")
    ap.add_argument("--models", default="lenet5,cnn-bn,kaggle-deep", help="comma-separated zoo names or spec paths")
    ap.add_argument("--engines", default="auto",
                    help="comma list of quantized engines, or auto: every one this torch supports")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per throughput figure")
    ap.add_argument("--latency-calls", type=int, default=1000, help="single-image calls (default 1000)")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    supported = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    engines = supported if a.engines == "auto" else a.engines.split(",")
    for e in engines:
        if e not in supported:
            sys.exit(f"bench_torch_int8.py: engine '{e}' not in this torch ({', '.join(supported)})")
    torch.set_num_threads(a.threads)
    print(f"bench_torch_int8.py: torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"engines {','.join(engines)}", file=sys.stderr)

    for name in a.models.split(","):
        path = bt.find_spec(name)
        model_name = os.path.basename(path)[:-5] if path.endswith(".spec") else os.path.basename(path)
        torch.manual_seed(a.seed)
        model, shape = bt.build_from_spec(path)
        model.eval()
        g = torch.Generator().manual_seed(a.seed)
        pool = torch.randint(0, 256, (bt.POOL_IMAGES, *shape), dtype=torch.uint8, generator=g)
        for engine in engines:
            q = quantize(model, pool, engine)
            print(f"{model_name} [{engine}]: {quantized_kinds(q)}", file=sys.stderr)
            impl = f"torch-int8-{engine}"
            print(f"{impl},{model_name},infer_img_s,{bt.bench_infer(q, pool, a.seconds):.6g}", flush=True)
            median, _ = bt.bench_latency(q, pool, a.latency_calls)
            print(f"{impl},{model_name},latency_median_us,{median:.6g}", flush=True)


if __name__ == "__main__":
    main()
