/* check_stun_msg.c - STUN parsing and building (SPEC §2.3, §2.4, §2.9):
 * the RFC 5769 vectors parsed and rebuilt byte for byte, the message type
 * bit layout, framing errors, every attribute value rule, UTF-8, XOR
 * addresses, and the builder's sticky errors.  Malformed input must give
 * an error, never a crash: truncations, bit flips and random bytes are
 * parsed from exact-size heap copies so the sanitizer build sees any
 * over-read. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"
#include "rly_err.h"
#include "stun_integrity.h"
#include "stun_msg.h"
#include "suites.h"
#include "vectors.h"

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))

/* A transaction id for hand-written messages: bytes 00..0b. */
#define HDR_TAIL    "2112a442 000102030405060708090a0b"
/* 20 zero bytes: a MESSAGE-INTEGRITY value, or 19 bytes and padding. */
#define Z20         "00000000000000000000 00000000000000000000"
#define MI_OK       "0008 0014 " Z20

static size_t
hx(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = hex2bin(hex, out, cap);

    ck_assert_msg(n != (size_t)-1, "bad hex in test: %s", hex);
    return n;
}

/* A Binding request with txid 00..0b whose attributes are attrs (hex);
 * the length field is computed. */
static size_t
msg_with(const char *attrs, uint8_t *out, size_t cap)
{
    size_t n;

    ck_assert_uint_ge(cap, STUN_HDR_LEN);
    hx("0001 0000 " HDR_TAIL, out, cap);
    n = hx(attrs, out + STUN_HDR_LEN, cap - STUN_HDR_LEN);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    return STUN_HDR_LEN + n;
}

/* Parses a heap copy of exactly len bytes, so that reading one byte past
 * the end is caught by ASan. */
static int
parse_exact(const uint8_t *buf, size_t len, struct stun_msg *m,
    uint8_t **copy)
{
    *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(*copy);
    if (len > 0)
        memcpy(*copy, buf, len);
    return stun_msg_parse(m, *copy, len);
}

static uint32_t
xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static uint16_t
hdr_len(const uint8_t *buf)
{
    return (uint16_t)(buf[2] << 8 | buf[3]);
}

/* --- Message type ---------------------------------------------------- */

static const struct {
    uint16_t        method;
    enum stun_class cls;
    uint16_t        type;
} type_cases[] = {
    { STUN_BINDING, STUN_REQUEST, 0x0001 },
    { STUN_BINDING, STUN_SUCCESS, 0x0101 },
    { STUN_BINDING, STUN_ERROR, 0x0111 },
    { STUN_BINDING, STUN_INDICATION, 0x0011 },
    { STUN_ALLOCATE, STUN_REQUEST, 0x0003 },
    { STUN_ALLOCATE, STUN_SUCCESS, 0x0103 },
    { STUN_ALLOCATE, STUN_ERROR, 0x0113 },
    { STUN_REFRESH, STUN_SUCCESS, 0x0104 },
    { STUN_REFRESH, STUN_ERROR, 0x0114 },
    { STUN_SEND, STUN_INDICATION, 0x0016 },
    { STUN_DATA, STUN_INDICATION, 0x0017 },
    { STUN_CREATE_PERMISSION, STUN_SUCCESS, 0x0108 },
    { STUN_CREATE_PERMISSION, STUN_ERROR, 0x0118 },
    { STUN_CHANNEL_BIND, STUN_REQUEST, 0x0009 },
    { STUN_CHANNEL_BIND, STUN_SUCCESS, 0x0109 },
    { STUN_CHANNEL_BIND, STUN_ERROR, 0x0119 },
    { 0x00A, STUN_REQUEST, 0x000A },
    { 0x010, STUN_REQUEST, 0x0020 },
    { 0x080, STUN_REQUEST, 0x0200 },
    { 0xFFF, STUN_REQUEST, 0x3EEF },
    { 0xFFF, STUN_ERROR, 0x3FFF },
};

START_TEST(test_stun_type_bits)
{
    ck_assert_uint_eq(stun_type(type_cases[_i].method, type_cases[_i].cls),
        type_cases[_i].type);
    ck_assert_uint_eq(stun_type_method(type_cases[_i].type),
        type_cases[_i].method);
    ck_assert_int_eq(stun_type_class(type_cases[_i].type),
        type_cases[_i].cls);
}
END_TEST

/* --- RFC 5769 -------------------------------------------------------- */

START_TEST(test_rfc5769_sample_request)
{
    uint8_t             vec[256], out[256], txid[12], ice[8];
    size_t              n = hx(RFC5769_REQUEST, vec, sizeof(vec)), len;
    const uint8_t      *v;
    struct stun_msg     m;
    struct stun_builder b;
    uint32_t            prio = RFC5769_REQUEST_PRIORITY;
    uint8_t             priov[4] = {
        (uint8_t)(prio >> 24), (uint8_t)(prio >> 16), (uint8_t)(prio >> 8),
        (uint8_t)prio };

    hx(RFC5769_TXID, txid, sizeof(txid));
    hx(RFC5769_REQUEST_ICE_CONTROLLED, ice, sizeof(ice));
    ck_assert_uint_eq(n, 108);
    ck_assert_int_eq(stun_msg_parse(&m, vec, n), 0);
    ck_assert_uint_eq(m.len, n);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_int_eq(m.cls, STUN_REQUEST);
    ck_assert_mem_eq(m.txid, txid, 12);
    ck_assert_int_eq(m.bad_attr, 0);
    ck_assert_int_eq(m.fp_not_last, 0);
    v = stun_msg_attr(&m, STUN_K_SOFTWARE, &len);
    ck_assert_uint_eq(len, strlen(RFC5769_REQUEST_SOFTWARE));
    ck_assert_mem_eq(v, RFC5769_REQUEST_SOFTWARE, len);
    v = stun_msg_attr(&m, STUN_K_USERNAME, &len);
    ck_assert_uint_eq(len, strlen(RFC5769_REQUEST_USERNAME));
    ck_assert_mem_eq(v, RFC5769_REQUEST_USERNAME, len);
    ck_assert_int_eq(stun_integrity_verify(&m,
        (const uint8_t *)RFC5769_PASSWORD, strlen(RFC5769_PASSWORD)), 0);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);

    stun_build_init(&b, out, sizeof(out),
        stun_type(STUN_BINDING, STUN_REQUEST), txid, 0x20);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, RFC5769_REQUEST_SOFTWARE,
        strlen(RFC5769_REQUEST_SOFTWARE));
    stun_build_attr(&b, 0x0024, priov, sizeof(priov));
    stun_build_attr(&b, 0x8029, ice, sizeof(ice));
    stun_build_attr(&b, STUN_ATTR_USERNAME, RFC5769_REQUEST_USERNAME,
        strlen(RFC5769_REQUEST_USERNAME));
    stun_build_integrity_key(&b, (const uint8_t *)RFC5769_PASSWORD,
        strlen(RFC5769_PASSWORD));
    stun_build_fingerprint(&b);
    ck_assert_int_eq(stun_build_finish(&b), (int)n);
    ck_assert_mem_eq(out, vec, n);
}
END_TEST

