/* isa.h — which kernel level runs: the portable build's run-time choice
 * (see isa.c). */
#ifndef DG_OPS_ISA_H
#define DG_OPS_ISA_H

/* The kernels in use: "avx512", "avx2" or "generic" in a portable build
 * (make PORTABLE=1: chosen once from cpuid and $DIGITS_ISA), "native" in
 * the default build (compiled for the build machine, -march=native). A
 * static string. */
const char *ops_isa_name(void);

/* One line for `digits info`: the level and how it was chosen, e.g.
 * "avx512 (chosen at run time from avx512 avx2 generic)". Static storage. */
const char *ops_isa_describe(void);

#endif
