/* xdp.c - the XDP offload, master side: load, attach, mirror the bound
 * channels into the maps, counters, capabilities; see xdp.h and
 * docs/xdp.md.  Built only with --enable-xdp.
 *
 * The mirror.  Every channel in the maps has a record here holding both
 * map entries (c2p and p2c keys and values) and the allocation it belongs
 * to, indexed by each key (so a report finds what it replaces) and listed
 * per relay port (so a RELAY_CLOSE finds its channels).  The maps never
 * hold an entry without a record, and a record exists only while both of
 * its entries are in the maps.
 *
 * Ordering.  One worker's reports arrive in the order its core emitted
 * them, but the rings of two workers are drained in slot order, so a
 * report may be older than one already applied from another ring (a port
 * freed by one worker and taken by another).  Reports are therefore
 * checked against the shared table when applied: a CHAN_BOUND whose
 * allocation is no longer LIVE with that generation and port is stale
 * and ignored, and an UNBOUND or CLOSE removes only records of its own
 * allocation. */
#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdio.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "chan_ring.h"
#include "master/log.h"
#include "master/xdp.h"
#include "siphash.h"
#include "xdp/relay_xdp.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define XDP_RING_CAP        2048        /* records per worker (152 KiB) */
#define XDP_POP_BATCH       64
#define XDP_SWEEP_MS        100     /* deleted-allocation sweep */
#define XDP_MAX_BUCKETS     (1u << 20)
#define XDP_PORTS           65536

/* The object file's bytes, generated from relay_xdp.bpf.o. */
extern const unsigned char relay_xdp_obj[];
extern const size_t relay_xdp_obj_len;

struct mchan {
    struct rxdp_c2p_key     ck;
    struct rxdp_c2p_val     cv;
    struct rxdp_p2c_key     pk;
    struct rxdp_p2c_val     pv;
    struct atab_ref         ref;
    uint16_t                port;
    uint8_t                 seen;       /* resync mark */
    struct mchan           *next_c, *next_p;        /* hash chains */
    struct mchan           *prev_port, *next_port;  /* per relay port */
};

struct xdp {
    struct xdp_conf         conf;
    int                     ifindex;
    struct bpf_object      *obj;
    int                     link_fd;
    int                     c2p_fd, p2c_fd, stats_fd;
    int                     ncpus;

    void                   *rings;
    size_t                  rings_size;
    uint64_t               *lost_seen;  /* per worker slot */
    int                     efd;
    struct event           *ev_efd, *ev_sweep;

    struct siphash_key      hkey;
    struct mchan          **hc, **hp;   /* buckets by c2p / p2c key */
    uint32_t                hmask;
    struct mchan          **by_port;    /* XDP_PORTS list heads */
    uint32_t                count;
    int                     need_resync;
    int                     in_resync;
    uint64_t                map_errors;
};

/* --- libbpf's messages: debug only (the verifier log is long) --- */

static int
libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char    buf[512];
    size_t  n;

    if (level == LIBBPF_DEBUG)
        return 0;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n > 0)
        log_debug(log_get(), "libbpf: %s", buf);
    return 0;
}

/* --- Interface facts: MTU and own addresses --- */

/* The MTU, or -errno. */
static int
iface_mtu(const char *ifname)
{
    struct ifreq    ifr;
    int             fd, mtu;

    if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    mtu = ioctl(fd, SIOCGIFMTU, &ifr) == 0 ? ifr.ifr_mtu : -errno;
    close(fd);
    return mtu == 0 ? -EINVAL : mtu;
}

static void
add_local(struct rxdp_config *cfg, const struct addr *a)
{
    if (a->family == ADDR_V4) {
        for (unsigned i = 0; i < cfg->n_local4; i++)
            if (memcmp(cfg->local4[i], a->ip, 4) == 0)
                return;
        if (cfg->n_local4 < RXDP_MAX_LOCAL)
            memcpy(cfg->local4[cfg->n_local4++], a->ip, 4);
    } else if (a->family == ADDR_V6) {
        for (unsigned i = 0; i < cfg->n_local6; i++)
            if (memcmp(cfg->local6[i], a->ip, 16) == 0)
                return;
        if (cfg->n_local6 < RXDP_MAX_LOCAL)
            memcpy(cfg->local6[cfg->n_local6++], a->ip, 16);
    }
}

