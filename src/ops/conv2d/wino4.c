/* conv2d/wino4.c — the forward of a 3x3 stride-1 convolution by Winograd
 * F(4x4, 3x3) (Lavin & Gray 2015), AVX-512, fp32, for inference models.
 *
 * Why: F(2x2,3x3) (conv2d/wino.c) spends 16 multiply-adds on 4 outputs,
 * 4 per output pixel and channel pair; F(4x4,3x3) spends 36 on 16, 2.25:
 * 1.78x fewer in the product, which is most of the time of a layer with
 * 16 or more input channels. Interpolation points 0, +-1, +-2, inf:
 *
 *   U = G g G^T    G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *                         1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   V = B^T d B    B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *                         0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   M[pos] (K, tiles) = U[pos] (K,C) . V[pos] (C, tiles)  for the 36 pos
 *   y tile = A^T M A   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 *                             0 1 -1 8 -8 1]
 *
 * Layout: tiles are the vector lanes. A "tile vector" holds one row of
 * tiles of several images: 8 lanes an image (outputs up to 32 wide, two
 * images a vector) or 4 (up to 16 wide from inputs up to 16, four images).
 * The input transform reads x in place: each image row is one or two
 * masked loads (zeros outside the image: the padding), and each of the six
 * columns 4t+j of the 6x6 patches is a pair of two-source permutes. The
 * output transform turns the 4x4 tiles back into rows with unpacks and
 * 128-bit shuffles, and masked stores drop the columns and rows past the
 * output (partial tiles: any output size). The product's register block
 * is conv2d/wino.c's: 8 output channels x 3 tile vectors.
 * Accuracy: the constants (up to 8 in A, 5 in B, 1/24 in G) make the fp32
 * error a few times F(2x2)'s; the filters are transformed in double, and
 * the zoo's inference stays within 1e-5 of the reference path
 * (tests/test_model.c, tests/test_ops_ref.c).
 * Left out on purpose: the gradients (training keeps F(2x2): bit-identical
 * results whatever this file does), bf16, one-image calls (conv2d/forward.c keeps
 * those on F(2x2), whose half-image trick fills the lanes), wider outputs.
 */
#include "ops/conv2d/wino4.h"

#include "ops/conv2d/wino_product.h"

#define NPOS 36

typedef struct {
    int P, Q;   /* output size */
    int TH, TW; /* tiles: rows, columns */
    int L;      /* lanes per image: 8 or 4 */
    int slots;  /* tile rows' worth of vectors (16 / L images each) per call */
} Geometry;

static Geometry geometry(int H, int W, int pad) {
    Geometry g;
    g.P = H + 2 * pad - 2;
    g.Q = W + 2 * pad - 2;
    g.TH = (g.P + 3) / 4;
    g.TW = (g.Q + 3) / 4;
    g.L = g.TW <= 4 && W <= 16 ? 4 : 8;
    /* as few images as fill a register block (VB vectors): the output of a
     * call, and the pooling that follows, stay in cache (cnn-bn batch eval,
     * 32->32 at 28x28: 77 us an image with 2 images a call against 101 with
     * 6); below 3 tile rows, 3 slots make whole blocks */
    g.slots = g.TH >= VB ? 1 : VB;
    return g;
}

int conv2d_wino4_ok(int C, int H, int W, int K, int R, int S, int stride, int pad) {
#ifdef __AVX512F__
    if (R != 3 || S != 3 || stride != 1 || pad < 0 || pad > 2 || K % KB != 0 || C < 16) return 0;
    const int P = H + 2 * pad - 2, Q = W + 2 * pad - 2;
    return P >= 1 && Q >= 1 && Q <= 32 && W <= 32;
#else
    (void)C, (void)H, (void)W, (void)K, (void)R, (void)S, (void)stride, (void)pad;
    return 0;
#endif
}

int conv2d_wino4_images(int H, int W, int pad) { return 16 / geometry(H, W, pad).L; }

int conv2d_wino4_group(int C, int H, int W, int pad) {
    (void)C;
    const Geometry g = geometry(H, W, pad);
    return g.slots * (16 / g.L);
}

/* Scratch areas, in this order: U (K/KB, 36, C, KB) | V block (36, C, VB,
 * 16) | M block (36, KB, VB, 16). Positions sit one cache line more apart
 * than they take, so the transforms' 36 stores do not alias in 4 KiB. */
static size_t weight_floats(int C, int K) { return (size_t)NPOS * K * C; }
static size_t vpos_stride(int C) { return (size_t)C * VB * 16 + 16; }
#define MPOS_STRIDE (KB * VB * 16 + 16)

size_t conv2d_wino4_floats(int C, int H, int W, int K, int pad) {
    (void)H, (void)W, (void)pad;
    return weight_floats(C, K) + NPOS * vpos_stride(C) + NPOS * MPOS_STRIDE;
}

