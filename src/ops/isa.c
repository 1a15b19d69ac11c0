/* isa.c — the portable build's kernel dispatch (make PORTABLE=1).
 *
 * The kernels (the other .c files of src/ops) are compiled three times,
 * once per level, and the Makefile renames each copy's global symbols with
 * the level's suffix (conv2d_forward -> conv2d_forward_avx512, ..._avx2,
 * ..._generic; see "PORTABLE" there):
 *   avx512   -march=x86-64-v4 -mavx512bf16: AVX-512 F/BW/CD/DQ/VL, the
 *            intrinsics kernels; the bf16 ones only where cpuid also
 *            reports AVX512_BF16 (gemm_bf16_available());
 *   avx2     -march=x86-64-v3: AVX2 + FMA, the plain C kernels vectorised
 *            by the compiler;
 *   generic  -march=x86-64-v2: SSE4.2, what the rest of the program is
 *            compiled for.
 * This file, compiled for the baseline, defines the unsuffixed names of
 * ops.h and gemm_bf16.h (the kernels the rest of the program and the tests
 * call) as calls through one table of function pointers, chosen once, on
 * the first call: the best level cpuid allows (__builtin_cpu_supports), or
 * the one $DIGITS_ISA names (avx512, avx2, generic). A level the CPU lacks,
 * or an unknown name, prints one warning line on stderr and the best level
 * runs instead: a library does not exit, and the results stay correct.
 * Calls between kernels stay inside their level's copy.
 *
 * In the default build (-march=native, DG_ISA_DISPATCH undefined) the
 * kernels keep their plain names and only ops_isa_name()/ops_isa_describe()
 * are defined here.
 * Left out on purpose: per-kernel levels (one table for all of them) and
 * changing the level after the first call.
 */
#include "ops/isa.h"

#ifdef DG_ISA_DISPATCH
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/gemm_bf16.h"
#include "ops/ops.h"

/* ==== the kernels ==========================================================
 * One entry per function of ops.h and gemm_bf16.h: X_VOID(level, name,
 * (parameters), (arguments)) or X_RET(level, return type, name, ...). A
 * signature that drifts from the header's is a compile error below (the
 * wrappers redefine the header's functions); a function missing here is a
 * link error (its unsuffixed name is defined nowhere else). */