/* §2.2 and §2.3 differ only in the address. */
static void
check_sample_response(const char *hex, const char *mapped, size_t want_len)
{
    uint8_t             vec[256], out[256], txid[12];
    size_t              n = hx(hex, vec, sizeof(vec)), len;
    const uint8_t      *v;
    struct stun_msg     m;
    struct stun_builder b;
    struct addr         got, exp = A(mapped);

    hx(RFC5769_TXID, txid, sizeof(txid));
    ck_assert_uint_eq(n, want_len);
    ck_assert_int_eq(stun_msg_parse(&m, vec, n), 0);
    ck_assert_uint_eq(m.type, 0x0101);
    ck_assert_uint_eq(m.method, STUN_BINDING);
    ck_assert_int_eq(m.cls, STUN_SUCCESS);
    ck_assert_int_eq(m.bad_attr, 0);
    v = stun_msg_attr(&m, STUN_K_SOFTWARE, &len);
    ck_assert_uint_eq(len, strlen(RFC5769_RESPONSE_SOFTWARE));
    ck_assert_mem_eq(v, RFC5769_RESPONSE_SOFTWARE, len);
    v = stun_msg_attr(&m, STUN_K_XOR_MAPPED_ADDRESS, &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stun_xor_addr_decode(v, len, m.txid, &got), 0);
    ck_assert(addr_eq(&got, &exp));
    ck_assert_int_eq(stun_integrity_verify(&m,
        (const uint8_t *)RFC5769_PASSWORD, strlen(RFC5769_PASSWORD)), 0);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);

    stun_build_init(&b, out, sizeof(out),
        stun_type(STUN_BINDING, STUN_SUCCESS), txid, 0x20);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, RFC5769_RESPONSE_SOFTWARE,
        strlen(RFC5769_RESPONSE_SOFTWARE));
    stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &exp);
    stun_build_integrity_key(&b, (const uint8_t *)RFC5769_PASSWORD,
        strlen(RFC5769_PASSWORD));
    stun_build_fingerprint(&b);
    ck_assert_int_eq(stun_build_finish(&b), (int)n);
    ck_assert_mem_eq(out, vec, n);
}

START_TEST(test_rfc5769_ipv4_response)
{
    check_sample_response(RFC5769_RESPONSE4, RFC5769_RESPONSE4_MAPPED, 80);
}
END_TEST

START_TEST(test_rfc5769_ipv6_response)
{
    check_sample_response(RFC5769_RESPONSE6, RFC5769_RESPONSE6_MAPPED, 92);
}
END_TEST

START_TEST(test_rfc5769_long_term_request)
{
    uint8_t             vec[256], out[256], txid[12], user[32], key[16];
    size_t              n = hx(RFC5769_LT_REQUEST, vec, sizeof(vec)), len;
    size_t              ulen = hx(RFC5769_LT_USERNAME, user, sizeof(user));
    const uint8_t      *v;
    struct stun_msg     m;
    struct stun_builder b;

    hx(RFC5769_LT_TXID, txid, sizeof(txid));
    ck_assert_uint_eq(n, 116);
    ck_assert_uint_eq(ulen, 18);
    ck_assert_int_eq(stun_msg_parse(&m, vec, n), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    ck_assert_mem_eq(m.txid, txid, 12);
    v = stun_msg_attr(&m, STUN_K_USERNAME, &len);
    ck_assert_uint_eq(len, ulen);
    ck_assert_mem_eq(v, user, ulen);
    ck_assert_int_eq(stun_utf8_count(v, len), 6);
    v = stun_msg_attr(&m, STUN_K_NONCE, &len);
    ck_assert_uint_eq(len, strlen(RFC5769_LT_NONCE));
    ck_assert_mem_eq(v, RFC5769_LT_NONCE, len);
    v = stun_msg_attr(&m, STUN_K_REALM, &len);
    ck_assert_uint_eq(len, strlen(RFC5769_LT_REALM));
    ck_assert_mem_eq(v, RFC5769_LT_REALM, len);
    ck_assert_ptr_null(stun_msg_attr(&m, STUN_K_FINGERPRINT, &len));
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
    ck_assert_int_eq(stun_long_term_key(user, ulen, RFC5769_LT_REALM,
        RFC5769_LT_PASSWORD, key), 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, sizeof(key)), 0);

    /* Rebuilt with zero padding and the 16-byte-key entry point. */
    stun_build_init(&b, out, sizeof(out),
        stun_type(STUN_BINDING, STUN_REQUEST), txid, 0);
    stun_build_attr(&b, STUN_ATTR_USERNAME, user, ulen);
    stun_build_attr(&b, STUN_ATTR_NONCE, RFC5769_LT_NONCE,
        strlen(RFC5769_LT_NONCE));
    stun_build_attr(&b, STUN_ATTR_REALM, RFC5769_LT_REALM,
        strlen(RFC5769_LT_REALM));
    stun_build_integrity(&b, key);
    ck_assert_int_eq(stun_build_finish(&b), (int)n);
    ck_assert_mem_eq(out, vec, n);
}
END_TEST

