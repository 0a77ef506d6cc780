/* sim_model.c - the reference model of the relay: SPEC §2-§6 written
 * again, small and slow, from the point of view of the wire.
 *
 * For every datagram the relay receives the model predicts the outcome
 * (sim_model_predict_*: a set of allowed response codes, the signing
 * rule, the data to relay), the executor carries out the real core's
 * commands, and sim_model_settle() compares and updates the model.  What
 * the model cannot know (the random port, a bind refused by another
 * program, when a lazy timer reaps) it takes from the observed commands,
 * after checking them against the rules (probe order, close before open).
 * sim_check.c compares the whole table with the model after each
 * transition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_err.h"
#include "sim.h"

#define BIT(x)  (1u << (x))
#define WHY_CAP_STRICT  1
#define WHY_CAP_LOOSE   2
#define WHY_SLOTS       4
#define WHY_NOPORT      8

static int
xb_of(unsigned code)
{
    switch (code) {
    case 0:   return XB_OK;
    case 400: return XB_400;
    case 401: return XB_401;
    case 403: return XB_403;
    case 437: return XB_437;
    case 438: return XB_438;
    case 440: return XB_440;
    case 443: return XB_443;
    case 508: return XB_508;
    case 500: return XB_500;
    default:  return -1;
    }
}

static const char *
reason_of(unsigned code)
{
    switch (code) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 437: return "Allocation Mismatch";
    case 438: return "Stale Nonce";
    case 440: return "Address Family not Supported";
    case 443: return "Peer Address Family Mismatch";
    case 500: return "Server Error";
    case 508: return "Insufficient Capacity";
    default:  return NULL;
    }
}

char *
sim_fmt_addr(const struct addr *a)
{
    static __thread char buf[4][SIM_ADDRSTR];
    static __thread int  k;

    k = (k + 1) & 3;
    return sim_addr_str(a, buf[k], sizeof(buf[k]));
}

void
sim_model_init(struct sim_model *m)
{
    memset(m, 0, sizeof(*m));
}

void
sim_model_fini(struct sim_model *m)
{
    free(m->nonces);
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

/* --- Lookups ------------------------------------------------------------ */

static int
alive(const struct sim_world *w, int i)
{
    return w->model.a[i].state == M_LIVE && w->model.a[i].expiry > w->now;
}

int
sim_model_alive(const struct sim_world *w, const struct addr *a)
{
    for (int i = 0; i < M_ALLOCS; i++)
        if (alive(w, i) && sim_addr_eq(&w->model.a[i].client, a))
            return i;
    return -1;
}

/* LIVE in the table whatever its expiry (what atab_find_client sees). */
static int
own_any(const struct sim_world *w, const struct addr *a)
{
    for (int i = 0; i < M_ALLOCS; i++)
        if (w->model.a[i].state == M_LIVE &&
            sim_addr_eq(&w->model.a[i].client, a))
            return i;
    return -1;
}

static int
by_user(const struct sim_world *w, const char *u, uint16_t ulen, int skip)
{
    for (int i = 0; i < M_ALLOCS; i++) {
        const struct m_alloc *a = &w->model.a[i];

        if (i != skip && a->state == M_LIVE && a->ulen == ulen &&
            memcmp(a->user, u, ulen) == 0)
            return i;
    }
    return -1;
}

int
sim_model_by_port(const struct sim_world *w, uint16_t port)
{
    for (int i = 0; i < M_ALLOCS; i++)
        if (w->model.a[i].state != M_FREE && w->model.a[i].port == port)
            return i;
    return -1;
}

int
sim_chan_gone(const struct sim_world *w, const struct m_chan *c)
{
    return w->now >= c->until + SIM_CHAN_COOL_MS;
}

int
sim_model_chan(const struct sim_world *w, int alloc, uint16_t number)
{
    for (int i = 0; i < M_CHANS; i++) {
        const struct m_chan *c = &w->model.c[i];

        if (c->used && (int)c->alloc == alloc && c->number == number &&
            !sim_chan_gone(w, c))
            return i;
    }
    return -1;
}

int
sim_model_chan_peer(const struct sim_world *w, int alloc,
    const struct addr *peer)
{
    for (int i = 0; i < M_CHANS; i++) {
        const struct m_chan *c = &w->model.c[i];

        if (c->used && (int)c->alloc == alloc &&
            sim_addr_eq(&c->peer, peer) && !sim_chan_gone(w, c))
            return i;
    }
    return -1;
}

static void
free_alloc(struct sim_world *w, int i)
{
    for (int k = 0; k < M_CHANS; k++)
        if (w->model.c[k].used && (int)w->model.c[k].alloc == i)
            w->model.c[k].used = 0;
    memset(&w->model.a[i], 0, sizeof(w->model.a[i]));
}

/* --- Nonces (SPEC §3.7) ------------------------------------------------- */

static struct m_nonce *
nonce_find(struct sim_world *w, const struct addr *a)
{
    for (uint32_t i = 0; i < w->model.nnonces; i++)
        if (sim_addr_eq(&w->model.nonces[i].client, a))
            return &w->model.nonces[i];
    return NULL;
}

static void
nonce_remove(struct sim_world *w, const struct addr *a)
{
    struct m_nonce *n = nonce_find(w, a);

    if (n != NULL)
        *n = w->model.nonces[--w->model.nnonces];
}

/* Mints an entry for a socket (SPEC §3.7): the least recently used one
 * of its worker's table goes when the table is full. */
static struct m_nonce *
nonce_add(struct sim_world *w, const struct addr *a)
{
    struct sim_model *m = &w->model;
    int               wk = sim_worker_of(w, a), n = 0, lru = -1;

    for (uint32_t i = 0; i < m->nnonces; i++) {
        if (sim_worker_of(w, &m->nonces[i].client) != wk)
            continue;
        n++;
        if (lru < 0 || m->nonces[i].lru < m->nonces[lru].lru)
            lru = (int)i;
    }
    if ((uint32_t)n >= w->cfg.table_size && lru >= 0)
        m->nonces[lru] = m->nonces[--m->nnonces];
    if (m->nnonces == m->nonce_cap) {
        uint32_t        cap = m->nonce_cap ? m->nonce_cap * 2 : 64;
        struct m_nonce *p = realloc(m->nonces, cap * sizeof(*p));

        if (p == NULL)
            return NULL;
        m->nonces = p;
        m->nonce_cap = cap;
    }
    memset(&m->nonces[m->nnonces], 0, sizeof(m->nonces[0]));
    m->nonces[m->nnonces].client = *a;
    m->nonces[m->nnonces].lru = ++m->lru_clock;
    return &m->nonces[m->nnonces++];
}

/* --- Error rate limit (SPEC §2.12) -------------------------------------- */

/* Takes a token from the bucket of (worker, source IP); 0: rate_limited.
 * Millitokens refilled at error_rate per second, as SPEC §2.12 puts it;
 * the table is an LRU of limits.nonce_table_size IPs per worker. */
