/* sim_gen.c - transitions: chosen from the world's state and a seed,
 * recorded with concrete parameters, and carried out later (possibly on a
 * shrunk list, where the agent a transition names may not exist any more:
 * it is then a no-op).  Each transition reseeds the world's random streams
 * from its own rs, so deleting one disturbs the others as little as
 * possible. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define ADD_GATEWAY     0x01
#define ADD_STACK(b)    (((b) >> 1) & 3)
#define ADD_V6SESSION   0x08
#define ADD_KEEP        0x10
#define ADD_CRED(b)     (((b) >> 5) & 3)
#define ADD_ALLOCATE    0x80

enum bind_kind {
    BK_HOST4 = 0, BK_HOST6, BK_RELAYED4, BK_RELAYED6, BK_BAD, BK_PORT4,
    BK_PORT6, BK_OWNPEER, BK_OLDPEER
};

enum bad_kind {
    BAD_NUM_LOW = 0, BAD_NUM_HIGH, BAD_NO_TRANSPORT, BAD_TCP, BAD_RAF_AAF,
    BAD_AAF4, BAD_ANON, BAD_NO_PEER, BAD_FP_ALLOC, BAD_N
};

static const char *const names[TR_N] = {
    "add", "remove", "allocate", "refresh", "bind", "connect", "probe",
    "stray", "advance", "nat-rebind", "creds", "hold-port", "simple", "bad",
    "respawn", "reload", "flood", "twin", "flap"
};

const char *
sim_tr_name(uint32_t kind)
{
    return kind < TR_N ? names[kind] : "?";
}

/* Peers the policy must refuse (403) or, for the last two, allow. */
static void
bad_peer(uint32_t k, struct addr *a)
{
    static const uint8_t v6[][16] = {
        { [15] = 1 },                                           /* ::1 */
        { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },               /* listen */
        { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 },     /* mapped lo */
        { 0xfe, 0x80, [15] = 1 },                           /* fe80::1 */
        { 0, 0x64, 0xff, 0x9b, [12] = 0xa9, 0xfe, 1, 1 },   /* NAT64 */
        { 0xfd, [15] = 1 },                                 /* fd00::1 */
    };

    switch (k % 12) {
    case 0:  sim_addr4(a, 0x7F000001u, 5000); break;
    case 1:  sim_addr6(a, v6[0], 5000); break;
    case 2:  sim_addr4(a, 0xC0000201u, SIM_LISTEN_PORT); break;
    case 3:  sim_addr6(a, v6[1], SIM_LISTEN_PORT); break;
    case 4:  sim_addr4(a, 0xA9FE0101u, 5000); break;
    case 5:  sim_addr6(a, v6[2], 5000); break;
    case 6:  sim_addr4(a, 0xCB007109u, 0); break;
    case 7:  sim_addr4(a, 0xE0000001u, 5000); break;
    case 8:  sim_addr6(a, v6[3], 5000); break;
    case 9:  sim_addr6(a, v6[4], 5000); break;
    case 10: sim_addr4(a, 0x0A010203u, 5000); break;
    default: sim_addr6(a, v6[5], 5000); break;
    }
}

/* --- Choosing -------------------------------------------------------- */

typedef int (*pick_fn)(const struct sim_world *w, const struct sim_agent *ag);

static int
any_agent(const struct sim_world *w, const struct sim_agent *ag)
{
    (void)w;
    (void)ag;
    return 1;
}

static int
allocated(const struct sim_world *w, const struct sim_agent *ag)
{
    (void)w;
    return ag->state == AG_ALLOCATED && ag->nrelayed > 0;
}

static int
idle_agent(const struct sim_world *w, const struct sim_agent *ag)
{
    (void)w;
    return ag->state == AG_IDLE;
}

static int
has_chan(const struct sim_world *w, const struct sim_agent *ag)
{
    for (int k = 0; k < SIM_AG_CHANS; k++)
        if (sim_agent_chan_ok(w, ag, &ag->ch[k]))
            return 1;
    return 0;
}

static struct sim_agent *
pick(const struct sim_world *w, struct sim_rng *g, pick_fn ok, int gateway)
{
    struct sim_agent *c[SIM_MAX_AGENTS];
    uint32_t          n = 0;

    for (uint32_t i = 0; i < w->nalive; i++)
        if (ok(w, w->live[i]) && (gateway < 0 ||
                w->live[i]->gateway == gateway))
            c[n++] = w->live[i];
    return n == 0 ? NULL : c[sim_rng_below(g, n)];
}

static uint32_t
count(const struct sim_world *w, pick_fn ok)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->nalive; i++)
        n += (uint32_t)ok(w, w->live[i]);
    return n;
}