/* --- Framing (SPEC §2.3): each of these is RLY_ERR_MALFORMED ---------- */

static const struct {
    const char *name;
    const char *hex;
} framing_cases[] = {
    { "empty", "" },
    { "one_byte", "00" },
    { "header_19_bytes", "0001 0000 2112a442 000102030405060708090a" },
    { "bad_cookie", "0001 0000 2112a443 000102030405060708090a0b" },
    { "cookie_byte_swapped", "0001 0000 42a41221 000102030405060708090a0b" },
    { "length_not_multiple_of_4", "0001 0002 " HDR_TAIL " 0000" },
    { "length_odd", "0001 0001 " HDR_TAIL " 00" },
    { "length_too_large", "0001 0008 " HDR_TAIL " 8022 0000" },
    { "length_max_no_body", "0001 fffc " HDR_TAIL },
    { "trailing_bytes", "0001 0000 " HDR_TAIL " 00000000" },
    { "trailing_after_attr", "0001 0004 " HDR_TAIL " 8022 0000 00000000" },
    { "attr_past_end", "0001 0008 " HDR_TAIL " 8022 0008 61626364" },
    { "attr_padding_past_end", "0001 0008 " HDR_TAIL " 8022 0005 61626364" },
    { "attr_len_ffff", "0001 0008 " HDR_TAIL " 8022 ffff 61626364" },
    { "unknown_attr_past_end", "0001 0004 " HDR_TAIL " 0024 0001" },
    { "second_attr_past_end",
      "0001 000c " HDR_TAIL " 000d 0004 00000258 0006 0004" },
    { "attr_after_mi_past_end",
      "0001 0020 " HDR_TAIL " " MI_OK " 8022 0008 61626364" },
    { "attr_after_fp_past_end",
      "0001 000c " HDR_TAIL " 8028 0004 00000000 8022 0004" },
};

START_TEST(test_stun_parse_malformed)
{
    uint8_t          buf[128], *copy;
    size_t           n = hx(framing_cases[_i].hex, buf, sizeof(buf));
    struct stun_msg  m;

    ck_assert_msg(parse_exact(buf, n, &m, &copy) == RLY_ERR_MALFORMED,
        "%s accepted", framing_cases[_i].name);
    free(copy);
}
END_TEST

/* --- Value rules (SPEC §2.4): parse succeeds, bad_attr names the first
 * breaker before MESSAGE-INTEGRITY -------------------------------------- */

static const struct {
    const char *name;
    const char *attrs;
    int         bad;
    uint16_t    bad_type;
    int         fp_not_last;
} rule_cases[] = {
    { "no_attributes", "", 0, 0, 0 },
    /* Address rule. */
    { "xor_peer_v4", "0012 0008 0001 1234 01020304", 0, 0, 0 },
    { "xor_peer_byte0_ignored", "0012 0008 ff01 1234 01020304", 0, 0, 0 },
    { "xor_peer_v6",
      "0012 0014 0002 1234 0102030405060708 090a0b0c0d0e0f10", 0, 0, 0 },
    { "xor_peer_family_3", "0012 0008 0003 1234 01020304", 1, 0x0012, 0 },
    { "xor_peer_family_0", "0012 0008 0000 1234 01020304", 1, 0x0012, 0 },
    { "xor_peer_v4_len_20",
      "0012 0014 0001 1234 0102030405060708 090a0b0c0d0e0f10", 1, 0x0012,
      0 },
    { "xor_peer_v6_len_8", "0012 0008 0002 1234 01020304", 1, 0x0012, 0 },
    { "xor_peer_v4_len_7", "0012 0007 0001 1234 010203 00", 1, 0x0012, 0 },
    { "xor_peer_len_0", "0012 0000", 1, 0x0012, 0 },
    { "xor_peer_len_1", "0012 0001 00000000", 1, 0x0012, 0 },
    { "xor_mapped_family_4", "0020 0008 0004 1234 01020304", 1, 0x0020, 0 },
    { "xor_relayed_len_12", "0016 000c 0001 1234 0102030405060708", 1,
      0x0016, 0 },
    /* CHANNEL-NUMBER. */
    { "channel_3fff", "000c 0004 3fff 0000", 1, 0x000c, 0 },
    { "channel_8000", "000c 0004 8000 0000", 1, 0x000c, 0 },
    { "channel_4000", "000c 0004 4000 0000", 0, 0, 0 },
    { "channel_7fff_rffu_ignored", "000c 0004 7fff ffff", 0, 0, 0 },
    { "channel_len_2", "000c 0002 4000 0000", 1, 0x000c, 0 },
    { "channel_len_8", "000c 0008 4000 0000 0000 0000", 1, 0x000c, 0 },
    /* LIFETIME, REQUESTED-TRANSPORT, RAF, AAF. */
    { "lifetime", "000d 0004 00000258", 0, 0, 0 },
    { "lifetime_len_2", "000d 0002 0258 0000", 1, 0x000d, 0 },
    { "lifetime_len_8", "000d 0008 00000000 00000258", 1, 0x000d, 0 },
    { "transport", "0019 0004 11000000", 0, 0, 0 },
    { "transport_len_1", "0019 0001 11000000", 1, 0x0019, 0 },
    { "raf_v4", "0017 0004 01000000", 0, 0, 0 },
    { "raf_v6", "0017 0004 02000000", 0, 0, 0 },
    { "raf_3", "0017 0004 03000000", 1, 0x0017, 0 },
    { "raf_len_8", "0017 0008 01000000 00000000", 1, 0x0017, 0 },
    { "aaf_v6", "8000 0004 02000000", 0, 0, 0 },
    { "aaf_0", "8000 0004 00000000", 1, 0x8000, 0 },
    /* MESSAGE-INTEGRITY, FINGERPRINT. */
    { "mi_20", MI_OK, 0, 0, 0 },
    { "mi_19", "0008 0013 " Z20, 1, 0x0008, 0 },
    { "mi_21", "0008 0015 " Z20 " 00000000", 1, 0x0008, 0 },
    { "fp_len_2", "8028 0002 0000 0000", 1, 0x8028, 0 },
    /* ERROR-CODE. */
    { "error_400", "0009 0004 0000 0400", 0, 0, 0 },
    { "error_699", "0009 0004 0000 0663", 0, 0, 0 },
    { "error_reason", "0009 000f 0000 0426 5374616c65204e6f6e6365 00", 0, 0,
      0 },
    { "error_reserved_bits_ignored", "0009 0004 ffff fc00", 0, 0, 0 },
    { "error_class_2", "0009 0004 0000 0200", 1, 0x0009, 0 },
    { "error_class_7", "0009 0004 0000 0700", 1, 0x0009, 0 },
    { "error_number_100", "0009 0004 0000 0464", 1, 0x0009, 0 },
    { "error_len_3", "0009 0003 000004 00", 1, 0x0009, 0 },
    { "error_reason_bad_utf8", "0009 0005 00000400 ff000000", 1, 0x0009, 0 },
    /* Text and USERNAME: UTF-8 (long ones in test_stun_text_rule). */
    { "realm_overlong", "0014 0002 c0af 0000", 1, 0x0014, 0 },
    { "nonce_surrogate", "0015 0003 eda080 00", 1, 0x0015, 0 },
    { "software_truncated", "8022 0002 e282 0000", 1, 0x8022, 0 },
    { "software_empty", "8022 0000", 0, 0, 0 },
    { "username_ff", "0006 0001 ff000000", 1, 0x0006, 0 },
    { "username_4_byte_char", "0006 0004 f09f9880", 0, 0, 0 },
    /* Unknown and unchecked types. */
    { "unknown_required_skipped", "0024 0003 ffffff00", 0, 0, 0 },
    { "even_port_any_length", "0018 0007 ffffffff ffffff00", 0, 0, 0 },
    { "mi_sha256_unchecked", "001c 0005 0102030405 000000", 0, 0, 0 },
    /* Repeats, order, position. */
    { "first_breaker_named",
      "000d 0002 0000 0000 000c 0004 3fff 0000", 1, 0x000d, 0 },
    { "repeat_second_breaks",
      "000d 0004 00000258 000d 0002 0000 0000", 1, 0x000d, 0 },
    { "before_mi_checked", "000d 0002 0000 0000 " MI_OK, 1, 0x000d, 0 },
    { "after_mi_ignored",
      MI_OK " 000d 0002 0000 0000 000c 0004 3fff 0000", 0, 0, 0 },
    { "after_mi_second_mi_ignored", MI_OK " 0008 0013 " Z20, 0, 0, 0 },
    { "fp_last", MI_OK " 8028 0004 00000000", 0, 0, 0 },
    { "fp_not_last", "8028 0004 00000000 8022 0000", 0, 0, 1 },
    { "fp_twice", "8028 0004 00000000 8028 0004 00000000", 0, 0, 1 },
    { "fp_before_mi", "8028 0004 00000000 " MI_OK, 0, 0, 1 },
    { "fp_then_unknown_after_mi",
      MI_OK " 8028 0004 00000000 0024 0000", 0, 0, 1 },
};

