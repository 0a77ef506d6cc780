/* turnbench.h - the load generator and peer of bench/turnbench.
 *
 * One single-threaded event loop plays both roles, so that sending and
 * receiving never compete for a CPU behind the loop's back:
 *   - the clients: one UDP socket per flow, connected to the server, each
 *     holding one allocation with one channel bound to the peer;
 *   - the peer: one UDP socket that sinks, echoes, or sends to the
 *     relayed addresses.
 * Set-up (tb_setup.c) runs the TURN transactions; traffic (tb_load.c)
 * sends ChannelData open-loop and measures loss, reordering and latency. */
#ifndef TURNBENCH_H
#define TURNBENCH_H

#include <sys/socket.h>

#include "tb.h"

#define TB_EXTRA_PIDS   32          /* --cpu-extra */

enum tb_dir { TB_C2P = 1, TB_P2C = 2, TB_BOTH = 3 };

enum tb_fstate {
    FS_IDLE = 0,        /* no socket yet */
    FS_ALLOC0,          /* unauthenticated Allocate sent, 401 expected */
    FS_ALLOC1,          /* authenticated Allocate sent */
    FS_BIND,            /* ChannelBind sent */
    FS_READY,           /* allocation and channel in place */
    FS_REFRESH0,        /* Refresh with LIFETIME 0 sent */
    FS_DONE,            /* deleted (or never needed: raw mode) */
    FS_FAILED
};

/* Per-flow receive bookkeeping for one direction. */
struct tb_rx {
    uint64_t    next;       /* next sequence number expected */
};

struct tb_flow {
    int                 fd;
    uint32_t            idx;
    uint16_t            chan;
    uint8_t             state;
    uint8_t             tries;
    uint8_t             txid[12];
    uint64_t            deadline;   /* retransmission, ns */
    uint64_t            cycles;     /* churn: allocations completed */
    struct sockaddr_in  relayed;
    uint8_t             key[16];
    char                user[96];
    char                nonce[STUN_MAX_TEXT];
    char                realm[64];
    uint64_t            tx_seq;     /* client -> peer */
    uint64_t            ptx_seq;    /* peer -> client */
    struct tb_rx        rx_c2p, rx_p2c, rx_rtt;
};

/* Totals for one measured direction: "w" counts are of datagrams whose
 * send timestamp lies in the measurement window, "arr" counts arrivals
 * during the window (throughput). */
struct tb_dirstat {
    uint64_t        sent_w;
    uint64_t        recv_w;
    uint64_t        reord_w;
    uint64_t        arr_pkts;
    uint64_t        arr_bytes;
    struct tb_hist  hist;
};

struct tb_cred {
    char    user[96];
    char    password[128];
};

struct tb_bench {
    /* options */
    struct sockaddr_in  server;     /* relay, or raw forwarder client side */
    struct sockaddr_in  raw_peer;   /* raw forwarder peer side */
    int                 raw;
    const char         *secret;     /* firezone credentials per flow */
    struct tb_cred     *creds;      /* or fixed credentials, round robin */
    int                 ncreds;
    const char         *realm;
    const char         *mode;       /* load, churn, hold */
    const char         *label;
    const char         *holds;      /* hold: "1000,10000" */
    int                 nflows;
    enum tb_dir         dir;
    int                 size;       /* payload bytes */
    double              rate;       /* pps per sending side, 0 = flat out */
    double              duration, warmup;
    int                 burst;      /* datagrams per GSO send */
    int                 budget;     /* flat out: datagrams per loop turn */
    int                 window;     /* flat out: datagrams in flight, 0 any */
    int                 gso;
    int                 gro;        /* receive sockets take UDP_GRO */
    int                 cpu_pid;
    int                 extra_pid[TB_EXTRA_PIDS];   /* --cpu-extra */
    int                 nextra;
    uint64_t            cpu_mask;
    int                 inflight;   /* concurrent set-up transactions */
    int                 lifetime;   /* LIFETIME asked in Allocate, 0 none */
    uint32_t            tag;        /* makes salts unique per run */
    struct in_addr      peer_bind;  /* the peer socket's address */
    uint32_t            client_net; /* --client-net: network, host order */
    uint32_t            client_hosts;   /* its host addresses, 0 unset */

    /* state */
    int                 ep;
    int                 peer_fd;
    struct sockaddr_in  peer_addr;
    struct tb_flow     *flows;
    EVP_MAC_CTX        *mac;
    uint64_t            setup_failed;
    int                 last_error;
    int                 target;     /* state tb_setup_run() drives to */
    int                 active;     /* flows with a transaction open */
    uint64_t            reached;    /* flows that got to target */
    int                 churn;      /* recycle flows that reach target */
    uint64_t            completed;  /* churn: allocations completed */
    uint64_t            rng;
    uint32_t            ip_seq;     /* client address sequence */
    uint64_t            ws, we;     /* window start and end, ns */
    int                 in_window;
    struct tb_dirstat   c2p, p2c, rtt;
    struct tb_dirstat  *paced;          /* direction the window limits */
    uint64_t            rx_next_sum;    /* sum of the measured tb_rx.next */
    uint64_t            tool_drops;     /* dropped by the tool's sockets */
};

/* epoll data for the peer socket; flows use their index. */
#define TB_EV_PEER  0xffffffffu

/* tb_setup.c */

/* Opens flow f's client socket, connected to the server, and adds it to
 * the epoll set.  0 or -1. */
int tb_flow_open(struct tb_bench *b, struct tb_flow *f);
void tb_flow_close(struct tb_bench *b, struct tb_flow *f);

/* Drives flows [first, first + n) from their current state to `target`
 * (FS_READY or FS_DONE), at most b->inflight at a time, until all are
 * there or failed, or until `until` (ns).  Returns the number that
 * failed. */
int tb_setup_run(struct tb_bench *b, int first, int n, int target,
    uint64_t until);

/* Handles a STUN datagram that arrived on flow f's socket during set-up
 * or churn. */
void tb_setup_on_stun(struct tb_bench *b, struct tb_flow *f,
    const uint8_t *buf, size_t len);

/* Churn (M2): each of b->nflows slots loops new socket -> 401 ->
 * Allocate -> ChannelBind -> Refresh 0 for `seconds`.  Returns the
 * allocations completed. */
uint64_t tb_churn(struct tb_bench *b, double seconds);

/* Raw mode: teaches the forwarder the peer and every flow.  0 or -1. */
int tb_raw_hello(struct tb_bench *b);

/* tb_load.c */

/* CPU counters at one instant: the relay tree's ticks, busy and total
 * ticks of all CPUs and of the CPUs in b->cpu_mask, and this process's
 * own CPU seconds. */
struct tb_cpu {
    uint64_t    relay_ticks;
    uint64_t    extra_ticks[TB_EXTRA_PIDS];     /* --cpu-extra, each */
    uint64_t    all_busy, all_total;
    uint64_t    set_busy, set_total;
    double      self_s;         /* this process, user + system */
};

/* Runs traffic for warmup + duration seconds, then drains; fills b->c2p,
 * b->p2c, b->rtt, b->ws and b->we, and the CPU counters at the window's
 * start and end.  0 or -1. */
int tb_load_run(struct tb_bench *b, struct tb_cpu *start,
    struct tb_cpu *end);

void tb_cpu_sample(const struct tb_bench *b, struct tb_cpu *c);

#endif /* TURNBENCH_H */
