/* chan_idx.c - a worker's hot-path channel index; see chan_idx.h.
 *
 * Two open-addressing tables with linear probing, one per key, always of
 * the same power-of-two size and at most 3/4 full.  A deletion shifts the
 * later members of its probe run back into the hole (no tombstones), so
 * lookups stay as short after a week of churn as on the first day.  Each
 * entry keeps its 32-bit hash: probes compare it before the key, and
 * neither shifts nor growth recompute SipHash.
 *
 * The tables start at CHAN_IDX_MIN_SIZE entries and double, by rehashing
 * into new ones, when an add would fill them beyond 3/4; a worker holding
 * few channels so keeps a few pages, not tables for limits.max_channels
 * (8 MiB at the default).  Growth happens in chan_idx_add() and
 * chan_idx_reserve() only, which the core calls on the control path; if
 * the memory cannot be had the old tables stay as they were. */
#include <stdlib.h>
#include <string.h>

#include "chan_idx.h"
#include "rly_err.h"
#include "siphash.h"

/* Largest cap accepted: keeps the table sizes far from overflow. */
#define CHAN_IDX_MAX_CAP    (1u << 28)

struct ci_ent {
    uint32_t    hash;
    uint32_t    chan;       /* CHAN_IDX_NONE: empty */
    struct addr addr;       /* client, or peer */
    uint16_t    k16;        /* channel number, or relay port */
};

struct ci_table {
    struct ci_ent  *e;
    uint32_t        mask;
    uint32_t        hint;       /* position of the last hit, or any */
};

struct chan_idx {
    struct ci_table     by_client;
    struct ci_table     by_peer;
    uint32_t            cap, count;
    uint32_t            max_size;   /* the size for cap: no growth beyond */
    struct siphash_key  key;
};

/* SipHash of k16, family, port and the IP bytes the family uses (the rest
 * of struct addr need not be zero). */
static uint32_t
hash_key(const struct chan_idx *ci, const struct addr *a, uint16_t k16)
{
    uint8_t buf[21];
    size_t  iplen = a->family == ADDR_V4 ? 4 : 16;

    buf[0] = (uint8_t)(k16 >> 8);
    buf[1] = (uint8_t)k16;
    buf[2] = a->family;
    buf[3] = (uint8_t)(a->port >> 8);
    buf[4] = (uint8_t)a->port;
    memcpy(buf + 5, a->ip, iplen);
    return (uint32_t)siphash24(&ci->key, buf, 5 + iplen);
}

/* Position of the key, or CHAN_IDX_NONE.  Ends: a table always has an
 * empty entry (fits() keeps count below its size). */
static uint32_t
table_find(const struct ci_table *t, uint32_t h, const struct addr *a,
    uint16_t k16)
{
    uint32_t i;

    for (i = h & t->mask; t->e[i].chan != CHAN_IDX_NONE;
        i = (i + 1) & t->mask) {
        const struct ci_ent *e = &t->e[i];

        if (e->hash == h && e->k16 == k16 && addr_eq(&e->addr, a))
            return i;
    }
    return CHAN_IDX_NONE;
}

/* Stores e in the first empty entry of its probe run. */
static void
table_put(struct ci_table *t, const struct ci_ent *e)
{
    uint32_t i;

    for (i = e->hash & t->mask; t->e[i].chan != CHAN_IDX_NONE;
        i = (i + 1) & t->mask)
        ;
    t->e[i] = *e;
}

static void
table_insert(struct ci_table *t, uint32_t h, const struct addr *a,
    uint16_t k16, uint32_t chan)
{
    struct ci_ent e;

    memset(&e, 0, sizeof(e));
    e.hash = h;
    e.chan = chan;
    e.addr = *a;
    e.k16 = k16;
    table_put(t, &e);
}

/* Empties entry i, then moves back each later member of the run that may
 * live at the hole: one whose home is not cyclically inside (hole, j]. */
static void
table_remove_at(struct ci_table *t, uint32_t i)
{
    uint32_t j = i, home;

    for (;;) {
        j = (j + 1) & t->mask;
        if (t->e[j].chan == CHAN_IDX_NONE)
            break;
        home = t->e[j].hash & t->mask;
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->e[i] = t->e[j];
            i = j;
        }
    }
    t->e[i].chan = CHAN_IDX_NONE;
}

static void
table_clear(struct ci_table *t)
{
    for (uint32_t i = 0; i <= t->mask; i++)
        t->e[i].chan = CHAN_IDX_NONE;
}

/* A table of size entries, all empty, or NULL. */
static struct ci_ent *
table_alloc(uint32_t size)
{
    struct ci_ent *e = calloc(size, sizeof(*e));

    if (e != NULL)
        for (uint32_t i = 0; i < size; i++)
            e[i].chan = CHAN_IDX_NONE;
    return e;
}

/* Moves every entry of t into the empty table ne of size entries. */
static void
table_move(struct ci_table *t, struct ci_ent *ne, uint32_t size)
{
    struct ci_table nt = { ne, size - 1, 0 };

    for (uint32_t i = 0; i <= t->mask; i++)
        if (t->e[i].chan != CHAN_IDX_NONE)
            table_put(&nt, &t->e[i]);
    free(t->e);
    *t = nt;
}

