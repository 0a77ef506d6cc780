/* master.c - start-up after the config, and supervision (SPEC §8, §10.5).
 *
 * Order at start: descriptor limit (while still privileged), shared table,
 * listen sockets (trial bind first), privilege drop, the initial
 * reloadable block, the relaying gate, then the workers.  Everything a
 * worker needs exists before the first fork, so it is inherited.
 *
 * Signals: evsignal callbacks only set a flag and break the loop.  The
 * loop in master_run() then reaps, reloads, stops or forks, outside any
 * libevent callback ("has to be kept simple", Postfix master.h). */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"
#include "master/log.h"
#include "master/master.h"
#include "master/rnd.h"
#include "master/xdp.h"
#include "worker/worker.h"

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every worker may own every allocation, each with one relay socket per
 * configured public family (SPEC §4.4: a family without a public address is
 * never relayed).  Allocations also need distinct ports, so the relay port
 * range bounds them as well (SPEC §4.3 capacity). */
static int
raise_nofile(const struct runtime *rt)
{
    struct rlimit   rl;
    rlim_t          cap = (rlim_t)rt->port_max - rt->port_min + 1;
    rlim_t          need;
    unsigned        fams = (rt->public4.family != ADDR_NONE) +
        (rt->public6.family != ADDR_NONE);

    if (fams == 0)
        fams = 2;
    if (cap > rt->max_allocs)
        cap = rt->max_allocs;
    need = cap * fams + (rlim_t)rt->nworkers * 2 + MASTER_FD_SLACK;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_error(log_get(), "getrlimit(RLIMIT_NOFILE): %s",
            strerror(errno));
        return -1;
    }
    if (rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        rl.rlim_max = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_error(log_get(), "cannot raise the open file limit to %llu "
            "(%u x the allocation capacity + listen sockets + %d): %s; "
            "raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
            "limits.max_allocations", (unsigned long long)need, fams,
            MASTER_FD_SLACK, strerror(errno));
        return -1;
    }
    log_debug(log_get(), "open file limit raised to %llu",
        (unsigned long long)need);
    return 0;
}

/* SPEC §10.5: setgroups, setgid, setuid; any failure is fatal.  With the
 * XDP offload attached (keep_xdp) the master keeps CAP_BPF and
 * CAP_NET_ADMIN across the change of user: it updates the maps. */
static int
drop_privileges(const struct runtime *rt, int keep_xdp)
{
    struct passwd  *pw;
    struct group   *gr;
    uid_t           uid;
    gid_t           gid;

    if (rt->user[0] == '\0')
        return 0;
    errno = 0;
    if ((pw = getpwnam(rt->user)) == NULL) {
        log_error(log_get(), "user %s: %s", rt->user,
            errno != 0 ? strerror(errno) : "no such user");
        return -1;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    if (rt->group[0] != '\0') {
        errno = 0;
        if ((gr = getgrnam(rt->group)) == NULL) {
            log_error(log_get(), "group %s: %s", rt->group,
                errno != 0 ? strerror(errno) : "no such group");
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (keep_xdp && xdp_caps_keep_begin() != 0) {
        log_error(log_get(), "cannot keep the XDP capabilities: %s",
            strerror(errno));
        return -1;
    }
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        log_error(log_get(), "cannot drop privileges to %s: %s", rt->user,
            strerror(errno));
        return -1;
    }
    if (keep_xdp && xdp_caps_keep_end() != 0) {
        log_error(log_get(), "cannot keep CAP_BPF and CAP_NET_ADMIN for the "
            "XDP offload: %s", strerror(errno));
        return -1;
    }
    if (uid != 0 && setuid(0) == 0) {
        log_error(log_get(), "privilege drop to %s did not stick", rt->user);
        return -1;
    }
    log_info(log_get(), "running as user %s (uid %ld, gid %ld)", rt->user,
        (long)uid, (long)gid);
    return 0;
}

/* --- Signals: set a flag, leave the loop --- */

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;

    if (sig == SIGCHLD)
        m->got_chld = 1;
    else if (sig == SIGHUP)
        m->got_hup = 1;
    else
        m->got_stop = 1;
    event_base_loopbreak(m->base);
}

static void
respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;

    m->got_respawn = 1;
    event_base_loopbreak(m->base);
}

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;

    m->got_kill = 1;
    event_base_loopbreak(m->base);
}

/* In a freshly forked worker: remove the master's signal events, which
 * restores the handlers they replaced, so that a signal sent to the
 * worker never reaches the master's loop. */
static void
child_cleanup(void *ud)
{
    struct master *m = ud;

    for (int i = 0; i < 4; i++)
        if (m->ev_sig[i] != NULL)
            event_del(m->ev_sig[i]);
}

