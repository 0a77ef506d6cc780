/* fuzz_cfg.c - libFuzzer target for the YAML configuration loader (SPEC
 * §9): cfg_load_yaml() on arbitrary text, then cfg_finish(), the error
 * lines, cfg_dump() to an emitter that only measures, the peer policy,
 * and cfg_free().
 *
 * A configuration without errors must survive its own -T dump: the dump
 * loads back without errors, compares equal (cfg_diff) and dumps to the
 * same text (SPEC §9.4: "the output loads back as a configuration").
 * Redacted keys (portal.token, auth.secret) cannot, so a configuration
 * that sets them skips that round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "fuzz_util.h"
#include "peer_policy.h"
#include "rly_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
measure(void *ud, const char *s, size_t len)
{
    size_t *total = ud;

    /* Touch every byte, so a bad pointer or length shows up. */
    for (size_t i = 0; i < len; i++)
        *total += (unsigned char)s[i] != 0;
}

/* Loads text as a whole configuration (YAML, then the cross-key checks).
 * Never NULL: aborts when out of memory. */
static struct cfg *
load(const char *text, size_t len, int *rc)
{
    struct cfg *c = cfg_new();

    if (c == NULL)
        abort();
    *rc = cfg_load_yaml(c, "fuzz.yaml", text, len);
    if (*rc == RLY_ERR_NOMEM)
        abort();
    FZ_CHECK(*rc == 0 || *rc == RLY_ERR_INVAL);
    if (cfg_finish(c) == RLY_ERR_NOMEM)
        abort();
    return c;
}

static char *
dump(const struct cfg *c, size_t *len)
{
    size_t n = cfg_dump_buf(c, NULL, 0);
    char  *s = malloc(n + 1);

    if (s == NULL)
        abort();
    FZ_CHECK(cfg_dump_buf(c, s, n + 1) == n);
    FZ_CHECK(strlen(s) == n);
    *len = n;
    return s;
}

static void
roundtrip(const struct cfg *c)
{
    enum cfg_key changed[CFG_NKEYS];
    struct cfg  *c2;
    char        *t1, *t2;
    size_t       n1, n2;
    int          rc;

    t1 = dump(c, &n1);
    c2 = load(t1, n1, &rc);
    if (cfg_nerrors(c2) > 0)
        fprintf(stderr, "dump does not load back: %s\n--- dump:\n%s\n",
            cfg_error(c2, 0), t1);
    FZ_CHECK(rc == 0 && cfg_nerrors(c2) == 0);
    FZ_CHECK(cfg_diff(c, c2, changed) == 0);
    t2 = dump(c2, &n2);
    FZ_CHECK(n1 == n2 && memcmp(t1, t2, n1) == 0);
    free(t1);
    free(t2);
    cfg_free(c2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: the loader must not need a terminating NUL. */
    uint8_t           *text = fz_dup(data, size);
    struct cfg        *c;
    struct peer_policy pol;
    size_t             total = 0;
    int                rc;

    c = load((const char *)text, size, &rc);
    for (size_t i = 0; i < cfg_nerrors(c); i++) {
        const char *e = cfg_error(c, i);

        FZ_CHECK(e != NULL && strchr(e, '\n') == NULL);
    }
    cfg_dump(c, measure, &total);
    if (cfg_nerrors(c) == 0) {
        FZ_CHECK(rc == 0);
        FZ_CHECK(cfg_peer_policy(c, &pol) == 0);
        (void)cfg_mode(c);
        if (!cfg_key_is_set(c, CFG_KEY_portal_token) &&
            !cfg_key_is_set(c, CFG_KEY_auth_secret))
            roundtrip(c);
    }
    cfg_free(c);
    free(text);
    return 0;
}
