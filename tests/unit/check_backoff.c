/* check_backoff.c - portal reconnect policy (SPEC §7.6, C61, C62).  Time
 * moves only when a test moves it. */
#include <check.h>
#include <string.h>

#include "backoff.h"
#include "helper.h"
#include "suites.h"

/* rly_rand_fn repeating 4 fixed bytes. */
static int
rand_pattern(void *ud, uint8_t *buf, size_t len)
{
    const uint8_t *pat = ud;

    for (size_t i = 0; i < len; i++)
        buf[i] = pat[i % 4];
    return 0;
}

static uint8_t pat_mid[4] = { 0x80, 0, 0, 0 };      /* no jitter */
static uint8_t pat_max[4] = { 0xff, 0xff, 0xff, 0xff };

static uint64_t
retry(struct backoff *b, uint64_t now, uint64_t ra, rly_rand_fn rnd,
    void *ud)
{
    uint64_t delay = 12345678;

    ck_assert_int_eq(backoff_failed(b, now, ra, rnd, ud, &delay),
        BACKOFF_RETRY);
    ck_assert_uint_ne(delay, 12345678);
    return delay;
}

/* Runs attempts that each fail `took` ms after they start, from now, until
 * give-up; returns the give-up time and counts the attempts. */
static uint64_t
run_until_give_up(struct backoff *b, uint64_t now, uint64_t took,
    unsigned *attempts, uint64_t *first_delay)
{
    uint64_t delay = 0;

    *attempts = 0;
    for (;;) {
        (*attempts)++;
        now += took;
        if (backoff_failed(b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
                pat_mid, &delay) == BACKOFF_GIVE_UP)
            return now;
        if (*attempts == 1 && first_delay != NULL)
            *first_delay = delay;
        now += delay;
        ck_assert_uint_lt(*attempts, 1000000);
    }
}

START_TEST(test_c61_unreachable_at_start_gives_up)
{
    struct backoff b;
    uint64_t       start = 5000000, now = start, delay = 0, prev = 0;
    unsigned       attempts = 0;

    /* Connection refused at once: attempts 1 s apart. */
    backoff_init(&b, start);
    for (;;) {
        if (attempts > 0)
            ck_assert_uint_eq(now - prev, 1000 + 20);
        prev = now;
        attempts++;
        now += 20;                              /* the attempt fails */
        if (backoff_failed(&b, now, BACKOFF_NO_RETRY_AFTER, rand_zero, NULL,
                &delay) == BACKOFF_GIVE_UP)
            break;
        ck_assert_uint_eq(delay, 1000);         /* no jitter at start */
        now += delay;
    }
    ck_assert_uint_ge(now - start, 12000);
    ck_assert_uint_le(now - start, 21000);
    ck_assert_uint_ge(attempts, 12);

    /* Each attempt timing out after 5 s: still gives up within 21 s. */
    backoff_init(&b, start);
    now = run_until_give_up(&b, start, 5000, &attempts, NULL);
    ck_assert_uint_ge(now - start, 12000);
    ck_assert_uint_le(now - start, 21000);
    ck_assert_uint_eq(attempts, 3);             /* at 0, 6 and 12 s */
}
END_TEST

START_TEST(test_c62_retry_after_honoured)
{
    struct backoff b;
    uint64_t       delay;

    backoff_init(&b, 0);
    retry(&b, 100, BACKOFF_NO_RETRY_AFTER, rand_zero, NULL);
    backoff_joined(&b);                         /* joined once, at ~1 s */
    delay = retry(&b, 3600000, 7000, rand_zero, NULL);   /* 503, RA 7 */
    ck_assert_uint_ge(delay, 6000);
    ck_assert_uint_le(delay, 9000);
    ck_assert_uint_eq(delay, 7000);
    /* Before any join, too. */
    backoff_init(&b, 0);
    ck_assert_uint_eq(retry(&b, 10, 7000, rand_zero, NULL), 7000);
}
END_TEST

static const uint64_t expected_base[] = {
    500, 750, 1125, 1687, 2530, 3795, 5692, 8538, 12807, 19210, 28815,
    43222, 60000, 60000, 60000,
};
#define NBASE (sizeof(expected_base) / sizeof(expected_base[0]))

/* Started at 0 and joined: the post-join regime with no window open. */
static void
joined_at(struct backoff *b, uint64_t t)
{
    backoff_init(b, t);
    backoff_joined(b);
}

