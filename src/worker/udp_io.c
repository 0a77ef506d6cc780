/* udp_io.c - the worker's only recvmmsg/sendmmsg, and the executor of the
 * core's commands.
 *
 * A callback reads up to WORKER_BATCH messages per recvmmsg, at most
 * WORKER_CALLS times, so that one busy socket cannot starve the others (the
 * events are level-triggered: what is left fires again).  With UDP GRO on
 * (listen and relay sockets, where the kernel has it) a message may carry
 * a run of one sender's datagrams of one size, the last possibly shorter,
 * with the size in a UDP_GRO control message: it is split back into its
 * datagrams in place (a client's goes to the core whole, as a run:
 * turn_core_on_client_run()).  Each datagram goes to the core with the
 * batch's `now`; the commands it queues are carried out in order at the end of
 * the callback, or earlier when the queue or the receive slots run out: a
 * slot stays taken until the commands pointing into it are carried out,
 * so the listen callback gathers up to WORKER_RX_SLOTS messages (or
 * RX_FLUSH_BYTES) before one flush while clients send GRO runs (else one
 * batch), which sends each relay socket's share
 * in one sendmmsg, and the relay callback reads every ready relay socket
 * (up to WORKER_RX_RELAY messages) before one flush (their datagrams for
 * clients then leave the listen socket together).
 * The queue is empty whenever a callback returns.
 * Sends are gathered and grouped per socket (one sendmmsg per socket and
 * flush) and, within a socket, per destination and source address in
 * command order; a run of datagrams of one size in such a flow leaves as one
 * UDP_SEGMENT (GSO) send of up to TX_GSO_SEGS datagrams, the last possibly
 * shorter.  Order per destination is kept; a relay open or close first
 * sends what is gathered, so order is kept where it matters.  Payloads are
 * sent from the receive buffers (iovec: header from the queue arena +
 * payload), never copied. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/udp.h>
#include <sys/epoll.h>

#include "master/log.h"
#include "rly_err.h"
#include "worker/worker.h"

#define RX_SLOT (WORKER_BUFSZ + WORKER_HEADROOM)
#define RX_MIN_FREE 16      /* fewer free receive slots: flush first */
#define RX_FLUSH_BYTES (512 * 1024)   /* as many received: flush first */

_Static_assert(TX_HSLOTS >= 2 * WORKER_QCMDS, "send hash at most half full");
_Static_assert(TURN_RUN_MAX <= TX_GSO_SEGS && TURN_RUN_BYTES <= TX_GSO_BYTES,
    "a run of the core is one GSO send");
_Static_assert(WORKER_QCMDS < TX_END, "entry indexes fit in 16 bits");

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Whether this kernel takes the UDP option opt (UDP_SEGMENT: Linux 4.18,
 * UDP_GRO: 5.0); asked once at start.  Without it the worker warns and
 * sends or receives one datagram per message. */
static int
udp_opt_probe(unsigned slot, int opt, int val, const char *what)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int ok, err;

    if (fd < 0)
        return 0;
    ok = setsockopt(fd, SOL_UDP, opt, &val, sizeof(val)) == 0;
    err = errno;
    close(fd);
    if (!ok)
        log_warn(log_get(), "worker %u: %s not available (%s): one "
            "datagram per message", slot, what, strerror(err));
    return ok;
}

void
udp_io_gro_on(struct worker *w, int fd)
{
    int one = 1;

    /* Cannot fail after the probe; if it did: one datagram per message. */
    if (w->rx->gro && fd >= 0)
        (void)setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
}

