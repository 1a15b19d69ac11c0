/* conv2d/wino5.c — the forward of a 5x5 stride-1 convolution by Winograd
 * F(2x2, 5x5) (Lavin & Gray 2015), AVX-512, fp32, for inference models.
 *
 * Why: a 5x5 layer costs 25 multiply-adds per output pixel and channel
 * pair; F(2x2,5x5) computes a 2x2 output tile from a 6x6 input patch with
 * 36, i.e. 9 per pixel: 2.8x fewer in the product, which is most of the
 * time of twobranch's 5x5 branch (32->64 at 28x28, 64->256 at 14x14: 70 %
 * of its batch forward, near the FP32 peak on the direct kernels). On the
 * same six points as conv2d/wino4.c's F(4x4,3x3) (0, +-1, +-2, inf), so
 * the input transform B^T is the same (wino_product.h); only the filter
 * and output transforms differ:
 *
 *   U = G g G^T   G = [1/4 0 0 0 0; -1/6 -1/6 -1/6 -1/6 -1/6;
 *                      -1/6 1/6 -1/6 1/6 -1/6; 1/24 1/12 1/6 1/3 2/3;
 *                      1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1]
 *   V = B^T d B   (6x6 patches, tiles 2 apart)
 *   M[pos] (K, tiles) = U[pos] (K,C) . V[pos] (C, tiles)  for the 36 pos
 *   y tile = A^T M A   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]
 *
 * Layout: tiles are the vector lanes. A tile vector holds one row of 16
 * tiles of one image (outputs up to 32 wide), or two halves of 8 tiles
 * (outputs up to 16 wide): two images' rows, or for a lone image its top
 * half of tile rows beside its bottom half (as conv2d/wino.c does). The
 * input transform reads x in place with masked loads (zeros outside: the
 * padding) and two-source permutes for the six patch columns 2t+j; the
 * output transform interleaves each tile's two columns back with one
 * permute per half-row and drops columns and rows past the output with
 * masked stores. The product is conv2d/wino.c's register block.
 * Accuracy: the filters are transformed in double; the transforms'
 * constants (5 in B, 2/3 and 1/24 in G, 2 in A) keep the fp32 error a few
 * times the direct kernel's (tests/test_ops_ref.c bounds it against the
 * reference; the zoo's inference stays within 1e-5 of the reference path,
 * tests/test_model.c).
 * Left out on purpose: the gradients (training keeps the direct kernels),
 * bf16, strides other than 1 (kaggle-deep's 5x5/2 layers take the phases).
 */
#include "ops/conv2d/wino5.h"

#include "ops/conv2d/wino_product.h"

#define NPOS 36

typedef struct {
    int P, Q;   /* output size */
    int TH, TW; /* tiles: rows, columns */
    int L;      /* lanes a half-row source: 16 (one image a vector) or 8 (two halves) */
    int slots;  /* vectors' worth of images per call */
} Geometry;

static Geometry geometry(int H, int W, int pad) {
    Geometry g;
    g.P = H + 2 * pad - 4;
    g.Q = W + 2 * pad - 4;
    g.TH = (g.P + 1) / 2;
    g.TW = (g.Q + 1) / 2;
    g.L = g.TW <= 8 && W <= 16 ? 8 : 16;
    g.slots = g.TH >= VB ? 1 : VB; /* below 3 tile rows, 3 images' rows make a block */
    return g;
}

int conv2d_wino5_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    if (R != 5 || S != 5 || stride != 1 || pad < 0 || pad > 2 || K % KB != 0 || C < 16) return 0;
    const int P = H + 2 * pad - 4, Q = W + 2 * pad - 4;
    return P >= 1 && Q >= 1 && Q <= 32 && W <= 32;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_wino5_group(int C, int H, int W, int pad) {
    (void)C;
    const Geometry g = geometry(H, W, pad);
    return g.slots * (g.L == 8 ? 2 : 1);
}

/* Scratch areas, in this order: U (K/KB, 36, C, KB) | V block (36, C, VB,
 * 16) | M block (36, KB, VB, 16); positions one cache line more apart than
 * they take (no 4 KiB aliasing of the transforms' 36 stores). */
static size_t weight_floats(int C, int K) { return (size_t)NPOS * K * C; }
static size_t vpos_stride(int C) { return (size_t)C * VB * 16 + 16; }
#define MPOS_STRIDE (KB * VB * 16 + 16)

size_t conv2d_wino5_floats(int C, int H, int W, int K, int pad) {
    (void)H, (void)W, (void)pad;
    return weight_floats(C, K) + NPOS * vpos_stride(C) + NPOS * MPOS_STRIDE;
}

/* U = G g G^T for one 5x5 filter g, in double (see the top). */
static void filter_transform(double u[NPOS], const double *g) {
    static const double G[6][5] = {{1.0 / 4, 0, 0, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                   {0, 0, 0, 0, 1}};
    double t[6][5]; /* G g */
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int r = 0; r < 5; r++) s += G[i][r] * g[r * 5 + j];
            t[i][j] = s;
        }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            double s = 0;
            for (int r = 0; r < 5; r++) s += t[i][r] * G[j][r];
            u[i * 6 + j] = s;
        }
}

