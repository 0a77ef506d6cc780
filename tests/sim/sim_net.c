/* sim_net.c - the simulated network: datagrams in flight, ordered by
 * delivery time then by send order, with loss, duplication and delay
 * (hence reordering) drawn from the world's network stream. */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void
sim_net_init(struct sim_net *n)
{
    memset(n, 0, sizeof(*n));
}

void
sim_net_fini(struct sim_net *n)
{
    for (uint32_t i = 0; i < n->n; i++)
        free(n->heap[i]);
    for (uint32_t i = 0; i < n->nspare; i++)
        free(n->spare[i]);
    free(n->heap);
    free(n->spare);
    memset(n, 0, sizeof(*n));
}

static int
before(const struct sim_dgram *a, const struct sim_dgram *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static struct sim_dgram *
take(struct sim_net *n)
{
    if (n->nspare > 0)
        return n->spare[--n->nspare];
    return malloc(sizeof(struct sim_dgram));
}

void
sim_net_put(struct sim_net *n, struct sim_dgram *d)
{
    if (n->nspare == n->spare_cap) {
        uint32_t           cap = n->spare_cap ? n->spare_cap * 2 : 64;
        struct sim_dgram **s = realloc(n->spare, cap * sizeof(*s));

        if (s == NULL) {
            free(d);
            return;
        }
        n->spare = s;
        n->spare_cap = cap;
    }
    n->spare[n->nspare++] = d;
}

static int
push(struct sim_net *n, struct sim_dgram *d)
{
    uint32_t i;

    if (n->n == n->cap) {
        uint32_t           cap = n->cap ? n->cap * 2 : 64;
        struct sim_dgram **h = realloc(n->heap, cap * sizeof(*h));

        if (h == NULL)
            return -1;
        n->heap = h;
        n->cap = cap;
    }
    i = n->n++;
    while (i > 0 && before(d, n->heap[(i - 1) / 2])) {
        n->heap[i] = n->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    n->heap[i] = d;
    return 0;
}

struct sim_dgram *
sim_net_pop(struct sim_net *n)
{
    struct sim_dgram *top, *last;
    uint32_t          i = 0;

    if (n->n == 0)
        return NULL;
    top = n->heap[0];
    last = n->heap[--n->n];
    for (;;) {
        uint32_t c = 2 * i + 1;

        if (c >= n->n)
            break;
        if (c + 1 < n->n && before(n->heap[c + 1], n->heap[c]))
            c++;
        if (!before(n->heap[c], last))
            break;
        n->heap[i] = n->heap[c];
        i = c;
    }
    if (n->n > 0)
        n->heap[i] = last;
    return top;
}

uint64_t
sim_net_next(const struct sim_net *n)
{
    return n->n == 0 ? UINT64_MAX : n->heap[0]->at;
}

static void
queue_copy(struct sim_world *w, const struct addr *src,
    const struct addr *dst, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen)
{
    struct sim_net   *n = &w->net;
    struct sim_dgram *d;

    if (alen + blen > SIM_DGRAM_MAX) {
        sim_fail(w, "net-oversize", "datagram of %zu bytes",
            alen + blen);
        return;
    }
    if ((d = take(n)) == NULL) {
        sim_fail(w, "oom", "out of memory");
        return;
    }
    d->at = w->now + sim_rng_range(&w->rng_net, n->dmin, n->dmax);
    d->seq = n->seq++;
    d->src = *src;
    d->dst = *dst;
    d->len = (uint32_t)(alen + blen);
    if (alen > 0)
        memcpy(d->data, a, alen);
    if (blen > 0)
        memcpy(d->data + alen, b, blen);
    if (push(n, d) != 0) {
        free(d);
        sim_fail(w, "oom", "out of memory");
    }
}

void
sim_net_send(struct sim_world *w, const struct addr *src,
    const struct addr *dst, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen)
{
    struct sim_net *n = &w->net;

    n->sent++;
    if (n->loss_pm > 0 && sim_rng_pm(&w->rng_net, n->loss_pm)) {
        n->lost++;
        return;
    }
    queue_copy(w, src, dst, a, alen, b, blen);
    if (n->dup_pm > 0 && sim_rng_pm(&w->rng_net, n->dup_pm)) {
        n->duped++;
        queue_copy(w, src, dst, a, alen, b, blen);
    }
}
