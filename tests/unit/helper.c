/* helper.c - see helper.h. */
#include <check.h>
#include <ctype.h>
#include <string.h>

#include "helper.h"
#include "rly_err.h"

/* --- fail_calloc() --- */

static int calloc_left = -1;

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

void *
__wrap_calloc(size_t n, size_t size)
{
    if (calloc_left == 0)
        return NULL;
    if (calloc_left > 0)
        calloc_left--;
    return __real_calloc(n, size);
}

void
fail_calloc(int n)
{
    calloc_left = n;
}

int
rand_zero(void *ud, uint8_t *buf, size_t len)
{
    (void)ud;
    memset(buf, 0, len);
    return 0;
}

int
rand_count(void *ud, uint8_t *buf, size_t len)
{
    struct rand_counter *c = ud;

    memset(buf, c->next, len);
    c->next++;
    c->calls++;
    return 0;
}

int
rand_fail(void *ud, uint8_t *buf, size_t len)
{
    (void)ud;
    (void)buf;
    (void)len;
    return RLY_ERR_CRYPTO;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t
hex2bin(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int    hi = -1;

    for (; *hex != '\0'; hex++) {
        int v;

        if (isspace((unsigned char)*hex))
            continue;
        if ((v = hexval((unsigned char)*hex)) < 0)
            return (size_t)-1;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n >= cap)
            return (size_t)-1;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi < 0 ? n : (size_t)-1;
}

struct addr
A(const char *s)
{
    struct addr a;

    ck_assert_msg(addr_parse_ip_port(&a, s) == 0, "bad address %s", s);
    return a;
}
