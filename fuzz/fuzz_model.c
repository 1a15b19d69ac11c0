/* fuzz_model.c — the model-file loader (src/model/safetensors.c):
 * safetensors header, metadata, the embedded spec and every tensor, as
 * `digits eval` and `digits predict` load it (classifier_load), then one
 * prediction when the network is small. Seeds: tiny model files and a tiny
 * checkpoint (with train.* tensors). */
#include "eval/classifier.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    Classifier c;
    if (classifier_load(&c, path, 4, 1) == 0) {
        const Model *m = &c.models[0];
        if (model_macs(m) < 2e6 && model_floats_per_image(m, 0) < (1u << 18)) {
            size_t px = (size_t)c.width * c.height;
            uint8_t *pixels = calloc(px ? px : 1, 1);
            float probs[MODEL_NUM_CLASSES];
            if (!pixels) abort();
            for (size_t i = 0; i < px; i++) pixels[i] = (uint8_t)(i * 37);
            classifier_predict(&c, pixels, 1, probs, NULL);
            free(pixels);
        }
        classifier_free(&c);
    } else {
        fuzz_check_error(path);
    }
    return 0;
}
