/* fuzz_portal.c - libFuzzer target for the portal connection's pure parts
 * (SPEC §7.2-§7.6, common/portal_msg.h), within one Phoenix session.
 *
 * The input is a sequence of records separated by '\n'.  A record's first
 * byte c says what the rest r of the record is for (c % 8):
 *   0, 3  portal_msg_on_text(r)               (an incoming message)
 *   1     portal_msg_join() with secret r      (a new join ref)
 *   2     portal_msg_heartbeat()               (r ignored)
 *   4     portal_msg_401("application/problem+json", r)
 *   5     portal_msg_401(content type = r up to '|', body = the rest;
 *         no '|': content type NULL)
 *   6     portal_msg_retry_after(r), now chosen by c / 8 % 4
 *   7     URL building, form encoding, User-Agent, token stripping on r
 * For the 401 parser, the message buffer holds 1 + 4 * (c / 8 % 32)
 * bytes, so truncation is exercised too.  Every result is checked against
 * the header's contract. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz_util.h"
#include "portal_msg.h"
#include "rly_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
printable(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

/* A NUL-terminated heap copy (the text stops at an embedded NUL). */
static char *
cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void
on_text(struct portal_sess *s, const uint8_t *r, size_t n)
{
    uint8_t            *text = fz_dup(r, n);  /* no NUL: exact size */
    struct portal_event ev;
    unsigned            nhb = s->nhb;
    enum portal_action  a;

    a = portal_msg_on_text(s, (const char *)text, n, &ev);
    FZ_CHECK(a == ev.action);
    FZ_CHECK(a >= PORTAL_ACT_IGNORED && a <= PORTAL_ACT_WARN_UNKNOWN);
    FZ_CHECK(memchr(ev.detail, '\0', sizeof(ev.detail)) != NULL);
    FZ_CHECK(printable(ev.detail));
    FZ_CHECK(s->nhb <= PORTAL_HB_MAX_OUTSTANDING + 1);
    if (a != PORTAL_ACT_WARN_UNKNOWN && a != PORTAL_ACT_LOGIN_FAILED)
        FZ_CHECK(ev.detail[0] == '\0');
    if (a == PORTAL_ACT_JOINED || a == PORTAL_ACT_LOGIN_FAILED)
        FZ_CHECK(s->join_sent && ev.has_ref && ev.ref == s->join_ref);
    if (a == PORTAL_ACT_HEARTBEAT_ANSWERED) {
        FZ_CHECK(ev.has_ref && s->nhb + 1 == nhb);
        for (unsigned i = 0; i < s->nhb; i++)
            FZ_CHECK(s->hb_ref[i] != ev.ref);
    } else {
        FZ_CHECK(s->nhb == nhb);
    }
    free(text);
}

static void
join(struct portal_sess *s, const uint8_t *r, size_t n)
{
    char    *secret = cstr(r, n);
    uint64_t ref = s->next_ref;
    char    *t = portal_msg_join(s, secret);
    char     tail[32];

    FZ_CHECK(t != NULL);
    FZ_CHECK(strncmp(t, "{\"topic\":\"relay\",\"event\":\"phx_join\","
        "\"payload\":{\"stamp_secret\":\"", 60) == 0);
    snprintf(tail, sizeof(tail), "},\"ref\":%llu}", (unsigned long long)ref);
    FZ_CHECK(strlen(t) > strlen(tail) &&
        strcmp(t + strlen(t) - strlen(tail), tail) == 0);
    FZ_CHECK(s->join_sent && s->join_ref == ref && s->next_ref == ref + 1);
    free(t);
    free(secret);
}

static void
heartbeat(struct portal_sess *s)
{
    int   overdue = -1;
    char *t = portal_msg_heartbeat(s, &overdue);

    FZ_CHECK(t != NULL && (overdue == 0 || overdue == 1));
    FZ_CHECK(s->nhb <= PORTAL_HB_MAX_OUTSTANDING + 1);
    FZ_CHECK(overdue == (s->nhb > PORTAL_HB_MAX_OUTSTANDING));
    free(t);
}

static void
http_401(uint8_t c, const uint8_t *r, size_t n)
{
    size_t         size = 1 + 4 * (size_t)(c / 8 % 32);
    char          *msg = malloc(size), *ct = NULL;
    const uint8_t *body = r, *bar;
    uint8_t       *b;
    int            rc;

    if (msg == NULL)
        abort();
    if (c % 8 == 4) {
        ct = cstr((const uint8_t *)"application/problem+json", 24);
    } else if ((bar = memchr(r, '|', n)) != NULL) {
        ct = cstr(r, (size_t)(bar - r));
        body = bar + 1;
        n -= (size_t)(bar + 1 - r);
    }
    b = fz_dup(body, n);
    rc = portal_msg_401(ct, (const char *)b, n, msg, size);
    FZ_CHECK(rc == 0 || rc == 1);
    FZ_CHECK(memchr(msg, '\0', size) != NULL && printable(msg));
    if (rc == 1)
        FZ_CHECK(strncmp(msg, "invalid token", size - 1) == 0);
    else
        FZ_CHECK(strncmp(msg, "authentication failed: ", size - 1 < 23 ?
            size - 1 : 23) == 0);
    if (ct == NULL)
        FZ_CHECK(rc == 0);
    free(b);
    free(ct);
    free(msg);
}

