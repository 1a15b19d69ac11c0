/* schedule.c — learning-rate schedules (PyTorch semantics); see optim.h. */
#include <math.h>
#include <string.h>

#include "optim/optim.h"

static const char *const names[] = {"constant", "step", "exp", "plateau", "onecycle", "cosine"};

int sched_parse(const char *name, SchedType *type) {
    for (int i = 0; i < 6; i++)
        if (strcmp(name, names[i]) == 0) {
            *type = (SchedType)i;
            return 0;
        }
    return -1;
}

const char *sched_name(SchedType t) { return names[t]; }

void sched_init(Schedule *s, SchedType type, float base_lr, long total_steps) {
    memset(s, 0, sizeof *s);
    s->type = type;
    s->base_lr = base_lr;
    s->gamma = type == SCHED_STEP ? 0.1f : 0.95f;
    s->step_size = 5;
    s->factor = 0.5f;
    s->patience = 2;
    s->min_lr = 1e-6f;
    s->total_steps = total_steps > 0 ? total_steps : 1;
    s->pct_start = 0.3f;
    s->best = INFINITY;
    s->current = base_lr;
}

/* cos annealing from a to b as t goes 0 -> 1 (PyTorch's _annealing_cos). */
static float anneal_cos(float a, float b, float t) { return b + (a - b) * 0.5f * (1.0f + cosf((float)M_PI * t)); }

float sched_lr(const Schedule *s, long step, int epoch) {
    switch (s->type) {
    case SCHED_CONSTANT:
        return s->base_lr;
    case SCHED_STEP:
        return s->base_lr * powf(s->gamma, (float)(epoch / s->step_size));
    case SCHED_EXP:
        return s->base_lr * powf(s->gamma, (float)epoch);
    case SCHED_PLATEAU:
        return s->current;
    case SCHED_ONECYCLE: {
        /* torch.optim.lr_scheduler.OneCycleLR with max_lr = base_lr,
         * div_factor 25, final_div_factor 1e4, cosine annealing. */
        float initial = s->base_lr / 25.0f, final = initial / 1e4f;
        float up_end = s->pct_start * (float)s->total_steps - 1.0f;
        float down_end = (float)s->total_steps - 1.0f;
        if ((float)step <= up_end) return anneal_cos(initial, s->base_lr, up_end > 0 ? step / up_end : 1.0f);
        float t = (step - up_end) / (down_end - up_end);
        return anneal_cos(s->base_lr, final, t > 1.0f ? 1.0f : t);
    }
    case SCHED_COSINE: {
        float t = (float)step / (float)s->total_steps;
        return anneal_cos(s->base_lr, 0.0f, t > 1.0f ? 1.0f : t);
    }
    }
    return s->base_lr;
}

void sched_epoch_end(Schedule *s, float val_loss) {
    if (s->type != SCHED_PLATEAU) return;
    /* PyTorch's default threshold: rel 1e-4 */
    if (val_loss < s->best * (1.0f - 1e-4f)) {
        s->best = val_loss;
        s->bad_epochs = 0;
    } else if (++s->bad_epochs > s->patience) {
        s->current = fmaxf(s->current * s->factor, s->min_lr);
        s->bad_epochs = 0;
    }
}
