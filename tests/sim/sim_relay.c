/* sim_relay.c - the relay: the real core (one per simulated worker, over
 * one shared allocation table) and a small executor of its commands that
 * plays the worker (SPEC §2.1): sends from the listen or relay sockets,
 * binds relay ports on a simulated host where another program may hold
 * some, tracks CHAN_BOUND/CHAN_UNBOUND, and calls the timer at its
 * deadlines (or, in lazy mode, once a second only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_err.h"
#include "sim.h"

static int
core_rand(void *ud, uint8_t *buf, size_t len)
{
    struct sim_world *w = ud;

    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)sim_rng_next(&w->rng_core);
    return 0;
}

static void
core_log(void *ud, enum rly_log_level level, const char *func,
    const char *msg)
{
    sim_log(ud, "core %s: %s: %s", rly_log_level_name(level), func, msg);
}

const struct addr *
sim_relay_public(const struct sim_world *w, int fam)
{
    return fam == 4 ? &w->relay.pub4 : &w->relay.pub6;
}

int
sim_worker_of(const struct sim_world *w, const struct addr *client)
{
    uint32_t h = 2166136261u;

    /* A stand-in for the kernel's SO_REUSEPORT hash: fixed per socket. */
    for (int i = 0; i < 16; i++)
        h = (h ^ client->ip[i]) * 16777619u;
    h = (h ^ client->port) * 16777619u;
    h ^= h >> 15;
    return (int)(h % (uint32_t)w->relay.nworkers);
}

static int
init_worker(struct sim_world *w, int i)
{
    struct sim_relay  *r = &w->relay;
    struct sim_worker *wk = &r->wk[i];
    struct turn_conf   conf;

    memset(&conf, 0, sizeof(conf));
    if (r->has4)
        conf.public4 = r->pub4;
    if (r->has6)
        conf.public6 = r->pub6;
    conf.public4.port = conf.public6.port = 0;
    conf.listen_port = SIM_LISTEN_PORT;
    conf.port_min = r->port_min;
    conf.port_max = r->port_max;
    conf.max_allocs = r->max_allocs;
    conf.nonce_table_size = w->cfg.table_size;
    conf.error_rate = w->cfg.err_rate;
    conf.error_burst = w->cfg.err_burst ? w->cfg.err_burst : 200;
    conf.policy = &r->pol;
    conf.secret = SIM_SECRET;
    conf.software = SIM_SOFTWARE;
    conf.worker = (uint16_t)i;
    conf.stats = atab_worker_stats(r->tab, (uint32_t)i);
    conf.rand = core_rand;
    conf.rand_ud = w;
    conf.log.fn = core_log;
    conf.log.ud = w;
    conf.log.level = RLY_LOG_WARN;
    conf.gated = 1;
    wk->conf = conf;
    if ((wk->core = turn_core_new(&conf, r->tab)) == NULL)
        return -1;
    /* Small queues: room for one core call, so the timer and adopt stop
     * with 1 ("flush and call again") whenever they have more to do. */
    for (int d = 0; d < SIM_QDEPTH; d++)
        if (turn_cmdq_init(&wk->q[d], w->cfg.small_q ? TURN_CMDS_PER_EVENT :
                d == 0 ? 64 : 16, w->cfg.small_q ? TURN_ARENA_PER_EVENT :
                d == 0 ? 65536 : 8192) != 0)
            return -1;
    wk->phase = sim_rng_below(&w->rng_core, 1000);
    wk->last_tick = 0;
    return 0;
}

