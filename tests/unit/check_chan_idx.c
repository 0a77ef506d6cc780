/* check_chan_idx.c - the worker's local channel index: both keys, limits,
 * growth (up to the cap, and when memory runs out), churn against a
 * reference array, per-client channel numbers (C49). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "chan_idx.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

static const uint8_t key[16] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
};

START_TEST(test_chan_idx_add_find_del)
{
    struct chan_idx *ci = chan_idx_new(16, key);
    struct addr      c = A("198.51.100.1:5000"), p = A("203.0.113.9:7000");
    struct addr      c6 = A("[2001:db8::1]:5000"), p6 = A("[2001:db8::9]:1");

    ck_assert_ptr_nonnull(ci);
    ck_assert_uint_eq(chan_idx_count(ci), 0);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), CHAN_IDX_NONE);
    ck_assert_int_eq(chan_idx_add(ci, 7, &c, 0x4000, 50000, &p), 0);
    ck_assert_int_eq(chan_idx_add(ci, 8, &c6, 0x7fff, 50001, &p6), 0);
    ck_assert_uint_eq(chan_idx_count(ci), 2);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), 7);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p), 7);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c6, 0x7fff), 8);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50001, &p6), 8);
    /* Near misses: other number, other port, other peer port. */
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4001), CHAN_IDX_NONE);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50001, &p), CHAN_IDX_NONE);
    p.port++;
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p), CHAN_IDX_NONE);
    p.port--;

    chan_idx_del(ci, &c, 0x4000, 50000, &p);
    ck_assert_uint_eq(chan_idx_count(ci), 1);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), CHAN_IDX_NONE);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p), CHAN_IDX_NONE);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c6, 0x7fff), 8);
    chan_idx_del(ci, &c, 0x4000, 50000, &p);           /* absent: no-op */
    ck_assert_uint_eq(chan_idx_count(ci), 1);
    chan_idx_free(ci);
    chan_idx_free(NULL);
}
END_TEST

START_TEST(test_chan_idx_exists)
{
    struct chan_idx *ci = chan_idx_new(8, key);
    struct addr      c = A("198.51.100.1:5000"), c2 = A("198.51.100.2:5000");
    struct addr      p = A("203.0.113.9:7000"), p2 = A("203.0.113.9:7001");

    ck_assert_int_eq(chan_idx_add(ci, 1, &c, 0x4000, 50000, &p), 0);
    /* Same (client, number), other peer. */
    ck_assert_int_eq(chan_idx_add(ci, 2, &c, 0x4000, 50000, &p2),
        RLY_ERR_EXISTS);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p2), CHAN_IDX_NONE);
    /* Same (port, peer), other client: nothing half-added either. */
    ck_assert_int_eq(chan_idx_add(ci, 3, &c2, 0x4001, 50000, &p),
        RLY_ERR_EXISTS);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c2, 0x4001), CHAN_IDX_NONE);
    ck_assert_uint_eq(chan_idx_count(ci), 1);
    ck_assert_int_eq(chan_idx_add(ci, CHAN_IDX_NONE, &c2, 1, 1, &p2),
        RLY_ERR_INVAL);
    /* Keys of two different channels: delete does nothing. */
    ck_assert_int_eq(chan_idx_add(ci, 4, &c2, 0x4001, 50000, &p2), 0);
    chan_idx_del(ci, &c, 0x4000, 50000, &p2);
    ck_assert_uint_eq(chan_idx_count(ci), 2);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), 1);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p2), 4);
    chan_idx_free(ci);
}
END_TEST

