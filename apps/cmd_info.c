/* cmd_info.c — `digits info MODEL`: what a model file holds (architecture,
 * parameters, tensor dtype, ensemble members and vote, training
 * configuration, data hash, recorded metrics, the digits version that
 * wrote it), as text or one JSON object; and `digits info --list` (alias
 * `digits models`): the zoo and the pretrained models present.
 * `info MODEL` reads everything through the public API (dg_model_info_json).
 * A training checkpoint (a file, or a --checkpoint-dir folder: its newest
 * checkpoint, or for an ensemble run each member's) adds where the run
 * stands (its digits.state) and the command that resumes it.
 * Leaves out: evaluating anything (that is `digits eval`). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "digits.h"
#include "digits_internal.h"
#include "ops/isa.h"
#include "options.h"
#include "train/resume.h"

static const char *CMD = "info";

static void help(void) {
    printf("usage: digits info [--json] MODEL       (MODEL: a model file, default or best)\n"
           "       digits info [--json] CHECKPOINT  (a --checkpoint-dir folder or one of its files)\n"
           "       digits info --list [--json]      (also: digits models)\n\n"
           "  --json    one JSON object instead of the text\n"
           "  --list    the zoo (models/*.spec: parameters, MACs per image) and the pretrained\n"
           "            models present (models/pretrained: dtype, size, recorded test accuracy)\n\n"
           "JSON keys of 'info MODEL': file, bytes, kind (cnn|ensemble|svm), name, digits_version\n"
           "(null: written before it was recorded), dtype (the tensors' dtypes, e.g. BF16), params\n"
           "(trainable), buffers (BN running stats), macs (forward multiply-adds per image, all\n"
           "members), input [C,H,W], norm_mean, norm_std, summary (the layer table's lines; cnn),\n"
           "members ([{name, params, macs}]; ensemble), vote (probs|logits; ensemble),\n"
           "train_config (object), data_hash, metrics (object) — null when not recorded;\n"
           "a checkpoint adds checkpoint: {epoch, batch (0: the epoch's start), step, epochs,\n"
           "finished, best_epoch, best_val_loss, best_val_acc, seconds, resume (the command)}, and an\n"
           "ensemble run's folder gives {\"members\": [{member, checkpoint}]} (null: not started).\n"
           "JSON of '--list': {\"zoo\": [{name, file, params (with buffers), macs}], \"pretrained\": [{name, file,\n"
           "kind, model, dtype, bytes, test_accuracy}]}.\n");
}

/* ---- helpers ---------------------------------------------------------------- */

/* Metadata value `key` of the JSON metadata object text (a JSON string
 * parsed as JSON: the object it holds, owned by the caller), or NULL. */
static cJSON *meta_json_value(const cJSON *meta, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? cJSON_Parse(v->valuestring) : NULL;
}

