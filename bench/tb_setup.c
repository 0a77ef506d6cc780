/* tb_setup.c - TURN transactions of the load generator: Allocate with the
 * 401/nonce dance, ChannelBind to the peer, Refresh with LIFETIME 0.
 *
 * Each flow is a small state machine with one transaction open at a time,
 * retransmitted every 500 ms up to 5 times; a 438 (stale nonce) is
 * retried with the new nonce.  Many flows run concurrently (b->inflight),
 * which is what makes allocations/s a measure of the server. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "turnbench.h"

#define RTO_NS      500000000ull
#define MAX_TRIES   5
#define MAX_STALE   4

static uint64_t
next_rand(struct tb_bench *b)
{
    /* xorshift64*: transaction ids need only be unique, not secret. */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545f4914f6cdd1dull;
}

static void
new_txid(struct tb_bench *b, struct tb_flow *f)
{
    uint64_t r1 = next_rand(b), r2 = next_rand(b);

    memcpy(f->txid, &r1, 8);
    memcpy(f->txid + 8, &r2, 4);
}

/* Username and key of flow f: a fresh Firezone credential per flow and
 * cycle (one allocation per username, SPEC §4.1), or a fixed one. */
static int
set_credentials(struct tb_bench *b, struct tb_flow *f)
{
    const char *password;
    char        fzpass[44];

    if (b->secret != NULL) {
        char     salt[48];
        uint64_t expiry = (uint64_t)time(NULL) + 3600;

        snprintf(salt, sizeof(salt), "tb%08xf%uc%llu", b->tag, f->idx,
            (unsigned long long)f->cycles);
        snprintf(f->user, sizeof(f->user), "%llu:%s",
            (unsigned long long)expiry, salt);
        if (tb_fz_password(expiry, b->secret, salt, fzpass) != 0)
            return -1;
        password = fzpass;
    } else {
        const struct tb_cred *c = &b->creds[f->idx % (uint32_t)b->ncreds];

        snprintf(f->user, sizeof(f->user), "%s", c->user);
        password = c->password;
    }
    return tb_lt_key(f->user, b->realm, password, f->key);
}

/* The next client address: 127.x.y.z with x, y, z in 1-254, walking
 * from a random start so that runs do not repeat each other. */
static uint32_t
next_loopback(struct tb_bench *b)
{
    uint32_t n = b->ip_seq++ % (254u * 254u * 254u);

    return 0x7f000000u | (1 + n / (254u * 254u)) << 16 |
        (1 + n / 254u % 254u) << 8 | (1 + n % 254u);
}

int
tb_flow_open(struct tb_bench *b, struct tb_flow *f)
{
    struct epoll_event ev;
    int                size = 1 << 20, one = 1;

    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->fd < 0) {
        fprintf(stderr, "turnbench: socket: %s\n", strerror(errno));
        return -1;
    }
    setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (b->gro)
        setsockopt(f->fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
    if (b->client_hosts > 0 ||
        b->server.sin_addr.s_addr == htonl(0x7f000001)) {
        struct sockaddr_in src;

        /* Every socket gets its own address (127.x.y.z, or one of
         * --client-net's), so that no client socket ever repeats an
         * earlier one's address and port: a server may keep a deleted
         * allocation's session for a while (coturn answers 437 to a new
         * Allocate from the same 5-tuple). */
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(b->client_hosts > 0 ?
            b->client_net + 1 + b->ip_seq++ % b->client_hosts :
            next_loopback(b));
        if (bind(f->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            fprintf(stderr, "turnbench: bind: %s\n", strerror(errno));
            close(f->fd);
            f->fd = -1;
            return -1;
        }
    }
    if (connect(f->fd, (struct sockaddr *)&b->server,
        sizeof(b->server)) != 0) {
        fprintf(stderr, "turnbench: connect: %s\n", strerror(errno));
        close(f->fd);
        f->fd = -1;
        return -1;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = f->idx;
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, f->fd, &ev) != 0) {
        close(f->fd);
        f->fd = -1;
        return -1;
    }
    return 0;
}