static struct m_bucket *
bucket_new(struct sim_world *w, int wk, const struct addr *ip)
{
    struct sim_model *m = &w->model;
    int               n = 0, lru = -1;

    for (uint32_t i = 0; i < m->nbuckets; i++) {
        if (m->buckets[i].worker != wk)
            continue;
        n++;
        if (lru < 0 || m->buckets[i].lru < m->buckets[lru].lru)
            lru = (int)i;
    }
    if ((uint32_t)n >= w->cfg.table_size && lru >= 0)
        m->buckets[lru] = m->buckets[--m->nbuckets];    /* evicted */
    if (m->nbuckets == m->bucket_cap) {
        uint32_t         cap = m->bucket_cap ? m->bucket_cap * 2 : 64;
        struct m_bucket *p = realloc(m->buckets, cap * sizeof(*p));

        if (p == NULL)
            return NULL;
        m->buckets = p;
        m->bucket_cap = cap;
    }
    m->buckets[m->nbuckets].ip = *ip;
    m->buckets[m->nbuckets].worker = (uint8_t)wk;
    m->buckets[m->nbuckets].milli = (uint64_t)w->cfg.err_burst * 1000;
    m->buckets[m->nbuckets].last = w->now;
    return &m->buckets[m->nbuckets++];
}

static int
rl_take(struct sim_world *w, int wk, const struct addr *src)
{
    struct sim_model *m = &w->model;
    struct m_bucket  *b = NULL;
    struct addr       ip = *src;
    uint64_t          full = (uint64_t)w->cfg.err_burst * 1000;

    if (w->cfg.err_rate == 0)
        return 1;
    ip.port = 0;
    for (uint32_t i = 0; i < m->nbuckets && b == NULL; i++)
        if (m->buckets[i].worker == wk && sim_addr_eq(&m->buckets[i].ip, &ip))
            b = &m->buckets[i];
    if (b == NULL) {
        if ((b = bucket_new(w, wk, &ip)) == NULL)
            return 1;
    } else if (w->now > b->last) {
        b->milli += (w->now - b->last) * w->cfg.err_rate;
        b->last = w->now;
        if (b->milli > full)
            b->milli = full;
    }
    b->lru = ++m->lru_clock;
    if (b->milli < 1000)
        return 0;
    b->milli -= 1000;
    return 1;
}

static int
uuid_ok(const uint8_t *v, uint16_t len)
{
    if (len != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        int hexd = (v[i] >= '0' && v[i] <= '9') ||
            (v[i] >= 'a' && v[i] <= 'f') || (v[i] >= 'A' && v[i] <= 'F');

        if (hyphen ? v[i] != '-' : !hexd)
            return 0;
    }
    return 1;
}

/* --- Peer policy (SPEC §5.4) ------------------------------------------ */

struct m_cidr {
    uint8_t     fam, len;
    uint8_t     ip[16];
};

/* The lists of sim_policy()'s variants, and the built-in list. */
static const struct m_cidr allow_v[4][2] = {
    { { 0 } },
    { { 4, 32, { 203, 0, 113, 9 } }, { 4, 8, { 127 } } },
    { { 0 } },
    { { 6, 128, { [15] = 1 } }, { 4, 16, { 169, 254 } } },
};
static const struct m_cidr deny_v[4][2] = {
    { { 0 } },
    { { 4, 25, { 203, 0, 113, 0 } } },
    { { 6, 112, { 0x20, 0x01, 0x0d, 0xb8, 0, 1 } }, { 4, 32, { 192, 0, 2,
        1 } } },
    { { 0 } },
};
static const struct m_cidr builtin[9] = {
    { 4, 8, { 0 } }, { 4, 8, { 127 } }, { 4, 16, { 169, 254 } },
    { 4, 4, { 224 } }, { 4, 4, { 240 } }, { 6, 128, { 0 } },
    { 6, 128, { [15] = 1 } }, { 6, 10, { 0xfe, 0x80 } }, { 6, 8, { 0xff } },
};

static int
cidr_in(const struct m_cidr *c, int fam, const uint8_t *ip)
{
    int n = c->len;

    if (c->fam == 0 || c->fam != fam)
        return 0;
    for (int k = 0; n > 0; k++, n -= 8) {
        uint8_t mask = n >= 8 ? 0xff : (uint8_t)(0xff << (8 - n));

        if ((ip[k] & mask) != (c->ip[k] & mask))
            return 0;
    }
    return 1;
}

static int
any_in(const struct m_cidr *list, int n, int nforms, const int *fam,
    const uint8_t *const *ip)
{
    for (int i = 0; i < n; i++)
        for (int f = 0; f < nforms; f++)
            if (cidr_in(&list[i], fam[f], ip[f]))
                return 1;
    return 0;
}

static int
policy_denied(const struct sim_world *w, const struct addr *p)
{
    static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
    static const uint8_t zero[16];
    const struct sim_relay *r = &w->relay;
    const uint8_t          *ip[2] = { p->ip, NULL };
    int                     fam[2] = { p->family == ADDR_V4 ? 4 : 6, 4 };
    int                     n = 1, v = r->policy & 3;

    if (p->port == 0)
        return 1;
    if (p->family == ADDR_V6 && (memcmp(p->ip, mapped, 12) == 0 ||
            memcmp(p->ip, nat64, 12) == 0 || (memcmp(p->ip, zero, 12) == 0 &&
            !(memcmp(p->ip, zero, 15) == 0 && p->ip[15] <= 1))))
        ip[n++] = p->ip + 12;
    for (int f = 0; f < n && p->port == SIM_LISTEN_PORT; f++)
        if ((fam[f] == 4 && r->has4 && memcmp(ip[f], r->pub4.ip, 4) == 0) ||
            (fam[f] == 6 && r->has6 && memcmp(ip[f], r->pub6.ip, 16) == 0))
            return 1;
    if (any_in(allow_v[v], 2, n, fam, ip))
        return 0;
    return any_in(builtin, 9, n, fam, ip) || any_in(deny_v[v], 2, n, fam, ip);
}

/* --- Predictions ----------------------------------------------------- */

static void
expect_drop(struct sim_expect *ex, enum turn_drop d)
{
    ex->kind = EX_DROP;
    ex->drop = d;
}

static void
expect_code(struct sim_expect *ex, unsigned code, int signed_)
{
    ex->kind = EX_RESP;
    ex->codes = BIT(xb_of(code));
    ex->signed_ = signed_;
}

/* SPEC §2.4 value rules for the attributes before MESSAGE-INTEGRITY. */
static int
values_ok(const struct sim_msg *m)
{
    for (int i = 0; i < m->nattr; i++) {
        const uint8_t *v = m->buf + m->at[i].off + 4;
        uint16_t       l = m->at[i].len;
        struct addr    a;

        switch (m->at[i].type) {
        case SA_MI:
            return l == 20;
        case SA_CHANNEL:
            if (l != 4 || v[0] < 0x40 || v[0] > 0x7F)
                return 0;
            break;
        case SA_LIFETIME:
        case SA_TRANSPORT:
            if (l != 4)
                return 0;
            break;
        case SA_RAF:
        case SA_AAF:
            if (l != 4 || (v[0] != 1 && v[0] != 2))
                return 0;
            break;
        case SA_PEER:
            if (sim_xaddr_decode(v, l, m->txid, &a) != 0)
                return 0;
            break;
        case SA_USERNAME:
            if (l > 512)
                return 0;
            break;
        case SA_REALM:
        case SA_NONCE:
            if (l > 127)
                return 0;
            break;
        default:
            break;
        }
    }
    return 1;
}

/* 401 or 438 (SPEC §2.8): a signed one needs a parsable username; a 401
 * costs a token (SPEC §2.12). */
