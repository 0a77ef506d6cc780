/* cfg.h - configuration: key table, YAML loader, environment and
 * command-line overrides, validation, -T dump (SPEC §9).
 *
 * One X-macro table, CFG_KEYS, yields the fields of struct cfg, their
 * defaults and bounds, the YAML mapping, the environment variables and
 * long flags, the reload flag (SPEC §10.5) and the -T dump (STYLE §8).
 *
 * Pure: no I/O.  The master reads the file and hands its content over,
 * environment lookups go through an injected getter, and command-line
 * flags are handed over as (flag, value) pairs.  Checks that need the OS
 * (user and group exist, portal.ca_file readable, XDP support) are the
 * master's; it reports them through cfg_key_error() so that they carry
 * the same "FILE:LINE:COLUMN: KEY: message" prefix as the others.
 *
 * Precedence (SPEC §9.1): flag > environment > YAML > default.  Apply the
 * sources in that reverse order (cfg_load() does): the last value set
 * wins.  Every source is validated, even when a later one overrides it.
 *
 * Errors are collected, never fatal to the loader: after loading, a cfg
 * with cfg_nerrors() > 0 must not be used except to print its errors.
 * Each error is a complete line without newline, e.g.
 *   /etc/firezone-relay.yaml:12:9: limits.error_rate: must be 0-1000000
 *   environment LISTEN_PORT: listen.port: must be a decimal integer
 *   command line --listen-port: listen.port: must be 1-65535
 *   firezone-relay: public_ip4: at least one of public_ip4 and public_ip6
 *   must be set                                       (no file was read)
 *
 * Scalar rules (SPEC §9.1, decisions in docs/config.md): integers are
 * plain decimal digits without sign or leading zeros ("0" itself is fine;
 * "-1" is out of range); booleans are plain true or false; a quoted
 * scalar is a string, so `port: "3478"` is wrongly typed; a null value
 * (`~`, `null`, or nothing) leaves the key at its default; tags, anchors
 * and aliases are errors. */
#ifndef RLY_CFG_H
#define RLY_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "peer_policy.h"

/* The key table, in SPEC §9.2 order (which is also the -T order).
 *
 *  CFG_PORT (field, name, default, min, max, env, flag, reload)  uint16_t
 *  CFG_UINT (field, name, default, min, max, env, flag, reload)  uint32_t
 *  CFG_U64  (field, name, env, flag, reload)     uint64_t, no default
 *  CFG_IP   (field, name, family, default, env, flag, reload) struct addr
 *           family 4 or 6; default NULL = unset (family ADDR_NONE)
 *  CFG_PUBIP(field, name, family, env, flag, reload)  struct addr, no
 *           default, unspecified address refused
 *  CFG_IPPORT(field, name, default, env, flag, reload)  struct addr
 *  CFG_STR  (field, name, maxlen, env, flag, reload, redact)  char *,
 *           NULL = unset; maxlen 0 = no limit; redact: -T prints
 *           "<redacted>"
 *  CFG_PATH (field, name, default, env, flag, reload)  char *, default
 *           may be NULL
 *  CFG_BOOL (field, name, default, env, flag, reload)  int 0/1
 *  CFG_ENUM (field, name, default, names, env, flag, reload)  int index
 *           into names (a NULL-terminated array)
 *  CFG_CIDRS(field, name, reload)  struct cfg_cidrs
 *
 * env and flag are string literals or NULL; a flag is written without its
 * leading "--".  reload is 1 for the keys SPEC §10.5 applies on SIGHUP. */
