/* fuzz_stun.c - libFuzzer target for the STUN codec (SPEC §2.3-§2.10).
 *
 * Each input is used twice:
 *  1. as a datagram: stun_msg_parse(), then FINGERPRINT and
 *     MESSAGE-INTEGRITY (a fixed key) verification, checked against a
 *     recomputation, and every accessor on the parsed message (each known
 *     attribute, XOR addresses, LIFETIME, USERNAME, NONCE, the text rule);
 *  2. as a script for the builder: a message built from fuzz-chosen
 *     values must come out exactly as long as predicted (or fail with the
 *     predicted sticky error), re-parse, carry every value it was given,
 *     and verify (MESSAGE-INTEGRITY with the script's key, FINGERPRINT). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "auth.h"
#include "fuzz_util.h"
#include "rly_err.h"
#include "stun_attr.h"
#include "stun_integrity.h"
#include "stun_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fixed_key[16] = {
    0xe4, 0x44, 0xd9, 0x39, 0x76, 0xb9, 0x2e, 0xc3,
    0x55, 0xc1, 0x43, 0x37, 0xc9, 0xa9, 0xd3, 0xfb
};

static uint16_t
load16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
        (uint32_t)p[2] << 8 | p[3];
}

static size_t
pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* --- 1. Parsing arbitrary bytes ------------------------------------- */

static void
check_integrity(const struct stun_msg *m)
{
    const uint8_t *mi;
    size_t         milen;
    uint8_t        mac[STUN_MI_LEN];
    int            rc;

    mi = stun_msg_attr(m, STUN_K_MESSAGE_INTEGRITY, &milen);
    rc = stun_integrity_verify(m, fixed_key, sizeof(fixed_key));
    if (mi == NULL || milen != STUN_MI_LEN) {
        FZ_CHECK(rc != 0);
        return;
    }
    FZ_CHECK(stun_integrity_compute(m->buf, m->attr[STUN_K_MESSAGE_INTEGRITY]
        .off, fixed_key, sizeof(fixed_key), mac) == 0);
    FZ_CHECK((rc == 0) == (memcmp(mac, mi, STUN_MI_LEN) == 0));
    FZ_CHECK(rc == 0 || rc == RLY_ERR_AUTH);
}

static void
check_fingerprint(const struct stun_msg *m)
{
    const uint8_t *fp;
    size_t         fplen;
    int            rc = stun_fingerprint_verify(m);

    fp = stun_msg_attr(m, STUN_K_FINGERPRINT, &fplen);
    if (fp == NULL) {
        FZ_CHECK(rc == 0);
        return;
    }
    if (m->fp_not_last || fplen != 4) {
        FZ_CHECK(rc == RLY_ERR_AUTH);
        return;
    }
    FZ_CHECK((rc == 0) == (stun_fingerprint_compute(m->buf,
        m->attr[STUN_K_FINGERPRINT].off) == load32(fp)));
}

/* The accessors the core uses on a request. */
static void
check_values(const struct stun_msg *m)
{
    const uint8_t *v;
    size_t         len, saltlen;
    struct addr    a;
    uint32_t       u;
    uint64_t       expiry;
    const uint8_t *salt;
    uint8_t        nonce[AUTH_NONCE_LEN];
    static const enum stun_known xors[] = { STUN_K_XOR_PEER_ADDRESS,
        STUN_K_XOR_RELAYED_ADDRESS, STUN_K_XOR_MAPPED_ADDRESS };

    for (size_t i = 0; i < sizeof(xors) / sizeof(xors[0]); i++) {
        int ok;

        if ((v = stun_msg_attr(m, xors[i], &len)) == NULL)
            continue;
        /* SPEC §2.4 address rule: byte 0 ignored, family 1 with 8 bytes
         * or family 2 with 20. */
        ok = (len == 8 && v[1] == 1) || (len == 20 && v[1] == 2);
        FZ_CHECK((stun_xor_addr_decode(v, len, m->txid, &a) == 0) == ok);
        if (ok)
            FZ_CHECK(a.family == (len == 8 ? ADDR_V4 : ADDR_V6) &&
                a.port == (load16(v + 2) ^ 0x2112));
    }
    if ((v = stun_msg_attr(m, STUN_K_LIFETIME, &len)) != NULL)
        FZ_CHECK((stun_attr_u32(v, len, &u) == 0) == (len == 4));
    if ((v = stun_msg_attr(m, STUN_K_USERNAME, &len)) != NULL &&
        auth_username_parse(v, len, &expiry, &salt, &saltlen) == 0)
        FZ_CHECK(salt >= v && salt + saltlen <= v + len);
    if ((v = stun_msg_attr(m, STUN_K_NONCE, &len)) != NULL &&
        auth_nonce_parse(v, len, nonce) == 0) {
        char text[AUTH_NONCE_STRLEN + 1];
        uint8_t again[AUTH_NONCE_LEN];

        auth_nonce_format(nonce, text);
        FZ_CHECK(strlen(text) == AUTH_NONCE_STRLEN);
        FZ_CHECK(auth_nonce_parse((const uint8_t *)text, AUTH_NONCE_STRLEN,
            again) == 0 && memcmp(again, nonce, sizeof(nonce)) == 0);
    }
    if ((v = stun_msg_attr(m, STUN_K_REALM, &len)) != NULL)
        (void)stun_text_ok(v, len);
    if ((v = stun_msg_attr(m, STUN_K_SOFTWARE, &len)) != NULL)
        (void)stun_utf8_count(v, len);
}

