/* fuzz_onnx.c — the ONNX reader and importer (src/model/onnx_file.c,
 * onnx_import.c): protobuf decoding, the field validation, then both import
 * paths (a digits export's stored spec, and node by node), as `digits
 * import` and `--model FILE.onnx` run them; then one prediction when the
 * network is small. Seeds: tiny digits exports (28x28 input, a few hundred
 * weights) and hand-built broken files (fuzz/make_corpus.sh). */
#include "fuzz.h"
#include "model/model.h"
#include "model/onnx.h"

/* Import with flags; on success one forward of a small network. */
static void try_import(const char *path, int flags) {
    Model m;
    if (onnx_import(&m, path, NULL, flags) < 0) {
        fuzz_check_error(path);
        return;
    }
    if (model_macs(&m) < 2e6 && model_floats_per_image(&m, 0) < (1u << 18)) {
        model_set_batch(&m, 1, 0, 1);
        uint8_t px[28 * 28];
        for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37);
        model_load_pixels(&m, px, 1);
        model_forward(&m, 1, 0);
    }
    model_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (onnx_check_buffer(data, size, "buffer") < 0) fuzz_check_error("buffer");
    const char *path = fuzz_file(data, size);
    try_import(path, 0);
    try_import(path, ONNX_IMPORT_GRAPH);
    return 0;
}