int
sim_relay_init(struct sim_world *w)
{
    static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 1 };
    struct sim_relay *r = &w->relay;
    uint8_t           ukey[ATAB_USER_KEY_LEN], hkey[ATAB_HASH_KEY_LEN];

    memset(r, 0, sizeof(*r));
    r->nworkers = w->cfg.nworkers;
    r->has4 = w->cfg.has4;
    r->has6 = w->cfg.has6;
    sim_addr4(&r->pub4, 0xC0000201u, 0);            /* 192.0.2.1 */
    sim_addr6(&r->pub6, ip6, 0);                    /* 2001:db8::1 */
    r->listen4 = r->pub4;
    r->listen6 = r->pub6;
    r->listen4.port = r->listen6.port = SIM_LISTEN_PORT;
    r->port_min = SIM_PORT_MIN;
    r->port_max = w->cfg.port_max;
    r->max_allocs = SIM_MAX_ALLOCS;
    r->max_chans = SIM_MAX_CHANS;
    r->capacity = (uint32_t)r->port_max - r->port_min + 1;
    if (r->capacity > r->max_allocs)
        r->capacity = r->max_allocs;
    core_rand(w, ukey, sizeof(ukey));
    core_rand(w, hkey, sizeof(hkey));
    r->size = atab_region_size(r->max_allocs, r->max_chans,
        (uint32_t)r->nworkers);
    r->region = aligned_alloc(64, (r->size + 63) & ~(size_t)63);
    if (r->region == NULL ||
        atab_format(r->region, r->size, r->max_allocs, r->max_chans,
            (uint32_t)r->nworkers, ukey, hkey) != 0 ||
        atab_attach(r->region, r->size, &r->tab) != 0)
        return -1;
    atab_set_ready(r->tab);
    sim_policy(0, r, &r->pol);
    for (int i = 0; i < r->nworkers; i++)
        if (init_worker(w, i) != 0)
            return -1;
    return 0;
}

void
sim_relay_fini(struct sim_world *w)
{
    struct sim_relay *r = &w->relay;

    for (int i = 0; i < SIM_MAX_WORKERS; i++) {
        if (!r->aborted)
            turn_core_free(r->wk[i].core);
        for (int d = 0; d < SIM_QDEPTH; d++)
            turn_cmdq_fini(&r->wk[i].q[d]);
    }
    if (r->aborted)
        return;     /* a mutex may still be locked: leak the region */
    atab_detach(r->tab);
    free(r->region);
}

int
sim_relay_owns(const struct sim_world *w, const struct addr *dst)
{
    const struct sim_relay *r = &w->relay;

    if (dst->family == ADDR_V4)
        return r->has4 && memcmp(dst->ip, r->pub4.ip, 4) == 0;
    return r->has6 && memcmp(dst->ip, r->pub6.ip, 16) == 0;
}

/* Peer policy variants (SPEC §5.4) the reload transition switches
 * between; the model (sim_model.c) knows the same lists. */
void
sim_policy(int v, const struct sim_relay *r, struct peer_policy *p)
{
    static const char *const allow[][3] = {
        { NULL }, { "203.0.113.9/32", "127.0.0.0/8", NULL },
        { NULL }, { "::1/128", "169.254.0.0/16", NULL } };
    static const char *const deny[][3] = {
        { NULL }, { "203.0.113.0/25", NULL }, { "2001:db8:1::/112",
            "192.0.2.1/32", NULL }, { NULL } };
    struct cidr c;

    peer_policy_init(p);
    if (r->has4)
        peer_policy_listen(p, &r->listen4);
    if (r->has6)
        peer_policy_listen(p, &r->listen6);
    for (int k = 0; k < 3 && allow[v & 3][k] != NULL; k++)
        if (cidr_parse(allow[v & 3][k], &c) == 0)
            peer_policy_allow(p, &c);
    for (int k = 0; k < 3 && deny[v & 3][k] != NULL; k++)
        if (cidr_parse(deny[v & 3][k], &c) == 0)
            peer_policy_deny(p, &c);
}

/* --- Executor -------------------------------------------------------- */

static void
obs_reset(struct sim_obs *o)
{
    o->nsend = o->nopen = o->nbound = o->nunbound = o->nclose = 0;
}

static void exec_queue(struct sim_world *w, int wk, int depth);

