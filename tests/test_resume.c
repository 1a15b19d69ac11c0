/* test_resume.c — checkpoints and resume (src/train/resume.c), stop
 * requests, and the durability of every save:
 *   - a run stopped at any step (first step, mid-epoch, last step of an
 *     epoch, epoch boundary, twice in a row) and resumed ends with weights
 *     bit-identical to the run never stopped, for Adam + plateau + early
 *     stopping, SGD/Nesterov + onecycle + weight decay, and no validation +
 *     cosine; with dropout and batch norm in the network, 1 and 2 threads;
 *   - a damaged or missing `latest`, a truncated newest checkpoint: the
 *     previous one is used, with a warning; other data is refused;
 *   - SIGKILL at random moments of a loop of saves (model files and
 *     checkpoints) never leaves an unloadable file;
 *   - a write failing with EFBIG (RLIMIT_FSIZE, as on a full disk) names the
 *     file and leaves the previous one intact;
 *   - an ensemble stopped in any member and continued keeps its finished
 *     members and ends bit-identical to the run never stopped;
 *   - --ema: the model kept is the weights' moving average (a resumed run
 *     restores it too: a case of the bit-identical test).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "digits_internal.h"
#include "testutil.h"

static void rm_rf(const char *path) { assert_int_equal(tu_rm_rf(path), 0); }

/* ==== a small learnable problem ============================================ */

/* dropout and batch norm: both carry state a resume must restore */
static const char *SPEC = "input 1x12x12\n"
                          "conv2d out=4 kernel=3\n"
                          "batchnorm\n"
                          "relu\n"
                          "maxpool size=2\n"
                          "dropout2d p=0.2\n"
                          "flatten\n"
                          "linear out=24\n"
                          "relu\n"
                          "dropout p=0.3\n"
                          "linear out=10\n";

static Dataset train_set, val_set;

