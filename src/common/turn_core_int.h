/* turn_core_int.h - state shared by the core's files (turn_core.c: demux,
 * STUN requests, auth, responses, timers; turn_alloc.c: allocations;
 * turn_chan.c: channels and the ChannelData path).  Not for other
 * modules. */
#ifndef RLY_TURN_CORE_INT_H
#define RLY_TURN_CORE_INT_H

#include "atab.h"
#include "auth.h"
#include "chan_idx.h"
#include "stun_msg.h"
#include "turn_core.h"
#include "turn_timer.h"

#define TURN_SECRET_MAX     255
#define TURN_SOFTWARE_MAX   127

/* Why an allocation of ours is OPENING: a client's Allocate (answer when
 * the sockets are bound) or a re-adoption after a respawn. */
enum turn_pend_kind {
    TURN_PEND_NONE = 0,
    TURN_PEND_ALLOCATE,
    TURN_PEND_ADOPT
};

struct turn_pend {
    uint8_t     kind;           /* enum turn_pend_kind */
    uint8_t     attempts;       /* ports tried so far */
    uint8_t     fingerprint;    /* the request carried FINGERPRINT */
    uint8_t     key[16];        /* the request's long-term key */
    uint8_t     txid[STUN_TXID_LEN];
};

struct turn_core {
    struct atab        *tab;
    struct chan_idx    *ci;
    struct auth_nonces *nonces;
    struct auth_ratelim *rl;
    struct turn_pend   *pend;       /* [max_allocs] */
    struct turn_timer   alloc_timer;    /* alloc idx -> expiry */
    struct turn_timer   chan_timer;     /* chan idx -> unbind or delete */
    struct turn_stats  *stats;
    struct peer_policy  policy;
    struct rly_logger   log;
    rly_rand_fn         rand;
    void               *rand_ud;
    struct addr         public4, public6;
    uint16_t            listen_port, port_min, port_max;
    uint16_t            worker;
    uint32_t            capacity;       /* SPEC §4.3 */
    uint32_t            error_rate, error_burst;
    uint64_t            kicks_seen;
    uint32_t            owned;          /* allocations we own */
    uint32_t            adopt_cursor;
    int                 gated, ready;
    char                secret[TURN_SECRET_MAX + 1];
    char                software[TURN_SOFTWARE_MAX + 1];
    size_t              software_len;
};

/* One STUN request being handled. */
struct turn_req {
    const struct addr_path *path;
    struct stun_msg         m;
    enum turn_msgtype       mt;
    turn_ms_t               now;
    uint64_t                wall_s;
    struct turn_cmdq       *out;
    enum turn_drop         *drop;
    int                     fingerprint;    /* request carried one */
    int                     have_key;       /* key derived (signed replies) */
    uint8_t                 key[16];
};

/* --- turn_core.c --- */
int turn_core_drop(struct turn_core *core, enum turn_drop reason,
    enum turn_drop *drop);
/* Runs SPEC §3.6; returns 1 when authenticated (req->key set), 0 when a
 * response or drop was produced (the caller returns *rc). */
int turn_core_auth(struct turn_core *core, struct turn_req *req, int *rc);
/* Responses.  Each returns 0 or RLY_ERR_DROP (counted). */
int turn_core_unauth_400(struct turn_core *core, struct turn_req *req);
int turn_core_error(struct turn_core *core, struct turn_req *req,
    unsigned code);
/* A success with no attributes but SOFTWARE [+ MI] [+ FP]; lifetime >= 0
 * adds LIFETIME. */
int turn_core_success(struct turn_core *core, struct turn_req *req,
    long lifetime);
/* The Allocate success (SPEC §2.7) for allocation a. */
int turn_core_allocate_success(struct turn_core *core,
    const struct addr_path *path, const uint8_t txid[STUN_TXID_LEN],
    const uint8_t key[16], int fingerprint, const struct atab_alloc *a,
    struct turn_cmdq *out);
void turn_core_count(struct turn_core *core, enum turn_msgtype mt,
    unsigned code);

/* --- turn_alloc.c --- */
int turn_alloc_allocate(struct turn_core *core, struct turn_req *req);
int turn_alloc_refresh(struct turn_core *core, struct turn_req *req);
/* The allocation of a client socket that is alive at now (OPENING or LIVE,
 * expiry > now), expiring ours on the spot when due; ATAB_NONE if none. */
uint32_t turn_alloc_find(struct turn_core *core, const struct addr *client,
    turn_ms_t now, struct turn_cmdq *out);
/* Deletes an allocation we own (SPEC §4.6): RELAY_CLOSE, channels, slot.
 * Takes the lock unless locked is set. */
void turn_alloc_delete_own(struct turn_core *core, uint32_t idx,
    struct turn_cmdq *out, int locked);
/* Timer step 1 and remote deletions.  Return 1 when the queue filled. */
int turn_alloc_expire(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out);
int turn_alloc_reap_kicked(struct turn_core *core, struct turn_cmdq *out);

/* --- turn_chan.c --- */
int turn_chan_bind(struct turn_core *core, struct turn_req *req);
int turn_chan_from_client(struct turn_core *core,
    const struct addr_path *path, const uint8_t *buf, size_t len,
    turn_ms_t now, struct turn_cmdq *out, enum turn_drop *drop);
/* Timer steps 2-3.  Returns 1 when the queue filled. */
int turn_chan_expire(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out);
/* Forgets the local state (index, timer) of one channel of ours. */
void turn_chan_forget(struct turn_core *core, uint32_t chan);
/* Re-adds a channel found in the table after a respawn. */
void turn_chan_adopt(struct turn_core *core, uint32_t chan);
/* Deadline of a channel: unbind time when bound, deletion when cooling. */
uint64_t turn_chan_deadline(const struct atab_chan *c);

#endif
