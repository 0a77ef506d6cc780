/* relay_xdp.bpf.c - the XDP offload of the ChannelData path (SPEC §1,
 * §2.11; docs/xdp.md).  Compiled by clang for the BPF target and embedded
 * in the binary; loaded and fed by the master (src/master/xdp.c).
 *
 * On the interface it is attached to, it relays the two hot cases itself
 * and sends the result back out of the same interface (XDP_TX):
 *
 *   client -> listen port, ChannelData of a bound (client, channel):
 *       the 4-byte header is stripped and the payload goes to the peer
 *       from the allocation's relay port (SPEC §2.11.2);
 *   peer -> relay port, from a peer with a bound channel:
 *       a ChannelData header {number, length} is prepended and the result
 *       goes to the client from the listen port (SPEC §2.11.3).
 *
 * Both families and both cross-family cases.  The frame goes back to the
 * neighbour it came from (source and destination MACs swapped): the
 * interface must reach clients and peers through one router, as a cloud
 * or hosted machine does (docs/xdp.md).  IP headers are rebuilt (TTL /
 * hop limit 64, IPv4 with DF and a fresh header checksum), and the UDP
 * checksum is updated incrementally (RFC 1624): the payload keeps its
 * 16-bit alignment because the header added or removed is 4 bytes long.
 *
 * Everything else goes to user space unchanged (XDP_PASS), which applies
 * every rule of SPEC.md: STUN, unknown channels, ChannelData whose length
 * is not exactly the datagram's (padding), IPv4 fragments and options,
 * IPv6 extension headers, VLAN tags, datagrams to addresses that are not
 * the relay's, a peer or client that is the relay itself (hairpin), IPv4
 * datagrams without a UDP checksum headed for IPv6, results larger than
 * the MTU, and cross-family cases without xdp.int_ip4 / xdp.int_ip6.
 *
 * The maps are written only by the master, which mirrors the bound
 * channels the workers report; the program only reads them, so it never
 * relays for a channel that user space would refuse, except for the few
 * microseconds the master needs to apply an unbind. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "relay_xdp.h"

#define IP4_HLEN        20
#define IP6_HLEN        40
#define UDP_HLEN        8
#define CD_HLEN         4
#define TTL_OUT         64
#define UDP_MAX4        65507   /* largest UDP payload (SPEC §2.11.4) */
#define UDP_MAX6        65527
#define IP4_DF          0x4000
#define IP4_FRAG_MASK   0x3fff  /* MF and the fragment offset */

/* Sizes are set by the loader (limits.max_channels) before loading. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct rxdp_c2p_key);
    __type(value, struct rxdp_c2p_val);
} rxdp_c2p SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct rxdp_p2c_key);
    __type(value, struct rxdp_p2c_val);
} rxdp_p2c SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rxdp_config);
} rxdp_cfg SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rxdp_stats);
} rxdp_stats SEC(".maps");

/* One datagram as received: what the rewrite needs once the headers have
 * moved. */
struct flow {
    __u8    src[16];
    __u8    dst[16];
    __u8    mac_src[ETH_ALEN];
    __u8    mac_dst[ETH_ALEN];
    __be16  sport;
    __be16  dport;
    __be16  ulen_be;            /* UDP length field */
    __be16  id;                 /* IPv4 identification, else 0 */
    __u16   check;              /* UDP checksum field, raw */
    __u16   ulen;               /* UDP length, host order */
};

static __always_inline int
hlen_of(int fam)
{
    return fam == RXDP_FAM_V4 ? IP4_HLEN : IP6_HLEN;
}

/* Ethernet, IP without options or extension headers, UDP whose length
 * agrees with the IP length and lies inside the frame.  0, or -1 to pass.
 *
 * Packet pointers only ever move by constants: the verifier refuses a
 * variable offset to a program loaded without CAP_PERFMON (Spectre v1
 * hardening), and the relay may load it with CAP_BPF and CAP_NET_ADMIN
 * alone (docs/xdp.md).  Lengths are compared as numbers instead, against
 * bpf_xdp_get_buff_len() (the whole frame: this program takes no
 * multi-buffer frames, so that is the linear part). */
