/* sim_crypto.c - the simulation's own credentials and integrity code
 * (SPEC §3.2-§3.5, §2.10), written apart from src/common/auth.c and
 * stun_integrity.c: SHA-256, MD5 and SHA-1 come from OpenSSL's EVP digests,
 * the HMAC construction, Base64 and CRC-32 are done here. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

int
sim_crypto_init(struct sim_crypto *c)
{
    memset(c, 0, sizeof(*c));
    c->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    c->tmp = EVP_MD_CTX_new();
    if (c->sha1 == NULL || c->sha256 == NULL || c->md5 == NULL ||
        c->tmp == NULL) {
        sim_crypto_fini(c);
        return -1;
    }
    return 0;
}

void
sim_crypto_fini(struct sim_crypto *c)
{
    EVP_MD_free(c->sha1);
    EVP_MD_free(c->sha256);
    EVP_MD_free(c->md5);
    EVP_MD_CTX_free(c->tmp);
    memset(c, 0, sizeof(*c));
}

static int
digest(const EVP_MD *md, const void *p, size_t n, uint8_t *out)
{
    unsigned int len = 0;

    return EVP_Digest(p, n, out, &len, md, NULL) == 1 ? 0 : -1;
}

size_t
sim_b64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t            o = 0, i;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
            in[i + 2];

        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (len - i == 1) {
        out[o++] = tab[in[i] >> 2];
        out[o++] = tab[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

        out[o++] = tab[v >> 10];
        out[o++] = tab[(v >> 4) & 63];
        out[o++] = tab[(v & 15) << 2];
    }
    out[o] = '\0';
    return o;
}

int
sim_cred_password(struct sim_crypto *c, const char *secret, uint64_t expiry,
    const char *salt, size_t saltlen, char out[44])
{
    char    text[512];
    uint8_t md[32];
    int     n;

    n = snprintf(text, sizeof(text), "%llu:%s:%.*s",
        (unsigned long long)expiry, secret, (int)saltlen, salt);
    if (n < 0 || (size_t)n >= sizeof(text) ||
        digest(c->sha256, text, (size_t)n, md) != 0)
        return -1;
    return sim_b64(md, 32, out) == 43 ? 0 : -1;
}

/* "<digits>:<salt>", exactly one ':', 1-20 digits fitting 64 bits. */
static int
parse_user(const uint8_t *u, size_t len, uint64_t *expiry,
    const char **salt, size_t *saltlen)
{
    size_t   colon = len, ncolon = 0;
    uint64_t v = 0;

    for (size_t i = 0; i < len; i++)
        if (u[i] == ':') {
            colon = i;
            ncolon++;
        }
    if (ncolon != 1 || colon == 0 || colon > 20)
        return -1;
    for (size_t i = 0; i < colon; i++) {
        uint64_t d;

        if (u[i] < '0' || u[i] > '9')
            return -1;
        d = (uint64_t)(u[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *expiry = v;
    *salt = (const char *)u + colon + 1;
    *saltlen = len - colon - 1;
    return 0;
}

int
sim_cred_key(struct sim_crypto *c, const char *secret, const uint8_t *user,
    size_t ulen, uint8_t key[16])
{
    const char *salt;
    size_t      saltlen;
    uint64_t    expiry;
    char        pw[44], text[600];
    int         n;

    if (parse_user(user, ulen, &expiry, &salt, &saltlen) != 0 ||
        sim_cred_password(c, secret, expiry, salt, saltlen, pw) != 0)
        return -1;
    n = snprintf(text, sizeof(text), "%llu:%.*s:%s:%s",
        (unsigned long long)expiry, (int)saltlen, salt, SIM_REALM, pw);
    if (n < 0 || (size_t)n >= sizeof(text))
        return -1;
    return digest(c->md5, text, (size_t)n, key);
}

int
sim_key_init(struct sim_crypto *c, struct sim_key *k, const uint8_t key[16])
{
    uint8_t ipad[64], opad[64];

    memset(k, 0, sizeof(*k));
    memcpy(k->key, key, 16);
    for (int i = 0; i < 64; i++) {
        uint8_t b = i < 16 ? key[i] : 0;

        ipad[i] = b ^ 0x36;
        opad[i] = b ^ 0x5c;
    }
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    if (k->inner == NULL || k->outer == NULL ||
        EVP_DigestInit_ex(k->inner, c->sha1, NULL) != 1 ||
        EVP_DigestUpdate(k->inner, ipad, 64) != 1 ||
        EVP_DigestInit_ex(k->outer, c->sha1, NULL) != 1 ||
        EVP_DigestUpdate(k->outer, opad, 64) != 1) {
        sim_key_fini(k);
        return -1;
    }
    return 0;
}

void
sim_key_fini(struct sim_key *k)
{
    EVP_MD_CTX_free(k->inner);
    EVP_MD_CTX_free(k->outer);
    k->inner = k->outer = NULL;
}

void
sim_hmac(struct sim_crypto *c, const struct sim_key *k, const uint8_t *msg,
    size_t len, uint8_t out[20])
{
    uint8_t      ih[20];
    unsigned int n = 0;

    EVP_MD_CTX_copy_ex(c->tmp, k->inner);
    EVP_DigestUpdate(c->tmp, msg, len);
    EVP_DigestFinal_ex(c->tmp, ih, &n);
    EVP_MD_CTX_copy_ex(c->tmp, k->outer);
    EVP_DigestUpdate(c->tmp, ih, 20);
    EVP_DigestFinal_ex(c->tmp, out, &n);
}

uint32_t
sim_crc32(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;

    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int
sim_crypto_selftest(struct sim_crypto *c, char *why, size_t size)
{
    static const char s1[] =
        "4c98bf59c99b3e467ecd7cf9d6b3e5279645fca59be67bc5bb4af3cf653761ab";
    static const char u1[] = "1892160000:n23JJ2wKKtt30oXi";
    static const char u3[] = "1685200000:n23JJ2wKKtt30oXi";
    uint8_t           key[16], mac[20], msg[20] = {
        0x00, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42 };
    struct sim_key    k;
    char              pw[44], h[64];
    uint8_t           fp[28] = { 0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4,
        0x42 };

    if (sim_cred_password(c, s1, 1892160000, "n23JJ2wKKtt30oXi", 16,
            pw) != 0 ||
        strcmp(pw, "00hqldgk5xLeKKOB+xls9mHMVtgqzie9DulfgQwMv68") != 0) {
        snprintf(why, size, "password vector");
        return -1;
    }
    sim_cred_key(c, s1, (const uint8_t *)u1, strlen(u1), key);
    hex(key, 16, h);
    if (strcmp(h, "e444d93976b92ec355c14337c9a9d3fb") != 0) {
        snprintf(why, size, "key vector 1: %s", h);
        return -1;
    }
    sim_cred_key(c, s1, (const uint8_t *)u3, strlen(u3), key);
    hex(key, 16, h);
    if (strcmp(h, "b5b9c0f90e4d4ca659e6a95037c3fdf0") != 0) {
        snprintf(why, size, "key vector 3: %s", h);
        return -1;
    }
    if (sim_key_init(c, &k, key) != 0) {
        snprintf(why, size, "hmac init");
        return -1;
    }
    sim_hmac(c, &k, msg, sizeof(msg), mac);
    sim_key_fini(&k);
    hex(mac, 20, h);
    if (strcmp(h, "b7fae87d77ac2a745ffc1bcb1706af4c6ecc87f2") != 0) {
        snprintf(why, size, "hmac vector: %s", h);
        return -1;
    }
    if ((sim_crc32(fp, 20) ^ 0x5354554Eu) != 0xb2aaf9f6u) {
        snprintf(why, size, "fingerprint vector");
        return -1;
    }
    return 0;
}
