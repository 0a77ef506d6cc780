/* turn_timer.h - an indexed binary min-heap of deadlines, one entry per
 * table slot, for the core's timers (SPEC §6).
 *
 * Entries are keyed by slot index, so setting a slot's deadline again moves
 * its entry instead of adding one: the heap never holds more entries than
 * slots, and a Refresh storm cannot grow it.  Allocated once. */
#ifndef RLY_TURN_TIMER_H
#define RLY_TURN_TIMER_H

#include <stdint.h>

struct turn_timer_ent {
    uint64_t    when;
    uint32_t    idx;
};

struct turn_timer {
    struct turn_timer_ent  *heap;
    uint32_t               *pos;    /* slot -> heap position, or UINT32_MAX */
    uint32_t                n, cap;
};

/* Room for cap slots (0 .. cap-1).  Returns 0 or RLY_ERR_NOMEM. */
int turn_timer_init(struct turn_timer *t, uint32_t cap);
void turn_timer_fini(struct turn_timer *t);
void turn_timer_clear(struct turn_timer *t);

/* Sets (inserts or moves) the deadline of slot idx. */
void turn_timer_set(struct turn_timer *t, uint32_t idx, uint64_t when);
/* Removes slot idx (no-op when absent). */
void turn_timer_del(struct turn_timer *t, uint32_t idx);
/* Earliest deadline, or UINT64_MAX when empty; *idx gets its slot. */
uint64_t turn_timer_peek(const struct turn_timer *t, uint32_t *idx);

#endif