int
udp_io_init(struct worker *w)
{
    w->rx = calloc(1, sizeof(*w->rx));
    w->tx = calloc(1, sizeof(*w->tx));
    if (w->rx == NULL || w->tx == NULL)
        return -1;
    w->rx->data = malloc((size_t)WORKER_RX_SLOTS * RX_SLOT);
    if (w->rx->data == NULL)
        return -1;
    w->tx->gen = 1;
    w->tx->gso = udp_opt_probe(w->slot, UDP_SEGMENT, 1200,
        "UDP GSO (UDP_SEGMENT)");
    w->rx->gro = udp_opt_probe(w->slot, UDP_GRO, 1, "UDP GRO (UDP_GRO)");
    for (int f = 0; f < 2; f++)
        udp_io_gro_on(w, w->lfd[f]);
    for (int i = 0; i < WORKER_RX_SLOTS; i++) {
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

/* The first receive slot free for the next recvmmsg, below cap.  Slots
 * stay taken until the commands that point into them are carried out, so
 * that sends can wait for more datagrams (one sendmmsg per socket for
 * them all); with fewer than RX_MIN_FREE free below cap, or RX_FLUSH_BYTES
 * received into them, this flushes first. */
static unsigned
rx_room(struct worker *w, unsigned cap)
{
    if (w->rx->used + RX_MIN_FREE > cap || w->rx->bytes >= RX_FLUSH_BYTES)
        udp_io_flush(w);
    return w->rx->used;
}

/* The end of a recvmmsg's slots from base on, below cap. */
static unsigned
rx_end(unsigned base, unsigned cap)
{
    return base + WORKER_BATCH < cap ? base + WORKER_BATCH : cap;
}

/* One recvmmsg into the free receive slots from base on.  Returns the
 * count, 0 when nothing is waiting; the caller marks the slots used. */
static int
recv_batch(struct worker *w, int fd, int pktinfo, unsigned base,
    unsigned cap)
{
    struct udp_rx *rx = w->rx;
    unsigned       end = rx_end(base, cap);
    int            n;

    for (unsigned i = base; i < end; i++) {
        struct msghdr *h = &rx->msg[i].msg_hdr;

        h->msg_name = &rx->from[i];
        h->msg_namelen = sizeof(rx->from[i]);
        h->msg_iov = &rx->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = pktinfo || rx->gro ? rx->ctl[i].buf : NULL;
        h->msg_controllen = pktinfo || rx->gro ? sizeof(rx->ctl[i].buf) :
            0;
        h->msg_flags = 0;
    }
    do {
        n = recvmmsg(fd, rx->msg + base, end - base, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++)
        rx->bytes += rx->msg[base + i].msg_len;
    return n < 0 ? 0 : n;
}

/* What the control messages of h say: the local address a client datagram
 * was sent to (IP_PKTINFO / IPV6_PKTINFO; else the socket's bind address)
 * when local is not NULL, and the segment size of a GRO message (0: one
 * datagram). */
static uint32_t
rx_meta(const struct worker *w, const struct msghdr *h, int fam,
    struct addr *local)
{
    struct cmsghdr *c;
    uint32_t        seg = 0;
    int             have_local = 0;

    for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR((struct msghdr *)h,
        c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v;

            memcpy(&v, CMSG_DATA(c), sizeof(v));
            seg = v > 0 ? (uint32_t)v : 0;
        } else if (local == NULL) {
            continue;
        } else if (c->cmsg_level == IPPROTO_IP &&
            c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            addr_set4(local, (const uint8_t *)&pi.ipi_addr,
                w->rt->listen_port);
            have_local = 1;
        } else if (c->cmsg_level == IPPROTO_IPV6 &&
            c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            addr_set6(local, pi.ipi6_addr.s6_addr, w->rt->listen_port);
            have_local = 1;
        }
    }
    if (local != NULL && !have_local)
        *local = fam == RT_FAM_V4 ? w->rt->bind4 : w->rt->bind6;
    return seg;
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
        /* Gather beyond one batch only while clients send GRO runs: for
         * single datagrams, 64 slots a flush measured faster. */
        unsigned cap = w->rx->runs ? WORKER_RX_SLOTS : WORKER_BATCH;
        unsigned base = rx_room(w, cap);
        int      n = recv_batch(w, fd, 1, base, cap);
        int      runs = 0;

        if (n <= 0)
            break;
        worker_clock(w);
        worker_between_batches(w);
        for (unsigned i = base; i < base + (unsigned)n && !w->stopping; i++) {
            struct msghdr   *h = &w->rx->msg[i].msg_hdr;
            struct addr_path path;
            const uint8_t   *p = h->msg_iov->iov_base;
            uint32_t         left = w->rx->msg[i].msg_len, seg;

            if (addr_from_sockaddr(&path.remote, h->msg_name,
                h->msg_namelen) != 0)
                continue;
            seg = rx_meta(w, h, fam, &path.local);
            if (seg == 0 || seg >= left) {
                udp_io_room(w);
                check_core(w, turn_core_on_client(w->core, &path, p, left,
                    w->now, w->wall, &w->q, &drop), "client datagram");
                continue;
            }
            runs = 1;
            do {        /* a GRO message: the core takes it as a run */
                size_t used;

                udp_io_room(w);
                check_core(w, turn_core_on_client_run(w->core, &path, p,
                    seg, left, w->now, w->wall, &w->q, &used),
                    "client datagrams");
                p += used;
                left -= (uint32_t)used;
            } while (left > 0 && !w->stopping);
        }
        /* A flush on the way (a full queue) freed slots below base; the
         * ones of this batch are taken either way. */
        w->rx->used = base + (unsigned)n;
        w->rx->runs = runs;
        if ((unsigned)n < rx_end(base, cap) - base)
            break;
    }
    udp_io_flush(w);
    timer_update(w);
}

/* Reads one relay socket, named by port and family: a flush may close the
 * port, or close it and open it again for another allocation, so each call
 * looks the socket up afresh. */
static void
relay_read(struct worker *w, uint16_t port, int fam)
{
    enum turn_drop drop;

    for (int call = 0; call < WORKER_CALLS && !w->stopping; call++) {
        unsigned                 base = rx_room(w, WORKER_RX_RELAY);
        const struct relay_port *rp = &w->ports[port];
        struct atab_ref          ref = rp->ref;
        int                      n;

        if (!rp->open || rp->fd[fam] < 0 ||
            (n = recv_batch(w, rp->fd[fam], 0, base, WORKER_RX_RELAY)) <= 0)
            break;
        worker_clock(w);
        worker_between_batches(w);
        for (unsigned i = base; i < base + (unsigned)n && !w->stopping;
            i++) {
            struct msghdr  *h = &w->rx->msg[i].msg_hdr;
            struct addr     peer;
            const uint8_t  *p = h->msg_iov->iov_base;
            uint32_t        left = w->rx->msg[i].msg_len, seg;

            if (addr_from_sockaddr(&peer, h->msg_name, h->msg_namelen) != 0)
                continue;
            seg = rx_meta(w, h, 0, NULL);
            do {        /* each datagram of a GRO message, or the one */
                uint32_t len = seg > 0 && seg < left ? seg : left;

                udp_io_room(w);
                check_core(w, turn_core_on_peer(w->core, ref, port, &peer,
                    p, len, w->now, &w->q, &drop), "peer datagram");
                p += len;
                left -= len;
            } while (left > 0 && !w->stopping);
        }
        w->rx->used = base + (unsigned)n;
        if ((unsigned)n < rx_end(base, WORKER_RX_RELAY) - base)
            break;
    }
}

/* The epoll set is level-triggered, like libevent's own events: a socket
 * left readable is reported again on the next round. */
void
udp_io_relay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker      *w = arg;
    struct epoll_event  ev[RELAY_EVENTS];
    int                 n;

    do {
        n = epoll_wait(fd, ev, RELAY_EVENTS, 0);
    } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n && !w->stopping; i++)
        relay_read(w, RELAY_EV_PORT(ev[i].data.u32),
            RELAY_EV_FAM(ev[i].data.u32));
    /* The sends of all the sockets read, together: the peers' datagrams
     * for clients leave the listen socket in one sendmmsg. */
    udp_io_flush(w);
    timer_update(w);
}

