/* train.c — the training loop; see train.h. */
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"
#include "core/util.h"
#include "eval/metrics.h"
#include "ops/ops.h"

void train_config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch_size = 64;
    c->lr = 1e-3f;
    c->optim = OPTIM_ADAM;
    c->momentum = 0.9f;
    c->schedule = SCHED_CONSTANT;
    c->step_size = 5;
    c->seed = 42;
}

char *train_config_json(const TrainConfig *c, const char *model_name, int n_train, int n_val) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model_name);
    cJSON_AddNumberToObject(o, "epochs", c->epochs);
    cJSON_AddNumberToObject(o, "batch_size", c->batch_size);
    cJSON_AddNumberToObject(o, "lr", c->lr);
    cJSON_AddStringToObject(o, "optimizer", c->optim == OPTIM_SGD ? "sgd" : "adam");
    if (c->optim == OPTIM_SGD) {
        cJSON_AddNumberToObject(o, "momentum", c->momentum);
        cJSON_AddBoolToObject(o, "nesterov", c->nesterov);
    }
    cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay);
    cJSON_AddStringToObject(o, "schedule", sched_name(c->schedule));
    cJSON_AddNumberToObject(o, "patience", c->patience);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddNumberToObject(o, "threads", c->threads);
    cJSON_AddNumberToObject(o, "n_train", n_train);
    cJSON_AddNumberToObject(o, "n_val", n_val);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A progress bar on a terminal; nothing otherwise (the epoch line follows). */
static void progress(int tty, int epoch, int epochs, int done, int total, double elapsed, double loss, double acc) {
    if (!tty) return;
    int width = 30, fill = total ? done * width / total : width;
    double eta = done ? elapsed * (total - done) / done : 0;
    fprintf(stderr, "\repoch %d/%d [", epoch, epochs);
    for (int i = 0; i < width; i++) fputc(i < fill ? '=' : (i == fill ? '>' : ' '), stderr);
    fprintf(stderr, "] %d/%d loss %.4f acc %.4f ETA %4.0fs ", done, total, loss, acc, eta);
    fflush(stderr);
}

/* One monitor measurement (see TrainConfig.monitor): accuracy on the monitor
 * set with the current weights, logged and printed, never fed back. Eval mode
 * only reads the weights and BN running statistics and draws no random
 * numbers, so the next training step is the same as without it; batch B
 * keeps model_set_batch from reallocating the activations mid-training. */
static void monitor_report(Model *m, const TrainConfig *cfg, FILE *log, int epoch, long step, double train_loss,
                           double train_acc, double val_loss, double val_acc, float lr, double epoch_secs,
                           double train_secs) {
    double acc = model_predict_dataset(m, cfg->monitor, cfg->batch_size, NULL, NULL, NULL);
    if (log) {
        fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%ld,%.3f,%.6f\n", epoch, train_loss, train_acc, val_loss,
                val_acc, lr, epoch_secs, step, train_secs, acc);
        fflush(log);
    }
    if (!cfg->quiet) {
        printf("  step %ld  monitor acc %.4f  after %.2fs of training\n", step, acc, train_secs);
        fflush(stdout);
    }
}