static __always_inline int
parse(struct xdp_md *ctx, struct flow *f, int fam)
{
    void           *data = (void *)(long)ctx->data;
    void           *end = (void *)(long)ctx->data_end;
    struct ethhdr  *eth = data;
    struct udphdr  *udp;
    __u16           ulen;

    /* Zeroed whole: an IPv4 address fills 4 of the 16 bytes, and the
     * verifier lets a privileged program read stack it never wrote. */
    __builtin_memset(f, 0, sizeof(*f));
    if ((void *)(eth + 1) > end)
        return -1;
    __builtin_memcpy(f->mac_src, eth->h_source, ETH_ALEN);
    __builtin_memcpy(f->mac_dst, eth->h_dest, ETH_ALEN);
    if (fam == RXDP_FAM_V4) {
        struct iphdr *ip = (void *)(eth + 1);

        if ((void *)(ip + 1) > end)
            return -1;
        if (ip->version != 4 || ip->ihl != 5 ||
            ip->protocol != IPPROTO_UDP ||
            (ip->frag_off & bpf_htons(IP4_FRAG_MASK)) != 0)
            return -1;
        udp = (void *)(ip + 1);
        if ((void *)(udp + 1) > end)
            return -1;
        ulen = bpf_ntohs(udp->len);
        if (bpf_ntohs(ip->tot_len) != (__u32)IP4_HLEN + ulen)
            return -1;
        __builtin_memcpy(f->src, &ip->saddr, 4);
        __builtin_memcpy(f->dst, &ip->daddr, 4);
        f->id = ip->id;
    } else {
        struct ipv6hdr *ip6 = (void *)(eth + 1);

        if ((void *)(ip6 + 1) > end)
            return -1;
        if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
            return -1;
        udp = (void *)(ip6 + 1);
        if ((void *)(udp + 1) > end)
            return -1;
        ulen = bpf_ntohs(udp->len);
        if (bpf_ntohs(ip6->payload_len) != ulen)
            return -1;
        __builtin_memcpy(f->src, &ip6->saddr, 16);
        __builtin_memcpy(f->dst, &ip6->daddr, 16);
        f->id = 0;
    }
    if (ulen < UDP_HLEN ||
        ETH_HLEN + hlen_of(fam) + (__u64)ulen > bpf_xdp_get_buff_len(ctx))
        return -1;
    f->sport = udp->source;
    f->dport = udp->dest;
    f->ulen_be = udp->len;
    f->ulen = ulen;
    f->check = udp->check;
    return 0;
}

static __always_inline int
same4(const __u8 *a, const __u8 *b)
{
    __u32 x, y;

    __builtin_memcpy(&x, a, 4);
    __builtin_memcpy(&y, b, 4);
    return x == y;
}

static __always_inline int
same16(const __u8 *a, const __u8 *b)
{
    __u64 x[2], y[2];

    __builtin_memcpy(x, a, 16);
    __builtin_memcpy(y, b, 16);
    return x[0] == y[0] && x[1] == y[1];
}

/* ip is one of the relay's addresses on this interface. */
static __always_inline int
is_local(const struct rxdp_config *cfg, int fam, const __u8 *ip)
{
#pragma unroll
    for (int i = 0; i < RXDP_MAX_LOCAL; i++) {
        if (fam == RXDP_FAM_V4) {
            if (i < cfg->n_local4 && same4(cfg->local4[i], ip))
                return 1;
        } else {
            if (i < cfg->n_local6 && same16(cfg->local6[i], ip))
                return 1;
        }
    }
    return 0;
}

/* --- Checksums: 16-bit one's complement sums of network-order words --- */

static __always_inline __u32
sum_ip(__u32 s, const __u8 *ip, int fam, int negate)
{
    __u16 w[8];

    __builtin_memcpy(w, ip, 16);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        if (fam == RXDP_FAM_V4 && i >= 2)
            break;
        s += negate ? (__u16)~w[i] : w[i];
    }
    return s;
}

static __always_inline __u32
sum_add(__u32 s, __u16 w)
{
    return s + w;
}

static __always_inline __u32
sum_sub(__u32 s, __u16 w)
{
    return s + (__u16)~w;
}

static __always_inline __u16
sum_fold(__u32 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)s;
}

/* The words that change between the received and the sent datagram:
 * pseudo-header addresses and length (the protocol word is the same in
 * both families), the UDP header, and the ChannelData header on the side
 * that has one. */
