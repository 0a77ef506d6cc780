/* sim_check.c - the whole-state comparison after every transition: the
 * table against the reference model (allocations, channels, counts, port
 * holders, relay sockets), atab_check(), the CHAN_BOUND/CHAN_UNBOUND
 * stream against the bound channels, and the core's counters (SPEC §10.2,
 * §10.3) against what the model observed.  --black-box keeps only what
 * leaves the core. */
#include <string.h>

#include "sim.h"

/* --- Whole-state comparison ------------------------------------------- */

static void
check_alloc(struct sim_world *w, int i)
{
    const struct m_alloc  *a = &w->model.a[i];
    const struct sim_port *sp;
    struct atab_alloc     *t = atab_alloc_get(w->relay.tab, a->ref);
    uint32_t               want = a->state == M_LIVE ? ATAB_A_LIVE :
        ATAB_A_DELETED;

    if (t == NULL || atab_alloc_state(t) != want || t->port != a->port ||
        t->families != a->fams || t->owner != a->worker ||
        !sim_addr_eq(&t->client, &a->client) ||
        t->lifetime != a->lifetime ||
        (a->state == M_LIVE && t->expiry != a->expiry)) {
        sim_fail(w, "table-alloc", "allocation of %s (port %u) differs in "
            "the table: %s", sim_fmt_addr(&a->client), (unsigned)a->port,
            t == NULL ? "missing" : "fields");
        return;
    }
    if (atab_port_holder(w->relay.tab, a->port) != a->ref.idx)
        sim_fail(w, "table-port", "port %u not held by its allocation",
            (unsigned)a->port);
    sp = &w->relay.ports[a->port - w->relay.port_min];
    if (sp->owner != PORT_RELAY || sp->worker != a->worker ||
        sp->fams != a->fams)
        sim_fail(w, "socket", "allocation of %s on port %u has no relay "
            "socket for families %u", sim_fmt_addr(&a->client),
            (unsigned)a->port, a->fams);
    if (a->state == M_LIVE && a->expiry + w->grace < w->now)
        sim_fail(w, "not-expired", "allocation of %s expired at %llu, still "
            "there at %llu (SPEC §6)", sim_fmt_addr(&a->client),
            (unsigned long long)a->expiry, (unsigned long long)w->now);
    if (a->state == M_KICKED && a->kicked_at + 1000 < w->now)
        sim_fail(w, "kick-not-reaped", "allocation of %s deleted by another "
            "worker at %llu still holds port %u at %llu (SPEC §4.6: 1 s)",
            sim_fmt_addr(&a->client), (unsigned long long)a->kicked_at,
            (unsigned)a->port, (unsigned long long)w->now);
}

static void
check_chan(struct sim_world *w, const struct m_chan *c)
{
    const struct m_alloc *a = &w->model.a[c->alloc];
    uint32_t              k;
    struct atab_chan     *t;
    int                   bound = w->now < c->until;

    if (a->state != M_LIVE || sim_chan_gone(w, c))
        return;
    k = atab_chan_find_num(w->relay.tab, a->ref.idx, c->number);
    t = k == ATAB_NONE ? NULL : atab_chan_at(w->relay.tab, k);
    if (t == NULL || !sim_addr_eq(&t->peer, &c->peer) ||
        t->expiry != c->until ||
        (w->grace == 0 && (t->state == ATAB_C_BOUND) != bound)) {
        sim_fail(w, "table-chan", "channel 0x%04x of %s to %s: %s",
            (unsigned)c->number, sim_fmt_addr(&a->client),
            sim_fmt_addr(&c->peer), t == NULL ? "missing from the table" :
            "differs in the table");
    }
}

/* CHAN_BOUND minus CHAN_UNBOUND (and RELAY_CLOSE) must be exactly the
 * bound channels of the model: each tracked entry names a distinct model
 * channel, so equal counts make it a bijection. */
