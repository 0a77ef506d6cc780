/* atab.c - the allocation table on a region the caller maps; see atab.h.
 *
 * Region layout, each part at a 64-byte aligned offset from the base:
 *
 *   struct atab_hdr        magic, counts, offsets, keys, the robust mutex,
 *                          free-list heads and counters, ready flag,
 *                          reload block x2 and its generation
 *   struct atab_worker[W]  per worker slot: stats, kick counter
 *   struct atab_alloc[A]   allocation slots
 *   struct atab_chan[C]    channel slots
 *   uint32_t[AB] x 2       bucket heads: client, username (AB = 2^k >= A)
 *   uint32_t[CB] x 2       bucket heads: (alloc, number), (alloc, peer)
 *   uint32_t[65536]        port -> holding allocation
 *
 * Nothing in the region is a pointer: slots name each other by index and
 * atab_attach() turns the offsets into this process's pointers, so every
 * process (or every mapping) may see the region at its own address.  The
 * indexes are chained hash tables whose links live in the slots; the keys
 * are hashed with SipHash under a key drawn by the master, since clients
 * and peers choose addresses and channel numbers.
 *
 * Everything the shared indexes, free lists and counters hold can be
 * derived from the committed slots; atab_repair() does exactly that. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "atab.h"
#include "rly_err.h"
#include "siphash.h"

#define ATAB_MAGIC      UINT64_C(0x3162617461797a66)    /* "fzyatab1" */
#define ATAB_VERSION    1
#define ATAB_ALIGN      64
#define ATAB_NPORTS     65536

/* One worker slot's record.  The stats are written by that worker only;
 * the kick counter, which other processes bump, gets a line of its own. */
struct atab_worker {
    struct turn_stats           stats;
    _Alignas(ATAB_ALIGN) uint64_t kicks;
};

struct atab_hdr {
    uint64_t    magic;              /* stored last by atab_format() */
    uint32_t    version;
    uint32_t    hdr_size;
    uint64_t    size;               /* atab_region_size() of the counts */
    uint32_t    max_allocs, max_chans, nworkers;
    uint32_t    abuckets, cbuckets;
    uint32_t    nports;             /* entries of the port array */
    uint64_t    off_workers, off_allocs, off_chans;
    uint64_t    off_client, off_user, off_num, off_peer, off_ports;
    uint8_t     user_key[ATAB_USER_KEY_LEN];
    uint8_t     hash_key[ATAB_HASH_KEY_LEN];

    /* Guarded by the mutex (repairs is read without it). */
    _Alignas(ATAB_ALIGN) pthread_mutex_t lock;
    uint64_t    repairs;
    uint32_t    active;             /* OPENING + LIVE */
    uint32_t    alloc_free, chan_free;      /* free-list heads */
    uint32_t    nfree_allocs, nfree_chans;

    /* Lock-free, atomic access. */
    _Alignas(ATAB_ALIGN) uint32_t ready;
    uint32_t    reload_gen;
    struct atab_reload reload[2];   /* reload[gen & 1] is current */
};

/* Offsets and sizes derived from the counts; format and attach must
 * agree on them exactly. */
struct atab_layout {
    uint32_t    abuckets, cbuckets;
    size_t      off_workers, off_allocs, off_chans;
    size_t      off_client, off_user, off_num, off_peer, off_ports;
    size_t      size;
};

/* The process-local handle. */
struct atab {
    struct atab_hdr    *hdr;
    struct atab_worker *workers;
    struct atab_alloc  *allocs;
    struct atab_chan   *chans;
    uint32_t           *client_b, *user_b, *num_b, *peer_b, *ports;
    uint32_t            max_allocs, max_chans, nworkers;
    uint32_t            amask, cmask;
    struct siphash_key  key;
    void              (*hook)(void *ud, int point);
    void               *hook_ud;
};

/* --- Layout --- */

static size_t
round_up(size_t n)
{
    return (n + ATAB_ALIGN - 1) & ~(size_t)(ATAB_ALIGN - 1);
}

static uint32_t
pow2_at_least(uint32_t n)
{
    uint32_t p = 1;

    while (p < n)
        p <<= 1;
    return p;
}

static int
layout_compute(uint32_t max_allocs, uint32_t max_chans, uint32_t nworkers,
    struct atab_layout *l)
{
    size_t off;

    if (max_allocs == 0 || max_allocs > ATAB_MAX_SLOTS ||
        max_chans == 0 || max_chans > ATAB_MAX_SLOTS ||
        nworkers == 0 || nworkers > ATAB_MAX_WORKERS)
        return RLY_ERR_INVAL;
    l->abuckets = pow2_at_least(max_allocs);
    l->cbuckets = pow2_at_least(max_chans);
    off = round_up(sizeof(struct atab_hdr));
    l->off_workers = off;
    off = round_up(off + nworkers * sizeof(struct atab_worker));
    l->off_allocs = off;
    off = round_up(off + (size_t)max_allocs * sizeof(struct atab_alloc));
    l->off_chans = off;
    off = round_up(off + (size_t)max_chans * sizeof(struct atab_chan));
    l->off_client = off;
    off = round_up(off + (size_t)l->abuckets * sizeof(uint32_t));
    l->off_user = off;
    off = round_up(off + (size_t)l->abuckets * sizeof(uint32_t));
    l->off_num = off;
    off = round_up(off + (size_t)l->cbuckets * sizeof(uint32_t));
    l->off_peer = off;
    off = round_up(off + (size_t)l->cbuckets * sizeof(uint32_t));
    l->off_ports = off;
    l->size = round_up(off + ATAB_NPORTS * sizeof(uint32_t));
    return 0;
}

size_t
atab_region_size(uint32_t max_allocs, uint32_t max_chans, uint32_t nworkers)
{
    struct atab_layout l;

    if (layout_compute(max_allocs, max_chans, nworkers, &l) != 0)
        return 0;
    return l.size;
}