/* Rehashes both tables into tables of size entries (a power of two that
 * holds the count).  Returns 0, or RLY_ERR_FULL with nothing changed. */
static int
resize(struct chan_idx *ci, uint32_t size)
{
    struct ci_ent *c = table_alloc(size), *p = table_alloc(size);

    if (c == NULL || p == NULL) {
        free(c);
        free(p);
        return RLY_ERR_FULL;
    }
    table_move(&ci->by_client, c, size);
    table_move(&ci->by_peer, p, size);
    return 0;
}

/* Whether n entries leave a table of size entries at most 3/4 full; the
 * largest size always fits, as cap < 3/4 of it. */
static int
fits(const struct chan_idx *ci, uint32_t size, uint32_t n)
{
    return size >= ci->max_size || n <= size - size / 4;
}

struct chan_idx *
chan_idx_new(uint32_t cap, const uint8_t hashkey[16])
{
    struct chan_idx *ci;
    uint32_t         max = 4;

    if (cap > CHAN_IDX_MAX_CAP)
        return NULL;
    while (max < cap + cap / 3 + 1)
        max <<= 1;
    if ((ci = calloc(1, sizeof(*ci))) == NULL)
        return NULL;
    ci->max_size = max;
    max = max < CHAN_IDX_MIN_SIZE ? max : CHAN_IDX_MIN_SIZE;
    ci->by_client.e = table_alloc(max);
    ci->by_peer.e = table_alloc(max);
    if (ci->by_client.e == NULL || ci->by_peer.e == NULL) {
        chan_idx_free(ci);
        return NULL;
    }
    ci->by_client.mask = ci->by_peer.mask = max - 1;
    ci->cap = cap;
    siphash_key_set(&ci->key, hashkey);
    return ci;
}

void
chan_idx_free(struct chan_idx *ci)
{
    if (ci == NULL)
        return;
    free(ci->by_client.e);
    free(ci->by_peer.e);
    free(ci);
}

void
chan_idx_clear(struct chan_idx *ci)
{
    table_clear(&ci->by_client);
    table_clear(&ci->by_peer);
    ci->count = 0;
}

uint32_t
chan_idx_count(const struct chan_idx *ci)
{
    return ci->count;
}

uint32_t
chan_idx_size(const struct chan_idx *ci)
{
    return ci->by_client.mask + 1;
}

int
chan_idx_reserve(struct chan_idx *ci, uint32_t n)
{
    uint32_t size = chan_idx_size(ci);

    if (n > ci->cap)
        return RLY_ERR_FULL;
    if (fits(ci, size, n))
        return 0;
    while (!fits(ci, size, n))
        size <<= 1;
    return resize(ci, size);
}

int
chan_idx_add(struct chan_idx *ci, uint32_t chan,
    const struct addr *client, uint16_t number,
    uint16_t port, const struct addr *peer)
{
    uint32_t hc = hash_key(ci, client, number);
    uint32_t hp = hash_key(ci, peer, port);

    if (chan == CHAN_IDX_NONE)
        return RLY_ERR_INVAL;
    if (table_find(&ci->by_client, hc, client, number) != CHAN_IDX_NONE ||
        table_find(&ci->by_peer, hp, peer, port) != CHAN_IDX_NONE)
        return RLY_ERR_EXISTS;
    if (ci->count >= ci->cap ||
        chan_idx_reserve(ci, ci->count + 1) != 0)
        return RLY_ERR_FULL;
    table_insert(&ci->by_client, hc, client, number, chan);
    table_insert(&ci->by_peer, hp, peer, port, chan);
    ci->count++;
    return 0;
}

void
chan_idx_del(struct chan_idx *ci, const struct addr *client,
    uint16_t number, uint16_t port, const struct addr *peer)
{
    uint32_t ic, ip;

    ic = table_find(&ci->by_client, hash_key(ci, client, number), client,
        number);
    ip = table_find(&ci->by_peer, hash_key(ci, peer, port), peer, port);
    /* Both keys of one channel, or nothing: the tables stay paired. */
    if (ic == CHAN_IDX_NONE || ip == CHAN_IDX_NONE ||
        ci->by_client.e[ic].chan != ci->by_peer.e[ip].chan)
        return;
    table_remove_at(&ci->by_client, ic);
    table_remove_at(&ci->by_peer, ip);
    ci->count--;
}

/* The channel under the key in t, trying the last hit's position first. */
static uint32_t
lookup(const struct chan_idx *ci, struct ci_table *t, const struct addr *a,
    uint16_t k16)
{
    const struct ci_ent *e = &t->e[t->hint & t->mask];
    uint32_t             i;

    if (e->chan != CHAN_IDX_NONE && e->k16 == k16 && addr_eq(&e->addr, a))
        return e->chan;
    i = table_find(t, hash_key(ci, a, k16), a, k16);
    if (i == CHAN_IDX_NONE)
        return CHAN_IDX_NONE;
    t->hint = i;
    return t->e[i].chan;
}

uint32_t
chan_idx_by_client(struct chan_idx *ci, const struct addr *client,
    uint16_t number)
{
    return lookup(ci, &ci->by_client, client, number);
}

uint32_t
chan_idx_by_peer(struct chan_idx *ci, uint16_t port, const struct addr *peer)
{
    return lookup(ci, &ci->by_peer, peer, port);
}
