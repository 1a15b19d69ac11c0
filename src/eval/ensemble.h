/* ensemble.h — several networks voting as one classifier, stored as ONE
 * model file, and test-time augmentation.
 *
 * File: safetensors whose metadata has digits.kind = "ensemble",
 * digits.vote = "logits" | "probs", and digits.members, a JSON array with
 * one object per member: {"prefix": "m0.", "name": "cnn-bn", "spec": "...",
 * "norm_mean": "0.1307", "norm_std": "0.3081"} (+ its train_config and
 * metrics when known). Member k's tensors are named "m<k>." + its own
 * names ("m0.3.weight"). classifier_load recognises the kind, so eval,
 * predict, submit and serve use an ensemble exactly like one network.
 *
 * Votes: "logits" sums the members' logits and takes the softmax (a
 * product of the members' distributions); "probs" averages the members'
 * probabilities (soft voting), and reports log(mean) as logits.
 */
#ifndef DG_ENSEMBLE_H
#define DG_ENSEMBLE_H

#include <stdint.h>

#include "eval/classifier.h"
#include "model/model.h"

#define ENSEMBLE_MAX_MEMBERS 256 /* members one file may hold */

/* member_logits (n_members, n, 10) -> probs (n, 10) and, if logits is
 * non-NULL, the voted logits (n, 10). */
void ensemble_vote(const float *member_logits, int n_members, int n, int vote_logits, float *probs,
                   float *logits);

/* Save members[0..n) as one ensemble file (atomic). train_config_json and
 * metrics_json (JSON text, may be NULL) describe the whole ensemble. */
int ensemble_save(const char *path, const Model *members, int n, int vote_logits,
                  const char *train_config_json, const char *metrics_json);
/* ensemble_save with the tensors stored as dtype (model.h: F32, BF16, F16). */
int ensemble_save_dtype(const char *path, const Model *members, int n, int vote_logits,
                        const char *train_config_json, const char *metrics_json, DgDtype dtype);

/* Classifier over members (ownership of the array and the models moves to c). */
void ensemble_classifier_from_models(Classifier *c, Model *members, int n, int vote_logits);

/* classifier.c's hooks: load an ensemble file whose metadata is meta_json;
 * predict one chunk (n <= c->batch). */
int ensemble_load(Classifier *c, const char *path, const char *meta_json, int max_batch, int threads);
void ensemble_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits);

/* Test-time augmentation around any chunk predictor: probs (n, 10) = mean
 * over k < c->tta of the probabilities of augment_tta_warp(k) of every
 * image; logits (if non-NULL) = log(probs). */
typedef void (*classifier_chunk_fn)(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits);
void tta_predict_chunk(Classifier *c, const uint8_t *pixels, int n, float *probs, float *logits,
                       classifier_chunk_fn chunk);

#endif
