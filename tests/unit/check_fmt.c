/* check_fmt.c - the summary line (SPEC §10.4, C63) and the /metrics text
 * (SPEC §10.2, Prometheus text format 0.0.4). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "rly_err.h"
#include "suites.h"

struct tp_case {
    uint64_t    bytes, seconds;
    const char *out;
};

static const struct tp_case tp_cases[] = {
    { 42, 1, "42.00 B/s" },             /* C63 */
    { 1234, 1, "1.23 kB/s" },
    { 955333999, 1, "955.33 MB/s" },
    { 100000000000ULL, 1, "100.00 GB/s" },
    { 0, 1, "0.00 B/s" },
    { 0, 10, "0.00 B/s" },
    { 15, 10, "1.50 B/s" },
    { 9999, 10, "999.90 B/s" },
    { 999, 1, "999.00 B/s" },
    { 1000, 1, "1.00 kB/s" },
    { 1230, 1, "1.23 kB/s" },           /* exact, no binary fuzz */
    { 1239, 1, "1.23 kB/s" },           /* truncated */
    { 12345, 10, "1.23 kB/s" },         /* 1234.5 B/s */
    { 999999, 1, "999.99 kB/s" },       /* never "1000.00 kB/s" */
    { 1000000, 1, "1.00 MB/s" },
    { 9553339990ULL, 10, "955.33 MB/s" },
    { 1000000000000ULL, 1, "1.00 TB/s" },
    { 1000000000000000ULL, 1, "1000.00 TB/s" },     /* largest unit */
    { UINT64_MAX, 1, "18446744.07 TB/s" },
    { 42, 0, "42.00 B/s" },             /* 0 s taken as 1 */
    { 7, 3, "2.33 B/s" },
};

START_TEST(test_c63_throughput_formatter)
{
    char buf[FMT_THROUGHPUT_STRLEN];

    ck_assert_str_eq(fmt_throughput(42, 1, buf, sizeof(buf)), "42.00 B/s");
    ck_assert_str_eq(fmt_throughput(1234, 1, buf, sizeof(buf)),
        "1.23 kB/s");
    ck_assert_str_eq(fmt_throughput(955333999, 1, buf, sizeof(buf)),
        "955.33 MB/s");
    ck_assert_str_eq(fmt_throughput((uint64_t)1e11, 1, buf, sizeof(buf)),
        "100.00 GB/s");
}
END_TEST

START_TEST(test_throughput_table)
{
    const struct tp_case *t = &tp_cases[_i];
    char                  buf[FMT_THROUGHPUT_STRLEN];

    ck_assert_str_eq(fmt_throughput(t->bytes, t->seconds, buf, sizeof(buf)),
        t->out);
}
END_TEST

START_TEST(test_throughput_truncates_to_buffer)
{
    char buf[5];

    ck_assert_str_eq(fmt_throughput(1234, 1, buf, sizeof(buf)), "1.23");
}
END_TEST

START_TEST(test_summary_line)
{
    char buf[FMT_SUMMARY_STRLEN];

    ck_assert_str_eq(fmt_summary(0, 0, 0, 10, buf, sizeof(buf)),
        "allocations=0 channels=0 throughput=0.00 B/s");
    ck_assert_str_eq(fmt_summary(12, 3, 12340, 10, buf, sizeof(buf)),
        "allocations=12 channels=3 throughput=1.23 kB/s");
    ck_assert_str_eq(fmt_summary(UINT64_MAX, UINT64_MAX, UINT64_MAX, 1, buf,
        sizeof(buf)), "allocations=18446744073709551615 "
        "channels=18446744073709551615 throughput=18446744.07 TB/s");
}
END_TEST

/* ---- /metrics ---- */