/* --- Sending --- */

static uint32_t
hash_fd(int fd)
{
    return (uint32_t)fd * 2654435761u;
}

static uint32_t
hash_addr(uint32_t h, const struct addr *a)
{
    size_t n = a->family == ADDR_V6 ? 16 : 4;

    h = (h ^ ((uint32_t)a->family << 16 | a->port)) * 16777619u;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t x;

        memcpy(&x, a->ip + i, 4);
        h = (h ^ x) * 16777619u;
    }
    return h;
}

static int
same_local(const struct addr *a, const struct addr *b)
{
    return a->family == b->family &&
        (a->family == ADDR_NONE || addr_ip_eq(a, b));
}

/* Packet info naming the source address (a listen socket bound to a
 * wildcard address must answer from the address the client used) at c.
 * Returns the control bytes used. */
static socklen_t
put_pktinfo(struct cmsghdr *c, const struct addr *local)
{
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

/* Builds message m of the socket being sent from the flow's entries
 * starting at e: one datagram, or a run of one size (the last may be
 * shorter) as one UDP_SEGMENT send.  Returns the entry after the run. */
static unsigned
build_msg(struct udp_tx *tx, unsigned m, unsigned *niov, unsigned e)
{
    struct tx_ent  *first = &tx->ent[e];
    struct msghdr  *h = &tx->msg[m].msg_hdr;
    char           *ctl = tx->ctl[m].buf;
    uint32_t        seg = first->len, bytes = 0;
    unsigned        nseg = 0, iov0 = *niov;
    socklen_t       ctllen;
    int             gso = tx->gso && !*first->nogso && seg > 0;

    for (;;) {
        const struct tx_ent *x = &tx->ent[e];
        uint32_t             last;

        if (x->nseg > 1) {      /* a run of the core: all of it */
            const uint8_t *base = x->iov[0].iov_base;

            for (unsigned k = 0; k < x->nseg; k++) {
                tx->iov[*niov].iov_base = (void *)(base + (size_t)k *
                    x->stride);
                tx->iov[(*niov)++].iov_len = k + 1 == x->nseg ?
                    x->lastlen : x->len;
            }
            bytes += (x->nseg - 1u) * x->len + x->lastlen;
            nseg += x->nseg;
            last = x->lastlen;
        } else {
            for (unsigned k = 0; k < x->iovn; k++)
                tx->iov[(*niov)++] = x->iov[k];
            bytes += x->len;
            nseg++;
            last = x->len;
        }
        e = x->next;
        if (!gso || last < seg || e == TX_END || nseg == TX_GSO_SEGS)
            break;
        /* The next joins whole, or not at all: a datagram no longer than
         * seg, or a run whose datagrams but the last are seg long. */
        x = &tx->ent[e];
        if (x->len == 0 || x->len > seg || (x->nseg > 1 && x->len != seg) ||
            nseg + x->nseg > TX_GSO_SEGS ||
            bytes + (x->nseg - 1u) * x->len +
            (x->nseg > 1 ? x->lastlen : x->len) > TX_GSO_BYTES)
            break;
    }
    memset(ctl, 0, sizeof(tx->ctl[m].buf));
    ctllen = put_pktinfo((struct cmsghdr *)ctl, &first->local);
    if (nseg > 1) {
        struct cmsghdr *c = (struct cmsghdr *)(ctl + ctllen);
        uint16_t        s16 = (uint16_t)seg;

        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(s16));
        memcpy(CMSG_DATA(c), &s16, sizeof(s16));
        ctllen += CMSG_SPACE(sizeof(s16));
    }
    h->msg_name = &first->to;
    h->msg_namelen = first->tolen;
    h->msg_iov = &tx->iov[iov0];
    h->msg_iovlen = *niov - iov0;
    h->msg_control = ctllen > 0 ? ctl : NULL;
    h->msg_controllen = ctllen;
    h->msg_flags = 0;
    tx->mfirst[m] = (uint16_t)(first - tx->ent);
    tx->mnseg[m] = (uint16_t)nseg;
    return e;
}

