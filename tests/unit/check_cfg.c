/* check_cfg.c - configuration (SPEC §9): the key table, the YAML loader,
 * environment and flag precedence, checks with their locations, the -T
 * dump, reload classification, the peer policy, and the shipped files.
 * The environment is a fixed array handed through the getter. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "peer_policy.h"
#include "rly_err.h"
#include "suites.h"

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))
#define F           "t.yaml"
#define PUB4        "public_ip4: 192.0.2.1\n"

/* --- helpers --- */

/* env is a NULL-terminated array of "NAME=value". */
static const char *
env_get(void *ud, const char *name)
{
    const char *const *env = ud;
    size_t             n = strlen(name);

    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static struct cfg *
load_full(const char *yaml, const char *const *env,
    const struct cfg_flag *flags, size_t nflags)
{
    struct cfg_input in = {
        .file = yaml != NULL ? F : NULL,
        .text = yaml,
        .len = yaml != NULL ? strlen(yaml) : 0,
        .getenv_fn = env != NULL ? env_get : NULL,
        .getenv_ud = (void *)env,
        .flags = flags,
        .nflags = nflags,
    };
    struct cfg *c = cfg_load(&in);

    ck_assert_ptr_nonnull(c);
    return c;
}

static struct cfg *
load(const char *yaml)
{
    return load_full(yaml, NULL, NULL, 0);
}

/* Fails the test, listing the errors, unless c has none. */
static void
assert_clean(const struct cfg *c)
{
    for (size_t i = 0; i < cfg_nerrors(c); i++)
        fprintf(stderr, "unexpected: %s\n", cfg_error(c, i));
    ck_assert_uint_eq(cfg_nerrors(c), 0);
}

static int
has_error(const struct cfg *c, const char *want)
{
    for (size_t i = 0; i < cfg_nerrors(c); i++)
        if (strcmp(cfg_error(c, i), want) == 0)
            return 1;
    return 0;
}

static int
has_error_part(const struct cfg *c, const char *part)
{
    for (size_t i = 0; i < cfg_nerrors(c); i++)
        if (strstr(cfg_error(c, i), part) != NULL)
            return 1;
    return 0;
}

/* Exactly one error, equal to want. */
static void
assert_one_error(const struct cfg *c, const char *want)
{
    for (size_t i = 0; i < cfg_nerrors(c); i++)
        if (strcmp(cfg_error(c, i), want) != 0)
            fprintf(stderr, "got: %s\nwant: %s\n", cfg_error(c, i), want);
    ck_assert_uint_eq(cfg_nerrors(c), 1);
    ck_assert_str_eq(cfg_error(c, 0), want);
}

static char *
dump(const struct cfg *c)
{
    size_t n = cfg_dump_buf(c, NULL, 0);
    char  *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(cfg_dump_buf(c, s, n + 1), n);
    ck_assert_uint_eq(strlen(s), n);
    return s;
}

/* Reads a shipped file from etc/ under $top_srcdir, ../../etc or ./etc. */
static char *
read_etc(const char *name, char *path, size_t psize, size_t *len)
{
    const char *top = getenv("top_srcdir");
    const char *dirs[] = { top, "../..", "." };
    FILE       *f = NULL;
    char       *buf;
    long        n;

    for (size_t i = 0; i < NELEM(dirs) && f == NULL; i++) {
        if (dirs[i] == NULL)
            continue;
        snprintf(path, psize, "%s/etc/%s", dirs[i], name);
        f = fopen(path, "rb");
    }
    ck_assert_msg(f != NULL, "cannot find etc/%s", name);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* --- SPEC cases --- */

START_TEST(test_c64_unknown_key_location)
{
    const char *yaml =
        "# line 1\n"
        PUB4
        "listen:\n"
        "  port: 3478\n"
        "relay:\n"
        "  port_min: 49152\n"
        "  port_max: 65535\n"
        "\n"
        "workers: 1\n"
        "limits:\n"
        "  error_rate: 100\n"
        "  foo: 1\n"                    /* line 12, column 3 */
        "  error_burst: 200\n";
    struct cfg *c = load(yaml);

    assert_one_error(c, F ":12:3: limits.foo: unknown key");
    cfg_free(c);
}
END_TEST

/* Found by fuzz_cfg: a key holding a newline must not split the error
 * line (a config file could forge log lines). */
START_TEST(test_error_lines_have_no_control_bytes)
{
    struct cfg *c = load(PUB4 "\"a\\nb\\tc\": 1\n");

    assert_one_error(c, F ":2:1: a?b?c: unknown key");
    cfg_free(c);
}
END_TEST

START_TEST(test_c65_no_public_ip_and_bad_env)
{
    const char *env[] = { "LISTEN_PORT=abc", NULL };
    struct cfg *c;

    /* No file read at all. */
    c = load_full(NULL, env, NULL, 0);
    ck_assert_uint_eq(cfg_nerrors(c), 2);
    ck_assert(has_error(c, "environment LISTEN_PORT: listen.port: "
        "must be a decimal integer"));
    ck_assert(has_error(c, "firezone-relay: public_ip4: at least one of "
        "public_ip4 and public_ip6 must be set"));
    cfg_free(c);

    /* With a file: the missing key is reported at the top-level mapping. */
    c = load_full("# nothing\nworkers: 1\n", env, NULL, 0);
    ck_assert_uint_eq(cfg_nerrors(c), 2);
    ck_assert(has_error(c, F ":1:1: public_ip4: at least one of "
        "public_ip4 and public_ip6 must be set"));
    ck_assert(has_error_part(c, "environment LISTEN_PORT: listen.port:"));
    cfg_free(c);
}
END_TEST

START_TEST(test_c66_dump_redacts_token)
{
    const char *env[] = {
        "FIREZONE_TOKEN=tok-SECRET-value",
        "FIREZONE_API_URL=https://portal.test/api/",
        NULL
    };
    const char *yaml = PUB4
        "auth:\n"
        "  secret: 4c98bf59c99b3e467ecd7cf9d6b3e5279645fca59be67bc5\n";
    struct cfg *c = load_full(yaml, env, NULL, 0);
    char       *s;

    assert_clean(c);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_PORTAL);
    ck_assert_str_eq(c->portal_token, "tok-SECRET-value");
    s = dump(c);
    ck_assert_ptr_nonnull(strstr(s, "\n  token: \"<redacted>\"\n"));
    ck_assert_ptr_nonnull(strstr(s, "\n  secret: \"<redacted>\"\n"));
    ck_assert_ptr_nonnull(strstr(s,
        "\n  url: \"https://portal.test/api/\"\n"));
    ck_assert_ptr_null(strstr(s, "SECRET-value"));
    ck_assert_ptr_null(strstr(s, "4c98bf59"));
    free(s);
    cfg_free(c);
}
END_TEST

START_TEST(test_c67_precedence_flag_env_yaml)
{
    const char *env[] = { "LISTEN_PORT=4000", NULL };
    const struct cfg_flag flags[] = { { "listen-port", "6000" } };
    const char *yaml = PUB4 "listen:\n  port: 5000\n";
    struct cfg *c;
    char       *s;

    c = load_full(yaml, env, flags, 1);
    assert_clean(c);
    ck_assert_uint_eq(c->listen_port, 6000);
    ck_assert_int_eq(c->src[CFG_KEY_listen_port].kind, CFG_SRC_FLAG);
    s = dump(c);
    ck_assert_ptr_nonnull(strstr(s, "listen:\n  port: 6000\n"));
    free(s);
    cfg_free(c);

    c = load_full(yaml, env, NULL, 0);
    ck_assert_uint_eq(c->listen_port, 4000);
    ck_assert_int_eq(c->src[CFG_KEY_listen_port].kind, CFG_SRC_ENV);
    cfg_free(c);

    c = load(yaml);
    ck_assert_uint_eq(c->listen_port, 5000);
    ck_assert_int_eq(c->src[CFG_KEY_listen_port].kind, CFG_SRC_FILE);
    ck_assert_uint_eq(c->src[CFG_KEY_listen_port].line, 3);
    ck_assert_uint_eq(c->src[CFG_KEY_listen_port].col, 9);
    cfg_free(c);

    c = load(PUB4);
    ck_assert_uint_eq(c->listen_port, 3478);
    ck_assert_int_eq(c->src[CFG_KEY_listen_port].kind, CFG_SRC_DEFAULT);
    cfg_free(c);
}
END_TEST

/* --- Defaults and the dump --- */

START_TEST(test_defaults_dump_in_spec_order)
{
    struct cfg *c = load(PUB4);
    char        want[4096];
    char       *s;

    assert_clean(c);
    snprintf(want, sizeof(want),
        "listen:\n"
        "  port: 3478\n"
        "  bind_ip4: \"0.0.0.0\"\n"
        "  bind_ip6: \"::\"\n"
        "public_ip4: \"192.0.2.1\"\n"
        "public_ip6: null\n"
        "relay:\n"
        "  port_min: 49152\n"
        "  port_max: 65535\n"
        "workers: 0\n"
        "portal:\n"
        "  url: null\n"
        "  token: null\n"
        "  name: null\n"
        "  ca_file: null\n"
        "auth:\n"
        "  secret: null\n"
        "  secret_file: \"%s\"\n"
        "peers:\n"
        "  allow: []\n"
        "  deny: []\n"
        "limits:\n"
        "  max_allocations: 16384\n"
        "  max_channels: 65536\n"
        "  nonce_table_size: 65536\n"
        "  error_rate: 100\n"
        "  error_burst: 200\n"
        "health:\n"
        "  listen: \"0.0.0.0:8080\"\n"
        "metrics:\n"
        "  enabled: true\n"
        "log:\n"
        "  level: info\n"
        "  format: human\n"
        "user: null\n"
        "group: null\n"
        "rng_seed: null\n"
        "xdp:\n"
        "  interface: null\n"
        "  mode: native\n"
        "  int_ip4: null\n"
        "  int_ip6: null\n",
        cfg_default_secret_file());
    s = dump(c);
    ck_assert_str_eq(s, want);
    free(s);

    /* Typed defaults, as the master reads them. */
    ck_assert_uint_eq(c->port_min, 49152);
    ck_assert_uint_eq(c->max_channels, 65536);
    ck_assert_int_eq(c->log_level, 2);
    ck_assert_int_eq(c->log_format, CFG_LOG_HUMAN);
    ck_assert_int_eq(c->xdp_mode, CFG_XDP_NATIVE);
    ck_assert_int_eq(c->metrics_enabled, 1);
    ck_assert_uint_eq(c->health_listen.port, 8080);
    ck_assert_int_eq(c->bind_ip6.family, ADDR_V6);
    ck_assert_int_eq(c->public_ip6.family, ADDR_NONE);
    ck_assert_ptr_null(c->portal_url);
    ck_assert_int_eq(cfg_key_is_set(c, CFG_KEY_rng_seed), 0);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_STANDALONE);
    cfg_free(c);
}
END_TEST

