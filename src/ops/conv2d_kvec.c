/* conv2d_kvec.c — direct AVX-512 convolution vectorised over output
 * channels, for deep layers with small outputs: kaggle-deep's 3x3 layers
 * at 7x7 and its 5x5/2 layers to 7x7 and 4x4 (any stride, any padding).
 *
 * Why: the row kernels of conv2d_direct.c put an output row in a vector,
 * which wastes 9 of 16 lanes on a 7-pixel row; im2col + sgemm ran these
 * layers at 43-66 % of peak (the col copy is R*S times the input, and the
 * BLAS repacks it). Here a register block is 64 output channels (4
 * vectors) x NPX output pixels; for every tap (c, r, s) of the reduction
 * it loads the 4 weight vectors w[c,r,s][k0:k0+64] and broadcasts the NPX
 * input values the pixels see at that tap:
 *     y[k0:k0+64, pix] += w[:, c, r, s] * xpad[c, stride*p + r, stride*q + s]
 * 24 accumulators, 10 loads per 24 FMAs, no masks, no lane reductions.
 * Pixels are numbered across a group of G images, so a 7x7 output wastes
 * no lanes on its odd size (only the group's last block is partial). The
 * input is zero-padded once per group, so every tap reads memory.
 *
 * Backward:
 *   - dx (stride 1) is this forward on dy padded by R-1-pad, with the
 *     weights flipped and transposed (as in conv2d_direct.c);
 *   - dw[k, tap] += sum_pix dy[k, pix] * xpad[pix + tap]: the same block
 *     with the roles turned: 64 channels x NPX taps of accumulators, the
 *     loop over the group's pixels, dy transposed to (pixel, K) so its 64
 *     channels are one contiguous row.
 * Stride-2 dx stays on im2col (conv2d.c). Left out: K (or C for dx) not a
 * multiple of 64, builds without AVX-512 (conv2d_kvec_ok says no).
 */
#include "ops/conv2d_kvec.h"

#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define NPX 12        /* the most pixels (forward) or taps (dw) per register block */
#define GROUP_PIX 384 /* pixels per call: G = ceil(GROUP_PIX / PQ) images */

static inline int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Output channels per register block: 64 (4 vectors x 6 pixels) where
 * they divide the layer's, else 32 (2 x 12); 0: neither fits. */
static inline int block_width(int Kout) { return Kout % 64 == 0 ? 64 : Kout % 32 == 0 ? 32 : 0; }

int conv2d_kvec_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    /* measured (bench_kernels, README): 7x7 and 4x4 outputs, and stride 2
     * to 14x14 (kaggle-deep's 32->32 5x5/2: 149 GFLOP/s forward on one core
     * against 103 on the input's phases); stride-1 outputs of 8 and more
     * columns run as fast or faster on the row kernels of conv2d_direct.c */
    return block_width(K) && P > 0 && Q > 0 && (Q < 8 || (stride == 2 && Q <= 16)) && C * R * S >= 256 &&
           stride <= 2;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_kvec_dw_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    /* the weight gradient also at 14x14, where the row kernels' dw runs at
     * 59-66 % of peak against their forward's 75-85 % (measured, README) */
    const int Q = out_size(W, S, stride, pad);
    return conv2d_kvec_ok(C, H, W, K, R, S, stride, pad) ||
           (block_width(K) && Q > 0 && Q <= 16 && out_size(H, R, stride, pad) > 0 && C * R * S >= 256 && stride <= 2);
}

int conv2d_kvec_dx_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    return conv2d_kvec_ok(C, H, W, K, R, S, stride, pad) && block_width(C);
}

int conv2d_kvec_group(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    (void)C, (void)K;
    const int PQ = out_size(H, R, stride, pad) * out_size(W, S, stride, pad);
    return (GROUP_PIX + PQ - 1) / PQ;
}

/* ---- scratch layout -------------------------------------------------------
 * [packed weights][padded images][dy transposed][pixel offsets][output
 * offsets][tap offsets]; the int tables live in float-sized slots. */
typedef struct {
    float *wk, *xp, *dyT;
    int *pix, *out, *tap;
} Scratch;

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

/* dx reads dy zero-padded by mh rows on top and mw columns on the left,
 * to Pp x Qp: input pixel (h, w) with h + pad = stride*a + py sees
 * dy[a - r'][b - s'] through the taps (py + stride*r', px + stride*s'). */
typedef struct {
    int mh, mw, Pp, Qp;
} DxPad;

static DxPad dx_pad(int H, int W, int R, int S, int stride, int pad, int P, int Q) {
    DxPad d;
    d.mh = (R - 1) / stride, d.mw = (S - 1) / stride;
    const int arows = (H - 1 + pad) / stride + 1, bcols = (W - 1 + pad) / stride + 1;
    d.Pp = d.mh + (P > arows ? P : arows), d.Qp = d.mw + (Q > bcols ? Q : bcols);
    return d;
}

