/* check_portal_msg.c - portal URL, Phoenix messages, upgrade failures,
 * Retry-After and handshake helpers (SPEC §7, C57, C58). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"
#include "portal_msg.h"
#include "rly_err.h"
#include "suites.h"

/* ---- URL ---- */

static struct addr
ip(const char *s)
{
    struct addr a;

    ck_assert_int_eq(addr_parse_ip(&a, s), 0);
    return a;
}

START_TEST(test_c57_url_building)
{
    struct addr          ip4 = ip("192.0.2.1"), ip6 = ip("2001:db8::1");
    struct portal_url_in in = {
        .url = "https://portal.test/api/", .name = "edge 1",
        .ip4 = &ip4, .ip6 = &ip6, .port = 3478,
    };
    struct portal_url    u;

    ck_assert_int_eq(portal_msg_url_build(&in, &u), 0);
    ck_assert_str_eq(u.url, "wss://portal.test/api/relay/websocket?"
        "name=edge+1&ipv4=192.0.2.1&ipv6=2001%3Adb8%3A%3A1&port=3478");
    ck_assert_uint_eq(u.port, 443);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.host, "portal.test");
    ck_assert_int_eq(u.host_is_ip, 0);
    ck_assert_str_eq(u.host_header, "portal.test");
    ck_assert_str_eq(u.target, "/api/relay/websocket?"
        "name=edge+1&ipv4=192.0.2.1&ipv6=2001%3Adb8%3A%3A1&port=3478");
}
END_TEST

struct url_case {
    const char *in;
    int         rc;
    const char *url;
    const char *host;
    const char *host_header;
    unsigned    port;
    int         tls, is_ip;
};

