/* check_chan_ring.c - the worker -> master channel-event ring: sizes and
 * formatting, FIFO order across many laps, loss counting when full, the
 * mapping from core commands, and one producer and one consumer running
 * at once (nothing reordered, nothing lost uncounted). */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chan_ring.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

static void *
ring_new(uint32_t cap, struct chan_ring **out)
{
    size_t  n = chan_ring_bytes(cap);
    void   *mem = NULL;

    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(posix_memalign(&mem, 64, n), 0);
    ck_assert_int_eq(chan_ring_init(mem, n, cap), 0);
    *out = mem;
    return mem;
}

static struct chan_ring_rec
rec_n(uint32_t i)
{
    struct chan_ring_rec r;

    memset(&r, 0, sizeof(r));
    r.kind = CHAN_RING_BOUND;
    r.number = (uint16_t)(0x4000 + (i & 0xfff));
    r.port = (uint16_t)(49152 + (i % 1000));
    r.ref.idx = i;
    r.ref.gen = ~i;
    return r;
}

START_TEST(test_chan_ring_sizes)
{
    uint8_t buf[1024] __attribute__((aligned(64)));

    ck_assert_uint_eq(chan_ring_bytes(0), 0);
    ck_assert_uint_eq(chan_ring_bytes(1), 0);
    ck_assert_uint_eq(chan_ring_bytes(3), 0);
    ck_assert_uint_eq(chan_ring_bytes(CHAN_RING_MAX_CAP * 2), 0);
    ck_assert_uint_eq(chan_ring_bytes(2) % 64, 0);
    ck_assert_uint_ge(chan_ring_bytes(2),
        sizeof(struct chan_ring) + 2 * sizeof(struct chan_ring_rec));
    ck_assert_uint_eq(chan_ring_bytes(4096) % 64, 0);
    /* Bad arguments. */
    ck_assert_int_eq(chan_ring_init(NULL, 1024, 2), RLY_ERR_INVAL);
    ck_assert_int_eq(chan_ring_init(buf + 8, 1000, 2), RLY_ERR_INVAL);
    ck_assert_int_eq(chan_ring_init(buf, chan_ring_bytes(2) - 1, 2),
        RLY_ERR_INVAL);
    ck_assert_int_eq(chan_ring_init(buf, sizeof(buf), 5), RLY_ERR_INVAL);
    ck_assert_int_eq(chan_ring_init(buf, sizeof(buf), 2), 0);
    ck_assert_uint_eq(chan_ring_pending((struct chan_ring *)buf), 0);
    ck_assert_uint_eq(chan_ring_lost((struct chan_ring *)buf), 0);
}
END_TEST

START_TEST(test_chan_ring_array_layout)
{
    uint32_t            cap = 8, n = 3;
    size_t              one = chan_ring_bytes(cap);
    void               *mem = NULL;
    struct chan_ring   *r[3];
    struct chan_ring_rec in = rec_n(1), out;

    ck_assert_int_eq(posix_memalign(&mem, 64, one * n), 0);
    for (uint32_t i = 0; i < n; i++) {
        r[i] = chan_ring_at(mem, cap, i);
        ck_assert_ptr_eq(r[i], (uint8_t *)mem + one * i);
        ck_assert_int_eq(chan_ring_init(r[i], one, cap), 0);
    }
    /* Rings of an array are independent. */
    ck_assert_int_eq(chan_ring_push(r[1], &in), 0);
    ck_assert_uint_eq(chan_ring_pending(r[0]), 0);
    ck_assert_uint_eq(chan_ring_pending(r[1]), 1);
    ck_assert_uint_eq(chan_ring_pending(r[2]), 0);
    ck_assert_uint_eq(chan_ring_pop(r[0], &out, 1), 0);
    ck_assert_uint_eq(chan_ring_pop(r[1], &out, 1), 1);
    ck_assert_mem_eq(&out, &in, sizeof(in));
    free(mem);
}
END_TEST

START_TEST(test_chan_ring_fifo_laps)
{
    struct chan_ring       *r;
    void                   *mem = ring_new(16, &r);
    struct chan_ring_rec    out[5];
    uint32_t                next_in = 0, next_out = 0;

    /* Uneven pushes and pops over many laps of a 16-record ring. */
    for (int round = 0; round < 1000; round++) {
        int k = 1 + round % 7;

        for (int i = 0; i < k; i++) {
            struct chan_ring_rec x = rec_n(next_in);

            if (chan_ring_pending(r) == 16)
                break;
            ck_assert_int_eq(chan_ring_push(r, &x), 0);
            next_in++;
        }
        size_t got = chan_ring_pop(r, out, (size_t)(1 + round % 5));
        for (size_t j = 0; j < got; j++) {
            struct chan_ring_rec want = rec_n(next_out++);

            ck_assert_mem_eq(&out[j], &want, sizeof(want));
        }
    }
    while (chan_ring_pop(r, out, 1) == 1) {
        struct chan_ring_rec want = rec_n(next_out++);

        ck_assert_mem_eq(&out[0], &want, sizeof(want));
    }
    ck_assert_uint_eq(next_in, next_out);
    ck_assert_uint_gt(next_in, 16 * 10);
    ck_assert_uint_eq(chan_ring_lost(r), 0);
    free(mem);
}
END_TEST

