/* conv2d/wino.c — 3x3 stride-1 convolution by Winograd F(2x2, 3x3)
 * (Lavin & Gray 2015), AVX-512, fp32: forward, input and weight gradients.
 *
 * Why: a 3x3 layer costs 9 multiply-adds per output pixel and channel
 * pair; F(2x2,3x3) computes a 2x2 output tile from a 4x4 input patch with
 * 16, i.e. 4 per pixel. The direct row kernels (conv2d/direct.c) ran
 * cnn-bn's 32->32 at 28x28 and 64->64 at 14x14 at ~80 % of peak; here the
 * same work is 2.25x fewer FMAs plus two cheap transforms.
 *
 *   U = G g G^T   (each 3x3 filter to 4x4, once per call)
 *   V = B^T d B   (each 4x4 input patch, tiles 2 apart)
 *   M[pos] (K, tiles) = U[pos] (K,C) . V[pos] (C, tiles)  for the 16 pos
 *   y tile = A^T M A   (2x2 outputs)
 *
 * Forward layout: tiles are the vector lanes. A "tile vector" is one row
 * of tiles of one image (16 lanes: outputs 16..30 wide), or the same row
 * of tiles of two images (8 lanes each: outputs up to 14 wide), so a 28x28
 * output uses 14 of 16 lanes and a 14x14 one 14 of 16. The input is first
 * copied zero-padded with each row's even and odd columns apart
 * (pad_deinterleave), so a tile's columns 2t..2t+3 are four plain loads;
 * the output transform interleaves the even and odd outputs back with a
 * permute. The product's register block is 8 output channels x 3 tile
 * vectors: per input channel 3 loads, 8 broadcasts, 24 FMAs. Tile vectors
 * are numbered across a group of G images, so 14x14 layers fill their
 * blocks too.
 *
 * The input gradient of a 3x3 stride-1 layer is the same convolution of
 * dy with the filters turned 180 degrees and C and K swapped, padding
 * 2 - pad: conv2d_wino_pack(dx = 1) and the forward kernel.
 * The weight gradient follows from y = A^T (U .* V) A being linear in U:
 * dL/dU = sum over tiles of (A dy A^T) .* V, and dw = G^T (dL/dU) G, once
 * per filter after the sum. Its product is a reduction over tiles, so
 * there the lanes are channels (x and dy copied channels-last by 16x16
 * transposes) and dy's transformed values are broadcast: 16 accumulators
 * for 16 or 32 input channels (conv2d_wino_dw_ok).
 * Accuracy: the transforms add and subtract (no large constants in
 * F(2x2,3x3)), so results match the direct kernels to a few ulps of the
 * sums (tests/test_ops_ref.c checks against the double reference).
 * bf16 runs (forward and dx): the transforms stay fp32, and V and U are
 * rounded to bf16 pair words along the channels (nearest even, as
 * everywhere in bf16 runs), so the product is vdpbf16ps: per channel pair
 * the same 3 loads, 8 broadcasts and 24 instructions as fp32 spends per
 * channel — half the product's time. The weight gradient stays fp32.
 * Left out: other kernel sizes and strides, F(4x4,3x3) here (larger
 * constants, worse fp32 error; inference batches: conv2d/wino4.c), the weight gradient of layers with 64
 * or more input channels (the kvec kernels' is faster there).
 */
#include "ops/conv2d/wino.h"

#include <stdint.h>
#include <string.h>

#include "ops/conv2d/wino_product.h"
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#define WINO_BF16 1
#else
#define WINO_BF16 0
#endif

#define MIN_VECTORS 12 /* tile vectors per call: G = ceil(12 / vectors per image) */

typedef struct {
    int P, Q;   /* output size */
    int TH, TW; /* tiles: rows, columns */
    int pair;   /* two images side by side in a vector (8 lanes each)? */
    int hp;     /* padded input rows */
    int slots;  /* image slots (one image, or a pair) per call */
} Geometry;

static Geometry geometry(int H, int W, int pad) {
    Geometry g;
    g.P = H + 2 * pad - 2;
    g.Q = W + 2 * pad - 2;
    g.TH = g.P / 2;
    g.TW = g.Q / 2;
    g.pair = g.TW <= 7;
    g.hp = g.P + 2;
    g.slots = (MIN_VECTORS + g.TH - 1) / g.TH;
    return g;
}