void conv2d_wino5_pack(float *scratch, const float *w, int C, int K) {
    wino6_pack(scratch, w, C, K, 25, filter_transform);
}

#ifdef __AVX512F__

/* What one tile vector covers: per half (lanes 0-7, 8-15) an image (NULL:
 * none) and its tile row; with 16 lanes an image, half 1 repeats half 0. */
typedef struct {
    const float *x[2];
    float *y[2]; /* the output planes' image base (channel 0) */
    int tr[2];
} Vector;

/* The six patch columns of a tile vector: column j of lane l by permute
 * index idx[j] of its half's two sources (the row's floats 0-15 | 16-31),
 * under the masks m[j] (lanes inside the image). */
typedef struct {
    __m512i idx[6];
    __mmask16 m0[6], m1[6];
} Columns;

static void columns_init(Columns *cl, const Geometry *g, int W, int pad) {
    for (int j = 0; j < 6; j++) {
        int idx[16];
        unsigned valid = 0;
        for (int l = 0; l < 16; l++) {
            const int t = g->L == 8 ? l % 8 : l, col = 2 * t + j - pad;
            const int ok = t < g->TW && col >= 0 && col < W;
            idx[l] = ok ? col : 0;
            if (ok) valid |= 1u << l;
        }
        cl->idx[j] = _mm512_loadu_si512(idx);
        cl->m0[j] = (__mmask16)(valid & 0x00ff);
        cl->m1[j] = (__mmask16)(valid & 0xff00);
    }
}

/* V (36 positions, vector jj) = B^T d B for every channel of vector v. */
static void input_transform(float *V, int jj, const Vector *v, const Columns *cl, int C, int H, int W, int pad) {
    const size_t step = vpos_stride(C), plane = (size_t)H * W;
    const __mmask16 m_lo = (__mmask16)(W >= 16 ? 0xffff : (1u << W) - 1);
    const __mmask16 m_hi = (__mmask16)(W <= 16 ? 0 : (1u << (W - 16)) - 1);
    for (int c = 0; c < C; c++) {
        __m512 t[6][6]; /* t[i] = B^T (patch row i) */
        for (int i = 0; i < 6; i++) {
            __m512 src[4]; /* half 0's floats 0-15, 16-31; half 1's */
            for (int s = 0; s < 2; s++) {
                if (s && v->x[1] == v->x[0] && v->tr[1] == v->tr[0]) { /* 16 lanes an image: the same row */
                    src[2] = src[0], src[3] = src[1];
                    break;
                }
                const int h = 2 * v->tr[s] + i - pad;
                src[2 * s] = src[2 * s + 1] = _mm512_setzero_ps();
                if (!v->x[s] || h < 0 || h >= H) continue;
                const float *row = v->x[s] + (size_t)c * plane + (size_t)h * W;
                src[2 * s] = _mm512_maskz_loadu_ps(m_lo, row);
                if (m_hi) src[2 * s + 1] = _mm512_maskz_loadu_ps(m_hi, row + 16);
            }
            __m512 d[6];
            for (int j = 0; j < 6; j++)
                d[j] = _mm512_or_ps(_mm512_maskz_permutex2var_ps(cl->m0[j], src[0], cl->idx[j], src[1]),
                                    _mm512_maskz_permutex2var_ps(cl->m1[j], src[2], cl->idx[j], src[3]));
            wino_btrans6(t[i], d);
        }
        float *out = V + ((size_t)c * VB + jj) * 16;
        for (int j = 0; j < 6; j++) {
            const __m512 col[6] = {t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j]};
            __m512 r[6];
            wino_btrans6(r, col);
            for (int i = 0; i < 6; i++) _mm512_storeu_ps(out + (size_t)(i * 6 + j) * step, r[i]);
        }
    }
}

/* r = A^T m for six vectors: two. */
static inline __attribute__((always_inline)) void atrans2(__m512 r[2], const __m512 m[6]) {
    r[0] = _mm512_add_ps(_mm512_add_ps(m[0], _mm512_add_ps(m[1], m[2])), _mm512_add_ps(m[3], m[4]));
    r[1] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(2.0f), _mm512_sub_ps(m[3], m[4]), _mm512_sub_ps(m[1], m[2])),
                         m[5]);
}

