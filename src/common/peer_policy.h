/* peer_policy.h - which peer addresses may be relayed to (SPEC §5.4).
 *
 * struct peer_policy is a plain value with fixed arrays, so the master can
 * copy it into the shared reload block (ARCHITECTURE §4) and a worker can
 * switch to a new one between batches.
 *
 * A peer's "forms" are its IP plus, for an IPv6 address in ::ffff:0:0/96
 * (IPv4-mapped), ::/96 (IPv4-compatible) or 64:ff9b::/96 (NAT64), the IPv4
 * address in its last 32 bits.  Exception: :: and ::1 are the IPv6
 * unspecified and loopback addresses, not IPv4-compatible ones (as
 * IN6_IS_ADDR_V4COMPAT has it), so they have no IPv4 form.  They stay
 * denied by the built-in ::/128 and ::1/128, and an allow entry for IPv4
 * (0.0.0.0/8, even 0.0.0.0/0) cannot un-deny them: only an IPv6 entry
 * covering them can.  The built-in list (always applied):
 * 0.0.0.0/8 ::/128 127.0.0.0/8 ::1/128 169.254.0.0/16 fe80::/10
 * 224.0.0.0/4 ff00::/8 240.0.0.0/4. */
#ifndef RLY_PEER_POLICY_H
#define RLY_PEER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define PEER_POLICY_MAX_CIDRS   256     /* per list */
#define PEER_POLICY_MAX_LISTEN  4

struct cidr {
    struct addr net;        /* port unused (0) */
    uint8_t     len;        /* prefix length: <= 32 (v4) or <= 128 (v6) */
};

struct peer_policy {
    uint32_t    nallow, ndeny, nlisten;
    struct cidr allow[PEER_POLICY_MAX_CIDRS];
    struct cidr deny[PEER_POLICY_MAX_CIDRS];    /* added to the built-ins */
    /* The relay's listen sockets: public_ip4, listen.bind_ip4, public_ip6,
     * listen.bind_ip6 (those set), all with port listen.port. */
    struct addr listen[PEER_POLICY_MAX_LISTEN];
};

/* Parses "address/len" or a bare address (/32 or /128).  The address is
 * a plain IPv4 dotted quad or IPv6 literal (no brackets, zone or spaces);
 * len is 1-3 decimal digits without sign or leading zero ("0" itself is
 * fine), at most 32 (IPv4) or 128 (IPv6).  Host bits must be zero
 * ("10.0.0.1/8" is refused, not masked).  Returns 0 or RLY_ERR_INVAL
 * (*out then unchanged). */
int cidr_parse(const char *s, struct cidr *out);
/* 1 when a's IP lies in c (same family; ports ignored), else 0. */
int cidr_contains(const struct cidr *c, const struct addr *a);
/* "10.0.0.0/8" or "2001:db8::/32" into buf (INET6_ADDRSTRLEN + 4 bytes
 * is always enough; truncated to size).  Returns buf. */
char *cidr_format(const struct cidr *c, char *buf, size_t size);

/* Starts an empty policy (no allow, no extra deny, no listen sockets). */
void peer_policy_init(struct peer_policy *p);
/* Append a copy.  Return 0, RLY_ERR_FULL past PEER_POLICY_MAX_CIDRS /
 * PEER_POLICY_MAX_LISTEN, or RLY_ERR_INVAL for a CIDR or address that is
 * neither IPv4 nor IPv6 (or a CIDR longer than its family allows).  A
 * listen address keeps its port (listen.port). */
int peer_policy_allow(struct peer_policy *p, const struct cidr *c);
int peer_policy_deny(struct peer_policy *p, const struct cidr *c);
int peer_policy_listen(struct peer_policy *p, const struct addr *a);

/* Why a peer is allowed or denied, for tests and debug logs. */
enum peer_verdict {
    PEER_DENY_PORT_ZERO = 0,    /* step 1: port 0 */
    PEER_DENY_LISTEN,           /* step 1: a form is a listen socket */
    PEER_ALLOW_LISTED,          /* step 3: a form is in peers.allow */
    PEER_DENY_BUILTIN,          /* step 4: a form is in the built-in list */
    PEER_DENY_LISTED,           /* step 4: a form is in peers.deny */
    PEER_ALLOW_DEFAULT,         /* step 5 */
    PEER_DENY_FAMILY            /* peer is neither IPv4 nor IPv6 */
};

/* SPEC §5.4 steps 1-5 for the peer (IP and port).  A listen socket
 * matches when a form of the peer equals a form of a listen address (IP)
 * and the ports are equal; a wildcard bind address (0.0.0.0, ::) matches
 * only itself (a peer of 0.0.0.0 or ::ffff:0.0.0.0 on listen.port), as
 * the relay does not know every local address.  The built-in list is
 * checked before peers.deny, so a peer in both reports
 * PEER_DENY_BUILTIN. */
enum peer_verdict peer_policy_check(const struct peer_policy *p,
    const struct addr *peer);
/* 1 when the verdict is an ALLOW one. */
int peer_policy_verdict_allows(enum peer_verdict v);
/* "port_zero", "listen", "allow", "builtin", "deny", "default",
 * "family". */
const char *peer_policy_verdict_name(enum peer_verdict v);

/* SPEC §5.4 steps 1-5.  Returns 1 when the peer (IP and port) may be
 * relayed to, 0 when denied (peer_policy_check() says why). */
int peer_policy_allowed(const struct peer_policy *p, const struct addr *peer);

#endif
