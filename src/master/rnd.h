/* rnd.h - randomness for the master and the workers (an rly_rand_fn).
 *
 * Without rng_seed: the kernel's getrandom().  With rng_seed (tests only,
 * SPEC §9.2): a deterministic stream, block i of stream s being
 * SHA-256(seed || s || i), so that every process draws its own sequence
 * (the master's keys and secret, each worker slot's nonces and ports). */
#ifndef RLY_MASTER_RND_H
#define RLY_MASTER_RND_H

#include <stddef.h>
#include <stdint.h>

/* Stream ids: worker slots use their slot number (< ATAB_MAX_WORKERS). */
#define RND_STREAM_TABLE    0x10000     /* shared table keys */
#define RND_STREAM_SECRET   0x10001     /* generated secret */
#define RND_STREAM_SALT     0x10002     /* credentials --salt default */

struct rnd {
    int         seeded;
    uint64_t    seed;
    uint32_t    stream;
    uint64_t    counter;
    uint8_t     block[32];
    size_t      pos;            /* bytes of block used */
};

void rnd_init(struct rnd *r, int seeded, uint64_t seed, uint32_t stream);

/* rly_rand_fn: ud is a struct rnd.  Returns 0 or RLY_ERR_CRYPTO. */
int rnd_fill(void *ud, uint8_t *buf, size_t len);

#endif
