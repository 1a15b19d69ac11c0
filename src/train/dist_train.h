/* dist_train.h — data-parallel training over the ranks of dist/dist.h
 * (mpirun -np N digits train): every rank trains a disjoint shard of each
 * global batch and ends every step with the gradient of the whole batch,
 * the same bits on every rank, so every rank takes the same optimiser step.
 *
 * The shard of rank r in a batch of B: rows [r*B/N, (r+1)*B/N) (floors).
 * With T threads per rank that is global thread chunks r*T .. r*T+T-1 of
 * a one-process run with N*T threads whenever the chunk boundaries agree
 * (always for T = 1; for T > 1 when B/N is a multiple of T, e.g.).
 *
 * Exactness: the gradient equals, bit for bit, the one a single process
 * with N*T threads computes for the same batch:
 *   - conv2d: that process sums per-chunk weight gradients in chunk order
 *     (src/ops/conv2d/backward.c); every rank puts its T chunks' partials into one
 *     fused buffer (T blocks) and dist_allreduce_terms_f32 adds all N * T
 *     of them in global chunk order (a reduce-scatter + all-gather: about
 *     (T + 1) x the gradient's bytes per rank, not N x);
 *   - linear and batchnorm ("whole-batch layers"): that process runs a
 *     linear product (y, dx, dW) as sgemm calls over the whole batch, and
 *     OpenBLAS's result for a row depends on how many rows a call has; a
 *     batch norm's statistics and its backward sums are double sums over
 *     the batch's planes in batch order. So every rank gathers the
 *     layer's input rows (forward) and output-gradient rows (backward) of
 *     all ranks, runs the layer's own code on the whole batch (products
 *     cut into the blocks an N*T-thread process cuts: dg_sgemm_set_blocks)
 *     and keeps its own rows. That is SyncBN with the single-process
 *     maths exactly (statistics, running statistics, dgamma, dbeta), at
 *     the price of moving the layer's activations instead of 2 x C sums;
 *     these layers are computed on every rank, not divided (cheap for
 *     conv nets; an MLP gains nothing from more ranks). Batch norm + ReLU
 *     pairs run as two layers (model.unfused_training; bit-identical);
 *   - the loss's gradient is scaled by 1/B (the global batch);
 *   - dropout draws its noise as a function of the global row
 *     (rng_fill_uniform_part); augmentation already is one of (seed,
 *     epoch, image index).
 * One fixed-order all-reduce of one fused buffer per step carries the conv
 * gradients;
 * each linear layer adds one all-gather of rows each way. Every rank must
 * hold at least one row of every batch (B >= N, and so the epoch's last).
 *
 * Sync mode (DIST_SYNC, --dist-mode sync): the standard data-parallel
 * scheme. Every rank runs every layer on its own rows only; batch norm is
 * SyncBN: in the forward each rank's per-channel mean and M2 are
 * all-gathered and combined in rank order (parallel variance), in the
 * backward its sum dy and sum dy*(x - mean) are summed over the ranks;
 * every rank then has the whole batch's statistics, running statistics,
 * dgamma and dbeta. A ReLU right before or after a batch norm runs inside
 * it (as model.c fuses such pairs; the same bits as apart). The
 * gradient (m->grads, one buffer) is summed over the ranks by ONE
 * dist_allreduce_sum_f32 a step. Every sum runs in a fixed rank order, so
 * the weights are the same bits for a given N and T on every run; they
 * equal one process's only up to float summation order (convolution and
 * linear gradients are added per rank first, the batch norm statistics
 * per rank). Traffic: the gradient, 4 P bytes, plus 2 small collectives
 * of 2C doubles per batch norm layer.
 * Left out: --precision bf16 (its transposed partials), overlapping the
 * exchange with the backward pass. */
#ifndef DG_DIST_TRAIN_H
#define DG_DIST_TRAIN_H

#include "model/model.h"

typedef struct DistTrain DistTrain;

/* --dist-mode: exact (bit-identical to one process, batch norm and linear
 * layers on the gathered batch) or sync (every layer local, SyncBN, one
 * gradient all-reduce). The order is the option's choices'. */
typedef enum { DIST_EXACT = 0, DIST_SYNC = 1 } DistMode;

/* The rows [*lo, *lo + *n) of a batch of B that this rank trains on. */
void dist_train_shard(int B, int *lo, int *n);
/* 1 if dist_train_start would take m in either mode (its layers and the
 * precision), 0 if not; sets nothing up (an ensemble run plans groups of ranks with it). */
int dist_train_supports(const Model *m);
/* Set m up for distributed steps of global batches up to max_batch
 * (model_set_batch done) in the given mode. Returns the state (free with
 * dist_train_free), or NULL with dg_errmsg() naming what cannot be
 * trained distributed. */
DistTrain *dist_train_start(Model *m, int max_batch, DistMode mode);
void dist_train_free(DistTrain *d);
/* Before a shard's forward: rows [lo, lo + n) of a global batch of B. */
void dist_train_begin(DistTrain *d, int lo, int n, int B);
/* After model_backward on the shard: m->grads becomes the gradient of the
 * global batch, identical on every rank. */
void dist_train_reduce(DistTrain *d);
/* dlogits (n, 10) of the shard's rows for the mean loss over the global
 * batch of B: softmax_xent_backward's arithmetic with 1/B. */
void dist_train_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int n, int B);
/* Seconds spent in the exchange (sync mode: the gradient all-reduce and
 * SyncBN's sums), steps so far and bytes a rank sends per step. */
double dist_train_comm_seconds(const DistTrain *d, long *steps, size_t *bytes_per_step);

#endif
