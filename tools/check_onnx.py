#!/usr/bin/python3
"""check_onnx.py — developer-side check (not in CI): Debian's python3-onnx
(1.12) checker, with full shape inference, accepts every file digits exports.

    DIGITS_DEV=1 bash tools/install_deps.sh   # python3-onnx
    make build/digits build/tests/onnx_ref
    /usr/bin/python3 tools/check_onnx.py [FILE.onnx ...]

Without arguments it exports every zoo network (random weights, via
build/tests/onnx_ref init) and a 3-member ensemble of each vote into a
temporary folder and checks them all; with arguments it checks those files.
Prints one line per file and exits 1 if any is refused.
Left out: running the graphs (tests/e2e/onnx_ort.sh does, in ONNX Runtime).
"""
import glob
import os
import subprocess
import sys
import tempfile

import onnx
import onnx.checker
import onnx.shape_inference


def check(path):
    """Checker + strict shape inference; returns an error text or None."""
    try:
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
        outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
                for o in inferred.graph.output}
        if outs.get("logits") != ["N", 10] or outs.get("probabilities") != ["N", 10]:
            return f"outputs {outs}, expected logits and probabilities of shape (N, 10)"
    except Exception as e:  # the checker's own exception types vary by version
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def export_all(tmp):
    """Every zoo network and two ensembles as .onnx files in tmp."""
    files, models = [], []
    for spec in sorted(glob.glob("models/*.spec")):
        name = os.path.basename(spec)[:-5]
        st = os.path.join(tmp, name + ".safetensors")
        subprocess.run(["build/tests/onnx_ref", "init", spec, "7", st], check=True)
        models.append(st)
    for vote in ("probs", "logits"):
        st = os.path.join(tmp, f"ens-{vote}.safetensors")
        subprocess.run(["build/digits", "ensemble", "--vote", vote, "--out", st] + models[:3],
                       check=True, stdout=subprocess.DEVNULL)
        models.append(st)
    for st in models:
        out = st[:-len(".safetensors")] + ".onnx"
        subprocess.run(["build/digits", "export", "--format", "onnx", "--model", st, "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        files.append(out)
    return files


def main():
    with tempfile.TemporaryDirectory() as tmp:
        files = sys.argv[1:] or export_all(tmp)
        bad = 0
        for f in files:
            err = check(f)
            print(f"{os.path.basename(f)}: {'ok' if err is None else 'REFUSED: ' + err}")
            bad += err is not None
    print(f"onnx {onnx.__version__} checker: {len(files) - bad} of {len(files)} files accepted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
