/* check_auth.c - credentials (SPEC §3.1-§3.5 vectors), nonce text and the
 * nonce table (SPEC §3.7), and the error rate limit (SPEC §2.12).  Time
 * moves only when a test moves it; randomness is zero, counting or
 * failing. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "helper.h"
#include "rly_err.h"
#include "suites.h"

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))
#define SECRET1     \
    "4c98bf59c99b3e467ecd7cf9d6b3e5279645fca59be67bc5bb4af3cf653761ab"
#define SECRET2     "1cab293a-4032-46f4-862a-40e5d174b0d2"
#define SALT1       "n23JJ2wKKtt30oXi"

static const uint8_t hashkey[16] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
};

/* --- helpers --- */

static void
check_password(const char *secret, uint64_t expiry, const char *salt,
    const char *want)
{
    char pw[AUTH_PASSWORD_LEN + 1];

    ck_assert_int_eq(auth_password(secret, expiry, (const uint8_t *)salt,
        strlen(salt), pw), 0);
    ck_assert_str_eq(pw, want);
    ck_assert_uint_eq(strlen(pw), AUTH_PASSWORD_LEN);
}

static void
key_of(const char *secret, const char *username, uint64_t *expiry,
    uint8_t key[16])
{
    ck_assert_int_eq(auth_key(secret, (const uint8_t *)username,
        strlen(username), expiry, key), 0);
}

static void
check_key(const char *secret, const char *username, const char *hex)
{
    uint8_t  key[16], want[16];
    uint64_t expiry;

    ck_assert_uint_eq(hex2bin(hex, want, sizeof(want)), 16);
    key_of(secret, username, &expiry, key);
    ck_assert_mem_eq(key, want, 16);
}

static int
nonce_parse_str(const char *s, uint8_t out[AUTH_NONCE_LEN])
{
    return auth_nonce_parse((const uint8_t *)s, strlen(s), out);
}

static void
fill_string(char *buf, size_t len, char c)
{
    memset(buf, c, len);
    buf[len] = '\0';
}

/* --- credentials --- */

START_TEST(test_c20_password_and_key_vectors)
{
    check_password(SECRET1, 1892160000, SALT1,
        "00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68");
    check_password(SECRET2, 1685984278, "uvdgKvS9GXYZ_vmv",
        "6xUIoZ+QvxKhRasLifwfRkMXl+ETLJUsFkHlXjlHAkg");
    check_password(SECRET1, 1685200000, SALT1,
        "KWFQGJs2EUSjn+RbrNzNrxjZJQJTx52zyr8FYpk/e20");
    check_key(SECRET1, "1892160000:" SALT1,
        "e444d93976b92ec355c14337c9a9d3fb");
    check_key(SECRET1, "1685200000:" SALT1,
        "b5b9c0f90e4d4ca659e6a95037c3fdf0");
}
END_TEST

/* What `credentials --expiry 1892160000 --salt n23JJ2wKKtt30oXi` prints. */
START_TEST(test_c21_credentials_password)
{
    const char    *user = "1892160000:" SALT1;
    const uint8_t *salt;
    size_t         saltlen;
    uint64_t       expiry;
    char           pw[AUTH_PASSWORD_LEN + 1];

    ck_assert_int_eq(auth_username_parse((const uint8_t *)user,
        strlen(user), &expiry, &salt, &saltlen), 0);
    ck_assert_uint_eq(expiry, 1892160000);
    ck_assert_uint_eq(saltlen, strlen(SALT1));
    ck_assert_mem_eq(salt, SALT1, saltlen);
    ck_assert_int_eq(auth_password(SECRET1, expiry, salt, saltlen, pw), 0);
    ck_assert_str_eq(pw, "00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68");
}
END_TEST

START_TEST(test_base64_nopad_rfc4648)
{
    static const char *const want[] = {
        "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy",
    };
    static const uint8_t all[3] = { 0xff, 0xef, 0xbe };
    char out[16];

    for (size_t i = 0; i < NELEM(want); i++) {
        ck_assert_uint_eq(auth_base64_nopad((const uint8_t *)"foobar", i,
            out), strlen(want[i]));
        ck_assert_str_eq(out, want[i]);
    }
    ck_assert_uint_eq(auth_base64_nopad(all, 3, out), 4);
    ck_assert_str_eq(out, "/+++");
}
END_TEST

