/* blocks.c — see blocks.h. One job at a time, published as a 64-bit
 * ticket: generation (32 bits) | blocks (16) | blocks claimed (16). A
 * thread claims block c by a compare-and-swap of claimed c -> c + 1 within
 * the same generation, so a helper still looking at the previous job can
 * never take a block of the next one. */
#include "core/blocks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* how long an idle helper spins for the next job before it sleeps */
#define SPIN_NS 100000L

static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER; /* one job at a time; guards `helpers` */
static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cv = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t ticket;
static atomic_int done, sleepers;
static void (*job_fn)(void *, int); /* written before the ticket is published */
static void *job_arg;
static int helpers;
static _Thread_local int inside; /* a block (or a helper) calling in: run inline */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

static long elapsed_ns(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Claim and run blocks of generation g until none is left; returns how
 * many this thread ran. */
static int work(uint32_t g) {
    uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
    int ran = 0;
    for (;;) {
        const unsigned n = (unsigned)(t >> 16) & 0xffff, c = (unsigned)t & 0xffff;
        if ((uint32_t)(t >> 32) != g || c >= n) return ran;
        if (atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) {
            job_fn(job_arg, (int)c);
            ran++;
            atomic_fetch_add_explicit(&done, 1, memory_order_release);
            t = atomic_load_explicit(&ticket, memory_order_acquire);
        }
    }
}

/* Is sharing paying? A job is a loss when the caller ran every block
 * itself (the helpers came too late: they only took CPU time spinning) or
 * waited for a helper's block longer than half its own work (a helper
 * descheduled mid-block: the machine is busy). When most recent jobs are
 * losses, the next BACKOFF_JOBS jobs run inline (the helpers fall
 * asleep), then sharing is tried again. Under job_mu. */
#define BACKOFF_JOBS 2000
#define GRACE_JOBS 64
static float loss_avg;
static atomic_int backoff;

/* Forget past losses: sharing is tried at once (tests that check the split). */
void dg_blocks_reset(void) {
    pthread_mutex_lock(&job_mu);
    loss_avg = 0;
    atomic_store(&backoff, 0);
    pthread_mutex_unlock(&job_mu);
}

static int grace; /* jobs not judged: helpers just started may not run yet */
static void judge(int n, int mine, long own_ns, long wait_ns) {
    if (grace > 0) {
        grace--;
        return;
    }
    const int loss = mine == n || wait_ns > own_ns / 2;
    loss_avg = 0.9f * loss_avg + 0.1f * (float)loss;
    if (loss_avg > 0.5f) {
        atomic_store(&backoff, BACKOFF_JOBS);
        loss_avg = 0;
    }
}

int dg_blocks_width(int nthreads) {
    if (nthreads <= 1 || inside) return 1;
    if (atomic_load_explicit(&backoff, memory_order_relaxed) > 0) {
        atomic_fetch_sub_explicit(&backoff, 1, memory_order_relaxed);
        return 1;
    }
    return nthreads <= DG_BLOCKS_MAX_HELPERS + 1 ? nthreads : DG_BLOCKS_MAX_HELPERS + 1;
}

/* A helper: wait for a new generation (spin, then sleep), work on it. */
static void *helper(void *unused) {
    (void)unused;
    inside = 1;
    uint32_t seen = (uint32_t)(atomic_load(&ticket) >> 32);
    for (;;) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        uint32_t g;
        for (unsigned i = 1;; i++) {
            g = (uint32_t)(atomic_load_explicit(&ticket, memory_order_acquire) >> 32);
            if (g != seen) break;
            if (i % 256 == 0 && elapsed_ns(&t0) > SPIN_NS) {
                pthread_mutex_lock(&sleep_mu);
                atomic_fetch_add(&sleepers, 1);
                while ((g = (uint32_t)(atomic_load(&ticket) >> 32)) == seen) pthread_cond_wait(&sleep_cv, &sleep_mu);
                atomic_fetch_sub(&sleepers, 1);
                pthread_mutex_unlock(&sleep_mu);
                break;
            }
            cpu_relax();
        }
        seen = g;
        work(g);
    }
    return NULL;
}

void dg_blocks_run(int n, int nthreads, void (*fn)(void *arg, int block), void *arg) {
    int want = nthreads - 1;
    if (want > n - 1) want = n - 1;
    if (want > DG_BLOCKS_MAX_HELPERS) want = DG_BLOCKS_MAX_HELPERS;
    if (want <= 0 || inside || n > 0xffff || pthread_mutex_trylock(&job_mu) != 0) {
        for (int b = 0; b < n; b++) fn(arg, b); /* alone, nested, or the helpers are busy with another job */
        return;
    }
    while (helpers < want) {
        pthread_t th;
        if (pthread_create(&th, NULL, helper, NULL) != 0) break;
        pthread_detach(th);
        helpers++;
        grace = GRACE_JOBS;
    }
    job_fn = fn;
    job_arg = arg;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    const uint32_t g = (uint32_t)(atomic_load(&ticket) >> 32) + 1;
    atomic_store(&ticket, (uint64_t)g << 32 | (uint64_t)n << 16);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_mu);
        pthread_cond_broadcast(&sleep_cv);
        pthread_mutex_unlock(&sleep_mu);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    inside = 1;
    const int mine = work(g);
    inside = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    while (atomic_load_explicit(&done, memory_order_acquire) < n) cpu_relax(); /* blocks a helper took */
    judge(n, mine, (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec), elapsed_ns(&t1));
    pthread_mutex_unlock(&job_mu);
}