START_TEST(test_default_paths)
{
    const char *f = cfg_default_file(), *s = cfg_default_secret_file();
    size_t      fl = strlen(f), sl = strlen(s);

    ck_assert_uint_gt(fl, strlen("/firezone-relay.yaml"));
    ck_assert_str_eq(f + fl - strlen("/firezone-relay.yaml"),
        "/firezone-relay.yaml");
    ck_assert_uint_gt(sl, strlen("/lib/firezone-relay/secret"));
    ck_assert_str_eq(s + sl - strlen("/lib/firezone-relay/secret"),
        "/lib/firezone-relay/secret");
}
END_TEST

/* A full configuration dumps, loads back (token and secret aside) and
 * compares equal. */
START_TEST(test_dump_loads_back)
{
    const char *yaml =
        "listen: {port: 3479, bind_ip4: 10.0.0.1, bind_ip6: \"fd00::1\"}\n"
        "public_ip4: 192.0.2.1\n"
        "public_ip6: 2001:db8::1\n"
        "relay: {port_min: 40000, port_max: 40100}\n"
        "workers: 3\n"
        "portal:\n"
        "  url: ws://portal.test:8080/x\n"
        "  token: abc\n"
        "  name: \"edge \\\"1\\\"\\t\\\\\"\n"
        "  ca_file: /etc/ca.pem\n"
        "auth: {secret_file: /tmp/s}\n"
        "peers: {allow: [127.0.0.0/8, \"::1\"], deny: [203.0.113.0/24]}\n"
        "limits: {max_allocations: 1, max_channels: 2, nonce_table_size: 3,"
        " error_rate: 0, error_burst: 5}\n"
        "health: {listen: \"[::1]:9000\"}\n"
        "metrics: {enabled: false}\n"
        "log: {level: debug, format: json}\n"
        "user: nobody\n"
        "group: nogroup\n"
        "rng_seed: 18446744073709551615\n"
        "xdp: {interface: eth0, mode: generic, int_ip4: 10.0.0.2,"
        " int_ip6: \"fd00::2\"}\n";
    struct cfg  *a = load(yaml), *b;
    enum cfg_key ch[CFG_NKEYS];
    char        *s;

    assert_clean(a);
    ck_assert_str_eq(a->portal_name, "edge \"1\"\t\\");
    ck_assert_uint_eq(a->rng_seed, UINT64_MAX);
    s = dump(a);
    ck_assert_ptr_nonnull(strstr(s, "  name: \"edge \\\"1\\\"\\x09\\\\\"\n"));
    ck_assert_ptr_nonnull(strstr(s,
        "  allow: [\"127.0.0.0/8\", \"::1/128\"]\n"));
    b = load(s);
    assert_clean(b);
    ck_assert_uint_eq(cfg_diff(a, b, ch), 1);
    ck_assert_int_eq(ch[0], CFG_KEY_portal_token);
    ck_assert_str_eq(b->portal_token, "<redacted>");
    free(s);
    cfg_free(a);
    cfg_free(b);
}
END_TEST

START_TEST(test_dump_buf_truncates)
{
    struct cfg *c = load(PUB4);
    char        small[10];
    size_t      n;

    n = cfg_dump_buf(c, small, sizeof(small));
    ck_assert_uint_gt(n, sizeof(small));
    ck_assert_str_eq(small, "listen:\n ");
    cfg_free(c);
}
END_TEST