/* U = G g G^T for one 3x3 filter g, in double (see the top). */
static void filter_transform(double u[NPOS], const double *g) {
    static const double G[6][3] = {{1.0 / 4, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    double t[6][3];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) u[i * 6 + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

void conv2d_wino4_pack(float *scratch, const float *w, int C, int K) {
    wino6_pack(scratch, w, C, K, 9, filter_transform);
}

#ifdef __AVX512F__

/* r = A^T m for six vectors: four. */
static inline __attribute__((always_inline)) void atrans(__m512 r[4], const __m512 m[6]) {
    const __m512 s = _mm512_add_ps(m[1], m[2]), d = _mm512_sub_ps(m[1], m[2]);
    const __m512 s2 = _mm512_add_ps(m[3], m[4]), d2 = _mm512_sub_ps(m[3], m[4]);
    r[0] = _mm512_add_ps(_mm512_add_ps(m[0], s), s2);
    r[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d2, d);
    r[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s2, s);
    r[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d2, d), m[5]);
}

/* How the six patch columns of a tile vector come out of the image rows:
 * lanes 0-7 from sources A0|B0 (32 floats), lanes 8-15 from A1|B1, column
 * j by permute index idx[j] under masks m0[j] (lanes 0-7 in the image)
 * and m1[j] (lanes 8-15). 8 lanes an image: A, B the two halves of one
 * image's row; 4 lanes: A, B the rows of two images. */
typedef struct {
    __m512i idx[6];
    __mmask16 m0[6], m1[6];
} Columns;

static void columns_init(Columns *cl, const Geometry *g, int W, int pad) {
    for (int j = 0; j < 6; j++) {
        int idx[16];
        unsigned valid = 0;
        for (int l = 0; l < 16; l++) {
            const int u = l % 8, e = g->L == 4 ? u / 4 : 0, t = u % g->L, col = 4 * t + j - pad;
            const int ok = t < g->TW && col >= 0 && col < W;
            idx[l] = ok ? col + 16 * e : 0;
            if (ok) valid |= 1u << l;
        }
        cl->idx[j] = _mm512_loadu_si512(idx);
        cl->m0[j] = (__mmask16)(valid & 0x00ff);
        cl->m1[j] = (__mmask16)(valid & 0xff00);
    }
}

/* V (36 positions, channel c, vector jj) = B^T d B for the tile row tr of
 * the images img[0..3] (NULL: none) of a vector, all C channels. */
static void input_transform(float *V, int jj, const float *const img[4], const Geometry *g, const Columns *cl,
                            int C, int H, int W, int pad, int tr) {
    const size_t step = vpos_stride(C), plane = (size_t)H * W;
    const __mmask16 m_lo = (__mmask16)(W >= 16 ? 0xffff : (1u << W) - 1);
    const __mmask16 m_hi = (__mmask16)(W <= 16 ? 0 : (1u << (W - 16)) - 1);
    for (int c = 0; c < C; c++) {
        __m512 t[6][6]; /* t[i] = B^T (patch row i) */
        for (int i = 0; i < 6; i++) {
            const int h = 4 * tr + i - pad;
            __m512 src[4]; /* A0, B0, A1, B1 */
            for (int s = 0; s < 4; s++) src[s] = _mm512_setzero_ps();
            if (h >= 0 && h < H) {
                const size_t off = (size_t)c * plane + (size_t)h * W;
                if (g->L == 8) {
                    for (int s = 0; s < 2; s++)
                        if (img[s]) {
                            src[2 * s] = _mm512_maskz_loadu_ps(m_lo, img[s] + off);
                            src[2 * s + 1] = _mm512_maskz_loadu_ps(m_hi, img[s] + off + 16);
                        }
                } else {
                    for (int s = 0; s < 4; s++)
                        if (img[s]) src[s] = _mm512_maskz_loadu_ps(m_lo, img[s] + off);
                }
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

/* The 4x4 tiles of one output channel and tile vector, y = A^T M A + bias,
 * into the rows 4tr.. of the images' planes out[0..3] (NULL: none). */
static void output_transform(float *const out[4], const float *M, float bias, const Geometry *g, int tr) {
    __m512 t[4][6]; /* t[.][j] = A^T (column j of M) */
    for (int j = 0; j < 6; j++) {
        __m512 m[6];
        for (int i = 0; i < 6; i++) m[i] = _mm512_loadu_ps(M + (size_t)(i * 6 + j) * MPOS_STRIDE);
        __m512 r[4];
        atrans(r, m);
        for (int i = 0; i < 4; i++) t[i][j] = r[i];
    }
    const __m512 b = _mm512_set1_ps(bias);
    const int Q = g->Q;
    const __mmask16 q_lo = (__mmask16)(Q >= 16 ? 0xffff : (1u << Q) - 1);
    const __mmask16 q_hi = (__mmask16)(Q <= 16 ? 0 : (1u << (Q - 16)) - 1);
    for (int r = 0; r < 4; r++) {
        const int p = 4 * tr + r;
        if (p >= g->P) break;
        __m512 o[4];
        atrans(o, t[r]); /* o[cc] lane l: column 4 (l's tile) + cc */
        for (int cc = 0; cc < 4; cc++) o[cc] = _mm512_add_ps(o[cc], b);
        /* v[m], 128-bit lane q: the four columns of tile 4q+m */
        const __m512 u0 = _mm512_unpacklo_ps(o[0], o[1]), u1 = _mm512_unpackhi_ps(o[0], o[1]);
        const __m512 u2 = _mm512_unpacklo_ps(o[2], o[3]), u3 = _mm512_unpackhi_ps(o[2], o[3]);
        const __m512 v0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
        const __m512 v1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
        const __m512 v2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
        const __m512 v3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
        /* z[q]: tiles 4q..4q+3, i.e. 16 consecutive outputs of a row */
        const __m512 w0 = _mm512_shuffle_f32x4(v0, v1, 0x44), w1 = _mm512_shuffle_f32x4(v0, v1, 0xEE);
        const __m512 w2 = _mm512_shuffle_f32x4(v2, v3, 0x44), w3 = _mm512_shuffle_f32x4(v2, v3, 0xEE);
        const __m512 z[4] = {_mm512_shuffle_f32x4(w0, w2, 0x88), _mm512_shuffle_f32x4(w0, w2, 0xDD),
                             _mm512_shuffle_f32x4(w1, w3, 0x88), _mm512_shuffle_f32x4(w1, w3, 0xDD)};
        const size_t row = (size_t)p * Q;
        if (g->L == 8) {
            for (int s = 0; s < 2; s++)
                if (out[s]) {
                    _mm512_mask_storeu_ps(out[s] + row, q_lo, z[2 * s]);
                    if (q_hi) _mm512_mask_storeu_ps(out[s] + row + 16, q_hi, z[2 * s + 1]);
                }
        } else {
            for (int s = 0; s < 4; s++)
                if (out[s]) _mm512_mask_storeu_ps(out[s] + row, q_lo, z[s]);
        }
    }
}

void conv2d_wino4_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad) {
    const Geometry g = geometry(H, W, pad);
    const int per = 16 / g.L; /* images a vector */
    const size_t PQ = (size_t)g.P * g.Q, img_in = (size_t)C * H * W;
    const float *U = scratch;
    float *V = scratch + weight_floats(C, K);
    float *M = V + NPOS * vpos_stride(C);
    Columns cl;
    columns_init(&cl, &g, W, pad);
    const int nvec = (G + per - 1) / per * g.TH;
    for (int jb = 0; jb < nvec; jb += VB) {
        const int nv = nvec - jb < VB ? nvec - jb : VB;
        int slot[VB], tr[VB];
        for (int jj = 0; jj < nv; jj++) {
            slot[jj] = (jb + jj) / g.TH;
            tr[jj] = (jb + jj) % g.TH;
            const float *img[4] = {NULL, NULL, NULL, NULL};
            for (int s = 0; s < per; s++) {
                const int n = slot[jj] * per + s;
                if (n < G) img[s] = x + (size_t)n * img_in;
            }
            input_transform(V, jj, img, &g, &cl, C, H, W, pad, tr[jj]);
        }
        for (int kb = 0; kb < K / KB; kb++) {
            const float *Ub = U + (size_t)kb * NPOS * C * KB;
            for (int pos = 0; pos < NPOS; pos++) {
                float *Mp = M + (size_t)pos * MPOS_STRIDE;
                const float *Vp = V + (size_t)pos * vpos_stride(C), *Up = Ub + (size_t)pos * C * KB;
                product_nv(Mp, Up, Vp, C, nv);
            }
            for (int kk = 0; kk < KB; kk++) {
                const int k = kb * KB + kk;
                for (int jj = 0; jj < nv; jj++) {
                    float *out[4] = {NULL, NULL, NULL, NULL};
                    for (int s = 0; s < per; s++) {
                        const int n = slot[jj] * per + s;
                        if (n < G) out[s] = y + ((size_t)n * K + k) * PQ;
                    }
                    output_transform(out, M + ((size_t)kk * VB + jj) * 16, bias ? bias[k] : 0.0f, &g, tr[jj]);
                }
            }
        }
    }
}

#else /* no AVX-512: conv2d_wino4_ok() says no, nothing calls this */

void conv2d_wino4_forward(float *y, const float *x, const float *bias, int G, float *scratch, int C, int H, int W,
                          int K, int pad) {
    (void)y, (void)x, (void)bias, (void)G, (void)scratch, (void)C, (void)H, (void)W, (void)K, (void)pad;
}

#endif
