/* check_atab.c - the allocation table: two mappings of one region, repair
 * after a holder is killed mid-update, slot and index rules, reload block,
 * per-worker records, layout and format errors, random churn checked with
 * atab_check().  Regions come from memfd_create()/mmap(): the table code
 * itself never maps anything. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atab.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

static const uint8_t user_key[ATAB_USER_KEY_LEN] = { 0x4b, 0x4b, 0x4b };
static const uint8_t hash_key[ATAB_HASH_KEY_LEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
};

/* --- Regions --- */

static int
region_fd(size_t size)
{
    int fd = memfd_create("check_atab", MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static void *
region_map(int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

/* A formatted, attached table in an anonymous shared mapping. */
struct tab_fix {
    void        *base;
    size_t       size;
    struct atab *tab;
};

static struct atab *
fix_open(struct tab_fix *f, uint32_t nalloc, uint32_t nchan, uint32_t nwork)
{
    f->size = atab_region_size(nalloc, nchan, nwork);
    ck_assert_uint_gt(f->size, 0);
    f->base = mmap(NULL, f->size, PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(f->base, MAP_FAILED);
    ck_assert_int_eq(atab_format(f->base, f->size, nalloc, nchan, nwork,
        user_key, hash_key), 0);
    ck_assert_int_eq(atab_attach(f->base, f->size, &f->tab), 0);
    ck_assert_int_eq(atab_check(f->tab), 0);
    return f->tab;
}

static void
fix_close(struct tab_fix *f)
{
    atab_detach(f->tab);
    munmap(f->base, f->size);
}

/* --- Builders --- */

/* An Allocate's record: client, port, owner and a username (its "hash" is
 * just its first bytes; the table only compares). */
static struct atab_alloc
mk_alloc(const char *client, uint16_t port, uint16_t owner, const char *user)
{
    struct atab_alloc a;
    size_t            len = strlen(user);

    memset(&a, 0, sizeof(a));
    a.client = A(client);
    a.local = A("192.0.2.1:3478");
    a.port = port;
    a.owner = owner;
    a.families = ATAB_FAM_V4;
    a.state = ATAB_A_LIVE;
    a.ulen = (uint16_t)len;
    memcpy(a.uhash, user, len < ATAB_UHASH_LEN ? len : ATAB_UHASH_LEN);
    memset(a.txid, 0x5a, sizeof(a.txid));
    a.lifetime = 600;
    a.expiry = 600000;
    return a;
}

static uint32_t
create_ok(struct atab *tab, const char *client, uint16_t port,
    uint16_t owner, const char *user)
{
    struct atab_alloc init = mk_alloc(client, port, owner, user);
    struct atab_ref   ref;

    ck_assert_int_eq(atab_alloc_create(tab, &init, &ref), 0);
    ck_assert_ptr_nonnull(atab_alloc_get(tab, ref));
    return ref.idx;
}

static uint32_t
chan_ok(struct atab *tab, uint32_t alloc, uint16_t number, const char *peer)
{
    struct addr p = A(peer);
    uint32_t    ci = ATAB_NONE;

    ck_assert_int_eq(atab_chan_create(tab, alloc, number, &p, 1000, &ci), 0);
    ck_assert_uint_ne(ci, ATAB_NONE);
    return ci;
}

static uint32_t
find_user_str(const struct atab *tab, const char *user)
{
    struct atab_alloc a = mk_alloc("0.0.0.0:1", 1, 0, user);

    return atab_find_user(tab, a.uhash, a.ulen);
}

/* --- 1. Two mappings of one region --- */

START_TEST(test_atab_two_mappings)
{
    size_t       size = atab_region_size(16, 32, 2);
    int          fd = region_fd(size);
    void        *ma = region_map(fd, size), *mb = region_map(fd, size);
    struct atab *ta, *tb;
    struct addr  client = A("198.51.100.7:4000"), peer = A("203.0.113.5:80");
    uint32_t     ia, ia2, ci;
    uint64_t     kicks;

    ck_assert_ptr_ne(ma, mb);
    ck_assert_int_eq(atab_format(ma, size, 16, 32, 2, user_key, hash_key), 0);
    ck_assert_int_eq(atab_attach(ma, size, &ta), 0);
    ck_assert_int_eq(atab_attach(mb, size, &tb), 0);
    ck_assert_ptr_ne(atab_alloc_at(ta, 0), atab_alloc_at(tb, 0));
    ck_assert_mem_eq(atab_user_key(tb), user_key, ATAB_USER_KEY_LEN);

    ck_assert_int_eq(atab_lock(ta), 0);
    ia = create_ok(ta, "198.51.100.7:4000", 50000, 1, "alice");
    ia2 = create_ok(ta, "[2001:db8::7]:4000", 50001, 0, "bob");
    ci = chan_ok(ta, ia, 0x4000, "203.0.113.5:80");
    chan_ok(ta, ia2, 0x4000, "203.0.113.6:80");
    atab_unlock(ta);

    ck_assert_int_eq(atab_lock(tb), 0);
    ck_assert_uint_eq(atab_find_client(tb, &client), ia);
    ck_assert_uint_eq(find_user_str(tb, "alice"), ia);
    ck_assert_uint_eq(find_user_str(tb, "bob"), ia2);
    ck_assert_uint_eq(atab_port_holder(tb, 50000), ia);
    ck_assert_uint_eq(atab_port_holder(tb, 50001), ia2);
    ck_assert_uint_eq(atab_chan_find_num(tb, ia, 0x4000), ci);
    ck_assert_uint_eq(atab_chan_find_peer(tb, ia, &peer), ci);
    ck_assert(addr_eq(&atab_chan_at(tb, ci)->peer, &peer));
    ck_assert_uint_eq(atab_active(tb), 2);
    ck_assert_int_eq(atab_check(tb), 0);
    kicks = atab_worker_kicks(tb, 1);
    atab_alloc_delete(tb, ia);
    atab_unlock(tb);

    ck_assert_int_eq(atab_lock(ta), 0);
    ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(ta, ia)),
        ATAB_A_DELETED);
    ck_assert_uint_eq(atab_worker_kicks(ta, 1), kicks + 1);
    ck_assert_uint_eq(atab_find_client(ta, &client), ATAB_NONE);
    ck_assert_uint_eq(find_user_str(ta, "alice"), ATAB_NONE);
    ck_assert_uint_eq(atab_port_holder(ta, 50000), ia);
    ck_assert_uint_eq(atab_active(ta), 1);
    ck_assert_int_eq(atab_check(ta), 0);
    atab_alloc_release(ta, ia);
    atab_unlock(ta);

    ck_assert_uint_eq(atab_port_holder(tb, 50000), ATAB_NONE);
    ck_assert_uint_eq(atab_chan_find_num(tb, ia, 0x4000), ATAB_NONE);
    ck_assert_uint_eq(atab_free_chans(tb), 31);
    ck_assert_int_eq(atab_check(ta), 0);
    ck_assert_int_eq(atab_check(tb), 0);
    atab_detach(ta);
    atab_detach(tb);
    munmap(ma, size);
    munmap(mb, size);
    close(fd);
}
END_TEST

/* --- 2. Repair after the lock holder is killed mid-update --- */

struct kill_at {
    int point;
};

static void
kill_hook(void *ud, int point)
{
    const struct kill_at *k = ud;

    if (point == k->point)
        kill(getpid(), SIGKILL);
}

/* The committed records the child leaves behind. */
#define KILL_NALLOCS    4       /* the last one is DELETED, not released */
#define KILL_NCHANS     2       /* per allocation */

static const char *const kill_clients[] = {
    "198.51.100.1:1000", "198.51.100.2:1000", "[2001:db8::3]:1000",
    "198.51.100.4:1000",
};
static const char *const kill_users[] = { "u1", "u2", "u3", "u4" };
static const char *const kill_peers[] = {
    "203.0.113.1:7000", "[2001:db8:9::1]:7000",
};

static const int kill_points[] = {
    ATAB_HOOK_ALLOC_WRITTEN, ATAB_HOOK_ALLOC_INDEXED,
    ATAB_HOOK_CHAN_WRITTEN, ATAB_HOOK_CHAN_INDEXED,
};

/* In the child, through its own mapping of the region: commits the
 * records above, then dies inside one more create. */
static void
child_work(int fd, size_t size, int point)
{
    void          *base = region_map(fd, size);
    struct atab   *tab;
    struct kill_at k = { point };
    struct addr    p = A("203.0.113.200:1");
    uint32_t       idx[KILL_NALLOCS];

    if (atab_attach(base, size, &tab) != 0 || atab_lock(tab) != 0)
        _exit(2);
    for (int i = 0; i < KILL_NALLOCS; i++) {
        struct atab_alloc init = mk_alloc(kill_clients[i],
            (uint16_t)(50000 + i), (uint16_t)(i % 2), kill_users[i]);
        struct atab_ref   ref;

        if (atab_alloc_create(tab, &init, &ref) != 0)
            _exit(3);
        idx[i] = ref.idx;
        for (int c = 0; c < KILL_NCHANS; c++) {
            struct addr peer = A(kill_peers[c]);

            if (atab_chan_create(tab, ref.idx, (uint16_t)(0x4000 + c), &peer,
                    1000, NULL) != 0)
                _exit(4);
        }
    }
    atab_alloc_delete(tab, idx[KILL_NALLOCS - 1]);
    atab_set_test_hook(tab, kill_hook, &k);
    if (point == ATAB_HOOK_ALLOC_WRITTEN || point == ATAB_HOOK_ALLOC_INDEXED) {
        struct atab_alloc init = mk_alloc("198.51.100.99:1", 50099, 0, "u99");

        atab_alloc_create(tab, &init, NULL);
    } else {
        atab_chan_create(tab, idx[0], 0x4999, &p, 1000, NULL);
    }
    _exit(5);                                   /* not reached */
}

/* Every committed record is still there, through every index. */
static void
assert_committed(struct atab *tab)
{
    for (int i = 0; i < KILL_NALLOCS; i++) {
        struct addr client = A(kill_clients[i]);
        uint32_t    idx = atab_port_holder(tab, (uint16_t)(50000 + i));

        ck_assert_uint_ne(idx, ATAB_NONE);
        ck_assert(addr_eq(&atab_alloc_at(tab, idx)->client, &client));
        ck_assert_uint_eq(atab_alloc_at(tab, idx)->nchans, KILL_NCHANS);
        if (i == KILL_NALLOCS - 1) {
            ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(tab, idx)),
                ATAB_A_DELETED);
            ck_assert_uint_eq(atab_find_client(tab, &client), ATAB_NONE);
        } else {
            ck_assert_uint_eq(atab_find_client(tab, &client), idx);
            ck_assert_uint_eq(find_user_str(tab, kill_users[i]), idx);
        }
        for (int c = 0; c < KILL_NCHANS; c++) {
            struct addr peer = A(kill_peers[c]);
            uint32_t    ci = atab_chan_find_num(tab, idx,
                (uint16_t)(0x4000 + c));

            ck_assert_uint_ne(ci, ATAB_NONE);
            ck_assert_uint_eq(atab_chan_find_peer(tab, idx, &peer), ci);
            ck_assert_uint_eq(atab_chan_at(tab, ci)->state, ATAB_C_BOUND);
        }
    }
}

