/* portal.c - the WebSocket client to the portal (SPEC §7); see portal.h.
 *
 * One attempt walks IDLE -> RESOLVING -> CONNECTING -> TLS (wss only) ->
 * UPGRADING -> OPEN, under one 15 s deadline until OPEN.  Any failure
 * closes what the attempt opened and asks the back-off (common/backoff.h)
 * when to try again; SPEC §7.6's fatal failures call the master's fatal
 * callback instead.
 *
 * wslay calls back into us while it parses; a decision to drop the
 * connection taken there is only recorded (p->pending) and carried out
 * once wslay_event_recv() has returned, so the context is never freed
 * under wslay's feet. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <wslay/wslay.h>

#include "backoff.h"
#include "master/log.h"
#include "master/portal.h"
#include "master/rnd.h"
#include "portal_msg.h"

#define WS_CLOSE_NORMAL 1000

enum portal_state {
    PS_IDLE = 0,        /* waiting for the retry timer */
    PS_RESOLVING,
    PS_CONNECTING,      /* TCP connect to one resolved address */
    PS_TLS,             /* TLS handshake */
    PS_UPGRADING,       /* GET sent, reading the response head */
    PS_BODY,            /* reading the body of a 401 */
    PS_OPEN,            /* WebSocket open, joined or not */
    PS_CLOSING,         /* a Close went out: flushing it, then drop */
    PS_STOPPED          /* SIGTERM or fatal: no more attempts */
};

static const char *const state_names[] = {
    "idle", "resolving", "connecting", "TLS handshake", "upgrade",
    "401 body", "open", "closing", "stopped"
};

enum body_mode { BODY_LENGTH, BODY_CHUNKED, BODY_EOF };

/* What a wslay callback decided, carried out after wslay returns. */
enum pending { PEND_NONE = 0, PEND_RECONNECT, PEND_FATAL };

/* The user data of an evdns request.  A cancelled request still calls
 * back later, possibly after the portal is gone, so the callback gets this
 * small record, which the portal detaches from when it cancels. */
struct dns_ticket {
    struct portal  *p;
};

struct portal {
    struct event_base      *base;
    struct evdns_base      *dns;
    SSL_CTX                *ssl_ctx;
    struct portal_url       url;
    char                   *token;      /* stripped; never logged */
    char                    ua[512];
    const char             *secret;     /* never logged */
    struct atab            *tab;
    portal_fatal_fn         fatal;
    void                   *ud;

    enum portal_state       state;
    int                     stopping;
    struct backoff          bo;
    struct rnd              rnd;        /* OS randomness: keys, masks */
    uint64_t                attempts;

    /* One attempt. */
    struct dns_ticket      *ticket;
    struct evdns_getaddrinfo_request *dns_req;
    struct evutil_addrinfo *ai_head, *ai_next;
    evutil_socket_t         fd;         /* while connecting */
    struct event           *ev_conn;
    char                    peer[ADDR_STRLEN];
    char                    conn_err[160];
    struct bufferevent     *bev;
    char                    ws_key[PORTAL_WS_KEY_LEN + 1];
    char                    ctype[128];
    enum body_mode          body_mode;
    size_t                  body_len;

    /* The open WebSocket. */
    wslay_event_context_ptr ws;
    struct portal_sess      sess;
    int                     joined;
    int                     init_seen;  /* since master start */
    enum pending            pending;
    char                    why[256];   /* reason of pending or closing */

    struct event           *ev_retry, *ev_deadline, *ev_join, *ev_hb;
};

static void attempt_start(struct portal *p);
static void body_check(struct portal *p, int at_eof);
static void try_connect(struct portal *p);
static void bev_read_cb(struct bufferevent *bev, void *arg);
static void bev_write_cb(struct bufferevent *bev, void *arg);
static void bev_event_cb(struct bufferevent *bev, short what, void *arg);

/* --- Small helpers --- */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
arm(struct event *ev, uint64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}

/* The last OpenSSL error as text, or "" when there is none. */
static const char *
ssl_err_text(unsigned long e, char *buf, size_t size)
{
    buf[0] = '\0';
    if (e != 0)
        ERR_error_string_n(e, buf, size);
    return buf;
}

/* --- Closing an attempt or a connection --- */

/* Closes everything the current attempt or connection holds.  Timers of
 * the attempt and the session stop; the retry timer is left alone. */
