/* softmax_xent.c — row-wise softmax, and softmax fused with cross-entropy
 * against integer labels (mean over the batch), plus its backward.
 * Numerically stable: each row has its max subtracted before exp, and the
 * loss uses log-sum-exp (log p[y] = z[y] - max - log sum exp(z - max))
 * rather than log of a possibly-underflowed probability. Sums run in double.
 * Left out: label smoothing (its own op, label_smooth.c), class weights, ignore_index.
 */
#include "ops/ops.h"

#include <math.h>

#include "core/check.h"

/* probs[n,:] = exp(z - max) / sum exp(z - max) for one row of M logits;
 * returns log sum exp(z - max) (for the loss). */
static double softmax_row(float *restrict probs, const float *restrict z, int M) {
    float mx = z[0];
    for (int m = 1; m < M; m++) mx = z[m] > mx ? z[m] : mx;
    double sum = 0;
    for (int m = 0; m < M; m++) {
        float e = expf(z[m] - mx);
        probs[m] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int m = 0; m < M; m++) probs[m] *= inv;
    return log(sum) + mx;
}

/* logits (N,M) -> probs (N,M) */
void softmax_forward(float *probs, const float *logits, int N, int M) {
    for (int n = 0; n < N; n++) softmax_row(probs + (size_t)n * M, logits + (size_t)n * M, M);
}

/* loss = -(1/N) sum_n log probs[n, labels[n]];  also fills probs (N,M). */
float softmax_xent_forward(float *probs, const float *logits, const uint8_t *labels, int N, int M) {
    double loss = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * M;
        DG_ASSERT(labels[n] < M);
        double lse = softmax_row(probs + (size_t)n * M, z, M); /* log sum exp(z) */
        loss += lse - z[labels[n]];
    }
    return N ? (float)(loss / N) : 0.0f;
}

/* dlogits = (probs - onehot(labels)) / N   (overwritten) */
void softmax_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int N, int M) {
    const float inv = N ? 1.0f / (float)N : 0.0f;
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * M;
        float *d = dlogits + (size_t)n * M;
        for (int m = 0; m < M; m++) d[m] = p[m] * inv;
        d[labels[n]] = (p[labels[n]] - 1.0f) * inv; /* exact when p ~ 1 */
    }
}