static void
check_tracks(struct sim_world *w, const int16_t *pm)
{
    const struct sim_relay *r = &w->relay;
    uint32_t                ntracked = 0, nbound = 0, nloose = 0;

    for (size_t i = 0; i < sizeof(r->track) / sizeof(r->track[0]); i++) {
        const struct sim_track *t = &r->track[i];
        int                     a, c;

        if (!t->used)
            continue;
        ntracked++;
        a = t->port >= r->port_min && t->port <= r->port_max ?
            pm[t->port - r->port_min] : -1;
        c = a < 0 ? -1 : sim_model_chan(w, a, t->number);
        if (c < 0 || !sim_addr_eq(&w->model.c[c].peer, &t->peer) ||
            !sim_addr_eq(&w->model.a[a].client, &t->client) ||
            w->model.c[c].until + w->grace <= w->now)
            sim_fail(w, "chan-relaying", "CHAN_BOUND %s 0x%04x -> %s still "
                "relaying, not bound in the model", sim_fmt_addr(&t->client),
                (unsigned)t->number, sim_fmt_addr(&t->peer));
    }
    for (int i = 0; i < M_CHANS; i++) {
        nbound += w->model.c[i].used && w->now < w->model.c[i].until;
        nloose += w->model.c[i].used &&
            w->now < w->model.c[i].until + w->grace;
    }
    if (!w->failed && (ntracked < nbound || ntracked > nloose))
        sim_fail(w, "chan-relaying", "%u channels relaying after "
            "CHAN_BOUND/CHAN_UNBOUND, %u bound in the model", ntracked,
            nbound);
}

static void
check_counts(struct sim_world *w)
{
    uint32_t active, live, bound, nlive = 0, nslots = 0, nb = 0, nc = 0;
    uint32_t ncl = 0;
    struct sim_relay *r = &w->relay;

    atab_count(r->tab, &active, &live, &bound);
    for (int i = 0; i < M_ALLOCS; i++) {
        nslots += w->model.a[i].state != M_FREE;
        nlive += w->model.a[i].state == M_LIVE;
    }
    for (int i = 0; i < M_CHANS; i++) {
        const struct m_chan *c = &w->model.c[i];

        if (!c->used)
            continue;
        nc += w->now < c->until + SIM_CHAN_COOL_MS;
        ncl += w->now < c->until + SIM_CHAN_COOL_MS + w->grace;
        nb += w->model.a[c->alloc].state == M_LIVE && w->now < c->until;
    }
    if (active != nlive || live != nlive ||
        r->max_allocs - atab_free_allocs(r->tab) != nslots)
        sim_fail(w, "table-count", "table: %u active, %u live, %u slots "
            "used; model: %u live, %u slots", active, live,
            r->max_allocs - atab_free_allocs(r->tab), nlive, nslots);
    if (w->grace == 0 && (bound != nb ||
            r->max_chans - atab_free_chans(r->tab) != nc))
        sim_fail(w, "table-count", "table: %u bound channels, %u channel "
            "slots used; model: %u bound, %u not deleted", bound,
            r->max_chans - atab_free_chans(r->tab), nb, nc);
    if (w->grace > 0 && (r->max_chans - atab_free_chans(r->tab) < nc ||
            r->max_chans - atab_free_chans(r->tab) > ncl))
        sim_fail(w, "table-count", "table: %u channel slots used; model: "
            "%u to %u", r->max_chans - atab_free_chans(r->tab), nc, ncl);
}

static void
check_ports(struct sim_world *w, const int16_t *pm)
{
    struct sim_relay *r = &w->relay;

    for (uint32_t p = r->port_min; p <= r->port_max; p++) {
        if (pm[p - r->port_min] >= 0)
            continue;
        if (atab_port_holder(r->tab, (uint16_t)p) != ATAB_NONE)
            sim_fail(w, "port-leak", "port %u held in the table by no "
                "allocation of the model", p);
        if (r->ports[p - r->port_min].owner == PORT_RELAY)
            sim_fail(w, "socket-leak", "relay socket on port %u left open",
                p);
    }
}

/* The core's counters (SPEC §10.2, §10.3) against what the model saw:
 * every drop counted under its reason, every response under its code,
 * every relayed datagram and payload byte. */
