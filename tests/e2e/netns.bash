# netns.bash — two "hosts" on one machine for Open MPI: two network
# namespaces joined by a veth pair, and an rsh agent that runs a command in
# the namespace a host address names (each with its own hostname, unshare
# --uts). Sourced by tests/e2e/mpi_netns.sh and bench/scaling.sh.
#
#   netns_names PREFIX OCTET   sets nsa, nsb, veth_a, veth_b (PREFIX + a/b +
#                              this shell's pid) and net (10.OCTET.X, X from the pid)
#   netns_up                   creates them; 1 (nothing created) without root,
#                              ip netns or unshare
#   netns_agent DIR            writes DIR/agent (for --mca plm_rsh_agent) and
#                              DIR/hosts (one slot on each of $net.1 and $net.2)
#   netns_down                 kills what runs in them and removes them
#   netns_run NS CMD...        CMD in namespace NS with hostname NS

netns_names() {
    local id=$$
    nsa="${1}a$id" nsb="${1}b$id" veth_a="${1}va$id" veth_b="${1}vb$id"
    net="10.$2.$((id % 200 + 20))"
}

netns_down() {
    local ns p
    for ns in "$nsa" "$nsb"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$veth_a" 2>/dev/null || true
}

netns_up() {
    [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null && command -v unshare >/dev/null &&
        ip netns add "$nsa" 2>/dev/null || return 1
    ip netns add "$nsb"
    ip link add "$veth_a" type veth peer name "$veth_b"
    ip link set "$veth_a" netns "$nsa"
    ip link set "$veth_b" netns "$nsb"
    ip -n "$nsa" addr add "$net.1/24" dev "$veth_a"
    ip -n "$nsb" addr add "$net.2/24" dev "$veth_b"
    local pair ns dev
    for pair in "$nsa $veth_a" "$nsb $veth_b"; do
        read -r ns dev <<< "$pair"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" up
    done
}

# the launcher's agent: [options] HOST COMMAND... -> COMMAND in HOST's namespace
netns_agent() {
    cat > "$1/agent" <<AGENT
#!/bin/sh
while [ \$# -gt 0 ]; do case "\$1" in -*) shift;; *) break;; esac; done
host=\$1; shift
case "\$host" in
    $net.1) ns=$nsa;;
    $net.2) ns=$nsb;;
    *) echo "agent: unknown host \$host" >&2; exit 1;;
esac
exec ip netns exec "\$ns" unshare --uts /bin/sh -c "hostname \$ns; \$*"
AGENT
    chmod +x "$1/agent"
    printf '%s slots=1\n%s slots=1\n' "$net.1" "$net.2" > "$1/hosts"
}

netns_run() {
    local ns=$1
    shift
    ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns; exec \"\$@\"" sh "$@"
}