static const char *meta_str(const cJSON *meta, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "k=v k=v ..." of a flat JSON object, for the text output. */
static void print_flat(const char *label, const cJSON *o) {
    printf("%-10s", label);
    if (!cJSON_IsObject(o)) {
        printf("(not recorded)\n");
        return;
    }
    int col = 10;
    for (const cJSON *e = o->child; e; e = e->next) {
        char *v = cJSON_IsString(e) ? NULL : cJSON_PrintUnformatted(e);
        char item[512];
        int n = snprintf(item, sizeof item, "%s=%s", e->string, v ? v : e->valuestring);
        free(v);
        if (col > 10 && col + 1 + n > 100) {
            printf("\n%10s", "");
            col = 10;
        }
        printf("%s%s", col > 10 ? " " : "", item);
        col += n + (col > 10);
    }
    printf("\n");
}

/* The data hash: train_config's "data_hash", or metadata digits.data_hash. */
static const char *data_hash(const cJSON *meta, const cJSON *cfg) {
    cJSON *h = cJSON_GetObjectItemCaseSensitive(cfg, "data_hash");
    if (cJSON_IsString(h)) return h->valuestring;
    return meta_str(meta, "digits.data_hash");
}

static long file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---- info MODEL ------------------------------------------------------------- */

/* A number member of the API's info object (0 when absent). */
static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A copy of member `key` of the API's info object, or JSON null. */
static cJSON *copy(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

/* ---- checkpoints ------------------------------------------------------------ */

/* A number of digits.state: a JSON number, or a string holding a C99 hex
 * float ("0x1.9ecbp-5", exact) or "inf". NAN when absent. */
static double state_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    return cJSON_IsString(v) ? strtod(v->valuestring, NULL) : NAN;
}

/* Where the run of a checkpoint stands, from its digits.state text and
 * the epochs it runs, with the command that resumes it from `dir`; NULL
 * for a model file (no state). */
static cJSON *checkpoint_progress(const char *state, double epochs, const char *dir) {
    cJSON *st = state ? cJSON_Parse(state) : NULL;
    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        return NULL;
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(st, "result");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", state_num(st, "epoch"));
    cJSON_AddNumberToObject(o, "batch", state_num(st, "batch"));
    cJSON_AddNumberToObject(o, "step", state_num(st, "step"));
    cJSON_AddNumberToObject(o, "epochs", epochs);
    cJSON_AddBoolToObject(o, "finished", state_num(st, "finished") == 1);
    cJSON_AddNumberToObject(o, "best_epoch", state_num(res, "best_epoch"));
    const double loss = state_num(res, "best_val_loss");
    if (isfinite(loss)) cJSON_AddNumberToObject(o, "best_val_loss", loss);
    else cJSON_AddNullToObject(o, "best_val_loss"); /* no validation split, or no epoch ended yet */
    cJSON_AddNumberToObject(o, "best_val_acc", state_num(res, "best_val_acc"));
    cJSON_AddNumberToObject(o, "seconds", state_num(res, "seconds"));
    char cmd[8400], word[8300];
    snprintf(cmd, sizeof cmd, "digits train --resume %s", cli_shell_word(dir, word, sizeof word));
    if (state_num(st, "finished") == 1) cJSON_AddNullToObject(o, "resume"); /* nothing left to train */
    else cJSON_AddStringToObject(o, "resume", cmd);
    cJSON_Delete(st);
    return o;
}

/* The text of checkpoint_progress: "after epoch 3 of 45" or "in epoch 4 of
 * 45 (batch 120)", the step, the best epoch so far and the training time. */
static void print_progress(const cJSON *p) {
    const int epoch = (int)num(p, "epoch"), batch = (int)num(p, "batch"), epochs = (int)num(p, "epochs");
    char where[96];
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "finished")))
        snprintf(where, sizeof where, "finished (%d epochs)", epoch);
    else if (batch == 0) snprintf(where, sizeof where, "after epoch %d of %d", epoch, epochs);
    else snprintf(where, sizeof where, "in epoch %d of %d (batch %d)", epoch + 1, epochs, batch);
    printf("%-10s%s, step %.0f", "progress", where, num(p, "step"));
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(p, "best_val_loss");
    if (cJSON_IsNumber(loss) && num(p, "best_epoch") > 0)
        printf("; best epoch %d: val loss %.4f, acc %.4f", (int)num(p, "best_epoch"), loss->valuedouble,
               num(p, "best_val_acc"));
    printf("; %.0f s of training\n", num(p, "seconds"));
    const cJSON *resume = cJSON_GetObjectItemCaseSensitive(p, "resume");
    if (cJSON_IsString(resume)) printf("%-10s%s\n", "resume", resume->valuestring);
}

