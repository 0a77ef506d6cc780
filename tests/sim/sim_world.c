/* sim_world.c - the simulated world: configuration drawn from the seed,
 * the event loop (datagrams, agent timers, relay timers in time order),
 * delivery, the key cache, probe records and the final drain that checks
 * the table empties. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void
sim_cfg_from_seed(uint64_t seed, struct sim_cfg *cfg)
{
    struct sim_rng r;
    uint32_t       k;

    sim_rng_seed(&r, sim_mix(seed, 0xC0F));
    memset(cfg, 0, sizeof(*cfg));
    cfg->seed = seed;
    cfg->nworkers = sim_rng_pm(&r, 400) ? 2 : 1;
    k = sim_rng_below(&r, 10);
    cfg->has4 = k != 9;                 /* 80 % dual, 10 % v4, 10 % v6 */
    cfg->has6 = k != 8;
    cfg->lazy = sim_rng_pm(&r, 250);
    cfg->open_late = sim_rng_pm(&r, 400);
    k = sim_rng_below(&r, 10);
    if (k < 4) {                        /* perfect: fixed delay */
        cfg->dmin = cfg->dmax = sim_rng_below(&r, 21);
    } else {                            /* jitter, so reordering */
        cfg->dmin = 1;
        cfg->dmax = sim_rng_range(&r, 20, 120);
    }
    if (k >= 7) {
        cfg->loss_pm = sim_rng_range(&r, 20, 80);
        cfg->dup_pm = sim_rng_range(&r, 10, 50);
    }
    cfg->port_max = sim_rng_pm(&r, 200) ? SIM_PORT_MIN + 35 : SIM_PORT_MAX;
    cfg->max_agents = sim_rng_range(&r, 6, SIM_MAX_AGENTS);
    cfg->small_q = sim_rng_pm(&r, 200);
    cfg->table_size = sim_rng_pm(&r, 250) ? sim_rng_range(&r, 3, 16) : 65536;
    if (sim_rng_pm(&r, 300)) {
        cfg->err_rate = sim_rng_range(&r, 1, 20);
        cfg->err_burst = sim_rng_range(&r, 1, 30);
    }
}

