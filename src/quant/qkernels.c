/* qkernels.c — running an int8 model fast: the per-op precomputation
 * (weight sums, packed weights, which 2x2 max pools an AMX convolution
 * computes in its epilogue), the plain-C integer kernels (im2col + int32
 * multiply-adds that the compiler vectorises), the choice between them and
 * the AVX512-VNNI / AMX-INT8 ones (qkernels_vnni.c), and the batch loop
 * (OpenMP over groups of QK_GROUP images: each image alone through the
 * convolutions, then the trailing dense layers over the whole group per
 * weight pass). Add and concat run the qref.h code itself: they are a few
 * percent of the work. Every path is bit-identical to qref.h because each
 * output's int32 accumulator is the same integer (sums are exact; only the
 * order differs) and the requantization is qref_requant's (a fused max
 * pool takes the max of the accumulators before it: the requantization is
 * monotone, so the max commutes with it).
 * Left out on purpose: splitting one image's layers over threads (a single
 * image runs on one thread). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "quant/qkernels.h"

/* ==== precomputation ====================================================== */

/* Weight sums and VNNI packing of a conv or dense op. */
static void prepare_op(const QOp *op, QOpFast *f) {
    f->t = op->type == QOP_CONV ? op->c * op->kh * op->kw : op->c * op->h * op->w;
    f->t4 = op->type == QOP_CONV ? (f->t + 3) / 4 * 4 : (f->t + 63) / 64 * 64;
    f->k8 = (op->k + 7) / 8 * 8;
    f->wsum = dg_xcalloc((size_t)op->k, sizeof *f->wsum);
    if (op->type == QOP_DENSE) f->wpack = dg_xcalloc((size_t)f->k8 * f->t4, 1);
    for (int k = 0; k < op->k; k++) {
        const int8_t *w = op->weight + (size_t)k * f->t;
        int32_t s = 0;
        for (int t = 0; t < f->t; t++) s += w[t];
        f->wsum[k] = s;
        if (f->wpack) memcpy(f->wpack + (size_t)k * f->t4, w, (size_t)f->t);
    }
    if (op->type == QOP_DENSE && qk_have_amx()) qk_pack_amx_dense(op, f);
    if (op->type != QOP_CONV) return;
    if (qk_conv_amx_ok(op) && qk_have_amx()) qk_pack_amx(op, f);
    const int C4 = (op->c + 3) / 4, KH = op->kh, KW = op->kw, G = (KW + 3) / 4;
    if (qk_conv_slides(op)) { /* taps grouped by 4 columns */
        f->tdir = KH * G * 4;
        f->wdirect = dg_xcalloc((size_t)f->k8 * f->tdir, 1);
        for (int k = 0; k < op->k; k++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++)
                    f->wdirect[(size_t)k * f->tdir + ((size_t)i * G + j / 4) * 4 + j % 4] =
                        op->weight[((size_t)k * KH + i) * KW + j];
        return;
    }
    f->tdir = C4 * KH * KW * 4;
    f->wdirect = dg_xcalloc((size_t)f->k8 * f->tdir, 1);
    for (int k = 0; k < op->k; k++)
        for (int c = 0; c < op->c; c++)
            for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++)
                    f->wdirect[(size_t)k * f->tdir + (((size_t)(c / 4) * KH + i) * KW + j) * 4 + c % 4] =
                        op->weight[(((size_t)k * op->c + c) * KH + i) * KW + j];
}

/* Pair each conv with the 2 x 2 max pool that is the only reader of its
 * output (QOpFast.pool1, .fused): the VNNI and AMX paths compute the pool
 * in the convolution's epilogue. */
static void fuse_pools(QModel *q) {
    QFast *fast = q->fast;
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *pool = &q->ops[i];
        int j = pool->in0;
        if (pool->type != QOP_MAXPOOL || !qk_pool2(pool) || j < 0 || q->ops[j].type != QOP_CONV) continue;
        int readers = 0;
        for (int r = 0; r < q->n_ops; r++) readers += (q->ops[r].in0 == j) + (q->ops[r].in1 == j);
        if (readers != 1) continue;
        fast->ops[j].pool1 = i + 1;
        fast->ops[i].fused = 1;
    }
}