static uint32_t
life_choice(struct sim_rng *g)
{
    uint32_t k = sim_rng_below(g, 20);

    if (k < 10)
        return LIFE_ABSENT;
    if (k < 12)
        return 0;
    if (k < 15)
        return sim_rng_range(g, 1, 60);
    if (k < 19)
        return sim_rng_range(g, 60, 3600);
    return sim_rng_range(g, 3601, 100000);
}

static int
number_used(const struct sim_agent *ag, uint16_t n)
{
    for (int k = 0; k < SIM_AG_CHANS; k++)
        if (ag->ch[k].used && ag->ch[k].number == n)
            return 1;
    return 0;
}

static uint16_t
fresh_number(struct sim_rng *g, const struct sim_agent *ag, int wide)
{
    for (;;) {
        uint16_t n = (uint16_t)(wide ? sim_rng_range(g, 0x4000, 0x7FFF) :
            sim_rng_range(g, 0x4000, 0x400F + 16 * SIM_AG_CHANS));

        if (!number_used(ag, n))
            return n;
    }
}

static uint16_t
some_number(const struct sim_world *w, struct sim_rng *g,
    const struct sim_agent *ag)
{
    uint32_t          k = sim_rng_below(g, 100);
    struct sim_agent *o;

    if (k < 10 && ag->nold > 0)
        return ag->old[sim_rng_below(g, ag->nold < 8 ? ag->nold : 8)].number;
    if (k < 15) {
        for (int tries = 0; tries < 8; tries++) {
            const struct ag_chan *c = &ag->ch[sim_rng_below(g,
                SIM_AG_CHANS)];

            if (c->used)
                return c->number;
        }
    } else if (k < 30 && (o = pick(w, g, has_chan, -1)) != NULL) {
        for (int i = 0; i < SIM_AG_CHANS; i++)
            if (o->ch[i].used)
                return o->ch[i].number;
    }
    return fresh_number(g, ag, k >= 90);
}

/* --- Generators ------------------------------------------------------ */

static void
gen_add(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    uint32_t stack = sim_rng_below(g, 10);
    uint32_t cred = sim_rng_pm(g, 20) ? CRED_WRONG_PASSWORD :
        sim_rng_pm(g, 20) ? CRED_UNPARSABLE : CRED_OK;

    stack = stack < 5 ? 3 : stack < 8 ? 1 : 2;
    t->a = w->nagent_ids;
    t->b = (sim_rng_pm(g, 400) ? ADD_GATEWAY : 0) | stack << 1 |
        (sim_rng_pm(g, 500) ? ADD_V6SESSION : 0) |
        (sim_rng_pm(g, 900) ? ADD_KEEP : 0) | cred << 5 |
        (sim_rng_pm(g, 700) ? ADD_ALLOCATE : 0);
    t->c = sim_rng_pm(g, 150) ? sim_rng_range(g, 30, 2000) : 1000000;
}

static void
gen_bind_target(const struct sim_world *w, struct sim_rng *g,
    const struct sim_agent *ag, struct sim_tr *t)
{
    uint32_t          k = sim_rng_below(g, 100);
    struct sim_agent *o = pick(w, g, any_agent, !ag->gateway);

    if (o == NULL || o == ag)
        o = pick(w, g, any_agent, -1);
    if (k < 40) {
        t->c = sim_rng_pm(g, 500) ? BK_RELAYED4 : BK_RELAYED6;
        t->b = (uint32_t)o->id;
    } else if (k < 70) {
        t->c = sim_rng_pm(g, 500) ? BK_HOST4 : BK_HOST6;
        t->b = (uint32_t)o->id;
    } else if (k < 78) {
        t->c = sim_rng_pm(g, 500) ? BK_RELAYED4 : BK_RELAYED6;
        t->b = (uint32_t)ag->id;
    } else if (k < 84) {
        t->c = BK_BAD;
        t->b = sim_rng_below(g, 12);
    } else if (k < 88) {
        t->c = sim_rng_pm(g, 500) ? BK_PORT4 : BK_PORT6;
        t->b = sim_rng_range(g, SIM_PORT_MIN, w->relay.port_max);
    } else if (k < 94 && ag->nold > 0) {
        t->c = BK_OLDPEER;
        t->b = sim_rng_below(g, ag->nold < 8 ? ag->nold : 8);
    } else {
        t->c = BK_OWNPEER;
        t->b = 0;
        for (int i = 0; i < SIM_AG_CHANS; i++)
            if (ag->ch[i].used)
                t->b = ag->ch[i].number;
    }
}