/* Adds the addresses of c->ifname of the wanted families: global ones
 * first, then link-local ones (while there is room). */
static void
add_iface_addresses(const struct xdp_conf *c, struct rxdp_config *cfg,
    int want4, int want6)
{
    struct ifaddrs *ifa, *i;

    if (getifaddrs(&ifa) != 0) {
        log_warn(log_get(), "XDP: cannot list the addresses of %s: %s",
            c->ifname, strerror(errno));
        return;
    }
    for (int link_local = 0; link_local < 2; link_local++) {
        for (i = ifa; i != NULL; i = i->ifa_next) {
            struct addr a;
            socklen_t   len;

            if (i->ifa_addr == NULL || strcmp(i->ifa_name, c->ifname) != 0)
                continue;
            len = i->ifa_addr->sa_family == AF_INET6 ?
                sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
            if (addr_from_sockaddr(&a, i->ifa_addr, len) != 0 ||
                (a.family == ADDR_V4 && !want4) ||
                (a.family == ADDR_V6 && !want6))
                continue;
            if ((a.family == ADDR_V6 && a.ip[0] == 0xfe &&
                (a.ip[1] & 0xc0) == 0x80) == link_local)
                add_local(cfg, &a);
        }
    }
    freeifaddrs(ifa);
}

/* The addresses datagrams must be sent to: the bind address when it is
 * specific (the sockets take nothing else); else xdp.int_ip4/6, the
 * public addresses (local unless behind a NAT) and the interface's own
 * addresses, up to RXDP_MAX_LOCAL per family. */
static void
local_addresses(const struct xdp_conf *c, struct rxdp_config *cfg)
{
    int want4 = c->have4 && addr_is_unspecified(&c->bind4);
    int want6 = c->have6 && addr_is_unspecified(&c->bind6);

    if (c->have4 && !want4)
        add_local(cfg, &c->bind4);
    if (c->have6 && !want6)
        add_local(cfg, &c->bind6);
    if (want4) {
        add_local(cfg, &c->int4);           /* ADDR_NONE: no-op */
        add_local(cfg, &c->public4);
    }
    if (want6) {
        add_local(cfg, &c->int6);
        add_local(cfg, &c->public6);
    }
    if (want4 || want6)
        add_iface_addresses(c, cfg, want4, want6);
}

static int
fill_config(const struct xdp *x, struct rxdp_config *cfg)
{
    const struct xdp_conf  *c = &x->conf;
    int                     mtu = iface_mtu(c->ifname);

    memset(cfg, 0, sizeof(*cfg));
    if (mtu < 0) {
        log_warn(log_get(), "XDP offload not attached: %s: cannot read the "
            "MTU: %s; running without offload", c->ifname, strerror(-mtu));
        return -1;
    }
    cfg->listen_port = htons(c->listen_port);
    cfg->port_min = c->port_min;
    cfg->port_max = c->port_max;
    cfg->mtu = (uint16_t)(mtu > 65535 ? 65535 : mtu);
    if (c->int4.family == ADDR_V4) {
        cfg->has_src4 = 1;
        memcpy(cfg->src4, c->int4.ip, 4);
    }
    if (c->int6.family == ADDR_V6) {
        cfg->has_src6 = 1;
        memcpy(cfg->src6, c->int6.ip, 16);
    }
    local_addresses(c, cfg);
    return 0;
}

/* --- Load and attach --- */