static void
record_send(struct sim_world *w, int peer, const struct turn_cmd *c,
    const struct addr *src, const struct addr *dst)
{
    struct sim_obs *o = &w->obs;

    if (o->nsend == 4) {
        sim_fail(w, "too-many-sends", "more than 4 datagrams for one "
            "input");
        return;
    }
    o->send[o->nsend].peer = peer;
    o->send[o->nsend].port = c->port;
    o->send[o->nsend].number = c->number;
    o->send[o->nsend].src = *src;
    o->send[o->nsend].dst = *dst;
    o->send[o->nsend].len = (uint32_t)(c->hdrlen + c->paylen);
    if (c->hdrlen + c->paylen > SIM_DGRAM_MAX) {
        sim_fail(w, "oversize", "datagram of %zu bytes",
            c->hdrlen + c->paylen);
        return;
    }
    if (c->hdrlen > 0)
        memcpy(o->send[o->nsend].data, c->hdr, c->hdrlen);
    if (c->paylen > 0)
        memcpy(o->send[o->nsend].data + c->hdrlen, c->payload, c->paylen);
    o->nsend++;
}

static void
exec_send_client(struct sim_world *w, const struct turn_cmd *c)
{
    const struct sim_relay *r = &w->relay;
    const struct addr      *listen = c->path.remote.family == ADDR_V4 ?
        &r->listen4 : &r->listen6;

    if (w->cur == NULL) {
        sim_fail(w, "timer-send", "the timer sent a datagram to %s",
            sim_addr_str(&c->path.remote, (char[SIM_ADDRSTR]){ 0 },
                SIM_ADDRSTR));
        return;
    }
    if (!sim_addr_eq(&c->path.local, listen) ||
        !(c->path.remote.family == ADDR_V4 ? r->has4 : r->has6)) {
        sim_fail(w, "send-client-src", "SEND_CLIENT from %s, not from the "
            "listen socket of the client's family", sim_addr_str(
                &c->path.local, (char[SIM_ADDRSTR]){ 0 }, SIM_ADDRSTR));
        return;
    }
    record_send(w, 0, c, listen, &c->path.remote);
    sim_net_send(w, listen, &c->path.remote, c->hdr, c->hdrlen, c->payload,
        c->paylen);
}

static void
exec_send_peer(struct sim_world *w, int wk, const struct turn_cmd *c)
{
    struct sim_relay *r = &w->relay;
    struct sim_port  *sp;
    struct addr       src;
    int               fam = c->path.remote.family == ADDR_V4 ? 1 : 2;

    if (w->cur == NULL || c->port < r->port_min || c->port > r->port_max) {
        sim_fail(w, "send-peer-bad", "SEND_PEER from port %u %s",
            (unsigned)c->port, w->cur == NULL ? "by the timer" : "");
        return;
    }
    sp = &r->ports[c->port - r->port_min];
    if (sp->owner != PORT_RELAY || sp->worker != wk || !(sp->fams & fam)) {
        sim_fail(w, "send-peer-nosock", "SEND_PEER from port %u family %d: "
            "worker %d holds no such relay socket", (unsigned)c->port,
            fam == 1 ? 4 : 6, wk);
        return;
    }
    src = *sim_relay_public(w, fam == 1 ? 4 : 6);
    src.port = c->port;
    if (c->hdrlen != 0)
        sim_fail(w, "send-peer-hdr", "SEND_PEER with a header");
    record_send(w, 1, c, &src, &c->path.remote);
    sim_net_send(w, &src, &c->path.remote, c->payload, c->paylen, NULL, 0);
}

static void
report_open(struct sim_world *w, int wk, int depth, struct atab_ref ref,
    int ok)
{
    struct sim_relay *r = &w->relay;
    int               rc;

    if (depth + 1 >= SIM_QDEPTH) {
        sim_fail(w, "open-depth", "RELAY_OPEN retries nest too deep");
        return;
    }
    turn_cmdq_reset(&r->wk[wk].q[depth + 1]);
    rc = turn_core_on_relay_opened(r->wk[wk].core, ref, ok,
        ok ? NULL : "Address already in use", w->now, &r->wk[wk].q[depth + 1]);
    if (rc != 0)
        sim_fail(w, "core-error", "turn_core_on_relay_opened() = %d", rc);
    exec_queue(w, wk, depth + 1);
}

