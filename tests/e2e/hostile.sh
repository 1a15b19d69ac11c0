#!/usr/bin/env bash
# hostile.sh — a table of malformed files in every format digits reads
# (IDX raw and gzip, Kaggle CSV, specs, model files, ONNX files, PNG/JPEG/PGM), each
# given to the command that reads it. Every one must end the command with
# exit status 1 and exactly one line on stderr of the form
#   digits CMD: FILE: problem
# naming the offending file, with the expected problem in it. Also: files
# that claim huge sizes are refused from their headers (nothing big is
# allocated: the commands run under a 1 GiB address-space limit).
source "$(dirname "$0")/lib.bash"
set +o pipefail # producers piped into head -c die of SIGPIPE, on purpose
D="$DIGITS"
H="$TMP/h"
mkdir -p "$H"
cases=0

# check CMD FILE PROBLEM -- command...: exit 1, one line "digits CMD: FILE: ...PROBLEM..."
check() {
    local cmd=$1 file=$2 problem=$3
    shift 4
    local rc=0
    if [[ $BUILD == *san* ]]; then # ASan reserves terabytes of address space for its shadow
        "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    else
        (ulimit -v $((1 << 20)) && exec "$@") >"$TMP/out" 2>"$TMP/err" || rc=$?
    fi
    [[ $rc -eq 1 ]] || fail "$file: exit status $rc, expected 1; stderr: $(cat "$TMP/err")"
    [[ $(wc -l <"$TMP/err") -eq 1 ]] || fail "$file: expected one line on stderr, got: $(cat "$TMP/err")"
    local line
    line=$(cat "$TMP/err")
    [[ "$line" == "digits $cmd: $file"[:\ ]* ]] || fail "not 'digits $cmd: $file: problem': $line"
    [[ "$line" == *"$problem"* ]] || fail "$file: message lacks '$problem': $line"
    cases=$((cases + 1))
    echo "ok $cases: ${line#digits $cmd: $TMP/}"
}

# ---- helpers to build binary files -------------------------------------------
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
idx_images() { printf '\x00\x00\x08\x03'; be32 "$1"; be32 "$2"; be32 "$3"; } # header: n rows cols
idx_labels() { printf '\x00\x00\x08\x01'; be32 "$1"; }
# crc32 of stdin, big-endian bytes (PNG chunks), from gzip's trailer (little-endian)
crc_be() { gzip -c | tail -c 8 | head -c 4 | od -An -tx1 | awk '{printf "\\x%s\\x%s\\x%s\\x%s", $4, $3, $2, $1}'; }
png_chunk() { # png_chunk TYPE DATA-FILE
    be32 "$(stat -c %s "$2")"
    { printf '%s' "$1"; cat "$2"; } >"$TMP/chunk"
    cat "$TMP/chunk"
    printf "$(crc_be <"$TMP/chunk")"
}
png() { # png W H DEPTH CTYPE IDAT-FILE
    printf '\x89PNG\r\n\x1a\n'
    { be32 "$1"; be32 "$2"; printf "\\x$(printf %02x "$3")\\x$(printf %02x "$4")\\x00\\x00\\x00"; } >"$TMP/ihdr"
    png_chunk IHDR "$TMP/ihdr"
    png_chunk IDAT "$5"
    : >"$TMP/empty"
    png_chunk IEND "$TMP/empty"
}
# a zlib stream of N zero bytes: gzip's deflate data in a zlib wrapper (header 78 da,
# adler32 of N zeros = (N mod 65521) << 16 | 1)
zlib_zeros() {
    head -c "$1" /dev/zero | gzip -9 -n -c | tail -c +11 | head -c -8 >"$TMP/deflate"
    { printf '\x78\xda'; cat "$TMP/deflate"; be32 $(( ($1 % 65521) << 16 | 1 )); }
}

# ---- IDX (raw): `digits convert` of a folder holding t10k-* files ---------------
idx_case() { # idx_case NAME PROBLEM (images in $H/NAME/t10k-images-idx3-ubyte, labels likewise)
    local dir="$H/$1" which=${3:-images}
    check convert "$dir/t10k-$which-idx$([[ $which == images ]] && echo 3 || echo 1)-ubyte" "$2" -- \
        "$D" convert --in "$dir" --split test --out "$TMP/x.csv"
}
mk() { mkdir -p "$H/$1"; idx_labels 2 >"$H/$1/t10k-labels-idx1-ubyte"; printf '\x07\x02' >>"$H/$1/t10k-labels-idx1-ubyte"; }
good_images() { idx_images 2 28 28; head -c 1568 /dev/zero; }

