/* peer_policy.c - which peer addresses may be relayed to (SPEC §5.4).
 *
 * A peer has at most two forms (its IP and an embedded IPv4), and each
 * form is checked against short lists, so a check is a few dozen prefix
 * compares with no allocation: it runs at every ChannelBind. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "peer_policy.h"
#include "rly_err.h"

#define V4(a, b, c, d, l) \
    { .net = { .family = ADDR_V4, .ip = { a, b, c, d } }, .len = l }
#define V6(b0, b1, last, l) \
    { .net = { .family = ADDR_V6, .ip = { [0] = b0, [1] = b1, \
        [15] = last } }, .len = l }

static const struct cidr builtin_deny[] = {
    V4(0, 0, 0, 0, 8),          /* this network */
    V6(0, 0, 0, 128),           /* unspecified */
    V4(127, 0, 0, 0, 8),        /* loopback */
    V6(0, 0, 1, 128),
    V4(169, 254, 0, 0, 16),     /* link-local */
    V6(0xfe, 0x80, 0, 10),
    V4(224, 0, 0, 0, 4),        /* multicast */
    V6(0xff, 0x00, 0, 8),
    V4(240, 0, 0, 0, 4),        /* reserved, 255.255.255.255 included */
};

#define NBUILTIN (sizeof(builtin_deny) / sizeof(builtin_deny[0]))

/* The /96 prefixes whose last 32 bits are an IPv4 address. */
static const uint8_t pfx_mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};
static const uint8_t pfx_compat[12];
static const uint8_t pfx_nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

static unsigned
max_len(uint8_t family)
{
    return family == ADDR_V4 ? 32 : 128;
}

static int
parse_len(const char *s, unsigned *len)
{
    unsigned v = 0;
    size_t   n;

    for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
        v = v * 10 + (unsigned)(s[n] - '0');
    if (n == 0 || n > 3 || s[n] != '\0' || (n > 1 && s[0] == '0'))
        return RLY_ERR_INVAL;
    *len = v;
    return 0;
}

/* 1 when no bit beyond the first len bits of ip is set. */
static int
host_bits_zero(const uint8_t *ip, unsigned len, unsigned bits)
{
    for (unsigned i = len; i < bits; i++)
        if (ip[i / 8] & (0x80 >> (i % 8)))
            return 0;
    return 1;
}

int
cidr_parse(const char *s, struct cidr *out)
{
    char         buf[INET6_ADDRSTRLEN];
    const char  *slash = strchr(s, '/');
    size_t       n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    struct addr  a;
    unsigned     len;

    if (n == 0 || n >= sizeof(buf))
        return RLY_ERR_INVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (addr_parse_ip(&a, buf) != 0)
        return RLY_ERR_INVAL;
    len = max_len(a.family);
    if (slash != NULL && parse_len(slash + 1, &len) != 0)
        return RLY_ERR_INVAL;
    if (len > max_len(a.family) ||
        !host_bits_zero(a.ip, len, max_len(a.family)))
        return RLY_ERR_INVAL;
    out->net = a;
    out->len = (uint8_t)len;
    return 0;
}

int
cidr_contains(const struct cidr *c, const struct addr *a)
{
    unsigned whole = c->len / 8, rest = c->len % 8;

    if (a->family != c->net.family || a->family == ADDR_NONE ||
        c->len > max_len(a->family))
        return 0;
    if (memcmp(a->ip, c->net.ip, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a->ip[whole] ^ c->net.ip[whole]) & (0xff00 >> rest)) == 0;
}

char *
cidr_format(const struct cidr *c, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    addr_format_ip(&c->net, ip, sizeof(ip));
    snprintf(buf, size, "%s/%u", ip, (unsigned)c->len);
    return buf;
}

void
peer_policy_init(struct peer_policy *p)
{
    memset(p, 0, sizeof(*p));
}

static int
valid_cidr(const struct cidr *c)
{
    return (c->net.family == ADDR_V4 || c->net.family == ADDR_V6) &&
        c->len <= max_len(c->net.family);
}

int
peer_policy_allow(struct peer_policy *p, const struct cidr *c)
{
    if (!valid_cidr(c))
        return RLY_ERR_INVAL;
    if (p->nallow >= PEER_POLICY_MAX_CIDRS)
        return RLY_ERR_FULL;
    p->allow[p->nallow++] = *c;
    return 0;
}

int
peer_policy_deny(struct peer_policy *p, const struct cidr *c)
{
    if (!valid_cidr(c))
        return RLY_ERR_INVAL;
    if (p->ndeny >= PEER_POLICY_MAX_CIDRS)
        return RLY_ERR_FULL;
    p->deny[p->ndeny++] = *c;
    return 0;
}