START_TEST(test_key_canonical_expiry)
{
    uint8_t  k1[16], k2[16], k3[16];
    uint64_t e1 = 0, e2 = 0, e3 = 0;

    key_of(SECRET1, "0123:x", &e1, k1);
    key_of(SECRET1, "123:x", &e2, k2);
    key_of(SECRET1, "00000000000000000123:x", &e3, k3);
    ck_assert_uint_eq(e1, 123);
    ck_assert_uint_eq(e2, 123);
    ck_assert_uint_eq(e3, 123);
    ck_assert_mem_eq(k1, k2, 16);
    ck_assert_mem_eq(k3, k2, 16);
    key_of(SECRET1, "124:x", &e1, k1);
    ck_assert(memcmp(k1, k2, 16) != 0);
}
END_TEST

START_TEST(test_key_empty_salt)
{
    uint8_t        key[16], again[16];
    uint64_t       expiry;
    const uint8_t *salt;
    size_t         saltlen = 99;

    ck_assert_int_eq(auth_username_parse((const uint8_t *)"1:", 2, &expiry,
        &salt, &saltlen), 0);
    ck_assert_uint_eq(expiry, 1);
    ck_assert_uint_eq(saltlen, 0);
    key_of(SECRET1, "1:", &expiry, key);
    key_of(SECRET1, "01:", &expiry, again);
    ck_assert_mem_eq(key, again, 16);
}
END_TEST

static const struct {
    const char *s;
    size_t      len;
} bad_users[] = {
    { "foobar", 6 },
    { "", 0 },
    { ":", 1 },
    { "1:2:3", 5 },
    { "+1:x", 4 },
    { "-1:x", 4 },
    { " 1:x", 4 },
    { "1 :x", 4 },
    { ":x", 2 },
    { "123456789012345678901:x", 23 },      /* 21 digits */
    { "000000000000000000001:x", 23 },      /* 21 digits, small value */
    { "18446744073709551616:x", 22 },       /* 2^64 */
    { "99999999999999999999:x", 22 },
    { "1x:y", 4 },
    { "0x1:y", 5 },
    { "1:x\0:y", 6 },                       /* a second ':' after a NUL */
};

START_TEST(test_username_unparsable)
{
    const uint8_t *u = (const uint8_t *)bad_users[_i].s;
    size_t         len = bad_users[_i].len;
    const uint8_t *salt = NULL;
    size_t         saltlen = 7;
    uint64_t       expiry = 42;
    uint8_t        key[16];

    ck_assert_msg(auth_username_parse(u, len, &expiry, &salt, &saltlen) ==
        RLY_ERR_INVAL, "accepted \"%s\"", bad_users[_i].s);
    ck_assert_uint_eq(expiry, 42);
    ck_assert_ptr_null(salt);
    ck_assert_uint_eq(saltlen, 7);
    ck_assert_int_eq(auth_key(SECRET1, u, len, &expiry, key), RLY_ERR_INVAL);
    ck_assert_uint_eq(expiry, 42);
}
END_TEST

START_TEST(test_username_max_expiry)
{
    const char    *u = "18446744073709551615:s";
    const uint8_t *salt;
    size_t         saltlen;
    uint64_t       expiry;
    uint8_t        key[16];

    ck_assert_int_eq(auth_username_parse((const uint8_t *)u, strlen(u),
        &expiry, &salt, &saltlen), 0);
    ck_assert(expiry == UINT64_MAX);
    ck_assert_uint_eq(saltlen, 1);
    ck_assert_int_eq(salt[0], 's');
    expiry = 0;
    key_of(SECRET1, u, &expiry, key);
    ck_assert(expiry == UINT64_MAX);
}
END_TEST

/* --- secret --- */

START_TEST(test_secret_generate_zero)
{
    char out[AUTH_SECRET_HEXLEN + 1], want[AUTH_SECRET_HEXLEN + 1];

    fill_string(want, AUTH_SECRET_HEXLEN, '0');
    ck_assert_int_eq(auth_secret_generate(rand_zero, NULL, out), 0);
    ck_assert_str_eq(out, want);
    ck_assert(auth_secret_ok(out));
}
END_TEST

START_TEST(test_secret_generate_counting)
{
    struct rand_counter rc = { .next = 0xab };
    char out[AUTH_SECRET_HEXLEN + 1], want[AUTH_SECRET_HEXLEN + 1];

    for (size_t i = 0; i < AUTH_SECRET_HEXLEN; i += 2)
        memcpy(want + i, "ab", 2);
    want[AUTH_SECRET_HEXLEN] = '\0';
    ck_assert_int_eq(auth_secret_generate(rand_count, &rc, out), 0);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(rc.calls, 1);
    ck_assert_int_eq(auth_secret_generate(rand_count, &rc, out), 0);
    ck_assert_int_eq(strncmp(out, "acac", 4), 0);
    ck_assert(auth_secret_ok(out));
}
END_TEST