/* The 2x2 tiles of output channel k of vector v, y = A^T M A + bias. */
static void output_transform(const Vector *v, int k, size_t PQ, const float *M, float bias, const Geometry *g) {
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 t[2][6]; /* t[.][j] = A^T (column j of M) */
    for (int j = 0; j < 6; j++) {
        __m512 m[6], r[2];
        for (int i = 0; i < 6; i++) m[i] = _mm512_loadu_ps(M + (size_t)(i * 6 + j) * MPOS_STRIDE);
        atrans2(r, m);
        t[0][j] = r[0], t[1][j] = r[1];
    }
    const __m512 b = _mm512_set1_ps(bias);
    const int Q = g->Q;
    const __mmask16 q_lo = (__mmask16)(Q >= 16 ? 0xffff : (1u << Q) - 1);
    const __mmask16 q_hi = (__mmask16)(Q <= 16 ? 0 : (1u << (Q - 16)) - 1);
    for (int r = 0; r < 2; r++) {
        __m512 o[2]; /* lane l: its tile's columns 0 and 1 */
        atrans2(o, t[r]);
        o[0] = _mm512_add_ps(o[0], b), o[1] = _mm512_add_ps(o[1], b);
        /* lo: lanes 0-7's tiles as 16 consecutive outputs; hi: lanes 8-15's */
        const __m512 lo = _mm512_permutex2var_ps(o[0], lo_idx, o[1]), hi = _mm512_permutex2var_ps(o[0], hi_idx, o[1]);
        if (g->L == 16) {
            const int p = 2 * v->tr[0] + r;
            if (p >= g->P) continue;
            float *row = v->y[0] + (size_t)k * PQ + (size_t)p * Q;
            _mm512_mask_storeu_ps(row, q_lo, lo);
            if (q_hi) _mm512_mask_storeu_ps(row + 16, q_hi, hi);
            continue;
        }
        for (int s = 0; s < 2; s++) {
            const int p = 2 * v->tr[s] + r;
            if (v->y[s] && p < g->P) _mm512_mask_storeu_ps(v->y[s] + (size_t)k * PQ + (size_t)p * Q, q_lo, s ? hi : lo);
        }
    }
}

/* Tile vector number j of a call on G images: which image rows it holds. */
static Vector vector_of(int j, const float *x, float *y, int G, const Geometry *g, size_t img_in, size_t img_out,
                        int half) {
    Vector v = {{NULL, NULL}, {NULL, NULL}, {0, 0}};
    if (g->L == 16) { /* one image's tile row */
        const int n = j / g->TH;
        v.x[0] = v.x[1] = x + (size_t)n * img_in;
        v.y[0] = y + (size_t)n * img_out;
        v.tr[0] = v.tr[1] = j % g->TH;
    } else if (half) { /* a lone image: tile row j beside row j + half */
        v.x[0] = x, v.y[0] = y, v.tr[0] = j;
        if (j + half < g->TH) v.x[1] = x, v.y[1] = y, v.tr[1] = j + half;
    } else { /* two images' tile row */
        for (int s = 0; s < 2; s++) {
            const int n = 2 * (j / g->TH) + s;
            if (n >= G) break;
            v.x[s] = x + (size_t)n * img_in;
            v.y[s] = y + (size_t)n * img_out;
            v.tr[s] = j % g->TH;
        }
    }
    return v;
}

void conv2d_wino5_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad) {
    const Geometry g = geometry(H, W, pad);
    const size_t PQ = (size_t)g.P * g.Q, img_in = (size_t)C * H * W, img_out = (size_t)K * PQ;
    const float *U = scratch;
    float *V = scratch + weight_floats(C, K);
    float *M = V + NPOS * vpos_stride(C);
    Columns cl;
    columns_init(&cl, &g, W, pad);
    const int half = g.L == 8 && G == 1 ? (g.TH + 1) / 2 : 0;
    const int nvec = g.L == 16 ? G * g.TH : half ? half : (G + 1) / 2 * g.TH;
    const int nblocks = (nvec + VB - 1) / VB;
    for (int bi = 0, jb = 0; bi < nblocks; bi++) {
        const int nv = nvec / nblocks + (bi < nvec % nblocks); /* as even as they go */
        Vector vec[VB];
        for (int jj = 0; jj < nv; jj++) {
            vec[jj] = vector_of(jb + jj, x, y, G, &g, img_in, img_out, half);
            input_transform(V, jj, &vec[jj], &cl, C, H, W, pad);
        }
        for (int kb = 0; kb < K / KB; kb++) {
            const float *Ub = U + (size_t)kb * NPOS * C * KB;
            for (int pos = 0; pos < NPOS; pos++)
                product_nv(M + (size_t)pos * MPOS_STRIDE, Ub + (size_t)pos * C * KB, V + (size_t)pos * vpos_stride(C),
                           C, nv);
            for (int kk = 0; kk < KB; kk++) {
                const int k = kb * KB + kk;
                for (int jj = 0; jj < nv; jj++)
                    output_transform(&vec[jj], k, PQ, M + ((size_t)kk * VB + jj) * 16, bias ? bias[k] : 0.0f, &g);
            }
        }
        jb += nv;
    }
}

#else /* no AVX-512: conv2d_wino5_ok() says no, nothing calls this */

void conv2d_wino5_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad) {
    (void)y, (void)x, (void)bias, (void)G, (void)scratch, (void)C, (void)H, (void)W, (void)K, (void)pad;
}

#endif
