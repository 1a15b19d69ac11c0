#!/usr/bin/env bash
# check_docker_runtime.sh — the Dockerfile's runtime stage for real, without
# a Docker engine: debootstrap a minimal Debian 12 (what debian:12-slim is)
# into a folder, run the stage's apt-get install and useradd in a chroot,
# copy what its COPY lines copy (build-portable/digits, models/), then start
# its ENTRYPOINT + CMD as the stage's USER and ask the server for /healthz
# and a prediction with curl. Run by hand, not in CI (root, a Debian mirror,
# a few minutes and ~250 MB the first time; the folder is reused after).
#
#   sudo tools/check_docker_runtime.sh [FOLDER]     (default /tmp/digits-runtime)
#
# Without models/pretrained/default.safetensors in the checkout (no
# pretrained model yet) the server runs on tests/fixtures/lenet5-small
# instead of the Dockerfile's CMD, and says so. Left out on purpose: the
# build stage (this machine's build-portable/digits is used), EXPOSE and
# port publishing (the chroot shares the host's network; the server listens
# on 127.0.0.1 and a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/tmp/digits-runtime}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[[ $(id -u) -eq 0 ]] || { echo "check_docker_runtime: run as root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap

# ---- the Dockerfile's runtime stage, read ------------------------------------------------------
stage=$(awk '/^FROM /{ s = "" } { s = s $0 "\n" } END { printf "%s", s }' Dockerfile | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
pkgs=$(grep -o 'apt-get install[^&;]*' <<<"$stage" | tr ' ' '\n' | grep -v '^-\|^$\|^apt-get$\|^install$' | sort -u | tr '\n' ' ')
user=$(sed -n 's/^USER \([a-z_][a-z0-9_-]*\)$/\1/p' <<<"$stage" | tail -1)
json_words() { sed -n "s/^$1 \[\(.*\)\]$/\1/p" <<<"$stage" | tr ',' '\n' | sed 's/^ *"//; s/" *$//'; }
mapfile -t entry < <(json_words ENTRYPOINT)
mapfile -t cmd < <(json_words CMD)
[[ -n "$pkgs" && -n "$user" && ${#entry[@]} -gt 0 ]] || { echo "check_docker_runtime: cannot read the runtime stage of Dockerfile" >&2; exit 1; }
echo "runtime stage: packages: $pkgs; user: $user; command: ${entry[*]} ${cmd[*]}"

# ---- base, packages, user, files --------------------------------------------------------------------
make -j2 PORTABLE=1 build-portable/digits >/dev/null
if [[ ! -x "$ROOT/usr/bin/apt-get" ]]; then
    echo "== debootstrap --variant=minbase bookworm $ROOT"
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >/dev/null
fi
mount -t proc proc "$ROOT/proc"
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; umount "$ROOT/proc" 2>/dev/null || true; }
trap cleanup EXIT
echo "== apt-get install $pkgs"
chroot "$ROOT" apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends $pkgs >"$ROOT/tmp/apt.log" 2>&1 ||
    { cat "$ROOT/tmp/apt.log" >&2; echo "check_docker_runtime: FAIL: apt-get install" >&2; exit 1; }
chroot "$ROOT" id "$user" >/dev/null 2>&1 || chroot "$ROOT" useradd --system --no-create-home "$user"
install -m 755 build-portable/digits "$ROOT/usr/local/bin/digits"
rm -rf "$ROOT/usr/local/share/digits/models"
mkdir -p "$ROOT/usr/local/share/digits"
cp -r models "$ROOT/usr/local/share/digits/models"

# ---- every library resolves ------------------------------------------------------------------------------
if chroot "$ROOT" ldd /usr/local/bin/digits | grep 'not found'; then
    echo "check_docker_runtime: FAIL: libraries missing in the runtime stage (above)" >&2
    exit 1
fi

# ---- the server starts as the stage's user and answers -----------------------------------------------------------
if [[ ! -f models/pretrained/default.safetensors ]]; then
    echo "(no models/pretrained/default.safetensors here: serving tests/fixtures/lenet5-small instead of '${cmd[*]}')"
    mkdir -p "$ROOT/models"
    cp tests/fixtures/lenet5-small.safetensors "$ROOT/models/"
    cmd=(--model /models/lenet5-small.safetensors)
fi
log="$ROOT/tmp/serve.err"
chroot --userspec="$user:$user" "$ROOT" /usr/local/bin/"${entry[@]}" "${cmd[@]}" --host 127.0.0.1 --port 0 \
    >/dev/null 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log")
[[ -n "$port" ]] || { echo "check_docker_runtime: FAIL: the server did not start: $(cat "$log")" >&2; exit 1; }
uid=$(chroot "$ROOT" id -u "$user")
running_as=$(ps -o uid= -p "$pid" | tr -d ' ')
echo "$(head -1 "$log") (as uid $running_as: $user)"
[[ $running_as == "$uid" && $uid != 0 ]] || { echo "check_docker_runtime: FAIL: runs as uid $running_as, not $user ($uid)" >&2; exit 1; }
health=$(curl -s --noproxy '*' --max-time 10 "http://127.0.0.1:$port/healthz")
echo "healthz: $health"
[[ $health == *'"status":"ok"'* ]] || { echo "check_docker_runtime: FAIL: /healthz" >&2; exit 1; }
# a vertical bar of ink as JSON pixels: any digit back is fine, the point is that the model runs
px=$(for ((i = 0; i < 784; i++)); do (( i % 28 >= 13 && i % 28 < 16 && i / 28 >= 5 && i / 28 < 23 )) && echo 255 || echo 0; done | paste -sd,)
answer=$(curl -s --noproxy '*' --max-time 10 -H 'Content-Type: application/json' -d "{\"pixels\":[$px]}" "http://127.0.0.1:$port/api/predict")
echo "predict: ${answer:0:60}..."
[[ $answer == '{"digit":'* ]] || { echo "check_docker_runtime: FAIL: /api/predict: $answer" >&2; exit 1; }
echo "check_docker_runtime: the runtime stage starts digits serve and predicts"