static void
check_stats(struct sim_world *w)
{
    static const int slot[XB_N] = { TURN_RESP_SUCCESS, TURN_RESP_400,
        TURN_RESP_401, TURN_RESP_403, TURN_RESP_437, TURN_RESP_438,
        TURN_RESP_440, TURN_RESP_443, TURN_RESP_508, TURN_RESP_500 };
    struct turn_stats sum;

    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < w->relay.nworkers; i++)
        turn_stats_sum(&sum, atab_worker_stats(w->relay.tab, (uint32_t)i));
    for (int d = 1; d < TURN_DROP_COUNT; d++)
        if (sum.dropped[d] != w->st[ST_DROP + d])
            sim_fail(w, "stats-drop", "relay_dropped_packets_total{%s} is "
                "%llu, the model saw %llu", turn_drop_name((enum turn_drop)d),
                (unsigned long long)sum.dropped[d],
                (unsigned long long)w->st[ST_DROP + d]);
    for (int x = 0; x < XB_N; x++)
        for (int mt = 0; mt < TURN_MT_COUNT; mt++)
            if (sum.responses[mt][slot[x]] != w->st_mt[mt][x])
                sim_fail(w, "stats-resp", "relay_responses_total{%s, code "
                    "slot %d} is %llu, the model saw %llu",
                    turn_msgtype_name((enum turn_msgtype)mt), slot[x],
                    (unsigned long long)sum.responses[mt][slot[x]],
                    (unsigned long long)w->st_mt[mt][x]);
    if (sum.allocations_lost != w->st[ST_LOST])
        sim_fail(w, "stats-lost", "relay_allocations_lost_total is %llu, "
            "%llu allocations were lost", (unsigned long long)
            sum.allocations_lost, (unsigned long long)w->st[ST_LOST]);
    if (sum.relayed_packets[TURN_DIR_C2P] != w->st[ST_TO_PEER] ||
        sum.relayed_packets[TURN_DIR_P2C] != w->st[ST_TO_CLIENT] ||
        sum.relayed_bytes[TURN_DIR_C2P] != w->st[ST_BYTES_PEER] ||
        sum.relayed_bytes[TURN_DIR_P2C] != w->st[ST_BYTES_CLIENT])
        sim_fail(w, "stats-relayed", "relayed packets/bytes %llu/%llu to "
            "peers and %llu/%llu to clients; the model saw %llu/%llu and "
            "%llu/%llu", (unsigned long long)sum.relayed_packets[0],
            (unsigned long long)sum.relayed_bytes[0],
            (unsigned long long)sum.relayed_packets[1],
            (unsigned long long)sum.relayed_bytes[1],
            (unsigned long long)w->st[ST_TO_PEER],
            (unsigned long long)w->st[ST_BYTES_PEER],
            (unsigned long long)w->st[ST_TO_CLIENT],
            (unsigned long long)w->st[ST_BYTES_CLIENT]);
}

void
sim_model_check(struct sim_world *w, int final)
{
    int16_t pm[SIM_PORT_MAX - SIM_PORT_MIN + 1];
    int     rc;

    if (w->failed)
        return;
    /* atab_check() only reads the table: with no core call that could
     * change it since the last check, it would say the same again. */
    if ((final || w->tab_dirty) && (rc = atab_check(w->relay.tab)) != 0) {
        sim_fail(w, "atab-check", "atab_check() = %d: the table's indexes "
            "disagree", rc);
        return;
    }
    w->tab_dirty = 0;
    for (int i = 0; i < M_CHANS; i++) {
        struct m_chan *c = &w->model.c[i];

        if (c->used && w->now >= c->until + SIM_CHAN_COOL_MS + w->grace)
            c->used = 0;
    }
    memset(pm, 0xff, sizeof(pm));
    for (int i = 0; i < M_ALLOCS && !w->failed; i++)
        if (w->model.a[i].state != M_FREE) {
            pm[w->model.a[i].port - w->relay.port_min] = (int16_t)i;
            if (!sim_blackbox)
                check_alloc(w, i);
        }
    for (int i = 0; i < M_CHANS && !w->failed && !sim_blackbox; i++)
        if (w->model.c[i].used)
            check_chan(w, &w->model.c[i]);
    if (!w->failed && !sim_blackbox)
        check_counts(w);
    if (!w->failed && !sim_blackbox)
        check_ports(w, pm);
    if (!w->failed)
        check_tracks(w, pm);
    if (!w->failed)
        check_stats(w);
    (void)final;
}
