/* ensemble_train.c — training the members of an ensemble with train_run,
 * one after the other or spread over MPI ranks, and saving them as one
 * file; see ensemble_train.h.
 *
 * The run goes in rounds (core/partition.h): one member per round in one
 * process, one member per rank over an MPI job. In a round every rank
 * trains its member (train_member), reports it (member_wire.h), and rank 0
 * joins the reports in member order (join_member), saves the ensemble file
 * with every member so far and tells the ranks what it saved and whether
 * to go on (RoundEnd). One process skips the bytes: its report is the
 * member itself.
 *
 * Members train one at a time per process, each using every core it has:
 * on two cores, running members side by side would only split the same
 * threads. With more ranks than members, a group of ranks trains each
 * member data-parallel (train/dist_train.h) when dist_train takes it.
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
#include "core/partition.h"
#include "dist/dist.h"
#include "eval/classifier.h"
#include "eval/ensemble.h"
#include "eval/metrics.h"
#include "train/dist_train.h"
#include "train/member_wire.h"
#include "train/resume.h"

/* One ensemble run: what every step reads. */
typedef struct {
    const EnsembleTrainConfig *ec;
    const Dataset *all;
    const TrainConfig *cfg;
    int rank, size;            /* 0, 1 unless ec->spread */
    int *fold_of;              /* K-fold: each image's fold (owned) */
    Dataset shared_tr, shared_va; /* otherwise: the shared split (owned) */
    char *ens_cfg;             /* the ensemble's train_config (owned) */
} Run;

/* What rank 0 tells every rank after a round. */
typedef struct {
    int32_t saved;  /* members the ensemble file holds */
    int32_t stop;   /* the signal that stops the run (-1: its stop flag), or 0 */
    int32_t failed; /* 1: the run failed (rank 0 has the message) */
} RoundEnd;

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

/* Member k's training and validation sets: the fold's (built into fold_tr,
 * fold_va, which the caller frees) or the shared split. */
static void member_sets(const Run *run, int k, Dataset *fold_tr, Dataset *fold_va, const Dataset **tr,
                        const Dataset **va) {
    memset(fold_tr, 0, sizeof *fold_tr);
    memset(fold_va, 0, sizeof *fold_va);
    *tr = &run->shared_tr, *va = &run->shared_va;
    if (!run->ec->kfold) return;
    int *ti, *vi, nt, nv;
    fold_indices(run->fold_of, run->all->n, k, &ti, &nt, &vi, &nv);
    dataset_subset(fold_tr, run->all, ti, nt);
    dataset_subset(fold_va, run->all, vi, nv);
    free(ti);
    free(vi);
    *tr = fold_tr, *va = fold_va;
}

/* Member k's loop configuration; member_dir (len bytes) gets its
 * checkpoint folder ("" without checkpoints). In a group of ranks its
 * leader alone writes them (train_member clears mc.checkpoint_dir for the
 * others). */
static TrainConfig member_config(const Run *run, int k, char *member_dir, size_t len) {
    TrainConfig mc = *run->cfg;
    mc.seed = run->cfg->seed + (uint64_t)k;
    mc.out_path = NULL; /* the ensemble file is saved by join_round */
    mc.log_path = NULL;
    mc.run_json = NULL;
    mc.checkpoint_dir = NULL;
    mc.resume = NULL;
    mc.quiet = run->cfg->quiet || run->rank != 0; /* one rank's epoch lines only */
    member_dir[0] = '\0';
    if (run->cfg->checkpoint_dir) {
        snprintf(member_dir, len, "%s/member-%02d", run->cfg->checkpoint_dir, k + 1);
        mc.checkpoint_dir = member_dir;
    }
    return mc;
}

/* Whether member k continues from a checkpoint of its own. */
static int member_resumes(const Run *run, const char *member_dir) {
    char latest[4300];
    snprintf(latest, sizeof latest, "%s/latest", member_dir);
    struct stat sb;
    return run->ec->resume && member_dir[0] && stat(latest, &sb) == 0;
}

/* ==== resuming =============================================================== */

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

