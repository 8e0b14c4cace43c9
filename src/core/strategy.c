/* Choosing and composing the mode strategies (src/core/strategy.h). */
#include "engine.h"

void engine_use(rb_engine *E, const rb_strategy *S)
{
    E->strategy = S;
    E->dry_run = !S->performs;
}

void strategy_compose(rb_strategy *out, const rb_strategy *base, const rb_strategy *decorator)
{
    *out = *base;
#define OVER(hook)                                                                                 \
    if (decorator->hook)                                                                           \
    out->hook = decorator->hook
    OVER(before_action);
    OVER(answer);
    OVER(after_action);
    OVER(sleep);
    OVER(confirm);
    OVER(before_step);
    OVER(missing);
    OVER(missing_secret);
    OVER(journaled);
    OVER(step_done);
#undef OVER
}

int engine_decorate(rb_engine *E, const rb_strategy *decorator)
{
    int n = E->n_layers;
    if (n >= (int)(sizeof E->layers / sizeof E->layers[0]))
        return -1;
    strategy_compose(&E->layers[n], E->strategy, decorator);
    E->n_layers = n + 1;
    engine_use(E, &E->layers[n]);
    return 0;
}
