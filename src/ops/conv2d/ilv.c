/* conv2d/ilv.c — inference batches of small convolutions (few input
 * channels and taps, few output channels: lenet5's 1 -> 6 and 6 -> 16 5x5
 * layers) with 16 images interleaved in the vector lanes.
 *
 * Why: on planes, such a layer wastes most of each vector — lenet5's
 * second layer has 8-wide output rows (half a 16-lane vector) and 16
 * output channels, its first 6 channels (the direct kernel's blocks of 8
 * are then 3/4 full) — and its tanh and average pool run as passes of
 * their own. With image i of a group of 16 in lane i, every multiply-add
 * is a full vector whatever the shape: the input is regrouped once as
 * (C, H+2pad, W+2pad, 16) with zeros around (and in the lanes of missing
 * images), each output vector (k, p, q) is a sum over (c, r, s) of a
 * broadcast weight times an input vector, KB channels x QB positions of
 * accumulators at a time (every input vector loaded once for KB
 * channels). The bias and the epilogue's steps then run on the
 * interleaved output (epilogue_apply, the same arithmetic as the plane
 * path), the pooling on whole vectors (avgpool_forward's pair sums), and
 * only the final values are scattered back to (N, K, plane) planes.
 * Left out: strides other than 1, zero-padded outputs (a zeropad layer
 * after the conv), bf16 and training (conv2d/forward.c calls this for packed
 * inference batches only).
 */
#include "ops/conv2d/ilv.h"

#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define L 16  /* images per group: the vector's lanes */
#define KB 3  /* output channels per register block */
#define QB 8  /* output positions per register block */

static inline int ceil_to(int v, int m) { return (v + m - 1) / m * m; }

int conv2d_ilv_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    if (stride != 1 || P < 1 || Q < 1 || pad > 2) return 0;
    /* where the plane kernels waste lanes: few taps and output channels */
    return C * R * S <= 160 && K <= 16 && Q <= 32 && R * S >= 9;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_ilv_images(void) { return L; }

/* The workspace's parts: packed weights, regrouped input, interleaved output. */
static size_t weight_floats(int C, int K, int R, int S) { return (size_t)ceil_to(K, KB) * C * R * S; }
static size_t input_floats(int C, int H, int W, int S, int pad) {
    /* + a row of slack: the last position block reads up to QB + S - 1 past its row's start */
    return ((size_t)C * (H + 2 * pad) * (W + 2 * pad) + QB + S) * L;
}
static size_t output_floats(int H, int W, int K, int R, int S, int pad) {
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    return (size_t)ceil_to(K, KB) * P * ceil_to(Q, QB) * L;
}

size_t conv2d_ilv_floats(int C, int H, int W, int K, int R, int S, int pad) {
    return weight_floats(C, K, R, S) + input_floats(C, H, W, S, pad) + output_floats(H, W, K, R, S, pad);
}

void conv2d_ilv_pack(float *ws, const float *w, int C, int K, int R, int S) {
    const int CRS = C * R * S, Kp = ceil_to(K, KB);
    for (int k0 = 0; k0 < Kp; k0 += KB) /* block k0: (CRS, KB), channel innermost */
        for (int j = 0; j < CRS; j++)
            for (int kk = 0; kk < KB; kk++)
                ws[(size_t)k0 * CRS + (size_t)j * KB + kk] = k0 + kk < K ? w[(size_t)(k0 + kk) * CRS + j] : 0.0f;
}

#ifdef __AVX512F__

/* xi (C, Hp, Wp, L) = images 0..g-1 of x (g, C, H, W), zeros elsewhere. */
static void regroup_input(float *restrict xi, const float *restrict x, int g, int C, int H, int W, int S, int pad) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    memset(xi, 0, input_floats(C, H, W, S, pad) * sizeof(float));
    const size_t img = (size_t)C * H * W;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)img));
    const __mmask16 lanes = (__mmask16)((1u << g) - 1);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            float *row = xi + (((size_t)c * Hp + h + pad) * Wp + pad) * L;
            const float *src = x + ((size_t)c * H + h) * W;
            for (int w = 0; w < W; w++)
                _mm512_storeu_ps(row + (size_t)w * L,
                                 _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, idx, src + w, 4));
        }
}

