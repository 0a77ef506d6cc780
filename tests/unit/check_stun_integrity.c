/* check_stun_integrity.c - MESSAGE-INTEGRITY, FINGERPRINT, CRC-32 and the
 * long-term key (SPEC §2.10, §3.5; RFC 5769): the SPEC's own vectors,
 * the RFC 5769 messages, and every way a check must fail. */
#include <check.h>
#include <string.h>

#include "helper.h"
#include "rly_err.h"
#include "stun_integrity.h"
#include "stun_msg.h"
#include "suites.h"
#include "vectors.h"

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))

static size_t
hx(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = hex2bin(hex, out, cap);

    ck_assert_msg(n != (size_t)-1, "bad hex in test: %s", hex);
    return n;
}

/* Bit-at-a-time CRC-32 (reflected 0xEDB88320), the reference the table
 * must agree with. */
static uint32_t
crc32_bitwise(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;

    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return ~crc;
}

/* --- CRC-32 and FINGERPRINT ------------------------------------------ */

START_TEST(test_crc32_check_value)
{
    uint8_t  buf[600];
    uint32_t seed = 1;

    /* The CRC-32 catalogue's check value and the empty string. */
    ck_assert_uint_eq(stun_crc32((const uint8_t *)"123456789", 9),
        0xCBF43926u);
    ck_assert_uint_eq(stun_crc32(buf, 0), 0);
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (size_t n = 0; n <= sizeof(buf); n += 7)
        ck_assert_uint_eq(stun_crc32(buf, n), crc32_bitwise(buf, n));
    for (int b = 0; b < 256; b++) {
        uint8_t one = (uint8_t)b;

        ck_assert_uint_eq(stun_crc32(&one, 1), crc32_bitwise(&one, 1));
    }
}
END_TEST

/* SPEC §2.10: a Binding request with a zero transaction id and only
 * FINGERPRINT. */
START_TEST(test_spec_fingerprint_vector)
{
    uint8_t             vec[32], out[64], txid[12] = { 0 };
    size_t              n = hx(SPEC_FP_ONLY, vec, sizeof(vec));
    struct stun_builder b;
    struct stun_msg     m;

    ck_assert_uint_eq(n, 28);
    stun_build_init(&b, out, sizeof(out),
        stun_type(STUN_BINDING, STUN_REQUEST), txid, 0);
    stun_build_fingerprint(&b);
    ck_assert_int_eq(stun_build_finish(&b), 28);
    ck_assert_mem_eq(out, vec, n);
    ck_assert_uint_eq(stun_fingerprint_compute(vec, 20), 0xb2aaf9f6u);
    ck_assert_int_eq(stun_msg_parse(&m, vec, n), 0);
    ck_assert_uint_eq(m.attr[STUN_K_FINGERPRINT].off, 20);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
    /* The length field is patched, not taken from the buffer. */
    vec[3] = 0;
    ck_assert_uint_eq(stun_fingerprint_compute(vec, 20), 0xb2aaf9f6u);
}
END_TEST

START_TEST(test_rfc5769_fingerprints)
{
    static const char *const vecs[] = {
        RFC5769_REQUEST, RFC5769_RESPONSE4, RFC5769_RESPONSE6,
    };
    uint8_t         buf[256];
    struct stun_msg m;

    for (size_t i = 0; i < NELEM(vecs); i++) {
        size_t n = hx(vecs[i], buf, sizeof(buf));

        ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
        ck_assert_uint_eq(m.attr[STUN_K_FINGERPRINT].off, n - 8);
        ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
        /* One flipped bit anywhere before it, except in the length field
         * (which is rewritten), changes it. */
        for (size_t j = 0; j < n - 8; j++) {
            uint32_t want = (uint32_t)buf[n - 4] << 24 |
                (uint32_t)buf[n - 3] << 16 | (uint32_t)buf[n - 2] << 8 |
                buf[n - 1];

            buf[j] ^= 0x10;
            ck_assert_msg((stun_fingerprint_compute(buf, n - 8) == want) ==
                (j == 2 || j == 3), "vector %zu byte %zu", i, j);
            buf[j] ^= 0x10;
        }
    }
}
END_TEST

static const struct {
    const char *name;
    const char *hex;
    int         rc;
} fp_cases[] = {
    { "valid", SPEC_FP_ONLY, 0 },
    { "absent", "0001 0000 2112a442 000000000000000000000000", 0 },
    { "wrong_value",
      "0001 0008 2112a442 000000000000000000000000 8028 0004 b2aaf9f7",
      RLY_ERR_AUTH },
    { "zero_value",
      "0001 0008 2112a442 000000000000000000000000 8028 0004 00000000",
      RLY_ERR_AUTH },
    { "other_txid",
      "0001 0008 2112a442 000000000000000000000001 8028 0004 b2aaf9f6",
      RLY_ERR_AUTH },
    { "not_last",
      "0001 000c 2112a442 000000000000000000000000 8028 0004 b2aaf9f6"
      "8022 0000", RLY_ERR_AUTH },
    { "twice",
      "0001 0010 2112a442 000000000000000000000000 8028 0004 b2aaf9f6"
      "8028 0004 b2aaf9f6", RLY_ERR_AUTH },
    { "len_2",
      "0001 0008 2112a442 000000000000000000000000 8028 0002 b2aa 0000",
      RLY_ERR_AUTH },
    { "len_8",
      "0001 000c 2112a442 000000000000000000000000 8028 0008 b2aaf9f6"
      "00000000", RLY_ERR_AUTH },
};