/* --- The summary line (SPEC §10.4) --- */

static void
summary_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master      *m = arg;
    struct turn_stats   sum;
    uint32_t            active, live, bound;
    uint64_t            bytes;
    char                line[FMT_SUMMARY_STRLEN];

    memset(&sum, 0, sizeof(sum));
    atab_count(m->sh.tab, &active, &live, &bound);
    for (uint32_t s = 0; s < m->rt->nworkers; s++)
        turn_stats_sum(&sum, atab_worker_stats(m->sh.tab, s));
    xdp_stats_add(m->xdp, &sum);
    bytes = sum.relayed_bytes[TURN_DIR_C2P] + sum.relayed_bytes[TURN_DIR_P2C] +
        sum.xdp_bytes[TURN_DIR_C2P] + sum.xdp_bytes[TURN_DIR_P2C];
    log_info(log_get(), "%s", fmt_summary(live, bound,
        bytes - m->last_bytes, MASTER_SUMMARY_S, line, sizeof(line)));
    m->last_bytes = bytes;
}

/* --- Workers --- */

static void
spawn(struct master *m, uint32_t slot)
{
    struct master_worker   *mw = &m->w[slot];
    sigset_t                all, old;
    pid_t                   pid;
    int                     err;

    /* Blocked across fork: a signal for the child must not run the
     * master's handlers in it before it has removed them. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        exit(worker_main(m->rt, slot));
    err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    mw->started = mono_ms();
    mw->due = 0;
    if (pid < 0) {
        log_error(log_get(), "cannot start worker %u: %s", slot,
            strerror(err));
        mw->due = 1;    /* retried after the throttle */
        return;
    }
    rly_log(log_get(), mw->pid_prev != 0 ? RLY_LOG_INFO : RLY_LOG_DEBUG,
        __func__, "worker %u started, pid %ld", slot, (long)pid);
    mw->pid = pid;
    mw->pid_prev = pid;
    m->nrunning++;
}

/* Starts the due workers whose throttle has passed; arms the respawn
 * timer for the others. */
static void
spawn_due(struct master *m)
{
    uint64_t        now = mono_ms();
    uint64_t        next = UINT64_MAX;
    struct timeval  tv;

    for (uint32_t s = 0; s < m->rt->nworkers; s++) {
        struct master_worker *mw = &m->w[s];

        if (!mw->due || mw->pid != 0)
            continue;
        if (mw->started == 0 || now >= mw->started + MASTER_RESPAWN_MS)
            spawn(m, s);
        if (mw->due && mw->started + MASTER_RESPAWN_MS < next)
            next = mw->started + MASTER_RESPAWN_MS;
    }
    if (next != UINT64_MAX) {
        uint64_t delay = next > now ? next - now : 0;

        tv.tv_sec = (time_t)(delay / 1000);
        tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
        evtimer_add(m->ev_respawn, &tv);
    }
}

static void
log_exit(const struct master *m, uint32_t slot, pid_t pid, int status)
{
    enum rly_log_level level = m->stopping ? RLY_LOG_DEBUG : RLY_LOG_WARN;

    if (WIFSIGNALED(status))
        rly_log(log_get(), level, __func__, "worker %u (pid %ld) killed by "
            "signal %d%s", slot, (long)pid, WTERMSIG(status),
            m->stopping ? "" : "; restarting");
    else
        rly_log(log_get(), level, __func__, "worker %u (pid %ld) exited "
            "with status %d%s", slot, (long)pid, WEXITSTATUS(status),
            m->stopping ? "" : "; restarting");
}

static void
reap(struct master *m)
{
    pid_t   pid;
    int     status, reaped = 0;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (uint32_t s = 0; s < m->rt->nworkers; s++) {
            if (m->w[s].pid != pid)
                continue;
            m->w[s].pid = 0;
            m->nrunning--;
            log_exit(m, s, pid, status);
            if (!m->stopping)
                m->w[s].due = 1;
            reaped = 1;
            break;
        }
    }
    /* A dead worker may have changed the table without reporting it:
     * rebuild the XDP maps before its successor starts. */
    if (reaped && !m->stopping)
        xdp_resync(m->xdp);
}

static void
signal_workers(struct master *m, int sig)
{
    for (uint32_t s = 0; s < m->rt->nworkers; s++)
        if (m->w[s].pid > 0)
            kill(m->w[s].pid, sig);
}

