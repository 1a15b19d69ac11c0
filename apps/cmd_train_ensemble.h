/* cmd_train_ensemble.h — `digits train`'s ensemble mode (cmd_train_ensemble.c). */
#ifndef DG_APP_TRAIN_ENSEMBLE_H
#define DG_APP_TRAIN_ENSEMBLE_H

#include "digits_internal.h"
#include "train/ensemble_train.h"

/* Fill ens->models from --ensemble-models L (split in place) or N copies
 * of model_name; exits 2 on a bad combination of flags. */
void train_ensemble_members(EnsembleTrainConfig *ens, const char *model_name, char *list);
/* Train the members on all, test on testset (may be NULL), save to out
 * (cmd_train chose it). Returns the exit status. */
int train_ensemble_run(EnsembleTrainConfig *ens, const Dataset *all, const Dataset *testset,
                       const char *test_path, TrainConfig *cfg, const char *out);

#endif