START_TEST(test_chan_idx_full)
{
    struct chan_idx *ci = chan_idx_new(3, key);
    struct addr      c = A("198.51.100.1:5000"), p = A("203.0.113.9:7000");

    for (uint16_t i = 0; i < 3; i++) {
        p.port = (uint16_t)(7000 + i);
        ck_assert_int_eq(chan_idx_add(ci, i, &c, 0x4000 + i, 50000, &p), 0);
    }
    p.port = 7100;
    ck_assert_int_eq(chan_idx_add(ci, 9, &c, 0x4100, 50000, &p),
        RLY_ERR_FULL);
    p.port = 7001;
    chan_idx_del(ci, &c, 0x4001, 50000, &p);
    p.port = 7100;
    ck_assert_int_eq(chan_idx_add(ci, 9, &c, 0x4100, 50000, &p), 0);
    ck_assert_uint_eq(chan_idx_count(ci), 3);
    chan_idx_free(ci);

    ci = chan_idx_new(0, key);                  /* a worker with no room */
    ck_assert_ptr_nonnull(ci);
    ck_assert_int_eq(chan_idx_add(ci, 1, &c, 0x4000, 1, &p), RLY_ERR_FULL);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), CHAN_IDX_NONE);
    chan_idx_free(ci);
    ck_assert_ptr_null(chan_idx_new(UINT32_MAX, key));
}
END_TEST

/* SPEC C49: the number alone is no key.  Two clients bind 0x4000 to
 * different peers; each peer's data must map to its own client. */
START_TEST(test_chan_idx_same_number_other_client)
{
    struct chan_idx *ci = chan_idx_new(8, key);
    struct addr      c = A("198.51.100.1:5000"), c2 = A("198.51.100.1:5001");
    struct addr      p = A("203.0.113.9:7000"), p2 = A("203.0.113.10:7000");

    ck_assert_int_eq(chan_idx_add(ci, 1, &c, 0x4000, 50000, &p), 0);
    ck_assert_int_eq(chan_idx_add(ci, 2, &c2, 0x4000, 50001, &p2), 0);
    ck_assert_int_eq(chan_idx_add(ci, 3, &c2, 0x4001, 50001, &p), 0);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), 1);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c2, 0x4000), 2);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p), 1);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50001, &p2), 2);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50001, &p), 3);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 50000, &p2), CHAN_IDX_NONE);
    chan_idx_free(ci);
}
END_TEST

/* Only the bytes an address uses are part of its key. */
START_TEST(test_chan_idx_ignores_unused_bytes)
{
    struct chan_idx *ci = chan_idx_new(8, key);
    struct addr      c = A("198.51.100.1:5000"), p = A("203.0.113.9:7000");
    struct addr      dirty_c = c, dirty_p = p;

    memset(dirty_c.ip + 4, 0xaa, 12);
    dirty_c.pad = 0x55;
    memset(dirty_p.ip + 4, 0x11, 12);
    ck_assert_int_eq(chan_idx_add(ci, 5, &dirty_c, 0x4000, 1, &dirty_p), 0);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000), 5);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 1, &p), 5);
    chan_idx_del(ci, &c, 0x4000, 1, &p);
    ck_assert_uint_eq(chan_idx_count(ci), 0);
    chan_idx_free(ci);
}
END_TEST

START_TEST(test_chan_idx_clear)
{
    struct chan_idx *ci = chan_idx_new(64, key);
    struct addr      c = A("198.51.100.1:5000"), p = A("203.0.113.9:7000");

    for (uint16_t i = 0; i < 64; i++) {
        p.port = (uint16_t)(1000 + i);
        ck_assert_int_eq(chan_idx_add(ci, i, &c, 0x4000 + i, 2, &p), 0);
    }
    chan_idx_clear(ci);
    ck_assert_uint_eq(chan_idx_count(ci), 0);
    for (uint16_t i = 0; i < 64; i++) {
        p.port = (uint16_t)(1000 + i);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c, 0x4000 + i),
            CHAN_IDX_NONE);
        ck_assert_uint_eq(chan_idx_by_peer(ci, 2, &p), CHAN_IDX_NONE);
    }
    ck_assert_int_eq(chan_idx_add(ci, 1, &c, 0x4000, 2, &p), 0);
    ck_assert_uint_eq(chan_idx_by_peer(ci, 2, &p), 1);
    chan_idx_free(ci);
}
END_TEST

/* --- Growth --- */

/* The keys of channel i: distinct clients, numbers, ports and peers, IPv4
 * and IPv6 mixed. */
static void
key_of(uint32_t i, struct addr *client, uint16_t *number, uint16_t *port,
    struct addr *peer)
{
    uint8_t ip[16] = { 0x20, 0x01, 0x0d, 0xb8 };