/* Floats of each area, in layout order (sizes[5]: the tap table). */
static void areas(size_t sizes[6], int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    const DxPad d = dx_pad(H, W, R, S, stride, pad, P, Q);
    const size_t xp_fwd = (size_t)G * C * (H + 2 * pad) * (W + 2 * pad);
    const size_t xp_dx = (size_t)G * K * d.Pp * d.Qp;
    const size_t npix = (size_t)G * max_z((size_t)P * Q, (size_t)H * W) + NPX;
    sizes[0] = (size_t)K * C * R * S;      /* packed weights (K and, for dx, C multiples of 64) */
    sizes[1] = max_z(xp_fwd, xp_dx);       /* padded images */
    sizes[2] = (size_t)G * P * Q * K;      /* dy transposed */
    sizes[3] = sizes[4] = npix;            /* pixel and output offsets */
    sizes[5] = (size_t)max_z(C, K) * R * S + NPX; /* tap offsets */
}

static Scratch carve(float *s, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t z[6];
    areas(z, C, H, W, K, R, S, stride, pad);
    Scratch sc;
    sc.wk = s;
    sc.xp = sc.wk + z[0];
    sc.dyT = sc.xp + z[1];
    sc.pix = (int *)(sc.dyT + z[2]);
    sc.out = sc.pix + z[3];
    sc.tap = sc.out + z[4];
    return sc;
}

size_t conv2d_kvec_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t z[6], total = 0;
    areas(z, C, H, W, K, R, S, stride, pad);
    for (int i = 0; i < 6; i++) total += z[i];
    return total;
}

/* Taps of phase (py, px) of the dx pass: rows r = py + stride*r' < R. */
static int phase_taps(int R, int stride, int py) { return py < R ? (R - 1 - py) / stride + 1 : 0; }

/* Forward: wk[kb][c][r][s][64] = w[kb*64 + j][c][r][s]. dx: the output
 * channels are c, the reduction runs over k and, per phase (py, px) of
 * the input pixel, over that phase's taps; phase after phase,
 * wk[phase][cb][k][r'][s'][64] = w[k][cb*64 + j][py + stride*r'][px + stride*s']. */
void conv2d_kvec_pack(float *scratch, const float *w, int C, int H, int W, int K, int R, int S, int stride, int pad,
                      int dx) {
    float *wk = carve(scratch, C, H, W, K, R, S, stride, pad).wk;
    if (!dx) {
        const int kw = block_width(K);
        for (int b = 0; b < K / kw; b++)
            for (int c = 0; c < C; c++)
                for (int t = 0; t < R * S; t++)
                    for (int j = 0; j < kw; j++)
                        *wk++ = w[((size_t)(b * kw + j) * C + c) * R * S + t];
        return;
    }
    for (int py = 0; py < stride; py++)
        for (int px = 0; px < stride; px++) {
            const int Rh = phase_taps(R, stride, py), Sh = phase_taps(S, stride, px);
            const int cw = block_width(C);
            for (int b = 0; b < C / cw; b++)
                for (int k = 0; k < K; k++)
                    for (int r = 0; r < Rh; r++)
                        for (int s = 0; s < Sh; s++)
                            for (int j = 0; j < cw; j++)
                                *wk++ = w[(((size_t)k * C + b * cw + j) * R + py + stride * r) * S + px + stride * s];
        }
}

/* xp (G, C, Hp, Wp) = x (G, C, H, W) placed at row top, column left, zeros around. */
static void place_images(float *xp, int Hp, int Wp, int top, int left, const float *x, int G, int C, int H, int W) {
    memset(xp, 0, sizeof(float) * G * C * Hp * Wp);
    for (int n = 0; n < G * C; n++)
        for (int h = 0; h < H; h++)
            memcpy(xp + ((size_t)n * Hp + h + top) * Wp + left, x + ((size_t)n * H + h) * W, sizeof(float) * W);
}

static void pad_images(float *xp, const float *x, int G, int C, int H, int W, int pad) {
    place_images(xp, H + 2 * pad, W + 2 * pad, pad, pad, x, G, C, H, W);
}

/* Offsets of the G images' output pixels in the padded input (pix: the
 * tap (0,0) of pixel (n,p,q)) and in the output (out: (n, channel 0, p, q)),
 * and of the C*R*S taps (tap: channel c, row r, column s). */