START_TEST(test_exponential_no_jitter)
{
    struct backoff b;
    uint64_t       now = 100000;

    joined_at(&b, now);
    for (size_t i = 0; i < NBASE; i++) {
        uint64_t d = retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
            pat_mid);

        ck_assert_uint_eq(d, expected_base[i]);
        now += d + 50;
    }
}
END_TEST

START_TEST(test_exponential_min_jitter)
{
    struct backoff b;
    uint64_t       now = 100000;

    joined_at(&b, now);
    for (size_t i = 0; i < NBASE; i++) {
        uint64_t d = retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_zero, NULL);

        ck_assert_uint_eq(d, expected_base[i] / 2);     /* -50% */
        now += d;
    }
}
END_TEST

START_TEST(test_exponential_max_jitter)
{
    struct backoff b;
    uint64_t       now = 100000;

    joined_at(&b, now);
    for (size_t i = 0; i < NBASE; i++) {
        uint64_t d = retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
            pat_max);
        uint64_t hi = expected_base[i] * 3 / 2;         /* +50% */

        ck_assert_uint_le(d, hi);
        ck_assert_uint_ge(d, hi - 1);
        now += d;
    }
}
END_TEST

START_TEST(test_jitter_range_and_cap)
{
    struct backoff      b;
    struct rand_counter rc = { 0, 0 };
    uint64_t            now = 0;

    /* Counting randomness walks the whole jitter range; once capped every
     * delay stays in [30 s, 90 s). */
    joined_at(&b, now);
    for (int i = 0; i < 300; i++) {
        uint64_t d = retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_count, &rc);

        if (i >= 12) {
            ck_assert_uint_ge(d, BACKOFF_CAP_MS / 2);
            ck_assert_uint_lt(d, BACKOFF_CAP_MS * 3 / 2);
        }
        now += d;
    }
    ck_assert_uint_eq(rc.calls, 300);
    /* A failing rand means no jitter. */
    joined_at(&b, now);
    ck_assert_uint_eq(retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_fail,
        NULL), 500);
    ck_assert_uint_eq(retry(&b, now, BACKOFF_NO_RETRY_AFTER, NULL, NULL),
        750);
}
END_TEST

START_TEST(test_budget_24h)
{
    struct backoff b;
    uint64_t       first = 7 * 24 * 3600 * 1000ULL, end, delay = 0;
    unsigned       attempts;

    joined_at(&b, 0);
    ck_assert_uint_eq(backoff_deadline(&b), UINT64_MAX);    /* no window */
    end = run_until_give_up(&b, first - 1000, 1000, &attempts, &delay);
    ck_assert_uint_eq(delay, 500);
    ck_assert_uint_le(end - first, BACKOFF_BUDGET_MS);
    ck_assert_uint_gt(end - first, BACKOFF_BUDGET_MS - 91000);
    ck_assert_uint_eq(backoff_deadline(&b), first + BACKOFF_BUDGET_MS);
    /* Roughly 24 h / 61 s attempts once capped. */
    ck_assert_uint_gt(attempts, 1300);
    ck_assert_uint_lt(attempts, 1500);
}
END_TEST

START_TEST(test_reset_on_join)
{
    struct backoff b;
    uint64_t       now = 0, delay = 0;
    unsigned       attempts;

    joined_at(&b, 0);
    for (int i = 0; i < 20; i++)
        now += retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
            pat_mid);
    backoff_joined(&b);
    /* A new sequence and a new window, much later. */
    now += 30 * 24 * 3600 * 1000ULL;
    ck_assert_uint_eq(retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
        pat_mid), 500);
    ck_assert_uint_eq(backoff_deadline(&b), now + BACKOFF_BUDGET_MS);
    /* Joining after giving up is possible too (the caller exits, but the
     * state stays consistent). */
    backoff_init(&b, 0);
    run_until_give_up(&b, 0, 10, &attempts, NULL);
    backoff_joined(&b);
    ck_assert_int_eq(backoff_failed(&b, 99999999, BACKOFF_NO_RETRY_AFTER,
        rand_pattern, pat_mid, &delay), BACKOFF_RETRY);
    ck_assert_uint_eq(delay, 500);
}
END_TEST

