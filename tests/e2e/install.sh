#!/usr/bin/env bash
# install.sh — `make install` into a temporary PREFIX and what a user of the
# installed tree gets: the CLI finds its pretrained models under DATADIR
# (PREFIX/share/digits, compiled in) when run from / with no DIGITS_MODELS;
# the man page renders and the bash completion completes with that digits;
# pkg-config describes the library; the public header compiles alone as
# strict C99 and C++11; libdigits.so exports only dg_* symbols; the programs
# in examples/ (classify.c, classify.cpp, train.c) built with
# `cc prog.c $(pkg-config --cflags --libs digits)` link libdigits.so.0 and
# give the CLI's answers (and so do they linked with libdigits.a through
# `pkg-config --static`); `make uninstall` leaves no file.
# The install is built in a copy of $BUILD (objects with their timestamps), so
# only model.o, which holds DATADIR, is rebuilt for the temporary prefix and
# the developer's $BUILD keeps the default DATADIR.
# Not checked here: DESTDIR installs beyond the paths `make -n` prints.
source "$(dirname "$0")/lib.bash"
require_data
P=$TMP/prefix
V=$(sed -n 's/^#define DG_VERSION "\(.*\)"/\1/p' src/core/version.h)
B=$TMP/build
# the same build mode as $BUILD (sanitized objects need sanitized links; a
# native $BUILD installs with PORTABLE=0, which `make install` needs spelt out,
# so that its objects are reused: the portable install is portable.sh's)
mode=(PORTABLE=0) ccflags=()
case $BUILD in
    build-san) mode=(SANITIZE=1 PORTABLE=0); ccflags=("-fsanitize=address,undefined") ;;
    build-portable) mode=(PORTABLE=1) ;;
esac
# a make of its own (run by `make test`, the outer make's flags and jobserver do not apply)
unset MAKEFLAGS MFLAGS MAKELEVEL
mkdir -p "$B"
for f in src pic isa apps gen digits libdigits.a libdigits.so libdigits.so.0 libdigits.so.0.*; do
    [[ -e $BUILD/$f ]] && cp -a "$BUILD/$f" "$B/"
done
make -s -j2 "${mode[@]}" BUILD="$B" PREFIX="$P" install > "$TMP/make.log" 2>&1 \
    || { tail -20 "$TMP/make.log"; fail "make install PREFIX=$P"; }

# the installed files
for f in bin/digits lib/libdigits.so.$V lib/libdigits.so.0 lib/libdigits.so lib/libdigits.a \
         include/digits.h \
         lib/pkgconfig/digits.pc share/man/man1/digits.1 share/digits/models/cnn-bn.spec \
         share/digits/models/pretrained/default.safetensors share/digits/models/pretrained/best.safetensors \
         share/digits/models/pretrained/manifest.tsv share/bash-completion/completions/digits; do
    [[ -e $P/$f ]] || fail "make install did not install $f"
done
[[ -L $P/lib/libdigits.so.0 && -L $P/lib/libdigits.so ]] || fail "libdigits.so{,.0} are not symlinks"
readelf -d "$P/lib/libdigits.so.$V" | grep 'SONAME.*\[libdigits\.so\.0\]' >/dev/null || fail "soname is not libdigits.so.0"
[[ ! -e $P/include/digits ]] || fail "internal headers installed under include/digits"
# the shared library exports the public API and nothing else
nm -D --defined-only "$P/lib/libdigits.so.$V" | awk '{print $3}' > "$TMP/syms.txt"
for s in dg_predict dg_train dg_train_run dg_train_config_load dg_train_config_yaml dg_train_config_check \
         dg_train_set_log; do
    grep -q "^$s\$" "$TMP/syms.txt" || fail "libdigits.so does not export $s"
done
bad=$(grep -v '^dg_' "$TMP/syms.txt" || true)
[[ -z $bad ]] || fail "libdigits.so exports names without dg_: $(echo $bad | head -c 400)"
echo "libdigits.so exports $(wc -l < "$TMP/syms.txt") symbols, all dg_*"