/* `info MODEL` from the public API: dg_model_load + dg_model_info_json. */
static int info_model(const char *arg, int json, const char *ckpt_dir) {
    char path[PATH_MAX];
    cli_model_path(CMD, arg, path, sizeof path);
    dg_set_threads(1);
    dg_model *dm;
    if (dg_model_load(&dm, path) != DG_OK) cli_fail(CMD, "%s", dg_errmsg());
    char *text = dg_model_info_json(dm);
    cJSON *info = cJSON_Parse(text);
    dg_free(text);
    if (!info) cli_fail(CMD, "out of memory");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(info, "metadata");
    cJSON *cfg = meta_json_value(meta, "digits.train_config");
    cJSON *metrics = meta_json_value(meta, "digits.metrics");
    const char *version = meta_str(meta, "digits.version");
    const char *kind = dg_model_kind(dm), *name = dg_model_name(dm);
    const char *dtypes = cJSON_GetObjectItemCaseSensitive(info, "dtype")->valuestring;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(info, "members");
    const cJSON *summary = cJSON_GetObjectItemCaseSensitive(info, "summary");
    const char *vote = meta_str(info, "vote");
    const int has_sizes = cJSON_HasObjectItem(info, "params"), vote_logits = vote && strcmp(vote, "logits") == 0;
    const char *hash = data_hash(meta, cfg);
    char dir_buf[PATH_MAX];
    if (!ckpt_dir) { /* a checkpoint file: its folder resumes */
        snprintf(dir_buf, sizeof dir_buf, "%s", path);
        char *slash = strrchr(dir_buf, '/');
        if (slash) *slash = '\0';
        else snprintf(dir_buf, sizeof dir_buf, ".");
        ckpt_dir = dir_buf;
    }
    cJSON *progress = checkpoint_progress(meta_str(meta, "digits.state"), state_num(cfg, "epochs"), ckpt_dir);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddNumberToObject(o, "bytes", (double)file_bytes(path));
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "name", name);
        if (version) cJSON_AddStringToObject(o, "digits_version", version);
        else cJSON_AddNullToObject(o, "digits_version");
        cJSON_AddStringToObject(o, "dtype", dtypes);
        if (has_sizes) {
            static const char *const keys[] = {"params", "buffers", "macs", "input"};
            for (int k = 0; k < 4; k++) cJSON_AddItemToObject(o, keys[k], copy(info, keys[k]));
        }
        if (summary) {
            static const char *const keys[] = {"norm_mean", "norm_std", "summary"};
            for (int k = 0; k < 3; k++) cJSON_AddItemToObject(o, keys[k], copy(info, keys[k]));
        }
        if (members) {
            cJSON_AddItemToObject(o, "members", copy(info, "members"));
            cJSON_AddItemToObject(o, "vote", copy(info, "vote"));
        }
        cJSON_AddItemToObject(o, "train_config", cfg ? cfg : cJSON_CreateNull());
        if (hash) cJSON_AddStringToObject(o, "data_hash", hash);
        else cJSON_AddNullToObject(o, "data_hash");
        cJSON_AddItemToObject(o, "metrics", metrics ? metrics : cJSON_CreateNull());
        if (progress) cJSON_AddItemToObject(o, "checkpoint", progress);
        cfg = metrics = progress = NULL; /* owned by o now */
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("%-10s%s (%ld bytes)\n", "file", path, file_bytes(path));
        printf("%-10s%s (%s)\n", "model", name, kind);
        printf("%-10s%s\n", "digits", version ? version : "(not recorded)");
        printf("%-10s%s\n", "dtype", dtypes);
        if (has_sizes)
            printf("%-10s%zu (+ %zu buffers), %.2f M MACs per image\n", "params", (size_t)num(info, "params"),
                   (size_t)num(info, "buffers"), num(info, "macs") / 1e6);
        if (summary) {
            printf("\n");
            for (const cJSON *l = summary->child; l; l = l->next) printf("%s\n", l->valuestring);
            printf("\n");
        }
        if (members) {
            printf("%-10s%d, vote %s\n", "members", cJSON_GetArraySize(members), vote_logits ? "logits" : "probs");
            int k = 0;
            for (const cJSON *mb = members->child; mb; mb = mb->next, k++) {
                const char *mname = meta_str(mb, "name");
                printf("  %-3d %-24s %10zu params %8.2f M MACs\n", k, mname ? mname : "?", (size_t)num(mb, "params"),
                       num(mb, "macs") / 1e6);
            }
        }
        print_flat("training", cfg);
        printf("%-10s%s\n", "data hash", hash ? hash : "(not recorded)");
        print_flat("metrics", metrics);
        if (progress) print_progress(progress);
        printf("%-10s%s\n", "kernels", ops_isa_describe()); /* this binary's, on this CPU */
    }
    cJSON_Delete(progress);
    cJSON_Delete(cfg);
    cJSON_Delete(metrics);
    cJSON_Delete(info);
    dg_model_free(dm);
    return 0;
}

/* ---- info CHECKPOINT-FOLDER ---------------------------------------------------- */

static int is_member_dir(const struct dirent *e) { return strncmp(e->d_name, "member-", 7) == 0; }

/* An ensemble run's folder: each member's progress (its newest checkpoint;
 * null for a member not started), in member order. */
static int info_ensemble_dir(const char *dir, int json) {
    Checkpoint run;
    if (checkpoint_open_ensemble(dir, &run) < 0) cli_fail(CMD, "%s", dg_errmsg());
    char out[sizeof run.out_path];
    snprintf(out, sizeof out, "%s", run.out_path);
    checkpoint_close(&run);
    struct dirent **names;
    int n = scandir(dir, &names, is_member_dir, alphasort);
    if (n < 0) cli_fail(CMD, "%s: cannot read the folder", dir);
    cJSON *members = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]->d_name);
        const int member = atoi(names[i]->d_name + 7); /* member-KK */
        free(names[i]);
        Checkpoint ck;
        Model m;
        cJSON *progress = NULL;
        if (checkpoint_open(sub, &ck, &m) == 0) { /* (a member not started has no checkpoint yet) */
            progress = checkpoint_progress(safetensors_meta(ck.st, "digits.state"), ck.cfg.epochs, dir);
            checkpoint_close(&ck);
            model_free(&m);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "member", member);
        cJSON_AddItemToObject(o, "checkpoint", progress ? progress : cJSON_CreateNull());
        cJSON_AddItemToArray(members, o);
    }
    free(names);
    if (json) {
        cJSON *o_out = cJSON_CreateObject();
        cJSON_AddStringToObject(o_out, "folder", dir);
        cJSON_AddStringToObject(o_out, "out", out);
        cJSON_AddItemToObject(o_out, "members", members);
        char *s = cJSON_Print(o_out);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o_out);
        return 0;
    }
    printf("%-10s%s: an ensemble run into %s (its finished members are there)\n", "folder", dir, out);
    printf("%-10s%d member%s with a checkpoint\n", "", n, n == 1 ? "" : "s");
    for (const cJSON *o = members->child; o; o = o->next) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "checkpoint");
        printf("\nmember %d\n", (int)num(o, "member"));
        if (cJSON_IsObject(p)) print_progress(p);
        else printf("%-10s(no checkpoint)\n", "progress");
    }
    cJSON_Delete(members);
    return 0;
}