START_TEST(test_secret_generate_rand_fails)
{
    char out[AUTH_SECRET_HEXLEN + 1] = "untouched";

    ck_assert_int_eq(auth_secret_generate(rand_fail, NULL, out),
        RLY_ERR_CRYPTO);
    ck_assert_str_eq(out, "untouched");
}
END_TEST

START_TEST(test_secret_ok_boundaries)
{
    char        s[300];
    static const char *const bad[] = {
        "0123456789abcdef0123456789abcde ",     /* space */
        "0123456789abcdef0123456789abcde:",
        "0123456789abcdef0123456789abcde!",
        "0123456789abcdef0123456789abcde\xc3",
        "0123456789abcdef0123456789abcde\n",
    };

    fill_string(s, 31, 'a');
    ck_assert(!auth_secret_ok(s));
    fill_string(s, 32, 'a');
    ck_assert(auth_secret_ok(s));
    fill_string(s, 255, 'Z');
    ck_assert(auth_secret_ok(s));
    fill_string(s, 256, 'Z');
    ck_assert(!auth_secret_ok(s));
    ck_assert(!auth_secret_ok(""));
    ck_assert(!auth_secret_ok(NULL));
    ck_assert(auth_secret_ok("ABCXYZabcxyz0189-._~+/=ABCXYZabcxyz0189"));
    ck_assert(auth_secret_ok(SECRET1));
    ck_assert(auth_secret_ok(SECRET2));
    for (size_t i = 0; i < NELEM(bad); i++)
        ck_assert_msg(!auth_secret_ok(bad[i]), "accepted bad[%zu]", i);
}
END_TEST

/* --- nonce text --- */

START_TEST(test_nonce_parse_forms)
{
    static const char *const good[] = {
        "0123abcd-ef45-6789-aabb-ccddeeff0011",
        "0123abcdef456789aabbccddeeff0011",
        "{0123abcd-ef45-6789-aabb-ccddeeff0011}",
        "urn:uuid:0123abcd-ef45-6789-aabb-ccddeeff0011",
        "0123ABCD-EF45-6789-AABB-CCDDEEFF0011",
        "0123ABCDef456789AabbCCddEEFF0011",
        "{0123ABCD-EF45-6789-AABB-CCDDEEFF0011}",
        "URN:UUID:0123ABCD-EF45-6789-AABB-CCDDEEFF0011",
    };
    uint8_t want[AUTH_NONCE_LEN], got[AUTH_NONCE_LEN];

    ck_assert_uint_eq(hex2bin("0123abcdef456789aabbccddeeff0011", want,
        sizeof(want)), AUTH_NONCE_LEN);
    for (size_t i = 0; i < NELEM(good); i++) {
        memset(got, 0x55, sizeof(got));
        ck_assert_msg(nonce_parse_str(good[i], got) == 0, "rejected %s",
            good[i]);
        ck_assert_mem_eq(got, want, AUTH_NONCE_LEN);
    }
}
END_TEST

static const char *const bad_nonces[] = {
    "",
    "0123abcd-ef45-6789-aabb-ccddeeff001",          /* 35 */
    "0123abcd-ef45-6789-aabb-ccddeeff00112",        /* 37 */
    "0123abcdef456789aabbccddeeff001",              /* 31 */
    "0123abcdef456789aabbccddeeff00112",            /* 33 */
    "0123abcd-ef45-6789-aabb-ccddeeff001g",         /* non-hex */
    "0123abcdef456789aabbccddeeff001z",
    "0123abcd ef45 6789 aabb ccddeeff0011",
    "0123abc-def45-6789-aabb-ccddeeff0011",         /* hyphen misplaced */
    "0123abcd-ef45-6789-aabbc-cddeeff0011",
    "0123abcd-ef4-56789-aabb-ccddeeff0011",
    "-0123abcdef456789aabbccddeeff0011-",
    "{0123abcd-ef45-6789-aabb-ccddeeff0011",        /* unbalanced */
    "0123abcd-ef45-6789-aabb-ccddeeff0011}",
    "{0123abcd-ef45-6789-aabb-ccddeeff0011{",
    "}0123abcd-ef45-6789-aabb-ccddeeff0011{",
    "(0123abcd-ef45-6789-aabb-ccddeeff0011)",
    "{0123abcdef456789aabbccddeeff0011}",           /* wrapped, simple */
    "urn:uuid:0123abcdef456789aabbccddeeff0011",
    "urn:uuid0123abcd-ef45-6789-aabb-ccddeeff0011",
    "urn:uid:0123abcd-ef45-6789-aabb-ccddeeff0011",
    "urx:uuid:0123abcd-ef45-6789-aabb-ccddeeff0011",
    "urn:uuid:{0123abcd-ef45-6789-aabb-ccddeeff0011}",
    "0x23abcd-ef45-6789-aabb-ccddeeff0011",
};