#define DG_OPS_KERNELS(X_VOID, X_RET, ISA_) \
    X_VOID(ISA_, conv2d_forward_ref, (float *y, const float *x, const float *w, const float *b, int N, int C, int H, int \
        W, int K, int R, int S, int stride, int pad), (y, x, w, b, N, C, H, W, K, R, S, stride, pad)) \
    X_VOID(ISA_, conv2d_backward_ref, (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, \
        int N, int C, int H, int W, int K, int R, int S, int stride, int pad), (dx, dw, db, dy, x, w, N, C, H, W, K, \
        R, S, stride, pad)) \
    X_RET(ISA_, size_t, conv2d_workspace_floats, (int C, int H, int W, int K, int R, int S, int stride, int pad), (C, H, \
        W, K, R, S, stride, pad)) \
    X_VOID(ISA_, conv2d_forward, (float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W, \
        int K, int R, int S, int stride, int pad, float *workspace, int nthreads), (y, x, w, b, N, C, H, W, K, R, S, \
        stride, pad, workspace, nthreads)) \
    X_VOID(ISA_, epilogue_apply, (float *y, int N, int K, int L, const float *bias, const Epilogue *ep), (y, N, K, L, \
        bias, ep)) \
    X_RET(ISA_, size_t, conv2d_pool_buf_floats, (int C, int H, int W, int K, int R, int S, int stride, int pad), (C, \
        H, W, K, R, S, stride, pad)) \
    X_VOID(ISA_, maxpool_planes, (float *y, const float *x, size_t ld, int K, int H, int W, int F, int T, int relu), \
        (y, x, ld, K, H, W, F, T, relu)) \
    X_VOID(ISA_, conv2d_forward_ep, (float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W, \
        int K, int R, int S, int stride, int pad, float *workspace, int nthreads, const Epilogue *ep), (y, x, w, b, N, \
        C, H, W, K, R, S, stride, pad, workspace, nthreads, ep)) \
    X_VOID(ISA_, conv2d_forward_packed, (float *y, const float *x, const float *w, const float *b, int N, int C, int H, \
        int W, int K, int R, int S, int stride, int pad, float *workspace, int nthreads, const Epilogue *ep, \
        Conv2dPacked *packed), (y, x, w, b, N, C, H, W, K, R, S, stride, pad, workspace, nthreads, ep, packed)) \
    X_VOID(ISA_, conv2d_backward, (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int \
        N, int C, int H, int W, int K, int R, int S, int stride, int pad, float *workspace, float *dw_partial, int \
        nthreads), (dx, dw, db, dy, x, w, N, C, H, W, K, R, S, stride, pad, workspace, dw_partial, nthreads)) \
    X_RET(ISA_, int, conv2d_set_bf16, (int on), (on)) \
    X_VOID(ISA_, linear_forward_ref, (float *y, const float *x, const float *w, const float *b, int N, int D, \
        int M), (y, x, w, b, N, D, M)) \
    X_VOID(ISA_, linear_backward_ref, (float *dx, float *dw, float *db, const float *dy, const float *x, \
        const float *w, int N, int D, int M), (dx, dw, db, dy, x, w, N, D, M)) \
    X_VOID(ISA_, linear_forward, (float *y, const float *x, const float *w, const float *b, int N, int D, int M), \
        (y, x, w, b, N, D, M)) \
    X_VOID(ISA_, linear_forward_ep, (float *y, const float *x, const float *w, const float *b, int N, int D, int M, \
        const Epilogue *ep, int nthreads, float *panels), (y, x, w, b, N, D, M, ep, nthreads, panels)) \
    X_RET(ISA_, size_t, linear_panels_floats, (int D, int M), (D, M)) \
    X_VOID(ISA_, linear_pack_panels, (float *panels, const float *w, int D, int M), (panels, w, D, M)) \
    X_VOID(ISA_, linear_backward, (float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, \
        int N, int D, int M), (dx, dw, db, dy, x, w, N, D, M)) \
    X_VOID(ISA_, maxpool_forward, (float *y, int32_t *argmax, const float *x, int N, int C, int H, int W, int F, \
        int T), (y, argmax, x, N, C, H, W, F, T)) \
    X_VOID(ISA_, maxpool_backward, (float *dx, const float *dy, const int32_t *argmax, int N, int C, int H, int W, \
        int F, int T), (dx, dy, argmax, N, C, H, W, F, T)) \
    X_VOID(ISA_, maxpool_forward_ref, (float *y, const float *x, int N, int C, int H, int W, int F, int T), (y, x, \
        N, C, H, W, F, T)) \
    X_VOID(ISA_, avgpool_forward, (float *y, const float *x, int N, int C, int H, int W, int F, int T), (y, x, N, C, \
        H, W, F, T)) \
    X_VOID(ISA_, avgpool_backward, (float *dx, const float *dy, int N, int C, int H, int W, int F, int T), (dx, dy, \
        N, C, H, W, F, T)) \
    X_VOID(ISA_, avgpool_forward_ref, (float *y, const float *x, int N, int C, int H, int W, int F, int T), (y, x, \
        N, C, H, W, F, T)) \
    X_VOID(ISA_, avgpool_backward_ref, (float *dx, const float *dy, int N, int C, int H, int W, int F, int T), (dx, \
        dy, N, C, H, W, F, T)) \
    X_VOID(ISA_, relu_forward, (float *y, const float *x, size_t n), (y, x, n)) \
    X_VOID(ISA_, relu_backward, (float *dx, const float *dy, const float *y, size_t n), (dx, dy, y, n)) \
    X_VOID(ISA_, tanh_forward, (float *y, const float *x, size_t n), (y, x, n)) \
    X_VOID(ISA_, tanh_forward_ref, (float *y, const float *x, size_t n), (y, x, n)) \
    X_VOID(ISA_, tanh_backward, (float *dx, const float *dy, const float *y, size_t n), (dx, dy, y, n)) \
    X_VOID(ISA_, batchnorm_forward_train, (float *y, float *save_mean, float *save_rstd, float *running_mean, \
        float *running_var, const float *x, const float *gamma, const float *beta, int N, int C, int L, float eps, \
        float momentum), (y, save_mean, save_rstd, running_mean, running_var, x, gamma, beta, N, C, L, eps, \
        momentum)) \
    X_VOID(ISA_, batchnorm_forward_eval, (float *y, const float *x, const float *gamma, const float *beta, \
        const float *running_mean, const float *running_var, int N, int C, int L, float eps), (y, x, gamma, beta, \
        running_mean, running_var, N, C, L, eps)) \
    X_VOID(ISA_, batchnorm_backward, (float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, \
        const float *gamma, const float *save_mean, const float *save_rstd, int N, int C, int L), (dx, dgamma, \
        dbeta, dy, x, gamma, save_mean, save_rstd, N, C, L)) \
    X_VOID(ISA_, batchnorm_fused_forward_train, (BnFusion f, float *y, float *save_mean, float *save_rstd, \
        float *running_mean, float *running_var, const float *x, const float *gamma, const float *beta, int N, \
        int C, int L, float eps, float momentum), (f, y, save_mean, save_rstd, running_mean, running_var, x, gamma, \
        beta, N, C, L, eps, momentum)) \
    X_VOID(ISA_, batchnorm_fused_backward, (BnFusion f, float *dx, float *dgamma, float *dbeta, const float *dy, \
        const float *x, const float *gamma, const float *beta, const float *save_mean, const float *save_rstd, \
        int N, int C, int L), (f, dx, dgamma, dbeta, dy, x, gamma, beta, save_mean, save_rstd, N, C, L)) \
    X_VOID(ISA_, dropout_forward, (float *y, float *mask, const float *x, const float *u, size_t n, float p), (y, \
        mask, x, u, n, p)) \
    X_VOID(ISA_, dropout2d_forward, (float *y, float *mask, const float *x, const float *u, int N, int C, int L, \
        float p), (y, mask, x, u, N, C, L, p)) \
    X_VOID(ISA_, dropout_backward, (float *dx, const float *dy, const float *mask, size_t n), (dx, dy, mask, n)) \
    X_VOID(ISA_, dropout2d_backward, (float *dx, const float *dy, const float *mask, int N, int C, int L), (dx, dy, \
        mask, N, C, L)) \
    X_RET(ISA_, float, softmax_xent_forward, (float *probs, const float *logits, const uint8_t *labels, int N, \
        int M), (probs, logits, labels, N, M)) \
    X_VOID(ISA_, softmax_xent_backward, (float *dlogits, const float *probs, const uint8_t *labels, int N, int M), \
        (dlogits, probs, labels, N, M)) \
    X_VOID(ISA_, softmax_forward, (float *probs, const float *logits, int N, int M), (probs, logits, N, M)) \
    X_RET(ISA_, double, label_smooth_loss_sum, (const float *logits, const uint8_t *labels, int N, int M, float eps), \
        (logits, labels, N, M, eps)) \
    X_VOID(ISA_, label_smooth_grad, (float *dlogits, const uint8_t *labels, int N, int M, int B, float eps), (dlogits, \
        labels, N, M, B, eps)) \
    X_VOID(ISA_, elu_forward, (float *y, const float *x, size_t n, float alpha), (y, x, n, alpha)) \
    X_VOID(ISA_, elu_backward, (float *dx, const float *dy, const float *y, size_t n, float alpha), (dx, dy, y, n, \
        alpha)) \
    X_VOID(ISA_, add_forward, (float *y, const float *const *xs, int n_in, int N, size_t L), (y, xs, n_in, N, L)) \
    X_VOID(ISA_, add_backward, (float *const *dxs, const float *dy, int n_in, int N, size_t L), (dxs, dy, n_in, N, \
        L)) \
    X_VOID(ISA_, concat_forward, (float *y, const float *const *xs, const int *C, int n_in, int N, int HW), (y, xs, \
        C, n_in, N, HW)) \
    X_VOID(ISA_, concat_backward, (float *const *dxs, const float *dy, const int *C, int n_in, int N, int HW), (dxs, \
        dy, C, n_in, N, HW)) \
    X_VOID(ISA_, global_avgpool_forward, (float *y, const float *x, int N, int C, int HW), (y, x, N, C, HW)) \
    X_VOID(ISA_, global_avgpool_backward, (float *dx, const float *dy, int N, int C, int HW), (dx, dy, N, C, HW)) \
    X_VOID(ISA_, affine_grid_forward, (float *grid, const float *theta, int N, int P, int Q, int align), (grid, theta, \
        N, P, Q, align)) \
    X_VOID(ISA_, affine_grid_backward, (float *dtheta, const float *dgrid, int N, int P, int Q, int align), (dtheta, \
        dgrid, N, P, Q, align)) \
    X_VOID(ISA_, grid_sample_forward, (float *y, const float *x, const float *grid, int N, int C, int H, int W, int P, int \
        Q, int align), (y, x, grid, N, C, H, W, P, Q, align)) \
    X_VOID(ISA_, grid_sample_backward, (float *dx, float *dgrid, const float *dy, const float *x, const float *grid, int \
        N, int C, int H, int W, int P, int Q, int align), (dx, dgrid, dy, x, grid, N, C, H, W, P, Q, align)) \
    X_RET(ISA_, int, gemm_bf16_available, (void), ()) \
    X_RET(ISA_, size_t, bf16_pair_words, (int k), (k)) \
    X_RET(ISA_, size_t, bf16_packed_b_words, (int K, int N), (K, N)) \
    X_RET(ISA_, float, bf16_round, (float f), (f)) \
    X_VOID(ISA_, bf16_convert_rows, (uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, int cols), \
        (dst, ldd, src, lds, rows, cols)) \
    X_VOID(ISA_, bf16_convert_transposed, (uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, \
        int cols), (dst, ldd, src, lds, rows, cols)) \
    X_VOID(ISA_, bf16_pack_b, (uint32_t *bp, const float *B, size_t ldb, int K, int N), (bp, B, ldb, K, N)) \
    X_VOID(ISA_, bf16_pack_b_transposed, (uint32_t *bp, const float *Bt, size_t ldt, int K, int N), (bp, Bt, ldt, K, \
        N)) \
    X_VOID(ISA_, gemm_bf16, (float *C, size_t ldc, const uint32_t *A, size_t lda, const uint32_t *bp, int M, int N, \
        int K, int accumulate), (C, ldc, A, lda, bp, M, N, K, accumulate)) \
    X_VOID(ISA_, gemm_bf16_ref, (float *C, size_t ldc, const float *A, size_t lda, const float *B, size_t ldb, \
        int M, int N, int K, int accumulate), (C, ldc, A, lda, B, ldb, M, N, K, accumulate))

