/* listen.h - the client-facing UDP sockets (SPEC §2.1): one per worker slot
 * and configured public family, bound with SO_REUSEPORT to listen.bind_ip4
 * / [listen.bind_ip6] : listen.port, opened by the master before forking
 * and kept open for its whole life, so that a worker's death does not
 * reshuffle the kernel's choice of socket for a client. */
#ifndef RLY_MASTER_LISTEN_H
#define RLY_MASTER_LISTEN_H

#include <stdint.h>

#include "addr.h"

#define LISTEN_SOCKBUF  (4 * 1024 * 1024)   /* SPEC §2.1 */

struct listen_set {
    uint32_t    nslots;
    int       (*fd)[2];         /* [slot][RT_FAM_V4 / RT_FAM_V6], -1 unset */
};

/* Opens the sockets of nslots slots for each non-NULL bind address (its
 * port is listen.port).  Before each SO_REUSEPORT group, a trial bind of
 * the same address without SO_REUSEPORT: if another process holds the
 * port, it logs the address and the error and fails.  Returns 0, or -1
 * (logged; the caller exits 1). */
int listen_open(struct listen_set *ls, uint32_t nslots,
    const struct addr *bind4, const struct addr *bind6);
void listen_close(struct listen_set *ls);      /* safe after a failure */

/* Asks for size-byte receive and send buffers: SO_RCVBUFFORCE and
 * SO_SNDBUFFORCE when privileged, else SO_RCVBUF and SO_SNDBUF (capped by
 * the kernel).  Stores the sizes obtained (as getsockopt reports them) in
 * *rcv and *snd when not NULL. */
void listen_sock_buffers(int fd, int size, int *rcv, int *snd);

#endif