/* Rank 0, resuming: the figures of the kept members 0..kept-1. */
static void account_kept(const Run *run, Model *ms, int kept, EnsembleTrainResult *res, long *oof_correct) {
    for (int k = 0; k < kept; k++) {
        char member_dir[4200];
        TrainConfig mc = member_config(run, k, member_dir, sizeof member_dir);
        if (member_dir[0]) checkpoint_remove(member_dir); /* a kill came between save and removal */
        kept_member_figures(&ms[k], &res->member_val_acc[k], &res->member[k].seconds);
        res->seconds += res->member[k].seconds;
        if (run->ec->kfold) {
            Dataset ftr, fva;
            const Dataset *tr, *va;
            member_sets(run, k, &ftr, &fva, &tr, &va);
            *oof_correct += lround(model_predict_dataset(&ms[k], va, mc.batch_size, NULL, NULL, NULL) * va->n);
            dataset_free(&ftr);
            dataset_free(&fva);
        }
        if (!run->cfg->quiet) {
            printf("member %d/%d: kept from %s (val acc %.4f)\n", k + 1, run->ec->n, run->cfg->out_path,
                   res->member_val_acc[k]);
            fflush(stdout);
        }
    }
}

/* ==== one member ============================================================= */

/* Rank 0: the line that announces member k (trained by ranks on..on+g-1). */
static void announce_member(const Run *run, int k, int on, int g) {
    if (run->cfg->quiet) return;
    char member_dir[4200];
    TrainConfig mc = member_config(run, k, member_dir, sizeof member_dir);
    Dataset ftr, fva;
    const Dataset *tr, *va;
    member_sets(run, k, &ftr, &fva, &tr, &va);
    char where[32] = "", name[128];
    if (g > 1) snprintf(where, sizeof where, " (ranks %d-%d)", on, on + g - 1);
    else if (run->size > 1) snprintf(where, sizeof where, " (rank %d)", on);
    const char *slash = strrchr(run->ec->models[k], '/');
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : run->ec->models[k]); /* as spec.c names it */
    char *dot = strstr(name, ".spec");
    if (dot) *dot = '\0';
    printf("member %d/%d: %s, seed %" PRIu64 ", %d train / %d validation images%s%s%s\n", k + 1, run->ec->n,
           name, mc.seed, tr->n, va->n, run->ec->kfold ? " (validation = this member's fold)" : "",
           member_resumes(run, member_dir) ? "; resuming from its checkpoint" : "", where);
    fflush(stdout);
    dataset_free(&ftr);
    dataset_free(&fva);
}

/* Build (or reopen from its checkpoint) and train member k into m, then
 * measure it and write its metrics into m. rep says how it went; *built
 * says whether m holds a model to free. In a group of g ranks (slot) the
 * ranks train it data-parallel (train_run over the group, dist.h): its
 * weights are those of one process with g times the threads, and its
 * train_config says so. */
static void train_member(const Run *run, PartSlot slot, Model *m, MemberReport *rep, int *built) {
    const EnsembleTrainConfig *ec = run->ec;
    int k = slot.member;
    memset(rep, 0, sizeof *rep);
    rep->member = k;
    rep->status = -1;
    rep->val_acc = NAN;
    *built = 0;
    char member_dir[4200];
    TrainConfig mc = member_config(run, k, member_dir, sizeof member_dir);
    Dataset fold_tr, fold_va;
    const Dataset *tr, *va;
    member_sets(run, k, &fold_tr, &fold_va, &tr, &va);
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    if (member_resumes(run, member_dir)) {
        /* this member was stopped part-way: continue it */
        if (checkpoint_open(member_dir, &ck, m) < 0) goto out;
        *built = 1;
        if (!checkpoint_matches(&ck, &mc, run->cfg->threads)) {
            dg_set_error("%s: not member %d's checkpoint (other settings)", ck.path, k + 1);
            goto out;
        }
        mc.resume = &ck;
    } else {
        if (member_dir[0]) checkpoint_remove(member_dir); /* an older run's, if any */
        if (model_build_named(m, ec->models[k]) < 0) goto out;
        *built = 1;
        if (run->all->rows != m->input_shape.h || run->all->cols != m->input_shape.w) {
            dg_set_error("member %d (%s) expects %dx%d images, the data are %dx%d", k, ec->models[k],
                         m->input_shape.h, m->input_shape.w, run->all->rows, run->all->cols);
            goto out;
        }
        model_init_params(m, mc.seed);
        train_set_normalisation(m, &mc, tr);
    }
    free(m->train_config_json);
    TrainConfig as_one = mc; /* the one process this member's training equals */
    as_one.threads = mc.threads * slot.group_size;
    m->train_config_json = train_config_json(&as_one, m->spec_name, tr->n, va->n);
    if (slot.group_rank > 0) mc.checkpoint_dir = NULL; /* the group's leader writes them */
    if (train_run(m, tr, va, &mc, &rep->tr) < 0) goto out;
    if (rep->tr.interrupted) { /* a signal's number, or -1: the run's stop flag */
        rep->status = rep->tr.interrupted > 0 ? rep->tr.interrupted : MEMBER_STOPPED_BY_FLAG;
        goto out;
    }
    /* training activations (with gradients) are the bulk of a member's
     * memory: keep inference-sized ones only */
    model_release_batch(m);
    model_set_batch(m, mc.batch_size, 0, mc.threads);
    rep->val_acc = va->n ? rep->tr.best_val_acc : NAN;
    if (va->n && rep->tr.best_epoch == 0) /* no epoch finished with validation */
        rep->val_acc = model_predict_dataset(m, va, mc.batch_size, NULL, NULL, NULL);
    if (ec->kfold) /* out-of-fold: this member's predictions on the fold it never saw */
        rep->oof_correct = lround(model_predict_dataset(m, va, mc.batch_size, NULL, NULL, NULL) * va->n);
    char metrics[256];
    snprintf(metrics, sizeof metrics, "{\"member\":%d,\"fold\":%d,\"val_accuracy\":%.6f,\"train_seconds\":%.2f}",
             k, ec->kfold ? k : -1, isnan(rep->val_acc) ? -1.0 : rep->val_acc, rep->tr.seconds);
    free(m->metrics_json);
    m->metrics_json = strdup(metrics);
    rep->status = 0;
out:
    if (rep->status == -1) snprintf(rep->error, sizeof rep->error, "%s", dg_errmsg());
    checkpoint_close(&ck);
    dataset_free(&fold_tr);
    dataset_free(&fold_va);
}

