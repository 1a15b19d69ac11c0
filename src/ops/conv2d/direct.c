/* conv2d/direct.c — direct AVX-512 convolution for stride-1 layers on
 * small images (output and input rows of at most 32 floats: every
 * stride-1 conv of the zoo), used by conv2d/forward.c in place of im2col + sgemm.
 *
 * Why: at 28x28 and below, im2col copies R*S times the input for a GEMM
 * whose operands the BLAS then packs again; profiling lenet5 showed
 * im2col at 40 % of the training step, and cnn-bn's 32-channel 3x3
 * layers ran at 50 % of peak through im2col + sgemm. Here an output row
 * (one or two 16-float vectors) of KB output channels stays in registers
 * while the kernel walks c, r, s, loading each input row segment once per
 * tap and broadcasting one weight per output channel:
 *     y[k, p, 0:Q] += w[k,c,r,s] * x[c, p+r-pad, s-pad : s-pad+Q]
 * The weights are repacked per call to [k-block][c][r][s][KB] so the KB
 * broadcasts of a tap are adjacent. Deep layers (C*R*S >= 256) read a
 * zero-padded copy of the input, so the inner loop is loads and FMAs only
 * (78 % of peak at 28x28); one-vector rows (14x14) take three output rows
 * per block to have 24 accumulators. Shallow layers keep masked loads on
 * the unpadded input (there the copy would cost more than the masks).
 *
 * Backward:
 *   - dx is the same kernel on dy with the weights flipped and transposed,
 *     dx[c,h,:] = sum_{k,r,s} w[k,c,R-1-r,S-1-s] dy[k, h+r-(R-1-pad), ...],
 *     valid when pad <= R-1 (otherwise conv2d/forward.c keeps im2col);
 *   - dw[k,c,r,s] += sum_{p,q} dy[k,p,q] x[c,p+r-pad,q+s-pad]: per image,
 *     DB output channels x TB taps of vector accumulators per (c, r),
 *     reduced across lanes at the end of the image.
 * Which pass takes which kernel is decided per layer from measurements
 * (conv2d_direct_ok / _dx_ok / _dw_ok; bench/bench_kernels). Left out:
 * strides other than 1 and rows over 32 floats (im2col handles them), and
 * builds without AVX-512 (conv2d_direct_ok says no).
 */
#include "ops/conv2d/direct.h"

#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define KB 8 /* output channels per register block */
#define DIRECT_MAX_DEPTH 256 /* C*R*S (K*R*S for dx) at and above which im2col + sgemm is faster */

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

#ifdef __AVX512F__ /* (the portable build's other levels have no direct kernels) */
/* DIGITS_CONV=im2col turns the direct kernels off (A/B measurements). */
static int direct_disabled(void) {
    static int disabled = -1;
    if (disabled < 0) {
        const char *v = getenv("DIGITS_CONV");
        disabled = v && strcmp(v, "im2col") == 0;
    }
    return disabled;
}
#endif

int conv2d_direct_ok(int H, int W, int R, int S, int stride, int pad, int depth) {
#ifdef __AVX512F__
    if (direct_disabled()) return 0;
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    /* Q >= 8: at least half the lanes of a vector do work (a 1x1 output
     * would waste 15 of 16; im2col + sgemm is better there) */
    if (!(stride == 1 && P > 0 && Q >= 8 && Q <= 32 && W <= 32 && pad < 16 && S <= 32)) return 0;
    /* Measured per layer (bench/bench_kernels, one core, README): on the
     * zero-padded input the kernels beat im2col + sgemm at every depth:
     * 32->32 3x3 at 28x28 78 % of peak forward, 79 % dx (sgemm: 50, 56 %);
     * 64->64 at 14x14 (three rows at a time) 72 %, 71 % (59, 65 %). */
    (void)depth;
    return 1;
#else
    (void)H, (void)W, (void)R, (void)S, (void)stride, (void)pad, (void)depth;
    return 0;
#endif
}

int conv2d_direct_dx_ok(int H, int W, int R, int S, int stride, int pad, int depth) {
    return conv2d_direct_ok(H, W, R, S, stride, pad, depth) && R == S && pad <= R - 1;
}

int conv2d_direct_shallow(int depth) { return depth < DIRECT_MAX_DEPTH; }

