/* shm.h - the shared region holding the allocation table (ARCHITECTURE §4).
 *
 * Mapped once by the master before the first fork, from a memfd (so that a
 * future in-place upgrade could hand it to a new master) with
 * mmap(MAP_SHARED); workers inherit the mapping.  Never resized. */
#ifndef RLY_MASTER_SHM_H
#define RLY_MASTER_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "atab.h"
#include "rly_rand.h"

struct shmem {
    int             fd;         /* the memfd, -1 when closed */
    void           *base;
    size_t          size;
    struct atab    *tab;
};

/* Maps a zeroed region of atab_region_size() bytes, formats it with random
 * user and index keys drawn from rand, and attaches to it.  Returns 0, or
 * -1 with the reason logged. */
int shmem_create(struct shmem *sh, uint32_t max_allocs, uint32_t max_chans,
    uint32_t nworkers, rly_rand_fn rand, void *rand_ud);
/* Detaches, unmaps and closes; safe after a failed shmem_create(). */
void shmem_destroy(struct shmem *sh);

#endif