/* --- Type and range errors, one per key kind --- */

static const struct {
    const char *yaml;       /* PUB4 is appended */
    const char *error;
} kind_errors[] = {
    { "listen:\n  port: 0\n", F ":2:9: listen.port: must be 1-65535" },
    { "listen:\n  port: 65536\n", F ":2:9: listen.port: must be 1-65535" },
    { "listen:\n  port: -1\n", F ":2:9: listen.port: must be 1-65535" },
    { "listen:\n  port: 99999999999999999999999\n",
        F ":2:9: listen.port: must be 1-65535" },
    { "listen:\n  port: abc\n",
        F ":2:9: listen.port: must be a decimal integer" },
    { "listen:\n  port: \"3478\"\n",
        F ":2:9: listen.port: must be a decimal integer" },
    { "listen:\n  port: [3478]\n",
        F ":2:9: listen.port: must be a decimal integer" },
    { "listen:\n  port: {a: 1}\n",
        F ":2:9: listen.port: must be a decimal integer" },
    { "listen:\n  bind_ip4: \"::1\"\n",
        F ":2:13: listen.bind_ip4: must be an IPv4 address" },
    { "listen:\n  bind_ip4: 1.2.3\n",
        F ":2:13: listen.bind_ip4: must be an IPv4 address" },
    { "listen:\n  bind_ip6: 1.2.3.4\n",
        F ":2:13: listen.bind_ip6: must be an IPv6 address" },
    { "public_ip6: \"::\"\n",
        F ":1:13: public_ip6: must not be the unspecified address" },
    { "public_ip6: 192.0.2.9\n",
        F ":1:13: public_ip6: must be an IPv6 address" },
    { "relay:\n  port_min: 65536\n",
        F ":2:13: relay.port_min: must be 1-65535" },
    { "workers: 1025\n", F ":1:10: workers: must be 0-1024" },
    { "limits:\n  max_allocations: 1048577\n",
        F ":2:20: limits.max_allocations: must be 1-1048576" },
    { "limits:\n  max_channels: 0\n",
        F ":2:17: limits.max_channels: must be 1-4194304" },
    { "limits:\n  nonce_table_size: 16777217\n",
        F ":2:21: limits.nonce_table_size: must be 1-16777216" },
    { "limits:\n  error_rate: 1000001\n",
        F ":2:15: limits.error_rate: must be 0-1000000" },
    { "limits:\n  error_burst: 0\n",
        F ":2:16: limits.error_burst: must be 1-1000000" },
    { "health:\n  listen: 1.2.3.4\n",
        F ":2:11: health.listen: must be IP:port (IPv6 in brackets, "
        "port 1-65535)" },
    { "health:\n  listen: \"1.2.3.4:0\"\n",
        F ":2:11: health.listen: must be IP:port (IPv6 in brackets, "
        "port 1-65535)" },
    { "health:\n  listen: \"::1:80\"\n",
        F ":2:11: health.listen: must be IP:port (IPv6 in brackets, "
        "port 1-65535)" },
    { "metrics:\n  enabled: yes\n",
        F ":2:12: metrics.enabled: must be true or false" },
    { "metrics:\n  enabled: \"true\"\n",
        F ":2:12: metrics.enabled: must be true or false" },
    { "log:\n  level: verbose\n",
        F ":2:10: log.level: must be one of error, warn, info, debug" },
    { "log:\n  format: xml\n",
        F ":2:11: log.format: must be one of human, json" },
    { "xdp:\n  mode: offload\n",
        F ":2:9: xdp.mode: must be one of native, generic" },
    { "xdp:\n  interface: abcdefghijklmnop\n",
        F ":2:14: xdp.interface: must be at most 15 bytes" },
    { "xdp:\n  interface: \"a b\"\n",
        F ":2:14: xdp.interface: must be an interface name" },
    { "xdp:\n  int_ip4: \"::1\"\n",
        F ":2:12: xdp.int_ip4: must be an IPv4 address" },
    { "xdp:\n  int_ip6: 10.0.0.1\n",
        F ":2:12: xdp.int_ip6: must be an IPv6 address" },
    { "portal:\n  name: \"\"\n", F ":2:9: portal.name: must not be empty" },
    { "portal:\n  ca_file: [a]\n",
        F ":2:12: portal.ca_file: must be a string" },
    { "user: {a: b}\n", F ":1:7: user: must be a string" },
    { "rng_seed: 18446744073709551616\n",
        F ":1:11: rng_seed: must be 0-18446744073709551615" },
    { "rng_seed: 0x10\n", F ":1:11: rng_seed: must be a decimal integer" },
    { "peers:\n  allow: 10.0.0.0/8\n",
        F ":2:10: peers.allow: must be a list of CIDRs" },
    { "peers:\n  deny: [[10.0.0.0/8]]\n",
        F ":2:10: peers.deny: must be a list of CIDRs" },
    { "peers:\n  deny: [~]\n",
        F ":2:10: peers.deny: must be a list of CIDRs" },
    { "listen: 5\n", F ":1:9: listen: must be a mapping" },
    { "limits: [1]\n", F ":1:9: limits: must be a mapping" },
    { "auth:\n  secret: \"short\"\n",
        F ":2:11: auth.secret: must be 32-255 characters from "
        "A-Z a-z 0-9 - . _ ~ + / =" },
    { "portal:\n  url: \"with space://x\"\n",
        F ":2:8: portal.url: must not contain spaces or control characters" },
    { "portal:\n  name: \"a\\0b\"\n",
        F ":2:9: portal.name: must not contain NUL characters" },
};

START_TEST(test_key_kind_errors)
{
    char        yaml[256];
    struct cfg *c;

    snprintf(yaml, sizeof(yaml), "%s" PUB4, kind_errors[_i].yaml);
    c = load(yaml);
    assert_one_error(c, kind_errors[_i].error);
    cfg_free(c);
}
END_TEST

START_TEST(test_name_length)
{
    char        yaml[600];
    char        name[300];
    struct cfg *c;

    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(yaml, sizeof(yaml), PUB4 "portal:\n  name: %s\n", name);
    c = load(yaml);
    assert_one_error(c, F ":3:9: portal.name: must be at most 255 bytes");
    cfg_free(c);
    name[255] = '\0';
    snprintf(yaml, sizeof(yaml), PUB4 "portal:\n  name: %s\n", name);
    c = load(yaml);
    assert_clean(c);
    ck_assert_uint_eq(strlen(c->portal_name), 255);
    cfg_free(c);
}
END_TEST

/* --- Scalars: integers and booleans (SPEC §9.1) --- */

static const char *const bad_ints[] = {
    "0x10", "010", "00", "1_000", "1:30", "+5", "1e3", "3478.0", "0o17",
    "-0", "0b1", " 5", "5 ", "", "٣",
};

