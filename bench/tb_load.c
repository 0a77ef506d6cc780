/* tb_load.c - open-loop ChannelData traffic and its measurement.
 *
 * The sending side (the clients for c2p and both, the peer for p2c) sends
 * on a schedule that does not wait for the receiving side: at `rate`
 * datagrams/s spread round robin over the flows, or flat out in turns of
 * b->budget datagrams.  Several datagrams for one flow leave in one
 * sendmsg with UDP_SEGMENT (GSO) where the kernel has it, so that the
 * generator costs less per datagram than the relay.  Every payload
 * carries its flow, sequence number and CLOCK_MONOTONIC send time; the
 * receiving side counts loss and reordering and records latency for the
 * datagrams sent inside the measurement window. */
#include "config.h"

#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "turnbench.h"

#define RX_BATCH    64
#define RX_SLOT     65536       /* a GRO message: up to 64 KiB */
#define RX_CALLS    8           /* recvmmsg calls per socket per turn */
#define SEG_MAX     64          /* datagrams per GSO send */
#define TX_MAX      1024        /* datagrams per turn (peer side) */
#define TICK_MIN_NS 50000ull    /* paced mode: shortest sleep */
#define DRAIN_NS    300000000ull

struct tb_io {
    struct mmsghdr      rx_msg[RX_BATCH];
    struct iovec        rx_iov[RX_BATCH];
    struct sockaddr_in  rx_from[RX_BATCH];
    union {
        char            buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr  align;
    }                   rx_ctl[RX_BATCH];
    uint8_t            *rx_buf;
    struct mmsghdr      echo_msg[RX_BATCH];
    uint8_t            *cbuf;           /* client side: 4 + size stride */
    uint8_t            *pbuf;           /* peer side: size stride */
    struct mmsghdr      tx_msg[TX_MAX];
    struct iovec        tx_iov[TX_MAX];
    union {
        char            buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr  align;
    }                   tx_ctl[TX_MAX];
    int                 cursor;
    uint64_t            sent;           /* by the sending side, all */
    uint64_t            lost_adj;       /* given up as lost (window) */
    uint64_t            progress_at;    /* last rx_next_sum change */
    uint64_t            progress_sum;
};

