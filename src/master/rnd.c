/* rnd.c - OS or seeded randomness; see rnd.h. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "master/rnd.h"
#include "rly_err.h"

void
rnd_init(struct rnd *r, int seeded, uint64_t seed, uint32_t stream)
{
    memset(r, 0, sizeof(*r));
    r->seeded = seeded;
    r->seed = seed;
    r->stream = stream;
    r->pos = sizeof(r->block);
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The next block of the seeded stream. */
static int
next_block(struct rnd *r)
{
    uint8_t      in[20];
    unsigned int mdlen = 0;

    put_be(in, r->seed, 8);
    put_be(in + 8, r->stream, 4);
    put_be(in + 12, r->counter, 8);
    if (!EVP_Digest(in, sizeof(in), r->block, &mdlen, EVP_sha256(), NULL) ||
        mdlen != sizeof(r->block))
        return RLY_ERR_CRYPTO;
    r->counter++;
    r->pos = 0;
    return 0;
}

static int
fill_os(uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return RLY_ERR_CRYPTO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int
rnd_fill(void *ud, uint8_t *buf, size_t len)
{
    struct rnd *r = ud;
    int         rc;

    if (!r->seeded)
        return fill_os(buf, len);
    while (len > 0) {
        size_t n;

        if (r->pos == sizeof(r->block) && (rc = next_block(r)) != 0)
            return rc;
        n = sizeof(r->block) - r->pos;
        if (n > len)
            n = len;
        memcpy(buf, r->block + r->pos, n);
        r->pos += n;
        buf += n;
        len -= n;
    }
    return 0;
}