/* label = brightness band of the image, plus noise: learnable, not trivial */
static void make_data(Dataset *ds, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed, "data");
    ds->n = n;
    ds->rows = ds->cols = 12;
    ds->pixels = malloc((size_t)n * 144);
    ds->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        int label = (int)rng_below(&r, 10);
        ds->labels[i] = (uint8_t)label;
        for (int k = 0; k < 144; k++) {
            int v = label * 22 + (int)rng_below(&r, 60);
            ds->pixels[(size_t)i * 144 + k] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

static int group_setup(void **state) {
    /* tmpfs when there is one: the many fsyncs of checkpoint saves are free
     * there (SIGKILL safety depends on rename, not on fsync) */
    if (tu_tmpdir_setup_shm(state)) return -1;
    make_data(&train_set, 150, 1); /* 150 / 16 = 10 batches, the last one short */
    make_data(&val_set, 40, 2);
    return 0;
}

static int group_teardown(void **state) {
    dataset_free(&train_set);
    dataset_free(&val_set);
    return tu_tmpdir_teardown(state);
}

typedef struct {
    const char *name;
    OptimType optim;
    SchedType sched;
    int patience, nesterov, with_val, epochs;
    float lr, wd, ema;
    int lookahead; /* k (alpha 0.5) */
} Case;

static const Case cases[] = {
    {"adam+plateau+early-stop", OPTIM_ADAM, SCHED_PLATEAU, 2, 0, 1, 4, 0.01f, 0, 0, 0},
    {"sgd-nesterov+onecycle+wd", OPTIM_SGD, SCHED_ONECYCLE, 0, 1, 1, 3, 0.05f, 1e-3f, 0, 0},
    {"adam+cosine, no validation", OPTIM_ADAM, SCHED_COSINE, 0, 0, 0, 3, 0.005f, 0, 0, 0},
    {"adam+ema+early-stop", OPTIM_ADAM, SCHED_CONSTANT, 2, 0, 1, 3, 0.01f, 0, 0.9f, 0},
    {"adam+lookahead 3, no validation", OPTIM_ADAM, SCHED_CONSTANT, 0, 0, 0, 3, 0.01f, 0, 0, 3},
};

static void case_config(TrainConfig *cfg, const Case *c, int threads) {
    train_config_defaults(cfg);
    cfg->epochs = c->epochs;
    cfg->batch_size = 16;
    cfg->lr = c->lr;
    cfg->optim = c->optim;
    cfg->nesterov = c->nesterov;
    cfg->weight_decay = c->wd;
    cfg->schedule = c->sched;
    cfg->patience = c->patience;
    cfg->ema = c->ema;
    cfg->lookahead = c->lookahead;
    cfg->seed = 7;
    cfg->threads = threads;
    cfg->quiet = 1;
}

static void new_model(Model *m) {
    assert_int_equal(model_build(m, SPEC, "resume.spec"), 0);
    model_init_params(m, 7);
    dataset_mean_std(&train_set, &m->norm_mean, &m->norm_std);
}

static void stop_at_step(void *ctx, long step) {
    if (step == *(const long *)ctx) train_request_stop(SIGINT);
}

/* A fresh run (stop_at = 0: never stopped), checkpoints in dir (may be NULL). */
static int fresh_run(const Case *c, int threads, const char *dir, long stop_at, Model *m, TrainResult *res) {
    TrainConfig cfg;
    case_config(&cfg, c, threads);
    cfg.checkpoint_dir = dir;
    cfg.on_step = stop_at ? stop_at_step : NULL;
    cfg.on_step_ctx = &stop_at;
    new_model(m);
    train_clear_stop();
    int rc = train_run(m, &train_set, c->with_val ? &val_set : NULL, &cfg, res);
    train_clear_stop();
    return rc;
}

/* Continue from dir, stopping again at stop_at (0: run to the end). */
static int resumed_run(const char *dir, long stop_at, int with_val, Model *m, TrainResult *res) {
    Checkpoint ck;
    if (checkpoint_open(dir, &ck, m) < 0) {
        print_message("checkpoint_open: %s\n", dg_errmsg());
        return -1;
    }
    TrainConfig cfg = ck.cfg;
    cfg.quiet = 1;
    cfg.resume = &ck;
    cfg.checkpoint_dir = dir;
    cfg.on_step = stop_at ? stop_at_step : NULL;
    cfg.on_step_ctx = &stop_at;
    train_clear_stop();
    int rc = train_run(m, &train_set, with_val ? &val_set : NULL, &cfg, res);
    train_clear_stop();
    if (rc < 0) print_message("train_run: %s\n", dg_errmsg());
    checkpoint_close(&ck);
    return rc;
}

static void assert_same_weights(const Model *a, const Model *b) {
    assert_int_equal(a->n_param, b->n_param);
    assert_memory_equal(a->params, b->params, a->n_param * sizeof(float));
    assert_memory_equal(a->buffers, b->buffers, a->n_buffer * sizeof(float));
}

/* ==== bit-identical resume ================================================== */

static void test_resume_identical(void **state) {
    const int spe = 10; /* steps per epoch */
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            const Case *c = &cases[ci];
            Model ref;
            TrainResult ref_res;
            assert_int_equal(fresh_run(c, threads, NULL, 0, &ref, &ref_res), 0);
            assert_int_equal(ref_res.interrupted, 0);
            long total = ref_res.steps;
            /* stop points: first step, mid-epoch, the last step of an epoch
             * (the stop then waits for the epoch end), an epoch boundary
             * plus one, and the very last step */
            long points[][2] = {{1, 0}, {4, 0}, {spe - 1, 0}, {spe, 0}, {spe + 1, 0}, {total - 1, 0},
                                {3, 2 * spe + 5} /* stopped twice */};
            for (size_t pi = 0; pi < sizeof points / sizeof *points; pi++) {
                long first = points[pi][0], second = points[pi][1];
                if (first < 1 || first >= total || second >= total) continue;
                const char *dir = tu_tmp_path("ck-identical");
                rm_rf(dir);
                Model m;
                TrainResult res;
                assert_int_equal(fresh_run(c, threads, dir, first, &m, &res), 0);
                /* stopped at the requested step, or at the end of its epoch
                 * when that was the epoch's last step */
                assert_int_equal(res.interrupted, SIGINT);
                assert_true(res.steps == first || (first % spe == spe - 1 && res.steps == first + 1) ||
                            (first % spe == 0 && res.steps == first));
                assert_true(res.checkpoint[0] != '\0');
                model_free(&m);
                if (second) {
                    assert_int_equal(resumed_run(dir, second, c->with_val, &m, &res), 0);
                    assert_int_equal(res.interrupted, SIGINT);
                    model_free(&m);
                }
                assert_int_equal(resumed_run(dir, 0, c->with_val, &m, &res), 0);
                char at[64];
                snprintf(at, sizeof at, second ? "%ld and %ld" : "%ld", first, second);
                print_message("%-28s threads=%d stopped at step %-9s: %s\n", c->name, threads, at,
                              memcmp(m.params, ref.params, m.n_param * 4) == 0 ? "identical" : "DIFFERENT");
                assert_int_equal(res.interrupted, 0);
                assert_int_equal(res.steps, ref_res.steps);
                assert_int_equal(res.epochs_run, ref_res.epochs_run);
                assert_int_equal(res.best_epoch, ref_res.best_epoch);
                assert_memory_equal(&res.best_val_loss, &ref_res.best_val_loss, sizeof(double));
                assert_memory_equal(&res.train_loss, &ref_res.train_loss, sizeof(double));
                assert_same_weights(&m, &ref);
                model_free(&m);
            }
            model_free(&ref);
        }
    }
}

