/* cfg.c - configuration key table, libyaml loader, environment and flag
 * overrides, checks and the -T dump (SPEC §9).  See cfg.h.
 *
 * Every per-key behaviour comes from the CFG_KEYS table through struct
 * key_desc: the loader, the setters, the dump and the diff walk it and
 * switch on the value kind, never on the key.  Values given by the user
 * are never echoed in messages: they may be a token or a secret. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "auth.h"
#include "cfg.h"
#include "rly_err.h"
#include "rly_log.h"

/* The table's default for auth.secret_file, as a constant for key_desc. */
#undef CFG_DEFAULT_SECRET_FILE
#define CFG_DEFAULT_SECRET_FILE RLY_LOCALSTATEDIR "/lib/firezone-relay/secret"

#define CFG_PROG    "firezone-relay"

const char *const cfg_log_level_names[] = {
    "error", "warn", "info", "debug", NULL
};
const char *const cfg_log_format_names[] = { "human", "json", NULL };
const char *const cfg_xdp_mode_names[] = { "native", "generic", NULL };

enum kind {
    K_PORT, K_UINT, K_U64, K_IP, K_PUBIP, K_IPPORT, K_STR, K_PATH, K_BOOL,
    K_ENUM, K_CIDRS
};

struct key_desc {
    const char         *name;
    enum kind           kind;
    size_t              off;        /* of the field in struct cfg */
    uint64_t            min, max;   /* K_PORT, K_UINT, K_U64 */
    uint64_t            def;        /* K_PORT, K_UINT, K_BOOL */
    const char         *defstr;     /* K_IP, K_IPPORT, K_PATH, K_ENUM */
    int                 family;     /* K_IP, K_PUBIP: 4 or 6 */
    size_t              maxlen;     /* K_STR: 0 = none */
    const char *const  *names;      /* K_ENUM */
    const char         *env;
    const char         *flag;
    int                 reload;
    int                 redact;
};

#define OFF(f)  offsetof(struct cfg, f)

static const struct key_desc keys[CFG_NKEYS] = {
#define CFG_PORT(f, n, d, lo, hi, e, fl, r) \
    { .name = n, .kind = K_PORT, .off = OFF(f), .min = lo, .max = hi, \
      .def = d, .env = e, .flag = fl, .reload = r },
#define CFG_UINT(f, n, d, lo, hi, e, fl, r) \
    { .name = n, .kind = K_UINT, .off = OFF(f), .min = lo, .max = hi, \
      .def = d, .env = e, .flag = fl, .reload = r },
#define CFG_U64(f, n, e, fl, r) \
    { .name = n, .kind = K_U64, .off = OFF(f), .min = 0, \
      .max = UINT64_MAX, .env = e, .flag = fl, .reload = r },
#define CFG_IP(f, n, fam, d, e, fl, r) \
    { .name = n, .kind = K_IP, .off = OFF(f), .family = fam, \
      .defstr = d, .env = e, .flag = fl, .reload = r },
#define CFG_PUBIP(f, n, fam, e, fl, r) \
    { .name = n, .kind = K_PUBIP, .off = OFF(f), .family = fam, \
      .env = e, .flag = fl, .reload = r },
#define CFG_IPPORT(f, n, d, e, fl, r) \
    { .name = n, .kind = K_IPPORT, .off = OFF(f), .defstr = d, \
      .env = e, .flag = fl, .reload = r },
#define CFG_STR(f, n, ml, e, fl, r, red) \
    { .name = n, .kind = K_STR, .off = OFF(f), .maxlen = ml, \
      .env = e, .flag = fl, .reload = r, .redact = red },
#define CFG_PATH(f, n, d, e, fl, r) \
    { .name = n, .kind = K_PATH, .off = OFF(f), .defstr = d, \
      .env = e, .flag = fl, .reload = r },
#define CFG_BOOL(f, n, d, e, fl, r) \
    { .name = n, .kind = K_BOOL, .off = OFF(f), .def = d, \
      .env = e, .flag = fl, .reload = r },
#define CFG_ENUM(f, n, d, nm, e, fl, r) \
    { .name = n, .kind = K_ENUM, .off = OFF(f), .defstr = d, .names = nm, \
      .env = e, .flag = fl, .reload = r },
#define CFG_CIDRS(f, n, r) \
    { .name = n, .kind = K_CIDRS, .off = OFF(f), .reload = r },
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
};

struct cfg_priv {
    char       *file;               /* NULL: no file was read */
    /* Mark of the mapping that holds (or should hold) each key. */
    unsigned    pline[CFG_NKEYS], pcol[CFG_NKEYS];
    char      **errs;
    size_t      nerrs, cap;
    int         nomem;
};

/* Extra checks of string keys, by key (values only; the table has no
 * room for a function pointer per key kind). */
static const char *check_url(const char *s);
static const char *check_secret(const char *s);
static const char *check_ifname(const char *s);

static const struct {
    enum cfg_key    key;
    const char   *(*check)(const char *s);
} str_checks[] = {
    { CFG_KEY_portal_url, check_url },
    { CFG_KEY_auth_secret, check_secret },
    { CFG_KEY_xdp_interface, check_ifname },
};

/* ------------------------------------------------------------------ */
/* Small helpers */

static void *
field(struct cfg *c, const struct key_desc *d)
{
    return (char *)c + d->off;
}

static const void *
cfield(const struct cfg *c, const struct key_desc *d)
{
    return (const char *)c + d->off;
}

static int
valid_key(enum cfg_key k)
{
    return (int)k >= 0 && (int)k < CFG_NKEYS;
}

/* Length of the section part of a dotted name ("listen" of "listen.port"),
 * 0 for a top-level key. */
static size_t
section_len(const char *name)
{
    const char *dot = strchr(name, '.');

    return dot == NULL ? 0 : (size_t)(dot - name);
}

