/* backoff.c - portal reconnect delays and the retry budget (SPEC §7.6);
 * the rules are in backoff.h. */
#include <stddef.h>

#include "backoff.h"

void
backoff_init(struct backoff *b, uint64_t now)
{
    b->window_start = now;
    b->excluded = 0;
    b->n = 0;
    b->joined_once = 0;
    b->window_open = 1;
}

void
backoff_joined(struct backoff *b)
{
    b->joined_once = 1;
    b->window_open = 0;
    b->excluded = 0;
    b->n = 0;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t
backoff_deadline(const struct backoff *b)
{
    uint64_t budget;

    if (!b->window_open)
        return UINT64_MAX;
    budget = b->joined_once ? BACKOFF_BUDGET_MS : BACKOFF_START_BUDGET_MS;
    return sat_add(sat_add(b->window_start, budget), b->excluded);
}

/* 0.5 s x 1.5^n, capped; the loop stops at the cap, so it is short. */
static uint64_t
base_delay(unsigned n)
{
    uint64_t d = BACKOFF_BASE_MS;

    while (n-- > 0 && d < BACKOFF_CAP_MS)
        d = d * 3 / 2;
    return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

static uint64_t
jitter(uint64_t d, rly_rand_fn rnd, void *ud)
{
    uint8_t  r[4];
    uint64_t u;

    if (rnd == NULL || rnd(ud, r, sizeof(r)) != 0)
        return d;
    u = (uint64_t)r[0] << 24 | (uint64_t)r[1] << 16 | (uint64_t)r[2] << 8 |
        r[3];
    /* d * (u + 2^31) / 2^32: a factor in [0.5, 1.5), exactly 1 at
     * u = 2^31; d <= 60000 keeps the product within 64 bits. */
    return d * (u + (1ULL << 31)) >> 32;
}

enum backoff_verdict
backoff_failed(struct backoff *b, uint64_t now, uint64_t retry_after_ms,
    rly_rand_fn rnd, void *ud, uint64_t *delay_ms)
{
    uint64_t delay, deadline;

    if (!b->window_open) {
        /* The first failure after a join starts a new budget. */
        b->window_start = now;
        b->excluded = 0;
        b->window_open = 1;
    }
    deadline = backoff_deadline(b);
    if (retry_after_ms != BACKOFF_NO_RETRY_AFTER) {
        if (now > deadline)
            return BACKOFF_GIVE_UP;
        delay = retry_after_ms < BACKOFF_RETRY_AFTER_MAX_MS ?
            retry_after_ms : BACKOFF_RETRY_AFTER_MAX_MS;
        b->excluded = sat_add(b->excluded, delay);
        *delay_ms = delay;
        return BACKOFF_RETRY;
    }
    if (b->joined_once)
        delay = jitter(base_delay(b->n), rnd, ud);
    else
        delay = BACKOFF_START_STEP_MS;
    if (sat_add(now, delay) > deadline)
        return BACKOFF_GIVE_UP;
    if (b->joined_once && b->n < 64)
        b->n++;
    *delay_ms = delay;
    return BACKOFF_RETRY;
}