/* The early-stopping case really stops early, so its state is exercised. */
static void test_early_stop_state_matters(void **state) {
    Model m;
    TrainResult res;
    Case c = cases[0];
    c.epochs = 12;
    c.lr = 0.2f; /* too high: validation loss soon stops improving */
    assert_int_equal(fresh_run(&c, 1, NULL, 0, &m, &res), 0);
    print_message("early stop after %d of %d epochs, best %d\n", res.epochs_run, c.epochs, res.best_epoch);
    assert_true(res.epochs_run < c.epochs);
    Model ref = m;
    /* stop in the epoch after the best one, resume: same weights (the
     * best epoch's) and the same early stop */
    const char *dir = tu_tmp_path("ck-early");
    long stop = (long)res.best_epoch * 10 + 3;
    Model a;
    TrainResult ra;
    assert_int_equal(fresh_run(&c, 1, dir, stop, &a, &ra), 0);
    assert_int_equal(ra.interrupted, SIGINT);
    model_free(&a);
    assert_int_equal(resumed_run(dir, 0, 1, &a, &ra), 0);
    assert_int_equal(ra.epochs_run, res.epochs_run);
    assert_int_equal(ra.best_epoch, res.best_epoch);
    assert_same_weights(&a, &ref);
    /* resuming a finished run: nothing more to train, same result */
    Model b;
    TrainResult rb;
    assert_int_equal(resumed_run(dir, 0, 1, &b, &rb), 0);
    assert_int_equal(rb.steps, res.steps);
    assert_same_weights(&b, &ref);
    model_free(&a);
    model_free(&b);
    model_free(&ref);
}

/* ==== damaged folders ======================================================== */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void read_line(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)len, f));
    buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static void test_damaged_checkpoints(void **state) {
    const Case *c = &cases[0];
    const char *dir = tu_tmp_path("ck-damaged");
    char latest_path[512], newest[256], file[600];
    snprintf(latest_path, sizeof latest_path, "%s/latest", dir);
    Model m, ref;
    TrainResult res, ref_res;
    assert_int_equal(fresh_run(c, 1, NULL, 0, &ref, &ref_res), 0);

    /* stop at step 25 (epoch 3): checkpoints e002 (epoch end) and the stop one */
    assert_int_equal(fresh_run(c, 1, dir, 25, &m, &res), 0);
    model_free(&m);
    read_line(latest_path, newest, sizeof newest);
    assert_string_equal(newest, "ckpt-e002-s00000025.safetensors");

    /* a `latest` naming garbage: the newest file is still found */
    write_text(latest_path, "../../etc/passwd\n");
    Checkpoint ck;
    assert_int_equal(checkpoint_open(dir, &ck, &m), 0);
    print_message("warning: %s\n", ck.warning);
    assert_non_null(strstr(ck.path, newest));
    assert_non_null(strstr(ck.warning, "resuming from ckpt-e002-s00000025.safetensors"));
    checkpoint_close(&ck);
    model_free(&m);

    /* the newest checkpoint truncated (a disk that lied about fsync):
     * the previous one is used, with a warning naming the bad file */
    write_text(latest_path, "ckpt-e002-s00000025.safetensors\n");
    snprintf(file, sizeof file, "%s/%s", dir, newest);
    assert_int_equal(truncate(file, 5000), 0);
    assert_int_equal(checkpoint_open(dir, &ck, &m), 0);
    print_message("warning: %s\n", ck.warning);
    assert_non_null(strstr(ck.warning, newest));
    assert_non_null(strstr(ck.path, "ckpt-e002-s00000020.safetensors"));
    checkpoint_close(&ck);
    model_free(&m);
    /* ... and the run resumed from it still ends identical */
    unlink(file);
    unlink(latest_path);
    assert_int_equal(resumed_run(dir, 0, 1, &m, &res), 0);
    assert_same_weights(&m, &ref);
    model_free(&m);

    /* nothing to resume from */
    const char *empty = tu_tmp_path("ck-empty");
    mkdir(empty, 0755);
    assert_int_equal(checkpoint_open(empty, &ck, &m), -1);
    print_message("%s\n", dg_errmsg());
    assert_non_null(strstr(dg_errmsg(), "no checkpoint to resume from"));
    assert_int_equal(checkpoint_open(tu_tmp_path("ck-absent"), &ck, &m), -1);
    assert_non_null(strstr(dg_errmsg(), "ck-absent: cannot open"));

    /* a model file is not a checkpoint */
    const char *notck = tu_tmp_path("ck-model");
    mkdir(notck, 0755);
    new_model(&m);
    snprintf(file, sizeof file, "%s/ckpt-e001-s00000001.safetensors", notck);
    assert_int_equal(model_save(&m, file), 0);
    model_free(&m);
    assert_int_equal(checkpoint_open(notck, &ck, &m), -1);
    print_message("%s\n", dg_errmsg());
    assert_non_null(strstr(dg_errmsg(), "not a checkpoint"));

    /* other training data: refused, naming the checkpoint */
    assert_int_equal(fresh_run(c, 1, dir, 5, &m, &res), 0);
    model_free(&m);
    assert_int_equal(checkpoint_open(dir, &ck, &m), 0);
    TrainConfig cfg = ck.cfg;
    cfg.quiet = 1;
    cfg.resume = &ck;
    train_set.pixels[100] ^= 1;
    assert_int_equal(train_run(&m, &train_set, &val_set, &cfg, &res), -1);
    train_set.pixels[100] ^= 1;
    print_message("%s\n", dg_errmsg());
    assert_non_null(strstr(dg_errmsg(), "trained on other data"));
    /* another thread count: refused */
    cfg.threads = 2;
    assert_int_equal(train_run(&m, &train_set, &val_set, &cfg, &res), -1);
    assert_non_null(strstr(dg_errmsg(), "threads"));
    checkpoint_close(&ck);
    model_free(&m);
    model_free(&ref);
}

