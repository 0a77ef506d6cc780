/* fmt.c - summary line and /metrics text (SPEC §10.2, §10.4).
 *
 * The Prometheus text format 0.0.4: "# HELP name text", "# TYPE name
 * type", then "name{label="value",...} value" lines.  Every label value
 * here comes from a fixed table, so none needs escaping. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "rly_err.h"

void
fmt_buf_init(struct fmt_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void
fmt_buf_free(struct fmt_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void
fmt_buf_reset(struct fmt_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Makes room for need more bytes plus the NUL. */
static int
reserve(struct fmt_buf *b, size_t need)
{
    size_t  cap;
    char   *p;

    if (b->failed)
        return RLY_ERR_NOMEM;
    if (need < b->cap - b->len)         /* room for need and the NUL */
        return 0;
    if (need > SIZE_MAX / 2 - b->len - 1)
        goto fail;
    cap = b->cap > 0 ? b->cap : 256;
    while (cap - b->len <= need)
        cap *= 2;
    if ((p = realloc(b->data, cap)) == NULL)
        goto fail;
    b->data = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return RLY_ERR_NOMEM;
}

int
fmt_buf_append(struct fmt_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return RLY_ERR_NOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int
fmt_buf_printf(struct fmt_buf *b, const char *fmt, ...)
{
    va_list ap;
    int     n;

    if (b->failed)
        return RLY_ERR_NOMEM;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return RLY_ERR_NOMEM;
    }
    if (reserve(b, (size_t)n) != 0)
        return RLY_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int
fmt_buf_finish(const struct fmt_buf *b)
{
    return b->failed ? RLY_ERR_NOMEM : 0;
}

static const char *const rate_units[] = {
    "B/s", "kB/s", "MB/s", "GB/s", "TB/s"
};

char *
fmt_throughput(uint64_t bytes, uint64_t seconds, char *buf, size_t size)
{
    uint64_t rate, div = 1, whole, frac, m;
    unsigned unit = 0;

    if (seconds == 0)
        seconds = 1;
    /* floor(floor(x / a) / b) == floor(x / (a * b)) for whole numbers, so
     * working on the truncated rate loses nothing and cannot overflow. */
    rate = bytes / seconds;
    while (unit < 4 && rate / div >= 1000) {
        div *= 1000;
        unit++;
    }
    if (unit > 0) {
        whole = rate / div;
        frac = rate / (div / 100) % 100;
    } else {
        whole = rate;
        m = bytes % seconds;
        frac = m <= UINT64_MAX / 100 ? m * 100 / seconds : m / (seconds / 100);
    }
    snprintf(buf, size, "%llu.%02llu %s", (unsigned long long)whole,
        (unsigned long long)frac, rate_units[unit]);
    return buf;
}

char *
fmt_summary(uint64_t allocations, uint64_t channels, uint64_t bytes,
    uint64_t seconds, char *buf, size_t size)
{
    char tp[FMT_THROUGHPUT_STRLEN];

    fmt_throughput(bytes, seconds, tp, sizeof(tp));
    snprintf(buf, size, "allocations=%llu channels=%llu throughput=%s",
        (unsigned long long)allocations, (unsigned long long)channels, tp);
    return buf;
}

/* ---- /metrics ---- */

static void
put_head(struct fmt_buf *b, const char *name, const char *type,
    const char *help)
{
    fmt_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
        type);
}