int conv2d_direct_dw_ok(int H, int W, int R, int S, int stride, int pad, int depth) {
    /* deep 14x14 layers too since conv2d/forward.c hands them four images per
     * call (alone: 128 GFLOP/s, as im2col + sgemm; four: 136-147) */
    return conv2d_direct_ok(H, W, R, S, stride, pad, depth);
}

size_t conv2d_direct_packed_floats(int K, int C, int R, int S) {
    return (size_t)ceil_div(K, KB) * KB * C * R * S;
}

void conv2d_direct_pack(float *wp, const float *w, int K, int C, int R, int S, int flip_transpose) {
    /* forward:  out channel k, in channel c, tap (r,s) = w[k,c,r,s]
     * dx:       out channel c, in channel k, tap (r,s) = w[k,c,R-1-r,S-1-s]
     * Read in w's order, written KB floats apart (single-image inference
     * packs on every call: this order halves that time). */
    const int Ko = flip_transpose ? C : K, Ci = flip_transpose ? K : C, RS = R * S;
    const int nb = ceil_div(Ko, KB);
    for (int j = Ko % KB ? Ko % KB : KB; j < KB; j++) /* the last block's missing channels: zero */
        for (size_t i = 0; i < (size_t)Ci * RS; i++) wp[((size_t)(nb - 1) * Ci * RS + i) * KB + j] = 0;
    for (int k = 0; k < Ko; k++) {
        float *dst = wp + (size_t)(k / KB) * Ci * RS * KB + k % KB;
        for (int c = 0; c < Ci; c++) {
            float *d = dst + (size_t)c * RS * KB;
            if (flip_transpose) {
                const float *src = w + ((size_t)c * C + k) * RS;
                for (int t = 0; t < RS; t++) d[(size_t)t * KB] = src[RS - 1 - t];
            } else {
                const float *src = w + ((size_t)k * C + c) * RS;
                for (int t = 0; t < RS; t++) d[(size_t)t * KB] = src[t];
            }
        }
    }
}

#ifdef __AVX512F__

/* Lanes [lo, hi) of a 16-lane vector set. */
static inline __mmask16 lane_mask(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

/* One image: y (K,P,Q) = conv(x (C,H,W), packed weights) (+ bias), with x
 * first copied into xp, a zero-padded (C, H+2pad, W+2pad) plane, so the
 * inner loop is plain loads and FMAs: no masks, no border branches. (The
 * masked version spent its time waiting on a mask register reloaded per
 * tap.) Lanes past Q read the next row or the zeroed slack and are never
 * stored. NV = 1 or 2 vectors per output row (Q <= 16 or <= 32). */
#define DEFINE_FORWARD(NV)                                                                                    \
    static void forward_nv##NV(float *y, const float *xp, const float *wp, const float *bias, int C, int Hp,    \
                               int Wp, int K, int R, int S, int P, int Q) {                                    \
        __mmask16 out_mask[NV];                                                                                \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) out_mask[v] = lane_mask(0, Q - 16 * v);          \
        const int nb = ceil_div(K, KB);                                                                        \
        for (int b = 0; b < nb; b++) {                                                                         \
            const float *wb = wp + (size_t)b * C * R * S * KB;                                                 \
            const int kn = K - b * KB < KB ? K - b * KB : KB;                                                  \
            for (int p = 0; p < P; p++) {                                                                      \
                __m512 acc[KB][NV];                                                                            \
                _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++)                                          \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                       \
                        acc[j][v] = _mm512_set1_ps(bias && j < kn ? bias[b * KB + j] : 0.0f);                  \
                for (int c = 0; c < C; c++)                                                                    \
                    for (int r = 0; r < R; r++) {                                                              \
                        const float *xrow = xp + ((size_t)c * Hp + p + r) * Wp;                                \
                        const float *wt = wb + ((size_t)c * R + r) * S * KB;                                   \
                        for (int s = 0; s < S; s++, wt += KB) {                                                \
                            __m512 xv[NV];                                                                     \
                            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                               \
                                xv[v] = _mm512_loadu_ps(xrow + s + 16 * v);                                    \
                            _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++) {                            \
                                const __m512 wv = _mm512_set1_ps(wt[j]);                                       \
                                _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[j][v] = _mm512_fmadd_ps(xv[v], wv, acc[j][v]); \
                            }                                                                                  \
                        }                                                                                      \
                    }                                                                                          \
                _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++)                                          \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                       \
                        if (j < kn) /* constant bounds keep acc[][] in registers */                            \
                            _mm512_mask_storeu_ps(y + ((size_t)(b * KB + j) * P + p) * Q + 16 * v,             \
                                                  out_mask[v], acc[j][v]);                                     \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_FORWARD(2)

