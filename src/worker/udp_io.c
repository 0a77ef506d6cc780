/* udp_io.c - the worker's only recvmmsg/sendmmsg, and the executor of the
 * core's commands.
 *
 * A callback reads up to WORKER_BATCH datagrams per recvmmsg, at most
 * WORKER_CALLS times, so that one busy socket cannot starve the others (the
 * events are level-triggered: what is left fires again).  Each datagram
 * goes to the core with the batch's `now`; the commands it queues are
 * carried out in order after the batch, or earlier when the queue fills.
 * Sends are gathered and go out with one sendmmsg per run of commands on
 * the same socket; a relay open or close first sends what is gathered, so
 * order is kept where it matters.  Payloads are sent from the receive
 * buffers (iovec: header from the queue arena + payload), never copied. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/log.h"
#include "rly_err.h"
#include "worker/worker.h"

#define RX_SLOT (WORKER_BUFSZ + WORKER_HEADROOM)

int
udp_io_init(struct worker *w)
{
    w->rx = calloc(1, sizeof(*w->rx));
    w->tx = calloc(1, sizeof(*w->tx));
    if (w->rx == NULL || w->tx == NULL)
        return -1;
    w->rx->data = malloc((size_t)WORKER_BATCH * RX_SLOT);
    if (w->rx->data == NULL)
        return -1;
    for (int i = 0; i < WORKER_BATCH; i++) {
        w->rx->iov[i].iov_base = w->rx->data + (size_t)i * RX_SLOT +
            WORKER_HEADROOM;
        w->rx->iov[i].iov_len = WORKER_BUFSZ;
    }
    return 0;
}

void
udp_io_fini(struct worker *w)
{
    if (w->rx != NULL)
        free(w->rx->data);
    free(w->rx);
    free(w->tx);
    w->rx = NULL;
    w->tx = NULL;
}

/* One recvmmsg into the receive slots.  Returns the count, 0 when nothing
 * is waiting. */
static int
recv_batch(struct worker *w, int fd, int pktinfo)
{
    struct udp_rx *rx = w->rx;
    int            n;

    for (int i = 0; i < WORKER_BATCH; i++) {
        struct msghdr *h = &rx->msg[i].msg_hdr;

        h->msg_name = &rx->from[i];
        h->msg_namelen = sizeof(rx->from[i]);
        h->msg_iov = &rx->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = pktinfo ? rx->ctl[i].buf : NULL;
        h->msg_controllen = pktinfo ? sizeof(rx->ctl[i].buf) : 0;
        h->msg_flags = 0;
    }
    do {
        n = recvmmsg(fd, rx->msg, WORKER_BATCH, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? 0 : n;
}

/* The local address a client datagram was sent to (IP_PKTINFO /
 * IPV6_PKTINFO), else the socket's bind address. */
static void
local_addr(const struct worker *w, const struct msghdr *h, int fam,
    struct addr *out)
{
    struct cmsghdr *c;

    for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR((struct msghdr *)h,
        c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            addr_set4(out, (const uint8_t *)&pi.ipi_addr,
                w->rt->listen_port);
            return;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            addr_set6(out, pi.ipi6_addr.s6_addr, w->rt->listen_port);
            return;
        }
    }
    *out = fam == RT_FAM_V4 ? w->rt->bind4 : w->rt->bind6;
}

static void
check_core(struct worker *w, int rc, const char *what)
{
    if (rly_is_fatal(rc))
        worker_fatal(w, what, rc);
}

void
udp_io_listen_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker  *w = arg;
    int             fam = fd == w->lfd[RT_FAM_V6] ? RT_FAM_V6 : RT_FAM_V4;
    enum turn_drop  drop;

    for (int call = 0; call < WORKER_CALLS && !w->stopping; call++) {
        int n = recv_batch(w, fd, 1);

        if (n <= 0)
            break;
        worker_clock(w);
        worker_between_batches(w);
        for (int i = 0; i < n && !w->stopping; i++) {
            struct msghdr   *h = &w->rx->msg[i].msg_hdr;
            struct addr_path path;

            if (addr_from_sockaddr(&path.remote, h->msg_name,
                h->msg_namelen) != 0)
                continue;
            local_addr(w, h, fam, &path.local);
            udp_io_room(w);
            check_core(w, turn_core_on_client(w->core, &path,
                h->msg_iov->iov_base, w->rx->msg[i].msg_len, w->now,
                w->wall, &w->q, &drop), "client datagram");
        }
        udp_io_flush(w);
        if (n < WORKER_BATCH)
            break;
    }
    timer_update(w);
}

