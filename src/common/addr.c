/* addr.c - transport addresses; see addr.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "rly_err.h"

void
addr_set4(struct addr *a, const uint8_t ip[4], uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->family = ADDR_V4;
    a->port = port;
    memcpy(a->ip, ip, 4);
}

void
addr_set6(struct addr *a, const uint8_t ip[16], uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->family = ADDR_V6;
    a->port = port;
    memcpy(a->ip, ip, 16);
}

static size_t
ip_len(const struct addr *a)
{
    return a->family == ADDR_V4 ? 4 : 16;
}


char *
addr_format_ip(const struct addr *a, char *buf, size_t size)
{
    if (a->family == ADDR_V4 || a->family == ADDR_V6) {
        if (inet_ntop(a->family == ADDR_V4 ? AF_INET : AF_INET6, a->ip,
                buf, (socklen_t)size) != NULL)
            return buf;
    }
    snprintf(buf, size, "?");
    return buf;
}

char *
addr_format(const struct addr *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    addr_format_ip(a, ip, sizeof(ip));
    if (a->family == ADDR_V6)
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)a->port);
    else
        snprintf(buf, size, "%s:%u", ip, (unsigned)a->port);
    return buf;
}

int
addr_parse_ip(struct addr *a, const char *s)
{
    uint8_t ip[16];

    if (inet_pton(AF_INET, s, ip) == 1) {
        addr_set4(a, ip, 0);
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip) == 1) {
        addr_set6(a, ip, 0);
        return 0;
    }
    return RLY_ERR_INVAL;
}

static int
parse_port(const char *s, uint16_t *port)
{
    char         *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return RLY_ERR_INVAL;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 65535)
        return RLY_ERR_INVAL;
    *port = (uint16_t)v;
    return 0;
}

int
addr_parse_ip_port(struct addr *a, const char *s)
{
    char        host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    size_t      n;
    uint16_t    port;
    int         bracketed = *s == '[';

    if (bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return RLY_ERR_INVAL;
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return RLY_ERR_INVAL;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= sizeof(host))
        return RLY_ERR_INVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    if (parse_port(colon + 1, &port) != 0 || addr_parse_ip(a, host) != 0)
        return RLY_ERR_INVAL;
    /* "::1:80" without brackets is ambiguous: demand brackets for IPv6. */
    if ((a->family == ADDR_V6) != bracketed)
        return RLY_ERR_INVAL;
    a->port = port;
    return 0;
}

int
addr_is_unspecified(const struct addr *a)
{
    static const uint8_t zero[16];

    return memcmp(a->ip, zero, ip_len(a)) == 0;
}

socklen_t
addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == ADDR_V4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a->port);
        memcpy(&sin->sin_addr, a->ip, 4);
        return sizeof(*sin);
    }
    if (a->family == ADDR_V6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(a->port);
        memcpy(&sin6->sin6_addr, a->ip, 16);
        return sizeof(*sin6);
    }
    return 0;
}

int
addr_from_sockaddr(struct addr *a, const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        addr_set4(a, (const uint8_t *)&sin->sin_addr, ntohs(sin->sin_port));
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        addr_set6(a, (const uint8_t *)&sin6->sin6_addr, ntohs(sin6->sin6_port));
        return 0;
    }
    return RLY_ERR_INVAL;
}