/* A --checkpoint-dir folder: its newest loadable checkpoint (as training
 * would resume from it), or each member of an ensemble run. */
static int info_checkpoint_dir(const char *dir, int json) {
    if (checkpoint_is_ensemble(dir)) return info_ensemble_dir(dir, json);
    Checkpoint ck;
    Model m;
    if (checkpoint_open(dir, &ck, &m) < 0) cli_fail(CMD, "%s", dg_errmsg());
    if (ck.warning[0]) fprintf(stderr, "digits info: warning: %s\n", ck.warning);
    char path[sizeof ck.path];
    snprintf(path, sizeof path, "%s", ck.path);
    checkpoint_close(&ck);
    model_free(&m);
    return info_model(path, json, dir);
}

/* ---- info --list -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names (without `suffix`) of the files DIR/sub/ *suffix in every model
 * folder, the first folder's file winning a name; paths in *paths. Both
 * arrays malloc'd (and their strings); returns the count. */
static int list_files(const char *sub, const char *suffix, int with_cwd, char ***names, char ***paths) {
    char dirs[MODEL_MAX_DIRS][PATH_MAX];
    int nd = model_dirs(dirs, MODEL_MAX_DIRS, with_cwd), n = 0, cap = 0;
    *names = NULL;
    *paths = NULL;
    size_t sl = strlen(suffix);
    for (int i = 0; i < nd; i++) {
        char dir[sizeof dirs[0] + 32];
        snprintf(dir, sizeof dir, "%.4000s%s%s", dirs[i], *sub ? "/" : "", sub);
        DIR *d = opendir(dir);
        if (!d) continue;
        for (struct dirent *e; (e = readdir(d));) {
            size_t l = strlen(e->d_name);
            if (l <= sl || strcmp(e->d_name + l - sl, suffix) != 0) continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(l - sl), e->d_name);
            int dup = 0;
            for (int k = 0; k < n && !dup; k++) dup = strcmp((*names)[k], name) == 0;
            if (dup) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                *names = realloc(*names, (size_t)cap * sizeof **names);
                *paths = realloc(*paths, (size_t)cap * sizeof **paths);
                if (!*names || !*paths) cli_fail(CMD, "out of memory");
            }
            char full[2 * PATH_MAX];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            (*names)[n] = strdup(name);
            (*paths)[n] = strdup(full);
            n++;
        }
        closedir(d);
    }
    /* sort by name, keeping each path with its name */
    char **pairs = dg_xmalloc((size_t)(n ? n : 1) * sizeof *pairs);
    for (int k = 0; k < n; k++) {
        size_t a = strlen((*names)[k]), b = strlen((*paths)[k]);
        pairs[k] = dg_xmalloc(a + b + 2);
        memcpy(pairs[k], (*names)[k], a + 1);
        memcpy(pairs[k] + a + 1, (*paths)[k], b + 1);
        free((*names)[k]);
        free((*paths)[k]);
    }
    qsort(pairs, (size_t)n, sizeof *pairs, cmp_str);
    for (int k = 0; k < n; k++) {
        (*names)[k] = strdup(pairs[k]);
        (*paths)[k] = strdup(pairs[k] + strlen(pairs[k]) + 1);
        free(pairs[k]);
    }
    free(pairs);
    return n;
}

static void free_list(char **names, char **paths, int n) {
    for (int k = 0; k < n; k++) {
        free(names[k]);
        free(paths[k]);
    }
    free(names);
    free(paths);
}