static int
challenge(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex, unsigned code, int signed_)
{
    if (signed_ && ex->key == NULL)
        expect_drop(ex, TURN_DROP_BAD_USERNAME);
    else if (code == 401 && !rl_take(w, ex->worker, &d->src))
        expect_drop(ex, TURN_DROP_RATE_LIMITED);
    else
        expect_code(ex, code, signed_);
    return 0;
}

/* An unauthenticated 400 (SPEC §2.8), rate-limited. */
static void
unauth_400(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    if (!rl_take(w, ex->worker, &d->src))
        expect_drop(ex, TURN_DROP_RATE_LIMITED);
    else
        expect_code(ex, 400, 0);
}

/* SPEC §3.6.  Returns 1 when authenticated. */
static int
predict_auth(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    const struct sim_msg *m = &ex->req;
    const uint8_t        *user, *nonce;
    uint16_t              ulen = 0, nlen = 0;
    struct m_nonce       *n;
    uint64_t              expiry = 0;

    user = sim_msg_get(m, SA_USERNAME, &ulen);
    nonce = sim_msg_get(m, SA_NONCE, &nlen);
    if (user != NULL) {
        ex->key = sim_key_for(w, user, ulen);
        ex->ulen = ulen < SIM_USER_MAX ? ulen : SIM_USER_MAX - 1;
        memcpy(ex->user, user, ex->ulen);
    }
    if (sim_msg_find(m, SA_MI) < 0 || user == NULL || nonce == NULL ||
        !uuid_ok(nonce, nlen))
        return challenge(w, d, ex, 401, user != NULL);
    /* Step 5: checked, so most recent; a match consumes a use, an
     * exhausted match is removed (SPEC §3.7). */
    n = nonce_find(w, &d->src);
    if (n != NULL)
        n->lru = ++w->model.lru_clock;
    if (n == NULL || memcmp(n->text, nonce, 36) != 0 || n->uses == 0) {
        if (n != NULL && memcmp(n->text, nonce, 36) == 0) {
            ex->nonce_drop = 1;
            memcpy(ex->old_nonce, n->text, 36);
            nonce_remove(w, &d->src);
        }
        return challenge(w, d, ex, 438, 1);
    }
    n->uses--;
    ex->nonce_use = 1;
    if (ex->key == NULL) {
        expect_drop(ex, TURN_DROP_BAD_USERNAME);
        return 0;
    }
    for (uint16_t i = 0; i < ulen && user[i] != ':'; i++)
        expiry = expiry * 10 + (uint64_t)(user[i] - '0');
    if (expiry < sim_wall(w) || !sim_msg_mi_ok(&w->cr, m, ex->key))
        return challenge(w, d, ex, 401, 1);
    return 1;
}

static uint32_t
granted(const struct sim_msg *m)
{
    const uint8_t *v;
    uint16_t       l;
    uint32_t       life;

    if ((v = sim_msg_get(m, SA_LIFETIME, &l)) == NULL || l != 4)
        return 600;
    life = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
        (uint32_t)v[2] << 8 | v[3];
    return life > 3600 ? 3600 : life;
}

/* SPEC §4.4, first matching row; 0 with *fams, or the error code. */
static unsigned
families(const struct sim_world *w, const struct sim_msg *m, uint8_t *fams)
{
    const uint8_t *raf = sim_msg_get(m, SA_RAF, NULL);
    const uint8_t *aaf = sim_msg_get(m, SA_AAF, NULL);
    int            h4 = w->relay.has4, h6 = w->relay.has6;

    if ((raf != NULL && aaf != NULL) || (aaf != NULL && aaf[0] == 1))
        return 400;
    if (aaf != NULL) {
        *fams = (uint8_t)((h4 ? 1 : 0) | (h6 ? 2 : 0));
        return 0;
    }
    if (raf != NULL && raf[0] == 2) {
        *fams = 2;
        return h6 ? 0 : 440;
    }
    *fams = 1;
    return h4 ? 0 : 440;
}

static int
port_held(const struct sim_world *w, uint16_t port, int skip1, int skip2)
{
    for (int i = 0; i < M_ALLOCS; i++)
        if (i != skip1 && i != skip2 && w->model.a[i].state != M_FREE &&
            w->model.a[i].port == port)
            return 1;
    return 0;
}

static void
predict_ports(struct sim_world *w, struct sim_expect *ex, int skip1,
    int skip2)
{
    const struct sim_relay *r = &w->relay;
    int                     any = 0;

    for (uint32_t p = r->port_min; p <= r->port_max; p++) {
        if (port_held(w, (uint16_t)p, skip1, skip2))
            continue;
        any = 1;
        if (r->ports[p - r->port_min].owner == PORT_PROGRAM)
            ex->maybe_bindfail = 1;
    }
    if (!any) {
        ex->why508 |= WHY_NOPORT;
        ex->codes |= BIT(XB_508);
        return;
    }
    ex->codes |= BIT(XB_OK);
    if (ex->maybe_bindfail)
        ex->codes |= BIT(XB_508);
}

static void
predict_allocate(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    const struct sim_msg *m = &ex->req;
    int                   own = own_any(w, &d->src), u;
    uint32_t              active = 0, strict = 0, slots = 0;
    unsigned              code;

    ex->kind = EX_RESP;
    ex->signed_ = 1;
    if (own >= 0 && alive(w, own)) {
        if (memcmp(w->model.a[own].txid, m->txid, 12) == 0) {
            ex->replay = own;
            ex->fams = w->model.a[own].fams;
            ex->codes = BIT(XB_OK);
        } else {
            ex->codes = BIT(XB_437);
        }
        return;
    }
    ex->own_del = own;
    for (int i = 0; i < M_ALLOCS; i++) {
        if (i == own || w->model.a[i].state == M_FREE)
            continue;
        slots++;
        active += w->model.a[i].state == M_LIVE;
        strict += alive(w, i);
    }
    if (strict >= w->relay.capacity) {
        ex->why508 |= WHY_CAP_STRICT;
        ex->codes = BIT(XB_508);
        return;
    }
    if (active >= w->relay.capacity) {
        ex->why508 |= WHY_CAP_LOOSE;
        ex->codes |= BIT(XB_508);
    }
    if (sim_msg_get(m, SA_TRANSPORT, NULL)[0] != 17) {
        ex->codes |= BIT(XB_400);
        return;
    }
    if ((code = families(w, m, &ex->fams)) != 0) {
        ex->codes |= BIT(xb_of(code));
        return;
    }
    u = by_user(w, ex->user, ex->ulen, own);
    if (u >= 0) {
        ex->del = u;
        ex->del_same = w->model.a[u].worker == ex->worker;
        if (ex->del_same)
            slots--;
    }
    ex->lifetime = granted(m);
    if (slots >= w->relay.max_allocs) {
        ex->why508 |= WHY_SLOTS;
        ex->codes |= BIT(XB_508);
        return;
    }
    predict_ports(w, ex, own, ex->del_same ? u : -1);
}

static void
predict_refresh(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    int own = own_any(w, &d->src);

    if (own >= 0 && !alive(w, own)) {
        ex->own_del = own;
        own = -1;
    }
    if (own < 0) {
        expect_code(ex, 437, 1);
        return;
    }
    expect_code(ex, 0, 1);
    ex->lifetime = granted(&ex->req);
    if (ex->lifetime == 0) {
        ex->del = own;
        ex->del_same = 1;
    }
    ex->alloc = own;
}