START_TEST(test_chan_ring_full_counts_loss)
{
    struct chan_ring       *r;
    void                   *mem = ring_new(4, &r);
    struct chan_ring_rec    out[8];

    for (uint32_t i = 0; i < 4; i++) {
        struct chan_ring_rec x = rec_n(i);

        ck_assert_int_eq(chan_ring_push(r, &x), 0);
    }
    for (uint32_t i = 4; i < 7; i++) {
        struct chan_ring_rec x = rec_n(i);

        ck_assert_int_eq(chan_ring_push(r, &x), RLY_ERR_FULL);
    }
    ck_assert_uint_eq(chan_ring_lost(r), 3);
    ck_assert_uint_eq(chan_ring_pending(r), 4);
    /* The first four stay, in order; the dropped ones never appear. */
    ck_assert_uint_eq(chan_ring_pop(r, out, 8), 4);
    for (uint32_t i = 0; i < 4; i++)
        ck_assert_uint_eq(out[i].ref.idx, i);
    /* Room again. */
    {
        struct chan_ring_rec x = rec_n(9);

        ck_assert_int_eq(chan_ring_push(r, &x), 0);
        ck_assert_uint_eq(chan_ring_pop(r, out, 8), 1);
        ck_assert_uint_eq(out[0].ref.idx, 9);
    }
    ck_assert_uint_eq(chan_ring_lost(r), 3);
    free(mem);
}
END_TEST

START_TEST(test_chan_ring_from_cmd)
{
    struct turn_cmd         c;
    struct chan_ring_rec    rec;

    memset(&c, 0, sizeof(c));
    c.kind = TURN_CMD_CHAN_BOUND;
    c.port = 50000;
    c.number = 0x4001;
    c.ref.idx = 7;
    c.ref.gen = 3;
    c.path.local = A("192.0.2.1:3478");
    c.path.remote = A("198.51.100.1:5000");
    c.peer = A("[2001:db8::9]:7000");
    ck_assert_int_eq(chan_ring_from_cmd(&c, &rec), 1);
    ck_assert_uint_eq(rec.kind, CHAN_RING_BOUND);
    ck_assert_uint_eq(rec.port, 50000);
    ck_assert_uint_eq(rec.number, 0x4001);
    ck_assert_uint_eq(rec.ref.idx, 7);
    ck_assert_uint_eq(rec.ref.gen, 3);
    ck_assert(addr_eq(&rec.client, &c.path.remote));
    ck_assert(addr_eq(&rec.local, &c.path.local));
    ck_assert(addr_eq(&rec.peer, &c.peer));

    c.kind = TURN_CMD_CHAN_UNBOUND;
    ck_assert_int_eq(chan_ring_from_cmd(&c, &rec), 1);
    ck_assert_uint_eq(rec.kind, CHAN_RING_UNBOUND);
    ck_assert(addr_eq(&rec.peer, &c.peer));

    /* A close carries the allocation only. */
    c.kind = TURN_CMD_RELAY_CLOSE;
    ck_assert_int_eq(chan_ring_from_cmd(&c, &rec), 1);
    ck_assert_uint_eq(rec.kind, CHAN_RING_CLOSE);
    ck_assert_uint_eq(rec.port, 50000);
    ck_assert_uint_eq(rec.ref.idx, 7);
    ck_assert_uint_eq(rec.ref.gen, 3);
    ck_assert_uint_eq(rec.number, 0);
    ck_assert_uint_eq(rec.peer.family, ADDR_NONE);

    /* Sends and opens are not channel events. */
    memset(&rec, 0xaa, sizeof(rec));
    for (int k = TURN_CMD_SEND_CLIENT; k <= TURN_CMD_RELAY_OPEN; k++) {
        c.kind = (enum turn_cmd_kind)k;
        ck_assert_int_eq(chan_ring_from_cmd(&c, &rec), 0);
        ck_assert_uint_eq(rec.kind, 0xaa);
    }
}
END_TEST

/* One producer thread and one consumer at once: the consumer sees a
 * strictly increasing sequence, and what it misses is exactly the loss
 * the producer counted. */
#define SPSC_N  200000u

struct spsc {
    struct chan_ring   *r;
    uint32_t            pushed;
};

static void *
producer(void *arg)
{
    struct spsc *s = arg;

    for (uint32_t i = 0; i < SPSC_N; i++) {
        struct chan_ring_rec x = rec_n(i);

        if (chan_ring_push(s->r, &x) == 0)
            s->pushed++;
    }
    return NULL;
}

START_TEST(test_chan_ring_spsc_threads)
{
    struct chan_ring       *r;
    void                   *mem = ring_new(64, &r);
    struct spsc             s = { r, 0 };
    struct chan_ring_rec    out[16];
    pthread_t               t;
    uint64_t                got = 0;
    int64_t                 last = -1;
    int                     done = 0;

    ck_assert_int_eq(pthread_create(&t, NULL, producer, &s), 0);
    while (!done || chan_ring_pending(r) > 0) {
        size_t n = chan_ring_pop(r, out, 16);

        for (size_t j = 0; j < n; j++) {
            struct chan_ring_rec want = rec_n(out[j].ref.idx);

            ck_assert_int_gt((int64_t)out[j].ref.idx, last);
            ck_assert_mem_eq(&out[j], &want, sizeof(want));
            last = out[j].ref.idx;
        }
        got += n;
        if (!done && __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) +
            chan_ring_lost(r) == SPSC_N) {
            ck_assert_int_eq(pthread_join(t, NULL), 0);
            done = 1;
        }
    }
    if (!done)
        ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_uint_eq(got, s.pushed);
    ck_assert_uint_eq(got + chan_ring_lost(r), SPSC_N);
    free(mem);
}
END_TEST

Suite *
chan_ring_suite(void)
{
    Suite *s = suite_create("chan_ring");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_chan_ring_sizes);
    tcase_add_test(tc, test_chan_ring_array_layout);
    tcase_add_test(tc, test_chan_ring_fifo_laps);
    tcase_add_test(tc, test_chan_ring_full_counts_loss);
    tcase_add_test(tc, test_chan_ring_from_cmd);
    tcase_add_test(tc, test_chan_ring_spsc_threads);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