int conv2d_wino_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    if (R != 3 || S != 3 || stride != 1 || pad < 0 || pad > 2 || K % KB != 0 || C < 16) return 0;
    const int P = H + 2 * pad - 2, Q = W + 2 * pad - 2;
    /* even outputs only (whole 2x2 tiles); the rows of one padded row fit
     * the two loads of the input transform: Q + 1 < 32 */
    return P >= 2 && Q >= 2 && P % 2 == 0 && Q % 2 == 0 && Q <= 30;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_wino_group(int C, int H, int W, int pad) {
    (void)C;
    const Geometry g = geometry(H, W, pad);
    return g.slots * (g.pair ? 2 : 1);
}

/* Scratch areas, in this order: U (16,K/KB,C,KB) | padded images
 * (slots,C,hp,32) + 16 floats the last unaligned loads may touch | V block
 * (16,C,VB,16) | M block (16,KB,VB,16). */
static size_t weight_floats(int C, int K) { return (size_t)16 * K * C; }
static size_t image_floats(int C, int H, int W, int pad) {
    const Geometry g = geometry(H, W, pad);
    return (size_t)g.slots * C * g.hp * 32 + 16;
}
/* V positions sit vpos_stride floats apart: one cache line more than they
 * take, so the input transform's 16 stores do not alias in 4 KiB */
static size_t vpos_stride(int C) { return (size_t)C * VB * 16 + 16; }
static size_t vblock_floats(int C) { return 16 * vpos_stride(C); }
#define MPOS_STRIDE (KB * VB * 16 + 16) /* M's positions, likewise */

size_t conv2d_wino_floats(int C, int H, int W, int K, int pad) {
    return weight_floats(C, K) + image_floats(C, H, W, pad) + vblock_floats(C) + 16 * MPOS_STRIDE;
}

/* ---- weight gradient: sizes ----------------------------------------------
 * Channels are the lanes here (tiles are scalars of the reduction), so the
 * product reuses each loaded vector of V for 16/CV filters' broadcasts.
 * Scratch: S (16,K,C) | x channels-last, zero-padded (G, P+2, Q+2, C) |
 * dy channels-last (G, P, Q, K) | V of a chunk of tiles (16, tiles, C) | D
 * likewise (16, tiles, K); a chunk's V and D stay within 512 KiB. */
#define DW_CHUNK_FLOATS (128 * 1024)

int conv2d_wino_dw_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
    /* C = 16 or 32 (one or two vectors of channels); at C = 64 (64->64 at
     * 14x14, one core) 6.4 ms against 5.6 for the kvec kernels' dw */
    return conv2d_wino_ok(C, H, W, K, R, S, stride, pad) && (C == 16 || C == 32) && K % 16 == 0;
}

int conv2d_wino_dw_group(int C, int H, int W, int K, int pad) {
    (void)C, (void)K, (void)pad;
    return H * W >= 784 ? 1 : 784 / (H * W);
}

static int dw_chunk_tiles(int C, int K) { return DW_CHUNK_FLOATS / (16 * (C + K)); }
static size_t dw_pos_stride(int tiles, int CK) { return (size_t)tiles * CK + 16; }

size_t conv2d_wino_dw_floats(int C, int H, int W, int K, int pad) {
    const Geometry g = geometry(H, W, pad);
    const size_t G = (size_t)conv2d_wino_dw_group(C, H, W, K, pad);
    const int T = dw_chunk_tiles(C, K);
    return (size_t)16 * K * C + G * (g.P + 2) * (g.Q + 2) * C + G * g.P * g.Q * K + 16 * dw_pos_stride(T, C) +
           16 * dw_pos_stride(T, K);
}

void conv2d_wino_dw_begin(float *scratch, int C, int K) { memset(scratch, 0, sizeof(float) * 16 * K * C); }

/* dw (K,C,3,3) += G^T S G for each filter, S the (16) sums over the tiles
 * of (A dy A^T) .* (B^T d B) collected by conv2d_wino_dw; G^T = [1 1/2 1/2
 * 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. */
void conv2d_wino_dw_end(float *dw, const float *scratch, int C, int K) {
    static const double GT[3][4] = {{1, 0.5, 0.5, 0}, {0, 0.5, -0.5, 0}, {0, 0.5, 0.5, 1}};
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            double sp[16];
            for (int pos = 0; pos < 16; pos++) sp[pos] = scratch[((size_t)pos * K + k) * C + c];
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++) {
                    double acc = 0;
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) acc += GT[r][i] * sp[i * 4 + j] * GT[q][j];
                    dw[((size_t)k * C + c) * 9 + r * 3 + q] += (float)acc;
                }
        }
}

