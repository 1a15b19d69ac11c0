/* fuzz_yaml.c — the `digits train --config` YAML reader (src/train/options.c).
 * Seeds: configs/ (every recipe and seed 004's own file), a --print-config
 * output, and broken files (syntax errors, unknown keys, bad values).
 * Beyond the error contract it checks the round trip: whatever is accepted
 * prints (--print-config) as YAML that reads back and prints the same. */
#include "fuzz.h"
#include "train/options.h"

/* The settings printed as YAML; owned by the caller. */
static char *print_settings(const TrainOptions *o, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) abort();
    train_options_print_yaml(o, f);
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    TrainOptions o;
    train_options_defaults(&o);
    if (train_options_read_yaml(&o, path) == 0) {
        size_t n1, n2;
        char *first = print_settings(&o, &n1);
        TrainOptions again;
        train_options_defaults(&again);
        if (train_options_parse_yaml(&again, "printed", (const unsigned char *)first, n1) < 0) {
            fprintf(stderr, "printed settings do not read back: %s\n%s", dg_errmsg(), first);
            abort();
        }
        char *second = print_settings(&again, &n2);
        if (n1 != n2 || memcmp(first, second, n1) != 0) {
            fprintf(stderr, "round trip changed the settings:\n%s\n----\n%s", first, second);
            abort();
        }
        free(first);
        free(second);
        train_options_free(&again);
    } else {
        fuzz_check_error(path);
    }
    train_options_free(&o);
    return 0;
}