START_TEST(test_atab_repair_after_holder_killed)
{
    int          point = kill_points[_i];
    size_t       size = atab_region_size(8, 16, 2);
    int          fd = region_fd(size), status;
    void        *base = region_map(fd, size);
    struct atab *tab;
    struct addr  half = A("198.51.100.99:1"), p = A("203.0.113.200:1");
    pid_t        pid;
    uint32_t     a0, idx, ci;

    ck_assert_int_eq(atab_format(base, size, 8, 16, 2, user_key, hash_key), 0);
    ck_assert_int_eq(atab_attach(base, size, &tab), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        child_work(fd, size, point);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
        "child status %#x", status);

    ck_assert_uint_eq(atab_repairs(tab), 0);
    ck_assert_int_eq(atab_lock(tab), 0);        /* EOWNERDEAD, repaired */
    ck_assert_uint_eq(atab_repairs(tab), 1);
    ck_assert_int_eq(atab_check(tab), 0);
    assert_committed(tab);
    /* The half-written record is gone from every index. */
    a0 = atab_port_holder(tab, 50000);
    ck_assert_uint_eq(atab_find_client(tab, &half), ATAB_NONE);
    ck_assert_uint_eq(atab_port_holder(tab, 50099), ATAB_NONE);
    ck_assert_uint_eq(find_user_str(tab, "u99"), ATAB_NONE);
    ck_assert_uint_eq(atab_chan_find_num(tab, a0, 0x4999), ATAB_NONE);
    ck_assert_uint_eq(atab_chan_find_peer(tab, a0, &p), ATAB_NONE);
    ck_assert_uint_eq(atab_active(tab), KILL_NALLOCS - 1);
    ck_assert_uint_eq(atab_free_allocs(tab), 8 - KILL_NALLOCS);
    ck_assert_uint_eq(atab_free_chans(tab), 16 - KILL_NALLOCS * KILL_NCHANS);

    /* Fully usable: the half-written one can now be made for real. */
    idx = create_ok(tab, "198.51.100.99:1", 50099, 0, "u99");
    ci = chan_ok(tab, idx, 0x4999, "203.0.113.200:1");
    ck_assert_uint_eq(atab_chan_find_peer(tab, idx, &p), ci);
    ck_assert_int_eq(atab_check(tab), 0);
    atab_alloc_delete(tab, idx);
    atab_alloc_release(tab, idx);
    atab_alloc_release(tab, atab_port_holder(tab, 50000 + KILL_NALLOCS - 1));
    ck_assert_uint_eq(atab_free_allocs(tab), 8 - KILL_NALLOCS + 1);
    ck_assert_uint_eq(atab_free_chans(tab),
        16 - (KILL_NALLOCS - 1) * KILL_NCHANS);
    ck_assert_int_eq(atab_check(tab), 0);
    atab_unlock(tab);

    /* The next lock is an ordinary one. */
    ck_assert_int_eq(atab_lock(tab), 0);
    ck_assert_uint_eq(atab_repairs(tab), 1);
    atab_unlock(tab);
    atab_detach(tab);
    munmap(base, size);
    close(fd);
}
END_TEST

