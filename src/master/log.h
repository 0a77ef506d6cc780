/* log.h - the process-wide logger of the master and the workers: SPEC
 * §10.4 lines on stderr, human or JSON.
 *
 * log_get() is handed to the core (struct rly_logger is copied there) and
 * used with the log_*() macros of rly_log.h.  Each line is written with a
 * single write(2), so the lines of the master and its workers never
 * interleave.  Callers never pass the token, the secret or a password. */
#ifndef RLY_MASTER_LOG_H
#define RLY_MASTER_LOG_H

#include "rly_log.h"

/* Sets the process name ("master", "worker"), the format and the level. */
void log_setup(const char *proc, int json, enum rly_log_level level);
/* After a fork: the new process name. */
void log_set_proc(const char *proc);
/* SIGHUP: log.level is reloadable. */
void log_set_level(enum rly_log_level level);

/* The logger to use and to copy into the core. */
struct rly_logger *log_get(void);

/* The rly_log_fn: formats and writes one line. */
void log_write(void *ud, enum rly_log_level level, const char *func,
    const char *msg);

#endif