void
udp_io_relay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct relay_sock  *rs = arg;
    struct relay_port  *rp = rs->rp;
    struct worker      *w = rp->w;
    struct atab_ref     ref = rp->ref;
    uint16_t            port = rp->port;
    enum turn_drop      drop;

    for (int call = 0; call < WORKER_CALLS && !w->stopping; call++) {
        int n = recv_batch(w, fd, 0);

        if (n <= 0)
            break;
        worker_clock(w);
        worker_between_batches(w);
        for (int i = 0; i < n && !w->stopping; i++) {
            struct msghdr  *h = &w->rx->msg[i].msg_hdr;
            struct addr     peer;

            if (addr_from_sockaddr(&peer, h->msg_name, h->msg_namelen) != 0)
                continue;
            udp_io_room(w);
            check_core(w, turn_core_on_peer(w->core, ref, port, &peer,
                h->msg_iov->iov_base, w->rx->msg[i].msg_len, w->now,
                &w->q, &drop), "peer datagram");
        }
        udp_io_flush(w);
        /* A flush may have closed this very socket (rs is then freed). */
        if (n < WORKER_BATCH || w->ports[port] == NULL ||
            (w->ports[port]->s[0].fd != fd && w->ports[port]->s[1].fd != fd))
            break;
    }
    timer_update(w);
}

/* --- Sending --- */

/* Sends the gathered messages, one sendmmsg per run of the same socket.  A
 * message the kernel refuses is dropped (send_error) and the rest go on. */
static void
tx_flush(struct worker *w)
{
    struct udp_tx *tx = w->tx;
    unsigned       i = 0;

    while (i < tx->n) {
        unsigned run = 1;
        int      r;

        while (i + run < tx->n && tx->fd[i + run] == tx->fd[i])
            run++;
        while (run > 0) {
            r = sendmmsg(tx->fd[i], &tx->msg[i], run, MSG_DONTWAIT);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                TURN_STAT_INC(w->stats->dropped[TURN_DROP_SEND_ERROR]);
                r = 1;
            }
            i += (unsigned)r;
            run -= (unsigned)r;
        }
    }
    tx->n = 0;
}

/* Packet info naming the source address (a listen socket bound to a
 * wildcard address must answer from the address the client used). */
static socklen_t
set_pktinfo(struct udp_tx *tx, unsigned k, const struct addr *local)
{
    struct cmsghdr *c = (struct cmsghdr *)tx->ctl[k].buf;

    memset(tx->ctl[k].buf, 0, sizeof(tx->ctl[k].buf));
    if (local->family == ADDR_V4) {
        struct in_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        memcpy(&pi.ipi_spec_dst, local->ip, 4);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        return CMSG_SPACE(sizeof(pi));
    }
    if (local->family == ADDR_V6) {
        struct in6_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        memcpy(pi.ipi6_addr.s6_addr, local->ip, 16);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        return CMSG_SPACE(sizeof(pi));
    }
    return 0;
}

/* Gathers one send of cmd on fd; with_local: set the source address. */
static void
tx_add(struct worker *w, int fd, const struct turn_cmd *cmd, int with_local)
{
    struct udp_tx  *tx = w->tx;
    struct msghdr  *h;
    socklen_t       tolen, ctllen = 0;
    unsigned        k;
    int             iovn = 0;

    if (tx->n == WORKER_QCMDS)
        tx_flush(w);
    k = tx->n;
    tolen = addr_to_sockaddr(&cmd->path.remote, &tx->to[k]);
    if (fd < 0 || tolen == 0) {
        TURN_STAT_INC(w->stats->dropped[TURN_DROP_SEND_ERROR]);
        return;
    }
    if (with_local && cmd->path.local.family == cmd->path.remote.family &&
        !addr_is_unspecified(&cmd->path.local))
        ctllen = set_pktinfo(tx, k, &cmd->path.local);
    if (cmd->hdrlen > 0) {
        tx->iov[k][iovn].iov_base = (void *)cmd->hdr;
        tx->iov[k][iovn++].iov_len = cmd->hdrlen;
    }
    if (cmd->paylen > 0) {
        tx->iov[k][iovn].iov_base = (void *)cmd->payload;
        tx->iov[k][iovn++].iov_len = cmd->paylen;
    }
    h = &tx->msg[k].msg_hdr;
    h->msg_name = &tx->to[k];
    h->msg_namelen = tolen;
    h->msg_iov = tx->iov[k];
    h->msg_iovlen = (size_t)iovn;
    h->msg_control = ctllen > 0 ? tx->ctl[k].buf : NULL;
    h->msg_controllen = ctllen;
    h->msg_flags = 0;
    tx->fd[k] = fd;
    tx->n++;
}