static uint32_t
chan_slots(const struct sim_world *w, uint32_t grace, int skip1, int skip2)
{
    uint32_t n = 0;

    for (int i = 0; i < M_CHANS; i++) {
        const struct m_chan *c = &w->model.c[i];

        if (!c->used || i == skip1 || i == skip2)
            continue;
        if (w->now < c->until + SIM_CHAN_COOL_MS + grace)
            n++;
    }
    return n;
}

/* Channels of allocation a with this number / peer, including those past
 * their cool-down that a lazy timer has not deleted yet. */
static int
chan_any(const struct sim_world *w, int a, uint16_t number,
    const struct addr *peer)
{
    for (int i = 0; i < M_CHANS; i++) {
        const struct m_chan *c = &w->model.c[i];

        if (c->used && (int)c->alloc == a &&
            (peer == NULL ? c->number == number : sim_addr_eq(&c->peer,
                peer)))
            return i;
    }
    return -1;
}

static void
predict_bind(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    const struct sim_msg *m = &ex->req;
    const uint8_t        *v;
    uint16_t              l;
    int                   own = own_any(w, &d->src), byp, byn;
    uint32_t              strict, loose;

    v = sim_msg_get(m, SA_CHANNEL, NULL);
    ex->number = (uint16_t)(v[0] << 8 | v[1]);
    v = sim_msg_get(m, SA_PEER, &l);
    sim_xaddr_decode(v, l, m->txid, &ex->peer);
    if (own >= 0 && !alive(w, own)) {
        ex->own_del = own;
        own = -1;
    }
    ex->alloc = own;
    if (own < 0)
        return expect_code(ex, 437, 1);
    if (!(w->model.a[own].fams & (ex->peer.family == ADDR_V4 ? 1 : 2)))
        return expect_code(ex, 443, 1);
    if (policy_denied(w, &ex->peer))
        return expect_code(ex, 403, 1);
    byp = sim_model_chan_peer(w, own, &ex->peer);
    byn = sim_model_chan(w, own, ex->number);
    if ((byp >= 0 && w->model.c[byp].number != ex->number) ||
        (byn >= 0 && !sim_addr_eq(&w->model.c[byn].peer, &ex->peer)))
        return expect_code(ex, 400, 1);
    expect_code(ex, 0, 1);
    if (byn >= 0) {
        ex->chan = byn;
        return;
    }
    strict = chan_slots(w, 0, -1, -1);
    loose = chan_slots(w, w->grace, chan_any(w, own, ex->number, NULL),
        chan_any(w, own, 0, &ex->peer));
    if (strict >= w->relay.max_chans) {
        ex->codes = BIT(XB_508);
    } else if (loose >= w->relay.max_chans) {
        ex->codes |= BIT(XB_508);
        ex->lazy508 = 1;
    }
}

static void
predict_stun(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    struct sim_msg *m = &ex->req;
    int             fpi;

    if (sim_msg_parse(m, d->data, d->len) != 0)
        return expect_drop(ex, TURN_DROP_MALFORMED);
    fpi = sim_msg_find(m, SA_FINGERPRINT);
    if (fpi >= 0 && !sim_msg_fp_ok(m))
        return expect_drop(ex, TURN_DROP_FINGERPRINT);
    if (m->cls != SC_REQUEST)
        return expect_drop(ex, TURN_DROP_NOT_REQUEST);
    ex->fp = fpi >= 0;
    if (!values_ok(m))
        return unauth_400(w, d, ex);
    switch (m->method) {
    case SM_BINDING:
        return expect_code(ex, 0, 0);
    case SM_ALLOCATE:
        if (sim_msg_get(m, SA_TRANSPORT, NULL) == NULL)
            return unauth_400(w, d, ex);
        if (predict_auth(w, d, ex))
            predict_allocate(w, d, ex);
        return;
    case SM_REFRESH:
        if (predict_auth(w, d, ex))
            predict_refresh(w, d, ex);
        return;
    case SM_CHANBIND:
        if (sim_msg_get(m, SA_CHANNEL, NULL) == NULL ||
            sim_msg_get(m, SA_PEER, NULL) == NULL)
            return unauth_400(w, d, ex);
        if (predict_auth(w, d, ex))
            predict_bind(w, d, ex);
        return;
    case SM_PERMISSION:
        if (predict_auth(w, d, ex))
            expect_code(ex, 0, 1);
        return;
    default:
        return unauth_400(w, d, ex);
    }
}

static void
predict_chandata(struct sim_world *w, const struct sim_dgram *d,
    struct sim_expect *ex)
{
    uint16_t number, len;
    int      own, c;

    if (d->len < 4)
        return expect_drop(ex, TURN_DROP_MALFORMED);
    number = (uint16_t)(d->data[0] << 8 | d->data[1]);
    len = (uint16_t)(d->data[2] << 8 | d->data[3]);
    if (len > d->len - 4)
        return expect_drop(ex, TURN_DROP_MALFORMED);
    own = sim_model_alive(w, &d->src);
    c = own < 0 ? -1 : sim_model_chan(w, own, number);
    if (c < 0 || w->now >= w->model.c[c].until)
        return expect_drop(ex, TURN_DROP_NO_CHANNEL);
    ex->kind = EX_TO_PEER;
    ex->alloc = own;
    ex->port = w->model.a[own].port;
    ex->to = w->model.c[c].peer;
    ex->number = number;
    ex->payload = d->data + 4;
    ex->paylen = len;
}

void
sim_model_predict_client(struct sim_world *w, int wk,
    const struct sim_dgram *d, struct sim_expect *ex)
{
    memset(ex, 0, sizeof(*ex));
    ex->worker = wk;
    ex->del = ex->replay = ex->chan = ex->alloc = ex->own_del = -1;
    if (d->src.port == 0)
        return expect_drop(ex, TURN_DROP_PORT_ZERO);
    if (d->len == 0)
        return expect_drop(ex, TURN_DROP_MALFORMED);
    if (d->data[0] <= 0x03)
        return predict_stun(w, d, ex);
    if (d->data[0] >= 0x40 && d->data[0] <= 0x7F)
        return predict_chandata(w, d, ex);
    expect_drop(ex, TURN_DROP_MALFORMED);
}

void
sim_model_predict_peer(struct sim_world *w, int wk, uint16_t port,
    const struct sim_dgram *d, struct sim_expect *ex)
{
    int i = sim_model_by_port(w, port), c = -1;

    memset(ex, 0, sizeof(*ex));
    ex->worker = wk;
    ex->del = ex->replay = ex->chan = ex->alloc = ex->own_del = -1;
    if (i < 0) {
        sim_fail(w, "socket-without-alloc", "relay socket on port %u but "
            "no allocation holds it", (unsigned)port);
        return expect_drop(ex, TURN_DROP_NO_PEER_BINDING);
    }
    if (alive(w, i))
        c = sim_model_chan_peer(w, i, &d->src);
    if (c < 0 || w->now >= w->model.c[c].until)
        return expect_drop(ex, TURN_DROP_NO_PEER_BINDING);
    ex->kind = EX_TO_CLIENT;
    ex->alloc = i;
    ex->port = port;
    ex->to = w->model.a[i].client;
    ex->number = w->model.c[c].number;
    ex->payload = d->data;
    ex->paylen = d->len;
}

