/* merge.c — the two ways a layer graph joins branches: element-wise
 * addition (residual connections) and channel concatenation (Inception-
 * style parallel branches), forward and backward, NCHW.
 *
 * Per sample an input of add is L = C*H*W contiguous floats; an input of
 * concat is C_i planes of HW floats, and the output puts input 0's
 * channels first, then input 1's, ... (torch.cat(dim=1)).
 * Left out: broadcasting, concatenation along other axes.
 */
#include "ops/ops.h"

#include <string.h>

#include "core/check.h"

/* y = x_0 + x_1 + ...   xs[i] (N, L), y (N, L) */
void add_forward(float *y, const float *const *xs, int n_in, int N, size_t L) {
    DG_ASSERT(n_in >= 1);
    const size_t total = (size_t)N * L;
    memcpy(y, xs[0], total * sizeof(float));
    for (int i = 1; i < n_in; i++) {
        const float *x = xs[i];
        for (size_t j = 0; j < total; j++) y[j] += x[j];
    }
}

/* dx_i = dy for every input (overwritten; NULL skipped) */
void add_backward(float *const *dxs, const float *dy, int n_in, int N, size_t L) {
    for (int i = 0; i < n_in; i++)
        if (dxs[i]) memcpy(dxs[i], dy, (size_t)N * L * sizeof(float));
}

/* y[n, off_i + c] = x_i[n, c]   x_i (N, C_i, HW), y (N, sum C_i, HW) */
void concat_forward(float *y, const float *const *xs, const int *C, int n_in, int N, int HW) {
    int Ct = 0;
    for (int i = 0; i < n_in; i++) Ct += C[i];
    for (int n = 0; n < N; n++) {
        float *yn = y + (size_t)n * Ct * HW;
        for (int i = 0; i < n_in; i++) {
            size_t len = (size_t)C[i] * HW;
            memcpy(yn, xs[i] + (size_t)n * len, len * sizeof(float));
            yn += len;
        }
    }
}

/* dx_i[n, c] = dy[n, off_i + c] (overwritten; NULL skipped) */
void concat_backward(float *const *dxs, const float *dy, const int *C, int n_in, int N, int HW) {
    int Ct = 0;
    for (int i = 0; i < n_in; i++) Ct += C[i];
    for (int n = 0; n < N; n++) {
        const float *dyn = dy + (size_t)n * Ct * HW;
        for (int i = 0; i < n_in; i++) {
            size_t len = (size_t)C[i] * HW;
            if (dxs[i]) memcpy(dxs[i] + (size_t)n * len, dyn, len * sizeof(float));
            dyn += len;
        }
    }
}
