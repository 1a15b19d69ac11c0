/* cmd_train_ensemble.c — the ensemble half of `digits train` (--ensemble N,
 * --ensemble-models, --kfold K): members from the flags, training through
 * train/ensemble_train.h, the test score, the final model file.
 * Under mpirun the members are spread over the ranks (ens->spread); rank 0
 * alone prints, tests and writes, and every rank ends with the same exit
 * status once rank 0 has said why. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_train_ensemble.h"

#include "cli.h"
#include "dist/dist.h"
#include "eval/ensemble.h"

static const char *CMD = "train";

/* The members of an ensemble: --ensemble-models L (one per name), or
 * --ensemble N / --kfold K copies of --model. */
void train_ensemble_members(EnsembleTrainConfig *ens, const char *model_name, char *list) {
    if (list) {
        if (ens->kfold) cli_usage_error(CMD, "--kfold trains one --model per fold; it does not combine with --ensemble-models");
        ens->n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (ens->n == ENSEMBLE_TRAIN_MAX) cli_usage_error(CMD, "--ensemble-models: at most %d members", ENSEMBLE_TRAIN_MAX);
            ens->models[ens->n++] = tok;
        }
        if (ens->n == 0) cli_usage_error(CMD, "--ensemble-models: empty list");
        return;
    }
    if (ens->kfold) {
        if (ens->n > 1 && ens->n != ens->kfold)
            cli_usage_error(CMD, "--kfold %d trains %d members; drop --ensemble %d", ens->kfold, ens->kfold, ens->n);
        ens->n = ens->kfold;
    }
    for (int k = 0; k < ens->n; k++) ens->models[k] = model_name;
}

/* Every rank exits with status; rank 0 has printed its lines first (a
 * rank leaving early could make mpirun end rank 0 before it does). */
static void exit_all(int status) {
    fflush(stdout);
    if (dist_size() > 1) dist_barrier();
    exit(status);
}

/* Train, save and test an ensemble; returns the exit status. */
int train_ensemble_run(EnsembleTrainConfig *ens, const Dataset *all, const Dataset *testset,
                          const char *test_path, TrainConfig *cfg, const char *out) {
    cfg->out_path = out;
    ens->spread = 1;
    int rank0 = dist_rank() == 0;
    if (rank0) printf("ensemble of %d members (%s%s...), vote %s, %d labelled images\n", ens->n,
           ens->kfold ? "stratified K-fold, " : "", ens->models[0], ens->vote_logits ? "logits" : "probs", all->n);
    fflush(stdout);
    Model *members;
    EnsembleTrainResult res;
    if (cfg->checkpoint_dir) {
        train_clear_stop();
        cli_stop_signals(1);
        dist_exit_on_signals(CMD); /* under mpirun: a signal ends the rank at once */
    }
    int trained = ensemble_train(ens, all, cfg, &members, &res);
    cli_stop_signals(0);
    if (trained < 0) {
        if (rank0) fprintf(stderr, "digits %s: %s\n", CMD, dg_errmsg());
        exit_all(EXIT_RUNTIME);
    }
    if (res.interrupted && !rank0) exit_all(128 + res.interrupted);
    if (!rank0) return 0; /* its members are in rank 0's file */
    if (res.interrupted) {
        char word[8300];
        if (res.checkpoint[0]) printf("checkpoint %s\n", res.checkpoint);
        fflush(stdout);
        fprintf(stderr, "digits: interrupted %s member %d of %d (%s holds the %d before it); resume with: "
                "digits train --resume %s\n", res.checkpoint[0] ? "in" : "before", res.stop_member + 1, ens->n,
                out, res.stop_member,
                cli_shell_word(cfg->checkpoint_dir, word, sizeof word));
        exit_all(128 + res.interrupted);
    }
    printf("trained %d members in %.1fs", ens->n, res.seconds);
    if (!isnan(res.val_acc)) printf("; ensemble val acc %.4f", res.val_acc);
    if (!isnan(res.oof_acc)) printf("; out-of-fold acc %.4f", res.oof_acc);
    printf("\n");
    char metrics[512];
    int len = snprintf(metrics, sizeof metrics, "{\"train_seconds\":%.2f,\"members\":%d", res.seconds, ens->n);
    if (!isnan(res.val_acc)) len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"val_accuracy\":%.6f", res.val_acc);
    if (!isnan(res.oof_acc)) len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"oof_accuracy\":%.6f", res.oof_acc);
    Classifier c;
    ensemble_classifier_from_models(&c, members, ens->n, ens->vote_logits);
    if (testset && testset->n) {
        double loss;
        double acc = classifier_predict_dataset(&c, testset, NULL, NULL, &loss);
        printf("test accuracy %.4f (loss %.4f) on %d images from %s\n", acc, loss, testset->n, test_path);
        len += snprintf(metrics + len, sizeof metrics - (size_t)len, ",\"test_accuracy\":%.6f,\"test_loss\":%.6f", acc, loss);
    }
    snprintf(metrics + len, sizeof metrics - (size_t)len, "}");
    /* the final file: every member, plus the ensemble's metrics */
    if (ensemble_save_dtype(out, c.models, c.n_models, c.vote_logits, res.train_config_json, metrics,
                            (DgDtype)cfg->dtype) < 0)
        cli_fail(CMD, "%s", dg_errmsg());
    printf("saved %s\n", out);
    free(res.train_config_json);
    classifier_free(&c);
    return 0;
}

