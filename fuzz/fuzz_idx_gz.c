/* fuzz_idx_gz.c — the IDX reader's gzip path: the input is the
 * *decompressed* IDX content, gzipped here before the read, so the fuzzer
 * explores IDX headers and bodies behind zlib (chunked reads, growing
 * buffers, trailing data) rather than the deflate format itself, which
 * fuzz_idx covers. The first byte picks the compression level (0 = stored). */
#include <zlib.h>

#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int level = data[0] % 10;
    data++;
    size--;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    uLong cap = deflateBound(&zs, (uLong)size) + 32;
    uint8_t *gz = malloc(cap);
    if (!gz) abort();
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)size;
    zs.next_out = gz;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
    size_t gz_len = cap - zs.avail_out;
    deflateEnd(&zs);

    const char *path = fuzz_file(gz, gz_len);
    free(gz);
    Dataset ds;
    if (idx_read_images(path, &ds) == 0) {
        if ((size_t)ds.n * ds.rows * ds.cols + 16 != size) abort(); /* exactly the content */
        dataset_free(&ds);
    } else {
        fuzz_check_error(path);
    }
    uint8_t *labels;
    int n;
    if (idx_read_labels(path, &labels, &n) == 0) {
        if ((size_t)n + 8 != size) abort();
        free(labels);
    } else {
        fuzz_check_error(path);
    }
    return 0;
}