    ip[12] = (uint8_t)(i >> 8);
    ip[13] = (uint8_t)i;
    if (i % 3 == 0)
        addr_set6(client, ip, (uint16_t)(1024 + i % 7));
    else
        addr_set4(client, (const uint8_t[4]){ 10, 1, (uint8_t)(i >> 8),
            (uint8_t)i }, (uint16_t)(1024 + i % 7));
    *number = (uint16_t)(0x4000 + i % 5);
    *port = (uint16_t)(49152 + i % 11);
    addr_set4(peer, (const uint8_t[4]){ 203, 0, (uint8_t)(i >> 8),
        (uint8_t)i }, 7000);
}

static int
add_nth(struct chan_idx *ci, uint32_t i)
{
    struct addr c, p;
    uint16_t    number, port;

    key_of(i, &c, &number, &port, &p);
    return chan_idx_add(ci, 1000 + i, &c, number, port, &p);
}

static void
del_nth(struct chan_idx *ci, uint32_t i)
{
    struct addr c, p;
    uint16_t    number, port;

    key_of(i, &c, &number, &port, &p);
    chan_idx_del(ci, &c, number, port, &p);
}

/* Channels from..to-1 are found under both keys (or, gone, under none). */
static void
assert_nth(struct chan_idx *ci, uint32_t from, uint32_t to,
    int present)
{
    for (uint32_t i = from; i < to; i++) {
        struct addr c, p;
        uint16_t    number, port;
        uint32_t    want = present ? 1000 + i : CHAN_IDX_NONE;

        key_of(i, &c, &number, &port, &p);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c, number), want);
        ck_assert_uint_eq(chan_idx_by_peer(ci, port, &p), want);
    }
}

START_TEST(test_chan_idx_grows)
{
    struct chan_idx *ci = chan_idx_new(65536, key);
    uint32_t         size = CHAN_IDX_MIN_SIZE;

    ck_assert_ptr_nonnull(ci);
    ck_assert_uint_eq(chan_idx_size(ci), CHAN_IDX_MIN_SIZE);
    for (uint32_t i = 0; i < 5000; i++) {
        ck_assert_int_eq(add_nth(ci, i), 0);
        /* Doubled exactly when the add would have passed 3/4. */
        if (i + 1 > size - size / 4)
            size *= 2;
        ck_assert_uint_eq(chan_idx_size(ci), size);
    }
    ck_assert_uint_eq(chan_idx_size(ci), 8192);
    assert_nth(ci, 0, 5000, 1);
    /* A key present is refused before any growth is considered. */
    ck_assert_int_eq(add_nth(ci, 4999), RLY_ERR_EXISTS);
    /* Deleting never shrinks, and shifts stay right in the grown table. */
    for (uint32_t i = 0; i < 5000; i += 2)
        del_nth(ci, i);
    ck_assert_uint_eq(chan_idx_count(ci), 2500);
    ck_assert_uint_eq(chan_idx_size(ci), 8192);
    for (uint32_t i = 0; i < 5000; i++)
        assert_nth(ci, i, i + 1, i % 2);
    chan_idx_clear(ci);
    ck_assert_uint_eq(chan_idx_size(ci), 8192);
    assert_nth(ci, 0, 5000, 0);
    chan_idx_free(ci);
}
END_TEST

START_TEST(test_chan_idx_grows_to_cap)
{
    struct chan_idx *ci = chan_idx_new(100, key);   /* at most 256 */

    ck_assert_ptr_nonnull(ci);
    for (uint32_t i = 0; i < 100; i++)
        ck_assert_int_eq(add_nth(ci, i), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 256);
    ck_assert_int_eq(add_nth(ci, 100), RLY_ERR_FULL);
    ck_assert_int_eq(chan_idx_reserve(ci, 101), RLY_ERR_FULL);
    ck_assert_uint_eq(chan_idx_size(ci), 256);
    assert_nth(ci, 0, 100, 1);
    assert_nth(ci, 100, 101, 0);
    chan_idx_free(ci);

    /* A cap below the first size: the tables start at the largest. */
    ci = chan_idx_new(3, key);
    ck_assert_uint_eq(chan_idx_size(ci), 8);
    chan_idx_free(ci);
}
END_TEST