# the installed header alone: self-contained, strict C99 and C++11
echo '#include <digits.h>' > "$TMP/h.c"
echo '#include <digits.h>' > "$TMP/h.cpp"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -I"$P/include" -c -o "$TMP/h.o" "$TMP/h.c" || fail "digits.h as C99"
g++ -std=c++11 -Wall -Wextra -Werror -I"$P/include" -c -o "$TMP/hpp.o" "$TMP/h.cpp" || fail "digits.h as C++11"

# the installed CLI, run from / with no model folder near it: DATADIR
out=$("$P/bin/digits" --version)
[[ $out == "digits $V"* ]] || fail "installed digits --version: $out"
{ printf 'P5\n28 28\n255\n'; head -c 800 "$DATA/t10k-images-idx3-ubyte" | tail -c 784; } > "$TMP/seven.pgm"
out=$(cd / && env -u DIGITS_MODELS "$P/bin/digits" predict "$TMP/seven.pgm") || fail "installed predict from /"
echo "$out"
[[ $out == *": 7 (p="* ]] || fail "installed predict without --model: $out"
out=$(cd / && env -u DIGITS_MODELS "$P/bin/digits" models) || fail "installed digits models"
[[ $out == *lenet5* && $out == *default* ]] || fail "installed digits models lacks the zoo in DATADIR: $out"
groff -man -Tascii "$P/share/man/man1/digits.1" 2>/dev/null | grep 'predict' >/dev/null || fail "man page does not render"
# the installed bash completion, driven by the installed digits
out=$(cd / && bash -c \
    'source "$1"; COMP_WORDS=("$2" tr); COMP_CWORD=1; _digits; echo "${COMPREPLY[*]}"' _ \
    "$P/share/bash-completion/completions/digits" "$P/bin/digits") || fail "installed bash completion"
[[ $out == train ]] || fail "installed bash completion: digits tr<TAB> gave '$out'"

# pkg-config and a program built against the shared library
export PKG_CONFIG_PATH=$P/lib/pkgconfig
flags=$(pkg-config --cflags --libs digits) || fail "pkg-config --cflags --libs digits"
echo "pkg-config: $flags"
[[ $flags == *"-I$P/include"* && $flags != *"-I$P/include/digits"* && $flags == *"-L$P/lib"*"-ldigits"* ]] \
    || fail "pkg-config flags: $flags"
pkg-config --static --libs digits > /dev/null || fail "pkg-config --static --libs digits"
# the examples, shared: cc/c++ EXAMPLE $(pkg-config --cflags --libs digits)
build_examples() { # build_examples SUFFIX LIBS...
    local sfx=$1; shift
    # shellcheck disable=SC2046
    cc "${ccflags[@]}" -std=c99 -Wall -Wextra -Werror $(pkg-config --cflags digits) -o "$TMP/classify$sfx" \
        examples/classify.c "$@" || fail "cc examples/classify.c ($sfx)"
    # shellcheck disable=SC2046
    c++ "${ccflags[@]}" -std=c++11 -Wall -Wextra -Werror $(pkg-config --cflags digits) -o "$TMP/classify-cpp$sfx" \
        examples/classify.cpp "$@" || fail "c++ examples/classify.cpp ($sfx)"
    # shellcheck disable=SC2046
    cc "${ccflags[@]}" -std=c99 -Wall -Wextra -Werror $(pkg-config --cflags digits) -o "$TMP/train$sfx" \
        examples/train.c "$@" || fail "cc examples/train.c ($sfx)"
}
# shellcheck disable=SC2046
build_examples "" $(pkg-config --libs digits)
LD_LIBRARY_PATH=$P/lib ldd "$TMP/classify" > "$TMP/ldd.txt"
grep -F "libdigits.so.0 => $P/lib/libdigits.so.0" "$TMP/ldd.txt" > /dev/null \
    || fail "classify does not link $P/lib/libdigits.so.0: $(cat "$TMP/ldd.txt")"