struct rewrite {
    __u8    src[16];
    __u8    dst[16];
    __be16  sport;
    __be16  dport;
    __be16  cd[2];              /* number, length (network order) */
    __u16   ulen;               /* new UDP length, host order */
    __u8    fam;                /* of the datagram sent */
    __u8    c2p;                /* the header is removed (else added) */
};

/* New UDP checksum from the old (RFC 1624 eqn. 3).  Never 0: that means
 * "none" (IPv4) or is invalid (IPv6). */
static __always_inline __u16
udp_check(const struct flow *f, int fam_in, const struct rewrite *r)
{
    __u32 s = (__u16)~f->check;

    s = sum_ip(s, f->src, fam_in, 1);
    s = sum_ip(s, f->dst, fam_in, 1);
    s = sum_sub(s, f->sport);
    s = sum_sub(s, f->dport);
    s = sum_sub(s, f->ulen_be);
    s = sum_sub(s, f->ulen_be);
    s = sum_ip(s, r->src, r->fam, 0);
    s = sum_ip(s, r->dst, r->fam, 0);
    s = sum_add(s, r->sport);
    s = sum_add(s, r->dport);
    s = sum_add(s, bpf_htons(r->ulen));
    s = sum_add(s, bpf_htons(r->ulen));
    if (r->c2p) {
        s = sum_sub(s, r->cd[0]);
        s = sum_sub(s, r->cd[1]);
    } else {
        s = sum_add(s, r->cd[0]);
        s = sum_add(s, r->cd[1]);
    }
    s = (__u16)~sum_fold(s);
    return s == 0 ? 0xffff : (__u16)s;
}

static __always_inline void
ip4_build(struct iphdr *h, const struct rewrite *r, __be16 id)
{
    __u16   w[IP4_HLEN / 2];
    __u32   s = 0;

    h->version = 4;
    h->ihl = 5;
    h->tos = 0;
    h->tot_len = bpf_htons(IP4_HLEN + r->ulen);
    h->id = id;
    h->frag_off = bpf_htons(IP4_DF);
    h->ttl = TTL_OUT;
    h->protocol = IPPROTO_UDP;
    h->check = 0;
    __builtin_memcpy(&h->saddr, r->src, 4);
    __builtin_memcpy(&h->daddr, r->dst, 4);
    __builtin_memcpy(w, h, IP4_HLEN);
#pragma unroll
    for (int i = 0; i < IP4_HLEN / 2; i++)
        s += w[i];
    h->check = (__u16)~sum_fold(s);
}

static __always_inline void
ip6_build(struct ipv6hdr *h, const struct rewrite *r)
{
    __builtin_memset(h, 0, sizeof(*h));
    h->version = 6;
    h->payload_len = bpf_htons(r->ulen);
    h->nexthdr = IPPROTO_UDP;
    h->hop_limit = TTL_OUT;
    __builtin_memcpy(&h->saddr, r->src, 16);
    __builtin_memcpy(&h->daddr, r->dst, 16);
}

/* Moves the payload's head to fit the new headers, then writes them.
 * Returns an XDP action: XDP_TX, XDP_PASS when the frame could not be
 * resized (it is unchanged then), XDP_DROP when the new headers do not
 * fit after all (cannot happen: the lengths were checked). */
