/* conv2d/kvec.c — direct AVX-512 convolution vectorised over output
 * channels, for deep layers with small outputs: kaggle-deep's 3x3 layers
 * at 7x7 and its 5x5/2 layers to 14x14, 7x7 and 4x4 (stride 1 or 2, any
 * padding), and the weight gradient of deep 14x14 layers.
 *
 * Why: the row kernels of conv2d/direct.c put an output row in a vector,
 * which wastes 9 of 16 lanes on a 7-pixel row; im2col + sgemm ran these
 * layers at 43-66 % of peak (the col copy is R*S times the input, and the
 * BLAS repacks it). Here a register block is 64 output channels (4
 * vectors) x 6 output pixels; for every tap (c, r, s) of the reduction
 * it loads the 4 weight vectors w[c,r,s][k0:k0+64] and broadcasts the 6
 * input values the pixels see at that tap:
 *     y[k0:k0+64, pix] += w[:, c, r, s] * xpad[c, stride*p + r, stride*q + s]
 * 24 accumulators, 10 loads per 24 FMAs, no masks, no lane reductions.
 * Pixels are numbered across a group of G images, so a 7x7 output wastes
 * no lanes on its odd size (only the group's last block is partial). The
 * input is zero-padded once per group, so every tap reads memory.
 *
 * K not a multiple of 64 takes blocks of 32 channels x 12 pixels.
 *
 * Backward:
 *   - dx is this kernel once per phase (py, px) of the input pixel: with
 *     h + pad = stride*a + py, dx[c,h,w] = sum over k and the phase's taps
 *     (py + stride*r', px + stride*s') of w * dy[k, a - r', b - s'] on dy
 *     zero-padded (no zero taps, any stride, no flipped copy);
 *   - dw[k, tap] += sum_pix dy[k, pix] * xpad[pix + tap]: the same block
 *     with the roles turned: 64 channels x 6 taps of accumulators, the
 *     loop over the group's pixels, dy transposed to (pixel, K) so its 64
 *     channels are one contiguous row.
 * bf16 runs: the same loops on pair words with vdpbf16ps (twice the FP32
 * FMA rate here): pairs of input channels for the forward, of output
 * channels for dx, of images for dw (see "bf16 pair words" below).
 * Left out: K (or C for dx) not a multiple of 32, builds without AVX-512
 * (conv2d_kvec_ok says no).
 */
#include "ops/conv2d/kvec.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define KVEC_BF16 1
#else
#define KVEC_BF16 0
#endif

#define NPX 12        /* the most pixels (forward) or taps (dw) per register block */
#define GROUP_PIX 384 /* pixels per call: G = ceil(GROUP_PIX / PQ) images */

static inline int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Output channels per register block: 64 (4 vectors x 6 pixels) where
 * they divide the layer's, else 32 (2 x 12); 0: neither fits. */
static inline int block_width(int Kout) { return Kout % 64 == 0 ? 64 : Kout % 32 == 0 ? 32 : 0; }

int conv2d_kvec_ok(int C, int H, int W, int K, int R, int S, int stride, int pad, int bf16) {
#ifdef __AVX512F__
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    /* bf16 runs: 14x14 too where the reduction is long enough (64->64 3x3:
     * 275 GFLOP/s forward on one core against 180 for the bf16 product;
     * 32->64 ties, and 28x28 loses to the fp32 row kernels) */
    if (bf16 && KVEC_BF16 && block_width(K) && P > 0 && Q > 0 && Q <= 16 && C * R * S >= 576 && stride <= 2)
        return 1;
    /* measured (bench_kernels, README): 7x7 and 4x4 outputs, and stride 2
     * to 14x14 (kaggle-deep's 32->32 5x5/2: 149 GFLOP/s forward on one core
     * against 103 on the input's phases); stride-1 outputs of 8 and more
     * columns run as fast or faster on the row kernels of conv2d/direct.c */
    return block_width(K) && P > 0 && Q > 0 && (Q < 8 || (stride == 2 && Q <= 16)) && C * R * S >= 256 &&
           stride <= 2;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad, (void)bf16;
    return 0;
#endif
}