/* U = G g G^T for one 3x3 filter g, in double; G = [1 0 0; 1/2 1/2 1/2;
 * 1/2 -1/2 1/2; 0 0 1]. */
static void filter_transform(double u[16], const double g[9]) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    double t[4][3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) u[i * 4 + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

int conv2d_wino_bf16_ok(int C) { return WINO_BF16 && C % 2 == 0; }

/* One (kb, pos) block of U, (C, KB) floats, to (C/2, KB) pair words in
 * place: word (cp, kk) = (bf16 U[2cp][kk], bf16 U[2cp+1][kk]). */
static void pair_block(float *u, int C) {
#if WINO_BF16
    const __m256i idx = _mm256_setr_epi16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    for (int cp = 0; cp < C / 2; cp++) { /* reads floats 16cp.., writes words 8cp..: never ahead */
        const __m256i b = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(u + (size_t)cp * 2 * KB));
        _mm256_storeu_si256((__m256i *)(u + (size_t)cp * KB), _mm256_permutexvar_epi16(idx, b));
    }
#else
    (void)u, (void)C;
#endif
}

void conv2d_wino_pack(float *scratch, const float *w, int C, int K, int dx, int bf16) {
    /* forward: filter (k, c) is w[k][c]; dx: w[c][k] turned 180 degrees
     * (the layer's K is our C) */
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            double g[9], u[16];
            const float *f = dx ? w + ((size_t)c * K + k) * 9 : w + ((size_t)k * C + c) * 9;
            for (int i = 0; i < 9; i++) g[i] = f[dx ? 8 - i : i];
            filter_transform(u, g);
            for (int pos = 0; pos < 16; pos++)
                scratch[(((size_t)(k / KB) * 16 + pos) * C + c) * KB + k % KB] = (float)u[pos];
        }
    if (bf16)
        for (int blk = 0; blk < K / KB * 16; blk++) pair_block(scratch + (size_t)blk * C * KB, C);
}

#ifdef __AVX512F__

/* Padded, deinterleaved copies of the images: padded row r (input row
 * r - pad) of channel c in slot s is 32 floats at ((s*C + c)*hp + r)*32:
 *   one image:  [even columns 0,2,..,30 | odd columns 1,3,..,31]
 *   a pair:     [even of a (8) | even of b (8) | odd of a (8) | odd of b (8)]
 * (padded column q holds input column q - pad). Then a tile's columns
 * 2t, 2t+1, 2t+2, 2t+3 are four plain loads (even, odd, and both one float
 * on) for 16 tiles at once; the lane that reads across a half is a tile
 * past the row's last (TW <= 15, or <= 7 a half). */
static void pad_deinterleave(float *xp, const float *x, int G, const Geometry *g, int C, int H, int W, int pad,
                             int half, int row0) {
    int ie[16], io[16];
    __mmask16 me = 0, mo = 0;
    for (int t = 0; t < 16; t++) {
        const int tt = g->pair ? t % 8 : t, off = g->pair && t >= 8 ? 16 : 0;
        ie[t] = (2 * tt - pad < 0 ? 0 : 2 * tt - pad) + off;
        io[t] = (2 * tt + 1 - pad < 0 ? 0 : 2 * tt + 1 - pad) + off;
        if (2 * tt - pad >= 0) me |= (__mmask16)(1u << t);
        if (2 * tt + 1 - pad >= 0) mo |= (__mmask16)(1u << t);
    }
    const __m512i vie = _mm512_loadu_si512(ie), vio = _mm512_loadu_si512(io);
    const __mmask16 m_lo = (__mmask16)(W >= 16 ? 0xffff : (1u << W) - 1);
    const __mmask16 m_hi = (__mmask16)(W <= 16 ? 0 : (1u << (W - 16)) - 1);
    const int per_slot = g->pair ? 2 : 1;
    for (int sl = 0; sl < g->slots; sl++) {
        const int a = sl * per_slot, b = a + 1;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < g->hp; r++) {
                float *dst = xp + (((size_t)sl * C + c) * g->hp + r) * 32;
                const int h = r - pad + row0;
                if (half) { /* one image as a pair: b is its rows from 2*half tile rows down */
                    const int hb = h + 2 * half;
                    const __m512 lo = h >= 0 && h < H ? _mm512_maskz_loadu_ps(m_lo, x + ((size_t)c * H + h) * W)
                                                      : _mm512_setzero_ps();
                    const __m512 hi = hb >= 0 && hb < H ? _mm512_maskz_loadu_ps(m_lo, x + ((size_t)c * H + hb) * W)
                                                        : _mm512_setzero_ps();
                    _mm512_storeu_ps(dst, _mm512_maskz_permutex2var_ps(me, lo, vie, hi));
                    _mm512_storeu_ps(dst + 16, _mm512_maskz_permutex2var_ps(mo, lo, vio, hi));
                    continue;
                }
                if (h < 0 || h >= H || a >= G) {
                    _mm512_storeu_ps(dst, _mm512_setzero_ps());
                    _mm512_storeu_ps(dst + 16, _mm512_setzero_ps());
                    continue;
                }
                const float *ra = x + (((size_t)a * C + c) * H + h) * W;
                __m512 lo = _mm512_maskz_loadu_ps(m_lo, ra), hi;
                if (g->pair) /* W <= 16: b's row is the second source */
                    hi = b < G ? _mm512_maskz_loadu_ps(m_lo, x + (((size_t)b * C + c) * H + h) * W)
                               : _mm512_setzero_ps();
                else
                    hi = _mm512_maskz_loadu_ps(m_hi, ra + 16);
                _mm512_storeu_ps(dst, _mm512_maskz_permutex2var_ps(me, lo, vie, hi));
                _mm512_storeu_ps(dst + 16, _mm512_maskz_permutex2var_ps(mo, lo, vio, hi));
            }
    }
}