static void
parse_datagram(const uint8_t *data, size_t size)
{
    struct stun_msg m;
    uint16_t        t;

    if (stun_msg_parse(&m, data, size) != 0)
        return;
    FZ_CHECK(m.buf == data && m.len == size);
    FZ_CHECK(size >= STUN_HDR_LEN && (size & 3) == 0);
    FZ_CHECK(m.txid == data + 8);
    t = m.type;
    FZ_CHECK(stun_type(stun_type_method(t), stun_type_class(t)) ==
        (t & 0x3FFF));
    FZ_CHECK(m.method == stun_type_method(t) && m.cls == stun_type_class(t));
    for (int k = 0; k < STUN_K_COUNT; k++) {
        size_t         len;
        const uint8_t *v = stun_msg_attr(&m, (enum stun_known)k, &len);

        if (v == NULL) {
            FZ_CHECK(len == 0 && m.attr[k].off == 0);
            continue;
        }
        FZ_CHECK(m.attr[k].off >= STUN_HDR_LEN);
        FZ_CHECK(v == data + m.attr[k].off + 4);
        FZ_CHECK(m.attr[k].off + 4 + pad4(len) <= size);
        FZ_CHECK(stun_attr_known(load16(v - 4)) == k);
        FZ_CHECK(load16(v - 2) == len);
    }
    if (m.bad_attr)
        FZ_CHECK(stun_attr_known(m.bad_type) >= 0);
    check_fingerprint(&m);
    check_integrity(&m);
    check_values(&m);
}

/* --- 2. Building from fuzz-chosen values ---------------------------- */

#define BUILD_CAP   (STUN_HDR_LEN + 65536)
#define MAX_OPS     24

enum op_kind { OP_RAW, OP_U32, OP_XOR, OP_ERROR };

/* What one append wrote, to be found again after parsing. */
struct op {
    enum op_kind    kind;
    uint16_t        type;
    const uint8_t  *src;        /* OP_RAW: input bytes, rest zero */
    size_t          srclen, len;
    uint32_t        u;
    struct addr     a;
    unsigned        code;
    char            reason[64];
};

struct script {
    uint16_t    type;
    uint8_t     txid[STUN_TXID_LEN];
    uint8_t     pad;
    struct op   ops[MAX_OPS];
    size_t      nops;
    int         mi, mi16, fp;
    uint8_t     key[64];
    size_t      keylen;
};

static const uint16_t u32_types[] = { STUN_ATTR_LIFETIME,
    STUN_ATTR_CHANNEL_NUMBER, STUN_ATTR_REQUESTED_TRANSPORT,
    STUN_ATTR_REQUESTED_ADDRESS_FAMILY, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY,
    STUN_ATTR_EVEN_PORT, 0x0024 /* PRIORITY */ };
static const uint16_t xor_types[] = { STUN_ATTR_XOR_PEER_ADDRESS,
    STUN_ATTR_XOR_RELAYED_ADDRESS, STUN_ATTR_XOR_MAPPED_ADDRESS };