static const struct url_case url_cases[] = {
    { "http://portal.test", 0, "ws://portal.test/relay/websocket?port=3478",
      "portal.test", "portal.test", 80, 0, 0 },
    { "ws://portal.test/", 0, "ws://portal.test/relay/websocket?port=3478",
      "portal.test", "portal.test", 80, 0, 0 },
    { "wss://api.firezone.dev", 0,
      "wss://api.firezone.dev/relay/websocket?port=3478",
      "api.firezone.dev", "api.firezone.dev", 443, 1, 0 },
    { "HTTPS://Portal.Test:8443/a/b//?x=1&y=2#frag", 0,
      "wss://Portal.Test:8443/a/b/relay/websocket?port=3478",
      "Portal.Test", "Portal.Test:8443", 8443, 1, 0 },
    { "ws://portal.test:443/x", 0,      /* 443 is not ws's default */
      "ws://portal.test:443/x/relay/websocket?port=3478",
      "portal.test", "portal.test:443", 443, 0, 0 },
    { "wss://portal.test:443", 0,
      "wss://portal.test/relay/websocket?port=3478",
      "portal.test", "portal.test", 443, 1, 0 },
    { "ws://portal.test:/p", 0,         /* empty port: default */
      "ws://portal.test/p/relay/websocket?port=3478",
      "portal.test", "portal.test", 80, 0, 0 },
    { "wss://[2001:db8::5]/", 0,
      "wss://[2001:db8::5]/relay/websocket?port=3478",
      "2001:db8::5", "[2001:db8::5]", 443, 1, 1 },
    { "ws://[::1]:8080?q", 0,
      "ws://[::1]:8080/relay/websocket?port=3478",
      "::1", "[::1]:8080", 8080, 0, 1 },
    { "https://192.0.2.9:8443", 0,
      "wss://192.0.2.9:8443/relay/websocket?port=3478",
      "192.0.2.9", "192.0.2.9:8443", 8443, 1, 1 },
    { "http://portal.test#x", 0,
      "ws://portal.test/relay/websocket?port=3478",
      "portal.test", "portal.test", 80, 0, 0 },
    { "ftp://portal.test/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "httpx://portal.test/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "portal.test", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "://portal.test", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https:///path", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://user:pw@portal.test/", RLY_ERR_INVAL, NULL, NULL, NULL, 0,
      0, 0 },
    { "https://portal.test:0/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://portal.test:65536/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0,
      0 },
    { "https://portal.test:443443/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0,
      0 },
    { "https://portal.test:8a/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://a:1:2/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://[::1/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://[::1]x/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://[]/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://[192.0.2.1]/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://[fe80::1%25eth0]/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0,
      0 },
    { "https://por tal.test/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://portal.test/\x7f", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
    { "https://portal.test/\xc3\xa9", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0,
      0 },
    { "https://por%74al.test/", RLY_ERR_INVAL, NULL, NULL, NULL, 0, 0, 0 },
};

START_TEST(test_url_table)
{
    const struct url_case *t = &url_cases[_i];
    struct portal_url_in   in = { .url = t->in, .port = 3478 };
    struct portal_url      u;

    ck_assert_msg(portal_msg_url_build(&in, &u) == t->rc, "%s", t->in);
    if (t->rc != 0)
        return;
    ck_assert_str_eq(u.url, t->url);
    ck_assert_str_eq(u.host, t->host);
    ck_assert_str_eq(u.host_header, t->host_header);
    ck_assert_uint_eq(u.port, t->port);
    ck_assert_int_eq(u.tls, t->tls);
    ck_assert_int_eq(u.host_is_ip, t->is_ip);
}
END_TEST

START_TEST(test_url_query)
{
    struct addr          ip4 = ip("203.0.113.1"), ip6 = ip("2001:db8::1");
    struct addr          none;
    struct portal_url_in in = { .url = "wss://h/", .port = 3478 };
    struct portal_url    u;
    char                 big[3000];

    /* SPEC §7.2's example: no name. */
    in.url = "wss://api.firezone.dev";
    in.ip4 = &ip4;
    in.ip6 = &ip6;
    ck_assert_int_eq(portal_msg_url_build(&in, &u), 0);
    ck_assert_str_eq(u.url, "wss://api.firezone.dev/relay/websocket?"
        "ipv4=203.0.113.1&ipv6=2001%3Adb8%3A%3A1&port=3478");
    /* Only IPv6; an unset address may be ADDR_NONE too. */
    memset(&none, 0, sizeof(none));
    in.ip4 = &none;
    in.port = 1;
    ck_assert_int_eq(portal_msg_url_build(&in, &u), 0);
    ck_assert_str_eq(u.target,
        "/relay/websocket?ipv6=2001%3Adb8%3A%3A1&port=1");
    /* Every special byte of a name. */
    in.ip4 = in.ip6 = NULL;
    in.name = "a&b=c/\xc3\xbc*-._~+ %";
    ck_assert_int_eq(portal_msg_url_build(&in, &u), 0);
    ck_assert_str_eq(u.target, "/relay/websocket?"
        "name=a%26b%3Dc%2F%C3%BC*-._%7E%2B+%25&port=1");
    /* Wrong family, too long. */
    in.name = NULL;
    in.ip4 = &ip6;
    ck_assert_int_eq(portal_msg_url_build(&in, &u), RLY_ERR_INVAL);
    in.ip4 = NULL;
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    in.name = big;
    ck_assert_int_eq(portal_msg_url_build(&in, &u), RLY_ERR_NOSPACE);
    in.name = NULL;
    in.url = NULL;
    ck_assert_int_eq(portal_msg_url_build(&in, &u), RLY_ERR_INVAL);
}
END_TEST

START_TEST(test_form_encode)
{
    char   buf[16] = "x=";
    size_t len = 2;

    ck_assert_int_eq(portal_msg_form_encode("A z", buf, sizeof(buf), &len), 0);
    ck_assert_str_eq(buf, "x=A+z");
    ck_assert_uint_eq(len, 5);
    /* Does not fit: unchanged. */
    ck_assert_int_eq(portal_msg_form_encode("::::", buf, sizeof(buf), &len),
        RLY_ERR_NOSPACE);
    ck_assert_str_eq(buf, "x=A+z");
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(portal_msg_form_encode("\x01\xff", buf, sizeof(buf),
        &len), 0);
    ck_assert_str_eq(buf, "x=A+z%01%FF");
}
END_TEST

/* ---- Phoenix messages ---- */

START_TEST(test_c58_join_and_heartbeat_text)
{
    struct portal_sess s;
    char              *t;
    int                overdue = -1;

    portal_msg_sess_init(&s);
    t = portal_msg_join(&s, "<secret>");
    ck_assert_str_eq(t, "{\"topic\":\"relay\",\"event\":\"phx_join\","
        "\"payload\":{\"stamp_secret\":\"<secret>\"},\"ref\":0}");
    free(t);
    for (unsigned i = 1; i <= 3; i++) {
        char want[96];

        t = portal_msg_heartbeat(&s, &overdue);
        snprintf(want, sizeof(want), "{\"topic\":\"phoenix\",\"event\":"
            "\"heartbeat\",\"payload\":{},\"ref\":%u}", i);
        ck_assert_str_eq(t, want);
        ck_assert_int_eq(overdue, 0);
        free(t);
    }
    /* A secret with '/' and '"': slashes unescaped, quotes escaped. */
    portal_msg_sess_init(&s);
    t = portal_msg_join(&s, "a/b\"c");
    ck_assert_str_eq(t, "{\"topic\":\"relay\",\"event\":\"phx_join\","
        "\"payload\":{\"stamp_secret\":\"a/b\\\"c\"},\"ref\":0}");
    free(t);
}
END_TEST

static enum portal_action
feed(struct portal_sess *s, const char *text, struct portal_event *ev)
{
    return portal_msg_on_text(s, text, strlen(text), ev);
}

START_TEST(test_heartbeat_overdue)
{
    struct portal_sess  s;
    struct portal_event ev;
    char               *t;
    int                 overdue;

    portal_msg_sess_init(&s);
    free(portal_msg_join(&s, "x"));
    for (int i = 0; i < 3; i++) {
        free(portal_msg_heartbeat(&s, &overdue));
        ck_assert_int_eq(overdue, 0);
    }
    /* Replying to ref 2 leaves 1 and 3; two more sends reach 4. */
    ck_assert_int_eq(feed(&s, "{\"topic\":\"phoenix\",\"event\":\"phx_reply\","
        "\"payload\":{\"status\":\"ok\",\"response\":{}},\"ref\":2}", &ev),
        PORTAL_ACT_HEARTBEAT_ANSWERED);
    ck_assert_int_eq(ev.has_ref, 1);
    ck_assert_uint_eq(ev.ref, 2);
    free(portal_msg_heartbeat(&s, &overdue));
    ck_assert_int_eq(overdue, 0);
    t = portal_msg_heartbeat(&s, &overdue);
    ck_assert_ptr_nonnull(strstr(t, "\"ref\":5}"));
    ck_assert_int_eq(overdue, 1);               /* 1, 3, 4, 5 */
    free(t);
    /* The caller reconnects; if it did not, the state stays bounded. */
    for (int i = 0; i < 10; i++) {
        free(portal_msg_heartbeat(&s, &overdue));
        ck_assert_int_eq(overdue, 1);
        ck_assert_uint_le(s.nhb, PORTAL_HB_MAX_OUTSTANDING + 1);
    }
    /* A new connection starts over at ref 0. */
    portal_msg_sess_init(&s);
    t = portal_msg_join(&s, "x");
    ck_assert_ptr_nonnull(strstr(t, "\"ref\":0}"));
    free(t);
}
END_TEST

START_TEST(test_c59_unanswered_heartbeats_reconnect)
{
    struct portal_sess  s;
    struct portal_event ev;
    unsigned            t_s, reconnect_at = 0;
    int                 overdue = 0;

    /* The master sends a heartbeat every 10 s from the upgrade and the
     * portal answers the join only: the 4th send, at 40 s, is overdue. */
    portal_msg_sess_init(&s);
    free(portal_msg_join(&s, "secret"));
    ck_assert_int_eq(feed(&s, "{\"topic\":\"relay\",\"event\":\"phx_reply\","
        "\"payload\":{\"status\":\"ok\",\"response\":{}},\"ref\":0}", &ev),
        PORTAL_ACT_JOINED);
    for (t_s = 10; t_s <= 60 && reconnect_at == 0; t_s += 10) {
        free(portal_msg_heartbeat(&s, &overdue));
        if (overdue)
            reconnect_at = t_s;
    }
    ck_assert_uint_ge(reconnect_at, 35);
    ck_assert_uint_le(reconnect_at, 50);
    ck_assert_uint_eq(reconnect_at, 40);
}
END_TEST

START_TEST(test_c60_invalid_token)
{
    struct portal_sess  s;
    struct portal_event ev;
    const char         *body = "{\"type\":\"about:blank\",\"status\":401,"
        "\"code\":\"invalid_token\",\"title\":\"Unauthorized\"}";
    char                msg[128];

    /* The upgrade answered 401 problem+json invalid_token. */
    ck_assert_int_eq(portal_msg_401("application/problem+json", body,
        strlen(body), msg, sizeof(msg)), 1);
    ck_assert_str_eq(msg, "invalid token");
    /* Or, once joined, a disconnect with token_expired. */
    portal_msg_sess_init(&s);
    free(portal_msg_join(&s, "secret"));
    ck_assert_int_eq(feed(&s, "{\"topic\":\"relay\",\"event\":"
        "\"disconnect\",\"payload\":{\"reason\":\"token_expired\"},"
        "\"ref\":null}", &ev), PORTAL_ACT_TOKEN_EXPIRED);
    ck_assert_str_eq(ev.detail, "");
}
END_TEST

struct in_case {
    const char         *text;
    enum portal_action  action;
    const char         *detail;     /* NULL: not checked */
};

#define REPLY(topic, payload, ref) \
    "{\"topic\":\"" topic "\",\"event\":\"phx_reply\",\"payload\":" \
    payload ",\"ref\":" ref "}"

/* Session: join ref 0, heartbeats 1 and 2 outstanding. */
static const struct in_case in_cases[] = {
    { REPLY("relay", "{\"status\":\"error\",\"response\":{\"reason\":"
        "\"unmatched topic\"}}", "7"), PORTAL_ACT_REJOIN, "" },
    { REPLY("relay", "{\"status\":\"error\",\"response\":{\"reason\":"
        "\"unmatched topic\"}}", "0"), PORTAL_ACT_REJOIN, NULL },
    { REPLY("relay", "{\"status\":\"error\",\"response\":{\"reason\":"
        "\"unmatched topic\"}}", "null"), PORTAL_ACT_REJOIN, NULL },
    { REPLY("phoenix", "{\"status\":\"error\",\"response\":{\"reason\":"
        "\"unmatched topic\"}}", "7"), PORTAL_ACT_IGNORED, NULL },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "0"),
      PORTAL_ACT_JOINED, "" },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "\"0\""),
      PORTAL_ACT_JOINED, NULL },
    { REPLY("relay", "{\"status\":\"ok\"}", "0"), PORTAL_ACT_JOINED, NULL },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "null"),
      PORTAL_ACT_IGNORED, NULL },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "\"00x\""),
      PORTAL_ACT_IGNORED, NULL },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "0.0"),
      PORTAL_ACT_IGNORED, NULL },
    { REPLY("relay", "{\"status\":\"ok\",\"response\":{}}", "-1"),
      PORTAL_ACT_IGNORED, NULL },
    { REPLY("relay", "{\"status\":\"error\",\"response\":{\"reason\":"
        "\"bad secret\\n\"}}", "0"), PORTAL_ACT_LOGIN_FAILED,
      "bad secret?" },
    { REPLY("relay", "{\"status\":\"error\"}", "0"), PORTAL_ACT_LOGIN_FAILED,
      "" },
    { REPLY("relay", "{\"status\":\"weird\"}", "0"), PORTAL_ACT_IGNORED,
      NULL },
    { REPLY("phoenix", "{\"status\":\"ok\",\"response\":{}}", "1"),
      PORTAL_ACT_HEARTBEAT_ANSWERED, NULL },
    { REPLY("phoenix", "{\"status\":\"ok\",\"response\":{}}", "\"2\""),
      PORTAL_ACT_HEARTBEAT_ANSWERED, NULL },
    { REPLY("phoenix", "{\"status\":\"ok\",\"response\":{}}", "3"),
      PORTAL_ACT_IGNORED, NULL },
    { "{\"topic\":\"relay\",\"event\":\"phx_reply\",\"payload\":{}}",
      PORTAL_ACT_IGNORED, NULL },
    { "{\"topic\":\"relay\",\"event\":\"init\",\"payload\":{}}",
      PORTAL_ACT_INIT, NULL },
    { "{\"topic\":\"relay\",\"event\":\"init\",\"payload\":{\"x\":[1]},"
      "\"ref\":null}", PORTAL_ACT_INIT, NULL },
    { "{\"topic\":\"other\",\"event\":\"init\",\"payload\":{}}",
      PORTAL_ACT_WARN_UNKNOWN, "unexpected init on topic \"other\"" },
    { "{\"topic\":\"relay\",\"event\":\"init\"}", PORTAL_ACT_WARN_UNKNOWN,
      NULL },
    { "{\"topic\":\"relay\",\"event\":\"disconnect\",\"payload\":"
      "{\"reason\":\"token_expired\"}}", PORTAL_ACT_TOKEN_EXPIRED, NULL },
    { "{\"topic\":\"relay\",\"event\":\"disconnect\",\"payload\":"
      "{\"reason\":\"other\"}}", PORTAL_ACT_WARN_UNKNOWN,
      "disconnect with reason \"other\"" },
    { "{\"topic\":\"relay\",\"event\":\"phx_close\",\"payload\":{},"
      "\"ref\":\"abc\"}", PORTAL_ACT_RECONNECT, NULL },
    { "{\"topic\":\"relay\",\"event\":\"phx_error\",\"payload\":{}}",
      PORTAL_ACT_IGNORED, NULL },
    { "{\"topic\":\"relay\",\"event\":\"foo\",\"payload\":{}}",
      PORTAL_ACT_WARN_UNKNOWN, "unknown event \"foo\"" },
    { "{\"topic\":\"relay\",\"event\":\"\\u001b[31m\"}",
      PORTAL_ACT_WARN_UNKNOWN, "unknown event \"?[31m\"" },
    { "{\"event\":\"phx_close\\u0000x\"}", PORTAL_ACT_WARN_UNKNOWN, NULL },
    { "{\"event\":\"phx_close\"} \r\n", PORTAL_ACT_RECONNECT, NULL },
    { "{\"event\":\"phx_close\"} x", PORTAL_ACT_WARN_UNKNOWN,
      "invalid JSON" },
    { "{\"event\":\"phx_close\"}{}", PORTAL_ACT_WARN_UNKNOWN, NULL },
    { "{", PORTAL_ACT_WARN_UNKNOWN, "invalid JSON" },
    { "", PORTAL_ACT_WARN_UNKNOWN, "invalid JSON" },
    { "nope", PORTAL_ACT_WARN_UNKNOWN, "invalid JSON" },
    { "[]", PORTAL_ACT_WARN_UNKNOWN, "not a JSON object" },
    { "null", PORTAL_ACT_WARN_UNKNOWN, NULL },
    { "{\"event\":1}", PORTAL_ACT_WARN_UNKNOWN, "message without event" },
    { "{\"topic\":\"relay\"}", PORTAL_ACT_WARN_UNKNOWN, NULL },
};

