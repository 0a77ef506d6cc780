/* relay_xdp.h - the interface between the XDP program (relay_xdp.bpf.c)
 * and its loader in the master (src/master/xdp.c): map names, key and
 * value layouts, the configuration record and the counters.  Included by
 * both sides, so only <linux/types.h> types (docs/xdp.md).
 *
 * Addresses are 16 bytes with an IPv4 address in the first 4 and zeros
 * after (as struct addr does), families are 4 or 6, ports and channel
 * numbers are in network byte order as they appear on the wire, so the
 * program never converts.  Every struct is padded by hand to a multiple
 * of 4 bytes with explicit, zeroed pad fields: hash keys are compared as
 * bytes. */
#ifndef RLY_RELAY_XDP_H
#define RLY_RELAY_XDP_H

#include <linux/types.h>

#define RXDP_FAM_V4         4
#define RXDP_FAM_V6         6
#define RXDP_MAX_LOCAL      4       /* own addresses per family */

/* Map names, as the loader finds them in the object. */
#define RXDP_MAP_C2P        "rxdp_c2p"
#define RXDP_MAP_P2C        "rxdp_p2c"
#define RXDP_MAP_CFG        "rxdp_cfg"
#define RXDP_MAP_STATS      "rxdp_stats"
#define RXDP_PROG           "rxdp_main"

/* Client -> peer: (client socket, channel number) -> (peer, relay port).
 * One entry per bound channel (SPEC §2.11.2). */
struct rxdp_c2p_key {
    __u8    ip[16];             /* client */
    __be16  port;               /* client UDP port */
    __be16  number;             /* channel number */
    __u8    family;
    __u8    pad[3];
};

struct rxdp_c2p_val {
    __u8    peer_ip[16];
    __be16  peer_port;
    __be16  relay_port;         /* the allocation's port: our source port */
    __u8    peer_family;
    __u8    pad[3];
};

/* Peer -> client: (peer socket, relay port) -> (client, channel).  One
 * entry per bound channel (SPEC §2.11.3). */
struct rxdp_p2c_key {
    __u8    ip[16];             /* peer */
    __be16  port;               /* peer UDP port */
    __be16  relay_port;
    __u8    family;
    __u8    pad[3];
};

struct rxdp_p2c_val {
    __u8    client_ip[16];
    __u8    local_ip[16];       /* the address the client sent to: the
                                   source towards the client (SPEC §2.1) */
    __be16  client_port;
    __be16  number;
    __u8    client_family;
    __u8    pad[3];
};

/* The single entry of RXDP_MAP_CFG, written by the loader before the
 * program is attached. */
struct rxdp_config {
    __be16  listen_port;
    __u16   port_min;           /* relay range, host order */
    __u16   port_max;
    __u16   mtu;                /* the interface's MTU: larger packets pass */
    __u8    n_local4;           /* entries used in local4 / local6 */
    __u8    n_local6;
    __u8    has_src4;           /* xdp.int_ip4 set */
    __u8    has_src6;           /* xdp.int_ip6 set */
    __u8    src4[4];            /* source towards IPv4 peers of IPv6 clients */
    __u8    src6[16];           /* source towards IPv6 peers of IPv4 clients */
    /* The addresses datagrams must be sent to (the listen and relay
     * sockets' addresses on this interface); anything else passes. */
    __u8    local4[RXDP_MAX_LOCAL][4];
    __u8    local6[RXDP_MAX_LOCAL][16];
};

/* The single entry of the per-CPU RXDP_MAP_STATS; payload bytes, as
 * relay_relayed_bytes_total counts them (SPEC §2.11.4). */
struct rxdp_stats {
    __u64   c2p_packets;
    __u64   c2p_bytes;
    __u64   p2c_packets;
    __u64   p2c_bytes;
};

#endif