static void offsets(Scratch *sc, int G, int Cin, int Hp, int Wp, int Kout, int R, int S, int stride, int P, int Q) {
    int i = 0;
    for (int n = 0; n < G; n++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++, i++) {
                sc->pix[i] = (n * Cin * Hp + stride * p) * Wp + stride * q;
                sc->out[i] = n * Kout * P * Q + p * Q + q;
            }
    int t = 0;
    for (int c = 0; c < Cin; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) sc->tap[t++] = (c * Hp + r) * Wp + s;
}

#ifdef __AVX512F__

/* y[out[i] + k*PQ] = bias[k] + sum_t wk[t][k] * xp[pix[i] + tap[t]] for the
 * npix pixels and Kout channels, in blocks of KV vectors (16*KV channels)
 * x NP pixels: 4 x 6 or 2 x 12, 24 accumulators either way. */
#define DEFINE_KVEC_CONV(KV, NP)                                                                               \
    static void kvec_conv_##KV(float *y, const float *xp, const float *wk, const float *bias, const int *pix,   \
                               const int *out, int npix, const int *tap, int taps, int Kout, int PQ) {         \
        float tile[NP][16 * KV];                                                                               \
        for (int kb = 0; kb < Kout / (16 * KV); kb++) {                                                        \
            const float *wb = wk + (size_t)kb * taps * 16 * KV;                                                \
            __m512 bv[KV];                                                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                               \
                bv[v] = bias ? _mm512_loadu_ps(bias + (kb * KV + v) * 16) : _mm512_setzero_ps();               \
            for (int i0 = 0; i0 < npix; i0 += NP) {                                                            \
                const int n = npix - i0 < NP ? npix - i0 : NP;                                                 \
                int o[NP];                                                                                     \
                _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) o[j] = pix[i0 + (j < n ? j : n - 1)];    \
                __m512 acc[KV][NP];                                                                            \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                           \
                    _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) acc[v][j] = bv[v];                   \
                const float *wt = wb;                                                                          \
                for (int t = 0; t < taps; t++, wt += 16 * KV) {                                                \
                    const float *base = xp + tap[t];                                                           \
                    __m512 wv[KV];                                                                             \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++) wv[v] = _mm512_loadu_ps(wt + 16 * v); \
                    _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) {                                    \
                        const __m512 xv = _mm512_set1_ps(base[o[j]]);                                          \
                        _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                   \
                            acc[v][j] = _mm512_fmadd_ps(wv[v], xv, acc[v][j]);                                 \
                    }                                                                                          \
                }                                                                                              \
                _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++)                                          \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                       \
                        _mm512_storeu_ps(tile[j] + 16 * v, acc[v][j]);                                         \
                for (int j = 0; j < n; j++) { /* (pixel, channel) -> NCHW */                                   \
                    float *yo = y + out[i0 + j] + (size_t)kb * 16 * KV * PQ;                                   \
                    for (int k = 0; k < 16 * KV; k++) yo[(size_t)k * PQ] = tile[j][k];                         \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_KVEC_CONV(4, 6)
DEFINE_KVEC_CONV(2, 12)

/* dw[k][t] += sum_i dyT[i][k] * xp[pix[i] + tap[t]] for the K channels and
 * the taps t: blocks of KV vectors of channels x NP taps. */
#define DEFINE_KVEC_DW(KV, NP)                                                                                 \
    static void kvec_dw_##KV(float *dw, const float *dyT, const float *xp, const int *pix, int npix,           \
                             const int *tap, int taps, int K) {                                                \
        float tile[NP][16 * KV];                                                                               \
        for (int kb = 0; kb < K / (16 * KV); kb++)                                                             \
            for (int t0 = 0; t0 < taps; t0 += NP) {                                                            \
                const int n = taps - t0 < NP ? taps - t0 : NP;                                                 \
                int o[NP];                                                                                     \
                _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) o[j] = tap[t0 + (j < n ? j : n - 1)];    \
                __m512 acc[KV][NP];                                                                            \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                           \
                    _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) acc[v][j] = _mm512_setzero_ps();     \
                const float *d = dyT + (size_t)kb * 16 * KV;                                                   \
                for (int i = 0; i < npix; i++, d += K) {                                                       \
                    const float *base = xp + pix[i];                                                           \
                    __m512 dv[KV];                                                                             \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++) dv[v] = _mm512_loadu_ps(d + 16 * v);  \
                    _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) {                                    \
                        const __m512 xv = _mm512_set1_ps(base[o[j]]);                                          \
                        _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                   \
                            acc[v][j] = _mm512_fmadd_ps(dv[v], xv, acc[v][j]);                                 \
                    }                                                                                          \
                }                                                                                              \
                _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++)                                          \
                    _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                       \
                        _mm512_storeu_ps(tile[j] + 16 * v, acc[v][j]);                                         \
                for (int j = 0; j < n; j++)                                                                    \
                    for (int k = 0; k < 16 * KV; k++) dw[(size_t)(kb * 16 * KV + k) * taps + t0 + j] += tile[j][k]; \
            }                                                                                                  \
    }
