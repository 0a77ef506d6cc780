/* fmt.h - operator-facing text: the 10 s summary line (SPEC §10.4) and
 * the Prometheus text exposition 0.0.4 of /metrics (SPEC §10.2).
 *
 * Control path only: struct fmt_buf grows with realloc.  Pure: the
 * caller supplies the counters (struct turn_stats summed over workers)
 * and the gauges; nothing here reads a clock or the shared region. */
#ifndef RLY_FMT_H
#define RLY_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "turn_stats.h"

/* Content-Type of a /metrics reply (SPEC §10.1). */
#define FMT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Long enough for any fmt_throughput() result, NUL included. */
#define FMT_THROUGHPUT_STRLEN 32
/* Long enough for any fmt_summary() result, NUL included. */
#define FMT_SUMMARY_STRLEN 96

/* A growable NUL-terminated text buffer.  Zero-initialised (or after
 * fmt_buf_init()) it is empty with data NULL.  Once an allocation fails,
 * failed is set, later appends do nothing and fmt_buf_finish() reports
 * RLY_ERR_NOMEM, so a renderer can append without checking each call. */
struct fmt_buf {
    char   *data;       /* NUL-terminated when len > 0; owned */
    size_t  len;        /* bytes of text, NUL excluded */
    size_t  cap;        /* bytes allocated */
    int     failed;     /* an allocation failed */
};

void fmt_buf_init(struct fmt_buf *b);
/* Frees data and empties b; b may be reused afterwards.  NULL is fine. */
void fmt_buf_free(struct fmt_buf *b);
/* Empties b, keeping its allocation, and clears failed. */
void fmt_buf_reset(struct fmt_buf *b);
/* Appends formatted text.  Returns 0 or RLY_ERR_NOMEM (b->failed set). */
int fmt_buf_printf(struct fmt_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s. Returns 0 or RLY_ERR_NOMEM. */
int fmt_buf_append(struct fmt_buf *b, const char *s, size_t n);
/* 0, or RLY_ERR_NOMEM when any append since the last reset failed. */
int fmt_buf_finish(const struct fmt_buf *b);

/* Writes the throughput of `bytes` payload bytes over `seconds` seconds
 * (0 is taken as 1) into buf, per SPEC §10.4: the rate is divided by 1000
 * while it is >= 1000 (B/s, kB/s, MB/s, GB/s, TB/s; TB/s is the largest
 * unit), then printed with 2 decimals, TRUNCATED (not rounded): so
 * 999999 B/s is "999.99 kB/s", never "1000.00 kB/s".  Exact integer
 * arithmetic: 1234 -> "1.23 kB/s", 955333999 -> "955.33 MB/s",
 * 100000000000 -> "100.00 GB/s"; 15 bytes over 10 s -> "1.50 B/s".
 * Truncates to size (snprintf rules).  Returns buf. */
char *fmt_throughput(uint64_t bytes, uint64_t seconds, char *buf,
    size_t size);

/* The summary message (SPEC §10.4) without the log prefix:
 * "allocations=N channels=M throughput=X", X from fmt_throughput(bytes,
 * seconds).  Truncates to size.  Returns buf. */
char *fmt_summary(uint64_t allocations, uint64_t channels, uint64_t bytes,
    uint64_t seconds, char *buf, size_t size);

/* Gauges of /metrics that are not in struct turn_stats. */
struct fmt_gauges {
    uint64_t active_allocations;    /* relay_active_allocations */
    uint64_t active_channels;       /* relay_active_channels, bound only */
    uint64_t workers;               /* relay_workers */
    int      portal_connected;      /* nonzero -> 1 */
    int      xdp_attached;          /* nonzero -> 1 */
};

/* Appends the whole /metrics body for the counters s (summed over
 * workers) and the gauges g to b, in Prometheus text format 0.0.4: every
 * SPEC §10.2 metric, in the table's order, each with "# HELP" and "# TYPE"
 * lines.  Series exported:
 *  - relay_dropped_packets_total: one per §10.3 reason, always (0 too);
 *  - relay_relayed_*_total, relay_xdp_relayed_*_total: both directions,
 *    always;
 *  - relay_responses_total: the success series of every message_type
 *    always (0 too), so rates work from start; an error series
 *    {message_type, response_class="error", error_code} only once its
 *    count is nonzero (54 zero series would be noise);
 *  - relay_packet_size_bytes: le="100" ... le="1500", le="+Inf" buckets,
 *    made cumulative from the struct's per-bucket counts; _count equals
 *    the +Inf bucket and _sum is size_sum.
 * Returns 0 or RLY_ERR_NOMEM (b keeps what was appended). */
int fmt_metrics(struct fmt_buf *b, const struct turn_stats *s,
    const struct fmt_gauges *g);

#endif