static void
conn_close(struct portal *p)
{
    if (p->ticket != NULL) {
        struct evdns_getaddrinfo_request *req = p->dns_req;

        p->ticket->p = NULL;    /* the callback frees it */
        p->ticket = NULL;
        p->dns_req = NULL;
        if (req != NULL)
            evdns_getaddrinfo_cancel(req);
    }
    if (p->ai_head != NULL)
        evutil_freeaddrinfo(p->ai_head);
    p->ai_head = p->ai_next = NULL;
    if (p->ev_conn != NULL)
        event_free(p->ev_conn);
    p->ev_conn = NULL;
    if (p->fd >= 0)
        evutil_closesocket(p->fd);
    p->fd = -1;
    if (p->ws != NULL)
        wslay_event_context_free(p->ws);
    p->ws = NULL;
    if (p->bev != NULL)
        bufferevent_free(p->bev);   /* closes the socket and the SSL */
    p->bev = NULL;
    evtimer_del(p->ev_deadline);
    evtimer_del(p->ev_join);
    evtimer_del(p->ev_hb);
    if (p->joined)
        log_info(log_get(), "portal: left the channel; "
            "relay_portal_connected=0");
    p->joined = 0;
    p->pending = PEND_NONE;
}

static void
go_fatal(struct portal *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* SPEC §7.6's fatal failures: log, stop for good, tell the master. */
static void
go_fatal(struct portal *p, const char *fmt, ...)
{
    char    msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conn_close(p);
    evtimer_del(p->ev_retry);
    p->state = PS_STOPPED;
    log_error(log_get(), "portal: %s", msg);
    if (p->fatal != NULL)
        p->fatal(p->ud);
}

static void
fail(struct portal *p, uint64_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A failure that SPEC §7.6 answers with a reconnect after a delay. */
static void
fail(struct portal *p, uint64_t retry_after_ms, const char *fmt, ...)
{
    char                    msg[512];
    va_list                 ap;
    uint64_t                delay = 0;
    enum backoff_verdict    v;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conn_close(p);
    if (p->stopping) {
        p->state = PS_STOPPED;
        return;
    }
    v = backoff_failed(&p->bo, mono_ms(), retry_after_ms, rnd_fill, &p->rnd,
        &delay);
    if (v == BACKOFF_GIVE_UP) {
        go_fatal(p, "%s; " BACKOFF_GIVE_UP_MSG, msg);
        return;
    }
    log_warn(log_get(), "portal: %s; retrying in %llu.%03llu s", msg,
        (unsigned long long)(delay / 1000),
        (unsigned long long)(delay % 1000));
    p->state = PS_IDLE;
    arm(p->ev_retry, delay);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    attempt_start(arg);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct portal *p = arg;

    if (p->state == PS_BODY) {
        body_check(p, 1);       /* the 401 is final, body or not */
        return;
    }
    fail(p, BACKOFF_NO_RETRY_AFTER, "%s: no connection within %d s (%s)",
        p->url.url, PORTAL_ATTEMPT_MS / 1000, state_names[p->state]);
}

/* --- Resolution and TCP --- */

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct dns_ticket  *t = arg;
    struct portal      *p = t->p;

    free(t);
    if (p == NULL) {            /* cancelled: the portal moved on */
        if (res != NULL)
            evutil_freeaddrinfo(res);
        return;
    }
    p->ticket = NULL;
    p->dns_req = NULL;
    if (result != 0 || res == NULL) {
        if (res != NULL)
            evutil_freeaddrinfo(res);
        fail(p, BACKOFF_NO_RETRY_AFTER, "cannot resolve %s: %s", p->url.host,
            result != 0 ? evutil_gai_strerror(result) : "no address");
        return;
    }
    p->ai_head = p->ai_next = res;
    p->state = PS_CONNECTING;
    try_connect(p);
}

static void
attempt_start(struct portal *p)
{
    struct evutil_addrinfo  hints, *res = NULL;
    struct dns_ticket      *t;
    char                    port[8];
    int                     rc;

    p->state = PS_RESOLVING;
    p->attempts++;
    p->conn_err[0] = '\0';
    arm(p->ev_deadline, PORTAL_ATTEMPT_MS);
    log_debug(log_get(), "portal: attempt %llu: %s",
        (unsigned long long)p->attempts, p->url.url);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)p->url.port);
    if (p->url.host_is_ip) {
        /* A literal needs no lookup, and this call never blocks. */
        hints.ai_flags |= EVUTIL_AI_NUMERICHOST;
        rc = evutil_getaddrinfo(p->url.host, port, &hints, &res);
        if (rc != 0)
            res = NULL;
        t = malloc(sizeof(*t));
        if (t == NULL) {
            if (res != NULL)
                evutil_freeaddrinfo(res);
            fail(p, BACKOFF_NO_RETRY_AFTER, "out of memory");
            return;
        }
        t->p = p;
        p->ticket = t;
        dns_cb(rc, res, t);
        return;
    }
    if ((t = malloc(sizeof(*t))) == NULL) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "out of memory");
        return;
    }
    t->p = p;
    p->ticket = t;
    /* May call dns_cb before returning (hosts file, immediate error), in
     * which case it returns NULL and t is already freed. */
    p->dns_req = evdns_getaddrinfo(p->dns, p->url.host, port, &hints,
        dns_cb, t);
}

