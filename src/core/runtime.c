/* runtime.c — see runtime.h. */
#include "core/runtime.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

static int set_default(const char *name, const char *value) {
    if (getenv(name)) return 0;
    setenv(name, value, 0);
    return 1;
}

/* FTZ (results that would be subnormal become 0) and DAZ (subnormal inputs
 * read as 0) in MXCSR, for this thread and every thread it creates later:
 * Linux copies the creator's MXCSR into a new thread, so the OpenMP pool,
 * OpenBLAS's threads and digits' helpers all get it. */
static void flush_denormals(void) {
    const char *keep = getenv("DIGITS_DENORMALS");
    if (keep && strcmp(keep, "keep") == 0) return;
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ bit 15, DAZ bit 6 */
#endif
}

void dg_runtime_init(char **argv) {
    flush_denormals();
    if (getenv("DIGITS_NO_REEXEC") || getenv("DIGITS_REEXECED")) return;
    __builtin_cpu_init();
    int changed = 0;
    /* OPENBLAS_CORETYPE is digits' choice even when the environment already
     * names one (machines here export OPENBLAS_CORETYPE=Haswell): pick
     * another with DIGITS_BLAS_CORETYPE. */
    const char *core = getenv("DIGITS_BLAS_CORETYPE");
#ifdef DG_ISA_DISPATCH
    /* the portable build with its kernels forced to a lower level
     * (src/ops/isa.c): OpenBLAS's kernels of that level too, as on such a CPU */
    const char *isa = getenv("DIGITS_ISA");
    if (!core && isa && strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("x86-64-v3")) core = "Haswell";
    if (!core && isa && strcmp(isa, "generic") == 0) core = "Nehalem";
#endif
    if (!core && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        core = __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
    const char *have = getenv("OPENBLAS_CORETYPE");
    if (core && (!have || strcmp(have, core) != 0)) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        changed = 1;
    }
    changed |= set_default("GOMP_SPINCOUNT", "10000");
    if (!changed) return;
    setenv("DIGITS_REEXECED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): carry on with the defaults as they are */
}