static void
gen_bind(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    struct sim_agent *ag = pick(w, g, allocated, -1);

    t->a = (uint32_t)ag->id;
    gen_bind_target(w, g, ag, t);
    t->d = some_number(w, g, ag) | (sim_rng_pm(g, 750) ? 1u << 16 : 0);
}

static void
gen_connect(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    struct sim_agent *c = pick(w, g, allocated, 0);
    struct sim_agent *gw = pick(w, g, allocated, 1);
    uint16_t          n1, n2;

    if (c == NULL || gw == NULL) {
        c = pick(w, g, allocated, -1);
        gw = pick(w, g, allocated, -1);
    }
    n1 = fresh_number(g, c, 0);
    n2 = sim_rng_pm(g, 300) && !number_used(gw, n1) ? n1 :
        fresh_number(g, gw, 0);
    t->a = (uint32_t)c->id;
    t->b = (uint32_t)gw->id;
    t->c = sim_rng_pm(g, 500) ? 4 : 6;
    t->d = n1 | (uint32_t)n2 << 16;
}

static void
gen_probe(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    struct sim_agent *ag = pick(w, g, has_chan, -1);

    if (ag == NULL || sim_rng_pm(g, 80)) {
        ag = pick(w, g, any_agent, -1);
        t->b = sim_rng_range(g, 0x4000, 0x4010 + 16 * SIM_AG_CHANS);
    } else {
        for (;;) {
            const struct ag_chan *c = &ag->ch[sim_rng_below(g,
                SIM_AG_CHANS)];

            if (sim_agent_chan_ok(w, ag, c)) {
                t->b = c->number;
                break;
            }
        }
    }
    t->a = (uint32_t)ag->id;
    t->c = sim_rng_pm(g, 100) ? 0 : sim_rng_below(g, 200);
}

static void
gen_advance(struct sim_rng *g, struct sim_tr *t)
{
    uint32_t k = sim_rng_below(g, 100);

    if (k < 10) {               /* to the next relay deadline -1/0/+1 ms */
        t->b = 1;
        t->c = sim_rng_below(g, 3);
        return;
    }
    if (k < 40)
        t->a = sim_rng_range(g, 1, 2000);
    else if (k < 75)
        t->a = sim_rng_range(g, 2000, 120000);
    else if (k < 90)
        t->a = sim_rng_range(g, 120000, 700000);
    else
        t->a = sim_rng_range(g, 700000, 1300000);
}

static void
gen_agent_op(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    struct sim_agent *ag;

    switch (t->kind) {
    case TR_ALLOC:
        ag = pick(w, g, idle_agent, -1);
        if (ag == NULL)
            ag = pick(w, g, any_agent, -1);
        t->a = (uint32_t)ag->id;
        t->b = sim_rng_pm(g, 700) ? AF_AAF6 : sim_rng_below(g, 4);
        t->c = sim_rng_pm(g, 600) ? LIFE_ABSENT : life_choice(g);
        t->d = sim_rng_pm(g, 50) ? RQ_FP : 0;
        break;
    case TR_REFRESH:
        ag = pick(w, g, allocated, -1);
        t->a = (uint32_t)(ag != NULL ? ag : pick(w, g, any_agent, -1))->id;
        t->b = life_choice(g);
        break;
    case TR_STRAY:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_range(g, SIM_PORT_MIN, w->relay.port_max);
        t->c = sim_rng_pm(g, 500) ? 4 : 6;
        t->d = sim_rng_below(g, 100);
        break;
    case TR_CREDS:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_pm(g, 60) ? CRED_WRONG_PASSWORD : CRED_OK;
        t->c = sim_rng_pm(g, 500) ? sim_rng_range(g, 5, 900) : 1000000;
        break;
    case TR_SIMPLE:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_pm(g, 500) ? SM_BINDING : SM_PERMISSION;
        t->c = sim_rng_pm(g, 300) ? RQ_FP : 0;
        break;
    case TR_BAD:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_below(g, BAD_N);
        break;
    case TR_FLOOD:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_range(g, 2, 40);
        t->c = sim_rng_below(g, 3);
        break;
    case TR_FLAP:
        t->a = (uint32_t)pick(w, g, allocated, -1)->id;
        t->b = sim_rng_range(g, 0, 400);
        break;
    case TR_TWIN:
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        ag = pick(w, g, allocated, -1);
        t->b = (uint32_t)(ag != NULL ? ag : pick(w, g, any_agent, -1))->id;
        t->c = sim_rng_pm(g, 700);
        break;
    default:            /* TR_REMOVE, TR_NAT */
        t->a = (uint32_t)pick(w, g, any_agent, -1)->id;
        t->b = sim_rng_pm(g, 500);
        break;
    }
}

