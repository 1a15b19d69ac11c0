/* global_pool.c — global average pooling: every (n, c) plane of H*W
 * values becomes its mean (Lin et al. 2013, "Network in Network"; the
 * head of a ResNet). Left out: global max pooling.
 */
#include "ops/ops.h"

/* y[n,c] = (1/HW) sum_i x[n,c,i]   x (N,C,HW)  y (N,C) */
void global_avgpool_forward(float *y, const float *x, int N, int C, int HW) {
    const float inv = 1.0f / (float)HW;
    for (size_t nc = 0; nc < (size_t)N * C; nc++) {
        const float *xp = x + nc * HW;
        float s = 0.0f;
        for (int i = 0; i < HW; i++) s += xp[i];
        y[nc] = s * inv;
    }
}

/* dx[n,c,i] = dy[n,c] / HW (overwritten) */
void global_avgpool_backward(float *dx, const float *dy, int N, int C, int HW) {
    const float inv = 1.0f / (float)HW;
    for (size_t nc = 0; nc < (size_t)N * C; nc++) {
        float g = dy[nc] * inv;
        float *dxp = dx + nc * HW;
        for (int i = 0; i < HW; i++) dxp[i] = g;
    }
}
