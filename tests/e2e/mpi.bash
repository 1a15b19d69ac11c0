# mpi.bash — helpers for the MPI end-to-end scripts (sourced after lib.bash):
# builds the MPI binary beside $BUILD (build -> build-mpi, build-san ->
# build-san-mpi, with the same sanitizer setting), and mpirun as the
# tests run it: as root (Open MPI's two variables; tests only), more ranks
# than cores allowed, OpenMP threads left unbound, and a timeout so that a
# hung job fails the test instead of the suite.
# Skips the calling script (exit 0 with a SKIP line) only when Open MPI
# is not installed (tools/install_deps.sh installs it).
if ! command -v mpirun >/dev/null 2>&1 || ! pkg-config --exists ompi-c 2>/dev/null; then
    echo "SKIP: Open MPI is not installed (tools/install_deps.sh installs libopenmpi-dev openmpi-bin)"
    exit 0
fi
MPI_BUILD="${BUILD}-mpi"
san=0
[[ "$BUILD" == *san* ]] && san=1
make -s -j2 MPI=1 SANITIZE=$san BUILD="$MPI_BUILD" "$MPI_BUILD/digits" "$MPI_BUILD/tests/test_dist" >/dev/null ||
    fail "make MPI=1 failed"
DIGITS_MPI="$PWD/$MPI_BUILD/digits"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive
# Sanitized ranks: Open MPI, hwloc and PMIx keep allocations until exit by
# design; with its plugins kept loaded (no dlclose) and full stack unwinding
# on malloc, LeakSanitizer can name their libraries, which are suppressed:
# leaks of digits itself still fail the test.
mpi_env=()
if (( san )); then
    cat "$PWD/tests/lsan.supp" > "$TMP/lsan.supp"
    printf 'leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libpmix.so\nleak:libhwloc.so\nleak:libevent\nleak:mca_\n' \
        >> "$TMP/lsan.supp"
    mpi_env=(env OMPI_MCA_mca_base_component_disable_dlclose=1
             "ASAN_OPTIONS=fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
             "LSAN_OPTIONS=suppressions=$TMP/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0")
fi
MPIRUN=("${mpi_env[@]}" timeout -k 5 120 mpirun --bind-to none)

# same_weights A B — the two model files hold bit-identical tensors
same_weights() {
    cmp -s <(tensor_data "$1") <(tensor_data "$2")
}

# weights_diff A B — "MAXABS RELL2" over every tensor of two model files
# with the same layout: the largest |a - b| and ||a - b|| / ||a||
weights_diff() {
    paste -d' ' <(tensor_data "$1" | od -An -v -w4 -tf4) <(tensor_data "$2" | od -An -v -w4 -tf4) |
        awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; s += d * d; n += $1 * $1 }
             END { printf "%.3g %.3g\n", m, (n > 0 ? sqrt(s / n) : 0) }'
}