/* --- Executor hooks ---------------------------------------------------- */

void
sim_model_on_close(struct sim_world *w, int wk, uint16_t port,
    struct atab_ref ref, struct sim_expect *ex)
{
    int i = sim_model_by_port(w, port);

    if (i < 0) {
        sim_fail(w, "close-unknown", "RELAY_CLOSE of port %u that no "
            "allocation holds", (unsigned)port);
        return;
    }
    if (w->model.a[i].worker != wk || w->model.a[i].ref.idx != ref.idx ||
        w->model.a[i].ref.gen != ref.gen) {
        sim_fail(w, "close-wrong", "RELAY_CLOSE of port %u by worker %d "
            "for ref %u/%u: held by worker %u ref %u/%u", (unsigned)port, wk,
            ref.idx, ref.gen, w->model.a[i].worker, w->model.a[i].ref.idx,
            w->model.a[i].ref.gen);
        return;
    }
    if (ex != NULL && ex->kind == EX_ADOPT) {
        w->st[ST_LOST]++;           /* its port could not be bound again */
        free_alloc(w, i);
        return;
    }
    if (alive(w, i) && !(ex != NULL && ex->del == i && ex->del_same)) {
        sim_fail(w, "close-live", "RELAY_CLOSE of the live allocation of "
            "%s on port %u (expires in %llu ms)",
            sim_fmt_addr(&w->model.a[i].client), (unsigned)port,
            (unsigned long long)(w->model.a[i].expiry - w->now));
        return;
    }
    if (ex != NULL && ex->del == i)
        ex->closed_del = 1;
    if (ex == NULL)
        w->st[ST_CLOSE_TIMER]++;
    free_alloc(w, i);
}

/* The next port in probe order after prev that no allocation holds, or
 * 0 (SPEC §4.3). */
static uint16_t
next_free(const struct sim_world *w, uint16_t prev)
{
    const struct sim_relay *r = &w->relay;
    uint32_t                range = (uint32_t)r->port_max - r->port_min + 1;

    for (uint32_t k = 1; k < range; k++) {
        uint16_t p = (uint16_t)(r->port_min +
            ((uint32_t)(prev - r->port_min) + k) % range);

        if (!port_held(w, p, -1, -1))
            return p;
    }
    return 0;
}

void
sim_model_on_open(struct sim_world *w, int wk, uint16_t port, int attempt,
    uint16_t prev, const struct sim_expect *ex)
{
    uint16_t want;
    int      i;

    if (ex != NULL && ex->kind == EX_ADOPT) {
        i = sim_model_by_port(w, port);
        if (i < 0 || w->model.a[i].worker != wk ||
            w->model.a[i].state != M_LIVE)
            sim_fail(w, "adopt-open", "a respawned worker %d opens port %u "
                "that none of its live allocations holds", wk,
                (unsigned)port);
        return;
    }
    if (ex == NULL || ex->kind != EX_RESP || ex->req.method != SM_ALLOCATE ||
        ex->replay >= 0) {
        sim_fail(w, "open-unexpected", "RELAY_OPEN of port %u outside an "
            "Allocate", (unsigned)port);
        return;
    }
    if (port_held(w, port, -1, -1)) {
        sim_fail(w, "open-held", "RELAY_OPEN of port %u, still held by "
            "allocation of %s", (unsigned)port,
            sim_fmt_addr(&w->model.a[sim_model_by_port(w, port)].client));
        return;
    }
    if (attempt >= 8) {
        sim_fail(w, "open-attempts", "RELAY_OPEN attempt %d (port %u)",
            attempt + 1, (unsigned)port);
        return;
    }
    if (attempt > 0 && (want = next_free(w, prev)) != port)
        sim_fail(w, "probe-order", "after a bind failure on %u the relay "
            "tried %u, expected %u", (unsigned)prev, (unsigned)port,
            (unsigned)want);
}

void
sim_model_on_unbound(struct sim_world *w, const struct turn_cmd *c)
{
    for (int i = 0; i < M_CHANS; i++) {
        struct m_chan *mc = &w->model.c[i];

        if (!mc->used || mc->number != c->number ||
            w->model.a[mc->alloc].port != c->port ||
            !sim_addr_eq(&w->model.a[mc->alloc].client, &c->path.remote))
            continue;
        w->st[ST_UNBOUND]++;
        if (w->now < mc->until)
            sim_fail(w, "unbound-early", "CHAN_UNBOUND of %s 0x%04x at %llu,"
                " bound until %llu", sim_fmt_addr(&c->path.remote),
                (unsigned)c->number, (unsigned long long)w->now,
                (unsigned long long)mc->until);
        return;
    }
    sim_fail(w, "unbound-unknown", "CHAN_UNBOUND of %s 0x%04x: no such "
        "channel", sim_fmt_addr(&c->path.remote), (unsigned)c->number);
}

void
sim_model_respawn(struct sim_world *w, int worker)
{
    struct sim_model *m = &w->model;

    /* Deleted allocations of the dead worker are released by adopt. */
    for (int i = 0; i < M_ALLOCS; i++)
        if (m->a[i].state == M_KICKED && m->a[i].worker == worker)
            free_alloc(w, i);
    /* The new worker's nonce and rate-limit tables start empty. */
    for (uint32_t i = 0; i < m->nbuckets;)
        if (m->buckets[i].worker == worker)
            m->buckets[i] = m->buckets[--m->nbuckets];
        else
            i++;
    for (uint32_t i = 0; i < m->nnonces;)
        if (sim_worker_of(w, &m->nonces[i].client) == worker)
            m->nonces[i] = m->nonces[--m->nnonces];
        else
            i++;
}

/* --- Settling a request ------------------------------------------------ */

static unsigned
resp_code(struct sim_world *w, const struct sim_msg *r)
{
    const uint8_t *v;
    uint16_t       l;
    unsigned       code;
    const char    *reason;

    if (r->cls == SC_SUCCESS)
        return 0;
    if ((v = sim_msg_get(r, SA_ERROR_CODE, &l)) == NULL || l < 4) {
        sim_fail(w, "error-code", "error response without ERROR-CODE");
        return 999;
    }
    code = (unsigned)(v[2] & 7) * 100 + v[3];
    reason = reason_of(code);
    if (v[0] != 0 || v[1] != 0 || reason == NULL ||
        (size_t)l - 4 != strlen(reason) ||
        memcmp(v + 4, reason, (size_t)l - 4) != 0)
        sim_fail(w, "error-code", "ERROR-CODE %u with a wrong layout or "
            "reason phrase \"%.*s\"", code, (int)(l - 4), v + 4);
    return code;
}

/* relay_responses_total{message_type} of a method (SPEC §10.2). */
static int
mt_of(uint16_t method)
{
    switch (method) {
    case SM_BINDING:    return TURN_MT_BINDING;
    case SM_ALLOCATE:   return TURN_MT_ALLOCATE;
    case SM_REFRESH:    return TURN_MT_REFRESH;
    case SM_CHANBIND:   return TURN_MT_CHANNELBIND;
    case SM_PERMISSION: return TURN_MT_CREATEPERMISSION;
    default:            return TURN_MT_OTHER;
    }
}

