/* ensemble_train.c — training the members of an ensemble one after the
 * other with train_run, and saving them as one file; see ensemble_train.h.
 *
 * Members train one at a time, each using every core: on two cores,
 * running members side by side would only split the same threads.
 * Left out: bagging (bootstrap resamples), snapshot ensembles (members
 * taken from one run's learning-rate cycles).
 */
#include "train/ensemble_train.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "eval/classifier.h"
#include "eval/ensemble.h"
#include "eval/metrics.h"
#include "train/resume.h"

/* The ensemble's own train_config: the shared settings plus the members. */
static char *ensemble_config_json(const EnsembleTrainConfig *ec, const TrainConfig *cfg, int n_train, int n_val) {
    char *base = train_config_json(cfg, "ensemble", n_train, n_val);
    cJSON *o = cJSON_Parse(base);
    free(base);
    DG_ASSERT(o);
    cJSON *arr = cJSON_AddArrayToObject(o, "members");
    for (int k = 0; k < ec->n; k++) cJSON_AddItemToArray(arr, cJSON_CreateString(ec->models[k]));
    cJSON_AddNumberToObject(o, "kfold", ec->kfold);
    cJSON_AddStringToObject(o, "vote", ec->vote_logits ? "logits" : "probs");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Indices of the samples in fold k (va) and in the others (tr); owned. */
static void fold_indices(const int *fold_of, int n, int k, int **tr, int *ntr, int **va, int *nva) {
    *tr = dg_xmalloc((size_t)n * sizeof(int));
    *va = dg_xmalloc((size_t)n * sizeof(int));
    *ntr = *nva = 0;
    for (int i = 0; i < n; i++) {
        if (fold_of[i] == k) (*va)[(*nva)++] = i;
        else (*tr)[(*ntr)++] = i;
    }
}

/* A finished member's figures, from the metrics ensemble_train stored in it. */
static void kept_member_figures(const Model *m, double *val_acc, double *seconds) {
    cJSON *o = m->metrics_json ? cJSON_Parse(m->metrics_json) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "val_accuracy");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "train_seconds");
    *val_acc = cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : NAN;
    *seconds = cJSON_IsNumber(t) ? t->valuedouble : 0;
    cJSON_Delete(o);
}

/* Resuming: the members cfg->out_path already holds, moved into ms.
 * Returns how many (0 if the file does not exist yet), or -1 if it is not
 * this run's ensemble. */
static int keep_finished(const EnsembleTrainConfig *ec, const TrainConfig *cfg, const char *ens_cfg, Model *ms) {
    struct stat sb;
    if (stat(cfg->out_path, &sb) != 0) return 0;
    Classifier c;
    if (classifier_load(&c, cfg->out_path, cfg->batch_size, cfg->threads) < 0) return -1;
    cJSON *meta = cJSON_Parse(c.metadata_json);
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(meta, "digits.train_config");
    int same = c.kind == CLASSIFIER_ENSEMBLE && cJSON_IsString(saved) && strcmp(saved->valuestring, ens_cfg) == 0 &&
               c.n_models <= ec->n;
    cJSON_Delete(meta);
    if (!same) {
        classifier_free(&c);
        return dg_set_error("%s: not the ensemble this run was writing (other settings or members); "
                            "move it away or give the run's own --out", cfg->out_path);
    }
    int n = c.n_models;
    memcpy(ms, c.models, (size_t)n * sizeof *ms);
    free(c.models); /* the models themselves now belong to ms */
    c.models = NULL;
    c.n_models = 0;
    classifier_free(&c);
    return n;
}

