/* turn_timer.c - indexed binary min-heap; see turn_timer.h. */
#include <stdlib.h>
#include <string.h>

#include "rly_err.h"
#include "turn_timer.h"

#define NOPOS UINT32_MAX

int
turn_timer_init(struct turn_timer *t, uint32_t cap)
{
    memset(t, 0, sizeof(*t));
    t->heap = calloc(cap ? cap : 1, sizeof(*t->heap));
    t->pos = malloc((cap ? cap : 1) * sizeof(*t->pos));
    if (t->heap == NULL || t->pos == NULL) {
        turn_timer_fini(t);
        return RLY_ERR_NOMEM;
    }
    t->cap = cap;
    memset(t->pos, 0xff, (cap ? cap : 1) * sizeof(*t->pos));
    return 0;
}

void
turn_timer_fini(struct turn_timer *t)
{
    free(t->heap);
    free(t->pos);
    memset(t, 0, sizeof(*t));
}

void
turn_timer_clear(struct turn_timer *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        t->pos[t->heap[i].idx] = NOPOS;
    t->n = 0;
}

static void
place(struct turn_timer *t, uint32_t i, struct turn_timer_ent e)
{
    t->heap[i] = e;
    t->pos[e.idx] = i;
}

static void
sift_up(struct turn_timer *t, uint32_t i)
{
    struct turn_timer_ent e = t->heap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;

        if (t->heap[parent].when <= e.when)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, e);
}

static void
sift_down(struct turn_timer *t, uint32_t i)
{
    struct turn_timer_ent e = t->heap[i];

    for (;;) {
        uint32_t child = 2 * i + 1;

        if (child >= t->n)
            break;
        if (child + 1 < t->n && t->heap[child + 1].when < t->heap[child].when)
            child++;
        if (e.when <= t->heap[child].when)
            break;
        place(t, i, t->heap[child]);
        i = child;
    }
    place(t, i, e);
}

void
turn_timer_set(struct turn_timer *t, uint32_t idx, uint64_t when)
{
    uint32_t i;

    if (idx >= t->cap)
        return;
    i = t->pos[idx];
    if (i == NOPOS) {
        i = t->n++;
        place(t, i, (struct turn_timer_ent){ when, idx });
        sift_up(t, i);
        return;
    }
    t->heap[i].when = when;
    sift_up(t, i);
    sift_down(t, t->pos[idx]);
}

void
turn_timer_del(struct turn_timer *t, uint32_t idx)
{
    uint32_t i;

    if (idx >= t->cap || (i = t->pos[idx]) == NOPOS)
        return;
    t->pos[idx] = NOPOS;
    if (--t->n == i)
        return;
    {
        struct turn_timer_ent last = t->heap[t->n];

        place(t, i, last);
        sift_up(t, i);
        sift_down(t, t->pos[last.idx]);
    }
}

uint64_t
turn_timer_peek(const struct turn_timer *t, uint32_t *idx)
{
    if (t->n == 0)
        return UINT64_MAX;
    if (idx != NULL)
        *idx = t->heap[0].idx;
    return t->heap[0].when;
}
