/* Learning-rate schedules: pure functions of the step number, counted from 0. Feed the
 * result to ur_optim_set_lr before each step. */
#include "graph/ur_train.h"

#include <math.h>

float ur_lr_constant(float base_lr, long step)
{
    (void)step;
    return base_lr;
}

float ur_lr_step_decay(float base_lr, long step, long step_size, float gamma)
{
    if (step_size <= 0 || step <= 0) return base_lr;
    return (float)((double)base_lr * pow((double)gamma, (double)(step / step_size)));
}

/* warmup:  lr = base (step + 1) / warmup                          for step < warmup
 * decay:   lr = min + (base - min) (1 + cos(pi q)) / 2,  q = (step - warmup) / (total - warmup)
 * after:   lr = min                                               for step >= total */
float ur_lr_cosine(float base_lr, long step, long total_steps, long warmup, float min_lr)
{
    if (step < 0) step = 0;
    if (warmup > 0 && step < warmup) return (float)((double)base_lr * (double)(step + 1) / (double)warmup);
    if (warmup < 0) warmup = 0;
    long span = total_steps - warmup;
    if (span <= 0 || step >= total_steps) return min_lr;
    double q = (double)(step - warmup) / (double)span;
    return (float)(min_lr + ((double)base_lr - min_lr) * 0.5 * (1.0 + cos(3.141592653589793 * q)));
}