void
tb_flow_close(struct tb_bench *b, struct tb_flow *f)
{
    if (f->fd >= 0) {
        epoll_ctl(b->ep, EPOLL_CTL_DEL, f->fd, NULL);
        close(f->fd);
    }
    f->fd = -1;
}

static void
add_auth(struct tb_bench *b, struct tb_flow *f, struct stun_build *m)
{
    stun_build_attr(m, STUN_A_USERNAME, f->user, strlen(f->user));
    stun_build_attr(m, STUN_A_REALM, f->realm, strlen(f->realm));
    stun_build_attr(m, STUN_A_NONCE, f->nonce, strlen(f->nonce));
}

/* Sends the request of f's current state (a retransmission keeps the
 * transaction id). */
static void
send_request(struct tb_bench *b, struct tb_flow *f)
{
    uint8_t           buf[1024];
    struct stun_build m;
    int               len;

    switch (f->state) {
    case FS_ALLOC0:
    case FS_ALLOC1:
        stun_build_init(&m, buf, sizeof(buf), STUN_ALLOCATE, f->txid);
        stun_build_u32(&m, STUN_A_TRANSPORT, 17u << 24);
        if (b->lifetime > 0)
            stun_build_u32(&m, STUN_A_LIFETIME, (uint32_t)b->lifetime);
        break;
    case FS_BIND:
        stun_build_init(&m, buf, sizeof(buf), STUN_CHANNEL_BIND, f->txid);
        stun_build_u32(&m, STUN_A_CHANNEL, (uint32_t)f->chan << 16);
        stun_build_xaddr(&m, STUN_A_XOR_PEER, &b->peer_addr);
        break;
    case FS_REFRESH0:
        stun_build_init(&m, buf, sizeof(buf), STUN_REFRESH, f->txid);
        stun_build_u32(&m, STUN_A_LIFETIME, 0);
        break;
    default:
        return;
    }
    if (f->state == FS_ALLOC0) {
        len = m.overflow ? -1 : (int)m.len;
    } else {
        add_auth(b, f, &m);
        len = stun_build_finish(&m, f->key, b->mac);
    }
    f->deadline = tb_now() + RTO_NS;
    if (len > 0 && send(f->fd, buf, (size_t)len, 0) < 0 && errno != EAGAIN)
        fprintf(stderr, "turnbench: send: %s\n", strerror(errno));
}

static void
start_state(struct tb_bench *b, struct tb_flow *f, int state)
{
    f->state = (uint8_t)state;
    f->tries = 0;
    new_txid(b, f);
    send_request(b, f);
}

static void
fail(struct tb_bench *b, struct tb_flow *f, int code)
{
    static const char *names[] = { "idle", "allocate", "allocate",
        "channel-bind", "ready", "refresh", "done", "failed" };

    if (b->setup_failed < 5)
        fprintf(stderr, "turnbench: flow %u: %s failed: %s %d\n", f->idx,
            names[f->state], code > 0 ? "error" : code == 0 ? "timeout" :
            "local", code);
    f->state = FS_FAILED;
    b->setup_failed++;
    b->last_error = code;
    b->active--;
}

/* A new allocation on a fresh socket: the server sees a new client and
 * answers the first Allocate with 401. */
static int
begin_alloc(struct tb_bench *b, struct tb_flow *f)
{
    tb_flow_close(b, f);
    f->nonce[0] = '\0';
    snprintf(f->realm, sizeof(f->realm), "%s", b->realm);
    if (set_credentials(b, f) != 0 || tb_flow_open(b, f) != 0)
        return -1;
    start_state(b, f, FS_ALLOC0);
    return 0;
}

static void
reached(struct tb_bench *b, struct tb_flow *f)
{
    if (b->churn) {
        b->completed++;
        f->cycles++;
        if (begin_alloc(b, f) != 0)
            fail(b, f, -1);
        return;
    }
    b->active--;
    b->reached++;
}

