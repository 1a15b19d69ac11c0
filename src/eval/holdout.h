/* holdout.h — which images a model was trained on, so evaluation can say
 * whether its figures are a test figure.
 *
 * `digits train` records in the model file's train_config a "holdout" object:
 * the fingerprint (a hash of the pixels and labels) and count of the data set
 * it split, the validation fraction, the split seed and the data path. From
 * it, holdout_load tells
 *   - "test set": data the model did not see (or whose origin it cannot tell:
 *     model files written before the record, pretrained files);
 *   - "training data — not held out": the data set it split, or a larger set
 *     that starts with it (the same IDX folder or CSV without --limit);
 *   - "validation split": --split val, the exact images the run held out,
 *     re-created from the stored seed and fraction (split_stratified).
 *
 * Left out on purpose: recognising training images scattered inside another
 * file (a shuffled copy, a subset that does not start at image 0) — that
 * needs a per-image index the model file does not carry.
 */
#ifndef DG_HOLDOUT_H
#define DG_HOLDOUT_H

#include <stdint.h>

#include "data/data.h"

typedef enum { DATA_TEST, DATA_VALIDATION, DATA_TRAINING } DataRole;

/* What a model file's train_config says about its training data. */
typedef struct {
    int known;           /* 0: the file records nothing (older or foreign model file) */
    uint64_t data_hash;  /* holdout_fingerprint(data, data_n) */
    int data_n;          /* images split into train + validation (after --limit) */
    float val_split;     /* validation fraction (0 = none) */
    uint64_t seed;       /* split seed */
    int kfold;           /* an ensemble trained with --kfold K: K (no single validation split) */
    char data[1024];     /* the --data path given to train, for messages ("" = unknown) */
} TrainedOn;

/* The warning eval prints when the data is the model's training data. */
#define HOLDOUT_WARNING \
    "these are the images the model was trained on; the accuracy is not a test figure " \
    "(use --split val, or a held-out file)"

/* Hash of the first n images of ds (sizes, pixels, and labels when present). */
uint64_t holdout_fingerprint(const Dataset *ds, int n);

/* The "holdout" object for a train_config (JSON text, caller frees): what
 * train records. data_path may be NULL. */
char *holdout_record_json(uint64_t data_hash, int data_n, float val_split, uint64_t seed, const char *data_path);

/* Reads the record from a model file's metadata object (JSON text, as
 * Classifier.metadata_json); t->known = 0 when there is none. */
void holdout_parse(const char *metadata_json, TrainedOn *t);

/* Whether ds starts with the model's training data (0 if unknown). */
int holdout_is_training_data(const TrainedOn *t, const Dataset *ds);

/* Loads what eval/report evaluate: split "train"/"test" of an IDX folder
 * (a CSV is the whole file), or "val": the model's own validation images,
 * cut from the training split of `data` with the recorded seed and fraction.
 * *role says what the images are. Returns -1 with a one-line message that
 * says what to do instead (data is not the training data, no validation
 * split, nothing recorded). out is owned by the caller (dataset_free). */
int holdout_load(const char *data, const char *split, const char *metadata_json, Dataset *out, DataRole *role);

/* "test set", "validation split", "training data — not held out". */
const char *holdout_role_title(DataRole role);

#endif