int conv2d_kvec_dw_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    /* the weight gradient also at 14x14, where the row kernels' dw runs at
     * 59-66 % of peak against their forward's 75-85 % (measured, README) */
    const int Q = out_size(W, S, stride, pad);
    return conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, 0) ||
           (block_width(K) && Q > 0 && Q <= 16 && out_size(H, R, stride, pad) > 0 && C * R * S >= 256 && stride <= 2);
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;  /* the kernels are AVX-512 only (kvec_dw below is a stub without) */
#endif
}

int conv2d_kvec_dx_ok(int C, int H, int W, int K, int R, int S, int stride, int pad, int bf16) {
    return conv2d_kvec_ok(C, H, W, K, R, S, stride, pad, bf16) && block_width(C);
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
    uint32_t *wb; /* bf16 runs: wk as pair words along the reduction channels */
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

/* Floats of each area, in layout order (sizes[5]: the tap table, [6]: the
 * bf16 weights). */
#define AREAS 7
static void areas(size_t sizes[AREAS], int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int G = conv2d_kvec_group(C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    const DxPad d = dx_pad(H, W, R, S, stride, pad, P, Q);
    const size_t xp_fwd = (size_t)G * C * (H + 2 * pad) * (W + 2 * pad);
    const size_t xp_dx = (size_t)G * K * d.Pp * d.Qp;
    const size_t npix = (size_t)G * max_z((size_t)P * Q, (size_t)H * W) + NPX;
    sizes[0] = (size_t)K * C * R * S;      /* packed weights (K and, for dx, C multiples of 32) */
    sizes[1] = max_z(xp_fwd, xp_dx);       /* padded images */
    sizes[2] = (size_t)(G + (G + 1) / 2) * P * Q * K; /* dy transposed (fp32, then bf16 image pairs) */
    sizes[3] = sizes[4] = npix;            /* pixel and output offsets */
    sizes[5] = (size_t)max_z(C, K) * R * S + NPX; /* tap offsets */
    sizes[6] = (size_t)K * C * R * S / 2 + (size_t)max_z(C, K) * R * S; /* pair words, odd channel counts padded */
}

static Scratch carve(float *s, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t z[AREAS];
    areas(z, C, H, W, K, R, S, stride, pad);
    Scratch sc;
    sc.wk = s;
    sc.xp = sc.wk + z[0];
    sc.dyT = sc.xp + z[1];
    sc.pix = (int *)(sc.dyT + z[2]);
    sc.out = sc.pix + z[3];
    sc.tap = sc.out + z[4];
    sc.wb = (uint32_t *)(sc.tap + z[5]);
    return sc;
}

size_t conv2d_kvec_floats(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    size_t z[AREAS], total = 0;
    areas(z, C, H, W, K, R, S, stride, pad);
    for (int i = 0; i < AREAS; i++) total += z[i];
    return total;
}

/* ---- bf16 pair words ------------------------------------------------------
 * vdpbf16ps multiplies pairs along the reduction: lane k gets
 * w[k][c]*x[c] + w[k][c+1]*x[c+1] from the weight pair word (w[k][c],
 * w[k][c+1]) and the broadcast input pair word (x[c], x[c+1]). So bf16
 * runs store the padded input as pair words of channels (2c', 2c'+1) at
 * each position, and the packed weights likewise; an odd channel count
 * pairs its last channel with zero. Rounding: nearest even (vcvtneps2bf16),
 * as gemm_bf16 and PyTorch's autocast. */

/* dst[i] = (bf16(lo[i]), bf16(hi[i])) for i < n; hi NULL: the high half 0. */
static void pair_row(uint32_t *dst, const float *lo, const float *hi, size_t n) {
#if KVEC_BF16
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
        const __m256i l = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, lo + i));
        __m512i v = _mm512_cvtepu16_epi32(l);
        if (hi) {
            const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, hi + i));
            v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
        _mm512_mask_storeu_epi32(dst + i, m, v);
    }