static const char *
hint(int err)
{
    switch (err) {
    case EPERM:
        return " (needs CAP_BPF and CAP_NET_ADMIN, or root)";
    case EACCES:
        return " (the verifier refused it: its log is at debug level)";
    case EOPNOTSUPP:
        return " (the driver has no native XDP: try xdp.mode: generic)";
    case EBUSY:
    case EEXIST:
        return " (another XDP program is attached)";
    default:
        return "";
    }
}

static int
load(struct xdp *x)
{
    LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "firezone_relay");
    struct bpf_map     *m;
    const char         *names[2] = { RXDP_MAP_C2P, RXDP_MAP_P2C };
    struct rxdp_config  cfg;
    uint32_t            zero = 0;
    int                 rc;

    libbpf_set_print(libbpf_print);
    if (fill_config(x, &cfg) != 0)
        return -1;
    x->obj = bpf_object__open_mem(relay_xdp_obj, relay_xdp_obj_len, &oo);
    if (x->obj == NULL) {
        rc = errno;
        log_warn(log_get(), "XDP offload not attached: opening the BPF "
            "object failed: %s; running without offload", strerror(rc));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        m = bpf_object__find_map_by_name(x->obj, names[i]);
        if (m == NULL || bpf_map__set_max_entries(m, x->conf.max_chans) != 0)
            goto bad_object;
    }
    if ((rc = bpf_object__load(x->obj)) != 0) {
        log_warn(log_get(), "XDP offload not attached: loading the BPF "
            "program failed: %s%s; running without offload",
            strerror(-rc), hint(-rc));
        return -1;
    }
    x->c2p_fd = bpf_object__find_map_fd_by_name(x->obj, RXDP_MAP_C2P);
    x->p2c_fd = bpf_object__find_map_fd_by_name(x->obj, RXDP_MAP_P2C);
    x->stats_fd = bpf_object__find_map_fd_by_name(x->obj, RXDP_MAP_STATS);
    rc = bpf_object__find_map_fd_by_name(x->obj, RXDP_MAP_CFG);
    if (x->c2p_fd < 0 || x->p2c_fd < 0 || x->stats_fd < 0 || rc < 0)
        goto bad_object;
    if (bpf_map_update_elem(rc, &zero, &cfg, BPF_ANY) != 0) {
        log_warn(log_get(), "XDP offload not attached: writing its "
            "configuration failed: %s; running without offload",
            strerror(errno));
        return -1;
    }
    return 0;
bad_object:
    log_warn(log_get(), "XDP offload not attached: the embedded BPF object "
        "lacks a map; running without offload");
    return -1;
}

static int
attach(struct xdp *x)
{
    LIBBPF_OPTS(bpf_link_create_opts, lo);
    struct bpf_program *p = bpf_object__find_program_by_name(x->obj,
        RXDP_PROG);
    int                 err;

    if (p == NULL) {
        log_warn(log_get(), "XDP offload not attached: the embedded BPF "
            "object lacks its program; running without offload");
        return -1;
    }
    lo.flags = x->conf.generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    x->link_fd = bpf_link_create(bpf_program__fd(p), x->ifindex, BPF_XDP,
        &lo);
    if (x->link_fd < 0) {
        err = -x->link_fd;
        x->link_fd = -1;
        log_warn(log_get(), "XDP offload not attached: attaching to %s in %s "
            "mode failed: %s%s; running without offload", x->conf.ifname,
            x->conf.generic ? "generic" : "native", strerror(err),
            hint(err));
        return -1;
    }
    return 0;
}

/* --- The mirror --- */

static uint32_t
hash_of(const struct xdp *x, const void *key, size_t len)
{
    return (uint32_t)siphash24(&x->hkey, key, len) & x->hmask;
}