/* Rank 0: member k's report taken into the run's figures. */
static void join_member(const Run *run, int k, const MemberReport *rep, EnsembleTrainResult *res,
                        long *oof_correct) {
    res->member[k] = rep->tr;
    res->seconds += rep->tr.seconds;
    res->member_val_acc[k] = rep->val_acc;
    if (run->ec->kfold) *oof_correct += rep->oof_correct;
}

/* ==== a round over the ranks ================================================= */

/* Every rank's report of this round on rank 0: reps[r] (and ms[member] for
 * each trained member); m is this rank's member (moved or freed). Returns
 * 0, or -1 if a record is damaged (dg_errmsg); a failed transport ends the
 * job (dist.h). */
static int gather_reports(const Run *run, const MemberReport *mine, Model *m, int built, Model *ms,
                          MemberReport *reps) {
    if (run->size == 1) {
        reps[0] = *mine;
        if (mine->member >= 0 && built) ms[mine->member] = *m; /* moved */
        return 0;
    }
    size_t len;
    uint8_t *bytes = member_pack(mine, built ? m : NULL, &len);
    if (built) model_free(m);
    size_t *lens = dg_xcalloc((size_t)run->size, sizeof *lens);
    uint8_t *all = dist_gather_bytes(bytes, len, lens), *at = all; /* rank 0: every rank's, in rank order */
    free(bytes);
    int rc = 0;
    for (int r = 0; run->rank == 0 && r < run->size; r++) {
        Model got;
        int u = member_unpack(at, lens[r], &reps[r], &got);
        at += lens[r];
        if (u < 0) rc = dg_set_error("rank %d: %s", r, dg_errmsg());
        if (u == 1) {
            if (reps[r].member < 0 || reps[r].member >= run->ec->n) {
                model_free(&got);
                rc = dg_set_error("rank %d: member record for member %d", r, reps[r].member);
            } else {
                ms[reps[r].member] = got;
                model_set_batch(&ms[reps[r].member], run->cfg->batch_size, 0, run->cfg->threads);
            }
        }
    }
    free(all);
    free(lens);
    return rc;
}

/* Rank 0's half of a round's end: join the reports of members lo..hi-1 in
 * order, save the ensemble file with the finished prefix, and decide. */
static RoundEnd join_round(const Run *run, int lo, int hi, const MemberReport *reps, Model *ms, int *saved,
                           EnsembleTrainResult *res, long *oof_correct) {
    RoundEnd e = {*saved, 0, 0};
    int k = lo;
    for (; k < hi; k++) {
        const MemberReport *rep = NULL;
        for (int r = 0; r < run->size; r++)
            if (reps[r].member == k) rep = &reps[r];
        DG_ASSERT(rep);
        if (rep->status == -1) {
            dg_set_error("%s", rep->error);
            e.failed = 1;
            break;
        }
        if (rep->status != 0) { /* stopped in this member: keep its checkpoint for --resume */
            e.stop = rep->tr.interrupted;
            res->stop_member = k;
            snprintf(res->checkpoint, sizeof res->checkpoint, "%s", rep->tr.checkpoint);
            break;
        }
        join_member(run, k, rep, res, oof_correct);
        /* save what is done so far: an interrupted run keeps its members */
        if (ensemble_save_dtype(run->cfg->out_path, ms, k + 1, run->ec->vote_logits, run->ens_cfg, NULL,
                                (DgDtype)run->cfg->dtype) < 0) {
            e.failed = 1;
            break;
        }
        e.saved = *saved = k + 1;
        if (!run->cfg->quiet) {
            printf("member %d/%d done: val acc %.4f; ensemble of %d saved to %s\n", k + 1, run->ec->n,
                   res->member_val_acc[k], k + 1, run->cfg->out_path);
            fflush(stdout);
        }
    }
    /* a signal during a round's last steps, which finished it: stop before
     * the next round rather than after its first step */
    int asked = 0;
    for (int r = 0; r < run->size; r++)
        if (reps[r].stop_requested) asked = reps[r].stop_requested;
    if (!e.stop && !e.failed && asked && hi < run->ec->n) {
        e.stop = asked;
        res->stop_member = hi;
        res->checkpoint[0] = '\0';
    }
    return e;
}

