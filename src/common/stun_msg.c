/* stun_msg.c - STUN message framing, attribute walk, XOR addresses and the
 * message builder (RFC 8489 §5, §14; SPEC §2.3, §2.4, §2.7, §2.9).
 *
 * The parser never copies or allocates: struct stun_msg records offsets
 * into the caller's datagram.  Every length read from the wire is checked
 * against what is left before it is used, so any byte string either
 * parses or returns RLY_ERR_MALFORMED.  The builder writes in place and
 * keeps the header's length field right after every append, which is what
 * MESSAGE-INTEGRITY and FINGERPRINT need. */
#include <string.h>

#include "rly_err.h"
#include "stun_integrity.h"
#include "stun_msg.h"

#define STUN_MAX_BODY   0xFFFF      /* the 16-bit length field */

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

static void
store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t
pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* Type bits, most significant first: M11-M7 C1 M6-M4 C0 M3-M0. */
uint16_t
stun_type(uint16_t method, enum stun_class cls)
{
    unsigned m = method & 0x0FFF, c = (unsigned)cls & 0x3;

    return (uint16_t)((m & 0x000F) | (m & 0x0070) << 1 | (m & 0x0F80) << 2 |
        (c & 0x1) << 4 | (c & 0x2) << 7);
}

uint16_t
stun_type_method(uint16_t type)
{
    return (uint16_t)((type & 0x000F) | (type >> 1 & 0x0070) |
        (type >> 2 & 0x0F80));
}

enum stun_class
stun_type_class(uint16_t type)
{
    return (enum stun_class)((type >> 4 & 0x1) | (type >> 7 & 0x2));
}

/* Records one attribute and applies its value rule.  Before
 * MESSAGE-INTEGRITY every known occurrence is checked and the first is
 * kept; after it, only the first FINGERPRINT is noted (SPEC §2.4). */
static void
note_attr(struct stun_msg *m, uint16_t type, size_t off, uint16_t len,
    int *after_mi)
{
    int k = stun_attr_known(type);

    if (k < 0)
        return;
    if (*after_mi && k != STUN_K_FINGERPRINT)
        return;
    if (m->attr[k].off == 0) {
        m->attr[k].off = (uint16_t)off;
        m->attr[k].len = len;
    }
    if (*after_mi)
        return;
    if (!m->bad_attr && stun_attr_check(type, m->buf + off + 4, len) != 0) {
        m->bad_attr = 1;
        m->bad_type = type;
    }
    if (k == STUN_K_MESSAGE_INTEGRITY)
        *after_mi = 1;
}

static int
walk_attrs(struct stun_msg *m)
{
    size_t off = STUN_HDR_LEN;
    int    after_mi = 0, fp_seen = 0;

    while (off < m->len) {
        uint16_t type, len;

        if (m->len - off < 4)
            return RLY_ERR_MALFORMED;
        type = load16(m->buf + off);
        len = load16(m->buf + off + 2);
        if (pad4(len) > m->len - off - 4)
            return RLY_ERR_MALFORMED;
        if (fp_seen)
            m->fp_not_last = 1;
        note_attr(m, type, off, len, &after_mi);
        if (type == STUN_ATTR_FINGERPRINT)
            fp_seen = 1;
        off += 4 + pad4(len);
    }
    return 0;
}

int
stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len)
{
    size_t body;

    memset(m, 0, sizeof(*m));
    /* Attribute offsets are 16-bit: no UDP datagram is longer. */
    if (len < STUN_HDR_LEN || len > UINT16_MAX)
        return RLY_ERR_MALFORMED;
    if (load32(buf + 4) != STUN_COOKIE)
        return RLY_ERR_MALFORMED;
    body = load16(buf + 2);
    if ((body & 3) != 0 || STUN_HDR_LEN + body != len)
        return RLY_ERR_MALFORMED;
    m->buf = buf;
    m->len = len;
    m->type = load16(buf);
    m->method = stun_type_method(m->type);
    m->cls = stun_type_class(m->type);
    m->txid = buf + 8;
    return walk_attrs(m);
}

const uint8_t *
stun_msg_attr(const struct stun_msg *m, enum stun_known k, size_t *len)
{
    if ((unsigned)k >= STUN_K_COUNT || m->attr[k].off == 0) {
        *len = 0;
        return NULL;
    }
    *len = m->attr[k].len;
    return m->buf + m->attr[k].off + 4;
}

/* The XOR mask: the cookie, then (IPv6 only) the transaction id. */
static void
xor_mask(uint8_t mask[16], const uint8_t txid[STUN_TXID_LEN])
{
    store32(mask, STUN_COOKIE);
    memcpy(mask + 4, txid, STUN_TXID_LEN);
}

int
stun_xor_addr_decode(const uint8_t *val, size_t len,
    const uint8_t txid[STUN_TXID_LEN], struct addr *out)
{
    uint8_t  mask[16], ip[16];
    uint16_t port;
    size_t   iplen;

    if (stun_attr_check(STUN_ATTR_XOR_MAPPED_ADDRESS, val, len) != 0)
        return RLY_ERR_MALFORMED;
    xor_mask(mask, txid);
    port = (uint16_t)(load16(val + 2) ^ (STUN_COOKIE >> 16));
    iplen = len - 4;
    for (size_t i = 0; i < iplen; i++)
        ip[i] = val[4 + i] ^ mask[i];
    if (iplen == 4)
        addr_set4(out, ip, port);
    else
        addr_set6(out, ip, port);
    return 0;
}