START_TEST(test_nonce_parse_rejects)
{
    uint8_t got[AUTH_NONCE_LEN], untouched[AUTH_NONCE_LEN];

    memset(got, 0x55, sizeof(got));
    memset(untouched, 0x55, sizeof(untouched));
    ck_assert_msg(nonce_parse_str(bad_nonces[_i], got) == RLY_ERR_INVAL,
        "accepted %s", bad_nonces[_i]);
    ck_assert_mem_eq(got, untouched, AUTH_NONCE_LEN);
}
END_TEST

START_TEST(test_nonce_format)
{
    uint8_t n[AUTH_NONCE_LEN] = { 0 }, back[AUTH_NONCE_LEN];
    char    s[AUTH_NONCE_STRLEN + 1];

    auth_nonce_format(n, s);
    ck_assert_str_eq(s, "00000000-0000-0000-0000-000000000000");
    for (size_t i = 0; i < AUTH_NONCE_LEN; i++)
        n[i] = (uint8_t)(i * 0x11);
    auth_nonce_format(n, s);
    ck_assert_str_eq(s, "00112233-4455-6677-8899-aabbccddeeff");
    ck_assert_int_eq(auth_nonce_parse((const uint8_t *)s, strlen(s), back),
        0);
    ck_assert_mem_eq(back, n, AUTH_NONCE_LEN);
    memset(n, 0xff, sizeof(n));
    auth_nonce_format(n, s);
    ck_assert_str_eq(s, "ffffffff-ffff-ffff-ffff-ffffffffffff");
}
END_TEST

/* --- nonce table --- */

START_TEST(test_nonce_zero_randomness)
{
    struct auth_nonces *t = auth_nonces_new(4, hashkey);
    struct addr         c = A("192.0.2.1:1000");
    uint8_t             n[AUTH_NONCE_LEN];
    char                s[AUTH_NONCE_STRLEN + 1];

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(auth_nonce_current(t, &c, rand_zero, NULL, n), 0);
    auth_nonce_format(n, s);
    ck_assert_str_eq(s, "00000000-0000-0000-0000-000000000000");
    ck_assert_int_eq(auth_nonce_check(t, &c, n), 0);
    auth_nonces_free(t);
}
END_TEST

/* C73 at table level: same socket, same nonce; another socket, another. */
START_TEST(test_nonce_current_stable_per_socket)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(16, hashkey);
    struct addr         c = A("192.0.2.1:1000"), c2 = A("192.0.2.1:1001");
    uint8_t             n1[AUTH_NONCE_LEN], n2[AUTH_NONCE_LEN];
    uint8_t             n3[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n1), 0);
    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n2), 0);
    ck_assert_mem_eq(n1, n2, AUTH_NONCE_LEN);
    ck_assert_uint_eq(rc.calls, 1);
    ck_assert_int_eq(auth_nonce_current(t, &c2, rand_count, &rc, n3), 0);
    ck_assert(memcmp(n1, n3, AUTH_NONCE_LEN) != 0);
    ck_assert_uint_eq(rc.calls, 2);
    ck_assert_uint_eq(auth_nonces_count(t), 2);
    auth_nonces_free(t);
}
END_TEST

/* C17 at table level. */
START_TEST(test_nonce_ten_thousand_uses)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(16, hashkey);
    struct addr         c = A("[2001:db8::1]:5000");
    uint8_t             n[AUTH_NONCE_LEN], fresh[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n), 0);
    for (int i = 0; i < AUTH_NONCE_USES; i++)
        ck_assert_int_eq(auth_nonce_check(t, &c, n), 0);
    ck_assert_uint_eq(auth_nonces_count(t), 1);
    ck_assert_int_eq(auth_nonce_check(t, &c, n), RLY_ERR_STALE);
    ck_assert_uint_eq(auth_nonces_count(t), 0);
    ck_assert_int_eq(auth_nonce_check(t, &c, n), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, fresh), 0);
    ck_assert(memcmp(n, fresh, AUTH_NONCE_LEN) != 0);
    ck_assert_int_eq(auth_nonce_check(t, &c, fresh), 0);
    auth_nonces_free(t);
}
END_TEST