int train_run(Model *m, const Dataset *train, const Dataset *val, const TrainConfig *cfg, TrainResult *res) {
    DG_ASSERT(train->labels && train->n > 0);
    memset(res, 0, sizeof *res);
    const int B = cfg->batch_size;
    const int steps_per_epoch = (train->n + B - 1) / B;
    const int have_val = val && val->n > 0;
    const size_t img = (size_t)train->rows * train->cols;
    model_set_batch(m, B, 1, cfg->threads);

    Optimizer opt;
    optim_init(&opt, cfg->optim, m->n_param);
    opt.momentum = cfg->momentum;
    opt.nesterov = cfg->nesterov;
    opt.weight_decay = cfg->weight_decay;
    Schedule sched;
    sched_init(&sched, cfg->schedule, cfg->lr, (long)cfg->epochs * steps_per_epoch);
    if (cfg->gamma > 0) sched.gamma = cfg->gamma;
    if (cfg->step_size > 0) sched.step_size = cfg->step_size;

    Rng shuffle_rng;
    rng_seed(&shuffle_rng, cfg->seed, "shuffle");
    int *order = dg_xmalloc((size_t)train->n * sizeof(int));
    uint8_t *batch_px = dg_xmalloc((size_t)B * img);
    uint8_t *batch_y = dg_xmalloc((size_t)B);
    float *probs = dg_xmalloc((size_t)B * MODEL_NUM_CLASSES * sizeof(float));
    /* best weights (params + BN buffers) for early stopping */
    float *best_params = dg_xmalloc((m->n_param + m->n_buffer + 1) * sizeof(float));
    double best_val_loss = INFINITY;
    int since_best = 0, rc = 0, tty = isatty(fileno(stderr)) && !cfg->quiet;

    FILE *log = NULL;
    if (cfg->log_path) {
        log = fopen(cfg->log_path, "w");
        if (!log) fprintf(stderr, "warning: cannot write log %s; continuing without it\n", cfg->log_path);
        else fprintf(log, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds%s\n",
                     cfg->monitor ? ",step,train_seconds,monitor_acc" : "");
    }
    Layer *last = &m->layers[m->n_layers - 1];
    long step = 0;
    int epoch;
    for (epoch = 0; epoch < cfg->epochs; epoch++) {
        /* the epoch's clock covers the shuffle too: it is data loading.
         * paused: seconds of mid-epoch monitor passes, excluded */
        double t0 = now_seconds(), paused = 0, loss_sum = 0;
        for (int i = 0; i < train->n; i++) order[i] = i;
        rng_shuffle(&shuffle_rng, order, train->n);
        long correct = 0, seen = 0;
        float lr = sched_lr(&sched, step, epoch);
        for (int b = 0; b < steps_per_epoch; b++) {
            if (cfg->max_steps && step >= cfg->max_steps) break;
            int start = b * B, n = train->n - start < B ? train->n - start : B;
            for (int i = 0; i < n; i++) {
                memcpy(batch_px + (size_t)i * img, train->pixels + (size_t)order[start + i] * img, img);
                batch_y[i] = train->labels[order[start + i]];
            }
            model_load_pixels(m, batch_px, n);
            float *logits = model_forward(m, n, 1);
            float loss = softmax_xent_forward(probs, logits, batch_y, n, MODEL_NUM_CLASSES);
            softmax_xent_backward(last->dy, probs, batch_y, n, MODEL_NUM_CLASSES);
            model_zero_grad(m);
            model_backward(m, last->dy, n);
            lr = sched_lr(&sched, step, epoch);
            optim_step(&opt, m->params, m->grads, lr);
            step++;
            loss_sum += (double)loss * n;
            seen += n;
            for (int i = 0; i < n; i++) {
                const float *row = probs + (size_t)i * MODEL_NUM_CLASSES;
                int best = 0;
                for (int k = 1; k < MODEL_NUM_CLASSES; k++)
                    if (row[k] > row[best]) best = k;
                correct += best == batch_y[i];
            }
            if (cfg->monitor && cfg->monitor_every > 0 && step % cfg->monitor_every == 0 &&
                b + 1 < steps_per_epoch && !(cfg->max_steps && step >= cfg->max_steps)) {
                double t_pause = now_seconds(), secs = t_pause - t0 - paused;
                if (tty) fprintf(stderr, "\r\033[K");
                monitor_report(m, cfg, log, epoch + 1, step, loss_sum / seen, (double)correct / seen, NAN, NAN, lr,
                               secs, res->seconds + secs);
                paused += now_seconds() - t_pause;
            }
            if (tty && (b % 20 == 0 || b == steps_per_epoch - 1))
                progress(tty, epoch + 1, cfg->epochs, b + 1, steps_per_epoch, now_seconds() - t0 - paused,
                         loss_sum / seen, (double)correct / seen);
        }
        double secs = now_seconds() - t0 - paused;
        res->seconds += secs;
        res->epochs_run = epoch + 1;
        res->train_loss = seen ? loss_sum / seen : 0;
        res->train_acc = seen ? (double)correct / seen : 0;
        if (tty) fprintf(stderr, "\r\033[K");

        double val_loss = NAN, val_acc = NAN;
        if (have_val) {
            val_acc = model_predict_dataset(m, val, B, NULL, NULL, &val_loss);
            sched_epoch_end(&sched, (float)val_loss);
        }
        if (!cfg->quiet) {
            printf("epoch %3d/%d  train loss %.4f acc %.4f", epoch + 1, cfg->epochs, res->train_loss, res->train_acc);
            if (have_val) printf("  val loss %.4f acc %.4f", val_loss, val_acc);
            printf("  lr %.3g  %.1fs (%.0f img/s)\n", lr, secs, seen / secs);
            fflush(stdout);
        }
        if (cfg->monitor) {
            monitor_report(m, cfg, log, epoch + 1, step, res->train_loss, res->train_acc, val_loss, val_acc, lr,
                           secs, res->seconds);
        } else if (log) {
            fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", epoch + 1, res->train_loss, res->train_acc,
                    val_loss, val_acc, lr, secs);
            fflush(log);
        }
        if (have_val && val_loss < best_val_loss) {
            best_val_loss = val_loss;
            res->best_epoch = epoch + 1;
            res->best_val_loss = val_loss;
            res->best_val_acc = val_acc;
            since_best = 0;
            memcpy(best_params, m->params, m->n_param * sizeof(float));
            memcpy(best_params + m->n_param, m->buffers, m->n_buffer * sizeof(float));
            if (cfg->out_path && model_save(m, cfg->out_path) < 0) {
                rc = -1;
                break;
            }
        } else if (have_val) {
            since_best++;
        }
        if (cfg->max_steps && step >= cfg->max_steps) {
            epoch++;
            break;
        }
        if (have_val && cfg->patience > 0 && since_best >= cfg->patience) {
            if (!cfg->quiet)
                printf("early stopping: val loss has not improved for %d epochs; restoring epoch %d\n",
                       cfg->patience, res->best_epoch);
            epoch++;
            break;
        }
    }
    res->steps = step;
    if (have_val && res->best_epoch > 0) {
        /* end with the best weights, like Keras' restore_best_weights */
        memcpy(m->params, best_params, m->n_param * sizeof(float));
        memcpy(m->buffers, best_params + m->n_param, m->n_buffer * sizeof(float));
    } else if (rc == 0 && cfg->out_path && model_save(m, cfg->out_path) < 0) {
        rc = -1;
    }
    if (log) fclose(log);
    free(order);
    free(batch_px);
    free(batch_y);
    free(probs);
    free(best_params);
    optim_free(&opt);
    return rc;
}
