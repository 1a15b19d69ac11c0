/* gemm_bf16.c — matrix products with bfloat16 inputs and float32
 * accumulation on AVX512_BF16 (vdpbf16ps), for the convolutions of
 * `--precision bf16`.
 *
 * vdpbf16ps multiplies PAIRS along the reduction dimension: for each of
 * its 16 float lanes, acc += a0*b0 + a1*b1 with (a0,a1), (b0,b1) two
 * bf16 packed in a 32-bit "pair word". On this CPU it runs at twice the
 * FLOPs of an fp32 FMA (measured: ~490 vs ~245 GFLOP/s per core).
 *
 * So every operand is stored as pair words:
 *   A side (broadcast): row m, pair k2 = (A[m, 2k2], A[m, 2k2+1]): a row
 *       of A converted in place order, when A's reduction dim is contiguous;
 *   B side (vector):    panels of NR = 32 columns; Bp[panel][k2][j] =
 *       (B[2k2, n], B[2k2+1, n]) for the panel's 32 columns n.
 * The micro-kernel keeps an MR x NR = 12 x 32 tile of C in 24 registers and
 * per k2 does 2 vector loads of B, 12 broadcasts of A, 24 vdpbf16ps.
 *
 * Rounding: fp32 -> bf16 is round-to-nearest-even (vcvtne*), the same as
 * PyTorch's autocast; products and sums are float32. Odd reduction sizes
 * are padded with a zero pair half.
 * Left out: alpha/beta other than C = AB or C += AB; non-AVX512_BF16 CPUs
 * (gemm_bf16_available() says no and callers stay in fp32).
 */
#include "ops/gemm_bf16.h"

#include <string.h>

#include "core/check.h"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define HAVE_BF16 1
#else
#define HAVE_BF16 0
#endif

#define MR 12
#define NR 32

int gemm_bf16_available(void) {
#if HAVE_BF16
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

size_t bf16_pair_words(int k) { return (size_t)(k + 1) / 2; }

size_t bf16_packed_b_words(int K, int N) {
    return bf16_pair_words(K) * (size_t)((N + NR - 1) / NR) * NR;
}

/* Scalar fp32 -> bf16, round to nearest even (NaN kept quiet). */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float bf16_round(float f) {
    uint32_t u = (uint32_t)to_bf16(f) << 16;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static inline uint32_t pair(float lo, float hi) { return (uint32_t)to_bf16(lo) | ((uint32_t)to_bf16(hi) << 16); }

/* ==== packing ============================================================== */

void bf16_convert_transposed(uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    const int k2n = (int)bf16_pair_words(rows);
    for (int c = 0; c < cols; c++)
        for (int k2 = 0; k2 < k2n; k2++) {
            const float lo = src[(size_t)(2 * k2) * lds + c];
            const float hi = 2 * k2 + 1 < rows ? src[(size_t)(2 * k2 + 1) * lds + c] : 0.0f;
            dst[(size_t)c * ldd + k2] = pair(lo, hi);
        }
}

void bf16_convert_rows(uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, int cols) {
    const int k2n = (int)bf16_pair_words(cols);
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        uint32_t *d = dst + (size_t)r * ldd;
        int k2 = 0;
#if HAVE_BF16
        /* 32 floats -> 16 pair words: cvtne2ps puts its SECOND operand in the low half */
        for (; 2 * k2 + 32 <= cols; k2 += 16) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 2 * k2 + 16), _mm512_loadu_ps(s + 2 * k2));
            _mm512_storeu_si512(d + k2, (__m512i)v);
        }
#endif
        for (; k2 < k2n; k2++) d[k2] = pair(s[2 * k2], 2 * k2 + 1 < cols ? s[2 * k2 + 1] : 0.0f);
    }
}

void bf16_pack_b(uint32_t *bp, const float *B, size_t ldb, int K, int N) {
    const int k2n = (int)bf16_pair_words(K), panels = (N + NR - 1) / NR;
    for (int pnl = 0; pnl < panels; pnl++) {
        const int n0 = pnl * NR, nn = N - n0 < NR ? N - n0 : NR;
        uint32_t *out = bp + (size_t)pnl * k2n * NR;
        for (int k2 = 0; k2 < k2n; k2++, out += NR) {
            const float *r0 = B + (size_t)(2 * k2) * ldb + n0;
            const float *r1 = 2 * k2 + 1 < K ? r0 + ldb : NULL;
            int j = 0;
#if HAVE_BF16
            for (; j + 16 <= nn; j += 16) {
                __m512 a = _mm512_loadu_ps(r0 + j), b = r1 ? _mm512_loadu_ps(r1 + j) : _mm512_setzero_ps();
                /* bf16 bits of a in the low half, of b in the high half of each 32-bit lane */
                __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
                __m512i hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b)), 16);
                _mm512_storeu_si512(out + j, _mm512_or_si512(lo, hi));
            }