void qkernels_prepare(QModel *q) {
    qkernels_release(q);
    QFast *fast = dg_xcalloc(1, sizeof *fast);
    fast->ops = dg_xcalloc((size_t)q->n_ops, sizeof *fast->ops);
    for (int i = 0; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        if (op->type != QOP_CONV && op->type != QOP_DENSE) continue;
        prepare_op(op, &fast->ops[i]);
        size_t p = (size_t)op->oh * op->ow;
        if (op->type == QOP_CONV) {
            size_t c = (size_t)fast->ops[i].t * p + 4 * p + 64;
            if (c > fast->scratch_c) fast->scratch_c = c;
        }
        size_t v = qk_vnni_scratch(op, &fast->ops[i]);
        if (v > fast->scratch_vnni) fast->scratch_vnni = v;
    }
    q->fast = fast;
    fuse_pools(q);
}

void qkernels_release(QModel *q) {
    QFast *fast = q->fast;
    if (!fast) return;
    for (int i = 0; i < q->n_ops; i++) {
        free(fast->ops[i].wsum);
        free(fast->ops[i].wpack);
        free(fast->ops[i].wdirect);
        free(fast->ops[i].wamx);
        free(fast->ops[i].wamxd);
    }
    free(fast->ops);
    free(fast);
    q->fast = NULL;
}

/* ==== plain-C kernels ===================================================== */

/* cols (T, P): the input values each output reads, padding = in_zp
 * (fields in locals, valid columns computed once per tap, as in
 * qkernels_vnni.c). */
static void im2col_i8(const QOp *op, const int8_t *x, int8_t *cols) {
    const int C = op->c, H = op->h, W = op->w, KH = op->kh, KW = op->kw, S = op->stride;
    const int OH = op->oh, OW = op->ow, PT = op->pad_t, PL = op->pad_l, P = OH * OW;
    const int8_t pad = (int8_t)op->in_zp;
    int t = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++, t++) {
                int lo = PL - j > 0 ? (PL - j + S - 1) / S : 0;
                int hi = (W - 1 + PL - j) >= 0 ? (W - 1 + PL - j) / S + 1 : 0;
                if (hi > OW) hi = OW;
                if (lo > hi) lo = hi;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * S - PT + i;
                    int8_t *d = cols + (size_t)t * P + (size_t)oy * OW;
                    if (iy < 0 || iy >= H) {
                        memset(d, pad, (size_t)OW);
                        continue;
                    }
                    const int8_t *src = x + ((size_t)c * H + iy) * W - PL + j;
                    for (int ox = 0; ox < lo; ox++) d[ox] = pad;
                    for (int ox = lo; ox < hi; ox++) d[ox] = src[ox * S];
                    for (int ox = hi; ox < OW; ox++) d[ox] = pad;
                }
            }
}

/* acc = bias - in_zp * sum(w) + sum(w * x): the reference's
 * bias + sum(w * (x - in_zp)), padding included (x = in_zp adds 0). */
void qk_conv_c(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y, uint8_t *scratch) {
    const int P = op->oh * op->ow, T = f->t;
    int8_t *cols = (int8_t *)scratch;
    int32_t *acc = (int32_t *)(scratch + (((size_t)T * P + 63) & ~(size_t)63));
    im2col_i8(op, x, cols);
    for (int k = 0; k < op->k; k++) {
        const int8_t *w = op->weight + (size_t)k * T;
        int32_t b = op->bias[k] - op->in_zp * f->wsum[k];
        for (int p = 0; p < P; p++) acc[p] = b;
        for (int t = 0; t < T; t++) {
            int32_t wv = w[t];
            const int8_t *row = cols + (size_t)t * P;
            for (int p = 0; p < P; p++) acc[p] += wv * row[p];
        }
        int8_t *yk = y + (size_t)k * P;
        for (int p = 0; p < P; p++)
            yk[p] = qref_requant(acc[p], op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
    }
}

void qk_dense_c(const QOp *op, const QOpFast *f, const int8_t *x, int8_t *y) {
    const int T = f->t;
    for (int k = 0; k < op->k; k++) {
        const int8_t *w = op->weight + (size_t)k * T;
        int32_t acc = 0;
        for (int t = 0; t < T; t++) acc += (int32_t)w[t] * x[t];
        acc += op->bias[k] - op->in_zp * f->wsum[k];
        y[k] = qref_requant(acc, op->mult[k], op->shift[k], op->out_zp, op->act_min[k], op->act_max[k]);
    }
}

/* Max pooling with the fields in locals (qref_maxpool reloads them after
 * every byte store); the same maxima. */
static void qk_maxpool(const QOp *op, const int8_t *x, int8_t *y) {
    const int C = op->c, H = op->h, W = op->w, KH = op->kh, KW = op->kw, S = op->stride, OH = op->oh, OW = op->ow;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++) {
            int8_t *d = y + ((size_t)c * OH + oy) * OW;
            const int8_t *src = x + ((size_t)c * H + (size_t)oy * S) * W;
            if (KH == 2 && KW == 2 && S == 2) {
                for (int ox = 0; ox < OW; ox++) {
                    int8_t a = src[2 * ox] > src[2 * ox + 1] ? src[2 * ox] : src[2 * ox + 1];
                    int8_t b = src[W + 2 * ox] > src[W + 2 * ox + 1] ? src[W + 2 * ox] : src[W + 2 * ox + 1];
                    d[ox] = a > b ? a : b;
                }
                continue;
            }
            for (int ox = 0; ox < OW; ox++) {
                int8_t m = -128;
                for (int i = 0; i < KH; i++)
                    for (int j = 0; j < KW; j++) {
                        int8_t v = src[(size_t)i * W + ox * S + j];
                        if (v > m) m = v;
                    }
                d[ox] = m;
            }
        }
}