START_TEST(test_fingerprint_verify_cases)
{
    uint8_t         buf[64];
    size_t          n = hx(fp_cases[_i].hex, buf, sizeof(buf));
    struct stun_msg m;

    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_msg(stun_fingerprint_verify(&m) == fp_cases[_i].rc,
        "%s: %d", fp_cases[_i].name, stun_fingerprint_verify(&m));
}
END_TEST

/* --- MESSAGE-INTEGRITY ----------------------------------------------- */

/* SPEC §3.5: HMAC-SHA1 keyed with the third row's key over a header that
 * announces a MESSAGE-INTEGRITY right after it. */
START_TEST(test_spec_hmac_vector)
{
    uint8_t key[16], msg[20], want[20], got[20];

    ck_assert_uint_eq(hx(SPEC_ROW3_KEY, key, sizeof(key)), 16);
    ck_assert_uint_eq(hx(SPEC_HMAC_INPUT, msg, sizeof(msg)), 20);
    ck_assert_uint_eq(hx(SPEC_HMAC_ROW3, want, sizeof(want)), 20);
    ck_assert_int_eq(stun_integrity_compute(msg, 20, key, 16, got), 0);
    ck_assert_mem_eq(got, want, 20);
    /* The length field is rewritten to 0x0018 whatever the buffer says. */
    msg[2] = 0xff;
    msg[3] = 0xff;
    ck_assert_int_eq(stun_integrity_compute(msg, 20, key, 16, got), 0);
    ck_assert_mem_eq(got, want, 20);
}
END_TEST

static const struct {
    const char *user;
    const char *password;
    const char *key;
} key_cases[] = {
    { SPEC_ROW1_USER, SPEC_ROW1_PASSWORD, SPEC_ROW1_KEY },
    { SPEC_ROW3_USER, SPEC_ROW3_PASSWORD, SPEC_ROW3_KEY },
};

START_TEST(test_spec_long_term_keys)
{
    uint8_t key[16], want[16];

    hx(key_cases[_i].key, want, sizeof(want));
    ck_assert_int_eq(stun_long_term_key((const uint8_t *)key_cases[_i].user,
        strlen(key_cases[_i].user), SPEC_REALM, key_cases[_i].password,
        key), 0);
    ck_assert_mem_eq(key, want, 16);
}
END_TEST

/* RFC 5769 §2.4: the key is MD5 of the UTF-8 username, the realm and the
 * (already SASLprep'd) password; the request's MI verifies with it. */
START_TEST(test_rfc5769_long_term_key)
{
    uint8_t         vec[256], user[32], key[16], want[16];
    size_t          n = hx(RFC5769_LT_REQUEST, vec, sizeof(vec));
    size_t          ulen = hx(RFC5769_LT_USERNAME, user, sizeof(user));
    struct stun_msg m;

    hx(RFC5769_LT_KEY, want, sizeof(want));
    ck_assert_int_eq(stun_long_term_key(user, ulen, RFC5769_LT_REALM,
        RFC5769_LT_PASSWORD, key), 0);
    ck_assert_mem_eq(key, want, 16);
    ck_assert_int_eq(stun_msg_parse(&m, vec, n), 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), 0);
    ck_assert_int_eq(stun_long_term_key(user, ulen, RFC5769_LT_REALM,
        "thematrix", key), 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), RLY_ERR_AUTH);
}
END_TEST

