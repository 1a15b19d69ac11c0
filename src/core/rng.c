/* rng.c — xoshiro256** seeded through splitmix64. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed, const char *purpose) {
    /* FNV-1a of the purpose, mixed into the seed: independent streams. */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = purpose; p && *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(Rng *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

static inline uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_fill_uniform(Rng *r, float *out, size_t n) {
    const uint64_t seed = rng_next(r);
    const size_t pairs = n / 2;
    const float scale = 1.0f / 16777216.0f;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (pairs >= (1u << 16))
#endif
    for (size_t i = 0; i < pairs; i++) { /* two 24-bit uniforms per 64-bit hash */
        const uint64_t h = splitmix64_mix(seed + (i + 1) * 0x9e3779b97f4a7c15ULL);
        out[2 * i] = (float)(h >> 40) * scale;
        out[2 * i + 1] = (float)((h >> 16) & 0xffffff) * scale;
    }
    if (n & 1) out[n - 1] = (float)(splitmix64_mix(seed + (pairs + 1) * 0x9e3779b97f4a7c15ULL) >> 40) * scale;
}

/* Element k of the fill above is half k % 2 of hash k / 2 + 1. */
void rng_fill_uniform_part(Rng *r, float *out, size_t offset, size_t n) {
    if (offset == 0) {
        rng_fill_uniform(r, out, n);
        return;
    }
    const uint64_t seed = rng_next(r);
    const float scale = 1.0f / 16777216.0f;
    for (size_t i = 0; i < n; i++) {
        const size_t k = offset + i;
        const uint64_t h = splitmix64_mix(seed + (k / 2 + 1) * 0x9e3779b97f4a7c15ULL);
        out[i] = (float)(k % 2 ? (h >> 16) & 0xffffff : h >> 40) * scale;
    }
}

float rng_uniform_range(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

float rng_normal(Rng *r) {
    double u1 = ((rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
    double u2 = (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t rng_below(Rng *r, uint32_t n) {
    /* Lemire's multiply-shift; the tiny bias is irrelevant for shuffling. */
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

void rng_shuffle(Rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