static void
exec_open(struct sim_world *w, int wk, const struct turn_cmd *c, int depth)
{
    struct sim_relay *r = &w->relay;
    struct sim_obs   *o = &w->obs;
    struct sim_port  *sp;
    int               ok;

    if (c->port < r->port_min || c->port > r->port_max || c->families == 0 ||
        (c->families & ~3) || ((c->families & 1) && !r->has4) ||
        ((c->families & 2) && !r->has6)) {
        sim_fail(w, "open-bad", "RELAY_OPEN of port %u families %u",
            (unsigned)c->port, c->families);
        return;
    }
    sim_model_on_open(w, wk, c->port, o->nopen,
        o->nopen > 0 ? o->open[o->nopen - 1].port : 0, w->cur);
    sp = &r->ports[c->port - r->port_min];
    if (sp->owner == PORT_RELAY) {
        sim_fail(w, "open-twice", "RELAY_OPEN of port %u, already bound by "
            "the relay", (unsigned)c->port);
        return;
    }
    if (w->failed)
        return;
    if (o->nopen == (int)(sizeof(o->open) / sizeof(o->open[0]))) {
        sim_fail(w, "harness", "more RELAY_OPEN than allocations");
        return;
    }
    ok = sp->owner == PORT_FREE;
    w->st[ST_BINDFAIL] += !ok;
    if (ok) {
        sp->owner = PORT_RELAY;
        sp->fams = c->families;
        sp->worker = (uint8_t)wk;
        sp->ref = c->ref;
    }
    sim_log(w, "relay: worker %d RELAY_OPEN %u (families %u, ref %u/%u): %s",
        wk, c->port, c->families, c->ref.idx, c->ref.gen, ok ? "bound" :
        "refused");
    o->open[o->nopen].port = c->port;
    o->open[o->nopen].fams = c->families;
    o->open[o->nopen].ok = (uint8_t)ok;
    o->open[o->nopen].ref = c->ref;
    o->nopen++;
    if (w->cfg.open_late) {
        /* As the worker does: results after the rest of the batch. */
        if (r->nlate == (int)(sizeof(r->late) / sizeof(r->late[0]))) {
            sim_fail(w, "harness", "too many pending opens");
            return;
        }
        r->late[r->nlate].worker = wk;
        r->late[r->nlate].depth = depth;
        r->late[r->nlate].ref = c->ref;
        r->late[r->nlate].ok = (uint8_t)ok;
        r->nlate++;
        return;
    }
    report_open(w, wk, depth, c->ref, ok);
}

static void
untrack_port(struct sim_world *w, int wk, uint16_t port)
{
    for (size_t i = 0; i < sizeof(w->relay.track) / sizeof(w->relay.track[0]);
         i++) {
        struct sim_track *t = &w->relay.track[i];

        if (t->used && t->worker == wk && t->port == port)
            t->used = 0;
    }
}

static int
open_failed(const struct sim_world *w, const struct turn_cmd *c)
{
    for (int i = 0; i < w->obs.nopen; i++)
        if (w->obs.open[i].port == c->port && !w->obs.open[i].ok &&
            w->obs.open[i].ref.idx == c->ref.idx &&
            w->obs.open[i].ref.gen == c->ref.gen)
            return 1;
    return 0;
}

static void
exec_close(struct sim_world *w, int wk, const struct turn_cmd *c)
{
    struct sim_relay *r = &w->relay;
    struct sim_port  *sp;

    if (c->port < r->port_min || c->port > r->port_max) {
        sim_fail(w, "close-bad", "RELAY_CLOSE of port %u", (unsigned)c->port);
        return;
    }
    sp = &r->ports[c->port - r->port_min];
    if (w->cur != NULL && w->cur->kind == EX_ADOPT && open_failed(w, c)) {
        /* A lost allocation: its port could not be bound again. */
        untrack_port(w, wk, c->port);
        w->obs.nclose++;
        sim_model_on_close(w, wk, c->port, c->ref, w->cur);
        return;
    }
    if (sp->owner != PORT_RELAY || sp->worker != wk ||
        sp->ref.idx != c->ref.idx || sp->ref.gen != c->ref.gen) {
        sim_fail(w, "close-nosock", "RELAY_CLOSE of port %u by worker %d: "
            "no such socket of this allocation", (unsigned)c->port, wk);
        return;
    }
    sim_log(w, "relay: worker %d RELAY_CLOSE %u", wk, c->port);
    sp->owner = PORT_FREE;
    untrack_port(w, wk, c->port);
    w->obs.nclose++;
    sim_model_on_close(w, wk, c->port, c->ref, w->cur);
}