DEFINE_KVEC_DW(4, 6)
DEFINE_KVEC_DW(2, 12)

static void kvec_conv(float *y, const float *xp, const float *wk, const float *bias, const int *pix, const int *out,
                      int npix, const int *tap, int taps, int Kout, int PQ) {
    if (block_width(Kout) == 64) kvec_conv_4(y, xp, wk, bias, pix, out, npix, tap, taps, Kout, PQ);
    else kvec_conv_2(y, xp, wk, bias, pix, out, npix, tap, taps, Kout, PQ);
}

static void kvec_dw(float *dw, const float *dyT, const float *xp, const int *pix, int npix, const int *tap, int taps,
                    int K) {
    if (block_width(K) == 64) kvec_dw_4(dw, dyT, xp, pix, npix, tap, taps, K);
    else kvec_dw_2(dw, dyT, xp, pix, npix, tap, taps, K);
}

#else /* no AVX-512: conv2d_kvec_ok() is 0 and these are never reached */
static void kvec_conv(float *y, const float *xp, const float *wk, const float *bias, const int *pix, const int *out,
                      int npix, const int *tap, int taps, int Kout, int PQ) {
    (void)y, (void)xp, (void)wk, (void)bias, (void)pix, (void)out, (void)npix, (void)tap, (void)taps, (void)Kout,
        (void)PQ;
}
static void kvec_dw(float *dw, const float *dyT, const float *xp, const int *pix, int npix, const int *tap, int taps,
                    int K) {
    (void)dw, (void)dyT, (void)xp, (void)pix, (void)npix, (void)tap, (void)taps, (void)K;
}
#endif

void conv2d_kvec_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int R, int S, int stride, int pad) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    pad_images(sc.xp, x, G, C, H, W, pad);
    offsets(&sc, G, C, H + 2 * pad, W + 2 * pad, K, R, S, stride, P, Q);
    kvec_conv(y, sc.xp, sc.wk, bias, sc.pix, sc.out, G * P * Q, sc.tap, C * R * S, K, P * Q);
}

void conv2d_kvec_dx(float *dx, const float *dy, int G, float *scratch, int C, int H, int W, int K, int R, int S,
                    int stride, int pad) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    const DxPad d = dx_pad(H, W, R, S, stride, pad, P, Q);
    place_images(sc.xp, d.Pp, d.Qp, d.mh, d.mw, dy, G, K, P, Q);
    const float *wk = sc.wk;
    for (int py = 0; py < stride; py++)
        for (int px = 0; px < stride; px++) {
            /* dx[c,h,w] = sum_{k,r',s'} w[k,c,py+stride*r',px+stride*s'] dy[k, a-r', b-s']
             * over this phase's pixels, (h+pad, w+pad) = (stride*a+py, stride*b+px) */
            const int Rh = phase_taps(R, stride, py), Sh = phase_taps(S, stride, px);
            int t = 0, i = 0;
            for (int k = 0; k < K; k++)
                for (int r = 0; r < Rh; r++)
                    for (int s = 0; s < Sh; s++) sc.tap[t++] = (k * d.Pp + d.mh - r) * d.Qp + d.mw - s;
            for (int n = 0; n < G; n++)
                for (int h = 0; h < H; h++) {
                    if ((h + pad) % stride != py) continue;
                    for (int w = 0; w < W; w++) {
                        if ((w + pad) % stride != px) continue;
                        const int a = (h + pad) / stride, b = (w + pad) / stride;
                        sc.pix[i] = (n * K * d.Pp + a) * d.Qp + b;
                        sc.out[i++] = n * C * H * W + h * W + w;
                    }
                }
            if (i) kvec_conv(dx, sc.xp, wk, NULL, sc.pix, sc.out, i, sc.tap, t, C, H * W);
            wk += (size_t)C * t;
        }
}

void conv2d_kvec_dw(float *dw, const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K,
                    int R, int S, int stride, int pad) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad), PQ = P * Q;
    pad_images(sc.xp, x, G, C, H, W, pad);
    offsets(&sc, G, C, H + 2 * pad, W + 2 * pad, K, R, S, stride, P, Q);
    for (int n = 0; n < G; n++) /* dyT (G*PQ, K) */
        for (int k = 0; k < K; k++)
            for (int i = 0; i < PQ; i++) sc.dyT[((size_t)n * PQ + i) * K + k] = dy[((size_t)n * K + k) * PQ + i];
    kvec_dw(dw, sc.dyT, sc.xp, sc.pix, G * PQ, sc.tap, C * R * S, K);
}