/* each level's copy, NAME_avx512 etc. (the names the Makefile gives them) */
#define DECLARE_VOID(ISA_, name, params, args) void name##_##ISA_ params;
#define DECLARE_RET(ISA_, ret, name, params, args) ret name##_##ISA_ params;
DG_OPS_KERNELS(DECLARE_VOID, DECLARE_RET, avx512)
DG_OPS_KERNELS(DECLARE_VOID, DECLARE_RET, avx2)
DG_OPS_KERNELS(DECLARE_VOID, DECLARE_RET, generic)

/* ==== the table ============================================================ */

typedef struct {
    const char *level; /* the DIGITS_ISA name */
    const char *needs; /* what cpuid must report, for the warning */
    int (*supported)(void);
#define MEMBER_VOID(ISA_, name, params, args) void(*name) params;
#define MEMBER_RET(ISA_, ret, name, params, args) ret(*name) params;
    DG_OPS_KERNELS(MEMBER_VOID, MEMBER_RET, _)
} OpsKernels;

/* x86-64-v4 = AVX-512 F, BW, CD, DQ, VL; v3 = AVX2, FMA, BMI1/2, F16C, ... */
static int has_v4(void) { return __builtin_cpu_supports("x86-64-v4"); }
static int has_v3(void) { return __builtin_cpu_supports("x86-64-v3"); }
static int has_v2(void) { return 1; } /* the baseline: the program needs it anyway */