START_TEST(test_int_forms_rejected)
{
    const char *v = bad_ints[_i];
    char        yaml[128];
    const char *env[] = { NULL, NULL };
    char        envs[64];
    struct cfg *c;

    /* In the file (YAML strips the spaces around a plain scalar). */
    if (*v != '\0' && strchr(v, ' ') == NULL) {
        snprintf(yaml, sizeof(yaml), PUB4 "workers: %s\n", v);
        c = load(yaml);
        ck_assert_msg(has_error(c, F ":2:10: workers: must be a decimal "
            "integer"), "file value '%s' accepted", v);
        ck_assert_uint_eq(c->workers, 0);
        cfg_free(c);
    }
    /* In the environment: empty counts as unset. */
    snprintf(envs, sizeof(envs), "LISTEN_PORT=%s", v);
    env[0] = envs;
    c = load_full(PUB4, env, NULL, 0);
    if (*v == '\0') {
        assert_clean(c);
    } else {
        assert_one_error(c, "environment LISTEN_PORT: listen.port: "
            "must be a decimal integer");
    }
    ck_assert_uint_eq(c->listen_port, 3478);
    cfg_free(c);
}
END_TEST

START_TEST(test_int_forms_accepted)
{
    struct cfg *c = load(PUB4 "workers: 0\nlimits:\n  error_rate: 1000000\n"
        "rng_seed: 0\n");

    assert_clean(c);
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_uint_eq(c->error_rate, 1000000);
    ck_assert_uint_eq(c->rng_seed, 0);
    ck_assert_int_eq(cfg_key_is_set(c, CFG_KEY_rng_seed), 1);
    cfg_free(c);
}
END_TEST

static const char *const bad_bools[] = {
    "yes", "no", "on", "off", "y", "n", "True", "FALSE", "1", "0",
};

