/* tsne_mnist.c — scratch: t-SNE of N MNIST test images (PCA-50 of [0,1] pixels), timed, drawn. */
#include <stdio.h>
#include <stdlib.h>
#include "digits.h"
#include "core/util.h"
#include "eval/figures.h"
#include "eval/pca.h"
#include "eval/tsne.h"
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    Dataset ds = {0};
    if (dataset_load("data/mnist", "test", &ds) < 0) { fprintf(stderr, "%s\n", dg_errmsg()); return 1; }
    double t0 = now_seconds();
    Pca p;
    if (pca_fit_pixels(&p, ds.pixels, n, 784, 1.0f / 255, 50) < 0) { fprintf(stderr, "%s\n", dg_errmsg()); return 1; }
    float *x = malloc((size_t)n * 50 * sizeof(float)), *y = malloc((size_t)n * 2 * sizeof(float));
    pca_transform_pixels(&p, ds.pixels, n, 1.0f / 255, 50, x);
    TsneConfig cfg;
    tsne_config_defaults(&cfg);
    cfg.verbose = 1;
    TsneStats st;
    if (tsne_run(x, n, 50, &cfg, y, &st) < 0) { fprintf(stderr, "%s\n", dg_errmsg()); return 1; }
    printf("n %d: t-SNE %.1fs (total %.1fs), KL %.3f, K %d\n", n, st.seconds, now_seconds() - t0, st.kl, st.neighbours);
    if (fig_scatter("/tmp/tsne_dev", y, ds.labels, n, "t-SNE of raw pixels (PCA-50)", "t-SNE 1", "t-SNE 2", 0, 0) < 0)
        fprintf(stderr, "%s\n", dg_errmsg());
    return 0;
}