static int
fam_of(const struct addr *a)
{
    return a->family == ADDR_V6 ? RT_FAM_V6 : RT_FAM_V4;
}

static void
exec_open(struct worker *w, const struct turn_cmd *c)
{
    struct relay_result *r;
    int                  rc;

    tx_flush(w);
    rc = relay_open(w, c->port, c->families, c->ref);
    RLY_BUG_ON(w->npending >= sizeof(w->pending) / sizeof(w->pending[0]));
    r = &w->pending[w->npending++];
    r->ref = c->ref;
    r->ok = rc == 0;
    r->err = rc == 0 ? 0 : errno;
}

/* XDP offload: hands the queue's channel events to the master before
 * anything of the queue is carried out, so that an unbind reaches the maps
 * before the response that confirms it leaves (docs/xdp.md).  Never
 * blocks: a full ring drops the event and counts it, and the master then
 * rebuilds the maps from the table. */
static void
report_channels(struct worker *w)
{
    struct chan_ring_rec    rec;
    uint64_t                one = 1;
    int                     any = 0;

    for (size_t i = 0; i < w->q.n; i++) {
        if (chan_ring_from_cmd(&w->q.cmd[i], &rec)) {
            (void)chan_ring_push(w->ring, &rec);
            any = 1;
        }
    }
    if (any && write(w->ring_efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the master is awake anyway */
    }
}

/* Carries out the queued commands in order. */
static void
execute(struct worker *w)
{
    if (w->ring != NULL)
        report_channels(w);
    for (size_t i = 0; i < w->q.n; i++) {
        const struct turn_cmd *c = &w->q.cmd[i];

        switch (c->kind) {
        case TURN_CMD_SEND_CLIENT:
            tx_add(w, w->lfd[fam_of(&c->path.remote)], c, 1);
            break;
        case TURN_CMD_SEND_PEER:
            tx_add(w, relay_fd(w, c->port, fam_of(&c->path.remote)), c, 0);
            break;
        case TURN_CMD_RELAY_OPEN:
            exec_open(w, c);
            break;
        case TURN_CMD_RELAY_CLOSE:
            tx_flush(w);
            relay_close(w, c->port);
            break;
        case TURN_CMD_CHAN_BOUND:
        case TURN_CMD_CHAN_UNBOUND:
            break;      /* reported to the master above (XDP offload) */
        }
    }
    tx_flush(w);
}

/* Reports relay-open results while the queue has room; keeps the rest. */
static void
report_pending(struct worker *w)
{
    unsigned i = 0;

    while (i < w->npending && turn_cmdq_room(&w->q) && !w->fatal) {
        const struct relay_result *r = &w->pending[i++];

        check_core(w, turn_core_on_relay_opened(w->core, r->ref, r->ok,
            r->ok ? NULL : strerror(r->err), w->now, &w->q),
            "relay open result");
    }
    memmove(w->pending, w->pending + i,
        (w->npending - i) * sizeof(w->pending[0]));
    w->npending -= i;
}

void
udp_io_flush(struct worker *w)
{
    do {
        execute(w);
        turn_cmdq_reset(&w->q);
        report_pending(w);
    } while ((w->q.n > 0 || w->npending > 0) && !w->fatal);
}

void
udp_io_room(struct worker *w)
{
    if (!turn_cmdq_room(&w->q))
        udp_io_flush(w);
}