/* Average pooling with the fields in locals; each window's sum
 * requantized exactly as qref_avgpool does. */
static void qk_avgpool(const QOp *op, const int8_t *x, int8_t *y) {
    const int C = op->c, H = op->h, W = op->w, KH = op->kh, KW = op->kw, S = op->stride, OH = op->oh, OW = op->ow;
    const int32_t zp = op->in_zp, m = op->mult[0], sh = op->shift[0], zo = op->out_zp;
    const int32_t lo = op->act_min[0], hi = op->act_max[0], off = zp * KH * KW;
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < OH; oy++) {
            int8_t *d = y + ((size_t)c * OH + oy) * OW;
            const int8_t *src = x + ((size_t)c * H + (size_t)oy * S) * W;
            for (int ox = 0; ox < OW; ox++) {
                int32_t acc = 0;
                for (int i = 0; i < KH; i++)
                    for (int j = 0; j < KW; j++) acc += src[(size_t)i * W + ox * S + j];
                d[ox] = qref_requant(acc - off, m, sh, zo, lo, hi);
            }
        }
}

/* Table lookup with the table and size in locals (a byte store may alias
 * op's fields, so qref_lut reloads them every element). */
static void qk_lut(const QOp *op, const int8_t *x, int8_t *y) {
    int8_t lut[256];
    memcpy(lut, op->lut, sizeof lut);
    const size_t n = (size_t)op->c * op->h * op->w;
    for (size_t i = 0; i < n; i++) y[i] = lut[(uint8_t)(x[i] + 128)];
}

/* ==== choice and the batch loop =========================================== */

QKernels qkernels_auto(void) {
    const char *env = getenv("DIGITS_INT8_KERNELS");
    if (env && strcmp(env, "c") == 0) return QKERN_C;
    if (env && strcmp(env, "ref") == 0) return QKERN_REF;
    if (!qk_have_vnni()) return QKERN_C;
    if (env && strcmp(env, "vnni") == 0) return QKERN_VNNI;
    return qk_have_amx() ? QKERN_AMX : QKERN_VNNI;
}

const char *qkernels_name(QKernels k) {
    if (k == QKERN_AUTO) k = qkernels_auto();
    return k == QKERN_AMX ? "amx" : k == QKERN_VNNI ? "vnni" : k == QKERN_REF ? "ref" : "c";
}

