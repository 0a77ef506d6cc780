/* rly_log.c - injected logging; see rly_log.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_log.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
rly_log(const struct rly_logger *lg, enum rly_log_level level,
    const char *func, const char *fmt, ...)
{
    char    buf[1024];
    va_list ap;

    if (lg == NULL || lg->fn == NULL || level > lg->level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    lg->fn(lg->ud, level, func, buf);
}

const char *
rly_log_level_name(enum rly_log_level level)
{
    if ((unsigned)level > RLY_LOG_DEBUG)
        return "debug";
    return level_names[level];
}

int
rly_log_level_parse(const char *s)
{
    for (int i = 0; i <= RLY_LOG_DEBUG; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void
rly_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "firezone-relay: BUG at %s:%d: %s\n", file, line, what);
    abort();
}