static char *
dup_str(struct cfg *c, const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        c->priv->nomem = 1;
    return p;
}

static void
add_err(struct cfg *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_err(struct cfg *c, const char *fmt, ...)
{
    struct cfg_priv *p = c->priv;
    va_list          ap;
    char           **errs;
    char            *s;
    int              n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL) {
        p->nomem = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    /* An error is one line: keys and file names from the input may hold
     * control bytes, which must not split or forge log lines. */
    for (char *q = s; *q != '\0'; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = '?';
    if (p->nerrs == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;

        if ((errs = realloc(p->errs, cap * sizeof(*errs))) == NULL) {
            free(s);
            p->nomem = 1;
            return;
        }
        p->errs = errs;
        p->cap = cap;
    }
    p->errs[p->nerrs++] = s;
}

/* An error at a file position (0-based libyaml mark), with or without a
 * key name. */
static void
add_file_err(struct cfg *c, const yaml_mark_t *m, const char *key,
    const char *msg)
{
    const char *file = c->priv->file;
    unsigned    line = (unsigned)m->line + 1, col = (unsigned)m->column + 1;

    if (key != NULL)
        add_err(c, "%s:%u:%u: %s: %s", file, line, col, key, msg);
    else
        add_err(c, "%s:%u:%u: %s", file, line, col, msg);
}

/* 0 when nothing went wrong, else RLY_ERR_NOMEM or RLY_ERR_INVAL. */
static int
status(const struct cfg *c, size_t nerrs_before)
{
    if (c->priv->nomem)
        return RLY_ERR_NOMEM;
    return c->priv->nerrs > nerrs_before ? RLY_ERR_INVAL : 0;
}

/* ------------------------------------------------------------------ */
/* Scalar parsing: one setter for every kind */

/* Decimal: "0" or [1-9][0-9]*, with an optional '-' (then out of range).
 * Returns 0 with *v (saturated at UINT64_MAX), 1 for an out-of-range
 * value (negative or too large), -1 for anything else. */
static int
parse_dec(const char *s, uint64_t *v)
{
    int      neg = 0, big = 0;
    uint64_t n = 0;

    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (*s < '0' || *s > '9' || (*s == '0' && s[1] != '\0'))
        return -1;
    if (neg && *s == '0')
        return -1;
    for (; *s != '\0'; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return -1;
        d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            big = 1;
        else
            n = n * 10 + d;
    }
    *v = n;
    return neg || big ? 1 : 0;
}

static const char *
type_msg(const struct key_desc *d, char *msg, size_t msz)
{
    size_t len;

    switch (d->kind) {
    case K_PORT:
    case K_UINT:
    case K_U64:
        return "must be a decimal integer";
    case K_IP:
    case K_PUBIP:
        return d->family == 4 ? "must be an IPv4 address"
                              : "must be an IPv6 address";
    case K_IPPORT:
        return "must be IP:port (IPv6 in brackets, port 1-65535)";
    case K_STR:
    case K_PATH:
        return "must be a string";
    case K_BOOL:
        return "must be true or false";
    case K_ENUM:
        len = (size_t)snprintf(msg, msz, "must be one of");
        for (size_t i = 0; d->names[i] != NULL && len < msz; i++)
            len += (size_t)snprintf(msg + len, msz - len, "%s %s",
                i ? "," : "", d->names[i]);
        return msg;
    case K_CIDRS:
        return "must be a list of CIDRs";
    }
    return "is invalid";
}

static const char *
set_num(struct cfg *c, const struct key_desc *d, const char *s,
    char *msg, size_t msz)
{
    uint64_t v = 0;
    int      rc = parse_dec(s, &v);

    if (rc < 0)
        return type_msg(d, msg, msz);
    if (rc > 0 || v < d->min || v > d->max) {
        snprintf(msg, msz, "must be %llu-%llu", (unsigned long long)d->min,
            (unsigned long long)d->max);
        return msg;
    }
    if (d->kind == K_PORT)
        *(uint16_t *)field(c, d) = (uint16_t)v;
    else if (d->kind == K_UINT)
        *(uint32_t *)field(c, d) = (uint32_t)v;
    else
        *(uint64_t *)field(c, d) = v;
    return NULL;
}

static const char *
set_ip(struct cfg *c, const struct key_desc *d, const char *s,
    char *msg, size_t msz)
{
    struct addr a;

    if (addr_parse_ip(&a, s) != 0 || a.family != d->family)
        return type_msg(d, msg, msz);
    if (d->kind == K_PUBIP && addr_is_unspecified(&a))
        return "must not be the unspecified address";
    *(struct addr *)field(c, d) = a;
    return NULL;
}

static const char *
set_ipport(struct cfg *c, const struct key_desc *d, const char *s,
    char *msg, size_t msz)
{
    struct addr a;

    /* An unbracketed IPv6 address is ambiguous; addr_parse_ip_port() must
     * not see one (it looks before the string for the bracket). */
    if (s[0] != '[' && strchr(s, ':') != strrchr(s, ':'))
        return type_msg(d, msg, msz);
    if (addr_parse_ip_port(&a, s) != 0 || a.port == 0)
        return type_msg(d, msg, msz);
    *(struct addr *)field(c, d) = a;
    return NULL;
}

static const char *
set_str(struct cfg *c, const struct key_desc *d, const char *s,
    char *msg, size_t msz)
{
    char      **fp = field(c, d);
    const char *m;
    char       *v;

    if (*s == '\0')
        return "must not be empty";
    if (d->maxlen != 0 && strlen(s) > d->maxlen) {
        snprintf(msg, msz, "must be at most %zu bytes", d->maxlen);
        return msg;
    }
    for (size_t i = 0; i < sizeof(str_checks) / sizeof(str_checks[0]); i++)
        if (&keys[str_checks[i].key] == d &&
            (m = str_checks[i].check(s)) != NULL)
            return m;
    if ((v = dup_str(c, s)) == NULL)
        return "out of memory";
    free(*fp);
    *fp = v;
    return NULL;
}

static const char *
set_enum(struct cfg *c, const struct key_desc *d, const char *s,
    char *msg, size_t msz)
{
    for (int i = 0; d->names[i] != NULL; i++) {
        if (strcmp(s, d->names[i]) == 0) {
            *(int *)field(c, d) = i;
            return NULL;
        }
    }
    return type_msg(d, msg, msz);
}

/* Sets key d from text s.  quoted: s was a quoted YAML scalar, which is a
 * string and so never an integer or a boolean.  Returns NULL or a short
 * message (static or in msg). */
static const char *
set_scalar(struct cfg *c, const struct key_desc *d, const char *s,
    int quoted, char *msg, size_t msz)
{
    switch (d->kind) {
    case K_PORT:
    case K_UINT:
    case K_U64:
        return quoted ? type_msg(d, msg, msz) : set_num(c, d, s, msg, msz);
    case K_IP:
    case K_PUBIP:
        return set_ip(c, d, s, msg, msz);
    case K_IPPORT:
        return set_ipport(c, d, s, msg, msz);
    case K_STR:
    case K_PATH:
        return set_str(c, d, s, msg, msz);
    case K_BOOL:
        if (!quoted && strcmp(s, "true") == 0)
            *(int *)field(c, d) = 1;
        else if (!quoted && strcmp(s, "false") == 0)
            *(int *)field(c, d) = 0;
        else
            return type_msg(d, msg, msz);
        return NULL;
    case K_ENUM:
        return set_enum(c, d, s, msg, msz);
    case K_CIDRS:
        break;
    }
    return type_msg(d, msg, msz);
}

static const char *
check_url(const char *s)
{
    static const char *const schemes[] = { "http", "https", "ws", "wss" };
    const char *sep = strstr(s, "://");
    size_t      n;

    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "must not contain spaces or control characters";
    if (sep == NULL)
        return "must be a URL (scheme://host/path)";
    n = (size_t)(sep - s);
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strlen(schemes[i]) == n && strncasecmp(s, schemes[i], n) == 0) {
            sep += 3;
            if (*sep == '\0' || *sep == '/' || *sep == '?' || *sep == '#')
                return "must name a host (scheme://host/path)";
            return NULL;
        }
    }
    return "scheme must be http, https, ws or wss";
}