/* Op i of q on one image's arena with the C (vnni = 0) or VNNI kernels. */
void qk_run_op(const QModel *q, int i, int8_t *arena, uint8_t *scratch, int vnni) {
    const QFast *fast = q->fast;
    const QOp *op = &q->ops[i];
    const int8_t *x0 = op->in0 < 0 ? arena : arena + q->act_off[op->in0];
    const int8_t *x1 = op->in1 < 0 ? arena : arena + q->act_off[op->in1];
    int8_t *y = arena + q->act_off[i];
    if (vnni && fast->ops[i].fused) return; /* computed by its convolution */
    if (op->type == QOP_CONV && vnni && fast->ops[i].pool1) {
        int p = fast->ops[i].pool1 - 1;
        if (vnni == 2 && fast->ops[i].wamx)
            qk_conv_amx_maxpool(op, &fast->ops[i], &q->ops[p], x0, arena + q->act_off[p], scratch);
        else
            qk_conv_vnni_maxpool(op, &fast->ops[i], &q->ops[p], x0, arena + q->act_off[p], scratch);
    } else if (op->type == QOP_CONV) {
        if (vnni == 2 && fast->ops[i].wamx)
            qk_conv_amx(op, &fast->ops[i], x0, y, scratch);
        else if (vnni)
            qk_conv_vnni(op, &fast->ops[i], x0, y, scratch);
        else
            qk_conv_c(op, &fast->ops[i], x0, y, scratch);
    } else if (op->type == QOP_DENSE) {
        if (vnni)
            qk_dense_vnni(op, &fast->ops[i], x0, y, scratch);
        else
            qk_dense_c(op, &fast->ops[i], x0, y);
    } else if (op->type == QOP_MAXPOOL) {
        if (vnni && qk_pool2(op))
            qk_maxpool2_vnni(op, x0, y);
        else
            qk_maxpool(op, x0, y);
    } else if (op->type == QOP_AVGPOOL) {
        if (vnni && qk_pool2(op))
            qk_avgpool2_vnni(op, x0, y);
        else
            qk_avgpool(op, x0, y);
    } else if (op->type == QOP_LUT) {
        if (vnni && qk_have_vbmi())
            qk_lut_vbmi(op, x0, y);
        else
            qk_lut(op, x0, y);
    } else if (op->type == QOP_FLOAT_STN) {
        qmodel_float_stn(q, op, x0, x1, y);
    } else {
        DG_ASSERT(qref_op_run(op, x0, x1, y) == 0);
    }
}

/* One image's int8 input in its arena. */
static void load_image(const QModel *q, const uint8_t *px, int8_t *arena) {
    size_t n_in = (size_t)q->in_c * q->in_h * q->in_w;
    for (size_t i = 0; i < n_in; i++) arena[i] = qref_pixel(px[i]);
}

/* The first op from which a group of images runs op by op (the trailing
 * dense layers: their weights are read once per group); n_ops if none. */
static int group_tail(const QModel *q) {
    int t = q->n_ops;
    while (t > 0 && (q->ops[t - 1].type == QOP_DENSE || q->ops[t - 1].type == QOP_LUT)) t--;
    return t;
}

/* This thread's CPU seconds (the profile's clock: time other processes
 * take on a shared machine does not count). */
static double prof_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ng <= QK_GROUP images (pixels px, arenas arena + g * act_bytes) through q:
 * each image alone up to the trailing dense layers, then those op by op
 * over the group, dense layers in one weight pass when the group is at
 * least half full (VNNI), else image by image. Each image's arena ends as
 * run alone; only the order of the work differs. prof: NULL, or n_ops + 1
 * seconds to add each op's time to (the last: loading the images). */
static void run_group(const QModel *q, const uint8_t *px, int ng, int8_t *arena, uint8_t *scratch, int vnni,
                      double *prof) {
    const size_t img = (size_t)q->in_c * q->in_h * q->in_w, ab = q->act_bytes;
    const int tail = vnni && ng >= QK_GROUP / 2 ? group_tail(q) : q->n_ops;
    double t0 = prof ? prof_now() : 0, t1;
    for (int g = 0; g < ng; g++) {
        load_image(q, px + g * img, arena + g * ab);
        if (prof) t1 = prof_now(), prof[q->n_ops] += t1 - t0, t0 = t1;
        for (int i = 0; i < tail; i++) {
            qk_run_op(q, i, arena + g * ab, scratch, vnni);
            if (prof) t1 = prof_now(), prof[i] += t1 - t0, t0 = t1;
        }
    }
    const QFast *fast = q->fast;
    for (int i = tail; i < q->n_ops; i++) {
        const QOp *op = &q->ops[i];
        if (op->type != QOP_DENSE) {
            for (int g = 0; g < ng; g++) qk_run_op(q, i, arena + g * ab, scratch, vnni);
            if (prof) t1 = prof_now(), prof[i] += t1 - t0, t0 = t1;
            continue;
        }
        const int8_t *xs[QK_GROUP];
        int8_t *ys[QK_GROUP];
        for (int g = 0; g < QK_GROUP; g++) { /* a short group repeats its last image (outputs identical) */
            int8_t *a = arena + (g < ng ? g : ng - 1) * ab;
            xs[g] = a + (op->in0 < 0 ? 0 : q->act_off[op->in0]);
            ys[g] = a + q->act_off[i];
        }
        if (vnni == 2 && fast->ops[i].wamxd)
            qk_dense_amx_group(op, &fast->ops[i], xs, ys, scratch);
        else
            qk_dense_vnni_group(op, &fast->ops[i], xs, ys, scratch);
        if (prof) t1 = prof_now(), prof[i] += t1 - t0, t0 = t1;
    }
}