static void
read_addr(struct fz *f, struct addr *a)
{
    uint8_t sel = fz_u8(f), ip[16];
    uint16_t port = fz_u16(f);

    fz_copy(f, ip, sizeof(ip));
    switch (sel % 4) {
    case 0: addr_set4(a, ip, port); break;
    case 1: addr_set6(a, ip, port); break;
    case 2: addr_set4(a, ip, port); a->family = ADDR_NONE; break;
    default: addr_set6(a, ip, port); a->family = sel; break;
    }
}

static void
read_op(struct fz *f, struct op *o)
{
    memset(o, 0, sizeof(*o));
    switch (fz_u8(f) % 4) {
    case 0:
        o->kind = OP_RAW;
        o->type = fz_u16(f);
        /* MESSAGE-INTEGRITY and FINGERPRINT come last, from the flags. */
        if (o->type == STUN_ATTR_MESSAGE_INTEGRITY)
            o->type = STUN_ATTR_USERNAME;
        if (o->type == STUN_ATTR_FINGERPRINT)
            o->type = STUN_ATTR_SOFTWARE;
        o->len = fz_u16(f);
        if (fz_u8(f) & 1)
            o->len &= 0xFF;     /* mostly small values */
        o->srclen = fz_take(f, o->len, &o->src);
        break;
    case 1:
        o->kind = OP_U32;
        o->type = u32_types[fz_u8(f) % (sizeof(u32_types) /
            sizeof(u32_types[0]))];
        o->u = fz_u32(f);
        o->len = 4;
        break;
    case 2:
        o->kind = OP_XOR;
        o->type = xor_types[fz_u8(f) % 3];
        read_addr(f, &o->a);
        o->len = o->a.family == ADDR_V4 ? 8 : 20;
        break;
    default: {
        size_t         n = fz_u8(f) % sizeof(o->reason), i;
        const uint8_t *s;

        o->kind = OP_ERROR;
        o->type = STUN_ATTR_ERROR_CODE;
        o->code = fz_u16(f) % 800;
        n = fz_take(f, n, &s);
        for (i = 0; i < n && s[i] != 0 && i + 1 < sizeof(o->reason); i++)
            o->reason[i] = (char)s[i];
        o->reason[i] = '\0';
        o->len = 4 + i;
        break;
    }
    }
}

static void
read_script(struct fz *f, struct script *s)
{
    uint8_t flags;

    memset(s, 0, sizeof(*s));
    s->type = fz_u16(f) & 0x3FFF;
    fz_copy(f, s->txid, sizeof(s->txid));
    s->pad = fz_u8(f);
    s->nops = fz_u8(f) % (MAX_OPS + 1);
    for (size_t i = 0; i < s->nops; i++)
        read_op(f, &s->ops[i]);
    flags = fz_u8(f);
    s->mi = flags & 1;
    s->mi16 = flags & 2;
    s->fp = flags & 4;
    s->keylen = s->mi16 ? 16 : fz_u8(f) % (sizeof(s->key) + 1);
    fz_copy(f, s->key, s->keylen);
}

/* The builder's result predicted from its contract: the total length, or
 * the first sticky error. */
static int
predict(const struct script *s)
{
    size_t body = 0;

    for (size_t i = 0; i < s->nops; i++) {
        const struct op *o = &s->ops[i];

        if (o->kind == OP_XOR && o->a.family != ADDR_V4 &&
            o->a.family != ADDR_V6)
            return RLY_ERR_INVAL;
        if (o->kind == OP_ERROR && (o->code < 300 || o->code > 699))
            return RLY_ERR_INVAL;
        if (4 + pad4(o->len) > 0xFFFF - body)
            return RLY_ERR_NOSPACE;
        body += 4 + pad4(o->len);
    }
    if (s->mi) {
        if (24 > 0xFFFF - body)
            return RLY_ERR_NOSPACE;
        body += 24;
    }
    if (s->fp) {
        if (8 > 0xFFFF - body)
            return RLY_ERR_NOSPACE;
        body += 8;
    }
    return (int)(STUN_HDR_LEN + body);
}

