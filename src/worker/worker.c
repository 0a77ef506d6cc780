/* worker.c - a worker process (ARCHITECTURE §2, SPEC §8): start-up in the
 * freshly forked child, the event loop, signals, reload and exit.
 *
 * The worker inherits the master's memory: the runtime settings, the
 * shared table mapping, the secret and the listen sockets.  It keeps the
 * two listen sockets of its slot and closes every other descriptor (the
 * other slots' sockets, the master's event loop and portal connection):
 * a copy held here would keep a connection open after the master closed
 * it.  It exits when the master goes (PR_SET_PDEATHSIG). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "master/log.h"
#include "master/xdp.h"
#include "rly_err.h"
#include "worker/worker.h"

void
worker_clock(struct worker *w)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    w->now = (turn_ms_t)ts.tv_sec * 1000 + (turn_ms_t)ts.tv_nsec / 1000000;
    clock_gettime(CLOCK_REALTIME, &ts);
    w->wall = (uint64_t)ts.tv_sec;
}

void
worker_fatal(struct worker *w, const char *what, int rc)
{
    if (w->fatal)
        return;
    log_error(log_get(), "worker %u: %s: %s", w->slot, what,
        rly_strerror(rc));
    w->fatal = 1;
    w->stopping = 1;
    event_base_loopbreak(w->base);
}

static void
apply_reload(struct worker *w)
{
    struct atab_reload r;

    w->reload_gen = atab_reload_read(w->tab, &r);
    turn_core_reload(w->core, &r.policy, r.error_rate, r.error_burst,
        (enum rly_log_level)r.log_level);
    log_set_level((enum rly_log_level)r.log_level);
}

void
worker_between_batches(struct worker *w)
{
    uint64_t kicks;

    if (w->fatal)
        return;
    if (atab_reload_gen(w->tab) != w->reload_gen)
        apply_reload(w);
    kicks = atab_worker_kicks(w->tab, w->slot);
    if (kicks != w->kicks) {
        /* Another process deleted one of our allocations: close its
         * sockets now rather than at the next tick. */
        w->kicks = kicks;
        timer_run(w);
    }
}

/* Closes every descriptor but stdio and the nkeep of keep (-1 entries
 * ignored): the listen sockets of our slot and the XDP eventfd. */