START_TEST(test_chan_idx_reserve)
{
    struct chan_idx *ci = chan_idx_new(65536, key);

    ck_assert_int_eq(chan_idx_reserve(ci, 0), 0);
    ck_assert_int_eq(chan_idx_reserve(ci, 12), 0);  /* 3/4 of 16 */
    ck_assert_uint_eq(chan_idx_size(ci), 16);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_int_eq(add_nth(ci, i), 0);
    /* One rehash straight to the size for 1000, keeping the 10. */
    ck_assert_int_eq(chan_idx_reserve(ci, 1000), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 2048);
    assert_nth(ci, 0, 10, 1);
    for (uint32_t i = 10; i < 1000; i++)
        ck_assert_int_eq(add_nth(ci, i), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 2048);     /* no growth since */
    ck_assert_int_eq(chan_idx_reserve(ci, 65537), RLY_ERR_FULL);
    ck_assert_int_eq(chan_idx_reserve(ci, 65536), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 131072);
    assert_nth(ci, 0, 1000, 1);
    chan_idx_free(ci);
}
END_TEST

/* Out of memory while growing: the add is refused, every channel indexed
 * before stays found, and the next add with memory grows as usual.  Both
 * tables' allocations are failed in turn (the first, then the second). */
START_TEST(test_chan_idx_growth_fails)
{
    struct chan_idx *ci;

    fail_calloc(0);
    ck_assert_ptr_null(chan_idx_new(64, key));
    fail_calloc(2);                 /* the index, its client table */
    ck_assert_ptr_null(chan_idx_new(64, key));
    fail_calloc(-1);
    ci = chan_idx_new(1000, key);
    ck_assert_ptr_nonnull(ci);
    for (uint32_t i = 0; i < 12; i++)
        ck_assert_int_eq(add_nth(ci, i), 0);
    for (int ok = 0; ok < 2; ok++) {
        fail_calloc(ok);
        ck_assert_int_eq(add_nth(ci, 12), RLY_ERR_FULL);
        fail_calloc(ok);
        ck_assert_int_eq(chan_idx_reserve(ci, 100), RLY_ERR_FULL);
        fail_calloc(-1);
        ck_assert_uint_eq(chan_idx_count(ci), 12);
        ck_assert_uint_eq(chan_idx_size(ci), 16);
        assert_nth(ci, 0, 12, 1);
        assert_nth(ci, 12, 13, 0);
    }
    /* Deletions and adds that need no growth still work meanwhile. */
    fail_calloc(0);
    del_nth(ci, 3);
    ck_assert_int_eq(add_nth(ci, 12), 0);
    fail_calloc(-1);
    assert_nth(ci, 3, 4, 0);
    ck_assert_int_eq(add_nth(ci, 3), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 32);
    assert_nth(ci, 0, 13, 1);
    chan_idx_free(ci);
}
END_TEST

/* --- Churn against a reference array --- */

struct ref_chan {
    int         used;
    uint32_t    chan;
    struct addr client, peer;
    uint16_t    number, port;
};

