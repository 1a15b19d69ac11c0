/* fuzz_idx.c — the IDX reader (src/data/idx.c), raw or gzip: the input is
 * the file as it lies on disk, read as images and as labels. Seeds: small
 * MNIST-shaped files, raw and gzipped, and broken ones. */
#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    Dataset ds;
    if (idx_read_images(path, &ds) == 0) {
        if (ds.n < 1 || ds.rows < 1 || ds.cols < 1 || !ds.pixels) abort();
        /* touch every pixel: ASan checks the buffer is as large as claimed */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * ds.rows * ds.cols; i++) sum += ds.pixels[i];
        (void)sum;
        dataset_free(&ds);
    } else {
        fuzz_check_error(path);
    }
    uint8_t *labels;
    int n;
    if (idx_read_labels(path, &labels, &n) == 0) {
        for (int i = 0; i < n; i++)
            if (labels[i] > 9) abort();
        free(labels);
    } else {
        fuzz_check_error(path);
    }
    return 0;
}
