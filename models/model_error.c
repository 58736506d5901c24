/* The reason the last model constructor in this thread returned -1. */
#include "models/ur_models.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[256];
static _Thread_local int has_error;

int ur_model_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    has_error = 1;
    return -1;
}

const char *ur_model_error(void) { return has_error ? last_error : NULL; }
