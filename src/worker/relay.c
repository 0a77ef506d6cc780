/* relay.c - relay sockets of the allocations this worker owns (SPEC §2.1),
 * indexed by port for O(1) lookup on the hot path.
 *
 * One socket per relayed family on listen.bind_ip4 / [listen.bind_ip6] and
 * the allocation's port; IPv6 ones are IPv6-only, or binding [::]:P after
 * 0.0.0.0:P would fail.  Opening and closing are control-path work.
 *
 * What an allocation costs here is kept small (M3, docs/performance.md):
 * the port array is one anonymous mapping whose pages are faulted in only
 * for the ports in use, and the sockets go into the worker's own epoll
 * set, which libevent watches as one descriptor, instead of an event each
 * (a 128-byte struct event and libevent's per-descriptor record on the
 * heap).  An epoll entry names its socket by port and family, not by
 * pointer, so a report about a socket closed since is harmless. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "master/listen.h"
#include "master/log.h"
#include "worker/worker.h"

#define PORTS_BYTES (WORKER_PORTS * sizeof(struct relay_port))

int
relay_init(struct worker *w)
{
    void *p = mmap(NULL, PORTS_BYTES, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return -1;
    w->ports = p;
    w->rev = NULL;
    if ((w->repfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        return -1;
    w->rev = event_new(w->base, w->repfd, EV_READ | EV_PERSIST,
        udp_io_relay_cb, w);
    if (w->rev == NULL || event_add(w->rev, NULL) != 0)
        return -1;
    return 0;
}

void
relay_fini(struct worker *w)
{
    if (w->ports == NULL)
        return;
    for (size_t p = 0; p < WORKER_PORTS; p++)
        relay_close(w, (uint16_t)p);
    if (w->rev != NULL)
        event_free(w->rev);
    if (w->repfd >= 0)
        close(w->repfd);
    munmap(w->ports, PORTS_BYTES);
    w->ports = NULL;
    w->rev = NULL;
    w->repfd = -1;
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
open_family(struct worker *w, uint16_t port, int fam)
{
    struct relay_port  *rp = &w->ports[port];
    struct addr         a = fam == RT_FAM_V4 ? w->rt->bind4 : w->rt->bind6;
    struct epoll_event  ev;

    a.port = port;
    if ((rp->fd[fam] = bind_one(&a)) < 0)
        return -1;
    udp_io_gro_on(w, rp->fd[fam]);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = RELAY_EV_DATA(port, fam);
    return epoll_ctl(w->repfd, EPOLL_CTL_ADD, rp->fd[fam], &ev);
}

/* Closes the sockets of a port entry, open or half-opened. */
static void
close_fds(struct worker *w, struct relay_port *rp)
{
    for (int f = 0; f < 2; f++) {
        if (rp->fd[f] < 0)
            continue;
        (void)epoll_ctl(w->repfd, EPOLL_CTL_DEL, rp->fd[f], NULL);
        close(rp->fd[f]);
        rp->fd[f] = -1;
    }
}

int
relay_open(struct worker *w, uint16_t port, uint8_t families,
    struct atab_ref ref)
{
    struct relay_port  *rp = &w->ports[port];
    int                 saved;

    if (rp->open) {
        /* The core thinks this port closed: trust it, start afresh. */
        log_warn(log_get(), "relay port %u reopened", port);
        relay_close(w, port);
    }
    rp->ref = ref;
    rp->fd[RT_FAM_V4] = rp->fd[RT_FAM_V6] = -1;
    rp->nogso[RT_FAM_V4] = rp->nogso[RT_FAM_V6] = 0;
    if (((families & ATAB_FAM_V4) && open_family(w, port, RT_FAM_V4) != 0) ||
        ((families & ATAB_FAM_V6) && open_family(w, port, RT_FAM_V6) != 0)) {
        saved = errno;
        close_fds(w, rp);
        errno = saved;
        return -1;
    }
    rp->open = 1;
    return 0;
}

void
relay_close(struct worker *w, uint16_t port)
{
    struct relay_port *rp = &w->ports[port];

    if (!rp->open)
        return;
    close_fds(w, rp);
    rp->open = 0;
}
