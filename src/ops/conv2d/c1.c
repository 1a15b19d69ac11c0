/* conv2d/c1.c — inference forward of 3x3 stride-1 convolutions with one
 * input channel (the first layer of cnn-bn and kaggle-deep: 1 -> 32 at
 * 28x28), with the bias and the epilogue's relu/affine steps applied in
 * registers before the store.
 *
 * Why: the direct kernel (conv2d/direct.c) walks output-channel blocks of
 * 8 and reloads the masked input taps for each block, and the epilogue
 * then makes one more pass over the output; with C = 1 there are only 9
 * taps, so the work per output row is small and those overheads dominate.
 * Here the 9 (masked, zero outside the image) input vectors of an output
 * row (NV = 1 or 2 vectors of 16) are loaded once into registers and
 * reused across all K output channels, 4 channels (4*NV accumulators) at
 * a time with broadcast weights read straight from w (K,1,3,3).
 * Left out: other kernel sizes and strides, rows over 32 floats, tanh
 * steps (conv2d/forward.c keeps the direct kernel there), and the training path
 * (conv2d/forward.c calls this for packed inference only).
 */
#include "ops/conv2d/c1.h"

#include "ops/conv2d/direct.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

int conv2d_c1_ok(int C, int H, int W, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    return C == 1 && R == 3 && S == 3 && pad <= 2 && conv2d_direct_ok(H, W, R, S, stride, pad, C * R * S);
#else
    (void)C, (void)H, (void)W, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_c1_steps_ok(const Epilogue *ep) {
    for (int s = 0; ep && s < ep->n; s++)
        if (ep->step[s].tanh) return 0;
    return 1;
}

#ifdef __AVX512F__

#define KC 4 /* output channels per register block */

/* Lanes [lo, hi) of a 16-lane vector set. */
static inline __mmask16 lane_mask(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

/* v after ep's steps for channel k (relu and affine only; the affine step
 * as epilogue_apply computes it: (v - sub) * mul + add, not fused). Per
 * vector, not per channel row: broadcasting once per row would keep three
 * more registers live beside the 18 input vectors (measured: spills). */
static inline __m512 apply_steps(__m512 v, const Epilogue *ep, int k) {
    for (int s = 0; ep && s < ep->n; s++) {
        if (ep->step[s].relu) {
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        } else {
            v = _mm512_sub_ps(v, _mm512_set1_ps(ep->step[s].sub[k]));
            v = _mm512_mul_ps(v, _mm512_set1_ps(ep->step[s].mul[k]));
            v = _mm512_add_ps(v, _mm512_set1_ps(ep->step[s].add[k]));
        }
    }
    return v;
}

/* The kernel for NV vectors per output row (Q <= 16 NV). */
#define DEFINE_C1(NV)                                                                                          \
    static void c1_nv##NV(float *y, const float *x, const float *w, const float *bias, int H, int W, int K,    \
                          int pad, const Epilogue *ep) {                                                      \
        const int P = H + 2 * pad - 2, Q = W + 2 * pad - 2;                                                   \
        __mmask16 in_mask[3][NV], out_mask[NV];                                                               \
        for (int s = 0; s < 3; s++)                                                                           \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                              \
                in_mask[s][v] = lane_mask(pad - s - 16 * v, W + pad - s - 16 * v) & lane_mask(0, Q - 16 * v); \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) out_mask[v] = lane_mask(0, Q - 16 * v);         \
        for (int p = 0; p < P; p++) {                                                                         \
            __m512 xv[3][3][NV]; /* [r][s][v]: zero outside the image */                                      \
            _Pragma("GCC unroll 3") for (int r = 0; r < 3; r++) {                                             \
                const int h = p + r - pad, in = h >= 0 && h < H;                                              \
                const float *xrow = x + (size_t)(in ? h : 0) * W - pad;                                       \
                _Pragma("GCC unroll 3") for (int s = 0; s < 3; s++)                                           \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                      \
                        xv[r][s][v] = _mm512_maskz_loadu_ps(in ? in_mask[s][v] : 0, xrow + s + 16 * v);      \
            }                                                                                                 \
            for (int k0 = 0; k0 < K; k0 += KC) {                                                              \
                const int kn = K - k0 < KC ? K - k0 : KC;                                                     \
                __m512 acc[KC][NV];                                                                           \
                const float *wk[KC];                                                                          \
                _Pragma("GCC unroll 4") for (int j = 0; j < KC; j++) {                                        \
                    wk[j] = w + (size_t)(k0 + (j < kn ? j : 0)) * 9; /* channels past K: read, never stored */ \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                      \
                        acc[j][v] = _mm512_set1_ps(bias && j < kn ? bias[k0 + j] : 0.0f);                     \
                }                                                                                             \
                _Pragma("GCC unroll 3") for (int r = 0; r < 3; r++)                                           \
                    _Pragma("GCC unroll 3") for (int s = 0; s < 3; s++)                                       \
                        _Pragma("GCC unroll 4") for (int j = 0; j < KC; j++) {                                \
                            const __m512 wv = _mm512_set1_ps(wk[j][r * 3 + s]);                               \
                            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                              \
                                acc[j][v] = _mm512_fmadd_ps(xv[r][s][v], wv, acc[j][v]);                      \
                        }                                                                                     \
                _Pragma("GCC unroll 4") for (int j = 0; j < KC; j++)                                          \
                    if (j < kn) {                                                                             \
                        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                  \
                            _mm512_mask_storeu_ps(y + ((size_t)(k0 + j) * P + p) * Q + 16 * v, out_mask[v],   \
                                                  apply_steps(acc[j][v], ep, k0 + j));                        \
                    }                                                                                         \
            }                                                                                                 \
        }                                                                                                     \
    }
DEFINE_C1(1)
DEFINE_C1(2)

void conv2d_c1_forward(float *y, const float *x, const float *w, const float *bias, int H, int W, int K, int pad,
                       const Epilogue *ep) {
    if (W + 2 * pad - 2 <= 16) c1_nv1(y, x, w, bias, H, W, K, pad, ep);
    else c1_nv2(y, x, w, bias, H, W, K, pad, ep);
}

#else /* no AVX-512: conv2d_c1_ok() is 0 and this is never called */

void conv2d_c1_forward(float *y, const float *x, const float *w, const float *bias, int H, int W, int K, int pad,
                       const Epilogue *ep) {
    (void)y, (void)x, (void)w, (void)bias, (void)H, (void)W, (void)K, (void)pad, (void)ep;
}

#endif
