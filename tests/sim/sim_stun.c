/* sim_stun.c - the simulation's own minimal STUN codec (RFC 8489 framing,
 * XOR addresses, MESSAGE-INTEGRITY and FINGERPRINT as SPEC §2.10 puts
 * them).  Independent of src/common/stun_msg.c on purpose. */
#include <string.h>

#include "sim.h"

static uint16_t
be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

uint16_t
sim_stun_type(uint16_t method, uint8_t cls)
{
    return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
        ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
}

int
sim_msg_parse(struct sim_msg *m, const uint8_t *buf, size_t len)
{
    size_t off = 20;

    memset(m, 0, sizeof(*m));
    if (len < 20 || (buf[0] & 0xC0) != 0)
        return -1;
    if (be16(buf + 2) % 4 != 0 || 20u + be16(buf + 2) != len ||
        ((uint32_t)be16(buf + 4) << 16 | be16(buf + 6)) != SIM_COOKIE)
        return -1;
    m->buf = buf;
    m->size = len;
    m->type = be16(buf);
    m->method = (uint16_t)((m->type & 0x000F) | ((m->type & 0x00E0) >> 1) |
        ((m->type & 0x3E00) >> 2));
    m->cls = (uint8_t)(((m->type >> 4) & 1) | ((m->type >> 7) & 2));
    memcpy(m->txid, buf + 8, 12);
    while (off < len) {
        uint16_t t, l;

        if (off + 4 > len || m->nattr == SIM_MSG_ATTRS)
            return -1;
        t = be16(buf + off);
        l = be16(buf + off + 2);
        if (off + 4 + l > len)
            return -1;
        m->at[m->nattr].type = t;
        m->at[m->nattr].len = l;
        m->at[m->nattr].off = (uint16_t)off;
        m->nattr++;
        off += 4 + (((size_t)l + 3) & ~(size_t)3);
    }
    return off == len ? 0 : -1;
}

int
sim_msg_find(const struct sim_msg *m, uint16_t type)
{
    for (int i = 0; i < m->nattr; i++)
        if (m->at[i].type == type)
            return i;
    return -1;
}

const uint8_t *
sim_msg_get(const struct sim_msg *m, uint16_t type, uint16_t *len)
{
    int i = sim_msg_find(m, type);

    if (i < 0)
        return NULL;
    if (len != NULL)
        *len = m->at[i].len;
    return m->buf + m->at[i].off + 4;
}

int
sim_msg_mi_ok(struct sim_crypto *c, const struct sim_msg *m,
    const struct sim_key *k)
{
    uint8_t tmp[SIM_DGRAM_MAX], mac[20];
    int     i = sim_msg_find(m, SA_MI);
    size_t  off;

    if (i < 0 || m->at[i].len != 20)
        return 0;
    off = m->at[i].off;
    if (off > sizeof(tmp))
        return 0;
    memcpy(tmp, m->buf, off);
    put16(tmp + 2, (uint16_t)(off - 20 + 24));
    sim_hmac(c, k, tmp, off, mac);
    return memcmp(mac, m->buf + off + 4, 20) == 0;
}

int
sim_msg_fp_ok(const struct sim_msg *m)
{
    int      i = sim_msg_find(m, SA_FINGERPRINT);
    size_t   off;
    uint32_t want;

    if (i < 0 || i != m->nattr - 1 || m->at[i].len != 4)
        return 0;
    off = m->at[i].off;
    want = sim_crc32(m->buf, off) ^ 0x5354554Eu;
    return ((uint32_t)be16(m->buf + off + 4) << 16 |
        be16(m->buf + off + 6)) == want;
}

int
sim_xaddr_decode(const uint8_t *v, uint16_t len, const uint8_t txid[12],
    struct addr *a)
{
    uint8_t  mask[16] = { 0x21, 0x12, 0xA4, 0x42 };
    uint8_t  ip[16];
    uint16_t port;

    memcpy(mask + 4, txid, 12);
    if (len < 4)
        return -1;
    port = (uint16_t)(be16(v + 2) ^ 0x2112);
    if (v[1] == 0x01 && len == 8) {
        for (int i = 0; i < 4; i++)
            ip[i] = v[4 + i] ^ mask[i];
        sim_addr4(a, (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 |
            (uint32_t)ip[2] << 8 | ip[3], port);
        return 0;
    }
    if (v[1] == 0x02 && len == 20) {
        for (int i = 0; i < 16; i++)
            ip[i] = v[4 + i] ^ mask[i];
        sim_addr6(a, ip, port);
        return 0;
    }
    return -1;
}

/* --- Encoder ----------------------------------------------------------- */

void
sim_enc_init(struct sim_enc *e, uint8_t *buf, size_t cap, uint16_t type,
    const uint8_t txid[12])
{
    e->buf = buf;
    e->cap = cap;
    e->len = 20;
    e->err = cap < 20;
    memcpy(e->txid, txid, 12);
    if (e->err)
        return;
    put16(buf, type);
    put16(buf + 2, 0);
    put32(buf + 4, SIM_COOKIE);
    memcpy(buf + 8, txid, 12);
}

void
sim_enc_attr(struct sim_enc *e, uint16_t type, const void *v, size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;

    if (e->err || len > 0xFFFF || e->len + 4 + padded > e->cap) {
        e->err = 1;
        return;
    }
    put16(e->buf + e->len, type);
    put16(e->buf + e->len + 2, (uint16_t)len);
    if (len > 0)
        memcpy(e->buf + e->len + 4, v, len);
    memset(e->buf + e->len + 4 + len, 0, padded - len);
    e->len += 4 + padded;
}

void
sim_enc_u32(struct sim_enc *e, uint16_t type, uint32_t v)
{
    uint8_t b[4];

    put32(b, v);
    sim_enc_attr(e, type, b, 4);
}

void
sim_enc_xaddr(struct sim_enc *e, uint16_t type, const struct addr *a)
{
    uint8_t mask[16] = { 0x21, 0x12, 0xA4, 0x42 };
    uint8_t v[20] = { 0 };
    size_t  n = a->family == ADDR_V4 ? 4 : 16;

    memcpy(mask + 4, e->txid, 12);
    v[1] = a->family == ADDR_V4 ? 0x01 : 0x02;
    put16(v + 2, (uint16_t)(a->port ^ 0x2112));
    for (size_t i = 0; i < n; i++)
        v[4 + i] = a->ip[i] ^ mask[i];
    sim_enc_attr(e, type, v, 4 + n);
}

void
sim_enc_mi(struct sim_crypto *c, struct sim_enc *e, const struct sim_key *k)
{
    uint8_t mac[20];

    if (e->err || e->len + 24 > e->cap) {
        e->err = 1;
        return;
    }
    put16(e->buf + 2, (uint16_t)(e->len - 20 + 24));
    sim_hmac(c, k, e->buf, e->len, mac);
    sim_enc_attr(e, SA_MI, mac, 20);
}

void
sim_enc_fp(struct sim_enc *e)
{
    uint8_t v[4];

    if (e->err || e->len + 8 > e->cap) {
        e->err = 1;
        return;
    }
    put16(e->buf + 2, (uint16_t)(e->len - 20 + 8));
    put32(v, sim_crc32(e->buf, e->len) ^ 0x5354554Eu);
    sim_enc_attr(e, SA_FINGERPRINT, v, 4);
}

size_t
sim_enc_done(struct sim_enc *e)
{
    if (e->err)
        return 0;
    put16(e->buf + 2, (uint16_t)(e->len - 20));
    return e->len;
}
