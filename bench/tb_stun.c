/* tb_stun.c - the benchmark's TURN client codec and long-term credentials.
 *
 * Only what a client needs: requests with USERNAME, REALM, NONCE and
 * MESSAGE-INTEGRITY (RFC 8489 §14.5), and responses parsed for
 * ERROR-CODE, NONCE, REALM and XOR-RELAYED-ADDRESS.  Responses are not
 * authenticated: the tools trust the server they benchmark. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "tb.h"

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
        (uint32_t)p[2] << 8 | p[3];
}

void
stun_build_init(struct stun_build *b, uint8_t *buf, size_t cap,
    uint16_t method, const uint8_t txid[12])
{
    b->buf = buf;
    b->cap = cap;
    b->len = STUN_HDR;
    b->overflow = cap < STUN_HDR;
    if (b->overflow)
        return;
    /* A request has both class bits clear; the method bits below 0x10
     * sit in place (every method used here is below 0x10). */
    put16(buf, method);
    put16(buf + 2, 0);
    put32(buf + 4, STUN_COOKIE);
    memcpy(buf + 8, txid, 12);
}

void
stun_build_attr(struct stun_build *b, uint16_t type, const void *val,
    size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;

    if (b->overflow || len > 0xffff || b->len + 4 + padded > b->cap) {
        b->overflow = 1;
        return;
    }
    put16(b->buf + b->len, type);
    put16(b->buf + b->len + 2, (uint16_t)len);
    if (len > 0)
        memcpy(b->buf + b->len + 4, val, len);
    memset(b->buf + b->len + 4 + len, 0, padded - len);
    b->len += 4 + padded;
    put16(b->buf + 2, (uint16_t)(b->len - STUN_HDR));
}

void
stun_build_u32(struct stun_build *b, uint16_t type, uint32_t v)
{
    uint8_t val[4];

    put32(val, v);
    stun_build_attr(b, type, val, sizeof(val));
}

void
stun_build_xaddr(struct stun_build *b, uint16_t type,
    const struct sockaddr_in *sin)
{
    uint8_t  val[8];
    uint16_t port = ntohs(sin->sin_port);
    uint32_t ip = ntohl(sin->sin_addr.s_addr);

    val[0] = 0;
    val[1] = 0x01;                  /* IPv4 */
    put16(val + 2, port ^ (uint16_t)(STUN_COOKIE >> 16));
    put32(val + 4, ip ^ STUN_COOKIE);
    stun_build_attr(b, type, val, sizeof(val));
}

int
stun_build_finish(struct stun_build *b, const uint8_t key[16],
    EVP_MAC_CTX *mac)
{
    uint8_t digest[20];
    size_t  dlen = 0;

    if (b->overflow || b->len + 24 > b->cap)
        return -1;
    /* The length field counts MESSAGE-INTEGRITY before it is computed. */
    put16(b->buf + 2, (uint16_t)(b->len + 24 - STUN_HDR));
    if (EVP_MAC_init(mac, key, 16, NULL) != 1 ||
        EVP_MAC_update(mac, b->buf, b->len) != 1 ||
        EVP_MAC_final(mac, digest, &dlen, sizeof(digest)) != 1 ||
        dlen != sizeof(digest))
        return -1;
    stun_build_attr(b, STUN_A_INTEGRITY, digest, sizeof(digest));
    return b->overflow ? -1 : (int)b->len;
}

static void
copy_text(char *dst, size_t *dlen, const uint8_t *src, size_t len)
{
    if (len >= STUN_MAX_TEXT)
        len = STUN_MAX_TEXT - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    *dlen = len;
}

static void
parse_attr(struct stun_resp *r, uint16_t type, const uint8_t *v, size_t len)
{
    switch (type) {
    case STUN_A_ERROR_CODE:
        if (len >= 4)
            r->error = (v[2] & 0x7) * 100 + v[3];
        break;
    case STUN_A_NONCE:
        copy_text(r->nonce, &r->nonce_len, v, len);
        break;
    case STUN_A_REALM:
        copy_text(r->realm, &r->realm_len, v, len);
        break;
    case STUN_A_XOR_RELAYED:
        if (len == 8 && v[1] == 0x01) {
            memset(&r->relayed, 0, sizeof(r->relayed));
            r->relayed.sin_family = AF_INET;
            r->relayed.sin_port = htons(get16(v + 2) ^
                (uint16_t)(STUN_COOKIE >> 16));
            r->relayed.sin_addr.s_addr = htonl(get32(v + 4) ^ STUN_COOKIE);
            r->has_relayed = 1;
        }
        break;
    default:
        break;
    }
}

int
stun_parse(const uint8_t *buf, size_t len, struct stun_resp *r)
{
    uint16_t type;
    size_t   off = STUN_HDR;

    memset(r, 0, offsetof(struct stun_resp, nonce));
    r->nonce_len = r->realm_len = 0;
    r->nonce[0] = r->realm[0] = '\0';
    if (len < STUN_HDR || (buf[0] & 0xc0) != 0 ||
        get32(buf + 4) != STUN_COOKIE ||
        (size_t)get16(buf + 2) + STUN_HDR != len)
        return -1;
    type = get16(buf);
    r->cls = type & 0x110;
    r->method = (uint16_t)((type & 0x000f) | ((type & 0x00e0) >> 1) |
        ((type & 0x3e00) >> 2));
    memcpy(r->txid, buf + 8, 12);
    while (off + 4 <= len) {
        uint16_t atype = get16(buf + off);
        size_t   alen = get16(buf + off + 2);

        if (off + 4 + alen > len)
            return -1;
        parse_attr(r, atype, buf + off + 4, alen);
        off += 4 + ((alen + 3) & ~(size_t)3);
    }
    return 0;
}

EVP_MAC_CTX *
tb_hmac_new(void)
{
    EVP_MAC     *m;
    EVP_MAC_CTX *ctx;
    OSSL_PARAM   params[2];
    char         digest[] = "SHA1";

    if ((m = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        return NULL;
    ctx = EVP_MAC_CTX_new(m);
    EVP_MAC_free(m);
    if (ctx == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
        digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int
tb_fz_password(uint64_t expiry, const char *secret, const char *salt,
    char out[44])
{
    char          in[1024];
    unsigned char md[32];
    unsigned char b64[48];
    unsigned int  mdlen = 0;
    int           n;

    n = snprintf(in, sizeof(in), "%llu:%s:%s", (unsigned long long)expiry,
        secret, salt);
    if (n < 0 || (size_t)n >= sizeof(in))
        return -1;
    if (EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32)
        return -1;
    /* 32 bytes encode to 44 characters with one '=' of padding. */
    if (EVP_EncodeBlock(b64, md, 32) != 44)
        return -1;
    memcpy(out, b64, 43);
    out[43] = '\0';
    return 0;
}

int
tb_lt_key(const char *user, const char *realm, const char *password,
    uint8_t key[16])
{
    char         in[1024];
    unsigned int mdlen = 0;
    int          n;

    n = snprintf(in, sizeof(in), "%s:%s:%s", user, realm, password);
    if (n < 0 || (size_t)n >= sizeof(in))
        return -1;
    if (EVP_Digest(in, (size_t)n, key, &mdlen, EVP_md5(), NULL) != 1 ||
        mdlen != 16)
        return -1;
    return 0;
}
