/* conv2d/ref.c — the reference 2-D convolution (cross-correlation, as
 * PyTorch), forward and backward: plain nested loops with double
 * accumulators. What the tests trust (tests/test_ops_ref.c checks every
 * fast path against it), and a readable statement of the math. */
#include "ops/ops.h"

#include "core/check.h"
#include "ops/conv2d/plan.h"

/* y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n,c,p*stride+r-pad,q*stride+s-pad] */
void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                        int N, int C, int H, int W, int K, int R, int S, int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    double acc = b ? b[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++) {
                            int h = p * stride + r - pad;
                            if (h < 0 || h >= H) continue;
                            for (int s = 0; s < S; s++) {
                                int ww = q * stride + s - pad;
                                if (ww < 0 || ww >= W) continue;
                                acc += (double)w[((size_t)(k * C + c) * R + r) * S + s] *
                                       x[((size_t)(n * C + c) * H + h) * W + ww];
                            }
                        }
                    y[((size_t)(n * K + k) * P + p) * Q + q] = (float)acc;
                }
}

/* dx[n,c,h,w]   = sum_{k,r,s: h=p*stride+r-pad, w=q*stride+s-pad} w[k,c,r,s] dy[n,k,p,q]
 * dw[k,c,r,s] += sum_{n,p,q} dy[n,k,p,q] x[n,c,p*stride+r-pad,q*stride+s-pad]
 * db[k]       += sum_{n,p,q} dy[n,k,p,q]
 * Each output element is gathered in one double sum (no scatter), so the
 * reference is as exact as a float result can be.                        */
void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int C, int H, int W, int K, int R, int S,
                         int stride, int pad) {
    const int P = conv_out_size(H, R, stride, pad), Q = conv_out_size(W, S, stride, pad);
    DG_ASSERT(P > 0 && Q > 0 && stride > 0 && pad >= 0);
    if (db)
        for (int k = 0; k < K; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < P * Q; i++) acc += dy[(size_t)(n * K + k) * P * Q + i];
            db[k] += (float)acc;
        }
    if (dw)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++) {
                        double acc = 0;
                        for (int n = 0; n < N; n++)
                            for (int p = 0; p < P; p++) {
                                int h = p * stride + r - pad;
                                if (h < 0 || h >= H) continue;
                                for (int q = 0; q < Q; q++) {
                                    int ww = q * stride + s - pad;
                                    if (ww < 0 || ww >= W) continue;
                                    acc += (double)dy[((size_t)(n * K + k) * P + p) * Q + q] *
                                           x[((size_t)(n * C + c) * H + h) * W + ww];
                                }
                            }
                        dw[((size_t)(k * C + c) * R + r) * S + s] += (float)acc;
                    }
    if (dx)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++)
                    for (int ww = 0; ww < W; ww++) {
                        double acc = 0;
                        for (int r = 0; r < R; r++) {
                            int ph = h + pad - r; /* = p*stride */
                            if (ph < 0 || ph % stride) continue;
                            int p = ph / stride;
                            if (p >= P) continue;
                            for (int s = 0; s < S; s++) {
                                int qw = ww + pad - s;
                                if (qw < 0 || qw % stride) continue;
                                int q = qw / stride;
                                if (q >= Q) continue;
                                for (int k = 0; k < K; k++)
                                    acc += (double)w[((size_t)(k * C + c) * R + r) * S + s] *
                                           dy[((size_t)(n * K + k) * P + p) * Q + q];
                            }
                        }
                        dx[((size_t)(n * C + c) * H + h) * W + ww] = (float)acc;
                    }
}