/* --- Hashing: keys are laid out as canonical bytes, then SipHash'ed --- */

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* prefix, family, port, then only the IP bytes the family uses (the rest
 * of struct addr need not be zero).  buf holds 23 bytes. */
static size_t
key_addr(uint8_t *buf, uint32_t prefix, const struct addr *a)
{
    size_t iplen = a->family == ADDR_V4 ? 4 : 16;

    put32(buf, prefix);
    buf[4] = a->family;
    buf[5] = (uint8_t)(a->port >> 8);
    buf[6] = (uint8_t)a->port;
    memcpy(buf + 7, a->ip, iplen);
    return 7 + iplen;
}

static uint32_t *
client_bucket(const struct atab *tab, const struct addr *client)
{
    uint8_t buf[24];
    size_t  n = key_addr(buf, 0, client);

    return &tab->client_b[siphash24(&tab->key, buf, n) & tab->amask];
}

static uint32_t *
user_bucket(const struct atab *tab, const uint8_t *uhash, uint16_t ulen)
{
    uint8_t buf[ATAB_UHASH_LEN + 2];

    memcpy(buf, uhash, ATAB_UHASH_LEN);
    buf[ATAB_UHASH_LEN] = (uint8_t)(ulen >> 8);
    buf[ATAB_UHASH_LEN + 1] = (uint8_t)ulen;
    return &tab->user_b[siphash24(&tab->key, buf, sizeof(buf)) & tab->amask];
}

static uint32_t *
num_bucket(const struct atab *tab, uint32_t alloc, uint16_t number)
{
    uint8_t buf[6];

    put32(buf, alloc);
    buf[4] = (uint8_t)(number >> 8);
    buf[5] = (uint8_t)number;
    return &tab->num_b[siphash24(&tab->key, buf, sizeof(buf)) & tab->cmask];
}

static uint32_t *
peer_bucket(const struct atab *tab, uint32_t alloc, const struct addr *peer)
{
    uint8_t buf[24];
    size_t  n = key_addr(buf, alloc, peer);

    return &tab->peer_b[siphash24(&tab->key, buf, n) & tab->cmask];
}

/* --- Chains --- */

/* The link field at offset off of record i in an array of stride-byte
 * records.  Lets one unlink routine serve the four index chains. */
static uint32_t *
link_of(void *base, size_t stride, size_t off, uint32_t i)
{
    return (uint32_t *)((char *)base + (size_t)i * stride + off);
}

static void
chain_remove(uint32_t *head, void *base, size_t stride, size_t off,
    uint32_t idx)
{
    uint32_t *p;

    for (p = head; *p != ATAB_NONE; p = link_of(base, stride, off, *p)) {
        if (*p == idx) {
            *p = *link_of(base, stride, off, idx);
            *link_of(base, stride, off, idx) = ATAB_NONE;
            return;
        }
    }
}

#define ALLOC_LINK(tab, f) \
    (tab)->allocs, sizeof(struct atab_alloc), offsetof(struct atab_alloc, f)
#define CHAN_LINK(tab, f) \
    (tab)->chans, sizeof(struct atab_chan), offsetof(struct atab_chan, f)

static void
index_alloc(struct atab *tab, uint32_t idx)
{
    struct atab_alloc *a = &tab->allocs[idx];
    uint32_t          *h;

    h = client_bucket(tab, &a->client);
    a->next_client = *h;
    *h = idx;
    h = user_bucket(tab, a->uhash, a->ulen);
    a->next_user = *h;
    *h = idx;
}

static void
unindex_alloc(struct atab *tab, uint32_t idx)
{
    struct atab_alloc *a = &tab->allocs[idx];

    chain_remove(client_bucket(tab, &a->client), ALLOC_LINK(tab, next_client),
        idx);
    chain_remove(user_bucket(tab, a->uhash, a->ulen),
        ALLOC_LINK(tab, next_user), idx);
}

/* Links channel ci into its allocation's list and both channel indexes. */
static void
index_chan(struct atab *tab, uint32_t ci)
{
    struct atab_chan  *c = &tab->chans[ci];
    struct atab_alloc *a = &tab->allocs[c->alloc];
    uint32_t          *h;

    c->prev_alloc = ATAB_NONE;
    c->next_alloc = a->chan_head;
    if (a->chan_head != ATAB_NONE)
        tab->chans[a->chan_head].prev_alloc = ci;
    a->chan_head = ci;
    a->nchans++;
    h = num_bucket(tab, c->alloc, c->number);
    c->next_num = *h;
    *h = ci;
    h = peer_bucket(tab, c->alloc, &c->peer);
    c->next_peer = *h;
    *h = ci;
}

static void
unindex_chan(struct atab *tab, uint32_t ci)
{
    struct atab_chan  *c = &tab->chans[ci];
    struct atab_alloc *a = &tab->allocs[c->alloc];

    if (c->prev_alloc != ATAB_NONE)
        tab->chans[c->prev_alloc].next_alloc = c->next_alloc;
    else
        a->chan_head = c->next_alloc;
    if (c->next_alloc != ATAB_NONE)
        tab->chans[c->next_alloc].prev_alloc = c->prev_alloc;
    c->next_alloc = c->prev_alloc = ATAB_NONE;
    a->nchans--;
    chain_remove(num_bucket(tab, c->alloc, c->number),
        CHAN_LINK(tab, next_num), ci);
    chain_remove(peer_bucket(tab, c->alloc, &c->peer),
        CHAN_LINK(tab, next_peer), ci);
}

/* --- Slots --- */

static void
run_hook(const struct atab *tab, int point)
{
    if (tab->hook != NULL)
        tab->hook(tab->hook_ud, point);
}