static const char *
check_secret(const char *s)
{
    if (!auth_secret_ok(s))
        return "must be 32-255 characters from A-Z a-z 0-9 - . _ ~ + / =";
    return NULL;
}

static const char *
check_ifname(const char *s)
{
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == '/' || *p == ':' ||
            *p == 0x7f)
            return "must be an interface name";
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Life cycle */

static void
set_default(struct cfg *c, const struct key_desc *d)
{
    char msg[128];

    switch (d->kind) {
    case K_PORT:
        *(uint16_t *)field(c, d) = (uint16_t)d->def;
        break;
    case K_UINT:
        *(uint32_t *)field(c, d) = (uint32_t)d->def;
        break;
    case K_BOOL:
        *(int *)field(c, d) = (int)d->def;
        break;
    case K_IP:
    case K_IPPORT:
    case K_PATH:
    case K_ENUM:
        /* Table defaults pass their own setter. */
        if (d->defstr != NULL)
            RLY_BUG_ON(set_scalar(c, d, d->defstr, 0, msg, sizeof(msg))
                != NULL && !c->priv->nomem);
        break;
    default:
        break;      /* zero: unset */
    }
}

struct cfg *
cfg_new(void)
{
    struct cfg *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    if ((c->priv = calloc(1, sizeof(*c->priv))) == NULL) {
        free(c);
        return NULL;
    }
    for (int k = 0; k < CFG_NKEYS; k++) {
        c->priv->pline[k] = c->priv->pcol[k] = 1;
        set_default(c, &keys[k]);
    }
    if (c->priv->nomem) {
        cfg_free(c);
        return NULL;
    }
    return c;
}

void
cfg_free(struct cfg *c)
{
    if (c == NULL)
        return;
    for (int k = 0; k < CFG_NKEYS; k++)
        if (keys[k].kind == K_STR || keys[k].kind == K_PATH)
            free(*(char **)field(c, &keys[k]));
    if (c->priv != NULL) {
        for (size_t i = 0; i < c->priv->nerrs; i++)
            free(c->priv->errs[i]);
        free(c->priv->errs);
        free(c->priv->file);
        free(c->priv);
    }
    free(c);
}

const char *
cfg_default_file(void)
{
    return RLY_SYSCONFDIR "/firezone-relay.yaml";
}

const char *
cfg_default_secret_file(void)
{
    return CFG_DEFAULT_SECRET_FILE;
}

/* ------------------------------------------------------------------ */
/* YAML loader: an event parser, so that anchors, aliases, tags, duplicate
 * keys and every position are visible (the document loader hides them). */

struct yctx {
    struct cfg     *c;
    yaml_parser_t   parser;
    int             failed;         /* parser error recorded: stop */
    unsigned char   seen[CFG_NKEYS];
    unsigned char   seen_sect[CFG_NKEYS];  /* by first key of a section */
};

static int
next_event(struct yctx *y, yaml_event_t *ev)
{
    yaml_parser_t *p = &y->parser;
    char           msg[256];

    if (y->failed)
        return -1;
    if (yaml_parser_parse(p, ev))
        return 0;
    y->failed = 1;
    if (p->error == YAML_MEMORY_ERROR) {
        y->c->priv->nomem = 1;
        return -1;
    }
    if (p->context != NULL)
        snprintf(msg, sizeof(msg), "%s %s", p->problem ? p->problem
            : "syntax error", p->context);
    else
        snprintf(msg, sizeof(msg), "%s", p->problem ? p->problem
            : "syntax error");
    add_file_err(y->c, &p->problem_mark, NULL, msg);
    return -1;
}