void
sim_gen_next(struct sim_world *w, struct sim_rng *g, struct sim_tr *t)
{
    uint32_t wt[TR_N] = { 0 }, sum = 0, r;
    uint32_t nl = w->nalive, na = count(w, allocated);

    memset(t, 0, sizeof(*t));
    t->rs = sim_rng_next(g);
    wt[TR_ADD] = nl >= w->cfg.max_agents ? 0 : nl < 4 ? 60 : 6;
    wt[TR_REMOVE] = nl > 2 ? 2 : 0;
    wt[TR_ALLOC] = nl == 0 ? 0 : count(w, idle_agent) > 0 ? 8 : 1;
    wt[TR_REFRESH] = na > 0 ? 3 : 0;
    wt[TR_BIND] = na > 0 ? 10 : 0;
    wt[TR_CONNECT] = na > 1 ? 8 : 0;
    wt[TR_PROBE] = nl > 0 ? (count(w, has_chan) > 0 ? 16 : 2) : 0;
    wt[TR_STRAY] = nl > 0 ? 2 : 0;
    wt[TR_ADVANCE] = 12;
    wt[TR_NAT] = nl > 0 ? 2 : 0;
    wt[TR_CREDS] = nl > 0 ? 2 : 0;
    wt[TR_HOLD] = 1;
    wt[TR_SIMPLE] = nl > 0 ? 1 : 0;
    wt[TR_BAD] = nl > 0 ? 2 : 0;
    wt[TR_RESPAWN] = 1;
    wt[TR_RELOAD] = 1;
    wt[TR_FLOOD] = nl > 0 ? 1 : 0;
    wt[TR_TWIN] = nl > 1 ? 1 : 0;
    wt[TR_FLAP] = na > 0 ? 1 : 0;
    for (int k = 0; k < TR_N; k++)
        sum += wt[k];
    r = sim_rng_below(g, sum);
    for (t->kind = 0; r >= wt[t->kind]; t->kind++)
        r -= wt[t->kind];
    switch (t->kind) {
    case TR_ADD:     gen_add(w, g, t); break;
    case TR_BIND:    gen_bind(w, g, t); break;
    case TR_CONNECT: gen_connect(w, g, t); break;
    case TR_PROBE:   gen_probe(w, g, t); break;
    case TR_ADVANCE: gen_advance(g, t); break;
    case TR_HOLD:
        t->a = sim_rng_range(g, SIM_PORT_MIN, w->relay.port_max);
        t->b = sim_rng_pm(g, 600);
        break;
    case TR_RESPAWN:
        t->a = sim_rng_below(g, (uint32_t)w->relay.nworkers);
        t->b = sim_rng_pm(g, 300) ? sim_rng_range(g, 1, 3) : 0;
        break;
    case TR_RELOAD:
        t->a = sim_rng_below(g, 4);
        break;
    default:         gen_agent_op(w, g, t); break;
    }
}

/* --- Carrying out ---------------------------------------------------- */

static int
relayed_of(const struct sim_agent *ag, int fam, struct addr *out)
{
    for (int i = 0; i < ag->nrelayed; i++)
        if (ag->relayed[i].family == (fam == 4 ? ADDR_V4 : ADDR_V6)) {
            *out = ag->relayed[i];
            return 0;
        }
    return -1;
}

static int
bind_peer(struct sim_world *w, const struct sim_agent *ag,
    const struct sim_tr *t, struct addr *peer)
{
    const struct sim_agent *o = sim_agent_get(w, t->b);
    uint16_t                n = (uint16_t)t->b;

    switch (t->c) {
    case BK_HOST4:
    case BK_HOST6:
        if (o == NULL || !(t->c == BK_HOST4 ? o->has4 : o->has6))
            return -1;
        *peer = t->c == BK_HOST4 ? o->host4 : o->host6;
        return 0;
    case BK_RELAYED4:
    case BK_RELAYED6:
        return o == NULL ? -1 : relayed_of(o, t->c == BK_RELAYED4 ? 4 : 6,
            peer);
    case BK_BAD:
        bad_peer(t->b, peer);
        return 0;
    case BK_PORT4:
    case BK_PORT6:
        *peer = *sim_relay_public(w, t->c == BK_PORT4 ? 4 : 6);
        peer->port = (uint16_t)t->b;
        return 0;
    case BK_OLDPEER:
        if (t->b >= 8 || t->b >= ag->nold)
            return -1;
        *peer = ag->old[t->b].peer;
        return 0;
    default:
        for (int i = 0; i < SIM_AG_CHANS; i++)
            if (ag->ch[i].used && ag->ch[i].number == n) {
                *peer = ag->ch[i].peer;
                return 0;
            }
        return -1;
    }
}

