/* udpfwd.c - minimal two-socket UDP forwarder: the kernel-limit reference
 * for the relay benchmarks (issue 7).
 *
 *   udpfwd [--client-side IP:PORT] [--peer-side IP:PORT] [--gso] [--gro]
 *          [--max-seconds S]
 *
 * Datagrams on the client side are ChannelData: the 4-byte header is
 * stripped and the payload goes out of the peer side to the peer (the
 * last address heard there).  Datagrams on the peer side get a ChannelData
 * header and go out of the client side to the client of their flow.
 * There is no TURN: the flow is read from the benchmark payload
 * (struct tb_payload), where a relay would look up its channel tables.
 * Batches use recvmmsg/sendmmsg like the relay; with --gso, runs of
 * datagrams of one size to one address leave as one UDP_SEGMENT send;
 * with --gro, both sockets take UDP_GRO and a message carrying a run of
 * datagrams is split by its segment size (the relay's I/O mode).
 * Prints "client=IP:PORT peer=IP:PORT" once bound; exits on SIGTERM,
 * SIGINT or after --max-seconds (3600). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tb.h"

#define BATCH       64
#define CALLS       8
#define SLOT        65536
#define MAX_FLOWS   65536
#define GSO_MAX     64
#define MAX_TX      (BATCH * GSO_MAX)   /* datagrams of one receive */

struct fwd_client {
    struct sockaddr_in  addr;
    uint16_t            chan;
    uint8_t             known;
};