/* The same on the unpadded input, masked loads for the borders and rows
 * outside the image skipped: kept for shallow layers, where copying the
 * input costs more than the masks (and valid convs' dx, pad R-1, would
 * spend half their FMAs on padding rows). */
#define DEFINE_FORWARD_MASKED(NV)                                                                                    \
    static void forward_masked_nv##NV(float *y, const float *x, const float *wp, const float *bias, int C, int H,      \
                               int W, int K, int R, int S, int pad, int P, int Q) {                            \
        __mmask16 in_mask[32][NV]; /* per tap column s: lanes whose input column is inside the row */          \
        for (int s = 0; s < S; s++)                                                                            \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {                                                                     \
                /* lane l of vector v is output column q = 16v + l, input column q + s - pad */                \
                int lo = pad - s - 16 * v, hi = W + pad - s - 16 * v;                                          \
                in_mask[s][v] = lane_mask(lo, hi) & lane_mask(0, Q - 16 * v);                                  \
            }                                                                                                  \
        __mmask16 out_mask[NV];                                                                                \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) out_mask[v] = lane_mask(0, Q - 16 * v);                                   \
        const int nb = ceil_div(K, KB);                                                                        \
        for (int b = 0; b < nb; b++) {                                                                         \
            const float *wb = wp + (size_t)b * C * R * S * KB;                                                 \
            const int kn = K - b * KB < KB ? K - b * KB : KB;                                                  \
            for (int p = 0; p < P; p++) {                                                                      \
                __m512 acc[KB][NV];                                                                            \
                _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++)                                                                   \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                                               \
                        acc[j][v] = _mm512_set1_ps(bias && j < kn ? bias[b * KB + j] : 0.0f);                  \
                for (int c = 0; c < C; c++)                                                                    \
                    for (int r = 0; r < R; r++) {                                                              \
                        const int h = p + r - pad;                                                             \
                        if (h < 0 || h >= H) continue;                                                         \
                        const float *xrow = x + ((size_t)c * H + h) * W - pad;                                 \
                        const float *wt = wb + ((size_t)c * R + r) * S * KB;                                   \
                        for (int s = 0; s < S; s++, wt += KB) {                                                \
                            __m512 xv[NV];                                                                     \
                            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                                       \
                                xv[v] = _mm512_maskz_loadu_ps(in_mask[s][v], xrow + s + 16 * v);               \
                            _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++) {                                                     \
                                const __m512 wv = _mm512_set1_ps(wt[j]);                                       \
                                _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[j][v] = _mm512_fmadd_ps(xv[v], wv, acc[j][v]); \
                            }                                                                                  \
                        }                                                                                      \
                    }                                                                                          \
                _Pragma("GCC unroll 16") for (int j = 0; j < KB; j++)                                          \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                                       \
                        if (j < kn) /* constant bounds keep acc[][] in registers */                            \
                            _mm512_mask_storeu_ps(y + ((size_t)(b * KB + j) * P + p) * Q + 16 * v,             \
                                                  out_mask[v], acc[j][v]);                                     \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_FORWARD_MASKED(1)
DEFINE_FORWARD_MASKED(2)

/* One-vector rows (Q <= 16, e.g. 14x14) on the padded input: 8 channels of
 * one row are only 8 accumulators and as many weight broadcasts as FMAs;
 * PB = 3 output rows at once make it 24 accumulators, 3 input loads and 8
 * broadcasts per 24 FMAs. The last block may hold fewer rows (pn). */