static void
sess_joined_hb2(struct portal_sess *s)
{
    int overdue;

    portal_msg_sess_init(s);
    free(portal_msg_join(s, "secret"));
    free(portal_msg_heartbeat(s, &overdue));
    free(portal_msg_heartbeat(s, &overdue));
}

START_TEST(test_incoming_table)
{
    const struct in_case *t = &in_cases[_i];
    struct portal_sess    s;
    struct portal_event   ev;

    sess_joined_hb2(&s);
    ck_assert_msg(feed(&s, t->text, &ev) == t->action, "%s -> %d", t->text,
        ev.action);
    ck_assert_int_eq(ev.action, t->action);
    if (t->detail != NULL)
        ck_assert_str_eq(ev.detail, t->detail);
}
END_TEST

START_TEST(test_incoming_flow)
{
    struct portal_sess  s;
    struct portal_event ev;
    const char          ok0[] = REPLY("relay", "{\"status\":\"ok\"}", "0");
    char               *t;

    /* No join sent yet: a reply to ref 0 is just a reply. */
    portal_msg_sess_init(&s);
    ck_assert_int_eq(feed(&s, ok0, &ev), PORTAL_ACT_IGNORED);
    /* Heartbeat answered once only. */
    sess_joined_hb2(&s);
    ck_assert_int_eq(feed(&s, REPLY("phoenix", "{\"status\":\"ok\"}", "1"),
        &ev), PORTAL_ACT_HEARTBEAT_ANSWERED);
    ck_assert_int_eq(feed(&s, REPLY("phoenix", "{\"status\":\"ok\"}", "1"),
        &ev), PORTAL_ACT_IGNORED);
    ck_assert_uint_eq(s.nhb, 1);
    /* Rejoin: the new join takes the next ref, which becomes the join
     * ref. */
    ck_assert_int_eq(feed(&s, REPLY("relay", "{\"status\":\"error\","
        "\"response\":{\"reason\":\"unmatched topic\"}}", "2"), &ev),
        PORTAL_ACT_REJOIN);
    t = portal_msg_join(&s, "secret");
    ck_assert_str_eq(t, "{\"topic\":\"relay\",\"event\":\"phx_join\","
        "\"payload\":{\"stamp_secret\":\"secret\"},\"ref\":3}");
    free(t);
    ck_assert_int_eq(feed(&s, ok0, &ev), PORTAL_ACT_IGNORED);
    ck_assert_int_eq(feed(&s, REPLY("relay", "{\"status\":\"ok\"}", "3"),
        &ev), PORTAL_ACT_JOINED);
    ck_assert_uint_eq(ev.ref, 3);
    /* Not NUL-terminated input: only len bytes are read. */
    {
        const char buf[] = "{\"event\":\"phx_close\"}garbage";

        ck_assert_int_eq(portal_msg_on_text(&s, buf, 21, &ev),
            PORTAL_ACT_RECONNECT);
    }
}
END_TEST

