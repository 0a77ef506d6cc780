/* auth.h - stamp-secret credentials (SPEC §3), per-client nonces (SPEC
 * §3.7) and the rate limit on unauthenticated errors (SPEC §2.12).
 *
 * Credentials are pure functions.  The nonce table and the rate-limit
 * table are per worker (ARCHITECTURE §4): plain memory, no lock, bounded
 * LRU tables allocated once by *_new(). */
#ifndef RLY_AUTH_H
#define RLY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "rly_rand.h"

#define AUTH_REALM          "firezone"
#define AUTH_SECRET_HEXLEN  64          /* generated secret: 32 bytes hex */
#define AUTH_PASSWORD_LEN   43          /* Base64 of SHA-256, no padding */
#define AUTH_NONCE_LEN      16          /* a nonce is a 128-bit value */
#define AUTH_NONCE_STRLEN   36          /* hyphenated UUID text */
#define AUTH_NONCE_USES     10000
#define AUTH_SECRET_MINLEN  32          /* auth_secret_ok() bounds */
#define AUTH_SECRET_MAXLEN  255
#define AUTH_TABLE_MAX      (1u << 30)  /* largest cap of both tables */

/* --- Secret (SPEC §3.1) --- */

/* 32 random bytes (one call of rand) as 64 lowercase hex digits + NUL.
 * Returns 0, or the rand function's error with out untouched. */
int auth_secret_generate(rly_rand_fn rand, void *ud,
    char out[AUTH_SECRET_HEXLEN + 1]);
/* 1 when s is 32-255 characters from A-Z a-z 0-9 - . _ ~ + / =, else 0
 * (NULL included). */
int auth_secret_ok(const char *s);

/* --- Username, password, key (SPEC §3.2-§3.5) --- */

/* Splits "<expiry>:<salt>" (exactly one ':'; expiry 1-20 ASCII digits that
 * fit in uint64, leading zeros allowed, no sign or space; salt may be empty
 * and holds any other bytes).  Returns 0 with *expiry, *salt and *saltlen
 * set (*salt points into u, valid as long as u), or RLY_ERR_INVAL for an
 * unparsable username, the outputs then untouched. */
int auth_username_parse(const uint8_t *u, size_t len, uint64_t *expiry,
    const uint8_t **salt, size_t *saltlen);

/* password = Base64-no-pad(SHA-256("<expiry>:<secret>:<salt>")), with the
 * canonical decimal expiry (no leading zeros) and secret a NUL-terminated
 * string; writes 43 characters + NUL.  salt may be NULL when saltlen is 0.
 * Returns 0 or RLY_ERR_CRYPTO. */
int auth_password(const char *secret, uint64_t expiry, const uint8_t *salt,
    size_t saltlen, char out[AUTH_PASSWORD_LEN + 1]);

/* The long-term key for a received USERNAME: parse it, derive the password,
 * key = MD5("<canonical expiry>:<salt>:firezone:<password>").  Returns 0,
 * RLY_ERR_INVAL (unparsable username; *expiry untouched) or
 * RLY_ERR_CRYPTO.  *expiry receives the parsed expiry whenever the username
 * parses, so the caller can check it even when the digest fails. */
int auth_key(const char *secret, const uint8_t *username, size_t ulen,
    uint64_t *expiry, uint8_t key[16]);

/* Base64 (standard alphabet) without padding; out must hold
 * 4 * ceil(len / 3) + 1 bytes.  Returns the length written. */
size_t auth_base64_nopad(const uint8_t *in, size_t len, char *out);

/* --- Nonces (SPEC §3.7) --- */

/* Parses a NONCE value as a UUID: hyphenated (8-4-4-4-12), 32 hex digits,
 * "{hyphenated}" or "urn:uuid:hyphenated"; hex digits and the "urn:uuid:"
 * prefix in any case.  Returns 0 with out set, or RLY_ERR_INVAL (out
 * untouched). */
int auth_nonce_parse(const uint8_t *s, size_t len,
    uint8_t out[AUTH_NONCE_LEN]);
/* Lowercase hyphenated UUID text + NUL. */
void auth_nonce_format(const uint8_t n[AUTH_NONCE_LEN],
    char out[AUTH_NONCE_STRLEN + 1]);

struct auth_nonces;

/* A table of at most cap client sockets (1 <= cap <= AUTH_TABLE_MAX),
 * hashed with the 16-byte key (SipHash-2-4 over family, IP and port), all
 * memory allocated here.  Returns NULL when cap is out of range or memory
 * is short.  auth_nonces_free() accepts NULL. */
struct auth_nonces *auth_nonces_new(size_t cap, const uint8_t hashkey[16]);
void auth_nonces_free(struct auth_nonces *t);

/* The socket's current nonce, minting one (10,000 uses, 16 bytes from one
 * call of rand) if it has none; evicts the least recently used entry when
 * full.  Marks the entry most recently used.  An entry whose uses are spent
 * is still handed out (SPEC §3.7: the next check removes it).  Returns 0,
 * or the rand error with the table unchanged. */
int auth_nonce_current(struct auth_nonces *t, const struct addr *client,
    rly_rand_fn rand, void *ud, uint8_t out[AUTH_NONCE_LEN]);

/* Step 5 of SPEC §3.6.  Returns 0 when nonce matches the socket's entry
 * with uses left (one use consumed), or RLY_ERR_STALE when there is no
 * entry, the value differs, or no use is left (the entry is then removed,
 * so that auth_nonce_current() mints a fresh one for the 438).  An entry
 * that is kept becomes most recently used.  O(1), allocates nothing. */
int auth_nonce_check(struct auth_nonces *t, const struct addr *client,
    const uint8_t nonce[AUTH_NONCE_LEN]);

/* Number of entries (tests). */
size_t auth_nonces_count(const struct auth_nonces *t);

/* --- Rate limit on unauthenticated errors (SPEC §2.12) --- */

struct auth_ratelim;

/* Token buckets for at most cap source IPs (ports ignored; 1 <= cap <=
 * AUTH_TABLE_MAX), LRU-evicted; an evicted IP starts full again.  Hashed
 * with the 16-byte key.  Returns NULL when cap is out of range or memory is
 * short.  auth_ratelim_free() accepts NULL. */
struct auth_ratelim *auth_ratelim_new(size_t cap, const uint8_t hashkey[16]);
void auth_ratelim_free(struct auth_ratelim *r);

/* Takes one token from ip's bucket (burst tokens, starting full, refilled
 * at rate per second, computed from now_ms with millitoken precision; a
 * clock step back refills nothing; a lowered burst caps the bucket).  The
 * bucket becomes most recently used.  Returns 1 when a token was taken
 * (send the error), 0 when below one token (drop, rate_limited).  rate == 0
 * disables the limit: always 1, nothing recorded.  O(1), allocates
 * nothing. */
int auth_ratelim_take(struct auth_ratelim *r, const struct addr *ip,
    uint64_t now_ms, uint32_t rate, uint32_t burst);

/* Number of buckets held (tests). */
size_t auth_ratelim_count(const struct auth_ratelim *r);

#endif
