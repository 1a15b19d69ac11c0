/* label_smooth.c — the label-smoothed softmax cross-entropy: its loss and
 * the correction that turns the plain gradient into the smoothed one (see
 * ops.h). Sums run in double, log-sum-exp shifted by the row's maximum.
 *
 * Left out on purpose: a smoothing prior other than the uniform one. */
#include "ops/ops.h"

#include <math.h>
#include <stddef.h>

/* log Σ_k exp(z_k), shifted by the row's maximum. */
static double log_sum_exp(const float *z, int K) {
    float mx = z[0];
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
    return mx + log(s);
}

double label_smooth_loss_sum(const float *logits, const uint8_t *labels, int n, int K, float eps) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        double lse = log_sum_exp(z, K), all = 0;
        for (int k = 0; k < K; k++) all += lse - z[k];
        sum += (1.0 - eps) * (lse - z[labels[i]]) + eps / K * all;
    }
    return sum;
}

void label_smooth_grad(float *dlogits, const uint8_t *labels, int n, int K, int B, float eps) {
    if (B <= 0) return;
    const float off = eps / (float)K / (float)B, on = eps / (float)B;
    for (int i = 0; i < n; i++) {
        float *d = dlogits + (size_t)i * K;
        for (int k = 0; k < K; k++) d[k] -= off;
        d[labels[i]] += on;
    }
}
