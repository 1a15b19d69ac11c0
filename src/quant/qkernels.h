/* qkernels.h — internal to src/quant: the per-op data the fast int8
 * kernels precompute (weight sums, VNNI-packed weights) and the kernels
 * themselves: plain C (qkernels.c) and AVX512-VNNI (qkernels_vnni.c, built
 * with function-level target attributes so every build, portable or
 * native, has it; used only when cpuid says the CPU has VNNI). Both are
 * bit-identical to qref.h.
 * Left out on purpose: a public interface (callers use qmodel_run). */
#ifndef DG_QKERNELS_H
#define DG_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant/qmodel.h"

/* Per conv/dense op. Conv as a matrix product: taps T = c*kh*kw, outputs
 * P = oh*ow; dense: T = c*h*w, P = 1. */
typedef struct {
    int32_t *wsum;   /* (k) sum of each output channel's weights */
    int8_t *wpack;   /* VNNI dense: (k8, t4) weights, rows padded with zeros (k8: k up to a multiple of 8,
                        t4: T up to a multiple of 64) */
    int8_t *wdirect; /* VNNI conv (direct, any stride): (k8, tdir) weights in tap order ((c4*kh + i)*kw + j)*4 + c%4,
                        c4 = c/4 (channels padded to a multiple of 4 with zeros) */
    int8_t *wamx;    /* AMX conv (qk_conv_amx_ok): (k32/16, kh*kw, c4/kr) tiles of 16 output channels x kr channel
                        quads (64-byte rows: byte r*4 + c%4 of row m is channel (kb*kr + r)*4 + c%4 of output m) */
    int8_t *wamxd;   /* AMX dense: (k32/16, t4/64) tiles of 16 rows x 64 bytes: byte r*4 + b of column n is weight
                        (n0 + n, 64*step + 4r + b): the tile form of QK_GROUP images x 16 outputs */
    int amx_kr;      /* channel quads per AMX tile step: c4 if c4 <= 16, else 16 */
    int pool1;       /* conv (VNNI and AMX paths): 1 + the index of the 2 x 2 max pool that alone reads its output (the conv then
                        writes the pooled tensor: max commutes with the monotone requantization); 0 if none */
    int fused;       /* a max pool that such a conv computes (skipped on the VNNI and AMX paths) */
    int t, t4, k8, tdir;
} QOpFast;

typedef struct {
    QOpFast *ops;        /* (n_ops) */
    size_t scratch_c;    /* bytes of scratch one image needs (plain C) */
    size_t scratch_vnni; /* ... (VNNI) */
} QFast;

/* A one-channel stride-1 convolution (the zoo's first layers) runs with
 * quads of 4 neighbouring kernel columns (tap order (i*ceil(kw/4) + j/4)*4
 * + j%4 in wdirect) instead of 4 channels. */
static inline int qk_conv_slides(const QOp *op) { return op->type == QOP_CONV && op->c == 1 && op->stride == 1; }

/* Plain-C kernels: scratch is the per-thread scratch (scratch_c bytes). */
void qk_conv_c(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch);
void qk_dense_c(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y);
/* AVX512-VNNI kernels (only call when qk_have_vnni()). */
int qk_have_vnni(void);
void qk_conv_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch);
/* The same followed by the 2 x 2 stride-2 max pool `pool` (qk_pool2) of its
 * output, computed on the int32 sums: y is the pooled tensor. */
void qk_conv_vnni_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                          uint8_t *scratch);
void qk_dense_vnni(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch);
/* Op i of q on one image's arena (q->act_off) with the C (vnni = 0) or
 * VNNI kernels; scratch: scratch_c or scratch_vnni bytes. */
void qk_run_op(const QModel *q, int i, int8_t *arena, uint8_t *scratch, int vnni);
/* vnni levels for qk_run_op: 0 plain C, 1 AVX512-VNNI, 2 VNNI and AMX tiles. */
/* AMX-INT8 tile convolution (qkernels_vnni.c): used for convs with 16 or
 * more input channels whose channel quads fill whole tile steps; only call
 * qk_conv_amx when qk_have_amx() and f->wamx is set (qkernels_prepare packs
 * it only then). Bit-identical to qref.h like the others. */
int qk_have_amx(void);
int qk_conv_amx_ok(const QOp *op);
void qk_pack_amx(const QOp *op, QOpFast *f);
void qk_conv_amx(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch);
/* The same followed by the 2 x 2 stride-2 max pool `pool` (qk_pool2) of its
 * output: y is the pooled tensor (pool->k x oh x ow). */
void qk_conv_amx_maxpool(const QOp *op, const QOpFast *f, const QOp *pool, const int8_t *x, int8_t *y,
                         uint8_t *scratch);
/* Images per group in the batch loop: the VNNI dense layers run over a
 * whole group per weight pass (qk_dense_vnni_group). */
#define QK_GROUP 8
void qk_dense_vnni_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                         uint8_t *scratch);
/* The same with AMX tiles (rows: the group's images); only when f->wamxd
 * (packed by qk_pack_amx_dense when qk_have_amx()). */
void qk_pack_amx_dense(const QOp *op, QOpFast *f);
void qk_dense_amx_group(const QOp *op, const QOpFast *f, const int8_t *const *xs, int8_t *const *ys,
                        uint8_t *scratch);
/* Element-wise and pooling kernels of the VNNI level: the table lookup
 * (only when qk_have_vbmi()), 2 x 2 stride-2 average and max pooling. */
int qk_have_vbmi(void);
void qk_lut_vbmi(const QOp *op, const int8_t *x, int8_t *y);
void qk_avgpool2_vnni(const QOp *op, const int8_t *x, int8_t *y);
void qk_maxpool2_vnni(const QOp *op, const int8_t *x, int8_t *y);
static inline int qk_pool2(const QOp *op) { return op->kh == 2 && op->kw == 2 && op->stride == 2; }
/* Scratch bytes the VNNI kernels need for op. */
size_t qk_vnni_scratch(const QOp *op, const QOpFast *f);

#endif