/* Consumes the rest of the node that starts with ev (already read). */
static void
skip_node(struct yctx *y, const yaml_event_t *ev)
{
    yaml_event_t e;
    int          depth;

    if (ev->type != YAML_SEQUENCE_START_EVENT &&
        ev->type != YAML_MAPPING_START_EVENT)
        return;
    for (depth = 1; depth > 0;) {
        if (next_event(y, &e) != 0)
            return;
        if (e.type == YAML_SEQUENCE_START_EVENT ||
            e.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (e.type == YAML_SEQUENCE_END_EVENT ||
            e.type == YAML_MAPPING_END_EVENT)
            depth--;
        yaml_event_delete(&e);
    }
}

/* Reads the next node's first event into ev.  Returns 0 when the node
 * has neither alias, anchor nor tag; otherwise records an error, skips
 * the node, frees ev and returns -1 (also on a parser error). */
static int
read_node(struct yctx *y, yaml_event_t *ev, const char *key)
{
    const char    *msg = NULL;
    yaml_char_t   *anchor = NULL, *tag = NULL;

    if (next_event(y, ev) != 0)
        return -1;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        msg = "aliases are not allowed";
        break;
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        break;
    }
    if (anchor != NULL)
        msg = "anchors are not allowed";
    else if (tag != NULL)
        msg = "tags are not allowed";
    if (msg == NULL)
        return 0;
    add_file_err(y->c, &ev->start_mark, key, msg);
    skip_node(y, ev);
    yaml_event_delete(ev);
    return -1;
}

static int
is_null(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;

    if (ev->type != YAML_SCALAR_EVENT ||
        ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return ev->data.scalar.length == 0 || strcmp(s, "~") == 0 ||
        strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0;
}

static int
has_nul(const yaml_event_t *ev)
{
    return strlen((const char *)ev->data.scalar.value) !=
        ev->data.scalar.length;
}

static void
set_src_file(struct cfg *c, enum cfg_key k, const yaml_mark_t *m)
{
    c->src[k].kind = CFG_SRC_FILE;
    c->src[k].line = (unsigned)m->line + 1;
    c->src[k].col = (unsigned)m->column + 1;
}

/* A CIDR list, whose SEQUENCE-START event is read.  Returns 1 when the
 * whole list was valid and stored, 0 otherwise (the key keeps its value). */
static int
parse_cidrs(struct yctx *y, enum cfg_key k)
{
    const struct key_desc *d = &keys[k];
    struct cfg_cidrs      *list;
    yaml_event_t           ev;
    int                    bad = 0, full = 0;

    if ((list = calloc(1, sizeof(*list))) == NULL) {
        y->c->priv->nomem = 1;
        y->failed = 1;
        return 0;
    }
    for (;;) {
        if (read_node(y, &ev, d->name) != 0) {
            if (y->failed)
                break;
            bad = 1;
            continue;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT || is_null(&ev) || has_nul(&ev)) {
            add_file_err(y->c, &ev.start_mark, d->name,
                "must be a list of CIDRs");
            bad = 1;
        } else if (list->n == PEER_POLICY_MAX_CIDRS) {
            if (!full)
                add_file_err(y->c, &ev.start_mark, d->name,
                    "must have at most 256 entries");
            full = bad = 1;
        } else if (cidr_parse((const char *)ev.data.scalar.value,
                       &list->v[list->n]) != 0) {
            add_file_err(y->c, &ev.start_mark, d->name,
                "entry must be address/len with host bits zero");
            bad = 1;
        } else {
            list->n++;
        }
        skip_node(y, &ev);
        yaml_event_delete(&ev);
    }
    if (!bad && !y->failed)
        *(struct cfg_cidrs *)field(y->c, d) = *list;
    free(list);
    return !bad && !y->failed;
}

/* The value of key k, whose key was just read. */
static void
parse_value(struct yctx *y, enum cfg_key k)
{
    const struct key_desc *d = &keys[k];
    yaml_event_t           ev;
    const char            *m;
    char                   msg[128];

    if (read_node(y, &ev, d->name) != 0)
        return;
    if (is_null(&ev)) {
        /* Unset: the default applies (docs/config.md). */
    } else if (d->kind == K_CIDRS && ev.type == YAML_SEQUENCE_START_EVENT) {
        if (parse_cidrs(y, k))
            set_src_file(y->c, k, &ev.start_mark);
    } else if (d->kind == K_CIDRS || ev.type != YAML_SCALAR_EVENT) {
        add_file_err(y->c, &ev.start_mark, d->name,
            type_msg(d, msg, sizeof(msg)));
        skip_node(y, &ev);
    } else if (has_nul(&ev)) {
        add_file_err(y->c, &ev.start_mark, d->name,
            "must not contain NUL characters");
    } else if ((m = set_scalar(y->c, d, (const char *)ev.data.scalar.value,
                    ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE,
                    msg, sizeof(msg))) != NULL) {
        add_file_err(y->c, &ev.start_mark, d->name, m);
    } else {
        set_src_file(y->c, k, &ev.start_mark);
    }
    yaml_event_delete(&ev);
}

/* The first key of the section named by s[0..n), or CFG_KEY_NONE. */
static enum cfg_key
find_section(const char *s, size_t n)
{
    if (n == 0)
        return CFG_KEY_NONE;
    for (int k = 0; k < CFG_NKEYS; k++)
        if (section_len(keys[k].name) == n &&
            strncmp(keys[k].name, s, n) == 0)
            return (enum cfg_key)k;
    return CFG_KEY_NONE;
}

static void parse_map(struct yctx *y, const char *section);

/* A top-level key naming a section ("listen"). */
static void
parse_section(struct yctx *y, enum cfg_key first, const char *name,
    const yaml_mark_t *kmark)
{
    yaml_event_t ev;
    size_t       n = strlen(name);

    if (y->seen_sect[first]) {
        add_file_err(y->c, kmark, name, "duplicate key");
        if (read_node(y, &ev, name) == 0) {
            skip_node(y, &ev);
            yaml_event_delete(&ev);
        }
        return;
    }
    y->seen_sect[first] = 1;
    if (read_node(y, &ev, name) != 0)
        return;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        for (int k = first; k < CFG_NKEYS; k++) {
            if (section_len(keys[k].name) != n ||
                strncmp(keys[k].name, name, n) != 0)
                continue;
            y->c->priv->pline[k] = (unsigned)ev.start_mark.line + 1;
            y->c->priv->pcol[k] = (unsigned)ev.start_mark.column + 1;
        }
        parse_map(y, name);
    } else if (!is_null(&ev)) {
        add_file_err(y->c, &ev.start_mark, name, "must be a mapping");
        skip_node(y, &ev);
    }
    yaml_event_delete(&ev);
}

