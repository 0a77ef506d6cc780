/* atab.h - the allocation table: allocations, channels, port reservations
 * and the shared indexes, in fixed-size slots inside a region the caller
 * maps (ARCHITECTURE §3-§4).
 *
 * The region may be mapped at different addresses in different processes,
 * so nothing in it is a pointer: records refer to each other by index, and
 * outside references carry a generation (struct atab_ref).  The table code
 * never maps, opens or forks anything.
 *
 * Locking.  One process-shared robust mutex guards every change to slot
 * allocation, the free lists and the shared indexes.  Functions marked
 * "under lock" require atab_lock().  A process that takes the lock after its
 * holder died (EOWNERDEAD) repairs the table first: slots whose commit byte
 * is unset are discarded, the free lists and indexes are rebuilt from the
 * committed slots, then the mutex is marked consistent.
 *
 * Commit discipline.  A slot being created has commit 0 while its fields
 * are written and indexed; commit 1 is stored last (release).  Freeing
 * stores commit 0 first, then unlinks, clears, bumps gen and stores state
 * FREE last.  So after a crash every slot is either committed and whole or
 * uncommitted and discardable.
 *
 * Ownership.  The worker that answers an Allocate owns the allocation and
 * all its channels (alloc.owner = its worker slot).  Only the owner writes
 * an allocation's expiry and its channels' state and expiry; it may do so
 * without the lock (single aligned stores).  Any process may delete an
 * allocation (under lock; a newer allocation with the same username), which
 * only unindexes it and sets its state to DELETED; the owner then closes
 * its sockets and calls atab_alloc_release(), which frees its channels, its
 * port and its slot.  The hot path reads `state` with one atomic load. */
#ifndef RLY_ATAB_H
#define RLY_ATAB_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "peer_policy.h"
#include "turn_stats.h"

#define ATAB_NONE           UINT32_MAX
#define ATAB_MAX_WORKERS    1024
#define ATAB_USER_KEY_LEN   32      /* K of SPEC §4.1 */
#define ATAB_HASH_KEY_LEN   16      /* SipHash key of the shared indexes */
#define ATAB_UHASH_LEN      16

/* A reference to an allocation slot from outside the table.  Stale once
 * the slot is freed (its gen moves on). */
struct atab_ref {
    uint32_t idx;
    uint32_t gen;
};

enum atab_alloc_state {
    ATAB_A_FREE     = 0,
    ATAB_A_OPENING  = 1,    /* relay sockets being opened by the owner */
    ATAB_A_LIVE     = 2,
    ATAB_A_DELETED  = 3     /* unindexed; port held until released */
};

#define ATAB_FAM_V4 0x1
#define ATAB_FAM_V6 0x2

struct atab_alloc {
    uint32_t    gen;        /* bumped each time the slot is freed */
    uint32_t    state;      /* enum atab_alloc_state; atomic access */
    uint8_t     commit;     /* 1 once fully written (written last) */
    uint8_t     families;   /* ATAB_FAM_* relayed */
    uint16_t    port;       /* relay port, both families */
    uint16_t    owner;      /* worker slot */
    uint16_t    ulen;       /* USERNAME length in bytes */
    struct addr client;     /* client socket */
    struct addr local;      /* listen address the client sent to */
    uint8_t     uhash[ATAB_UHASH_LEN];  /* SPEC §4.1 keyed hash */
    uint8_t     txid[12];   /* of the creating Allocate */
    uint32_t    lifetime;   /* seconds granted by the creating Allocate */
    uint64_t    expiry;     /* monotonic ms */
    uint32_t    nchans;     /* channels, bound or cooling */
    uint32_t    chan_head;  /* first channel (atab_chan.next_alloc) */
    uint32_t    next_client, next_user, next_free;  /* chains */
};

enum atab_chan_state {
    ATAB_C_FREE     = 0,
    ATAB_C_BOUND    = 1,
    ATAB_C_COOLING  = 2
};