/* V = B^T d B for one channel of a tile vector, B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]: first along each row (d B), then down; p points at
 * the first of its 4 padded rows (32 floats each); v[pos] = position pos. */
static inline __attribute__((always_inline)) void tile_transform(__m512 v[16], const float *p) {
    __m512 a[4][4]; /* d B for the 4 rows */
    for (int i = 0; i < 4; i++) {
        const float *row = p + (size_t)i * 32;
        const __m512 e = _mm512_loadu_ps(row), o = _mm512_loadu_ps(row + 16);
        const __m512 e1 = _mm512_loadu_ps(row + 1), o1 = _mm512_loadu_ps(row + 17);
        a[i][0] = _mm512_sub_ps(e, e1);
        a[i][1] = _mm512_add_ps(o, e1);
        a[i][2] = _mm512_sub_ps(e1, o);
        a[i][3] = _mm512_sub_ps(o, o1);
    }
    for (int j = 0; j < 4; j++) {
        v[0 * 4 + j] = _mm512_sub_ps(a[0][j], a[2][j]);
        v[1 * 4 + j] = _mm512_add_ps(a[1][j], a[2][j]);
        v[2 * 4 + j] = _mm512_sub_ps(a[2][j], a[1][j]);
        v[3 * 4 + j] = _mm512_sub_ps(a[1][j], a[3][j]);
    }
}

/* The input transform of one tile vector: src points at its first padded
 * row in channel 0; V block slot jj, positions vpos_stride(C) apart. */
static void input_transform(float *V, int jj, const float *src, int C, size_t chan) {
    const size_t step = vpos_stride(C);
    for (int c = 0; c < C; c++) {
        __m512 v[16];
        tile_transform(v, src + (size_t)c * chan);
        float *out = V + ((size_t)c * VB + jj) * 16;
        for (int pos = 0; pos < 16; pos++) _mm512_storeu_ps(out + pos * step, v[pos]);
    }
}

#if WINO_BF16
/* input_transform for bf16 runs: channels 2cp and 2cp+1 transformed in
 * fp32, then each position's two vectors rounded into one vector of pair
 * words (lane t: (bf16 V[2cp][t], bf16 V[2cp+1][t])) at V word
 * ((cp * VB + jj) * 16), positions vpos_stride(C) words apart. C even. */
static void input_transform_bf16(uint32_t *V, int jj, const float *src, int C, size_t chan) {
    const size_t step = vpos_stride(C);
    const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int cp = 0; cp < C / 2; cp++) {
        __m512 lo[16], hi[16];
        tile_transform(lo, src + (size_t)(2 * cp) * chan);
        tile_transform(hi, src + (size_t)(2 * cp + 1) * chan);
        uint32_t *out = V + ((size_t)cp * VB + jj) * 16;
        for (int pos = 0; pos < 16; pos++) { /* [lo 0..15 | hi 0..15] to pairs (lo t, hi t) */
            const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi[pos], lo[pos]);
            _mm512_storeu_si512(out + pos * step, _mm512_permutexvar_epi16(inter, b));
        }
    }
}

