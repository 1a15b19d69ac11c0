/* classifier_int8.c — int8 model files (digits quantize; src/quant/) as a
 * Classifier: one network or an ensemble's members run with the int8
 * kernels (qmodel_run: AVX512-VNNI or plain C), their int8 logits
 * dequantized and voted as float ensembles vote. The int8 model is
 * read-only, so workspaces share it (like the SVM's tables).
 * Left out on purpose: test-time augmentation runs through the generic
 * tta_predict_chunk like every other kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "eval/classifier.h"
#include "eval/ensemble.h"
#include "quant/qmodel.h"

int classifier_load_int8(Classifier *c, const char *path, int max_batch) {
    QFile *f = dg_xcalloc(1, sizeof *f);
    if (qfile_load(f, path) < 0) {
        free(f);
        return -1;
    }
    c->kind = CLASSIFIER_INT8;
    c->impl = f;
    c->width = f->members[0].in_w;
    c->height = f->members[0].in_h;
    c->vote_logits = f->vote_logits;
    c->batch = max_batch;
    for (int k = 1; k < f->n; k++)
        if (f->members[k].in_w != c->width || f->members[k].in_h != c->height || f->members[k].in_c != 1) {
            qfile_free(f);
            free(f);
            c->impl = NULL;
            return dg_set_error("%s: member %d's input size differs from member 0's", path, k);
        }
    if (f->members[0].in_c != 1) {
        qfile_free(f);
        free(f);
        c->impl = NULL;
        return dg_set_error("%s: int8 models take one grey channel", path);
    }
    if (f->n == 1)
        snprintf(c->name, sizeof c->name, "%.100s", f->members[0].name);
    else
        snprintf(c->name, sizeof c->name, "ensemble of %d %.100s", f->n, f->members[0].name);
    return 0;
}

void classifier_int8_free(Classifier *c) {
    if (c->kind != CLASSIFIER_INT8 || !c->impl) return;
    qfile_free(c->impl);
}

void classifier_int8_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits) {
    const QFile *f = c->impl;
    const size_t per = (size_t)n * QMODEL_CLASSES;
    int8_t *q = dg_xmalloc(per);
    float *ml = dg_xmalloc((size_t)f->n * per * sizeof(float));
    for (int k = 0; k < f->n; k++) {
        qmodel_run(&f->members[k], pixels, n, q, NULL, QKERN_AUTO);
        qmodel_dequant_logits(&f->members[k], q, n, ml + (size_t)k * per);
    }
    ensemble_vote(ml, f->n, n, f->vote_logits, probs, logits);
    free(ml);
    free(q);
}