/* A repair of a healthy table changes nothing that matters. */
START_TEST(test_atab_repair_healthy_keeps_all)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 8, 8, 1);
    struct atab_alloc  init = mk_alloc("198.51.100.1:1", 50000, 0, "a");
    struct atab_ref    ref;
    struct addr        peer = A("203.0.113.1:1");
    uint32_t           ci, b;

    ck_assert_int_eq(atab_alloc_create(tab, &init, &ref), 0);
    ci = chan_ok(tab, ref.idx, 0x4000, "203.0.113.1:1");
    b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    atab_alloc_delete(tab, b);
    atab_repair(tab);
    ck_assert_uint_eq(atab_repairs(tab), 1);
    ck_assert_int_eq(atab_check(tab), 0);
    ck_assert_ptr_nonnull(atab_alloc_get(tab, ref));
    ck_assert_uint_eq(atab_chan_find_peer(tab, ref.idx, &peer), ci);
    ck_assert_uint_eq(atab_port_holder(tab, 50001), b);
    ck_assert_uint_eq(atab_active(tab), 1);
    atab_repair(tab);
    ck_assert_int_eq(atab_check(tab), 0);
    ck_assert_uint_eq(atab_free_allocs(tab), 6);
    fix_close(&f);
}
END_TEST

/* atab_check sees damage; repair discards what is uncommitted. */
START_TEST(test_atab_check_detects_damage)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 4, 4, 1);
    uint32_t           a = create_ok(tab, "198.51.100.1:1", 50000, 0, "a");
    uint32_t           b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    uint32_t           ci = chan_ok(tab, a, 0x4000, "203.0.113.1:1");
    struct atab_alloc *sa = atab_alloc_at(tab, a);
    struct atab_chan  *sc = atab_chan_at(tab, ci);

    sa->port = 50002;                           /* port array disagrees */
    ck_assert_int_eq(atab_check(tab), RLY_ERR_CORRUPT);
    sa->port = 50000;
    sc->number = 0x4001;                        /* index disagrees */
    ck_assert_int_eq(atab_check(tab), RLY_ERR_CORRUPT);
    sc->number = 0x4000;
    ck_assert_int_eq(atab_check(tab), 0);
    atab_alloc_at(tab, b)->commit = 0;          /* as if half-written */
    ck_assert_int_eq(atab_check(tab), RLY_ERR_CORRUPT);
    atab_repair(tab);
    ck_assert_int_eq(atab_check(tab), 0);
    ck_assert_uint_eq(atab_port_holder(tab, 50001), ATAB_NONE);
    ck_assert_uint_eq(atab_port_holder(tab, 50000), a);
    sa->commit = 0;                             /* its channel goes too */
    atab_repair(tab);
    ck_assert_int_eq(atab_check(tab), 0);
    ck_assert_uint_eq(atab_free_allocs(tab), 4);
    ck_assert_uint_eq(atab_free_chans(tab), 4);
    fix_close(&f);
}
END_TEST

/* --- 3. Unit behaviour --- */

static const uint32_t full_sizes[] = { 1, 2, 5, 64 };

START_TEST(test_atab_create_until_full)
{
    uint32_t        n = full_sizes[_i];
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, n, 4, 1);
    char            client[32], user[16];
    struct atab_ref ref;

    for (uint32_t i = 0; i <= n; i++) {
        struct atab_alloc init;

        snprintf(client, sizeof(client), "10.0.%u.%u:9", i / 256, i % 256);
        snprintf(user, sizeof(user), "user%u", i);
        init = mk_alloc(client, (uint16_t)(40000 + i), 0, user);
        ck_assert_int_eq(atab_alloc_create(tab, &init, &ref),
            i < n ? 0 : RLY_ERR_FULL);
        ck_assert_uint_eq(atab_free_allocs(tab), i < n ? n - i - 1 : 0);
    }
    ck_assert_uint_eq(atab_active(tab), n);
    /* A failed create left nothing behind. */
    ck_assert_uint_eq(atab_port_holder(tab, (uint16_t)(40000 + n)), ATAB_NONE);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

/* Table of create errors against one existing allocation. */
static const struct {
    const char *name, *client;
    uint16_t    port, owner;
    uint32_t    state;
    int         rc;
} create_cases[] = {
    { "port held", "198.51.100.2:1", 50000, 0, ATAB_A_LIVE,
        RLY_ERR_EXISTS },
    { "client has one", "198.51.100.1:1", 50001, 0, ATAB_A_LIVE,
        RLY_ERR_EXISTS },
    { "client has one, opening", "198.51.100.1:1", 50001, 0, ATAB_A_OPENING,
        RLY_ERR_EXISTS },
    { "port zero", "198.51.100.2:1", 0, 0, ATAB_A_LIVE, RLY_ERR_INVAL },
    { "owner too big", "198.51.100.2:1", 50001, 2, ATAB_A_LIVE,
        RLY_ERR_INVAL },
    { "state deleted", "198.51.100.2:1", 50001, 0, ATAB_A_DELETED,
        RLY_ERR_INVAL },
    { "state free", "198.51.100.2:1", 50001, 0, ATAB_A_FREE, RLY_ERR_INVAL },
    { "other client, other port", "198.51.100.2:1", 50001, 1,
        ATAB_A_OPENING, 0 },
    { "same IP, other client port", "198.51.100.1:2", 50001, 1, ATAB_A_LIVE,
        0 },
};

