/* sim_util.c - random numbers and address helpers of the simulation.
 *
 * xoshiro256** seeded through splitmix64: fast, and the same sequence on
 * every platform, so a seed replays anywhere. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

static uint64_t
splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t
sim_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xD6E8FEB86659FD93ULL);

    return splitmix(&x);
}

void
sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t
sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t  out = rotl(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint32_t
sim_rng_below(struct sim_rng *r, uint32_t n)
{
    if (n == 0)
        return 0;
    return (uint32_t)(((sim_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

uint32_t
sim_rng_range(struct sim_rng *r, uint32_t lo, uint32_t hi)
{
    return lo + sim_rng_below(r, hi - lo + 1);
}

int
sim_rng_pm(struct sim_rng *r, uint32_t permille)
{
    return sim_rng_below(r, 1000) < permille;
}

/* --- Addresses --------------------------------------------------------- */

int
sim_addr_eq(const struct addr *a, const struct addr *b)
{
    size_t n = a->family == ADDR_V4 ? 4 : 16;

    return a->family == b->family && a->port == b->port &&
        memcmp(a->ip, b->ip, n) == 0;
}

void
sim_addr4(struct addr *a, uint32_t ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->family = ADDR_V4;
    a->port = port;
    a->ip[0] = (uint8_t)(ip >> 24);
    a->ip[1] = (uint8_t)(ip >> 16);
    a->ip[2] = (uint8_t)(ip >> 8);
    a->ip[3] = (uint8_t)ip;
}

void
sim_addr6(struct addr *a, const uint8_t ip[16], uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->family = ADDR_V6;
    a->port = port;
    memcpy(a->ip, ip, 16);
}

char *
sim_addr_str(const struct addr *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (a->family == ADDR_V4) {
        inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, (unsigned)a->port);
    } else if (a->family == ADDR_V6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)a->port);
    } else {
        snprintf(buf, size, "(none)");
    }
    return buf;
}
