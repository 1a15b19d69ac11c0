/* activation.c — element-wise ReLU and tanh, forward and backward, over n
 * contiguous floats. Backward takes the forward OUTPUT y (not x): both
 * derivatives are cheap functions of it, and the layer keeps y anyway.
 * Pointers are deliberately not `restrict`: in-place use (y == x,
 * dx == dy) is valid for every function here. Left out: other
 * activations (sigmoid, GELU, leaky ReLU).
 */
#include "ops/ops.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements tanh stays on one thread (relu is memory-bound
 * and is split only over large batches, see RELU_PAR_MIN). */
#define TANH_PAR_MIN (1 << 15)

/* ReLU over a training batch of cnn-bn is 1.6 M floats: two cores move it
 * faster than one (measured ~5 % of a step single-threaded); below this
 * the wake-up costs more than it saves. */
#define RELU_PAR_MIN (1 << 18)

/* y = max(x, 0) */
static void relu_forward_span(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward_span(float *restrict dx, const float *restrict dy, const float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* In-place use (y == x, dx == dy) is allowed: spans are split so that each
 * thread's range reads and writes only itself. Below RELU_PAR_MIN one plain
 * vectorised loop (an OpenMP region with a false `if` still cost 3x here). */
void relu_forward(float *y, const float *x, size_t n) {
    if (n < RELU_PAR_MIN || y == x) {
        if (y == x)
            for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        else
            relu_forward_span(y, x, n);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t a = n * t / nt, b = n * (t + 1) / nt;
        relu_forward_span(y + a, x + a, b - a);
    }
#else
    relu_forward_span(y, x, n);
#endif
}

/* dx = dy * (y > 0) */
void relu_backward(float *dx, const float *dy, const float *y, size_t n) {
    if (n < RELU_PAR_MIN || dx == dy || dx == y) {
        for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        return;
    }
#ifdef _OPENMP
#pragma omp parallel
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t a = n * t / nt, b = n * (t + 1) / nt;
        relu_backward_span(dx + a, dy + a, y + a, b - a);
    }
#else
    relu_backward_span(dx, dy, y, n);
#endif
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

/* y = tanh(x); small tensors outside any OpenMP region (see relu_forward) */
void tanh_forward(float *y, const float *x, size_t n) {
    if (n < TANH_PAR_MIN) {
        for (size_t i = 0; i < n; i++) y[i] = tanh_rational(x[i]);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (size_t i = 0; i < n; i++) y[i] = tanh_rational(x[i]);
}

/* dx = dy * (1 - y^2) */
void tanh_backward(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}
