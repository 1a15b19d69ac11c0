#!/usr/bin/env bash
# mpi_netns.sh — `mpirun -np 2 digits train` across two hosts: two network
# namespaces (each with its own hostname, unshare --uts) joined by a veth
# pair, 10.77.X.1 and 10.77.X.2. mpirun runs in the first; Open MPI's rsh
# launcher starts the second host's daemon through a wrapper
# (plm_rsh_agent) that runs it with `ip netns exec`; the ranks talk over
# TCP on the veth only (btl tcp,self; btl/oob_tcp_if_include the /24).
# The model equals the one-process run's, byte for byte, and the veth
# carried the exchange (its byte counter). The namespaces and the pair are
# removed on exit, whatever the outcome. Needs root and `ip netns`
# (CAP_SYS_ADMIN + CAP_NET_ADMIN): skipped with a message otherwise.
source "$(dirname "$0")/lib.bash"
require_data
source "$(dirname "$0")/mpi.bash"

source "$(dirname "$0")/netns.bash"
netns_names dg 77
trap 'netns_down; cleanup' EXIT
if ! netns_up; then
    echo "SKIP: needs root with network namespaces (ip netns add) and unshare"
    exit 0
fi
netns_agent "$TMP"

common=(--model lenet5 --data "$(cd "$DATA" && pwd)" --limit 600 --epochs 2 --batch-size 64 --lr 0.01 --test none --quiet)
"$DIGITS" train "${common[@]}" --threads 2 --out "$TMP/ref.safetensors" >/dev/null
rx0=$(ip -n "$nsb" -s -j link show "$veth_b" | sed -n 's/.*"rx":{"bytes":\([0-9]*\).*/\1/p')
mpi=(mpirun --bind-to none --hostfile "$TMP/hosts" -np 2 --mca plm_rsh_agent "$TMP/agent"
     --mca btl tcp,self --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24"
     "$DIGITS_MPI" train "${common[@]}" --threads 1 --out "$TMP/ns.safetensors")
"${mpi_env[@]}" timeout -k 5 120 ip netns exec "$nsa" unshare --uts /bin/sh -c "hostname $nsa; exec \"\$@\"" sh "${mpi[@]}" \
    > "$TMP/ns.out" 2> "$TMP/ns.err" || { cat "$TMP/ns.err"; fail "mpirun across the two namespaces failed"; }
rx1=$(ip -n "$nsb" -s -j link show "$veth_b" | sed -n 's/.*"rx":{"bytes":\([0-9]*\).*/\1/p')
same_weights "$TMP/ref.safetensors" "$TMP/ns.safetensors" || fail "two hosts: weights differ from the one-process run"
(( rx1 - rx0 > 1000000 )) || fail "the veth carried only $((rx1 - rx0)) bytes: the ranks did not talk over it"
echo "ok: 2 ranks on 2 namespaces over a veth ($(( (rx1 - rx0) / 1024 )) KiB received by the second) = 1 process, byte for byte"
