/* portal.h - the master's WebSocket client to the portal (SPEC §7):
 * resolution with evdns, TCP with a per-address timeout, TLS through
 * bufferevent_openssl, the HTTP/1.1 upgrade, WebSocket framing with
 * wslay's event API, the Phoenix session (join, heartbeats, init) and
 * reconnection with back-off.
 *
 * Everything runs on the master's event base; nothing blocks.  The pure
 * parts (URL, messages, 401 body, Retry-After, Sec-WebSocket-Accept,
 * back-off policy) are common/portal_msg.[ch] and common/backoff.[ch].
 *
 * Timers (SPEC §7.3, §7.5):
 *  - each TCP connect: PORTAL_CONNECT_MS, then the next resolved address;
 *  - resolution, TCP, TLS and the upgrade together: PORTAL_ATTEMPT_MS;
 *  - join reply: PORTAL_JOIN_MS after the join is sent;
 *  - heartbeat: every PORTAL_HEARTBEAT_MS from the upgrade; more than
 *    PORTAL_HB_MAX_OUTSTANDING unanswered after a send -> reconnect.
 *
 * The token is copied, stripped of whitespace, sent only in the
 * X-Authorization header and never logged; the secret is sent only in the
 * join and never logged. */
#ifndef RLY_MASTER_PORTAL_H
#define RLY_MASTER_PORTAL_H

#include <stdint.h>

#include <event2/event.h>

#include "addr.h"
#include "atab.h"

#define PORTAL_CONNECT_MS       5000
#define PORTAL_ATTEMPT_MS       15000
#define PORTAL_JOIN_MS          5000
#define PORTAL_HEARTBEAT_MS     10000
#define PORTAL_MAX_MSG          (1024 * 1024)   /* reassembled message */
#define PORTAL_HEAD_MAX         (16 * 1024)     /* upgrade response head */
#define PORTAL_BODY_MAX         (16 * 1024)     /* 401 body read */

struct portal;

/* Called once, from an event callback, when the portal session ends in a
 * way SPEC §7.6 makes fatal (invalid token, authentication failure,
 * token_expired, login failed, max retries reached).  The reason has been
 * logged at error level.  The master stops its workers and exits 1; the
 * portal makes no further attempt. */
typedef void (*portal_fatal_fn)(void *ud);

/* Everything is borrowed for the call only, except secret and tab, which
 * must stay valid until portal_free(). */
struct portal_conf {
    const char         *url;        /* portal.url */
    const char         *token;      /* portal.token (copied, stripped) */
    const char         *name;       /* portal.name or NULL */
    const char         *ca_file;    /* PEM CA file, or NULL: system store */
    const struct addr  *ip4;        /* public_ip4 or NULL / ADDR_NONE */
    const struct addr  *ip6;        /* public_ip6 or NULL / ADDR_NONE */
    uint16_t            port;       /* listen.port, for the URL's query */
    const char         *version;    /* for the User-Agent */
    const char         *secret;     /* the stamp secret, sent in the join */
    struct atab        *tab;        /* its gate opens at the first init */
    portal_fatal_fn     fatal;
    void               *ud;
};

/* Builds the URL (SPEC §7.2) and the TLS context, and starts the first
 * attempt at once (its work happens in base's callbacks).  Returns 0
 * with *out set, or -1 after logging why (URL rejected, CA file unusable,
 * no resolver, out of memory): the master exits 1. */
int portal_start(struct event_base *base, const struct portal_conf *conf,
    struct portal **out);

/* SIGTERM (SPEC §10.5): sends a WebSocket Close with code 1000 when the
 * socket is open, flushes it from base's callbacks, and makes no further
 * attempt.  Safe to call more than once, and with NULL. */
void portal_stop(struct portal *p);

/* 1 while joined (relay_portal_connected), else 0.  NULL gives 0. */
int portal_connected(const struct portal *p);

/* Closes everything without a Close frame and frees p.  Call before
 * freeing the event base.  NULL is fine. */
void portal_free(struct portal *p);

#endif