#define CFG_KEYS \
  CFG_PORT(listen_port, "listen.port", 3478, 1, 65535, \
      "LISTEN_PORT", "listen-port", 0) \
  CFG_IP(bind_ip4, "listen.bind_ip4", 4, "0.0.0.0", \
      "BIND_IP4_ADDR", "bind-ip4-addr", 0) \
  CFG_IP(bind_ip6, "listen.bind_ip6", 6, "::", \
      "BIND_IP6_ADDR", "bind-ip6-addr", 0) \
  CFG_PUBIP(public_ip4, "public_ip4", 4, \
      "PUBLIC_IP4_ADDR", "public-ip4-addr", 0) \
  CFG_PUBIP(public_ip6, "public_ip6", 6, \
      "PUBLIC_IP6_ADDR", "public-ip6-addr", 0) \
  CFG_PORT(port_min, "relay.port_min", 49152, 1, 65535, \
      "LOWEST_PORT", "lowest-port", 0) \
  CFG_PORT(port_max, "relay.port_max", 65535, 1, 65535, \
      "HIGHEST_PORT", "highest-port", 0) \
  CFG_UINT(workers, "workers", 0, 0, 1024, NULL, "workers", 0) \
  CFG_STR(portal_url, "portal.url", 0, "FIREZONE_API_URL", "api-url", 0, 0) \
  CFG_STR(portal_token, "portal.token", 0, "FIREZONE_TOKEN", NULL, 0, 1) \
  CFG_STR(portal_name, "portal.name", 255, "FIREZONE_NAME", "name", 0, 0) \
  CFG_PATH(portal_ca_file, "portal.ca_file", NULL, NULL, NULL, 0) \
  CFG_STR(auth_secret, "auth.secret", 255, NULL, NULL, 0, 1) \
  CFG_PATH(auth_secret_file, "auth.secret_file", CFG_DEFAULT_SECRET_FILE, \
      NULL, NULL, 0) \
  CFG_CIDRS(peers_allow, "peers.allow", 1) \
  CFG_CIDRS(peers_deny, "peers.deny", 1) \
  CFG_UINT(max_allocations, "limits.max_allocations", 16384, 1, 1048576, \
      NULL, NULL, 0) \
  CFG_UINT(max_channels, "limits.max_channels", 65536, 1, 4194304, \
      NULL, NULL, 0) \
  CFG_UINT(nonce_table_size, "limits.nonce_table_size", 65536, 1, 16777216, \
      NULL, NULL, 0) \
  CFG_UINT(error_rate, "limits.error_rate", 100, 0, 1000000, NULL, NULL, 1) \
  CFG_UINT(error_burst, "limits.error_burst", 200, 1, 1000000, \
      NULL, NULL, 1) \
  CFG_IPPORT(health_listen, "health.listen", "0.0.0.0:8080", \
      "HEALTH_CHECK_ADDR", "health-check-addr", 0) \
  CFG_BOOL(metrics_enabled, "metrics.enabled", 1, NULL, NULL, 0) \
  CFG_ENUM(log_level, "log.level", "info", cfg_log_level_names, \
      NULL, "log-level", 1) \
  CFG_ENUM(log_format, "log.format", "human", cfg_log_format_names, \
      "LOG_FORMAT", "log-format", 0) \
  CFG_STR(user, "user", 0, NULL, NULL, 0, 0) \
  CFG_STR(group, "group", 0, NULL, NULL, 0, 0) \
  CFG_U64(rng_seed, "rng_seed", "RNG_SEED", "rng-seed", 0) \
  CFG_STR(xdp_interface, "xdp.interface", 15, NULL, NULL, 0, 0) \
  CFG_ENUM(xdp_mode, "xdp.mode", "native", cfg_xdp_mode_names, \
      NULL, NULL, 0) \
  CFG_IP(xdp_int_ip4, "xdp.int_ip4", 4, NULL, NULL, NULL, 0) \
  CFG_IP(xdp_int_ip6, "xdp.int_ip6", 6, NULL, NULL, NULL, 0)

/* Used by the table: the compiled-in default secret file (SPEC §9.2). */
#define CFG_DEFAULT_SECRET_FILE cfg_default_secret_file()

/* Names of the enum keys, NULL-terminated.  log.level's index is the
 * enum rly_log_level value (rly_log.h). */
