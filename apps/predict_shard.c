/* predict_shard.c — predictions spread over the ranks of an MPI job and
 * gathered on rank 0 in image order (see predict_shard.h). The ranges come
 * from core/partition.h; the bytes travel through dist_gather_bytes.
 * Left out on purpose: balancing by measured speed (ranks are alike) and
 * overlapping the gather with the predictions (it is a small fraction:
 * 10 000 predictions are 0.5 MB). */
#include "predict_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/partition.h"
#include "digits_internal.h"
#include "dist/dist.h"

void predict_shard_start(const char *cmd) {
    if (dist_init(NULL, NULL) < 0) cli_fail(cmd, "%s", dg_errmsg());
    if (dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) cli_fail(cmd, "/dev/null: cannot open");
}

void predict_shard_end(void) { dist_finalize(); }

dg_prediction *predict_sharded(const char *cmd, dg_model *m, const uint8_t *images, size_t n, int batch) {
    int rank = dist_rank(), size = dist_size();
    long lo = 0, hi = (long)n;
    if (size > 1) partition_range((long)n, batch, size, rank, &lo, &hi);
    size_t mine = (size_t)(hi - lo);
    dg_prediction *part = dg_xmalloc((mine ? mine : 1) * sizeof *part);
    if (mine && dg_predict_batch(m, images + (size_t)lo * 28 * 28, mine, part) != DG_OK) {
        if (size > 1) dist_abort("digits %s: %s", cmd, dg_errmsg());
        cli_fail(cmd, "%s", dg_errmsg());
    }
    if (size == 1) return part;
    size_t *counts = dg_xcalloc((size_t)size, sizeof *counts);
    dg_prediction *all = dist_gather_bytes(part, mine * sizeof *part, counts);
    free(part);
    free(counts);
    return all; /* rank 0: the ranges in rank order = images 0..n-1; else NULL */
}