static uint64_t
next_rand(uint64_t *s)
{
    /* xorshift64*: a fixed sequence, so a failure replays. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Small pools, so that keys collide, runs wrap and deletions shift. */
static void
random_chan(uint64_t *s, struct ref_chan *r)
{
    static const char *const clients[] = {
        "198.51.100.1:5000", "198.51.100.1:5001", "198.51.100.2:5000",
        "[2001:db8::1]:5000", "[2001:db8::2]:5000", "10.0.0.1:1",
    };
    static const char *const peers[] = {
        "203.0.113.1:7000", "203.0.113.1:7001", "203.0.113.2:7000",
        "[2001:db8:1::1]:7000", "192.0.2.77:9",
    };
    uint64_t x = next_rand(s);

    r->client = A(clients[x % 6]);
    r->peer = A(peers[(x >> 8) % 5]);
    r->number = (uint16_t)(0x4000 + (x >> 16) % 12);
    r->port = (uint16_t)(50000 + (x >> 24) % 4);
    r->chan = (uint32_t)(x >> 32) % 100000;
}

static int
ref_clash(const struct ref_chan *ref, size_t n, const struct ref_chan *r)
{
    for (size_t i = 0; i < n; i++) {
        if (!ref[i].used)
            continue;
        if ((addr_eq(&ref[i].client, &r->client) &&
                ref[i].number == r->number) ||
            (addr_eq(&ref[i].peer, &r->peer) && ref[i].port == r->port))
            return 1;
    }
    return 0;
}

static void
check_against_ref(struct chan_idx *ci, const struct ref_chan *ref,
    size_t n)
{
    uint32_t used = 0;

    for (size_t i = 0; i < n; i++) {
        if (!ref[i].used)
            continue;
        used++;
        ck_assert_uint_eq(chan_idx_by_client(ci, &ref[i].client,
            ref[i].number), ref[i].chan);
        ck_assert_uint_eq(chan_idx_by_peer(ci, ref[i].port, &ref[i].peer),
            ref[i].chan);
    }
    ck_assert_uint_eq(chan_idx_count(ci), used);
}

/* The last-hit hint (chan_idx.h): a repeated lookup is answered from the
 * remembered position only while that entry still holds the key, through
 * deletion, backward shifts into the position, re-adding and growth. */
START_TEST(test_chan_idx_hint)
{
    struct chan_idx *ci = chan_idx_new(64, key);
    struct addr      c[40], p[40];
    char             s[64];

    ck_assert_ptr_nonnull(ci);
    for (int i = 0; i < 40; i++) {
        snprintf(s, sizeof(s), "198.51.100.%d:5000", i + 1);
        c[i] = A(s);
        snprintf(s, sizeof(s), "203.0.113.%d:7000", i + 1);
        p[i] = A(s);
    }
    /* 12 channels in a 16-entry table: probe runs, so deletions shift. */
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(chan_idx_add(ci, (uint32_t)i, &c[i], 0x4000,
            (uint16_t)(50000 + i), &p[i]), 0);
    ck_assert_uint_eq(chan_idx_size(ci), 16);
    for (int i = 0; i < 12; i++) {
        /* Hit, hit again from the hint; then delete: gone at once, from
         * either key, although the hint still points at its old place. */
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4000), i);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4000), i);
        ck_assert_uint_eq(chan_idx_by_peer(ci, (uint16_t)(50000 + i),
            &p[i]), i);
        chan_idx_del(ci, &c[i], 0x4000, (uint16_t)(50000 + i), &p[i]);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4000),
            CHAN_IDX_NONE);
        ck_assert_uint_eq(chan_idx_by_peer(ci, (uint16_t)(50000 + i),
            &p[i]), CHAN_IDX_NONE);
        /* Whatever shifted into the hole is still found as itself. */
        for (int j = i + 1; j < 12; j++) {
            ck_assert_uint_eq(chan_idx_by_client(ci, &c[j], 0x4000), j);
            ck_assert_uint_eq(chan_idx_by_peer(ci, (uint16_t)(50000 + j),
                &p[j]), j);
        }
        /* The same key again, now for another channel. */
        ck_assert_int_eq(chan_idx_add(ci, (uint32_t)(100 + i), &c[i],
            0x4000, (uint16_t)(50000 + i), &p[i]), 0);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4000), 100 + i);
        ck_assert_uint_eq(chan_idx_by_peer(ci, (uint16_t)(50000 + i),
            &p[i]), 100 + i);
    }
    /* Growth moves every entry; the hint is then a stale position. */
    ck_assert_uint_eq(chan_idx_by_client(ci, &c[5], 0x4000), 105);
    for (int i = 12; i < 40; i++)
        ck_assert_int_eq(chan_idx_add(ci, (uint32_t)(100 + i), &c[i],
            0x4000, (uint16_t)(50000 + i), &p[i]), 0);
    ck_assert_uint_gt(chan_idx_size(ci), 16);
    for (int i = 0; i < 40; i++) {
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4000), 100 + i);
        ck_assert_uint_eq(chan_idx_by_client(ci, &c[i], 0x4001),
            CHAN_IDX_NONE);
    }
    chan_idx_clear(ci);
    ck_assert_uint_eq(chan_idx_by_client(ci, &c[39], 0x4000), CHAN_IDX_NONE);
    chan_idx_free(ci);
}
END_TEST