struct fwd {
    int                 fd[2];          /* 0 client side, 1 peer side */
    int                 gso, gro;
    struct sockaddr_in  peer;
    int                 peer_known;
    struct fwd_client  *clients;
    uint8_t            *buf;
    struct mmsghdr      rx[BATCH];
    struct iovec        rx_iov[BATCH];
    struct sockaddr_in  from[BATCH];
    union {
        char            buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr  align;
    }                   rx_ctl[BATCH];
    /* Datagrams to send: destination, length, and their iovecs (a header
     * from hdr, then the payload), consecutive in tx_iov. */
    struct sockaddr_in *tx_to[MAX_TX];
    uint32_t            tx_len[MAX_TX], tx_iov0[MAX_TX];
    uint8_t             hdr[MAX_TX][4];
    struct iovec        tx_iov[2 * MAX_TX];
    struct mmsghdr      msgs[MAX_TX];
    union {
        char            buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr  align;
    }                   ctl[MAX_TX];
    int                 ntx, niov;
    uint64_t            in, out, dropped;
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int
open_side(const char *spec, int *fd_out)
{
    struct sockaddr_in sin;
    int                fd, size = 4 << 20;

    if (tb_parse_addr(spec, &sin) != 0)
        return -1;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fprintf(stderr, "udpfwd: bind %s: %s\n", spec, strerror(errno));
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

static void
print_side(const char *name, int fd)
{
    struct sockaddr_in sin;
    socklen_t          len = sizeof(sin);
    char               ip[INET_ADDRSTRLEN];

    getsockname(fd, (struct sockaddr *)&sin, &len);
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
    printf("%s=%s:%u", name, ip, ntohs(sin.sin_port));
}

static int
same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_port == b->sin_port &&
        a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* Sends the queued datagrams out of fd, merging runs of one size to one
 * address into GSO sends when asked. */
static void
flush(struct fwd *w, int fd)
{
    struct mmsghdr *out = w->msgs;
    int             nout = 0, done = 0;

    for (int i = 0; i < w->ntx;) {
        struct msghdr *h = &out[nout].msg_hdr;
        uint32_t       seg = w->tx_len[i], bytes = seg;
        int            j = i + 1;

        if (w->gso) {
            while (j < w->ntx && j - i < GSO_MAX && w->tx_len[j] <= seg &&
                bytes + w->tx_len[j] <= 65000 &&
                same_addr(w->tx_to[j], w->tx_to[i])) {
                bytes += w->tx_len[j];
                j++;
                if (w->tx_len[j - 1] < seg)
                    break;      /* a shorter one ends the run */
            }
        }
        memset(h, 0, sizeof(*h));
        h->msg_name = w->tx_to[i];
        h->msg_namelen = sizeof(struct sockaddr_in);
        h->msg_iov = &w->tx_iov[w->tx_iov0[i]];
        h->msg_iovlen = (j < w->ntx ? w->tx_iov0[j] : (uint32_t)w->niov) -
            w->tx_iov0[i];
        if (j - i > 1) {
            struct cmsghdr *cm;
            uint16_t        s = (uint16_t)seg;

            h->msg_control = w->ctl[nout].buf;
            h->msg_controllen = sizeof(w->ctl[nout].buf);
            cm = CMSG_FIRSTHDR(h);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(s));
            memcpy(CMSG_DATA(cm), &s, sizeof(s));
        }
        nout++;
        i = j;
    }
    while (done < nout) {
        int r = sendmmsg(fd, out + done, (unsigned)(nout - done), 0);

        if (r <= 0) {
            w->dropped += (uint64_t)(nout - done);
            break;
        }
        done += r;
    }
    w->out += (uint64_t)w->ntx;
    w->ntx = w->niov = 0;
}

/* Queues one datagram: the 4 bytes at hdr (or none), then len bytes at p. */
static void
queue(struct fwd *w, struct sockaddr_in *to, const uint8_t *hdr, uint8_t *p,
    size_t len)
{
    int k = w->ntx++;

    w->tx_to[k] = to;
    w->tx_iov0[k] = (uint32_t)w->niov;
    w->tx_len[k] = (uint32_t)len + (hdr != NULL ? 4 : 0);
    if (hdr != NULL) {
        memcpy(w->hdr[k], hdr, 4);
        w->tx_iov[w->niov].iov_base = w->hdr[k];
        w->tx_iov[w->niov++].iov_len = 4;
    }
    w->tx_iov[w->niov].iov_base = p;
    w->tx_iov[w->niov++].iov_len = len;
}

/* Flow of a benchmark payload, or -1. */
static int
flow_of(const uint8_t *p, size_t len)
{
    struct tb_payload h;

    if (len < sizeof(h))
        return -1;
    memcpy(&h, p, sizeof(h));
    if (h.magic != TB_MAGIC || (h.flow & TB_FLOW_MASK) >= MAX_FLOWS)
        return -1;
    return (int)(h.flow & TB_FLOW_MASK);
}

static void
from_client(struct fwd *w, int i, uint8_t *d, size_t n)
{
    size_t len;
    int    flow;

    if (n < 4 || d[0] < 0x40 || d[0] > 0x7f ||
        (len = (size_t)(d[2] << 8 | d[3])) > n - 4) {
        w->dropped++;
        return;
    }
    if ((flow = flow_of(d + 4, len)) >= 0) {
        w->clients[flow].addr = w->from[i];
        w->clients[flow].chan = (uint16_t)(d[0] << 8 | d[1]);
        w->clients[flow].known = 1;
    }
    if (!w->peer_known) {
        w->dropped++;
        return;
    }
    queue(w, &w->peer, NULL, d + 4, len);
}

static void
from_peer(struct fwd *w, int i, uint8_t *d, size_t n)
{
    int     flow = flow_of(d, n);
    uint8_t h[4];

    w->peer = w->from[i];
    w->peer_known = 1;
    if (flow < 0 || !w->clients[flow].known || n > 0xffff - 4) {
        w->dropped++;
        return;
    }
    h[0] = (uint8_t)(w->clients[flow].chan >> 8);
    h[1] = (uint8_t)w->clients[flow].chan;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    queue(w, &w->clients[flow].addr, h, d, n);
}

static void
on_readable(struct fwd *w, int side)
{
    for (int call = 0; call < CALLS; call++) {
        int n;

        for (int i = 0; i < BATCH; i++) {
            struct msghdr *h = &w->rx[i].msg_hdr;

            w->rx_iov[i].iov_base = w->buf + (size_t)i * SLOT;
            w->rx_iov[i].iov_len = SLOT;
            memset(h, 0, sizeof(*h));
            h->msg_name = &w->from[i];
            h->msg_namelen = sizeof(w->from[i]);
            h->msg_iov = &w->rx_iov[i];
            h->msg_iovlen = 1;
            if (w->gro) {
                h->msg_control = w->rx_ctl[i].buf;
                h->msg_controllen = sizeof(w->rx_ctl[i].buf);
            }
        }
        n = recvmmsg(w->fd[side], w->rx, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            uint8_t *d = w->rx_iov[i].iov_base;
            uint32_t left = w->rx[i].msg_len;
            uint32_t seg = w->gro ? tb_gro_size(&w->rx[i].msg_hdr) : 0;

            do {
                uint32_t len = seg > 0 && seg < left ? seg : left;

                w->in++;
                if (side == 0)
                    from_client(w, i, d, len);
                else
                    from_peer(w, i, d, len);
                d += len;
                left -= len;
            } while (left > 0);
        }
        flush(w, w->fd[!side]);
        if (n < BATCH)
            return;
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "client-side", 1, NULL, 'a' }, { "peer-side", 1, NULL, 'b' },
        { "gso", 0, NULL, 'g' }, { "gro", 0, NULL, 'r' },
        { "max-seconds", 1, NULL, 't' },
        { "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    const char        *a = "127.0.0.1:0", *bside = "127.0.0.1:0";
    static struct fwd  w;
    struct epoll_event ev, evs[2];
    double             max_s = 3600;
    uint64_t           until;
    int                ep, c;

    memset(&w, 0, sizeof(w));
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': a = optarg; break;
        case 'b': bside = optarg; break;
        case 'g': w.gso = 1; break;
        case 'r': w.gro = 1; break;
        case 't': max_s = atof(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr, "usage: udpfwd "
                "[--client-side IP:PORT] [--peer-side IP:PORT] [--gso] "
                "[--gro] [--max-seconds S]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    w.clients = calloc(MAX_FLOWS, sizeof(*w.clients));
    w.buf = malloc((size_t)BATCH * SLOT);
    if (w.clients == NULL || w.buf == NULL || open_side(a, &w.fd[0]) ||
        open_side(bside, &w.fd[1]) || (ep = epoll_create1(0)) < 0)
        return 1;
    for (int s = 0; s < 2 && w.gro; s++) {
        int one = 1;

        if (setsockopt(w.fd[s], SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0) {
            fprintf(stderr, "udpfwd: UDP_GRO: %s\n", strerror(errno));
            return 1;
        }
    }
    for (int s = 0; s < 2; s++) {
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)s;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, w.fd[s], &ev) != 0)
            return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    print_side("client", w.fd[0]);
    printf(" ");
    print_side("peer", w.fd[1]);
    printf("\n");
    fflush(stdout);
    until = tb_now() + (uint64_t)(max_s * 1e9);
    while (!stop && tb_now() < until) {
        int n = epoll_wait(ep, evs, 2, 200);

        for (int i = 0; i < n; i++)
            on_readable(&w, (int)evs[i].data.u32);
    }
    fprintf(stderr, "udpfwd: in %llu out %llu dropped %llu\n",
        (unsigned long long)w.in, (unsigned long long)w.out,
        (unsigned long long)w.dropped);
    return 0;
}
