#!/usr/bin/env bash
# install.sh — `make install` into a temporary PREFIX and what a user of the
# installed tree gets: the CLI finds its pretrained models under DATADIR
# (PREFIX/share/digits, compiled in) when run from / with no DIGITS_MODELS;
# the man page renders and the bash completion completes with that digits;
# pkg-config describes the library; a small C program built with
# `cc $(pkg-config --cflags digits) prog.c $(pkg-config --libs digits)` links
# libdigits.so.0 and classifies an MNIST 7 (and so does it linked with
# libdigits.a and the .pc's private libraries); `make uninstall` leaves no file.
# The install is built in a copy of $BUILD (objects with their timestamps), so
# only model.o, which holds DATADIR, is rebuilt for the temporary prefix and
# the developer's $BUILD keeps the default DATADIR.
# Not checked here: DESTDIR installs beyond the paths `make -n` prints.
source "$(dirname "$0")/lib.bash"
require_data
P=$TMP/prefix
B=$TMP/build
# the same build mode as $BUILD (sanitized objects need sanitized links)
mode=() ccflags=()
case $BUILD in
    build-san) mode=(SANITIZE=1); ccflags=("-fsanitize=address,undefined") ;;
    build-portable) mode=(PORTABLE=1) ;;
esac
# a make of its own (run by `make test`, the outer make's flags and jobserver do not apply)
unset MAKEFLAGS MFLAGS MAKELEVEL
mkdir -p "$B"
for f in src pic apps gen digits libdigits.a libdigits.so libdigits.so.0 libdigits.so.0.*; do
    [[ -e $BUILD/$f ]] && cp -a "$BUILD/$f" "$B/"
done
make -s -j2 "${mode[@]}" BUILD="$B" PREFIX="$P" install > "$TMP/make.log" 2>&1 \
    || { tail -20 "$TMP/make.log"; fail "make install PREFIX=$P"; }

# the installed files
for f in bin/digits lib/libdigits.so.0.10.0 lib/libdigits.so.0 lib/libdigits.so lib/libdigits.a \
         include/digits.h include/digits/core/util.h include/digits/eval/classifier.h \
         lib/pkgconfig/digits.pc share/man/man1/digits.1 share/digits/models/cnn-bn.spec \
         share/digits/models/pretrained/default.safetensors share/digits/models/pretrained/best.safetensors \
         share/digits/models/pretrained/manifest.tsv share/bash-completion/completions/digits; do
    [[ -e $P/$f ]] || fail "make install did not install $f"
done
[[ -L $P/lib/libdigits.so.0 && -L $P/lib/libdigits.so ]] || fail "libdigits.so{,.0} are not symlinks"
readelf -d "$P/lib/libdigits.so.0.10.0" | grep 'SONAME.*\[libdigits\.so\.0\]' >/dev/null || fail "soname is not libdigits.so.0"
[[ ! -e $P/include/digits/apps ]] || fail "CLI headers installed"

# the installed CLI, run from / with no model folder near it: DATADIR
out=$("$P/bin/digits" --version)
[[ $out == "digits 0.10.0"* ]] || fail "installed digits --version: $out"
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
[[ $flags == *"-I$P/include"* && $flags == *"-I$P/include/digits"* && $flags == *"-L$P/lib"*"-ldigits"* ]] \
    || fail "pkg-config flags: $flags"
pkg-config --static --libs digits > /dev/null || fail "pkg-config --static --libs digits"
cat > "$TMP/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "digits_internal.h"
int main(int argc, char **argv) { /* prog MODEL IMAGE: prints the digit */
    Classifier c; uint8_t *gray, x[28 * 28]; int w, h; float p[10];
    if (argc < 3 || classifier_load(&c, argv[1], 1, 1) < 0) return fprintf(stderr, "%s\n", dg_errmsg()), 1;
    if (image_read_gray(argv[2], &gray, &w, &h) < 0 || preprocess_digit(x, gray, w, h, NULL) < 0)
        return fprintf(stderr, "%s\n", dg_errmsg()), classifier_free(&c), 1;
    classifier_predict(&c, x, 1, p, NULL);
    int d = 0;
    for (int k = 1; k < 10; k++) if (p[k] > p[d]) d = k;
    printf("%d\n", d);
    free(gray); classifier_free(&c); return 0;
}
C
# shellcheck disable=SC2046
cc "${ccflags[@]}" -Wall -Wextra -Werror $(pkg-config --cflags digits) -o "$TMP/prog" "$TMP/prog.c" \
    $(pkg-config --libs digits) || fail "cc prog.c against the installed library"
LD_LIBRARY_PATH=$P/lib ldd "$TMP/prog" > "$TMP/ldd.txt"
grep -F "libdigits.so.0 => $P/lib/libdigits.so.0" "$TMP/ldd.txt" > /dev/null \
    || fail "prog does not link $P/lib/libdigits.so.0: $(cat "$TMP/ldd.txt")"
out=$(cd / && LD_LIBRARY_PATH=$P/lib "$TMP/prog" "$P/share/digits/models/pretrained/default.safetensors" "$TMP/seven.pgm") \
    || fail "prog: $out"
[[ $out == 7 ]] || fail "prog printed '$out', expected 7"
echo "prog (shared libdigits): $out"
# the same program against libdigits.a: Libs.private + Requires.private are complete
pc=$P/lib/pkgconfig/digits.pc
# shellcheck disable=SC2046
cc "${ccflags[@]}" $(pkg-config --cflags digits) -o "$TMP/prog-static" "$TMP/prog.c" -L"$P/lib" \
    -Wl,-Bstatic -ldigits -Wl,-Bdynamic $(sed -n 's/^Libs.private: //p' "$pc") \
    $(pkg-config --libs $(sed -n 's/^Requires.private: //p' "$pc")) || fail "cc prog.c against libdigits.a"
ldd "$TMP/prog-static" > "$TMP/ldd.txt"
! grep -F libdigits "$TMP/ldd.txt" > /dev/null || fail "prog-static links libdigits dynamically"
out=$(cd / && "$TMP/prog-static" "$P/share/digits/models/pretrained/default.safetensors" "$TMP/seven.pgm") \
    || fail "prog-static: $out"
[[ $out == 7 ]] || fail "prog-static printed '$out', expected 7"
echo "prog (static libdigits.a): $out"

# DESTDIR prefixes every path (dry run: a real one would rebuild model.o)
make -n "${mode[@]}" BUILD="$B" PREFIX=/usr/local DESTDIR="$TMP/root" install > "$TMP/dry.log" \
    || fail "make -n install DESTDIR=..."
grep -q "install -m 755 $B/digits $TMP/root/usr/local/bin/digits" "$TMP/dry.log" || fail "DESTDIR is not honoured"
grep -q "DG_DATADIR='\"/usr/local/share/digits\"'" "$TMP/dry.log" || fail "DESTDIR went into DATADIR"

# uninstall removes every file it installed
make -s "${mode[@]}" BUILD="$B" PREFIX="$P" uninstall > "$TMP/make.log" 2>&1 || fail "make uninstall"
left=$(find "$P" ! -type d)
[[ -z $left ]] || fail "make uninstall left: $left"
echo "install, predict from /, pkg-config, prog and uninstall: ok"