static const char *const metric_names[][2] = {
    { "relay_active_allocations", "gauge" },
    { "relay_active_channels", "gauge" },
    { "relay_responses_total", "counter" },
    { "relay_relayed_bytes_total", "counter" },
    { "relay_relayed_packets_total", "counter" },
    { "relay_dropped_packets_total", "counter" },
    { "relay_packet_size_bytes", "histogram" },
    { "relay_portal_connected", "gauge" },
    { "relay_allocations_lost_total", "counter" },
    { "relay_xdp_attached", "gauge" },
    { "relay_xdp_relayed_packets_total", "counter" },
    { "relay_xdp_relayed_bytes_total", "counter" },
    { "relay_workers", "gauge" },
};
#define NMETRICS (sizeof(metric_names) / sizeof(metric_names[0]))

static char *
render(struct fmt_buf *b, const struct turn_stats *s,
    const struct fmt_gauges *g)
{
    fmt_buf_init(b);
    ck_assert_int_eq(fmt_metrics(b, s, g), 0);
    ck_assert_ptr_nonnull(b->data);
    ck_assert_uint_eq(strlen(b->data), b->len);
    return b->data;
}

/* 1 when text has line as a whole line. */
static int
has_line(const char *text, const char *line)
{
    size_t      n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
        p++;
    }
    return 0;
}

#define ASSERT_LINE(text, line) \
    ck_assert_msg(has_line(text, line), "missing line: %s", line)

static int
is_sample_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '_';
}

/* Checks every line's syntax and that each sample follows the TYPE of its
 * family (histogram samples carry _bucket/_sum/_count). */
static void
check_syntax(const char *text)
{
    char        family[64] = "";
    const char *p = text;

    ck_assert_int_eq(text[strlen(text) - 1], '\n');
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t      n = (size_t)(eol - p), i = 0;
        char        line[256];

        ck_assert_ptr_nonnull(eol);
        ck_assert_uint_lt(n, sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p = eol + 1;
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(line + 7, "%63s", family), 1);
            continue;
        }
        ck_assert_msg(strncmp(line, family, strlen(family)) == 0 &&
            family[0] != '\0', "sample before its TYPE: %s", line);
        while (is_sample_char(line[i]))
            i++;
        if (line[i] == '{') {
            const char *close = strchr(line + i, '}');

            ck_assert_ptr_nonnull(close);
            ck_assert_ptr_null(strstr(line + i, ",}"));
            i = (size_t)(close - line) + 1;
        }
        ck_assert_msg(line[i] == ' ', "bad sample: %s", line);
        for (i++; line[i] != '\0'; i++)
            ck_assert_msg(line[i] >= '0' && line[i] <= '9', "bad value %s",
                line);
    }
}

