#!/usr/bin/env bash
# completion.sh — tools/digits.bash-completion, sourced into this shell and
# driven as bash drives it (COMP_WORDS, COMP_CWORD, then _digits; the
# answers in COMPREPLY): the commands, each command's flags as its --help
# lists them, a flag's values (fp32|bf16, train's "one of" lists, the zoo for
# `train --model`, default|best), train --model svm's own flags, files where
# a path goes, folders where only a folder does; and `digits help --complete`
# itself (every command, usage errors).
# Not checked here: interactive readline behaviour (compopt's trailing '/').
source "$(dirname "$0")/lib.bash"
source tools/digits.bash-completion
set +u # bash's own completion machinery does not run under -u either
complete -p digits | output_has -- '-F _digits' || fail "no completion registered for digits"

# complete WORD... — COMPREPLY for the command line "digits WORD...", the
# last word being completed (give "" to complete an empty word)
complete_line() {
    COMP_WORDS=("$DIGITS" "$@")
    COMP_CWORD=$#
    COMPREPLY=()
    _digits
    printf '%s\n' "${COMPREPLY[@]}" | sort
}
# complete_words "WORDS..." — complete_line on the words of a string; a
# trailing space stands for an empty last word ("eval --precision ")
complete_words() {
    local w
    read -ra w <<<"$1"
    [[ $1 == *" " ]] && w+=("")
    complete_line "${w[@]}"
}
# expect "WORDS..." -- expected replies (exactly these, any order)
expect() {
    local words=$1; shift 2
    local got want
    got=$(complete_words "$words" | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [[ $got == "$want" ]] || fail "digits $words<TAB>: got '$got', expected '$want'"
    echo "ok: digits $words<TAB> -> $got"
}
# has "WORDS..." REPLY... — the replies include these
has() {
    local words=$1; shift
    local got
    got=$(complete_words "$words")
    for w in "$@"; do
        grep -qxF -- "$w" <<<"$got" || fail "digits $words<TAB>: '$w' missing from: $(tr '\n' ' ' <<<"$got")"
    done
    echo "ok: digits $words<TAB> has $*"
}

# the commands: exactly the table's (help --complete), and a prefix
mapfile -t cmds < <("$DIGITS" help --complete)
((${#cmds[@]} >= 12)) || fail "help --complete lists ${#cmds[@]} commands"
for c in "${cmds[@]}"; do
    "$DIGITS" --help | output_has -E "^  $c " || [[ $c == help ]] || fail "'$c' not in digits --help"
done
expect "tr" -- train
expect "e" -- eval ensemble export
COMP_WORDS=("$DIGITS" ""); COMP_CWORD=1; _digits
((${#COMPREPLY[@]} == ${#cmds[@]} + 2)) || fail "digits <TAB>: ${COMPREPLY[*]}"

# every flag each command's --help lists is offered after "--"
for c in "${cmds[@]}"; do
    [[ $c == help ]] && continue
    mapfile -t flags < <("$DIGITS" "$c" --help | grep -oE '^  --[a-z0-9-]+' | sed 's/^ *//')
    ((${#flags[@]} > 0)) || fail "$c --help lists no flags"
    has "$c --" "${flags[@]}" --help > /dev/null
done
expect "eval --th" -- --threads
expect "describe --sp" -- --split
expect "augment --pre" -- --preview
expect "help --m" -- --man

# values of a flag
expect "eval --precision " -- fp32 bf16
expect "train --optimizer ada" -- adam adamw
expect "describe --split t" -- train test
has "train --model " lenet5 cnn-bn kaggle-deep svm
expect "train --model len" -- lenet5
expect "train --model svm --comp" -- --components
has "predict --model " default best
[[ -z $(complete_words "eval --top-k ") ]] || fail "eval --top-k <TAB> offers values"

# paths: files where a file goes, folders where only a folder does
mkdir -p "$TMP/dir.d"
touch "$TMP/one.csv" "$TMP/img.png"
expect "convert --in $TMP/o" -- "$TMP/one.csv"
expect "predict $TMP/i" -- "$TMP/img.png"
has "report --out $TMP/" "$TMP/dir.d"
complete_line report --out "$TMP/" | output_has one.csv && fail "report --out (a DIR) offers files"
has "train --test " none
has "train --test $TMP/" "$TMP/one.csv" "$TMP/dir.d"

# help --complete's usage errors
expect_error 2 "did you mean 'train'" -- "$DIGITS" help --complete trian
expect_error 2 "unknown flag '--bogus'" -- "$DIGITS" help --bogus
echo "completion: ok"