static int
mirror_init(struct xdp *x)
{
    uint32_t    n = 64;
    uint8_t     k[16];

    while (n < x->conf.max_chans && n < XDP_MAX_BUCKETS)
        n <<= 1;
    x->hmask = n - 1;
    x->hc = calloc(n, sizeof(*x->hc));
    x->hp = calloc(n, sizeof(*x->hp));
    x->by_port = calloc(XDP_PORTS, sizeof(*x->by_port));
    x->lost_seen = calloc(x->conf.nworkers, sizeof(*x->lost_seen));
    if (x->hc == NULL || x->hp == NULL || x->by_port == NULL ||
        x->lost_seen == NULL)
        return -1;
    /* The keys come from clients and peers: a random SipHash key keeps
     * them from aiming at one bucket. */
    memset(k, 0, sizeof(k));
    if (getentropy(k, sizeof(k)) != 0)
        log_warn(log_get(), "XDP: getentropy: %s", strerror(errno));
    siphash_key_set(&x->hkey, k);
    return 0;
}

static struct mchan *
find_c(const struct xdp *x, const struct rxdp_c2p_key *k)
{
    struct mchan *m = x->hc[hash_of(x, k, sizeof(*k))];

    while (m != NULL && memcmp(&m->ck, k, sizeof(*k)) != 0)
        m = m->next_c;
    return m;
}

static struct mchan *
find_p(const struct xdp *x, const struct rxdp_p2c_key *k)
{
    struct mchan *m = x->hp[hash_of(x, k, sizeof(*k))];

    while (m != NULL && memcmp(&m->pk, k, sizeof(*k)) != 0)
        m = m->next_p;
    return m;
}

static void
map_error(struct xdp *x, const char *what, int err)
{
    /* Logged at the first error and then once per 1000: the relay keeps
     * working (user space relays what the maps miss). */
    if (x->map_errors++ % 1000 == 0)
        log_warn(log_get(), "XDP: %s failed: %s (%llu so far); those "
            "channels are relayed in user space", what, strerror(err),
            (unsigned long long)x->map_errors);
}

static void
unlink_chain(struct mchan **head, struct mchan *m, int by_c)
{
    struct mchan **pp = head;

    while (*pp != NULL && *pp != m)
        pp = by_c ? &(*pp)->next_c : &(*pp)->next_p;
    if (*pp == m)
        *pp = by_c ? m->next_c : m->next_p;
}

static void
mchan_remove(struct xdp *x, struct mchan *m)
{
    if (bpf_map_delete_elem(x->c2p_fd, &m->ck) != 0 && errno != ENOENT)
        map_error(x, "deleting a client entry", errno);
    if (bpf_map_delete_elem(x->p2c_fd, &m->pk) != 0 && errno != ENOENT)
        map_error(x, "deleting a peer entry", errno);
    unlink_chain(&x->hc[hash_of(x, &m->ck, sizeof(m->ck))], m, 1);
    unlink_chain(&x->hp[hash_of(x, &m->pk, sizeof(m->pk))], m, 0);
    if (m->prev_port != NULL)
        m->prev_port->next_port = m->next_port;
    else
        x->by_port[m->port] = m->next_port;
    if (m->next_port != NULL)
        m->next_port->prev_port = m->prev_port;
    x->count--;
    free(m);
}

/* Writes both entries and links the record; frees it on failure. */
static void
mchan_insert(struct xdp *x, struct mchan *m)
{
    uint32_t hc = hash_of(x, &m->ck, sizeof(m->ck));
    uint32_t hp = hash_of(x, &m->pk, sizeof(m->pk));

    if (bpf_map_update_elem(x->c2p_fd, &m->ck, &m->cv, BPF_ANY) != 0) {
        map_error(x, "adding a client entry", errno);
        free(m);
        return;
    }
    if (bpf_map_update_elem(x->p2c_fd, &m->pk, &m->pv, BPF_ANY) != 0) {
        map_error(x, "adding a peer entry", errno);
        bpf_map_delete_elem(x->c2p_fd, &m->ck);
        free(m);
        return;
    }
    m->next_c = x->hc[hc];
    x->hc[hc] = m;
    m->next_p = x->hp[hp];
    x->hp[hp] = m;
    m->prev_port = NULL;
    m->next_port = x->by_port[m->port];
    if (m->next_port != NULL)
        m->next_port->prev_port = m;
    x->by_port[m->port] = m;
    x->count++;
}

