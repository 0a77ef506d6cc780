/* chan_idx.h - a worker's local hot-path index over the channels it owns
 * (ARCHITECTURE §3): (client socket, number) -> channel and (relay port,
 * peer) -> channel.  Plain process memory, no lock, O(1) expected lookups
 * with SipHash so that remote parties cannot aim at one bucket.  Rebuilt
 * from the shared slots after a respawn.
 *
 * The memory follows the channels indexed, not the limit: the tables start
 * small and double when an add would fill them beyond 3/4, up to the size
 * for cap.  Only chan_idx_add() and chan_idx_reserve() allocate (the
 * control path: ChannelBind, adoption); lookups and deletions never do,
 * so the ChannelData path stays free of allocation. */
#ifndef RLY_CHAN_IDX_H
#define RLY_CHAN_IDX_H

#include <stdint.h>

#include "addr.h"

#define CHAN_IDX_NONE       UINT32_MAX
#define CHAN_IDX_MIN_SIZE   16      /* entries per table at first */

struct chan_idx;

/* An index for up to cap channels (at most 2^28), keyed with the 16-byte
 * SipHash key hashkey (copied).  Two tables of 32-byte entries, each a
 * power of two: CHAN_IDX_MIN_SIZE entries at first, at most the power of
 * two above 4/3 cap; between growths 3/8 to 3/4 full (85 to 171 bytes per
 * channel indexed).  Returns NULL when out of memory or cap is too
 * large. */
struct chan_idx *chan_idx_new(uint32_t cap, const uint8_t hashkey[16]);
void chan_idx_free(struct chan_idx *ci);        /* NULL is fine */
/* Count becomes 0; the tables keep their size. */
void chan_idx_clear(struct chan_idx *ci);
uint32_t chan_idx_count(const struct chan_idx *ci); /* channels indexed */
/* Entries per table now (tests, metrics). */
uint32_t chan_idx_size(const struct chan_idx *ci);

/* Grows the tables so that n channels in all fit without another growth.
 * Returns 0, or RLY_ERR_FULL when n exceeds cap or the memory for larger
 * tables cannot be had; the index is unchanged and usable either way. */
int chan_idx_reserve(struct chan_idx *ci, uint32_t n);

/* Adds channel chan under both keys, (client, number) and (port, peer),
 * growing the tables first when they would be more than 3/4 full.
 * Returns 0, RLY_ERR_EXISTS when either key is present, RLY_ERR_FULL when
 * cap channels are indexed or growing failed for want of memory, or
 * RLY_ERR_INVAL when chan is CHAN_IDX_NONE.  On an error nothing is added
 * and every channel indexed before stays found. */
int chan_idx_add(struct chan_idx *ci, uint32_t chan,
    const struct addr *client, uint16_t number,
    uint16_t port, const struct addr *peer);
/* Removes the channel indexed under both these keys (no-op when absent,
 * or when the two keys name different channels). */
void chan_idx_del(struct chan_idx *ci, const struct addr *client,
    uint16_t number, uint16_t port, const struct addr *peer);

/* The channel, or CHAN_IDX_NONE.  O(1) expected; no allocation.  Each
 * table remembers where its last lookup hit: a lookup for the same key
 * again (the datagrams of one run, one after another) compares that entry
 * first and skips the hash.  The hint is a position, checked against the
 * key every time, so no change to the tables can make it wrong. */
uint32_t chan_idx_by_client(struct chan_idx *ci, const struct addr *client,
    uint16_t number);
uint32_t chan_idx_by_peer(struct chan_idx *ci, uint16_t port,
    const struct addr *peer);

#endif