/* C14 at table level: a nonce is bound to its socket (port included). */
START_TEST(test_nonce_stale_on_other_socket)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(16, hashkey);
    struct addr         c = A("192.0.2.1:1000"), c2 = A("192.0.2.1:1001");
    struct addr         c3 = A("192.0.2.2:1000");
    uint8_t             n[AUTH_NONCE_LEN], n2[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n), 0);
    ck_assert_int_eq(auth_nonce_check(t, &c2, n), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_check(t, &c3, n), RLY_ERR_STALE);
    ck_assert_uint_eq(auth_nonces_count(t), 1);
    ck_assert_int_eq(auth_nonce_current(t, &c2, rand_count, &rc, n2), 0);
    ck_assert(memcmp(n, n2, AUTH_NONCE_LEN) != 0);
    ck_assert_int_eq(auth_nonce_check(t, &c2, n), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_check(t, &c, n2), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_check(t, &c, n), 0);
    ck_assert_int_eq(auth_nonce_check(t, &c2, n2), 0);
    auth_nonces_free(t);
}
END_TEST

/* A wrong value is stale but keeps the entry and its uses. */
START_TEST(test_nonce_wrong_value_keeps_entry)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(4, hashkey);
    struct addr         c = A("192.0.2.1:1000");
    uint8_t             n[AUTH_NONCE_LEN], other[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n), 0);
    memcpy(other, n, sizeof(other));
    other[15] ^= 1;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(auth_nonce_check(t, &c, other), RLY_ERR_STALE);
    ck_assert_uint_eq(auth_nonces_count(t), 1);
    for (int i = 0; i < AUTH_NONCE_USES; i++)
        ck_assert_int_eq(auth_nonce_check(t, &c, n), 0);
    ck_assert_int_eq(auth_nonce_check(t, &c, n), RLY_ERR_STALE);
    auth_nonces_free(t);
}
END_TEST

/* C54 at table level: cap 2, three sockets; the oldest is evicted and its
 * next request gets a fresh nonce, which then works. */
START_TEST(test_nonce_lru_evicts_oldest)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(2, hashkey);
    struct addr         c = A("192.0.2.1:1000"), c2 = A("192.0.2.1:1001");
    struct addr         c3 = A("198.51.100.9:1");
    uint8_t             n[AUTH_NONCE_LEN], n2[AUTH_NONCE_LEN];
    uint8_t             n3[AUTH_NONCE_LEN], fresh[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, n), 0);
    ck_assert_int_eq(auth_nonce_current(t, &c2, rand_count, &rc, n2), 0);
    ck_assert_int_eq(auth_nonce_current(t, &c3, rand_count, &rc, n3), 0);
    ck_assert_uint_eq(auth_nonces_count(t), 2);
    ck_assert_int_eq(auth_nonce_check(t, &c, n), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, fresh), 0);
    ck_assert(memcmp(fresh, n, AUTH_NONCE_LEN) != 0);
    ck_assert_int_eq(auth_nonce_check(t, &c, fresh), 0);
    /* c's new entry pushed out c2, the least recent; c3 stays. */
    ck_assert_int_eq(auth_nonce_check(t, &c2, n2), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_check(t, &c3, n3), 0);
    ck_assert_uint_eq(auth_nonces_count(t), 2);
    auth_nonces_free(t);
}
END_TEST

START_TEST(test_nonce_check_marks_mru)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(2, hashkey);
    struct addr         a = A("192.0.2.1:1"), b = A("192.0.2.2:1");
    struct addr         c = A("192.0.2.3:1");
    uint8_t             na[AUTH_NONCE_LEN], nb[AUTH_NONCE_LEN];
    uint8_t             nc[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &a, rand_count, &rc, na), 0);
    ck_assert_int_eq(auth_nonce_current(t, &b, rand_count, &rc, nb), 0);
    ck_assert_int_eq(auth_nonce_check(t, &a, na), 0);     /* a now MRU */
    ck_assert_int_eq(auth_nonce_current(t, &c, rand_count, &rc, nc), 0);
    ck_assert_int_eq(auth_nonce_check(t, &a, na), 0);
    ck_assert_int_eq(auth_nonce_check(t, &b, nb), RLY_ERR_STALE);
    /* Handing out marks too: b again evicts c, not a. */
    ck_assert_int_eq(auth_nonce_current(t, &a, rand_count, &rc, na), 0);
    ck_assert_int_eq(auth_nonce_current(t, &b, rand_count, &rc, nb), 0);
    ck_assert_int_eq(auth_nonce_check(t, &c, nc), RLY_ERR_STALE);
    ck_assert_int_eq(auth_nonce_check(t, &a, na), 0);
    auth_nonces_free(t);
}
END_TEST

