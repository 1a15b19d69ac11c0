/* classify.c — classify image files with the pretrained default model.
 *   cc classify.c $(pkg-config --cflags --libs digits) -o classify
 *   ./classify digit.png photo.jpg */
#include <digits.h>
#include <stdio.h>

int main(int argc, char **argv) {
    dg_model *model;
    if (dg_model_load(&model, "default") != DG_OK) {
        fprintf(stderr, "classify: %s\n", dg_errmsg());
        return 1;
    }
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        dg_prediction p;
        if (dg_predict_file(model, argv[i], &p) != DG_OK) {
            fprintf(stderr, "classify: %s\n", dg_errmsg());
            failed = 1;
            continue;
        }
        printf("%s: %d (p=%.4f)\n", argv[i], p.digit, p.probs[p.digit]);
    }
    dg_model_free(model);
    return failed;
}