static void
on_success(struct tb_bench *b, struct tb_flow *f, const struct stun_resp *r)
{
    switch (f->state) {
    case FS_ALLOC1:
        if (!r->has_relayed) {
            fail(b, f, -2);
            return;
        }
        f->relayed = r->relayed;
        start_state(b, f, FS_BIND);
        break;
    case FS_BIND:
        if (b->target == FS_READY) {
            f->state = FS_READY;
            reached(b, f);
        } else {
            start_state(b, f, FS_REFRESH0);
        }
        break;
    case FS_REFRESH0:
        f->state = FS_DONE;
        reached(b, f);
        break;
    default:
        break;
    }
}

static void
on_error(struct tb_bench *b, struct tb_flow *f, const struct stun_resp *r)
{
    if ((r->error == 401 && f->state == FS_ALLOC0) || r->error == 438) {
        if (r->nonce_len == 0 || ++f->tries > MAX_STALE) {
            fail(b, f, r->error);
            return;
        }
        memcpy(f->nonce, r->nonce, r->nonce_len + 1);
        if (r->realm_len > 0 && r->realm_len < sizeof(f->realm))
            memcpy(f->realm, r->realm, r->realm_len + 1);
        if (f->state == FS_ALLOC0)
            f->state = FS_ALLOC1;
        new_txid(b, f);
        send_request(b, f);
        return;
    }
    if (r->error == 437 && f->state == FS_REFRESH0) {
        f->state = FS_DONE;         /* already gone */
        reached(b, f);
        return;
    }
    fail(b, f, r->error);
}

void
tb_setup_on_stun(struct tb_bench *b, struct tb_flow *f, const uint8_t *buf,
    size_t len)
{
    struct stun_resp r;

    if (f->state == FS_READY || f->state == FS_DONE ||
        f->state == FS_FAILED || f->state == FS_IDLE)
        return;
    if (stun_parse(buf, len, &r) != 0 || r.cls == 0 ||
        memcmp(r.txid, f->txid, 12) != 0)
        return;
    if (r.cls == STUN_CLASS_SUCCESS)
        on_success(b, f, &r);
    else
        on_error(b, f, &r);
}

static void
start_flow(struct tb_bench *b, struct tb_flow *f)
{
    b->active++;
    if (f->state == FS_READY && b->target == FS_DONE) {
        start_state(b, f, FS_REFRESH0);
    } else if (f->state == FS_IDLE && !b->raw) {
        if (begin_alloc(b, f) != 0)
            fail(b, f, -1);
    } else {
        /* Nothing to do: already there, failed, or raw mode. */
        b->active--;
        if (f->state != FS_FAILED)
            b->reached++;
    }
}

static void
check_timeouts(struct tb_bench *b, int first, int n, uint64_t now)
{
    for (int i = first; i < first + n; i++) {
        struct tb_flow *f = &b->flows[i];

        if (f->state < FS_ALLOC0 || f->state == FS_READY ||
            f->state >= FS_DONE || now < f->deadline)
            continue;
        if (++f->tries >= MAX_TRIES)
            fail(b, f, 0);
        else
            send_request(b, f);
    }
}

/* Reads what is waiting on one socket; set-up traffic only. */
static void
drain(struct tb_bench *b, uint32_t idx)
{
    uint8_t buf[2048];
    ssize_t n;
    int     fd = idx == TB_EV_PEER ? b->peer_fd : b->flows[idx].fd;

    for (int i = 0; i < 64; i++) {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            break;
        if (idx != TB_EV_PEER && n >= STUN_HDR && buf[0] < 0x04)
            tb_setup_on_stun(b, &b->flows[idx], buf, (size_t)n);
        if (idx != TB_EV_PEER && b->flows[idx].fd != fd)
            break;                  /* churn replaced the socket */
    }
}

static void
poll_once(struct tb_bench *b, int timeout_ms)
{
    struct epoll_event evs[256];
    int                n = epoll_wait(b->ep, evs, 256, timeout_ms);

    for (int i = 0; i < n; i++)
        drain(b, evs[i].data.u32);
}