int
stun_attr_u32(const uint8_t *val, size_t len, uint32_t *out)
{
    if (len != 4)
        return RLY_ERR_MALFORMED;
    *out = load32(val);
    return 0;
}

/* --- Building -------------------------------------------------------- */

static void
set_body_len(struct stun_builder *b)
{
    store16(b->buf + 2, (uint16_t)(b->len - STUN_HDR_LEN));
}

/* Reserves an attribute of len value bytes (padded) and writes its header.
 * Returns where the value goes, or NULL (and sets the sticky error). */
static uint8_t *
reserve(struct stun_builder *b, uint16_t type, size_t len)
{
    size_t   need;
    uint8_t *p;

    if (b->err != 0)
        return NULL;
    need = 4 + pad4(len);
    if (len > UINT16_MAX || need > b->cap - b->len ||
        need > STUN_MAX_BODY - (b->len - STUN_HDR_LEN)) {
        b->err = RLY_ERR_NOSPACE;
        return NULL;
    }
    p = b->buf + b->len;
    store16(p, type);
    store16(p + 2, (uint16_t)len);
    memset(p + 4 + len, b->pad, pad4(len) - len);
    b->len += need;
    set_body_len(b);
    return p + 4;
}

void
stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap,
    uint16_t type, const uint8_t txid[STUN_TXID_LEN], uint8_t pad)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->err = 0;
    b->pad = pad;
    if (cap < STUN_HDR_LEN) {
        b->err = RLY_ERR_NOSPACE;
        return;
    }
    store16(buf, type);
    store32(buf + 4, STUN_COOKIE);
    memcpy(buf + 8, txid, STUN_TXID_LEN);
    b->len = STUN_HDR_LEN;
    set_body_len(b);
}

void
stun_build_attr(struct stun_builder *b, uint16_t type, const void *val,
    size_t len)
{
    uint8_t *p = reserve(b, type, len);

    if (p != NULL && len > 0)
        memcpy(p, val, len);
}

void
stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v)
{
    uint8_t *p = reserve(b, type, 4);

    if (p != NULL)
        store32(p, v);
}

void
stun_build_xor_addr(struct stun_builder *b, uint16_t type,
    const struct addr *a)
{
    uint8_t mask[16], *p;
    size_t  iplen;

    if (b->err != 0)
        return;
    if (a->family != ADDR_V4 && a->family != ADDR_V6) {
        b->err = RLY_ERR_INVAL;
        return;
    }
    iplen = a->family == ADDR_V4 ? 4 : 16;
    if ((p = reserve(b, type, 4 + iplen)) == NULL)
        return;
    xor_mask(mask, b->buf + 8);
    p[0] = 0;
    p[1] = a->family == ADDR_V4 ? 0x01 : 0x02;
    store16(p + 2, (uint16_t)(a->port ^ (STUN_COOKIE >> 16)));
    for (size_t i = 0; i < iplen; i++)
        p[4 + i] = a->ip[i] ^ mask[i];
}

void
stun_build_error(struct stun_builder *b, unsigned code, const char *reason)
{
    size_t   rlen = reason != NULL ? strlen(reason) : 0;
    uint8_t *p;

    if (b->err != 0)
        return;
    if (code < 300 || code > 699) {
        b->err = RLY_ERR_INVAL;
        return;
    }
    if ((p = reserve(b, STUN_ATTR_ERROR_CODE, 4 + rlen)) == NULL)
        return;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    if (rlen > 0)
        memcpy(p + 4, reason, rlen);
}

void
stun_build_integrity_key(struct stun_builder *b, const uint8_t *key,
    size_t keylen)
{
    uint8_t  mac[STUN_MI_LEN], *p;
    size_t   mi_off = b->len;

    /* Reserve first: the length field then already counts the attribute,
     * and the HMAC covers only what precedes it. */
    if ((p = reserve(b, STUN_ATTR_MESSAGE_INTEGRITY, STUN_MI_LEN)) == NULL)
        return;
    if (stun_integrity_compute(b->buf, mi_off, key, keylen, mac) != 0) {
        b->err = RLY_ERR_CRYPTO;
        return;
    }
    memcpy(p, mac, STUN_MI_LEN);
}

void
stun_build_integrity(struct stun_builder *b, const uint8_t key[16])
{
    stun_build_integrity_key(b, key, 16);
}

void
stun_build_fingerprint(struct stun_builder *b)
{
    size_t   fp_off = b->len;
    uint8_t *p;

    if ((p = reserve(b, STUN_ATTR_FINGERPRINT, 4)) == NULL)
        return;
    store32(p, stun_fingerprint_compute(b->buf, fp_off));
}

int
stun_build_finish(struct stun_builder *b)
{
    return b->err != 0 ? b->err : (int)b->len;
}
