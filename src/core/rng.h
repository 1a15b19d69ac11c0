/* rng.h — a small seeded random number generator (xoshiro256**).
 *
 * One Rng per purpose (initialisation, shuffling, dropout, augmentation) so
 * that changing, say, the dropout rate does not change the shuffle order.
 * The whole state is four words, so checkpoints can store it exactly.
 */
#ifndef DG_RNG_H
#define DG_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

/* Seed from a 64-bit value and a purpose tag (e.g. "init", "shuffle"). */
void rng_seed(Rng *r, uint64_t seed, const char *purpose);
uint64_t rng_next(Rng *r);
/* Uniform in [0, 1) with 24 bits of precision (exactly representable). */
float rng_uniform(Rng *r);
/* out[0..n) uniform in [0, 1), 24 bits each, for bulk use (dropout
 * noise): ONE draw from the stream seeds a counter-based hash (splitmix64
 * of seed + i), so the fill is vectorised and split across threads and
 * its values depend only on the stream state, never on the thread count. */
void rng_fill_uniform(Rng *r, float *out, size_t n);
/* Elements [offset, offset + n) of what rng_fill_uniform(r, ., offset + n
 * + more) would write, taking the same one draw from r: one shard of a
 * batch's noise (distributed training). offset 0 is rng_fill_uniform. */
void rng_fill_uniform_part(Rng *r, float *out, size_t offset, size_t n);
/* Uniform in [lo, hi). */
float rng_uniform_range(Rng *r, float lo, float hi);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *r);
/* Uniform integer in [0, n). */
uint32_t rng_below(Rng *r, uint32_t n);
/* Fisher-Yates shuffle of an int array. */
void rng_shuffle(Rng *r, int *a, int n);

#endif