START_TEST(test_stun_attr_rules)
{
    uint8_t          buf[256], *copy;
    size_t           n = msg_with(rule_cases[_i].attrs, buf, sizeof(buf));
    struct stun_msg  m;

    ck_assert_msg(parse_exact(buf, n, &m, &copy) == 0, "%s rejected",
        rule_cases[_i].name);
    ck_assert_msg(m.bad_attr == rule_cases[_i].bad, "%s: bad_attr %d",
        rule_cases[_i].name, m.bad_attr);
    if (rule_cases[_i].bad)
        ck_assert_msg(m.bad_type == rule_cases[_i].bad_type,
            "%s: bad_type %04x", rule_cases[_i].name, m.bad_type);
    ck_assert_msg(m.fp_not_last == rule_cases[_i].fp_not_last,
        "%s: fp_not_last %d", rule_cases[_i].name, m.fp_not_last);
    free(copy);
}
END_TEST

/* The first occurrence is the one recorded, whether or not it breaks the
 * rule; attributes after MESSAGE-INTEGRITY are not recorded, except
 * FINGERPRINT. */
START_TEST(test_stun_first_occurrence_used)
{
    uint8_t          buf[256];
    size_t           n, len;
    const uint8_t   *v;
    uint32_t         lt;
    struct stun_msg  m;

    n = msg_with("000d 0004 00000258 000d 0004 00000e10 "
        "000d 0002 0000 0000", buf, sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(m.bad_attr, 1);
    ck_assert_uint_eq(m.attr[STUN_K_LIFETIME].off, 20);
    v = stun_msg_attr(&m, STUN_K_LIFETIME, &len);
    ck_assert_int_eq(stun_attr_u32(v, len, &lt), 0);
    ck_assert_uint_eq(lt, 600);

    n = msg_with("000d 0002 0000 0000 000d 0004 00000258", buf,
        sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(m.bad_attr, 1);
    ck_assert_uint_eq(m.bad_type, STUN_ATTR_LIFETIME);
    v = stun_msg_attr(&m, STUN_K_LIFETIME, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(stun_attr_u32(v, len, &lt), RLY_ERR_MALFORMED);

    n = msg_with("001c 0004 01020304 " MI_OK " 0006 0001 61000000 "
        "8022 0000 8028 0004 00000000", buf, sizeof(buf));
    ck_assert_int_eq(stun_msg_parse(&m, buf, n), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    ck_assert_uint_eq(m.attr[STUN_K_MESSAGE_INTEGRITY_SHA256].off, 20);
    ck_assert_uint_eq(m.attr[STUN_K_MESSAGE_INTEGRITY].off, 28);
    ck_assert_uint_eq(m.attr[STUN_K_MESSAGE_INTEGRITY].len, 20);
    ck_assert_ptr_null(stun_msg_attr(&m, STUN_K_USERNAME, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(stun_msg_attr(&m, STUN_K_SOFTWARE, &len));
    ck_assert_uint_eq(m.attr[STUN_K_FINGERPRINT].off, 64);
    ck_assert_int_eq(m.fp_not_last, 0);
}
END_TEST

/* --- Text rule and UTF-8 --------------------------------------------- */

static const struct {
    const char *name;
    uint16_t    type;
    const char *unit;       /* repeated reps times */
    unsigned    reps;
    int         ok;
} text_cases[] = {
    { "realm_127_chars", STUN_ATTR_REALM, "a", 127, 1 },
    { "realm_128_chars", STUN_ATTR_REALM, "a", 128, 0 },
    { "nonce_127_3_byte_chars", STUN_ATTR_NONCE, "\xe2\x82\xac", 127, 1 },
    { "nonce_128_3_byte_chars", STUN_ATTR_NONCE, "\xe2\x82\xac", 128, 0 },
    { "software_127_4_byte_chars", STUN_ATTR_SOFTWARE, "\xf0\x9f\x98\x80",
      127, 1 },
    { "software_764_bytes", STUN_ATTR_SOFTWARE, "\xf0\x9f\x98\x80", 191, 0 },
    { "software_764_ascii", STUN_ATTR_SOFTWARE, "a", 764, 0 },
    { "error_reason_127", STUN_ATTR_ERROR_CODE, "a", 127, 1 },
    { "error_reason_128", STUN_ATTR_ERROR_CODE, "a", 128, 0 },
    { "username_512_bytes", STUN_ATTR_USERNAME, "a", 512, 1 },
    { "username_513_bytes", STUN_ATTR_USERNAME, "a", 513, 0 },
    { "username_170_3_byte_chars", STUN_ATTR_USERNAME, "\xe2\x82\xac", 170,
      1 },
    { "username_171_3_byte_chars", STUN_ATTR_USERNAME, "\xe2\x82\xac", 171,
      0 },
};

START_TEST(test_stun_text_rule)
{
    static uint8_t      buf[2048];
    char                text[1024];
    size_t              ulen = strlen(text_cases[_i].unit), tlen = 0;
    uint8_t             txid[12] = { 0 };
    struct stun_builder b;
    struct stun_msg     m;
    int                 n;

    for (unsigned r = 0; r < text_cases[_i].reps; r++) {
        ck_assert_uint_lt(tlen + ulen, sizeof(text));
        memcpy(text + tlen, text_cases[_i].unit, ulen);
        tlen += ulen;
    }
    text[tlen] = '\0';
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    if (text_cases[_i].type == STUN_ATTR_ERROR_CODE)
        stun_build_error(&b, 400, text);
    else
        stun_build_attr(&b, text_cases[_i].type, text, tlen);
    ck_assert_int_gt(n = stun_build_finish(&b), 0);
    ck_assert_int_eq(stun_msg_parse(&m, buf, (size_t)n), 0);
    ck_assert_msg(m.bad_attr == !text_cases[_i].ok, "%s: bad_attr %d",
        text_cases[_i].name, m.bad_attr);
    if (text_cases[_i].type != STUN_ATTR_ERROR_CODE &&
        text_cases[_i].type != STUN_ATTR_USERNAME)
        ck_assert_int_eq(stun_text_ok((const uint8_t *)text, tlen),
            text_cases[_i].ok);
}
END_TEST

static const struct {
    const char *hex;
    long        count;      /* -1: invalid */
} utf8_cases[] = {
    { "", 0 },
    { "00", 1 },
    { "61 7f", 2 },
    { "c2 80", 1 },                 /* U+0080 */
    { "c3 a9 61", 2 },
    { "df bf", 1 },                 /* U+07FF */
    { "e0 a0 80", 1 },              /* U+0800 */
    { "e2 82 ac", 1 },
    { "ed 9f bf", 1 },              /* U+D7FF, below the surrogates */
    { "ee 80 80", 1 },              /* U+E000, above them */
    { "ef bf bf", 1 },              /* U+FFFF */
    { "f0 90 80 80", 1 },           /* U+10000 */
    { "f0 9f 98 80 61", 2 },
    { "f4 8f bf bf", 1 },           /* U+10FFFF */
    { "c0 80", -1 },                /* overlong NUL */
    { "c0 af", -1 },                /* overlong '/' */
    { "c1 bf", -1 },                /* overlong U+007F */
    { "e0 80 80", -1 },             /* overlong, three bytes */
    { "e0 9f bf", -1 },             /* overlong U+07FF */
    { "f0 80 80 80", -1 },          /* overlong, four bytes */
    { "f0 8f bf bf", -1 },          /* overlong U+FFFF */
    { "ed a0 80", -1 },             /* U+D800 */
    { "ed bf bf", -1 },             /* U+DFFF */
    { "ed b0 80", -1 },             /* low surrogate U+DC00 */
    { "f4 90 80 80", -1 },          /* U+110000 */
    { "f5 80 80 80", -1 },
    { "f8 88 80 80 80", -1 },       /* old 5-byte form */
    { "ff", -1 },
    { "fe", -1 },
    { "80", -1 },                   /* lone continuation */
    { "61 bf", -1 },
    { "c3", -1 },                   /* truncated */
    { "e2 82", -1 },
    { "f0 9f 98", -1 },
    { "61 f0", -1 },
    { "c3 28", -1 },                /* bad continuation */
    { "e2 28 a1", -1 },
    { "e2 82 28", -1 },
    { "f0 9f 28 80", -1 },
    { "f0 9f 98 28", -1 },
};

START_TEST(test_stun_utf8)
{
    uint8_t buf[16], *copy;
    size_t  n = hx(utf8_cases[_i].hex, buf, sizeof(buf));

    copy = malloc(n > 0 ? n : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, n);
    ck_assert_msg(stun_utf8_count(copy, n) == utf8_cases[_i].count,
        "\"%s\": %ld", utf8_cases[_i].hex, stun_utf8_count(copy, n));
    ck_assert_int_eq(stun_text_ok(copy, n), utf8_cases[_i].count >= 0);
    ck_assert_int_eq(stun_attr_check(STUN_ATTR_SOFTWARE, copy, n),
        utf8_cases[_i].count >= 0 ? 0 : RLY_ERR_MALFORMED);
    free(copy);
}
END_TEST

/* --- XOR addresses and small readers --------------------------------- */

START_TEST(test_stun_xor_addr_roundtrip)
{
    uint32_t            seed = 0x12345678u + (uint32_t)_i;
    uint8_t             txid[12], ip[16], buf[64];
    struct addr         a, got;
    struct stun_builder b;
    struct stun_msg     m;
    const uint8_t      *v;
    size_t              len;

    for (int i = 0; i < 12; i++)
        txid[i] = (uint8_t)xorshift(&seed);
    for (int i = 0; i < 16; i++)
        ip[i] = (uint8_t)xorshift(&seed);
    if (_i % 2 == 0)
        addr_set4(&a, ip, (uint16_t)xorshift(&seed));
    else
        addr_set6(&a, ip, (uint16_t)xorshift(&seed));
    stun_build_init(&b, buf, sizeof(buf), 0x0101, txid, 0);
    stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a);
    ck_assert_int_eq(stun_build_finish(&b), _i % 2 == 0 ? 32 : 44);
    ck_assert_int_eq(stun_msg_parse(&m, buf, b.len), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    v = stun_msg_attr(&m, STUN_K_XOR_RELAYED_ADDRESS, &len);
    ck_assert_int_eq(stun_xor_addr_decode(v, len, m.txid, &got), 0);
    ck_assert(addr_eq(&got, &a));
    /* On the wire, nothing of the address shows in clear. */
    ck_assert_uint_eq(v[0], 0);
    ck_assert_uint_eq(v[1], _i % 2 == 0 ? 0x01 : 0x02);
    ck_assert_uint_eq((unsigned)(v[2] << 8 | v[3]), a.port ^ 0x2112u);
}
END_TEST

START_TEST(test_stun_xor_addr_decode_rejects)
{
    static const char *const bad[] = {
        "", "00", "0001", "0001 a147", "0001 a147 e112a6",
        "0001 a147 e112a643 00",
        "0003 a147 e112a643", "0000 a147 e112a643",
        "0002 a147 e112a643",
        "0001 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9",
        "0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9",
    };
    uint8_t     txid[12] = { 0 }, buf[32];
    struct addr a;

    for (size_t i = 0; i < NELEM(bad); i++) {
        size_t n = hx(bad[i], buf, sizeof(buf));

        ck_assert_msg(stun_xor_addr_decode(buf, n, txid, &a) ==
            RLY_ERR_MALFORMED, "accepted %s", bad[i]);
    }
    /* Byte 0 is ignored. */
    hx("ff01 a147 e112a643", buf, sizeof(buf));
    ck_assert_int_eq(stun_xor_addr_decode(buf, 8, txid, &a), 0);
    ck_assert_uint_eq(a.port, 32853);
}
END_TEST

START_TEST(test_stun_attr_u32)
{
    uint8_t  v[5] = { 0x00, 0x00, 0x02, 0x58, 0x99 };
    uint32_t x = 7;

    ck_assert_int_eq(stun_attr_u32(v, 4, &x), 0);
    ck_assert_uint_eq(x, 600);
    ck_assert_int_eq(stun_attr_u32(v, 3, &x), RLY_ERR_MALFORMED);
    ck_assert_int_eq(stun_attr_u32(v, 5, &x), RLY_ERR_MALFORMED);
    ck_assert_int_eq(stun_attr_u32(v, 0, &x), RLY_ERR_MALFORMED);
}
END_TEST

START_TEST(test_stun_attr_known)
{
    static const uint16_t unknown[] = {
        0x0000, 0x0001, 0x0013, 0x0018, 0x001A, 0x001D, 0x001E, 0x0022,
        0x0024, 0x8029, 0x802A, 0xFFFF,
    };
    int seen[STUN_K_COUNT] = { 0 };

    for (unsigned t = 0; t <= 0xFFFF; t++) {
        int k = stun_attr_known((uint16_t)t);

        if (k < 0)
            continue;
        ck_assert_int_lt(k, STUN_K_COUNT);
        ck_assert_int_eq(seen[k], 0);
        seen[k] = 1;
    }
    for (int k = 0; k < STUN_K_COUNT; k++)
        ck_assert_msg(seen[k], "index %d has no type", k);
    for (size_t i = 0; i < NELEM(unknown); i++)
        ck_assert_int_eq(stun_attr_known(unknown[i]), -1);
    ck_assert_int_eq(stun_attr_known(STUN_ATTR_MESSAGE_INTEGRITY_SHA256),
        STUN_K_MESSAGE_INTEGRITY_SHA256);
    ck_assert_int_eq(stun_attr_known(STUN_ATTR_FINGERPRINT),
        STUN_K_FINGERPRINT);
}
END_TEST

/* --- Robustness: truncations, bit flips, random bytes ---------------- */

START_TEST(test_stun_parse_truncated_vectors)
{
    static const char *const vecs[] = {
        RFC5769_REQUEST, RFC5769_RESPONSE4, RFC5769_RESPONSE6,
        RFC5769_LT_REQUEST,
    };
    uint8_t         buf[256], *copy;
    struct stun_msg m;

    for (size_t v = 0; v < NELEM(vecs); v++) {
        size_t n = hx(vecs[v], buf, sizeof(buf));

        for (size_t cut = 0; cut < n; cut++) {
            ck_assert_int_eq(parse_exact(buf, cut, &m, &copy),
                RLY_ERR_MALFORMED);
            free(copy);
        }
    }
}
END_TEST

START_TEST(test_stun_parse_bit_flips)
{
    uint8_t         buf[256], *copy;
    size_t          n = hx(RFC5769_REQUEST, buf, sizeof(buf));
    struct stun_msg m;

    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            int rc;

            buf[i] ^= (uint8_t)(1 << bit);
            rc = parse_exact(buf, n, &m, &copy);
            ck_assert(rc == 0 || rc == RLY_ERR_MALFORMED);
            if (rc == 0) {
                /* Whatever was recorded lies inside the message. */
                for (int k = 0; k < STUN_K_COUNT; k++)
                    ck_assert_uint_le((size_t)m.attr[k].off + 4 +
                        m.attr[k].len, n);
                (void)stun_fingerprint_verify(&m);
                (void)stun_integrity_verify(&m, (const uint8_t *)"k", 1);
            }
            free(copy);
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
}
END_TEST

START_TEST(test_stun_parse_random)
{
    uint32_t        seed = 0x9e3779b9u;
    uint8_t         buf[128], *copy;
    struct stun_msg m;

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 20 + 4 * (xorshift(&seed) % 24);

        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)xorshift(&seed);
        /* A valid header, so that the attribute walk is exercised. */
        buf[0] = 0;
        buf[1] = 1;
        buf[2] = (uint8_t)((n - 20) >> 8);
        buf[3] = (uint8_t)(n - 20);
        buf[4] = 0x21;
        buf[5] = 0x12;
        buf[6] = 0xa4;
        buf[7] = 0x42;
        if (parse_exact(buf, n, &m, &copy) == 0) {
            for (int k = 0; k < STUN_K_COUNT; k++)
                ck_assert_uint_le((size_t)m.attr[k].off + 4 +
                    m.attr[k].len, n);
            (void)stun_fingerprint_verify(&m);
        }
        free(copy);
    }
}
END_TEST

/* --- Builder --------------------------------------------------------- */

static const struct {
    unsigned    code;
    const char *reason;
} error_cases[] = {
    { 400, "Bad Request" },
    { 401, "Unauthorized" },
    { 403, "Forbidden" },
    { 437, "Allocation Mismatch" },
    { 438, "Stale Nonce" },
    { 440, "Address Family not Supported" },
    { 443, "Peer Address Family Mismatch" },
    { 500, "Server Error" },
    { 508, "Insufficient Capacity" },
    { 300, "" },
    { 699, NULL },
};

START_TEST(test_stun_build_error_layout)
{
    uint8_t             buf[128], txid[12] = { 1 };
    const char         *reason = error_cases[_i].reason;
    size_t              rlen = reason != NULL ? strlen(reason) : 0, len;
    struct stun_builder b;
    struct stun_msg     m;
    const uint8_t      *v;

    stun_build_init(&b, buf, sizeof(buf),
        stun_type(STUN_ALLOCATE, STUN_ERROR), txid, 0);
    stun_build_error(&b, error_cases[_i].code, reason);
    ck_assert_int_eq(stun_build_finish(&b),
        (int)(20 + 4 + ((4 + rlen + 3) & ~(size_t)3)));
    ck_assert_int_eq(stun_msg_parse(&m, buf, b.len), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    v = stun_msg_attr(&m, STUN_K_ERROR_CODE, &len);
    ck_assert_uint_eq(len, 4 + rlen);
    ck_assert_uint_eq(v[0], 0);
    ck_assert_uint_eq(v[1], 0);
    ck_assert_uint_eq(v[2], error_cases[_i].code / 100);
    ck_assert_uint_eq(v[3], error_cases[_i].code % 100);
    if (rlen > 0)
        ck_assert_mem_eq(v + 4, reason, rlen);
    for (size_t i = 4 + rlen; i < b.len - 24; i++)
        ck_assert_uint_eq(v[i], 0);     /* padding, pad byte 0 */
}
END_TEST

START_TEST(test_stun_build_header_length_tracks)
{
    uint8_t             buf[256], txid[12] = { 0 }, key[16] = { 0 };
    struct addr         a = A("[2001:db8::1]:3478");
    struct stun_builder b;
    struct stun_msg     m;

    stun_build_init(&b, buf, sizeof(buf), 0x0103, txid, 0);
    ck_assert_uint_eq(hdr_len(buf), 0);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "firezone-relay; rev=1.0.0", 25);
    ck_assert_uint_eq(hdr_len(buf), 32);
    stun_build_xor_addr(&b, STUN_ATTR_XOR_RELAYED_ADDRESS, &a);
    ck_assert_uint_eq(hdr_len(buf), 56);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
    ck_assert_uint_eq(hdr_len(buf), 64);
    stun_build_attr(&b, 0x0024, NULL, 0);
    ck_assert_uint_eq(hdr_len(buf), 68);
    stun_build_integrity(&b, key);
    ck_assert_uint_eq(hdr_len(buf), 92);
    stun_build_fingerprint(&b);
    ck_assert_uint_eq(hdr_len(buf), 100);
    ck_assert_int_eq(stun_build_finish(&b), 120);
    ck_assert_int_eq(stun_msg_parse(&m, buf, 120), 0);
    ck_assert_int_eq(m.bad_attr, 0);
    ck_assert_int_eq(stun_integrity_verify(&m, key, 16), 0);
    ck_assert_int_eq(stun_fingerprint_verify(&m), 0);
    /* Padding of the 25-byte SOFTWARE value: three zero bytes. */
    ck_assert_uint_eq(buf[20 + 4 + 25], 0);
    ck_assert_uint_eq(buf[20 + 4 + 27], 0);
}
END_TEST

/* Builds the RFC 5769 §2.1 request into cap bytes of buf. */
static int
build_sample_request(uint8_t *buf, size_t cap)
{
    uint8_t             txid[12], ice[8];
    uint8_t             prio[4] = { 0x6e, 0x00, 0x01, 0xff };
    struct stun_builder b;

    hx(RFC5769_TXID, txid, sizeof(txid));
    hx(RFC5769_REQUEST_ICE_CONTROLLED, ice, sizeof(ice));
    stun_build_init(&b, buf, cap, 0x0001, txid, 0x20);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, RFC5769_REQUEST_SOFTWARE, 16);
    stun_build_attr(&b, 0x0024, prio, sizeof(prio));
    stun_build_attr(&b, 0x8029, ice, sizeof(ice));
    stun_build_attr(&b, STUN_ATTR_USERNAME, RFC5769_REQUEST_USERNAME, 9);
    stun_build_integrity_key(&b, (const uint8_t *)RFC5769_PASSWORD,
        strlen(RFC5769_PASSWORD));
    stun_build_fingerprint(&b);
    return stun_build_finish(&b);
}

/* Every capacity short of the message fails with RLY_ERR_NOSPACE and
 * writes nothing past cap. */
START_TEST(test_stun_build_nospace_every_cap)
{
    uint8_t vec[256], buf[256];
    size_t  n = hx(RFC5769_REQUEST, vec, sizeof(vec));

    for (size_t cap = 0; cap <= n + 4; cap++) {
        int rc;

        memset(buf, 0xA5, sizeof(buf));
        rc = build_sample_request(buf, cap);
        for (size_t i = cap; i < sizeof(buf); i++)
            ck_assert_msg(buf[i] == 0xA5, "cap %zu: wrote byte %zu", cap, i);
        if (cap < n) {
            ck_assert_msg(rc == RLY_ERR_NOSPACE, "cap %zu: %d", cap, rc);
        } else {
            ck_assert_int_eq(rc, (int)n);
            ck_assert_mem_eq(buf, vec, n);
        }
    }
}
END_TEST

START_TEST(test_stun_build_sticky_errors)
{
    uint8_t             buf[64], txid[12] = { 0 }, key[16] = { 0 };
    struct addr         none;
    struct stun_builder b;

    /* Too small for the header. */
    memset(buf, 0xA5, sizeof(buf));
    stun_build_init(&b, buf, 19, 0x0001, txid, 0);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "x", 1);
    stun_build_fingerprint(&b);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);
    ck_assert_uint_eq(buf[0], 0xA5);

    /* Header only fits; a later attribute that would fit stays refused. */
    stun_build_init(&b, buf, 28, 0x0001, txid, 0);
    ck_assert_int_eq(stun_build_finish(&b), 20);
    stun_build_attr(&b, STUN_ATTR_SOFTWARE, "12345", 5);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 1);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);
    ck_assert_uint_eq(hdr_len(buf), 0);

    /* Exact fit. */
    stun_build_init(&b, buf, 28, 0x0001, txid, 0);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 1);
    ck_assert_int_eq(stun_build_finish(&b), 28);

    /* MESSAGE-INTEGRITY and FINGERPRINT that do not fit. */
    stun_build_init(&b, buf, 43, 0x0001, txid, 0);
    stun_build_integrity(&b, key);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);
    stun_build_init(&b, buf, 27, 0x0001, txid, 0);
    stun_build_fingerprint(&b);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);

    /* Unencodable values: RLY_ERR_INVAL, also sticky. */
    memset(&none, 0, sizeof(none));
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &none);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_INVAL);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 1);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_INVAL);
    ck_assert_uint_eq(hdr_len(buf), 0);
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_error(&b, 299, "x");
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_INVAL);
    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_error(&b, 700, "x");
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_INVAL);
}
END_TEST

