/* backoff.h - when to reconnect to the portal, and when to give up
 * (SPEC §7.6).  A pure state machine: monotonic time (ms) and randomness
 * are passed in, and tests move time by hand.
 *
 * Two regimes:
 *  - before the first successful join since start: a fixed 1 s delay,
 *    while the next attempt starts within 15 s of start;
 *  - after a join: 0.5 s x 1.5^n (n = failures since the last join
 *    without a Retry-After, from 0; integer ms, x3/2 truncated), capped
 *    at 60 s, THEN +-50% jitter (so 30..90 s once capped), while the
 *    next attempt starts within 24 h of the first failure after the
 *    last join.
 * The "budget" is that window (15 s or 24 h).  When the next attempt
 * would start after the window's end, the verdict is BACKOFF_GIVE_UP:
 * the master logs "max retries reached" and exits 1.
 *
 * Retry-After "does not consume the budget", precisely: its delay is
 * used as is (capped at BACKOFF_RETRY_AFTER_MAX_MS) without jitter, the
 * window's end moves later by that delay (the wait is excluded from the
 * budget), and n does not advance.  The time the failed attempt itself
 * took still counts, so a portal answering every attempt with
 * Retry-After: 0 still exhausts the budget.  A Retry-After failure gives
 * up only if it comes after the window's end. */
#ifndef RLY_BACKOFF_H
#define RLY_BACKOFF_H

#include <stdint.h>

#include "rly_rand.h"

#define BACKOFF_START_STEP_MS       1000ULL
#define BACKOFF_START_BUDGET_MS     15000ULL
#define BACKOFF_BASE_MS             500ULL
#define BACKOFF_CAP_MS              60000ULL
#define BACKOFF_BUDGET_MS           (24ULL * 3600 * 1000)
/* SPEC is silent on huge Retry-After values: an hour at most, so a
 * mistaken header cannot park the relay for days. */
#define BACKOFF_RETRY_AFTER_MAX_MS  (3600ULL * 1000)
/* retry_after_ms when the failing response carried none. */
#define BACKOFF_NO_RETRY_AFTER      UINT64_MAX
/* What the master logs on BACKOFF_GIVE_UP. */
#define BACKOFF_GIVE_UP_MSG         "max retries reached"

enum backoff_verdict {
    BACKOFF_RETRY = 0,      /* reconnect after *delay_ms */
    BACKOFF_GIVE_UP         /* budget exhausted: exit 1 */
};

struct backoff {
    uint64_t    window_start;   /* budget start, ms */
    uint64_t    excluded;       /* Retry-After waits in this window, ms */
    unsigned    n;              /* exponent of the post-join delay */
    int         joined_once;    /* a join succeeded since start */
    int         window_open;    /* a budget window is running */
};

/* At master start (now: monotonic ms): the pre-join regime, with the
 * budget running from now. */
void backoff_init(struct backoff *b, uint64_t now);

/* A successful join: switches to the post-join regime for good, resets n
 * and closes the window; the next failure opens a new 24 h one. */
void backoff_joined(struct backoff *b);

/* A failed attempt (any SPEC §7.6 "reconnect" failure) noticed at now.
 * retry_after_ms is the failing response's Retry-After in ms, or
 * BACKOFF_NO_RETRY_AFTER.  rnd draws the jitter (4 bytes, big-endian u:
 * delay = d/2 + d*u/2^32, so all-zero bytes give -50%, 0x80 00 00 00
 * exactly d, all-0xff just under +50%); if rnd fails the delay is d.
 * rnd is used only after a join and without Retry-After.  Sets *delay_ms
 * on BACKOFF_RETRY, leaves it alone on BACKOFF_GIVE_UP. */
enum backoff_verdict backoff_failed(struct backoff *b, uint64_t now,
    uint64_t retry_after_ms, rly_rand_fn rnd, void *ud, uint64_t *delay_ms);

/* The window's current end (ms): the latest start time of an attempt.
 * Meaningful only while a window is open (before the first join, or after
 * a failure since the last join); UINT64_MAX otherwise. */
uint64_t backoff_deadline(const struct backoff *b);

#endif
