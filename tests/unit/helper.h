/* helper.h - builders and fixed randomness shared by the unit tests. */
#ifndef RLY_TEST_HELPER_H
#define RLY_TEST_HELPER_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* rly_rand_fn that yields zero bytes (SPEC §11 "all-zero randomness"). */
int rand_zero(void *ud, uint8_t *buf, size_t len);

/* rly_rand_fn that yields a counter: each call fills buf with the byte
 * value of a per-state counter, then increments it ("counting
 * randomness": successive draws differ). */
struct rand_counter {
    uint8_t next;
    unsigned calls;
};
int rand_count(void *ud, uint8_t *buf, size_t len);

/* rly_rand_fn that always fails (failure paths). */
int rand_fail(void *ud, uint8_t *buf, size_t len);

/* Allocation failures (nghttp2's failmalloc): check_common is linked with
 * -Wl,--wrap=calloc, so every calloc() made by src/common or the tests
 * comes here.  After fail_calloc(n), n more calls succeed and every later
 * one returns NULL, until fail_calloc(-1) (the default) lets all through.
 * Library code (OpenSSL, libc itself) is not affected. */
void fail_calloc(int n);

/* Decodes hex (whitespace ignored) into out; returns the byte count, or
 * (size_t)-1 on bad input or overflow. */
size_t hex2bin(const char *hex, uint8_t *out, size_t cap);

/* Parses "IP:port" / "[IP]:port" into an address; aborts the test on bad
 * input. */
struct addr A(const char *s);

#endif