/* ==== SIGKILL during saves ===================================================== */

/* Child: save forever, alternating two sets of weights (model file), or
 * write checkpoints forever (checkpoint folder). */
static void child_save_loop(int checkpoints, const char *path) {
    Model m;
    if (model_build_named(&m, "cnn-bn") < 0) _exit(3);
    model_init_params(&m, 1);
    model_set_batch(&m, 1, 0, 1);
    Optimizer o;
    optim_init(&o, OPTIM_ADAM, m.n_param);
    Schedule s;
    sched_init(&s, SCHED_CONSTANT, 1e-3f, 10);
    TrainState st;
    train_state_init(&st, &m, 1000, 1);
    TrainConfig cfg;
    train_config_defaults(&cfg);
    for (long i = 0;; i++) {
        m.params[0] = (float)(i & 1); /* file content alternates */
        st.step = i;
        int rc = checkpoints ? checkpoint_save(path, &m, &o, &s, &st, &cfg, NULL, 0) : model_save(&m, path);
        if (rc < 0) _exit(4);
    }
}

static void kill_loop(int checkpoints, const char *path, int rounds) {
    int mid_save = 0;
    srand(12345);
    for (int r = 0; r < rounds; r++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) child_save_loop(checkpoints, path);
        /* first round: let the first save complete; then kill at random */
        struct timespec ts = {0, (r == 0 ? 300 : 20 + rand() % 60) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* evidence of a save cut short: a temp file left behind (removed
         * here for the model file; the next checkpoint save prunes its own) */
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", checkpoints ? path : tu_tmpdir());
        mid_save += system(cmd) == 0;
        if (!checkpoints) {
            snprintf(cmd, sizeof cmd, "rm -f '%s'.tmp.*", path);
            assert_int_equal(system(cmd), 0);
        }
        Model m;
        if (checkpoints) {
            Checkpoint ck;
            int rc = checkpoint_open(path, &ck, &m);
            if (rc < 0) print_message("round %d: %s\n", r, dg_errmsg());
            assert_int_equal(rc, 0);
            assert_string_equal(ck.warning, ""); /* `latest` always names a complete file */
            checkpoint_close(&ck);
        } else {
            int rc = model_load(&m, path);
            if (rc < 0) print_message("round %d: %s\n", r, dg_errmsg());
            assert_int_equal(rc, 0);
            assert_true(m.params[0] == 0.0f || m.params[0] == 1.0f);
        }
        model_free(&m);
    }
    print_message("%s: %d SIGKILLs, %d of them during a save; every time the file loaded\n",
                  checkpoints ? "checkpoints" : "model file", rounds, mid_save);
}

static void test_sigkill_during_save(void **state) {
    kill_loop(0, tu_tmp_path("killed.safetensors"), 25);
    const char *dir = tu_tmp_path("ck-killed");
    kill_loop(1, dir, 25);
    rm_rf(dir);
}

/* ==== write failures (full disk) ================================================= */

/* In a child limited to `limit` bytes per file (SIGXFSZ ignored: writes
 * fail with EFBIG, as on a full disk), save over an existing file. */