static int info_list(int json) {
    cJSON *out = cJSON_CreateObject();
    cJSON *zoo = cJSON_AddArrayToObject(out, "zoo");
    char **names, **paths;
    int n = list_files("", ".spec", 1, &names, &paths);
    if (!json) printf("zoo (digits train --model NAME):\n  %-16s %10s %12s\n", "name", "params", "MACs/image");
    /* params as train --summary's total: trainable + buffers (BN statistics) */
    for (int k = 0; k < n; k++) {
        Model m;
        if (model_build_named(&m, paths[k]) < 0) {
            fprintf(stderr, "digits %s: %s\n", CMD, dg_errmsg());
            continue;
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", names[k]);
            cJSON_AddStringToObject(o, "file", paths[k]);
            cJSON_AddNumberToObject(o, "params", (double)(m.n_param + m.n_buffer));
            cJSON_AddNumberToObject(o, "macs", model_macs(&m));
            cJSON_AddItemToArray(zoo, o);
        } else {
            printf("  %-16s %10zu %10.2f M\n", names[k], m.n_param + m.n_buffer, model_macs(&m) / 1e6);
        }
        model_free(&m);
    }
    free_list(names, paths, n);

    cJSON *pre = cJSON_AddArrayToObject(out, "pretrained");
    n = list_files("pretrained", ".safetensors", 0, &names, &paths);
    if (!json) {
        printf("\npretrained (--model NAME):\n");
        if (n == 0) printf("  none found (models/pretrained beside the binary, under %s, or $DIGITS_MODELS)\n",
                           "the install prefix");
        else printf("  %-10s %-34s %-6s %10s %9s\n", "name", "model", "dtype", "bytes", "test acc");
    }
    for (int k = 0; k < n; k++) {
        SafeTensors *st = safetensors_open(paths[k]);
        if (!st) {
            fprintf(stderr, "digits %s: %s\n", CMD, dg_errmsg());
            continue;
        }
        char dtypes[64];
        safetensors_dtypes(st, dtypes, sizeof dtypes);
        const char *kind = safetensors_meta(st, "digits.kind");
        const char *mname = safetensors_meta(st, "digits.name");
        const char *mj = safetensors_meta(st, "digits.metrics");
        cJSON *metrics = mj ? cJSON_Parse(mj) : NULL;
        cJSON *acc = cJSON_GetObjectItemCaseSensitive(metrics, "test_accuracy");
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", names[k]);
            cJSON_AddStringToObject(o, "file", paths[k]);
            cJSON_AddStringToObject(o, "kind", kind ? kind : "cnn");
            cJSON_AddStringToObject(o, "model", mname ? mname : "?");
            cJSON_AddStringToObject(o, "dtype", dtypes);
            cJSON_AddNumberToObject(o, "bytes", (double)file_bytes(paths[k]));
            if (cJSON_IsNumber(acc)) cJSON_AddNumberToObject(o, "test_accuracy", acc->valuedouble);
            else cJSON_AddNullToObject(o, "test_accuracy");
            cJSON_AddItemToArray(pre, o);
        } else {
            char accs[16] = "-";
            if (cJSON_IsNumber(acc)) snprintf(accs, sizeof accs, "%.2f %%", 100 * acc->valuedouble);
            printf("  %-10s %-34.34s %-6s %10ld %9s\n", names[k], mname ? mname : "?", dtypes, file_bytes(paths[k]),
                   accs);
        }
        cJSON_Delete(metrics);
        safetensors_close(st);
    }
    free_list(names, paths, n);
    if (json) {
        char *s = cJSON_Print(out);
        printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(out);
    return 0;
}

int cmd_info(int argc, char **argv) {
    int json = 0, list = strcmp(argv[0], "models") == 0;
    enum { O_JSON = 256, O_LIST, O_HELP };
    static const struct option opts[] = {
        {"json", 0, 0, O_JSON}, {"list", 0, 0, O_LIST}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_JSON: json = 1; break;
        case O_LIST: list = 1; break;
        case O_HELP: help(); return 0;
        default: cli_bad_flag(list ? "models" : CMD, argv[optind - 1], opts);
        }
    }
    if (list) {
        if (optind < argc) cli_usage_error(CMD, "--list takes no model (unexpected '%s')", argv[optind]);
        return info_list(json);
    }
    if (optind >= argc) cli_usage_error(CMD, "give a model: a file, default or best (or --list)");
    if (optind + 1 < argc) cli_usage_error(CMD, "one model at a time (unexpected '%s')", argv[optind + 1]);
    struct stat sb;
    if (stat(argv[optind], &sb) == 0 && S_ISDIR(sb.st_mode)) return info_checkpoint_dir(argv[optind], json);
    return info_model(argv[optind], json, NULL);
}