/* Wraps the connected socket in a bufferevent (TLS for wss). */
static int
bev_open(struct portal *p)
{
    SSL *ssl;
    int  fd = p->fd;

    if (!p->url.tls) {
        p->bev = bufferevent_socket_new(p->base, fd,
            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (p->bev == NULL)
            return -1;
        p->fd = -1;
        return 0;
    }
    if ((ssl = SSL_new(p->ssl_ctx)) == NULL)
        return -1;
    if (p->url.host_is_ip) {
        /* No SNI for a literal; the certificate's IP SANs are checked. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
            p->url.host) != 1)
            goto err;
    } else if (SSL_set_tlsext_host_name(ssl, p->url.host) != 1 ||
        SSL_set1_host(ssl, p->url.host) != 1) {
        goto err;
    }
    p->bev = bufferevent_openssl_socket_new(p->base, fd, ssl,
        BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (p->bev == NULL)
        goto err;
    p->fd = -1;
    /* A portal that closes without close_notify ends the stream; the
     * WebSocket layer above tells a clean end from a truncated one. */
    bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
    return 0;
err:
    SSL_free(ssl);
    return -1;
}

static void send_upgrade(struct portal *p);

static void
tcp_connected(struct portal *p)
{
    if (p->ev_conn != NULL)
        event_free(p->ev_conn);
    p->ev_conn = NULL;
    evutil_freeaddrinfo(p->ai_head);
    p->ai_head = p->ai_next = NULL;
    log_debug(log_get(), "portal: TCP connected to %s", p->peer);
    if (bev_open(p) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "%s: cannot set up the connection "
            "(%s)", p->peer, p->url.tls ? "TLS" : "out of memory");
        return;
    }
    bufferevent_setcb(p->bev, bev_read_cb, bev_write_cb, bev_event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    if (p->url.tls)
        p->state = PS_TLS;      /* BEV_EVENT_CONNECTED after the handshake */
    else
        send_upgrade(p);
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct portal  *p = arg;
    int             err = 0;
    socklen_t       len = sizeof(err);

    if (what & EV_TIMEOUT) {
        snprintf(p->conn_err, sizeof(p->conn_err), "%s: connect timed out "
            "after %d s", p->peer, PORTAL_CONNECT_MS / 1000);
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
        snprintf(p->conn_err, sizeof(p->conn_err), "%s: %s", p->peer,
            strerror(err != 0 ? err : errno));
    } else {
        tcp_connected(p);
        return;
    }
    log_debug(log_get(), "portal: %s", p->conn_err);
    event_free(p->ev_conn);
    p->ev_conn = NULL;
    evutil_closesocket(p->fd);
    p->fd = -1;
    try_connect(p);
}

/* Starts a connect to the next resolved address; when none is left, the
 * attempt has failed with the last address's error. */
static void
try_connect(struct portal *p)
{
    struct timeval tv = { PORTAL_CONNECT_MS / 1000,
        (PORTAL_CONNECT_MS % 1000) * 1000 };

    while (p->ai_next != NULL) {
        struct evutil_addrinfo *ai = p->ai_next;
        struct addr             a;
        int                     fd;

        p->ai_next = ai->ai_next;
        if (addr_from_sockaddr(&a, ai->ai_addr, (socklen_t)ai->ai_addrlen)
            != 0)
            continue;
        addr_format(&a, p->peer, sizeof(p->peer));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
            SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            snprintf(p->conn_err, sizeof(p->conn_err), "%s: socket: %s",
                p->peer, strerror(errno));
            continue;
        }
        p->fd = fd;
        if (connect(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0) {
            tcp_connected(p);
            return;
        }
        if (errno != EINPROGRESS) {
            snprintf(p->conn_err, sizeof(p->conn_err), "%s: %s", p->peer,
                strerror(errno));
            log_debug(log_get(), "portal: %s", p->conn_err);
            evutil_closesocket(fd);
            p->fd = -1;
            continue;
        }
        p->ev_conn = event_new(p->base, fd, EV_WRITE, conn_cb, p);
        if (p->ev_conn != NULL && event_add(p->ev_conn, &tv) == 0)
            return;
        snprintf(p->conn_err, sizeof(p->conn_err), "out of memory");
        break;      /* conn_close() in fail() closes fd */
    }
    fail(p, BACKOFF_NO_RETRY_AFTER, "cannot connect to %s: %s",
        p->url.host_header, p->conn_err[0] != '\0' ? p->conn_err :
        "no usable address");
}

/* --- The HTTP upgrade --- */

static void
send_upgrade(struct portal *p)
{
    struct evbuffer *out = bufferevent_get_output(p->bev);

    if (portal_msg_ws_key(rnd_fill, &p->rnd, p->ws_key) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "no randomness for the key");
        return;
    }
    p->state = PS_UPGRADING;
    /* The token goes here and nowhere else. */
    if (evbuffer_add_printf(out,
        "GET %s HTTP/1.1\r\n"
        "Host: %s\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "User-Agent: %s\r\n"
        "X-Authorization: Bearer %s\r\n"
        "\r\n",
        p->url.target, p->url.host_header, p->ws_key, p->ua,
        p->token) < 0)
        fail(p, BACKOFF_NO_RETRY_AFTER, "out of memory");
}

/* "HTTP/1.x NNN ..." -> NNN, or -1. */
static int
head_status(const char *head)
{
    const char *s = head + 9;

    if (strncmp(head, "HTTP/1.", 7) != 0 || head[7] < '0' ||
        head[7] > '9' || head[8] != ' ')
        return -1;
    for (int i = 0; i < 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    if (s[3] != ' ' && s[3] != '\r' && s[3] != '\n')
        return -1;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* The first header field called name (case-insensitive) in head, its value
 * without surrounding blanks, cut to size.  Returns 1 when present. */
static int
head_value(const char *head, const char *name, char *out, size_t size)
{
    size_t      nlen = strlen(name);
    const char *line = strchr(head, '\n');

    while (line != NULL && *++line != '\0') {
        const char *eol = strchr(line, '\n');
        const char *v, *e;
        size_t      n;

        if (eol == NULL)
            eol = line + strlen(line);
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            v = line + nlen + 1;
            e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' ||
                e[-1] == '\t'))
                e--;
            n = (size_t)(e - v);
            if (n >= size)
                n = size - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        line = *eol != '\0' ? eol : NULL;
    }
    return 0;
}

/* 1 when the comma-separated list holds token (case-insensitive). */
static int
has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);

    while (*list != '\0') {
        size_t n;

        while (*list == ' ' || *list == '\t' || *list == ',')
            list++;
        n = strcspn(list, ", \t");
        if (n == tlen && strncasecmp(list, token, n) == 0)
            return 1;
        list += n;
    }
    return 0;
}

