#!/usr/bin/env bash
# make_corpus.sh — regenerates the seed corpora under fuzz/corpus/ (they are
# committed; run this only to change them). Needs build/digits, MNIST in
# data/mnist, gzip, and Debian's python3 with PIL (python3-pil) for the
# PNG/JPEG seeds. Every seed is small (a few KB): fuzzers mutate small
# inputs fastest.
set -euo pipefail
cd "$(dirname "$0")/.."
D=build/digits
PY=/usr/bin/python3
C=fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rm -rf "$C"
mkdir -p "$C"/{idx,idx_gz,csv,spec,model,image,http,yaml,onnx}

# ---- IDX: two MNIST test images and their labels, raw and gzipped, and broken variants
"$D" convert --in data/mnist --split test --limit 2 --out "$T/idx" >/dev/null
cp "$T/idx/t10k-images-idx3-ubyte" "$C/idx/images-2"
cp "$T/idx/t10k-labels-idx1-ubyte" "$C/idx/labels-2"
gzip -9 -n -c "$C/idx/images-2" > "$C/idx/images-2.gz"
gzip -9 -n -c "$C/idx/labels-2" > "$C/idx/labels-2.gz"
head -c 10 "$C/idx/images-2" > "$C/idx/images-trunc-header"
head -c 900 "$C/idx/images-2" > "$C/idx/images-trunc-body"
{ cat "$C/idx/labels-2"; printf '\x03'; } > "$C/idx/labels-trailing"
printf '\x00\x00\x08\x03\x00\x98\x96\x80\x00\x00\x00\x1c\x00\x00\x00\x1c' > "$C/idx/images-huge-claim"
gzip -9 -n -c "$C/idx/images-huge-claim" > "$C/idx/images-huge-claim.gz"
head -c 40 "$C/idx/images-2.gz" > "$C/idx/images-cut.gz"
# a 4x4 one: small enough for the fuzzer to reshape
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04'; head -c 32 /dev/zero | tr '\0' '\200'; } > "$C/idx/images-4x4"
# idx_gz: the decompressed content, after one byte of compression level
for f in images-2 labels-2 images-4x4 images-huge-claim labels-trailing; do
    { printf '\x06'; cat "$C/idx/$f"; } > "$C/idx_gz/$f"
done
{ printf '\x00'; cat "$C/idx/images-4x4"; } > "$C/idx_gz/images-4x4-stored"

# ---- CSV: Kaggle layouts, 28x28 (one row) and 2x2, CRLF, BOM, broken rows
"$D" convert --in data/mnist --split test --limit 1 --out "$T/one.csv" >/dev/null
cp "$T/one.csv" "$C/csv/train-28x28.csv"
"$D" convert --in data/mnist --split test --limit 1 --drop-labels --out "$T/one-test.csv" >/dev/null
cp "$T/one-test.csv" "$C/csv/test-28x28.csv"
printf 'label,pixel0,pixel1,pixel2,pixel3\n7,0,255,3,0\n1,10,20,30,40\n' > "$C/csv/train-2x2.csv"
printf 'pixel0,pixel1,pixel2,pixel3\r\n0,255,3,0\r\n1,2,3,4\r\n' > "$C/csv/test-2x2-crlf.csv"
printf '\xef\xbb\xbflabel,pixel0\n3,128\n\n' > "$C/csv/bom-1x1.csv"
printf 'label,pixel0,pixel1,pixel2,pixel3\n7,0,255,3\n' > "$C/csv/short-row.csv"
printf 'label,pixel0,pixel1,pixel2,pixel3\n12,0,255,3,-1\n' > "$C/csv/out-of-range.csv"
printf 'label,pixel0,pixel1,pixel2\n1,2,3,4\n' > "$C/csv/not-square.csv"