/* Keyed by relay port too: for up to a second a client socket may have
 * two allocations, a deleted one its owner has not reaped yet and a new
 * one, with the same channel number. */
static struct sim_track *
track_find(struct sim_world *w, int wk, const struct turn_cmd *c)
{
    for (size_t i = 0; i < sizeof(w->relay.track) / sizeof(w->relay.track[0]);
         i++) {
        struct sim_track *t = &w->relay.track[i];

        if (t->used && t->worker == wk && t->number == c->number &&
            t->port == c->port && sim_addr_eq(&t->client, &c->path.remote))
            return t;
    }
    return NULL;
}

static void
exec_bound(struct sim_world *w, int wk, const struct turn_cmd *c)
{
    struct sim_obs   *o = &w->obs;
    struct sim_track *t = track_find(w, wk, c);

    if (w->cur == NULL) {
        sim_fail(w, "timer-bound", "CHAN_BOUND from the timer");
        return;
    }
    if (t == NULL) {
        for (size_t i = 0; i < sizeof(w->relay.track) /
             sizeof(w->relay.track[0]); i++)
            if (!w->relay.track[i].used) {
                t = &w->relay.track[i];
                break;
            }
        if (t == NULL) {
            sim_fail(w, "track-full", "more CHAN_BOUND than channels");
            return;
        }
    }
    t->used = 1;
    t->worker = (uint8_t)wk;
    t->number = c->number;
    t->port = c->port;
    t->client = c->path.remote;
    t->peer = c->peer;
    if (o->nbound < OBS_MAX) {
        o->bound[o->nbound].client = c->path.remote;
        o->bound[o->nbound].peer = c->peer;
        o->bound[o->nbound].number = c->number;
        o->bound[o->nbound].port = c->port;
    }
    o->nbound++;
}

static void
exec_unbound(struct sim_world *w, int wk, const struct turn_cmd *c)
{
    struct sim_track *t = track_find(w, wk, c);

    if (t == NULL || !sim_addr_eq(&t->peer, &c->peer))
        sim_fail(w, "unbound-untracked", "CHAN_UNBOUND 0x%04x for a channel "
            "that is not relaying", (unsigned)c->number);
    else
        t->used = 0;
    w->obs.nunbound++;
    sim_model_on_unbound(w, c);
}

static void
report_late(struct sim_world *w, int wk, int mark)
{
    struct sim_relay *r = &w->relay;

    for (int k = mark; k < r->nlate && !w->failed; k++) {
        int save = r->nlate;

        report_open(w, wk, r->late[k].depth, r->late[k].ref, r->late[k].ok);
        r->nlate = save;
    }
    r->nlate = mark;
}

static void
exec_queue(struct sim_world *w, int wk, int depth)
{
    struct turn_cmdq *q = &w->relay.wk[wk].q[depth];
    int               mark = w->relay.nlate;

    for (size_t i = 0; i < q->n && !w->failed; i++) {
        const struct turn_cmd *c = &q->cmd[i];

        switch (c->kind) {
        case TURN_CMD_SEND_CLIENT:
            exec_send_client(w, c);
            break;
        case TURN_CMD_SEND_PEER:
            exec_send_peer(w, wk, c);
            break;
        case TURN_CMD_RELAY_OPEN:
            exec_open(w, wk, c, depth);
            break;
        case TURN_CMD_RELAY_CLOSE:
            exec_close(w, wk, c);
            break;
        case TURN_CMD_CHAN_BOUND:
            exec_bound(w, wk, c);
            break;
        case TURN_CMD_CHAN_UNBOUND:
            exec_unbound(w, wk, c);
            break;
        default:
            sim_fail(w, "cmd-kind", "unknown command kind %d", c->kind);
        }
    }
    if (w->relay.nlate > mark)
        report_late(w, wk, mark);
}

