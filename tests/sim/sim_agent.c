/* sim_agent.c - TURN clients and gateways written for the simulation.
 *
 * Each agent is a small state machine in the manner of Firezone's snownet:
 * its first request on a socket carries USERNAME, REALM and
 * MESSAGE-INTEGRITY but no NONCE and expects a signed 401 with the nonce;
 * it retries on 438; it allocates with REQUESTED-TRANSPORT 17 and
 * ADDITIONAL-ADDRESS-FAMILY IPv6 (or a variant), refreshes at half the
 * lifetime, rebinds its channels before 600 s, retransmits requests, and
 * answers every probe it receives by the way it came.  It uses the
 * simulation's own codec and credentials code only. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define RTO_MS      500
#define MAX_TRIES   5

static uint16_t
new_port(struct sim_world *w)
{
    return (uint16_t)(20000 + w->sock_counter++ % 40000);
}

static void
host_addrs(struct sim_world *w, struct sim_agent *ag)
{
    uint8_t  ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01 };
    uint32_t id = (uint32_t)ag->id, ip4;

    if (id < 254)
        ip4 = 0xCB007100u | (id + 1);               /* 203.0.113.0/24 */
    else if (id < 508)
        ip4 = 0xC6336400u | (id - 253);             /* 198.51.100.0/24 */
    else
        ip4 = 0xC6120000u + (id - 507);             /* 198.18.0.0/15 */
    ip6[12] = (uint8_t)(id >> 24);
    ip6[13] = (uint8_t)(id >> 16);
    ip6[14] = (uint8_t)(id >> 8);
    ip6[15] = (uint8_t)id;
    if (ag->has4)
        sim_addr4(&ag->host4, ip4, new_port(w));
    if (ag->has6)
        sim_addr6(&ag->host6, ip6, new_port(w));
}

const struct addr *
sim_agent_sock(const struct sim_agent *ag)
{
    return ag->sfam == 4 ? &ag->host4 : &ag->host6;
}

static const struct addr *
listen_of(const struct sim_world *w, const struct sim_agent *ag)
{
    return ag->sfam == 4 ? &w->relay.listen4 : &w->relay.listen6;
}

void
sim_agent_creds(struct sim_world *w, struct sim_agent *ag, uint32_t ttl,
    enum ag_cred cred)
{
    uint8_t key[16] = { 0 };
    size_t  ulen;

    ag->cred = cred;
    ag->salt++;
    if (cred == CRED_UNPARSABLE)
        snprintf(ag->user, sizeof(ag->user), "sim-agent-%d-%llu", ag->id,
            (unsigned long long)ag->salt);
    else
        snprintf(ag->user, sizeof(ag->user), "%llu:a%d.%llu",
            (unsigned long long)(sim_wall(w) + ttl), ag->id,
            (unsigned long long)ag->salt);
    ulen = strlen(ag->user);
    if (cred != CRED_UNPARSABLE)
        sim_cred_key(&w->cr, cred == CRED_OK ? SIM_SECRET :
            "not-the-relay-secret-0123456789abcdef", (const uint8_t *)ag->user,
            ulen, key);
    if (ag->have_key)
        sim_key_fini(&ag->key);
    ag->have_key = sim_key_init(&w->cr, &ag->key, key) == 0;
    if (!ag->have_key)
        sim_fail(w, "harness", "key init");
}

void
sim_agent_twin(struct sim_world *w, struct sim_agent *ag,
    const struct sim_agent *from)
{
    if (ag == from)
        return;
    ag->cred = from->cred;
    memcpy(ag->user, from->user, sizeof(ag->user));
    if (ag->have_key)
        sim_key_fini(&ag->key);
    ag->have_key = sim_key_init(&w->cr, &ag->key, from->key.key) == 0;
}