/* ---- 401 ---- */

START_TEST(test_upgrade_401)
{
    char        msg[128];
    const char *pj = "application/problem+json";
    const char *b;

    b = "{\"type\":\"about:blank\",\"code\":\"invalid_token\","
        "\"detail\":\"x\"}";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, sizeof(msg)), 1);
    ck_assert_str_eq(msg, "invalid token");
    b = "{\"code\":\"missing_token\"}";
    ck_assert_int_eq(portal_msg_401("Application/Problem+JSON; charset=utf-8",
        b, strlen(b), msg, sizeof(msg)), 1);
    ck_assert_str_eq(msg, "invalid token");
    b = "{\"code\":\"revoked\",\"title\":\"Revoked\",\"detail\":\"Token was "
        "revoked\"}";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, sizeof(msg)), 0);
    ck_assert_str_eq(msg, "authentication failed: Token was revoked");
    b = "{\"title\":\"Nope\\r\\nX-Evil: 1\"}";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, sizeof(msg)), 0);
    ck_assert_str_eq(msg, "authentication failed: Nope??X-Evil: 1");
    b = "{\"code\":\"invalid_token\"}";
    ck_assert_int_eq(portal_msg_401("text/html", b, strlen(b), msg,
        sizeof(msg)), 0);
    ck_assert_str_eq(msg, "authentication failed: HTTP 401");
    ck_assert_int_eq(portal_msg_401("application/json", b, strlen(b), msg,
        sizeof(msg)), 1);
    ck_assert_int_eq(portal_msg_401("application/problem+jsonx", b,
        strlen(b), msg, sizeof(msg)), 0);
    ck_assert_int_eq(portal_msg_401(NULL, b, strlen(b), msg, sizeof(msg)), 0);
    ck_assert_int_eq(portal_msg_401(pj, NULL, 0, msg, sizeof(msg)), 0);
    ck_assert_str_eq(msg, "authentication failed: HTTP 401");
    b = "<html>";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, sizeof(msg)), 0);
    ck_assert_str_eq(msg, "authentication failed: HTTP 401");
    b = "{\"code\":\"invalid_token_x\"}";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, sizeof(msg)), 0);
    b = "{\"code\":\"invalid_token\"}";
    ck_assert_int_eq(portal_msg_401(pj, b, strlen(b), msg, 8), 1);
    ck_assert_str_eq(msg, "invalid");
}
END_TEST