extern const char *const cfg_log_level_names[];
extern const char *const cfg_log_format_names[];
extern const char *const cfg_xdp_mode_names[];

enum cfg_log_format { CFG_LOG_HUMAN = 0, CFG_LOG_JSON = 1 };
enum cfg_xdp_mode { CFG_XDP_NATIVE = 0, CFG_XDP_GENERIC = 1 };

/* A CIDR list (peers.allow, peers.deny): at most PEER_POLICY_MAX_CIDRS. */
struct cfg_cidrs {
    uint32_t    n;
    struct cidr v[PEER_POLICY_MAX_CIDRS];
};

/* One identifier per key: CFG_KEY_listen_port, ... */
enum cfg_key {
    CFG_KEY_NONE = -1,
#define CFG_PORT(f, ...)    CFG_KEY_##f,
#define CFG_UINT(f, ...)    CFG_KEY_##f,
#define CFG_U64(f, ...)     CFG_KEY_##f,
#define CFG_IP(f, ...)      CFG_KEY_##f,
#define CFG_PUBIP(f, ...)   CFG_KEY_##f,
#define CFG_IPPORT(f, ...)  CFG_KEY_##f,
#define CFG_STR(f, ...)     CFG_KEY_##f,
#define CFG_PATH(f, ...)    CFG_KEY_##f,
#define CFG_BOOL(f, ...)    CFG_KEY_##f,
#define CFG_ENUM(f, ...)    CFG_KEY_##f,
#define CFG_CIDRS(f, ...)   CFG_KEY_##f,
    CFG_KEYS
#undef CFG_PORT
#undef CFG_UINT
#undef CFG_U64
#undef CFG_IP
#undef CFG_PUBIP
#undef CFG_IPPORT
#undef CFG_STR
#undef CFG_PATH
#undef CFG_BOOL
#undef CFG_ENUM
#undef CFG_CIDRS
    CFG_NKEYS
};

/* Where a key's effective value came from. */
enum cfg_src_kind {
    CFG_SRC_DEFAULT = 0,
    CFG_SRC_FILE,           /* line, col: 1-based, of the value */
    CFG_SRC_ENV,
    CFG_SRC_FLAG
};

struct cfg_src {
    enum cfg_src_kind   kind;
    unsigned            line, col;
};

struct cfg_priv;

/* The effective configuration.  Fields are read directly; they are owned
 * by the cfg and valid until cfg_free().  An unset optional value is NULL
 * (strings) or family ADDR_NONE (addresses); use cfg_key_is_set() for
 * rng_seed. */
struct cfg {
#define CFG_PORT(f, ...)    uint16_t f;
#define CFG_UINT(f, ...)    uint32_t f;
#define CFG_U64(f, ...)     uint64_t f;
#define CFG_IP(f, ...)      struct addr f;
#define CFG_PUBIP(f, ...)   struct addr f;
#define CFG_IPPORT(f, ...)  struct addr f;
#define CFG_STR(f, ...)     char *f;
#define CFG_PATH(f, ...)    char *f;
#define CFG_BOOL(f, ...)    int f;
#define CFG_ENUM(f, ...)    int f;
#define CFG_CIDRS(f, ...)   struct cfg_cidrs f;
    CFG_KEYS
#undef CFG_PORT
#undef CFG_UINT
#undef CFG_U64
#undef CFG_IP
#undef CFG_PUBIP
#undef CFG_IPPORT
#undef CFG_STR
#undef CFG_PATH
#undef CFG_BOOL
#undef CFG_ENUM
#undef CFG_CIDRS
    struct cfg_src      src[CFG_NKEYS];
    struct cfg_priv    *priv;   /* file name, section marks, errors */
};

/* --- Compiled-in paths (SPEC §9.1, §9.2) --- */

/* RLY_SYSCONFDIR "/firezone-relay.yaml", e.g. "/etc/firezone-relay.yaml".
 * Static string. */
