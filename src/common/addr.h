/* addr.h - transport addresses (IP + UDP port) as plain values.
 *
 * struct addr is compared with addr_eq(), never memcmp() of whole structs
 * built elsewhere: unused bytes are zero only when built by these helpers.
 * Ports are host byte order.  No I/O here: sockaddr conversion only. */
#ifndef RLY_ADDR_H
#define RLY_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

enum addr_family {
    ADDR_NONE = 0,
    ADDR_V4   = 4,
    ADDR_V6   = 6
};

struct addr {
    uint8_t     family;     /* enum addr_family */
    uint8_t     pad;
    uint16_t    port;       /* host order */
    uint8_t     ip[16];     /* IPv4 in ip[0..3], rest zero */
};

/* A datagram's two ends: local is the address the datagram arrived at (or
 * leaves from), remote the other end. */
struct addr_path {
    struct addr local;
    struct addr remote;
};

/* Longest output of addr_format(), NUL included: "[v6]:65535". */
#define ADDR_STRLEN 56

/* Builds an address; ip is 4 or 16 bytes by family.  Zeroes unused bytes. */
void addr_set4(struct addr *a, const uint8_t ip[4], uint16_t port);
void addr_set6(struct addr *a, const uint8_t ip[16], uint16_t port);

/* Equal family and IP, ports ignored (only the 4 bytes of an IPv4 address
 * count).  Inline: the data path compares addresses several times per
 * datagram, and fixed-size loads beat a call to memcmp(). */
static inline int
addr_ip_eq(const struct addr *a, const struct addr *b)
{
    uint64_t x[2], y[2];
    uint32_t u, v;

    if (a->family != b->family || a->family == ADDR_NONE)
        return 0;
    if (a->family == ADDR_V4) {
        memcpy(&u, a->ip, 4);
        memcpy(&v, b->ip, 4);
        return u == v;
    }
    memcpy(x, a->ip, 16);
    memcpy(y, b->ip, 16);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* Equal family, IP and port. */
static inline int
addr_eq(const struct addr *a, const struct addr *b)
{
    return a->port == b->port && addr_ip_eq(a, b);
}

/* "192.0.2.1:3478" or "[2001:db8::1]:3478" into buf (ADDR_STRLEN bytes is
 * always enough).  Returns buf. */
char *addr_format(const struct addr *a, char *buf, size_t size);
/* Only the IP: "192.0.2.1" or "2001:db8::1". */
char *addr_format_ip(const struct addr *a, char *buf, size_t size);

/* Parses a bare IPv4 or IPv6 literal (no brackets, no port).  Returns 0 or
 * RLY_ERR_INVAL.  The port is set to 0. */
int addr_parse_ip(struct addr *a, const char *s);
/* Parses "IP:port" or "[IPv6]:port". */
int addr_parse_ip_port(struct addr *a, const char *s);

/* Nonzero for 0.0.0.0 or :: */
int addr_is_unspecified(const struct addr *a);

/* sockaddr conversion.  to_sockaddr returns the length written (0 when ss is
 * too small or the family unknown); from_sockaddr returns 0 or
 * RLY_ERR_INVAL.  An IPv4-mapped IPv6 sockaddr stays IPv6. */
socklen_t addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ss);
int addr_from_sockaddr(struct addr *a, const struct sockaddr *sa,
    socklen_t len);

#endif
