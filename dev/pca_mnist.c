/* pca_mnist.c — scratch: PCA of the MNIST training pixels (/255), components for 95 %. */
#include <stdio.h>
#include "digits.h"
#include "core/util.h"
#include "eval/pca.h"
int main(void) {
    Dataset ds = {0};
    if (dataset_load("data/mnist", "train", &ds) < 0) { fprintf(stderr, "%s\n", dg_errmsg()); return 1; }
    double t0 = now_seconds();
    Pca p;
    if (pca_fit_pixels(&p, ds.pixels, ds.n, 784, 1.0f / 255, 154) < 0) { fprintf(stderr, "%s\n", dg_errmsg()); return 1; }
    printf("fit %.2fs total var %.4f; 95%%: %d components, 154 explain %.4f; var0 %.5f var1 %.5f\n", now_seconds() - t0,
           p.total_variance, pca_components_for(&p, 0.95), pca_explained(&p, 154), p.variance[0], p.variance[1]);
    printf("comp0[0..5] %g %g %g; mean[400] %g\n", p.components[300], p.components[301], p.components[302], p.mean[400]);
    pca_free(&p);
    return 0;
}
