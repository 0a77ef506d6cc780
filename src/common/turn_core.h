/* turn_core.h - the TURN/STUN core: every protocol rule of SPEC §2-§6 as a
 * pure, synchronous state machine.
 *
 * No clock, socket or sleep; no allocation and no lock on the ChannelData
 * path.  Inputs are datagrams, relay-open results and timer ticks, each with
 * `now` (monotonic ms) supplied by the caller; outputs are commands
 * appended to a struct turn_cmdq (turn_cmd.h), which the worker performs in
 * order.  One core per worker; the allocation table (atab.h) is shared.
 * See docs/core.md for the contract in prose. */
#ifndef RLY_TURN_CORE_H
#define RLY_TURN_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "atab.h"
#include "peer_policy.h"
#include "rly_log.h"
#include "rly_rand.h"
#include "turn_cmd.h"
#include "turn_stats.h"

typedef uint64_t turn_ms_t;             /* monotonic ms, supplied by caller */
#define TURN_NEVER UINT64_MAX           /* no deadline */

#define TURN_DEFAULT_LIFETIME   600     /* s, SPEC §4.2 */
#define TURN_MAX_LIFETIME       3600
#define TURN_CHANNEL_LIFETIME   600     /* s, SPEC §5.2 */
#define TURN_CHANNEL_COOLDOWN   300
#define TURN_MAX_CHANS_PER_CLIENT 4096
#define TURN_BIND_ATTEMPTS      8       /* SPEC §4.3 */

struct turn_conf {
    /* Relayed addresses (SPEC §4.4): family ADDR_NONE when not set. */
    struct addr     public4, public6;
    uint16_t        listen_port;
    uint16_t        port_min, port_max;     /* relay range, inclusive */
    uint32_t        max_allocs;             /* limits.max_allocations */
    uint32_t        nonce_table_size;
    uint32_t        error_rate, error_burst;    /* reloadable */
    const struct peer_policy *policy;       /* copied; reloadable */
    const char     *secret;                 /* copied */
    const char     *software;               /* SOFTWARE value, copied */
    uint16_t        worker;                 /* this worker's slot */
    struct turn_stats *stats;               /* borrowed for the core's life */
    rly_rand_fn     rand;                   /* nonces, ports */
    void           *rand_ud;
    struct rly_logger log;                  /* copied */
    /* 1: drop every client datagram (not_ready) until atab_ready() says
     * the master opened the relaying gate (SPEC §7.5); checked with one
     * atomic load per datagram until it is seen open.  0: no gate. */
    int             gated;
};

struct turn_core;

/* Creates a worker's core over the shared table.  Returns NULL when out of
 * memory or conf is invalid. */
struct turn_core *turn_core_new(const struct turn_conf *conf, struct atab *tab);
void turn_core_free(struct turn_core *core);        /* NULL is fine */

/* Switches to a new reloadable block (SPEC §10.5); call between batches. */
void turn_core_reload(struct turn_core *core, const struct peer_policy *policy,
    uint32_t error_rate, uint32_t error_burst, enum rly_log_level level);

/* A datagram from a client (path.remote) on a listen socket (path.local is
 * the address it was sent to).  wall_s: Unix seconds, for credential expiry
 * only.  Returns 0 when consumed (STUN errors included), or RLY_ERR_DROP
 * with *drop set (the core has counted it), or a fatal code.  buf must stay
 * valid until the queued commands are carried out.  Needs
 * turn_cmdq_room(out). */
int turn_core_on_client(struct turn_core *core, const struct addr_path *path,
    const uint8_t *buf, size_t len, turn_ms_t now, uint64_t wall_s,
    struct turn_cmdq *out, enum turn_drop *drop);

/* A run of datagrams from one client (a UDP GRO message): datagrams of
 * seg bytes one after another at buf, total bytes in all, the last
 * possibly shorter.  The same as turn_core_on_client() for each datagram
 * in turn (commands, counters, drops), except that consecutive ChannelData
 * relayed on one channel with one payload length (the last may be
 * shorter) become one SEND_PEER command with nseg > 1, of at most
 * TURN_RUN_MAX datagrams and TURN_RUN_BYTES payload bytes (what one GSO
 * send can carry).  The channel and allocation checks are made for the
 * first datagram of such a command; the rest share the batch's `now`.
 * Processes datagrams while the queue has room for another core call,
 * at least one; *used says how many bytes.  Returns 0, or a fatal code. */
#define TURN_RUN_MAX        64
#define TURN_RUN_BYTES      65000
int turn_core_on_client_run(struct turn_core *core,
    const struct addr_path *path, const uint8_t *buf, size_t seg,
    size_t total, turn_ms_t now, uint64_t wall_s, struct turn_cmdq *out,
    size_t *used);

/* A datagram from peer on relay port `port` of allocation ref.  Same
 * returns as turn_core_on_client(). */
int turn_core_on_peer(struct turn_core *core, struct atab_ref ref,
    uint16_t port, const struct addr *peer, const uint8_t *buf, size_t len,
    turn_ms_t now, struct turn_cmdq *out, enum turn_drop *drop);

/* Result of a TURN_CMD_RELAY_OPEN: ok = 1 when every family bound.  On a
 * failure the core moves to the next port (a new RELAY_OPEN) or, after
 * TURN_BIND_ATTEMPTS ports, answers 508; for a re-adopted allocation it
 * deletes it and counts it lost.  err_text names the OS error for logs
 * (may be NULL). */
int turn_core_on_relay_opened(struct turn_core *core, struct atab_ref ref,
    int ok, const char *err_text, turn_ms_t now, struct turn_cmdq *out);

/* Timer run (SPEC §6): expired allocations, channel unbinds and cool-down
 * ends, plus allocations of this worker deleted by another process.
 * Returns 0, or 1 when it stopped because the queue was full (flush and
 * call again). */
int turn_core_on_timer(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out);

/* Earliest time at which turn_core_on_timer() has work, or TURN_NEVER.
 * Deletions by other processes are not foreseen: the worker also calls
 * turn_core_on_timer() at least once a second. */
turn_ms_t turn_core_next_deadline(const struct turn_core *core);

/* After a respawn: takes over the allocations the table lists for this
 * worker slot (SPEC §8): LIVE ones get a RELAY_OPEN (on failure: deleted,
 * logged at warn, counted in allocations_lost), OPENING and DELETED ones are
 * released; the local channel index is rebuilt.  Returns 0 when done, 1 when
 * the queue filled (flush and call again), RLY_ERR_NOMEM when the channel
 * index cannot grow for the next allocation's channels (that allocation
 * and the rest stay in the table, untouched, for the next worker), or
 * RLY_ERR_CORRUPT. */
int turn_core_adopt(struct turn_core *core, turn_ms_t now,
    struct turn_cmdq *out);

/* Relay sockets a worker must hold: for its tests and metrics. */
uint32_t turn_core_owned(const struct turn_core *core);

#endif
