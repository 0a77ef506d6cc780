/* portal_msg.h - the portal connection's pure parts (SPEC §7): URL
 * building, Phoenix v1 JSON messages to and from internal actions,
 * heartbeat bookkeeping, the upgrade 401 body, Retry-After, the
 * Sec-WebSocket-Accept check and the User-Agent.  Tested offline.
 *
 * master/portal.c does the I/O (DNS, TLS, wslay, timers); it feeds text
 * here and acts on the results.  No clock reads: wall time is passed in.
 * JSON is json-c, written with JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE, which gives SPEC §7.4's exact text. */
#ifndef RLY_PORTAL_MSG_H
#define RLY_PORTAL_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "rly_rand.h"

/* ---- URL (SPEC §7.2) ---- */

#define PORTAL_HOST_MAX     256     /* host without brackets, NUL incl. */
#define PORTAL_TARGET_MAX   2048    /* path + query, NUL included */
#define PORTAL_URL_MAX      (PORTAL_TARGET_MAX + PORTAL_HOST_MAX + 16)

struct portal_url {
    int         tls;                        /* 1 for wss, 0 for ws */
    int         host_is_ip;                 /* IP literal: no SNI, the
                                               cert's IP SANs are checked */
    uint16_t    port;                       /* URL port, else 80 / 443 */
    char        host[PORTAL_HOST_MAX];      /* as given, no brackets: for
                                               DNS, SNI, SSL_set1_host */
    char        host_header[PORTAL_HOST_MAX + 8];  /* "h", "[v6]", "h:8443" */
    char        target[PORTAL_TARGET_MAX];  /* "/api/relay/websocket?..." */
    char        url[PORTAL_URL_MAX];        /* "wss://h/api/relay/..." */
};

/* What the URL is built from.  Unset fields are NULL (strings) or NULL /
 * ADDR_NONE (addresses); ports of the addresses are ignored. */
struct portal_url_in {
    const char          *url;       /* portal.url */
    const char          *name;      /* portal.name or NULL */
    const struct addr   *ip4;       /* public_ip4 or NULL */
    const struct addr   *ip6;       /* public_ip6 or NULL */
    uint16_t             port;      /* listen.port */
};

/* Builds *out from in (SPEC §7.2):
 *  - scheme (case-insensitive) http or ws -> ws, https or wss -> wss;
 *  - authority: host name, IPv4 literal or "[IPv6]" (no zone id), then an
 *    optional ":port" (1..65535; an empty port means the default);
 *    userinfo ("user@") is refused: credentials travel in
 *    X-Authorization only;
 *  - path: every trailing '/' removed, then "/relay/websocket";
 *  - query: replaced by name=, ipv4=, ipv6= (those set) and port=, values
 *    form-urlencoded (A-Z a-z 0-9 * - . _ kept, ' ' -> '+', other bytes
 *    %XX upper case); a fragment is dropped.
 * Bytes outside 0x21..0x7e in the URL are refused.
 * Returns 0, RLY_ERR_INVAL (bad or unsupported URL: a config error) or
 * RLY_ERR_NOSPACE (too long). */
int portal_msg_url_build(const struct portal_url_in *in,
    struct portal_url *out);

/* Appends the form-urlencoding of s to buf (NUL-terminated, size bytes,
 * holding a string of length *len).  Returns 0 or RLY_ERR_NOSPACE (buf
 * then unchanged). */
int portal_msg_form_encode(const char *s, char *buf, size_t size,
    size_t *len);

/* ---- Phoenix messages (SPEC §7.4, §7.5) ---- */

/* Heartbeats outstanding beyond this after a send -> reconnect. */
#define PORTAL_HB_MAX_OUTSTANDING   3

/* Per-connection message state: refs start at 0 on each connection and
 * rise by 1 per message sent.  Zero it with portal_msg_sess_init() on
 * every new connection. */
struct portal_sess {
    uint64_t    next_ref;
    uint64_t    join_ref;           /* ref of the last join sent */
    int         join_sent;
    unsigned    nhb;                /* outstanding heartbeats */
    uint64_t    hb_ref[PORTAL_HB_MAX_OUTSTANDING + 1];
};

enum portal_action {
    PORTAL_ACT_IGNORED = 0,     /* nothing to do (phx_error, other reply) */
    PORTAL_ACT_REJOIN,          /* "unmatched topic": send a new join */
    PORTAL_ACT_JOINED,          /* portal_connected = 1, backoff reset */
    PORTAL_ACT_LOGIN_FAILED,    /* log "login failed", exit 1 */
    PORTAL_ACT_HEARTBEAT_ANSWERED,  /* ev->ref no longer outstanding */
    PORTAL_ACT_INIT,            /* init on topic relay: the first since
                                   master start opens the gate (§7.5);
                                   the caller keeps that flag */
    PORTAL_ACT_TOKEN_EXPIRED,   /* log "invalid token", exit 1 */
    PORTAL_ACT_RECONNECT,       /* phx_close */
    PORTAL_ACT_WARN_UNKNOWN     /* log a warning (ev->detail), ignore */
};

#define PORTAL_DETAIL_MAX 128

struct portal_event {
    enum portal_action  action;
    int                 has_ref;
    uint64_t            ref;        /* the message's ref when has_ref */
    /* For WARN_UNKNOWN and LOGIN_FAILED: a short printable-ASCII
     * description ("unknown event \"foo\"", "invalid JSON", the join
     * reply's reason); otherwise empty.  Never holds the secret (the
     * portal does not echo it). */
    char                detail[PORTAL_DETAIL_MAX];
};