/* Skips the value that follows a rejected key. */
static void
skip_value(struct yctx *y)
{
    yaml_event_t ev;

    if (next_event(y, &ev) != 0)
        return;
    skip_node(y, &ev);
    yaml_event_delete(&ev);
}

/* One key of a mapping: ev is its (scalar) key event. */
static void
parse_key(struct yctx *y, const char *section, const yaml_event_t *ev)
{
    const char  *key = (const char *)ev->data.scalar.value;
    char        *full;
    size_t       n;
    enum cfg_key k, first;

    n = (section ? strlen(section) + 1 : 0) + strlen(key) + 1;
    if ((full = malloc(n)) == NULL) {
        y->c->priv->nomem = 1;
        y->failed = 1;
        return;
    }
    snprintf(full, n, "%s%s%s", section ? section : "", section ? "." : "",
        key);
    /* A literal dotted key is no key: nesting is spelled with mappings. */
    k = strchr(key, '.') || *key == '\0' || has_nul(ev) ? CFG_KEY_NONE
        : cfg_key_lookup(full);
    first = section == NULL && k == CFG_KEY_NONE && strchr(key, '.') == NULL
        ? find_section(key, strlen(key)) : CFG_KEY_NONE;
    if (first != CFG_KEY_NONE && *key != '\0') {
        parse_section(y, first, key, &ev->start_mark);
    } else if (k == CFG_KEY_NONE) {
        add_file_err(y->c, &ev->start_mark, full, "unknown key");
        skip_value(y);
    } else if (y->seen[k]) {
        add_file_err(y->c, &ev->start_mark, full, "duplicate key");
        skip_value(y);
    } else {
        y->seen[k] = 1;
        parse_value(y, k);
    }
    free(full);
}

/* Keys and values until MAPPING-END; the MAPPING-START is read. */
static void
parse_map(struct yctx *y, const char *section)
{
    yaml_event_t ev;

    for (;;) {
        if (read_node(y, &ev, section) != 0) {
            if (y->failed)
                return;
            skip_value(y);
            continue;
        }
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return;
        }
        if (ev.type == YAML_SCALAR_EVENT && !is_null(&ev)) {
            parse_key(y, section, &ev);
        } else {
            add_file_err(y->c, &ev.start_mark, section,
                "mapping keys must be names");
            skip_node(y, &ev);
            skip_value(y);
        }
        yaml_event_delete(&ev);
    }
}

/* One document; DOCUMENT-START is read.  Stops at DOCUMENT-END. */
static void
parse_document(struct yctx *y)
{
    yaml_event_t ev;

    if (read_node(y, &ev, NULL) != 0)
        return;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        parse_map(y, NULL);
    } else if (!is_null(&ev)) {
        add_file_err(y->c, &ev.start_mark, NULL,
            "the top level must be a mapping");
        skip_node(y, &ev);
    }
    yaml_event_delete(&ev);
    if (next_event(y, &ev) == 0)    /* DOCUMENT-END */
        yaml_event_delete(&ev);
}

int
cfg_load_yaml(struct cfg *c, const char *file, const char *text, size_t len)
{
    struct yctx *y;
    yaml_event_t ev;
    size_t       before = c->priv->nerrs;
    int          ndocs = 0, done = 0;

    free(c->priv->file);
    if ((c->priv->file = dup_str(c, file)) == NULL)
        return RLY_ERR_NOMEM;
    if ((y = calloc(1, sizeof(*y))) == NULL)
        return RLY_ERR_NOMEM;
    y->c = c;
    if (!yaml_parser_initialize(&y->parser)) {
        free(y);
        return RLY_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)text,
        len);
    while (!done && next_event(y, &ev) == 0) {
        if (ev.type == YAML_STREAM_END_EVENT) {
            done = 1;
        } else if (ev.type == YAML_DOCUMENT_START_EVENT && ++ndocs > 1) {
            add_file_err(c, &ev.start_mark, NULL,
                "only one YAML document is allowed");
            done = 1;
        } else if (ev.type == YAML_DOCUMENT_START_EVENT) {
            parse_document(y);
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y->parser);
    free(y);
    return status(c, before);
}

/* ------------------------------------------------------------------ */
/* Environment and command line */

int
cfg_apply_env(struct cfg *c, cfg_getenv_fn getenv_fn, void *ud)
{
    size_t      before = c->priv->nerrs;
    const char *v, *m;
    char        msg[128];

    for (int k = 0; k < CFG_NKEYS && getenv_fn != NULL; k++) {
        const struct key_desc *d = &keys[k];

        if (d->env == NULL || (v = getenv_fn(ud, d->env)) == NULL ||
            *v == '\0')
            continue;
        if ((m = set_scalar(c, d, v, 0, msg, sizeof(msg))) != NULL) {
            add_err(c, "environment %s: %s: %s", d->env, d->name, m);
            continue;
        }
        c->src[k].kind = CFG_SRC_ENV;
        c->src[k].line = c->src[k].col = 0;
    }
    return status(c, before);
}

