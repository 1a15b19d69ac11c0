/* train.c — train lenet5 for one epoch on MNIST, save it, evaluate it.
 *   cc train.c $(pkg-config --cflags --libs digits) -o train
 *   ./train [DATA_DIR [OUT.safetensors]]      (default data/mnist, lenet5.safetensors)
 * DIGITS_EXAMPLE_LIMIT=N trains on the first N images and tests on N (quick). */
#include <digits.h>
#include <stdio.h>
#include <stdlib.h>

/* Prints the epoch's numbers; returning non-zero would stop training. */
static int progress(const dg_progress *p, void *user) {
    (void)user;
    if (p->epoch_done)
        printf("epoch %d/%d: train loss %.4f acc %.4f, val acc %.4f\n", p->epoch, p->epochs, p->train_loss,
               p->train_acc, p->val_acc);
    return 0;
}

/* Prints the failed call's message and exits. */
static void check(int rc, const char *what) {
    if (rc < 0) {
        fprintf(stderr, "train: %s: %s\n", what, dg_errmsg());
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *data = argc > 1 ? argv[1] : "data/mnist";
    const char *out = argc > 2 ? argv[2] : "lenet5.safetensors";
    const char *limit = getenv("DIGITS_EXAMPLE_LIMIT");
    dg_dataset *train, *test;
    check(dg_dataset_load(&train, data, "train"), data);
    check(dg_dataset_load(&test, data, "test"), data);
    if (limit) { /* a quick run: the first N test images too */
        dg_dataset *few;
        check(dg_dataset_subset(test, 0, (size_t)atol(limit), &few), "subset");
        dg_dataset_free(test);
        test = few;
    }

    dg_model *model;
    check(dg_model_build(&model, "lenet5"), "lenet5");
    dg_train_config *cfg = dg_train_config_new();
    check(dg_train_set(cfg, "epochs", "1"), "epochs");
    check(dg_train_set_int(cfg, "batch-size", 64), "batch-size");
    if (limit) check(dg_train_set(cfg, "limit", limit), "limit");
    check(dg_train(model, train, NULL, cfg, progress, NULL, NULL), "training");
    check(dg_model_save(model, out), out);
    printf("saved %s\n", out);

    dg_metrics *mt;
    check(dg_evaluate(model, test, &mt), "evaluation");
    printf("test accuracy %.4f on %zu images\n", dg_metrics_accuracy(mt), dg_metrics_count(mt));
    dg_metrics_free(mt);
    dg_train_config_free(cfg);
    dg_model_free(model);
    dg_dataset_free(train);
    dg_dataset_free(test);
    return 0;
}