/* --- Respawn and reload ---------------------------------------------- */

void
sim_relay_respawn(struct sim_world *w, int i, uint32_t grab)
{
    struct sim_relay  *r = &w->relay;
    struct sim_worker *wk = &r->wk[i];
    struct sim_expect  ex;
    int                rc;

    if (i >= r->nworkers)
        return;
    w->st[ST_RESPAWN]++;
    sim_log(w, "relay: worker %d dies and is respawned", i);
    turn_core_free(wk->core);
    wk->core = NULL;
    for (uint32_t p = r->port_min; p <= r->port_max; p++) {
        struct sim_port *sp = &r->ports[p - r->port_min];

        if (sp->owner != PORT_RELAY || sp->worker != i)
            continue;
        sp->owner = PORT_FREE;
        if (grab > 0 && sim_rng_pm(&w->rng_core, 300)) {
            sp->owner = PORT_PROGRAM;
            grab--;
        }
    }
    /* adopt releases the dead worker's deleted allocations without a
     * command: nothing tells a CHAN_BOUND consumer (an XDP map that
     * outlives the worker) that their channels stopped.  See the report;
     * here the consumer is told. */
    for (int k = 0; k < M_ALLOCS; k++)
        if (w->model.a[k].state == M_KICKED && w->model.a[k].worker == i)
            untrack_port(w, i, w->model.a[k].port);
    sim_model_respawn(w, i);
    if (w->verbose)
        for (uint32_t k = 0; k < r->max_allocs; k++) {
            struct atab_alloc *a = atab_alloc_at(r->tab, k);

            if (atab_alloc_state(a) != ATAB_A_FREE)
                sim_log(w, "relay: slot %u: state %u owner %u port %u "
                    "commit %u", k, atab_alloc_state(a), a->owner, a->port,
                    a->commit);
        }
    if ((wk->core = turn_core_new(&wk->conf, r->tab)) == NULL) {
        sim_fail(w, "core-error", "turn_core_new() failed on respawn");
        return;
    }
    turn_core_reload(wk->core, &r->pol, wk->conf.error_rate,
        wk->conf.error_burst, wk->conf.log.level);
    memset(&ex, 0, sizeof(ex));
    ex.kind = EX_ADOPT;
    ex.del = ex.replay = ex.chan = ex.alloc = ex.own_del = -1;
    ex.worker = i;
    w->cur = &ex;
    w->tab_dirty = 1;
    obs_reset(&w->obs);
    do {
        turn_cmdq_reset(&wk->q[0]);
        rc = turn_core_adopt(wk->core, w->now, &wk->q[0]);
        if (rc < 0)
            sim_fail(w, "core-error", "turn_core_adopt() = %d", rc);
        exec_queue(w, i, 0);
    } while (rc == 1 && !w->failed);
    w->cur = NULL;
    w->st[ST_ADOPTED] += (uint64_t)turn_core_owned(wk->core);
    wk->kicks_seen = atab_worker_kicks(r->tab, (uint32_t)i);
    wk->kick_due = 0;
}

void
sim_relay_reload(struct sim_world *w, int v)
{
    struct sim_relay *r = &w->relay;

    r->policy = v;
    sim_policy(v, r, &r->pol);
    w->st[ST_RELOAD]++;
    for (int i = 0; i < r->nworkers; i++)
        turn_core_reload(r->wk[i].core, &r->pol, r->wk[i].conf.error_rate,
            r->wk[i].conf.error_burst, r->wk[i].conf.log.level);
}

/* --- Timers ---------------------------------------------------------- */

static uint64_t
tick_at(const struct sim_worker *wk, uint64_t t)
{
    if (t <= wk->phase)
        return wk->phase;
    return wk->phase + (t - wk->phase + 999) / 1000 * 1000;
}