#define PB 3
static void forward_rows3(float *y, const float *xp, const float *wp, const float *bias, int C, int Hp, int Wp,
                          int K, int R, int S, int P, int Q) {
    const __mmask16 out_mask = lane_mask(0, Q);
    const int nb = ceil_div(K, KB);
    for (int b = 0; b < nb; b++) {
        const float *wb = wp + (size_t)b * C * R * S * KB;
        const int kn = K - b * KB < KB ? K - b * KB : KB;
        for (int p = 0; p < P; p += PB) {
            const int pn = P - p < PB ? P - p : PB;
            __m512 acc[KB][PB];
            _Pragma("GCC unroll 8") for (int j = 0; j < KB; j++)
                _Pragma("GCC unroll 3") for (int i = 0; i < PB; i++)
                    acc[j][i] = _mm512_set1_ps(bias && j < kn ? bias[b * KB + j] : 0.0f);
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++) {
                    const float *xrow = xp + ((size_t)c * Hp + p + r) * Wp;
                    const float *wt = wb + ((size_t)c * R + r) * S * KB;
                    for (int s = 0; s < S; s++, wt += KB) {
                        __m512 xv[PB];
                        /* rows past P read the next plane or the slack: finite, never stored */
                        _Pragma("GCC unroll 3") for (int i = 0; i < PB; i++)
                            xv[i] = _mm512_loadu_ps(xrow + (size_t)i * Wp + s);
                        _Pragma("GCC unroll 8") for (int j = 0; j < KB; j++) {
                            const __m512 wv = _mm512_set1_ps(wt[j]);
                            _Pragma("GCC unroll 3") for (int i = 0; i < PB; i++)
                                acc[j][i] = _mm512_fmadd_ps(xv[i], wv, acc[j][i]);
                        }
                    }
                }
            _Pragma("GCC unroll 8") for (int j = 0; j < KB; j++)
                _Pragma("GCC unroll 3") for (int i = 0; i < PB; i++)
                    if (j < kn && i < pn)
                        _mm512_mask_storeu_ps(y + ((size_t)(b * KB + j) * P + p + i) * Q, out_mask, acc[j][i]);
        }
    }
}

/* Slack after the padded planes: the last row's loads run up to S-1+32
 * floats past its start, and forward_rows3 reads PB-1 rows further. */
#define PAD_SLACK 64

size_t conv2d_direct_pad_floats(int C, int H, int W, int pad) {
    return (size_t)C * (H + 2 * pad) * (W + 2 * pad) + (size_t)(PB - 1) * (W + 2 * pad) + PAD_SLACK;
}

/* xp = x (C,H,W) zero-padded by pad on every side, plus zeroed slack. */
static void pad_input(float *xp, const float *x, int C, int H, int W, int pad) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    memset(xp, 0, sizeof(float) * conv2d_direct_pad_floats(C, H, W, pad));
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            memcpy(xp + ((size_t)c * Hp + h + pad) * Wp + pad, x + ((size_t)c * H + h) * W, sizeof(float) * W);
}

void conv2d_direct_forward(float *y, const float *x, const float *wp, const float *bias, int C, int H, int W,
                           int K, int R, int S, int pad, float *xp) {
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1, Hp = H + 2 * pad, Wp = W + 2 * pad;
    if (C * R * S < DIRECT_MAX_DEPTH) { /* shallow: masked loads, no copy */
        if (Q <= 16)
            forward_masked_nv1(y, x, wp, bias, C, H, W, K, R, S, pad, P, Q);
        else
            forward_masked_nv2(y, x, wp, bias, C, H, W, K, R, S, pad, P, Q);
        return;
    }
    pad_input(xp, x, C, H, W, pad);
    conv2d_direct_forward_padded(y, xp, wp, bias, C, Hp, Wp, K, R, S);
}

void conv2d_direct_forward_padded(float *y, const float *xp, const float *wp, const float *bias, int C, int Hp,
                                  int Wp, int K, int R, int S) {
    const int P = Hp - R + 1, Q = Wp - S + 1;
    if (Q <= 16)
        forward_rows3(y, xp, wp, bias, C, Hp, Wp, K, R, S, P, Q);
    else
        forward_nv2(y, xp, wp, bias, C, Hp, Wp, K, R, S, P, Q);
}

/* The masked dw on the unpadded input (the kernel before the padded one),
 * kept for shallow layers where the input copy costs more than it saves. */
