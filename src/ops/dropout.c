/* dropout.c — inverted dropout: in training each unit (dropout) or each
 * whole (n, c) plane of L elements (dropout2d, "spatial" dropout) is kept
 * with probability 1-p and scaled by 1/(1-p), so eval is the identity.
 * The caller supplies the uniform numbers u in [0,1): an element is kept
 * iff u >= p. The kernels stay pure; the RNG lives in the layer.
 *
 * mask layout: dropout keeps one scale per element (n floats); dropout2d
 * keeps one scale per plane (N*C floats), which is all backward needs.
 * Each scale is 0 or 1/(1-p); p == 0 gives a mask of ones (identity),
 * p >= 1 drops everything. Left out: alpha dropout, eval-mode handling
 * (the layer simply skips the op).
 */
#include "ops/ops.h"

/* The scale a kept unit gets. */
static inline float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

/* mask[i] = u[i] >= p ? 1/(1-p) : 0;  y = x * mask   (all n elements) */
void dropout_forward(float *y, float *mask, const float *x, const float *u, size_t n, float p) {
    const float s = keep_scale(p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = u[i] >= p ? s : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

/* mask[n*C+c] = u[n*C+c] >= p ? 1/(1-p) : 0;  y[n,c,:] = x[n,c,:] * mask[n*C+c]
 * x, y (N,C,L)  u, mask (N*C) */
void dropout2d_forward(float *y, float *mask, const float *x, const float *u, int N, int C, int L,
                       float p) {
    const float s = keep_scale(p);
    for (size_t i = 0; i < (size_t)N * C; i++) {
        const float m = u[i] >= p ? s : 0.0f;
        mask[i] = m;
        const float *xp = x + i * L;
        float *yp = y + i * L;
        for (int l = 0; l < L; l++) yp[l] = xp[l] * m;
    }
}

/* dx = dy * mask (dx overwritten; may be dy itself) */
void dropout_backward(float *dx, const float *dy, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * mask[i];
}

/* dx[n,c,:] = dy[n,c,:] * mask[n*C+c] */
void dropout2d_backward(float *dx, const float *dy, const float *mask, int N, int C, int L) {
    for (size_t i = 0; i < (size_t)N * C; i++) {
        const float m = mask[i];
        const float *dyp = dy + i * L;
        float *dxp = dx + i * L;
        for (int l = 0; l < L; l++) dxp[l] = dyp[l] * m;
    }
}