/* rank 0's RoundEnd (or any int) to every rank. */
static void share(const Run *run, void *buf, size_t len) {
    if (run->size > 1) dist_bcast(buf, len, 0);
}

/* Whether groups of up to g ranks can train members first..n-1
 * data-parallel: dist_train takes every member's model, and every batch
 * (the last of an epoch too) has at least g images. Every rank finds the
 * same answer. */
static int groups_possible(const Run *run, int first, int g) {
    if (run->cfg->batch_size < g) return 0;
    for (int k = first; k < run->ec->n; k++) {
        Model m;
        memset(&m, 0, sizeof m);
        if (model_build_named(&m, run->ec->models[k]) < 0) return 0; /* train_member reports it */
        int ok = dist_train_supports(&m);
        model_free(&m);
        Dataset ftr, fva;
        const Dataset *tr, *va;
        member_sets(run, k, &ftr, &fva, &tr, &va);
        int last = tr->n % run->cfg->batch_size;
        if (last && last < g) ok = 0;
        dataset_free(&ftr);
        dataset_free(&fva);
        if (!ok) return 0;
    }
    return 1;
}

/* Train members kept..n-1 in rounds; rank 0 fills ms and res. Returns 0
 * (also when stopped: res->interrupted) or -1. With more ranks than
 * members, groups train them when they can; otherwise the extra ranks
 * stay idle (the plan then counts only as many ranks as members). */
static int train_rounds(const Run *run, int kept, Model *ms, EnsembleTrainResult *res, long *oof_correct) {
    const EnsembleTrainConfig *ec = run->ec;
    int saved = kept, left = ec->n - kept, plan = run->size;
    if (plan > left && left > 0 && !groups_possible(run, kept, (plan + left - 1) / left)) plan = left;
    int rounds = partition_rounds(ec->n, kept, plan);
    for (int round = 0; round < rounds; round++) {
        int lo, hi;
        partition_round_members(ec->n, kept, plan, round, &lo, &hi);
        if (run->rank == 0)
            for (int k = lo; k < hi; k++) {
                int on = partition_leader(ec->n, kept, plan, k);
                announce_member(run, k, on, partition_member(ec->n, kept, plan, on, round).group_size);
            }
        PartSlot slot = {-1, -1, 0, 0};
        if (run->rank < plan) slot = partition_member(ec->n, kept, plan, run->rank, round);
        MemberReport mine;
        memset(&mine, 0, sizeof mine);
        mine.member = -1;
        Model m;
        memset(&m, 0, sizeof m);
        int built = 0;
        if (run->size > 1) dist_group_begin(slot.member >= 0 ? slot.member : ec->n + run->rank);
        if (slot.member >= 0) train_member(run, slot, &m, &mine, &built);
        if (run->size > 1) dist_group_end();
        if ((mine.status != 0 || slot.group_rank > 0) && built) { /* nothing to ship: stopped, failed, or the leader ships it */
            model_free(&m);
            built = 0;
        }
        if (slot.group_rank > 0 && mine.status == 0) mine.member = -1;
        MemberReport *reps = dg_xcalloc((size_t)run->size, sizeof *reps);
        for (int r = 0; r < run->size; r++) reps[r].member = -1;
        mine.stop_requested = train_stop_pending(run->cfg);
        RoundEnd e = {saved, 0, 0};
        if (gather_reports(run, &mine, &m, built, ms, reps) < 0) e.failed = 1;
        if (run->rank == 0 && !e.failed) e = join_round(run, lo, hi, reps, ms, &saved, res, oof_correct);
        free(reps);
        share(run, &e, sizeof e);
        saved = e.saved;
        if (mine.member >= 0 && mine.member < saved && run->cfg->checkpoint_dir) {
            char member_dir[4200];
            member_config(run, mine.member, member_dir, sizeof member_dir);
            checkpoint_remove(member_dir);
        }
        if (e.failed) return run->rank == 0 ? -1 : dg_set_error("rank 0 stopped the ensemble run");
        if (e.stop) {
            res->interrupted = e.stop;
            return 0;
        }
    }
    return 0;
}