struct atab_chan {
    uint32_t    gen;
    uint8_t     state;      /* enum atab_chan_state */
    uint8_t     commit;
    uint16_t    number;
    uint32_t    alloc;      /* owning allocation index */
    uint32_t    alloc_gen;
    struct addr peer;
    uint64_t    expiry;     /* unbinds at expiry; deleted at expiry+300 s */
    /* Chains, all ATAB_NONE-terminated: the allocation's channel list
     * (doubly linked so that a release is O(1)), the two shared index
     * chains, and the free list. */
    uint32_t    next_alloc, prev_alloc, next_num, next_peer, next_free;
};

/* The reloadable block (SPEC §10.5), published by the master. */
struct atab_reload {
    uint32_t            error_rate;
    uint32_t            error_burst;
    uint32_t            log_level;      /* enum rly_log_level */
    struct peer_policy  policy;
};

struct atab;

/* Largest max_allocs and max_chans accepted (2^24 each). */
#define ATAB_MAX_SLOTS      (1u << 24)

/* Bytes needed for a region holding these many slots and worker slots:
 * exact, a multiple of 64.  Returns 0 when a count is 0 or above
 * ATAB_MAX_SLOTS / ATAB_MAX_WORKERS. */
size_t atab_region_size(uint32_t max_allocs, uint32_t max_chans,
    uint32_t nworkers);

/* Initialises a region (master, once, before forking); every byte of the
 * first atab_region_size() bytes is written, so the region need not be
 * zeroed.  base must be 64-byte aligned (mmap gives pages).  user_key is K
 * of SPEC §4.1, hash_key keys the shared indexes (SipHash).  The mutex is
 * process-shared and robust.  Returns 0, RLY_ERR_INVAL (a count out of
 * range, base NULL or misaligned), RLY_ERR_NOSPACE (region too small) or
 * RLY_ERR_CORRUPT (the mutex could not be initialised). */
int atab_format(void *base, size_t size, uint32_t max_allocs,
    uint32_t max_chans, uint32_t nworkers,
    const uint8_t user_key[ATAB_USER_KEY_LEN],
    const uint8_t hash_key[ATAB_HASH_KEY_LEN]);

/* Attaches to a formatted region at whatever address it is mapped (each
 * process, or each mapping, computes its own pointers).  The handle is
 * process-local and borrows base until atab_detach().  Returns 0 with *out
 * set, RLY_ERR_CORRUPT (bad magic, version, layout or size, or a misaligned
 * base) or RLY_ERR_NOMEM. */
int atab_attach(void *base, size_t size, struct atab **out);
void atab_detach(struct atab *tab);     /* NULL is fine; unmaps nothing */

/* Takes the table lock, repairing the table first if the previous holder
 * died (EOWNERDEAD: atab_repair(), then pthread_mutex_consistent()).
 * Returns 0, or RLY_ERR_CORRUPT if the mutex is unrecoverable (or locking
 * fails otherwise); the lock is not held then.  Not recursive. */
int atab_lock(struct atab *tab);
void atab_unlock(struct atab *tab);
/* Under lock: discards every slot whose commit byte is unset (and every
 * committed channel whose allocation is not committed), then rebuilds all
 * shared indexes, the allocations' channel lists and counts, the port
 * array, the free lists and the active count from the committed slots.
 * Nothing committed is lost.  Idempotent.  Called by atab_lock() on
 * EOWNERDEAD; exposed for tests.  Counts one repair. */
void atab_repair(struct atab *tab);
/* Number of repairs performed on this region (tests, logs). */
uint64_t atab_repairs(const struct atab *tab);

/* Under lock (or quiescent): verifies that every shared index, channel
 * list, free list, count and port reservation agrees with the slots, and
 * that no slot is half-written.  Read-only, O(slots + buckets + 65536).
 * Returns 0 or RLY_ERR_CORRUPT.  For tests and simulations. */
int atab_check(const struct atab *tab);

