/* turn_cmd.h - the commands the core emits and the queue that holds them.
 *
 * The core appends; the worker carries the commands out in order, then
 * calls turn_cmdq_reset().  Bytes the core builds (responses, ChannelData
 * headers) live in the queue's arena and are valid until
 * turn_cmdq_reset(); relayed payloads point into the caller's input buffer
 * and are valid as long as that buffer is: relayed data is never copied.
 * Order matters: a RELAY_CLOSE must be carried out before any later
 * RELAY_OPEN (SPEC §4.6). */
#ifndef RLY_TURN_CMD_H
#define RLY_TURN_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "atab.h"

/* One core call appends at most this many commands and arena bytes;
 * turn_cmdq_room() says whether a queue can take another call. */
#define TURN_CMDS_PER_EVENT     4
#define TURN_ARENA_PER_EVENT    512

enum turn_cmd_kind {
    /* Send hdr then payload to path.remote (a client) from the listen
     * socket of its family, with source address path.local. */
    TURN_CMD_SEND_CLIENT = 0,
    /* Send payload to path.remote (a peer) from the relay socket of port
     * `port` for the peer's family.  With nseg > 1 it is a run of nseg
     * datagrams (turn_core_on_client_run()): datagram k is paylen bytes at
     * payload + k * stride, the last lastlen bytes (<= paylen). */
    TURN_CMD_SEND_PEER,
    /* Bind relay sockets on `port` for `families` (ATAB_FAM_*) for
     * allocation ref, then report with turn_core_on_relay_opened(). */
    TURN_CMD_RELAY_OPEN,
    /* Close the relay sockets of `port`; the allocation ref is gone. */
    TURN_CMD_RELAY_CLOSE,
    /* Channel `number` of client path.remote to `peer` on relay `port` now
     * relays (created or refreshed) / no longer relays. */
    TURN_CMD_CHAN_BOUND,
    TURN_CMD_CHAN_UNBOUND
};

struct turn_cmd {
    enum turn_cmd_kind  kind;
    uint8_t             families;
    uint16_t            port;
    uint16_t            number;
    struct atab_ref     ref;
    struct addr_path    path;
    struct addr         peer;
    const uint8_t      *hdr;        /* hdrlen bytes, in the arena */
    const uint8_t      *payload;    /* paylen bytes, in the caller's input */
    size_t              hdrlen;
    size_t              paylen;
    size_t              lastlen;    /* nseg > 1: the last datagram's */
    uint16_t            nseg;       /* 0 or 1: one datagram */
    uint16_t            stride;
};

struct turn_cmdq {
    struct turn_cmd    *cmd;
    size_t              n, cap;
    uint8_t            *arena;
    size_t              used, arena_cap;
};

/* Allocates room for ncmds commands and arena_bytes of arena.  Returns 0 or
 * RLY_ERR_NOMEM.  turn_cmdq_fini() frees (safe on a zeroed queue). */
int turn_cmdq_init(struct turn_cmdq *q, size_t ncmds, size_t arena_bytes);
void turn_cmdq_fini(struct turn_cmdq *q);
void turn_cmdq_reset(struct turn_cmdq *q);

/* 1 when the queue can take one more core call. */
int turn_cmdq_room(const struct turn_cmdq *q);

/* Appends a zeroed command of this kind; NULL when full. */
struct turn_cmd *turn_cmdq_push(struct turn_cmdq *q, enum turn_cmd_kind k);
/* Reserves len arena bytes; NULL when the arena is full. */
uint8_t *turn_cmdq_arena(struct turn_cmdq *q, size_t len);
/* Gives back the unused tail of the last reservation (len -> used). */
void turn_cmdq_arena_trim(struct turn_cmdq *q, uint8_t *p, size_t reserved,
    size_t used);

#endif