static void test_write_failure_keeps_previous(void **state) {
    Model m;
    assert_int_equal(model_build_named(&m, "cnn-bn"), 0); /* 3.3 MB file */
    model_init_params(&m, 1);
    const char *path = tu_tmp_path("full.safetensors");
    assert_int_equal(model_save(&m, path), 0);
    const char *dir = tu_tmp_path("ck-full");
    Optimizer o;
    optim_init(&o, OPTIM_ADAM, m.n_param);
    Schedule s;
    sched_init(&s, SCHED_CONSTANT, 1e-3f, 10);
    TrainState st;
    train_state_init(&st, &m, 100, 1);
    TrainConfig cfg;
    train_config_defaults(&cfg);
    model_set_batch(&m, 1, 0, 1);
    assert_int_equal(checkpoint_save(dir, &m, &o, &s, &st, &cfg, NULL, 0), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        m.params[0] += 1.0f;
        if (model_save(&m, path) != -1) _exit(11);
        const char *msg = dg_errmsg();
        fprintf(stderr, "model_save: %s\n", msg);
        if (!strstr(msg, path) || !strstr(msg, "File too large") || strchr(msg, '\n')) _exit(12);
        st.step = 1;
        if (checkpoint_save(dir, &m, &o, &s, &st, &cfg, NULL, 0) != -1) _exit(13);
        msg = dg_errmsg();
        fprintf(stderr, "checkpoint_save: %s\n", msg);
        if (!strstr(msg, "ck-full/ckpt-e000-s00000001.safetensors: write failed: File too large")) _exit(14);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the previous files are intact and nothing half-written is left */
    Model back;
    assert_int_equal(model_load(&back, path), 0);
    assert_memory_equal(back.params, m.params, m.n_param * sizeof(float));
    model_free(&back);
    Checkpoint ck;
    assert_int_equal(checkpoint_open(dir, &ck, &back), 0);
    assert_non_null(strstr(ck.path, "ckpt-e000-s00000000.safetensors"));
    assert_string_equal(ck.warning, "");
    checkpoint_close(&ck);
    model_free(&back);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -R '%s' | grep -q '\\.tmp\\.'", tu_tmpdir());
    assert_int_not_equal(system(cmd), 0);
    train_state_free(&st);
    optim_free(&o);
    model_free(&m);
}

/* ==== the CSV log is cut back to the checkpoint's epochs ============================= */

static void test_trim_log(void **state) {
    const char *log = tu_tmp_path("log.csv");
    write_text(log, "epoch,train_loss\n1,0.5\n2,0.4\n3,0.3\n");
    assert_int_equal(checkpoint_trim_log(log, 2), 0);
    FILE *f = fopen(log, "r");
    char buf[256] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f) > 0, 1);
    fclose(f);
    assert_string_equal(buf, "epoch,train_loss\n1,0.5\n2,0.4\n");
    assert_int_equal(checkpoint_trim_log(tu_tmp_path("no-log.csv"), 2), 0);
}

/* ==== the weights' moving average =============================================== */

typedef struct {
    const Model *m;
    float decay;
    float *ema;        /* the expected average, params then buffers */
    float *at_epoch;   /* (epochs, n) the expected average at each epoch end */
    long steps_per_epoch;
} EmaWatch;

/* After every step: the average as train.h defines it, kept here by hand. */
static void watch_ema(void *ctx, long step) {
    EmaWatch *w = ctx;
    const Model *m = w->m;
    const size_t np = m->n_param, n = np + m->n_buffer;
    double warm = (1.0 + step) / (10.0 + step), d = w->decay < warm ? w->decay : warm;
    for (size_t i = 0; i < n; i++) {
        double v = i < np ? m->params[i] : m->buffers[i - np];
        w->ema[i] = (float)(d * w->ema[i] + (1 - d) * v);
    }
    if (step % w->steps_per_epoch == 0)
        memcpy(w->at_epoch + (size_t)(step / w->steps_per_epoch - 1) * n, w->ema, n * sizeof(float));
}

/* --ema: without validation the model that comes back is the average of
 * its weights (parameters and BN statistics) over the steps; with
 * validation it is the average as it stood at the best epoch, and the
 * validation loss reported is that average's. */