#define DB 4
#define TB 5 /* taps per block: DB*TB = 20 accumulators + DB dy vectors + 1 input vector fit the 32 registers */
static void dw_masked(float *dw, const float *dy, const float *x, int C, int H, int W, int K, int R, int S, int pad) {
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    const int NV = Q <= 16 ? 1 : 2;
    __mmask16 in_mask[32][2] = {{0}}, out_mask[2] = {0};
    for (int s = 0; s < S; s++)
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)
            in_mask[s][v] = lane_mask(pad - s - 16 * v, W + pad - s - 16 * v) & lane_mask(0, Q - 16 * v);
    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) out_mask[v] = lane_mask(0, Q - 16 * v);
    for (int k0 = 0; k0 < K; k0 += DB) {
        const int kn = K - k0 < DB ? K - k0 : DB;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
                for (int s0 = 0; s0 < S; s0 += TB) {
                    const int sn = S - s0 < TB ? S - s0 : TB;
                    __m512 acc[DB][TB];
                    _Pragma("GCC unroll 4") for (int j = 0; j < DB; j++)
                        _Pragma("GCC unroll 8") for (int s = 0; s < TB; s++) acc[j][s] = _mm512_setzero_ps();
                    for (int p = 0; p < P; p++) {
                        const int h = p + r - pad;
                        if (h < 0 || h >= H) continue;
                        const float *xrow = x + ((size_t)c * H + h) * W - pad;
                        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {
                            __m512 g[DB];
                            _Pragma("GCC unroll 4") for (int j = 0; j < DB; j++) /* rows past K read as 0 */
                                g[j] = _mm512_maskz_loadu_ps(j < kn ? out_mask[v] : 0,
                                                             dy + ((size_t)(k0 + (j < kn ? j : 0)) * P + p) * Q + 16 * v);
                            _Pragma("GCC unroll 8") for (int s = 0; s < TB; s++) {
                                if (s < sn) {
                                    const __m512 xv =
                                        _mm512_maskz_loadu_ps(in_mask[s0 + s][v], xrow + s0 + s + 16 * v);
                                    _Pragma("GCC unroll 4") for (int j = 0; j < DB; j++)
                                        acc[j][s] = _mm512_fmadd_ps(g[j], xv, acc[j][s]);
                                }
                            }
                        }
                    }
                    _Pragma("GCC unroll 4") for (int j = 0; j < DB; j++)
                        _Pragma("GCC unroll 8") for (int s = 0; s < TB; s++)
                            if (j < kn && s < sn)
                                dw[(((size_t)(k0 + j) * C + c) * R + r) * S + s0 + s] += _mm512_reduce_add_ps(acc[j][s]);
                }
    }
}


/* dw (K, C, R, S) += weight gradient of G images (consecutive dy; padded
 * inputs G apart in xp). DB output channels x TB taps s of one kernel row
 * r of vector accumulators, over the rows p of every image, then one
 * reduction across lanes (G > 1 spreads its cost: at 14x14 the 18
 * reductions of a block cost nearly as much as its 14 rows of FMAs);
 * x comes zero-padded (xp, as in the forward) so its loads need no masks;
 * dy rows are loaded masked to Q lanes, which zeroes the lanes whose x is
 * the next row's. 3-tap kernels take 6 channels x 3 taps (18
 * accumulators), wider ones 4 x 5. */
#define DEFINE_DW(DBV, TBV)                                                                                    \
    static void dw_##DBV##x##TBV(float *dw, const float *dy, const float *xp, int C, int Hp, int Wp, int K,     \
                                 int R, int S, int P, int Q, int G, size_t xp_img) {                           \
        const size_t dy_img = (size_t)K * P * Q;                                                               \
        const int NV = Q <= 16 ? 1 : 2;                                                                        \
        __mmask16 out_mask[2] = {lane_mask(0, Q), lane_mask(0, Q - 16)};                                       \
        for (int k0 = 0; k0 < K; k0 += DBV) {                                                                  \
            const int kn = K - k0 < DBV ? K - k0 : DBV;                                                        \
            for (int c = 0; c < C; c++)                                                                        \
                for (int r = 0; r < R; r++)                                                                    \
                    for (int s0 = 0; s0 < S; s0 += TBV) {                                                      \
                        const int sn = S - s0 < TBV ? S - s0 : TBV;                                            \
                        __m512 acc[DBV][TBV];                                                                  \
                        _Pragma("GCC unroll 8") for (int j = 0; j < DBV; j++)                                  \
                            _Pragma("GCC unroll 8") for (int t = 0; t < TBV; t++) acc[j][t] = _mm512_setzero_ps(); \
                        for (int n = 0; n < G; n++)                                                            \
                        for (int p = 0; p < P; p++) {                                                          \
                            const float *xrow = xp + n * xp_img + ((size_t)c * Hp + p + r) * Wp + s0;          \
                            const float *dyn = dy + n * dy_img;                                                \
                            for (int v = 0; v < NV; v++) {                                                     \
                                __m512 g[DBV];                                                                 \
                                _Pragma("GCC unroll 8") for (int j = 0; j < DBV; j++) /* rows past K read as 0 */ \
                                    g[j] = _mm512_maskz_loadu_ps(j < kn ? out_mask[v] : 0,                     \
                                                                 dyn + ((size_t)(k0 + (j < kn ? j : 0)) * P + p) * Q + 16 * v); \
                                _Pragma("GCC unroll 8") for (int t = 0; t < TBV; t++) {                        \
                                    if (t < sn) {                                                              \
                                        const __m512 xv = _mm512_loadu_ps(xrow + t + 16 * v);                  \
                                        _Pragma("GCC unroll 8") for (int j = 0; j < DBV; j++)                  \
                                            acc[j][t] = _mm512_fmadd_ps(g[j], xv, acc[j][t]);                  \
                                    }                                                                          \
                                }                                                                              \
                            }                                                                                  \
                        }                                                                                      \
                        _Pragma("GCC unroll 8") for (int j = 0; j < DBV; j++)                                  \
                            _Pragma("GCC unroll 8") for (int t = 0; t < TBV; t++)                              \
                                if (j < kn && t < sn)                                                          \
                                    dw[(((size_t)(k0 + j) * C + c) * R + r) * S + s0 + t] += _mm512_reduce_add_ps(acc[j][t]); \
                    }                                                                                          \
        }                                                                                                      \
    }
