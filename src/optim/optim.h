/* optim.h — optimisers over one flat parameter vector, and learning-rate
 * schedules. Both follow PyTorch's definitions exactly (torch.optim 1.13),
 * so a digits run and a PyTorch run with the same weights take the same step.
 *
 *   SGD:  g += wd*p; buf = mu*buf + g (buf = g on the first step);
 *         d = nesterov ? g + mu*buf : buf;  p -= lr*d
 *   Adam: g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *         p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   AdamW (Loshchilov & Hutter): p *= 1 - lr*wd (decoupled decay), then
 *         Adam's step without the wd term in g.
 *   NAdam (Dozat 2016, torch.optim.NAdam 1.13): g += wd*p; m, v as Adam;
 *         mu_t = b1*(1 - 0.5*0.96^(t*psi)), psi = momentum_decay (4e-3);
 *         prod_t = mu_1*...*mu_t;  d = sqrt(v/(1-b2^t)) + eps;
 *         p -= lr*(1-mu_t)/(1-prod_t) * g/d + lr*mu_{t+1}/(1-prod_t*mu_{t+1}) * m/d
 */
#ifndef DG_OPTIM_H
#define DG_OPTIM_H

#include <stddef.h>

typedef enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_NADAM, OPTIM_ADAMW } OptimType;

typedef struct {
    OptimType type;
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float beta1, beta2, eps; /* Adam */
    float weight_decay; /* L2 added to the gradient (PyTorch's weight_decay); AdamW: decoupled */
    float momentum_decay; /* NAdam's psi (4e-3) */
    double mu_product;  /* NAdam: prod of mu_1..mu_step, valid for mu_product_step */
    long mu_product_step;
    size_t n;
    float *m, *v;       /* state: one block, 2*n floats (momentum buffer / Adam moments) */
    long step;          /* steps taken */
} Optimizer;

void optim_init(Optimizer *o, OptimType type, size_t n_param);
void optim_free(Optimizer *o);
void optim_step(Optimizer *o, float *params, const float *grads, float lr);
int optim_parse(const char *name, OptimType *type); /* "sgd" | "adam" | "nadam" | "adamw"; -1 otherwise */
const char *optim_name(OptimType type);
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