START_TEST(test_retry_after_excluded_from_budget)
{
    struct backoff b;
    uint64_t       now = 0, delay = 0;
    unsigned       attempts;

    /* Before the first join: a 60 s Retry-After at 10 s moves the 15 s
     * budget's end to 75 s. */
    backoff_init(&b, 0);
    now = 10000;
    ck_assert_uint_eq(retry(&b, now, 60000, rand_zero, NULL), 60000);
    ck_assert_uint_eq(backoff_deadline(&b), 75000);
    now += 60000;
    now = run_until_give_up(&b, now, 10, &attempts, NULL);
    ck_assert_uint_gt(now, 74000);
    ck_assert_uint_le(now, 75000);
    ck_assert_uint_eq(attempts, 5);             /* 70, 71, ... 74 s */

    /* Retry-After does not advance n. */
    joined_at(&b, 0);
    now = 1000;
    ck_assert_uint_eq(retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
        pat_mid), 500);
    ck_assert_uint_eq(retry(&b, now, 2000, rand_pattern, pat_mid), 2000);
    ck_assert_uint_eq(retry(&b, now, 0, rand_pattern, pat_mid), 0);
    ck_assert_uint_eq(retry(&b, now, BACKOFF_NO_RETRY_AFTER, rand_pattern,
        pat_mid), 750);

    /* The attempts' own time still counts: Retry-After 0 forever ends. */
    backoff_init(&b, 0);
    now = 0;
    for (attempts = 0; attempts < 1000; attempts++) {
        now += 100;
        if (backoff_failed(&b, now, 0, rand_zero, NULL, &delay) ==
                BACKOFF_GIVE_UP)
            break;
        ck_assert_uint_eq(delay, 0);
    }
    ck_assert_uint_eq(attempts, 150);
    ck_assert_uint_eq(now, 15100);

    /* Capped at an hour. */
    backoff_init(&b, 0);
    ck_assert_uint_eq(retry(&b, 0, 86400000, rand_zero, NULL),
        BACKOFF_RETRY_AFTER_MAX_MS);
    ck_assert_uint_eq(backoff_deadline(&b), 15000 +
        BACKOFF_RETRY_AFTER_MAX_MS);
    ck_assert_uint_eq(retry(&b, 0, UINT64_MAX - 1, rand_zero, NULL),
        BACKOFF_RETRY_AFTER_MAX_MS);
}
END_TEST

START_TEST(test_deadline_edges)
{
    struct backoff b;
    uint64_t       delay = 77;

    backoff_init(&b, 1000);
    ck_assert_uint_eq(backoff_deadline(&b), 16000);
    /* The next attempt may start exactly at the deadline. */
    ck_assert_int_eq(backoff_failed(&b, 15000, BACKOFF_NO_RETRY_AFTER,
        rand_zero, NULL, &delay), BACKOFF_RETRY);
    ck_assert_int_eq(backoff_failed(&b, 15001, BACKOFF_NO_RETRY_AFTER,
        rand_zero, NULL, &delay), BACKOFF_GIVE_UP);
    ck_assert_uint_eq(delay, 1000);             /* untouched */
    /* A Retry-After gives up only after the deadline. */
    ck_assert_int_eq(backoff_failed(&b, 16000, 5000, rand_zero, NULL,
        &delay), BACKOFF_RETRY);
    ck_assert_uint_eq(backoff_deadline(&b), 21000);
    ck_assert_int_eq(backoff_failed(&b, 21001, 5000, rand_zero, NULL,
        &delay), BACKOFF_GIVE_UP);
    /* Clock values near the top do not wrap. */
    backoff_init(&b, UINT64_MAX - 10);
    ck_assert_uint_eq(backoff_deadline(&b), UINT64_MAX);
    ck_assert_int_eq(backoff_failed(&b, UINT64_MAX - 5,
        BACKOFF_NO_RETRY_AFTER, rand_zero, NULL, &delay), BACKOFF_RETRY);
}
END_TEST

Suite *
backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("spec");

    tcase_add_test(tc, test_c61_unreachable_at_start_gives_up);
    tcase_add_test(tc, test_c62_retry_after_honoured);
    suite_add_tcase(s, tc);

    tc = tcase_create("policy");
    tcase_add_test(tc, test_exponential_no_jitter);
    tcase_add_test(tc, test_exponential_min_jitter);
    tcase_add_test(tc, test_exponential_max_jitter);
    tcase_add_test(tc, test_jitter_range_and_cap);
    tcase_add_test(tc, test_budget_24h);
    tcase_add_test(tc, test_reset_on_join);
    tcase_add_test(tc, test_retry_after_excluded_from_budget);
    tcase_add_test(tc, test_deadline_edges);
    suite_add_tcase(s, tc);
    return s;
}
