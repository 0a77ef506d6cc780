/* peer_policy.h - which peer addresses may be relayed to (SPEC §5.4).
 *
 * struct peer_policy is a plain value with fixed arrays, so the master can
 * copy it into the shared reload block (ARCHITECTURE §4) and a worker can
 * switch to a new one between batches. */
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

/* Parses "address/len" or a bare address (/32 or /128).  Host bits must be
 * zero.  Returns 0 or RLY_ERR_INVAL. */
int cidr_parse(const char *s, struct cidr *out);
/* 1 when a's IP lies in c (same family). */
int cidr_contains(const struct cidr *c, const struct addr *a);
/* "10.0.0.0/8" */
char *cidr_format(const struct cidr *c, char *buf, size_t size);

/* Starts an empty policy (no allow, no extra deny, no listen sockets). */
void peer_policy_init(struct peer_policy *p);
/* Appends; RLY_ERR_FULL past PEER_POLICY_MAX_CIDRS / _MAX_LISTEN. */
int peer_policy_allow(struct peer_policy *p, const struct cidr *c);
int peer_policy_deny(struct peer_policy *p, const struct cidr *c);
int peer_policy_listen(struct peer_policy *p, const struct addr *a);

/* SPEC §5.4 steps 1-5.  Returns 1 when the peer (IP and port) may be
 * relayed to, 0 when denied. */
int peer_policy_allowed(const struct peer_policy *p, const struct addr *peer);

#endif
