/* fuzz_csv.c — the Kaggle CSV reader (src/data/csv.c). Seeds: tiny
 * train.csv / test.csv layouts (2x2 and 28x28 images), CRLF, a BOM, and
 * broken rows. */
#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    Dataset ds;
    if (csv_read(path, &ds) == 0) {
        if (ds.n < 1 || ds.rows < 1 || ds.rows != ds.cols || !ds.pixels) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * ds.rows * ds.cols; i++) sum += ds.pixels[i];
        for (int i = 0; ds.labels && i < ds.n; i++)
            if (ds.labels[i] > 9) abort();
        (void)sum;
        dataset_free(&ds);
    } else {
        fuzz_check_error(path);
    }
    return 0;
}
