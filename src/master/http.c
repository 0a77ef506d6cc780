/* http.c - /healthz, /readyz, /metrics on health.listen; see http.h.
 *
 * The handlers only read: the gate and the counters in the shared table
 * (summed over the worker slots here), the master's worker count and the
 * portal's joined flag.  Replies are small and built whole. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "fmt.h"
#include "master/http.h"
#include "master/log.h"
#include "master/portal.h"
#include "master/xdp.h"

#define HTTP_TEXT       "text/plain; charset=utf-8"
#define HTTP_BACKLOG    64
#define HTTP_TIMEOUT_S  10      /* idle keep-alive and slow clients */

struct http {
    int                 fd;     /* until evhttp owns it */
    struct evhttp      *evh;
    struct http_conf    conf;
};

struct http *
http_open(const struct addr *addr)
{
    struct sockaddr_storage ss;
    socklen_t               len = addr_to_sockaddr(addr, &ss);
    struct http            *h;
    char                    where[ADDR_STRLEN];
    int                     fd, one = 1;

    addr_format(addr, where, sizeof(where));
    if (len == 0) {
        log_error(log_get(), "health.listen %s: unusable address", where);
        return NULL;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        log_error(log_get(), "health.listen: out of memory");
        return NULL;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
        0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        listen(fd, HTTP_BACKLOG) != 0) {
        log_error(log_get(), "health.listen %s: cannot listen: %s", where,
            strerror(errno));
        if (fd >= 0)
            close(fd);
        free(h);
        return NULL;
    }
    h->fd = fd;
    log_debug(log_get(), "HTTP listening on %s", where);
    return h;
}

/* --- Replies --- */

/* Sends code with body (len bytes) and content type; a HEAD gets the
 * same headers, Content-Length included, and no body. */
static void
reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, const char *body, size_t len)
{
    struct evkeyvalq   *hdr = evhttp_request_get_output_headers(req);
    struct evbuffer    *buf;
    char                clen[32];

    evhttp_add_header(hdr, "Content-Type", ctype);
    if (code == HTTP_BADMETHOD)
        evhttp_add_header(hdr, "Allow", "GET, HEAD");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* evhttp adds no Content-Length to a HEAD reply; give the one a
         * GET would have carried. */
        snprintf(clen, sizeof(clen), "%zu", len);
        evhttp_add_header(hdr, "Content-Length", clen);
        evhttp_send_reply(req, code, reason, NULL);
        return;
    }
    if ((buf = evbuffer_new()) == NULL) {
        evhttp_send_reply(req, HTTP_INTERNAL, "Internal Server Error", NULL);
        return;
    }
    evbuffer_add(buf, body, len);
    evhttp_send_reply(req, code, reason, buf);
    evbuffer_free(buf);
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
    reply(req, code, reason, HTTP_TEXT, text, strlen(text));
}

static void
serve_version(struct evhttp_request *req, const struct http *h, int ok)
{
    char body[128];

    snprintf(body, sizeof(body), "%s\n", h->conf.version);
    if (ok)
        reply_text(req, HTTP_OK, "OK", body);
    else
        reply_text(req, 503, "Service Unavailable", body);
}

static void
serve_metrics(struct evhttp_request *req, const struct http *h)
{
    struct turn_stats   sum;
    struct fmt_gauges   g;
    struct fmt_buf      b;
    uint32_t            live = 0, bound = 0;

    if (!h->conf.metrics) {
        reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
        return;
    }
    memset(&sum, 0, sizeof(sum));
    for (uint32_t s = 0; s < h->conf.nslots; s++) {
        const struct turn_stats *ws = atab_worker_stats(h->conf.tab, s);

        if (ws != NULL)
            turn_stats_sum(&sum, ws);
    }
    xdp_stats_add(h->conf.xdp, &sum);   /* kept apart (SPEC §10.2) */
    atab_count(h->conf.tab, NULL, &live, &bound);
    memset(&g, 0, sizeof(g));
    g.active_allocations = live;
    g.active_channels = bound;
    g.workers = h->conf.nrunning != NULL ? *h->conf.nrunning : 0;
    g.portal_connected = portal_connected(h->conf.portal);
    g.xdp_attached = xdp_attached(h->conf.xdp);
    fmt_buf_init(&b);
    if (fmt_metrics(&b, &sum, &g) != 0 || fmt_buf_finish(&b) != 0) {
        fmt_buf_free(&b);
        reply_text(req, HTTP_INTERNAL, "Internal Server Error",
            "out of memory\n");
        return;
    }
    reply(req, HTTP_OK, "OK", FMT_METRICS_CONTENT_TYPE, b.data, b.len);
    fmt_buf_free(&b);
}

static void
handle(struct evhttp_request *req, void *arg)
{
    const struct http      *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char             *path = uri != NULL ? evhttp_uri_get_path(uri) :
                                NULL;
    enum evhttp_cmd_type    cmd = evhttp_request_get_command(req);

    if (path == NULL)
        path = "";
    if (strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 &&
        strcmp(path, "/metrics") != 0) {
        reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_text(req, HTTP_BADMETHOD, "Method Not Allowed",
            "method not allowed\n");
        return;
    }
    if (strcmp(path, "/healthz") == 0)
        serve_version(req, h, 1);
    else if (strcmp(path, "/readyz") == 0)
        serve_version(req, h, atab_ready(h->conf.tab));
    else
        serve_metrics(req, h);
}

int
http_start(struct http *h, struct event_base *base,
    const struct http_conf *conf)
{
    h->conf = *conf;
    if ((h->evh = evhttp_new(base)) == NULL)
        goto err;
    /* Every method evhttp knows, so that it never answers 501 itself. */
    evhttp_set_allowed_methods(h->evh, 0xffff);
    evhttp_set_timeout(h->evh, HTTP_TIMEOUT_S);
    evhttp_set_gencb(h->evh, handle, h);
    if (evhttp_accept_socket(h->evh, h->fd) != 0)
        goto err;
    h->fd = -1;     /* evhttp closes it */
    return 0;
err:
    log_error(log_get(), "HTTP: cannot start (out of memory)");
    return -1;
}

void
http_free(struct http *h)
{
    if (h == NULL)
        return;
    if (h->evh != NULL)
        evhttp_free(h->evh);
    if (h->fd >= 0)
        close(h->fd);
    free(h);
}
