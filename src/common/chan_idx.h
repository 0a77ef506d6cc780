/* chan_idx.h - a worker's local hot-path index over the channels it owns
 * (ARCHITECTURE §3): (client socket, number) -> channel and (relay port,
 * peer) -> channel.  Plain process memory, sized once, no lock, no
 * allocation after chan_idx_new(), O(1) expected lookups with SipHash so
 * that remote parties cannot aim at one bucket.  Rebuilt from the shared
 * slots after a respawn. */
#ifndef RLY_CHAN_IDX_H
#define RLY_CHAN_IDX_H

#include <stdint.h>

#include "addr.h"

#define CHAN_IDX_NONE UINT32_MAX

struct chan_idx;

/* An index for up to cap channels (at most 2^28), keyed with the 16-byte
 * SipHash key hashkey (copied).  All memory is allocated here: two tables
 * of 32-byte entries, each the power of two above 4/3 cap (85 to 171
 * bytes per channel).  Returns NULL when out of memory or cap is too
 * large. */
struct chan_idx *chan_idx_new(uint32_t cap, const uint8_t hashkey[16]);
void chan_idx_free(struct chan_idx *ci);        /* NULL is fine */
void chan_idx_clear(struct chan_idx *ci);         /* count becomes 0 */
uint32_t chan_idx_count(const struct chan_idx *ci); /* channels indexed */

/* Adds channel chan under both keys, (client, number) and (port, peer).
 * Returns 0, RLY_ERR_EXISTS when either key is present (nothing added),
 * RLY_ERR_FULL when cap channels are indexed, or RLY_ERR_INVAL when chan
 * is CHAN_IDX_NONE. */
int chan_idx_add(struct chan_idx *ci, uint32_t chan,
    const struct addr *client, uint16_t number,
    uint16_t port, const struct addr *peer);
/* Removes the channel indexed under both these keys (no-op when absent,
 * or when the two keys name different channels). */
void chan_idx_del(struct chan_idx *ci, const struct addr *client,
    uint16_t number, uint16_t port, const struct addr *peer);

/* The channel, or CHAN_IDX_NONE.  O(1) expected; no allocation. */
uint32_t chan_idx_by_client(const struct chan_idx *ci,
    const struct addr *client, uint16_t number);
uint32_t chan_idx_by_peer(const struct chan_idx *ci, uint16_t port,
    const struct addr *peer);

#endif