void
tb_cpu_sample(const struct tb_bench *b, struct tb_cpu *c)
{
    struct rusage ru;

    c->relay_ticks = tb_proc_tree_ticks(b->cpu_pid);
    for (int i = 0; i < b->nextra; i++)
        c->extra_ticks[i] = tb_pid_ticks(b->extra_pid[i]);
    tb_stat_ticks(0, &c->all_busy, &c->all_total);
    if (b->cpu_mask != 0)
        tb_stat_ticks(b->cpu_mask, &c->set_busy, &c->set_total);
    else
        c->set_busy = c->set_total = 0;
    getrusage(RUSAGE_SELF, &ru);
    c->self_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
put_payload(uint8_t *p, uint32_t flow, uint64_t seq, uint64_t now)
{
    struct tb_payload h;

    h.magic = TB_MAGIC;
    h.flow = flow;
    h.seq = seq;
    h.ts_ns = now;
    memcpy(p, &h, sizeof(h));
}

static void
set_gso(struct msghdr *h, void *ctl, size_t ctlcap, uint16_t seg)
{
    struct cmsghdr *cm;

    h->msg_control = ctl;
    h->msg_controllen = ctlcap;
    cm = CMSG_FIRSTHDR(h);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
}

static void
count_sent(struct tb_bench *b, struct tb_io *io, struct tb_dirstat *ds,
    int n, uint64_t now)
{
    io->sent += (uint64_t)n;
    if (now >= b->ws && now < b->we)
        ds->sent_w += (uint64_t)n;
}

/* Sends n ChannelData datagrams of flow f from its client socket.
 * Returns the number sent. */
static int
send_client(struct tb_bench *b, struct tb_io *io, struct tb_flow *f, int n,
    uint64_t now)
{
    size_t        stride = 4 + (size_t)b->size;
    struct msghdr h;
    struct iovec  iov;
    int           sent;

    for (int i = 0; i < n; i++) {
        uint8_t *d = io->cbuf + (size_t)i * stride;

        d[0] = (uint8_t)(f->chan >> 8);
        d[1] = (uint8_t)f->chan;
        d[2] = (uint8_t)(b->size >> 8);
        d[3] = (uint8_t)b->size;
        put_payload(d + 4, f->idx, f->tx_seq + (uint64_t)i, now);
    }
    if (n == 1) {
        sent = send(f->fd, io->cbuf, stride, 0) < 0 ? 0 : 1;
    } else if (b->gso) {
        memset(&h, 0, sizeof(h));
        iov.iov_base = io->cbuf;
        iov.iov_len = stride * (size_t)n;
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        set_gso(&h, io->tx_ctl[0].buf, sizeof(io->tx_ctl[0].buf),
            (uint16_t)stride);
        sent = sendmsg(f->fd, &h, 0) < 0 ? 0 : n;
    } else {
        for (int i = 0; i < n; i++) {
            memset(&io->tx_msg[i], 0, sizeof(io->tx_msg[i]));
            io->tx_iov[i].iov_base = io->cbuf + (size_t)i * stride;
            io->tx_iov[i].iov_len = stride;
            io->tx_msg[i].msg_hdr.msg_iov = &io->tx_iov[i];
            io->tx_msg[i].msg_hdr.msg_iovlen = 1;
        }
        sent = sendmmsg(f->fd, io->tx_msg, (unsigned)n, 0);
        if (sent < 0)
            sent = 0;
    }
    f->tx_seq += (uint64_t)sent;
    count_sent(b, io, &b->c2p, sent, now);
    return sent;
}

/* Queues n datagrams of flow f from the peer to its relayed address as
 * message m (GSO) or messages m.. (plain).  Returns the next message. */
static int
queue_peer(struct tb_bench *b, struct tb_io *io, struct tb_flow *f, int n,
    int m, size_t *off, uint64_t now)
{
    size_t stride = (size_t)b->size;

    for (int i = 0; i < n; i++)
        put_payload(io->pbuf + *off + (size_t)i * stride,
            f->idx | TB_FLOW_P2C, f->ptx_seq + (uint64_t)i, now);
    f->ptx_seq += (uint64_t)n;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &io->tx_msg[m].msg_hdr;

        memset(h, 0, sizeof(*h));
        h->msg_name = &f->relayed;
        h->msg_namelen = sizeof(f->relayed);
        h->msg_iov = &io->tx_iov[m];
        h->msg_iovlen = 1;
        io->tx_iov[m].iov_base = io->pbuf + *off;
        if (b->gso && n > 1) {
            io->tx_iov[m].iov_len = stride * (size_t)n;
            set_gso(h, io->tx_ctl[m].buf, sizeof(io->tx_ctl[m].buf),
                (uint16_t)stride);
            *off += stride * (size_t)n;
            return m + 1;
        }
        io->tx_iov[m].iov_len = stride;
        *off += stride;
        m++;
    }
    return m;
}

/* Sends the queued peer messages; counts datagrams, not messages. */
static void
flush_peer(struct tb_bench *b, struct tb_io *io, int nmsg, uint64_t now)
{
    int done = 0;

    while (done < nmsg) {
        int r = sendmmsg(b->peer_fd, io->tx_msg + done,
            (unsigned)(nmsg - done), 0);

        if (r <= 0)
            break;
        for (int i = done; i < done + r; i++) {
            size_t len = io->tx_iov[i].iov_len;

            count_sent(b, io, &b->p2c, (int)(len / (size_t)b->size), now);
        }
        done += r;
    }
}