/* Test hook: fn(ud, point) is called at the enum atab_hook_point points
 * below, inside atab_alloc_create() and atab_chan_create() after the
 * slot's fields are written or indexed and before its commit store, so a
 * test can kill the process mid-update.  Stored in this process's handle
 * only; fn NULL removes it. */
enum atab_hook_point {
    ATAB_HOOK_ALLOC_WRITTEN = 1,    /* fields written, not yet indexed */
    ATAB_HOOK_ALLOC_INDEXED = 2,    /* indexed and port held, commit 0 */
    ATAB_HOOK_CHAN_WRITTEN  = 3,
    ATAB_HOOK_CHAN_INDEXED  = 4
};
void atab_set_test_hook(struct atab *tab, void (*fn)(void *ud, int point),
    void *ud);

uint32_t atab_max_allocs(const struct atab *tab);
uint32_t atab_max_chans(const struct atab *tab);
uint32_t atab_nworkers(const struct atab *tab);
/* K of SPEC §4.1, ATAB_USER_KEY_LEN bytes in the region. */
const uint8_t *atab_user_key(const struct atab *tab);
/* Free allocation and channel slots: maintained under lock, O(1). */
uint32_t atab_free_allocs(const struct atab *tab);
uint32_t atab_free_chans(const struct atab *tab);

/* Slot access by index; NULL when idx >= max.  The pointer is valid in
 * this process until atab_detach().  No lock needed to read the fields an
 * owner writes; see the ownership rules above. */
struct atab_alloc *atab_alloc_at(const struct atab *tab, uint32_t idx);
struct atab_chan *atab_chan_at(const struct atab *tab, uint32_t idx);
/* The slot ref names, or NULL when ref is stale or the slot free. */
struct atab_alloc *atab_alloc_get(const struct atab *tab, struct atab_ref ref);
/* Atomic accessors for alloc.state.  set_state moves an allocation
 * between OPENING and LIVE only (the owner, lock or not) and does nothing
 * once it is DELETED or FREE, nor for any other target state: DELETED and
 * FREE are set by atab_alloc_delete() and atab_alloc_release(), which keep
 * the indexes and atab_active() right.  A concurrent delete always wins. */
uint32_t atab_alloc_state(const struct atab_alloc *a);
void atab_alloc_set_state(struct atab_alloc *a, uint32_t state);

/* --- Lookups (under lock) ---
 * Decisions need the lock.  Without it (the owner, for a hint) a lookup
 * still ends and stays inside the table, but may miss a record while
 * another process changes a record of the same chain. */

/* Allocation (OPENING or LIVE) of a client socket, or ATAB_NONE. */
uint32_t atab_find_client(const struct atab *tab, const struct addr *client);
/* Allocation (OPENING or LIVE) with this username hash and length, or
 * ATAB_NONE. */
uint32_t atab_find_user(const struct atab *tab, const uint8_t *uhash,
    uint16_t ulen);
/* Allocation holding a port (any state but FREE), or ATAB_NONE. */
uint32_t atab_port_holder(const struct atab *tab, uint16_t port);
/* Channel of an allocation by number, or by peer (bound or cooling), or
 * ATAB_NONE.  Keyed by allocation, hence per client socket (SPEC §5.1). */
uint32_t atab_chan_find_num(const struct atab *tab, uint32_t alloc,
    uint16_t number);
uint32_t atab_chan_find_peer(const struct atab *tab, uint32_t alloc,
    const struct addr *peer);

/* Counts by scanning (no lock; exact when quiescent): allocations OPENING
 * or LIVE (capacity, SPEC §4.3), LIVE ones (the gauge), and BOUND channels
 * of LIVE allocations.  Any pointer may be NULL. */
void atab_count(const struct atab *tab, uint32_t *active, uint32_t *live,
    uint32_t *bound_chans);
/* Allocations OPENING or LIVE: maintained under lock, O(1). */
uint32_t atab_active(const struct atab *tab);

/* --- Changes (under lock) --- */