static const uint32_t churn_caps[] = { 1, 5, 24, 200 };

START_TEST(test_chan_idx_churn)
{
    uint32_t         cap = churn_caps[_i];
    struct chan_idx *ci = chan_idx_new(cap, key);
    struct ref_chan  ref[200], r;
    uint64_t         s = 0x9e3779b97f4a7c15ull + _i;
    uint32_t         count = 0;

    ck_assert_ptr_nonnull(ci);
    memset(ref, 0, sizeof(ref));
    for (int op = 0; op < 100000; op++) {
        size_t   slot = (size_t)(next_rand(&s) % cap);
        int      want, rc;
        uint32_t found;

        random_chan(&s, &r);
        if (next_rand(&s) % 4 == 0 && ref[slot].client.family != ADDR_NONE)
            r = ref[slot];      /* a key held, or held before (hints) */
        switch (next_rand(&s) % 3) {
        case 0:                                 /* add */
            want = ref_clash(ref, cap, &r) ? RLY_ERR_EXISTS :
                count == cap ? RLY_ERR_FULL : 0;
            rc = chan_idx_add(ci, r.chan, &r.client, r.number, r.port,
                &r.peer);
            ck_assert_int_eq(rc, want);
            if (rc == 0) {
                for (slot = 0; ref[slot].used; slot++)
                    ;
                ref[slot] = r;
                ref[slot].used = 1;
                count++;
            }
            break;
        case 1:                                 /* delete one present */
            if (!ref[slot].used)
                break;
            chan_idx_del(ci, &ref[slot].client, ref[slot].number,
                ref[slot].port, &ref[slot].peer);
            ref[slot].used = 0;
            count--;
            break;
        default:                                /* look up a random key */
            found = CHAN_IDX_NONE;
            for (size_t i = 0; i < cap; i++) {
                if (ref[i].used && addr_eq(&ref[i].client, &r.client) &&
                    ref[i].number == r.number)
                    found = ref[i].chan;
            }
            ck_assert_uint_eq(chan_idx_by_client(ci, &r.client, r.number),
                found);
            for (size_t i = 0, n = found == CHAN_IDX_NONE; i < cap && n == 0;
                i++) {
                if (ref[i].used && ref[i].chan == found) {
                    ck_assert_uint_eq(chan_idx_by_peer(ci, ref[i].port,
                        &ref[i].peer), found);
                    n = 1;
                }
            }
            break;
        }
        ck_assert_uint_eq(chan_idx_count(ci), count);
        if (op % 997 == 0)
            check_against_ref(ci, ref, cap);
    }
    check_against_ref(ci, ref, cap);
    chan_idx_free(ci);
}
END_TEST

Suite *
chan_idx_suite(void)
{
    Suite *s = suite_create("chan_idx");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_chan_idx_add_find_del);
    tcase_add_test(tc, test_chan_idx_exists);
    tcase_add_test(tc, test_chan_idx_full);
    tcase_add_test(tc, test_chan_idx_same_number_other_client);
    tcase_add_test(tc, test_chan_idx_ignores_unused_bytes);
    tcase_add_test(tc, test_chan_idx_clear);
    tcase_add_test(tc, test_chan_idx_grows);
    tcase_add_test(tc, test_chan_idx_grows_to_cap);
    tcase_add_test(tc, test_chan_idx_reserve);
    tcase_add_test(tc, test_chan_idx_growth_fails);
    tcase_add_test(tc, test_chan_idx_hint);
    tcase_add_loop_test(tc, test_chan_idx_churn, 0,
        (int)(sizeof(churn_caps) / sizeof(churn_caps[0])));
    suite_add_tcase(s, tc);
    return s;
}