static uint8_t
fam_of(const struct addr *a)
{
    return a->family == ADDR_V4 ? RXDP_FAM_V4 : RXDP_FAM_V6;
}

/* The map entries of one bound channel; 0, or -1 for a record that
 * cannot be one (bad family). */
static int
build(const struct chan_ring_rec *r, struct mchan *m)
{
    memset(m, 0, sizeof(*m));
    if ((r->client.family != ADDR_V4 && r->client.family != ADDR_V6) ||
        (r->peer.family != ADDR_V4 && r->peer.family != ADDR_V6) ||
        r->local.family != r->client.family)
        return -1;
    memcpy(m->ck.ip, r->client.ip, 16);
    m->ck.port = htons(r->client.port);
    m->ck.number = htons(r->number);
    m->ck.family = fam_of(&r->client);
    memcpy(m->cv.peer_ip, r->peer.ip, 16);
    m->cv.peer_port = htons(r->peer.port);
    m->cv.relay_port = htons(r->port);
    m->cv.peer_family = fam_of(&r->peer);
    memcpy(m->pk.ip, r->peer.ip, 16);
    m->pk.port = htons(r->peer.port);
    m->pk.relay_port = htons(r->port);
    m->pk.family = fam_of(&r->peer);
    memcpy(m->pv.client_ip, r->client.ip, 16);
    memcpy(m->pv.local_ip, r->local.ip, 16);
    m->pv.client_port = htons(r->client.port);
    m->pv.number = htons(r->number);
    m->pv.client_family = fam_of(&r->client);
    m->ref = r->ref;
    m->port = r->port;
    return 0;
}

static int
same_ref(struct atab_ref a, struct atab_ref b)
{
    return a.idx == b.idx && a.gen == b.gen;
}

/* The allocation is LIVE, with this generation and port. */
static int
alloc_live(const struct xdp *x, struct atab_ref ref, uint16_t port)
{
    const struct atab_alloc *a = atab_alloc_get(x->conf.tab, ref);

    return a != NULL && atab_alloc_state(a) == ATAB_A_LIVE &&
        a->port == port;
}

static void
on_bound(struct xdp *x, const struct chan_ring_rec *r)
{
    struct mchan    n, *m, *old_c, *old_p;

    if (!alloc_live(x, r->ref, r->port) || build(r, &n) != 0)
        return;                         /* stale or not relayable */
    old_c = find_c(x, &n.ck);
    old_p = find_p(x, &n.pk);
    if (old_c != NULL && old_c == old_p && same_ref(old_c->ref, n.ref) &&
        memcmp(&old_c->cv, &n.cv, sizeof(n.cv)) == 0 &&
        memcmp(&old_c->pv, &n.pv, sizeof(n.pv)) == 0) {
        old_c->seen = 1;                /* a refresh: nothing changes */
        return;
    }
    /* Whatever held either key belongs to an allocation or binding that
     * is gone (the table keeps both keys unique). */
    if (old_c != NULL)
        mchan_remove(x, old_c);
    if (old_p != NULL && old_p != old_c)
        mchan_remove(x, old_p);
    if ((m = malloc(sizeof(*m))) == NULL) {
        map_error(x, "allocating a mirror record", ENOMEM);
        return;
    }
    *m = n;
    m->seen = 1;
    mchan_insert(x, m);
}

static void
on_unbound(struct xdp *x, const struct chan_ring_rec *r)
{
    struct mchan n, *m;

    if (build(r, &n) != 0)
        return;
    m = find_c(x, &n.ck);
    if (m != NULL && same_ref(m->ref, n.ref) &&
        memcmp(&m->pk, &n.pk, sizeof(n.pk)) == 0)
        mchan_remove(x, m);
}

static void
on_close(struct xdp *x, const struct chan_ring_rec *r)
{
    struct mchan *m = x->by_port[r->port], *next;

    for (; m != NULL; m = next) {
        next = m->next_port;
        if (same_ref(m->ref, r->ref))
            mchan_remove(x, m);
    }
}