#else
    (void)dst, (void)lo, (void)hi, (void)n;
#endif
}

/* xp (G, ceil(C/2), Hp, Wp) pair words = x (G, C, H, W) placed at row top,
 * column left, zeros around. */
static void place_pairs(uint32_t *xp, int Hp, int Wp, int top, int left, const float *x, int G, int C, int H, int W) {
    const int Cp = (C + 1) / 2;
    memset(xp, 0, sizeof(uint32_t) * G * Cp * Hp * Wp);
    const size_t HW = (size_t)H * W, total = (size_t)G * C * HW;
    (void)total;  /* the prefetch's bound, AVX-512 builds only */
    for (int n = 0; n < G; n++)
        for (int cp = 0; cp < Cp; cp++) {
            const float *lo = x + ((size_t)n * C + 2 * cp) * HW;
            const float *hi = 2 * cp + 1 < C ? lo + HW : NULL;
#ifdef __AVX512F__
            /* the next pair's planes on their way while this one converts:
             * the loads stalled on memory (~15 % of the kvec layers' time) */
            const size_t next = (size_t)(lo - x) + 2 * HW;
            for (size_t i = next; i < next + 2 * HW && i < total; i += 16) _mm_prefetch((const char *)(x + i), _MM_HINT_T0);
#endif
            for (int h = 0; h < H; h++)
                pair_row(xp + (((size_t)n * Cp + cp) * Hp + h + top) * Wp + left, lo + (size_t)h * W,
                         hi ? hi + (size_t)h * W : NULL, W);
        }
}

/* wb = the packed fp32 weights wk ([block][ci][T taps][kw], Ci reduction
 * channels) as pair words along ci: wb[block][ci'][T][kw]. Returns the
 * words written. */
static size_t pair_weights(uint32_t *wb, const float *wk, int blocks, int Ci, int T, int kw) {
    const int Cp = (Ci + 1) / 2;
    const size_t row = (size_t)T * kw;
    for (int b = 0; b < blocks; b++)
        for (int cp = 0; cp < Cp; cp++) {
            const float *lo = wk + ((size_t)b * Ci + 2 * cp) * row;
            pair_row(wb + ((size_t)b * Cp + cp) * row, lo, 2 * cp + 1 < Ci ? lo + row : NULL, row);
        }
    return (size_t)blocks * Cp * row;
}

/* Taps of phase (py, px) of the dx pass: rows r = py + stride*r' < R. */
static int phase_taps(int R, int stride, int py) { return py < R ? (R - 1 - py) / stride + 1 : 0; }

/* Forward: wk[kb][c][r][s][64] = w[kb*64 + j][c][r][s]. dx: the output
 * channels are c, the reduction runs over k and, per phase (py, px) of
 * the input pixel, over that phase's taps; phase after phase,
 * wk[phase][cb][k][r'][s'][64] = w[k][cb*64 + j][py + stride*r'][px + stride*s']. */