/* Clears every field after gen, state and commit; links to ATAB_NONE. */
static void
alloc_clear(struct atab_alloc *a)
{
    size_t off = offsetof(struct atab_alloc, families);

    memset((char *)a + off, 0, sizeof(*a) - off);
    a->chan_head = a->next_client = a->next_user = a->next_free = ATAB_NONE;
}

static void
chan_clear(struct atab_chan *c)
{
    size_t off = offsetof(struct atab_chan, number);

    memset((char *)c + off, 0, sizeof(*c) - off);
    c->next_alloc = c->prev_alloc = c->next_num = ATAB_NONE;
    c->next_peer = c->next_free = ATAB_NONE;
}

/* Clears an unlinked, uncommitted slot and marks it FREE, state last.  gen
 * moves on if the slot was in use, so that old refs go stale. */
static void
alloc_retire(struct atab_alloc *a)
{
    uint32_t st = atab_alloc_state(a);

    __atomic_store_n(&a->commit, 0, __ATOMIC_RELEASE);
    alloc_clear(a);
    if (st != ATAB_A_FREE)
        __atomic_store_n(&a->gen, a->gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&a->state, ATAB_A_FREE, __ATOMIC_RELEASE);
}

static void
chan_retire(struct atab_chan *c)
{
    uint8_t st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);

    __atomic_store_n(&c->commit, 0, __ATOMIC_RELEASE);
    chan_clear(c);
    if (st != ATAB_C_FREE)
        __atomic_store_n(&c->gen, c->gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&c->state, ATAB_C_FREE, __ATOMIC_RELEASE);
}

static void
alloc_free_push(struct atab *tab, uint32_t idx)
{
    tab->allocs[idx].next_free = tab->hdr->alloc_free;
    tab->hdr->alloc_free = idx;
    tab->hdr->nfree_allocs++;
}

static uint32_t
alloc_free_pop(struct atab *tab)
{
    uint32_t idx = tab->hdr->alloc_free;

    if (idx == ATAB_NONE)
        return ATAB_NONE;
    tab->hdr->alloc_free = tab->allocs[idx].next_free;
    tab->allocs[idx].next_free = ATAB_NONE;
    tab->hdr->nfree_allocs--;
    return idx;
}

static void
chan_free_push(struct atab *tab, uint32_t ci)
{
    tab->chans[ci].next_free = tab->hdr->chan_free;
    tab->hdr->chan_free = ci;
    tab->hdr->nfree_chans++;
}

static uint32_t
chan_free_pop(struct atab *tab)
{
    uint32_t ci = tab->hdr->chan_free;

    if (ci == ATAB_NONE)
        return ATAB_NONE;
    tab->hdr->chan_free = tab->chans[ci].next_free;
    tab->chans[ci].next_free = ATAB_NONE;
    tab->hdr->nfree_chans--;
    return ci;
}

/* Frees a committed channel: commit 0, unlink, clear, gen++, FREE. */
static void
chan_free(struct atab *tab, uint32_t ci)
{
    struct atab_chan *c = &tab->chans[ci];

    __atomic_store_n(&c->commit, 0, __ATOMIC_RELEASE);
    unindex_chan(tab, ci);
    chan_retire(c);
    chan_free_push(tab, ci);
}

/* --- Format, attach --- */

static void
set_handle(struct atab *tab, void *base, const struct atab_layout *l)
{
    char            *b = base;
    struct atab_hdr *h = base;

    tab->hdr = h;
    tab->workers = (struct atab_worker *)(b + l->off_workers);
    tab->allocs = (struct atab_alloc *)(b + l->off_allocs);
    tab->chans = (struct atab_chan *)(b + l->off_chans);
    tab->client_b = (uint32_t *)(b + l->off_client);
    tab->user_b = (uint32_t *)(b + l->off_user);
    tab->num_b = (uint32_t *)(b + l->off_num);
    tab->peer_b = (uint32_t *)(b + l->off_peer);
    tab->ports = (uint32_t *)(b + l->off_ports);
    tab->max_allocs = h->max_allocs;
    tab->max_chans = h->max_chans;
    tab->nworkers = h->nworkers;
    tab->amask = l->abuckets - 1;
    tab->cmask = l->cbuckets - 1;
    siphash_key_set(&tab->key, h->hash_key);
}

/* Every index empty, every slot free and on its free list (lowest index
 * first).  Also the start of atab_repair(). */
static void
reset_shared(struct atab *tab)
{
    memset(tab->client_b, 0xff, (tab->amask + 1) * sizeof(uint32_t));
    memset(tab->user_b, 0xff, (tab->amask + 1) * sizeof(uint32_t));
    memset(tab->num_b, 0xff, (tab->cmask + 1) * sizeof(uint32_t));
    memset(tab->peer_b, 0xff, (tab->cmask + 1) * sizeof(uint32_t));
    memset(tab->ports, 0xff, ATAB_NPORTS * sizeof(uint32_t));
    tab->hdr->active = 0;
    tab->hdr->alloc_free = tab->hdr->chan_free = ATAB_NONE;
    tab->hdr->nfree_allocs = tab->hdr->nfree_chans = 0;
}

static int
init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int                 rc = RLY_ERR_CORRUPT;

    if (pthread_mutexattr_init(&attr) != 0)
        return RLY_ERR_CORRUPT;
    if (pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0)
        goto out;
    if (pthread_mutex_init(m, &attr) != 0)
        goto out;
    rc = 0;