static void
update_wake(struct sim_agent *ag)
{
    uint64_t t = UINT64_MAX;

    if (ag->stopped) {
        ag->wake = t;
        return;
    }
    for (int k = 0; k < SIM_AG_REQS; k++)
        if (ag->rq[k].used && ag->rq[k].rto_at < t)
            t = ag->rq[k].rto_at;
    if (ag->state == AG_ALLOCATED || ag->state == AG_BADCREDS) {
        uint64_t end = ag->alloc_at + (uint64_t)ag->lifetime * 1000;

        if (ag->nrelayed > 0 && end < t)
            t = end;
        if (ag->state == AG_ALLOCATED && ag->refresh_at != 0 &&
            ag->refresh_at < t)
            t = ag->refresh_at;
    }
    for (int k = 0; k < SIM_AG_CHANS; k++) {
        const struct ag_chan *c = &ag->ch[k];

        if (!c->used)
            continue;
        if (c->bound_at + SIM_CHAN_LIFE_MS < t)
            t = c->bound_at + SIM_CHAN_LIFE_MS;
        if (c->keep && c->refresh_at != 0 && c->refresh_at < t)
            t = c->refresh_at;
    }
    ag->wake = t;
}

struct sim_agent *
sim_agent_new(struct sim_world *w, int id, int gateway, int stack, int sfam,
    uint32_t ttl, enum ag_cred cred, int keep)
{
    struct sim_agent *ag;

    if (w->nalive >= SIM_MAX_AGENTS || id < 0 || stack < 1 || stack > 3 ||
        sim_agent_get(w, (uint32_t)id) != NULL)
        return NULL;
    if ((uint32_t)id >= w->agent_cap) {
        uint32_t           cap = (uint32_t)id * 2 + 16;
        struct sim_agent **a = realloc(w->agents, cap * sizeof(*a));

        if (a == NULL)
            return NULL;
        memset(a + w->agent_cap, 0, (cap - w->agent_cap) * sizeof(*a));
        w->agents = a;
        w->agent_cap = cap;
    }
    if ((ag = calloc(1, sizeof(*ag))) == NULL)
        return NULL;
    ag->id = id;
    ag->gateway = gateway;
    ag->stack = stack;
    ag->has4 = (stack & 1) != 0;
    ag->has6 = (stack & 2) != 0;
    ag->sfam = stack == 3 ? sfam : (stack == 1 ? 4 : 6);
    ag->keep_alloc = keep;
    ag->salt = (uint64_t)id << 20;
    host_addrs(w, ag);
    sim_agent_creds(w, ag, ttl, cred);
    w->agents[id] = ag;
    if ((uint32_t)id >= w->nagent_ids)
        w->nagent_ids = (uint32_t)id + 1;
    w->live[w->nalive++] = ag;
    update_wake(ag);
    return ag;
}

void
sim_agent_free(struct sim_world *w, struct sim_agent *ag)
{
    for (uint32_t i = 0; i < w->nalive; i++)
        if (w->live[i] == ag) {
            w->live[i] = w->live[--w->nalive];
            break;
        }
    if ((uint32_t)ag->id < w->nagent_ids)
        w->agents[ag->id] = NULL;
    if (ag->have_key)
        sim_key_fini(&ag->key);
    free(ag);
}

/* --- Requests ---------------------------------------------------------- */

static struct ag_req *
req_new(struct sim_agent *ag, uint16_t method, uint32_t flags)
{
    for (int k = 0; k < SIM_AG_REQS; k++)
        if (!ag->rq[k].used) {
            memset(&ag->rq[k], 0, sizeof(ag->rq[k]));
            ag->rq[k].used = 1;
            ag->rq[k].method = method;
            ag->rq[k].flags = flags;
            ag->rq[k].lifetime = LIFE_ABSENT;
            return &ag->rq[k];
        }
    return NULL;
}

static void
enc_family(struct sim_enc *e, uint8_t fam)
{
    uint8_t four[4] = { 1, 0, 0, 0 }, six[4] = { 2, 0, 0, 0 };

    switch (fam) {
    case AF_AAF6:
        sim_enc_attr(e, SA_AAF, six, 4);
        break;
    case AF_RAF4:
        sim_enc_attr(e, SA_RAF, four, 4);
        break;
    case AF_RAF6:
        sim_enc_attr(e, SA_RAF, six, 4);
        break;
    case AF_RAF_AAF:
        sim_enc_attr(e, SA_RAF, four, 4);
        sim_enc_attr(e, SA_AAF, six, 4);
        break;
    case AF_AAF4:
        sim_enc_attr(e, SA_AAF, four, 4);
        break;
    default:
        break;
    }
}