int
peer_policy_listen(struct peer_policy *p, const struct addr *a)
{
    if (a->family != ADDR_V4 && a->family != ADDR_V6)
        return RLY_ERR_INVAL;
    if (p->nlisten >= PEER_POLICY_MAX_LISTEN)
        return RLY_ERR_FULL;
    p->listen[p->nlisten++] = *a;
    return 0;
}

/* Fills forms[0] with a's IP and forms[1] with its embedded IPv4, if any;
 * returns the count.  :: and ::1 are left out of ::/96 (see the header):
 * as IPv4 0.0.0.0 and 0.0.0.1 they would let an IPv4 allow entry reach
 * the IPv6 unspecified and loopback addresses. */
static unsigned
get_forms(const struct addr *a, struct addr forms[2])
{
    const uint8_t *ip = a->ip;

    forms[0] = *a;
    forms[0].port = 0;
    if (a->family != ADDR_V6)
        return 1;
    if (memcmp(ip, pfx_compat, 12) == 0) {
        if (ip[12] == 0 && ip[13] == 0 && ip[14] == 0 && ip[15] <= 1)
            return 1;
    } else if (memcmp(ip, pfx_mapped, 12) != 0 &&
        memcmp(ip, pfx_nat64, 12) != 0) {
        return 1;
    }
    addr_set4(&forms[1], ip + 12, 0);
    return 2;
}

static int
any_in(const struct cidr *list, size_t n, const struct addr *forms,
    unsigned nforms)
{
    for (unsigned f = 0; f < nforms; f++)
        for (size_t i = 0; i < n; i++)
            if (cidr_contains(&list[i], &forms[f]))
                return 1;
    return 0;
}

/* 1 when some form in a equals some form in b. */
static int
forms_meet(const struct addr *a, unsigned na, const struct addr *b,
    unsigned nb)
{
    for (unsigned i = 0; i < na; i++)
        for (unsigned j = 0; j < nb; j++)
            if (addr_ip_eq(&a[i], &b[j]))
                return 1;
    return 0;
}

static int
is_listen(const struct peer_policy *p, const struct addr *peer,
    const struct addr *forms, unsigned nforms)
{
    for (uint32_t i = 0; i < p->nlisten && i < PEER_POLICY_MAX_LISTEN; i++) {
        struct addr lforms[2];
        unsigned    nl;

        if (p->listen[i].port != peer->port)
            continue;
        nl = get_forms(&p->listen[i], lforms);
        if (forms_meet(forms, nforms, lforms, nl))
            return 1;
    }
    return 0;
}

static uint32_t
clamp_count(uint32_t n)
{
    return n < PEER_POLICY_MAX_CIDRS ? n : PEER_POLICY_MAX_CIDRS;
}

enum peer_verdict
peer_policy_check(const struct peer_policy *p, const struct addr *peer)
{
    struct addr forms[2];
    unsigned    nforms;

    if (peer->family != ADDR_V4 && peer->family != ADDR_V6)
        return PEER_DENY_FAMILY;
    if (peer->port == 0)
        return PEER_DENY_PORT_ZERO;
    nforms = get_forms(peer, forms);
    if (is_listen(p, peer, forms, nforms))
        return PEER_DENY_LISTEN;
    if (any_in(p->allow, clamp_count(p->nallow), forms, nforms))
        return PEER_ALLOW_LISTED;
    if (any_in(builtin_deny, NBUILTIN, forms, nforms))
        return PEER_DENY_BUILTIN;
    if (any_in(p->deny, clamp_count(p->ndeny), forms, nforms))
        return PEER_DENY_LISTED;
    return PEER_ALLOW_DEFAULT;
}

int
peer_policy_verdict_allows(enum peer_verdict v)
{
    return v == PEER_ALLOW_LISTED || v == PEER_ALLOW_DEFAULT;
}

const char *
peer_policy_verdict_name(enum peer_verdict v)
{
    switch (v) {
    case PEER_DENY_PORT_ZERO:   return "port_zero";
    case PEER_DENY_LISTEN:      return "listen";
    case PEER_ALLOW_LISTED:     return "allow";
    case PEER_DENY_BUILTIN:     return "builtin";
    case PEER_DENY_LISTED:      return "deny";
    case PEER_ALLOW_DEFAULT:    return "default";
    case PEER_DENY_FAMILY:      return "family";
    }
    return "?";
}

int
peer_policy_allowed(const struct peer_policy *p, const struct addr *peer)
{
    return peer_policy_verdict_allows(peer_policy_check(p, peer));
}