static void
append(struct stun_builder *b, const struct op *o, uint8_t *scratch)
{
    switch (o->kind) {
    case OP_RAW:
        if (o->srclen > 0)
            memcpy(scratch, o->src, o->srclen);
        memset(scratch + o->srclen, 0, o->len - o->srclen);
        stun_build_attr(b, o->type, scratch, o->len);
        break;
    case OP_U32:
        stun_build_u32(b, o->type, o->u);
        break;
    case OP_XOR:
        stun_build_xor_addr(b, o->type, &o->a);
        break;
    case OP_ERROR:
        stun_build_error(b, o->code, o->reason);
        break;
    }
}

/* The first occurrence of each known type must read back as written. */
static void
check_op(const struct stun_msg *m, const struct op *o)
{
    const uint8_t *v;
    size_t         len;
    struct addr    a;
    int            k = stun_attr_known(o->type);

    v = stun_msg_attr(m, (enum stun_known)k, &len);
    FZ_CHECK(v != NULL && len == o->len);
    switch (o->kind) {
    case OP_RAW:
        FZ_CHECK(o->srclen == 0 || memcmp(v, o->src, o->srclen) == 0);
        for (size_t i = o->srclen; i < len; i++)
            FZ_CHECK(v[i] == 0);
        break;
    case OP_U32:
        FZ_CHECK(load32(v) == o->u);
        break;
    case OP_XOR:
        FZ_CHECK(stun_xor_addr_decode(v, len, m->txid, &a) == 0);
        FZ_CHECK(addr_eq(&a, &o->a));
        break;
    case OP_ERROR:
        FZ_CHECK(v[0] == 0 && v[1] == 0);
        FZ_CHECK(v[2] == o->code / 100 && v[3] == o->code % 100);
        FZ_CHECK(memcmp(v + 4, o->reason, len - 4) == 0);
        break;
    }
}

static void
check_built(const struct script *s, const uint8_t *buf, size_t n)
{
    struct stun_msg m;
    uint32_t        seen = 0;

    if (n > UINT16_MAX) {
        /* No UDP datagram is that long: the parser refuses it. */
        FZ_CHECK(stun_msg_parse(&m, buf, n) == RLY_ERR_MALFORMED);
        return;
    }
    FZ_CHECK(stun_msg_parse(&m, buf, n) == 0);
    FZ_CHECK(m.type == s->type && memcmp(m.txid, s->txid, 12) == 0);
    FZ_CHECK(!m.fp_not_last);
    for (size_t i = 0; i < s->nops; i++) {
        int k = stun_attr_known(s->ops[i].type);

        if (k < 0 || (seen & 1u << k))
            continue;
        seen |= 1u << k;
        check_op(&m, &s->ops[i]);
    }
    if (s->mi)
        FZ_CHECK(stun_integrity_verify(&m, s->key, s->keylen) == 0);
    else
        FZ_CHECK(stun_integrity_verify(&m, s->key, s->keylen) != 0);
    FZ_CHECK(stun_fingerprint_verify(&m) == 0);
    if (s->fp)
        FZ_CHECK(m.attr[STUN_K_FINGERPRINT].off == n - 8);
    else
        FZ_CHECK(m.attr[STUN_K_FINGERPRINT].off == 0);
}

static void
build_roundtrip(const uint8_t *data, size_t size)
{
    static struct script s;
    static uint8_t       buf[BUILD_CAP], scratch[65536];
    struct stun_builder  b;
    struct fz            f;
    int                  want, got;

    fz_init(&f, data, size);
    read_script(&f, &s);
    want = predict(&s);
    stun_build_init(&b, buf, sizeof(buf), s.type, s.txid, s.pad);
    for (size_t i = 0; i < s.nops; i++)
        append(&b, &s.ops[i], scratch);
    if (s.mi && s.mi16)
        stun_build_integrity(&b, s.key);
    else if (s.mi)
        stun_build_integrity_key(&b, s.key, s.keylen);
    if (s.fp)
        stun_build_fingerprint(&b);
    got = stun_build_finish(&b);
    FZ_CHECK(got == want);
    if (got < 0)
        return;
    FZ_CHECK(load16(buf + 2) == (size_t)got - STUN_HDR_LEN);
    check_built(&s, buf, (size_t)got);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_datagram(data, size);
    build_roundtrip(data, size);
    return 0;
}
