/* fuzz_util.h - helpers shared by the libFuzzer targets: a reader that
 * turns the fuzzer's bytes into values (reading past the end yields
 * zeros, so every input decodes to something), an invariant check that
 * aborts (libFuzzer then saves the input as a crash), and a deterministic
 * generator seeded from the input.  Nothing here reads a clock or the
 * process's randomness: the same input always does the same thing. */
#ifndef RLY_FUZZ_UTIL_H
#define RLY_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Aborts with the failed condition: an invariant of the code under test
 * does not hold for this input. */
#define FZ_CHECK(cond) do { \
        if (!(cond)) \
            fz_fail(__FILE__, __LINE__, #cond); \
    } while (0)

static inline void
fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

struct fz {
    const uint8_t  *p;
    size_t          n;      /* bytes left */
};

static inline void
fz_init(struct fz *f, const uint8_t *data, size_t size)
{
    f->p = data;
    f->n = size;
}

static inline uint8_t
fz_u8(struct fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t
fz_u16(struct fz *f)
{
    uint16_t hi = fz_u8(f);

    return (uint16_t)(hi << 8 | fz_u8(f));
}

static inline uint32_t
fz_u32(struct fz *f)
{
    uint32_t hi = fz_u16(f);

    return hi << 16 | fz_u16(f);
}

/* Takes up to len bytes: returns how many were left (<= len) and points
 * *out at them. */
static inline size_t
fz_take(struct fz *f, size_t len, const uint8_t **out)
{
    if (len > f->n)
        len = f->n;
    *out = f->p;
    f->p += len;
    f->n -= len;
    return len;
}

/* Copies len bytes into buf, zero-filling what the input lacks. */
static inline void
fz_copy(struct fz *f, void *buf, size_t len)
{
    const uint8_t *src;
    size_t         got = fz_take(f, len, &src);

    if (got > 0)
        memcpy(buf, src, got);
    memset((uint8_t *)buf + got, 0, len - got);
}

/* SplitMix64: a small, well-mixed generator for values the harness needs
 * more of than the input provides (seeded from the input). */
static inline uint64_t
fz_mix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A heap copy of exactly len bytes, so that AddressSanitizer sees any
 * read past the end (malloc(0) gives a pointer that may not be read).
 * Never NULL: aborts when out of memory. */
static inline uint8_t *
fz_dup(const void *src, size_t len)
{
    uint8_t *p = malloc(len);

    if (p == NULL && (p = malloc(1)) == NULL)
        abort();
    if (len > 0)
        memcpy(p, src, len);
    return p;
}

#endif