START_TEST(test_atab_create_errors)
{
    struct tab_fix    f;
    struct atab      *tab = fix_open(&f, 4, 4, 2);
    struct atab_alloc init;

    create_ok(tab, "198.51.100.1:1", 50000, 0, "a");
    init = mk_alloc(create_cases[_i].client, create_cases[_i].port,
        create_cases[_i].owner, "b");
    init.state = create_cases[_i].state;
    ck_assert_msg(atab_alloc_create(tab, &init, NULL) == create_cases[_i].rc,
        "%s", create_cases[_i].name);
    ck_assert_uint_eq(atab_active(tab), create_cases[_i].rc == 0 ? 2 : 1);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_set_state)
{
    struct tab_fix      f;
    struct atab        *tab = fix_open(&f, 2, 2, 1);
    struct atab_alloc   init = mk_alloc("198.51.100.1:1", 50000, 0, "a");
    struct atab_alloc  *a;
    struct atab_ref     ref;

    init.state = ATAB_A_OPENING;
    ck_assert_int_eq(atab_alloc_create(tab, &init, &ref), 0);
    a = atab_alloc_get(tab, ref);
    atab_alloc_set_state(a, ATAB_A_LIVE);
    ck_assert_uint_eq(atab_alloc_state(a), ATAB_A_LIVE);
    atab_alloc_set_state(a, ATAB_A_DELETED);    /* not this way */
    atab_alloc_set_state(a, ATAB_A_FREE);
    atab_alloc_set_state(a, 77);
    ck_assert_uint_eq(atab_alloc_state(a), ATAB_A_LIVE);
    ck_assert_uint_eq(atab_active(tab), 1);
    atab_alloc_set_state(atab_alloc_at(tab, 1), ATAB_A_LIVE);  /* FREE */
    ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(tab, 1)), ATAB_A_FREE);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_client_unique_after_delete)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 4, 4, 1);
    struct addr     c = A("198.51.100.1:1");
    uint32_t        a = create_ok(tab, "198.51.100.1:1", 50000, 0, "a"), b;

    atab_alloc_delete(tab, a);
    /* Deleted: the client may allocate again (on another port). */
    b = create_ok(tab, "198.51.100.1:1", 50001, 0, "a");
    ck_assert_uint_ne(a, b);
    ck_assert_uint_eq(atab_find_client(tab, &c), b);
    ck_assert_uint_eq(find_user_str(tab, "a"), b);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_user_lookup)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 8, 4, 1);
    uint32_t           a = create_ok(tab, "198.51.100.1:1", 50000, 0, "alice");
    uint32_t           b = create_ok(tab, "198.51.100.2:1", 50001, 0, "bob");
    struct atab_alloc  k = mk_alloc("0.0.0.0:1", 1, 0, "alice");

    ck_assert_uint_eq(find_user_str(tab, "alice"), a);
    ck_assert_uint_eq(find_user_str(tab, "bob"), b);
    ck_assert_uint_eq(find_user_str(tab, "carol"), ATAB_NONE);
    /* Same hash bytes, other length: another username. */
    ck_assert_uint_eq(atab_find_user(tab, k.uhash, (uint16_t)(k.ulen + 1)),
        ATAB_NONE);
    /* OPENING counts; DELETED does not. */
    atab_alloc_set_state(atab_alloc_at(tab, b), ATAB_A_OPENING);
    ck_assert_uint_eq(find_user_str(tab, "bob"), b);
    atab_alloc_delete(tab, a);
    ck_assert_uint_eq(find_user_str(tab, "alice"), ATAB_NONE);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_move_port)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 4, 4, 1);
    struct atab_alloc  init = mk_alloc("198.51.100.1:1", 50000, 0, "a");
    uint32_t           a, b;

    init.state = ATAB_A_OPENING;
    ck_assert_int_eq(atab_alloc_create(tab, &init, NULL), 0);
    a = atab_port_holder(tab, 50000);
    b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    ck_assert_int_eq(atab_alloc_move_port(tab, a, 50001), RLY_ERR_EXISTS);
    ck_assert_int_eq(atab_alloc_move_port(tab, a, 50000), 0);
    ck_assert_int_eq(atab_alloc_move_port(tab, a, 50002), 0);
    ck_assert_uint_eq(atab_alloc_at(tab, a)->port, 50002);
    ck_assert_uint_eq(atab_port_holder(tab, 50000), ATAB_NONE);
    ck_assert_uint_eq(atab_port_holder(tab, 50002), a);
    ck_assert_int_eq(atab_alloc_move_port(tab, b, 50003), RLY_ERR_INVAL);
    ck_assert_int_eq(atab_alloc_move_port(tab, a, 0), RLY_ERR_INVAL);
    ck_assert_int_eq(atab_alloc_move_port(tab, 99, 50003), RLY_ERR_INVAL);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_delete_keeps_port)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 4, 4, 3);
    struct addr     c = A("198.51.100.1:1");
    uint32_t        a = create_ok(tab, "198.51.100.1:1", 50000, 2, "a");
    struct atab_alloc other = mk_alloc("198.51.100.2:1", 50000, 0, "b");

    chan_ok(tab, a, 0x4000, "203.0.113.1:1");
    ck_assert_uint_eq(atab_worker_kicks(tab, 2), 0);
    atab_alloc_delete(tab, a);
    ck_assert_uint_eq(atab_worker_kicks(tab, 2), 1);
    ck_assert_uint_eq(atab_worker_kicks(tab, 0), 0);
    ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(tab, a)),
        ATAB_A_DELETED);
    ck_assert_uint_eq(atab_find_client(tab, &c), ATAB_NONE);
    ck_assert_uint_eq(atab_port_holder(tab, 50000), a);
    ck_assert_uint_eq(atab_active(tab), 0);
    ck_assert_uint_eq(atab_alloc_at(tab, a)->nchans, 1);
    ck_assert_uint_eq(atab_chan_find_num(tab, a, 0x4000) != ATAB_NONE, 1);
    /* The port is still held against everyone. */
    ck_assert_int_eq(atab_alloc_create(tab, &other, NULL), RLY_ERR_EXISTS);
    /* The owner's OPENING -> LIVE cannot undo a delete. */
    atab_alloc_set_state(atab_alloc_at(tab, a), ATAB_A_LIVE);
    ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(tab, a)),
        ATAB_A_DELETED);
    /* A second delete is a no-op: no second kick. */
    atab_alloc_delete(tab, a);
    ck_assert_uint_eq(atab_worker_kicks(tab, 2), 1);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_release_frees)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 2, 8, 1);
    struct atab_alloc  init = mk_alloc("198.51.100.1:1", 50000, 0, "a");
    struct atab_ref    ref, ref2;
    uint32_t           gen;

    ck_assert_int_eq(atab_alloc_create(tab, &init, &ref), 0);
    gen = ref.gen;
    for (uint16_t n = 0; n < 5; n++) {
        char peer[32];

        snprintf(peer, sizeof(peer), "203.0.113.%u:1", n + 1u);
        chan_ok(tab, ref.idx, (uint16_t)(0x4000 + n), peer);
    }
    ck_assert_uint_eq(atab_free_chans(tab), 3);
    atab_alloc_delete(tab, ref.idx);
    atab_alloc_release(tab, ref.idx);
    ck_assert_ptr_null(atab_alloc_get(tab, ref));
    ck_assert_uint_eq(atab_alloc_at(tab, ref.idx)->gen, gen + 1);
    ck_assert_uint_eq(atab_alloc_state(atab_alloc_at(tab, ref.idx)),
        ATAB_A_FREE);
    ck_assert_uint_eq(atab_port_holder(tab, 50000), ATAB_NONE);
    ck_assert_uint_eq(atab_free_allocs(tab), 2);
    ck_assert_uint_eq(atab_free_chans(tab), 8);
    ck_assert_uint_eq(atab_chan_find_num(tab, ref.idx, 0x4000), ATAB_NONE);
    atab_alloc_release(tab, ref.idx);           /* FREE: no-op */
    ck_assert_uint_eq(atab_alloc_at(tab, ref.idx)->gen, gen + 1);
    ck_assert_int_eq(atab_check(tab), 0);

    /* The port is free again; the slot comes back with a new gen. */
    init.port = 50000;
    ck_assert_int_eq(atab_alloc_create(tab, &init, &ref2), 0);
    ck_assert_uint_eq(ref2.idx, ref.idx);
    ck_assert_uint_ne(ref2.gen, ref.gen);
    ck_assert_ptr_null(atab_alloc_get(tab, ref));
    ck_assert_ptr_nonnull(atab_alloc_get(tab, ref2));
    /* Releasing an OPENING one (opening failed) unindexes it too. */
    atab_alloc_set_state(atab_alloc_at(tab, ref2.idx), ATAB_A_OPENING);
    atab_alloc_release(tab, ref2.idx);
    ck_assert_uint_eq(atab_active(tab), 0);
    ck_assert_uint_eq(atab_find_client(tab, &init.client), ATAB_NONE);
    ck_assert_int_eq(atab_check(tab), 0);
    ref.idx = 99;
    ck_assert_ptr_null(atab_alloc_get(tab, ref));
    ck_assert_ptr_null(atab_alloc_at(tab, 2));
    ck_assert_ptr_null(atab_chan_at(tab, 8));
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_chan_create_find_release)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 4, 8, 1);
    uint32_t           a = create_ok(tab, "198.51.100.1:1", 50000, 0, "a");
    uint32_t           b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    struct addr        p = A("203.0.113.1:1"), p2 = A("203.0.113.2:1");
    struct addr        p6 = A("[2001:db8::1]:1");
    uint32_t           c1, c2, c3, gen, out;
    struct atab_chan  *c;

    c1 = chan_ok(tab, a, 0x4000, "203.0.113.1:1");
    c = atab_chan_at(tab, c1);
    ck_assert_uint_eq(c->state, ATAB_C_BOUND);
    ck_assert_uint_eq(c->alloc, a);
    ck_assert_uint_eq(c->alloc_gen, atab_alloc_at(tab, a)->gen);
    ck_assert_uint_eq(c->expiry, 1000);
    ck_assert_uint_eq(c->commit, 1);
    /* Per client: same number (and same peer) on another allocation. */
    c2 = chan_ok(tab, b, 0x4000, "203.0.113.1:1");
    ck_assert_uint_ne(c1, c2);
    ck_assert_uint_eq(atab_chan_find_num(tab, a, 0x4000), c1);
    ck_assert_uint_eq(atab_chan_find_num(tab, b, 0x4000), c2);
    ck_assert_uint_eq(atab_chan_find_peer(tab, b, &p), c2);
    /* Within one allocation, number and peer are unique. */
    ck_assert_int_eq(atab_chan_create(tab, a, 0x4000, &p2, 1, &out),
        RLY_ERR_EXISTS);
    ck_assert_int_eq(atab_chan_create(tab, a, 0x4001, &p, 1, &out),
        RLY_ERR_EXISTS);
    c3 = chan_ok(tab, a, 0x4001, "[2001:db8::1]:1");
    ck_assert_uint_eq(atab_chan_find_peer(tab, a, &p6), c3);
    ck_assert_uint_eq(atab_alloc_at(tab, a)->nchans, 2);
    ck_assert_int_eq(atab_chan_create(tab, 99, 0x4002, &p2, 1, &out),
        RLY_ERR_INVAL);
    ck_assert_int_eq(atab_check(tab), 0);

    /* Cooling still counts as present. */
    atab_chan_at(tab, c1)->state = ATAB_C_COOLING;
    ck_assert_uint_eq(atab_chan_find_num(tab, a, 0x4000), c1);
    gen = atab_chan_at(tab, c1)->gen;
    atab_chan_release(tab, c1);
    ck_assert_uint_eq(atab_chan_at(tab, c1)->gen, gen + 1);
    ck_assert_uint_eq(atab_chan_at(tab, c1)->state, ATAB_C_FREE);
    ck_assert_uint_eq(atab_chan_find_num(tab, a, 0x4000), ATAB_NONE);
    ck_assert_uint_eq(atab_chan_find_peer(tab, a, &p), ATAB_NONE);
    ck_assert_uint_eq(atab_chan_find_num(tab, b, 0x4000), c2);
    ck_assert_uint_eq(atab_alloc_at(tab, a)->nchans, 1);
    atab_chan_release(tab, c1);                 /* FREE: no-op */
    ck_assert_uint_eq(atab_free_chans(tab), 6);
    ck_assert_int_eq(atab_check(tab), 0);
    /* The number is free again. */
    chan_ok(tab, a, 0x4000, "203.0.113.2:1");
    /* No channels on a DELETED allocation. */
    atab_alloc_delete(tab, b);
    ck_assert_int_eq(atab_chan_create(tab, b, 0x4005, &p2, 1, &out),
        RLY_ERR_STALE);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_chan_full)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 2, 3, 1);
    uint32_t        a = create_ok(tab, "198.51.100.1:1", 50000, 0, "a");
    uint32_t        b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    struct addr     p = A("203.0.113.9:9");
    uint32_t        c0;

    c0 = chan_ok(tab, a, 0x4000, "203.0.113.1:1");
    chan_ok(tab, a, 0x4001, "203.0.113.2:1");
    chan_ok(tab, b, 0x4000, "203.0.113.1:1");
    ck_assert_uint_eq(atab_free_chans(tab), 0);
    ck_assert_int_eq(atab_chan_create(tab, b, 0x4001, &p, 1, NULL),
        RLY_ERR_FULL);
    ck_assert_uint_eq(atab_chan_find_num(tab, b, 0x4001), ATAB_NONE);
    ck_assert_uint_eq(atab_alloc_at(tab, b)->nchans, 1);
    atab_chan_release(tab, c0);
    ck_assert_int_eq(atab_chan_create(tab, b, 0x4001, &p, 1, NULL), 0);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_counts)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 8, 8, 1);
    uint32_t        a = create_ok(tab, "198.51.100.1:1", 50000, 0, "a");
    uint32_t        b = create_ok(tab, "198.51.100.2:1", 50001, 0, "b");
    uint32_t        c = create_ok(tab, "198.51.100.3:1", 50002, 0, "c");
    uint32_t        active, live, bound, cool;

    atab_alloc_set_state(atab_alloc_at(tab, b), ATAB_A_OPENING);
    chan_ok(tab, a, 0x4000, "203.0.113.1:1");
    cool = chan_ok(tab, a, 0x4001, "203.0.113.2:1");
    atab_chan_at(tab, cool)->state = ATAB_C_COOLING;
    chan_ok(tab, b, 0x4000, "203.0.113.1:1");   /* OPENING: not counted */
    chan_ok(tab, c, 0x4000, "203.0.113.1:1");
    atab_count(tab, &active, &live, &bound);
    ck_assert_uint_eq(active, 3);
    ck_assert_uint_eq(live, 2);
    ck_assert_uint_eq(bound, 2);
    ck_assert_uint_eq(atab_active(tab), 3);
    atab_alloc_delete(tab, c);                  /* its channel stops too */
    atab_count(tab, &active, &live, &bound);
    ck_assert_uint_eq(active, 2);
    ck_assert_uint_eq(live, 1);
    ck_assert_uint_eq(bound, 1);
    ck_assert_uint_eq(atab_active(tab), 2);
    atab_count(tab, NULL, NULL, NULL);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_reload_block)
{
    struct tab_fix      f;
    struct atab        *tab = fix_open(&f, 1, 1, 1);
    struct atab_reload  r, got;

    memset(&got, 0xee, sizeof(got));
    ck_assert_uint_eq(atab_reload_gen(tab), 0);
    ck_assert_uint_eq(atab_reload_read(tab, &got), 0);
    ck_assert_uint_eq(got.error_rate, 0);
    for (uint32_t i = 1; i <= 5; i++) {
        memset(&r, 0, sizeof(r));
        r.error_rate = 100 * i;
        r.error_burst = i;
        r.log_level = i % 3;
        r.policy.nallow = i;
        r.policy.allow[i].len = (uint8_t)i;
        atab_reload_publish(tab, &r);
        ck_assert_uint_eq(atab_reload_gen(tab), i);
        ck_assert_uint_eq(atab_reload_read(tab, &got), i);
        ck_assert_mem_eq(&got, &r, sizeof(r));
    }
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_ready_flag)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 1, 1, 1);
    struct atab    *t2;

    ck_assert_int_eq(atab_ready(tab), 0);
    atab_set_ready(tab);
    ck_assert_int_eq(atab_ready(tab), 1);
    ck_assert_int_eq(atab_attach(f.base, f.size, &t2), 0);
    ck_assert_int_eq(atab_ready(t2), 1);
    atab_set_ready(t2);
    ck_assert_int_eq(atab_ready(tab), 1);
    atab_detach(t2);
    atab_detach(NULL);
    fix_close(&f);
}
END_TEST

