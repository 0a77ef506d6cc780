/* relay.c - relay sockets of the allocations this worker owns (SPEC §2.1),
 * indexed by port for O(1) lookup on the hot path.
 *
 * One socket per relayed family on listen.bind_ip4 / [listen.bind_ip6] and
 * the allocation's port; IPv6 ones are IPv6-only, or binding [::]:P after
 * 0.0.0.0:P would fail.  Opening and closing are control-path work and may
 * allocate. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/listen.h"
#include "master/log.h"
#include "worker/worker.h"

int
relay_init(struct worker *w)
{
    w->ports = calloc(WORKER_PORTS, sizeof(*w->ports));
    return w->ports == NULL ? -1 : 0;
}

void
relay_fini(struct worker *w)
{
    if (w->ports == NULL)
        return;
    for (size_t p = 0; p < WORKER_PORTS; p++)
        if (w->ports[p] != NULL)
            relay_close(w, (uint16_t)p);
    free(w->ports);
    w->ports = NULL;
}

/* Binds one relay socket; returns the fd or -1 with errno set. */
static int
bind_one(const struct addr *a)
{
    struct sockaddr_storage ss;
    socklen_t               len;
    int                     one = 1;
    int                     fd, saved;

    if ((len = addr_to_sockaddr(a, &ss)) == 0) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
        IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, len) != 0)
        goto fail;
    listen_sock_buffers(fd, LISTEN_SOCKBUF, NULL, NULL);
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static int
open_family(struct worker *w, struct relay_port *rp, int fam)
{
    struct relay_sock  *rs = &rp->s[fam];
    struct addr         a = fam == RT_FAM_V4 ? w->rt->bind4 : w->rt->bind6;

    a.port = rp->port;
    if ((rs->fd = bind_one(&a)) < 0)
        return -1;
    udp_io_gro_on(w, rs->fd);
    rs->ev = event_new(w->base, rs->fd, EV_READ | EV_PERSIST,
        udp_io_relay_cb, rs);
    if (rs->ev == NULL || event_add(rs->ev, NULL) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* Closes and frees a port entry (not indexed, or about to be unindexed). */
static void
free_port(struct relay_port *rp)
{
    for (int f = 0; f < 2; f++) {
        if (rp->s[f].ev != NULL)
            event_free(rp->s[f].ev);
        if (rp->s[f].fd >= 0)
            close(rp->s[f].fd);
    }
    free(rp);
}

int
relay_open(struct worker *w, uint16_t port, uint8_t families,
    struct atab_ref ref)
{
    struct relay_port  *rp;
    int                 saved;

    if (w->ports[port] != NULL) {
        /* The core thinks this port closed: trust it, start afresh. */
        log_warn(log_get(), "relay port %u reopened", port);
        relay_close(w, port);
    }
    if ((rp = calloc(1, sizeof(*rp))) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    rp->w = w;
    rp->ref = ref;
    rp->port = port;
    for (int f = 0; f < 2; f++) {
        rp->s[f].fd = -1;
        rp->s[f].rp = rp;
    }
    if (((families & ATAB_FAM_V4) && open_family(w, rp, RT_FAM_V4) != 0) ||
        ((families & ATAB_FAM_V6) && open_family(w, rp, RT_FAM_V6) != 0)) {
        saved = errno;
        free_port(rp);
        errno = saved;
        return -1;
    }
    w->ports[port] = rp;
    return 0;
}

void
relay_close(struct worker *w, uint16_t port)
{
    struct relay_port *rp = w->ports[port];

    if (rp == NULL)
        return;
    w->ports[port] = NULL;
    free_port(rp);
}