DEFINE_DW(6, 3)
DEFINE_DW(4, 5)

void conv2d_direct_dw(float *dw, const float *dy, const float *x, int C, int H, int W, int K, int R, int S,
                      int pad, float *xp) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    if (pad == 0 && C * R * S < DIRECT_MAX_DEPTH) { /* measured: lenet5/cnn's convs, 5-10 % faster */
        dw_masked(dw, dy, x, C, H, W, K, R, S, pad);
        return;
    }
    pad_input(xp, x, C, H, W, pad);
    conv2d_direct_dw_padded(dw, dy, xp, C, Hp, Wp, K, R, S, 1, 0);
}

void conv2d_direct_dw_padded(float *dw, const float *dy, const float *xp, int C, int Hp, int Wp, int K, int R,
                             int S, int G, size_t xp_img) {
    const int P = Hp - R + 1, Q = Wp - S + 1;
    if (S <= 3)
        dw_6x3(dw, dy, xp, C, Hp, Wp, K, R, S, P, Q, G, xp_img);
    else
        dw_4x5(dw, dy, xp, C, Hp, Wp, K, R, S, P, Q, G, xp_img);
}

void conv2d_direct_dw_images(float *dw, const float *dy, const float *x, int G, int C, int H, int W, int K, int R,
                             int S, int pad, float *xp) {
    const size_t img = conv2d_direct_pad_floats(C, H, W, pad);
    for (int n = 0; n < G; n++) pad_input(xp + n * img, x + (size_t)n * C * H * W, C, H, W, pad);
    conv2d_direct_dw_padded(dw, dy, xp, C, H + 2 * pad, W + 2 * pad, K, R, S, G, img);
}

#else /* no AVX-512: conv2d_direct_ok() is 0 and these are never called */

size_t conv2d_direct_pad_floats(int C, int H, int W, int pad) {
    (void)C, (void)H, (void)W, (void)pad;
    return 0;
}
void conv2d_direct_forward(float *y, const float *x, const float *wp, const float *bias, int C, int H, int W,
                           int K, int R, int S, int pad, float *xp) {
    (void)y, (void)x, (void)wp, (void)bias, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)pad, (void)xp;
}
void conv2d_direct_forward_padded(float *y, const float *xp, const float *wp, const float *bias, int C, int Hp,
                                  int Wp, int K, int R, int S) {
    (void)y, (void)xp, (void)wp, (void)bias, (void)C, (void)Hp, (void)Wp, (void)K, (void)R, (void)S;
}
void conv2d_direct_dw_padded(float *dw, const float *dy, const float *xp, int C, int Hp, int Wp, int K, int R,
                             int S, int G, size_t xp_img) {
    (void)dw, (void)dy, (void)xp, (void)C, (void)Hp, (void)Wp, (void)K, (void)R, (void)S, (void)G, (void)xp_img;
}
void conv2d_direct_dw_images(float *dw, const float *dy, const float *x, int G, int C, int H, int W, int K, int R,
                             int S, int pad, float *xp) {
    (void)dw, (void)dy, (void)x, (void)G, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)pad, (void)xp;
}
void conv2d_direct_dw(float *dw, const float *dy, const float *x, int C, int H, int W, int K, int R, int S,
                      int pad, float *xp) {
    (void)dw, (void)dy, (void)x, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)pad, (void)xp;
}

#endif
