/* optim.c — SGD (momentum, Nesterov) and Adam over a flat vector; see optim.h.
 * Leaves out: Nadam and AdamW (they come with the model zoo). */
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
    else return -1;
    return 0;
}

static void sgd_step(Optimizer *o, float *restrict p, const float *restrict g, float lr) {
    const float wd = o->weight_decay, mu = o->momentum;
    float *restrict buf = o->m;
    const int first = o->step == 0;
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
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    const double t = (double)(o->step + 1);
    const float bc1 = (float)(1.0 - pow(b1, t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float step_size = lr / bc1;
    float *restrict m = o->m, *restrict v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

void optim_step(Optimizer *o, float *params, const float *grads, float lr) {
    if (o->type == OPTIM_SGD)
        sgd_step(o, params, grads, lr);
    else
        adam_step(o, params, grads, lr);
    o->step++;
}

float *optim_state(Optimizer *o, size_t *count) {
    *count = 2 * o->n;
    return o->m;
}
