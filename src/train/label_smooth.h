/* label_smooth.h — label smoothing for the softmax cross-entropy of training
 * (PyTorch's CrossEntropyLoss(label_smoothing=eps), Keras's
 * CategoricalCrossentropy(label_smoothing=eps)): the target of a row with
 * label y is q = (1 − eps)·onehot(y) + eps/K over the K classes.
 *
 * Only the training loss and its gradient change; validation, the test set
 * and early stopping keep the plain cross-entropy. */
#ifndef DIGITS_TRAIN_LABEL_SMOOTH_H
#define DIGITS_TRAIN_LABEL_SMOOTH_H

#include <stdint.h>

/* Sum over the n rows of the smoothed loss −Σ_k q_k·log softmax(z)_k,
 * from the logits (n rows of K). */
double label_smooth_loss_sum(const float *logits, const uint8_t *labels, int n, int K, float eps);

/* Turns the plain cross-entropy gradient (p − onehot(y))/B of n rows, as
 * softmax_xent_backward writes it, into the smoothed one (p − q)/B: adds
 * eps·(onehot(y) − 1/K)/B to every row. B is the batch the loss is averaged
 * over (n, or the whole batch of a distributed step). */
void label_smooth_grad(float *dlogits, const uint8_t *labels, int n, int K, int B, float eps);

#endif