/* Sends the nseg datagrams from entry e one message each (a GSO send the
 * kernel refused).  Counts each failure. */
static void
send_plain(struct worker *w, int fd, unsigned e, unsigned nseg, char *ctl)
{
    struct udp_tx  *tx = w->tx;
    unsigned        i = 0, n = 0;
    socklen_t       pilen;

    pilen = put_pktinfo((struct cmsghdr *)ctl, &tx->ent[e].local);
    for (; n < nseg && e != TX_END; e = tx->ent[e].next) {
        struct tx_ent *x = &tx->ent[e];

        for (unsigned k = 0; k < x->nseg && n < nseg; k++, n++) {
            struct msghdr *h = &tx->pmsg[n].msg_hdr;

            h->msg_name = &x->to;
            h->msg_namelen = x->tolen;
            if (x->nseg > 1) {          /* a run: datagram k of it */
                tx->piov[n].iov_base = (uint8_t *)x->iov[0].iov_base +
                    (size_t)k * x->stride;
                tx->piov[n].iov_len = k + 1 == x->nseg ? x->lastlen :
                    x->len;
                h->msg_iov = &tx->piov[n];
                h->msg_iovlen = 1;
            } else {
                h->msg_iov = x->iov;
                h->msg_iovlen = x->iovn;
            }
            h->msg_control = pilen > 0 ? ctl : NULL;
            h->msg_controllen = pilen;
            h->msg_flags = 0;
        }
    }
    while (i < n) {
        int r = sendmmsg(fd, &tx->pmsg[i], n - i, MSG_DONTWAIT);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            TURN_STAT_INC(w->stats->dropped[TURN_DROP_SEND_ERROR]);
            r = 1;
        }
        i += (unsigned)r;
    }
}