START_TEST(test_atab_worker_records)
{
    struct tab_fix     f;
    struct atab       *tab = fix_open(&f, 1, 1, 5);
    struct turn_stats *s[5];

    ck_assert_uint_eq(atab_nworkers(tab), 5);
    ck_assert_uint_eq(atab_max_allocs(tab), 1);
    ck_assert_uint_eq(atab_max_chans(tab), 1);
    for (uint32_t i = 0; i < 5; i++) {
        s[i] = atab_worker_stats(tab, i);
        ck_assert_ptr_nonnull(s[i]);
        ck_assert_uint_eq((uintptr_t)s[i] % 64, 0);
        ck_assert((char *)s[i] >= (char *)f.base &&
            (char *)(s[i] + 1) <= (char *)f.base + f.size);
        for (uint32_t j = 0; j < i; j++)
            ck_assert((char *)s[j] + sizeof(struct turn_stats) <=
                (char *)s[i]);
        ck_assert_uint_eq(atab_worker_kicks(tab, i), 0);
    }
    TURN_STAT_INC(s[3]->allocations_lost);
    ck_assert_uint_eq(s[3]->allocations_lost, 1);
    ck_assert_uint_eq(s[2]->allocations_lost, 0);
    ck_assert_uint_eq(s[4]->allocations_lost, 0);
    ck_assert_uint_eq(atab_worker_kicks(tab, 3), 0);
    ck_assert_ptr_null(atab_worker_stats(tab, 5));
    ck_assert_uint_eq(atab_worker_kicks(tab, 5), 0);
    fix_close(&f);
}
END_TEST