START_TEST(test_rfc5769_short_term_integrity)
{
    static const char *const vecs[] = {
        RFC5769_REQUEST, RFC5769_RESPONSE4, RFC5769_RESPONSE6,
    };
    const uint8_t  *pw = (const uint8_t *)RFC5769_PASSWORD;
    size_t          pwlen = strlen(RFC5769_PASSWORD);
    uint8_t         buf[256];
    struct stun_msg m;

    for (size_t i = 0; i < NELEM(vecs); i++) {
        size_t n = hx(vecs[i], buf, sizeof(buf));
        size_t mi;

        ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
        ck_assert_int_eq(stun_integrity_verify(&m, pw, pwlen), 0);
        ck_assert_int_eq(stun_integrity_verify(&m, pw, pwlen - 1),
            RLY_ERR_AUTH);
        mi = m.attr[STUN_K_MESSAGE_INTEGRITY].off;
        /* Every byte before it matters except the length field, which is
         * rewritten; so does every byte of the MAC itself. */
        for (size_t j = 0; j < mi; j++) {
            uint8_t mac[STUN_MI_LEN];

            buf[j] ^= 0x01;
            ck_assert_int_eq(stun_integrity_compute(buf, mi, pw, pwlen, mac),
                0);
            ck_assert_msg((memcmp(mac, buf + mi + 4, STUN_MI_LEN) == 0) ==
                (j == 2 || j == 3), "vector %zu byte %zu", i, j);
            buf[j] ^= 0x01;
        }
        for (size_t j = mi + 4; j < mi + 24; j++) {
            buf[j] ^= 0x80;
            ck_assert_int_eq(stun_integrity_verify(&m, pw, pwlen),
                RLY_ERR_AUTH);
            buf[j] ^= 0x80;
        }
        buf[n - 1] ^= 0x01;
        ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
        ck_assert_int_eq(stun_integrity_verify(&m, pw, pwlen), 0);
        ck_assert_int_eq(stun_fingerprint_verify(&m), RLY_ERR_AUTH);
        buf[n - 1] ^= 0x01;
    }
}
END_TEST

/* MESSAGE-INTEGRITY covers what precedes it, with the length as if it
 * were last: attributes appended after it change nothing. */
START_TEST(test_integrity_ignores_what_follows)
{
    uint8_t             buf[128], txid[12] = { 9 }, key[16];
    struct stun_builder b;
    struct stun_msg     m;
    int                 n;

    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)(0xA0 + i);
    stun_build_init(&b, buf, sizeof(buf),
        stun_type(STUN_REFRESH, STUN_REQUEST), txid, 0);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 0);
    stun_build_integrity(&b, key);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "after", 5);
    stun_build_attr(&b, STUN_ATTR_LIFETIME, "\x00\x01", 2);  /* breaks */
    stun_build_fingerprint(&b);
    ck_assert_int_gt(n = stun_build_finish(&b), 0);
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), 0);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
    key[0] ^= 1;
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), RLY_ERR_AUTH);
}
END_TEST

START_TEST(test_integrity_missing_or_short)
{
    uint8_t         buf[64];
    uint8_t         key[16] = { 0 };
    size_t          n;
    struct stun_msg m;

    /* No MESSAGE-INTEGRITY. */
    n = hx("0001 0008 2112a442 000000000000000000000000 000d 0004 00000000",
        buf, sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), RLY_ERR_AUTH);
    /* Only MESSAGE-INTEGRITY-SHA256: unprotected. */
    n = hx("0001 0024 2112a442 000000000000000000000000 001c 0020"
        "0000000000000000 0000000000000000 0000000000000000"
        "0000000000000000", buf, sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), RLY_ERR_AUTH);
    /* 19 bytes, even if they were right. */
    n = hx("0001 0018 2112a442 000000000000000000000000 0008 0013"
        "0000000000 0000000000 0000000000 0000000000", buf, sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(m.bad_attr, 1);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), RLY_ERR_AUTH);
}
END_TEST

/* Keys of any length, the empty one included. */
START_TEST(test_integrity_key_lengths)
{
    static const size_t lens[] = { 0, 1, 16, 22, 64, 65, 200 };
    uint8_t             buf[128], txid[12] = { 3 }, key[200];
    struct stun_builder b;
    struct stun_msg     m;
    int                 n;

    memset(key, 0x5C, sizeof(key));
    for (size_t i = 0; i < NELEM(lens); i++) {
        stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
        stun_build_attr(&b, STUN_ATTR_USERNAME, "u", 1);
        stun_build_integrity_key(&b, key, lens[i]);
        ck_assert_int_gt(n = stun_build_finish(&b), 0);
        ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n), 0);
        ck_assert_int_eq(stun_integrity_verify(&m, key, lens[i]), 0);
        if (lens[i] > 0)
            ck_assert_int_eq(stun_integrity_verify(&m, key, lens[i] - 1),
                RLY_ERR_AUTH);
    }
}
END_TEST

Suite *
stun_integrity_suite(void)
{
    Suite *s = suite_create("stun_integrity");
    TCase *tc;

    tc = tcase_create("fingerprint");
    tcase_add_test(tc, test_crc32_check_value);
    tcase_add_test(tc, test_spec_fingerprint_vector);
    tcase_add_test(tc, test_rfc5769_fingerprints);
    tcase_add_loop_test(tc, test_fingerprint_verify_cases, 0,
        NELEM(fp_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("integrity");
    tcase_add_test(tc, test_spec_hmac_vector);
    tcase_add_loop_test(tc, test_spec_long_term_keys, 0, NELEM(key_cases));
    tcase_add_test(tc, test_rfc5769_long_term_key);
    tcase_add_test(tc, test_rfc5769_short_term_integrity);
    tcase_add_test(tc, test_integrity_ignores_what_follows);
    tcase_add_test(tc, test_integrity_missing_or_short);
    tcase_add_test(tc, test_integrity_key_lengths);
    suite_add_tcase(s, tc);
    return s;
}