START_TEST(test_metrics_every_name)
{
    struct turn_stats s;
    struct fmt_gauges g;
    struct fmt_buf    b;
    char              line[128];
    const char       *text;
    const char       *last = NULL;

    memset(&s, 0, sizeof(s));
    memset(&g, 0, sizeof(g));
    text = render(&b, &s, &g);
    for (size_t i = 0; i < NMETRICS; i++) {
        const char *help, *type;

        snprintf(line, sizeof(line), "# HELP %s ", metric_names[i][0]);
        ck_assert_ptr_nonnull(help = strstr(text, line));
        snprintf(line, sizeof(line), "# TYPE %s %s", metric_names[i][0],
            metric_names[i][1]);
        ASSERT_LINE(text, line);
        type = strstr(text, line);
        ck_assert(help < type);                 /* HELP, then TYPE */
        if (last != NULL)                       /* in SPEC's order */
            ck_assert(last < help);
        last = type;
    }
    check_syntax(text);
    ASSERT_LINE(text, "relay_active_allocations 0");
    ASSERT_LINE(text, "relay_workers 0");
    ASSERT_LINE(text, "relay_portal_connected 0");
    fmt_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_drop_reasons_at_zero)
{
    struct turn_stats s;
    struct fmt_gauges g;
    struct fmt_buf    b;
    char              line[128];
    const char       *text;

    memset(&s, 0, sizeof(s));
    memset(&g, 0, sizeof(g));
    text = render(&b, &s, &g);
    for (int d = TURN_DROP_NONE + 1; d < TURN_DROP_COUNT; d++) {
        snprintf(line, sizeof(line),
            "relay_dropped_packets_total{reason=\"%s\"} 0",
            turn_drop_name((enum turn_drop)d));
        ASSERT_LINE(text, line);
    }
    /* The SPEC §10.3 names, spelled out. */
    ASSERT_LINE(text, "relay_dropped_packets_total{reason=\"port_zero\"} 0");
    ASSERT_LINE(text, "relay_dropped_packets_total{reason=\"send_error\"} 0");
    ASSERT_LINE(text,
        "relay_dropped_packets_total{reason=\"no_peer_binding\"} 0");
    ck_assert_ptr_null(strstr(text, "reason=\"(null)\""));
    /* Both directions, success of every message type, at 0. */
    ASSERT_LINE(text,
        "relay_relayed_bytes_total{direction=\"client_to_peer\"} 0");
    ASSERT_LINE(text,
        "relay_xdp_relayed_packets_total{direction=\"peer_to_client\"} 0");
    for (int t = 0; t < TURN_MT_COUNT; t++) {
        snprintf(line, sizeof(line), "relay_responses_total{message_type="
            "\"%s\",response_class=\"success\"} 0",
            turn_msgtype_name((enum turn_msgtype)t));
        ASSERT_LINE(text, line);
    }
    ck_assert_ptr_null(strstr(text, "error_code"));
    fmt_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_histogram_cumulative)
{
    static const size_t sizes[] = { 0, 1, 100, 101, 200, 1400, 1500, 1501,
        9000, 65000 };
    struct turn_stats s;
    struct fmt_gauges g;
    struct fmt_buf    b;
    uint64_t          sum = 0;
    const char       *text;

    memset(&s, 0, sizeof(s));
    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        turn_stats_relayed(&s, i % 2 ? TURN_DIR_P2C : TURN_DIR_C2P,
            sizes[i]);
        sum += sizes[i];
    }
    text = render(&b, &s, &g);
    check_syntax(text);
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"100\"} 3");
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"200\"} 5");
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"300\"} 5");
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"1400\"} 6");
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"1500\"} 7");
    ASSERT_LINE(text, "relay_packet_size_bytes_bucket{le=\"+Inf\"} 10");
    ASSERT_LINE(text, "relay_packet_size_bytes_count 10");
    {
        char line[96];

        snprintf(line, sizeof(line), "relay_packet_size_bytes_sum %llu",
            (unsigned long long)sum);
        ASSERT_LINE(text, line);
    }
    ASSERT_LINE(text,
        "relay_relayed_packets_total{direction=\"client_to_peer\"} 5");
    /* 15 finite buckets, then +Inf, in order. */
    {
        const char *p = text;
        char        le[32];

        for (int i = 1; i <= 15; i++) {
            snprintf(le, sizeof(le), "{le=\"%d\"}", i * 100);
            ck_assert_ptr_nonnull(p = strstr(p, le));
        }
        ck_assert_ptr_nonnull(strstr(p, "{le=\"+Inf\"}"));
    }
    fmt_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_labels_and_values)
{
    struct turn_stats s;
    struct fmt_gauges g = {
        .active_allocations = 7, .active_channels = 3, .workers = 4,
        .portal_connected = 5, .xdp_attached = 1,
    };
    struct fmt_buf    b;
    const char       *text;

    memset(&s, 0, sizeof(s));
    s.responses[TURN_MT_ALLOCATE][TURN_RESP_SUCCESS] = 2;
    s.responses[TURN_MT_ALLOCATE][TURN_RESP_401] = 5;
    s.responses[TURN_MT_CHANNELBIND][TURN_RESP_403] = 1;
    s.responses[TURN_MT_OTHER][TURN_RESP_400] = UINT64_MAX;
    s.dropped[TURN_DROP_RATE_LIMITED] = 9;
    s.allocations_lost = 1;
    s.xdp_bytes[TURN_DIR_P2C] = 1234;
    text = render(&b, &s, &g);
    check_syntax(text);
    ASSERT_LINE(text, "relay_responses_total{message_type=\"allocate\","
        "response_class=\"success\"} 2");
    ASSERT_LINE(text, "relay_responses_total{message_type=\"allocate\","
        "response_class=\"error\",error_code=\"401\"} 5");
    ASSERT_LINE(text, "relay_responses_total{message_type=\"channelbind\","
        "response_class=\"error\",error_code=\"403\"} 1");
    ASSERT_LINE(text, "relay_responses_total{message_type=\"other\","
        "response_class=\"error\",error_code=\"400\"} 18446744073709551615");
    ck_assert_ptr_null(strstr(text, "error_code=\"438\""));
    ASSERT_LINE(text, "relay_dropped_packets_total{reason=\"rate_limited\"} 9");
    ASSERT_LINE(text, "relay_active_allocations 7");
    ASSERT_LINE(text, "relay_active_channels 3");
    ASSERT_LINE(text, "relay_workers 4");
    ASSERT_LINE(text, "relay_portal_connected 1");
    ASSERT_LINE(text, "relay_xdp_attached 1");
    ASSERT_LINE(text, "relay_allocations_lost_total 1");
    ASSERT_LINE(text,
        "relay_xdp_relayed_bytes_total{direction=\"peer_to_client\"} 1234");
    ck_assert_ptr_nonnull(strstr(text, "# TYPE relay_responses_total counter\n"
        "relay_responses_total{message_type=\"binding\","
        "response_class=\"success\"} 0\n"));
    fmt_buf_free(&b);
}
END_TEST

