/* auth.c - stamp-secret credentials (SPEC §3), per-socket nonces (SPEC
 * §3.7) and the error rate limit (SPEC §2.12); see auth.h.
 *
 * Digests go through OpenSSL 3 EVP (the one-shot MD5()/SHA256() calls are
 * deprecated).  Both tables are the same fixed-size LRU hash table keyed by
 * a client address: chained buckets and a doubly linked recency list, all
 * linked by 32-bit index into one entry array.  Nothing is allocated after
 * *_new() and every operation is O(1) on average.  Buckets are picked with
 * SipHash-2-4 under a per-table key because the addresses come from the
 * network and must not be aimable at one chain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth.h"
#include "rly_err.h"
#include "siphash.h"

#define NIL             UINT32_MAX
#define LTAB_MAX_CAP    AUTH_TABLE_MAX
#define U64_DIGITS      20
#define MILLI           1000    /* a token, in the rate limit's units */

/* --- Text helpers --- */

static const char hexdigits[] = "0123456789abcdef";

static const char b64alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
write_hex(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        *out++ = hexdigits[in[i] >> 4];
        *out++ = hexdigits[in[i] & 0x0f];
    }
}

/* Locale-independent, unlike isxdigit(). */
static int
hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Canonical decimal: no sign, no leading zeros.  Returns the length. */
static size_t
format_u64(uint64_t v, char out[U64_DIGITS + 1])
{
    int n = snprintf(out, U64_DIGITS + 1, "%llu", (unsigned long long)v);

    return (size_t)n;
}

/* --- Digests --- */

struct part {
    const void *p;
    size_t      len;
};

/* out receives EVP_MD_get_size(md) bytes of the digest of the
 * concatenated parts, fed piece by piece so no buffer bounds the salt or
 * the secret. */