static void
exec_connect(struct sim_world *w, struct sim_agent *c, const struct sim_tr *t)
{
    struct sim_agent *g = sim_agent_get(w, t->b);
    struct addr       rc, rg;

    if (g == NULL || g == c || relayed_of(c, (int)t->c, &rc) != 0 ||
        relayed_of(g, (int)t->c, &rg) != 0)
        return;
    sim_agent_bind(w, c, (uint16_t)t->d, &rg, 1, 0);
    sim_agent_bind(w, g, (uint16_t)(t->d >> 16), &rc, 1, 0);
}

static void
exec_bad(struct sim_world *w, struct sim_agent *ag, uint32_t kind)
{
    struct addr peer = *sim_agent_sock(ag);
    uint32_t    one = RQ_ONEOFF;

    switch (kind) {
    case BAD_NUM_LOW:
    case BAD_NUM_HIGH:
        sim_agent_bind(w, ag, kind == BAD_NUM_LOW ? 0x3FFF : 0x8000, &peer,
            0, one | RQ_BAD_NUMBER);
        break;
    case BAD_NO_TRANSPORT:
        sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, one |
            RQ_NO_TRANSPORT);
        break;
    case BAD_TCP:
        sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, one | RQ_TCP);
        break;
    case BAD_RAF_AAF:
    case BAD_AAF4:
        sim_agent_allocate(w, ag, kind == BAD_RAF_AAF ? AF_RAF_AAF : AF_AAF4,
            LIFE_ABSENT, one);
        break;
    case BAD_ANON:
        sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, one | RQ_ANON);
        break;
    case BAD_NO_PEER:
        sim_agent_bind(w, ag, 0x4001, &peer, 0, one | RQ_NO_PEER);
        break;
    default:
        if (ag->state == AG_IDLE)
            sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, RQ_FP);
        else
            sim_agent_simple(w, ag, SM_PERMISSION, RQ_FP);
        break;
    }
}

static int
busy_agent(const struct sim_agent *ag)
{
    for (int k = 0; k < SIM_AG_REQS; k++)
        if (ag->rq[k].used)
            return 1;
    return 0;
}

/* Another agent uses this USERNAME too, or one that does has a request
 * in flight: an Allocate from it (even one its timers start after a 437)
 * replaces the allocation (SPEC §2.6.2 step 7). */
static int
user_busy(const struct sim_world *w, const struct m_alloc *a)
{
    int n = 0;

    for (uint32_t i = 0; i < w->nalive; i++)
        if (strlen(w->live[i]->user) == a->ulen &&
            memcmp(w->live[i]->user, a->user, a->ulen) == 0 &&
            (++n > 1 || busy_agent(w->live[i])))
            return 1;
    return 0;
}

/* Whether a probe through this channel must come back: the model says
 * every hop stays valid for a while, neither end has a request in flight
 * (a Refresh 0 could be on its way), and the network neither loses nor
 * duplicates.  2: the two ends use different IP versions. */
static int
probe_expect(struct sim_world *w, const struct sim_agent *ag,
    uint16_t number)
{
    const uint64_t          margin = w->now + 5000;
    const struct m_alloc   *a, *b;
    const struct sim_agent *g;
    struct addr             back;
    int                     ai, c, gi, bc, cross;

    if (w->net.loss_pm != 0 || w->net.dup_pm != 0 || busy_agent(ag) ||
        (ai = sim_model_alive(w, sim_agent_sock(ag))) < 0 ||
        (c = sim_model_chan(w, ai, number)) < 0 ||
        w->model.c[c].until <= margin)
        return 0;
    a = &w->model.a[ai];
    if (a->expiry <= margin || user_busy(w, a))
        return 0;
    cross = w->model.c[c].peer.family != a->client.family ? 2 : 1;
    if (!sim_relay_owns(w, &w->model.c[c].peer)) {
        g = sim_agent_at(w, &w->model.c[c].peer);
        return g != NULL && !g->stopped && !busy_agent(g) ? cross : 0;
    }
    if ((gi = sim_model_by_port(w, w->model.c[c].peer.port)) < 0 ||
        w->model.a[gi].state != M_LIVE)
        return 0;
    b = &w->model.a[gi];
    g = sim_agent_at(w, &b->client);
    if (b->expiry <= margin || g == NULL || g->stopped || busy_agent(g) ||
        user_busy(w, b) ||
        !sim_addr_eq(sim_agent_sock(g), &b->client) ||
        !(b->fams & (w->model.c[c].peer.family == ADDR_V4 ? 1 : 2)))
        return 0;
    back = *sim_relay_public(w, w->model.c[c].peer.family == ADDR_V4 ? 4 : 6);
    back.port = a->port;
    bc = sim_model_chan_peer(w, gi, &back);
    if (b->client.family != a->client.family)
        cross = 2;
    return bc >= 0 && w->model.c[bc].until > margin ? cross : 0;
}