/* The 16-bit length field bounds a message even when the buffer is
 * larger. */
START_TEST(test_stun_build_length_field_limit)
{
    static uint8_t      buf[70000], val[65536];
    uint8_t             txid[12] = { 0 };
    struct stun_builder b;
    struct stun_msg     m;

    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_attr(&b, 0x0024, val, 65536);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);

    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_attr(&b, 0x0024, val, 65532);   /* 4 + 65532 > 65535 */
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);

    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_attr(&b, 0x0024, val, 65527);   /* padded to 65528 */
    ck_assert_int_eq(stun_build_finish(&b), 20 + 65532);
    ck_assert_uint_eq(hdr_len(buf), 65532);
    stun_build_attr(&b, 0x0024, NULL, 0);
    ck_assert_int_eq(stun_build_finish(&b), RLY_ERR_NOSPACE);
    /* The parser stops at 65535 bytes (16-bit offsets; no UDP datagram
     * is longer). */
    ck_assert_int_eq(stun_msg_parse(&m, buf, 20 + 65532), RLY_ERR_MALFORMED);

    stun_build_init(&b, buf, sizeof(buf), 0x0001, txid, 0);
    stun_build_attr(&b, 0x0024, val, 65500);
    stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
    ck_assert_int_eq(stun_build_finish(&b), 65532);
    ck_assert_int_eq(stun_msg_parse(&m, buf, 65532), 0);
    ck_assert_uint_eq(m.attr[STUN_K_LIFETIME].off, 65524);
}
END_TEST