static void
req_build(struct sim_world *w, struct sim_agent *ag, struct ag_req *r)
{
    struct sim_enc e;
    uint8_t        v[4] = { 17, 0, 0, 0 };

    sim_tx_id(w, r->txid);
    sim_enc_init(&e, r->buf, sizeof(r->buf),
        sim_stun_type(r->method, SC_REQUEST), r->txid);
    if (r->method == SM_ALLOCATE) {
        if (r->flags & RQ_TCP)
            v[0] = 6;
        if (!(r->flags & RQ_NO_TRANSPORT))
            sim_enc_attr(&e, SA_TRANSPORT, v, 4);
        enc_family(&e, r->fam);
    }
    if ((r->method == SM_ALLOCATE || r->method == SM_REFRESH) &&
        r->lifetime != LIFE_ABSENT)
        sim_enc_u32(&e, SA_LIFETIME, r->lifetime);
    if (r->method == SM_CHANBIND) {
        v[0] = (uint8_t)(r->number >> 8);
        v[1] = (uint8_t)r->number;
        sim_enc_attr(&e, SA_CHANNEL, v, 4);
    }
    if ((r->method == SM_CHANBIND || r->method == SM_PERMISSION) &&
        !(r->flags & RQ_NO_PEER) && r->peer.family != ADDR_NONE)
        sim_enc_xaddr(&e, SA_PEER, &r->peer);
    r->had_nonce = 0;
    if (r->method != SM_BINDING && !(r->flags & RQ_ANON)) {
        sim_enc_attr(&e, SA_USERNAME, ag->user, strlen(ag->user));
        sim_enc_attr(&e, SA_REALM, SIM_REALM, strlen(SIM_REALM));
        if (ag->have_nonce) {
            sim_enc_attr(&e, SA_NONCE, ag->nonce, 36);
            r->had_nonce = 1;
        }
        sim_enc_mi(&w->cr, &e, &ag->key);
    }
    if (r->flags & RQ_FP)
        sim_enc_fp(&e);
    r->len = (uint32_t)sim_enc_done(&e);
    if (r->len == 0)
        sim_fail(w, "harness", "request too large");
}

static void
req_send(struct sim_world *w, struct sim_agent *ag, struct ag_req *r)
{
    r->tries++;
    r->rto_at = w->now + ((uint64_t)RTO_MS << (r->tries - 1));
    sim_net_send(w, sim_agent_sock(ag), listen_of(w, ag), r->buf, r->len,
        NULL, 0);
}

static void
issue(struct sim_world *w, struct sim_agent *ag, struct ag_req *r)
{
    req_build(w, ag, r);
    req_send(w, ag, r);
    update_wake(ag);
}

static int
pending(const struct sim_agent *ag, uint16_t method)
{
    for (int k = 0; k < SIM_AG_REQS; k++)
        if (ag->rq[k].used && ag->rq[k].method == method)
            return 1;
    return 0;
}

void
sim_agent_allocate(struct sim_world *w, struct sim_agent *ag, uint8_t fam,
    uint32_t lifetime, uint32_t flags)
{
    struct ag_req *r;

    if (ag->stopped || (r = req_new(ag, SM_ALLOCATE, flags)) == NULL)
        return;
    r->fam = fam;
    r->lifetime = lifetime;
    if (!(flags & RQ_ONEOFF)) {
        ag->fam = fam;
        ag->want_life = lifetime;
        if (ag->state != AG_BADCREDS)
            ag->state = AG_ALLOCATING;
    }
    issue(w, ag, r);
}

void
sim_agent_refresh(struct sim_world *w, struct sim_agent *ag,
    uint32_t lifetime, uint32_t flags)
{
    struct ag_req *r;

    if (ag->stopped || (r = req_new(ag, SM_REFRESH, flags)) == NULL)
        return;
    r->lifetime = lifetime;
    issue(w, ag, r);
}