static void
exec_probe(struct sim_world *w, struct sim_agent *ag, const struct sim_tr *t)
{
    int               expect = probe_expect(w, ag, (uint16_t)t->b);
    struct sim_probe *p;
    uint32_t          before = w->nprobes;

    sim_agent_probe(w, ag, (uint16_t)t->b, t->c, expect);
    sim_run(w, w->now + 5000, 1);
    if (w->failed || w->nprobes == before)
        return;
    p = sim_probe_get(w, w->nprobes == before + 1 ? before + 1 : 0);
    if (p != NULL && p->expect_rt) {
        w->st[ST_RT_EXPECT]++;
        w->st[ST_RT_OK] += p->arrivals == 1 && p->replies == 1;
        if (p->arrivals == 1 && p->replies == 1 && expect == 2)
            w->st[ST_RT_46]++;
    }
    if (p != NULL && p->expect_rt && (p->arrivals != 1 || p->replies != 1))
        sim_fail(w, "probe-round-trip", "probe of agent %d through channel "
            "0x%04x: %u arrivals and %u replies, expected exactly one each "
            "(lossless network, all channels bound)", ag->id,
            (unsigned)t->b, p->arrivals, p->replies);
}

static void
exec_hold(struct sim_world *w, const struct sim_tr *t)
{
    struct sim_relay *r = &w->relay;
    struct sim_port  *sp;

    if (t->a < r->port_min || t->a > r->port_max)
        return;
    sp = &r->ports[t->a - r->port_min];
    if (t->b && sp->owner == PORT_FREE)
        sp->owner = PORT_PROGRAM;
    else if (!t->b && sp->owner == PORT_PROGRAM)
        sp->owner = PORT_FREE;
}

/* A path that flaps: a new source port (same username, so the old
 * allocation is replaced, SPEC §2.6.2 step 7), then, once that allocation
 * is up and `dwell` ms later, back to the old socket, which allocates
 * again and rebinds its channels. */
static void
exec_flap(struct sim_world *w, struct sim_agent *ag, uint32_t dwell)
{
    struct addr old = *sim_agent_sock(ag);
    uint64_t    limit = w->now + 3000;

    sim_agent_rebind_nat(w, ag);
    while (!w->failed && ag->state == AG_ALLOCATING && w->now < limit)
        sim_run(w, w->now + 10, 0);
    sim_run(w, w->now + dwell, 0);
    if (!w->failed && sim_agent_get(w, (uint32_t)ag->id) == ag)
        sim_agent_flap_back(w, ag, &old);
}

static void
exec_add(struct sim_world *w, const struct sim_tr *t)
{
    struct sim_agent *ag;

    ag = sim_agent_new(w, (int)t->a, t->b & ADD_GATEWAY, (int)ADD_STACK(t->b),
        (t->b & ADD_V6SESSION) ? 6 : 4, t->c, (enum ag_cred)ADD_CRED(t->b),
        (t->b & ADD_KEEP) != 0);
    if (ag != NULL && (t->b & ADD_ALLOCATE))
        sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, 0);
}