static uint64_t
worker_next(const struct sim_world *w, int i)
{
    const struct sim_worker *wk = &w->relay.wk[i];
    uint64_t                 t, kicks = 0;

    (void)kicks;
    /* Every worker runs its timer at least once a second (a tick); a
     * precise one also at the core's next deadline. */
    t = tick_at(wk, wk->last_tick + 1);
    if (w->cfg.lazy)
        return t;
    if (turn_core_next_deadline(wk->core) < t)
        t = turn_core_next_deadline(wk->core);
    if (wk->kick_due != 0 && wk->kick_due < t)
        t = wk->kick_due;
    return t;
}

uint64_t
sim_relay_next(const struct sim_world *w)
{
    uint64_t t = UINT64_MAX;

    for (int i = 0; i < w->relay.nworkers; i++) {
        uint64_t k = worker_next(w, i);

        if (k < t)
            t = k;
    }
    return t;
}

uint64_t
sim_relay_deadline(const struct sim_world *w)
{
    uint64_t t = UINT64_MAX;

    for (int i = 0; i < w->relay.nworkers; i++)
        if (turn_core_next_deadline(w->relay.wk[i].core) < t)
            t = turn_core_next_deadline(w->relay.wk[i].core);
    return t;
}

static void
run_timer(struct sim_world *w, int i)
{
    struct sim_worker *wk = &w->relay.wk[i];
    int                rc;

    w->cur = NULL;
    w->tab_dirty = 1;
    do {
        obs_reset(&w->obs);
        turn_cmdq_reset(&wk->q[0]);
        rc = turn_core_on_timer(wk->core, w->now, &wk->q[0]);
        if (rc < 0) {
            sim_fail(w, "core-error", "turn_core_on_timer() = %d", rc);
            return;
        }
        exec_queue(w, i, 0);
        if (w->obs.nclose + w->obs.nunbound > 0)
            sim_log(w, "relay: timer of worker %d: %d closed, %d unbound", i,
                w->obs.nclose, w->obs.nunbound);
    } while (rc == 1 && !w->failed);
    wk->kicks_seen = atab_worker_kicks(w->relay.tab, (uint32_t)i);
    wk->kick_due = 0;
    wk->last_tick = w->now;
}

/* Another worker (or this one) deleted an allocation of worker i: its
 * next tick, within a second, reaps it (SPEC §4.6 step 3). */
static void
note_kicks(struct sim_world *w)
{
    for (int i = 0; i < w->relay.nworkers; i++) {
        struct sim_worker *wk = &w->relay.wk[i];

        if (wk->kick_due == 0 &&
            atab_worker_kicks(w->relay.tab, (uint32_t)i) != wk->kicks_seen)
            wk->kick_due = tick_at(wk, w->now + 1);
    }
}

void
sim_relay_timers(struct sim_world *w, int force)
{
    for (int i = 0; i < w->relay.nworkers && !w->failed; i++)
        if (force || worker_next(w, i) <= w->now)
            run_timer(w, i);
}

/* --- Inputs ---------------------------------------------------------- */

static void
trace(struct sim_world *w, const struct sim_dgram *d,
    const struct sim_expect *ex, int rc, enum turn_drop drop)
{
    char           s[SIM_ADDRSTR], t[SIM_ADDRSTR], what[160], out[200];
    struct sim_msg m;
    size_t         n = 0;

    if (!w->verbose)
        return;
    if (d->dst.port == SIM_LISTEN_PORT && d->len > 0 && d->data[0] <= 3)
        snprintf(what, sizeof(what), "STUN method 0x%03x", ex->req.method);
    else if (d->dst.port == SIM_LISTEN_PORT && d->len >= 4)
        snprintf(what, sizeof(what), "ChannelData 0x%02x%02x (%u bytes)",
            d->data[0], d->data[1], d->len - 4);
    else
        snprintf(what, sizeof(what), "peer datagram (%u bytes)", d->len);
    out[0] = '\0';
    if (rc != 0)
        n += (size_t)snprintf(out, sizeof(out), "drop %s",
            turn_drop_name(drop));
    for (int i = 0; i < w->obs.nsend && n < sizeof(out); i++) {
        unsigned code = 0;

        if (!w->obs.send[i].peer && w->obs.send[i].data[0] <= 3 &&
            sim_msg_parse(&m, w->obs.send[i].data, w->obs.send[i].len) == 0
            && m.cls == SC_ERROR && sim_msg_get(&m, SA_ERROR_CODE, NULL))
            code = (unsigned)(sim_msg_get(&m, SA_ERROR_CODE, NULL)[2] & 7) *
                100 + sim_msg_get(&m, SA_ERROR_CODE, NULL)[3];
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s %s%s%u",
            n ? "; " : "", w->obs.send[i].peer ? "to peer" : "to client",
            sim_addr_str(&w->obs.send[i].dst, t, sizeof(t)),
            w->obs.send[i].peer ? " from port " : (code ? " code " :
                " code "), w->obs.send[i].peer ? w->obs.send[i].port : code);
    }
    for (int i = 0; i < w->obs.nopen && n < sizeof(out); i++)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "; open %u %s",
            w->obs.open[i].port, w->obs.open[i].ok ? "ok" : "refused");
    sim_log(w, "relay: %s -> %s: %s: %s", sim_addr_str(&d->src, s,
        sizeof(s)), sim_addr_str(&d->dst, t, sizeof(t)), what, out);
}