static void ws_open(struct portal *p);

/* Removes the chunked framing of in (len bytes) into out (out may be in).
 * Returns 1 when the last chunk was seen, else 0; *outlen: bytes so far. */
static int
dechunk(const char *in, size_t len, char *out, size_t *outlen)
{
    size_t pos = 0, o = 0;

    *outlen = 0;
    for (;;) {
        size_t  size = 0, eol;
        int     digits = 0;

        for (; pos < len; pos++, digits++) {
            int c = (unsigned char)in[pos];

            if (c >= '0' && c <= '9')
                c -= '0';
            else if (c >= 'a' && c <= 'f')
                c -= 'a' - 10;
            else if (c >= 'A' && c <= 'F')
                c -= 'A' - 10;
            else
                break;
            if (size > PORTAL_BODY_MAX)
                return 0;       /* absurd chunk: keep what we have */
            size = size * 16 + (size_t)c;
        }
        for (eol = pos; eol + 1 < len; eol++)
            if (in[eol] == '\r' && in[eol + 1] == '\n')
                break;
        if (digits == 0 || eol + 1 >= len)
            return 0;
        pos = eol + 2;
        if (size == 0)
            return 1;
        if (size > len - pos)
            return 0;
        memmove(out + o, in + pos, size);
        o += size;
        *outlen = o;
        pos += size + 2;
        if (pos > len)
            return 0;
    }
}

/* Reads the 401 body as far as it goes; at_eof: the stream ended (or the
 * deadline passed), so what is there is all there will be. */
static void
body_check(struct portal *p, int at_eof)
{
    struct evbuffer    *in = bufferevent_get_input(p->bev);
    size_t              have = evbuffer_get_length(in), n = 0;
    char               *body, msg[300];
    int                 done = at_eof || have >= PORTAL_BODY_MAX;

    if (p->body_mode == BODY_LENGTH && have >= p->body_len)
        done = 1;
    if (have > PORTAL_BODY_MAX)
        have = PORTAL_BODY_MAX;
    if ((body = malloc(have + 1)) == NULL) {
        go_fatal(p, "authentication failed: HTTP 401");
        return;
    }
    evbuffer_copyout(in, body, have);
    if (p->body_mode == BODY_LENGTH) {
        n = have < p->body_len ? have : p->body_len;
    } else if (p->body_mode == BODY_CHUNKED) {
        if (dechunk(body, have, body, &n))
            done = 1;
    } else {
        n = have;
    }
    body[n] = '\0';
    if (done) {
        portal_msg_401(p->ctype[0] != '\0' ? p->ctype : NULL, body, n, msg,
            sizeof(msg));
        go_fatal(p, "%s", msg);
    }
    free(body);
}