static void
exec_agent(struct sim_world *w, struct sim_agent *ag, const struct sim_tr *t)
{
    struct addr peer;

    switch (t->kind) {
    case TR_REMOVE:
        if (t->b && ag->nrelayed > 0)
            sim_agent_refresh(w, ag, 0, 0);
        sim_agent_free(w, ag);
        break;
    case TR_ALLOC:
        sim_agent_allocate(w, ag, (uint8_t)t->b, t->c, t->d);
        break;
    case TR_REFRESH:
        sim_agent_refresh(w, ag, t->b, 0);
        break;
    case TR_BIND:
        if (bind_peer(w, ag, t, &peer) == 0)
            sim_agent_bind(w, ag, (uint16_t)t->d, &peer, (t->d >> 16) & 1,
                0);
        break;
    case TR_CONNECT:
        exec_connect(w, ag, t);
        break;
    case TR_STRAY:
        peer = *sim_relay_public(w, (int)t->c);
        peer.port = (uint16_t)t->b;
        sim_agent_stray(w, ag, &peer, t->d);
        break;
    case TR_NAT:
        sim_agent_rebind_nat(w, ag);
        break;
    case TR_FLAP:
        exec_flap(w, ag, t->b);
        break;
    case TR_CREDS:
        sim_agent_creds(w, ag, t->c, (enum ag_cred)t->b);
        if (ag->state == AG_BADCREDS)
            ag->state = ag->nrelayed > 0 ? AG_ALLOCATED : AG_IDLE;
        if (ag->state == AG_ALLOCATED)
            sim_agent_refresh(w, ag, ag->want_life, 0);
        break;
    case TR_SIMPLE:
        sim_agent_simple(w, ag, (uint16_t)t->b, t->c | RQ_ONEOFF);
        break;
    case TR_BAD:
        exec_bad(w, ag, t->b);
        break;
    case TR_FLOOD:
        sim_agent_flood(w, ag, t->b, t->c);
        break;
    case TR_TWIN:
        if (sim_agent_get(w, t->b) == NULL)
            break;
        sim_agent_twin(w, ag, sim_agent_get(w, t->b));
        ag->keep_alloc = 0;     /* no endless ping-pong between twins */
        if (t->c)
            sim_agent_allocate(w, ag, AF_AAF6, LIFE_ABSENT, 0);
        break;
    default:
        break;
    }
}

void
sim_tr_exec(struct sim_world *w, const struct sim_tr *t)
{
    struct sim_agent *ag = sim_agent_get(w, t->a);
    uint64_t          settle = sim_mix(t->rs, 9);

    sim_rng_seed(&w->rng_ag, sim_mix(t->rs, 1));
    sim_rng_seed(&w->rng_net, sim_mix(t->rs, 2));
    sim_rng_seed(&w->rng_core, sim_mix(t->rs, 3));
    w->n_tr++;
    if (w->verbose) {
        char buf[160];

        sim_tr_describe(t, buf, sizeof(buf));
        sim_log(w, "transition %s", buf);
    }
    switch (t->kind) {
    case TR_ADD:
        exec_add(w, t);
        break;
    case TR_ADVANCE:
        if (t->b == 1) {
            uint64_t d = sim_relay_deadline(w);

            if (d != UINT64_MAX && d + t->c > w->now + 1)
                sim_run(w, d + t->c - 1, 0);
            return;
        }
        sim_run(w, w->now + t->a, 0);
        return;
    case TR_HOLD:
        exec_hold(w, t);
        return;
    case TR_RESPAWN:
        sim_relay_respawn(w, (int)t->a, t->b);
        return;
    case TR_RELOAD:
        sim_relay_reload(w, (int)t->a);
        return;
    case TR_PROBE:
        if (ag != NULL)
            exec_probe(w, ag, t);
        return;
    default:
        if (ag == NULL)
            return;
        exec_agent(w, ag, t);
        break;
    }
    if (settle % 10 < 3)
        sim_run(w, w->now + settle % 31, 0);
    else
        sim_run(w, w->now + 3000, 1);
}

static const char *
fam_name(uint32_t f)
{
    static const char *const n[AF_N] = { "AAF IPv6", "no family",
        "RAF IPv4", "RAF IPv6", "RAF+AAF", "AAF IPv4" };

    return f < AF_N ? n[f] : "?";
}

static void
life_text(uint32_t l, char *buf, size_t size)
{
    if (l == LIFE_ABSENT)
        snprintf(buf, size, "no LIFETIME");
    else
        snprintf(buf, size, "LIFETIME %u", l);
}

static void
describe_bind(const struct sim_tr *t, char *buf, size_t size)
{
    static const char *const k[] = { "host IPv4 of agent", "host IPv6 of "
        "agent", "relayed IPv4 of agent", "relayed IPv6 of agent",
        "special peer #", "relay IPv4 port", "relay IPv6 port",
        "own peer of channel", "peer of old channel #" };

    snprintf(buf, size, "agent %u binds 0x%04x to %s %u%s", t->a,
        t->d & 0xFFFF, t->c < 9 ? k[t->c] : "?", t->b,
        (t->d >> 16) & 1 ? " (keeps it bound)" : "");
}

static void
describe_add(const struct sim_tr *t, char *buf, size_t size)
{
    static const char *const st[] = { "?", "IPv4-only", "IPv6-only",
        "dual-stack" };
    static const char *const cr[] = { "good", "wrong-password",
        "unparsable", "?" };

    snprintf(buf, size, "add %s %u, %s (session IPv%d), credentials %s "
        "for %u s, %s%s", (t->b & ADD_GATEWAY) ? "gateway" : "client",
        t->a, st[ADD_STACK(t->b)], ADD_STACK(t->b) == 3 ?
        ((t->b & ADD_V6SESSION) ? 6 : 4) : ADD_STACK(t->b) == 1 ? 4 : 6,
        cr[ADD_CRED(t->b)], t->c, (t->b & ADD_KEEP) ? "refreshes" :
        "does not refresh", (t->b & ADD_ALLOCATE) ? ", allocates" : "");
}

