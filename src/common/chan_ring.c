/* chan_ring.c - the channel-event ring between a worker and the master;
 * see chan_ring.h.  C11-style atomics through the GCC builtins, as the
 * rest of the shared table uses them. */
#include <string.h>

#include "chan_ring.h"
#include "rly_err.h"

#define CHAN_RING_MAGIC 0x52494e47u     /* "RING" */

size_t
chan_ring_bytes(uint32_t cap)
{
    size_t n;

    if (cap < CHAN_RING_MIN_CAP || cap > CHAN_RING_MAX_CAP ||
        (cap & (cap - 1)) != 0)
        return 0;
    n = sizeof(struct chan_ring) + (size_t)cap * sizeof(struct chan_ring_rec);
    return (n + 63) & ~(size_t)63;
}

int
chan_ring_init(void *mem, size_t size, uint32_t cap)
{
    size_t            need = chan_ring_bytes(cap);
    struct chan_ring *r = mem;

    if (need == 0 || mem == NULL || ((uintptr_t)mem & 63) != 0 ||
        size < need)
        return RLY_ERR_INVAL;
    /* The header only: a record is read only after it was written, and
     * pages of a fresh mapping that nobody touches cost nothing. */
    memset(mem, 0, sizeof(*r));
    r->cap = cap;
    r->magic = CHAN_RING_MAGIC;
    return 0;
}

struct chan_ring *
chan_ring_at(void *base, uint32_t cap, uint32_t i)
{
    return (struct chan_ring *)((uint8_t *)base +
        (size_t)i * chan_ring_bytes(cap));
}

int
chan_ring_from_cmd(const struct turn_cmd *c, struct chan_ring_rec *out)
{
    uint8_t kind;

    switch (c->kind) {
    case TURN_CMD_CHAN_BOUND:
        kind = CHAN_RING_BOUND;
        break;
    case TURN_CMD_CHAN_UNBOUND:
        kind = CHAN_RING_UNBOUND;
        break;
    case TURN_CMD_RELAY_CLOSE:
        kind = CHAN_RING_CLOSE;
        break;
    default:
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->port = c->port;
    out->ref = c->ref;
    if (kind == CHAN_RING_CLOSE)
        return 1;
    out->number = c->number;
    out->client = c->path.remote;
    out->local = c->path.local;
    out->peer = c->peer;
    return 1;
}

int
chan_ring_push(struct chan_ring *r, const struct chan_ring_rec *rec)
{
    /* Only this process stores head, so a relaxed load of it is exact;
     * the acquire on tail orders our slot write after the consumer's
     * copy out of it. */
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);

    if (head - tail >= r->cap) {
        __atomic_store_n(&r->lost,
            __atomic_load_n(&r->lost, __ATOMIC_RELAXED) + 1,
            __ATOMIC_RELEASE);
        return RLY_ERR_FULL;
    }
    r->rec[head & (r->cap - 1)] = *rec;
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
    return 0;
}

size_t
chan_ring_pop(struct chan_ring *r, struct chan_ring_rec *out, size_t max)
{
    uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    size_t   n = 0;

    /* A head that ran more than cap ahead is not ours to trust (a torn
     * region): take what one lap holds. */
    if (head - tail > r->cap)
        tail = head - r->cap;
    while (n < max && tail + n != head) {
        out[n] = r->rec[(tail + n) & (r->cap - 1)];
        n++;
    }
    __atomic_store_n(&r->tail, tail + n, __ATOMIC_RELEASE);
    return n;
}

uint64_t
chan_ring_lost(const struct chan_ring *r)
{
    return __atomic_load_n(&r->lost, __ATOMIC_ACQUIRE);
}

uint64_t
chan_ring_pending(const struct chan_ring *r)
{
    return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) -
        __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}