void
sim_agent_bind(struct sim_world *w, struct sim_agent *ag, uint16_t number,
    const struct addr *peer, int keep, uint32_t flags)
{
    struct ag_req *r;

    if (ag->stopped || (r = req_new(ag, SM_CHANBIND, flags)) == NULL)
        return;
    r->number = number;
    r->peer = *peer;
    r->keep = (uint8_t)keep;
    issue(w, ag, r);
}

void
sim_agent_simple(struct sim_world *w, struct sim_agent *ag, uint16_t method,
    uint32_t flags)
{
    struct ag_req *r;

    if (ag->stopped || (r = req_new(ag, method, flags)) == NULL)
        return;
    if (method == SM_PERMISSION)
        r->peer = *sim_agent_sock(ag);
    issue(w, ag, r);
}

void
sim_agent_flood(struct sim_world *w, struct sim_agent *ag, uint32_t n,
    uint32_t kind)
{
    static const uint16_t method[3] = { SM_ALLOCATE, SM_CHANBIND,
        SM_BINDING };
    uint8_t               buf[128], txid[12];
    uint8_t               v[4] = { 17, 0, 0, 0 };
    struct sim_enc        e;
    size_t                len;

    for (uint32_t i = 0; i < n && !ag->stopped && kind < 3; i++) {
        sim_tx_id(w, txid);
        sim_enc_init(&e, buf, sizeof(buf),
            sim_stun_type(method[kind], SC_REQUEST), txid);
        if (kind == 0)
            sim_enc_attr(&e, SA_TRANSPORT, v, 4);
        if (kind == 1) {
            v[0] = 0x80;
            sim_enc_attr(&e, SA_CHANNEL, v, 4);
            sim_enc_xaddr(&e, SA_PEER, sim_agent_sock(ag));
        }
        if ((len = sim_enc_done(&e)) > 0)
            sim_net_send(w, sim_agent_sock(ag), listen_of(w, ag), buf, len,
                NULL, 0);
    }
}

/* --- Responses --------------------------------------------------------- */

static void
alloc_gone(struct sim_agent *ag)
{
    if (ag->state != AG_BADCREDS)
        ag->state = AG_IDLE;
    ag->nrelayed = 0;
    ag->refresh_at = 0;
    memset(ag->ch, 0, sizeof(ag->ch));
}

/* Like snownet, an agent that loses its allocation while connected binds
 * the same channels (numbers and peers) again on the new one. */
static void
alloc_lost(struct sim_agent *ag)
{
    if (ag->nrelayed > 0)
        memcpy(ag->rebind, ag->ch, sizeof(ag->rebind));
    alloc_gone(ag);
}

static void
reallocate(struct sim_world *w, struct sim_agent *ag)
{
    if (ag->recover++ < 3 && ag->state != AG_BADCREDS)
        sim_agent_allocate(w, ag, ag->fam, ag->want_life, 0);
}