static void
apply(struct xdp *x, const struct chan_ring_rec *r)
{
    switch (r->kind) {
    case CHAN_RING_BOUND:
        on_bound(x, r);
        break;
    case CHAN_RING_UNBOUND:
        on_unbound(x, r);
        break;
    case CHAN_RING_CLOSE:
        on_close(x, r);
        break;
    default:
        break;
    }
}

/* Applies every waiting report; notes rings that lost some. */
static void
drain(struct xdp *x)
{
    struct chan_ring_rec    buf[XDP_POP_BATCH];
    uint32_t                cap = XDP_RING_CAP;

    for (uint32_t s = 0; s < x->conf.nworkers; s++) {
        struct chan_ring   *r = chan_ring_at(x->rings, cap, s);
        size_t              n;

        while ((n = chan_ring_pop(r, buf, XDP_POP_BATCH)) > 0)
            for (size_t i = 0; i < n; i++)
                apply(x, &buf[i]);
        if (chan_ring_lost(r) != x->lost_seen[s])
            x->need_resync = 1;
    }
}

/* Removes the channels of allocations that are no longer LIVE: deleted by
 * another worker (SPEC §4.1 newest wins), whose owner reports the close
 * only at its next batch or timer tick (up to 1 s when the offload leaves
 * it idle), or released by a respawned worker without a close.  Every
 * XDP_SWEEP_MS: a pass over the relay port range costs microseconds. */
static void
sweep(struct xdp *x)
{
    for (uint32_t p = x->conf.port_min; p <= x->conf.port_max; p++) {
        struct mchan *m = x->by_port[p], *next;

        for (; m != NULL; m = next) {
            next = m->next_port;
            if (!alloc_live(x, m->ref, m->port))
                mchan_remove(x, m);
        }
    }
}

/* One committed BOUND channel of a LIVE allocation as a report, read
 * without the lock: the channel's generation is read before and after,
 * so a slot freed or reused meanwhile is skipped (its own reports
 * follow in the rings).  Past its deadline a record is gone (docs/core.md)
 * even before the owner's timer reports it, which after a worker died
 * waits for the respawn.  1 when *out is filled. */
static int
table_chan(const struct xdp *x, uint32_t i, uint64_t now,
    struct chan_ring_rec *out)
{
    const struct atab_chan  *c = atab_chan_at(x->conf.tab, i);
    const struct atab_alloc *a;
    uint32_t                 gen;

    gen = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&c->commit, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&c->state, __ATOMIC_RELAXED) != ATAB_C_BOUND ||
        c->expiry <= now)
        return 0;
    if ((a = atab_alloc_at(x->conf.tab, c->alloc)) == NULL ||
        !__atomic_load_n(&a->commit, __ATOMIC_ACQUIRE) ||
        atab_alloc_state(a) != ATAB_A_LIVE || a->gen != c->alloc_gen ||
        a->expiry <= now)
        return 0;
    memset(out, 0, sizeof(*out));
    out->kind = CHAN_RING_BOUND;
    out->port = a->port;
    out->number = c->number;
    out->ref.idx = c->alloc;
    out->ref.gen = c->alloc_gen;
    out->client = a->client;
    out->local = a->local;
    out->peer = c->peer;
    return __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE) == gen;
}

