/*
 * live: actions are carried out.  A runbook's confirm() asks the operator
 * (or --yes answers); what is configured nowhere is an error.
 */
#include "engine.h"

const rb_strategy rb_mode_live = {
    .name = "live",
    .performs = 1,
};