static void test_ema_is_the_model(void **state) {
    for (int with_val = 0; with_val <= 1; with_val++) {
        Model m;
        new_model(&m);
        const size_t n = m.n_param + m.n_buffer;
        TrainConfig cfg;
        case_config(&cfg, &cases[0], 1);
        cfg.schedule = SCHED_CONSTANT;
        cfg.epochs = 3;
        cfg.ema = 0.95f;
        EmaWatch w = {&m, cfg.ema, malloc(n * sizeof(float)), malloc(3 * n * sizeof(float)), 10};
        memcpy(w.ema, m.params, m.n_param * sizeof(float));
        memcpy(w.ema + m.n_param, m.buffers, m.n_buffer * sizeof(float));
        cfg.on_step = watch_ema;
        cfg.on_step_ctx = &w;
        TrainResult res;
        train_clear_stop();
        assert_int_equal(train_run(&m, &train_set, with_val ? &val_set : NULL, &cfg, &res), 0);
        const float *want = with_val ? w.at_epoch + (size_t)(res.best_epoch - 1) * n : w.ema;
        float *got = malloc(n * sizeof(float));
        memcpy(got, m.params, m.n_param * sizeof(float));
        memcpy(got + m.n_param, m.buffers, m.n_buffer * sizeof(float));
        TU_ASSERT_CLOSE(got, want, n, 1e-5f, with_val ? "ema at the best epoch" : "ema after the last step");
        if (with_val) {
            double loss;
            model_predict_dataset(&m, &val_set, 16, NULL, NULL, &loss);
            print_message("best epoch %d: val loss %.6f, the average's %.6f\n", res.best_epoch, res.best_val_loss, loss);
            assert_true(fabs(loss - res.best_val_loss) < 1e-5);
        }
        free(got);
        free(w.ema);
        free(w.at_epoch);
        model_free(&m);
    }
}

/* ==== Lookahead ================================================================== */

/* A run of `steps` steps (no validation) with Lookahead k / alpha (k 0: off)
 * around Adam, lr 0.01 (sgd: SGD with momentum 0.9, lr 0.05). */
static void lookahead_run(int sgd, int k, float alpha, long steps, Model *m) {
    new_model(m);
    TrainConfig cfg;
    case_config(&cfg, &cases[0], 1);
    cfg.schedule = SCHED_CONSTANT;
    cfg.epochs = 3;
    cfg.max_steps = steps;
    cfg.lookahead = k;
    cfg.lookahead_alpha = alpha;
    if (sgd) cfg.optim = OPTIM_SGD, cfg.lr = 0.05f;
    TrainResult res;
    train_clear_stop();
    assert_int_equal(train_run(m, &train_set, NULL, &cfg, &res), 0);
    assert_int_equal(res.steps, steps);
}

/* --lookahead k: the first k-1 steps are the plain optimiser's; after step
 * k the weights are init + alpha (fast - init), where fast are the plain
 * run's weights after k steps; the batch-norm statistics are not averaged.
 * With alpha 1 the synchronisation moves nothing, and the inner optimiser's
 * state goes on across it: 30 steps of SGD with momentum at k 2 end where
 * the plain run does (to rounding: SGD, whose steps do not amplify the
 * last bit as Adam's sign-like steps on near-zero gradients do). */
static void test_lookahead_steps(void **state) {
    const int k = 4;
    const float alpha = 0.5f;
    Model init, plain, la;
    new_model(&init);
    lookahead_run(0, 0, 0.5f, k - 1, &plain);
    lookahead_run(0, k, alpha, k - 1, &la);
    assert_same_weights(&la, &plain);
    model_free(&plain);
    model_free(&la);

    lookahead_run(0, 0, 0.5f, k, &plain);
    lookahead_run(0, k, alpha, k, &la);
    const size_t n = init.n_param;
    float *want = malloc(n * sizeof(float));
    double moved = 0;
    for (size_t i = 0; i < n; i++) {
        want[i] = init.params[i] + alpha * (plain.params[i] - init.params[i]);
        moved = fmax(moved, fabs(plain.params[i] - init.params[i]));
    }
    assert_true(moved > 1e-3); /* the check below is not init against init */
    TU_ASSERT_CLOSE(la.params, want, n, 1e-6f, "lookahead after k steps");
    assert_memory_equal(la.buffers, plain.buffers, la.n_buffer * sizeof(float));
    free(want);
    model_free(&plain);
    model_free(&la);

    lookahead_run(1, 0, 0.5f, 30, &plain);
    lookahead_run(1, 2, 1.0f, 30, &la);
    TU_ASSERT_CLOSE(la.params, plain.params, n, 1e-4f, "lookahead alpha 1 against plain SGD + momentum");
    model_free(&la);
    lookahead_run(1, 2, 0.5f, 30, &la);
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs(la.params[i] - plain.params[i]));
    print_message("lookahead alpha 0.5 against plain SGD + momentum: max diff %.3g\n", diff);
    assert_true(diff > 1e-2); /* alpha 0.5 does change the run */
    model_free(&plain);
    model_free(&la);
    model_free(&init);
}

/* The first case's run, stopped after 4 steps, in dir (emptied first);
 * the path of its checkpoint into file. */