static __always_inline int
rewrite_frame(struct xdp_md *ctx, const struct flow *f, int fam_in,
    const struct rewrite *r, __u16 check)
{
    int             hin = hlen_of(fam_in), hout = hlen_of(r->fam);
    int             delta;
    __s64           extra;
    void           *data, *end;
    struct ethhdr  *eth;
    struct udphdr  *udp;

    /* Ethernet padding after a short datagram: cut, or it would trail
     * the new one. */
    extra = (__s64)bpf_xdp_get_buff_len(ctx) - (ETH_HLEN + hin + f->ulen);
    if (extra > 0 && extra < 64 && bpf_xdp_adjust_tail(ctx, (int)-extra))
        return XDP_PASS;
    delta = r->c2p ? (hin + UDP_HLEN + CD_HLEN) - (hout + UDP_HLEN) :
        (hin + UDP_HLEN) - (hout + UDP_HLEN + CD_HLEN);
    if (bpf_xdp_adjust_head(ctx, delta))
        return XDP_PASS;

    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_DROP;
    __builtin_memcpy(eth->h_dest, f->mac_src, ETH_ALEN);
    __builtin_memcpy(eth->h_source, f->mac_dst, ETH_ALEN);
    if (r->fam == RXDP_FAM_V4) {
        struct iphdr *ip = (void *)(eth + 1);

        if ((void *)(ip + 1) > end)
            return XDP_DROP;
        eth->h_proto = bpf_htons(ETH_P_IP);
        ip4_build(ip, r, fam_in == RXDP_FAM_V4 ? f->id : 0);
        udp = (void *)(ip + 1);
    } else {
        struct ipv6hdr *ip6 = (void *)(eth + 1);

        if ((void *)(ip6 + 1) > end)
            return XDP_DROP;
        eth->h_proto = bpf_htons(ETH_P_IPV6);
        ip6_build(ip6, r);
        udp = (void *)(ip6 + 1);
    }
    if ((void *)(udp + 1) > end)
        return XDP_DROP;
    udp->source = r->sport;
    udp->dest = r->dport;
    udp->len = bpf_htons(r->ulen);
    udp->check = check;
    if (!r->c2p) {
        __be16 *cd = (void *)(udp + 1);

        if ((void *)(cd + 2) > end)
            return XDP_DROP;
        cd[0] = r->cd[0];
        cd[1] = r->cd[1];
    }
    return XDP_TX;
}

static __always_inline void
count(int c2p, __u64 bytes)
{
    __u32               zero = 0;
    struct rxdp_stats  *s = bpf_map_lookup_elem(&rxdp_stats, &zero);

    if (s == NULL)
        return;
    if (c2p) {
        s->c2p_packets++;
        s->c2p_bytes += bytes;
    } else {
        s->p2c_packets++;
        s->p2c_bytes += bytes;
    }
}

/* Common tail: size limits, checksum, rewrite, count. */
static __always_inline int
relay(struct xdp_md *ctx, const struct rxdp_config *cfg, const struct flow *f,
    int fam_in, const struct rewrite *r, __u16 paylen)
{
    __u16   check;
    int     act;

    if ((__u32)hlen_of(r->fam) + r->ulen > cfg->mtu)
        return XDP_PASS;
    if (f->check == 0 && fam_in == RXDP_FAM_V4) {
        /* No checksum was sent: none is made up for IPv4, and IPv6 needs
         * one over the whole payload, so user space does that. */
        if (r->fam != RXDP_FAM_V4)
            return XDP_PASS;
        check = 0;
    } else {
        check = udp_check(f, fam_in, r);
    }
    act = rewrite_frame(ctx, f, fam_in, r, check);
    if (act == XDP_TX)
        count(r->c2p, paylen);
    return act;
}

/* SPEC §2.11.2: ChannelData from a client on the listen port. */
static __always_inline int
client_to_peer(struct xdp_md *ctx, const struct rxdp_config *cfg,
    const struct flow *f, int fam_in)
{
    void                   *data = (void *)(long)ctx->data;
    void                   *end = (void *)(long)ctx->data_end;
    __be16                 *cd = data + ETH_HLEN + hlen_of(fam_in) + UDP_HLEN;
    struct rxdp_c2p_key     k;
    struct rxdp_c2p_val    *v;
    struct rewrite          r;
    __u16                   len;

    if ((void *)(cd + 2) > end)
        return XDP_PASS;
    __builtin_memset(&r, 0, sizeof(r));
    r.cd[0] = cd[0];
    r.cd[1] = cd[1];
    len = bpf_ntohs(r.cd[1]);
    /* Exactly the datagram: padded or short ChannelData is user space's
     * (it tolerates padding and drops what is short, SPEC §2.11.2). */
    if (f->ulen != UDP_HLEN + CD_HLEN + len)
        return XDP_PASS;
    __builtin_memset(&k, 0, sizeof(k));
    __builtin_memcpy(k.ip, f->src, 16);
    k.port = f->sport;
    k.number = r.cd[0];
    k.family = fam_in;
    v = bpf_map_lookup_elem(&rxdp_c2p, &k);
    if (v == NULL)
        return XDP_PASS;
    r.fam = v->peer_family;
    if (r.fam != RXDP_FAM_V4 && r.fam != RXDP_FAM_V6)
        return XDP_PASS;
    __builtin_memcpy(r.dst, v->peer_ip, 16);
    if (is_local(cfg, r.fam, r.dst))
        return XDP_PASS;                /* hairpin: another allocation */
    if (r.fam == fam_in) {
        __builtin_memcpy(r.src, f->dst, 16);
    } else if (r.fam == RXDP_FAM_V4 && cfg->has_src4) {
        __builtin_memset(r.src, 0, 16);
        __builtin_memcpy(r.src, cfg->src4, 4);
    } else if (r.fam == RXDP_FAM_V6 && cfg->has_src6) {
        __builtin_memcpy(r.src, cfg->src6, 16);
    } else {
        return XDP_PASS;
    }
    r.sport = v->relay_port;
    r.dport = v->peer_port;
    r.ulen = UDP_HLEN + len;
    r.c2p = 1;
    return relay(ctx, cfg, f, fam_in, &r, len);
}