static void
on_401(struct portal *p, const char *head)
{
    char v[64];

    p->state = PS_BODY;
    p->ctype[0] = '\0';
    head_value(head, "Content-Type", p->ctype, sizeof(p->ctype));
    p->body_mode = BODY_EOF;
    if (head_value(head, "Transfer-Encoding", v, sizeof(v)) &&
        has_token(v, "chunked")) {
        p->body_mode = BODY_CHUNKED;
    } else if (head_value(head, "Content-Length", v, sizeof(v))) {
        char               *end;
        unsigned long long  cl = strtoull(v, &end, 10);

        if (end != v && *end == '\0') {
            p->body_mode = BODY_LENGTH;
            p->body_len = cl > PORTAL_BODY_MAX ? PORTAL_BODY_MAX :
                (size_t)cl;
        }
    }
    body_check(p, 0);
}

static void
on_head(struct portal *p, const char *head)
{
    char        v[256];
    int         status = head_status(head);
    uint64_t    ra = BACKOFF_NO_RETRY_AFTER, s;

    if (status < 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "%s: not an HTTP response to the "
            "upgrade", p->peer);
        return;
    }
    if (status == 401) {
        on_401(p, head);
        return;
    }
    if (status != 101) {
        if (head_value(head, "Retry-After", v, sizeof(v)) &&
            portal_msg_retry_after(v, (uint64_t)time(NULL), &s) == 0)
            ra = s > UINT64_MAX / 1000 ? UINT64_MAX - 1 : s * 1000;
        if (ra != BACKOFF_NO_RETRY_AFTER)
            fail(p, ra, "upgrade refused with HTTP %d (Retry-After: %s)",
                status, v);
        else
            fail(p, ra, "upgrade refused with HTTP %d", status);
        return;
    }
    if (!head_value(head, "Upgrade", v, sizeof(v)) ||
        strcasecmp(v, "websocket") != 0 ||
        !head_value(head, "Connection", v, sizeof(v)) ||
        !has_token(v, "upgrade")) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "101 without Upgrade: websocket");
        return;
    }
    if (!head_value(head, "Sec-WebSocket-Accept", v, sizeof(v)) ||
        !portal_msg_ws_accept_ok(p->ws_key, v)) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "101 with a wrong "
            "Sec-WebSocket-Accept");
        return;
    }
    ws_open(p);
}

/* Waits for the whole response head, then acts on it. */
static void
head_read(struct portal *p)
{
    struct evbuffer    *in = bufferevent_get_input(p->bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t              n;
    char               *head;

    if (end.pos < 0) {
        if (evbuffer_get_length(in) > PORTAL_HEAD_MAX)
            fail(p, BACKOFF_NO_RETRY_AFTER, "upgrade response head over "
                "%d bytes", PORTAL_HEAD_MAX);
        return;
    }
    n = (size_t)end.pos + 4;
    if (n > PORTAL_HEAD_MAX || (head = malloc(n + 1)) == NULL) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "upgrade response head too large");
        return;
    }
    evbuffer_remove(in, head, n);
    head[n] = '\0';
    on_head(p, head);
    free(head);
}