/* Creates an allocation from init (client, local, port, families, owner,
 * uhash, ulen, txid, lifetime, expiry, state OPENING or LIVE; the other
 * fields are ignored), indexes it by client, username and port, and
 * commits it.  Returns 0 with *out set, RLY_ERR_INVAL (port 0, owner >=
 * nworkers, or another state), RLY_ERR_EXISTS (port held or client already
 * has one), RLY_ERR_FULL (no free slot).  The username is indexed, not
 * checked: SPEC §4.1 "newest wins" is the caller's atab_find_user() +
 * atab_alloc_delete() before this call. */
int atab_alloc_create(struct atab *tab, const struct atab_alloc *init,
    struct atab_ref *out);
/* Moves an OPENING allocation to another port (after a bind failure).
 * Returns 0 (also when newport is its port), RLY_ERR_EXISTS when newport
 * is held, RLY_ERR_INVAL when the slot is not OPENING or newport is 0. */
int atab_alloc_move_port(struct atab *tab, uint32_t idx, uint16_t newport);
/* SPEC §4.6 steps 1-2: unindexes it (client, username), state DELETED; its
 * channels stop counting.  The port and the channel slots stay held until
 * atab_alloc_release().  Bumps the owner's kick counter so the owner
 * notices.  No-op on a FREE or DELETED slot (or idx out of range). */
void atab_alloc_delete(struct atab *tab, uint32_t idx);
/* By the owner, after its relay sockets are closed: frees the channels,
 * the port and the slot (gen bumped, so every atab_ref to it goes stale).
 * The allocation should be DELETED (or OPENING, when opening failed); a
 * LIVE one is unindexed first.  The slot's commit byte is cleared first,
 * so a release cut short by a crash is completed by atab_repair().  No-op
 * on a FREE slot. */
void atab_alloc_release(struct atab *tab, uint32_t idx);

/* Creates a BOUND channel of allocation alloc (OPENING or LIVE) with the
 * allocation's current gen in alloc_gen.  Returns 0 with *out set,
 * RLY_ERR_INVAL (alloc out of range), RLY_ERR_STALE (alloc not OPENING or
 * LIVE), RLY_ERR_EXISTS (the allocation already has a channel with this
 * number or this peer: SPEC §5.3 decides before calling), or RLY_ERR_FULL
 * (no free channel slot).  The per-client limit (4,096) is the caller's. */
int atab_chan_create(struct atab *tab, uint32_t alloc, uint16_t number,
    const struct addr *peer, uint64_t expiry, uint32_t *out);
/* Frees a channel (cool-down over): unindexed, off its allocation's list,
 * gen bumped.  No-op on a FREE slot. */
void atab_chan_release(struct atab *tab, uint32_t idx);

/* --- Shared flags, reload block, workers --- */

/* Relaying gate (SPEC §7.5): 0 until enabled, never cleared. */
int atab_ready(const struct atab *tab);
void atab_set_ready(struct atab *tab);

/* Publishes a new reloadable block (master, one publisher at a time; no
 * lock).  Double-buffered with a generation: the inactive buffer is
 * written, then the generation is bumped with a release store, so readers
 * never see a half-written block. */
void atab_reload_publish(struct atab *tab, const struct atab_reload *r);
/* Generation of the current block: one atomic load (workers poll it
 * between batches).  0 until the first publish. */
uint32_t atab_reload_gen(const struct atab *tab);
/* Copies the current block (retrying when a publish overtook the copy);
 * returns its generation.  Before the first publish: zeros, generation 0. */
uint32_t atab_reload_read(const struct atab *tab, struct atab_reload *out);

/* Per worker slot (slot < nworkers, else NULL): the worker's counters, in
 * a record of their own cache lines. */
struct turn_stats *atab_worker_stats(const struct atab *tab, uint32_t slot);
/* Incremented when another process deletes one of the slot's allocations
 * (0 for a slot out of range). */
uint64_t atab_worker_kicks(const struct atab *tab, uint32_t slot);
/* Allocation count lost by respawns (SPEC §4.3) is in the stats. */

#endif