/* SPEC §2.7 attribute order. */
static void
check_order(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r, unsigned code)
{
    uint16_t want[12];
    int      n = 0;

    want[n++] = SA_SOFTWARE;
    if (code != 0) {
        want[n++] = SA_ERROR_CODE;
        if (code == 401 || code == 438) {
            want[n++] = SA_REALM;
            want[n++] = SA_NONCE;
        }
    } else if (r->method == SM_BINDING) {
        want[n++] = SA_MAPPED;
    } else if (r->method == SM_ALLOCATE) {
        for (int f = 1; f <= 2; f++)
            if (ex->fams & f)
                want[n++] = SA_RELAYED;
        want[n++] = SA_MAPPED;
        want[n++] = SA_LIFETIME;
    } else if (r->method == SM_REFRESH) {
        want[n++] = SA_LIFETIME;
    }
    if (ex->signed_)
        want[n++] = SA_MI;
    if (ex->fp)
        want[n++] = SA_FINGERPRINT;
    for (int i = 0; i < n && i < r->nattr; i++)
        if (r->at[i].type != want[i]) {
            sim_fail(w, "attr-order", "%s %u: attribute %d is 0x%04x, "
                "expected 0x%04x", r->method == SM_ALLOCATE ? "Allocate" :
                "response", code, i, r->at[i].type, want[i]);
            return;
        }
    if (r->nattr != n)
        sim_fail(w, "attr-order", "response %u (method 0x%03x) has %d "
            "attributes, expected %d", code, r->method, r->nattr, n);
}

static void
check_signing(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r, unsigned code)
{
    int has_mi = sim_msg_find(r, SA_MI) >= 0;

    if (!ex->signed_ && has_mi)
        sim_fail(w, "unsigned-has-mi", "response %u to method 0x%03x must "
            "not carry MESSAGE-INTEGRITY (SPEC §2.8)", code, r->method);
    if (ex->signed_ && !has_mi)
        sim_fail(w, "signed-no-mi", "response %u to method 0x%03x lacks "
            "MESSAGE-INTEGRITY (SPEC §2.8)", code, r->method);
    if (ex->signed_ && has_mi &&
        (ex->key == NULL || !sim_msg_mi_ok(&w->cr, r, ex->key)))
        sim_fail(w, "bad-mi", "response %u to method 0x%03x: "
            "MESSAGE-INTEGRITY does not verify with the key of \"%.*s\"",
            code, r->method, (int)ex->ulen, ex->user);
    if (ex->fp && !sim_msg_fp_ok(r))
        sim_fail(w, "fingerprint", "response %u lacks a valid final "
            "FINGERPRINT", code);
    if (!ex->fp && sim_msg_find(r, SA_FINGERPRINT) >= 0)
        sim_fail(w, "fingerprint", "response %u carries FINGERPRINT the "
            "request did not", code);
    if (r->nattr > 0 && r->at[0].type == SA_SOFTWARE) {
        const uint8_t *v = r->buf + r->at[0].off + 4;

        if (r->at[0].len != strlen(SIM_SOFTWARE) ||
            memcmp(v, SIM_SOFTWARE, r->at[0].len) != 0)
            sim_fail(w, "software", "SOFTWARE is \"%.*s\"",
                (int)r->at[0].len, v);
    }
}

/* A 401 or 438 hands out the socket's current nonce, minting one if it
 * has none (SPEC §3.7). */
static void
settle_nonce(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r, const struct addr *client)
{
    const uint8_t  *v;
    uint16_t        l;
    struct m_nonce *n = nonce_find(w, client);

    if ((v = sim_msg_get(r, SA_NONCE, &l)) == NULL || !uuid_ok(v, l)) {
        sim_fail(w, "nonce", "401/438 without a UUID NONCE");
        return;
    }
    if (sim_msg_get(r, SA_REALM, &l) == NULL || l != 8 ||
        memcmp(sim_msg_get(r, SA_REALM, NULL), SIM_REALM, 8) != 0)
        sim_fail(w, "realm", "401/438 without REALM \"firezone\"");
    if (ex->nonce_drop && memcmp(ex->old_nonce, v, 36) == 0)
        sim_fail(w, "nonce-reuse", "an exhausted nonce was handed out "
            "again (SPEC §3.7)");
    if (n != NULL) {
        if (memcmp(n->text, v, 36) != 0)
            sim_fail(w, "nonce-changed", "401/438 to %s carries %.36s, the "
                "socket's nonce is %.36s", sim_fmt_addr(client), v, n->text);
        n->lru = ++w->model.lru_clock;
        return;
    }
    if ((n = nonce_add(w, client)) != NULL) {
        memcpy(n->text, v, 36);
        n->uses = SIM_NONCE_USES;
    }
}

static int
get_life(const struct sim_msg *r, uint32_t *life)
{
    const uint8_t *v;
    uint16_t       l;

    if ((v = sim_msg_get(r, SA_LIFETIME, &l)) == NULL || l != 4)
        return -1;
    *life = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
        (uint32_t)v[2] << 8 | v[3];
    return 0;
}

/* Relayed and mapped addresses of an Allocate success. */
static void
check_alloc_addrs(struct sim_world *w, const struct sim_msg *r,
    const struct addr *client, uint8_t fams, uint16_t port, uint32_t life)
{
    struct addr a;
    int         k = 0;
    uint32_t    got;

    for (int i = 0; i < r->nattr; i++) {
        const uint8_t *v = r->buf + r->at[i].off + 4;
        int            f;

        if (r->at[i].type != SA_RELAYED)
            continue;
        f = k == 0 && (fams & 1) ? 1 : 2;
        if (sim_xaddr_decode(v, r->at[i].len, r->txid, &a) != 0 ||
            a.port != port || a.family != (f == 1 ? ADDR_V4 : ADDR_V6) ||
            memcmp(a.ip, sim_relay_public(w, f == 1 ? 4 : 6)->ip,
                f == 1 ? 4 : 16) != 0)
            sim_fail(w, "relayed-addr", "XOR-RELAYED-ADDRESS #%d is %s, "
                "expected the public IPv%d address on port %u", k,
                sim_fmt_addr(&a), f == 1 ? 4 : 6, (unsigned)port);
        k++;
    }
    if (k != ((fams & 1) != 0) + ((fams & 2) != 0))
        sim_fail(w, "relayed-addr", "%d XOR-RELAYED-ADDRESS for families "
            "%u", k, (unsigned)fams);
    if (sim_msg_get(r, SA_MAPPED, NULL) == NULL ||
        sim_xaddr_decode(sim_msg_get(r, SA_MAPPED, NULL),
            r->at[sim_msg_find(r, SA_MAPPED)].len, r->txid, &a) != 0 ||
        !sim_addr_eq(&a, client))
        sim_fail(w, "mapped-addr", "XOR-MAPPED-ADDRESS is not %s",
            sim_fmt_addr(client));
    if (get_life(r, &got) != 0 || got != life)
        sim_fail(w, "lifetime", "Allocate LIFETIME %u, expected %u", got,
            life);
}

static int
new_alloc(struct sim_world *w)
{
    for (int i = 0; i < M_ALLOCS; i++)
        if (w->model.a[i].state == M_FREE)
            return i;
    sim_fail(w, "model-full", "more allocations than the table holds");
    return -1;
}

