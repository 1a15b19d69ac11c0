/* digits.h — the public API of libdigits: handwritten-digit recognition.
 *
 * Quick tour (error handling elided; every call that can fail returns -1
 * or NULL and leaves a one-line message in dg_errmsg()):
 *
 *     Dataset train, test;
 *     dataset_load("data/mnist", "train", &train);     // IDX folder or Kaggle .csv
 *     dataset_load("data/mnist", "test", &test);
 *
 *     Model m;
 *     model_build_named(&m, "cnn-bn");                  // models/cnn-bn.spec
 *     model_init_params(&m, 42);
 *     dataset_mean_std(&train, &m.norm_mean, &m.norm_std);
 *     model_summary(&m, stdout);
 *
 *     TrainConfig cfg;
 *     train_config_defaults(&cfg);
 *     cfg.epochs = 10;
 *     TrainResult res;
 *     train_run(&m, &train, NULL, &cfg, &res);
 *     model_save(&m, "cnn-bn.safetensors");             // atomic
 *
 *     uint8_t *pred = malloc(test.n);
 *     model_predict_dataset(&m, &test, 1000, pred, NULL, NULL);
 *     Metrics mt;
 *     metrics_compute(&mt, test.labels, pred, test.n);
 *     metrics_print(stdout, &mt);
 *
 * Checkpoints (train/resume.h): set cfg.checkpoint_dir and the run can be
 * continued after a crash or a signal with checkpoint_open + cfg.resume.
 *
 * The kernels (src/ops) and layer internals (src/model/layer.h) are not
 * part of this API.
 */
#ifndef DIGITS_H
#define DIGITS_H

#include "core/check.h"
#include "data/data.h"
#include "eval/classifier.h"
#include "eval/metrics.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/resume.h"
#include "train/train.h"

#define DIGITS_VERSION "0.1.0"

#endif