START_TEST(test_fmt_buf_growth)
{
    struct fmt_buf b;
    char           chunk[1000];

    fmt_buf_init(&b);
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(fmt_buf_append(&b, chunk, sizeof(chunk)), 0);
    ck_assert_int_eq(fmt_buf_printf(&b, "%s=%d", "end", 42), 0);
    ck_assert_uint_eq(b.len, 100000 + 6);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_str_eq(b.data + 100000, "end=42");
    fmt_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(fmt_buf_finish(&b), 0);
    b.failed = 1;                       /* as after a failed realloc */
    ck_assert_int_eq(fmt_buf_printf(&b, "x"), RLY_ERR_NOMEM);
    ck_assert_int_eq(fmt_buf_append(&b, "x", 1), RLY_ERR_NOMEM);
    ck_assert_int_eq(fmt_buf_finish(&b), RLY_ERR_NOMEM);
    ck_assert_uint_eq(b.len, 0);
    fmt_buf_free(&b);
    fmt_buf_free(&b);
    fmt_buf_free(NULL);
}
END_TEST

Suite *
fmt_suite(void)
{
    Suite *s = suite_create("fmt");
    TCase *tc = tcase_create("summary");

    tcase_add_test(tc, test_c63_throughput_formatter);
    tcase_add_loop_test(tc, test_throughput_table, 0,
        (int)(sizeof(tp_cases) / sizeof(tp_cases[0])));
    tcase_add_test(tc, test_throughput_truncates_to_buffer);
    tcase_add_test(tc, test_summary_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("metrics");
    tcase_add_test(tc, test_metrics_every_name);
    tcase_add_test(tc, test_metrics_drop_reasons_at_zero);
    tcase_add_test(tc, test_metrics_histogram_cumulative);
    tcase_add_test(tc, test_metrics_labels_and_values);
    tcase_add_test(tc, test_fmt_buf_growth);
    suite_add_tcase(s, tc);
    return s;
}