static void
begin_stop(struct master *m)
{
    struct timeval tv = { MASTER_KILL_MS / 1000,
        (MASTER_KILL_MS % 1000) * 1000 };

    log_info(log_get(), "stopping");
    m->stopping = 1;
    portal_stop(m->portal);         /* Close (1000) to the portal */
    evtimer_del(m->ev_respawn);
    evtimer_del(m->ev_summary);
    for (uint32_t s = 0; s < m->rt->nworkers; s++)
        m->w[s].due = 0;
    signal_workers(m, SIGTERM);
    evtimer_add(m->ev_kill, &tv);
}

static void
reload(struct master *m)
{
    struct atab_reload r;

    log_info(log_get(), "SIGHUP: reloading the configuration");
    if (m->rt->reload_fn == NULL || m->rt->reload_fn(m->rt, &r) != 0) {
        log_warn(log_get(), "reload failed; the old configuration stays");
        return;
    }
    atab_reload_publish(m->sh.tab, &r);
    log_set_level((enum rly_log_level)r.log_level);
    xdp_resync(m->xdp);
    log_info(log_get(), "configuration reloaded");
}

/* --- Portal client and HTTP endpoint (master/portal.c, http.c) --- */

/* SPEC §7.6's fatal portal failures (already logged): the normal stop,
 * then exit 1. */
static void
portal_fatal_cb(void *ud)
{
    struct master *m = ud;

    m->fatal = 1;
    m->got_stop = 1;
    event_base_loopbreak(m->base);
}

static int
start_http_portal(struct master *m)
{
    struct runtime     *rt = m->rt;
    struct http_conf    hc;
    struct portal_conf  pc;

    memset(&hc, 0, sizeof(hc));
    hc.tab = m->sh.tab;
    hc.nslots = rt->nworkers;
    hc.nrunning = &m->nrunning;
    hc.metrics = rt->metrics;
    hc.version = PACKAGE_VERSION;
    hc.xdp = m->xdp;
    if (rt->portal_mode) {
        memset(&pc, 0, sizeof(pc));
        pc.url = rt->portal_url;
        pc.token = rt->portal_token;
        pc.name = rt->portal_name;
        pc.ca_file = rt->portal_ca_file;
        pc.ip4 = &rt->public4;
        pc.ip6 = &rt->public6;
        pc.port = rt->listen_port;
        pc.version = PACKAGE_VERSION;
        pc.secret = rt->secret;
        pc.tab = m->sh.tab;
        pc.fatal = portal_fatal_cb;
        pc.ud = m;
        if (portal_start(m->base, &pc, &m->portal) != 0)
            return -1;
        hc.portal = m->portal;
    }
    return http_start(m->http, m->base, &hc);
}

/* --- Set-up and the loop --- */

/* The XDP offload (master/xdp.c), before the privilege drop and the first
 * fork, so that the workers inherit the rings. */
static void
start_xdp(struct master *m)
{
    struct runtime *rt = m->rt;
    struct xdp_conf xc;

    memset(&xc, 0, sizeof(xc));
    xc.ifname = rt->xdp_ifname;
    xc.generic = rt->xdp_generic;
    xc.int4 = rt->xdp_int4;
    xc.int6 = rt->xdp_int6;
    xc.bind4 = rt->bind4;
    xc.bind6 = rt->bind6;
    xc.public4 = rt->public4;
    xc.public6 = rt->public6;
    xc.have4 = rt->public4.family != ADDR_NONE;
    xc.have6 = rt->public6.family != ADDR_NONE;
    xc.listen_port = rt->listen_port;
    xc.port_min = rt->port_min;
    xc.port_max = rt->port_max;
    xc.max_chans = rt->max_chans;
    xc.nworkers = rt->nworkers;
    xc.tab = m->sh.tab;
    m->xdp = xdp_open(&xc);
    rt->xdp_rings = xdp_rings(m->xdp);
    rt->xdp_ring_cap = xdp_ring_cap(m->xdp);
    rt->xdp_efd = xdp_eventfd(m->xdp);
}

static int
add_events(struct master *m)
{
    static const int    sigs[4] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
    struct timeval      every = { MASTER_SUMMARY_S, 0 };

    for (int i = 0; i < 4; i++) {
        m->ev_sig[i] = evsignal_new(m->base, sigs[i], signal_cb, m);
        if (m->ev_sig[i] == NULL || evsignal_add(m->ev_sig[i], NULL) != 0)
            return -1;
    }
    m->ev_summary = event_new(m->base, -1, EV_PERSIST, summary_cb, m);
    m->ev_respawn = evtimer_new(m->base, respawn_cb, m);
    m->ev_kill = evtimer_new(m->base, kill_cb, m);
    if (m->ev_summary == NULL || m->ev_respawn == NULL || m->ev_kill == NULL)
        return -1;
    return event_add(m->ev_summary, &every);
}

