/* qlogits.c — the int8 logits of a single-network int8 model for a set of
 * images, as text (`digits eval --int8-logits FILE`): what a device running
 * the same model (e.g. the code `digits export --format c` writes) must
 * reproduce bit for bit.
 * Left out on purpose: ensembles (their vote is in float). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "quant/qmodel.h"

int qfile_dump_logits(const char *model_path, const uint8_t *pixels, const uint8_t *labels, int n, const char *out) {
    QFile f;
    if (qfile_load(&f, model_path) < 0) return -1;
    if (f.n != 1) {
        int members = f.n;
        qfile_free(&f);
        return dg_set_error("%s: an ensemble of %d int8 networks has no single int8 logits", model_path, members);
    }
    FILE *o = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
    if (!o) {
        int e = errno;
        qfile_free(&f);
        return dg_set_error("%s: cannot write: %s", out, strerror(e));
    }
    int8_t *lg = dg_xmalloc((size_t)n * QMODEL_CLASSES + 1);
    uint8_t *pred = dg_xmalloc((size_t)n + 1);
    qmodel_run(&f.members[0], pixels, n, lg, pred, QKERN_AUTO);
    fprintf(o, "# index label predicted logit0..logit9 (int8; real = %.9g * (q - %d))\n",
            (double)f.members[0].scales[f.members[0].n_ops - 1], (int)f.members[0].ops[f.members[0].n_ops - 1].out_zp);
    for (int i = 0; i < n; i++) {
        fprintf(o, "%d %d %d", i, labels ? labels[i] : -1, pred[i]);
        for (int k = 0; k < QMODEL_CLASSES; k++) fprintf(o, " %d", lg[(size_t)i * QMODEL_CLASSES + k]);
        fputc('\n', o);
    }
    int bad = ferror(o);
    if (o != stdout) bad |= fclose(o) != 0;
    else fflush(o);
    free(lg);
    free(pred);
    qfile_free(&f);
    return bad ? dg_set_error("%s: write failed", out) : 0;
}