/* The key whose flag is name[0..n), or CFG_KEY_NONE. */
static enum cfg_key
find_flag(const char *name, size_t n)
{
    for (int k = 0; k < CFG_NKEYS; k++)
        if (keys[k].flag != NULL && strlen(keys[k].flag) == n &&
            strncmp(keys[k].flag, name, n) == 0)
            return (enum cfg_key)k;
    return CFG_KEY_NONE;
}

enum cfg_key
cfg_flag_lookup(const char *arg, const char **value)
{
    const char *eq;
    size_t      n;

    *value = NULL;
    if (arg == NULL || strncmp(arg, "--", 2) != 0)
        return CFG_KEY_NONE;
    arg += 2;
    eq = strchr(arg, '=');
    n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    if (eq != NULL)
        *value = eq + 1;
    return find_flag(arg, n);
}

int
cfg_apply_flag(struct cfg *c, const char *name, const char *value)
{
    const struct key_desc *d;
    enum cfg_key           k;
    const char            *m;
    char                   msg[128];

    if (strncmp(name, "--", 2) == 0)
        name += 2;
    if ((k = find_flag(name, strlen(name))) == CFG_KEY_NONE)
        return RLY_ERR_NOTFOUND;
    d = &keys[k];
    if (value == NULL)
        m = "missing value";
    else
        m = set_scalar(c, d, value, 0, msg, sizeof(msg));
    if (m != NULL) {
        add_err(c, "command line --%s: %s: %s", d->flag, d->name, m);
        return c->priv->nomem ? RLY_ERR_NOMEM : RLY_ERR_INVAL;
    }
    c->src[k].kind = CFG_SRC_FLAG;
    c->src[k].line = c->src[k].col = 0;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Cross-key checks */

static void
check_ports(struct cfg *c)
{
    unsigned lo = c->port_min, hi = c->port_max, lp = c->listen_port;

    if (lo > hi) {
        if (cfg_key_is_set(c, CFG_KEY_port_max) &&
            !cfg_key_is_set(c, CFG_KEY_port_min))
            cfg_key_error(c, CFG_KEY_port_max,
                "must be at least relay.port_min (%u)", lo);
        else
            cfg_key_error(c, CFG_KEY_port_min,
                "must be at most relay.port_max (%u)", hi);
    } else if (lp >= lo && lp <= hi) {
        if (cfg_key_is_set(c, CFG_KEY_listen_port) ||
            !cfg_key_is_set(c, CFG_KEY_port_min))
            cfg_key_error(c, CFG_KEY_listen_port,
                "must be outside relay.port_min-relay.port_max (%u-%u)",
                lo, hi);
        else
            cfg_key_error(c, CFG_KEY_port_min,
                "range %u-%u must not include listen.port (%u)",
                lo, hi, lp);
    }
}

int
cfg_finish(struct cfg *c)
{

    if (c->public_ip4.family == ADDR_NONE &&
        c->public_ip6.family == ADDR_NONE)
        cfg_key_error(c, CFG_KEY_public_ip4,
            "at least one of public_ip4 and public_ip6 must be set");
    check_ports(c);
    if (c->portal_token != NULL && c->portal_url == NULL)
        cfg_key_error(c, CFG_KEY_portal_token,
            "portal.url must be set too");
    if (c->portal_url != NULL && c->portal_token == NULL)
        cfg_key_error(c, CFG_KEY_portal_url,
            "portal.token must be set too");
    if (c->group != NULL && c->user == NULL)
        cfg_key_error(c, CFG_KEY_group, "requires user");
    return status(c, 0);
}

struct cfg *
cfg_load(const struct cfg_input *in)
{
    struct cfg *c;

    if ((c = cfg_new()) == NULL)
        return NULL;
    if (in->file != NULL && in->text != NULL &&
        cfg_load_yaml(c, in->file, in->text, in->len) == RLY_ERR_NOMEM)
        goto nomem;
    if (in->getenv_fn != NULL &&
        cfg_apply_env(c, in->getenv_fn, in->getenv_ud) == RLY_ERR_NOMEM)
        goto nomem;
    for (size_t i = 0; i < in->nflags; i++) {
        const char *name = in->flags[i].name;
        int         rc = cfg_apply_flag(c, name, in->flags[i].value);

        if (rc == RLY_ERR_NOTFOUND)
            add_err(c, "command line %s%s: unknown option",
                strncmp(name, "--", 2) == 0 ? "" : "--", name);
        if (rc == RLY_ERR_NOMEM || c->priv->nomem)
            goto nomem;
    }
    if (cfg_finish(c) == RLY_ERR_NOMEM)
        goto nomem;
    return c;
nomem:
    cfg_free(c);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Errors and the table */

size_t
cfg_nerrors(const struct cfg *c)
{
    return c->priv->nerrs;
}

const char *
cfg_error(const struct cfg *c, size_t i)
{
    return i < c->priv->nerrs ? c->priv->errs[i] : NULL;
}

int
cfg_key_where(const struct cfg *c, enum cfg_key k, char *buf, size_t size)
{
    const struct key_desc *d;
    const struct cfg_src  *s;
    const char            *file = c->priv->file;

    if (file == NULL)
        file = CFG_PROG;
    if (!valid_key(k))
        return snprintf(buf, size, "%s: ", CFG_PROG);
    d = &keys[k];
    s = &c->src[k];
    switch (s->kind) {
    case CFG_SRC_FILE:
        return snprintf(buf, size, "%s:%u:%u: %s: ", file, s->line, s->col,
            d->name);
    case CFG_SRC_ENV:
        return snprintf(buf, size, "environment %s: %s: ", d->env, d->name);
    case CFG_SRC_FLAG:
        return snprintf(buf, size, "command line --%s: %s: ", d->flag,
            d->name);
    case CFG_SRC_DEFAULT:
        break;
    }
    if (c->priv->file != NULL)
        return snprintf(buf, size, "%s:%u:%u: %s: ", file,
            c->priv->pline[k], c->priv->pcol[k], d->name);
    return snprintf(buf, size, "%s: %s: ", CFG_PROG, d->name);
}

int
cfg_key_error(struct cfg *c, enum cfg_key k, const char *fmt, ...)
{
    char    *where, *msg;
    va_list  ap;
    int      n, w;

    w = cfg_key_where(c, k, NULL, 0);
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (w < 0 || n < 0)
        return RLY_ERR_INVAL;
    where = malloc((size_t)w + 1);
    msg = malloc((size_t)n + 1);
    if (where == NULL || msg == NULL) {
        free(where);
        free(msg);
        c->priv->nomem = 1;
        return RLY_ERR_NOMEM;
    }
    cfg_key_where(c, k, where, (size_t)w + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    add_err(c, "%s%s", where, msg);
    free(where);
    free(msg);
    return c->priv->nomem ? RLY_ERR_NOMEM : 0;
}

const char *
cfg_key_name(enum cfg_key k)
{
    return valid_key(k) ? keys[k].name : NULL;
}

const char *
cfg_key_env(enum cfg_key k)
{
    return valid_key(k) ? keys[k].env : NULL;
}

const char *
cfg_key_flag(enum cfg_key k)
{
    return valid_key(k) ? keys[k].flag : NULL;
}

int
cfg_key_reloadable(enum cfg_key k)
{
    return valid_key(k) ? keys[k].reload : 0;
}

int
cfg_key_is_set(const struct cfg *c, enum cfg_key k)
{
    return valid_key(k) && c->src[k].kind != CFG_SRC_DEFAULT;
}

enum cfg_key
cfg_key_lookup(const char *name)
{
    for (int k = 0; k < CFG_NKEYS; k++)
        if (strcmp(keys[k].name, name) == 0)
            return (enum cfg_key)k;
    return CFG_KEY_NONE;
}

/* ------------------------------------------------------------------ */
/* Using a configuration */

enum cfg_mode
cfg_mode(const struct cfg *c)
{
    return c->portal_token != NULL ? CFG_MODE_PORTAL : CFG_MODE_STANDALONE;
}

int
cfg_peer_policy(const struct cfg *c, struct peer_policy *out)
{
    const struct addr *ips[] = {
        &c->public_ip4, &c->bind_ip4, &c->public_ip6, &c->bind_ip6
    };
    int rc;

    peer_policy_init(out);
    for (uint32_t i = 0; i < c->peers_allow.n; i++)
        if ((rc = peer_policy_allow(out, &c->peers_allow.v[i])) != 0)
            return rc;
    for (uint32_t i = 0; i < c->peers_deny.n; i++)
        if ((rc = peer_policy_deny(out, &c->peers_deny.v[i])) != 0)
            return rc;
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        struct addr a = *ips[i];

        if (a.family == ADDR_NONE)
            continue;
        a.port = c->listen_port;
        if ((rc = peer_policy_listen(out, &a)) != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* -T dump */

struct dump {
    cfg_emit_fn emit;
    void       *ud;
};

static void
put(struct dump *o, const char *s)
{
    o->emit(o->ud, s, strlen(s));
}

/* A YAML double-quoted scalar. */
static void
put_quoted(struct dump *o, const char *s)
{
    const char *run = s;
    char        esc[8];

    put(o, "\"");
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch >= 0x20 && ch != 0x7f && ch != '"' && ch != '\\')
            continue;
        o->emit(o->ud, run, (size_t)(s - run));
        if (ch == '"' || ch == '\\')
            snprintf(esc, sizeof(esc), "\\%c", ch);
        else
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
        put(o, esc);
        run = s + 1;
    }
    o->emit(o->ud, run, (size_t)(s - run));
    put(o, "\"");
}

static void
put_addr(struct dump *o, const struct addr *a, int with_port)
{
    char buf[ADDR_STRLEN];

    if (a->family == ADDR_NONE) {
        put(o, "null");
        return;
    }
    if (with_port)
        addr_format(a, buf, sizeof(buf));
    else
        addr_format_ip(a, buf, sizeof(buf));
    put_quoted(o, buf);
}

static void
put_cidrs(struct dump *o, const struct cfg_cidrs *l)
{
    char buf[ADDR_STRLEN + 8];

    put(o, "[");
    for (uint32_t i = 0; i < l->n; i++) {
        if (i > 0)
            put(o, ", ");
        put_quoted(o, cidr_format(&l->v[i], buf, sizeof(buf)));
    }
    put(o, "]");
}

static void
put_value(struct dump *o, const struct cfg *c, enum cfg_key k)
{
    const struct key_desc *d = &keys[k];
    const void            *f = cfield(c, d);
    const char            *s;
    char                   num[24];

    switch (d->kind) {
    case K_PORT:
        snprintf(num, sizeof(num), "%u", (unsigned)*(const uint16_t *)f);
        put(o, num);
        break;
    case K_UINT:
        snprintf(num, sizeof(num), "%u", (unsigned)*(const uint32_t *)f);
        put(o, num);
        break;
    case K_U64:
        snprintf(num, sizeof(num), "%llu",
            (unsigned long long)*(const uint64_t *)f);
        put(o, cfg_key_is_set(c, k) ? num : "null");
        break;
    case K_IP:
    case K_PUBIP:
    case K_IPPORT:
        put_addr(o, f, d->kind == K_IPPORT);
        break;
    case K_STR:
    case K_PATH:
        s = *(char *const *)f;
        if (s == NULL)
            put(o, "null");
        else
            put_quoted(o, d->redact ? "<redacted>" : s);
        break;
    case K_BOOL:
        put(o, *(const int *)f ? "true" : "false");
        break;
    case K_ENUM:
        put(o, d->names[*(const int *)f]);
        break;
    case K_CIDRS:
        put_cidrs(o, f);
        break;
    }
}

void
cfg_dump(const struct cfg *c, cfg_emit_fn emit, void *ud)
{
    struct dump o = { emit, ud };
    const char *sect = NULL;
    size_t      slen = 0;

    for (int k = 0; k < CFG_NKEYS; k++) {
        const char *name = keys[k].name;
        size_t      n = section_len(name);

        if (n != 0 && (sect == NULL || n != slen ||
            strncmp(sect, name, n) != 0)) {
            o.emit(o.ud, name, n);
            put(&o, ":\n");
        }
        sect = n != 0 ? name : NULL;
        slen = n;
        put(&o, n != 0 ? "  " : "");
        put(&o, name + (n != 0 ? n + 1 : 0));
        put(&o, ": ");
        put_value(&o, c, (enum cfg_key)k);
        put(&o, "\n");
    }
}

struct dump_buf {
    char   *buf;
    size_t  size, len;
};

static void
emit_buf(void *ud, const char *s, size_t len)
{
    struct dump_buf *b = ud;

    if (b->len < b->size) {
        size_t room = b->size - b->len - 1;

        memcpy(b->buf + b->len, s, len < room ? len : room);
    }
    b->len += len;
}

size_t
cfg_dump_buf(const struct cfg *c, char *buf, size_t size)
{
    struct dump_buf b = { buf, size, 0 };

    cfg_dump(c, emit_buf, &b);
    if (size > 0)
        buf[b.len < size ? b.len : size - 1] = '\0';
    return b.len;
}

/* ------------------------------------------------------------------ */
/* Reload */

static int
addr_same(const struct addr *a, const struct addr *b)
{
    if (a->family != b->family)
        return 0;
    return a->family == ADDR_NONE ||
        (a->port == b->port && memcmp(a->ip, b->ip, sizeof(a->ip)) == 0);
}

static int
cidrs_same(const struct cfg_cidrs *a, const struct cfg_cidrs *b)
{
    if (a->n != b->n)
        return 0;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->v[i].len != b->v[i].len ||
            !addr_same(&a->v[i].net, &b->v[i].net))
            return 0;
    return 1;
}

static int
value_same(const struct cfg *a, const struct cfg *b, enum cfg_key k)
{
    const struct key_desc *d = &keys[k];
    const void            *fa = cfield(a, d), *fb = cfield(b, d);
    const char            *sa, *sb;

    switch (d->kind) {
    case K_PORT:
        return *(const uint16_t *)fa == *(const uint16_t *)fb;
    case K_UINT:
        return *(const uint32_t *)fa == *(const uint32_t *)fb;
    case K_U64:
        return cfg_key_is_set(a, k) == cfg_key_is_set(b, k) &&
            *(const uint64_t *)fa == *(const uint64_t *)fb;
    case K_IP:
    case K_PUBIP:
    case K_IPPORT:
        return addr_same(fa, fb);
    case K_STR:
    case K_PATH:
        sa = *(char *const *)fa;
        sb = *(char *const *)fb;
        return sa == sb || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
    case K_BOOL:
    case K_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case K_CIDRS:
        return cidrs_same(fa, fb);
    }
    return 0;
}

size_t
cfg_diff(const struct cfg *a, const struct cfg *b,
    enum cfg_key changed[CFG_NKEYS])
{
    size_t n = 0;

    for (int k = 0; k < CFG_NKEYS; k++)
        if (!value_same(a, b, (enum cfg_key)k))
            changed[n++] = (enum cfg_key)k;
    return n;
}

static size_t
sizeof_kind(enum kind kind)
{
    switch (kind) {
    case K_PORT:
        return sizeof(uint16_t);
    case K_UINT:
        return sizeof(uint32_t);
    case K_U64:
        return sizeof(uint64_t);
    case K_IP:
    case K_PUBIP:
    case K_IPPORT:
        return sizeof(struct addr);
    case K_STR:
    case K_PATH:
        return sizeof(char *);
    case K_BOOL:
    case K_ENUM:
        return sizeof(int);
    case K_CIDRS:
        return sizeof(struct cfg_cidrs);
    }
    return 0;
}

/* Copies key k's value and source from b into a.  Returns 0, or
 * RLY_ERR_NOMEM (a unchanged). */
static int
copy_value(struct cfg *a, const struct cfg *b, enum cfg_key k)
{
    const struct key_desc *d = &keys[k];
    char                  *s = NULL;

    if (d->kind == K_STR || d->kind == K_PATH) {
        const char *src = *(char *const *)cfield(b, d);

        if (src != NULL && (s = strdup(src)) == NULL)
            return RLY_ERR_NOMEM;
        free(*(char **)field(a, d));
        *(char **)field(a, d) = s;
    } else {
        memcpy(field(a, d), cfield(b, d), sizeof_kind(d->kind));
    }
    a->src[k] = b->src[k];
    return 0;
}

size_t
cfg_reload_apply(struct cfg *cur, const struct cfg *next, cfg_change_fn fn,
    void *ud)
{
    enum cfg_key changed[CFG_NKEYS];
    size_t       n, copied = 0;

    /* Values copied from next may point into next's file. */
    if (cur->priv->file == NULL && next->priv->file != NULL)
        cur->priv->file = strdup(next->priv->file);
    n = cfg_diff(cur, next, changed);
    for (size_t i = 0; i < n; i++) {
        enum cfg_key k = changed[i];

        if (fn != NULL)
            fn(ud, k, keys[k].name, keys[k].reload);
        if (keys[k].reload && copy_value(cur, next, k) == 0)
            copied++;
    }
    return copied;
}