static int
setup(struct master *m)
{
    struct runtime *rt = m->rt;
    struct rnd      rnd;

    if (raise_nofile(rt) != 0)
        return -1;
    rnd_init(&rnd, rt->seeded, rt->seed, RND_STREAM_TABLE);
    if (shmem_create(&m->sh, rt->max_allocs, rt->max_chans, rt->nworkers,
        rnd_fill, &rnd) != 0)
        return -1;
    if (listen_open(&m->ls, rt->nworkers,
        rt->public4.family != ADDR_NONE ? &rt->bind4 : NULL,
        rt->public6.family != ADDR_NONE ? &rt->bind6 : NULL) != 0)
        return -1;
    /* The HTTP listener is opened before the privilege drop (§10.5). */
    if ((m->http = http_open(&rt->health)) == NULL)
        return -1;
    /* So is the XDP offload; a failure leaves it off (SPEC §9.2). */
    if (rt->xdp_ifname != NULL)
        start_xdp(m);
    if (drop_privileges(rt, m->xdp != NULL) != 0)
        return -1;
    if ((m->w = calloc(rt->nworkers, sizeof(*m->w))) == NULL ||
        (m->base = event_base_new()) == NULL || add_events(m) != 0 ||
        xdp_start(m->xdp, m->base) != 0) {
        log_error(log_get(), "master: out of memory");
        return -1;
    }
    rt->master_pid = getpid();
    rt->tab = m->sh.tab;
    rt->lfd = m->ls.fd;
    rt->child_cleanup = child_cleanup;
    rt->child_ud = m;
    atab_reload_publish(m->sh.tab, &rt->reload);
    /* Standalone relays serve at once (SPEC §7.5).  In portal mode the gate
     * stays closed until the portal client (later issue) sees the first
     * `init` and calls atab_set_ready(). */
    if (!rt->portal_mode)
        atab_set_ready(m->sh.tab);
    return start_http_portal(m);
}

static void
teardown(struct master *m)
{
    for (int i = 0; i < 4; i++)
        if (m->ev_sig[i] != NULL)
            event_free(m->ev_sig[i]);
    if (m->ev_summary != NULL)
        event_free(m->ev_summary);
    if (m->ev_respawn != NULL)
        event_free(m->ev_respawn);
    if (m->ev_kill != NULL)
        event_free(m->ev_kill);
    portal_free(m->portal);         /* all before the base */
    http_free(m->http);
    xdp_free(m->xdp);
    if (m->base != NULL)
        event_base_free(m->base);
    listen_close(&m->ls);
    shmem_destroy(&m->sh);
    free(m->w);
}

/* One pass over the flags the callbacks set. */
static void
handle_flags(struct master *m)
{
    if (m->got_stop && !m->stopping)
        begin_stop(m);
    m->got_stop = 0;
    if (m->got_hup && !m->stopping)
        reload(m);
    m->got_hup = 0;
    if (m->got_chld) {
        m->got_chld = 0;
        reap(m);
    }
    if (m->got_kill && m->nrunning > 0) {
        struct timeval tv = { 0, MASTER_GIVEUP_MS * 1000 };

        if (m->killed) {
            /* Unkillable (D state?): SPEC §10.5 wants us gone in 5 s. */
            log_error(log_get(), "%u workers did not die; exiting anyway",
                m->nrunning);
            m->nrunning = 0;
        } else {
            log_warn(log_get(), "%u workers still running after %d ms: "
                "killing", m->nrunning, MASTER_KILL_MS);
            signal_workers(m, SIGKILL);
            m->killed = 1;
            evtimer_add(m->ev_kill, &tv);
        }
    }
    m->got_kill = 0;
    m->got_respawn = 0;
    if (!m->stopping)
        spawn_due(m);
}

int
master_run(struct runtime *rt)
{
    struct master   m;
    int             status = 1;

    memset(&m, 0, sizeof(m));
    m.rt = rt;
    m.sh.fd = -1;
    if (setup(&m) != 0)
        goto out;
    log_info(log_get(), "firezone-relay %s: %u workers, %s mode",
        PACKAGE_VERSION, rt->nworkers, rt->portal_mode ? "portal" :
        "standalone");
    for (uint32_t s = 0; s < rt->nworkers; s++)
        m.w[s].due = 1;
    spawn_due(&m);
    while (!m.stopping || m.nrunning > 0) {
        if (event_base_loop(m.base, 0) < 0) {
            log_error(log_get(), "master event loop failed");
            goto out;
        }
        handle_flags(&m);
    }
    log_info(log_get(), "stopped");
    status = m.fatal ? 1 : 0;       /* the portal's exit 1 (SPEC §7.6) */
out:
    if (status != 0 && m.nrunning > 0) {
        signal_workers(&m, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0)
            ;
    }
    teardown(&m);
    return status;
}