/* --- Layout and format errors --- */

START_TEST(test_atab_region_size)
{
    size_t base = atab_region_size(1024, 1024, 4);
    size_t per_alloc = (atab_region_size(2048, 1024, 4) - base) / 1024;
    size_t per_chan = (atab_region_size(1024, 2048, 4) - base) / 1024;

    ck_assert_uint_le(per_alloc, 512);
    ck_assert_uint_le(per_chan, 128);
    /* Worst case of the power-of-two bucket rounding: 2^k + 1 slots. */
    ck_assert_uint_le((atab_region_size(2049, 1024, 4) -
        atab_region_size(1, 1024, 4)) / 2048, 512);
    ck_assert_uint_le((atab_region_size(1024, 2049, 4) -
        atab_region_size(1024, 1, 4)) / 2048, 128);
    ck_assert_uint_eq(base % 64, 0);
    ck_assert_uint_eq(atab_region_size(7, 13, 3) % 64, 0);
    ck_assert_uint_eq(atab_region_size(0, 1, 1), 0);
    ck_assert_uint_eq(atab_region_size(1, 0, 1), 0);
    ck_assert_uint_eq(atab_region_size(1, 1, 0), 0);
    ck_assert_uint_eq(atab_region_size(1, 1, ATAB_MAX_WORKERS + 1), 0);
    ck_assert_uint_eq(atab_region_size(ATAB_MAX_SLOTS + 1, 1, 1), 0);
    ck_assert_uint_gt(atab_region_size(1, 1, ATAB_MAX_WORKERS), 0);
    fprintf(stderr, "atab: %zu bytes per allocation, %zu per channel "
        "(1024 -> 2048 slots); region for 16384/65536/8: %zu bytes\n",
        per_alloc, per_chan, atab_region_size(16384, 65536, 8));
}
END_TEST