const char *cfg_default_file(void);
/* RLY_LOCALSTATEDIR "/lib/firezone-relay/secret".  Static string. */
const char *cfg_default_secret_file(void);

/* --- Building a configuration --- */

/* Environment getter: returns the variable's value or NULL.  The string
 * need only stay valid until the next call.  An empty value counts as
 * unset (SPEC §9.1). */
typedef const char *(*cfg_getenv_fn)(void *ud, const char *name);

/* A command-line flag: name without "--" (a leading "--" is tolerated),
 * value as given. */
struct cfg_flag {
    const char *name;
    const char *value;
};

/* Every source of one load; the master keeps it to reload from the same
 * sources (SPEC §10.5).  Borrowed during the call only. */
struct cfg_input {
    const char             *file;     /* name for messages; NULL: no file */
    const char             *text;     /* file content (need not end in NUL) */
    size_t                  len;
    cfg_getenv_fn           getenv_fn;  /* NULL: no environment */
    void                   *getenv_ud;
    const struct cfg_flag  *flags;
    size_t                  nflags;
};

/* A configuration holding every default.  NULL when out of memory. */
struct cfg *cfg_new(void);
/* Frees everything; NULL is fine. */
void cfg_free(struct cfg *c);

/* Parses YAML text (SPEC §9.1) into c.  file names it in messages (copied;
 * must not be NULL).  Call at most once per cfg, first.  Returns 0,
 * RLY_ERR_INVAL when errors were recorded, or RLY_ERR_NOMEM. */
int cfg_load_yaml(struct cfg *c, const char *file, const char *text,
    size_t len);

/* Applies every key's environment variable that is set and non-empty.
 * Returns 0, RLY_ERR_INVAL when errors were recorded, or RLY_ERR_NOMEM. */
int cfg_apply_env(struct cfg *c, cfg_getenv_fn getenv_fn, void *ud);

/* Applies one long flag (name without "--"; a leading "--" is tolerated).
 * Returns 0, RLY_ERR_NOTFOUND for an unknown flag (nothing recorded: a
 * usage error for the master), RLY_ERR_INVAL when an error was recorded
 * (value NULL or invalid), or RLY_ERR_NOMEM. */
int cfg_apply_flag(struct cfg *c, const char *name, const char *value);

/* Cross-key checks of SPEC §9.3 that need no OS: a public IP, the port
 * range and listen.port, portal.url with portal.token and its scheme,
 * group needs user.  Call once, after every source.  Returns 0,
 * RLY_ERR_INVAL when c has any error (from any step), or RLY_ERR_NOMEM. */
int cfg_finish(struct cfg *c);

/* All of the above: cfg_new(), cfg_load_yaml() when in->file and in->text
 * are set (otherwise no file was read and errors say "firezone-relay:"),
 * cfg_apply_env(), cfg_apply_flag() for each flag, cfg_finish().  Returns
 * the cfg (check cfg_nerrors()), or NULL when out of memory.  An unknown
 * flag is recorded as an error here. */
struct cfg *cfg_load(const struct cfg_input *in);

/* --- Errors --- */

/* Number of recorded errors, and the i-th one (a line without newline,
 * valid until cfg_free()). */
size_t cfg_nerrors(const struct cfg *c);
const char *cfg_error(const struct cfg *c, size_t i);

/* Writes the error prefix for key k into buf: "FILE:LINE:COL: KEY: ",
 * "environment NAME: KEY: ", "command line --flag: KEY: " or, for a key
 * not set by any source, the mapping that should hold it ("FILE:L:C: KEY: ",
 * 1:1 at top level) or "firezone-relay: KEY: " when no file was read.
 * k = CFG_KEY_NONE (no key concerned) gives "firezone-relay: ".  Returns
 * the length snprintf() would give (truncated when >= size). */
int cfg_key_where(const struct cfg *c, enum cfg_key k, char *buf,
    size_t size);

