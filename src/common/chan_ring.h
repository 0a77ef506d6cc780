/* chan_ring.h - a single-producer, single-consumer ring of channel events
 * in shared memory: how a worker tells the master which channels it bound
 * and unbound, so that the master, the one process that may update the
 * XDP maps (SPEC §10.5), mirrors them (docs/xdp.md).
 *
 * One ring per worker slot.  The worker is the only producer and never
 * waits: chan_ring_push() copies one fixed-size record or, when the ring
 * is full, drops it and counts the loss; the master then rebuilds its
 * mirror from the shared table.  The master is the only consumer.  A ring
 * outlives its worker: a respawned worker goes on producing where the
 * dead one stopped (a record it had not published is simply absent).
 *
 * Memory: the ring is a plain struct in memory the caller maps (shared
 * between the processes, before the fork) and formats with
 * chan_ring_init(); it holds no pointer, so any mapping address works.
 * head and tail are free-running 64-bit counters on cache lines of their
 * own; the producer publishes a record with a release store of head and
 * the consumer frees slots with a release store of tail. */
#ifndef RLY_CHAN_RING_H
#define RLY_CHAN_RING_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "atab.h"
#include "turn_cmd.h"

enum chan_ring_kind {
    CHAN_RING_BOUND = 1,        /* TURN_CMD_CHAN_BOUND */
    CHAN_RING_UNBOUND = 2,      /* TURN_CMD_CHAN_UNBOUND */
    CHAN_RING_CLOSE = 3         /* TURN_CMD_RELAY_CLOSE: every channel of
                                   the allocation is gone */
};

/* One event.  For CLOSE only kind, port and ref are meaningful (the rest
 * is zero). */
struct chan_ring_rec {
    uint8_t             kind;       /* enum chan_ring_kind */
    uint8_t             pad;
    uint16_t            port;       /* relay port */
    uint16_t            number;     /* channel number */
    uint16_t            pad2;
    struct atab_ref     ref;        /* the allocation */
    struct addr         client;     /* client socket */
    struct addr         local;      /* address the client sent to */
    struct addr         peer;
};

struct chan_ring {
    _Alignas(64) uint64_t   head;   /* producer: records published */
    uint64_t                lost;   /* producer: records dropped (full) */
    _Alignas(64) uint64_t   tail;   /* consumer: records taken */
    _Alignas(64) uint32_t   cap;    /* records; a power of two */
    uint32_t                magic;
    struct chan_ring_rec    rec[];
};

#define CHAN_RING_MIN_CAP   2
#define CHAN_RING_MAX_CAP   (1u << 20)

/* Bytes of one ring of cap records (a multiple of 64), or 0 when cap is
 * not a power of two in CHAN_RING_MIN_CAP..CHAN_RING_MAX_CAP. */
size_t chan_ring_bytes(uint32_t cap);

/* Formats an empty ring of cap records in mem (size bytes, 64-byte
 * aligned, at least chan_ring_bytes(cap)).  Only the header is written:
 * the records need no initialisation.  Returns 0 or RLY_ERR_INVAL (bad
 * cap, NULL or misaligned mem, size too small). */
int chan_ring_init(void *mem, size_t size, uint32_t cap);

/* The ring of slot i in an array of rings of cap records each, as laid
 * out from base (64-byte aligned) by formatting each in turn. */
struct chan_ring *chan_ring_at(void *base, uint32_t cap, uint32_t i);

/* The record a command stands for: 1 with *out filled for CHAN_BOUND,
 * CHAN_UNBOUND and RELAY_CLOSE, else 0 (*out untouched). */
int chan_ring_from_cmd(const struct turn_cmd *c, struct chan_ring_rec *out);

/* Producer.  Appends a copy of rec; never blocks and allocates nothing.
 * Returns 0, or RLY_ERR_FULL when the ring is full: the record is
 * dropped and counted in chan_ring_lost(). */
int chan_ring_push(struct chan_ring *r, const struct chan_ring_rec *rec);

/* Consumer.  Copies up to max of the oldest records into out and frees
 * their slots.  Returns the number copied (0 when empty). */
size_t chan_ring_pop(struct chan_ring *r, struct chan_ring_rec *out,
    size_t max);

/* Records dropped because the ring was full, since it was formatted. */
uint64_t chan_ring_lost(const struct chan_ring *r);
/* Records waiting (a snapshot). */
uint64_t chan_ring_pending(const struct chan_ring *r);

#endif