/* The value of an all-digit delta-seconds, clamped, or -1. */
static int64_t
delta_seconds(const char *v)
{
    uint64_t d = 0;
    size_t   i = 0, j;

    while (v[i] == ' ' || v[i] == '\t')
        i++;
    for (j = i; v[j] >= '0' && v[j] <= '9'; j++)
        if (d <= UINT32_MAX)
            d = d * 10 + (uint64_t)(v[j] - '0');
    if (j == i)
        return -1;
    i = j;
    while (v[i] == ' ' || v[i] == '\t')
        i++;
    if (v[i] != '\0')
        return -1;
    return d > UINT32_MAX ? UINT32_MAX : (int64_t)d;
}

static void
retry_after(uint8_t c, const uint8_t *r, size_t n)
{
    static const uint64_t nows[] = { 1700000000u, 0, 4102444800u,
        UINT64_MAX };
    char    *v = cstr(r, n);
    uint64_t delay = 0;
    int      rc = portal_msg_retry_after(v, nows[c / 8 % 4], &delay);
    int64_t  d = delta_seconds(v);

    FZ_CHECK(rc == 0 || rc == RLY_ERR_INVAL);
    if (d >= 0)
        FZ_CHECK(rc == 0 && delay == (uint64_t)d);
    free(v);
}

static void
helpers(const uint8_t *r, size_t n)
{
    static struct portal_url url;
    char                    *s = cstr(r, n), ua[256], enc[64];
    struct addr              ip4, ip6;
    struct portal_url_in     in;
    size_t                   len = 0, k;
    static const uint8_t     a4[4] = { 203, 0, 113, 1 };
    static const uint8_t     a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

    addr_set4(&ip4, a4, 0);
    addr_set6(&ip6, a6, 0);
    memset(&in, 0, sizeof(in));
    in.url = s;
    in.name = s;
    in.ip4 = &ip4;
    in.ip6 = &ip6;
    in.port = 3478;
    if (portal_msg_url_build(&in, &url) == 0) {
        FZ_CHECK(url.port != 0);
        FZ_CHECK(memchr(url.url, '\0', sizeof(url.url)) != NULL);
        for (k = 0; url.url[k] != '\0'; k++)
            FZ_CHECK(url.url[k] > 0x20 && url.url[k] < 0x7f);
        FZ_CHECK(memchr(url.host, '\0', sizeof(url.host)) != NULL);
        FZ_CHECK(url.target[0] == '/');
        FZ_CHECK(strncmp(url.url, url.tls ? "wss://" : "ws://",
            url.tls ? 6 : 5) == 0);
    }
    enc[0] = '\0';
    if (portal_msg_form_encode(s, enc, sizeof(enc), &len) == 0)
        FZ_CHECK(strlen(enc) == len);
    else
        FZ_CHECK(len == 0 && enc[0] == '\0');
    for (k = 0; enc[k] != '\0'; k++)
        FZ_CHECK(enc[k] > 0x20 && enc[k] < 0x7f);
    if (portal_msg_user_agent(s, s, s, ua, sizeof(ua)) == 0)
        FZ_CHECK(printable(ua));
    len = strlen(s);
    k = portal_msg_token_strip(s);
    FZ_CHECK(k <= len && strlen(s) == k);
    FZ_CHECK(strpbrk(s, " \t\n\v\f\r") == NULL);
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct portal_sess s;
    size_t             pos = 0;

    portal_msg_sess_init(&s);
    while (pos < size) {
        const uint8_t *end = memchr(data + pos, '\n', size - pos);
        size_t         n = end != NULL ? (size_t)(end - data) - pos :
            size - pos;
        const uint8_t *r = data + pos + 1;
        uint8_t        c = data[pos];

        pos += n + 1;
        if (n == 0)
            continue;
        n--;
        switch (c % 8) {
        case 0: case 3: on_text(&s, r, n); break;
        case 1:         join(&s, r, n); break;
        case 2:         heartbeat(&s); break;
        case 4: case 5: http_401(c, r, n); break;
        case 6:         retry_after(c, r, n); break;
        default:        helpers(r, n); break;
        }
    }
    return 0;
}