/* ---- Retry-After ---- */

#define T1994 784111777ULL      /* Sun, 06 Nov 1994 08:49:37 GMT */
#define T2025 1748736000ULL     /* 2025-06-01T00:00:00Z */

struct ra_case {
    const char *in;
    uint64_t    now;
    int         rc;
    uint64_t    delay;
};

static const struct ra_case ra_cases[] = {
    { "7", T2025, 0, 7 },
    { "0", T2025, 0, 0 },
    { " \t120 ", T2025, 0, 120 },
    { "007", T2025, 0, 7 },
    { "4294967295", T2025, 0, 4294967295ULL },
    { "99999999999999999999999", T2025, 0, 4294967295ULL },
    { "Sun, 06 Nov 1994 08:49:37 GMT", T1994 - 10, 0, 10 },
    { "Sunday, 06-Nov-94 08:49:37 GMT", T1994 - 10, 0, 10 },
    { "Sun Nov  6 08:49:37 1994", T1994 - 10, 0, 10 },
    { "Sun, 06 Nov 1994 08:49:37 GMT", T1994, 0, 0 },
    { "Sun, 06 Nov 1994 08:49:37 GMT", T2025, 0, 0 },   /* past */
    { "Thu, 01 Jan 1970 00:00:00 GMT", T2025, 0, 0 },
    { "Mon, 01 Jan 1900 00:00:00 GMT", T2025, 0, 0 },
    { "Tue, 01 Jan 2030 00:00:00 GMT", T2025, 0, 1893456000ULL - T2025 },
    { "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000ULL - 5, 0, 5 },
    { "Fri, 31 Dec 9999 23:59:59 GMT", 0, 0, 253402300799ULL },
    { "Wednesday, 01-Jan-70 00:00:00 GMT", T2025, 0, /* 2070 */
      3155760000ULL - T2025 },
    { "Monday, 01-Jan-80 00:00:00 GMT", T2025, 0, 0 },  /* 1980 */
    { "Thu Feb 29 12:00:05 2024", 1709208000ULL, 0, 5 },
    { "Thu Feb 29 12:00:05 2024 ", 1709208000ULL, 0, 5 },
    { "", T2025, RLY_ERR_INVAL, 0 },
    { "  ", T2025, RLY_ERR_INVAL, 0 },
    { "-1", T2025, RLY_ERR_INVAL, 0 },
    { "+5", T2025, RLY_ERR_INVAL, 0 },
    { "1.5", T2025, RLY_ERR_INVAL, 0 },
    { "7s", T2025, RLY_ERR_INVAL, 0 },
    { "0x10", T2025, RLY_ERR_INVAL, 0 },
    { "7 7", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 1994 08:49:37 UTC", T2025, RLY_ERR_INVAL, 0 },
    { "sun, 06 Nov 1994 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 6 Nov 1994 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 94 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 1994 08:49 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 1994 08:49:37 GMT x", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 31 Feb 2024 00:00:00 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 29 Feb 2023 00:00:00 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 00 Nov 1994 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 1994 24:00:00 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nov 1994 08:60:00 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06 Nox 1994 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sunday, 06 Nov 1994 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun, 06-Nov-94 08:49:37 GMT", T2025, RLY_ERR_INVAL, 0 },
    { "Sun Nov 06 08:49:37 1994 GMT", T2025, RLY_ERR_INVAL, 0 },
};

START_TEST(test_retry_after_table)
{
    const struct ra_case *t = &ra_cases[_i];
    uint64_t              delay = 424242;

    ck_assert_msg(portal_msg_retry_after(t->in, t->now, &delay) == t->rc,
        "\"%s\"", t->in);
    if (t->rc == 0)
        ck_assert_uint_eq(delay, t->delay);
    else
        ck_assert_uint_eq(delay, 424242);
}
END_TEST

START_TEST(test_retry_after_null)
{
    uint64_t delay;

    ck_assert_int_eq(portal_msg_retry_after(NULL, 0, &delay), RLY_ERR_INVAL);
}
END_TEST

/* ---- handshake, headers ---- */

START_TEST(test_ws_accept)
{
    char out[PORTAL_WS_ACCEPT_LEN + 1];
    char longkey[200];

    /* RFC 6455 §1.3. */
    ck_assert_int_eq(portal_msg_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 1);
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        " \ts3pPLMBiTxaQ9kYGzzhZRbK+xOo= "), 1);
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo"), 0);
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=x"), 0);
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        "S3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 0);
    ck_assert_int_eq(portal_msg_ws_accept_ok("AAAAAAAAAAAAAAAAAAAAAA==",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), 0);
    ck_assert_int_eq(portal_msg_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==",
        NULL), 0);
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_int_eq(portal_msg_ws_accept(longkey, out), RLY_ERR_INVAL);
}
END_TEST