/* Sends `due` datagrams round robin over the flows. */
static void
send_due(struct tb_bench *b, struct tb_io *io, int due, uint64_t now)
{
    int    chunk = due / b->nflows;
    int    nmsg = 0;
    size_t off = 0;

    if (chunk < 1)
        chunk = 1;
    if (chunk > b->burst)
        chunk = b->burst;
    for (int idle = 0; due > 0 && idle < b->nflows;) {
        struct tb_flow *f = &b->flows[io->cursor];
        int             n = due < chunk ? due : chunk;

        io->cursor = (io->cursor + 1) % b->nflows;
        if (f->state != FS_READY) {
            idle++;                 /* a flow whose set-up failed */
            continue;
        }
        idle = 0;
        if (b->dir == TB_P2C) {
            if (nmsg + n > TX_MAX)
                break;
            nmsg = queue_peer(b, io, f, n, nmsg, &off, now);
        } else {
            send_client(b, io, f, n, now);
        }
        due -= n;
    }
    if (nmsg > 0)
        flush_peer(b, io, nmsg, now);
}

static void
record(struct tb_bench *b, struct tb_dirstat *ds, struct tb_rx *rx,
    const struct tb_payload *p, size_t bytes, uint64_t now)
{
    if (now >= b->ws && now < b->we) {
        ds->arr_pkts++;
        ds->arr_bytes += bytes;
    }
    if (p->ts_ns >= b->ws && p->ts_ns < b->we) {
        ds->recv_w++;
        tb_hist_add(&ds->hist, now > p->ts_ns ? now - p->ts_ns : 0);
        if (p->seq < rx->next)
            ds->reord_w++;
    }
    if (p->seq >= rx->next) {
        if (ds == b->paced)
            b->rx_next_sum += p->seq + 1 - rx->next;
        rx->next = p->seq + 1;
    }
}

static int
get_payload(const uint8_t *d, size_t len, struct tb_payload *p,
    uint32_t nflows)
{
    if (len < sizeof(*p))
        return -1;
    memcpy(p, d, sizeof(*p));
    if (p->magic != TB_MAGIC || p->seq == TB_SEQ_HELLO ||
        (p->flow & TB_FLOW_MASK) >= nflows)
        return -1;
    return 0;
}

/* One datagram on a client socket: ChannelData from the relay. */
static void
on_client(struct tb_bench *b, struct tb_flow *f, uint8_t *d, size_t len,
    uint64_t now)
{
    struct tb_payload p;

    if (len >= 4 && d[0] < 0x04) {
        tb_setup_on_stun(b, f, d, len);
        return;
    }
    if (len < 4 || d[0] < 0x40 || d[0] > 0x7f ||
        get_payload(d + 4, len - 4, &p, (uint32_t)b->nflows) != 0)
        return;
    if (p.flow & TB_FLOW_P2C)
        record(b, &b->p2c, &f->rx_p2c, &p, len - 4, now);
    else
        record(b, &b->rtt, &f->rx_rtt, &p, len - 4, now);
}

/* One datagram on the peer socket: a payload relayed from a client.
 * Returns whether it is one to echo. */
static int
on_peer(struct tb_bench *b, uint8_t *d, size_t len, uint64_t now)
{
    struct tb_payload p;

    if (get_payload(d, len, &p, (uint32_t)b->nflows) != 0 ||
        (p.flow & TB_FLOW_P2C))
        return 0;
    record(b, &b->c2p, &b->flows[p.flow].rx_c2p, &p, len, now);
    return b->dir == TB_BOTH;
}

/* Queues message i as echo message k, back to its sender: a GRO run
 * leaves as the same run (UDP_SEGMENT of its segment size; the peer
 * socket has GSO whenever it has GRO). */
static void
echo_add(struct tb_io *io, int k, int i, uint32_t seg)
{
    struct msghdr *h = &io->echo_msg[k].msg_hdr;
    size_t         len = io->rx_msg[i].msg_len;

    memset(h, 0, sizeof(*h));
    h->msg_name = &io->rx_from[i];
    h->msg_namelen = sizeof(io->rx_from[i]);
    io->rx_iov[i].iov_len = len;
    h->msg_iov = &io->rx_iov[i];
    h->msg_iovlen = 1;
    if (seg > 0 && seg < len)
        set_gso(h, io->rx_ctl[i].buf, sizeof(io->rx_ctl[i].buf),
            (uint16_t)seg);
}