/* --- The WebSocket and the Phoenix session --- */

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *ud)
{
    struct portal  *p = ud;
    int             n;

    n = evbuffer_remove(bufferevent_get_input(p->bev), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *ud)
{
    struct portal *p = ud;

    if (bufferevent_write(p->bev, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int
ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    void *ud)
{
    struct portal *p = ud;

    if (rnd_fill(&p->rnd, buf, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* Queues one text message (wslay copies it) and frees text. */
static int
queue_text(struct portal *p, char *text)
{
    struct wslay_event_msg  m;
    int                     rc;

    if (text == NULL)
        return -1;
    m.opcode = WSLAY_TEXT_FRAME;
    m.msg = (const uint8_t *)text;
    m.msg_length = strlen(text);
    rc = wslay_event_queue_msg(p->ws, &m);
    free(text);
    return rc == 0 ? 0 : -1;
}

static void
set_pending(struct portal *p, enum pending what, const char *why)
{
    if (p->pending == PEND_FATAL)
        return;
    p->pending = what;
    snprintf(p->why, sizeof(p->why), "%s", why);
}

static int
send_join(struct portal *p)
{
    if (queue_text(p, portal_msg_join(&p->sess, p->secret)) != 0)
        return -1;
    arm(p->ev_join, PORTAL_JOIN_MS);
    return 0;
}

static void
on_init(struct portal *p)
{
    if (p->init_seen) {
        log_debug(log_get(), "portal: init again (ignored)");
        return;
    }
    p->init_seen = 1;
    if (!atab_ready(p->tab))
        atab_set_ready(p->tab);
    log_info(log_get(), "portal: init received; relaying enabled");
}

/* SPEC §7.4's table, through portal_msg_on_text(). */
static void
on_text(struct portal *p, const char *text, size_t len)
{
    struct portal_event ev;
    char                why[PORTAL_DETAIL_MAX + 32];

    if (p->pending != PEND_NONE)
        return;     /* the connection is being dropped */
    switch (portal_msg_on_text(&p->sess, text, len, &ev)) {
    case PORTAL_ACT_REJOIN:
        log_warn(log_get(), "portal: unmatched topic; joining again");
        p->joined = 0;
        if (send_join(p) != 0)
            set_pending(p, PEND_RECONNECT, "cannot queue the join");
        break;
    case PORTAL_ACT_JOINED:
        evtimer_del(p->ev_join);
        if (!p->joined)
            log_info(log_get(), "portal: joined; relay_portal_connected=1");
        p->joined = 1;
        backoff_joined(&p->bo);
        break;
    case PORTAL_ACT_LOGIN_FAILED:
        snprintf(why, sizeof(why), "login failed%s%s",
            ev.detail[0] != '\0' ? ": " : "", ev.detail);
        set_pending(p, PEND_FATAL, why);
        break;
    case PORTAL_ACT_HEARTBEAT_ANSWERED:
        log_debug(log_get(), "portal: heartbeat %llu answered",
            (unsigned long long)ev.ref);
        break;
    case PORTAL_ACT_INIT:
        on_init(p);
        break;
    case PORTAL_ACT_TOKEN_EXPIRED:
        set_pending(p, PEND_FATAL, "invalid token (token_expired)");
        break;
    case PORTAL_ACT_RECONNECT:
        set_pending(p, PEND_RECONNECT, "the portal sent phx_close");
        break;
    case PORTAL_ACT_WARN_UNKNOWN:
        log_warn(log_get(), "portal: ignored message: %s", ev.detail);
        break;
    case PORTAL_ACT_IGNORED:
        break;
    }
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    struct portal *p = ud;

    if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(p, (const char *)arg->msg, arg->msg_length);
    /* Binary frames are ignored; wslay answers Ping and Close itself. */
}

/* Drops the connection once the queued Close has left. */
static void
closing_check(struct portal *p)
{
    if (evbuffer_get_length(bufferevent_get_output(p->bev)) > 0)
        return;
    if (p->stopping) {
        conn_close(p);
        p->state = PS_STOPPED;
        log_info(log_get(), "portal: closed");
        return;
    }
    fail(p, BACKOFF_NO_RETRY_AFTER, "%s", p->why);
}

/* Runs wslay: reads what arrived (when do_recv), carries out what the
 * callbacks decided, writes what is queued, and notices a Close. */
static void
ws_pump(struct portal *p, int do_recv)
{
    if (do_recv && wslay_event_want_read(p->ws) &&
        wslay_event_recv(p->ws) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "WebSocket receive failed");
        return;
    }
    if (p->pending == PEND_FATAL) {
        go_fatal(p, "%s", p->why);
        return;
    }
    if (p->pending == PEND_RECONNECT) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "%s", p->why);
        return;
    }
    if (wslay_event_want_write(p->ws) && wslay_event_send(p->ws) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "WebSocket send failed");
        return;
    }
    if (p->state == PS_OPEN && (wslay_event_get_close_received(p->ws) ||
        wslay_event_get_close_sent(p->ws))) {
        p->state = PS_CLOSING;
        if (wslay_event_get_close_received(p->ws))
            snprintf(p->why, sizeof(p->why), "WebSocket closed by the "
                "portal (code %u)",
                (unsigned)wslay_event_get_status_code_received(p->ws));
        else
            snprintf(p->why, sizeof(p->why), "WebSocket closed (code %u "
                "sent)", (unsigned)wslay_event_get_status_code_sent(p->ws));
        evtimer_del(p->ev_join);
        evtimer_del(p->ev_hb);
        if (p->joined)
            log_info(log_get(), "portal: left the channel; "
                "relay_portal_connected=0");
        p->joined = 0;
    }
    if (p->state == PS_CLOSING)
        closing_check(p);
}

static void
ws_open(struct portal *p)
{
    static const struct wslay_event_callbacks cbs = {
        ws_recv_cb, ws_send_cb, ws_genmask_cb, NULL, NULL, NULL, ws_msg_cb
    };
    struct timeval every = { PORTAL_HEARTBEAT_MS / 1000,
        (PORTAL_HEARTBEAT_MS % 1000) * 1000 };

    evtimer_del(p->ev_deadline);
    if (wslay_event_context_client_init(&p->ws, &cbs, p) != 0) {
        p->ws = NULL;
        fail(p, BACKOFF_NO_RETRY_AFTER, "out of memory");
        return;
    }
    wslay_event_config_set_max_recv_msg_length(p->ws, PORTAL_MAX_MSG);
    portal_msg_sess_init(&p->sess);
    p->state = PS_OPEN;
    log_info(log_get(), "portal: connected to %s (%s)", p->url.host_header,
        p->peer);
    if (send_join(p) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "cannot queue the join");
        return;
    }
    event_add(p->ev_hb, &every);
    /* Frames may have arrived with the 101. */
    ws_pump(p, evbuffer_get_length(bufferevent_get_input(p->bev)) > 0);
}

static void
join_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    fail(arg, BACKOFF_NO_RETRY_AFTER, "no reply to the join within %d s",
        PORTAL_JOIN_MS / 1000);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct portal  *p = arg;
    int             overdue = 0;
    char           *text;

    if (p->state != PS_OPEN)
        return;
    text = portal_msg_heartbeat(&p->sess, &overdue);
    if (queue_text(p, text) != 0) {
        fail(p, BACKOFF_NO_RETRY_AFTER, "cannot queue a heartbeat");
        return;
    }
    ws_pump(p, 0);
    if (overdue && p->state == PS_OPEN)
        fail(p, BACKOFF_NO_RETRY_AFTER, "more than %d heartbeats "
            "unanswered", PORTAL_HB_MAX_OUTSTANDING);
}