START_TEST(test_atab_format_errors)
{
    size_t       size = atab_region_size(4, 4, 1);
    void        *base = mmap(NULL, size + 4096, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct atab *tab;

    ck_assert_ptr_ne(base, MAP_FAILED);
    ck_assert_int_eq(atab_format(base, size - 1, 4, 4, 1, user_key,
        hash_key), RLY_ERR_NOSPACE);
    ck_assert_int_eq(atab_format(base, size, 0, 4, 1, user_key, hash_key),
        RLY_ERR_INVAL);
    ck_assert_int_eq(atab_format(base, size, 4, 0, 1, user_key, hash_key),
        RLY_ERR_INVAL);
    ck_assert_int_eq(atab_format(base, size, 4, 4, 0, user_key, hash_key),
        RLY_ERR_INVAL);
    ck_assert_int_eq(atab_format((char *)base + 8, size, 4, 4, 1, user_key,
        hash_key), RLY_ERR_INVAL);
    ck_assert_int_eq(atab_format(NULL, size, 4, 4, 1, user_key, hash_key),
        RLY_ERR_INVAL);

    /* Garbage, or nothing formatted yet. */
    memset(base, 0xa5, size);
    ck_assert_int_eq(atab_attach(base, size, &tab), RLY_ERR_CORRUPT);
    memset(base, 0, size);
    ck_assert_int_eq(atab_attach(base, size, &tab), RLY_ERR_CORRUPT);

    /* Formatted (the exact size is enough), then damaged header fields. */
    ck_assert_int_eq(atab_format(base, size, 4, 4, 1, user_key, hash_key), 0);
    ck_assert_int_eq(atab_attach(base, size - 1, &tab), RLY_ERR_CORRUPT);
    ck_assert_int_eq(atab_attach(base, 16, &tab), RLY_ERR_CORRUPT);
    ck_assert_int_eq(atab_attach((char *)base + 64, size, &tab),
        RLY_ERR_CORRUPT);
    for (size_t off = 0; off < 112; off += 4) {
        uint32_t *w = (uint32_t *)((char *)base + off), saved = *w;

        /* Every word of magic, version, counts and offsets (the header's
         * first 112 bytes, before the keys) is checked. */
        *w ^= 0x10;
        ck_assert_msg(atab_attach(base, size + 4096, &tab) == RLY_ERR_CORRUPT,
            "header word at %zu", off);
        *w = saved;
    }
    ck_assert_int_eq(atab_attach(base, size, &tab), 0);
    ck_assert_int_eq(atab_check(tab), 0);
    atab_detach(tab);
    munmap(base, size + 4096);
}
END_TEST

/* --- Random churn, checked after every operation --- */

static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* What a create must answer, found by scanning the slots. */
static int
expect_create(const struct atab *tab, const struct atab_alloc *init)
{
    for (uint32_t i = 0; i < atab_max_allocs(tab); i++) {
        const struct atab_alloc *a = atab_alloc_at(tab, i);
        uint32_t                 st = atab_alloc_state(a);

        if (st != ATAB_A_FREE && a->port == init->port)
            return RLY_ERR_EXISTS;
        if ((st == ATAB_A_OPENING || st == ATAB_A_LIVE) &&
            addr_eq(&a->client, &init->client))
            return RLY_ERR_EXISTS;
    }
    return atab_free_allocs(tab) == 0 ? RLY_ERR_FULL : 0;
}

/* What a channel create must answer, found by scanning the slots. */
static int
expect_chan(const struct atab *tab, uint32_t alloc, uint16_t number,
    const struct addr *peer)
{
    uint32_t st = atab_alloc_state(atab_alloc_at(tab, alloc));

    if (st != ATAB_A_OPENING && st != ATAB_A_LIVE)
        return RLY_ERR_STALE;
    for (uint32_t i = 0; i < atab_max_chans(tab); i++) {
        const struct atab_chan *c = atab_chan_at(tab, i);

        if (c->state != ATAB_C_FREE && c->alloc == alloc &&
            (c->number == number || addr_eq(&c->peer, peer)))
            return RLY_ERR_EXISTS;
    }
    return atab_free_chans(tab) == 0 ? RLY_ERR_FULL : 0;
}

enum { CHURN_ALLOC_OK, CHURN_ALLOC_FULL, CHURN_ALLOC_EXISTS, CHURN_CHAN_OK,
    CHURN_CHAN_FULL, CHURN_CHAN_EXISTS, CHURN_CHAN_STALE, CHURN_N };

/* One random operation; counts its outcome in seen[]. */
static void
churn_step(struct atab *tab, uint64_t *s, unsigned seen[CHURN_N])
{
    uint64_t    x = next_rand(s);
    uint32_t    idx = (uint32_t)(x >> 32) % atab_max_allocs(tab);
    uint32_t    cidx = (uint32_t)(x >> 40) % atab_max_chans(tab);
    uint16_t    number = (uint16_t)(0x4000 + (x >> 28) % 6);
    char        client[32], user[8], peer[32];
    struct addr p;
    int         want, rc;

    snprintf(client, sizeof(client), "10.0.0.%u:%u",
        (unsigned)(x >> 8) % 4, 1 + (unsigned)(x >> 12) % 6);
    snprintf(user, sizeof(user), "u%u", (unsigned)(x >> 16) % 5);
    snprintf(peer, sizeof(peer), "203.0.113.%u:1", (unsigned)(x >> 20) % 5);
    p = A(peer);
    switch (x % 7) {
    case 0:
    case 1: {
        struct atab_alloc init = mk_alloc(client,
            (uint16_t)(50000 + (x >> 24) % 40), (uint16_t)((x >> 4) % 2),
            user);

        want = expect_create(tab, &init);
        ck_assert_int_eq(atab_alloc_create(tab, &init, NULL), want);
        seen[want == 0 ? CHURN_ALLOC_OK : want == RLY_ERR_FULL ?
            CHURN_ALLOC_FULL : CHURN_ALLOC_EXISTS]++;
        break;
    }
    case 2:
        atab_alloc_delete(tab, idx);
        break;
    case 3:
        atab_alloc_release(tab, idx);
        break;
    case 4:
    case 5:
        want = expect_chan(tab, idx, number, &p);
        rc = atab_chan_create(tab, idx, number, &p, 1, NULL);
        ck_assert_int_eq(rc, want);
        seen[rc == 0 ? CHURN_CHAN_OK : rc == RLY_ERR_FULL ? CHURN_CHAN_FULL :
            rc == RLY_ERR_EXISTS ? CHURN_CHAN_EXISTS : CHURN_CHAN_STALE]++;
        break;
    default:
        atab_chan_release(tab, cidx);
        break;
    }
}

START_TEST(test_atab_random_churn)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 12, 10, 2);
    uint64_t        s = 0x1234567887654321ull;
    unsigned        seen[CHURN_N] = { 0 };

    for (int op = 0; op < 20000; op++) {
        churn_step(tab, &s, seen);
        ck_assert_int_eq(atab_check(tab), 0);
        if (op % 1000 == 999) {
            atab_repair(tab);
            ck_assert_int_eq(atab_check(tab), 0);
        }
    }
    for (int i = 0; i < CHURN_N; i++)
        ck_assert_msg(seen[i] > 0, "outcome %d never reached", i);
    fix_close(&f);
}
END_TEST