/* Sends one socket's messages 0..nm-1.  A message the kernel refuses is
 * dropped (send_error per datagram) and the rest go on; a GSO send refused
 * with EINVAL (a segment above the route's MTU, say) or EIO (no checksum
 * offload: GSO then stays off for this socket) goes again one datagram
 * each. */
static void
send_msgs(struct worker *w, int fd, unsigned nm)
{
    struct udp_tx  *tx = w->tx;
    unsigned        i = 0;

    while (i < nm) {
        int r = sendmmsg(fd, &tx->msg[i], nm - i, MSG_DONTWAIT);

        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            i += (unsigned)r;
            continue;
        }
        if (tx->mnseg[i] > 1 && (errno == EIO || errno == EINVAL)) {
            if (errno == EIO)
                *tx->ent[tx->mfirst[i]].nogso = 1;
            send_plain(w, fd, tx->mfirst[i], tx->mnseg[i], tx->ctl[i].buf);
        } else {
            for (unsigned k = 0; k < tx->mnseg[i]; k++)
                TURN_STAT_INC(w->stats->dropped[TURN_DROP_SEND_ERROR]);
        }
        i++;
    }
}

/* Sends everything gathered: one sendmmsg (or as few as the kernel takes)
 * per socket, the flows of a socket in order of first appearance. */
static void
tx_flush(struct worker *w)
{
    struct udp_tx *tx = w->tx;

    for (unsigned s = 0; s < tx->nsock; s++) {
        unsigned nm = 0, niov = 0;

        for (unsigned f = tx->sock[s].first; f != TX_END;
            f = tx->flow[f].next) {
            unsigned e = tx->flow[f].first;

            while (e != TX_END) {
                if (nm == WORKER_QCMDS) {       /* cannot happen: n <= it */
                    send_msgs(w, tx->sock[s].fd, nm);
                    nm = niov = 0;
                }
                e = build_msg(tx, nm++, &niov, e);
            }
        }
        send_msgs(w, tx->sock[s].fd, nm);
    }
    tx->n = tx->nflow = tx->nsock = tx->niovs = 0;
    if (++tx->gen == 0) {       /* wrapped: forget every slot */
        memset(tx->fgen, 0, sizeof(tx->fgen));
        memset(tx->sgen, 0, sizeof(tx->sgen));
        tx->gen = 1;
    }
}

/* The socket group of fd, created at the end when new. */
static unsigned
tx_sock_of(struct udp_tx *tx, int fd)
{
    uint32_t h = hash_fd(fd) >> (32 - TX_HBITS);
    unsigned s;

    for (;; h = (h + 1) & (TX_HSLOTS - 1)) {
        if (tx->sgen[h] != tx->gen)
            break;
        if (tx->sock[tx->sidx[h]].fd == fd)
            return tx->sidx[h];
    }
    s = tx->nsock++;
    tx->sgen[h] = tx->gen;
    tx->sidx[h] = (uint16_t)s;
    tx->sock[s].fd = fd;
    tx->sock[s].first = tx->sock[s].last = TX_END;
    return s;
}

/* Appends entry k to its flow (socket, destination, source). */
static void
tx_link(struct udp_tx *tx, unsigned k)
{
    struct tx_ent  *x = &tx->ent[k];
    uint32_t        h = hash_addr(hash_addr(hash_fd(x->fd), &x->remote),
        &x->local);
    unsigned        f, s;

    x->next = TX_END;
    for (h &= TX_HSLOTS - 1;; h = (h + 1) & (TX_HSLOTS - 1)) {
        const struct tx_ent *y;

        if (tx->fgen[h] != tx->gen)
            break;
        f = tx->fidx[h];
        y = &tx->ent[tx->flow[f].first];
        if (y->fd == x->fd && addr_eq(&y->remote, &x->remote) &&
            same_local(&y->local, &x->local)) {
            x->flow = (uint16_t)f;
            tx->ent[tx->flow[f].last].next = (uint16_t)k;
            tx->flow[f].last = (uint16_t)k;
            return;
        }
    }
    f = tx->nflow++;
    x->flow = (uint16_t)f;
    tx->fgen[h] = tx->gen;
    tx->fidx[h] = (uint16_t)f;
    tx->flow[f].first = tx->flow[f].last = (uint16_t)k;
    tx->flow[f].next = TX_END;
    s = tx_sock_of(tx, x->fd);
    if (tx->sock[s].first == TX_END)
        tx->sock[s].first = (uint16_t)f;
    else
        tx->flow[tx->sock[s].last].next = (uint16_t)f;
    tx->sock[s].last = (uint16_t)f;
}

