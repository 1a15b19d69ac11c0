#!/usr/bin/env bash
# docker_deps.sh — the Dockerfile's runtime stage installs every Debian
# package build/digits needs to start: the packages owning the libraries it
# links (readelf NEEDED, resolved by ldd, owner by dpkg -S) and the ones it
# loads at run time (absolute .so paths inside the binary: OpenBLAS). A
# package the base image already has is not required: the Essential
# packages, apt, and everything they depend on (libc6, libgcc-s1, zlib1g...),
# computed from this machine's dpkg database (the same Debian release as the
# Dockerfile's FROM). Also: the runtime stage copies the default model and
# keeps a non-root user. (tools/check_docker_runtime.sh starts the binary in
# a debootstrapped copy of that stage, by hand.)
source "$(dirname "$0")/lib.bash"
BIN=$BUILD/digits
DOCKERFILE=${DOCKERFILE:-Dockerfile}
[[ -x "$BIN" ]] || fail "$BIN not built"
command -v dpkg >/dev/null || fail "no dpkg: this check needs the Debian the image is built from"

# ---- the packages the binary needs ------------------------------------------------------------

# owner PATH — the package that installed a file (tries the path as given,
# then with and without /usr: merged-/usr systems record either)
owner() {
    local p=$1 cand
    for cand in "$p" "/usr$p" "${p#/usr}" "$(readlink -f "$p")"; do
        dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1 && return 0
    done
    return 1
}
declare -A need=()
ldd "$BIN" > "$TMP/ldd"
while read -r soname; do
    # a sanitized build (build-san/, make SANITIZE=1) links the sanitizer
    # runtimes; the image builds without them
    [[ $soname =~ ^lib(a|ub|l|t)san\.so ]] && { echo "(skipped: $soname, sanitizer runtime)"; continue; }
    path=$(awk -v s="$soname" '$1 == s && $2 == "=>" { print $3 }' "$TMP/ldd")
    [[ -n "$path" && -e "$path" ]] || fail "$BIN needs $soname, which ldd does not resolve"
    pkg=$(owner "$path") || fail "no package owns $path ($soname)"
    need[$pkg]="$soname"
done < <(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
while read -r path; do  # dlopen()ed by absolute path
    pkg=$(owner "$path") || fail "no package owns $path (named in $BIN)"
    need[$pkg]="$path (dlopen)"
done < <(grep -ao '/usr/lib/[[:alnum:]_/.+-]*\.so[.0-9]*' "$BIN" | sort -u)
(( ${#need[@]} >= 5 )) || fail "only ${#need[@]} packages found: $(echo "${!need[@]}")"

# ---- what the base image already has -----------------------------------------------------------

declare -A deps=() base=()
queue=(apt)
while IFS='|' read -r pkg essential depends; do
    deps[$pkg]=$depends
    [[ $essential == yes ]] && queue+=("$pkg")
done < <(dpkg-query -W -f '${Package}|${Essential}|${Pre-Depends}, ${Depends}\n')
while (( ${#queue[@]} )); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [[ -n "${base[$p]:-}" ]] && continue
    base[$p]=1
    # "a (>= 1), b | c, d:any" -> a b c d (every alternative: one of them is there)
    for d in $(tr ',|' '\n\n' <<<"${deps[$p]:-}" | sed 's/(.*//; s/:any//; s/[[:space:]]//g'); do
        [[ -n "$d" && -n "${deps[$d]+x}" && -z "${base[$d]:-}" ]] && queue+=("$d")
    done
done
(( ${#base[@]} > 10 )) && [[ -n "${base[libc6]:-}" ]] || fail "the base set looks wrong: ${!base[*]}"

# ---- what the Dockerfile's runtime stage installs ---------------------------------------------------

# the text after the last FROM, continuation lines joined; the words after
# "apt-get install" up to the next && or ;
stage=$(awk '/^FROM /{ s = "" } { s = s $0 "\n" } END { printf "%s", s }' "$DOCKERFILE" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
installed=$(grep -o 'apt-get install[^&;]*' <<<"$stage" | tr ' ' '\n' | grep -v '^-\|^$\|^apt-get$\|^install$' | sort -u)
[[ -n "$installed" ]] || fail "no apt-get install in the runtime stage of $DOCKERFILE"

missing=()
for pkg in $(printf '%s\n' "${!need[@]}" | sort); do
    if grep -qx "$pkg" <<<"$installed"; then
        echo "ok: $pkg (${need[$pkg]}): installed"
    elif [[ -n "${base[$pkg]:-}" ]]; then
        echo "ok: $pkg (${need[$pkg]}): in the base image"
    else
        missing+=("$pkg (${need[$pkg]})")
    fi
done
(( ${#missing[@]} == 0 )) || fail "the runtime stage of $DOCKERFILE does not install: ${missing[*]}"

# ---- the rest of a working runtime stage ------------------------------------------------------------------

grep -Eq "^COPY --from=build .*/digits /usr/local/bin/digits$" <<<"$stage" || fail "the runtime stage does not copy build/digits"
grep -Eq "^COPY (--from=build )?(/src/)?models/? " <<<"$stage" || fail "the runtime stage does not copy models/ (the zoo and models/pretrained: --model default)"
grep -q '^USER [a-z]' <<<"$stage" && ! grep -q '^USER root' <<<"$stage" || fail "the runtime stage runs as root"
echo "docker_deps: $DOCKERFILE installs all ${#need[@]} packages $BIN needs"
