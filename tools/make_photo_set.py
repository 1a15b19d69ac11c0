#!/usr/bin/env python3
"""make_photo_set.py — the synthetic "photos of handwriting on paper" test set
in tests/photos/ (committed; run this only to change it).

Each image is an MNIST *training* digit (the last 300 of the 60k training
images: never a test image) drawn as ink on paper and photographed badly, one
condition at a time and then all at once:

  clean     black ink on white paper (mild blur, noise, JPEG: every image has these)
  gradient  light falling off 10-40 % across the sheet, in a random direction
  tint      tinted paper (yellow, blue, grey, pink, green) under a 10 % gradient
  ink       blue or red ink, on white or tinted paper
  exif      stored turned or mirrored, with the EXIF Orientation tag (2..8) that shows it upright
  specks    dust and dots of ink around the digit
  shadow    a soft shadow bar along one side (a phone or a hand)
  photo     all of the above at once
  multi     2 or 3 digits side by side: the label is the number

Output: tests/photos/NNN-CONDITION.jpg and tests/photos/labels.tsv (file,
label, condition), plus exif-ref.png and exif-ref-O.jpg (O = 2..8): an
asymmetric block pattern stored the 8 ways, for the decoder's unit test.
Deterministic (seeded); needs Debian's python3-numpy and python3-pil, which
CI does not: the set is committed.

    /usr/bin/python3 tools/make_photo_set.py [--mnist data/mnist] [--out tests/photos]
"""
import argparse
import io
import os
import struct

import numpy as np
from PIL import Image, ImageFilter, ImageOps

PAPERS = {"white": (244, 242, 236), "yellow": (236, 218, 140), "blue": (178, 204, 232),
          "grey": (176, 176, 170), "pink": (240, 196, 204), "green": (196, 226, 180)}
INKS = {"black": (28, 28, 36), "blue": (40, 70, 190), "lightblue": (90, 120, 215), "red": (200, 36, 40)}
# PIL's inverse of what each EXIF orientation asks a viewer to do
STORE = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM, 5: Image.TRANSPOSE,
         6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}


def read_idx(path):
    with open(path, "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic == 0x803:
            rows, cols = struct.unpack(">II", f.read(8))
            return np.frombuffer(f.read(), np.uint8).reshape(n, rows, cols)
        return np.frombuffer(f.read(), np.uint8)


def stroke_alpha(digit, height, rng):
    """The 28x28 digit as a pen stroke mask (0..1), about `height` px tall:
    scaled up smoothly, then given a pen's firm edge."""
    k = height / 20.0  # MNIST's digit is 20 px tall in its 28 px field
    side = int(round(28 * k))
    up = np.asarray(Image.fromarray(digit).resize((side, side), Image.BICUBIC), np.float32) / 255
    lo = rng.uniform(0.25, 0.4)
    return np.clip((up - lo) / 0.3, 0, 1)


def compose(alphas, ch, cw, rng):
    """Stroke masks placed on a canvas (ch, cw): one centred (cw given), or
    several in a row, each MNIST field 0.72-0.9 of its width after the last
    (cw = None: the row's width plus margins)."""
    aw = alphas[0].shape[1]
    steps = [aw * rng.uniform(0.72, 0.9) for _ in alphas[1:]]
    row = sum(steps) + aw
    if cw is None:
        cw = int(row + 0.5 * aw)
    mask = np.zeros((ch, cw), np.float32)
    x = (cw - row) / 2 + rng.uniform(-0.04, 0.04) * cw
    for i, a in enumerate(alphas):
        ah, aw = a.shape
        y0, x0 = int((ch - ah) / 2 + rng.uniform(-0.06, 0.06) * ch), int(x)
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(ah, ch - y0), min(aw, cw - x0)
        region = mask[y0 + ys:y0 + ye, x0 + xs:x0 + xe]
        np.maximum(region, a[ys:ye, xs:xe], out=region)
        x += steps[i] if i < len(steps) else 0
    return mask


def light(h, w, strength, rng):
    """Illumination: 1 on the bright side falling to 1-strength, linear along a random direction."""
    t = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    p = np.cos(t) * xx + np.sin(t) * yy
    p = (p - p.min()) / (p.max() - p.min())
    return 1 - strength * p


def shadow(h, w, rng):
    """A soft dark bar along one edge, 15-25 % of the width, 25-40 % darker."""
    width, depth, soft = rng.uniform(0.15, 0.25), rng.uniform(0.25, 0.4), rng.uniform(0.02, 0.05)
    side = rng.integers(4)
    if side >= 2:  # top or bottom: the margin there is narrower
        width *= 0.6
    n = w if side < 2 else h
    u = np.arange(n, dtype=np.float32) / n
    if side % 2:
        u = 1 - u
    prof = 1 - depth * np.clip((width - u) / soft + 0.5, 0, 1)
    return np.tile(prof, (h, 1)) if side < 2 else np.tile(prof[:, None], (1, w))


def specks(h, w, mask, rng):
    """3-8 dots of 1-3 px radius anywhere but on the digit; returns a mask."""
    out = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(3, 9)):
        for _try in range(20):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.0, 3.0)
            if mask[int(cy), int(cx)] == 0:
                break
        out = np.maximum(out, np.clip(r + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1))
    return out


