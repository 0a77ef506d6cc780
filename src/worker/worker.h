/* worker.h - a worker process: one event loop around one TURN core.
 *
 * The worker reads datagrams in batches from the listen sockets of its slot
 * (inherited from the master) and from the relay sockets of the
 * allocations it owns, hands each to the core, and carries out the
 * commands the core queues (turn_cmd.h) once per batch.  It owns sockets,
 * not rules (ARCHITECTURE §2).
 *
 * Files: worker.c (start-up, signals, reload, run loop), udp_io.c (every
 * recvmmsg/sendmmsg and the command executor), relay.c (relay sockets by
 * port), timer.c (the core's one timer).  The hot path (reading, the core,
 * sending) allocates nothing, logs nothing and takes no lock. */
#ifndef RLY_WORKER_H
#define RLY_WORKER_H

#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "master/rnd.h"
#include "master/runtime.h"
#include "chan_ring.h"
#include "turn_cmd.h"
#include "turn_core.h"
#include "turn_stats.h"

#define WORKER_BATCH        64          /* messages per recvmmsg */
#define WORKER_RX_SLOTS     256         /* receive slots between flushes */
#define WORKER_RX_RELAY     64          /* ... when reading relay sockets */
#define WORKER_CALLS        8           /* recvmmsg calls per callback */
#define WORKER_BUFSZ        65535       /* SPEC §2.11.4 */
#define WORKER_HEADROOM     4
#define WORKER_QCMDS        4096        /* commands per queue flush: one
                                           recvmmsg of GRO runs (64 x 64) */
#define WORKER_QARENA       (96 * 1024)
#define WORKER_TICK_MS      1000        /* timer at least this often */
#define WORKER_PORTS        65536

struct worker;

/* The relay sockets of one allocation: an entry of the worker's array
 * indexed by port.  A held allocation costs this entry and its kernel
 * sockets, nothing on the heap and no libevent event: the sockets sit in
 * the worker's own epoll set (relay.c).  An all-zero entry (never
 * touched, so never faulted in) is a port that is not ours. */
struct relay_port {
    struct atab_ref     ref;
    int                 fd[2];          /* RT_FAM_V4, RT_FAM_V6; -1: none */
    uint8_t             open;           /* the port is ours */
    uint8_t             nogso[2];       /* a GSO send failed with EIO */
};

/* A relay socket's epoll data: its port and family (RT_FAM_*). */
#define RELAY_EV_DATA(port, fam)    ((uint32_t)(port) << 1 | (uint32_t)(fam))
#define RELAY_EV_PORT(d)            ((uint16_t)((d) >> 1))
#define RELAY_EV_FAM(d)             ((int)((d) & 1))
#define RELAY_EVENTS                64  /* ready sockets per epoll_wait */

/* A relay-open result waiting to be reported to the core. */
struct relay_result {
    struct atab_ref     ref;
    int                 ok;
    int                 err;            /* errno when !ok */
};

/* Batched receive: WORKER_BATCH buffers with head room, addresses and
 * control buffers (packet info, and the segment size of a UDP GRO
 * message: with UDP_GRO on, one message may carry a run of datagrams of
 * one size from one sender, the last possibly shorter, which is why each
 * slot holds WORKER_BUFSZ bytes). */
struct udp_rx {
    struct mmsghdr          msg[WORKER_RX_SLOTS];
    struct iovec            iov[WORKER_RX_SLOTS];
    struct sockaddr_storage from[WORKER_RX_SLOTS];
    union {
        char                buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                                CMSG_SPACE(sizeof(struct in_pktinfo)) +
                                CMSG_SPACE(sizeof(int))];
        struct cmsghdr      align;
    } ctl[WORKER_RX_SLOTS];
    uint8_t                *data;       /* WORKER_RX_SLOTS slots */
    unsigned                used;       /* slots queued commands may still
                                           point into: [0, used) */
    size_t                  bytes;      /* received into them */
    int                     runs;       /* the last client batch had GRO
                                           runs: gather more per flush */
    int                     gro;        /* UDP_GRO works here */
};

#define TX_GSO_SEGS         64          /* datagrams per GSO send */
#define TX_GSO_BYTES        65000       /* bytes per GSO send */
#define TX_HBITS            13
#define TX_HSLOTS           (1u << TX_HBITS)    /* >= 2 x WORKER_QCMDS */
#define TX_END              0xffff

/* One gathered datagram. */
struct tx_ent {
    struct sockaddr_storage to;
    struct addr             remote;
    struct addr             local;      /* ADDR_NONE: no packet info */
    struct iovec            iov[2];
    uint8_t                *nogso;      /* the socket's GSO-off flag */
    int                     fd;
    socklen_t               tolen;
    uint32_t                len;
    uint16_t                iovn;
    uint16_t                next;       /* of the same flow, or TX_END */
    uint16_t                flow;       /* index in udp_tx.flow */
    /* A run (SEND_PEER with nseg > 1): nseg datagrams of len bytes at
     * iov[0].iov_base + k * stride, the last lastlen bytes; always one
     * GSO message of its own.  nseg is 1 otherwise. */
    uint16_t                nseg, stride;
    uint32_t                lastlen;
};

/* The datagrams of one (socket, destination, source), in command order. */
struct tx_flow {
    uint16_t                first, last;
    uint16_t                next;       /* next flow of the socket */
};