/* product() on pair words: M (KB, nv vectors) = U (KB, C/2 pairs) . V. */
static inline __attribute__((always_inline)) void product_bf16(float *M, const uint32_t *U, const uint32_t *V,
                                                               int Cp, const int nv) {
    __m512 acc[KB][VB];
    for (int kk = 0; kk < KB; kk++)
        for (int jj = 0; jj < nv; jj++) acc[kk][jj] = _mm512_setzero_ps();
    for (int cp = 0; cp < Cp; cp++) {
        __m512bh v[VB];
        for (int jj = 0; jj < nv; jj++) v[jj] = (__m512bh)_mm512_loadu_si512(V + ((size_t)cp * VB + jj) * 16);
        for (int kk = 0; kk < KB; kk++) {
            const __m512bh u = (__m512bh)_mm512_set1_epi32((int)U[(size_t)cp * KB + kk]);
            for (int jj = 0; jj < nv; jj++) acc[kk][jj] = _mm512_dpbf16_ps(acc[kk][jj], u, v[jj]);
        }
    }
    for (int kk = 0; kk < KB; kk++)
        for (int jj = 0; jj < nv; jj++) _mm512_storeu_ps(M + ((size_t)kk * VB + jj) * 16, acc[kk][jj]);
}
#endif

/* y tile = A^T M A (+ bias) for one output channel k and tile vector;
 * A^T = [1 1 1 0; 0 1 -1 -1]; the even and odd output columns interleaved
 * back. ya: image a's channel k (b's, yb, for a pair; NULL: none). */
static void output_transform(float *ya, float *yb, const float *M, float bias, const Geometry *g, int tile_row) {
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const size_t step = MPOS_STRIDE; /* between positions */
    __m512 s[2][4];
    for (int j = 0; j < 4; j++) {
        const __m512 m0 = _mm512_loadu_ps(M + (0 * 4 + j) * step), m1 = _mm512_loadu_ps(M + (1 * 4 + j) * step);
        const __m512 m2 = _mm512_loadu_ps(M + (2 * 4 + j) * step), m3 = _mm512_loadu_ps(M + (3 * 4 + j) * step);
        s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    const __m512 b = _mm512_set1_ps(bias);
    const int Q = g->Q;
    for (int r = 0; r < 2; r++) {
        const __m512 ye = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]), b);
        const __m512 yo = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]), b);
        const __m512 lo = _mm512_permutex2var_ps(ye, lo_idx, yo), hi = _mm512_permutex2var_ps(ye, hi_idx, yo);
        const size_t row = (size_t)(2 * tile_row + r) * Q;
        if (!g->pair) { /* lo, hi: the row's two halves */
            if (Q <= 16) {
                _mm512_mask_storeu_ps(ya + row, (__mmask16)((1u << Q) - 1), lo);
            } else {
                _mm512_storeu_ps(ya + row, lo);
                _mm512_mask_storeu_ps(ya + row + 16, (__mmask16)((1u << (Q - 16)) - 1), hi);
            }
        } else { /* lo: image a's row, hi: image b's */
            const __mmask16 m = (__mmask16)((1u << Q) - 1);
            _mm512_mask_storeu_ps(ya + row, m, lo);
            if (yb) _mm512_mask_storeu_ps(yb + row, m, hi);
        }
    }
}

/* Tile rows r0..r1-1 of the output (all of them for a batch call: G > 1
 * needs r0 = 0, r1 = TH). One image's rows are laid out as a whole
 * image's are: as themselves in the lanes, or with a pair layout as two
 * halves in a's and b's lanes; only the padded rows they read are copied. */