/* --- Bufferevent callbacks --- */

static void
bev_read_cb(struct bufferevent *bev, void *arg)
{
    struct portal *p = arg;

    switch (p->state) {
    case PS_UPGRADING:
        head_read(p);
        break;
    case PS_BODY:
        body_check(p, 0);
        break;
    case PS_OPEN:
        ws_pump(p, 1);
        break;
    case PS_CLOSING:
        /* Whatever follows our Close is of no interest. */
        evbuffer_drain(bufferevent_get_input(bev),
            evbuffer_get_length(bufferevent_get_input(bev)));
        break;
    default:
        break;
    }
}

static void
bev_write_cb(struct bufferevent *bev, void *arg)
{
    struct portal *p = arg;

    if (p->state == PS_CLOSING)
        closing_check(p);
}

/* Why a TLS handshake failed, for the log. */
static void
tls_error(struct portal *p, short what, char *buf, size_t size)
{
    SSL            *ssl = bufferevent_openssl_get_ssl(p->bev);
    long            vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long   e, last = 0;
    char            tmp[200];
    int             err = EVUTIL_SOCKET_ERROR();

    /* libevent queues SSL_get_error()'s code (library 0) when OpenSSL
     * queued nothing: SSL_ERROR_SYSCALL, the peer closed or reset. */
    while ((e = bufferevent_get_openssl_error(p->bev)) != 0)
        if (ERR_GET_LIB(e) != 0)
            last = e;
    if (vr != X509_V_OK)
        snprintf(buf, size, "certificate verification failed: %s",
            X509_verify_cert_error_string(vr));
    else if (last != 0)
        snprintf(buf, size, "%s", ssl_err_text(last, tmp, sizeof(tmp)));
    else if ((what & BEV_EVENT_ERROR) && err != 0)
        snprintf(buf, size, "%s", strerror(err));
    else
        snprintf(buf, size, "connection closed by the portal");
}