static void stopped_run(const char *dir, char *file, size_t len) {
    rm_rf(dir);
    Model m;
    TrainResult res;
    assert_int_equal(fresh_run(&cases[0], 1, dir, 4, &m, &res), 0);
    model_free(&m);
    snprintf(file, len, "%s", res.checkpoint);
}

/* Replaces every `from` in the header of the safetensors file at path by
 * `to` (the same length; NULL: blanks, which JSON reads as whitespace), so
 * no offset moves. Returns how many were replaced. */
static int patch_header(const char *path, const char *from, const char *to) {
    assert_true(to == NULL || strlen(to) == strlen(from));
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    char *bytes = malloc((size_t)len + 1);
    rewind(f);
    assert_int_equal(fread(bytes, 1, (size_t)len, f), (size_t)len);
    bytes[len] = '\0';
    uint64_t header = 0; /* the header's length, little-endian, then the header */
    for (int i = 7; i >= 0; i--) header = header << 8 | (uint8_t)bytes[i];
    assert_true(header + 8 <= (uint64_t)len);
    bytes[8 + header] = '\0';
    int n = 0;
    for (char *at = strstr(bytes + 8, from); at; at = strstr(at, from), n++) {
        if (to) memcpy(at, to, strlen(to));
        else memset(at, ' ', strlen(from));
    }
    rewind(f);
    assert_int_equal(fwrite(bytes, 1, (size_t)(8 + header), f), (size_t)(8 + header));
    fclose(f);
    free(bytes);
    return n;
}

/* A checkpoint whose state is damaged is refused with the reason, before
 * anything of it is used: a field missing, a random stream missing. */
static void test_checkpoint_state_damaged(void **state) {
    (void)state;
    const struct {
        const char *from, *to, *expect;
    } damage[] = {
        {"\\\"since_best\\\":", "\\\"since_besX\\\":", "checkpoint state is incomplete or out of range"},
        {"\\\"n_train\\\":", "\\\"n_traiX\\\":", "checkpoint state lacks n_train/data_hash"},
        {"\\\"batch\\\":", "\\\"batcX\\\":", "checkpoint state is incomplete or out of range"},
        {"\\\"shuffle\\\":", "\\\"shufflX\\\":", "RNG stream 'shuffle' is missing or invalid"},
    };
    for (size_t i = 0; i < sizeof damage / sizeof *damage; i++) {
        const char *dir = tu_tmp_path("ck-state");
        char file[4200];
        stopped_run(dir, file, sizeof file);
        assert_int_equal(patch_header(file, damage[i].from, damage[i].to), 1);
        Model m;
        TrainResult res;
        Checkpoint ck;
        assert_int_equal(checkpoint_open(dir, &ck, &m), 0);
        TrainConfig cfg = ck.cfg;
        cfg.quiet = 1;
        cfg.resume = &ck;
        assert_int_equal(train_run(&m, &train_set, &val_set, &cfg, &res), -1);
        print_message("%s\n", dg_errmsg());
        assert_non_null(strstr(dg_errmsg(), damage[i].expect));
        checkpoint_close(&ck);
        model_free(&m);
    }
}

/* A checkpoint written before a setting existed (here: its stored settings
 * blanked of "lookahead", as digits 0.12 wrote them) matches a run that
 * leaves the setting at its default, and not one that sets it: an ensemble
 * member stopped by an older digits resumes. */
static void test_checkpoint_predating_a_setting(void **state) {
    const char *dir = tu_tmp_path("ck-older");
    char file[4200];
    stopped_run(dir, file, sizeof file);
    /* in the escaped settings strings of the header (after its 8-byte length) */
    assert_true(patch_header(file, "\\\"lookahead\\\":0,", NULL) >= 1);
    Model m;

    Checkpoint ck;
    assert_int_equal(checkpoint_open(dir, &ck, &m), 0);
    assert_null(strstr(safetensors_meta(ck.st, "digits.resume_config"), "\"lookahead\":"));
    TrainConfig cfg;
    case_config(&cfg, &cases[0], 1);
    cfg.checkpoint_dir = dir;
    assert_true(checkpoint_matches(&ck, &cfg, 1));
    cfg.lookahead = 3;
    assert_false(checkpoint_matches(&ck, &cfg, 1));
    cfg.lookahead = 0;
    cfg.lr *= 2;
    assert_false(checkpoint_matches(&ck, &cfg, 1));
    checkpoint_close(&ck);
    model_free(&m);
}

/* ==== ensembles ================================================================= */

/* Stops after `*left` optimiser steps counted over every member. */
static void stop_after_total(void *ctx, long step) {
    (void)step;
    if (--*(long *)ctx == 0) train_request_stop(SIGINT);
}