static void forward_rows(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int pad, int bf16, int r0, int r1) {
    Geometry g = geometry(H, W, pad);
    const int rows = r1 - r0;
    const int half = g.pair && G == 1 && rows >= 2 ? (rows + 1) / 2 : 0;
    if (G == 1) g.hp = 2 * (half ? half : rows) + 2; /* the padded rows copied */
    const size_t chan = (size_t)g.hp * 32, PQ = (size_t)g.P * g.Q;
    const float *U = scratch;
    float *xp = scratch + weight_floats(C, K);
    float *V = xp + image_floats(C, H, W, pad);
    float *M = V + vblock_floats(C);
    /* One image of a pair layout (14x14: 7 of 16 lanes) runs as two: its
     * top `half` tile rows in a's lanes, the rest in b's (the same tiles,
     * the same sums: results do not change). */
    pad_deinterleave(xp, x, G, &g, C, H, W, pad, half, 2 * r0);

    const int per_slot = g.pair ? 2 : 1;
    const int nvec = half ? half : G == 1 ? rows : ((G + per_slot - 1) / per_slot) * g.TH;
    /* blocks of at most VB vectors, as even as they go (7: 3, 2, 2) */
    const int nblocks = (nvec + VB - 1) / VB;
    for (int bi = 0, jb = 0; bi < nblocks; bi++) {
        const int nv = nvec / nblocks + (bi < nvec % nblocks);
        int slot[VB], tile_row[VB];
        for (int jj = 0; jj < nv; jj++) {
            slot[jj] = G == 1 ? 0 : (jb + jj) / g.TH;
            const int local = G == 1 ? jb + jj : (jb + jj) % g.TH; /* row within the copied rows */
            tile_row[jj] = G == 1 ? r0 + local : local;
            const float *src = xp + (size_t)slot[jj] * C * chan + (size_t)2 * local * 32;
#if WINO_BF16
            if (bf16) {
                input_transform_bf16((uint32_t *)V, jj, src, C, chan);
                continue;
            }
#endif
            input_transform(V, jj, src, C, chan);
        }
        for (int kb = 0; kb < K / KB; kb++) {
            const float *Ub = U + (size_t)kb * 16 * C * KB;
            for (int pos = 0; pos < 16; pos++) {
                float *Mp = M + (size_t)pos * MPOS_STRIDE;
                const float *Vp = V + (size_t)pos * vpos_stride(C), *Up = Ub + (size_t)pos * C * KB;
#if WINO_BF16
                if (bf16) { /* pair words where the floats were */
                    const uint32_t *Uw = (const uint32_t *)Up, *Vw = (const uint32_t *)Vp;
                    if (nv == 3) product_bf16(Mp, Uw, Vw, C / 2, 3);
                    else if (nv == 2) product_bf16(Mp, Uw, Vw, C / 2, 2);
                    else product_bf16(Mp, Uw, Vw, C / 2, 1);
                    continue;
                }
#endif
                product_nv(Mp, Up, Vp, C, nv);
            }
            for (int kk = 0; kk < KB; kk++) {
                const int k = kb * KB + kk;
                for (int jj = 0; jj < nv; jj++) {
                    const int a = slot[jj] * per_slot, b = a + 1;
                    float *ya = y + ((size_t)a * K + k) * PQ;
                    float *yb = g.pair && b < G ? y + ((size_t)b * K + k) * PQ : NULL;
                    if (half && tile_row[jj] + half < r1) yb = ya + (size_t)2 * half * g.Q;
                    output_transform(ya, yb, M + ((size_t)kk * VB + jj) * 16, bias ? bias[k] : 0.0f, &g,
                                     tile_row[jj]);
                }
            }
        }
        jb += nv;
    }
}

void conv2d_wino_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int pad, int bf16) {
    forward_rows(y, x, bias, G, scratch, C, H, W, K, pad, bf16, 0, geometry(H, W, pad).TH);
}

void conv2d_wino_forward_rows(float *y, const float *x, const float *bias, float *scratch, int C, int H, int W, int K,
                              int pad, int bf16, int r0, int r1) {
    forward_rows(y, x, bias, 1, scratch, C, H, W, K, pad, bf16, r0, r1);
}

int conv2d_wino_tile_rows(int H, int pad) { return geometry(H, H, pad).TH; }

/* ---- weight gradient ------------------------------------------------------ */

/* Transpose 16 rows of 16 floats in place: r[j] lane i <- r[i] lane j. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i+m], 128-bit lane l: element 4l+m of rows 4i..4i+3 */
        const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int m = 0; m < 4; m++) { /* a 4x4 transpose of 128-bit lanes */
        const __m512 u0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44), u1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
        const __m512 u3 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
        t[0 + m] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        t[4 + m] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        t[8 + m] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        t[12 + m] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* src (G, Cn, H, W) to channels-last dst (G, H + 2 pad, W + 2 pad, Cn),
 * zero-padded; Cn a multiple of 16. Blocks of 16 channels x 16 pixels of
 * the flattened plane, so the 16 loads are contiguous streams. */