#define ENTRY_VOID(ISA_, name, params, args) .name = name##_##ISA_,
#define ENTRY_RET(ISA_, ret, name, params, args) .name = name##_##ISA_,
/* best first */
static const OpsKernels levels[] = {
    {.level = "avx512", .needs = "AVX-512 F/BW/CD/DQ/VL (x86-64-v4)", .supported = has_v4,
     DG_OPS_KERNELS(ENTRY_VOID, ENTRY_RET, avx512)},
    {.level = "avx2", .needs = "AVX2 and FMA (x86-64-v3)", .supported = has_v3,
     DG_OPS_KERNELS(ENTRY_VOID, ENTRY_RET, avx2)},
    {.level = "generic", .needs = "x86-64-v2", .supported = has_v2, DG_OPS_KERNELS(ENTRY_VOID, ENTRY_RET, generic)},
};
#define N_LEVELS ((int)(sizeof levels / sizeof *levels))

static const OpsKernels *active;
static int best;          /* index of the best level this CPU runs */
static char describe[160]; /* ops_isa_describe()'s line */
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

/* Set active: $DIGITS_ISA's level if the CPU has it, else the best one
 * (with one warning line when DIGITS_ISA asked for something else). */
static void pick(void) {
    best = 0;
    while (!levels[best].supported()) best++; /* generic always is */
    active = &levels[best];
    const char *want = getenv("DIGITS_ISA");
    if (!want || !*want || strcmp(want, "auto") == 0) return;
    for (int k = 0; k < N_LEVELS; k++) {
        if (strcmp(want, levels[k].level) != 0) continue;
        if (!levels[k].supported()) {
            fprintf(stderr, "digits: DIGITS_ISA=%s: this CPU lacks %s; using %s\n", want, levels[k].needs,
                    levels[best].level);
            return;
        }
        active = &levels[k];
        return;
    }
    fprintf(stderr, "digits: DIGITS_ISA=%s is not a kernel level (avx512, avx2, generic, auto); using %s\n", want,
            levels[best].level);
}