mk empty; : >"$H/empty/t10k-images-idx3-ubyte"
idx_case empty "truncated header: expected 16 bytes, file has 0 bytes"
mk magic; { idx_labels 2; head -c 1576 /dev/zero; } >"$H/magic/t10k-images-idx3-ubyte"
idx_case magic "wrong magic 0x00000801, expected 0x00000803 (IDX images) (labels file given as images?)"
mk swapped; { printf '\x03\x08\x00\x00'; head -c 1580 /dev/zero; } >"$H/swapped/t10k-images-idx3-ubyte"
idx_case swapped "(byte-swapped header?)"
mk shorthdr; idx_images 2 28 28 | head -c 10 >"$H/shorthdr/t10k-images-idx3-ubyte"
idx_case shorthdr "truncated header: expected 16 bytes, file has 10 bytes"
mk zero; idx_images 0 28 28 >"$H/zero/t10k-images-idx3-ubyte"
idx_case zero "zero-size dims: header says 0 images of 28x28"
mk many; idx_images 4000000000 28 28 >"$H/many/t10k-images-idx3-ubyte"
idx_case many "implausible header: 4000000000 images of 28x28"
mk wide; idx_images 2 28 5000 >"$H/wide/t10k-images-idx3-ubyte"
idx_case wide "implausible header: 2 images of 28x5000"
mk big; idx_images 10000000 28 28 >"$H/big/t10k-images-idx3-ubyte"
idx_case big "is 7840000000 bytes (limit 2^31-1)"
mk body; good_images | head -c 900 >"$H/body/t10k-images-idx3-ubyte"
idx_case body "truncated: header says 2 images of 28x28 (1584 bytes), file has 900 bytes"
mk trailing; { good_images; printf 'x'; } >"$H/trailing/t10k-images-idx3-ubyte"
idx_case trailing "but the data goes on past that"
mk label10; good_images >"$H/label10/t10k-images-idx3-ubyte"; { idx_labels 2; printf '\x03\x0a'; } >"$H/label10/t10k-labels-idx1-ubyte"
idx_case label10 "label 10 at index 1 is not in 0..9" labels
mk count; good_images >"$H/count/t10k-images-idx3-ubyte"; { idx_labels 3; printf '\x01\x02\x03'; } >"$H/count/t10k-labels-idx1-ubyte"
idx_case count "3 labels, but $H/count/t10k-images-idx3-ubyte has 2 images (image/label count mismatch)" labels
mkdir -p "$H/nofiles"
check convert "$H/nofiles" "no MNIST images for split 'test'" -- "$D" convert --in "$H/nofiles" --split test --out "$TMP/x.csv"

# ---- IDX (gzip) -------------------------------------------------------------------
gz_case() { # gz_case NAME PROBLEM (images in $H/NAME/t10k-images-idx3-ubyte.gz)
    check convert "$H/$1/t10k-images-idx3-ubyte.gz" "$2" -- "$D" convert --in "$H/$1" --split test --out "$TMP/x.csv"
}
mk gzbody; good_images | head -c 900 | gzip -n >"$H/gzbody/t10k-images-idx3-ubyte.gz"
gz_case gzbody "truncated: header says 2 images of 28x28 (1584 bytes), decompressed data has 900 bytes"
mk gzcut; good_images | gzip -n | head -c 30 >"$H/gzcut/t10k-images-idx3-ubyte.gz"
gz_case gzcut "truncated"
mk gzcorrupt; { good_images | gzip -n | head -c 12; printf '\xff\xff\xff\xff\xff\xff\xff\xff'; head -c 40 /dev/zero; } >"$H/gzcorrupt/t10k-images-idx3-ubyte.gz"
gz_case gzcorrupt "corrupt gzip data:"
mk gzgz; good_images | gzip -n | gzip -n >"$H/gzgz/t10k-images-idx3-ubyte.gz"
gz_case gzgz "(gzip inside gzip?)"
mk gzbomb; { idx_images 2000000 28 28; head -c 1000000 /dev/zero; } | gzip -9 -n >"$H/gzbomb/t10k-images-idx3-ubyte.gz"
gz_case gzbomb "truncated: header says 2000000 images of 28x28 (1568000016 bytes), decompressed data has 1000016 bytes"