START_TEST(test_nonce_rand_fails)
{
    struct auth_nonces *t = auth_nonces_new(1, hashkey);
    struct addr         a = A("192.0.2.1:1"), b = A("192.0.2.2:1");
    uint8_t             na[AUTH_NONCE_LEN], nb[AUTH_NONCE_LEN];

    ck_assert_int_eq(auth_nonce_current(t, &a, rand_fail, NULL, na),
        RLY_ERR_CRYPTO);
    ck_assert_uint_eq(auth_nonces_count(t), 0);
    ck_assert_int_eq(auth_nonce_current(t, &a, rand_zero, NULL, na), 0);
    /* A failed mint evicts nobody from the full table. */
    ck_assert_int_eq(auth_nonce_current(t, &b, rand_fail, NULL, nb),
        RLY_ERR_CRYPTO);
    ck_assert_int_eq(auth_nonce_check(t, &a, na), 0);
    /* An existing entry needs no randomness. */
    ck_assert_int_eq(auth_nonce_current(t, &a, rand_fail, NULL, nb), 0);
    ck_assert_mem_eq(na, nb, AUTH_NONCE_LEN);
    auth_nonces_free(t);
}
END_TEST

START_TEST(test_tables_new_bad_cap)
{
    ck_assert_ptr_null(auth_nonces_new(0, hashkey));
    ck_assert_ptr_null(auth_ratelim_new(0, hashkey));
    ck_assert_ptr_null(auth_nonces_new((size_t)AUTH_TABLE_MAX + 1, hashkey));
    ck_assert_ptr_null(auth_ratelim_new((size_t)AUTH_TABLE_MAX + 1,
        hashkey));
    auth_nonces_free(NULL);
    auth_ratelim_free(NULL);
}
END_TEST

/* The table against a naive model: random current/check on 24 sockets
 * (IPv4 and IPv6, sharing IPs) with cap 7, so chains, eviction and the
 * free list are all exercised. */
#define MODEL_CAP   7
#define MODEL_SOCKS 24

struct model {
    int         present[MODEL_SOCKS];
    unsigned    stamp[MODEL_SOCKS];
    uint8_t     nonce[MODEL_SOCKS][AUTH_NONCE_LEN];
    unsigned    now;
};

static struct addr
model_sock(size_t i)
{
    char buf[64];

    if (i % 2 == 0)
        snprintf(buf, sizeof(buf), "192.0.2.%zu:%zu", i % 5, 1000 + i % 3);
    else
        snprintf(buf, sizeof(buf), "[2001:db8::%zu]:%zu", i % 5,
            1000 + i % 3);
    return A(buf);
}

static void
model_add(struct model *m, size_t s, const uint8_t n[AUTH_NONCE_LEN])
{
    size_t count = 0, old = 0;

    for (size_t i = 0; i < MODEL_SOCKS; i++) {
        if (!m->present[i])
            continue;
        count++;
        if (!m->present[old] || m->stamp[i] < m->stamp[old])
            old = i;
    }
    if (count == MODEL_CAP)
        m->present[old] = 0;
    m->present[s] = 1;
    memcpy(m->nonce[s], n, AUTH_NONCE_LEN);
}

START_TEST(test_nonce_table_matches_model)
{
    struct rand_counter rc = { 0 };
    struct auth_nonces *t = auth_nonces_new(MODEL_CAP, hashkey);
    struct model        m;
    uint32_t            lcg = 12345;
    uint8_t             n[AUTH_NONCE_LEN];

    memset(&m, 0, sizeof(m));
    for (int step = 0; step < 20000; step++) {
        size_t      s;
        struct addr a;

        lcg = lcg * 1103515245u + 12345u;
        s = (lcg >> 16) % MODEL_SOCKS;
        a = model_sock(s);
        m.now++;
        if ((lcg >> 8) & 1) {
            ck_assert_int_eq(auth_nonce_current(t, &a, rand_count, &rc, n),
                0);
            if (m.present[s])
                ck_assert_mem_eq(n, m.nonce[s], AUTH_NONCE_LEN);
            else
                model_add(&m, s, n);
            m.stamp[s] = m.now;
        } else {
            /* Check the model's value; absent sockets get a made-up one. */
            int want = m.present[s] ? 0 : RLY_ERR_STALE;

            if (m.present[s])
                memcpy(n, m.nonce[s], AUTH_NONCE_LEN);
            ck_assert_int_eq(auth_nonce_check(t, &a, n), want);
            m.stamp[s] = m.now;
        }
    }
    auth_nonces_free(t);
}
END_TEST