def photograph(mask, paper, ink, illum, rng, extra_ink=None):
    """Paper and ink under the light, then the camera: blur, noise, RGB uint8."""
    h, w = mask.shape
    a = mask if extra_ink is None else np.maximum(mask, extra_ink)
    paper = np.array(paper, np.float32) * rng.uniform(0.97, 1.03, 3)
    rgb = paper * (1 - a[..., None]) + np.array(ink, np.float32) * a[..., None]
    rgb *= illum[..., None]
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))
    arr = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 5), (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def save_jpeg(img, path, rng, orientation=1):
    kw = {"quality": int(rng.integers(60, 86))}
    if orientation != 1:
        img = img.transpose(STORE[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(path, "JPEG", **kw)
    # the file must show upright the way viewers (PIL here) apply the tag
    back = ImageOps.exif_transpose(Image.open(path))
    assert back.size == (img.size if orientation < 5 else img.size[::-1]), path


def exif_refs(out):
    """An asymmetric pattern of 8x8 blocks (exact in JPEG at quality 95)
    stored the 8 ways, and its upright PNG."""
    ref = np.full((32, 48), 230, np.uint8)
    ref[0:8, 0:8] = 20          # top-left corner
    ref[8:32, 0:8] = 90         # left column below it
    ref[0:8, 16:48] = 160       # top bar, from the third block on
    ref[24:32, 40:48] = 40      # bottom-right corner
    up = Image.fromarray(ref)
    up.save(os.path.join(out, "exif-ref.png"))
    for o in range(1, 9):
        img = up.convert("RGB")
        kw = {"quality": 95, "subsampling": 0}
        if o != 1:
            img = img.transpose(STORE[o])
            exif = Image.Exif()
            exif[0x0112] = o
            kw["exif"] = exif.tobytes()
        img.save(os.path.join(out, f"exif-ref-{o}.jpg"), "JPEG", **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", default="data/mnist")
    ap.add_argument("--out", default="tests/photos")
    args = ap.parse_args()
    images = read_idx(os.path.join(args.mnist, "train-images-idx3-ubyte"))
    labels = read_idx(os.path.join(args.mnist, "train-labels-idx1-ubyte"))
    pool = list(range(59700, 60000))  # training images only
    rng = np.random.default_rng(20261206)
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith((".jpg", ".png", ".tsv")):
            os.remove(os.path.join(args.out, f))
    exif_refs(args.out)
    rows, k = [], 0
    conditions = ["clean", "gradient", "tint", "ink", "exif", "specks", "shadow", "photo", "multi"]
    for cond in conditions:
        for j in range(21 if cond == "exif" else 20):
            n = int(rng.integers(2, 4)) if cond == "multi" else 1
            idx = [pool[(k + i) % len(pool)] for i in range(n)]
            k += n
            height = int(rng.integers(64, 96))
            alphas = [stroke_alpha(images[i], height, rng) for i in idx]
            ch = int(height * rng.uniform(1.5, 1.9))
            mask = compose(alphas, ch, int(ch * rng.uniform(1.0, 1.3)) if n == 1 else None, rng)
            cw = mask.shape[1]
            paper, ink, illum = PAPERS["white"], INKS["black"], light(ch, cw, rng.uniform(0, 0.05), rng)
            extra, orientation = None, 1
            if cond in ("gradient", "photo"):
                illum = light(ch, cw, rng.uniform(0.1, 0.4), rng)
            if cond in ("tint", "photo"):
                paper = PAPERS[["yellow", "blue", "grey", "pink", "green"][j % 5]]
                if cond == "tint":
                    illum = light(ch, cw, 0.1, rng)
            if cond == "ink":
                paper = PAPERS[["white", "grey", "yellow", "white"][j % 4]]
            if cond in ("ink", "photo"):
                ink = INKS[["blue", "red", "lightblue"][j % 3]]
            if cond in ("specks", "photo"):
                extra = specks(ch, cw, mask, rng)
            if cond in ("shadow", "photo"):
                illum = illum * shadow(ch, cw, rng)
            if cond == "exif" or (cond == "photo" and j % 2 == 0):
                orientation = 2 + j % 7
            img = photograph(mask, paper, ink, illum, rng, extra)
            name = f"{len(rows):03d}-{cond}.jpg"
            save_jpeg(img, os.path.join(args.out, name), rng, orientation)
            rows.append((name, "".join(str(int(labels[i])) for i in idx), cond))
    with open(os.path.join(args.out, "labels.tsv"), "w") as f:
        f.write("file\tlabel\tcondition\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"{len(rows)} photos in {args.out}, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