/* --- Several processes --- */

#define CONTEND_PROCS   4
#define CONTEND_ROUNDS  20000

/* Each child creates and releases its own allocations under the lock and
 * bumps a plain (non-atomic) counter under it: any overlap of two holders
 * would lose increments.  They start together: the ready flag is the
 * starting gun. */
static void
contend_child(void *base, size_t size, int id)
{
    struct atab       *tab;
    struct turn_stats *st;
    struct addr        p = A("203.0.113.1:1");
    char               client[32];

    if (atab_attach(base, size, &tab) != 0)
        _exit(2);
    st = atab_worker_stats(tab, 0);
    while (!atab_ready(tab))
        ;
    for (int i = 0; i < CONTEND_ROUNDS; i++) {
        struct atab_alloc init;
        struct atab_ref   ref;

        snprintf(client, sizeof(client), "10.1.%d.%d:%d", id, i % 200,
            1 + i);
        init = mk_alloc(client, (uint16_t)(40000 + id * 100 + i % 100),
            (uint16_t)id, client);
        if (atab_lock(tab) != 0)
            _exit(3);
        if (atab_alloc_create(tab, &init, &ref) != 0 ||
            atab_chan_create(tab, ref.idx, 0x4000, &p, 1, NULL) != 0)
            _exit(4);
        st->size_sum = st->size_sum + 1;
        atab_unlock(tab);
        if (atab_lock(tab) != 0)
            _exit(3);
        atab_alloc_delete(tab, ref.idx);
        atab_alloc_release(tab, ref.idx);
        st->size_sum = st->size_sum + 1;
        atab_unlock(tab);
    }
    atab_detach(tab);
    _exit(0);
}

START_TEST(test_atab_processes_contend)
{
    struct tab_fix  f;
    struct atab    *tab = fix_open(&f, 8, 8, CONTEND_PROCS);
    pid_t           pid[CONTEND_PROCS];
    int             status;

    for (int i = 0; i < CONTEND_PROCS; i++) {
        pid[i] = fork();
        ck_assert_int_ge(pid[i], 0);
        if (pid[i] == 0)
            contend_child(f.base, f.size, i);
    }
    atab_set_ready(tab);
    for (int i = 0; i < CONTEND_PROCS; i++) {
        ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "child %d status %#x", i, status);
    }
    ck_assert_uint_eq(atab_worker_stats(tab, 0)->size_sum,
        2 * CONTEND_PROCS * CONTEND_ROUNDS);
    ck_assert_uint_eq(atab_repairs(tab), 0);
    ck_assert_uint_eq(atab_free_allocs(tab), 8);
    ck_assert_uint_eq(atab_free_chans(tab), 8);
    for (int i = 0; i < CONTEND_PROCS; i++)
        ck_assert_uint_eq(atab_worker_kicks(tab, (uint32_t)i),
            CONTEND_ROUNDS);
    ck_assert_int_eq(atab_check(tab), 0);
    fix_close(&f);
}
END_TEST

#define RELOAD_PUBLISHES 200000

/* Block number i: every field derived from i, so a torn copy shows. */
static void
mk_reload(struct atab_reload *r, uint32_t i)
{
    memset(r, (int)(i & 0xff), sizeof(*r));
    r->error_rate = i;
    r->error_burst = i;
    r->log_level = i;
    r->policy.nallow = i;
}

START_TEST(test_atab_reload_concurrent)
{
    struct tab_fix      f;
    struct atab        *tab = fix_open(&f, 1, 1, 1);
    struct atab_reload  got, want;
    uint32_t            gen = 0, reads = 0;
    pid_t               pid;
    int                 status;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        for (uint32_t i = 1; i <= RELOAD_PUBLISHES; i++) {
            mk_reload(&want, i);
            atab_reload_publish(tab, &want);
        }
        _exit(0);
    }
    while (gen < RELOAD_PUBLISHES) {
        gen = atab_reload_read(tab, &got);
        reads++;
        if (gen == 0)
            continue;
        mk_reload(&want, gen);
        ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0,
            "torn block at generation %u", gen);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_gt(reads, 0);
    fix_close(&f);
}
END_TEST

Suite *
atab_suite(void)
{
    Suite *s = suite_create("atab");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_atab_two_mappings);
    tcase_add_loop_test(tc, test_atab_repair_after_holder_killed, 0,
        (int)(sizeof(kill_points) / sizeof(kill_points[0])));
    tcase_add_test(tc, test_atab_repair_healthy_keeps_all);
    tcase_add_test(tc, test_atab_check_detects_damage);
    tcase_add_loop_test(tc, test_atab_create_until_full, 0,
        (int)(sizeof(full_sizes) / sizeof(full_sizes[0])));
    tcase_add_loop_test(tc, test_atab_create_errors, 0,
        (int)(sizeof(create_cases) / sizeof(create_cases[0])));
    tcase_add_test(tc, test_atab_set_state);
    tcase_add_test(tc, test_atab_client_unique_after_delete);
    tcase_add_test(tc, test_atab_user_lookup);
    tcase_add_test(tc, test_atab_move_port);
    tcase_add_test(tc, test_atab_delete_keeps_port);
    tcase_add_test(tc, test_atab_release_frees);
    tcase_add_test(tc, test_atab_chan_create_find_release);
    tcase_add_test(tc, test_atab_chan_full);
    tcase_add_test(tc, test_atab_counts);
    tcase_add_test(tc, test_atab_reload_block);
    tcase_add_test(tc, test_atab_ready_flag);
    tcase_add_test(tc, test_atab_worker_records);
    tcase_add_test(tc, test_atab_region_size);
    tcase_add_test(tc, test_atab_format_errors);
    tcase_add_test(tc, test_atab_random_churn);
    tcase_add_test(tc, test_atab_processes_contend);
    tcase_add_test(tc, test_atab_reload_concurrent);
    suite_add_tcase(s, tc);
    return s;
}