static void to_channels_last(float *dst, const float *src, int G, int Cn, int H, int W, int pad) {
    const int hp = H + 2 * pad, wp = W + 2 * pad, HW = H * W;
    for (int n = 0; n < G && pad > 0; n++) { /* the border only: the rest is overwritten */
        float *img = dst + (size_t)n * hp * wp * Cn;
        memset(img, 0, sizeof(float) * pad * wp * Cn);
        memset(img + (size_t)(hp - pad) * wp * Cn, 0, sizeof(float) * pad * wp * Cn);
        for (int h = pad; h < hp - pad; h++) {
            memset(img + (size_t)h * wp * Cn, 0, sizeof(float) * pad * Cn);
            memset(img + ((size_t)h * wp + wp - pad) * Cn, 0, sizeof(float) * pad * Cn);
        }
    }
    for (int n = 0; n < G; n++)
        for (int c0 = 0; c0 < Cn; c0 += 16)
            for (int p0 = 0; p0 < HW; p0 += 16) {
                const int np = HW - p0 < 16 ? HW - p0 : 16;
                const __mmask16 m = (__mmask16)(np == 16 ? 0xffff : (1u << np) - 1);
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = _mm512_maskz_loadu_ps(m, src + ((size_t)n * Cn + c0 + i) * HW + p0);
                transpose16(r);
                for (int j = 0; j < np; j++) {
                    const int h = (p0 + j) / W, w = (p0 + j) % W;
                    _mm512_storeu_ps(dst + (((size_t)n * hp + h + pad) * wp + w + pad) * Cn + c0, r[j]);
                }
            }
}

/* The product's register blocks: S[k0.., c0..] += sum over nt tiles of
 * D[tile][k] (broadcast) * V[tile][c0..] (vectors); 16 accumulators:
 * 16 filters x 1 vector (C = 16), 8 x 2 (C = 32). */
#define DW_BLOCK(NAME, KW, CV)                                                                                   \
    static void NAME(float *S, const float *V, const float *D, int nt, int C, int K, int k0, int c0) {          \
        __m512 acc[KW][CV];                                                                                     \
        for (int kk = 0; kk < KW; kk++)                                                                         \
            for (int j = 0; j < CV; j++) acc[kk][j] = _mm512_setzero_ps();                                      \
        for (int t = 0; t < nt; t++) {                                                                          \
            const float *vr = V + (size_t)t * C + c0, *dr = D + (size_t)t * K + k0;                             \
            __m512 v[CV];                                                                                       \
            for (int j = 0; j < CV; j++) v[j] = _mm512_loadu_ps(vr + 16 * j);                                   \
            for (int kk = 0; kk < KW; kk++) {                                                                   \
                const __m512 b = _mm512_set1_ps(dr[kk]);                                                        \
                for (int j = 0; j < CV; j++) acc[kk][j] = _mm512_fmadd_ps(b, v[j], acc[kk][j]);                 \
            }                                                                                                   \
        }                                                                                                       \
        for (int kk = 0; kk < KW; kk++)                                                                         \
            for (int j = 0; j < CV; j++) {                                                                      \
                float *sp = S + (size_t)(k0 + kk) * C + c0 + 16 * j;                                            \
                _mm512_storeu_ps(sp, _mm512_add_ps(_mm512_loadu_ps(sp), acc[kk][j]));                           \
            }                                                                                                   \
    }
DW_BLOCK(dw_block_16x1, 16, 1)
DW_BLOCK(dw_block_8x2, 8, 2)

