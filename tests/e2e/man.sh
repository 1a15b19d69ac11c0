#!/usr/bin/env bash
# man.sh — docs/digits.1 is what `digits help --man` makes now (so the
# committed page, which `make install` installs, has not drifted from the
# --help texts: regenerate it with
#     build/digits help --man > docs/digits.1
# after changing a flag or a subcommand); it renders with groff -man -Tutf8
# -ww without a warning; it has the sections a man page needs, one section
# per command of the table (digits help --complete) and every flag each
# command's --help lists; `digits help CMD` is `digits CMD --help`.
source "$(dirname "$0")/lib.bash"
PAGE=docs/digits.1

LC_ALL=C "$DIGITS" help --man > "$TMP/digits.1" || fail "digits help --man"
if ! diff -u "$PAGE" "$TMP/digits.1" > "$TMP/diff"; then
    head -40 "$TMP/diff"
    fail "$PAGE differs from 'digits help --man': regenerate it ($BUILD/digits help --man > $PAGE)"
fi

groff -man -Tutf8 -ww "$PAGE" > "$TMP/page.txt" 2> "$TMP/warn" || fail "groff -man failed: $(cat "$TMP/warn")"
[[ ! -s $TMP/warn ]] || fail "groff -man -Tutf8 -ww warns: $(head -5 "$TMP/warn")"
# narrow and wide terminals too (other line lengths, other breaks)
for ll in 50n 120n; do
    groff -man -Tutf8 -ww -rLL=$ll "$PAGE" > /dev/null 2> "$TMP/warn"
    [[ ! -s $TMP/warn ]] || fail "groff -rLL=$ll warns: $(head -5 "$TMP/warn")"
done
page=$(sed 's/.\x08//g' "$TMP/page.txt") # no overstriking

for sec in NAME SYNOPSIS DESCRIPTION COMMANDS MODELS FILES ENVIRONMENT "EXIT STATUS" EXAMPLES; do
    grep -qx "$sec" <<<"$page" || fail "the page has no $sec section"
done
for word in DIGITS_MODELS share/digits models/pretrained; do
    grep -qF "$word" <<<"$page" || fail "the page does not mention $word"
done
mapfile -t cmds < <("$DIGITS" help --complete | grep -vx help)
for c in "${cmds[@]}"; do
    grep -qE "^ {3}digits $c\$" <<<"$page" || fail "the page has no section 'digits $c'"
    mapfile -t flags < <("$DIGITS" "$c" --help | grep -oE '^  --[a-z0-9-]+' | sed 's/^  //')
    for f in "${flags[@]}"; do
        grep -qE -- "^ {7}$f( |\$)" <<<"$page" || fail "the page lacks $c's flag $f"
    done
done
echo "${#cmds[@]} commands, each with its flags"
# train --model svm, referred to by train --help, has a section of its own
grep -qE '^ {3}digits train --model svm$' <<<"$page" || fail "no section for train --model svm"
grep -qE '^ {7}--components' <<<"$page" || fail "train --model svm's --components missing"

cmp -s <("$DIGITS" help eval) <("$DIGITS" eval --help) || fail "'digits help eval' is not 'digits eval --help'"
expect_error 2 "unknown command 'evl' (did you mean 'eval'?)" -- "$DIGITS" help evl
echo "man page: ok"
