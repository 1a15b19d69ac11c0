/* fuzz_spec.c — the architecture spec parser (src/model/spec.c) and, for a
 * spec that builds and is small, one training step on two images: every
 * layer's shape planning, allocation, forward and backward run on the
 * shapes the fuzzer invents. Seeds: the zoo (the files in models/) and variants. */
#include "model/model.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 16)) return 0;
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    Model m;
    if (model_build(&m, text, "fuzz.spec") == 0) {
        /* run it only when cheap: the fuzzer should spend its time parsing */
        if (m.n_param + m.n_buffer < (1u << 18) && model_floats_per_image(&m, 1) < (1u << 18) &&
            model_macs(&m) < 2e6) {
            model_init_params(&m, 1);
            model_set_batch(&m, 2, 1, 1);
            size_t in = (size_t)m.input_shape.c * m.input_shape.h * m.input_shape.w;
            for (size_t i = 0; i < 2 * in; i++) m.input[i] = (float)((i * 7919) % 13) - 6.0f;
            float *logits = model_forward(&m, 2, 1);
            float dlogits[2 * MODEL_NUM_CLASSES];
            for (int i = 0; i < 2 * MODEL_NUM_CLASSES; i++) dlogits[i] = logits[i] * 0.01f;
            model_zero_grad(&m);
            model_backward(&m, dlogits, 2);
            model_forward(&m, 1, 0);
        }
        model_free(&m);
    } else {
        fuzz_check_error("fuzz.spec");
    }
    free(text);
    return 0;
}
