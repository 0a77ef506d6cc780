/* log.c - SPEC §10.4 log lines on stderr.
 *
 * human: 2025-01-01T00:00:00.000Z INFO master[812]: message
 * json:  {"ts":"...","level":"info","proc":"master","pid":812,"msg":"..."}
 *
 * A line is built in a stack buffer and written with one write(2): stderr
 * is shared by the master and all workers, and a single write of a pipe or
 * terminal line up to PIPE_BUF bytes is not interleaved with another
 * process's.  Control characters are escaped so that one event is always
 * one line, whatever a message quotes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "master/log.h"

#define LOG_LINE_MAX    8192

static struct {
    const char         *proc;
    int                 json;
    struct rly_logger   lg;
} log_state = {
    "master", 0, { log_write, NULL, RLY_LOG_INFO }
};

static const char *const upper_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

void
log_setup(const char *proc, int json, enum rly_log_level level)
{
    log_state.proc = proc;
    log_state.json = json;
    log_state.lg.fn = log_write;
    log_state.lg.ud = NULL;
    log_state.lg.level = level;
}

void
log_set_proc(const char *proc)
{
    log_state.proc = proc;
}

void
log_set_level(enum rly_log_level level)
{
    log_state.lg.level = level;
}

struct rly_logger *
log_get(void)
{
    return &log_state.lg;
}

/* Appends to buf at *pos, never past size - 1; keeps buf terminated. */
static void
append(char *buf, size_t size, size_t *pos, const char *s, size_t len)
{
    if (*pos >= size - 1)
        return;
    if (len > size - 1 - *pos)
        len = size - 1 - *pos;
    memcpy(buf + *pos, s, len);
    *pos += len;
    buf[*pos] = '\0';
}

static void
append_str(char *buf, size_t size, size_t *pos, const char *s)
{
    append(buf, size, pos, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    size_t  len;
    unsigned min;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
        min = 0x80;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
        min = 0x800;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The message, escaped: as a JSON string body, or for a human line (control
 * characters as \xNN).  Invalid UTF-8 becomes U+FFFD in JSON. */
static void
append_escaped(char *buf, size_t size, size_t *pos, const char *msg,
    int json)
{
    const unsigned char *s = (const unsigned char *)msg;
    size_t               n = strlen(msg);
    char                 esc[8];

    while (n > 0) {
        size_t len = utf8_seq(s, n);

        if (len == 0) {
            if (json)
                append_str(buf, size, pos, "\\ufffd");
            else {
                snprintf(esc, sizeof(esc), "\\x%02x", s[0]);
                append_str(buf, size, pos, esc);
            }
            s++;
            n--;
            continue;
        }
        if (len == 1 && (s[0] < 0x20 || s[0] == 0x7F ||
            (json && (s[0] == '"' || s[0] == '\\')))) {
            if (!json)
                snprintf(esc, sizeof(esc), "\\x%02x", s[0]);
            else if (s[0] == '"' || s[0] == '\\')
                snprintf(esc, sizeof(esc), "\\%c", s[0]);
            else if (s[0] == '\n')
                snprintf(esc, sizeof(esc), "\\n");
            else if (s[0] == '\t')
                snprintf(esc, sizeof(esc), "\\t");
            else if (s[0] == '\r')
                snprintf(esc, sizeof(esc), "\\r");
            else
                snprintf(esc, sizeof(esc), "\\u%04x", s[0]);
            append_str(buf, size, pos, esc);
        } else {
            append(buf, size, pos, (const char *)s, len);
        }
        s += len;
        n -= len;
    }
}

/* "2025-01-01T00:00:00.000Z" */
static void
format_time(char *out, size_t size)
{
    struct timespec ts;
    struct tm       tm;
    char            sec[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%.24s.%03uZ", sec,
        (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

void
log_write(void *ud, enum rly_log_level level, const char *func,
    const char *msg)
{
    char    line[LOG_LINE_MAX];
    char    ts[40];
    char    head[160];
    size_t  pos = 0;
    ssize_t w;
    int     saved = errno;

    if ((unsigned)level > RLY_LOG_DEBUG)
        level = RLY_LOG_DEBUG;
    line[0] = '\0';
    format_time(ts, sizeof(ts));
    if (log_state.json) {
        snprintf(head, sizeof(head),
            "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":%ld,"
            "\"msg\":\"", ts, rly_log_level_name(level), log_state.proc,
            (long)getpid());
        append_str(line, sizeof(line), &pos, head);
        append_escaped(line, sizeof(line) - 3, &pos, msg, 1);
        append_str(line, sizeof(line), &pos, "\"}\n");
    } else {
        snprintf(head, sizeof(head), "%s %s %s[%ld]: ", ts,
            upper_names[level], log_state.proc, (long)getpid());
        append_str(line, sizeof(line), &pos, head);
        append_escaped(line, sizeof(line) - 1, &pos, msg, 0);
        append_str(line, sizeof(line), &pos, "\n");
    }
    do {
        w = write(STDERR_FILENO, line, pos);
    } while (w < 0 && errno == EINTR);
    errno = saved;
}