/* The flows of one socket, in order of first appearance. */
struct tx_sock {
    int                     fd;
    uint16_t                first, last;
};

/* Batched sends.  Gathered datagrams are grouped per socket (one sendmmsg
 * per socket and flush), and per destination and source address in
 * command order; runs of one size in a flow leave as one UDP_SEGMENT send
 * (the last may be shorter).  Order per destination is kept. */
struct udp_tx {
    struct tx_ent           ent[WORKER_QCMDS];
    struct tx_flow          flow[WORKER_QCMDS];
    struct tx_sock          sock[WORKER_QCMDS];
    unsigned                n, nflow, nsock;
    unsigned                niovs;      /* iovecs the gathered ones need */
    /* Hash of flows and of sockets; a slot is live when its generation
     * is the current one. */
    uint32_t                gen;
    uint32_t                fgen[TX_HSLOTS], sgen[TX_HSLOTS];
    uint16_t                fidx[TX_HSLOTS], sidx[TX_HSLOTS];
    /* One socket's messages. */
    struct mmsghdr          msg[WORKER_QCMDS];
    struct iovec            iov[2 * WORKER_QCMDS];
    uint16_t                mfirst[WORKER_QCMDS], mnseg[WORKER_QCMDS];
    union {
        char                buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                                CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr      align;
    } ctl[WORKER_QCMDS];
    /* The fallback: a GSO send the kernel refused, one datagram each. */
    struct mmsghdr          pmsg[TX_GSO_SEGS];
    struct iovec            piov[TX_GSO_SEGS];
    int                     gso;        /* UDP_SEGMENT works here */
};

struct worker {
    const struct runtime   *rt;
    uint32_t                slot;
    struct event_base      *base;
    struct atab            *tab;
    struct turn_core       *core;
    struct turn_stats      *stats;
    struct rnd              rnd;
    struct turn_cmdq        q;

    int                     lfd[2];     /* listen sockets, -1 when unset */
    uint8_t                 lnogso[2];  /* a GSO send failed with EIO */
    struct event           *lev[2];
    struct event           *sigterm, *timer;

    struct relay_port      *ports;      /* WORKER_PORTS entries */
    int                     repfd;      /* epoll set of the relay sockets */
    struct event           *rev;        /* repfd readable */
    struct relay_result     pending[2 * WORKER_QCMDS];
    unsigned                npending;

    struct udp_rx          *rx;
    struct udp_tx          *tx;

    /* XDP offload: channel events for the master (chan_ring.h), NULL
     * when the offload is off, and the eventfd that wakes it. */
    struct chan_ring       *ring;
    int                     ring_efd;

    turn_ms_t               now;        /* of the current batch */
    uint64_t                wall;
    turn_ms_t               timer_at;   /* armed deadline, TURN_NEVER */
    uint32_t                reload_gen;
    uint64_t                kicks;
    int                     stopping;
    int                     fatal;
};

/* worker.c */
/* Runs a worker for slot in the freshly forked child; returns its exit
 * status (0 after SIGTERM). */
int worker_main(const struct runtime *rt, uint32_t slot);
/* Refreshes w->now and w->wall (once per batch). */
void worker_clock(struct worker *w);
/* Before each batch (and at each timer tick): applies a newly published
 * reload block, and runs the timer early when another process deleted
 * one of our allocations.  Two atomic loads when nothing changed. */
void worker_between_batches(struct worker *w);
/* A fatal core error: log it and leave the loop (the master respawns). */
void worker_fatal(struct worker *w, const char *what, int rc);

/* udp_io.c */
int udp_io_init(struct worker *w);
void udp_io_fini(struct worker *w);
/* Event callbacks; arg is the worker.  The relay one is for the epoll set
 * of the relay sockets (fd is w->repfd) and reads each ready socket. */
void udp_io_listen_cb(evutil_socket_t fd, short what, void *arg);
void udp_io_relay_cb(evutil_socket_t fd, short what, void *arg);
/* Carries out and resets the queue, then reports relay-open results to the
 * core, until nothing is left. */
void udp_io_flush(struct worker *w);
/* Makes room for one more core call (flushes when the queue is full). */
void udp_io_room(struct worker *w);
/* Turns UDP GRO on for fd where the kernel has it (listen and relay
 * sockets): the kernel may then hand over a run of one sender's
 * datagrams of one size as one message, which the callbacks split. */
void udp_io_gro_on(struct worker *w, int fd);

/* relay.c */
/* The port array and the epoll set, registered with the event base (which
 * must exist).  Returns 0 or -1. */
int relay_init(struct worker *w);
void relay_fini(struct worker *w);     /* closes every relay socket */
/* Binds relay sockets on port for families (ATAB_FAM_*) and adds them to
 * the epoll set.  Returns 0, or -1 with errno set (nothing left open). */
int relay_open(struct worker *w, uint16_t port, uint8_t families,
    struct atab_ref ref);
void relay_close(struct worker *w, uint16_t port);

/* timer.c */
int timer_init(struct worker *w);
void timer_fini(struct worker *w);
/* Re-arms the timer to min(next deadline, now + 1 s) when that is earlier
 * than what is armed. */
void timer_update(struct worker *w);
/* Runs the core's timer until it is done (flushing as needed). */
void timer_run(struct worker *w);

#endif