static void
describe_more(const struct sim_tr *t, char *buf, size_t size)
{
    static const char *const bad[] = { "ChannelBind number 0x3FFF",
        "ChannelBind number 0x8000", "Allocate without "
        "REQUESTED-TRANSPORT", "Allocate for TCP", "Allocate RAF+AAF",
        "Allocate AAF IPv4", "Allocate without credentials",
        "ChannelBind without XOR-PEER-ADDRESS", "request with FINGERPRINT" };

    switch (t->kind) {
    case TR_STRAY:
        snprintf(buf, size, "agent %u sends a stray datagram to relay "
            "IPv%u port %u", t->a, t->c, t->b);
        break;
    case TR_NAT:
        snprintf(buf, size, "NAT rebinding of agent %u (new source port, "
            "same username)", t->a);
        break;
    case TR_CREDS:
        snprintf(buf, size, "agent %u gets %s credentials for %u s", t->a,
            t->b == CRED_OK ? "new" : "wrong-password", t->c);
        break;
    case TR_HOLD:
        snprintf(buf, size, "another program %s port %u", t->b ? "holds" :
            "releases", t->a);
        break;
    case TR_RESPAWN:
        snprintf(buf, size, "worker %u dies and is respawned (another "
            "program may grab up to %u of its ports meanwhile)", t->a, t->b);
        break;
    case TR_RELOAD:
        snprintf(buf, size, "reload: peer policy variant %u", t->a);
        break;
    case TR_FLAP:
        snprintf(buf, size, "agent %u moves to a new source port and, %u ms "
            "after its new allocation, back to the old one", t->a, t->b);
        break;
    case TR_TWIN:
        snprintf(buf, size, "agent %u takes the username of agent %u%s",
            t->a, t->b, t->c ? " and allocates" : "");
        break;
    case TR_FLOOD:
        snprintf(buf, size, "agent %u floods %u %s at once", t->a, t->b,
            t->c == 0 ? "Allocates without credentials" : t->c == 1 ?
            "ChannelBinds with number 0x8000" : "Bindings");
        break;
    case TR_SIMPLE:
        snprintf(buf, size, "agent %u sends %s%s", t->a, t->b == SM_BINDING ?
            "Binding" : "CreatePermission", t->c ? " with FINGERPRINT" : "");
        break;
    case TR_BAD:
        snprintf(buf, size, "agent %u sends %s", t->a, t->b < BAD_N ?
            bad[t->b] : "?");
        break;
    default:
        snprintf(buf, size, "%s", sim_tr_name(t->kind));
        break;
    }
}

void
sim_tr_describe(const struct sim_tr *t, char *buf, size_t size)
{
    char l[32];

    switch (t->kind) {
    case TR_ADD:
        describe_add(t, buf, size);
        break;
    case TR_REMOVE:
        snprintf(buf, size, "remove agent %u%s", t->a, t->b ?
            " (Refresh 0 first)" : "");
        break;
    case TR_ALLOC:
        life_text(t->c, l, sizeof(l));
        snprintf(buf, size, "agent %u allocates (%s, %s%s)", t->a,
            fam_name(t->b), l, (t->d & RQ_FP) ? ", FINGERPRINT" : "");
        break;
    case TR_REFRESH:
        life_text(t->b, l, sizeof(l));
        snprintf(buf, size, "agent %u refreshes (%s)", t->a, l);
        break;
    case TR_BIND:
        describe_bind(t, buf, size);
        break;
    case TR_CONNECT:
        snprintf(buf, size, "client %u binds 0x%04x to the relayed IPv%u of "
            "gateway %u, which binds 0x%04x back", t->a, t->d & 0xFFFF, t->c,
            t->b, t->d >> 16);
        break;
    case TR_PROBE:
        snprintf(buf, size, "agent %u probes through channel 0x%04x (%u "
            "bytes)", t->a, t->b, t->c + PROBE_HDR);
        break;
    case TR_ADVANCE:
        if (t->b == 1)
            snprintf(buf, size, "time passes to the relay's next deadline "
                "%+d ms", (int)t->c - 1);
        else
            snprintf(buf, size, "time passes: %u.%03u s", t->a / 1000,
                t->a % 1000);
        break;
    default:
        describe_more(t, buf, size);
        break;
    }
}