static void
close_other_fds(int *keep, int nkeep)
{
    unsigned from = 3;

    for (int i = 1; i < nkeep; i++)         /* sort: nkeep is tiny */
        for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
            int t = keep[j];

            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    for (int i = 0; i < nkeep; i++) {
        if (keep[i] < (int)from)
            continue;
        if ((unsigned)keep[i] > from)
            close_range(from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0U, 0);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;

    w->stopping = 1;
    for (int f = 0; f < 2; f++)
        if (w->lev[f] != NULL)
            event_del(w->lev[f]);
    event_base_loopbreak(w->base);
}

static int
make_core(struct worker *w)
{
    const struct runtime   *rt = w->rt;
    struct turn_conf        conf;
    struct atab_reload      r;

    memset(&conf, 0, sizeof(conf));
    w->reload_gen = atab_reload_read(w->tab, &r);
    if (w->reload_gen == 0)
        r = rt->reload;
    log_set_level((enum rly_log_level)r.log_level);
    conf.public4 = rt->public4;
    conf.public6 = rt->public6;
    conf.listen_port = rt->listen_port;
    conf.port_min = rt->port_min;
    conf.port_max = rt->port_max;
    conf.max_allocs = rt->max_allocs;
    conf.nonce_table_size = rt->nonce_table_size;
    conf.error_rate = r.error_rate;
    conf.error_burst = r.error_burst;
    conf.policy = &r.policy;
    conf.secret = rt->secret;
    conf.software = RT_SOFTWARE;
    conf.worker = (uint16_t)w->slot;
    conf.stats = w->stats;
    conf.rand = rnd_fill;
    conf.rand_ud = &w->rnd;
    conf.log = *log_get();
    /* Once the gate is open it stays open (SPEC §7.5), so a worker started
     * after that needs no check at all; before, the core consults
     * atab_ready() itself. */
    conf.gated = !atab_ready(w->tab);
    w->core = turn_core_new(&conf, w->tab);
    if (w->core == NULL) {
        log_error(log_get(), "worker %u: cannot create the TURN core",
            w->slot);
        return -1;
    }
    return 0;
}

/* Re-binds the relay ports of the allocations of our slot (SPEC §4.3). */
static void
adopt(struct worker *w)
{
    int rc;

    worker_clock(w);
    w->kicks = atab_worker_kicks(w->tab, w->slot);
    for (;;) {
        rc = turn_core_adopt(w->core, w->now, &w->q);
        if (rc < 0) {
            worker_fatal(w, "adopt", rc);
            return;
        }
        udp_io_flush(w);
        if (rc == 0)
            break;
    }
    if (turn_core_owned(w->core) > 0)
        log_info(log_get(), "worker %u: took over %u relay ports", w->slot,
            turn_core_owned(w->core));
}

static int
add_events(struct worker *w)
{
    w->sigterm = evsignal_new(w->base, SIGTERM, stop_cb, w);
    if (w->sigterm == NULL || evsignal_add(w->sigterm, NULL) != 0)
        return -1;
    for (int f = 0; f < 2; f++) {
        if (w->lfd[f] < 0)
            continue;
        w->lev[f] = event_new(w->base, w->lfd[f], EV_READ | EV_PERSIST,
            udp_io_listen_cb, w);
        if (w->lev[f] == NULL || event_add(w->lev[f], NULL) != 0)
            return -1;
    }
    return 0;
}

static int
setup(struct worker *w)
{
    if ((w->base = event_base_new()) == NULL ||
        turn_cmdq_init(&w->q, WORKER_QCMDS, WORKER_QARENA) != 0 ||
        udp_io_init(w) != 0 || relay_init(w) != 0 || timer_init(w) != 0) {
        log_error(log_get(), "worker %u: out of memory", w->slot);
        return -1;
    }
    if (make_core(w) != 0)
        return -1;
    if (add_events(w) != 0) {
        log_error(log_get(), "worker %u: cannot register events", w->slot);
        return -1;
    }
    return 0;
}

static void
teardown(struct worker *w)
{
    for (int f = 0; f < 2; f++)
        if (w->lev[f] != NULL)
            event_free(w->lev[f]);
    if (w->sigterm != NULL)
        event_free(w->sigterm);
    timer_fini(w);
    relay_fini(w);
    turn_core_free(w->core);
    udp_io_fini(w);
    turn_cmdq_fini(&w->q);
    if (w->base != NULL)
        event_base_free(w->base);
    for (int f = 0; f < 2; f++)
        if (w->lfd[f] >= 0)
            close(w->lfd[f]);
}

int
worker_main(const struct runtime *rt, uint32_t slot)
{
    struct worker  *w;
    sigset_t        none;
    int             status;
    int             keep[3];

    if (rt->child_cleanup != NULL)
        rt->child_cleanup(rt->child_ud);
    log_set_proc("worker");
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
        getppid() != rt->master_pid)
        return 0;   /* the master is already gone */
    keep[0] = rt->lfd[slot][RT_FAM_V4];
    keep[1] = rt->lfd[slot][RT_FAM_V6];
    keep[2] = rt->xdp_rings != NULL ? rt->xdp_efd : -1;
    close_other_fds(keep, 3);
    /* SPEC §10.5: CAP_BPF and CAP_NET_ADMIN stay with the master, which
     * alone updates the XDP maps.  (A worker running as root keeps root's
     * capabilities, as it does without XDP.) */
    if (rt->xdp_ifname != NULL && geteuid() != 0 && xdp_caps_drop() != 0) {
        log_error(log_get(), "worker %u: cannot drop CAP_BPF and "
            "CAP_NET_ADMIN: %s", slot, strerror(errno));
        return 1;
    }
    /* Ctrl-C reaches the whole process group: the master alone handles
     * it and stops the workers with SIGTERM. */
    signal(SIGINT, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if ((w = calloc(1, sizeof(*w))) == NULL)
        return 1;
    w->rt = rt;
    w->slot = slot;
    w->tab = rt->tab;
    w->stats = atab_worker_stats(rt->tab, slot);
    w->lfd[RT_FAM_V4] = rt->lfd[slot][RT_FAM_V4];
    w->lfd[RT_FAM_V6] = rt->lfd[slot][RT_FAM_V6];
    w->ring = rt->xdp_rings != NULL ?
        chan_ring_at(rt->xdp_rings, rt->xdp_ring_cap, slot) : NULL;
    w->ring_efd = rt->xdp_efd;
    rnd_init(&w->rnd, rt->seeded, rt->seed, slot);
    status = 1;
    if (setup(w) == 0) {
        adopt(w);
        if (!w->fatal) {
            log_debug(log_get(), "worker %u: serving", slot);
            worker_clock(w);
            timer_update(w);
            event_base_dispatch(w->base);
            status = w->fatal ? 1 : 0;
        }
    }
    teardown(w);
    free(w);
    return status;
}
