/* cmd_ensemble.c — `digits ensemble`: put networks trained in separate runs
 * into one ensemble file (what Kaggle notebooks do by averaging the
 * predictions of models saved earlier), or take members out of one.
 *
 * Every input is a network or an ensemble file; an ensemble's members are
 * taken one by one, so files can be merged in any nesting. --pick keeps a
 * subset of the resulting members (0-based, in input order); picking one
 * member writes a plain single-network file, so one input with --dtype
 * converts a file's tensors (F32, BF16, F16). The output is written
 * atomically like every model file. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "options.h"
#include "eval/ensemble.h"

static const char *CMD = "ensemble";

static void help(void) {
    printf("usage: digits ensemble --out FILE [flags] MODEL...\n\n"
           "  MODEL...              network or ensemble files (their members are added in order)\n"
           "  --out FILE            the ensemble file to write                     (required)\n"
           "  --vote probs|logits   mean of probabilities or sum of logits [the first ensemble input's, else probs]\n"
           "  --pick LIST           keep only these members, 0-based, e.g. 0,2,5 (one: a single-network file)\n"
           "  --dtype f32|bf16|f16  stored tensor type (bf16/f16: half the size, rounded to nearest even) [f32]\n"
           "  --test DIR|FILE.csv   evaluate the written file on this labelled set and record its\n"
           "                        test_accuracy and test_loss in the file's metrics (digits info shows them)\n"
           "  --list                print the members of the inputs and write nothing\n\n"
           "Examples:\n"
           "  digits ensemble --out ens.safetensors a.safetensors b.safetensors c.safetensors\n"
           "  digits ensemble --list ens.safetensors\n"
           "  digits ensemble --dtype bf16 --out small.safetensors big.safetensors\n");
}

/* Parse "0,2,5" into keep[] (0/1 per member); exits 2 on a bad list. */
static void parse_pick(const char *s, int n, int *keep) {
    for (int k = 0; k < n; k++) keep[k] = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*tok == '\0' || *end != '\0' || v < 0 || v >= n)
            cli_usage_error(CMD, "--pick: '%s' is not a member index (0..%d)", tok, n - 1);
        if (keep[v]) cli_usage_error(CMD, "--pick: member %ld is listed twice", v);
        keep[v] = 1;
    }
    free(copy);
}

/* An ensemble file's own digits.train_config and digits.metrics (from its
 * metadata JSON) into *cfg and *metrics (malloc'd; NULL when absent). */
static void keep_ensemble_meta(const char *meta_json, char **cfg, char **metrics) {
    cJSON *meta = cJSON_Parse(meta_json ? meta_json : "{}");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(meta, "digits.train_config");
    cJSON *m = cJSON_GetObjectItemCaseSensitive(meta, "digits.metrics");
    *cfg = cJSON_IsString(c) ? strdup(c->valuestring) : NULL;
    *metrics = cJSON_IsString(m) ? strdup(m->valuestring) : NULL;
    cJSON_Delete(meta);
}

/* Evaluate the file just written (`out`: its stored, possibly rounded
 * weights) on the labelled set `test`, then write it again, in the same
 * dtype, with test_accuracy, test_loss and n_test merged into its metrics.
 * -1 with dg_errmsg() on failure (the file stays as first written). */
static int record_test_metrics(const char *out, const char *test, DgDtype dtype) {
    Classifier c;
    if (classifier_load(&c, out, 1000, 0) < 0) return -1;
    int rc = -1, n_test = 0;
    cJSON *meta = cJSON_Parse(c.metadata_json ? c.metadata_json : "{}"), *metrics = NULL;
    double acc, loss;
    if (classifier_measure(&c, test, &acc, &loss, &n_test) < 0) goto done;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(meta, "digits.metrics");
    metrics = cJSON_IsString(old) ? cJSON_Parse(old->valuestring) : NULL;
    if (!cJSON_IsObject(metrics)) {
        cJSON_Delete(metrics);
        metrics = cJSON_CreateObject();
    }
    const char *keys[] = {"test_accuracy", "test_loss", "n_test"};
    const double vals[] = {acc, loss, n_test};
    for (int i = 0; i < 3; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(metrics, keys[i]);
        cJSON_AddNumberToObject(metrics, keys[i], vals[i]);
    }
    char *mj = cJSON_PrintUnformatted(metrics);
    if (c.kind == CLASSIFIER_ENSEMBLE) {
        cJSON *cfg = cJSON_GetObjectItemCaseSensitive(meta, "digits.train_config");
        rc = ensemble_save_dtype(out, c.models, c.n_models, c.vote_logits, cJSON_IsString(cfg) ? cfg->valuestring : NULL,
                                 mj, dtype);
    } else {
        free(c.models[0].metrics_json);
        c.models[0].metrics_json = mj;
        mj = NULL;
        rc = model_save_dtype(&c.models[0], out, dtype);
    }
    free(mj);
    if (rc == 0) printf("test accuracy %.4f (loss %.4f) on %d images of %s, recorded in %s\n", acc, loss, n_test, test, out);
done:
    cJSON_Delete(metrics);
    cJSON_Delete(meta);
    classifier_free(&c);
    return rc;
}

