/* epilogue.c — bias and the eval-mode steps fused into a conv/linear
 * output (see Epilogue in ops.h). One channel row at a time, so a row is
 * read from cache once per step. The affine step is written exactly as
 * batchnorm_forward_eval computes it, so fused and unfused inference agree.
 * An epilogue's pooling or padding is the conv's (conv2d/forward.c, chunk_finish). */
#include "ops/ops.h"

#include <stddef.h>

void epilogue_apply(float *y, int N, int K, int L, const float *bias, const Epilogue *ep) {
    if (!bias && !ep) return;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float *restrict v = y + ((size_t)n * K + k) * L;
            if (bias) {
                const float bk = bias[k];
                for (int i = 0; i < L; i++) v[i] += bk;
            }
            for (int s = 0; ep && s < ep->n; s++) {
                if (ep->step[s].relu) {
                    for (int i = 0; i < L; i++) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
                } else if (ep->step[s].tanh) {
                    tanh_forward(v, v, (size_t)L); /* the tanh layer's own function: same values */
                } else {
                    const float sub = ep->step[s].sub[k], mul = ep->step[s].mul[k], add = ep->step[s].add[k];
                    for (int i = 0; i < L; i++) v[i] = (v[i] - sub) * mul + add;
                }
            }
        }
}
