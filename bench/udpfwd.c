/* udpfwd.c - minimal two-socket UDP forwarder: the kernel-limit reference
 * for the relay benchmarks (issue 7).
 *
 *   udpfwd [--client-side IP:PORT] [--peer-side IP:PORT] [--gso]
 *          [--max-seconds S]
 *
 * Datagrams on the client side are ChannelData: the 4-byte header is
 * stripped and the payload goes out of the peer side to the peer (the
 * last address heard there).  Datagrams on the peer side get a ChannelData
 * header and go out of the client side to the client of their flow.
 * There is no TURN: the flow is read from the benchmark payload
 * (struct tb_payload), where a relay would look up its channel tables.
 * Batches use recvmmsg/sendmmsg like the relay; with --gso, runs of
 * datagrams of one size to one address leave as one UDP_SEGMENT send.
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

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define BATCH       64
#define CALLS       8
#define HEADROOM    4
#define SLOT        (HEADROOM + 2048)
#define MAX_FLOWS   65536
#define GSO_MAX     64

struct fwd_client {
    struct sockaddr_in  addr;
    uint16_t            chan;
    uint8_t             known;
};

struct fwd {
    int                 fd[2];          /* 0 client side, 1 peer side */
    int                 gso;
    struct sockaddr_in  peer;
    int                 peer_known;
    struct fwd_client  *clients;
    uint8_t            *buf;
    struct mmsghdr      rx[BATCH];
    struct iovec        rx_iov[BATCH];
    struct sockaddr_in  from[BATCH];
    struct mmsghdr      tx[BATCH];
    struct iovec        tx_iov[BATCH];
    union {
        char            buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr  align;
    }                   ctl[BATCH];
    int                 ntx;
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
    struct mmsghdr out[BATCH];
    int            nout = 0, done = 0;

    for (int i = 0; i < w->ntx;) {
        struct msghdr *h = &out[nout].msg_hdr;
        size_t         seg = w->tx_iov[i].iov_len;
        int            j = i + 1;

        if (w->gso) {
            while (j < w->ntx && j - i < GSO_MAX &&
                w->tx_iov[j].iov_len == seg &&
                same_addr(w->tx[j].msg_hdr.msg_name,
                w->tx[i].msg_hdr.msg_name))
                j++;
        }
        memset(h, 0, sizeof(*h));
        h->msg_name = w->tx[i].msg_hdr.msg_name;
        h->msg_namelen = sizeof(struct sockaddr_in);
        /* The merged datagrams' iovecs are consecutive in tx_iov. */
        h->msg_iov = &w->tx_iov[i];
        h->msg_iovlen = (size_t)(j - i);
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
    w->ntx = 0;
}

static void
queue(struct fwd *w, struct sockaddr_in *to, uint8_t *p, size_t len)
{
    memset(&w->tx[w->ntx], 0, sizeof(w->tx[0]));
    w->tx[w->ntx].msg_hdr.msg_name = to;
    w->tx_iov[w->ntx].iov_base = p;
    w->tx_iov[w->ntx].iov_len = len;
    w->ntx++;
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
    queue(w, &w->peer, d + 4, len);
}

static void
from_peer(struct fwd *w, int i, uint8_t *d, size_t n)
{
    int flow = flow_of(d, n);

    w->peer = w->from[i];
    w->peer_known = 1;
    if (flow < 0 || !w->clients[flow].known || n > 0xffff) {
        w->dropped++;
        return;
    }
    d -= HEADROOM;
    d[0] = (uint8_t)(w->clients[flow].chan >> 8);
    d[1] = (uint8_t)w->clients[flow].chan;
    d[2] = (uint8_t)(n >> 8);
    d[3] = (uint8_t)n;
    queue(w, &w->clients[flow].addr, d, n + 4);
}

static void
on_readable(struct fwd *w, int side)
{
    for (int call = 0; call < CALLS; call++) {
        int n;

        for (int i = 0; i < BATCH; i++) {
            struct msghdr *h = &w->rx[i].msg_hdr;

            w->rx_iov[i].iov_base = w->buf + (size_t)i * SLOT + HEADROOM;
            w->rx_iov[i].iov_len = SLOT - HEADROOM;
            memset(h, 0, sizeof(*h));
            h->msg_name = &w->from[i];
            h->msg_namelen = sizeof(w->from[i]);
            h->msg_iov = &w->rx_iov[i];
            h->msg_iovlen = 1;
        }
        n = recvmmsg(w->fd[side], w->rx, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        w->in += (uint64_t)n;
        for (int i = 0; i < n; i++) {
            uint8_t *d = w->rx_iov[i].iov_base;

            if (side == 0)
                from_client(w, i, d, w->rx[i].msg_len);
            else
                from_peer(w, i, d, w->rx[i].msg_len);
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
        { "gso", 0, NULL, 'g' }, { "max-seconds", 1, NULL, 't' },
        { "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    const char        *a = "127.0.0.1:0", *bside = "127.0.0.1:0";
    struct fwd         w;
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
        case 't': max_s = atof(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr, "usage: udpfwd "
                "[--client-side IP:PORT] [--peer-side IP:PORT] [--gso] "
                "[--max-seconds S]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    w.clients = calloc(MAX_FLOWS, sizeof(*w.clients));
    w.buf = malloc((size_t)BATCH * SLOT);
    if (w.clients == NULL || w.buf == NULL || open_side(a, &w.fd[0]) ||
        open_side(bside, &w.fd[1]) || (ep = epoll_create1(0)) < 0)
        return 1;
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
