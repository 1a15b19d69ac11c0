/* gemm_bf16.h — bf16-input, fp32-accumulate matrix products on
 * AVX512_BF16; see gemm_bf16.c for the pair-word layouts. Internal to
 * src/ops (the convolutions of --precision bf16 use it). */
#ifndef DG_GEMM_BF16_H
#define DG_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 if this build and this CPU can run gemm_bf16. */
int gemm_bf16_available(void);

/* Pair words of a reduction of length k: ceil(k/2). */
size_t bf16_pair_words(int k);
/* Words of a packed B (K, N): pair words x N rounded up to the panel width. */
size_t bf16_packed_b_words(int K, int N);
/* f rounded to bf16 (nearest even), as a float: what the kernels compute with. */
float bf16_round(float f);

/* A side: rows x cols fp32 (row stride lds, the reduction along a row) ->
 * rows of pair words (row stride ldd >= ceil(cols/2)). */
void bf16_convert_rows(uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
/* A side from A^T: src (rows, cols) -> dst (cols rows of pair words along
 * src's rows, row stride ldd >= ceil(rows/2)); e.g. W^T from W. */
void bf16_convert_transposed(uint32_t *dst, size_t ldd, const float *src, size_t lds, int rows, int cols);
/* B side from B (K, N) with N contiguous (row stride ldb). */
void bf16_pack_b(uint32_t *bp, const float *B, size_t ldb, int K, int N);
/* B side from Bt (N, K) = B transposed, K contiguous (row stride ldt). */
void bf16_pack_b_transposed(uint32_t *bp, const float *Bt, size_t ldt, int K, int N);

/* C (M, N) = [C +] A (M, K) . B (K, N): A as pair-word rows (stride lda
 * words), B packed. C row stride ldc floats. */
void gemm_bf16(float *C, size_t ldc, const uint32_t *A, size_t lda, const uint32_t *bp, int M, int N, int K,
               int accumulate);
/* Reference: the same product on bf16-rounded inputs, summed in double. */
void gemm_bf16_ref(float *C, size_t ldc, const float *A, size_t lda, const float *B, size_t ldb, int M, int N, int K,
                   int accumulate);

#endif
