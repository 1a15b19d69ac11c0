/* optim.c — SGD (momentum, Nesterov), Adam, AdamW and NAdam over a flat
 * vector; see optim.h for the update rules (PyTorch 1.13's).
 * Leaves out: AMSGrad, RMSprop, Adagrad. */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

void optim_init(Optimizer *o, OptimType type, size_t n_param) {
    memset(o, 0, sizeof *o);
    o->type = type;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->momentum_decay = 4e-3f;
    o->mu_product = 1.0;
    o->n = n_param;
    o->m = dg_xcalloc(2 * n_param, sizeof(float));
    o->v = o->m + n_param;
}

void optim_free(Optimizer *o) {
    free(o->m);
    o->m = o->v = NULL;
}

int optim_parse(const char *name, OptimType *type) {
    if (strcmp(name, "sgd") == 0) *type = OPTIM_SGD;
    else if (strcmp(name, "adam") == 0) *type = OPTIM_ADAM;
    else if (strcmp(name, "nadam") == 0) *type = OPTIM_NADAM;
    else if (strcmp(name, "adamw") == 0) *type = OPTIM_ADAMW;
    else return -1;
    return 0;
}

const char *optim_name(OptimType type) {
    static const char *const names[] = {"sgd", "adam", "nadam", "adamw"};
    return names[type];
}

/* The steps are element-wise: split over the threads above OPTIM_PAR_MIN
 * parameters (same bits for any thread count). Adam on cnn-bn's 0.87 M
 * parameters was a scalar loop, by estimate ~4 % of a two-thread step (an
 * A/B of the change stayed within this machine's noise). */
#define OPTIM_PAR_MIN (1 << 16)

static void sgd_step(Optimizer *o, float *restrict p, const float *restrict g, float lr) {
    const float wd = o->weight_decay, mu = o->momentum;
    float *restrict buf = o->m;
    const int first = o->step == 0;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (o->n >= OPTIM_PAR_MIN)
#endif
    for (size_t i = 0; i < o->n; i++) {
        float d = g[i] + wd * p[i];
        if (mu != 0.0f) {
            buf[i] = first ? d : mu * buf[i] + d;
            d = o->nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

static void adam_step(Optimizer *o, float *restrict p, const float *restrict g, float lr) {
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float wd = o->weight_decay;
    if (o->type == OPTIM_ADAMW) {
        /* decoupled: p *= 1 - lr*wd before the Adam step, no wd in g */
        const float keep = 1.0f - lr * wd;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (o->n >= OPTIM_PAR_MIN)
#endif
        for (size_t i = 0; i < o->n; i++) p[i] *= keep;
        wd = 0.0f;
    }
    const double t = (double)(o->step + 1);
    const float bc1 = (float)(1.0 - pow(b1, t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float step_size = lr / bc1;
    float *restrict m = o->m, *restrict v = o->v;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (o->n >= OPTIM_PAR_MIN)
#endif
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

/* mu_t = b1 * (1 - 0.5 * 0.96^(t * psi)), t 1-based (PyTorch's NAdam). */
static double nadam_mu(const Optimizer *o, long t) {
    return o->beta1 * (1.0 - 0.5 * pow(0.96, (double)t * o->momentum_decay));
}

static void nadam_step(Optimizer *o, float *restrict p, const float *restrict g, float lr) {
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    const long t = o->step + 1;
    /* prod of mu_1..mu_{t-1}: kept incrementally, rebuilt from the step
     * count whenever it is stale (a resumed optimiser restores only step) */
    if (o->mu_product_step != t - 1) {
        o->mu_product = 1.0;
        for (long k = 1; k < t; k++) o->mu_product *= nadam_mu(o, k);
    }
    const double mu = nadam_mu(o, t), mu_next = nadam_mu(o, t + 1);
    o->mu_product *= mu;
    o->mu_product_step = t;
    const double bc2 = 1.0 - pow(b2, (double)t);
    const float cg = (float)(lr * (1.0 - mu) / (1.0 - o->mu_product));
    const float cm = (float)(lr * mu_next / (1.0 - o->mu_product * mu_next));
    const float inv_bc2 = (float)(1.0 / bc2);
    float *restrict m = o->m, *restrict v = o->v;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (o->n >= OPTIM_PAR_MIN)
#endif
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i] * inv_bc2) + eps;
        p[i] -= cg * gi / denom + cm * m[i] / denom;
    }
}

void optim_step(Optimizer *o, float *params, const float *grads, float lr) {
    switch (o->type) {
    case OPTIM_SGD: sgd_step(o, params, grads, lr); break;
    case OPTIM_ADAM:
    case OPTIM_ADAMW: adam_step(o, params, grads, lr); break;
    case OPTIM_NADAM: nadam_step(o, params, grads, lr); break;
    }
    o->step++;
}

float *optim_state(Optimizer *o, size_t *count) {
    *count = 2 * o->n;
    return o->m;
}