static void
bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct portal  *p = arg;
    char            why[256];

    if (what & BEV_EVENT_CONNECTED) {
        if (p->state == PS_TLS) {
            log_debug(log_get(), "portal: TLS established with %s",
                p->peer);
            send_upgrade(p);
        }
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    switch (p->state) {
    case PS_TLS:
        tls_error(p, what, why, sizeof(why));
        fail(p, BACKOFF_NO_RETRY_AFTER, "TLS with %s: %s", p->peer, why);
        break;
    case PS_UPGRADING:
        if (p->url.tls)
            tls_error(p, what, why, sizeof(why));
        else if ((what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0)
            snprintf(why, sizeof(why), "%s",
                strerror(EVUTIL_SOCKET_ERROR()));
        else
            snprintf(why, sizeof(why), "connection closed by the portal");
        fail(p, BACKOFF_NO_RETRY_AFTER, "%s during the upgrade", why);
        break;
    case PS_BODY:
        body_check(p, 1);
        break;
    case PS_OPEN:
        /* Whatever arrived before the end still counts (a Close, say). */
        ws_pump(p, 1);
        if (p->state == PS_OPEN)
            fail(p, BACKOFF_NO_RETRY_AFTER, "connection to the portal "
                "lost");
        break;
    case PS_CLOSING:
        if (p->stopping) {
            conn_close(p);
            p->state = PS_STOPPED;
        } else {
            fail(p, BACKOFF_NO_RETRY_AFTER, "%s", p->why);
        }
        break;
    default:
        break;
    }
}

/* --- Set-up and the public calls --- */

static SSL_CTX *
tls_ctx_new(const char *ca_file)
{
    SSL_CTX        *ctx;
    unsigned long   e;
    char            buf[200];

    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        goto err;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto err;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            e = ERR_get_error();
            log_error(log_get(), "portal.ca_file %s: %s", ca_file,
                ssl_err_text(e, buf, sizeof(buf)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        goto err;
    }
    return ctx;
err:
    e = ERR_get_error();
    log_error(log_get(), "portal: cannot set up TLS: %s",
        ssl_err_text(e, buf, sizeof(buf)));
    SSL_CTX_free(ctx);
    return NULL;
}

static int
make_user_agent(struct portal *p, const char *version)
{
    struct utsname u;

    if (uname(&u) != 0) {
        snprintf(u.release, sizeof(u.release), "unknown");
        snprintf(u.machine, sizeof(u.machine), "unknown");
    }
    return portal_msg_user_agent(u.release, version, u.machine, p->ua,
        sizeof(p->ua));
}

static int
make_events(struct portal *p)
{
    p->ev_retry = evtimer_new(p->base, retry_cb, p);
    p->ev_deadline = evtimer_new(p->base, deadline_cb, p);
    p->ev_join = evtimer_new(p->base, join_timeout_cb, p);
    p->ev_hb = event_new(p->base, -1, EV_PERSIST, heartbeat_cb, p);
    return p->ev_retry != NULL && p->ev_deadline != NULL &&
        p->ev_join != NULL && p->ev_hb != NULL ? 0 : -1;
}

int
portal_start(struct event_base *base, const struct portal_conf *conf,
    struct portal **out)
{
    struct portal_url_in    in;
    struct portal          *p;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        goto nomem;
    p->base = base;
    p->fd = -1;
    p->secret = conf->secret;
    p->tab = conf->tab;
    p->fatal = conf->fatal;
    p->ud = conf->ud;
    rnd_init(&p->rnd, 0, 0, 0);     /* masks and keys: always the OS */
    memset(&in, 0, sizeof(in));
    in.url = conf->url;
    in.name = conf->name;
    in.ip4 = conf->ip4 != NULL && conf->ip4->family != ADDR_NONE ?
        conf->ip4 : NULL;
    in.ip6 = conf->ip6 != NULL && conf->ip6->family != ADDR_NONE ?
        conf->ip6 : NULL;
    in.port = conf->port;
    if (portal_msg_url_build(&in, &p->url) != 0) {
        log_error(log_get(), "portal.url: not a usable ws/wss URL");
        goto err;
    }
    if ((p->token = strdup(conf->token != NULL ? conf->token : "")) == NULL)
        goto nomem;
    portal_msg_token_strip(p->token);
    if (make_user_agent(p, conf->version) != 0 || make_events(p) != 0)
        goto nomem;
    if (p->url.tls && (p->ssl_ctx = tls_ctx_new(conf->ca_file)) == NULL)
        goto err;
    if (!p->url.host_is_ip) {
        p->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
            EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (p->dns == NULL) {
            log_error(log_get(), "portal: cannot set up the resolver "
                "(/etc/resolv.conf)");
            goto err;
        }
    }
    backoff_init(&p->bo, mono_ms());
    log_info(log_get(), "portal: %s (port %u)", p->url.url,
        (unsigned)p->url.port);
    attempt_start(p);
    *out = p;
    return 0;
nomem:
    log_error(log_get(), "portal: out of memory");
err:
    portal_free(p);
    return -1;
}

void
portal_stop(struct portal *p)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = 1;
    evtimer_del(p->ev_retry);
    if (p->state == PS_OPEN) {
        wslay_event_queue_close(p->ws, WS_CLOSE_NORMAL, NULL, 0);
        ws_pump(p, 0);      /* goes CLOSING, then STOPPED once flushed */
        return;
    }
    if (p->state != PS_CLOSING) {
        conn_close(p);
        p->state = PS_STOPPED;
    }
}

int
portal_connected(const struct portal *p)
{
    return p != NULL && p->joined;
}

void
portal_free(struct portal *p)
{
    if (p == NULL)
        return;
    conn_close(p);
    if (p->ev_retry != NULL)
        event_free(p->ev_retry);
    if (p->ev_deadline != NULL)
        event_free(p->ev_deadline);
    if (p->ev_join != NULL)
        event_free(p->ev_join);
    if (p->ev_hb != NULL)
        event_free(p->ev_hb);
    if (p->dns != NULL)
        evdns_base_free(p->dns, 0);
    SSL_CTX_free(p->ssl_ctx);
    if (p->token != NULL) {
        memset(p->token, 0, strlen(p->token));
        free(p->token);
    }
    free(p);
}
