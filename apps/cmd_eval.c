/* cmd_eval.c — `digits eval`: accuracy, top-k accuracy, per-class report,
 * confusion matrix and the misclassified items of a saved model (any kind
 * the Classifier API loads) on a labelled data set, as text or JSON. The
 * model is loaded and run through the public API (dg_model_load,
 * dg_predict_batch); the data (its hold-out roles) and the report stay on
 * the internal modules, which the API leaves out. Under mpirun the ranks
 * share the images (predict_shard.h) and rank 0 alone reports. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "digits.h"
#include "digits_internal.h"
#include "options.h"
#include "quant/qmodel.h"
#include "predict_shard.h"
#include "dist/dist.h"

static const char *CMD = "eval";

static const unsigned SHARED = CLI_MODEL | CLI_DATA | CLI_BATCH | CLI_THREADS | CLI_TTA | CLI_PRECISION;

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits eval [--model FILE|default|best] [flags]\n\n");
    cli_common_help(CLI_MODEL | CLI_DATA, &co);
    printf("  --split S             train|test: a folder's IDX split; val: the model's own\n"
           "                        validation images, re-cut from its training data [test]\n"
           "  --limit N             evaluate only the first N images            [all]\n"
           "  --top-k K             top-1..K accuracy                           [3]\n"
           "  --misclassified N     list the N most confident mistakes (index, true,\n"
           "                        predicted, confidence); with --json: keep N  [text 0, json all]\n"
           "  --json                print one JSON object instead of the report\n"
           "  --int8-logits FILE    int8 model (digits quantize): also write each image's raw int8\n"
           "                        logits to FILE (-: stdout), 'index label predicted l0..l9'\n");
    cli_common_help(SHARED & ~(CLI_MODEL | CLI_DATA), &co);
    printf("\nExamples:\n"
           "  digits eval                                   # the pretrained default model on MNIST's test set\n"
           "  digits eval --model runs/cnn-bn.safetensors --data train.csv --split val\n"
           "  digits eval --model best --data holdout.csv --misclassified 10\n");
}

/* The data to evaluate: --data as given; without it the model's recorded
 * training data for --split val (when that path exists), else data/mnist
 * (cli_default_data: exits saying where it looked when it is missing). */
static const char *eval_data_path(const char *given, const char *split, const char *metadata_json) {
    if (given) return given;
    static TrainedOn t;
    holdout_parse(metadata_json, &t);
    struct stat st;
    if (strcmp(split, "val") == 0 && t.known && t.data[0] && stat(t.data, &st) == 0) return t.data;
    return cli_default_data(CMD);
}

/* stderr: the data is (or starts with) the images the model trained on. */
static void warn_training_data(const char *data, const Dataset *ds, const char *metadata_json) {
    TrainedOn t;
    holdout_parse(metadata_json, &t);
    fprintf(stderr, "digits %s: warning: %s: %s", CMD, data, HOLDOUT_WARNING);
    if (ds->n > t.data_n) fprintf(stderr, " [its first %d of %d images]", t.data_n, ds->n);
    fputc('\n', stderr);
}

/* Every image of ds through the public API (dg_predict_batch, shared by
 * the ranks of an MPI job): *pred (n) and *probs (n, 10), malloc'd; *loss
 * the mean cross-entropy of the probabilities (a probability below 1e-12
 * counts as 1e-12). Returns 0, or -1 on an MPI rank other than 0 (which
 * has nothing to report). */