# ---- Kaggle CSV: `digits convert --in FILE.csv` -------------------------------------
csv_case() { # csv_case NAME CONTENT PROBLEM
    printf "$2" >"$H/$1.csv"
    check convert "$H/$1.csv" "$3" -- "$D" convert --in "$H/$1.csv" --out "$TMP/x"
}
csv_case empty '' "$H/empty.csv:1: empty file"
csv_case header 'foo,pixel0\n1,2\n' ":1: unknown header: first column is 'foo'"
csv_case noheader '1,2,3,4,5\n' ":1: missing header: first column is '1'"
csv_case colname 'label,pixel0,pixelX,pixel2,pixel3\n1,2,3,4,5\n' ":1: column 3 of the header is 'pixelX', expected 'pixel1'"
csv_case notsquare 'label,pixel0,pixel1,pixel2\n1,2,3,4\n' ":1: 3 pixel columns is not a perfect square"
csv_case short 'label,pixel0,pixel1,pixel2,pixel3\n1,2,3,4,5\n1,2,3,4\n' ":3: expected 5 columns, found 4"
csv_case long 'label,pixel0,pixel1,pixel2,pixel3\n1,2,3,4,5,6\n' ":2: expected 5 columns, found 6"
csv_case nonint 'label,pixel0,pixel1,pixel2,pixel3\n1,2,abc,4,5\n' ":2: column 3 (pixel1): 'abc' is not an integer"
csv_case emptycell 'label,pixel0,pixel1,pixel2,pixel3\n1,2,,4,5\n' ":2: column 3 (pixel1): empty cell"
csv_case pixel256 'label,pixel0,pixel1,pixel2,pixel3\n1,2,256,4,5\n' ":2: column 3 (pixel1): pixel value 256 is outside 0..255"
csv_case negative 'pixel0,pixel1,pixel2,pixel3\n0,-1,4,5\n' ":2: column 2 (pixel1): pixel value -1 is outside 0..255"
csv_case label12 'label,pixel0,pixel1,pixel2,pixel3\n12,2,3,4,5\n' ":2: column 1 (label): label 12 is outside 0..9"
csv_case blank 'label,pixel0\n1,2\n\n3,4\n' ":3: blank line in the middle of the data"
csv_case onlyheader 'label,pixel0,pixel1,pixel2,pixel3\n' ":2: no data rows after the header"

# ---- specs: `digits train --model FILE.spec --summary` ---------------------------------
spec_case() { # spec_case NAME CONTENT PROBLEM
    printf "$2" >"$H/$1.spec"
    check train "$H/$1.spec" "$3" -- "$D" train --model "$H/$1.spec" --summary
}
spec_case unknown 'conv2d out=6 kernel=5\nwobble\n' ":2: unknown layer 'wobble'"
spec_case badarg 'conv2d out=6 kernel=5 wobble=1\n' ":1: conv2d: unknown argument 'wobble'"
spec_case needs 'conv2d kernel=5\n' ":1: conv2d: conv2d needs out=CHANNELS"
spec_case range 'conv2d out=0 kernel=5\n' ":1: conv2d: out=0 is out of range 1..4096"
spec_case notkv 'flatten foo\n' ":1: 'foo' is not of the form key=value"
spec_case twice 'flatten\nlinear out=10 out=10\n' ":2: argument 'out' given twice"
spec_case logits 'flatten\nlinear out=11\n' ":2: the last layer gives 11x1x1 outputs, expected 10 logits"
spec_case kernel 'conv2d out=6 kernel=29\n' ":1: conv2d: conv2d kernel 29 is larger than its padded input 28x28"
spec_case params 'flatten\nlinear out=1000000\nlinear out=10\n' ":2: linear: the network has more than 67108864 parameters"
spec_case acts 'input 64x1024x1024\nconv2d out=4096 kernel=1\nflatten\nlinear out=10\n' ":2: conv2d: output 4096x1024x1024 is more than 33554432 floats per image"
spec_case nolayers '# nothing here\n\n' ": no layers"
spec_case late 'flatten\ninput 1x28x28\n' ":2: 'input' must come before the first layer"
spec_case shape 'input 1x28\nflatten\nlinear out=10\n' ":1: input shape should be CxHxW"