/* Once: pick the level and word the line for `digits info`. */
static void choose(void) {
    __builtin_cpu_init();
    pick();
    if (active != &levels[best])
        snprintf(describe, sizeof describe, "%s (portable build; set by DIGITS_ISA, this CPU runs up to %s)",
                 active->level, levels[best].level);
    else
        snprintf(describe, sizeof describe, "%s (portable build, chosen at run time from avx512 avx2 generic)",
                 active->level);
}

/* The table in use, chosen on the first call. */
static const OpsKernels *kernels(void) {
    pthread_once(&chosen, choose);
    return active;
}

/* ==== the kernels' plain names ============================================= */

#define WRAP_VOID(ISA_, name, params, args) \
    void name params { kernels()->name args; }
#define WRAP_RET(ISA_, ret, name, params, args) \
    ret name params { return kernels()->name args; }
DG_OPS_KERNELS(WRAP_VOID, WRAP_RET, _)

const char *ops_isa_name(void) { return kernels()->level; }

const char *ops_isa_describe(void) {
    kernels();
    return describe;
}

#else /* the default build: the kernels are compiled for this machine */

const char *ops_isa_name(void) { return "native"; }

const char *ops_isa_describe(void) {
#ifdef __AVX512F__
    return "native (-march=native build: the AVX-512 kernels)";
#else
    return "native (-march=native build: the plain C kernels)";
#endif
}

#endif