START_TEST(test_bool_forms)
{
    char        yaml[128];
    struct cfg *c;

    snprintf(yaml, sizeof(yaml), PUB4 "metrics:\n  enabled: %s\n",
        bad_bools[_i]);
    c = load(yaml);
    assert_one_error(c, F ":3:12: metrics.enabled: must be true or false");
    ck_assert_int_eq(c->metrics_enabled, 1);
    cfg_free(c);

    c = load(PUB4 "metrics:\n  enabled: false\n");
    assert_clean(c);
    ck_assert_int_eq(c->metrics_enabled, 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_null_values_keep_defaults)
{
    struct cfg *c = load(PUB4 "public_ip6: ~\nlisten:\n  port: null\n"
        "portal:\n  name:\nlimits:\npeers:\n  allow: ~\n");

    assert_clean(c);
    ck_assert_uint_eq(c->listen_port, 3478);
    ck_assert_int_eq(c->public_ip6.family, ADDR_NONE);
    ck_assert_ptr_null(c->portal_name);
    ck_assert_uint_eq(c->peers_allow.n, 0);
    ck_assert_int_eq(cfg_key_is_set(c, CFG_KEY_listen_port), 0);
    cfg_free(c);

    /* An empty file, and a file of comments only, are empty configs. */
    c = load("");
    assert_one_error(c, F ":1:1: public_ip4: at least one of public_ip4 "
        "and public_ip6 must be set");
    cfg_free(c);
    c = load("# nothing\n---\n");
    ck_assert_uint_eq(cfg_nerrors(c), 1);
    cfg_free(c);
}
END_TEST

/* --- YAML structure --- */

START_TEST(test_duplicate_key)
{
    struct cfg *c;

    c = load(PUB4 "listen:\n  port: 1000\n  port: 2000\n");
    assert_one_error(c, F ":4:3: listen.port: duplicate key");
    ck_assert_uint_eq(c->listen_port, 1000);
    cfg_free(c);

    c = load(PUB4 "listen:\n  port: 1000\nlisten:\n  bind_ip4: 10.0.0.1\n");
    assert_one_error(c, F ":4:1: listen: duplicate key");
    cfg_free(c);

    c = load(PUB4 "public_ip4: 192.0.2.2\n");
    assert_one_error(c, F ":2:1: public_ip4: duplicate key");
    cfg_free(c);
}
END_TEST

START_TEST(test_anchor_alias_tag)
{
    struct cfg *c;

    c = load(PUB4 "listen:\n  port: &p 5000\nrelay:\n  port_min: *p\n");
    ck_assert_uint_eq(cfg_nerrors(c), 2);
    ck_assert(has_error(c, F ":3:9: listen.port: anchors are not allowed"));
    ck_assert(has_error(c, F ":5:13: relay.port_min: aliases are not "
        "allowed"));
    cfg_free(c);

    c = load(PUB4 "base: &b {port: 1}\nlisten: *b\n");
    ck_assert(has_error(c, F ":2:1: base: unknown key"));
    ck_assert(has_error(c, F ":3:9: listen: aliases are not allowed"));
    cfg_free(c);

    c = load(PUB4 "workers: !!int 5\n");
    assert_one_error(c, F ":2:10: workers: tags are not allowed");
    cfg_free(c);

    c = load(PUB4 "peers:\n  allow: [&a 10.0.0.0/8]\n");
    assert_one_error(c, F ":3:11: peers.allow: anchors are not allowed");
    ck_assert_uint_eq(c->peers_allow.n, 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_wrong_top_level)
{
    struct cfg *c;

    c = load("- a\n- b\n");
    ck_assert(has_error(c, F ":1:1: the top level must be a mapping"));
    cfg_free(c);

    c = load("just a string\n");
    ck_assert(has_error(c, F ":1:1: the top level must be a mapping"));
    cfg_free(c);

    c = load(PUB4 "? [a, b]\n: 1\n");
    assert_one_error(c, F ":2:3: mapping keys must be names");
    cfg_free(c);
}
END_TEST

START_TEST(test_multiple_documents)
{
    struct cfg *c = load(PUB4 "---\nworkers: 2\n");

    assert_one_error(c, F ":2:1: only one YAML document is allowed");
    ck_assert_uint_eq(c->workers, 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_dotted_key_is_unknown)
{
    struct cfg *c;

    c = load(PUB4 "listen.port: 3000\n");
    assert_one_error(c, F ":2:1: listen.port: unknown key");
    ck_assert_uint_eq(c->listen_port, 3478);
    cfg_free(c);

    c = load(PUB4 "listen:\n  port.x: 1\n  public_ip4: 192.0.2.1\n"
        "foo:\n  bar: 1\nport: 1\n");
    ck_assert_uint_eq(cfg_nerrors(c), 4);
    ck_assert(has_error(c, F ":3:3: listen.port.x: unknown key"));
    ck_assert(has_error(c, F ":4:3: listen.public_ip4: unknown key"));
    ck_assert(has_error(c, F ":5:1: foo: unknown key"));
    ck_assert(has_error(c, F ":7:1: port: unknown key"));
    cfg_free(c);
}
END_TEST

START_TEST(test_parser_error_located)
{
    struct cfg *c = load(PUB4 "workers: 1\nlisten:\n  port: [1, 2\n");

    /* The syntax error stops the parse; the wrongly typed value before it
     * is still reported. */
    ck_assert_uint_eq(cfg_nerrors(c), 2);
    ck_assert_str_eq(cfg_error(c, 0),
        F ":4:9: listen.port: must be a decimal integer");
    ck_assert_str_eq(cfg_error(c, 1), F ":5:1: did not find expected ',' "
        "or ']' while parsing a flow sequence");
    ck_assert_uint_eq(c->workers, 1);
    cfg_free(c);

    c = load(PUB4 "a: b: c\n");
    ck_assert(has_error(c, F ":2:5: mapping values are not allowed in this "
        "context"));
    cfg_free(c);
}
END_TEST

/* --- Lists and CIDRs --- */

START_TEST(test_flow_and_block_lists)
{
    const char *yaml = PUB4
        "peers:\n"
        "  allow: [127.0.0.0/8, \"::1/128\", 10.1.2.3]\n"
        "  deny:\n"
        "    - 203.0.113.0/24\n"
        "    - \"2001:db8::/32\"\n";
    struct cfg *c = load(yaml);
    char        buf[64];

    assert_clean(c);
    ck_assert_uint_eq(c->peers_allow.n, 3);
    ck_assert_str_eq(cidr_format(&c->peers_allow.v[0], buf, sizeof(buf)),
        "127.0.0.0/8");
    ck_assert_str_eq(cidr_format(&c->peers_allow.v[1], buf, sizeof(buf)),
        "::1/128");
    ck_assert_str_eq(cidr_format(&c->peers_allow.v[2], buf, sizeof(buf)),
        "10.1.2.3/32");
    ck_assert_uint_eq(c->peers_deny.n, 2);
    ck_assert_str_eq(cidr_format(&c->peers_deny.v[1], buf, sizeof(buf)),
        "2001:db8::/32");
    ck_assert_uint_eq(c->src[CFG_KEY_peers_deny].line, 5);
    cfg_free(c);

    c = load(PUB4 "peers:\n  allow: []\n");
    assert_clean(c);
    ck_assert_uint_eq(c->peers_allow.n, 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_bad_cidr_host_bits)
{
    struct cfg *c = load(PUB4 "peers:\n  allow:\n    - 10.0.0.0/8\n"
        "    - 10.0.0.1/8\n    - 10.0.0.0/33\n    - nonsense\n");

    ck_assert_uint_eq(cfg_nerrors(c), 3);
    ck_assert(has_error(c, F ":5:7: peers.allow: entry must be address/len "
        "with host bits zero"));
    ck_assert(has_error_part(c, F ":6:7: peers.allow:"));
    ck_assert(has_error_part(c, F ":7:7: peers.allow:"));
    /* A list with a bad entry is not half applied. */
    ck_assert_uint_eq(c->peers_allow.n, 0);
    cfg_free(c);
}
END_TEST

START_TEST(test_cidr_list_too_long)
{
    size_t      cap = 64 + 20 * (PEER_POLICY_MAX_CIDRS + 1);
    char       *yaml = malloc(cap);
    size_t      n;
    struct cfg *c;

    ck_assert_ptr_nonnull(yaml);
    n = (size_t)snprintf(yaml, cap, PUB4 "peers:\n  deny:\n");
    for (int i = 0; i <= PEER_POLICY_MAX_CIDRS; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  - 10.%d.%d.0/24\n",
            i / 256, i % 256);
    c = load(yaml);
    ck_assert_uint_eq(cfg_nerrors(c), 1);
    ck_assert_ptr_nonnull(strstr(cfg_error(c, 0),
        "peers.deny: must have at most 256 entries"));
    cfg_free(c);
    free(yaml);
}
END_TEST

/* --- Cross-key checks (SPEC §9.3) --- */

START_TEST(test_port_min_gt_max)
{
    struct cfg *c;

    c = load(PUB4 "relay:\n  port_min: 50000\n  port_max: 40000\n");
    assert_one_error(c, F ":3:13: relay.port_min: must be at most "
        "relay.port_max (40000)");
    cfg_free(c);

    c = load(PUB4 "relay:\n  port_max: 40000\n");
    assert_one_error(c, F ":3:13: relay.port_max: must be at least "
        "relay.port_min (49152)");
    cfg_free(c);

    /* C31: a one-port range is fine. */
    c = load(PUB4 "relay:\n  port_min: 50000\n  port_max: 50000\n");
    assert_clean(c);
    cfg_free(c);
}
END_TEST

START_TEST(test_listen_port_in_range)
{
    const char *env[] = { "LOWEST_PORT=3000", "HIGHEST_PORT=4000", NULL };
    struct cfg *c;

    c = load(PUB4 "listen:\n  port: 50000\n");
    assert_one_error(c, F ":3:9: listen.port: must be outside "
        "relay.port_min-relay.port_max (49152-65535)");
    cfg_free(c);

    /* Only the range was set: name the range, where it was set. */
    c = load_full(PUB4, env, NULL, 0);
    assert_one_error(c, "environment LOWEST_PORT: relay.port_min: range "
        "3000-4000 must not include listen.port (3478)");
    cfg_free(c);

    c = load(PUB4 "listen:\n  port: 49151\n");
    assert_clean(c);
    cfg_free(c);
}
END_TEST

START_TEST(test_url_without_token)
{
    const char *env[] = { "FIREZONE_TOKEN=t", NULL };
    struct cfg *c;

    c = load(PUB4 "portal:\n  url: https://portal.test\n");
    assert_one_error(c, F ":3:8: portal.url: portal.token must be set too");
    cfg_free(c);

    c = load_full(PUB4, env, NULL, 0);
    assert_one_error(c, "environment FIREZONE_TOKEN: portal.token: "
        "portal.url must be set too");
    cfg_free(c);
}
END_TEST

static const struct {
    const char *url;
    const char *error;      /* NULL: accepted */
} urls[] = {
    { "https://api.firezone.dev", NULL },
    { "http://127.0.0.1:8080/", NULL },
    { "ws://portal.test/api", NULL },
    { "WSS://portal.test", NULL },
    { "ftp://portal.test", "scheme must be http, https, ws or wss" },
    { "wsss://portal.test", "scheme must be http, https, ws or wss" },
    { "portal.test", "must be a URL (scheme://host/path)" },
    { "https:///path", "must name a host (scheme://host/path)" },
    { "https://", "must name a host (scheme://host/path)" },
};

START_TEST(test_url_scheme)
{
    const char *env[] = { "FIREZONE_TOKEN=t", NULL };
    const struct cfg_flag flag = { "--api-url", urls[_i].url };
    char        want[128];
    struct cfg *c = load_full(PUB4, env, &flag, 1);

    if (urls[_i].error == NULL) {
        assert_clean(c);
        ck_assert_str_eq(c->portal_url, urls[_i].url);
        ck_assert_int_eq(cfg_mode(c), CFG_MODE_PORTAL);
    } else {
        snprintf(want, sizeof(want), "command line --api-url: portal.url: "
            "%s", urls[_i].error);
        ck_assert(has_error(c, want));
        ck_assert_ptr_null(c->portal_url);
    }
    cfg_free(c);
}
END_TEST

START_TEST(test_bad_secret_chars)
{
    struct cfg *c;

    c = load(PUB4 "auth:\n  secret: \"0123456789abcdef0123456789abcdef!\"\n");
    assert_one_error(c, F ":3:11: auth.secret: must be 32-255 characters "
        "from A-Z a-z 0-9 - . _ ~ + / =");
    ck_assert_ptr_null(c->auth_secret);
    cfg_free(c);

    c = load(PUB4 "auth:\n  secret: 1cab293a-4032-46f4-862a-40e5d174b0d2\n");
    assert_clean(c);
    ck_assert_str_eq(c->auth_secret, "1cab293a-4032-46f4-862a-40e5d174b0d2");
    cfg_free(c);
}
END_TEST

START_TEST(test_group_needs_user)
{
    struct cfg *c = load(PUB4 "group: relay\n");

    assert_one_error(c, F ":2:8: group: requires user");
    cfg_free(c);
    c = load(PUB4 "user: relay\ngroup: relay\n");
    assert_clean(c);
    cfg_free(c);
}
END_TEST

START_TEST(test_public_ip6_alone_is_enough)
{
    const char *env[] = { "PUBLIC_IP6_ADDR=2001:db8::1", NULL };
    struct cfg *c = load_full(NULL, env, NULL, 0);

    assert_clean(c);
    ck_assert_int_eq(c->public_ip6.family, ADDR_V6);
    cfg_free(c);
}
END_TEST

START_TEST(test_errors_all_reported)
{
    const char *env[] = { "LISTEN_PORT=0", "LOG_FORMAT=xml", NULL };
    const struct cfg_flag flags[] = {
        { "workers", "2000" }, { "nope", "1" }, { "log-level", NULL },
    };
    const char *yaml =
        "workers: x\n"
        "limits:\n"
        "  error_rate: -3\n"
        "  bogus: 1\n"
        "relay:\n"
        "  port_min: 60000\n"
        "  port_max: 50000\n";
    struct cfg *c = load_full(yaml, env, flags, NELEM(flags));

    ck_assert(has_error(c, F ":1:10: workers: must be a decimal integer"));
    ck_assert(has_error(c, F ":3:15: limits.error_rate: must be 0-1000000"));
    ck_assert(has_error(c, F ":4:3: limits.bogus: unknown key"));
    ck_assert(has_error(c, "environment LISTEN_PORT: listen.port: "
        "must be 1-65535"));
    ck_assert(has_error(c, "environment LOG_FORMAT: log.format: "
        "must be one of human, json"));
    ck_assert(has_error(c, "command line --workers: workers: must be 0-1024"));
    ck_assert(has_error(c, "command line --nope: unknown option"));
    ck_assert(has_error(c, "command line --log-level: log.level: "
        "missing value"));
    ck_assert(has_error(c, F ":6:13: relay.port_min: must be at most "
        "relay.port_max (50000)"));
    ck_assert(has_error(c, F ":1:1: public_ip4: at least one of public_ip4 "
        "and public_ip6 must be set"));
    ck_assert_uint_eq(cfg_nerrors(c), 10);
    cfg_free(c);
}
END_TEST

/* --- Environment, flags and the table --- */

START_TEST(test_env_every_key)
{
    const char *env[] = {
        "LISTEN_PORT=3479", "BIND_IP4_ADDR=10.0.0.1",
        "BIND_IP6_ADDR=fd00::1", "PUBLIC_IP4_ADDR=192.0.2.1",
        "PUBLIC_IP6_ADDR=2001:db8::1", "LOWEST_PORT=40000",
        "HIGHEST_PORT=40010", "FIREZONE_API_URL=wss://p.test",
        "FIREZONE_TOKEN=tok", "FIREZONE_NAME=edge 1",
        "HEALTH_CHECK_ADDR=[::1]:9000", "LOG_FORMAT=json", "RNG_SEED=42",
        NULL
    };
    struct cfg *c = load_full(PUB4 "listen:\n  port: 1\n", env, NULL, 0);
    char        where[128];

    assert_clean(c);
    ck_assert_uint_eq(c->listen_port, 3479);
    ck_assert_uint_eq(c->port_min, 40000);
    ck_assert_uint_eq(c->port_max, 40010);
    ck_assert_str_eq(c->portal_name, "edge 1");
    ck_assert_uint_eq(c->health_listen.port, 9000);
    ck_assert_int_eq(c->log_format, CFG_LOG_JSON);
    ck_assert_uint_eq(c->rng_seed, 42);
    ck_assert_int_eq(cfg_key_is_set(c, CFG_KEY_rng_seed), 1);
    for (int k = 0; k < CFG_NKEYS; k++) {
        if (cfg_key_env((enum cfg_key)k) == NULL)
            continue;
        ck_assert_int_eq(c->src[k].kind, CFG_SRC_ENV);
        cfg_key_where(c, (enum cfg_key)k, where, sizeof(where));
        ck_assert_int_eq(strncmp(where, "environment ", 12), 0);
    }
    cfg_free(c);
}
END_TEST

START_TEST(test_flag_lookup)
{
    const char *v;

    ck_assert_int_eq(cfg_flag_lookup("--listen-port", &v),
        CFG_KEY_listen_port);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(cfg_flag_lookup("--listen-port=6000", &v),
        CFG_KEY_listen_port);
    ck_assert_str_eq(v, "6000");
    ck_assert_int_eq(cfg_flag_lookup("--name=", &v), CFG_KEY_portal_name);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(cfg_flag_lookup("--listen-portx", &v), CFG_KEY_NONE);
    ck_assert_int_eq(cfg_flag_lookup("--listen", &v), CFG_KEY_NONE);
    ck_assert_int_eq(cfg_flag_lookup("-t", &v), CFG_KEY_NONE);
    ck_assert_int_eq(cfg_flag_lookup("listen-port", &v), CFG_KEY_NONE);
    ck_assert_int_eq(cfg_flag_lookup("--token", &v), CFG_KEY_NONE);

    /* Every flag of the table is found, and leads back to its key. */
    for (int k = 0; k < CFG_NKEYS; k++) {
        char        arg[64];
        const char *fl = cfg_key_flag((enum cfg_key)k);

        ck_assert_int_eq(cfg_key_lookup(cfg_key_name((enum cfg_key)k)), k);
        if (fl == NULL)
            continue;
        snprintf(arg, sizeof(arg), "--%s=1", fl);
        ck_assert_int_eq(cfg_flag_lookup(arg, &v), k);
    }
    ck_assert_ptr_null(cfg_key_flag(CFG_KEY_portal_token));
    ck_assert_str_eq(cfg_key_flag(CFG_KEY_health_listen),
        "health-check-addr");
    ck_assert_str_eq(cfg_key_env(CFG_KEY_portal_url), "FIREZONE_API_URL");
    ck_assert_ptr_null(cfg_key_name(CFG_KEY_NONE));
    ck_assert_ptr_null(cfg_key_name(CFG_NKEYS));
    ck_assert_int_eq(cfg_key_lookup("limits.foo"), CFG_KEY_NONE);
}
END_TEST

START_TEST(test_apply_flag_values)
{
    struct cfg *c = cfg_new();
    char        where[128];

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cfg_apply_flag(c, "public-ip4-addr", "192.0.2.1"), 0);
    ck_assert_int_eq(cfg_apply_flag(c, "--workers", "8"), 0);
    ck_assert_int_eq(cfg_apply_flag(c, "log-level", "debug"), 0);
    ck_assert_int_eq(cfg_apply_flag(c, "rng-seed", "7"), 0);
    ck_assert_int_eq(cfg_apply_flag(c, "name", ""), RLY_ERR_INVAL);
    ck_assert_int_eq(cfg_apply_flag(c, "lowest-port", NULL), RLY_ERR_INVAL);
    ck_assert_int_eq(cfg_apply_flag(c, "token", "x"), RLY_ERR_NOTFOUND);
    ck_assert_int_eq(cfg_finish(c), RLY_ERR_INVAL);
    ck_assert_uint_eq(cfg_nerrors(c), 2);
    ck_assert_str_eq(cfg_error(c, 0),
        "command line --name: portal.name: must not be empty");
    ck_assert_str_eq(cfg_error(c, 1),
        "command line --lowest-port: relay.port_min: missing value");
    ck_assert_uint_eq(c->workers, 8);
    ck_assert_int_eq(c->log_level, 3);
    ck_assert_uint_eq(c->rng_seed, 7);
    cfg_key_where(c, CFG_KEY_workers, where, sizeof(where));
    ck_assert_str_eq(where, "command line --workers: workers: ");
    cfg_key_where(c, CFG_KEY_user, where, sizeof(where));
    ck_assert_str_eq(where, "firezone-relay: user: ");
    cfg_free(c);
}
END_TEST

START_TEST(test_key_where_and_error)
{
    const char *yaml = PUB4 "user: relay\nportal:\n  ca_file: /x.pem\n"
        "xdp:\n  mode: native\n";
    struct cfg *c = load(yaml);
    char        where[128];
    int         n;

    assert_clean(c);
    n = cfg_key_where(c, CFG_KEY_user, where, sizeof(where));
    ck_assert_str_eq(where, F ":2:7: user: ");
    ck_assert_int_eq(n, (int)strlen(where));
    cfg_key_where(c, CFG_KEY_portal_ca_file, where, sizeof(where));
    ck_assert_str_eq(where, F ":4:12: portal.ca_file: ");
    /* Unset keys: at the mapping that should hold them. */
    cfg_key_where(c, CFG_KEY_xdp_interface, where, sizeof(where));
    ck_assert_str_eq(where, F ":6:3: xdp.interface: ");
    cfg_key_where(c, CFG_KEY_group, where, sizeof(where));
    ck_assert_str_eq(where, F ":1:1: group: ");
    cfg_key_where(c, CFG_KEY_max_channels, where, sizeof(where));
    ck_assert_str_eq(where, F ":1:1: limits.max_channels: ");
    /* Truncation reports the full length. */
    ck_assert_int_eq(cfg_key_where(c, CFG_KEY_user, where, 4), n);
    ck_assert_str_eq(where, "t.y");

    ck_assert_int_eq(cfg_key_error(c, CFG_KEY_user, "no such user '%s'",
        c->user), 0);
    ck_assert_int_eq(cfg_key_error(c, CFG_KEY_xdp_interface,
        "built without XDP support"), 0);
    ck_assert_int_eq(cfg_key_error(c, CFG_KEY_NONE, "%s: %s", "/x.yaml",
        "Permission denied"), 0);
    ck_assert_uint_eq(cfg_nerrors(c), 3);
    ck_assert_str_eq(cfg_error(c, 0), F ":2:7: user: no such user 'relay'");
    ck_assert_str_eq(cfg_error(c, 1),
        F ":6:3: xdp.interface: built without XDP support");
    ck_assert_str_eq(cfg_error(c, 2),
        "firezone-relay: /x.yaml: Permission denied");
    ck_assert_ptr_null(cfg_error(c, 3));
    cfg_free(c);
}
END_TEST

START_TEST(test_env_empty_is_unset)
{
    const char *env[] = { "LISTEN_PORT=", "FIREZONE_TOKEN=", NULL };
    struct cfg *c = load_full(PUB4 "listen:\n  port: 5000\n", env, NULL, 0);

    assert_clean(c);
    ck_assert_uint_eq(c->listen_port, 5000);
    ck_assert_ptr_null(c->portal_token);
    cfg_free(c);
}
END_TEST

/* --- Mode, peer policy, reload --- */

START_TEST(test_mode)
{
    const char *env[] = { "FIREZONE_TOKEN=t", NULL };
    const struct cfg_flag flag = { "api-url", "https://p.test" };
    struct cfg *c;

    c = load(PUB4);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_STANDALONE);
    cfg_free(c);
    c = load_full(PUB4, env, &flag, 1);
    assert_clean(c);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_PORTAL);
    cfg_free(c);
}
END_TEST

START_TEST(test_peer_policy_from_cfg)
{
    const char *yaml =
        "public_ip4: 192.0.2.1\n"
        "public_ip6: 2001:db8::1\n"
        "listen: {port: 3479, bind_ip4: 10.0.0.1}\n"
        "peers: {allow: [127.0.0.0/8],"
        " deny: [203.0.113.0/24, \"fd00::/8\"]}\n";
    struct cfg        *c = load(yaml);
    struct peer_policy *p = malloc(sizeof(*p));
    char               buf[ADDR_STRLEN];

    assert_clean(c);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(cfg_peer_policy(c, p), 0);
    ck_assert_uint_eq(p->nallow, 1);
    ck_assert_uint_eq(p->ndeny, 2);
    ck_assert_uint_eq(p->nlisten, 4);
    ck_assert_str_eq(addr_format(&p->listen[0], buf, sizeof(buf)),
        "192.0.2.1:3479");
    ck_assert_str_eq(addr_format(&p->listen[1], buf, sizeof(buf)),
        "10.0.0.1:3479");
    ck_assert_str_eq(addr_format(&p->listen[2], buf, sizeof(buf)),
        "[2001:db8::1]:3479");
    ck_assert_str_eq(addr_format(&p->listen[3], buf, sizeof(buf)),
        "[::]:3479");
    /* The policy works as SPEC §5.4 says with these lists. */
    {
        struct addr a;

        ck_assert_int_eq(addr_parse_ip_port(&a, "127.0.0.1:5000"), 0);
        ck_assert_int_eq(peer_policy_allowed(p, &a), 1);
        ck_assert_int_eq(addr_parse_ip_port(&a, "203.0.113.9:5000"), 0);
        ck_assert_int_eq(peer_policy_allowed(p, &a), 0);
        ck_assert_int_eq(addr_parse_ip_port(&a, "192.0.2.1:3479"), 0);
        ck_assert_int_eq(peer_policy_allowed(p, &a), 0);
        ck_assert_int_eq(addr_parse_ip_port(&a, "192.0.2.1:3480"), 0);
        ck_assert_int_eq(peer_policy_allowed(p, &a), 1);
    }
    free(p);
    cfg_free(c);
}
END_TEST

struct changes {
    int          n;
    enum cfg_key key[CFG_NKEYS];
    int          reloadable[CFG_NKEYS];
};

static void
on_change(void *ud, enum cfg_key k, const char *name, int reloadable)
{
    struct changes *ch = ud;

    ck_assert_str_eq(name, cfg_key_name(k));
    ch->key[ch->n] = k;
    ch->reloadable[ch->n++] = reloadable;
}

START_TEST(test_reload_diff_classification)
{
    struct cfg    *cur = load(PUB4 "listen:\n  port: 3478\n"
        "portal:\n  name: a\n");
    struct cfg    *next = load(PUB4 "listen:\n  port: 3500\n"
        "portal:\n  name: b\n"
        "peers:\n  allow: [127.0.0.1/32]\n  deny: [10.0.0.0/8]\n"
        "limits:\n  error_rate: 0\n  error_burst: 10\n"
        "log:\n  level: debug\n");
    struct changes ch = { 0 };
    enum cfg_key   keys[CFG_NKEYS];

    assert_clean(cur);
    assert_clean(next);
    ck_assert_uint_eq(cfg_diff(cur, next, keys), 7);
    ck_assert_uint_eq(cfg_reload_apply(cur, next, on_change, &ch), 5);
    ck_assert_int_eq(ch.n, 7);
    ck_assert_int_eq(ch.key[0], CFG_KEY_listen_port);
    ck_assert_int_eq(ch.reloadable[0], 0);
    ck_assert_int_eq(ch.key[1], CFG_KEY_portal_name);
    ck_assert_int_eq(ch.reloadable[1], 0);
    for (int i = 2; i < 7; i++)
        ck_assert_int_eq(ch.reloadable[i], 1);
    ck_assert_int_eq(ch.key[2], CFG_KEY_peers_allow);
    ck_assert_int_eq(ch.key[6], CFG_KEY_log_level);
    /* Reloadable keys taken over, the others kept. */
    ck_assert_uint_eq(cur->peers_allow.n, 1);
    ck_assert_uint_eq(cur->peers_deny.n, 1);
    ck_assert_uint_eq(cur->error_rate, 0);
    ck_assert_uint_eq(cur->error_burst, 10);
    ck_assert_int_eq(cur->log_level, 3);
    ck_assert_uint_eq(cur->listen_port, 3478);
    ck_assert_str_eq(cur->portal_name, "a");
    ck_assert_uint_eq(cfg_diff(cur, next, keys), 2);
    ck_assert_uint_eq(cfg_reload_apply(cur, next, NULL, NULL), 0);

    /* Exactly the SPEC §10.5 keys are reloadable. */
    for (int k = 0; k < CFG_NKEYS; k++) {
        int want = k == CFG_KEY_peers_allow || k == CFG_KEY_peers_deny ||
            k == CFG_KEY_error_rate || k == CFG_KEY_error_burst ||
            k == CFG_KEY_log_level;

        ck_assert_int_eq(cfg_key_reloadable((enum cfg_key)k), want);
    }
    cfg_free(cur);
    cfg_free(next);
}
END_TEST

/* --- Shipped files --- */

START_TEST(test_shipped_files_load)
{
    const char *env[] = { "PUBLIC_IP4_ADDR=203.0.113.1", NULL };
    struct cfg_input in = { 0 };
    char             path[512], want[600];
    char            *text;
    struct cfg      *c;

    /* Production file: only the operator's public IP is missing. */
    text = read_etc("firezone-relay.yaml", path, sizeof(path), &in.len);
    in.file = path;
    in.text = text;
    c = cfg_load(&in);
    ck_assert_ptr_nonnull(c);
    snprintf(want, sizeof(want), "%s:1:1: public_ip4: at least one of "
        "public_ip4 and public_ip6 must be set", path);
    assert_one_error(c, want);
    cfg_free(c);
    in.getenv_fn = env_get;
    in.getenv_ud = (void *)env;
    c = cfg_load(&in);
    ck_assert_ptr_nonnull(c);
    assert_clean(c);
    ck_assert_uint_eq(c->peers_allow.n, 0);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_STANDALONE);
    cfg_free(c);
    free(text);

    /* Development file: loopback, standalone, clean as it is. */
    memset(&in, 0, sizeof(in));
    text = read_etc("firezone-relay.dev.yaml", path, sizeof(path), &in.len);
    in.file = path;
    in.text = text;
    c = cfg_load(&in);
    ck_assert_ptr_nonnull(c);
    assert_clean(c);
    ck_assert_int_eq(cfg_mode(c), CFG_MODE_STANDALONE);
    ck_assert_uint_eq(c->listen_port, 3478);
    ck_assert_uint_eq(c->port_min, 50000);
    ck_assert_uint_eq(c->port_max, 50999);
    ck_assert_uint_eq(c->workers, 2);
    ck_assert_uint_eq(c->peers_allow.n, 2);
    ck_assert_str_eq(c->auth_secret_file, ".dev/secret");
    ck_assert_uint_eq(c->health_listen.port, 8080);
    ck_assert_int_eq(c->public_ip4.family, ADDR_V4);
    cfg_free(c);
    free(text);
}
END_TEST