START_TEST(test_ws_key)
{
    char                key[PORTAL_WS_KEY_LEN + 1];
    struct rand_counter rc = { 0xfb, 0 };

    ck_assert_int_eq(portal_msg_ws_key(rand_zero, NULL, key), 0);
    ck_assert_str_eq(key, "AAAAAAAAAAAAAAAAAAAAAA==");
    ck_assert_int_eq(portal_msg_ws_key(rand_count, &rc, key), 0);
    ck_assert_str_eq(key, "+/v7+/v7+/v7+/v7+/v7+w==");
    ck_assert_int_eq(portal_msg_ws_key(rand_fail, NULL, key), RLY_ERR_CRYPTO);
}
END_TEST

START_TEST(test_user_agent)
{
    char buf[128];

    ck_assert_int_eq(portal_msg_user_agent("6.8.0-45-generic", "1.2.3",
        "x86_64", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf,
        "Linux/6.8.0-45-generic relay/1.2.3 (x86_64; 6.8.0-45-generic)");
    ck_assert_int_eq(portal_msg_user_agent("6.1\r\nX-Evil: 1", "1", "a\x7f",
        buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf,
        "Linux/6.1__X-Evil: 1 relay/1 (a_; 6.1__X-Evil: 1)");
    ck_assert_int_eq(portal_msg_user_agent("6.8.0", "1.2.3", "x86_64", buf,
        20), RLY_ERR_NOSPACE);
    ck_assert_int_eq(portal_msg_user_agent("6.8.0", "1.2.3", "x86_64", buf,
        sizeof("Linux/6.8.0 relay/1.2.3 (x86_64; 6.8.0)")), 0);
    ck_assert_int_eq(portal_msg_user_agent("6.8.0", "1.2.3", "x86_64", buf,
        sizeof("Linux/6.8.0 relay/1.2.3 (x86_64; 6.8.0)") - 1),
        RLY_ERR_NOSPACE);
}
END_TEST

START_TEST(test_token_strip)
{
    char t1[] = " abc\n def\t\r\v\f ghi ";
    char t2[] = "";
    char t3[] = "\n";

    ck_assert_uint_eq(portal_msg_token_strip(t1), 9);
    ck_assert_str_eq(t1, "abcdefghi");
    ck_assert_uint_eq(portal_msg_token_strip(t2), 0);
    ck_assert_uint_eq(portal_msg_token_strip(t3), 0);
    ck_assert_str_eq(t3, "");
}
END_TEST

Suite *
portal_msg_suite(void)
{
    Suite *s = suite_create("portal_msg");
    TCase *tc = tcase_create("url");

    tcase_add_test(tc, test_c57_url_building);
    tcase_add_loop_test(tc, test_url_table, 0,
        (int)(sizeof(url_cases) / sizeof(url_cases[0])));
    tcase_add_test(tc, test_url_query);
    tcase_add_test(tc, test_form_encode);
    suite_add_tcase(s, tc);

    tc = tcase_create("phoenix");
    tcase_add_test(tc, test_c58_join_and_heartbeat_text);
    tcase_add_test(tc, test_heartbeat_overdue);
    tcase_add_test(tc, test_c59_unanswered_heartbeats_reconnect);
    tcase_add_test(tc, test_c60_invalid_token);
    tcase_add_loop_test(tc, test_incoming_table, 0,
        (int)(sizeof(in_cases) / sizeof(in_cases[0])));
    tcase_add_test(tc, test_incoming_flow);
    suite_add_tcase(s, tc);

    tc = tcase_create("http");
    tcase_add_test(tc, test_upgrade_401);
    tcase_add_loop_test(tc, test_retry_after_table, 0,
        (int)(sizeof(ra_cases) / sizeof(ra_cases[0])));
    tcase_add_test(tc, test_retry_after_null);
    tcase_add_test(tc, test_ws_accept);
    tcase_add_test(tc, test_ws_key);
    tcase_add_test(tc, test_user_agent);
    tcase_add_test(tc, test_token_strip);
    suite_add_tcase(s, tc);
    return s;
}
