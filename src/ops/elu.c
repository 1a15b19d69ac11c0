/* elu.c — the exponential linear unit (Clevert et al. 2015), forward and
 * backward over n contiguous floats. Backward takes the forward OUTPUT y,
 * as activation.c's ReLU and tanh do: for x <= 0, dy/dx = alpha*exp(x) =
 * y + alpha. In-place use (y == x, dx == dy) is valid.
 * Left out: SELU's fixed scale (a separate layer if ever wanted).
 */
#include "ops/ops.h"

#include <math.h>

/* y = x (x > 0), alpha*(exp(x) - 1) otherwise */
void elu_forward(float *y, const float *x, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

/* dx = dy (y > 0), dy * (y + alpha) otherwise */
void elu_backward(float *dx, const float *dy, const float *y, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * (y[i] + alpha);
}