/* Records an error for key k with cfg_key_where()'s prefix (the master's
 * OS checks: "user: no such user").  Returns 0 or RLY_ERR_NOMEM. */
int cfg_key_error(struct cfg *c, enum cfg_key k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- The key table --- */

/* "listen.port"; NULL for an invalid k. */
const char *cfg_key_name(enum cfg_key k);
/* "LISTEN_PORT", or NULL when the key has no environment variable. */
const char *cfg_key_env(enum cfg_key k);
/* "listen-port" (without "--"), or NULL when the key has no flag. */
const char *cfg_key_flag(enum cfg_key k);
/* 1 when SPEC §10.5 applies the key on reload. */
int cfg_key_reloadable(enum cfg_key k);
/* 1 when some source set the key (its source is not CFG_SRC_DEFAULT). */
int cfg_key_is_set(const struct cfg *c, enum cfg_key k);
/* The key whose dotted name is name, or CFG_KEY_NONE. */
enum cfg_key cfg_key_lookup(const char *name);

/* For the master's argv loop.  arg is an argv element such as
 * "--listen-port" or "--listen-port=6000".  Returns the key of that long
 * flag, or CFG_KEY_NONE when arg is no known flag.  *value is set to the
 * text after '=' or to NULL when there is none (the value is then the
 * next argv element). */
enum cfg_key cfg_flag_lookup(const char *arg, const char **value);

/* --- Using a configuration --- */

enum cfg_mode {
    CFG_MODE_STANDALONE = 0,    /* no portal.token */
    CFG_MODE_PORTAL             /* portal.token and portal.url set */
};
enum cfg_mode cfg_mode(const struct cfg *c);

/* Builds the peer policy (SPEC §5.4) into *out (initialised here):
 * peers.allow, peers.deny, and as listen sockets public_ip4,
 * listen.bind_ip4, public_ip6 and listen.bind_ip6 (those set, in that
 * order; the bind addresses always are, 0.0.0.0 and :: by default), each
 * with port listen.port.  Returns 0 or RLY_ERR_FULL (not for a cfg
 * without errors). */
int cfg_peer_policy(const struct cfg *c, struct peer_policy *out);

/* Output callback for cfg_dump(): len bytes of s (no NUL guaranteed). */
typedef void (*cfg_emit_fn)(void *ud, const char *s, size_t len);

/* Emits the effective configuration as YAML (SPEC §9.4 -T): every key in
 * §9.2 order, as nested mappings; unset values as null; strings and
 * addresses double-quoted; CIDR lists in flow style; portal.token and
 * auth.secret as "<redacted>" when set.  The output loads back as a
 * configuration, except for redacted values. */
void cfg_dump(const struct cfg *c, cfg_emit_fn emit, void *ud);

/* The same into buf (NUL-terminated, truncated when too small).  Returns
 * the full length, as snprintf() does. */
size_t cfg_dump_buf(const struct cfg *c, char *buf, size_t size);

/* --- Reload (SPEC §10.5) --- */

/* Called once per key whose effective value differs, in table order. */
typedef void (*cfg_change_fn)(void *ud, enum cfg_key k, const char *name,
    int reloadable);

/* Compares two configurations.  Fills changed[] (CFG_NKEYS entries room)
 * with the keys whose values differ, in table order; returns how many.
 * Sources are not compared. */
size_t cfg_diff(const struct cfg *a, const struct cfg *b,
    enum cfg_key changed[CFG_NKEYS]);

/* Applies a reload: for each key changed from cur to next, calls fn (may
 * be NULL) and, when the key is reloadable, copies its value and source
 * from next into cur.  Other changes stay ignored ("requires restart":
 * the master logs them at warn from fn).  next must have no errors.
 * Returns the number of reloadable keys copied. */
size_t cfg_reload_apply(struct cfg *cur, const struct cfg *next,
    cfg_change_fn fn, void *ud);

#endif
