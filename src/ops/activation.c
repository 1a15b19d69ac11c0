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
 * and is split only over large batches, see RELU_PAR_MIN). */
#define TANH_PAR_MIN (1 << 15)

/* ReLU over a training batch of cnn-bn is 1.6 M floats: two cores move it
 * faster than one (measured ~5 % of a step single-threaded); below this
 * the wake-up costs more than it saves. */
#define RELU_PAR_MIN (1 << 18)

/* y = max(x, 0) */
void relu_forward(float *y, const float *x, size_t n) {
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (n >= RELU_PAR_MIN)
#endif
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx = dy * (y > 0) */
void relu_backward(float *dx, const float *dy, const float *y, size_t n) {
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (n >= RELU_PAR_MIN)
#endif
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* tanh as a rational function (the minimax approximation Eigen uses),
 * clamped where float tanh is +-1 anyway: max error ~1e-7 against tanhf,
 * and the loop vectorises (glibc's tanhf does not), which made tanh the
 * hottest op of lenet5. tanh_forward_ref keeps tanhf for the tests. */
static inline float tanh_rational(float x) {
    const float clamp = 7.90531110763549805f;
    float c = x > clamp ? clamp : (x < -clamp ? -clamp : x);
    float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

void tanh_forward_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

/* y = tanh(x) */
void tanh_forward(float *y, const float *x, size_t n) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= TANH_PAR_MIN)
#endif
    for (size_t i = 0; i < n; i++) y[i] = tanh_rational(x[i]);
}

/* dx = dy * (1 - y^2) */
void tanh_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}