/* --- rate limit --- */

static int
take_n(struct auth_ratelim *r, const struct addr *ip, uint64_t now,
    int n, uint32_t rate, uint32_t burst)
{
    int ok = 0;

    for (int i = 0; i < n; i++)
        ok += auth_ratelim_take(r, ip, now, rate, burst);
    return ok;
}

/* C53 at table level, with the default limits (rate 100, burst 200). */
START_TEST(test_ratelim_burst_then_refill)
{
    struct auth_ratelim *r = auth_ratelim_new(16, hashkey);
    struct addr          c = A("192.0.2.1:1000");
    uint64_t             now = 5000;

    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(auth_ratelim_take(r, &c, now, 100, 200), 1);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(auth_ratelim_take(r, &c, now, 100, 200), 0);
    now += 1000;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(auth_ratelim_take(r, &c, now, 100, 200), 1);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(auth_ratelim_take(r, &c, now, 100, 200), 0);
    auth_ratelim_free(r);
}
END_TEST

START_TEST(test_ratelim_fractional_refill)
{
    struct auth_ratelim *r = auth_ratelim_new(4, hashkey);
    struct addr          c = A("192.0.2.1:1000");
    uint64_t             now = 0;

    /* 3 tokens/s: one token takes 333.3 ms, kept across small steps. */
    ck_assert_int_eq(take_n(r, &c, now, 2, 3, 1), 1);
    for (int i = 0; i < 333; i++)
        ck_assert_int_eq(auth_ratelim_take(r, &c, ++now, 3, 1), 0);
    /* 333 steps of 1 ms = 999 millitokens, then 1 ms more = 1002. */
    ck_assert_int_eq(auth_ratelim_take(r, &c, ++now, 3, 1), 1);
    ck_assert_int_eq(auth_ratelim_take(r, &c, now, 3, 1), 0);
    /* The same in one step: 333 ms give 999 millitokens, not a token. */
    now += 1000;
    ck_assert_int_eq(take_n(r, &c, now, 2, 3, 1), 1);
    now += 333;
    ck_assert_int_eq(auth_ratelim_take(r, &c, now, 3, 1), 0);
    ck_assert_int_eq(auth_ratelim_take(r, &c, ++now, 3, 1), 1);
    /* Idle for a long time: capped at burst, no overflow. */
    now += UINT64_C(1) << 60;
    ck_assert_int_eq(take_n(r, &c, now, 5, 1000000, 1), 1);
    auth_ratelim_free(r);
}
END_TEST

START_TEST(test_ratelim_per_ip_and_ports_ignored)
{
    struct auth_ratelim *r = auth_ratelim_new(16, hashkey);
    struct addr          a1 = A("192.0.2.1:1"), a2 = A("192.0.2.1:2");
    struct addr          b = A("192.0.2.2:1"), v6 = A("[2001:db8::1]:1");
    struct addr          v6p = A("[2001:db8::1]:9");

    ck_assert_int_eq(take_n(r, &a1, 0, 3, 100, 5), 3);
    ck_assert_int_eq(take_n(r, &a2, 0, 3, 100, 5), 2);  /* same IP */
    ck_assert_int_eq(take_n(r, &b, 0, 10, 100, 5), 5);
    ck_assert_int_eq(take_n(r, &v6, 0, 4, 100, 5), 4);
    ck_assert_int_eq(take_n(r, &v6p, 0, 4, 100, 5), 1);
    ck_assert_uint_eq(auth_ratelim_count(r), 3);
    auth_ratelim_free(r);
}
END_TEST

START_TEST(test_ratelim_rate_zero_disables)
{
    struct auth_ratelim *r = auth_ratelim_new(1, hashkey);
    struct addr          a = A("192.0.2.1:1"), b = A("192.0.2.2:1");

    ck_assert_int_eq(take_n(r, &a, 0, 1000, 0, 5), 1000);
    ck_assert_uint_eq(auth_ratelim_count(r), 0);
    ck_assert_int_eq(take_n(r, &b, 0, 10, 100, 5), 5);
    /* Disabled calls for a record nothing, so b's empty bucket stays. */
    ck_assert_int_eq(take_n(r, &a, 0, 10, 0, 5), 10);
    ck_assert_int_eq(auth_ratelim_take(r, &b, 0, 100, 5), 0);
    ck_assert_uint_eq(auth_ratelim_count(r), 1);
    auth_ratelim_free(r);
}
END_TEST