int cmd_ensemble(int argc, char **argv) {
    const char *out = NULL, *vote = NULL, *pick = NULL, *test = NULL;
    int list = 0;
    DgDtype dtype = DG_DTYPE_F32;
    enum { O_OUT = 256, O_VOTE, O_PICK, O_LIST, O_HELP, O_DTYPE, O_TEST };
    static const struct option opts[] = {{"out", 1, 0, O_OUT}, {"vote", 1, 0, O_VOTE}, {"pick", 1, 0, O_PICK},
                                         {"list", 0, 0, O_LIST}, {"help", 0, 0, O_HELP}, {"dtype", 1, 0, O_DTYPE},
                                         {"test", 1, 0, O_TEST}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_VOTE:
            if (strcmp(optarg, "probs") && strcmp(optarg, "logits"))
                cli_usage_error(CMD, "--vote: '%s' is not probs or logits", optarg);
            vote = optarg;
            break;
        case O_PICK: pick = optarg; break;
        case O_LIST: list = 1; break;
        case O_TEST: test = optarg; break;
        case O_DTYPE:
            if (dtype_parse(optarg, &dtype) < 0) cli_usage_error(CMD, "--dtype: '%s' is not f32, bf16 or f16", optarg);
            break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(CMD, argv[optind - 1], opts);
        }
    }
    int n_in = argc - optind;
    if (n_in < 1) cli_usage_error(CMD, "give at least one model file");
    if (!out && !list) cli_usage_error(CMD, "--out FILE is required");

    Model *members = NULL;
    char **origin = NULL; /* "file" or "file#k", for --list */
    int n = 0, vote_logits = -1;
    char *ens_cfg = NULL, *ens_metrics = NULL; /* one ensemble input: its own, kept on conversion */
    for (int i = 0; i < n_in; i++) {
        const char *path = argv[optind + i];
        Classifier cl;
        if (classifier_load(&cl, path, 1, 1) < 0) cli_fail(CMD, "%s", dg_errmsg());
        if (cl.kind == CLASSIFIER_SVM) cli_fail(CMD, "%s: an SVM cannot be an ensemble member (networks only)", path);
        if (cl.kind == CLASSIFIER_ENSEMBLE && vote_logits < 0) vote_logits = cl.vote_logits;
        if (n + cl.n_models > ENSEMBLE_MAX_MEMBERS)
            cli_fail(CMD, "%s: more than %d members in all", path, ENSEMBLE_MAX_MEMBERS);
        members = realloc(members, (size_t)(n + cl.n_models) * sizeof *members);
        origin = realloc(origin, (size_t)(n + cl.n_models) * sizeof *origin);
        if (!members || !origin) cli_fail(CMD, "out of memory");
        for (int k = 0; k < cl.n_models; k++) {
            const Model *m = &cl.models[k];
            if (n > 0 && (m->input_shape.c != members[0].input_shape.c || m->input_shape.h != members[0].input_shape.h ||
                          m->input_shape.w != members[0].input_shape.w))
                cli_fail(CMD, "%s: takes %dx%dx%d images, %s takes %dx%dx%d", path, m->input_shape.c,
                         m->input_shape.h, m->input_shape.w, origin[0], members[0].input_shape.c,
                         members[0].input_shape.h, members[0].input_shape.w);
            char buf[4200];
            if (cl.kind == CLASSIFIER_ENSEMBLE) snprintf(buf, sizeof buf, "%s#%d", path, k);
            else snprintf(buf, sizeof buf, "%s", path);
            origin[n] = strdup(buf);
            members[n++] = *m; /* the model moves: cl no longer owns it */
        }
        if (n_in == 1 && cl.kind == CLASSIFIER_ENSEMBLE) keep_ensemble_meta(cl.metadata_json, &ens_cfg, &ens_metrics);
        cl.n_models = 0;
        classifier_free(&cl);
    }

    int *keep = dg_xmalloc((size_t)n * sizeof *keep);
    for (int k = 0; k < n; k++) keep[k] = 1;
    if (pick) parse_pick(pick, n, keep);
    int rc = 0;
    if (list) {
        for (int k = 0; k < n; k++)
            printf("%d\t%s\t%s\t%s\n", k, keep[k] ? "kept" : "dropped", members[k].spec_name, origin[k]);
    } else {
        Model *kept = dg_xmalloc((size_t)n * sizeof *kept);
        int n_kept = 0;
        for (int k = 0; k < n; k++)
            if (keep[k]) kept[n_kept++] = members[k];
        int use_logits = vote ? strcmp(vote, "logits") == 0 : vote_logits > 0;
        rc = n_kept == 1 ? model_save_dtype(&kept[0], out, dtype)
                         : ensemble_save_dtype(out, kept, n_kept, use_logits, pick ? NULL : ens_cfg,
                                               pick ? NULL : ens_metrics, dtype);
        if (rc == 0 && n_kept == 1) printf("wrote %s: %s (one network), %s tensors\n", out, kept[0].spec_name, dtype_name(dtype));
        else if (rc == 0)
            printf("wrote %s: ensemble of %d members, vote %s, %s tensors\n", out, n_kept, use_logits ? "logits" : "probs",
                   dtype_name(dtype));
        free(kept);
        if (rc == 0 && test) rc = record_test_metrics(out, test, dtype);
    }
    if (rc < 0) fprintf(stderr, "digits %s: %s\n", CMD, dg_errmsg());
    for (int k = 0; k < n; k++) {
        model_free(&members[k]);
        free(origin[k]);
    }
    free(members);
    free(origin);
    free(keep);
    free(ens_cfg);
    free(ens_metrics);
    return rc < 0 ? EXIT_RUNTIME : 0;
}