void
sim_log(struct sim_world *w, const char *fmt, ...)
{
    va_list ap;

    if (!w->verbose)
        return;
    printf("  [%8llu.%03llu] ", (unsigned long long)(w->now / 1000),
        (unsigned long long)(w->now % 1000));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

void
sim_fail(struct sim_world *w, const char *tag, const char *fmt, ...)
{
    va_list ap;
    int     n;

    if (w->failed)
        return;
    w->failed = 1;
    snprintf(w->tag, sizeof(w->tag), "%s", tag);
    n = snprintf(w->msg, sizeof(w->msg), "t=%llu ms: ",
        (unsigned long long)w->now);
    va_start(ap, fmt);
    vsnprintf(w->msg + n, sizeof(w->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    sim_log(w, "FAIL %s: %s", w->tag, w->msg);
}

struct sim_world *
sim_world_new(const struct sim_cfg *cfg, int verbose)
{
    struct sim_world *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->cfg = *cfg;
    w->verbose = verbose;
    w->grace = cfg->lazy ? 1000 : 0;
    w->now = 1000;
    sim_rng_seed(&w->rng_core, sim_mix(cfg->seed, 1));
    sim_rng_seed(&w->rng_net, sim_mix(cfg->seed, 2));
    sim_rng_seed(&w->rng_ag, sim_mix(cfg->seed, 3));
    sim_net_init(&w->net);
    w->net.dmin = cfg->dmin;
    w->net.dmax = cfg->dmax;
    w->net.loss_pm = cfg->loss_pm;
    w->net.dup_pm = cfg->dup_pm;
    sim_model_init(&w->model);
    w->kc = calloc(SIM_KCACHE, sizeof(*w->kc));
    if (w->kc == NULL || sim_crypto_init(&w->cr) != 0 ||
        sim_relay_init(w) != 0) {
        sim_world_free(w);
        return NULL;
    }
    return w;
}

void
sim_world_free(struct sim_world *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; i < w->nagent_ids; i++)
        if (w->agents[i] != NULL)
            sim_agent_free(w, w->agents[i]);
    free(w->agents);
    free(w->probes);
    if (w->kc != NULL)
        for (uint32_t i = 0; i < SIM_KCACHE; i++)
            if (w->kc[i].ulen > 0 && w->kc[i].ok)
                sim_key_fini(&w->kc[i].k);
    free(w->kc);
    sim_relay_fini(w);
    sim_model_fini(&w->model);
    sim_net_fini(&w->net);
    sim_crypto_fini(&w->cr);
    free(w);
}

uint64_t
sim_wall(const struct sim_world *w)
{
    return SIM_WALL0 + w->now / 1000;
}

void
sim_tx_id(struct sim_world *w, uint8_t txid[12])
{
    uint64_t v = sim_mix(w->cfg.seed, ++w->txn);

    memcpy(txid, &v, 8);
    txid[8] = (uint8_t)(w->txn >> 24);
    txid[9] = (uint8_t)(w->txn >> 16);
    txid[10] = (uint8_t)(w->txn >> 8);
    txid[11] = (uint8_t)w->txn;
}

/* --- Key cache ------------------------------------------------------- */

const struct sim_key *
sim_key_for(struct sim_world *w, const uint8_t *user, size_t ulen)
{
    uint32_t h = 2166136261u;
    uint8_t  key[16];

    if (ulen == 0 || ulen >= SIM_USER_MAX)
        return NULL;
    for (size_t i = 0; i < ulen; i++)
        h = (h ^ user[i]) * 16777619u;
    for (uint32_t k = 0; k < SIM_KCACHE; k++) {
        struct sim_kent *e = &w->kc[(h + k) % SIM_KCACHE];

        if (e->ulen == ulen && memcmp(e->user, user, ulen) == 0)
            return e->ok ? &e->k : NULL;
        if (e->ulen != 0)
            continue;
        if (w->nkc + 1 >= SIM_KCACHE) {
            sim_fail(w, "harness", "key cache full");
            return NULL;
        }
        memcpy(e->user, user, ulen);
        e->ulen = (uint16_t)ulen;
        w->nkc++;
        e->ok = sim_cred_key(&w->cr, SIM_SECRET, user, ulen, key) == 0 &&
            sim_key_init(&w->cr, &e->k, key) == 0;
        return e->ok ? &e->k : NULL;
    }
    return NULL;
}

/* --- Agents and probes ----------------------------------------------- */

struct sim_agent *
sim_agent_get(const struct sim_world *w, uint32_t id)
{
    return id < w->nagent_ids ? w->agents[id] : NULL;
}

struct sim_agent *
sim_agent_at(const struct sim_world *w, const struct addr *a)
{
    for (uint32_t i = 0; i < w->nalive; i++) {
        struct sim_agent *ag = w->live[i];

        if ((ag->has4 && sim_addr_eq(&ag->host4, a)) ||
            (ag->has6 && sim_addr_eq(&ag->host6, a)))
            return ag;
    }
    return NULL;
}

struct sim_probe *
sim_probe_new(struct sim_world *w, uint32_t *id)
{
    if (w->nprobes == w->probe_cap) {
        uint32_t          cap = w->probe_cap ? w->probe_cap * 2 : 256;
        struct sim_probe *p = realloc(w->probes, cap * sizeof(*p));

        if (p == NULL)
            return NULL;
        w->probes = p;
        w->probe_cap = cap;
    }
    memset(&w->probes[w->nprobes], 0, sizeof(w->probes[0]));
    *id = ++w->nprobes;
    return &w->probes[*id - 1];
}

struct sim_probe *
sim_probe_get(struct sim_world *w, uint32_t id)
{
    return id >= 1 && id <= w->nprobes ? &w->probes[id - 1] : NULL;
}

/* --- Event loop ------------------------------------------------------ */

void
sim_deliver(struct sim_world *w, struct sim_dgram *d)
{
    struct sim_agent *ag;

    if (sim_relay_owns(w, &d->dst)) {
        sim_relay_input(w, d);
        return;
    }
    if ((ag = sim_agent_at(w, &d->dst)) != NULL)
        sim_agent_recv(w, ag, d);
}

static int
busy(const struct sim_world *w)
{
    if (w->net.n > 0)
        return 1;
    for (uint32_t i = 0; i < w->nalive; i++)
        for (int k = 0; k < SIM_AG_REQS; k++)
            if (w->live[i]->rq[k].used)
                return 1;
    return 0;
}

void
sim_run(struct sim_world *w, uint64_t until, int idle)
{
    while (!w->failed) {
        uint64_t t = sim_net_next(&w->net), k = sim_relay_next(w);

        if (idle && !busy(w))
            return;
        if (k < t)
            t = k;
        for (uint32_t i = 0; i < w->nalive; i++)
            if (w->live[i]->wake < t)
                t = w->live[i]->wake;
        if (t > until)
            break;
        if (t > w->now)
            w->now = t;
        sim_relay_timers(w, 0);
        if (sim_net_next(&w->net) <= w->now) {
            struct sim_dgram *d = sim_net_pop(&w->net);

            sim_deliver(w, d);
            sim_net_put(&w->net, d);
            continue;
        }
        for (uint32_t i = 0; i < w->nalive && !w->failed; i++)
            if (w->live[i]->wake <= w->now)
                sim_agent_wake(w, w->live[i]);
    }
    if (!w->failed && !idle && until > w->now) {
        w->now = until;
        sim_relay_timers(w, 0);
    }
}

static void
check_empty(struct sim_world *w)
{
    struct sim_relay *r = &w->relay;
    uint32_t          active, live, bound;

    atab_count(r->tab, &active, &live, &bound);
    if (active != 0 || live != 0 || bound != 0 ||
        atab_free_allocs(r->tab) != r->max_allocs ||
        atab_free_chans(r->tab) != r->max_chans) {
        sim_fail(w, "not-empty", "after everything expired: %u active, %u "
            "live, %u bound; %u of %u allocation and %u of %u channel slots "
            "free", active, live, bound, atab_free_allocs(r->tab),
            r->max_allocs, atab_free_chans(r->tab), r->max_chans);
        return;
    }
    for (uint32_t p = r->port_min; p <= r->port_max; p++)
        if (atab_port_holder(r->tab, (uint16_t)p) != ATAB_NONE ||
            r->ports[p - r->port_min].owner == PORT_RELAY) {
            sim_fail(w, "not-empty", "port %u still held after everything "
                "expired", p);
            return;
        }
    for (size_t i = 0; i < sizeof(r->track) / sizeof(r->track[0]); i++)
        if (r->track[i].used) {
            sim_fail(w, "not-empty", "a channel still relays after "
                "everything expired");
            return;
        }
    for (int i = 0; i < r->nworkers; i++)
        if (turn_core_next_deadline(r->wk[i].core) != TURN_NEVER ||
            turn_core_owned(r->wk[i].core) != 0) {
            sim_fail(w, "not-empty", "worker %d still has a deadline or "
                "owns %u allocations", i, turn_core_owned(r->wk[i].core));
            return;
        }
    for (int i = 0; i < M_ALLOCS; i++)
        if (w->model.a[i].state != M_FREE) {
            sim_fail(w, "not-empty", "the model still has an allocation");
            return;
        }
}

void
sim_final(struct sim_world *w)
{
    for (uint32_t i = 0; i < w->nalive; i++) {
        w->live[i]->stopped = 1;
        memset(w->live[i]->rq, 0, sizeof(w->live[i]->rq));
        w->live[i]->wake = UINT64_MAX;
    }
    sim_run(w, w->now + (3600 + 900 + 5) * 1000ULL, 0);
    sim_model_check(w, 1);
    if (!w->failed)
        check_empty(w);
}