static void
echo_send(struct tb_bench *b, struct tb_io *io, int necho)
{
    for (int done = 0; done < necho;) {
        int r = sendmmsg(b->peer_fd, io->echo_msg + done,
            (unsigned)(necho - done), 0);

        if (r <= 0)
            break;
        done += r;
    }
}

static void
on_readable(struct tb_bench *b, struct tb_io *io, uint32_t idx)
{
    int fd = idx == TB_EV_PEER ? b->peer_fd : b->flows[idx].fd;

    for (int call = 0; call < RX_CALLS; call++) {
        int      n, necho = 0;
        uint64_t now;

        for (int i = 0; i < RX_BATCH; i++) {
            struct msghdr *h = &io->rx_msg[i].msg_hdr;

            io->rx_iov[i].iov_base = io->rx_buf + (size_t)i * RX_SLOT;
            io->rx_iov[i].iov_len = RX_SLOT;
            h->msg_name = &io->rx_from[i];
            h->msg_namelen = sizeof(io->rx_from[i]);
            h->msg_iov = &io->rx_iov[i];
            h->msg_iovlen = 1;
            h->msg_control = b->gro ? io->rx_ctl[i].buf : NULL;
            h->msg_controllen = b->gro ? sizeof(io->rx_ctl[i].buf) : 0;
            h->msg_flags = 0;
        }
        n = recvmmsg(fd, io->rx_msg, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        now = tb_now();
        for (int i = 0; i < n; i++) {
            uint8_t *d = io->rx_iov[i].iov_base;
            uint32_t left = io->rx_msg[i].msg_len;
            uint32_t seg = b->gro ? tb_gro_size(&io->rx_msg[i].msg_hdr) : 0;
            int      again = 0;

            do {
                uint32_t len = seg > 0 && seg < left ? seg : left;

                if (idx == TB_EV_PEER)
                    again |= on_peer(b, d, len, now);
                else
                    on_client(b, &b->flows[idx], d, len, now);
                d += len;
                left -= len;
            } while (left > 0);
            if (again)
                echo_add(io, necho++, i, seg);
        }
        echo_send(b, io, necho);
        if (n < RX_BATCH)
            break;
    }
}

static int
io_init(struct tb_bench *b, struct tb_io *io)
{
    size_t cstride = 4 + (size_t)b->size;

    memset(io, 0, sizeof(*io));
    io->rx_buf = malloc((size_t)RX_BATCH * RX_SLOT);
    io->cbuf = malloc(SEG_MAX * cstride);
    io->pbuf = malloc(TX_MAX * (size_t)b->size);
    if (io->rx_buf == NULL || io->cbuf == NULL || io->pbuf == NULL)
        return -1;
    /* Filler; only the headers are rewritten per datagram. */
    memset(io->cbuf, 0xa5, SEG_MAX * cstride);
    memset(io->pbuf, 0x5a, TX_MAX * (size_t)b->size);
    return 0;
}

static void
io_fini(struct tb_io *io)
{
    free(io->rx_buf);
    free(io->cbuf);
    free(io->pbuf);
}

/* Flat out with a window: datagrams that may still be sent.  A datagram
 * is in flight until one of a higher sequence number of its flow has
 * arrived; when nothing has arrived for 20 ms, whatever is in flight is
 * taken as lost, so that loss cannot close the window for good. */
static int
window_room(const struct tb_bench *b, struct tb_io *io, uint64_t now)
{
    uint64_t inflight;

    if (b->rx_next_sum != io->progress_sum) {
        io->progress_sum = b->rx_next_sum;
        io->progress_at = now;
    }
    inflight = io->sent - io->lost_adj - b->rx_next_sum;
    if (inflight > 0 && now - io->progress_at > 20000000ull) {
        io->lost_adj += inflight;
        io->progress_at = now;
        inflight = 0;
    }
    if (inflight >= (uint64_t)b->window)
        return 0;
    return (int)((uint64_t)b->window - inflight);
}

/* Datagrams due now: by the schedule, or one flat-out turn. */
static int
due_now(const struct tb_bench *b, struct tb_io *io, uint64_t t0,
    uint64_t now)
{
    double target;

    if (b->rate <= 0 && b->window > 0) {
        int room = window_room(b, io, now);

        return room < b->budget ? room : b->budget;
    }
    if (b->rate <= 0)
        return b->budget;
    target = (double)(now - t0) * b->rate / 1e9;
    if (target <= (double)io->sent)
        return 0;
    target -= (double)io->sent;
    return target > TX_MAX ? TX_MAX : (int)target;
}

/* How long to wait for datagrams before the next send is due. */
static uint64_t
wait_ns(const struct tb_bench *b, const struct tb_io *io, uint64_t t0,
    uint64_t now, int sending, int room)
{
    uint64_t next;

    if (!sending)
        return 1000000;
    if (b->rate <= 0)
        return b->window > 0 && room == 0 ? 1000000 : 0;
    next = t0 + (uint64_t)((double)(io->sent + 1) * 1e9 / b->rate);
    if (next <= now)
        return 0;
    next -= now;
    return next < TICK_MIN_NS ? TICK_MIN_NS : next;
}

/* Datagrams the kernel dropped at one of the tool's sockets (full
 * receive buffer): the relay did that work, the tool did not see it. */
static uint64_t
socket_drops(int fd)
{
    uint32_t  mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mem);

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
        len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
        return 0;
    return mem[SK_MEMINFO_DROPS];
}