void conv2d_wino_dw(const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K, int pad) {
    const Geometry g = geometry(H, W, pad);
    const int hp = g.P + 2, wp = g.Q + 2, T = dw_chunk_tiles(C, K);
    const size_t vstep = dw_pos_stride(T, C), dstep = dw_pos_stride(T, K);
    float *S = scratch;
    float *xt = S + (size_t)16 * K * C;
    float *dyt = xt + (size_t)conv2d_wino_dw_group(C, H, W, K, pad) * hp * wp * C;
    float *V = dyt + (size_t)conv2d_wino_dw_group(C, H, W, K, pad) * g.P * g.Q * K;
    float *D = V + 16 * vstep;
    to_channels_last(xt, x, G, C, H, W, pad);
    to_channels_last(dyt, dy, G, K, g.P, g.Q, 0);

    const int tiles_img = g.TH * g.TW, total = G * tiles_img;
    for (int t0 = 0; t0 < total; t0 += T) {
        const int nt = total - t0 < T ? total - t0 : T;
        for (int tt = 0; tt < nt; tt++) {
            const int t = t0 + tt, n = t / tiles_img, tr = (t % tiles_img) / g.TW, tc = t % g.TW;
            /* V = B^T d B, 16 channels a vector */
            const float *xp = xt + (((size_t)n * hp + 2 * tr) * wp + 2 * tc) * C;
            for (int c = 0; c < C; c += 16) {
                __m512 a[4][4];
                for (int i = 0; i < 4; i++) {
                    const float *row = xp + (size_t)i * wp * C + c;
                    const __m512 d0 = _mm512_loadu_ps(row), d1 = _mm512_loadu_ps(row + C);
                    const __m512 d2 = _mm512_loadu_ps(row + 2 * C), d3 = _mm512_loadu_ps(row + 3 * C);
                    a[i][0] = _mm512_sub_ps(d0, d2);
                    a[i][1] = _mm512_add_ps(d1, d2);
                    a[i][2] = _mm512_sub_ps(d2, d1);
                    a[i][3] = _mm512_sub_ps(d1, d3);
                }
                float *out = V + (size_t)tt * C + c;
                for (int j = 0; j < 4; j++) {
                    _mm512_storeu_ps(out + (0 * 4 + j) * vstep, _mm512_sub_ps(a[0][j], a[2][j]));
                    _mm512_storeu_ps(out + (1 * 4 + j) * vstep, _mm512_add_ps(a[1][j], a[2][j]));
                    _mm512_storeu_ps(out + (2 * 4 + j) * vstep, _mm512_sub_ps(a[2][j], a[1][j]));
                    _mm512_storeu_ps(out + (3 * 4 + j) * vstep, _mm512_sub_ps(a[1][j], a[3][j]));
                }
            }
            /* D = A dy A^T, A = [1 0; 1 1; 1 -1; 0 -1], 16 output channels a vector */
            const float *dp = dyt + (((size_t)n * g.P + 2 * tr) * g.Q + 2 * tc) * K;
            for (int k = 0; k < K; k += 16) {
                __m512 u[2][4];
                for (int r = 0; r < 2; r++) {
                    const __m512 e = _mm512_loadu_ps(dp + (size_t)r * g.Q * K + k);
                    const __m512 o = _mm512_loadu_ps(dp + (size_t)r * g.Q * K + K + k);
                    u[r][0] = e;
                    u[r][1] = _mm512_add_ps(e, o);
                    u[r][2] = _mm512_sub_ps(e, o);
                    u[r][3] = _mm512_sub_ps(_mm512_setzero_ps(), o);
                }
                float *out = D + (size_t)tt * K + k;
                for (int j = 0; j < 4; j++) {
                    _mm512_storeu_ps(out + (0 * 4 + j) * dstep, u[0][j]);
                    _mm512_storeu_ps(out + (1 * 4 + j) * dstep, _mm512_add_ps(u[0][j], u[1][j]));
                    _mm512_storeu_ps(out + (2 * 4 + j) * dstep, _mm512_sub_ps(u[0][j], u[1][j]));
                    _mm512_storeu_ps(out + (3 * 4 + j) * dstep, _mm512_sub_ps(_mm512_setzero_ps(), u[1][j]));
                }
            }
        }
        /* S[pos] (K, C) += D[pos]^T (K, tiles) . V[pos] (tiles, C) */
        for (int pos = 0; pos < 16; pos++) {
            const float *Vp = V + pos * vstep, *Dp = D + pos * dstep;
            float *Sp = S + (size_t)pos * K * C;
            if (C == 16)
                for (int k0 = 0; k0 < K; k0 += 16) dw_block_16x1(Sp, Vp, Dp, nt, C, K, k0, 0);
            else /* C == 32 */
                for (int k0 = 0; k0 < K; k0 += 8) dw_block_8x2(Sp, Vp, Dp, nt, C, K, k0, 0);
        }
    }
}

#else /* no AVX-512: conv2d_wino_ok() says no, nothing calls these */

void conv2d_wino_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                         int K, int pad, int bf16) {
    (void)y, (void)x, (void)bias, (void)G, (void)scratch, (void)C, (void)H, (void)W, (void)K, (void)pad;
}

void conv2d_wino_forward_rows(float *y, const float *x, const float *bias, float *scratch, int C, int H, int W, int K,
                              int pad, int bf16, int r0, int r1) {
    (void)y, (void)x, (void)bias, (void)scratch, (void)C, (void)H, (void)W, (void)K, (void)pad, (void)bf16, (void)r0,
        (void)r1;
}

int conv2d_wino_tile_rows(int H, int pad) { return (H + 2 * pad - 2) / 2; }

void conv2d_wino_dw(const float *dy, const float *x, int G, float *scratch, int C, int H, int W, int K, int pad) {
    (void)dy, (void)x, (void)G, (void)scratch, (void)C, (void)H, (void)W, (void)K, (void)pad;
}

#endif
