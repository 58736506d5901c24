/* The reason the last model constructor in this thread returned -1. Every constructor
 * clears it on entry; ur_model_param records the first parameter that could not be added. */
#include "models/ur_models.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[256];
static _Thread_local int has_error;

int ur_model_fail(const char *fmt, ...)
{
    char buf[sizeof last_error]; /* the arguments may be ur_model_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    has_error = 1;
    return -1;
}

void ur_model_clear_error(void) { has_error = 0; last_error[0] = '\0'; }

const char *ur_model_error(void) { return has_error ? last_error : NULL; }