Suite *
stun_msg_suite(void)
{
    Suite *s = suite_create("stun_msg");
    TCase *tc;

    tc = tcase_create("rfc5769");
    tcase_add_test(tc, test_rfc5769_sample_request);
    tcase_add_test(tc, test_rfc5769_ipv4_response);
    tcase_add_test(tc, test_rfc5769_ipv6_response);
    tcase_add_test(tc, test_rfc5769_long_term_request);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_stun_type_bits, 0, NELEM(type_cases));
    tcase_add_loop_test(tc, test_stun_parse_malformed, 0,
        NELEM(framing_cases));
    tcase_add_loop_test(tc, test_stun_attr_rules, 0, NELEM(rule_cases));
    tcase_add_test(tc, test_stun_first_occurrence_used);
    tcase_add_loop_test(tc, test_stun_text_rule, 0, NELEM(text_cases));
    tcase_add_loop_test(tc, test_stun_utf8, 0, NELEM(utf8_cases));
    tcase_add_loop_test(tc, test_stun_xor_addr_roundtrip, 0, 64);
    tcase_add_test(tc, test_stun_xor_addr_decode_rejects);
    tcase_add_test(tc, test_stun_attr_u32);
    tcase_add_test(tc, test_stun_attr_known);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_add_test(tc, test_stun_parse_truncated_vectors);
    tcase_add_test(tc, test_stun_parse_bit_flips);
    tcase_add_test(tc, test_stun_parse_random);
    suite_add_tcase(s, tc);

    tc = tcase_create("build");
    tcase_add_loop_test(tc, test_stun_build_error_layout, 0,
        NELEM(error_cases));
    tcase_add_test(tc, test_stun_build_header_length_tracks);
    tcase_add_test(tc, test_stun_build_nospace_every_cap);
    tcase_add_test(tc, test_stun_build_sticky_errors);
    tcase_add_test(tc, test_stun_build_length_field_limit);
    suite_add_tcase(s, tc);
    return s;
}
