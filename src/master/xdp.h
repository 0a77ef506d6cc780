/* xdp.h - the optional XDP offload of the ChannelData path (SPEC §1,
 * §9.2, §10.2, §10.5; design in docs/xdp.md), master side.
 *
 * With --enable-xdp (HAVE_XDP) the master loads the embedded BPF object
 * (src/xdp/relay_xdp.bpf.c) with libbpf, attaches it to xdp.interface
 * with a BPF link (so it goes away with the master, even on a crash),
 * and keeps its two maps equal to the bound channels:
 *
 *   - each worker reports CHAN_BOUND, CHAN_UNBOUND and RELAY_CLOSE
 *     through its chan_ring in a shared mapping made here before the
 *     first fork, and wakes the master through one eventfd;
 *   - the master validates each report against the shared table (the
 *     allocation must still be LIVE with that generation and port),
 *     updates a mirror of the maps in its own memory and the maps;
 *   - every 100 ms it removes the channels of allocations that are no
 *     longer LIVE (deleted by another worker), and after a worker exit, a
 *     ring overflow or a reload it rebuilds the mirror from the shared
 *     table (a resync).
 *
 * The master is the only process holding map descriptors and, with
 * `user` set, the only one keeping CAP_BPF and CAP_NET_ADMIN.
 *
 * Without HAVE_XDP every function below is an inline no-op and the build
 * needs no libbpf; xdp.interface is refused at configuration time. */
#ifndef RLY_MASTER_XDP_H
#define RLY_MASTER_XDP_H

#include <stdint.h>

#include <event2/event.h>

#include "addr.h"
#include "atab.h"
#include "turn_stats.h"

struct xdp;

/* What the offload needs, copied by xdp_open(). */
struct xdp_conf {
    const char     *ifname;             /* xdp.interface */
    int             generic;            /* xdp.mode: generic, else native */
    struct addr     int4, int6;         /* xdp.int_ip4/6; ADDR_NONE unset */
    struct addr     bind4, bind6;       /* listen.bind_ip4/6 (port unused) */
    struct addr     public4, public6;   /* public_ip4/6; ADDR_NONE unset */
    int             have4, have6;       /* public_ip4 / public_ip6 set */
    uint16_t        listen_port;
    uint16_t        port_min, port_max;
    uint32_t        max_chans;          /* limits.max_channels: map size */
    uint32_t        nworkers;
    struct atab    *tab;                /* borrowed until xdp_free() */
};

#ifdef HAVE_XDP

/* Loads the program, attaches it and maps the workers' rings; before the
 * privilege drop and the first fork.  Any failure (no such interface,
 * no privilege, the kernel refuses, the mode is unsupported) is logged at
 * warn with the reason and returns NULL: the relay runs without offload
 * (SPEC §9.2). */
struct xdp *xdp_open(const struct xdp_conf *conf);

/* Registers the eventfd and the 100 ms maintenance timer on base.  Returns
 * 0, or -1 after logging (out of memory). */
int xdp_start(struct xdp *x, struct event_base *base);

/* Detaches the program and frees everything.  NULL is fine. */
void xdp_free(struct xdp *x);

/* 1 while attached (relay_xdp_attached); 0 for NULL. */
int xdp_attached(const struct xdp *x);

/* For the workers (struct runtime): the rings, their capacity and the
 * eventfd.  NULL / 0 / -1 for NULL. */
void *xdp_rings(const struct xdp *x);
uint32_t xdp_ring_cap(const struct xdp *x);
int xdp_eventfd(const struct xdp *x);

/* Adds the program's counters to sum's xdp_packets and xdp_bytes.  NULL
 * adds nothing. */
void xdp_stats_add(const struct xdp *x, struct turn_stats *sum);

/* Rebuilds the maps from the shared table (after a worker exit or a
 * reload).  NULL is fine. */
void xdp_resync(struct xdp *x);

/* Privileges (SPEC §10.5).  Around the master's setuid: keep_begin sets
 * PR_SET_KEEPCAPS; keep_end leaves CAP_BPF and CAP_NET_ADMIN effective
 * and permitted and nothing else.  Returns 0 or -1 with errno set. */
int xdp_caps_keep_begin(void);
int xdp_caps_keep_end(void);
/* In a worker: drops CAP_BPF and CAP_NET_ADMIN from every set (effective,
 * permitted, inheritable, ambient).  Returns 0 or -1 with errno set. */
int xdp_caps_drop(void);

#else   /* !HAVE_XDP */

static inline struct xdp *
xdp_open(const struct xdp_conf *conf)
{
    (void)conf;
    return NULL;
}

static inline int
xdp_start(struct xdp *x, struct event_base *base)
{
    (void)x;
    (void)base;
    return 0;
}

static inline void xdp_free(struct xdp *x) { (void)x; }
static inline int xdp_attached(const struct xdp *x) { (void)x; return 0; }
static inline void *xdp_rings(const struct xdp *x) { (void)x; return NULL; }
static inline uint32_t xdp_ring_cap(const struct xdp *x)
{
    (void)x;
    return 0;
}
static inline int xdp_eventfd(const struct xdp *x) { (void)x; return -1; }
static inline void
xdp_stats_add(const struct xdp *x, struct turn_stats *sum)
{
    (void)x;
    (void)sum;
}
static inline void xdp_resync(struct xdp *x) { (void)x; }
static inline int xdp_caps_keep_begin(void) { return 0; }
static inline int xdp_caps_keep_end(void) { return 0; }
static inline int xdp_caps_drop(void) { return 0; }

#endif  /* HAVE_XDP */

#endif
