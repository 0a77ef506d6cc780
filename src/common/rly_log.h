/* rly_log.h - injected logging for the pure core.
 *
 * The core never writes anywhere itself: it calls the rly_log_fn it was
 * given (STYLE §5).  The master and workers supply one that formats the
 * SPEC §10.4 line.  Per-packet events are debug only; the ChannelData path
 * logs nothing. */
#ifndef RLY_LOG_H
#define RLY_LOG_H

#include <stdarg.h>

enum rly_log_level {
    RLY_LOG_ERROR = 0,
    RLY_LOG_WARN  = 1,
    RLY_LOG_INFO  = 2,
    RLY_LOG_DEBUG = 3
};

/* msg is a complete, NUL-terminated message without a newline.  It is valid
 * only during the call. */
typedef void (*rly_log_fn)(void *ud, enum rly_log_level level,
    const char *func, const char *msg);

struct rly_logger {
    rly_log_fn          fn;     /* NULL: discard */
    void               *ud;
    enum rly_log_level  level;  /* messages above this level are skipped */
};

/* Formats and hands one message to lg->fn if lg->level admits it.  Safe with
 * lg == NULL or lg->fn == NULL.  Messages longer than 1 KiB are truncated. */
void rly_log(const struct rly_logger *lg, enum rly_log_level level,
    const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "error", "warn", "info", "debug"; parse returns -1 for anything else. */
const char *rly_log_level_name(enum rly_log_level level);
int rly_log_level_parse(const char *s);

#define log_error(lg, ...) rly_log((lg), RLY_LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(lg, ...)  rly_log((lg), RLY_LOG_WARN,  __func__, __VA_ARGS__)
#define log_info(lg, ...)  rly_log((lg), RLY_LOG_INFO,  __func__, __VA_ARGS__)
#define log_debug(lg, ...) rly_log((lg), RLY_LOG_DEBUG, __func__, __VA_ARGS__)

/* Aborts on our own inconsistent state (never on input). */
#define RLY_BUG_ON(cond) do { if (cond) rly_bug(__FILE__, __LINE__, #cond); } while (0)
void rly_bug(const char *file, int line, const char *what)
    __attribute__((noreturn));

#endif