/* The deletion of a same-username allocation (SPEC §2.6.2 step 7);
 * happened: 1 it must have happened, 0 it must not, -1 either. */
static void
settle_del(struct sim_world *w, const struct sim_expect *ex, int happened)
{
    struct m_alloc    *a;
    struct atab_alloc *t;

    if (ex->del < 0 || ex->req.method != SM_ALLOCATE)
        return;
    a = &w->model.a[ex->del];
    if (ex->del_same) {
        w->st[ST_REPLACE_SAME] += ex->closed_del;
        if (happened == 1 && !ex->closed_del)
            sim_fail(w, "replace-not-closed", "the allocation of %s with "
                "the same username was not closed before the new one "
                "(SPEC §4.6)", sim_fmt_addr(&a->client));
        if (happened == 0 && ex->closed_del)
            sim_fail(w, "replace-closed", "a failed Allocate deleted the "
                "allocation with the same username");
        return;
    }
    t = atab_alloc_get(w->relay.tab, a->ref);
    if (t != NULL && atab_alloc_state(t) == ATAB_A_DELETED) {
        if (happened == 0 && a->expiry > w->now)
            sim_fail(w, "replace-kicked", "a failed Allocate deleted the "
                "allocation of %s", sim_fmt_addr(&a->client));
        a->state = M_KICKED;
        a->kicked_at = w->now;
        w->st[ST_REPLACE_KICK]++;
    } else if (happened == 1) {
        sim_fail(w, "replace-missed", "the allocation of %s with the same "
            "username survived a new Allocate (SPEC §2.6.2 step 7)",
            sim_fmt_addr(&a->client));
    }
}

static void
settle_alloc_508(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_obs *o)
{
    if (o->nopen > 0) {
        w->st[ST_508_BIND]++;
        for (int i = 0; i < o->nopen; i++)
            if (o->open[i].ok)
                sim_fail(w, "508-after-open", "508 although port %u "
                    "opened", (unsigned)o->open[i].port);
        if (o->nopen < 8 && next_free(w, o->open[o->nopen - 1].port) != 0)
            sim_fail(w, "508-early", "508 after %d bind failures with "
                "ports left (SPEC §4.3: 8 ports)", o->nopen);
        settle_del(w, ex, 1);
        return;
    }
    if (!(ex->why508 & (WHY_CAP_STRICT | WHY_CAP_LOOSE | WHY_SLOTS |
            WHY_NOPORT)))
        sim_fail(w, "508-unexpected", "Allocate got 508 with room left");
    if ((ex->why508 & (WHY_CAP_STRICT | WHY_CAP_LOOSE | WHY_SLOTS |
            WHY_NOPORT)) == WHY_CAP_LOOSE)
        w->st[ST_LAZY508]++;    /* an expired, unreaped one counted */
    if (ex->why508 & WHY_CAP_STRICT)
        settle_del(w, ex, 0);
    else if (ex->why508 & WHY_CAP_LOOSE)
        settle_del(w, ex, -1);
    else
        settle_del(w, ex, 1);
}

static void
settle_alloc_ok(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r, const struct sim_obs *o,
    const struct addr *client)
{
    struct m_alloc *a;
    int             i;

    if (ex->replay >= 0) {
        a = &w->model.a[ex->replay];
        check_alloc_addrs(w, r, client, a->fams, a->port, a->lifetime);
        if (o->nopen > 0)
            sim_fail(w, "replay-open", "an Allocate replay opened a port");
        w->st[ST_REPLAY]++;
        return;
    }
    if (o->nopen == 0 || !o->open[o->nopen - 1].ok) {
        sim_fail(w, "alloc-no-socket", "Allocate success without a bound "
            "relay socket");
        return;
    }
    if (o->open[o->nopen - 1].fams != ex->fams)
        sim_fail(w, "open-families", "RELAY_OPEN for families %u, expected "
            "%u", o->open[o->nopen - 1].fams, ex->fams);
    check_alloc_addrs(w, r, client, ex->fams, o->open[o->nopen - 1].port,
        ex->lifetime);
    settle_del(w, ex, 1);
    if ((i = new_alloc(w)) < 0)
        return;
    a = &w->model.a[i];
    a->state = M_LIVE;
    a->fams = ex->fams;
    a->worker = (uint8_t)ex->worker;
    a->port = o->open[o->nopen - 1].port;
    a->ref = o->open[o->nopen - 1].ref;
    a->client = *client;
    a->ulen = ex->ulen;
    memcpy(a->user, ex->user, ex->ulen);
    memcpy(a->txid, ex->req.txid, 12);
    a->lifetime = ex->lifetime;
    a->expiry = w->now + (uint64_t)ex->lifetime * 1000;
    w->st[ST_ALLOC]++;
    {
        uint32_t used = w->relay.max_allocs -
            atab_free_allocs(w->relay.tab);

        if (used > w->st[ST_MAX_ALLOCS])
            w->st[ST_MAX_ALLOCS] = used;
    }
}

static void
settle_refresh_ok(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r)
{
    uint32_t life = 0;

    if (get_life(r, &life) != 0 || life != ex->lifetime)
        sim_fail(w, "lifetime", "Refresh LIFETIME %u, expected %u", life,
            ex->lifetime);
    if (ex->lifetime == 0) {
        if (!ex->closed_del)
            sim_fail(w, "refresh0-not-closed", "Refresh 0 did not close "
                "the allocation at once (SPEC §4.6)");
        return;
    }
    w->model.a[ex->alloc].expiry = w->now + (uint64_t)ex->lifetime * 1000;
}

static void
settle_bind_ok(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_obs *o)
{
    const struct m_alloc *a = &w->model.a[ex->alloc];
    int                   i;

    if (o->nbound != 1 || o->bound[0].number != ex->number ||
        !sim_addr_eq(&o->bound[0].peer, &ex->peer) ||
        !sim_addr_eq(&o->bound[0].client, &a->client) ||
        o->bound[0].port != a->port) {
        sim_fail(w, "chan-bound-cmd", "ChannelBind success with %d "
            "CHAN_BOUND commands, or one for another channel", o->nbound);
        return;
    }
    if (ex->chan >= 0) {
        w->model.c[ex->chan].until = w->now + SIM_CHAN_LIFE_MS;
        w->st[ST_CHAN_REFRESH]++;
        return;
    }
    w->st[ST_CHAN_NEW]++;
    if (w->relay.max_chans - atab_free_chans(w->relay.tab) >
        w->st[ST_MAX_CHANS])
        w->st[ST_MAX_CHANS] = w->relay.max_chans -
            atab_free_chans(w->relay.tab);
    for (i = 0; i < M_CHANS; i++)
        if (!w->model.c[i].used)
            break;
    if (i == M_CHANS) {
        sim_fail(w, "model-full", "more channels than the table holds");
        return;
    }
    w->model.c[i].used = 1;
    w->model.c[i].alloc = (uint32_t)ex->alloc;
    w->model.c[i].number = ex->number;
    w->model.c[i].peer = ex->peer;
    w->model.c[i].until = w->now + SIM_CHAN_LIFE_MS;
}

