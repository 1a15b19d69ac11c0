/* predict_shard.h — `digits eval` and `submit` under mpirun: every rank
 * predicts its share of the images and rank 0 gets them all, in order. */
#ifndef DG_APP_PREDICT_SHARD_H
#define DG_APP_PREDICT_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "digits.h"

/* Join the MPI job when started by mpirun (dist_init; nothing otherwise);
 * ranks > 0 print nothing on stdout from here on. Exits 1 if MPI fails. */
void predict_shard_start(const char *cmd);
/* Leave the job (MPI_Finalize) after a successful run, on every rank. */
void predict_shard_end(void);
/* The predictions of images[0..n) (28x28 each) by m in passes of `batch`
 * images (what dg_model_set_batch was given): one process predicts them
 * all; over an MPI job rank r predicts core/partition.h's range r (whole
 * batches, so each image is computed as in one process) and rank 0
 * receives every range. Returns the n predictions (malloc'd, the caller's)
 * on rank 0, NULL on the other ranks. A failure exits 1 with one line
 * (`digits CMD: problem`; over MPI the failing rank ends the job). */
dg_prediction *predict_sharded(const char *cmd, dg_model *m, const uint8_t *images, size_t n, int batch);

#endif