# ---- model files: `digits predict --model FILE image` -------------------------------------
base=fuzz/corpus/model/linear-4x4.safetensors # a 4x4 network, 1.4 KB
printf 'P5 4 4 255\n0123456789abcdef' >"$H/ok.pgm"
model_case() { # model_case NAME PROBLEM (file $H/NAME.safetensors)
    check predict "$H/$1.safetensors" "$2" -- "$D" predict --model "$H/$1.safetensors" "$H/ok.pgm"
}
patch() { # patch NAME PERL-SUBSTITUTION: a copy of base with its JSON header edited (length prefix updated)
    LC_ALL=C perl -e '
        binmode STDIN; binmode STDOUT; local $/; my $d = <STDIN>;
        my $h = unpack("Q<", substr($d, 0, 8));
        $_ = substr($d, 8, $h); my $rest = substr($d, 8 + $h);
        eval $ARGV[0]; die $@ if $@;
        print pack("Q<", length($_)), $_, $rest;' "$2" <"$base" >"$H/$1.safetensors"
    cmp -s "$base" "$H/$1.safetensors" && fail "patch $1 changed nothing"
    return 0
}
echo "garbage, not a model" >"$H/garbage.safetensors"
model_case garbage "not a model file (expected safetensors)"
head -c 5 "$base" >"$H/tiny.safetensors"
model_case tiny "not a model file (expected safetensors): 5 bytes, too short for a header"
head -c -100 "$base" >"$H/cut.safetensors"
model_case cut "truncated or corrupted model file: its spec needs at least 170 floats of weights (line 3), the file holds only 145"
patch json 's/"format":"pt"/"format":"pt}/'
model_case json "corrupted model file: header is not valid JSON"
patch nometa 's/"digits\.spec"/"digits\.spex"/'
model_case nometa "not a digits model file (no digits.format/digits.spec metadata)"
patch version 's/"digits\.format":"1"/"digits\.format":"9"/'
model_case version "model file format 9, this digits reads format 1"
patch shape 's/\[10,16\]/[10,15]/'
model_case shape "tensor 1.weight: shape [10,15], expected [10,16]"
patch name 's/"1\.weight"/"1\.wexght"/'
model_case name "missing tensor 1.weight (shape [10,16]) expected by the spec"
patch dtype 's/"F32","shape":\[10\]/"F64","shape":[10]/'
model_case dtype "tensor 1.bias: dtype F64, expected F32, F16 or BF16"
patch dtype16 's/"F32","shape":\[10\]/"BF16","shape":[10]/' # 40 bytes of data for 10 BF16 weights
model_case dtype16 "tensor 1.bias: data offsets are invalid or outside the file"
patch offsets 's/\[640,680\]/[640,690]/'
model_case offsets "tensor 1.bias: data offsets are invalid or outside the file"
patch spec 's/linear out=10/linxar out=10/'
model_case spec "(embedded spec):3: unknown layer 'linxar'"
patch std 's/("digits\.norm_std":")([0-9.]+)/$1 . ("0" x length($2))/e'
model_case std "metadata digits.norm_std must be positive"
patch kind 's/"format":"pt"/"digits.kind":"svm\\n2"/'
model_case kind "model kind 'svm?2' is not supported by this build of digits"
patch extra 's/\}\}\s*$/},"7.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}/'
model_case extra "unexpected tensor 7.weight (not in the spec)"
# a 1.4 KB file whose spec asks for 42 M parameters: refused before allocating
patch huge 's/input 1x4x4/input 16x512x512/'
model_case huge "truncated or corrupted model file: its spec needs at least 41943050 floats of weights (line 3), the file holds only 170"
patch offsets2 's/\[0,640\]/[-1,639]/'
model_case offsets2 "tensor 1.weight: data offsets are invalid"

