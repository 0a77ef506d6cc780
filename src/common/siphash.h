/* siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed hash for
 * the hash tables that index attacker-chosen keys (client and peer
 * addresses), so that nobody can aim datagrams at one bucket. */
#ifndef RLY_SIPHASH_H
#define RLY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct siphash_key {
    uint64_t k0, k1;
};

/* Builds a key from 16 bytes (little-endian words). */
void siphash_key_set(struct siphash_key *key, const uint8_t bytes[16]);

uint64_t siphash24(const struct siphash_key *key, const void *data,
    size_t len);

#endif