Suite *
cfg_suite(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("cfg");

    tcase_add_test(tc, test_c64_unknown_key_location);
    tcase_add_test(tc, test_error_lines_have_no_control_bytes);
    tcase_add_test(tc, test_c65_no_public_ip_and_bad_env);
    tcase_add_test(tc, test_c66_dump_redacts_token);
    tcase_add_test(tc, test_c67_precedence_flag_env_yaml);
    tcase_add_test(tc, test_defaults_dump_in_spec_order);
    tcase_add_test(tc, test_default_paths);
    tcase_add_test(tc, test_dump_loads_back);
    tcase_add_test(tc, test_dump_buf_truncates);
    tcase_add_loop_test(tc, test_key_kind_errors, 0, NELEM(kind_errors));
    tcase_add_test(tc, test_name_length);
    tcase_add_loop_test(tc, test_int_forms_rejected, 0, NELEM(bad_ints));
    tcase_add_test(tc, test_int_forms_accepted);
    tcase_add_loop_test(tc, test_bool_forms, 0, NELEM(bad_bools));
    tcase_add_test(tc, test_null_values_keep_defaults);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_anchor_alias_tag);
    tcase_add_test(tc, test_wrong_top_level);
    tcase_add_test(tc, test_multiple_documents);
    tcase_add_test(tc, test_dotted_key_is_unknown);
    tcase_add_test(tc, test_parser_error_located);
    tcase_add_test(tc, test_flow_and_block_lists);
    tcase_add_test(tc, test_bad_cidr_host_bits);
    tcase_add_test(tc, test_cidr_list_too_long);
    tcase_add_test(tc, test_port_min_gt_max);
    tcase_add_test(tc, test_listen_port_in_range);
    tcase_add_test(tc, test_url_without_token);
    tcase_add_loop_test(tc, test_url_scheme, 0, NELEM(urls));
    tcase_add_test(tc, test_bad_secret_chars);
    tcase_add_test(tc, test_group_needs_user);
    tcase_add_test(tc, test_public_ip6_alone_is_enough);
    tcase_add_test(tc, test_errors_all_reported);
    tcase_add_test(tc, test_env_every_key);
    tcase_add_test(tc, test_flag_lookup);
    tcase_add_test(tc, test_apply_flag_values);
    tcase_add_test(tc, test_key_where_and_error);
    tcase_add_test(tc, test_env_empty_is_unset);
    tcase_add_test(tc, test_mode);
    tcase_add_test(tc, test_peer_policy_from_cfg);
    tcase_add_test(tc, test_reload_diff_classification);
    tcase_add_test(tc, test_shipped_files_load);
    suite_add_tcase(s, tc);
    return s;
}