/* The kernels a choice runs here (AUTO resolved, missing ISAs stepped down). */
static QKernels resolve_kernels(QKernels kernels) {
    if (kernels == QKERN_AUTO) kernels = qkernels_auto();
    if (kernels == QKERN_AMX && !qk_have_amx()) kernels = QKERN_VNNI;
    if (kernels == QKERN_VNNI && !qk_have_vnni()) kernels = QKERN_C;
    return kernels;
}

void qmodel_profile(const QModel *q, const uint8_t *pixels, int n, QKernels kernels, double *op_s) {
    kernels = resolve_kernels(kernels);
    if (kernels == QKERN_REF) kernels = QKERN_C;
    const QFast *fast = q->fast;
    DG_ASSERT(fast);
    const size_t img = (size_t)q->in_c * q->in_h * q->in_w;
    const int vnni = kernels == QKERN_AMX ? 2 : kernels == QKERN_VNNI ? 1 : 0;
    int8_t *arena = dg_xmalloc(q->act_bytes * QK_GROUP);
    uint8_t *scr = dg_xmalloc((vnni ? fast->scratch_vnni : fast->scratch_c) + 64);
    memset(op_s, 0, ((size_t)q->n_ops + 1) * sizeof *op_s);
    for (int i0 = 0; i0 < n; i0 += QK_GROUP)
        run_group(q, pixels + (size_t)i0 * img, n - i0 < QK_GROUP ? n - i0 : QK_GROUP, arena, scr, vnni, op_s);
    free(arena);
    free(scr);
}

void qmodel_run(const QModel *q, const uint8_t *pixels, int n, int8_t *logits, uint8_t *pred, QKernels kernels) {
    kernels = resolve_kernels(kernels);
    const QFast *fast = q->fast;
    DG_ASSERT(fast);
    const size_t img = (size_t)q->in_c * q->in_h * q->in_w;
    const size_t scratch = kernels == QKERN_VNNI || kernels == QKERN_AMX ? fast->scratch_vnni : fast->scratch_c;
    const int vnni = kernels == QKERN_AMX ? 2 : kernels == QKERN_VNNI ? 1 : 0;
    const int n_groups = (n + QK_GROUP - 1) / QK_GROUP;
#pragma omp parallel if (n > 1)
    {
        int8_t *arena = dg_xmalloc(q->act_bytes * (n > 1 ? QK_GROUP : 1));
        uint8_t *scr = dg_xmalloc(scratch + 64);
#pragma omp for schedule(static)
        for (int gi = 0; gi < n_groups; gi++) {
            const int i0 = gi * QK_GROUP, ng = n - i0 < QK_GROUP ? n - i0 : QK_GROUP;
            if (kernels == QKERN_REF) {
                for (int g = 0; g < ng; g++)
                    qmodel_run_ref(q, pixels + (size_t)(i0 + g) * img, arena,
                                   logits + (size_t)(i0 + g) * QMODEL_CLASSES);
            } else {
                run_group(q, pixels + (size_t)i0 * img, ng, arena, scr, vnni, NULL);
                for (int g = 0; g < ng; g++)
                    memcpy(logits + (size_t)(i0 + g) * QMODEL_CLASSES,
                           arena + g * q->act_bytes + q->act_off[q->n_ops - 1], QMODEL_CLASSES);
            }
            for (int g = 0; pred && g < ng; g++)
                pred[i0 + g] = (uint8_t)qref_argmax(logits + (size_t)(i0 + g) * QMODEL_CLASSES, QMODEL_CLASSES);
        }
        free(arena);
        free(scr);
    }
}
