/* digits_internal.h — the internal umbrella over the module headers (the CLI,
 * the tests and the benchmarks use it; the public API is include/digits.h).
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
 *     // optional: on-the-fly augmentation (data/augment.h)
 *     AugmentConfig aug;
 *     augment_parse("seed000", &aug);                   // or "rotate=10,shift=0.1,..."
 *     cfg.augment = &aug;
 *
 *     uint8_t *pred = malloc(test.n);
 *     model_predict_dataset(&m, &test, 1000, pred, NULL, NULL);
 *     Metrics mt;
 *     metrics_compute(&mt, test.labels, pred, test.n);
 *     metrics_print(stdout, &mt);
 *
 *     ReportConfig rc;                                  // pictures + index.html
 *     report_config_defaults(&rc);
 *     rc.model_path = "cnn-bn.safetensors";
 *     rc.out_dir = "report";
 *     report_write(&rc);
 * Any saved model file — one network or an ensemble (eval/ensemble.h,
 * trained with train/ensemble_train.h) — predicts through a Classifier:
 *
 *     Classifier c;
 *     classifier_load(&c, "runs/cnn-bn-ensemble5.safetensors", 1000, 0);
 *     c.tta = 4;                                        // optional test-time augmentation
 *     classifier_predict_dataset(&c, &test, pred, NULL, NULL);
 *
 * Checkpoints (train/resume.h): set cfg.checkpoint_dir and the run can be
 * continued after a crash or a signal with checkpoint_open + cfg.resume.
 *
 * The kernels (src/ops) and layer internals (src/model/layer.h) are not
 * part of this API.
 */
#ifndef DIGITS_INTERNAL_H
#define DIGITS_INTERNAL_H

#include "core/check.h"
#include "core/suggest.h"
#include "core/version.h"
#include "data/augment.h"
#include "data/data.h"
#include "data/preprocess.h"
#include "eval/classifier.h"
#include "eval/ensemble.h"
#include "eval/holdout.h"
#include "eval/metrics.h"
#include "eval/pca.h"
#include "eval/report.h"
#include "eval/svm.h"
#include "eval/tsne.h"
#include "model/model.h"
#include "optim/optim.h"
#include "train/ensemble_train.h"
#include "train/resume.h"
#include "train/train.h"

#define DIGITS_VERSION DG_VERSION /* core/version.h */

#endif