# ---- images: `digits predict --model M FILE` ----------------------------------------------
# predict preprocesses every image to 28x28 (MNIST-style), so images go to a 28x28 model
img_base=tests/fixtures/lenet5-small.safetensors
img_case() { # img_case FILE PROBLEM
    check predict "$1" "$2" -- "$D" predict --model "$img_base" "$1"
}
: >"$H/empty.png"
img_case "$H/empty.png" "empty file"
printf 'GIF89a\x01\x00\x01\x00' >"$H/a.gif"
img_case "$H/a.gif" "unknown image format (starts with 47 49 46 38), expected PNG, JPEG, BMP or PGM"
zlib_zeros 20 >"$TMP/idat" # 4 rows of (filter byte + 4 pixels)
png 4 4 8 0 "$TMP/idat" >"$H/good.png"
head -c 40 "$H/good.png" >"$H/cut.png"
img_case "$H/cut.png" "bad PNG: truncated: file ends before the image does"
{ head -c 29 "$H/good.png"; printf '\x00\x00\x00\x00'; tail -c +34 "$H/good.png"; } >"$H/crc.png"
img_case "$H/crc.png" "bad PNG: IHDR: CRC error"
png 5000 5000 8 0 "$TMP/idat" >"$H/wide.png"
img_case "$H/wide.png" "image is 5000x5000, outside 1..4096 per side"
png 4096 4096 8 0 "$TMP/idat" >"$H/bomb.png"
img_case "$H/bomb.png" "truncated: a 4096x4096 PNG needs more compressed data than the file's"
# a valid file decodes: predict succeeds, or (a blank generated image) preprocessing finds no digit
check_ok() {
    local msg
    msg=$("$D" predict --model "$img_base" "$1" 2>&1 >/dev/null) || [[ $msg == *"no digit found"* ]] ||
        fail "$1: a valid file was refused: $msg"
}
check_ok "$H/good.png" # the generator makes valid files: the cases below are broken on purpose
png 4 4 3 0 "$TMP/idat" >"$H/depth.png"
img_case "$H/depth.png" "bad PNG: "
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00' >"$H/cut.jpg"
img_case "$H/cut.jpg" "truncated JPEG: the data ends before the image does"
printf '\xff\xd8\xff\xd8\x00\x00\x00\x00' >"$H/twosoi.jpg"
img_case "$H/twosoi.jpg" "bad JPEG: Invalid JPEG file structure: two SOI markers"
printf 'P5\nx 4\n255\n' >"$H/hdr.pgm"
img_case "$H/hdr.pgm" "bad PGM header: width missing or not a number"
printf 'P5 5000 5000 255\n' >"$H/huge.pgm"
img_case "$H/huge.pgm" "image is 5000x5000, outside 1..4096 per side"
printf 'P5 4096 4096 255\n0123' >"$H/bomb.pgm"
img_case "$H/bomb.pgm" "truncated: PGM header says 4096x4096 (16777216 bytes of pixels), file has 4"
printf 'P2 4096 4096 255\n1 2 3' >"$H/bomb2.pgm"
img_case "$H/bomb2.pgm" "truncated: PGM header says 4096x4096 (16777216 values), file has 6 bytes of pixels"
printf 'P5 4 4 0\n0123456789abcdef' >"$H/maxval.pgm"
img_case "$H/maxval.pgm" "bad PGM header: maxval 0 outside 1..65535"
printf 'P2 2 2 15\n1 2 3 x' >"$H/pixel.pgm"
img_case "$H/pixel.pgm" "pixel 3: 'x' is not a number"
printf 'P2 2 2 15\n1 2 3 20' >"$H/above.pgm"
img_case "$H/above.pgm" "pixel 3 is 20, above maxval 15"
printf 'P6 1 1 255\nabc' >"$H/color.ppm"
img_case "$H/color.ppm" "Netpbm P6 is not supported, only grayscale PGM (P5, P2)"
printf 'P5 6 5 255\n%030d' 0 >"$H/size.pgm"
img_case "$H/size.pgm" "no digit found: the image is blank"  # any size is preprocessed to 28x28; a blank one is refused

# ---- ONNX files: `digits import FILE.onnx --out M` -------------------------------------------
source tests/e2e/onnx_bytes.bash
onnx_case() { # onnx_case NAME PROBLEM (file $H/NAME.onnx)
    check import "$H/$1.onnx" "$2" -- "$D" import "$H/$1.onnx" --out "$H/imported.safetensors"
}
for b in huge short cycle wiretype overrun; do "onnx_$b" "$H/$b.onnx"; done
onnx_case huge "initializer 'w': 1099511627776 elements (at most 67108864)"
onnx_case short "initializer 'w': data holds 2 values, its shape needs 10"
onnx_case cycle "node 'A' reads 'b', which no graph input, initializer or earlier node defines (a cycle"
onnx_case wiretype "not an ONNX model (its protobuf data is truncated, malformed or of the wrong wire types)"
onnx_case overrun "not an ONNX model"
head -c 1000 fuzz/corpus/onnx/tiny.onnx >"$H/cut.onnx"
onnx_case cut "not an ONNX model"
printf 'not protobuf at all\n' >"$H/text.onnx"
onnx_case text "not an ONNX model"
LC_ALL=C perl -pe 's/\x22\x04Relu/\x22\x04Selu/; s/digits\.spec/digits.spex/' fuzz/corpus/onnx/join.onnx >"$H/selu.onnx" # an op outside the set
check import "$H/selu.onnx" "(op Selu) is not supported" -- "$D" import "$H/selu.onnx" --out "$H/x.safetensors"
[[ -e "$H/imported.safetensors" ]] && fail "a refused import wrote its --out file"

echo "$cases hostile files rejected with one-line 'FILE: problem' messages"
[[ $cases -ge 30 ]] || fail "only $cases cases"