/* SPEC §2.11.3: a datagram from a peer on a relay port. */
static __always_inline int
peer_to_client(struct xdp_md *ctx, const struct rxdp_config *cfg,
    const struct flow *f, int fam_in)
{
    struct rxdp_p2c_key     k;
    struct rxdp_p2c_val    *v;
    struct rewrite          r;
    __u16                   paylen = f->ulen - UDP_HLEN;

    __builtin_memset(&r, 0, sizeof(r));
    __builtin_memset(&k, 0, sizeof(k));
    __builtin_memcpy(k.ip, f->src, 16);
    k.port = f->sport;
    k.relay_port = f->dport;
    k.family = fam_in;
    v = bpf_map_lookup_elem(&rxdp_p2c, &k);
    if (v == NULL)
        return XDP_PASS;
    r.fam = v->client_family;
    if (r.fam != RXDP_FAM_V4 && r.fam != RXDP_FAM_V6)
        return XDP_PASS;
    __builtin_memcpy(r.dst, v->client_ip, 16);
    __builtin_memcpy(r.src, v->local_ip, 16);
    if (is_local(cfg, r.fam, r.dst) || !is_local(cfg, r.fam, r.src))
        return XDP_PASS;
    if ((__u32)paylen + CD_HLEN >
        (r.fam == RXDP_FAM_V4 ? UDP_MAX4 : UDP_MAX6))
        return XDP_PASS;                /* too_large is user space's */
    r.sport = cfg->listen_port;
    r.dport = v->client_port;
    r.cd[0] = v->number;
    r.cd[1] = bpf_htons(paylen);
    r.ulen = f->ulen + CD_HLEN;
    r.c2p = 0;
    return relay(ctx, cfg, f, fam_in, &r, paylen);
}

static __always_inline int
handle(struct xdp_md *ctx, const struct rxdp_config *cfg, int fam)
{
    struct flow f;
    __u16       port;

    if (parse(ctx, &f, fam) != 0)
        return XDP_PASS;
    if (!is_local(cfg, fam, f.dst))
        return XDP_PASS;
    if (f.dport == cfg->listen_port)
        return client_to_peer(ctx, cfg, &f, fam);
    port = bpf_ntohs(f.dport);
    if (port >= cfg->port_min && port <= cfg->port_max)
        return peer_to_client(ctx, cfg, &f, fam);
    return XDP_PASS;
}

SEC("xdp")
int
rxdp_main(struct xdp_md *ctx)
{
    void                   *data = (void *)(long)ctx->data;
    void                   *end = (void *)(long)ctx->data_end;
    struct ethhdr          *eth = data;
    const struct rxdp_config *cfg;
    __u32                   zero = 0;

    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    cfg = bpf_map_lookup_elem(&rxdp_cfg, &zero);
    if (cfg == NULL || cfg->listen_port == 0)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP))
        return handle(ctx, cfg, RXDP_FAM_V4);
    if (eth->h_proto == bpf_htons(ETH_P_IPV6))
        return handle(ctx, cfg, RXDP_FAM_V6);
    return XDP_PASS;
}

/* The kernel checks the license only for GPL-only helpers, and none is
 * used here. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