/* Gathers one send of cmd on fd; local: the source address to set, or
 * NULL.  nogso: the socket's GSO-off flag. */
static void
tx_add(struct worker *w, int fd, uint8_t *nogso, const struct turn_cmd *cmd,
    int with_local)
{
    struct udp_tx  *tx = w->tx;
    struct tx_ent  *x, *prev;
    unsigned        iovn = 0;
    int             local = with_local &&
        cmd->path.local.family == cmd->path.remote.family &&
        !addr_is_unspecified(&cmd->path.local);

    if (tx->n == WORKER_QCMDS ||
        tx->niovs + (cmd->nseg > 1 ? cmd->nseg : 2u) > 2 * WORKER_QCMDS)
        tx_flush(w);
    x = &tx->ent[tx->n];
    x->fd = fd;
    x->nogso = nogso;
    prev = tx->n > 0 ? x - 1 : NULL;
    if (prev != NULL && prev->fd == fd &&
        addr_eq(&prev->remote, &cmd->path.remote) &&
        (local ? same_local(&prev->local, &cmd->path.local) :
        prev->local.family == ADDR_NONE)) {
        /* Same flow as the datagram before (the common case: a run from
         * one sender): no conversion, no hashing. */
        memcpy(&x->to, &prev->to, prev->tolen);
        x->tolen = prev->tolen;
        x->remote = prev->remote;
        x->local = prev->local;
        x->flow = prev->flow;
        x->next = TX_END;
        prev->next = (uint16_t)tx->n;
        tx->flow[x->flow].last = (uint16_t)tx->n;
        tx->n++;
        goto payload;
    }
    if (fd < 0 || (x->tolen = addr_to_sockaddr(&cmd->path.remote,
        &x->to)) == 0) {
        TURN_STAT_INC(w->stats->dropped[TURN_DROP_SEND_ERROR]);
        return;
    }
    x->remote = cmd->path.remote;
    if (local)
        x->local = cmd->path.local;
    else
        x->local.family = ADDR_NONE;
    tx_link(tx, tx->n++);
payload:
    if (cmd->hdrlen > 0) {
        x->iov[iovn].iov_base = (void *)cmd->hdr;
        x->iov[iovn++].iov_len = cmd->hdrlen;
    }
    if (cmd->paylen > 0) {
        x->iov[iovn].iov_base = (void *)cmd->payload;
        x->iov[iovn++].iov_len = cmd->paylen;
    }
    x->iovn = (uint16_t)iovn;
    x->len = (uint32_t)(cmd->hdrlen + cmd->paylen);
    x->nseg = 1;
    if (cmd->nseg > 1 && cmd->hdrlen == 0) {
        x->nseg = cmd->nseg;
        x->stride = cmd->stride;
        x->lastlen = (uint32_t)cmd->lastlen;
    }
    tx->niovs += x->nseg > 1 ? x->nseg : iovn;
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
        case TURN_CMD_SEND_CLIENT: {
            int fam = fam_of(&c->path.remote);

            tx_add(w, w->lfd[fam], &w->lnogso[fam], c, 1);
            break;
        }
        case TURN_CMD_SEND_PEER: {
            int                 fam = fam_of(&c->path.remote);
            struct relay_port  *rp = &w->ports[c->port];
            int                 fd = rp->open ? rp->fd[fam] : -1;
            uint8_t            *nogso = rp->open ? &rp->nogso[fam] : NULL;

            if (c->nseg > 1 && (fd < 0 || !w->tx->gso || *nogso)) {
                /* A run where it cannot leave as one GSO send: one
                 * datagram each (each failure counted). */
                struct turn_cmd one = *c;

                one.nseg = 0;
                for (unsigned k = 0; k < c->nseg; k++) {
                    one.payload = c->payload + (size_t)k * c->stride;
                    one.paylen = k + 1 == c->nseg ? c->lastlen : c->paylen;
                    tx_add(w, fd, nogso, &one, 0);
                }
            } else {
                tx_add(w, fd, nogso, c, 0);
            }
            break;
        }
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
    w->rx->used = 0;    /* nothing queued points into a slot any more */
    w->rx->bytes = 0;
}

void
udp_io_room(struct worker *w)
{
    if (!turn_cmdq_room(&w->q))
        udp_io_flush(w);
}