static void
settle_effects(struct sim_world *w, const struct sim_expect *ex,
    const struct sim_msg *r, const struct sim_obs *o, unsigned code,
    const struct addr *client)
{
    if (code != 0 || r->method != SM_CHANBIND) {
        if (o->nbound != 0)
            sim_fail(w, "chan-bound-cmd", "CHAN_BOUND after response %u to "
                "method 0x%03x", code, r->method);
    }
    if (r->method != SM_ALLOCATE && o->nopen != 0)
        sim_fail(w, "open-unexpected", "RELAY_OPEN after method 0x%03x",
            r->method);
    if (code == 401 || code == 438)
        settle_nonce(w, ex, r, client);
    if (r->method == SM_ALLOCATE && code == 0)
        settle_alloc_ok(w, ex, r, o, client);
    else if (r->method == SM_ALLOCATE && code == 508)
        settle_alloc_508(w, ex, o);
    else if (r->method == SM_ALLOCATE)
        settle_del(w, ex, 0);
    else if (r->method == SM_REFRESH && code == 0)
        settle_refresh_ok(w, ex, r);
    else if (r->method == SM_CHANBIND && code == 0)
        settle_bind_ok(w, ex, o);
    else if (r->method == SM_CHANBIND && code == 508 && ex->lazy508)
        w->st[ST_LAZY508]++;
    if (r->method == SM_BINDING && code == 0) {
        struct addr a;
        int         k = sim_msg_find(r, SA_MAPPED);

        if (k < 0 || sim_xaddr_decode(r->buf + r->at[k].off + 4,
                r->at[k].len, r->txid, &a) != 0 || !sim_addr_eq(&a, client))
            sim_fail(w, "mapped-addr", "Binding XOR-MAPPED-ADDRESS is not "
                "%s", sim_fmt_addr(client));
    }
}

static void
settle_resp(struct sim_world *w, struct sim_expect *ex, int rc,
    const struct sim_obs *o, const struct addr *client)
{
    struct sim_msg r;
    unsigned       code;
    int            xb;

    if (rc != 0 || o->nsend != 1 || o->send[0].peer ||
        !sim_addr_eq(&o->send[0].dst, client)) {
        sim_fail(w, "no-response", "request 0x%03x from %s: rc %d, %d "
            "datagrams sent, expected one response", ex->req.method,
            sim_fmt_addr(client), rc, o->nsend);
        return;
    }
    if (sim_msg_parse(&r, o->send[0].data, o->send[0].len) != 0 ||
        memcmp(r.txid, ex->req.txid, 12) != 0 ||
        r.method != ex->req.method ||
        (r.cls != SC_SUCCESS && r.cls != SC_ERROR)) {
        sim_fail(w, "bad-response", "response to method 0x%03x does not "
            "parse or does not match the request", ex->req.method);
        return;
    }
    code = resp_code(w, &r);
    xb = xb_of(code);
    if (xb >= 0) {
        w->st[ST_RESP + xb]++;
        w->st_mt[mt_of(r.method)][xb]++;
    }
    if (xb < 0 || !(ex->codes & BIT(xb))) {
        sim_fail(w, "wrong-code", "method 0x%03x from %s got %u; allowed "
            "set 0x%03x (bit 0 success, then 400 401 403 437 438 440 443 "
            "508)", ex->req.method, sim_fmt_addr(client), code, ex->codes);
        return;
    }
    if (code == 401)
        ex->signed_ = sim_msg_get(&ex->req, SA_USERNAME, NULL) != NULL;
    check_signing(w, ex, &r, code);
    check_order(w, ex, &r, code);
    settle_effects(w, ex, &r, o, code, client);
}

static void
settle_data(struct sim_world *w, const struct sim_expect *ex, int rc,
    const struct sim_obs *o)
{
    const struct addr *src;
    uint8_t            hdr[4];

    if (rc != 0 || o->nsend != 1) {
        sim_fail(w, "data-not-relayed", "ChannelData %s 0x%04x (%zu bytes) "
            "was not relayed: rc %d, %d datagrams", ex->kind == EX_TO_PEER ?
            "to peer" : "from peer", (unsigned)ex->number, ex->paylen, rc,
            o->nsend);
        return;
    }
    w->st[ex->kind == EX_TO_PEER ? ST_TO_PEER : ST_TO_CLIENT]++;
    w->st[ex->kind == EX_TO_PEER ? ST_BYTES_PEER : ST_BYTES_CLIENT] +=
        ex->paylen;
    if (ex->kind == EX_TO_PEER) {
        src = sim_relay_public(w, ex->to.family == ADDR_V4 ? 4 : 6);
        if (!o->send[0].peer || o->send[0].port != ex->port ||
            !sim_addr_eq(&o->send[0].dst, &ex->to) ||
            o->send[0].len != ex->paylen ||
            memcmp(o->send[0].data, ex->payload, ex->paylen) != 0 ||
            memcmp(o->send[0].src.ip, src->ip, 16) != 0 ||
            o->send[0].src.port != ex->port)
            sim_fail(w, "data-misrelayed", "ChannelData 0x%04x went to %s "
                "from port %u, expected %s from %u", (unsigned)ex->number,
                sim_fmt_addr(&o->send[0].dst), (unsigned)o->send[0].port,
                sim_fmt_addr(&ex->to), (unsigned)ex->port);
        return;
    }
    hdr[0] = (uint8_t)(ex->number >> 8);
    hdr[1] = (uint8_t)ex->number;
    hdr[2] = (uint8_t)(ex->paylen >> 8);
    hdr[3] = (uint8_t)ex->paylen;
    if (o->send[0].peer || !sim_addr_eq(&o->send[0].dst, &ex->to) ||
        o->send[0].len != ex->paylen + 4 ||
        memcmp(o->send[0].data, hdr, 4) != 0 ||
        memcmp(o->send[0].data + 4, ex->payload, ex->paylen) != 0)
        sim_fail(w, "data-misdelivered", "peer data for channel 0x%04x of "
            "%s went to %s", (unsigned)ex->number, sim_fmt_addr(&ex->to),
            sim_fmt_addr(&o->send[0].dst));
}

void
sim_model_settle(struct sim_world *w, struct sim_expect *ex, int rc,
    enum turn_drop drop, const struct sim_obs *o, const struct addr *src)
{
    if (w->failed)
        return;
    if (ex->own_del >= 0 && w->model.a[ex->own_del].state != M_FREE &&
        w->model.a[ex->own_del].expiry <= w->now)
        sim_fail(w, "expired-kept", "the expired allocation of %s was not "
            "deleted when its client's request was handled (SPEC §6)",
            sim_fmt_addr(src));
    if (ex->kind != EX_RESP && o->nopen + o->nbound + o->nunbound > 0)
        sim_fail(w, "side-effect", "a datagram that needs no state change "
            "opened a port or bound a channel");
    switch (ex->kind) {
    case EX_DROP:
        w->st[ST_DROP + ex->drop]++;
        if (rc != RLY_ERR_DROP || drop != ex->drop || o->nsend != 0)
            sim_fail(w, "drop", "expected drop %s, got rc %d drop %s and "
                "%d datagrams", turn_drop_name(ex->drop), rc,
                rc == RLY_ERR_DROP ? turn_drop_name(drop) : "-", o->nsend);
        break;
    case EX_RESP:
        settle_resp(w, ex, rc, o, src);
        break;
    case EX_TO_PEER:
    case EX_TO_CLIENT:
        settle_data(w, ex, rc, o);
        break;
    default:
        sim_fail(w, "harness", "no prediction");
        break;
    }
}