int
tb_load_run(struct tb_bench *b, struct tb_cpu *start, struct tb_cpu *end)
{
    struct tb_io      *io = malloc(sizeof(*io));
    struct epoll_event evs[256];
    uint64_t           t0 = tb_now(), stop, last_rx;
    int                sampled = 0;

    if (io == NULL || io_init(b, io) != 0) {
        if (io != NULL)
            io_fini(io);
        free(io);
        return -1;
    }
    b->paced = b->dir == TB_C2P ? &b->c2p : b->dir == TB_P2C ? &b->p2c :
        &b->rtt;
    b->ws = t0 + (uint64_t)(b->warmup * 1e9);
    b->we = b->ws + (uint64_t)(b->duration * 1e9);
    stop = b->we + DRAIN_NS;
    last_rx = t0;
    for (;;) {
        uint64_t        now = tb_now();
        int             sending = now < b->we, n, due;
        struct timespec ts;
        uint64_t        w;

        if (sampled == 0 && now >= b->ws) {
            tb_cpu_sample(b, start);
            sampled = 1;
        }
        if (sampled == 1 && now >= b->we) {
            tb_cpu_sample(b, end);
            sampled = 2;
        }
        if (now >= stop || (!sending && now - last_rx > 50000000ull &&
            now > b->we + 50000000ull))
            break;
        due = sending ? due_now(b, io, t0, now) : 0;
        if (due > 0)
            send_due(b, io, due, now);
        w = wait_ns(b, io, t0, tb_now(), sending, due);
        if (sampled == 0 && b->ws > now && b->ws - now < w)
            w = b->ws - now;
        if (sampled == 1 && b->we > now && b->we - now < w)
            w = b->we - now;
        ts.tv_sec = (time_t)(w / 1000000000u);
        ts.tv_nsec = (long)(w % 1000000000u);
        n = epoll_pwait2(b->ep, evs, 256, &ts, NULL);
        if (n > 0)
            last_rx = tb_now();
        for (int i = 0; i < n; i++)
            on_readable(b, io, evs[i].data.u32);
    }
    b->tool_drops = socket_drops(b->peer_fd);
    for (int i = 0; i < b->nflows; i++)
        b->tool_drops += socket_drops(b->flows[i].fd);
    io_fini(io);
    free(io);
    return sampled == 2 ? 0 : -1;
}