out:
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int
atab_format(void *base, size_t size, uint32_t max_allocs,
    uint32_t max_chans, uint32_t nworkers,
    const uint8_t user_key[ATAB_USER_KEY_LEN],
    const uint8_t hash_key[ATAB_HASH_KEY_LEN])
{
    struct atab_layout  l;
    struct atab_hdr    *h = base;
    struct atab         tab;
    int                 rc;

    if (base == NULL || (uintptr_t)base % ATAB_ALIGN != 0)
        return RLY_ERR_INVAL;
    if ((rc = layout_compute(max_allocs, max_chans, nworkers, &l)) != 0)
        return rc;
    if (size < l.size)
        return RLY_ERR_NOSPACE;
    memset(base, 0, l.size);
    h->version = ATAB_VERSION;
    h->hdr_size = sizeof(*h);
    h->size = l.size;
    h->max_allocs = max_allocs;
    h->max_chans = max_chans;
    h->nworkers = nworkers;
    h->abuckets = l.abuckets;
    h->cbuckets = l.cbuckets;
    h->nports = ATAB_NPORTS;
    h->off_workers = l.off_workers;
    h->off_allocs = l.off_allocs;
    h->off_chans = l.off_chans;
    h->off_client = l.off_client;
    h->off_user = l.off_user;
    h->off_num = l.off_num;
    h->off_peer = l.off_peer;
    h->off_ports = l.off_ports;
    memcpy(h->user_key, user_key, ATAB_USER_KEY_LEN);
    memcpy(h->hash_key, hash_key, ATAB_HASH_KEY_LEN);
    if ((rc = init_mutex(&h->lock)) != 0)
        return rc;

    memset(&tab, 0, sizeof(tab));
    set_handle(&tab, base, &l);
    reset_shared(&tab);
    for (uint32_t i = max_allocs; i-- > 0;) {
        alloc_clear(&tab.allocs[i]);
        alloc_free_push(&tab, i);
    }
    for (uint32_t i = max_chans; i-- > 0;) {
        chan_clear(&tab.chans[i]);
        chan_free_push(&tab, i);
    }
    /* Last, so that a half-formatted region does not attach. */
    __atomic_store_n(&h->magic, ATAB_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static int
check_header(const void *base, size_t size, struct atab_layout *l)
{
    const struct atab_hdr *h = base;

    if (base == NULL || (uintptr_t)base % ATAB_ALIGN != 0 ||
        size < sizeof(*h))
        return RLY_ERR_CORRUPT;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != ATAB_MAGIC ||
        h->version != ATAB_VERSION || h->hdr_size != sizeof(*h))
        return RLY_ERR_CORRUPT;
    if (layout_compute(h->max_allocs, h->max_chans, h->nworkers, l) != 0)
        return RLY_ERR_CORRUPT;
    if (h->size != l->size || l->size > size ||
        h->abuckets != l->abuckets || h->cbuckets != l->cbuckets ||
        h->nports != ATAB_NPORTS ||
        h->off_workers != l->off_workers || h->off_allocs != l->off_allocs ||
        h->off_chans != l->off_chans || h->off_client != l->off_client ||
        h->off_user != l->off_user || h->off_num != l->off_num ||
        h->off_peer != l->off_peer || h->off_ports != l->off_ports)
        return RLY_ERR_CORRUPT;
    return 0;
}

int
atab_attach(void *base, size_t size, struct atab **out)
{
    struct atab        *tab;
    struct atab_layout  l;
    int                 rc;

    if ((tab = calloc(1, sizeof(*tab))) == NULL)
        return RLY_ERR_NOMEM;
    if ((rc = check_header(base, size, &l)) != 0)
        goto out;
    set_handle(tab, base, &l);
    *out = tab;
    tab = NULL;
out:
    atab_detach(tab);
    return rc;
}

void
atab_detach(struct atab *tab)
{
    free(tab);
}

void
atab_set_test_hook(struct atab *tab, void (*fn)(void *ud, int point),
    void *ud)
{
    tab->hook = fn;
    tab->hook_ud = ud;
}

/* --- Lock and repair --- */

int
atab_lock(struct atab *tab)
{
    int rc = pthread_mutex_lock(&tab->hdr->lock);

    if (rc == 0)
        return 0;
    if (rc != EOWNERDEAD)
        return RLY_ERR_CORRUPT;     /* ENOTRECOVERABLE, or worse */
    /* The holder died mid-change; we hold the lock now. */
    atab_repair(tab);
    if (pthread_mutex_consistent(&tab->hdr->lock) != 0) {
        pthread_mutex_unlock(&tab->hdr->lock);
        return RLY_ERR_CORRUPT;
    }
    return 0;
}

void
atab_unlock(struct atab *tab)
{
    pthread_mutex_unlock(&tab->hdr->lock);
}

/* Keeps a committed allocation (indexes it) or discards it. */
static void
repair_alloc(struct atab *tab, uint32_t idx)
{
    struct atab_alloc *a = &tab->allocs[idx];
    uint32_t           st = atab_alloc_state(a);

    if (!__atomic_load_n(&a->commit, __ATOMIC_ACQUIRE) ||
        st == ATAB_A_FREE || st > ATAB_A_DELETED || a->port == 0 ||
        a->owner >= tab->nworkers || tab->ports[a->port] != ATAB_NONE) {
        alloc_retire(a);
        alloc_free_push(tab, idx);
        return;
    }
    a->chan_head = a->next_client = a->next_user = a->next_free = ATAB_NONE;
    a->nchans = 0;
    tab->ports[a->port] = idx;
    if (st == ATAB_A_OPENING || st == ATAB_A_LIVE) {
        index_alloc(tab, idx);
        tab->hdr->active++;
    }
}

/* Keeps a committed channel of a kept allocation, or discards it.  Runs
 * after every allocation is repaired. */
static void
repair_chan(struct atab *tab, uint32_t ci)
{
    struct atab_chan        *c = &tab->chans[ci];
    const struct atab_alloc *a = NULL;
    uint8_t                  st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    int                      keep;

    if (c->alloc < tab->max_allocs)
        a = &tab->allocs[c->alloc];
    keep = __atomic_load_n(&c->commit, __ATOMIC_ACQUIRE) &&
        (st == ATAB_C_BOUND || st == ATAB_C_COOLING) && a != NULL &&
        a->commit && atab_alloc_state(a) != ATAB_A_FREE &&
        a->gen == c->alloc_gen &&
        atab_chan_find_num(tab, c->alloc, c->number) == ATAB_NONE &&
        atab_chan_find_peer(tab, c->alloc, &c->peer) == ATAB_NONE;
    if (!keep) {
        chan_retire(c);
        chan_free_push(tab, ci);
        return;
    }
    c->next_free = ATAB_NONE;
    index_chan(tab, ci);
}

void
atab_repair(struct atab *tab)
{
    reset_shared(tab);
    /* Downwards, so that the free lists hand out low indexes first. */
    for (uint32_t i = tab->max_allocs; i-- > 0;)
        repair_alloc(tab, i);
    for (uint32_t i = tab->max_chans; i-- > 0;)
        repair_chan(tab, i);
    __atomic_store_n(&tab->hdr->repairs, tab->hdr->repairs + 1,
        __ATOMIC_RELAXED);
}

uint64_t
atab_repairs(const struct atab *tab)
{
    return __atomic_load_n(&tab->hdr->repairs, __ATOMIC_RELAXED);
}

/* --- Sizes, slots --- */

uint32_t
atab_max_allocs(const struct atab *tab)
{
    return tab->max_allocs;
}

uint32_t
atab_max_chans(const struct atab *tab)
{
    return tab->max_chans;
}

uint32_t
atab_nworkers(const struct atab *tab)
{
    return tab->nworkers;
}

const uint8_t *
atab_user_key(const struct atab *tab)
{
    return tab->hdr->user_key;
}

uint32_t
atab_free_allocs(const struct atab *tab)
{
    return tab->hdr->nfree_allocs;
}

uint32_t
atab_free_chans(const struct atab *tab)
{
    return tab->hdr->nfree_chans;
}

struct atab_alloc *
atab_alloc_at(const struct atab *tab, uint32_t idx)
{
    return idx < tab->max_allocs ? &tab->allocs[idx] : NULL;
}

struct atab_chan *
atab_chan_at(const struct atab *tab, uint32_t idx)
{
    return idx < tab->max_chans ? &tab->chans[idx] : NULL;
}

struct atab_alloc *
atab_alloc_get(const struct atab *tab, struct atab_ref ref)
{
    struct atab_alloc *a;

    if (ref.idx >= tab->max_allocs)
        return NULL;
    a = &tab->allocs[ref.idx];
    if (atab_alloc_state(a) == ATAB_A_FREE ||
        __atomic_load_n(&a->gen, __ATOMIC_ACQUIRE) != ref.gen)
        return NULL;
    return a;
}

uint32_t
atab_alloc_state(const struct atab_alloc *a)
{
    return __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
}

/* The owner may call this without the lock while another process deletes
 * the allocation under it: the compare-and-swap lets DELETED win. */
void
atab_alloc_set_state(struct atab_alloc *a, uint32_t state)
{
    uint32_t cur = atab_alloc_state(a);

    if (state != ATAB_A_OPENING && state != ATAB_A_LIVE)
        return;
    while (cur == ATAB_A_OPENING || cur == ATAB_A_LIVE) {
        if (__atomic_compare_exchange_n(&a->state, &cur, state, 0,
                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return;
    }
}

/* --- Lookups --- */

/* Lookups walk at most max links and stop at any index out of range, so a
 * walk that races a change (a caller without the lock) ends, in the table;
 * links are read atomically for the same reason. */
static uint32_t
next_link(const uint32_t *link)
{
    return __atomic_load_n(link, __ATOMIC_RELAXED);
}

uint32_t
atab_find_client(const struct atab *tab, const struct addr *client)
{
    uint32_t i = next_link(client_bucket(tab, client));

    for (uint32_t n = 0; i < tab->max_allocs && n < tab->max_allocs; n++) {
        if (addr_eq(&tab->allocs[i].client, client))
            return i;
        i = next_link(&tab->allocs[i].next_client);
    }
    return ATAB_NONE;
}

uint32_t
atab_find_user(const struct atab *tab, const uint8_t *uhash, uint16_t ulen)
{
    uint32_t i = next_link(user_bucket(tab, uhash, ulen));

    for (uint32_t n = 0; i < tab->max_allocs && n < tab->max_allocs; n++) {
        if (tab->allocs[i].ulen == ulen &&
            memcmp(tab->allocs[i].uhash, uhash, ATAB_UHASH_LEN) == 0)
            return i;
        i = next_link(&tab->allocs[i].next_user);
    }
    return ATAB_NONE;
}

uint32_t
atab_port_holder(const struct atab *tab, uint16_t port)
{
    return next_link(&tab->ports[port]);
}

uint32_t
atab_chan_find_num(const struct atab *tab, uint32_t alloc, uint16_t number)
{
    uint32_t i = next_link(num_bucket(tab, alloc, number));

    for (uint32_t n = 0; i < tab->max_chans && n < tab->max_chans; n++) {
        if (tab->chans[i].alloc == alloc && tab->chans[i].number == number)
            return i;
        i = next_link(&tab->chans[i].next_num);
    }
    return ATAB_NONE;
}

uint32_t
atab_chan_find_peer(const struct atab *tab, uint32_t alloc,
    const struct addr *peer)
{
    uint32_t i = next_link(peer_bucket(tab, alloc, peer));

    for (uint32_t n = 0; i < tab->max_chans && n < tab->max_chans; n++) {
        if (tab->chans[i].alloc == alloc && addr_eq(&tab->chans[i].peer, peer))
            return i;
        i = next_link(&tab->chans[i].next_peer);
    }
    return ATAB_NONE;
}

void
atab_count(const struct atab *tab, uint32_t *active, uint32_t *live,
    uint32_t *bound_chans)
{
    uint32_t nactive = 0, nlive = 0, nbound = 0;

    for (uint32_t i = 0; i < tab->max_allocs; i++) {
        uint32_t st = atab_alloc_state(&tab->allocs[i]);

        nactive += st == ATAB_A_OPENING || st == ATAB_A_LIVE;
        nlive += st == ATAB_A_LIVE;
    }
    for (uint32_t i = 0; i < tab->max_chans; i++) {
        const struct atab_chan *c = &tab->chans[i];

        if (__atomic_load_n(&c->state, __ATOMIC_RELAXED) == ATAB_C_BOUND &&
            c->alloc < tab->max_allocs &&
            atab_alloc_state(&tab->allocs[c->alloc]) == ATAB_A_LIVE)
            nbound++;
    }
    if (active != NULL)
        *active = nactive;
    if (live != NULL)
        *live = nlive;
    if (bound_chans != NULL)
        *bound_chans = nbound;
}

uint32_t
atab_active(const struct atab *tab)
{
    return tab->hdr->active;
}

/* --- Changes --- */

int
atab_alloc_create(struct atab *tab, const struct atab_alloc *init,
    struct atab_ref *out)
{
    struct atab_alloc *a;
    uint32_t           idx;

    if (init->port == 0 || init->owner >= tab->nworkers ||
        (init->state != ATAB_A_OPENING && init->state != ATAB_A_LIVE))
        return RLY_ERR_INVAL;
    if (tab->ports[init->port] != ATAB_NONE ||
        atab_find_client(tab, &init->client) != ATAB_NONE)
        return RLY_ERR_EXISTS;
    if ((idx = alloc_free_pop(tab)) == ATAB_NONE)
        return RLY_ERR_FULL;
    a = &tab->allocs[idx];
    a->families = init->families;
    a->port = init->port;
    a->owner = init->owner;
    a->ulen = init->ulen;
    a->client = init->client;
    a->local = init->local;
    memcpy(a->uhash, init->uhash, sizeof(a->uhash));
    memcpy(a->txid, init->txid, sizeof(a->txid));
    a->lifetime = init->lifetime;
    a->expiry = init->expiry;
    a->nchans = 0;
    a->chan_head = ATAB_NONE;
    __atomic_store_n(&a->state, init->state, __ATOMIC_RELEASE);
    run_hook(tab, ATAB_HOOK_ALLOC_WRITTEN);
    index_alloc(tab, idx);
    tab->ports[a->port] = idx;
    tab->hdr->active++;
    run_hook(tab, ATAB_HOOK_ALLOC_INDEXED);
    __atomic_store_n(&a->commit, 1, __ATOMIC_RELEASE);
    if (out != NULL) {
        out->idx = idx;
        out->gen = a->gen;
    }
    return 0;
}

int
atab_alloc_move_port(struct atab *tab, uint32_t idx, uint16_t newport)
{
    struct atab_alloc *a;

    if (idx >= tab->max_allocs || newport == 0)
        return RLY_ERR_INVAL;
    a = &tab->allocs[idx];
    if (atab_alloc_state(a) != ATAB_A_OPENING)
        return RLY_ERR_INVAL;
    if (a->port == newport)
        return 0;
    if (tab->ports[newport] != ATAB_NONE)
        return RLY_ERR_EXISTS;
    /* A crash in between is fine: repair rebuilds ports from a->port. */
    tab->ports[a->port] = ATAB_NONE;
    a->port = newport;
    tab->ports[newport] = idx;
    return 0;
}

void
atab_alloc_delete(struct atab *tab, uint32_t idx)
{
    struct atab_alloc *a;
    uint32_t           st;

    if (idx >= tab->max_allocs)
        return;
    a = &tab->allocs[idx];
    st = atab_alloc_state(a);
    if (st != ATAB_A_OPENING && st != ATAB_A_LIVE)
        return;
    unindex_alloc(tab, idx);
    __atomic_store_n(&a->state, ATAB_A_DELETED, __ATOMIC_RELEASE);
    tab->hdr->active--;
    if (a->owner < tab->nworkers)
        __atomic_add_fetch(&tab->workers[a->owner].kicks, 1, __ATOMIC_RELEASE);
}

void
atab_alloc_release(struct atab *tab, uint32_t idx)
{
    struct atab_alloc *a;
    uint32_t           st;

    if (idx >= tab->max_allocs)
        return;
    a = &tab->allocs[idx];
    st = atab_alloc_state(a);
    if (st == ATAB_A_FREE)
        return;
    /* Uncommitted first: a crash from here on leaves the slot and its
     * channels for repair to discard, never half of them. */
    __atomic_store_n(&a->commit, 0, __ATOMIC_RELEASE);
    if (st == ATAB_A_OPENING || st == ATAB_A_LIVE) {
        unindex_alloc(tab, idx);
        tab->hdr->active--;
    }
    while (a->chan_head != ATAB_NONE)
        chan_free(tab, a->chan_head);
    if (tab->ports[a->port] == idx)
        tab->ports[a->port] = ATAB_NONE;
    alloc_retire(a);
    alloc_free_push(tab, idx);
}

int
atab_chan_create(struct atab *tab, uint32_t alloc, uint16_t number,
    const struct addr *peer, uint64_t expiry, uint32_t *out)
{
    struct atab_alloc *a;
    struct atab_chan  *c;
    uint32_t           st, ci;

    if (alloc >= tab->max_allocs)
        return RLY_ERR_INVAL;
    a = &tab->allocs[alloc];
    st = atab_alloc_state(a);
    if (!a->commit || (st != ATAB_A_OPENING && st != ATAB_A_LIVE))
        return RLY_ERR_STALE;
    if (atab_chan_find_num(tab, alloc, number) != ATAB_NONE ||
        atab_chan_find_peer(tab, alloc, peer) != ATAB_NONE)
        return RLY_ERR_EXISTS;
    if ((ci = chan_free_pop(tab)) == ATAB_NONE)
        return RLY_ERR_FULL;
    c = &tab->chans[ci];
    c->number = number;
    c->alloc = alloc;
    c->alloc_gen = a->gen;
    c->peer = *peer;
    c->expiry = expiry;
    __atomic_store_n(&c->state, ATAB_C_BOUND, __ATOMIC_RELEASE);
    run_hook(tab, ATAB_HOOK_CHAN_WRITTEN);
    index_chan(tab, ci);
    run_hook(tab, ATAB_HOOK_CHAN_INDEXED);
    __atomic_store_n(&c->commit, 1, __ATOMIC_RELEASE);
    if (out != NULL)
        *out = ci;
    return 0;
}

void
atab_chan_release(struct atab *tab, uint32_t idx)
{
    if (idx >= tab->max_chans ||
        __atomic_load_n(&tab->chans[idx].state, __ATOMIC_ACQUIRE) ==
        ATAB_C_FREE)
        return;
    chan_free(tab, idx);
}

/* --- Flags, reload block, workers --- */

int
atab_ready(const struct atab *tab)
{
    return __atomic_load_n(&tab->hdr->ready, __ATOMIC_ACQUIRE) != 0;
}

void
atab_set_ready(struct atab *tab)
{
    __atomic_store_n(&tab->hdr->ready, 1, __ATOMIC_RELEASE);
}

void
atab_reload_publish(struct atab *tab, const struct atab_reload *r)
{
    struct atab_hdr *h = tab->hdr;
    uint32_t         gen = __atomic_load_n(&h->reload_gen, __ATOMIC_RELAXED);

    /* The buffer written now was current two publishes ago; the fence
     * keeps the previous generation store ahead of these writes, so a
     * reader still copying it sees the generation move and retries. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    memcpy(&h->reload[(gen + 1) & 1], r, sizeof(*r));
    __atomic_store_n(&h->reload_gen, gen + 1, __ATOMIC_RELEASE);
}

uint32_t
atab_reload_gen(const struct atab *tab)
{
    return __atomic_load_n(&tab->hdr->reload_gen, __ATOMIC_ACQUIRE);
}

uint32_t
atab_reload_read(const struct atab *tab, struct atab_reload *out)
{
    const struct atab_hdr *h = tab->hdr;
    uint32_t               gen;

    for (;;) {
        gen = __atomic_load_n(&h->reload_gen, __ATOMIC_ACQUIRE);
        memcpy(out, &h->reload[gen & 1], sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&h->reload_gen, __ATOMIC_RELAXED) == gen)
            return gen;
    }
}

struct turn_stats *
atab_worker_stats(const struct atab *tab, uint32_t slot)
{
    return slot < tab->nworkers ? &tab->workers[slot].stats : NULL;
}

uint64_t
atab_worker_kicks(const struct atab *tab, uint32_t slot)
{
    if (slot >= tab->nworkers)
        return 0;
    return __atomic_load_n(&tab->workers[slot].kicks, __ATOMIC_ACQUIRE);
}

/* --- Consistency check --- */

static uint32_t
link_get(const void *base, size_t stride, size_t off, uint32_t i)
{
    uint32_t v;

    memcpy(&v, (const char *)base + (size_t)i * stride + off, sizeof(v));
    return v;
}

/* Walks the chain starting at head (links at offset off); every member
 * must be below max and pass ok(); no more than max members (a cycle).
 * Returns the member count, or -1. */
static long
walk_chain(const struct atab *tab, uint32_t head, const void *base,
    size_t stride, size_t off, uint32_t max,
    int (*ok)(const struct atab *tab, uint32_t i, const uint32_t *bucket),
    const uint32_t *bucket)
{
    long     n = 0;
    uint32_t i;

    for (i = head; i != ATAB_NONE;
        i = link_get(base, stride, off, i)) {
        if (i >= max || n >= (long)max || !ok(tab, i, bucket))
            return -1;
        n++;
    }
    return n;
}

static int
alloc_indexed(const struct atab_alloc *a)
{
    uint32_t st = atab_alloc_state(a);

    return a->commit && (st == ATAB_A_OPENING || st == ATAB_A_LIVE);
}

static int
ok_client(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_alloc *a = &tab->allocs[i];

    return alloc_indexed(a) && client_bucket(tab, &a->client) == bucket;
}

static int
ok_user(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_alloc *a = &tab->allocs[i];

    return alloc_indexed(a) && user_bucket(tab, a->uhash, a->ulen) == bucket;
}

static int
ok_num(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_chan *c = &tab->chans[i];

    return c->commit && c->state != ATAB_C_FREE &&
        num_bucket(tab, c->alloc, c->number) == bucket;
}

static int
ok_peer(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_chan *c = &tab->chans[i];

    return c->commit && c->state != ATAB_C_FREE &&
        peer_bucket(tab, c->alloc, &c->peer) == bucket;
}

static int
ok_free_alloc(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_alloc *a = &tab->allocs[i];

    return !a->commit && atab_alloc_state(a) == ATAB_A_FREE;
}

static int
ok_free_chan(const struct atab *tab, uint32_t i, const uint32_t *bucket)
{
    const struct atab_chan *c = &tab->chans[i];

    return !c->commit && c->state == ATAB_C_FREE;
}

/* Sums the chain lengths of a bucket array; -1 on a bad chain. */
static long
walk_buckets(const struct atab *tab, const uint32_t *buckets, uint32_t n,
    const void *base, size_t stride, size_t off, uint32_t max,
    int (*ok)(const struct atab *, uint32_t, const uint32_t *))
{
    long total = 0, len;

    for (uint32_t b = 0; b < n; b++) {
        len = walk_chain(tab, buckets[b], base, stride, off, max, ok,
            &buckets[b]);
        if (len < 0)
            return -1;
        total += len;
    }
    return total;
}

/* Whether idx is on the chain that starts at head. */
static int
chain_has(const struct atab *tab, uint32_t head, const void *base,
    size_t stride, size_t off, uint32_t max, uint32_t idx)
{
    uint32_t n = 0;

    for (uint32_t i = head; i != ATAB_NONE && i < max && n++ <= max;
        i = link_get(base, stride, off, i)) {
        if (i == idx)
            return 1;
    }
    return 0;
}

/* An allocation's channel list: members belong to it, prev links mirror
 * next links, the length is nchans. */
static int
check_chan_list(const struct atab *tab, uint32_t idx)
{
    const struct atab_alloc *a = &tab->allocs[idx];
    uint32_t                 prev = ATAB_NONE, n = 0;

    for (uint32_t ci = a->chan_head; ci != ATAB_NONE;
        ci = tab->chans[ci].next_alloc) {
        const struct atab_chan *c;

        if (ci >= tab->max_chans || n++ >= tab->max_chans)
            return -1;
        c = &tab->chans[ci];
        if (c->alloc != idx || c->alloc_gen != a->gen ||
            c->prev_alloc != prev || !c->commit)
            return -1;
        prev = ci;
    }
    return n == a->nchans ? 0 : -1;
}

/* Every slot whole; indexed ones findable; counts right.  *used gets the
 * allocations holding a slot, *nchans the sum of their channel counts. */
static int
check_alloc_slots(const struct atab *tab, uint32_t *used, uint32_t *nchans)
{
    uint32_t nused = 0, nactive = 0, sum = 0;

    for (uint32_t i = 0; i < tab->max_allocs; i++) {
        const struct atab_alloc *a = &tab->allocs[i];
        uint32_t                 st = atab_alloc_state(a);

        if (st == ATAB_A_FREE) {
            if (a->commit)
                return -1;
            continue;
        }
        if (!a->commit || st > ATAB_A_DELETED || a->port == 0 ||
            tab->ports[a->port] != i || a->owner >= tab->nworkers ||
            check_chan_list(tab, i) != 0)
            return -1;
        nused++;
        sum += a->nchans;
        if (st == ATAB_A_DELETED)
            continue;
        nactive++;
        if (atab_find_client(tab, &a->client) != i ||
            !chain_has(tab, *user_bucket(tab, a->uhash, a->ulen),
                ALLOC_LINK(tab, next_user), tab->max_allocs, i))
            return -1;
    }
    if (nactive != tab->hdr->active ||
        tab->max_allocs - nused != tab->hdr->nfree_allocs)
        return -1;
    *used = nused;
    *nchans = sum;
    return 0;
}

static int
check_chan_slots(const struct atab *tab, uint32_t *used)
{
    uint32_t nused = 0;

    for (uint32_t i = 0; i < tab->max_chans; i++) {
        const struct atab_chan  *c = &tab->chans[i];
        const struct atab_alloc *a;

        if (c->state == ATAB_C_FREE) {
            if (c->commit)
                return -1;
            continue;
        }
        if (!c->commit || c->state > ATAB_C_COOLING ||
            c->alloc >= tab->max_allocs)
            return -1;
        a = &tab->allocs[c->alloc];
        if (!a->commit || atab_alloc_state(a) == ATAB_A_FREE ||
            a->gen != c->alloc_gen ||
            atab_chan_find_num(tab, c->alloc, c->number) != i ||
            atab_chan_find_peer(tab, c->alloc, &c->peer) != i)
            return -1;
        nused++;
    }
    if (tab->max_chans - nused != tab->hdr->nfree_chans)
        return -1;
    *used = nused;
    return 0;
}

static int
check_ports(const struct atab *tab, uint32_t used)
{
    uint32_t held = 0;

    for (uint32_t p = 0; p < ATAB_NPORTS; p++) {
        uint32_t i = tab->ports[p];

        if (i == ATAB_NONE)
            continue;
        if (i >= tab->max_allocs || tab->allocs[i].port != p ||
            atab_alloc_state(&tab->allocs[i]) == ATAB_A_FREE)
            return -1;
        held++;
    }
    return held == used ? 0 : -1;
}

int
atab_check(const struct atab *tab)
{
    const struct atab_hdr *h = tab->hdr;
    uint32_t               aused, cused, csum;
    uint32_t               nb_a = tab->amask + 1, nb_c = tab->cmask + 1;
    long                   nclient, nuser, nnum, npeer, nfa, nfc;

    /* Chains first, with bounded walks: the slot checks below use the
     * lookups, which trust every chain to end. */
    nclient = walk_buckets(tab, tab->client_b, nb_a,
        ALLOC_LINK(tab, next_client), tab->max_allocs, ok_client);
    nuser = walk_buckets(tab, tab->user_b, nb_a, ALLOC_LINK(tab, next_user),
        tab->max_allocs, ok_user);
    nnum = walk_buckets(tab, tab->num_b, nb_c, CHAN_LINK(tab, next_num),
        tab->max_chans, ok_num);
    npeer = walk_buckets(tab, tab->peer_b, nb_c, CHAN_LINK(tab, next_peer),
        tab->max_chans, ok_peer);
    nfa = walk_chain(tab, h->alloc_free, ALLOC_LINK(tab, next_free),
        tab->max_allocs, ok_free_alloc, NULL);
    nfc = walk_chain(tab, h->chan_free, CHAN_LINK(tab, next_free),
        tab->max_chans, ok_free_chan, NULL);
    if (nclient < 0 || nuser < 0 || nnum < 0 || npeer < 0 || nfa < 0 ||
        nfc < 0)
        return RLY_ERR_CORRUPT;
    if (check_alloc_slots(tab, &aused, &csum) != 0 ||
        check_chan_slots(tab, &cused) != 0 || csum != cused ||
        check_ports(tab, aused) != 0)
        return RLY_ERR_CORRUPT;
    if (nclient != (long)h->active || nuser != (long)h->active ||
        nnum != (long)cused || npeer != (long)cused ||
        nfa != (long)h->nfree_allocs || nfc != (long)h->nfree_chans)
        return RLY_ERR_CORRUPT;
    return 0;
}