void portal_msg_sess_init(struct portal_sess *s);

/* Text of a join with the next ref, recorded as the join ref:
 * {"topic":"relay","event":"phx_join","payload":{"stamp_secret":"S"},
 * "ref":N} (N = 0 for the first message of a connection).  Returns a
 * malloc'd string the caller frees, or NULL when out of memory (the ref
 * is then not consumed). */
char *portal_msg_join(struct portal_sess *s, const char *secret);

/* Text of a heartbeat with the next ref, counted outstanding:
 * {"topic":"phoenix","event":"heartbeat","payload":{},"ref":N}.
 * *overdue is set to 1 when more than PORTAL_HB_MAX_OUTSTANDING are then
 * outstanding (the caller reconnects; sending the text first does no
 * harm), else 0.  Returns a malloc'd string the caller frees, or NULL when
 * out of memory (nothing recorded, *overdue 0). */
char *portal_msg_heartbeat(struct portal_sess *s, int *overdue);

/* Classifies one incoming text message of len bytes (need not be
 * NUL-terminated) by the first matching row of SPEC §7.4:
 *  1. phx_reply, topic "relay", payload.status "error",
 *     payload.response.reason "unmatched topic"      -> REJOIN
 *  2. phx_reply to the join ref, status "ok"         -> JOINED
 *  3. phx_reply to the join ref, status "error"      -> LOGIN_FAILED
 *  4. phx_reply to an outstanding heartbeat ref      -> HEARTBEAT_ANSWERED
 *     (that ref stops being outstanding)
 *  5. other phx_reply                                -> IGNORED
 *  6. init on topic "relay" (payload an object)      -> INIT
 *  7. disconnect, payload.reason "token_expired"     -> TOKEN_EXPIRED
 *  8. phx_close                                      -> RECONNECT
 *  9. phx_error                                      -> IGNORED
 * 10. anything else: unknown event, init on another topic or without an
 *     object payload, disconnect for another reason, invalid JSON, not an
 *     object, no string "event"                      -> WARN_UNKNOWN
 * "ref" may be an integer, a string or null; a string of 1-19 decimal
 * digits counts as that integer (our refs are integers), anything else
 * matches no ref.  Replies match the join ref only after a join was
 * sent on this connection.  Trailing bytes after the JSON value other
 * than whitespace make it invalid.  Fills *ev and returns ev->action. */
enum portal_action portal_msg_on_text(struct portal_sess *s, const char *text,
    size_t len, struct portal_event *ev);

/* ---- Upgrade failures (SPEC §7.6) ---- */

/* Reads the body of a 401 answer to the upgrade.  content_type may be
 * NULL.  When the media type is application/problem+json (or, leniently,
 * application/json) and "code" is "invalid_token" or "missing_token",
 * writes "invalid token" and returns 1.  Otherwise writes
 * "authentication failed: <detail>", detail being the problem's "detail",
 * else its "title", else "HTTP 401", reduced to printable ASCII and cut
 * to fit, and returns 0.  Either way the caller logs msg and exits 1. */
int portal_msg_401(const char *content_type, const char *body, size_t len,
    char *msg, size_t size);

/* Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds (digits
 * only; values beyond UINT32_MAX clamp to it) or an HTTP-date in
 * IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday,
 * 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years ahead of
 * now is taken in the previous century) or asctime ("Sun Nov  6 08:49:37
 * 1994") form, with optional surrounding spaces or tabs.  The weekday
 * name is checked for spelling, not against the date.  A date is turned
 * into seconds after now_wall_s (Unix seconds); a date not after now
 * gives 0.  Returns 0 with *delay_s set, or RLY_ERR_INVAL (no usable
 * Retry-After: use the normal back-off). */
int portal_msg_retry_after(const char *value, uint64_t now_wall_s,
    uint64_t *delay_s);

/* ---- WebSocket handshake and headers (SPEC §7.3) ---- */

#define PORTAL_WS_KEY_LEN     24    /* base64 of 16 bytes */
#define PORTAL_WS_ACCEPT_LEN  28    /* base64 of a SHA-1 */

/* A fresh Sec-WebSocket-Key: base64 of 16 bytes from rnd (not NULL).  out
 * holds PORTAL_WS_KEY_LEN + 1 bytes.  Returns 0 or rnd's error. */
int portal_msg_ws_key(rly_rand_fn rnd, void *ud,
    char out[PORTAL_WS_KEY_LEN + 1]);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key "258EAFA5-E914-47DA-
 * 95CA-C5AB0DC85B11")) (RFC 6455 §4.2.2).  out holds
 * PORTAL_WS_ACCEPT_LEN + 1 bytes.  Returns 0, RLY_ERR_INVAL (key too
 * long) or RLY_ERR_CRYPTO. */
int portal_msg_ws_accept(const char *key,
    char out[PORTAL_WS_ACCEPT_LEN + 1]);

/* 1 when the response's Sec-WebSocket-Accept header value (NULL when
 * absent; surrounding spaces and tabs ignored) is the one for key. */
int portal_msg_ws_accept_ok(const char *key, const char *value);

/* "Linux/<release> relay/<version> (<arch>; <release>)".  Bytes outside
 * 0x20..0x7e in the inputs become '_' (no header injection).  Returns 0
 * or RLY_ERR_NOSPACE. */
int portal_msg_user_agent(const char *release, const char *version,
    const char *arch, char *buf, size_t size);

/* Removes all whitespace (space, \t, \n, \v, \f, \r) from token, in
 * place, for "X-Authorization: Bearer <token>".  Returns the new length. */
size_t portal_msg_token_strip(char *token);

#endif