static void
put_plain(struct fmt_buf *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
    put_head(b, name, type, help);
    fmt_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
put_by_dir(struct fmt_buf *b, const char *name, const char *help,
    const uint64_t v[TURN_DIR_COUNT])
{
    put_head(b, name, "counter", help);
    for (int d = 0; d < TURN_DIR_COUNT; d++)
        fmt_buf_printf(b, "%s{direction=\"%s\"} %llu\n", name,
            turn_dir_name((enum turn_dir)d), (unsigned long long)v[d]);
}

static void
put_responses(struct fmt_buf *b, const struct turn_stats *s)
{
    static const char name[] = "relay_responses_total";

    put_head(b, name, "counter", "STUN responses sent.");
    for (int t = 0; t < TURN_MT_COUNT; t++) {
        const char *mt = turn_msgtype_name((enum turn_msgtype)t);

        fmt_buf_printf(b, "%s{message_type=\"%s\",response_class=\"success\"}"
            " %llu\n", name, mt,
            (unsigned long long)s->responses[t][TURN_RESP_SUCCESS]);
        for (int r = TURN_RESP_SUCCESS + 1; r < TURN_RESP_COUNT; r++) {
            if (s->responses[t][r] == 0)
                continue;
            fmt_buf_printf(b, "%s{message_type=\"%s\",response_class="
                "\"error\",error_code=\"%u\"} %llu\n", name, mt,
                turn_resp_code((enum turn_resp)r),
                (unsigned long long)s->responses[t][r]);
        }
    }
}

static void
put_drops(struct fmt_buf *b, const struct turn_stats *s)
{
    static const char name[] = "relay_dropped_packets_total";

    put_head(b, name, "counter", "Datagrams discarded, by reason.");
    for (int d = TURN_DROP_NONE + 1; d < TURN_DROP_COUNT; d++)
        fmt_buf_printf(b, "%s{reason=\"%s\"} %llu\n", name,
            turn_drop_name((enum turn_drop)d),
            (unsigned long long)s->dropped[d]);
}

static void
put_histogram(struct fmt_buf *b, const struct turn_stats *s)
{
    static const char name[] = "relay_packet_size_bytes";
    uint64_t          cum = 0;

    put_head(b, name, "histogram", "Payload size per relayed datagram.");
    for (int i = 0; i < TURN_HIST_BUCKETS; i++) {
        cum += s->size_hist[i];
        if (i < TURN_HIST_BUCKETS - 1)
            fmt_buf_printf(b, "%s_bucket{le=\"%d\"} %llu\n", name,
                (i + 1) * 100, (unsigned long long)cum);
        else
            fmt_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                (unsigned long long)cum);
    }
    fmt_buf_printf(b, "%s_sum %llu\n%s_count %llu\n", name,
        (unsigned long long)s->size_sum, name, (unsigned long long)cum);
}

int
fmt_metrics(struct fmt_buf *b, const struct turn_stats *s,
    const struct fmt_gauges *g)
{
    put_plain(b, "relay_active_allocations", "gauge", "Live allocations.",
        g->active_allocations);
    put_plain(b, "relay_active_channels", "gauge",
        "Bound channels (cooling down excluded).", g->active_channels);
    put_responses(b, s);
    put_by_dir(b, "relay_relayed_bytes_total", "Payload bytes relayed.",
        s->relayed_bytes);
    put_by_dir(b, "relay_relayed_packets_total", "Datagrams relayed.",
        s->relayed_packets);
    put_drops(b, s);
    put_histogram(b, s);
    put_plain(b, "relay_portal_connected", "gauge",
        "1 while joined to the portal, else 0.", g->portal_connected != 0);
    put_plain(b, "relay_allocations_lost_total", "counter",
        "Allocations deleted because a restarted worker could not re-bind "
        "their relay port.", s->allocations_lost);
    put_plain(b, "relay_xdp_attached", "gauge",
        "1 while the XDP offload is attached, else 0.", g->xdp_attached != 0);
    put_by_dir(b, "relay_xdp_relayed_packets_total",
        "Datagrams relayed by the XDP offload.", s->xdp_packets);
    put_by_dir(b, "relay_xdp_relayed_bytes_total",
        "Payload bytes relayed by the XDP offload.", s->xdp_bytes);
    put_plain(b, "relay_workers", "gauge", "Workers running.", g->workers);
    return fmt_buf_finish(b);
}