START_TEST(test_ratelim_lru_eviction_resets)
{
    struct auth_ratelim *r = auth_ratelim_new(2, hashkey);
    struct addr          a = A("192.0.2.1:1"), b = A("192.0.2.2:1");
    struct addr          c = A("192.0.2.3:1");

    ck_assert_int_eq(take_n(r, &a, 0, 5, 100, 3), 3);
    ck_assert_int_eq(take_n(r, &b, 0, 5, 100, 3), 3);
    ck_assert_int_eq(auth_ratelim_take(r, &a, 0, 100, 3), 0);  /* a MRU */
    ck_assert_int_eq(take_n(r, &c, 0, 5, 100, 3), 3);          /* evicts b */
    ck_assert_uint_eq(auth_ratelim_count(r), 2);
    ck_assert_int_eq(auth_ratelim_take(r, &a, 0, 100, 3), 0);
    ck_assert_int_eq(take_n(r, &b, 0, 5, 100, 3), 3);   /* full again */
    auth_ratelim_free(r);
}
END_TEST

START_TEST(test_ratelim_clock_and_burst_changes)
{
    struct auth_ratelim *r = auth_ratelim_new(2, hashkey);
    struct addr          a = A("192.0.2.1:1");

    ck_assert_int_eq(take_n(r, &a, 10000, 10, 100, 10), 10);
    /* A clock step back refills nothing and does not rewind the bucket. */
    ck_assert_int_eq(auth_ratelim_take(r, &a, 5000, 100, 10), 0);
    ck_assert_int_eq(auth_ratelim_take(r, &a, 10009, 100, 10), 0);
    ck_assert_int_eq(auth_ratelim_take(r, &a, 10010, 100, 10), 1);
    /* A reload lowering the burst caps a full bucket. */
    ck_assert_int_eq(take_n(r, &a, 60000, 10, 100, 2), 2);
    auth_ratelim_free(r);
}
END_TEST

Suite *
auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *cred = tcase_create("credentials");
    TCase *nonce = tcase_create("nonces");
    TCase *rl = tcase_create("ratelim");

    tcase_add_test(cred, test_c20_password_and_key_vectors);
    tcase_add_test(cred, test_c21_credentials_password);
    tcase_add_test(cred, test_base64_nopad_rfc4648);
    tcase_add_test(cred, test_key_canonical_expiry);
    tcase_add_test(cred, test_key_empty_salt);
    tcase_add_loop_test(cred, test_username_unparsable, 0,
        (int)NELEM(bad_users));
    tcase_add_test(cred, test_username_max_expiry);
    tcase_add_test(cred, test_secret_generate_zero);
    tcase_add_test(cred, test_secret_generate_counting);
    tcase_add_test(cred, test_secret_generate_rand_fails);
    tcase_add_test(cred, test_secret_ok_boundaries);
    suite_add_tcase(s, cred);

    tcase_add_test(nonce, test_nonce_parse_forms);
    tcase_add_loop_test(nonce, test_nonce_parse_rejects, 0,
        (int)NELEM(bad_nonces));
    tcase_add_test(nonce, test_nonce_format);
    tcase_add_test(nonce, test_nonce_zero_randomness);
    tcase_add_test(nonce, test_nonce_current_stable_per_socket);
    tcase_add_test(nonce, test_nonce_ten_thousand_uses);
    tcase_add_test(nonce, test_nonce_stale_on_other_socket);
    tcase_add_test(nonce, test_nonce_wrong_value_keeps_entry);
    tcase_add_test(nonce, test_nonce_lru_evicts_oldest);
    tcase_add_test(nonce, test_nonce_check_marks_mru);
    tcase_add_test(nonce, test_nonce_rand_fails);
    tcase_add_test(nonce, test_tables_new_bad_cap);
    tcase_add_test(nonce, test_nonce_table_matches_model);
    suite_add_tcase(s, nonce);

    tcase_add_test(rl, test_ratelim_burst_then_refill);
    tcase_add_test(rl, test_ratelim_fractional_refill);
    tcase_add_test(rl, test_ratelim_per_ip_and_ports_ignored);
    tcase_add_test(rl, test_ratelim_rate_zero_disables);
    tcase_add_test(rl, test_ratelim_lru_eviction_resets);
    tcase_add_test(rl, test_ratelim_clock_and_burst_changes);
    suite_add_tcase(s, rl);
    return s;
}