int
tb_setup_run(struct tb_bench *b, int first, int n, int target,
    uint64_t until)
{
    int      next = first;
    uint64_t before = b->setup_failed, last_scan = 0;

    b->target = target;
    b->active = 0;
    b->reached = 0;
    while (tb_now() < until) {
        uint64_t now;

        while (b->active < b->inflight && next < first + n)
            start_flow(b, &b->flows[next++]);
        if (next >= first + n && b->active <= 0)
            break;
        poll_once(b, 5);
        now = tb_now();
        if (now - last_scan > 5000000) {
            check_timeouts(b, first, next - first, now);
            last_scan = now;
        }
    }
    /* Whatever is still open when time ran out has failed. */
    for (int i = first; i < first + n; i++) {
        struct tb_flow *f = &b->flows[i];

        if (f->state != target && f->state != FS_FAILED &&
            !(target == FS_DONE && f->state == FS_IDLE)) {
            f->state = FS_FAILED;
            b->setup_failed++;
        }
    }
    return (int)(b->setup_failed - before);
}

uint64_t
tb_churn(struct tb_bench *b, double seconds)
{
    uint64_t start = tb_now(), until = start + (uint64_t)(seconds * 1e9);
    uint64_t last_scan = 0;

    b->churn = 1;
    b->target = FS_DONE;
    b->active = 0;
    b->completed = 0;
    for (int i = 0; i < b->nflows; i++)
        start_flow(b, &b->flows[i]);
    while (tb_now() < until && b->active > 0) {
        uint64_t now;

        poll_once(b, 5);
        now = tb_now();
        if (now - last_scan > 5000000) {
            check_timeouts(b, 0, b->nflows, now);
            last_scan = now;
        }
    }
    /* Let the open transactions finish, ending with Refresh 0, so that
     * the server is left clean; they no longer count. */
    b->churn = 0;
    until = tb_now() + 2000000000ull;
    while (b->active > 0 && tb_now() < until) {
        poll_once(b, 5);
        check_timeouts(b, 0, b->nflows, tb_now());
    }
    return b->completed;
}

int
tb_raw_hello(struct tb_bench *b)
{
    uint8_t            buf[4 + sizeof(struct tb_payload)];
    struct tb_payload  p;
    uint8_t            seen_buf[2048];
    uint64_t           until = tb_now() + 2000000000ull;
    int                left = b->nflows;
    char              *seen;

    if ((seen = calloc((size_t)b->nflows, 1)) == NULL)
        return -1;
    memset(&p, 0, sizeof(p));
    p.magic = TB_MAGIC;
    p.seq = TB_SEQ_HELLO;
    while (left > 0 && tb_now() < until) {
        /* The peer first, so that the forwarder knows where to send. */
        p.flow = TB_FLOW_P2C;
        sendto(b->peer_fd, &p, sizeof(p), 0,
            (struct sockaddr *)&b->raw_peer, sizeof(b->raw_peer));
        usleep(1000);
        for (int i = 0; i < b->nflows; i++) {
            struct tb_flow *f = &b->flows[i];

            if (seen[i])
                continue;
            if (f->fd < 0 && tb_flow_open(b, f) != 0)
                goto out;
            f->chan = (uint16_t)(0x4000 + i % 0x1000);
            f->relayed = b->raw_peer;
            f->state = FS_READY;
            p.flow = (uint32_t)i;
            buf[0] = (uint8_t)(f->chan >> 8);
            buf[1] = (uint8_t)f->chan;
            buf[2] = 0;
            buf[3] = (uint8_t)sizeof(p);
            memcpy(buf + 4, &p, sizeof(p));
            send(f->fd, buf, sizeof(buf), 0);
        }
        usleep(20000);
        for (;;) {
            ssize_t           n = recv(b->peer_fd, seen_buf,
                sizeof(seen_buf), MSG_DONTWAIT);
            struct tb_payload q;

            if (n < 0)
                break;
            if ((size_t)n < sizeof(q))
                continue;
            memcpy(&q, seen_buf, sizeof(q));
            if (q.magic == TB_MAGIC && q.seq == TB_SEQ_HELLO &&
                (q.flow & TB_FLOW_MASK) < (uint32_t)b->nflows &&
                !seen[q.flow & TB_FLOW_MASK]) {
                seen[q.flow & TB_FLOW_MASK] = 1;
                left--;
            }
        }
    }
out:
    free(seen);
    return left == 0 ? 0 : -1;
}