void conv2d_kvec_pack(float *scratch, const float *w, int C, int H, int W, int K, int R, int S, int stride, int pad,
                      int dx, int bf16) {
    const Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    float *wk = sc.wk;
    if (!dx) {
        const int kw = block_width(K);
        for (int b = 0; b < K / kw; b++)
            for (int c = 0; c < C; c++)
                for (int t = 0; t < R * S; t++)
                    for (int j = 0; j < kw; j++)
                        *wk++ = w[((size_t)(b * kw + j) * C + c) * R * S + t];
        if (bf16) pair_weights(sc.wb, sc.wk, K / kw, C, R * S, kw);
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
    if (!bf16) return;
    const int cw = block_width(C);
    const float *src = sc.wk;
    uint32_t *dst = sc.wb;
    for (int py = 0; py < stride; py++)
        for (int px = 0; px < stride; px++) { /* each phase's [cb][k][r'][s'][cw] as pairs along k */
            const int T = phase_taps(R, stride, py) * phase_taps(S, stride, px);
            dst += pair_weights(dst, src, C / cw, K, T, cw);
            src += (size_t)C * K * T;
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

/* Offsets of the Cin*R*S taps in the padded input: channel c, row r, column s. */
static void tap_offsets(int *tap, int Cin, int Hp, int Wp, int R, int S) {
    int t = 0;
    for (int c = 0; c < Cin; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) tap[t++] = (c * Hp + r) * Wp + s;
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
    tap_offsets(sc->tap, Cin, Hp, Wp, R, S);
}

#ifdef __AVX512F__

/* The register block both passes share: KV vectors (16*KV channels) x NP
 * columns of accumulators, 4 x 6 or 2 x 12 (24 either way),
 *     tile[j][:] = init + sum_r vec[r][:] * xp[base[r] + o[j]]
 * over n reduction steps r (vec rows vstride elements apart). Forward and
 * dx: r runs over the taps (vec = the packed weights, base = the tap
 * offsets) and the columns are pixels; dw: r runs over the pixels (vec =
 * dy transposed, base = the pixel offsets) and the columns are taps. TX is
 * the element of vec and xp: float (FMAs), or a bf16 pair word
 * (vdpbf16ps: two products per lane). */
#define DEFINE_KVEC_BLOCK(NAME, KV, NP, TX, VT, LOADW, BCAST, MADD)                                           \
    static inline __attribute__((always_inline)) void NAME(float tile[NP][16 * KV], const __m512 init[KV],     \
                                                           const TX *vec, size_t vstride, const int *base,     \
                                                           int n, const TX *xp, const int o[NP]) {             \
        __m512 acc[KV][NP];                                                                                    \
        _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++)                                                   \
            _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++)                                              \
                acc[v][j] = init ? init[v] : _mm512_loadu_ps(tile[j] + 16 * v);                                \
        /* a pointer per column, the step's offset the index: each broadcast is \
         * one base + index load, no address arithmetic beside the FMAs */     \
        const TX *col[NP];                                                                                     \
        _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) col[j] = xp + o[j];                              \
        for (int r = 0; r < n; r++, vec += vstride) {                                                          \
            const ptrdiff_t at = base[r];                                                                      \
            VT vv[KV];                                                                                         \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++) vv[v] = LOADW(vec + 16 * v);                  \
            _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++) {                                            \
                const VT xv = BCAST(col[j][at]);                                                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++) acc[v][j] = MADD(acc[v][j], vv[v], xv);   \
            }                                                                                                  \
        }                                                                                                      \
        _Pragma("GCC unroll 12") for (int j = 0; j < NP; j++)                                                  \
            _Pragma("GCC unroll 4") for (int v = 0; v < KV; v++) _mm512_storeu_ps(tile[j] + 16 * v, acc[v][j]); \
    }

/* y[out[i] + k*PQ] = bias[k] + sum_t wk[t][k] * xp[pix[i] + tap[t]] for the
 * npix pixels and Kout channels, NP pixels per block.
 * The reduction runs in chunks of CHUNK_TAPS taps whose weights (24 KB)
 * stay in L1 while up to SUPER blocks of pixels use them, the partial sums
 * parked in `part` between chunks: run whole, a block streamed the layer's
 * weights (up to 590 KB) from L2 once per NP pixels. Parking and reloading
 * an accumulator does not change it, so the sums are those of one pass. */