/* yi (Kp, P, Qp, L): the convolution sums, KB channels x QB positions a block. */
static void interleaved_sums(float *restrict yi, const float *restrict xi, const float *restrict wp, int C, int H,
                             int W, int K, int R, int S, int pad) {
    const int Hp = H + 2 * pad, Wp = W + 2 * pad, P = Hp - R + 1, Q = Wp - S + 1;
    const int Kp = ceil_to(K, KB), Qp = ceil_to(Q, QB), CRS = C * R * S;
    for (int k0 = 0; k0 < Kp; k0 += KB) {
        const float *wk = wp + (size_t)k0 * CRS;
        for (int p = 0; p < P; p++)
            for (int q0 = 0; q0 < Qp; q0 += QB) {
                __m512 acc[KB][QB];
                for (int kk = 0; kk < KB; kk++)
                    for (int j = 0; j < QB; j++) acc[kk][j] = _mm512_setzero_ps();
                const float *wj = wk;
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++) {
                        const float *in = xi + (((size_t)c * Hp + p + r) * Wp + q0) * L;
                        for (int s = 0; s < S; s++, wj += KB) {
                            const __m512 w0 = _mm512_set1_ps(wj[0]), w1 = _mm512_set1_ps(wj[1]),
                                         w2 = _mm512_set1_ps(wj[2]);
                            for (int j = 0; j < QB; j++) {
                                const __m512 v = _mm512_loadu_ps(in + (size_t)(j + s) * L);
                                acc[0][j] = _mm512_fmadd_ps(w0, v, acc[0][j]);
                                acc[1][j] = _mm512_fmadd_ps(w1, v, acc[1][j]);
                                acc[2][j] = _mm512_fmadd_ps(w2, v, acc[2][j]);
                            }
                        }
                    }
                for (int kk = 0; kk < KB; kk++) {
                    float *out = yi + (((size_t)(k0 + kk) * P + p) * Qp + q0) * L;
                    for (int j = 0; j < QB; j++) _mm512_storeu_ps(out + (size_t)j * L, acc[kk][j]);
                }
            }
    }
}

/* Lane i of v into y[i * img] for the g images. */
static inline void scatter_lanes(float *y, __m512 v, size_t img, int g) {
    float t[L];
    _mm512_storeu_ps(t, v);
    for (int i = 0; i < g; i++) y[(size_t)i * img] = t[i];
}

/* The pooled (or plain) output vectors of yi into y (g, K, Po, Qo). */
static void pool_scatter(float *y, const float *yi, int g, int K, int P, int Q, int Qp, const Epilogue *ep) {
    const int F = ep && ep->pool ? ep->pool : 1, T = ep && ep->pool ? ep->pool_stride : 1;
    const int Po = (P - F) / T + 1, Qo = (Q - F) / T + 1;
    const size_t img = (size_t)K * Po * Qo;
    const __m512 inv = _mm512_set1_ps(1.0f / (float)(F * F));
    for (int k = 0; k < K; k++)
        for (int po = 0; po < Po; po++)
            for (int qo = 0; qo < Qo; qo++) {
                const float *base = yi + (((size_t)k * P + po * T) * Qp + qo * T) * L;
                __m512 v;
                if (F == 1) {
                    v = _mm512_loadu_ps(base);
                } else if (ep->pool_avg && F == 2) { /* avgpool_one_plane's pair sums */
                    const float *b2 = base + (size_t)Qp * L;
                    v = _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(base), _mm512_loadu_ps(base + L)),
                                                    _mm512_add_ps(_mm512_loadu_ps(b2), _mm512_loadu_ps(b2 + L))),
                                      inv);
                } else if (ep->pool_avg) { /* avgpool_one_plane's general order: rows, then columns */
                    v = _mm512_setzero_ps();
                    for (int i = 0; i < F; i++)
                        for (int j = 0; j < F; j++)
                            v = _mm512_add_ps(v, _mm512_loadu_ps(base + ((size_t)i * Qp + j) * L));
                    v = _mm512_mul_ps(v, inv);
                } else {
                    v = _mm512_loadu_ps(base);
                    for (int i = 0; i < F; i++)
                        for (int j = 0; j < F; j++)
                            v = _mm512_max_ps(v, _mm512_loadu_ps(base + ((size_t)i * Qp + j) * L));
                    if (ep->pool_relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
                }
                scatter_lanes(y + ((size_t)k * Po + po) * Qo + qo, v, img, g);
            }
}

void conv2d_ilv_forward(float *y, const float *x, const float *bias, int g, float *ws, int C, int H, int W, int K,
                        int R, int S, int pad, const Epilogue *ep) {
    const int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1, Qp = ceil_to(Q, QB);
    float *wp = ws, *xi = wp + weight_floats(C, K, R, S), *yi = xi + input_floats(C, H, W, S, pad);
    regroup_input(xi, x, g, C, H, W, S, pad);
    interleaved_sums(yi, xi, wp, C, H, W, K, R, S, pad);
    if (bias || (ep && ep->n)) { /* steps only: the pooling comes next, on vectors */
        Epilogue steps = {0};
        if (ep) {
            steps.n = ep->n;
            memcpy(steps.step, ep->step, sizeof steps.step);
        }
        epilogue_apply(yi, 1, K, P * Qp * L, bias, &steps);
    }
    pool_scatter(y, yi, g, K, P, Q, Qp, ep);
}

#else

void conv2d_ilv_forward(float *y, const float *x, const float *bias, int g, float *ws, int C, int H, int W, int K,
                        int R, int S, int pad, const Epilogue *ep) {
    (void)y, (void)x, (void)bias, (void)g, (void)ws, (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)pad;
    (void)ep;
}

#endif