static int ensemble_run(const EnsembleTrainConfig *ec, const char *dir, const char *out, long stop_after,
                        Model **members, EnsembleTrainResult *res) {
    TrainConfig cfg;
    case_config(&cfg, &cases[0], 1);
    cfg.epochs = 2;
    cfg.out_path = out;
    cfg.checkpoint_dir = dir;
    long left = stop_after;
    cfg.on_step = stop_after ? stop_after_total : NULL;
    cfg.on_step_ctx = &left;
    train_clear_stop();
    int rc = ensemble_train(ec, &train_set, &cfg, members, res);
    train_clear_stop();
    if (rc < 0) print_message("ensemble_train: %s\n", dg_errmsg());
    free(res->train_config_json);
    res->train_config_json = NULL;
    return rc;
}

/* An ensemble (3 members; shared split, then 3-fold) stopped in member 1,
 * at member 1's last step, in member 2 and at the very last step, then
 * continued: it keeps the members its file holds, resumes the one
 * stopped, and ends with the members of the run never stopped, bit for
 * bit; the members' checkpoint folders are gone. */
static void test_ensemble_resume_identical(void **state) {
    char spec[512]; /* (tmp_path's buffers rotate) */
    snprintf(spec, sizeof spec, "%s", tu_tmp_path("ens.spec"));
    write_text(spec, SPEC);
    for (int kfold = 0; kfold <= 3; kfold += 3) {
        EnsembleTrainConfig ec = {.n = 3, .kfold = kfold, .val_split = 0.2f};
        for (int k = 0; k < 3; k++) ec.models[k] = spec;
        Model *ref;
        EnsembleTrainResult ref_res;
        assert_int_equal(ensemble_run(&ec, NULL, tu_tmp_path("ens-ref.safetensors"), 0, &ref, &ref_res), 0);
        long per_member = ref_res.member[0].steps;
        long points[] = {3, per_member, per_member + 4, 3 * per_member - 1};
        int kept_after[] = {0, 1, 1, 2}; /* members the file holds once stopped */
        for (size_t pi = 0; pi < sizeof points / sizeof *points; pi++) {
            char dir[512], out[512];
            snprintf(dir, sizeof dir, "%s", tu_tmp_path("ck-ens"));
            snprintf(out, sizeof out, "%s", tu_tmp_path("ens.safetensors"));
            rm_rf(dir);
            unlink(out);
            Model *ms;
            EnsembleTrainResult res;
            assert_int_equal(ensemble_run(&ec, dir, out, points[pi], &ms, &res), 0);
            assert_int_equal(res.interrupted, SIGINT);
            assert_null(ms);
            assert_int_equal(res.stop_member, kept_after[pi]);
            if (points[pi] == per_member) { /* stopped at member 1's last step: member 2 never began */
                char next[600];
                snprintf(next, sizeof next, "%s/member-02", dir);
                struct stat sb;
                assert_int_not_equal(stat(next, &sb), 0);
                assert_string_equal(res.checkpoint, "");
            }
            ec.resume = 1;
            assert_int_equal(ensemble_run(&ec, dir, out, 0, &ms, &res), 0);
            ec.resume = 0;
            assert_int_equal(res.interrupted, 0);
            assert_int_equal(res.kept, kept_after[pi]);
            print_message("ensemble kfold=%d stopped after step %ld: member %d stopped, %d kept\n", kfold,
                          points[pi], kept_after[pi] + 1, res.kept);
            for (int k = 0; k < 3; k++) {
                assert_same_weights(&ms[k], &ref[k]);
                char member_dir[600];
                snprintf(member_dir, sizeof member_dir, "%s/member-%02d", dir, k + 1);
                struct stat sb;
                assert_int_not_equal(stat(member_dir, &sb), 0);
                model_free(&ms[k]);
            }
            free(ms);
            if (kfold) assert_memory_equal(&res.oof_acc, &ref_res.oof_acc, sizeof(double));
            else assert_memory_equal(&res.val_acc, &ref_res.val_acc, sizeof(double));
        }
        for (int k = 0; k < 3; k++) model_free(&ref[k]);
        free(ref);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_identical),
        cmocka_unit_test(test_early_stop_state_matters),
        cmocka_unit_test(test_damaged_checkpoints),
        cmocka_unit_test(test_sigkill_during_save),
        cmocka_unit_test(test_write_failure_keeps_previous),
        cmocka_unit_test(test_trim_log),
        cmocka_unit_test(test_ensemble_resume_identical),
        cmocka_unit_test(test_ema_is_the_model),
        cmocka_unit_test(test_lookahead_steps),
        cmocka_unit_test(test_checkpoint_predating_a_setting),
        cmocka_unit_test(test_checkpoint_state_damaged),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
