/* optim.h — optimisers over one flat parameter vector, and learning-rate
 * schedules. Both follow PyTorch's definitions exactly (torch.optim 1.13),
 * so a digits run and a PyTorch run with the same weights take the same step.
 *
 *   SGD:  g += wd*p; buf = mu*buf + g (buf = g on the first step);
 *         d = nesterov ? g + mu*buf : buf;  p -= lr*d
 *   Adam: g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *         p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 */
#ifndef DG_OPTIM_H
#define DG_OPTIM_H

#include <stddef.h>

typedef enum { OPTIM_SGD, OPTIM_ADAM } OptimType;

typedef struct {
    OptimType type;
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float beta1, beta2, eps; /* Adam */
    float weight_decay; /* L2, added to the gradient (PyTorch's weight_decay) */
    size_t n;
    float *m, *v;       /* state: one block, 2*n floats (momentum buffer / Adam moments) */
    long step;          /* steps taken */
} Optimizer;

void optim_init(Optimizer *o, OptimType type, size_t n_param);
void optim_free(Optimizer *o);
void optim_step(Optimizer *o, float *params, const float *grads, float lr);
int optim_parse(const char *name, OptimType *type); /* "sgd" | "adam"; -1 otherwise */
/* Checkpoints: the optimiser's whole state besides `step` is this block of
 * *count floats (momentum buffer, Adam moments). */
float *optim_state(Optimizer *o, size_t *count);

typedef enum {
    SCHED_CONSTANT, /* lr */
    SCHED_STEP,     /* lr * gamma^(epoch / step_size) */
    SCHED_EXP,      /* lr * gamma^epoch (gamma 0.95 by default) */
    SCHED_PLATEAU,  /* ReduceLROnPlateau on validation loss: *factor after patience bad epochs */
    SCHED_ONECYCLE, /* per step: cosine warm-up to max lr over 30 %, cosine down to lr/(25*1e4) */
    SCHED_COSINE,   /* per step: cosine from lr to 0 over the run */
} SchedType;

typedef struct {
    SchedType type;
    float base_lr;
    float gamma;        /* step / exp */
    int step_size;      /* step: epochs */
    float factor;       /* plateau */
    int patience;       /* plateau */
    float min_lr;       /* plateau */
    long total_steps;   /* onecycle / cosine */
    float pct_start;    /* onecycle */
    /* plateau state */
    float best;
    int bad_epochs;
    float current;
} Schedule;

int sched_parse(const char *name, SchedType *type);
void sched_init(Schedule *s, SchedType type, float base_lr, long total_steps);
/* Learning rate for global step `step` (0-based) in epoch `epoch` (0-based). */
float sched_lr(const Schedule *s, long step, int epoch);
/* End of epoch with validation loss (plateau only). */
void sched_epoch_end(Schedule *s, float val_loss);
const char *sched_name(SchedType t);

#endif
