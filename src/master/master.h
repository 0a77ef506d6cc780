/* master.h - the master process (ARCHITECTURE §2, SPEC §8, §10.5): file
 * descriptor limit, shared table, listen sockets, privilege drop, workers
 * and their supervision, signals, reload and the 10 s summary line.  It
 * never relays a packet.
 *
 * Signals only set flags (through libevent's evsignal) and break the event
 * loop; the work (reaping, forking, reloading, stopping) happens in
 * master_run()'s own loop, outside any libevent callback, so a forked
 * worker starts from a clean stack.  The event base stays available to the
 * portal client and the HTTP endpoint (later issues), which register their
 * events on master.base. */
#ifndef RLY_MASTER_H
#define RLY_MASTER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "master/http.h"
#include "master/listen.h"
#include "master/portal.h"
#include "master/runtime.h"
#include "master/shm.h"

#define MASTER_SUMMARY_S        10      /* SPEC §10.4 */
#define MASTER_RESPAWN_MS       1000    /* at most one start per slot per s */
#define MASTER_KILL_MS          4000    /* SIGTERM, then SIGKILL (§10.5) */
#define MASTER_GIVEUP_MS        800     /* then exit anyway, within 5 s */
#define MASTER_FD_SLACK         64

struct master_worker {
    pid_t       pid;            /* 0 when not running */
    pid_t       pid_prev;       /* last started, 0 before the first */
    uint64_t    started;        /* monotonic ms of the last start */
    int         due;            /* to be (re)started */
};

struct master {
    struct runtime         *rt;
    struct event_base      *base;
    struct shmem            sh;
    struct listen_set       ls;
    struct master_worker   *w;
    uint32_t                nrunning;

    struct event           *ev_sig[4];  /* CHLD, TERM, INT, HUP */
    struct event           *ev_summary, *ev_respawn, *ev_kill;

    volatile sig_atomic_t   got_chld, got_stop, got_hup, got_kill;
    volatile sig_atomic_t   got_respawn;
    int                     stopping;
    int                     killed;     /* SIGKILL sent */
    uint64_t                last_bytes;

    /* Portal client and HTTP endpoint (master/portal.c, master/http.c). */
    struct portal          *portal;     /* NULL in standalone mode */
    struct http            *http;
    int                     fatal;      /* the portal asked for exit 1 */
    struct xdp             *xdp;        /* NULL: no XDP offload */
};

/* Runs the relay: raises RLIMIT_NOFILE, maps the table, opens the listen
 * sockets, drops privileges, publishes the initial reloadable block, opens
 * the relaying gate (standalone), starts rt->nworkers workers and
 * supervises them until SIGTERM or SIGINT.  Returns the exit status: 0
 * after a signal, 1 on a runtime fatal error (logged). */
int master_run(struct runtime *rt);

#endif