/* ==== the run ================================================================ */

/* The split every member shares (or the folds), and the ensemble's config. */
static void run_init(Run *run, const EnsembleTrainConfig *ec, const Dataset *all, const TrainConfig *cfg) {
    memset(run, 0, sizeof *run);
    run->ec = ec, run->all = all, run->cfg = cfg;
    run->rank = ec->spread ? dist_rank() : 0;
    run->size = ec->spread ? dist_size() : 1;
    if (ec->kfold) {
        split_kfold(all->labels, all->n, ec->kfold, cfg->seed, &run->fold_of);
    } else {
        int *tr, *va, ntr, nva;
        split_stratified(all->labels, all->n, ec->val_split, cfg->seed, &tr, &ntr, &va, &nva);
        dataset_subset(&run->shared_tr, all, tr, ntr);
        dataset_subset(&run->shared_va, all, va, nva);
        free(tr);
        free(va);
    }
    run->ens_cfg = ensemble_config_json(ec, cfg, ec->kfold ? all->n : run->shared_tr.n,
                                        ec->kfold ? 0 : run->shared_va.n);
}

static void run_free(Run *run) {
    free(run->fold_of);
    free(run->ens_cfg);
    dataset_free(&run->shared_tr);
    dataset_free(&run->shared_va);
}

/* Rank 0: the members a resumed run keeps (or, new, ensemble.json written),
 * shared with every rank. Returns the count or -1. */
static int start_run(const Run *run, Model *ms, EnsembleTrainResult *res, long *oof_correct) {
    int32_t kept = 0;
    if (run->rank == 0) {
        if (run->ec->resume) kept = keep_finished(run->ec, run->cfg, run->ens_cfg, ms);
        else if (run->cfg->checkpoint_dir && checkpoint_save_ensemble(run->cfg->checkpoint_dir, run->cfg,
                                                                      run->cfg->threads) < 0)
            kept = -1;
    }
    share(run, &kept, sizeof kept);
    if (kept < 0) return run->rank == 0 ? -1 : dg_set_error("rank 0 could not start the ensemble run");
    res->kept = kept;
    if (run->rank == 0) account_kept(run, ms, kept, res, oof_correct);
    return kept;
}

int ensemble_train(const EnsembleTrainConfig *ec, const Dataset *all, const TrainConfig *cfg,
                   Model **members, EnsembleTrainResult *res) {
    DG_ASSERT(ec->n >= 1 && ec->n <= ENSEMBLE_TRAIN_MAX && all->labels && cfg->out_path);
    DG_ASSERT(ec->kfold == 0 || (ec->kfold >= 2 && ec->kfold == ec->n));
    DG_ASSERT(!cfg->checkpoint_dir || cfg->threads >= 1);
    DG_ASSERT(!ec->resume || cfg->checkpoint_dir);
    memset(res, 0, sizeof *res);
    res->val_acc = res->oof_acc = NAN;
    Run run;
    run_init(&run, ec, all, cfg);
    Model *ms = dg_xcalloc((size_t)ec->n, sizeof *ms);
    long oof_correct = 0;
    int rc = -1, kept = start_run(&run, ms, res, &oof_correct);
    if (kept >= 0) rc = train_rounds(&run, kept, ms, res, &oof_correct);
    int done = rc == 0 && !res->interrupted && run.rank == 0;
    if (done && ec->kfold) res->oof_acc = (double)oof_correct / all->n;
    if (done && !ec->kfold && run.shared_va.n) {
        /* the members vote on the shared validation split (borrowing the
         * models: only the classifier's name buffer is freed) */
        Classifier c;
        ensemble_classifier_from_models(&c, ms, ec->n, ec->vote_logits);
        res->val_acc = classifier_predict_dataset(&c, &run.shared_va, NULL, NULL, NULL);
        free(c.metadata_json);
    }
    if (done) {
        res->train_config_json = run.ens_cfg;
        run.ens_cfg = NULL;
    } else {
        /* members 0..saved-1 live in ms on rank 0 (zeroed entries free as no-ops) */
        for (int k = 0; k < ec->n; k++) model_free(&ms[k]);
        free(ms);
        ms = NULL;
    }
    run_free(&run);
    *members = ms;
    return rc;
}