static void
alloc_ok(struct sim_world *w, struct sim_agent *ag, const struct sim_msg *m)
{
    const uint8_t *v;
    uint16_t       l;

    alloc_gone(ag);
    for (int i = 0; i < m->nattr && ag->nrelayed < 2; i++)
        if (m->at[i].type == SA_RELAYED &&
            sim_xaddr_decode(m->buf + m->at[i].off + 4, m->at[i].len,
                m->txid, &ag->relayed[ag->nrelayed]) == 0)
            ag->nrelayed++;
    v = sim_msg_get(m, SA_LIFETIME, &l);
    ag->lifetime = v == NULL || l != 4 ? 0 : (uint32_t)v[0] << 24 |
        (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
    ag->alloc_at = w->now;
    ag->recover = 0;
    if (ag->lifetime == 0) {
        alloc_gone(ag);
        return;
    }
    ag->state = AG_ALLOCATED;
    ag->refresh_at = ag->keep_alloc ?
        w->now + (uint64_t)ag->lifetime * 500 : 0;
    for (int k = 0; k < SIM_AG_CHANS; k++)
        if (ag->rebind[k].used && ag->rebind[k].keep)
            sim_agent_bind(w, ag, ag->rebind[k].number, &ag->rebind[k].peer,
                1, 0);
    memset(ag->rebind, 0, sizeof(ag->rebind));
}

static void
refresh_ok(struct sim_world *w, struct sim_agent *ag, const struct ag_req *r,
    const struct sim_msg *m)
{
    const uint8_t *v = sim_msg_get(m, SA_LIFETIME, NULL);
    uint32_t       life = v == NULL ? 0 : (uint32_t)v[0] << 24 |
        (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];

    if (life == 0) {
        alloc_gone(ag);
        if (r->flags & RQ_AFTER)
            reallocate(w, ag);
        return;
    }
    if (ag->nrelayed == 0)
        return;
    ag->alloc_at = w->now;
    ag->lifetime = life;
    if (ag->state == AG_ALLOCATED)
        ag->refresh_at = ag->keep_alloc ? w->now + (uint64_t)life * 500 : 0;
}

static void forget(struct sim_agent *ag, struct ag_chan *c);

static void
chan_set(struct sim_world *w, struct sim_agent *ag, const struct ag_req *r)
{
    struct ag_chan *free_ = NULL;

    for (int k = 0; k < SIM_AG_CHANS; k++) {
        struct ag_chan *c = &ag->ch[k];

        if (c->used && (c->number == r->number ||
                sim_addr_eq(&c->peer, &r->peer)))
            forget(ag, c);
        if (!c->used && free_ == NULL)
            free_ = c;
    }
    if (free_ == NULL)
        return;
    free_->used = 1;
    free_->keep = r->keep;
    free_->number = r->number;
    free_->peer = r->peer;
    free_->bound_at = w->now;
    free_->refresh_at = r->keep ?
        w->now + sim_rng_range(&w->rng_ag, 240, 540) * 1000ULL : 0;
}

static void
finish(struct sim_world *w, struct sim_agent *ag, struct ag_req *r,
    const struct sim_msg *m, unsigned code)
{
    struct ag_req done = *r;

    r->used = 0;
    if (done.flags & RQ_ONEOFF)
        return;
    switch (done.method) {
    case SM_ALLOCATE:
        if (code == 0)
            alloc_ok(w, ag, m);
        else if (code == 437 && !(done.flags & RQ_ANON))
            sim_agent_refresh(w, ag, 0, RQ_AFTER);
        else if (ag->state == AG_ALLOCATING)
            ag->state = AG_IDLE;
        break;
    case SM_REFRESH:
        if (code == 0) {
            refresh_ok(w, ag, &done, m);
        } else if (code == 437) {
            alloc_lost(ag);
            if ((done.flags & RQ_AFTER) || ag->keep_alloc)
                reallocate(w, ag);
        }
        break;
    case SM_CHANBIND:
        if (code == 0 && ag->nrelayed > 0) {
            chan_set(w, ag, &done);
        } else if (code == 437) {
            alloc_lost(ag);
            if (ag->keep_alloc)
                reallocate(w, ag);
        }
        break;
    default:
        break;
    }
}

static void
on_challenge(struct sim_world *w, struct sim_agent *ag, struct ag_req *r,
    const struct sim_msg *m, unsigned code)
{
    const uint8_t *v;
    uint16_t       l;

    if ((v = sim_msg_get(m, SA_NONCE, &l)) != NULL && l == 36) {
        memcpy(ag->nonce, v, 36);
        ag->have_nonce = 1;
    }
    if ((r->flags & RQ_ANON) || r->chal >= 3) {
        r->used = 0;
        if (ag->state == AG_ALLOCATING && r->method == SM_ALLOCATE &&
            !(r->flags & RQ_ONEOFF))
            ag->state = AG_IDLE;
        return;
    }
    if (code == 401 && r->had_nonce) {
        /* Bad credentials: snownet stops until it gets new ones. */
        r->used = 0;
        ag->state = AG_BADCREDS;
        return;
    }
    r->chal++;
    r->tries = 0;
    issue(w, ag, r);
}

static void
on_stun(struct sim_world *w, struct sim_agent *ag, const struct sim_dgram *d)
{
    struct sim_msg m;
    const uint8_t *v;
    uint16_t       l;
    unsigned       code = 0;

    if (sim_msg_parse(&m, d->data, d->len) != 0)
        return;
    for (int k = 0; k < SIM_AG_REQS; k++) {
        struct ag_req *r = &ag->rq[k];

        if (!r->used || memcmp(r->txid, m.txid, 12) != 0)
            continue;
        if (m.cls == SC_ERROR && (v = sim_msg_get(&m, SA_ERROR_CODE,
                &l)) != NULL && l >= 4)
            code = (unsigned)(v[2] & 7) * 100 + v[3];
        if (code == 401 || code == 438)
            on_challenge(w, ag, r, &m, code);
        else
            finish(w, ag, r, &m, code);
        return;
    }
}

/* --- Probes ------------------------------------------------------------ */

/* The agent owning an address: a host socket, or the client of the
 * allocation relaying on that public address and port. */
static int
owner_of(struct sim_world *w, const struct addr *a)
{
    struct sim_agent *ag;
    int               i;

    if (sim_relay_owns(w, a)) {
        i = sim_model_by_port(w, a->port);
        if (i < 0 || w->model.a[i].state != M_LIVE ||
            !(w->model.a[i].fams & (a->family == ADDR_V4 ? 1 : 2)))
            return -2;
        ag = sim_agent_at(w, &w->model.a[i].client);
        return ag == NULL ? -2 : ag->id;
    }
    ag = sim_agent_at(w, a);
    return ag == NULL ? -2 : ag->id;
}

static size_t
probe_payload(struct sim_world *w, uint8_t *buf, uint32_t id, uint32_t size)
{
    size_t n = PROBE_HDR + (size > 400 ? 400 : size);

    buf[0] = (uint8_t)(PROBE_MAGIC >> 24);
    buf[1] = (uint8_t)(PROBE_MAGIC >> 16);
    buf[2] = (uint8_t)(PROBE_MAGIC >> 8);
    buf[3] = (uint8_t)PROBE_MAGIC;
    buf[4] = (uint8_t)(id >> 24);
    buf[5] = (uint8_t)(id >> 16);
    buf[6] = (uint8_t)(id >> 8);
    buf[7] = (uint8_t)id;
    memset(buf + 8, 0, PROBE_HDR - 8);
    for (size_t i = PROBE_HDR; i < n; i++)
        buf[i] = (uint8_t)sim_rng_next(&w->rng_ag);
    return n;
}

static void
send_chandata(struct sim_world *w, struct sim_agent *ag,
    const struct addr *from, uint16_t number, const uint8_t *p, size_t n,
    int pad)
{
    uint8_t buf[SIM_DGRAM_MAX];
    size_t  len = 4 + n;

    buf[0] = (uint8_t)(number >> 8);
    buf[1] = (uint8_t)number;
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    memcpy(buf + 4, p, n);
    if (pad)
        while (len % 4 != 0)
            buf[len++] = 0xEE;
    sim_net_send(w, from, listen_of(w, ag), buf, len, NULL, 0);
}

void
sim_agent_probe(struct sim_world *w, struct sim_agent *ag, uint16_t number,
    uint32_t size, int expect)
{
    struct sim_probe *p;
    uint32_t          id;
    uint8_t           buf[PROBE_HDR + 400];
    size_t            n;
    int               a, c;

    if (ag->stopped || (p = sim_probe_new(w, &id)) == NULL)
        return;
    w->st[ST_PROBE]++;
    p->from = ag->id;
    p->from_sock = *sim_agent_sock(ag);
    p->via = number;
    p->expect_rt = (uint8_t)expect;
    p->to = -1;
    a = sim_model_alive(w, sim_agent_sock(ag));
    if (a >= 0 && (c = sim_model_chan(w, a, number)) >= 0) {
        p->target = w->model.c[c].peer;
        p->to = owner_of(w, &p->target);
    }
    n = probe_payload(w, buf, id, size);
    send_chandata(w, ag, sim_agent_sock(ag), number, buf, n,
        sim_rng_pm(&w->rng_ag, 300));
}

void
sim_agent_stray(struct sim_world *w, struct sim_agent *ag,
    const struct addr *to, uint32_t size)
{
    const struct addr *from = to->family == ADDR_V4 ? &ag->host4 :
        &ag->host6;
    struct sim_probe  *p;
    uint32_t           id;
    uint8_t            buf[PROBE_HDR + 400];
    size_t             n;

    if (ag->stopped || !(to->family == ADDR_V4 ? ag->has4 : ag->has6) ||
        (p = sim_probe_new(w, &id)) == NULL)
        return;
    p->from = ag->id;
    p->from_sock = *from;
    p->target = *to;
    p->to = owner_of(w, to);
    n = probe_payload(w, buf, id, size);
    sim_net_send(w, from, to, buf, n, NULL, 0);
}

static void
on_probe(struct sim_world *w, struct sim_agent *ag, const struct sim_dgram *d,
    const uint8_t *pl, size_t n, uint16_t number)
{
    struct sim_probe *p;
    uint8_t           buf[PROBE_HDR + 400];
    uint32_t          id;

    if (n < PROBE_HDR || n > sizeof(buf) || pl[0] != 'S' || pl[1] != 'I' ||
        pl[2] != 'M' || pl[3] != 'P') {
        sim_fail(w, "garbage", "agent %d got %zu bytes that are no probe",
            ag->id, n);
        return;
    }
    id = (uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 |
        (uint32_t)pl[6] << 8 | pl[7];
    if ((p = sim_probe_get(w, id)) == NULL) {
        sim_fail(w, "garbage", "agent %d got unknown probe %u", ag->id, id);
        return;
    }
    if (pl[8] & 1) {
        /* Back to the sender on the channel it used, or to whoever owns
         * the address the reply went to by now (a reused relay port). */
        w->st[ST_DELIV_CHECKED]++;
        if (ag->id == p->from && sim_addr_eq(&d->dst, &p->from_sock)) {
            if (number != 0 && p->via != 0 && number != p->via)
                sim_fail(w, "reply-wrong-channel", "reply to probe %u came "
                    "back on 0x%04x, sent on 0x%04x", id, number, p->via);
        } else if (!p->replied || owner_of(w, &p->reply_to) != ag->id) {
            sim_fail(w, "reply-misdelivered", "reply to probe %u (from "
                "agent %d via 0x%04x) reached agent %d via 0x%04x", id,
                p->from, p->via, ag->id, number);
        }
        p->replies++;
        return;
    }
    if (p->to == -1) {
        w->st[ST_DELIV_UNKNOWN]++;
    } else {
        w->st[ST_DELIV_CHECKED]++;
        if (ag->id != p->to && owner_of(w, &p->target) != ag->id)
            sim_fail(w, "probe-misdelivered", "probe %u of agent %d for "
                "agent %d reached agent %d", id, p->from, p->to, ag->id);
    }
    p->arrivals++;
    w->st[ST_ARRIVALS]++;
    if (ag->stopped)
        return;
    memcpy(buf, pl, n);
    buf[8] |= 1;
    p->replied = 1;
    p->reply_to = d->src;
    if (number != 0) {
        int c, i = sim_model_alive(w, &d->dst);

        c = i < 0 ? -1 : sim_model_chan(w, i, number);
        if (c >= 0)
            p->reply_to = w->model.c[c].peer;
    }
    if (number != 0)
        send_chandata(w, ag, &d->dst, number, buf, n, 0);
    else
        sim_net_send(w, &d->dst, &d->src, buf, n, NULL, 0);
}

void
sim_agent_recv(struct sim_world *w, struct sim_agent *ag,
    const struct sim_dgram *d)
{
    uint16_t len;

    if (!sim_addr_eq(&d->src, listen_of(w, ag)) &&
        !sim_addr_eq(&d->src, d->src.family == ADDR_V4 ?
            &w->relay.listen4 : &w->relay.listen6)) {
        on_probe(w, ag, d, d->data, d->len, 0);
        update_wake(ag);
        return;
    }
    if (d->len >= 1 && d->data[0] <= 3) {
        if (sim_addr_eq(&d->dst, sim_agent_sock(ag)))
            on_stun(w, ag, d);
    } else if (d->len >= 4) {
        len = (uint16_t)(d->data[2] << 8 | d->data[3]);
        if (len + 4u > d->len)
            sim_fail(w, "garbage", "short ChannelData to agent %d", ag->id);
        else
            on_probe(w, ag, d, d->data + 4, len,
                (uint16_t)(d->data[0] << 8 | d->data[1]));
    }
    update_wake(ag);
}

/* --- Timers ----------------------------------------------------------- */

static void
wake_requests(struct sim_world *w, struct sim_agent *ag)
{
    for (int k = 0; k < SIM_AG_REQS; k++) {
        struct ag_req *r = &ag->rq[k];

        if (!r->used || r->rto_at > w->now)
            continue;
        if (r->tries < MAX_TRIES) {
            req_send(w, ag, r);
            continue;
        }
        r->used = 0;
        if (r->method == SM_ALLOCATE && ag->state == AG_ALLOCATING &&
            !(r->flags & RQ_ONEOFF))
            ag->state = AG_IDLE;
    }
}

static void
forget(struct sim_agent *ag, struct ag_chan *c)
{
    ag->old[ag->nold++ % 8] = *c;
    c->used = 0;
}

static void
wake_channels(struct sim_world *w, struct sim_agent *ag)
{
    for (int k = 0; k < SIM_AG_CHANS; k++) {
        struct ag_chan *c = &ag->ch[k];

        if (!c->used)
            continue;
        if (w->now >= c->bound_at + SIM_CHAN_LIFE_MS) {
            forget(ag, c);
        } else if (c->keep && c->refresh_at != 0 &&
            c->refresh_at <= w->now) {
            c->refresh_at = 0;
            if (ag->state == AG_ALLOCATED)
                sim_agent_bind(w, ag, c->number, &c->peer, 1, 0);
        }
    }
}

void
sim_agent_wake(struct sim_world *w, struct sim_agent *ag)
{
    if (ag->stopped) {
        ag->wake = UINT64_MAX;
        return;
    }
    wake_requests(w, ag);
    if ((ag->state == AG_ALLOCATED || ag->state == AG_BADCREDS) &&
        ag->nrelayed > 0 &&
        w->now >= ag->alloc_at + (uint64_t)ag->lifetime * 1000) {
        alloc_gone(ag);
    } else if (ag->state == AG_ALLOCATED && ag->refresh_at != 0 &&
        ag->refresh_at <= w->now) {
        ag->refresh_at = 0;
        if (!pending(ag, SM_REFRESH))
            sim_agent_refresh(w, ag, ag->want_life, 0);
    }
    wake_channels(w, ag);
    update_wake(ag);
}

void
sim_agent_rebind_nat(struct sim_world *w, struct sim_agent *ag)
{
    struct addr *s = ag->sfam == 4 ? &ag->host4 : &ag->host6;
    int          had = ag->state == AG_ALLOCATED ||
        ag->state == AG_ALLOCATING;

    s->port = new_port(w);
    ag->have_nonce = 0;
    memset(ag->rq, 0, sizeof(ag->rq));
    alloc_lost(ag);
    ag->recover = 0;
    /* Same USERNAME from a new socket: the old allocation is replaced
     * (SPEC §2.6.2 step 7). */
    if (had)
        sim_agent_allocate(w, ag, ag->fam, ag->want_life, 0);
    update_wake(ag);
}

void
sim_agent_flap_back(struct sim_world *w, struct sim_agent *ag,
    const struct addr *old)
{
    struct addr *s = ag->sfam == 4 ? &ag->host4 : &ag->host6;

    if (old->family != s->family)
        return;
    *s = *old;
    ag->have_nonce = 0;
    memset(ag->rq, 0, sizeof(ag->rq));
    alloc_lost(ag);
    ag->recover = 0;
    sim_agent_allocate(w, ag, ag->fam, ag->want_life, 0);
    update_wake(ag);
}

int
sim_agent_chan_ok(const struct sim_world *w, const struct sim_agent *ag,
    const struct ag_chan *c)
{
    return c->used && w->now < c->bound_at + SIM_CHAN_LIFE_MS &&
        ag->state == AG_ALLOCATED;
}