# static: pkg-config --static, libdigits.a chosen over the .so (as digits.h says)
static_libs=$(pkg-config --static --libs digits | sed 's/-ldigits/-l:libdigits.a/')
# shellcheck disable=SC2086
build_examples "-static" $static_libs
ldd "$TMP/classify-static" > "$TMP/ldd.txt"
! grep -F libdigits "$TMP/ldd.txt" > /dev/null || fail "classify-static links libdigits dynamically"

# run them from /, the pretrained default found under the prefix: the same
# answers as the installed CLI
imgs=("$TMP/seven.pgm" "$PWD/tests/photos/000-clean.jpg" "$PWD/tests/photos/001-clean.jpg")
want=$(cd / && env -u DIGITS_MODELS "$P/bin/digits" predict "${imgs[@]}") || fail "installed predict"
[[ $(head -1 <<< "$want") == *": 7 (p="* ]] || fail "installed predict: $want"
for sfx in "" "-static"; do
    out=$(cd / && env -u DIGITS_MODELS LD_LIBRARY_PATH=$P/lib "$TMP/classify$sfx" "${imgs[@]}") \
        || fail "classify$sfx: $out"
    [[ $out == "$want" ]] || fail "classify$sfx printed '$out', the CLI '$want'"
    out=$(cd / && env -u DIGITS_MODELS LD_LIBRARY_PATH=$P/lib "$TMP/classify-cpp$sfx" "${imgs[@]}") \
        || fail "classify-cpp$sfx: $out"
    [[ $(sed 's/ (p=.*//' <<< "$out") == "$(sed 's/ (p=.*//' <<< "$want")" ]] \
        || fail "classify-cpp$sfx printed '$out', the CLI '$want'"
    echo "classify$sfx and classify-cpp$sfx: the CLI's answers"
    rc=0
    (cd / && LD_LIBRARY_PATH=$P/lib "$TMP/classify$sfx" /nonexistent.png) 2> "$TMP/err" || rc=$?
    [[ $rc -eq 1 ]] && grep -q "classify: /nonexistent.png: cannot open" "$TMP/err" \
        || fail "classify$sfx of a missing file: exit $rc, $(cat "$TMP/err")"
done
# train: lenet5, one epoch on 2000 images, saved and evaluated (quick)
out=$(DIGITS_EXAMPLE_LIMIT=2000 LD_LIBRARY_PATH=$P/lib "$TMP/train" "$DATA" "$TMP/lenet5.safetensors") \
    || fail "examples/train: $out"
echo "$out"
acc=$(sed -n 's/^test accuracy \([0-9.]*\) on 2000 images$/\1/p' <<< "$out")
[[ -n $acc ]] && awk -v a="$acc" 'BEGIN { exit !(a > 0.3) }' || fail "examples/train: accuracy '$acc'"
grep -q "^epoch 1/1: train loss" <<< "$out" || fail "examples/train: no progress line"
"$P/bin/digits" info "$TMP/lenet5.safetensors" | output_has "^model     lenet5 (cnn)" || fail "the trained file"
out=$(DIGITS_EXAMPLE_LIMIT=300 "$TMP/train-static" "$DATA" "$TMP/lenet5-static.safetensors") \
    || fail "examples/train (static): $out"
echo "train-static: $(tail -1 <<< "$out")"

# DESTDIR prefixes every path (dry run: a real one would rebuild model.o)
make -n "${mode[@]}" BUILD="$B" PREFIX=/usr/local DESTDIR="$TMP/root" install > "$TMP/dry.log" \
    || fail "make -n install DESTDIR=..."
grep -q "install -m 755 $B/digits $TMP/root/usr/local/bin/digits" "$TMP/dry.log" || fail "DESTDIR is not honoured"
grep -q "DG_DATADIR='\"/usr/local/share/digits\"'" "$TMP/dry.log" || fail "DESTDIR went into DATADIR"

# uninstall removes every file it installed
make -s "${mode[@]}" BUILD="$B" PREFIX="$P" uninstall > "$TMP/make.log" 2>&1 || fail "make uninstall"
left=$(find "$P" ! -type d)
[[ -z $left ]] || fail "make uninstall left: $left"
echo "install, predict from /, the header, symbols, pkg-config, the examples and uninstall: ok"