# ---- specs: the zoo, and small variants using every layer kind and argument
cp models/*.spec "$C/spec/"
printf 'input 1x8x8\nconv2d out=4 kernel=3 stride=2 pad=1 bias=0\nbatchnorm eps=1e-3 momentum=0.2\nrelu\nmaxpool size=2 stride=1\ndropout2d p=0.1\nflatten\nlinear out=16\ntanh\ndropout p=0.3\nlinear out=10 bias=0\n' > "$C/spec/tiny-all.spec"
printf 'input 3x5x7\navgpool size=1\nconv2d out=2 kernel=1\nflatten\nbatchnorm\nlinear out=10\n' > "$C/spec/pointwise.spec"
printf '# comment only\n\ninput 1x28x28\nconv2d out=6 kernel=5 wobble=1\n' > "$C/spec/bad-arg.spec"

# ---- model files: tiny networks on 4x4 / 6x6 images, trained one epoch on tiny CSVs
mk_csv() { # mk_csv SIDE ROWS FILE
    $PY - "$@" <<'PYEOF'
import sys, random
side, rows, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
random.seed(1)
with open(path, "w") as f:
    f.write("label," + ",".join("pixel%d" % i for i in range(side * side)) + "\n")
    for r in range(rows):
        f.write("%d," % (r % 10) + ",".join(str(random.randrange(256)) for _ in range(side * side)) + "\n")
PYEOF
}
mk_csv 4 40 "$T/4.csv"
mk_csv 6 40 "$T/6.csv"
printf 'input 1x4x4\nflatten\nlinear out=10\n' > "$T/lin.spec"
printf 'input 1x6x6\nconv2d out=2 kernel=3\nbatchnorm\nrelu\nmaxpool size=2\ndropout p=0.2\nflatten\nlinear out=10\n' > "$T/conv.spec"
"$D" train --model "$T/lin.spec" --data "$T/4.csv" --epochs 1 --batch-size 8 --val-split 0 --test none --quiet --out "$C/model/linear-4x4.safetensors" >/dev/null
"$D" train --model "$T/conv.spec" --data "$T/6.csv" --epochs 1 --batch-size 8 --val-split 0.2 --test none --quiet --out "$C/model/conv-bn-6x6.safetensors" >/dev/null
if "$D" train --help | grep -q -- --checkpoint-dir; then
    "$D" train --model "$T/conv.spec" --data "$T/6.csv" --epochs 1 --batch-size 8 --val-split 0.2 --test none --quiet \
        --out "$T/m.safetensors" --checkpoint-dir "$T/ck" >/dev/null
    cp "$T/ck/$(cat "$T/ck/latest")" "$C/model/checkpoint-6x6.safetensors"
fi
head -c 300 "$C/model/linear-4x4.safetensors" > "$C/model/truncated.safetensors"
# 16-bit tensors: the same networks stored as BF16 and F16
"$D" ensemble --dtype bf16 --out "$C/model/conv-bn-6x6-bf16.safetensors" "$C/model/conv-bn-6x6.safetensors" >/dev/null
"$D" ensemble --dtype f16 --out "$C/model/linear-4x4-f16.safetensors" "$C/model/linear-4x4.safetensors" >/dev/null

# ---- images: PNG in every colour type, JPEG, PGM binary/ASCII/16-bit
$PY - "$C/image" <<'PYEOF'
import sys, struct, zlib
from PIL import Image
out = sys.argv[1]
w, h = 6, 5
gray = bytes((x * 40 + y * 10) % 256 for y in range(h) for x in range(w))
def png(path, ctype, depth, rows, palette=None, trns=None, interlace=0):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    if palette: data += chunk(b"PLTE", palette)
    if trns is not None: data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
rows8 = [gray[y * w:(y + 1) * w] for y in range(h)]
png(out + "/gray8.png", 0, 8, rows8)
png(out + "/gray16.png", 0, 16, [b"".join(bytes([v, v]) for v in r) for r in rows8])
png(out + "/gray1.png", 0, 1, [bytes([0b10110100]) for _ in range(h)])
png(out + "/rgb.png", 2, 8, [b"".join(bytes([v, 255 - v, v // 2]) for v in r) for r in rows8])
png(out + "/rgba.png", 6, 8, [b"".join(bytes([v, v, v, 255 - v]) for v in r) for r in rows8])
png(out + "/graya.png", 4, 8, [b"".join(bytes([v, v // 3]) for v in r) for r in rows8])
png(out + "/palette-trns.png", 3, 8, [bytes(v % 3 for v in r) for r in rows8],
    palette=bytes([0, 0, 0, 255, 255, 255, 128, 64, 32]), trns=bytes([255, 0]))
png(out + "/interlaced.png", 0, 8, rows8, interlace=1)
img = Image.frombytes("L", (w, h), gray)
img.save(out + "/gray.jpg", quality=90)
Image.merge("RGB", (img, img.transpose(Image.FLIP_LEFT_RIGHT), img)).save(out + "/color.jpg", quality=75)
img.save(out + "/progressive.jpg", quality=80, progressive=True)
open(out + "/binary.pgm", "wb").write(b"P5\n# a comment\n%d %d\n255\n" % (w, h) + gray)
open(out + "/ascii.pgm", "wb").write(b"P2\n%d %d\n15\n" % (w, h) + b" ".join(str(v % 16).encode() for v in gray) + b"\n")
open(out + "/sixteen.pgm", "wb").write(b"P5 %d %d 1000\n" % (w, h) + b"".join(struct.pack(">H", v * 3) for v in gray))
# EXIF orientation (APP1 after SOI): PIL's little-endian tag 6; big-endian tag 8 by hand; an IFD
# offset past the end; an entry count larger than the segment
exif = Image.Exif()
exif[0x0112] = 6
img.save(out + "/exif6.jpg", quality=90, exif=exif.tobytes())
plain = open(out + "/gray.jpg", "rb").read()
def with_app1(path, tiff):
    body = b"Exif\0\0" + tiff
    open(path, "wb").write(plain[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + plain[2:])
with_app1(out + "/exif8-be.jpg", b"MM\0\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + b"\0\0\0\0")
with_app1(out + "/exif-bad-offset.jpg", b"II\x2a\0" + struct.pack("<I", 0xfffffff0))
with_app1(out + "/exif-bad-count.jpg", b"II\x2a\0" + struct.pack("<IH", 8, 0xffff) + struct.pack("<HHIHH", 0x0112, 3, 1, 5, 0))
PYEOF
head -c 60 "$C/image/gray8.png" > "$C/image/truncated.png"
head -c 200 "$C/image/gray.jpg" > "$C/image/truncated.jpg"
# ---- HTTP requests (fuzz_http.c): selector byte (method, no-Content-Type bit),
# path\n, content type\n, body. MNIST test digits as PNG, PGM, BMP and JSON
# pixels, a multipart upload, and what the server must refuse.
$PY - "$C/http" "$C/image" <<'PYEOF'
import json, struct, sys, zlib
out, images = sys.argv[1], sys.argv[2]
raw = open("data/mnist/t10k-images-idx3-ubyte", "rb").read()
digit = lambda k: raw[16 + 784 * k:16 + 784 * (k + 1)]
def png(px, w, h, ihdr_w=None, ihdr_h=None):
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    rows = b"".join(b"\0" + px[y * w:(y + 1) * w] for y in range(h))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", ihdr_w or w, ihdr_h or h, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
def bmp(px, w, h):  # 8-bit gray palette, bottom-up rows padded to 4 bytes
    stride = (w + 3) & ~3
    pix = b"".join(px[y * w:(y + 1) * w] + b"\0" * (stride - w) for y in reversed(range(h)))
    pal = b"".join(bytes([i, i, i, 0]) for i in range(256))
    off = 14 + 40 + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) \
        + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(pix), 2835, 2835, 256, 0) + pal + pix
def req(name, method, path, ctype, body=b""):
    sel = ["POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", ""].index(method)
    if ctype is None: sel |= 8
    open(out + "/" + name, "wb").write(bytes([sel]) + path.encode() + b"\n" + (ctype or "").encode() + b"\n" + body)
seven = png(bytes(255 - v for v in digit(0)), 28, 28)  # dark on white, as drawn
req("png", "POST", "/api/predict", "image/png", seven)
req("png-as-form", "POST", "/api/predict", "application/x-www-form-urlencoded", png(digit(1), 28, 28))
req("pgm", "POST", "/api/predict", "image/x-portable-graymap", b"P5\n28 28\n255\n" + digit(2))
req("bmp", "POST", "/api/predict", "image/bmp", bmp(digit(3), 28, 28))
req("jpeg", "POST", "/api/predict", "image/jpeg", open(images + "/gray.jpg", "rb").read())
req("json", "POST", "/api/predict", "application/json", json.dumps({"pixels": list(digit(4))}).encode())
req("json-raw", "POST", "/api/predict", "application/vnd.digits+json; charset=utf-8",
    json.dumps({"pixels": list(digit(5)), "preprocess": False}).encode())
req("multipart", "POST", "/api/predict", "multipart/form-data; boundary=XyZ",
    b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"d.png\"\r\nContent-Type: image/png\r\n\r\n"
    + seven + b"\r\n--XyZ--\r\n")
req("blank-pgm", "POST", "/api/predict", "image/x-portable-graymap", b"P5 8 8 255\n" + b"\xff" * 64)
req("huge-png-header", "POST", "/api/predict", "image/png", png(b"\0" * 4, 2, 2, 100000, 100000))
req("truncated-png", "POST", "/api/predict", "image/png", seven[:70])
req("bad-json", "POST", "/api/predict", "application/json", b'{"pixels": [0, 12, 255,')
req("json-short", "POST", "/api/predict", "application/json", b'{"pixels": [0, 1e400, -3], "preprocess": 1}')
req("garbage", "POST", "/api/predict", "application/octet-stream", bytes((i * 73 + 41) % 256 for i in range(64)))
req("no-type-json", "POST", "/api/predict", None, b'{"pixels": []}')
req("empty", "POST", "/api/predict", "image/png")
req("page", "GET", "/", None)
req("model", "GET", "/api/model", None)
req("health", "HEAD", "/healthz", None)
req("assets", "GET", "/app.js", None)
req("wrong-method", "PUT", "/api/predict", "image/png", seven[:40])
req("get-predict", "GET", "/api/predict", None)
req("no-such-path", "DELETE", "/api/predict/../../etc/passwd\x01\"\\", None)
PYEOF
# ---- train configs (fuzz_yaml.c): configs/, a --print-config output, broken files
cp configs/*.yaml "$C/yaml/"
"$D" train --print-config --model lenet5 --augment seed000 --out 'a "quoted" \path' > "$C/yaml/printed.yaml"
printf 'epohcs: 3\n' > "$C/yaml/unknown-key.yaml"
printf 'epochs: 0\nlr: ten\n' > "$C/yaml/bad-value.yaml"
printf 'epochs: 3\nlr: "abc\n' > "$C/yaml/unterminated.yaml"
printf 'epochs: [1, 2]\nmodel: &a cnn\ndata: *a\n' > "$C/yaml/list-alias.yaml"
printf -- '---\nepochs: 2\n---\nepochs: 3\n' > "$C/yaml/two-docs.yaml"
printf 'train_params:\n  epochs: 2\n  learning_rate: 1e-3\ntest_params: {batch_size: 8}\nnesterov: yes\naugment: rotate=10\n' > "$C/yaml/sections.yaml"
printf 'lr: 1e300\nema: -1e-50\nseed: 18446744073709551615\nmax-steps: 99999999999999999999\n' > "$C/yaml/huge-numbers.yaml"

# ---- ONNX: tiny digits exports (a few hundred weights on 28x28) and hand-built broken files
printf 'conv2d out=1 kernel=1\nmaxpool size=4\nflatten\nlinear out=10\n' > "$T/tiny.spec"
printf 'conv2d out=2 kernel=3 stride=3 name=a\nbatchnorm\nrelu name=b\nconcat inputs=a,b\nglobalavgpool\nflatten\nlinear out=10\n' > "$T/join.spec"
for s in tiny join; do
    build/tests/onnx_ref init "$T/$s.spec" 1 "$T/$s.safetensors" # random weights (make build/tests/onnx_ref)
    "$D" export --format onnx --model "$T/$s.safetensors" --out "$C/onnx/$s.onnx" >/dev/null
done
head -c 200 "$C/onnx/tiny.onnx" > "$C/onnx/truncated.onnx"
source tests/e2e/onnx_bytes.bash
for b in huge short cycle wiretype overrun; do "onnx_$b" "$C/onnx/$b.onnx"; done

du -sh "$C"/* | sed 's/^/corpus: /'
