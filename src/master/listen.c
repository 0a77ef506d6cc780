/* listen.c - listen sockets with a trial bind; see listen.h.
 *
 * Why the trial bind: a bind with SO_REUSEPORT silently joins a group that
 * another process of the same user already holds on that address and port
 * (a coturn on 3478, say) and the kernel would split the traffic with it.
 * A plain bind fails with EADDRINUSE instead, and is closed at once. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master/listen.h"
#include "master/log.h"
#include "master/runtime.h"

void
listen_sock_buffers(int fd, int size, int *rcv, int *snd)
{
    socklen_t len;
    int       v;

    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (rcv != NULL) {
        len = sizeof(v);
        *rcv = getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 ? v : -1;
    }
    if (snd != NULL) {
        len = sizeof(v);
        *snd = getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0 ? v : -1;
    }
}

/* A UDP socket for a's family; IPv6 ones are IPv6-only.  -1 on error. */
static int
open_udp(const struct addr *a, int reuseport)
{
    int one = 1;
    int fd;

    fd = socket(a->family == ADDR_V6 ? AF_INET6 : AF_INET,
        SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if ((a->family == ADDR_V6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
        &one, sizeof(one)) != 0) || (reuseport && setsockopt(fd,
        SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int
bind_addr(int fd, const struct addr *a)
{
    struct sockaddr_storage ss;
    socklen_t               len = addr_to_sockaddr(a, &ss);

    if (len == 0) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return bind(fd, (struct sockaddr *)&ss, len);
}

/* The trial bind without SO_REUSEPORT (SPEC §2.1). */
static int
trial_bind(const struct addr *a)
{
    char    name[ADDR_STRLEN];
    int     fd;

    if ((fd = open_udp(a, 0)) < 0 || bind_addr(fd, a) != 0) {
        log_error(log_get(), "cannot bind %s: %s",
            addr_format(a, name, sizeof(name)), strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* One listen socket with packet info enabled. */
static int
open_listen(const struct addr *a, int *rcv, int *snd)
{
    char    name[ADDR_STRLEN];
    int     one = 1;
    int     fd;

    if ((fd = open_udp(a, 1)) < 0)
        goto fail;
    if (a->family == ADDR_V6) {
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
            sizeof(one)) != 0)
            goto fail;
    } else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one,
        sizeof(one)) != 0) {
        goto fail;
    }
    listen_sock_buffers(fd, LISTEN_SOCKBUF, rcv, snd);
    if (bind_addr(fd, a) != 0)
        goto fail;
    return fd;
fail:
    log_error(log_get(), "cannot open listen socket %s: %s",
        addr_format(a, name, sizeof(name)), strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int
open_group(struct listen_set *ls, int fam, const struct addr *a)
{
    char    name[ADDR_STRLEN];
    int     rcv = -1, snd = -1;

    if (trial_bind(a) != 0)
        return -1;
    for (uint32_t s = 0; s < ls->nslots; s++)
        if ((ls->fd[s][fam] = open_listen(a, &rcv, &snd)) < 0)
            return -1;
    log_info(log_get(), "listening on %s (%u sockets), buffers: receive %d, "
        "send %d bytes", addr_format(a, name, sizeof(name)), ls->nslots,
        rcv, snd);
    if (rcv < LISTEN_SOCKBUF || snd < LISTEN_SOCKBUF)
        log_warn(log_get(), "socket buffers below %d bytes: raise "
            "net.core.rmem_max and net.core.wmem_max", LISTEN_SOCKBUF);
    return 0;
}

int
listen_open(struct listen_set *ls, uint32_t nslots,
    const struct addr *bind4, const struct addr *bind6)
{
    ls->nslots = nslots;
    ls->fd = calloc(nslots, sizeof(*ls->fd));
    if (ls->fd == NULL) {
        log_error(log_get(), "out of memory");
        return -1;
    }
    for (uint32_t s = 0; s < nslots; s++)
        ls->fd[s][RT_FAM_V4] = ls->fd[s][RT_FAM_V6] = -1;
    if (bind4 != NULL && open_group(ls, RT_FAM_V4, bind4) != 0)
        return -1;
    if (bind6 != NULL && open_group(ls, RT_FAM_V6, bind6) != 0)
        return -1;
    return 0;
}

void
listen_close(struct listen_set *ls)
{
    if (ls->fd == NULL)
        return;
    for (uint32_t s = 0; s < ls->nslots; s++)
        for (int f = 0; f < 2; f++)
            if (ls->fd[s][f] >= 0)
                close(ls->fd[s][f]);
    free(ls->fd);
    ls->fd = NULL;
}