static int predict_all(dg_model *m, const Dataset *ds, int batch, uint8_t **pred, float **probs, double *loss) {
    dg_prediction *out = predict_sharded(CMD, m, ds->pixels, (size_t)ds->n, batch);
    if (!out) return -1;
    *pred = dg_xmalloc((size_t)ds->n);
    *probs = dg_xmalloc((size_t)ds->n * MODEL_NUM_CLASSES * sizeof(float));
    double sum = 0;
    for (int i = 0; i < ds->n; i++) {
        (*pred)[i] = (uint8_t)out[i].digit;
        memcpy(*probs + (size_t)i * MODEL_NUM_CLASSES, out[i].probs, sizeof out[i].probs);
        float pt = out[i].probs[ds->labels[i]];
        sum += -log(pt > 1e-12f ? pt : 1e-12f);
    }
    *loss = ds->n ? sum / ds->n : 0.0;
    free(out);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    CliCommon co = cli_common_defaults();
    co.data = NULL; /* resolved by eval_data_path: the model's own data for --split val */
    const char *split = "test";
    int limit = 0, json = 0, top_k = 3, n_mis = -1;
    const char *int8_logits = NULL;
    enum { O_SPLIT = 256, O_LIMIT, O_TOPK, O_MIS, O_JSON, O_HELP, O_INT8_LOGITS };
    static const struct option own[] = {
        {"split", 1, 0, O_SPLIT}, {"limit", 1, 0, O_LIMIT}, {"top-k", 1, 0, O_TOPK},
        {"misclassified", 1, 0, O_MIS}, {"json", 0, 0, O_JSON}, {"help", 0, 0, O_HELP},
        {"int8-logits", 1, 0, O_INT8_LOGITS}, {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, SHARED);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_SPLIT:
            if (strcmp(optarg, "train") && strcmp(optarg, "test") && strcmp(optarg, "val"))
                cli_usage_error(CMD, "--split: '%s' is not train, test or val", optarg);
            split = optarg;
            break;
        case O_LIMIT: limit = cli_int(CMD, "--limit", optarg, 1, 100000000); break;
        case O_TOPK: top_k = cli_int(CMD, "--top-k", optarg, 1, MODEL_NUM_CLASSES); break;
        case O_MIS: n_mis = cli_int(CMD, "--misclassified", optarg, 0, 100000000); break;
        case O_JSON: json = 1; break;
        case O_INT8_LOGITS: int8_logits = optarg; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    char model_buf[PATH_MAX];
    const char *model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);
    const char *data = co.data;
    int batch = co.batch_size, threads = co.threads, tta = co.tta;

    predict_shard_start(CMD); /* under mpirun: one rank of the job */
    dg_set_threads(threads);
    dg_model *m;
    if (dg_model_load(&m, model_path) != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    dg_model_set_batch(m, batch);
    dg_model_set_tta(m, tta);
    const char *metadata = dg_model_metadata(m);
    Dataset ds = {0};
    DataRole role;
    data = eval_data_path(data, split, metadata);
    if (holdout_load(data, split, metadata, &ds, &role) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (!ds.labels) {
        char w1[8300], w2[8300];
        cli_fail(CMD, "%s: has no labels to score against (a Kaggle test.csv?); to predict it for Kaggle run "
                 "'digits submit --model %s --test %s', or evaluate on a labelled file (train.csv, or a hold-out "
                 "cut with 'digits convert --skip N')", data, cli_shell_word(model_path, w1, sizeof w1),
                 cli_shell_word(data, w2, sizeof w2));
    }
    if (role == DATA_TRAINING && dist_rank() == 0) warn_training_data(data, &ds, metadata);
    int width, height;
    dg_model_input_size(m, &width, &height);
    if (ds.rows != height || ds.cols != width)
        cli_fail(CMD, "%s: images are %dx%d, the model expects %dx%d", data, ds.rows, ds.cols, height, width);
    if (limit && limit < ds.n) ds.n = limit;
    if (int8_logits && dist_rank() == 0 && qfile_dump_logits(model_path, ds.pixels, ds.labels, ds.n, int8_logits) < 0)
        cli_fail(CMD, "%s", dg_errmsg());

    double loss;
    uint8_t *pred;
    float *probs;
    if (predict_all(m, &ds, batch, &pred, &probs, &loss) < 0) { /* an MPI rank but 0: its share is sent */
        dataset_free(&ds);
        dg_model_free(m);
        predict_shard_end();
        return 0;
    }
    Metrics mt;
    metrics_compute(&mt, ds.labels, pred, ds.n);
    metrics_set_top_k(&mt, probs, ds.labels, ds.n, top_k);
    Misclassified *mis;
    int total_mis = metrics_misclassified(ds.labels, pred, probs, ds.n, &mis);
    if (n_mis < 0) n_mis = json ? total_mis : 0;
    if (n_mis > total_mis) n_mis = total_mis;
    if (json) {
        char *list = misclassified_to_json(mis, n_mis);
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddNumberToObject(extra, "loss", loss);
        cJSON_AddStringToObject(extra, "model", dg_model_name(m));
        cJSON_AddStringToObject(extra, "data", split);
        cJSON_AddStringToObject(extra, "data_role", holdout_role_title(role));
        cJSON_AddNumberToObject(extra, "n_misclassified", total_mis);
        cJSON_AddItemToObject(extra, "misclassified", cJSON_Parse(list));
        char *extra_s = cJSON_PrintUnformatted(extra);
        char *s = metrics_to_json(&mt, extra_s);
        printf("%s\n", s);
        free(s);
        free(extra_s);
        free(list);
        cJSON_Delete(extra);
    } else {
        printf("model %s on %s (%s, %s): %d images, loss %.4f\n\n", model_path, data, split,
               holdout_role_title(role), ds.n, loss);
        metrics_print(stdout, &mt);
        if (n_mis > 0) {
            printf("\n%d misclassified; the %d most confident:\n%8s %5s %9s %10s\n", total_mis, n_mis, "index",
                   "true", "predicted", "confidence");
            for (int i = 0; i < n_mis; i++)
                printf("%8d %5d %9d %10.4f\n", mis[i].index, mis[i].truth, mis[i].pred, mis[i].confidence);
        }
    }
    free(mis);
    free(probs);
    free(pred);
    dataset_free(&ds);
    dg_model_free(m);
    predict_shard_end();
    return 0;
}