static void
resync(struct xdp *x)
{
    struct chan_ring_rec    r;
    struct timespec         ts;
    uint64_t                now;
    uint32_t                n = atab_max_chans(x->conf.tab);
    uint32_t                before, removed = 0;

    if (x->in_resync)
        return;
    x->in_resync = 1;
    /* Losses up to here are covered by this pass. */
    for (uint32_t s = 0; s < x->conf.nworkers; s++)
        x->lost_seen[s] = chan_ring_lost(chan_ring_at(x->rings,
            XDP_RING_CAP, s));
    x->need_resync = 0;
    /* Reports pushed before the scan go first; those pushed during or
     * after it describe later table states and go after (drain below). */
    drain(x);
    for (uint32_t p = 0; p < XDP_PORTS; p++)
        for (struct mchan *m = x->by_port[p]; m != NULL; m = m->next_port)
            m->seen = 0;
    /* The workers' clock (worker_clock()): monotonic milliseconds. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (uint32_t i = 0; i < n; i++)
        if (table_chan(x, i, now, &r))
            on_bound(x, &r);
    before = x->count;
    for (uint32_t p = 0; p < XDP_PORTS; p++) {
        struct mchan *m = x->by_port[p], *next;

        for (; m != NULL; m = next) {
            next = m->next_port;
            if (!m->seen)
                mchan_remove(x, m);
        }
    }
    removed = before - x->count;
    drain(x);
    x->in_resync = 0;
    log_debug(log_get(), "XDP: resync: %u channels offloaded, %u stale "
        "removed", x->count, removed);
}

static void
efd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct xdp *x = arg;
    uint64_t    v;

    while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
    drain(x);
    if (x->need_resync) {
        log_warn(log_get(), "XDP: a worker's channel ring overflowed; "
            "rebuilding the maps from the table");
        resync(x);
    }
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct xdp *x = arg;

    drain(x);
    sweep(x);
    if (x->need_resync)
        resync(x);
}

/* --- Life cycle --- */

static int
map_rings(struct xdp *x)
{
    size_t one = chan_ring_bytes(XDP_RING_CAP);

    x->rings_size = one * x->conf.nworkers;
    x->rings = mmap(NULL, x->rings_size, PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (x->rings == MAP_FAILED) {
        x->rings = NULL;
        return -1;
    }
    for (uint32_t s = 0; s < x->conf.nworkers; s++)
        if (chan_ring_init(chan_ring_at(x->rings, XDP_RING_CAP, s), one,
            XDP_RING_CAP) != 0)
            return -1;
    x->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return x->efd < 0 ? -1 : 0;
}

struct xdp *
xdp_open(const struct xdp_conf *conf)
{
    struct xdp *x;

    if ((x = calloc(1, sizeof(*x))) == NULL) {
        log_warn(log_get(), "XDP offload not attached: out of memory");
        return NULL;
    }
    x->conf = *conf;
    x->link_fd = x->efd = -1;
    if ((x->ifindex = (int)if_nametoindex(conf->ifname)) == 0) {
        log_warn(log_get(), "XDP offload not attached: xdp.interface %s: %s; "
            "running without offload", conf->ifname, strerror(errno));
        goto fail;
    }
    if (load(x) != 0 || attach(x) != 0)
        goto fail;
    if (map_rings(x) != 0 || mirror_init(x) != 0 ||
        (x->ncpus = libbpf_num_possible_cpus()) <= 0) {
        log_warn(log_get(), "XDP offload not attached: out of memory or "
            "descriptors: %s; running without offload", strerror(errno));
        goto fail;
    }
    log_info(log_get(), "XDP offload attached to %s (ifindex %d, %s mode, "
        "%u channels)", conf->ifname, x->ifindex,
        conf->generic ? "generic" : "native", conf->max_chans);
    return x;
fail:
    xdp_free(x);
    return NULL;
}

int
xdp_start(struct xdp *x, struct event_base *base)
{
    struct timeval every = { 0, XDP_SWEEP_MS * 1000 };

    if (x == NULL)
        return 0;
    x->ev_efd = event_new(base, x->efd, EV_READ | EV_PERSIST, efd_cb, x);
    x->ev_sweep = event_new(base, -1, EV_PERSIST, sweep_cb, x);
    if (x->ev_efd == NULL || x->ev_sweep == NULL ||
        event_add(x->ev_efd, NULL) != 0 ||
        event_add(x->ev_sweep, &every) != 0) {
        log_error(log_get(), "XDP: cannot register events (out of memory)");
        return -1;
    }
    return 0;
}

void
xdp_free(struct xdp *x)
{
    if (x == NULL)
        return;
    if (x->ev_efd != NULL)
        event_free(x->ev_efd);
    if (x->ev_sweep != NULL)
        event_free(x->ev_sweep);
    if (x->link_fd >= 0) {
        close(x->link_fd);              /* detaches the program */
        log_info(log_get(), "XDP offload detached from %s",
            x->conf.ifname);
    }
    bpf_object__close(x->obj);          /* NULL is fine */
    if (x->by_port != NULL)
        for (uint32_t p = 0; p < XDP_PORTS; p++)
            while (x->by_port[p] != NULL) {
                struct mchan *m = x->by_port[p];

                x->by_port[p] = m->next_port;
                free(m);
            }
    free(x->by_port);
    free(x->hc);
    free(x->hp);
    free(x->lost_seen);
    if (x->rings != NULL)
        munmap(x->rings, x->rings_size);
    if (x->efd >= 0)
        close(x->efd);
    free(x);
}

int
xdp_attached(const struct xdp *x)
{
    return x != NULL && x->link_fd >= 0;
}

void *
xdp_rings(const struct xdp *x)
{
    return x != NULL ? x->rings : NULL;
}

uint32_t
xdp_ring_cap(const struct xdp *x)
{
    return x != NULL ? XDP_RING_CAP : 0;
}

int
xdp_eventfd(const struct xdp *x)
{
    return x != NULL ? x->efd : -1;
}

void
xdp_stats_add(const struct xdp *x, struct turn_stats *sum)
{
    struct rxdp_stats  *per;
    uint32_t            zero = 0;

    if (x == NULL || x->ncpus <= 0)
        return;
    if ((per = calloc((size_t)x->ncpus, sizeof(*per))) == NULL)
        return;
    if (bpf_map_lookup_elem(x->stats_fd, &zero, per) == 0) {
        for (int i = 0; i < x->ncpus; i++) {
            sum->xdp_packets[TURN_DIR_C2P] += per[i].c2p_packets;
            sum->xdp_bytes[TURN_DIR_C2P] += per[i].c2p_bytes;
            sum->xdp_packets[TURN_DIR_P2C] += per[i].p2c_packets;
            sum->xdp_bytes[TURN_DIR_P2C] += per[i].p2c_bytes;
        }
    }
    free(per);
}

void
xdp_resync(struct xdp *x)
{
    if (x != NULL)
        resync(x);
}

/* --- Capabilities (SPEC §10.5) --- */

static int
caps_get(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

    return (int)syscall(SYS_capget, &h, d);
}

static int
caps_set(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

    return (int)syscall(SYS_capset, &h, d);
}

static void
cap_put(struct __user_cap_data_struct d[2], int cap, int on)
{
    uint32_t bit = 1u << (cap % 32);
    int      w = cap / 32;

    if (on) {
        d[w].effective |= bit;
        d[w].permitted |= bit;
    } else {
        d[w].effective &= ~bit;
        d[w].permitted &= ~bit;
        d[w].inheritable &= ~bit;
    }
}

int
xdp_caps_keep_begin(void)
{
    return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

int
xdp_caps_keep_end(void)
{
    struct __user_cap_data_struct d[2];

    /* After setuid the permitted set survived (KEEPCAPS) and the
     * effective one is empty: keep exactly the two. */
    memset(d, 0, sizeof(d));
    cap_put(d, CAP_BPF, 1);
    cap_put(d, CAP_NET_ADMIN, 1);
    if (caps_set(d) != 0)
        return -1;
    return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

int
xdp_caps_drop(void)
{
    struct __user_cap_data_struct d[2];

    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
        errno != EINVAL)
        return -1;
    if (caps_get(d) != 0)
        return -1;
    cap_put(d, CAP_BPF, 0);
    cap_put(d, CAP_NET_ADMIN, 0);
    return caps_set(d);
}