#define SUPER 9 /* pixel blocks per chunk pass: a 7x7 output's 49 pixels at NP = 6 */
#define CHUNK_TAPS(KV) (6144 / (16 * (KV)))
#define DEFINE_KVEC_CONV(NAME, BLOCK, KV, NP, TX)                                                              \
    static void NAME(float *y, const TX *xp, const TX *wk, const float *bias, const int *pix, const int *out,  \
                     int npix, const int *tap, int taps, int Kout, int PQ) {                                   \
        float part[SUPER][NP][16 * KV];                                                                        \
        const int chunk = CHUNK_TAPS(KV);                                                                      \
        for (int kb = 0; kb < Kout / (16 * KV); kb++) {                                                        \
            __m512 bv[KV];                                                                                     \
            for (int v = 0; v < KV; v++)                                                                       \
                bv[v] = bias ? _mm512_loadu_ps(bias + (kb * KV + v) * 16) : _mm512_setzero_ps();               \
            const TX *wb = wk + (size_t)kb * taps * 16 * KV;                                                   \
            for (int s0 = 0; s0 < npix; s0 += SUPER * NP) {                                                    \
                const int left = npix - s0, nb = left < SUPER * NP ? (left + NP - 1) / NP : SUPER;             \
                for (int t0 = 0; t0 < taps; t0 += chunk) {                                                     \
                    const int tn = taps - t0 < chunk ? taps - t0 : chunk;                                      \
                    for (int b = 0; b < nb; b++) {                                                             \
                        const int i0 = s0 + b * NP, n = npix - i0 < NP ? npix - i0 : NP;                       \
                        int o[NP]; /* the group's last block repeats its last pixel, not stored */             \
                        for (int j = 0; j < NP; j++) o[j] = pix[i0 + (j < n ? j : n - 1)];                     \
                        BLOCK(part[b], t0 ? NULL : bv, wb + (size_t)t0 * 16 * KV, 16 * KV, tap + t0, tn, xp, o); \
                    }                                                                                          \
                }                                                                                              \
                for (int b = 0; b < nb; b++) {                                                                 \
                    const int i0 = s0 + b * NP, n = npix - i0 < NP ? npix - i0 : NP;                           \
                    for (int j = 0; j < n; j++) { /* (pixel, channel) -> NCHW */                               \
                        float *yo = y + out[i0 + j] + (size_t)kb * 16 * KV * PQ;                               \
                        for (int k = 0; k < 16 * KV; k++) yo[(size_t)k * PQ] = part[b][j][k];                  \
                    }                                                                                          \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

/* dw[k][t] += sum_i dyT[i][k] * xp[pix[i] + tap[t]] for the K channels and
 * the taps t, NP taps per block. bf16: dyT and xp hold pair words of two
 * images (the sum runs over image pairs). */
#define DEFINE_KVEC_DW(NAME, BLOCK, KV, NP, TX)                                                                \
    static void NAME(float *dw, const TX *dyT, const TX *xp, const int *pix, int npix, const int *tap,         \
                     int taps, int K) {                                                                        \
        float tile[NP][16 * KV];                                                                               \
        const __m512 zero[KV] = {0};                                                                           \
        for (int kb = 0; kb < K / (16 * KV); kb++)                                                             \
            for (int t0 = 0; t0 < taps; t0 += NP) {                                                            \
                const int n = taps - t0 < NP ? taps - t0 : NP;                                                 \
                int o[NP];                                                                                     \
                for (int j = 0; j < NP; j++) o[j] = tap[t0 + (j < n ? j : n - 1)];                             \
                BLOCK(tile, zero, dyT + (size_t)kb * 16 * KV, K, pix, npix, xp, o);                            \
                for (int j = 0; j < n; j++)                                                                    \
                    for (int k = 0; k < 16 * KV; k++) dw[(size_t)(kb * 16 * KV + k) * taps + t0 + j] += tile[j][k]; \
            }                                                                                                  \
    }

/* Both block shapes of one element type: kvec_conv<SUF>_4/_2, kvec_dw<SUF>_4/_2. */
#define DEFINE_KVEC_KERNELS(SUF, TX, VT, LOADW, BCAST, MADD)                                                   \
    DEFINE_KVEC_BLOCK(block##SUF##_4, 4, 6, TX, VT, LOADW, BCAST, MADD)                                         \
    DEFINE_KVEC_BLOCK(block##SUF##_2, 2, 12, TX, VT, LOADW, BCAST, MADD)                                        \
    DEFINE_KVEC_CONV(kvec_conv##SUF##_4, block##SUF##_4, 4, 6, TX)                                              \
    DEFINE_KVEC_CONV(kvec_conv##SUF##_2, block##SUF##_2, 2, 12, TX)                                             \
    DEFINE_KVEC_DW(kvec_dw##SUF##_4, block##SUF##_4, 4, 6, TX)                                                  \
    DEFINE_KVEC_DW(kvec_dw##SUF##_2, block##SUF##_2, 2, 12, TX)

#define FMA_PS(acc, w, x) _mm512_fmadd_ps(w, x, acc)
DEFINE_KVEC_KERNELS(, float, __m512, _mm512_loadu_ps, _mm512_set1_ps, FMA_PS)
#if KVEC_BF16
#define SET1_PAIR(u) _mm512_set1_epi32((int)(u))
#define DP_BF16(acc, w, x) _mm512_dpbf16_ps(acc, (__m512bh)(w), (__m512bh)(x))
DEFINE_KVEC_KERNELS(_bf16, uint32_t, __m512i, _mm512_loadu_si512, SET1_PAIR, DP_BF16)
#endif

static void kvec_conv(float *y, const float *xp, const float *wk, const float *bias, const int *pix, const int *out,
                      int npix, const int *tap, int taps, int Kout, int PQ) {
    if (block_width(Kout) == 64) kvec_conv_4(y, xp, wk, bias, pix, out, npix, tap, taps, Kout, PQ);
    else kvec_conv_2(y, xp, wk, bias, pix, out, npix, tap, taps, Kout, PQ);
}

/* The same on pair words (taps: pairs of reduction channels x R x S). */
static void kvec_conv_bf16(float *y, const uint32_t *xp, const uint32_t *wb, const float *bias, const int *pix,
                           const int *out, int npix, const int *tap, int taps, int Kout, int PQ) {
#if KVEC_BF16
    if (block_width(Kout) == 64) kvec_conv_bf16_4(y, xp, wb, bias, pix, out, npix, tap, taps, Kout, PQ);
    else kvec_conv_bf16_2(y, xp, wb, bias, pix, out, npix, tap, taps, Kout, PQ);
#else
    (void)y, (void)xp, (void)wb, (void)bias, (void)pix, (void)out, (void)npix, (void)tap, (void)taps, (void)Kout,
        (void)PQ;
#endif
}

static void kvec_dw(float *dw, const float *dyT, const float *xp, const int *pix, int npix, const int *tap, int taps,
                    int K) {
    if (block_width(K) == 64) kvec_dw_4(dw, dyT, xp, pix, npix, tap, taps, K);
    else kvec_dw_2(dw, dyT, xp, pix, npix, tap, taps, K);
}

static void kvec_dw_bf16(float *dw, const uint32_t *dyT, const uint32_t *xp, const int *pix, int npix, const int *tap,
                         int taps, int K) {
#if KVEC_BF16
    if (block_width(K) == 64) kvec_dw_bf16_4(dw, dyT, xp, pix, npix, tap, taps, K);
    else kvec_dw_bf16_2(dw, dyT, xp, pix, npix, tap, taps, K);
#else
    (void)dw, (void)dyT, (void)xp, (void)pix, (void)npix, (void)tap, (void)taps, (void)K;
#endif
}

#else /* no AVX-512: conv2d_kvec_ok() is 0 and these are never reached */
static void kvec_dw_bf16(float *dw, const uint32_t *dyT, const uint32_t *xp, const int *pix, int npix, const int *tap,
                         int taps, int K) {
    (void)dw, (void)dyT, (void)xp, (void)pix, (void)npix, (void)tap, (void)taps, (void)K;
}
static void kvec_conv_bf16(float *y, const uint32_t *xp, const uint32_t *wb, const float *bias, const int *pix,
                           const int *out, int npix, const int *tap, int taps, int Kout, int PQ) {
    (void)y, (void)xp, (void)wb, (void)bias, (void)pix, (void)out, (void)npix, (void)tap, (void)taps, (void)Kout,
        (void)PQ;
}
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
                         int K, int R, int S, int stride, int pad, int bf16) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad), Hp = H + 2 * pad, Wp = W + 2 * pad;
    if (bf16) { /* channels in pairs: ceil(C/2) planes of pair words */
        const int Cp = (C + 1) / 2;
        place_pairs((uint32_t *)sc.xp, Hp, Wp, pad, pad, x, G, C, H, W);
        offsets(&sc, G, Cp, Hp, Wp, K, R, S, stride, P, Q);
        kvec_conv_bf16(y, (const uint32_t *)sc.xp, sc.wb, bias, sc.pix, sc.out, G * P * Q, sc.tap, Cp * R * S, K,
                       P * Q);
        return;
    }
    pad_images(sc.xp, x, G, C, H, W, pad);
    offsets(&sc, G, C, Hp, Wp, K, R, S, stride, P, Q);
    kvec_conv(y, sc.xp, sc.wk, bias, sc.pix, sc.out, G * P * Q, sc.tap, C * R * S, K, P * Q);
}

/* One image, output rows p0..p1-1 of all K channels, fp32: only the rows of
 * the padded input that those output rows read are written into the slice
 * (its other rows are never read). y is the whole (K, P, Q) output. */
void conv2d_kvec_forward_rows(float *y, const float *x, const float *bias, float *scratch, int C, int H, int W, int K,
                              int R, int S, int stride, int pad, int p0, int p1) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad), Hp = H + 2 * pad, Wp = W + 2 * pad;
    const int h0 = stride * p0, h1 = stride * (p1 - 1) + R; /* padded rows h0..h1-1 */
    for (int c = 0; c < C; c++)
        for (int hp = h0; hp < h1; hp++) {
            float *row = sc.xp + ((size_t)c * Hp + hp) * Wp;
            const int h = hp - pad;
            if (h < 0 || h >= H) {
                memset(row, 0, sizeof(float) * Wp);
                continue;
            }
            memset(row, 0, sizeof(float) * pad);
            memcpy(row + pad, x + ((size_t)c * H + h) * W, sizeof(float) * W);
            memset(row + pad + W, 0, sizeof(float) * pad);
        }
    int i = 0;
    for (int p = p0; p < p1; p++)
        for (int q = 0; q < Q; q++, i++) {
            sc.pix[i] = stride * p * Wp + stride * q;
            sc.out[i] = p * Q + q;
        }
    tap_offsets(sc.tap, C, Hp, Wp, R, S);
    if (i) kvec_conv(y, sc.xp, sc.wk, bias, sc.pix, sc.out, i, sc.tap, C * R * S, K, P * Q);
}

void conv2d_kvec_dx(float *dx, const float *dy, int G, float *scratch, int C, int H, int W, int K, int R, int S,
                    int stride, int pad, int bf16) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad);
    const DxPad d = dx_pad(H, W, R, S, stride, pad, P, Q);
    const int Kr = bf16 ? (K + 1) / 2 : K; /* planes of the reduction: channels, or pairs of them */
    if (bf16) place_pairs((uint32_t *)sc.xp, d.Pp, d.Qp, d.mh, d.mw, dy, G, K, P, Q);
    else place_images(sc.xp, d.Pp, d.Qp, d.mh, d.mw, dy, G, K, P, Q);
    const float *wk = sc.wk;
    const uint32_t *wb = sc.wb;
    for (int py = 0; py < stride; py++)
        for (int px = 0; px < stride; px++) {
            /* dx[c,h,w] = sum_{k,r',s'} w[k,c,py+stride*r',px+stride*s'] dy[k, a-r', b-s']
             * over this phase's pixels, (h+pad, w+pad) = (stride*a+py, stride*b+px) */
            const int Rh = phase_taps(R, stride, py), Sh = phase_taps(S, stride, px);
            int t = 0, i = 0;
            for (int k = 0; k < Kr; k++)
                for (int r = 0; r < Rh; r++)
                    for (int s = 0; s < Sh; s++) sc.tap[t++] = (k * d.Pp + d.mh - r) * d.Qp + d.mw - s;
            for (int n = 0; n < G; n++)
                for (int h = 0; h < H; h++) {
                    if ((h + pad) % stride != py) continue;
                    for (int w = 0; w < W; w++) {
                        if ((w + pad) % stride != px) continue;
                        const int a = (h + pad) / stride, b = (w + pad) / stride;
                        sc.pix[i] = (n * Kr * d.Pp + a) * d.Qp + b;
                        sc.out[i++] = n * C * H * W + h * W + w;
                    }
                }
            if (i && bf16) kvec_conv_bf16(dx, (const uint32_t *)sc.xp, wb, NULL, sc.pix, sc.out, i, sc.tap, t, C, H * W);
            else if (i) kvec_conv(dx, sc.xp, wk, NULL, sc.pix, sc.out, i, sc.tap, t, C, H * W);
            wk += (size_t)C * K * Rh * Sh, wb += (size_t)C * t; /* t = Kr*Rh*Sh */
        }
}

void conv2d_kvec_dw(float *dw, const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K,
                    int R, int S, int stride, int pad, int bf16) {
    Scratch sc = carve(scratch, C, H, W, K, R, S, stride, pad);
    const int P = out_size(H, R, stride, pad), Q = out_size(W, S, stride, pad), PQ = P * Q;
    const int Hp = H + 2 * pad, Wp = W + 2 * pad;
    for (int n = 0; n < G; n++) /* dyT (G*PQ, K) */
        for (int k = 0; k < K; k++)
            for (int i = 0; i < PQ; i++) sc.dyT[((size_t)n * PQ + i) * K + k] = dy[((size_t)n * K + k) * PQ + i];
    if (bf16) { /* the reduction runs over image pairs: (image 2m, image 2m+1) pair words */
        const int G2 = (G + 1) / 2;
        uint32_t *xq = (uint32_t *)sc.xp, *dq = (uint32_t *)(sc.dyT + (size_t)G * PQ * K);
        memset(xq, 0, sizeof(uint32_t) * G2 * C * Hp * Wp);
        for (int m = 0; m < G2; m++) {
            const int odd = 2 * m + 1 < G; /* the last image of an odd group pairs with zeros */
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++) {
                    const float *lo = x + (((size_t)2 * m * C + c) * H + h) * W;
                    pair_row(xq + (((size_t)m * C + c) * Hp + h + pad) * Wp + pad, lo,
                             odd ? lo + (size_t)C * H * W : NULL, W);
                }
            for (int i = 0; i < PQ; i++) {
                const float *lo = sc.dyT + ((size_t)2 * m * PQ + i) * K;
                pair_row(dq + ((size_t)m * PQ + i) * K, lo, odd ? lo + (size_t)PQ * K : NULL, K);
            }
        }
        offsets(&sc, G2, C, Hp, Wp, K, R, S, stride, P, Q);
        kvec_dw_bf16(dw, dq, xq, sc.pix, G2 * PQ, sc.tap, C * R * S, K);
        return;
    }
    pad_images(sc.xp, x, G, C, H, W, pad);
    offsets(&sc, G, C, Hp, Wp, K, R, S, stride, P, Q);
    kvec_dw(dw, sc.dyT, sc.xp, sc.pix, G * PQ, sc.tap, C * R * S, K);
}