static void
client_input(struct sim_world *w, const struct sim_dgram *d)
{
    struct sim_expect ex;
    struct addr_path  path;
    enum turn_drop    drop = TURN_DROP_NONE;
    int               wk = sim_worker_of(w, &d->src), rc;

    sim_model_predict_client(w, wk, d, &ex);
    if (d->len > 0 && d->data[0] <= 3)
        w->tab_dirty = 1;
    path.local = d->dst;
    path.remote = d->src;
    obs_reset(&w->obs);
    w->cur = &ex;
    turn_cmdq_reset(&w->relay.wk[wk].q[0]);
    rc = turn_core_on_client(w->relay.wk[wk].core, &path, d->data, d->len,
        w->now, sim_wall(w), &w->relay.wk[wk].q[0], &drop);
    if (rc != 0 && rc != RLY_ERR_DROP)
        sim_fail(w, "core-error", "turn_core_on_client() = %d", rc);
    exec_queue(w, wk, 0);
    trace(w, d, &ex, rc, drop);
    sim_model_settle(w, &ex, rc, drop, &w->obs, &d->src);
    w->cur = NULL;
    note_kicks(w);
}

static void
peer_input(struct sim_world *w, const struct sim_dgram *d)
{
    struct sim_relay *r = &w->relay;
    struct sim_port  *sp = &r->ports[d->dst.port - r->port_min];
    struct sim_expect ex;
    enum turn_drop    drop = TURN_DROP_NONE;
    int               wk = sp->worker, rc;

    sim_model_predict_peer(w, wk, d->dst.port, d, &ex);
    obs_reset(&w->obs);
    w->cur = &ex;
    turn_cmdq_reset(&r->wk[wk].q[0]);
    rc = turn_core_on_peer(r->wk[wk].core, sp->ref, d->dst.port, &d->src,
        d->data, d->len, w->now, &r->wk[wk].q[0], &drop);
    if (rc != 0 && rc != RLY_ERR_DROP)
        sim_fail(w, "core-error", "turn_core_on_peer() = %d", rc);
    exec_queue(w, wk, 0);
    trace(w, d, &ex, rc, drop);
    sim_model_settle(w, &ex, rc, drop, &w->obs, &d->src);
    w->cur = NULL;
    note_kicks(w);
}

void
sim_relay_input(struct sim_world *w, const struct sim_dgram *d)
{
    struct sim_relay *r = &w->relay;
    int               fam = d->dst.family == ADDR_V4 ? 1 : 2;

    sim_relay_timers(w, 0);
    if (w->failed)
        return;
    if (d->dst.port == SIM_LISTEN_PORT) {
        w->n_requests++;
        client_input(w, d);
        return;
    }
    if (d->dst.port < r->port_min || d->dst.port > r->port_max)
        return;
    if (r->ports[d->dst.port - r->port_min].owner != PORT_RELAY ||
        !(r->ports[d->dst.port - r->port_min].fams & fam))
        return;         /* nothing listening there (or another program) */
    w->n_data++;
    peer_input(w, d);
}
