/* http.h - the master's HTTP endpoint on health.listen (SPEC §10.1-§10.3):
 * /healthz, /readyz and /metrics with libevent's evhttp.
 *
 *   GET /healthz  200, "<version>\n"
 *   GET /readyz   200 once the relaying gate is open (SPEC §7.5), else
 *                 503; the same body
 *   GET /metrics  200, Prometheus text 0.0.4 (fmt_metrics()), or 404 when
 *                 metrics.enabled is false
 *   HEAD          the same status and headers (Content-Length included),
 *                 no body
 *   other paths   404; other methods 405 (with Allow: GET, HEAD)
 *
 * Every reply sets Content-Type itself.  evhttp answers 501 on its own to
 * a method outside its allowed set, so the set is widened to every method
 * it knows and the 405 is ours.
 *
 * The listening socket is opened by http_open() while the master is still
 * privileged (SPEC §10.5), before the event base exists; http_start()
 * hands it to evhttp once the base is there. */
#ifndef RLY_MASTER_HTTP_H
#define RLY_MASTER_HTTP_H

#include <stdint.h>

#include <event2/event.h>

#include "addr.h"
#include "atab.h"

struct http;
struct portal;
struct xdp;

/* What the handlers read; all borrowed until http_free(). */
struct http_conf {
    struct atab            *tab;        /* gate, counters, gauges */
    uint32_t                nslots;     /* worker slots to sum */
    const uint32_t         *nrunning;   /* relay_workers: the master's count */
    const struct portal    *portal;     /* relay_portal_connected; NULL in
                                           standalone mode */
    int                     metrics;    /* metrics.enabled */
    const char             *version;    /* the /healthz and /readyz body,
                                           without its newline */
    const struct xdp       *xdp;        /* relay_xdp_*; NULL: no offload */
};

/* Binds and listens on addr (TCP, SO_REUSEADDR, close-on-exec).  Returns
 * the new object, or NULL after logging the address and the error (SPEC
 * §10.6: the master exits 1). */
struct http *http_open(const struct addr *addr);

/* Starts serving on base.  Returns 0, or -1 after logging (out of
 * memory): the master exits 1. */
int http_start(struct http *h, struct event_base *base,
    const struct http_conf *conf);

/* Stops serving, closes the socket and the open connections, frees h.
 * Call before freeing the base.  NULL is fine. */
void http_free(struct http *h);

#endif
