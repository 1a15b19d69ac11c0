/* activation.c — element-wise ReLU and tanh, forward and backward, over n
 * contiguous floats. Backward takes the forward OUTPUT y (not x): both
 * derivatives are cheap functions of it, and the layer keeps y anyway.
 * Pointers are deliberately not `restrict`: in-place use (y == x,
 * dx == dy) is valid for every function here. Left out: other
 * activations (sigmoid, GELU, leaky ReLU).
 */
#include "ops/ops.h"

#include <math.h>

/* Below this many elements tanh stays on one thread (relu is memory-bound
 * and never worth the wake-up on this machine). */
#define TANH_PAR_MIN (1 << 15)

/* y = max(x, 0) */
void relu_forward(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx = dy * (y > 0) */
void relu_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = tanh(x) */
void tanh_forward(float *y, const float *x, size_t n) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= TANH_PAR_MIN)
#endif
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

/* dx = dy * (1 - y^2) */
void tanh_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}
