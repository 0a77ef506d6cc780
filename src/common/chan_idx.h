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

/* An index for up to cap channels.  Returns NULL when out of memory. */
struct chan_idx *chan_idx_new(uint32_t cap, const uint8_t hashkey[16]);
void chan_idx_free(struct chan_idx *ci);        /* NULL is fine */
void chan_idx_clear(struct chan_idx *ci);
uint32_t chan_idx_count(const struct chan_idx *ci);

/* Adds channel chan under both keys.  Returns 0, RLY_ERR_FULL, or
 * RLY_ERR_EXISTS when either key is present. */
int chan_idx_add(struct chan_idx *ci, uint32_t chan,
    const struct addr *client, uint16_t number,
    uint16_t port, const struct addr *peer);
/* Removes both keys of chan (no-op when absent). */
void chan_idx_del(struct chan_idx *ci, const struct addr *client,
    uint16_t number, uint16_t port, const struct addr *peer);

/* The channel, or CHAN_IDX_NONE. */
uint32_t chan_idx_by_client(const struct chan_idx *ci,
    const struct addr *client, uint16_t number);
uint32_t chan_idx_by_peer(const struct chan_idx *ci, uint16_t port,
    const struct addr *peer);

#endif