static int
digest_parts(const EVP_MD *md, const struct part *parts, size_t n,
    uint8_t *out)
{
    EVP_MD_CTX *ctx;
    int         ok;

    if (md == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
        return RLY_ERR_CRYPTO;
    ok = EVP_DigestInit_ex(ctx, md, NULL);
    for (size_t i = 0; ok && i < n; i++) {
        if (parts[i].len > 0)
            ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : RLY_ERR_CRYPTO;
}

/* --- Secret --- */

int
auth_secret_generate(rly_rand_fn rnd, void *ud,
    char out[AUTH_SECRET_HEXLEN + 1])
{
    uint8_t raw[AUTH_SECRET_HEXLEN / 2];
    int     rc;

    if ((rc = rnd(ud, raw, sizeof(raw))) != 0)
        return rc;
    write_hex(raw, sizeof(raw), out);
    out[AUTH_SECRET_HEXLEN] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

static int
secret_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || (c != '\0' && strchr("-._~+/=", c));
}

int
auth_secret_ok(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    for (n = 0; s[n] != '\0'; n++) {
        if (n >= AUTH_SECRET_MAXLEN || !secret_char_ok(s[n]))
            return 0;
    }
    return n >= AUTH_SECRET_MINLEN;
}

/* --- Username, password, key --- */

int
auth_username_parse(const uint8_t *u, size_t len, uint64_t *expiry,
    const uint8_t **salt, size_t *saltlen)
{
    const uint8_t *colon;
    size_t         elen;
    uint64_t       v = 0;

    if (len == 0 || (colon = memchr(u, ':', len)) == NULL)
        return RLY_ERR_INVAL;
    elen = (size_t)(colon - u);
    if (memchr(colon + 1, ':', len - elen - 1) != NULL)
        return RLY_ERR_INVAL;
    if (elen < 1 || elen > U64_DIGITS)
        return RLY_ERR_INVAL;
    for (size_t i = 0; i < elen; i++) {
        unsigned d = (unsigned)u[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return RLY_ERR_INVAL;
        v = v * 10 + d;
    }
    *expiry = v;
    *salt = colon + 1;
    *saltlen = len - elen - 1;
    return 0;
}

int
auth_password(const char *secret, uint64_t expiry, const uint8_t *salt,
    size_t saltlen, char out[AUTH_PASSWORD_LEN + 1])
{
    char        dec[U64_DIGITS + 1];
    uint8_t     md[32];
    struct part parts[5];
    int         rc;

    parts[0] = (struct part){ dec, format_u64(expiry, dec) };
    parts[1] = (struct part){ ":", 1 };
    parts[2] = (struct part){ secret, strlen(secret) };
    parts[3] = (struct part){ ":", 1 };
    parts[4] = (struct part){ salt, saltlen };
    if ((rc = digest_parts(EVP_sha256(), parts, 5, md)) != 0)
        return rc;
    auth_base64_nopad(md, sizeof(md), out);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

int
auth_key(const char *secret, const uint8_t *username, size_t ulen,
    uint64_t *expiry, uint8_t key[16])
{
    char           pw[AUTH_PASSWORD_LEN + 1];
    char           dec[U64_DIGITS + 1];
    const uint8_t *salt;
    size_t         saltlen;
    uint64_t       exp;
    struct part    parts[5];
    int            rc;

    if ((rc = auth_username_parse(username, ulen, &exp, &salt,
            &saltlen)) != 0)
        return rc;
    *expiry = exp;
    if ((rc = auth_password(secret, exp, salt, saltlen, pw)) != 0)
        return rc;
    /* The canonical expiry, not the received text: "0123:x" is "123:x". */
    parts[0] = (struct part){ dec, format_u64(exp, dec) };
    parts[1] = (struct part){ ":", 1 };
    parts[2] = (struct part){ salt, saltlen };
    parts[3] = (struct part){ ":" AUTH_REALM ":", sizeof(AUTH_REALM) + 1 };
    parts[4] = (struct part){ pw, AUTH_PASSWORD_LEN };
    rc = digest_parts(EVP_md5(), parts, 5, key);
    OPENSSL_cleanse(pw, sizeof(pw));
    return rc;
}

size_t
auth_base64_nopad(const uint8_t *in, size_t len, char *out)
{
    size_t   o = 0, i;
    uint32_t v;

    for (i = 0; len - i >= 3; i += 3) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64alpha[v >> 18 & 63];
        out[o++] = b64alpha[v >> 12 & 63];
        out[o++] = b64alpha[v >> 6 & 63];
        out[o++] = b64alpha[v & 63];
    }
    if (len - i > 0) {
        v = (uint32_t)in[i] << 16;
        if (len - i == 2)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = b64alpha[v >> 18 & 63];
        out[o++] = b64alpha[v >> 12 & 63];
        if (len - i == 2)
            out[o++] = b64alpha[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

/* --- Nonce text --- */

/* A UUID without wrapper: 32 hex digits, or 36 characters with hyphens
 * exactly at 8, 13, 18 and 23. */
static int
parse_uuid_body(const uint8_t *s, size_t len, uint8_t out[AUTH_NONCE_LEN])
{
    uint8_t tmp[AUTH_NONCE_LEN];
    size_t  d = 0;
    int     hyphens = (len == AUTH_NONCE_STRLEN);

    if (len != 2 * AUTH_NONCE_LEN && !hyphens)
        return RLY_ERR_INVAL;
    for (size_t i = 0; i < len; i++) {
        int v;

        if (hyphens && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return RLY_ERR_INVAL;
            continue;
        }
        if ((v = hex_value(s[i])) < 0)
            return RLY_ERR_INVAL;
        if (d % 2 == 0)
            tmp[d / 2] = (uint8_t)(v << 4);
        else
            tmp[d / 2] |= (uint8_t)v;
        d++;
    }
    memcpy(out, tmp, sizeof(tmp));
    return 0;
}

static int
prefix_caseeq(const uint8_t *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];

        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)lower[i])
            return 0;
    }
    return 1;
}

int
auth_nonce_parse(const uint8_t *s, size_t len, uint8_t out[AUTH_NONCE_LEN])
{
    static const char urn[] = "urn:uuid:";
    const size_t      urnlen = sizeof(urn) - 1;

    /* The wrapped forms hold the hyphenated form only, as RFC 9562 and
     * the uuid crate upstream parses with have it. */
    if (len == AUTH_NONCE_STRLEN + 2 && s[0] == '{' && s[len - 1] == '}')
        return parse_uuid_body(s + 1, AUTH_NONCE_STRLEN, out);
    if (len == AUTH_NONCE_STRLEN + urnlen && prefix_caseeq(s, urn, urnlen))
        return parse_uuid_body(s + urnlen, AUTH_NONCE_STRLEN, out);
    return parse_uuid_body(s, len, out);
}

void
auth_nonce_format(const uint8_t n[AUTH_NONCE_LEN],
    char out[AUTH_NONCE_STRLEN + 1])
{
    /* 8-4-4-4-12 hex digits: byte groups of 4, 2, 2, 2, 6. */
    static const uint8_t group[] = { 4, 2, 2, 2, 6 };
    size_t               b = 0;

    for (size_t g = 0; g < sizeof(group); g++) {
        if (g > 0)
            *out++ = '-';
        write_hex(n + b, group[g], out);
        out += 2 * group[g];
        b += group[g];
    }
    *out = '\0';
}

/* --- The LRU hash table shared by nonces and rate-limit buckets --- */

struct lent {
    struct addr key;        /* normalised by ltab_make_key() */
    uint32_t    hnext;      /* bucket chain, or free list when unused */
    uint32_t    newer;      /* recency list, towards ltab.mru */
    uint32_t    older;      /* recency list, towards ltab.lru */
};

struct ltab {
    struct siphash_key  hk;
    struct lent        *ent;        /* cap entries */
    uint32_t           *bucket;     /* mask + 1 chain heads */
    uint32_t            mask;
    uint32_t            cap, n;
    uint32_t            mru, lru;   /* ends of the recency list */
    uint32_t            freel;
    int                 with_port;  /* nonces: socket; rate limit: IP */
};

static int
ltab_init(struct ltab *t, size_t cap, const uint8_t hashkey[16],
    int with_port)
{
    size_t nb = 1;

    memset(t, 0, sizeof(*t));
    if (cap == 0 || cap > LTAB_MAX_CAP)
        return RLY_ERR_INVAL;
    while (nb < cap)
        nb <<= 1;
    t->ent = calloc(cap, sizeof(*t->ent));
    t->bucket = malloc(nb * sizeof(*t->bucket));
    if (t->ent == NULL || t->bucket == NULL)
        return RLY_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++)
        t->bucket[i] = NIL;
    for (size_t i = 0; i < cap; i++)
        t->ent[i].hnext = i + 1 < cap ? (uint32_t)(i + 1) : NIL;
    siphash_key_set(&t->hk, hashkey);
    t->mask = (uint32_t)(nb - 1);
    t->cap = (uint32_t)cap;
    t->mru = t->lru = NIL;
    t->freel = 0;
    t->with_port = with_port;
    return 0;
}

static void
ltab_fini(struct ltab *t)
{
    free(t->ent);
    free(t->bucket);
}

/* Keys are rebuilt here with every unused byte zero, so that memcmp()
 * compares exactly family, IP and (for sockets) port, whatever the caller's
 * struct holds in its padding or unused IP bytes. */
static void
ltab_make_key(const struct ltab *t, const struct addr *a, struct addr *k)
{
    memset(k, 0, sizeof(*k));
    k->family = a->family;
    memcpy(k->ip, a->ip, a->family == ADDR_V4 ? 4 : sizeof(k->ip));
    if (t->with_port)
        k->port = a->port;
}

static uint32_t
ltab_bucket(const struct ltab *t, const struct addr *k)
{
    uint8_t buf[1 + 16 + 2];
    size_t  iplen = k->family == ADDR_V4 ? 4 : 16, n = 0;

    buf[n++] = k->family;
    memcpy(buf + n, k->ip, iplen);
    n += iplen;
    if (t->with_port) {
        buf[n++] = (uint8_t)(k->port >> 8);
        buf[n++] = (uint8_t)k->port;
    }
    return (uint32_t)siphash24(&t->hk, buf, n) & t->mask;
}

static uint32_t
ltab_find(const struct ltab *t, const struct addr *k, uint32_t b)
{
    uint32_t i;

    for (i = t->bucket[b]; i != NIL; i = t->ent[i].hnext) {
        if (memcmp(&t->ent[i].key, k, sizeof(*k)) == 0)
            break;
    }
    return i;
}

static void
ltab_unlink_lru(struct ltab *t, uint32_t i)
{
    struct lent *e = &t->ent[i];

    if (e->newer != NIL)
        t->ent[e->newer].older = e->older;
    else
        t->mru = e->older;
    if (e->older != NIL)
        t->ent[e->older].newer = e->newer;
    else
        t->lru = e->newer;
}

static void
ltab_push_mru(struct ltab *t, uint32_t i)
{
    struct lent *e = &t->ent[i];

    e->newer = NIL;
    e->older = t->mru;
    if (t->mru != NIL)
        t->ent[t->mru].newer = i;
    else
        t->lru = i;
    t->mru = i;
}

static void
ltab_touch(struct ltab *t, uint32_t i)
{
    if (t->mru == i)
        return;
    ltab_unlink_lru(t, i);
    ltab_push_mru(t, i);
}

static void
ltab_remove(struct ltab *t, uint32_t i)
{
    uint32_t *link = &t->bucket[ltab_bucket(t, &t->ent[i].key)];

    while (*link != i)
        link = &t->ent[*link].hnext;
    *link = t->ent[i].hnext;
    ltab_unlink_lru(t, i);
    t->ent[i].hnext = t->freel;
    t->freel = i;
    t->n--;
}

/* Adds k (not present) as the most recent entry in bucket b, evicting the
 * least recent one when full.  Returns its index; the caller fills the
 * payload. */
static uint32_t
ltab_insert(struct ltab *t, const struct addr *k, uint32_t b)
{
    uint32_t i;

    if (t->n == t->cap)
        ltab_remove(t, t->lru);
    i = t->freel;
    t->freel = t->ent[i].hnext;
    t->ent[i].key = *k;
    t->ent[i].hnext = t->bucket[b];
    t->bucket[b] = i;
    ltab_push_mru(t, i);
    t->n++;
    return i;
}

/* --- Nonces --- */

struct nonce_val {
    uint8_t     nonce[AUTH_NONCE_LEN];
    uint32_t    uses;               /* uses left */
};

struct auth_nonces {
    struct ltab         t;
    struct nonce_val   *val;        /* parallel to t.ent */
};

struct auth_nonces *
auth_nonces_new(size_t cap, const uint8_t hashkey[16])
{
    struct auth_nonces *t;

    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    if (ltab_init(&t->t, cap, hashkey, 1) != 0 ||
        (t->val = calloc(cap, sizeof(*t->val))) == NULL) {
        auth_nonces_free(t);
        return NULL;
    }
    return t;
}

void
auth_nonces_free(struct auth_nonces *t)
{
    if (t == NULL)
        return;
    ltab_fini(&t->t);
    free(t->val);
    free(t);
}

int
auth_nonce_current(struct auth_nonces *t, const struct addr *client,
    rly_rand_fn rnd, void *ud, uint8_t out[AUTH_NONCE_LEN])
{
    struct addr k;
    uint8_t     fresh[AUTH_NONCE_LEN];
    uint32_t    b, i;
    int         rc;

    ltab_make_key(&t->t, client, &k);
    b = ltab_bucket(&t->t, &k);
    if ((i = ltab_find(&t->t, &k, b)) != NIL) {
        ltab_touch(&t->t, i);
    } else {
        /* Draw before inserting: a failing rand must evict nobody. */
        if ((rc = rnd(ud, fresh, sizeof(fresh))) != 0)
            return rc;
        i = ltab_insert(&t->t, &k, b);
        memcpy(t->val[i].nonce, fresh, sizeof(fresh));
        t->val[i].uses = AUTH_NONCE_USES;
    }
    memcpy(out, t->val[i].nonce, AUTH_NONCE_LEN);
    return 0;
}

int
auth_nonce_check(struct auth_nonces *t, const struct addr *client,
    const uint8_t nonce[AUTH_NONCE_LEN])
{
    struct addr k;
    uint32_t    i;

    ltab_make_key(&t->t, client, &k);
    if ((i = ltab_find(&t->t, &k, ltab_bucket(&t->t, &k))) == NIL)
        return RLY_ERR_STALE;
    /* Checked, so most recent, even when stale: the 438 hands it out. */
    ltab_touch(&t->t, i);
    if (memcmp(t->val[i].nonce, nonce, AUTH_NONCE_LEN) != 0)
        return RLY_ERR_STALE;
    if (t->val[i].uses == 0) {
        ltab_remove(&t->t, i);
        return RLY_ERR_STALE;
    }
    t->val[i].uses--;
    return 0;
}

size_t
auth_nonces_count(const struct auth_nonces *t)
{
    return t->t.n;
}

/* --- Rate limit --- */

struct bucket_val {
    uint64_t    milli;              /* tokens, in thousandths */
    uint64_t    last_ms;            /* time of the last refill */
};

struct auth_ratelim {
    struct ltab         t;
    struct bucket_val  *val;        /* parallel to t.ent */
};

struct auth_ratelim *
auth_ratelim_new(size_t cap, const uint8_t hashkey[16])
{
    struct auth_ratelim *r;

    if ((r = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    if (ltab_init(&r->t, cap, hashkey, 0) != 0 ||
        (r->val = calloc(cap, sizeof(*r->val))) == NULL) {
        auth_ratelim_free(r);
        return NULL;
    }
    return r;
}

void
auth_ratelim_free(struct auth_ratelim *r)
{
    if (r == NULL)
        return;
    ltab_fini(&r->t);
    free(r->val);
    free(r);
}

/* rate tokens per second is exactly rate milli-tokens per millisecond, so
 * the refill loses no fraction.  A clock that steps back refills nothing. */
static void
bucket_refill(struct bucket_val *v, uint64_t now_ms, uint32_t rate,
    uint64_t full)
{
    uint64_t elapsed, need;

    if (now_ms > v->last_ms) {
        elapsed = now_ms - v->last_ms;
        v->last_ms = now_ms;
        need = v->milli < full ? full - v->milli : 0;
        /* Compare before multiplying: elapsed * rate may overflow. */
        if (elapsed >= (need + rate - 1) / rate)
            v->milli = full;
        else
            v->milli += elapsed * rate;
    }
    if (v->milli > full)            /* burst lowered by a reload */
        v->milli = full;
}

int
auth_ratelim_take(struct auth_ratelim *r, const struct addr *ip,
    uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    struct bucket_val *v;
    struct addr        k;
    uint64_t           full = (uint64_t)burst * MILLI;
    uint32_t           b, i;

    if (rate == 0)
        return 1;
    ltab_make_key(&r->t, ip, &k);
    b = ltab_bucket(&r->t, &k);
    if ((i = ltab_find(&r->t, &k, b)) != NIL) {
        ltab_touch(&r->t, i);
        v = &r->val[i];
        bucket_refill(v, now_ms, rate, full);
    } else {
        i = ltab_insert(&r->t, &k, b);
        v = &r->val[i];
        v->milli = full;
        v->last_ms = now_ms;
    }
    if (v->milli < MILLI)
        return 0;
    v->milli -= MILLI;
    return 1;
}

size_t
auth_ratelim_count(const struct auth_ratelim *r)
{
    return r->t.n;
}