#endif
            for (; j < nn; j++) out[j] = pair(r0[j], r1 ? r1[j] : 0.0f);
            for (; j < NR; j++) out[j] = 0;
        }
    }
}

void bf16_pack_b_transposed(uint32_t *bp, const float *Bt, size_t ldt, int K, int N) {
    /* B[k, n] = Bt[n, k]: a row of Bt holds one column's reduction run */
    const int k2n = (int)bf16_pair_words(K), panels = (N + NR - 1) / NR;
    for (int pnl = 0; pnl < panels; pnl++) {
        const int n0 = pnl * NR, nn = N - n0 < NR ? N - n0 : NR;
        uint32_t *out = bp + (size_t)pnl * k2n * NR;
        for (int j = 0; j < NR; j++) {
            if (j >= nn) {
                for (int k2 = 0; k2 < k2n; k2++) out[(size_t)k2 * NR + j] = 0;
                continue;
            }
            const float *s = Bt + (size_t)(n0 + j) * ldt;
            int k2 = 0;
#if HAVE_BF16
            for (; 2 * k2 + 32 <= K; k2 += 16) {
                __m512i v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 2 * k2 + 16), _mm512_loadu_ps(s + 2 * k2));
                /* scatter the 16 pair words down the panel's column j */
                const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
                                                                        2, 1, 0),
                                                       _mm512_set1_epi32(NR));
                _mm512_i32scatter_epi32(out + (size_t)k2 * NR + j, idx, v, 4);
            }
#endif
            for (; k2 < k2n; k2++) out[(size_t)k2 * NR + j] = pair(s[2 * k2], 2 * k2 + 1 < K ? s[2 * k2 + 1] : 0.0f);
        }
    }
}

/* ==== the product ============================================================ */

#if HAVE_BF16
/* C[0:mr, 0:nn] (+)= sum_k2 A[m][k2] * Bp[k2][:], mr <= MR, nn <= NR. */
static void micro_kernel(float *C, size_t ldc, const uint32_t *A, size_t lda, const uint32_t *bp, int k2n, int mr,
                         int nn, int accumulate) {
    __m512 acc[MR][2];
    _Pragma("GCC unroll 12") for (int m = 0; m < MR; m++) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    const uint32_t *arow[MR];
    _Pragma("GCC unroll 12") for (int m = 0; m < MR; m++) arow[m] = A + (size_t)(m < mr ? m : 0) * lda;
    for (int k2 = 0; k2 < k2n; k2++, bp += NR) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
        _Pragma("GCC unroll 12") for (int m = 0; m < MR; m++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)arow[m][k2]);
            acc[m][0] = _mm512_dpbf16_ps(acc[m][0], a, b0);
            acc[m][1] = _mm512_dpbf16_ps(acc[m][1], a, b1);
        }
    }
    const __mmask16 m0 = (__mmask16)(nn >= 16 ? 0xffff : (1u << nn) - 1);
    const __mmask16 m1 = (__mmask16)(nn >= 32 ? 0xffff : nn > 16 ? (1u << (nn - 16)) - 1 : 0);
    _Pragma("GCC unroll 12") for (int m = 0; m < MR; m++) {
        if (m >= mr) break;
        float *c = C + (size_t)m * ldc;
        __m512 v0 = acc[m][0], v1 = acc[m][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}
#endif

void gemm_bf16(float *C, size_t ldc, const uint32_t *A, size_t lda, const uint32_t *bp, int M, int N, int K,
               int accumulate) {
#if HAVE_BF16
    const int k2n = (int)bf16_pair_words(K), panels = (N + NR - 1) / NR;
    for (int pnl = 0; pnl < panels; pnl++) {
        const int n0 = pnl * NR, nn = N - n0 < NR ? N - n0 : NR;
        const uint32_t *b = bp + (size_t)pnl * k2n * NR;
        for (int m0 = 0; m0 < M; m0 += MR)
            micro_kernel(C + (size_t)m0 * ldc + n0, ldc, A + (size_t)m0 * lda, lda, b, k2n, M - m0 < MR ? M - m0 : MR,
                         nn, accumulate);
    }
#else
    (void)C, (void)ldc, (void)A, (void)lda, (void)bp, (void)M, (void)N, (void)K, (void)accumulate;
    DG_ASSERT(!"gemm_bf16 called in a build without AVX512_BF16");
#endif
}

void gemm_bf16_ref(float *C, size_t ldc, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
                   int accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++)
                acc += (double)bf16_round(A[(size_t)m * lda + k]) * bf16_round(B[(size_t)k * ldb + n]);
            float *c = C + (size_t)m * ldc + n;
            *c = accumulate ? *c + (float)acc : (float)acc;
        }
}