int ensemble_train(const EnsembleTrainConfig *ec, const Dataset *all, const TrainConfig *cfg,
                   Model **members, EnsembleTrainResult *res) {
    DG_ASSERT(ec->n >= 1 && ec->n <= ENSEMBLE_TRAIN_MAX && all->labels && cfg->out_path);
    DG_ASSERT(ec->kfold == 0 || (ec->kfold >= 2 && ec->kfold == ec->n));
    DG_ASSERT(!cfg->checkpoint_dir || cfg->threads >= 1);
    DG_ASSERT(!ec->resume || cfg->checkpoint_dir);
    memset(res, 0, sizeof *res);
    res->val_acc = res->oof_acc = NAN;
    Model *ms = dg_xcalloc((size_t)ec->n, sizeof *ms);
    int built = 0, rc = -1;
    int *fold_of = NULL;
    long oof_correct = 0;
    Dataset shared_tr = {0}, shared_va = {0};
    if (ec->kfold) {
        split_kfold(all->labels, all->n, ec->kfold, cfg->seed, &fold_of);
    } else {
        int *tr, *va, ntr, nva;
        split_stratified(all->labels, all->n, ec->val_split, cfg->seed, &tr, &ntr, &va, &nva);
        dataset_subset(&shared_tr, all, tr, ntr);
        dataset_subset(&shared_va, all, va, nva);
        free(tr);
        free(va);
    }
    char *ens_cfg = ensemble_config_json(ec, cfg, ec->kfold ? all->n : shared_tr.n, ec->kfold ? 0 : shared_va.n);
    if (ec->resume) {
        res->kept = keep_finished(ec, cfg, ens_cfg, ms);
        if (res->kept < 0) goto out;
        built = res->kept;
    } else if (cfg->checkpoint_dir && checkpoint_save_ensemble(cfg->checkpoint_dir, cfg, cfg->threads) < 0) {
        goto out;
    }

    for (int k = 0; k < ec->n; k++) {
        Dataset fold_tr = {0}, fold_va = {0};
        const Dataset *tr = &shared_tr, *va = &shared_va;
        if (ec->kfold) {
            int *ti, *vi, nt, nv;
            fold_indices(fold_of, all->n, k, &ti, &nt, &vi, &nv);
            dataset_subset(&fold_tr, all, ti, nt);
            dataset_subset(&fold_va, all, vi, nv);
            free(ti);
            free(vi);
            tr = &fold_tr, va = &fold_va;
        }
        Model *m = &ms[k];
        TrainConfig mc = *cfg;
        mc.seed = cfg->seed + (uint64_t)k;
        mc.out_path = NULL; /* the ensemble file is saved below */
        mc.log_path = NULL;
        mc.run_json = NULL;
        mc.checkpoint_dir = NULL;
        mc.resume = NULL;
        char member_dir[4200] = "";
        if (cfg->checkpoint_dir) {
            snprintf(member_dir, sizeof member_dir, "%s/member-%02d", cfg->checkpoint_dir, k + 1);
            mc.checkpoint_dir = member_dir;
        }
        if (k < res->kept) {
            if (member_dir[0]) checkpoint_remove(member_dir); /* a kill came between save and removal */
            kept_member_figures(m, &res->member_val_acc[k], &res->member[k].seconds);
            res->seconds += res->member[k].seconds;
            if (ec->kfold) oof_correct += lround(model_predict_dataset(m, va, mc.batch_size, NULL, NULL, NULL) * va->n);
            if (!cfg->quiet) {
                printf("member %d/%d: kept from %s (val acc %.4f)\n", k + 1, ec->n, cfg->out_path, res->member_val_acc[k]);
                fflush(stdout);
            }
            dataset_free(&fold_tr);
            dataset_free(&fold_va);
            continue;
        }
        Checkpoint ck;
        memset(&ck, 0, sizeof ck);
        char latest[4300];
        snprintf(latest, sizeof latest, "%s/latest", member_dir);
        struct stat sb;
        if (ec->resume && member_dir[0] && stat(latest, &sb) == 0) {
            /* this member was stopped part-way: continue it */
            if (checkpoint_open(member_dir, &ck, m) < 0) goto member_fail;
            built++;
            if (!checkpoint_matches(&ck, &mc, cfg->threads)) {
                dg_set_error("%s: not member %d's checkpoint (other settings)", ck.path, k + 1);
                checkpoint_close(&ck);
                goto member_fail;
            }
            mc.resume = &ck;
        } else {
            if (member_dir[0]) checkpoint_remove(member_dir); /* an older run's, if any */
            if (model_build_named(m, ec->models[k]) < 0) goto member_fail;
            built++;
            if (all->rows != m->input_shape.h || all->cols != m->input_shape.w) {
                dg_set_error("member %d (%s) expects %dx%d images, the data are %dx%d", k, ec->models[k],
                             m->input_shape.h, m->input_shape.w, all->rows, all->cols);
                goto member_fail;
            }
            model_init_params(m, mc.seed);
            train_set_normalisation(m, &mc, tr);
        }
        free(m->train_config_json);
        m->train_config_json = train_config_json(&mc, m->spec_name, tr->n, va->n);
        if (!cfg->quiet) {
            printf("member %d/%d: %s, seed %" PRIu64 ", %d train / %d validation images%s%s\n", k + 1, ec->n,
                   m->spec_name, mc.seed, tr->n, va->n, ec->kfold ? " (validation = this member's fold)" : "",
                   mc.resume ? "; resuming from its checkpoint" : "");
            fflush(stdout);
        }
        int trained = train_run(m, tr, va, &mc, &res->member[k]);
        checkpoint_close(&ck);
        if (trained < 0) goto member_fail;
        if (res->member[k].interrupted) {
            res->interrupted = res->member[k].interrupted;
            res->stop_member = k;
            snprintf(res->checkpoint, sizeof res->checkpoint, "%s", res->member[k].checkpoint);
            dataset_free(&fold_tr);
            dataset_free(&fold_va);
            goto out;
        }
        /* training activations (with gradients) are the bulk of a member's
         * memory: keep inference-sized ones only */
        model_release_batch(m);
        model_set_batch(m, mc.batch_size, 0, mc.threads);
        res->seconds += res->member[k].seconds;
        res->member_val_acc[k] = va->n ? res->member[k].best_val_acc : NAN;
        if (va->n && res->member[k].best_epoch == 0) /* no epoch finished with validation */
            res->member_val_acc[k] = model_predict_dataset(m, va, mc.batch_size, NULL, NULL, NULL);
        if (ec->kfold) {
            /* out-of-fold: this member's predictions on the fold it never saw */
            oof_correct += lround(model_predict_dataset(m, va, mc.batch_size, NULL, NULL, NULL) * va->n);
        }
        char metrics[256];
        snprintf(metrics, sizeof metrics, "{\"member\":%d,\"fold\":%d,\"val_accuracy\":%.6f,\"train_seconds\":%.2f}",
                 k, ec->kfold ? k : -1, isnan(res->member_val_acc[k]) ? -1.0 : res->member_val_acc[k],
                 res->member[k].seconds);
        m->metrics_json = strdup(metrics);
        /* save what is done so far: an interrupted run keeps its members */
        if (ensemble_save_dtype(cfg->out_path, ms, k + 1, ec->vote_logits, ens_cfg, NULL, (DgDtype)cfg->dtype) < 0) goto member_fail;
        if (member_dir[0]) checkpoint_remove(member_dir);
        if (!cfg->quiet) {
            printf("member %d/%d done: val acc %.4f; ensemble of %d saved to %s\n", k + 1, ec->n,
                   res->member_val_acc[k], k + 1, cfg->out_path);
            fflush(stdout);
        }
        dataset_free(&fold_tr);
        dataset_free(&fold_va);
        if (train_stop_pending(cfg) && k + 1 < ec->n) {
            /* asked during this member's last step, which finished it: stop
             * before the next member rather than after its first step */
            res->interrupted = train_stop_pending(cfg);
            res->stop_member = k + 1;
            goto out;
        }
        continue;
    member_fail:
        dataset_free(&fold_tr);
        dataset_free(&fold_va);
        goto out;
    }
    if (ec->kfold) res->oof_acc = (double)oof_correct / all->n;
    if (!ec->kfold && shared_va.n) {
        /* the members vote on the shared validation split (borrowing the
         * models: only the classifier's name buffer is freed) */
        Classifier c;
        ensemble_classifier_from_models(&c, ms, ec->n, ec->vote_logits);
        res->val_acc = classifier_predict_dataset(&c, &shared_va, NULL, NULL, NULL);
        free(c.metadata_json);
    }
    rc = 0;
out:
    if (res->interrupted) rc = 0;
    if (rc == 0 && !res->interrupted) res->train_config_json = ens_cfg;
    else free(ens_cfg);
    free(fold_of);
    dataset_free(&shared_tr);
    dataset_free(&shared_va);
    if (rc < 0 || res->interrupted) {
        for (int k = 0; k < built; k++) model_free(&ms[k]);
        free(ms);
        ms = NULL;
    }
    *members = ms;
    return rc;
}
