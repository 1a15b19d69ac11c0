/* blocks.h — run the independent blocks of one small job (a one-image
 * layer cut by output channels or rows) on the calling thread and helper
 * threads, without ever waiting for a helper that has not started.
 *
 * Why not an OpenMP region: its end is a barrier for every thread of the
 * team, so when the second core is busy (another process, a training at
 * nice 19), a one-image forward waits for a thread the kernel has not yet
 * scheduled, once per layer — measured on the 2-vCPU machine under load,
 * cnn-bn's one-image latency went from ~0.6 ms on one thread to 2.4-7 ms
 * split over two with OpenMP. Here the blocks are claimed one at a time
 * (an atomic ticket); the caller claims too, and at the end waits only for
 * blocks a helper actually took. A helper that is late finds nothing left.
 * Which thread runs a block never changes its result: block b works on its
 * own data (its own workspace slice), so results stay deterministic.
 *
 * When sharing loses (most recent jobs: the caller ran every block itself,
 * or waited for a helper's block longer than half its own work — a busy
 * machine), dg_blocks_width answers 1 for a while (the caller then runs
 * the job whole, not cut into blocks), then sharing is tried again
 * (blocks.c, judge). The first jobs after helpers are started are not
 * judged: a thread just created may not run yet.
 * Helpers are started on first use (up to nthreads - 1, at most
 * DG_BLOCKS_MAX_HELPERS), spin ~100 us after a job for the next one (the
 * next layer of the same forward), then sleep on a condition variable.
 * Left out on purpose: nested jobs (a block must not call dg_blocks_run;
 * a nested call runs its blocks inline), and jobs from several threads at
 * once (they are serialised by a mutex: the server's request threads each
 * get the helpers in turn).
 */
#ifndef DG_BLOCKS_H
#define DG_BLOCKS_H

#define DG_BLOCKS_MAX_HELPERS 15

/* How many threads a job should be cut for now: nthreads, or 1 inside a
 * block or while sharing is losing (see above). */
int dg_blocks_width(int nthreads);

/* Forgets past losses, so the next job is shared again (for tests). */
void dg_blocks_reset(void);

/* Run fn(arg, b) for b = 0..n-1 over the caller and up to nthreads - 1
 * helpers; returns when every block has finished. */
void dg_blocks_run(int n, int nthreads, void (*fn)(void *arg, int block), void *arg);

#endif
